"""``occkit label --find-moving``: moving objects found from the sweeps themselves, with or without boxes
(docs/labels.md, "Imperfect recordings").

A return is *dynamic* when other sweeps' rays pass through where it was: the sensor later (or earlier) saw
farther than the return along the same direction, so the space was empty then (visibility-based removal, as
Removert- and ERASOR-style methods do). Per scene:

1. each sweep's range image (azimuth x elevation cells, the nearest return of each cell, optionally the nearest
   of each cell's neighbourhood: a more conservative image that passes through a point only where every return
   around it lies beyond it); along the elevations the sensor's beams fired at, a direction with no return in
   its cell nor in the cells beside it saw open space, up to the sweep's farthest return (passes through
   everything there; an empty cell between two with returns is a gap of the sampling: unknown);
2. every static return above the ground (``ground_clearance``; not the ego vehicle's, not in a given box)
   projected into the range images of up to ``checks`` other sweeps at least ``min_gap`` seconds away. A check
   *passes through* the return when that image's range exceeds the return's by ``margin_abs + margin_rel *
   range`` **and** the check holds no return near it (within ``surface_abs`` plus ``surface_beams`` of its
   beam spacing at that range, farther where its rays skim the return's surface: ``grazing_deg``): a beam that
   passes just under a parked car's body, over a tree's crown or beside a wall's edge sees beyond the returns
   of that edge that fall in its cell, but the check saw the surface all the same. A check *sees it again*
   when its range there is the return's or it holds a return that near; a check whose view was hidden by
   something nearer says nothing;
3. a return passed through by at least ``min_votes`` checks, and by at least ``min_share`` of the checks that
   passed through it or saw it again, is dynamic; the dynamic region then grows, a few steps, through the
   returns that some check passed through (and no more saw again) and that lie near a dynamic one (an object's
   lower edge and sides, which fewer checks see through); then each sweep's dynamic returns carry to the next
   sweep and back to the one before (``carry_radius``): a return no check decided whose nearest return of the
   neighbouring sweep is dynamic is dynamic (an object moving with the sensor or away from it covers its own
   later places in every sweep before them, and the last sweeps have no check after them); a static surface
   does not creep, its nearest returns of the other sweep being its own, not dynamic. The whole is done twice:
   the second time a surface seen again that the first found dynamic says nothing (the object itself at
   another time);
4. the objects are followed as wholes (:func:`moving_objects`): each sweep's returns above the ground joined to
   the dynamic ones are an object, an object and one of the next sweep that touch are the same, and a track
   whose centre moves steadily is a moving object, all its returns dynamic (a slow object covers its own old
   places at the other sweeps' times: no check passes through them, and the carry has nothing to start from);
   a static object's few returns taken for moving stand still and stay few;
5. each sweep's dynamic returns are clustered (points within ``cluster_radius`` of each other) and every
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
    world without boxes, before the surface test, it left 32.2 trail voxels a keyframe of 107 where 0 left 16.5;
    docs/results/labels.md)."""
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
    """And the share of the checks that passed through it or saw it again which must pass through it (a check
    whose view of it was hidden by something nearer is not counted: an object coming towards the sensor hides
    its own earlier places from the sweeps after)."""
    cluster_radius: float = 0.6
    """Metres: dynamic returns nearer than this are one object."""
    ground_clearance: float = 0.25
    """Metres above the sweep's ground level below which a return is never dynamic (the ground, skimmed at grazing
    angles, changes range fast with elevation) and a dynamic region does not grow."""
    grow_radius: float = 0.4
    """Metres: a return some check saw through joins a dynamic return this near (``grow_steps`` times)."""
    grow_steps: int = 3
    grazing_deg: float = 60.0
    """Degrees between a check's ray and a flat surface's normal: the distance within which the check's returns
    count as the surface seen again (``surface_abs``, ``surface_beams``) is divided by the angle's cosine, down
    to this angle's (a ray that skims a surface samples it sparsely along the ray; a return's surface is flat
    where its ``normal_k`` nearest returns of its sweep are)."""
    normal_k: int = 8
    """Nearest returns of its sweep a return's surface normal is taken from."""
    carry_radius: float = 0.6
    """Metres: a return no check decided (or that more checks passed through than saw again) is dynamic when the
    nearest return of the sweep before or after it, this near, is (an object that moves with the sensor, or
    towards it, hides its later places from every sweep before them: the sweeps at the end of a scene have no
    check after them)."""
    open_range: float = 1000.0
    """Metres: the range given to a direction along one of the sensor's beams where no return lies around it
    (it saw nothing: it passes through every return of another sweep there)."""
    surface_abs: float = 0.1
    """Metres: a check that holds a return (above the ground) this near a return, plus ``surface_beams`` of its
    beam spacing at that range, saw the same surface again: it does not pass through it, whatever its range image
    says (a beam passing just beside a static object's edge, under a parked car, over a tree's crown, sees beyond
    the object's returns that fall in its cell), and it counts against the return being dynamic."""
    surface_beams: float = 1.0
    """Beam spacings (the sweep's own, measured from its returns' elevations) added to ``surface_abs`` per metre of
    range: the farthest a surface's nearest return of another sweep can lie from a return of it."""
    objects: bool = True
    """Follow each object found moving as a whole (:func:`moving_objects`): the returns above the ground joined to
    the dynamic ones (``object_link_beams``) are one object, followed from sweep to sweep; a track whose centre
    moves is a moving object, all its returns dynamic (an object that covers its own old places at the other
    sweeps' times leaves returns no check passes through)."""
    object_link_beams: float = 1.5
    """Beam spacings at the return's range (at least ``cluster_radius``) within which returns are one object: an
    object's rings lie a beam spacing apart, its returns along a ring far closer."""
    object_max_size: float = 20.0
    """Metres: the longest object (an articulated bus or lorry is under 19 m); a larger group of joined returns is
    the static scene joined to something, and keeps only the returns found dynamic."""
    object_link: float = 0.6
    """Metres: an object of one sweep and one of the next with returns this near are the same object (a sweep
    later it has moved far less: 0.25 m at 5 m/s and 20 Hz)."""
    object_max_growth: float = 2.0
    """An object a sweep later holds at most this many times as many returns, and as few as its inverse (a group of
    returns that grows or shrinks more split from or joined something else: its centre jumps)."""
    object_min_sweeps: int = 3
    """Sweeps a track must span to be judged."""
    object_min_travel: float = 1.0
    """Metres a track's centre must travel over the track (a static object's centre, its visible part changing
    with the sensor's place, drifts less)."""
    object_max_scatter: float = 0.25
    """The farthest its centres may lie from a straight line (root mean square), a share of the travel."""
    object_max_step: float = 0.5
    """The most of the travel one step from a sweep to the next may carry (an object moves steadily; a group of a
    static object's returns that splits or joins jumps once)."""
    object_max_speed: float = 40.0
    """Metres a second: faster is no object."""


def beam_spacing(points: np.ndarray, fallback_deg: float) -> float:
    """Radians between neighbouring beams of the sensor that swept ``points (N, 3)`` (sensor frame): the median
    gap between the elevations that hold many returns (``fallback_deg`` where fewer than 4 such beams show)."""
    r = np.linalg.norm(points, axis=1)
    keep = r > 1e-6
    el = np.degrees(np.arcsin(np.clip(points[keep, 2] / r[keep], -1, 1)))
    if len(el) < 100:
        return math.radians(fallback_deg)
    bins = np.round(el / 0.1).astype(np.int64)
    vals, counts = np.unique(bins, return_counts=True)
    beams = vals[counts >= max(20, 0.2 * float(np.median(counts)))]
    # neighbouring bins are one beam (an elevation on a bin's edge)
    starts = beams[np.r_[True, np.diff(beams) > 2]] if len(beams) else beams
    if len(starts) < 4:
        return math.radians(fallback_deg)
    return math.radians(float(np.median(np.diff(starts))) * 0.1)


def range_image(points: np.ndarray, search: MovingSearch) -> tuple[np.ndarray, float, float, np.ndarray, float]:
    """The conservative range image of sensor-frame ``points (N, 3)``: ``(image (E, A) float32, elevation of
    row 0, cell size, owner (E, A), reach)``; a cell without a return in its neighbourhood is ``inf``; ``owner``:
    the index of each cell's own nearest return (-1: none); ``reach``: the farthest return's range (a direction
    that saw nothing saw open space up to there, not beyond)."""
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
    owner = np.full((rows, cols), -1, np.int64)
    order = np.lexsort((r, ri * cols + ci))  # by cell, nearest first: the first of each cell owns it
    cell = (ri * cols + ci)[order]
    first = np.r_[True, cell[1:] != cell[:-1]] if len(cell) else np.zeros(0, bool)
    owner.ravel()[cell[first]] = np.nonzero(keep)[0][order[first]]
    beam_rows = np.isfinite(img).any(1)  # the elevations a beam of the sensor fired along
    k = 2 * search.neighbourhood + 1
    img = minimum_filter(img, size=(k, k), mode=("constant", "wrap"), cval=np.inf)
    # along a beam, a direction with no return anywhere around it saw nothing up to the sensor's range (the sky,
    # open space): it passes through whatever lay there at another sweep's time
    # (an empty cell between two that hold returns is a gap of the sampling, not open space: unknown)
    empty = ~np.isfinite(img)
    img[beam_rows[:, None] & empty & np.roll(empty, 1, axis=1) & np.roll(empty, -1, axis=1)] = search.open_range
    return img, el0, search.elevation_deg, owner, float(r.max()) if len(r) else 0.0


def passes_through(
    points: np.ndarray,
    image: tuple[np.ndarray, float, float, np.ndarray, float],
    search: MovingSearch,
    owners: bool = False,
) -> tuple[np.ndarray, ...]:
    """For sensor-frame ``points (N, 3)`` of another sweep and a :func:`range_image`: ``(hit, through)``,
    whether the image's range at each point's direction is the point's (within the margin: it saw the point's
    surface), and whether it saw beyond the point; with ``owners``, also the return each point's cell holds
    (-1: none)."""
    img, el0, el_step, owner, reach = image
    r = np.linalg.norm(points, axis=1)
    r_safe = np.maximum(r, 1e-6)
    az = np.degrees(np.arctan2(points[:, 1], points[:, 0])) % 360.0
    el = np.degrees(np.arcsin(np.clip(points[:, 2] / r_safe, -1, 1)))
    ri = np.floor((el - el0) / el_step).astype(np.int64)
    ci = (az / search.azimuth_deg).astype(np.int64) % img.shape[1]
    inside = (ri >= 0) & (ri < img.shape[0]) & (r > 1e-6)
    got = np.full(len(points), np.inf, np.float32)
    got[inside] = img[ri[inside], ci[inside]]
    margin = search.margin_abs + search.margin_rel * r
    through = np.isfinite(got) & (got > r + margin)
    through &= (got < search.open_range) | (r + margin < reach)  # open space known only within the sensor's reach
    hit = np.abs(got - r) <= margin
    if not owners:
        return hit, through
    own = np.full(len(points), -1, np.int64)
    own[inside] = owner[ri[inside], ci[inside]]
    return hit, through, own


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


class _Surfaces:
    """Each sweep's returns above the ground in the world frame (a k-d tree, built when first asked) and its beam
    spacing: what a check saw again (:attr:`MovingSearch.surface_abs`)."""

    def __init__(self, rec: SceneRecord, T_gs: list[np.ndarray], search: MovingSearch, ego_margin: float) -> None:
        self.rec, self.T_gs, self.search, self.ego_margin = rec, T_gs, search, ego_margin
        self._trees: dict[int, Any] = {}
        self.spacing = [beam_spacing(s.points.astype(np.float64), search.elevation_deg) for s in rec.sweeps]

    def tree(self, k: int) -> Any:
        if k not in self._trees:
            from scipy.spatial import cKDTree

            from occkit.labelgen.steps import ego_points

            s = self.rec.sweeps[k]
            p = s.points.astype(np.float64)
            T_el = self.rec.lidars[s.sensor]
            p_ego = p @ T_el[:3, :3].T + T_el[:3, 3]
            # a little lower than the candidates' ground clearance: a surface's returns just above it, seen again
            # a few centimetres lower, still count
            keep = _above_ground(p_ego, 0.5 * self.search.ground_clearance)
            keep &= ~ego_points(p_ego, self.rec.ego_size, self.rec.ego_center, self.ego_margin)
            T = self.T_gs[k]
            self._trees[k] = (cKDTree(p[keep] @ T[:3, :3].T + T[:3, 3]), np.nonzero(keep)[0])
        return self._trees[k][0]

    def nearest(self, k: int, pw: np.ndarray, radius: float) -> np.ndarray:
        """The index in sweep ``k`` of the return (above the ground) nearest each of ``pw (N, 3)``, -1 where none
        lies within ``radius``."""
        tree = self.tree(k)
        if not tree.n or not len(pw):
            return np.full(len(pw), -1, np.int64)
        d, j = tree.query(pw, distance_upper_bound=radius)
        ok = np.isfinite(d)
        out = np.full(len(pw), -1, np.int64)
        out[ok] = self._trees[k][1][j[ok]]
        return out

    def seen_again(self, k: int, pw: np.ndarray, r: np.ndarray, stretch: np.ndarray | None = None) -> np.ndarray:
        """The return of sweep ``k`` nearest each of world points ``pw (N, 3)`` (``r``: their ranges from its
        sensor) within ``surface_abs + surface_beams * spacing * r``, times ``stretch`` (-1: none that near)."""
        if not len(pw):
            return np.zeros(0, np.int64)
        tol = self.search.surface_abs + self.search.surface_beams * self.spacing[k] * r
        if stretch is not None:
            tol = tol * stretch
        near = self.nearest(k, pw, float(tol.max()))
        if (near >= 0).any():  # the nearest within the largest tolerance: within its own?
            T = self.T_gs[k]
            j = np.nonzero(near >= 0)[0]
            p = self.rec.sweeps[k].points[near[j]].astype(np.float64) @ T[:3, :3].T + T[:3, 3]
            near[j[np.linalg.norm(p - pw[j], axis=1) > tol[j]]] = -1
        return near


def _votes(
    rec: SceneRecord,
    i: int,
    pw: np.ndarray,
    images: list,
    surfaces: _Surfaces,
    search: MovingSearch,
    found: list[np.ndarray] | None = None,
    normals: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """For world points ``pw (N, 3)`` of sweep ``i``: ``(through, again)``, how many checks passed through each
    (saw beyond it and held no return near it) and how many saw its surface again (at its range, or near it).
    With ``found`` (each sweep's dynamic returns, a first pass), a surface seen again that is a dynamic return
    says nothing (a moving object that covers its own later places, driving away or alongside). With ``normals``
    (:func:`surface_normals`), the distance within which a check's return counts as the point's surface seen
    again grows where the check's ray skims that surface."""
    skim = math.cos(math.radians(search.grazing_deg))
    votes = np.zeros(len(pw), np.int32)
    again = np.zeros(len(pw), np.int32)
    for k in _check_sweeps(rec, i, search):
        Tk = np.linalg.inv(surfaces.T_gs[k])
        q = pw @ Tk[:3, :3].T + Tk[:3, 3]
        hit, through, owner = passes_through(q, images[k], search, owners=True)
        if through.any():  # a beam beside the point's surface saw beyond it: is the surface there all the same?
            j = np.nonzero(through)[0]
            rj = np.linalg.norm(q[j], axis=1)
            stretch = None
            if normals is not None:  # a surface the check's rays skim: its returns lie farther apart along them
                n = normals[j] @ surfaces.T_gs[k][:3, :3]  # the normals in sweep k's sensor frame
                cos = np.abs((q[j] * n).sum(1)) / np.maximum(rj, 1e-9)
                stretch = np.where(np.linalg.norm(n, axis=1) > 0, 1.0 / np.maximum(cos, skim), 1.0)
            near = surfaces.seen_again(k, pw[j], rj, stretch)
            back = near >= 0
            through[j[back]] = False
            hit[j[back]] = True
            owner[j[back]] = near[back]
        if found is not None:
            hit &= ~((owner >= 0) & found[k][np.maximum(owner, 0)])
        votes += through
        again += hit
    return votes, again


def surface_normals(pw: np.ndarray, idx: np.ndarray, k: int) -> np.ndarray:
    """Unit normals ``(len(idx), 3)`` of the surface at returns ``pw[idx]`` from their ``k`` nearest returns of
    ``pw (N, 3)``; zero where the neighbourhood is not flat (its least spread over a quarter of its middle: an
    edge, a pole, foliage)."""
    out = np.zeros((len(idx), 3))
    if len(pw) <= k or not len(idx) or k < 3:
        return out
    from scipy.spatial import cKDTree

    _, nb = cKDTree(pw).query(pw[idx], k=k)
    x = pw[nb] - pw[nb].mean(1, keepdims=True)
    w, v = np.linalg.eigh(np.einsum("nki,nkj->nij", x, x))
    flat = w[:, 0] < 0.25 * w[:, 1]
    out[flat] = v[flat, :, 0]
    return out


def dynamic_points(
    rec: SceneRecord, search: MovingSearch, box_margin: float = 0.2, ego_margin: float = 0.2
) -> list[np.ndarray]:
    """Per sweep, whether each of its returns is dynamic (``(N,)`` bool; the ego's and boxed returns are not).
    Two passes: the second does not count a surface seen again that the first found dynamic."""
    T_gs = [s.T_global_from_ego @ rec.lidars[s.sensor] for s in rec.sweeps]
    images = [range_image(s.points.astype(np.float64), search) for s in rec.sweeps]
    surfaces = _Surfaces(rec, T_gs, search, ego_margin)
    cands = []
    for i, s in enumerate(rec.sweeps):
        p = s.points.astype(np.float64)
        T_el = rec.lidars[s.sensor]
        p_ego = p @ T_el[:3, :3].T + T_el[:3, 3]
        pw = p @ T_gs[i][:3, :3].T + T_gs[i][:3, 3]
        # the ground, skimmed at grazing angles, is never dynamic: its range changes fast with elevation
        static = _static_mask(rec, i, pw, p_ego, box_margin, ego_margin) & _above_ground(p_ego, search.ground_clearance)
        idx = np.nonzero(static)[0]
        cands.append((idx, pw, surface_normals(pw, idx, search.normal_k)))
    found = None
    for _ in range(2):
        found = _one_pass(rec, cands, images, surfaces, search, found)
    if search.objects:
        found = moving_objects(rec, found, [c[0] for c in cands], T_gs, search)
    return found


def _one_pass(
    rec: SceneRecord,
    cands: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    images: list,
    surfaces: _Surfaces,
    search: MovingSearch,
    found: list[np.ndarray] | None,
) -> list[np.ndarray]:
    """Each sweep's dynamic returns from its candidates' votes (:func:`_votes`), grown, carried."""
    out, undecided, world = [], [], []
    for i, (idx, pw, normals) in enumerate(cands):
        votes, again = _votes(rec, i, pw[idx], images, surfaces, search, found, normals)
        dyn = np.zeros(len(pw), bool)
        # the checks that passed through it against those that saw its surface again (a check whose view of it
        # was hidden by something nearer says nothing)
        leans = votes >= search.min_share * (votes + again)
        dyn[idx] = (votes >= search.min_votes) & leans
        some = np.zeros(len(pw), bool)  # what the region grows through: a return one check saw through, at least
        some[idx] = (votes >= 1) & leans  # as many as saw it again
        out.append(_grown(dyn, some, pw, search))
        undecided.append(np.zeros(len(pw), bool))
        undecided[-1][idx] = leans
        world.append(pw)
    return _carried(out, undecided, world, surfaces, search)


def _carried(
    dyn: list[np.ndarray], allowed: list[np.ndarray], pw: list[np.ndarray], surfaces: _Surfaces, search: MovingSearch
) -> list[np.ndarray]:
    """``dyn`` carried from each sweep to the next, then back from each to the one before: an ``allowed`` return
    whose nearest return of the neighbouring sweep (within ``carry_radius``) is dynamic becomes dynamic. A static
    surface does not creep: its returns' nearest are its own returns of the other sweep, not dynamic."""
    out = [d.copy() for d in dyn]
    n = len(out)
    if search.carry_radius <= 0 or n < 2:
        return out
    for i, j in [(i, i - 1) for i in range(1, n)] + [(i, i + 1) for i in range(n - 2, -1, -1)]:
        if not out[j].any():
            continue
        cand = np.nonzero(allowed[i] & ~out[i])[0]
        if not len(cand):
            continue
        near = surfaces.nearest(j, pw[i][cand], search.carry_radius)
        hit = near >= 0
        hit[hit] = out[j][near[hit]]
        out[i][cand[hit]] = True
    return out


def moving_objects(
    rec: SceneRecord, dyn: list[np.ndarray], cands: list[np.ndarray], T_gs: list[np.ndarray], search: MovingSearch
) -> list[np.ndarray]:
    """``dyn`` with every moving object's returns dynamic. Per sweep, the candidate returns (``cands``: above the
    ground, not the ego's, not boxed) joined within ``object_link_beams`` beam spacings are objects (those that
    hold a dynamic return and are no longer than ``object_max_size``); an object of one sweep and one of the next
    that touch (``object_link``) are the same object, followed so from sweep to sweep (:func:`_tracks`). A track
    whose centre moves (:func:`_track_moves`) is a moving object: all its returns are dynamic, the parts that it
    covers itself at the other sweeps' times (which no check passes through) with the parts that were found."""
    pw = [s.points.astype(np.float64) @ T[:3, :3].T + T[:3, 3] for s, T in zip(rec.sweeps, T_gs)]
    objs = [_objects(rec, i, pw[i], cands[i], dyn[i], search) for i in range(len(rec.sweeps))]
    t = np.array([s.timestamp for s in rec.sweeps], np.float64) * 1e-6
    out = [d.copy() for d in dyn]
    for track in _tracks(pw, objs, search.object_link, search.object_max_growth):
        by_sweep: dict[int, list[np.ndarray]] = {}
        for i, o in track:
            by_sweep.setdefault(i, []).append(objs[i][o])
        sweeps = sorted(by_sweep)
        centres = np.array([pw[i][np.concatenate(by_sweep[i])].mean(0) for i in sweeps])
        if _track_moves(t[sweeps], centres, search):
            for i in sweeps:
                out[i][np.concatenate(by_sweep[i])] = True
    return out


def _tracks(
    pw: list[np.ndarray], objs: list[list[np.ndarray]], link: float, growth: float
) -> list[list[tuple[int, int]]]:
    """The objects (``objs[i]``: each sweep's, as indices of its returns ``pw[i]``) joined into tracks: an object
    and one of the next sweep with returns within ``link`` of each other, and no more than ``growth`` times as many
    returns one as the other, are one (connected components)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    ids = [(i, o) for i in range(len(objs)) for o in range(len(objs[i]))]
    if not ids:
        return []
    first = np.cumsum([0] + [len(o) for o in objs])
    edges = []
    for i in range(len(objs) - 1):
        if not objs[i] or not objs[i + 1]:
            continue
        nxt = np.concatenate(objs[i + 1])
        owner = np.repeat(np.arange(len(objs[i + 1])), [len(m) for m in objs[i + 1]])
        tree = cKDTree(pw[i + 1][nxt])
        for o, members in enumerate(objs[i]):
            d, j = tree.query(pw[i][members], distance_upper_bound=link)
            for b in np.unique(owner[j[np.isfinite(d)]]):
                if max(len(members), len(objs[i + 1][b])) <= growth * min(len(members), len(objs[i + 1][b])):
                    edges.append((first[i] + o, first[i + 1] + b))
    e = np.array(edges, np.int64).reshape(-1, 2)
    n = len(ids)
    g = coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n))
    comp = connected_components(g, directed=False)[1]
    return [[ids[k] for k in np.nonzero(comp == c)[0]] for c in np.unique(comp)]


def _track_moves(t: np.ndarray, centres: np.ndarray, search: MovingSearch) -> bool:
    """Whether a track's centres ``(S, 3)`` at times ``t (S,)`` (seconds) move: a straight line through them in the
    horizontal (least squares) travels ``object_min_travel`` metres or more over the track, no faster than
    ``object_max_speed``, the centres lie within ``object_max_scatter`` of the travel from it and no step from a
    sweep to the next carries more than ``object_max_step`` of it (a static object whose group of returns splits
    from or joins another jumps; one seen from a passing sensor drifts little)."""
    if len(t) < search.object_min_sweeps:
        return False
    tt = t - t.mean()
    if float((tt**2).sum()) <= 0:
        return False
    xy = centres[:, :2] - centres[:, :2].mean(0)
    v = (tt[:, None] * xy).sum(0) / (tt**2).sum()
    travel = float(np.linalg.norm(v)) * float(t.max() - t.min())
    scatter = float(np.sqrt(((xy - tt[:, None] * v) ** 2).sum(1).mean()))
    fast = float(np.linalg.norm(v)) > search.object_max_speed
    jump = float(np.linalg.norm(np.diff(centres[:, :2], axis=0), axis=1).max()) > search.object_max_step * travel
    return travel >= search.object_min_travel and scatter <= search.object_max_scatter * travel and not (fast or jump)


def _objects(
    rec: SceneRecord, i: int, pw: np.ndarray, cand: np.ndarray, dyn: np.ndarray, search: MovingSearch
) -> list[np.ndarray]:
    """Sweep ``i``'s objects: the groups of candidate returns joined within ``object_link_beams`` beam spacings (at
    least ``cluster_radius``) that hold a dynamic return and are no longer than ``object_max_size``; each as its
    returns' indices."""
    if not dyn.any():
        return []
    from scipy.spatial import cKDTree

    cand = np.union1d(cand, np.nonzero(dyn)[0])
    # only the returns near a dynamic one (a group reaching farther than twice the longest object from its dynamic
    # returns stays too long for one when cut there)
    d, _ = cKDTree(pw[dyn]).query(pw[cand], distance_upper_bound=2.0 * search.object_max_size)
    cand = cand[np.isfinite(d)]
    s = rec.sweeps[i]
    r = np.linalg.norm(s.points[cand].astype(np.float64), axis=1)  # from the sensor
    spacing = beam_spacing(s.points.astype(np.float64), search.elevation_deg)
    link = np.maximum(search.cluster_radius, search.object_link_beams * spacing * r)
    # joined at a tenth of a metre's resolution: one return of each 0.1 m cell stands for the cell (near the sensor
    # the returns are dense, and their pairs many)
    _, first, inverse = np.unique(
        np.floor(pw[cand] / 0.1).astype(np.int64), axis=0, return_index=True, return_inverse=True
    )
    comp = _linked(pw[cand[first]], link[first])[inverse.ravel()]
    out = []
    for c in np.unique(comp[dyn[cand]]):
        members = cand[comp == c]
        if np.ptp(pw[members, :2], axis=0).max() <= search.object_max_size:
            out.append(members)
    return out


def _linked(points: np.ndarray, link: np.ndarray) -> np.ndarray:
    """Connected components of ``points (N, 3)``, two joined when nearer than the smaller of their ``link`` radii
    (which grow with range: the pairs are sought band by band of radius, each among the points of that radius and
    more, where the points are sparser)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    n = len(points)
    pairs = [np.zeros((0, 2), np.int64)]
    edge, lo = float(link.min()), -np.inf
    while len(points):  # the pairs whose smaller radius lies in (lo, edge]: among the points of radius over lo
        idx = np.nonzero(link > lo)[0]
        if len(idx) > 1:
            p = idx[cKDTree(points[idx]).query_pairs(edge, output_type="ndarray")]
            d = np.linalg.norm(points[p[:, 0]] - points[p[:, 1]], axis=1)
            pairs.append(p[d <= np.minimum(link[p[:, 0]], link[p[:, 1]])])
        if edge >= float(link.max()):
            break
        lo, edge = edge, 2.0 * edge
    pairs = np.concatenate(pairs)
    g = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(g, directed=False)[1]


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
