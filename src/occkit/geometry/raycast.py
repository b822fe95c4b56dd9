"""Vectorised voxel ray traversal (Amanatides & Woo, 1987) in pure torch.

All rays advance together one voxel per step; a step costs a handful of tensor ops over the
rays still alive, so the loop runs at most ``X + Y + Z`` times for rays crossing the grid.

:func:`traverse` yields the voxels each ray visits in order; :func:`first_hit` stops at the first
voxel marked occupied (RayIoU, LiDAR-style depth on voxels); :func:`mark_visible` marks every
voxel a ray reaches up to and including its first occupied voxel or its end distance (Occ3D-style
visibility masks). On the CPU, :func:`mark_visible`'s loop runs one ray at a time in numba (the same
operations in the same order: the same voxels, to the bit), the rays' start still in torch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from occkit.geometry.grid import Grid
from occkit.jit import numba_kernels
from occkit.shapes import check_shape


@dataclass
class TraversalStep:
    """State of every ray at one step of the traversal.

    Attributes:
        ray: ``(R',)`` long, which rays (indices into the input) are alive at this step.
        index: ``(R', 3)`` long, the voxel each of them is in.
        t_in: ``(R',)`` distance along the ray where it entered the voxel.
        t_out: ``(R',)`` distance where it leaves the voxel.
    """

    ray: torch.Tensor
    index: torch.Tensor
    t_in: torch.Tensor
    t_out: torch.Tensor


def ray_box_interval(
    origins: torch.Tensor, dirs: torch.Tensor, grid: Grid, min_t: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Slab test: the parameter interval ``[t0, t1]`` where each ray is inside the grid's box.

    Args:
        origins, dirs: ``(R, 3)``; distances are in units of ``|dirs|``.
        min_t: ``t0`` is clamped to at least this (0: nothing behind the origin).
    Returns:
        t0, t1: ``(R,)`` each (no gradient); the ray misses the box where ``t1 <= t0``.
    """
    lo = torch.tensor(grid.range_min, dtype=origins.dtype, device=origins.device)
    hi = torch.tensor(grid.range_max, dtype=origins.dtype, device=origins.device)
    with torch.no_grad():
        inv = 1.0 / dirs  # +-inf where a component is 0
        ta = (lo - origins) * inv
        tb = (hi - origins) * inv
        # 0 * inf = nan when the origin lies exactly on a slab plane and the direction is parallel
        tmin = torch.minimum(ta, tb).nan_to_num(nan=-float("inf"))
        tmax = torch.maximum(ta, tb).nan_to_num(nan=float("inf"))
        t0 = tmin.amax(-1).clamp(min=min_t)
        t1 = tmax.amin(-1)
    return t0, t1


@dataclass
class _WalkStart:
    """Where the rays that enter the box start walking (rays that miss are dropped)."""

    ray: torch.Tensor  # (R',) long, indices into the input
    index: torch.Tensor  # (R', 3) long, first voxel
    step: torch.Tensor  # (R', 3) long, -1 / 0 / +1 per axis
    t_cur: torch.Tensor  # (R',) entry distance
    t_end: torch.Tensor  # (R',) where the walk ends (box exit or t_max)
    t_next: torch.Tensor  # (R', 3) distance to the next boundary along each axis
    t_delta: torch.Tensor  # (R', 3) distance between boundaries along each axis


def _walk_start(
    origins: torch.Tensor, dirs: torch.Tensor, grid: Grid, t_max: torch.Tensor | float | None
) -> _WalkStart:
    """Checks the rays and sets up the Amanatides-Woo state of those that enter the box."""
    check_shape(origins, "R 3", name="origins")
    check_shape(dirs, "R 3", name="dirs", dims={"R": origins.shape[0]})
    if not torch.is_floating_point(origins) or not torch.is_floating_point(dirs):
        raise TypeError("origins and dirs must be floating point tensors")
    device, dtype = origins.device, origins.dtype
    dirs = dirs.to(dtype)
    R = origins.shape[0]
    lo = torch.tensor(grid.range_min, dtype=dtype, device=device)
    vs = torch.tensor(grid.voxel_size, dtype=dtype, device=device)
    shape = torch.tensor(grid.shape, device=device)
    t0, t1 = ray_box_interval(origins, dirs, grid)
    if t_max is not None:
        t1 = torch.minimum(t1, torch.as_tensor(t_max, dtype=dtype, device=device).expand(R))
    alive = t1 > t0
    ray = torch.arange(R, device=device)[alive]
    o, d, t_cur, t_end = origins[alive], dirs[alive], t0[alive], t1[alive]
    # Start voxel: the point just inside the box along the ray, clamped against round-off.
    p = o + d * t_cur[:, None]
    idx = torch.floor((p - lo) / vs).long()
    idx = torch.minimum(torch.maximum(idx, torch.zeros_like(idx)), shape - 1)
    step = torch.sign(d).long()
    inv = 1.0 / d
    boundary = lo + (idx + (step > 0).long()).to(dtype) * vs
    t_next = torch.where(step != 0, (boundary - o) * inv, torch.full_like(o, float("inf")))
    t_delta = torch.where(step != 0, vs * inv.abs(), torch.full_like(o, float("inf")))
    return _WalkStart(ray, idx, step, t_cur, t_end, t_next, t_delta)


def traverse(
    origins: torch.Tensor,
    dirs: torch.Tensor,
    grid: Grid,
    t_max: torch.Tensor | float | None = None,
) -> Iterator[TraversalStep]:
    """Walk rays through ``grid`` voxel by voxel, yielding one :class:`TraversalStep` per step.

    Args:
        origins: ``(R, 3)`` ray origins in the grid's frame (inside or outside the grid).
        dirs: ``(R, 3)`` directions (need not be unit; distances are in units of ``|dirs|``).
        grid: the voxel grid.
        t_max: scalar or ``(R,)``: stop a ray once it has gone this far (default: until it leaves
            the grid). A voxel is visited when the ray enters it before ``t_max``.

    The caller may stop consuming the iterator at any time. Rays that miss the box yield nothing.
    """
    w = _walk_start(origins, dirs, grid, t_max)
    device = origins.device
    shape = torch.tensor(grid.shape, device=device)
    ray, idx, step, t_cur, t_end, t_next, t_delta = w.ray, w.index, w.step, w.t_cur, w.t_end, w.t_next, w.t_delta

    while ray.numel() > 0:
        t_out_axis, axis = t_next.min(-1)
        t_out = torch.minimum(t_out_axis, t_end)
        yield TraversalStep(ray=ray, index=idx, t_in=t_cur, t_out=t_out)
        # advance along the axis whose boundary comes first
        ar = torch.arange(ray.numel(), device=device)
        idx = idx.clone()
        idx[ar, axis] += step[ar, axis]
        t_next = t_next.clone()
        t_next[ar, axis] += t_delta[ar, axis]
        t_cur = t_out_axis
        keep = (t_cur < t_end) & ((idx >= 0) & (idx < shape)).all(-1)
        if not bool(keep.all()):
            ray, idx, t_cur, t_end = ray[keep], idx[keep], t_cur[keep], t_end[keep]
            t_next, t_delta, step = t_next[keep], t_delta[keep], step[keep]


@dataclass
class RayHit:
    """Result of :func:`first_hit` for ``R`` rays.

    Attributes:
        hit: ``(R,)`` bool, the ray met an occupied voxel.
        index: ``(R, 3)`` long, that voxel (``-1`` where no hit).
        t_in: ``(R,)`` distance where the ray entered it (``inf`` where no hit).
        t_out: ``(R,)`` distance where the ray leaves it (``inf`` where no hit).
    """

    hit: torch.Tensor
    index: torch.Tensor
    t_in: torch.Tensor
    t_out: torch.Tensor


def _mark_rays(flat, fstep, t_next, t_delta, t_end, occ, stop, out):  # pragma: no cover - compiled by numba
    """:func:`_padded_walk`'s marking loop, one ray at a time (compiled by numba, :func:`_numba_mark`):
    each ray marks its voxel, stops there when it is occupied (``stop``), else leaves along the axis
    whose crossing comes first (the first of equal ones, as ``torch.min`` picks), that axis adding its
    ``t_delta``, and stops once the crossing is at or beyond ``t_end``: the torch loop's operations,
    in its order."""
    for r in range(flat.shape[0]):
        f = flat[r]
        a0, a1, a2 = t_next[r, 0], t_next[r, 1], t_next[r, 2]
        d0, d1, d2 = t_delta[r, 0], t_delta[r, 1], t_delta[r, 2]
        s0, s1, s2 = fstep[r, 0], fstep[r, 1], fstep[r, 2]
        te = t_end[r]
        while True:
            out[f] = True
            if stop and occ[f]:
                break
            if a0 <= a1 and a0 <= a2:
                t_out = a0
                a0 += d0
                f += s0
            elif a1 <= a2:
                t_out = a1
                a1 += d1
                f += s1
            else:
                t_out = a2
                a2 += d2
                f += s2
            if t_out >= te:
                break


def _numba_mark():
    """:func:`_mark_rays` compiled by numba (:func:`occkit.jit.numba_kernels`), or None where numba
    cannot be imported (the torch loop then marks)."""
    kernels = numba_kernels(_mark_rays)
    return None if kernels is None else kernels[0]


def _padded_walk(
    origins: torch.Tensor,
    dirs: torch.Tensor,
    grid: Grid,
    occupied: torch.Tensor | None,
    t_max: torch.Tensor | float | None,
    mark: bool,
    compact_every: int = 8,
    compiled: bool = True,
) -> tuple[torch.Tensor | None, RayHit | None]:
    """The fast walk behind :func:`first_hit` and :func:`mark_visible`.

    Same voxels and distances as :func:`traverse`, computed differently: the rays walk a grid
    padded by one voxel on every side, addressed by flat index, so no bounds check is needed (a
    ray that leaves the box dies by distance at most one padding voxel later); a ray that stops
    parks on a padding voxel (never occupied, cropped away) and the alive rays are compacted
    only every ``compact_every`` steps. Rays stop at their first occupied voxel. Marking on the
    CPU (``compiled`` and numba importable): the loop one ray at a time in numba (:func:`_mark_rays`).
    """
    X, Y, Z = grid.shape
    PX, PY, PZ = X + 2, Y + 2, Z + 2
    device, dtype = origins.device, origins.dtype
    R = origins.shape[0]
    occ = None
    if occupied is not None:
        check_shape(occupied, "X Y Z", name="occupied", dims={"X": X, "Y": Y, "Z": Z})
        occ = torch.zeros(PX, PY, PZ, dtype=torch.bool, device=device)
        occ[1:-1, 1:-1, 1:-1] = occupied.to(device=device, dtype=torch.bool)
        occ = occ.view(-1)
    out = torch.zeros(PX * PY * PZ, dtype=torch.bool, device=device) if mark else None
    hits: RayHit | None = None
    if occ is not None and not mark:
        hits = RayHit(
            hit=torch.zeros(R, dtype=torch.bool, device=device),
            index=torch.full((R, 3), -1, dtype=torch.long, device=device),
            t_in=torch.full((R,), float("inf"), dtype=dtype, device=device),
            t_out=torch.full((R,), float("inf"), dtype=dtype, device=device),
        )

    w = _walk_start(origins, dirs, grid, t_max)
    ray, idx, step, t_cur, t_end, t_next, t_delta = w.ray, w.index, w.step, w.t_cur, w.t_end, w.t_next, w.t_delta
    strides = torch.tensor([PY * PZ, PZ, 1], device=device)
    flat = ((idx + 1) * strides).sum(-1)
    fstep = step * strides
    kernel = _numba_mark() if compiled and mark and device.type == "cpu" else None
    if kernel is not None and flat.numel():
        stop = occ is not None
        kernel(
            flat.numpy(),
            fstep.numpy(),
            t_next.numpy(),
            t_delta.numpy(),
            t_end.numpy(),
            (occ if stop else out).numpy(),
            stop,
            out.numpy(),
        )
        flat = flat[:0]  # walked
    k = 0
    while flat.numel():
        if out is not None:
            out[flat] = True
        t_out_axis, ax = t_next.min(1)
        hit = occ[flat] if occ is not None else None
        if hits is not None and hit is not None and bool(hit.any()):
            r, f = ray[hit], flat[hit]
            hits.hit[r] = True
            hits.index[r] = torch.stack([f // (PY * PZ), (f // PZ) % PY, f % PZ], -1) - 1
            hits.t_in[r] = t_cur[hit]
            hits.t_out[r] = torch.minimum(t_out_axis[hit], t_end[hit])
        ax1 = ax[:, None]
        flat = flat + fstep.gather(1, ax1).squeeze(1)
        t_next.scatter_add_(1, ax1, t_delta.gather(1, ax1))
        t_cur = t_out_axis
        dead = t_cur >= t_end
        if hit is not None:
            dead |= hit
        flat = torch.where(dead, torch.zeros_like(flat), flat)  # park on padding voxel 0
        fstep = torch.where(dead[:, None], torch.zeros_like(fstep), fstep)
        t_end = torch.where(dead, torch.full_like(t_end, -float("inf")), t_end)
        k += 1
        if k % compact_every == 0:
            keep = t_end > -float("inf")
            if not bool(keep.any()):
                break
            if not bool(keep.all()):
                ray, flat, fstep, t_next, t_delta, t_cur, t_end = (
                    ray[keep],
                    flat[keep],
                    fstep[keep],
                    t_next[keep],
                    t_delta[keep],
                    t_cur[keep],
                    t_end[keep],
                )
    marked = out.view(PX, PY, PZ)[1:-1, 1:-1, 1:-1].clone() if out is not None else None
    return marked, hits


def first_hit(
    occupied: torch.Tensor,
    origins: torch.Tensor,
    dirs: torch.Tensor,
    grid: Grid,
    t_max: torch.Tensor | float | None = None,
) -> RayHit:
    """First occupied voxel along each ray.

    Args:
        occupied: ``(X, Y, Z)`` bool, matching ``grid.shape``.
        origins, dirs: ``(R, 3)`` floating point; t_max as in :func:`traverse`.
    """
    check_shape(occupied, "X Y Z", name="occupied", dims=dict(zip("XYZ", grid.shape)))
    _, hits = _padded_walk(origins, dirs, grid, occupied, t_max, mark=False)
    assert hits is not None
    return hits


def mark_visible(
    origins: torch.Tensor,
    dirs: torch.Tensor,
    grid: Grid,
    occupied: torch.Tensor | None = None,
    t_max: torch.Tensor | float | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mark the voxels rays reach: every voxel entered before ``t_max``, stopping after the first
    voxel in ``occupied`` (that voxel is marked too).

    Args:
        origins, dirs: ``(R, 3)`` floating point; t_max as in :func:`traverse`.
        occupied: optional ``(X, Y, Z)`` bool; rays stop in the first occupied voxel.
        out: optional ``(X, Y, Z)`` bool to accumulate into (modified in place).
    Returns:
        ``(X, Y, Z)`` bool.
    """
    X, Y, Z = grid.shape
    if out is None:
        out = torch.zeros(grid.shape, dtype=torch.bool, device=origins.device)
    check_shape(out, "X Y Z", name="out", dims={"X": X, "Y": Y, "Z": Z})
    marked, _ = _padded_walk(origins, dirs, grid, occupied, t_max, mark=True)
    assert marked is not None
    out |= marked.to(out.device)
    return out
