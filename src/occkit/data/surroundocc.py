"""SurroundOcc's nuScenes occupancy labels, read and written.

Layout under ``root`` (SurroundOcc's ``data/`` folder, with occkit's index beside it)::

    annotations.json                          Occ3D's schema plus, per frame, lidar_sensor
                                              {extrinsic, token, filename} (see occkit.data.lidar_frame)
    nuscenes_occ/samples/<LiDAR file>.npy     one per LiDAR key frame, named after the LiDAR
                                              sample ("n008-...__LIDAR_TOP__153....pcd.bin.npy")
    samples/CAM_*/...                         the camera images (annotations.json's img_path)

A label file is an ``(N, 4)`` array, one row per occupied voxel: the voxel indices ``x, y, z``
and the class (SurroundOcc's generator writes int64; float files holding whole numbers are read
too). The grid is 200 x 200 x 16 voxels of 0.5 m over [-50, -50, -5, 50, 50, 3] m in the LiDAR
frame, index ``i`` covering ``[lo + 0.5 i, lo + 0.5 (i + 1))``. Classes 1..16 are nuScenes-lidarseg's
merged classes (barrier .. vegetation); class 0 in a file is LiDAR noise, read as 255 (ignored);
a voxel not listed is empty (0). Rows that repeat a voxel with its class are read as one; a voxel
listed twice with two classes is refused naming the file, the voxel and both classes, since which
one is scored would be the reader's choice. SurroundOcc's ``LoadOccupancy`` and evaluation take the
last row (their dense fill); ``occkit eval --allow-duplicate-voxels`` reads such files that way
(:data:`FILES`, :func:`occkit.data.lidar_frame.rows_to_dense`).

Predictions (``occkit predict``) are written in the same layout of rows, one file per frame:
``PRED/<token>.npy`` uint16 ``(N, 4)`` ``x, y, z, class`` of the voxels predicted non-empty.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from occkit.data.lidar_frame import DuplicateVoxels, LidarFrameDataset, SparseVoxelFiles
from occkit.fileio import save_npy_atomic
from occkit.geometry.grid import Grid

SURROUNDOCC_RANGE: tuple[float, ...] = (-50.0, -50.0, -5.0, 50.0, 50.0, 3.0)
SURROUNDOCC_VOXEL = 0.5
SURROUNDOCC_SHAPE: tuple[int, int, int] = (200, 200, 16)
LABEL_DIR = "nuscenes_occ/samples"
#: The label and prediction files (their columns; the released reading of a voxel listed twice).
FILES = SparseVoxelFiles(
    "SurroundOcc label",
    SURROUNDOCC_SHAPE,
    columns=("x", "y", "z", "class"),
    rule="last",
    policy="last row (SurroundOcc's released reading)",
)
#: The rows of a dense grid, and ``occkit predict``'s files (see the module docstring).
dense_to_rows, write_prediction, read_prediction = FILES.dense_to_rows, FILES.write_prediction, FILES.read_prediction


def surroundocc_grid() -> Grid:
    """SurroundOcc: [-50, -50, -5, 50, 50, 3] m at 0.5 m, shape (200, 200, 16), LiDAR frame."""
    return Grid.from_range(SURROUNDOCC_RANGE, SURROUNDOCC_VOXEL)


def label_file_name(lidar_filename: str) -> str:
    """The label file of a LiDAR sample file (``samples/LIDAR_TOP/X.pcd.bin`` -> ``X.pcd.bin.npy``)."""
    return Path(str(lidar_filename)).name + ".npy"


def read_surroundocc_label(path: str | os.PathLike, duplicates: DuplicateVoxels | None = None) -> np.ndarray:
    """A SurroundOcc label file as the dense ``(200, 200, 16)`` uint8 grid: 0 empty, 1..16, 255
    ignored (noise). A file of the wrong shape, dtype, grid or classes, or listing a voxel twice
    with two classes (unless ``duplicates``: then the last row, recorded), raises naming it."""
    return FILES.read_label(path, duplicates)


def write_surroundocc_label(path: str | os.PathLike, dense: np.ndarray) -> Path:
    """Write a dense ``(200, 200, 16)`` grid (0 empty, 1..16, 255 ignored) as a SurroundOcc label
    file (rows ``x, y, z, class``, noise = 0), atomically: uint8, the smallest type that holds them
    (indices 0..199, classes 0..16), 8x smaller than int64; the released loader reads any numeric
    type (``np.load(...).astype(np.float32)``) and occkit's reader any integer type."""
    return save_npy_atomic(path, FILES.dense_to_rows(dense, np.uint8))


# ------------------------------------------------------------------------------ reader


class SurroundOccDataset(LidarFrameDataset):
    """Frames of a SurroundOcc-layout dataset (see the module docstring) as
    :class:`~occkit.data.sample.Sample` in the LiDAR frame (:mod:`occkit.data.lidar_frame`).

    Args: as :class:`~occkit.data.occ3d.Occ3DDataset`. The label of a frame is its ``occ_path``
    when annotations.json gives one, else ``nuscenes_occ/samples/<LiDAR file name>.npy``.
    """

    label_grid, files, label_dir = surroundocc_grid(), FILES, LABEL_DIR
    format_name = "surroundocc"
    layout = "SurroundOcc"

    def default_label_path(self, token: str) -> Path:
        return self.root / LABEL_DIR / label_file_name(self.lidar_field(token, "filename"))
