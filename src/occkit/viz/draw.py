"""Small drawing helpers on ``(H, W, 3) uint8`` numpy images: colour maps, text, panels, legends.

Everything returns a new array (inputs are never modified) except where a function says so.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from occkit.fileio import atomic_write
from occkit.shapes import check_shape

#: Anchor colours of the depth colour map, near (index 0) to far: red, orange, yellow, green,
#: cyan, blue, violet.
_DEPTH_ANCHORS = np.array(
    [[230, 25, 25], [255, 140, 0], [250, 230, 40], [60, 200, 60], [40, 200, 220], [40, 90, 240], [140, 60, 220]],
    dtype=np.float64,
)

#: Background colour of panels (dark grey, so that the near-white "manmade" class stays visible).
BACKGROUND: tuple[int, int, int] = (32, 32, 36)


def check_image(image: np.ndarray, name: str = "image") -> None:
    """Raise unless ``image`` is an ``(H, W, 3) uint8`` numpy array."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array, got {type(image).__name__}")
    check_shape(image, "H W 3", name=name)
    if image.dtype != np.uint8:
        raise TypeError(f"{name}: expected dtype uint8, got {image.dtype}")


def checked_palette(palette: Sequence[Sequence[int]], semantics: np.ndarray, free: int) -> np.ndarray:
    """The palette as ``(C, 3) uint8``, checked to hold a colour for every class in ``semantics``
    other than ``free``."""
    pal = np.asarray(palette, dtype=np.uint8)
    check_shape(pal, "C 3", name="palette")
    cmax = int(semantics[semantics != free].max(initial=0))
    if cmax >= len(pal):
        raise ValueError(f"semantics: class {cmax} has no colour in a palette of {len(pal)}")
    return pal


def colormap(values: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    """Map scalars to colours (red near ``vmin`` ... violet near ``vmax``).

    Args:
        values: ``(...)`` float; NaN maps to grey.
    Returns:
        ``(..., 3) uint8``.
    """
    if not vmax > vmin:
        raise ValueError(f"colormap: vmax ({vmax}) must be greater than vmin ({vmin})")
    v = np.asarray(values, dtype=np.float64)
    t = np.clip((v - vmin) / (vmax - vmin), 0.0, 1.0) * (len(_DEPTH_ANCHORS) - 1)
    t = np.nan_to_num(t, nan=0.0)
    i0 = np.floor(t).astype(np.int64).clip(0, len(_DEPTH_ANCHORS) - 2)
    w = (t - i0)[..., None]
    out = _DEPTH_ANCHORS[i0] * (1 - w) + _DEPTH_ANCHORS[i0 + 1] * w
    out[np.isnan(v)] = 128
    return np.round(out).astype(np.uint8)


def font(size: int = 14) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """PIL's bundled font at ``size`` pixels (a fixed small bitmap font on Pillow < 10.1)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no size argument
        return ImageFont.load_default()


def text_size(text: str, size: int = 14) -> tuple[int, int]:
    """``(width, height)`` in pixels of ``text`` drawn with :func:`font` at ``size``."""
    box = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), text, font=font(size))
    return int(box[2] - box[0]), int(box[3] - box[1])


def fit_text(text: str, width: int, size: int = 14) -> str:
    """``text``, cut and ended with an ellipsis if needed so that it is at most ``width`` pixels wide."""
    if text_size(text, size)[0] <= width:
        return text
    lo, hi = 0, len(text)
    while lo < hi:  # longest prefix that fits with the ellipsis
        mid = (lo + hi + 1) // 2
        if text_size(text[:mid] + "...", size)[0] <= width:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip() + "..."


def wrap_text(text: str, width: int, size: int = 14) -> list[str]:
    """``text`` broken at spaces into lines at most ``width`` pixels wide (a single word wider
    than that is cut with an ellipsis). No-break spaces (U+00A0) hold words together and come
    out as plain spaces."""
    lines: list[str] = []
    for word in (w.replace("\u00a0", " ") for w in text.split(" ")):
        if lines and text_size(lines[-1] + " " + word, size)[0] <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return [fit_text(line, width, size) for line in lines] or [""]


def put_text(
    image: np.ndarray,
    text: str,
    xy: tuple[int, int],
    size: int = 14,
    color: tuple[int, int, int] = (255, 255, 255),
    box: tuple[int, int, int] | None = (0, 0, 0),
    pad: int = 3,
) -> np.ndarray:
    """Draw ``text`` with its top-left corner at ``xy = (column, row)``, on a filled ``box`` colour
    (``None``: no box). Returns a new ``(H, W, 3) uint8`` image."""
    check_image(image)
    pil = Image.fromarray(image)
    draw = ImageDraw.Draw(pil)
    f = font(size)
    x, y = xy
    l, t, r, b = draw.textbbox((x + pad, y + pad), text, font=f)
    if box is not None:
        draw.rectangle([x, y, r + pad, b + pad], fill=tuple(box))
    draw.text((x + pad, y + pad), text, fill=tuple(color), font=f)
    return np.asarray(pil).copy()


def resize(image: np.ndarray, width: int, height: int, nearest: bool = False) -> np.ndarray:
    """Resize ``(H, W, 3) uint8`` to ``(height, width, 3)`` (bilinear, or nearest for label maps)."""
    check_image(image)
    if width <= 0 or height <= 0:
        raise ValueError(f"resize: size must be positive, got {width}x{height}")
    if image.shape[:2] == (height, width):
        return image.copy()
    im = Image.fromarray(image).resize((width, height), Image.NEAREST if nearest else Image.BILINEAR)
    return np.asarray(im).copy()


def fit_width(image: np.ndarray, width: int, nearest: bool = False) -> np.ndarray:
    """Resize keeping the aspect ratio so that the width is ``width``."""
    check_image(image)
    h, w = image.shape[:2]
    return resize(image, width, max(1, round(h * width / w)), nearest=nearest)


def pad_to(image: np.ndarray, height: int, width: int, color: Sequence[int] = BACKGROUND) -> np.ndarray:
    """Centre ``image`` on a ``(height, width)`` canvas of ``color`` (cropping nothing)."""
    check_image(image)
    h, w = image.shape[:2]
    if h > height or w > width:
        raise ValueError(f"pad_to: image {h}x{w} is larger than the canvas {height}x{width}")
    out = np.empty((height, width, 3), np.uint8)
    out[:] = np.asarray(color, np.uint8)
    top, left = (height - h) // 2, (width - w) // 2
    out[top : top + h, left : left + w] = image
    return out


def _stack(images: Sequence[np.ndarray], gap: int, color: Sequence[int], axis: int, what: str) -> np.ndarray:
    """Concatenate ``images`` along ``axis`` (1: side by side, 0: one above the other), each
    centred across it on a canvas of the largest size, ``gap`` pixels of ``color`` apart."""
    if not images:
        raise ValueError(f"{what}: no images")
    across = max(im.shape[1 - axis] for im in images)
    parts: list[np.ndarray] = []
    for i, im in enumerate(images):
        size = [across, across]
        if i and gap:
            size[axis] = gap
            parts.append(np.broadcast_to(np.asarray(color, np.uint8), (*size, 3)))
        size[axis] = im.shape[axis]
        parts.append(pad_to(im, size[0], size[1], color))
    return np.concatenate(parts, axis=axis)


def hstack(images: Sequence[np.ndarray], gap: int = 0, color: Sequence[int] = BACKGROUND) -> np.ndarray:
    """Place images side by side (vertically centred), ``gap`` pixels apart."""
    return _stack(images, gap, color, 1, "hstack")


def vstack(images: Sequence[np.ndarray], gap: int = 0, color: Sequence[int] = BACKGROUND) -> np.ndarray:
    """Place images one above the other (horizontally centred), ``gap`` pixels apart."""
    return _stack(images, gap, color, 0, "vstack")


def title_lines(title: str, width: int, size: int = 16) -> list[str]:
    """The lines :func:`titled` draws ``title`` on above an image ``width`` pixels wide."""
    return wrap_text(title, width - 8, size)


def titled(
    image: np.ndarray, title: str, size: int = 16, color: Sequence[int] = BACKGROUND, min_lines: int = 1
) -> np.ndarray:
    """``image`` with a title strip above it: the title wrapped onto as many lines as it needs
    (at least ``min_lines``, so that panels side by side can share one strip height)."""
    check_image(image)
    lines = title_lines(title, image.shape[1], size)
    th = text_size("Ag", size)[1] + 4  # one line's height, the same for every text
    strip = np.empty((th * max(len(lines), min_lines) + 8, image.shape[1], 3), np.uint8)
    strip[:] = np.asarray(color, np.uint8)
    for i, line in enumerate(lines):
        strip = put_text(strip, line, (2, 2 + i * th), size=size, box=None)
    return np.concatenate([strip, image], axis=0)


def legend(
    names: Sequence[str],
    palette: Sequence[Sequence[int]],
    width: int,
    size: int = 13,
    present: Sequence[bool] | None = None,
    color: Sequence[int] = BACKGROUND,
    extras: Sequence[tuple[str, Sequence[int]]] = (),
) -> np.ndarray:
    """A class legend: a colour swatch and ``"<id> <name>"`` per class, wrapped to ``width``,
    then the ``extras`` (``(label, colour)`` entries without an id, e.g. empty cells).

    Args:
        names: class names, index = class id.
        palette: ``(C, 3)`` colours.
        present: optional per-class flags; absent classes are drawn dimmed.
    Returns:
        ``(H, width, 3) uint8``.
    """
    if len(palette) < len(names):
        raise ValueError(f"legend: palette has {len(palette)} colours for {len(names)} names")
    labels = [f"{i} {n}" for i, n in enumerate(names)] + [label for label, _ in extras]
    palette = [tuple(p) for p in palette[: len(names)]] + [tuple(c) for _, c in extras]
    if present is not None:
        present = list(present) + [True] * len(extras)
    sw = size  # swatch side
    cell = max(text_size(s, size)[0] for s in labels) + sw + 18
    per_row = max(1, width // cell)
    rows = -(-len(labels) // per_row)
    row_h = sw + 10
    pil = Image.new("RGB", (width, rows * row_h + 8), tuple(color))
    draw = ImageDraw.Draw(pil)
    f = font(size)
    for i, s in enumerate(labels):
        r, c = divmod(i, per_row)
        x, y = 6 + c * cell, 4 + r * row_h
        dim = present is not None and not present[i]
        fill = tuple(int(v) for v in palette[i])
        draw.rectangle([x, y + 2, x + sw, y + 2 + sw], fill=fill, outline=(90, 90, 90) if dim else (255, 255, 255))
        draw.text((x + sw + 5, y + 1), s, fill=(110, 110, 110) if dim else (235, 235, 235), font=f)
    return np.asarray(pil).copy()


def save_png(path: str | os.PathLike, image: np.ndarray, optimize: bool = True) -> Path:
    """Write ``(H, W, 3) uint8`` as a PNG atomically (temporary file, then rename)."""
    check_image(image)
    pil = Image.fromarray(image)
    return atomic_write(path, lambda f: pil.save(f, format="PNG", optimize=optimize))


def readable(v: float) -> str:
    """A figure rounded for reading in a picture: three significant digits, whole numbers from 100
    on (35.9263 -> '35.9', 0.51234 -> '0.512', 1234.5 -> '1234')."""
    v = float(v)
    if not np.isfinite(v):
        return str(v)
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.3g}"


def colorbar(
    vmin: float,
    vmax: float,
    width: int = 160,
    height: int = 10,
    unit: str = "m",
    size: int = 12,
    color: Sequence[int] = BACKGROUND,
) -> np.ndarray:
    """A horizontal bar of :func:`colormap` from ``vmin`` to ``vmax`` with its end values written
    either side: ``(h, w, 3) uint8``."""
    bar = colormap(np.broadcast_to(np.linspace(vmin, vmax, width), (height, width)), vmin, vmax)
    lo, hi = f"{readable(vmin)} {unit}", f"{readable(vmax)} {unit}"
    left = put_text(
        np.full((height + 8, text_size(lo, size)[0] + 10, 3), color, np.uint8), lo, (0, 0), size=size, box=None, pad=2
    )
    right = put_text(
        np.full((height + 8, text_size(hi, size)[0] + 10, 3), color, np.uint8), hi, (2, 0), size=size, box=None, pad=2
    )
    return hstack([left, bar, right], gap=2, color=color)
