"""The LiDAR branch: voxelisation by hand, sweeps merged by poses, the modality option of OccNet."""

from __future__ import annotations

import math

import pytest
import torch

from occkit.geometry.grid import Grid
from occkit.geometry.transforms import make_transform
from occkit.methods.supervised import SupervisedConfig, SupervisedMethod
from occkit.models.lidar import merge_sweeps, voxelize_lidar
from occkit.models.occnet import OccNetConfig, build_occnet


def test_voxelize_lidar_by_hand():
    grid = Grid((0.0, 0.0, 0.0), (2.0, 2.0, 2.0), (1.0, 1.0, 1.0))
    pts = torch.tensor(
        [
            [0.5, 0.5, 0.25, 0.2],
            [0.5, 0.5, 0.75, 0.4],  # both in cell (0, 0, 0): mean height (-0.25 + 0.25) / 2 = 0, intensity 0.3
            [1.5, 1.5, 1.9, 1.0],  # cell (1, 1, 1): height +0.4
            [5.0, 0.5, 0.5, 1.0],  # outside: dropped
        ]
    )
    v = voxelize_lidar(pts, grid, intensity_scale=2.0)
    assert v.shape == (4, 2, 2, 2)
    assert v[0].sum() == 2 and v[0, 0, 0, 0] == 1 and v[0, 1, 1, 1] == 1
    assert v[1, 0, 0, 0] == pytest.approx(math.log(3.0)) and v[1, 1, 1, 1] == pytest.approx(math.log(2.0))
    assert v[2, 0, 0, 0] == pytest.approx(0.0, abs=1e-6) and v[2, 1, 1, 1] == pytest.approx(0.4, abs=1e-6)
    assert v[3, 0, 0, 0] == pytest.approx(0.15) and v[3, 1, 1, 1] == pytest.approx(0.5)
    assert v[:, 0, 1, 0].abs().sum() == 0  # empty cells are 0
    assert voxelize_lidar(pts[:, :3], grid)[3].abs().sum() == 0  # no intensity column: 0
    with pytest.raises(ValueError, match="points"):
        voxelize_lidar(torch.zeros(3, 5), grid)


def test_merge_sweeps_brings_a_global_point_to_the_same_place():
    T0 = make_transform(torch.eye(3, dtype=torch.float64), torch.tensor([100.0, 50.0, 0.0], dtype=torch.float64))
    c, s = math.cos(0.3), math.sin(0.3)
    R = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    T1 = make_transform(R, torch.tensor([97.0, 49.0, 0.0], dtype=torch.float64))
    g = torch.tensor([110.0, 55.0, 1.0], dtype=torch.float64)  # a global point seen from both frames
    p0 = torch.linalg.inv(T0)[:3, :3] @ g + torch.linalg.inv(T0)[:3, 3]
    p1 = torch.linalg.inv(T1)[:3, :3] @ g + torch.linalg.inv(T1)[:3, 3]
    sweeps = [torch.cat([p0.float(), torch.tensor([0.5])])[None], torch.cat([p1.float(), torch.tensor([0.7])])[None]]
    merged = merge_sweeps(sweeps, torch.stack([T0, T1]), reference=0)
    assert merged.shape == (2, 4)
    assert torch.allclose(merged[0, :3], merged[1, :3], atol=1e-4)
    assert merged[:, 3].tolist() == pytest.approx([0.5, 0.7])
    with pytest.raises(ValueError, match="T_global_from_ego"):
        merge_sweeps(sweeps, T0[None])


def tiny_cfg(modality: str) -> OccNetConfig:
    return OccNetConfig(
        backbone="resnet18",
        neck_channels=16,
        feature_stride=16,
        depth_min=0.5,
        depth_max=8.5,
        depth_step=1.0,
        context_channels=8,
        point_range=(-3.2, -3.2, -1.0, 3.2, 3.2, 1.4),
        voxel_size=0.4,
        lift_downsample=(2, 2, 2),
        encoder_widths=(8, 16),
        modality=modality,
        lidar_channels=8,
    )


def inputs(B: int = 1, N: int = 2):
    images = torch.rand(B, N, 3, 32, 64)
    K = torch.tensor([[24.0, 0, 32], [0, 24.0, 16], [0, 0, 1]]).expand(B, N, 3, 3).clone()
    T = torch.eye(4).expand(B, N, 4, 4).clone()
    lidar = [
        torch.rand(200, 4) * torch.tensor([6.0, 6.0, 2.0, 1.0]) - torch.tensor([3.0, 3.0, 1.0, 0.0]) for _ in range(B)
    ]
    return images, K, T, lidar


@pytest.mark.parametrize("modality", ["lidar", "fusion"])
def test_occnet_lidar_modalities(modality):
    torch.manual_seed(0)
    net = build_occnet(tiny_cfg(modality))
    images, K, T, lidar = inputs(B=2)
    out = net(images, K, T, lidar=lidar)
    assert out.logits.shape == (2, 18, 16, 16, 6)
    assert out.features.shape == (2, 8, 8, 8, 3)
    assert net.uses_lidar and net.uses_camera == (modality == "fusion")
    if modality == "lidar":
        assert out.depth_prob is None and net.backbone is None
        assert sum(p.numel() for p in net.parameters()) < 100_000
    out.logits.sum().backward()  # differentiable end to end
    with pytest.raises(ValueError, match="lidar"):
        net(images, K, T)


def test_occnet_lidar_depends_on_the_points():
    torch.manual_seed(0)
    net = build_occnet(tiny_cfg("lidar")).eval()
    images, K, T, lidar = inputs()
    a = net(images, K, T, lidar=lidar).logits
    b = net(images, K, T, lidar=[lidar[0][:10]]).logits
    assert not torch.allclose(a, b)


def test_modality_checks():
    with pytest.raises(ValueError, match="head 'voxel'"):
        build_occnet(OccNetConfig(**{**tiny_cfg("lidar").__dict__, "head": "bev"}))
    with pytest.raises(ValueError, match="modality"):
        build_occnet(OccNetConfig(**{**tiny_cfg("lidar").__dict__, "modality": "radar"}))
    with pytest.raises(ValueError, match="depth_weight"):
        SupervisedMethod(tiny_cfg("lidar"), SupervisedConfig(free=17, depth_weight=1.0))
    SupervisedMethod(tiny_cfg("lidar"), SupervisedConfig(free=17, depth_weight=0.0))
