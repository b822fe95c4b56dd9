"""Folder scoring that asks the format registry (what ``occkit eval`` runs above the metrics): the
format of a ``--gt`` folder (:func:`detect_format_name`, with the hint that it holds predictions),
occkit's one scoring loop over a prediction folder (:func:`evaluate_predictions`: the files read and
matched to frames, the region and the split applied by occkit, in spawned processes on request; the
counting is the core's, :class:`occkit.scoring.core.Scoring`; ``--class-map`` is an adapter around
the loop, :mod:`occkit.scoring.common_classes`), and the summary lines a result's format prints
(:func:`table_keys`). The parts every folder scoring shares (matching files to frames, provenance,
the printed table, JSON / CSV) are in :mod:`occkit.metrics.evaluate`.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from occkit.formats.registry import FormatRegistryError, formats, get_format
from occkit.formats.registry import detect_format as detect
from occkit.formats.registry import quiet as quiet_registry
from occkit.metrics.base import TABLE_KEYS, Targets
from occkit.metrics.evaluate import (
    batched,
    check_provenance,
    looks_like_predictions,
    match_frames,
    one_thread_pool,
    pool_process_start,
    prefetch,
    progress_bar,
)
from occkit.scoring.common_classes import CLASS_MAP_SOURCE, on_common_classes
from occkit.scoring.core import ITEMS, Scoring, restrict

#: What the scoring loop (:func:`evaluate_predictions`) takes of every format it scores, beyond the format's
#: own ``folder_options``: the region (``--frustum``) and the processes.
LOOP_OPTIONS = frozenset({"region", "processes"})
#: What ``occkit eval`` passes to the metrics of every format the loop scores, whatever its ``folder_options``
#: (which name what a format's own ``evaluate_folder`` takes): ``--mask`` and ``--metrics``.
METRIC_OPTIONS = frozenset({"mask", "metrics"})


def detect_format_name(gt_root: str | os.PathLike, pred_root: str | os.PathLike | None = None) -> str:
    """The name of the format of the dataset folder ``gt_root`` (the registry's
    :func:`occkit.formats.detect_format`: the first format whose ``detect`` answers); otherwise an
    error naming the folder and the formats tried, and saying so when it is a prediction folder (and
    ``pred_root`` the dataset: the two swapped)."""
    root = Path(gt_root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: ground-truth folder not found")
    try:
        found = detect(root)
    except FormatRegistryError as e:
        why = looks_like_predictions(root)
        if why is None:
            raise ValueError(str(e)) from None
    else:
        # A format whose predictions share its dataset's top folder (SemanticKITTI's sequences/<XX>/predictions/
        # beside sequences/<XX>/voxels/) detects a prediction folder as a dataset: its provenance.json says
        # otherwise, and the --pred folder, a dataset without one, says the two are swapped.
        why = looks_like_predictions(root)
        if why is None or pred_root is None or looks_like_predictions(pred_root) is not None:
            return found.name
        try:
            detect(pred_root)
        except (FormatRegistryError, OSError):
            return found.name
    if pred_root is not None and Path(pred_root).is_dir():
        with contextlib.suppress(FormatRegistryError):
            fmt = detect(pred_root)
            raise ValueError(
                f"--gt {root} is a prediction folder ({why}) and --pred {pred_root} is the dataset "
                f"(a {fmt.name} dataset: {fmt.detection.detect(Path(pred_root))}): --gt and --pred are swapped"
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
    batch_size: int = 8,
    class_map: Any = None,
    region: Any = None,
    processes: int = 1,
    **options: Any,
) -> dict[str, Any]:
    """A prediction folder scored by a format's own parts: occkit's one scoring loop (what ``occkit
    eval`` runs for a format with no ``evaluate_folder``): its frames (``fmt.open_split``, no
    images), its prediction files (``fmt.predictions``) and its metrics (the core's
    :class:`~occkit.scoring.core.Scoring` of ``fmt`` with ``options``: ``mask``, ``metrics``, ``infos``
    ...), batch by batch.

    A reader with a ``scoring_labels(i)`` (a dict of ``occupancy``, ``mask_camera``, ``mask_lidar``)
    gives the loop its frames' labels without the rest of a sample (cameras, poses); the others are
    read as samples (``dataset[i]``).

    A metric that reads more of the frames than their labels says so through the protocol: its
    ``bind(dataset, tokens)`` runs once before any frame is counted (RayIoU reads and checks every
    scene's LiDAR poses there), its ``frame_extra(token)`` adds a frame's items to the batch's
    ``Targets.extra`` (gathered into lists, read ahead in the reading threads), and its
    ``region_refused`` (a reason) refuses ``region``.

    An option the format declares among its ``read_variants`` (SurroundOcc's and OpenOccupancy's
    ``duplicate_voxels``), when true, reads the format's files its way and adds its part to the result.

    ``class_map`` (:class:`occkit.formats.classmap.ClassMap` onto ``fmt``, or onto a format of its
    class table): the predictions are the files of the map's source format, brought onto ``fmt``'s
    grid and frame where they differ as ``occkit convert`` brings labels
    (:class:`occkit.resampling.PredictionResampler`: each ground-truth voxel takes the predicted
    voxel holding its centre; voxels outside the predictions' grid left out), and both they and the
    ground truth are scored on the map's common classes (an Occ3D-style mIoU, the free class of the
    map, inside the voxels ``fmt`` scores; voxels of a dropped class on either side left out).

    ``region`` (``occkit eval --frustum``: a picklable ``token -> (X, Y, Z) bool``, the voxels that
    count): applied here, by occkit, whatever the format's metrics know of regions: outside it the
    ground truth is the format's ignore id, the masks are false and ``extra["region"]`` says where it
    is. The result records ``str(region)`` under ``region``.

    ``processes`` > 1 (CPU, a format of the registry, no ``class_map``): the frames are split into that
    many contiguous shards (no more than half the frames: a process costs more to start than a frame
    to count), each counted in its own spawned process of one thread and the metrics merged: the same
    scores, about ``processes`` times faster where the cores are free (the RayIoU walk is many short
    numpy calls, which threads of one process do not run side by side). ``occkit eval`` passes
    :func:`occkit.metrics.evaluate.default_processes`; other callers get one process.

    Returns ``benchmark`` (the format's name), ``split``, every metric's keys (the first metric's
    where two give one key: ``frames``), ``missing`` and ``extra`` (and ``class_map``, its file).
    """
    if processes < 1:
        raise ValueError(f"processes: expected >= 1, got {processes}")
    if class_map is not None:  # an adapter around the loop, which knows nothing of class maps
        if region is not None:
            raise ValueError("--frustum with --class-map: the common classes are scored inside the format's own voxels")
        common = on_common_classes(fmt, gt_root, class_map, device)
        out = evaluate_predictions(
            common, gt_root, pred_dir, split, allow_missing, device, workers, progress, batch_size
        )
        out["benchmark"] = f"{fmt.name} on the common classes of {class_map.path.stem}"
        out["class_map"] = str(class_map.path)
        return out
    fmt, finish = _read_variant(fmt, options)
    if region is not None and fmt.classes.ignore is None:
        raise ValueError(
            f"--frustum: the {fmt.display_name} format's class table has no ignore id, through which occkit leaves "
            "the voxels outside the region unscored"
        )
    scoring = Scoring(fmt, device=device, **options)
    if region is not None:
        scoring.refuse_region()
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise FileNotFoundError(f"{pred_dir}: prediction folder not found")
    ds = fmt.open_split(gt_root, split, load_images=False, load_gt=True)
    gt_ids = list(ds.tokens)
    if not gt_ids:
        raise ValueError(f"{gt_root}: no labelled frames in split {split!r}")
    pred_files = fmt.predictions.index(pred_dir)
    check_provenance(pred_dir, pred_files, gt_root, split, gt_ids, ds)
    tokens, n_missing, n_extra = match_frames(gt_ids, pred_files, pred_dir, allow_missing)
    scoring.bind(ds, tokens)  # what a metric reads beyond the labels, checked before any frame is counted
    job = _Job(fmt.name, str(gt_root), split, options, region, batch_size)
    processes = max(1, min(processes, len(tokens) // 2))  # two frames at least per process
    if processes > 1 and _shardable(fmt, device, job, scoring):
        _count_in_processes(job, scoring, pred_files, tokens, workers, processes, progress)
    else:
        bar = progress_bar(len(tokens), progress)
        frames = _Frames(fmt, ds, gt_root, split, pred_files, region, scoring)
        _count(frames, scoring, tokens, device, batch_size, workers, None if bar is None else bar.update)
        if bar is not None:
            bar.close()
    out: dict[str, Any] = {"benchmark": fmt.name, "split": split, **scoring.compute()}
    out["missing"], out["extra"] = n_missing, n_extra
    if region is not None:
        out["region"] = str(region)
    finish(out)
    return out


def _read_variant(fmt: Any, options: dict[str, Any]) -> tuple[Any, Any]:
    """The format as the true options among its ``read_variants`` read it, and what each adds to the
    result (the options are taken out of ``options``)."""
    finishers = []
    for key, variant in fmt.scoring.read_variants.items():
        if options.pop(key, False):
            fmt, finisher = variant(fmt)
            finishers.append(finisher)

    def finish(result: dict[str, Any]) -> None:
        for f in finishers:
            f(result)

    return fmt, finish


def _shardable(fmt: Any, device: Any, job: _Job, scoring: Scoring) -> bool:
    """Whether the frames may be counted in spawned processes: a format of the registry (found again by
    name there), on the CPU, whose metrics and options pickle."""
    if formats().get(fmt.name) is not fmt:
        return False
    return torch.device(device).type == "cpu" and not _cannot_pickle(fmt, job, scoring.metrics)


def _cannot_pickle(fmt: Any, job: _Job, metrics: list[Any]) -> bool:
    """Whether what the processes of :func:`_count_in_processes` exchange (the job, the metrics sent back)
    cannot be pickled: then the frames are counted in this process, with a warning line saying why."""
    import pickle
    import warnings

    try:
        pickle.dumps((job, metrics))
    except Exception as e:  # noqa: BLE001 - PicklingError, AttributeError, TypeError: any means one process
        warnings.warn(
            f"format {fmt.name}{f' ({fmt.source})' if fmt.source else ''}: its metrics or options cannot be sent "
            f"to another process ({type(e).__name__}: {e}); scored in one process",
            stacklevel=2,
        )
        return True
    return False


@dataclass
class _Truth:
    """A frame's ground truth as the loop reads it from a reader's ``scoring_labels(i)`` (the fields of
    a sample that scoring takes)."""

    occupancy: torch.Tensor
    mask_camera: torch.Tensor | None = None
    mask_lidar: torch.Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def read_on_grid(fmt: Any, ds: Any, path: Path) -> np.ndarray:
    """A prediction file of ``fmt`` read on the grid of the dataset ``ds`` it is scored on: the format's
    ``read`` as it is, or, for a dataset whose index states another grid than the format's (Occ3D's layout
    from ``occkit label --grid``; docs/labels.md, "Classes, grid and output format"), with ``shape`` that grid's."""
    grid = getattr(ds, "grid", None)
    if grid is None or tuple(grid.shape) == tuple(fmt.grid.shape):
        return fmt.predictions.read(path)
    try:
        return fmt.predictions.read(path, shape=tuple(grid.shape))
    except TypeError:
        raise ValueError(
            f"{path}: the dataset's grid is {tuple(grid.shape)}, and {fmt.name}'s prediction reader reads only "
            f"its own {tuple(fmt.grid.shape)}"
        ) from None


@dataclass
class _Frames:
    """How one count reads a frame: its prediction and its ground truth (a sample), with the
    region and the items the metrics add to ``Targets.extra``."""

    fmt: Any
    ds: Any
    gt_root: Any
    split: str
    pred_files: dict[str, Path]
    region: Any
    scoring: Scoring

    def __call__(self, token: str) -> tuple[np.ndarray, Any]:
        pred = read_on_grid(self.fmt, self.ds, self.pred_files[token])
        if self.fmt.source != CLASS_MAP_SOURCE:  # a class map's predictions are of its source format's table
            _check_ids(np.asarray(pred), self.fmt.classes, None, lambda: f"{self.pred_files[token]}: prediction")
        i = self.ds.index_of(token)
        labels_only = getattr(self.ds, "scoring_labels", None)  # a reader's labels without the rest of a sample
        sample = _Truth(**labels_only(i)) if labels_only is not None else self.ds[i]
        if sample.occupancy is None:
            raise ValueError(
                f"{self.gt_root}: frame {token} of split {self.split!r} has no labels (a test split?): nothing to score"
            )
        sample.occupancy = _narrow(sample.occupancy)  # here, in the reading threads
        _check_ids(sample.occupancy, self.fmt.classes, self.fmt.classes.ignore, lambda: self._gt_file(i, token))
        if self.region is not None:
            sample.extra["region"] = torch.from_numpy(self._region(token, pred.shape))
        if self.scoring.reads_frames:
            sample.extra[ITEMS] = self.scoring.frame_items(token)
        return pred, sample

    def _region(self, token: str, shape: tuple[int, ...]) -> np.ndarray:
        r = np.asarray(self.region(token))
        if r.shape != tuple(shape) or r.dtype != np.bool_:
            raise ValueError(
                f"region {self.region}: frame {token}: expected a bool array of shape {tuple(shape)}, got {r.dtype} "
                f"{r.shape}"
            )
        return r

    def _gt_file(self, i: int, token: str) -> str:
        """Where frame ``i``'s ground truth is read from, for an error: the reader's file, else the folder."""
        try:
            return f"{self.ds.frame_labels(i)[2]}: ground truth of frame {token}"
        except Exception:  # noqa: BLE001 - a reader without frame_labels, or one that refuses the ids itself
            return f"{self.gt_root}: ground truth of frame {token}"


def _check_ids(labels: Any, table: Any, ignore: int | None, where: Any) -> None:
    """Class ids outside ``table`` (0 .. C-1, and ``ignore`` where given) refused in one line naming the
    file (``where()``), the id and the format's classes, before a metric reads them
    (:func:`occkit.labels.refuse_ids_outside`, which training's frames go through too)."""
    from occkit.labels import refuse_ids_outside

    refuse_ids_outside(labels, table.num_classes, ignore, where)


def _count(
    frames: _Frames,
    scoring: Scoring,
    tokens: list[str],
    device: Any,
    batch_size: int,
    workers: int,
    advance: Any,
) -> None:
    """``scoring`` updated with the frames ``tokens``, batch by batch (reading ``workers`` ahead)."""
    loaded = prefetch(frames, tokens, workers)
    for batch in batched(tokens, batch_size):
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
        if frames.region is not None:  # occkit applies the region: outside it nothing is scored, whatever the metric
            inside = torch.stack([s.extra["region"] for _, s in items]).to(device)
            restrict(target, inside, frames.fmt.classes.ignore)
        read_ahead = [s.extra[ITEMS] for _, s in items] if scoring.reads_frames else None
        scoring.update(pred, target, read_ahead)
        if advance is not None:
            advance(len(batch))


def _narrow(labels: torch.Tensor) -> torch.Tensor:
    """Class ids as uint8 where they fit (a reader's int64 labels): the metrics' confusion counts take
    uint8 on the CPU several times faster, with the same counts."""
    if labels.dtype == torch.uint8 or labels.is_floating_point() or not labels.numel():
        return labels
    if int(labels.min()) >= 0 and int(labels.max()) <= 255:
        return labels.to(torch.uint8)
    return labels


@dataclass(frozen=True)
class _Job:
    """What a process of :func:`_count_in_processes` needs to count its share: the format by its
    registry name, the folder and split, the metrics' options, the region, the batch size."""

    fmt: str
    gt_root: str
    split: str
    options: dict[str, Any]
    region: Any
    batch_size: int


def _count_shard(job: _Job, pred_files: dict[str, Path], tokens: list[str], workers: int, queue: Any) -> list[Any]:
    """One process's share: its metrics with ``tokens`` counted; each finished batch's frame count
    is put on ``queue`` (the parent's progress bar)."""
    torch.set_num_threads(1)
    quiet_registry()  # the parent said its warning lines already
    fmt = get_format(job.fmt)
    scoring = Scoring(fmt, device="cpu", **job.options)
    ds = fmt.open_split(job.gt_root, job.split, load_images=False, load_gt=True)
    scoring.bind(ds, tokens)
    frames = _Frames(fmt, ds, job.gt_root, job.split, pred_files, job.region, scoring)
    _count(frames, scoring, tokens, "cpu", job.batch_size, workers, queue.put)
    return scoring.metrics


def _count_in_processes(
    job: _Job,
    scoring: Scoring,
    pred_files: dict[str, Path],
    tokens: list[str],
    workers: int,
    processes: int,
    progress: bool | None,
) -> None:
    """:func:`_count` over ``processes`` contiguous shards of ``tokens`` in spawned processes (no fork
    of a process whose OpenMP pool may already run), each shard's metrics merged into ``scoring``."""
    import multiprocessing
    from multiprocessing.managers import SyncManager
    from queue import Empty

    shards = [list(a) for a in np.array_split(np.array(tokens, dtype=object), processes)]
    bar = progress_bar(len(tokens), progress)
    reader_threads = max(1, workers // processes)
    manager = SyncManager(ctx=multiprocessing.get_context("spawn"))  # the progress queue's server
    manager.start(pool_process_start, (os.getpid(),))  # ... ended with this process like the pool's
    with manager, one_thread_pool(processes) as pool:
        queue = manager.Queue()
        futures = [
            pool.submit(_count_shard, job, {t: pred_files[t] for t in shard}, shard, reader_threads, queue)
            for shard in shards
        ]
        while not all(f.done() for f in futures):
            try:
                n = queue.get(timeout=0.2)
            except Empty:
                continue
            if bar is not None:
                bar.update(n)
        for f in futures:
            scoring.merge(f.result())  # a shard's error is raised here
    if bar is not None:
        bar.close()


def table_keys(benchmark: str | None) -> tuple[str, ...]:
    """The summary lines of a result of the format ``benchmark`` (its ``table_keys``; the default
    lines for a result of no known format)."""
    fmt = formats().get(benchmark) if isinstance(benchmark, str) else None
    return fmt.scoring.table_keys if fmt is not None else TABLE_KEYS
