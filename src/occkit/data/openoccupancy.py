"""OpenOccupancy's nuScenes-Occupancy labels, read and written.

Layout under ``root`` (OpenOccupancy's ``data/`` folder, with occkit's index beside it)::

    annotations.json                          Occ3D's schema plus, per frame, lidar_sensor
                                              {extrinsic, token, filename} and scene_token
                                              (see occkit.data.lidar_frame)
    nuScenes-Occupancy/scene_<scene token>/occupancy/<LiDAR token>.npy
                                              one per LiDAR key frame
    samples/CAM_*/...                         the camera images (annotations.json's img_path)

A label file is an ``(N, 4)`` array, one row per occupied voxel: the voxel indices in the order
``z, y, x`` and the class (integers; floats holding whole numbers are read too); files with
velocities, ``(N, 7)`` rows ``z, y, x, vx, vy, vz, class`` (the loader's ``use_vel`` variant), are
read as well, the velocities left out. The grid is
512 x 512 x 40 voxels of 0.2 m over [-51.2, -51.2, -5, 51.2, 51.2, 3] m in the LiDAR frame (in
occkit's ``[x, y, z]`` axis order). Classes 1..16 are nuScenes-lidarseg's merged classes
(barrier .. vegetation); class 0 in a file is LiDAR noise, read as 255 (ignored); a voxel not
listed is empty (0). Rows that repeat a voxel with its class are read as one; a voxel listed twice
with two classes is refused naming the file, the voxel and both classes, since which one is scored
would be the reader's choice. OpenOccupancy's ``LoadOccupancy`` gives the voxel the class most rows
give, ties going to the smaller id, noise (255) counted as a class; ``occkit eval
--allow-duplicate-voxels`` reads such files that way (:data:`FILES`,
:func:`occkit.data.lidar_frame.rows_to_dense`).

Predictions (``occkit predict``) are written in the same layout of rows, one file per frame:
``PRED/<token>.npy`` uint16 ``(N, 4)`` ``z, y, x, class`` of the voxels predicted non-empty (the
columns of OpenOccupancy's own saved predictions).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from occkit.data.lidar_frame import DuplicateVoxels, LidarFrameDataset, SparseVoxelFiles
from occkit.fileio import save_npy_atomic
from occkit.geometry.grid import Grid

OPENOCC_RANGE: tuple[float, ...] = (-51.2, -51.2, -5.0, 51.2, 51.2, 3.0)
OPENOCC_VOXEL = 0.2
OPENOCC_SHAPE: tuple[int, int, int] = (512, 512, 40)
LABEL_DIR = "nuScenes-Occupancy"
#: The label and prediction files (their columns; the released reading of a voxel listed twice).
FILES = SparseVoxelFiles(
    "nuScenes-Occupancy label",
    OPENOCC_SHAPE,
    columns=("z", "y", "x", "class"),
    rule="vote",
    policy="most rows, ties to the smaller class (OpenOccupancy's released LoadOccupancy)",
    label_widths=(4, 7),
)
#: The rows of a dense grid, and ``occkit predict``'s files (see the module docstring).
dense_to_rows, write_prediction, read_prediction = FILES.dense_to_rows, FILES.write_prediction, FILES.read_prediction


def openoccupancy_grid() -> Grid:
    """nuScenes-Occupancy: [-51.2, -51.2, -5, 51.2, 51.2, 3] m at 0.2 m, shape (512, 512, 40), LiDAR frame."""
    return Grid.from_range(OPENOCC_RANGE, OPENOCC_VOXEL)


def label_rel_path(scene_token: str, lidar_token: str) -> str:
    """``nuScenes-Occupancy/scene_<scene token>/occupancy/<LiDAR token>.npy``."""
    return f"{LABEL_DIR}/scene_{scene_token}/occupancy/{lidar_token}.npy"


def read_openoccupancy_label(path: str | os.PathLike, duplicates: DuplicateVoxels | None = None) -> np.ndarray:
    """A nuScenes-Occupancy label file as the dense ``(512, 512, 40)`` uint8 grid (``[x, y, z]``):
    0 empty, 1..16, 255 ignored (noise). A file of the wrong shape, dtype, grid or classes, or
    listing a voxel twice with two classes (unless ``duplicates``: then the released vote,
    recorded), raises naming it; so does a file of 8-bit integers, which cannot hold the indices
    past 255 of a 512-voxel axis (they wrapped when it was saved)."""
    return FILES.read_label(path, duplicates)


def write_openoccupancy_label(path: str | os.PathLike, dense: np.ndarray) -> Path:
    """Write a dense ``(512, 512, 40)`` grid (0 empty, 1..16, 255 ignored) as a nuScenes-Occupancy
    label file (rows ``z, y, x, class``, noise = 0), atomically: uint16, the smallest type that holds
    indices up to 511 and the 255 the released loader writes into the class column in place
    (``pcd_label[pcd_label == 0] = 255``), 4x smaller than int64 (an Occ3D frame converted here, most
    of its voxels ignored, was 222 MB)."""
    return save_npy_atomic(path, FILES.dense_to_rows(dense, np.uint16))


# ------------------------------------------------------------------------------ reader


class OpenOccupancyDataset(LidarFrameDataset):
    """Frames of a nuScenes-Occupancy-layout dataset (see the module docstring) as
    :class:`~occkit.data.sample.Sample` in the LiDAR frame (:mod:`occkit.data.lidar_frame`).

    Args: as :class:`~occkit.data.occ3d.Occ3DDataset`. The label of a frame is its ``occ_path``
    when annotations.json gives one, else
    ``nuScenes-Occupancy/scene_<scene_token>/occupancy/<lidar_sensor.token>.npy``.
    """

    label_grid, files, label_dir = openoccupancy_grid(), FILES, LABEL_DIR
    format_name = "openoccupancy"
    layout = "nuScenes-Occupancy"

    def default_label_path(self, token: str) -> Path:
        scene_token = self._field(self.info(token), ("scene_token",), token)
        return self.root / label_rel_path(str(scene_token), str(self.lidar_field(token, "token")))
