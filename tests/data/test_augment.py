"""Augmentation keeps cameras, voxels and LiDAR consistent."""

import math

import pytest
import torch

from occkit.data.augment import (
    BEVAugConfig,
    ImageAugConfig,
    apply_bev_transform,
    augment_bev,
    augment_images,
    bev_matrix,
    resize_crop_flip,
)
from occkit.data.sample import Sample, collate
from occkit.geometry.camera import project, unproject
from occkit.geometry.grid import Grid
from occkit.geometry.transforms import apply_transform, invert_transform, make_transform, rotation_z
from occkit.labels import OCC3D_FREE

GRID = Grid((-4.0, -4.0, -1.0), (4.0, 4.0, 1.0), (0.5, 0.5, 0.5))  # (16, 16, 4), symmetric in x, y


def _sample(seed: int = 0, N: int = 2, H: int = 64, W: int = 96) -> Sample:
    g = torch.Generator().manual_seed(seed)
    R0 = torch.tensor([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]])
    R = rotation_z(torch.tensor([0.3, 2.0])[:N]).float() @ R0
    T = make_transform(R, torch.tensor([[0.5, 0.2, 1.0], [-0.3, 0.1, 0.8]])[:N])
    K = torch.tensor([[50.0, 0, 47.0], [0, 50.0, 33.0], [0, 0, 1]]).expand(N, 3, 3).clone()
    # 16x16-pixel blocks of random labels and colours
    labels = torch.randint(0, 1000, (N, H // 16, W // 16), generator=g)
    sem = labels.repeat_interleave(16, 1).repeat_interleave(16, 2)  # (N, H, W)
    colours = torch.rand(1000, 3, generator=g)
    images = colours[sem].permute(0, 3, 1, 2).contiguous()  # (N, 3, H, W)
    occ = torch.full(GRID.shape, 17, dtype=torch.long)
    occ[12, 5, 1] = 4
    occ[3, 9, 2] = 11
    mask = torch.zeros(GRID.shape, dtype=torch.bool)
    mask[12, 5, 1] = mask[3, 9, 2] = mask[0, 0, 0] = True
    lidar = torch.tensor([[GRID.index_to_point(torch.tensor([12, 5, 1])).tolist() + [0.7], [1.0, 2.0, 0.3, 0.1]]])[0]
    return Sample(
        token="t",
        scene="s",
        timestamp=0,
        cam_names=("A", "B")[:N],
        images=images,
        intrinsics=K,
        T_ego_from_cam=T,
        T_global_from_ego=make_transform(rotation_z(0.7), torch.tensor([100.0, 50.0, 0.0])),
        occupancy=occ,
        mask_camera=mask,
        mask_lidar=mask.clone(),
        lidar=lidar,
        T_ego_from_lidar=torch.eye(4),
        depth=torch.full((N, H, W), 7.0),
        semantics_2d=sem,
    )


def _points_at_block_centres(s: Sample, cam: int) -> torch.Tensor:
    """Ego points that project to the centres of the 16x16 blocks of camera ``cam``, ``(P, 3)``."""
    H, W = s.images.shape[-2:]
    v, u = torch.meshgrid(torch.arange(8, H, 16.0), torch.arange(8, W, 16.0), indexing="ij")
    uv = torch.stack([u, v], -1).view(-1, 2)
    depth = torch.linspace(3.0, 20.0, uv.shape[0])
    return apply_transform(s.T_ego_from_cam[cam], unproject(uv, depth, s.intrinsics[cam]))


def _label_under(s: Sample, cam: int, pts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    cam_pts = apply_transform(invert_transform(s.T_ego_from_cam[cam]), pts)
    uv, z = project(cam_pts, s.intrinsics[cam])
    H, W = s.images.shape[-2:]
    ui, vi = uv[:, 0].floor().long(), uv[:, 1].floor().long()
    inside = (z > 0) & (ui >= 0) & (ui < W) & (vi >= 0) & (vi < H)
    lab = torch.full((pts.shape[0],), -1, dtype=torch.long)
    lab[inside] = s.semantics_2d[cam, vi[inside], ui[inside]]
    col = torch.zeros(pts.shape[0], 3)
    col[inside] = s.images[cam, :, vi[inside], ui[inside]].t()
    return lab, col


def test_fixed_resize_crop_flip_keeps_projection():
    s = _sample()
    out = resize_crop_flip(s, (32, 40), sizes=[(32, 48), (40, 60)], crops=[(4, 0), (10, 6)], flips=[True, False])
    assert out.images.shape == (2, 3, 32, 40) and out.semantics_2d.shape == (2, 32, 40)
    assert out.depth.shape == (2, 32, 40) and torch.all(out.depth == 7.0)
    assert torch.equal(out.T_ego_from_cam, s.T_ego_from_cam)
    assert out.intrinsics[0, 0, 0] < 0  # flipped camera: negative fx
    for cam in range(2):
        pts = _points_at_block_centres(s, cam)
        before, col_before = _label_under(s, cam, pts)
        after, col_after = _label_under(out, cam, pts)
        seen = after >= 0
        assert seen.sum() >= 4
        assert torch.equal(after[seen], before[seen])
        assert torch.allclose(col_after[seen], col_before[seen], atol=0.02)
    assert s.images.shape == (2, 3, 64, 96)  # input untouched
    with pytest.raises(ValueError, match="sizes"):
        resize_crop_flip(s, (32, 40), sizes=[(32, 48)], crops=[(0, 0)] * 2, flips=[False] * 2)


def test_random_image_augment_is_consistent_and_deterministic():
    s = _sample(1)
    cfg = ImageAugConfig(
        out_hw=(32, 48), resize_range=(0.9, 1.2), crop_left_range=(0.0, 1.0), crop_top_range=(0.0, 1.0), flip_prob=0.5
    )
    a = augment_images(s, cfg, torch.Generator().manual_seed(5))
    b = augment_images(s, cfg, torch.Generator().manual_seed(5))
    assert torch.equal(a.images, b.images) and torch.equal(a.intrinsics, b.intrinsics)
    flips = []
    for seed in range(6):
        out = augment_images(s, cfg, torch.Generator().manual_seed(seed))
        flips += out.extra["augment"]["image"]["flips"]
        for cam in range(2):
            pts = _points_at_block_centres(s, cam)
            before, _ = _label_under(s, cam, pts)
            after, _ = _label_under(out, cam, pts)
            seen = after >= 0
            assert torch.equal(after[seen], before[seen])
    assert any(flips) and not all(flips)
    # eval default: deterministic, bottom-anchored, centred
    ev = augment_images(s, ImageAugConfig(out_hw=(32, 40)))
    assert ev.extra["augment"]["image"]["crops"] == [(4, 0), (4, 0)]
    # the evaluation transform of a training config: the middle of each range, never flipped
    band = ImageAugConfig(
        out_hw=(20, 40), resize_range=(0.9, 1.1), crop_left_range=(0.0, 1.0), crop_top_range=(0.0, 0.5), flip_prob=0.5
    )
    e = band.evaluation()
    assert e == ImageAugConfig(
        out_hw=(20, 40), resize_range=(1.0, 1.0), crop_left_range=(0.5, 0.5), crop_top_range=(0.25, 0.25), flip_prob=0.0
    )
    # 64x96 -> 27x40 (the width binds): 7 rows of slack, a quarter of them above the window
    assert augment_images(s, e).extra["augment"]["image"]["crops"] == [(0, 2), (0, 2)]


def _voxel_pixel(s: Sample, cls: int, cam: int) -> tuple[torch.Tensor, torch.Tensor]:
    idx = (s.occupancy == cls).nonzero()
    assert idx.shape[0] == 1
    p = GRID.index_to_point(idx[0]).view(1, 3)
    uv, z = project(apply_transform(invert_transform(s.T_ego_from_cam[cam]), p), s.intrinsics[cam])
    return uv[0], z[0]


@pytest.mark.parametrize(
    "flip_x,flip_y,yaw",
    [(True, False, 0.0), (False, True, 0.0), (True, True, math.pi / 2), (False, False, -math.pi / 2)],
)
def test_bev_transform_keeps_voxels_cameras_and_lidar_consistent(flip_x, flip_y, yaw):
    s = _sample()
    A = bev_matrix(flip_x, flip_y, yaw)
    out = apply_bev_transform(s, A, GRID, free=OCC3D_FREE)
    for cls in (4, 11):
        for cam in range(2):
            uv0, z0 = _voxel_pixel(s, cls, cam)
            uv1, z1 = _voxel_pixel(out, cls, cam)
            assert torch.allclose(uv0, uv1, atol=1e-3) and torch.allclose(z0, z1, atol=1e-4)
    assert int(out.mask_camera.sum()) == 3 and int((out.occupancy != 17).sum()) == 2
    assert out.mask_camera[tuple((out.occupancy == 4).nonzero()[0])]
    # the LiDAR point inside the class-4 voxel is still inside it; intensity kept
    idx, valid = GRID.point_to_index(out.lidar[:1, :3])
    assert valid.all() and out.occupancy[tuple(idx[0])] == 4
    assert out.lidar[0, 3] == pytest.approx(0.7)
    # global positions unchanged
    p_old = torch.tensor([[1.0, 2.0, 0.5]], dtype=torch.float64)
    p_new = apply_transform(A, p_old)
    assert torch.allclose(apply_transform(out.T_global_from_ego, p_new), apply_transform(s.T_global_from_ego, p_old))
    assert torch.allclose(out.T_ego_from_lidar.double(), A.float().double(), atol=1e-6)


def test_bev_small_yaw_and_random():
    s = _sample()
    out = apply_bev_transform(s, bev_matrix(yaw=math.radians(5)), GRID, free=OCC3D_FREE)
    assert out.occupancy.shape == GRID.shape and (out.occupancy == 4).any()
    # corners rotated in from outside the grid are free and unmasked
    out = apply_bev_transform(s, bev_matrix(yaw=math.radians(45)), GRID, free=OCC3D_FREE)
    assert out.occupancy[0, 0, 0] == 17 and not out.mask_camera[0, 0, 0]
    cfg = BEVAugConfig(flip_x_prob=0.5, flip_y_prob=0.5, rot90=True, max_yaw_deg=0.0)
    a = augment_bev(s, cfg, torch.Generator().manual_seed(3), GRID, free=OCC3D_FREE)
    b = augment_bev(s, cfg, torch.Generator().manual_seed(3), GRID, free=OCC3D_FREE)
    assert torch.equal(a.occupancy, b.occupancy) and torch.equal(a.T_ego_from_cam, b.T_ego_from_cam)
    assert augment_bev(s, BEVAugConfig(), None, GRID, free=OCC3D_FREE) is s
    collate([a, b])  # still a valid sample
    with pytest.raises(ValueError, match="A"):
        apply_bev_transform(s, torch.diag(torch.tensor([1.0, 1.0, -1.0, 1.0])), GRID, free=OCC3D_FREE)
    with pytest.raises(ValueError, match="occupancy"):
        apply_bev_transform(
            s, bev_matrix(True), Grid((-4.0, -4.0, -1.0), (4.0, 4.0, 1.0), (1.0, 1.0, 0.5)), free=OCC3D_FREE
        )
