"""``occkit label --refine-boxes`` (occkit.labelgen.refine_boxes): the Rauch-Tung-Striebel smoother against
answers computed another way, and a box track with a known jitter smoothed."""

from __future__ import annotations

import numpy as np
import pytest

from occkit.data.scene_record import Boxes, SceneRecord, Sweep
from occkit.labelgen.refine_boxes import BoxRefinement, refine_record_boxes, rts_smooth


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
