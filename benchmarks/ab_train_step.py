"""Two settings of a preset's training step, timed step by step alternately in one process.

On a machine shared with other jobs, runs of a setting one after the other see different load;
here the two builds (``--a`` and ``--b``: ``--set`` overrides of the same preset, same seed, same
frames) take turns a step at a time, so each stretch of load falls on both alike, and a 2048x2048
product in bf16 and in float32 is timed before each pair (``bench_mfu.Interleaved``). Per setting:
the FLOPs of one step (``FlopCounterMode``), the mean and median seconds of the timed steps, the
step's FLOP rate over the products' (MFU), and the losses of every step (warm-up included), which
show how far the two settings' numerics part.

    python benchmarks/ab_train_step.py --preset synth-abl --data WORLD --threads 2 --steps 8 \\
        --a model.channels_last=false --b model.channels_last=true
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the occkit command sets it (occkit.cli)

import torch
from bench_mfu import Interleaved
from preset_bench import load_preset, training_step_fn
from torch.utils.flop_counter import FlopCounterMode


def build(preset: str, data: Path, sets: list[str]):
    """A step function of the preset with ``sets`` (as preset_bench.measure_step runs it) and its losses list."""
    dev = torch.device("cpu")
    cfg, method, batches = load_preset(preset, data, sets, dev)
    inner, losses, amp, _ = training_step_fn(cfg, method, batches, dev)
    rng = [torch.get_rng_state()]  # each setting draws from its own generator state (Lovász's voxel subset), as alone

    def step(i: int) -> None:
        torch.set_rng_state(rng[0])
        inner(i)
        rng[0] = torch.get_rng_state()

    return step, losses, amp or "float32"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--a", nargs="*", default=[], metavar="KEY=VALUE", help="overrides of setting A")
    ap.add_argument("--b", nargs="*", default=[], metavar="KEY=VALUE", help="overrides of setting B")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=8, help="timed steps of each setting")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if not args.data.is_dir():
        ap.error(f"--data {args.data}: not a folder")
    torch.set_num_threads(args.threads)
    runs = {}
    for name, sets in (("a", args.a), ("b", args.b)):
        step, losses, amp = build(args.preset, args.data, list(sets))
        with FlopCounterMode(display=False) as fc:
            step(0)
        runs[name] = {
            "sets": list(sets),
            "step": step,
            "losses": losses,
            "amp": amp,
            "gflop": fc.get_total_flops() / 1e9,
            "times": [],
        }
    for i in range(1, args.warmup):
        for r in runs.values():
            r["step"](i)
    mm = Interleaved()
    load = [os.getloadavg()[0]]
    for i in range(args.steps):
        mm()
        order = ("a", "b") if i % 2 == 0 else ("b", "a")  # neither always runs first after the products
        for name in order:
            t0 = time.perf_counter()
            runs[name]["step"](args.warmup + i)
            runs[name]["times"].append(time.perf_counter() - t0)
        load.append(os.getloadavg()[0])
    rates = mm.rates()
    out = {
        "preset": args.preset,
        "threads": args.threads,
        "steps": args.steps,
        "warmup": args.warmup,
        "matmul_gflops_between": {k: round(v / 1e9, 1) for k, v in rates.items()},
        "loadavg_1min": [round(x, 1) for x in load],
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "settings": {},
    }
    for name, r in runs.items():
        mean = statistics.fmean(r["times"])
        rate = r["gflop"] * 1e9 / mean
        out["settings"][name] = {
            "sets": r["sets"],
            "amp": r["amp"],
            "gflop_per_step": round(r["gflop"], 2),
            "s_per_step": round(mean, 3),
            "s_median": round(statistics.median(r["times"]), 3),
            "times": [round(t, 3) for t in r["times"]],
            "mfu": {k: round(100 * rate / v, 1) for k, v in rates.items()},
            "losses": [round(x, 6) for x in r["losses"]],
        }
    text = json.dumps(out, indent=1)
    print(text)
    if args.json is not None:
        tmp = args.json.with_suffix(".tmp")
        tmp.write_text(text + "\n")
        tmp.replace(args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
