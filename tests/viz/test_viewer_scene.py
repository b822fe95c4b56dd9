"""What the 3D viewer draws (occkit.viz.viewer_scene): pure arrays, no server and no browser."""

import numpy as np
import pytest
import torch

from occkit.geometry.grid import Grid, occ3d_grid
from occkit.labels import OCC3D_FREE, OCC3D_PALETTE
from occkit.viz.viewer_scene import (
    CORRECT,
    ERROR_COLORS,
    FALSE_OCCUPIED,
    MISSED,
    WRONG_CLASS,
    FrameData,
    box_mesh,
    camera_frustums,
    compare_grids,
    error_counts,
    images_small,
    lidar_colors,
    side_offset,
    similarity_colors,
    surface_voxels,
    voxel_centres,
    voxel_layer,
)

GRID = Grid((0.0, 0.0, 0.0), (4.0, 4.0, 2.0), (0.4, 0.4, 0.4))  # 10 x 10 x 5


def small_frame(pred: bool = True) -> FrameData:
    gt = np.full((10, 10, 5), 17, np.uint8)
    gt[:, :, 0] = 11  # road
    gt[2:5, 2:5, 1:4] = 4  # a 3x3x3 car
    p = None
    if pred:
        p = gt.copy()
        p[2, 2, 1] = 10  # wrong class (truck)
        p[4, 4, 3] = 17  # missed
        p[8, 8, 1] = 16  # false occupied (vegetation)
    cam = np.zeros((10, 10, 5), bool)
    cam[:5] = True
    return FrameData(token="t0", scene="s0", gt=gt, pred=p, mask_camera=cam, mask_lidar=np.zeros_like(cam))


def test_surface_of_a_solid_cube_leaves_out_its_core():
    labels = np.zeros((9, 9, 9), np.int64)
    drawn = np.zeros((9, 9, 9), bool)
    drawn[2:7, 2:7, 2:7] = True
    s = surface_voxels(labels, drawn)
    assert s.sum() == 125 - 27
    assert not s[3:6, 3:6, 3:6].any() and s[2, 4, 4]


def test_surface_counts_the_grid_border_and_other_classes_as_exposed():
    labels = np.zeros((3, 3, 3), np.int64)
    drawn = np.ones((3, 3, 3), bool)
    assert surface_voxels(labels, drawn).sum() == 26  # only the centre is buried
    labels[0] = 1  # another class next to the centre: the centre is drawn too (a toggle never opens a hole)
    assert surface_voxels(labels, drawn).sum() == 27


def test_compare_grids_hand_made():
    gt = np.array([17, 4, 4, 4, 17], np.uint8).reshape(5, 1, 1)
    pred = np.array([17, 4, 10, 17, 16], np.uint8).reshape(5, 1, 1)
    kind = compare_grids(gt, pred, free=OCC3D_FREE)
    assert kind.ravel().tolist() == [0, CORRECT, WRONG_CLASS, MISSED, FALSE_OCCUPIED]
    assert error_counts(kind) == {
        "correct": 1,
        "wrong class": 1,
        "missed (predicted free)": 1,
        "false occupied (free in ground truth)": 1,
    }
    with pytest.raises(ValueError, match="pred"):
        compare_grids(gt, pred[:4], free=OCC3D_FREE)


def test_voxel_centres_follow_the_convention():
    c = voxel_centres(np.array([[0, 0, 0], [9, 9, 4]]), GRID)
    assert np.allclose(c, [[0.2, 0.2, 0.2], [3.8, 3.8, 1.8]])
    g = occ3d_grid()
    assert np.allclose(voxel_centres(np.array([[0, 0, 0]]), g), [[-39.8, -39.8, -0.8]])


def test_ground_truth_layer_surface_voxels_in_the_palette():
    f = small_frame()
    layer = voxel_layer(f, "ground truth", GRID, palette=OCC3D_PALETTE, free=OCC3D_FREE)
    occupied = int((f.gt != 17).sum())
    assert 0 < len(layer) < occupied  # road voxels under the car are buried
    assert set(np.unique(layer.classes)) == {4, 11}
    pal = np.asarray(OCC3D_PALETTE, np.uint8)
    assert (layer.colors == pal[layer.classes]).all()
    full = voxel_layer(f, "ground truth", GRID, surface_only=False, palette=OCC3D_PALETTE, free=OCC3D_FREE)
    assert len(full) == occupied
    by = full.by_class()
    assert len(by[4]) == 27 and len(by[11]) == 100


def test_prediction_side_by_side_and_missing_prediction():
    f = small_frame()
    gt, pr = (
        voxel_layer(f, "ground truth", GRID, palette=OCC3D_PALETTE, free=OCC3D_FREE),
        voxel_layer(f, "prediction", GRID, palette=OCC3D_PALETTE, free=OCC3D_FREE),
    )
    both = voxel_layer(f, "side by side", GRID, palette=OCC3D_PALETTE, free=OCC3D_FREE)
    assert len(both) == len(gt) + len(pr)
    shifted = both.centres[len(gt) :]
    assert np.allclose(shifted[:, 1], pr.centres[:, 1] - side_offset(GRID))
    assert np.allclose(shifted[:, [0, 2]], pr.centres[:, [0, 2]])
    with pytest.raises(ValueError, match="needs a prediction"):
        voxel_layer(small_frame(pred=False), "errors", GRID, palette=OCC3D_PALETTE, free=OCC3D_FREE)


def test_errors_layer_colours_each_kind():
    f = small_frame()
    layer = voxel_layer(f, "errors", GRID, surface_only=False, palette=OCC3D_PALETTE, free=OCC3D_FREE)
    idx = np.round((layer.centres - 0.2) / 0.4).astype(int)
    at = {tuple(i): c for i, c in zip(idx.tolist(), layer.colors.tolist())}
    assert tuple(at[(2, 2, 1)]) == ERROR_COLORS[WRONG_CLASS]
    assert tuple(at[(4, 4, 3)]) == ERROR_COLORS[MISSED]
    assert tuple(at[(8, 8, 1)]) == ERROR_COLORS[FALSE_OCCUPIED]
    road = np.asarray(OCC3D_PALETTE[11], float)
    faded = np.round(road * 0.4 + 255 * 0.6)
    assert np.allclose(at[(0, 0, 0)], faded)
    # toggle classes: the ground truth's, the prediction's where the ground truth is free
    cls = {tuple(i): c for i, c in zip(idx.tolist(), layer.classes.tolist())}
    assert cls[(2, 2, 1)] == 4 and cls[(8, 8, 1)] == 16
    assert len(layer) == int(((f.gt != 17) | (f.pred != 17)).sum())


def test_mask_hides_or_dims_outside_voxels():
    f = small_frame()
    hidden = voxel_layer(
        f,
        "ground truth",
        GRID,
        mask="camera",
        mask_mode="hide",
        surface_only=False,
        palette=OCC3D_PALETTE,
        free=OCC3D_FREE,
    )
    assert (hidden.centres[:, 0] < 2.0).all() and len(hidden) == 50 + 27
    dimmed = voxel_layer(
        f,
        "ground truth",
        GRID,
        mask="camera",
        mask_mode="dim",
        surface_only=False,
        palette=OCC3D_PALETTE,
        free=OCC3D_FREE,
    )
    outside = dimmed.centres[:, 0] > 2.0
    pal = np.asarray(OCC3D_PALETTE, np.uint8)
    assert (dimmed.colors[~outside] == pal[dimmed.classes[~outside]]).all()
    assert (dimmed.colors[outside] != pal[dimmed.classes[outside]]).any(-1).all()
    with pytest.raises(ValueError, match="no camera mask"):
        voxel_layer(
            FrameData(token="t", scene="s", gt=f.gt),
            "ground truth",
            GRID,
            mask="camera",
            mask_mode="hide",
            palette=OCC3D_PALETTE,
            free=OCC3D_FREE,
        )


def test_bad_inputs_name_what_is_wrong():
    f = small_frame()
    f.pred = f.pred[:, :, :4]
    with pytest.raises(ValueError, match=r"pred: has shape \(10, 10, 4\), expected \(10, 10, 5\)"):
        voxel_layer(f, "prediction", GRID, palette=OCC3D_PALETTE, free=OCC3D_FREE)
    with pytest.raises(ValueError, match="view must be"):
        voxel_layer(small_frame(), "top", GRID, palette=OCC3D_PALETTE, free=OCC3D_FREE)
    bad = small_frame()
    bad.gt[0, 0, 0] = 40
    with pytest.raises(ValueError, match="class 40 has no colour"):
        voxel_layer(bad, "ground truth", GRID, palette=OCC3D_PALETTE, free=OCC3D_FREE)


def test_box_mesh_faces_point_outwards():
    v, f = box_mesh((0.4, 0.4, 0.4))
    assert v.shape == (8, 3) and f.shape == (12, 3)
    tri = v[f]  # (12, 3, 3)
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    centre = tri.mean(1)
    assert ((normal * centre).sum(-1) > 0).all()


def test_camera_frustum_of_a_forward_camera():
    K = np.array([[[100.0, 0, 64], [0, 100, 48], [0, 0, 1]]])
    T = np.eye(4)[None].copy()
    T[0, :3, :3] = [[0, 0, 1], [-1, 0, 0], [0, -1, 0]]  # OpenCV camera looking along ego +x
    T[0, :3, 3] = [1.0, 0.0, 1.5]
    (fr,) = camera_frustums(K, T, (96, 128))
    assert fr["fov"] == pytest.approx(2 * np.arctan(48 / 100))
    assert fr["aspect"] == pytest.approx(128 / 96)
    assert np.allclose(fr["position"], [1.0, 0.0, 1.5])
    from occkit.geometry.transforms import quat_to_matrix

    assert np.allclose(quat_to_matrix(torch.tensor(fr["wxyz"])).numpy(), T[0, :3, :3], atol=1e-6)


def test_lidar_similarity_and_image_helpers():
    pts = np.array([[1.0, 0, 0], [2, 0, 4], [3, 0, 0]], np.float32)
    c = lidar_colors(pts, np.array([4, 11, 99]), palette=OCC3D_PALETTE)
    assert (
        c[0].tolist() == list(OCC3D_PALETTE[4])
        and c[1].tolist() == list(OCC3D_PALETTE[11])
        and c[2].tolist() == [160] * 3
    )
    assert lidar_colors(pts).shape == (3, 3)
    cols, lo, hi = similarity_colors(np.array([0.1, 0.2, 0.3]))
    assert (lo, hi) == (0.1, 0.3) and cols.dtype == np.uint8 and not (cols[0] == cols[2]).all()
    small = images_small(np.zeros((2, 900, 1600, 3), np.uint8), max_width=320)
    assert small.shape == (2, 180, 320, 3)
