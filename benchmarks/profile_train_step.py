"""Which operators a training step spends its time in, by torch.profiler, one process.

Runs ``--steps`` steps of a preset's own ``training_step`` (forward, losses, backward, AdamW) on
frames of a dataset after ``--warmup`` untimed ones, and prints the operators with the largest
self CPU time (their share of the step, calls, ms per step), then the step's total. Emulate an
AVX2-only CPU on a newer one with ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`` and
``--set optim.amp=none`` (no native bf16 there: the engine trains in float32).

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/profile_train_step.py \\
        --data WORLD --preset synth-abl --threads 1 --set optim.amp=none
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from torch.profiler import ProfilerActivity, profile

from occkit.engine.data import train_batches
from occkit.engine.evaluate import autocast, resolve_amp
from occkit.experiment import build_dataset, build_method, load_experiment, resolve_auto_class_counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="Occ3D-layout dataset (e.g. an ablation's world stage)")
    ap.add_argument("--preset", default="synth-abl", help="preset name or YAML path")
    ap.add_argument("--steps", type=int, default=5, help="profiled steps")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--top", type=int, default=15, help="operators listed")
    ap.add_argument(
        "--by-shape", action="store_true", help="list operators by their input shapes too (2D from 3D convolutions)"
    )
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides of the preset")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_experiment(args.preset, args.set)
    train_set = build_dataset(cfg, args.data, "train", train=True)
    cfg = resolve_auto_class_counts(cfg, train_set)
    device = torch.device("cpu")
    amp = resolve_amp(device, cfg.optim.amp, cfg.optim.cpu_bf16)
    torch.manual_seed(0)
    method = build_method(cfg).to(device).train()
    opt = torch.optim.AdamW(method.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    batches = train_batches(train_set, cfg.data.batch_size, 0, 0, 0, 1, 0)

    def step() -> None:
        batch = next(batches).to(device)
        with autocast(device, amp):
            losses = method.training_step(batch)
        loss = sum(losses.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=args.by_shape) as prof:
        t0 = time.perf_counter()
        for _ in range(args.steps):
            step()
        wall = (time.perf_counter() - t0) / args.steps
    rows = sorted(
        prof.key_averages(group_by_input_shape=args.by_shape), key=lambda e: e.self_cpu_time_total, reverse=True
    )
    total = sum(e.self_cpu_time_total for e in rows)
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "default"), os.environ.get("ATEN_CPU_CAPABILITY", "default")
    print(
        f"{args.preset} {' '.join(args.set)}: {wall:.2f} s per step (wall, profiled), amp {amp}, {args.threads} "
        f"thread(s), oneDNN ISA {isa[0]}, ATen {isa[1]}, torch {torch.__version__}"
    )
    print("| operator | share of self CPU | calls per step | ms per step |")
    print("|---|---:|---:|---:|")
    for e in rows[: args.top]:
        shape = f" {e.input_shapes[:2]}" if args.by_shape else ""
        print(
            f"| `{e.key}`{shape} | {100 * e.self_cpu_time_total / total:.1f} % | {e.count / args.steps:.0f} | "
            f"{e.self_cpu_time_total / 1000 / args.steps:.0f} |"
        )


if __name__ == "__main__":
    main()
