"""Reading SurroundOcc's released label generator's output (benchmarks/anchors/surroundocc/read_output.py):
(x, y, z, class) voxel rows to the dense (200, 200, 16) grid, 0 = empty, class 0 to the ignore label."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parents[2] / "benchmarks" / "anchors" / "surroundocc" / "read_output.py"
_spec = importlib.util.spec_from_file_location("surroundocc_read_output", HERE)
ro = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ro)


def _rows_as_the_generator_writes(points_lidar: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """The generator's last step: points in the LiDAR frame -> floor((p - pc_range[:3]) / 0.5), int."""
    idx = np.floor((points_lidar - np.array(ro.PC_RANGE[:3])) / ro.VOXEL_SIZE)
    return np.concatenate([idx, classes[:, None]], 1).astype(np.int64)


def test_rows_land_in_their_voxels_and_the_rest_is_empty(tmp_path):
    pts = np.array([[0.1, 0.1, 0.1], [-49.9, 49.9, -4.9], [10.26, -3.74, 2.9], [-0.2, 0.3, -1.0]])
    cls = np.array([11, 16, 4, 0])
    f = tmp_path / "a.pcd.bin.npy"
    np.save(f, _rows_as_the_generator_writes(pts, cls))
    g = ro.surroundocc_grid(f)
    assert g.shape == (200, 200, 16) and g.dtype == np.uint8
    assert g[100, 100, 10] == 11  # 0.1 m: the voxel [0, 0.5) of x and y, [0, 0.5) of z (= -5 + 10 * 0.5)
    assert g[0, 199, 0] == 16
    assert g[120, 92, 15] == 4
    assert g[99, 100, 8] == 255  # class 0 (noise/others) is SurroundOcc's ignore
    assert ro.surroundocc_grid(f, noise=0)[99, 100, 8] == 0
    assert int((g != 0).sum()) == 4
    # the voxel centres the generator uses hold the points it voxelised
    centres = ro.voxel_centers_lidar()
    for p, (i, j, k) in zip(pts, _rows_as_the_generator_writes(pts, cls)[:, :3]):
        assert np.all(np.abs(centres[i, j, k] - p) <= ro.VOXEL_SIZE / 2)


def test_bad_rows_are_refused_naming_the_file(tmp_path):
    f = tmp_path / "bad.npy"
    np.save(f, np.array([[200, 0, 0, 4]]))
    with pytest.raises(ValueError, match="bad.npy: voxel indices outside"):
        ro.surroundocc_grid(f)
    np.save(f, np.array([[1, 0, 0, 17]]))
    with pytest.raises(ValueError, match="bad.npy: classes outside"):
        ro.surroundocc_grid(f)
    np.save(f, np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"bad.npy: expected \(N, 4\)"):
        ro.surroundocc_grid(f)
