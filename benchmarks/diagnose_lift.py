"""Where a trained camera occupancy network loses the elevated classes: per-class depth error of
the LSS depth distribution, accuracy of the auxiliary 2D semantic head, and an oracle lift.

For a checkpoint of the ``supervised`` method on a dataset with the synthetic extras (2D depth and
semantic maps), over every ``--every``-th frame of ``--split``:

- per 2D class (majority class of each feature pixel's block): the median true depth and the
  median absolute error of the expected depth (``sum_d p(d) * d``) against the block's target
  bin (the smallest depth in the block, as the depth loss uses);
- when the method has a 2D semantic head (``supervised.semantic_2d_weight > 0``): per-class IoU of
  its feature-pixel classification;
- the oracle lift: the true depth bin and 2D class of each feature pixel splatted with the
  model's own view-transform geometry into the output grid, and the share of splatted voxels
  within one voxel of an occupied ground-truth voxel (how much the stride alone loses).

    python benchmarks/diagnose_lift.py --ckpt runs/bench_train30 --data runs/synth20x20 --split val --every 4
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from occkit.data.sample import collate
from occkit.experiment import build_dataset, load_checkpoint_method
from occkit.labels import OCC3D_CLASSES
from occkit.losses.depth import depth_map_targets, semantic_map_targets
from occkit.models.lift import frustum_to_ego, make_frustum, splat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True, help="checkpoint folder or run folder")
    ap.add_argument("--data", required=True, help="dataset with the synthetic extras")
    ap.add_argument("--split", default="val")
    ap.add_argument("--every", type=int, default=4, help="use every n-th frame")
    ap.add_argument("--oracle-stride", type=int, default=0, help="feature stride of the oracle lift (0 = the model's)")
    args = ap.parse_args()

    method, cfg, _, device = load_checkpoint_method(args.ckpt, "cpu")
    mc = cfg.model
    if not cfg.data.load_extras:
        cfg.data.load_extras = True
    ds = build_dataset(cfg, args.data, args.split)
    C = mc.num_classes
    s = mc.feature_stride
    rng = (mc.depth_min, mc.depth_max, mc.depth_step)
    bins = method.model.depth_bins
    err: dict[int, list[torch.Tensor]] = {c: [] for c in range(C)}
    true: dict[int, list[torch.Tensor]] = {c: [] for c in range(C)}
    conf = torch.zeros(C, C)
    oracle_hits = oracle_total = 0
    head = getattr(method, "semantic_2d_head", None)
    os_ = args.oracle_stride or s
    grid = method.model.output_grid
    frames = range(0, len(ds), args.every)
    for i in frames:
        b = collate([ds[i]])
        if b.depth is None or b.semantics_2d is None:
            raise SystemExit(f"{args.data}: frame {i} has no 2D depth / semantic maps (the synthetic extras)")
        with torch.no_grad():
            out = method.forward(b)
        t = depth_map_targets(b.depth, s, rng)
        cls = semantic_map_targets(b.semantics_2d, s, C)
        expected = (out.depth_prob * bins[None, None, :, None, None]).sum(2)
        valid = t >= 0
        for c in range(C):
            k = valid & (cls == c)
            if bool(k.any()):
                err[c].append((expected - bins[t.clamp(min=0)]).abs()[k])
                true[c].append(bins[t.clamp(min=0)][k])
        if head is not None and out.image_features is not None:
            with torch.no_grad():
                pred = head(out.image_features.flatten(0, 1)).argmax(1).view_as(cls)
            conf += torch.bincount(C * cls.flatten() + pred.flatten(), minlength=C * C).view(C, C).float()
        # oracle lift: true depth bin and 2D class of each feature pixel, the model's geometry
        B, N, _, H, W = b.images.shape
        to = depth_map_targets(b.depth, os_, rng)
        dp = F.one_hot(to.clamp(min=0), bins.numel()).permute(0, 1, 4, 2, 3).float() * (to >= 0)[:, :, None].float()
        ctx = torch.ones(B, N, 1, H // os_, W // os_)
        pts = frustum_to_ego(make_frustum((H, W), os_, bins), b.intrinsics, b.T_ego_from_cam)
        hit = splat(dp, ctx, pts, grid)[0, 0] > 0
        occ = (b.occupancy[0] != C - 1).float()
        near_occ = F.max_pool3d(occ[None, None], 3, 1, 1)[0, 0] > 0
        oracle_hits += int((near_occ & hit).sum())
        oracle_total += int(hit.sum())
    names = list(OCC3D_CLASSES) + (["free"] if len(OCC3D_CLASSES) < C else [])
    print(f"{args.ckpt} on {args.data} ({args.split}, {len(frames)} frames); feature stride {s}")
    print("\n| class | feature pixels | median true depth (m) | median abs depth error (m) | 2D head IoU |")
    print("|---|---:|---:|---:|---:|")
    for c in range(C):
        if not err[c]:
            continue
        e, d = torch.cat(err[c]), torch.cat(true[c])
        iou = float("nan")
        if head is not None and conf[c].sum() > 0:
            tp = conf[c, c]
            iou = float(tp / (conf[c].sum() + conf[:, c].sum() - tp))
        print(f"| {names[c]} | {e.numel()} | {float(d.median()):.1f} | {float(e.median()):.2f} | {iou:.2f} |")
    print(
        f"\noracle lift (true depth bin of each stride-{os_} feature pixel): {oracle_total} voxels hit over the "
        f"frames, {100 * oracle_hits / max(oracle_total, 1):.1f} % within one voxel of an occupied ground-truth voxel"
    )


if __name__ == "__main__":
    main()
