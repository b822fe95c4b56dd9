"""The truth-free quality of ``occkit label --quality`` (occkit.labelgen.consistency; docs/labels.md,
"Quality without truth"): each figure computed by hand on a tiny grid with a wall at a known distance."""

from __future__ import annotations

import numpy as np
import pytest

from occkit.geometry.grid import Grid
from occkit.labelgen.consistency import RayCounts, ray_counts

#: 1 m voxels over x [0, 20), y [-5, 5), z [-2, 2); a wall filling the voxels x in [10, 11), y in [0, 5)
GRID = Grid((0.0, -5.0, -2.0), (20.0, 5.0, 2.0), (1.0, 1.0, 1.0))
ORIGIN = np.array([0.25, 0.5, 0.5])


def _wall() -> np.ndarray:
    occ = np.zeros(GRID.shape, bool)
    occ[10, 5:, :] = True
    return occ


def test_each_return_is_classed_and_its_range_error_measured_by_hand():
    points = np.array(
        [
            [10.5, 0.5, 0.5],  # on the wall: enters it at x = 10, 9.75 m out, measured 10.25 m: agrees, -0.5 m
            [15.5, 0.5, 0.5],  # behind the wall: stops 5 voxels short, 9.75 against 15.25: false occupied, -5.5 m
            [12.5, -3.5, 0.5],  # beside the wall (y < 0 from x = 1.8 on): stops nowhere: false free, no error
            [8.5, 0.5, 0.5],  # in front of it: passes the return's voxel 8, stops in 10: false free, +1.5 m
            [11.2, 0.5, 0.5],  # one voxel behind it (voxel 11 next to 10): agrees, 9.75 - 10.95 = -1.2 m
            [25.0, 0.5, 0.5],  # outside the grid: not scored
            [0.3, 0.4, 0.5],  # inside the ego box: not scored
        ]
    )
    c = ray_counts(_wall(), GRID, ORIGIN, points, ego_box=(np.array([0.3, 0.5, 0.5]), np.array([0.4, 0.4, 0.4])))
    f = c.figures()
    assert f["rays"] == 5 and f["returns_outside_grid"] == 1
    assert (c.agree, c.false_occupied, c.false_free, c.stopped) == (2, 1, 2, 4)
    assert f["agree_percent"] == 40.0 and f["false_occupied_percent"] == 20.0 and f["false_free_percent"] == 40.0
    # absolute errors 0.5, 5.5, 1.5, 1.2: mean 8.7 / 4; the lower median of the four is 1.2
    assert f["range_error_mean_abs_m"] == pytest.approx(2.175)
    assert f["range_error_median_abs_m"] == pytest.approx(1.2)
    assert f["range_error_mean_m"] == pytest.approx((-0.5 - 5.5 + 1.5 - 1.2) / 4)


def test_counts_of_keyframes_add_up_and_no_ray_gives_no_figure():
    a = ray_counts(_wall(), GRID, ORIGIN, np.array([[10.5, 0.5, 0.5]]))
    b = ray_counts(_wall(), GRID, ORIGIN, np.array([[15.5, 0.5, 0.5], [8.5, 0.5, 0.5]]))
    total = RayCounts()
    total.add(a)
    total.add(b)
    f = total.figures()
    assert (f["rays"], total.agree, total.false_occupied, total.false_free) == (3, 1, 1, 1)
    assert f["range_error_median_abs_m"] == pytest.approx(1.5)  # 0.5, 1.5, 5.5
    empty = ray_counts(_wall(), GRID, ORIGIN, np.zeros((0, 3))).figures()
    assert empty["rays"] == 0 and empty["agree_percent"] is None and empty["range_error_median_abs_m"] is None


def test_labels_moved_off_the_returns_agree_less():
    occ = _wall()
    points = np.array([[10.5, y + 0.5, z + 0.5] for y in range(0, 5) for z in range(-2, 2)])
    here = ray_counts(occ, GRID, ORIGIN, points).figures()
    moved = ray_counts(np.roll(occ, 3, axis=0), GRID, ORIGIN, points).figures()
    assert here["agree_percent"] == 100.0
    assert moved["agree_percent"] == 0.0 and moved["false_free_percent"] == 100.0
