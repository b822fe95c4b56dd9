"""LangOcc's cosine-weighted feature loss on hand-computed cases."""

from __future__ import annotations

import pytest
import torch

from occkit.losses.language import cosine_weighted_mse, normalize_features


def test_hand_values():
    pred = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.6, 0.8]])
    target = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    # ray 0: cos 0, weight 2, squared error 2 -> 4; ray 1: 0; ray 2: cos 0.6, weight 0.8,
    # squared error 0.16 + 0.64 = 0.8 -> 0.64
    assert float(cosine_weighted_mse(pred, target)) == pytest.approx((4 + 0 + 0.64) / 3)
    keep = torch.tensor([True, False, True])
    assert float(cosine_weighted_mse(pred, target, keep)) == pytest.approx((4 + 0.64) / 2)


def test_weight_is_detached():
    pred = torch.tensor([[0.6, 0.8]], requires_grad=True)
    target = torch.tensor([[1.0, 0.0]])
    cosine_weighted_mse(pred, target).backward()
    # d/dp [w * ||p - t||^2] with w = 0.8 constant: 2 w (p - t)
    assert torch.allclose(pred.grad, 2 * 0.8 * (pred.detach() - target))
    p2 = pred.detach().clone().requires_grad_(True)
    cosine_weighted_mse(p2, target, detach_weight=False).backward()
    assert not torch.allclose(p2.grad, pred.grad)


def test_empty_rays_give_a_connected_zero():
    pred = torch.randn(4, 3, requires_grad=True)
    loss = cosine_weighted_mse(pred, torch.randn(4, 3), torch.zeros(4, dtype=torch.bool))
    assert float(loss) == 0.0
    loss.backward()
    assert pred.grad is not None and float(pred.grad.abs().sum()) == 0.0
    assert float(cosine_weighted_mse(torch.zeros(0, 3, requires_grad=True), torch.zeros(0, 3))) == 0.0


def test_bad_inputs_and_normalize():
    with pytest.raises(ValueError, match="target"):
        cosine_weighted_mse(torch.zeros(3, 2), torch.zeros(3, 4))
    with pytest.raises(TypeError, match="valid"):
        cosine_weighted_mse(torch.zeros(3, 2), torch.zeros(3, 2), torch.ones(3))
    x = normalize_features(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
    assert torch.allclose(x, torch.tensor([[0.6, 0.8], [0.0, 0.0]]))
