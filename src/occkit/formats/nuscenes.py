"""``nuscenes``: Occ3D-nuScenes inside a raw nuScenes root, the folder ``occkit synth --format
nuscenes`` writes (docs/formats/nuscenes.md).

A raw nuScenes root (``v1.0-*`` tables, ``samples/``, ``sweeps/``, ``maps/``) has no occupancy
labels of its own: it is the input of ``occkit prepare nuscenes``, beside the Occ3D folder, not a
dataset occkit trains on or scores. The usual arrangement puts Occ3D's ``gts/`` and
``annotations.json`` into that root, and that is what this format's synthetic writer makes: the
synthetic world in the Occ3D-nuScenes layout plus its nuScenes table set ``v1.0-synth/`` and LiDAR
files (:mod:`occkit.data.synth.nuscenes_export`). Its labels are Occ3D's, so it reads, trains,
predicts and scores exactly as ``occ3d`` (every field but the name, the writer and the detection is
``occ3d``'s); it is never detected (a folder with ``annotations.json`` is ``occ3d``, which reads it
the same), so it changes nothing for a folder occkit already reads.

``occkit prepare nuscenes --dataroot D [--version v1.0-trainval] [--occ3d G] [--sweeps 10] --out I``
(:data:`PREPARATION`) reads such a raw root with nuscenes-devkit and writes ``I/infos.json``: per
keyframe (sample token = Occ3D frame token), its LiDAR file and sweeps with their poses, the ego pose,
the cameras' calibration and the neighbouring keyframes (:mod:`occkit.data.nuscenes_raw`), what
``occkit eval --infos`` and ``data.lidar_infos`` take.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from occkit.formats.occ3d import FORMAT as OCC3D
from occkit.formats.spec import Preparation, PrepareJob


def detect(root: Path) -> str | None:
    """Never: such a folder holds ``annotations.json`` and is read as ``occ3d``, the same way."""
    return None


def write_synthetic(out: Path, config: Any) -> None:
    from occkit.data.synth.nuscenes_export import export_nuscenes

    export_nuscenes(out, config, overwrite=True, progress=True, resume=True)


def _sweeps(text: str) -> int:
    """``--sweeps``: an integer >= 0 (argparse's one-line refusal otherwise)."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {v}")
    return v


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


FORMAT = replace(
    OCC3D,
    name="nuscenes",
    title="Occ3D-nuScenes in a raw nuScenes root",
    summary="Occ3D-nuScenes plus the raw nuScenes tables (v1.0-*/, samples/LIDAR_TOP/*.pcd.bin) that occkit prepare "
    "nuscenes reads; read and scored as occ3d",
    priority=OCC3D.priority + 80,
    detect=detect,
    write_synthetic=write_synthetic,
    label_writer=None,  # its labels are occ3d's: occkit convert --to occ3d writes them
    preparation=PREPARATION,
    source="",
)
