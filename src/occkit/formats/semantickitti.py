"""SemanticKITTI semantic scene completion as a dataset format: one camera (``image_2``), 20
learning classes (0 = empty, 255 ignored) on a 256 x 256 x 32 grid at 0.2 m in the LiDAR frame,
scored by the SSC metrics of the semantic-kitti-api.

The reader is :class:`occkit.data.semantickitti.SemanticKITTIDataset` (the layout is described
there), the metric :class:`occkit.metrics.ssc.SSCMetric`, the submission files
``sequences/<XX>/predictions/<NNNNNN>.label`` (uint16 raw ids), scored by occkit's one scoring loop
(:func:`occkit.scoring.folder.evaluate_predictions`: the invalid voxels are the frames' masks). A
folder holding ``sequences/`` and no ``annotations.json`` is SemanticKITTI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from occkit.data.semantickitti import index_predictions, read_ssc_prediction
from occkit.formats._kitti_labels import SEMANTICKITTI_WRITER
from occkit.formats.spec import (
    MONOCULAR_SSC,
    ClassTable,
    Metric,
    OpenOptions,
    format_of_module,
    open_one_camera,
    world_writer,
)
from occkit.geometry.grid import semantickitti_grid
from occkit.labels import (
    SEMANTICKITTI_CLASSES,
    SEMANTICKITTI_IGNORE,
    SEMANTICKITTI_NUM_CLASSES,
    SEMANTICKITTI_PALETTE,
)

#: SemanticKITTI's 20 learning classes (0 = empty), 255 = ignored.
TABLE = ClassTable(names=SEMANTICKITTI_CLASSES, free=0, ignore=SEMANTICKITTI_IGNORE, palette=SEMANTICKITTI_PALETTE)
#: The (256, 256, 32) grid of 0.2 m voxels in front of the LiDAR.
GRID = semantickitti_grid()
#: The one camera of every frame.
CAMERAS = ("image_2",)
#: How ``occkit convert`` writes a dataset's labels in this layout.
LABEL_WRITER = SEMANTICKITTI_WRITER


def detect(root: Path) -> str | None:
    if (root / "sequences").is_dir() and not (root / "annotations.json").is_file():
        return "it holds sequences/ and no annotations.json"
    return None


def open_split(root: Path, split: str, options: OpenOptions) -> Any:
    from occkit.data.semantickitti import SemanticKITTIDataset

    # a named split is the dataset's own (splits.json, the synthetic world's) before the official one
    return open_one_camera(SemanticKITTIDataset, "the SemanticKITTI layout", root, split, options)


def metrics(options: dict[str, Any]) -> list[Metric]:
    """The SSC metrics (``invalid`` voxels, or those outside ``mask_camera``, left out; ``mask``
    unused)."""
    from occkit.metrics.ssc import SSCMetric

    n = int(options.get("num_classes") or SEMANTICKITTI_NUM_CLASSES)
    return [SSCMetric(num_classes=n, device=options.get("device"))]


def prediction_relpath(token: str) -> str:
    """Token ``"<seq>/<frame>"`` -> ``sequences/<seq>/predictions/<frame>.label``."""
    seq, frame = token.split("/", 1)
    return f"sequences/{seq}/predictions/{frame}.label"


def write_prediction(folder: Path, token: str, labels: np.ndarray) -> Path:
    from occkit.data.semantickitti import write_ssc_prediction
    from occkit.outputs import path_under

    path = path_under(folder, prediction_relpath(token), what=f"frame token {token!r}")  # never outside the folder
    return write_ssc_prediction(path, labels)


#: ``{"<seq>/<frame>": path}`` of the predictions under a folder (``sequences/<seq>/predictions/<frame>.label``,
#: the submission layout, or ``<seq>/<frame>.label``), and one read as learning classes ``(256, 256, 32)`` uint8
#: (a raw id outside the learning map, or one it ignores, raises naming the file).
prediction_files, read_prediction = index_predictions, read_ssc_prediction


#: The synthetic world in this layout (``occkit synth --format semantickitti``).
write_synthetic = world_writer("occkit.worlds.driving.kitti_export:export_semantickitti", overwrite=True)


FORMAT = format_of_module(
    __name__,
    name="semantickitti",
    title="SemanticKITTI",
    summary="SemanticKITTI SSC (sequences/<XX>/voxels/*.label, calib.txt; one camera, image_2)",
    label_frame="lidar",
    splits=("train", "val", "test"),
    detection={"priority": 90},
    **MONOCULAR_SSC,
)
