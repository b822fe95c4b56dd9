"""The synthetic world as a raw nuScenes table set (``occkit synth --format nuscenes``).

nuScenes keeps its data as a ``v1.0-<name>/`` folder of JSON tables (``scene``, ``sample``,
``sample_data``, ``ego_pose``, ``calibrated_sensor``, ``sensor``, ``log``, ``map``, ``category``,
``attribute``, ``visibility``, ``instance``, ``sample_annotation``) beside the sensor files
(``samples/CAM_*/*.jpg``, ``samples/LIDAR_TOP/*.pcd.bin``, ``sweeps/``, ``maps/``). This module
adds such a table set to a synthetic world already written in the Occ3D-nuScenes layout (its
``annotations.json`` and ``extras/``), so one folder is both an Occ3D dataset and a nuScenes root
whose sample tokens are the Occ3D frame tokens; ``nuscenes-devkit``'s ``NuScenes(version,
dataroot)`` loads it as it is.

What is written, and from where:

- ``samples/LIDAR_TOP/<scene>__<token>__LIDAR_TOP.pcd.bin``: the extras' LiDAR
  (``extras/<scene>/<token>/lidar.npz``, ego frame) brought into the LiDAR frame through the
  ``calibrated_sensor`` pose written for it (float64, then float32), as nuScenes stores it:
  float32 rows of x, y, z, intensity, ring (the beam: 0 = the lowest, from the point's elevation).
- camera ``sample_data`` rows point at the Occ3D images (``samples/CAM_*/...``), with their
  intrinsics and the camera-to-ego poses of ``annotations.json``; ``ego_pose`` rows hold its
  ``ego_pose`` (one row per ``sample_data``, as in nuScenes).
- ``sweeps/LIDAR_TOP/``: empty unless the world has a rig folder ``<root>/rig/`` (``occkit synth
  --sweeps K``, docs/labels.md). Without one the world has keyframes only (2 Hz), so each LiDAR
  ``sample_data`` links (``prev`` / ``next``) to the neighbouring keyframes' and a converter that
  walks ``prev`` for sweeps (mmdet3d, ``occkit prepare nuscenes``) finds the earlier keyframes,
  which is what the synthetic world's own sweeps are
  (:class:`occkit.data.lidar_sweeps.WithLidarSweeps`). With one, every non-key sweep of the rig
  becomes a LiDAR ``sample_data`` (``is_key_frame`` false, its own ``ego_pose`` from the rig, the
  rig's LiDAR pose as ``calibrated_sensor``, ``sweeps/LIDAR_TOP/<scene>__<token>__LIDAR_TOP.pcd.bin``
  from the rig's LiDAR-frame points, ring from the world's beam elevations), belonging to the next
  keyframe's sample as in nuScenes (the devkit interpolates its boxes between the two keyframes),
  and the scene's LiDAR rows are linked ``prev`` / ``next`` in time order. The LiDAR keyframes are
  then the rig's too (its points, point labels as ``lidarseg``, ego pose and LiDAR calibration), so
  the tables hold the recording the rig holds: with ``--beams`` or the noise options that differs
  from the extras' LiDAR, which the Occ3D side keeps (the cameras' ``ego_pose`` rows stay the
  extras', the true poses the images were rendered at). The boxes (``sample_annotation``) stay the
  extras' objects at the keyframes.
- ``lidarseg`` (nuScenes-lidarseg): per keyframe LiDAR ``sample_data`` (same token) a file
  ``lidarseg/<version>/<token>_lidarseg.bin`` of one uint8 per point, the ``index`` of its category
  in ``category`` (which lists all 32 lidarseg categories with their indices): the extras' per-point
  Occ3D class through :data:`LIDARSEG_CATEGORY_OF_CLASS`.
- ``instance`` / ``sample_annotation``: the objects of ``extras/.../objects.json`` whose Occ3D
  class is one of nuScenes' box categories (:data:`CATEGORY_OF_CLASS`; buildings, vegetation and
  the ground are not boxes in nuScenes): the global box (size as width, length, height), the
  attribute from the object's motion, ``num_lidar_pts`` from the extras' LiDAR instance ids, no
  radar, and a visibility level from the share of points inside the box that a camera sees (a
  geometric estimate; nuScenes' levels were judged by annotators). An instance's rows are
  chained ``prev`` / ``next`` in time, as the devkit's box interpolation on sweeps walks them.
- ``map``: one record for every log, whose mask file (``maps/<token>.png``) is blank: a nuScenes
  map mask holds non-negative global coordinates only, and the synthetic towns lie around 0.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from occkit.data.nuscenes_tables import LIDAR_CHANNEL, LIDARSEG_CATEGORIES, LIDARSEG_TABLE, NUSCENES_TABLES
from occkit.data.occ3d import NUSCENES_CAMERAS
from occkit.fileio import load_npz, read_json, write_bytes_atomic, write_json_atomic

NUSCENES_VERSION = "v1.0-synth"
"""The table folder ``occkit synth --format nuscenes`` writes (``NuScenes(version="v1.0-synth", ...)``)."""

#: Occ3D object class -> nuScenes category (the Occ3D classes come from these nuScenes ones).
CATEGORY_OF_CLASS: dict[str, str] = {
    "barrier": "movable_object.barrier",
    "bicycle": "vehicle.bicycle",
    "bus": "vehicle.bus.rigid",
    "car": "vehicle.car",
    "construction_vehicle": "vehicle.construction",
    "motorcycle": "vehicle.motorcycle",
    "pedestrian": "human.pedestrian.adult",
    "traffic_cone": "movable_object.trafficcone",
    "trailer": "vehicle.trailer",
    "truck": "vehicle.truck",
}
#: Occ3D class -> the nuScenes-lidarseg category its LiDAR points are labelled with: the category that
#: the Occ3D (and SurroundOcc) ``learning_map`` from the 32 lidarseg categories to the 17 classes sends
#: back to the class (``others`` has several such; ``static.other`` is the one of them that is a thing).
LIDARSEG_CATEGORY_OF_CLASS: dict[str, str] = {
    "others": "static.other",
    **CATEGORY_OF_CLASS,
    "driveable_surface": "flat.driveable_surface",
    "other_flat": "flat.other",
    "sidewalk": "flat.sidewalk",
    "terrain": "flat.terrain",
    "manmade": "static.manmade",
    "vegetation": "static.vegetation",
}
_VEHICLES = {"bus", "car", "construction_vehicle", "trailer", "truck"}
_CYCLES = {"bicycle", "motorcycle"}

#: nuScenes' attribute names, with a line of our own each.
ATTRIBUTES: dict[str, str] = {
    "vehicle.moving": "a vehicle that moves",
    "vehicle.stopped": "a vehicle that could move but stands still (e.g. waiting)",
    "vehicle.parked": "a vehicle that is parked",
    "cycle.with_rider": "a bicycle or motorcycle with someone on it",
    "cycle.without_rider": "a bicycle or motorcycle with nobody on it",
    "pedestrian.sitting_lying_down": "a person sitting or lying down",
    "pedestrian.standing": "a person standing still",
    "pedestrian.moving": "a person walking or running",
}
#: nuScenes' visibility levels: (token, level, share of the object seen by the cameras, in %).
VISIBILITY: tuple[tuple[str, str, float, float], ...] = (
    ("1", "v0-40", 0.0, 40.0),
    ("2", "v40-60", 40.0, 60.0),
    ("3", "v60-80", 60.0, 80.0),
    ("4", "v80-100", 80.0, 100.0),
)
MOVING_SPEED = 0.2
"""m/s above which an object counts as moving (its attribute)."""


def nuscenes_token(*parts: Any) -> str:
    """A deterministic 32-hex-digit token for a record named by ``parts``."""
    return hashlib.sha1(b"occkit-nuscenes/" + "/".join(map(str, parts)).encode()).hexdigest()[:32]


def _quat_yaw(yaw: float) -> list[float]:
    return [math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]


def _matrix(pose: dict[str, Any]) -> np.ndarray:
    """``(4, 4)`` float64 from a ``{"translation", "rotation" (w, x, y, z)}`` pose."""
    from occkit.geometry.transforms import transform_from_pose

    return transform_from_pose(pose["translation"], pose["rotation"]).numpy()


def lidar_to_pcd(points_ego: np.ndarray, T_ego_from_lidar: np.ndarray, elevations: np.ndarray) -> np.ndarray:
    """``(N, 5)`` float32 rows of a ``.pcd.bin`` (x, y, z in the LiDAR frame, intensity, ring) from
    ``(N, 4)`` ego-frame points (x, y, z, intensity) and the LiDAR's ``(4, 4)`` pose in the ego
    frame; ``ring``: the index of the beam elevation (``elevations``, radians, ascending) nearest
    the point's."""
    R, t = T_ego_from_lidar[:3, :3], T_ego_from_lidar[:3, 3]
    xyz = (points_ego[:, :3].astype(np.float64) - t) @ R  # R^T (p - t), row vectors
    el = np.arctan2(xyz[:, 2], np.hypot(xyz[:, 0], xyz[:, 1]))
    ring = np.abs(el[:, None] - elevations[None, :]).argmin(1) if len(xyz) else np.zeros(0, np.int64)
    out = np.empty((len(xyz), 5), np.float32)
    out[:, :3] = xyz
    out[:, 3] = points_ego[:, 3]
    out[:, 4] = ring
    return out


def _visibility_token(fraction: float) -> str:
    pct = 100.0 * fraction
    for token, _, lo, hi in VISIBILITY:
        if pct <= hi:
            return token
    return VISIBILITY[-1][0]


def _box_points(box: dict[str, Any], n: int = 4) -> np.ndarray:
    """``(n**3, 3)`` points spread inside an ego-frame box ``{center, size (L, W, H), yaw}``."""
    g = (np.arange(n) + 0.5) / n - 0.5
    u = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3) * np.asarray(box["size"], np.float64)
    c, s = math.cos(box["yaw"]), math.sin(box["yaw"])
    R = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return u @ R.T + np.asarray(box["center"], np.float64)


def seen_fraction(points_ego: np.ndarray, cameras: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> float:
    """The share of ``points_ego`` (``(P, 3)``) that some camera sees: in its image, in front, and
    no farther than the rendered z-depth there (+ 0.3 m, or the point's own surface would hide it).

    ``cameras``: ``(K (3, 3), T_ego_from_cam (4, 4), depth (H, W))`` each (depth 0 = nothing hit)."""
    seen = np.zeros(len(points_ego), bool)
    for K, T, depth in cameras:
        H, W = depth.shape
        pc = (points_ego - T[:3, 3]) @ T[:3, :3]
        z = pc[:, 2]
        front = z > 0.1
        uv = pc[:, :2] / np.where(front, z, 1.0)[:, None] * [K[0, 0], K[1, 1]] + [K[0, 2], K[1, 2]]
        col, row = np.floor(uv[:, 0]).astype(np.int64), np.floor(uv[:, 1]).astype(np.int64)
        inside = front & (col >= 0) & (col < W) & (row >= 0) & (row < H)
        d = np.zeros(len(z))
        d[inside] = depth[row[inside], col[inside]]
        seen |= inside & ((d == 0) | (z <= d + 0.3))
    return float(seen.mean()) if len(seen) else 0.0


def _blank_png(size: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((size, size), np.uint8), "L").save(buf, format="PNG")
    return buf.getvalue()


def _frames_in_order(scene: str, infos: dict[str, Any], where: Path) -> list[str]:
    tokens = sorted(infos, key=lambda t: (int(infos[t].get("timestamp", 0)), t))
    for t in tokens:
        for key in ("timestamp", "ego_pose", "camera_sensor", "lidar_sensor"):
            if key not in infos[t]:
                raise ValueError(f"{where}: frame {t} of {scene} has no {key!r} (not written by occkit synth?)")
    return tokens


@dataclass
class _Tables:
    """The table set being written for a world at ``root``, with what its rows are made from: the
    LiDAR's beam elevations, the camera image size, the channels, the lidarseg lookup table, and the
    ``calibrated_sensor`` tokens already written."""

    root: Path
    ann_path: Path
    version: str
    elevations: np.ndarray
    height: int
    width: int
    channels: list[str]
    lidarseg_lut: np.ndarray
    t: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {name: [] for name in NUSCENES_TABLES})
    lidarseg_rows: list[dict[str, Any]] = field(default_factory=list)
    calib_seen: set[str] = field(default_factory=set)


def write_nuscenes_tables(root: str | os.PathLike, version: str = NUSCENES_VERSION, progress: bool = False) -> Path:
    """Add a nuScenes table set ``root/<version>/`` (and ``samples/LIDAR_TOP/``, ``sweeps/``,
    ``maps/``) to the synthetic world written at ``root`` (``annotations.json`` and ``extras/``
    of :func:`occkit.worlds.driving.generate_dataset`). Every file is written atomically; the same
    world gives the same bytes. Returns the table folder."""
    from occkit.worlds.driving.sensors import lidar_elevations

    root = Path(root)
    ann_path = root / "annotations.json"
    ann = read_json(ann_path)
    cfg = ann.get("synth_config") if isinstance(ann, dict) else None
    if not isinstance(cfg, dict) or not isinstance(ann.get("scene_infos"), dict):
        raise ValueError(f"{ann_path}: not a synthetic world of occkit synth (no 'synth_config' / 'scene_infos')")
    if not version.startswith("v1.0-"):
        raise ValueError(f"nuScenes version {version!r}: expected v1.0-<name>")
    elevations = lidar_elevations(int(cfg["lidar_beams"])).numpy()
    height, width = (int(v) for v in cfg["image_size"])
    channels = [*NUSCENES_CAMERAS, LIDAR_CHANNEL]
    w = _Tables(root, ann_path, version, elevations, height, width, channels, lidarseg_lookup())
    _vocabulary_tables(w.t, channels)
    rig = _read_rig(root, ann)
    descriptions = ann.get("scene_descriptions", {})
    scenes = sorted(ann["scene_infos"])
    for si, scene in enumerate(scenes):
        _scene_tables(w, scene, ann["scene_infos"][scene], str(descriptions.get(scene, "")), rig)
        if progress:
            print(f"synth: {scene} as nuScenes tables ({si + 1}/{len(scenes)})", flush=True)
    _map_table(root, w.t)
    (root / "sweeps" / LIDAR_CHANNEL).mkdir(parents=True, exist_ok=True)
    folder = root / version
    for name in NUSCENES_TABLES:
        write_json_atomic(folder / f"{name}.json", w.t[name], indent=0)
    write_json_atomic(folder / f"{LIDARSEG_TABLE}.json", w.lidarseg_rows, indent=0)
    return folder


def _vocabulary_tables(t: dict[str, list[dict[str, Any]]], channels: list[str]) -> None:
    """The tables that are the same for every world: ``sensor``, ``category`` (all 32 lidarseg
    categories), ``attribute`` and ``visibility``."""
    for ch in channels:
        t["sensor"].append(
            {
                "token": nuscenes_token("sensor", ch),
                "channel": ch,
                "modality": "lidar" if ch == LIDAR_CHANNEL else "camera",
            }
        )
    class_of_category = {cat: cls for cls, cat in LIDARSEG_CATEGORY_OF_CLASS.items()}
    for index, cat in enumerate(LIDARSEG_CATEGORIES):
        cls = class_of_category.get(cat)
        t["category"].append(
            {
                "token": nuscenes_token("category", cat),
                "name": cat,
                "description": f"the synthetic world's {cls}" if cls else "not in the synthetic world",
                "index": index,
            }
        )
    for name, text in ATTRIBUTES.items():
        t["attribute"].append({"token": nuscenes_token("attribute", name), "name": name, "description": text})
    for token, level, lo, hi in VISIBILITY:
        t["visibility"].append(
            {"token": token, "level": level, "description": f"{lo:.0f} to {hi:.0f} % of the object seen by the cameras"}
        )


def _scene_tables(w: _Tables, scene: str, infos: dict[str, Any], description: str, rig: dict[str, Any] | None) -> None:
    """One scene's rows: its ``log`` and ``scene``, each frame's, the rig's sweeps (when there is a
    rig), and its ``instance`` and ``sample_annotation`` rows, chained in time."""
    tokens = _frames_in_order(scene, infos, w.ann_path)
    log_token, scene_token = nuscenes_token("log", scene), nuscenes_token("scene", scene)
    day = datetime.fromtimestamp(int(infos[tokens[0]]["timestamp"]) / 1e6, tz=timezone.utc)
    w.t["log"].append(
        {
            "token": log_token,
            "logfile": f"occkit-synth-{scene}",
            "vehicle": "occkit-synth",
            "date_captured": day.strftime("%Y-%m-%d"),
            "location": "occkit-synth",
        }
    )
    w.t["scene"].append(
        {
            "token": scene_token,
            "log_token": log_token,
            "nbr_samples": len(tokens),
            "first_sample_token": tokens[0],
            "last_sample_token": tokens[-1],
            "name": scene,
            "description": description,
        }
    )
    sd_rows: dict[str, list[dict[str, Any]]] = {ch: [] for ch in w.channels}
    ann_rows: dict[int, list[dict[str, Any]]] = {}
    rig_rec = None
    if rig is not None:
        from occkit.data.rig import read_scene

        rig_rec = read_scene(rig, scene)
        rig_keys = {s.token: s for s in rig_rec.sweeps if s.keyframe}
        if set(rig_keys) != set(tokens):
            where = w.root / "rig" / scene / "sweeps.json"
            raise ValueError(f"{where}: keyframe tokens differ from the scene's frames in annotations.json")
    for fi, token in enumerate(tokens):
        w.t["sample"].append(
            {
                "token": token,
                "timestamp": int(infos[token]["timestamp"]),
                "prev": tokens[fi - 1] if fi > 0 else "",
                "next": tokens[fi + 1] if fi + 1 < len(tokens) else "",
                "scene_token": scene_token,
            }
        )
        key = None if rig_rec is None else (rig, rig_keys[token])
        _frame_tables(w, scene, token, infos[token], sd_rows, ann_rows, key)
    if rig_rec is not None:
        sd_rows[LIDAR_CHANNEL] = _with_rig_sweeps(
            w.root,
            rig,
            rig_rec,
            scene,
            sd_rows[LIDAR_CHANNEL],
            w.elevations,
            w.t["ego_pose"],
            w.t["calibrated_sensor"],
            w.calib_seen,
        )
    for ch in w.channels:
        w.t["sample_data"] += sd_rows[ch]
    _instance_tables(w.t, ann_rows)


def _frame_tables(
    w: _Tables,
    scene: str,
    token: str,
    info: dict[str, Any],
    sd_rows: dict[str, list[dict[str, Any]]],
    ann_rows: dict[int, list[dict[str, Any]]],
    rig_key: tuple[dict[str, Any], Any] | None = None,
) -> None:
    """One frame's ``calibrated_sensor``, ``ego_pose`` and ``sample_data`` rows (each channel's
    ``sample_data`` linked to its previous frame's), its LiDAR files, and its annotations (by
    instance, into ``ann_rows``). ``rig_key``: the rig's meta and its keyframe sweep of this frame,
    whose LiDAR (points, labels, pose, calibration) the LiDAR rows take."""
    ts = int(info["timestamp"])
    extras = w.root / "extras" / scene / token
    cam_views = []
    for ch in w.channels:
        if ch == LIDAR_CHANNEL:
            pose = info["lidar_sensor"]["extrinsic"] if rig_key is None else _pose_record(rig_key[0]["lidars"][ch])
            intrinsic: list[list[float]] = []
        else:
            cam = info["camera_sensor"].get(ch)
            if cam is None:
                raise ValueError(f"{w.ann_path}: frame {token} of {scene} has no camera {ch}")
            pose, intrinsic = cam["extrinsic"], cam["intrinsic"]
        calib = {"translation": pose["translation"], "rotation": pose["rotation"], "camera_intrinsic": intrinsic}
        cs_token = _add_calibration(w.t["calibrated_sensor"], w.calib_seen, scene, ch, calib)
        sd_token = nuscenes_token("sample_data", token, ch)
        ego = {"rotation": info["ego_pose"]["rotation"], "translation": info["ego_pose"]["translation"]}
        if rig_key is not None:  # every sensor's pose at the keyframe as the rig recorded it (noise included)
            ego = _pose_record(rig_key[1].T_global_from_ego)
        w.t["ego_pose"].append(
            {"token": sd_token, "timestamp": ts, "rotation": ego["rotation"], "translation": ego["translation"]}
        )
        if ch == LIDAR_CHANNEL:
            rel = f"samples/{LIDAR_CHANNEL}/{scene}__{token}__{LIDAR_CHANNEL}.pcd.bin"
            if rig_key is None:
                lidar_instance = _write_lidar(w, extras, rel, pose, sd_token)
            else:
                lidar_instance = _write_rig_lidar(w, rig_key[1], rel, sd_token)
            fmt, h, wd = "pcd", 0, 0
        else:
            rel = info["camera_sensor"][ch]["img_path"]
            fmt, h, wd = Path(rel).suffix.lstrip("."), w.height, w.width
            cam_views.append(
                (
                    np.asarray(intrinsic, np.float64),
                    _matrix(pose),
                    load_npz(extras / f"{ch}.npz", keys=("depth",))["depth"],
                )
            )
        rows = sd_rows[ch]
        rows.append(
            {
                "token": sd_token,
                "sample_token": token,
                "ego_pose_token": sd_token,
                "calibrated_sensor_token": cs_token,
                "timestamp": ts,
                "fileformat": fmt,
                "is_key_frame": True,
                "height": h,
                "width": wd,
                "filename": rel,
                "prev": rows[-1]["token"] if rows else "",
                "next": "",
            }
        )
        if len(rows) > 1:
            rows[-2]["next"] = sd_token
    recorded = None if rig_key is None else _recorded_boxes(rig_key[1])
    _annotate(extras / "objects.json", scene, token, lidar_instance, cam_views, ann_rows, recorded)


def _recorded_boxes(sweep: Any) -> dict[int, tuple[list[float], list[float], float]]:
    """The rig's boxes of a keyframe sweep by track (= the world's instance): ``(center, size (l, w, h), yaw)``
    as recorded (the box noise options included)."""
    b = sweep.boxes
    if b is None:
        return {}
    return {
        int(b.track[k]): ([float(v) for v in b.center[k]], [float(v) for v in b.size[k]], float(b.yaw[k]))
        for k in range(len(b))
    }


def _add_calibration(
    calibs: list[dict[str, Any]], calib_seen: set[str], scene: str, ch: str, calib: dict[str, Any]
) -> str:
    """The token of a channel's ``calibrated_sensor`` row in a scene, the row appended to ``calibs``
    the first time it is seen."""
    cs_token = nuscenes_token("calibrated_sensor", scene, ch, repr(sorted(calib.items())))
    if cs_token not in calib_seen:
        calib_seen.add(cs_token)
        calibs.append({"token": cs_token, "sensor_token": nuscenes_token("sensor", ch), **calib})
    return cs_token


def _write_lidar(w: _Tables, extras: Path, rel: str, pose: dict[str, Any], sd_token: str) -> np.ndarray:
    """Write a keyframe's LiDAR ``.pcd.bin`` (at ``rel``) and its lidarseg file from the extras'
    ``lidar.npz``, and add its ``lidarseg`` row; returns the points' instance ids."""
    lid = load_npz(extras / "lidar.npz", keys=("points", "labels", "instance"))
    pts = lid["points"]
    if pts.ndim != 2 or pts.shape[1] != 4 or pts.dtype != np.float32:
        raise ValueError(f"{extras / 'lidar.npz'}: points {pts.dtype} {pts.shape}, expected float32 (N, 4)")
    write_bytes_atomic(w.root / rel, lidar_to_pcd(pts, _matrix(pose), w.elevations).tobytes())
    seg = lidarseg_indices(lid["labels"], len(pts), w.lidarseg_lut, extras / "lidar.npz")
    seg_rel = f"{LIDARSEG_TABLE}/{w.version}/{sd_token}_lidarseg.bin"
    write_bytes_atomic(w.root / seg_rel, seg.tobytes())
    w.lidarseg_rows.append({"token": sd_token, "sample_data_token": sd_token, "filename": seg_rel})
    return lid["instance"]


def _write_rig_lidar(w: _Tables, sweep: Any, rel: str, sd_token: str) -> np.ndarray:
    """Write a keyframe's LiDAR ``.pcd.bin`` (at ``rel``) and its lidarseg file (where it has point
    labels) from the rig's keyframe sweep, in the rig's LiDAR frame as recorded; returns the points'
    instance ids (from the sweep's file, zeros where it has none)."""
    pts = np.zeros((len(sweep.points), 4), np.float32)
    pts[:, :3] = sweep.points
    if sweep.intensity is not None:
        pts[:, 3] = sweep.intensity
    write_bytes_atomic(w.root / rel, lidar_to_pcd(pts, np.eye(4), w.elevations).tobytes())
    if sweep.labels is not None:
        seg = lidarseg_indices(sweep.labels, len(pts), w.lidarseg_lut, Path(sweep.source))
        seg_rel = f"{LIDARSEG_TABLE}/{w.version}/{sd_token}_lidarseg.bin"
        write_bytes_atomic(w.root / seg_rel, seg.tobytes())
        w.lidarseg_rows.append({"token": sd_token, "sample_data_token": sd_token, "filename": seg_rel})
    inst = load_npz(sweep.source).get("instance")
    return np.zeros(len(pts), np.int32) if inst is None else np.asarray(inst)


def _instance_tables(t: dict[str, list[dict[str, Any]]], ann_rows: dict[int, list[dict[str, Any]]]) -> None:
    """A scene's ``sample_annotation`` rows, chained ``prev`` / ``next`` per instance, and one
    ``instance`` row for each."""
    for inst, rows in sorted(ann_rows.items()):
        for a, b in zip(rows, rows[1:]):
            a["next"], b["prev"] = b["token"], a["token"]
        t["sample_annotation"] += rows
        t["instance"].append(
            {
                "token": rows[0]["instance_token"],
                "category_token": rows[0].pop("_category"),
                "nbr_annotations": len(rows),
                "first_annotation_token": rows[0]["token"],
                "last_annotation_token": rows[-1]["token"],
            }
        )
        for r in rows[1:]:
            r.pop("_category")


def _map_table(root: Path, t: dict[str, list[dict[str, Any]]]) -> None:
    """The one ``map`` record, for every log, and its blank mask file."""
    map_token = nuscenes_token("map", "synth")
    map_file = f"maps/{map_token}.png"
    write_bytes_atomic(root / map_file, _blank_png())
    t["map"].append(
        {
            "token": map_token,
            "log_tokens": [r["token"] for r in t["log"]],
            "category": "semantic_prior",
            "filename": map_file,
        }
    )


def _read_rig(root: Path, ann: dict[str, Any]) -> dict[str, Any] | None:
    """The rig folder ``root/rig`` checked (:func:`occkit.data.rig.read_rig_meta`), or None."""
    from occkit.data.rig import is_rig, read_rig_meta

    if not is_rig(root / "rig"):
        return None
    meta = read_rig_meta(root / "rig")
    if LIDAR_CHANNEL not in meta["lidars"]:
        raise ValueError(f"{root / 'rig' / 'rig.json'}: no {LIDAR_CHANNEL} among its LiDARs {sorted(meta['lidars'])}")
    missing = sorted(set(ann["scene_infos"]) - set(meta["scenes"]))
    if missing:
        raise ValueError(f"{root / 'rig' / 'rig.json'}: scenes {missing} of annotations.json are not in the rig")
    return meta


def _with_rig_sweeps(
    root: Path,
    rig: dict[str, Any],
    rec: Any,
    scene: str,
    key_rows: list[dict[str, Any]],
    elevations: np.ndarray,
    ego_poses: list[dict[str, Any]],
    calibs: list[dict[str, Any]],
    calib_seen: set[str],
) -> list[dict[str, Any]]:
    """The scene's keyframe LiDAR rows with the rig's non-key sweeps added (files, ``ego_pose`` and
    ``calibrated_sensor`` rows appended to ``ego_poses`` / ``calibs``), all linked in time order."""
    where = root / "rig" / scene / "sweeps.json"
    calib = {**_pose_record(rig["lidars"][LIDAR_CHANNEL]), "camera_intrinsic": []}
    cs_token = _add_calibration(calibs, calib_seen, scene, LIDAR_CHANNEL, calib)
    key_times = sorted((r["timestamp"], r["sample_token"]) for r in key_rows)
    rows = list(key_rows)
    for s in rec.sweeps:
        if s.keyframe:
            continue
        if s.sensor != LIDAR_CHANNEL:
            raise ValueError(f"{where}: sweep {s.token!r}: sensor {s.sensor!r}, the export knows {LIDAR_CHANNEL} only")
        # nuScenes: a sweep belongs to the next keyframe's sample (the last one's, after the last keyframe)
        sample = next((tok for ts, tok in key_times if ts >= s.timestamp), key_times[-1][1])
        sd_token = nuscenes_token("sample_data", scene, s.token, LIDAR_CHANNEL)
        ego_poses.append({"token": sd_token, "timestamp": s.timestamp, **_pose_record(s.T_global_from_ego)})
        pts = np.zeros((len(s.points), 4), np.float32)
        pts[:, :3] = s.points
        if s.intensity is not None:
            pts[:, 3] = s.intensity
        rel = f"sweeps/{LIDAR_CHANNEL}/{scene}__{s.token}__{LIDAR_CHANNEL}.pcd.bin"
        write_bytes_atomic(root / rel, lidar_to_pcd(pts, np.eye(4), elevations).tobytes())
        rows.append(
            {
                "token": sd_token,
                "sample_token": sample,
                "ego_pose_token": sd_token,
                "calibrated_sensor_token": cs_token,
                "timestamp": s.timestamp,
                "fileformat": "pcd",
                "is_key_frame": False,
                "height": 0,
                "width": 0,
                "filename": rel,
                "prev": "",
                "next": "",
            }
        )
    rows.sort(key=lambda r: (r["timestamp"], not r["is_key_frame"]))
    for i, r in enumerate(rows):
        r["prev"] = rows[i - 1]["token"] if i else ""
        r["next"] = rows[i + 1]["token"] if i + 1 < len(rows) else ""
    return rows


def _pose_record(T: np.ndarray) -> dict[str, list[float]]:
    """``{"translation", "rotation" (w, x, y, z)}`` of a ``(4, 4)`` rigid transform."""
    import torch

    from occkit.geometry.transforms import pose_from_transform

    return pose_from_transform(torch.from_numpy(np.asarray(T, np.float64)))


def lidarseg_lookup() -> np.ndarray:
    """``(256,)`` int16: Occ3D class id -> nuScenes-lidarseg category index (-1: no such class; the
    Occ3D ``free`` class has none, a LiDAR point always hits something)."""
    from occkit.labels import OCC3D_CLASSES

    lut = np.full(256, -1, np.int16)
    for cid, name in enumerate(OCC3D_CLASSES):
        cat = LIDARSEG_CATEGORY_OF_CLASS.get(name)
        if cat is not None:
            lut[cid] = LIDARSEG_CATEGORIES.index(cat)
    return lut


def lidarseg_indices(labels: np.ndarray, n: int, lut: np.ndarray, where: Path) -> np.ndarray:
    """``(n,)`` uint8 lidarseg category indices of ``n`` points from their Occ3D class ids ``labels``."""
    labels = np.asarray(labels)
    if labels.shape != (n,) or labels.dtype.kind not in "ui":
        raise ValueError(f"{where}: labels {labels.dtype} {labels.shape}, expected integer ({n},) for {n} points")
    if n and (labels.min() < 0 or labels.max() > 255):
        raise ValueError(f"{where}: labels outside 0..255")
    seg = lut[labels.astype(np.int64)] if n else np.zeros(0, np.int16)
    if (seg < 0).any():
        bad = sorted(set(labels[seg < 0].tolist()))
        raise ValueError(f"{where}: labels {bad} have no nuScenes-lidarseg category (a LiDAR point in 'free'?)")
    return seg.astype(np.uint8)


def _annotate(
    objects_path: Path,
    scene: str,
    sample: str,
    lidar_instance: np.ndarray,
    cameras: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    rows: dict[int, list[dict[str, Any]]],
    recorded: dict[int, tuple[list[float], list[float], float]] | None = None,
) -> None:
    """Append the frame's ``sample_annotation`` rows (by instance) from its ``objects.json``; an instance the
    rig recorded a box of at this keyframe (``recorded``) takes that box (its centre, size and yaw as recorded,
    the box noise options included), so that the tables hold the boxes the rig does."""
    objects = read_json(objects_path).get("objects", [])
    counts = np.bincount(lidar_instance.astype(np.int64).clip(0)) if lidar_instance.size else np.zeros(1, np.int64)
    for o in objects:
        cls = o.get("class_name")
        if cls not in CATEGORY_OF_CLASS:
            continue
        inst = int(o["instance"])
        box = o["box_global"]
        speed = math.hypot(*o.get("velocity_global", [0.0, 0.0]))
        if cls in _VEHICLES:
            attr = [
                "vehicle.moving" if speed > MOVING_SPEED else "vehicle.stopped" if o["dynamic"] else "vehicle.parked"
            ]
        elif cls in _CYCLES:
            attr = ["cycle.with_rider" if o.get("attributes", {}).get("rider") else "cycle.without_rider"]
        elif cls == "pedestrian":
            attr = ["pedestrian.moving" if speed > MOVING_SPEED else "pedestrian.standing"]
        else:
            attr = []
        center, (L, W, H), yaw = box["center"], box["size"], box["yaw"]
        if recorded and inst in recorded:
            center, (L, W, H), yaw = recorded[inst]
        rows.setdefault(inst, []).append(
            {
                "token": nuscenes_token("sample_annotation", sample, inst),
                "sample_token": sample,
                "instance_token": nuscenes_token("instance", scene, inst),
                "visibility_token": _visibility_token(seen_fraction(_box_points(o["box_ego"]), cameras)),
                "attribute_tokens": [nuscenes_token("attribute", a) for a in attr],
                "translation": center,
                "size": [W, L, H],
                "rotation": [round(v, 8) for v in _quat_yaw(yaw)],
                "prev": "",
                "next": "",
                "num_lidar_pts": int(counts[inst]) if inst < len(counts) else 0,
                "num_radar_pts": 0,
                "_category": nuscenes_token("category", CATEGORY_OF_CLASS[cls]),
            }
        )


def export_nuscenes(
    out_dir: str | os.PathLike,
    config: Any,
    overwrite: bool = False,
    progress: bool = False,
    resume: bool = False,
    version: str = NUSCENES_VERSION,
) -> Path:
    """The synthetic world in the Occ3D-nuScenes layout (:func:`occkit.worlds.driving.generate_dataset`)
    plus its nuScenes table set (:func:`write_nuscenes_tables`), in one folder ``out_dir``."""
    from occkit.worlds.driving.writer import generate_dataset

    out = generate_dataset(out_dir, config, overwrite=overwrite, progress=progress, resume=resume)
    write_nuscenes_tables(out, version, progress=progress)
    return out
