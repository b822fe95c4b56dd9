"""Class-balanced cross-entropy on pseudo-labels, by hand."""

from __future__ import annotations

import math

import pytest
import torch

from occkit.losses.pseudo_labels import balanced_cross_entropy, count_labels


def test_count_labels_inside_the_mask():
    t = torch.tensor([0, 1, 1, 2, 255]).view(1, 5, 1, 1)
    mask = torch.tensor([True, True, False, True, True]).view(1, 5, 1, 1)
    assert count_labels(t, mask, 3).tolist() == [1.0, 1.0, 1.0]
    assert count_labels(t, None, 3).tolist() == [1.0, 2.0, 1.0]
    with pytest.raises(ValueError, match="class ids"):
        count_labels(torch.full((1, 1, 1, 1), 5), None, 3)


def test_balanced_cross_entropy_by_hand():
    # two voxels, 2 classes, logits 0: -log p = log 2 for each; weights from counts (3, 1)
    logits = torch.zeros(1, 2, 2, 1, 1)
    t = torch.tensor([0, 1]).view(1, 2, 1, 1)
    counts = torch.tensor([3.0, 1.0])
    w = 1 / torch.log(1.05 + counts / 4)
    w = w / w.mean()
    expect = (w[0] * math.log(2) + w[1] * math.log(2)) / (w[0] + w[1])
    assert float(balanced_cross_entropy(logits, t, None, counts)) == pytest.approx(float(expect))
    # unequal logits: the rarer class's voxel weighs more
    logits[0, 1, 1] = 2.0  # voxel 1 favours its class 1: loss log(1 + e^-2); voxel 0: log(1 + e^0)
    l0, l1 = math.log(2), math.log(1 + math.exp(-2))
    expect = (w[0] * l0 + w[1] * l1) / (w[0] + w[1])
    assert float(balanced_cross_entropy(logits, t, None, counts)) == pytest.approx(float(expect), rel=1e-5)
    # uniform without counts; masked voxels drop out
    assert float(balanced_cross_entropy(logits, t, None, None)) == pytest.approx((l0 + l1) / 2, rel=1e-5)
    mask = torch.tensor([False, True]).view(1, 2, 1, 1)
    assert float(balanced_cross_entropy(logits, t, mask, counts)) == pytest.approx(l1, rel=1e-5)
