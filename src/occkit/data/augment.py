"""Image and BEV augmentation of a :class:`~occkit.data.sample.Sample` (before collate).

Every function returns a new ``Sample`` and keeps the geometry consistent:

- **Image** (:func:`resize_crop_flip`, :func:`augment_images`): per camera, resize by
  ``(sx, sy)``, crop (or zero-pad) a window of the output size at ``(left, top)``, optionally flip
  horizontally. ``intrinsics`` follow: ``K' = F @ crop(scale(K))`` with ``F = [[-1, 0, W], [0, 1, 0],
  [0, 0, 1]]`` when flipped (``fx`` turns negative; projection and ``pixel_rays`` stay exact). The
  per-pixel maps ``depth`` / ``semantics_2d`` / ``instance_2d`` and the priors' ``prior_semantics``
  / ``prior_confidence`` / ``prior_segments`` / ``prior_depth`` are warped the same way (nearest;
  pixels from outside the image get 255 = unknown for ``prior_semantics``, 0 otherwise), and
  ``prior_features`` (stride ``s``) bilinearly at its own stride: resized to ``(h/s, w/s)``, cropped
  at ``(left/s, top/s)`` (rounded: within half a feature cell of the exact window), renormalised.
  ``T_ego_from_cam`` is unchanged.
- **BEV** (:func:`bev_matrix`, :func:`apply_bev_transform`, :func:`augment_bev`): a map ``A`` of the
  ego frame (flip x, flip y, rotation about z) with ``p_new = A p_old``. ``T_ego_from_cam`` and
  ``T_ego_from_lidar`` (and the neighbour cameras' ``temporal_T_ego_from_cam`` and neighbour ego
  frames' ``temporal_T_ego_from_ego``; the neighbours' ``temporal_lidar`` stays in their own frames)
  become ``A @ T``, LiDAR points ``A p``, ``T_global_from_ego`` becomes ``T_global_from_ego @ A^-1``
  (global positions unchanged), and ``occupancy`` / masks are resampled: new voxel ``v`` takes the
  old voxel containing ``A^-1 centre(v)`` (exact for flips and multiples of 90 degrees on grids
  symmetric about the origin in x and y, nearest otherwise); voxels from outside the old grid become
  ``free`` with masks false. With a flip, ``A`` (and so ``T_ego_from_cam``) has
  determinant -1: still orthogonal, so ``invert_transform`` stays valid.

The applied parameters are recorded in ``sample.extra["augment"]`` (a new dict; the input sample is
never modified). Random variants are deterministic given a ``torch.Generator``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F

from occkit.data.sample import Sample
from occkit.geometry.camera import crop_intrinsics, scale_intrinsics
from occkit.geometry.grid import Grid, occ3d_grid
from occkit.shapes import check_shape


@dataclass
class ImageAugConfig:
    """Image augmentation; the defaults are the deterministic evaluation transform."""

    out_hw: tuple[int, int] = (256, 704)
    """Network input (H, W)."""
    resize_range: tuple[float, float] = (1.0, 1.0)
    """Random factor on the base scale ``max(H_out / H, W_out / W)`` (which fills the output)."""
    crop_left_range: tuple[float, float] = (0.5, 0.5)
    """Crop left edge as a fraction of the horizontal slack (0 = left, 0.5 = centred)."""
    crop_top_range: tuple[float, float] = (1.0, 1.0)
    """Crop top edge as a fraction of the vertical slack (1 = keep the bottom, drop the sky)."""
    flip_prob: float = 0.0
    """Probability of a horizontal flip, drawn per camera."""

    def evaluation(self) -> ImageAugConfig:
        """The deterministic transform for evaluation and inference: the middle of each training
        range (resize factor, crop position), no flip. A model trained on, say, a band cropped
        around the horizon is evaluated on that same band."""

        def mid(r: tuple[float, float]) -> tuple[float, float]:
            return (0.5 * (r[0] + r[1]),) * 2

        return ImageAugConfig(
            out_hw=tuple(self.out_hw),
            resize_range=mid(self.resize_range),
            crop_left_range=mid(self.crop_left_range),
            crop_top_range=mid(self.crop_top_range),
            flip_prob=0.0,
        )


@dataclass
class BEVAugConfig:
    """BEV (ego-frame) augmentation; defaults do nothing."""

    flip_x_prob: float = 0.0
    """Probability of x -> -x."""
    flip_y_prob: float = 0.0
    """Probability of y -> -y."""
    rot90: bool = False
    """Rotate by a random multiple of 90 degrees about z."""
    max_yaw_deg: float = 0.0
    """Extra uniform rotation in [-max, max] degrees (voxels resampled by nearest neighbour)."""


#: Per-pixel maps warped with the images (nearest), and the value of pixels from outside the image.
_PIXEL_MAPS: dict[str, float] = {
    "depth": 0.0,
    "semantics_2d": 0.0,
    "instance_2d": 0.0,
    "prior_semantics": 255.0,
    "prior_confidence": 0.0,
    "prior_segments": 0.0,
    "prior_depth": 0.0,
}


def _uniform(lo: float, hi: float, generator: torch.Generator | None) -> float:
    if hi < lo:
        raise ValueError(f"range ({lo}, {hi}) is empty")
    return lo + (hi - lo) * float(torch.rand((), generator=generator))


def _bernoulli(p: float, generator: torch.Generator | None) -> bool:
    return p > 0 and float(torch.rand((), generator=generator)) < p


def _warp(
    x: torch.Tensor,
    size: tuple[int, int],
    left: int,
    top: int,
    out_hw: tuple[int, int],
    flip: bool,
    mode: str,
    fill: float = 0.0,
) -> torch.Tensor:
    """Resize ``x (C, H, W)`` to ``size``, take the window ``[top, top+H_out) x [left, left+W_out)``
    (``fill`` outside), flip horizontally if asked: ``(C, H_out, W_out)``."""
    dtype = x.dtype
    y = x if x.is_floating_point() else x.double()
    if tuple(y.shape[-2:]) != size:
        if mode == "bilinear":
            y = F.interpolate(y[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0]
        else:
            y = F.interpolate(y[None], size=size, mode="nearest-exact")[0]
    Ho, Wo = out_hw
    out = y.new_full((y.shape[0], Ho, Wo), fill)
    h, w = size
    y0, y1 = max(top, 0), min(top + Ho, h)
    x0, x1 = max(left, 0), min(left + Wo, w)
    if y1 > y0 and x1 > x0:
        out[:, y0 - top : y1 - top, x0 - left : x1 - left] = y[:, y0:y1, x0:x1]
    if flip:
        out = out.flip(-1)
    return out.to(dtype) if not x.is_floating_point() else out


def resize_view(
    image: torch.Tensor, K: torch.Tensor, hw: tuple[int, int], maps: dict[str, torch.Tensor] | None = None
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """One camera's image resized to ``hw`` (bilinear, antialiased; each axis by its own factor when
    the aspect ratios differ) with its intrinsics scaled to match, exactly: a point that projects
    to pixel ``(u, v)`` of the image projects to ``(u * sx, v * sy)`` of the resized one, with
    ``sx = W_new / W`` and ``sy = H_new / H`` (pixel-edge convention). Per-pixel ``maps`` (depth,
    2D semantics, ...) are resized by nearest neighbour. How a frame's cameras of different sizes
    come to one size (:class:`occkit.data.occ3d.Occ3DDataset`) before they are stacked.

    Args:
        image: ``(3, H, W)`` float. K: ``(3, 3)``. hw: the new ``(H_new, W_new)``.
        maps: ``{name: (H, W)}`` tensors.
    Returns:
        ``(image (3, H_new, W_new), K (3, 3), maps {name: (H_new, W_new)})``.
    """
    dims = check_shape(image, "3 H W", name="image")
    check_shape(K, "3 3", name="K")
    H, W = dims["H"], dims["W"]
    h, w = int(hw[0]), int(hw[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"hw: expected positive sizes, got {tuple(hw)}")
    out = _warp(image, (h, w), 0, 0, (h, w), False, "bilinear").clamp(0, 1)
    new_maps = {}
    for k, v in (maps or {}).items():
        check_shape(v, "H W", name=k, dims={"H": H, "W": W})
        new_maps[k] = _warp(v[None], (h, w), 0, 0, (h, w), False, "nearest")[0]
    return out, scale_intrinsics(K, w / W, h / H), new_maps


def resize_crop_flip(
    sample: Sample,
    out_hw: tuple[int, int],
    sizes: list[tuple[int, int]],
    crops: list[tuple[int, int]],
    flips: list[bool],
) -> Sample:
    """Deterministic per-camera resize, crop and flip.

    Args:
        sample: with ``images (N, 3, H, W)``.
        out_hw: output (H_out, W_out).
        sizes: per camera, the resized (h, w) before cropping.
        crops: per camera, (left, top) of the output window in the resized image (may be negative
            or beyond the image: zero padding).
        flips: per camera, flip horizontally after cropping.
    Returns:
        a new Sample with images ``(N, 3, H_out, W_out)`` and intrinsics, depth, semantics_2d and
        instance_2d updated.
    """
    dims = check_shape(sample.images, "N 3 H W", name="sample.images")
    N, H, W = dims["N"], dims["H"], dims["W"]
    check_shape(sample.intrinsics, "N 3 3", name="sample.intrinsics", dims={"N": N})
    for name, v in (("sizes", sizes), ("crops", crops), ("flips", flips)):
        if len(v) != N:
            raise ValueError(f"{name}: expected one entry per camera ({N}), got {len(v)}")
    Ho, Wo = out_hw
    if Ho <= 0 or Wo <= 0:
        raise ValueError(f"out_hw: expected positive sizes, got {out_hw}")
    maps = {k: getattr(sample, k) for k in _PIXEL_MAPS if getattr(sample, k) is not None}
    for k, v in maps.items():
        check_shape(v, "N H W", name=f"sample.{k}", dims=dims)
    feats = sample.prior_features
    fs = sample.prior_feature_stride
    if feats is not None:
        check_shape(feats, "N D h w", name="sample.prior_features", dims={"N": N, "h": -(-H // fs), "w": -(-W // fs)})
    new_feats: list[torch.Tensor] = []
    images, Ks = [], []
    new_maps: dict[str, list[torch.Tensor]] = {k: [] for k in maps}
    for i in range(N):
        (h, w), (left, top), flip = sizes[i], crops[i], flips[i]
        if h <= 0 or w <= 0:
            raise ValueError(f"sizes[{i}]: expected positive sizes, got {(h, w)}")
        images.append(_warp(sample.images[i], (h, w), left, top, out_hw, flip, "bilinear"))
        K = crop_intrinsics(scale_intrinsics(sample.intrinsics[i], w / W, h / H), left, top)
        if flip:
            Fm = torch.tensor([[-1.0, 0.0, Wo], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=K.dtype, device=K.device)
            K = Fm @ K
        Ks.append(K)
        for k, v in maps.items():
            new_maps[k].append(_warp(v[i][None], (h, w), left, top, out_hw, flip, "nearest", _PIXEL_MAPS[k])[0])
        if feats is not None:
            f = _warp(
                feats[i],
                (max(1, round(h / fs)), max(1, round(w / fs))),
                round(left / fs),
                round(top / fs),
                (-(-Ho // fs), -(-Wo // fs)),
                flip,
                "bilinear",
            )
            new_feats.append(f / f.norm(dim=0, keepdim=True).clamp_min(1e-12))
    record = {"sizes": list(sizes), "crops": list(crops), "flips": list(flips), "out_hw": tuple(out_hw)}
    extra = dict(sample.extra)
    extra["augment"] = {**extra.get("augment", {}), "image": record}
    return replace(
        sample,
        images=torch.stack(images).clamp(0, 1),
        intrinsics=torch.stack(Ks),
        extra=extra,
        **{k: torch.stack(v) for k, v in new_maps.items()},
        **({"prior_features": torch.stack(new_feats)} if feats is not None else {}),
    )


def augment_images(sample: Sample, cfg: ImageAugConfig, generator: torch.Generator | None = None) -> Sample:
    """Draw per-camera resize / crop / flip parameters from ``cfg`` and apply them.

    With the default ranges (single values) the result does not depend on ``generator``.
    """
    check_shape(sample.images, "N 3 H W", name="sample.images")
    N, _, H, W = sample.images.shape
    Ho, Wo = cfg.out_hw
    base = max(Ho / H, Wo / W)
    sizes, crops, flips = [], [], []
    for _ in range(N):
        s = base * _uniform(*cfg.resize_range, generator)
        h, w = max(1, round(H * s)), max(1, round(W * s))
        left = round((w - Wo) * _uniform(*cfg.crop_left_range, generator))
        top = round((h - Ho) * _uniform(*cfg.crop_top_range, generator))
        sizes.append((h, w))
        crops.append((left, top))
        flips.append(_bernoulli(cfg.flip_prob, generator))
    return resize_crop_flip(sample, (Ho, Wo), sizes, crops, flips)


def bev_matrix(flip_x: bool = False, flip_y: bool = False, yaw: float = 0.0, dtype=torch.float64) -> torch.Tensor:
    """``A = R_z(yaw) @ diag(sx, sy, 1)`` as ``(4, 4)`` (``sx = -1`` when flip_x ...), p_new = A p_old.

    Rotations by multiples of 90 degrees are built with exact 0/1 entries.
    """
    c, s = math.cos(yaw), math.sin(yaw)
    k = yaw / (math.pi / 2)
    if abs(k - round(k)) < 1e-9:
        c, s = float(round(c)), float(round(s))
    A = torch.eye(4, dtype=dtype)
    A[:3, :3] = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=dtype) @ torch.diag(
        torch.tensor([-1.0 if flip_x else 1.0, -1.0 if flip_y else 1.0, 1.0], dtype=dtype)
    )
    return A


def apply_bev_transform(sample: Sample, A: torch.Tensor, grid: Grid | None = None, *, free: int) -> Sample:
    """Apply the ego-frame map ``A (4, 4)`` (rotation about z and/or x/y flips) to a sample.

    Args:
        grid: the grid of ``sample.occupancy`` (default Occ3D); its shape must match.
        free: the free class, given to voxels that come from outside the grid.
    """
    check_shape(A, "4 4", name="A")
    R = A[:3, :3].double()
    if (
        not torch.allclose(R @ R.T, torch.eye(3, dtype=R.dtype), atol=1e-6)
        or abs(float(R[2, 2]) - 1) > 1e-6
        or bool(A[:3, 3].abs().max() > 0)
    ):
        raise ValueError(
            "A: expected an orthogonal map of the ego frame about z (rotation / x, y flips) without translation"
        )
    check_shape(sample.T_ego_from_cam, "N 4 4", name="sample.T_ego_from_cam")
    A_inv = A.double().clone()
    A_inv[:3, :3] = R.T
    changes: dict[str, Any] = {}
    changes["T_ego_from_cam"] = (A.double() @ sample.T_ego_from_cam.double()).to(sample.T_ego_from_cam.dtype)
    if (
        sample.temporal_T_ego_from_cam is not None
    ):  # neighbour cameras (LangOcc temporal rays) live in this ego frame too
        T_nbr = sample.temporal_T_ego_from_cam
        changes["temporal_T_ego_from_cam"] = (A.double() @ T_nbr.double()).to(T_nbr.dtype)
    if sample.temporal_T_ego_from_ego is not None:
        T_nbr = sample.temporal_T_ego_from_ego
        changes["temporal_T_ego_from_ego"] = (A.double() @ T_nbr.double()).to(T_nbr.dtype)
    changes["T_global_from_ego"] = (sample.T_global_from_ego.double() @ A_inv).to(sample.T_global_from_ego.dtype)
    if sample.T_ego_from_lidar is not None:
        changes["T_ego_from_lidar"] = (A.double() @ sample.T_ego_from_lidar.double()).to(sample.T_ego_from_lidar.dtype)
    if sample.lidar is not None:
        check_shape(sample.lidar, "P _", name="sample.lidar")
        xyz = (sample.lidar[:, :3].double() @ R.T).to(sample.lidar.dtype)
        changes["lidar"] = torch.cat([xyz, sample.lidar[:, 3:]], 1)
    vox = {k: getattr(sample, k) for k in ("occupancy", "mask_camera", "mask_lidar") if getattr(sample, k) is not None}
    if vox:
        grid = grid or occ3d_grid()
        for k, v in vox.items():
            check_shape(v, "X Y Z", name=f"sample.{k}", dims=dict(zip("XYZ", grid.shape)))
        centers = grid.centers(dtype=torch.float64)  # (X, Y, Z, 3) new voxel centres
        old = centers @ R  # A^-1 c = R^T c, as rows: c @ R
        idx, valid = grid.point_to_index(old)  # (X, Y, Z, 3), (X, Y, Z)
        idx = torch.where(valid[..., None], idx, torch.zeros_like(idx))
        for k, v in vox.items():
            g = v[idx[..., 0], idx[..., 1], idx[..., 2]]
            fill = torch.full_like(g, free) if k == "occupancy" else torch.zeros_like(g)
            changes[k] = torch.where(valid, g, fill)
    extra = dict(sample.extra)
    prev = extra.get("augment", {}).get("bev")
    total = A.double() if prev is None else A.double() @ prev
    extra["augment"] = {**extra.get("augment", {}), "bev": total}
    changes["extra"] = extra
    return replace(sample, **changes)


def augment_bev(
    sample: Sample,
    cfg: BEVAugConfig,
    generator: torch.Generator | None = None,
    grid: Grid | None = None,
    *,
    free: int,
) -> Sample:
    """Draw flips / rotation from ``cfg`` and apply them with :func:`apply_bev_transform`."""
    flip_x = _bernoulli(cfg.flip_x_prob, generator)
    flip_y = _bernoulli(cfg.flip_y_prob, generator)
    yaw = 0.0
    if cfg.rot90:
        yaw += (math.pi / 2) * int(torch.randint(0, 4, (), generator=generator))
    if cfg.max_yaw_deg > 0:
        yaw += math.radians(_uniform(-cfg.max_yaw_deg, cfg.max_yaw_deg, generator))
    if not (flip_x or flip_y or yaw):
        return sample
    return apply_bev_transform(sample, bev_matrix(flip_x, flip_y, yaw), grid, free=free)
