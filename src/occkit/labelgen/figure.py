"""A picture of a keyframe's labels beside the truth, with the errors coloured (``occkit label
--quality`` writes it as ``quality.png``; docs/labels.md shows one).

Three bird's-eye panels, front (+x) up: the exact occupancy, the labels (both in the format's
palette, the top voxel of each column, shaded by height), and the errors inside the observable
region, per column: **red** where a truly occupied voxel is left free (false free, the dangerous
error), **orange** where a truly free voxel is labelled occupied, **green** where every occupied
voxel agrees, dark grey where no origin saw anything.
"""

from __future__ import annotations

import numpy as np

from occkit.viz.bev import bev_image

RED, ORANGE, GREEN, UNSEEN, EMPTY = (220, 40, 40), (245, 160, 30), (70, 170, 90), (60, 60, 60), (235, 235, 235)


def error_bev(truth: np.ndarray, label: np.ndarray, observable: np.ndarray, free: int) -> np.ndarray:
    """``(X, Y, 3)`` uint8 error colours per column (see the module's docstring), front up."""
    g, p = truth != free, label != free
    false_free = (g & ~p & observable).any(2)
    false_occ = (~g & p & observable).any(2)
    agree = (g & p & observable).any(2)
    seen = observable.any(2)
    out = np.empty((*truth.shape[:2], 3), np.uint8)
    out[:] = EMPTY
    out[~seen] = UNSEEN
    out[agree] = GREEN
    out[false_occ] = ORANGE
    out[false_free] = RED
    return np.ascontiguousarray(out[::-1, ::-1])


def label_figure(
    truth: np.ndarray, label: np.ndarray, observable: np.ndarray, free: int, palette, scale: int = 2
) -> np.ndarray:
    """The three panels side by side with their titles: ``(H, W, 3)`` uint8."""
    from PIL import Image, ImageDraw

    panels = [
        bev_image(truth, palette=palette, free=free, scale=scale),
        bev_image(label, palette=palette, free=free, scale=scale),
        np.repeat(np.repeat(error_bev(truth, label, observable, free), scale, 0), scale, 1),
    ]
    titles = ["exact occupancy", "occkit label", "errors (observable): red false free, orange false occupied"]
    h, w = panels[0].shape[:2]
    gap, top = 8, 22
    canvas = Image.new("RGB", (3 * w + 2 * gap, h + top), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i, (img, title) in enumerate(zip(panels, titles)):
        x = i * (w + gap)
        canvas.paste(Image.fromarray(img), (x, top))
        draw.text((x + 2, 4), title, fill=(0, 0, 0))
    return np.asarray(canvas)
