"""``occkit pseudolabel --data DIR --priors PRIORS --out DIR2 [--past K] [--future K]
[--dynamic filter|keep] [--free carve|none] [--min-points N] [--vote confidence|count]
[--consistency none|frames] [--carve-every K] [--workers N] [--quality [JSON]]``: EasyOcc's 3D
pseudo-labels from a 2D prior cache, written as a dataset in DIR's own layout that any recipe trains on
(``occkit train ... --data DIR2``, the format read from the folder); evaluate against the real labels
(``occkit eval --gt DIR``). An Occ3D source gets Occ3D-layout labels as made; a SurroundOcc or
OpenOccupancy source gets them converted to its class table, grid and LiDAR frame (``occkit convert``'s
engine), and the summary says what the conversion dropped.

``--quality``: after writing (or alone, when DIR2 is complete), score the pseudo-labels against
DIR's real labels (mIoU and geometry IoU with the camera mask and without, occupied precision and
recall, density) and print them (and write them to JSON when a path is given).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from occkit.commands.checks import holding_outputs, nonneg_int, positive_float, positive_int, unit_float
from occkit.commands.options import add_choice, add_data, add_out, add_split, keywords_of

#: The options that are :class:`~occkit.pseudolabel.dataset.PseudoLabelConfig` fields of the same name.
_CONFIG_OPTIONS = (
    "past", "future", "dynamic", "free", "min_points", "vote", "consistency", "max_depth", "min_confidence",
    "carve_every", "split",
)  # fmt: skip


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_data(
        p, "source dataset (Occ3D, SurroundOcc or OpenOccupancy layout): poses, images; its real labels for --quality"
    )
    p.add_argument("--priors", type=Path, help="prior cache of DATA with semantics and depth (occkit priors run)")
    add_out(p, "pseudo-label dataset to write (in DATA's layout)")
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


@holding_outputs  # the output's lock, taken once --out is checked, released at the end
def run(args: argparse.Namespace, held: Any) -> int:
    from occkit.pseudolabel.dataset import RECORD_FILE, PseudoLabelConfig, make_pseudo_labels, pseudo_layout
    from occkit.pseudolabel.quality import format_quality, label_quality

    layout = pseudo_layout(args.data)  # a source of another family: one line naming its format, before writing
    if layout is not None and args.quality is not None:
        raise ValueError(
            f"--quality: scores Occ3D-layout pseudo-labels; --data {args.data} is {layout}: score a run trained on "
            "them with occkit eval --gt DATA instead"
        )

    if args.quality not in (None, "-"):  # before anything is written: a file of the user's there refuses the run
        from occkit.outputs import check_output_file

        check_output_file(
            args.quality, {"--data": args.data, "--out": args.out}, what="--quality", command="pseudolabel"
        )
    if args.priors is not None:
        from occkit.locks import locked_output
        from occkit.output_folders import check_output_folder  # --out: new, empty or pseudolabel's own (issue 38)
        from occkit.outputs import mark_output

        def check() -> str:
            return check_output_folder(
                args.out,
                "pseudolabel",
                inputs={"--data": args.data, "--priors": args.priors},
                resume=True,
                legacy=lambda o: (o / RECORD_FILE).is_file(),
            )

        check()
        held.enter_context(locked_output(args.out, "pseudolabel"))  # a second writer of --out now is refused
        state = check()  # again under the lock: what another writer left meanwhile counts
        cfg = PseudoLabelConfig(**keywords_of(args, *_CONFIG_OPTIONS))
        if state != "own":
            mark_output(args.out, "pseudolabel")
        make_pseudo_labels(args.data, args.priors, args.out, cfg, workers=args.workers, progress=not args.no_progress)
        conversion = json.loads((args.out / RECORD_FILE).read_text(encoding="utf-8")).get("conversion")
        if conversion is not None:
            from occkit.convert import summary_lines

            lines = summary_lines(conversion)
            n = conversion.get("unobserved_written_as_ignored", 0)
            unobserved = f"  voxels the pseudo-labels did not observe (Occ3D's mask_camera), written as ignored: {n}"
            lines.insert(3, unobserved)
            print("\n".join(lines))
        made = "how the labels were made" + (" and converted" if conversion else "")
        print(f"wrote {args.out} ({RECORD_FILE}: {made})")
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
