"""Render losses: hand values and brute-force references."""

from __future__ import annotations

import math

import pytest
import torch

from occkit.losses.render import (
    distortion_loss,
    l1_depth_loss,
    opacity_entropy_loss,
    rendered_semantic_loss,
    silog_loss,
    weight_entropy_loss,
)


def test_distortion_matches_double_sum():
    g = torch.Generator().manual_seed(0)
    edges, _ = torch.sort(torch.rand(4, 9, generator=g, dtype=torch.float64) * 10, -1)
    starts, ends = edges[:, :-1], edges[:, 1:]
    w = torch.rand(4, 8, generator=g, dtype=torch.float64) / 8
    m = 0.5 * (starts + ends)
    ref = (w[:, :, None] * w[:, None, :] * (m[:, :, None] - m[:, None, :]).abs()).sum((1, 2)) + (
        w * w * (ends - starts)
    ).sum(-1) / 3
    torch.testing.assert_close(distortion_loss(w, starts, ends), ref.mean())
    torch.testing.assert_close(distortion_loss(w, starts, ends, scale=2.0), ref.mean() / 2)
    # one interval, all weight: only the intra term w^2 d / 3
    assert distortion_loss(torch.tensor([[1.0]]), torch.tensor([[0.0]]), torch.tensor([[3.0]])).item() == pytest.approx(
        1.0
    )


def test_silog_and_l1():
    pred = torch.tensor([2.0, 4.0, 5.0])
    target = torch.tensor([1.0, 2.0, 0.0])  # last: no depth, ignored
    # g = log 2 for both valid rays: scale-invariant part vanishes with lam = 1
    assert silog_loss(pred, target, lam=1.0).item() == pytest.approx(0.0, abs=1e-5)
    assert silog_loss(pred, target, lam=0.0).item() == pytest.approx(math.log(2), rel=1e-5)
    assert l1_depth_loss(pred, target).item() == pytest.approx(1.5)
    empty = silog_loss(pred.requires_grad_(), torch.zeros(3))
    assert empty.item() == 0.0 and empty.requires_grad
    with pytest.raises(ValueError, match="target"):
        l1_depth_loss(pred, target[:2])


def test_semantic_loss_and_entropies():
    probs = torch.tensor([[0.3, 0.1, 0.0], [0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])
    target = torch.tensor([0, 2, 17])
    want = (-math.log(0.75) - math.log(0.5)) / 2
    assert rendered_semantic_loss(probs, target, ignore_index=17).item() == pytest.approx(want, rel=1e-5)
    with pytest.raises(ValueError, match="class ids"):
        rendered_semantic_loss(probs, torch.tensor([0, 5, 1]), ignore_index=17)
    w = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.2, 0.0]])
    assert weight_entropy_loss(w).item() == pytest.approx(math.log(2) / 2, rel=1e-5)
    assert opacity_entropy_loss(torch.tensor([0.5, 1.0])).item() == pytest.approx(math.log(2) / 2, rel=1e-4)


def test_termination_loss_hand_values():
    from occkit.losses.render import termination_loss

    w = torch.tensor([[0.1, 0.6, 0.2, 0.0], [0.5, 0.0, 0.0, 0.5]])
    t = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]])
    target = torch.tensor([2.2, 0.0])  # second ray: no depth, ignored
    # band |t - 2.2| <= 0.5 holds only t = 2 -> p = 0.6
    assert termination_loss(w, t, target, window=0.5, eps=0.0).item() == pytest.approx(-math.log(0.6), rel=1e-6)
    # a wider band takes t = 2 and 3 -> 0.8
    assert termination_loss(w, t, target, window=1.0, eps=0.0).item() == pytest.approx(-math.log(0.8), rel=1e-6)
    with pytest.raises(ValueError, match="window"):
        termination_loss(w, t, target, window=0.0)
