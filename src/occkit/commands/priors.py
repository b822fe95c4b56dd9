"""``occkit priors run|eval|train|vocab``: the 2D prior layer from the command line.

- ``run --data DIR --prior SPEC [--prior KIND=SPEC ...] --out PRIORS``: run providers over every
  frame and write the cache (resumable: run again to continue).
- ``eval --data DIR --priors PRIORS [--json F]``: quality against the synthetic world's exact maps.
- ``train --data DIR --out RUN``: train occkit's own 2D networks (the ``world:RUN`` prior).
- ``vocab [--json F]``: the synthetic world's fine-name vocabulary, classes and held-out names.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from occkit.commands.checks import nonneg_int, positive_int
from occkit.commands.options import add_cameras, add_data, add_device, add_out, add_split, keywords_of

SPLITS = ("all", "train", "val")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="priors_command", metavar="VERB", required=True)

    r = sub.add_parser(
        "run",
        help="run 2D prior providers over a dataset and write a prior cache",
        description="Run 2D prior providers over every frame of a dataset (Occ3D-nuScenes or SemanticKITTI layout) "
        "and write PRIORS/<scene>/<frame>/<CAM>.npz plus PRIORS/prior.json. Resumable: the same command "
        "continues an interrupted run.",
    )
    add_data(r, "dataset folder (annotations.json or sequences/)")
    r.add_argument(
        "--prior",
        action="append",
        required=True,
        metavar="[KIND=]SPEC",
        help="provider: oracle[:clean|typical|noisy], world:RUN, hf:ROOT, superpixels[:slic|felzenszwalb]; "
        "repeat with KIND= (semantics, segments, depth, features; join kinds with +) to take kinds from several",
    )
    add_out(r, "cache folder to write")
    r.add_argument("--kinds", default=None, help="comma-separated kinds to compute (default: all the providers give)")
    add_split(r, "frames to run on", default="all", choices=SPLITS)
    add_cameras(r, "to run on")
    r.add_argument(
        "--feature-stride",
        type=positive_int,
        default=None,
        help="stride of the feature maps (default: the provider's, 8 for the oracle)",
    )
    r.add_argument(
        "--max-frames", type=nonneg_int, default=0, help="only this many frames, evenly spaced (default 0 = all)"
    )
    add_device(r, "where models run", default="cpu")
    r.add_argument("--overwrite", action="store_true", help="rewrite a cache made by other priors")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")

    e = sub.add_parser(
        "eval",
        help="score a prior cache against the synthetic world's exact 2D maps",
        description="2D semantic mIoU, depth AbsRel and delta<1.25 (by distance band), segment best-match IoU, "
        "zero-shot accuracy of the features (classes; fine names seen and held out).",
    )
    add_data(e, "the synthetic dataset the cache was made from")
    e.add_argument("--priors", type=Path, required=True, help="the prior cache")
    add_split(e, "frames to score", default="all", choices=SPLITS)
    e.add_argument(
        "--max-frames", type=nonneg_int, default=0, help="only this many frames, evenly spaced (default 0 = all)"
    )
    e.add_argument("--vocabulary", type=Path, default=None, help="class vocabulary YAML (default: occkit's occ3d.yaml)")
    e.add_argument("--json", type=Path, default=None, help="also write the report to this JSON file")
    e.add_argument("--no-progress", action="store_true", help="no progress bar")

    t = sub.add_parser("train", help="train occkit's 2D networks on a synthetic world (the world:RUN prior)")
    from occkit.commands import priors_train

    priors_train.add_arguments(t)

    v = sub.add_parser("vocab", help="the synthetic world's fine names, their classes and the held-out names")
    v.add_argument("--json", type=Path, default=None, help="write the vocabulary to this JSON file instead of a table")


def _run(args: argparse.Namespace) -> int:
    from occkit.output_folders import check_output_folder
    from occkit.outputs import mark_output
    from occkit.priors import build_prior
    from occkit.priors.cache import run_priors

    # a cache of this command is continued (or, of other priors, rewritten with --overwrite): run_priors decides
    state = check_output_folder(
        args.out, "priors run", inputs={"--data": args.data}, resume=True, legacy=lambda o: (o / "prior.json").is_file()
    )
    options = {"device": args.device}
    if args.feature_stride is not None:
        options["feature_stride"] = args.feature_stride
    prior = build_prior(args.prior, **options)
    kinds = [k.strip() for k in args.kinds.split(",")] if args.kinds else None
    cams = [c.strip() for c in args.cameras.split(",")] if args.cameras else None
    if cams:  # named as the option, before any frame is read
        from occkit.priors.cache import open_dataset

        have = tuple(getattr(open_dataset(args.data, args.split)[0], "cameras", ("image_2",)))
        bad = [c for c in cams if c not in have]
        if bad:
            raise ValueError(
                f"--cameras: {', '.join(bad)} {'is not a camera' if len(bad) == 1 else 'are not cameras'} of "
                f"{args.data} (its cameras: {', '.join(have)})"
            )
    if state != "own":
        mark_output(args.out, "priors run")
    out = run_priors(
        args.data,
        args.out,
        prior,
        kinds=kinds,
        cameras=cams,
        progress=not args.no_progress,
        **keywords_of(args, "split", "overwrite", "max_frames"),
    )
    print(f"wrote {out} ({prior.spec})")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from occkit.outputs import check_output_file, write_json_output
    from occkit.priors.quality import evaluate_priors, format_report

    if args.json is not None:
        check_output_file(
            args.json, {"--data": args.data, "--priors": args.priors}, what="--json", command="priors eval"
        )

    report = evaluate_priors(
        args.data,
        args.priors,
        progress=not args.no_progress,
        **keywords_of(args, "split", "max_frames", "vocabulary"),
    )
    print(format_report(report))
    if args.json is not None:
        write_json_output(args.json, report, "priors eval")
        print(f"wrote {args.json}")
    return 0


def _vocab(args: argparse.Namespace) -> int:
    from occkit.worlds.driving.vocabulary import describe

    rows = describe()
    if args.json is not None:
        from occkit.outputs import check_output_file, write_json_output

        check_output_file(args.json, what="--json", command="priors vocab")
        write_json_output(args.json, rows, "priors vocab")
        print(f"wrote {args.json} ({len(rows)} names)")
        return 0
    print(f"{'name':<26} {'class':<22} held-out")
    for r in rows:
        print(f"{r['name']:<26} {r['class_name']:<22} {'yes' if r['heldout'] else ''}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.priors_command == "run":
        return _run(args)
    if args.priors_command == "eval":
        return _eval(args)
    if args.priors_command == "train":
        from occkit.commands import priors_train

        return int(priors_train.run(args) or 0)
    if args.priors_command == "vocab":
        return _vocab(args)
    raise ValueError(f"occkit priors: unknown verb {args.priors_command!r}")  # argparse prevents this
