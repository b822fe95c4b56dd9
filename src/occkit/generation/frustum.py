"""Ray points for each latent pixel (and, re-exported from :mod:`occkit.geometry.frustum`, which voxels a set of
cameras sees)."""

from __future__ import annotations

import torch

from occkit.geometry.camera import pixel_centers, pixel_rays
from occkit.geometry.frustum import frustum_mask, voxel_centers
from occkit.shapes import check_shape

__all__ = ["frustum_mask", "latent_ray_points", "voxel_centers"]


def latent_ray_points(
    intrinsics: torch.Tensor, T_ego_from_cam: torch.Tensor, image_hw: tuple[int, int], stride: int, depths: torch.Tensor
) -> torch.Tensor:
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
