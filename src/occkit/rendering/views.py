"""Render whole camera views of an occupancy grid: per-pixel depth, class and opacity maps.

Two sources, one renderer (:func:`~occkit.rendering.volrend.render_rays`):

- a label grid ``(X, Y, Z)`` of class ids, as a *hard* density: occupied voxels (class !=
  free) get a large density ``sigma_occupied`` and free ones 0, looked up by nearest voxel, so
  the transmittance drops from 1 to ~0 in the first sample inside the first occupied voxel (the
  depth is exact to half a sample step, the class is that voxel's);
- occupancy logits ``(C, X, Y, Z)``: ``sigma = -log p(free) / voxel``, classes from the
  non-free probabilities (:func:`~occkit.rendering.volrend.density_from_logits`).

A pixel's depth is the ray distance where the transmittance falls to 0.5 (``median_depth``),
converted to camera z-depth (``z = t * z_per_t``, the convention of ``Sample.depth``); its class
is the argmax of the rendered class distribution. Pixels whose ray leaves the grid box with
transmittance above 0.5 have depth 0 and class ``free`` ("nothing inside the grid").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from occkit.geometry.grid import Grid
from occkit.labels import OCC3D_NUM_CLASSES
from occkit.rendering.rays import Rays, camera_rays
from occkit.rendering.volrend import Field, RenderOutput, grid_field, logits_field, render_rays
from occkit.shapes import check_shape


@dataclass
class ViewMaps:
    """Per-camera maps of ``N`` views of size ``H' x W'`` (``H' = ceil(H / stride)``).

    Attributes:
        depth: ``(N, H', W')`` float32 camera z-depth in metres, 0 = no surface in the grid.
        distance: ``(N, H', W')`` float32 distance along the ray, 0 = no surface.
        semantics: ``(N, H', W')`` long class ids, ``free`` = no surface.
        opacity: ``(N, H', W')`` float32 ``sum_i w_i`` of the ray inside the grid.
    """

    depth: torch.Tensor
    distance: torch.Tensor
    semantics: torch.Tensor
    opacity: torch.Tensor


def hard_density(
    occupancy: torch.Tensor, *, free: int, sigma_occupied: float = 1000.0, dtype=torch.float32
) -> torch.Tensor:
    """``(X, Y, Z)`` densities: ``sigma_occupied`` (per metre) where ``occupancy != free``, else 0."""
    check_shape(occupancy, "X Y Z", name="occupancy")
    if torch.is_floating_point(occupancy):
        raise TypeError(f"occupancy: expected integer class ids, got {occupancy.dtype}")
    return (occupancy != free).to(dtype) * sigma_occupied


def _maps(r: RenderOutput, rays: Rays, shape: tuple[int, int, int], free: int, sem: torch.Tensor) -> ViewMaps:
    hit = torch.isfinite(r.median_depth)
    dist = torch.where(hit, r.median_depth, torch.zeros_like(r.median_depth))
    depth = dist * rays.z_per_t.to(dist.dtype)
    sem = torch.where(hit, sem, torch.full_like(sem, free))
    return ViewMaps(
        depth=depth.float().reshape(shape),
        distance=dist.float().reshape(shape),
        semantics=sem.reshape(shape),
        opacity=r.opacity.detach().float().reshape(shape),
    )


def _check_views(intrinsics: torch.Tensor, T_ego_from_cam: torch.Tensor) -> None:
    dims = check_shape(intrinsics, "N 3 3", name="intrinsics")
    check_shape(T_ego_from_cam, "N 4 4", name="T_ego_from_cam", dims=dims)


def _render_views(
    field: Field,
    dev: torch.device,
    grid: Grid,
    cams: tuple[torch.Tensor, torch.Tensor, int, int, int],
    step: float,
    chunk: int,
    block: int,
    free: int,
    classes_of: Callable[[RenderOutput], torch.Tensor],
) -> ViewMaps:
    """Cast the rays of every ``stride``-th pixel of the ``N`` cameras ``cams = (intrinsics,
    T_ego_from_cam, height, width, stride)`` through ``field`` (on ``dev``) and gather the maps;
    ``classes_of(r)`` turns the rendered values into class ids."""
    intrinsics, T_ego_from_cam, height, width, stride = cams
    rays = camera_rays(
        intrinsics.to(dev, torch.float32), T_ego_from_cam.to(dev, torch.float32), height, width, stride=stride
    )
    N = intrinsics.shape[0]
    shape = (N, len(range(stride // 2, height, stride)), len(range(stride // 2, width, stride)))
    r = render_rays(field, rays.origins, rays.dirs, grid, step=step, chunk=chunk, block=block, stop_transmittance=1e-4)
    return _maps(r, rays, shape, free, classes_of(r))


@torch.no_grad()
def render_occupancy_views(
    occupancy: torch.Tensor,
    grid: Grid,
    intrinsics: torch.Tensor,
    T_ego_from_cam: torch.Tensor,
    height: int,
    width: int,
    *,
    stride: int = 1,
    free: int,
    num_classes: int = OCC3D_NUM_CLASSES,
    step: float | None = None,
    sigma_occupied: float = 1000.0,
    chunk: int = 16384,
    block: int = 32,
) -> ViewMaps:
    """Render a label grid into camera views (hard density, nearest lookups, no gradients).

    Args:
        occupancy: ``(X, Y, Z)`` long class ids in ``[0, num_classes)``, ``free`` = free.
        grid: its grid (``grid.shape == (X, Y, Z)``).
        intrinsics: ``(N, 3, 3)``; T_ego_from_cam: ``(N, 4, 4)``; height, width: image size.
        stride: render every ``stride``-th pixel (see :func:`~occkit.rendering.rays.camera_rays`).
        step: metres between samples (default a quarter of the smallest voxel side).
        sigma_occupied: density of occupied voxels per metre (``sigma * step >> 1``: opaque).
        chunk, block: rays and samples per pass (memory bound), rays stop once opaque.
    Returns:
        :class:`ViewMaps`.
    """
    check_shape(occupancy, "X Y Z", name="occupancy", dims=dict(zip("XYZ", grid.shape)))
    _check_views(intrinsics, T_ego_from_cam)
    if int(occupancy.min()) < 0 or int(occupancy.max()) >= num_classes:
        raise ValueError(
            f"occupancy: class ids must lie in [0, {num_classes}), got [{int(occupancy.min())}, {int(occupancy.max())}]"
        )
    dev = occupancy.device
    step = min(grid.voxel_size) / 4 if step is None else step
    occ = occupancy.long()
    dens = hard_density(occ, free=free, sigma_occupied=sigma_occupied)
    # With a hard density every interval inside an occupied voxel is opaque (alpha = 1 - exp(-sigma
    # step)), so a ray's weights are one spike: rendering the class id as a 1-channel value gives
    # that voxel's class times the opacity (the one-hot rendering of all classes, 17x cheaper).
    class_value = occ.to(torch.float32)[None]  # (1, X, Y, Z)

    def classes_of(r: RenderOutput) -> torch.Tensor:
        return torch.round(r.values[:, 0] / r.opacity.clamp(min=1e-6)).long().clamp(0, num_classes - 1)

    field = grid_field(dens, grid, class_value, "nearest")
    cams = (intrinsics, T_ego_from_cam, height, width, stride)
    return _render_views(field, dev, grid, cams, step, chunk, block, free, classes_of)


@torch.no_grad()
def render_logits_views(
    logits: torch.Tensor,
    grid: Grid,
    intrinsics: torch.Tensor,
    T_ego_from_cam: torch.Tensor,
    height: int,
    width: int,
    *,
    stride: int = 1,
    free: int,
    step: float | None = None,
    mode: str = "trilinear",
    chunk: int = 16384,
    block: int = 32,
) -> ViewMaps:
    """Render occupancy logits into camera views (soft density, no gradients).

    Args:
        logits: ``(C, X, Y, Z)``, class ``free`` = free.
        grid, intrinsics, T_ego_from_cam, height, width, stride, step, chunk, block: as in
            :func:`render_occupancy_views` (step default: half the smallest voxel side).
        mode: grid lookup, ``"trilinear"`` or ``"nearest"``.
    Returns:
        :class:`ViewMaps`.
    """
    check_shape(logits, "C X Y Z", name="logits", dims=dict(zip("XYZ", grid.shape)))
    _check_views(intrinsics, T_ego_from_cam)
    dev = logits.device
    C = logits.shape[0]
    step = min(grid.voxel_size) / 2 if step is None else step
    keep = [c for c in range(C) if c != free]

    def classes_of(r: RenderOutput) -> torch.Tensor:
        return torch.tensor(keep, device=dev)[r.values.argmax(-1)]

    field = logits_field(logits, grid, free=free, mode=mode)  # type: ignore[arg-type]
    cams = (intrinsics, T_ego_from_cam, height, width, stride)
    return _render_views(field, dev, grid, cams, step, chunk, block, free, classes_of)
