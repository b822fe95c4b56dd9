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
  the camera rays as many;
- by distance from the ego vehicle (horizontal, metres; ``--ranges``): the share of each elevated
  class's true voxels in each band and its IoU there: whether a class fails everywhere or only
  where it spans a few pixels;
- the depth distribution of the LSS view transform against its targets (the method's depth
  source), per 2D class of the feature pixel (the majority of its block of the synthetic
  semantic maps): the share of pixels whose most likely bin is within one bin of the target, the
  mean error in bins, and the probability mass within one bin.

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
from occkit.losses.depth import semantic_map_targets

ELEVATED = ("car", "manmade", "vegetation")
#: 2D classes of the depth table: name -> Occ3D class ids.
DEPTH_GROUPS = {
    "ground (11-14)": (11, 12, 13, 14),
    "car": (4,),
    "manmade": (15,),
    "vegetation": (16,),
    "other objects (0-3, 5-10)": (0, 1, 2, 3, 5, 6, 7, 8, 9, 10),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True, help="checkpoint folder or run folder")
    ap.add_argument("--data", required=True, help="Occ3D-format dataset")
    ap.add_argument("--split", default="val")
    ap.add_argument("--every", type=int, default=2, help="use every n-th frame")
    ap.add_argument("--taus", default="0,0.25,0.5,1", help="logit-adjustment strengths")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    ap.add_argument("--ranges", default="0,10,20,30,60", help="distance bands (m) of the by-distance table")
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
    edges = [float(r) for r in args.ranges.split(",")]
    band_of = torch.bucketize(
        method.model.output_grid.centers()[..., :2].norm(dim=-1), torch.tensor(edges[1:-1]), right=True
    )  # (X, Y, Z)
    band_conf = torch.zeros(len(edges) - 1, C, C, dtype=torch.long)
    depth_stats = {g: [0, 0, 0.0, 0.0] for g in DEPTH_GROUPS}  # pixels, within 1 bin, sum |error|, mass within 1
    has_depth = hasattr(method, "depth_targets") and hasattr(method, "model")
    frames = range(0, len(ds), args.every)
    for i in frames:
        b = collate([ds[i]])
        if b.occupancy is None or b.mask_camera is None:
            raise SystemExit(f"{args.data}: frame {i} has no labels or camera mask")
        with torch.no_grad():
            if has_depth:
                out = method(b)
                scores = out.logits[0].float()  # (C, X, Y, Z)
                _depth_accuracy(
                    out.depth_prob[0].float(), method.depth_targets(b), b, cfg.model.feature_stride, C, depth_stats
                )
            else:
                scores = method.predict(b)[0].float()
        gt = b.occupancy[0].long()
        m = b.mask_camera[0].bool()
        plain = scores.argmax(0)
        for k in range(len(edges) - 1):
            mk = m & (band_of == k)
            band_conf[k] += torch.bincount(C * gt[mk] + plain[mk], minlength=C * C).view(C, C)
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
        print(
            f"| {OCC3D_CLASSES[c]} | {int(g)} | {int(p)} | {100 * float(tp[c]) / max(p, 1):.1f} | "
            f"{100 * float(tp[c]) / max(g, 1):.1f} | {100 * iou:.1f} |"
        )
    print("\ndistance in voxels (0.4 m), percentiles 25 / 50 / 75 / 90:")
    for c in elevated:

        def q(parts: list[np.ndarray]) -> str:
            a = np.concatenate(parts) if parts else np.zeros(0)
            return " / ".join(f"{np.percentile(a, x):.1f}" for x in (25, 50, 75, 90)) if a.size else "-"

        print(
            f"  {OCC3D_CLASSES[c]}: predicted -> nearest true {q(d_pred[c])}; true -> nearest predicted {q(d_true[c])}"
        )

    bands = [f"{edges[k]:g}-{edges[k + 1]:g} m" for k in range(len(edges) - 1)]
    print("\nby distance from the ego vehicle: share of the true voxels / IoU, percent")
    print("| class | " + " | ".join(bands) + " |\n|---|" + "---:|" * len(bands))
    for c in elevated + [OCC3D_CLASSES.index("driveable_surface")]:
        n_true = [float(band_conf[k][c].sum()) for k in range(len(bands))]
        cells = []
        for k in range(len(bands)):
            cf_k = band_conf[k].double()
            union = float(cf_k[c].sum() + cf_k[:, c].sum() - cf_k[c, c])
            iou = f"{100 * float(cf_k[c, c]) / union:.1f}" if union else "-"
            cells.append(f"{100 * n_true[k] / max(sum(n_true), 1):.0f} / {iou}")
        print(f"| {OCC3D_CLASSES[c]} | " + " | ".join(cells) + " |")

    if has_depth and any(v[0] for v in depth_stats.values()):
        print("\ndepth distribution against its targets, per 2D class of the feature pixel")
        print(
            "| 2D class | feature pixels | argmax within 1 bin (%) | mean error (bins) | probability within 1 bin (%) |"
        )
        print("|---|---:|---:|---:|---:|")
        for g, (n, ok, err, mass) in depth_stats.items():
            if n:
                print(f"| {g} | {n} | {100 * ok / n:.1f} | {err / n:.2f} | {100 * mass / n:.1f} |")


def _depth_accuracy(prob: torch.Tensor, target: torch.Tensor | None, b, stride: int, C: int, stats: dict) -> None:
    """Accumulate the depth table for one frame: ``prob (N, D, h, w)``, ``target (1, N, h, w)``."""
    if target is None or b.semantics_2d is None:
        return
    t = target[0]
    sem = semantic_map_targets(b.semantics_2d[0], stride, C)  # (N, h, w)
    D = prob.shape[1]
    am = prob.argmax(1)
    tc = t.clamp(min=0)
    mass = sum(
        torch.where((tc + k >= 0) & (tc + k < D), prob.gather(1, (tc + k).clamp(0, D - 1)[:, None]).squeeze(1), 0.0)
        for k in (-1, 0, 1)
    )
    for g, ids in DEPTH_GROUPS.items():
        sel = (t >= 0) & torch.isin(sem, torch.tensor(ids))
        if bool(sel.any()):
            err = (am - t).abs()[sel]
            s = stats[g]
            s[0] += int(sel.sum())
            s[1] += int((err <= 1).sum())
            s[2] += float(err.float().sum())
            s[3] += float(mass[sel].sum())


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
