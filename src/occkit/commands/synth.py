"""``occkit synth``: generate the procedural driving world as an Occ3D-nuScenes dataset."""

from __future__ import annotations

import argparse
import time


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--scenes", type=int, default=2, help="number of scenes (default 2)")
    p.add_argument("--frames", type=int, default=3, help="frames per scene (default 3)")
    p.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    p.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), default=(256, 704), help="camera image size (default 256 704)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="fraction of validation scenes (default 0.2)")
    p.add_argument("--frame-rate", type=float, default=2.0, help="frames per second (default 2, nuScenes keyframes)")
    p.add_argument("--image-format", choices=("jpg", "png"), default="jpg", help="image files (default jpg)")
    p.add_argument("--format", choices=("occ3d", "semantickitti"), default="occ3d",
                   help="dataset layout: occ3d (Occ3D-nuScenes, default) or semantickitti (SSC sequences, front camera)")
    p.add_argument("--overwrite", action="store_true", help="write into a folder that already holds a dataset")


def run(args: argparse.Namespace) -> int:
    from occkit.data.synth import SynthConfig, generate_dataset

    config = SynthConfig(
        scenes=args.scenes, frames=args.frames, seed=args.seed, image_size=tuple(args.image_size), workers=args.workers,
        val_fraction=args.val_fraction, frame_rate_hz=args.frame_rate, image_format=args.image_format,
    )
    t0 = time.perf_counter()
    if args.format == "semantickitti":
        from occkit.data.synth.kitti_export import export_semantickitti

        out = export_semantickitti(args.out, config, progress=True)
    else:
        out = generate_dataset(args.out, config, overwrite=args.overwrite, progress=True)
    dt = time.perf_counter() - t0
    n = config.scenes * config.frames
    print(f"synth: wrote {config.scenes} scenes x {config.frames} frames to {out} in {dt:.1f} s ({n / dt:.2f} frames/s)")
    return 0
