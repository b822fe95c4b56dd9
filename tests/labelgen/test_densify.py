"""``occkit label --densify tsdf`` (occkit.labelgen.densify): a wall seen as rings with gaps between them comes
back as one surface at the wall, the gaps filled; the ground is left to the ground fill."""

from __future__ import annotations

import numpy as np

from occkit.geometry.grid import Grid
from occkit.labelgen.densify import TSDFDensify, densify_points, fill_ground_beside, tsdf_surface
from occkit.labelgen.steps import fill_ground

GRID = Grid.from_range((0.0, -4.0, -1.0, 16.0, 4.0, 3.0), 0.4)


def _rings() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A wall at x = 10 m, seen from (0, 0, 1) as 5 rings 0.5 m apart (z = 0, 0.5, ..., 2), a point every
    5 cm along y; one sweep."""
    y = np.arange(-3.0, 3.0, 0.05)
    pts = np.concatenate([np.c_[np.full(len(y), 10.0), y, np.full(len(y), z)] for z in (0.0, 0.5, 1.0, 1.5, 2.0)])
    return np.array([[0.0, 0.0, 1.0]]), pts, np.zeros(len(pts), np.int64)


def test_the_surface_between_the_rings_of_a_wall_is_the_wall():
    origins, pts, seg = _rings()
    verts = tsdf_surface(origins, pts, seg, GRID, TSDFDensify())
    assert len(verts)
    on_wall = verts[(np.abs(verts[:, 1]) < 2.5) & (verts[:, 2] > 0.1) & (verts[:, 2] < 1.9)]
    # every vertex of the wall's middle lies on the wall, within a TSDF voxel (0.2 m; the label grid's is 0.4)
    assert np.abs(on_wall[:, 0] - 10.0).max() <= 0.2
    # and the surface continues between the rings (0.5 m apart): every 0.2 m band of height from 0.2 to 1.8 m
    # (a TSDF voxel's) holds vertices
    bands = np.unique(np.floor(on_wall[:, 2] / 0.2).astype(int))
    assert set(range(1, 9)) <= set(bands.tolist())


def test_new_points_take_the_class_of_the_returns_near_them_and_the_ground_is_left_out():
    origins, pts, seg = _rings()
    labels = np.where(pts[:, 2] < 0.25, 2, 1)  # the lowest ring called ground (2), the rest a wall (1)
    new, cls = densify_points(origins, pts, seg, labels, GRID, ground=(2,), n_classes=3)
    assert len(new) and set(cls.tolist()) == {1}
    middle = new[np.abs(new[:, 1]) < 2.5]  # the wall's ends are the surface's edges, rounded off
    assert len(middle) and np.abs(middle[:, 0] - 10.0).max() <= 0.2
    # a point near only the ground ring is dropped, not added as wall
    assert new[:, 2].min() > 0.0


def test_a_new_point_lands_only_in_the_voxel_the_surface_crosses_not_the_free_one_beside_it():
    # the wall (x = 10 m) is the voxels from x = 10.0 to 10.4 m; the one in front (9.6-10.0) and the one
    # behind (10.4-10.8) hold no return and must get no point, while the gaps between the rings are filled
    origins, pts, seg = _rings()
    new, _ = densify_points(origins, pts, seg, np.ones(len(pts), np.int64), GRID, ground=(2,), n_classes=3)
    # nowhere behind the wall (where the truncation band ends and the field meets the unknown)
    assert len(new) and new[:, 0].max() < 10.4
    middle = new[(np.abs(new[:, 1]) < 2.5) & (new[:, 2] > 0.2) & (new[:, 2] < 1.8)]
    assert len(middle)
    assert set(np.floor(middle[:, 0] / 0.4).astype(int).tolist()) == {25}
    # the voxel from z = 0.6 to 1.0 m lies between the rings at 0.5 and 1.0 m: filled
    assert ((middle[:, 2] >= 0.6) & (middle[:, 2] < 1.0)).any()


def test_the_ground_under_a_densified_column_is_still_filled():
    free, ground = 3, (2,)
    sem = np.full((3, 1, 4), free, np.uint8)
    sem[0, 0, 0] = sem[2, 0, 0] = 2  # the ground seen in the columns on either side
    sem[1, 0, 2] = 1  # a densified point above the ground in the middle column
    added = np.zeros(sem.shape, bool)
    added[1, 0, 2] = True

    def fill(s):
        return fill_ground(s, ground, free, max_gap=1)

    assert fill(sem)[1, 0, 0] == free  # filled as is, the column is not empty: no ground under the point
    out = fill_ground_beside(sem, added, free, fill)
    assert out[1, 0, 0] == 2 and out[1, 0, 2] == 1  # the ground filled, the densified voxel kept
    assert (out[[0, 2]] == sem[[0, 2]]).all()
