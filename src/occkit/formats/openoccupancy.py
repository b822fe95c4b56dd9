"""OpenOccupancy's nuScenes-Occupancy (``--format openoccupancy``): sparse ``(N, 4)`` ``z, y, x, class``
label files per LiDAR key frame, 512 x 512 x 40 voxels of 0.2 m in the LiDAR frame, 17 classes
(0 = empty, 255 = ignored noise), scored by OpenOccupancy's metric (the same computation as SurroundOcc's).

The layout, reader and writer: :mod:`occkit.data.openoccupancy`; the metric:
:mod:`occkit.metrics.nusc_occupancy`; user documentation: docs/formats/nuscenes-occupancy.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from occkit.data import openoccupancy as layout
from occkit.data.lidar_frame import (
    NUSC_OCC_CLASSES,
    NUSC_OCC_EMPTY,
    NUSC_OCC_IGNORE,
    NUSC_OCC_PALETTE,
    index_predictions,
    prediction_relpath,
)
from occkit.formats._nusc_labels import OPENOCCUPANCY_WRITER
from occkit.formats.spec import ClassTable, DatasetFormat, OpenOptions, PredictionFiles


def _detect(root: Path) -> str | None:
    if (root / "annotations.json").is_file() and (root / layout.LABEL_DIR).is_dir():
        return f"annotations.json and {layout.LABEL_DIR}/"
    return None


def _open(root: Path, split: str, options: OpenOptions) -> layout.OpenOccupancyDataset:
    return layout.OpenOccupancyDataset(
        root,
        split,
        cameras=options.cameras,
        load_images=options.load_images,
        load_gt=options.load_gt,
        load_extras=options.load_extras,
        cache_mb=options.cache_mb,
    )


def _metrics(options: dict[str, Any]) -> list[Any]:
    from occkit.metrics.nusc_occupancy import NuScenesOccupancyMetric

    return [
        NuScenesOccupancyMetric(
            "openoccupancy", num_classes=int(options.get("num_classes") or 17), device=options.get("device")
        )
    ]


def _write_synthetic(out: Path, config: Any) -> None:
    layout.write_synthetic(out, config, overwrite=True, progress=True)


FORMAT = DatasetFormat(
    name="openoccupancy",
    title="OpenOccupancy (nuScenes-Occupancy)",
    priority=8,  # before Occ3D (10), whose detect claims any folder holding annotations.json
    summary=(
        "OpenOccupancy: nuScenes-Occupancy/scene_<scene>/occupancy/<LiDAR token>.npy, (N, 4) z y x class, "
        "512x512x40 at 0.2 m, LiDAR frame"
    ),
    modality="multi-camera",
    classes=ClassTable(NUSC_OCC_CLASSES, free=NUSC_OCC_EMPTY, ignore=NUSC_OCC_IGNORE, palette=NUSC_OCC_PALETTE),
    grid=layout.openoccupancy_grid(),
    label_frame="lidar",
    ground_z=-1.84,  # nuScenes' LIDAR_TOP (and the synthetic rig's LiDAR) 1.84 m above the road
    splits=("train", "val"),
    detect=_detect,
    open=_open,
    metrics=_metrics,
    predictions=PredictionFiles(
        write=layout.write_prediction,
        index=index_predictions,
        read=layout.read_prediction,
        relpath=prediction_relpath,
    ),
    write_synthetic=_write_synthetic,
    table_keys=("miou", "miou_all", "geometry_iou", "geometry_precision", "geometry_recall"),
    label_writer=OPENOCCUPANCY_WRITER,
)
