"""Validation and prediction loops: a method's logits -> streaming metrics or submission files."""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from occkit.data.sample import Batch
from occkit.fileio import publish_folder, write_json_atomic
from occkit.formats.spec import DatasetFormat, PredictionFiles, Targets
from occkit.metrics.evaluate import PROVENANCE_FILE, frames_fingerprint, labels_fingerprint


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX, as oneDNN reports it); without
    it bf16 is emulated and slower than float32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_amp(device: torch.device, amp: str, cpu_bf16: bool = False) -> str:
    """The mixed precision a run actually uses on ``device``: ``amp`` on CUDA; on CPU 'bf16' when
    ``cpu_bf16`` asks for it (and ``amp`` is not 'none') and the CPU has native bf16, else 'none'
    (float32)."""
    if amp not in ("bf16", "fp16", "none"):
        raise ValueError(f"optim.amp must be 'bf16', 'fp16' or 'none', got {amp!r}")
    if device.type == "cuda":
        return amp
    if device.type == "cpu" and cpu_bf16 and amp != "none" and cpu_has_native_bf16():
        return "bf16"
    return "none"


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """bf16/fp16 autocast on CUDA, bf16 on CPU, for an ``amp`` from :func:`resolve_amp`; nothing
    with ``amp="none"``."""
    if amp == "none":
        return contextlib.nullcontext()
    if amp not in ("bf16", "fp16"):
        raise ValueError(f"optim.amp must be 'bf16', 'fp16' or 'none', got {amp!r}")
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16 if amp == "bf16" else torch.float16)
    if device.type == "cpu" and amp == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def predict_labels(method: torch.nn.Module, batch: Batch, device: torch.device, amp: str = "none") -> torch.Tensor:
    """Class ids ``(B, X, Y, Z)`` long: argmax of ``method.predict(batch)`` ``(B, C, X, Y, Z)``."""
    batch = batch.to(device, non_blocking=True)
    with autocast(device, amp):
        logits = method.predict(batch)
    if logits.dim() != 5 or logits.shape[0] != batch.size:
        raise ValueError(
            f"{type(method).__name__}.predict: expected logits (B, C, X, Y, Z) with B={batch.size}, got "
            f"{tuple(logits.shape)}"
        )
    return logits.argmax(1)


def resolve_format(dataset_format: DatasetFormat | str | None) -> DatasetFormat:
    """A format given by itself or by name; None: the default format (Occ3D-nuScenes,
    :func:`occkit.formats.default_format`, the default of callers that name none)."""
    from occkit.formats import default_format, get_format

    if dataset_format is None:
        return default_format()
    return get_format(dataset_format) if isinstance(dataset_format, str) else dataset_format


@torch.no_grad()
def evaluate(
    method: torch.nn.Module,
    batches: Iterable[Batch],
    device: torch.device,
    amp: str = "none",
    mask: str = "camera",
    num_classes: int | None = None,
    metrics: Sequence[str] | None = None,
    dataset: Any = None,
    progress: bool = False,
    distributed: bool = False,
    dataset_format: DatasetFormat | str | None = None,
) -> dict[str, Any]:
    """The format's metrics over ``batches``, counted by the one scoring core
    (:class:`occkit.scoring.core.Scoring`), as ``occkit eval`` counts a folder.

    Args:
        method: has ``predict(batch) -> (B, C, X, Y, Z)``; put in eval mode here, restored after.
        batches: this process's share of the frames (with ground truth).
        mask, num_classes: handed to the format's ``metrics`` (the voxels counted, the model's classes;
            None: the format's table).
        metrics: the names asked for beyond the first metric's (``train.val_metrics``: ``("miou",
            "rayiou")``), each one the format computes.
        dataset: the frames' reader (under any wrappers), which a metric reading more than the labels
            binds to (RayIoU: the scenes' LiDAR poses); needed by such a metric only.
        distributed: sum the counts over processes before computing (every rank must call this).
        dataset_format: the frames' format (:func:`occkit.formats.format_of` of the dataset), whose
            ``metrics`` score them; None: the default format (Occ3D-nuScenes).
    Returns:
        every metric's scores in one dict (``miou``, ``geometry_iou``, ``iou``, ``mask``, ``frames``, and,
        asked for, ``rayiou``, ``rayiou@1`` ...), the first metric's keys winning where two give one.
    """
    from occkit.scoring.core import Scoring

    fmt = resolve_format(dataset_format)
    scoring = Scoring(fmt, metrics=metrics, num_classes=num_classes, mask=mask, device=device)
    if dataset is not None:  # what a metric reads beyond the labels (RayIoU: the scenes' LiDAR poses)
        from occkit.data.wrappers import base_dataset

        try:
            base = base_dataset(dataset)
        except TypeError:  # frames of no format (a hand-made dataset): bound as they are
            base = dataset
        scoring.bind(base, list(getattr(base, "tokens", ())))
    was_training = method.training
    method.eval()
    try:
        for batch in tqdm(batches, desc="validate", disable=not progress, leave=False, dynamic_ncols=True):
            if batch.occupancy is None:
                raise ValueError("evaluate: the validation frames carry no ground truth (occupancy)")
            labels = predict_labels(method, batch, device, amp)
            scoring.update(labels, Targets.from_batch(batch, device))
    finally:
        method.train(was_training)
    if distributed:
        scoring.all_reduce()
    return scoring.compute()


def run_amp(cfg: Any, device: torch.device) -> str:
    """The mixed precision a run of config ``cfg`` predicts at on ``device`` (its ``optim.amp`` and
    ``optim.cpu_bf16``, :func:`resolve_amp`): what validation used, so a loaded run scores as it validated."""
    return resolve_amp(device, cfg.optim.amp, cfg.optim.cpu_bf16)


def score_frames(
    method: torch.nn.Module,
    cfg: Any,
    dataset: Any,
    batches: Iterable[Batch],
    device: torch.device,
    amp: str,
    metrics: Sequence[str] | None = None,
    progress: bool = False,
    distributed: bool = False,
) -> dict[str, Any]:
    """:func:`evaluate` of a run's method (config ``cfg``) over ``batches`` of ``dataset``, as training
    validates and ``occkit predict --eval`` and ``occkit demo`` score: the voxels the format counts
    (``mask="camera"``), the run's ``model.num_classes``, the metrics of the dataset's format
    (:func:`occkit.formats.format_of`; a hand-made dataset of no format: the default format's) and the
    names ``metrics`` asks for (training: ``train.val_metrics``). Frames whose index records no cameras
    (labels of a recording without them, whose camera mask is empty) are scored in the LiDAR mask."""
    from occkit.data.wrappers import base_dataset
    from occkit.formats import format_of

    try:
        fmt = format_of(dataset)
        frames = base_dataset(dataset)
    except TypeError:  # frames of no format: the default format's (Occ3D's) metrics, its camera mask
        fmt, frames = None, None
    return evaluate(
        method,
        batches,
        device,
        amp,
        mask=scored_mask(frames) if frames is not None else "camera",
        num_classes=cfg.model.num_classes,
        metrics=metrics,
        dataset=dataset,
        progress=progress,
        distributed=distributed,
        dataset_format=fmt,
    )


def scored_mask(dataset: Any) -> str:
    """The mask a run's frames are scored in: ``camera`` (the format's), or ``lidar`` where the frames'
    index records no cameras (the frames' dataset answers ``records_no_cameras()``)."""
    said = getattr(dataset, "records_no_cameras", None)
    return "lidar" if callable(said) and len(dataset) and said() else "camera"


@torch.no_grad()
def write_predictions(
    method: torch.nn.Module,
    batches: Iterable[Batch],
    out_dir: str | os.PathLike,
    device: torch.device,
    amp: str = "none",
    progress: bool = True,
    total: int | None = None,
    tokens: list[str] | None = None,
    dataset_format: DatasetFormat | str | None = None,
    names_from: str = "the data",
    shown: str | os.PathLike | None = None,
) -> int:
    """Submission files in the format's layout (its ``predictions.write``: Occ3D's
    ``out_dir/<token>.npz`` with ``semantics`` uint8 ``(X, Y, Z)``, SemanticKITTI's
    ``out_dir/sequences/<seq>/predictions/<frame>.label``, ...), each written atomically
    (``dataset_format`` None: the default format, Occ3D-nuScenes). Returns the number of frames written (their
    tokens are appended to ``tokens`` when given). To replace a whole folder safely, use
    :func:`write_prediction_folder`.

    A frame token names a file under ``out_dir``: one that would lead outside it (an absolute path,
    ``..``, a link in the folder) is refused before the frame is written, naming ``names_from``
    (where the tokens come from, e.g. the dataset's ``annotations.json``) and the token; the path
    the format's writer returns must lie under ``out_dir`` too, else the format (a package's) is
    named. ``shown``: the folder the messages name (``--out``, when ``out_dir`` is a hidden one)."""
    fmt = resolve_format(dataset_format)
    files: PredictionFiles = fmt.predictions
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    method.eval()
    n = 0
    for batch in tqdm(batches, desc="predict", unit="batch", disable=not progress, total=total, dynamic_ncols=True):
        labels = predict_labels(method, batch, device, amp).to(torch.uint8).cpu().numpy()
        for token, sem in zip(batch.tokens, labels):
            check_prediction_name(fmt, out, token, names_from, shown)
            written = files.write(out, token, sem)
            check_written_prediction(fmt, out, written, token, shown)
            n += 1
            if tokens is not None:
                tokens.append(token)
    return n


def check_prediction_name(
    fmt: DatasetFormat, out: Path, token: Any, names_from: str = "the data", shown: str | os.PathLike | None = None
) -> Path:
    """Where the format writes the frame ``token``'s prediction under ``out`` (its ``relpath``, else
    the token itself), refused in one line (:func:`occkit.outputs.path_under`) when it would lead
    outside ``out``; ``names_from`` names where the token comes from."""
    from occkit.outputs import path_under

    what = f"{names_from}: frame token {token!r}"
    path_under(out, str(token), what=what, shown=shown)
    relpath = fmt.predictions.relpath
    if relpath is None:
        return out / token
    try:
        rel = relpath(token)
    except ValueError as e:
        raise ValueError(f"{what}: the format {fmt.name} cannot name its prediction file ({e})") from None
    return path_under(out, rel, what=what, shown=shown)


def check_written_prediction(
    fmt: DatasetFormat, out: Path, written: Any, token: str, shown: str | os.PathLike | None = None
) -> None:
    """The path the format's prediction writer returned for ``token``: refused in one line naming the
    format and where it came from (a package's) unless it lies under ``out``."""
    if written is None:
        return
    from occkit.outputs import OutsideOutput

    p = Path(os.path.abspath(written))
    full, base = p.parent.resolve() / p.name, Path(out).resolve()  # its folders resolved: a link elsewhere too
    if base not in full.parents:
        where = f"the format {fmt.name}" + (f" ({fmt.source})" if fmt.source else "")
        raise OutsideOutput(
            f"{where}: its prediction writer put frame {token!r} at {written}, outside --out {shown or out}; "
            "occkit predict writes only under --out: report it to the package's authors"
        )


def check_prediction_target(
    out_dir: str | os.PathLike, overwrite: bool = False, inputs: dict[str, Any] | None = None
) -> None:
    """Refuse a prediction folder that exists and holds anything, unless ``overwrite`` and it
    holds predictions (their ``provenance.json``); refuse a path that is a file
    (``FileExistsError`` naming the folder) and one that is, lies in or holds an input
    (``inputs``: ``{"--data": path}``; ``ValueError``)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder")
    if not overwrite and out.is_dir() and any(out.iterdir()):
        raise FileExistsError(
            f"{out}: the folder is not empty; predict into a new folder, or pass --overwrite to replace "
            "it (its contents are replaced only once every new prediction is written)"
        )
    if overwrite and out.is_dir() and any(out.iterdir()) and not (out / PROVENANCE_FILE).is_file():
        raise FileExistsError(
            f"{out}: the folder is not empty and holds no {PROVENANCE_FILE}: occkit predict did not make "
            "it, and --overwrite replaces only predictions; choose a new or empty folder"
        )
    if inputs:
        from occkit.outputs import check_not_inside_inputs

        check_not_inside_inputs(out, inputs)


def write_prediction_folder(
    method: torch.nn.Module,
    batches: Iterable[Batch],
    out_dir: str | os.PathLike,
    device: torch.device,
    provenance: dict[str, Any],
    amp: str = "none",
    overwrite: bool = False,
    progress: bool = True,
    total: int | None = None,
    dataset_format: DatasetFormat | str | None = None,
    names_from: str = "the data",
    dataset: Any = None,
) -> int:
    """A whole prediction folder, replaced at once: the format's file of every frame
    (:func:`write_predictions`) plus ``out_dir/provenance.json``.

    The files are written into a new hidden folder beside ``out_dir`` (``.NAME.*.tmp``) that is
    renamed to ``out_dir`` when every prediction is written, so a failure midway leaves the old
    folder untouched and never a mix of old and new files. A non-empty ``out_dir`` is refused
    before any work unless ``overwrite``. Hidden folders a crash left beside ``out_dir`` are
    removed first.

    Args:
        provenance: what made the predictions (checkpoint, data, split, ...); written to
            ``provenance.json`` with the time, the number of frames and their tokens.
        dataset: the format's dataset the frames come from (no wrappers): the record then also holds
            ``gt_fingerprint``, the fingerprint of its ground truth's content that ``occkit eval`` tells
            other labels under the same frame names by (:func:`occkit.metrics.evaluate.labels_fingerprint`;
            none where the reader cannot give its labels).
    Returns:
        the number of frames written.
    """
    out = Path(out_dir)
    check_prediction_target(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{out.name}.*.tmp"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        tokens: list[str] = []
        n = write_predictions(
            method,
            batches,
            tmp,
            device,
            amp,
            progress=progress,
            total=total,
            tokens=tokens,
            dataset_format=dataset_format,
            names_from=names_from,
            shown=out,
        )
        record = {
            **provenance,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "frames": n,
            "tokens": tokens,
            "data_fingerprint": frames_fingerprint(tokens),  # what occkit eval tells other data by
        }
        content = None if dataset is None else labels_fingerprint(dataset, tokens)
        if content is not None:  # and other labels under the same frame names (KITTI layouts share them)
            record["gt_fingerprint"] = content
        write_json_atomic(tmp / PROVENANCE_FILE, record)
        if out.exists():
            check_prediction_target(out, overwrite)  # it may have filled while we predicted
        publish_folder(tmp, out, out.parent / f".{out.name}.old.tmp")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return n
