"""The metric of SurroundOcc and of OpenOccupancy (nuScenes-Occupancy): one computation.

Both released evaluations count, over every voxel whose ground truth is not 255 (noise), the
pairs (ground truth, prediction) of the 17 classes (0 = empty) and report

- per class ``c`` in 1..16: IoU = ``tp / (tp + fp + fn)`` (SurroundOcc's ``evaluation_semantic``
  and dataset ``evaluate``; OpenOccupancy's ``fast_hist`` + ``cm_to_ious``, its "SSC" table);
- the mean of the 16 (both: a plain mean, NaN when a class is absent from both the ground truth
  and the predictions of the whole set);
- the geometry IoU of "not empty" against "not empty" (SurroundOcc's class-0 row "IoU";
  OpenOccupancy's "SC" IoU, its ``non-empty`` row).

No camera or LiDAR visibility mask enters either official number (OpenOccupancy's loader can
compute a visible mask, off in every released config, and its test loop drops the table it gives).
SurroundOcc averages per-frame counts over the frames before dividing, which gives the same ratios
as summing them (to the last bits of a float64).

Here: ``miou_all`` is the released mean (NaN when a class is absent from both); ``miou`` averages
the classes that are present in the ground truth or the predictions (equal to the released number
whenever that is not NaN: always on the real validation sets, where every class occurs), so a
small synthetic split with a missing class still gives a number. All in percent.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from occkit.data.lidar_frame import NUSC_OCC_CLASSES, NUSC_OCC_EMPTY, NUSC_OCC_IGNORE, NUSC_OCC_NUM_CLASSES
from occkit.metrics.base import Targets
from occkit.metrics.confusion import ConfusionCounts, confusion_matrix, metric_class_names, voxel_class_ids


def nusc_occupancy_confusion(
    pred: torch.Tensor,
    gt: torch.Tensor,
    num_classes: int = NUSC_OCC_NUM_CLASSES,
    ignore_index: int = NUSC_OCC_IGNORE,
) -> torch.Tensor:
    """``(C, C)`` int64 counts, rows = ground truth, columns = prediction, over the voxels whose
    ground truth is not ``ignore_index``. ``pred``, ``gt``: integer class ids of one shape."""
    if gt.shape != pred.shape:
        raise ValueError(f"pred: shape {tuple(pred.shape)} differs from gt {tuple(gt.shape)}")
    valid = gt != ignore_index
    g = torch.where(valid, gt, torch.zeros_like(gt))
    p = torch.where(valid, pred.to(gt.device), torch.zeros_like(pred, device=gt.device))
    return confusion_matrix(g, p, num_classes, valid)


def nusc_occupancy_scores(
    conf: torch.Tensor, class_names: tuple[str, ...] = NUSC_OCC_CLASSES, empty: int = NUSC_OCC_EMPTY
) -> dict[str, Any]:
    """The numbers of a ``(C, C)`` matrix (rows = ground truth), in percent: ``miou`` (mean over the
    classes but ``empty`` present in either), ``miou_all`` (the released plain mean, NaN when a
    class is absent from both), ``geometry_iou``, ``geometry_precision``, ``geometry_recall`` and
    ``iou`` (class name -> IoU, NaN for a class absent from both)."""
    c = conf.double().cpu()
    C = c.shape[0]
    if c.shape != (len(class_names), len(class_names)):
        raise ValueError(f"conf: shape {tuple(c.shape)} does not match {len(class_names)} classes")
    tp = torch.diagonal(c)
    union = c.sum(1) + c.sum(0) - tp
    iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, math.nan))
    sem = [k for k in range(C) if k != empty]
    ious = iou[sem]
    present = ~torch.isnan(ious)
    occ = torch.tensor([k != empty for k in range(C)])
    g_tp = c[occ][:, occ].sum()
    g_gt = c[occ].sum()
    g_pred = c[:, occ].sum()

    def pct(a: torch.Tensor, b: torch.Tensor) -> float:
        return 100.0 * float(a / b) if float(b) > 0 else math.nan

    return {
        "miou": 100.0 * float(ious[present].mean()) if bool(present.any()) else math.nan,
        "miou_all": 100.0 * float(ious.mean()),
        "geometry_iou": pct(g_tp, g_gt + g_pred - g_tp),
        "geometry_precision": pct(g_tp, g_pred),
        "geometry_recall": pct(g_tp, g_gt),
        "iou": {class_names[k]: 100.0 * float(iou[k]) for k in sem},
    }


class NuScenesOccupancyMetric(ConfusionCounts):
    """Streaming SurroundOcc / OpenOccupancy metric (see the module docstring): ``update`` per
    batch, ``merge`` / ``all_reduce`` across shards and processes, ``compute`` at the end.

    Args:
        name: the metric's name (``surroundocc`` or ``openoccupancy``: the same computation).
        num_classes: ``C`` (17; 0 = empty).
        class_names: for the ``iou`` table.
        ignore_index: ground truth left out (255, noise).
        device: where the counts live (default: the device of the first update).
    """

    _agree = ("num_classes", "ignore_index")

    def __init__(
        self,
        name: str = "surroundocc",
        num_classes: int = NUSC_OCC_NUM_CLASSES,
        class_names: tuple[str, ...] | None = None,
        ignore_index: int = NUSC_OCC_IGNORE,
        device: torch.device | str | None = None,
    ) -> None:
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.name = name
        self.class_names = metric_class_names(class_names, num_classes, NUSC_OCC_CLASSES, NUSC_OCC_NUM_CLASSES)
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.device = torch.device(device) if device is not None else None
        self.reset()

    @torch.no_grad()
    def update(self, pred: torch.Tensor, gt: torch.Tensor | Targets) -> None:
        """Add a batch.

        Args:
            pred: ``(B, X, Y, Z)`` integer class ids, or ``(B, C, X, Y, Z)`` float logits (argmax
                over ``C``).
            gt: ``(B, X, Y, Z)`` integer class ids with ``ignore_index``, or
                :class:`~occkit.formats.spec.Targets` (their ``occupancy``; masks do not enter).
        """
        if isinstance(gt, Targets):
            gt = gt.occupancy
        pred = voxel_class_ids(pred, gt)
        gt = gt.to(self._counts_device(gt.device))
        self.counts += nusc_occupancy_confusion(pred, gt, self.num_classes, self.ignore_index)
        self.frames += int(gt.shape[0])

    def compute(self) -> dict[str, Any]:
        """``miou``, ``miou_all``, ``geometry_iou``, ``geometry_precision``, ``geometry_recall``
        (percent), ``iou`` (class name -> percent), ``mask`` (``none``: no visibility mask, every
        voxel not ignored counts) and ``frames``."""
        out = nusc_occupancy_scores(self.counts, self.class_names, NUSC_OCC_EMPTY)
        out["mask"] = "none"
        out["frames"] = self.frames
        return out
