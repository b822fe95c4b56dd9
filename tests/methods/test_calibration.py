"""The 2D-depth calibration of the occupancy threshold, by hand."""

from __future__ import annotations

import pytest
import torch

from occkit.geometry.grid import Grid
from occkit.methods.calibration import CALIBRATION_BINS, calibration_threshold, calibration_update
from occkit.rendering.rays import Rays


def test_threshold_by_hand():
    h = torch.zeros(2, CALIBRATION_BINS)
    assert calibration_threshold(h, 0.3) == 0.3  # no sample yet
    h[0, 30:40] = 10.0  # 100 surface samples at p 0.30-0.39
    h[1, 5] = 1000.0  # free space far below
    # every edge in 6..30 keeps all 100 surface samples and no free one: IoU 1 on 6..30, middle 18
    assert calibration_threshold(h, 0.3) == pytest.approx(18 / CALIBRATION_BINS)
    h[1, 35] = 1000.0  # free samples inside the surface bump: an edge above 35 now pays
    assert calibration_threshold(h, 0.3) == pytest.approx(36 / CALIBRATION_BINS)


def test_update_weights_free_samples_by_the_sqrt_of_their_stretch():
    grid = Grid.from_range((0.0, 0.0, 0.0, 40.0, 0.4, 0.4), 0.4)  # a 100-voxel corridor along x
    p = torch.zeros(grid.shape)
    p[50] = 0.95  # the surface at x = 20.0-20.4
    o = torch.tensor([[0.0, 0.2, 0.2], [0.0, 0.2, 0.2]])
    d = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    one = torch.zeros(2, dtype=torch.long)
    rays = Rays(o, d, one, one, one, torch.ones(2))
    keep = torch.tensor([True, False])  # the second ray is left out
    t, near = torch.tensor([20.2, 5.0]), torch.tensor([0.0, 0.0])
    h = torch.zeros(2, CALIBRATION_BINS)
    calibration_update(h, p, grid, rays, t, near, keep, margin=0.8, decay=1.0)
    assert float(h[0, 95]) == 1.0 and float(h[0].sum()) == 1.0  # the surface sample
    # the free stretch 0 .. 19.4 m crosses 48.5 voxels: one sample of weight sqrt(48.5) at p 0
    assert float(h[1, 0]) == pytest.approx(48.5**0.5) and float(h[1].sum()) == pytest.approx(48.5**0.5)
    calibration_update(h, p, grid, rays, t, near, keep, margin=0.8, decay=0.5)
    assert float(h[0, 95]) == 1.5  # decayed by half, then one more
