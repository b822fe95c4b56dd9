"""``occkit predict --ckpt CKPT --data DIR --out PRED``: submission files in the dataset's format,
one per frame.

Loads the checkpoint's ``config.json`` and safetensors weights (no pickle; checksums verified),
runs the method over a split and writes the files the data's format writes (its
``DatasetFormat.predictions``; Occ3D: ``PRED/<token>.npz``, ``semantics`` uint8 (200, 200, 16);
SurroundOcc, OpenOccupancy: ``PRED/<token>.npy``; NYUv2: ``PRED/<token>.npz``; SemanticKITTI,
SSCBench-KITTI-360: ``PRED/sequences/XX/predictions/NNNNNN.label``) and ``PRED/provenance.json`` (checkpoint, data,
split, time, tokens). The folder is written whole: into a hidden temporary folder beside it,
renamed into place at the end, so a failure leaves no mix of old and new files. A non-empty
``PRED`` is refused unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from occkit.commands.checks import holding_outputs, nonneg_int, positive_int
from occkit.commands.options import add_ckpt, add_data, add_device, add_out, add_overrides, add_split


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_ckpt(p)
    add_data(
        p,
        "dataset folder of any format (occkit.formats); the predictions are written in its layout",
        type=str,
    )
    add_out(
        p,
        "output folder for the prediction files (Occ3D, NYUv2: <token>.npz; SurroundOcc, OpenOccupancy: <token>.npy; "
        "the KITTI layouts: sequences/XX/predictions/NNNNNN.label) and provenance.json (new or empty, unless "
        "--overwrite)",
        type=str,
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a non-empty --out folder (only once every new prediction is written)",
    )
    add_split(p, "split to predict")
    add_device(p)
    p.add_argument("--batch-size", type=positive_int, default=1, help="frames per forward pass (default 1)")
    p.add_argument("--workers", type=nonneg_int, default=0, help="data loader workers (default 0)")
    p.add_argument(
        "--fast",
        choices=("auto", "graph", "compile", "off"),
        default="auto",
        help="on CUDA: bf16 autocast with a CUDA graph per input shape (graph), torch.compile "
        "reduce-overhead (compile: about 20 s to compile, the fastest after), auto: compile from 4500 "
        "frames on, else graph; off: the method's own predict at the checkpoint's precision. A capture "
        "that fails falls back to eager with one line. Nothing changes on a CPU (default auto)",
    )
    p.add_argument("--no-ema", action="store_true", help="use the raw weights even when the checkpoint has EMA weights")
    p.add_argument(
        "--image-norm",
        choices=("running", "frame"),
        default=None,
        help="override the checkpoint's model.image_norm_eval: how the image BatchNorms normalise "
        "(running averages or each frame's own statistics); the weights are the same",
    )
    add_overrides(
        p,
        "override the checkpoint's config for this prediction: inference settings, e.g. "
        "langocc.occupied_threshold=0.35 (recorded in provenance.json; a key that changes the network's "
        "shapes fails at loading; repeatable)",
    )
    p.add_argument("--eval", action="store_true", help="also print mIoU (camera mask) against the split's ground truth")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def predicted_files(folder: Path) -> set[str] | None:
    """The files an earlier ``occkit predict`` wrote in ``folder`` by its ``provenance.json``
    (made before the folder recorded its files), or None when it does not say."""
    from occkit.metrics.evaluate import read_provenance

    try:
        tokens = read_provenance(folder)["tokens"]
    except (OSError, ValueError):
        return None
    from occkit.formats import formats

    names = {"provenance.json"}
    where = [f.predictions.relpath for f in formats().values() if f.predictions.relpath is not None]
    for t in tokens:  # the folder's format is not recorded: the files any format would have written
        for relpath in where:
            try:
                names.add(relpath(t))
            except ValueError:  # a token this format cannot name (SemanticKITTI's need "<seq>/<frame>")
                continue
    return names


@holding_outputs  # the output's lock, taken once --out is checked, released at the end
def run(args: argparse.Namespace, held: Any) -> int:
    from occkit import __version__
    from occkit.engine.checkpoint import checkpoint_identity
    from occkit.engine.data import eval_batches
    from occkit.engine.evaluate import check_prediction_target, run_amp, score_frames, write_prediction_folder
    from occkit.experiment import build_dataset, load_checkpoint_method
    from occkit.models.occnet import OccNet

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    from occkit.outputs import check_not_dangling

    check_not_dangling(args.out)  # a link to nothing: refused now, not with "File exists" after predicting
    check_prediction_target(args.out, args.overwrite, inputs={"--data": args.data})  # before loading anything
    from occkit.locks import locked_output

    held.enter_context(locked_output(args.out, "predict"))  # a second writer of --out now is refused, naming this one
    check_prediction_target(args.out, args.overwrite, inputs={"--data": args.data})  # again under the lock
    from occkit.outputs import check_own_files, record_folder_files

    if Path(args.out).is_dir():  # --overwrite replaces only the files predict wrote there
        check_own_files(args.out, "predict", legacy_files=predicted_files)
    method, cfg, folder, device = load_checkpoint_method(
        args.ckpt, args.device, ema=not args.no_ema, overrides=args.set
    )
    if args.image_norm is not None:
        nets = [m for m in method.modules() if isinstance(m, OccNet)]
        if not nets:
            raise ValueError(f"--image-norm: the checkpoint {folder} holds no OccNet")
        for net in nets:
            net.set_image_norm_eval(args.image_norm)
    amp = run_amp(cfg, device)
    ds = build_dataset(cfg, args.data, args.split, load_gt=args.eval)
    if len(ds) == 0:
        raise ValueError(f"{args.data}: split '{args.split}' has no frames")
    loader = eval_batches(ds, args.batch_size, workers=args.workers, pin_memory=device.type == "cuda")
    provenance = {
        **checkpoint_identity(folder, not args.no_ema),
        "data": str(Path(args.data).resolve()),
        "split": args.split,
        "image_norm": args.image_norm or getattr(cfg.model, "image_norm_eval", None),
        "occkit_version": __version__,
    }
    if args.set:
        provenance["set"] = list(args.set)
    from occkit.formats import format_of

    fmt = format_of(ds)  # the data's format writes the files (occkit eval reads them back)
    from occkit.engine.evaluate import check_prediction_name
    from occkit.experiment import base_dataset

    base = base_dataset(ds)
    names_from = str(getattr(base, "annotations_path", None) or f"--data {args.data}")
    tokens = base.tokens if isinstance(getattr(base, "tokens", None), list) else []
    for token in tokens:  # a token naming a file outside --out (absolute, ..): refused before predicting
        check_prediction_name(fmt, Path(args.out), token, names_from)
    from occkit.export.fast_predict import fast_predictor

    method, how = fast_predictor(method, cfg.method, getattr(args, "fast", "auto"), device, len(ds))
    if how:
        print(how, file=sys.stderr)
    n = write_prediction_folder(
        method,
        loader,
        args.out,
        device,
        provenance,
        amp,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        total=len(loader),
        dataset_format=fmt,
        names_from=names_from,
        dataset=base,  # its ground truth's fingerprint recorded, where it has one
    )
    record_folder_files(args.out, "predict")
    print(f"occkit predict: wrote {n} predictions to {args.out} (checkpoint {folder})")
    if args.eval:
        scores = score_frames(method, cfg, ds, loader, device, amp, progress=not args.no_progress)
        print(
            f"occkit predict: mIoU ({scores.get('mask', 'camera')} mask) {scores['miou']:.2f}, geometry IoU "
            f"{scores['geometry_iou']:.2f} over "
            f"{scores['frames']} frames"
        )
    return 0
