"""``occkit stats DIR [--json FILE] [--split all|train|val]``: class frequencies, free and masked
fractions, frames per scene of an Occ3D-layout dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from occkit.commands.options import SPLITS  # not occkit.data.occ3d's: that imports torch into --help


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", type=Path, help="dataset folder (holds annotations.json)")
    p.add_argument("--json", type=Path, default=None, help="also write the statistics to this JSON file")
    p.add_argument("--split", default="all", choices=SPLITS, help="which frames to count (default: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from occkit.data.stats import dataset_stats
    from occkit.outputs import check_output_file, write_json_output

    if args.json is not None:  # before counting
        check_output_file(args.json, {"DIR": args.root}, what="--json", command="stats")
    _check_layout(args.root)
    stats = dataset_stats(args.root, split=args.split, progress=not args.no_progress)
    print(stats.format_table())
    if args.json is not None:
        write_json_output(args.json, stats.to_dict(), "stats")
        print(f"wrote {args.json}")
    return 0


def _check_layout(root: Path) -> None:
    """A folder of another format's layout said as such (the Occ3D reader would report a missing
    ``gts/.../labels.npz`` or ``annotations.json`` of a layout that has none)."""
    from occkit.formats import FormatRegistryError, detect_format

    if not root.is_dir():
        return  # dataset_stats says so
    try:
        fmt = detect_format(root)
    except (FormatRegistryError, OSError):
        return  # no format knows the folder: the Occ3D reader says what it lacks
    if fmt.name != "occ3d":
        article = "an " if fmt.display_name[:1] in "AEIOU" else "a "
        raise ValueError(
            f"{root}: {article}{fmt.display_name} dataset ({fmt.detect(root)}); occkit stats counts datasets of the "
            "Occ3D layout (annotations.json, gts/<scene>/<token>/labels.npz) only"
        )
