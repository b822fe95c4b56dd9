"""Is a langocc run's density flat? p(occupied) over the val frames, split by 3D truth (camera mask).

Usage: OMP_NUM_THREADS=1 python benchmarks/langocc_density.py RUN_OR_CKPT DATA [max_frames]

Prints p(occupied) statistics (all voxels; at occupied and free voxels of the camera mask) and the
geometry IoU at several thresholds: a diagnostic that reads the 3D truth, never a training signal.
"""
import json
import sys

import torch

from occkit.data.sample import collate
from occkit.experiment import build_dataset, load_checkpoint_method

torch.set_num_threads(1)
run, data = sys.argv[1], sys.argv[2]
max_frames = int(sys.argv[3]) if len(sys.argv) > 3 else 0
method, cfg, folder, dev = load_checkpoint_method(run, "cpu")
ds = build_dataset(cfg, data, "val", load_gt=True)
n = len(ds) if not max_frames else min(max_frames, len(ds))
ths = (0.05, 0.1, 0.2, 0.3, 0.5)
inter, union = [0] * len(ths), [0] * len(ths)
p_occ, p_free, p_all = [], [], []
with torch.no_grad():
    for i in range(n):
        s = ds[i]
        p = method.p_occupied(method.forward(collate([s])).logits)[0]
        gt, cam = s.occupancy != 17, s.mask_camera.bool()
        p_occ.append(p[gt & cam])
        p_free.append(p[~gt & cam])
        p_all.append(p.flatten())
        for k, t in enumerate(ths):
            inter[k] += int((p.ge(t) & gt & cam).sum())
            union[k] += int(((p.ge(t) | gt) & cam).sum())
po, pf, pa = torch.cat(p_occ), torch.cat(p_free), torch.cat(p_all)
print(json.dumps({
    "checkpoint": str(folder), "frames": n,
    "p_all_mean": float(pa.mean()), "p_all_std": float(pa.std()), "p_all_max": float(pa.max()), "frac_ge_0.1": float(pa.ge(0.1).float().mean()),
    "p_at_occupied_mean": float(po.mean()), "p_at_free_mean": float(pf.mean()),
    "geometry_iou_by_threshold": {str(t): round(100 * a / max(b, 1), 2) for t, a, b in zip(ths, inter, union)},
}, indent=1))
