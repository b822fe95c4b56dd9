"""Confusion matrices over voxels (torch, any device) and the cross-process sum of counts.

A confusion matrix here is ``(C, C)`` int64 counts. Occ3D puts the ground truth on the rows;
the SemanticKITTI API puts the prediction on the rows: each metric module says which.
"""

from __future__ import annotations

import torch


def confusion_matrix(
    gt: torch.Tensor,
    pred: torch.Tensor,
    num_classes: int,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Counts of (ground truth, prediction) pairs over the voxels where ``mask`` is true.

    Args:
        gt: ``(...)`` integer class ids in ``[0, num_classes)`` (any integer dtype).
        pred: ``(...)`` integer class ids, same shape as ``gt``.
        num_classes: ``C``.
        mask: optional ``(...)`` bool (or 0/1 integer) selecting the voxels to count.
    Returns:
        ``(C, C)`` int64 on ``gt``'s device, rows = ground truth, columns = prediction.

    One ``bincount`` over ``C * gt + pred``: the index is built in int16 when it fits (half the
    memory traffic of int64), and masked-out voxels go to an extra bin that is dropped, so no
    boolean gather copies the data first. Values outside ``[0, C)`` raise.
    """
    if gt.shape != pred.shape:
        raise ValueError(f"pred: shape {tuple(pred.shape)} differs from gt {tuple(gt.shape)}")
    if gt.is_floating_point() or pred.is_floating_point():
        raise TypeError(f"gt and pred must be integer class ids, got {gt.dtype} and {pred.dtype}")
    if mask is not None and mask.shape != gt.shape:
        raise ValueError(f"mask: shape {tuple(mask.shape)} differs from gt {tuple(gt.shape)}")
    C = int(num_classes)
    pred = pred.to(gt.device)
    work = torch.int16 if C * C + 1 <= torch.iinfo(torch.int16).max else torch.int64
    g = gt.reshape(-1)
    p = pred.reshape(-1)
    if g.numel():
        lo = min(int(g.min()), int(p.min()))
        hi = max(int(g.max()), int(p.max()))
        if lo < 0 or hi >= C:
            raise ValueError(f"class ids must lie in [0, {C}), got values in [{lo}, {hi}]")
    idx = g.to(work) * C + p.to(work)  # (N,)
    if mask is not None:
        m = mask.reshape(-1).to(device=gt.device, dtype=torch.bool)
        idx = torch.where(m, idx, torch.full_like(idx, C * C))
    counts = torch.bincount(idx, minlength=C * C + 1)[: C * C]
    return counts.view(C, C).to(torch.int64)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` in place across ``torch.distributed`` processes when a process group is
    initialised; return it unchanged otherwise. The tensor must be on the device the backend
    expects (CUDA for NCCL)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t
