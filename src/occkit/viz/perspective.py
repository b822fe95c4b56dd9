"""A 3D perspective picture of a semantic voxel grid: a small software ray caster.

One ray per pixel leaves a virtual pinhole camera (by default behind and above the ego, looking
forward and down) and walks the grid with :func:`occkit.geometry.raycast.first_hit`. The pixel
takes the class colour of the first non-free voxel, lit by the face the ray entered through
(Lambert with an ambient term) and with thin dark voxel edges where voxels are big enough on
screen to show them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from occkit.geometry.camera import pixel_centers, pixel_rays
from occkit.geometry.grid import Grid, occ3d_grid
from occkit.geometry.raycast import RayHit, first_hit
from occkit.labels import OCC3D_PALETTE
from occkit.viz.bev import MASK_MODES, as_label_grid, as_mask, desaturate
from occkit.viz.draw import BACKGROUND, checked_palette


@dataclass(frozen=True)
class ViewCamera:
    """A virtual pinhole camera for :func:`perspective_image`, in the grid's (ego) frame.

    Attributes:
        eye: camera centre in metres.
        target: the point it looks at.
        fov_deg: horizontal field of view in degrees.
    """

    eye: tuple[float, float, float] = (-30.0, 0.0, 24.0)
    target: tuple[float, float, float] = (12.0, 0.0, -6.0)
    fov_deg: float = 62.0


def default_grid(shape: tuple[int, int, int]) -> Grid:
    """The Occ3D grid for shape (200, 200, 16); otherwise a grid of 0.4 m voxels centred on the
    ego in x and y, from z = -1 m (handy for small hand-made grids)."""
    if tuple(shape) == occ3d_grid().shape:
        return occ3d_grid()
    X, Y, Z = shape
    v = 0.4
    return Grid((-X * v / 2, -Y * v / 2, -1.0), (X * v / 2, Y * v / 2, -1.0 + Z * v), (v, v, v))


def look_at(eye: Sequence[float], target: Sequence[float], up: Sequence[float] = (0.0, 0.0, 1.0)) -> torch.Tensor:
    """``T_ego_from_cam (4, 4)`` float64 of an OpenCV camera (x right, y down, z forward) at
    ``eye`` looking at ``target``; ``up`` fixes the roll (picture "up" is towards +up)."""
    e = torch.as_tensor(eye, dtype=torch.float64)
    f = torch.as_tensor(target, dtype=torch.float64) - e
    if f.norm() == 0:
        raise ValueError("look_at: eye and target coincide")
    f = f / f.norm()
    r = torch.linalg.cross(f, torch.as_tensor(up, dtype=torch.float64))
    if r.norm() < 1e-9:
        raise ValueError("look_at: viewing direction is parallel to up")
    r = r / r.norm()
    d = torch.linalg.cross(f, r)
    T = torch.eye(4, dtype=torch.float64)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = r, d, f, e
    return T


def view_intrinsics(width: int, height: int, fov_deg: float) -> torch.Tensor:
    """``(3, 3)`` float64 intrinsics with square pixels, the given horizontal field of view and
    the principal point at the image centre."""
    if not 0 < fov_deg < 180:
        raise ValueError(f"fov_deg must lie in (0, 180), got {fov_deg}")
    f = width / 2 / np.tan(np.deg2rad(fov_deg) / 2)
    return torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], dtype=torch.float64)


def ego_voxels(grid: Grid, box: tuple[Sequence[float], Sequence[float]]) -> np.ndarray:
    """``(X, Y, Z)`` bool: voxels whose centre lies inside the axis-aligned ``box = (lo, hi)``."""
    c = grid.centers(dtype=torch.float64).numpy()  # (X, Y, Z, 3)
    lo, hi = np.asarray(box[0]), np.asarray(box[1])
    return ((c >= lo) & (c <= hi)).all(-1)


#: nuScenes ego frame: origin at the rear axle on the ground; a car-sized box around it.
EGO_BOX: tuple[tuple[float, float, float], tuple[float, float, float]] = ((-1.0, -0.95, -0.2), (3.2, 0.95, 1.6))


def perspective_image(
    semantics: np.ndarray | torch.Tensor,
    mask: np.ndarray | torch.Tensor | None = None,
    palette: Sequence[Sequence[int]] = OCC3D_PALETTE,
    grid: Grid | None = None,
    camera: ViewCamera = ViewCamera(),
    width: int = 640,
    height: int = 420,
    mask_mode: str = "hide",
    *,
    free: int,
    ego_box: tuple[Sequence[float], Sequence[float]] | None = EGO_BOX,
    ego_color: Sequence[int] = (250, 250, 250),
    light: Sequence[float] = (-0.35, 0.45, 1.0),
    background: Sequence[int] = BACKGROUND,
    device: str | torch.device = "cpu",
    chunk_rays: int = 8192,
) -> np.ndarray:
    """Render the non-free voxels of ``semantics`` from a virtual camera.

    Args:
        semantics: ``(X, Y, Z)`` integer class ids, ``free`` (the free class) = empty.
        mask: optional ``(X, Y, Z)`` bool, the observed voxels.
        palette: ``(C, 3)`` RGB colours indexed by class.
        grid: where the voxels are (default: :func:`default_grid`).
        camera: the virtual camera (in the grid's frame).
        width, height: picture size in pixels.
        mask_mode: ``"hide"`` (unobserved voxels are not drawn) or ``"grey"`` (drawn greyed out).
        ego_box: ``(lo, hi)`` metres: free voxels inside are drawn in ``ego_color`` to mark the
            ego vehicle (``None``: no marker).
        light: direction towards the light, in the grid frame.
        device: where the rays are cast (``"cuda"`` is much faster for big pictures).
        chunk_rays: rays cast together (whole rows of pixels at a time).
    Returns:
        ``(height, width, 3) uint8``.
    """
    sem = as_label_grid(semantics)
    m = as_mask(mask, sem.shape)
    if mask_mode not in MASK_MODES:
        raise ValueError(f"mask_mode must be one of {MASK_MODES}, got {mask_mode!r}")
    if width < 1 or height < 1:
        raise ValueError(f"width and height must be positive, got {width}x{height}")
    grid = grid or default_grid(sem.shape)
    if tuple(sem.shape) != grid.shape:
        raise ValueError(f"semantics: shape {sem.shape} does not match the grid {grid.shape}")
    pal = checked_palette(palette, sem, free)

    occupied = sem != free
    if m is not None and mask_mode == "hide":
        occupied &= m
    colors = pal[np.where(occupied, sem, 0)]  # (X, Y, Z, 3)
    if m is not None and mask_mode == "grey":
        colors = np.where(m[..., None], colors, desaturate(colors))
    if ego_box is not None:
        ego = ego_voxels(grid, ego_box) & ~occupied
        occupied = occupied | ego
        colors[ego] = np.asarray(ego_color, np.uint8)

    # One ray per pixel, from the camera centre, in the grid frame.
    K = view_intrinsics(width, height, camera.fov_deg)
    T = look_at(camera.eye, camera.target)
    uv = pixel_centers(height, width, dtype=torch.float64).reshape(-1, 2)  # (H*W, 2)
    dirs_cam = pixel_rays(uv, K)  # (H*W, 3), z = 1
    dirs = (dirs_cam @ T[:3, :3].T).float()
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)  # unit: t is in metres
    origins = T[:3, 3].float().expand_as(dirs).contiguous()
    occ_t = torch.from_numpy(occupied).to(device)
    # Bands of rows: first_hit walks a band until its last ray stops, so bands near the bottom
    # (looking at the ground close by) stop early instead of waiting for rays near the horizon.
    band = max(1, chunk_rays // width) * width
    hits = [
        first_hit(occ_t, origins[i : i + band].to(device), dirs[i : i + band].to(device), grid)
        for i in range(0, height * width, band)
    ]
    hit = RayHit(
        hit=torch.cat([h.hit.cpu() for h in hits]),
        index=torch.cat([h.index.cpu() for h in hits]),
        t_in=torch.cat([h.t_in.cpu() for h in hits]),
        t_out=torch.cat([h.t_out.cpu() for h in hits]),
    )
    hit_mask = hit.hit.numpy()

    out = np.empty((height * width, 3), np.float32)
    out[:] = np.asarray(background, np.float32)
    if hit_mask.any():
        idx = hit.index.cpu().numpy()[hit_mask]  # (R', 3)
        d = dirs.numpy()[hit_mask].astype(np.float64)  # (R', 3)
        o = origins.numpy()[hit_mask].astype(np.float64)
        t = hit.t_in.cpu().numpy()[hit_mask].astype(np.float64)
        lo = np.asarray(grid.range_min) + idx * np.asarray(grid.voxel_size)
        vs = np.asarray(grid.voxel_size)
        p = o + d * t[:, None]
        frac = (p - lo) / vs  # (R', 3) position inside the voxel, in [0, 1]
        # Entry face: the axis on whose near face (given the ray's direction) the point lies.
        near_face = np.where(d > 0, frac, 1 - frac)
        axis = np.argmin(np.abs(near_face), axis=1)
        normal = np.zeros_like(d)
        normal[np.arange(len(d)), axis] = -np.sign(d[np.arange(len(d)), axis])
        L = np.asarray(light, np.float64)
        L = L / np.linalg.norm(L)
        lambert = 0.5 + 0.5 * np.clip(normal @ L, 0, None)
        # Voxel edges: darken where the hit point is near an edge of the face, if voxels are at
        # least a few pixels wide on screen.
        f_px = float(K[0, 0])
        voxel_px = f_px * vs.min() / np.maximum(t, 1e-6)
        # Lines about one pixel wide, fading in between 3 and 9 pixels per voxel (no moire far away).
        strength = 0.3 * np.clip((voxel_px - 3.0) / 6.0, 0.0, 1.0)
        other = np.ones_like(frac, dtype=bool)
        other[np.arange(len(d)), axis] = False
        fr = frac[other].reshape(-1, 2)
        edge = np.minimum(fr, 1 - fr).min(axis=1) < 0.6 / np.maximum(voxel_px, 1e-6)
        lit = lambert * (1.0 - np.where(edge, strength, 0.0))
        col = colors[idx[:, 0], idx[:, 1], idx[:, 2]].astype(np.float32)
        out[hit_mask] = np.clip(col * lit[:, None], 0, 255)
    return np.round(out).astype(np.uint8).reshape(height, width, 3)
