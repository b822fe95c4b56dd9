"""Checkpoints: safetensors weights, a JSON config and a weights-only trainer state, atomically.

Layout of a run folder::

    RUN/checkpoints/step_000123/
        model.safetensors     the method's ``state_dict`` (weights and buffers)
        ema.safetensors       the exponential moving average of it (when EMA is on)
        config.json           the experiment config (plain dict)
        trainer.pt            {"step", "optimizer", "scheduler", "scaler", "world_size", "seed"}
                              (tensors, numbers and strings only: loads with weights_only=True)
        checksums.json        SHA-256 of each file above, verified whenever one is loaded
    RUN/checkpoints/latest    text file holding the name of the newest complete checkpoint

A checkpoint is written into a hidden temporary folder which is renamed into place when complete,
and ``latest`` is then replaced atomically, so a crash never leaves a torn checkpoint behind; the
hidden folders a crash leaves are removed by :func:`remove_partial_checkpoints` (the engine calls
it when a run starts or resumes). Files get the permissions a plain ``open()`` gives (0666 &
~umask), folders 0777 & ~umask. A file whose bytes no longer match its checksum (a flipped bit
in the tensor data leaves the safetensors header intact) and weights holding NaN or infinity are
refused with an error naming the file. A checkpoint without ``checksums.json`` (written before
checksums existed, or its record deleted) loads unverified, with one warning saying so.
Nothing here unpickles arbitrary objects.
"""

from __future__ import annotations

import errno
import math
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model

from occkit.fileio import disk_nearly_full, publish_folder, read_json, sha256_file, write_json_atomic, write_text_atomic

MODEL_FILE = "model.safetensors"
EMA_FILE = "ema.safetensors"
CONFIG_FILE = "config.json"
TRAINER_FILE = "trainer.pt"
LATEST_FILE = "latest"
CHECKSUM_FILE = "checksums.json"
_STEP_DIR = re.compile(r"^step_(\d+)$")
_PARTIAL_DIR = re.compile(r"^\.(step_\d+)\.(?:.+\.tmp|old)$")


file_sha256 = sha256_file
"""Hex SHA-256 of a file's bytes (:func:`occkit.fileio.sha256_file`)."""


class UnverifiedCheckpointWarning(UserWarning):
    """A checkpoint's file loaded without a checksum to check it against (``checksums.json``
    missing, or without an entry for the file)."""


_warned_unverified: set[str] = set()


def _in_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a file of a checkpoint folder :func:`save_checkpoint` writes (one with
    ``config.json`` and ``model.safetensors``), not a weights file saved elsewhere."""
    return path.name in (MODEL_FILE, EMA_FILE, CONFIG_FILE, TRAINER_FILE) and (
        (path.parent / CONFIG_FILE).is_file() and (path.parent / MODEL_FILE).is_file()
    )


def _warn_unverified(path: Path, why: str) -> None:
    """One warning per checkpoint folder and process: its files load, unchecked."""
    key = str(path.parent.resolve())
    if key in _warned_unverified:
        return
    _warned_unverified.add(key)
    warnings.warn(
        f"{path.parent}: {why}: its files load unverified (a damaged or altered copy would go unnoticed; "
        f"checkpoints saved by occkit carry {CHECKSUM_FILE})",
        UnverifiedCheckpointWarning,
        stacklevel=3,
    )


def verify_checksum(path: str | os.PathLike) -> bool:
    """Check ``path`` against the ``checksums.json`` beside it.

    Returns True when verified, False when there is no record to check against (a checkpoint
    from before checksums, one whose record was deleted, or a file saved outside
    :func:`save_checkpoint`); for a file of a checkpoint folder that is said in one warning
    (:class:`UnverifiedCheckpointWarning`, once per folder). Raises ``ValueError`` naming the file
    when its bytes do not match the record, or naming the record when it is not one.
    """
    path = Path(path)
    record_path = path.parent / CHECKSUM_FILE
    if not record_path.is_file():
        if _in_checkpoint(path):
            _warn_unverified(path, f"no {CHECKSUM_FILE} (deleted, or saved before occkit recorded checksums)")
        return False
    record = read_json(record_path)
    if not isinstance(record, dict) or not all(isinstance(v, str) for v in record.values()):
        raise ValueError(f"{record_path}: not a checksum record (expected a JSON object of file name -> SHA-256)")
    expected = record.get(path.name)
    if expected is None:
        if _in_checkpoint(path):
            _warn_unverified(path, f"{CHECKSUM_FILE} has no entry for {path.name}")
        return False
    actual = file_sha256(path)
    if actual != expected:
        raise ValueError(
            f"{path}: corrupted: its SHA-256 is {actual[:16]}... but {record_path.name} recorded "
            f"{str(expected)[:16]}... when it was saved (a damaged copy or disk?); use another checkpoint"
        )
    return True


def _permissions(folder: Path) -> None:
    """Files 0666 & ~umask and the folder 0777 & ~umask, as ``open()`` and ``mkdir`` give them
    (``mkdtemp`` makes 0700 and some writers 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    for f in folder.iterdir():
        if f.is_file():
            os.chmod(f, 0o666 & ~mask)
    os.chmod(folder, 0o777 & ~mask)


def remove_partial_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Remove the hidden half-written checkpoint folders a crash left in ``RUN/checkpoints``.

    ``.step_N.*.tmp`` folders (a save that did not finish) are removed. A ``.step_N.old`` folder
    (the previous copy of a step being saved again) is removed when ``step_N`` exists, and renamed
    back to ``step_N`` when the crash came between the two renames. Returns the folders removed.
    Call it only when no other process is saving into this run.
    """
    root = Path(run_dir) / "checkpoints"
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for p in sorted(root.iterdir()):
        m = _PARTIAL_DIR.match(p.name)
        if not m or not p.is_dir():
            continue
        final = root / m.group(1)
        if p.name.endswith(".old") and not final.exists() and is_complete(p):
            os.replace(p, final)
            continue
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed


def checkpoint_name(step: int) -> str:
    """``step_000123``."""
    return f"step_{step:06d}"


def is_complete(ckpt_dir: Path) -> bool:
    """A checkpoint folder holding the weights, the config and the trainer state."""
    return all((ckpt_dir / f).is_file() for f in (MODEL_FILE, CONFIG_FILE, TRAINER_FILE))


def save_checkpoint(
    run_dir: str | os.PathLike,
    step: int,
    method: torch.nn.Module,
    config: dict[str, Any],
    trainer_state: dict[str, Any],
    ema: torch.nn.Module | None = None,
    keep: int = 0,
) -> Path:
    """Write ``RUN/checkpoints/step_<step>/`` atomically and point ``latest`` at it.

    Args:
        run_dir: the run folder.
        step: optimiser steps taken so far.
        method: the (unwrapped) method whose ``state_dict`` is saved.
        config: the experiment config as a plain dict (``occkit.config.to_dict``).
        trainer_state: optimiser/scheduler/scaler state dicts and counters; must hold only
            tensors, numbers, strings, lists, tuples and dicts (``torch.load(weights_only=True)``).
        ema: the EMA copy of ``method`` when EMA is on.
        keep: keep only this many newest checkpoints (0 keeps all).
    Returns:
        the checkpoint folder.
    """
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / checkpoint_name(step)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=root))
    try:
        save_model(method, str(tmp / MODEL_FILE), force_contiguous=True)
        if ema is not None:
            save_model(ema, str(tmp / EMA_FILE), force_contiguous=True)
        write_json_atomic(tmp / CONFIG_FILE, config)
        torch.save({**trainer_state, "step": int(step)}, tmp / TRAINER_FILE)
        sums = {f.name: file_sha256(f) for f in sorted(tmp.iterdir()) if f.is_file()}
        write_json_atomic(tmp / CHECKSUM_FILE, sums)
        _permissions(tmp)
        publish_folder(tmp, final, root / f".{final.name}.old")  # the same step saved again (a resume): replaced
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, Exception) and not isinstance(e, OSError) and disk_nearly_full(root):
            # torch.save says "file write failed", not why: a full disk is said as such
            raise OSError(errno.ENOSPC, "No space left on device", str(final)) from e
        raise
    write_text_atomic(root / LATEST_FILE, final.name + "\n")
    if keep > 0:
        for old_dir in list_checkpoints(run_dir)[:-keep]:
            shutil.rmtree(old_dir, ignore_errors=True)
    return final


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoint folders of a run, oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _STEP_DIR.match(p.name)
        if m and p.is_dir() and is_complete(p):
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint of a run (``latest`` pointer first, else a scan), or None."""
    root = Path(run_dir) / "checkpoints"
    pointer = root / LATEST_FILE
    if pointer.is_file():
        name = pointer.read_text(encoding="utf-8").strip()
        cand = root / name
        if _STEP_DIR.match(name) and cand.is_dir() and is_complete(cand):
            return cand
    ckpts = list_checkpoints(run_dir)
    return ckpts[-1] if ckpts else None


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint folder from a checkpoint folder, a run folder, or a ``model.safetensors`` path.

    Raises ``FileNotFoundError`` naming the path when none is found there.
    """
    p = Path(path)
    if p.is_file() and p.name in (MODEL_FILE, EMA_FILE):
        p = p.parent
    if p.is_dir() and (p / CONFIG_FILE).is_file() and (p / MODEL_FILE).is_file():
        return p
    if p.is_dir():
        found = latest_checkpoint(p)
        if found is not None:
            return found
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such checkpoint or run folder")
    raise FileNotFoundError(
        f"{p}: not a checkpoint (expected {MODEL_FILE} and {CONFIG_FILE} in it, "
        f"or checkpoints/step_*/ under a run folder)"
    )


def weights_file(folder: Path, ema: bool = True) -> Path:
    """The weights of checkpoint ``folder``: its EMA weights when ``ema`` and it has them, else
    its raw weights."""
    return folder / EMA_FILE if ema and (folder / EMA_FILE).is_file() else folder / MODEL_FILE


def checkpoint_identity(folder: Path, ema: bool = True) -> dict[str, str]:
    """The checkpoint as ``occkit.experiment.load_checkpoint_method`` reads it, for the records of
    what it made (predictions, generated scenes): its folder, the weights file it loads and the
    SHA-256 of that file and of its config."""
    weights = weights_file(folder, ema)
    return {
        "checkpoint": str(folder.resolve()),
        "weights": weights.name,
        "weights_sha256": file_sha256(weights),
        "config_sha256": file_sha256(folder / CONFIG_FILE),
    }


def load_weights(module: torch.nn.Module, path: str | os.PathLike, strict: bool = True) -> None:
    """Load a safetensors ``state_dict`` (written by :func:`save_checkpoint`) into ``module``.

    Missing, corrupt or mismatching files raise an error naming the file. Shared tensors that
    ``safetensors.torch.save_model`` de-duplicated are restored by ``load_model``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weights file")
    verify_checksum(path)
    try:
        load_model(module, str(path), strict=strict, device="cpu")
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{path}: cannot read as safetensors ({type(e).__name__}: {e})") from e
    except RuntimeError as e:  # missing/unexpected keys or shape mismatch
        raise ValueError(f"{path}: does not fit the model ({e})") from e
    bad = non_finite_tensors(module.state_dict())
    if bad:
        raise ValueError(
            f"{path}: weights hold NaN or infinity in {len(bad)} tensor(s), e.g. {', '.join(bad[:3])}: "
            "a diverged or corrupted run; use an earlier checkpoint"
        )


def non_finite_tensors(tree: Any, prefix: str = "") -> list[str]:
    """Dotted names of the floating-point tensors holding NaN or infinity in nested dicts/lists
    (a ``state_dict``, an optimiser state), or of such float numbers."""
    out: list[str] = []
    if isinstance(tree, torch.Tensor):
        if tree.is_floating_point() and not bool(torch.isfinite(tree).all()):
            out.append(prefix or "tensor")
    elif isinstance(tree, float):
        if not math.isfinite(tree):
            out.append(prefix or "value")
    elif isinstance(tree, dict):
        for k, v in tree.items():
            out += non_finite_tensors(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            out += non_finite_tensors(v, f"{prefix}[{i}]")
    return out


def load_trainer_state(ckpt_dir: str | os.PathLike) -> dict[str, Any]:
    """``trainer.pt`` with ``torch.load(weights_only=True)``; a missing/corrupt file raises naming it."""
    path = Path(ckpt_dir) / TRAINER_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such trainer state file")
    verify_checksum(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError, RuntimeError (zip), EOFError ...
        raise ValueError(f"{path}: cannot read trainer state ({type(e).__name__}: {e})") from e
    if not isinstance(state, dict) or "step" not in state:
        raise ValueError(f"{path}: trainer state has no 'step'")
    bad = non_finite_tensors({k: state.get(k) for k in ("optimizer", "scheduler", "scaler")})
    if bad:
        raise ValueError(
            f"{path}: trainer state holds NaN or infinity ({', '.join(bad[:3])}): a diverged or "
            "corrupted run; resume from an earlier checkpoint"
        )
    return state


def load_config_dict(ckpt_dir: str | os.PathLike) -> dict[str, Any]:
    """The experiment config saved with a checkpoint (plain dict)."""
    path = Path(ckpt_dir) / CONFIG_FILE
    if path.is_file():
        verify_checksum(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data
