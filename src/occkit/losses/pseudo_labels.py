"""Losses on 3D pseudo-labels (EasyOcc, docs/methods.md §2): class-balanced voxel cross-entropy whose
class weights come from the pseudo-label counts seen so far.

Pure functions: the caller keeps the counts (a buffer of its method) and passes them in.
"""

from __future__ import annotations

import torch

from occkit.losses.occupancy import class_weights_from_counts, voxel_cross_entropy
from occkit.shapes import check_shape


def count_labels(
    target: torch.Tensor, mask: torch.Tensor | None, num_classes: int, ignore_index: int = 255
) -> torch.Tensor:
    """Voxels per class among the kept voxels.

    Args:
        target: ``(B, X, Y, Z)`` integer class ids (``ignore_index`` not counted).
        mask: ``(B, X, Y, Z)`` bool voxels to count, or None for all.
    Returns:
        ``(num_classes,)`` float64 counts.
    """
    t = target.long()
    keep = t != ignore_index
    if mask is not None:
        check_shape(mask, "B X Y Z", name="mask", dims=dict(zip("BXYZ", t.shape)))
        keep &= mask.bool()
    t = t[keep]
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_classes):
        raise ValueError(f"target: class ids must lie in [0, {num_classes}) or equal ignore_index={ignore_index}")
    return torch.bincount(t, minlength=num_classes).double()


def balanced_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None,
    counts: torch.Tensor | None,
    offset: float = 1.05,
    ignore_index: int = 255,
) -> torch.Tensor:
    """Cross-entropy over the kept voxels weighted by ENet's log-inverse class frequencies
    ``w_k = 1 / log(offset + n_k / sum n)`` (rescaled to mean 1) of ``counts``; uniform when
    ``counts`` is None or all zero.

    Args:
        logits: ``(B, C, X, Y, Z)``; target: ``(B, X, Y, Z)``; mask: ``(B, X, Y, Z)`` bool or None.
        counts: ``(C,)`` non-negative class counts.
    Returns:
        scalar: ``sum_i w[t_i] * -log softmax(logits_i)[t_i] / sum_i w[t_i]``.
    """
    weight = None
    if counts is not None and counts.device.type != "cpu":
        # a running tally kept on the accelerator (easyocc's class_balance: running): no wait for the
        # device on "any counted yet"; torch.where takes uniform weights while the sum is 0
        check_shape(counts, "C", name="counts", dims={"C": logits.shape[1]})
        if offset <= 1:
            raise ValueError(f"offset: must be > 1, got {offset}")
        d = counts.double()
        w = 1.0 / torch.log(offset + d / d.sum())
        weight = torch.where(d.sum() > 0, w / w.mean(), torch.ones_like(w)).float().to(logits.device)
    elif counts is not None and float(counts.sum()) > 0:
        check_shape(counts, "C", name="counts", dims={"C": logits.shape[1]})
        weight = class_weights_from_counts(counts, offset).to(logits.device)
    return voxel_cross_entropy(logits, target, None if mask is None else mask.bool(), weight, ignore_index)
