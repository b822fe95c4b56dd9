"""Text files of numbers, as KITTI's calibration, pose, times and OXTS files and a point folder's ``--poses``
and ``--lidar-pose`` write them: each line read once here, a bad one refused in one line naming the file,
the line (or key) and why (docs/labels.md, "Bad input").

What the numbers mean together (a scan's pose rigid, the scans' times in order) is
:func:`occkit.data.scene_record.check_record`'s; a calibration (no sweep's row) is held rigid here (:func:`rigid`).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

_KEY = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*:(.*)$")


def numbers(text: str, where: str, counts: tuple[int, ...], want: str = "", finite: bool = True) -> np.ndarray:
    """The numbers of ``text`` (spaces or commas between them) as float64; text that is not numbers (finite
    ones, unless ``finite`` is False), or whose count is none of ``counts``, is one ``ValueError`` line:
    ``where``, the text and what is wanted (``want``, else the counts)."""
    try:
        v = np.array([float(x) for x in text.replace(",", " ").split()], np.float64)
    except ValueError:
        v = None
    if v is None or v.size not in counts or (finite and not np.isfinite(v).all()):
        size = f"holds {v.size} numbers" if v is not None and v.size not in counts else "holds NaN or inf"
        got = "is not numbers" if v is None else size
        said = " ".join(text.split())[:60]
        raise ValueError(f"{where}: {said!r} {got}; want {want or ' or '.join(map(str, counts)) + ' numbers'}")
    return v


def number_rows(path: Path, what: str, counts: tuple[int, ...], want: str = "") -> list[tuple[int, np.ndarray]]:
    """``(line number, numbers)`` of each line of the text file ``path`` that is not blank or a ``#`` comment
    (:func:`numbers`, ``where`` its ``path:line``); a missing file, or one of no such line, refused in one line
    naming it (``what``: the kind of file)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {what} file")
    lines = [(n, s) for n, s in enumerate(path.read_text(errors="replace").splitlines(), 1) if s.strip()]
    rows = [(n, numbers(s, f"{path}:{n}", counts, want)) for n, s in lines if not s.lstrip().startswith("#")]
    if not rows:
        raise ValueError(f"{path}: holds no line of numbers (an empty {what} file)")
    return rows


def keyed_numbers(path: Path, wanted: dict[str, int]) -> dict[str, np.ndarray]:
    """The ``KEY: numbers`` lines of a KITTI calibration file named in ``wanted`` (key -> how many finite
    numbers), as float64 vectors; the file or a key missing, or a line of other numbers, refused naming the
    file (and line)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such calibration file")
    out: dict[str, np.ndarray] = {}
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        m = _KEY.match(line)
        if m and m.group(1) in wanted:
            key, count = m.group(1), wanted[m.group(1)]
            out[key] = numbers(m.group(2), f"{path}:{n}: {key}", (count,))
    missing = [k for k in wanted if k not in out]
    if missing:
        raise ValueError(f"{path}: no '{missing[0]}:' line")
    return out


def rigid(M: np.ndarray, where: str) -> np.ndarray:
    """A calibration's 3 x 4 matrix (or its 12 numbers, row-major) as a ``(4, 4)`` float64 transform; one that
    is not rigid refused naming ``where`` (the file and its key), not every scan it would pose."""
    from occkit.data.layout_files import rigid as rigid_transform

    T = np.eye(4)
    T[:3] = np.asarray(M, np.float64).reshape(3, 4)
    return rigid_transform(T, where)
