"""``occkit prepare nuscenes --dataroot D [--version v1.0-trainval] [--occ3d G] [--sweeps 10] --out I``:
what occkit needs from raw nuScenes beyond Occ3D's files, read with nuscenes-devkit.

``I/infos.json`` holds, per keyframe (sample token = Occ3D frame token), its LiDAR file and
sweeps with their poses, the ego pose, the cameras' calibration and the neighbouring keyframes
(:mod:`occkit.data.nuscenes_raw`; docs/formats/nuscenes.md). ``I`` is what ``occkit eval
--infos`` and ``data.lidar_infos`` take. The folder is written whole (hidden beside ``--out``,
then renamed); a stopped run keeps its finished scenes and the same command resumes it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from occkit.commands.checks import nonneg_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "source",
        choices=("nuscenes",),
        help="the raw dataset: nuscenes (v1.0-* tables, samples/, sweeps/, maps/)",
    )
    p.add_argument(
        "--dataroot",
        type=Path,
        required=True,
        help="the nuScenes root: the folder holding v1.0-trainval/ (or another v1.0-*), samples/, sweeps/, maps/",
    )
    p.add_argument(
        "--version",
        default=None,
        help="the table folder under --dataroot (default v1.0-trainval, or the only v1.0-* folder there)",
    )
    p.add_argument(
        "--occ3d",
        type=Path,
        default=None,
        help="the Occ3D-nuScenes folder (annotations.json): its frames must all be samples of the tables; each "
        "frame gets its Occ3D split",
    )
    p.add_argument(
        "--sweeps",
        type=nonneg_int,
        default=10,
        help="LiDAR sweeps kept before each keyframe (default 10, 0.5 s at 20 Hz)",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder (infos.json)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier output of occkit prepare in --out")


def run(args: argparse.Namespace) -> int:
    from contextlib import ExitStack

    with ExitStack() as held:  # the output's lock, taken once --out is checked, released at the end
        return _run(args, held)


def _run(args: argparse.Namespace, held: Any) -> int:
    from occkit.data.nuscenes_raw import check_tables, import_devkit, prepare_nuscenes, resolve_version, tables_key
    from occkit.outputs import check_output_folder, check_writable_place, resumable_folder

    version = resolve_version(args.dataroot, args.version)
    check_tables(args.dataroot, version)  # before any folder is made
    import_devkit()
    inputs = {"--dataroot": args.dataroot, "--occ3d": args.occ3d}
    check_output_folder(args.out, "prepare", inputs=inputs, overwrite=args.overwrite)
    check_writable_place(args.out)
    from occkit.locks import locked_output

    held.enter_context(locked_output(args.out, "prepare"))  # a second writer of --out now is refused, naming this one
    check_output_folder(args.out, "prepare", inputs=inputs, overwrite=args.overwrite)  # again, under the lock
    root = args.dataroot.absolute()
    key = {
        "source": args.source,
        "dataroot": str(root),
        "version": version,
        "occ3d": None if args.occ3d is None else str(args.occ3d.absolute()),
        "sweeps": args.sweeps,
        "tables": tables_key(root, version),
    }
    t0 = time.perf_counter()
    try:
        with resumable_folder(args.out, "prepare", key, keep_on_error=False, source=args.source, version=version) as (
            part,
            resumed,
        ):
            if resumed:
                print(f"prepare: continuing the stopped run kept in {part}", flush=True)
            _, n = prepare_nuscenes(
                root,
                part,
                version=version,
                occ3d=args.occ3d,
                max_sweeps=args.sweeps,
                progress=lambda msg: print(msg, flush=True),
            )
    except KeyboardInterrupt:
        from occkit.commands.checks import typed_command

        print(
            f"occkit prepare: stopped; the finished scenes are kept; the same command resumes them: {typed_command()}",
            file=sys.stderr,
            flush=True,
        )
        return 130
    dt = time.perf_counter() - t0
    print(f"prepare: wrote {n} keyframes of {root / version} to {args.out / 'infos.json'} in {dt:.1f} s")
    return 0
