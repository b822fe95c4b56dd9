"""How well a radocc run's teacher and student render: their volume-rendered depth and semantics
against the ground truth's, over the validation frames of a dataset (RadOcc distils the teacher's
rendered views, so a teacher whose renders are poor has little to give, whatever its voxel mIoU).

Per network, over every camera pixel (every ``--stride``-th) where the ground truth's ray meets a
surface in the grid:

- ``hit``: share of those pixels where the network's ray also reaches transmittance 0.5;
- ``abs_rel``: mean ``|d - d_gt| / d_gt`` of the rendered z-depth where both hit;
- ``delta1``: share of those with ``max(d / d_gt, d_gt / d) < 1.25``;
- ``sem_acc``: share of the ground truth's surface pixels whose rendered class is the ground truth's.

    python benchmarks/diagnose_rendered_views.py --ckpt runs/radocc_abl150/rdc_rsc_s0 --data runs/abl_world \\
        --out runs/radocc_abl150/rdc_rsc_s0/rendered_views.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from occkit.labels import OCC3D_FREE


def view_scores(pred, gt) -> dict[str, float]:
    """Sums over pixels of one set of views (``ViewMaps`` of a network and of the ground truth)."""
    g = gt.depth > 0
    both = g & (pred.depth > 0)
    d, dg = pred.depth[both], gt.depth[both]
    ratio = (d / dg).clamp(min=1e-6)
    return {
        "gt_pixels": float(g.sum()),
        "hit": float(both.sum()),
        "abs_rel_sum": float(((d - dg).abs() / dg).sum()),
        "delta1": float((ratio.maximum(1 / ratio) < 1.25).sum()),
        "sem_ok": float((pred.semantics[g] == gt.semantics[g]).sum()),
    }


def summarise(acc: dict[str, float]) -> dict[str, float]:
    hit = max(acc["hit"], 1.0)
    return {
        "hit": 100 * acc["hit"] / acc["gt_pixels"],
        "abs_rel": acc["abs_rel_sum"] / hit,
        "delta1": 100 * acc["delta1"] / hit,
        "sem_acc": 100 * acc["sem_ok"] / acc["gt_pixels"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True, help="run or checkpoint folder (a radocc run's teacher is rendered too)")
    ap.add_argument(
        "--teacher", help="teacher run to render beside it (default: a radocc run's own teacher, if it loads one)"
    )
    ap.add_argument("--data", required=True, help="Occ3D-layout dataset root")
    ap.add_argument("--split", default="val")
    ap.add_argument("--stride", type=int, default=4, help="render every N-th pixel (default 4)")
    ap.add_argument("--frames", type=int, default=0, help="at most this many frames (0 = all)")
    ap.add_argument("--out", help="JSON path for the result")
    args = ap.parse_args()
    import torch

    from occkit.data.occ3d import Occ3DDataset
    from occkit.data.sample import collate
    from occkit.experiment import build_dataset, load_checkpoint_method, load_teacher
    from occkit.fileio import write_json_atomic
    from occkit.rendering.views import render_logits_views, render_occupancy_views

    method, cfg, folder, device = load_checkpoint_method(args.ckpt, "cpu")
    if args.teacher:
        teacher = load_teacher(args.teacher)
        teacher_logits = lambda batch: teacher.forward(batch).logits[0].float()  # noqa: E731
    elif getattr(method, "_teacher", None) is not None:
        teacher_logits = lambda batch: method.teacher_outputs(batch).logits[0].float()  # noqa: E731
    else:
        teacher_logits = None
    ds = build_dataset(cfg, args.data, args.split, load_gt=False)
    gt_ds = Occ3DDataset(args.data, split=args.split, load_gt=True, load_extras=False)
    grid = gt_ds.grid
    n = len(ds) if args.frames <= 0 else min(args.frames, len(ds))
    keys = ("gt_pixels", "hit", "abs_rel_sum", "delta1", "sem_ok")
    acc = {who: dict.fromkeys(keys, 0.0) for who in (("teacher", "student") if teacher_logits else ("student",))}
    t0 = time.perf_counter()
    for i in range(n):
        s = ds[i]
        gs = gt_ds[gt_ds.index_of(s.token)]
        H, W = (int(v) for v in s.images.shape[-2:])
        batch = collate([s]).to(device)
        with torch.no_grad():
            logits = {"student": method.predict(batch)[0].float()}
            if teacher_logits is not None:
                logits["teacher"] = teacher_logits(batch)
        views = (s.intrinsics, s.T_ego_from_cam, H, W)
        gt_maps = render_occupancy_views(gs.occupancy, grid, *views, stride=args.stride, free=OCC3D_FREE)
        for who, lg in logits.items():
            r = view_scores(render_logits_views(lg, grid, *views, stride=args.stride, free=OCC3D_FREE), gt_maps)
            for k in keys:
                acc[who][k] += r[k]
        print(f"frame {i + 1}/{n} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    res = {who: summarise(a) for who, a in acc.items()}
    res.update(
        run=str(folder),
        teacher_run=args.teacher or (cfg.radocc.teacher if teacher_logits else None),
        data=args.data,
        split=args.split,
        frames=n,
        stride=args.stride,
        command=" ".join(["python", *sys.argv]),
    )
    print(json.dumps(res, indent=1))
    if args.out:
        write_json_atomic(args.out, res, indent=1)


if __name__ == "__main__":
    main()
