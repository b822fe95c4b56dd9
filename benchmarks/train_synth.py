"""Train ``synth-cpu`` on a synthetic world for a wall-clock budget; report val mIoU and RayIoU
against training time.

Generates the world when ``--data`` holds none (default: 16 training + 4 validation scenes of 20
frames, 6 cameras at 96x256), trains with the cosine schedule following the share of the time
budget spent (``optim.schedule=time``, so it fits the budget on a machine of varying speed), trains
with the engine (validating every ``--eval-every`` minutes of training on ``--eval-frames`` frames
spread over the validation scenes, and at the end on all of them), and prints a table of (training
minutes, step, mIoU camera mask, geometry IoU, RayIoU). Validation time is not counted in the
training minutes.

    python benchmarks/train_synth.py --data runs/synth20x20 --out runs/bench_train --minutes 30
    python benchmarks/train_synth.py --data runs/synth_small --scenes 3 --frames 4 --minutes 1   # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from occkit.engine.data import eval_batches
from occkit.engine.evaluate import evaluate, resolve_amp
from occkit.engine.train import train
from occkit.experiment import build_dataset, load_checkpoint_method, load_experiment
from occkit.worlds.driving import SynthConfig, generate_dataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="synthetic world folder (generated when empty)")
    ap.add_argument("--out", required=True, help="run folder")
    ap.add_argument("--minutes", type=float, default=30.0, help="training budget (minutes of training steps)")
    ap.add_argument("--eval-every", type=float, default=7.5, help="validate every this many training minutes")
    ap.add_argument("--eval-frames", type=int, default=20, help="frames per intermediate validation (0 = all)")
    ap.add_argument("--final-frames", type=int, default=0, help="frames of the final validation (0 = all)")
    ap.add_argument("--scenes", type=int, default=20, help="scenes to generate (the last 20%% are validation)")
    ap.add_argument("--frames", type=int, default=20, help="frames per scene")
    ap.add_argument("--image-size", type=int, nargs=2, default=(96, 256), metavar=("H", "W"))
    ap.add_argument("--synth-workers", type=int, default=2)
    ap.add_argument("--config", default="synth-cpu")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()

    data = Path(args.data)
    if not (data / "annotations.json").is_file():
        t0 = time.perf_counter()
        cfg_s = SynthConfig(
            scenes=args.scenes, frames=args.frames, image_size=tuple(args.image_size), workers=args.synth_workers
        )
        generate_dataset(data, cfg_s, progress=True)
        print(
            f"generated {args.scenes} x {args.frames} frames in {(time.perf_counter() - t0) / 60:.1f} min", flush=True
        )
    cfg = load_experiment(args.config, args.set)
    train_set = build_dataset(cfg, data, cfg.data.train_split, train=True)
    val_set = build_dataset(cfg, data, cfg.data.val_split)
    cfg.optim.schedule = "time"  # the cosine fits the budget whatever the machine's (varying) speed
    cfg.optim.max_steps = 10**6
    cfg.train.max_minutes = args.minutes
    cfg.train.val_every = 0
    cfg.train.val_every_minutes = args.eval_every
    cfg.train.val_max_frames = args.eval_frames
    cfg.train.val_metrics = ("miou", "rayiou")
    cfg.train.ckpt_every = 500
    print(
        f"{len(train_set)} training frames, {len(val_set)} validation frames; {args.minutes:g} min budget; "
        f"torch threads {torch.get_num_threads()}, "
        f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}",
        flush=True,
    )
    t0 = time.perf_counter()
    result = train(cfg, args.out, train_set, val_set)
    wall = time.perf_counter() - t0
    # the intermediate validations used a subset: evaluate the final weights on --final-frames (all)
    method, cfg, ckpt, device = load_checkpoint_method(result.checkpoint, cfg.train.device)
    t1 = time.perf_counter()
    amp = resolve_amp(device, cfg.optim.amp, cfg.optim.cpu_bf16)  # as the run's validations
    final = evaluate(
        method,
        eval_batches(val_set, 1, max_frames=args.final_frames),
        device,
        amp,
        mask="camera",
        num_classes=cfg.model.num_classes,
        metrics=("miou", "rayiou"),
        dataset=val_set,
        progress=True,
    )
    eval_s = time.perf_counter() - t1
    rows = [
        (v["train_minutes"], v["step"], v["miou"], v["geometry_iou"], v.get("rayiou", float("nan")), v["frames"])
        for v in result.validations
    ]
    rows.append(
        (
            result.train_seconds / 60,
            result.step,
            final["miou"],
            final["geometry_iou"],
            final.get("rayiou", float("nan")),
            final["frames"],
        )
    )
    print(
        f"\ntraining: {result.step} steps, {result.train_seconds / 60:.1f} min of steps, {wall / 60:.1f} min wall "
        f"with validation; final evaluation on {final['frames']} frames took {eval_s / 60:.1f} min"
    )
    print("\n| train min | step | mIoU (camera) | geometry IoU | RayIoU | val frames |")
    print("|---:|---:|---:|---:|---:|---:|")
    for m, s, mi, g, r, n in rows:
        print(f"| {m:.1f} | {s} | {mi:.2f} | {g:.2f} | {r:.2f} | {n} |")
    print("\nper-class IoU (final, camera mask): " + ", ".join(f"{k} {v:.1f}" for k, v in final["iou"].items()))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    with open(Path(args.out) / "bench_train_synth.json", "w", encoding="utf-8") as f:
        json.dump(
            {
                "rows": rows,
                "final": final,
                "steps": result.step,
                "wall_minutes": wall / 60,
            },
            f,
            indent=1,
        )


if __name__ == "__main__":
    main()
