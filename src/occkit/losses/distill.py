"""Distillation losses from a frozen teacher to a student (RadOcc, docs/methods.md §1).

Each function says which reading it is: the released code (zhanghm1995/OCC_Distill, branches
``zhm_nerf_S`` and ``zhm_cvpr``; its KL is mmdet 2.x's ``KnowledgeDistillationKLDivLoss``), the
paper's text, or occkit's own.

Rendered (along the same camera rays, :mod:`occkit.rendering`):

- :func:`rendered_depth_kl` — rendered depth consistency (RDC): per ray, the teacher's and the
  student's termination weights ``w`` as distributions over the samples,
  ``KL(softmax(w_T / tau) || softmax(w_S / tau)) * tau^2``, averaged over rays; the KL summed over
  the samples (``reduction='sum'``, occkit's: a proper KL) or averaged over them
  (``reduction='mean'``, the released code's: ``S`` times weaker). Released: weight 100, tau 10
  (mmdet's default) in the "all" configs, 1 in the depth-only ablation configs.
- :func:`rendered_raw_logit_kl` — rendered semantic consistency (RSC) as every released config
  has it: ``kl_div(log_softmax(rendered raw logits_S), softmax(rendered raw logits_T))``, reduction
  'mean' (divided by rays x classes); weight 1 or 10.
- :func:`segment_affinity_loss` — RSC as the paper's text describes it: rendered semantic
  features pooled per 2D segment into ``F (K, C)``, rows L2-normalised, affinity ``A = F F^T``,
  ``MSE(A_S, A_T)`` (no released config renders it).
- :func:`rendered_semantic_kl` — occkit's own RSC variant: KL between renormalised rendered class
  distributions, summed over classes, averaged over rays.

In 3D (the baselines RadOcc compares with):

- :func:`feature_l1` — masked L1 between voxel features (the student's through a learnt 1x1x1
  adapter when the widths differ): averaged over voxels and channels (occkit's), or summed over
  channels and divided by the masked voxels (the released code: mmdet's L1 with ``avg_factor``);
  weight 0.1;
- :func:`logit_kl` — KL between the voxel class distributions at a temperature: summed over the
  classes (a proper KL, occkit's) or averaged over them (the released code, mmdet's KD loss);
  released tau 10, weight 0.1.

All are pure functions: the teacher's tensors are targets (detached here), the student's
carry the gradients. Each returns a scalar.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from occkit.shapes import check_shape


def _kl_rows(log_p_student: torch.Tensor, p_teacher: torch.Tensor, log_p_teacher: torch.Tensor) -> torch.Tensor:
    """``sum_j p_T (log p_T - log p_S)`` per row: ``(..., K) -> (...)``."""
    return (p_teacher * (log_p_teacher - log_p_student)).sum(-1)


def _masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return x.mean() if x.numel() else x.sum() * 0.0
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp(min=1.0)


def _tempered_kl(
    student: torch.Tensor,
    teacher: torch.Tensor,
    dim: int,
    tau: float,
    mask: torch.Tensor | None,
    reduction: Literal["sum", "mean"],
) -> torch.Tensor:
    """``tau^2 * masked mean KL(softmax(teacher / tau) || softmax(student / tau))`` over axis
    ``dim`` (float32, no gradient into the teacher), the KL summed over that axis
    (``reduction='sum'``) or averaged (``'mean'``); the mask has the shape left without ``dim``."""
    if not tau > 0:
        raise ValueError(f"tau: expected > 0, got {tau}")
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction: expected 'sum' or 'mean', got {reduction!r}")
    s = torch.log_softmax(student.float() / tau, dim).movedim(dim, -1)
    t = teacher.detach().float() / tau
    kl = _kl_rows(s, torch.softmax(t, dim).movedim(dim, -1), torch.log_softmax(t, dim).movedim(dim, -1))
    if reduction == "mean":
        kl = kl / student.shape[dim]
    return _masked_mean(kl, mask) * tau**2


def rendered_depth_kl(
    weights_student: torch.Tensor,
    weights_teacher: torch.Tensor,
    tau: float = 1.0,
    mask: torch.Tensor | None = None,
    reduction: Literal["sum", "mean"] = "sum",
) -> torch.Tensor:
    """Rendered depth consistency: KL between termination distributions, per ray.

    ``tau^2 * mean_r KL(softmax(w_T[r] / tau) || softmax(w_S[r] / tau))`` over the rays ``r``
    (kept by ``mask``), the per-ray KL ``sum_i p_T,i (log p_T,i - log p_S,i)`` summed over the
    ``S`` samples (``reduction='sum'``: occkit's, a proper KL) or averaged over them
    (``reduction='mean'``, i.e. divided by ``S``: the released code's, mmdet's
    ``kl_div(..., reduction='none').mean(1) * T^2``). Every sample counts in the softmax, those of
    weight 0 too (outside the grid, past the box). Both renders must use the same samples along
    the same rays.

    Args:
        weights_student: ``(R, S)`` the student's termination weights ``w_i = T_i alpha_i``.
        weights_teacher: ``(R, S)`` the teacher's (no gradient flows into them).
        tau: temperature (> 0); released: 10 (mmdet's default) in the "all" configs, 1 in the
            depth-only ablation configs.
        mask: optional ``(R,)`` bool, the rays counted.
        reduction: over the samples of a ray, 'sum' (occkit's) or 'mean' (the released code's).
    Returns:
        scalar (0 when no ray is kept).
    """
    dims = check_shape(weights_student, "R S", name="weights_student")
    check_shape(weights_teacher, "R S", name="weights_teacher", dims=dims)
    if mask is not None:
        check_shape(mask, "R", name="mask", dims=dims)
    return _tempered_kl(weights_student, weights_teacher, -1, tau, mask, reduction)


def segment_pool(features: torch.Tensor, segments: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of ``features`` over the rays of each segment.

    Args:
        features: ``(R, C)``.
        segments: ``(R,)`` long segment ids; ids <= 0 belong to no segment.
    Returns:
        ``(K, C)`` the segments' mean features (in order of increasing id) and ``(K,)`` their ids.
    """
    dims = check_shape(features, "R C", name="features")
    check_shape(segments, "R", name="segments", dims=dims)
    keep = segments > 0
    ids, inverse = torch.unique(segments[keep], return_inverse=True)
    K = ids.numel()
    f = features[keep]
    sums = f.new_zeros(K, f.shape[1]).index_add(0, inverse, f)
    counts = f.new_zeros(K).index_add(0, inverse, torch.ones_like(inverse, dtype=f.dtype))
    return sums / counts[:, None].clamp(min=1.0), ids


def segment_affinity(features: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """``(K, K)`` cosine affinities between the segments' mean features (:func:`segment_pool`)."""
    pooled, _ = segment_pool(features, segments)
    pooled = F.normalize(pooled, dim=-1, eps=1e-8)
    return pooled @ pooled.T


def segment_affinity_loss(
    features_student: torch.Tensor,
    features_teacher: torch.Tensor,
    segments: torch.Tensor,
) -> torch.Tensor:
    """Segment-guided affinity distillation (the paper's text's rendered semantic consistency;
    no released config renders it).

    Features of the rays of each 2D segment are averaged, ``F (K, C)``; rows L2-normalised; the
    affinities ``A = F F^T`` of teacher and student are compared by mean squared error over the
    ``K x K`` entries.

    Args:
        features_student, features_teacher: ``(R, C)`` rendered semantic features of the same rays
            (the teacher's get no gradient).
        segments: ``(R,)`` long, each ray's segment id (unique across cameras); <= 0 = none.
    Returns:
        scalar; 0 with fewer than two segments.
    """
    dims = check_shape(features_student, "R C", name="features_student")
    check_shape(features_teacher, "R C", name="features_teacher", dims=dims)
    check_shape(segments, "R", name="segments", dims={"R": dims["R"]})
    a_s = segment_affinity(features_student.float(), segments)
    if a_s.shape[0] < 2:
        return features_student.sum() * 0.0
    with torch.no_grad():
        a_t = segment_affinity(features_teacher.detach().float(), segments)
    return F.mse_loss(a_s, a_t)


def rendered_raw_logit_kl(
    logits_student: torch.Tensor,
    logits_teacher: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """KL between softmaxes of rendered raw logits (the released code's semantic consistency).

    The released code renders the 17 non-free raw logits as ``sum_i w_i l_i`` (no softmax per
    sample) and compares the rays with ``F.kl_div(log_softmax(l_S), softmax(l_T))`` at
    reduction 'mean': ``sum_r sum_c p_T (log p_T - log p_S) / (R * C)``, i.e. the per-ray KL
    averaged over rays *and divided by the number of classes* ``C``.

    Args:
        logits_student, logits_teacher: ``(R, C)`` rendered raw logits (the teacher's get no
            gradient).
        mask: optional ``(R,)`` bool, the rays counted (the divisor is then kept rays x ``C``).
    Returns:
        scalar (0 when no ray is kept).
    """
    dims = check_shape(logits_student, "R C", name="logits_student")
    check_shape(logits_teacher, "R C", name="logits_teacher", dims=dims)
    if mask is not None:
        check_shape(mask, "R", name="mask", dims={"R": dims["R"]})
    t = logits_teacher.detach().float()
    kl = _kl_rows(torch.log_softmax(logits_student.float(), -1), torch.softmax(t, -1), torch.log_softmax(t, -1))  # (R,)
    return _masked_mean(kl, mask) / dims["C"]


def rendered_semantic_kl(
    probs_student: torch.Tensor,
    probs_teacher: torch.Tensor,
    mask: torch.Tensor | None = None,
    eps: float = 1e-6,
) -> torch.Tensor:
    """KL between rendered class distributions (occkit's own semantic consistency; the released
    code's is :func:`rendered_raw_logit_kl`).

    Rendered class probabilities ``sum_i w_i p_i`` sum to the ray's opacity, not to 1: each row is
    renormalised (``p / sum p``, ``eps`` added) before ``KL(p_T || p_S)``, averaged over rays.

    Args:
        probs_student, probs_teacher: ``(R, C)`` non-negative rendered class probabilities.
        mask: optional ``(R,)`` bool, the rays counted.
    Returns:
        scalar.
    """
    dims = check_shape(probs_student, "R C", name="probs_student")
    check_shape(probs_teacher, "R C", name="probs_teacher", dims=dims)
    if mask is not None:
        check_shape(mask, "R", name="mask", dims={"R": dims["R"]})
    ps = probs_student.float().clamp(min=0) + eps
    pt = probs_teacher.detach().float().clamp(min=0) + eps
    ps = ps / ps.sum(-1, keepdim=True)
    pt = pt / pt.sum(-1, keepdim=True)
    return _masked_mean(_kl_rows(ps.log(), pt, pt.log()), mask)


def feature_l1(
    features_student: torch.Tensor,
    features_teacher: torch.Tensor,
    mask: torch.Tensor | None = None,
    reduction: Literal["mean", "sum_channels"] = "mean",
) -> torch.Tensor:
    """Masked L1 between voxel features (3D feature distillation).

    Args:
        features_student: ``(B, C, X, Y, Z)`` (already through the width adapter if any).
        features_teacher: ``(B, C, X, Y, Z)``, no gradient.
        mask: optional ``(B, X, Y, Z)`` bool, the voxels counted.
        reduction: 'mean' (occkit's): the mean over kept voxels and channels of ``|f_S - f_T|``;
            'sum_channels' (the released code's: mmdet's L1 with ``avg_factor`` = the masked
            voxels): the sum over channels and kept voxels divided by the kept voxels, ``C``
            times the 'mean'.
    Returns:
        scalar.
    """
    dims = check_shape(features_student, "B C X Y Z", name="features_student")
    check_shape(features_teacher, "B C X Y Z", name="features_teacher", dims=dims)
    if reduction not in ("mean", "sum_channels"):
        raise ValueError(f"reduction: expected 'mean' or 'sum_channels', got {reduction!r}")
    d = (features_student.float() - features_teacher.detach().float()).abs()
    d = d.mean(1) if reduction == "mean" else d.sum(1)  # (B, X, Y, Z)
    if mask is not None:
        check_shape(mask, "B X Y Z", name="mask", dims={k: dims[k] for k in "BXYZ"})
    return _masked_mean(d, mask)


def logit_kl(
    logits_student: torch.Tensor,
    logits_teacher: torch.Tensor,
    tau: float = 1.0,
    mask: torch.Tensor | None = None,
    reduction: Literal["sum", "mean"] = "sum",
) -> torch.Tensor:
    """3D logit distillation: ``tau^2 * mean_v KL(softmax(l_T / tau) || softmax(l_S / tau))``.

    Args:
        logits_student, logits_teacher: ``(B, C, X, Y, Z)``.
        tau: temperature (> 0); released: 10.
        mask: optional ``(B, X, Y, Z)`` bool, the voxels counted.
        reduction: over the classes of a voxel, 'sum' (occkit's: a proper KL) or 'mean' (the
            released code's, mmdet's KD loss ``kl_div(..., 'none').mean(1)``: divided by ``C``).
    Returns:
        scalar.
    """
    dims = check_shape(logits_student, "B C X Y Z", name="logits_student")
    check_shape(logits_teacher, "B C X Y Z", name="logits_teacher", dims=dims)
    if mask is not None:
        check_shape(mask, "B X Y Z", name="mask", dims={k: dims[k] for k in "BXYZ"})
    return _tempered_kl(logits_student, logits_teacher, 1, tau, mask, reduction)
