"""Pictures of NYUv2-layout frames (the indoor world, or NYUv2 itself): the colour image, the 2D
semantic map where the frame has one, and the scored occupancy (60 x 60 x 36) in 3D, seen from
behind and above the camera, in the NYUv2 colours (:data:`~occkit.labels.NYU_PALETTE`)."""

from __future__ import annotations

import numpy as np
import torch

from occkit.data.sample import Sample
from occkit.geometry.grid import nyu_grid
from occkit.labels import NYU_CLASSES, NYU_IGNORE, NYU_PALETTE
from occkit.viz.draw import hstack, legend, resize, titled, vstack
from occkit.viz.perspective import ViewCamera, perspective_image

PANEL_W, PANEL_H = 320, 240


def occupancy_view(
    semantics: np.ndarray | torch.Tensor,
    T_ego_from_cam: np.ndarray | torch.Tensor,
    width: int = PANEL_W,
    height: int = PANEL_H,
) -> np.ndarray:
    """The ``(60, 60, 36)`` occupancy (unknown voxels hidden) from 0.8 m behind and 0.5 m above the
    frame's camera, looking the way it looks, at a point 2.5 m ahead and 0.5 m above the floor:
    ``(height, width, 3) uint8``."""
    sem = np.asarray(semantics.cpu() if isinstance(semantics, torch.Tensor) else semantics).astype(np.int64)
    sem = np.where(sem == NYU_IGNORE, 0, sem)
    T = np.asarray(T_ego_from_cam.cpu() if isinstance(T_ego_from_cam, torch.Tensor) else T_ego_from_cam, np.float64)
    f = T[:3, 2].copy()
    f[2] = 0.0
    f /= max(np.linalg.norm(f), 1e-9)
    eye = T[:3, 3] - 0.8 * f + np.array([0.0, 0.0, 0.5])
    target = T[:3, 3] + 2.5 * f
    target[2] = 0.56  # the floor's top is 6 cm above the volume's bottom
    cam = ViewCamera(eye=tuple(eye.tolist()), target=tuple(target.tolist()), fov_deg=75.0)
    return perspective_image(
        sem, palette=NYU_PALETTE, grid=nyu_grid(), camera=cam, width=width, height=height, free=0, ego_box=None
    )


def indoor_frame_figure(
    sample: Sample, pred: np.ndarray | torch.Tensor | None = None, title: bool = True
) -> np.ndarray:
    """One row: the image, the 2D semantics (when the sample has them), the ground-truth occupancy
    (and the prediction beside it, if given). ``(H, W, 3) uint8``."""
    img = (sample.images[0].permute(1, 2, 0).clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()
    panels = [titled(resize(img, PANEL_W, PANEL_H), sample.token if title else "")]
    pal = np.asarray(NYU_PALETTE, np.uint8)
    if sample.semantics_2d is not None:
        sem = sample.semantics_2d[0].numpy().clip(0, len(NYU_PALETTE) - 1)
        panels.append(titled(resize(pal[sem], PANEL_W, PANEL_H, nearest=True), "2D classes" if title else ""))
    if sample.occupancy is not None:
        panels.append(titled(occupancy_view(sample.occupancy, sample.T_ego_from_cam[0]), "occupancy" if title else ""))
    if pred is not None:
        panels.append(titled(occupancy_view(pred, sample.T_ego_from_cam[0]), "prediction" if title else ""))
    return hstack(panels, gap=4)


def indoor_figure(samples: list[Sample], with_legend: bool = True, preds: list[np.ndarray] | None = None) -> np.ndarray:
    """Rows of :func:`indoor_frame_figure`, one per sample (with its prediction, if given), with
    the class legend below."""
    rows = [indoor_frame_figure(s, None if preds is None else preds[k]) for k, s in enumerate(samples)]
    width = max(r.shape[1] for r in rows)
    if with_legend:
        rows.append(legend(NYU_CLASSES, NYU_PALETTE, width))
    return vstack(rows, gap=4)
