"""Differentiable volume rendering of fields and voxel grids (docs/design.md §1).

Along a ray, samples ``i = 0 .. S-1`` are intervals of length ``delta_i`` evaluated at ``t_i``
(see :mod:`occkit.rendering.sampling`), with density ``sigma_i >= 0`` (per metre) and optional
values ``v_i`` (semantic probabilities, logits, any feature vector)::

    tau_i   = sigma_i * delta_i                       optical thickness of the interval
    alpha_i = 1 - exp(-tau_i)                         probability the ray stops inside it
    T_i     = prod_{j<i} (1 - alpha_j) = exp(-sum_{j<i} tau_j)   transmittance before it
    w_i     = T_i * alpha_i                           termination distribution (sum_i w_i <= 1)
    depth   = sum_i w_i t_i,   opacity = sum_i w_i,   values = sum_i w_i v_i

The transmittance is computed in log space from the thicknesses (an exclusive cumulative sum),
which is exact and stable also where ``alpha = 1``. Everything is plain torch: differentiable
with respect to the density and the values, on any device and dtype.

Occupancy logits ``(..., 18, X, Y, Z)`` with class 17 = free become a density by
:func:`density_from_logits`: ``sigma = -log p(free) / voxel`` (equivalently ``softplus`` of the
occupied-vs-free logit ``log sum_{c != free} exp l_c - l_free``, divided by a voxel length). A
ray crossing a whole voxel of length ``voxel`` then stops there with probability
``alpha = 1 - p(free) = p(occupied)``, the same probability the 3D cross-entropy trains: 2D and
3D supervision act on one consistent quantity, and no separate density head is needed (RenderOcc
adds one; a separate head could still be passed as a density here). Semantics are rendered from
the class distribution conditioned on "occupied": ``softmax`` over the 17 non-free logits
(:func:`semantic_probs_from_logits`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
import torch.utils.checkpoint

from occkit.geometry.grid import Grid
from occkit.rendering.sampling import RaySamples, importance_samples, ray_box, uniform_samples
from occkit.shapes import check_shape

#: A field maps points ``(P, 3)`` to densities ``(P,)`` and values ``(P, C)`` (or ``None``).
Field = Callable[[torch.Tensor], tuple[torch.Tensor, "torch.Tensor | None"]]


# ----------------------------------------------------------------------------- densities
def density_from_logits(logits: torch.Tensor, *, free: int, voxel_size: float = 0.4, dim: int = -4) -> torch.Tensor:
    """Density from semantic occupancy logits: ``sigma = -log softmax(logits)[free] / voxel_size``.

    This is ``softplus(logsumexp_{c != free} l_c - l_free) / voxel_size``: non-negative, zero
    only where ``p(free) = 1``, and ``1 - exp(-sigma * voxel_size) = 1 - p(free)``.

    Args:
        logits: ``(..., C, X, Y, Z)`` (class axis ``dim``, default -4), e.g. ``(B, 18, X, Y, Z)``.
        free: the free class.
        voxel_size: metres; the length over which ``alpha = p(occupied)``.
    Returns:
        ``(..., X, Y, Z)`` densities per metre.
    """
    if not torch.is_floating_point(logits):
        raise TypeError(f"logits: expected a floating point tensor, got {logits.dtype}")
    C = logits.shape[dim]
    if not 0 <= free < C:
        raise ValueError(f"free {free} outside the {C} classes of logits {tuple(logits.shape)}")
    if not voxel_size > 0:
        raise ValueError(f"voxel_size: expected a positive length, got {voxel_size}")
    return -torch.log_softmax(logits, dim=dim).select(dim, free) / voxel_size


def semantic_probs_from_logits(logits: torch.Tensor, *, free: int, dim: int = -4) -> torch.Tensor:
    """Class probabilities given "occupied": softmax over the non-free logits.

    Args:
        logits: ``(..., C, X, Y, Z)`` with the class axis ``dim``.
    Returns:
        ``(..., C - 1, X, Y, Z)``: the classes other than ``free`` (the free class), in order.
    """
    C = logits.shape[dim]
    if not 0 <= free < C:
        raise ValueError(f"free {free} outside the {C} classes of logits {tuple(logits.shape)}")
    keep = [c for c in range(C) if c != free]
    idx = torch.tensor(keep, device=logits.device)
    return torch.softmax(logits.index_select(dim, idx), dim=dim)


def alpha_from_density(sigma: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """``alpha = 1 - exp(-sigma * delta)``; any matching shapes, e.g. ``(R, S)``."""
    return -torch.expm1(-sigma * delta)


def transmittance_from_alpha(alpha: torch.Tensor) -> torch.Tensor:
    """Exclusive product along the last axis: ``T_i = prod_{j<i} (1 - alpha_j)``, ``T_0 = 1``.

    Args:
        alpha: ``(..., S)`` in [0, 1].
    Returns:
        ``(..., S)``.
    """
    ones = torch.ones_like(alpha[..., :1])
    return torch.cumprod(torch.cat([ones, 1 - alpha[..., :-1]], -1), -1)


def weights_from_alpha(alpha: torch.Tensor) -> torch.Tensor:
    """Termination weights ``w_i = T_i * alpha_i`` from opacities ``alpha (..., S)``: ``(..., S)``."""
    return transmittance_from_alpha(alpha) * alpha


def weights_from_density(
    sigma: torch.Tensor, delta: torch.Tensor, log_t0: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Termination weights from densities, in log space.

    ``w_i = exp(log_t0 - sum_{j<i} tau_j) * (1 - exp(-tau_i))`` with ``tau = sigma * delta``.

    Args:
        sigma, delta: ``(..., S)``.
        log_t0: ``(...)`` log transmittance before the first sample (default 0: ``T_0 = 1``).
    Returns:
        weights ``(..., S)`` and the log transmittance after the last sample ``(...)``.
    """
    tau = sigma * delta
    csum = torch.cumsum(tau, -1)  # inclusive
    log_T = -(csum - tau)  # exclusive
    if log_t0 is not None:
        log_T = log_T + log_t0[..., None]
    w = torch.exp(log_T) * -torch.expm1(-tau)
    log_end = -csum[..., -1] if log_t0 is None else log_t0 - csum[..., -1]
    return w, log_end


# ----------------------------------------------------------------------------- grid lookups
def check_volumes(density: torch.Tensor, values: torch.Tensor | None, grid: Grid) -> None:
    """Refuse a ``density`` that is not a floating ``(X, Y, Z)`` volume of ``grid`` and ``values``
    (when given) that are not ``(C, X, Y, Z)`` on it."""
    X, Y, Z = grid.shape
    check_shape(density, "X Y Z", name="density", dims={"X": X, "Y": Y, "Z": Z})
    if not torch.is_floating_point(density):
        raise TypeError(f"density: expected a floating point tensor, got {density.dtype}")
    if values is not None:
        check_shape(values, "C X Y Z", name="values", dims={"X": X, "Y": Y, "Z": Z})


def grid_field(
    density: torch.Tensor,
    grid: Grid,
    values: torch.Tensor | None = None,
    mode: Literal["nearest", "trilinear"] = "nearest",
) -> Field:
    """A field that looks points up in voxel volumes.

    ``nearest`` takes the voxel containing the point (``floor((p - range_min) / voxel)``, clamped
    to the grid): a piecewise-constant field, which renders a hard voxel grid exactly.
    ``trilinear`` interpolates between voxel centres (``F.grid_sample`` with
    ``align_corners=False``, so -1 and +1 are the outer faces of the grid, and ``border``
    padding).

    Args:
        density: ``(X, Y, Z)`` densities per metre (non-negative).
        grid: the grid the volumes live on (``grid.shape == (X, Y, Z)``).
        values: optional ``(C, X, Y, Z)`` values to render.
        mode: ``"nearest"`` or ``"trilinear"``.
    Returns:
        ``field(points (P, 3)) -> (sigma (P,), values (P, C) or None)``.
    """
    X, Y, Z = grid.shape
    check_volumes(density, values, grid)
    if values is not None:
        values = values.to(density.dtype)
    dev, dt = density.device, density.dtype
    lo = torch.tensor(grid.range_min, device=dev, dtype=dt)
    hi = torch.tensor(grid.range_max, device=dev, dtype=dt)
    vs = torch.tensor(grid.voxel_size, device=dev, dtype=dt)
    if mode == "nearest":
        dens_flat = density.reshape(-1)  # (X*Y*Z,)
        vals_flat = None if values is None else values.permute(1, 2, 3, 0).reshape(X * Y * Z, -1)  # (X*Y*Z, C)
        upper = torch.tensor([X - 1, Y - 1, Z - 1], device=dev)

        def nearest(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
            idx = torch.floor((points.to(dt) - lo) / vs).long()
            idx = torch.minimum(idx.clamp(min=0), upper)
            flat = (idx[:, 0] * Y + idx[:, 1]) * Z + idx[:, 2]
            return dens_flat[flat], None if vals_flat is None else vals_flat[flat]

        return nearest
    if mode == "trilinear":
        vol = density[None] if values is None else torch.cat([density[None], values], 0)
        vol = vol[None]  # (1, 1+C, X, Y, Z)

        def trilinear(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
            g = (points.to(dt) - lo) / (hi - lo) * 2 - 1  # (P, 3) as (x, y, z)
            g = g.flip(-1).reshape(1, 1, 1, -1, 3)  # grid_sample wants (W, H, D) = (z, y, x)
            out = F.grid_sample(vol, g, mode="bilinear", padding_mode="border", align_corners=False)
            out = out.reshape(vol.shape[1], -1).t()  # (P, 1+C)
            return out[:, 0], (None if values is None else out[:, 1:])

        return trilinear
    raise ValueError(f"mode: expected 'nearest' or 'trilinear', got {mode!r}")


def value_lookup(
    values: torch.Tensor, grid: Grid, mode: Literal["nearest", "trilinear"] = "trilinear"
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``points (P, 3) -> (P, C)``: the volume ``values`` ``(C, X, Y, Z)`` (as float32) read at
    the points as :func:`grid_field` reads it, with no density."""
    f = grid_field(torch.zeros(values.shape[1:], dtype=torch.float32, device=values.device), grid, values.float(), mode)
    return lambda points: f(points)[1]


def logits_field(
    logits: torch.Tensor, grid: Grid, *, free: int, mode: Literal["nearest", "trilinear"] = "trilinear"
) -> Field:
    """The field of one frame's occupancy logits ``(C, X, Y, Z)``: the density of
    :func:`density_from_logits` over the grid's smallest voxel side, and as values the non-free
    class probabilities ``(C-1, X, Y, Z)`` of :func:`semantic_probs_from_logits` (computed in
    float32), looked up as in :func:`grid_field`."""
    sigma = density_from_logits(logits.float(), free=free, voxel_size=min(grid.voxel_size), dim=0)  # (X, Y, Z)
    probs = semantic_probs_from_logits(logits.float(), free=free, dim=0)  # (C-1, X, Y, Z)
    return grid_field(sigma, grid, probs, mode)


def composite_values(weights: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``sum_i w_i v_i`` over a ray's samples: ``weights (R, S)``, ``values (R, S, C)`` -> ``(R, C)``,
    in float32 or wider (also under autocast).

    One batched matrix product per ray (``bmm``): no ``(R, S, C)`` product is materialised in the
    forward pass, and the backward pass needs one such tensor (the values' gradient) where
    ``(w[..., None] * v).sum(1)`` needs two. The same sum in another order (float32 rounding).
    """
    check_shape(weights, "R S", name="weights")
    check_shape(values, "R S C", name="values", dims={"R": weights.shape[0], "S": weights.shape[1]})
    dt = torch.promote_types(torch.promote_types(weights.dtype, values.dtype), torch.float32)
    with torch.autocast(weights.device.type, enabled=False):
        return torch.bmm(weights.to(dt).unsqueeze(1), values.to(dt)).squeeze(1)


class _UnitComposite(torch.autograd.Function):
    """``sum_i w_i v_i / max(||v_i||, eps)`` with a fused backward pass (float32 inside, the values'
    gradient returned in their own dtype): ``dL/dw_i = g . u_i`` and ``dL/dv_i = (w_i / n_i) (g -
    (g . u_i) u_i)`` with ``u_i = v_i / n_i`` (no projection where the norm is clamped at ``eps``)."""

    @staticmethod
    def forward(ctx, weights: torch.Tensor, values: torch.Tensor, eps: float) -> torch.Tensor:  # type: ignore[override]
        dt = torch.promote_types(torch.promote_types(weights.dtype, values.dtype), torch.float32)
        v = values.to(dt)
        raw = v.norm(dim=-1)  # (R, S)
        norm = raw.clamp_min(eps)
        w = weights.to(dt)
        ctx.weights_dtype = weights.dtype
        ctx.save_for_backward(w, values, norm, raw >= eps)
        return torch.bmm((w / norm).unsqueeze(1), v).squeeze(1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        w, values, norm, unclamped = ctx.saved_tensors
        v = values.to(w.dtype)
        g = grad.to(w.dtype)
        p = torch.bmm(v, g.unsqueeze(-1)).squeeze(-1) / norm  # (R, S) g . u_i
        grad_w = p.to(ctx.weights_dtype) if ctx.needs_input_grad[0] else None
        grad_v = None
        if ctx.needs_input_grad[1]:
            a = w / norm
            c = torch.where(unclamped, a * p / norm, torch.zeros_like(a))
            grad_v = torch.baddbmm(v * -c.unsqueeze(-1), a.unsqueeze(-1), g.unsqueeze(1)).to(values.dtype)
        return grad_w, grad_v, None


def composite_unit_values(weights: torch.Tensor, values: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``sum_i w_i v_i / max(||v_i||, eps)``: the composite of L2-normalised values without
    normalising them (``weights (R, S)``, raw ``values (R, S, C)`` -> ``(R, C)``, float32 or wider,
    also under autocast).

    Equal to ``composite_values(weights, normalize(values))`` up to float32 rounding, with the
    norm folded into the weights and the backward pass written out (two passes over the values):
    no normalised ``(R, S, C)`` copy, no division of it, forward or backward (LangOcc's 384-d
    features at 150 samples per ray).
    """
    check_shape(weights, "R S", name="weights")
    check_shape(values, "R S C", name="values", dims={"R": weights.shape[0], "S": weights.shape[1]})
    with torch.autocast(values.device.type, enabled=False):
        return _UnitComposite.apply(weights, values, float(eps))


def composite_unit_affine(
    weights: torch.Tensor,
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    eps: float = 1e-8,
) -> torch.Tensor:
    """``sum_i w_i v_i / max(||v_i||, eps)`` for values that an affine map makes from hidden
    vectors, ``v_i = W h_i + b`` (an MLP's last ``nn.Linear``), without making them: ``weights
    (R, S)``, ``hidden (R, S, K)``, ``weight (C, K)``, ``bias (C,)`` -> ``(R, C)``, float32 (also
    under autocast).

    The norms come from the ``K x K`` Gram matrix (``||W h + b||^2 = h.(W^T W) h + 2 h.(W^T b) +
    b.b``) and the composite is taken in the hidden space (``W (sum_i a_i h_i) + b sum_i a_i``,
    ``a_i = w_i / n_i``): for LangOcc's 128 -> 384 feature head that spares the ``(R, S, 384)``
    values, their matmul and its backward. Equal to :func:`composite_unit_values` of ``W h + b``
    up to float32 rounding; no gradient flows through a norm clamped at ``eps``.
    """
    check_shape(weights, "R S", name="weights")
    d = check_shape(hidden, "R S K", name="hidden", dims={"R": weights.shape[0], "S": weights.shape[1]})
    check_shape(weight, "C K", name="weight", dims={"K": d["K"]})
    if bias is not None:
        check_shape(bias, "C", name="bias", dims={"C": weight.shape[0]})
    with torch.autocast(hidden.device.type, enabled=False):
        dt = torch.promote_types(torch.promote_types(hidden.dtype, weight.dtype), torch.float32)
        h, W, w = hidden.to(dt), weight.to(dt), weights.to(dt)
        q = ((h @ (W.T @ W)) * h).sum(-1)  # (R, S) ||W h||^2
        if bias is not None:
            b = bias.to(dt)
            q = q + 2 * (h @ (W.T @ b)) + b.dot(b)
        n = q.clamp_min(eps * eps).sqrt()
        a = w / n  # (R, S)
        out = torch.bmm(a.unsqueeze(1), h).squeeze(1) @ W.T  # (R, C)
        if bias is not None:
            out = out + a.sum(1, keepdim=True) * b
        return out


# ----------------------------------------------------------------------------- rendering
@dataclass
class RenderOutput:
    """What :func:`render_rays` returns for ``R`` rays.

    Attributes:
        depth: ``(R,)`` expected termination distance ``sum_i w_i t_i`` (metres along the ray;
            not normalised by the opacity, so rays that leave the grid unstopped are short).
        median_depth: ``(R,)`` detached; the distance where the transmittance falls to 0.5
            (solved exactly inside the interval, density constant there); ``inf`` where it
            never does.
        opacity: ``(R,)`` ``sum_i w_i`` in [0, 1].
        values: ``(R, C)`` ``sum_i w_i v_i``, or ``None`` when the field has no values.
        weights: ``(R, S)`` the termination distribution (only with ``return_weights``).
        samples: the :class:`RaySamples` the weights refer to (only with ``return_weights``).
    """

    depth: torch.Tensor
    median_depth: torch.Tensor
    opacity: torch.Tensor
    values: torch.Tensor | None = None
    weights: torch.Tensor | None = None
    samples: RaySamples | None = None


def render_samples(
    field: Field,
    origins: torch.Tensor,
    dirs: torch.Tensor,
    samples: RaySamples,
    block: int | None = None,
    stop_transmittance: float | None = None,
    return_weights: bool = False,
) -> RenderOutput:
    """Composite a field along given samples (one pass, no chunking over rays).

    The samples are processed in blocks of ``block`` along the rays; after each block, rays whose
    transmittance fell below ``stop_transmittance`` are dropped (early termination: their later
    weights count as 0, an error below ``stop_transmittance`` in opacity).

    Args:
        field: ``points (P, 3) -> (sigma (P,), values (P, C) | None)``.
        origins, dirs: ``(R, 3)``; samples: ``(R, S)`` intervals.
    Returns:
        :class:`RenderOutput`.
    """
    R, S = samples.t.shape
    dev = origins.device
    block = S if block is None else max(1, int(block))
    alive = torch.arange(R, device=dev)
    log_T: torch.Tensor | None = None  # (R,) log transmittance so far, created on first block
    depth = opacity = values = None
    median = torch.full((R,), float("inf"), dtype=samples.t.dtype, device=dev)
    parts: list[tuple[torch.Tensor, int, torch.Tensor]] = []
    for b0 in range(0, S, block):
        b1 = min(S, b0 + block)
        if alive.numel() == 0:
            break
        full = alive.numel() == R
        sel = slice(None) if full else alive
        t = samples.t[sel, b0:b1]  # (Ra, b)
        start = samples.t_starts[sel, b0:b1]
        delta = samples.t_ends[sel, b0:b1] - start
        pts = origins[sel, None, :] + dirs[sel, None, :] * t[..., None]  # (Ra, b, 3)
        sigma, vals = field(pts.reshape(-1, 3))
        sigma = sigma.reshape(t.shape)  # (Ra, b)
        lt0 = None if log_T is None else log_T[sel]
        tau = sigma * delta
        csum = torch.cumsum(tau, -1)  # inclusive
        log_T_in = tau - csum if lt0 is None else lt0[:, None] + tau - csum  # exclusive: log T_i
        T_in = torch.exp(log_T_in)
        w = T_in * -torch.expm1(-tau)
        lt1 = log_T_in[:, -1] - tau[:, -1]
        with torch.no_grad():  # median: T_i * exp(-sigma x) = 0.5 inside the interval
            T_d = T_in.detach()
            cross = (T_d >= 0.5) & (T_d * torch.exp(-tau.detach()) < 0.5)
            if bool(cross.any()):
                rows = cross.any(-1).nonzero()[:, 0]
                i = cross[rows].int().argmax(-1)  # the one crossing interval
                sd = sigma.detach()[rows, i].clamp(min=1e-30)
                x = torch.log(2 * T_d[rows, i]) / sd
                m = start[rows, i] + torch.minimum(x, delta[rows, i])
                r_idx = alive[rows]
                median[r_idx] = torch.minimum(median[r_idx], m.to(median.dtype))
        d_c = (w * t).sum(-1)
        o_c = w.sum(-1)
        v_c = None if vals is None else composite_values(w, vals.reshape(*t.shape, -1))  # (Ra, C)
        if full and log_T is None:
            depth, opacity, values, log_T = d_c, o_c, v_c, lt1
        else:
            if log_T is None:  # cannot happen: the first block sees all rays
                raise RuntimeError("render_samples: internal error")
            depth = depth.index_add(0, alive, d_c)
            opacity = opacity.index_add(0, alive, o_c)
            if v_c is not None:
                values = values.index_add(0, alive, v_c)
            log_T = log_T.index_copy(0, alive, lt1)
        if return_weights:
            parts.append((alive, b0, w))
        if stop_transmittance is not None and b1 < S:
            keep = torch.exp(lt1.detach()) > stop_transmittance
            alive = alive[keep]
    if depth is None:  # S == 0 cannot happen (RaySamples always has S >= 1) but stay total
        raise ValueError("render_samples: no samples")
    weights = None
    if return_weights and len(parts) == 1 and parts[0][2].shape == (R, S):  # one block, every ray
        weights = parts[0][2]
    elif return_weights:
        weights = torch.zeros(R, S, dtype=parts[0][2].dtype, device=dev)
        for rows, b0, w in parts:
            weights[rows, b0 : b0 + w.shape[1]] = w
    return RenderOutput(
        depth=depth,
        median_depth=median,
        opacity=opacity,
        values=values,
        weights=weights,
        samples=samples if return_weights else None,
    )


def _pad_samples(s: RaySamples, S: int) -> RaySamples:
    """Pad ``(R, S')`` samples to ``(R, S)`` with zero-length intervals at the far end."""
    extra = S - s.t.shape[1]
    if extra <= 0:
        return s
    last = s.t_ends[:, -1:].expand(-1, extra)
    return RaySamples(torch.cat([s.t_starts, last], 1), torch.cat([s.t_ends, last], 1), torch.cat([s.t, last], 1))


def render_rays(
    field: Field,
    origins: torch.Tensor,
    dirs: torch.Tensor,
    grid: Grid,
    *,
    num_samples: int | None = None,
    step: float | None = None,
    min_near: float = 0.0,
    jitter: bool = False,
    generator: torch.Generator | None = None,
    num_importance: int = 0,
    chunk: int = 8192,
    block: int | None = None,
    stop_transmittance: float | None = None,
    return_weights: bool = False,
    checkpoint: bool = False,
) -> RenderOutput:
    """Render rays through the grid's box: sample, look up, composite; chunked over rays.

    Samples span the part of each ray inside the grid box (:func:`~occkit.rendering.sampling.ray_box`),
    ``num_samples`` equal intervals or intervals of ``step`` metres, at midpoints or jittered.
    With ``num_importance = n > 0``, a coarse pass without gradients gives weights from which
    ``n`` more points are drawn (inverse CDF) and the rays are rendered again on the merged
    ``S + n`` intervals (the returned output is this fine pass).

    Memory: rays are processed ``chunk`` at a time and samples ``block`` at a time, so a
    forward pass without gradients needs ``O(chunk * block * C)`` whatever the number of rays.
    With gradients the graph of every chunk is kept, unless ``checkpoint=True``, which keeps
    only each chunk's outputs and recomputes the chunk during backward. When training through
    :func:`grid_field`, every lookup call back-propagates into a gradient the size of the whole
    volume, so prefer large chunks and ``block=None`` there; blocks and early termination pay
    off in forward passes (rendering views, coarse passes).

    Args:
        field: ``points (P, 3) -> (sigma (P,), values (P, C) | None)``, e.g. :func:`grid_field`.
        origins, dirs: ``(R, 3)``; ``dirs`` unit (distances in metres).
        grid: the box to sample in.
        num_samples / step: exactly one.
        min_near: start samples no closer than this to the origin.
        jitter, generator: stratified random points inside the intervals.
        chunk: rays per pass; block: samples per pass along a ray (default all).
        stop_transmittance: drop rays whose transmittance fell below this (early termination).
        return_weights: also return ``weights (R, S)`` and the samples (for distortion losses).
    Returns:
        :class:`RenderOutput` for the ``R`` rays.
    """
    dims = check_shape(origins, "R 3", name="origins")
    check_shape(dirs, "R 3", name="dirs", dims=dims)
    if not (torch.isfinite(origins).all() and torch.isfinite(dirs).all()):
        raise ValueError("origins, dirs: expected finite values (found NaN or inf)")
    if chunk <= 0:
        raise ValueError(f"chunk: expected a positive count, got {chunk}")
    if num_importance < 0:
        raise ValueError(f"num_importance: expected >= 0, got {num_importance}")
    R = dims["R"]
    near, far = ray_box(origins, dirs, grid, min_near=min_near)
    S_fixed = None
    if step is not None and num_samples is None and R > 0:
        span = float((far - near).max())
        S_fixed = max(1, math.ceil(span / step))
    outs: list[RenderOutput] = []
    for c0 in range(0, R, chunk):
        sl = slice(c0, min(R, c0 + chunk))
        o, d = origins[sl], dirs[sl]
        s = uniform_samples(near[sl], far[sl], num_samples=num_samples, step=step, jitter=jitter, generator=generator)
        if S_fixed is not None:
            s = _pad_samples(s, S_fixed)
        if num_importance > 0:
            with torch.no_grad():
                coarse = render_samples(field, o, d, s, block=block, return_weights=True)
            s = importance_samples(s, coarse.weights, num_importance, jitter=jitter, generator=generator)

        def run(o_: torch.Tensor, d_: torch.Tensor, s_: RaySamples = s) -> RenderOutput:
            return render_samples(
                field, o_, d_, s_, block=block, stop_transmittance=stop_transmittance, return_weights=return_weights
            )

        if checkpoint and torch.is_grad_enabled():
            out = torch.utils.checkpoint.checkpoint(run, o, d, use_reentrant=False)
        else:
            out = run(o, d)
        outs.append(out)
    if not outs:
        z = origins.new_zeros(0)
        return RenderOutput(depth=z, median_depth=z, opacity=z)
    if len(outs) == 1:
        return outs[0]

    def cat(name: str) -> torch.Tensor | None:
        vals = [getattr(o, name) for o in outs]
        return None if vals[0] is None else torch.cat(vals, 0)

    samples = None
    if return_weights:
        samples = RaySamples(
            *(torch.cat([getattr(o.samples, k) for o in outs], 0) for k in ("t_starts", "t_ends", "t"))
        )
    return RenderOutput(
        depth=cat("depth"),
        median_depth=cat("median_depth"),
        opacity=cat("opacity"),
        values=cat("values"),
        weights=cat("weights"),
        samples=samples,
    )


def render_grid(
    density: torch.Tensor,
    grid: Grid,
    origins: torch.Tensor,
    dirs: torch.Tensor,
    values: torch.Tensor | None = None,
    mode: Literal["nearest", "trilinear"] = "trilinear",
    **kwargs,
) -> RenderOutput:
    """:func:`render_rays` of :func:`grid_field` ``(density (X, Y, Z), values (C, X, Y, Z))``;
    keyword arguments go to :func:`render_rays`."""
    return render_rays(grid_field(density, grid, values, mode), origins, dirs, grid, **kwargs)
