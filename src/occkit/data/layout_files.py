"""What the dataset layouts' readers (Occ3D, SemanticKITTI, SSCBench-KITTI-360, NYUv2, the LiDAR-frame
layouts) check of their files, each rule stated once: a file that must be there, a line of numbers, a
rigid pose, the arrays of an ``.npz`` declared as a table, raw label ids through a class table, and a
setting that must be one of a few names. Each refusal is one line naming the file (and the line, the
array or the setting). And SSCNet's rule of coarse labels, which two layouts' files hold."""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np

from occkit.fileio import load_npz
from occkit.geometry.transforms import rigid_problem
from occkit.shapes import check_shape

#: The synthetic extras' maps of a camera image, as :func:`read_arrays` reads them (exact z-depth, semantic
#: classes, instance ids).
CAMERA_MAPS = {"depth": "float32 H W", "semantics": "uint8 H W", "instance": "int32 H W"}


def existing(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a ``Path``; ``FileNotFoundError`` ``PATH: no such WHAT`` when it is not a file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {what}")
    return path


def numbers(text: str, where: str, count: int | None = None) -> np.ndarray:
    """The whitespace-separated numbers of ``text`` (a line of a calibration or pose file) as float64;
    text that is no number, or not ``count`` of them, raises naming ``where`` (the file and line)."""
    try:
        v = np.array([float(x) for x in text.split()], dtype=np.float64)
    except ValueError as e:
        raise ValueError(f"{where}: cannot parse numbers ({e})") from e
    if count is not None and v.size != count:
        raise ValueError(f"{where}: {v.size} numbers, expected {count}")
    return v


def rigid(T: np.ndarray, where: str, tol: float = 1e-3, what: str = "the pose") -> np.ndarray:
    """``T``, refused naming ``where`` and ``what`` (``WHERE: WHAT is not rigid ...``) unless it is a finite
    rigid ``(4, 4)`` transform (:func:`occkit.geometry.transforms.rigid_problem`): the one place a file's pose
    is held to that, for every reader and :func:`occkit.data.scene_record.check_record`."""
    problem = rigid_problem(T, tol)
    if problem is not None:
        raise ValueError(f"{where}: {what} is {problem}")
    return T


def read_arrays(
    path: str | os.PathLike, table: dict[str, str], dims: dict[str, int] | None = None
) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` that ``table`` declares, ``{name: "DTYPES AXES"}``: DTYPES a dtype's
    name, several joined by ``|``, or ``*`` (any); AXES a shape as :func:`occkit.shapes.check_shape`
    reads one (a name binds one size across the table's arrays; ``dims`` fixes some beforehand). A
    missing file or array, or one of another shape or dtype, raises one line naming the file and array."""
    z = load_npz(path, keys=tuple(table))
    bound = dict(dims or {})
    for name, declared in table.items():
        dtypes, _, axes = declared.partition(" ")
        bound = check_shape(z[name], axes, name=f"{path}: '{name}'", dims=bound)
        if dtypes != "*" and z[name].dtype.name not in dtypes.split("|"):
            raise ValueError(f"{path}: '{name}' is {z[name].dtype}, expected {dtypes.replace('|', ' or ')}")
    return z


def through_table(
    raw: np.ndarray, lut: np.ndarray, known: np.ndarray, where: Any, whose: str, ids: str = "raw label ids"
) -> np.ndarray:
    """Label ids ``raw`` through the lookup table ``lut`` (indexed by id), in ``raw``'s shape; an id that
    ``known`` (a boolean table by id) does not hold, e.g. 9999, raises naming ``where``, the ``ids`` and
    ``whose`` table (read as ignored it would leave the voxel out of the score without a word)."""
    flat = np.asarray(raw).reshape(-1).astype(np.int64)
    ok = known[np.clip(flat, 0, known.size - 1)] & (flat >= 0) & (flat < known.size)
    if not ok.all():
        raise ValueError(f"{where}: {ids} {np.unique(flat[~ok])[:8].tolist()} are not in {whose}")
    return lut[flat].reshape(np.shape(raw))


def one_of(value: Any, allowed: Collection[Any], what: str) -> Any:
    """``value``, refused naming ``what`` unless it is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def sscnet_downsample(labels: np.ndarray, factor: int, classes: int, ignore: int = 255) -> np.ndarray:
    """Coarse labels by SSCNet's rule (SSCBench's and MonoScene's preprocessing): per block of
    ``factor^3`` voxels of ``labels`` (``(X, Y, Z)``, classes ``0..classes-1`` and ``ignore``), with
    ``n0`` empty and ``n255`` ignored ones, empty (0) if ``n0 + n255 > 0.95 * factor^3`` and ``n0 >
    n255``, ``ignore`` if above that threshold otherwise, else the most frequent class of
    ``1..classes-1`` (the smallest on a tie). ``(X / f, Y / f, Z / f)`` uint8; a shape that does not
    divide by ``factor`` raises."""
    a = np.asarray(labels)
    f = int(factor)
    X, Y, Z = a.shape
    if X % f or Y % f or Z % f:
        raise ValueError(f"labels: shape {a.shape} is not divisible by {f}")
    blocks = np.ascontiguousarray(
        a.astype(np.uint8, copy=False).reshape(X // f, f, Y // f, f, Z // f, f).transpose(0, 2, 4, 1, 3, 5)
    ).reshape(X // f, Y // f, Z // f, f**3)
    n = f**3
    count_dtype = np.uint16 if n > 255 else np.uint8
    n0 = (blocks == 0).sum(-1, dtype=count_dtype)
    n255 = (blocks == ignore).sum(-1, dtype=count_dtype)
    best = np.zeros(n0.shape, dtype=np.uint8)
    best_n = np.zeros(n0.shape, dtype=count_dtype)
    for c in range(1, classes):
        k = (blocks == c).sum(-1, dtype=count_dtype)
        better = k > best_n
        best[better] = c
        best_n[better] = k[better]
    empty = (n0.astype(np.float64) + n255) > 0.95 * n
    return np.where(empty, np.where(n0 > n255, 0, ignore), best).astype(np.uint8)
