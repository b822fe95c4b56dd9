"""RadOcc's distillation losses on tiny hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from occkit.losses.distill import (
    feature_l1,
    logit_kl,
    rendered_depth_kl,
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
    assert float(rendered_depth_kl(w_s, w_t, tau, only_first)) == pytest.approx(tau**2 * two_bin_kl(1.0 / tau), rel=1e-5)


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
    assert float(logit_kl(s, t, tau, torch.tensor([True, False]).view(1, 1, 1, 2))) == pytest.approx(2 * expected, rel=1e-5)
