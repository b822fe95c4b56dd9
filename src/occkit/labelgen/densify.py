"""``occkit label --densify tsdf``: the surfaces between a LiDAR's rings filled by a truncated signed distance
field (TSDF) along the rays and marching cubes (docs/labels.md, "Imperfect recordings").

Per keyframe, on the label grid's region at ``voxel_ratio`` of its voxel:

1. every static return of the keyframe's window updates the voxels its ray crosses within ``truncation``
   metres of the return: the signed distance along the ray (positive in front of the surface, negative
   behind), clipped to the truncation and averaged over rays (weight 1 a ray; numba);
2. the field and its weights are averaged over each voxel's 3 x 3 x 3 neighbourhood, so that a surface seen
   by the rings above and below a gap is continued across it (a voxel no ray came near stays unknown);
3. the surface is the field's zero level (marching cubes, scikit-image) where enough rays weigh in
   (``min_weight``) at both ends of a vertex's edge (not where the truncation band ends and the field meets
   the unknown); each vertex becomes a new point at the centre of its edge's sample behind the surface, so it
   lands in the voxel the surface crosses, not in the free voxel in front of it (which would thicken the
   surface by a voxel). Each takes the class the returns of its label-grid voxel vote (else a neighbouring
   voxel's), and those of a class other than the ground are added to the keyframe's points (the ground has
   its own fill, which the pipeline runs as if the new points were absent, :func:`fill_ground_beside`, so a
   point above the ground does not keep the fill out of its column). A point no labelled return is near
   (within a voxel) is dropped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from occkit.geometry.grid import Grid
from occkit.jit import numba_kernels


@dataclass(frozen=True)
class TSDFDensify:
    """The densification's settings (docs/labels.md, "Imperfect recordings")."""

    method: str = "none"
    """``tsdf``: densify by a TSDF along the rays (``occkit label --densify tsdf``); ``none``: no densification."""

    voxel_ratio: float = 0.5
    """The TSDF voxel as a fraction of the label grid's voxel."""
    truncation: float = 0.6
    """Metres: the signed distance is updated this far in front of and behind each return."""
    min_weight: float = 2.0
    """Rays (after the neighbourhood average, times 27) a voxel needs for its surface to be kept."""


def _integrate(o, pts, seg, lo, vs, shape, trunc, tsdf, weight):  # pragma: no cover - numba
    """Each point ``pts[i]`` (from origin ``o[seg[i]]``) updates the voxels its ray crosses within ``trunc``
    of it: sampled every half voxel along the ray from ``r - trunc`` to ``r + trunc``."""
    nx, ny, nz = shape[0], shape[1], shape[2]
    step = 0.5 * vs
    for i in range(pts.shape[0]):
        s = seg[i]
        dx = pts[i, 0] - o[s, 0]
        dy = pts[i, 1] - o[s, 1]
        dz = pts[i, 2] - o[s, 2]
        r = (dx * dx + dy * dy + dz * dz) ** 0.5
        if r < 1e-6:
            continue
        dx /= r
        dy /= r
        dz /= r
        t = r - trunc
        if t < 0.0:
            t = 0.0
        last = -1
        while t <= r + trunc:
            x = o[s, 0] + t * dx
            y = o[s, 1] + t * dy
            z = o[s, 2] + t * dz
            ix = int(math.floor((x - lo[0]) / vs))
            iy = int(math.floor((y - lo[1]) / vs))
            iz = int(math.floor((z - lo[2]) / vs))
            if 0 <= ix < nx and 0 <= iy < ny and 0 <= iz < nz:
                flat = (ix * ny + iy) * nz + iz
                if flat != last:  # the signed distance of the voxel's centre along the ray
                    cx = lo[0] + (ix + 0.5) * vs - o[s, 0]
                    cy = lo[1] + (iy + 0.5) * vs - o[s, 1]
                    cz = lo[2] + (iz + 0.5) * vs - o[s, 2]
                    d = r - (cx * dx + cy * dy + cz * dz)
                    if d > trunc:
                        d = trunc
                    if d < -trunc:
                        d = -trunc
                    tsdf[flat] += d / trunc
                    weight[flat] += 1.0
                    last = flat
            t += step


def tsdf_surface(
    origins: np.ndarray, points: np.ndarray, segment: np.ndarray, grid: Grid, settings: TSDFDensify
) -> np.ndarray:
    """The zero level of the TSDF of ``points (N, 3)`` (each seen from ``origins[segment[i]]``) over ``grid``'s
    region at ``settings.voxel_ratio`` of its voxel: the marching-cubes vertices ``(M, 3)`` (grid frame)."""
    return _surface(origins, points, segment, grid, settings)[0]


def _surface(
    origins: np.ndarray, points: np.ndarray, segment: np.ndarray, grid: Grid, settings: TSDFDensify
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`tsdf_surface`'s vertices ``(M, 3)`` and, for each, the centre of the sample behind it ``(M, 3)``:
    a vertex lies on the edge between two samples (TSDF voxels) of opposite sign, both known (not where the
    truncation band ends and the field meets the unknown, taken as in front); the behind one is in the
    surface's own voxel."""
    from scipy.ndimage import uniform_filter
    from skimage.measure import marching_cubes

    vs = float(min(grid.voxel_size)) * settings.voxel_ratio
    lo = np.asarray(grid.range_min, np.float64)
    shape = tuple(int(math.ceil((h - low) / vs)) for low, h in zip(grid.range_min, grid.range_max))
    tsdf = np.zeros(int(np.prod(shape)), np.float32)
    weight = np.zeros(int(np.prod(shape)), np.float32)
    kernels = numba_kernels(_integrate)
    integrate = kernels[0] if kernels is not None else _integrate
    integrate(
        np.ascontiguousarray(origins, np.float64),
        np.ascontiguousarray(points, np.float64),
        np.ascontiguousarray(segment, np.int64),
        lo,
        vs,
        np.asarray(shape, np.int64),
        float(settings.truncation),
        tsdf,
        weight,
    )
    num = uniform_filter(tsdf.reshape(shape), size=3, mode="constant")
    w = uniform_filter(weight.reshape(shape), size=3, mode="constant")
    known = w * 27 >= settings.min_weight
    if not known.any() or known.all():
        return np.zeros((0, 3)), np.zeros((0, 3))
    field = np.where(known, num / np.maximum(w, 1e-9), 1.0).astype(np.float32)
    if field.min() > 0 or field.max() < 0:
        return np.zeros((0, 3)), np.zeros((0, 3))
    verts, _, _, _ = marching_cubes(field, level=0.0, mask=known)  # in samples
    # the edge's two ends: the vertex's coordinates rounded, but along the edge's axis its floor and floor + 1
    rows = np.arange(len(verts))
    a = np.round(verts).astype(np.int64)
    axis = np.abs(verts - a).argmax(1)
    a[rows, axis] = np.floor(verts[rows, axis]).astype(np.int64)
    b = a.copy()
    b[rows, axis] += 1
    hi = np.asarray(shape) - 1
    a, b = np.clip(a, 0, hi), np.clip(b, 0, hi)
    both = known[tuple(a.T)] & known[tuple(b.T)]
    behind = np.where((field[tuple(a.T)] < field[tuple(b.T)])[:, None], a, b)
    centre = lo + vs / 2  # voxel centres: index i lies at lo + (i + 0.5) vs
    return verts[both] * vs + centre, behind[both] * vs + centre


def densify_points(
    origins: np.ndarray,
    points: np.ndarray,
    segment: np.ndarray,
    labels: np.ndarray,
    grid: Grid,
    ground: tuple[int, ...],
    n_classes: int,
    settings: TSDFDensify | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """New surface points ``(M, 3)`` and their classes ``(M,)`` for the static returns ``points`` (grid frame,
    classes ``labels`` in ``0 .. n_classes - 1``, -1 none; each seen from ``origins[segment[i]]``):
    :func:`tsdf_surface`'s vertices in a voxel of the label grid, or next to one, whose returns vote a class
    other than the ground (the voxel's own vote first, else its neighbours'), each placed at its edge's sample
    behind the surface (in the voxel the surface crosses, not the free one in front)."""
    from scipy.ndimage import maximum_filter

    from occkit.labelgen.steps import grid_index, vote_flat

    settings = settings if settings is not None else TSDFDensify()
    _, verts = _surface(origins, points, segment, grid, settings)  # each vertex at the sample behind it
    if not len(verts) or not len(points):
        return np.zeros((0, 3), np.float32), np.zeros(0, np.int64)
    free = n_classes
    flat, _ = grid_index(np.ascontiguousarray(points, np.float32), grid, labels)
    voted = vote_flat([flat], [labels.astype(np.int64)], grid, free, 1).astype(np.int64)
    near = np.where(voted == free, -1, voted)
    near = np.where(near >= 0, near, maximum_filter(near, size=3, mode="constant", cval=-1))  # a neighbour's vote
    vflat, _ = grid_index(verts.astype(np.float32), grid)
    cls = np.full(len(verts), -1, np.int64)
    inside = vflat >= 0
    cls[inside] = near.reshape(-1)[vflat[inside]]
    keep = (cls >= 0) & ~np.isin(cls, np.asarray(ground, np.int64))
    return verts[keep].astype(np.float32), cls[keep]


def fill_ground_beside(
    semantics: np.ndarray, added: np.ndarray, free: int, fill: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """``fill(semantics)`` (the ground fill, :func:`occkit.labelgen.steps.fill_ground`) run as if the voxels
    ``added (X, Y, Z)`` bool (occupied by the densification's points only) were free, then merged: those voxels
    keep their class, the fill adds the rest. A vertex above the ground no longer makes its column non-empty."""
    added = added & (semantics != free)
    filled = fill(np.where(added, free, semantics))
    return np.where(added, semantics, filled)
