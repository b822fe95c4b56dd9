"""Where is a rendered run's geometry? p(occupied) over the val frames, split by 3D truth (camera mask).

Usage: OMP_NUM_THREADS=1 python benchmarks/langocc_density.py RUN_OR_CKPT DATA [max_frames]

Prints, for a ``langocc`` or ``render_sup`` run (any method with ``p_occupied``, or class logits
with a free class):
- p(occupied) statistics: all voxels; at occupied and at free voxels of the camera mask;
- geometry IoU at fixed thresholds, at the run's own threshold (``method.threshold()``: what
  ``predict`` uses), and the best over thresholds 0.01..0.99 (that one reads the truth to choose);
- ``geometry_ap``: the average precision of p(occupied) as a score for "occupied" over the camera
  mask's voxels (``occkit.metrics.retrieval.average_precision``, as scikit-learn's), a figure that no
  threshold decides: 100 = every occupied voxel above every free one, the occupied fraction = chance.
A diagnostic that reads the 3D truth, never a training signal.
"""
import json
import sys

import torch

from occkit.data.sample import collate
from occkit.experiment import build_dataset, load_checkpoint_method
from occkit.metrics.retrieval import average_precision


def p_occupied(method, batch) -> torch.Tensor:
    logits = method.forward(batch).logits
    if hasattr(method, "p_occupied"):
        return method.p_occupied(logits[0])
    free = method.cfg.free_index
    return -torch.expm1(torch.log_softmax(logits[0].float(), 0)[free])


def main() -> None:
    torch.set_num_threads(1)
    run, data = sys.argv[1], sys.argv[2]
    max_frames = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    method, cfg, folder, dev = load_checkpoint_method(run, "cpu")
    ds = build_dataset(cfg, data, "val", load_gt=True)
    n = len(ds) if not max_frames else min(max_frames, len(ds))
    own = float(method.threshold()) if hasattr(method, "threshold") else 0.5
    sweep = torch.arange(1, 100, dtype=torch.float64) / 100
    ths = (0.05, 0.1, 0.2, 0.3, 0.5)
    inter, union = torch.zeros(len(sweep), dtype=torch.float64), torch.zeros(len(sweep), dtype=torch.float64)
    fixed = {t: [0, 0] for t in (*ths, own)}
    p_occ, p_free, p_all = [], [], []
    with torch.no_grad():
        for i in range(n):
            s = ds[i]
            p = p_occupied(method, collate([s])).float()
            gt, cam = s.occupancy != 17, s.mask_camera.bool()
            p_occ.append(p[gt & cam])
            p_free.append(p[~gt & cam])
            p_all.append(p.flatten())
            pc, gc = p[cam].double(), gt[cam]
            above = pc[None, :] >= sweep[:, None]  # (T, V)
            inter += (above & gc[None]).sum(1)
            union += (above | gc[None]).sum(1)
            for t in fixed:
                fixed[t][0] += int((p.ge(t) & gt & cam).sum())
                fixed[t][1] += int(((p.ge(t) | gt) & cam).sum())
    po, pf, pa = torch.cat(p_occ), torch.cat(p_free), torch.cat(p_all)
    iou = 100 * inter / union.clamp(min=1)
    best = int(torch.argmax(iou))
    print(json.dumps({
        "checkpoint": str(folder), "frames": n,
        "p_all_mean": float(pa.mean()), "p_all_std": float(pa.std()), "p_all_max": float(pa.max()), "frac_ge_0.1": float(pa.ge(0.1).float().mean()),
        "p_at_occupied_mean": float(po.mean()), "p_at_free_mean": float(pf.mean()),
        "geometry_iou_by_threshold": {str(t): round(100 * fixed[t][0] / max(fixed[t][1], 1), 2) for t in ths},
        "own_threshold": round(own, 4), "geometry_iou_at_own_threshold": round(100 * fixed[own][0] / max(fixed[own][1], 1), 2),
        "best_threshold_reads_truth": round(float(sweep[best]), 2), "geometry_iou_best": round(float(iou[best]), 2),
        "geometry_ap": round(100 * average_precision(torch.cat([po, pf]), torch.cat([torch.ones_like(po, dtype=torch.bool), torch.zeros_like(pf, dtype=torch.bool)])), 2),
        "occupied_fraction": round(100 * len(po) / max(len(po) + len(pf), 1), 2),
    }, indent=1))


if __name__ == "__main__":
    main()
