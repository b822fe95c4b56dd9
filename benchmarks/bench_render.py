"""Volume rendering speed and memory: depth + semantics through a 200x200x16 grid.

Renders ``--rays`` random camera rays of a six-camera rig (1.6 m above the ground) through an
Occ3D-sized grid of occupancy logits (18 classes: a ground layer, random boxes, free elsewhere),
``--samples`` uniform samples per ray inside the grid box, trilinear lookups of the density
(``-log p(free) / voxel``) and the 17 class probabilities, and compares side by side, in one run:

- ``dense``: the straightforward reference: all R x S sample points in ONE ``grid_sample`` call,
  ``torch.cumprod`` transmittance, no chunking, no early termination;
- ``occkit``: :func:`occkit.rendering.volrend.render_rays` chunked over rays (``--chunk``); the
  forward pass also goes ``--block`` samples at a time with early termination (transmittance
  below ``--stop``); forward + backward uses ray chunks only (each sample block's lookups would
  back-propagate into a full-size volume gradient of its own);
- ``occkit-ckpt``: forward + backward with ``checkpoint=True`` (a chunk's graph is recomputed
  during backward instead of kept: memory bounded by the chunk, not the number of rays).

For each: rays per second for the forward pass (no gradients) and for forward + backward (to the
logits), and the peak memory of each phase (CUDA: ``max_memory_allocated``; CPU: peak RSS
growth of a fresh process per case and phase, so the figures include allocator slack and the
full-grid softmax every case pays). Depth and classes are checked against ``dense``.

    python benchmarks/bench_render.py                   # CPU, 16384 rays, 64 samples
    python benchmarks/bench_render.py --device cuda --rays 262144
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from occkit.geometry.grid import occ3d_grid
from occkit.geometry.transforms import make_transform
from occkit.labels import OCC3D_FREE
from occkit.rendering.rays import camera_rays
from occkit.rendering.sampling import ray_box, uniform_samples
from occkit.rendering.volrend import density_from_logits, grid_field, render_rays, semantic_probs_from_logits

YAWS_DEG = (0, -55, 55, 180, 110, -110)


def scene_logits(device: torch.device, seed: int = 0) -> torch.Tensor:
    """``(18, 200, 200, 16)`` logits: ground layer (z index 2) and 300 random boxes occupied."""
    g = torch.Generator().manual_seed(seed)
    X, Y, Z = occ3d_grid().shape
    occ = torch.zeros(X, Y, Z, dtype=torch.bool)
    occ[:, :, :3] = True
    for _ in range(300):
        x, y = torch.randint(0, X - 10, (2,), generator=g).tolist()
        sx, sy, sz = torch.randint(2, 10, (3,), generator=g).tolist()
        if abs(x + sx / 2 - X / 2) < 8 and abs(y + sy / 2 - Y / 2) < 8:
            continue  # keep the ego's surroundings free
        occ[x : x + sx, y : y + sy, 3 : 3 + sz] = True
    logits = torch.randn(18, X, Y, Z, generator=g)
    logits[17] = torch.where(occ, torch.tensor(-4.0), torch.tensor(6.0))
    return logits.to(device)


def rig_rays(n: int, device: torch.device, seed: int = 0):
    """``n`` random rays of six 96x256 cameras at 1.6 m height."""
    H, W = 96, 256
    K = torch.tensor([[W * 0.5, 0, W / 2], [0, W * 0.5, H / 2], [0, 0, 1.0]]).expand(6, 3, 3)
    Ts = []
    for yaw in YAWS_DEG:
        a = math.radians(yaw)
        R = torch.tensor([[math.sin(a), 0, math.cos(a)], [-math.cos(a), 0, math.sin(a)], [0, -1.0, 0]])
        Ts.append(make_transform(R, torch.tensor([0.0, 0.0, 1.6])))
    g = torch.Generator().manual_seed(seed)
    rays = camera_rays(K.contiguous(), torch.stack(Ts), H, W, num_random=n, generator=g)
    return rays.to(device)


def dense_render(logits: torch.Tensor, origins: torch.Tensor, dirs: torch.Tensor, num_samples: int):
    """Reference: every sample point in one grid_sample, cumprod transmittance."""
    grid = occ3d_grid()
    near, far = ray_box(origins, dirs, grid)
    s = uniform_samples(near, far, num_samples=num_samples)
    sigma = density_from_logits(logits, voxel_size=0.4, dim=0, free=OCC3D_FREE)  # (X, Y, Z)
    probs = semantic_probs_from_logits(logits, dim=0, free=OCC3D_FREE)  # (17, X, Y, Z)
    vol = torch.cat([sigma[None], probs], 0)[None]  # (1, 18, X, Y, Z)
    pts = origins[:, None] + dirs[:, None] * s.t[..., None]  # (R, S, 3)
    lo = torch.tensor(grid.range_min, device=pts.device)
    hi = torch.tensor(grid.range_max, device=pts.device)
    gpts = ((pts - lo) / (hi - lo) * 2 - 1).flip(-1)[None, None]  # (1, 1, R, S, 3) as (z, y, x)
    out = F.grid_sample(vol, gpts, mode="bilinear", padding_mode="border", align_corners=False)[0, :, 0]  # (18, R, S)
    alpha = 1 - torch.exp(-out[0] * s.deltas)  # (R, S)
    T = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha[:, :-1]], 1), 1)
    w = T * alpha
    depth = (w * s.t).sum(1)
    sem = (w[None] * out[1:]).sum(2).t()  # (R, 17)
    return depth, sem


def occkit_render(logits, origins, dirs, num_samples, chunk, block, stop, checkpoint=False):
    sigma = density_from_logits(logits, voxel_size=0.4, dim=0, free=OCC3D_FREE)
    probs = semantic_probs_from_logits(logits, dim=0, free=OCC3D_FREE)
    field = grid_field(sigma, occ3d_grid(), probs, mode="trilinear")
    r = render_rays(
        field,
        origins,
        dirs,
        occ3d_grid(),
        num_samples=num_samples,
        chunk=chunk,
        block=block,
        stop_transmittance=stop,
        checkpoint=checkpoint,
    )
    return r.depth, r.values


def run_case(args, case: str, phase: str) -> dict:
    device = torch.device(args.device)
    logits = scene_logits(device)
    rays = rig_rays(args.rays, device)
    o, d = rays.origins, rays.dirs
    grad = phase == "fwdbwd"

    def fn(lg):
        if case == "dense":
            return dense_render(lg, o, d, args.samples)
        if grad:
            return occkit_render(lg, o, d, args.samples, args.chunk, None, None, checkpoint=case == "occkit-ckpt")
        return occkit_render(lg, o, d, args.samples, args.chunk, args.block, args.stop)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base_cuda = torch.cuda.memory_allocated()
    times = []
    for i in range(args.repeats + 1):
        lg = logits.clone().requires_grad_(grad)
        sync()
        t = time.perf_counter()
        with torch.set_grad_enabled(grad):
            depth, sem = fn(lg)
            if grad:
                (depth.sum() + sem.sum()).backward()
        sync()
        if i:
            times.append(time.perf_counter() - t)
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated() - base_cuda) / 2**20
    else:
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024  # KiB -> MiB
    return {
        "case": case,
        "phase": phase,
        "seconds": sorted(times)[len(times) // 2],
        "peak_mib": peak,
        "depth": depth.detach().cpu().tolist(),
        "sem": sem.detach().argmax(-1).cpu().tolist(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rays", type=int, default=16384)
    ap.add_argument("--samples", type=int, default=64, help="uniform samples per ray inside the grid box")
    ap.add_argument("--chunk", type=int, default=4096)
    ap.add_argument("--block", type=int, default=16)
    ap.add_argument("--stop", type=float, default=1e-3, help="early termination transmittance")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    ap.add_argument("--case", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.case:
        print(json.dumps(run_case(args, args.case, args.phase)))
        return
    print(
        f"bench_render: {args.rays} rays, {args.samples} samples/ray, 200x200x16 grid, 18 classes, device "
        f"{args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
        f"{platform.processor() or platform.machine()}"
    )
    res: dict[tuple[str, str], dict] = {}
    for case in ("dense", "occkit", "occkit-ckpt"):
        for phase in ("fwd", "fwdbwd"):
            if case == "occkit-ckpt" and phase == "fwd":
                continue  # same forward as occkit
            cmd = [sys.executable, __file__, "--case", case, "--phase", phase] + sys.argv[1:]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            res[case, phase] = json.loads(out.strip().splitlines()[-1])
    ref = res["dense", "fwd"]
    print(
        "\n| implementation | phase | rays/s | peak memory (MiB) | max depth diff vs dense (m) | class agreement vs "
        "dense |"
    )
    print("|---|---|---:|---:|---:|---:|")
    for (case, phase), r in res.items():
        dd = max(abs(a - b) for a, b in zip(r["depth"], ref["depth"]))
        agree = sum(a == b for a, b in zip(r["sem"], ref["sem"])) / len(ref["sem"])
        name = {"fwd": "forward", "fwdbwd": "forward+backward"}[phase]
        print(
            f"| {case} | {name} | {args.rays / r['seconds']:,.0f} | {r['peak_mib']:.0f} | {dd:.4f} | "
            f"{100 * agree:.1f}% |"
        )
    print(
        f"\nmedian of {args.repeats} runs after one warm-up; chunk {args.chunk} rays; forward block {args.block} "
        f"samples, stop at T < {args.stop}"
    )


if __name__ == "__main__":
    main()
