import numpy as np
import pytest
import torch

from occkit.labels import OCC3D_FREE, OCC3D_PALETTE
from occkit.viz.bev import bev_image, top_voxels

PAL = np.asarray(OCC3D_PALETTE, np.uint8)
BG = (1, 2, 3)


def empty(X=6, Y=4, Z=3):
    return np.full((X, Y, Z), OCC3D_FREE, np.uint8)


def test_top_voxel_colour_lands_at_the_expected_pixel():
    sem = empty()
    sem[5, 3, 0] = 4  # front-left column: car below ...
    sem[5, 3, 1] = 11  # ... driveable surface on top
    img = bev_image(sem, shade=1.0, background=BG, free=OCC3D_FREE)
    assert img.shape == (6, 4, 3) and img.dtype == np.uint8
    # +x (front) is the top row, +y (left) the left column
    assert tuple(img[0, 0]) == tuple(PAL[11])
    # every other pixel is background
    others = np.ones((6, 4), bool)
    others[0, 0] = False
    assert (img[others] == BG).all()


@pytest.mark.parametrize("x,y,row,col", [(5, 0, 0, 3), (0, 3, 5, 0), (0, 0, 5, 3), (2, 1, 3, 2)])
def test_orientation_x_up_y_left(x, y, row, col):
    sem = empty()
    sem[x, y, 2] = 7
    img = bev_image(sem, shade=1.0, background=BG, free=OCC3D_FREE)
    assert tuple(img[row, col]) == tuple(PAL[7])
    assert (img != np.asarray(BG, np.uint8)).any(-1).sum() == 1


def test_height_shading_and_scale():
    sem = empty(Z=5)
    sem[0, 0, 0] = 15  # lowest layer
    sem[1, 0, 4] = 15  # highest layer
    img = bev_image(sem, shade=0.5, scale=3, background=BG, free=OCC3D_FREE)
    assert img.shape == (18, 12, 3)
    low = img[5 * 3, 3 * 3]  # x=0 -> last block row, y=0 -> last block column
    high = img[4 * 3 + 1, 3 * 3 + 2]
    np.testing.assert_array_equal(high, PAL[15])
    np.testing.assert_array_equal(low, np.round(PAL[15].astype(np.float32) * 0.5).astype(np.uint8))
    # a voxel becomes a scale x scale block
    assert (img[15:18, 9:12] == low).all()


def test_mask_hide_and_grey():
    sem = empty()
    sem[3, 1, 0] = 4
    sem[3, 1, 2] = 16
    mask = np.ones(sem.shape, bool)
    mask[3, 1, 2] = False  # the top voxel is unobserved
    hide = bev_image(sem, mask=mask, shade=1.0, mask_mode="hide", background=BG, free=OCC3D_FREE)
    np.testing.assert_array_equal(hide[2, 2], PAL[4])
    grey = bev_image(sem, mask=mask, shade=1.0, mask_mode="grey", background=BG, free=OCC3D_FREE)
    g = grey[2, 2].astype(int)
    assert tuple(g) != tuple(PAL[16])
    assert g.max() - g.min() < int(PAL[16].max()) - int(PAL[16].min())  # less saturated


def test_top_voxels_and_torch_input():
    sem = torch.full((3, 2, 4), OCC3D_FREE, dtype=torch.uint8)
    sem[1, 1, 0] = 2
    sem[1, 1, 3] = 9
    z, cls = top_voxels(sem.numpy(), free=OCC3D_FREE)
    assert z[1, 1] == 3 and cls[1, 1] == 9
    assert z[0, 0] == -1 and cls[0, 0] == OCC3D_FREE
    np.testing.assert_array_equal(bev_image(sem, free=OCC3D_FREE), bev_image(sem.numpy(), free=OCC3D_FREE))


def test_bad_input_raises():
    with pytest.raises(ValueError, match="semantics"):
        bev_image(np.zeros((4, 4), np.uint8), free=OCC3D_FREE)
    with pytest.raises(TypeError, match="semantics"):
        bev_image(np.zeros((2, 2, 2), np.float32), free=OCC3D_FREE)
    with pytest.raises(ValueError, match="mask"):
        bev_image(empty(), mask=np.ones((2, 2, 2), bool), free=OCC3D_FREE)
    with pytest.raises(ValueError, match="palette"):
        sem = empty()
        sem[0, 0, 0] = 5
        bev_image(sem, palette=OCC3D_PALETTE[:3], free=OCC3D_FREE)
    with pytest.raises(ValueError, match="mask_mode"):
        bev_image(empty(), mask_mode="blur", free=OCC3D_FREE)
