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
                     "points": "lidar/<token>.npz",
                     "images": {"CAM_FRONT": "images/CAM_FRONT/<token>.jpg", ...}}, ...]}  # optional
    <rig>/<scene>/lidar/<token>.npz
        points (N, 3 or more) float32, x y z [intensity ...] in the LiDAR frame;
        labels (N,) integer class ids (optional); instance (N,) int32 track ids (optional, 0 = none)
    <rig>/<scene>/boxes.json                                          # optional
        {"boxes": [{"sweep": token, "track": int, "class": int, "center": [x, y, z] (world),
                    "size": [l, w, h], "yaw": radians (world)}, ...]}

Every file name a table gives is read only under the rig folder (an absolute name or one that
climbs out with ``..`` is refused); a sweep's points and images are named relative to its scene's folder.
A camera image is a file of a camera of ``rig.json``; a named image missing on disk is refused.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from occkit.data.scene_record import Boxes, Camera, SceneRecord, Sweep, check_record, ids_outside
from occkit.fileio import load_npz, read_json, save_npz_atomic, write_json_atomic
from occkit.geometry.transforms import checked_pose, pose_from_transform, singular_intrinsic

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


#: The largest ego box side and distance of its centre from the ego origin, metres: a vehicle's box
#: larger than this (``1e6``) would hold every return, and every label would be free.
EGO_LIMIT_M = 50.0
#: The largest camera image side, pixels: no camera has one larger (the mask's rays are made per pixel).
IMAGE_SIDE_LIMIT = 100_000
#: Timestamps are microseconds from 1970-01-01 (UTC) up to 2200-01-01: a larger one (``10**30``) is corrupt.
TIMESTAMP_LIMIT_US = 7_258_118_400_000_000


def _number(v: Any, where: str) -> float:
    """``v`` when it is a finite JSON number (not a boolean, not text); else a one-line ValueError."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{where}: {v!r} is not a number")
    if not np.isfinite(float(v)):
        raise ValueError(f"{where}: {v!r} is not finite")
    return float(v)


def _integer(v: Any, where: str) -> int:
    """``v`` when it is a JSON integer (``3`` or ``3.0``; not ``3.5``, a boolean or text); else a ValueError."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{where}: {v!r} is not an integer")
    if isinstance(v, float) and not (np.isfinite(v) and v.is_integer()):
        raise ValueError(f"{where}: {v!r} is not an integer (refused, not rounded)")
    return int(v)


def _numbers(v: Any, n: int, where: str) -> list[float]:
    """``v`` when it is a list of ``n`` finite numbers; else a one-line ValueError."""
    if not isinstance(v, list) or len(v) != n:
        raise ValueError(f"{where}: {v!r} is not a list of {n} numbers")
    return [_number(x, where) for x in v]


#: The keys of each object of the rig's tables (docs/labels.md, "The rig folder"); any other is refused by name
#: (a misspelt ``keyframe`` or ``splits`` read as absent changed the labels or their splits with no word).
RIG_KEYS = ("format", "version", "classes", "ego", "lidars", "cameras", "scenes", "splits")
EGO_KEYS = ("size", "center")
SWEEP_KEYS = ("token", "timestamp", "sensor", "ego_pose", "keyframe", "points", "images")
BOX_KEYS = ("sweep", "track", "class", "center", "size", "yaw")


def _known_keys(row: dict[str, Any], keys: tuple[str, ...], at: str) -> None:
    """Refuse a key of ``row`` (``at`` names it) that is not one of ``keys``, naming it and the keys."""
    unknown = [k for k in row if k not in keys]
    if unknown:
        raise ValueError(f"{at}: unknown key {_short(unknown[0])} (its keys: {', '.join(keys)})")


def _object(table: dict[str, Any], key: str, f: Path, empty_ok: bool = True) -> dict[str, Any]:
    """``table[key]`` when it is a JSON object (absent or null: ``{}`` when ``empty_ok``); else a ValueError."""
    v = table.get(key)
    if v is None and empty_ok:
        return {}
    if not isinstance(v, dict):
        raise ValueError(f"{f}: {key}: {type(v).__name__} {_short(v)} where an object {{name: ...}} is meant")
    return v


def _short(v: Any) -> str:
    t = repr(v)
    return t if len(t) <= 60 else t[:57] + "..."


def _token(v: Any, where: str) -> str:
    """A sweep token: a non-empty string that can name one folder (the label's ``gts/<scene>/<token>``)."""
    if not isinstance(v, str) or not v:
        raise ValueError(f"{where}: token {_short(v)} is not a non-empty string")
    if "/" in v or "\\" in v or "\0" in v or v in (".", ".."):
        raise ValueError(f"{where}: token {v!r} cannot name a folder (a '/', '\\', NUL byte, '.' or '..' in it)")
    return v


def read_rig_meta(folder: str | os.PathLike) -> dict[str, Any]:
    """``rig.json`` checked: format and version, classes, ego box, LiDARs and cameras as matrices.
    Returns ``{"classes", "ego_size", "ego_center", "lidars", "cameras", "scenes", "splits", "folder"}``
    (``splits``: ``{"train": [...], "val": [...]}`` as ``rig.json`` gives them, checked; ``{}`` without)."""
    root = Path(folder)
    f = root / "rig.json"
    meta = read_json(f)
    _check_rig_format(meta, f)
    _known_keys(meta, RIG_KEYS, str(f))
    classes = meta.get("classes", [])
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise ValueError(f"{f}: classes must be a list of names")
    size, center = _rig_ego(meta, f)
    lidars_in = _object(meta, "lidars", f)
    if not lidars_in:
        raise ValueError(f"{f}: lidars: at least one LiDAR with its pose is needed")
    lidars = {str(k): _pose(v, "extrinsic", f"{f}: lidars.{k}") for k, v in lidars_in.items()}
    cameras = {}
    for name, c in _object(meta, "cameras", f).items():
        cameras[str(name)] = _rig_camera(name, c, f"{f}: cameras.{name}")
    scenes = meta.get("scenes")
    if not isinstance(scenes, list) or not all(isinstance(s, str) and s for s in scenes):
        raise ValueError(f"{f}: scenes must be a list of scene folder names")
    twice = sorted({s for s in scenes if scenes.count(s) > 1})
    if twice:
        raise ValueError(f"{f}: scenes: {twice} listed more than once (each scene would be labelled twice)")
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
    if meta.get("version") != RIG_VERSION or isinstance(meta.get("version"), bool):
        raise ValueError(f"{f}: version {meta.get('version')!r} is not one this occkit reads ({RIG_VERSION})")


def _rig_ego(meta: dict[str, Any], f: Path) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The ego box's size and centre of ``rig.json`` (nuScenes' car when not given), checked: 3 finite
    numbers each, the sides in (0, :data:`EGO_LIMIT_M`] m and the centre within that of the ego origin."""
    ego = _object(meta, "ego", f)
    _known_keys(ego, EGO_KEYS, f"{f}: ego")
    size = _numbers(ego.get("size", [4.1, 1.9, 1.8]), 3, f"{f}: ego.size")
    center = _numbers(ego.get("center", [0.9, 0.0, 0.9]), 3, f"{f}: ego.center")
    if min(size) <= 0 or max(size) > EGO_LIMIT_M:
        raise ValueError(
            f"{f}: ego.size {size}: each side must lie in (0, {EGO_LIMIT_M:g}] m (the vehicle's box, whose returns "
            "are dropped)"
        )
    if max(abs(c) for c in center) > EGO_LIMIT_M:
        raise ValueError(f"{f}: ego.center {center} lies more than {EGO_LIMIT_M:g} m from the ego origin")
    return tuple(size), tuple(center)


def _rig_camera(name: Any, c: Any, at: str) -> Camera:
    """One camera of ``rig.json`` (``at`` names it), its intrinsics, image size and pose checked: a finite,
    invertible 3x3 intrinsic and an image of 1 to :data:`IMAGE_SIDE_LIMIT` pixels a side."""
    if not isinstance(c, dict) or "intrinsic" not in c or "image_size" not in c:
        raise ValueError(f"{at}: needs intrinsic (3x3) and image_size [H, W] and a pose, got {_short(c)}")
    rows = c["intrinsic"]
    if not isinstance(rows, list) or len(rows) != 3:
        raise ValueError(f"{at}: intrinsic must be a 3x3 list of numbers, got {_short(rows)}")
    K = np.array([_numbers(r, 3, f"{at}: intrinsic") for r in rows], np.float64)
    if singular_intrinsic(K):
        raise ValueError(f"{at}: intrinsic {K.tolist()} is singular (no pixel ray can be made of it)")
    hw = c["image_size"]
    if not isinstance(hw, list) or len(hw) != 2:
        raise ValueError(f"{at}: image_size must be [H, W], got {_short(hw)}")
    h, w = (_integer(v, f"{at}: image_size") for v in hw)
    if not (1 <= h <= IMAGE_SIDE_LIMIT and 1 <= w <= IMAGE_SIDE_LIMIT):
        raise ValueError(f"{at}: image_size {[h, w]}: each side must be 1 to {IMAGE_SIDE_LIMIT} pixels")
    return Camera(str(name), K, _pose(c, "extrinsic", at), (h, w))


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
    rows_of: dict[str, int] = {}
    for i, r in enumerate(rows):
        row = _sweep_row(r, f"{sf}: sweeps[{i}]", meta, rows_of, sweeps[-1].timestamp if sweeps else None)
        rows_of[row["token"]] = i
        sweep_images(r, f"{sf}: sweeps[{i}] (token {row['token']!r})", meta, sdir)
        pf = _under(sdir, r["points"], f"{sf}: sweeps[{i}] (token {row['token']!r}): points")
        pts, labels = _sweep_points(pf, load_points, n_cls)
        sweeps.append(
            Sweep(
                **row,
                points=np.ascontiguousarray(pts[:, :3], dtype=np.float32),
                labels=labels,
                intensity=np.ascontiguousarray(pts[:, 3], dtype=np.float32) if pts.shape[1] > 3 else None,
                source=str(pf),
            )
        )
    bf = sdir / "boxes.json"
    if bf.is_file():
        _attach_boxes(sweeps, read_json(bf), bf, n_cls)
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


def sweep_images(r: dict[str, Any], at: str, meta: dict[str, Any], sdir: Path) -> dict[str, str]:
    """A ``sweeps.json`` row's optional ``"images": {camera: file}`` (``at`` names the row) checked: an object
    whose keys are cameras of ``rig.json`` and whose values name files under the scene's folder ``sdir``
    that are there (one stat each). Returns ``{camera: name relative to sdir}`` (``{}`` without images)."""
    images = r.get("images")
    if images is None:
        return {}
    if not isinstance(images, dict):
        raise ValueError(f"{at}: images {_short(images)} is not an object {{camera: image file}}")
    out = {}
    for cam, rel in images.items():
        if cam not in meta["cameras"]:
            known = ", ".join(sorted(meta["cameras"])) or "none"
            raise ValueError(f"{at}: images: {cam!r} is not a camera of rig.json (its cameras: {known})")
        f = _under(sdir, rel, f"{at}: images.{cam}")
        if not f.is_file():
            raise ValueError(f"{at}: images.{cam}: {f} is missing (no such file)")
        out[cam] = Path(rel).as_posix()
    return out


def scene_images(meta: dict[str, Any], scene: str) -> dict[str, dict[str, str]]:
    """The camera images a scene's ``sweeps.json`` names, ``{sweep token: {camera: file relative to the
    scene's folder}}`` (sweeps without images left out), each checked as :func:`read_scene` checks it (a
    row that is not an object, or has no token, is left to :func:`read_scene` to refuse)."""
    root: Path = meta["folder"]
    sdir = _under(root, scene, f"{root / 'rig.json'}: scenes")
    sf = sdir / "sweeps.json"
    table = read_json(sf)
    rows = table.get("sweeps") if isinstance(table, dict) else None
    out: dict[str, dict[str, str]] = {}
    for i, r in enumerate(rows if isinstance(rows, list) else []):
        if isinstance(r, dict) and isinstance(r.get("token"), str) and r.get("images") is not None:
            got = sweep_images(r, f"{sf}: sweeps[{i}] (token {r['token']!r})", meta, sdir)
            if got:
                out[r["token"]] = got
    return out


def _sweep_row(r: Any, at: str, meta: dict[str, Any], rows_of: dict[str, int], last_t: int | None) -> dict[str, Any]:
    """One row of ``sweeps.json`` (``at`` names it) checked: an object with a token no earlier row
    (``rows_of``) has, a LiDAR of the rig, an integer timestamp in range and after ``last_t``, a boolean
    ``keyframe`` and a pose. Returns the :class:`Sweep` fields ``token, timestamp, sensor,
    T_global_from_ego, keyframe``."""
    if not isinstance(r, dict):
        raise ValueError(f"{at}: not an object")
    _known_keys(r, SWEEP_KEYS, at)
    for key in ("token", "timestamp", "sensor", "points"):
        if key not in r:
            raise ValueError(f"{at}: {key} missing")
    token = _token(r["token"], at)
    if token in rows_of:
        raise ValueError(
            f"{at}: token {token!r} is also sweeps[{rows_of[token]}]'s (each sweep needs its own: a keyframe's "
            "label is named by it)"
        )
    at = f"{at} (token {token!r})"
    if "ego_pose" not in r or r["ego_pose"] is None:
        raise ValueError(f"{at}: ego_pose missing (a sweep without a pose)")
    if not isinstance(r["sensor"], str):
        raise ValueError(f"{at}: sensor {_short(r['sensor'])} is not a LiDAR name (text, one of rig.json's lidars)")
    if r["sensor"] not in meta["lidars"]:
        raise ValueError(f"{at}: sensor {r['sensor']!r} is not a LiDAR of rig.json ({sorted(meta['lidars'])})")
    ts = _integer(r["timestamp"], f"{at}: timestamp")
    if not 0 <= ts <= TIMESTAMP_LIMIT_US:
        raise ValueError(
            f"{at}: timestamp {ts} is not microseconds between 1970 and 2200 (0..{TIMESTAMP_LIMIT_US}): corrupt"
        )
    if last_t is not None and ts <= last_t:
        raise ValueError(f"{at}: timestamp {ts} is not after the previous sweep's {last_t} (out of order)")
    keyframe = r.get("keyframe", False)
    if not isinstance(keyframe, bool):
        raise ValueError(f"{at}: keyframe {_short(keyframe)} is not true or false (a JSON boolean)")
    pose = _pose(r["ego_pose"], "ego_pose", f"{at}: ego_pose")
    return {"token": token, "timestamp": ts, "sensor": r["sensor"], "T_global_from_ego": pose, "keyframe": keyframe}


def _sweep_points(pf: Path, load_points: bool, n_cls: int) -> tuple[np.ndarray, np.ndarray | None]:
    """A sweep's points file ``pf`` read and checked: ``points (N, 3+)`` floats and optional ``labels (N,)``
    integer ids of the rig's ``n_cls`` classes (int64). ``load_points`` False: no points, nothing read."""
    arrays = load_npz(pf) if load_points else {"points": np.zeros((0, 3), np.float32)}
    if "points" not in arrays:
        raise ValueError(f"{pf}: no 'points' array")
    pts = arrays["points"]
    if pts.ndim != 2 or pts.shape[1] < 3 or not np.issubdtype(pts.dtype, np.floating):
        raise ValueError(f"{pf}: points must be (N, 3+) floats, got {pts.dtype} {tuple(pts.shape)}")
    labels = arrays.get("labels")
    if labels is None:
        return pts, None
    if not np.issubdtype(labels.dtype, np.integer) or labels.shape != (pts.shape[0],):
        raise ValueError(
            f"{pf}: labels must be (N,) integers for {pts.shape[0]} points, got {labels.dtype} {labels.shape}"
        )
    outside = ids_outside(labels, n_cls)
    if outside:
        raise ValueError(f"{pf}: labels: {outside} rig.json's classes (0..{n_cls - 1})")
    return pts, labels.astype(np.int64)


def _attach_boxes(sweeps: list[Sweep], table: Any, bf: Path, n_cls: int = 0) -> None:
    """The boxes of ``boxes.json`` (``table``, read from ``bf``) put on their sweeps, each row checked and
    named when refused: its fields' types, a positive size, a class of the table (``n_cls`` classes; 0:
    any), a track that keeps its class and comes at most once in a sweep."""
    rows = table.get("boxes") if isinstance(table, dict) else None
    if not isinstance(rows, list):
        raise ValueError(f"{bf}: boxes must be a list")
    by_sweep: dict[str, list[tuple[int, int, list[float], list[float], float]]] = {s.token: [] for s in sweeps}
    seen: dict[tuple[str, int], int] = {}
    track_class: dict[int, tuple[int, int]] = {}
    for i, b in enumerate(rows):
        at = f"{bf}: boxes[{i}]"
        if not isinstance(b, dict):
            raise ValueError(f"{at}: {_short(b)} is not an object (sweep, track, class, center, size, yaw)")
        _known_keys(b, BOX_KEYS, at)
        missing = [k for k in BOX_KEYS if k not in b]
        if missing:
            raise ValueError(f"{at}: {', '.join(missing)} missing (needs sweep, track, class, center, size, yaw)")
        tok = b["sweep"]
        if not isinstance(tok, str) or tok not in by_sweep:
            raise ValueError(f"{at}: sweep {_short(tok)} is not a sweep token of sweeps.json")
        track = _integer(b["track"], f"{at}: track")
        cls = _integer(b["class"], f"{at}: class")
        c = _numbers(b["center"], 3, f"{at}: center")
        sz = _numbers(b["size"], 3, f"{at}: size")
        yaw = _number(b["yaw"], f"{at}: yaw")
        if min(sz) <= 0:
            raise ValueError(f"{at}: track {track} has size {sz} (must be positive)")
        if n_cls and not 0 <= cls < n_cls:
            raise ValueError(f"{at}: track {track} has class {cls}, outside rig.json's classes (0..{n_cls - 1})")
        first = track_class.setdefault(track, (cls, i))
        if first[0] != cls:
            raise ValueError(f"{at}: track {track} changes class from {first[0]} (boxes[{first[1]}]) to {cls}")
        if (tok, track) in seen:
            raise ValueError(
                f"{at}: track {track} comes twice in sweep {tok!r} (also boxes[{seen[tok, track]}]): one box a track "
                "a sweep"
            )
        seen[tok, track] = i
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


def camera_folder_names(cameras: list[str]) -> dict[str, str]:
    """A folder name for each camera's images (``images/<name>/``): the camera's name with every character
    other than letters, digits, ``_``, ``-`` and ``.`` made ``_`` (a ROS topic ``/cam/front`` -> ``_cam_front``),
    numbered where two would meet."""
    out: dict[str, str] = {}
    for cam in cameras:
        base = re.sub(r"[^A-Za-z0-9_.-]", "_", cam).strip(".") or "camera"
        name, k = base, 2
        while name in out.values():
            name, k = f"{base}_{k}", k + 1
        out[cam] = name
    return out


def place_file(src: Path, dst: Path) -> str:
    """``src`` at ``dst`` as the same bytes: a hard link where the file system allows one, else a copy.
    Returns ``"linked"`` or ``"copied"``."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
        return "linked"
    except OSError:  # another file system, or one without hard links
        shutil.copyfile(src, dst)
        return "copied"


def write_scene(
    folder: str | os.PathLike,
    rec: SceneRecord,
    instance: dict[str, np.ndarray] | None = None,
    images: dict[str, dict[str, Path]] | None = None,
) -> Path:
    """Write one scene's ``sweeps.json``, ``lidar/*.npz`` and (when it has boxes) ``boxes.json``.
    ``instance``: optional per-sweep ``(N,)`` int32 track ids of the points, by sweep token.
    ``images``: optional camera image files by sweep token and camera (cameras of ``rec``), each put at
    ``images/<camera>/<token><suffix>`` in the scene's folder (:func:`place_file`: hard-linked or copied)
    and named in its row's ``images``."""
    sdir = Path(folder) / rec.name
    rows = []
    boxes = []
    folders = camera_folder_names(list(rec.cameras))
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
        shots = {}
        for cam, src in sorted((images or {}).get(s.token, {}).items()):
            if cam not in folders:
                raise ValueError(f"scene {rec.name}: sweep {s.token}: an image of {cam!r}, not a camera of the scene")
            shot = f"images/{folders[cam]}/{s.token}{Path(src).suffix}"
            place_file(Path(src), sdir / shot)
            shots[cam] = shot
        if shots:
            rows[-1]["images"] = shots
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
