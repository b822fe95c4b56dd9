"""Which voxels a set of cameras sees: their view frusta over a voxel grid."""

from __future__ import annotations

import torch

from occkit.geometry.camera import in_image, project_ego
from occkit.geometry.grid import Grid
from occkit.shapes import check_shape


def voxel_centers(grid: Grid, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(X, Y, Z, 3)`` ego-frame voxel centres (``index * size + size / 2 + range_min``)."""
    axes = [
        torch.arange(n, device=device, dtype=torch.float32) * s + s / 2 + lo
        for n, s, lo in zip(grid.shape, grid.voxel_size, grid.range_min)
    ]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1)


def frustum_mask(
    grid: Grid,
    intrinsics: torch.Tensor,
    T_ego_from_cam: torch.Tensor,
    image_hw: tuple[int, int],
    max_depth: float = 60.0,
) -> torch.Tensor:
    """Voxels whose centre projects inside any camera's image, in front of it, nearer than ``max_depth``.

    Args:
        intrinsics: ``(B, N, 3, 3)``; T_ego_from_cam: ``(B, N, 4, 4)``; image_hw: (H, W).
    Returns:
        ``(B, X, Y, Z)`` bool.
    """
    dims = check_shape(intrinsics, "B N 3 3", name="intrinsics")
    check_shape(T_ego_from_cam, "B N 4 4", name="T_ego_from_cam", dims=dims)
    H, W = image_hw
    pts = voxel_centers(grid, intrinsics.device).reshape(-1, 3)  # (V, 3)
    uv, z = project_ego(pts, intrinsics, T_ego_from_cam)  # (B, N, V, 2), (B, N, V)
    inside = (z > 0.1) & (z < max_depth) & in_image(uv, H, W)
    return inside.any(1).view(dims["B"], *grid.shape)
