"""How good pseudo-labels are against the real ground truth (``occkit pseudolabel --quality``).

For a pseudo-label dataset (``occkit pseudolabel --out``) and the source dataset's real labels:

- ``miou`` / ``geometry_iou`` (Occ3D's, percent, counted by the scoring core :class:`occkit.scoring.core.Scoring`)
  of the pseudo-labels read as a prediction, with the real camera mask (``miou_camera``) and on every voxel
  (``miou_none``);
- ``precision`` / ``recall`` of the occupied voxels (pseudo occupied vs real occupied), inside the
  real camera mask and on every voxel;
- ``density``: the fraction of the grid the pseudo-labels observe (their ``mask_camera``), and
  ``occupied_fraction``: the fraction they call occupied;
- ``observed_accuracy``: the agreement (free/occupied and class) on the voxels the pseudo-labels
  observe, where they claim to know.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from occkit.metrics.base import Targets
from occkit.scoring.core import Scoring


def label_quality(pseudo: str | os.PathLike, gt: str | os.PathLike, split: str = "all") -> dict[str, Any]:
    """Scores of the pseudo-labels under ``pseudo`` against the labels of ``gt`` (see the module
    docstring), over the frames of ``split`` that ``pseudo`` has."""
    from occkit.data.occ3d import Occ3DDataset
    from occkit.formats import format_of

    p_ds = Occ3DDataset(pseudo, split, load_images=False, load_extras=False)
    g_ds = Occ3DDataset(gt, "all", load_images=False, load_extras=False)
    fmt = format_of(g_ds)
    table = fmt.classes
    free = table.free
    # the ground truth's format's metrics, through the one scoring core: its mIoU under each mask
    metrics = {m: Scoring(fmt, mask=m, num_classes=table.num_classes) for m in ("camera", "none")}
    tp = {"camera": 0, "none": 0}
    n_pred = dict(tp)
    n_gt = dict(tp)
    observed = occupied = agree = total = 0
    for f in p_ds.frames:
        p = p_ds.read_labels(f.token)
        g = g_ds.read_labels(f.token)
        ps, gs = (
            torch.from_numpy(p["semantics"].astype(np.int64))[None],
            torch.from_numpy(g["semantics"].astype(np.int64))[None],
        )
        cam = torch.from_numpy(g["mask_camera"]).bool()[None]
        for m, metric in metrics.items():
            metric.update(ps, Targets(occupancy=gs, tokens=[f.token], mask_camera=cam))
            keep = cam if m == "camera" else torch.ones_like(cam)
            po, go = (ps != free) & keep, (gs != free) & keep
            tp[m] += int((po & go).sum())
            n_pred[m] += int(po.sum())
            n_gt[m] += int(go.sum())
        obs = torch.from_numpy(p["mask_camera"]).bool()[None]
        observed += int(obs.sum())
        occupied += int((ps != free).sum())
        agree += int((obs & (ps == gs)).sum())
        total += ps.numel()
    if not p_ds.frames:
        raise ValueError(f"{pseudo}: no frames in split '{split}'")
    out: dict[str, Any] = {"frames": len(p_ds.frames), "split": split}
    for m, metric in metrics.items():
        r = metric.compute()
        out[f"miou_{m}"] = r["miou"]
        out[f"geometry_iou_{m}"] = r["geometry_iou"]
        out[f"iou_{m}"] = r["iou"]
        out[f"precision_{m}"] = 100.0 * tp[m] / max(n_pred[m], 1)
        out[f"recall_{m}"] = 100.0 * tp[m] / max(n_gt[m], 1)
    out["density"] = 100.0 * observed / max(total, 1)
    out["occupied_fraction"] = 100.0 * occupied / max(total, 1)
    out["observed_accuracy"] = 100.0 * agree / max(observed, 1)
    return out


def format_quality(q: dict[str, Any]) -> str:
    """A short table of :func:`label_quality`'s figures."""
    rows = [
        ("mIoU (camera mask / none)", f"{q['miou_camera']:.2f} / {q['miou_none']:.2f}"),
        ("geometry IoU (camera / none)", f"{q['geometry_iou_camera']:.2f} / {q['geometry_iou_none']:.2f}"),
        ("occupied precision (camera / none)", f"{q['precision_camera']:.2f} / {q['precision_none']:.2f}"),
        ("occupied recall (camera / none)", f"{q['recall_camera']:.2f} / {q['recall_none']:.2f}"),
        ("observed voxels (density, %)", f"{q['density']:.2f}"),
        ("occupied voxels (%)", f"{q['occupied_fraction']:.2f}"),
        ("accuracy on observed voxels (%)", f"{q['observed_accuracy']:.2f}"),
    ]
    w = max(len(a) for a, _ in rows)
    return "\n".join(f"{a:<{w}}  {b}" for a, b in rows) + f"\n({q['frames']} frames, split {q['split']})"
