"""A command's ``--out`` folder checked before any work: not an input, not inside a dataset (which the
formats' detection tells, so this sits above :mod:`occkit.formats`), and either new, empty or the same
command's earlier output (:func:`check_output_folder`). The records and atomic publishing it reads are
:mod:`occkit.outputs`'."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from occkit.outputs import (
    DATASET_COMMANDS,
    PARTIAL_SUFFIX,
    _content,
    _resolved,
    check_not_dangling,
    check_not_inside_inputs,
    mount_point,
    read_output_record,
)


def dataset_holding(path: str | os.PathLike) -> Path | None:
    """The nearest folder above ``path`` that is a dataset (of a registered format,
    :mod:`occkit.formats`, or with an occkit dataset's record), or None."""
    from occkit.formats.registry import detect_claims

    for parent in _resolved(path).parents:
        if detect_claims(parent):
            return parent
        rec = read_output_record(parent)
        if rec is not None and rec.get("command") in DATASET_COMMANDS:
            return parent
    return None


def check_not_inside_dataset(out: str | os.PathLike, what: str = "--out") -> None:
    """Refuse a folder ``out`` inside a dataset (a command's output goes beside data, not into it)."""
    ds = dataset_holding(out)
    if ds is not None:
        raise ValueError(f"{what} {out}: lies inside the dataset {ds}; write outputs beside a dataset, not into it")


def check_output_folder(
    out: str | os.PathLike,
    command: str,
    inputs: Mapping[str, str | os.PathLike | None] | None = None,
    overwrite: bool = False,
    resume: bool = False,
    legacy: Callable[[Path], bool] | None = None,
    ignore: tuple[str, ...] = (),
    overwrite_option: bool = True,
) -> str:
    """Check a folder ``--out`` of ``occkit COMMAND`` before any work; return its state:
    ``"new"`` (absent), ``"empty"`` or ``"own"`` (a previous output of the same command, which
    the caller may continue when ``resume`` or replace when ``overwrite``).

    Args:
        inputs: the command's inputs by option name; ``out`` may not be, lie in, or hold one.
        legacy: recognises an output of this command made before records existed.
        ignore: names (glob patterns) of the command's own leftovers that do not count as content.
        overwrite_option: whether the command has ``--overwrite`` (a message suggests it only then).
    Raises:
        FileExistsError: ``out`` is a file; a non-empty folder another command (or the user)
            made; a previous output of this command without ``overwrite`` / ``resume``.
        ValueError: ``out`` is, lies in, or holds an input.
    """
    o = Path(out)
    check_not_dangling(o)
    if o.exists() and not o.is_dir():
        raise FileExistsError(f"--out {o}: is a file; occkit {command} writes a folder there: give a folder's path")
    check_not_inside_inputs(o, inputs or {})
    check_not_inside_dataset(o)
    if not o.exists():
        return "new"
    if mount_point(o):  # the hidden folder a command fills inside a mount point is its own
        ignore = (*ignore, f".{o.name}.*.tmp", f".{o.name}{PARTIAL_SUFFIX}")
    if not _content(o, ignore):
        return "empty"
    rec = read_output_record(o)
    other = rec.get("command") if rec else None
    if other is not None and other != command:
        raise FileExistsError(
            f"--out {o}: holds the output of occkit {other}, not of occkit {command}; choose another folder"
        )
    if other is None and not (legacy is not None and legacy(o)):
        raise FileExistsError(
            f"--out {o}: the folder is not empty and occkit {command} did not make it; nothing in it is "
            "touched, --overwrite or not: choose a new or empty folder"
        )
    if not (overwrite or resume):
        if not overwrite_option:
            raise FileExistsError(
                f"--out {o}: holds an earlier output of occkit {command}; choose a new folder (or move that one away)"
            )
        raise FileExistsError(
            f"--out {o}: holds an earlier output of occkit {command}; pass --overwrite to replace it, "
            "or choose a new folder"
        )
    return "own"
