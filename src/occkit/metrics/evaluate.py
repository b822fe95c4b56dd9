"""Evaluate a folder of predictions against a ground-truth dataset (what ``occkit eval`` runs): the
Occ3D and SemanticKITTI folder scorers and the parts every folder scoring shares (matching files to
frames, provenance, batching, the printed table, JSON / CSV). A format's generic folder scoring and
the detection of a ``--gt`` folder's format ask the format registry, which sits above the metrics:
:mod:`occkit.scoring.folder`.

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
import functools
import io
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from occkit.fileio import read_json, write_json_atomic, write_text_atomic
from occkit.metrics.base import TABLE_KEYS

#: The record ``occkit predict`` writes into a prediction folder (``occkit.engine.evaluate``).
PROVENANCE_FILE = "provenance.json"


def read_provenance(folder: str | os.PathLike) -> dict[str, Any]:
    """``folder/provenance.json`` (what ``occkit predict`` wrote there:
    :func:`occkit.engine.evaluate.write_prediction_folder`) read against its schema (:func:`provenance_schema`):
    the record, or a one-line ``ValueError`` naming the file and the field; ``OSError`` where it cannot be read."""
    from occkit.schema import validate

    path = Path(folder) / PROVENANCE_FILE
    record = read_json(path)
    validate(provenance_schema(), record, str(path))
    return record


@functools.cache
def provenance_schema() -> Any:
    """The schema of ``provenance.json``: the keys occkit reads back (the frames' ``tokens``, the ``split``
    and ``data`` predicted, the fingerprints ``occkit eval`` compares), each of its type; the other keys
    are what the writer's caller recorded (the checkpoint, settings) and kept as they are. Declared where it
    is read (pydantic imported then)."""
    from pydantic import ConfigDict, Field

    from occkit.schema import Int, Table

    class LabelsFingerprint(Table):
        """:func:`labels_fingerprint`'s record."""

        format: str | None = Field(description="the ground truth's format")
        labels: dict[str, str] = Field(description="frame token -> sha256 of its labels")

    class Provenance(Table):
        """``provenance.json`` of a prediction folder."""

        model_config = ConfigDict(extra="allow")
        tokens: list[str] = Field(description="the frames predicted")
        frames: Int | None = Field(None, ge=0)
        split: str | None = None
        data: str | None = Field(None, description="the folder predicted on")
        data_fingerprint: str | None = Field(None, description="sha256 of the frame names")
        gt_fingerprint: LabelsFingerprint | None = None

    return Provenance


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


def frames_fingerprint(tokens: list[str] | tuple[str, ...]) -> str:
    """``sha256:<hex>`` of a split's frame tokens (sorted, one a line): what ``occkit predict``
    records of the data it predicted (``data_fingerprint`` in ``provenance.json``) and ``occkit
    eval`` compares with its ground truth's, so that other data at the same path (regenerated) or
    the same data at another path (a copy) are told apart."""
    import hashlib

    return "sha256:" + hashlib.sha256("\n".join(sorted(set(map(str, tokens)))).encode("utf-8")).hexdigest()


#: How many frames :func:`labels_fingerprint` reads, at most, spread evenly over a split's sorted tokens.
FINGERPRINT_FRAMES = 16


def labels_fingerprint(
    dataset: Any, tokens: list[str] | tuple[str, ...], frames: int = FINGERPRINT_FRAMES
) -> dict[str, Any] | None:
    """What ``occkit predict`` records of the ground truth's content (``gt_fingerprint`` in
    ``provenance.json``), which ``occkit eval`` compares with its ground truth's where the frame names
    agree (:func:`frames_fingerprint`): the data's ``format`` (``dataset.format_name``) and ``labels``,
    ``{token: "sha256:<hex>"}`` for up to ``frames`` frames spread evenly over the sorted ``tokens``,
    each the SHA-256 of the arrays the reader's ``frame_labels(i)`` gives (the classes and the voxels
    scored: dtype, shape and bytes). The decoded labels, not the files' bytes: a copy, or the same
    labels written again into another container (an ``.npz`` records its time), are the same ground
    truth. SemanticKITTI's frame names (``08/000000``...) are every KITTI-layout dataset's, so the
    names alone do not tell two such datasets apart; their labels do.

    None when the reader cannot give them (a package reader without ``index_of`` or
    ``frame_labels``, a frame without its label files: a split predicted without its ground truth):
    then the frame names alone are compared."""
    import hashlib

    import numpy as np

    names = sorted(set(map(str, tokens)))
    if not names or frames < 1:
        return None
    k = min(frames, len(names))
    picked = sorted({round(j * (len(names) - 1) / (k - 1)) for j in range(k)}) if k > 1 else [0]
    labels: dict[str, str] = {}
    try:
        for j in picked:
            token = names[j]
            arrays = dataset.frame_labels(dataset.index_of(token))[:2]
            h = hashlib.sha256()
            for a in arrays:
                a = np.ascontiguousarray(np.asarray(a))
                h.update(f"{a.dtype.str}{a.shape}".encode())
                h.update(a.tobytes())
            labels[token] = "sha256:" + h.hexdigest()
    except Exception:  # noqa: BLE001 - any reader (a package's) that cannot give a frame's labels: names alone
        return None
    fmt = getattr(dataset, "format_name", None)
    return {"format": fmt if isinstance(fmt, str) else None, "labels": labels}


def check_provenance(
    pred_dir: str | os.PathLike,
    pred_files: dict[str, Path],
    gt_root: str | os.PathLike | None = None,
    split: str | None = None,
    gt_ids: list[str] | None = None,
    dataset: Any = None,
) -> list[str]:
    """Warnings about where the predictions of ``pred_dir`` came from: no ``provenance.json``
    (who made them is not recorded), files it does not list (a mix of runs), or, given the ground
    truth (``gt_root``, its ``split`` and that split's frame tokens ``gt_ids``), predictions of
    other data: the recorded ``data_fingerprint`` of the same split differs from the ground
    truth's (:func:`frames_fingerprint`: other frame names), or, the names agreeing and the ground
    truth's reader given (``dataset``), the recorded ``gt_fingerprint`` of data of its format
    differs from its labels (:func:`labels_fingerprint`: other labels under the same names, as two
    SemanticKITTI-layout datasets, or data regenerated at the same path); a record without the
    fingerprints (an older occkit): the recorded ``data`` is another folder. Each is also issued
    with :func:`warnings.warn`."""
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
            record = read_provenance(pred_dir)
            listed = set(record["tokens"])
            made = f"checkpoint {record.get('checkpoint', '?')}, {record.get('created', '?')}"
        except (OSError, ValueError) as e:
            out.append(f"{path}: unreadable provenance record ({e}): where these predictions came from is unknown")
        else:
            foreign = sorted(t for t in pred_files if t not in listed)
            if foreign:
                out.append(
                    f"{pred_dir}: mixed predictions: {len(foreign)} of {len(pred_files)} file(s) were not written by "
                    f"the run {PROVENANCE_FILE} records ({made}), e.g. {pred_files[foreign[0]]}"
                )
            other = _other_data(record, gt_root, split, gt_ids, dataset)
            if other:
                out.append(f"{path}: {other}")
    for w in out:
        warnings.warn(w, stacklevel=2)
    return out


def _other_data(
    record: dict[str, Any], gt_root: Any, split: str | None, gt_ids: list[str] | None, dataset: Any = None
) -> str | None:
    """Why a provenance record names other data than the ground truth ``gt_root`` (see
    :func:`check_provenance`), or None."""
    if gt_root is None or gt_ids is None or record.get("split") != split:
        return None  # another split: its frames are other frames, and the frames' matching says so
    data, fp = record.get("data"), record.get("data_fingerprint")
    if fp is not None:
        mine = frames_fingerprint(gt_ids)
        if fp == mine:
            return _other_labels(record, gt_root, split, gt_ids, dataset)
        return (
            f"these predictions were made on other data than --gt {gt_root}: the record names {data} (split {split}, "
            f"{record.get('frames', '?')} frames, fingerprint {fp[:19]}...), and split {split} of --gt has "
            f"{len(gt_ids)} frames of another index (fingerprint {mine[:19]}...): are they scored against the right "
            "ground truth?"
        )
    if data is not None and not _same_folder(data, gt_root):
        return (
            f"these predictions were made on {data}, not --gt {gt_root} (the record has no data fingerprint to tell "
            "a copy from other data): are they scored against the right ground truth?"
        )
    return None


def _same_folder(a: Any, b: Any) -> bool:
    """Whether two paths name one folder (links resolved); a path that cannot be one (an edited record's
    ``data`` holding a NUL) names none."""
    try:
        return Path(a).resolve() == Path(b).resolve()
    except (OSError, ValueError):
        return False


def _other_labels(
    record: dict[str, Any], gt_root: Any, split: str | None, gt_ids: list[str], dataset: Any
) -> str | None:
    """Why the recorded ``gt_fingerprint`` (:func:`labels_fingerprint`) says the ground truth ``gt_root``
    holds other labels under the frame names the predictions were made on, or None: equal labels, no
    reader given, a record without it (an older occkit) or one that is not occkit's shape, data of
    another format (predictions scored through a class map), a reader that cannot give them."""
    rec = record.get("gt_fingerprint")  # its shape checked as the record was read (provenance_schema)
    if dataset is None or rec is None or rec["format"] != getattr(dataset, "format_name", None):
        return None
    labels = rec["labels"]
    if not labels or len(labels) > 4 * FINGERPRINT_FRAMES or not set(labels) <= set(gt_ids):
        return None
    mine = labels_fingerprint(dataset, list(labels), frames=len(labels))
    if mine is None:
        return None
    differ = [t for t in sorted(labels) if mine["labels"].get(t) != labels[t]]
    if not differ:
        return None
    data = record.get("data")
    which = f"{len(differ)} of the {len(labels)} frames fingerprinted differ, e.g. frame {differ[0]}"
    if isinstance(data, str) and _same_folder(data, gt_root):
        return (
            f"the ground truth of --gt {gt_root} changed since these predictions were made on it: split {split} has "
            f"the same {len(gt_ids)} frame names but other labels ({which}): regenerated? are they scored against "
            "the right ground truth?"
        )
    return (
        f"these predictions were made on other data than --gt {gt_root}: the record names {data} (split {split}), "
        f"whose {len(gt_ids)} frame names --gt shares but not its labels ({which}): are they scored against the "
        "right ground truth?"
    )


def match_frames(
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


def batched(items: list[Any], n: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def progress_bar(total: int, show: bool | None) -> Any:
    """A tqdm progress bar on stderr (``show=None``: only on a terminal), or ``None``."""
    if show is False:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="eval", unit="frame", disable=None if show is None else not show, file=sys.stderr)


def prefetch(fn: Callable[[Any], Any], items: list[Any], workers: int) -> Iterator[Any]:
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
    was given N cores, as an ablation lane is). The scoring loop
    (:func:`occkit.scoring.folder.evaluate_predictions`) caps it by the frames."""
    n = usable_cores()
    return min(n, threads) if threads and threads > 0 else n


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
            initializer=pool_process_start,
            initargs=(os.getpid(),),
        ) as pool:
            yield pool
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def pool_process_start(parent: int) -> None:
    """A pool process's start: one torch thread, and ended (SIGTERM) when the process that started
    it dies, so that stopping ``occkit eval`` stops its processes too."""
    import signal

    from occkit.processes import die_with_parent

    torch.set_num_threads(1)
    die_with_parent(parent, signal.SIGTERM)


# ------------------------------------------------------------------------------------ output


def _fmt(v: float) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"


def format_table(result: dict[str, Any], keys: tuple[str, ...] = TABLE_KEYS) -> str:
    """A per-class table and the summary lines ``keys`` (those present in ``result``, in order; a
    format's ``table_keys``), two decimals like the official printouts."""
    ray = result.get("rayiou_iou")
    names = list(result.get("iou") or {})  # a format's own metric may give no per-class IoU
    head = f"{'class':<22}{'IoU':>8}" + ("".join(f"{'Ray@' + k:>9}" for k in ("1", "2", "4")) if ray else "")
    lines = [head, "-" * len(head)]
    for n in names:
        row = f"{n:<22}{_fmt(result['iou'][n]):>8}"
        if ray and n in ray:
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
    if result.get("only_predicted"):
        lines.append(
            f"predicted, with no ground-truth voxel in these frames: {', '.join(result['only_predicted'])} (IoU 0, "
            "counted in the mIoU; a prediction without them leaves them out)"
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
    "format_table",
    "one_thread_pool",
    "usable_cores",
    "write_result_csv",
    "write_result_json",
]
