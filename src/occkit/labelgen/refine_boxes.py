"""``occkit label --refine-boxes``: tracker boxes refined per track before the labels are made (docs/labels.md,
"Imperfect recordings").

A tracker's boxes jitter from sweep to sweep: a box a few decimetres off leaves the object's returns outside it
in the static scene (trails), and cuts the object's shape. Per track (the boxes that share a track id, in time
order):

- the centre's ``x, y, z`` follow a constant-velocity model and the yaw a constant-turn-rate model, each a
  linear Kalman filter whose forward pass a Rauch-Tung-Striebel smoother runs back over (every box is smoothed
  with the boxes before and after it); the size is the track's median (a rigid object keeps its size);
- the measurement noise is what a tracker's boxes are assumed to be off by (``center_sigma`` metres,
  ``yaw_sigma`` degrees), the process noise how fast an object may change its velocity (``accel`` m/s^2) and
  its turn rate (``yaw_accel`` degrees/s^2).

:func:`rts_smooth` is pure and tested by hand; :func:`refine_record_boxes` returns the record with the smoothed
boxes and what changed (the mean and largest centre and yaw corrections).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from occkit.data.scene_record import Boxes, SceneRecord


@dataclass(frozen=True)
class BoxRefinement:
    """The smoother's settings (docs/labels.md, "Imperfect recordings")."""

    enabled: bool = False
    """Smooth the boxes (``occkit label --refine-boxes``)."""

    center_sigma: float = 0.2
    """Metres: how far a box centre is assumed off (the measurement noise)."""
    yaw_sigma: float = 3.0
    """Degrees: how far a box's yaw is assumed off."""
    accel: float = 2.0
    """m/s^2: the standard deviation of an object's acceleration (the process noise)."""
    yaw_accel: float = 20.0
    """Degrees/s^2: the standard deviation of the change of an object's turn rate."""


def rts_smooth(t: np.ndarray, z: np.ndarray, meas_sigma: float, accel_sigma: float) -> np.ndarray:
    """The smoothed values at times ``t (N,)`` seconds of the measurements ``z (N, D)`` (each column an
    independent coordinate) under a constant-velocity model: a Kalman filter forward, a
    Rauch-Tung-Striebel smoother back. The process noise is white acceleration of standard deviation
    ``accel_sigma`` (discretised per step ``dt``), the measurement noise ``meas_sigma``."""
    t = np.asarray(t, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    if z.ndim == 1:
        return rts_smooth(t, z[:, None], meas_sigma, accel_sigma)[:, 0]
    n, d = z.shape
    if n < 2:
        return z.copy()
    R = meas_sigma**2
    out = np.empty_like(z)
    for c in range(d):
        xs_f = np.zeros((n, 2))
        Ps_f = np.zeros((n, 2, 2))
        xs_p = np.zeros((n, 2))
        Ps_p = np.zeros((n, 2, 2))
        Fs = np.zeros((n, 2, 2))
        x = np.array([z[0, c], 0.0])
        P = np.diag([1e4, 1e4])  # a diffuse prior: the first measurement alone places the track
        for k in range(n):
            if k > 0:
                dt = max(float(t[k] - t[k - 1]), 1e-6)
                F = np.array([[1.0, dt], [0.0, 1.0]])
                Q = accel_sigma**2 * np.array([[dt**4 / 4, dt**3 / 2], [dt**3 / 2, dt**2]])
                x = F @ x
                P = F @ P @ F.T + Q
                Fs[k] = F
            xs_p[k], Ps_p[k] = x, P
            S = P[0, 0] + R  # the measurement is the position: H = [1, 0]
            K = P[:, 0] / S
            x = x + K * (z[k, c] - x[0])
            P = P - np.outer(K, P[0, :])
            xs_f[k], Ps_f[k] = x, P
        xs = xs_f.copy()
        for k in range(n - 2, -1, -1):
            G = Ps_f[k] @ Fs[k + 1].T @ np.linalg.inv(Ps_p[k + 1])
            xs[k] = xs_f[k] + G @ (xs[k + 1] - xs_p[k + 1])
        out[:, c] = xs[:, 0]
    return out


def refine_record_boxes(rec: SceneRecord, ref: BoxRefinement | None = None) -> tuple[SceneRecord, dict[str, Any]]:
    """``rec`` with every track's boxes smoothed along time (:func:`rts_smooth`), and what changed. A record
    without boxes is refused (``--refine-boxes`` needs boxes)."""
    ref = ref if ref is not None else BoxRefinement()
    if not rec.has_boxes:
        raise ValueError(f"{rec.source or rec.name}: --refine-boxes needs boxes, and this recording has none")
    rows: dict[int, list[tuple[int, int]]] = {}  # track -> [(sweep index, row)]
    for i, s in enumerate(rec.sweeps):
        if s.boxes is not None:
            for r, tr in enumerate(s.boxes.track):
                rows.setdefault(int(tr), []).append((i, r))
    new = {
        i: (s.boxes.center.copy(), s.boxes.size.copy(), s.boxes.yaw.copy())
        for i, s in enumerate(rec.sweeps)
        if s.boxes is not None
    }
    moved, turned = [], []
    for occ in rows.values():
        t = np.array([rec.sweeps[i].timestamp * 1e-6 for i, _ in occ])
        c = np.array([rec.sweeps[i].boxes.center[r] for i, r in occ])
        sz = np.array([rec.sweeps[i].boxes.size[r] for i, r in occ])
        yaw = np.unwrap(np.array([rec.sweeps[i].boxes.yaw[r] for i, r in occ]))
        xyz = rts_smooth(t, c, ref.center_sigma, ref.accel)
        yw = rts_smooth(t, yaw, math.radians(ref.yaw_sigma), math.radians(ref.yaw_accel))
        size = np.median(sz, axis=0)
        for k, (i, r) in enumerate(occ):
            center, sizes, yaws = new[i]
            center[r] = xyz[k]
            sizes[r] = size
            yaws[r] = (yw[k] + math.pi) % (2 * math.pi) - math.pi
            moved.append(float(np.linalg.norm(center[r] - c[k])))
            turned.append(abs(math.degrees(float(yw[k] - yaw[k]))))
    sweeps = []
    for i, s in enumerate(rec.sweeps):
        if i in new:
            center, sizes, yaws = new[i]
            s = replace(s, boxes=Boxes(s.boxes.track, s.boxes.cls, center, sizes, yaws))
        sweeps.append(s)
    report = {
        "tracks": len(rows),
        "boxes": len(moved),
        "center_correction_m": {"mean": _r(np.mean(moved) if moved else 0), "max": _r(max(moved, default=0))},
        "yaw_correction_deg": {"mean": _r(np.mean(turned) if turned else 0), "max": _r(max(turned, default=0))},
    }
    return replace(rec, sweeps=sweeps), report


def _r(v: float) -> float:
    return round(float(v), 4)
