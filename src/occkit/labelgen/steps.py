"""The label pipeline's steps, each a pure function over arrays (docs/labels.md has the formulas).

- :func:`in_box` / :func:`assign_to_boxes`: which points lie in which box (with a metric margin);
- :func:`to_box_frame` / :func:`from_box_frame`: a track's points in its own box frame and back;
- :func:`ego_points`: the returns off the ego vehicle itself;
- :func:`knn_vote`: a class for unlabelled points by a vote of their labelled neighbours;
- :func:`fill_ground`: ground columns left empty between LiDAR rings filled from their neighbours;
- :func:`erase_trails`: voxels more sweeps saw through than hit become free;
- :func:`vote_voxels`: points to a voxel grid by a majority vote;
- :func:`object_hull` / :func:`hull_voxels`: a track's solid, the convex hull of its points gathered over the
  whole track in its box frame, and the voxels it fills at a box.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from occkit.data.scene_record import Boxes
from occkit.geometry.grid import Grid


def _rot(yaw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.cos(yaw), np.sin(yaw)


def to_box_frame(points: np.ndarray, center: np.ndarray, yaw: float) -> np.ndarray:
    """World ``(N, 3)`` -> the box frame (origin at the centre, x along the heading):
    ``R(yaw)^T (p - c)``."""
    c, s = np.cos(yaw), np.sin(yaw)
    q = points - center
    return np.stack([c * q[:, 0] + s * q[:, 1], -s * q[:, 0] + c * q[:, 1], q[:, 2]], 1)


def from_box_frame(points: np.ndarray, center: np.ndarray, yaw: float) -> np.ndarray:
    """The box frame -> world: ``R(yaw) q + c``."""
    c, s = np.cos(yaw), np.sin(yaw)
    return (
        np.stack([c * points[:, 0] - s * points[:, 1], s * points[:, 0] + c * points[:, 1], points[:, 2]], 1) + center
    )


def in_box(q: np.ndarray, size: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """Whether box-frame points ``q (N, 3)`` lie within the box of ``size (3,)`` grown by
    ``margin`` metres on every side: ``|q_a| <= size_a / 2 + margin`` on each axis."""
    half = np.asarray(size, np.float64) / 2 + margin
    return (np.abs(q) <= half).all(1)


def assign_to_boxes(points: np.ndarray, boxes: Boxes, margin: float) -> np.ndarray:
    """For world points ``(N, 3)``, the index of the box holding each one (grown by ``margin``
    metres on every side), or -1. A point in two grown boxes goes to the one whose centre is
    nearer."""
    out = np.full(len(points), -1, np.int64)
    if not len(boxes) or not len(points):
        return out
    best = np.full(len(points), np.inf)
    reach = np.linalg.norm(boxes.size[:, :2], axis=1) / 2 + margin
    xy = points[:, :2]
    # candidate points of each box: inside its bounding circle (a sort on x keeps this cheap)
    order = np.argsort(xy[:, 0], kind="stable")
    xs = xy[order, 0]
    for k in range(len(boxes)):
        c = boxes.center[k]
        a, b = np.searchsorted(xs, [c[0] - reach[k], c[0] + reach[k]])
        if a == b:
            continue
        cand = order[a:b]
        cand = cand[np.abs(xy[cand, 1] - c[1]) <= reach[k]]
        if not len(cand):
            continue
        q = to_box_frame(points[cand], c, float(boxes.yaw[k]))
        ins = in_box(q, boxes.size[k], margin)
        cand, q = cand[ins], q[ins]
        dist = np.linalg.norm(q, axis=1)
        better = dist < best[cand]
        out[cand[better]] = k
        best[cand[better]] = dist[better]
    return out


def ego_points(
    points_ego: np.ndarray, size: tuple[float, float, float], center: tuple[float, float, float], margin: float
) -> np.ndarray:
    """Whether ego-frame points ``(N, 3)`` are returns off the ego vehicle: inside its box
    (``size`` (l, w, h) about ``center``) grown by ``margin`` metres."""
    q = points_ego - np.asarray(center, np.float64)
    return in_box(q, np.asarray(size, np.float64), margin)


def knn_vote(
    labelled: np.ndarray,
    labels: np.ndarray,
    queries: np.ndarray,
    k: int,
    max_dist: float,
    num_classes: int,
    chunk: int = 200_000,
    tree: Any = None,
) -> np.ndarray:
    """A class for each of ``queries (Q, 3)``: the most common class among its ``k`` nearest
    ``labelled (L, 3)`` points no farther than ``max_dist`` (ties: the nearest neighbour's
    class), or -1 where none is that near. ``tree``: scipy's ``cKDTree`` of ``labelled`` when one
    was built already (the points, not their labels, make the tree).

    Returns:
        ``(Q,)`` int64.
    """
    out = np.full(len(queries), -1, np.int64)
    if not len(labelled) or not len(queries):
        return out
    from scipy.spatial import cKDTree

    k = max(1, min(int(k), len(labelled)))
    tree = cKDTree(labelled) if tree is None else tree
    labels = np.asarray(labels, np.int64)
    vote = _vote_kernels()[4]
    votes = np.zeros(num_classes, np.int64)
    for a in range(0, len(queries), chunk):  # in chunks: a scene's millions of queries in bounded memory
        dist, idx = tree.query(queries[a : a + chunk], k=k, distance_upper_bound=max_dist, workers=1)
        if k == 1:
            dist, idx = dist[:, None], idx[:, None]
        vote(dist, idx, labels, votes, out[a : a + chunk])
    return out


def _vote_neighbours(dist, idx, labels, votes, out):  # pragma: no cover - compiled by numba
    """:func:`knn_vote`'s vote over each query's neighbours (``dist, idx (Q, k)`` from the tree, a missing
    neighbour at an infinite distance): the class most of them carry (``votes (C,)``: scratch counts), ties
    to the nearest neighbour's class when it is among the tied, else the smaller id; -1 with no neighbour."""
    C = votes.shape[0]
    for q in range(dist.shape[0]):
        for j in range(dist.shape[1]):
            if np.isfinite(dist[q, j]):
                c = labels[idx[q, j]]
                if 0 <= c < C:
                    votes[c] += 1
        top = 0
        win = -1
        tied = 0
        for c in range(C):
            if votes[c] > top:
                top = votes[c]
                win = c
                tied = 1
            elif votes[c] == top and top > 0:
                tied += 1
        if win >= 0 and tied > 1 and np.isfinite(dist[q, 0]):
            nn = labels[idx[q, 0]]
            if 0 <= nn < C and votes[nn] == top:
                win = nn
        out[q] = win
        for c in range(C):
            votes[c] = 0


#: the side, in metres, of the x-y window whose lowest occupied voxel is the local ground for ``fill_ground(...,
#: by_height=...)`` (wider than a car; 9 voxels at Occ3D's 0.4 m)
GROUND_WINDOW_M = 3.6


def ground_window(voxel: float) -> int:
    """:data:`GROUND_WINDOW_M` in voxels of side ``voxel`` metres, odd (a window centred on its column)."""
    return int(round(GROUND_WINDOW_M / voxel)) // 2 * 2 + 1


def fill_ground(
    semantics: np.ndarray,
    ground_classes: tuple[int, ...],
    free: int,
    max_gap: int,
    observed_above: np.ndarray | None = None,
    by_height: int = 0,
    seen_through: np.ndarray | None = None,
) -> np.ndarray:
    """Fill ground columns left empty between LiDAR rings.

    A column ``(x, y)`` with no occupied voxel gets, at the height of the nearest column (within
    ``max_gap`` voxels, in the x-y plane) whose lowest occupied voxel is of a ground class, that
    column's ground class. With ``observed_above (X, Y, Z)`` bool, only columns some ray looked
    into are filled (a column no sensor saw stays empty). ``seen_through (X, Y, Z)`` bool (the voxels a
    camera's rays cross before anything occupied stops them: the camera mask of the unfilled labels): a column
    is filled too where the voxel the fill would place is one of them, LiDAR ray or not. A camera ray that
    crosses the ground's height in an empty column went on below the ground, which no ray does: what its pixel
    saw is the ground the LiDAR missed there (a LiDAR ray that hits nothing beyond a column is no ray at all,
    so far ground, seen by the cameras, is otherwise left free and inside the camera mask). ``by_height``
    (labels without classes: geometry only; the window's side in voxels, :func:`ground_window`): a column's
    lowest occupied voxel is ground where it lies at most one voxel above the lowest of the columns within that
    window (a wall or a car seen from its top is higher) and is of the class most such voxels have (the points'
    one class: a boxed object's lowest voxel is of its box's class); the fill takes that class.

    Args:
        semantics: ``(X, Y, Z)`` integer classes, ``free`` where empty.
    Returns:
        a filled copy.
    """
    from scipy.ndimage import distance_transform_edt

    X, Y, Z = semantics.shape
    occ = semantics != free
    any_occ = occ.any(2)
    lowest = np.where(any_occ, occ.argmax(2), -1)
    low_cls = np.where(any_occ, np.take_along_axis(semantics, np.maximum(lowest, 0)[..., None], 2)[..., 0], free)
    if by_height:
        from scipy.ndimage import minimum_filter

        floor = minimum_filter(np.where(any_occ, lowest, Z), size=int(by_height), mode="nearest")
        low = any_occ & (lowest <= floor + 1)
        if not low.any():
            return semantics.copy()
        # of the low voxels, those of the class most of them have (the points' one class): not a boxed car's
        is_ground = low & (low_cls == np.bincount(low_cls[low].astype(np.int64)).argmax())
    else:
        is_ground = any_occ & np.isin(low_cls, ground_classes)
    if not is_ground.any():
        return semantics.copy()
    dist, (ix, iy) = distance_transform_edt(~is_ground, return_indices=True)
    fill = ~any_occ & (dist <= max_gap)
    if observed_above is not None or seen_through is not None:
        seen = np.zeros_like(fill) if observed_above is None else observed_above.any(2)
        if seen_through is not None:  # the camera looked through the height the ground is placed at
            seen |= np.take_along_axis(seen_through, lowest[ix, iy].clip(0)[..., None], 2)[..., 0]
        fill &= seen
    out = semantics.copy()
    fx, fy = np.nonzero(fill)
    sx, sy = ix[fx, fy], iy[fx, fy]
    out[fx, fy, lowest[sx, sy]] = low_cls[sx, sy]
    return out


def erase_trails(
    occupied: np.ndarray,
    hits: np.ndarray,
    passes: np.ndarray,
    ratio: float,
    max_hits: int,
    exempt: np.ndarray | None = None,
) -> np.ndarray:
    """Which occupied voxels are trails: seen through by at least ``ratio`` times as many sweeps
    as hit them, and hit by at most ``max_hits`` sweeps (a moving object's points left in the
    static scene are hit by the few sweeps it passed in, and seen through by all the others).

    Args:
        occupied, hits, passes: ``(X, Y, Z)``; exempt: ``(X, Y, Z)`` bool never erased (the
            voxels placed from a box's track).
    Returns:
        ``(X, Y, Z)`` bool, the voxels to make free.
    """
    trail = occupied & (hits <= max_hits) & (passes >= np.maximum(1, np.ceil(ratio * hits)))
    if exempt is not None:
        trail &= ~exempt
    return trail


def voxel_index(points: np.ndarray, grid: Grid) -> np.ndarray:
    """``(N,)`` int64 flat index (``(x * Y + y) * Z + z``) of the voxel holding each point, -1
    outside the grid: ``floor((p - range_min) / voxel_size)``."""
    lo = np.asarray(grid.range_min)
    vs = np.asarray(grid.voxel_size)
    shape = np.asarray(grid.shape)
    idx = np.floor((points - lo) / vs).astype(np.int64)
    ok = ((idx >= 0) & (idx < shape)).all(1)
    X, Y, Z = grid.shape
    flat = (idx[:, 0] * Y + idx[:, 1]) * Z + idx[:, 2]
    return np.where(ok, flat, -1)


def _index_in_grid(p, lab, lo, hi, vs, shape, flat):  # pragma: no cover - compiled by numba
    """:func:`grid_index`'s loop: the crop ``lo <= p < hi`` and :func:`voxel_index`'s floor, in float64."""
    Y, Z = shape[1], shape[2]
    n = 0
    for i in range(p.shape[0]):
        flat[i] = -1
        if lab[i] < 0:
            continue
        x, y, z = np.float64(p[i, 0]), np.float64(p[i, 1]), np.float64(p[i, 2])
        if not (lo[0] <= x < hi[0] and lo[1] <= y < hi[1] and lo[2] <= z < hi[2]):
            continue
        n += 1
        ix = int(np.floor((x - lo[0]) / vs[0]))
        iy = int(np.floor((y - lo[1]) / vs[1]))
        iz = int(np.floor((z - lo[2]) / vs[2]))
        if 0 <= ix < shape[0] and 0 <= iy < Y and 0 <= iz < Z:
            flat[i] = (ix * Y + iy) * Z + iz
    return n


def _assign_slots(flat, slot, vox_of, n):  # pragma: no cover - compiled by numba
    """Give each voxel ``flat`` holds a slot (``slot[v]``, in order of first point) once; returns the slots used."""
    for i in range(flat.shape[0]):
        v = flat[i]
        if v >= 0 and slot[v] < 0:
            slot[v] = n
            vox_of[n] = v
            n += 1
    return n


def _count_votes(flat, lab, slot, counts):  # pragma: no cover - compiled by numba
    """Each point's class counted in its voxel's slot (classes outside ``counts``' columns are not counted)."""
    C = counts.shape[1]
    for i in range(flat.shape[0]):
        v = flat[i]
        c = lab[i]
        if v >= 0 and 0 <= c < C:
            counts[slot[v], c] += 1


def _decide_votes(counts, vox_of, min_points, out):  # pragma: no cover - compiled by numba
    """Each slot's voxel takes its most counted class (the smaller id among ties) when it holds ``min_points``."""
    for s in range(counts.shape[0]):
        total = 0
        best = 0
        top = 0
        for c in range(counts.shape[1]):
            n = counts[s, c]
            total += n
            if n > top:
                top = n
                best = c
        if total >= min_points:
            out[vox_of[s]] = best


def _vote_kernels():
    """The votes' loops compiled by numba (once per process, cached on disk by numba)."""
    from occkit.jit import numba_kernels

    kernels = numba_kernels(_index_in_grid, _assign_slots, _count_votes, _decide_votes, _vote_neighbours)
    if kernels is None:  # pragma: no cover - numba is a dependency
        raise ImportError("occkit label's votes need numba (a dependency of occkit): pip install numba")
    return kernels


def grid_index(points: np.ndarray, grid: Grid, labels: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """The voxel of each point that lies in the grid's box (``range_min <= p < range_max``, in float64) and
    has a class (``labels >= 0``, where given): ``(N,)`` int64 flat index as :func:`voxel_index` gives it,
    -1 for the others; and how many points lie in the box with a class."""
    p = np.ascontiguousarray(points)
    lab = np.zeros(len(p), np.int8) if labels is None else np.ascontiguousarray(labels)
    flat = np.empty(len(p), np.int64)
    lo = np.asarray(grid.range_min, np.float64)
    hi = np.asarray(grid.range_max, np.float64)
    vs = np.asarray(grid.voxel_size, np.float64)
    n = _vote_kernels()[0](p, lab, lo, hi, vs, np.asarray(grid.shape, np.int64), flat)
    return flat, int(n)


def vote_flat(
    flats: list[np.ndarray], labels: list[np.ndarray], grid: Grid, free: int, min_points: int = 1
) -> np.ndarray:
    """:func:`vote_voxels` of points given as their voxels (``flats``, parts of :func:`grid_index`'s or
    :func:`voxel_index`'s flat indices, -1 not voted) and their classes (``labels``, the same parts):
    ``(X, Y, Z)`` uint8, without sorting (each voxel's counts in a slot of its own)."""
    _, assign, count, decide, _ = _vote_kernels()
    n_vox = int(np.prod(grid.shape))
    out = np.full(n_vox, free, np.uint8)
    slot = np.full(n_vox, -1, np.int32)
    vox_of = np.empty(min(n_vox, sum(len(f) for f in flats)), np.int32)
    n = 0
    for f in flats:
        n = assign(f, slot, vox_of, n)
    counts = np.zeros((n, int(free) + 1), np.int32)
    for f, lab in zip(flats, labels):
        count(f, np.ascontiguousarray(lab), slot, counts)
    decide(counts, vox_of, min_points, out)
    return out.reshape(grid.shape)


def vote_voxels(points: np.ndarray, labels: np.ndarray, grid: Grid, free: int, min_points: int = 1) -> np.ndarray:
    """Voxelise labelled points by a majority vote: a voxel with at least ``min_points`` points
    takes the class most of them have (ties: the smaller id); every other voxel is ``free``.

    Args:
        points: ``(N, 3)`` in the grid's frame (outside points are dropped); labels: ``(N,)``
            integer classes in ``[0, free)``.
    Returns:
        ``(X, Y, Z)`` uint8.
    """
    lab = np.asarray(labels)
    if len(lab) and (int(lab.min()) < 0 or int(lab.max()) > free):
        raise ValueError(f"vote_voxels: classes must lie in [0, {free}], got [{int(lab.min())}, {int(lab.max())}]")
    return vote_flat([voxel_index(points, grid)], [lab], grid, free, min_points)


class Hull(NamedTuple):
    """A convex solid in a box frame: its facets' planes ``(F, 4)`` (``a x + b y + c z + d <= 0`` inside) and
    its extent, ``lo (3,)`` and ``hi (3,)``."""

    planes: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


def object_hull(q: np.ndarray) -> Hull | None:
    """The convex hull of a track's box-frame points ``q (N, 3)``; None with fewer than 4 points or points
    that span no volume (a flat patch: its voxels are its points' own)."""
    from scipy.spatial import ConvexHull, QhullError

    q = np.unique(np.asarray(q, np.float64).round(3), axis=0)
    if len(q) < 4:
        return None
    try:
        hull = ConvexHull(q)
    except QhullError:
        return None
    if not hull.volume > 0:
        return None
    v = q[hull.vertices]
    return Hull(hull.equations, v.min(0), v.max(0))


def clip_hull(hull: Hull, size: np.ndarray) -> Hull | None:
    """``hull`` cut to the box of ``size (3,)`` (its frame's origin at the box's centre, as :func:`in_box`'s): the
    box's six faces added to its planes; None where nothing of it lies in the box."""
    half = np.asarray(size, np.float64) / 2
    lo, hi = np.maximum(hull.lo, -half), np.minimum(hull.hi, half)
    if (hi <= lo).any():
        return None
    eye = np.eye(3)
    box = np.concatenate([np.concatenate([eye, -half[:, None]], 1), np.concatenate([-eye, -half[:, None]], 1)])
    return Hull(np.concatenate([hull.planes, box]), lo, hi)


def hull_crossings(
    hull: Hull, origin: np.ndarray, points: np.ndarray, carve_rel: float, carve_abs: float, step: float
) -> np.ndarray:
    """Points ``(M, 3)`` every ``step`` metres along the stretch of each ray (``origin (3,)`` to each of
    ``points (N, 3)``, all in the hull's frame) that lies inside ``hull`` before ``r (1 - carve_rel) - carve_abs``
    (the stretch a return's own ray leaves uncarved, as the casting's): the hull's parts a ray saw through."""
    d = np.asarray(points, np.float64) - origin
    r = np.linalg.norm(d, axis=1)
    reach = r * (1 - carve_rel) - carve_abs
    centre, radius = (hull.lo + hull.hi) / 2, np.linalg.norm(hull.hi - hull.lo) / 2
    u = d / np.maximum(r, 1e-12)[:, None]
    along = (centre - origin) @ u.T
    near = (reach > 0) & (np.linalg.norm(origin + along[:, None] * u - centre, axis=1) <= radius)
    near &= along - radius < reach
    if not near.any():
        return np.zeros((0, 3))
    u, reach = u[near], reach[near]
    n, off = hull.planes[:, :3], hull.planes[:, 3]
    num = -(n @ origin + off)  # inside where t * (n . u) <= num
    den = u @ n.T  # (R, F)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = num[None] / den
    t0 = np.maximum(np.where(den < 0, t, -np.inf).max(1), 0.0)
    t1 = np.minimum(np.where(den > 0, t, np.inf).min(1), reach)
    ok = (t1 > t0) & ((den != 0) | (num[None] >= 0)).all(1)
    if not ok.any():
        return np.zeros((0, 3))
    u, t0, t1 = u[ok], t0[ok], t1[ok]
    k = np.floor((t1 - t0) / step).astype(np.int64) + 1
    ray = np.repeat(np.arange(len(u)), k)
    ts = t0[ray] + (np.arange(int(k.sum())) - np.repeat(np.cumsum(k) - k, k)) * step
    return origin + ts[:, None] * u[ray]


def hull_voxels(
    hull: Hull, T_box_from_grid: np.ndarray, grid: Grid, share: float = 0.0, samples: int = 3
) -> np.ndarray:
    """Flat indices (as :func:`voxel_index`'s) of the voxels of ``grid`` that ``hull`` (box frame,
    :func:`object_hull`) fills by more than ``share`` of their volume (0: every voxel it reaches), the volume
    taken as ``samples``^3 points on a regular lattice in each voxel. ``T_box_from_grid (4, 4)``: the box frame
    from the grid's frame."""
    T_gb = np.linalg.inv(T_box_from_grid)
    corners = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], np.float64)
    corners = hull.lo + corners * (hull.hi - hull.lo)
    c = corners @ T_gb[:3, :3].T + T_gb[:3, 3]
    lo = np.asarray(grid.range_min, np.float64)
    vs = np.asarray(grid.voxel_size, np.float64)
    shape = np.asarray(grid.shape, np.int64)
    i0 = np.clip(np.floor((c.min(0) - lo) / vs).astype(np.int64), 0, shape)
    i1 = np.clip(np.floor((c.max(0) - lo) / vs).astype(np.int64) + 1, 0, shape)
    if (i1 <= i0).any():
        return np.zeros(0, np.int64)
    idx = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(i0, i1)], indexing="ij"), -1).reshape(-1, 3)
    R, t, n, d = T_box_from_grid[:3, :3], T_box_from_grid[:3, 3], hull.planes[:, :3], hull.planes[:, 3]
    # a voxel whose lattice lies wholly beyond a facet, or wholly inside every facet, is decided by its centre (the
    # planes' normals are unit, the frame change rigid; a micrometre of margin): only the others are sampled
    reach = float(np.linalg.norm(vs * (0.5 - 0.5 / samples))) + 1e-6
    beyond = (((lo + (idx + 0.5) * vs) @ R.T + t) @ n.T + d).max(1)  # the centre's distance past its farthest facet
    share_in = (beyond <= -reach).astype(np.float64)
    edge = np.flatnonzero((beyond <= reach) & (share_in == 0))
    off = (np.arange(samples) + 0.5) / samples
    sub = np.stack(np.meshgrid(off, off, off, indexing="ij"), -1).reshape(-1, 3)
    pts = (lo + (idx[edge, None, :] + sub[None]) * vs).reshape(-1, 3)
    inside = ((pts @ R.T + t) @ n.T + d <= 1e-9).all(1).reshape(len(edge), len(sub))
    share_in[edge] = inside.mean(1)
    idx = idx[share_in > share]
    return (idx[:, 0] * shape[1] + idx[:, 1]) * shape[2] + idx[:, 2]
