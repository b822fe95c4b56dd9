"""Losses on rendered rays: semantics, depth, and regularisers of the termination distribution.

All are pure functions returning a scalar mean over the rays that count (0 with a graph when no
ray counts, so a training step never divides by zero or loses its graph).
"""

from __future__ import annotations

import torch

from occkit.shapes import check_shape


def _masked_mean(x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    if valid is None:
        return x.mean() if x.numel() else x.sum()
    n = valid.sum()
    return (x * valid).sum() / n.clamp(min=1)


def rendered_semantic_loss(
    probs: torch.Tensor,
    target: torch.Tensor,
    *,
    ignore_index: int | None,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Cross-entropy of rendered class probabilities against per-pixel labels.

    The rendered ``probs = sum_i w_i p_i`` sum to the ray's opacity; they are normalised to a
    distribution first: ``loss = -log(probs[y] / sum_c probs[c])``, averaged over rays whose
    label is not ``ignore_index`` (a ray's label that says nothing of the classes, e.g. the free class
    where the labels call the sky so; None: every ray counts).

    Args:
        probs: ``(R, C)`` rendered probabilities (non-negative).
        target: ``(R,)`` long class ids in ``[0, C)`` or ``ignore_index``.
    """
    dims = check_shape(probs, "R C", name="probs")
    check_shape(target, "R", name="target", dims=dims)
    valid = target != ignore_index if ignore_index is not None else torch.ones_like(target, dtype=torch.bool)
    t = torch.where(valid, target, torch.zeros_like(target)).long()
    if bool(((t < 0) | (t >= dims["C"])).any()):
        raise ValueError(f"target: class ids must lie in [0, {dims['C']}) or be {ignore_index}")
    p = probs / probs.sum(-1, keepdim=True).clamp(min=eps)
    nll = -torch.log(p.gather(1, t[:, None])[:, 0].clamp(min=eps))
    return _masked_mean(nll, valid)


def silog_loss(
    pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None, lam: float = 0.85, eps: float = 1e-3
) -> torch.Tensor:
    """Scale-invariant log depth loss (Eigen et al., 2014, with variance focus ``lam``).

    ``g = log(pred) - log(target)`` over valid rays; ``loss = sqrt(mean(g^2) - lam * mean(g)^2)``.
    ``lam = 0`` is plain log-RMSE; ``lam = 1`` fully scale invariant.

    Args:
        pred, target: ``(R,)`` depths in metres (``pred`` clamped to ``eps`` before the log).
        valid: ``(R,)`` bool; default ``target > 0`` (0 = no depth).
    """
    dims = check_shape(pred, "R", name="pred")
    check_shape(target, "R", name="target", dims=dims)
    if not 0 <= lam <= 1:
        raise ValueError(f"lam: expected a value in [0, 1], got {lam}")
    valid = (target > 0) if valid is None else valid & (target > 0)
    n = valid.sum().clamp(min=1)
    g = (torch.log(pred.clamp(min=eps)) - torch.log(target.clamp(min=eps))) * valid
    mean = g.sum() / n
    var = (g * g).sum() / n - lam * mean * mean
    return torch.sqrt(var.clamp(min=0) + 1e-12) if bool(valid.any()) else pred.sum() * 0


def l1_depth_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Mean ``|pred - target|`` over valid rays (default ``target > 0``), metres.

    Args:
        pred, target: ``(R,)``; valid: optional ``(R,)`` bool.
    """
    dims = check_shape(pred, "R", name="pred")
    check_shape(target, "R", name="target", dims=dims)
    valid = (target > 0) if valid is None else valid & (target > 0)
    return _masked_mean((pred - target).abs(), valid)


def termination_loss(
    weights: torch.Tensor,
    t: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor | None = None,
    window: float = 0.4,
    eps: float = 1e-4,
) -> torch.Tensor:
    """Negative log-probability that each ray terminates within ``window`` of its true depth.

    ``loss = -log(eps + sum_{i : |t_i - t*| <= window} w_i)``, mean over valid rays: a depth
    likelihood under the termination distribution (as DS-NeRF's ray-distribution loss). Unlike a
    loss on the expected depth it cannot be met by a diffuse fog whose mean happens to match:
    the mass must sit at the surface, so the space before it must be clear.

    Args:
        weights: ``(R, S)`` termination weights; t: ``(R, S)`` their sample distances.
        target: ``(R,)`` true distances along the rays (metres; 0 = none).
        valid: ``(R,)`` bool (default ``target > 0``).
        window: half-width of the accepted band, metres (e.g. one voxel).
    """
    dims = check_shape(weights, "R S", name="weights")
    check_shape(t, "R S", name="t", dims=dims)
    check_shape(target, "R", name="target", dims=dims)
    if not window > 0:
        raise ValueError(f"window: expected a positive length, got {window}")
    valid = (target > 0) if valid is None else valid & (target > 0)
    near = (t - target[:, None]).abs() <= window
    p = torch.where(valid, (weights * near).sum(-1) + eps, torch.ones_like(target))
    return _masked_mean(-torch.log(p), valid)


def distortion_loss(
    weights: torch.Tensor, t_starts: torch.Tensor, t_ends: torch.Tensor, scale: float | torch.Tensor = 1.0
) -> torch.Tensor:
    """Mip-NeRF 360 distortion loss, mean over rays.

    With interval midpoints ``m_i`` and lengths ``d_i`` (distances divided by ``scale``, e.g. the
    ray's span, so the loss does not grow with scene size)::

        L = sum_{i,j} w_i w_j |m_i - m_j| + 1/3 sum_i w_i^2 d_i

    computed in O(S) for sorted intervals: the double sum is
    ``2 sum_i w_i (m_i W_{<i} - (wm)_{<i})`` with exclusive prefix sums ``W``, ``(wm)``.

    Args:
        weights, t_starts, t_ends: ``(R, S)``, intervals sorted along each ray.
        scale: scalar or ``(R,)`` divisor of distances.
    """
    dims = check_shape(weights, "R S", name="weights")
    check_shape(t_starts, "R S", name="t_starts", dims=dims)
    check_shape(t_ends, "R S", name="t_ends", dims=dims)
    s = torch.as_tensor(scale, dtype=weights.dtype, device=weights.device)
    s = s[:, None] if s.dim() == 1 else s
    m = 0.5 * (t_starts + t_ends) / s
    d = (t_ends - t_starts) / s
    wm = weights * m
    w_before = torch.cumsum(weights, -1) - weights
    wm_before = torch.cumsum(wm, -1) - wm
    inter = 2 * (weights * (m * w_before - wm_before)).sum(-1)
    intra = (weights * weights * d).sum(-1) / 3
    return (inter + intra).mean() if dims["R"] else weights.sum() * 0


def weight_entropy_loss(weights: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Entropy of each ray's termination distribution, normalised to sum 1, mean over rays:
    ``-sum_i p_i log p_i`` with ``p = w / sum w``. Low when each ray stops at one place.

    Args:
        weights: ``(R, S)``.
    """
    check_shape(weights, "R S", name="weights")
    p = weights / weights.sum(-1, keepdim=True).clamp(min=eps)
    h = -(p * torch.log(p.clamp(min=eps))).sum(-1)
    return h.mean() if h.numel() else weights.sum() * 0


def opacity_entropy_loss(opacity: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Binary entropy of each ray's opacity, mean over rays: pushes every ray to be either
    stopped inside the grid (1) or clear (0).

    Args:
        opacity: ``(R,)`` in [0, 1].
    """
    check_shape(opacity, "R", name="opacity")
    o = opacity.clamp(eps, 1 - eps)
    h = -(o * torch.log(o) + (1 - o) * torch.log(1 - o))
    return h.mean() if h.numel() else opacity.sum() * 0
