"""Stand-in for the CUDA ``chamfer`` extension (SurroundOcc builds it from ChamferDistancePytorch's
``chamfer3D``) that the label generator calls as ``d1, d2, idx1, idx2 = chamfer.forward(x, y)``.

``x`` ``(B, N, 3)``, ``y`` ``(B, M, 3)`` float tensors; returns, as the kernel does, ``d1`` ``(B, N)``
float32: squared distance from each point of x to its nearest point of y, ``d2`` ``(B, M)`` the same
from y to x, ``idx1`` ``(B, N)`` int32: the index in y of that nearest point, ``idx2`` ``(B, M)`` int32
the index in x. Nearest neighbours come from scipy's cKDTree (exact; the kernel is exact too, so the
two agree except where two points are equally near).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree


def _nearest(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(b) == 0:
        return np.full(len(a), np.inf, np.float32), np.zeros(len(a), np.int32)
    d, i = cKDTree(b).query(a, k=1)
    return (d.astype(np.float64) ** 2).astype(np.float32), i.astype(np.int32)


def forward(x, y):
    xn = x.detach().cpu().double().numpy()
    yn = y.detach().cpu().double().numpy()
    assert xn.ndim == 3 and yn.ndim == 3 and xn.shape[0] == yn.shape[0], (xn.shape, yn.shape)
    d1, d2, i1, i2 = [], [], [], []
    for b in range(xn.shape[0]):
        da, ia = _nearest(xn[b, :, :3], yn[b, :, :3])
        db, ib = _nearest(yn[b, :, :3], xn[b, :, :3])
        d1.append(da), i1.append(ia), d2.append(db), i2.append(ib)
    return tuple(torch.from_numpy(np.stack(v)) for v in (d1, d2, i1, i2))
