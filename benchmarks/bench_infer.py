"""Inference speed and peak memory of the presets: frames per second at batch 1 (6 cameras).

Each preset runs in its own subprocess so that its peak memory is its own. On CPU the peak is
the process's maximum resident set size (``getrusage``), reported as the increase over the
resident size after the model and the input were built (the working memory of inference) and as
the total. On CUDA: ``torch.cuda.max_memory_allocated`` and FPS under bf16 (or fp16) autocast.
Weights are random (speed does not depend on them).

    python benchmarks/bench_infer.py                                  # both presets, CPU
    python benchmarks/bench_infer.py --presets occ3d-r50 --device cuda --amp bf16
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time

import torch


def random_batch(cfg, device: torch.device):
    """One frame: 6 cameras around the ego vehicle at the preset's input size, random pixels."""
    from occkit.data.sample import Batch
    from occkit.geometry.transforms import make_transform, rotation_z

    H, W = cfg.data.image_aug.out_hw
    N = len(cfg.data.cameras)
    R0 = torch.tensor([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]])  # OpenCV camera looking along ego +x
    R = rotation_z(torch.arange(N) * (2 * math.pi / N)).float() @ R0
    T = make_transform(R, torch.tensor([0.0, 0.0, 1.6]).expand(N, 3))[None]
    f = 0.55 * W
    K = torch.tensor([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]]).expand(1, N, 3, 3).clone()
    return Batch(
        tokens=["bench"],
        scenes=["bench"],
        timestamps=[0],
        cam_names=tuple(cfg.data.cameras),
        images=torch.rand(1, N, 3, H, W),
        intrinsics=K,
        T_ego_from_cam=T.clone(),
        T_global_from_ego=torch.eye(4, dtype=torch.float64)[None],
    ).to(device)


def rss_mib() -> float:
    """Current resident set size (Linux /proc), MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def one(preset: str, device_name: str, amp: str, runs: int, threads: int) -> dict:
    from occkit.engine.evaluate import autocast, resolve_amp
    from occkit.experiment import build_method, load_experiment, num_parameters

    if threads > 0:
        torch.set_num_threads(threads)
    device = torch.device(device_name)
    cfg = load_experiment(preset)
    torch.manual_seed(0)
    method = build_method(cfg).to(device).eval()
    batch = random_batch(cfg, device)
    if amp == "preset":  # as training and `occkit predict` resolve the preset's optim section
        amp = resolve_amp(device, cfg.optim.amp, cfg.optim.cpu_bf16)
    else:  # CPU: bf16 only, and only where the CPU has native bf16
        amp = resolve_amp(device, amp, cpu_bf16=True)

    def step() -> torch.Tensor:
        with torch.no_grad(), autocast(device, amp):
            return method.predict(batch).argmax(1)

    base_rss = rss_mib()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base_gpu = torch.cuda.memory_allocated(device)
    for _ in range(2):  # warm-up
        step()
    times = []
    for _ in range(runs):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    med = statistics.median(times)
    out = {
        "preset": preset,
        "device": str(device),
        "amp": amp,
        "threads": torch.get_num_threads(),
        "input": list(cfg.data.image_aug.out_hw),
        "cameras": len(cfg.data.cameras),
        "params_M": num_parameters(method) / 1e6,
        "median_s": med,
        "min_s": min(times),
        "fps": 1.0 / med,
        "runs": runs,
        "peak_rss_MiB": peak_rss,
        "inference_rss_increase_MiB": peak_rss - base_rss,
    }
    if device.type == "cuda":
        out["peak_gpu_MiB"] = torch.cuda.max_memory_allocated(device) / 2**20
        out["inference_gpu_increase_MiB"] = (torch.cuda.max_memory_allocated(device) - base_gpu) / 2**20
        out["gpu"] = torch.cuda.get_device_name(device)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["synth-cpu", "occ3d-r50"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--amp",
        default="preset",
        choices=("preset", "bf16", "fp16", "none"),
        help="autocast: the preset's optim.amp / optim.cpu_bf16 (default) or this one "
        "(on CPU bf16 only, and only with native bf16)",
    )
    ap.add_argument("--runs", type=int, default=5, help="timed runs after 2 warm-up runs")
    ap.add_argument("--threads", type=int, default=0, help="torch threads on CPU (0 = default)")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.presets[0], args.device, args.amp, args.runs, args.threads)))
        return
    print(
        "| preset | device | input | params (M) | s / frame (median) | FPS | peak RSS (MiB) | inference RSS increase "
        "(MiB) | peak GPU (MiB) |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for p in args.presets:
        cmd = [
            sys.executable,
            __file__,
            "--one",
            "--presets",
            p,
            "--device",
            args.device,
            "--amp",
            args.amp,
            "--runs",
            str(args.runs),
            "--threads",
            str(args.threads),
        ]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            print(f"| {p} | failed: {res.stderr.strip().splitlines()[-1] if res.stderr.strip() else res.returncode} |")
            continue
        r = json.loads(res.stdout.strip().splitlines()[-1])
        dev = r["device"] + (f" ({r['gpu']}, {r['amp']})" if "gpu" in r else f" ({r['threads']} threads, {r['amp']})")
        print(
            f"| {p} | {dev} | {r['cameras']}x{r['input'][0]}x{r['input'][1]} | {r['params_M']:.1f} | "
            f"{r['median_s']:.3f} | {r['fps']:.2f} | {r['peak_rss_MiB']:.0f} | {r['inference_rss_increase_MiB']:.0f} | "
            f"{r.get('peak_gpu_MiB', float('nan')):.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
