"""``occkit eval --gt DIR --pred DIR [--format auto|NAME] [--split val|train|all]
[--mask camera|lidar|both|none] [--metrics miou,rayiou] [--frustum RUN] [--infos FILE] [--json FILE] [--csv FILE]
[--allow-missing]``: the official metrics of a folder of predictions.

``--frustum RUN`` (Occ3D mIoU, not part of the official metric): only the voxels inside the view
frusta of the cameras the trained run sees count, on top of ``--mask``: a model given fewer
cameras than the dataset has (``data.cameras``: OccScene's CPU preset sees the front camera only) is
then scored where it can see, not on the whole camera mask.

The benchmark is the dataset format of ``--gt`` (detected by the format registry,
:func:`occkit.formats.detect_format`: ``annotations.json``: Occ3D-nuScenes; ``sequences/``:
SemanticKITTI; and the formats of installed packages), which scores the folder its own way
(``FormatScoring.evaluate_folder``, else its metrics over its prediction files). Prints a per-class
table; numbers are percentages like the official tables.
"""

from __future__ import annotations

import argparse
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

from occkit.commands.checks import nonneg_int, positive_int
from occkit.commands.options import add_data, add_device, add_mask, add_split, keywords_of


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_data(p, "ground-truth dataset folder", flag="--gt")
    p.add_argument(
        "--pred",
        type=Path,
        required=True,
        help="predictions folder in the format's layout, as occkit predict writes it (Occ3D, NYUv2: <token>.npz; "
        "SurroundOcc, OpenOccupancy: <token>.npy; SemanticKITTI, SSCBench-KITTI-360: "
        "sequences/XX/predictions/NNNNNN.label)",
    )
    p.add_argument(
        "--format",
        default="auto",
        metavar="NAME",
        help="benchmark: a dataset format's name ({formats}); auto: detected from --gt (default auto)",
    )
    add_split(p, "frames evaluated")
    add_mask(
        p,
        "Occ3D voxels evaluated; camera: as the official challenge",
        default="camera",
        choices=("camera", "lidar", "both", "none"),
    )
    p.add_argument(
        "--metrics",
        default=None,
        help="comma list: miou,rayiou for Occ3D (default: miou); ssc for SemanticKITTI (default: ssc)",
    )
    p.add_argument(
        "--frustum",
        type=Path,
        default=None,
        metavar="RUN",
        help="Occ3D mIoU only inside the view frusta of the cameras the run (folder or checkpoint) sees, "
        "as its evaluation transform crops them, on top of --mask (not the official metric)",
    )
    p.add_argument(
        "--infos",
        type=Path,
        default=None,
        help="the folder occkit prepare nuscenes wrote, or a nuScenes-style info file (.pkl/.json with lidar2ego_*, "
        "ego2global_*), giving the LiDAR poses RayIoU needs on real Occ3D",
    )
    p.add_argument(
        "--class-map",
        default=None,
        metavar="NAME|FILE",
        help="score on the common classes of a class map (configs/classmaps/NAME.yaml: {class_maps}; or a YAML "
        "file): --pred "
        "holds the files of its 'from' format, --gt is a dataset of its 'to' format (or of its class table); "
        "where the grids differ the predictions are resampled onto the ground truth's grid and frame as occkit "
        "convert resamples labels (layouts of one sensor rig only)",
    )
    p.add_argument("--json", type=Path, default=None, help="write the results to this JSON file")
    p.add_argument("--csv", type=Path, default=None, help="write the per-class table to this CSV file")
    p.add_argument(
        "--allow-missing",
        action="store_true",
        help="evaluate the frames that have predictions; warn about missing or extra ones",
    )
    p.add_argument(
        "--allow-duplicate-voxels",
        action="store_true",
        help="SurroundOcc, OpenOccupancy: read a label or prediction file that lists a voxel twice with two classes "
        "as the released code does (SurroundOcc: the last row; OpenOccupancy: the class most rows give) instead of "
        "refusing it; the result records it under duplicate_voxels",
    )
    add_device(p, "torch device for the accumulation: cpu, cuda, ...", default="cpu")
    p.add_argument("--workers", type=positive_int, default=4, help="reader threads (default 4)")
    p.add_argument(
        "--processes",
        type=positive_int,
        default=None,
        help="on the CPU: count the frames in this many spawned processes of one thread each, the same "
        "scores (default: the cores this process may use, its CPU affinity, no more than --threads when "
        "given, nor than the frames; 1: one process of --threads threads)",
    )
    p.add_argument(
        "--threads",
        type=nonneg_int,
        default=0,
        help="the cores the run is given: torch intra-op threads of a single process, and the most processes "
        "the default --processes starts (default 0: torch's choice, all usable cores)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from occkit.scoring.core import asked_names, check_metric_names
    from occkit.scoring.options import check_options

    _check_outputs(args)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    fmt = _benchmark(args)
    metrics = asked_names(args.metrics)
    values = {
        "mask": args.mask,
        "metrics": metrics or None,
        "infos": args.infos,
        "region": args.frustum,
        "processes": args.processes,
        "duplicate_voxels": args.allow_duplicate_voxels,
    }
    check_options(fmt, values, class_map=args.class_map is not None)  # each refusal written once, as data
    if args.class_map is None:
        check_metric_names(fmt, metrics)  # refused before any work, never dropped from the result
    _check_camera_mask(args, fmt)
    result = _score(args, fmt, values)
    _report(args, result)
    return 0


def _check_camera_mask(args: argparse.Namespace, fmt: Any) -> None:
    """Refuse scoring inside the camera mask of labels whose index records no cameras and whose first frame's
    camera mask holds no voxel (``occkit label`` on a rig without cameras: docs/labels.md): every figure would
    be NaN. An index without cameras whose labels hold a camera mask is scored as before."""
    if args.mask not in ("camera", "both") or not (Path(args.gt) / "annotations.json").is_file():
        return  # (a layout without an index of its frames records no cameras of its own: nothing to check)
    try:
        ds = fmt.open_split(args.gt, "all", load_images=False, load_gt=False)
        said = getattr(ds, "records_no_cameras", None)
        if not (callable(said) and len(ds) and said()):
            return
        mask = ds.label_masks(0)[1].get("camera")  # an index without cameras may still hold a camera mask
    except Exception:  # the scoring names what the folder lacks
        return
    if mask is not None and not mask.any():
        raise ValueError(
            f"--mask {args.mask}: {args.gt} records no cameras (labels of a recording without them: their camera "
            "mask holds no voxel); score with --mask lidar or --mask none"
        )


def _check_outputs(args: argparse.Namespace) -> None:
    """``--json`` and ``--csv``: two files, neither an input nor inside one."""
    from occkit.outputs import check_output_file

    if args.json is not None and args.csv is not None and Path(args.json).resolve() == Path(args.csv).resolve():
        raise ValueError(
            f"--json {args.json} and --csv {args.csv}: the same file, which the second report would overwrite; give "
            "two paths"
        )
    for opt, path in (("--json", args.json), ("--csv", args.csv)):
        if path is not None:
            check_output_file(path, {"--gt": args.gt, "--pred": args.pred}, what=opt, command="eval")


def _benchmark(args: argparse.Namespace) -> Any:
    """The format scoring ``--gt``: detected, or ``--format`` checked against the folder; its split checked."""
    from occkit.formats import get_format
    from occkit.scoring.folder import detect_format_name

    if (Path(args.pred) / "annotations.json").is_file() and (Path(args.gt) / "annotations.json").is_file():
        raise ValueError(
            f"--pred {args.pred}: a dataset (it holds annotations.json), not a prediction folder; give the folder "
            "occkit predict wrote (occkit predict --ckpt RUN --data DATA --out PRED)"
        )
    fmt = get_format(detect_format_name(args.gt, args.pred) if args.format == "auto" else args.format)
    if args.format != "auto":  # forced on a folder of another layout: say so, not what the reader misses
        _check_forced_format(fmt, Path(args.gt))
    if args.split not in (*fmt.splits, "all"):
        raise ValueError(
            f"--split {args.split}: the {fmt.display_name} format has the splits {', '.join((*fmt.splits, 'all'))}"
        )
    return fmt


def _score(args: argparse.Namespace, fmt: Any, values: dict[str, Any]) -> dict[str, Any]:
    """The folder scored by the format (its ``evaluate_folder``, else occkit's loop), the warnings printed."""
    from functools import partial

    from occkit.metrics.evaluate import default_processes
    from occkit.scoring.folder import evaluate_predictions
    from occkit.scoring.options import scoring_options

    values = {**values, "processes": args.processes if args.processes is not None else default_processes(args.threads)}
    if args.frustum is not None:
        values["region"] = FrustumRegion(args.frustum, args.gt, args.split)
        values["region"].check()
    if args.class_map is not None:
        from occkit.formats.classmap import load_class_map

        # the common classes are scored by the generic scoring, inside the voxels --gt's format scores
        score = partial(evaluate_predictions, fmt, class_map=load_class_map(args.class_map))
        options = {}
    else:
        score = fmt.scoring.evaluate_folder or partial(evaluate_predictions, fmt)
        options = scoring_options(fmt, values)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = score(
            args.gt,
            args.pred,
            **keywords_of(args, "split", "allow_missing", "device", "workers"),
            progress=False if args.no_progress else None,
            **options,
        )
    for w in caught:
        print(f"occkit eval: warning: {w.message}")
    return result


def _report(args: argparse.Namespace, result: dict[str, Any]) -> None:
    """The per-class table printed, and the result written where ``--json`` / ``--csv`` ask."""
    from occkit.metrics.evaluate import format_table, write_result_csv, write_result_json
    from occkit.outputs import record_output_file
    from occkit.scoring.folder import table_keys

    print(format_table(result, table_keys(result.get("benchmark"))))
    for path, write in ((args.json, write_result_json), (args.csv, write_result_csv)):
        if path is not None:
            write(path, result)
            record_output_file(path, "eval")
            print(f"wrote {path}")


def _check_forced_format(fmt: Any, root: Path) -> None:
    """``--format NAME`` on a folder that other formats claim and NAME does not (nor a layout it
    refines): refused naming what the folder holds. A folder no format claims is left to NAME's
    reader, which names what it lacks."""
    from occkit.formats.registry import detect_claims

    if not root.is_dir():
        return
    claims = detect_claims(root)
    names = {spec.name for spec, _ in claims}
    if claims and fmt.name not in names and not names & set(fmt.detection.refines):
        held = "; ".join(f"{spec.name} ({why})" for spec, why in claims)
        raise ValueError(
            f"--format {fmt.name}: {root} is not a folder of the {fmt.display_name} format; it holds {held}"
        )


class FrustumRegion:
    """``token -> (X, Y, Z) bool``: the voxels inside the view frusta of the cameras a trained run
    sees (its ``data.cameras``, resized and cropped as its evaluation transform does), the ``region``
    of occkit's scoring loop (:func:`occkit.scoring.folder.evaluate_predictions`).
    Picklable (the dataset is opened lazily in each process); frames with the same calibration
    share one mask."""

    def __init__(self, run: str | Path, gt_root: str | Path, split: str) -> None:
        self.run, self.gt_root, self.split = str(run), str(gt_root), split
        self._state: Any = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"run": self.run, "gt_root": self.gt_root, "split": self.split}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["run"], state["gt_root"], state["split"])

    def _open(self) -> Any:
        if self._state is None:
            from occkit.data.wrappers import base_dataset
            from occkit.engine.checkpoint import CONFIG_FILE, load_config_dict, resolve_checkpoint
            from occkit.experiment import build_dataset, experiment_from_dict

            folder = resolve_checkpoint(self.run)
            cfg = experiment_from_dict(load_config_dict(folder), where=str(folder / CONFIG_FILE))
            ds = build_dataset(cfg, self.gt_root, self.split, load_gt=False)
            base = base_dataset(ds)
            lidar_only = getattr(getattr(cfg, "model", None), "modality", "camera") == "lidar"  # its cameras are unused
            self._state = (ds, base, () if lidar_only else tuple(cfg.data.cameras), {})
        return self._state

    def check(self) -> None:
        """Opens the run's config and the dataset now, so that a bad ``--frustum`` fails before any work."""
        ds, base, cams, _ = self._open()
        if not cams:
            raise ValueError(
                f"--frustum {self.run}: the run uses no cameras (a LiDAR-only run: model.modality lidar, or no "
                "data.cameras), so it has no view frustum; give a run with cameras"
            )
        if len(ds) == 0:
            raise ValueError(f"--frustum {self.run}: {self.gt_root} has no frames in split {self.split!r}")

    def __call__(self, token: str) -> np.ndarray:
        from occkit.geometry.frustum import frustum_mask

        with self._lock:
            ds, base, _, cache = self._open()
            s = ds[base.index_of(token)]
            hw = tuple(int(v) for v in s.images.shape[-2:])
            key = (s.intrinsics.numpy().tobytes(), s.T_ego_from_cam.numpy().tobytes(), hw)
            if key not in cache:
                m = frustum_mask(base.grid, s.intrinsics[None].float(), s.T_ego_from_cam[None].float(), hw)[0]
                cache[key] = m.numpy()
                if len(cache) > 64:
                    cache.pop(next(iter(cache)))
            return cache[key]

    def __str__(self) -> str:
        cams = ", ".join(self._state[2]) if self._state is not None else "?"
        return f"frusta of the cameras {cams} as the run {self.run} sees them"
