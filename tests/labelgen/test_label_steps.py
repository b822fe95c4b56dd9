"""The label pipeline's steps on hand cases (docs/labels.md): a wall seen from one origin, a box
moving through a scene leaving no trail, a vote, a camera ray stopping at the first occupied voxel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from occkit.data.scene_record import Boxes, Camera, SceneRecord, Sweep, check_record
from occkit.geometry.grid import Grid
from occkit.geometry.visibility import lidar_visibility
from occkit.labelgen.pipeline import LabelOptions, camera_mask, label_scene
from occkit.labelgen.raycast import SweepCaster
from occkit.labelgen.steps import assign_to_boxes, erase_trails, knn_vote

# a 10 x 1 x 1 row of 1 m voxels along x: [0, 10) x [0, 1) x [0, 1)
ROW = Grid((0.0, 0.0, 0.0), (10.0, 1.0, 1.0), (1.0, 1.0, 1.0))


def test_a_wall_seen_from_one_origin_is_hit_the_space_before_it_passed_and_behind_it_unseen():
    caster = SweepCaster(ROW, carve_rel=0.0, carve_abs=0.0)
    origin = np.array([0.5, 0.5, 0.5])
    wall = np.array([[6.5, 0.5, 0.5]])  # a return in voxel 6
    caster.add(origin, wall)
    hits, passes = caster.counts.hits, caster.counts.passes
    assert hits.tolist() == [0, 0, 0, 0, 0, 0, 1, 0, 0, 0]
    assert passes.tolist() == [1, 1, 1, 1, 1, 1, 0, 0, 0, 0]  # voxels 0-5 seen through, 7-9 behind: unseen
    vis = lidar_visibility(ROW, torch.from_numpy(origin), torch.from_numpy(wall)).reshape(-1)
    assert vis.int().tolist() == [1, 1, 1, 1, 1, 1, 1, 0, 0, 0]  # Occ3D's LiDAR mask: up to and including the hit


def test_the_carving_margin_stops_short_of_the_return():
    caster = SweepCaster(ROW, carve_rel=0.0, carve_abs=2.0)
    caster.add(np.array([0.5, 0.5, 0.5]), np.array([[6.5, 0.5, 0.5]]))  # carved up to t = 4: x < 4.5
    assert caster.counts.passes.tolist() == [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]


def test_counts_are_of_sweeps_not_rays():
    caster = SweepCaster(ROW, carve_rel=0.0, carve_abs=0.0)
    pts = np.array([[6.5, 0.5, 0.5], [6.6, 0.4, 0.5], [3.5, 0.5, 0.5]])
    caster.add(np.array([0.5, 0.5, 0.5]), pts)
    # two returns in voxel 6, one in 3: voxel 3 was hit, so this sweep does not count it as passed
    assert caster.counts.hits.tolist() == [0, 0, 0, 1, 0, 0, 1, 0, 0, 0]
    assert caster.counts.passes.tolist() == [1, 1, 1, 0, 1, 1, 0, 0, 0, 0]
    caster.add(np.array([0.5, 0.5, 0.5]), pts[:1])
    assert caster.counts.passes.tolist() == [2, 2, 2, 1, 2, 2, 0, 0, 0, 0]


def test_a_vote_on_a_hand_case():
    labelled = np.array([[0.0, 0, 0], [0.1, 0, 0], [0.2, 0, 0], [5.0, 0, 0]])
    labels = np.array([3, 3, 7, 9])
    q = np.array([[0.05, 0, 0], [5.1, 0, 0], [20.0, 0, 0]])
    # k = 3: the first query's neighbours are 3, 3, 7 -> 3; the second's within 1 m: 9 alone; the third: none
    assert knn_vote(labelled, labels, q, k=3, max_dist=1.0, num_classes=10).tolist() == [3, 9, -1]
    # a tie (one 3, one 7 within reach at k = 2 for a query between them) goes to the nearest's class
    q2 = np.array([[0.16, 0, 0]])
    assert knn_vote(labelled, labels, q2, k=2, max_dist=1.0, num_classes=10).tolist() == [7]
    # the queries voted in chunks (bounded memory) give what one chunk gives, here on the hand case
    q3 = np.concatenate([q, q2, q])
    one = knn_vote(labelled, labels, q3, k=3, max_dist=1.0, num_classes=10)
    assert one.tolist() == [3, 9, -1, 3, 3, 9, -1]
    assert knn_vote(labelled, labels, q3, k=3, max_dist=1.0, num_classes=10, chunk=2).tolist() == one.tolist()


def test_points_go_to_the_box_that_holds_them_with_the_margin():
    b = Boxes(
        track=np.array([5]),
        cls=np.array([4]),
        center=np.array([[10.0, 0.0, 1.0]]),
        size=np.array([[4.0, 2.0, 2.0]]),
        yaw=np.array([np.pi / 2]),  # heading +y: the box spans x in [9, 11], y in [-2, 2]
    )
    pts = np.array([[10.0, 1.9, 1.0], [11.9, 0.0, 1.0], [11.1, 0.0, 1.0], [10.0, 2.3, 1.0]])
    assert assign_to_boxes(pts, b, margin=0.0).tolist() == [0, -1, -1, -1]
    assert assign_to_boxes(pts, b, margin=0.2).tolist() == [0, -1, 0, -1]


def test_trails_are_erased_only_where_few_sweeps_hit_and_many_saw_through():
    occ = np.ones(4, bool)
    hits = np.array([1, 1, 5, 1])
    passes = np.array([3, 1, 20, 3])
    exempt = np.array([False, False, False, True])
    assert erase_trails(occ, hits, passes, ratio=2.0, max_hits=2, exempt=exempt).tolist() == [True, False, False, False]


def _moving_box_scene(margin_boxes: bool = True) -> SceneRecord:
    """A flat wall at x = 8.2 and a 1 m cube driving along y at x = 4 past a LiDAR 1 m up at the origin."""
    sweeps = []
    for i, y in enumerate(np.linspace(-3.0, 3.0, 7)):
        wall = np.stack([np.full(41, 8.2), np.linspace(-8, 8, 41), np.full(41, 0.0)], 1)
        cube = np.stack([np.full(5, 4.0), y + np.linspace(-0.3, 0.3, 5), np.full(5, 0.0)], 1)
        pts = np.concatenate([wall, cube]).astype(np.float32)
        labels = np.array([15] * 41 + [4] * 5) if i == 3 else None
        boxes = Boxes(
            np.array([1]), np.array([4]), np.array([[4.2, y, 1.0]]), np.array([[1.0, 1.0, 1.0]]), np.array([0.0])
        )
        sweeps.append(
            Sweep(
                token=f"s{i}",
                timestamp=1000 * (i + 1),
                sensor="L",
                T_global_from_ego=np.eye(4),
                points=pts,
                labels=labels,
                keyframe=i == 3,
                boxes=boxes if margin_boxes else None,
            )
        )
    lidar = np.eye(4)
    lidar[2, 3] = 1.0  # the LiDAR 1 m up: its returns at z = 0 in its frame lie at z = 1 m
    return SceneRecord(
        name="toy",
        sweeps=sweeps,
        lidars={"L": lidar},
        classes=tuple(f"c{i}" for i in range(17)),
        ego_size=(0.5, 0.5, 0.5),
        ego_center=(-5.0, 0.0, 0.0),
    )


GRID = Grid((-2.0, -5.0, 0.0), (10.0, 5.0, 2.0), (0.5, 0.5, 0.5))


def test_a_box_moving_through_a_scene_leaves_no_trail():
    rec = _moving_box_scene()
    opt = LabelOptions(ground_fill=0, camera_mask=False, carve_rel=0.0, carve_abs=0.3)
    (lab,), _ = label_scene(rec, GRID, tuple(f"c{i}" for i in range(17)), 17, opt)
    car = lab.semantics == 4
    ys = np.nonzero(car.any((0, 2)))[0]
    # the car is where its box is at the keyframe (y = 0: voxels 9 and 10 of y), nowhere else
    assert car.any() and set(ys.tolist()) <= {9, 10}
    assert (lab.semantics[20] == 15).any()  # the wall at x = 8.2 (voxel 20), labelled at the keyframe


def test_a_flipped_point_label_is_outvoted_by_its_neighbours_with_relabel_k():
    rec = _moving_box_scene()
    rec.sweeps[3].labels[20] = 3  # the wall point at y = 0.0 (the wall's points are 0.4 m apart) flipped to class 3
    names = tuple(f"c{i}" for i in range(17))
    base = {"ground_fill": 0, "camera_mask": False, "keyframe_only": True}
    # off: the voxel holding it (x 20, y 10, z 2) has two points, 3 and 15; the tie goes to the smaller id
    (off,), _ = label_scene(rec, GRID, names, 17, LabelOptions(**base, relabel_k=0))
    assert off.semantics[20, 10, 2] == 3
    # on: itself and its four neighbours within 1 m (two each side, all 15) -> 15; nothing of class 3 is left
    (on,), _ = label_scene(rec, GRID, names, 17, LabelOptions(**base, relabel_k=5))
    assert on.semantics[20, 10, 2] == 15 and not (on.semantics == 3).any()


def test_without_boxes_the_trail_is_erased_by_the_rays():
    rec = _moving_box_scene(margin_boxes=False)
    kw = dict(ground_fill=0, camera_mask=False, carve_rel=0.0, carve_abs=0.3, knn=1, knn_max_dist=10.0)
    (kept,), _ = label_scene(rec, GRID, tuple(f"c{i}" for i in range(17)), 17, LabelOptions(erase_trails=False, **kw))
    (erased,), _ = label_scene(rec, GRID, tuple(f"c{i}" for i in range(17)), 17, LabelOptions(erase_trails=True, **kw))
    band = (slice(12, 14), slice(None), slice(None))  # x in [4, 5): where the cube drove
    assert (kept.semantics[band] != 17).sum() > (erased.semantics[band] != 17).sum()


def test_a_camera_ray_stops_at_the_first_occupied_voxel():
    occ = np.zeros(ROW.shape, bool)
    occ[5] = True
    # a camera at x = 0.5 looking down +x (OpenCV z forward = ego +x)
    T = np.array([[0, 0, 1, 0.5], [-1, 0, 0, 0.5], [0, -1, 0, 0.5], [0, 0, 0, 1.0]])
    K = np.array([[1.0, 0, 0.5], [0, 1.0, 0.5], [0, 0, 1]])
    rec = SceneRecord("c", [], {}, cameras={"C": Camera("C", K, T, (1, 1))})
    m = camera_mask(rec, ROW, occ, stride=1).reshape(-1)
    assert m.tolist() == [1, 1, 1, 1, 1, 1, 0, 0, 0, 0]


@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda r: r.sweeps[0].points.__setitem__((0, 0), np.nan), "NaN or infinite"),
        (lambda r: setattr(r.sweeps[1], "timestamp", 1), "out of order"),
        (lambda r: setattr(r.sweeps[0], "T_global_from_ego", np.diag([2.0, 1, 1, 1])), "not rigid"),
        (lambda r: setattr(r.sweeps[0], "sensor", "RADAR"), "not a LiDAR"),
        (lambda r: r.sweeps[0].boxes.size.__setitem__((0, 0), -1.0), "must be positive"),
        (lambda r: r.sweeps[0].boxes.size.__setitem__((0, 1), 1e9), "a side over 100 m"),
        (lambda r: r.sweeps[1].boxes.cls.__setitem__(0, 7), "changes class"),
    ],
)
def test_bad_records_are_refused_naming_the_field(spoil, message):
    rec = _moving_box_scene()
    spoil(rec)
    with pytest.raises(ValueError, match=message):
        check_record(rec)


def test_missing_inputs_are_said():
    rec = _moving_box_scene(margin_boxes=False)
    for s in rec.sweeps:
        s.labels = None
    said = " ".join(rec.missing())
    assert "no boxes" in said and "no point labels" in said and "no cameras" in said
    (lab,), report = label_scene(rec, GRID, tuple(f"c{i}" for i in range(17)), 17, LabelOptions(camera_mask=False))
    assert set(np.unique(lab.semantics).tolist()) <= {0, 17}  # geometry only: class 0 ('others') or free
    assert (lab.semantics == 0).any() and report["missing"]


def test_voxelisation_by_vote_on_a_hand_case():
    from occkit.labelgen.steps import vote_voxels

    pts = np.array(
        [
            [0.5, 0.5, 0.5], [0.6, 0.5, 0.5], [0.7, 0.5, 0.5],  # voxel 0: classes 4, 4, 9 -> 4
            [2.5, 0.5, 0.5], [2.6, 0.5, 0.5],  # voxel 2: a tie between 9 and 3 -> the smaller id, 3
            [7.5, 0.5, 0.5],  # voxel 7: one point of class 1
            [12.0, 0.5, 0.5],  # outside the grid: dropped
        ]
    )  # fmt: skip
    lab = np.array([4, 4, 9, 9, 3, 1, 5])
    assert vote_voxels(pts, lab, ROW, free=17).reshape(-1).tolist() == [4, 17, 3, 17, 17, 17, 17, 1, 17, 17]
    assert vote_voxels(pts, lab, ROW, free=17, min_points=2).reshape(-1).tolist() == [4, 17, 3] + [17] * 7


def _sorted_vote(points: np.ndarray, labels: np.ndarray, grid: Grid, free: int, min_points: int) -> np.ndarray:
    """The vote as the pipeline computed it before its compiled loops (a sort of voxel * classes + class):
    an independent route to the same labels."""
    from occkit.labelgen.steps import voxel_index

    out = np.full(int(np.prod(grid.shape)), free, np.uint8)
    flat = voxel_index(points, grid)
    ok = flat >= 0
    flat, lab = flat[ok], np.asarray(labels, np.int64)[ok]
    C = free + 1
    keys, counts = np.unique(flat * C + lab, return_counts=True)
    vox, cls = keys // C, keys % C
    order = np.lexsort((cls, -counts, vox))
    vox, cls, counts = vox[order], cls[order], counts[order]
    first = np.ones(len(vox), bool)
    first[1:] = vox[1:] != vox[:-1]
    total = np.add.reduceat(counts, np.nonzero(first)[0]) if len(vox) else counts
    keep = total >= min_points
    out[vox[first][keep]] = cls[first][keep].astype(np.uint8)
    return out.reshape(grid.shape)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_compiled_vote_and_crop_equal_the_sorted_vote_and_the_numpy_crop(dtype):
    from occkit.labelgen.steps import grid_index, vote_flat, vote_voxels

    grid = Grid((-4.0, -4.0, -1.0), (4.0, 4.0, 5.4), (0.4, 0.4, 0.4))  # Occ3D's bounds, 20 x 20 x 16
    rng = np.random.default_rng(0)
    pts = rng.uniform(-5, 6, (20000, 3))
    # points on every voxel boundary and on the box's faces, where the rounding decides
    edges = np.stack(np.meshgrid(*(np.arange(lo, hi + 0.01, 0.4) for lo, hi in ((-4, 4), (-4, 4), (-1, 5.4)))), -1)
    pts = np.concatenate([pts, edges.reshape(-1, 3)]).astype(dtype)
    lab = rng.integers(-1, 6, len(pts))  # -1: no class, not voted
    flat, n = grid_index(pts, grid, lab)
    lo, hi = np.asarray(grid.range_min), np.asarray(grid.range_max)
    box = ((pts >= lo) & (pts < hi)).all(1) & (lab >= 0)
    assert n == int(box.sum()) and 0 < n < len(pts)
    from occkit.labelgen.steps import voxel_index

    assert np.array_equal(flat, np.where(box, voxel_index(pts, grid), -1))
    for min_points in (1, 2, 3):
        want = _sorted_vote(pts[box], lab[box], grid, 6, min_points)
        assert np.array_equal(vote_voxels(pts[box], lab[box], grid, 6, min_points), want)
        half = len(pts) // 2  # in parts, as the pipeline gives the static points and each track's
        got = vote_flat([flat[:half], flat[half:]], [lab[:half], lab[half:]], grid, 6, min_points)
        assert np.array_equal(got, want)


def _bincount_vote(labelled, labels, queries, k, max_dist, num_classes):
    """The vote as the pipeline computed it before its compiled loop (a bincount of query * classes + class
    over scipy's neighbours): an independent route to the same classes."""
    from scipy.spatial import cKDTree

    k = max(1, min(k, len(labelled)))
    dist, idx = cKDTree(labelled).query(queries, k=k, distance_upper_bound=max_dist)
    if k == 1:
        dist, idx = dist[:, None], idx[:, None]
    ok = np.isfinite(dist)
    C1 = num_classes + 1
    lab = np.where(ok, np.asarray(labels)[np.minimum(idx, len(labels) - 1)], num_classes)
    Q = len(queries)
    votes = np.bincount((np.arange(Q)[:, None] * C1 + lab).ravel(), minlength=Q * C1).reshape(Q, C1)[:, :num_classes]
    top = votes.max(1)
    has = top > 0
    nn = lab[:, 0]
    tied = (votes == top[:, None]).sum(1) > 1
    nn_top = votes[np.arange(Q), np.minimum(nn, num_classes - 1)] == top
    winner = np.where(tied & has & (nn < num_classes) & nn_top, nn, votes.argmax(1))
    return np.where(has, winner, -1)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_the_compiled_knn_vote_equals_the_bincount_vote(k):
    rng = np.random.default_rng(k)
    labelled = rng.uniform(0, 6, (3000, 3)).astype(np.float32)
    labels = rng.integers(0, 4, len(labelled))  # 4 classes of 6: many ties at k = 2 and 5
    queries = rng.uniform(-1, 7, (5000, 3)).astype(np.float32)  # some with no labelled point within reach
    want = _bincount_vote(labelled, labels, queries, k, 0.3, 6)
    assert (want == -1).any() and len(np.unique(want)) == 5
    assert np.array_equal(knn_vote(labelled, labels, queries, k, 0.3, 6), want)
    assert np.array_equal(knn_vote(labelled, labels, queries, k, 0.3, 6, chunk=777), want)


def _reference_cast(sweeps, grid: Grid, rel: float, ab: float) -> tuple[np.ndarray, np.ndarray]:
    """The sweep counts as the pipeline's walk computed them before it was rewritten (one ray at a time in
    plain Python, a stamp for hits and one for passes, the voxel recomputed at each step): an independent
    route to the same counts."""
    lo, hi, vs = (np.asarray(a, np.float64) for a in (grid.range_min, grid.range_max, grid.voxel_size))
    X, Y, Z = grid.shape
    hits, passes = np.zeros(X * Y * Z, np.int64), np.zeros(X * Y * Z, np.int64)
    for o, pts in sweeps:
        hit = set()
        for p in pts:
            i = np.floor((p - lo) / vs).astype(int)
            if ((i >= 0) & (i < grid.shape)).all():
                hit.add(int((i[0] * Y + i[1]) * Z + i[2]))
        for v in hit:
            hits[v] += 1
        passed = set()
        for p in pts:
            d = p - o
            r = float(np.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]))
            d = d / r
            t0, t1 = 0.0, r * (1.0 - rel) - ab
            miss = False
            for a in range(3):
                if d[a] != 0.0:
                    ta, tb = sorted(((lo[a] - o[a]) / d[a], (hi[a] - o[a]) / d[a]))
                    t0, t1 = max(t0, ta), min(t1, tb)
                elif not lo[a] <= o[a] <= hi[a]:
                    miss = True
            if miss or t1 <= t0:
                continue
            idx = [min(max(int(np.floor((o[a] + d[a] * t0 - lo[a]) / vs[a])), 0), grid.shape[a] - 1) for a in range(3)]
            step = [1 if d[a] > 0 else -1 if d[a] < 0 else 0 for a in range(3)]
            tnext = [(lo[a] + (idx[a] + (d[a] > 0)) * vs[a] - o[a]) / d[a] if d[a] != 0 else np.inf for a in range(3)]
            tdelta = [vs[a] / abs(d[a]) if d[a] != 0 else np.inf for a in range(3)]
            t = t0
            while t < t1:
                v = (idx[0] * Y + idx[1]) * Z + idx[2]
                if v not in hit:
                    passed.add(v)
                a = int(np.argmin(tnext))  # the first of equal ones
                t = tnext[a]
                tnext[a] += tdelta[a]
                idx[a] += step[a]
                if not 0 <= idx[a] < grid.shape[a]:
                    break
        for v in passed:
            passes[v] += 1
    return hits.reshape(grid.shape), passes.reshape(grid.shape)


@pytest.mark.parametrize("origin", [(0.3, -0.2, 0.9), (-9.0, 4.0, 1.1)])  # inside the grid; outside it
def test_the_compiled_cast_equals_the_plain_walk(origin):
    grid = Grid((-3.0, -2.5, -1.0), (3.0, 2.5, 2.0), (0.5, 0.5, 0.5))
    rng = np.random.default_rng(1)
    o = np.asarray(origin)
    sweeps = []
    for _ in range(3):
        pts = rng.uniform((-5.0, -4.0, -2.0), (5.0, 4.0, 3.0), (150, 3))
        pts[:10, 1] = o[1]  # rays in a plane of the grid's axes: a direction component exactly 0
        pts[10:20] = np.round(pts[10:20] * 2) / 2  # returns on voxel boundaries
        sweeps.append((o + rng.normal(0, 0.2, 3), pts))
    # from a voxel corner along the diagonals: both axes' boundaries at the same distance at every step (ties)
    diagonals = np.array([[2.0, 2.0, 0.25], [-2.0, 2.0, 0.25], [2.0, -2.0, 0.25], [-2.0, -2.0, 0.25], [2.0, 2.0, 1.75]])
    sweeps.append((np.array([0.0, 0.0, 0.25]), diagonals))
    caster = SweepCaster(grid, carve_rel=0.15, carve_abs=0.2)
    for so, pts in sweeps:
        caster.add(so, pts)
    hits, passes = _reference_cast(sweeps, grid, 0.15, 0.2)
    assert passes.sum() > 100 and hits.sum() > 50
    assert np.array_equal(caster.counts.view(caster.counts.hits), hits)
    assert np.array_equal(caster.counts.view(caster.counts.passes), passes)


def test_ground_by_height_fills_from_the_low_columns_of_the_points_class_not_a_cars_or_a_walls():
    """``fill_ground(by_height=True)`` on a hand case (free 9, the points' class 0, a boxed car class 4): a
    12 x 12 x 8 grid whose ground returns lie at z 1 along two edges, a car whose lowest voxel is at z 2 (one
    above the floor, so low, but of its box's class: no ground), a wall whose lowest voxel is at z 5."""
    from occkit.labelgen.steps import fill_ground, ground_window

    assert (ground_window(0.4), ground_window(0.2), ground_window(0.5)) == (9, 19, 7)  # 3.6 m, odd
    free = 9
    sem = np.full((12, 12, 8), free, np.int64)
    sem[0, :, 1] = sem[11, :, 1] = 0  # ground returns: the points' class, at z 1, along x = 0 and x = 11
    sem[5:7, 5:7, 2:4] = 4  # a car, lowest voxel z 2
    sem[2, 5, 5:8] = 0  # a wall seen from above its base (z 5), the ground 2 columns away seen
    out = fill_ground(sem, (), free, max_gap=20, by_height=9)
    filled = (out != sem) & (sem == free)
    assert (filled[..., 1].sum(), filled.sum()) == (12 * 12 - 24 - 4 - 1, 12 * 12 - 24 - 4 - 1)  # all at z 1
    assert (out[filled] == 0).all()  # the ground's class, never the car's
    assert np.array_equal(fill_ground(sem, (), free, max_gap=20), sem)  # by class, no ground class: nothing
    # the window: a floor more than 4 columns away (a window of 9) does not lower a column's floor
    row = np.full((30, 1, 8), free, np.int64)
    row[0, 0, 1] = 0
    row[29, 0, 6] = 0  # 29 columns away (a slope): its own floor, ground as well
    out = fill_ground(row, (), free, max_gap=40, by_height=9)
    assert out[27, 0, 6] == 0 and out[27, 0, 1] == free and out[2, 0, 1] == 0


def test_ground_fill_takes_columns_a_camera_looked_through_at_the_grounds_height_no_lidar_ray_passed():
    """``fill_ground(seen_through=...)``: a row of columns, ground (class 2) at z 1 in the first; no LiDAR ray
    passed over any column (``observed_above`` all false), so nothing is filled; a camera ray that crossed z 1 in
    columns 3..5 (and went on below: no ground stopped it) fills those three at z 1 with the ground's class; one
    that crossed column 7 only at z 5, far above the ground, fills nothing there."""
    from occkit.labelgen.steps import fill_ground

    free = 9
    sem = np.full((10, 1, 8), free, np.int64)
    sem[0, 0, 1] = 2
    lidar = np.zeros(sem.shape, bool)
    assert np.array_equal(fill_ground(sem, (2,), free, max_gap=20, observed_above=lidar), sem)
    cam = np.zeros(sem.shape, bool)
    cam[3:6, 0, :2] = True  # down through the ground's height to the floor
    cam[7, 0, 5] = True  # above the ground only
    out = fill_ground(sem, (2,), free, max_gap=20, observed_above=lidar, seen_through=cam)
    filled = out != sem
    assert sorted(map(tuple, np.argwhere(filled))) == [(3, 0, 1), (4, 0, 1), (5, 0, 1)]
    assert (out[filled] == 2).all()
    # the distance bound holds for camera-seen columns as for the LiDAR's: max_gap 4 leaves column 5 empty
    out = fill_ground(sem, (2,), free, max_gap=4, observed_above=lidar, seen_through=cam)
    assert sorted(map(tuple, np.argwhere(out != sem))) == [(3, 0, 1), (4, 0, 1)]
    # a column a LiDAR ray passed over is filled as before, camera or not
    lidar[8, 0, 6] = True
    out = fill_ground(sem, (2,), free, max_gap=20, observed_above=lidar, seen_through=cam)
    assert out[8, 0, 1] == 2 and out[7, 0, 1] == free


def _ground_ahead_scene(cameras: bool) -> SceneRecord:
    """One keyframe sweep of a LiDAR 1 m up whose ground returns (class 11, at z -0.75) lie only 0.5..2.5 m
    ahead (a LiDAR that saw no farther: nothing beyond them returned, so no ray passes over the ground farther
    on); with ``cameras``, one camera 1.2 m up looking ahead, whose rays reach the ground to 10 m and beyond."""
    xs, ys = np.meshgrid(np.arange(0.55, 2.5, 0.1), np.arange(-1.95, 2.0, 0.1), indexing="ij")
    pts = np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, -1.75)], 1).astype(np.float32)  # LiDAR frame
    sweep = Sweep("k", 1000, "L", np.eye(4), pts, labels=np.full(len(pts), 11), keyframe=True)
    lidar = np.eye(4)
    lidar[2, 3] = 1.0
    T = np.eye(4)
    T[:3, :3] = [[0, 0, 1], [-1, 0, 0], [0, -1, 0]]  # OpenCV axes: z forward = ego +x
    T[:3, 3] = (0.0, 0.0, 1.2)
    K = np.array([[32.0, 0, 32.0], [0, 32.0, 24.0], [0, 0, 1]])  # 90 degrees across
    cams = {"C": Camera("C", K, T, (48, 64))} if cameras else {}
    return SceneRecord("g", [sweep], {"L": lidar}, cams, _GROUND_NAMES, (0.5, 0.5, 0.5), (-9.0, 0.0, 0.0))


#: class 11 the ground (a name among ``LabelOptions.ground_classes``)
_GROUND_NAMES = tuple("driveable_surface" if i == 11 else f"c{i}" for i in range(17))


def test_the_ground_fill_reaches_ground_the_camera_saw_and_no_lidar_ray_passed_over():
    """Through the pipeline: without a camera the ground fill stops where the LiDAR's rays end (2.5 m ahead);
    with one, the empty columns ahead whose ground height its rays crossed take the ground's class at its height,
    and the camera mask then stops on them; behind the camera, which no ray looked into, nothing is filled."""
    grid = Grid((-2.0, -4.0, -1.0), (10.0, 4.0, 2.0), (0.5, 0.5, 0.5))
    (lidar_only,), _ = label_scene(_ground_ahead_scene(False), grid, _GROUND_NAMES, 17, LabelOptions())
    (both,), _ = label_scene(_ground_ahead_scene(True), grid, _GROUND_NAMES, 17, LabelOptions())
    x6, x_behind, y0 = 16, 2, 8  # x 6 m ahead, x 1 m behind, y 0
    assert lidar_only.semantics[x6, y0].tolist() == [17] * 6  # no ray of the LiDAR's passed over 6 m
    assert both.semantics[x6, y0, 0] == 11 and (both.semantics[x6, y0, 1:] == 17).all()
    ahead = both.semantics[12:, 6:11, 0]  # 4 m on, |y| < 1: in the camera's view, never in the LiDAR's
    assert (ahead == 11).all() and (lidar_only.semantics[12:, 6:11] == 17).all()
    assert (both.semantics[: x_behind + 1] == 17).all() and (lidar_only.semantics[: x_behind + 1] == 17).all()
    assert both.mask_camera[x6, y0, 0] == 1  # seen, and the ground stops the rays: its filled voxel the last
    assert both.stats["ground_voxels_filled"] > lidar_only.stats["ground_voxels_filled"]
