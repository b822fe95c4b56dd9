"""OpenOccupancy's nuScenes-Occupancy (``--format openoccupancy``): sparse ``(N, 4)`` ``z, y, x, class``
label files per LiDAR key frame, 512 x 512 x 40 voxels of 0.2 m in the LiDAR frame, 17 classes
(0 = empty, 255 = ignored noise), scored by OpenOccupancy's metric (the same computation as SurroundOcc's).

The layout, reader and writer: :mod:`occkit.data.openoccupancy`; the metric:
:mod:`occkit.metrics.nusc_occupancy`; what it shares with SurroundOcc:
:mod:`occkit.formats._lidar_layout`; user documentation: docs/formats/nuscenes-occupancy.md.
"""

from __future__ import annotations

from occkit.data.openoccupancy import OpenOccupancyDataset
from occkit.formats._lidar_layout import lidar_frame_format
from occkit.formats._nusc_labels import OPENOCCUPANCY_WRITER

FORMAT = lidar_frame_format(
    OpenOccupancyDataset,
    name="openoccupancy",
    title="OpenOccupancy (nuScenes-Occupancy)",
    summary=(
        "OpenOccupancy: nuScenes-Occupancy/scene_<scene>/occupancy/<LiDAR token>.npy, (N, 4) z y x class, "
        "512x512x40 at 0.2 m, LiDAR frame"
    ),
    label_writer=OPENOCCUPANCY_WRITER,
)
