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

Each table is read against its schema (:mod:`occkit.data.rig_schema`: types, keys, bounds, one line naming
the file, row and field when broken); what the tables mean together is
:func:`~occkit.data.scene_record.check_record`'s, as for every reader's record.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from occkit.data.rig_schema import (  # noqa: F401  (the limits, as before, importable from here)
    EGO_LIMIT_M,
    IMAGE_SIDE_LIMIT,
    TIMESTAMP_LIMIT_US,
    BoxesTable,
    Ego,
    RigMeta,
    SweepRow,
    SweepsTable,
)
from occkit.data.scene_record import Boxes, Camera, SceneRecord, Sweep, check_record
from occkit.fileio import load_npz, read_json, save_npz_atomic, write_json_atomic
from occkit.geometry.transforms import pose_from_transform
from occkit.schema import validate

RIG_FORMAT = "occkit-rig"
RIG_VERSION = 1


def is_rig(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a ``rig.json``."""
    return (Path(folder) / "rig.json").is_file()


def read_rig_meta(folder: str | os.PathLike) -> dict[str, Any]:
    """``rig.json`` read against its schema (:class:`~occkit.data.rig_schema.RigMeta`): classes, ego box, LiDARs
    and cameras as matrices. Returns ``{"classes", "ego_size", "ego_center", "lidars", "cameras", "scenes",
    "splits", "folder"}`` (``splits``: ``{"train": [...], "val": [...]}`` as ``rig.json`` gives them; ``{}``
    without)."""
    root = Path(folder)
    f = root / "rig.json"
    meta = validate(RigMeta, read_json(f), str(f))
    ego = meta.ego or Ego()
    cameras = {
        name: Camera(name, np.array(c.intrinsic, np.float64), c.matrix(), tuple(c.image_size))
        for name, c in (meta.cameras or {}).items()
    }
    given = meta.splits.model_dump(exclude_none=True) if meta.splits else {}
    return {
        "classes": tuple(meta.classes),
        "ego_size": tuple(ego.size),
        "ego_center": tuple(ego.center),
        "lidars": {name: p.matrix() for name, p in meta.lidars.items()},
        "cameras": cameras,
        "scenes": list(meta.scenes),
        "splits": {name: list(dict.fromkeys(listed)) for name, listed in given.items()},
        "folder": root,
    }


def _sweeps_table(meta: dict[str, Any], scene: str) -> tuple[Path, Path, SweepsTable]:
    """A scene's folder, its ``sweeps.json`` and the table read against its schema (a refused row named by
    its index and, where it has one, its token)."""
    sdir = Path(meta["folder"]) / scene
    sf = sdir / "sweeps.json"
    raw = read_json(sf)
    rows = raw.get("sweeps") if isinstance(raw, dict) else None

    def token(i: int) -> str:
        r = rows[i] if isinstance(rows, list) and i < len(rows) else None
        tok = r.get("token") if isinstance(r, dict) else None
        return f" (token {tok!r})" if isinstance(tok, str) else ""

    return sdir, sf, validate(SweepsTable, raw, str(sf), token)


def read_scene(meta: dict[str, Any], scene: str, load_points: bool = True) -> SceneRecord:
    """One scene of a rig folder as a checked :class:`SceneRecord`: its tables read against their schemas
    (:mod:`occkit.data.rig_schema`), what they mean together checked by :func:`check_record`.
    ``load_points`` False: the tables alone (poses, timestamps, sensors, file names, boxes) are
    read and checked, each sweep's points left empty (a cheap check of every scene before work)."""
    sdir, sf, table = _sweeps_table(meta, scene)
    sweeps: list[Sweep] = []
    for i, r in enumerate(table.sweeps):
        at = f"{sf}: sweeps[{i}] (token {r.token!r})"
        sweep_images(r, at, meta, sdir)
        pf = sdir / r.points
        pts, labels = _sweep_points(pf, load_points)
        sweeps.append(
            Sweep(
                token=r.token,
                timestamp=r.timestamp,
                sensor=r.sensor,
                T_global_from_ego=r.ego_pose.matrix(),
                keyframe=r.keyframe,
                points=np.ascontiguousarray(pts[:, :3], dtype=np.float32),
                labels=labels,
                intensity=np.ascontiguousarray(pts[:, 3], dtype=np.float32) if pts.shape[1] > 3 else None,
                source=str(pf),
                row=at,
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


def sweep_images(r: SweepRow, at: str, meta: dict[str, Any], sdir: Path) -> dict[str, str]:
    """A ``sweeps.json`` row's optional ``"images": {camera: file}`` (``at`` names the row) checked against
    ``rig.json`` and the disk: each a camera of ``rig.json``, each file there (one stat each). Returns
    ``{camera: name relative to sdir}`` (``{}`` without images)."""
    out = {}
    for cam, rel in (r.images or {}).items():
        if cam not in meta["cameras"]:
            known = ", ".join(sorted(meta["cameras"])) or "none"
            raise ValueError(f"{at}: images: {cam!r} is not a camera of rig.json (its cameras: {known})")
        f = sdir / rel
        if not f.is_file():
            raise ValueError(f"{at}: images.{cam}: {f} is missing (no such file)")
        out[cam] = Path(rel).as_posix()
    return out


def scene_images(meta: dict[str, Any], scene: str) -> dict[str, dict[str, str]]:
    """The camera images a scene's ``sweeps.json`` names, ``{sweep token: {camera: file relative to the
    scene's folder}}`` (sweeps without images left out), the table read and each image checked as
    :func:`read_scene` reads and checks them."""
    sdir, sf, table = _sweeps_table(meta, scene)
    out: dict[str, dict[str, str]] = {}
    for i, r in enumerate(table.sweeps):
        got = sweep_images(r, f"{sf}: sweeps[{i}] (token {r.token!r})", meta, sdir)
        if got:
            out[r.token] = got
    return out


def _sweep_points(pf: Path, load_points: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """A sweep's points file ``pf`` read: ``points (N, 3+)`` floats and optional ``labels`` integer ids (int64;
    their shape and class ids are :func:`check_record`'s). ``load_points`` False: no points, nothing read."""
    arrays = load_npz(pf) if load_points else {"points": np.zeros((0, 3), np.float32)}
    if "points" not in arrays:
        raise ValueError(f"{pf}: no 'points' array")
    pts = arrays["points"]
    if pts.ndim != 2 or pts.shape[1] < 3 or not np.issubdtype(pts.dtype, np.floating):
        raise ValueError(f"{pf}: points must be (N, 3+) floats, got {pts.dtype} {tuple(pts.shape)}")
    labels = arrays.get("labels")
    if labels is None:
        return pts, None
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{pf}: labels must be integer class ids, got {labels.dtype}")
    return pts, labels.astype(np.int64)


def _attach_boxes(sweeps: list[Sweep], table: Any, bf: Path) -> None:
    """The boxes of ``boxes.json`` (``table``, read from ``bf``) read against its schema and put on their
    sweeps (a row naming no sweep refused); what they mean (sizes, classes, tracks) is :func:`check_record`'s,
    which names ``bf`` and the sweep."""
    rows = validate(BoxesTable, table, str(bf)).boxes
    by_sweep: dict[str, list[Any]] = {s.token: [] for s in sweeps}
    for i, b in enumerate(rows):
        if b.sweep not in by_sweep:
            raise ValueError(f"{bf}: boxes[{i}]: sweep {b.sweep!r} is not a sweep token of sweeps.json")
        by_sweep[b.sweep].append(b)
    for s in sweeps:
        got = by_sweep[s.token]
        s.boxes_source = str(bf)
        if not got:
            s.boxes = Boxes.empty()
            continue
        s.boxes = Boxes(
            track=np.array([b.track for b in got], np.int64),
            cls=np.array([b.cls for b in got], np.int64),
            center=np.array([b.center for b in got], np.float64),
            size=np.array([b.size for b in got], np.float64),
            yaw=np.array([b.yaw for b in got], np.float64),
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
