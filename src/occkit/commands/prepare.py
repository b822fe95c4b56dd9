"""``occkit prepare NAME ... --out I``: what occkit needs from a raw dataset beyond a format's files,
for the formats that say how (:attr:`occkit.formats.Writers.preparation`).

``occkit prepare nuscenes --dataroot D [--version v1.0-trainval] [--occ3d G] [--sweeps 10] --out I``
reads raw nuScenes with nuscenes-devkit: ``I/infos.json`` holds, per keyframe (sample token = Occ3D
frame token), its LiDAR file and sweeps with their poses, the ego pose, the cameras' calibration and
the neighbouring keyframes (:mod:`occkit.data.nuscenes_raw`; docs/formats/nuscenes.md). ``I`` is what
``occkit eval --infos`` and ``data.lidar_infos`` take. The folder is written whole (hidden beside
``--out``, then renamed); a stopped run keeps its finished work and the same command resumes it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any


def _preparing() -> dict[str, Any]:
    """``{format name: its Preparation}`` of the formats that have one (read without importing torch)."""
    from occkit.help_registries import preparations

    return preparations()


def add_arguments(p: argparse.ArgumentParser) -> None:
    preparing = _preparing()
    p.add_argument(
        "source",
        choices=tuple(preparing),
        help="the raw dataset: " + "; ".join(prep.summary for prep in preparing.values()),
    )
    for prep in preparing.values():
        prep.add_arguments(p)
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help=f"output folder ({'; '.join(prep.output for prep in preparing.values())})",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an earlier output of occkit prepare in --out")


def run(args: argparse.Namespace) -> int:
    from contextlib import ExitStack

    with ExitStack() as held:  # the output's lock, taken once --out is checked, released at the end
        return _run(args, held)


def _run(args: argparse.Namespace, held: Any) -> int:
    from occkit.output_folders import check_output_folder
    from occkit.outputs import check_writable_place, resumable_folder

    job = _preparing()[args.source].start(args)  # its inputs checked before any folder is made
    inputs = dict(job.inputs)
    check_output_folder(args.out, "prepare", inputs=inputs, overwrite=args.overwrite)
    check_writable_place(args.out)
    from occkit.locks import locked_output

    held.enter_context(locked_output(args.out, "prepare"))  # a second writer of --out now is refused, naming this one
    check_output_folder(args.out, "prepare", inputs=inputs, overwrite=args.overwrite)  # again, under the lock
    key = {"source": args.source, **job.key}
    t0 = time.perf_counter()
    try:
        with resumable_folder(args.out, "prepare", key, keep_on_error=False, source=args.source, **job.record) as (
            part,
            resumed,
        ):
            if resumed:
                print(f"prepare: continuing the stopped run kept in {part}", flush=True)
            n = job.write(part, lambda msg: print(msg, flush=True))
    except KeyboardInterrupt:
        from occkit.commands.checks import typed_command

        print(
            f"occkit prepare: stopped; the finished scenes are kept; the same command resumes them: {typed_command()}",
            file=sys.stderr,
            flush=True,
        )
        return 130
    dt = time.perf_counter() - t0
    print(f"prepare: {job.done(n, args.out)} in {dt:.1f} s")
    return 0
