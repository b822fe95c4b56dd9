"""One picture of a frame: the camera mosaic (with LiDAR points), the occupancy in bird's-eye view
and in 3D, a class legend, and optionally a prediction beside the ground truth."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from occkit.data.sample import Sample
from occkit.geometry.grid import Grid
from occkit.labels import OCC3D_CLASSES, OCC3D_FREE, OCC3D_PALETTE
from occkit.viz.bev import MASK_MODES, MASK_TINT, as_label_grid, bev_image
from occkit.viz.cameras import camera_mosaic, overlay_lidar
from occkit.viz.draw import (
    BACKGROUND,
    colorbar,
    hstack,
    legend,
    put_text,
    resize,
    text_size,
    title_lines,
    titled,
    vstack,
    wrap_text,
)
from occkit.viz.perspective import EGO_BOX, ViewCamera, default_grid, perspective_image

MASKS = ("none", "camera", "lidar")
LIDAR_COLORS = ("depth", "class", "none")
#: Depth (metres) at the violet end of the LiDAR depth colours.
LIDAR_MAX_DEPTH = 60.0


def images_uint8(images: torch.Tensor) -> np.ndarray:
    """``(N, 3, H, W)`` float in [0, 1] -> ``(N, H, W, 3) uint8``."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images: expected shape (N, 3, H, W), got {tuple(images.shape)}")
    return (images.detach().cpu().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def draw_ego_bev(image: np.ndarray, grid: Grid, scale: int, box=EGO_BOX) -> np.ndarray:
    """Outline the ego footprint ``box = (lo, hi)`` (metres) on a :func:`bev_image` of ``grid``."""
    (x0, y0, _), (x1, y1, _) = box
    X, Y, _ = grid.shape
    lo, vs = grid.range_min, grid.voxel_size

    def px(x: float, y: float) -> tuple[float, float]:
        xi, yi = (x - lo[0]) / vs[0], (y - lo[1]) / vs[1]
        return (Y - yi) * scale, (X - xi) * scale  # (column, row)

    c0, r0 = px(x1, y1)  # front-left corner is the top-left of the rectangle
    c1, r1 = px(x0, y0)
    pil = Image.fromarray(image)
    d = ImageDraw.Draw(pil)
    d.rectangle([c0, r0, c1, r1], fill=(250, 250, 250), outline=(0, 0, 0))
    # a notch at the front so the heading reads at a glance
    cm = (c0 + c1) / 2
    d.polygon([(cm, r0 - 0.6 * (c1 - c0)), (c0, r0), (c1, r0)], fill=(250, 250, 250), outline=(0, 0, 0))
    return np.asarray(pil).copy()


def occupancy_panels(
    semantics: np.ndarray | torch.Tensor,
    name: str,
    mask: np.ndarray | torch.Tensor | None = None,
    mask_mode: str = "hide",
    grid: Grid | None = None,
    panel_height: int = 400,
    camera: ViewCamera = ViewCamera(),
    palette: Sequence[Sequence[int]] = OCC3D_PALETTE,
    device: str | torch.device = "cpu",
    note: str | None = None,
    *,
    free: int,
) -> np.ndarray:
    """Bird's-eye view and 3D view of one grid side by side, titled ``"<name> - ..."`` (and
    ``note`` after the 3D view's title); ``free`` is empty space (the table's free class).

    Args:
        semantics: ``(X, Y, Z)`` class ids; mask: optional ``(X, Y, Z)`` bool.
    Returns:
        ``(h, w, 3) uint8``.
    """
    sem = as_label_grid(semantics)
    grid = grid or default_grid(sem.shape)
    X, Y, _ = sem.shape
    scale = max(1, -(-panel_height // max(X, Y)))  # whole pixels per voxel, then resized
    bev = bev_image(sem, mask=mask, palette=palette, mask_mode=mask_mode, scale=scale, free=free)
    bev = draw_ego_bev(bev, grid, scale)
    bev = resize(
        bev, max(1, round(panel_height * Y / max(X, Y))), max(1, round(panel_height * X / max(X, Y))), nearest=True
    )
    view = perspective_image(
        sem,
        mask=mask,
        palette=palette,
        free=free,
        grid=grid,
        camera=camera,
        mask_mode=mask_mode,
        width=round(panel_height * 1.5),
        height=panel_height,
        device=device,
    )
    t_bev, t_view = (
        f"{name}: bird's-eye view " + "(x forward = up)".replace(" ", "\u00a0"),
        f"{name}: 3D view" + (f"   {note}" if note else ""),
    )
    lines = max(len(title_lines(t_bev, bev.shape[1])), len(title_lines(t_view, view.shape[1])))
    return hstack([titled(bev, t_bev, min_lines=lines), titled(view, t_view, min_lines=lines)], gap=8)


def frame_scores(
    gt: np.ndarray,
    pred: np.ndarray,
    mask: np.ndarray | torch.Tensor | None = None,
    class_names: Sequence[str] = OCC3D_CLASSES,
    *,
    free: int,
) -> dict:
    """Occ3D scores of one frame (official formula, on this frame alone): ``miou`` and
    ``geometry_iou`` in percent over the voxels of ``mask`` (all when ``None``), for the class
    table ``class_names`` with free class ``free``.

    Args:
        gt, pred: ``(X, Y, Z)`` integer class ids of the table; mask: optional ``(X, Y, Z)`` bool.
    """
    from occkit.metrics.confusion import confusion_matrix
    from occkit.metrics.occ3d import occ3d_scores

    m = None if mask is None else torch.as_tensor(np.asarray(mask, dtype=bool))
    hist = confusion_matrix(
        torch.from_numpy(np.asarray(gt)), torch.from_numpy(np.asarray(pred)), len(class_names), mask=m
    )
    return occ3d_scores(hist, tuple(class_names), free=free)


def compose_frame_figure(
    sample: Sample,
    pred: np.ndarray | torch.Tensor | None = None,
    mask: str = "none",
    mask_mode: str = "hide",
    lidar_color: str = "depth",
    panel_height: int = 400,
    title: str | None = None,
    device: str | torch.device = "cpu",
    classes: Any = None,
    mask_label: str | None = None,
) -> np.ndarray:
    """The picture ``occkit show`` writes.

    Layout, top to bottom: a title; the camera mosaic with LiDAR points (when the sample has
    images and LiDAR); ground truth BEV + 3D view; prediction BEV + 3D view (when ``pred`` is
    given); the class legend (classes present in the frame are bright).

    Args:
        sample: a frame (images ``(N, 3, H, W)``, occupancy ``(X, Y, Z)``, masks, LiDAR optional).
        pred: optional ``(X, Y, Z)`` predicted class ids, same grid as the ground truth.
        mask: ``"none"``, ``"camera"`` or ``"lidar"``: which visibility mask to apply to the
            ground truth and the prediction.
        mask_mode: voxels outside the mask: ``"hide"``, ``"grey"`` (or ``"dim"``, its name in
            ``occkit show`` and ``occkit view``), or ``"show"`` (drawn as they are; the mask only
            restricts the scores).
        lidar_color: ``"depth"``, ``"class"`` (the point labels in the Occ3D palette) or ``"none"``.
        classes: the class table of the frame's labels (a format's
            :class:`~occkit.formats.spec.ClassTable`: names, free id, palette); None: Occ3D's.
        mask_label: what the picture calls the voxels of ``mask`` (default ``"<mask> mask"``), e.g. the
            labelled voxels, where a format's "camera mask" is only where its labels are known.
    Returns:
        ``(H, W, 3) uint8``.
    """
    mask_mode = _checked_options(mask, mask_mode, lidar_color)
    names, free, palette = _class_table(classes)
    gt, pr, vis = _grids(sample, pred, mask)
    shape = (gt if gt is not None else pr).shape if (gt is not None or pr is not None) else None
    drawn = None if mask_mode == "show" else vis  # "show": the mask restricts the scores, not the drawing
    mask_name = mask_label or mask + " mask"
    draw = functools.partial(
        occupancy_panels,
        mask=drawn,
        mask_mode="hide" if mask_mode == "show" else mask_mode,  # (no mask drawn then: either mode draws all)
        grid=default_grid(shape) if shape is not None else None,
        panel_height=panel_height,
        device=device,
        palette=palette,
        free=free,
    )
    rows: list[np.ndarray] = []
    if gt is not None:
        rows.append(draw(gt, "ground truth"))
    if pr is not None:
        note = (
            None if gt is None else _score_note(frame_scores(gt, pr, vis, names, free=free), mask_name, vis is not None)
        )
        rows.append(draw(pr, "prediction", note=note))
    width = max((r.shape[1] for r in rows), default=1200)

    parts = [_title_strip(sample, title, width)]
    if sample.images.numel() > 0:
        parts.append(_camera_panel(sample, lidar_color, width))
    parts.extend(rows)
    extras = [(f"outside the {mask_name} (dimmed)", MASK_TINT)] if drawn is not None and mask_mode == "grey" else []
    parts.append(_legend_panel(classes is None, names, free, palette, gt, pr, width, extras))
    return vstack(parts, gap=6)


def _grids(
    sample: Sample, pred: np.ndarray | torch.Tensor | None, mask: str
) -> tuple[np.ndarray | None, np.ndarray | None, Any]:
    """The ground truth and prediction grids (None where there is none), checked to match, and the
    sample's visibility mask named by ``mask`` (None for ``"none"``)."""
    gt = None if sample.occupancy is None else as_label_grid(sample.occupancy, "sample.occupancy")
    pr = None if pred is None else as_label_grid(pred, "pred")
    if gt is not None and pr is not None and gt.shape != pr.shape:
        raise ValueError(f"pred: shape {pr.shape} does not match the ground truth {gt.shape}")
    vis = None
    if mask != "none":
        vis = sample.mask_camera if mask == "camera" else sample.mask_lidar
        if vis is None:
            raise ValueError(f"mask={mask!r}: the sample has no mask_{mask}")
    return gt, pr, vis


def _checked_options(mask: str, mask_mode: str, lidar_color: str) -> str:
    """The :func:`compose_frame_figure` options checked; returns ``mask_mode`` with ``"dim"`` read as ``"grey"``."""
    if mask not in MASKS:
        raise ValueError(f"mask must be one of {MASKS}, got {mask!r}")
    mask_mode = {"dim": "grey"}.get(mask_mode, mask_mode)
    if mask_mode not in (*MASK_MODES, "show"):
        raise ValueError(f"mask_mode must be one of {(*MASK_MODES, 'dim', 'show')}, got {mask_mode!r}")
    if lidar_color not in LIDAR_COLORS:
        raise ValueError(f"lidar_color must be one of {LIDAR_COLORS}, got {lidar_color!r}")
    return mask_mode


def _class_table(classes: Any) -> tuple[tuple[str, ...], int, Sequence[Sequence[int]]]:
    """The names, free id and palette of a class table (None: Occ3D's); a table without a palette
    gets :func:`default_palette`."""
    names = tuple(classes.names) if classes is not None else OCC3D_CLASSES
    free = classes.free if classes is not None else OCC3D_FREE
    if free is None:
        raise ValueError("classes: a table without a free class (the pictures draw free space as the background)")
    palette = (
        (tuple(classes.palette) or tuple(map(tuple, default_palette(len(names)))))
        if classes is not None
        else OCC3D_PALETTE
    )
    return names, free, palette


def _score_note(sc: dict, mask_name: str, masked: bool) -> str:
    """The scores written after the prediction's 3D view title, and over which voxels."""
    return f"mIoU {sc['miou']:.2f}  IoU {sc['geometry_iou']:.2f}  ({mask_name if masked else 'all voxels'})"


def _title_strip(sample: Sample, title: str | None, width: int) -> np.ndarray:
    """The title of the picture (default: the scene and frame, then the frame's description), wrapped to ``width``."""
    head = title or f"{sample.scene}   frame {sample.token}"
    if sample.description:
        head += f"   -   {sample.description}"
    head_lines = wrap_text(head, width - 16, size=17)
    line_h = text_size("Ag", 17)[1] + 5
    strip = np.empty((12 + line_h * len(head_lines), width, 3), np.uint8)
    strip[:] = np.asarray(BACKGROUND, np.uint8)
    for i, line in enumerate(head_lines):
        strip = put_text(strip, line, (4, 4 + i * line_h), size=17, box=None)
    return strip


def _camera_panel(sample: Sample, lidar_color: str, width: int) -> np.ndarray:
    """The titled camera mosaic, three tiles across ``width``, with the LiDAR points drawn on the
    images (unless ``lidar_color`` is ``"none"``) and, for depth colours, the depth colour bar."""
    imgs = images_uint8(sample.images)
    if sample.lidar is not None and lidar_color != "none" and sample.lidar.shape[0] > 0:
        colors = _lidar_class_colors(sample) if lidar_color == "class" else None
        r = max(1, imgs.shape[2] // 500)
        imgs = np.stack(
            [
                overlay_lidar(im, sample.lidar[:, :3], K, T, colors=colors, radius=r, max_depth=LIDAR_MAX_DEPTH)
                for im, K, T in zip(imgs, sample.intrinsics, sample.T_ego_from_cam)
            ]
        )
    tile_w = (width - 2 * 2) // 3
    with_lidar = sample.lidar is not None and lidar_color != "none"
    label = "cameras" + (f" + LiDAR ({lidar_color})" if with_lidar else "")
    mosaic = titled(camera_mosaic(imgs, sample.cam_names, tile_width=tile_w), label)
    if with_lidar and lidar_color == "depth":
        bar = colorbar(0.0, LIDAR_MAX_DEPTH)
        if bar.shape[1] + 260 < mosaic.shape[1]:
            y, x = 4, mosaic.shape[1] - bar.shape[1] - 6
            mosaic[y : y + bar.shape[0], x : x + bar.shape[1]] = bar
    return mosaic


def _lidar_class_colors(sample: Sample) -> np.ndarray | None:
    """The LiDAR points' colours in the Occ3D palette from their labels (None: the sample has none)."""
    if sample.lidar_labels is None:
        return None
    lab = sample.lidar_labels.cpu().numpy()
    pal = np.asarray(OCC3D_PALETTE, np.uint8)
    if lab.size and (lab.min() < 0 or lab.max() >= len(pal)):
        raise ValueError(f"sample.lidar_labels: classes must lie in [0, {len(pal)}), got [{lab.min()}, {lab.max()}]")
    return pal[lab]


def _legend_panel(
    default_table: bool,
    names: tuple[str, ...],
    free: int,
    palette: Sequence[Sequence[int]],
    gt: np.ndarray | None,
    pr: np.ndarray | None,
    width: int,
    extras: list[tuple[str, Sequence[int]]],
) -> np.ndarray:
    """The class legend below the panels: Occ3D's own for Occ3D's table (``default_table``: no
    class table was given), :func:`class_legend` for any other."""
    occ3d_table = names == OCC3D_CLASSES and free == OCC3D_FREE and tuple(map(tuple, palette)) == OCC3D_PALETTE
    if default_table or occ3d_table:  # Occ3D's table, whichever format gives it: its own legend
        return occ3d_legend(gt, pr, width=width, extras=extras)
    return class_legend(names, palette, free, gt, pr, width=width, extras=extras)


def occ3d_legend(
    *labels: np.ndarray | None, width: int, extras: Sequence[tuple[str, Sequence[int]]] = ()
) -> np.ndarray:
    """The Occ3D class legend for pictures of class maps or grids (``labels``: any shapes of class
    ids; None skipped): classes present in any of them bright, the others dimmed, free drawn as
    the background ("empty (free)") and then the ``extras``. ``(H, width, 3) uint8``."""
    present = np.zeros(len(OCC3D_CLASSES), bool)
    for g in labels:
        if g is not None:
            g = np.asarray(g)
            present[np.unique(g[(g >= 0) & (g < len(present))])] = True
    return legend(
        OCC3D_CLASSES[:OCC3D_FREE],
        OCC3D_PALETTE,
        width,
        present=present[:OCC3D_FREE],
        extras=[("empty (free)", BACKGROUND), *extras],
    )


def class_legend(
    names: Sequence[str],
    palette: Sequence[Sequence[int]],
    free: int | None,
    *labels: np.ndarray | None,
    width: int,
    extras: Sequence[tuple[str, Sequence[int]]] = (),
) -> np.ndarray:
    """:func:`occ3d_legend` for any class table (a format's ``classes``: ``names``, ``palette``, the
    ``free`` id or None): the classes present in ``labels`` bright, the others dimmed, free drawn as
    the background ("<name> (free)"). ``(H, width, 3) uint8``."""
    n = len(names)
    present = np.zeros(n, bool)
    for g in labels:
        if g is not None:
            g = np.asarray(g)
            present[np.unique(g[(g >= 0) & (g < n)])] = True
    colours = [tuple(int(v) for v in c) for c in (palette if len(palette) else default_palette(n))]
    shown = list(names)
    if free is not None:  # drawn as the background, as the pictures draw it
        colours[free] = tuple(BACKGROUND)
        shown[free] = f"{names[free]} (free)"
    return legend(shown, colours, width, present=list(present), extras=list(extras))


def default_palette(n: int) -> np.ndarray:
    """``(n, 3) uint8`` distinct colours for a table without a palette (evenly spaced hues)."""
    import colorsys

    return np.asarray(
        [[int(255 * v) for v in colorsys.hsv_to_rgb(i / max(n, 1), 0.75, 0.95)] for i in range(n)], dtype=np.uint8
    )
