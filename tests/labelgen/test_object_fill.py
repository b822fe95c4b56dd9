"""``object_fill``: a boxed object's solid, the convex hull of its points gathered over its track in its box frame
(:func:`occkit.labelgen.steps.object_hull`), cut to its box (:func:`~occkit.labelgen.steps.clip_hull`) and
voxelised at it (:func:`~occkit.labelgen.steps.hull_voxels`): the voxels whose centre it holds
(``object_fill_voxels="centre"``), or every voxel the uncut hull reaches (``"reached"``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from occkit.data.scene_record import Boxes, SceneRecord, Sweep
from occkit.geometry.grid import Grid
from occkit.labelgen.pipeline import LabelOptions, label_scene
from occkit.labelgen.steps import clip_hull, hull_crossings, hull_voxels, object_hull

CUBE = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])


def _inside(hull, q: np.ndarray) -> np.ndarray:
    return (q @ hull.planes[:, :3].T + hull.planes[:, 3] <= 1e-9).all(1)


def test_the_hull_of_a_cube_holds_its_inside_and_not_its_outside():
    rng = np.random.default_rng(0)
    hull = object_hull(np.concatenate([CUBE, rng.uniform(-0.5, 0.5, (50, 3))]))
    assert hull is not None
    assert np.allclose(hull.lo, -0.5) and np.allclose(hull.hi, 0.5)
    assert _inside(hull, np.array([[0.0, 0.0, 0.0], [0.49, -0.49, 0.3]])).all()
    assert not _inside(hull, np.array([[0.6, 0.0, 0.0], [0.0, 0.0, -0.51]])).any()


def test_points_that_span_no_volume_have_no_hull():
    assert object_hull(CUBE[:3]) is None  # fewer than 4
    flat = np.stack([np.linspace(0, 1, 20), np.linspace(0, 2, 20) % 1, np.zeros(20)], 1)
    assert object_hull(flat) is None  # a patch in a plane: a surface the points voxelise themselves


def test_hull_voxels_are_the_voxels_the_solid_reaches_at_its_box_in_any_pose():
    grid = Grid((0.0, 0.0, 0.0), (3.0, 3.0, 3.0), (0.5, 0.5, 0.5))
    hull = object_hull(CUBE)
    for yaw in (0.0, math.pi / 2):
        c, s = math.cos(yaw), math.sin(yaw)
        T_box_from_grid = np.eye(4)
        T_box_from_grid[:3, :3] = [[c, s, 0], [-s, c, 0], [0, 0, 1]]
        T_box_from_grid[:3, 3] = -T_box_from_grid[:3, :3] @ np.array([1.0, 1.0, 1.0])  # the box at (1, 1, 1)
        flat = hull_voxels(hull, T_box_from_grid, grid)
        got = {tuple(int(v) for v in np.unravel_index(f, grid.shape)) for f in flat.tolist()}
        # the cube spans [0.5, 1.5] on each axis: voxels 1 and 2, whatever its yaw (a quarter turn)
        assert got == {(x, y, z) for x in (1, 2) for y in (1, 2) for z in (1, 2)}
    # placed half outside the grid: only the voxels inside it
    T = np.eye(4)
    T[:3, 3] = [0.0, -1.0, -1.0]  # the box at (0, 1, 1): the cube spans x [-0.5, 0.5]
    got = {tuple(int(v) for v in np.unravel_index(f, grid.shape)) for f in hull_voxels(hull, T, grid).tolist()}
    assert got == {(0, y, z) for y in (1, 2) for z in (1, 2)}


def _object_seen_from_its_sides() -> SceneRecord:
    """A 2 x 2 x 1.5 m box object (centre x = 4.7, z = 1.25) driving along y past a LiDAR at the origin: each
    sweep returns its near face (x = 3.7) and the side it shows (its +y side while it is at y < 0, its -y side
    after), never its inside or far face; the keyframe's points labelled 4."""
    yz = np.stack(np.meshgrid(np.linspace(-0.95, 0.95, 9), np.linspace(0.55, 1.95, 8)), -1).reshape(-1, 2)
    xz = np.stack(np.meshgrid(np.linspace(3.75, 5.65, 9), np.linspace(0.55, 1.95, 8)), -1).reshape(-1, 2)
    sweeps = []
    for i, y in enumerate(np.linspace(-4.0, 4.0, 7)):
        near = np.stack([np.full(len(yz), 3.7), y + yz[:, 0], yz[:, 1]], 1)
        side = np.stack([xz[:, 0], np.full(len(xz), y - np.sign(y) * 0.95), xz[:, 1]], 1)
        pts = np.concatenate([near, side if y else near[:0]]).astype(np.float32)
        size = np.array([[2.0, 2.0, 1.5]])
        boxes = Boxes(np.array([1]), np.array([4]), np.array([[4.7, y, 1.25]]), size, np.array([0.0]))
        sweeps.append(
            Sweep(
                token=f"s{i}",
                timestamp=1000 * (i + 1),
                sensor="L",
                T_global_from_ego=np.eye(4),
                points=pts,
                labels=np.full(len(pts), 4) if i == 3 else None,
                keyframe=i == 3,
                boxes=boxes,
            )
        )
    return SceneRecord(
        name="toy",
        sweeps=sweeps,
        lidars={"L": np.eye(4)},
        classes=tuple(f"c{i}" for i in range(17)),
        ego_size=(0.5, 0.5, 0.5),
        ego_center=(-5.0, 0.0, 0.0),
    )


def test_a_hull_cut_to_its_box_holds_what_both_hold():
    hull = object_hull(CUBE * 2)  # [-1, 1]^3
    cut = clip_hull(hull, np.array([1.0, 4.0, 1.0]))  # the box [-0.5, 0.5] x [-2, 2] x [-0.5, 0.5]
    assert np.allclose(cut.lo, [-0.5, -1, -0.5]) and np.allclose(cut.hi, [0.5, 1, 0.5])
    assert _inside(cut, np.array([[0.0, 0.0, 0.0], [0.45, 0.95, -0.45]])).all()
    assert not _inside(cut, np.array([[0.6, 0.0, 0.0], [0.0, 1.05, 0.0], [0.0, 0.0, -0.55]])).any()
    assert clip_hull(object_hull(CUBE + 3.0), np.ones(3)) is None  # wholly outside its box


def test_hull_voxels_by_centre_take_only_the_voxels_whose_centre_the_solid_holds():
    grid = Grid((0.0, 0.0, 0.0), (3.0, 3.0, 3.0), (0.5, 0.5, 0.5))
    hull = object_hull(CUBE * 0.8)  # [-0.4, 0.4]^3 at (1.25, 1.25, 1.25): [0.85, 1.65], centres 1.25 only inside
    T = np.eye(4)
    T[:3, 3] = -1.25
    reached = {tuple(int(v) for v in np.unravel_index(f, grid.shape)) for f in hull_voxels(hull, T, grid).tolist()}
    assert reached == {(x, y, z) for x in (1, 2, 3) for y in (1, 2, 3) for z in (1, 2, 3)}
    by_centre = hull_voxels(hull, T, grid, samples=1)
    assert [tuple(int(v) for v in np.unravel_index(f, grid.shape)) for f in by_centre.tolist()] == [(2, 2, 2)]


@pytest.mark.parametrize(("voxels", "last_x"), [("reached", 15), ("centre", 14)])
def test_object_fill_closes_an_object_the_lidar_saw_one_side_at_a_time_of(voxels, last_x):
    grid = Grid((-2.0, -5.0, 0.0), (10.0, 5.0, 2.5), (0.5, 0.5, 0.5))
    names = tuple(f"c{i}" for i in range(17))
    kw = dict(ground_fill=0, camera_mask=False)
    (plain,), _ = label_scene(_object_seen_from_its_sides(), grid, names, 17, LabelOptions(object_fill=False, **kw))
    opt = LabelOptions(object_fill=True, object_fill_voxels=voxels, **kw)
    (filled,), _ = label_scene(_object_seen_from_its_sides(), grid, names, 17, opt)
    # at the keyframe (y = 0) the object's returns, gathered over its track, span x [3.7, 5.65] (voxels 11-15),
    # y [-0.95, 0.95] (8-11), z [0.55, 1.95] (1-3); its inside (x 12-15, y 9-10) no return reached. The hull
    # reaches voxel x 15 ([5.5, 6.0]) but does not hold its centre (5.75): by centre only its side faces'
    # returns fill it
    inside = (slice(12, 16), slice(9, 11), slice(1, 4))
    assert (plain.semantics[inside] == 17).all()
    solid = (slice(11, last_x + 1), slice(8, 12), slice(1, 4))
    assert (filled.semantics[solid] == 4).all() and (filled.track[solid] == 1).all()
    # nothing else changes
    outside = np.ones(grid.shape, bool)
    outside[solid] = False
    assert (filled.semantics[outside] == plain.semantics[outside]).all()
    assert (plain.semantics[solid] != 17).sum() < (filled.semantics[solid] != 17).sum() == (last_x - 10) * 4 * 3
    if voxels == "centre":  # voxel x 15 keeps its points' voxels only: the side faces (y 8 and 11), not y 9-10
        assert (filled.semantics[15, 9:11, 1:4] == 17).all() and (filled.semantics[15, [8, 11], 1:4] == 4).all()


def test_the_centre_fill_stays_in_the_box_where_returns_of_its_class_lie_beyond_it():
    """Returns of the object's class in its box's margin (``box_margin``) but outside the box: the uncut hull
    reaches beyond the box, the fill by centre keeps within it."""
    rec = _object_seen_from_its_sides()
    for s in rec.sweeps:  # a return 0.15 m beyond the far face (x = 5.7) in each sweep, within the 0.2 m margin
        extra = np.array([[5.85, s.boxes.center[0, 1] + 0.2, 1.25]], np.float32)
        s.points = np.concatenate([s.points, extra])
        if s.labels is not None:
            s.labels = np.concatenate([s.labels, [4]])
    grid = Grid((-2.0, -5.0, 0.0), (10.0, 5.0, 2.5), (0.5, 0.5, 0.5))
    names = tuple(f"c{i}" for i in range(17))
    got = {}
    for voxels in ("reached", "centre"):
        opt = LabelOptions(object_fill=True, object_fill_voxels=voxels, ground_fill=0, camera_mask=False)
        (lab,), _ = label_scene(rec, grid, names, 17, opt)
        got[voxels] = lab.semantics
    # voxel x 15 spans [5.5, 6.0]: its centre 5.75 lies beyond the box (5.7), inside the hull of the returns
    assert (got["reached"][15, 9:11, 1:4] == 4).all()
    beyond = got["centre"][15, 9:11, 1:4] == 17
    assert beyond.sum() == 5 and not beyond[1, 1]  # all but the voxel the return itself lies in, (15, 10, 2)
    assert (got["centre"][11:15, 8:12, 1:4] == 4).all()  # the box's inside still filled


def test_a_bad_object_fill_voxels_is_refused_naming_the_option():
    with pytest.raises(
        ValueError, match="object_fill_voxels must be one of centre, carved, crossed, reached, got 'all'"
    ):
        LabelOptions(object_fill_voxels="all")


def test_hull_crossings_are_the_stretch_of_a_ray_inside_the_hull_before_its_return():
    hull = object_hull(CUBE)  # [-0.5, 0.5]^3
    o = np.array([-5.0, 0.0, 0.0])
    pts = np.array([[5.0, 0.0, 0.0], [-0.5, 0.0, 0.0], [5.0, 3.0, 0.0], [0.3, 0.0, 0.0]])
    # through it (returns 10 m away: carved up to 8.3 m), on its near face, beside it, ending inside it (5.3 m
    # away: carved up to 4.305 m, short of the face at 4.5)
    got = hull_crossings(hull, o, pts, 0.15, 0.2, 0.05)
    assert np.allclose(got[:, 1:], 0.0) and np.allclose(got[:, 0], -0.5 + 0.05 * np.arange(21))
    assert len(hull_crossings(hull, o, pts[1:], 0.15, 0.2, 0.05)) == 0


def test_the_rays_kept_near_a_hull_lose_no_crossing():
    """``KeyframeRays.near`` keeps a superset of the rays ``hull_crossings`` walks: the crossings of the rays it
    keeps are those of every ray, for a cube moved off the sweep's origin, rays all around and some grazing it."""
    from occkit.labelgen.pipeline import KeyframeRays

    rng = np.random.default_rng(0)
    hull = object_hull(CUBE)
    shift = np.array([6.0, 2.0, 0.5])
    o = np.array([0.3, -0.2, 1.8])
    pts = np.concatenate([rng.normal(shift, 2.0, (3000, 3)), rng.uniform(-20, 20, (3000, 3))])
    rays = KeyframeRays.of(o, pts, 0.15, 0.2)
    near = rays.near(shift, float(np.linalg.norm(hull.hi - hull.lo) / 2))
    assert 0 < len(near) < len(pts)
    every = hull_crossings(hull, o - shift, pts - shift, 0.15, 0.2, 0.05)
    kept = hull_crossings(hull, o - shift, pts[near] - shift, 0.15, 0.2, 0.05)
    assert len(every) > 100 and np.array_equal(kept, every)


@pytest.mark.parametrize("voxels", ["carved", "crossed"])
def test_the_carved_fill_leaves_free_what_the_keyframes_own_rays_saw_through(voxels):
    """A return of the keyframe's sweep on a wall behind the object, its ray through the object's box (a gap in
    a concave object): the carved and crossed fills leave the voxels that ray crossed free, the first fills
    them."""
    rec = _object_seen_from_its_sides()
    k = next(i for i, s in enumerate(rec.sweeps) if s.keyframe)
    s = rec.sweeps[k]
    s.points = np.concatenate([s.points, np.array([[9.9, 0.2, 2.4]], np.float32)])
    s.labels = np.concatenate([s.labels, [15]])
    grid = Grid((-2.0, -5.0, 0.0), (10.0, 5.0, 2.5), (0.5, 0.5, 0.5))
    names = tuple(f"c{i}" for i in range(17))
    got = {}
    for v in ("reached", voxels):
        opt = LabelOptions(object_fill=True, object_fill_voxels=v, ground_fill=0, camera_mask=False)
        (lab,), _ = label_scene(rec, grid, names, 17, opt)
        got[v] = lab.semantics
    solid = np.zeros(grid.shape, bool)
    solid[11:16, 8:12, 1:4] = True
    assert (got["reached"][solid] == 4).all()
    gap = solid & (got[voxels] == 17)
    # the ray from the origin to (9.9, 0.2, 2.4) crosses y voxel 10 and z voxels 1-2 over the box (x 3.7-5.7)
    assert gap.any() and set(np.argwhere(gap)[:, 1].tolist()) == {10}
    assert set(np.argwhere(gap)[:, 2].tolist()) <= {1, 2} and set(np.argwhere(gap)[:, 0].tolist()) <= {12, 13, 14, 15}
    assert (got[voxels][solid & ~gap] == 4).all() and (got[voxels][~solid] == got["reached"][~solid]).all()
