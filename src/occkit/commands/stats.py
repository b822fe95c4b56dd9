"""``occkit stats DIR [--format NAME] [--json FILE] [--split all|train|val]``: class frequencies, free,
ignored and masked fractions, frames per scene of a dataset of any format (detected from the folder,
as ``occkit eval`` detects it), over the format's own class table."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from occkit.commands.options import SPLITS  # not occkit.data.occ3d's: that imports torch into --help


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", type=Path, help="dataset folder of any format (occkit.formats)")
    p.add_argument(
        "--format",
        default="auto",
        metavar="NAME",
        help="the dataset's format ({formats}); auto: detected from the folder (default auto)",
    )
    p.add_argument("--json", type=Path, default=None, help="also write the statistics to this JSON file")
    p.add_argument("--split", default="all", choices=SPLITS, help="which frames to count (default: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def first_frame_cameras(fmt: Any, root: Path, split: str, ds: Any) -> tuple[tuple[int, int] | None, tuple[str, ...]]:
    """``(height, width)`` of the first camera image of the split's first frame and the frame's camera
    names, read through the format's reader (one frame's images decoded; ``ds``: the split opened without
    images, which says the data's own cameras where the layout records them); ``(None, ())`` for a split
    with no frame."""
    if len(ds) == 0:
        return None, ()
    # the data's own cameras where the layout records them (Occ3D's family), else the format's
    recorded = getattr(ds, "cameras_recorded", None)
    cameras = tuple(recorded()) if callable(recorded) and fmt.cameras is None else None
    images = fmt.open_split(root, split, cameras=cameras or None, load_gt=False, load_extras=False)
    if getattr(images, "images_recorded", True) is False:  # labels of a recording without images: no size
        return None, tuple(getattr(images, "cameras", ()))
    if len(images) == 0:  # labels without sensor files (SemanticKITTI lists a frame by its scan without labels)
        raise ValueError(
            f"{root}: the split {split!r} has {len(ds)} labelled frame(s) but no frame with its sensor files "
            f"({fmt.display_name}: the images and scans the labels belong to are missing)"
        )
    sample = images[0]
    h, w = (int(x) for x in sample.images.shape[-2:])
    return (h, w), tuple(sample.cam_names)


def run(args: argparse.Namespace) -> int:
    from occkit.data.stats import dataset_stats
    from occkit.formats.registry import detect_format, get_format
    from occkit.formats.spec import plugin_call
    from occkit.outputs import check_output_file, write_json_output

    if args.json is not None:  # before counting
        check_output_file(args.json, {"DIR": args.root}, what="--json", command="stats")
    fmt = detect_format(args.root) if args.format == "auto" else get_format(args.format)
    # the format's parts through the registry's guards: a package's detect or open that fails (or calls
    # sys.exit) is named in one line, as in eval and train
    if args.format != "auto" and not plugin_call(fmt, f"detect({args.root})", fmt.detection.detect, args.root):
        raise ValueError(f"{args.root}: not a dataset of the format {fmt.name} ({fmt.summary})")
    ds = fmt.open_split(args.root, args.split, load_images=False, load_extras=False)
    if len(ds.frames) == 0:
        raise ValueError(
            f"{args.root}: no frames in the split {args.split!r} of this {fmt.name} dataset ({fmt.summary})"
        )
    image_size, cameras = first_frame_cameras(fmt, args.root, args.split, ds)
    stats = dataset_stats(
        ds,
        fmt.classes,
        format_name=fmt.name,
        root=args.root,
        split=args.split,
        image_size=image_size,
        cameras=cameras,
        progress=not args.no_progress,
    )
    print(stats.format_table())
    if args.json is not None:
        write_json_output(args.json, stats.to_dict(), "stats")
        print(f"wrote {args.json}")
    return 0
