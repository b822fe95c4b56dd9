"""NYUv2 semantic scene completion in MonoScene's layout (``NYUtrain/``, ``NYUtest/``; see
:mod:`occkit.data.nyu`): the format ``nyu``.

Monocular (one Kinect camera, MonoScene's intrinsics), 12 classes with 0 = empty and 255 ignored,
the 60 x 60 x 36 grid at 0.08 m (occkit's (x, y, z) order of MonoScene's 60 x 36 x 60 target) in
the gravity-aligned world frame shifted to each frame's voxel origin. Scored as MonoScene scores
NYUv2 (:func:`occkit.metrics.ssc.nyu_ssc_metric`): every known voxel, no visibility mask.
Predictions are ``<token>.npz`` files holding ``semantics``, uint8 ``(60, 60, 36)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from occkit.data.nyu import NYUDataset, is_nyu_root
from occkit.fileio import load_npz, save_npz_atomic
from occkit.formats.spec import ClassTable, DatasetFormat, OpenOptions, PredictionFiles, Targets
from occkit.geometry.grid import nyu_grid
from occkit.labels import NYU_CLASSES, NYU_IGNORE, NYU_NUM_CLASSES, NYU_PALETTE


def _detect(root: Path) -> str | None:
    if is_nyu_root(root):
        return "it holds NYUtrain/ or NYUtest/ (MonoScene's NYUv2 layout)"
    return None


def _open(root: Path, split: str, options: OpenOptions) -> NYUDataset:
    return NYUDataset(
        root, split, load_images=options.load_images, load_gt=options.load_gt, load_extras=options.load_extras
    )


class NYUFormatMetric:
    """The format's metric (:class:`occkit.formats.spec.Metric`): MonoScene's NYUv2 SSC scores,
    with ``miou`` (= ``ssc_miou``) and ``geometry_iou`` (= ``completion_iou``)."""

    name = "nyu_ssc"

    def __init__(self, device: torch.device | str | None = None) -> None:
        from occkit.metrics.ssc import nyu_ssc_metric

        self.metric = nyu_ssc_metric(device)

    def update(self, pred: torch.Tensor, target: Targets) -> None:
        self.metric.update(pred, target.occupancy)

    def merge(self, other: Any) -> Any:
        self.metric.merge(other.metric)
        return self

    def all_reduce(self) -> None:
        self.metric.all_reduce()

    def compute(self) -> dict[str, Any]:
        out = self.metric.compute()
        out.update(miou=out["ssc_miou"], geometry_iou=out["completion_iou"], mask="none")
        return out


def _metrics(options: dict[str, Any]) -> list[NYUFormatMetric]:
    return [NYUFormatMetric(options.get("device"))]


def write_prediction(folder: Path, token: str, labels: np.ndarray) -> Path:
    """``folder/<token>.npz`` holding ``semantics`` uint8 ``(60, 60, 36)`` (atomically)."""
    labels = np.asarray(labels)
    if labels.shape != nyu_grid().shape:
        raise ValueError(f"{token}: prediction has shape {labels.shape}, expected {nyu_grid().shape}")
    return save_npz_atomic(Path(folder) / f"{token}.npz", semantics=np.ascontiguousarray(labels.astype(np.uint8)))


def index_predictions(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(Path(folder).glob("*.npz"))}


def read_prediction(path: Path) -> np.ndarray:
    """A prediction file as ``(60, 60, 36)`` uint8 classes; a wrong key, shape, dtype or class raises naming it."""
    z = load_npz(path, keys=("semantics",))
    sem = z["semantics"]
    if sem.shape != nyu_grid().shape:
        raise ValueError(f"{path}: 'semantics' has shape {sem.shape}, expected {nyu_grid().shape}")
    if not np.issubdtype(sem.dtype, np.integer):
        raise ValueError(f"{path}: 'semantics' has dtype {sem.dtype}, expected integer classes (uint8)")
    if sem.size and (int(sem.min()) < 0 or int(sem.max()) >= NYU_NUM_CLASSES):
        raise ValueError(f"{path}: 'semantics' has classes outside 0..{NYU_NUM_CLASSES - 1}")
    return sem.astype(np.uint8)


def evaluate_nyu(
    gt_root: str | os.PathLike,
    pred_dir: str | os.PathLike,
    split: str = "test",
    allow_missing: bool = False,
    device: str | torch.device = "cpu",
    progress: bool | None = None,
    **_: Any,
) -> dict[str, Any]:
    """MonoScene's NYUv2 SSC scores of a prediction folder: ``ssc_miou``, ``completion_iou``,
    ``precision``, ``recall``, ``iou`` per class (percent), ``frames``, with ``miou`` /
    ``geometry_iou`` aliases, ``benchmark``, ``missing``, ``extra``."""
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise FileNotFoundError(f"{pred_dir}: prediction folder not found")
    ds = NYUDataset(gt_root, split, load_images=False)
    if len(ds) == 0:
        raise ValueError(f"{gt_root}: no frames in split {split!r}")
    preds = index_predictions(pred_dir)
    tokens = [ds.token(i) for i in range(len(ds))]
    missing = [t for t in tokens if t not in preds]
    if missing and not allow_missing:
        raise ValueError(
            f"{pred_dir}: no prediction for {len(missing)} of {len(tokens)} frames (first: {missing[0]}.npz); "
            "--allow-missing scores the others"
        )
    extra = sorted(set(preds) - set(tokens))
    m = NYUFormatMetric(device)
    for t in tokens:
        if t in missing:
            continue
        s = ds[ds.index_of(t)]
        pred = torch.from_numpy(read_prediction(preds[t]).astype(np.int64))[None]
        m.update(pred.to(device), Targets(occupancy=s.occupancy[None].to(device), tokens=[t]))
    out: dict[str, Any] = {"benchmark": "nyu", "split": split}
    out.update(m.compute())
    out["missing"], out["extra"] = len(missing), len(extra)
    return out


def _write_synthetic(out: Path, options: Any) -> None:
    from occkit.data.synth_indoor import generate_indoor

    generate_indoor(out, options, progress=True, resume=True)


FORMAT = DatasetFormat(
    name="nyu",
    summary="NYUv2 semantic scene completion in MonoScene's layout (NYUtrain/, NYUtest/: colour, depth, .bin)",
    modality="monocular",
    classes=ClassTable(names=NYU_CLASSES, free=0, ignore=NYU_IGNORE, palette=NYU_PALETTE),
    grid=nyu_grid(),
    label_frame="world",
    splits=("train", "test", "val"),
    detect=_detect,
    open=_open,
    metrics=_metrics,
    predictions=PredictionFiles(write=write_prediction, index=index_predictions, read=read_prediction),
    evaluate_folder=evaluate_nyu,
    write_synthetic=_write_synthetic,
)
