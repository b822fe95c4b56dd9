"""Voxel losses against hand-computed values and a brute-force Lovász extension."""

import math

import pytest
import torch

from occkit.losses.occupancy import (
    class_weights_from_counts,
    geometry_semantic_cross_entropy,
    lovasz_grad,
    lovasz_softmax,
    lovasz_softmax_flat,
    voxel_cross_entropy,
)


def _two_voxels():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]]).t().reshape(1, 2, 2, 1, 1)  # (B, C, X, Y, Z)
    return logits


def test_cross_entropy_hand_values():
    logits = _two_voxels()
    t = torch.tensor([0, 0]).view(1, 2, 1, 1)
    assert voxel_cross_entropy(logits, t).item() == pytest.approx((math.log(2) + math.log(4 / 3)) / 2, rel=1e-6)
    t = torch.tensor([0, 1]).view(1, 2, 1, 1)
    w = torch.tensor([1.0, 3.0])
    assert voxel_cross_entropy(logits, t, weight=w).item() == pytest.approx(
        (math.log(2) + 3 * math.log(4)) / 4, rel=1e-6
    )
    mask = torch.tensor([False, True]).view(1, 2, 1, 1)
    assert voxel_cross_entropy(logits, t, mask=mask).item() == pytest.approx(math.log(4), rel=1e-6)
    ignored = torch.tensor([255, 1]).view(1, 2, 1, 1)
    assert voxel_cross_entropy(logits, ignored).item() == pytest.approx(math.log(4), rel=1e-6)
    # nothing kept: zero, differentiable
    lg = logits.clone().requires_grad_(True)
    loss = voxel_cross_entropy(lg, t, mask=torch.zeros(1, 2, 1, 1, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and lg.grad is not None


def test_geometry_semantic_cross_entropy_hand_values():
    # 3 classes, free = 2; voxel 0: p = (1/4, 1/4, 1/2) target 0; voxel 1: p = (3/5, 1/5, 1/5) target 2
    z = torch.log(torch.tensor([[1.0, 1.0, 2.0], [3.0, 1.0, 1.0]])).t().reshape(1, 3, 2, 1, 1)
    t = torch.tensor([0, 2]).view(1, 2, 1, 1)
    geo, sem = geometry_semantic_cross_entropy(z, t, free=2)
    assert geo.item() == pytest.approx((-math.log(1 / 2) - math.log(1 / 5)) / 2, rel=1e-6)
    assert sem.item() == pytest.approx(-math.log(1 / 2), rel=1e-6)  # p(0 | occ) = 1/4 / (1/2)
    # occupied_weight re-weights the geometry mean only; class weights the semantic term only
    geo3, sem3 = geometry_semantic_cross_entropy(
        z, t, free=-1, occupied_weight=3.0, weight=torch.tensor([5.0, 1.0, 0.0])
    )
    assert geo3.item() == pytest.approx((3 * math.log(2) + math.log(5)) / 4, rel=1e-6)
    assert sem3.item() == pytest.approx(math.log(2), rel=1e-6)
    # uniform weights: the two terms sum to the plain cross-entropy when every voxel is occupied
    z = torch.randn(2, 4, 3, 3, 2)
    t = torch.randint(0, 3, (2, 3, 3, 2))
    geo, sem = geometry_semantic_cross_entropy(z, t, free=3)
    assert (geo + sem).item() == pytest.approx(voxel_cross_entropy(z, t).item(), rel=1e-5)
    # masked / all free / nothing kept: finite and differentiable
    zg = z.clone().requires_grad_(True)
    geo, sem = geometry_semantic_cross_entropy(zg, torch.full_like(t, 3), free=3)
    assert sem.item() == 0.0 and geo.item() > 0
    (geo + sem).backward()
    assert zg.grad is not None and torch.isfinite(zg.grad).all()
    geo, sem = geometry_semantic_cross_entropy(z, t, mask=torch.zeros(t.shape, dtype=torch.bool), free=3)
    assert geo.item() == 0.0 and sem.item() == 0.0
    with pytest.raises(ValueError, match="free"):
        geometry_semantic_cross_entropy(z, t, free=4)
    with pytest.raises(ValueError, match="occupied_weight"):
        geometry_semantic_cross_entropy(z, t, free=3, occupied_weight=0.0)


def test_cross_entropy_bad_input():
    logits = _two_voxels()
    with pytest.raises(ValueError, match="class ids"):
        voxel_cross_entropy(logits, torch.tensor([0, 5]).view(1, 2, 1, 1))
    with pytest.raises(ValueError, match="target"):
        voxel_cross_entropy(logits, torch.tensor([0, 1, 0]).view(1, 3, 1, 1))
    with pytest.raises(ValueError, match="integer"):
        voxel_cross_entropy(logits, torch.zeros(1, 2, 1, 1))
    with pytest.raises(ValueError, match="mask"):
        voxel_cross_entropy(logits, torch.zeros(1, 2, 1, 1, dtype=torch.long), mask=torch.ones(1, 2, 1, 1))
    with pytest.raises(ValueError, match="weight"):
        voxel_cross_entropy(logits, torch.zeros(1, 2, 1, 1, dtype=torch.long), weight=torch.ones(3))


def _jaccard_loss_of_set(S: set[int], G: set[int]) -> float:
    return len(S) / len(G | S) if S else 0.0


def _lovasz_brute_force(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Lovász extension as the integral of the set function over level sets:
    sum over thresholds of (v_k - v_{k+1}) * Delta_J({i : m_i >= v_k}), mean over present classes."""
    P, C = probs.shape
    values = []
    for c in range(C):
        G = {i for i in range(P) if labels[i] == c}
        if not G:
            continue
        m = [abs(float(labels[i] == c) - float(probs[i, c])) for i in range(P)]
        levels = sorted(set(m), reverse=True) + [0.0]
        total = 0.0
        for k in range(len(levels) - 1):
            S = {i for i in range(P) if m[i] >= levels[k]}
            total += (levels[k] - levels[k + 1]) * _jaccard_loss_of_set(S, G)
        values.append(total)
    return sum(values) / len(values)


def test_lovasz_matches_brute_force():
    g = torch.Generator().manual_seed(1)
    for P, C in [(5, 3), (7, 4), (9, 2)]:
        probs = torch.rand(P, C, generator=g).softmax(1).double()
        labels = torch.randint(0, C - 1, (P,), generator=g)  # class C-1 absent: skipped
        got = lovasz_softmax_flat(probs, labels).item()
        assert got == pytest.approx(_lovasz_brute_force(probs, labels), abs=1e-9)


def test_lovasz_hand_values_and_grad():
    # perfect one-hot prediction: zero loss
    labels = torch.tensor([0, 1, 1, 2])
    probs = torch.nn.functional.one_hot(labels, 3).double()
    assert lovasz_softmax_flat(probs, labels).item() == 0.0
    # lovasz_grad: gt sorted [1, 0, 1]: J = 1 - [1/2, 1/3, 0]/[2, 3, 3] ... = [1/2, 2/3, 1]
    g = lovasz_grad(torch.tensor([1.0, 0.0, 1.0]))
    assert torch.allclose(g, torch.tensor([0.5, 1 / 6, 1 / 3]))


def test_lovasz_volume_mask_and_subset():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(1, 3, 2, 2, 2, generator=g)
    target = torch.randint(0, 3, (1, 2, 2, 2), generator=g)
    mask = torch.rand(1, 2, 2, 2, generator=g) > 0.3
    got = lovasz_softmax(logits, target, mask)
    probs = logits.softmax(1).movedim(1, -1)[mask]  # (P, C)
    assert got.item() == pytest.approx(_lovasz_brute_force(probs.double(), target[mask]), abs=1e-6)
    # a subset larger than the kept set changes nothing
    assert lovasz_softmax(logits, target, mask, max_voxels=100).item() == pytest.approx(got.item())
    sub = lovasz_softmax(logits, target, None, max_voxels=3, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(sub)
    with pytest.raises(ValueError, match="max_voxels"):
        lovasz_softmax(logits, target, max_voxels=0)
    lg = logits.clone().requires_grad_(True)
    lovasz_softmax(lg, target, mask).backward()
    assert lg.grad.abs().sum() > 0


def test_class_weights_from_counts():
    assert torch.allclose(class_weights_from_counts(torch.tensor([5.0, 5.0])), torch.ones(2))
    w = class_weights_from_counts(torch.tensor([3.0, 1.0, 0.0]))
    ref = torch.tensor([1 / math.log(1.02 + 0.75), 1 / math.log(1.02 + 0.25), 1 / math.log(1.02)])
    assert torch.allclose(w, ref / ref.mean())
    assert w[2] > w[1] > w[0]
    with pytest.raises(ValueError, match="counts"):
        class_weights_from_counts(torch.tensor([-1.0, 2.0]))
    with pytest.raises(ValueError, match="counts"):
        class_weights_from_counts(torch.tensor([float("nan"), 2.0]))


@pytest.mark.parametrize("channels_last", [False, True])
def test_cross_entropy_on_kept_voxels_matches_the_full_grid_loss(channels_last):
    # The loss gathers the kept voxels first; value and gradient must be PyTorch's weighted,
    # ignore_index cross-entropy over the whole grid, for batches and channels-last logits alike.
    g = torch.Generator().manual_seed(3)
    z = torch.randn(2, 5, 6, 4, 3, generator=g)
    if channels_last:
        z = z.contiguous(memory_format=torch.channels_last_3d)
    t = torch.randint(0, 5, (2, 6, 4, 3), generator=g)
    mask = torch.rand(2, 6, 4, 3, generator=g) < 0.6
    w = torch.rand(5, generator=g) + 0.2
    a = z.clone().requires_grad_(True)
    b = z.clone().requires_grad_(True)
    loss = voxel_cross_entropy(a, t, mask=mask, weight=w)
    ref = torch.nn.functional.cross_entropy(
        b, torch.where(mask, t, torch.full_like(t, 255)), weight=w, ignore_index=255
    )
    loss.backward()
    ref.backward()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-6)
    assert torch.allclose(a.grad, b.grad, atol=1e-7)
