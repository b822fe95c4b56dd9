"""The two nuScenes occupancy labellings in the LiDAR frame (SurroundOcc, OpenOccupancy) share
everything but their label files' place and grid: one ``annotations.json`` frame index, sparse
``(N, 4)`` label files per LiDAR key frame, the 17 classes (0 = empty, 255 = ignored noise), the
metric both released repositories compute (:mod:`occkit.metrics.nusc_occupancy`), the prediction
files and the label writer's family. :func:`lidar_frame_format` builds either format from what
differs; ``formats/surroundocc.py`` and ``formats/openoccupancy.py`` name it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from occkit.data.lidar_frame import (
    NUSC_OCC_CLASSES,
    NUSC_OCC_EMPTY,
    NUSC_OCC_IGNORE,
    NUSC_OCC_PALETTE,
    DuplicateVoxels,
    LidarFrameDataset,
    index_predictions,
    prediction_relpath,
)
from occkit.formats.spec import (
    ClassTable,
    DatasetFormat,
    Detection,
    FormatScoring,
    LabelWriter,
    OpenOptions,
    PredictionFiles,
    Writers,
)

#: The height of the road in the LiDAR frame: nuScenes' LIDAR_TOP (and the synthetic rig's LiDAR)
#: sits 1.84 m above it.
LIDAR_GROUND_Z = -1.84


def lidar_frame_format(
    dataset: type[LidarFrameDataset], *, name: str, title: str, summary: str, label_writer: LabelWriter
) -> DatasetFormat:
    """The :class:`DatasetFormat` of a nuScenes occupancy labelling in the LiDAR frame read by
    ``dataset``, named after its ``format_name``, of its ``label_grid``, its label files under its
    ``label_dir`` and its ``files`` (the predictions' writer and reader, the duplicate voxels'
    ``policy``); ``name`` is said again in the call, as ``occkit VERB --help`` reads it from the module's source
    without importing it (occkit.help_registries), and must be the class's; the synthetic world written in it by
    :func:`occkit.worlds.driving.lidar_frame_export.write_lidar_frame_layout` under that name; its
    metric is :class:`~occkit.metrics.nusc_occupancy.NuScenesOccupancyMetric` under that name."""
    if name != dataset.format_name:
        raise ValueError(f"lidar_frame_format: name {name!r} is not {dataset.__name__}'s {dataset.format_name!r}")
    files, label_dir = dataset.files, dataset.label_dir

    def detect(root: Path) -> str | None:
        if (root / "annotations.json").is_file() and (root / label_dir).is_dir():
            return f"annotations.json and {label_dir}/"
        return None

    def open_split(root: Path, split: str, options: OpenOptions) -> Any:
        return dataset(
            root,
            split,
            cameras=options.cameras,
            load_images=options.load_images,
            load_gt=options.load_gt,
            load_extras=options.load_extras,
            cache_mb=options.cache_mb,
        )

    def write_synthetic(out: Path, config: Any) -> None:
        from occkit.worlds.driving.lidar_frame_export import write_lidar_frame_layout

        write_lidar_frame_layout(name, out, config, overwrite=True, progress=True)

    def metrics(options: dict[str, Any]) -> list[Any]:
        from occkit.metrics.nusc_occupancy import NuScenesOccupancyMetric

        n = int(options.get("num_classes") or len(NUSC_OCC_CLASSES))
        return [NuScenesOccupancyMetric(name, num_classes=n, device=options.get("device"))]

    def accept_duplicates(fmt: DatasetFormat) -> tuple[DatasetFormat, Callable[[dict[str, Any]], None]]:
        """The format reading a label or prediction file that lists a voxel twice with two classes as the
        released code reads it (``files.policy``; ``occkit eval --allow-duplicate-voxels``; by
        default such a file is refused), and what that adds to the result: ``duplicate_voxels``
        (``policy``, ``files``: how many were read so), with a warning naming them."""
        seen = DuplicateVoxels()

        def open_accepting(root: Path, split: str, options: OpenOptions) -> Any:
            ds = open_split(root, split, options)
            ds.duplicate_voxels = seen
            return ds

        def finish(result: dict[str, Any]) -> None:
            result["duplicate_voxels"] = {"policy": files.policy, "files": len(seen.files)}
            if seen.files:
                warnings.warn(
                    f"--allow-duplicate-voxels: {len(seen.files)} "
                    f"{'file lists' if len(seen.files) == 1 else 'files list'} a voxel twice with two classes, "
                    f"read as {files.policy} (first: {seen.files[0]})",
                    stacklevel=3,
                )

        reading = replace(fmt.predictions, read=partial(files.read_prediction, duplicates=seen))
        return replace(fmt, open=open_accepting, predictions=reading), finish

    fmt = DatasetFormat(
        name=name,
        title=title,
        summary=summary,
        modality="multi-camera",
        classes=ClassTable(NUSC_OCC_CLASSES, free=NUSC_OCC_EMPTY, ignore=NUSC_OCC_IGNORE, palette=NUSC_OCC_PALETTE),
        grid=dataset.label_grid,
        label_frame="lidar",
        ground_z=LIDAR_GROUND_Z,
        splits=("train", "val"),
        open=open_split,
        predictions=PredictionFiles(
            write=files.write_prediction,
            index=index_predictions,
            read=files.read_prediction,
            relpath=prediction_relpath,
        ),
        detection=Detection(
            detect,
            priority=8,  # before Occ3D (10), whose detect claims any folder holding annotations.json
            refines=("occ3d",),  # ... so a folder that both claim is this variant's
        ),
        scoring=FormatScoring(
            metrics,
            read_variants={"duplicate_voxels": accept_duplicates},
            table_keys=("miou", "miou_all", "geometry_iou", "geometry_precision", "geometry_recall"),
        ),
        writers=Writers(write_synthetic=write_synthetic, label_writer=label_writer),
    )
    return fmt
