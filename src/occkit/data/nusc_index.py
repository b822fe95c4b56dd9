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

from occkit.data.info_schema import CAMERAS, IndexFrame
from occkit.fileio import info_timestamp, info_where, read_info_list, write_json_atomic
from occkit.schema import validate

__all__ = ["CAMERAS", "annotations_from_infos", "frame_entry", "main"]


def _from_samples(path: str) -> str:
    """``.../samples/X/Y`` -> ``samples/X/Y`` (the part a dataset folder holding ``samples/`` reads; the schema
    holds that there is one: :data:`occkit.data.info_schema.UnderSamples`)."""
    p = path.replace("\\", "/")
    return p[p.find("samples/") :]


def frame_entry(info: dict[str, Any], where: str) -> dict[str, Any]:
    """One frame of ``scene_infos`` from one info-file frame (see the module docstring), its fields checked
    (:class:`occkit.data.info_schema.IndexFrame`): one line naming the frame and the field."""
    f = validate(IndexFrame, info, where)
    cams = {
        cam: {
            "img_path": _from_samples(c.data_path),
            "intrinsic": c.cam_intrinsic,
            "extrinsic": {"translation": c.sensor2ego_translation, "rotation": c.sensor2ego_rotation},
            "ego_pose": {"translation": c.ego2global_translation, "rotation": c.ego2global_rotation},
        }
        for cam, c in ((cam, getattr(f.cams, cam)) for cam in CAMERAS)
    }
    lidar = {
        "extrinsic": {"translation": f.lidar2ego_translation, "rotation": f.lidar2ego_rotation},
        "filename": _from_samples(f.lidar_path),
        **({"token": f.lidar_token} if f.lidar_token is not None else {}),
    }
    return {
        "timestamp": info_timestamp(info, where, 0),
        "camera_sensor": cams,
        "ego_pose": {"translation": f.ego2global_translation, "rotation": f.ego2global_rotation},
        "lidar_sensor": lidar,
        "scene_token": f.scene_token,
        "prev": f.prev or "",
        "next": f.next or "",
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
            if scene not in scenes:
                scenes.append(scene)
            scene_infos.setdefault(scene, {})[str(info["token"])] = entry
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
