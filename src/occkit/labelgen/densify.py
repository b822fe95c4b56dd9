"""``occkit label --densify tsdf``: the surfaces between a LiDAR's rings filled by a truncated signed distance
field (TSDF) along the rays and marching cubes (docs/labels.md, "Imperfect recordings").

Per keyframe, on the label grid's region at ``voxel_ratio`` of its voxel:

1. every static return of the keyframe's window updates the voxels its ray crosses within ``truncation``
   metres of the return: the signed distance along the ray (positive in front of the surface, negative
   behind), clipped to the truncation and averaged over rays (weight 1 a ray; numba);
2. the field and its weights are averaged over each voxel's 3 x 3 x 3 neighbourhood, so that a surface seen
   by the rings above and below a gap is continued across it (a voxel no ray came near stays unknown);
3. the surface is the field's zero level (marching cubes, scikit-image) where enough rays weigh in
   (``min_weight``), its vertices are new points; those a class vote of the returns near them (``knn``
   within ``max_dist``) gives a class that is not the ground are added to the keyframe's points (the
   ground has its own fill). Points no labelled return is near are dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from occkit.geometry.grid import Grid
from occkit.jit import numba_kernels


@dataclass(frozen=True)
class TSDFDensify:
    """The densification's settings (docs/labels.md, "Imperfect recordings")."""

    voxel_ratio: float = 0.5
    """The TSDF voxel as a fraction of the label grid's voxel."""
    truncation: float = 0.6
    """Metres: the signed distance is updated this far in front of and behind each return."""
    min_weight: float = 2.0
    """Rays (after the neighbourhood average, times 27) a voxel needs for its surface to be kept."""
    max_dist: float = 0.6
    """Metres: a new point takes the class of the returns within this distance (none: dropped)."""
    knn: int = 5


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
        return np.zeros((0, 3))
    field = np.where(known, num / np.maximum(w, 1e-9), 1.0).astype(np.float32)
    if field.min() > 0 or field.max() < 0:
        return np.zeros((0, 3))
    verts, _, _, _ = marching_cubes(field, level=0.0, spacing=(vs, vs, vs), mask=known)
    return verts + lo + vs / 2  # voxel centres: index i lies at lo + (i + 0.5) vs


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
    classes ``labels``, each seen from ``origins[segment[i]]``): :func:`tsdf_surface`'s vertices that the
    returns near them class as something other than the ground."""
    from occkit.labelgen.steps import knn_vote

    settings = settings or TSDFDensify()
    verts = tsdf_surface(origins, points, segment, grid, settings)
    if not len(verts) or not len(points):
        return np.zeros((0, 3), np.float32), np.zeros(0, np.int64)
    known = labels >= 0
    cls = knn_vote(
        points[known].astype(np.float32),
        labels[known].astype(np.int64),
        verts.astype(np.float32),
        settings.knn,
        settings.max_dist,
        n_classes,
    )
    keep = (cls >= 0) & ~np.isin(cls, np.asarray(ground, np.int64))
    return verts[keep].astype(np.float32), cls[keep].astype(np.int64)
