"""The README picture of EasyOcc's pseudo-labels: one frame's real labels, its single-frame
pseudo-labels and its densified ones, each in bird's-eye and 3D view, inside their own masks."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from occkit.viz.draw import legend, save_png, titled, vstack
from occkit.viz.figure import frame_scores, occupancy_panels


def pseudo_label_figure(
    gt: str | os.PathLike,
    pseudo: Sequence[tuple[str, str | os.PathLike]],
    token: str | None = None,
    out: str | os.PathLike | None = None,
    panel_height: int = 300,
) -> np.ndarray:
    """Rows: the real labels of ``gt`` (inside its camera mask), then each ``(name, dataset)`` of
    ``pseudo`` (inside its own observed mask), with its mIoU / geometry IoU against the real labels
    (real camera mask) in the title.

    Args:
        gt: the real dataset; pseudo: pseudo-label datasets of the same frames.
        token: the frame (default: the middle frame of the last scene of the val split, or of all).
        out: write the PNG there too.
    Returns:
        ``(h, w, 3) uint8``.
    """
    from occkit.data.occ3d import Occ3DDataset
    from occkit.formats import format_of

    real = Occ3DDataset(gt, "all", load_images=False, load_extras=False)
    table = format_of(real).classes
    free = table.free
    if token is None:
        val = Occ3DDataset(gt, "val", load_images=False, load_extras=False)
        frames = val.frames or real.frames
        scene = frames[-1].scene
        toks = real.scene_tokens(scene)
        token = toks[len(toks) - 1]  # the last frame: the most past frames behind it
    g = real.read_labels(token)
    rows = [
        occupancy_panels(
            g["semantics"],
            "real labels",
            mask=g["mask_camera"].astype(bool),
            panel_height=panel_height,
            palette=table.palette,
            free=free,
        )
    ]
    present = np.zeros(table.num_classes, dtype=bool)
    present[np.unique(g["semantics"])] = True
    for name, root in pseudo:
        ds = Occ3DDataset(root, "all", load_images=False, load_extras=False)
        p = ds.read_labels(token)
        s = frame_scores(g["semantics"], p["semantics"], g["mask_camera"].astype(bool), table.names, free=free)
        note = f"mIoU {s['miou']:.1f}, geometry IoU {s['geometry_iou']:.1f} (real camera mask)" if "miou" in s else None
        rows.append(
            occupancy_panels(
                p["semantics"],
                name,
                mask=p["mask_camera"].astype(bool),
                panel_height=panel_height,
                note=note,
                palette=table.palette,
                free=free,
            )
        )
        present[np.unique(p["semantics"])] = True
    present[free] = False
    body = vstack(rows, gap=10)
    body = vstack(
        [
            body,
            legend(
                table.names[:free],
                table.palette[:free],
                body.shape[1],
                present=list(present[:free]),
            ),
        ],
        gap=6,
    )
    img = titled(body, f"EasyOcc pseudo-labels from 2D priors, frame {token}")
    if out is not None:
        save_png(Path(out), img)
    return img
