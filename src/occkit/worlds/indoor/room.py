"""Rooms of the indoor world: walls, floor, ceiling, windows, a door, furniture placed by simple
rules, small objects on surfaces, and camera views; all as the driving world's analytic
:class:`~occkit.worlds.driving.primitives.Primitives` (classes are NYUv2's, :data:`~occkit.labels.NYU_CLASSES`).

The room frame has z up, the floor's top at z = 0 and the interior ``[0, Lx] x [0, Ly]``; an
L-shaped room has the corner ``[Lx - a, Lx] x [Ly - b, Ly]`` walled off (a solid block). Walls,
floor and ceiling are boxes ``WALL`` metres thick outside the interior.

Layout rules: beds, sofas, wardrobes, shelves, dressers, desks and TV stands stand with their back
against a wall (never across a window or the door); nightstands beside a bed's head; a coffee
table in front of a sofa; chairs around a table or at a desk, facing it; a TV on its stand, a
monitor on a desk; small objects on the tops of tables, desks, dressers, nightstands, stands and
shelves; pictures on walls; a lamp under the ceiling. Footprints never overlap (a 5 cm map of the
floor), and the cameras stand in free floor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from occkit.worlds.driving.primitives import BOX, CYLINDER, ELLIPSOID, Primitives
from occkit.worlds.indoor.config import IndoorConfig, room_seed

CEILING, FLOOR, WALL_C, WINDOW, CHAIR, BED, SOFA, TABLE, TVS, FURNITURE, OBJECTS = range(1, 12)
WALL = 0.12
"""Thickness of walls, floor and ceiling (metres)."""
CELL = 0.05
"""Cell of the floor map that keeps footprints apart (metres)."""

#: Texture ids the indoor shader knows.
TEX_PLAIN, TEX_WOOD, TEX_FABRIC, TEX_GLASS, TEX_SCREEN, TEX_TILES, TEX_PAINT = range(7)

ROOM_TYPES = ("bedroom", "living room", "dining room", "office")


@dataclass
class Room:
    """One room: its primitives (room frame), size, objects, views and description."""

    index: int
    kind: str
    size: tuple[float, float, float]
    """(Lx, Ly, ceiling height) metres."""
    block: tuple[float, float] | None
    """(a, b): the walled-off corner of an L-shaped room, None for a rectangle."""
    prims: Primitives
    objects: list[dict[str, Any]]
    """One record per instance: instance, class_id, name, center, size (room frame)."""
    views: list[torch.Tensor]
    """``(4, 4)`` float64 camera (OpenCV) -> room frame, one per frame."""
    description: str
    lights: list[tuple[float, float, float]] = field(default_factory=list)


class _Builder:
    """Collects primitives, instances and the floor map while a room is laid out."""

    def __init__(self, rng: np.random.Generator, Lx: float, Ly: float, H: float) -> None:
        self.rng, self.Lx, self.Ly, self.H = rng, Lx, Ly, H
        self.rows: list[tuple] = []
        self.objects: list[dict[str, Any]] = []
        self.nx, self.ny = int(math.ceil(Lx / CELL)), int(math.ceil(Ly / CELL))
        self.free = np.ones((self.nx, self.ny), dtype=bool)
        self.surfaces: list[tuple[float, float, float, float, float]] = []  # x0, x1, y0, y1, z (room)
        self.next_instance = 1

    # ------------------------------------------------------------------ primitives
    def add(self, kind, center, half, yaw, cls, color, tex, instance=0) -> None:
        self.rows.append(
            (kind, tuple(map(float, center)), tuple(map(float, half)), float(yaw), cls, instance, tuple(color), tex)
        )

    def new_instance(self, cls: int, name: str, center, size) -> int:
        i = self.next_instance
        self.next_instance += 1
        self.objects.append(
            {
                "instance": i,
                "class_id": cls,
                "name": name,
                "center": [round(float(c), 4) for c in center],
                "size": [round(float(s), 4) for s in size],
            }
        )
        return i

    # ------------------------------------------------------------------ floor map
    def _cells(self, x0, x1, y0, y1):
        i0, i1 = max(int(math.floor(x0 / CELL)), 0), min(int(math.ceil(x1 / CELL)), self.nx)
        j0, j1 = max(int(math.floor(y0 / CELL)), 0), min(int(math.ceil(y1 / CELL)), self.ny)
        return i0, i1, j0, j1

    def is_free(self, x0, x1, y0, y1) -> bool:
        if x0 < -1e-6 or y0 < -1e-6 or x1 > self.Lx + 1e-6 or y1 > self.Ly + 1e-6:
            return False
        i0, i1, j0, j1 = self._cells(x0 + 1e-6, x1 - 1e-6, y0 + 1e-6, y1 - 1e-6)
        return bool(self.free[i0:i1, j0:j1].all())

    def take(self, x0, x1, y0, y1) -> None:
        i0, i1, j0, j1 = self._cells(x0, x1, y0, y1)
        self.free[i0:i1, j0:j1] = False


def _color(
    rng: np.random.Generator, base: tuple[float, float, float], spread: float = 0.08
) -> tuple[float, float, float]:
    return tuple(float(np.clip(b + rng.uniform(-spread, spread), 0.03, 0.97)) for b in base)  # type: ignore[return-value]


WOODS = ((0.55, 0.38, 0.22), (0.72, 0.56, 0.38), (0.35, 0.22, 0.13), (0.82, 0.72, 0.56))
FABRICS = ((0.45, 0.5, 0.6), (0.62, 0.3, 0.28), (0.3, 0.42, 0.3), (0.75, 0.7, 0.62), (0.25, 0.25, 0.3))
PAINTS = ((0.9, 0.88, 0.82), (0.82, 0.86, 0.88), (0.88, 0.82, 0.74), (0.78, 0.84, 0.76), (0.93, 0.93, 0.93))
SMALL_COLORS = (
    (0.85, 0.2, 0.15),
    (0.2, 0.45, 0.8),
    (0.95, 0.8, 0.2),
    (0.2, 0.65, 0.35),
    (0.9, 0.9, 0.88),
    (0.5, 0.3, 0.6),
)

# ---------------------------------------------------------------------------------- pieces
# A piece is laid out in its own frame: x along the wall (width w), y away from the wall (depth d,
# the back at y = -d/2), z up from the floor. ``parts`` rows: (kind, centre, half, cls, colour, texture).


def _part(kind, cx, cy, cz, hx, hy, hz, cls, color, tex=TEX_PLAIN):
    return (kind, (cx, cy, cz), (hx, hy, hz), cls, color, tex)


def piece_bed(rng, w, d):
    wood, cloth = _color(rng, WOODS[rng.integers(len(WOODS))]), _color(rng, FABRICS[rng.integers(len(FABRICS))])
    hb = rng.uniform(0.28, 0.42)
    parts = [
        _part(BOX, 0, 0, hb / 2, w / 2, d / 2, hb / 2, BED, wood, TEX_WOOD),
        _part(BOX, 0, 0.02, hb + 0.1, w / 2 - 0.03, d / 2 - 0.04, 0.1, BED, cloth, TEX_FABRIC),
        _part(BOX, 0, -d / 2 + 0.04, 0.5, w / 2, 0.04, 0.5, BED, wood, TEX_WOOD),
    ]
    pillows = [
        _part(ELLIPSOID, s * w / 4, -d / 2 + 0.25, hb + 0.25, w / 4 - 0.06, 0.15, 0.07, OBJECTS, (0.92, 0.92, 0.9))
        for s in (-1, 1)
    ]
    return parts, pillows, None


def piece_box(rng, w, d, h, cls, palette=WOODS, tex=TEX_WOOD):
    c = _color(rng, palette[rng.integers(len(palette))])
    return [_part(BOX, 0, 0, h / 2, w / 2, d / 2, h / 2, cls, c, tex)], [], (w, d, h)


def piece_shelf(rng, w, d, h):
    c = _color(rng, WOODS[rng.integers(len(WOODS))])
    t = 0.025
    parts = [
        _part(BOX, -w / 2 + t, 0, h / 2, t, d / 2, h / 2, FURNITURE, c, TEX_WOOD),
        _part(BOX, w / 2 - t, 0, h / 2, t, d / 2, h / 2, FURNITURE, c, TEX_WOOD),
        _part(BOX, 0, -d / 2 + t / 2, h / 2, w / 2, t / 2, h / 2, FURNITURE, c, TEX_WOOD),
    ]
    n = int(rng.integers(3, 6))
    books = []
    for k in range(n + 1):
        z = k * (h - t) / n + t / 2
        parts.append(_part(BOX, 0, 0, z, w / 2 - 2 * t, d / 2, t / 2, FURNITURE, c, TEX_WOOD))
        if 0 < k < n or k == 0:
            x = -w / 2 + 2 * t + 0.01
            gap = (h - t) / n - t - 0.03
            while k < n and x < w / 2 - 2 * t - 0.06:
                bw = float(rng.uniform(0.02, 0.05))
                if rng.random() < 0.8:
                    bh = float(rng.uniform(0.5, 0.95)) * gap
                    books.append(
                        _part(
                            BOX,
                            x + bw / 2,
                            -0.02,
                            z + t / 2 + bh / 2,
                            bw / 2,
                            d / 2 - 0.04,
                            bh / 2,
                            OBJECTS,
                            _color(rng, SMALL_COLORS[rng.integers(len(SMALL_COLORS))], 0.15),
                        )
                    )
                x += bw + 0.003
    return parts, books, None


def piece_sofa(rng, w, d):
    c = _color(rng, FABRICS[rng.integers(len(FABRICS))])
    seat = rng.uniform(0.4, 0.46)
    arm = 0.15
    parts = [
        _part(BOX, 0, 0.05, seat / 2, w / 2 - arm, d / 2 - 0.05, seat / 2, SOFA, c, TEX_FABRIC),
        _part(BOX, 0, -d / 2 + 0.1, 0.42, w / 2, 0.1, 0.42, SOFA, c, TEX_FABRIC),
        _part(BOX, -w / 2 + arm / 2, 0, 0.31, arm / 2, d / 2, 0.31, SOFA, c, TEX_FABRIC),
        _part(BOX, w / 2 - arm / 2, 0, 0.31, arm / 2, d / 2, 0.31, SOFA, c, TEX_FABRIC),
    ]
    return parts, [], None


def piece_table(rng, w, d, h, cls=TABLE):
    c = _color(rng, WOODS[rng.integers(len(WOODS))])
    top = 0.035
    leg = 0.03
    parts = [_part(BOX, 0, 0, h - top / 2, w / 2, d / 2, top / 2, cls, c, TEX_WOOD)]
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append(
                _part(
                    BOX,
                    sx * (w / 2 - leg - 0.02),
                    sy * (d / 2 - leg - 0.02),
                    (h - top) / 2,
                    leg,
                    leg,
                    (h - top) / 2,
                    cls,
                    c,
                    TEX_WOOD,
                )
            )
    return parts, [], (w, d, h)


def piece_chair(rng, color=None):
    c = color if color is not None else _color(rng, WOODS[rng.integers(len(WOODS))])
    s = float(rng.uniform(0.2, 0.24))
    h = float(rng.uniform(0.43, 0.48))
    parts = [
        _part(BOX, 0, 0, h, s, s, 0.025, CHAIR, c, TEX_WOOD),
        _part(BOX, 0, -s + 0.02, h + 0.25, s, 0.02, 0.23, CHAIR, c, TEX_WOOD),
    ]
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append(
                _part(
                    CYLINDER,
                    sx * (s - 0.03),
                    sy * (s - 0.03),
                    (h - 0.025) / 2,
                    0.018,
                    0.018,
                    (h - 0.025) / 2,
                    CHAIR,
                    c,
                    TEX_WOOD,
                )
            )
    return parts, 2 * s


def piece_tv(rng, w):
    h = w * 0.58
    dark = (0.05, 0.05, 0.06)
    return [
        _part(BOX, 0, 0, 0.02, 0.12, 0.08, 0.02, TVS, dark),
        _part(BOX, 0, 0, 0.1, 0.03, 0.02, 0.08, TVS, dark),
        _part(BOX, 0, 0, 0.16 + h / 2, w / 2, 0.03, h / 2, TVS, dark, TEX_SCREEN),
    ]


def small_object(rng, x, y, z, room_yaw=0.0):
    """Parts of one small object standing on a surface at (x, y, z); returns (parts, name, size)."""
    col = _color(rng, SMALL_COLORS[rng.integers(len(SMALL_COLORS))], 0.15)
    k = int(rng.integers(6))
    if k == 0:
        r, h = rng.uniform(0.03, 0.05), rng.uniform(0.08, 0.12)
        return [_part(CYLINDER, x, y, z + h / 2, r, r, h / 2, OBJECTS, col)], "cup", (2 * r, 2 * r, h)
    if k == 1:
        r, h = rng.uniform(0.05, 0.09), rng.uniform(0.18, 0.35)
        return [_part(CYLINDER, x, y, z + h / 2, r, r, h / 2, OBJECTS, col)], "vase", (2 * r, 2 * r, h)
    if k == 2:
        a, b, c = rng.uniform(0.08, 0.2), rng.uniform(0.08, 0.2), rng.uniform(0.05, 0.2)
        return [_part(BOX, x, y, z + c / 2, a / 2, b / 2, c / 2, OBJECTS, col)], "box", (a, b, c)
    if k == 3:
        r = rng.uniform(0.05, 0.11)
        return [_part(ELLIPSOID, x, y, z + r * 0.6, r, r, r * 0.6, OBJECTS, col)], "bowl", (2 * r, 2 * r, 1.2 * r)
    if k == 4:
        r, h = rng.uniform(0.05, 0.08), rng.uniform(0.3, 0.45)
        shade = (0.95, 0.9, 0.75)
        return (
            [
                _part(CYLINDER, x, y, z + 0.015, r, r, 0.015, OBJECTS, (0.2, 0.2, 0.2)),
                _part(CYLINDER, x, y, z + h / 2, 0.012, 0.012, h / 2, OBJECTS, (0.2, 0.2, 0.2)),
                _part(CYLINDER, x, y, z + h, 1.8 * r, 1.8 * r, 0.08, OBJECTS, shade),
            ],
            "lamp",
            (3.6 * r, 3.6 * r, h + 0.08),
        )
    a, b = rng.uniform(0.15, 0.3), rng.uniform(0.1, 0.22)
    return [_part(BOX, x, y, z + 0.015, a / 2, b / 2, 0.015, OBJECTS, col)], "book", (a, b, 0.03)


# ---------------------------------------------------------------------------------- room
def _yaw_for_normal(n: tuple[int, int]) -> float:
    return {(0, 1): 0.0, (1, 0): -math.pi / 2, (0, -1): math.pi, (-1, 0): math.pi / 2}[n]


def _rot(yaw: float, x: float, y: float) -> tuple[float, float]:
    c, s = math.cos(yaw), math.sin(yaw)
    return c * x - s * y, s * x + c * y


def _emit(b: _Builder, parts, px: float, py: float, yaw: float, instance: int) -> None:
    for kind, (cx, cy, cz), half, cls, color, tex in parts:
        dx, dy = _rot(yaw, cx, cy)
        b.add(kind, (px + dx, py + dy, cz), half, yaw, cls, color, tex, instance)


def _wall_segments(Lx: float, Ly: float, block: tuple[float, float] | None):
    """Wall segments ``(axis, position, lo, hi, inward normal)``: axis 0 = a wall at x = position
    spanning y in [lo, hi]; axis 1 = at y = position spanning x."""
    if block is None:
        return [
            (0, 0.0, 0.0, Ly, (1, 0)),
            (0, Lx, 0.0, Ly, (-1, 0)),
            (1, 0.0, 0.0, Lx, (0, 1)),
            (1, Ly, 0.0, Lx, (0, -1)),
        ]
    a, bb = block
    return [
        (0, 0.0, 0.0, Ly, (1, 0)),
        (1, 0.0, 0.0, Lx, (0, 1)),
        (0, Lx, 0.0, Ly - bb, (-1, 0)),
        (1, Ly, 0.0, Lx - a, (0, -1)),
        (0, Lx - a, Ly - bb, Ly, (-1, 0)),
        (1, Ly - bb, Lx - a, Lx, (0, -1)),
    ]


def _against_wall(b: _Builder, seg, w: float, d: float, margin: float = 0.02, tries: int = 30, at: float | None = None):
    """A free spot for a ``w x d`` footprint with its back on wall segment ``seg``: (x, y, yaw, rect) or None."""
    axis, pos, lo, hi, n = seg
    if hi - lo < w + 2 * margin:
        return None
    yaw = _yaw_for_normal(n)
    for _ in range(tries):
        s = at if at is not None else float(b.rng.uniform(lo + w / 2 + margin, hi - w / 2 - margin))
        off = pos + (d / 2 + margin) * (n[0] if axis == 0 else n[1])
        x, y = (off, s) if axis == 0 else (s, off)
        hw, hd = (d / 2, w / 2) if axis == 0 else (w / 2, d / 2)
        rect = (x - hw, x + hw, y - hd, y + hd)
        if b.is_free(*rect):
            return x, y, yaw, rect
        if at is not None:
            return None
    return None


def _place_piece(b: _Builder, parts, extras, top, x, y, yaw, rect, cls, name) -> int:
    w, d = rect[1] - rect[0], rect[3] - rect[2]
    h = max(p[1][2] + p[2][2] for p in parts)
    inst = b.new_instance(cls, name, (x, y, h / 2), (w, d, h))
    _emit(b, parts, x, y, yaw, inst)
    for e in extras:  # pillows, books: their own instances
        ex, ey = _rot(yaw, e[1][0], e[1][1])
        ei = b.new_instance(
            e[3], "pillow" if e[0] == ELLIPSOID else "book", (x + ex, y + ey, e[1][2]), [2 * v for v in e[2]]
        )
        _emit(b, [e], x, y, yaw, ei)
    b.take(*rect)
    if top is not None:
        b.surfaces.append((rect[0] + 0.05, rect[1] - 0.05, rect[2] + 0.05, rect[3] - 0.05, top[2]))
    return inst


def _chairs_around(b: _Builder, tx: float, ty: float, tw: float, td: float, n: int, color) -> int:
    """Up to ``n`` chairs facing a table at (tx, ty) of size tw x td (room axes); returns how many."""
    spots = []
    for side in ((0, -1), (0, 1), (-1, 0), (1, 0)):
        if side[0] == 0:
            k = max(1, int(tw // 0.6))
            for i in range(k):
                spots.append((tx - tw / 2 + (i + 0.5) * tw / k, ty + side[1] * (td / 2 + 0.2), side))
        else:
            spots.append((tx + side[0] * (tw / 2 + 0.2), ty, side))
    order = b.rng.permutation(len(spots))
    placed = 0
    for k in order:
        if placed >= n:
            break
        x, y, side = spots[k]
        parts, size = piece_chair(b.rng, color)
        yaw = _yaw_for_normal((-side[0], -side[1]))  # the chair's front (+y) faces the table
        rect = (x - size / 2, x + size / 2, y - size / 2, y + size / 2)
        if not b.is_free(rect[0] + 0.05, rect[1] - 0.05, rect[2] + 0.05, rect[3] - 0.05):  # may tuck under the table
            continue
        inst = b.new_instance(CHAIR, "chair", (x, y, 0.45), (size, size, 0.95))
        _emit(b, parts, x, y, yaw, inst)
        b.take(*rect)
        placed += 1
    return placed


def build_room(config: IndoorConfig, room_index: int) -> Room:
    """Room ``room_index`` of the world (deterministic in ``(config.seed, room_index)``): its kind and
    size, then in this order (one random stream, so the order is part of the output) the shell
    (:func:`_build_shell`), a door and windows (:func:`_choose_openings`, :func:`_cut_opening`), the
    furniture of its kind (:data:`FURNISH`) and maybe a spare chair (:func:`_spare_chair`), small
    objects (:func:`_objects_on_surfaces`, :func:`_objects_on_floor`), pictures (:func:`_pictures`),
    the ceiling lamp (:func:`_ceiling_lamp`), the cameras (:func:`camera_views`) and the description
    (:func:`_describe`)."""
    rng = np.random.default_rng(room_seed(config.seed, room_index))
    kind = ROOM_TYPES[int(rng.integers(len(ROOM_TYPES)))]
    Lx = round(float(rng.uniform(3.2, 5.6)), 2)
    Ly = round(float(rng.uniform(3.2, 5.6)), 2)
    H = round(float(rng.uniform(2.45, 2.75)), 2)
    block = None
    if rng.random() < 0.3 and min(Lx, Ly) > 3.6:
        block = (round(float(rng.uniform(0.9, 1.5)), 2), round(float(rng.uniform(0.9, 1.5)), 2))
    b = _Builder(rng, Lx, Ly, H)
    _build_shell(b, block)
    segs = _wall_segments(Lx, Ly, block)
    openings = _choose_openings(rng, segs)
    for opening in openings:
        _cut_opening(b, opening)
    f = _Furnisher(b, segs)
    FURNISH.get(kind, _furnish_office)(f)
    _spare_chair(f)
    n_obj = _objects_on_surfaces(b) + _objects_on_floor(b) + _pictures(b, segs, openings)
    light = _ceiling_lamp(b, block)
    prims = _to_prims(b.rows)
    views = camera_views(b, config.frames, block)
    return Room(
        index=room_index,
        kind=kind,
        size=(Lx, Ly, H),
        block=block,
        prims=prims,
        objects=b.objects,
        views=views,
        description=_describe(kind, (Lx, Ly, H), block, f.counts, openings, n_obj),
        lights=[light],
    )


# ---------------------------------------------------------------------------------- the shell


def _build_shell(b: _Builder, block: tuple[float, float] | None) -> None:
    """Floor, ceiling and the four walls (instance 0), the paint and floor drawn at random; an
    L-shaped room's corner block, its floor taken."""
    rng, Lx, Ly, H = b.rng, b.Lx, b.Ly, b.H
    paint = _color(rng, PAINTS[rng.integers(len(PAINTS))], 0.03)
    floor_col = _color(rng, WOODS[rng.integers(len(WOODS))] if rng.random() < 0.6 else (0.7, 0.7, 0.68), 0.05)
    floor_tex = TEX_WOOD if rng.random() < 0.6 else TEX_TILES
    b.add(BOX, (Lx / 2, Ly / 2, -WALL / 2), (Lx / 2 + WALL, Ly / 2 + WALL, WALL / 2), 0, FLOOR, floor_col, floor_tex)
    b.add(
        BOX,
        (Lx / 2, Ly / 2, H + WALL / 2),
        (Lx / 2 + WALL, Ly / 2 + WALL, WALL / 2),
        0,
        CEILING,
        (0.95, 0.95, 0.94),
        TEX_PAINT,
    )
    zc, hz = H / 2, H / 2 + WALL
    b.add(BOX, (-WALL / 2, Ly / 2, zc), (WALL / 2, Ly / 2 + WALL, hz), 0, WALL_C, paint, TEX_PAINT)
    b.add(BOX, (Lx + WALL / 2, Ly / 2, zc), (WALL / 2, Ly / 2 + WALL, hz), 0, WALL_C, paint, TEX_PAINT)
    b.add(BOX, (Lx / 2, -WALL / 2, zc), (Lx / 2 + WALL, WALL / 2, hz), 0, WALL_C, paint, TEX_PAINT)
    b.add(BOX, (Lx / 2, Ly + WALL / 2, zc), (Lx / 2 + WALL, WALL / 2, hz), 0, WALL_C, paint, TEX_PAINT)
    if block is not None:
        a, bb = block
        b.add(BOX, (Lx - a / 2, Ly - bb / 2, zc), (a / 2, bb / 2, hz), 0, WALL_C, paint, TEX_PAINT)
        b.take(Lx - a - 0.01, Lx, Ly - bb - 0.01, Ly)


#: An opening: ``(what, wall segment, position along it, width)``, ``what`` ``"door"`` or ``"window"``.
Opening = tuple[str, tuple, float, float]


def _choose_openings(rng: np.random.Generator, segs: list) -> list[Opening]:
    """One door (where a stretch of wall is wide enough) and 1-3 windows, on distinct stretches of wall."""
    door_seg = segs[int(rng.integers(len(segs)))]
    openings: list[Opening] = []
    dw = 0.9
    if door_seg[3] - door_seg[2] > dw + 0.4:
        s = float(rng.uniform(door_seg[2] + dw / 2 + 0.15, door_seg[3] - dw / 2 - 0.15))
        openings.append(("door", door_seg, s, dw))
    n_win = int(rng.integers(1, 4))
    for _ in range(n_win * 4):
        if sum(o[0] == "window" for o in openings) >= n_win:
            break
        seg = segs[int(rng.integers(len(segs)))]
        ww = float(rng.uniform(0.8, 1.6))
        if seg[3] - seg[2] < ww + 0.4:
            continue
        s = float(rng.uniform(seg[2] + ww / 2 + 0.15, seg[3] - ww / 2 - 0.15))
        if any(o[1] is seg and abs(o[2] - s) < (o[3] + ww) / 2 + 0.2 for o in openings):
            continue
        openings.append(("window", seg, s, ww))
    return openings


def _cut_opening(b: _Builder, opening: Opening) -> None:
    """A door (a wooden leaf, part of the wall) or a window (its own instance) in the wall, the floor
    in front of it kept free of wall furniture."""
    rng, H = b.rng, b.H
    what, seg, s, w = opening
    axis, pos, _, _, n = seg
    inward = n[0] if axis == 0 else n[1]
    if what == "door":
        z0, z1, cls, col, tex, keep = 0.0, 2.05, WALL_C, _color(rng, WOODS[rng.integers(len(WOODS))]), TEX_WOOD, 0.9
    else:
        z0 = float(rng.uniform(0.7, 1.0))
        z1 = min(H - 0.2, z0 + float(rng.uniform(1.0, 1.5)))
        cls, col, tex, keep = WINDOW, (0.75, 0.85, 0.95), TEX_GLASS, 0.35
    c_n = pos + inward * 0.005 - inward * WALL / 2  # from inside the wall to 1.5 cm into the room
    half_n = WALL / 2 + 0.01
    center = (c_n, s, (z0 + z1) / 2) if axis == 0 else (s, c_n, (z0 + z1) / 2)
    half = (half_n, w / 2, (z1 - z0) / 2) if axis == 0 else (w / 2, half_n, (z1 - z0) / 2)
    inst = 0
    if what == "window":
        inst = b.new_instance(WINDOW, "window", center, [2 * h for h in half])
    b.add(BOX, center, half, 0, cls, col, tex, inst)
    # keep the floor in front of the opening free of wall furniture
    if axis == 0:
        x0, x1 = (pos, pos + keep) if inward > 0 else (pos - keep, pos)
        b.take(x0, x1, s - w / 2 - 0.05, s + w / 2 + 0.05)
    else:
        y0, y1 = (pos, pos + keep) if inward > 0 else (pos - keep, pos)
        b.take(s - w / 2 - 0.05, s + w / 2 + 0.05, y0, y1)


# ---------------------------------------------------------------------------------- furniture


class _Furnisher:
    """Places a room's furniture: pieces against its walls (:meth:`wall_piece`), each counted by name
    for the description (:attr:`counts`, in the order first placed)."""

    def __init__(self, b: _Builder, segs: list) -> None:
        self.b, self.rng, self.segs = b, b.rng, segs
        self.counts: dict[str, int] = {}

    def count(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1

    def wall_piece(self, make, w, d, cls, name, tries=8):
        """A ``w x d`` piece made by ``make()`` with its back on a wall segment drawn at random (up to
        ``tries`` segments): ``(x, y, yaw, rect, segment)``, or None where none had room."""
        for _ in range(tries):
            seg = self.segs[int(self.rng.integers(len(self.segs)))]
            spot = _against_wall(self.b, seg, w, d)
            if spot is None:
                continue
            parts, extras, top = make()
            x, y, yaw, rect = spot
            _place_piece(self.b, parts, extras, top, x, y, yaw, rect, cls, name)
            self.count(name)
            return x, y, yaw, rect, seg
        return None


def _furnish_bedroom(f: _Furnisher) -> None:
    """A bed against a wall with nightstands beside its head; maybe a wardrobe and a dresser."""
    b, rng = f.b, f.rng
    w, d = float(rng.choice([1.0, 1.4, 1.6, 1.8])), float(rng.uniform(1.95, 2.1))
    got = f.wall_piece(lambda: piece_bed(rng, w, d), w, d, BED, "bed")
    if got is not None:
        x, y, yaw, rect, seg = got
        for sgn in (-1, 1):
            nx, ny = _rot(yaw, sgn * (w / 2 + 0.27), -d / 2 + 0.22)
            r = (x + nx - 0.22, x + nx + 0.22, y + ny - 0.22, y + ny + 0.22)
            if b.is_free(*r) and rng.random() < 0.85:
                parts, extras, top = piece_box(rng, 0.44, 0.4, 0.52, FURNITURE)
                _place_piece(b, parts, extras, top, x + nx, y + ny, yaw, r, FURNITURE, "nightstand")
                f.count("nightstand")
    if rng.random() < 0.8:
        ww, hh = float(rng.uniform(1.0, 1.8)), float(rng.uniform(1.9, 2.2))
        f.wall_piece(lambda: piece_box(rng, ww, 0.6, hh, FURNITURE), ww, 0.6, FURNITURE, "wardrobe")
    if rng.random() < 0.6:
        ww = float(rng.uniform(0.8, 1.3))
        f.wall_piece(lambda: piece_box(rng, ww, 0.5, 0.82, FURNITURE), ww, 0.5, FURNITURE, "dresser")


def _furnish_living_room(f: _Furnisher) -> None:
    """A sofa against a wall with a coffee table before it, a TV on its stand; maybe a bookshelf and
    an armchair."""
    b, rng = f.b, f.rng
    w, d = float(rng.uniform(1.6, 2.4)), float(rng.uniform(0.85, 0.95))
    got = f.wall_piece(lambda: piece_sofa(rng, w, d), w, d, SOFA, "sofa")
    if got is not None:
        x, y, yaw, rect, seg = got
        cx, cy = _rot(yaw, 0.0, d / 2 + 0.45 + 0.3)
        tw, td = min(1.1, w * 0.6), 0.6
        rw, rd = (tw, td) if abs(math.sin(yaw)) < 0.5 else (td, tw)
        r = (x + cx - rw / 2, x + cx + rw / 2, y + cy - rd / 2, y + cy + rd / 2)
        if b.is_free(*r):
            parts, extras, top = piece_table(rng, tw, td, 0.42)
            _place_piece(b, parts, extras, top, x + cx, y + cy, yaw, r, TABLE, "coffee table")
            f.count("coffee table")
    ww = float(rng.uniform(1.2, 1.8))
    got = f.wall_piece(lambda: piece_box(rng, ww, 0.45, 0.5, FURNITURE), ww, 0.45, FURNITURE, "tv stand")
    if got is not None:
        x, y, yaw, rect, seg = got
        tvw = float(rng.uniform(0.8, min(1.4, ww)))
        inst = b.new_instance(TVS, "television", (x, y, 0.5 + 0.3), (tvw, 0.06, tvw * 0.58 + 0.16))
        _emit(
            b,
            [(k, (cx, cy, cz + 0.5), h, c, col, t) for k, (cx, cy, cz), h, c, col, t in piece_tv(rng, tvw)],
            x,
            y,
            yaw,
            inst,
        )
        f.count("television")
    if rng.random() < 0.7:
        ww, hh = float(rng.uniform(0.8, 1.2)), float(rng.uniform(1.5, 2.0))
        f.wall_piece(lambda: piece_shelf(rng, ww, 0.35, hh), ww, 0.35, FURNITURE, "bookshelf")
    if rng.random() < 0.5:
        aw = 0.85
        f.wall_piece(lambda: piece_sofa(rng, aw, 0.85), aw, 0.85, SOFA, "armchair")


def _furnish_dining_room(f: _Furnisher) -> None:
    """A table near the middle with chairs around it, 1-3 cabinets; maybe a bookshelf."""
    b, rng = f.b, f.rng
    tw, td = float(rng.uniform(1.2, 1.8)), float(rng.uniform(0.8, 1.0))
    if rng.random() < 0.5:
        tw, td = td, tw
    cx, cy = b.Lx / 2 + float(rng.uniform(-0.3, 0.3)), b.Ly / 2 + float(rng.uniform(-0.3, 0.3))
    r = (cx - tw / 2, cx + tw / 2, cy - td / 2, cy + td / 2)
    if b.is_free(*r):
        parts, extras, top = piece_table(rng, tw, td, 0.75)
        _place_piece(b, parts, extras, top, cx, cy, 0.0, r, TABLE, "dining table")
        f.count("dining table")
        n = _chairs_around(b, cx, cy, tw, td, int(rng.integers(2, 7)), _color(rng, WOODS[rng.integers(len(WOODS))]))
        f.counts["chair"] = f.counts.get("chair", 0) + n
    for _ in range(int(rng.integers(1, 4))):
        ww = float(rng.uniform(0.8, 1.6))
        f.wall_piece(lambda: piece_box(rng, ww, 0.55, 0.9, FURNITURE), ww, 0.55, FURNITURE, "cabinet")
    if rng.random() < 0.5:
        ww, hh = float(rng.uniform(0.8, 1.2)), float(rng.uniform(1.5, 2.0))
        f.wall_piece(lambda: piece_shelf(rng, ww, 0.35, hh), ww, 0.35, FURNITURE, "bookshelf")


def _furnish_office(f: _Furnisher) -> None:
    """1-2 desks against walls, each with a monitor and an office chair, 1-2 bookshelves; maybe a
    drawer unit."""
    b, rng = f.b, f.rng
    for _ in range(int(rng.integers(1, 3))):
        ww = float(rng.uniform(1.1, 1.6))
        got = f.wall_piece(lambda: piece_table(rng, ww, 0.7, 0.74), ww, 0.7, TABLE, "desk")
        if got is None:
            continue
        x, y, yaw, rect, seg = got
        mw = float(rng.uniform(0.45, 0.65))
        mx, my = _rot(yaw, float(rng.uniform(-0.2, 0.2)), -0.15)
        inst = b.new_instance(TVS, "monitor", (x + mx, y + my, 0.74 + 0.25), (mw, 0.06, mw * 0.58 + 0.16))
        _emit(
            b,
            [(k, (cx, cy, cz + 0.74), h, c, col, t) for k, (cx, cy, cz), h, c, col, t in piece_tv(rng, mw)],
            x + mx,
            y + my,
            yaw,
            inst,
        )
        f.count("monitor")
        ccx, ccy = _rot(yaw, 0.0, 0.35 + 0.3)
        parts, size = piece_chair(rng, _color(rng, (0.15, 0.15, 0.17), 0.05))
        cr = (x + ccx - size / 2, x + ccx + size / 2, y + ccy - size / 2, y + ccy + size / 2)
        if b.is_free(*cr):
            ci = b.new_instance(CHAIR, "office chair", (x + ccx, y + ccy, 0.45), (size, size, 0.95))
            _emit(b, parts, x + ccx, y + ccy, yaw + math.pi, ci)
            b.take(*cr)
            f.count("chair")
    for _ in range(int(rng.integers(1, 3))):
        ww, hh = float(rng.uniform(0.8, 1.2)), float(rng.uniform(1.5, 2.0))
        f.wall_piece(lambda: piece_shelf(rng, ww, 0.35, hh), ww, 0.35, FURNITURE, "bookshelf")
    if rng.random() < 0.6:
        f.wall_piece(lambda: piece_box(rng, 0.5, 0.6, 0.7, FURNITURE), 0.5, 0.6, FURNITURE, "drawer unit")


#: The main pieces of a room by its kind (:data:`ROOM_TYPES`).
FURNISH = {
    "bedroom": _furnish_bedroom,
    "living room": _furnish_living_room,
    "dining room": _furnish_dining_room,
    "office": _furnish_office,
}


def _spare_chair(f: _Furnisher) -> None:
    """Sometimes (40 %) a chair anywhere on free floor, facing one of four ways."""
    b, rng = f.b, f.rng
    if rng.random() < 0.4:
        for _ in range(10):
            x, y = float(rng.uniform(0.6, b.Lx - 0.6)), float(rng.uniform(0.6, b.Ly - 0.6))
            parts, size = piece_chair(rng)
            r = (x - size / 2, x + size / 2, y - size / 2, y + size / 2)
            if b.is_free(*r):
                ci = b.new_instance(CHAIR, "chair", (x, y, 0.45), (size, size, 0.95))
                _emit(b, parts, x, y, float(rng.choice([0, 0.5, 1, 1.5])) * math.pi, ci)
                b.take(*r)
                f.count("chair")
                break


# ---------------------------------------------------------------------------------- small objects


def _objects_on_surfaces(b: _Builder) -> int:
    """Up to three small objects on each top the furniture left (:attr:`_Builder.surfaces`), apart
    and within its edges; returns how many."""
    rng = b.rng
    n_obj = 0
    for x0, x1, y0, y1, z in list(b.surfaces):
        if x1 - x0 < 0.15 or y1 - y0 < 0.15:
            continue
        taken: list[tuple[float, float, float]] = []
        for _ in range(int(rng.integers(0, 4))):
            x, y = float(rng.uniform(x0 + 0.05, x1 - 0.05)), float(rng.uniform(y0 + 0.05, y1 - 0.05))
            if any((x - a) ** 2 + (y - c) ** 2 < (r + 0.12) ** 2 for a, c, r in taken):
                continue
            parts, name, size = small_object(rng, x, y, z)
            if max(size[0], size[1]) / 2 > min(x - x0, x1 - x, y - y0, y1 - y) + 0.05:
                continue
            inst = b.new_instance(OBJECTS, name, (x, y, z + size[2] / 2), size)
            _emit(b, parts, 0.0, 0.0, 0.0, inst)
            taken.append((x, y, max(size[0], size[1]) / 2))
            n_obj += 1
    return n_obj


def _objects_on_floor(b: _Builder) -> int:
    """Up to three plants or small objects on free floor; returns how many."""
    rng, Lx, Ly = b.rng, b.Lx, b.Ly
    n_obj = 0
    for _ in range(int(rng.integers(0, 4))):
        x, y = float(rng.uniform(0.3, Lx - 0.3)), float(rng.uniform(0.3, Ly - 0.3))
        if rng.random() < 0.5:  # a plant
            r = float(rng.uniform(0.12, 0.2))
            rect = (x - r, x + r, y - r, y + r)
            if b.is_free(*rect):
                inst = b.new_instance(OBJECTS, "plant", (x, y, 0.5), (2 * r, 2 * r, 1.0))
                parts = [
                    _part(CYLINDER, x, y, 0.15, r * 0.7, r * 0.7, 0.15, OBJECTS, (0.6, 0.35, 0.2)),
                    _part(
                        ELLIPSOID,
                        x,
                        y,
                        0.3 + 1.2 * r,
                        r * 1.2,
                        r * 1.2,
                        r * 1.6,
                        OBJECTS,
                        _color(rng, (0.2, 0.5, 0.2)),
                        TEX_FABRIC,
                    ),
                ]
                _emit(b, parts, 0.0, 0.0, 0.0, inst)
                b.take(*rect)
                n_obj += 1
        else:
            parts, name, size = small_object(rng, x, y, 0.0)
            rect = (x - size[0] / 2 - 0.02, x + size[0] / 2 + 0.02, y - size[1] / 2 - 0.02, y + size[1] / 2 + 0.02)
            if b.is_free(*rect):
                inst = b.new_instance(OBJECTS, name, (x, y, size[2] / 2), size)
                _emit(b, parts, 0.0, 0.0, 0.0, inst)
                b.take(*rect)
                n_obj += 1
    return n_obj


def _pictures(b: _Builder, segs: list, openings: list[Opening]) -> int:
    """Up to two pictures on the walls, clear of the door and windows; returns how many."""
    rng, H = b.rng, b.H
    n_obj = 0
    for _ in range(int(rng.integers(0, 3))):
        axis, pos, lo, hi, n = segs[int(rng.integers(len(segs)))]
        pw, ph = float(rng.uniform(0.3, 0.9)), float(rng.uniform(0.3, 0.7))
        if hi - lo < pw + 0.4:
            continue
        s = float(rng.uniform(lo + pw / 2 + 0.2, hi - pw / 2 - 0.2))
        inward = n[0] if axis == 0 else n[1]
        if any(o[1][0] == axis and o[1][1] == pos and abs(o[2] - s) < (o[3] + pw) / 2 + 0.1 for o in openings):
            continue
        zc = float(rng.uniform(1.3, min(1.9, H - ph / 2 - 0.15)))
        cn = pos + inward * 0.012
        center = (cn, s, zc) if axis == 0 else (s, cn, zc)
        half = (0.012, pw / 2, ph / 2) if axis == 0 else (pw / 2, 0.012, ph / 2)
        inst = b.new_instance(OBJECTS, "picture", center, [2 * h for h in half])
        b.add(
            BOX,
            center,
            half,
            0,
            OBJECTS,
            _color(rng, SMALL_COLORS[rng.integers(len(SMALL_COLORS))], 0.2),
            TEX_FABRIC,
            inst,
        )
        n_obj += 1
    return n_obj


def _ceiling_lamp(b: _Builder, block: tuple[float, float] | None) -> tuple[float, float, float]:
    """A lamp under the middle of the ceiling (of the room's open part); returns the light's position."""
    Lx, Ly, H = b.Lx, b.Ly, b.H
    lx, ly = (Lx - (block[0] if block else 0)) / 2, Ly / 2
    inst = b.new_instance(OBJECTS, "ceiling lamp", (lx, ly, H - 0.1), (0.4, 0.4, 0.2))
    b.add(CYLINDER, (lx, ly, H - 0.1), (0.2, 0.2, 0.1), 0, OBJECTS, (0.98, 0.97, 0.9), TEX_PLAIN, inst)
    return (lx, ly, H - 0.25)


def _describe(
    kind: str,
    size: tuple[float, float, float],
    block: tuple[float, float] | None,
    counts: dict[str, int],
    openings: list[Opening],
    n_obj: int,
) -> str:
    """The room in a sentence: shape, kind, size, furniture, openings and small objects."""
    Lx, Ly, H = size
    what = ", ".join(_count(v, k) for k, v in counts.items() if v)
    shape = "an L-shaped" if block else "a"
    n_win, n_door = sum(o[0] == "window" for o in openings), sum(o[0] == "door" for o in openings)
    return (
        f"{shape[0].upper() + shape[1:]} {kind} of {Lx:.1f} by {Ly:.1f} m with a {H:.2f} m ceiling"
        + (f": {what}" if what else "")
        + f"; {_count(n_win, 'window')}, {_count(n_door, 'door')}"
        + (f", {_count(n_obj, 'small object')}" if n_obj else "")
        + "."
    )


def _count(n: int, noun: str) -> str:
    """``"two chairs"``, ``"one bed"``, ``"no door"``."""
    word = ("no", "one", "two", "three", "four", "five", "six", "seven")[n] if n < 8 else str(n)
    return f"{word} {noun}{'s' if n != 1 else ''}"


def _to_prims(rows) -> Primitives:
    """Rows to :class:`Primitives`, in the order given (later rows win where voxels overlap)."""
    f, l = torch.float32, torch.long
    return Primitives(
        kind=torch.tensor([r[0] for r in rows], dtype=l),
        center=torch.tensor([r[1] for r in rows], dtype=f),
        half=torch.tensor([r[2] for r in rows], dtype=f),
        yaw=torch.tensor([r[3] for r in rows], dtype=f),
        cls=torch.tensor([r[4] for r in rows], dtype=l),
        instance=torch.tensor([r[5] for r in rows], dtype=l),
        color=torch.tensor([r[6] for r in rows], dtype=f),
        texture=torch.tensor([r[7] for r in rows], dtype=l),
        reflect=torch.zeros(len(rows), dtype=f),
    )


def look_at(eye: np.ndarray, target: np.ndarray) -> torch.Tensor:
    """``(4, 4)`` float64 camera (OpenCV: x right, y down, z forward) -> room, at ``eye`` looking at ``target``."""
    f = np.asarray(target, dtype=np.float64) - eye
    f /= np.linalg.norm(f)
    r = np.cross(f, [0.0, 0.0, 1.0])
    r /= np.linalg.norm(r)
    down = np.cross(f, r)
    T = np.eye(4)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = r, down, f, eye
    return torch.from_numpy(T)


def camera_views(b: _Builder, n: int, block: tuple[float, float] | None) -> list[torch.Tensor]:
    """``n`` camera poses: standing in free floor (0.3 m from anything), 1.1 to 1.6 m high, near a
    wall, looking across the room at a point 2 m away or more, pitched down 5 to 28 degrees."""
    rng, Lx, Ly = b.rng, b.Lx, b.Ly
    pad = int(round(0.3 / CELL))
    free = b.free.copy()
    occ = ~free
    grown = occ.copy()
    for dx in range(-pad, pad + 1):
        for dy in range(-pad, pad + 1):
            grown |= np.roll(np.roll(occ, dx, 0), dy, 1)
    grown[:pad], grown[-pad:], grown[:, :pad], grown[:, -pad:] = True, True, True, True
    cand = np.argwhere(~grown)
    views = []
    for v in range(n):
        T = None
        for _ in range(200):
            if len(cand):
                i, j = cand[int(rng.integers(len(cand)))]
                eye_xy = np.array([(i + 0.5) * CELL, (j + 0.5) * CELL])
            else:
                eye_xy = np.array([Lx / 2, Ly / 2])
            near_wall = min(eye_xy[0], Lx - eye_xy[0], eye_xy[1], Ly - eye_xy[1])
            if len(cand) and near_wall > 1.4 and rng.random() < 0.7:
                continue
            tgt = np.array([rng.uniform(0.3, Lx - 0.3), rng.uniform(0.3, Ly - 0.3)])
            if block is not None and tgt[0] > Lx - block[0] and tgt[1] > Ly - block[1]:
                continue
            dist = float(np.linalg.norm(tgt - eye_xy))
            if dist < 2.0 and len(cand):
                continue
            h = float(rng.uniform(1.1, 1.6))
            pitch = math.radians(float(rng.uniform(5, 28)))
            tz = h - dist * math.tan(pitch)
            T = look_at(np.array([eye_xy[0], eye_xy[1], h]), np.array([tgt[0], tgt[1], tz]))
            break
        if T is None:
            T = look_at(np.array([Lx / 2, 0.4, 1.4]), np.array([Lx / 2, Ly, 0.5]))
        views.append(T)
    return views
