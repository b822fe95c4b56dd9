"""Speed, memory and output size of ``occkit prepare nuscenes`` on a nuScenes-shaped table set.

The real v1.0-trainval cannot be shipped; this writes tables with its structure at a chosen scale
(``--scenes`` scenes of ``--keyframes`` keyframes; per keyframe interval 10 LiDAR sample_data
(20 Hz, one of them the keyframe) and 6 per camera (12 Hz), each with its own ego pose; one
calibrated sensor per channel per scene; no radar, no annotations, no sensor files: prepare reads
none of them) and times, in this process, nuscenes-devkit's ``NuScenes(...)`` load alone, then the
whole ``occkit prepare nuscenes`` (load included), with its peak resident memory and the size of
``infos.json``. The real trainval has 850 scenes, 34,149 keyframes and about 2.6 million
sample_data rows (radar and camera sweeps included); scale what this prints accordingly.

    python benchmarks/bench_nuscenes_prepare.py --scenes 85 --out /tmp/nusc-bench [--json F]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from occkit.data.nuscenes_raw import NUSCENES_TABLES
from occkit.data.occ3d import NUSCENES_CAMERAS
from occkit.worlds.driving.nuscenes_export import nuscenes_token as tok

LIDAR_PER_KEYFRAME = 10  # 20 Hz LiDAR, 2 Hz keyframes
CAM_PER_KEYFRAME = 6  # 12 Hz cameras


def write_tables(root: Path, scenes: int, keyframes: int, version: str = "v1.0-trainval") -> dict[str, int]:
    """A nuScenes-shaped table set under ``root/version`` (and one blank map mask); row counts."""
    t: dict[str, list] = {name: [] for name in NUSCENES_TABLES}
    channels = [*NUSCENES_CAMERAS, "LIDAR_TOP"]
    for ch in channels:
        t["sensor"].append(
            {"token": tok("sensor", ch), "channel": ch, "modality": "lidar" if "LIDAR" in ch else "camera"}
        )
    t["visibility"] = [{"token": str(i), "level": f"v{i}", "description": ""} for i in range(1, 5)]
    rng = np.random.default_rng(0)
    ts0 = 1_500_000_000_000_000
    for s in range(scenes):
        scene, log = tok("scene", s), tok("log", s)
        t["log"].append(
            {"token": log, "logfile": f"log-{s}", "vehicle": "v", "date_captured": "2018-01-01", "location": "x"}
        )
        samples = [tok("sample", s, k) for k in range(keyframes)]
        t["scene"].append(
            {
                "token": scene,
                "log_token": log,
                "nbr_samples": keyframes,
                "first_sample_token": samples[0],
                "last_sample_token": samples[-1],
                "name": f"scene-{s:04d}",
                "description": "",
            }
        )
        calib = {}
        for ch in channels:
            calib[ch] = tok("calibrated_sensor", s, ch)
            yaw = rng.uniform(-math.pi, math.pi)
            t["calibrated_sensor"].append(
                {
                    "token": calib[ch],
                    "sensor_token": tok("sensor", ch),
                    "translation": rng.uniform(-2, 2, 3).tolist(),
                    "rotation": [math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)],
                    "camera_intrinsic": []
                    if ch == "LIDAR_TOP"
                    else [[1266.4, 0.0, 816.3], [0.0, 1266.4, 491.5], [0, 0, 1]],
                }
            )
        for k, sample in enumerate(samples):
            t["sample"].append(
                {
                    "token": sample,
                    "timestamp": ts0 + s * 10**9 + k * 500_000,
                    "prev": samples[k - 1] if k else "",
                    "next": samples[k + 1] if k + 1 < keyframes else "",
                    "scene_token": scene,
                }
            )
        for ch in channels:
            per = LIDAR_PER_KEYFRAME if ch == "LIDAR_TOP" else CAM_PER_KEYFRAME
            n = keyframes * per
            tokens = [tok("sample_data", s, ch, i) for i in range(n)]
            for i, sd in enumerate(tokens):
                k = min(i // per, keyframes - 1)
                ts = ts0 + s * 10**9 + i * (500_000 // per)
                yaw = 0.01 * i
                t["ego_pose"].append(
                    {
                        "token": sd,
                        "timestamp": ts,
                        "rotation": [math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)],
                        "translation": [0.4 * i, 0.01 * i, 0.0],
                    }
                )
                key = i % per == 0
                folder = "samples" if key else "sweeps"
                ext = "pcd.bin" if ch == "LIDAR_TOP" else "jpg"
                t["sample_data"].append(
                    {
                        "token": sd,
                        "sample_token": samples[k],
                        "ego_pose_token": sd,
                        "calibrated_sensor_token": calib[ch],
                        "timestamp": ts,
                        "fileformat": "pcd" if ch == "LIDAR_TOP" else "jpg",
                        "is_key_frame": key,
                        "height": 0 if ch == "LIDAR_TOP" else 900,
                        "width": 0 if ch == "LIDAR_TOP" else 1600,
                        "filename": f"{folder}/{ch}/log-{s}__{ch}__{ts}.{ext}",
                        "prev": tokens[i - 1] if i else "",
                        "next": tokens[i + 1] if i + 1 < n else "",
                    }
                )
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(buf, format="PNG")
    (root / "maps").mkdir(parents=True, exist_ok=True)
    (root / "maps" / "blank.png").write_bytes(buf.getvalue())
    t["map"] = [
        {
            "token": tok("map"),
            "log_tokens": [r["token"] for r in t["log"]],
            "category": "semantic_prior",
            "filename": "maps/blank.png",
        }
    ]
    (root / version).mkdir(parents=True, exist_ok=True)
    for name, rows in t.items():
        (root / version / f"{name}.json").write_text(json.dumps(rows))
    return {name: len(rows) for name, rows in t.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=85, help="scenes (the real trainval: 850)")
    ap.add_argument("--keyframes", type=int, default=40, help="keyframes per scene (nuScenes: about 40)")
    ap.add_argument("--sweeps", type=int, default=10, help="prepare's --sweeps")
    ap.add_argument("--out", type=Path, required=True, help="a scratch folder (replaced)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    root = args.out / "nuscenes"
    t0 = time.perf_counter()
    rows = write_tables(root, args.scenes, args.keyframes)
    t_write = time.perf_counter() - t0
    from nuscenes.nuscenes import NuScenes

    t0 = time.perf_counter()
    nusc = NuScenes(version="v1.0-trainval", dataroot=str(root), verbose=False)
    t_load = time.perf_counter() - t0
    del nusc
    from occkit.cli import main as occkit

    t0 = time.perf_counter()
    rc = occkit(
        ["prepare", "nuscenes", "--dataroot", str(root), "--out", str(args.out / "infos"), "--sweeps", str(args.sweeps)]
    )
    t_prepare = time.perf_counter() - t0
    if rc != 0:
        return rc
    size = (args.out / "infos" / "infos.json").stat().st_size
    keyframes = rows["sample"]
    res = {
        "scenes": args.scenes,
        "keyframes": keyframes,
        "sample_data_rows": rows["sample_data"],
        "tables_written_s": round(t_write, 1),
        "devkit_load_s": round(t_load, 1),
        "prepare_s": round(t_prepare, 1),
        "keyframes_per_s": round(keyframes / t_prepare, 1),
        "infos_json_bytes": size,
        "bytes_per_keyframe": round(size / keyframes),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(json.dumps(res, indent=1))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
