"""Curves of a figure against the step, several arms and seeds in one picture (``occkit ablate``'s ``curves.png``):
pure PIL, no plotting library."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from occkit.viz.draw import font, text_size

#: One colour per arm: matplotlib's tab10, then seven darker or stronger ones that none of tab10's is
#: near, so a spec of up to 17 arms (RadOcc's has 11) never draws two arms alike; more arms cycle.
ARM_COLOURS = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
    (0, 0, 0),
    (0, 0, 128),
    (128, 0, 0),
    (110, 110, 0),
    (0, 110, 110),
    (90, 0, 160),
    (255, 0, 255),
]
#: One marker and dash pattern per seed (cycled).
SEED_STYLES = [
    ("circle", None),
    ("square", (8, 5)),
    ("triangle", (2, 4)),
    ("diamond", (12, 4, 2, 4)),
    ("cross", (4, 4)),
]


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering ``[lo, hi]``."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        hi = lo + (abs(lo) * 0.1 or 1.0)
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    t = start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    if ticks[-1] < hi:
        ticks.append(round(t, 12))
    return ticks


def _tick_text(v: float, step: float) -> str:
    if step >= 1 and float(v).is_integer():
        return f"{int(v)}"
    digits = max(0, -math.floor(math.log10(step)) + (1 if step * 10 ** -math.floor(math.log10(step)) == 2.5 else 0))
    return f"{v:.{min(digits, 6)}f}"


def _marker(draw: Any, x: float, y: float, kind: str, colour: tuple[int, int, int], r: int = 4) -> None:
    if kind == "circle":
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
    elif kind == "square":
        draw.rectangle([x - r, y - r, x + r, y + r], fill=colour)
    elif kind == "triangle":
        draw.polygon([(x, y - r - 1), (x - r - 1, y + r), (x + r + 1, y + r)], fill=colour)
    elif kind == "diamond":
        draw.polygon([(x, y - r - 1), (x + r + 1, y), (x, y + r + 1), (x - r - 1, y)], fill=colour)
    else:
        draw.line([x - r, y - r, x + r, y + r], fill=colour, width=2)
        draw.line([x - r, y + r, x + r, y - r], fill=colour, width=2)


def _polyline(
    draw: Any,
    pts: list[tuple[float, float]],
    colour: tuple[int, int, int],
    dash: tuple[int, ...] | None,
    width: int = 2,
) -> None:
    if dash is None:
        if len(pts) > 1:
            draw.line(pts, fill=colour, width=width, joint="curve")
        return
    pattern, k, left, on = list(dash), 0, float(dash[0]), True
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        seg = math.hypot(x1 - x0, y1 - y0)
        pos = 0.0
        while pos < seg:
            step = min(left, seg - pos)
            if on:
                a, b = pos / seg, (pos + step) / seg
                draw.line(
                    [(x0 + (x1 - x0) * a, y0 + (y1 - y0) * a), (x0 + (x1 - x0) * b, y0 + (y1 - y0) * b)],
                    fill=colour,
                    width=width,
                )
            pos += step
            left -= step
            if left <= 1e-9:
                k = (k + 1) % len(pattern)
                left, on = float(pattern[k]), not on


def curves_image(
    title: str,
    y_label: str,
    x_max: float,
    arms: Mapping[str, Mapping[str, Sequence[Sequence[float]]]],
    seeds: Sequence[Any],
    x_label: str = "optimiser step",
    width: int = 960,
    height: int = 560,
) -> np.ndarray:
    """``(H, W, 3) uint8``: curves of ``(x, y)`` points, ``arms[arm][seed]``, one colour per arm and one marker and
    dash pattern per seed (by the seed's place among its arm's), with axes from 0 to at least ``x_max``, ticks,
    labels, ``title`` above and a legend of the arms and of ``seeds``. Empty curves are left out."""
    from PIL import Image, ImageDraw

    series = []
    arm_names = list(arms)
    for i, (name, curves) in enumerate(arms.items()):
        for j, (seed, curve) in enumerate(curves.items()):
            if curve:
                series.append((name, seed, ARM_COLOURS[i % len(ARM_COLOURS)], SEED_STYLES[j % len(SEED_STYLES)], curve))
    img = Image.new("RGB", (width, height), (255, 255, 255))
    d = ImageDraw.Draw(img)
    f, fs, ft = font(13), font(12), font(16)
    legend_w = max([text_size(n, 13)[0] for n in arm_names] + [text_size("seed 0000", 13)[0]]) + 60
    left, right, top, bottom = 78, width - legend_w - 20, 44, height - 56
    d.text((left, 12), title, fill=(0, 0, 0), font=ft)
    xs = [p[0] for s in series for p in s[4]]
    ys = [p[1] for s in series for p in s[4]]
    xt = nice_ticks(0, max([x_max, *xs]))
    yt = nice_ticks(min(ys), max(ys)) if ys else [0.0, 1.0]
    x0, x1, y0, y1 = xt[0], xt[-1], yt[0], yt[-1]

    def px(x: float, y: float) -> tuple[float, float]:
        return (left + (x - x0) / (x1 - x0) * (right - left), bottom - (y - y0) / (y1 - y0 or 1) * (bottom - top))

    for t in yt:
        _, y = px(x0, t)
        d.line([left, y, right, y], fill=(230, 230, 230))
        label = _tick_text(t, yt[1] - yt[0] if len(yt) > 1 else 1.0)
        w, h = text_size(label, 12)
        d.text((left - w - 8, y - h / 2 - 2), label, fill=(40, 40, 40), font=fs)
    for t in xt:
        x, _ = px(t, y0)
        d.line([x, top, x, bottom], fill=(240, 240, 240))
        d.line([x, bottom, x, bottom + 5], fill=(0, 0, 0))
        label = _tick_text(t, xt[1] - xt[0] if len(xt) > 1 else 1.0)
        w, _ = text_size(label, 12)
        d.text((x - w / 2, bottom + 8), label, fill=(40, 40, 40), font=fs)
    d.rectangle([left, top, right, bottom], outline=(0, 0, 0))
    d.text(((left + right) / 2 - text_size(x_label, 13)[0] / 2, bottom + 28), x_label, fill=(0, 0, 0), font=f)
    yl_w, yl_h = text_size(y_label, 13)
    yl = Image.new("RGB", (yl_w + 4, yl_h + 6), (255, 255, 255))
    ImageDraw.Draw(yl).text((2, 0), y_label, fill=(0, 0, 0), font=f)
    yl = yl.rotate(90, expand=True)
    img.paste(yl, (10, int((top + bottom) / 2 - yl.size[1] / 2)))
    if not series:
        msg = "no validations yet"
        d.text(((left + right) / 2 - text_size(msg, 13)[0] / 2, (top + bottom) / 2), msg, fill=(120, 120, 120), font=f)
    for name, seed, colour, (marker, dash), curve in series:
        pts = [px(x, y) for x, y in curve]
        _polyline(d, pts, colour, dash)
        for x, y in pts:
            _marker(d, x, y, marker, colour)
    # legend: arms by colour, then seeds by marker and dash
    lx, ly = right + 20, top
    d.text((lx, ly), "arms", fill=(0, 0, 0), font=f)
    ly += 20
    for i, name in enumerate(arm_names):
        colour = ARM_COLOURS[i % len(ARM_COLOURS)]
        d.line([lx, ly + 8, lx + 28, ly + 8], fill=colour, width=3)
        d.text((lx + 36, ly), name, fill=(0, 0, 0), font=f)
        ly += 20
    ly += 10
    d.text((lx, ly), "seeds", fill=(0, 0, 0), font=f)
    ly += 20
    for j, seed in enumerate(seeds):
        marker, dash = SEED_STYLES[j % len(SEED_STYLES)]
        _polyline(d, [(lx, ly + 8), (lx + 28, ly + 8)], (60, 60, 60), dash)
        _marker(d, lx + 14, ly + 8, marker, (60, 60, 60))
        d.text((lx + 36, ly), f"seed {seed}", fill=(0, 0, 0), font=f)
        ly += 20
    return np.asarray(img).copy()
