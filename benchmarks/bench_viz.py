"""Time of the pictures ``occkit show`` makes, on one frame of an Occ3D-layout dataset.

Stages: bird's-eye view (200x200 columns); the 3D ray-cast view at ``--size`` with rays cast in
bands of rows (what ``perspective_image`` does) next to all rays at once (one ``first_hit`` call,
the straightforward way: every ray walks until the slowest one stops); the LiDAR overlay on six
cameras; the whole figure. One torch thread unless ``--threads`` says otherwise.

    python benchmarks/bench_viz.py --root /tmp/viz_demo
    python benchmarks/bench_viz.py            # generates a 1-frame synthetic dataset first
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from occkit.labels import OCC3D_FREE


def timed(fn, repeat: int) -> tuple[float, object]:
    """Best wall time of ``repeat`` calls, and the last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=None, help="dataset (default: generate one synthetic frame)")
    p.add_argument("--size", type=int, nargs=2, default=(400, 600), metavar=("H", "W"), help="3D view size")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from occkit.data.occ3d import Occ3DDataset
    from occkit.viz import bev_image, compose_frame_figure, overlay_lidar, perspective_image

    tmp = None
    root = args.root
    if root is None:
        from occkit.worlds.driving import SynthConfig, generate_dataset

        tmp = tempfile.TemporaryDirectory()
        root = generate_dataset(Path(tmp.name) / "d", SynthConfig(scenes=1, frames=1, seed=0))
    s = Occ3DDataset(root, split="all")[0]
    sem = s.occupancy.numpy().astype(np.uint8)
    H, W = args.size
    print(f"dataset {root}, frame {s.token}; torch threads {torch.get_num_threads()}; device {args.device}")

    t, _ = timed(lambda: bev_image(sem, scale=2, free=OCC3D_FREE), args.repeat)
    print(f"bev_image 200x200 -> 400x400 px:                {1000 * t:8.1f} ms")
    t_band, a = timed(
        lambda: perspective_image(sem, width=W, height=H, device=args.device, free=OCC3D_FREE), args.repeat
    )
    t_once, b = timed(
        lambda: perspective_image(sem, width=W, height=H, device=args.device, chunk_rays=H * W, free=OCC3D_FREE),
        args.repeat,
    )
    same = float((np.asarray(a) == np.asarray(b)).all(-1).mean())
    print(f"perspective_image {W}x{H}, bands of rows:        {1000 * t_band:8.1f} ms")
    print(
        f"perspective_image {W}x{H}, all rays at once:     {1000 * t_once:8.1f} ms   (same pixels: {100 * same:.2f}%)"
    )
    if s.lidar is not None:
        imgs = (s.images.permute(0, 2, 3, 1) * 255).to(torch.uint8).numpy()

        def lidar() -> None:
            for im, K, T in zip(imgs, s.intrinsics, s.T_ego_from_cam):
                overlay_lidar(im, s.lidar[:, :3], K, T)

        t, _ = timed(lidar, args.repeat)
        print(f"overlay_lidar, {s.lidar.shape[0]} points on 6 x {imgs.shape[2]}x{imgs.shape[1]}: {1000 * t:8.1f} ms")
    t, fig = timed(lambda: compose_frame_figure(s, device=args.device), args.repeat)
    print(f"compose_frame_figure ({fig.shape[1]}x{fig.shape[0]}):          {1000 * t:8.1f} ms")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
