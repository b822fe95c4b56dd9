import numpy as np
import pytest
import torch

from occkit.data.occ3d import NUSCENES_CAMERAS
from occkit.viz.cameras import camera_mosaic, overlay_lidar
from occkit.viz.draw import colormap

H, W = 48, 64
K = np.array([[100.0, 0, 32.0], [0, 100.0, 24.0], [0, 0, 1]])


def front_camera() -> np.ndarray:
    """Camera at the ego origin looking along +x: camera x = ego -y, y = ego -z, z = ego +x."""
    T = np.eye(4)
    T[:3, 0] = [0, -1, 0]
    T[:3, 1] = [0, 0, -1]
    T[:3, 2] = [1, 0, 0]
    return T


def changed(a, b):
    return np.argwhere((a != b).any(-1))


def test_point_straight_ahead_lands_at_the_principal_point():
    img = np.zeros((H, W, 3), np.uint8)
    out = overlay_lidar(img, np.array([[10.0, 0.0, 0.0]]), K, front_camera(), colors=np.array([[9, 99, 199]]), radius=0)
    assert changed(out, img).tolist() == [[24, 32]]  # continuous (32, 24) is pixel column 32, row 24
    assert tuple(out[24, 32]) == (9, 99, 199)
    assert (img == 0).all()  # input untouched


def test_left_and_up_in_the_ego_frame_is_left_and_up_in_the_image():
    img = np.zeros((H, W, 3), np.uint8)
    # 1 m left at 10 m -> u = 32 - 10 = 22; 1 m up -> v = 24 - 10 = 14
    out = overlay_lidar(
        img, torch.tensor([[10.0, 1.0, 1.0, 0.3]]), torch.tensor(K), torch.tensor(front_camera()), radius=0
    )
    assert changed(out, img).tolist() == [[14, 22]]


def test_points_behind_or_outside_are_dropped_and_near_covers_far():
    img = np.zeros((H, W, 3), np.uint8)
    pts = np.array([[-10.0, 0, 0], [10.0, 50.0, 0], [20.0, 0, 0], [5.0, 0, 0]])
    cols = np.array([[1, 1, 1], [2, 2, 2], [3, 3, 3], [4, 4, 4]], np.uint8)
    out = overlay_lidar(img, pts, K, front_camera(), colors=cols, radius=1)
    ch = changed(out, img)
    assert len(ch) == 9  # one 3x3 square
    assert tuple(out[24, 32]) == (4, 4, 4)  # the 5 m point covers the 20 m one
    # reversed input order gives the same picture
    out2 = overlay_lidar(img, pts[::-1].copy(), K, front_camera(), colors=cols[::-1].copy(), radius=1)
    np.testing.assert_array_equal(out, out2)


def test_depth_colours_default():
    img = np.zeros((H, W, 3), np.uint8)
    out = overlay_lidar(img, np.array([[2.0, 0, 0]]), K, front_camera(), radius=0, max_depth=60)
    np.testing.assert_array_equal(out[24, 32], colormap(np.array([2.0]), 0, 60)[0])


def test_colormap_ends_and_nan():
    c = colormap(np.array([0.0, 100.0, np.nan, -5.0]), 0, 100)
    assert tuple(c[0]) == (230, 25, 25) and tuple(c[1]) == (140, 60, 220)
    assert tuple(c[2]) == (128, 128, 128) and tuple(c[3]) == tuple(c[0])
    with pytest.raises(ValueError):
        colormap(np.zeros(2), 1, 1)


def test_overlay_bad_input():
    img = np.zeros((H, W, 3), np.uint8)
    with pytest.raises(ValueError, match="K"):
        overlay_lidar(img, np.zeros((1, 3)), np.eye(4), front_camera())
    with pytest.raises(ValueError, match="points_ego"):
        overlay_lidar(img, np.array([[np.nan, 0, 0]]), K, front_camera())
    with pytest.raises(ValueError, match="colors"):
        overlay_lidar(img, np.zeros((2, 3)), K, front_camera(), colors=np.zeros((3, 3), np.uint8))
    with pytest.raises(TypeError, match="image"):
        overlay_lidar(img.astype(np.float32), np.zeros((1, 3)), K, front_camera())


def test_mosaic_nuscenes_arrangement():
    imgs = np.stack([np.full((8, 10, 3), 10 * (i + 1), np.uint8) for i in range(6)])
    m = camera_mosaic(imgs, NUSCENES_CAMERAS, labels=False, gap=2)
    assert m.shape == (2 * 8 + 2, 3 * 10 + 2 * 2, 3)
    value = {name: 10 * (i + 1) for i, name in enumerate(NUSCENES_CAMERAS)}
    expect = [["CAM_FRONT_LEFT", "CAM_FRONT", "CAM_FRONT_RIGHT"], ["CAM_BACK_LEFT", "CAM_BACK", "CAM_BACK_RIGHT"]]
    for r in range(2):
        for c in range(3):
            tile = m[r * 10 : r * 10 + 8, c * 12 : c * 12 + 10]
            assert (tile == value[expect[r][c]]).all(), (r, c)


def test_mosaic_other_cameras_and_errors():
    imgs = [np.full((8, 10, 3), 50, np.uint8), np.full((8, 10, 3), 90, np.uint8)]
    m = camera_mosaic(imgs, ["a", "b"], tile_width=20, labels=True, gap=0)
    assert m.shape == (16, 40, 3)
    assert (m[:, 20:] == 90).all() and (m[:, :20] == 50).all()  # tiles too small for labels
    big = camera_mosaic([np.full((60, 80, 3), 50, np.uint8)], ["a"], labels=True)
    assert (big[:5, :5] == 0).all() and (big[30:] == 50).all()  # black label box top-left
    with pytest.raises(ValueError, match="names"):
        camera_mosaic(imgs, ["a"])
    with pytest.raises(ValueError, match="size"):
        camera_mosaic([imgs[0], np.zeros((4, 4, 3), np.uint8)], ["a", "b"])


def test_fit_text():
    from occkit.viz.draw import fit_text, text_size

    assert fit_text("short", 500) == "short"
    long = "a very long title " * 20
    cut = fit_text(long, 200)
    assert cut.endswith("...") and text_size(cut)[0] <= 200 and long.startswith(cut[:-3])


def test_titles_wrap_instead_of_being_cut():
    from occkit.viz.draw import text_size, title_lines, titled

    title = "ground truth: bird's-eye view (x forward = up)"
    lines = title_lines(title, 200)
    assert len(lines) >= 2 and " ".join(lines) == title and all(text_size(s, 16)[0] <= 192 for s in lines)
    img = np.zeros((10, 200, 3), np.uint8)
    one, two = titled(img, "short", min_lines=1), titled(img, "short", min_lines=2)
    assert two.shape[0] > one.shape[0] and titled(img, title).shape[0] == two.shape[0]


def test_mask_tint_is_apart_from_every_class_colour_and_the_background():
    from occkit.labels import OCC3D_PALETTE
    from occkit.viz.bev import MASK_TINT
    from occkit.viz.draw import BACKGROUND, legend

    for c in list(OCC3D_PALETTE) + [BACKGROUND]:
        assert np.abs(np.subtract(c, MASK_TINT)).max() >= 40, c  # other_flat's grey included
    names = ["a", "b"]
    plain = legend(names, [(255, 0, 0), (0, 255, 0)], 2000)
    more = legend(
        names, [(255, 0, 0), (0, 255, 0)], 2000, extras=[("empty (free)", BACKGROUND), ("outside", MASK_TINT)]
    )
    assert (np.all(more == np.asarray(MASK_TINT, np.uint8), axis=-1)).sum() > 50
    assert not (np.all(plain == np.asarray(MASK_TINT, np.uint8), axis=-1)).any()
