"""What a nuScenes table folder (``v1.0-*``) holds, in one place for the two modules that meet it:
the reader of raw nuScenes (:mod:`occkit.data.nuscenes_raw`, ``occkit prepare nuscenes``) and the
synthetic world's writer of that layout (:mod:`occkit.worlds.driving.nuscenes_export`)."""

from __future__ import annotations

#: Every table nuScenes-devkit's ``NuScenes`` loads, in its order (all of them must be there).
NUSCENES_TABLES: tuple[str, ...] = (
    "category",
    "attribute",
    "visibility",
    "instance",
    "sensor",
    "calibrated_sensor",
    "ego_pose",
    "log",
    "scene",
    "sample",
    "sample_data",
    "sample_annotation",
    "map",
)
#: The channel of the LiDAR whose keyframes are the samples (``sample["data"]["LIDAR_TOP"]``).
LIDAR_CHANNEL = "LIDAR_TOP"
