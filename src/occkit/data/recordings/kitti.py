"""SemanticKITTI and KITTI-360 sequences as a recording (docs/labels.md, "SemanticKITTI and KITTI-360
sequences"): each sequence a scene, every velodyne scan a sweep.

SemanticKITTI (``--data`` a folder holding ``sequences/``, or the ``sequences/`` folder itself)::

    sequences/<XX>/velodyne/NNNNNN.bin   float32 x y z reflectance, velodyne frame
    sequences/<XX>/labels/NNNNNN.label   uint32: semantic raw id (lower 16 bits), instance id (upper 16); optional
    sequences/<XX>/poses.txt             camera 0's pose of every scan (3x4 rows, relative to the first scan)
    sequences/<XX>/calib.txt             Tr: velodyne -> camera 0; P2, P3: cameras 2 and 3 (image_2, image_3)
    sequences/<XX>/image_2|image_3/NNNNNN.png   the colour cameras (optional)
    sequences/<XX>/times.txt             seconds of every scan (optional: 10 Hz without it)
    sequences/<XX>/voxels/NNNNNN.label   the SSC labels (optional): their scans are the keyframes

KITTI-360 (``--data`` its root)::

    data_3d_raw/<seq>/velodyne_points/data/NNNNNNNNNN.bin   float32 x y z reflectance
    data_3d_raw/<seq>/velodyne_points/timestamps.txt       one date-time a scan (optional)
    data_poses/<seq>/poses.txt                             frame index + 3x4 pose (GPS/IMU) -> world
    calibration/calib_cam_to_pose.txt                      image_00, image_01: 3x4 camera -> pose frame
    calibration/calib_cam_to_velo.txt                      3x4 camera 0 -> velodyne
    calibration/perspective.txt                            P_rect_00/01, R_rect_00/01 (where images are)
    data_2d_raw/<seq>/image_00|image_01/data_rect/NNNNNNNNNN.png   the rectified perspective cameras (optional)
    data_2d_raw/<seq>/voxels/NNNNNN.label                  SSCBench's SSC labels (optional): the keyframes

The ego frame: KITTI's poses are the camera's (SemanticKITTI) or the GPS/IMU's (KITTI-360), and the
car's reference point is nowhere in the files; the ego frame here sits under the velodyne (its x, y),
with the velodyne's axes and z = 0 at the ground, ``--lidar-height`` metres below the velodyne (KITTI's
HDL-64E is mounted 1.73 m above the road). ``T_ego_from_velodyne`` is that lift; the world frame is the
first scan's ego frame (z up). The labels of ``occkit label`` lie on Occ3D's grid around that ego origin.

Cameras, where their folder holds images (each image named by its scan's index, recorded in the labels'
index): SemanticKITTI's rectified ``image_2`` and ``image_3``, ``K`` and the offset from camera 0 from P2 and
P3 (``P = K [I | t]``), camera 0 from ``Tr``; KITTI-360's ``image_00`` and ``image_01``, ``K`` from
``P_rect_0X`` and the pose of the rectified camera ``calib_cam_to_pose``'s times the inverse of ``R_rect_0X``
(as KITTI-360's own scripts pose it), into the velodyne through camera 0's two calibrations.

Point labels: the raw ids through SemanticKITTI's learning map onto its learning classes
(:data:`CLASSES`: ``unlabeled``, ``car`` .. ``traffic-sign``). SemanticKITTI gives no boxes; its moving
classes (raw ids 252-259) are the moving objects: each moving instance of a scan becomes a box (heading
along the instance's motion over the scans two before and two after, the length and width of its largest
extent over the sequence centred on the scan's points, its height from its lowest to its highest point
over the sequence, grown by :data:`BOX_PAD`), its track the instance, so the label pipeline carries it
as it carries a rig's tracks. KITTI-360's raw scans carry no labels (geometry only) and its
3D boxes are not read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from occkit.data.recordings.spec import KeyframeEveryOptions, RecordingReader, option
from occkit.data.recordings.text_rows import keyed_numbers, number_rows, numbers, rigid
from occkit.labels import SEMANTICKITTI_CLASSES

#: SemanticKITTI's learning classes as point classes (class 0, "empty" in the SSC labels, is the
#: points' "unlabeled": outliers, other-structure, other-object, raw ids outside the map).
CLASSES: tuple[str, ...] = ("unlabeled", *SEMANTICKITTI_CLASSES[1:])
#: SemanticKITTI's moving raw ids (moving-car .. moving-other-vehicle).
MOVING_RAW = (252, 253, 254, 255, 256, 257, 258, 259)
#: KITTI's velodyne above the road, metres (the HDL-64E on the Passat; the synthetic world's is 1.84).
KITTI_LIDAR_HEIGHT = 1.73
#: Scans a second without a times file (KITTI's velodyne spins at 10 Hz).
KITTI_SCAN_RATE = 10.0
#: SemanticKITTI's cameras (a sequence's image folder) and the ``calib.txt`` projection of each.
SEMANTICKITTI_CAMERAS = {"image_2": "P2", "image_3": "P3"}
#: KITTI-360's rectified perspective cameras (``data_2d_raw/<seq>/<camera>/data_rect``).
KITTI360_CAMERAS = ("image_00", "image_01")
#: Every this many scans a keyframe, when no SSC labels say which.
DEFAULT_KEYFRAME_EVERY = 5
#: The ego vehicle's box (length, width, height) and centre in the ego frame (under the velodyne).
EGO_SIZE = (4.5, 1.8, 1.6)
EGO_CENTER = (0.3, 0.0, 0.8)
#: Metres added to each side of a moving instance's box (its points are a partial view).
BOX_PAD = 0.1
#: Microseconds of a scan's time 0 (a scene's timestamps are its seconds from the first scan).
TIMESTAMP_BASE_US = 1_000_000_000_000_000


def _semantickitti_root(path: Path) -> Path | None:
    """The ``sequences/`` folder ``path`` names (itself or its child) when a sequence in it has ``velodyne/``."""
    for root in [path / "sequences"] + ([path] if path.name == "sequences" else []):
        if root.is_dir() and any((s / "velodyne").is_dir() for s in root.iterdir() if s.is_dir()):
            return root
    return None


def _kitti360_root(path: Path) -> Path | None:
    raw = path / "data_3d_raw"
    if raw.is_dir() and any((s / "velodyne_points" / "data").is_dir() for s in raw.iterdir() if s.is_dir()):
        return path
    return None


# ------------------------------------------------------------------------------------ files


def read_scan(path: Path, load: bool = True) -> np.ndarray:
    """A velodyne ``.bin``: ``(N, 4)`` float32 x y z reflectance; a size that is not a multiple of 16 bytes
    is refused naming the file. ``load`` False: the size checked, ``(0, 4)`` returned."""
    size = path.stat().st_size
    if size % 16:
        raise ValueError(f"{path}: {size} bytes is not a multiple of 16 (a point is 4 float32: x y z reflectance)")
    if not load:
        return np.zeros((0, 4), np.float32)
    return np.fromfile(path, dtype="<f4").reshape(-1, 4)


def read_label_words(path: Path, n_points: int, scan: Path, load: bool = True) -> np.ndarray | None:
    """A ``.label``: ``(N,)`` uint32 words, one a point of ``scan``; another length is refused naming both.
    ``load`` False: the size checked, None returned."""
    size = path.stat().st_size
    if size % 4 or size // 4 != n_points:
        raise ValueError(
            f"{path}: {size} bytes holds {size / 4:g} labels (uint32) but {scan.name} has {n_points} points"
        )
    return np.fromfile(path, dtype="<u4") if load else None


def _check_raw_ids(raw: np.ndarray, path: Path) -> None:
    """Refuse a ``.label`` whose semantic raw ids are not all SemanticKITTI's (the learning map's keys): labels
    of another dataset or scheme, or a damaged file, would otherwise pass as ``unlabeled`` with no word."""
    from occkit.data.scene_record import ids_at
    from occkit.labels import SEMANTICKITTI_LEARNING_MAP

    unknown = ~np.isin(raw, np.fromiter(SEMANTICKITTI_LEARNING_MAP, np.int64))
    if unknown.any():
        raise ValueError(
            f"{path}: raw label {ids_at(raw, unknown)} are not SemanticKITTI's (the ids of its learning map, "
            "semantic-kitti.yaml): labels of another scheme, or a damaged file"
        )


def _calib(seq: Path) -> dict[str, np.ndarray]:
    from occkit.data.semantickitti import read_calib

    f = seq / "calib.txt"
    try:  # a missing file said by read_calib
        calib = read_calib(f)
    except KeyError as e:
        raise ValueError(f"{f}: {e.args[0].split(': ', 1)[-1]}") from None
    rigid(calib["Tr"][:3], f"{f}: Tr (velodyne -> camera 0)")  # else every scan's pose is named for it
    return calib


def _calib_pose(path: Path, key: str) -> np.ndarray:
    """The 3x4 matrix on the line ``key: 12 numbers`` of a KITTI-360 calibration file, as a rigid ``(4, 4)``."""
    return rigid(keyed_numbers(path, {key: 12})[key], f"{path}: {key}")


def scan_token(sequence: str, scan: str) -> str:
    """A scan's token, unique over the dataset (labels and predictions are named by it): ``<sequence>_<scan>``."""
    return f"{sequence}_{scan}"


def _lift(height: float) -> np.ndarray:
    """``T_ego_from_velodyne``: the velodyne ``height`` metres above the ego origin."""
    T = np.eye(4)
    T[2, 3] = height
    return T


# ------------------------------------------------------------------------------------ boxes


def moving_boxes(
    points: list[np.ndarray | None], raw: list[np.ndarray | None], inst: list[np.ndarray | None], lut: np.ndarray
) -> list[Any]:
    """Boxes of the moving instances of a sequence's scans (``points`` world frame, ``raw`` semantic raw ids,
    ``inst`` instance ids, per scan: the points with a moving raw id, or all of them; None = an unlabelled
    scan, whose boxes are None): the module docstring says how each box is made. ``lut``: raw id -> learning
    class."""
    from occkit.data.scene_record import Boxes

    parts: dict[int, dict[int, np.ndarray]] = {}  # track -> scan -> points
    cls_of: dict[int, int] = {}
    for i, (p, r, k) in enumerate(zip(points, raw, inst)):
        if p is None or r is None or k is None:
            continue
        mov = np.isin(r, MOVING_RAW) & (k > 0)
        if not mov.any():
            continue
        cls = lut[np.minimum(r[mov], len(lut) - 1)].astype(np.int64)
        track = (cls << 16) | k[mov].astype(np.int64)
        for tr in np.unique(track).tolist():
            parts.setdefault(tr, {})[i] = p[mov][track == tr]
            cls_of[tr] = tr >> 16
    yaw: dict[tuple[int, int], float] = {}
    extent: dict[int, np.ndarray] = {}
    height: dict[int, tuple[float, float]] = {}  # a track's lowest and highest point over the sequence (world z)
    for tr, scans in parts.items():
        order = sorted(scans)
        zs = np.concatenate([scans[i][:, 2] for i in order])
        height[tr] = (float(zs.min()), float(zs.max()))
        cent = {i: scans[i].mean(0) for i in order}
        last = 0.0
        for j, i in enumerate(order):
            a, b = order[max(j - 2, 0)], order[min(j + 2, len(order) - 1)]
            d = cent[b][:2] - cent[a][:2]
            if float(np.hypot(*d)) > 0.05:  # heading along the motion
                y = math.atan2(float(d[1]), float(d[0]))
            else:  # (nearly) still: the points' main axis, turned to the last heading
                q = scans[i][:, :2] - cent[i][:2]
                y = last
                if len(q) >= 3:
                    w, v = np.linalg.eigh(q.T @ q)
                    y = math.atan2(float(v[1, 1]), float(v[0, 1]))
                    if math.cos(y - last) < 0:
                        y += math.pi
            yaw[(tr, i)] = last = y
            q = _to_box(scans[i], cent[i], y)
            ext = q.max(0) - q.min(0)
            extent[tr] = np.maximum(extent.get(tr, ext), ext)
    out: list[Any] = []
    for i, p in enumerate(points):
        if p is None or raw[i] is None:
            out.append(None)
            continue
        rows = [(tr, scans[i]) for tr, scans in sorted(parts.items()) if i in scans]
        if not rows:
            out.append(Boxes.empty())
            continue
        centers, sizes, yaws = [], [], []
        for tr, pts in rows:
            y = yaw[(tr, i)]
            q = _to_box(pts, np.zeros(3), y)
            mid = (q.max(0) + q.min(0)) / 2
            c, s = math.cos(y), math.sin(y)
            lo, hi = height[tr]
            centers.append(np.array([c * mid[0] - s * mid[1], s * mid[0] + c * mid[1], (lo + hi) / 2]))
            ext = np.array([extent[tr][0], extent[tr][1], hi - lo])
            sizes.append(np.maximum(ext + 2 * BOX_PAD, 0.3))
            yaws.append(y)
        out.append(
            Boxes(
                track=np.array([tr for tr, _ in rows], np.int64),
                cls=np.array([cls_of[tr] for tr, _ in rows], np.int64),
                center=np.array(centers, np.float64),
                size=np.array(sizes, np.float64),
                yaw=np.array(yaws, np.float64),
            )
        )
    return out


def _to_box(p: np.ndarray, c: np.ndarray, yaw: float) -> np.ndarray:
    cs, sn = math.cos(yaw), math.sin(yaw)
    d = p - c
    return np.stack([cs * d[:, 0] + sn * d[:, 1], -sn * d[:, 0] + cs * d[:, 1], d[:, 2]], 1)


# ------------------------------------------------------------------------------------ scenes


def _keyframes(names: list[str], every: int | None, labelled: set[int] | None, where: Path) -> set[int]:
    """The scan indices that are keyframes: every ``every``-th, else those with SSC labels, else every 5th."""
    idx = [int(n) for n in names]
    if every is not None:
        return {i for i in idx if i % every == 0}
    if labelled:
        keys = {i for i in idx if i in labelled}
        if not keys:
            raise ValueError(f"{where}: none of its SSC frames is a scan (pass --keyframe-every N)")
        return keys
    return {i for i in idx if i % DEFAULT_KEYFRAME_EVERY == 0}


def _scan_files(folder: Path, digits: int) -> list[Path]:
    files = sorted(folder.glob("*.bin"))
    bad = [f.name for f in files if not (f.stem.isdigit() and len(f.stem) == digits)]
    if bad:
        raise ValueError(f"{folder}: scan file {bad[0]} is not named by its {digits}-digit index")
    if not files:
        raise ValueError(f"{folder}: no scans (*.bin)")
    return files


def _image_size(folder: Path) -> tuple[int, int] | None:
    """The ``(H, W)`` of the first image of ``folder``; None where it holds none."""
    from occkit.data.recordings.point_cameras import image_size

    imgs = sorted(folder.glob("*.png")) if folder.is_dir() else []
    return image_size(imgs[0]) if imgs else None


def _record(
    name: str,
    files: list[Path],
    T_world_velo: list[np.ndarray],
    times: list[tuple[float, str]],
    keys: set[int],
    lidar_height: float,
    label_files: list[Path | None],
    cameras: dict[str, Any],
    classes: tuple[str, ...],
    source: Path,
    load_points: bool,
) -> Any:
    from occkit.data.scene_record import SceneRecord, Sweep, check_record
    from occkit.labels import semantickitti_remap_lut

    T_ev = _lift(lidar_height)
    T_g0 = T_ev @ np.linalg.inv(T_world_velo[0])  # world -> the first scan's ego frame
    T_ve = np.linalg.inv(T_ev)
    lut = semantickitti_remap_lut(for_completion=False)
    poses, pts_v, labels, inten = [], [], [], []
    moving: tuple[list, list, list] = ([], [], [])  # per scan: the moving points (world), their raw ids, instances
    for f, T_wv, lf in zip(files, T_world_velo, label_files):
        T_ge = T_g0 @ T_wv @ T_ve
        poses.append(T_ge)
        scan = read_scan(f, load_points)
        pts_v.append(np.ascontiguousarray(scan[:, :3]))
        inten.append(np.ascontiguousarray(scan[:, 3]))
        n = len(scan) if load_points else f.stat().st_size // 16
        w = None if lf is None else read_label_words(lf, n, f, load_points)
        if w is None:
            labels.append(None)
            for m in moving:
                m.append(None)
            continue
        r = (w & 0xFFFF).astype(np.int64)
        _check_raw_ids(r, lf)
        labels.append(lut[np.minimum(r, len(lut) - 1)].astype(np.int64) * (r < len(lut)))
        mov = np.isin(r, MOVING_RAW)
        T_gv = T_ge @ T_ev
        moving[0].append(scan[mov, :3].astype(np.float64) @ T_gv[:3, :3].T + T_gv[:3, 3])
        moving[1].append(r[mov])
        moving[2].append((w[mov] >> 16).astype(np.int64))
    boxes = moving_boxes(*moving, lut) if load_points else [None] * len(files)
    sweeps = [
        Sweep(
            token=scan_token(name, f.stem),
            timestamp=TIMESTAMP_BASE_US + int(round(t * 1e6)),
            sensor="velodyne",
            T_global_from_ego=T,
            points=p,
            labels=lab,
            intensity=it,
            keyframe=int(f.stem) in keys,
            boxes=b,
            source=str(f),
            row=row,
        )
        for f, T, (t, row), p, lab, it, b in zip(files, poses, times, pts_v, labels, inten, boxes)
    ]
    rec = SceneRecord(
        name=name,
        sweeps=sweeps,
        lidars={"velodyne": T_ev},
        cameras=cameras,
        classes=classes,
        ego_size=EGO_SIZE,
        ego_center=EGO_CENTER,
        source=str(source),
    )
    check_record(rec)
    return rec


def _times(path: Path, idx: list[int], digits: int, seconds: Any) -> list[tuple[float, str]]:
    """Each scan's seconds (scan ``i`` on the ``i``-th non-blank line of ``path``, read by ``seconds(text,
    where)``) and the row they were read from, that :func:`check_record` names if they are out of order; 10 Hz
    where there is no ``path``."""
    if not path.is_file():
        return [(i / KITTI_SCAN_RATE, "") for i in idx]
    lines = [(n, ln.strip()) for n, ln in enumerate(path.read_text(errors="replace").splitlines(), 1) if ln.strip()]
    if len(lines) <= max(idx):
        raise ValueError(f"{path}: {len(lines)} times for scans up to {max(idx):0{digits}d} (one a scan is needed)")
    return [(seconds(lines[i][1], f"{path}:{lines[i][0]}"), f"{path}:{lines[i][0]} (scan {i:0{digits}d})") for i in idx]


def _seconds(text: str, where: str) -> float:
    """A line of SemanticKITTI's ``times.txt``: the scan's seconds."""
    return float(numbers(text, where, (1,), "one number, seconds")[0])


def _date_time(text: str, where: str) -> float:
    """A line of a ``timestamps.txt`` (KITTI-360's, KITTI raw's: ``YYYY-MM-DD HH:MM:SS.fffffffff``) in seconds."""
    import datetime

    day, _, frac = text.partition(".")
    try:
        return datetime.datetime.strptime(day, "%Y-%m-%d %H:%M:%S").timestamp() + float("0." + (frac or "0"))
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not a date-time (YYYY-MM-DD HH:MM:SS.fffffffff)") from None


def _read_semantickitti(root: Path, scene: str, options: KittiOptions, load_points: bool) -> Any:
    from occkit.data.scene_record import Camera
    from occkit.data.semantickitti import camera_from_calib, read_poses
    from occkit.geometry.transforms import singular_intrinsic

    seq = root / scene
    files = _scan_files(seq / "velodyne", 6)
    calib = _calib(seq)
    pf = seq / "poses.txt"
    poses = read_poses(pf)
    idx = [int(f.stem) for f in files]
    missing = [i for i in idx if i >= len(poses)]
    if missing:
        raise ValueError(
            f"{pf}: {len(poses)} poses for {len(files)} scans in {seq / 'velodyne'} "
            f"(scan {missing[0]:06d} has no pose row)"
        )
    Tr = calib["Tr"]
    T_wv = [poses[i] @ Tr for i in idx]
    vox = seq / "voxels"
    labelled = {int(p.stem) for p in vox.glob("*.label") if p.stem.isdigit()} if vox.is_dir() else None
    keys = _keyframes([f.stem for f in files], options.keyframe_every, labelled, seq)
    lab_dir = seq / "labels"
    label_files = [lab_dir / f"{f.stem}.label" for f in files]
    label_files = [lf if lf.is_file() else None for lf in label_files]
    height = options.height()
    cameras = {}
    for cam, key in SEMANTICKITTI_CAMERAS.items():
        size = _image_size(seq / cam)
        if size is None:
            continue
        if key not in calib or singular_intrinsic(calib[key][:, :3]):  # camera_from_calib solves with it
            why = "first three columns are singular" if key in calib else "line is missing"
            raise ValueError(f"{seq / 'calib.txt'}: the '{key}:' {why}, the projection of the images in {seq / cam}")
        K, T_cv = camera_from_calib(calib[key], Tr)
        cameras[cam] = Camera(cam, K, _lift(height) @ np.linalg.inv(T_cv), size)
    rec = _record(
        scene,
        files,
        T_wv,
        _times(seq / "times.txt", idx, 6, _seconds),
        keys,
        height,
        label_files,
        cameras,
        CLASSES,
        seq,
        load_points,
    )
    lacking = [f.stem for f, lf in zip(files, label_files) if lf is None]
    if lacking and len(lacking) < len(files):  # a sequence without labels at all is SemanticKITTI's test split
        rec.warnings.append(
            f"{len(lacking)} of {len(files)} scans have no labels file in {lab_dir} (the first: {lacking[0]}.label), "
            "where the other scans have one: their points are geometry only (they vote for no class); the other "
            "scans' labels give the classes"
        )
    return rec


def _kitti360_camera(cal: Path, cam: str) -> tuple[np.ndarray, np.ndarray]:
    """KITTI-360's rectified perspective camera ``cam`` (``image_00``, ``image_01``): ``K`` (``P_rect_0X``'s
    first three columns) and ``T_pose_from_rect``, ``calib_cam_to_pose``'s camera -> pose times the inverse of
    ``R_rect_0X`` (``perspective.txt``; the identity where it has none), as KITTI-360's own scripts pose them."""
    from occkit.data.kitti360 import read_perspective

    f = cal / "perspective.txt"
    try:
        persp = read_perspective(f)
    except KeyError as e:
        raise ValueError(str(e.args[0])) from None
    n = cam[-2:]
    P = persp.get(f"P_rect_{n}")
    if P is None or P.size != 12:
        raise ValueError(f"{f}: no 'P_rect_{n}:' line of 12 numbers, the projection of the {cam} images")
    R = np.eye(4)
    if f"R_rect_{n}" in persp:
        r = persp[f"R_rect_{n}"]
        if r.size != 9:
            raise ValueError(f"{f}: 'R_rect_{n}' has {r.size} numbers, expected 9")
        R[:3, :3] = r.reshape(3, 3)
        rigid(R[:3], f"{f}: R_rect_{n}")
    T_pose_cam = _calib_pose(cal / "calib_cam_to_pose.txt", cam)
    return P.reshape(3, 4)[:, :3].copy(), T_pose_cam @ np.linalg.inv(R)


def _read_kitti360(root: Path, scene: str, options: KittiOptions, load_points: bool) -> Any:
    from occkit.data.scene_record import Camera

    raw = root / "data_3d_raw" / scene / "velodyne_points"
    files = _scan_files(raw / "data", 10)
    pf = root / "data_poses" / scene / "poses.txt"
    poses: dict[int, np.ndarray] = {}
    for n, v in number_rows(pf, "poses", (13,)):
        if v[0] != int(v[0]) or v[0] < 0:
            raise ValueError(f"{pf}: frame index {v[0]:g} is not a scan's index (a whole number >= 0)")
        if int(v[0]) in poses:  # the later row would replace the earlier with no word
            raise ValueError(f"{pf}: frame {int(v[0])} has two pose rows (one a registered frame)")
        poses[int(v[0])] = rigid(v[1:], f"{pf}:{n}: frame {int(v[0])}")
    posed = [f for f in files if int(f.stem) in poses]  # KITTI-360 poses only the frames it registered
    if not posed:
        raise ValueError(f"{pf}: no pose for any scan of {raw / 'data'}")
    cal = root / "calibration"
    T_pose_cam = _calib_pose(cal / "calib_cam_to_pose.txt", "image_00")
    c2v = cal / "calib_cam_to_velo.txt"
    T_velo_cam = rigid(number_rows(c2v, "calibration", (12,))[0][1], str(c2v))
    T_cam_velo = np.linalg.inv(T_velo_cam)
    idx = [int(f.stem) for f in posed]
    T_wv = [poses[i] @ T_pose_cam @ T_cam_velo for i in idx]
    vox = root / "data_2d_raw" / scene / "voxels"
    labelled = {int(p.stem) for p in vox.glob("*.label") if p.stem.isdigit()} if vox.is_dir() else None
    keys = _keyframes([f.stem for f in posed], options.keyframe_every, labelled, vox)
    height = options.height()
    cameras = {}
    T_velo_pose = T_velo_cam @ np.linalg.inv(T_pose_cam)
    for cam in KITTI360_CAMERAS:
        size = _image_size(root / "data_2d_raw" / scene / cam / "data_rect")
        if size is not None:
            K, T_pose_rect = _kitti360_camera(cal, cam)
            cameras[cam] = Camera(cam, K, _lift(height) @ T_velo_pose @ T_pose_rect, size)
    return _raw_record(scene, posed, T_wv, raw / "timestamps.txt", keys, height, cameras, raw, load_points)


def _raw_record(
    scene: str,
    files: list[Path],
    T_wv: list[np.ndarray],
    stamps: Path,
    keys: set[int],
    height: float,
    cameras: dict[str, Any],
    source: Path,
    load_points: bool,
) -> Any:
    """A scene of raw scans (KITTI-360's, KITTI raw's) read from ``source``: no point labels, no boxes; the
    scans' times the lines of ``stamps`` (a ``timestamps.txt``) their names number."""
    times = _times(stamps, [int(f.stem) for f in files], 10, _date_time)
    times = [(t - times[0][0], row) for t, row in times]  # seconds from the first scan
    return _record(scene, files, T_wv, times, keys, height, [None] * len(files), cameras, (), source, load_points)


def _splits(root: Path, scenes: list[str], official: Mapping[str, tuple[str, ...]]) -> dict[str, list[str]]:
    """The dataset's ``splits.json`` (``occkit synth``'s) where present, else the official split."""
    from occkit.data.semantickitti import SPLITS_FILE, dataset_splits

    d = dataset_splits(root) if (root / SPLITS_FILE).is_file() else official
    return {f"{k}_split": [s for s in d.get(k) or [] if s in scenes] for k in ("train", "val") if d.get(k)}


@dataclass(frozen=True)
class KittiOptions(KeyframeEveryOptions):
    """The options of SemanticKITTI and KITTI-360 sequences."""

    lidar_height: float | None = option(
        f"the velodyne's height above the ground, metres: the ego frame's z = 0 (default {KITTI_LIDAR_HEIGHT}, "
        "KITTI's; occkit synth's world: 1.84)",
        type=float,
        metavar="M",
        within=(0, 10, "the velodyne's height above the ground must lie in (0, 10) metres"),
        open=True,
    )

    def height(self) -> float:
        """``--lidar-height``, KITTI's :data:`KITTI_LIDAR_HEIGHT` when not given."""
        return KITTI_LIDAR_HEIGHT if self.lidar_height is None else self.lidar_height


class KittiReader(RecordingReader[KittiOptions], name="kitti"):
    """SemanticKITTI sequences or a KITTI-360 root (docs/labels.md, "SemanticKITTI and KITTI-360 sequences")."""

    description = (
        "SemanticKITTI sequences (sequences/<XX>/velodyne, labels, poses.txt, calib.txt) or a KITTI-360 root "
        "(data_3d_raw, data_poses, calibration)"
    )

    @classmethod
    def detect(cls, path: Path) -> str | None:
        if not path.is_dir():
            return None
        sk = _semantickitti_root(path)
        if sk is not None:
            return f"{sk}: SemanticKITTI sequences (<XX>/velodyne/)"
        if _kitti360_root(path) is not None:
            return f"{path}: KITTI-360 (data_3d_raw/<seq>/velodyne_points/data/)"
        return None

    def __init__(self, source: Path, options: KittiOptions, wanted: list[str] | None = None) -> None:
        super().__init__(source, options, wanted)
        path = source
        sk = _semantickitti_root(path)
        self.semantickitti = sk
        if sk is not None:
            from occkit.data.semantickitti import SEMANTICKITTI_SPLITS

            scenes = sorted(s.name for s in sk.iterdir() if (s / "velodyne").is_dir())
            base = sk.parent if sk.name == "sequences" else sk
            for s in scenes:
                for cam in SEMANTICKITTI_CAMERAS:
                    for p in sorted((sk / s / cam).glob("*.png")):
                        self.images.setdefault(scan_token(s, p.stem), {})[cam] = f"sequences/{s}/{cam}/{p.name}"
            self.classes = CLASSES
            self._scenes = scenes
            self.splits = _splits(base, scenes, SEMANTICKITTI_SPLITS)
            self.image_links = {"sequences": sk} if self.images else {}
            self.describe = f"SemanticKITTI sequences {sk}, {len(scenes)} sequence(s)"
        elif _kitti360_root(path) is not None:
            from occkit.data.kitti360 import KITTI360_SPLITS

            raw = path / "data_3d_raw"
            scenes = sorted(s.name for s in raw.iterdir() if (s / "velodyne_points" / "data").is_dir())
            self._scenes = scenes
            self.splits = _splits(path, scenes, KITTI360_SPLITS)
            for s in scenes:
                for cam in KITTI360_CAMERAS:
                    for p in sorted((path / "data_2d_raw" / s / cam / "data_rect").glob("*.png")):
                        self.images.setdefault(scan_token(s, p.stem), {})[cam] = f"{s}/{cam}/data_rect/{p.name}"
            self.image_links = {"data_2d_raw": path / "data_2d_raw"} if self.images else {}
            self.describe = f"KITTI-360 {path}, {len(scenes)} sequence(s)"
        else:
            raise ValueError(
                f"--data {path}: holds no SemanticKITTI sequences (sequences/<XX>/velodyne/) nor KITTI-360 scans "
                "(data_3d_raw/<seq>/velodyne_points/data/)"
            )

    def read(self, scene: str, load_points: bool = True) -> Any:
        if self.semantickitti is not None:
            return _read_semantickitti(self.semantickitti, scene, self.options, load_points)
        return _read_kitti360(self.source, scene, self.options, load_points)


READER = KittiReader
