"""Time per frame of a preset's camera network in eager PyTorch and in onnxruntime, side by side.

The preset's network (random weights: they do not change the speed) is exported as ``occkit
export`` does it (:mod:`occkit.export.onnx`: logits and labels, float32, batch 1) by each exporter
asked for, then run on the same random frames of a plausible rig (the preset's cameras and input
size): one warm-up run each, then ``--runs`` runs of each, alternated, the median. The parity
figures (largest logit difference, label agreement) come with it.

    python benchmarks/bench_export.py --threads 1                       # synth-abl, both exporters
    python benchmarks/bench_export.py --preset synth-cpu --exporters dynamo --threads 2
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="synth-abl", help="preset whose network is exported (default synth-abl)")
    ap.add_argument(
        "--exporters", default="dynamo,torchscript", help="comma list of dynamo, torchscript (default both)"
    )
    ap.add_argument("--frames", type=int, default=2, help="random frames, run in turn (default 2)")
    ap.add_argument("--runs", type=int, default=5, help="timed runs of each runtime after a warm-up (default 5)")
    ap.add_argument("--threads", type=int, default=1, help="PyTorch and onnxruntime intra-op threads (default 1)")
    args = ap.parse_args()

    import onnxruntime
    import torch

    torch.set_num_threads(args.threads)
    from occkit.experiment import build_method, load_experiment
    from occkit.export.onnx import OccPredictor, check_parity, export_onnx, random_frames

    cfg = load_experiment(args.preset)
    torch.manual_seed(0)
    method = build_method(cfg).eval()
    pred = OccPredictor(method, cfg.method).eval()
    hw = tuple(cfg.data.image_aug.out_hw)
    frames = random_frames(args.frames, tuple(cfg.data.cameras), hw, seed=0)
    ex = frames[0]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent
        ).stdout.strip()
    except OSError:
        commit = "?"
    print(
        f"preset {args.preset} ({cfg.method}, {cfg.model.backbone}, {len(cfg.data.cameras)} x {hw[0]}x{hw[1]}, "
        f"grid {tuple(pred.net.output_grid.shape)}, {cfg.model.num_classes} classes), random weights, float32, "
        f"batch 1, {args.threads} thread(s); torch {torch.__version__}, onnxruntime {onnxruntime.__version__}; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; "
        f"commit {commit}"
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in [e.strip() for e in args.exporters.split(",") if e.strip()]:
            path = Path(tmp) / f"{name}.onnx"
            t = time.perf_counter()
            res = export_onnx(pred, (ex.images, ex.intrinsics, ex.T_ego_from_cam), path, exporter=name)
            export_s = time.perf_counter() - t
            rep = check_parity(
                path, pred, method, frames, threads=args.threads, runs=args.runs, providers=["CPUExecutionProvider"]
            )
            r = rep["providers"]["CPUExecutionProvider"]
            rows.append((name, res.opset, res.bytes / 2**20, export_s, r))
    print(
        f"{'exporter':<12} {'opset':>5} {'MiB':>6} {'export s':>9} {'max |logit diff|':>17} {'labels agree':>13} "
        f"{'PyTorch ms/frame':>17} {'onnxruntime ms/frame':>21} {'speed-up':>9}"
    )
    for name, opset, mib, export_s, r in rows:
        print(
            f"{name:<12} {opset:>5} {mib:>6.1f} {export_s:>9.1f} {r['max_abs_logit_diff']:>17.3g} "
            f"{100 * r['label_agreement']:>12.3f}% "
            f"{r['ms_per_frame_torch']:>17.1f} {r['ms_per_frame_onnxruntime']:>21.1f} "
            f"{r['ms_per_frame_torch'] / r['ms_per_frame_onnxruntime']:>8.2f}x"
        )
    print(
        f"(median of {args.runs} runs after a warm-up, over {args.frames} random frames; PyTorch timed in the same "
        "loop, alternating with onnxruntime)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
