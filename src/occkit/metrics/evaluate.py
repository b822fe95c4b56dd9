"""Evaluate a folder of predictions against a ground-truth dataset (what ``occkit eval`` runs): the
Occ3D and SemanticKITTI folder scorers and the parts every folder scoring shares (matching files to
frames, provenance, batching, the printed table, JSON / CSV). A format's generic folder scoring and
the detection of a ``--gt`` folder's format ask the format registry, which sits above the metrics:
:mod:`occkit.formats.evaluate`.

- Occ3D-nuScenes: ground truth ``<gt>/annotations.json`` + ``gts/<scene>/<token>/labels.npz``;
  predictions ``<pred>/<token>.npz`` (found anywhere under ``<pred>``), uint8 (200, 200, 16)
  under the key ``semantics`` (or ``pred``, or a single unnamed array).
- SemanticKITTI: ground truth ``<gt>/sequences/XX/voxels/NNNNNN.{label,invalid}``; predictions
  ``<pred>/sequences/XX/predictions/NNNNNN.label`` (the submission layout) or
  ``<pred>/XX/NNNNNN.label``: uint16 raw ids.

Results are in percent; NaN (a class absent from both) becomes ``null`` in JSON.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from occkit.fileio import load_npz, read_json, write_json_atomic, write_text_atomic
from occkit.metrics.base import TABLE_KEYS

OCC3D_SHAPE: tuple[int, int, int] = (200, 200, 16)


#: The record ``occkit predict`` writes into a prediction folder (``occkit.engine.evaluate``).
PROVENANCE_FILE = "provenance.json"


def looks_like_predictions(folder: str | os.PathLike) -> str | None:
    """Why ``folder`` looks like an Occ3D prediction folder rather than a dataset (a
    ``provenance.json``, or ``<token>.npz`` files at its top and no ``annotations.json``), or None."""
    root = Path(folder)
    if not root.is_dir() or (root / "annotations.json").is_file():
        return None
    if (root / PROVENANCE_FILE).is_file():
        return f"it holds {PROVENANCE_FILE}, as occkit predict writes"
    n = sum(1 for _ in root.glob("*.npz"))
    if n:
        return f"it holds {n} .npz file(s) at its top and no annotations.json"
    return None


def check_provenance(pred_dir: str | os.PathLike, pred_files: dict[str, Path]) -> list[str]:
    """Warnings about where the predictions of ``pred_dir`` came from: no ``provenance.json``
    (who made them is not recorded), or files it does not list (a mix of runs). Each is also
    issued with :func:`warnings.warn`."""
    import warnings

    pred_dir = Path(pred_dir)
    path = pred_dir / PROVENANCE_FILE
    out: list[str] = []
    if not path.is_file():
        out.append(
            f"{pred_dir} has no {PROVENANCE_FILE}: which checkpoint made these predictions is not recorded "
            "(occkit predict writes one)"
        )
    else:
        try:
            record = read_json(path)
            listed = set(record["tokens"])
            made = f"checkpoint {record.get('checkpoint', '?')}, {record.get('created', '?')}"
        except (ValueError, KeyError, TypeError) as e:
            out.append(f"{path}: unreadable provenance record ({e}): where these predictions came from is unknown")
        else:
            foreign = sorted(t for t in pred_files if t not in listed)
            if foreign:
                out.append(
                    f"{pred_dir}: mixed predictions: {len(foreign)} of {len(pred_files)} file(s) were not written by "
                    f"the run {PROVENANCE_FILE} records ({made}), e.g. {pred_files[foreign[0]]}"
                )
    for w in out:
        warnings.warn(w, stacklevel=2)
    return out


def load_occ3d_prediction(path: str | os.PathLike, shape: tuple[int, int, int] = OCC3D_SHAPE) -> np.ndarray:
    """A prediction in the Occ3D submission format: ``shape`` uint8 class ids in [0, 17].

    Reads key ``semantics``, else ``pred``, else the file's only array; wrong shape, a float
    dtype or out-of-range classes raise naming the file."""
    z = load_npz(path)
    if "semantics" in z:
        a = z["semantics"]
    elif "pred" in z:
        a = z["pred"]
    elif len(z) == 1:
        a = next(iter(z.values()))
    else:
        raise KeyError(f"{path}: no 'semantics' or 'pred' array and more than one array ({sorted(z)})")
    if a.shape != shape:
        raise ValueError(f"{path}: prediction has shape {a.shape}, expected {shape}")
    if not (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
        raise ValueError(f"{path}: prediction has dtype {a.dtype}, expected uint8 class ids")
    if a.size and (int(a.min()) < 0 or int(a.max()) > 17):
        raise ValueError(f"{path}: prediction has classes in [{int(a.min())}, {int(a.max())}], expected [0, 17]")
    return a.astype(np.uint8, copy=False)


def occ3d_prediction_files(pred_dir: str | os.PathLike) -> dict[str, Path]:
    """``{token: path}`` of the Occ3D predictions ``<token>.npz`` anywhere under ``pred_dir``; two
    files of one token raise naming both."""
    pred_dir = Path(pred_dir)
    found: dict[str, Path] = {}
    for p in sorted(pred_dir.rglob("*.npz")):
        if p.stem in found:
            raise ValueError(f"{pred_dir}: two predictions for token {p.stem}: {found[p.stem]} and {p}")
        found[p.stem] = p
    return found


def semantickitti_prediction_files(pred_dir: str | os.PathLike) -> dict[str, Path]:
    """``{"<seq>/<frame>": path}`` of the SemanticKITTI predictions under ``pred_dir``:
    ``sequences/<seq>/predictions/<frame>.label`` (the submission layout) or ``<seq>/<frame>.label``."""
    found: dict[str, Path] = {}
    for p in Path(pred_dir).rglob("*.label"):
        seq = p.parent.parent.name if p.parent.name == "predictions" else p.parent.name
        found[f"{seq}/{p.stem}"] = p
    return found


def load_semantickitti_prediction(path: str | os.PathLike) -> np.ndarray:
    """A SemanticKITTI submission ``.label`` as learning classes ``(256, 256, 32)`` uint8; raw ids
    outside the learning map raise naming the file."""
    from occkit.data.semantickitti import read_ssc_prediction

    pred = read_ssc_prediction(path)
    if int(pred.max(initial=0)) == 255:
        raise ValueError(f"{path}: prediction holds raw ids outside the learning map (mapped to 255)")
    return pred


def _match(
    gt_ids: list[str], pred_files: dict[str, Path], pred_dir: Path, allow_missing: bool
) -> tuple[list[str], int, int]:
    """Frames with both; missing / extra predictions raise (or warn with ``allow_missing``)."""
    if gt_ids and not set(pred_files) & set(gt_ids):  # nothing to score: not a case for --allow-missing
        held = sorted(p.relative_to(pred_dir).as_posix() for p in pred_dir.rglob("*") if p.is_file())
        raise ValueError(
            f"{pred_dir}: none of its predictions is of a frame of this ground truth ({len(pred_files)} found of "
            f"its form, e.g. {gt_ids[0]}; the folder holds {len(held)} file(s)"
            + (f", e.g. {', '.join(held[:3])}" if held else "")
            + "): predictions of other data or another dataset format? give predictions of this ground truth"
        )
    missing = [t for t in gt_ids if t not in pred_files]
    gt_set = set(gt_ids)
    extra = sorted(t for t in pred_files if t not in gt_set)
    for what, items in (
        ("missing predictions for", missing),
        ("predictions for frames not in the ground truth:", extra),
    ):
        if not items:
            continue
        shown = ", ".join(items[:5]) + (f" ... ({len(items)} in all)" if len(items) > 5 else "")
        msg = f"{pred_dir}: {what} {len(items)} frame(s): {shown}"
        if not allow_missing:
            raise ValueError(msg + " (use --allow-missing to evaluate the rest)")
        warnings.warn(msg, stacklevel=3)
    keep = [t for t in gt_ids if t in pred_files]
    if not keep:
        raise ValueError(f"{pred_dir}: no prediction matches a ground-truth frame")
    return keep, len(missing), len(extra)


def _batched(items: list[Any], n: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _bar(total: int, show: bool | None) -> Any:
    """A tqdm progress bar on stderr (``show=None``: only on a terminal), or ``None``."""
    if show is False:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="eval", unit="frame", disable=None if show is None else not show, file=sys.stderr)


def _prefetch(fn: Callable[[Any], Any], items: list[Any], workers: int) -> Iterator[Any]:
    """``map(fn, items)`` with reading done by a few threads at most ``4 * workers`` items ahead
    of use (zlib and file reads release the GIL), so memory stays bounded."""
    if workers <= 1:
        yield from map(fn, items)
        return
    from collections import deque

    with ThreadPoolExecutor(workers) as ex:
        pending: deque = deque()
        it = iter(items)
        for item in it:
            pending.append(ex.submit(fn, item))
            if len(pending) >= 4 * workers:
                break
        for item in it:
            yield pending.popleft().result()
            pending.append(ex.submit(fn, item))
        while pending:
            yield pending.popleft().result()


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity, as ``taskset`` or a container's cpuset
    sets it), else ``os.cpu_count()``, at least 1."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        n = os.cpu_count() or 1
    return max(1, n)


def default_processes(threads: int = 0) -> int:
    """``occkit eval``'s process count when ``--processes`` is not given: the usable cores
    (:func:`usable_cores`), no more than ``threads`` when that is set (``--threads N``: the run
    was given N cores, as an ablation lane is). :func:`evaluate_occ3d` caps it by the frames."""
    n = usable_cores()
    return min(n, threads) if threads and threads > 0 else n


def evaluate_occ3d(
    gt_root: str | os.PathLike,
    pred_dir: str | os.PathLike,
    split: str = "val",
    mask: str = "camera",
    metrics: tuple[str, ...] = ("miou",),
    infos: str | os.PathLike | None = None,
    allow_missing: bool = False,
    device: str | torch.device = "cpu",
    batch_size: int = 8,
    workers: int = 4,
    progress: bool | None = None,
    processes: int = 1,
    region: Callable[[str], np.ndarray] | None = None,
) -> dict[str, Any]:
    """Occ3D-nuScenes mIoU (and RayIoU when ``"rayiou"`` is in ``metrics``) of a prediction folder.

    ``region`` (optional; mIoU only): a picklable ``token -> (X, Y, Z) bool`` array; only those voxels
    count, on top of ``mask`` (e.g. :class:`occkit.commands.eval.FrustumRegion`, the view frusta of
    the cameras a model sees). Not part of the official metric: the result records ``str(region)``
    under ``region``.

    ``processes`` > 1 (CPU): the frames are split into that many contiguous shards (no more than half
    the frames: a process costs more to start than a frame to count), each counted in its own
    spawned process of one thread (torch and OpenMP), and the counts summed: the same scores, about
    ``processes`` times faster where the cores are free (the RayIoU walk is many short numpy calls,
    which threads of one process do not run side by side).
    The default here is 1 (what training, ``occkit predict --eval`` and other callers inside a run
    get); ``occkit eval`` passes :func:`default_processes`.

    Returns the :class:`~occkit.metrics.occ3d.Occ3DMetric` result (``miou``, ``geometry_iou``,
    ``iou``, ``mask``, ``frames``) plus ``benchmark``, ``missing``, ``extra`` and, for RayIoU,
    ``rayiou``, ``rayiou@1``, ``rayiou@2``, ``rayiou@4``, ``rayiou_iou``.
    """
    from occkit.data.occ3d import Occ3DDataset

    if processes < 1:
        raise ValueError(f"processes: expected >= 1, got {processes}")
    unknown = set(metrics) - {"miou", "rayiou"}
    if unknown:
        raise ValueError(f"--metrics: unknown {sorted(unknown)} for Occ3D (choose from miou, rayiou)")
    if region is not None and "rayiou" in metrics:
        raise ValueError(
            "--metrics rayiou: RayIoU is scored along LiDAR rays, not over a region of voxels; "
            "score it without --frustum"
        )
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise FileNotFoundError(f"{pred_dir}: prediction folder not found")
    if (pred_dir / "annotations.json").is_file() and looks_like_predictions(gt_root) is not None:
        raise ValueError(
            f"--pred {pred_dir} is a dataset (it holds annotations.json) and --gt {gt_root} a prediction "
            "folder: --gt and --pred are swapped"
        )
    ds = Occ3DDataset(gt_root, split, load_images=False, load_gt=True, load_extras=False)
    pred_files = occ3d_prediction_files(pred_dir)
    check_provenance(pred_dir, pred_files)
    tokens, n_missing, n_extra = _match([f.token for f in ds.frames], pred_files, pred_dir, allow_missing)

    origin_fn = _origin_fn(ds, tokens, metrics, infos)  # checks the poses before any work
    processes = max(1, min(processes, len(tokens) // 2))  # two frames at least per process
    if processes > 1 and torch.device(device).type == "cpu":
        occ, ray = _occ3d_in_processes(
            gt_root, split, pred_files, tokens, mask, metrics, infos, batch_size, workers, processes, progress, region
        )
    else:
        bar = _bar(len(tokens), progress)
        occ, ray = _occ3d_counts(
            ds,
            pred_files,
            tokens,
            mask,
            origin_fn,
            device,
            batch_size,
            workers,
            None if bar is None else bar.update,
            region,
        )
        if bar is not None:
            bar.close()
    out: dict[str, Any] = {"benchmark": "occ3d", "split": split}
    out.update(occ.compute())
    if ray is not None:
        out.update(ray.compute())
        out.pop("frames", None)
        out["frames"] = occ.frames
    out["missing"], out["extra"] = n_missing, n_extra
    if region is not None:
        out["region"] = str(region)
    return out


def _origin_fn(
    ds: Any, tokens: list[str], metrics: tuple[str, ...], infos: str | os.PathLike | None
) -> Callable[[str], torch.Tensor] | None:
    """A frame's LiDAR origins for RayIoU (None without ``"rayiou"``), from ``infos`` or the annotations."""
    from occkit.metrics.rayiou import (
        load_nuscenes_infos,
        rayiou_origins,
        rayiou_origins_from_infos,
        scene_frames_from_infos,
    )

    if "rayiou" not in metrics:
        return None
    if infos is not None:
        info_table = load_nuscenes_infos(infos)
        scene_frames = scene_frames_from_infos(info_table)
        absent = [t for t in tokens if t not in info_table]
        if absent:
            raise KeyError(f"{infos}: no LiDAR/ego poses for {len(absent)} frame(s), e.g. {absent[:3]}")
        return lambda t: rayiou_origins_from_infos(info_table, t, scene_frames)
    if not ds.info(tokens[0]).get("lidar_sensor"):
        raise ValueError(
            f"{ds.annotations_path}: RayIoU needs the LiDAR poses of every frame, and these annotations have no "
            "'lidar_sensor' entries: pass --infos I, the folder occkit prepare nuscenes wrote (or a nuScenes-style "
            "info file with lidar2ego_translation/rotation and ego2global_translation/rotation per token)"
        )
    poses: dict[str, Any] = {}  # each scene's poses built once
    scenes = {ds.frames[ds.index_of(t)].scene: t for t in tokens}
    for t in scenes.values():  # every scene's poses checked now, before any frame is counted
        rayiou_origins(ds, t, poses)
    return lambda t: rayiou_origins(ds, t, poses)


def _occ3d_counts(
    ds: Any,
    pred_files: dict[str, Path],
    tokens: list[str],
    mask: str,
    origin_fn: Callable[[str], torch.Tensor] | None,
    device: str | torch.device,
    batch_size: int,
    workers: int,
    advance: Callable[[int], Any] | None,
    region: Callable[[str], np.ndarray] | None = None,
) -> tuple[Any, Any]:
    """The Occ3D (and RayIoU) metrics with ``tokens`` counted: ``(Occ3DMetric, RayIoUMetric or None)``."""
    from occkit.data.occ3d import load_occ3d_labels
    from occkit.metrics.occ3d import Occ3DMetric
    from occkit.metrics.rayiou import RayIoUMetric

    occ = Occ3DMetric(mask=mask, device=device)
    ray = RayIoUMetric(device=device) if origin_fn is not None else None

    def load(token: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        # (Occ3DDataset.load_gt the method is shadowed by its load_gt flag: read directly)
        labels = load_occ3d_labels(ds.gt_path(token), ds.grid.shape)
        if region is not None:
            r = np.asarray(region(token))
            if r.shape != tuple(ds.grid.shape) or r.dtype != np.bool_:
                raise ValueError(
                    f"region {region}: frame {token}: expected a bool array of shape {tuple(ds.grid.shape)}, "
                    f"got {r.dtype} {r.shape}"
                )
            labels = {**labels, "region": r}
        return load_occ3d_prediction(pred_files[token]), labels

    loaded = _prefetch(load, tokens, workers)
    for batch in _batched(tokens, batch_size):
        items = [next(loaded) for _ in batch]
        pred = torch.from_numpy(np.stack([p for p, _ in items])).to(device)
        gt = torch.from_numpy(np.stack([g["semantics"] for _, g in items])).to(device)
        mc = torch.from_numpy(np.stack([g["mask_camera"] for _, g in items]).astype(bool)).to(device)
        ml = torch.from_numpy(np.stack([g["mask_lidar"] for _, g in items]).astype(bool)).to(device)
        reg = torch.from_numpy(np.stack([g["region"] for _, g in items])).to(device) if region is not None else None
        occ.update(pred, gt, mask_camera=mc, mask_lidar=ml, region=reg)
        if ray is not None and origin_fn is not None:
            ray.update(pred, gt, [origin_fn(t) for t in batch])
        if advance is not None:
            advance(len(batch))
    return occ, ray


#: Thread counts of the libraries a spawned process reads from its environment when it starts.
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@contextlib.contextmanager
def one_thread_pool(processes: int) -> Iterator[Any]:
    """A ``ProcessPoolExecutor`` of ``processes`` spawned processes (no fork of a process whose
    OpenMP pool may already run) that each run one thread: the thread variables are set to 1 while
    the processes start (they read them when torch loads) and restored after; each process also
    sets ``torch.set_num_threads(1)`` before its first task."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    os.environ.update({k: "1" for k in _THREAD_VARS})
    try:
        with ProcessPoolExecutor(
            processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_pool_process_start,
            initargs=(os.getpid(),),
        ) as pool:
            yield pool
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _pool_process_start(parent: int) -> None:
    """A pool process's start: one torch thread, and ended (SIGTERM) when the process that started
    it dies, so that stopping ``occkit eval`` stops its processes too."""
    import signal

    from occkit.processes import die_with_parent

    torch.set_num_threads(1)
    die_with_parent(parent, signal.SIGTERM)


def _occ3d_shard(
    gt_root: str,
    split: str,
    pred_files: dict[str, Path],
    tokens: list[str],
    mask: str,
    metrics: tuple[str, ...],
    infos: str | None,
    batch_size: int,
    workers: int,
    queue: Any,
    region: Callable[[str], np.ndarray] | None = None,
) -> tuple[Any, Any]:
    """One process's share of :func:`evaluate_occ3d`: its metrics ``(Occ3DMetric, RayIoUMetric or
    None)``; each finished batch's frame count is put on ``queue`` (the parent's progress bar)."""
    from occkit.data.occ3d import Occ3DDataset

    torch.set_num_threads(1)
    ds = Occ3DDataset(gt_root, split, load_images=False, load_gt=True, load_extras=False)
    occ, ray = _occ3d_counts(
        ds,
        pred_files,
        tokens,
        mask,
        _origin_fn(ds, tokens, metrics, infos),
        "cpu",
        batch_size,
        workers,
        queue.put,
        region,
    )
    return occ, ray


def _occ3d_in_processes(
    gt_root: str | os.PathLike,
    split: str,
    pred_files: dict[str, Path],
    tokens: list[str],
    mask: str,
    metrics: tuple[str, ...],
    infos: str | os.PathLike | None,
    batch_size: int,
    workers: int,
    processes: int,
    progress: bool | None,
    region: Callable[[str], np.ndarray] | None = None,
) -> tuple[Any, Any]:
    """:func:`_occ3d_counts` over ``processes`` contiguous shards of ``tokens`` in spawned
    processes (no fork of a process whose OpenMP pool may already run), counts summed."""
    import multiprocessing
    from queue import Empty

    from occkit.metrics.occ3d import Occ3DMetric
    from occkit.metrics.rayiou import RayIoUMetric

    shards = [list(a) for a in np.array_split(np.array(tokens, dtype=object), processes)]
    occ = Occ3DMetric(mask=mask)
    ray = RayIoUMetric() if "rayiou" in metrics else None
    bar = _bar(len(tokens), progress)
    reader_threads = max(1, workers // processes)
    ctx = multiprocessing.get_context("spawn")
    from multiprocessing.managers import SyncManager

    manager = SyncManager(ctx=ctx)  # the progress queue's server, ended with this process like the pool's
    manager.start(_pool_process_start, (os.getpid(),))
    with manager, one_thread_pool(processes) as pool:
        queue = manager.Queue()
        futures = [
            pool.submit(
                _occ3d_shard,
                str(gt_root),
                split,
                {t: pred_files[t] for t in shard},
                shard,
                mask,
                metrics,
                None if infos is None else str(infos),
                batch_size,
                reader_threads,
                queue,
                region,
            )
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
            shard_occ, shard_ray = f.result()  # a shard's error is raised here, as it was raised there
            occ.merge(shard_occ)
            if ray is not None:
                ray.merge(shard_ray)
    if bar is not None:
        bar.close()
    return occ, ray


# ------------------------------------------------------------------------------------ output


def _fmt(v: float) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"


def format_table(result: dict[str, Any], keys: tuple[str, ...] = TABLE_KEYS) -> str:
    """A per-class table and the summary lines ``keys`` (those present in ``result``, in order; a
    format's ``table_keys``), two decimals like the official printouts."""
    ray = result.get("rayiou_iou")
    names = list(result["iou"])
    head = f"{'class':<22}{'IoU':>8}" + ("".join(f"{'Ray@' + k:>9}" for k in ("1", "2", "4")) if ray else "")
    lines = [head, "-" * len(head)]
    for n in names:
        row = f"{n:<22}{_fmt(result['iou'][n]):>8}"
        if ray:
            row += "".join(f"{_fmt(v):>9}" for v in ray[n])
        lines.append(row)
    lines.append("-" * len(head))
    for k in (k for k in keys if k in result):
        lines.append(f"{k:<22}{_fmt(result[k]):>8}")
    lines.append(
        f"frames: {result.get('frames', '?')}"
        + (f"  mask: {result['mask']}" if "mask" in result else "")  # a format's own metric may have none
        + (f"  region: {result['region']}" if result.get("region") else "")
        + (f"  missing: {result['missing']}" if result.get("missing") else "")
    )
    return "\n".join(lines)


def _json_safe(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


def write_result_json(path: str | os.PathLike, result: dict[str, Any]) -> Path:
    """Write the result as JSON (NaN -> null), atomically."""
    return write_json_atomic(path, _json_safe(result), indent=1)


def write_result_csv(path: str | os.PathLike, result: dict[str, Any]) -> Path:
    """Write ``class,iou[,rayiou@1,rayiou@2,rayiou@4]`` rows, then the summary values as
    ``<name>,<value>`` rows, atomically (NaN as an empty field)."""
    ray = result.get("rayiou_iou")
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["class", "iou"] + (["rayiou@1", "rayiou@2", "rayiou@4"] if ray else []))

    def cell(v: Any) -> str:
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"

    for n, v in result["iou"].items():
        w.writerow([n, cell(v)] + ([cell(x) for x in ray[n]] if ray else []))
    for k in (*TABLE_KEYS, "ssc_miou", "completion_iou", "precision", "recall"):
        if k in result:
            w.writerow([k, cell(result[k])])
    return write_text_atomic(path, buf.getvalue())


__all__ = [
    "default_processes",
    "evaluate_occ3d",
    "format_table",
    "load_occ3d_prediction",
    "one_thread_pool",
    "usable_cores",
    "write_result_csv",
    "write_result_json",
]
