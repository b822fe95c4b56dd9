"""Retrieval AP on hand-made rankings, the query file, relevance from instance ids."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from occkit.metrics.retrieval import Query, RetrievalAccumulator, average_precision, load_queries, relevance


def test_ap_hand_made_ranking():
    # ranking: R N R N N R -> precisions at the relevant ranks 1/1, 2/3, 3/6 -> AP = (1 + 2/3 + 1/2) / 3
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    rel = np.array([1, 0, 1, 0, 0, 1], bool)
    assert average_precision(scores, rel) == pytest.approx((1 + 2 / 3 + 1 / 2) / 3)
    assert average_precision(scores, np.ones(6, bool)) == pytest.approx(1.0)
    assert math.isnan(average_precision(scores, np.zeros(6, bool)))
    # ties form one step: all equal -> AP = precision = 3/6
    assert average_precision(np.zeros(6), rel) == pytest.approx(0.5)


def test_ap_matches_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for _ in range(5):
        s = np.round(rng.random(200), 2)  # with ties
        r = rng.random(200) < 0.2
        assert average_precision(s, r) == pytest.approx(sk.average_precision_score(r, s))


def test_queries_file_and_relevance(tmp_path):
    qs = load_queries()
    assert any(q.heldout for q in qs) and any(not q.heldout for q in qs)
    assert all(q.means or q.classes for q in qs)
    bad = tmp_path / "q.yaml"
    bad.write_text("queries:\n  - {text: 'flying car', means: [flying car]}\n")
    with pytest.raises(ValueError, match="flying car"):
        load_queries(bad)
    inst = torch.tensor([0, 1, 2, 2, 0])
    sem = torch.tensor([14, 4, 3, 3, 11])
    names = {1: "taxi", 2: "school bus"}
    assert relevance(Query("bus", ("school bus",)), inst, names, sem).tolist() == [False, False, True, True, False]
    assert relevance(Query("grass", (), (14,)), inst, names, sem).tolist() == [True, False, False, False, False]


def test_accumulator_all_visible_and_heldout():
    acc = RetrievalAccumulator([Query("taxi", ("taxi",)), Query("school bus", ("school bus",), heldout=True)])
    inst = torch.tensor([1, 2, 0, 1])
    sims = torch.tensor([[0.9, -0.5], [0.1, 0.8], [0.0, 0.9], [-0.2, 0.0]])
    acc.add(
        sims, inst, {1: "taxi", 2: "school bus"}, torch.tensor([4, 3, 11, 4]), torch.tensor([True, True, True, False])
    )
    out = acc.compute()
    # taxi: relevant points 0 and 3 ranked 1st and 4th -> (1 + 2/4) / 2; visible: only point 0 -> 1
    assert out["queries"][0]["ap_all"] == pytest.approx(75.0)
    assert out["queries"][0]["ap_visible"] == pytest.approx(100.0)
    # school bus: point 1 ranked 2nd -> 1/2
    assert out["map_heldout_all"] == pytest.approx(50.0)
    assert out["map_seen_all"] == pytest.approx(75.0)
    assert out["map_all"] == pytest.approx(62.5)
