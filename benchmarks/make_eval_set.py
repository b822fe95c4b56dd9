"""A large Occ3D-layout folder for timing ``occkit eval`` at the size of Occ3D-nuScenes val: a
world's frames repeated under new scene names (each frame's ``gt_path`` points at the world's own
``labels.npz``, so nothing is copied), with predictions = the ground truth shifted one voxel along
x (written once per source frame, linked for its repeats).

    python benchmarks/make_eval_set.py W E --repeat 38      # W's 160 frames -> 6080 in E
    occkit eval --gt E --pred E/pred --metrics miou,rayiou      # one process per usable core
    python benchmarks/eval_reference.py E --frames 160         # the reference per-frame code
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from occkit.fileio import read_json, save_npz_atomic, write_json_atomic


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("world", type=Path, help="an Occ3D-layout world with LiDAR poses (occkit synth)")
    ap.add_argument("out", type=Path, help="the folder to write (must not exist)")
    ap.add_argument("--repeat", type=int, default=38, help="copies of every scene (default 38: 160 frames -> 6080)")
    args = ap.parse_args()
    if args.out.exists():
        raise SystemExit(f"{args.out}: exists; choose a new folder")
    world = args.world.resolve()
    ann = read_json(world / "annotations.json")
    src_dir, pred_dir = args.out / "pred_src", args.out / "pred"
    pred_dir.mkdir(parents=True)
    src_dir.mkdir()
    scenes: dict[str, dict] = {}
    n = 0
    for rep in range(args.repeat):
        for scene, frames in ann["scene_infos"].items():
            name = f"{scene}-r{rep:02d}"
            scenes[name] = {}
            for token, info in frames.items():
                info = {k: v for k, v in info.items() if k not in ("prev", "next")}  # the links name the old tokens
                info["gt_path"] = str(world / f"gts/{scene}/{token}/labels.npz")
                new = f"{token[:24]}r{rep:02d}{n:06d}"
                scenes[name][new] = info
                src = src_dir / f"{token}.npz"
                if not src.exists():
                    save_npz_atomic(src, semantics=np.roll(np.load(info["gt_path"])["semantics"], 1, axis=0))
                os.symlink(src.resolve(), pred_dir / f"{new}.npz")
                n += 1
    rest = {k: v for k, v in ann.items() if k not in ("scene_infos", "train_split", "val_split")}
    write_json_atomic(
        args.out / "annotations.json", {**rest, "train_split": [], "val_split": list(scenes), "scene_infos": scenes}
    )
    print(f"{args.out}: {n} frames in {len(scenes)} scenes (val), predictions in {pred_dir}")


if __name__ == "__main__":
    main()
