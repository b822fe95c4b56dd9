"""SSCBench-KITTI-360 as a dataset format (``--format kitti360``): the SemanticKITTI SSC file layout
with KITTI-360's classes, split and calibration (:mod:`occkit.data.kitti360`), scored as SSCBench's
released code scores it (:class:`SSCBenchMetric`).

docs/formats/kitti360.md is the user's page; BENCHMARKS.md, "SSCBench-KITTI-360: parity with the
released code", the check against SSCBench's own loader and metric.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from occkit.data import kitti360 as layout
from occkit.data.kitti360 import KITTI360_SPLITS, Kitti360Dataset, prediction_path
from occkit.data.semantickitti import index_predictions
from occkit.formats._kitti_labels import KITTI360_WRITER
from occkit.formats.spec import (
    MONOCULAR_SSC,
    ClassTable,
    OpenOptions,
    format_of_module,
    open_one_camera,
    refuse_another_class_count,
    world_writer,
)
from occkit.geometry.grid import semantickitti_grid
from occkit.labels import KITTI360_CLASSES, KITTI360_IGNORE, KITTI360_NUM_CLASSES, KITTI360_PALETTE
from occkit.metrics.ssc import SSCMetric

#: SSCBench's scoring conventions (its ``SSCMetrics.get_stats``): per-class IoU ``tp / (tp + fp +
#: fn + 1e-5)``, completion scores 0 when no occupied voxel is predicted right.
SSCBENCH_EPS = 1e-5
#: SSCBench-KITTI-360's 19 learning classes (0 = empty), 255 = ignored.
TABLE = ClassTable(KITTI360_CLASSES, free=0, ignore=KITTI360_IGNORE, palette=KITTI360_PALETTE)
#: The SemanticKITTI grid: (256, 256, 32) voxels of 0.2 m in front of the LiDAR.
GRID = semantickitti_grid()
#: The one camera of every frame.
CAMERAS = (Kitti360Dataset.CAMERA,)
#: How ``occkit convert`` writes a dataset's labels in this layout.
LABEL_WRITER = KITTI360_WRITER
#: The prediction files' index (SemanticKITTI's layout of them) and reader (the layout's own).
prediction_files = index_predictions
read_prediction = layout.read_prediction


class SSCBenchMetric(SSCMetric):
    """SSCBench-KITTI-360's SSC metric, an accumulator of the format registry: the 19 x 19
    confusion matrix over the voxels whose ground truth is not 255 (invalid voxels are 255 in the
    benchmark's labels), SSC mIoU = the plain mean of classes 1..18, completion IoU, precision and
    recall of occupied against empty, all in percent, with SSCBench's conventions
    (:data:`SSCBENCH_EPS`, 0 for an empty completion); ``miou`` = ``ssc_miou``, ``geometry_iou`` =
    ``completion_iou``."""

    def __init__(self, device: torch.device | str | None = None) -> None:
        super().__init__(
            KITTI360_NUM_CLASSES,
            KITTI360_IGNORE,
            KITTI360_CLASSES,
            device=device,
            eps=SSCBENCH_EPS,
            zero_when_empty=True,
        )


def detect(root: Path) -> str | None:
    """Why ``root`` is an SSCBench-KITTI-360 folder: ``data_2d_raw/<seq>/voxels`` or
    ``preprocess/labels``; else None."""
    raw = root / "data_2d_raw"
    if not raw.is_dir():
        return None
    if (root / "preprocess" / "labels").is_dir():
        return f"{root}: data_2d_raw/ and preprocess/labels/"
    for seq in sorted(raw.iterdir()):
        if (seq / "voxels").is_dir():
            return f"{root}: data_2d_raw/{seq.name}/voxels/"
    return None


def open_split(root: Path, split: str, options: OpenOptions) -> Kitti360Dataset:
    """The frames of ``split`` (SSCBench's sequences, or the folder's ``splits.json``)."""
    return open_one_camera(Kitti360Dataset, "the SSCBench-KITTI-360 layout", root, split, options)


def metrics(options: dict[str, Any] | None = None) -> list[SSCBenchMetric]:
    """A fresh :class:`SSCBenchMetric` (options: ``device``; ``num_classes``, the model's, must be 19)."""
    options = options or {}
    refuse_another_class_count(options, TABLE, "SSCBench-KITTI-360", "kitti360-mono")
    return [SSCBenchMetric(device=options.get("device"))]


def write_prediction(folder: Path, token: str, labels: np.ndarray) -> Path:
    """``<folder>/<seq>/<frame>.label`` (:func:`occkit.data.kitti360.prediction_path`) of a frame's classes."""
    from occkit.outputs import path_under

    path = path_under(folder, prediction_relpath(token), what=f"frame token {token!r}")  # never outside the folder
    return layout.write_prediction(path, labels)


def prediction_relpath(token: str) -> str:
    """Token ``"<seq>/<frame>"`` -> the prediction file's path under the predictions folder."""
    return str(prediction_path(".", token))


#: The synthetic world in this layout (``occkit synth --format kitti360``).
write_synthetic = world_writer("occkit.worlds.driving.kitti_export:export_kitti360", overwrite=True)


FORMAT = format_of_module(
    __name__,
    name="kitti360",
    title="SSCBench-KITTI-360",
    summary="SSCBench-KITTI-360 (data_2d_raw/, preprocess/labels/; one camera, 19 classes, 0 = empty)",
    label_frame="lidar",
    splits=tuple(KITTI360_SPLITS),
    detection={"priority": 95},  # its folders (data_2d_raw/) are no other format's: after occkit's first two
    **MONOCULAR_SSC,
)
