"""Threshold-free geometry of a p(occupied) field (:mod:`occkit.metrics.geometry_rank`), by hand."""

from __future__ import annotations

import pytest
import torch

from occkit.metrics.geometry_rank import GeometryRanking


def field():
    # five scored voxels and one outside the mask (which would otherwise change every figure)
    p = torch.tensor([0.9, 0.8, 0.3, 0.3, 0.1, 0.99]).view(1, 2, 3)
    occ = torch.tensor([1, 0, 1, 0, 0, 0], dtype=torch.bool).view(1, 2, 3)
    mask = torch.tensor([1, 1, 1, 1, 1, 0], dtype=torch.bool).view(1, 2, 3)
    return p, occ, mask


def test_ap_best_and_own_threshold_by_hand():
    r = GeometryRanking()
    r.add(*field())
    out = r.compute(threshold=0.5)
    # thresholds 0.9 / 0.8 / 0.3 (a tie: one step) / 0.1: precision 1, 1/2, 2/4, 2/5; recall 1/2, 1/2, 1, 1
    # AP = 1/2 * 1 + 0 * 1/2 + 1/2 * 2/4 = 0.75
    assert out["geometry_ap"] == pytest.approx(75.0)
    # IoU = tp / (positives + fp): 1/2, 1/3, 2/4, 2/5: the best 0.5, first reached at 0.9
    assert out["geometry_iou_best"] == pytest.approx(50.0) and out["best_threshold"] == pytest.approx(0.9)
    # p >= 0.5: 0.9 (occupied) and 0.8 (free): 1 / (2 + 1)
    assert out["geometry_iou_at_threshold"] == pytest.approx(100 / 3)
    assert out["voxels"] == 5 and out["occupied_fraction"] == pytest.approx(40.0)
    assert out["p_at_occupied_mean"] == pytest.approx(0.6) and out["p_at_free_mean"] == pytest.approx(0.4)


def test_frames_pool_and_a_perfect_ranking_scores_100():
    r = GeometryRanking()
    r.add(torch.tensor([0.7, 0.2]), torch.tensor([True, False]))
    r.add(torch.tensor([0.6, 0.65]), torch.tensor([True, False]))
    out = r.compute()
    # pooled: 0.7 (occ), 0.65 (free), 0.6 (occ), 0.2 (free): precision 1, 1/2, 2/3; recall 1/2, 1/2, 1
    assert out["geometry_ap"] == pytest.approx(100 * (0.5 + 0.5 * 2 / 3))
    assert "geometry_iou_at_threshold" not in out
    perfect = GeometryRanking()
    perfect.add(torch.tensor([0.9, 0.8, 0.1]), torch.tensor([True, True, False]))
    out = perfect.compute(threshold=0.05)
    assert out["geometry_ap"] == pytest.approx(100.0) and out["geometry_iou_best"] == pytest.approx(100.0)
    assert out["best_threshold"] == pytest.approx(0.8) and out["geometry_iou_at_threshold"] == pytest.approx(200 / 3)


def test_nothing_occupied_and_bad_input():
    r = GeometryRanking()
    r.add(torch.tensor([0.2, 0.4]), torch.tensor([False, False]))
    out = r.compute(threshold=0.5)
    assert out["geometry_ap"] is None and out["geometry_iou_best"] is None and out["geometry_iou_at_threshold"] is None
    with pytest.raises(ValueError, match="differ in shape"):
        r.add(torch.zeros(3), torch.zeros(2, dtype=torch.bool))
    with pytest.raises(ValueError, match="NaN"):
        r.add(torch.tensor([float("nan")]), torch.tensor([True]))


def test_p_occupied_from_the_method_or_from_the_free_class():
    from types import SimpleNamespace

    from occkit.commands.geometry import p_occupied

    class Density:  # langocc: its own p(occupied) from a (1, X, Y, Z) density logit
        def p_occupied(self, logits):
            return torch.sigmoid(logits[0])

    logit = torch.tensor([0.0, 2.0]).view(1, 2, 1, 1)
    assert torch.allclose(p_occupied(Density(), logit), torch.sigmoid(torch.tensor([0.0, 2.0])).view(2, 1, 1))
    # class logits: 1 - softmax's free class; cfg.free where the method names it, else the last class
    logits = torch.log(torch.tensor([[0.2, 0.5], [0.3, 0.1], [0.5, 0.4]])).view(3, 2, 1, 1)
    assert torch.allclose(p_occupied(SimpleNamespace(), logits).flatten(), torch.tensor([0.5, 0.6]))
    assert torch.allclose(
        p_occupied(SimpleNamespace(cfg=SimpleNamespace(free=0)), logits).flatten(), torch.tensor([0.8, 0.5])
    )
