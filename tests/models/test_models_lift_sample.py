"""The sampling lift (model.lift: sample): projections by hand, the camera average, OccNet with it."""

from __future__ import annotations

import pytest
import torch

from occkit.geometry.grid import Grid
from occkit.models.lift import SampleViewTransform, project_points, sample_volume
from occkit.models.occnet import OccNetConfig, build_occnet

R_FORWARD = torch.tensor([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # camera looking along ego +x


def cams(n: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    K = torch.tensor([[10.0, 0, 8.0], [0, 10.0, 4.0], [0, 0, 1]]).expand(1, n, 3, 3).clone()
    T = torch.eye(4).expand(1, n, 4, 4).clone()
    T[..., :3, :3] = R_FORWARD
    return K, T


def test_project_points_by_hand():
    K, T = cams()
    pts = torch.tensor([[10.0, 0.0, 0.0], [10.0, 2.0, 1.0], [-5.0, 0.0, 0.0], [1.0, 5.0, 0.0]])
    xy, valid = project_points(pts, K, T, (8, 16))
    # (10, 0, 0): camera (0, 0, 10) -> uv (8, 4), the image centre -> (0, 0)
    # (10, 2, 1): camera (-2, -1, 10) -> uv (6, 3) -> (6/16*2-1, 3/8*2-1) = (-0.25, -0.25)
    torch.testing.assert_close(xy[0, 0, :2], torch.tensor([[0.0, 0.0], [-0.25, -0.25]]))
    assert valid[0, 0].tolist() == [True, True, False, False]  # behind the camera; outside the image


def test_sample_volume_averages_the_cameras_that_see_a_point():
    # two cameras with constant features 1 and 3; the point is seen by both, a second by the first only
    f = torch.stack([torch.full((2, 4, 8), 1.0), torch.full((2, 4, 8), 3.0)])[None]  # (1, 2, 2, 4, 8)
    xy = torch.zeros(1, 2, 2, 2)
    valid = torch.tensor([[[True, True], [True, False]]])
    vol, count = sample_volume([f, f], xy, valid)  # two levels: summed
    torch.testing.assert_close(vol[0, :, 0], torch.full((2,), 4.0))  # (1 + 3) / 2 * 2 levels
    torch.testing.assert_close(vol[0, :, 1], torch.full((2,), 2.0))
    assert count.tolist() == [[2, 1]]


def test_sample_view_transform_shapes_and_coords():
    grid = Grid.from_range((0.0, -2.0, -1.0, 8.0, 2.0, 1.0), 1.0)  # (8, 4, 2)
    vt = SampleViewTransform([6, 10], 5, grid, coords=True)
    K, T = cams(2)
    feats = [torch.randn(1, 2, 6, 4, 8), torch.randn(1, 2, 10, 2, 4)]
    vol = vt(feats, K, T, (8, 16))
    assert vol.shape == (1, 5 + 1 + 3, 8, 4, 2) and vt.out_channels == 9
    assert float(vol[0, 6, 0, 0, 0].detach()) == pytest.approx(-1 + 1 / 8)  # x coordinate of the first voxel centre
    assert vt(feats, K, T, (8, 16)).requires_grad
    bev = SampleViewTransform([6, 10], 5, grid, collapse_z=True)(feats, K, T, (8, 16))
    assert bev.shape == (1, 6, 8, 4)
    with pytest.raises(ValueError, match="levels"):
        vt(feats[:1], K, T, (8, 16))


def tiny(**kw) -> OccNetConfig:
    return OccNetConfig(
        backbone="resnet18",
        neck_channels=16,
        feature_stride=16,
        context_channels=8,
        point_range=(-3.2, -3.2, -1.0, 3.2, 3.2, 1.4),
        voxel_size=0.4,
        lift_downsample=(2, 2, 2),
        encoder_widths=(8, 16),
        lift="sample",
        **kw,
    )


@pytest.mark.parametrize("kw", [{}, {"sample_strides": (32,), "sample_coords": True}, {"head": "bev"}])
def test_occnet_with_the_sampling_lift(kw):
    torch.manual_seed(0)
    net = build_occnet(tiny(**kw))
    K, T = cams(2)
    out = net(torch.rand(1, 2, 3, 32, 64), K, T)
    assert out.logits.shape == (1, 18, 16, 16, 6) and out.depth_prob is None
    out.logits.sum().backward()
    assert net.backbone.body.conv1.weight.grad.abs().sum() > 0  # gradients reach the images' path


def test_sample_strides_must_be_coarser_backbone_levels():
    with pytest.raises(ValueError, match="sample_strides"):
        build_occnet(tiny(sample_strides=(8,)))
    with pytest.raises(ValueError, match="lift"):
        build_occnet(tiny().__class__(lift="splat"))  # type: ignore[arg-type]


def test_lss_stays_the_default():
    assert OccNetConfig().lift == "lss"
