"""``occkit eval --metrics miou,rayiou`` against the reference per-frame code, end to end on an
Occ3D-layout folder (files read, LiDAR origins from the poses, mIoU and RayIoU): for each frame,
read ``labels.npz`` and the prediction with ``np.load``, add it to the Occ3D challenge's mIoU
(``Metric_mIoU.add_batch``'s per-frame code, as ``bench_metrics.official_per_frame``) and walk its
rays with ``cast_rays_reference`` (the one-step-per-iteration torch walk, the traversal of
SparseOcc's ``dvr``; SparseOcc's own code needs its CUDA extension), counting them as SparseOcc's
``calc_rayiou`` does. Prints the time and the scores, and with ``--check J.json`` (what
``occkit eval --json`` wrote for the same frames) whether every score is the same.

    python benchmarks/eval_reference.py E --frames 160 [--check occkit.json]
    # E: python benchmarks/make_eval_set.py W E --repeat 38
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_metrics import official_per_frame, reference_rayiou_state

from occkit.data.occ3d import Occ3DDataset
from occkit.labels import OCC3D_CLASSES
from occkit.metrics.rayiou import RAYIOU_THRESHOLDS, rayiou_origins, rayiou_scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", help="Occ3D-layout folder with LiDAR poses and predictions in DATA/pred (make_eval_set.py)")
    ap.add_argument("--pred", default=None, help="predictions folder (default: DATA/pred)")
    ap.add_argument("--split", default="val")
    ap.add_argument("--frames", type=int, default=0, help="the first N frames of the split (0: all)")
    ap.add_argument("--check", default=None, help="occkit eval --json of the same frames: compare every score")
    args = ap.parse_args()
    torch.set_num_threads(1)
    pred_dir = args.pred or os.path.join(args.data, "pred")
    ds = Occ3DDataset(args.data, args.split, load_images=False, load_gt=True, load_extras=False)
    tokens = [f.token for f in ds.frames][: args.frames or None]
    hist = np.zeros((18, 18), np.int64)
    state = torch.zeros(2 * 18 + 3 * 18, dtype=torch.int64)
    w, c = time.perf_counter(), time.process_time()
    for t in tokens:
        with np.load(ds.gt_path(t)) as z:
            gt, mask = z["semantics"], z["mask_camera"].astype(bool)
        with np.load(os.path.join(pred_dir, f"{t}.npz")) as z:
            pred = z["semantics"]
        hist += official_per_frame(pred[None], gt[None], mask[None], np.zeros(1, np.int64))
        state += reference_rayiou_state(torch.from_numpy(pred), torch.from_numpy(gt), rayiou_origins(ds, t))
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.diag(hist) / (hist.sum(1) + hist.sum(0) - np.diag(hist))
    miou = 100 * float(np.nanmean(iou[:17]))
    ray = rayiou_scores(state[:18], state[18:36], state[36:].view(3, 18), RAYIOU_THRESHOLDS, OCC3D_CLASSES)
    n = len(tokens)
    print(
        f"{n} frames: {wall:.1f} s wall, {cpu:.1f} s CPU ({cpu / n:.3f} s per frame); "
        f"mIoU {miou:.4f}, RayIoU {ray['rayiou']:.4f}"
    )
    if args.check:
        with open(args.check) as f:
            ours = json.load(f)
        same = ours["frames"] == n and math.isclose(ours["miou"], miou, abs_tol=1e-9)
        same &= all(math.isclose(ours[k], ray[k], abs_tol=1e-9) for k in ("rayiou", "rayiou@1", "rayiou@2", "rayiou@4"))
        for name, v in zip(OCC3D_CLASSES[:17], iou[:17]):
            o = ours["iou"][name]
            same &= (o is None and math.isnan(v)) or (o is not None and math.isclose(o, 100 * v, abs_tol=1e-9))
        print(f"the same scores as {args.check} (frames, mIoU, per-class IoU, RayIoU at each threshold): {same}")


if __name__ == "__main__":
    main()
