"""Where to sample along rays: the grid box, uniform intervals, importance resampling.

Samples are *intervals* ``[t_start, t_end)`` along each ray with a point ``t`` inside where the
field is evaluated (the midpoint, or a random point with jitter). Intervals of one ray are
sorted, do not overlap and tile ``[near, far]``; rays that miss the grid get zero-length
intervals (``near == far``), which carry no weight. Distances are along unit directions, metres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from occkit.geometry.grid import Grid
from occkit.geometry.raycast import ray_box_interval
from occkit.shapes import check_shape


@dataclass
class RaySamples:
    """``S`` samples on each of ``R`` rays.

    Attributes:
        t_starts: ``(R, S)`` interval starts.
        t_ends: ``(R, S)`` interval ends (``t_ends - t_starts = delta``, the spacing).
        t: ``(R, S)`` where the field is evaluated, ``t_starts <= t <= t_ends``.
    """

    t_starts: torch.Tensor
    t_ends: torch.Tensor
    t: torch.Tensor

    @property
    def deltas(self) -> torch.Tensor:
        """``(R, S)`` interval lengths."""
        return self.t_ends - self.t_starts

    def __getitem__(self, rays: torch.Tensor | slice) -> RaySamples:
        """The samples of a subset of rays."""
        return RaySamples(self.t_starts[rays], self.t_ends[rays], self.t[rays])


def ray_box(
    origins: torch.Tensor, dirs: torch.Tensor, grid: Grid, min_near: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Slab test: where each ray is inside the grid's box.

    For each axis a, the ray is between the two planes for ``t`` in
    ``[(lo_a - o_a) / d_a, (hi_a - o_a) / d_a]`` (swapped when ``d_a < 0``); the box interval is
    the intersection over axes, clipped to ``t >= min_near``.

    Args:
        origins: ``(R, 3)``; dirs: ``(R, 3)`` (unit for distances in metres); grid: the box.
        min_near: smallest distance to start at.
    Returns:
        near, far: ``(R,)`` each; rays that miss the box have ``far == near`` (no samples weigh).
    """
    check_shape(origins, "R 3", name="origins")
    check_shape(dirs, "R 3", name="dirs", dims={"R": origins.shape[0]})
    near, far = ray_box_interval(origins, dirs, grid, min_t=min_near)
    far = torch.maximum(far, near)
    return near, far


def uniform_samples(
    near: torch.Tensor,
    far: torch.Tensor,
    num_samples: int | None = None,
    step: float | None = None,
    jitter: bool = False,
    generator: torch.Generator | None = None,
) -> RaySamples:
    """Uniform intervals on ``[near, far]``, by count or by step.

    - ``num_samples=S``: ``S`` equal intervals per ray, ``delta = (far - near) / S``.
    - ``step=s``: intervals of length ``s`` from ``near``; ``S = ceil(max(far - near) / s)`` and
      the intervals past a ray's ``far`` are clipped to zero length.

    Args:
        near, far: ``(R,)``.
        jitter: evaluate each interval at a uniform random point inside it (stratified
            sampling) instead of its midpoint.
    Returns:
        :class:`RaySamples` with ``(R, S)`` tensors.
    """
    check_shape(near, "R", name="near")
    check_shape(far, "R", name="far", dims={"R": near.shape[0]})
    if (num_samples is None) == (step is None):
        raise ValueError("uniform_samples: give exactly one of num_samples, step")
    device, dtype = near.device, near.dtype
    if num_samples is not None:
        if num_samples <= 0:
            raise ValueError(f"num_samples: expected a positive count, got {num_samples}")
        u = torch.linspace(0, 1, num_samples + 1, device=device, dtype=dtype)  # (S+1,)
        edges = near[:, None] + (far - near)[:, None] * u  # (R, S+1)
    else:
        if not step > 0:
            raise ValueError(f"step: expected a positive length, got {step}")
        span = float((far - near).max()) if near.numel() else 0.0
        S = max(1, math.ceil(span / step))
        k = torch.arange(S + 1, device=device, dtype=dtype) * step  # (S+1,)
        edges = torch.minimum(near[:, None] + k, far[:, None])  # (R, S+1)
    starts, ends = edges[:, :-1], edges[:, 1:]
    if jitter:
        r = torch.rand(starts.shape, device=device, dtype=dtype, generator=generator)
        t = starts + (ends - starts) * r
    else:
        t = 0.5 * (starts + ends)
    return RaySamples(starts.contiguous(), ends.contiguous(), t)


def importance_samples(
    samples: RaySamples,
    weights: torch.Tensor,
    num_samples: int,
    jitter: bool = False,
    generator: torch.Generator | None = None,
    blur: float = 0.01,
) -> RaySamples:
    """Resample ``num_samples`` new points per ray from coarse weights (inverse CDF), then merge
    them with the coarse interval edges into one sorted set of intervals.

    The coarse intervals define a piecewise-constant pdf ``p_i = (w_i + blur / S) / sum``; the
    CDF is piecewise linear and new points are ``t = CDF^-1(u)`` with ``u`` evenly spaced
    (``(k + 0.5) / n``) or uniform random with ``jitter``. The result's intervals tile the same
    ``[near, far]`` with edges at the coarse edges and the new points; each is evaluated at its
    midpoint. Nothing here is differentiated (the weights are detached).

    Args:
        samples: coarse :class:`RaySamples` ``(R, S)`` (tiling ``[near, far]``).
        weights: ``(R, S)`` coarse weights (non-negative).
        num_samples: new points per ray, ``n``.
        blur: uniform mass added to the pdf, so no interval has zero probability.
    Returns:
        :class:`RaySamples` with ``(R, S + n)`` tensors.
    """
    dims = check_shape(samples.t_starts, "R S", name="samples.t_starts")
    check_shape(weights, "R S", name="weights", dims=dims)
    if num_samples <= 0:
        raise ValueError(f"num_samples: expected a positive count, got {num_samples}")
    R, S = dims["R"], dims["S"]
    with torch.no_grad():
        w = weights.detach().clamp(min=0) + blur / S
        pdf = w / w.sum(-1, keepdim=True)  # (R, S)
        cdf = torch.cat([torch.zeros_like(pdf[:, :1]), pdf.cumsum(-1)], -1)  # (R, S+1)
        cdf[:, -1] = 1.0
        edges = torch.cat([samples.t_starts, samples.t_ends[:, -1:]], -1)  # (R, S+1)
        if jitter:
            u = torch.rand(R, num_samples, device=w.device, dtype=w.dtype, generator=generator)
        else:
            u = ((torch.arange(num_samples, device=w.device, dtype=w.dtype) + 0.5) / num_samples).expand(R, -1)
        u = u.contiguous()
        i = torch.searchsorted(cdf, u, right=True).clamp(1, S)  # interval index + 1, (R, n)
        c0, c1 = cdf.gather(1, i - 1), cdf.gather(1, i)
        e0, e1 = edges.gather(1, i - 1), edges.gather(1, i)
        frac = ((u - c0) / (c1 - c0).clamp(min=1e-12)).clamp(0, 1)
        t_new = e0 + frac * (e1 - e0)  # (R, n)
        all_edges, _ = torch.sort(torch.cat([edges, t_new], -1), -1)  # (R, S+1+n)
        starts, ends = all_edges[:, :-1], all_edges[:, 1:]
    return RaySamples(starts.contiguous(), ends.contiguous(), 0.5 * (starts + ends))
