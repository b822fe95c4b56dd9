"""`Sample` (one frame) and `Batch` (a collated list of frames): typed, named fields.

Shapes (N = cameras, H x W image, X x Y x Z grid, P LiDAR points):

- images: ``(N, 3, H, W)`` float32 in [0, 1]
- intrinsics: ``(N, 3, 3)`` float32
- T_ego_from_cam: ``(N, 4, 4)`` float32, camera (OpenCV) -> ego
- T_global_from_ego: ``(4, 4)`` float64 (global coordinates are large: keep the precision)
- occupancy: ``(X, Y, Z)`` long class ids (17 = free for Occ3D)
- mask_camera, mask_lidar: ``(X, Y, Z)`` bool
- lidar: ``(P, 4)`` float32 (x, y, z, intensity) in the ego frame; lidar_labels ``(P,)`` long
- T_ego_from_lidar: ``(4, 4)`` float32
- depth: ``(N, H, W)`` float32 metres (0 = no hit); semantics_2d ``(N, H, W)`` long;
  instance_2d ``(N, H, W)`` long
- 2D priors (:mod:`occkit.priors`, attached from a cache when ``data.priors`` is set):
  prior_semantics ``(N, H, W)`` long (0..16 Occ3D, 17 sky, 255 unknown), prior_confidence
  ``(N, H, W)`` float32, prior_segments ``(N, H, W)`` long (0 = none), prior_depth ``(N, H, W)``
  float32 metres (0 = unknown), prior_features ``(N, D, h, w)`` float32 at stride
  ``prior_feature_stride`` (``h = ceil(H / s)``)
- neighbouring keyframes' priors (:class:`occkit.data.temporal.WithTemporalPriors`, LangOcc's
  temporal rays; T offsets): temporal_features ``(T, N, D, h, w)`` float16 (stride
  ``prior_feature_stride``), temporal_intrinsics ``(T, N, 3, 3)`` float32 of unaugmented
  ``temporal_image_hw`` images, temporal_T_ego_from_cam ``(T, N, 4, 4)`` float32 (neighbour
  camera -> the frame's ego frame), temporal_offsets ``(T,)`` long (after clamping at scene ends),
  temporal_T_ego_from_ego ``(T, 4, 4)`` float32 (neighbour's ego frame -> the frame's) and, when
  the frames carry LiDAR, temporal_lidar: T tensors ``(P_t, 4)`` float32, each neighbour's own
  key-frame LiDAR in *its own* ego frame (a list per frame in a `Batch`)

A `Batch` has the same fields with a leading ``B`` axis, except the LiDAR fields, which stay
lists (one tensor per frame) since their lengths differ. Optional fields are ``None`` when any
frame lacks them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch


@dataclass
class Sample:
    token: str
    scene: str
    timestamp: int
    cam_names: tuple[str, ...]
    images: torch.Tensor
    intrinsics: torch.Tensor
    T_ego_from_cam: torch.Tensor
    T_global_from_ego: torch.Tensor
    occupancy: torch.Tensor | None = None
    mask_camera: torch.Tensor | None = None
    mask_lidar: torch.Tensor | None = None
    lidar: torch.Tensor | None = None
    lidar_labels: torch.Tensor | None = None
    T_ego_from_lidar: torch.Tensor | None = None
    depth: torch.Tensor | None = None
    semantics_2d: torch.Tensor | None = None
    instance_2d: torch.Tensor | None = None
    prior_semantics: torch.Tensor | None = None
    prior_confidence: torch.Tensor | None = None
    prior_segments: torch.Tensor | None = None
    prior_depth: torch.Tensor | None = None
    prior_features: torch.Tensor | None = None
    prior_feature_stride: int = 0
    temporal_features: torch.Tensor | None = None
    temporal_intrinsics: torch.Tensor | None = None
    temporal_T_ego_from_cam: torch.Tensor | None = None
    temporal_offsets: torch.Tensor | None = None
    temporal_image_hw: tuple[int, int] | None = None
    temporal_T_ego_from_ego: torch.Tensor | None = None
    temporal_lidar: list[torch.Tensor] | None = None
    description: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


#: Fields stacked along a new batch axis.
_STACKED = (
    "images", "intrinsics", "T_ego_from_cam", "T_global_from_ego", "occupancy", "mask_camera",
    "mask_lidar", "depth", "semantics_2d", "instance_2d", "T_ego_from_lidar",
    "prior_semantics", "prior_confidence", "prior_segments", "prior_depth", "prior_features",
    "temporal_features", "temporal_intrinsics", "temporal_T_ego_from_cam", "temporal_offsets",
    "temporal_T_ego_from_ego",
)
#: Fields kept as lists.
_LISTED = ("lidar", "lidar_labels", "temporal_lidar")


@dataclass
class Batch:
    """A batch of ``B`` frames; see the module docstring for shapes (with a leading ``B``)."""

    tokens: list[str]
    scenes: list[str]
    timestamps: list[int]
    cam_names: tuple[str, ...]
    images: torch.Tensor
    intrinsics: torch.Tensor
    T_ego_from_cam: torch.Tensor
    T_global_from_ego: torch.Tensor
    occupancy: torch.Tensor | None = None
    mask_camera: torch.Tensor | None = None
    mask_lidar: torch.Tensor | None = None
    lidar: list[torch.Tensor] | None = None
    lidar_labels: list[torch.Tensor] | None = None
    T_ego_from_lidar: torch.Tensor | None = None
    depth: torch.Tensor | None = None
    semantics_2d: torch.Tensor | None = None
    instance_2d: torch.Tensor | None = None
    prior_semantics: torch.Tensor | None = None
    prior_confidence: torch.Tensor | None = None
    prior_segments: torch.Tensor | None = None
    prior_depth: torch.Tensor | None = None
    prior_features: torch.Tensor | None = None
    prior_feature_stride: int = 0
    temporal_features: torch.Tensor | None = None
    temporal_intrinsics: torch.Tensor | None = None
    temporal_T_ego_from_cam: torch.Tensor | None = None
    temporal_offsets: torch.Tensor | None = None
    temporal_image_hw: tuple[int, int] | None = None
    temporal_T_ego_from_ego: torch.Tensor | None = None
    temporal_lidar: list[list[torch.Tensor]] | None = None
    descriptions: list[str | None] = field(default_factory=list)
    extra: list[dict[str, Any]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.tokens)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        """A copy with every tensor moved to ``device`` (T_global_from_ego keeps float64)."""
        changes: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, torch.Tensor):
                changes[f.name] = v.to(device, non_blocking=non_blocking)
            elif isinstance(v, list) and v and isinstance(v[0], torch.Tensor):
                changes[f.name] = [t.to(device, non_blocking=non_blocking) for t in v]
            elif isinstance(v, list) and v and isinstance(v[0], list):  # temporal_lidar: per frame, per neighbour
                changes[f.name] = [[t.to(device, non_blocking=non_blocking) for t in per] for per in v]
        return replace(self, **changes)


def collate(samples: list[Sample]) -> Batch:
    """Stack a list of samples into a :class:`Batch` (a ``DataLoader`` ``collate_fn``)."""
    if not samples:
        raise ValueError("collate: empty list of samples")
    cams = samples[0].cam_names
    for s in samples:
        if s.cam_names != cams:
            raise ValueError(f"collate: frame {s.token} has cameras {s.cam_names}, expected {cams}")
    out: dict[str, Any] = {}
    for name in _STACKED:
        vals = [getattr(s, name) for s in samples]
        if any(v is None for v in vals):
            out[name] = None
            continue
        shapes = {tuple(v.shape) for v in vals}
        if len(shapes) != 1:
            raise ValueError(f"collate: field {name} has different shapes across frames: {sorted(shapes)}")
        out[name] = torch.stack(vals)
    for name in _LISTED:
        vals = [getattr(s, name) for s in samples]
        out[name] = None if any(v is None for v in vals) else vals
    strides = {s.prior_feature_stride for s in samples}
    if len(strides) != 1:
        raise ValueError(f"collate: frames have prior features at different strides {sorted(strides)}")
    sizes = {s.temporal_image_hw for s in samples}
    if len(sizes) != 1 and None not in sizes:
        raise ValueError(f"collate: frames have neighbour images of different sizes (temporal_image_hw) {sorted(sizes)}")
    temporal_hw = None if None in sizes else samples[0].temporal_image_hw
    return Batch(
        tokens=[s.token for s in samples],
        prior_feature_stride=samples[0].prior_feature_stride,
        temporal_image_hw=temporal_hw,
        scenes=[s.scene for s in samples],
        timestamps=[s.timestamp for s in samples],
        cam_names=cams,
        descriptions=[s.description for s in samples],
        extra=[s.extra for s in samples],
        **out,
    )
