"""Depth supervision of the LSS depth distribution.

Targets are one depth bin per feature pixel (``-1`` where there is none), BEVDet-style: the
*smallest* depth of the points (or depth-map pixels) falling into the feature pixel's
``stride x stride`` footprint, which is the visible surface. Two sources:

- :func:`lidar_depth_targets`: LiDAR points (ego frame) projected into each camera — the real-data
  source (nuScenes LiDAR);
- :func:`depth_map_targets`: dense per-pixel depth maps (``Batch.depth``, the synthetic world's
  extras; 0 = no hit).

A feature pixel whose nearest depth lies outside ``[d_min, d_max)`` gets no target (it is not
moved to a far point behind it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from occkit.geometry.camera import project
from occkit.geometry.transforms import apply_transform, invert_transform
from occkit.shapes import check_shape

#: How one depth target is drawn from the depths inside a feature pixel's ``stride x stride`` block.
#: 'nearest' (BEVDet, BEVDepth): the smallest. 'median': the lower median. The lift places the
#: feature along the ray through the block's centre; on ground seen at a grazing angle the block
#: spans metres of depth (at stride 8 a block 30 m away reaches from about 25 to 37 m), and the
#: nearest depth is its lower edge, metres short of where the centre ray meets the ground. The
#: median is about the centre's depth there, and the object's depth where an object fills most
#: of the block.
DEPTH_POOLS: tuple[str, ...] = ("nearest", "median")


def _check_pool(pool: str) -> None:
    if pool not in DEPTH_POOLS:
        raise ValueError(f"pool: expected one of {DEPTH_POOLS}, got {pool!r}")


def depth_to_bin(depth: torch.Tensor, depth_range: tuple[float, float, float]) -> torch.Tensor:
    """Bin index ``floor((d - d_min) / d_step)`` of depths (any shape); -1 outside ``[d_min, d_max)``
    or where ``depth`` is not finite."""
    d_min, d_max, d_step = depth_range
    n = int(round((d_max - d_min) / d_step))
    b = torch.floor((depth - d_min) / d_step)
    ok = torch.isfinite(depth) & (depth >= d_min) & (depth < d_max)
    b = torch.where(ok, b, torch.full_like(b, -1)).long()
    return b.clamp(max=n - 1)


def _check_points_and_cameras(points: torch.Tensor, intrinsics: torch.Tensor, T_ego_from_cam: torch.Tensor) -> None:
    """``points: (P, 3+)``, ``intrinsics: (N, 3, 3)``, ``T_ego_from_cam: (N, 4, 4)``, or a ``ValueError``
    naming the tensor."""
    check_shape(points, "P _", name="points")
    if points.shape[1] < 3:
        raise ValueError(f"points: expected at least 3 columns (x, y, z), got {points.shape[1]}")
    dims = check_shape(intrinsics, "N 3 3", name="intrinsics")
    check_shape(T_ego_from_cam, "N 4 4", name="T_ego_from_cam", dims=dims)


def lidar_depth_targets(
    points: torch.Tensor,
    intrinsics: torch.Tensor,
    T_ego_from_cam: torch.Tensor,
    image_hw: tuple[int, int],
    stride: int,
    depth_range: tuple[float, float, float],
    pool: str = "nearest",
) -> torch.Tensor:
    """Depth-bin targets of one frame from its LiDAR points.

    Args:
        points: ``(P, 3+)`` ego-frame points (extra columns such as intensity ignored).
        intrinsics: ``(N, 3, 3)`` of the network input images of size ``image_hw`` (H, W).
        T_ego_from_cam: ``(N, 4, 4)``.
        stride: feature stride (H and W multiples of it).
        depth_range: (d_min, d_max, d_step) metres.
        pool: which depth a feature pixel gets from the points that fall in its block: 'nearest'
            (BEVDet's smallest depth) or 'median' (the lower median; see :data:`DEPTH_POOLS`).
    Returns:
        ``(N, H/stride, W/stride)`` long bin index, -1 where no point falls.
    """
    _check_pool(pool)
    _check_points_and_cameras(points, intrinsics, T_ego_from_cam)
    H, W = image_hw
    if H % stride or W % stride:
        raise ValueError(f"image size {(H, W)} is not a multiple of the stride {stride}")
    N = intrinsics.shape[0]
    h, w = H // stride, W // stride
    xyz = points[:, :3].float()
    T_cam_from_ego = invert_transform(T_ego_from_cam.float())  # (N, 4, 4)
    cam = apply_transform(T_cam_from_ego, xyz.expand(N, -1, 3))  # (N, P, 3)
    uv, z = project(cam, intrinsics.float())  # (N, P, 2), (N, P)
    u, v = uv[..., 0], uv[..., 1]
    ok = (z > 1e-3) & (u >= 0) & (u < W) & (v >= 0) & (v < H)
    col = (u / stride).floor().long().clamp(0, w - 1)
    row = (v / stride).floor().long().clamp(0, h - 1)
    cam_idx = torch.arange(N, device=points.device)[:, None].expand_as(row)
    flat = (cam_idx * h + row) * w + col
    flat = torch.where(ok, flat, torch.full_like(flat, N * h * w))  # trash slot
    if pool == "median":
        flat, z = flat.reshape(-1), z.reshape(-1)
        by_depth = torch.argsort(z, stable=True)
        order = by_depth[torch.argsort(flat[by_depth], stable=True)]  # by block, then by depth
        counts = torch.bincount(flat, minlength=N * h * w + 1)[: N * h * w]
        starts = torch.cumsum(counts, 0) - counts
        mid = (starts + (counts - 1).clamp_min(0) // 2).clamp_max(max(len(order) - 1, 0))
        med = z[order][mid] if len(order) else torch.zeros_like(counts, dtype=z.dtype)
        med = torch.where(counts > 0, med, torch.full_like(med, float("inf")))
        return depth_to_bin(med.view(N, h, w), depth_range)
    nearest = torch.full((N * h * w + 1,), float("inf"), device=points.device)
    nearest = nearest.scatter_reduce(
        0, flat.reshape(-1), torch.where(ok, z, torch.full_like(z, float("inf"))).reshape(-1), reduce="amin"
    )
    return depth_to_bin(nearest[:-1].view(N, h, w), depth_range)


def lidar_depth_maps(
    points: torch.Tensor,
    intrinsics: torch.Tensor,
    T_ego_from_cam: torch.Tensor,
    image_hw: tuple[int, int],
    max_depth: float = float("inf"),
) -> torch.Tensor:
    """Sparse per-camera depth maps of one frame from its LiDAR points (the nearest point per pixel).

    Args:
        points: ``(P, 3+)`` ego-frame points (extra columns such as intensity ignored).
        intrinsics: ``(N, 3, 3)`` of the images of size ``image_hw`` (H, W).
        T_ego_from_cam: ``(N, 4, 4)``.
        max_depth: points farther (camera z, metres) are left out.
    Returns:
        ``(N, H, W)`` float32 camera z-depth in metres of the nearest point projecting into each
        pixel, 0 where none does.
    """
    _check_points_and_cameras(points, intrinsics, T_ego_from_cam)
    H, W = image_hw
    N = intrinsics.shape[0]
    cam = apply_transform(invert_transform(T_ego_from_cam.float()), points[:, :3].float().expand(N, -1, 3))  # (N, P, 3)
    uv, z = project(cam, intrinsics.float())  # (N, P, 2), (N, P)
    u, v = uv[..., 0].floor().long(), uv[..., 1].floor().long()
    ok = (z > 1e-3) & (z <= max_depth) & (u >= 0) & (u < W) & (v >= 0) & (v < H)
    cam_idx = torch.arange(N, device=points.device)[:, None].expand_as(u)
    flat = torch.where(ok, (cam_idx * H + v.clamp(0, H - 1)) * W + u.clamp(0, W - 1), torch.full_like(u, N * H * W))
    nearest = torch.full((N * H * W + 1,), float("inf"), device=points.device)
    nearest = nearest.scatter_reduce(
        0, flat.reshape(-1), torch.where(ok, z, torch.full_like(z, float("inf"))).reshape(-1), reduce="amin"
    )
    out = nearest[:-1].view(N, H, W)
    return torch.where(torch.isfinite(out), out, torch.zeros_like(out))


def depth_map_targets(
    depth: torch.Tensor,
    stride: int,
    depth_range: tuple[float, float, float],
    pool: str = "nearest",
) -> torch.Tensor:
    """Depth-bin targets from dense depth maps (0 or non-finite = no depth).

    Args:
        depth: ``(..., H, W)`` metres (camera z).
        pool: 'nearest' (the smallest valid depth of each block, BEVDet) or 'median' (the lower
            median of its valid depths); see :data:`DEPTH_POOLS`.
    Returns:
        ``(..., H/stride, W/stride)`` long bin index per block, -1 where the block has no valid depth.
    """
    _check_pool(pool)
    check_shape(depth, "... H W", name="depth")
    H, W = depth.shape[-2:]
    if H % stride or W % stride:
        raise ValueError(f"depth: size {(H, W)} is not a multiple of the stride {stride}")
    d = torch.where(torch.isfinite(depth) & (depth > 0), depth.float(), torch.full_like(depth.float(), float("inf")))
    lead = d.shape[:-2]
    d = d.reshape(-1, 1, H, W)
    if pool == "median":
        blocks = F.unfold(d, stride, stride=stride)  # (M, stride^2, h*w)
        blocks = torch.where(torch.isinf(blocks), torch.full_like(blocks, float("nan")), blocks)
        med = blocks.nanmedian(dim=1).values  # lower median of the valid depths; nan where none
        med = torch.where(torch.isnan(med), torch.full_like(med, float("inf")), med)
        return depth_to_bin(med.view(*lead, H // stride, W // stride), depth_range)
    nearest = -F.max_pool2d(-d, stride)  # (M, 1, h, w) min pooling; inf where no depth
    return depth_to_bin(nearest.view(*lead, H // stride, W // stride), depth_range)


def semantic_map_targets(semantics: torch.Tensor, stride: int, num_classes: int) -> torch.Tensor:
    """Class targets per feature pixel from dense 2D semantic maps: the majority class of each
    ``stride x stride`` block (ties go to the lower class id).

    Args:
        semantics: ``(..., H, W)`` integer class ids in ``[0, num_classes)``.
    Returns:
        ``(..., H/stride, W/stride)`` long.
    """
    check_shape(semantics, "... H W", name="semantics")
    H, W = semantics.shape[-2:]
    if H % stride or W % stride:
        raise ValueError(f"semantics: size {(H, W)} is not a multiple of the stride {stride}")
    lead = semantics.shape[:-2]
    sem = semantics.reshape(-1, H, W).long()
    if sem.numel() and (int(sem.min()) < 0 or int(sem.max()) >= num_classes):
        raise ValueError(f"semantics: class ids must lie in [0, {num_classes})")
    M, h, w = sem.shape[0], H // stride, W // stride
    # Votes per (map, block, class) counted with one scatter-add, not a one-hot of every pixel.
    rows = torch.arange(H, device=sem.device) // stride
    cols = torch.arange(W, device=sem.device) // stride
    block = (rows[:, None] * w + cols[None, :]).expand(M, H, W)  # (M, H, W) block of each pixel
    slot = (torch.arange(M, device=sem.device)[:, None, None] * (h * w) + block) * num_classes + sem
    votes = torch.zeros(M * h * w * num_classes, dtype=torch.int32, device=sem.device)
    votes.scatter_add_(0, slot.reshape(-1), torch.ones(slot.numel(), dtype=torch.int32, device=sem.device))
    return votes.view(M, h, w, num_classes).argmax(-1).view(*lead, h, w)


def depth_loss(depth_prob: torch.Tensor, target: torch.Tensor, mode: str = "bce") -> torch.Tensor:
    """Loss of the predicted depth distribution against target bins.

    ``mode="bce"`` (BEVDet): binary cross-entropy of every bin against the one-hot target, summed
    over bins and averaged over pixels with a target; ``mode="ce"``: ``-log p[target]`` averaged
    over those pixels. 0 (still differentiable) when no pixel has a target; NaN when a
    probability is not finite (``binary_cross_entropy`` would raise instead).

    Args:
        depth_prob: ``(B, N, D, h, w)`` probabilities over D.
        target: ``(B, N, h, w)`` long bin index, -1 = none.
    Returns:
        scalar.
    """
    dims = check_shape(depth_prob, "B N D h w", name="depth_prob")
    check_shape(target, "B N h w", name="target", dims={k: dims[k] for k in ("B", "N", "h", "w")})
    if mode not in ("bce", "ce"):
        raise ValueError(f"mode: expected 'bce' or 'ce', got {mode!r}")
    D = dims["D"]
    if bool((target >= D).any()) or bool((target < -1).any()):
        raise ValueError(f"target: bins must lie in [-1, {D})")
    valid = target >= 0  # (B, N, h, w)
    n = valid.sum()
    if int(n) == 0:
        return depth_prob.sum() * 0.0
    p = depth_prob.movedim(2, -1)[valid]  # (M, D)
    t = target[valid]  # (M,)
    if mode == "ce":
        return -torch.log(p.gather(1, t[:, None]).clamp_min(1e-12)).mean()
    if not bool(torch.isfinite(p).all()):  # a diverged network: a NaN loss, which the trainer reports in one line
        return p.float().sum() * float("nan")
    onehot = F.one_hot(t, D).to(p.dtype)
    with torch.autocast(device_type=p.device.type, enabled=False):
        bce = F.binary_cross_entropy(p.float().clamp(1e-7, 1 - 1e-7), onehot.float(), reduction="sum")
    return bce / n
