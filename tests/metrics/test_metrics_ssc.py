"""SemanticKITTI SSC metrics: hand-computed values and the semantic-kitti-api formulas (numpy,
written here) on random data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from occkit.labels import SEMANTICKITTI_CLASSES
from occkit.metrics.ssc import SSCMetric, ssc_confusion, ssc_scores


def reference_ssc(preds, gts, invalids, C=20):
    """semantic-kitti-api evaluate_completion, straightforwardly."""
    conf = np.zeros((C, C), dtype=np.int64)
    for p, g, inv in zip(preds, gts, invalids):
        m = (g != 255) & (inv == 0)
        np.add.at(conf, (p[m].astype(int), g[m].astype(int)), 1)  # rows = prediction
    tp = np.diag(conf).astype(float)
    fp = conf.sum(1) - tp
    fn = conf.sum(0) - tp
    iou = tp / (tp + fp + fn + 1e-15)
    prec = conf[1:, 1:].sum() / conf[1:, :].sum()
    rec = conf[1:, 1:].sum() / conf[:, 1:].sum()
    cmp = conf[1:, 1:].sum() / (conf.sum() - conf[0, 0])
    return conf, iou, iou[1:].mean(), cmp, prec, rec


def test_hand_computed():
    # classes: 0 empty, 1 car, 2 bicycle (C = 3 for the hand count)
    gt = torch.tensor([0, 0, 1, 1, 2, 255, 1])
    pred = torch.tensor([0, 1, 1, 0, 2, 2, 2])
    invalid = torch.tensor([0, 0, 0, 0, 0, 0, 1], dtype=torch.bool)
    conf = ssc_confusion(pred, gt, invalid, num_classes=3)
    # rows = prediction: (0,0)=1 (pred0,gt1)=1 (pred1,gt0)=1 (pred1,gt1)=1 (pred2,gt2)=1
    assert conf.tolist() == [[1, 1, 0], [1, 1, 0], [0, 0, 1]]
    s = ssc_scores(conf, ("empty", "car", "bicycle"))
    assert s["completion_iou"] == pytest.approx(100 * 2 / 4)  # occupied tp (1,1)+(2,2)=2 ; total-conf00 = 4
    assert s["precision"] == pytest.approx(100 * 2 / 3)
    assert s["recall"] == pytest.approx(100 * 2 / 3)
    assert s["iou"]["car"] == pytest.approx(100 / 3)
    assert s["iou"]["bicycle"] == pytest.approx(100.0)
    assert s["ssc_miou"] == pytest.approx(100 * (1 / 3 + 1) / 2)


def test_absent_classes_count_as_zero_and_perfect():
    g = torch.Generator().manual_seed(0)
    gt = torch.randint(0, 5, (2, 6, 6, 4), generator=g)  # only classes 0..4 present
    m = SSCMetric()
    m.update(gt, gt)
    r = m.compute()
    assert r["completion_iou"] == pytest.approx(100.0)
    assert r["precision"] == pytest.approx(100.0) and r["recall"] == pytest.approx(100.0)
    assert r["iou"]["car"] == pytest.approx(100.0)
    assert r["iou"]["traffic-sign"] == 0.0  # absent from both: 0, not NaN
    assert r["ssc_miou"] == pytest.approx(100 * 4 / 19)


def test_empty_evaluation_is_nan_not_crash():
    gt = torch.full((1, 2, 2, 2), 255)
    m = SSCMetric()
    m.update(torch.zeros_like(gt), gt)
    r = m.compute()
    assert math.isnan(r["completion_iou"]) and r["ssc_miou"] == 0.0


def test_against_reference_random():
    rng = np.random.default_rng(0)
    F, shape = 3, (16, 16, 4)
    gts = [np.where(rng.random(shape) < 0.1, 255, rng.integers(0, 20, shape)).astype(np.uint8) for _ in range(F)]
    preds = [
        np.where(rng.random(shape) < 0.5, np.where(g == 255, 0, g), rng.integers(0, 20, shape)).astype(np.uint8)
        for g in gts
    ]
    invs = [(rng.random(shape) < 0.2).astype(np.uint8) for _ in range(F)]
    conf_ref, iou_ref, miou_ref, cmp_ref, prec_ref, rec_ref = reference_ssc(preds, gts, invs)
    a, b = SSCMetric(), SSCMetric()
    a.update(
        torch.from_numpy(np.stack(preds[:2])),
        torch.from_numpy(np.stack(gts[:2])),
        torch.from_numpy(np.stack(invs[:2]).astype(bool)),
    )
    b.update(
        torch.from_numpy(np.stack(preds[2:])),
        torch.from_numpy(np.stack(gts[2:])),
        torch.from_numpy(np.stack(invs[2:]).astype(bool)),
    )
    a.merge(b)
    a.all_reduce()
    assert np.array_equal(a.counts.numpy(), conf_ref)
    r = a.compute()
    assert r["ssc_miou"] == pytest.approx(100 * miou_ref)
    assert r["completion_iou"] == pytest.approx(100 * cmp_ref)
    assert r["precision"] == pytest.approx(100 * prec_ref)
    assert r["recall"] == pytest.approx(100 * rec_ref)
    for k in range(1, 20):
        assert r["iou"][SEMANTICKITTI_CLASSES[k]] == pytest.approx(100 * iou_ref[k])
    assert r["frames"] == 3


def test_logits_and_errors():
    gt = torch.randint(0, 20, (1, 3, 3, 2))
    logits = torch.nn.functional.one_hot(gt, 20).permute(0, 4, 1, 2, 3).float()
    m = SSCMetric()
    m.update(logits, gt)
    assert m.compute()["ssc_miou"] > 0
    with pytest.raises(ValueError, match=r"\[0, 20\)"):
        m.update(gt + 20, gt)
    with pytest.raises(ValueError, match="shape"):
        m.update(gt[:, :1], gt)
    with pytest.raises(ValueError, match="merge"):
        m.merge(SSCMetric(num_classes=3, class_names=("a", "b", "c")))
