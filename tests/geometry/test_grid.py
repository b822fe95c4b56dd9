import pytest
import torch

from occkit.geometry.grid import Grid, occ3d_grid, semantickitti_grid


def test_standard_grids():
    g = occ3d_grid()
    assert g.shape == (200, 200, 16)
    assert semantickitti_grid().shape == (256, 256, 32)
    # voxel centre = index * voxel_size + voxel_size / 2 + range_min
    assert torch.allclose(g.index_to_point(torch.tensor([0, 199, 15])), torch.tensor([-39.8, 39.8, 5.2]))
    assert torch.allclose(g.centers()[10, 20, 3], g.index_to_point(torch.tensor([10, 20, 3])))


def test_point_index_round_trip_and_bounds():
    g = occ3d_grid()
    idx = torch.stack(
        torch.meshgrid(torch.arange(0, 200, 37), torch.arange(0, 200, 41), torch.arange(16), indexing="ij"), -1
    ).reshape(-1, 3)
    back, valid = g.point_to_index(g.index_to_point(idx))
    assert valid.all() and torch.equal(back, idx)
    _, valid = g.point_to_index(torch.tensor([[40.0, 0.0, 0.0], [-40.0, -40.0, -1.0], [0.0, 0.0, 5.41]]))
    assert valid.tolist() == [False, True, False]


def test_voxelize_majority_label():
    g = Grid((0, 0, 0), (2, 2, 2), (1, 1, 1))
    pts = torch.tensor([[0.5, 0.5, 0.5], [0.6, 0.4, 0.5], [0.2, 0.3, 0.1], [1.5, 1.5, 1.5], [5.0, 0, 0]])
    lab = torch.tensor([3, 1, 1, 2, 0])
    occ = g.voxelize(pts)
    assert occ.sum() == 2 and occ[0, 0, 0] and occ[1, 1, 1]
    sem = g.voxelize(pts, lab, num_classes=4, fill=9)
    assert sem[0, 0, 0] == 1 and sem[1, 1, 1] == 2 and sem[0, 1, 0] == 9


def test_invalid_grids():
    with pytest.raises(ValueError, match="whole number"):
        Grid((0, 0, 0), (1, 1, 1.1), (0.4, 0.4, 0.4))
    with pytest.raises(ValueError, match="positive"):
        Grid((0, 0, 0), (1, 1, 1), (0, 1, 1))
    with pytest.raises(ValueError, match="labels"):
        occ3d_grid().voxelize(torch.zeros(3, 3), torch.tensor([0, 1, 99]), num_classes=18)
