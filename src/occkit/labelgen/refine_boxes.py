"""``occkit label --refine-boxes``: tracker boxes refined per track before the labels are made (docs/labels.md,
"Imperfect recordings").

A tracker's boxes jitter from sweep to sweep: a box a few decimetres off leaves the object's returns outside it
in the static scene (trails), and cuts the object's shape. Per track (the boxes that share a track id, in time
order):

- the centre's ``x, y, z`` follow a constant-velocity model and the yaw a constant-turn-rate model, each a
  linear Kalman filter whose forward pass a Rauch-Tung-Striebel smoother runs back over (every box is smoothed
  with the boxes before and after it); the size is the track's median (a rigid object keeps its size);
- the horizontal centre may instead move along the box's yaw (:func:`heading_smooth`: a vehicle moves where
  it points; the state is the centre and the speed along the heading, with a sideways slip in the process
  noise), the model chosen per track by the same likelihood: a bus still turning when its track ends is
  followed to its last box, where a constant velocity, poorly constrained at the track's end, cuts the turn;
- the measurement noise is what the boxes say (:func:`noise_from_boxes`: each box against the line through its
  neighbours, the median over the scene's tracks; horizontal, vertical and yaw apart), so exact boxes are kept;
- the process noise (how fast an object may change its velocity, its turn rate) is chosen per track, the
  likeliest of a grid (:data:`ACCELS`, :data:`YAW_ACCELS`) given the track's boxes: a walker is smoothed hard,
  a bus turning a corner followed round it (a fixed 2 m/s^2 cut its corner: exact boxes of a car on a 6 m
  radius at 9 m/s moved up to 1.15 m).

Each of the four can be fixed instead (:class:`BoxRefinement`). The tracks are smoothed together, many at once
on the sweeps' times (:func:`kalman_smooth` takes a batch, NaN where a track has no box).

:func:`rts_smooth`, :func:`kalman_smooth`, :func:`heading_smooth` and :func:`noise_from_boxes` are pure and tested
by hand; :func:`refine_record_boxes` returns the record with the smoothed boxes and what changed (the noise estimated,
the mean and largest centre and yaw corrections).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from occkit.data.scene_record import Boxes, SceneRecord


@dataclass(frozen=True)
class BoxRefinement:
    """The smoother's settings (docs/labels.md, "Imperfect recordings"); each None: what the boxes say."""

    enabled: bool = False
    """Smooth the boxes (``occkit label --refine-boxes``)."""

    center_sigma: float | None = None
    """Metres: how far a box centre is off (the measurement noise); None: estimated from the scene's boxes
    (:func:`noise_from_boxes`, horizontal and vertical apart)."""
    yaw_sigma: float | None = None
    """Degrees: how far a box's yaw is off; None: estimated from the scene's boxes."""
    accel: float | None = None
    """m/s^2: the standard deviation of an object's acceleration (the process noise); None: chosen per track,
    the likeliest of :data:`ACCELS` given its boxes (horizontal and vertical apart)."""
    yaw_accel: float | None = None
    """Degrees/s^2: the standard deviation of the change of an object's turn rate; None: chosen per track, the
    likeliest of :data:`YAW_ACCELS`."""

    def __post_init__(self) -> None:
        for name in ("center_sigma", "yaw_sigma", "accel", "yaw_accel"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"refine_boxes.{name} must be a positive number or null (estimated), got {v!r}")


#: m/s^2: the accelerations a track's process noise is chosen among (a walker's to a car's turning hard).
ACCELS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
#: degrees/s^2: the turn-rate changes a track's yaw process noise is chosen among.
YAW_ACCELS = (5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0)
#: m/s^2: the sideways accelerations a heading-tied track is chosen among (its centre slips off its heading).
SLIPS = (0.1, 0.5, 2.0)
#: the least measurement noise an estimate gives (metres; degrees): exact boxes are kept, not divided by zero
#: (at 2 mm the heading-tied model moved a turning bus's exact boxes by up to 3 mm, and a label figure with them)
MIN_CENTER_SIGMA, MIN_YAW_SIGMA = 0.0005, 0.02


def kalman_smooth(
    t: np.ndarray, z: np.ndarray, meas_var: np.ndarray, accel_var: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Constant-velocity Kalman filter and Rauch-Tung-Striebel smoother of the measurements ``z (N, D)`` at
    times ``t (N,)`` seconds (each column an independent coordinate, measurement variance ``meas_var (D,)``),
    run at once for ``G`` process noises ``accel_var (G, D)`` (the variance of a white acceleration,
    discretised per step). Returns the smoothed positions ``(G, N, D)`` and each run's log-likelihood of the
    measurements ``(G, D)`` (its innovations from the third on: the first two place the diffuse prior).

    ``z (T, N, D)``: ``T`` tracks at once on the same times, NaN where a track has no measurement (before its
    first, between, after its last); returns ``(T, G, N, D)`` and ``(T, G, D)``. A track's smoothed values
    where it has no measurement are the model's guesses (kept for shape, of no use)."""
    t = np.asarray(t, np.float64)
    z = np.asarray(z, np.float64)
    if z.ndim == 2:
        out, ll = kalman_smooth(t, z[None], meas_var, accel_var)
        return out[0], ll[0]
    nt, n, d = z.shape
    q = np.asarray(accel_var, np.float64).reshape(1, -1, d)
    r = np.asarray(meas_var, np.float64).reshape(1, 1, d)
    g = q.shape[1]
    seen = ~np.isnan(z)  # (T, N, D)
    first = np.take_along_axis(z, np.argmax(seen, axis=1)[:, None], axis=1)[:, 0]  # (T, D)
    dts = np.r_[0.0, np.maximum(np.diff(t), 1e-6)]
    p, v = np.broadcast_to(first[:, None], (nt, g, d)).copy(), np.zeros((nt, g, d))
    a, c = np.full((nt, g, d), 1e4), np.full((nt, g, d), 1e4)  # P = [[a, b], [b, c]], diffuse
    b = np.zeros((nt, g, d))
    filt = np.empty((n, 5, nt, g, d))  # p, v, a, b, c after each update
    pred = np.empty((n, 5, nt, g, d))  # ... before it
    ll = np.zeros((nt, g, d))
    count = np.zeros((nt, 1, d))  # measurements so far
    for k in range(n):
        if k:
            h = dts[k]
            p = p + h * v
            a, b, c = a + 2 * h * b + h * h * c + q * h**4 / 4, b + h * c + q * h**3 / 2, c + q * h * h
        pred[k] = p, v, a, b, c
        m = seen[:, k, None, :]  # (T, 1, D)
        s = a + r  # the measurement is the position: H = [1, 0]
        e = np.where(m, np.nan_to_num(z[:, k, None, :]) - p, 0.0)
        ll -= np.where(m & (count >= 2), 0.5 * (np.log(2 * np.pi * s) + e * e / s), 0.0)
        k0, k1 = np.where(m, a / s, 0.0), np.where(m, b / s, 0.0)
        p, v = p + k0 * e, v + k1 * e
        a, b, c = a - k0 * a, b - k0 * b, c - k1 * b
        count = count + m
        filt[k] = p, v, a, b, c
    out = np.empty((nt, g, n, d))
    ps, vs = p, v
    out[:, :, -1] = ps
    for k in range(n - 2, -1, -1):
        h = dts[k + 1]
        fp, fv, fa, fb, fc = filt[k]
        pp, pv, pa, pb, pc = pred[k + 1]
        # the smoother's gain Pf F^T Pp^-1, F = [[1, h], [0, 1]]
        m00, m01, m10, m11 = fa + h * fb, fb, fb + h * fc, fc
        det = pa * pc - pb * pb
        i00, i01, i11 = pc / det, -pb / det, pa / det
        g00, g01 = m00 * i00 + m01 * i01, m00 * i01 + m01 * i11
        g10, g11 = m10 * i00 + m11 * i01, m10 * i01 + m11 * i11
        dp, dv = ps - pp, vs - pv
        ps, vs = fp + g00 * dp + g01 * dv, fv + g10 * dp + g11 * dv
        out[:, :, k] = ps
    return out, ll


def heading_smooth(
    t: np.ndarray, z: np.ndarray, yaw: np.ndarray, meas_var: float, q: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Kalman filter and Rauch-Tung-Striebel smoother of box centres ``z (T, N, 2)`` (``x, y``; NaN where a track
    has no box) that move along their heading ``yaw (T, N)`` radians: the state is the centre and the speed
    along the heading (a vehicle moves where it points), the heading between two times their yaws' mean. Each
    row ``(along, across)`` of ``q (G, 2)`` is a run: the variance of a white acceleration along the heading
    (the speed changes) and across it (the centre slips sideways, discretised as for the position alone).
    Returns the smoothed centres ``(T, G, N, 2)`` and each run's log-likelihood of the measurements ``(T, G)``
    (from the third on, as :func:`kalman_smooth`)."""
    t, z, yaw = np.asarray(t, np.float64), np.asarray(z, np.float64), np.asarray(yaw, np.float64)
    nt, n, _ = z.shape
    q = np.asarray(q, np.float64).reshape(-1, 2)
    g = len(q)
    seen = ~np.isnan(z[..., 0])  # (T, N)
    first = np.take_along_axis(z, np.argmax(seen, axis=1)[:, None, None], axis=1)[:, 0]  # (T, 2)
    dts = np.r_[0.0, np.maximum(np.diff(t), 1e-6)]
    x = np.zeros((nt, g, 3))
    x[..., :2] = first[:, None]
    P = np.broadcast_to(np.eye(3) * 1e4, (nt, g, 3, 3)).copy()
    filt_x, filt_P = np.empty((n, nt, g, 3)), np.empty((n, nt, g, 3, 3))
    pred_x, pred_P, F_all = np.empty_like(filt_x), np.empty_like(filt_P), np.empty((n, nt, 1, 3, 3))
    ll = np.zeros((nt, g))
    count = np.zeros((nt, 1))
    H = np.eye(3)[:2]
    for k in range(n):
        F = np.broadcast_to(np.eye(3), (nt, 1, 3, 3)).copy()
        if k:
            h, head = dts[k], 0.5 * (yaw[:, k - 1] + yaw[:, k])
            u = np.stack([np.cos(head), np.sin(head)], -1)  # (T, 2)
            w = np.stack([-u[:, 1], u[:, 0]], -1)
            F[:, 0, :2, 2] = h * u
            gu = np.concatenate([h * h / 2 * u, np.full((nt, 1), h)], -1)  # (T, 3)
            gw = np.concatenate([h * h / 2 * w, np.zeros((nt, 1))], -1)
            Q = q[None, :, 0, None, None] * (gu[:, None, :, None] * gu[:, None, None, :])
            Q = Q + q[None, :, 1, None, None] * (gw[:, None, :, None] * gw[:, None, None, :])
            x = np.einsum("tgij,tgj->tgi", F, x)
            P = F @ P @ np.swapaxes(F, -1, -2) + Q
        F_all[k] = F
        pred_x[k], pred_P[k] = x, P
        m = seen[:, k]  # (T,)
        S = P[..., :2, :2] + meas_var * np.eye(2)
        e = np.where(m[:, None, None], np.nan_to_num(z[:, k, None, :]) - x[..., :2], 0.0)
        Si = np.linalg.inv(S)
        maha = np.einsum("tgi,tgij,tgj->tg", e, Si, e)
        use = m[:, None] & (count >= 2)
        ll -= np.where(use, 0.5 * (np.log((2 * np.pi) ** 2 * np.linalg.det(S)) + maha), 0.0)
        K = np.where(m[:, None, None, None], P @ H.T @ Si, 0.0)  # (T, G, 3, 2)
        x = x + np.einsum("tgij,tgj->tgi", K, e)
        P = P - K @ H @ P
        P = 0.5 * (P + np.swapaxes(P, -1, -2))
        count = count + m[:, None]
        filt_x[k], filt_P[k] = x, P
    out = np.empty((nt, g, n, 2))
    xs = x
    out[:, :, -1] = xs[..., :2]
    for k in range(n - 2, -1, -1):
        C = np.swapaxes(np.linalg.solve(pred_P[k + 1], F_all[k + 1] @ filt_P[k]), -1, -2)  # Pf F^T Pp^-1
        xs = filt_x[k] + np.einsum("tgij,tgj->tgi", C, xs - pred_x[k + 1])
        out[:, :, k] = xs[..., :2]
    return out, ll


def rts_smooth(t: np.ndarray, z: np.ndarray, meas_sigma: float, accel_sigma: float) -> np.ndarray:
    """The smoothed values at times ``t (N,)`` seconds of the measurements ``z (N, D)`` (or ``(N,)``) under a
    constant-velocity model of white acceleration ``accel_sigma`` and measurement noise ``meas_sigma``
    (:func:`kalman_smooth`)."""
    z = np.asarray(z, dtype=np.float64)
    if z.ndim == 1:
        return rts_smooth(t, z[:, None], meas_sigma, accel_sigma)[:, 0]
    if len(z) < 2:
        return z.copy()
    d = z.shape[1]
    return kalman_smooth(t, z, np.full(d, meas_sigma**2), np.full((1, d), accel_sigma**2))[0][0]


def noise_from_boxes(tracks: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """The measurement noise (standard deviation per column) of tracks ``[(t (N,), z (N, D))]``: each inner
    measurement against the straight line through its two neighbours (a smooth path is nearly straight over
    two steps; the residual's variance is the noise's times ``1 + w1^2 + w2^2``, the interpolation weights),
    the median absolute residual of every track (a robust standard deviation: 1.4826 x the median). NaN where no
    track has three measurements."""
    res = []
    for t, z in tracks:
        if len(t) < 3:
            continue
        h1, h2 = np.maximum(np.diff(t)[:-1], 1e-6), np.maximum(np.diff(t)[1:], 1e-6)
        w1, w2 = (h2 / (h1 + h2))[:, None], (h1 / (h1 + h2))[:, None]
        r = z[1:-1] - (w1 * z[:-2] + w2 * z[2:])
        res.append(np.abs(r) / np.sqrt(1 + w1**2 + w2**2))
    if not res:
        return np.full(tracks[0][1].shape[1] if tracks else 1, np.nan)
    return 1.4826 * np.median(np.concatenate(res), axis=0)


def refine_record_boxes(rec: SceneRecord, ref: BoxRefinement | None = None) -> tuple[SceneRecord, dict[str, Any]]:
    """``rec`` with every track's boxes smoothed along time (:func:`kalman_smooth`), and what changed. A record
    without boxes is refused (``--refine-boxes`` needs boxes)."""
    ref = ref if ref is not None else BoxRefinement()
    if not rec.has_boxes:
        raise ValueError(f"{rec.source or rec.name}: --refine-boxes needs boxes, and this recording has none")
    flat = _flat_boxes(rec)
    sweep, track, center, size, yaw, slot, t = flat
    order = np.lexsort((sweep, t, track))  # by track, then time
    starts = np.flatnonzero(np.r_[True, track[order][1:] != track[order][:-1]])
    tracks = []  # (box indices, slots, t (N,), [x, y, z, yaw] (N, 4), sizes (N, 3)), each track in time order
    for idx in np.split(order, starts[1:]) if len(order) else []:
        z = np.c_[center[idx], np.unwrap(yaw[idx])]
        tracks.append((idx, slot[idx], t[idx], z, size[idx]))
    sigma = _measurement_sigma(tracks, ref)
    q, hq = _process_grid(ref), _heading_grid(ref)
    times = np.zeros(int(slot.max(initial=-1)) + 1)
    times[slot] = t  # every slot's time, in slot order
    out_c, out_s, out_y = center.copy(), size.copy(), yaw.copy()
    chosen = []
    for (idx, _, _, _, sz), (smooth, pick) in zip(tracks, _smooth_tracks(times, tracks, sigma**2, q, hq)):
        chosen.append(pick)
        out_c[idx] = smooth[:, :3]
        out_s[idx] = np.median(sz, axis=0)
        out_y[idx] = (smooth[:, 3] + math.pi) % (2 * math.pi) - math.pi
    moved = np.linalg.norm(out_c - center, axis=1)
    turned = np.abs(np.degrees((out_y - yaw + math.pi) % (2 * math.pi) - math.pi))
    sweeps, at = [], 0
    for s in rec.sweeps:
        if s.boxes is not None:
            m = len(s.boxes)
            c, sz, y = out_c[at : at + m], out_s[at : at + m], out_y[at : at + m]
            s = replace(s, boxes=Boxes(s.boxes.track, s.boxes.cls, c, sz, y))
            at += m
        sweeps.append(s)
    return replace(rec, sweeps=sweeps), _report(tracks, moved, turned, sigma, q, hq, chosen)


def _flat_boxes(rec: SceneRecord) -> tuple[np.ndarray, ...]:
    """Every box of the record in sweep order: its sweep index, track, centre (M, 3), size (M, 3), yaw, slot (the
    rank of its sweep among the sweeps with boxes, by time) and time (seconds)."""
    have = [i for i, s in enumerate(rec.sweeps) if s.boxes is not None]
    rank = {i: k for k, (_, i) in enumerate(sorted((rec.sweeps[i].timestamp, i) for i in have))}
    boxes = [rec.sweeps[i].boxes for i in have]
    n = [len(b) for b in boxes]
    sweep = np.repeat(np.array(have, np.int64), n)
    cat = lambda f, w: np.concatenate([np.asarray(getattr(b, f), np.float64).reshape(-1, w) for b in boxes])
    track = np.concatenate([np.asarray(b.track, np.int64) for b in boxes])
    slot = np.repeat(np.array([rank[i] for i in have], np.int64), n)
    t = np.repeat(np.array([rec.sweeps[i].timestamp * 1e-6 for i in have]), n)
    return sweep, track, cat("center", 3), cat("size", 3), cat("yaw", 1)[:, 0], slot, t


def _measurement_sigma(tracks: list, ref: BoxRefinement) -> np.ndarray:
    """The measurement noise of the columns x, y, z (metres) and yaw (radians): the settings', or where None,
    :func:`noise_from_boxes` over every track (x and y pooled), at least :data:`MIN_CENTER_SIGMA` and
    :data:`MIN_YAW_SIGMA`."""
    est = noise_from_boxes([(t, z) for _, _, t, z, _ in tracks])
    est = np.where(np.isfinite(est), est, 0.0)
    xy = max(math.sqrt((est[0] ** 2 + est[1] ** 2) / 2), MIN_CENTER_SIGMA)
    zs = max(float(est[2]), MIN_CENTER_SIGMA)
    yaw = max(float(est[3]), math.radians(MIN_YAW_SIGMA))
    if ref.center_sigma is not None:
        xy = zs = float(ref.center_sigma)
    if ref.yaw_sigma is not None:
        yaw = math.radians(ref.yaw_sigma)
    return np.array([xy, xy, zs, yaw])


def _process_grid(ref: BoxRefinement) -> np.ndarray:
    """``(G, 4)``: the process noises (variances) tried for x, y, z and yaw, one row a candidate; a setting
    given is every row's."""
    acc = np.array(ACCELS if ref.accel is None else [ref.accel] * len(ACCELS))
    yaw = np.radians(YAW_ACCELS if ref.yaw_accel is None else [ref.yaw_accel] * len(YAW_ACCELS))
    return np.c_[acc, acc, acc, yaw] ** 2


def _heading_grid(ref: BoxRefinement) -> np.ndarray:
    """``(H, 2)``: the process noises (variances) tried for the heading-tied centre (:func:`heading_smooth`),
    each acceleration along the heading (:data:`ACCELS`, or the setting) with each of :data:`SLIPS` across it."""
    acc = np.array(ACCELS if ref.accel is None else [ref.accel])
    return np.array([(a, s) for a in acc for s in SLIPS]) ** 2


#: tracks smoothed at once, at most (their measurements on the sweeps' common times)
BATCH = 64
#: ... and at most this many (track, sweep) cells in a batch: a long recording's tracks that live apart are not
#: padded to each other's spans (the memory stays bounded: about 2.5 kB a cell)
BATCH_CELLS = 32768


def _smooth_tracks(times: np.ndarray, tracks: list, meas_var: np.ndarray, q: np.ndarray, hq: np.ndarray) -> list:
    """Each track's smoothed ``(N, 4)`` and the candidates (rows of ``q``) chosen for its horizontal centre,
    height and yaw: each the likeliest given the track's boxes (x and y together). Tracks are smoothed
    :data:`BATCH` at a time on the sweeps' times ``times`` (by slot; :func:`kalman_smooth` with NaN where a
    track has no box), a track with two boxes in one sweep alone on its own times; a track of fewer than three
    boxes is kept."""
    out: list = [(z.copy(), [-1, -1, -1]) for _, _, _, z, _ in tracks]
    together = []
    for j, (_, slots, t, z, _) in enumerate(tracks):
        if len(t) < 3:
            continue
        if len(np.unique(slots)) == len(slots):
            together.append((int(slots[0]), j))
        else:
            out[j] = _smooth_batch(t, z[None], meas_var, q, hq)[0]
    for batch in _batches(sorted(together), tracks):
        lo, hi = min(int(tracks[j][1][0]) for j in batch), max(int(tracks[j][1][-1]) for j in batch)
        Z = np.full((len(batch), hi - lo + 1, 4), np.nan)
        for row, j in enumerate(batch):
            Z[row, tracks[j][1] - lo] = tracks[j][3]
        for row, (smooth, pick) in enumerate(_smooth_batch(times[lo : hi + 1], Z, meas_var, q, hq)):
            out[batch[row]] = (smooth[tracks[batch[row]][1] - lo], pick)
    return out


def _smooth_batch(t: np.ndarray, Z: np.ndarray, meas_var: np.ndarray, q: np.ndarray, hq: np.ndarray) -> list:
    """Tracks ``Z (T, N, 4)`` on times ``t``: each one's smoothed ``(N, 4)`` and the runs chosen
    (:func:`_pick`): the yaw first (:func:`kalman_smooth`), then the centre along it (:func:`heading_smooth`)."""
    sm, ll = kalman_smooth(t, Z, meas_var, q)
    yaw_pick = np.argmax(ll[:, :, 3], axis=1)
    yaw = sm[np.arange(len(Z)), yaw_pick, :, 3]
    hsm, hll = heading_smooth(t, Z[..., :2], yaw, float(meas_var[0]), hq)
    return [_pick(sm[r], ll[r], hsm[r], hll[r]) for r in range(len(Z))]


def _batches(together: list[tuple[int, int]], tracks: list) -> list[list[int]]:
    """The tracks ``together`` ((first slot, index), sorted) in batches of at most :data:`BATCH` tracks and
    :data:`BATCH_CELLS` cells (tracks x the batch's span of slots; a track alone may pass it)."""
    out: list[list[int]] = []
    lo = hi = 0
    for first, j in together:
        last = int(tracks[j][1][-1])
        if out and len(out[-1]) < BATCH and (max(hi, last) - lo + 1) * (len(out[-1]) + 1) <= BATCH_CELLS:
            out[-1].append(j)
            hi = max(hi, last)
        else:
            out.append([j])
            lo, hi = first, last
    return out


def _pick(sm: np.ndarray, ll: np.ndarray, hsm: np.ndarray, hll: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """From one track's smoothed runs ``(G, N, 4)`` and log-likelihoods ``(G, 4)`` and its heading-tied runs
    ``(H, N, 2)``, ``(H,)``, the likeliest run's values of each of the horizontal centre (x and y together, of
    either model; a heading-tied run is numbered ``G + its row``), the height and the yaw, and the runs chosen."""
    pick = [int(np.argmax(ll[:, 0] + ll[:, 1])), int(np.argmax(ll[:, 2])), int(np.argmax(ll[:, 3]))]
    xy = sm[pick[0], :, :2]
    best = int(np.argmax(hll))
    if hll[best] > ll[pick[0], 0] + ll[pick[0], 1]:
        pick[0], xy = len(sm) + best, hsm[best]
    return np.c_[xy, sm[pick[1], :, 2], sm[pick[2], :, 3]], pick


def _report(
    tracks: list,
    moved: np.ndarray,
    turned: np.ndarray,
    sigma: np.ndarray,
    q: np.ndarray,
    hq: np.ndarray,
    chosen: list,
) -> dict:
    picked = [p for p in chosen if p[0] >= 0]
    along = np.r_[q[:, 0], hq[:, 0]]  # the acceleration of each run, the heading-tied ones after
    return {
        "tracks": len(tracks),
        "boxes": int(len(moved)),
        "center_sigma_m": {"horizontal": _r(sigma[0]), "vertical": _r(sigma[2])},
        "yaw_sigma_deg": _r(math.degrees(sigma[3])),
        "accel_chosen_m_s2": _r(np.median([math.sqrt(along[p[0]]) for p in picked])) if picked else None,
        "heading_tied_tracks": sum(p[0] >= len(q) for p in picked),
        "center_correction_m": {"mean": _r(moved.mean() if len(moved) else 0), "max": _r(moved.max(initial=0))},
        "yaw_correction_deg": {"mean": _r(turned.mean() if len(turned) else 0), "max": _r(turned.max(initial=0))},
    }


def _r(v: float) -> float:
    return round(float(v), 4)
