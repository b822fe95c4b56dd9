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
- the same neighbours' features gathered at their own LiDAR pixels instead of whole maps
  (``langocc.temporal_gather: lidar_pixels``): temporal_pixels, T tensors ``(P_t, 3)`` long
  ``(cam, row, col)`` of the neighbour's cameras, and temporal_pixel_features, T tensors
  ``(P_t, D)`` float16, the features bilinearly sampled there (a list per frame in a `Batch`);
  temporal_features and temporal_lidar are then None

A `Batch` has the same fields with a leading ``B`` axis, except the LiDAR fields and the gathered
neighbour pixels, which stay lists (one entry per frame) since their lengths differ. Optional fields
are ``None`` when any frame lacks them.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields, make_dataclass, replace
from typing import Any

import torch

#: The nuScenes camera order occkit uses everywhere (Occ3D-nuScenes' cameras, a run's default
#: ``data.cameras``).
NUSCENES_CAMERAS: tuple[str, ...] = (
    "CAM_FRONT",
    "CAM_FRONT_RIGHT",
    "CAM_FRONT_LEFT",
    "CAM_BACK",
    "CAM_BACK_LEFT",
    "CAM_BACK_RIGHT",
)


def _in_batch(how: str, name: str | None = None) -> dict[str, str]:
    """A :class:`Sample` field's metadata: how frames combine into a :class:`Batch` field
    (``stack``: along a new first axis, None when any frame lacks it; ``list``: one per frame,
    None when any frame lacks it; ``each``: one per frame, always a list; ``same``: one value
    for the batch) and that field's name (default: the same)."""
    return {"batch": how, "batch_name": name or ""}


@dataclass
class Sample:
    """One frame; see the module docstring for shapes. Each field says how it enters a
    :class:`Batch`, which is made from this one list of fields."""

    token: str = field(metadata=_in_batch("each", "tokens"))
    scene: str = field(metadata=_in_batch("each", "scenes"))
    timestamp: int = field(metadata=_in_batch("each", "timestamps"))
    cam_names: tuple[str, ...] = field(metadata=_in_batch("same"))
    images: torch.Tensor = field(metadata=_in_batch("stack"))
    intrinsics: torch.Tensor = field(metadata=_in_batch("stack"))
    T_ego_from_cam: torch.Tensor = field(metadata=_in_batch("stack"))
    T_global_from_ego: torch.Tensor = field(metadata=_in_batch("stack"))
    occupancy: torch.Tensor | None = field(default=None, metadata=_in_batch("stack"))
    mask_camera: torch.Tensor | None = field(default=None, metadata=_in_batch("stack"))
    mask_lidar: torch.Tensor | None = field(default=None, metadata=_in_batch("stack"))
    lidar: torch.Tensor | None = field(default=None, metadata=_in_batch("list"))
    lidar_labels: torch.Tensor | None = field(default=None, metadata=_in_batch("list"))
    T_ego_from_lidar: torch.Tensor | None = field(default=None, metadata=_in_batch("stack"))
    depth: torch.Tensor | None = field(default=None, metadata=_in_batch("stack"))
    semantics_2d: torch.Tensor | None = field(default=None, metadata=_in_batch("stack"))
    instance_2d: torch.Tensor | None = field(default=None, metadata=_in_batch("stack"))
    prior_semantics: torch.Tensor | None = field(default=None, metadata=_in_batch("stack"))
    prior_confidence: torch.Tensor | None = field(default=None, metadata=_in_batch("stack"))
    prior_segments: torch.Tensor | None = field(default=None, metadata=_in_batch("stack"))
    prior_depth: torch.Tensor | None = field(default=None, metadata=_in_batch("stack"))
    prior_features: torch.Tensor | None = field(default=None, metadata=_in_batch("stack"))
    prior_feature_stride: int = field(default=0, metadata=_in_batch("same"))
    temporal_features: torch.Tensor | None = field(default=None, metadata=_in_batch("stack"))
    temporal_intrinsics: torch.Tensor | None = field(default=None, metadata=_in_batch("stack"))
    temporal_T_ego_from_cam: torch.Tensor | None = field(default=None, metadata=_in_batch("stack"))
    temporal_offsets: torch.Tensor | None = field(default=None, metadata=_in_batch("stack"))
    temporal_image_hw: tuple[int, int] | None = field(default=None, metadata=_in_batch("same"))
    temporal_T_ego_from_ego: torch.Tensor | None = field(default=None, metadata=_in_batch("stack"))
    temporal_lidar: list[torch.Tensor] | None = field(default=None, metadata=_in_batch("list"))
    temporal_pixels: list[torch.Tensor] | None = field(default=None, metadata=_in_batch("list"))
    temporal_pixel_features: list[torch.Tensor] | None = field(default=None, metadata=_in_batch("list"))
    description: str | None = field(default=None, metadata=_in_batch("each", "descriptions"))
    extra: dict[str, Any] = field(default_factory=dict, metadata=_in_batch("each"))


def _batch_fields() -> list[tuple[str, str, Any]]:
    """The :class:`Batch` fields made from :class:`Sample`'s: (name, type, dataclass field)."""
    out = []
    for f in fields(Sample):
        how, name = f.metadata["batch"], f.metadata["batch_name"] or f.name
        optional = f.default is None
        if how == "stack":
            tp = "torch.Tensor | None" if optional else "torch.Tensor"
        elif how == "list":
            tp = f"list[{str(f.type).removesuffix(' | None')}] | None"
        elif how == "each":
            tp = f"list[{f.type}]"
        else:
            tp = str(f.type)
        if how == "each":
            spec = (
                field(default_factory=list) if f.default is not MISSING or f.default_factory is not MISSING else field()
            )
        else:
            spec = field() if f.default is MISSING and f.default_factory is MISSING else field(default=f.default)
        out.append((name, tp, spec))
    return out


class FrameList(torch.utils.data.Dataset):
    """A layout reader's frames as every reader answers for them: its ``frames`` (each with its
    ``token``) and ``_index`` (token -> position), which the reader sets, and its ``root``."""

    frames: list[Any]
    _index: dict[str, int]

    def __len__(self) -> int:
        return len(self.frames)

    def token(self, i: int) -> str:
        """Frame ``i``'s token, its name in predictions and reports."""
        return self.frames[i].token

    @property
    def tokens(self) -> list[str]:
        """Every frame's token, in order."""
        return [f.token for f in self.frames]

    def index_of(self, token: str) -> int:
        """The position of frame ``token``; a token the reader did not read raises naming its folder (and split)."""
        if token not in self._index:
            split = f" (split {self.split!r})" if getattr(self, "split", None) else ""
            raise KeyError(f"token {token!r} is not one of the {len(self.frames)} frames read from {self.root}{split}")
        return self._index[token]


class _BatchMethods:
    @property
    def size(self) -> int:
        return len(self.tokens)  # type: ignore[attr-defined]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """A copy with every tensor moved to ``device`` (T_global_from_ego keeps float64)."""
        changes: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if isinstance(v, torch.Tensor):
                changes[f.name] = v.to(device, non_blocking=non_blocking)
            elif isinstance(v, list) and v and isinstance(v[0], torch.Tensor):
                changes[f.name] = [t.to(device, non_blocking=non_blocking) for t in v]
            elif isinstance(v, list) and v and isinstance(v[0], list):  # per frame, per neighbour (temporal_*)
                changes[f.name] = [[t.to(device, non_blocking=non_blocking) for t in per] for per in v]
        return replace(self, **changes)  # type: ignore[type-var]


Batch = make_dataclass(
    "Batch",
    _batch_fields(),
    bases=(_BatchMethods,),
    namespace={
        "__module__": __name__,
        "__doc__": "A batch of ``B`` frames; see the module docstring for shapes (with a "
        "leading ``B``). Its fields are :class:`Sample`'s, as each one's metadata says (tokens, scenes, "
        "timestamps, descriptions: one per frame).",
    },
)


def collate(samples: list[Sample]) -> Batch:
    """Stack a list of samples into a :class:`Batch` (a ``DataLoader`` ``collate_fn``)."""
    if not samples:
        raise ValueError("collate: empty list of samples")
    cams = samples[0].cam_names
    for s in samples:
        if s.cam_names != cams:
            raise ValueError(f"collate: frame {s.token} has cameras {s.cam_names}, expected {cams}")
    strides = {s.prior_feature_stride for s in samples}
    if len(strides) != 1:
        raise ValueError(f"collate: frames have prior features at different strides {sorted(strides)}")
    sizes = {s.temporal_image_hw for s in samples}
    if len(sizes) != 1 and None not in sizes:
        raise ValueError(
            f"collate: frames have neighbour images of different sizes (temporal_image_hw) {sorted(sizes)}"
        )
    out: dict[str, Any] = {}
    for f in fields(Sample):
        how, name = f.metadata["batch"], f.metadata["batch_name"] or f.name
        vals = [getattr(s, f.name) for s in samples]
        if how == "same":
            out[name] = None if any(v is None for v in vals) else vals[0]
        elif how == "each":
            out[name] = vals
        elif any(v is None for v in vals):
            out[name] = None
        elif how == "list":
            out[name] = vals
        else:
            shapes = {tuple(v.shape) for v in vals}
            if len(shapes) != 1:
                raise ValueError(f"collate: field {f.name} has different shapes across frames: {sorted(shapes)}")
            out[name] = torch.stack(vals)
    return Batch(**out)
