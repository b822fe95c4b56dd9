"""The nuScenes-like sensor rig: six cameras and a 32-beam roof LiDAR.

Calibration values are rounded from a nuScenes vehicle (``calibrated_sensor`` of scene-0061):
camera positions on the roof (metres, ego frame), yaws 0, -55, +55, 180, +110, -110 degrees
(CAM_FRONT_LEFT looks to +y, left), intrinsics at 1600 x 900. The LiDAR sits at 1.84 m with its
x axis to the right (yaw -90 degrees), as on the nuScenes car.
"""

from __future__ import annotations

import math

import torch

from occkit.data.occ3d import NUSCENES_CAMERAS
from occkit.geometry.transforms import make_transform, rotation_z

NUSCENES_IMAGE_SIZE = (900, 1600)
"""(height, width) of the nuScenes camera images the intrinsics below refer to."""

#: camera: (translation xyz in the ego frame, yaw in degrees, fx, cx, cy) at 1600 x 900.
_RIG: dict[str, tuple[tuple[float, float, float], float, float, float, float]] = {
    "CAM_FRONT": ((1.70, 0.016, 1.511), 0.0, 1266.4, 816.3, 491.5),
    "CAM_FRONT_RIGHT": ((1.551, -0.493, 1.496), -55.0, 1260.8, 808.0, 495.3),
    "CAM_FRONT_LEFT": ((1.524, 0.495, 1.509), 55.0, 1272.6, 826.6, 479.8),
    "CAM_BACK": ((0.028, 0.003, 1.579), 180.0, 809.2, 829.2, 481.8),
    "CAM_BACK_LEFT": ((1.036, 0.485, 1.591), 110.0, 1256.7, 817.8, 452.0),
    "CAM_BACK_RIGHT": ((1.015, -0.480, 1.562), -110.0, 1259.5, 807.3, 501.2),
}
LIDAR_TRANSLATION = (0.986, 0.0, 1.840)
LIDAR_YAW_DEG = -90.0
LIDAR_ELEVATION_DEG = (-30.67, 10.67)


def camera_intrinsics(cam: str, image_size: tuple[int, int]) -> torch.Tensor:
    """``(3, 3)`` float64 intrinsics of ``cam`` for an ``(H, W)`` image: nuScenes' scaled by
    ``s = max(W / 1600, H / 900)`` (cover), then cropped: horizontally centred, vertically from
    the top (the sky), as BEVDet-style pipelines make 256 x 704 images."""
    if cam not in _RIG:
        raise KeyError(f"unknown camera {cam!r}; expected one of {NUSCENES_CAMERAS}")
    H, W = image_size
    _, _, f, cx, cy = _RIG[cam]
    s = max(W / NUSCENES_IMAGE_SIZE[1], H / NUSCENES_IMAGE_SIZE[0])
    new_w, new_h = NUSCENES_IMAGE_SIZE[1] * s, NUSCENES_IMAGE_SIZE[0] * s
    left, top = (new_w - W) / 2, new_h - H
    return torch.tensor([[f * s, 0.0, cx * s - left], [0.0, f * s, cy * s - top], [0.0, 0.0, 1.0]], dtype=torch.float64)


def T_ego_from_camera(cam: str) -> torch.Tensor:
    """``(4, 4)`` float64 camera (OpenCV: x right, y down, z forward) -> ego."""
    if cam not in _RIG:
        raise KeyError(f"unknown camera {cam!r}; expected one of {NUSCENES_CAMERAS}")
    t, yaw_deg, *_ = _RIG[cam]
    yaw = math.radians(yaw_deg)
    fwd = (math.cos(yaw), math.sin(yaw), 0.0)
    right = (math.sin(yaw), -math.cos(yaw), 0.0)
    down = (0.0, 0.0, -1.0)
    R = torch.tensor([right, down, fwd], dtype=torch.float64).T  # columns: camera axes in ego
    return make_transform(R, torch.tensor(t, dtype=torch.float64))


def T_ego_from_lidar() -> torch.Tensor:
    """``(4, 4)`` float64 LiDAR (x right, y forward, z up) -> ego."""
    return make_transform(rotation_z(math.radians(LIDAR_YAW_DEG)), torch.tensor(LIDAR_TRANSLATION, dtype=torch.float64))


def lidar_elevations(beams: int) -> torch.Tensor:
    """``(beams,)`` float64 beam elevations in radians, uniform, lowest first."""
    lo, hi = LIDAR_ELEVATION_DEG
    if beams == 1:
        return torch.zeros(1, dtype=torch.float64)
    return torch.deg2rad(torch.linspace(lo, hi, beams, dtype=torch.float64))
