"""RadOcc's distillation losses on tiny hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from occkit.losses.distill import (
    feature_l1,
    logit_kl,
    rendered_depth_kl,
    rendered_raw_logit_kl,
    rendered_semantic_kl,
    segment_affinity,
    segment_affinity_loss,
    segment_pool,
)


def two_bin_kl(d: float) -> float:
    """KL(softmax([d, 0]) || softmax([0, d])) = d * tanh(d / 2)."""
    return d * math.tanh(d / 2)


@pytest.mark.parametrize("tau", [1.0, 2.0, 10.0])
def test_rendered_depth_kl_two_samples(tau):
    w_s = torch.tensor([[0.0, 1.0], [0.3, 0.3]])
    w_t = torch.tensor([[1.0, 0.0], [0.3, 0.3]])  # ray 1 agrees: KL 0
    expected = tau**2 * (two_bin_kl(1.0 / tau) + 0.0) / 2
    assert float(rendered_depth_kl(w_s, w_t, tau)) == pytest.approx(expected, rel=1e-5)
    only_first = torch.tensor([True, False])
    assert float(rendered_depth_kl(w_s, w_t, tau, only_first)) == pytest.approx(
        tau**2 * two_bin_kl(1.0 / tau), rel=1e-5
    )


def test_rendered_depth_kl_gradient_only_to_student():
    w_s = torch.rand(5, 7, requires_grad=True)
    w_t = torch.rand(5, 7, requires_grad=True)
    rendered_depth_kl(w_s, w_t).backward()
    assert w_s.grad is not None and w_s.grad.abs().sum() > 0
    assert w_t.grad is None
    assert float(rendered_depth_kl(w_t.detach(), w_t.detach())) == pytest.approx(0.0, abs=1e-7)


def test_rendered_depth_kl_rejects_bad_input():
    with pytest.raises(ValueError, match="weights_teacher"):
        rendered_depth_kl(torch.rand(3, 4), torch.rand(3, 5))
    with pytest.raises(ValueError, match="tau"):
        rendered_depth_kl(torch.rand(3, 4), torch.rand(3, 4), tau=0.0)


def test_segment_pool_and_affinity_by_hand():
    feats = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [5.0, 5.0]])
    seg = torch.tensor([4, 4, 9, 0])  # ray 3 in no segment
    pooled, ids = segment_pool(feats, seg)
    assert ids.tolist() == [4, 9]
    assert torch.allclose(pooled, torch.tensor([[2.0, 0.0], [0.0, 2.0]]))
    assert torch.allclose(segment_affinity(feats, seg), torch.eye(2))


def test_segment_affinity_loss_by_hand():
    seg = torch.tensor([1, 1, 2, 0])
    student = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [9.0, 9.0]], requires_grad=True)  # segments orthogonal
    teacher = torch.tensor([[1.0, 1.0], [1.0, 1.0], [2.0, 2.0], [0.0, 1.0]])  # segments parallel
    loss = segment_affinity_loss(student, teacher, seg)
    # A_S = I, A_T = all ones: two off-diagonal entries differ by 1 -> MSE 2 / 4
    assert float(loss.detach()) == pytest.approx(0.5, rel=1e-6)
    loss.backward()
    assert student.grad[:3].abs().sum() > 0 and student.grad[3].abs().sum() == 0
    one = torch.tensor([3, 3, 0, 0])
    assert float(segment_affinity_loss(student, teacher, one)) == 0.0  # fewer than two segments


def test_rendered_semantic_kl_by_hand():
    p_t = torch.tensor([[0.3, 0.1]])  # opacity 0.4: renormalised to (0.75, 0.25)
    p_s = torch.tensor([[0.25, 0.75]])
    expected = 0.75 * math.log(0.75 / 0.25) + 0.25 * math.log(0.25 / 0.75)
    assert float(rendered_semantic_kl(p_s, p_t, eps=0.0)) == pytest.approx(expected, rel=1e-5)
    assert float(rendered_semantic_kl(p_t * 2, p_t, eps=0.0)) == pytest.approx(0.0, abs=1e-7)  # scale-free


def test_feature_l1_masked_by_hand():
    s = torch.zeros(1, 2, 2, 1, 1)
    t = torch.zeros(1, 2, 2, 1, 1)
    t[0, 0, 0], t[0, 1, 0] = 1.0, 3.0  # voxel 0: |diff| mean over channels = 2
    t[0, :, 1] = 10.0  # voxel 1: 10
    assert float(feature_l1(s, t)) == pytest.approx(6.0)
    mask = torch.tensor([True, False]).view(1, 2, 1, 1)
    assert float(feature_l1(s, t, mask)) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="features_teacher"):
        feature_l1(s, torch.zeros(1, 3, 2, 1, 1))


@pytest.mark.parametrize("tau", [1.0, 4.0])
def test_logit_kl_by_hand(tau):
    s = torch.zeros(1, 2, 1, 1, 2)
    t = torch.zeros(1, 2, 1, 1, 2)
    t[0, 0, 0, 0, 0] = 1.0  # voxel 0: teacher logits (1, 0), student (0, 1)
    s[0, 1, 0, 0, 0] = 1.0
    mask = torch.tensor([True, True]).view(1, 1, 1, 2)
    expected = tau**2 * two_bin_kl(1.0 / tau) / 2  # voxel 1 agrees
    assert float(logit_kl(s, t, tau, mask)) == pytest.approx(expected, rel=1e-5)
    assert float(logit_kl(s, t, tau, torch.tensor([True, False]).view(1, 1, 1, 2))) == pytest.approx(
        2 * expected, rel=1e-5
    )


# ------------------------------------------------------------------ the released code's readings (issue 31)
def test_rendered_depth_kl_mean_over_samples_is_sum_over_S():
    """reduction='mean' (the released code's mmdet KD loss) = the proper KL / S."""
    w_s = torch.tensor([[0.0, 1.0], [0.3, 0.3]])
    w_t = torch.tensor([[1.0, 0.0], [0.3, 0.3]])
    for tau in (1.0, 10.0):
        total = tau**2 * two_bin_kl(1.0 / tau) / 2  # mean over the two rays (ray 1 agrees)
        assert float(rendered_depth_kl(w_s, w_t, tau, reduction="sum")) == pytest.approx(total, rel=1e-5)
        assert float(rendered_depth_kl(w_s, w_t, tau, reduction="mean")) == pytest.approx(total / 2, rel=1e-5)
    with pytest.raises(ValueError, match="reduction"):
        rendered_depth_kl(w_s, w_t, reduction="max")


def test_rendered_depth_kl_zero_weight_samples_enter_the_softmax():
    """Samples of weight 0 (outside the grid) still count: teacher (1, 0, 0, 0), student (0, 1, 0, 0)
    at tau 1: p_T = (e, 1, 1, 1) / (e + 3), p_S = (1, e, 1, 1) / (e + 3), KL = (e - 1) / (e + 3)."""
    e = math.e
    w_t = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    w_s = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    assert float(rendered_depth_kl(w_s, w_t, 1.0)) == pytest.approx((e - 1) / (e + 3), rel=1e-5)
    assert float(rendered_depth_kl(w_s, w_t, 1.0, reduction="mean")) == pytest.approx((e - 1) / (e + 3) / 4, rel=1e-5)
    # without the two zero samples the same rays give KL(softmax(1, 0) || softmax(0, 1))
    assert float(rendered_depth_kl(w_s[:, :2], w_t[:, :2], 1.0)) == pytest.approx(two_bin_kl(1.0), rel=1e-5)


def test_rendered_depth_kl_tau_10_by_hand():
    """T = 10 (the released 'all' configs): softmax of w / 10 over three samples, times T^2, / S."""
    w_t = torch.tensor([[0.9, 0.1, 0.0]])
    w_s = torch.tensor([[0.2, 0.2, 0.6]])

    def softmax(v):
        z = [math.exp(x / 10) for x in v]
        return [x / sum(z) for x in z]

    p_t, p_s = softmax([0.9, 0.1, 0.0]), softmax([0.2, 0.2, 0.6])
    kl = sum(a * math.log(a / b) for a, b in zip(p_t, p_s))
    assert float(rendered_depth_kl(w_s, w_t, 10.0, reduction="mean")) == pytest.approx(100 * kl / 3, rel=1e-4)


@pytest.mark.filterwarnings("ignore:reduction. .mean. divides")
def test_rendered_raw_logit_kl_by_hand_and_as_torch_kl_div_mean():
    """The released RSC: kl_div(log_softmax(l_S), softmax(l_T)), reduction 'mean' = KL / (R C)."""
    s = torch.tensor([[0.0, 1.0], [2.0, 2.0]], requires_grad=True)
    t = torch.tensor([[1.0, 0.0], [5.0, 5.0]])  # ray 1: same softmax, KL 0
    loss = rendered_raw_logit_kl(s, t)
    assert float(loss.detach()) == pytest.approx(two_bin_kl(1.0) / (2 * 2), rel=1e-5)
    released = torch.nn.functional.kl_div(torch.log_softmax(s, 1), torch.softmax(t, 1), reduction="mean")
    assert float(loss.detach()) == pytest.approx(float(released.detach()), rel=1e-6)
    loss.backward()
    assert s.grad[0].abs().sum() > 0 and float(s.grad[1].abs().sum()) == pytest.approx(0.0, abs=1e-7)
    assert float(rendered_raw_logit_kl(s, t, torch.tensor([True, False]))) == pytest.approx(
        two_bin_kl(1.0) / 2, rel=1e-5
    )


def test_feature_l1_sum_over_channels_with_avg_factor():
    """reduction='sum_channels' (released: mmdet L1 with avg_factor = masked voxels)."""
    s = torch.zeros(1, 2, 2, 1, 1)
    t = torch.zeros(1, 2, 2, 1, 1)
    t[0, 0, 0], t[0, 1, 0] = 1.0, 3.0  # voxel 0: |diff| summed over channels = 4
    t[0, :, 1] = 10.0  # voxel 1: 20
    assert float(feature_l1(s, t, reduction="sum_channels")) == pytest.approx((4 + 20) / 2)
    mask = torch.tensor([True, False]).view(1, 2, 1, 1)
    assert float(feature_l1(s, t, mask, reduction="sum_channels")) == pytest.approx(4.0)
    assert float(feature_l1(s, t, mask, reduction="sum_channels")) == pytest.approx(2 * float(feature_l1(s, t, mask)))


def test_logit_kl_mean_over_classes():
    """reduction='mean' (released: mmdet KD loss, .mean over the classes) = the proper KL / C."""
    s = torch.zeros(1, 2, 1, 1, 2)
    t = torch.zeros(1, 2, 1, 1, 2)
    t[0, 0, 0, 0, 0] = 1.0
    s[0, 1, 0, 0, 0] = 1.0
    for tau in (1.0, 10.0):
        proper = tau**2 * two_bin_kl(1.0 / tau) / 2  # voxel 1 agrees
        assert float(logit_kl(s, t, tau, reduction="mean")) == pytest.approx(proper / 2, rel=1e-5)
    with pytest.raises(ValueError, match="reduction"):
        logit_kl(s, t, reduction="avg")
