"""MonoScene's frustum proportion loss and context-prior relation targets / loss against
hand-computed values and against loops transcribing the rules of its released code."""

from __future__ import annotations

import math

import pytest
import torch

from occkit.losses.monoscene import (
    downsample_labels,
    frustum_ids,
    frustum_proportion_loss,
    relation_loss,
    relation_targets,
)
from occkit.models.context_prior import ContextPrior3D


def test_frustum_ids_by_hand():
    # a 4 x 8 image split 2 x 2: columns [0, 4) and [4, 8), rows [0, 2) and [2, 4); ids row * 2 + column
    uv = torch.tensor([[0.0, 0.0], [7.9, 0.0], [3.99, 3.5], [4.0, 2.0], [8.0, 0.0], [-0.1, 0.0], [1.0, 1.0]])
    valid = torch.tensor([True, True, True, True, True, True, False])
    assert frustum_ids(uv, valid, (4, 8), 2).tolist() == [0, 1, 2, 3, -1, -1, -1]
    # MonoScene's 1220-wide image split 8 ways: pixel 152 (< 152.5) in column 0, 153 in column 1
    ids = frustum_ids(torch.tensor([[152.7, 0.0], [153.0, 0.0]]), torch.tensor([True, True]), (370, 1220), 8)
    assert ids.tolist() == [0, 1]


def five_voxels() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two classes; voxels: frustum 0 label 0 p=(.5,.5); frustum 0 label 1 p=(.2,.8); frustum 1
    label 1 p=(.6,.4); in no frustum, label 0; frustum 1 unknown (255). Shapes (1, 2, 5, 1, 1)."""
    p = torch.tensor([[0.5, 0.5], [0.2, 0.8], [0.6, 0.4], [0.9, 0.1], [0.1, 0.9]])
    logits = p.log().T.reshape(1, 2, 5, 1, 1).clone().requires_grad_(True)
    target = torch.tensor([0, 1, 1, 0, 255]).reshape(1, 5, 1, 1)
    frustum = torch.tensor([0, 0, 1, -1, 1]).reshape(1, 5, 1, 1)
    return logits, target, frustum


def test_frustum_proportion_loss_by_hand():
    logits, target, frustum = five_voxels()
    got = frustum_proportion_loss(logits, target, frustum, num_frusta=3)  # frustum 2 holds nothing: not averaged
    # frustum 0: P = (.5, .5), Q = (.35, .65); frustum 1: P = (0, 1) (class 0 left out), Q = (.6, .4)
    kl0 = 0.5 * math.log(0.5 / 0.35) + 0.5 * math.log(0.5 / 0.65)
    kl1 = 1.0 * math.log(1.0 / 0.4)
    assert got.item() == pytest.approx((kl0 + kl1) / 2, rel=1e-5)
    got.backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad[0, :, 3].abs().sum() == 0 and logits.grad[0, :, 4].abs().sum() == 0  # outside / unknown
    # nothing known in any frustum: 0, still connected to the logits
    none = frustum_proportion_loss(logits, torch.full_like(target, 255), frustum, 3)
    assert none.item() == 0.0 and none.requires_grad


def test_frustum_proportion_loss_pools_the_batch():
    """MonoScene sums counts and probabilities of a frustum over the frames of a batch first."""
    logits, target, frustum = five_voxels()
    both = frustum_proportion_loss(
        torch.cat([logits, logits.flip(2)]),
        torch.cat([target, target.flip(1)]),
        torch.cat([frustum, frustum.flip(1)]),
        3,
    )
    # frames pooled: the same voxels twice per frustum: the same proportions as one frame
    assert both.item() == pytest.approx(frustum_proportion_loss(logits, target, frustum, 3).item(), rel=1e-6)
    perfect = torch.tensor([[0.5, 0.5], [0.5, 0.5], [1e-9, 1.0], [0.5, 0.5], [0.5, 0.5]]).log().T.reshape(1, 2, 5, 1, 1)
    assert frustum_proportion_loss(perfect, target, frustum, 3).item() == pytest.approx(0.0, abs=1e-6)


def _downsample_loop(t: torch.Tensor, f: int) -> torch.Tensor:
    """SSCNet's rule block by block (MonoScene's ``_downsample_label``), written as a loop."""
    X, Y, Z = (s // f for s in t.shape)
    out = torch.zeros(X, Y, Z, dtype=torch.long)
    for x in range(X):
        for y in range(Y):
            for z in range(Z):
                b = t[x * f : (x + 1) * f, y * f : (y + 1) * f, z * f : (z + 1) * f].flatten()
                n0, n255 = int((b == 0).sum()), int((b == 255).sum())
                if n0 + n255 > 0.95 * f**3:
                    out[x, y, z] = 0 if n0 > n255 else 255
                else:
                    out[x, y, z] = int(torch.bincount(b[(b > 0) & (b < 255)]).argmax())
    return out


def test_downsample_labels_by_hand_and_by_loop():
    t = torch.tensor([0, 255, 0, 0, 3, 0, 3, 2, 255, 255]).reshape(1, 10, 1, 1)
    # (0, 255) tie -> unknown; (0, 0) -> empty; (3, 0) -> 3; (3, 2) tie -> the smaller, 2; (255, 255) -> unknown
    assert downsample_labels(t, (2, 1, 1)).flatten().tolist() == [255, 0, 3, 2, 255]
    block = torch.zeros(1, 2, 2, 2, dtype=torch.long)
    block[0, 1, 1, 1] = 1  # 7 empty of 8 is not above 0.95 * 8: the car wins
    assert downsample_labels(block, (2, 2, 2)).item() == 1
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        t = torch.randint(0, 4, (8, 4, 4), generator=g)
        t[torch.rand(8, 4, 4, generator=g) < 0.6] = 0
        t[torch.rand(8, 4, 4, generator=g) < 0.2] = 255
        assert torch.equal(downsample_labels(t[None], (2, 2, 2), num_classes=4)[0], _downsample_loop(t, 2))
    with pytest.raises(ValueError, match="factor"):
        downsample_labels(t[None], (3, 2, 2))


def _relations_loop(lab: torch.Tensor, binary: bool) -> torch.Tensor:
    """MonoScene's ``compute_CP_mega_matrix`` rules, supervoxel by supervoxel, as a loop."""
    X, Y, Z = lab.shape
    rows = lab.flatten()
    M = (X // 2) * (Y // 2) * (Z // 2)
    out = torch.zeros(2 if binary else 4, rows.numel(), M, dtype=torch.bool)
    for xx in range(X // 2):
        for yy in range(Y // 2):
            for zz in range(Z // 2):
                j = xx * (Y // 2) * (Z // 2) + yy * (Z // 2) + zz
                for b in lab[2 * xx : 2 * xx + 2, 2 * yy : 2 * yy + 2, 2 * zz : 2 * zz + 2].flatten().tolist():
                    if b == 255:
                        continue
                    known = rows != 255
                    if binary:
                        out[0, known & (rows != b), j] = True
                        out[1, known & (rows == b), j] = True
                    else:
                        out[0, known & (rows == b) & (b != 0), j] = True
                        out[1, known & (rows != b) & (rows != 0) & (b != 0), j] = True
                        out[2, known & (rows == b) & (b == 0), j] = True
                        out[3, known & (rows != b) & ((rows == 0) | (b == 0)), j] = True
    return out


def test_relation_targets_by_hand():
    lab = torch.zeros(4, 2, 2, dtype=torch.long)  # supervoxel 0: x in {0, 1}; 1: x in {2, 3}
    lab[0, 0, 0] = 1  # a car among empty voxels
    lab[1, 1, 1] = 255
    lab[2:] = 9  # road ...
    lab[2, 0, 0] = 1  # ... and a car
    rel = relation_targets(lab[None])[0]  # (4, 16, 2)
    assert rel.shape == (4, 16, 2)
    car, empty, unknown, road = 0, 1, 7, 12  # rows: x * 4 + y * 2 + z
    # relations: same occupied, different occupied, both empty, occupied vs empty; columns: supervoxels 0, 1
    assert rel[:, car].tolist() == [[True, True], [False, True], [False, False], [True, False]]
    assert rel[:, empty].tolist() == [[False, False], [False, False], [True, False], [True, True]]
    assert not rel[:, unknown].any()
    assert rel[:, road].tolist() == [[False, True], [True, True], [False, False], [True, False]]


@pytest.mark.parametrize("binary", [False, True])
def test_relation_targets_match_the_reference_rules(binary):
    g = torch.Generator().manual_seed(1)
    lab = torch.randint(0, 5, (2, 4, 4, 2), generator=g)
    lab[torch.rand(lab.shape, generator=g) < 0.4] = 0
    lab[torch.rand(lab.shape, generator=g) < 0.15] = 255
    got = relation_targets(lab, 2 if binary else 4, num_classes=5)
    for b in range(2):
        assert torch.equal(got[b], _relations_loop(lab[b], binary))
    with pytest.raises(ValueError, match="even"):
        relation_targets(lab[:, :3])


def test_relation_loss_by_hand():
    logits = torch.tensor([[0.5, -1.0, 2.0], [0.0, 0.0, 0.0]]).reshape(1, 2, 1, 3).requires_grad_(True)
    targets = torch.tensor([[1, 0, 0], [0, 0, 0]], dtype=torch.bool).reshape(1, 2, 1, 3)
    got = relation_loss(logits, targets)
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731  softplus: -ln sigmoid(-x)
    # relation 0: 1 positive, 2 negatives: positive weight 2; relation 1: no positive: weight 1
    want = (2 * sp(-0.5) + sp(-1.0) + sp(2.0) + 3 * math.log(2)) / 6
    assert got.item() == pytest.approx(want, rel=1e-6)
    got.backward()
    assert torch.isfinite(logits.grad).all()


def test_context_prior_shapes_and_relation_gradient():
    torch.manual_seed(0)
    cp = ContextPrior3D(8, (4, 4, 2), num_relations=4)
    x = torch.randn(2, 8, 4, 4, 2)
    y, logits = cp(x)
    assert y.shape == x.shape and logits.shape == (2, 4, 32, 4)
    lab = torch.randint(0, 3, (2, 4, 4, 2))
    relation_loss(logits, relation_targets(lab, 4)).backward()
    assert cp.prior.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="even"):
        ContextPrior3D(8, (4, 3, 2))
    with pytest.raises(ValueError, match="bottleneck"):
        cp(torch.randn(1, 8, 4, 4, 4))
