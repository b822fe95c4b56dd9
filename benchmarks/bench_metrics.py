"""Speed of the official metrics: Occ3D mIoU (ours vs. the official per-frame numpy code, side by
side in one run), against the machine's memory bandwidth, and RayIoU frames per second.

    python benchmarks/bench_metrics.py                 # 6019 frames of 200 x 200 x 16
    python benchmarks/bench_metrics.py --frames 600 --rayiou-frames 2 --threads 1

Frames are random arrays (the metric's speed does not depend on the content): a pool of
``--pool`` distinct frames (ground truth, prediction, camera mask; uint8) is cycled through, so
the data streams from memory rather than the caches once the pool is larger than the last-level
cache. Both implementations see the same frames and must give the same confusion matrix.

Bandwidth yardstick: a large numpy copy (reads + writes counted). Our mIoU reads three bytes per
voxel (gt, prediction, mask), so its "effective bandwidth" is 3 x voxels / seconds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from occkit.geometry.grid import occ3d_grid
from occkit.metrics.occ3d import Occ3DMetric
from occkit.metrics.rayiou import RayIoUMetric


def official_per_frame(preds: np.ndarray, gts: np.ndarray, masks: np.ndarray, order: np.ndarray, n: int = 18) -> np.ndarray:
    """The Occ3D challenge's per-frame loop, straightforwardly: mask-select, then bincount."""
    hist = np.zeros((n, n), dtype=np.int64)
    for i in order:
        m = masks[i]
        g = gts[i][m]
        p = preds[i][m]
        k = (g >= 0) & (g < n)
        hist += np.bincount(n * g[k].astype(int) + p[k], minlength=n * n).reshape(n, n)
    return hist


def memory_bandwidth(nbytes: int = 512 * 2**20, repeats: int = 5) -> float:
    """Best-of-``repeats`` bytes per second of ``np.copyto`` on ``nbytes`` (read + write)."""
    src = np.ones(nbytes, dtype=np.uint8)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t)
    return 2 * nbytes / best


def synthetic_scene(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    """A driving-like label volume: ground (11), walls along the sides (15), boxes (4), free (17)."""
    X, Y, Z = shape
    s = np.full(shape, 17, np.uint8)
    s[:, :, 0:2] = 11
    s[:, :8, :12] = 15
    s[:, -8:, :12] = 15
    for _ in range(40):
        x, y = rng.integers(10, X - 14), rng.integers(12, Y - 16)
        s[x : x + 11, y : y + 5, 2:6] = 4
    return s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=6019, help="frames evaluated (6019 = Occ3D-nuScenes val)")
    ap.add_argument("--pool", type=int, default=48, help="distinct random frames cycled through")
    ap.add_argument("--batch", type=int, default=16, help="frames per update of our metric")
    ap.add_argument("--rayiou-frames", type=int, default=4, help="frames for the RayIoU timing (8 origins each)")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: leave the default)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    shape = occ3d_grid().shape
    voxels = int(np.prod(shape))
    rng = np.random.default_rng(0)
    P = args.pool
    gts = rng.integers(0, 18, (P, *shape), dtype=np.uint8)
    preds = np.where(rng.random((P, *shape)) < 0.7, gts, rng.integers(0, 18, (P, *shape), dtype=np.uint8)).astype(np.uint8)
    masks = rng.random((P, *shape)) < 0.6
    order = np.arange(args.frames) % P
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {args.device}")
    print(f"frames {args.frames} of {shape} ({voxels} voxels), pool {P} ({3 * P * voxels / 2**20:.0f} MiB)")

    bw = memory_bandwidth()
    print(f"memory bandwidth (numpy copy, read+write): {bw / 1e9:.2f} GB/s")

    t = time.perf_counter()
    ref = official_per_frame(preds, gts, masks, order)
    t_ref = time.perf_counter() - t
    print(f"official per-frame numpy: {t_ref:.2f} s  ({args.frames / t_ref:.0f} frames/s)")

    dev = torch.device(args.device)
    g_t = torch.from_numpy(gts).to(dev)
    p_t = torch.from_numpy(preds).to(dev)
    m_t = torch.from_numpy(masks).to(dev)
    metric = Occ3DMetric(mask="camera", device=dev)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    done = 0
    while done < args.frames:
        start = done % P
        n = min(args.batch, args.frames - done, P - start)
        sl = slice(start, start + n)
        metric.update(p_t[sl], g_t[sl], mask_camera=m_t[sl])
        done += n
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t_ours = time.perf_counter() - t
    ok = np.array_equal(metric.hist.cpu().numpy(), ref)
    eff = 3 * voxels * args.frames / t_ours
    print(f"occkit Occ3DMetric:       {t_ours:.2f} s  ({args.frames / t_ours:.0f} frames/s), "
          f"speed-up x{t_ref / t_ours:.1f}, same matrix: {ok}")
    print(f"  effective read bandwidth {eff / 1e9:.2f} GB/s = {100 * eff / bw:.0f}% of the copy bandwidth")
    print(f"  mIoU {metric.compute()['miou']:.2f}")

    if args.rayiou_frames > 0:
        scenes = torch.from_numpy(np.stack([synthetic_scene(rng, shape) for _ in range(args.rayiou_frames)])).to(dev)
        shifted = torch.roll(scenes, 1, dims=1)
        origins = torch.tensor([[0.9 + 4 * k - 14, 0.3 * k, 1.84] for k in range(8)], dtype=torch.float64)
        ray = RayIoUMetric(device=dev)
        t = time.perf_counter()
        for i in range(args.rayiou_frames):
            ray.update(shifted[i : i + 1], scenes[i : i + 1], origins[None])
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t_ray = time.perf_counter() - t
        r = ray.compute()
        rays = 8 * 39 * 360
        print(f"RayIoU: {args.rayiou_frames} frames x {rays} rays (gt and prediction) in {t_ray:.2f} s = "
              f"{args.rayiou_frames / t_ray:.2f} frames/s  (RayIoU {r['rayiou']:.2f} for a 1-voxel shift)")


if __name__ == "__main__":
    main()
