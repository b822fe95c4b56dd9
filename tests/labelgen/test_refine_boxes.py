"""``occkit label --refine-boxes`` (occkit.labelgen.refine_boxes): the Rauch-Tung-Striebel smoother against
answers computed another way, and a box track with a known jitter smoothed."""

from __future__ import annotations

import numpy as np
import pytest

from occkit.data.scene_record import Boxes, SceneRecord, Sweep
from occkit.labelgen import refine_boxes
from occkit.labelgen.refine_boxes import (
    ACCELS,
    BoxRefinement,
    heading_smooth,
    kalman_smooth,
    noise_from_boxes,
    refine_record_boxes,
    rts_smooth,
)


def test_a_straight_track_measured_exactly_is_left_where_it_is():
    t = np.arange(10) * 0.05
    z = np.c_[3.0 + 8.0 * t, -1.0 + 0.5 * t]
    np.testing.assert_allclose(rts_smooth(t, z, 0.2, 2.0), z, atol=1e-3)


def test_with_no_process_noise_the_smoother_is_the_least_squares_line():
    # no acceleration allowed: the smoothed track is the straight line that fits the measurements best,
    # which np.polyfit computes independently
    t = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    z = t + np.array([0.2, -0.2, 0.2, -0.2, 0.2])
    slope, intercept = np.polyfit(t, z, 1)
    np.testing.assert_allclose(rts_smooth(t, z, 0.2, 1e-6), slope * t + intercept, atol=2e-3)


def _track(jitter: np.ndarray, yaw_jitter: np.ndarray) -> SceneRecord:
    sweeps = []
    for k in range(len(jitter)):
        t = 0.05 * k
        center = np.array([[10.0 + 8.0 * t + jitter[k, 0], 2.0 + jitter[k, 1], 0.8]])
        boxes = Boxes(np.array([7]), np.array([4]), center, np.array([[4.5, 1.9, 1.6]]), np.array([yaw_jitter[k]]))
        sweeps.append(Sweep(f"s{k}", 1_000_000 + 50_000 * k, "L", np.eye(4), np.zeros((0, 3), np.float32), boxes=boxes))
    sweeps[0].keyframe = True
    return SceneRecord("scene", sweeps, {"L": np.eye(4)})


def test_a_box_track_with_a_known_jitter_is_smoothed_towards_its_true_path():
    rng = np.random.default_rng(3)
    jitter = rng.normal(scale=0.2, size=(40, 2))
    yaw_jitter = np.radians(rng.normal(scale=3.0, size=40))
    rec = _track(jitter, yaw_jitter)
    refined, report = refine_record_boxes(rec, BoxRefinement())
    true_xy = np.array([[10.0 + 8.0 * 0.05 * k, 2.0] for k in range(40)])
    before = np.linalg.norm(np.array([s.boxes.center[0, :2] for s in rec.sweeps]) - true_xy, axis=1)
    after = np.linalg.norm(np.array([s.boxes.center[0, :2] for s in refined.sweeps]) - true_xy, axis=1)
    assert after.mean() < 0.4 * before.mean(), (before.mean(), after.mean())
    yaw_after = np.array([s.boxes.yaw[0] for s in refined.sweeps])
    assert np.abs(yaw_after).mean() < 0.4 * np.abs(yaw_jitter).mean()
    assert report["tracks"] == 1 and report["boxes"] == 40
    assert report["center_correction_m"]["mean"] == pytest.approx(
        float(
            np.mean([np.linalg.norm(a.boxes.center[0] - b.boxes.center[0]) for a, b in zip(rec.sweeps, refined.sweeps)])
        ),
        abs=1e-4,
    )


def test_refining_boxes_of_a_recording_without_boxes_is_refused_by_name():
    rec = SceneRecord(
        "scene", [Sweep("s0", 1, "L", np.eye(4), np.zeros((0, 3), np.float32), keyframe=True)], {"L": np.eye(4)}
    )
    with pytest.raises(ValueError, match="--refine-boxes needs boxes"):
        refine_record_boxes(rec)


def _arc(n: int, dt: float, speed: float, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A car's centre and heading going round a circle of ``radius`` at ``speed``: times, (N, 2), (N,)."""
    t = np.arange(n) * dt
    ang = speed * t / radius
    return t, np.c_[radius * np.sin(ang), radius * (1 - np.cos(ang))], ang


def test_the_noise_of_boxes_is_estimated_from_them_and_exact_boxes_have_none():
    rng = np.random.default_rng(5)
    tracks = []
    for k in range(20):  # turning and straight tracks, the sweeps a little uneven
        t = np.cumsum(rng.uniform(0.04, 0.06, 30))
        xy = _arc(30, 0.05, 8.0, 6.0 + k)[1] if k % 2 else np.c_[3.0 * t, 0.5 * t]
        tracks.append((t, xy))
    exact = noise_from_boxes(tracks)
    assert (exact < 0.01).all(), exact
    noisy = noise_from_boxes([(t, z + rng.normal(scale=0.2, size=z.shape)) for t, z in tracks])
    np.testing.assert_allclose(noisy, 0.2, rtol=0.15)


def test_the_likeliest_process_noise_is_larger_for_a_turning_track_than_a_straight_one():
    rng = np.random.default_rng(1)
    t, xy, _ = _arc(34, 0.045, 9.0, 6.0)  # 13.5 m/s^2 of centripetal acceleration
    q = np.repeat(np.array(ACCELS)[:, None] ** 2, 2, axis=1)
    z = xy + rng.normal(scale=0.2, size=xy.shape)
    _, ll_turn = kalman_smooth(t, z, np.full(2, 0.04), q)
    _, ll_line = kalman_smooth(t, np.c_[9.0 * t, 0 * t] + rng.normal(scale=0.2, size=xy.shape), np.full(2, 0.04), q)
    assert ACCELS[int(np.argmax(ll_turn.sum(1)))] >= 8.0
    assert ACCELS[int(np.argmax(ll_line.sum(1)))] <= 1.0


def _arc_record(noise: float, seed: int = 0) -> tuple[SceneRecord, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t, xy, yaw = _arc(34, 0.045, 9.0, 6.0)
    sweeps = []
    for k in range(len(t)):
        c = np.array([[xy[k, 0], xy[k, 1], 1.0]]) + rng.normal(scale=noise, size=(1, 3))
        boxes = Boxes(np.array([3]), np.array([4]), c, np.array([[4.5, 1.9, 1.6]]), np.array([yaw[k]]))
        ts = 1_000_000 + int(round(t[k] * 1e6))
        sweeps.append(Sweep(f"s{k}", ts, "L", np.eye(4), np.zeros((0, 3), np.float32), boxes=boxes))
    sweeps[0].keyframe = True
    return SceneRecord("scene", sweeps, {"L": np.eye(4)}), xy, yaw


def test_exact_boxes_of_a_car_turning_hard_are_kept_and_noisy_ones_follow_the_turn():
    rec, xy, yaw = _arc_record(0.0)
    refined, report = refine_record_boxes(rec, BoxRefinement())
    assert report["center_correction_m"]["max"] < 0.01 and report["yaw_correction_deg"]["max"] < 0.1, report
    rec, xy, yaw = _arc_record(0.2)
    refined, report = refine_record_boxes(rec, BoxRefinement())
    got = np.array([s.boxes.center[0, :2] for s in refined.sweeps])
    before = np.array([s.boxes.center[0, :2] for s in rec.sweeps])
    err, err0 = np.linalg.norm(got - xy, axis=1), np.linalg.norm(before - xy, axis=1)
    assert err.mean() < 0.6 * err0.mean() and err.max() < 0.3, (err0.mean(), err.mean(), err.max())
    assert report["center_sigma_m"]["horizontal"] == pytest.approx(0.2, rel=0.35)


def test_a_setting_that_is_not_a_positive_number_is_refused_by_name():
    with pytest.raises(ValueError, match="refine_boxes.accel must be a positive number"):
        BoxRefinement(accel=-1.0)


def test_tracks_smoothed_together_on_common_times_are_smoothed_as_each_alone():
    # three tracks on one clock, one starting late and one ending early (NaN where a track has no box): the
    # batch gives each track what smoothing it alone on its own times gives
    rng = np.random.default_rng(2)
    t = np.arange(30) * 0.05
    z = np.full((3, 30, 2), np.nan)
    spans = [(0, 30), (6, 30), (0, 21)]
    for j, (a, b) in enumerate(spans):
        z[j, a:b] = np.c_[(j + 1) * 2.0 * t[a:b], np.sin(t[a:b])] + rng.normal(scale=0.2, size=(b - a, 2))
    q = np.repeat(np.array(ACCELS[:4])[:, None] ** 2, 2, axis=1)
    together, ll = kalman_smooth(t, z, np.full(2, 0.04), q)
    assert together.shape == (3, 4, 30, 2) and ll.shape == (3, 4, 2)
    for j, (a, b) in enumerate(spans):
        alone, ll_alone = kalman_smooth(t[a:b], z[j, a:b], np.full(2, 0.04), q)
        np.testing.assert_allclose(together[j, :, a:b], alone, atol=1e-4)  # the diffuse prior: a hair apart
        np.testing.assert_allclose(ll[j], ll_alone, atol=1e-3)


def test_the_batches_change_no_box(monkeypatch):
    # a scene of tracks that start and end at different sweeps, smoothed in one batch, and one track a batch
    rng = np.random.default_rng(4)
    sweeps = []
    for k in range(40):
        live = [j for j in range(6) if 5 * j <= k < 5 * j + 20]
        c = np.array([[2.0 * j + 8.0 * 0.05 * k, 3.0 * j, 0.8] for j in live]).reshape(-1, 3)
        c = c + rng.normal(scale=0.2, size=c.shape)
        n = len(live)
        boxes = Boxes(np.array(live), np.full(n, 4), c, np.tile([4.5, 1.9, 1.6], (n, 1)), np.zeros(n))
        sweeps.append(Sweep(f"s{k}", 1_000_000 + 50_000 * k, "L", np.eye(4), np.zeros((0, 3), np.float32), boxes=boxes))
    sweeps[0].keyframe = True
    rec = SceneRecord("scene", sweeps, {"L": np.eye(4)})
    one, _ = refine_record_boxes(rec)
    monkeypatch.setattr(refine_boxes, "BATCH", 1)
    alone, _ = refine_record_boxes(rec)
    for a, b in zip(one.sweeps, alone.sweeps):
        np.testing.assert_allclose(a.boxes.center, b.boxes.center, atol=1e-3)  # the diffuse prior: a hair
    before = np.concatenate([s.boxes.center for s in rec.sweeps])
    assert np.abs(np.concatenate([s.boxes.center for s in one.sweeps]) - before).max() > 0.05  # smoothed at all


def test_a_centre_moving_along_its_heading_with_no_process_noise_is_the_least_squares_fit():
    # with (almost) no process noise the heading-tied smoother is the least-squares fit of a start and a speed
    # along the known headings: the centre at k is p0 + s * sum of h_i * (cos, sin) of the mean heading
    rng = np.random.default_rng(3)
    t = np.cumsum(rng.uniform(0.04, 0.06, 25))
    yaw = 0.8 * t**2
    mid = 0.5 * (yaw[1:] + yaw[:-1])
    arm = np.r_[[[0.0, 0.0]], np.cumsum(np.diff(t)[:, None] * np.c_[np.cos(mid), np.sin(mid)], axis=0)]
    z = np.array([1.0, -2.0]) + 6.0 * arm + rng.normal(scale=0.2, size=arm.shape)
    got, ll = heading_smooth(t, z[None], yaw[None], 0.04, np.array([[1e-10, 1e-10]]))
    A = np.zeros((2 * len(t), 3))
    A[0::2, 0], A[1::2, 1], A[0::2, 2], A[1::2, 2] = 1.0, 1.0, arm[:, 0], arm[:, 1]
    p0x, p0y, s = np.linalg.lstsq(A, z.reshape(-1), rcond=None)[0]
    np.testing.assert_allclose(got[0, 0], np.c_[p0x, p0y] + s * arm, atol=1e-3)
    assert ll.shape == (1, 1) and np.isfinite(ll).all()


def test_a_bus_still_turning_when_its_track_ends_is_followed_to_its_last_box():
    # a 12 m bus turning 79 degrees in 1.5 s, its boxes' yaw exact and their centres 0.2 m off: the centre
    # tied to the heading follows it to its last box, where a constant-velocity smoother cuts the corner
    n, h = 31, 0.05
    t = np.arange(n) * h
    yaw = np.radians(-79.0) / 1.5 * t
    mid = 0.5 * (yaw[1:] + yaw[:-1])
    xy = np.r_[[[0.0, 0.0]], np.cumsum(7.4 * h * np.c_[np.cos(mid), np.sin(mid)], axis=0)]
    q = np.repeat(np.array(ACCELS)[:, None] ** 2, 2, axis=1)
    end, end_cv = [], []
    for seed in range(4):
        rng = np.random.default_rng(seed)
        sweeps = []
        for k in range(n):
            c = np.array([[xy[k, 0], xy[k, 1], 1.5]]) + rng.normal(scale=0.2, size=(1, 3))
            b = Boxes(np.array([3]), np.array([5]), c, np.array([[12.0, 2.5, 3.0]]), np.array([yaw[k]]))
            sweeps.append(Sweep(f"s{k}", 1_000_000 + 50_000 * k, "L", np.eye(4), np.zeros((0, 3), np.float32), boxes=b))
        rec = SceneRecord("scene", sweeps, {"L": np.eye(4)})
        refined, report = refine_record_boxes(rec)
        assert report["heading_tied_tracks"] == 1, report
        got = np.array([s.boxes.center[0, :2] for s in refined.sweeps])
        raw = np.array([s.boxes.center[0, :2] for s in rec.sweeps])
        sm, ll = kalman_smooth(t, raw, np.full(2, 0.04), q)
        end.append(np.linalg.norm(got - xy, axis=1)[-3:].max())
        end_cv.append(np.linalg.norm(sm[np.argmax(ll.sum(1))] - xy, axis=1)[-3:].max())
    assert max(end) < 0.1 and np.mean(end) < 0.5 * np.mean(end_cv), (end, end_cv)
