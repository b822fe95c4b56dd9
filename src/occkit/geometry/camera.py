"""Pinhole cameras in the OpenCV convention: x right, y down, z forward; pixel (u, v) has its
centre at (u + 0.5, v + 0.5) in continuous image coordinates, i.e. pixel centres of a W x H image
are at u = 0.5 .. W - 0.5.

``K`` is the 3x3 intrinsic matrix; a point ``p_cam`` projects to ``(K @ p_cam)[:2] / z``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from occkit.shapes import check_shape

if TYPE_CHECKING:
    from occkit.geometry.grid import Grid


def project(points_cam: torch.Tensor, K: torch.Tensor, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """Project camera-frame points to pixels.

    Args:
        points_cam: ``(..., N, 3)`` camera-frame points.
        K: ``(..., 3, 3)`` intrinsics.
    Returns:
        uv: ``(..., N, 2)`` continuous pixel coordinates; depth: ``(..., N)`` the z coordinate.
        Points with ``z <= eps`` get uv from a clamped z: mask them with ``depth > eps``.
    """
    check_shape(points_cam, "... N 3", name="points_cam")
    check_shape(K, "... 3 3", name="K")
    z = points_cam[..., 2]
    p = points_cam @ K.transpose(-1, -2)  # (..., N, 3)
    uv = p[..., :2] / z.clamp(min=eps)[..., None]
    return uv, z


def project_ego(
    points: torch.Tensor, intrinsics: torch.Tensor, T_ego_from_cam: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Project ego-frame points into cameras: ego -> camera (the inverse of ``T_ego_from_cam``) -> pixels.

    Args:
        points: ``(P, 3)`` ego-frame points (or ``(..., P, 3)`` broadcasting with the cameras).
        intrinsics: ``(..., N, 3, 3)``; T_ego_from_cam: ``(..., N, 4, 4)``.
    Returns:
        uv ``(..., N, P, 2)`` continuous pixel coordinates and z ``(..., N, P)`` camera depth, in
        float32 (see :func:`project`: mask with ``z > eps``; :func:`in_image` tests the bounds).
    """
    check_shape(points, "... P 3", name="points")
    check_shape(intrinsics, "... 3 3", name="intrinsics")
    check_shape(T_ego_from_cam, "... 4 4", name="T_ego_from_cam")
    T_cam_from_ego = torch.linalg.inv(T_ego_from_cam.float())
    p_cam = points.float() @ T_cam_from_ego[..., :3, :3].transpose(-1, -2) + T_cam_from_ego[..., None, :3, 3]
    return project(p_cam, intrinsics.float())


def in_image(uv: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``(...)`` bool: pixel coordinates ``uv (..., 2)`` inside a ``height x width`` image
    (``0 <= u < W`` and ``0 <= v < H``: the pixel ``floor(uv)`` exists)."""
    return (uv[..., 0] >= 0) & (uv[..., 0] < width) & (uv[..., 1] >= 0) & (uv[..., 1] < height)


def unproject(uv: torch.Tensor, depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Lift pixels with z-depth to camera-frame points.

    Args:
        uv: ``(..., N, 2)`` pixel coordinates; depth: ``(..., N)`` z-depth; K: ``(..., 3, 3)``.
    Returns:
        ``(..., N, 3)`` camera-frame points.
    """
    check_shape(uv, "... N 2", name="uv")
    rays = pixel_rays(uv, K)
    return rays * depth[..., None]


def pixel_rays(uv: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Camera-frame ray directions with z = 1 through pixels ``uv (..., N, 2)``: ``(..., N, 3)``."""
    check_shape(uv, "... N 2", name="uv")
    check_shape(K, "... 3 3", name="K")
    fx, fy = K[..., 0, 0, None], K[..., 1, 1, None]
    cx, cy = K[..., 0, 2, None], K[..., 1, 2, None]
    skew = K[..., 0, 1, None]
    y = (uv[..., 1] - cy) / fy
    x = (uv[..., 0] - cx - skew * y) / fx
    return torch.stack([x, y, torch.ones_like(x)], -1)


def pixel_centers(height: int, width: int, stride: int = 1, dtype=torch.float32, device=None) -> torch.Tensor:
    """Centres of every ``stride``-th pixel, row-major: ``(H', W', 2)`` as (u, v)."""
    v = torch.arange(0, height, stride, dtype=dtype, device=device) + 0.5 * stride
    u = torch.arange(0, width, stride, dtype=dtype, device=device) + 0.5 * stride
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    return torch.stack([uu, vv], -1)


def scale_intrinsics(K: torch.Tensor, sx: float, sy: float) -> torch.Tensor:
    """Intrinsics after resizing the image by (sx, sy) (pixel-edge convention): ``(..., 3, 3)``."""
    check_shape(K, "... 3 3", name="K")
    S = torch.tensor([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], dtype=K.dtype, device=K.device)
    return S @ K


def crop_intrinsics(K: torch.Tensor, left: float, top: float) -> torch.Tensor:
    """Intrinsics after cropping ``left`` columns and ``top`` rows off the image."""
    K = K.clone()
    K[..., 0, 2] -= left
    K[..., 1, 2] -= top
    return K


def lidar_pixels(
    lidar: torch.Tensor,
    intrinsics: torch.Tensor,
    T_ego_from_cam: torch.Tensor,
    height: int,
    width: int,
    *,
    box: Grid | None = None,
    depth_range: tuple[float, float] | None = None,
    T_ego_from_points: torch.Tensor | None = None,
) -> torch.Tensor:
    """The pixels LiDAR points project to: ``(P', 3)`` long ``(cam, row, col)``, the pixel that
    contains the projection (a point seen by two cameras counts in both).

    Args:
        lidar: ``(P, >=3)`` points (in the cameras' ego frame unless ``T_ego_from_points``);
        intrinsics ``(N, 3, 3)``; T_ego_from_cam ``(N, 4, 4)``; height, width: the image size.
        box: keep only points strictly inside this grid's box, tested on ``lidar`` as given
            (the points' own ego frame) before ``T_ego_from_points``.
        depth_range: ``(lo, hi)``: keep projections with camera depth ``lo < z < hi``; None =
            ``z > 0.1``.
        T_ego_from_points: ``(4, 4)`` maps the points into the cameras' ego frame (a neighbour
            keyframe's LiDAR into the current frame); None = identity.
    """
    check_shape(lidar, "P C", name="lidar")
    pts = lidar[:, :3].float()
    if box is not None:
        lo = torch.tensor(box.range_min, dtype=pts.dtype, device=pts.device)
        hi = torch.tensor(box.range_max, dtype=pts.dtype, device=pts.device)
        pts = pts[((pts > lo) & (pts < hi)).all(-1)]
    if T_ego_from_points is not None:
        check_shape(T_ego_from_points, "4 4", name="T_ego_from_points")
        E = T_ego_from_points.to(pts)
        pts = pts @ E[:3, :3].T + E[:3, 3]
    uv, z = project_ego(pts, intrinsics, T_ego_from_cam)  # (N, P, 2), (N, P)
    col, row = torch.floor(uv[..., 0]), torch.floor(uv[..., 1])
    in_depth = (z > 0.1) if depth_range is None else ((z > depth_range[0]) & (z < depth_range[1]))
    ok = in_depth & in_image(uv, height, width)
    cam = torch.arange(len(intrinsics), device=pts.device)[:, None].expand_as(ok)
    return torch.stack([cam[ok], row[ok].long(), col[ok].long()], -1)
