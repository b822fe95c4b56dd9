"""What ``occkit prepare NAME`` runs for a format that says how
(:attr:`occkit.formats.Writers.preparation` names a :class:`Preparation`): the options, the
checks of the inputs and the writer of its output. Nothing here imports torch: the command's parser
is built from a :class:`Preparation`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class PrepareJob:
    """One ``occkit prepare NAME`` run, as :attr:`Preparation.start` planned it (its inputs checked).

    Attributes:
        inputs: ``{option: path or None}``: the folders it reads, which ``--out`` must not be in.
        key: what makes the output (a stopped run resumes only under the same key), JSON values.
        record: what the output's record says beyond the key (e.g. ``version``).
        write: ``(folder, progress) -> count``: the output written into ``folder`` (resumable: what a
            stopped run finished there is kept), ``progress`` a ``str -> None`` for its lines.
        done: ``(count, out) -> str``: what it wrote (from what, into which files of ``out``), said
            when it finished.
    """

    inputs: Mapping[str, Path | None]
    key: Mapping[str, Any]
    record: Mapping[str, Any]
    write: Callable[[Path, Callable[[str], None]], int]
    done: Callable[[int, Path], str]


@dataclass(frozen=True)
class Preparation:
    """What ``occkit prepare NAME`` makes from a raw dataset for a format's datasets (nuScenes: the LiDAR
    sweeps, poses and calibration beyond Occ3D's files, :mod:`occkit.data.nuscenes_prepare`).

    Attributes:
        summary: the raw dataset, one line for ``--help`` (``nuscenes (v1.0-* tables, ...)``).
        output: what ``--out`` holds, for ``--help`` (``infos.json``).
        add_arguments: ``parser -> None``: its options beyond ``--out`` and ``--overwrite``.
        start: ``args -> PrepareJob``: the run, its inputs checked before any folder is made (a one-line
            error names a missing file or table).
    """

    summary: str
    output: str
    add_arguments: Callable[[Any], None]
    start: Callable[[Any], PrepareJob]
