"""Losses for rendered vision-language features (LangOcc, docs/methods.md §4).

LangOcc regresses a ray's rendered, L2-normalised feature ``f_hat`` onto the 2D
vision-language feature ``f`` of its pixel with a squared error weighted by how far apart the
two point, the weight being a constant of the step (stop-gradient)::

    L = mean over kept rays of  sg(2 (1 - cos(f_hat, f))) * sum_d (f_hat_d - f_d)^2

Rays whose termination weights are all zero (the ray leaves the grid without stopping: its
rendered feature is the zero vector, with no direction) are dropped. For unit vectors
``sum_d (f_hat_d - f_d)^2 = 2 (1 - cos)``, so the loss is ``sum sg(e) * e`` with ``e`` the
squared chord: rays already well aligned weigh less, rays far off weigh more (a focal-style
reweighting whose gradient is ``2 e grad(e)``, that of ``e^2``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from occkit.shapes import check_shape


def normalize_features(x: torch.Tensor, dim: int = -1, eps: float = 1e-8) -> torch.Tensor:
    """``x / max(||x||, eps)`` along ``dim`` (zero vectors stay zero)."""
    return x / x.norm(dim=dim, keepdim=True).clamp_min(eps)


def cosine_weighted_mse(
    pred: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor | None = None,
    detach_weight: bool = True,
) -> torch.Tensor:
    """LangOcc's feature loss ``mean_r sg(2 (1 - cos_r)) * ||pred_r - target_r||^2``.

    Args:
        pred: ``(R, D)`` rendered features, already L2-normalised (rays with no weight are zero).
        target: ``(R, D)`` 2D features at the rays' pixels, already L2-normalised.
        valid: ``(R,)`` bool, the rays kept (e.g. ``opacity > 0``); None = all.
        detach_weight: the weight ``2 (1 - cos)`` is a constant (the paper's reading); False lets
            gradients flow through it too (then the loss is ``e^2``).
    Returns:
        a scalar: the mean over kept rays; 0 connected to ``pred``'s graph when no ray is kept.
    """
    dims = check_shape(pred, "R D", name="pred")
    check_shape(target, "R D", name="target", dims=dims)
    if valid is not None:
        check_shape(valid, "R", name="valid", dims={"R": dims["R"]})
        if valid.dtype != torch.bool:
            raise TypeError(f"valid: expected a bool tensor, got {valid.dtype}")
    p, t = pred.float(), target.float()
    cos = F.cosine_similarity(p, t, dim=-1, eps=1e-8)  # (R,)
    weight = 2 * (1 - cos)
    if detach_weight:
        weight = weight.detach()
    per_ray = weight * (p - t).pow(2).sum(-1)  # (R,)
    if valid is not None:
        per_ray = per_ray[valid]
    if per_ray.numel() == 0:
        return pred.sum() * 0.0
    return per_ray.mean()
