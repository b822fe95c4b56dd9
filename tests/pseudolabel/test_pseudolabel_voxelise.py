"""Pseudo-labels by hand: lifting, the vote, dynamic filtering and free-space carving."""

from __future__ import annotations

import torch

from occkit.formats import get_format
from occkit.geometry.grid import Grid
from occkit.labels import OCC3D_FREE
from occkit.pseudolabel.dataset import PseudoLabelConfig, frame_labels
from occkit.pseudolabel.lift import LiftedPoints, lift_pixels
from occkit.pseudolabel.voxelise import carve_free, vote_voxels

GRID = Grid.from_range((-8.0, -8.0, -1.0, 8.0, 8.0, 2.2), 0.4)  # (40, 40, 8)
OCC3D = get_format("occ3d").classes  # the class table of the points' labels (frame_labels' classes)
# camera looking along ego +x (OpenCV: x right = ego -y, y down = ego -z, z forward = ego +x)
R_FORWARD = torch.tensor([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]], dtype=torch.float64)


def camera(t=(0.0, 0.0, 1.0)) -> torch.Tensor:
    T = torch.eye(4, dtype=torch.float64)
    T[:3, :3] = R_FORWARD
    T[:3, 3] = torch.tensor(t, dtype=torch.float64)
    return T


def test_lifting_a_hand_made_map_lands_in_the_right_voxels():
    H, W = 8, 8
    K = torch.tensor([[4.0, 0, 4.0], [0, 4.0, 4.0], [0, 0, 1]], dtype=torch.float64)
    sem = torch.full((1, H, W), 17)  # sky
    depth = torch.zeros(1, H, W)
    sem[0, 3, 3], depth[0, 3, 3] = 4, 5.0  # pixel centre (3.5, 3.5): ray (-0.125, -0.125, 1) -> ego (5, 0.625, 1.625)
    sem[0, 6, 4], depth[0, 6, 4] = 11, 2.0  # (4.5, 6.5): ray (0.125, 0.625, 1) x 2 -> ego (2, -0.25, -0.25)
    sem[0, 0, 0], depth[0, 0, 0] = 255, 3.0  # unknown class: no point
    p = lift_pixels(sem, depth, K[None], camera()[None], free=OCC3D_FREE, num_classes=OCC3D.num_classes, sky_stride=1)
    torch.testing.assert_close(p.points, torch.tensor([[5.0, 0.625, 1.625], [2.0, -0.25, -0.25]], dtype=torch.float64))
    assert p.labels.tolist() == [4, 11]
    torch.testing.assert_close(p.origins, torch.tensor([[0.0, 0.0, 1.0]] * 2, dtype=torch.float64))
    assert p.sky_dirs.shape == (H * W - 3, 3)
    sem_grid, occ = vote_voxels(p.points, p.labels, GRID, OCC3D.num_classes, free=OCC3D_FREE)
    # voxel index = floor((p - min) / 0.4): (5+8)/0.4 = 32.5 -> 32, (0.625+8)/0.4 = 21.56 -> 21,
    # (1.625+1)/0.4 = 6.56 -> 6
    assert int(sem_grid[32, 21, 6]) == 4 and int(sem_grid[25, 19, 1]) == 11
    assert int(occ.sum()) == 2 and int((sem_grid != 17).sum()) == 2


def test_vote_takes_the_heaviest_class_and_min_points():
    pts = torch.tensor([[0.1, 0.1, 0.1]] * 3 + [[2.1, 0.1, 0.1]], dtype=torch.float64)
    labels = torch.tensor([4, 4, 10, 7])
    sem, occ = vote_voxels(
        pts, labels, GRID, OCC3D.num_classes, weights=torch.tensor([0.2, 0.2, 0.9, 1.0]), free=OCC3D_FREE
    )
    assert int(sem[20, 20, 2]) == 10  # 0.9 > 0.2 + 0.2
    sem, occ = vote_voxels(pts, labels, GRID, OCC3D.num_classes, min_points=2, free=OCC3D_FREE)
    assert int(sem[20, 20, 2]) == 4 and not bool(occ[25, 20, 2]) and int(sem[25, 20, 2]) == 17


def test_carving_marks_the_voxels_between_camera_and_point_free():
    o = torch.tensor([[0.1, 0.1, 0.1]], dtype=torch.float64)
    p = torch.tensor([[4.1, 0.1, 0.1]], dtype=torch.float64)
    free = carve_free(o, p, GRID, margin=0.2)
    # x voxels 20 (0..0.4) to 29 (3.6..4.0) crossed; the point's voxel 30 (4.0..4.4) is not
    assert free[:, 20, 2].nonzero().flatten().tolist() == list(range(20, 30))
    assert int(free.sum()) == 10
    sky = carve_free(o[:0], p[:0], GRID, sky_origins=o, sky_dirs=torch.tensor([[-1.0, 0.0, 0.0]], dtype=torch.float64))
    assert sky[:, 20, 2].nonzero().flatten().tolist() == list(range(0, 21))


def moving_car_frames() -> list[LiftedPoints]:
    """Three frames in the global frame (= ego: identity poses): a static pole at (2, 2) and a car
    driving along x (x = 0, 2, 4), each seen from a camera at the origin."""
    frames = []
    for j in range(3):
        pts = torch.tensor([[2.1, 2.1, 0.1], [0.1 + 2 * j, -2.1, 0.1]], dtype=torch.float64)
        frames.append(
            LiftedPoints(
                pts,
                torch.tensor([15, 4]),
                torch.ones(2),
                torch.zeros(2, 3, dtype=torch.float64),
                torch.zeros(0, 3, dtype=torch.float64),
                torch.zeros(0, 3, dtype=torch.float64),
            )
        )
    return frames


def test_a_moving_object_leaves_no_trail_when_filtered_and_does_when_kept():
    eye = torch.eye(4, dtype=torch.float64)
    filt = frame_labels(moving_car_frames(), 2, eye, PseudoLabelConfig(past=2, dynamic="filter"), GRID, classes=OCC3D)
    keep = frame_labels(moving_car_frames(), 2, eye, PseudoLabelConfig(past=2, dynamic="keep"), GRID, classes=OCC3D)
    car_f = (filt["semantics"] == 4).nonzero()
    car_k = (keep["semantics"] == 4).nonzero()
    assert len(car_f[0]) == 1 and int(car_f[0][0]) == 30  # x = 4.1 only: the current frame
    assert sorted(car_k[0].tolist()) == [20, 25, 30]  # x = 0.1, 2.1, 4.1: a trail
    assert int((filt["semantics"] == 15).sum()) == 1  # the static pole, from every frame
    # carving: the rays to the points observe the voxels in front of them (and the points')
    assert filt["mask_camera"][20, 20, 2] == 1 and filt["mask_camera"][30, 20, 2] == 0
    assert filt["mask_camera"].sum() > 2 and (filt["mask_lidar"] == filt["mask_camera"]).all()
    none = frame_labels(moving_car_frames(), 2, eye, PseudoLabelConfig(past=2, free="none"), GRID, classes=OCC3D)
    assert int(none["mask_camera"].sum()) == 2


def test_vote_by_count_takes_the_majority_whatever_the_confidence():
    pts = torch.tensor([[0.1, 0.1, 0.1]] * 3, dtype=torch.float64)
    labels = torch.tensor([4, 4, 10])
    conf = torch.tensor([0.2, 0.2, 0.9])
    frames = [
        LiftedPoints(
            pts,
            labels,
            conf,
            torch.zeros(3, 3, dtype=torch.float64),
            torch.zeros(0, 3, dtype=torch.float64),
            torch.zeros(0, 3, dtype=torch.float64),
        )
    ]
    eye = torch.eye(4, dtype=torch.float64)
    by_conf = frame_labels(frames, 0, eye, PseudoLabelConfig(past=0, free="none"), GRID, classes=OCC3D)
    by_count = frame_labels(frames, 0, eye, PseudoLabelConfig(past=0, free="none", vote="count"), GRID, classes=OCC3D)
    assert int(by_conf["semantics"][20, 20, 2]) == 10  # 0.9 > 0.2 + 0.2
    assert int(by_count["semantics"][20, 20, 2]) == 4  # two points against one


def test_frame_consistency_frees_a_voxel_more_frames_saw_through_than_hit():
    from occkit.pseudolabel.voxelise import frame_consistency

    sem = torch.full((2, 1, 1), 17)
    sem[0, 0, 0], sem[1, 0, 0] = 15, 4
    occ = sem != 17
    # voxel 0: 1 frame hit it, 2 saw through -> free; voxel 1 (class 4): same counts, exempt -> kept
    occ_frames = torch.tensor([1, 1]).view(2, 1, 1)
    free_frames = torch.tensor([2, 2]).view(2, 1, 1)
    s, o = frame_consistency(sem, occ, occ_frames, free_frames, exempt_classes=(4,), free=OCC3D_FREE)
    assert s.flatten().tolist() == [17, 4] and o.flatten().tolist() == [False, True]
    # a tie keeps the vote
    s, o = frame_consistency(sem, occ, occ_frames, torch.tensor([1, 1]).view(2, 1, 1), free=OCC3D_FREE)
    assert s.flatten().tolist() == [15, 4] and o.flatten().tolist() == [True, True]


def stray_point_frames() -> list[LiftedPoints]:
    """Three frames (identity poses, camera at the origin): each sees a wall point at x = 6.1;
    frame 0 alone also puts a stray point at x = 3.1 on the same ray (prior depth noise)."""
    frames = []
    for j in range(3):
        pts = [[6.1, 0.1, 0.1]] + ([[3.1, 0.1, 0.1]] if j == 0 else [])
        n = len(pts)
        frames.append(
            LiftedPoints(
                torch.tensor(pts, dtype=torch.float64),
                torch.tensor([15] * n),
                torch.ones(n),
                torch.full((n, 3), 0.1, dtype=torch.float64),
                torch.zeros(0, 3, dtype=torch.float64),
                torch.zeros(0, 3, dtype=torch.float64),
            )
        )
    return frames


def test_consistency_across_frames_removes_a_stray_point_that_two_frames_saw_through():
    eye = torch.eye(4, dtype=torch.float64)
    cfg = dict(past=2, carve_every=1, free="carve")
    plain = frame_labels(stray_point_frames(), 2, eye, PseudoLabelConfig(**cfg), GRID, classes=OCC3D)
    checked = frame_labels(
        stray_point_frames(), 2, eye, PseudoLabelConfig(**cfg, consistency="frames"), GRID, classes=OCC3D
    )
    # x = 3.1 -> voxel (3.1 + 8) / 0.4 = 27.75 -> 27; x = 6.1 -> 35
    assert int(plain["semantics"][27, 20, 2]) == 15  # the merged vote keeps the stray point
    assert int(checked["semantics"][27, 20, 2]) == 17 and checked["mask_camera"][27, 20, 2] == 1  # free, observed
    assert int(checked["semantics"][35, 20, 2]) == 15  # the wall every frame hit stays
    assert (checked["mask_camera"] == plain["mask_camera"]).all()  # the same voxels observed


def test_consistency_needs_carving():
    import pytest

    from occkit.pseudolabel.dataset import check_config

    with pytest.raises(ValueError, match="needs free: 'carve'"):
        check_config(PseudoLabelConfig(free="none", consistency="frames"))
    with pytest.raises(ValueError, match="vote"):
        check_config(PseudoLabelConfig(vote="mode"))
