"""Occ3D-nuScenes mIoU exactly as the official challenge code computes it, and a streaming
accumulator for validation during training.

The official per-frame code keeps the voxels of a mask (``mask_camera`` by default),
adds ``bincount(18 * gt + pred)`` into an 18 x 18 matrix accumulated over the whole dataset
(rows = ground truth, columns = prediction), and at the end computes
``IoU_c = diag / (row sum + column sum - diag)`` and ``mIoU = nanmean(IoU_0 .. IoU_16)``
(free, class 17, excluded; "others" included), printed x 100 with two decimals. A class absent
from both ground truth and prediction has 0 / 0 = NaN and is skipped by the mean.

The geometry IoU (occupied vs free, under the same mask) comes out of the same matrix:
``TP = sum hist[:17, :17]``, ``FP = sum hist[17, :17]``, ``FN = sum hist[:17, 17]``.

Everything reported is in percent, like the official tables.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from occkit.deprecation import REMOVED_IN, warn_deprecated
from occkit.labels import OCC3D_CLASSES, OCC3D_NUM_CLASSES
from occkit.metrics.base import Targets
from occkit.metrics.confusion import ConfusionCounts, confusion_matrix, metric_class_names

#: The mask choices: which voxels of a frame are evaluated.
MASK_MODES: tuple[str, ...] = ("camera", "lidar", "both", "none")


def select_mask(
    mode: str,
    mask_camera: torch.Tensor | None,
    mask_lidar: torch.Tensor | None,
) -> torch.Tensor | None:
    """The evaluation mask for ``mode`` (``camera``, ``lidar``, ``both`` = camera & lidar,
    ``none``): ``(...)`` bool, or ``None`` for every voxel. A mask the mode needs but that is
    missing raises naming it."""
    if mode not in MASK_MODES:
        raise ValueError(f"mask must be one of {MASK_MODES}, got {mode!r}")
    if mode == "none":
        return None
    need = {"camera": ("mask_camera",), "lidar": ("mask_lidar",), "both": ("mask_camera", "mask_lidar")}[mode]
    given = {"mask_camera": mask_camera, "mask_lidar": mask_lidar}
    for name in need:
        if given[name] is None:
            raise ValueError(f"mask={mode!r} needs {name}, which was not given")
    if mode == "camera":
        return mask_camera.bool()  # type: ignore[union-attr]
    if mode == "lidar":
        return mask_lidar.bool()  # type: ignore[union-attr]
    return mask_camera.bool() & mask_lidar.bool()  # type: ignore[union-attr]


def iou_from_confusion(hist: torch.Tensor) -> torch.Tensor:
    """Per-class IoU ``diag / (row sum + column sum - diag)`` of a ``(C, C)`` matrix:
    ``(C,)`` float64 in [0, 1], NaN where the class is absent from both."""
    h = hist.double()
    diag = torch.diagonal(h)
    denom = h.sum(1) + h.sum(0) - diag
    return diag / denom  # 0/0 -> nan, as numpy does in the official code


def _geometry_counts(hist: torch.Tensor, free: int) -> tuple[float, float, float]:
    """Occupied-vs-free ``(tp, fp, fn)`` voxel counts of a ``(C, C)`` matrix with rows = ground truth."""
    h = hist.double()
    occ = [c for c in range(h.shape[0]) if c != free]
    return float(h[occ][:, occ].sum()), float(h[free, occ].sum()), float(h[occ, free].sum())


def geometry_iou_from_confusion(hist: torch.Tensor, *, free: int) -> float:
    """Occupied-vs-free IoU in [0, 1] (NaN when nothing is occupied in either) from a ``(C, C)``
    matrix with rows = ground truth; ``free``: the free class."""
    tp, fp, fn = _geometry_counts(hist, free)
    denom = tp + fp + fn
    return tp / denom if denom > 0 else math.nan


def geometry_precision_recall(hist: torch.Tensor, *, free: int) -> tuple[float, float]:
    """Occupied-vs-free precision ``tp / (tp + fp)`` and recall ``tp / (tp + fn)`` in [0, 1] (NaN
    when the denominator is 0) from a ``(C, C)`` matrix with rows = ground truth: the two halves of
    :func:`geometry_iou_from_confusion`, telling over-predicted occupancy from missed occupancy."""
    tp, fp, fn = _geometry_counts(hist, free)
    precision = tp / (tp + fp) if tp + fp > 0 else math.nan
    recall = tp / (tp + fn) if tp + fn > 0 else math.nan
    return precision, recall


def nanmean(values: torch.Tensor) -> float:
    """Mean over the non-NaN entries; NaN when all are NaN (numpy's nanmean, without the warning)."""
    v = values[~torch.isnan(values)]
    return float(v.mean()) if v.numel() else math.nan


def occ3d_scores(
    hist: torch.Tensor,
    class_names: tuple[str, ...] = OCC3D_CLASSES,
    *,
    free: int,
) -> dict[str, Any]:
    """The official numbers from an accumulated ``(C, C)`` matrix (rows = ground truth).

    Returns:
        ``miou`` (mean over every class but ``free``, the free class, NaN skipped), ``geometry_iou`` and
        ``iou`` (class name -> value for every class but free), all in percent; NaN for a class
        absent from both ground truth and prediction. Also ``geometry_precision`` and
        ``geometry_recall`` (occupied vs free, percent; not part of the official output), and
        ``only_predicted``: the classes with no ground-truth voxel that the prediction has. Each
        counts as IoU 0 in the mIoU, where a prediction without it leaves it out (NaN), so two
        predictions of the same frames can average over different classes.
    """
    if hist.shape != (len(class_names), len(class_names)):
        raise ValueError(f"hist: shape {tuple(hist.shape)} does not match {len(class_names)} classes")
    ious = iou_from_confusion(hist)
    keep = [c for c in range(len(class_names)) if c != free]
    precision, recall = geometry_precision_recall(hist, free=free)
    in_gt, predicted = hist.sum(1), hist.sum(0)
    return {
        "miou": 100.0 * nanmean(ious[keep]),
        "geometry_iou": 100.0 * geometry_iou_from_confusion(hist, free=free),
        "geometry_precision": 100.0 * precision,
        "geometry_recall": 100.0 * recall,
        "iou": {class_names[c]: 100.0 * float(ious[c]) for c in keep},
        "only_predicted": [class_names[c] for c in keep if in_gt[c] == 0 and predicted[c] > 0],
    }


def _as_labels(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Class ids from ``pred``: integer ``(B, X, Y, Z)`` as is, or float logits ``(B, C, X, Y, Z)``
    through an argmax over ``C``."""
    if pred.is_floating_point():
        if pred.dim() != gt.dim() + 1:
            raise ValueError(
                f"pred: float logits must be (B, C, X, Y, Z) for gt {tuple(gt.shape)}, got {tuple(pred.shape)}"
            )
        return pred.argmax(1)
    return pred


class Occ3DMetric(ConfusionCounts):
    """Streaming Occ3D-nuScenes mIoU: ``update`` per batch, ``compute`` at the end (an
    :class:`occkit.formats.Metric`: ``update(pred, Targets)`` reads the targets' masks and
    ``extra["region"]``; the older ``update(pred, gt, mask_camera, mask_lidar, region)`` still works).

    The state is one ``(C, C)`` int64 confusion matrix ``counts`` (rows = ground truth) and a frame
    count, on ``device`` (default: the device of the first update); :meth:`merge` and
    :meth:`all_reduce` combine processes (:class:`~occkit.metrics.confusion.ConfusionCounts`).

    Args:
        mask: ``"camera"`` (official default), ``"lidar"``, ``"both"`` or ``"none"``.
        num_classes: ``C`` (18 for Occ3D-nuScenes).
        class_names: names for the ``iou`` table (default: the Occ3D classes when ``C = 18``,
            else ``"0", "1", ...``).
        device: where the counts live.
        ignore_index: a ground-truth value left out wherever it stands (the class table's ignore id,
            255 in Occ3D's; occkit's scoring loop writes it outside ``eval --frustum``'s region), or
            None. Occ3D's own labels never hold it, so their scores are the official ones.
        free: the free class, left out of the mIoU and the geometry's occupied side (the class
            table's free id: 17 in Occ3D's). Deprecated: left out, it is the last class (occkit 0.1's
            form), with a warning; required from 0.3.0.
    """

    _agree = ("mask", "num_classes", "free")
    name = "occ3d"

    def __init__(
        self,
        mask: str = "camera",
        num_classes: int = OCC3D_NUM_CLASSES,
        class_names: tuple[str, ...] | None = None,
        device: torch.device | str | None = None,
        ignore_index: int | None = 255,
        *,
        free: int | None = None,
    ) -> None:
        if mask not in MASK_MODES:
            raise ValueError(f"mask must be one of {MASK_MODES}, got {mask!r}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if free is None:  # occkit 0.1's form: the last class was the free one
            free = int(num_classes) - 1
            warn_deprecated(
                f"Occ3DMetric(...) without free=: the free class is taken as the table's last ({free}, as occkit 0.1 "
                f"did); give free= (the class table's free id, ClassTable.free), required from {REMOVED_IN}"
            )
        self.class_names = metric_class_names(class_names, num_classes, OCC3D_CLASSES, OCC3D_NUM_CLASSES)
        self.mask = mask
        self.num_classes = int(num_classes)
        if not 0 <= free < self.num_classes:
            raise ValueError(f"free {free} is not a class id (0..{self.num_classes - 1})")
        self.free = int(free)
        self.ignore_index = None if ignore_index is None else int(ignore_index)
        if self.ignore_index is not None and 0 <= self.ignore_index < self.num_classes:
            raise ValueError(f"ignore_index {self.ignore_index} is a class id (0..{self.num_classes - 1})")
        self.device = torch.device(device) if device is not None else None
        self.reset()

    @torch.no_grad()
    def update(
        self,
        pred: torch.Tensor,
        gt: torch.Tensor | Targets,
        mask_camera: torch.Tensor | None = None,
        mask_lidar: torch.Tensor | None = None,
        region: torch.Tensor | None = None,
    ) -> None:
        """Add a batch.

        Args:
            pred: ``(B, X, Y, Z)`` integer class ids, or ``(B, C, X, Y, Z)`` float logits
                (argmax over ``C``).
            gt: ``(B, X, Y, Z)`` integer class ids, or :class:`~occkit.formats.Targets` (its
                ``occupancy``, ``mask_camera``, ``mask_lidar`` and ``extra["region"]``; the other
                arguments then unused).
            mask_camera, mask_lidar: ``(B, X, Y, Z)`` bool (or 0/1), as the mask mode needs.
            region: ``(B, X, Y, Z)`` bool, optional: only these voxels count, on top of the mask
                mode (e.g. the view frusta of the cameras a model sees; not part of the official
                metric).
        """
        if isinstance(gt, Targets):
            gt, mask_camera, mask_lidar, region = gt.occupancy, gt.mask_camera, gt.mask_lidar, gt.extra.get("region")
        if gt.dim() != 4:
            raise ValueError(f"gt: expected shape (B, X, Y, Z), got {tuple(gt.shape)}")
        labels = _as_labels(pred, gt)
        m = select_mask(self.mask, mask_camera, mask_lidar)
        if region is not None:
            if tuple(region.shape) != tuple(gt.shape):
                raise ValueError(f"region: expected shape {tuple(gt.shape)} (as gt), got {tuple(region.shape)}")
            region = region.bool().to(gt.device)
            m = region if m is None else m.bool().to(gt.device) & region
        if self.ignore_index is not None:
            known = gt != self.ignore_index
            if not bool(known.all()):  # Occ3D's own labels never hold it: no cost on the official path
                m = known if m is None else m.bool().to(gt.device) & known
                gt = gt.masked_fill(~known, 0)
        gt = gt.to(self._counts_device(gt.device))
        self.counts += confusion_matrix(
            gt, labels.to(gt.device), self.num_classes, None if m is None else m.to(gt.device)
        )
        self.frames += int(gt.shape[0])

    def compute(self) -> dict[str, Any]:
        """``miou``, ``geometry_iou``, ``iou`` (class name -> value), all in percent (NaN for a
        class absent from both), plus ``mask`` and ``frames``."""
        out = occ3d_scores(self.counts.cpu(), self.class_names, free=self.free)
        out["mask"] = self.mask
        out["frames"] = self.frames
        return out
