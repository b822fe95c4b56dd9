"""Speed of the official metrics, each against its reference side by side in one run:
Occ3D mIoU (ours vs. the official per-frame numpy code) against the machine's memory
bandwidth, and RayIoU (ours vs. ``cast_rays_reference``, the straightforward torch walk).

    python benchmarks/bench_metrics.py --threads 1                 # 6019 frames of 200 x 200 x 16
    python benchmarks/bench_metrics.py --threads 1 --miou-data W --rayiou-frames 0   # + the world's frames
    python benchmarks/bench_metrics.py --frames 600 --rayiou-frames 8 --rayiou-ref-frames 2 --threads 1
    python benchmarks/bench_metrics.py --frames 0 --rayiou-data W --rayiou-frames 32 --threads 2
    # W: a world with LiDAR poses, e.g. occkit synth --out W --scenes 20 --frames 8 --seed 0 --image-size 96 256

mIoU references: the Occ3D challenge's per-frame code as it is (``official``), and that loop
cut to what the matrix needs (``lean``, the reference of figures recorded before 2026-11-23);
beside them occkit's former count (one histogram, before 2026-11-24) and ``Occ3DMetric`` as it
is. mIoU frames: random arrays (where the official code's boolean selection mispredicts its
branches, so it is slowest there), and with ``--miou-data W`` the frames of a world with their
own camera masks (driving scenes: long runs of free air and of masked-out voxels). A pool of ``--pool``
distinct frames (ground truth, prediction, camera mask; uint8) is cycled through, so the data
streams from memory rather than the caches once the pool is larger than the last-level cache.
All implementations see the same frames and must give the same confusion matrix.

Bandwidth yardstick: a large numpy copy (reads + writes counted). Our mIoU reads three bytes per
voxel (gt, prediction, mask), so its "effective bandwidth" is 3 x voxels / seconds.

RayIoU frames: ``--rayiou-data`` (an Occ3D-layout folder whose annotations carry the LiDAR poses,
as ``occkit synth`` writes them: each frame's own LiDAR origins, up to 8) or, without it,
driving-like volumes (ground, side walls, 40 boxes) seen from 8 fixed origins. The prediction is
the ground truth shifted one voxel along x. Both walks must give the same counts.

Times are wall clock and, beside them, the process's CPU time (on a machine shared with other
jobs the CPU time is the steadier figure; with 2 threads it adds both threads' time).
"""

from __future__ import annotations

import argparse
import os
import time

# as the occkit command does: torch's idle intra-op threads wait without spinning, so that they do
# not take the cores from the metrics' own threads (read by OpenMP when torch is imported)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

from occkit.geometry.grid import occ3d_grid
from occkit.labels import OCC3D_FREE
from occkit.metrics.occ3d import Occ3DMetric
from occkit.metrics.rayiou import RayIoUMetric, cast_rays_reference, lidar_ray_directions, rayiou_counts


def official_per_frame(
    preds: np.ndarray, gts: np.ndarray, masks: np.ndarray, order: np.ndarray, n: int = 18
) -> np.ndarray:
    """The Occ3D challenge's per-frame code (``Metric_mIoU.add_batch`` -> ``compute_mIoU`` ->
    ``hist_info``), operation for operation: mask-select gt and prediction; keep ``0 <= gt < n``;
    count the correct voxels; ``bincount(n * gt.astype(int) + pred.astype(int))`` into a fresh
    float64 matrix; that frame's per-class IoU and its nanmean (computed and discarded by the
    official code too); add the frame's matrix to the total."""
    hist = np.zeros((n, n))
    for i in order:
        m = masks[i]
        g = gts[i][m].flatten()
        p = preds[i][m].flatten()
        k = (g >= 0) & (g < n)
        _labeled = np.sum(k)
        _correct = np.sum(p[k] == g[k])
        frame = np.zeros((n, n))
        frame += np.bincount(n * g[k].astype(int) + p[k].astype(int), minlength=n * n).reshape(n, n)
        with np.errstate(divide="ignore", invalid="ignore"):
            ious = np.diag(frame) / (frame.sum(1) + frame.sum(0) - np.diag(frame))
            _miou = round(np.nanmean(ious) * 100, 2)
        hist += frame
    return hist.astype(np.int64)


def lean_per_frame(preds: np.ndarray, gts: np.ndarray, masks: np.ndarray, order: np.ndarray, n: int = 18) -> np.ndarray:
    """The official per-frame loop cut to what the matrix needs (the reference of the figures
    recorded before 2026-11-23): mask-select, then ``bincount(n * gt + pred)``."""
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


def read_bandwidth(nbytes: int = 512 * 2**20, repeats: int = 5) -> float:
    """Best-of-``repeats`` bytes per second of one pass that only reads ``nbytes`` (a count of
    non-zero 8-byte words: vectorised, so memory bound on one core)."""
    src = np.ones(nbytes, dtype=np.uint8).view(np.uint64)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        np.count_nonzero(src)
        best = min(best, time.perf_counter() - t)
    return nbytes / best


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


class Clock:
    """Wall and process CPU seconds of a block: ``with Clock() as c: ...; c.wall, c.cpu``."""

    def __enter__(self) -> Clock:
        self._w, self._c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self._w, time.process_time() - self._c


def former_confusion(g: np.ndarray, p: np.ndarray, m: np.ndarray, C: int = 18, piece: int = 1 << 18) -> torch.Tensor:
    """occkit's uint8 count before 2026-11-24, for the side-by-side: the same int16 keys in the same
    pieces, counted into one histogram (a run of one class pair makes each increment wait on the last)."""
    g, p, m = g.reshape(-1), p.reshape(-1), m.reshape(-1)
    W = 2 * C
    counts = torch.zeros(C * W, dtype=torch.int64)
    for s0 in range(0, g.shape[0], piece):
        sl = slice(s0, s0 + piece)
        key = np.empty(g[sl].shape[0], np.int16)
        np.multiply(g[sl], np.int16(W), out=key)
        col = np.logical_not(m[sl]).view(np.uint8)
        col *= np.uint8(C)
        col += p[sl]
        key += col
        counts += torch.bincount(torch.from_numpy(key), minlength=C * W)
    return counts.view(C, W)[:, :C]


def world_frames(data: str, pool: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``pool`` frames of an Occ3D-layout folder: ``(ground truth, camera mask)``, uint8 and bool."""
    from pathlib import Path

    files = sorted(Path(data).glob("gts/*/*/labels.npz"))[:pool]
    if not files:
        raise SystemExit(f"--miou-data {data}: no gts/<scene>/<token>/labels.npz in it")
    frames = [np.load(f) for f in files]
    return np.stack([z["semantics"] for z in frames]), np.stack([z["mask_camera"].astype(bool) for z in frames])


def miou_speed(
    args: argparse.Namespace,
    what: str,
    gts: np.ndarray,
    preds: np.ndarray,
    masks: np.ndarray,
    bandwidths: tuple[float, float],
    dev: torch.device,
) -> None:
    """Our Occ3D mIoU beside the references on ``args.frames`` frames cycled from a pool;
    ``bandwidths``: (copy, read-only) bytes per second."""
    bw, rd = bandwidths
    P, shape = gts.shape[0], gts.shape[1:]
    voxels = int(np.prod(shape))
    order = np.arange(args.frames) % P
    occupied = float(((gts != 17) & masks).sum() / masks.sum())
    print(
        f"mIoU on {what}: {args.frames} frames of {shape}, pool {P} ({3 * P * voxels / 2**20:.0f} MiB); "
        f"camera mask {100 * masks.mean():.1f} % of voxels, {100 * occupied:.1f} % of those occupied"
    )
    refs = {}
    for name, fn in (("official per-frame numpy", official_per_frame), ("lean per-frame numpy", lean_per_frame)):
        if name.split()[0] in args.references:
            with Clock() as c_ref:
                ref = fn(preds, gts, masks, order)
            refs[name] = c_ref
            print(f"  {name}: {c_ref.wall:.2f} s ({args.frames / c_ref.wall:.0f} frames/s), CPU {c_ref.cpu:.2f} s")
    g_t, p_t, m_t = (torch.from_numpy(a).to(dev) for a in (gts, preds, masks))
    for name, former in (("occkit before 2026-11-24 (one histogram)", True), ("occkit Occ3DMetric", False)):
        if former and dev.type != "cpu":
            continue
        metric = Occ3DMetric(mask="camera", device=dev, free=OCC3D_FREE)
        if former:

            def update(p, g, mask_camera, metric=metric):
                metric.counts += former_confusion(g.numpy(), p.numpy(), mask_camera.numpy())
                metric.frames += g.shape[0]
        else:
            update = metric.update
        if dev.type == "cuda":
            torch.cuda.synchronize()
        with Clock() as c:
            done = 0
            while done < args.frames:
                start = done % P
                n = min(args.batch, args.frames - done, P - start)
                sl = slice(start, start + n)
                update(p_t[sl], g_t[sl], mask_camera=m_t[sl])
                done += n
            if dev.type == "cuda":
                torch.cuda.synchronize()
        ok = np.array_equal(metric.counts.cpu().numpy(), ref) if refs else None
        eff = 3 * voxels * args.frames / c.wall
        print(
            f"  {name}: {c.wall:.2f} s ({args.frames / c.wall:.0f} frames/s), CPU {c.cpu:.2f} s; same matrix: {ok}; "
            f"effective read bandwidth {eff / 1e9:.2f} GB/s = {100 * eff / bw:.0f}% of the copy bandwidth"
        )
        for ref_name, c_ref in refs.items():
            print(
                f"    speed-up over the {ref_name}: x{c_ref.wall / c.wall:.1f} (wall), x{c_ref.cpu / c.cpu:.1f} (CPU)"
            )
    floor = 3 * voxels * args.frames / rd  # reading 3 bytes per voxel once, at one thread's read-only rate
    for ref_name, c_ref in refs.items():
        print(
            f"  bandwidth floor: reading the 3 bytes per voxel once takes {floor:.3f} s on one thread, so no "
            f"one-thread implementation that reads them can exceed x{c_ref.wall / floor:.0f} over the {ref_name} here"
        )
    print(f"  mIoU {metric.compute()['miou']:.2f}")


def reference_rayiou_state(pred: torch.Tensor, gt: torch.Tensor, origins: torch.Tensor) -> torch.Tensor:
    """RayIoUMetric's counts for one frame, walked by ``cast_rays_reference``: the flat state
    ``gt_count | pred_count | tp`` (without the frame count)."""
    dirs = lidar_ray_directions()
    K = origins.shape[0]
    o = origins.double().repeat_interleave(dirs.shape[0], 0)
    d = dirs.repeat(K, 1)
    vols = torch.stack([gt.to(torch.uint8), pred.to(torch.uint8)])[:, None]  # (2, 1, X, Y, Z)
    labels, depth = cast_rays_reference(
        vols, torch.zeros(o.shape[0], dtype=torch.long), o, d, occ3d_grid(), free=OCC3D_FREE
    )
    g, p, tp = rayiou_counts(labels[1], depth[1], labels[0], depth[0])
    return torch.cat([g, p, tp.reshape(-1)])


def rayiou_frames(args: argparse.Namespace, rng: np.random.Generator) -> tuple[torch.Tensor, list[torch.Tensor], str]:
    """``(N, X, Y, Z)`` uint8 ground truths, their origins and a description."""
    shape = occ3d_grid().shape
    n = max(args.rayiou_frames, args.rayiou_ref_frames)
    if args.rayiou_data:
        from occkit.data.occ3d import Occ3DDataset, load_occ3d_labels
        from occkit.metrics.rayiou import rayiou_origins

        ds = Occ3DDataset(args.rayiou_data, "all", load_images=False, load_gt=True, load_extras=False)
        pick = np.linspace(0, len(ds) - 1, n).round().astype(int)
        tokens = [ds.frames[i].token for i in pick]
        gts = torch.from_numpy(np.stack([load_occ3d_labels(ds.gt_path(t), shape)["semantics"] for t in tokens]))
        origins = [rayiou_origins(ds, t) for t in tokens]
        return gts, origins, f"{n} frames of {args.rayiou_data} with their own LiDAR origins"
    gts = torch.from_numpy(np.stack([synthetic_scene(rng, shape) for _ in range(n)]))
    o = torch.tensor([[0.9 + 4 * k - 14, 0.3 * k, 1.84] for k in range(8)], dtype=torch.float64)
    return gts, [o] * n, f"{n} driving-like volumes, 8 fixed origins"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--frames", type=int, default=6019, help="mIoU frames evaluated (6019 = Occ3D-nuScenes val; 0: skip)"
    )
    ap.add_argument("--pool", type=int, default=48, help="distinct random frames cycled through")
    ap.add_argument("--batch", type=int, default=16, help="frames per update of our mIoU")
    ap.add_argument(
        "--references",
        default="official,lean",
        help="mIoU references timed: official (the challenge's code), lean (its loop cut to the matrix)",
    )
    ap.add_argument("--rayiou-frames", type=int, default=16, help="frames for our RayIoU (0: skip RayIoU)")
    ap.add_argument("--rayiou-ref-frames", type=int, default=2, help="frames for the reference walk (slow)")
    ap.add_argument(
        "--rayiou-data", default=None, help="Occ3D-layout folder with LiDAR poses (default: made-up volumes)"
    )
    ap.add_argument(
        "--miou-data",
        default=None,
        help="Occ3D-layout folder: mIoU also on its frames and camera masks "
        "(up to --pool of them), the prediction its ground truth shifted one voxel",
    )
    ap.add_argument(
        "--threads", type=int, default=0, help="torch threads, also our metrics' threads (0: leave the default)"
    )
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    shape = occ3d_grid().shape
    rng = np.random.default_rng(0)
    dev = torch.device(args.device)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {args.device}")
    if args.frames > 0:
        P = args.pool
        gts = rng.integers(0, 18, (P, *shape), dtype=np.uint8)
        preds = np.where(rng.random((P, *shape)) < 0.7, gts, rng.integers(0, 18, (P, *shape), dtype=np.uint8)).astype(
            np.uint8
        )
        masks = rng.random((P, *shape)) < 0.6
        bw, rd = memory_bandwidth(), read_bandwidth()
        print(
            f"memory bandwidth (numpy copy, read+write): {bw / 1e9:.2f} GB/s; one thread reading only: {rd / 1e9:.2f} "
            "GB/s"
        )
        bw = (bw, rd)
        miou_speed(args, "random frames (no long runs of one class pair)", gts, preds, masks, bw, dev)
        if args.miou_data:
            gts, masks = world_frames(args.miou_data, args.pool)
            miou_speed(
                args,
                f"the frames of {args.miou_data} (prediction = ground truth shifted one voxel along x)",
                gts,
                np.roll(gts, 1, axis=1),
                masks,
                bw,
                dev,
            )

    if args.rayiou_frames > 0:
        gts_r, origins, what = rayiou_frames(args, rng)
        preds_r = torch.roll(gts_r, 1, dims=1)
        rays = [o.shape[0] * 39 * 360 for o in origins]
        print(f"RayIoU: {what}; {np.mean(rays):.0f} rays per frame on average (gt and prediction walked together)")
        R = args.rayiou_ref_frames
        if R > 0:
            with Clock() as c_ref:
                ref_state = sum(reference_rayiou_state(preds_r[i], gts_r[i], origins[i]) for i in range(R))
            print(
                f"reference walk (cast_rays_reference): {R} frames in {c_ref.wall:.2f} s = "
                f"{R / c_ref.wall:.2f} frames/s, CPU {c_ref.cpu / R:.3f} s per frame"
            )
        ray = RayIoUMetric(device=dev, free=OCC3D_FREE)
        N = args.rayiou_frames
        with Clock() as c:
            for i in range(N):
                if i == R:
                    ours_first = ray.state[:-1].clone()
                ray.update(preds_r[i : i + 1].to(dev), gts_r[i : i + 1].to(dev), [origins[i]])
            if dev.type == "cuda":
                torch.cuda.synchronize()
        if N <= R:
            ours_first = ray.state[:-1].clone()
        r = ray.compute()
        print(
            f"occkit RayIoUMetric: {N} frames in {c.wall:.2f} s = {N / c.wall:.2f} frames/s, CPU {c.cpu / N:.3f} s "
            f"per frame (RayIoU {r['rayiou']:.2f} for a 1-voxel shift)"
        )
        if R > 0:
            same = torch.equal(ours_first.cpu(), ref_state) if N >= R else None
            print(
                f"  speed-up x{(c_ref.wall / R) / (c.wall / N):.1f} (wall), x{(c_ref.cpu / R) / (c.cpu / N):.1f} (CPU "
                f"per frame); same counts on the first {min(R, N)} frames: {same}"
            )
        print(
            f"  6019 frames at this rate: {6019 * c.wall / N / 60:.1f} min wall; "
            f"{6019 * c.cpu / N / 60:.1f} CPU-minutes (/ 2 cores = {6019 * c.cpu / N / 120:.1f} min when both are free)"
        )


if __name__ == "__main__":
    main()
