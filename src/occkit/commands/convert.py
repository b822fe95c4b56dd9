"""``occkit convert --data SRC --out DST --to FORMAT [--class-map NAME|FILE] [--split S] [--infos I] [--from F]``:
a dataset's ground truth written in another format's layout (:mod:`occkit.convert`;
docs/DATASET.md, "Converting between layouts").

The source's format is detected; the target's is asked of the format registry (its label writer),
so this command names no format. It prints what the conversion loses (classes dropped and merged,
voxels outside the target grid or between its voxel centres, masks the target has no place for),
also written to ``DST/convert_report.json``. A stopped run resumes when the same command is run
again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, required=True, help="the source dataset folder (its format is detected)")
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="the output folder: new or empty (or a stopped conversion of the same command, which it finishes)",
    )
    p.add_argument(
        "--to",
        required=True,
        metavar="FORMAT",
        help="the target format: one whose layout occkit can write ({writable_formats}) and whose sensors the "
        "source's share (the nuScenes layouts among themselves, the KITTI layouts among themselves)",
    )
    p.add_argument(
        "--class-map",
        default=None,
        metavar="NAME|FILE",
        help="the class map between the two class tables (configs/classmaps/NAME.yaml: {class_maps}; or a YAML "
        "file), read in "
        "either direction (default: none for one class table, else the one occkit ships for the pair)",
    )
    p.add_argument(
        "--from",
        dest="source_format",
        default=None,
        metavar="FORMAT",
        help="the source's format ({writable_formats}), where detecting it from the folder's files is not wanted "
        "(default: detected)",
    )
    p.add_argument("--split", default="all", help="the source split to convert (default all)")
    p.add_argument(
        "--infos",
        type=Path,
        default=None,
        metavar="I",
        help="the folder occkit prepare nuscenes wrote (infos.json): the LiDAR extrinsic, file and token, and the "
        "scene token, that real Occ3D annotations lack and the LiDAR-frame layouts need",
    )
    p.add_argument("--overwrite", action="store_true", help="redo a conversion of other settings kept in --out")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of the summary")


def run(args: argparse.Namespace) -> int:
    import json

    from occkit.commands.options import keywords_of
    from occkit.convert import convert_dataset, summary_lines

    try:
        report = convert_dataset(
            args.data,
            args.out,
            args.to,
            **keywords_of(args, "class_map", "split", "infos", "overwrite", "source_format"),
        )
    except KeyboardInterrupt:
        from occkit.commands.checks import typed_command

        print(
            f"occkit convert: stopped; the frames written are kept; the same command finishes: {typed_command()}",
            file=sys.stderr,
            flush=True,
        )
        return 130
    try:
        if args.json:
            print(json.dumps(report, indent=1))
        else:
            print("\n".join(summary_lines(report)))
            print(f"convert: wrote {args.out} (report: {args.out / 'convert_report.json'})")
        sys.stdout.flush()
    except BrokenPipeError:  # `occkit convert --json | head`: the conversion is complete; the reader stopped
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's advice: no second error at exit
    return 0
