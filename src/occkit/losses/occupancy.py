"""Voxel losses: class-weighted cross-entropy and Lovász-softmax, both with an optional mask.

Voxels are kept where ``mask`` is true (e.g. Occ3D's camera mask) and the target differs from
``ignore_index``. All functions are pure and differentiable in ``logits`` / ``probs``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from occkit.shapes import check_shape


def _masked_target(
    target: torch.Tensor, mask: torch.Tensor | None, ignore_index: int, num_classes: int
) -> torch.Tensor:
    if target.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"target: expected integer class ids, got dtype {target.dtype}")
    target = target.long()
    # fast path: two reductions; the exact test only when something lies outside [0, C)
    if (
        target.numel()
        and (int(target.min()) < 0 or int(target.max()) >= num_classes)
        and bool(((target != ignore_index) & ((target < 0) | (target >= num_classes))).any())
    ):
        raise ValueError(f"target: class ids must lie in [0, {num_classes}) or equal ignore_index={ignore_index}")
    if mask is not None:
        if mask.dtype != torch.bool:
            raise ValueError(f"mask: expected bool, got dtype {mask.dtype}")
        target = torch.where(mask, target, torch.full_like(target, ignore_index))
    return target


def _kept_voxels(
    logits: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None,
    ignore_index: int,
    max_voxels: int | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``(P, C)`` and labels ``(P,)`` of the kept voxels of ``(B, C, X, Y, Z)`` logits (at
    most ``max_voxels``, a uniform random subset, when more are kept)."""
    C = logits.shape[1]
    t = _masked_target(target, mask, ignore_index, C).reshape(-1)  # (B*X*Y*Z,)
    keep = (t != ignore_index).nonzero().squeeze(1)  # (P,) flat indices into (B, X*Y*Z)
    if max_voxels is not None and keep.numel() > max_voxels:
        pick = torch.randperm(keep.numel(), generator=generator, device="cpu")[:max_voxels]
        keep = keep[pick.to(keep.device)]
    # Gather the kept voxels' logits only, so later work (softmax, sorting) runs on them alone. As
    # rows of a (voxels, C) view: free for channels-last logits (NDHWC), one copy otherwise.
    rows = logits.movedim(1, -1).reshape(-1, C)  # (B*X*Y*Z, C)
    return rows.index_select(0, keep), t[keep]


def voxel_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    ignore_index: int = 255,
) -> torch.Tensor:
    """Class-weighted cross-entropy over kept voxels.

    ``sum_i w[t_i] * -log softmax(logits_i)[t_i] / sum_i w[t_i]`` over kept voxels ``i``
    (PyTorch's weighted mean); 0 (still differentiable) when no voxel is kept.

    Args:
        logits: ``(B, C, X, Y, Z)``.
        target: ``(B, X, Y, Z)`` integer class ids.
        mask: ``(B, X, Y, Z)`` bool, voxels to keep; None keeps all.
        weight: ``(C,)`` class weights; None = all 1.
        ignore_index: target value that is never counted.
    Returns:
        scalar tensor.
    """
    dims = check_shape(logits, "B C X Y Z", name="logits")
    check_shape(target, "B X Y Z", name="target", dims={k: dims[k] for k in "BXYZ"})
    if mask is not None:
        check_shape(mask, "B X Y Z", name="mask", dims={k: dims[k] for k in "BXYZ"})
    if weight is not None:
        check_shape(weight, "C", name="weight", dims={"C": dims["C"]})
        weight = weight.to(logits.device)
    kept_logits, tk = _kept_voxels(logits, target, mask, ignore_index)  # (P, C), (P,)
    if tk.numel() == 0:
        return logits.sum() * 0.0
    # On the kept voxels alone (a third of Occ3D's grid lies outside the camera mask), in float32.
    with torch.autocast(device_type=logits.device.type, enabled=False):
        return F.cross_entropy(kept_logits.float(), tk, weight=None if weight is None else weight.float())


def geometry_semantic_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    *,
    free: int,
    occupied_weight: float = 1.0,
    ignore_index: int = 255,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy factored into geometry (free or occupied) and semantics (which class, given
    occupied), on the same ``C``-way logits.

    The softmax over ``C`` classes factors as ``p(free)`` and ``p(c) = p(occ) * p(c | occ)`` with
    ``p(c | occ)`` the softmax over the non-free classes. Over the kept voxels:

    - ``loss_geo``: binary cross-entropy of ``p(occ)``, a weighted mean with weight
      ``occupied_weight`` on occupied voxels and 1 on free ones;
    - ``loss_sem``: ``-log p(t | occ)`` over the kept occupied voxels, class-weighted mean with
      ``weight[t]``.

    The plain weighted cross-entropy lets rare-class weights (tens of times a free voxel's) also
    decide *whether* a voxel is occupied: the network then grows every uncertain object into the
    free space around it. Here the class weights only decide *which* class an occupied voxel is.

    Args:
        logits: ``(B, C, X, Y, Z)``; target ``(B, X, Y, Z)`` integer ids; mask ``(B, X, Y, Z)``
            bool or None.
        weight: ``(C,)`` class weights of the semantic term (``weight[free]`` unused);
            None = all 1.
        free: the free class (negative counts from the end; Occ3D: 17 or -1).
        occupied_weight: weight of an occupied voxel in the geometry term (> 0).
    Returns:
        ``(loss_geo, loss_sem)``, scalars; each 0 (still differentiable) when it has no voxel.
    """
    dims = check_shape(logits, "B C X Y Z", name="logits")
    check_shape(target, "B X Y Z", name="target", dims={k: dims[k] for k in "BXYZ"})
    if mask is not None:
        check_shape(mask, "B X Y Z", name="mask", dims={k: dims[k] for k in "BXYZ"})
    C = dims["C"]
    if not -C <= free < C:
        raise ValueError(f"free: {free} is not a class of {C}")
    free %= C
    if not occupied_weight > 0:
        raise ValueError(f"occupied_weight: expected > 0, got {occupied_weight}")
    if weight is not None:
        check_shape(weight, "C", name="weight", dims={"C": C})
    kept_logits, tk = _kept_voxels(logits, target, mask, ignore_index)
    if tk.numel() == 0:
        zero = logits.sum() * 0.0
        return zero, zero
    with torch.autocast(device_type=logits.device.type, enabled=False):
        z = kept_logits.float()  # (P, C)
        occ_cols = torch.tensor([c for c in range(C) if c != free], device=z.device)
        z_occ = z.index_select(1, occ_cols)  # (P, C-1)
        lse_all = z.logsumexp(1)
        lse_occ = z_occ.logsumexp(1)
        is_occ = tk != free
        # geometry: -log p(occ) or -log p(free)
        nll_geo = torch.where(is_occ, lse_all - lse_occ, lse_all - z[:, free])
        w_geo = torch.where(is_occ, torch.full_like(nll_geo, float(occupied_weight)), torch.ones_like(nll_geo))
        loss_geo = (w_geo * nll_geo).sum() / w_geo.sum()
        if not bool(is_occ.any()):
            return loss_geo, z.sum() * 0.0
        zo, to = z[is_occ], tk[is_occ]
        nll_sem = lse_occ[is_occ] - zo.gather(1, to[:, None]).squeeze(1)  # -log p(t | occ)
        w_sem = weight.to(z.device, torch.float32)[to] if weight is not None else torch.ones_like(nll_sem)
        loss_sem = (w_sem * nll_sem).sum() / w_sem.sum().clamp_min(1e-12)
    return loss_geo, loss_sem


def lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovász extension of the Jaccard loss for errors sorted in decreasing order.

    With ``g`` the ground-truth indicator in that order, ``G = sum g``,
    ``J_k = 1 - (G - cumsum(g)_k) / (G + cumsum(1 - g)_k)`` (the Jaccard loss of predicting the
    first ``k`` as wrong) and the result is ``J_1, J_2 - J_1, ..., J_P - J_{P-1}``.

    Args:
        gt_sorted: ``(P,)`` float 0/1.
    Returns:
        ``(P,)``.
    """
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.cumsum(0)
    union = gts + (1.0 - gt_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    if jaccard.numel() > 1:
        jaccard = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
    return jaccard


def lovasz_softmax_flat(probs: torch.Tensor, labels: torch.Tensor, classes: str = "present") -> torch.Tensor:
    """Lovász-softmax (Berman et al., CVPR 2018) on flat inputs.

    For each class ``c``: errors ``e_i = |[y_i = c] - p_i(c)|`` sorted decreasingly, loss
    ``<e_sorted, lovasz_grad(gt_sorted)>``; averaged over classes present in ``labels``
    (``classes="present"``) or all classes (``"all"``).

    Args:
        probs: ``(P, C)`` class probabilities.
        labels: ``(P,)`` class ids in ``[0, C)``.
    Returns:
        scalar; 0 when ``P == 0`` or no class is present.
    """
    check_shape(probs, "P C", name="probs")
    check_shape(labels, "P", name="labels", dims={"P": probs.shape[0]})
    if classes not in ("present", "all"):
        raise ValueError(f"classes: expected 'present' or 'all', got {classes!r}")
    C = probs.shape[1]
    if probs.shape[0] == 0:
        return probs.sum() * 0.0
    # Work class-major, (C, P): sorting along the last, contiguous axis is much faster on CPU.
    fg = F.one_hot(labels.long(), C).t().to(probs.dtype)  # (C, P)
    errors = (fg - probs.t()).abs()  # (C, P)
    errors_sorted, perm = errors.sort(1, descending=True)  # (C, P)
    fg_sorted = fg.gather(1, perm)  # (C, P)
    gts = fg_sorted.sum(1, keepdim=True)  # (C, 1)
    intersection = gts - fg_sorted.cumsum(1)
    union = gts + (1.0 - fg_sorted).cumsum(1)
    jaccard = 1.0 - intersection / union  # (C, P)
    grad = torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], 1)  # lovasz_grad per row
    per_class = (errors_sorted * grad).sum(1)  # (C,)
    if classes == "present":
        present = fg.sum(1) > 0
        # no host branch on "any class present" (a device wait); the index waits once for its size
        return torch.where(present.any(), per_class[present].mean(), probs.sum() * 0.0)
    return per_class.mean()


def lovasz_softmax(
    logits: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    ignore_index: int = 255,
    classes: str = "present",
    max_voxels: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Lovász-softmax over the kept voxels of the whole batch (softmax over ``C`` taken here).

    Args:
        logits: ``(B, C, X, Y, Z)``; target ``(B, X, Y, Z)``; mask ``(B, X, Y, Z)`` bool or None.
        max_voxels: when more voxels are kept, use a uniform random subset of this many (the
            sort is the cost; Jaccard ratios are estimated well by a random subset). None = all.
        generator: for that subset (None: PyTorch's default generator).
    Returns:
        scalar.
    """
    dims = check_shape(logits, "B C X Y Z", name="logits")
    check_shape(target, "B X Y Z", name="target", dims={k: dims[k] for k in "BXYZ"})
    if mask is not None:
        check_shape(mask, "B X Y Z", name="mask", dims={k: dims[k] for k in "BXYZ"})
    if max_voxels is not None and max_voxels < 1:
        raise ValueError(f"max_voxels: expected a positive integer or None, got {max_voxels}")
    kept_logits, labels = _kept_voxels(logits, target, mask, ignore_index, max_voxels, generator)  # (P, C), (P,)
    # float32 even under autocast: the cumulative sums below count up to P voxels.
    with torch.autocast(device_type=logits.device.type, enabled=False):
        probs = kept_logits.float().softmax(1)
        return lovasz_softmax_flat(probs, labels, classes=classes)


def class_weights_from_counts(counts: torch.Tensor, c: float = 1.02) -> torch.Tensor:
    """Log-inverse class weights ``w_k = 1 / log(c + f_k)`` (ENet) with ``f_k = n_k / sum n``,
    rescaled to mean 1 over classes.

    Args:
        counts: ``(C,)`` non-negative voxel counts per class (e.g. from ``occkit stats``).
        c: the offset > 1 that bounds the largest weight at ``1 / log(c)``.
    Returns:
        ``(C,)`` float32.
    """
    check_shape(counts, "C", name="counts")
    counts = counts.double()
    if c <= 1:
        raise ValueError(f"c: must be > 1, got {c}")
    if bool((counts < 0).any()) or not bool(torch.isfinite(counts).all()) or float(counts.sum()) <= 0:
        raise ValueError("counts: expected finite non-negative counts with a positive sum")
    f = counts / counts.sum()
    w = 1.0 / torch.log(c + f)
    return (w / w.mean()).float()
