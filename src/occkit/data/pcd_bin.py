"""A nuScenes LiDAR file (``.pcd.bin``: float32 rows) read and checked: what the info files' sweeps, the Occ3D
layout's keyframe sweeps (``occkit label``'s) and the nuScenes reader share. A leaf module, so that each reader
imports it without importing another reader."""

from __future__ import annotations

import os

import numpy as np
import torch

from occkit.data.layout_files import existing


def read_pcd_bin(path: str | os.PathLike, columns: int = 5) -> torch.Tensor:
    """A nuScenes ``.pcd.bin``: float32 rows of ``columns`` values -> ``(P, 4)`` x, y, z, intensity.
    A file whose size is not a whole number of rows (cut short, or bytes added) or that holds a NaN
    or an infinite value is refused naming it."""
    path = existing(path, "LiDAR file")
    size, row = path.stat().st_size, 4 * columns
    if size % row:  # np.fromfile drops a tail shorter than a float32 unseen
        raise ValueError(
            f"{path}: {size} bytes, not a whole number of points ({row} bytes each: {columns} float32): truncated or "
            "not a nuScenes LiDAR file"
        )
    raw = np.fromfile(path, dtype=np.float32).reshape(-1, columns)[:, :4]
    bad = int((~np.isfinite(raw)).any(axis=1).sum())
    if bad:
        raise ValueError(f"{path}: {bad} of {len(raw)} points hold NaN or infinite values: a damaged LiDAR file")
    return torch.from_numpy(raw.copy())
