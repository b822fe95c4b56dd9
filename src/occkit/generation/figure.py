"""The picture of generated scenes: each row the layout (bird's-eye view of the cameras' half of
the grid, or of the whole room grid indoors), the generated camera images beside it, and the text
above; the layouts' class legend below, in the data format's palette."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from occkit.labels import OCC3D_FREE, OCC3D_PALETTE
from occkit.viz.bev import MASK_TINT, bev_image
from occkit.viz.cameras import images_uint8
from occkit.viz.draw import BACKGROUND, colormap, hstack, legend, pad_to, titled, vstack
from occkit.viz.figure import occ3d_legend


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """``(N, 3, H, W)`` float [0, 1] -> the N images side by side, ``(H, N*W, 3) uint8``."""
    return np.ascontiguousarray(np.concatenate(list(images_uint8(images)), 1))


def format_palette(fmt) -> list[tuple[int, int, int]]:
    """A format's class colours (None: Occ3D-nuScenes'); a format without a palette gets one spread
    over :func:`occkit.viz.draw.colormap`."""
    if fmt is None:
        return [tuple(c) for c in OCC3D_PALETTE]
    if fmt.classes.palette:
        return [tuple(c) for c in fmt.classes.palette]
    n = fmt.classes.num_classes
    return [tuple(int(v) for v in c) for c in colormap(np.arange(n, dtype=np.float64), 0.0, max(1.0, n - 1.0))]


def class_legend(
    fmt, *labels: np.ndarray | None, width: int, extras: Sequence[tuple[str, Sequence[int]]] = ()
) -> np.ndarray:
    """The class legend of a format's layouts (``fmt`` a :class:`occkit.formats.DatasetFormat`;
    None: Occ3D-nuScenes): each class with its id in the format's palette, bright where present in
    ``labels``, free drawn as the background ("empty (free)"), then ``extras``. ``(H, width, 3) uint8``."""
    if fmt is None:
        return occ3d_legend(*labels, width=width, extras=extras)
    table = fmt.classes
    names, palette, free = list(table.names), format_palette(fmt), table.free
    present = np.zeros(len(names), bool)
    for g in labels:
        if g is not None:
            g = np.asarray(g)
            present[np.unique(g[(g >= 0) & (g < len(present))])] = True
    if free is None:
        return legend(names, palette, width, present=present, extras=list(extras))
    if free == len(names) - 1:  # free last (Occ3D): the classes before it, then free as the background
        return legend(
            names[:free], palette, width, present=present[:free], extras=[("empty (free)", BACKGROUND), *extras]
        )
    names[free], palette[free], present[free] = "empty (free)", tuple(BACKGROUND), True  # free keeps its id
    return legend(names, palette, width, present=present, extras=list(extras))


def generation_figure(
    rows: list[dict],
    title: str = "",
    front_only: bool | None = None,
    bev_scale: int | None = None,
    image_scale: int = 2,
    fmt=None,
) -> np.ndarray:
    """``(H, W, 3) uint8``.

    Args:
        rows: dicts with ``panels`` (list of (label, ``(N, 3, H, W)`` float [0, 1] images)),
            ``semantics`` ``(X, Y, Z)`` class ids or None, ``mask`` ``(X, Y, Z)`` bool or None, and
            ``text``.
        front_only: show the front half of the BEV (x > 0), where a front camera looks; None: when
            the format's grid is centred on the sensor in x (Occ3D's), not when it lies in front of it
            (NYUv2's room grid, drawn whole, its ``ceiling`` class left out so that the top view shows
            the room's floor plan).
        bev_scale: pixels per voxel; None: 1, or 2 for a grid of under 100 voxels across (NYUv2's 60).
        image_scale: pixels per image pixel (nearest-neighbour blow-up).
        fmt: the :class:`occkit.formats.DatasetFormat` of the layouts (palette, free class, legend,
            grid); None: Occ3D-nuScenes.
    """
    palette = format_palette(fmt)
    free = fmt.classes.free if fmt is not None and fmt.classes.free is not None else OCC3D_FREE
    ignore = fmt.classes.ignore if fmt is not None else None
    see_through = fmt.classes.names.index("ceiling") if fmt is not None and "ceiling" in fmt.classes.names else None
    if front_only is None:
        front_only = fmt is None or fmt.grid.range_min[0] < 0 < fmt.grid.range_max[0]
    out = []
    for r in rows:
        panels = []
        if r.get("semantics") is not None:
            scale = bev_scale or (2 if np.asarray(r["semantics"]).shape[0] < 100 else 1)
            panels.append(
                _layout_panel(r["semantics"], r.get("mask"), palette, free, ignore, see_through, front_only, scale)
            )
        for label, imgs in r["panels"]:
            img = to_uint8(imgs).repeat(image_scale, 0).repeat(image_scale, 1)
            panels.append(titled(np.ascontiguousarray(img), label, size=12))
        out.append(titled(hstack(panels, gap=6), r.get("text", ""), size=12))
    width = max(o.shape[1] for o in out)
    parts = [pad_to(o, o.shape[0], width) for o in out]
    layouts = [r["semantics"] for r in rows if r.get("semantics") is not None]
    if layouts:  # the layouts' classes (and the grey of voxels outside the mask)
        masked = any(r.get("mask") is not None for r in rows if r.get("semantics") is not None)
        extras = [("outside the mask (dimmed)", MASK_TINT)] if masked else []
        parts.append(class_legend(fmt, *(np.asarray(s) for s in layouts), width=width, extras=extras))
    fig = vstack(parts, gap=10)
    return titled(fig, title, size=14) if title else fig


def _layout_panel(
    semantics,
    mask,
    palette: list[tuple[int, int, int]],
    free: int,
    ignore: int | None,
    see_through: int | None,
    front_only: bool,
    scale: int,
) -> np.ndarray:
    """A layout's titled bird's-eye view at ``scale`` pixels per voxel: the format's unknown label
    (``ignore``) drawn as unobserved free space, a room's ceiling (``see_through``) looked through,
    and only the front half when ``front_only``."""
    sem = np.asarray(semantics)
    unknown = sem == ignore if ignore is not None else None
    if unknown is not None and unknown.any():  # the format's unknown label: drawn as unobserved free space
        sem = np.where(unknown, free, sem)
        mask = ~unknown if mask is None else np.asarray(mask, dtype=bool) & ~unknown
    if see_through is not None:  # a top view of a room looks through its ceiling, as a floor plan does
        sem = np.where(sem == see_through, free, sem)
    bev = bev_image(sem, mask, palette, mask_mode="grey", free=free, scale=scale)
    if front_only:
        bev = np.ascontiguousarray(bev[: bev.shape[0] // 2])
    return titled(bev, "layout (BEV, front up)" if front_only else "layout (BEV, +x up)", size=12)
