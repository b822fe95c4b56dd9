"""SemanticKITTI semantic scene completion metrics as the semantic-kitti-api computes them, and
a streaming accumulator.

One 20 x 20 confusion matrix over the dataset, **rows = prediction, columns = ground truth**,
over the voxels whose ground truth is not 255 (unlabelled / ignored raw ids) and not invalid.

- completion IoU = ``sum conf[1:, 1:] / (sum conf - conf[0, 0])``
- precision = ``sum conf[1:, 1:] / sum conf[1:, :]``; recall = ``sum conf[1:, 1:] / sum conf[:, 1:]``
- SSC mIoU = plain mean over classes 1..19 of ``tp / (tp + fp + fn + 1e-15)``, so a class absent
  from both counts as 0 (unlike Occ3D's NaN-skipping mean).

All reported in percent.

SSCBench (KITTI-360, its MonoScene-based ``SSCMetrics``) computes the same numbers from the same
counts with two conventions of its own, which ``eps`` and ``zero_when_empty`` select: the per-class
IoU denominator has ``+ 1e-5`` (not 1e-15), and completion precision, recall and IoU are 0 (not
NaN) when no occupied voxel is predicted right.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from occkit.labels import SEMANTICKITTI_CLASSES, SEMANTICKITTI_IGNORE, SEMANTICKITTI_NUM_CLASSES
from occkit.metrics.base import Targets
from occkit.metrics.confusion import ConfusionCounts, confusion_matrix, metric_class_names, voxel_class_ids


def ssc_confusion(
    pred: torch.Tensor,
    gt: torch.Tensor,
    invalid: torch.Tensor | None = None,
    num_classes: int = SEMANTICKITTI_NUM_CLASSES,
    ignore_index: int = SEMANTICKITTI_IGNORE,
) -> torch.Tensor:
    """The SSC confusion matrix of one or more frames.

    Args:
        pred: ``(...)`` integer learning classes in ``[0, C)``.
        gt: ``(...)`` integer learning classes, ``ignore_index`` where ignored.
        invalid: optional ``(...)`` bool, voxels left out (the ``.invalid`` files).
    Returns:
        ``(C, C)`` int64, rows = prediction, columns = ground truth.
    """
    if gt.shape != pred.shape:
        raise ValueError(f"pred: shape {tuple(pred.shape)} differs from gt {tuple(gt.shape)}")
    valid = gt != ignore_index
    if invalid is not None:
        if invalid.shape != gt.shape:
            raise ValueError(f"invalid: shape {tuple(invalid.shape)} differs from gt {tuple(gt.shape)}")
        valid = valid & ~invalid.to(device=gt.device, dtype=torch.bool)
    g = torch.where(valid, gt, torch.zeros_like(gt))
    # predictions where the ground truth is ignored do not count; keep the range check honest
    p = torch.where(valid, pred.to(gt.device), torch.zeros_like(gt))
    return confusion_matrix(g, p, num_classes, valid).T.contiguous()


def ssc_scores(
    conf: torch.Tensor,
    class_names: tuple[str, ...] = SEMANTICKITTI_CLASSES,
    eps: float = 1e-15,
    zero_when_empty: bool = False,
) -> dict[str, Any]:
    """Official numbers from a ``(C, C)`` matrix (rows = prediction, columns = ground truth).

    Args:
        eps: added to each per-class IoU denominator (semantic-kitti-api 1e-15, SSCBench 1e-5).
        zero_when_empty: completion precision, recall and IoU are 0 when no occupied voxel is
            predicted right (SSCBench), instead of a NaN for a zero denominator.

    Returns:
        ``ssc_miou``, ``completion_iou``, ``precision``, ``recall`` and ``iou`` (class name ->
        value, classes 1..C-1), in percent; a ratio with a zero denominator is NaN (except the
        per-class IoUs, which have ``eps``).
    """
    c = conf.double()
    if c.shape != (len(class_names), len(class_names)):
        raise ValueError(f"conf: shape {tuple(c.shape)} does not match {len(class_names)} classes")

    def ratio(a: torch.Tensor, b: torch.Tensor) -> float:
        return 100.0 * float(a / b) if float(b) > 0 else math.nan

    occ_tp = c[1:, 1:].sum()
    tp = torch.diagonal(c)
    fp = c.sum(1) - tp
    fn = c.sum(0) - tp
    iou = tp / (tp + fp + fn + eps)
    empty = zero_when_empty and float(occ_tp) == 0
    return {
        "ssc_miou": 100.0 * float(iou[1:].mean()),
        "completion_iou": 0.0 if empty else ratio(occ_tp, c.sum() - c[0, 0]),
        "precision": 0.0 if empty else ratio(occ_tp, c[1:, :].sum()),
        "recall": 0.0 if empty else ratio(occ_tp, c[:, 1:].sum()),
        "iou": {class_names[k]: 100.0 * float(iou[k]) for k in range(1, c.shape[0])},
    }


class SSCMetric(ConfusionCounts):
    """Streaming SemanticKITTI SSC metrics: ``update`` per batch, ``compute`` at the end.

    An :class:`occkit.formats.Metric`: ``update(pred, Targets)`` leaves out the targets' ``invalid``
    voxels, or, without them, those outside ``mask_camera`` (a SemanticKITTI frame's ``mask_camera``
    is "not invalid"); ``update(pred, gt, invalid)`` still works.

    The state is the ``(C, C)`` confusion matrix ``counts`` (as :func:`ssc_confusion` builds it)
    and a frame count; :meth:`merge` and :meth:`all_reduce` combine processes
    (:class:`~occkit.metrics.confusion.ConfusionCounts`).

    Args:
        num_classes: ``C`` (20 for SemanticKITTI; 0 = empty).
        ignore_index: ground-truth value left out (255).
        class_names: for the ``iou`` table.
        device: where the counts live (default: the device of the first update).
        eps, zero_when_empty: the scoring conventions of :func:`ssc_scores` (SSCBench: 1e-5, True).
    """

    name = "ssc"

    def __init__(
        self,
        num_classes: int = SEMANTICKITTI_NUM_CLASSES,
        ignore_index: int = SEMANTICKITTI_IGNORE,
        class_names: tuple[str, ...] | None = None,
        device: torch.device | str | None = None,
        eps: float = 1e-15,
        zero_when_empty: bool = False,
    ) -> None:
        self.eps, self.zero_when_empty = float(eps), bool(zero_when_empty)
        self.class_names = metric_class_names(
            class_names, num_classes, SEMANTICKITTI_CLASSES, SEMANTICKITTI_NUM_CLASSES
        )
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.device = torch.device(device) if device is not None else None
        self.reset()

    @torch.no_grad()
    def update(self, pred: torch.Tensor, gt: torch.Tensor | Targets, invalid: torch.Tensor | None = None) -> None:
        """Add a batch.

        Args:
            pred: ``(B, X, Y, Z)`` integer learning classes, or ``(B, C, X, Y, Z)`` float logits.
            gt: ``(B, X, Y, Z)`` integer learning classes with ``ignore_index``, or
                :class:`~occkit.formats.Targets` (``invalid`` then from them).
            invalid: optional ``(B, X, Y, Z)`` bool.
        """
        if isinstance(gt, Targets):
            t = gt
            gt = t.occupancy
            invalid = t.invalid if t.invalid is not None else None if t.mask_camera is None else ~t.mask_camera.bool()
        pred = voxel_class_ids(pred, gt)
        dev = self._counts_device(gt.device)
        gt, invalid = gt.to(dev), None if invalid is None else invalid.to(dev)
        self.counts += ssc_confusion(pred, gt, invalid, self.num_classes, self.ignore_index)
        self.frames += int(gt.shape[0])

    def compute(self) -> dict[str, Any]:
        """``ssc_miou``, ``completion_iou``, ``precision``, ``recall`` (percent), ``iou`` (class
        name -> percent) and ``frames``; also ``miou`` (= ``ssc_miou``), ``geometry_iou``
        (= ``completion_iou``) and ``mask`` (``"invalid"``), the keys every format's first metric
        gives (the training log, the ablation runner and ``occkit eval`` read them alike)."""
        out = ssc_scores(self.counts.cpu(), self.class_names, self.eps, self.zero_when_empty)
        out["frames"] = self.frames
        out.update(miou=out["ssc_miou"], geometry_iou=out["completion_iou"], mask="invalid")
        return out


class NYUSSCMetric(SSCMetric):
    """MonoScene's NYUv2 SSC evaluation (:func:`nyu_ssc_metric`): :class:`SSCMetric` with its
    conventions (per-class IoU denominators get 1e-5; with no occupied voxel both predicted and
    present, precision, recall and completion IoU are 0 rather than undefined) and no mask: every
    known voxel is scored, whatever masks a :class:`~occkit.formats.Targets` carries."""

    name = "nyu_ssc"

    def __init__(self, device: torch.device | str | None = None) -> None:
        from occkit.labels import NYU_CLASSES, NYU_IGNORE, NYU_NUM_CLASSES

        super().__init__(NYU_NUM_CLASSES, NYU_IGNORE, NYU_CLASSES, device=device, eps=1e-5, zero_when_empty=True)

    @torch.no_grad()
    def update(self, pred: torch.Tensor, gt: torch.Tensor | Targets, invalid: torch.Tensor | None = None) -> None:
        """Add a batch: ``pred`` as :meth:`SSCMetric.update`; ``gt`` the ``(B, X, Y, Z)`` classes
        (255 unknown) or :class:`~occkit.formats.Targets` (their masks unused)."""
        super().update(pred, gt.occupancy if isinstance(gt, Targets) else gt, invalid)

    def compute(self) -> dict[str, Any]:
        """:meth:`SSCMetric.compute`, with ``mask`` ``"none"``."""
        out = super().compute()
        out["mask"] = "none"
        return out


def nyu_ssc_metric(device: torch.device | str | None = None) -> NYUSSCMetric:
    """MonoScene's NYUv2 SSC evaluation: 12 classes (0 = empty), 255 ignored, no other mask (its
    NYU test step scores every known voxel of the 60 x 36 x 60 grid), SSC mIoU = the mean over
    classes 1..11 of ``tp / (tp + fp + fn + 1e-5)`` summed over the dataset, completion IoU,
    precision and recall over occupied vs empty (0 when no occupied voxel is both predicted and
    present, as MonoScene's ``SSCMetrics.get_stats``)."""
    return NYUSSCMetric(device=device)
