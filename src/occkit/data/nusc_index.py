"""An ``annotations.json`` for the LiDAR-frame nuScenes layouts (SurroundOcc, OpenOccupancy) made
from the info files their repositories ship (``nuscenes_infos_{train,val}.pkl`` of SurroundOcc,
``nuscenes_occ_infos_{train,val}.pkl`` of OpenOccupancy), which the user names explicitly.

The info files are read by :func:`occkit.fileio.read_info_list` (``.json``, or a ``.pkl`` through a
restricted unpickler: plain containers and numpy arrays only). Each frame needs ``token``,
``timestamp``, ``scene_token``, ``lidar_path``, ``lidar_token`` (OpenOccupancy's; SurroundOcc's
converter writes it too), ``lidar2ego_{translation,rotation}``, ``ego2global_{translation,rotation}``,
``prev``, ``next`` and ``cams[CAM]`` with ``data_path``, ``cam_intrinsic``,
``sensor2ego_{translation,rotation}`` and ``ego2global_{translation,rotation}``. The scenes are
named by their tokens; image paths and the LiDAR file name are kept from ``samples/`` on (the
dataset folder then holds, or links to, nuScenes' ``samples/``)::

    python -m occkit.data.nusc_index --train nuscenes_infos_train.pkl --val nuscenes_infos_val.pkl \\
        --out ROOT/annotations.json
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Any

from occkit.fileio import info_text, info_timestamp, info_where, read_info_list, write_json_atomic

CAMERAS = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT")


def _from_samples(path: str, where: str) -> str:
    """``.../samples/X/Y`` -> ``samples/X/Y`` (the part a dataset folder holding ``samples/`` reads)."""
    p = str(path).replace("\\", "/")
    i = p.find("samples/")
    if i < 0:
        raise ValueError(f"{where}: path {path!r} has no 'samples/' part")
    return p[i:]


def _pose(info: dict[str, Any], prefix: str, where: str) -> dict[str, list[float]]:
    """``{translation, rotation}`` of ``info[prefix_translation]`` / ``info[prefix_rotation]``:
    three and four finite numbers, a rotation that is not zero, a place not farther than
    :data:`occkit.geometry.transforms.POSE_LIMITS` from its origin (as ``checked_pose``, in plain
    numbers: an info file holds some 14 poses a frame); else one line naming the frame and field."""
    from occkit.geometry.transforms import POSE_LIMITS, value_on_one_line

    t_key, q_key = f"{prefix}_translation", f"{prefix}_rotation"
    for key in (t_key, q_key):
        if key not in info:
            raise ValueError(f"{where}: no '{key}'")
    raw_t, raw_q = info[t_key], info[q_key]
    at = f"{where}: {prefix}"
    try:
        t, q = _numbers(raw_t), _numbers(raw_q)  # plain floats: a numpy array per pose cost more than the rest
        if len(t) != 3 or len(q) != 4:
            raise ValueError(f"expected translation (3,) and rotation (4,), got ({len(t)},) and ({len(q)},)")
        if not any(q):
            raise ValueError("zero quaternion has no rotation")
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"{at}: not a pose (translation {value_on_one_line(raw_t)}, rotation {value_on_one_line(raw_q)}: {e})"
        ) from None
    if not all(math.isfinite(v) for v in (*t, *q)):
        raise ValueError(f"{at}: not finite (translation {t}, rotation {q})")
    limit = POSE_LIMITS["ego_pose" if prefix == "ego2global" else "extrinsic"]
    if math.hypot(*t) > limit:
        raise ValueError(f"{at}: translation {t} lies more than {limit:g} m from its origin: corrupt")
    return {"translation": t, "rotation": q}


def _numbers(v: Any) -> list[float]:
    """``v`` (a list, tuple or 1-D array) as floats; a ``TypeError`` or ``ValueError`` for text, a
    nesting, or one value."""
    if isinstance(v, (str, bytes)) or not hasattr(v, "__len__"):
        raise TypeError(f"{type(v).__name__} is not a list of numbers")
    return [float(x) for x in v]


def _intrinsic(c: dict[str, Any], where: str) -> list[list[float]]:
    from occkit.geometry.transforms import singular_intrinsic, value_on_one_line

    raw = c.get("cam_intrinsic")
    try:
        K = [_numbers(row) for row in _rows(raw)]
        if len(K) != 3 or any(len(row) != 3 for row in K):
            raise ValueError("not 3 rows of 3")
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: 'cam_intrinsic' is {value_on_one_line(raw)}, not a 3x3 matrix ({e})") from None
    if not all(math.isfinite(v) for row in K for v in row):
        raise ValueError(f"{where}: 'cam_intrinsic' is not finite ({K})")
    if singular_intrinsic(K):
        raise ValueError(f"{where}: 'cam_intrinsic' is singular ({K}): not a camera's intrinsic matrix")
    return K


def _rows(v: Any) -> Any:
    if v is None or isinstance(v, (str, bytes)) or not hasattr(v, "__len__"):
        raise TypeError(f"{type(v).__name__} is not a list of rows")
    return v


def frame_entry(info: dict[str, Any], where: str) -> dict[str, Any]:
    """One frame of ``scene_infos`` from one info-file frame (see the module docstring). A field that
    is missing or of the wrong type (a path or token that is not text, a pose or matrix that is not
    finite numbers of its shape, ``cams`` not a mapping) is refused in one line naming it."""
    for key in ("token", "timestamp", "scene_token", "lidar_path", "cams"):
        if key not in info:
            raise ValueError(f"{where}: the frame has no '{key}'")
    if not isinstance(info["cams"], dict):
        raise ValueError(f"{where}: 'cams' is {type(info['cams']).__name__}, not a mapping of camera name to fields")
    cams = {}
    for cam in CAMERAS:
        c = info["cams"].get(cam)
        if not isinstance(c, dict):
            raise ValueError(f"{where}: no camera {cam} in 'cams'")
        at = f"{where}, {cam}"
        cams[cam] = {
            "img_path": _from_samples(info_text(c, "data_path", at), at),
            "intrinsic": _intrinsic(c, at),
            "extrinsic": _pose(c, "sensor2ego", at),
            "ego_pose": _pose(c, "ego2global", at),
        }
    lidar = {
        "extrinsic": _pose(info, "lidar2ego", where),
        "filename": _from_samples(info_text(info, "lidar_path", where), where),
    }
    if info.get("lidar_token") is not None:
        lidar["token"] = info_text(info, "lidar_token", where)
    links = {k: "" if info.get(k) is None else info_text(info, k, where, default="") for k in ("prev", "next")}
    return {
        "timestamp": info_timestamp(info, where, 0),
        "camera_sensor": cams,
        "ego_pose": _pose(info, "ego2global", where),
        "lidar_sensor": lidar,
        "scene_token": info_text(info, "scene_token", where),
        **links,
    }


def annotations_from_infos(splits: dict[str, str | os.PathLike]) -> dict[str, Any]:
    """``annotations.json``'s content from info files by split (``{"train": path, "val": path}``)."""
    from occkit.data.occ3d import occ3d_index

    scene_infos: dict[str, dict[str, Any]] = {}
    order: dict[str, list[str]] = {}
    first: dict[str, str] = {}  # token -> the file that listed it
    for split, path in splits.items():
        scenes: list[str] = []
        for k, info in enumerate(read_info_list(path, what=f"{split} infos")):  # mappings, tokens text and once
            entry = frame_entry(info, info_where(path, k, info))
            if info["token"] in first:  # one frame in both splits: the later one took its place unsaid
                raise ValueError(f"{info_where(path, k, info)}: also listed in {first[info['token']]} (another split)")
            first[info["token"]] = str(path)
            scene = entry["scene_token"]
            if scene not in scene_infos:
                scene_infos[scene] = {}
            if scene not in scenes:
                scenes.append(scene)
            scene_infos[scene][str(info["token"])] = entry
        order[split] = scenes
    return occ3d_index(scene_infos, order, always=())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m occkit.data.nusc_index", description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", help="the training split's info file (.pkl or .json)")
    ap.add_argument("--val", help="the validation split's info file")
    ap.add_argument("--out", required=True, help="the annotations.json to write (refused if it exists)")
    args = ap.parse_args(argv)
    splits = {k: v for k, v in (("train", args.train), ("val", args.val)) if v}
    try:
        if not splits:
            raise ValueError("give --train and/or --val")
        if Path(args.out).exists():
            raise FileExistsError(f"--out {args.out}: exists; occkit does not write over it")
        ann = annotations_from_infos(splits)
        write_json_atomic(args.out, ann)
    except (OSError, ValueError) as e:
        print(f"{ap.prog}: error: {e}", file=sys.stderr)
        return 1
    n = sum(len(v) for v in ann["scene_infos"].values())
    print(f"wrote {args.out}: {len(ann['scene_infos'])} scenes, {n} frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
