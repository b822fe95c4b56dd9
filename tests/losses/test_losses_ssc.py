"""MonoScene's SSC losses against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from occkit.losses.monoscene import frustum_proportion_loss
from occkit.losses.ssc import (
    SEMANTICKITTI_CLASS_FREQUENCIES,
    scal_geo,
    scal_sem,
    ssc_class_weights,
    ssc_cross_entropy,
    ssc_losses,
)


def three_voxels() -> tuple[torch.Tensor, torch.Tensor]:
    """Two classes (0 = empty): voxel A occupied with p = (0.25, 0.75), voxel B empty with
    p = (0.5, 0.5), voxel C ignored (255). Shapes (1, 2, 3, 1, 1) and (1, 3, 1, 1)."""
    p = torch.tensor([[0.25, 0.75], [0.5, 0.5], [0.9, 0.1]])
    logits = p.log().T.reshape(1, 2, 3, 1, 1).clone().requires_grad_(True)
    target = torch.tensor([1, 0, 255]).reshape(1, 3, 1, 1)
    return logits, target


def test_class_weights_by_hand():
    w = ssc_class_weights(torch.tensor([100.0, 0.0, math.e]))
    assert w[0].item() == pytest.approx(1 / math.log(100.001))
    assert w[1].item() == 0.0  # never seen
    assert w[2].item() == pytest.approx(1 / math.log(math.e + 0.001))
    wk = ssc_class_weights(torch.tensor(SEMANTICKITTI_CLASS_FREQUENCIES))
    assert wk.shape == (20,) and bool((wk > 0).all()) and wk[0] == wk.min()  # empty: most frequent, smallest weight


def test_cross_entropy_by_hand():
    logits, target = three_voxels()
    w = torch.tensor([2.0, 1.0])
    got = ssc_cross_entropy(logits, target, w)
    want = (1.0 * -math.log(0.75) + 2.0 * -math.log(0.5)) / (1.0 + 2.0)  # PyTorch's weighted mean
    assert got.item() == pytest.approx(want, rel=1e-5)
    got.backward()
    assert logits.grad[0, :, 2].abs().sum() == 0  # the ignored voxel gets no gradient
    assert ssc_cross_entropy(logits, torch.full_like(target, 255)).item() == 0.0


def test_scal_geo_by_hand():
    logits, target = three_voxels()
    got = scal_geo(logits, target, empty_index=0)
    # p_occ = (0.75, 0.5), y = (1, 0): precision 0.75/1.25, recall 0.75/1, specificity 0.5/1
    want = -math.log(0.6) - math.log(0.75) - math.log(0.5)
    assert got.item() == pytest.approx(want, rel=1e-5)
    got.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_scal_sem_by_hand():
    logits, target = three_voxels()
    got = scal_sem(logits, target)
    # class 0: p = (0.25, 0.5), y = (0, 1): P = 0.5/0.75, R = 0.5/1, S = 0.75/1
    l0 = -math.log(0.5 / 0.75) - math.log(0.5) - math.log(0.75)
    # class 1: p = (0.75, 0.5), y = (1, 0): P = 0.75/1.25, R = 0.75, S = 0.5
    l1 = -math.log(0.6) - math.log(0.75) - math.log(0.5)
    assert got.item() == pytest.approx((l0 + l1) / 2, rel=1e-5)
    got.backward()
    assert torch.isfinite(logits.grad).all()


def test_scal_perfect_prediction_is_zero_and_absent_class_skipped():
    target = torch.tensor([0, 2, 2, 255]).reshape(1, 4, 1, 1)  # class 1 absent
    logits = torch.full((1, 3, 4, 1, 1), -30.0)
    for i, c in enumerate([0, 2, 2, 0]):
        logits[0, c, i] = 30.0
    assert scal_sem(logits, target).item() == pytest.approx(0.0, abs=1e-6)
    assert scal_geo(logits, target).item() == pytest.approx(0.0, abs=1e-6)
    # every voxel empty: recall is skipped (MonoScene would divide by 0), precision is -ln(0) -> 100
    assert math.isfinite(scal_geo(logits, torch.zeros(1, 4, 1, 1, dtype=torch.long)).item())


def test_shape_errors_name_the_argument():
    with pytest.raises(ValueError, match="target"):
        scal_sem(torch.zeros(1, 2, 3, 1, 1), torch.zeros(1, 4, 1, 1, dtype=torch.long))


def _scal_sem_loop(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MonoScene's ``sem_scal_loss`` as it is written: a loop over the classes on the full grid."""
    pred = logits.softmax(1)
    mask = target != 255
    loss, count = 0.0, 0
    for i in range(pred.shape[1]):
        p = pred[:, i][mask]
        y = (target[mask] == i).float()
        if y.sum() > 0:
            count += 1
            nom = (p * y).sum()
            term = 0.0
            if p.sum() > 0:
                term = term + torch.nn.functional.binary_cross_entropy(nom / p.sum(), torch.ones(()))
            term = term + torch.nn.functional.binary_cross_entropy(nom / y.sum(), torch.ones(()))
            if (1 - y).sum() > 0:
                term = term + torch.nn.functional.binary_cross_entropy(
                    ((1 - p) * (1 - y)).sum() / (1 - y).sum(), torch.ones(())
                )
            loss = loss + term
    return loss / count


def test_scal_sem_all_classes_at_once_equals_the_loop_and_ssc_losses_each_function():
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 8, 8, 3) * 3
    target = torch.randint(0, 6, (2, 8, 8, 3))
    target[torch.rand(target.shape) < 0.4] = 255
    target[target == 4] = 255  # a class absent from the known voxels
    frustum = torch.randint(-1, 9, target.shape)
    a, b = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    _scal_sem_loop(a, target).backward()
    scal_sem(b, target).backward()
    torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-7)
    assert float(scal_sem(logits, target)) == pytest.approx(float(_scal_sem_loop(logits, target)), rel=1e-6)
    w = torch.rand(6) + 0.5
    both = ssc_losses(
        logits, target, w, empty_index=0, terms=("ce", "scal_geo", "scal_sem", "frustum"), frustum=frustum, num_frusta=9
    )
    assert float(both["ce"]) == pytest.approx(float(ssc_cross_entropy(logits, target, w)), rel=1e-6)
    assert float(both["scal_geo"]) == pytest.approx(float(scal_geo(logits, target, 0)), rel=1e-6)
    assert float(both["scal_sem"]) == pytest.approx(float(scal_sem(logits, target)), rel=1e-6)
    assert float(both["frustum"]) == pytest.approx(float(frustum_proportion_loss(logits, target, frustum, 9)), rel=1e-6)
    with pytest.raises(ValueError, match="unknown terms"):
        ssc_losses(logits, target, terms=("ce", "dice"))
    with pytest.raises(ValueError, match="frustum ids"):
        ssc_losses(logits, target, terms=("frustum",))
    bad = target.clone()
    bad[0, 0, 0, 0] = 7
    with pytest.raises(ValueError, match="labels outside 0..5"):
        scal_sem(logits, bad)
