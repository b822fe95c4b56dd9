"""What every metric shares: :class:`Targets` (the ground truth of a batch as a metric sees it)
and the :class:`Metric` protocol (a streaming accumulator). They live here, below the dataset
formats that list metrics, so that a metric module imports nothing above it; ``occkit.formats``
names them too (``from occkit.formats import Metric, Targets``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch

#: The summary lines ``occkit eval`` prints by default (those present in a result, in this order).
TABLE_KEYS: tuple[str, ...] = (
    "miou",
    "geometry_iou",
    "geometry_precision",
    "geometry_recall",
    "rayiou",
    "rayiou@1",
    "rayiou@2",
    "rayiou@4",
)


@dataclass
class Targets:
    """The ground truth of a batch of frames, as a metric sees it.

    Attributes:
        occupancy: ``(B, X, Y, Z)`` integer class ids (the format's ``ignore`` value where unknown).
        tokens: the frames' ids, ``B`` of them.
        mask_camera / mask_lidar: ``(B, X, Y, Z)`` bool, the voxels seen by the cameras / the LiDAR
            (Occ3D), or None.
        invalid: ``(B, X, Y, Z)`` bool, voxels the benchmark leaves out (SemanticKITTI's
            ``.invalid``), or None.
        extra: anything else a format's metric needs per batch (e.g. RayIoU's ray origins).
    """

    occupancy: torch.Tensor
    tokens: list[str]
    mask_camera: torch.Tensor | None = None
    mask_lidar: torch.Tensor | None = None
    invalid: torch.Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_batch(cls, batch: Any, device: torch.device | str | None = None) -> Targets:
        """From an :class:`occkit.data.sample.Batch` (its ``occupancy``, masks and tokens)."""
        if batch.occupancy is None:
            raise ValueError("the frames carry no ground truth (occupancy)")

        def to(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None or device is None else t.to(device)

        occ = batch.occupancy if device is None else batch.occupancy.to(device)
        mc, ml = batch.mask_camera, batch.mask_lidar
        return cls(
            occupancy=occ,
            tokens=list(batch.tokens),
            mask_camera=mc if device is None else to(mc),
            mask_lidar=ml if device is None else to(ml),
        )


@runtime_checkable
class Metric(Protocol):
    """A streaming metric: ``update`` per batch, ``merge`` another process's or shard's counts,
    ``all_reduce`` over the processes of a distributed run, ``compute`` the scores at the end.

    ``compute`` returns a dict whose values are plain numbers (percent, like the official tables),
    or dicts of them; a format's first metric gives ``miou`` and ``geometry_iou``, the keys the
    training loop logs and the ablation runner reads. ``compute`` with no frame counted (a validation
    split with no frames, a process's empty count) returns such a dict too, with ``frames`` 0 and the
    scores of nothing counted (NaN where a ratio is 0 / 0), and never raises.

    Optional, for the scoring core (:class:`occkit.scoring.core.Scoring`, which every scoring path
    goes through), where a metric reads more of the frames than their labels; a metric without them
    is scored as :class:`MetricHooks` says (read once per metric by :meth:`MetricHooks.of`):

    - ``bind(dataset, tokens)``: called once with the opened split and the frames to be scored,
      before any is counted (RayIoU reads and checks every scene's LiDAR poses there);
    - ``frame_extra(token) -> dict``: a frame's items for ``Targets.extra``, gathered into a list
      over the batch (RayIoU's ``ray_origins``);
    - ``region_refused``: a reason, when a region of voxels (``occkit eval --frustum``) cannot
      restrict the metric; the loop refuses the region with it.

    A metric the loop counts in several processes is pickled back to the parent and merged: what
    ``bind`` holds is left out of its pickled state.
    """

    name: str

    def update(self, pred: torch.Tensor, target: Targets) -> None: ...

    def merge(self, other: Any) -> Any: ...

    def all_reduce(self) -> None: ...

    def compute(self) -> dict[str, Any]: ...


def metric_name(metric: Any) -> str:
    """A metric's ``name``, or its class's name where it has none."""
    return str(getattr(metric, "name", None) or type(metric).__name__)


@dataclass(frozen=True)
class MetricHooks:
    """The optional part of the :class:`Metric` protocol, as one metric defines it: what the scoring
    core calls beyond ``update`` / ``merge`` / ``all_reduce`` / ``compute``. A member the metric does
    not define is the default here: nothing to bind, no items of its own per frame, any region taken.

    Attributes:
        bind: the metric's ``bind(dataset, tokens)``, or None.
        frame_extra: the metric's ``frame_extra(token) -> dict``, or None (it reads nothing of the frames
            but their labels).
        region_refused: why a region of voxels cannot restrict it, or None (a region can).
    """

    bind: Callable[[Any, list[str]], None] | None = None
    frame_extra: Callable[[str], dict[str, Any]] | None = None
    region_refused: str | None = None

    @classmethod
    def of(cls, metric: Any) -> MetricHooks:
        """The hooks ``metric`` defines; one of another type (a ``bind`` that is no function, a
        ``region_refused`` that is no text) is refused in one line naming the metric."""
        name = metric_name(metric)
        found: dict[str, Any] = {}
        for hook in ("bind", "frame_extra"):
            fn = getattr(metric, hook, None)
            if fn is not None and not callable(fn):
                raise ValueError(
                    f"metric {name}: its {hook} is a {type(fn).__name__}, not a function (Metric protocol)"
                )
            found[hook] = fn
        reason = getattr(metric, "region_refused", None)
        if reason is not None and not isinstance(reason, str):
            raise ValueError(
                f"metric {name}: its region_refused is a {type(reason).__name__}, not a reason (a str) or None "
                "(Metric protocol)"
            )
        return cls(bind=found["bind"], frame_extra=found["frame_extra"], region_refused=reason or None)
