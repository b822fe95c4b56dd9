"""``occkit label --find-moving``: moving objects found from the sweeps themselves, with or without boxes
(docs/labels.md, "Imperfect recordings").

A return is *dynamic* when other sweeps' rays pass through where it was: the sensor later (or earlier) saw
farther than the return along the same direction, so the space was empty then (visibility-based removal, as
Removert- and ERASOR-style methods do). Per scene:

1. each sweep's range image (azimuth x elevation cells, the nearest return of each cell, optionally the nearest
   of each cell's neighbourhood: a more conservative image that passes through a point only where every return
   around it lies beyond it); along the elevations the sensor's beams fired at, a direction with no return
   around it saw open space (passes through everything there);
2. every static return (not the ego vehicle's, not in a given box) projected into the range images of up to
   ``checks`` other sweeps at least ``min_gap`` seconds away; a check *passes through* the return when that
   image's range exceeds the return's by ``margin_abs + margin_rel * range``;
3. a return passed through by at least ``min_votes`` checks and by at least half of the checks that saw its
   direction, and lies above the ground (``ground_clearance``), is dynamic; the dynamic region then grows, a few
   steps, through the returns above the ground that
   some check saw through and that lie near a dynamic one (an object's lower edge and sides, which fewer
   checks see through);
4. each sweep's dynamic returns are clustered (points within ``cluster_radius`` of each other) and every
   cluster becomes a box of that sweep alone, with a track of its own: the label pipeline then keeps those
   returns out of the static scene, and places them in the one keyframe whose sweep holds them (the
   object where it is at that keyframe; its class the returns' majority label, else ``others``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from occkit.data.scene_record import Boxes, SceneRecord


@dataclass(frozen=True)
class MovingSearch:
    """The search's settings (docs/labels.md, "Imperfect recordings")."""

    enabled: bool = False
    """Search for moving returns (``occkit label --find-moving``)."""

    azimuth_deg: float = 0.4
    """Degrees: the range images' azimuth cell."""
    elevation_deg: float = 0.8
    """Degrees: the range images' elevation cell."""
    neighbourhood: int = 0
    """Cells on each side whose nearest return a check takes (0: the cell's own; 1: 3 x 3, more conservative: on a
    world without boxes it left 32.2 trail voxels a keyframe of 107, where 0 leaves 16.5; neither found a static
    return moving; docs/results/labels.md)."""
    margin_abs: float = 0.5
    """Metres a check must see beyond a return to pass through it."""
    margin_rel: float = 0.03
    """And this fraction of the return's range."""
    checks: int = 12
    """Sweeps each sweep's returns are checked against (spread over the scene)."""
    min_gap: float = 0.3
    """Seconds: sweeps nearer in time than this are not checked (an object has not left its own place)."""
    min_votes: int = 2
    """Checks that must pass through a return for it to be dynamic."""
    min_share: float = 0.5
    """And the share of the checks that saw its direction which must pass through it (an object coming towards
    the sensor hides its own earlier places from the sweeps after: those see it nearer, not through)."""
    cluster_radius: float = 0.6
    """Metres: dynamic returns nearer than this are one object."""
    ground_clearance: float = 0.25
    """Metres above the sweep's ground level below which a dynamic region does not grow."""
    grow_radius: float = 0.4
    """Metres: a return some check saw through joins a dynamic return this near (``grow_steps`` times)."""
    grow_steps: int = 3
    open_range: float = 1000.0
    """Metres: the range given to a direction along one of the sensor's beams where no return lies around it
    (it saw nothing: it passes through every return of another sweep there)."""


def range_image(points: np.ndarray, search: MovingSearch) -> tuple[np.ndarray, float, float]:
    """The conservative range image of sensor-frame ``points (N, 3)``: ``(image (E, A) float32, elevation of
    row 0, cell size)``; a cell without a return in its neighbourhood is ``inf``."""
    from scipy.ndimage import minimum_filter

    r = np.linalg.norm(points, axis=1)
    keep = r > 1e-6
    p, r = points[keep], r[keep]
    az = np.degrees(np.arctan2(p[:, 1], p[:, 0])) % 360.0
    el = np.degrees(np.arcsin(np.clip(p[:, 2] / r, -1, 1)))
    el0 = float(el.min()) - search.elevation_deg if len(el) else -90.0
    rows = int(math.ceil((float(el.max()) - el0) / search.elevation_deg)) + 2 if len(el) else 1
    cols = int(math.ceil(360.0 / search.azimuth_deg))
    img = np.full((rows, cols), np.inf, np.float32)
    ri = ((el - el0) / search.elevation_deg).astype(np.int64)
    ci = (az / search.azimuth_deg).astype(np.int64) % cols
    np.minimum.at(img, (ri, ci), r.astype(np.float32))
    beam_rows = np.isfinite(img).any(1)  # the elevations a beam of the sensor fired along
    k = 2 * search.neighbourhood + 1
    img = minimum_filter(img, size=(k, k), mode=("constant", "wrap"), cval=np.inf)
    # along a beam, a direction with no return anywhere around it saw nothing up to the sensor's range (the sky,
    # open space): it passes through whatever lay there at another sweep's time
    img[beam_rows[:, None] & ~np.isfinite(img)] = search.open_range
    return img, el0, search.elevation_deg


def passes_through(
    points: np.ndarray, image: tuple[np.ndarray, float, float], search: MovingSearch
) -> tuple[np.ndarray, np.ndarray]:
    """For sensor-frame ``points (N, 3)`` of another sweep and a :func:`range_image`: ``(seen, through)``,
    whether the image has a return around each point's direction, and whether it saw beyond the point."""
    img, el0, el_step = image
    r = np.linalg.norm(points, axis=1)
    r_safe = np.maximum(r, 1e-6)
    az = np.degrees(np.arctan2(points[:, 1], points[:, 0])) % 360.0
    el = np.degrees(np.arcsin(np.clip(points[:, 2] / r_safe, -1, 1)))
    ri = np.floor((el - el0) / el_step).astype(np.int64)
    ci = (az / search.azimuth_deg).astype(np.int64) % img.shape[1]
    inside = (ri >= 0) & (ri < img.shape[0]) & (r > 1e-6)
    got = np.full(len(points), np.inf, np.float32)
    got[inside] = img[ri[inside], ci[inside]]
    seen = np.isfinite(got)
    through = seen & (got > r + search.margin_abs + search.margin_rel * r)
    return seen, through


def _static_mask(rec: SceneRecord, i: int, pw: np.ndarray, p_ego: np.ndarray, box_margin: float, ego_margin: float):
    from occkit.labelgen.steps import assign_to_boxes, ego_points

    s = rec.sweeps[i]
    keep = ~ego_points(p_ego, rec.ego_size, rec.ego_center, ego_margin)
    if s.boxes is not None and len(s.boxes):
        keep &= assign_to_boxes(pw, s.boxes, box_margin) < 0
    return keep


def _check_sweeps(rec: SceneRecord, i: int, search: MovingSearch) -> list[int]:
    """Up to ``checks`` sweeps at least ``min_gap`` seconds from sweep ``i``, spread over the scene."""
    t = np.array([s.timestamp for s in rec.sweeps], np.float64) * 1e-6
    far = np.nonzero(np.abs(t - t[i]) >= search.min_gap)[0]
    if len(far) <= search.checks:
        return far.tolist()
    pick = np.linspace(0, len(far) - 1, search.checks).round().astype(np.int64)
    return far[np.unique(pick)].tolist()


def dynamic_points(
    rec: SceneRecord, search: MovingSearch, box_margin: float = 0.2, ego_margin: float = 0.2
) -> list[np.ndarray]:
    """Per sweep, whether each of its returns is dynamic (``(N,)`` bool; the ego's and boxed returns are not)."""
    T_gs = [s.T_global_from_ego @ rec.lidars[s.sensor] for s in rec.sweeps]
    images = [range_image(s.points.astype(np.float64), search) for s in rec.sweeps]
    out = []
    for i, s in enumerate(rec.sweeps):
        p = s.points.astype(np.float64)
        T_el = rec.lidars[s.sensor]
        p_ego = p @ T_el[:3, :3].T + T_el[:3, 3]
        pw = p @ T_gs[i][:3, :3].T + T_gs[i][:3, 3]
        static = _static_mask(rec, i, pw, p_ego, box_margin, ego_margin)
        idx = np.nonzero(static)[0]
        seen_n = np.zeros(len(idx), np.int32)
        votes = np.zeros(len(idx), np.int32)
        for k in _check_sweeps(rec, i, search):
            Tk = np.linalg.inv(T_gs[k])
            q = pw[idx] @ Tk[:3, :3].T + Tk[:3, 3]
            seen, through = passes_through(q, images[k], search)
            seen_n += seen
            votes += through
        dyn = np.zeros(len(p), bool)
        dyn[idx] = (votes >= search.min_votes) & (votes >= search.min_share * seen_n)
        some = np.zeros(len(p), bool)
        some[idx] = votes >= 1
        above = _above_ground(p_ego, search.ground_clearance)  # the ground, skimmed at grazing angles, is never
        out.append(_grown(dyn & above, some & above, pw, search))  # dynamic: its range changes fast with elevation
    return out


def _above_ground(p_ego: np.ndarray, clearance: float) -> np.ndarray:
    """Whether ego-frame returns lie ``clearance`` metres above the sweep's ground level (its lowest dense band
    of near returns): the returns an object's region may grow through (the ground joins everything)."""
    if not len(p_ego):
        return np.zeros(0, bool)
    near = np.hypot(p_ego[:, 0], p_ego[:, 1]) < 20.0
    z = p_ego[near, 2] if near.sum() >= 50 else p_ego[:, 2]
    return p_ego[:, 2] > float(np.percentile(z, 10)) + clearance


def _grown(dyn: np.ndarray, candidates: np.ndarray, pw: np.ndarray, search: MovingSearch) -> np.ndarray:
    """``dyn`` grown through ``candidates`` (returns some check saw through, above the ground) within
    ``grow_radius`` of a dynamic return, ``grow_steps`` times: the parts of a moving object that fewer checks
    saw through (its lower edge, its sides) join the parts that many did."""
    if not dyn.any() or not candidates.any() or search.grow_steps <= 0:
        return dyn
    from scipy.spatial import cKDTree

    cand = np.nonzero(candidates & ~dyn)[0]
    if not len(cand):
        return dyn
    tree = cKDTree(pw[cand])
    out = dyn.copy()
    front = np.nonzero(dyn)[0]
    for _ in range(search.grow_steps):
        hits = tree.query_ball_point(pw[front], search.grow_radius)
        new = np.unique(np.fromiter((j for h in hits for j in h), np.int64)) if len(front) else np.zeros(0, np.int64)
        new = cand[new]
        new = new[~out[new]]
        if not len(new):
            break
        out[new] = True
        front = new
    return out


def _clusters(points: np.ndarray, radius: float) -> np.ndarray:
    """Connected components of the points within ``radius`` of each other: a component id per point."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    n = len(points)
    pairs = cKDTree(points).query_pairs(radius, output_type="ndarray")
    g = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(g, directed=False)[1]


def _box_of(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The box around world points: yaw of their horizontal principal axis, centre and size in that frame."""
    xy = pts[:, :2] - pts[:, :2].mean(0)
    yaw = 0.0
    if len(pts) >= 3:
        w, v = np.linalg.eigh(np.cov(xy.T))
        yaw = float(math.atan2(v[1, -1], v[0, -1]))
    c, s = math.cos(yaw), math.sin(yaw)
    q = np.c_[pts[:, 0] * c + pts[:, 1] * s, -pts[:, 0] * s + pts[:, 1] * c, pts[:, 2]]
    lo, hi = q.min(0), q.max(0)
    mid = (lo + hi) / 2
    center = np.array([mid[0] * c - mid[1] * s, mid[0] * s + mid[1] * c, mid[2]])
    return center, np.maximum(hi - lo, 0.1), yaw


def find_moving(
    rec: SceneRecord, search: MovingSearch | None = None, box_margin: float = 0.2, ego_margin: float = 0.2
) -> tuple[SceneRecord, dict[str, Any]]:
    """``rec`` with each sweep's dynamic returns (:func:`dynamic_points`) boxed as objects of that sweep alone,
    and what was found (points found moving, per sweep and keyframe; the objects)."""
    search = search if search is not None else MovingSearch()
    dyn = dynamic_points(rec, search, box_margin, ego_margin)
    others = rec.classes.index("others") if "others" in rec.classes else 0
    next_track = 1 + max(
        (int(s.boxes.track.max()) for s in rec.sweeps if s.boxes is not None and len(s.boxes)), default=0
    )
    sweeps, per_keyframe, n_obj = [], {}, 0
    for s, d in zip(rec.sweeps, dyn):
        boxes = s.boxes if s.boxes is not None else Boxes.empty()
        if d.any():
            T = s.T_global_from_ego @ rec.lidars[s.sensor]
            pw = s.points[d].astype(np.float64) @ T[:3, :3].T + T[:3, 3]
            comp = _clusters(pw, search.cluster_radius)
            rows = []
            for c in np.unique(comp):
                m = comp == c
                center, size, yaw = _box_of(pw[m])
                lab = s.labels[d][m] if s.labels is not None else None
                cls = int(np.bincount(lab).argmax()) if lab is not None and len(lab) else others
                rows.append((next_track, cls, center, size, yaw))
                next_track += 1
            n_obj += len(rows)
            add = Boxes(
                track=np.array([r[0] for r in rows], np.int64),
                cls=np.array([r[1] for r in rows], np.int64),
                center=np.array([r[2] for r in rows]),
                size=np.array([r[3] for r in rows]),
                yaw=np.array([r[4] for r in rows]),
            )
            boxes = Boxes(*(np.concatenate([a, b]) for a, b in zip(_fields(boxes), _fields(add))))
        if s.keyframe:
            per_keyframe[s.token] = int(d.sum())
        sweeps.append(replace(s, boxes=boxes))
    report = {
        "points_found_moving": int(sum(int(d.sum()) for d in dyn)),
        "share_of_returns": round(float(sum(int(d.sum()) for d in dyn)) / max(sum(len(d) for d in dyn), 1), 5),
        "objects": n_obj,
        "per_keyframe": per_keyframe,
    }
    return replace(rec, sweeps=sweeps), report


def _fields(b: Boxes) -> tuple[np.ndarray, ...]:
    return (b.track, b.cls, b.center.reshape(-1, 3), b.size.reshape(-1, 3), b.yaw)
