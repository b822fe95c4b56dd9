"""LiDAR returns cast through the grid: which voxels each sweep hit, which it saw through.

For a sweep from origin ``o`` with returns ``p_i`` (grid frame), ``r_i = |p_i - o|``:

- **hit**: the voxel holding ``p_i``;
- **pass**: every voxel the segment ``o -> o + t d_i`` enters for ``t < r_i (1 - rel) - abs``
  (``rel``, ``abs``: :attr:`carve_rel`, :attr:`carve_abs`): the last stretch before a return is
  not carved, so that a ray grazing the ground (a LiDAR 1.84 m up, a return 30 m away: the ray
  runs 3 m through the surface's voxel layer) does not count the ground it skims as seen through;
- counts are of **sweeps**, not rays: ``hits[v]`` = sweeps with a return in ``v``, ``passes[v]``
  = sweeps that saw through ``v`` and had no return in it.

Occ3D's LiDAR mask (every voxel a ray traverses up to and including its return, no margin) is
:func:`occkit.geometry.visibility.lidar_visibility`, the walk the synthetic world's own masks use.

The walk is Amanatides & Woo's, one ray at a time in a loop compiled by numba (as RayIoU's CPU
walk, :mod:`occkit.metrics.rayiou`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from occkit.geometry.grid import Grid
from occkit.jit import numba_kernels


@dataclass
class CastCounts:
    """Per-voxel sweep counts, flat over the grid (``X * Y * Z``), int32."""

    hits: np.ndarray
    passes: np.ndarray
    grid: Grid

    @staticmethod
    def zeros(grid: Grid) -> CastCounts:
        n = int(np.prod(grid.shape))
        return CastCounts(np.zeros(n, np.int32), np.zeros(n, np.int32), grid)

    def view(self, a: np.ndarray) -> np.ndarray:
        return a.reshape(self.grid.shape)


def _walk_passes(o, pts, lo, hi, vs, shape, rel, ab, passes, stamp, sid):  # pragma: no cover - numba
    """Walk the rays from ``o (3,)`` to ``pts (N, 3)``, each stopped ``r (1 - rel) - ab`` along: a voxel
    entered is counted in ``passes`` once per sweep and not where this sweep hit (``stamp[v] == sid``: hit or
    passed by this sweep already; :func:`_count_hits` stamps the hits first)."""
    X, Y, Z = shape[0], shape[1], shape[2]
    d = np.empty(3)
    idx = np.empty(3, np.int64)
    step = np.empty(3, np.int64)
    tnext = np.empty(3)
    tdelta = np.empty(3)
    for i in range(pts.shape[0]):
        r = 0.0
        for a in range(3):
            d[a] = pts[i, a] - o[a]
            r += d[a] * d[a]
        r = np.sqrt(r)
        if r < 1e-6:
            continue
        for a in range(3):
            d[a] /= r
        tend = r * (1.0 - rel) - ab
        # the part of the ray inside the grid's box
        t0 = 0.0
        t1 = tend
        miss = False
        for a in range(3):
            if d[a] != 0.0:
                ta = (lo[a] - o[a]) / d[a]
                tb = (hi[a] - o[a]) / d[a]
                if ta > tb:
                    ta, tb = tb, ta
                if ta > t0:
                    t0 = ta
                if tb < t1:
                    t1 = tb
            elif o[a] < lo[a] or o[a] > hi[a]:
                miss = True
        if miss or t1 <= t0:
            continue
        for a in range(3):
            i_a = min(max(int(np.floor((o[a] + d[a] * t0 - lo[a]) / vs[a])), 0), shape[a] - 1)  # inside the grid
            idx[a] = i_a
            if d[a] > 0:
                step[a] = 1
                tnext[a] = (lo[a] + (i_a + 1) * vs[a] - o[a]) / d[a]
                tdelta[a] = vs[a] / d[a]
            elif d[a] < 0:
                step[a] = -1
                tnext[a] = (lo[a] + i_a * vs[a] - o[a]) / d[a]
                tdelta[a] = -vs[a] / d[a]
            else:
                step[a] = 0
                tnext[a] = np.inf
                tdelta[a] = np.inf
        t = t0
        i0, i1, i2 = idx[0], idx[1], idx[2]
        n0, n1, n2 = tnext[0], tnext[1], tnext[2]
        v = (i0 * Y + i1) * Z + i2
        while t < t1:
            if stamp[v] != sid:
                stamp[v] = sid
                passes[v] += 1
            # leave along the axis whose boundary comes first (the first of equal ones)
            if n0 <= n1 and n0 <= n2:
                t, n0, i0, v = n0, n0 + tdelta[0], i0 + step[0], v + step[0] * Y * Z
                if not 0 <= i0 < X:
                    break
            elif n1 <= n2:
                t, n1, i1, v = n1, n1 + tdelta[1], i1 + step[1], v + step[1] * Z
                if not 0 <= i1 < Y:
                    break
            else:
                t, n2, i2, v = n2, n2 + tdelta[2], i2 + step[2], v + step[2]
                if not 0 <= i2 < Z:
                    break


def _count_hits(pts, lo, vs, shape, hits, stamp, sid):  # pragma: no cover - numba
    """Each return's voxel counted once per sweep, stamped ``sid`` (so this sweep's walk passes it by)."""
    X, Y, Z = shape[0], shape[1], shape[2]
    for i in range(pts.shape[0]):
        ix = int(np.floor((pts[i, 0] - lo[0]) / vs[0]))
        iy = int(np.floor((pts[i, 1] - lo[1]) / vs[1]))
        iz = int(np.floor((pts[i, 2] - lo[2]) / vs[2]))
        if ix < 0 or iy < 0 or iz < 0 or ix >= X or iy >= Y or iz >= Z:
            continue
        v = (ix * Y + iy) * Z + iz
        if stamp[v] != sid:
            stamp[v] = sid
            hits[v] += 1


def _kernels():
    """The walks compiled by numba (once per process, cached on disk by numba)."""
    kernels = numba_kernels(_count_hits, _walk_passes)
    if kernels is None:  # pragma: no cover - numba is a dependency
        raise ImportError("occkit label's ray walks need numba (a dependency of occkit): pip install numba")
    return kernels


def _grid_arrays(grid: Grid) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    lo = np.asarray(grid.range_min, np.float64)
    hi = np.asarray(grid.range_max, np.float64)
    vs = np.asarray(grid.voxel_size, np.float64)
    return lo, hi, vs, np.asarray(grid.shape, np.int64)


class SweepCaster:
    """Accumulates :class:`CastCounts` sweep by sweep (each sweep counted once per voxel)."""

    def __init__(self, grid: Grid, carve_rel: float = 0.15, carve_abs: float = 0.2) -> None:
        if not (0 <= carve_rel < 1 and carve_abs >= 0):
            raise ValueError(f"carve_rel must lie in [0, 1) and carve_abs be >= 0, got {carve_rel}, {carve_abs}")
        self.counts = CastCounts.zeros(grid)
        self.rel, self.abs = float(carve_rel), float(carve_abs)
        n = self.counts.hits.shape[0]
        self._stamp = np.full(n, -1, np.int32)  # the last sweep that hit or passed each voxel
        self._sid = 0

    def add(self, origin: np.ndarray, points: np.ndarray) -> None:
        """One sweep: ``origin (3,)`` and returns ``points (N, 3)``, grid frame."""
        hits, walk = _kernels()
        lo, hi, vs, shape = _grid_arrays(self.counts.grid)
        o = np.ascontiguousarray(origin, np.float64)
        p = np.ascontiguousarray(points, np.float64)
        sid = np.int32(self._sid)
        hits(p, lo, vs, shape, self.counts.hits, self._stamp, sid)  # first: a voxel hit is not also seen through
        walk(o, p, lo, hi, vs, shape, self.rel, self.abs, self.counts.passes, self._stamp, sid)
        self._sid += 1
