"""A tiny KITTI raw drive in KITTI's own files, for the tests of the readers that take one (the ``kitti-raw``
reader, and the ``rosbag`` reader on a bag kitti2mcap made from such a drive). A helper module, not a test
file: pytest puts this folder on the path of the tests beside it.

:func:`write_drive` writes what every such drive holds (the three calibration files with KITTI's headers,
per scan a velodyne ``.bin``, an OXTS row and the cameras' PNGs, the timestamps); the tests decide the values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

DATE = "2011_09_26"
DRIVE = f"{DATE}_drive_0001_sync"
CAMERAS = ("image_02", "image_03")


def rot(axis: int, a: float) -> np.ndarray:
    """The rotation by ``a`` radians about ``axis`` (0: x, 1: y, 2: z)."""
    c, s = math.cos(a), math.sin(a)
    i, j = [k for k in range(3) if k != axis]
    R = np.eye(3)
    R[i, i], R[i, j], R[j, i], R[j, j] = c, -s, s, c
    return R


def calib_line(key: str, M: Any, number: Callable[[float], str] = repr) -> str:
    """``KEY: v v v ...``, a calibration file's line of the values of ``M`` (row-major), each as ``number``
    writes it."""
    return f"{key}: " + " ".join(number(float(v)) for v in np.asarray(M).reshape(-1)) + "\n"


def write_drive(
    root: Path,
    imu_to_velo: str,
    velo_to_cam: str,
    cam_to_cam: str,
    scans: Iterable[tuple[np.ndarray, list[float], Mapping[str, Any], str]],
    stamped: tuple[str, ...] = ("velodyne_points", "oxts", *CAMERAS),
) -> Path:
    """The drive ``root/DATE/DRIVE``; returns its folder.

    ``imu_to_velo``, ``velo_to_cam`` and ``cam_to_cam``: the calibration files' lines after KITTI's header
    (``calib_time``; ``corner_dist`` too in ``calib_cam_to_cam.txt``; ``delta_f`` and ``delta_c`` ending
    ``calib_velo_to_cam.txt``). ``scans``: per scan its ``(N, 4)`` points (x y z reflectance), its OXTS row's 25
    values (the five status integers are added), the cameras' images (``{camera: PIL image}``) and its
    timestamp as KITTI writes it; ``stamped``: the folders given a ``timestamps.txt``.
    """
    date = root / DATE
    d = date / DRIVE
    for sub in ("velodyne_points", "oxts", *CAMERAS):
        (d / sub / "data").mkdir(parents=True, exist_ok=True)
    (date / "calib_imu_to_velo.txt").write_text("calib_time: 25-May-2012 16:47:16\n" + imu_to_velo)
    (date / "calib_velo_to_cam.txt").write_text(
        "calib_time: 15-Mar-2012 11:37:16\n" + velo_to_cam + "delta_f: 0 0\ndelta_c: 0 0\n"
    )
    (date / "calib_cam_to_cam.txt").write_text(
        "calib_time: 09-Jan-2012 13:57:47\ncorner_dist: 9.950000e-02\n" + cam_to_cam
    )
    stamps = []
    for i, (points, oxts, images, stamp) in enumerate(scans):
        np.asarray(points).astype("<f4").tofile(d / "velodyne_points" / "data" / f"{i:010d}.bin")
        (d / "oxts" / "data" / f"{i:010d}.txt").write_text(" ".join(repr(float(v)) for v in oxts) + " 4 10 4 4 6\n")
        for cam, image in images.items():
            image.save(d / cam / "data" / f"{i:010d}.png")
        stamps.append(stamp)
    for f in stamped:
        (d / f / "timestamps.txt").write_text("\n".join(stamps) + "\n")
    return d
