"""Depth targets from LiDAR and depth maps, and the depth loss, against hand-computed values."""

import math

import pytest
import torch

from occkit.losses.depth import depth_loss, depth_map_targets, depth_to_bin, lidar_depth_targets

RANGE = (1.0, 9.0, 1.0)  # 8 bins


def test_depth_to_bin():
    d = torch.tensor([0.5, 1.0, 1.99, 8.99, 9.0, float("inf"), float("nan")])
    assert depth_to_bin(d, RANGE).tolist() == [-1, 0, 0, 7, -1, -1, -1]


def test_depth_map_targets_min_per_block():
    d = torch.zeros(1, 4, 4)
    d[0, 0, 0], d[0, 1, 1] = 5.5, 3.2  # block (0, 0): min 3.2 -> bin 2
    d[0, 0, 2] = 0.5  # block (0, 1): nearest is out of range -> none (even with a farther point)
    d[0, 1, 3] = 6.0
    d[0, 3, 3] = 8.5  # block (1, 1) -> bin 7; block (1, 0) empty -> none
    t = depth_map_targets(d, 2, RANGE)
    assert t.tolist() == [[[2, -1], [-1, 7]]]
    with pytest.raises(ValueError, match="multiple"):
        depth_map_targets(torch.zeros(1, 5, 4), 2, RANGE)


def test_depth_map_targets_median_per_block():
    d = torch.zeros(1, 4, 4)
    d[0, 0, 0], d[0, 1, 1] = 5.5, 3.2  # block (0, 0): valid {3.2, 5.5}: lower median 3.2 -> bin 2
    d[0, 0, 2], d[0, 0, 3], d[0, 1, 2] = 2.5, 6.5, 4.5  # block (0, 1): median 4.5 -> bin 3 (nearest: 1)
    d[0, 2, 0], d[0, 2, 1], d[0, 3, 0], d[0, 3, 1] = 1.5, 7.5, 8.5, float("inf")  # (1, 0): 7.5 -> bin 6
    # block (1, 1) all zero -> none
    t = depth_map_targets(d, 2, RANGE, pool="median")
    assert t.tolist() == [[[2, 3], [6, -1]]]
    assert depth_map_targets(d, 2, RANGE).tolist() == [[[2, 1], [0, -1]]]
    with pytest.raises(ValueError, match="pool"):
        depth_map_targets(d, 2, RANGE, pool="mean")


def test_lidar_targets_median_matches_a_loop():
    g = torch.Generator().manual_seed(0)
    K = torch.tensor([[[10.0, 0, 8], [0, 10.0, 4], [0, 0, 1]]])
    pts = torch.cat(
        [torch.rand(300, 2, generator=g) * 6 - 3, torch.rand(300, 1, generator=g) * 10 - 1, torch.zeros(300, 1)], 1
    )
    pts[:, :2] *= pts[:, 2:3].clamp_min(0.1) / 3  # most points in the view
    t = lidar_depth_targets(pts, K, torch.eye(4)[None], (8, 16), 4, RANGE, pool="median")
    z = pts[:, 2]
    u, v = 10 * pts[:, 0] / z + 8, 10 * pts[:, 1] / z + 4
    expect = torch.full((1, 2, 4), -1)
    for r in range(2):
        for c in range(4):
            inside = (
                (z > 1e-3) & (u >= 0) & (u < 16) & (v >= 0) & (v < 8) & ((u / 4).floor() == c) & ((v / 4).floor() == r)
            )
            if inside.any():
                zs = z[inside].sort().values
                expect[0, r, c] = depth_to_bin(zs[(len(zs) - 1) // 2], RANGE)
    assert (expect >= 0).sum() >= 4  # the draw covers most blocks with in-range medians
    assert torch.equal(t, expect)
    assert not torch.equal(t, lidar_depth_targets(pts, K, torch.eye(4)[None], (8, 16), 4, RANGE))


def test_lidar_targets_hand_values():
    K = torch.tensor([[[10.0, 0, 8], [0, 10.0, 4], [0, 0, 1]]])  # 8 x 16 image
    T = torch.eye(4)[None]  # camera frame == ego frame
    pts = torch.tensor(
        [
            [0.0, 0.0, 5.0, 1.0],  # u=8, v=4 -> feature (1, 2), bin 4
            [0.0, 0.0, 7.0, 1.0],  # behind it in the same feature pixel: min stays 5
            [-0.55, -0.35, 2.5, 1.0],  # u=5.8, v=2.6 -> feature (0, 1), bin 1
            [0.0, 0.0, -3.0, 1.0],  # behind the camera
            [5.0, 0.0, 5.0, 1.0],  # u=18: outside the image
            [0.5, 0.1, 0.8, 0.0],  # u=14.25, v=5.25 -> feature (1, 3), depth 0.8 < d_min: none
            [5.0, 1.0, 8.0, 0.0],  # same feature pixel (u=14.25, v=5.25) farther: hidden
        ]
    )
    t = lidar_depth_targets(pts, K, T, (8, 16), 4, RANGE)
    expect = torch.full((1, 2, 4), -1)
    expect[0, 1, 2], expect[0, 0, 1] = 4, 1
    assert torch.equal(t, expect)
    # a second camera 1 m back along z: depths grow by 1 and the near point now lands at
    # (0.5, 0.1, 1.8) -> u=10.8, v=4.6, feature (1, 2), in range, hiding the point at depth 6
    T2 = torch.eye(4)
    T2[2, 3] = -1.0
    t2 = lidar_depth_targets(pts, torch.cat([K, K]), torch.stack([torch.eye(4), T2]), (8, 16), 4, RANGE)
    assert torch.equal(t2[0], expect[0])
    assert t2[1].tolist() == [[-1, 2, -1, -1], [-1, -1, 0, -1]]
    with pytest.raises(ValueError, match="points"):
        lidar_depth_targets(pts[:, :2], K, T, (8, 16), 4, RANGE)
    with pytest.raises(ValueError, match="T_ego_from_cam"):
        lidar_depth_targets(pts, K, torch.eye(4), (8, 16), 4, RANGE)


def test_depth_loss_hand_values():
    prob = torch.tensor([0.5, 0.25, 0.25]).view(1, 1, 3, 1, 1).expand(1, 1, 3, 1, 2).clone()
    target = torch.tensor([[[[0, -1]]]])
    assert depth_loss(prob, target, "ce").item() == pytest.approx(math.log(2), rel=1e-6)
    bce = -(math.log(0.5) + 2 * math.log(0.75))
    assert depth_loss(prob, target, "bce").item() == pytest.approx(bce, rel=1e-5)
    p = prob.clone().requires_grad_(True)
    loss = depth_loss(p, torch.full((1, 1, 1, 2), -1))
    loss.backward()
    assert loss.item() == 0.0 and p.grad is not None
    with pytest.raises(ValueError, match="bins"):
        depth_loss(prob, torch.tensor([[[[3, 0]]]]))
    with pytest.raises(ValueError, match="mode"):
        depth_loss(prob, target, "l1")
    with pytest.raises(ValueError, match="target"):
        depth_loss(prob, target[..., :1])


def test_semantic_map_targets_take_the_block_majority():
    from occkit.losses.depth import semantic_map_targets

    sem = torch.full((2, 4, 8), 17)
    sem[0, :, :4] = 11  # left block all road
    sem[0, :3, 4:] = 4  # right block: 12 of 16 car
    sem[1, :2, :4] = 3  # 8 of 16 bus vs 8 free: a tie goes to the lower id
    out = semantic_map_targets(sem, 4, 18)
    assert out.tolist() == [[[11, 4]], [[3, 17]]]
    with pytest.raises(ValueError, match="multiple"):
        semantic_map_targets(sem, 3, 18)
    with pytest.raises(ValueError, match="class ids"):
        semantic_map_targets(sem, 4, 17)


def test_semantic_map_targets_match_a_one_hot_vote():
    # Against the plain definition: one-hot per pixel, mean over each block, argmax (first max).
    import torch.nn.functional as F

    from occkit.losses.depth import semantic_map_targets

    g = torch.Generator().manual_seed(0)
    for shape, stride, classes in [((3, 16, 24), 4, 18), ((2, 8, 8), 8, 5), ((1, 12, 12), 2, 3)]:
        sem = torch.randint(0, classes, shape, generator=g)
        sem[:, : shape[1] // 2] = classes - 1  # some blocks with a clear majority
        votes = F.avg_pool2d(F.one_hot(sem, classes).permute(0, 3, 1, 2).float(), stride)
        assert torch.equal(semantic_map_targets(sem.to(torch.uint8), stride, classes), votes.argmax(1))


def test_lidar_depth_maps_by_hand():
    """Two points on one pixel keep the nearer; points behind the camera, off the image or beyond
    max_depth are dropped; every other pixel is 0."""
    from occkit.losses.depth import lidar_depth_maps

    K = torch.tensor([[[10.0, 0, 4], [0, 10.0, 3], [0, 0, 1]]])
    # camera looking along ego +x: camera z = ego x, camera x = -ego y, camera y = -ego z
    R = torch.tensor([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]])
    T = torch.eye(4)
    T[:3, :3] = R
    T = T[None]
    pts = torch.tensor(
        [
            [5.0, 0.0, 0.0, 1],  # centre: u = 4, v = 3, z 5
            [2.0, 0.0, 0.0, 1],  # same pixel, nearer: kept
            [4.0, -0.8, 0.4, 1],  # u = 4 + 10 * 0.8 / 4 = 6, v = 3 - 10 * 0.4 / 4 = 2, z 4
            [-3.0, 0.0, 0.0, 1],  # behind the camera
            [1.0, -5.0, 0.0, 1],  # off the image (u = 54)
            [30.0, 0.0, 0.3, 1],  # beyond max_depth (v = 2.9 -> row 2, u = 4)
        ]
    )
    d = lidar_depth_maps(pts, K, T, (6, 8), max_depth=20.0)
    assert d.shape == (1, 6, 8)
    expect = torch.zeros(1, 6, 8)
    expect[0, 3, 4] = 2.0
    expect[0, 2, 6] = 4.0
    assert torch.allclose(d, expect)
