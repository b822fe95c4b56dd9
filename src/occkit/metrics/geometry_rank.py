"""Geometry of a p(occupied) field before any threshold: how well it ranks occupied above free voxels.

A rendering-trained model (``langocc``, ``render_sup``) outputs p(occupied) per voxel and
``predict`` cuts it at one threshold; its geometry IoU then measures the threshold as much as the
field (``langocc``'s released density starts at 0.5/m everywhere and the rays carve the free space
below it, so at the released 0.1/m nearly every voxel is occupied). :class:`GeometryRanking`
scores the field itself over the voxels of a mask:

- ``geometry_ap``: the average precision of p(occupied) as a score for "occupied"
  (as :func:`occkit.metrics.retrieval.average_precision`, ties one step): 100 = every occupied voxel
  above every free one; the occupied fraction is chance;
- ``geometry_iou_best`` and ``best_threshold``: the geometry IoU at the threshold that maximises it
  (the highest such score): it reads the truth to choose, an upper bound of any calibration;
- ``geometry_iou_at_threshold``: the IoU at a given threshold (the run's own), for comparison.

Figures are percentages, over all voxels added (every frame pooled, as the geometry IoU of
:mod:`occkit.metrics.occ3d` pools its counts).
"""

from __future__ import annotations

import numpy as np
import torch

from occkit.metrics.retrieval import ap_from_counts, ranked_counts


class GeometryRanking:
    """Pools p(occupied) and the truth of the masked voxels of frames; :meth:`compute` scores them."""

    def __init__(self) -> None:
        self._p: list[np.ndarray] = []
        self._occ: list[np.ndarray] = []

    def add(self, p_occupied: torch.Tensor, occupied: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """One frame: ``p_occupied`` ``(X, Y, Z)`` in [0, 1], ``occupied`` the truth ``(X, Y, Z)`` bool,
        ``mask`` the voxels scored ``(X, Y, Z)`` bool (``None``: all)."""
        if p_occupied.shape != occupied.shape or (mask is not None and mask.shape != occupied.shape):
            raise ValueError(
                f"p_occupied {tuple(p_occupied.shape)}, occupied {tuple(occupied.shape)}"
                + ("" if mask is None else f" and mask {tuple(mask.shape)}")
                + " differ in shape"
            )
        p = p_occupied.detach().float().cpu()
        if not bool(torch.isfinite(p).all()):
            raise ValueError("p_occupied holds NaN or infinite values")
        keep = torch.ones_like(occupied, dtype=torch.bool) if mask is None else mask.bool().cpu()
        self._p.append(p[keep].numpy())
        self._occ.append(occupied.bool().cpu()[keep].numpy())

    def compute(self, threshold: float | None = None) -> dict[str, float | int | None]:
        """``geometry_ap``, ``geometry_iou_best``, ``best_threshold``, the mean p(occupied) at occupied and
        at free voxels, ``occupied_fraction``, ``voxels``; with ``threshold``, ``geometry_iou_at_threshold``
        (p >= threshold is occupied). Figures in percent; ``None`` where no voxel is occupied."""
        p = np.concatenate(self._p) if self._p else np.zeros(0, np.float32)
        occ = np.concatenate(self._occ) if self._occ else np.zeros(0, bool)
        n_pos = int(occ.sum())
        out: dict[str, float | int | None] = {
            "voxels": int(len(p)),
            "occupied_fraction": 100.0 * n_pos / max(len(p), 1),
        }
        out["p_at_occupied_mean"] = float(p[occ].mean()) if n_pos else None
        out["p_at_free_mean"] = float(p[~occ].mean()) if n_pos < len(p) else None
        if n_pos == 0:
            out.update(geometry_ap=None, geometry_iou_best=None, best_threshold=None)
            if threshold is not None:
                out["geometry_iou_at_threshold"] = None
            return out
        score_at, tp_at, n_at = ranked_counts(p, occ)  # the cut "p >= score" at each distinct score
        out["geometry_ap"] = 100.0 * ap_from_counts(tp_at, n_at)
        iou = tp_at / (n_pos + n_at - tp_at)
        k = int(np.argmax(iou))  # the first maximum: the highest threshold reaching it
        out["geometry_iou_best"] = 100.0 * float(iou[k])
        out["best_threshold"] = float(score_at[k])
        if threshold is not None:
            above = p >= threshold
            out["geometry_iou_at_threshold"] = 100.0 * float((above & occ).sum()) / float(n_pos + (above & ~occ).sum())
        return out
