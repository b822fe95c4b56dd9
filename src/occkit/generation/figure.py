"""The picture of generated scenes: each row the layout (bird's-eye view of the cameras' half of
the grid), the generated camera images beside it, and the text above; the layouts' class legend
below."""

from __future__ import annotations

import numpy as np
import torch

from occkit.viz.bev import MASK_TINT, bev_image
from occkit.viz.cameras import images_uint8
from occkit.viz.draw import hstack, pad_to, titled, vstack
from occkit.viz.figure import occ3d_legend


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """``(N, 3, H, W)`` float [0, 1] -> the N images side by side, ``(H, N*W, 3) uint8``."""
    return np.ascontiguousarray(np.concatenate(list(images_uint8(images)), 1))


def generation_figure(
    rows: list[dict], title: str = "", front_only: bool = True, bev_scale: int = 1, image_scale: int = 2
) -> np.ndarray:
    """``(H, W, 3) uint8``.

    Args:
        rows: dicts with ``panels`` (list of (label, ``(N, 3, H, W)`` float [0, 1] images)),
            ``semantics`` ``(X, Y, Z)`` class ids or None, ``mask`` ``(X, Y, Z)`` bool or None, and
            ``text``.
        front_only: show the front half of the BEV (x > 0), where a front camera looks.
        bev_scale, image_scale: pixels per voxel / per image pixel (nearest-neighbour blow-up).
    """
    out = []
    for r in rows:
        panels = []
        if r.get("semantics") is not None:
            bev = bev_image(r["semantics"], r.get("mask"), mask_mode="grey", scale=bev_scale)  # row 0 = front
            if front_only:
                bev = np.ascontiguousarray(bev[: bev.shape[0] // 2])
            panels.append(titled(bev, "layout (BEV, front up)", size=12))
        for label, imgs in r["panels"]:
            img = to_uint8(imgs).repeat(image_scale, 0).repeat(image_scale, 1)
            panels.append(titled(np.ascontiguousarray(img), label, size=12))
        out.append(titled(hstack(panels, gap=6), r.get("text", ""), size=12))
    width = max(o.shape[1] for o in out)
    parts = [pad_to(o, o.shape[0], width) for o in out]
    layouts = [r["semantics"] for r in rows if r.get("semantics") is not None]
    if layouts:  # the layouts' classes (and the grey of voxels outside the mask)
        masked = any(r.get("mask") is not None for r in rows if r.get("semantics") is not None)
        parts.append(
            occ3d_legend(
                *(np.asarray(s) for s in layouts),
                width=width,
                extras=[("outside the mask (dimmed)", MASK_TINT)] if masked else [],
            )
        )
    fig = vstack(parts, gap=10)
    return titled(fig, title, size=14) if title else fig
