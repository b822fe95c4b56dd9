"""``occkit label --densify tsdf`` (occkit.labelgen.densify): a wall seen as rings with gaps between them comes
back as one surface at the wall, the gaps filled; the ground is left to the ground fill."""

from __future__ import annotations

import numpy as np

from occkit.geometry.grid import Grid
from occkit.labelgen.densify import TSDFDensify, densify_points, tsdf_surface

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
