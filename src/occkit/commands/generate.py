"""``occkit generate --ckpt RUN --data ROOT [--text T] [--occupancy FRAME|SPLIT | --from-perception] --n N --out DIR``:
scenes from a trained ``occscene`` run, written as a dataset in the layout of ``--data`` (its
format's ``write_generated``: images + the occupancy that conditioned them, or that the perception
model predicted; Occ3D-nuScenes outdoors, NYUv2 indoors) that ``occkit train``,
``occkit stats`` and ``occkit eval-gen`` read; plus ``preview.png`` (the first 4 frames) and
``files.json`` (the size and SHA-256 of every file written).

Resumable: each sampled batch is saved at once in a hidden work folder beside ``--out``
(``.NAME.generate-partial``, with the settings that decide the output: the checkpoint's files'
checksums, the data, the options, the image size, the cameras, the device); the same command
again after a stop (Ctrl-C, kill, a crash) keeps the intact batches and samples only the others,
and the dataset it writes is byte-identical to an uninterrupted run's. A work folder of other
settings is refused, never mixed or deleted. The dataset is written whole at the end (a failure
leaves nothing at ``--out``), then the work folder is removed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from occkit.commands.checks import holding_outputs, nonneg_float, positive_int, seed_int
from occkit.commands.options import add_ckpt, add_data, add_device, add_out, add_split, keywords_of

EPILOG = (
    "An interrupted run (Ctrl-C, kill, a crash) continues when the same command is run again: finished batches "
    "are kept in a hidden folder beside --out (.NAME.generate-partial) and only the missing ones are sampled; "
    "the result is byte-identical to an uninterrupted run's. Delete that folder to start over."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = EPILOG
    add_ckpt(p, "occscene run folder or checkpoint")
    add_data(p, "real dataset root: camera calibration, ego poses, texts, layouts", type=str)
    add_out(
        p,
        "new folder for the generated dataset (an interrupted run into it continues when the same command is run "
        "again)",
        type=str,
    )
    p.add_argument("--n", type=positive_int, default=8, help="frames to generate (default 8)")
    p.add_argument(
        "--text",
        default=None,
        help="description for every frame (default: each source frame's scene description; non-empty, at most 500 "
        "characters)",
    )
    how = p.add_mutually_exclusive_group()
    how.add_argument(
        "--occupancy",
        default=None,
        metavar="FRAME|SPLIT",
        help="condition on the ground-truth layout of a frame token, or of each frame of a split in turn",
    )
    how.add_argument(
        "--from-perception",
        action="store_true",
        help="no layout: the perception model's occupancy of each step's estimate is fed back through MDA",
    )
    p.add_argument(
        "--text-only",
        action="store_true",
        help="with --occupancy: sample from text alone, but write the layouts as the labels (the reference for "
        "scoring a text-only generator's layout consistency)",
    )
    add_split(p, "frames giving calibration and text when --occupancy is not a split")
    p.add_argument(
        "--steps", type=positive_int, default=None, help="DDIM steps (default: the run's schedule.sample_steps)"
    )
    p.add_argument(
        "--guidance", type=nonneg_float, default=1.0, help="classifier-free guidance scale on the text (1 = none)"
    )
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the initial noise (default 0)")
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=4,
        help="frames sampled together (default 4); each finished batch is saved, so a stop loses at most one",
    )
    add_device(p)
    p.add_argument("--no-ema", action="store_true", help="use the raw weights even when the checkpoint has EMA weights")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


@holding_outputs  # the output's lock, taken once --out is checked, released at the end
def run(args: argparse.Namespace, held: Any) -> int:
    from occkit.engine.checkpoint import checkpoint_identity
    from occkit.experiment import build_dataset, dataset_format, load_checkpoint_method
    from occkit.generation.dataset import record_dataset_files
    from occkit.generation.figure import generation_figure
    from occkit.generation.generate import generate_scenes, partial_folder, saved_frames
    from occkit.viz.draw import save_png

    out = Path(args.out)
    if args.text is not None:
        from occkit.commands.checks import check_text

        check_text(args.text)
    if args.text_only and not args.occupancy:
        raise ValueError("--text-only goes with --occupancy (whose layouts become the labels)")
    from occkit.output_folders import check_output_folder
    from occkit.outputs import staged_folder

    check_output_folder(out, "generate", inputs={"--data": args.data}, overwrite_option=False)
    from occkit.locks import locked_output

    held.enter_context(locked_output(out, "generate"))  # a second writer of --out now is refused, naming this one
    check_output_folder(out, "generate", inputs={"--data": args.data}, overwrite_option=False)  # again, locked
    method, cfg, folder, device = load_checkpoint_method(args.ckpt, args.device, ema=not args.no_ema)
    if cfg.method != "occscene":
        raise ValueError(f"--ckpt {folder}: a {cfg.method!r} run; occkit generate needs an occscene run")
    mode = (
        "text only, layouts as labels"
        if args.text_only
        else "layout"
        if args.occupancy
        else "perception feedback"
        if args.from_perception
        else "text only"
    )
    fmt = dataset_format(cfg, args.data)  # the run's format; data of another is refused here, in one line
    work = partial_folder(out)
    try:
        with staged_folder(out, "generate") as tmp:  # written whole: a failure leaves no half dataset
            _, rows = generate_scenes(
                method,
                cfg,
                args.data,
                tmp,
                args.n,
                **keywords_of(args, "text", "occupancy", "from_perception", "split", "steps", "seed", "batch_size"),
                guidance_scale=args.guidance,
                progress=not args.no_progress,
                record=checkpoint_identity(folder, ema=not args.no_ema),
                use_layout=not args.text_only,
                make_dataset=lambda root, split: build_dataset(cfg, root, split, train=False),
                work=work,
                fmt=fmt,
            )
            save_png(tmp / "preview.png", generation_figure(rows, title=f"occkit generate ({mode}): {folder}", fmt=fmt))
            record_dataset_files(tmp)
    except KeyboardInterrupt:
        kept = saved_frames(work) if work.is_dir() else 0
        where = (
            f"{kept} of {args.n} frames kept in {work}; run the same command again to continue"
            if kept
            else "no batch finished"
        )
        print(f"occkit generate: stopped; {where}", file=sys.stderr, flush=True)
        return 130
    shutil.rmtree(work, ignore_errors=True)
    print(f"occkit generate: {args.n} frames ({mode}) in {out} (preview.png, files.json)")
    return 0
