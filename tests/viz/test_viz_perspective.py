import numpy as np
import pytest
import torch

from occkit.geometry.grid import Grid
from occkit.labels import OCC3D_FREE, OCC3D_PALETTE
from occkit.viz.perspective import ViewCamera, default_grid, look_at, perspective_image, view_intrinsics

BG = (1, 2, 3)
GRID = Grid((-2.0, -2.0, 0.0), (2.0, 2.0, 2.0), (0.4, 0.4, 0.4))  # 10 x 10 x 5


def test_look_at_is_an_opencv_camera():
    T = look_at((-10.0, 0.0, 0.0), (0.0, 0.0, 0.0))
    torch.testing.assert_close(T[:3, 2], torch.tensor([1.0, 0, 0], dtype=torch.float64))  # z forward
    torch.testing.assert_close(T[:3, 0], torch.tensor([0.0, -1, 0], dtype=torch.float64))  # x right
    torch.testing.assert_close(T[:3, 1], torch.tensor([0.0, 0, -1], dtype=torch.float64))  # y down
    torch.testing.assert_close(T[:3, :3] @ T[:3, :3].T, torch.eye(3, dtype=torch.float64))
    with pytest.raises(ValueError):
        look_at((0, 0, 0), (0, 0, 5))


def test_view_intrinsics_fov():
    K = view_intrinsics(100, 50, 90.0)
    assert K[0, 0].item() == pytest.approx(50.0) and K[0, 2] == 50 and K[1, 2] == 25


def test_empty_grid_is_background():
    sem = np.full(GRID.shape, OCC3D_FREE, np.uint8)
    img = perspective_image(
        sem,
        grid=GRID,
        width=16,
        height=12,
        ego_box=None,
        background=BG,
        camera=ViewCamera(eye=(-6.0, 0, 4.0), target=(0, 0, 0), fov_deg=60),
        free=OCC3D_FREE,
    )
    assert img.shape == (12, 16, 3) and img.dtype == np.uint8
    assert (img == np.asarray(BG, np.uint8)).all()


def test_block_in_front_is_seen_in_its_class_colour_at_the_centre():
    sem = np.full(GRID.shape, OCC3D_FREE, np.uint8)
    sem[4:6, 4:6, :] = 4  # a car-coloured pillar at the centre of the grid
    cam = ViewCamera(eye=(-6.0, 0.0, 1.0), target=(0.0, 0.0, 1.0), fov_deg=40)  # looking along +x
    bare = dict(grid=GRID, ego_box=None, background=BG, free=OCC3D_FREE)  # the test grid, no ego marker
    img = perspective_image(sem, width=21, height=21, camera=cam, light=(-1.0, 0.0, 0.0), **bare)
    # light from the camera side: lit face at full colour
    np.testing.assert_array_equal(img[10, 10], OCC3D_PALETTE[4])
    assert (img[0, 0] == BG).all() and (img[10, 0] == BG).all()  # beside the pillar: nothing
    # a pillar 1 m to the left (+y) appears left of centre
    sem2 = np.full(GRID.shape, OCC3D_FREE, np.uint8)
    sem2[4:6, 7:9, :] = 7
    img2 = perspective_image(
        sem2, grid=GRID, width=21, height=21, ego_box=None, background=BG, camera=cam, free=OCC3D_FREE
    )
    cols = np.flatnonzero((img2 != np.asarray(BG, np.uint8)).any(-1).any(0))
    assert cols.max() < 10


def test_mask_hide_and_ego_marker():
    sem = np.full(GRID.shape, OCC3D_FREE, np.uint8)
    sem[:, :, 0] = 11
    cam = ViewCamera(eye=(0.0, 0.0, 8.0), target=(0.01, 0.0, 0.0), fov_deg=20)  # straight down
    seen = perspective_image(
        sem, grid=GRID, width=8, height=8, ego_box=None, background=BG, camera=cam, free=OCC3D_FREE
    )
    assert (seen != np.asarray(BG, np.uint8)).any(-1).all()
    bare = dict(grid=GRID, ego_box=None, background=BG, free=OCC3D_FREE)
    hidden = perspective_image(sem, mask=np.zeros(GRID.shape, bool), width=8, height=8, camera=cam, **bare)
    assert (hidden == np.asarray(BG, np.uint8)).all()
    ego = perspective_image(
        sem,
        grid=GRID,
        width=8,
        height=8,
        background=BG,
        camera=cam,
        ego_box=((-0.4, -0.4, 0.5), (0.4, 0.4, 1.5)),
        ego_color=(250, 250, 250),
        free=OCC3D_FREE,
    )
    assert (ego[3:5, 3:5] >= 120).all()  # bright ego box on top of the magenta road


def test_bad_input():
    with pytest.raises(ValueError, match="grid"):
        perspective_image(np.full((3, 3, 3), 17, np.uint8), grid=GRID, free=OCC3D_FREE)
    with pytest.raises(ValueError, match="mask_mode"):
        perspective_image(np.full(GRID.shape, 17, np.uint8), grid=GRID, mask_mode="x", free=OCC3D_FREE)
    assert default_grid((200, 200, 16)).voxel_size == (0.4, 0.4, 0.4)
    assert default_grid((10, 10, 5)).range_min == (-2.0, -2.0, -1.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    rng = np.random.default_rng(0)
    sem = np.where(rng.random(GRID.shape) < 0.2, rng.integers(0, 17, GRID.shape), 17).astype(np.uint8)
    cam = ViewCamera(eye=(-6.0, 2.0, 4.0), target=(0, 0, 0), fov_deg=60)
    a = perspective_image(sem, grid=GRID, width=40, height=30, camera=cam, free=OCC3D_FREE)
    b = perspective_image(sem, grid=GRID, width=40, height=30, camera=cam, device="cuda", free=OCC3D_FREE)
    assert (a != b).any(-1).mean() < 0.02  # float round-off may flip a few edge pixels
