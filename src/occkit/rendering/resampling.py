"""Proposal sampling whose importance samples *replace* the proposal samples (LangOcc's released
renderer, which uses nerfacc's ``importance_sampling``).

Two steps along each ray between ``near`` and ``far`` (fixed distances, not the grid box):

1. :func:`jittered_uniform_samples`: ``S`` intervals of ``[near, far]`` whose inner edges are
   moved by a uniform offset in ``[-delta / 2, delta / 2)`` (``delta = (far - near) / S``; the
   two ends stay), each evaluated at its midpoint. Without jitter: ``S`` equal intervals.
2. :func:`resample_from_transmittance`: the proposal pass's transmittance ``T_i`` before each
   interval gives the CDF at the interval edges, ``cdf = [1 - T_0, ..., 1 - T_{S-1}, 1]``: the
   transmittance left at ``far`` is put into the *last* interval (a ray that stops nowhere draws
   all its samples there). ``n`` points are drawn by inverse CDF at ``u_k = (k + b) / n``,
   ``k = 0 .. n-1`` (``b = 0.5``, or one uniform ``b`` per ray with jitter), linear inside each
   interval (the midpoint of an interval of zero mass). The new intervals are the points' cells:
   edges half-way between consecutive points, the first and last extended by half their
   neighbour's spacing and clipped to ``[near, far]``; each is evaluated at its point (which need
   not be its midpoint). The proposal samples are discarded.

Compare :func:`occkit.rendering.sampling.importance_samples` (occkit's own reading): it adds the
new points to the proposal edges (``S + n`` intervals), with a uniform ``blur`` in the pdf, and
evaluates the merged intervals at their midpoints.
"""

from __future__ import annotations

import torch

from occkit.rendering.sampling import RaySamples
from occkit.shapes import check_shape


def jittered_uniform_samples(
    near: torch.Tensor,
    far: torch.Tensor,
    num_samples: int,
    jitter: bool = False,
    generator: torch.Generator | None = None,
) -> RaySamples:
    """``num_samples`` intervals tiling ``[near, far]`` with jittered inner edges, at midpoints.

    Edge ``k`` (``k = 1 .. S-1``) is at ``near + (k / S + j_k) (far - near)`` with ``j_k`` uniform in
    ``[-1 / (2S), 1 / (2S))`` when ``jitter`` (else 0); edges 0 and S are ``near`` and ``far``.

    Args:
        near, far: ``(R,)`` distances (metres along unit directions).
    Returns:
        :class:`RaySamples` ``(R, S)``, evaluated at the intervals' midpoints.
    """
    check_shape(near, "R", name="near")
    check_shape(far, "R", name="far", dims={"R": near.shape[0]})
    if num_samples <= 0:
        raise ValueError(f"num_samples: expected a positive count, got {num_samples}")
    R, S = near.shape[0], num_samples
    u = torch.linspace(0, 1, S + 1, device=near.device, dtype=near.dtype).expand(R, -1)  # (R, S+1)
    if jitter and S > 1:
        j = torch.rand(R, S - 1, device=near.device, dtype=near.dtype, generator=generator) / S - 0.5 / S
        u = u + torch.cat([u.new_zeros(R, 1), j, u.new_zeros(R, 1)], -1)
    edges = near[:, None] + (far - near)[:, None] * u  # (R, S+1)
    starts, ends = edges[:, :-1].contiguous(), edges[:, 1:].contiguous()
    return RaySamples(starts, ends, 0.5 * (starts + ends))


def transmittance_cdf(transmittance: torch.Tensor) -> torch.Tensor:
    """CDF at the ``S + 1`` interval edges from the transmittance before each of ``S`` intervals:
    ``[1 - T_0, ..., 1 - T_{S-1}, 1]`` (what is left at the far end goes to the last interval).

    Args:
        transmittance: ``(R, S)``, ``T_0`` usually 1.
    Returns:
        ``(R, S + 1)``.
    """
    check_shape(transmittance, "R S", name="transmittance")
    return torch.cat([1 - transmittance, torch.ones_like(transmittance[:, :1])], -1)


def resample_from_transmittance(
    samples: RaySamples,
    sigma: torch.Tensor,
    num_samples: int,
    jitter: bool = False,
    generator: torch.Generator | None = None,
) -> RaySamples:
    """``num_samples`` new samples drawn from a proposal pass, replacing it (module docstring).

    Args:
        samples: the proposal's :class:`RaySamples` ``(R, S)`` (tiling ``[near, far]``).
        sigma: ``(R, S)`` densities (per metre) at the proposal samples; not differentiated.
        num_samples: ``n``, the new samples per ray.
        jitter: one uniform offset ``b`` per ray instead of 0.5 (stratified).
    Returns:
        :class:`RaySamples` ``(R, n)``: ``t`` the drawn points, ``t_starts`` / ``t_ends`` their cells.
    """
    dims = check_shape(samples.t_starts, "R S", name="samples.t_starts")
    check_shape(sigma, "R S", name="sigma", dims=dims)
    if num_samples <= 0:
        raise ValueError(f"num_samples: expected a positive count, got {num_samples}")
    R, S = dims["R"], dims["S"]
    n = num_samples
    with torch.no_grad():
        tau = sigma.detach().float() * samples.deltas.float()
        T = torch.exp(-(torch.cumsum(tau, -1) - tau))  # (R, S) exclusive transmittance
        cdf = transmittance_cdf(T).to(samples.t.dtype)  # (R, S+1)
        edges = torch.cat([samples.t_starts, samples.t_ends[:, -1:]], -1)  # (R, S+1)
        lo, hi = cdf[:, :1], cdf[:, -1:]
        if jitter:
            b = torch.rand(R, 1, device=cdf.device, dtype=cdf.dtype, generator=generator)
        else:
            b = torch.full((R, 1), 0.5, device=cdf.device, dtype=cdf.dtype)
        k = torch.arange(n, device=cdf.device, dtype=cdf.dtype)
        u = (lo + (k + b) * (hi - lo) / n).contiguous()  # (R, n)
        p = torch.searchsorted(cdf.contiguous(), u, right=True)  # first edge with cdf > u
        p0, p1 = (p - 1).clamp(0, S), p.clamp(0, S)
        c0, c1 = cdf.gather(1, p0), cdf.gather(1, p1)
        e0, e1 = edges.gather(1, p0), edges.gather(1, p1)
        flat = (c1 - c0) < 1e-10
        t = torch.where(flat, 0.5 * (e0 + e1), e0 + (u - c0) * (e1 - e0) / (c1 - c0).clamp(min=1e-10))  # (R, n)
        t_min, t_max = edges[:, :1], edges[:, -1:]
        if n > 1:
            mid = 0.5 * (t[:, 1:] + t[:, :-1])  # (R, n-1)
            first = torch.maximum(t[:, :1] - 0.5 * (t[:, 1:2] - t[:, :1]), t_min)
            last = torch.minimum(t[:, -1:] + 0.5 * (t[:, -1:] - t[:, -2:-1]), t_max)
            cells = torch.cat([first, mid, last], -1)  # (R, n+1)
        else:
            cells = torch.cat([t_min, t_max], -1)
    return RaySamples(cells[:, :-1].contiguous(), cells[:, 1:].contiguous(), t.contiguous())
