"""Where the time of a real training step goes: data, forward + losses, backward, optimiser.

Unlike ``bench_occnet.py`` (a random batch), this runs the method's own ``training_step`` on
frames of a dataset through the engine's batch iterator, with the preset's augmentation, class
weights (counted from the split), LiDAR and 2D targets, and ``data.workers`` loader processes
(``--workers`` overrides it). It prints the mean time per phase over the timed steps, so two loader
settings or two code versions can be compared on the same machine.

    python benchmarks/bench_train_step.py --data runs/synth20x20_192 --workers 0 1
    python benchmarks/bench_train_step.py --data runs/synth20x20_192 --set model.feature_stride=16
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from occkit.engine.data import train_batches
from occkit.engine.evaluate import autocast, resolve_amp
from occkit.experiment import build_dataset, build_method, load_experiment, resolve_auto_class_counts


def time_steps(cfg, train_set, workers: int, steps: int, warmup: int) -> tuple[dict[str, float], list[float]]:
    """Mean seconds per phase over ``steps`` steps after ``warmup`` untimed ones, and every step's
    total loss (the same seed, so two versions of a step that compute the same numbers print the
    same losses)."""
    device = torch.device("cpu")
    amp = resolve_amp(device, cfg.optim.amp, cfg.optim.cpu_bf16)
    torch.manual_seed(0)
    method = build_method(cfg).to(device)
    method.train()
    opt = torch.optim.AdamW(method.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    batches = train_batches(train_set, cfg.data.batch_size, 0, 0, 0, 1, workers)
    sums = {"data": 0.0, "forward+losses": 0.0, "backward": 0.0, "optimiser": 0.0}
    losses: list[float] = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        batch = next(batches).to(device)
        t1 = time.perf_counter()
        with autocast(device, amp):
            loss = sum(method.training_step(batch).values())
        t2 = time.perf_counter()
        losses.append(float(loss.detach()))
        loss.backward()
        t3 = time.perf_counter()
        nn.utils.clip_grad_norm_(method.parameters(), cfg.optim.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        t4 = time.perf_counter()
        if i >= warmup:
            for k, v in zip(sums, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                sums[k] += v / steps
    return sums, losses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="Occ3D-layout dataset (e.g. from occkit synth)")
    ap.add_argument("--preset", default="synth-cpu", help="preset name or YAML path")
    ap.add_argument("--split", default="train")
    ap.add_argument(
        "--workers",
        type=int,
        nargs="*",
        default=None,
        help="loader processes to compare (default: the preset's data.workers)",
    )
    ap.add_argument("--steps", type=int, default=40, help="timed steps")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides of the preset")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_experiment(args.preset, args.set)
    train_set = build_dataset(cfg, args.data, args.split, train=True)
    cfg = resolve_auto_class_counts(cfg, train_set)
    hw = cfg.data.image_aug.out_hw
    print(
        f"preset {args.preset} {' '.join(args.set)}: input {hw[0]}x{hw[1]}, stride {cfg.model.feature_stride}, "
        f"{len(train_set)} frames of {args.data}, torch threads {torch.get_num_threads()}, "
        f"{args.steps} timed steps after {args.warmup}"
    )
    for workers in args.workers if args.workers else [cfg.data.workers]:
        t, losses = time_steps(cfg, train_set, workers, args.steps, args.warmup)
        phases = ", ".join(f"{k} {v:.3f}" for k, v in t.items())
        print(
            f"workers {workers}: {sum(t.values()):.3f} s per step ({phases}); loss per step "
            f"{' '.join(f'{x:.6f}' for x in losses)}"
        )


if __name__ == "__main__":
    main()
