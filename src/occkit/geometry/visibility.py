"""Visibility on a voxel grid: which voxels a sensor's rays reach (Occ3D's LiDAR and camera masks).

Moved here from the driving world's occupancy module (which re-exports them) so that anything
that casts rays into a grid (the world's exact masks, ``occkit label``) shares one definition.
"""

from __future__ import annotations

import math

import torch

from occkit.geometry.camera import pixel_centers, pixel_rays, project
from occkit.geometry.grid import Grid
from occkit.geometry.raycast import mark_visible
from occkit.geometry.transforms import apply_transform, invert_transform
from occkit.shapes import check_shape


def lidar_visibility(grid: Grid, origin: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Occ3D's LiDAR mask: voxels traversed by the rays from ``origin (3,)`` to each return
    ``points (N, 3)`` (grid frame), up to and including the voxel of the return.

    Returns:
        ``(X, Y, Z)`` bool.
    """
    check_shape(origin, "3", name="origin")
    check_shape(points, "N 3", name="points")
    d = points.double() - origin.double()
    rng = d.norm(dim=-1)
    keep = rng > 1e-6
    d, rng = d[keep], rng[keep]
    dirs = d / rng[:, None]
    o = origin.double()[None].expand(dirs.shape[0], 3).contiguous()
    return mark_visible(o, dirs, grid, occupied=None, t_max=rng + 1e-4)


def camera_visibility(grid: Grid, occupied: torch.Tensor, origins: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """Occ3D's camera mask: voxels traversed by camera rays ``origins, dirs (R, 3)`` (grid
    frame) up to and including the first occupied voxel (``occupied (X, Y, Z)`` bool).

    Returns:
        ``(X, Y, Z)`` bool.
    """
    check_shape(occupied, "X Y Z", name="occupied", dims=dict(zip("XYZ", grid.shape)))
    return mark_visible(origins.double(), dirs.double(), grid, occupied=occupied)


def _exit_distance(origins: torch.Tensor, dirs: torch.Tensor, grid: Grid) -> torch.Tensor:
    """``(R,)`` distance (units of ``|dirs|``) at which each ray leaves the grid's box."""
    lo = torch.tensor(grid.range_min, dtype=dirs.dtype)
    hi = torch.tensor(grid.range_max, dtype=dirs.dtype)
    inv = 1.0 / dirs
    t = torch.maximum((lo - origins) * inv, (hi - origins) * inv).nan_to_num(nan=float("inf"))
    return t.amin(-1).clamp(min=0)


def camera_mask_rays(
    K: torch.Tensor, T_ego_from_cam: torch.Tensor, depth: torch.Tensor, grid: Grid, stride: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Camera rays for :func:`camera_visibility`, dense only where they need to be.

    Neighbouring rays must be less than a voxel apart where they end (at the surface they hit,
    from the rendered ``depth``, or where they leave the grid). With ``stride = 0`` the rays are
    picked adaptively: every 4s-th pixel everywhere, every 2s-th where rays run farther than
    ``f * voxel / (4 s)`` and every s-th where they run farther than ``f * voxel / (2 s)``,
    ``s`` being the finest stride needed at the far corner of the grid (:func:`auto_mask_stride`).
    A positive ``stride`` casts every ``stride``-th pixel instead.

    Args:
        K: ``(3, 3)``; T_ego_from_cam: ``(4, 4)``; depth: ``(H, W)`` z-depth (0 = nothing hit).
    Returns:
        origins, dirs: ``(R, 3)`` float64 in the grid (ego) frame, unit directions.
    """
    check_shape(depth, "H W", name="depth")
    H, W = depth.shape
    K = K.double()
    T = T_ego_from_cam.double()
    s = stride if stride > 0 else auto_mask_stride(K, grid)
    uv = pixel_centers(H, W, stride=1, dtype=torch.float64)  # (H, W, 2)
    rows = torch.arange(H)
    cols = torch.arange(W)
    if stride > 0:
        sel = (rows[:, None] % s == s // 2) & (cols[None] % s == s // 2)
    else:
        d_cam = pixel_rays(uv.view(-1, 2), K)  # (H*W, 3), z = 1
        d = d_cam @ T[:3, :3].T
        o = T[:3, 3].expand_as(d)
        t_exit = _exit_distance(o, d, grid)
        t_end = torch.where(depth.view(-1) > 0, torch.minimum(depth.view(-1).double(), t_exit), t_exit)
        length = (t_end * d.norm(dim=-1)).view(H, W)
        f = float(K[0, 0])
        vox = min(grid.voxel_size)

        def lattice(k: int) -> torch.Tensor:
            return (rows[:, None] % k == k // 2) & (cols[None] % k == k // 2)

        sel = (
            lattice(4 * s)
            | (lattice(2 * s) & (length > 0.8 * f * vox / (4 * s)))
            | (lattice(s) & (length > 0.8 * f * vox / (2 * s)))
        )
    uvs = uv[sel]
    d = pixel_rays(uvs, K) @ T[:3, :3].T
    d = d / d.norm(dim=-1, keepdim=True)
    return T[:3, 3].expand_as(d).contiguous(), d


#: The six face directions of a voxel, unit steps along +-x, +-y, +-z.
_FACES = ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1))


def exposed_faces(occupied: torch.Tensor) -> torch.Tensor:
    """Which faces of each voxel border a free voxel: ``(X, Y, Z, 6)`` bool in the order of
    ``_FACES``, False for free voxels (the grid's outside counts as occupied)."""
    occ = occupied.bool()
    free = torch.nn.functional.pad((~occ)[None, None].float(), (1, 1, 1, 1, 1, 1), value=0.0)[0, 0] > 0
    X, Y, Z = occ.shape
    faces = [free[1 + dx : 1 + dx + X, 1 + dy : 1 + dy + Y, 1 + dz : 1 + dz + Z] for dx, dy, dz in _FACES]
    return torch.stack(faces, -1) & occ[..., None]


def voxel_center_rays(
    K: torch.Tensor, T_ego_from_cam: torch.Tensor, image_hw: tuple[int, int], grid: Grid, occupied: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Occ3D's camera rays: from the camera centre to every occupied voxel that projects inside
    the image (surface voxels only: a ray to an interior voxel ends on the surface anyway).

    Each ray aims just inside the voxel's exposed face that looks most towards the camera (the
    centre moved 0.45 voxel towards that free neighbour), not at the centre: at grazing angles a
    ray aimed at the centre of a ground voxel enters the neighbouring ground voxel first, and the
    voxel's visible top is never reached. Unlike pixel rays, these reach every visible voxel
    whatever the image resolution (at 96x256 one pixel row spans metres of road 30 m ahead, and
    pixel rays alone leave stripes of unobserved ground).

    Args:
        K: ``(3, 3)``; T_ego_from_cam: ``(4, 4)``; image_hw: (H, W); occupied: ``(X, Y, Z)`` bool.
    Returns:
        origins, dirs: ``(R, 3)`` float64 in the grid (ego) frame, unit directions.
    """
    check_shape(occupied, "X Y Z", name="occupied", dims=dict(zip("XYZ", grid.shape)))
    H, W = image_hw
    T = T_ego_from_cam.double()
    cam = T[:3, 3]
    faces = exposed_faces(occupied)
    idx = faces.any(-1).nonzero()  # (V, 3) surface voxels
    centres = grid.index_to_point(idx, dtype=torch.float64)
    normals = torch.tensor(_FACES, dtype=torch.float64)  # (6, 3)
    facing_camera = (cam - centres) @ normals.T  # (V, 6): > 0 where the face looks towards the camera
    facing_camera[~faces[idx[:, 0], idx[:, 1], idx[:, 2]]] = -float("inf")
    best = normals[facing_camera.argmax(-1)]  # (V, 3)
    targets = centres + 0.45 * best * torch.tensor(grid.voxel_size, dtype=torch.float64)
    p_cam = apply_transform(invert_transform(T), targets)
    uv, z = project(p_cam, K.double())
    inside = (z > 1e-3) & (uv[:, 0] >= 0) & (uv[:, 0] < W) & (uv[:, 1] >= 0) & (uv[:, 1] < H)
    d = targets[inside] - cam
    d = d / d.norm(dim=-1, keepdim=True)
    return cam.expand_as(d).contiguous(), d


def auto_mask_stride(K: torch.Tensor, grid: Grid) -> int:
    """Pixel stride so that neighbouring camera rays are less than one voxel apart at the far
    corner of the grid (horizontal extent) from a camera near the grid centre."""
    reach = math.hypot(
        max(abs(grid.range_min[0]), abs(grid.range_max[0])), max(abs(grid.range_min[1]), abs(grid.range_max[1]))
    )
    f = float(K[0, 0])
    return max(1, int(f * min(grid.voxel_size) / reach))
