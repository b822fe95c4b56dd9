"""The label pipeline's steps, each a pure function over arrays (docs/labels.md has the formulas).

- :func:`in_box` / :func:`assign_to_boxes`: which points lie in which box (with a metric margin);
- :func:`to_box_frame` / :func:`from_box_frame`: a track's points in its own box frame and back;
- :func:`ego_points`: the returns off the ego vehicle itself;
- :func:`knn_vote`: a class for unlabelled points by a vote of their labelled neighbours;
- :func:`fill_ground`: ground columns left empty between LiDAR rings filled from their neighbours;
- :func:`erase_trails`: voxels more sweeps saw through than hit become free;
- :func:`vote_voxels`: points to a voxel grid by a majority vote.
"""

from __future__ import annotations

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
) -> np.ndarray:
    """A class for each of ``queries (Q, 3)``: the most common class among its ``k`` nearest
    ``labelled (L, 3)`` points no farther than ``max_dist`` (ties: the nearest neighbour's
    class), or -1 where none is that near.

    Returns:
        ``(Q,)`` int64.
    """
    out = np.full(len(queries), -1, np.int64)
    if not len(labelled) or not len(queries):
        return out
    from scipy.spatial import cKDTree

    k = max(1, min(int(k), len(labelled)))
    tree = cKDTree(labelled)
    labels = np.asarray(labels, np.int64)
    for a in range(0, len(queries), chunk):  # in chunks: a scene's millions of queries in bounded memory
        out[a : a + chunk] = _vote(tree, labels, queries[a : a + chunk], k, max_dist, num_classes)
    return out


def _vote(tree, labels: np.ndarray, queries: np.ndarray, k: int, max_dist: float, num_classes: int) -> np.ndarray:
    dist, idx = tree.query(queries, k=k, distance_upper_bound=max_dist, workers=1)
    if k == 1:
        dist, idx = dist[:, None], idx[:, None]
    ok = np.isfinite(dist)  # (Q, k); missing neighbours have idx == len(labelled)
    C1 = num_classes + 1
    lab = np.where(ok, labels[np.minimum(idx, len(labels) - 1)], num_classes)  # num_classes: no vote
    Q = len(queries)
    votes = np.bincount((np.arange(Q)[:, None] * C1 + lab).ravel(), minlength=Q * C1).reshape(Q, C1)[:, :num_classes]
    top = votes.max(1)
    has = top > 0
    winner = votes.argmax(1)
    # ties: the nearest neighbour's class, when it is among the tied
    nn = lab[:, 0]
    tied = (votes == top[:, None]).sum(1) > 1
    nn_top = votes[np.arange(Q), np.minimum(nn, num_classes - 1)] == top
    winner = np.where(tied & has & (nn < num_classes) & nn_top, nn, winner)
    return np.where(has, winner, -1)


def fill_ground(
    semantics: np.ndarray,
    ground_classes: tuple[int, ...],
    free: int,
    max_gap: int,
    observed_above: np.ndarray | None = None,
) -> np.ndarray:
    """Fill ground columns left empty between LiDAR rings.

    A column ``(x, y)`` with no occupied voxel gets, at the height of the nearest column (within
    ``max_gap`` voxels, in the x-y plane) whose lowest occupied voxel is of a ground class, that
    column's ground class. With ``observed_above (X, Y, Z)`` bool, only columns some ray looked
    into are filled (a column no sensor saw stays empty).

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
    is_ground = any_occ & np.isin(low_cls, ground_classes)
    if not is_ground.any():
        return semantics.copy()
    dist, (ix, iy) = distance_transform_edt(~is_ground, return_indices=True)
    fill = ~any_occ & (dist <= max_gap)
    if observed_above is not None:
        fill &= observed_above.any(2)
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


def vote_voxels(points: np.ndarray, labels: np.ndarray, grid: Grid, free: int, min_points: int = 1) -> np.ndarray:
    """Voxelise labelled points by a majority vote: a voxel with at least ``min_points`` points
    takes the class most of them have (ties: the smaller id); every other voxel is ``free``.

    Args:
        points: ``(N, 3)`` in the grid's frame (outside points are dropped); labels: ``(N,)``
            integer classes in ``[0, free)``.
    Returns:
        ``(X, Y, Z)`` uint8.
    """
    out = np.full(int(np.prod(grid.shape)), free, np.uint8)
    flat = voxel_index(points, grid)
    ok = flat >= 0
    flat, lab = flat[ok], np.asarray(labels, np.int64)[ok]
    if not len(flat):
        return out.reshape(grid.shape)
    C = int(free) + 1
    keys, counts = np.unique(flat * C + lab, return_counts=True)  # sorted by voxel, then class
    vox, cls = keys // C, keys % C
    # per voxel: the class with the most points, the smaller id among ties (stable sort on -count)
    order = np.lexsort((cls, -counts, vox))
    vox, cls, counts = vox[order], cls[order], counts[order]
    first = np.ones(len(vox), bool)
    first[1:] = vox[1:] != vox[:-1]
    total = np.add.reduceat(counts, np.nonzero(first)[0])
    win_vox, win_cls = vox[first], cls[first]
    keep = total >= min_points
    out[win_vox[keep]] = win_cls[keep].astype(np.uint8)
    return out.reshape(grid.shape)
