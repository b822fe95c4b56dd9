"""SurroundOcc's nuScenes occupancy (``--format surroundocc``): sparse ``(N, 4)`` ``x, y, z, class``
label files per LiDAR key frame, 200 x 200 x 16 voxels of 0.5 m in the LiDAR frame, 17 classes
(0 = empty, 255 = ignored noise), scored by SurroundOcc's metric.

The layout, reader and writer: :mod:`occkit.data.surroundocc`; the metric:
:mod:`occkit.metrics.nusc_occupancy`; what it shares with OpenOccupancy:
:mod:`occkit.formats._lidar_layout`; user documentation: docs/formats/nuscenes-occupancy.md.
"""

from __future__ import annotations

from occkit.data.surroundocc import SurroundOccDataset
from occkit.formats._lidar_layout import lidar_frame_format
from occkit.formats._nusc_labels import SURROUNDOCC_WRITER

FORMAT = lidar_frame_format(
    SurroundOccDataset,
    name="surroundocc",
    title="SurroundOcc",
    summary="SurroundOcc: nuscenes_occ/samples/<LiDAR file>.npy, (N, 4) x y z class, 200x200x16 at 0.5 m, LiDAR frame",
    label_writer=SURROUNDOCC_WRITER,
)
