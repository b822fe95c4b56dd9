"""The rig folder: a user's own sensors on disk, as ``occkit label`` reads them (docs/labels.md).

Layout (every pose nuScenes-style: ``{"translation": [x, y, z], "rotation": [w, x, y, z]}``)::

    <rig>/rig.json
        {"format": "occkit-rig", "version": 1,
         "classes": [names of the class ids used by point labels and boxes],
         "ego": {"size": [l, w, h], "center": [x, y, z]},           # the vehicle's box, ego frame
         "lidars": {"LIDAR_TOP": <pose: T_ego_from_lidar>},
         "cameras": {"CAM_FRONT": {<pose: T_ego_from_cam, OpenCV axes>,
                                   "intrinsic": [[3x3]], "image_size": [H, W]}},   # optional
         "scenes": ["scene-0000", ...],
         "splits": {"train": [scenes], "val": [scenes]}}               # optional; a scene in one at most
    <rig>/<scene>/sweeps.json
        {"sweeps": [{"token", "timestamp" (microseconds, increasing), "sensor" (a LiDAR id),
                     "ego_pose": <pose: T_global_from_ego>, "keyframe": bool,
                     "points": "lidar/<token>.npz"}, ...]}
    <rig>/<scene>/lidar/<token>.npz
        points (N, 3 or more) float32, x y z [intensity ...] in the LiDAR frame;
        labels (N,) integer class ids (optional); instance (N,) int32 track ids (optional, 0 = none)
    <rig>/<scene>/boxes.json                                          # optional
        {"boxes": [{"sweep": token, "track": int, "class": int, "center": [x, y, z] (world),
                    "size": [l, w, h], "yaw": radians (world)}, ...]}

Every file name a table gives is read only under the rig folder (an absolute name or one that
climbs out with ``..`` is refused).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from occkit.data.scene_record import Boxes, Camera, SceneRecord, Sweep, check_record
from occkit.fileio import load_npz, read_json, save_npz_atomic, write_json_atomic
from occkit.geometry.transforms import checked_pose, pose_from_transform

RIG_FORMAT = "occkit-rig"
RIG_VERSION = 1


def is_rig(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a ``rig.json``."""
    return (Path(folder) / "rig.json").is_file()


def _pose(d: Any, kind: str, where: str) -> np.ndarray:
    if not isinstance(d, dict) or "translation" not in d or "rotation" not in d:
        raise ValueError(f"{where}: not a pose (want {{'translation': [x, y, z], 'rotation': [w, x, y, z]}})")
    T = checked_pose(d["translation"], d["rotation"], kind, where).numpy()
    norm = float(np.linalg.norm(np.asarray(d["rotation"], np.float64)))
    if abs(norm - 1.0) > 1e-3:  # a quaternion is turned into a rotation whatever its norm: say it
        raise ValueError(f"{where}: not rigid (the rotation quaternion has norm {norm:.4g}, not 1)")
    return T


def _under(root: Path, rel: Any, where: str) -> Path:
    """``root / rel`` when ``rel`` is a relative name that stays under ``root``; else ValueError."""
    if not isinstance(rel, str) or not rel:
        raise ValueError(f"{where}: a file name must be a non-empty string, got {rel!r}")
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts:
        raise ValueError(f"{where}: file name {rel!r} leaves the rig folder (absolute or '..')")
    return root / p


def read_rig_meta(folder: str | os.PathLike) -> dict[str, Any]:
    """``rig.json`` checked: format and version, classes, ego box, LiDARs and cameras as matrices.
    Returns ``{"classes", "ego_size", "ego_center", "lidars", "cameras", "scenes", "splits", "folder"}``
    (``splits``: ``{"train": [...], "val": [...]}`` as ``rig.json`` gives them, checked; ``{}`` without)."""
    root = Path(folder)
    f = root / "rig.json"
    meta = read_json(f)
    _check_rig_format(meta, f)
    classes = meta.get("classes", [])
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise ValueError(f"{f}: classes must be a list of names")
    size, center = _rig_ego(meta, f)
    lidars_in = meta.get("lidars")
    if not isinstance(lidars_in, dict) or not lidars_in:
        raise ValueError(f"{f}: lidars: at least one LiDAR with its pose is needed")
    lidars = {str(k): _pose(v, "extrinsic", f"{f}: lidars.{k}") for k, v in lidars_in.items()}
    cameras = {}
    for name, c in (meta.get("cameras") or {}).items():
        cameras[str(name)] = _rig_camera(name, c, f"{f}: cameras.{name}")
    scenes = meta.get("scenes")
    if not isinstance(scenes, list) or not all(isinstance(s, str) and s for s in scenes):
        raise ValueError(f"{f}: scenes must be a list of scene folder names")
    for s in scenes:
        _under(root, s, f"{f}: scenes")
    splits = _rig_splits(meta.get("splits"), scenes, f)
    return {
        "classes": tuple(classes),
        "ego_size": size,
        "ego_center": center,
        "lidars": lidars,
        "cameras": cameras,
        "scenes": list(scenes),
        "splits": splits,
        "folder": root,
    }


def _rig_splits(splits: Any, scenes: list[str], f: Path) -> dict[str, list[str]]:
    """``rig.json``'s optional ``"splits": {"train": [...], "val": [...]}``, checked: each a list of
    the rig's scenes, no scene in both (``{}`` when not given)."""
    if splits is None:
        return {}
    if not isinstance(splits, dict):
        raise ValueError(f"{f}: splits must be {{'train': [scenes], 'val': [scenes]}}, got {type(splits).__name__}")
    unknown = sorted(set(splits) - {"train", "val"})
    if unknown:
        raise ValueError(f"{f}: splits: unknown split {unknown[0]!r} (the splits are train and val)")
    out: dict[str, list[str]] = {}
    for name, listed in splits.items():
        if not isinstance(listed, list) or not all(isinstance(s, str) for s in listed):
            raise ValueError(f"{f}: splits.{name} must be a list of scene names")
        bad = [s for s in listed if s not in scenes]
        if bad:
            raise ValueError(f"{f}: splits.{name}: {bad[:3]} are not scenes of the rig (its scenes: {scenes[:5]} ...)")
        out[name] = list(dict.fromkeys(listed))
    both = [s for s in out.get("train", []) if s in out.get("val", [])]
    if both:
        raise ValueError(f"{f}: splits: {both[:3]} are in both train and val (a scene is in one split)")
    return out


def _check_rig_format(meta: Any, f: Path) -> None:
    """Refuse a ``rig.json`` that is not an occkit rig table of the version this occkit reads."""
    if not isinstance(meta, dict) or meta.get("format") != RIG_FORMAT:
        raise ValueError(
            f"{f}: format must be {RIG_FORMAT!r}, got {meta.get('format') if isinstance(meta, dict) else meta!r}"
        )
    if meta.get("version") != RIG_VERSION:
        raise ValueError(f"{f}: version {meta.get('version')!r} is not one this occkit reads ({RIG_VERSION})")


def _rig_ego(meta: dict[str, Any], f: Path) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The ego box's size and centre of ``rig.json`` (nuScenes' car when not given), checked."""
    ego = meta.get("ego", {})
    size = tuple(float(v) for v in ego.get("size", (4.1, 1.9, 1.8)))
    center = tuple(float(v) for v in ego.get("center", (0.9, 0.0, 0.9)))
    if len(size) != 3 or min(size) <= 0 or len(center) != 3:
        raise ValueError(f"{f}: ego: size must be 3 positive numbers and center 3 numbers, got {ego!r}")
    return size, center


def _rig_camera(name: Any, c: Any, at: str) -> Camera:
    """One camera of ``rig.json`` (``at`` names it), its intrinsics, image size and pose checked."""
    try:
        K = np.asarray(c["intrinsic"], dtype=np.float64)
        hw = tuple(int(v) for v in c["image_size"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{at}: needs intrinsic (3x3) and image_size [H, W] ({e})") from None
    if K.shape != (3, 3) or not np.isfinite(K).all() or len(hw) != 2 or min(hw) < 1:
        raise ValueError(f"{at}: intrinsic must be a finite 3x3 and image_size [H, W] positive")
    return Camera(str(name), K, _pose(c, "extrinsic", at), (hw[0], hw[1]))


def read_scene(meta: dict[str, Any], scene: str, load_points: bool = True) -> SceneRecord:
    """One scene of a rig folder as a checked :class:`SceneRecord` (:func:`check_record`).
    ``load_points`` False: the tables alone (poses, timestamps, sensors, file names, boxes) are
    read and checked, each sweep's points left empty (a cheap check of every scene before work)."""
    root: Path = meta["folder"]
    sdir = _under(root, scene, f"{root / 'rig.json'}: scenes")
    sf = sdir / "sweeps.json"
    table = read_json(sf)
    rows = table.get("sweeps") if isinstance(table, dict) else None
    if not isinstance(rows, list):
        raise ValueError(f"{sf}: sweeps must be a list")
    n_cls = len(meta["classes"])
    sweeps: list[Sweep] = []
    for i, r in enumerate(rows):
        at = f"{sf}: sweeps[{i}]"
        if not isinstance(r, dict):
            raise ValueError(f"{at}: not an object")
        for key in ("token", "timestamp", "sensor", "points"):
            if key not in r:
                raise ValueError(f"{at}: {key} missing")
        at = f"{sf}: sweep {r['token']!r}"
        if "ego_pose" not in r or r["ego_pose"] is None:
            raise ValueError(f"{at}: ego_pose missing (a sweep without a pose)")
        if r["sensor"] not in meta["lidars"]:
            raise ValueError(f"{at}: sensor {r['sensor']!r} is not a LiDAR of rig.json ({sorted(meta['lidars'])})")
        pf = _under(sdir, r["points"], f"{at}: points")
        arrays = load_npz(pf) if load_points else {"points": np.zeros((0, 3), np.float32)}
        if "points" not in arrays:
            raise ValueError(f"{pf}: no 'points' array")
        pts = arrays["points"]
        if pts.ndim != 2 or pts.shape[1] < 3 or not np.issubdtype(pts.dtype, np.floating):
            raise ValueError(f"{pf}: points must be (N, 3+) floats, got {pts.dtype} {tuple(pts.shape)}")
        labels = arrays.get("labels")
        if labels is not None:
            if not np.issubdtype(labels.dtype, np.integer) or labels.shape != (pts.shape[0],):
                raise ValueError(
                    f"{pf}: labels must be (N,) integers for {pts.shape[0]} points, got {labels.dtype} {labels.shape}"
                )
            if len(labels) and n_cls and (int(labels.min()) < 0 or int(labels.max()) >= n_cls):
                raise ValueError(f"{pf}: labels: id {int(labels.max())} outside rig.json's classes (0..{n_cls - 1})")
            labels = labels.astype(np.int64)
        try:
            ts = int(r["timestamp"])
        except (TypeError, ValueError):
            raise ValueError(f"{at}: timestamp {r['timestamp']!r} is not an integer") from None
        sweeps.append(
            Sweep(
                token=str(r["token"]),
                timestamp=ts,
                sensor=str(r["sensor"]),
                T_global_from_ego=_pose(r["ego_pose"], "ego_pose", f"{at}: ego_pose"),
                points=np.ascontiguousarray(pts[:, :3], dtype=np.float32),
                labels=labels,
                intensity=np.ascontiguousarray(pts[:, 3], dtype=np.float32) if pts.shape[1] > 3 else None,
                keyframe=bool(r.get("keyframe", False)),
                source=str(pf),
            )
        )
    bf = sdir / "boxes.json"
    if bf.is_file():
        _attach_boxes(sweeps, read_json(bf), bf)
    rec = SceneRecord(
        name=scene,
        sweeps=sweeps,
        lidars=meta["lidars"],
        cameras=meta["cameras"],
        classes=meta["classes"],
        ego_size=meta["ego_size"],
        ego_center=meta["ego_center"],
        source=str(sdir),
    )
    check_record(rec)
    return rec


def _attach_boxes(sweeps: list[Sweep], table: Any, bf: Path) -> None:
    rows = table.get("boxes") if isinstance(table, dict) else None
    if not isinstance(rows, list):
        raise ValueError(f"{bf}: boxes must be a list")
    by_sweep: dict[str, list[tuple[int, int, list[float], list[float], float]]] = {s.token: [] for s in sweeps}
    for i, b in enumerate(rows):
        at = f"{bf}: boxes[{i}]"
        try:
            tok, track, cls = str(b["sweep"]), int(b["track"]), int(b["class"])
            c = [float(v) for v in b["center"]]
            sz = [float(v) for v in b["size"]]
            yaw = float(b["yaw"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{at}: needs sweep, track, class, center [3], size [3], yaw ({e})") from None
        if tok not in by_sweep:
            raise ValueError(f"{at}: sweep {tok!r} is not a sweep of sweeps.json")
        if len(c) != 3 or len(sz) != 3:
            raise ValueError(f"{at}: center and size need 3 numbers each")
        if min(sz) <= 0:
            raise ValueError(f"{at}: track {track} has size {sz} (must be positive)")
        by_sweep[tok].append((track, cls, c, sz, yaw))
    for s in sweeps:
        rows_s = by_sweep[s.token]
        if not rows_s:
            s.boxes = Boxes.empty()
            continue
        s.boxes = Boxes(
            track=np.array([r[0] for r in rows_s], np.int64),
            cls=np.array([r[1] for r in rows_s], np.int64),
            center=np.array([r[2] for r in rows_s], np.float64),
            size=np.array([r[3] for r in rows_s], np.float64),
            yaw=np.array([r[4] for r in rows_s], np.float64),
        )


def _pose_dict(T: np.ndarray) -> dict[str, list[float]]:
    p = pose_from_transform(torch.as_tensor(np.asarray(T, dtype=np.float64)))
    return {"translation": [round(v, 6) for v in p["translation"]], "rotation": [round(v, 9) for v in p["rotation"]]}


def write_rig_meta(folder: str | os.PathLike, rec: SceneRecord, scenes: list[str]) -> Path:
    """``rig.json`` for scenes recorded with ``rec``'s rig (sensors, classes, ego box)."""
    root = Path(folder)
    cams = {
        n: {**_pose_dict(c.T_ego_from_cam), "intrinsic": np.round(c.K, 6).tolist(), "image_size": list(c.image_size)}
        for n, c in rec.cameras.items()
    }
    meta = {
        "format": RIG_FORMAT,
        "version": RIG_VERSION,
        "classes": list(rec.classes),
        "ego": {"size": list(rec.ego_size), "center": list(rec.ego_center)},
        "lidars": {n: _pose_dict(T) for n, T in rec.lidars.items()},
        "cameras": cams,
        "scenes": list(scenes),
    }
    return write_json_atomic(root / "rig.json", meta)


def write_scene(folder: str | os.PathLike, rec: SceneRecord, instance: dict[str, np.ndarray] | None = None) -> Path:
    """Write one scene's ``sweeps.json``, ``lidar/*.npz`` and (when it has boxes) ``boxes.json``.
    ``instance``: optional per-sweep ``(N,)`` int32 track ids of the points, by sweep token."""
    sdir = Path(folder) / rec.name
    rows = []
    boxes = []
    for s in rec.sweeps:
        rel = f"lidar/{s.token}.npz"
        pts = s.points.astype(np.float32)
        if s.intensity is not None:
            pts = np.concatenate([pts, s.intensity.astype(np.float32)[:, None]], 1)
        arrays: dict[str, np.ndarray] = {"points": pts}
        if s.labels is not None:
            arrays["labels"] = s.labels.astype(np.uint8)
        if instance is not None and s.token in instance:
            arrays["instance"] = instance[s.token].astype(np.int32)
        save_npz_atomic(sdir / rel, **arrays)
        rows.append(
            {
                "token": s.token,
                "timestamp": int(s.timestamp),
                "sensor": s.sensor,
                "ego_pose": _pose_dict(s.T_global_from_ego),
                "keyframe": bool(s.keyframe),
                "points": rel,
            }
        )
        if s.boxes is not None:
            b = s.boxes
            for k in range(len(b)):
                boxes.append(
                    {
                        "sweep": s.token,
                        "track": int(b.track[k]),
                        "class": int(b.cls[k]),
                        "center": [round(float(v), 4) for v in b.center[k]],
                        "size": [round(float(v), 4) for v in b.size[k]],
                        "yaw": round(float(b.yaw[k]), 6),
                    }
                )
    if rec.has_boxes:
        write_json_atomic(sdir / "boxes.json", {"boxes": boxes})
    write_json_atomic(sdir / "sweeps.json", {"sweeps": rows})
    return sdir
