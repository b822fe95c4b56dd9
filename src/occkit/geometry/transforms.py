"""Rigid transforms as 4x4 homogeneous matrices, and quaternions (w, x, y, z) as nuScenes writes them.

Name a transform by what it does to points: ``T_ego_from_cam @ p_cam = p_ego``. Compose right to
left: ``T_global_from_cam = T_global_from_ego @ T_ego_from_cam``. All functions take torch
tensors with any leading batch axes, and work in the tensor's dtype and device.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from occkit.shapes import check_shape


def quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Unit quaternion to rotation matrix.

    Args:
        q: ``(..., 4)`` as (w, x, y, z); normalised here (a zero quaternion raises).
    Returns:
        ``(..., 3, 3)`` rotation matrices.
    """
    check_shape(q, "... 4", name="q")
    norm = q.norm(dim=-1, keepdim=True)
    if bool((norm == 0).any()):
        raise ValueError("q: zero quaternion has no rotation")
    w, x, y, z = (q / norm).unbind(-1)
    row0 = torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1)
    row1 = torch.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1)
    row2 = torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1)
    return torch.stack([row0, row1, row2], -2)


def matrix_to_quat(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrix to unit quaternion (w, x, y, z) with w >= 0.

    Args:
        R: ``(..., 3, 3)`` rotation matrices.
    Returns:
        ``(..., 4)``.
    """
    check_shape(R, "... 3 3", name="R")
    m = R
    tr = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    # Four candidate solutions; pick, per matrix, the numerically best (largest denominator).
    cand = torch.stack(
        [
            torch.stack(
                [1 + tr, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1
            ),
            torch.stack(
                [
                    m[..., 2, 1] - m[..., 1, 2],
                    1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2],
                    m[..., 0, 1] + m[..., 1, 0],
                    m[..., 0, 2] + m[..., 2, 0],
                ],
                -1,
            ),
            torch.stack(
                [
                    m[..., 0, 2] - m[..., 2, 0],
                    m[..., 0, 1] + m[..., 1, 0],
                    1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2],
                    m[..., 1, 2] + m[..., 2, 1],
                ],
                -1,
            ),
            torch.stack(
                [
                    m[..., 1, 0] - m[..., 0, 1],
                    m[..., 0, 2] + m[..., 2, 0],
                    m[..., 1, 2] + m[..., 2, 1],
                    1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2],
                ],
                -1,
            ),
        ],
        -2,
    )  # (..., 4 candidates, 4)
    diag = torch.stack(
        [
            1 + tr,
            1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2],
            1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2],
            1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2],
        ],
        -1,
    )
    best = diag.argmax(-1)
    q = torch.gather(cand, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


def _broadcast_shapes(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """Broadcast two shapes. (``torch.broadcast_shapes`` imports sympy on its first call, about
    a second of start-up in every process that builds a transform.)"""
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + a, (1,) * (n - len(b)) + b
    out = []
    for x, y in zip(a, b):
        if x != y and x != 1 and y != 1:
            raise ValueError(f"batch shapes {a} and {b} do not broadcast")
        out.append(y if x == 1 else x)
    return tuple(out)


def make_transform(R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Build ``(..., 4, 4)`` from rotation ``(..., 3, 3)`` and translation ``(..., 3)``."""
    check_shape(R, "... 3 3", name="R")
    check_shape(t, "... 3", name="t")
    batch = _broadcast_shapes(tuple(R.shape[:-2]), tuple(t.shape[:-1]))
    T = torch.zeros(*batch, 4, 4, dtype=R.dtype, device=R.device)
    T[..., :3, :3] = R
    T[..., :3, 3] = t
    T[..., 3, 3] = 1
    return T


def transform_from_pose(translation: Sequence[float], rotation: Sequence[float], dtype=torch.float64) -> torch.Tensor:
    """A ``(4, 4)`` transform from a nuScenes-style pose (translation xyz, rotation wxyz)."""
    t = torch.as_tensor(translation, dtype=dtype)
    q = torch.as_tensor(rotation, dtype=dtype)
    if t.shape != (3,) or q.shape != (4,):
        raise ValueError(
            f"pose: expected translation (3,) and rotation (4,), got {tuple(t.shape)} and {tuple(q.shape)}"
        )
    return make_transform(quat_to_matrix(q), t)


#: How far a pose's translation may lie from its origin, in metres, by kind: a sensor on the vehicle
#: (``extrinsic``: LiDAR or camera to ego) within a kilometre, the vehicle on its map (``ego_pose``)
#: within 1e8 m. Farther, the entry is corrupt (a reviewer's 1e9 m lidar2ego moved RayIoU in silence).
POSE_LIMITS: dict[str, float] = {"extrinsic": 1e3, "ego_pose": 1e8}


def value_on_one_line(v: Any) -> str:
    """A value read from a file, on one line for a message (a numpy array's repr spans lines)."""
    if hasattr(v, "tolist") and not isinstance(v, (list, str)):  # a numpy array or a tensor
        v = v.tolist()
    text = " ".join(repr(v).split())
    return text if len(text) <= 80 else text[:77] + "..."


def checked_pose(translation: Any, rotation: Any, kind: str, where: str) -> torch.Tensor:
    """:func:`transform_from_pose` of a pose read from a file, or a one-line ``ValueError`` that
    starts with ``where`` (the file and the entry): a translation or rotation that is not three or
    four finite numbers, a zero quaternion, or a translation farther than :data:`POSE_LIMITS`
    ``[kind]`` from its origin."""
    try:
        t = [float(v) for v in translation]
        q = [float(v) for v in rotation]
        T = transform_from_pose(t, q)
    except (ValueError, TypeError, RuntimeError) as e:
        raise ValueError(
            f"{where}: not a pose (translation {value_on_one_line(translation)}, rotation "
            f"{value_on_one_line(rotation)}: {str(e).splitlines()[0] if str(e) else type(e).__name__})"
        ) from None
    if not bool(torch.isfinite(T).all()):
        raise ValueError(f"{where}: not finite (translation {t}, rotation {q})")
    limit = POSE_LIMITS[kind]
    if float(T[:3, 3].norm()) > limit:
        kind_text = "a sensor on the vehicle" if kind == "extrinsic" else "a vehicle on its map"
        raise ValueError(f"{where}: translation {t} lies more than {limit:g} m from its origin ({kind_text}): corrupt")
    return T


def pose_from_transform(T: torch.Tensor) -> dict[str, list[float]]:
    """Inverse of :func:`transform_from_pose`: ``{"translation": [3], "rotation": [w, x, y, z]}``."""
    check_shape(T, "4 4", name="T")
    T = T.double()
    return {"translation": T[:3, 3].tolist(), "rotation": matrix_to_quat(T[:3, :3]).tolist()}


def invert_transform(T: torch.Tensor) -> torch.Tensor:
    """Inverse of rigid transforms ``(..., 4, 4)`` (uses R^T, not a general inverse)."""
    check_shape(T, "... 4 4", name="T")
    R_inv = T[..., :3, :3].transpose(-1, -2)
    t_inv = -(R_inv @ T[..., :3, 3:4]).squeeze(-1)
    return make_transform(R_inv, t_inv)


def apply_transform(T: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply ``T (..., 4, 4)`` to ``points (..., N, 3)``, giving ``(..., N, 3)``."""
    check_shape(T, "... 4 4", name="T")
    check_shape(points, "... 3", name="points")
    return points @ T[..., :3, :3].transpose(-1, -2) + T[..., None, :3, 3]


def rotation_z(yaw: torch.Tensor | float, dtype=torch.float64) -> torch.Tensor:
    """Rotation about +z by ``yaw`` radians: ``(..., 3, 3)``."""
    yaw = torch.as_tensor(yaw, dtype=dtype)
    c, s = torch.cos(yaw), torch.sin(yaw)
    z, o = torch.zeros_like(yaw), torch.ones_like(yaw)
    return torch.stack([torch.stack([c, -s, z], -1), torch.stack([s, c, z], -1), torch.stack([z, z, o], -1)], -2)


def rigid_problem(T, tol: float = 1e-3) -> str | None:
    """Why ``T`` is not a finite rigid ``(4, 4)`` transform (a rotation and a translation, last row
    0 0 0 1), in words; None when it is. ``tol``: how far ``R^T R`` and ``det R`` may be from the
    identity and 1 (file poses are printed to a few digits)."""
    import numpy as np

    p = np.asarray(T, dtype=np.float64)
    if p.shape != (4, 4) or not np.isfinite(p).all():
        return "not a finite 4x4 matrix"
    R = p[:3, :3]
    err = max(float(np.abs(R.T @ R - np.eye(3)).max()), abs(float(np.linalg.det(R)) - 1.0))
    if err > tol or np.abs(p[3] - [0, 0, 0, 1]).max() > tol:
        return f"not rigid (rotation off by {err:.3g}, last row {p[3].tolist()})"
    return None


def singular_intrinsic(K: Sequence[Sequence[float]]) -> bool:
    """Whether a finite ``3 x 3`` camera intrinsic (nested lists or an array) makes no pixel ray: its
    determinant within ``1e-9`` of zero relative to its largest entry cubed (scale-free: pixels or
    normalised units). In plain floats: an info file holds six a frame."""
    (a, b, c), (d, e, f), (g, h, i) = ((float(v) for v in row) for row in K)
    scale = max(abs(v) for v in (a, b, c, d, e, f, g, h, i))
    det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
    return scale == 0.0 or abs(det) <= 1e-9 * scale**3
