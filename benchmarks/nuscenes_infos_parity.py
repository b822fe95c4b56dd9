"""``occkit prepare nuscenes`` against mmdetection3d's released nuScenes converter, run unchanged.

The converter (``tools/dataset_converters/nuscenes_converter.py`` of open-mmlab/mmdetection3d) is
imported from the path given, with stand-ins for the parts of mmcv / mmengine / mmdet3d that its
import names and ``_fill_trainval_infos`` calls (``mmengine.track_iter_progress``: the iterable
itself; ``mmengine.check_file_exist``: raises when the file is missing, as mmengine's;
``NuScenesNameMapping``: empty, the box names are not compared); nuscenes-devkit, pyquaternion and
shapely are the real ones. Its ``_fill_trainval_infos(nusc, ..., max_sweeps)`` then runs on the same
tables as ``occkit prepare nuscenes``, and every field both write is compared frame by frame: the
LiDAR path, the poses, the timestamp, each sweep's and camera's path, poses, ``sensor2lidar_*`` and
the intrinsics. Prints the largest difference of each.

    git --git-dir=MIRROR show fe25f7a51:tools/dataset_converters/nuscenes_converter.py > /tmp/nuscenes_converter.py
    occkit prepare nuscenes --dataroot D --out I
    python benchmarks/nuscenes_infos_parity.py --converter /tmp/nuscenes_converter.py --dataroot D --infos I
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import types
from pathlib import Path

import numpy as np


def _stub(name: str, **attrs) -> None:
    mod = types.ModuleType(name)
    for k, v in attrs.items():
        setattr(mod, k, v)
    sys.modules[name] = mod


def _check_file_exist(path, msg_tmpl='file "{}" does not exist'):
    if not os.path.isfile(path):
        raise FileNotFoundError(msg_tmpl.format(path))


def load_converter(path: Path):
    _stub("mmcv")
    _stub("mmengine", track_iter_progress=lambda xs: xs, check_file_exist=_check_file_exist)
    _stub("mmdet3d")
    _stub("mmdet3d.datasets")
    _stub("mmdet3d.datasets.convert_utils", NuScenesNameMapping={})
    _stub("mmdet3d.structures", points_cam2img=None)
    spec = importlib.util.spec_from_file_location("released_nuscenes_converter", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _diff(a, b) -> float:
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())


def _same_path(released: str, ours: str, root: Path) -> bool:
    return os.path.normpath(os.path.abspath(released)) == os.path.normpath(str(root / ours))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--converter", type=Path, required=True, help="the released nuscenes_converter.py")
    ap.add_argument("--dataroot", type=Path, required=True)
    ap.add_argument("--version", default=None)
    ap.add_argument("--infos", type=Path, required=True, help="occkit prepare nuscenes's --out (same --sweeps)")
    args = ap.parse_args()
    conv = load_converter(args.converter)
    doc = json.loads((args.infos / "infos.json").read_text())
    version = args.version or doc["nuscenes_version"]
    from nuscenes.nuscenes import NuScenes

    nusc = NuScenes(version=version, dataroot=str(args.dataroot.absolute()), verbose=False)
    cwd = os.getcwd()
    os.chdir(args.dataroot)  # the converter writes paths relative to the working folder when under it
    try:
        released, _ = conv._fill_trainval_infos(
            nusc, {s["token"] for s in nusc.scene}, set(), test=False, max_sweeps=doc["max_sweeps"]
        )
    finally:
        os.chdir(cwd)
    root = Path(doc["dataroot"])
    ours = {f["token"]: f for f in doc["infos"]}
    worst = {k: 0.0 for k in ("pose", "sensor2lidar_rotation", "sensor2lidar_translation", "cam_intrinsic")}
    mismatches = []
    n_sweeps = n_cams = 0

    def fail(what: str) -> None:
        mismatches.append(what)

    os.chdir(args.dataroot)
    try:
        if set(ours) != {r["token"] for r in released}:
            fail("the frames differ")
        for r in released:
            o = ours.get(r["token"])
            if o is None:
                continue
            if not _same_path(r["lidar_path"], o["lidar_path"], root):
                fail(f"{r['token']}: lidar_path {r['lidar_path']} vs {o['lidar_path']}")
            if r["timestamp"] != o["timestamp"]:
                fail(f"{r['token']}: timestamp")
            for k in ("lidar2ego_translation", "lidar2ego_rotation", "ego2global_translation", "ego2global_rotation"):
                worst["pose"] = max(worst["pose"], _diff(r[k], o[k]))
            if len(r["sweeps"]) != len(o["sweeps"]):
                fail(f"{r['token']}: {len(r['sweeps'])} sweeps vs {len(o['sweeps'])}")
            pairs = list(zip(r["sweeps"], o["sweeps"])) + [(r["cams"][c], o["cams"].get(c)) for c in r["cams"]]
            for i, (a, b) in enumerate(pairs):
                if b is None:
                    fail(f"{r['token']}: camera missing")
                    continue
                is_cam = i >= len(r["sweeps"])
                n_cams += is_cam
                n_sweeps += not is_cam
                if not _same_path(a["data_path"], b["data_path"], root) or a["timestamp"] != b["timestamp"]:
                    fail(f"{r['token']}: {a['data_path']} vs {b['data_path']}")
                if a["sample_data_token"] != b["sample_data_token"]:
                    fail(f"{r['token']}: sample_data_token")
                for k in (
                    "sensor2ego_translation",
                    "sensor2ego_rotation",
                    "ego2global_translation",
                    "ego2global_rotation",
                ):
                    worst["pose"] = max(worst["pose"], _diff(a[k], b[k]))
                for k in ("sensor2lidar_rotation", "sensor2lidar_translation"):
                    worst[k] = max(worst[k], _diff(a[k], b[k]))
                if is_cam:
                    worst["cam_intrinsic"] = max(worst["cam_intrinsic"], _diff(a["cam_intrinsic"], b["cam_intrinsic"]))
    finally:
        os.chdir(cwd)
    print(
        json.dumps(
            {
                "frames": len(released),
                "sweeps_compared": n_sweeps,
                "cameras_compared": n_cams,
                "largest_difference": worst,
                "mismatches": mismatches[:10],
                "n_mismatches": len(mismatches),
            },
            indent=1,
        )
    )
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
