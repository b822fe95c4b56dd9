"""``occkit label --find-moving`` (occkit.labelgen.find_moving): a passing object found moving with no box, the
static scene around it kept, and the object placed only at the keyframe whose sweep holds it."""

from __future__ import annotations

import numpy as np

from occkit.data.scene_record import SceneRecord, Sweep
from occkit.labelgen.find_moving import MovingSearch, dynamic_points, find_moving, passes_through, range_image


def _cast(dirs: np.ndarray, box_lo: np.ndarray, box_hi: np.ndarray, wall: float = 25.0) -> np.ndarray:
    """Ranges along unit ``dirs`` from the origin to the first of: a wall x = ``wall``, the ground z = -1.8, an
    axis-aligned box (a slab test)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t_wall = np.where(dirs[:, 0] > 0, wall / dirs[:, 0], np.inf)
        t_ground = np.where(dirs[:, 2] < 0, -1.8 / dirs[:, 2], np.inf)
        t1, t2 = (box_lo - 0) / dirs, (box_hi - 0) / dirs
        near = np.nanmax(np.minimum(t1, t2), axis=1)
        far = np.nanmin(np.maximum(t1, t2), axis=1)
    t_box = np.where((far >= near) & (near > 0), near, np.inf)
    return np.minimum(np.minimum(t_wall, t_ground), t_box)


def sweep_scene(
    name: str, clouds: list[tuple[np.ndarray, np.ndarray]], classes: tuple[str, ...], poses: list | None = None
) -> SceneRecord:
    """A scene of one LiDAR at the ego's origin (the sensor alone for the ego's box): one sweep a
    ``(points, labels)`` of ``clouds``, at ``poses`` (at rest when None), 20 Hz, a keyframe every 5, no boxes."""
    sweeps = [
        Sweep(
            token=f"s{i:02d}",
            timestamp=1_000_000 + 50_000 * i,
            sensor="L",
            T_global_from_ego=np.eye(4) if poses is None else poses[i],
            points=pts.astype(np.float32),
            labels=lab.astype(np.int64),
            keyframe=i % 5 == 0,
        )
        for i, (pts, lab) in enumerate(clouds)
    ]
    rec = SceneRecord(name, sweeps, {"L": np.eye(4)}, classes=classes)
    rec.ego_size, rec.ego_center = (0.5, 0.5, 0.5), (0.0, 0.0, 0.0)
    return rec


def _scene(n: int = 16) -> SceneRecord:
    """A sensor at rest 1.8 m above the ground before a wall 25 m ahead; a 2 m cube passes 12 m ahead, left
    to right at 8 m/s; sweeps at 20 Hz, a keyframe every 5, no boxes, every return labelled (wall 1, ground 2,
    cube 3)."""
    az, el = np.meshgrid(np.radians(np.arange(-60, 60, 0.25)), np.radians(np.arange(-15, 5, 1.0)))
    dirs = np.c_[(np.cos(el) * np.cos(az)).ravel(), (np.cos(el) * np.sin(az)).ravel(), np.sin(el).ravel()]
    clouds = []
    for i in range(n):
        y = 6.0 - 8.0 * 0.05 * i
        lo, hi = np.array([11.0, y - 1.0, -1.8]), np.array([13.0, y + 1.0, 0.2])
        r = _cast(dirs, lo, hi)
        ok = np.isfinite(r) & (r < 60)
        pts = dirs[ok] * r[ok, None]
        inside = np.all((pts >= lo - 1e-6) & (pts <= hi + 1e-6), axis=1)
        lab = np.where(inside, 3, np.where(pts[:, 2] < -1.79, 2, 1))
        clouds.append((pts, lab))
    return sweep_scene("scene", clouds, classes=("others", "wall", "ground", "car"))


def test_a_range_image_passes_through_a_point_only_where_it_saw_beyond_it():
    search = MovingSearch()
    wall = np.array([[20.0, y, z] for y in np.linspace(-3, 3, 61) for z in np.linspace(-1, 1, 21)])
    img = range_image(wall, search)
    queries = np.array([[10.0, 0.0, 0.0], [20.0, 0.0, 0.0], [30.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, 10.0, 8.0]])
    hit, through, owner = passes_through(queries, img, search, owners=True)
    # in front of the wall: seen through; on it: its surface seen (a hit), not through; behind it: hidden by the
    # wall, neither (says nothing); sideways along the beams, where the sensor had no return: open space, seen
    # through; above every beam (38 degrees up): nothing known, neither
    assert hit.tolist() == [False, True, False, False, False]
    assert through.tolist() == [True, False, False, True, False]
    # the cell of the point on the wall is owned by the wall's return nearest it in that cell
    assert owner[1] >= 0 and np.linalg.norm(wall[owner[1]] - queries[1]) < 0.2
    assert owner[3] == -1 and owner[4] == -1


def _rings(elevations_deg: np.ndarray, azimuth_step: float = 0.2) -> np.ndarray:
    el, az = np.meshgrid(np.radians(elevations_deg), np.radians(np.arange(0, 360, azimuth_step)))
    return np.c_[(np.cos(el) * np.cos(az)).ravel(), (np.cos(el) * np.sin(az)).ravel(), np.sin(el).ravel()]


def test_the_beam_spacing_is_measured_from_the_returns_elevations():
    from occkit.labelgen.find_moving import beam_spacing

    for n, lo, hi in ((32, -30.67, 10.67), (16, -15.0, 15.0)):
        pts = 10.0 * _rings(np.linspace(lo, hi, n), 1.0)
        assert abs(np.degrees(beam_spacing(pts, 0.8)) - (hi - lo) / (n - 1)) < 0.1
    # too few beams to tell: the fallback
    assert np.degrees(beam_spacing(10.0 * _rings(np.array([0.0, 2.0]), 1.0), 0.8)) == 0.8


def test_a_parked_object_passed_by_a_moving_sensor_is_not_found_moving():
    """The sensor drives past a parked box raised 0.3 m off the ground (a car's body): beams that pass just under
    its lower edge or over its top see the ground and the wall beyond it, from other places of the sensor, where
    a return of the box lies in their range image's cell. The box's surface is seen again by those sweeps (a
    return of theirs near it): not moving."""
    dirs = _rings(np.linspace(-30.67, 10.67, 32), 0.4)
    lo, hi = np.array([-2.0, 4.0, -1.5]), np.array([2.0, 6.0, 0.0])
    clouds, poses = [], []
    for i in range(16):
        x = -6.0 + 8.0 * 0.05 * i  # the sensor at 8 m/s along x
        r = _cast(dirs, lo - [x, 0, 0], hi - [x, 0, 0], wall=25.0 - x)  # the wall at x = 25
        ok = np.isfinite(r) & (r < 60)
        pts = dirs[ok] * r[ok, None]
        world = pts + [x, 0, 0]
        inside = np.all((world >= lo - 1e-6) & (world <= hi + 1e-6), axis=1)
        T = np.eye(4)
        T[0, 3] = x
        clouds.append((pts, np.where(inside, 3, np.where(pts[:, 2] < -1.79, 2, 1))))
        poses.append(T)
    rec = sweep_scene("parked", clouds, ("others", "wall", "ground", "car"), poses)
    dyn = dynamic_points(rec, MovingSearch())
    box = sum(int((s.labels == 3).sum()) for s in rec.sweeps)
    found = sum(int((d & (s.labels == 3)).sum()) for s, d in zip(rec.sweeps, dyn))
    assert box > 1000 and found <= 0.005 * box, (found, box)
    # nor the wall (its returns above the ground)
    assert sum(int((d & (s.labels == 1)).sum()) for s, d in zip(rec.sweeps, dyn)) == 0


def test_a_passing_object_is_found_moving_without_a_box_and_the_static_scene_is_kept():
    rec = _scene()
    out, report = find_moving(rec, MovingSearch())
    car_pts = sum(int((s.labels == 3).sum()) for s in rec.sweeps)
    found_car = found_static = 0
    for s, o in zip(rec.sweeps, out.sweeps):
        boxed = np.zeros(len(s.points), bool)
        if o.boxes is not None and len(o.boxes):
            from occkit.labelgen.steps import assign_to_boxes

            boxed = assign_to_boxes(s.points.astype(np.float64), o.boxes, 0.0) >= 0
        found_car += int((boxed & (s.labels == 3)).sum())
        found_static += int((boxed & (s.labels == 1)).sum())
    assert found_car >= 0.8 * car_pts, (found_car, car_pts)
    assert found_static <= 0.01 * sum(int((s.labels == 1).sum()) for s in rec.sweeps)
    assert report["objects"] >= 1 and report["points_found_moving"] > 0
    # every object found is a box of one sweep alone, of the class its returns carry
    tracks = [int(t) for o in out.sweeps if o.boxes is not None for t in o.boxes.track]
    assert len(tracks) == len(set(tracks))
    assert {int(c) for o in out.sweeps if o.boxes is not None for c in o.boxes.cls} == {3}


def test_the_moving_object_is_labelled_at_its_keyframe_and_leaves_no_trail():
    from occkit.geometry.grid import Grid
    from occkit.labelgen.pipeline import LabelOptions, label_scene

    rec = _scene()
    grid = Grid.from_range((-5.0, -10.0, -2.0, 30.0, 10.0, 2.0), 0.5)
    classes, free = ("others", "wall", "ground", "car"), 4
    plain = LabelOptions(ground_fill=0, camera_mask=False, relabel_k=0, erase_trails=False)
    found = LabelOptions(ground_fill=0, camera_mask=False, relabel_k=0, erase_trails=False, find_moving=True)
    lab_plain, _ = label_scene(rec, grid, classes, free, plain)
    lab_found, rep = label_scene(rec, grid, classes, free, found)
    car_plain = [int((k.semantics == 3).sum()) for k in lab_plain]
    car_found = [int((k.semantics == 3).sum()) for k in lab_found]
    # without the search the cube's whole path is in every keyframe's label; with it, only where it is
    assert min(car_plain) > 2 * max(car_found) > 0, (car_plain, car_found)
    assert "found_moving" in rep


def test_an_object_driving_away_is_found_in_the_last_sweeps_too():
    """A box drives straight away from a sensor at rest: every sweep before a later one sees the box nearer,
    hiding where it will be (no check says anything there), and the last sweeps have no check after them. Each
    sweep's finds carry to the next: with the carry every return of the box is found, without it the last
    sweeps' are not; the wall behind it is never found."""
    dirs = _rings(np.linspace(-30.67, 10.67, 32), 0.3)
    dirs = dirs[np.abs(np.arctan2(dirs[:, 1], dirs[:, 0])) < np.radians(30)]
    clouds = []
    for i in range(16):
        lo = np.array([8.0 + 8.0 * 0.05 * i, -1.0, -1.5])  # at 8 m/s along the sensor's line of sight
        hi = lo + [4.0, 2.0, 1.7]
        r = _cast(dirs, lo, hi)
        ok = np.isfinite(r) & (r < 60)
        pts = dirs[ok] * r[ok, None]
        inside = np.all((pts >= lo - 1e-6) & (pts <= hi + 1e-6), axis=1)
        clouds.append((pts, np.where(inside, 3, np.where(pts[:, 2] < -1.79, 2, 1))))
    rec = sweep_scene("away", clouds, classes=("others", "wall", "ground", "car"))

    def found(search: MovingSearch) -> tuple[list[float], int]:
        dyn = dynamic_points(rec, search)
        pairs = list(zip(rec.sweeps, dyn))
        share = [float((d & (s.labels == 3)).sum()) / max(int((s.labels == 3).sum()), 1) for s, d in pairs]
        return share, sum(int((d & (s.labels == 1)).sum()) for s, d in pairs)

    carried, wall = found(MovingSearch())
    alone, _ = found(MovingSearch(carry_radius=0.0))
    assert min(carried) >= 0.95 and wall == 0, (carried, wall)
    assert min(alone[-3:]) < 0.5, alone


def test_surface_normals_are_those_of_flat_neighbourhoods_only():
    from occkit.labelgen.find_moving import surface_normals

    g = np.stack(np.meshgrid(np.linspace(0, 1, 10), np.linspace(0, 1, 10)), -1).reshape(-1, 2)
    plane = np.c_[g[:, 0], np.full(len(g), 3.0), g[:, 1]]  # the plane y = 3
    pole = np.c_[np.zeros(20), np.zeros(20), np.linspace(0, 2, 20)]  # a line: no plane to speak of
    n = surface_normals(plane, np.arange(len(plane)), 8)
    assert np.allclose(np.abs(n[:, 1]), 1.0, atol=1e-6)
    assert not surface_normals(pole, np.arange(20), 8).any()
