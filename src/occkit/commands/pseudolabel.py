"""``occkit pseudolabel --data DIR --priors PRIORS --out DIR2 [--past K] [--future K]
[--dynamic filter|keep] [--free carve|none] [--min-points N] [--vote confidence|count]
[--consistency none|frames] [--carve-every K] [--workers N] [--quality [JSON]]``: EasyOcc's 3D
pseudo-labels from a 2D prior cache, written as an Occ3D-layout dataset that any recipe trains on
(``occkit train ... --set data.root=DIR2`` / ``--data DIR2``); evaluate against the real labels
(``occkit eval --gt DIR``).

``--quality``: after writing (or alone, when DIR2 is complete), score the pseudo-labels against
DIR's real labels (mIoU and geometry IoU with the camera mask and without, occupied precision and
recall, density) and print them (and write them to JSON when a path is given).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from occkit.commands.checks import nonneg_int, positive_float, positive_int, unit_float
from occkit.commands.options import add_choice, add_data, add_out, add_split


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_data(p, "source dataset (Occ3D layout): poses, images; its real labels for --quality")
    p.add_argument("--priors", type=Path, help="prior cache of DATA with semantics and depth (occkit priors run)")
    add_out(p, "pseudo-label dataset to write (Occ3D layout)")
    p.add_argument(
        "--past", type=nonneg_int, default=13, help="previous frames densifying each frame (default 13, the paper's)"
    )
    p.add_argument("--future", type=nonneg_int, default=0, help="next frames densifying each frame (default 0)")
    add_choice(
        p, "--dynamic", ("filter", "keep"), "filter", "dynamic classes from the current frame only (filter) or from all"
    )
    add_choice(
        p,
        "--free",
        ("carve", "none"),
        "carve",
        "carve free space along camera rays (carve) or observe only occupied voxels (none)",
    )
    p.add_argument("--min-points", type=positive_int, default=1, help="points a voxel needs to be occupied (default 1)")
    add_choice(
        p,
        "--vote",
        ("confidence", "count"),
        "confidence",
        "a voxel's class: largest summed prior confidence of its points (confidence) or most points (count)",
    )
    add_choice(
        p,
        "--consistency",
        ("none", "frames"),
        "none",
        "frames: an occupied voxel more source frames saw through than put a point in becomes free "
        "(dynamic classes exempt under --dynamic filter); none: the merged vote alone",
    )
    p.add_argument(
        "--max-depth",
        type=positive_float,
        default=60.0,
        help="drop pixels whose prior depth exceeds this, metres (default 60)",
    )
    p.add_argument(
        "--min-confidence",
        type=unit_float,
        default=0.0,
        help="drop pixels whose prior confidence is below this (default 0)",
    )
    p.add_argument(
        "--carve-every", type=positive_int, default=8, help="one point in this many casts a carving ray (default 8)"
    )
    add_split(p, "frames labelled", default="all")
    p.add_argument("--workers", type=positive_int, default=1, help="processes, one scene each at a time (default 1)")
    p.add_argument(
        "--quality",
        nargs="?",
        const="-",
        default=None,
        metavar="JSON",
        help="score the pseudo-labels against DATA's real labels (and write them to JSON)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def check_source_format(data) -> None:
    """Refuse, in one line naming the format, a source whose labels are not what pseudolabel writes:
    Occ3D's class table on Occ3D's ego-frame grid. The priors' 2D classes are Occ3D's and the output
    is an Occ3D-layout dataset, so a source of another table, grid or frame (SurroundOcc's LiDAR
    frame, SemanticKITTI's classes) would give labels that neither its scores nor its runs match."""
    from occkit.formats import FormatRegistryError, detect_format
    from occkit.geometry.grid import occ3d_grid
    from occkit.labels import OCC3D_CLASSES

    try:
        fmt = detect_format(data)
    except (FormatRegistryError, OSError):
        return  # the Occ3D reader names what the folder lacks
    if tuple(fmt.classes.names) == tuple(OCC3D_CLASSES) and fmt.grid == occ3d_grid() and fmt.label_frame == "ego":
        return
    raise ValueError(
        f"--data {data}: {fmt.display_name} (format {fmt.name}, {fmt.classes.num_classes} classes on a "
        f"{'x'.join(map(str, fmt.grid.shape))} grid in the {fmt.label_frame} frame); pseudolabel writes Occ3D-layout "
        "labels (Occ3D's 18 classes, 200x200x16 in the ego frame) from Occ3D-class priors, so it takes Occ3D-layout "
        "sources only; train easyocc on this format's own labels instead (occkit train easyocc --data DIR)"
    )


def run(args: argparse.Namespace) -> int:
    from occkit.pseudolabel.dataset import RECORD_FILE, PseudoLabelConfig, make_pseudo_labels
    from occkit.pseudolabel.quality import format_quality, label_quality

    check_source_format(args.data)

    if args.quality not in (None, "-"):  # before anything is written: a file of the user's there refuses the run
        from occkit.outputs import check_output_file

        check_output_file(
            args.quality, {"--data": args.data, "--out": args.out}, what="--quality", command="pseudolabel"
        )
    if args.priors is not None:
        from occkit.outputs import check_output_folder, mark_output  # --out: new, empty or pseudolabel's own (issue 38)

        state = check_output_folder(
            args.out,
            "pseudolabel",
            inputs={"--data": args.data, "--priors": args.priors},
            resume=True,
            legacy=lambda o: (o / RECORD_FILE).is_file(),
        )
        cfg = PseudoLabelConfig(
            past=args.past,
            future=args.future,
            dynamic=args.dynamic,
            free=args.free,
            min_points=args.min_points,
            vote=args.vote,
            consistency=args.consistency,
            max_depth=args.max_depth,
            min_confidence=args.min_confidence,
            carve_every=args.carve_every,
            split=args.split,
        )
        if state != "own":
            mark_output(args.out, "pseudolabel")
        make_pseudo_labels(args.data, args.priors, args.out, cfg, workers=args.workers, progress=not args.no_progress)
        print(f"wrote {args.out} ({RECORD_FILE}: how the labels were made)")
    elif args.quality is None:
        raise ValueError("--priors is required to write pseudo-labels (or give --quality to score an existing --out)")
    if args.quality is not None:
        if not (args.out / RECORD_FILE).is_file():
            raise ValueError(
                f"--out {args.out}: not a pseudo-label dataset (no {RECORD_FILE}); --quality scores what occkit "
                "pseudolabel wrote"
            )
        q = label_quality(args.out, args.data, split=args.split)
        print(format_quality(q))
        if args.quality != "-":
            from occkit.outputs import write_json_output

            write_json_output(args.quality, json.loads(json.dumps(q, default=float)), "pseudolabel")
            print(f"wrote {args.quality}")
    return 0
