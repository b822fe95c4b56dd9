"""What CIGOcc's deformable fusion does with its offsets: for trained runs with ``cigocc.fusion:
deformable``, the sampling offsets the fusion predicts on validation frames (their length in
pixels of the fused map and of the image, per output scale), and the SSC scores with the offsets
as trained beside the same network with every offset set to zero (a plain 3x3 convolution of the
concatenated levels: the weights ``concat`` would have, had it learnt the same ones).

The second column is descriptive only: the network never trained without its offsets. Where the
offsets are short (well under a pixel of the fused map) the two columns agree and the deformable
fusion is, in effect, the concatenation; where they are long, the difference is what they do.

    python benchmarks/cigocc_offsets.py --data WORLD --runs runs/abl/cigocc/runs/full_s0 runs/abl/cigocc/runs/full_s1

(WORLD: the CIGOcc ablation's ``world`` stage, ``runs/abl/stages/world-*``.) Prints one table in
Markdown; ``--json F`` writes the figures too.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="+", required=True, help="run or checkpoint folders (cigocc, fusion: deformable)")
    ap.add_argument("--data", required=True, help="SemanticKITTI-layout root the runs were validated on")
    ap.add_argument("--split", default="val")
    ap.add_argument("--max-frames", type=int, default=0, help="evenly spread frames of the split (0: all)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args()
    import torch

    from occkit.data.sample import collate
    from occkit.engine.data import spread_indices
    from occkit.engine.evaluate import predict_labels
    from occkit.experiment import build_dataset, load_checkpoint_method
    from occkit.fileio import write_text_atomic
    from occkit.metrics.ssc import SSCMetric
    from occkit.models.fusion import DeformableFusion, MultiScaleFusion

    torch.set_num_threads(args.threads)
    results = []
    for run in args.runs:
        method, cfg, folder, dev = load_checkpoint_method(run, "cpu")
        fusions = [m for m in method.modules() if isinstance(m, DeformableFusion) and m.offset is not None]
        if not fusions:
            raise SystemExit(
                f"{run}: no deformable fusion in this network (cigocc.fusion: "
                f"{getattr(cfg, 'cigocc', None) and cfg.cigocc.fusion!r})"
            )
        multi = [m for m in method.modules() if isinstance(m, MultiScaleFusion)]
        scales = [s for m in multi for s in m.scales] if multi else [None] * len(fusions)
        ds = build_dataset(cfg, args.data, args.split)
        idx = spread_indices(len(ds), args.max_frames)
        lengths: dict[int, list[torch.Tensor]] = {i: [] for i in range(len(fusions))}
        zero = {"on": False}

        def hook(i: int):
            def f(_m, _inp, out):
                # offsets (B, 2*k*k, h, w) as (dy, dx) pairs per kernel tap
                o = out.detach().float()
                lengths[i].append(o.view(o.shape[0], -1, 2, *o.shape[-2:]).norm(dim=2).flatten())
                return out * 0 if zero["on"] else out

            return f

        handles = [fu.offset.register_forward_hook(hook(i)) for i, fu in enumerate(fusions)]
        scores = {}
        for mode in ("trained", "zeroed"):
            zero["on"] = mode == "zeroed"
            metric = SSCMetric()
            for i in idx:
                s = ds[i]
                pred = predict_labels(method, collate([s]), dev)
                metric.update(pred, s.occupancy[None], ~s.mask_camera.bool()[None])
            sc = metric.compute()
            scores[mode] = {k: float(sc[k]) for k in ("ssc_miou", "completion_iou", "precision", "recall")}
            if mode == "trained":
                stats = []
                for i, fu in enumerate(fusions):
                    v = torch.cat(lengths[i])
                    q = torch.quantile(
                        v[torch.randperm(len(v), generator=torch.Generator().manual_seed(0))[:1_000_000]],
                        torch.tensor([0.5, 0.95, 0.99]),
                    )
                    s_ = scales[i]
                    stats.append(
                        {
                            "scale": s_,
                            "mean": float(v.mean()),
                            "p50": float(q[0]),
                            "p95": float(q[1]),
                            "p99": float(q[2]),
                            "max": float(v.max()),
                            "over_1px": float((v > 1).float().mean() * 100),
                        }
                    )
        for h in handles:
            h.remove()
        results.append(
            {"run": str(folder), "name": Path(run).name, "frames": len(idx), "offsets": stats, "scores": scores}
        )

    print(
        "| run | scale | offset length, px of the fused map: mean / p50 / p95 / p99 / max | taps over 1 px (%) "
        "| SSC mIoU / completion IoU / precision / recall, offsets as trained | the same, offsets zeroed |"
    )
    print("|---|---|---|---|---|---|")
    for r in results:
        t, z = r["scores"]["trained"], r["scores"]["zeroed"]
        for j, st in enumerate(r["offsets"]):
            cells = [
                r["name"] if j == 0 else "",
                f"{st['scale']}",
                " / ".join(f"{st[k]:.3f}" for k in ("mean", "p50", "p95", "p99", "max")),
                f"{st['over_1px']:.2f}",
            ]
            cells += [
                " / ".join(f"{d[k]:.2f}" for k in ("ssc_miou", "completion_iou", "precision", "recall"))
                if j == 0
                else ""
                for d in (t, z)
            ]
            print("| " + " | ".join(cells) + " |")
    if args.json:
        write_text_atomic(args.json, json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
