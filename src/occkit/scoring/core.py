"""The one scoring core: a format's metrics for one count, fed the same way by every caller.

``occkit eval`` (:func:`occkit.scoring.folder.evaluate_predictions`; the ablation scorers run ``occkit
eval``), training's validation, ``occkit predict --eval`` and ``occkit demo``
(:func:`occkit.engine.evaluate.score_frames`, through :func:`occkit.engine.evaluate.evaluate`), the judge's
layout mIoU of ``occkit eval-gen`` (:func:`occkit.generation.evaluate.score_frames`) and ``occkit pseudolabel
--quality`` (:func:`occkit.pseudolabel.quality.label_quality`) all make a :class:`Scoring` and give it
batches of predictions and :class:`~occkit.metrics.base.Targets`. A metric declares what it needs beyond the
labels through the optional part of the :class:`~occkit.metrics.base.Metric` protocol
(:class:`~occkit.metrics.base.MetricHooks`: ``bind``, ``frame_extra``, ``region_refused``), and the core
serves it whoever calls: adding a metric that training also reports is the metric, its format's
``metrics`` and the format's ``metric_names`` (docs/design.md, §9 "Adding a dataset format": the
``scoring`` rows of its table).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch

from occkit.metrics.base import MetricHooks, Targets, metric_name

#: The key under which :meth:`Scoring.frame_items` gathers a frame's items in a sample's ``extra``
#: (read ahead in the reading threads of the folder loop).
ITEMS = "metric_items"


def asked_names(metrics: str | Sequence[str] | None) -> tuple[str, ...]:
    """The metric names asked for (``--metrics miou,rayiou``, ``train.val_metrics``) as a tuple, blanks
    and repeats left out."""
    if metrics is None:
        return ()
    parts = metrics.split(",") if isinstance(metrics, str) else list(metrics)
    return tuple(dict.fromkeys(str(m).strip() for m in parts if str(m).strip()))


def check_metric_names(fmt: Any, asked: Sequence[str], what: str = "--metrics") -> None:
    """A name the format does not compute (:meth:`~occkit.formats.DatasetFormat.metric_choices`) refused
    in one line naming the format and what it computes, before any work, never dropped from a result."""
    if not asked:
        return
    choices = fmt.metric_choices(tuple(asked))
    unknown = [m for m in asked if m not in choices]
    if unknown:
        raise ValueError(
            f"{what} {','.join(unknown)}: the {fmt.display_name} format computes {', '.join(choices)} "
            f"({fmt.source or fmt.name})"
        )


def check_computed(fmt: Any, asked: Sequence[str], metrics: Sequence[Any], what: str = "--metrics") -> None:
    """A name asked for that the format declares (its ``scoring.metric_names``) but that none of its
    ``metrics`` computes refused in one line, before any frame is counted (never a result without it).
    Computed: ``miou`` (the first metric's), a metric's ``name``, or a key of a metric's scores (its
    ``compute()`` with no frame counted, which the protocol says gives them)."""
    computed = {"miou", *(metric_name(m) for m in metrics)}
    left = [m for m in asked if m not in computed]
    if left:
        computed.update(k for m in metrics for k in m.compute())
    ghosts = [m for m in left if m not in computed]
    if ghosts:
        raise ValueError(
            f"{what} {','.join(ghosts)}: the {fmt.display_name} format declares it (scoring.metric_names) but none of "
            f"its metrics computes it ({fmt.source or fmt.name}; its metrics give {', '.join(sorted(computed))})"
        )


class Scoring:
    """The metrics of one count over some frames of a format (``fmt.new_metrics``), with what they read
    beyond the labels served the same way for every caller.

    Args:
        fmt: the frames' :class:`~occkit.formats.DatasetFormat`.
        metrics: the names asked for beyond the first metric's (``("miou", "rayiou")``); each must be
            one the format computes (:func:`check_metric_names`: those it declares, else those its metrics
            give), refused before any frame is counted.
        num_classes: the model's classes (None: the format's table).
        mask, device, options: handed to the format's ``metrics`` (``mask``: the voxels counted;
            ``infos``: RayIoU's LiDAR poses on real Occ3D; ...).
    """

    def __init__(
        self,
        fmt: Any,
        metrics: str | Sequence[str] | None = None,
        num_classes: int | None = None,
        mask: str | None = None,
        device: Any = None,
        **options: Any,
    ) -> None:
        asked = asked_names(metrics)
        check_metric_names(fmt, asked)
        self.fmt = fmt
        n = fmt.classes.num_classes if num_classes is None else int(num_classes)
        given = {"device": device, "num_classes": n, "metrics": asked or None, **options}
        if mask is not None:
            given["mask"] = mask
        self.options = given
        self.metrics: list[Any] = list(fmt.new_metrics(**given))
        if getattr(fmt, "from_package", False):
            check_computed(fmt, asked, self.metrics)
        #: each metric's optional part of the protocol, read once
        self.hooks: list[MetricHooks] = [MetricHooks.of(m) for m in self.metrics]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(metric_name(m) for m in self.metrics)

    def refuse_region(self, flag: str = "--frustum") -> None:
        """A metric that a region of voxels cannot restrict (its ``region_refused``) refuses the region."""
        for m, hooks in zip(self.metrics, self.hooks, strict=True):
            if hooks.region_refused:
                raise ValueError(f"{flag} with --metrics {metric_name(m)}: {hooks.region_refused}")

    def bind(self, dataset: Any, tokens: Sequence[str]) -> None:
        """Each metric's ``bind(dataset, tokens)``: what it reads beyond the labels, checked before any
        frame is counted."""
        for hooks in self.hooks:
            if hooks.bind is not None:
                hooks.bind(dataset, list(tokens))

    @property
    def reads_frames(self) -> bool:
        """Whether a metric adds a frame's own items to its batch (``frame_extra``)."""
        return any(hooks.frame_extra is not None for hooks in self.hooks)

    def frame_items(self, token: str) -> dict[str, Any]:
        """What frame ``token`` adds to its batch's ``Targets.extra``: every metric's ``frame_extra``."""
        items: dict[str, Any] = {}
        for hooks in self.hooks:
            if hooks.frame_extra is not None:
                items.update(hooks.frame_extra(token))
        return items

    def update(self, pred: torch.Tensor, target: Targets, items: Iterable[dict[str, Any]] | None = None) -> None:
        """Count a batch: ``pred`` ``(B, X, Y, Z)`` class ids against ``target``. ``items``: the frames'
        :meth:`frame_items`, when read ahead; otherwise read here."""
        if self.reads_frames:
            rows = list(items) if items is not None else [self.frame_items(t) for t in target.tokens]
            for key in rows[0] if rows else ():
                target.extra[key] = [_on(r[key], pred.device) for r in rows]
        for m in self.metrics:
            m.update(pred, target)

    def merge(self, others: Sequence[Any]) -> None:
        """Add another count's metrics (a process's shard), in order."""
        for m, other in zip(self.metrics, others, strict=True):
            m.merge(other)

    def all_reduce(self) -> None:
        """Sum the counts over the processes of a distributed run (every rank calls it)."""
        for m in self.metrics:
            m.all_reduce()

    def compute(self) -> dict[str, Any]:
        """Every metric's scores in one dict, the first metric's keys winning where two give one
        (``frames``)."""
        out: dict[str, Any] = {}
        for m in self.metrics:
            for k, v in m.compute().items():
                out.setdefault(k, v)
        return out


def _on(value: Any, device: torch.device) -> Any:
    """A frame's item on the predictions' device (a tensor), else as it is."""
    return value.to(device) if isinstance(value, torch.Tensor) else value


def restrict(target: Targets, inside: torch.Tensor, ignore: int) -> None:
    """``target`` counted only ``inside`` a region (``(B, X, Y, Z)`` bool): outside it the ground truth
    is ``ignore`` and the masks are false, whatever the metric knows of regions; ``extra["region"]``
    says where it is."""
    target.occupancy = target.occupancy.masked_fill(~inside, int(ignore))
    for key in ("mask_camera", "mask_lidar"):
        m = getattr(target, key)
        setattr(target, key, inside if m is None else m.bool() & inside)
    target.extra["region"] = inside
