"""Which voxels a set of cameras sees (their view frusta), and ray points for each latent pixel."""

from __future__ import annotations

import torch

from occkit.geometry.camera import pixel_centers, pixel_rays, project
from occkit.geometry.grid import Grid
from occkit.shapes import check_shape


def voxel_centers(grid: Grid, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(X, Y, Z, 3)`` ego-frame voxel centres (``index * size + size / 2 + range_min``)."""
    axes = [torch.arange(n, device=device, dtype=torch.float32) * s + s / 2 + lo
            for n, s, lo in zip(grid.shape, grid.voxel_size, grid.range_min)]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1)


def frustum_mask(grid: Grid, intrinsics: torch.Tensor, T_ego_from_cam: torch.Tensor, image_hw: tuple[int, int],
                 max_depth: float = 60.0) -> torch.Tensor:
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
    T_cam_from_ego = torch.linalg.inv(T_ego_from_cam.float())  # (B, N, 4, 4)
    p_cam = pts @ T_cam_from_ego[..., :3, :3].transpose(-1, -2) + T_cam_from_ego[..., None, :3, 3]  # (B, N, V, 3)
    uv, z = project(p_cam, intrinsics.float())  # (B, N, V, 2), (B, N, V)
    inside = (z > 0.1) & (z < max_depth) & (uv[..., 0] >= 0) & (uv[..., 0] < W) & (uv[..., 1] >= 0) & (uv[..., 1] < H)
    return inside.any(1).view(dims["B"], *grid.shape)


def latent_ray_points(intrinsics: torch.Tensor, T_ego_from_cam: torch.Tensor, image_hw: tuple[int, int], stride: int,
                      depths: torch.Tensor) -> torch.Tensor:
    """Ego-frame points along the ray through each latent pixel's centre, at camera z-depths ``depths``.

    Args:
        intrinsics: ``(M, 3, 3)`` of the full-resolution image; T_ego_from_cam: ``(M, 4, 4)``;
        image_hw: (H, W); stride: image pixels per latent pixel; depths: ``(S,)`` metres.
    Returns:
        ``(M, S, h, w, 3)`` with ``h = ceil(H / stride)``, ``w = ceil(W / stride)``.
    """
    dims = check_shape(intrinsics, "M 3 3", name="intrinsics")
    check_shape(T_ego_from_cam, "M 4 4", name="T_ego_from_cam", dims=dims)
    H, W = image_hw
    uv = pixel_centers(H, W, stride, device=intrinsics.device)  # (h, w, 2)
    h, w = uv.shape[:2]
    rays = pixel_rays(uv.reshape(1, -1, 2), intrinsics.float())  # (M, h*w, 3), z = 1
    p_cam = rays[:, None] * depths.view(1, -1, 1, 1)  # (M, S, h*w, 3)
    T = T_ego_from_cam.float()
    p_ego = p_cam @ T[:, None, :3, :3].transpose(-1, -2) + T[:, None, None, :3, 3]  # (M, S, h*w, 3)
    return p_ego.view(dims["M"], depths.numel(), h, w, 3)
