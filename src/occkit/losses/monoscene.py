"""MonoScene's two further losses (docs/methods.md §3; its paper and released code), as pure functions.

**Frustum proportion loss** (:func:`frustum_ids`, :func:`frustum_proportion_loss`). The image is
split into ``l x l`` equal rectangles (MonoScene's ``frustum_size``, 8 in its shipped config);
the voxels whose centres project into a rectangle (in front of the camera) form its local
frustum. Per frustum ``k``: ``P_k`` = the class proportions of the ground-truth labels of its
known voxels (every label but 255: empty voxels count, as in MonoScene's code, which masks only
the unknown ones; there is no visibility test), ``Q_k`` = the mean predicted distribution over
the same voxels (softmax summed, normalised). The loss is ``KL(P_k || Q_k) = sum_{c: P_k,c > 0}
P_k,c ln(P_k,c / Q_k,c)`` (classes absent from the frustum's labels are left out, as MonoScene's
``KL_sep``), averaged over the frusta holding at least one known voxel. As in MonoScene, the
voxels of all the frames of a batch are pooled per frustum before the proportions are taken.

**3D context prior: relation targets and loss** (:func:`downsample_labels`,
:func:`relation_targets`, :func:`relation_loss`). MonoScene's context relation prior sits at the
bottleneck of its 3D U-Net (1/8 of the 256x256x32 grid: 32x32x4 voxels). Its supervoxels are
the 2x2x2 blocks of bottleneck voxels (16x16x2 = 512). For every bottleneck voxel ``i`` (label
``a``) and supervoxel ``j`` the network predicts ``R`` relation logits; the targets are
multi-label: relation ``r`` holds when it holds between ``a`` and the label ``b`` of at least one
known voxel of ``j``. With ``R = 4`` (MonoScene's ``n_relations: 4``), ``e`` the empty class:

- 0: ``a == b != e`` (both occupied, same class);
- 1: ``a != b``, both ``!= e`` (both occupied, different classes);
- 2: ``a == b == e`` (both empty);
- 3: ``a != b`` and one of them ``== e`` (occupied vs empty).

With ``R = 2`` (MonoScene's binary variant): 0: ``a != b``, 1: ``a == b``. A voxel whose own
label is unknown (255) has every relation 0 (it stays in the loss as a negative, as in
MonoScene). The labels at bottleneck resolution come from the full grid by SSCNet's rule, which
MonoScene's preprocessing applies (:func:`downsample_labels`). The loss is a BCE on the logits
with a per-relation positive weight ``n_neg / n_pos`` counted over the batch, averaged over all
entries (MonoScene's ``compute_super_CP_multilabel_loss``).

Memory: ``R * N * M`` entries per frame, ``N`` bottleneck voxels and ``M = N / 8`` supervoxels;
at MonoScene's (and occkit's ``kitti-mono``) 32x32x4 bottleneck that is 4 x 4096 x 512 = 8.4 M
(32 MiB of float32 logits per frame).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from occkit.shapes import check_shape


# ---------------------------------------------------------------------------- frustum proportions
def frustum_ids(uv: torch.Tensor, valid: torch.Tensor, image_hw: tuple[int, int], size: int) -> torch.Tensor:
    """Which local frustum each projected voxel centre lies in.

    Pixel ``(floor(u), floor(v))`` (pixel ``i`` covers ``[i, i + 1)``) belongs to column
    ``floor(u) * size // W`` and row ``floor(v) * size // H`` of the ``size x size`` split; the
    frustum id is ``row * size + column`` (rows outer, as MonoScene orders them).

    Args:
        uv: ``(..., 2)`` pixel coordinates (u right, v down) in an image of ``image_hw = (H, W)``.
        valid: ``(...)`` bool, the point is in front of the camera.
        size: ``l``; the image is split into ``l x l`` frusta.
    Returns:
        ``(...)`` long in ``[0, size**2)``, -1 where not valid or outside the image.
    """
    if uv.shape[-1] != 2 or uv.shape[:-1] != valid.shape:
        raise ValueError(f"uv: expected (..., 2) matching valid {tuple(valid.shape)}, got {tuple(uv.shape)}")
    if size < 1:
        raise ValueError(f"size: expected >= 1 frusta per side, got {size}")
    H, W = image_hw
    px, py = uv[..., 0].floor(), uv[..., 1].floor()
    inside = valid & (px >= 0) & (px < W) & (py >= 0) & (py < H)
    px, py = px.clamp(0, W - 1).long(), py.clamp(0, H - 1).long()
    ids = torch.div(py * size, H, rounding_mode="floor") * size + torch.div(px * size, W, rounding_mode="floor")
    return torch.where(inside, ids, torch.full_like(ids, -1))


def frustum_proportion_loss(
    logits: torch.Tensor, target: torch.Tensor, frustum: torch.Tensor, num_frusta: int, ignore_index: int = 255
) -> torch.Tensor:
    """MonoScene's frustum proportion loss (see the module docstring).

    Args:
        logits: ``(B, C, X, Y, Z)``; target: ``(B, X, Y, Z)`` long (``ignore_index`` unknown);
        frustum: ``(B, X, Y, Z)`` long frustum id per voxel (:func:`frustum_ids`), -1 = in none.
        num_frusta: ``l * l``.
    Returns:
        Scalar: the mean over frusta with a known voxel of ``KL(P_gt || Q_pred)``; 0 (connected to
        ``logits``) when no frustum has one.
    """
    d = check_shape(logits, "B C X Y Z", name="logits")
    check_shape(target, "B X Y Z", name="target", dims={k: d[k] for k in "BXYZ"})
    check_shape(frustum, "B X Y Z", name="frustum", dims={k: d[k] for k in "BXYZ"})
    C = d["C"]
    keep = (target != ignore_index) & (frustum >= 0) & (frustum < num_frusta)
    if not bool(keep.any()):
        return logits.sum() * 0
    labels = target[keep]
    if bool((labels < 0).any()) or bool((labels >= C).any()):
        raise ValueError(f"target: labels outside 0..{C - 1} (other than {ignore_index})")
    # the kept voxels as rows (K, C): their softmax only, not the full grid's
    return frustum_kl_rows(logits.movedim(1, -1)[keep].float().softmax(1), labels, frustum[keep], num_frusta)


def frustum_kl_rows(prob: torch.Tensor, labels: torch.Tensor, frustum: torch.Tensor, num_frusta: int) -> torch.Tensor:
    """:func:`frustum_proportion_loss` from voxels as rows: ``(K, C)`` probabilities, ``(K,)``
    labels and ``(K,)`` frustum ids (rows with an id outside ``0..num_frusta-1`` are left out)."""
    C = prob.shape[1]
    inside = (frustum >= 0) & (frustum < num_frusta)
    ids = torch.where(inside, frustum, torch.full_like(frustum, num_frusta))  # bucket F = left out
    pred = prob.new_zeros(num_frusta + 1, C).index_add_(0, ids, prob)[:num_frusta]  # (F, C) summed probabilities
    count = prob.new_zeros((num_frusta + 1) * C).index_add_(0, ids * C + labels, prob.new_ones(ids.numel()))
    count = count.view(num_frusta + 1, C)[:num_frusta]  # (F, C) label counts
    total = count.sum(1)  # (F,)
    used = total > 0
    if not bool(used.any()):
        return prob.sum() * 0
    p = count[used] / total[used, None]  # (F', C) ground-truth proportions
    q = pred[used] / pred[used].sum(1, keepdim=True)  # (F', C) mean predicted distribution
    present = p > 0
    kl = torch.where(present, p * (p.clamp(min=1e-30).log() - q.clamp(min=1e-30).log()), torch.zeros_like(p))
    return kl.sum() / int(used.sum())


# ---------------------------------------------------------------------------- context prior
def downsample_labels(
    target: torch.Tensor,
    factor: tuple[int, int, int],
    empty_index: int = 0,
    ignore_index: int = 255,
    num_classes: int | None = None,
    empty_fraction: float = 0.95,
) -> torch.Tensor:
    """Labels of a coarser grid by SSCNet's rule (MonoScene's ``_downsample_label``).

    Per block of ``fx * fy * fz`` voxels: with ``n_e`` empty and ``n_u`` unknown voxels, when
    ``n_e + n_u > empty_fraction * block`` the coarse label is empty if ``n_e > n_u``, else unknown;
    otherwise it is the most frequent of the other classes (the smallest class on a tie).

    Args:
        target: ``(B, X, Y, Z)`` long; factor: ``(fx, fy, fz)`` dividing ``X, Y, Z``.
        num_classes: classes other than ``ignore_index`` are ``0 .. num_classes - 1`` (default: the
            largest label + 1).
    Returns:
        ``(B, X / fx, Y / fy, Z / fz)`` long.
    """
    check_shape(target, "B X Y Z", name="target")
    fx, fy, fz = (int(f) for f in factor)
    B, X, Y, Z = target.shape
    if min(fx, fy, fz) < 1 or X % fx or Y % fy or Z % fz:
        raise ValueError(f"factor: {tuple(factor)} does not divide the grid {(X, Y, Z)}")
    blocks = target.long().view(B, X // fx, fx, Y // fy, fy, Z // fz, fz).permute(0, 1, 3, 5, 2, 4, 6)
    blocks = blocks.reshape(B, X // fx, Y // fy, Z // fz, fx * fy * fz)  # (B, X', Y', Z', f^3)
    known = blocks != ignore_index
    C = (
        int(num_classes)
        if num_classes is not None
        else int(blocks[known].max()) + 1
        if bool(known.any())
        else empty_index + 1
    )
    n_empty = (blocks == empty_index).sum(-1)
    n_unknown = (~known).sum(-1)
    best = torch.full(n_empty.shape, -1, dtype=torch.long, device=target.device)
    best_n = torch.zeros_like(n_empty)
    for c in range(C):  # C passes over the grid: no (voxels x classes) one-hot
        if c == empty_index:
            continue
        n = (blocks == c).sum(-1)
        better = n > best_n
        best = torch.where(better, torch.full_like(best, c), best)
        best_n = torch.where(better, n, best_n)
    mostly_empty = (n_empty + n_unknown).float() > empty_fraction * blocks.shape[-1]
    fallback = torch.where(n_empty > n_unknown, torch.full_like(best, empty_index), torch.full_like(best, ignore_index))
    # a block with no other class below the threshold cannot happen (it would be mostly empty)
    return torch.where(mostly_empty | (best < 0), fallback, best)


def relation_targets(
    labels: torch.Tensor,
    num_relations: int = 4,
    empty_index: int = 0,
    ignore_index: int = 255,
    num_classes: int | None = None,
) -> torch.Tensor:
    """MonoScene's context-prior relation matrices from labels at the bottleneck resolution.

    Args:
        labels: ``(B, X, Y, Z)`` long, ``X, Y, Z`` even (supervoxels are 2x2x2 blocks).
        num_relations: 4 (MonoScene's) or 2 (its binary variant); see the module docstring.
    Returns:
        ``(B, R, N, M)`` bool, ``N = X*Y*Z`` voxels in ``(x, y, z)`` row-major order, ``M =
        (X/2)(Y/2)(Z/2)`` supervoxels in the same order.
    """
    check_shape(labels, "B X Y Z", name="labels")
    if num_relations not in (2, 4):
        raise ValueError(f"num_relations: expected 2 or 4, got {num_relations}")
    B, X, Y, Z = labels.shape
    if X % 2 or Y % 2 or Z % 2:
        raise ValueError(f"labels: the grid {(X, Y, Z)} must be even on every axis (2x2x2 supervoxels)")
    lab = labels.long()
    known = lab != ignore_index
    C = (
        int(num_classes)
        if num_classes is not None
        else (int(lab[known].max()) + 1 if bool(known.any()) else empty_index + 1)
    )
    C = max(C, empty_index + 1)
    blocks = lab.view(B, X // 2, 2, Y // 2, 2, Z // 2, 2).permute(0, 1, 3, 5, 2, 4, 6).reshape(B, -1, 8)  # (B, M, 8)
    safe = torch.where(blocks == ignore_index, torch.full_like(blocks, C), blocks)
    present = torch.zeros(B, blocks.shape[1], C + 1, dtype=torch.bool, device=lab.device)
    present.scatter_(2, safe, True)
    present = present[..., :C]  # (B, M, C): class c among the known voxels of supervoxel m
    occupied = present.clone()
    occupied[..., empty_index] = False
    n_occ = occupied.sum(-1)  # (B, M) occupied classes present
    has_empty = present[..., empty_index]  # (B, M)
    a = lab.reshape(B, -1)  # (B, N)
    a_known = (a != ignore_index)[..., None]  # (B, N, 1)
    a_safe = torch.where(a == ignore_index, torch.full_like(a, empty_index), a)
    same = torch.gather(
        present.transpose(1, 2), 1, a_safe[..., None].expand(-1, -1, present.shape[1])
    )  # (B, N, M) b == a present
    a_empty = (a_safe == empty_index)[..., None]  # (B, N, 1)
    if num_relations == 2:
        n_known_classes = present.sum(-1)[:, None, :]  # (B, 1, M)
        diff = (n_known_classes - same.long()) > 0
        return torch.stack([diff & a_known, same & a_known], 1)
    rel0 = same & ~a_empty
    rel1 = ~a_empty & ((n_occ[:, None, :] - same.long()) > 0)
    rel2 = same & a_empty
    rel3 = (a_empty & (n_occ[:, None, :] > 0)) | (~a_empty & has_empty[:, None, :])
    return torch.stack([rel0, rel1, rel2, rel3], 1) & a_known[:, None]


def relation_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """MonoScene's relation loss: BCE with logits, positive weight ``n_neg / n_pos`` per relation
    (counted over the batch; 1 for a relation with no positive, where MonoScene's weight would
    be infinite), mean over every entry.

    Args:
        logits: ``(B, R, N, M)``; targets: ``(B, R, N, M)`` bool or 0/1 (:func:`relation_targets`).
    """
    d = check_shape(logits, "B R N M", name="logits")
    check_shape(targets, "B R N M", name="targets", dims=d)
    t = targets.to(torch.float32)
    n_pos = t.sum((0, 2, 3))  # (R,)
    n_neg = d["B"] * d["N"] * d["M"] - n_pos
    pos_weight = torch.where(n_pos > 0, n_neg / n_pos.clamp(min=1), torch.ones_like(n_pos))
    return F.binary_cross_entropy_with_logits(logits.float(), t, pos_weight=pos_weight.view(1, -1, 1, 1))
