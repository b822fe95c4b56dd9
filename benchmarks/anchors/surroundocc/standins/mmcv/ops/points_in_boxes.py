"""NumPy stand-in for mmcv's ``mmcv/ops/points_in_boxes.py`` (mmcv-full 1.4.0; same in mmcv 2.x).

The inside test is the one of mmcv's CPU kernel ``mmcv/ops/csrc/pytorch/cpu/points_in_boxes.cpp``
(``check_pt_in_box3d_cpu``), in float32 as there:

- a box is ``(x, y, z, x_size, y_size, z_size, rz)`` in the LiDAR frame with ``(x, y, z)`` the centre
  of its BOTTOM face; the kernel shifts ``cz += z_size / 2`` and rejects a point when
  ``|z - cz| > z_size / 2`` (so a point on the bottom or top face is inside in z);
- ``lidar_to_local_coords_cpu``: ``local = R(-rz) (x - cx, y - cy)``, i.e.
  ``local_x = dx cos(rz) + dy sin(rz)``, ``local_y = -dx sin(rz) + dy cos(rz)``;
- inside when ``-x_size/2 < local_x < x_size/2`` and ``-y_size/2 < local_y < y_size/2`` (strict).

``points_in_boxes_cpu(points (B, N, 3), boxes (B, M, 7)) -> (B, N, M)`` int32, 1 inside (mmcv: "default
background = 0"); ``points_in_boxes_all`` is the same (mmcv's GPU twin); ``points_in_boxes_part``
gives ``(B, N)`` int32, the index of the first box holding the point or -1, as mmcv's GPU kernel does.
Torch tensors in, torch tensors out (on the CPU); NumPy arrays are accepted too.
"""

from __future__ import annotations

import numpy as np

try:  # the generator passes torch tensors; the stand-in also works without torch
    import torch
except ImportError:  # pragma: no cover - occkit's environment has torch
    torch = None


def _as_numpy(a):
    if torch is not None and isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy(), True
    return np.asarray(a), False


def _check(points: np.ndarray, boxes: np.ndarray) -> None:
    assert points.shape[0] == boxes.shape[0], (
        f"Points and boxes should have the same batch size, but got {points.shape[0]} and {boxes.shape[0]}"
    )
    assert boxes.shape[2] == 7, f"boxes dimension should be 7, but got unexpected shape {boxes.shape[2]}"
    assert points.shape[2] == 3, f"points dimension should be 3, but got unexpected shape {points.shape[2]}"


def inside_mask(points: np.ndarray, boxes: np.ndarray, chunk: int = 1 << 22) -> np.ndarray:
    """``(N, M)`` bool: point ``n`` inside box ``m`` (one batch item; float32 as mmcv's kernel)."""
    pts = np.ascontiguousarray(points, np.float32)
    bx = np.ascontiguousarray(boxes, np.float32)
    n, m = len(pts), len(bx)
    out = np.zeros((n, m), bool)
    if n == 0 or m == 0:
        return out
    cx, cy = bx[:, 0], bx[:, 1]
    x_size, y_size, z_size, rz = bx[:, 3], bx[:, 4], bx[:, 5], bx[:, 6]
    # cz += z_size / 2.0: a double sum stored back into the float cz
    cz = (bx[:, 2].astype(np.float64) + z_size.astype(np.float64) / 2.0).astype(np.float32)
    half_z = z_size.astype(np.float64) / 2.0
    half_x = x_size.astype(np.float64) / 2.0
    half_y = y_size.astype(np.float64) / 2.0
    cosa = np.cos(-rz).astype(np.float32)
    sina = np.sin(-rz).astype(np.float32)
    step = max(1, chunk // max(m, 1))
    for s in range(0, n, step):
        p = pts[s : s + step]
        dz = np.abs(p[:, 2:3] - cz[None, :])  # float32, as fabsf(z - cz)
        in_z = ~(dz.astype(np.float64) > half_z[None, :])
        sx = p[:, 0:1] - cx[None, :]
        sy = p[:, 1:2] - cy[None, :]
        local_x = sx * cosa[None, :] + sy * (-sina[None, :])
        local_y = sx * sina[None, :] + sy * cosa[None, :]
        lx, ly = local_x.astype(np.float64), local_y.astype(np.float64)
        in_xy = (lx > -half_x) & (lx < half_x) & (ly > -half_y) & (ly < half_y)
        out[s : s + step] = in_z & in_xy
    return out


def points_in_boxes_cpu(points, boxes):
    """Find all boxes in which each point is (CPU): ``(B, N, M)`` int32, 1 where point ``n`` is in box ``m``."""
    p, was_tensor = _as_numpy(points)
    b, _ = _as_numpy(boxes)
    _check(p, b)
    res = np.stack([inside_mask(p[i], b[i]) for i in range(p.shape[0])]).astype(np.int32)
    res = res.reshape(p.shape[0], p.shape[1], b.shape[1])
    return torch.from_numpy(res) if was_tensor and torch is not None else res


def points_in_boxes_all(points, boxes):
    """Same as :func:`points_in_boxes_cpu` (mmcv's CUDA version of it)."""
    return points_in_boxes_cpu(points, boxes)


def points_in_boxes_part(points, boxes):
    """``(B, N)`` int32: the index of the first box holding each point, -1 for none."""
    p, was_tensor = _as_numpy(points)
    b, _ = _as_numpy(boxes)
    _check(p, b)
    res = np.full(p.shape[:2], -1, np.int32)
    for i in range(p.shape[0]):
        mask = inside_mask(p[i], b[i])
        hit = mask.any(1)
        res[i][hit] = mask[hit].argmax(1)
    return torch.from_numpy(res) if was_tensor and torch is not None else res
