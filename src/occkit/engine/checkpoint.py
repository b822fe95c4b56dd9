"""Checkpoints: safetensors weights, a JSON config and a weights-only trainer state, atomically.

Layout of a run folder::

    RUN/checkpoints/step_000123/
        model.safetensors     the method's ``state_dict`` (weights and buffers)
        ema.safetensors       the exponential moving average of it (when EMA is on)
        config.json           the experiment config (plain dict)
        trainer.pt            {"step", "optimizer", "scheduler", "scaler", "world_size", "seed"}
                              (tensors, numbers and strings only: loads with weights_only=True)
    RUN/checkpoints/latest    text file holding the name of the newest complete checkpoint

A checkpoint is written into a hidden temporary folder which is renamed into place when complete,
and ``latest`` is then replaced atomically, so a crash never leaves a torn checkpoint behind.
Nothing here unpickles arbitrary objects.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model

from occkit.fileio import read_json, write_json_atomic, write_text_atomic

MODEL_FILE = "model.safetensors"
EMA_FILE = "ema.safetensors"
CONFIG_FILE = "config.json"
TRAINER_FILE = "trainer.pt"
LATEST_FILE = "latest"
_STEP_DIR = re.compile(r"^step_(\d+)$")


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
        if final.exists():  # the same step saved again (e.g. after a resume): replace it
            old = root / f".{final.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
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


def load_weights(module: torch.nn.Module, path: str | os.PathLike, strict: bool = True) -> None:
    """Load a safetensors ``state_dict`` (written by :func:`save_checkpoint`) into ``module``.

    Missing, corrupt or mismatching files raise an error naming the file. Shared tensors that
    ``safetensors.torch.save_model`` de-duplicated are restored by ``load_model``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weights file")
    try:
        load_model(module, str(path), strict=strict, device="cpu")
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{path}: cannot read as safetensors ({type(e).__name__}: {e})") from e
    except RuntimeError as e:  # missing/unexpected keys or shape mismatch
        raise ValueError(f"{path}: does not fit the model ({e})") from e


def load_trainer_state(ckpt_dir: str | os.PathLike) -> dict[str, Any]:
    """``trainer.pt`` with ``torch.load(weights_only=True)``; a missing/corrupt file raises naming it."""
    path = Path(ckpt_dir) / TRAINER_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such trainer state file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError, RuntimeError (zip), EOFError ...
        raise ValueError(f"{path}: cannot read trainer state ({type(e).__name__}: {e})") from e
    if not isinstance(state, dict) or "step" not in state:
        raise ValueError(f"{path}: trainer state has no 'step'")
    return state


def load_config_dict(ckpt_dir: str | os.PathLike) -> dict[str, Any]:
    """The experiment config saved with a checkpoint (plain dict)."""
    path = Path(ckpt_dir) / CONFIG_FILE
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data
