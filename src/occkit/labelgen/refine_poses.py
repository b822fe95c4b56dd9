"""``occkit label --refine-poses``: the recorded ego poses refined by LiDAR registration (docs/labels.md,
"Imperfect recordings").

Two steps per scene:

1. **Odometry**: every sweep's returns (ego frame, the ground and the ego vehicle left out: the rings a
   LiDAR draws on the ground move with the sensor and pull a registration towards no motion) registered
   to a local map of the sweeps before it, by KISS-ICP (``kiss-icp``: adaptive-threshold point-to-point
   ICP on a voxel hash map). Walls and poles alone hold a step's height and tilt least of all: each step's
   height, roll and pitch are set by the ground, one sweep's ground plane laid on the next's
   (:func:`ground_plane`, :func:`level_step`). A step the registration cannot make (too few points, or a
   motion that disagrees with the recorded one by more than ``max_disagreement``) is reported by sweep and
   gives no edge: the recorded poses keep that stretch.
2. **Fusion**: a pose graph whose nodes are the sweeps' ego poses, with an edge per odometry step
   (standard deviation ``odometry_drift`` of its length, at least ``odometry_sigma``:
   :func:`odometry_sigmas`) and a prior per sweep at its recorded pose (``prior_sigma``: by
   default estimated from how far the recorded steps disagree with the odometry's, so that exact poses are
   kept and noisy ones follow the registration), solved by sparse nonlinear least squares (scipy). The
   refined trajectory keeps the recorded poses' frame, and takes its shape from the registration; where the
   recorded steps agree with the registration's to within its noise (no drift, no jump), the recorded poses are
   kept as they are. A
   horizontal drift of the recorded positions against the odometry's, fast enough to be the recording's
   (``min_drift``), is taken out of them first (:func:`recorded_drift`).

Each sweep's correction (metres, degrees) is reported. :func:`fuse_poses` is pure and tested by hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from occkit.data.scene_record import SceneRecord


@dataclass(frozen=True)
class PoseRefinement:
    """The registration's and the fusion's settings (``occkit label --set refine_poses.KEY=VALUE``)."""

    enabled: bool = False
    """Refine the recorded poses (``occkit label --refine-poses``)."""

    voxel_size: float = 0.5
    """Metres: the registration's map voxel (KISS-ICP's; the sweep is sampled at 1.5 x this)."""
    max_range: float = 100.0
    """Metres: returns farther than this are not registered."""
    min_range: float = 2.0
    """Metres: returns nearer than this are not registered."""
    ground_clearance: float = 0.3
    """Metres above the sweep's ground level (its lowest dense band of returns) below which returns are
    not registered."""
    min_points: int = 200
    """Returns a sweep needs after the filters to be registered."""
    max_disagreement: float = 1.0
    """Metres (and ten times as many degrees): an odometry step farther than this from the recorded
    step is not trusted (reported; no edge)."""
    odometry_sigma: float = 0.005
    """Metres: the standard deviation of an odometry step, at least (a step standing still included)."""
    odometry_drift: float = 0.01
    """The standard deviation of an odometry step as a share of its length, where that is more than
    :attr:`odometry_sigma` (KISS-ICP drifts by about 0.5 % of the distance on KITTI; twice that here). A recorded
    pose's error of 0.2 m is a hundred such steps: the refined trajectory takes its shape from the registration and
    its place from the recorded poses' mean."""
    ground: bool = True
    """Correct each odometry step's height, roll and pitch by the ground (:func:`ground_plane`,
    :func:`level_step`): the registration leaves the ground out, and walls and poles alone hold the height and the
    tilt least of all."""
    ground_range: float = 20.0
    """Metres: the ground returns within this horizontal distance of a sweep are its ground plane's."""
    odometry_rotation_sigma: float = 0.05
    """Degrees: the standard deviation of an odometry step's rotation."""
    prior_sigma: float | None = None
    """Metres: the standard deviation of a recorded pose; None: estimated from the data (the recorded steps'
    disagreement with the odometry's, :func:`prior_sigma_from_steps`)."""
    prior_rotation_sigma: float = 0.1
    """Degrees: the standard deviation of a recorded pose's rotation (an INS's heading is good to about this;
    a registration drifts in rotation first)."""
    min_prior_sigma: float = 0.005
    """Metres: the estimate of :attr:`prior_sigma` is at least this."""
    min_jump: float = 0.2
    """Metres: a recorded pose is taken as a jump (:func:`fuse_poses`) only where it is off by at least this: a
    GNSS / INS jump is decimetres, while a registration's step can be off by a few centimetres now and then, and
    against exact recorded poses the two cannot be told apart."""
    min_drift: float = 0.05
    """Metres per second: a horizontal drift of the recorded poses against the odometry at least this fast, and
    adding up to at least :attr:`min_drift_total` over the scene, is taken out of the recorded poses before the
    fusion (:func:`recorded_drift`); slower, it is the odometry's own error as much as the recording's."""
    min_drift_total: float = 0.1
    """Metres: see :attr:`min_drift`."""


def _rotvec(R: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(R).as_rotvec()


def _exp(d: np.ndarray) -> np.ndarray:
    """The 4x4 transform of a perturbation ``d = (rotation vector, translation)``."""
    from scipy.spatial.transform import Rotation

    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(d[:3]).as_matrix()
    T[:3, 3] = d[3:]
    return T


def _log(T: np.ndarray) -> np.ndarray:
    return np.concatenate([_rotvec(T[:3, :3]), T[:3, 3]])


def prior_sigma_from_steps(
    priors: list[np.ndarray],
    edges: list[tuple[int, int, np.ndarray]],
    odometry_sigma: float | np.ndarray,
    floor: float,
) -> float:
    """The recorded poses' standard deviation (metres) the data says: a recorded step between two sweeps
    disagrees with the odometry's by two recorded errors and one odometry error, so the mean squared
    disagreement per axis is ``2 sigma_p^2 + sigma_o^2``; its median (over three axes, 0.789 of the mean for
    normal errors) is taken, so that a few jumps do not pass for noise. ``odometry_sigma``: one for every step, or
    each step's (their mean square is taken). At least ``floor``; ``floor`` when there is no edge."""
    if not edges:
        return floor
    d2 = []
    for i, j, z in edges:
        rec_step = np.linalg.inv(priors[i]) @ priors[j]
        d2.append(float(np.sum((np.linalg.inv(rec_step) @ z)[:3, 3] ** 2)) / 3)
    mean_sq = float(np.median(d2)) / 0.789  # the median of a chi-square of 3 degrees over 3 is 0.789
    odo_sq = float(np.mean(np.square(odometry_sigma)))
    return max(floor, math.sqrt(max(mean_sq - odo_sq, 0.0) / 2))


def fuse_poses(
    priors: list[np.ndarray],
    edges: list[tuple[int, int, np.ndarray]],
    odometry_sigma: float | np.ndarray,
    prior_sigma: float,
    odometry_rotation_sigma: float | None = None,
    prior_rotation_sigma: float | None = None,
    jump_sigmas: float | None = 5.0,
    min_jump: float = 0.0,
) -> tuple[list[np.ndarray], list[int]]:
    """The poses ``X_i`` (4x4) that best fit the recorded ``priors`` (``X_i ~ P_i``, standard deviation
    ``prior_sigma`` m and ``prior_rotation_sigma`` degrees) and the relative ``edges`` ``(i, j, Z)``
    (``X_i^-1 X_j ~ Z``, ``odometry_sigma`` m, one for every edge or each edge's, and ``odometry_rotation_sigma``
    degrees; a rotation sigma not given: the metres' (mean) tenth, in radians), by sparse least squares on right
    perturbations ``X_i = P_i exp(d_i)``; and the sweeps whose recorded pose was taken as a jump.

    A recorded pose farther than ``jump_sigmas`` standard deviations from the fit, farther than the poses up to two
    sweeps either side (stiff steps pull a jump's neighbours along, less far), and at least ``min_jump`` metres from
    where the step into it places it (a few centimetres' disagreement with exact recorded poses is as likely the
    registration's) is a jump: its prior is dropped and the fit made again (up to three rounds, at most half the
    priors), so that one bad pose is placed by its steps instead of being spread over its neighbours. None: no
    jumps."""
    n = len(priors)
    P = [np.asarray(p, dtype=np.float64) for p in priors]
    if n == 0 or not edges:
        return P, []
    so = np.broadcast_to(np.asarray(odometry_sigma, np.float64), (len(edges),))
    rp = math.radians(prior_rotation_sigma) if prior_rotation_sigma is not None else prior_sigma / 10
    ro = math.radians(odometry_rotation_sigma) if odometry_rotation_sigma is not None else float(so.mean()) / 10
    w_p = np.array([1 / rp] * 3 + [1 / prior_sigma] * 3)
    w_o = np.c_[np.full((len(edges), 3), 1 / ro), np.repeat(1 / so[:, None], 3, axis=1)]
    active = np.ones(n, bool)
    d = _solve(P, edges, w_p, w_o, active)
    for _ in range(3 if jump_sigmas is not None else 0):
        whitened = np.where(active, np.linalg.norm(d[:, 3:], axis=1) / prior_sigma, 0.0)
        # a jump's own pose stands out most: its neighbours, pulled along by stiff steps, are not jumps
        peak = whitened >= np.maximum.reduce([np.roll(np.pad(whitened, 2), k)[2:-2] for k in (-2, -1, 1, 2)])
        jump = active & peak & (whitened > jump_sigmas)
        if min_jump > 0:
            jump &= _off_its_steps(P, [P[i] @ _exp(d[i]) for i in range(n)], edges) >= min_jump
        if not jump.any() or (~(active & ~jump)).sum() > n // 2:
            break
        active &= ~jump
        d = _solve(P, edges, w_p, w_o, active)
    return [P[i] @ _exp(d[i]) for i in range(n)], np.nonzero(~active)[0].tolist()


def _off_its_steps(P: list[np.ndarray], X: list[np.ndarray], edges: list[tuple[int, int, np.ndarray]]) -> np.ndarray:
    """Metres: how far each recorded pose ``P_k`` is from where the step into it places it from the fitted pose
    before (``X_i Z``; the step out of it, from the one after, where none comes in; 0 with no step)."""
    off = np.zeros(len(P))
    seen = np.zeros(len(P), bool)
    for i, j, z in edges:
        off[j], seen[j] = np.linalg.norm((X[i] @ z)[:3, 3] - P[j][:3, 3]), True
    for i, j, z in edges:
        if not seen[i]:
            off[i], seen[i] = np.linalg.norm((X[j] @ np.linalg.inv(z))[:3, 3] - P[i][:3, 3]), True
    return off


def odometry_sigmas(edges: list[tuple[int, int, np.ndarray]], floor: float, drift: float) -> np.ndarray:
    """Each odometry step's standard deviation (metres): ``drift`` times its length, at least ``floor``."""
    lengths = np.array([float(np.linalg.norm(z[:3, 3])) for _, _, z in edges])
    return np.maximum(floor, drift * lengths)


def recorded_drift(
    priors: list[np.ndarray], edges: list[tuple[int, int, np.ndarray]], times: np.ndarray
) -> np.ndarray | None:
    """The horizontal velocity ``(3,)`` (z 0) at which the recorded positions slide away from the odometry's
    (the steps chained from the first sweep), by a least-squares line through their differences against time;
    zero when the slope is within three of its standard errors (the recorded poses' white noise about the
    line, not a drift); None unless the steps chain every sweep (a scene with a gap is not estimated)."""
    n = len(priors)
    if n < 3 or [(i, j) for i, j, _ in edges] != [(k, k + 1) for k in range(n - 1)]:
        return None
    X = [np.asarray(priors[0], np.float64)]
    for _, _, z in edges:
        X.append(X[-1] @ z)
    diff = np.array([p[:3, 3] - x[:3, 3] for p, x in zip(priors, X)])
    t = np.asarray(times, np.float64) - float(np.mean(times))
    A = np.c_[np.ones(n), t]
    coef = np.linalg.lstsq(A, diff[:, :2], rcond=None)[0]
    rms = np.sqrt(((diff[:, :2] - A @ coef) ** 2).mean(0))
    se = float(np.linalg.norm(rms)) / max(float(t.std()) * np.sqrt(n), 1e-9)  # the slope's standard error
    v = np.array([coef[1, 0], coef[1, 1], 0.0])
    return v if np.linalg.norm(v) > 3 * se else np.zeros(3)  # white noise about the line is not a drift


def _solve(
    P: list[np.ndarray], edges: list[tuple[int, int, np.ndarray]], w_p: np.ndarray, w_o: np.ndarray, active: np.ndarray
) -> np.ndarray:
    """The perturbations ``(n, 6)`` of the least-squares fit with the priors ``active`` says (``w_o``: each
    edge's weights, ``(E, 6)``)."""
    from scipy.optimize import least_squares
    from scipy.sparse import lil_matrix

    n = len(P)
    Zinv = [np.linalg.inv(z) for _, _, z in edges]
    wp = w_p[None] * active[:, None]

    def residuals(x: np.ndarray) -> np.ndarray:
        d = x.reshape(n, 6)
        X = [P[i] @ _exp(d[i]) for i in range(n)]
        out = [(d * wp).ravel()]
        for (i, j, _), zi, w in zip(edges, Zinv, w_o):
            out.append(_log(zi @ np.linalg.inv(X[i]) @ X[j]) * w)
        return np.concatenate(out)

    S = lil_matrix((6 * n + 6 * len(edges), 6 * n), dtype=np.int8)
    for i in range(n):
        S[6 * i : 6 * i + 6, 6 * i : 6 * i + 6] = 1
    for k, (i, j, _) in enumerate(edges):
        r = 6 * n + 6 * k
        S[r : r + 6, 6 * i : 6 * i + 6] = 1
        S[r : r + 6, 6 * j : 6 * j + 6] = 1
    sol = least_squares(residuals, np.zeros(6 * n), jac_sparsity=S, method="trf", x_scale="jac", xtol=1e-10)
    return sol.x.reshape(n, 6)


def _registration_points(
    rec: SceneRecord, i: int, ref: PoseRefinement, ego_margin: float
) -> tuple[np.ndarray, np.ndarray]:
    """Sweep ``i``'s returns in the ego frame that the registration uses (within range, not the ego vehicle's,
    above the sweep's ground level by ``ground_clearance``), and those below that (the ground's, for
    :func:`ground_plane`)."""
    from occkit.labelgen.steps import ego_points

    s = rec.sweeps[i]
    T_el = rec.lidars[s.sensor]
    p = s.points.astype(np.float64)
    r = np.linalg.norm(p, axis=1)
    p = p[(r >= ref.min_range) & (r <= ref.max_range)] @ T_el[:3, :3].T + T_el[:3, 3]
    p = p[~ego_points(p, rec.ego_size, rec.ego_center, ego_margin)]
    if len(p) == 0:
        return p, p
    near = np.hypot(p[:, 0], p[:, 1]) < 20.0
    z = p[near, 2] if near.sum() >= 50 else p[:, 2]
    ground = float(np.percentile(z, 10))  # most near returns are the ground
    above = p[:, 2] > ground + ref.ground_clearance
    low = p[~above]
    return p[above], low[:: max(len(low) // 8000, 1)]  # the ground's plane needs no more than some thousands


def _fit_plane(
    p: np.ndarray, n0: np.ndarray, d0: float, radius: float, min_points: int
) -> tuple[np.ndarray, float] | None:
    """The plane ``n . x = d`` (``n`` unit, up) through the points ``(N, 3)`` on the plane ``(n0, d0)``: fitted by
    least squares to those within 8 cm of it and half ``radius`` metres horizontally of the origin, then to those
    within 5 cm of the fit and ``radius`` of the origin, twice; a curb (15 cm) or anything standing on the ground
    falls out, so the plane is one surface, not a tilted blend of the road and the pavement. None with fewer than
    ``min_points`` points on it."""
    n, d = np.asarray(n0, np.float64), float(d0)
    r = np.hypot(p[:, 0], p[:, 1])
    for tol, reach in ((0.08, radius / 2), (0.05, radius), (0.05, radius)):
        q = p[(np.abs(p @ n - d) < tol) & (r <= reach)]
        if len(q) < min_points:
            return None
        c = q.mean(0)
        n = np.linalg.svd(q - c, full_matrices=False)[2][2]
        n = n if n[2] > 0 else -n
        d = float(n @ c)
    return n, d


def ground_plane(
    points: np.ndarray, ground_range: float = 20.0, min_points: int = 50
) -> tuple[np.ndarray, float] | None:
    """The ground's plane ``(n, d)`` (``n . x = d``, ``n`` unit and up) under a sweep, from its ego-frame returns
    ``(N, 3)`` within ``ground_range`` metres horizontally: the surface at their lowest dense level (the 10th
    percentile of the heights of those within half that range), fitted robustly (:func:`_fit_plane`); None with
    fewer than ``min_points`` returns on it."""
    p = np.asarray(points, np.float64)
    near = p[np.hypot(p[:, 0], p[:, 1]) <= ground_range / 2]
    if len(near) < min_points:
        return None
    return _fit_plane(p, np.array([0.0, 0.0, 1.0]), float(np.percentile(near[:, 2], 10)), ground_range, min_points)


def level_step(
    step: np.ndarray, plane_i: tuple[np.ndarray, float], ground_j: np.ndarray, ground_range: float = 20.0
) -> np.ndarray | None:
    """The odometry step ``T_ego_i_from_ego_j`` (4x4) with its tilt (roll, pitch) and its height corrected so that
    sweep ``j``'s ground returns ``ground_j`` (its ego frame), moved by the step, lie on sweep ``i``'s ground plane
    ``plane_i`` (:func:`ground_plane`), over the ground within ``ground_range`` of sweep ``i``: the two sweeps see
    the same road there. The heading and the horizontal motion are the registration's. None: too few of sweep
    ``j``'s ground returns there, or a correction too large to be the registration's error (over 2 degrees or
    0.5 m)."""
    n_i, d_i = plane_i
    R, t = step[:3, :3], step[:3, 3]
    q = np.asarray(ground_j, np.float64) @ R.T + t
    q = q[np.hypot(q[:, 0], q[:, 1]) <= ground_range]
    fit = _fit_plane(q, n_i, d_i, ground_range, 50)
    if fit is None:
        return None
    n_j = fit[0]
    axis = np.cross(n_j, n_i)  # the rotation that takes sweep j's ground normal onto sweep i's
    angle = math.atan2(float(np.linalg.norm(axis)), float(n_j @ n_i))
    if angle > math.radians(2.0):
        return None
    Q = _exp(np.r_[axis / max(np.linalg.norm(axis), 1e-12) * angle, 0.0, 0.0, 0.0])[:3, :3]
    q = (q - t) @ Q.T + t  # sweep j's ground turned about its own origin
    h = q @ n_i - d_i
    h = h[np.abs(h) < 0.05 + abs(fit[1] - d_i)]  # on the surface fitted, a curb or a kerbside car aside
    h = h[np.abs(h - np.median(h)) < 0.05] if len(h) else h
    if len(h) < 50 or abs(float(np.median(h))) > 0.5:
        return None
    h = float(np.median(h))
    out = np.eye(4)
    out[:3, :3] = Q @ R
    out[:3, 3] = t - h * n_i
    return out


def lidar_odometry(
    rec: SceneRecord, ref: PoseRefinement, ego_margin: float = 0.2, kept: list[tuple[str, float]] | None = None
) -> tuple[list[tuple[int, int, np.ndarray]], list[str]]:
    """KISS-ICP odometry over the scene's sweeps in time order: the relative ego motions
    ``(i, j, T_ego_i_from_ego_j)`` between consecutive registered sweeps, and one line per sweep the
    registration could not use or did not trust. ``kept``: where given, each sweep whose recorded pose is
    kept for want of an edge is appended to it, ``(token, metres)``: its disagreement with the registration
    (0 where the sweep had too few returns to register).

    A step is not trusted where it disagrees with the recorded one by more than :func:`disagreement_limit` says
    (``max_disagreement``, or more where the recorded poses' own noise is that large): the registration then
    starts afresh from that sweep."""
    try:
        from kiss_icp.config import KISSConfig
    except ImportError:
        raise ValueError(
            "--refine-poses: kiss-icp is not installed (pip install 'occkit[refine]', or pip install kiss-icp)"
        ) from None
    cfg = KISSConfig()
    cfg.data.deskew = False
    cfg.data.max_range = ref.max_range
    cfg.data.min_range = 0.0
    cfg.mapping.voxel_size = ref.voxel_size
    cfg.registration.max_num_threads = 1
    clouds = [_registration_points(rec, i, ref, ego_margin) for i in range(len(rec.sweeps))]
    planes = [ground_plane(g, ref.ground_range) if ref.ground else None for _, g in clouds]
    edges, problems, held, dis = _odometry_pass(rec, ref, cfg, clouds, planes, None)
    limit = disagreement_limit([d for d, _ in dis], ref.max_disagreement)
    if any(d > limit or a > 10 * ref.max_disagreement for d, a in dis):  # again, cut where it is not trusted
        edges, problems, held, _ = _odometry_pass(rec, ref, cfg, clouds, planes, limit)
    if kept is not None:
        kept += held
    return edges, problems


def disagreement_limit(disagreements: list[float], floor: float) -> float:
    """Metres: how far an odometry step may disagree with the recorded one and be trusted: ``floor``, or six times
    the lower quartile of the scene's disagreements (at least 8 steps) where that is more: a recorded pose's
    zero-mean error of 0.2 m makes two sweeps' steps disagree by over 1 m once in 150 steps (a quarter of them
    by under 0.28 m), and a step cut there splits the scene's trajectory in two."""
    if len(disagreements) < 8:
        return floor
    return max(floor, 6 * float(np.percentile(disagreements, 25)))


def _odometry_pass(
    rec: SceneRecord,
    ref: PoseRefinement,
    cfg: Any,
    clouds: list[tuple[np.ndarray, np.ndarray]],
    planes: list[tuple[np.ndarray, float] | None],
    limit: float | None,
) -> tuple[list[tuple[int, int, np.ndarray]], list[str], list[tuple[str, float]], list[tuple[float, float]]]:
    """One run of the registration over the sweeps (``clouds``: each one's registered and ground returns,
    ``planes``: its ground plane); a step disagreeing with the recorded one by more than ``limit`` metres (or ten
    times as many degrees as ``max_disagreement``) gives no edge and the registration starts afresh (None: every
    step kept). The edges, the problems, the sweeps kept (:func:`lidar_odometry`), and each step's disagreement
    ``(metres, degrees)``."""
    from kiss_icp.kiss_icp import KissICP

    kiss = KissICP(cfg)
    edges: list[tuple[int, int, np.ndarray]] = []
    problems: list[str] = []
    kept: list[tuple[str, float]] = []
    dis: list[tuple[float, float]] = []
    last: int | None = None
    prev_pose = np.eye(4)
    for i, s in enumerate(rec.sweeps):
        p, ground = clouds[i]
        if len(p) < ref.min_points:
            problems.append(f"sweep {s.token}: {len(p)} returns to register (< {ref.min_points}): recorded pose kept")
            kept.append((s.token, 0.0))
            continue
        kiss.register_frame(p, np.zeros(len(p)))
        pose = kiss.last_pose.copy()
        if last is not None:
            step = np.linalg.inv(prev_pose) @ pose
            if planes[last] is not None:
                leveled = level_step(step, planes[last], ground, ref.ground_range)
                step = step if leveled is None else leveled
            rec_step = np.linalg.inv(rec.sweeps[last].T_global_from_ego) @ s.T_global_from_ego
            dev = np.linalg.inv(rec_step) @ step
            dt = float(np.linalg.norm(dev[:3, 3]))
            da = math.degrees(float(np.linalg.norm(_rotvec(dev[:3, :3]))))
            dis.append((dt, da))
            if limit is not None and (dt > limit or da > 10 * ref.max_disagreement):
                problems.append(
                    f"sweep {s.token}: registration disagrees with the recorded motion by {dt:.2f} m, {da:.2f} deg "
                    "(no odometry edge: recorded pose kept there)"
                )
                kept.append((s.token, dt))
                kiss = KissICP(cfg)  # start afresh from this sweep
                kiss.register_frame(p, np.zeros(len(p)))
                pose = kiss.last_pose.copy()
            else:
                edges.append((last, i, step))
        prev_pose, last = pose, i
    return edges, problems, kept, dis


def refine_record_poses(
    rec: SceneRecord, ref: PoseRefinement | None = None, ego_margin: float = 0.2
) -> tuple[SceneRecord, dict[str, Any]]:
    """``rec`` with every sweep's ego pose refined (:func:`lidar_odometry` then :func:`fuse_poses`), and
    the report: each sweep's correction (metres, degrees), the steps registered, the problems."""
    ref = ref if ref is not None else PoseRefinement()
    kept_at: list[tuple[str, float]] = []
    edges, problems = lidar_odometry(rec, ref, ego_margin, kept_at)
    priors = [s.T_global_from_ego for s in rec.sweeps]
    times = np.array([s.timestamp * 1e-6 for s in rec.sweeps])
    drift = recorded_drift(priors, edges, times)
    span = float(times.max() - times.min()) if len(times) else 0.0
    taken = drift is not None and (
        np.linalg.norm(drift) >= ref.min_drift and np.linalg.norm(drift) * span >= ref.min_drift_total
    )
    if taken:  # the recording's drift taken out of its poses, about the scene's middle time
        tau = times - times.mean()
        priors = [_shifted(p, -drift * tk) for p, tk in zip(priors, tau)]
    odo = odometry_sigmas(edges, ref.odometry_sigma, ref.odometry_drift)
    sigma = ref.prior_sigma
    if sigma is None:
        sigma = prior_sigma_from_steps(priors, edges, odo, ref.min_prior_sigma)
    fused, jumps = fuse_poses(
        priors, edges, odo, sigma, ref.odometry_rotation_sigma, ref.prior_rotation_sigma, min_jump=ref.min_jump
    )
    for i in jumps:
        off = float(np.linalg.norm(fused[i][:3, 3] - priors[i][:3, 3]))
        problems.append(
            f"sweep {rec.sweeps[i].token}: recorded pose {off:.2f} m from where its steps place it: taken as a jump"
        )
    # the recorded steps agree with the registration's to within its own noise, with no drift and no jump: the
    # recorded poses are kept as they are (a fit would only move exact poses by the odometry's millimetres)
    kept = ref.prior_sigma is None and sigma <= ref.min_prior_sigma and not taken and not jumps
    if kept:
        fused = [np.asarray(p, dtype=np.float64) for p in priors]
    sweeps, corr_m, corr_deg = [], [], []
    for s, X in zip(rec.sweeps, fused):
        P = s.T_global_from_ego
        dev = np.linalg.inv(P) @ X
        corr_m.append(float(np.linalg.norm(X[:3, 3] - P[:3, 3])))
        corr_deg.append(math.degrees(float(np.linalg.norm(_rotvec(dev[:3, :3])))))
        sweeps.append(replace(s, T_global_from_ego=X))
    report = {
        "sweeps": len(rec.sweeps),
        "odometry_edges": len(edges),
        "prior_sigma_m": _r(sigma),
        "drift_m_per_s": None if drift is None else [_r(v) for v in drift[:2]],
        "drift_taken_out": bool(taken),
        "recorded_kept": bool(kept),
        "correction_m": {"mean": _r(np.mean(corr_m)), "max": _r(np.max(corr_m))},
        "correction_deg": {"mean": _r(np.mean(corr_deg)), "max": _r(np.max(corr_deg))},
        "per_sweep": {s.token: [_r(m), _r(a)] for s, m, a in zip(rec.sweeps, corr_m, corr_deg)},
        "problems": problems,
    }
    said = refinement_warning(report, kept_at, [rec.sweeps[i].token for i in jumps])
    if said:
        report["warning"] = said
    return replace(rec, sweeps=sweeps), report


def refinement_warning(report: dict[str, Any], kept: list[tuple[str, float]], jumps: list[str]) -> str | None:
    """What ``--refine-poses`` could not mend, in the one line ``occkit label`` says among the scene's warnings
    (``report.json``'s ``pose_refinement.problems`` lists each sweep): the sweeps whose recorded pose was kept
    for want of a registration (``kept``: ``(token, metres of disagreement)``; the labels there use the recorded
    pose, a jump in it included), and the recorded poses taken as jumps and placed by their steps (``jumps``)."""
    if not kept and not jumps:
        return None
    parts = []
    if kept:
        worst = max(kept, key=lambda k: k[1])
        far = [k for k in kept if k[1] > 0]
        parts.append(
            f"the recorded pose kept at {len(kept)} of {report['sweeps']} sweeps, where the registration "
            + (
                f"disagrees with the recorded motion by up to {worst[1]:.2f} m (sweep {worst[0]}): a jump there stays "
                "in the labels"
                if far
                else f"had too few returns (sweep {kept[0][0]})"
            )
        )
    if jumps:
        parts.append(
            f"{len(jumps)} recorded pose(s) taken as jumps and placed by their steps (sweep {jumps[0]}, moved "
            f"{report['per_sweep'][jumps[0]][0]:.2f} m)"
        )
    return f"--refine-poses: {'; '.join(parts)} (report.json: pose_refinement.problems)"


def _shifted(T: np.ndarray, dt: np.ndarray) -> np.ndarray:
    out = np.array(T, dtype=np.float64)
    out[:3, 3] += dt
    return out


def _r(v: float) -> float:
    return round(float(v), 4)
