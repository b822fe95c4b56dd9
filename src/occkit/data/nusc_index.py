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
import os
import sys
from pathlib import Path
from typing import Any

from occkit.fileio import read_info_list, write_json_atomic

CAMERAS = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT")


def _from_samples(path: str, where: str) -> str:
    """``.../samples/X/Y`` -> ``samples/X/Y`` (the part a dataset folder holding ``samples/`` reads)."""
    p = str(path).replace("\\", "/")
    i = p.find("samples/")
    if i < 0:
        raise ValueError(f"{where}: path {path!r} has no 'samples/' part")
    return p[i:]


def _pose(info: dict[str, Any], prefix: str, where: str) -> dict[str, list[float]]:
    try:
        t = [float(v) for v in info[f"{prefix}_translation"]]
        q = [float(v) for v in info[f"{prefix}_rotation"]]
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{where}: no usable '{prefix}_translation' / '{prefix}_rotation' ({e})") from e
    if len(t) != 3 or len(q) != 4:
        raise ValueError(f"{where}: '{prefix}_translation' needs 3 values and '{prefix}_rotation' 4 (w, x, y, z)")
    return {"translation": t, "rotation": q}


def frame_entry(info: dict[str, Any], where: str) -> dict[str, Any]:
    """One frame of ``scene_infos`` from one info-file frame (see the module docstring)."""
    for key in ("token", "timestamp", "scene_token", "lidar_path", "cams"):
        if key not in info:
            raise ValueError(f"{where}: the frame has no '{key}'")
    cams = {}
    for cam in CAMERAS:
        c = info["cams"].get(cam)
        if not isinstance(c, dict):
            raise ValueError(f"{where}: no camera {cam} in 'cams'")
        try:
            K = [[float(v) for v in row] for row in c["cam_intrinsic"]]
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{where}, {cam}: no usable 'cam_intrinsic' ({e})") from e
        cams[cam] = {
            "img_path": _from_samples(c.get("data_path", ""), f"{where}, {cam}"),
            "intrinsic": K,
            "extrinsic": _pose(c, "sensor2ego", f"{where}, {cam}"),
            "ego_pose": _pose(c, "ego2global", f"{where}, {cam}"),
        }
    lidar = {
        "extrinsic": _pose(info, "lidar2ego", where),
        "filename": _from_samples(info["lidar_path"], where),
    }
    if info.get("lidar_token"):
        lidar["token"] = str(info["lidar_token"])
    return {
        "timestamp": int(info["timestamp"]),
        "camera_sensor": cams,
        "ego_pose": _pose(info, "ego2global", where),
        "lidar_sensor": lidar,
        "scene_token": str(info["scene_token"]),
        "prev": str(info.get("prev") or ""),
        "next": str(info.get("next") or ""),
    }


def annotations_from_infos(splits: dict[str, str | os.PathLike]) -> dict[str, Any]:
    """``annotations.json``'s content from info files by split (``{"train": path, "val": path}``)."""
    from occkit.data.occ3d import occ3d_index

    scene_infos: dict[str, dict[str, Any]] = {}
    order: dict[str, list[str]] = {}
    for split, path in splits.items():
        scenes: list[str] = []
        for k, info in enumerate(read_info_list(path, what=f"{split} infos")):
            where = f"{path}: frame {k}"
            if not isinstance(info, dict):
                raise ValueError(f"{where}: not a mapping")
            entry = frame_entry(info, where)
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
