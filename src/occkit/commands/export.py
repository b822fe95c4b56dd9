"""``occkit export --ckpt RUN --out model.onnx``: a run's camera network as an ONNX file, checked
against PyTorch under onnxruntime.

The graph takes ``images (B, N, 3, H, W)`` in [0, 1], ``intrinsics (B, N, 3, 3)`` and
``T_ego_from_cam (B, N, 4, 4)`` and gives ``logits (B, C, X, Y, Z)`` and ``labels (B, X, Y, Z)``
uint8, as the recipe's ``predict`` makes them (:mod:`occkit.export.onnx`). Recipes whose prediction
is the camera network are exported (supervised, render_sup, radocc's student, easyocc, cigocc);
LiDAR and fusion networks, langocc and occscene are refused with the reason.

Parity: on ``--frames`` validation frames of ``--check-data`` (random frames of a plausible rig,
with a warning, when no dataset is given: a run's config does not record its dataset folder),
eager PyTorch and onnxruntime run the same inputs: the largest logit difference, the agreement of
the labels with the recipe's own ``predict`` over all voxels, and the time per frame of each at
batch 1 side by side. Below ``--min-agreement`` nothing is written. The figures go to
``OUT.json`` beside the model too; the model's ``metadata_props`` record the checkpoint, its
SHA-256, the recipe, grid, classes, image size and the exporter that wrote it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from occkit.commands.checks import nonneg_int, percent_float, positive_int
from occkit.commands.options import add_ckpt, add_out


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_ckpt(p)
    add_out(p, "the .onnx file to write (its report: OUT.json beside it)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out (and its .json)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's; at least 16)")
    p.add_argument(
        "--dynamic-batch",
        action="store_true",
        help="leave the batch axis free (default: batch 1); the parity check then also runs the frames as one batch",
    )
    p.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        default=None,
        help="network input size (default: the run's data.image_aug.out_hw); multiples of the backbone's "
        "largest stride",
    )
    p.add_argument(
        "--check-data",
        default=None,
        metavar="DATA",
        help="dataset whose validation frames the parity check runs on (default: random frames, with a warning)",
    )
    p.add_argument("--frames", type=nonneg_int, default=4, help="frames of the parity check (default 4; 0: no check)")
    p.add_argument(
        "--runs", type=positive_int, default=5, help="timed runs of each runtime after a warm-up (default 5)"
    )
    p.add_argument(
        "--threads", type=positive_int, default=1, help="threads of PyTorch and of onnxruntime in the check (default 1)"
    )
    p.add_argument(
        "--min-agreement",
        type=percent_float,
        default=99.9,
        help="label agreement (percent of voxels) below which the export fails and nothing is written (default 99.9)",
    )
    p.add_argument(
        "--exporter",
        choices=("auto", "dynamo", "torchscript"),
        default="auto",
        help="auto (default): torch.export-based, the TorchScript-based one when that fails",
    )
    p.add_argument("--no-ema", action="store_true", help="the raw weights even when the checkpoint has EMA weights")
    p.add_argument(
        "--image-norm",
        choices=("running", "frame"),
        default=None,
        help="override the checkpoint's model.image_norm_eval (how the image BatchNorms normalise)",
    )


def check_target(out: Path, overwrite: bool, folder: Path | None = None) -> None:
    """Refuse a folder, an existing ``out`` (or its ``.json``) unless ``overwrite`` and an earlier
    ``occkit export`` wrote it (a file of the user's is never replaced), and a path inside the
    checkpoint folder or the run's ``checkpoints/`` (pruned and checksummed as a whole), and one
    inside a dataset (whose folder and records an export would change: refused as ``synth``,
    ``train`` and ``predict`` refuse it)."""
    from occkit.output_folders import check_not_inside_dataset
    from occkit.outputs import check_output_file

    if out.is_dir():
        raise FileExistsError(f"--out {out}: is a folder; give the .onnx file's path")
    check_not_inside_dataset(out)
    report = out.with_name(out.name + ".json")
    for p in (out, report):
        check_output_file(
            p, what="--out" if p == out else f"--out {out}: its report", command="export", replace_own=overwrite
        )
    if folder is not None:
        guard = folder.parent if folder.parent.name == "checkpoints" else folder
        if out.resolve().is_relative_to(guard.resolve()):
            raise ValueError(
                f"--out {out}: inside the checkpoint folder {guard} (checkpoints are checksummed and pruned "
                "as a whole); write the model elsewhere"
            )


def check_file_name(out: Path) -> Path:
    """The hidden file beside ``out`` that an export writes and checks before renaming it to ``out``:
    named by the process (two exports never share one), those of ended exports removed (the
    caller holds ``out``'s lock, so no other export writes one now)."""
    for stale in out.parent.glob(f".{out.name}.*.check.tmp"):
        stale.unlink(missing_ok=True)
    return out.with_name(f".{out.name}.{os.getpid()}.check.tmp")


def run(args: argparse.Namespace) -> int:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise ValueError(f"needs onnx, onnxscript and onnxruntime ({e}): pip install 'occkit[export]'") from e
    if args.frames < 0 or args.runs < 1 or args.threads < 1:
        raise ValueError("--frames must be >= 0, --runs and --threads >= 1")
    check_target(args.out, args.overwrite)  # before loading anything
    from occkit.locks import output_lock

    lock = output_lock(args.out, "export")  # a second export to --out now is refused, naming this one
    try:
        return _export(args)
    finally:
        lock.release()


def _export(args: argparse.Namespace) -> int:
    import torch

    from occkit.export.onnx import OccPredictor, check_image_size, load_source
    from occkit.outputs import record_output_file, write_json_output

    src = load_source(args.ckpt, ema=not args.no_ema)
    check_target(args.out, args.overwrite, src.folder)
    cfg, method = src.cfg, src.method
    if args.image_norm is not None:
        if not hasattr(method.model, "set_image_norm_eval"):
            raise ValueError(f"--image-norm: the {cfg.method} network of {src.folder} has no image_norm_eval setting")
        method.model.set_image_norm_eval(args.image_norm)
    predictor = OccPredictor(method, cfg.method).eval()
    hw = tuple(args.image_size) if args.image_size else tuple(cfg.data.image_aug.out_hw)
    check_image_size(predictor, hw, "--image-size" if args.image_size else f"{src.folder}: data.image_aug.out_hw")
    cams = tuple(cfg.data.cameras)

    old_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        frames, source = _parity_frames(args, cfg, cams, hw)
        example = _example_inputs(args.dynamic_batch, cams, hw)
        metadata = _metadata(args, src, predictor, hw, cams)
        report = _export_checked(args, src, predictor, example, metadata, frames, source)
        record_output_file(args.out, "export")
        write_json_output(args.out.with_name(args.out.name + ".json"), report, "export")
        print(f"occkit export: wrote {args.out} and {args.out.name}.json")
    finally:
        torch.set_num_threads(old_threads)
    return 0


def _parity_frames(args: argparse.Namespace, cfg, cams: tuple, hw: tuple) -> tuple[list, str | None]:
    """The frames of the parity check and their words in the report: ``--check-data``'s validation frames,
    random frames of a plausible rig (with a warning), or none with ``--frames 0``."""
    from occkit.export.onnx import dataset_frames, random_frames

    if args.frames > 0 and args.check_data:
        frames, split = dataset_frames(cfg, args.check_data, args.frames, hw)
        return frames, f"{len(frames)} frames of {args.check_data} ({split})"
    if args.frames > 0:
        print(
            "occkit export: warning: no --check-data (a run's config does not record its dataset folder): "
            f"the parity check runs on {args.frames} random frames of a plausible {len(cams)}-camera rig",
            file=sys.stderr,
        )
        frames = random_frames(args.frames, cams, hw, seed=0)
        return frames, f"{len(frames)} random frames"
    return [], None


def _example_inputs(dynamic_batch: bool, cams: tuple, hw: tuple) -> tuple:
    """The example inputs the exporter traces: random frames, two of them for a free batch axis."""
    from occkit.export.onnx import random_frames, stack_frames

    ex = stack_frames(random_frames(2 if dynamic_batch else 1, cams, hw, seed=1))
    return (ex.images, ex.intrinsics.float(), ex.T_ego_from_cam.float())


def _metadata(args: argparse.Namespace, src, predictor, hw: tuple, cams: tuple) -> dict:
    """The model's ``metadata_props``: its checkpoint and weights, recipe, grid, classes, inputs and outputs."""
    from occkit import __version__
    from occkit.formats import formats, get_format

    cfg = src.cfg
    net_cfg = cfg.model
    grid = predictor.net.output_grid
    # the class names of the run's format (data.format; with auto, the first format of its class count)
    candidates = list(formats().values()) if cfg.data.format == "auto" else [get_format(cfg.data.format)]
    classes = next((f.classes.names for f in candidates if f.classes.num_classes == net_cfg.num_classes), None)
    metadata = {
        "occkit_version": __version__,
        "checkpoint": str(src.folder.resolve()),
        "weights": src.weights.name,
        "weights_sha256": src.sha256,
        "weights_sha256_source": "checksums.json" if src.sha256_recorded else "computed",
        "recipe": cfg.method,
        "grid_range": list(grid.range_min) + list(grid.range_max),
        "voxel_size": list(grid.voxel_size),
        "grid_shape": list(grid.shape),
        "num_classes": net_cfg.num_classes,
        "classes": list(classes) if classes else None,
        "image_size": list(hw),
        "cameras": list(cams),
        "image_norm_eval": getattr(getattr(predictor.net, "cfg", None), "image_norm_eval", None),
        "dynamic_batch": bool(args.dynamic_batch),
        "inputs": "images (B,N,3,H,W) float32 in [0,1]; intrinsics (B,N,3,3); T_ego_from_cam (B,N,4,4)",
        "outputs": "logits (B,C,X,Y,Z) float32; labels (B,X,Y,Z) uint8",
    }
    if predictor.threshold > 0:  # a calibrated predict (render_sup's): free below it
        metadata["occupied_threshold"] = predictor.threshold
    return metadata


def _export_checked(
    args: argparse.Namespace, src, predictor, example: tuple, metadata: dict, frames: list, source: str | None
) -> dict:
    """Export the network to ``--out`` through a hidden file beside it, which is renamed to ``--out`` only
    when the parity check passes; the export's report."""
    from occkit.export.onnx import check_parity, export_onnx

    # into a hidden file beside --out first: nothing lands at --out unless the check passes
    tmp = check_file_name(args.out)
    try:
        res = export_onnx(
            predictor,
            example,
            tmp,
            opset=args.opset,
            dynamic_batch=args.dynamic_batch,
            exporter=args.exporter,
            metadata=metadata,
        )
        note = f", after the dynamo exporter failed ({res.fallback})" if res.fallback else ""
        print(
            f"occkit export: {src.cfg.method} network of {src.folder} exported by the {res.exporter} exporter{note}, "
            f"opset {res.opset}, {res.bytes / 2**20:.1f} MiB, in {res.seconds:.1f} s"
        )
        parity = None
        if frames:
            parity = check_parity(
                tmp, predictor, src.method, frames, threads=args.threads, runs=args.runs, batch_check=args.dynamic_batch
            )
            parity["source"] = source
            _print_parity(parity, args.threads)
        report = {
            "model": str(args.out),
            "export": {
                "exporter": res.exporter,
                "opset": res.opset,
                "seconds": round(res.seconds, 2),
                "bytes": res.bytes,
                "dynamo_error": res.fallback,
            },
            "metadata": metadata,
            "parity": parity,
        }
        if parity is not None:
            _check_agreement(parity, args.min_agreement, args.out)
        tmp.replace(args.out)
    finally:
        tmp.unlink(missing_ok=True)
    return report


def _check_agreement(parity: dict, min_agreement: float, out: Path) -> None:
    """Refuse an export whose labels agree with PyTorch's on fewer voxels than ``--min-agreement``."""
    worst = min(r["label_agreement"] for r in parity["providers"].values())
    worst_b = min((r["batch"]["label_agreement"] for r in parity["providers"].values() if "batch" in r), default=1.0)
    if 100 * min(worst, worst_b) < min_agreement:
        raise ValueError(
            f"parity check failed: labels agree on {100 * min(worst, worst_b):.3f} % of voxels, below "
            f"--min-agreement {min_agreement} %; {out} not written"
        )


def _print_parity(parity: dict, threads: int) -> None:
    print(
        f"occkit export: parity on {parity['source']} ({parity['voxels']} voxels), batch 1, float32, {threads} "
        f"thread(s), median of {parity['runs']} runs after a warm-up:"
    )
    print(
        f"  {'provider':<22} {'max |logit diff|':>16} {'max |logit|':>11} {'labels agree':>13} {'differ':>7} "
        f"{'PyTorch ms/frame':>17} {'onnxruntime ms/frame':>21}"
    )
    for prov, r in parity["providers"].items():
        print(
            f"  {prov:<22} {r['max_abs_logit_diff']:>16.3g} {r['max_abs_logit']:>11.3g} "
            f"{100 * r['label_agreement']:>12.5f}% "
            f"{r['labels_differ']:>7d} {r['ms_per_frame_torch']:>17.1f} {r['ms_per_frame_onnxruntime']:>21.1f}"
        )
        if "batch" in r:
            b = r["batch"]
            print(
                f"  {'  as one batch of ' + str(b['size']):<22} {b['max_abs_logit_diff']:>16.3g} {'':>11} "
                f"{100 * b['label_agreement']:>12.5f}%"
            )
