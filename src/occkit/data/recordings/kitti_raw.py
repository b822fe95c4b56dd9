"""KITTI raw drives as a recording (docs/labels.md, "KITTI raw drives"): each synchronised drive a scene,
every velodyne scan a sweep, posed by the drive's OXTS (GPS/IMU) rows, with the rectified colour cameras
``image_02`` and ``image_03``.

``--data`` is a drive folder, a date folder holding drives, or a folder holding date folders::

    YYYY_MM_DD/calib_cam_to_cam.txt        P_rect_02, P_rect_03 (rectified cameras), R_rect_00
    YYYY_MM_DD/calib_velo_to_cam.txt       R, T: velodyne -> camera 0 (unrectified)
    YYYY_MM_DD/calib_imu_to_velo.txt       R, T: IMU (the OXTS's frame) -> velodyne
    YYYY_MM_DD/YYYY_MM_DD_drive_NNNN_sync/
        velodyne_points/data/NNNNNNNNNN.bin     float32 x y z reflectance, velodyne frame
        velodyne_points/timestamps.txt          one date-time a scan (optional: 10 Hz without it)
        oxts/data/NNNNNNNNNN.txt                one row of 30 values a scan: lat lon alt roll pitch yaw ...
        image_02/data/NNNNNNNNNN.png            left colour camera, rectified (optional)
        image_03/data/NNNNNNNNNN.png            right colour camera, rectified (optional)

A calibration file is looked for in the drive folder first, then in its date folder (where KITTI puts it).
The drives are synchronised: scan ``i``, OXTS row ``i`` and image ``i`` are one moment, so a keyframe's
images are those of its scan's index.

Poses: each OXTS row gives the IMU's pose in a Mercator world, as KITTI's raw devkit (and pykitti) turn it
into one: the Mercator scale ``s = cos(lat0)`` of the first row's latitude, ``x = s R lon pi / 180``,
``y = s R ln tan((90 + lat) pi / 360)`` with the earth's radius ``R = 6378137`` m, ``z = alt``, the rotation
``Rz(yaw) Ry(pitch) Rx(roll)``. The code here is occkit's own (pykitti is not a dependency: it reads the same
rows and brings matplotlib and pandas with it).

The ego frame is the ``kitti`` reader's (:mod:`occkit.data.recordings.kitti`): under the velodyne, with its
axes, z = 0 at the ground, ``--lidar-height`` metres below the velodyne (default 1.73, KITTI's HDL-64E), so
that a drive and the SemanticKITTI sequence made from it are labelled in the same frame. The world frame is
the first scan's ego frame. The cameras: the rectified cameras' intrinsics ``K`` are ``P_rect_0X``'s first
three columns; a point of the velodyne lands in rectified camera ``X`` as ``P_rect_0X R_rect_00
T_cam0_from_velo``, so ``T_camX_from_velo`` is ``R_rect_00 T_cam0_from_velo`` moved by the camera's
offset ``K^-1 P_rect_0X[:, 3]`` (the stereo baseline), and ``T_ego_from_cam`` is the lift times its inverse.

The raw scans carry no point labels (geometry only) and KITTI raw's tracklets are not read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from occkit.data.recordings.kitti import (
    DEFAULT_KEYFRAME_EVERY,
    KittiOptions,
    _keyframes,
    _lift,
    _raw_record,
    _scan_files,
    scan_token,
)
from occkit.data.recordings.spec import RecordingReader
from occkit.data.recordings.text_rows import keyed_numbers, numbers, rigid

#: The rectified colour cameras of a drive, read where their folder holds images.
RAW_CAMERAS = ("image_02", "image_03")
#: Values of an OXTS row (lat lon alt roll pitch yaw vn ve vf vl vu ax ay az af al au wx wy wz wf wl wu
#: pos_accuracy vel_accuracy navstat numsats posmode velmode orimode).
OXTS_VALUES = 30
#: The earth's radius of KITTI's Mercator projection, metres.
EARTH_RADIUS = 6378137.0
#: The calibration files of a drive's date folder.
CALIB_FILES = ("calib_cam_to_cam.txt", "calib_velo_to_cam.txt", "calib_imu_to_velo.txt")


def is_drive(folder: Path) -> bool:
    """Whether ``folder`` holds a drive's scans and OXTS rows (``velodyne_points/data``, ``oxts/data``)."""
    return (folder / "velodyne_points" / "data").is_dir() and (folder / "oxts" / "data").is_dir()


def find_drives(path: Path) -> list[Path]:
    """The drives ``path`` names: itself, the drives in it (a date folder), or those of its date folders."""
    if not path.is_dir():
        return []
    if is_drive(path):
        return [path]
    subs = sorted(d for d in path.iterdir() if d.is_dir())
    drives = [d for d in subs if is_drive(d)]
    if drives:
        return drives
    return [d for date in subs for d in sorted(date.iterdir()) if d.is_dir() and is_drive(d)]


# ------------------------------------------------------------------------------------ files


def calib_file(drive: Path, name: str) -> Path:
    """A calibration file of ``drive``: in the drive folder, else in its date folder; missing: one line."""
    for f in (drive / name, drive.parent / name):
        if f.is_file():
            return f
    raise FileNotFoundError(
        f"{drive.parent / name}: no such calibration file (a KITTI raw drive's date folder holds "
        f"{', '.join(CALIB_FILES)})"
    )


def read_rt(path: Path) -> np.ndarray:
    """``R`` (9 numbers) and ``T`` (3) of ``calib_velo_to_cam.txt`` / ``calib_imu_to_velo.txt`` as ``(4, 4)``."""
    v = keyed_numbers(path, {"R": 9, "T": 3})
    return rigid(np.concatenate([v["R"].reshape(3, 3), v["T"].reshape(3, 1)], 1), f"{path}: R, T")


@dataclass
class RawCalibration:
    """A drive's calibration: ``T_velo_from_imu``, ``T_cam0_from_velo``, ``R_rect_00`` (4x4) and each
    rectified camera's ``P_rect`` (3x4) by camera folder name."""

    T_velo_from_imu: np.ndarray
    T_cam0_from_velo: np.ndarray
    R_rect_00: np.ndarray
    P_rect: dict[str, np.ndarray]
    where: Path

    def camera(self, cam: str) -> tuple[np.ndarray, np.ndarray]:
        """``K (3, 3)`` and ``T_cam_from_velo (4, 4)`` of rectified camera ``cam`` (``image_02``)."""
        from occkit.data.semantickitti import camera_from_calib

        return camera_from_calib(self.P_rect[cam], self.R_rect_00 @ self.T_cam0_from_velo)


def read_calibration(drive: Path, cameras: tuple[str, ...] = RAW_CAMERAS) -> RawCalibration:
    """The three calibration files of ``drive``, checked (``cameras``: the camera folders whose ``P_rect``
    must be there)."""
    from occkit.geometry.transforms import singular_intrinsic

    T_vi = read_rt(calib_file(drive, "calib_imu_to_velo.txt"))
    T_cv = read_rt(calib_file(drive, "calib_velo_to_cam.txt"))
    c2c = calib_file(drive, "calib_cam_to_cam.txt")
    wanted = {"R_rect_00": 9, **{f"P_rect_{c[-2:]}": 12 for c in cameras}}
    v = keyed_numbers(c2c, wanted)
    R = np.eye(4)
    R[:3, :3] = v["R_rect_00"].reshape(3, 3)
    rigid(R[:3], f"{c2c}: R_rect_00")
    P = {}
    for c in cameras:
        P[c] = v[f"P_rect_{c[-2:]}"].reshape(3, 4)
        if singular_intrinsic(P[c][:, :3]):
            raise ValueError(f"{c2c}: P_rect_{c[-2:]}'s first three columns are not an intrinsic matrix (singular)")
    return RawCalibration(T_vi, T_cv, R, P, c2c)


def read_oxts(path: Path) -> np.ndarray:
    """One OXTS row (``oxts/data/NNNNNNNNNN.txt``): its 30 values, float64; another count, or a first six that
    are no position, refused."""
    want = f"{OXTS_VALUES}, an OXTS row's (lat lon alt roll pitch yaw vn ve ... orimode)"
    v = numbers(path.read_text(errors="replace"), str(path), (OXTS_VALUES,), want, finite=False)
    if not np.isfinite(v[:6]).all() or abs(v[0]) >= 90:
        raise ValueError(f"{path}: lat lon alt roll pitch yaw {v[:6].tolist()} are not a position (|lat| < 90)")
    return v


def mercator_scale(lat0: float) -> float:
    """The Mercator scale of the first row's latitude (degrees)."""
    return math.cos(lat0 * math.pi / 180.0)


def oxts_position(lat: float, lon: float, alt: float, scale: float) -> np.ndarray:
    """The Mercator position, metres, of a latitude, longitude (degrees) and altitude."""
    x = scale * lon * math.pi * EARTH_RADIUS / 180.0
    y = scale * EARTH_RADIUS * math.log(math.tan((90.0 + lat) * math.pi / 360.0))
    return np.array([x, y, alt], np.float64)


def oxts_rotation(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """``Rz(yaw) Ry(pitch) Rx(roll)``, radians: the IMU's axes in the Mercator world."""
    cr, sr, cp, sp, cy, sy = (f(a) for a in (roll, pitch, yaw) for f in (math.cos, math.sin))
    Rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    Ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    Rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


def oxts_poses(rows: list[np.ndarray]) -> list[np.ndarray]:
    """``T_world_from_imu`` of each OXTS row, the world Mercator's axes with its origin at the first row."""
    scale = mercator_scale(float(rows[0][0]))
    t0 = oxts_position(*rows[0][:3], scale)
    out = []
    for r in rows:
        T = np.eye(4)
        T[:3, :3] = oxts_rotation(*r[3:6])
        T[:3, 3] = oxts_position(*r[:3], scale) - t0
        out.append(T)
    return out


def _per_scan(folder: Path, files: list[Path], suffix: str, what: str) -> list[Path]:
    """The file of each scan's index in ``folder`` (``0000000005.txt`` for ``0000000005.bin``); a scan without
    one is refused naming the folder, how many it holds and the first scan it lacks."""
    out = [folder / f"{f.stem}{suffix}" for f in files]
    lacking = [f for f, o in zip(files, out) if not o.is_file()]
    if lacking:
        have = len(list(folder.glob(f"*{suffix}"))) if folder.is_dir() else 0
        raise ValueError(
            f"{folder}: {have} {what} for {len(files)} scans (scan {lacking[0].name} has no {lacking[0].stem}{suffix}; "
            "a synchronised drive has one a scan)"
        )
    return out


def drive_cameras(drive: Path) -> list[str]:
    """The rectified cameras of ``drive`` whose folder holds images (``image_02/data/*.png``)."""
    return [c for c in RAW_CAMERAS if (drive / c / "data").is_dir() and any((drive / c / "data").glob("*.png"))]


# ------------------------------------------------------------------------------------ the reader


@dataclass(frozen=True)
class KittiRawOptions(KittiOptions):
    """The options of KITTI raw drives (the ``kitti`` reader's: ``--keyframe-every``, default every 5th scan,
    and ``--lidar-height``)."""


class KittiRawReader(RecordingReader[KittiRawOptions], name="kitti-raw"):
    """KITTI raw synchronised drives (docs/labels.md, "KITTI raw drives")."""

    description = (
        "KITTI raw drives (YYYY_MM_DD/<drive>_sync: velodyne_points, oxts, image_02/03; the date folder's "
        "calib_*.txt): a drive, a date folder or a folder of dates"
    )

    @classmethod
    def detect(cls, path: Path) -> str | None:
        drives = find_drives(path)
        if not drives:
            return None
        return f"{drives[0]}: a KITTI raw drive (velodyne_points/data, oxts/data)" + (
            f" and {len(drives) - 1} more" if len(drives) > 1 else ""
        )

    def __init__(self, source: Path, options: KittiRawOptions, wanted: list[str] | None = None) -> None:
        super().__init__(source, options, wanted)
        drives = find_drives(source)
        if not drives:
            raise ValueError(
                f"--data {source}: holds no KITTI raw drive (a folder with velodyne_points/data/ and oxts/data/, "
                "as YYYY_MM_DD/YYYY_MM_DD_drive_NNNN_sync/)"
            )
        names = [d.name for d in drives]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"--data {source}: drives named {twice} more than once (a drive's name is its scene)")
        self.drives = dict(zip(names, drives))
        self._scenes = names
        for name, drive in self.drives.items():
            if wanted is not None and name not in wanted:
                continue
            cams = drive_cameras(drive)
            if cams:
                self.image_links[name] = drive
            for cam in cams:
                for p in sorted((drive / cam / "data").glob("*.png")):
                    self.images.setdefault(scan_token(name, p.stem), {})[cam] = f"{name}/{cam}/data/{p.name}"
        self.describe = f"KITTI raw {source}, {len(names)} drive(s)"

    def read(self, scene: str, load_points: bool = True) -> Any:
        from occkit.data.recordings.point_cameras import image_size
        from occkit.data.scene_record import Camera

        drive = self.drives[scene]
        vel = drive / "velodyne_points"
        files = _scan_files(vel / "data", 10)
        cams = drive_cameras(drive)
        calib = read_calibration(drive, tuple(cams))
        oxts = [read_oxts(f) for f in _per_scan(drive / "oxts" / "data", files, ".txt", "OXTS rows")]
        T_vi_inv = np.linalg.inv(calib.T_velo_from_imu)
        T_wv = [T @ T_vi_inv for T in oxts_poses(oxts)]
        every = self.options.keyframe_every or DEFAULT_KEYFRAME_EVERY
        keys = _keyframes([f.stem for f in files], every, None, vel)
        height = self.options.height()
        cameras = {}
        for cam in cams:
            size = image_size(_per_scan(drive / cam / "data", files, ".png", "images")[0])
            K, T_cam_velo = calib.camera(cam)
            cameras[cam] = Camera(cam, K, _lift(height) @ np.linalg.inv(T_cam_velo), size)
        return _raw_record(scene, files, T_wv, vel / "timestamps.txt", keys, height, cameras, drive, load_points)


READER = KittiRawReader
