"""``occkit label --find-moving``'s objects (occkit.labelgen.find_moving.moving_objects): a long object that
covers its own old places is found whole once followed from sweep to sweep; a static object's few returns found
moving stay few."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from test_find_moving import _cast, _rings, sweep_scene  # noqa: E402

from occkit.data.scene_record import SceneRecord
from occkit.labelgen.find_moving import MovingSearch, _track_moves, dynamic_points, moving_objects

BUS, PARKED, WALL = 3, 4, 1


def _street(n: int = 16) -> SceneRecord:
    """A sensor at rest 1.8 m above the ground, a wall 25 m ahead; a 10 m bus 10 m to the left drives along its
    length at 3 m/s, its body 0.3 m off the ground (2.25 m over the scene: most of its side is where some of it
    was at every other sweep); a car parked 8 m to the right. Sweeps at 20 Hz, no boxes."""
    dirs = _rings(np.linspace(-30.67, 10.67, 32), 0.4)
    park_lo, park_hi = np.array([-2.0, -10.0, -1.5]), np.array([2.0, -8.0, 0.0])
    clouds = []
    for i in range(n):
        bus_lo = np.array([-6.0 + 3.0 * 0.05 * i, 9.0, -1.5])
        bus_hi = bus_lo + [10.0, 2.5, 2.7]
        r = np.minimum(_cast(dirs, bus_lo, bus_hi), _cast(dirs, park_lo, park_hi))
        ok = np.isfinite(r) & (r < 60)
        pts = dirs[ok] * r[ok, None]
        on_bus = np.all((pts >= bus_lo - 1e-6) & (pts <= bus_hi + 1e-6), axis=1)
        parked = np.all((pts >= park_lo - 1e-6) & (pts <= park_hi + 1e-6), axis=1)
        lab = np.where(on_bus, BUS, np.where(parked, PARKED, np.where(pts[:, 2] < -1.79, 2, WALL)))
        clouds.append((pts, lab))
    return sweep_scene("street", clouds, classes=("others", "wall", "ground", "bus", "car"))


def _share(rec: SceneRecord, dyn: list[np.ndarray], label: int) -> float:
    return sum(int((d & (s.labels == label)).sum()) for s, d in zip(rec.sweeps, dyn)) / sum(
        int((s.labels == label).sum()) for s in rec.sweeps
    )


def test_a_long_object_covering_its_own_old_places_is_found_whole():
    rec = _street()
    per_return = dynamic_points(rec, MovingSearch(objects=False))
    whole = dynamic_points(rec, MovingSearch())
    # the returns no check passes through (the bus's side where the bus itself is at the other sweeps' times)
    # are left by the per-return test and found with the object
    assert _share(rec, per_return, BUS) < 0.8, _share(rec, per_return, BUS)
    assert _share(rec, whole, BUS) >= 0.95, _share(rec, whole, BUS)
    assert _share(rec, whole, PARKED) == 0 and _share(rec, whole, WALL) == 0


def test_a_static_objects_few_returns_found_moving_stay_few():
    """The parked car's returns nearest its corner taken for moving at every sweep (as a beam passing beside an
    edge can make them): its track stands still, and nothing more of it becomes moving; the bus's front, found
    at every sweep, brings the whole bus."""
    rec = _street()
    search = MovingSearch()
    T_gs = [s.T_global_from_ego @ rec.lidars[s.sensor] for s in rec.sweeps]
    dyn, cands = [], []
    for s in rec.sweeps:
        p = s.points
        d = np.zeros(len(p), bool)
        car = np.nonzero(s.labels == PARKED)[0]
        d[car[np.argsort(np.linalg.norm(p[car] - [2.0, -8.0, 0.0], axis=1))[:5]]] = True
        bus = np.nonzero(s.labels == BUS)[0]
        d[bus[p[bus, 0] > p[bus, 0].max() - 0.5]] = True  # its front
        dyn.append(d)
        cands.append(np.nonzero(p[:, 2] > -1.5)[0])
    out = moving_objects(rec, dyn, cands, T_gs, search)
    assert _share(rec, out, BUS) >= 0.95
    assert _share(rec, out, PARKED) == _share(rec, dyn, PARKED) > 0
    # the same car driving off (shifted 0.2 m a sweep) is moving, all of it
    moved = [
        replace(s, points=s.points + np.where(s.labels[:, None] == PARKED, [0.2 * i, 0, 0], 0).astype(np.float32))
        for i, s in enumerate(rec.sweeps)
    ]
    out = moving_objects(replace(rec, sweeps=moved), dyn, cands, T_gs, search)
    assert _share(rec, out, PARKED) >= 0.95


def test_a_track_moves_when_its_centre_travels_steadily():
    search = MovingSearch()
    t = np.arange(8) * 0.1
    steady = np.c_[1.5 * t, np.zeros(8), np.zeros(8)]  # 1.05 m in 0.7 s
    assert _track_moves(t, steady, search)
    # standing still, or a group that jumps once when it splits from something else
    assert not _track_moves(t, np.zeros((8, 3)), search)
    jump = np.zeros((8, 3))
    jump[4:, 0] = 2.0
    assert not _track_moves(t, jump, search)
    # too few sweeps to tell; faster than anything drives
    assert not _track_moves(t[:2], steady[:2], search)
    assert not _track_moves(t, 50.0 * steady, search)
