"""``occkit prepare nuscenes``: the options, checks and writer of the infos of a raw nuScenes root
(:mod:`occkit.data.nuscenes_raw`), which the format ``nuscenes`` names as its preparation. Imports no
torch: the command's parser is built from :data:`PREPARATION`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from occkit.data.prepare import Preparation, PrepareJob


def _sweeps(text: str) -> int:
    """``--sweeps``: an integer >= 0 (argparse's one-line refusal otherwise)."""
    if not text.strip().isdecimal():
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return int(text)


def prepare_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``occkit prepare nuscenes`` beyond ``--out`` and ``--overwrite``."""
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
        type=_sweeps,
        default=10,
        help="LiDAR sweeps kept before each keyframe (default 10, 0.5 s at 20 Hz)",
    )


def prepare_start(args: argparse.Namespace) -> PrepareJob:
    """The run of ``occkit prepare nuscenes``: the tables and nuscenes-devkit checked before any folder
    is made (a one-line error names a missing table or the devkit to install)."""
    from occkit.data.nuscenes_raw import check_tables, import_devkit, prepare_nuscenes, resolve_version, tables_key

    version = resolve_version(args.dataroot, args.version)
    check_tables(args.dataroot, version)
    import_devkit()
    root = args.dataroot.absolute()

    def write(part: Path, progress: Callable[[str], None]) -> int:
        _, n = prepare_nuscenes(
            root, part, version=version, occ3d=args.occ3d, max_sweeps=args.sweeps, progress=progress
        )
        return n

    return PrepareJob(
        inputs={"--dataroot": args.dataroot, "--occ3d": args.occ3d},
        key={
            "dataroot": str(root),
            "version": version,
            "occ3d": None if args.occ3d is None else str(args.occ3d.absolute()),
            "sweeps": args.sweeps,
            "tables": tables_key(root, version),
        },
        record={"version": version},
        write=write,
        done=lambda n, out: f"wrote {n} keyframes of {root / version} to {out / 'infos.json'}",
    )


#: ``occkit prepare nuscenes``: the infos of a raw nuScenes root.
PREPARATION = Preparation(
    summary="nuscenes (v1.0-* tables, samples/, sweeps/, maps/)",
    output="infos.json",
    add_arguments=prepare_arguments,
    start=prepare_start,
)
