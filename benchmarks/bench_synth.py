"""Frames per second of the synthetic world, and what a generated dataset holds.

Speed: each frame = six cameras rendered at 256x704 (RGB, depth, semantics, instance) + one
32-beam LiDAR sweep + Occ3D occupancy (200x200x16) + mask_lidar + mask_camera, in one process
with one torch thread; the time of each stage is printed, then the frame rate with and without
writing the files (JPEG, compressed npz).

Class statistics (``--classes``): generates a dataset and prints the share of each Occ3D class
among occupied voxels, and the frames that hold each class.

    python benchmarks/bench_synth.py --frames 4
    python benchmarks/bench_synth.py --classes --scenes 10 --frames 2 --image-size 64 176 --workers 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict

import torch


def bench_speed(args: argparse.Namespace) -> None:
    from occkit.data.occ3d import NUSCENES_CAMERAS
    from occkit.geometry.grid import occ3d_grid
    from occkit.geometry.transforms import apply_transform
    from occkit.worlds.driving import SynthConfig, build_scene
    from occkit.worlds.driving.lidar import simulate_lidar
    from occkit.worlds.driving.occupancy import (
        FREE,
        camera_mask_rays,
        camera_visibility,
        lidar_visibility,
        semantic_occupancy,
        voxel_center_rays,
    )
    from occkit.worlds.driving.render import render_camera
    from occkit.worlds.driving.scene import scene_state_at
    from occkit.worlds.driving.sensors import T_ego_from_camera, T_ego_from_lidar, camera_intrinsics
    from occkit.worlds.driving.writer import generate_dataset

    torch.set_num_threads(1)
    H, W = args.image_size
    cfg = SynthConfig(scenes=1, frames=args.frames, seed=args.seed, image_size=(H, W))
    t0 = time.perf_counter()
    scene = build_scene(cfg, 0)
    t_build = time.perf_counter() - t0
    grid = occ3d_grid()
    stages: dict[str, float] = defaultdict(float)
    cpu_stages: dict[str, float] = defaultdict(float)
    n_rays = 0
    cpu0 = time.process_time()
    with torch.no_grad():
        for i in range(args.frames):
            t, c = time.perf_counter(), time.process_time()
            state = scene_state_at(scene, i)
            stages["pose scene"] += time.perf_counter() - t
            cpu_stages["pose scene"] += time.process_time() - c
            T_ge = state.T_global_from_ego
            cams = {}
            t, c = time.perf_counter(), time.process_time()
            for cam in NUSCENES_CAMERAS:
                K, T_ec = camera_intrinsics(cam, (H, W)), T_ego_from_camera(cam)
                cams[cam] = (K, T_ec, render_camera(state, K, T_ge @ T_ec, H, W, noise_seed=i)["depth"])
            stages["6 cameras"] += time.perf_counter() - t
            cpu_stages["6 cameras"] += time.process_time() - c
            t, c = time.perf_counter(), time.process_time()
            T_el = T_ego_from_lidar()
            pts, _, _ = simulate_lidar(state, T_ge @ T_el)
            stages["lidar"] += time.perf_counter() - t
            cpu_stages["lidar"] += time.process_time() - c
            t, c = time.perf_counter(), time.process_time()
            sem = semantic_occupancy(state, grid, T_ge)
            stages["occupancy"] += time.perf_counter() - t
            cpu_stages["occupancy"] += time.process_time() - c
            t, c = time.perf_counter(), time.process_time()
            lidar_visibility(grid, T_el[:3, 3].float(), apply_transform(T_el.float(), pts[:, :3]))
            stages["mask_lidar"] += time.perf_counter() - t
            cpu_stages["mask_lidar"] += time.process_time() - c
            t, c = time.perf_counter(), time.process_time()
            rays = [camera_mask_rays(K, T_ec, d, grid) for K, T_ec, d in cams.values()]
            rays += [voxel_center_rays(K, T_ec, (H, W), grid, sem != FREE) for K, T_ec, d in cams.values()]
            o, d = torch.cat([r[0] for r in rays]), torch.cat([r[1] for r in rays])
            n_rays += o.shape[0]
            camera_visibility(grid, sem != FREE, o, d)
            stages["mask_camera"] += time.perf_counter() - t
            cpu_stages["mask_camera"] += time.process_time() - c
    total = sum(stages.values())
    cpu = time.process_time() - cpu0
    print(f"scene build: {t_build:.2f} s ({len(scene.objects)} objects)")
    print(f"  {'stage':12s} {'wall ms/frame':>14s} {'CPU ms/frame':>13s}")
    for k, v in stages.items():
        print(f"  {k:12s} {v / args.frames * 1000:14.1f} {cpu_stages[k] / args.frames * 1000:13.1f}")
    print(f"  mask_camera rays per frame: {n_rays // args.frames}")
    print(
        f"in memory: {total / args.frames:.2f} s/frame = {args.frames / total:.2f} frames/s wall (1 thread); "
        f"CPU time {cpu / args.frames:.2f} s/frame = {args.frames / cpu:.2f} frames/s per core"
    )
    with tempfile.TemporaryDirectory() as tmp:
        t, c = time.perf_counter(), time.process_time()
        generate_dataset(tmp, SynthConfig(scenes=1, frames=args.frames, seed=args.seed, image_size=(H, W)))
        dt, dc = time.perf_counter() - t, time.process_time() - c
    print(
        f"generate_dataset incl. scene build and writing: {dt / args.frames:.2f} s/frame = {args.frames / dt:.2f} "
        f"frames/s wall; CPU time {dc / args.frames:.2f} s/frame = {args.frames / dc:.2f} frames/s per core"
    )


def bench_classes(args: argparse.Namespace) -> None:
    import numpy as np

    from occkit.data.occ3d import Occ3DDataset
    from occkit.labels import OCC3D_CLASSES
    from occkit.worlds.driving import SynthConfig, generate_dataset

    cfg = SynthConfig(
        scenes=args.scenes, frames=args.frames, seed=args.seed, image_size=tuple(args.image_size), workers=args.workers
    )
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        generate_dataset(tmp, cfg)
        dt = time.perf_counter() - t
        ds = Occ3DDataset(tmp, split="all", load_images=False, load_extras=False)
        counts = np.zeros(18, np.int64)
        frames_with = np.zeros(18, np.int64)
        cam_counts = np.zeros(18, np.int64)
        for i in range(len(ds)):
            s = ds[i]
            c = np.bincount(s.occupancy.numpy().ravel(), minlength=18)
            counts += c
            frames_with += c > 0
            cam_counts += np.bincount(s.occupancy[s.mask_camera].numpy().ravel(), minlength=18)
        print(f"{cfg.scenes} scenes x {cfg.frames} frames generated in {dt:.1f} s with {cfg.workers} workers")
        occ = counts[:17].sum()
        print(f"{'class':22s} {'% occupied':>10s} {'% in mask_camera':>17s} {'frames':>7s}")
        for k in range(17):
            print(
                f"{k:2d} {OCC3D_CLASSES[k]:19s} {100 * counts[k] / occ:10.3f} "
                f"{100 * cam_counts[k] / max(cam_counts[:17].sum(), 1):17.3f} {frames_with[k]:7d}"
            )
        print(f"classes present: {(counts[:17] > 0).sum()} of 17; free voxels {100 * counts[17] / counts.sum():.1f} %")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--scenes", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", type=int, nargs=2, default=(256, 704))
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--classes", action="store_true", help="class statistics of a generated dataset instead of speed")
    args = p.parse_args()
    if args.classes:
        bench_classes(args)
    else:
        bench_speed(args)


if __name__ == "__main__":
    main()
