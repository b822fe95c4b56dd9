"""``occkit label --refine-poses`` (occkit.labelgen.refine_poses): the pose graph's fusion computed by hand,
a known rigid offset of one sweep's recorded pose corrected by the registration, and a sweep the
registration cannot use reported with its recorded pose kept."""

from __future__ import annotations

import numpy as np
import pytest

from occkit.data.scene_record import SceneRecord, Sweep
from occkit.labelgen.refine_poses import (
    PoseRefinement,
    _exp,
    disagreement_limit,
    fuse_poses,
    ground_plane,
    level_step,
    odometry_sigmas,
    refine_record_poses,
)

pytest.importorskip("kiss_icp")


def _T(x: float, y: float = 0.0, z: float = 0.0, yaw: float = 0.0) -> np.ndarray:
    T = np.eye(4)
    c, s = np.cos(yaw), np.sin(yaw)
    T[:2, :2] = [[c, -s], [s, c]]
    T[:3, 3] = [x, y, z]
    return T


def test_fusion_of_exact_steps_and_zero_mean_prior_errors_is_the_truth():
    truth = [_T(0.0), _T(1.0), _T(2.0)]
    # recorded poses off by +0.3, -0.1, -0.2 m along x (mean 0), steps exact: the least-squares
    # trajectory is the one whose offsets from the priors are equal and sum to zero, i.e. the truth
    priors = [_T(0.3), _T(0.9), _T(1.8)]
    edges = [(0, 1, np.linalg.inv(truth[0]) @ truth[1]), (1, 2, np.linalg.inv(truth[1]) @ truth[2])]
    fused, jumps = fuse_poses(priors, edges, odometry_sigma=1e-4, prior_sigma=0.5, jump_sigmas=None)
    assert jumps == []
    for f, t in zip(fused, truth):
        np.testing.assert_allclose(f, t, atol=1e-4)


def test_fusion_without_edges_keeps_the_recorded_poses():
    priors = [_T(0.3), _T(0.9, 0.2, yaw=0.1)]
    fused, _ = fuse_poses(priors, [], odometry_sigma=0.02, prior_sigma=0.5)
    for f, p in zip(fused, priors):
        np.testing.assert_array_equal(f, p)


def test_fusion_weighs_steps_against_priors_as_their_variances_say():
    # two poses, priors at x=0 and x=1, one step saying +2 m: with equal standard deviations for the
    # step and the priors, the three residuals share the 1 m disagreement equally (1/3 each)
    priors = [_T(0.0), _T(1.0)]
    fused, _ = fuse_poses(priors, [(0, 1, _T(2.0))], odometry_sigma=0.5, prior_sigma=0.5, jump_sigmas=None)
    assert fused[0][0, 3] == pytest.approx(-1 / 3, abs=1e-4)
    assert fused[1][0, 3] == pytest.approx(4 / 3, abs=1e-4)


def _world_points(rng: np.random.Generator) -> np.ndarray:
    """A static scene with structure in every direction: the ground, two facades, a cross wall, poles."""
    n = 3000
    ground = np.c_[rng.uniform(-30, 40, n), rng.uniform(-15, 15, n), np.zeros(n)]
    left = np.c_[rng.uniform(-30, 40, n), np.full(n, 8.0), rng.uniform(0, 8, n)]
    right = np.c_[rng.uniform(-30, 40, n), np.full(n, -9.0), rng.uniform(0, 6, n)]
    cross = np.c_[np.full(n // 2, 35.0), rng.uniform(-9, 8, n // 2), rng.uniform(0, 5, n // 2)]
    poles = []
    for k, (px, py) in enumerate([(-5, 4), (3, -5), (12, 5), (20, -6), (28, 3), (-15, -4)]):
        a = rng.uniform(0, 2 * np.pi, 300)
        r = 0.3 + 0.1 * k
        poles.append(np.c_[px + r * np.cos(a), py + r * np.sin(a), rng.uniform(0, 4, 300)])
    return np.concatenate([ground, left, right, cross, *poles])


def _scene(
    offsets: dict[int, np.ndarray], empty: tuple[int, ...] = (), step: float = 1.0
) -> tuple[SceneRecord, list[np.ndarray]]:
    rng = np.random.default_rng(0)
    world = _world_points(rng)
    T_el = _T(0.0, 0.0, 1.8)
    sweeps, truth = [], []
    for i in range(12):
        T_true = _T(step * i, 0.05 * step * i, 0.0, yaw=0.01 * step * i)
        T_gl = T_true @ T_el
        pts = (world - T_gl[:3, 3]) @ T_gl[:3, :3]  # world -> sensor frame
        pts = pts[np.linalg.norm(pts, axis=1) < 60].astype(np.float32)
        if i in empty:
            pts = pts[:10]
        T_rec = T_true.copy()
        if i in offsets:
            T_rec[:3, 3] += offsets[i]
        sweeps.append(
            Sweep(
                token=f"s{i:02d}",
                timestamp=1_000_000 + 50_000 * i,
                sensor="LIDAR_TOP",
                T_global_from_ego=T_rec,
                points=pts,
                keyframe=i % 4 == 0,
            )
        )
        truth.append(T_true)
    return SceneRecord("scene", sweeps, {"LIDAR_TOP": T_el}), truth


def test_a_known_rigid_offset_of_one_sweep_is_corrected_by_the_registration():
    rec, truth = _scene({5: np.array([0.3, -0.25, 0.0])})
    refined, report = refine_record_poses(rec, PoseRefinement(voxel_size=0.3))
    err_before = np.linalg.norm(rec.sweeps[5].T_global_from_ego[:3, 3] - truth[5][:3, 3])
    err_after = np.linalg.norm(refined.sweeps[5].T_global_from_ego[:3, 3] - truth[5][:3, 3])
    assert err_before == pytest.approx(np.hypot(0.3, 0.25))
    assert err_after < 0.05, err_after
    others = [np.linalg.norm(s.T_global_from_ego[:3, 3] - t[:3, 3]) for s, t in zip(refined.sweeps, truth)]
    assert max(others) < 0.06  # the offset is taken out of sweep 5, not spread over its neighbours
    assert report["odometry_edges"] == 11
    assert [p.split(":")[0] for p in report["problems"]] == ["sweep s05"]  # taken as a jump, and said
    assert report["per_sweep"]["s05"][0] == pytest.approx(err_before, abs=0.05)  # its correction, reported


def test_a_sweep_too_sparse_to_register_is_reported_and_keeps_its_recorded_pose():
    rec, truth = _scene({}, empty=(7,))
    refined, report = refine_record_poses(rec, PoseRefinement(voxel_size=0.3))
    assert any(p.startswith("sweep s07:") and "recorded pose kept" in p for p in report["problems"])
    assert report["odometry_edges"] == 10  # s06 -> s08 spans the sweep left out
    moved = np.linalg.norm(refined.sweeps[7].T_global_from_ego[:3, 3] - rec.sweeps[7].T_global_from_ego[:3, 3])
    assert moved < 0.02  # no jump: exact priors and exact steps agree


def test_exact_recorded_poses_are_kept_as_they_are():
    rec, truth = _scene({})
    refined, report = refine_record_poses(rec, PoseRefinement(voxel_size=0.3))
    assert report["recorded_kept"] and not report["drift_taken_out"] and not report["problems"]
    for a, b in zip(refined.sweeps, rec.sweeps):
        np.testing.assert_array_equal(a.T_global_from_ego, b.T_global_from_ego)


def _ground(rng: np.random.Generator, n: int = 6000) -> np.ndarray:
    """A flat road at height 0 around the origin, a pavement 15 cm higher on its left (y > 4 m)."""
    xy = rng.uniform(-20, 20, (n, 2))
    z = np.where(xy[:, 1] > 4.0, 0.15, 0.0) + rng.normal(0, 0.01, n)
    return np.c_[xy, z]


def test_the_ground_plane_is_the_road_not_a_blend_of_road_and_pavement():
    rng = np.random.default_rng(1)
    n, d = ground_plane(_ground(rng))
    # a least-squares plane through both levels leans towards the pavement by about 0.2 degrees
    assert np.degrees(np.arccos(n[2])) < 0.02 and abs(d) < 0.005


def test_a_step_whose_height_and_pitch_the_registration_got_wrong_is_levelled_by_the_ground():
    rng = np.random.default_rng(2)
    truth = _T(0.8, 0.1, 0.0, yaw=0.02)  # sweep j seen from sweep i: 0.8 m ahead, on the same flat road
    g_world = _ground(rng, 12000)
    g_j = (g_world - truth[:3, 3]) @ truth[:3, :3]  # the same road, in sweep j's frame
    wrong = truth.copy()
    wrong[:3, :3] = truth[:3, :3] @ _exp(np.r_[0.0, np.radians(0.3), 0.0, 0, 0, 0])[:3, :3]  # 0.3 degrees of pitch
    wrong[2, 3] += 0.06  # and 6 cm of height
    fixed = level_step(wrong, ground_plane(g_world), g_j)
    assert fixed is not None
    np.testing.assert_allclose(fixed[:3, 3], truth[:3, 3], atol=0.005)
    err = np.linalg.inv(truth[:3, :3]) @ fixed[:3, :3]
    assert np.degrees(np.arccos(np.clip((np.trace(err) - 1) / 2, -1, 1))) < 0.02
    # the heading and the horizontal motion are the registration's, not the ground's (the ground cannot say them)
    off = truth.copy()
    off[0, 3] += 0.1
    np.testing.assert_allclose(level_step(off, ground_plane(g_world), g_j)[:2, 3], off[:2, 3], atol=1e-3)


def test_an_odometry_step_is_trusted_in_proportion_to_its_length_down_to_a_floor():
    edges = [(0, 1, _T(0.0)), (1, 2, _T(2.0)), (2, 3, _T(0.0, 0.3))]
    np.testing.assert_allclose(odometry_sigmas(edges, 0.005, 0.01), [0.005, 0.02, 0.005])


@pytest.mark.parametrize("step", [0.5, 0.0], ids=["moving", "standing"])
def test_noisy_poses_take_their_shape_from_the_registration_and_their_place_from_their_mean(step):
    # every recorded pose 0.2 m off in x, y and z (zero-mean from sweep to sweep), 0.5 m steps (10 Hz at 5 m/s) or
    # none: the refined trajectory is the true one moved by the recorded errors' mean, to within a few millimetres,
    # the height included (a step's standard deviation of 2 cm, as before, bent it by up to 3.8 cm here)
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 0.2, (12, 3))
    rec, truth = _scene(dict(enumerate(noise)), step=step)
    refined, report = refine_record_poses(rec, PoseRefinement(voxel_size=0.3))
    assert report["odometry_edges"] == 11 and not report["problems"]
    err = np.array([s.T_global_from_ego[:3, 3] - t[:3, 3] for s, t in zip(refined.sweeps, truth)])
    np.testing.assert_allclose(err.mean(0), noise.mean(0), atol=0.01)
    assert np.abs(err - err.mean(0)).max() < 0.01, np.abs(err - err.mean(0)).max(0)


def test_a_step_is_cut_where_it_disagrees_beyond_what_the_recorded_poses_own_noise_explains():
    rng = np.random.default_rng(5)
    noisy = list(np.linalg.norm(rng.normal(0, 0.2 * np.sqrt(2), (200, 3)), axis=1))  # 0.2 m a pose: steps differ
    assert max(noisy) > 1.0  # the fixed 1 m would cut this scene's trajectory in two
    assert disagreement_limit(noisy, 1.0) > max(noisy)
    assert disagreement_limit([*noisy, 500.0, 500.0], 1.0) < 5.0  # a jump is still cut
    assert disagreement_limit([0.002] * 30, 1.0) == 1.0  # exact poses: the floor
    assert disagreement_limit([0.5, 2.0, 500.0], 1.0) == 1.0  # too few steps to say: the floor


def test_exact_recorded_poses_are_not_taken_as_a_jump_for_a_few_centimetres_of_registration_error():
    # exact priors, one step of the odometry 5 cm off (a registration's slip), the next back on track: the fit
    # cannot tell whose the 5 cm are; under min_jump the recorded pose is no jump, over it (0) it is taken as one
    truth = [_T(0.5 * i) for i in range(10)]
    steps = [np.linalg.inv(a) @ b for a, b in zip(truth, truth[1:])]
    steps[4] = steps[4] @ _T(0.05)
    steps[5] = _T(-0.05) @ steps[5]
    edges = [(i, i + 1, z) for i, z in enumerate(steps)]
    _, jumps = fuse_poses(truth, edges, 0.005, 0.005, min_jump=0.2)
    assert jumps == []
    _, jumps = fuse_poses(truth, edges, 0.005, 0.005, min_jump=0.0)
    assert jumps == [5]
