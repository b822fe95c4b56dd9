"""Step time and memory of each RadOcc term, side by side in one run.

For one training frame of ``--data`` and the ``radocc`` preset with ``--teacher``, times a
training step (forward, every loss, backward) with each distillation term alone — the student's
own losses only; + the teacher's forward pass; + 3D feature L1; + 3D logit KL; + rendered depth
consistency; + rendered semantic consistency (raw-logit KL; affinity; renormalised KL); + both
rendered terms — as the median of ``--reps`` steps after ``--warmup``. Memory: the bytes autograd
saves for the backward pass (``saved_tensors_hooks``, exact and device-independent: the
activation memory a term adds), and on CUDA the peak allocated memory too.

    OMP_NUM_THREADS=1 python benchmarks/bench_radocc.py --data runs/abl_world \\
        --teacher runs/radocc_teacher_lidar --priors runs/abl_world_priors_typical
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from occkit.data.sample import collate
from occkit.experiment import build_dataset, build_method, load_experiment

OFF = {"depth_weight": 0.0, "semantic_weight": 0.0, "feature_weight": 0.0, "logit_weight": 0.0}
ROWS = [
    ("student's own losses", {}),
    ("+ 3D feature L1", {"feature_weight": 0.1}),
    ("+ 3D logit KL", {"logit_weight": 0.1}),
    ("+ rendered depth (RDC)", {"depth_weight": 100.0}),
    ("+ rendered semantics, raw-logit KL (RSC, released)", {"semantic_weight": 10.0, "semantic_mode": "raw_kl"}),
    ("+ rendered semantics, affinity (paper's text)", {"semantic_weight": 10.0, "semantic_mode": "affinity"}),
    ("+ rendered semantics, renormalised KL", {"semantic_weight": 10.0, "semantic_mode": "kl"}),
    ("+ RDC + RSC (radocc preset)", {"depth_weight": 100.0, "semantic_weight": 10.0}),
]


def saved_bytes(fn) -> tuple[object, int]:
    total = 0

    def pack(t: torch.Tensor):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--priors", required=True, help="prior cache with segments")
    ap.add_argument("--config", default="radocc")
    ap.add_argument("--set", nargs="*", default=[])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    dev = torch.device(args.device)
    base = [f"radocc.teacher={args.teacher}", f"data.priors={args.priors}", "data.prior_kinds=[segments]", *args.set]
    cfg = load_experiment(args.config, base)
    ds = build_dataset(cfg, args.data, cfg.data.train_split, train=True)
    from occkit.experiment import resolve_auto_class_counts

    cfg = resolve_auto_class_counts(cfg, ds)
    torch.manual_seed(0)
    batch = collate([ds[0]]).to(dev)
    results = []
    print(
        f"{args.config} on {args.data}: 1 frame, {batch.images.shape[1]} cameras {tuple(batch.images.shape[-2:])}, "
        f"{cfg.radocc.num_rays} rays, step {cfg.radocc.sample_step} m; {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}"
    )
    print(
        "\n| term | step s (median) | vs student | saved for backward MB | CUDA peak MB | weighted losses (last step) |"
    )
    print("|---|---:|---:|---:|---:|---|")
    ref = None
    for name, kw in ROWS:
        c = load_experiment(args.config, base + [f"radocc.{k}={v}" for k, v in {**OFF, **kw}.items()])
        c.supervised = cfg.supervised  # resolved class counts
        method = build_method(c).to(dev).train()
        opt = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=1e-4)
        times, saved = [], 0
        for i in range(args.warmup + args.reps):
            if dev.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            torch.manual_seed(i)
            losses, saved = saved_bytes(lambda: method.training_step(batch))
            opt.zero_grad(set_to_none=True)
            sum(losses.values()).backward()
            opt.step()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
        peak = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else float("nan")
        med = statistics.median(times)
        ref = ref or med
        values = {k: round(float(v.detach()), 4) for k, v in losses.items()}
        results.append(
            {"term": name, "seconds": med, "saved_mb": saved / 2**20, "cuda_peak_mb": peak, "losses": values}
        )
        shown = ", ".join(f"{k[5:]} {v:.3g}" for k, v in values.items())
        print(f"| {name} | {med:.3f} | {med / ref:.2f}x | {saved / 2**20:.1f} | {peak:.0f} | {shown} |", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(
                {"rows": results, "config": args.config, "set": base, "threads": torch.get_num_threads()}, f, indent=1
            )


if __name__ == "__main__":
    main()
