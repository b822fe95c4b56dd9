"""Camera rays in the ego frame, one per chosen pixel.

A ray leaves the camera centre through the *centre* of a pixel: pixel ``(row, col)`` is at
continuous image coordinates ``(u, v) = (col + 0.5, row + 0.5)`` (see
:mod:`occkit.geometry.camera`). Directions are unit vectors in the ego frame, so a distance ``t``
along a ray is in metres: the point is ``origin + t * dir``. The camera-frame z component of the
unit direction, ``z_per_t``, converts a ray distance into a z-depth: ``z = t * z_per_t``.

Pixels can be chosen four ways (exactly one):

- every ``stride``-th pixel (``stride=1``: all), rows ``stride // 2, stride // 2 + stride, ...``
  and the same for columns, ordered camera-major then row-major;
- an explicit list ``pixels (R, 3)`` of ``(cam, row, col)``;
- ``num_random`` pixels uniformly at random over all cameras (with replacement);
- ``num_random`` pixels drawn in proportion to ``weights (N, H, W)`` (with replacement).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from occkit.geometry.camera import pixel_rays
from occkit.shapes import Rows, check_shape


@dataclass
class Rays(Rows):
    """``R`` rays in the ego frame.

    Attributes:
        origins: ``(R, 3)`` ray origins (camera centres), metres.
        dirs: ``(R, 3)`` unit directions.
        cam: ``(R,)`` long, the camera index of each ray.
        row: ``(R,)`` long, the pixel row (v) each ray passes through the centre of.
        col: ``(R,)`` long, the pixel column (u).
        z_per_t: ``(R,)`` camera-frame z of the unit direction: z-depth = ray distance * z_per_t.
    """

    origins: torch.Tensor
    dirs: torch.Tensor
    cam: torch.Tensor
    row: torch.Tensor
    col: torch.Tensor
    z_per_t: torch.Tensor

    def to(self, device: torch.device | str) -> Rays:
        """A copy on ``device``."""
        return self.map_fields(lambda a: a.to(device))

    def gather(self, maps: torch.Tensor) -> torch.Tensor:
        """Values of per-camera maps at the rays' pixels.

        Args:
            maps: ``(N, H, W, ...)`` per-camera images (depth, semantics, ...).
        Returns:
            ``(R, ...)``.
        """
        if maps.dim() < 3:
            raise ValueError(f"maps: expected shape (N, H, W, ...), got {tuple(maps.shape)}")
        return maps[self.cam.to(maps.device), self.row.to(maps.device), self.col.to(maps.device)]


def camera_rays(
    intrinsics: torch.Tensor,
    T_ego_from_cam: torch.Tensor,
    height: int,
    width: int,
    *,
    stride: int | None = None,
    pixels: torch.Tensor | None = None,
    num_random: int | None = None,
    weights: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Rays:
    """Rays through pixel centres of ``N`` cameras of one frame, in the ego frame.

    Args:
        intrinsics: ``(N, 3, 3)`` pinhole intrinsics of the ``H x W`` images.
        T_ego_from_cam: ``(N, 4, 4)`` camera (OpenCV: x right, y down, z forward) -> ego.
        height, width: image size ``H, W`` in pixels.
        stride: every ``stride``-th row and column (default 1 when no other choice is given).
        pixels: ``(R, 3)`` long ``(cam, row, col)``.
        num_random: number of random pixels (uniform, or by ``weights`` when given).
        weights: ``(N, H, W)`` non-negative sampling weights for ``num_random`` (not all zero).
        generator: random generator for ``num_random`` (its device must match the inputs').
    Returns:
        :class:`Rays` on the device and in the float dtype of ``intrinsics``.
    """
    dims = check_shape(intrinsics, "N 3 3", name="intrinsics")
    check_shape(T_ego_from_cam, "N 4 4", name="T_ego_from_cam", dims=dims)
    N = dims["N"]
    if height <= 0 or width <= 0:
        raise ValueError(f"height, width: expected positive image size, got {(height, width)}")
    if not torch.is_floating_point(intrinsics):
        raise TypeError(f"intrinsics: expected a floating point tensor, got {intrinsics.dtype}")
    chosen = [stride is not None, pixels is not None, num_random is not None]
    if sum(chosen) > 1:
        raise ValueError("camera_rays: give at most one of stride, pixels, num_random")
    if weights is not None and num_random is None:
        raise ValueError("camera_rays: weights needs num_random")
    if not (torch.isfinite(intrinsics).all() and torch.isfinite(T_ego_from_cam).all()):
        raise ValueError("intrinsics, T_ego_from_cam: expected finite values (found NaN or inf)")
    device, dtype = intrinsics.device, intrinsics.dtype

    if pixels is not None:
        check_shape(pixels, "R 3", name="pixels")
        pixels = pixels.to(device=device, dtype=torch.long)
        cam, row, col = pixels.unbind(-1)
        bad = (cam < 0) | (cam >= N) | (row < 0) | (row >= height) | (col < 0) | (col >= width)
        if bool(bad.any()):
            raise ValueError(f"pixels: {int(bad.sum())} entries outside {N} cameras of {height}x{width}")
    elif num_random is not None:
        if num_random <= 0:
            raise ValueError(f"num_random: expected a positive count, got {num_random}")
        total = N * height * width
        if weights is not None:
            check_shape(weights, "N H W", name="weights", dims={"N": N, "H": height, "W": width})
            w = weights.to(device=device, dtype=torch.float32).reshape(-1)
            if bool((w < 0).any()) or not bool(torch.isfinite(w).all()) or float(w.sum()) <= 0:
                raise ValueError("weights: expected finite non-negative values, not all zero")
            flat = torch.multinomial(w, num_random, replacement=True, generator=generator)
        else:
            flat = torch.randint(0, total, (num_random,), device=device, generator=generator)
        cam = flat // (height * width)
        row = (flat // width) % height
        col = flat % width
    else:
        s = 1 if stride is None else int(stride)
        if s <= 0:
            raise ValueError(f"stride: expected a positive integer, got {stride}")
        rows = torch.arange(s // 2, height, s, device=device)
        cols = torch.arange(s // 2, width, s, device=device)
        cam, row, col = torch.meshgrid(torch.arange(N, device=device), rows, cols, indexing="ij")
        cam, row, col = cam.reshape(-1), row.reshape(-1), col.reshape(-1)  # (N*H'*W',)

    uv = torch.stack([col, row], -1).to(dtype) + 0.5  # (R, 2) pixel centres
    K = intrinsics[cam]  # (R, 3, 3)
    d_cam = pixel_rays(uv[:, None, :], K)[:, 0]  # (R, 3) with z = 1
    d_cam = d_cam / d_cam.norm(dim=-1, keepdim=True)
    T = T_ego_from_cam.to(dtype)[cam]  # (R, 4, 4)
    dirs = (T[:, :3, :3] @ d_cam[:, :, None])[:, :, 0]  # (R, 3)
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    return Rays(
        origins=T[:, :3, 3].contiguous(), dirs=dirs, cam=cam, row=row, col=col, z_per_t=d_cam[:, 2].contiguous()
    )


def sample_feature_map(features: torch.Tensor, rays: Rays, stride: int) -> torch.Tensor:
    """Bilinear 2D features at the rays' pixel centres.

    Feature cell ``j`` covers pixels ``[j s, (j + 1) s)``, so pixel centre ``u = col + 0.5`` sits
    at feature coordinate ``u / s`` (``align_corners=False``, border padding).

    Args:
        features: ``(N, D, h, w)`` per camera (float16 / bfloat16 are read camera by camera in
            float32); rays: ``R`` rays of these cameras; stride: ``s``.
    Returns:
        ``(R, D)`` (float32 for half-precision features).
    """
    return sample_feature_pixels(features, torch.stack([rays.cam, rays.row, rays.col], -1), stride)


def sample_feature_pixels(features: torch.Tensor, pixels: torch.Tensor, stride: int) -> torch.Tensor:
    """:func:`sample_feature_map` at pixels ``(R, 3)`` long ``(cam, row, col)`` (what the data
    pipeline gathers for ``temporal_gather: lidar_pixels``; the same arithmetic per pixel)."""
    check_shape(features, "N D h w", name="features")
    check_shape(pixels, "R 3", name="pixels")
    N, D, h, w = features.shape
    dtype = torch.float32 if features.dtype in (torch.float16, torch.bfloat16) else features.dtype
    u = (pixels[:, 2].to(dtype) + 0.5) / stride  # (R,) feature coordinates
    v = (pixels[:, 1].to(dtype) + 0.5) / stride
    g = torch.stack([u / w * 2 - 1, v / h * 2 - 1], -1)  # (R, 2)
    out = torch.zeros(len(pixels), D, dtype=dtype, device=features.device)
    cam = pixels[:, 0].to(features.device)
    for n in range(N):
        sel = (cam == n).nonzero()[:, 0]
        if sel.numel() == 0:
            continue
        s = F.grid_sample(
            features[n : n + 1].to(dtype),
            g[sel].view(1, 1, -1, 2).to(features.device),
            mode="bilinear",
            padding_mode="border",
            align_corners=False,
        )  # (1, D, 1, r)
        out[sel] = s[0, :, 0].t()
    return out
