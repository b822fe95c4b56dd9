"""The occupancy threshold calibrated from 2D depth alone (``occupied_threshold: auto`` of
``render_sup`` and ``langocc``).

While training, each ray with a known 2D depth adds two samples to a ``(2, BINS)`` histogram of the
model's ``p(occupied)``: its surface voxel (weight 1) and one random voxel of the free space before
it (at least ``margin`` metres before the surface), weighted by the square root of the voxels that
free stretch crosses. Counting the free sample once (a ray's weight) makes free space as rare as
surfaces and the threshold too low (almost everything occupied); counting every crossing (``L``)
counts the near voxels, crossed by many rays, many times over and sets it too high; ``sqrt(L)``
lies between. The threshold is the bin edge that maximises ``S(>= tau) / (S(all) + F(>= tau))``,
the IoU of "occupied" if the surface samples were the occupied voxels and the free samples the free
ones; on a plateau of equal scores, its middle. No 3D label is read.
"""

from __future__ import annotations

import torch

from occkit.geometry.grid import Grid
from occkit.rendering.rays import Rays

#: Bins of ``p(occupied)`` in [0, 1].
CALIBRATION_BINS = 100


def calibration_threshold(hist: torch.Tensor, default: float) -> float:
    """The threshold of the histograms ``hist (2, BINS)`` (surface, free); ``default`` before any
    sample."""
    surf, free = hist.double()
    if float(surf.sum()) <= 0:
        return float(default)
    bins = hist.shape[1]
    tp = surf.flip(0).cumsum(0).flip(0)  # surface samples at or above each bin edge
    fp = free.flip(0).cumsum(0).flip(0)
    iou = tp / (surf.sum() + fp)
    best = iou >= iou.max() - 1e-12
    lo = int(best.nonzero()[0])
    hi = lo
    while hi + 1 < bins and bool(best[hi + 1]):
        hi += 1
    return float(max(1, (lo + hi) // 2)) / bins


@torch.no_grad()
def calibration_update(
    hist: torch.Tensor,
    p_occ: torch.Tensor,
    grid: Grid,
    rays: Rays,
    t: torch.Tensor,
    near: torch.Tensor,
    keep: torch.Tensor,
    margin: float,
    decay: float,
) -> None:
    """Decay ``hist (2, BINS)`` in place by ``decay`` and add one frame's rays: ``p_occ (X, Y, Z)``,
    the ``rays`` where ``keep (R,)`` holds, whose surface lies at ``t (R,)`` (units of ``|dirs|``)
    and which enter the grid at ``near (R,)``."""
    origins, dirs, t, near = rays.origins[keep].float(), rays.dirs[keep].float(), t[keep], near[keep]
    bins = hist.shape[1]

    def count(
        points: torch.Tensor, keep: torch.Tensor | None = None, weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        idx, ok = grid.point_to_index(points)
        if keep is not None:
            ok = ok & keep
        v = p_occ[idx[ok, 0], idx[ok, 1], idx[ok, 2]]
        w = None if weight is None else weight[ok].float()
        return torch.bincount((v * bins).long().clamp(0, bins - 1), weights=w, minlength=bins).to(hist.dtype)

    before = t - margin
    t_free = near + torch.rand_like(t) * (before - near).clamp(min=0)
    weight = ((before - near).clamp(min=0) / min(grid.voxel_size)).sqrt()  # sqrt(L): module docstring
    hist.mul_(decay)
    hist[0] += count(origins + t[:, None] * dirs)
    hist[1] += count(origins + t_free[:, None] * dirs, before > near, weight)
