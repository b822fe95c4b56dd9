"""What the nuScenes occupancy layouts labelled in the LiDAR frame share (SurroundOcc,
OpenOccupancy / nuScenes-Occupancy): their 17 classes, the checks of a sparse voxel list, and a
reader whose frames are in the LiDAR frame.

Both layouts store, per LiDAR key frame, the occupied voxels as an ``(N, 4)`` array of three voxel
indices and a class (the column order differs), with class 0 = "noise" (read as 255, ignored) and
every voxel not listed empty (0). Cameras and poses come from an ``annotations.json`` in Occ3D's
schema (:mod:`occkit.data.occ3d`) with, per frame, the LiDAR the labels are in::

    lidar_sensor: {extrinsic: {translation, rotation} (LiDAR -> ego),
                   token: <the LIDAR_TOP sample_data token>,
                   filename: "samples/LIDAR_TOP/<name>.pcd.bin"}   (occkit label writes the keyframe's
                                                            sweep there: the Sample's lidar, load_extras)
    scene_token: <the nuScenes scene token>               (OpenOccupancy's folder names)
    occ_path: <label file, relative to the root>          (optional: overrides the layout's rule)

In a :class:`~occkit.data.sample.Sample` of these readers the "ego" frame is the LiDAR frame (as
for SemanticKITTI): ``T_ego_from_cam`` is camera -> LiDAR, ``T_global_from_ego`` the LiDAR's pose,
``T_ego_from_lidar`` the identity; ``occupancy`` holds class ids 0..16 with 255 where ignored, and
``mask_camera`` = ``mask_lidar`` = the voxels that are not ignored (the official metrics count
every such voxel), and the 2D semantic maps of the synthetic extras are in these classes too
(:data:`OCC3D_TO_NUSC_OCC`). The synthetic extras (``extras/<scene>/<token>/``, as in the Occ3D layout) are
written in the LiDAR frame.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from occkit.data.layout_files import one_of
from occkit.data.occ3d import Occ3DDataset
from occkit.data.sample import Sample
from occkit.fileio import load_npy, save_npy_atomic
from occkit.geometry.grid import Grid
from occkit.geometry.transforms import invert_transform
from occkit.labels import OCC3D_CLASSES, OCC3D_PALETTE, refuse_ids_outside

#: The classes of both layouts (nuScenes-lidarseg's 16 merged classes, 0 = empty).
NUSC_OCC_CLASSES: tuple[str, ...] = ("empty", *OCC3D_CLASSES[1:17])  # Occ3D's 1..16, the same classes
NUSC_OCC_NUM_CLASSES = 17
#: RGB per class: Occ3D's palette for 1..16 (the same classes), white for empty.
NUSC_OCC_PALETTE: tuple[tuple[int, int, int], ...] = ((255, 255, 255), *OCC3D_PALETTE[1:17])
NUSC_OCC_EMPTY = 0
NUSC_OCC_IGNORE = 255
#: The class a label file writes for LiDAR noise (read as :data:`NUSC_OCC_IGNORE`).
NUSC_OCC_NOISE = 0
#: Occ3D class id -> these layouts' (a lookup table over uint8): the synthetic world's 2D semantic
#: maps (``Sample.semantics_2d``) are in Occ3D's classes; 1..16 are the same classes, Occ3D's free
#: (17, sky or nothing) is empty (0), and "others" (0), which these layouts lack (nuScenes-lidarseg's
#: noise is ignored in 3D; a 2D map has no ignored pixels), is empty too.
OCC3D_TO_NUSC_OCC: np.ndarray = np.concatenate([[0], np.arange(1, 17), np.zeros(256 - 17, dtype=np.int64)]).astype(
    np.int64
)


def prediction_relpath(token: str) -> str:
    """Where both layouts' ``write_prediction`` puts a frame's file, relative to the folder."""
    return f"{token}.npy"


def index_predictions(folder: Path) -> dict[str, Path]:
    """``{token: path}`` of the ``<token>.npy`` files of a prediction folder."""
    return {p.stem: p for p in sorted(Path(folder).glob("*.npy"))}


def check_prediction(token: str, labels: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """``labels`` as an array of ``shape`` with class ids 0..16, or a ``ValueError`` naming the frame."""
    labels = np.asarray(labels)
    if labels.shape != shape:
        raise ValueError(f"{token}: prediction of shape {labels.shape}, expected {shape}")
    if labels.size and int(labels.max()) > 16:
        raise ValueError(f"{token}: predicted class {int(labels.max())} outside 0..16")
    return labels


def check_sparse_voxels(
    arr: Any,
    path: Path,
    shape: tuple[int, int, int],
    columns: tuple[str, str, str, str],
    widths: tuple[int, ...] = (4,),
) -> None:
    """Refuse a label / prediction array that is not an ``(N, W)`` list (``W`` in ``widths``) of
    three voxel indices inside ``shape`` (in ``columns`` order) first and a class in 0..16 last, all
    whole numbers (columns between, e.g. velocities, are not checked); errors name ``path``."""
    if not isinstance(arr, np.ndarray) or arr.dtype == object:
        raise ValueError(f"{path}: not a numeric array")
    if arr.ndim != 2 or arr.shape[1] not in widths:
        w = " or ".join(f"(N, {k})" for k in widths)
        raise ValueError(f"{path}: shape {arr.shape}, expected {w} rows of {', '.join(columns)}")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{path}: dtype {arr.dtype}, expected integers (or floats holding whole numbers)")
    sel = arr[:, [0, 1, 2, arr.shape[1] - 1]]
    if np.issubdtype(arr.dtype, np.floating) and not (np.isfinite(sel) & (sel == np.floor(sel))).all():
        raise ValueError(f"{path}: dtype {arr.dtype} with NaN, infinite or fractional values; expected whole numbers")
    if not len(arr):
        return
    for col, name in enumerate(columns[:3]):
        lo, hi, n = sel[:, col].min(), sel[:, col].max(), shape["xyz".index(name)]
        if lo < 0 or hi >= n:
            raise ValueError(
                f"{path}: column {col} ({name}) holds {int(lo)}..{int(hi)}, outside the grid's 0..{n - 1} "
                f"(a label file of another grid than {shape[0]}x{shape[1]}x{shape[2]}?)"
            )
    refuse_ids_outside(sel[:, 3].astype(np.int64), NUSC_OCC_NUM_CLASSES, None, path, "the table")


#: The released readings of a voxel listed twice with two classes, by :func:`rows_to_dense`'s ``rule``.
_RULES = {"last": "the last row wins", "vote": "the class most rows give wins, ties to the smaller id"}


class DuplicateVoxels:
    """The opt-in to the released readings of sparse label / prediction files that list a voxel
    twice with two classes (``occkit eval --allow-duplicate-voxels``): a reader given one applies its
    layout's released rule (:func:`rows_to_dense`) instead of refusing the file, and records the
    file here (thread-safe: the readers run in threads)."""

    def __init__(self) -> None:
        self.files: list[str] = []
        self._lock = threading.Lock()

    def record(self, path: str | os.PathLike) -> None:
        with self._lock:
            if str(path) not in self.files:
                self.files.append(str(path))


def rows_to_dense(
    xyz: np.ndarray,
    cls: np.ndarray,
    shape: tuple[int, int, int],
    path: str | os.PathLike,
    columns: tuple[str, ...],
    rule: str,
    duplicates: DuplicateVoxels | None = None,
    noise: int | None = None,
) -> np.ndarray:
    """The dense ``shape`` uint8 grid of sparse rows: ``xyz (N, 3)`` int64 ``[x, y, z]`` indices,
    ``cls (N,)`` int64 the file's classes (0..16), written as they are or, with ``noise``, class 0 as
    ``noise``; voxels not listed are empty (0). Rows repeating a voxel with its class are harmless.

    A voxel listed twice with two classes raises a ``ValueError`` in one line naming ``path``, the
    voxel (in the file's ``columns`` order) and the two classes: which one the benchmark scores is
    the reader's rule, not the file's. With ``duplicates`` (the explicit opt-in) the file is read as
    the released code reads it, by ``rule``: ``"last"`` (the last row's class, SurroundOcc's dense
    fill) or ``"vote"`` (the class most rows give, ties to the smaller id, noise counted as a class:
    OpenOccupancy's ``LoadOccupancy``), and recorded in ``duplicates``. ``O(N)`` for files without
    such voxels (a fill and one comparison)."""
    one_of(rule, _RULES, "rule")
    X, Y, Z = shape
    vals = cls if noise is None else np.where(cls == 0, noise, cls)
    vals = vals.astype(np.uint8)
    dense = np.full(shape, NUSC_OCC_EMPTY, dtype=np.uint8)
    if not len(vals):
        return dense
    flat = (xyz[:, 0] * Y + xyz[:, 1]) * Z + xyz[:, 2]
    out = dense.reshape(-1)
    out[flat] = vals  # numpy's fancy assignment: the last row of a repeated voxel wins
    clash = out[flat] != vals  # a row whose class is not its voxel's last one
    if not clash.any():
        return dense
    if duplicates is None:
        rows = np.flatnonzero(flat == flat[np.flatnonzero(clash)[0]])
        i = int(rows[0])
        j = int(rows[vals[rows] != vals[i]][0])
        voxel = ", ".join(str(int(xyz[i, "xyz".index(c)])) for c in columns[:3])
        raise ValueError(
            f"{path}: voxel ({', '.join(columns[:3])}) = ({voxel}) is listed twice with two classes, "
            f"{int(cls[i])} (row {i}) and {int(cls[j])} (row {j}); occkit eval --allow-duplicate-voxels reads "
            f"such files as the released code does ({_RULES[rule]})"
        )
    duplicates.record(path)
    if rule == "vote":
        out[:] = NUSC_OCC_EMPTY
        keys, counts = np.unique(flat * 256 + vals, return_counts=True)
        vox, lab = keys // 256, keys % 256
        order = np.lexsort((lab, -counts, vox))  # by voxel, then most rows, then smaller class
        vox, lab = vox[order], lab[order]
        first = np.ones(len(vox), dtype=bool)
        first[1:] = vox[1:] != vox[:-1]
        out[vox[first]] = lab[first].astype(np.uint8)
    return dense


def read_sparse_voxels(
    path: str | os.PathLike,
    what: str,
    shape: tuple[int, int, int],
    columns: tuple[str, ...],
    rule: str,
    widths: tuple[int, ...] = (4,),
    noise: int | None = None,
    duplicates: DuplicateVoxels | None = None,
) -> np.ndarray:
    """A sparse label or prediction file (``(N, W)`` rows of three voxel indices in ``columns``
    order, the class last) as the dense ``shape`` uint8 grid ``[x, y, z]``: checked
    (:func:`check_sparse_voxels`), then :func:`rows_to_dense` (``rule``, ``noise``, ``duplicates``).
    What both layouts' readers, labels and predictions, run; errors name ``path``."""
    path = Path(path)
    arr = load_npy(path, what)
    check_sparse_voxels(arr, path, shape, columns, widths)  # type: ignore[arg-type]
    xyz = arr[:, [columns.index(c) for c in "xyz"]].astype(np.int64)
    return rows_to_dense(xyz, arr[:, -1].astype(np.int64), shape, path, columns, rule, duplicates, noise)


@dataclass(frozen=True)
class SparseVoxelFiles:
    """One layout's sparse voxel files, labels and predictions (see the module docstring): what
    tells SurroundOcc's from OpenOccupancy's, and the reading and writing both run.

    Args:
        title: the layout's label files in an error message (``"SurroundOcc label"``).
        shape: the dense grid ``(X, Y, Z)``.
        columns: a row's columns, three voxel indices then the class (``("x", "y", "z", "class")``
            for SurroundOcc, ``("z", "y", "x", "class")`` for OpenOccupancy).
        rule: how the released code reads a voxel listed twice with two classes (:func:`rows_to_dense`).
        policy: that reading in words, for the opt-in's report (``occkit eval --allow-duplicate-voxels``).
        label_widths: the row widths a label file may have (OpenOccupancy's may carry velocities).
    """

    title: str
    shape: tuple[int, int, int]
    columns: tuple[str, str, str, str]
    rule: str
    policy: str
    label_widths: tuple[int, ...] = (4,)

    def read_label(self, path: str | os.PathLike, duplicates: DuplicateVoxels | None = None) -> np.ndarray:
        """A label file as the dense ``shape`` uint8 grid ``[x, y, z]``: 0 empty, 1..16, 255 ignored
        (class 0, noise). A file of the wrong shape, dtype, grid or classes, or listing a voxel twice
        with two classes (unless ``duplicates``: then :attr:`rule`, recorded), raises naming it; so
        does, for a grid over 256 voxels along an axis, a file of 8-bit integers (its header read
        only): they cannot hold the indices past 255, which wrapped when it was saved."""
        self._refuse_8_bit(Path(path))
        return read_sparse_voxels(
            path, self.title, self.shape, self.columns, self.rule, self.label_widths, NUSC_OCC_IGNORE, duplicates
        )

    def _refuse_8_bit(self, path: Path) -> None:
        top = max(self.shape) - 1
        try:
            dtype = np.lib.format.open_memmap(path, mode="r").dtype if top > 255 else None
        except (OSError, ValueError):
            return  # not readable as .npy: the reader names what is wrong
        if dtype is not None and dtype.kind in "iu" and dtype.itemsize == 1:
            raise ValueError(
                f"{path}: dtype {dtype}, which cannot hold the {self.title} files' voxel indices up to {top} (indices "
                f"past {np.iinfo(dtype).max} wrapped when it was saved?); the layout's files are integers of 16 bits "
                "or more"
            )

    def dense_to_rows(self, dense: np.ndarray, dtype: type = np.int64) -> np.ndarray:
        """``(N, 4)`` rows of ``dtype`` of a dense ``shape`` grid ``[x, y, z]`` (0 empty, 1..16, 255
        ignored): one row per voxel that is not empty, in C order of ``[x, y, z]``, its indices in
        :attr:`columns` order and its class last, the ignored ones (255) as class 0 (noise), as the
        label files hold them. A grid of another shape or with classes outside 0..16 raises."""
        dense = np.asarray(dense)
        if dense.shape != self.shape:
            raise ValueError(f"labels: shape {dense.shape}, expected {self.shape}")
        idx = np.argwhere(dense != NUSC_OCC_EMPTY)
        cls = dense[idx[:, 0], idx[:, 1], idx[:, 2]].astype(np.int64)
        cls[cls == NUSC_OCC_IGNORE] = NUSC_OCC_NOISE
        refuse_ids_outside(cls, NUSC_OCC_NUM_CLASSES, None, "labels", "the classes")
        order = ["xyz".index(c) for c in self.columns[:3]]
        return np.concatenate([idx[:, order], cls[:, None]], 1).astype(dtype)

    def write_prediction(self, folder: Path, token: str, labels: np.ndarray) -> Path:
        """``folder/<token>.npy``, atomically: uint16 rows (:meth:`dense_to_rows`) of the voxels of
        ``labels`` (``shape``, class ids 0..16: :func:`check_prediction`) predicted non-empty."""
        labels = check_prediction(token, labels, self.shape)
        from occkit.outputs import path_under

        path = path_under(folder, prediction_relpath(token), what=f"frame token {token!r}")  # never outside the folder
        return save_npy_atomic(path, self.dense_to_rows(labels, np.uint16))

    def read_prediction(self, path: Path, duplicates: DuplicateVoxels | None = None) -> np.ndarray:
        """A prediction file as ``shape`` uint8 class ids (0 where no row is given); a voxel listed
        twice with two classes is refused as in a label file (:meth:`read_label`)."""
        return read_sparse_voxels(path, "prediction", self.shape, self.columns, self.rule, duplicates=duplicates)


class LidarFrameDataset(Occ3DDataset):
    """Frames of a layout whose labels are sparse voxel lists in the LiDAR frame (see the module
    docstring), as :class:`~occkit.data.sample.Sample` in the LiDAR frame.

    A subclass sets :attr:`label_grid`, :attr:`files`, :attr:`label_dir` and implements
    :meth:`default_label_path`. Arguments as :class:`~occkit.data.occ3d.Occ3DDataset`.
    """

    label_grid: Grid
    #: The layout's label and prediction files.
    files: SparseVoxelFiles
    #: The folder under the root that holds the layout's label files (what detects the layout).
    label_dir: str
    layout = "LiDAR-frame occupancy"

    #: None: a label file listing a voxel twice with two classes is refused; a
    #: :class:`DuplicateVoxels`: it is read by the layout's released rule and recorded there
    #: (``occkit eval --allow-duplicate-voxels``).
    duplicate_voxels: DuplicateVoxels | None = None

    # ------------------------------------------------------------------ what a subclass gives
    def layout_grid(self) -> Grid:
        """The layout's :attr:`label_grid` (in the LiDAR frame)."""
        return self.label_grid

    def default_label_path(self, token: str) -> Path:
        """Where the layout keeps the frame's label file when ``occ_path`` does not say."""
        raise TypeError(f"{type(self).__name__} does not say where its labels are")

    def read_label_file(self, path: Path) -> np.ndarray:
        """A label file as the dense ``(X, Y, Z)`` uint8 grid: 0 empty, 1..16, 255 ignored (a voxel
        listed twice with two classes refused unless :attr:`duplicate_voxels` is set)."""
        return self.files.read_label(path, self.duplicate_voxels)

    # ------------------------------------------------------------------ the LiDAR
    def lidar_field(self, token: str, key: str) -> Any:
        """``lidar_sensor.<key>`` of the frame; a missing one raises naming the file and frame."""
        return self._field(self.info(token), ("lidar_sensor", key), token)

    def T_ego_from_lidar_pose(self, token: str) -> torch.Tensor:
        """``(4, 4)`` float64 LiDAR -> vehicle ego (``lidar_sensor.extrinsic``)."""
        sensor = self.frame(token).lidar_sensor
        if sensor is None:
            raise KeyError(f"{self._where(token)}: no 'lidar_sensor.extrinsic'")
        return sensor.extrinsic.matrix()

    def gt_path(self, token: str) -> Path:
        rel = self.info(token).get("occ_path")
        if rel:
            return self.root / str(rel).removeprefix("./")
        return self.default_label_path(token)

    # ------------------------------------------------------------------ poses in the LiDAR frame
    def T_global_from_ego(self, token: str) -> torch.Tensor:
        """``(4, 4)`` float64 pose of the frame's LiDAR (the Sample's ego frame)."""
        return Occ3DDataset.T_global_from_ego(self, token) @ self.T_ego_from_lidar_pose(token)

    def T_ego_from_cam(self, token: str, cam: str) -> torch.Tensor:
        """``(4, 4)`` float64 camera -> LiDAR, at the frame's timestamp (with the camera's own ego
        pose where the annotations give one, as :meth:`Occ3DDataset.T_ego_from_cam`)."""
        return invert_transform(self.T_ego_from_lidar_pose(token)) @ Occ3DDataset.T_ego_from_cam(self, token, cam)

    def T_ego_from_lidar(self, token: str) -> torch.Tensor:
        """The identity: the Sample's ego frame is the LiDAR frame."""
        return torch.eye(4, dtype=torch.float64)

    # ------------------------------------------------------------------ labels
    #: No masks in the label files: the voxels scored are those not ignored (``frame_labels``).
    label_mask_names: tuple[str, ...] = ()

    def read_labels(self, token: str) -> dict[str, np.ndarray]:
        """``semantics`` ``(X, Y, Z)`` uint8 (0 empty, 1..16, 255 ignored) and ``mask_camera`` =
        ``mask_lidar`` (uint8, 1 where not ignored), the keys of the Occ3D reader's."""
        sem = self.read_label_file(self.gt_path(token))
        mask = (sem != NUSC_OCC_IGNORE).astype(np.uint8)
        return {"semantics": sem, "mask_camera": mask, "mask_lidar": mask.copy()}

    def read_instances(self, token: str) -> np.ndarray | None:
        return None

    def __getitem__(self, i: int) -> Sample:
        sample = super().__getitem__(i)  # the labels through read_labels, as Occ3D's
        if sample.semantics_2d is not None:  # the synthetic extras' maps: into this layout's classes
            sample.semantics_2d = torch.from_numpy(OCC3D_TO_NUSC_OCC[sample.semantics_2d.numpy()])
        return sample
