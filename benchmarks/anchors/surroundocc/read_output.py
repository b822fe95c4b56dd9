"""Read what SurroundOcc's released label generator writes (run_generator.sh), in occkit's environment.

``generate_occupancy_nuscenes.py`` (SurroundOcc commit 419bf5b) saves, per keyframe,
``<save_path>/dense_voxels_with_semantic/<LiDAR file name>.npy``: an ``(N, 4)`` integer array, one row
per occupied voxel, ``(x, y, z, class)``: voxel indices of the grid ``pc_range [-50, -50, -5, 50, 50,
3]``, ``voxel_size 0.5`` (config.yaml), so ``200 x 200 x 16``, in the keyframe's LiDAR frame (voxel
``(i, j, k)`` spans ``x in [-50 + 0.5 i, -50 + 0.5 (i + 1))``, likewise y and z), and ``class`` the
``learning_map`` value of nuscenes.yaml (0 noise/others, 1 barrier ... 16 vegetation; free voxels are
not listed).

:func:`surroundocc_grid` makes the dense ``(200, 200, 16)`` uint8 grid SurroundOcc trains and
evaluates on: 0 = empty (no row), ``1..16`` the classes; a row of class 0 becomes ``noise`` (default
255, as SurroundOcc's ``LoadOccupancy`` turns class 0 into its ignore label 255).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

PC_RANGE = (-50.0, -50.0, -5.0, 50.0, 50.0, 3.0)
VOXEL_SIZE = 0.5
OCC_SIZE = (200, 200, 16)
EMPTY = 0
NUM_CLASSES = 17  # 0 noise/others, 1..16; the grid's 0 is empty


def surroundocc_grid(npy_path: str | os.PathLike, noise: int = 255) -> np.ndarray:
    """``(200, 200, 16)`` uint8 dense grid of one ``dense_voxels_with_semantic/*.npy`` (x, y, z
    index order; 0 empty, 1..16 classes, ``noise`` for rows of class 0)."""
    path = Path(npy_path)
    rows = np.load(path)
    if rows.ndim != 2 or rows.shape[1] != 4 or rows.dtype.kind not in "iuf":
        raise ValueError(f"{path}: expected (N, 4) voxel rows (x, y, z, class), got {rows.dtype} {rows.shape}")
    if rows.dtype.kind == "f":
        if not np.array_equal(rows, np.floor(rows)):
            raise ValueError(f"{path}: voxel rows must hold integers")
    rows = rows.astype(np.int64)
    xyz, cls = rows[:, :3], rows[:, 3]
    if len(rows) and ((xyz < 0).any() or (xyz >= np.array(OCC_SIZE)).any()):
        raise ValueError(f"{path}: voxel indices outside the {OCC_SIZE} grid")
    if len(rows) and (cls.min() < 0 or cls.max() >= NUM_CLASSES):
        raise ValueError(f"{path}: classes outside 0..{NUM_CLASSES - 1}")
    grid = np.full(OCC_SIZE, EMPTY, np.uint8)
    grid[xyz[:, 0], xyz[:, 1], xyz[:, 2]] = np.where(cls == 0, noise, cls).astype(np.uint8)
    return grid


def voxel_centers_lidar(shape: tuple[int, int, int] = OCC_SIZE) -> np.ndarray:
    """``(X, Y, Z, 3)`` float64: each voxel's centre in the keyframe's LiDAR frame, as the generator
    places them (``(index + 0.5) * voxel_size + pc_range[:3]``)."""
    idx = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), -1).astype(np.float64)
    return (idx + 0.5) * VOXEL_SIZE + np.array(PC_RANGE[:3])


if __name__ == "__main__":  # a summary of a run's output folder
    import sys

    for f in sorted(Path(sys.argv[1]).glob("dense_voxels_with_semantic/*.npy")):
        g = surroundocc_grid(f)
        counts = np.bincount(g.ravel(), minlength=256)
        print(
            f.name,
            "occupied",
            int((g != EMPTY).sum()),
            "by class",
            {c: int(n) for c, n in enumerate(counts) if n and c},
        )
