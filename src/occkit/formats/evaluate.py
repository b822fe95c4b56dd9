"""Folder scoring that asks the format registry (what ``occkit eval`` runs above the metrics): the
format of a ``--gt`` folder (:func:`detect_format_name`, with the hint that it holds predictions),
occkit's one scoring loop over a prediction folder (:func:`evaluate_predictions`: every format but
Occ3D, whose RayIoU walks LiDAR rays over the poses of a scene in processes of their own, and
``--class-map``), and the summary lines a result's format prints (:func:`table_keys`). The metrics
and the Occ3D folder scorer below it are in :mod:`occkit.metrics.evaluate`.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from occkit.formats.classmap import DROPPED
from occkit.formats.registry import FormatRegistryError, formats, get_format
from occkit.formats.registry import detect_format as detect
from occkit.metrics.base import TABLE_KEYS, Targets
from occkit.metrics.evaluate import _bar, _batched, _match, _prefetch, check_provenance, looks_like_predictions


def detect_format_name(gt_root: str | os.PathLike, pred_root: str | os.PathLike | None = None) -> str:
    """The name of the format of the dataset folder ``gt_root`` (the registry's
    :func:`occkit.formats.detect_format`: the first format whose ``detect`` answers); otherwise an
    error naming the folder and the formats tried, and saying so when it is a prediction folder (and
    ``pred_root`` the dataset: the two swapped)."""
    root = Path(gt_root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: ground-truth folder not found")
    try:
        return detect(root).name
    except FormatRegistryError as e:
        why = looks_like_predictions(root)
        if why is None:
            raise ValueError(str(e)) from None
    if pred_root is not None and Path(pred_root).is_dir():
        with contextlib.suppress(FormatRegistryError):
            fmt = detect(pred_root)
            raise ValueError(
                f"--gt {root} is a prediction folder ({why}) and --pred {pred_root} is the dataset "
                f"(a {fmt.name} dataset: {fmt.detect(Path(pred_root))}): --gt and --pred are swapped"
            )
    raise ValueError(f"--gt {root} is a prediction folder ({why}); --gt takes the dataset folder")


def evaluate_predictions(
    fmt: Any,
    gt_root: str | os.PathLike,
    pred_dir: str | os.PathLike,
    split: str = "val",
    allow_missing: bool = False,
    device: str | torch.device = "cpu",
    workers: int = 4,
    progress: bool | None = None,
    batch_size: int = 1,
    class_map: Any = None,
    region: Any = None,
    **options: Any,
) -> dict[str, Any]:
    """A prediction folder scored by a format's own parts (what ``occkit eval`` runs for a format
    with no ``evaluate_folder``): its frames (``fmt.open_split``, no images), its prediction files
    (``fmt.predictions``) and its metrics (``fmt.new_metrics(**options)``), batch by batch.

    ``class_map`` (:class:`occkit.formats.classmap.ClassMap` onto ``fmt``, or onto a format of its
    class table): the predictions are the files of the map's source format, brought onto ``fmt``'s
    grid and frame where they differ as ``occkit convert`` brings labels
    (:class:`occkit.formats.resample.PredictionResampler`: each ground-truth voxel takes the predicted
    voxel holding its centre; voxels outside the predictions' grid left out), and both they and the
    ground truth are scored on the map's common classes (an Occ3D-style mIoU, the free class last,
    inside the voxels ``fmt`` scores; voxels of a dropped class on either side left out).

    ``region`` (``occkit eval --frustum``: a ``token -> (X, Y, Z) bool``, the voxels that count):
    applied here, by occkit, whatever the format's metrics know of regions: outside it the ground
    truth is the format's ignore id, the masks are false and ``extra["region"]`` says where it is.
    The result records ``str(region)`` under ``region``.

    Returns ``benchmark`` (the format's name), ``split``, the first metric's result, every other
    metric's keys, ``frames``, ``missing`` and ``extra`` (and ``class_map``, its file).
    """
    if region is not None and class_map is not None:
        raise ValueError("--frustum with --class-map: the common classes are scored inside the format's own voxels")
    if region is not None and fmt.classes.ignore is None:
        raise ValueError(
            f"--frustum: the {fmt.display_name} format's class table has no ignore id, through which occkit leaves "
            "the voxels outside the region unscored"
        )
    files = fmt.predictions
    if class_map is not None:
        from occkit.metrics.occ3d import Occ3DMetric

        target = get_format(class_map.target)
        if class_map.target != fmt.name and target.classes.names != fmt.classes.names:
            raise ValueError(
                f"--class-map {class_map.path}: maps onto {class_map.target}, but --gt {gt_root} is a {fmt.name} "
                "dataset"
            )
        source = get_format(class_map.source)
        g, h = source.grid, fmt.grid
        same = (g.shape, tuple(g.range_min), tuple(g.voxel_size)) == (h.shape, tuple(h.range_min), tuple(h.voxel_size))
        families = [None if f.label_writer is None else f.label_writer.family for f in (source, fmt)]
        if not same and (None in families or families[0] != families[1]):
            raise ValueError(
                f"--class-map {class_map.path}: {source.name}'s grid {g.shape} from {tuple(g.range_min)} at "
                f"{tuple(g.voxel_size)} m is not {fmt.name}'s {h.shape} from {tuple(h.range_min)} at "
                f"{tuple(h.voxel_size)} m, and no frame transform joins the two layouts (other sensor rigs); "
                "occkit eval --class-map resamples between the grids of one family (occkit convert lists them)"
            )
        files = source.predictions
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise FileNotFoundError(f"{pred_dir}: prediction folder not found")
    ds = fmt.open_split(gt_root, split, load_images=False, load_gt=True)
    gt_ids = list(ds.tokens)
    if not gt_ids:
        raise ValueError(f"{gt_root}: no labelled frames in split {split!r}")
    pred_files = files.index(pred_dir)
    check_provenance(pred_dir, pred_files)
    tokens, n_missing, n_extra = _match(gt_ids, pred_files, pred_dir, allow_missing)
    if class_map is None:
        metrics = fmt.new_metrics(device=device, num_classes=fmt.classes.num_classes, **options)
    else:
        names = class_map.names
        metrics = [Occ3DMetric(mask="camera", num_classes=len(names), class_names=names, device=device)]

    resample = None
    if class_map is not None:
        from occkit.formats.resample import PredictionResampler

        resample = PredictionResampler(source, fmt, ds)

    def load(token: str) -> tuple[np.ndarray, Any]:
        pred = files.read(pred_files[token])
        sample = ds[ds.index_of(token)]
        if sample.occupancy is None:
            raise ValueError(
                f"{gt_root}: frame {token} of split {split!r} has no labels (a test split?): nothing to score"
            )
        if region is not None:
            r = np.asarray(region(token))
            if r.shape != tuple(pred.shape) or r.dtype != np.bool_:
                raise ValueError(
                    f"region {region}: frame {token}: expected a bool array of shape {tuple(pred.shape)}, "
                    f"got {r.dtype} {r.shape}"
                )
            sample.extra["region"] = torch.from_numpy(r)
        if resample is not None:  # onto the ground truth's grid; voxels the predictions' grid misses left out
            pred, covered = resample(token, pred)
            if covered is not None:
                sample.extra["covered"] = torch.from_numpy(covered)
        return pred, sample

    bar = _bar(len(tokens), progress)
    loaded = _prefetch(load, tokens, workers)
    for batch in _batched(tokens, batch_size):
        items = [next(loaded) for _ in batch]
        pred = torch.from_numpy(np.stack([p for p, _ in items])).to(device)

        def stacked(name: str, items: list[Any] = items) -> torch.Tensor | None:
            vals = [getattr(s, name) for _, s in items]
            return None if any(v is None for v in vals) else torch.stack(vals).to(device)

        target = Targets(
            occupancy=stacked("occupancy"),
            tokens=list(batch),
            mask_camera=stacked("mask_camera"),
            mask_lidar=stacked("mask_lidar"),
        )
        if class_map is not None:  # both sides on the common classes; dropped voxels out of the region
            src_lut = torch.from_numpy(class_map.source_lut.astype(np.int64)).to(device)
            dst_lut = torch.from_numpy(class_map.target_lut.astype(np.int64)).to(device)
            p, t = src_lut[pred.long()], dst_lut[target.occupancy.long().clamp(0, 255)]
            keep = (p != DROPPED) & (t != DROPPED)
            covered = [s.extra.get("covered") for _, s in items]
            if all(c is not None for c in covered):
                keep &= torch.stack(covered).to(device)
            free = class_map.free
            pred = torch.where(keep, p, free)
            target.occupancy = torch.where(keep, t, free)
            target.extra["region"] = keep
            if target.mask_camera is None:
                target.mask_camera = torch.ones_like(keep)
        if region is not None:  # occkit applies the region: outside it nothing is scored, whatever the metric
            inside = torch.stack([s.extra["region"] for _, s in items]).to(device)
            target.occupancy = target.occupancy.masked_fill(~inside, int(fmt.classes.ignore))
            for key in ("mask_camera", "mask_lidar"):
                m = getattr(target, key)
                setattr(target, key, inside if m is None else m.bool() & inside)
            target.extra["region"] = inside
        for m in metrics:
            m.update(pred, target)
        if bar is not None:
            bar.update(len(batch))
    if bar is not None:
        bar.close()
    out: dict[str, Any] = {"benchmark": fmt.name, "split": split}
    for m in reversed(metrics):  # the first metric's keys win
        out.update(m.compute())
    out["missing"], out["extra"] = n_missing, n_extra
    if class_map is not None:
        out["benchmark"] = f"{fmt.name} on the common classes of {class_map.path.stem}"
        out["class_map"] = str(class_map.path)
    if region is not None:
        out["region"] = str(region)
    return out


def table_keys(benchmark: str | None) -> tuple[str, ...]:
    """The summary lines of a result of the format ``benchmark`` (its ``table_keys``; the default
    lines for a result of no known format)."""
    fmt = formats().get(benchmark) if isinstance(benchmark, str) else None
    return fmt.table_keys if fmt is not None else TABLE_KEYS
