"""Is a rendered run's density flat? p(occupied) over the first val frames, split by 3D truth (camera mask).

Usage: OMP_NUM_THREADS=1 python benchmarks/langocc_density.py RUN_OR_CKPT DATA [max_frames]

The diagnostic behind the LangOcc figures of BENCHMARKS.md (the first ``max_frames`` val frames):
p(occupied) statistics (all voxels; at occupied and at free voxels of the camera mask) and the
geometry IoU at fixed thresholds, with the figures of ``occkit geometry`` (geometry AP, the IoU at
the run's own and at the best threshold; :mod:`occkit.metrics.geometry_rank`), which is the command
to use (its frames are spread evenly over the split). It reads the 3D truth: never a training signal.
"""

import json
import sys

import torch

from occkit.commands.geometry import p_occupied
from occkit.data.sample import collate
from occkit.experiment import build_dataset, load_checkpoint_method
from occkit.labels import OCC3D_FREE
from occkit.metrics.geometry_rank import GeometryRanking


def main() -> None:
    torch.set_num_threads(1)
    run, data = sys.argv[1], sys.argv[2]
    max_frames = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    method, cfg, folder, dev = load_checkpoint_method(run, "cpu")
    method.eval()
    ds = build_dataset(cfg, data, "val", load_gt=True)
    n = len(ds) if not max_frames else min(max_frames, len(ds))
    ths = (0.05, 0.1, 0.2, 0.3, 0.5)
    inter, union = [0] * len(ths), [0] * len(ths)
    p_all, rank = [], GeometryRanking()
    with torch.no_grad():
        for i in range(n):
            s = ds[i]
            p = p_occupied(method, method.forward(collate([s])).logits[0]).float()
            gt, cam = s.occupancy != OCC3D_FREE, s.mask_camera.bool()
            rank.add(p, gt, cam)
            p_all.append(p.flatten())
            for k, t in enumerate(ths):
                inter[k] += int((p.ge(t) & gt & cam).sum())
                union[k] += int(((p.ge(t) | gt) & cam).sum())
    pa = torch.cat(p_all)
    own = float(method.threshold()) if hasattr(method, "threshold") else None
    print(
        json.dumps(
            {
                "checkpoint": str(folder),
                "frames": n,
                "p_all_mean": float(pa.mean()),
                "p_all_std": float(pa.std()),
                "p_all_max": float(pa.max()),
                "frac_ge_0.1": float(pa.ge(0.1).float().mean()),
                "geometry_iou_by_threshold": {
                    str(t): round(100 * a / max(b, 1), 2) for t, a, b in zip(ths, inter, union)
                },
                "own_threshold": own,
                **rank.compute(own),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
