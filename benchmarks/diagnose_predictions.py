"""How a trained occupancy network errs, class by class, inside the camera mask.

For a checkpoint of a method whose ``predict`` gives per-class scores (``supervised``,
``render_sup``), over every ``--every``-th frame of ``--split``:

- per class: ground-truth and predicted voxel counts, precision, recall, IoU: whether a class
  is missed (low recall) or sprayed (predicted many times its true count, low precision);
- the logit-adjustment sweep: the mIoU and geometry IoU of ``argmax(logits - tau * log w)`` for
  the method's class weights ``w`` (``supervised.class_counts``): ``tau = 1`` undoes the prior
  shift the weighted cross-entropy taught, ``tau = 0`` is the plain prediction. A class that
  vanishes as tau grows is one the network never becomes confident about;
- the distance (in voxels) from each predicted voxel of the elevated classes to the nearest
  true voxel of that class, and back: a misplaced surface shows up as a few voxels, a smear along
  the camera rays as many.

    python benchmarks/diagnose_predictions.py --ckpt runs/bench_train30 --data runs/synth20x20 --split val --every 2
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt

from occkit.data.sample import collate
from occkit.experiment import build_dataset, load_checkpoint_method
from occkit.labels import OCC3D_CLASSES

ELEVATED = ("car", "manmade", "vegetation")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True, help="checkpoint folder or run folder")
    ap.add_argument("--data", required=True, help="Occ3D-format dataset")
    ap.add_argument("--split", default="val")
    ap.add_argument("--every", type=int, default=2, help="use every n-th frame")
    ap.add_argument("--taus", default="0,0.25,0.5,1", help="logit-adjustment strengths")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    method, cfg, _, _ = load_checkpoint_method(args.ckpt, "cpu")
    ds = build_dataset(cfg, args.data, args.split)
    C = cfg.model.num_classes
    free = C - 1
    weight = getattr(method, "class_weight", None)
    log_w = torch.log(weight) if weight is not None else torch.zeros(C)
    taus = [float(t) for t in args.taus.split(",")]
    conf = {t: torch.zeros(C, C, dtype=torch.long) for t in taus}
    elevated = [OCC3D_CLASSES.index(n) for n in ELEVATED]
    d_pred: dict[int, list[np.ndarray]] = {c: [] for c in elevated}
    d_true: dict[int, list[np.ndarray]] = {c: [] for c in elevated}
    frames = range(0, len(ds), args.every)
    for i in frames:
        b = collate([ds[i]])
        if b.occupancy is None or b.mask_camera is None:
            raise SystemExit(f"{args.data}: frame {i} has no labels or camera mask")
        with torch.no_grad():
            scores = method.predict(b)[0].float()  # (C, X, Y, Z)
        gt = b.occupancy[0].long()
        m = b.mask_camera[0].bool()
        for t in taus:
            pred = (scores - t * log_w[:, None, None, None]).argmax(0)
            conf[t] += torch.bincount(C * gt[m] + pred[m], minlength=C * C).view(C, C)
        pred = scores.argmax(0).numpy()
        gt_np, m_np = gt.numpy(), m.numpy()
        for c in elevated:
            if (gt_np == c).any():
                d_pred[c].append(distance_transform_edt(gt_np != c)[(pred == c) & m_np])
            if (pred == c).any():
                d_true[c].append(distance_transform_edt(pred != c)[(gt_np == c) & m_np])

    print(f"{args.ckpt} on {args.data} ({args.split}, {len(frames)} frames), camera mask\n")
    print("| tau | mIoU | geometry IoU |\n|---:|---:|---:|")
    for t in taus:
        miou, geo = _scores(conf[t], free)
        print(f"| {t:g} | {miou:.2f} | {geo:.2f} |")
    cf = conf[0.0 if 0.0 in conf else taus[0]].double()
    tp = cf.diag()
    print("\n| class | true voxels | predicted voxels | precision | recall | IoU |\n|---|---:|---:|---:|---:|---:|")
    for c in range(C):
        g, p = float(cf[c].sum()), float(cf[:, c].sum())
        iou = float(tp[c]) / max(g + p - float(tp[c]), 1.0)
        print(f"| {OCC3D_CLASSES[c]} | {int(g)} | {int(p)} | {100 * float(tp[c]) / max(p, 1):.1f} | "
              f"{100 * float(tp[c]) / max(g, 1):.1f} | {100 * iou:.1f} |")
    print("\ndistance in voxels (0.4 m), percentiles 25 / 50 / 75 / 90:")
    for c in elevated:
        def q(parts: list[np.ndarray]) -> str:
            a = np.concatenate(parts) if parts else np.zeros(0)
            return " / ".join(f"{np.percentile(a, x):.1f}" for x in (25, 50, 75, 90)) if a.size else "-"
        print(f"  {OCC3D_CLASSES[c]}: predicted -> nearest true {q(d_pred[c])}; true -> nearest predicted {q(d_true[c])}")


def _scores(cf: torch.Tensor, free: int) -> tuple[float, float]:
    """(mIoU over the classes present or predicted, geometry IoU) of a confusion matrix, percent."""
    cf = cf.double()
    tp = cf.diag()
    union = cf.sum(0) + cf.sum(1) - tp
    keep = torch.arange(cf.shape[0]) != free
    iou = tp[keep] / union[keep]
    inter = cf[keep][:, keep].sum()
    geo = inter / (cf[keep].sum() + cf[:, keep].sum() - inter)
    return 100 * float(iou.nanmean()), 100 * float(geo)


if __name__ == "__main__":
    main()
