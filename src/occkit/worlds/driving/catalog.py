"""The catalogue of things in the synthetic world: fine-grained names, Occ3D classes, attributes
and the primitives each is made of (in the object's own frame: x forward, y left, z up, origin
on the ground under its centre).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from occkit.worlds.driving.primitives import (
    BOX,
    CYLINDER,
    ELLIPSOID,
    TEX_BARK,
    TEX_BRICK,
    TEX_FACADE,
    TEX_FOLIAGE,
    TEX_GLASS,
    TEX_PLAIN,
    TEX_SKIN,
    TEX_STRIPES,
    Primitives,
)
from occkit.worlds.driving.vocabulary import OTHER_OBJECT_NAMES, PEDESTRIAN_NAMES

#: Named colours (linear-ish RGB in [0, 1]).
COLOURS: dict[str, tuple[float, float, float]] = {
    "white": (0.85, 0.85, 0.84),
    "black": (0.05, 0.05, 0.06),
    "silver": (0.62, 0.63, 0.65),
    "grey": (0.38, 0.39, 0.40),
    "red": (0.62, 0.07, 0.06),
    "blue": (0.08, 0.2, 0.55),
    "dark blue": (0.04, 0.07, 0.22),
    "green": (0.1, 0.35, 0.15),
    "yellow": (0.85, 0.68, 0.05),
    "orange": (0.9, 0.38, 0.04),
    "brown": (0.35, 0.2, 0.1),
    "beige": (0.75, 0.66, 0.5),
    "teal": (0.05, 0.4, 0.42),
    "maroon": (0.35, 0.05, 0.08),
}
CAR_COLOURS = ("white", "black", "silver", "grey", "red", "blue", "dark blue", "green", "beige", "maroon", "teal")


@dataclass
class Part:
    """One primitive of an object, in the object frame."""

    kind: int
    center: tuple[float, float, float]
    half: tuple[float, float, float]
    color: tuple[float, float, float]
    texture: int = TEX_PLAIN
    yaw: float = 0.0
    reflect: float = 0.5
    cls: int | None = None  # defaults to the object's class


@dataclass
class ObjectSpec:
    """What an object is, before it is placed: names, class, attributes and parts."""

    name: str
    cls: int
    colour: str
    parts: list[Part]
    extra: dict[str, Any] = field(default_factory=dict)

    def size(self) -> tuple[float, float, float]:
        """Length, width, height of the axis-aligned box around the parts (object frame)."""
        lo = np.array([np.inf] * 3)
        hi = -lo
        for p in self.parts:
            c, h = np.asarray(p.center), np.asarray(p.half, dtype=np.float64)
            if p.kind == CYLINDER:
                h = np.array([h[0], h[0], h[2]])
            r = abs(np.cos(p.yaw)) * h[0] + abs(np.sin(p.yaw)) * h[1]
            r2 = abs(np.sin(p.yaw)) * h[0] + abs(np.cos(p.yaw)) * h[1]
            hh = np.array([r, r2, h[2]])
            lo = np.minimum(lo, c - hh)
            hi = np.maximum(hi, c + hh)
        return tuple(float(v) for v in (hi - lo))  # type: ignore[return-value]


def parts_to_primitives(spec: ObjectSpec, instance: int) -> Primitives:
    """The object's parts as :class:`Primitives` in its own frame."""
    n = len(spec.parts)
    f = torch.float32
    return Primitives(
        kind=torch.tensor([p.kind for p in spec.parts], dtype=torch.long),
        center=torch.tensor([p.center for p in spec.parts], dtype=f).view(n, 3),
        half=torch.tensor([p.half for p in spec.parts], dtype=f).view(n, 3),
        yaw=torch.tensor([p.yaw for p in spec.parts], dtype=f),
        cls=torch.tensor([spec.cls if p.cls is None else p.cls for p in spec.parts], dtype=torch.long),
        instance=torch.full((n,), instance, dtype=torch.long),
        color=torch.tensor([p.color for p in spec.parts], dtype=f).view(n, 3),
        texture=torch.tensor([p.texture for p in spec.parts], dtype=torch.long),
        reflect=torch.tensor([p.reflect for p in spec.parts], dtype=f),
    )


def _c(name: str, rng: np.random.Generator | None = None, jitter: float = 0.04) -> tuple[float, float, float]:
    c = np.asarray(COLOURS[name])
    if rng is not None:
        c = np.clip(c * rng.uniform(1 - jitter * 3, 1 + jitter * 3) + rng.normal(0, jitter, 3), 0, 1)
    return tuple(float(v) for v in c)  # type: ignore[return-value]


def _rgb(v: tuple[float, float, float] | np.ndarray) -> tuple[float, float, float]:
    return tuple(float(x) for x in np.clip(v, 0, 1))  # type: ignore[return-value]


TIRE = (0.03, 0.03, 0.03)
GLASS = (0.12, 0.16, 0.2)


def _wheels(L: float, W: float, r: float, axles: list[float]) -> list[Part]:
    return [
        Part(ELLIPSOID, (x, s * (W / 2 - 0.12), r), (r, 0.13, r), TIRE, reflect=0.15) for x in axles for s in (-1, 1)
    ]


# ------------------------------------------------------------------------------- vehicles (cls)
def car(rng: np.random.Generator) -> ObjectSpec:
    name = str(
        rng.choice(
            ["sedan", "hatchback", "SUV", "pickup truck", "taxi", "station wagon", "delivery van"],
            p=[0.3, 0.15, 0.2, 0.08, 0.07, 0.1, 0.1],
        )
    )
    colour = "yellow" if name == "taxi" else str(rng.choice(CAR_COLOURS))
    col = _c(colour, rng)
    L = {"hatchback": 4.0, "SUV": 4.7, "pickup truck": 5.3, "delivery van": 5.2}.get(name, 4.6) * rng.uniform(
        0.95, 1.05
    )
    W = (2.0 if name in ("SUV", "pickup truck", "delivery van") else 1.8) * rng.uniform(0.97, 1.03)
    H = {"SUV": 1.75, "pickup truck": 1.85, "delivery van": 2.2, "hatchback": 1.5}.get(name, 1.45)
    r = 0.34
    body_top = 0.95 if name != "delivery van" else H - 0.5
    parts = [Part(BOX, (0, 0, (0.28 + body_top) / 2), (L / 2, W / 2, (body_top - 0.28) / 2), col, reflect=0.8)]
    if name == "pickup truck":
        parts.append(
            Part(
                BOX,
                (0.55, 0, (body_top + H) / 2),
                (0.75, W / 2 - 0.06, (H - body_top) / 2),
                GLASS,
                TEX_GLASS,
                reflect=0.3,
            )
        )
    elif name == "delivery van":
        parts.append(
            Part(
                BOX,
                (0, 0, (body_top + H) / 2),
                (L / 2 - 0.1, W / 2 - 0.02, (H - body_top) / 2),
                col,
                TEX_GLASS,
                reflect=0.6,
            )
        )
    else:
        cab_l = L * (0.55 if name in ("sedan", "taxi") else 0.68)
        parts.append(
            Part(
                BOX,
                (-0.1 * L, 0, (body_top + H) / 2),
                (cab_l / 2, W / 2 - 0.08, (H - body_top) / 2),
                GLASS,
                TEX_GLASS,
                reflect=0.3,
            )
        )
    parts += _wheels(L, W, r, [L / 2 - 0.85, -L / 2 + 0.85])
    return ObjectSpec(name, 4, colour, parts)


def truck(rng: np.random.Generator) -> ObjectSpec:
    name = str(rng.choice(["box truck", "delivery truck", "garbage truck", "flatbed truck", "semi tractor"]))
    colour = str(rng.choice(["white", "red", "blue", "green", "orange", "grey"]))
    col = _c(colour, rng)
    cargo_col = _c("white", rng) if name in ("box truck", "delivery truck") else col
    W = 2.45
    cab_l, cab_h = 2.2, 2.9
    cargo_l = {
        "box truck": 5.5,
        "delivery truck": 4.5,
        "garbage truck": 5.0,
        "flatbed truck": 6.0,
        "semi tractor": 1.8,
    }[name]
    L = cab_l + cargo_l
    xc = L / 2 - cab_l / 2
    parts = [
        Part(BOX, (xc, 0, 0.45 + (cab_h - 0.45) / 2), (cab_l / 2, W / 2, (cab_h - 0.45) / 2), col, reflect=0.8),
        Part(BOX, (xc + 0.2, 0, cab_h - 0.55), (cab_l / 2 - 0.15, W / 2 + 0.01, 0.4), GLASS, TEX_GLASS, reflect=0.3),
    ]
    xg = -L / 2 + cargo_l / 2
    if name == "flatbed truck":
        parts.append(Part(BOX, (xg, 0, 1.15), (cargo_l / 2, W / 2, 0.15), _c("grey", rng), reflect=0.6))
    elif name == "semi tractor":
        parts.append(Part(BOX, (xg, 0, 1.0), (cargo_l / 2, W / 2 - 0.3, 0.2), _c("black", rng), reflect=0.5))
    else:
        ch = 3.5 if name != "garbage truck" else 3.2
        parts.append(
            Part(BOX, (xg - 0.1, 0, 0.9 + (ch - 0.9) / 2), (cargo_l / 2, W / 2, (ch - 0.9) / 2), cargo_col, reflect=0.8)
        )
    parts += _wheels(L, W, 0.5, [L / 2 - 1.1, -L / 2 + 1.2])
    return ObjectSpec(name, 10, colour, parts, {"length": L})


def bus(rng: np.random.Generator) -> ObjectSpec:
    name = str(rng.choice(["city bus", "school bus", "coach", "articulated bus"], p=[0.5, 0.2, 0.2, 0.1]))
    colour = "yellow" if name == "school bus" else str(rng.choice(["white", "red", "blue", "green", "orange"]))
    col = _c(colour, rng)
    L = {"articulated bus": 17.5, "school bus": 10.5}.get(name, 12.0)
    W = 2.55
    parts = [
        Part(BOX, (0, 0, 0.35 + 0.85), (L / 2, W / 2, 0.85), col, reflect=0.8),
        Part(BOX, (0, 0, 2.05 + 0.45), (L / 2 - 0.05, W / 2 - 0.01, 0.45), GLASS, TEX_GLASS, reflect=0.3),
        Part(BOX, (0, 0, 2.95 + 0.125), (L / 2, W / 2, 0.125), col, reflect=0.8),
    ]
    parts += _wheels(L, W, 0.5, [L / 2 - 2.2, -L / 2 + 2.8] + ([0.0] if L > 15 else []))
    return ObjectSpec(name, 3, colour, parts, {"length": L})


def trailer(rng: np.random.Generator) -> ObjectSpec:
    name = str(
        rng.choice(
            ["semi-trailer", "container trailer", "cargo trailer", "camping trailer"], p=[0.35, 0.35, 0.15, 0.15]
        )
    )
    colour = str(rng.choice(["white", "grey", "red", "blue", "silver"]))
    col = _c(colour, rng)
    if name in ("semi-trailer", "container trailer"):
        L, W, z0, H = rng.uniform(9.0, 12.5), 2.5, 1.2, 4.0
    else:
        L, W, z0, H = rng.uniform(3.0, 5.5), 2.1, 0.45, 2.4
    parts = [
        Part(
            BOX,
            (0, 0, (z0 + H) / 2),
            (L / 2, W / 2, (H - z0) / 2),
            col,
            TEX_BRICK if name == "container trailer" else TEX_PLAIN,
            reflect=0.8,
        )
    ]
    parts += _wheels(L, W, 0.45 if z0 > 1 else 0.35, [-L / 2 + 1.4, -L / 2 + 2.5] if z0 > 1 else [0.0])
    return ObjectSpec(name, 9, colour, parts, {"length": L})


def construction_vehicle(rng: np.random.Generator) -> ObjectSpec:
    name = str(rng.choice(["excavator", "bulldozer", "crane truck", "cement mixer", "dump truck", "road roller"]))
    colour = str(rng.choice(["yellow", "orange"])) if name != "cement mixer" else "white"
    col = _c(colour, rng)
    dark = _c("black", rng)
    parts: list[Part]
    if name == "excavator":
        parts = [
            Part(BOX, (0, 1.0, 0.45), (2.2, 0.35, 0.45), dark, reflect=0.4),
            Part(BOX, (0, -1.0, 0.45), (2.2, 0.35, 0.45), dark, reflect=0.4),
            Part(BOX, (-0.3, 0, 1.45), (1.6, 1.3, 0.55), col, reflect=0.8),
            Part(BOX, (0.6, 0.6, 2.4), (0.5, 0.5, 0.45), GLASS, TEX_GLASS),
            Part(BOX, (2.4, -0.2, 2.6), (1.6, 0.2, 0.2), col, yaw=0.0),
            Part(BOX, (3.9, -0.2, 1.5), (0.2, 0.2, 1.1), col),
            Part(BOX, (4.0, -0.2, 0.35), (0.45, 0.5, 0.3), dark),
        ]
    elif name == "bulldozer":
        parts = [
            Part(BOX, (0, 1.0, 0.5), (2.0, 0.4, 0.5), dark),
            Part(BOX, (0, -1.0, 0.5), (2.0, 0.4, 0.5), dark),
            Part(BOX, (-0.2, 0, 1.4), (1.5, 0.9, 0.5), col, reflect=0.8),
            Part(BOX, (-0.7, 0, 2.4), (0.7, 0.7, 0.5), GLASS, TEX_GLASS),
            Part(BOX, (2.4, 0, 0.7), (0.15, 1.7, 0.6), col),
        ]
    elif name == "cement mixer":
        parts = [
            Part(BOX, (2.9, 0, 1.7), (1.0, 1.25, 1.2), _c("red", rng), reflect=0.8),
            Part(BOX, (0, 0, 0.9), (3.9, 1.2, 0.3), dark),
            Part(ELLIPSOID, (-0.6, 0, 2.3), (2.6, 1.15, 1.1), col, TEX_STRIPES, yaw=0.0, reflect=0.7),
        ] + _wheels(7.8, 2.5, 0.5, [2.8, -1.5, -2.8])
    elif name == "crane truck":
        parts = [
            Part(BOX, (0, 0, 1.2), (4.5, 1.25, 0.6), col, reflect=0.8),
            Part(BOX, (3.6, 0, 2.4), (0.9, 1.2, 0.7), GLASS, TEX_GLASS),
            Part(BOX, (-0.5, 0, 2.2), (0.8, 0.8, 0.5), col),
            Part(BOX, (-3.0, 0, 3.0), (3.2, 0.25, 0.25), col, TEX_STRIPES, yaw=0.0),
        ] + _wheels(9.0, 2.5, 0.55, [3.3, 0.5, -3.2])
    elif name == "dump truck":
        parts = [
            Part(BOX, (2.4, 0, 1.6), (1.0, 1.3, 1.0), col, reflect=0.8),
            Part(BOX, (2.6, 0, 2.4), (0.8, 1.31, 0.35), GLASS, TEX_GLASS),
            Part(BOX, (-1.0, 0, 1.9), (2.3, 1.35, 0.9), _c("grey", rng), reflect=0.7),
        ] + _wheels(6.8, 2.6, 0.6, [2.4, -1.0, -2.4])
    else:  # road roller
        parts = [
            Part(CYLINDER, (1.5, 0, 0.75), (0.75, 0.75, 1.0), _c("grey", rng), yaw=0.0),
            Part(BOX, (-0.6, 0, 1.1), (1.3, 0.9, 0.6), col, reflect=0.8),
            Part(BOX, (-0.8, 0, 2.2), (0.6, 0.6, 0.5), GLASS, TEX_GLASS),
        ] + _wheels(3.5, 1.9, 0.6, [-1.2])
    return ObjectSpec(name, 5, colour, parts)


def _in_line_wheels(L: float, r: float, half_width: float) -> list[Part]:
    """The front and back tyres (radius ``r``) of a two-wheeler ``L`` metres long."""
    return [Part(ELLIPSOID, (x * (L / 2 - r), 0, r), (r, half_width, r), TIRE, reflect=0.15) for x in (1, -1)]


def motorcycle(rng: np.random.Generator, rider: bool) -> ObjectSpec:
    name = str(rng.choice(["motorcycle", "scooter", "sport bike"]))
    colour = str(rng.choice(["black", "red", "blue", "silver", "white", "orange"]))
    col = _c(colour, rng)
    L = 1.9 if name != "scooter" else 1.6
    parts = [
        *_in_line_wheels(L, 0.32, 0.07),
        Part(BOX, (0, 0, 0.62), (L / 2 - 0.3, 0.16, 0.22), col, reflect=0.8),
    ]
    if rider:
        parts += _rider(rng, -0.15, 0.85)
    return ObjectSpec(name + (" with rider" if rider else ""), 6, colour, parts, {"rider": rider})


def bicycle(rng: np.random.Generator, rider: bool) -> ObjectSpec:
    name = str(rng.choice(["bicycle", "city bike", "cargo bike", "mountain bike"], p=[0.4, 0.3, 0.1, 0.2]))
    colour = str(rng.choice(["black", "red", "blue", "silver", "green", "white"]))
    col = _c(colour, rng)
    L = 1.75 if name != "cargo bike" else 2.4
    parts = [
        *_in_line_wheels(L, 0.35, 0.04),
        Part(BOX, (0, 0, 0.62), (L / 2 - 0.35, 0.04, 0.05), col, reflect=0.6),
        Part(BOX, (-0.15, 0, 0.5), (0.04, 0.04, 0.2), col, reflect=0.6),
    ]
    if name == "cargo bike":
        parts.append(Part(BOX, (L / 2 - 0.55, 0, 0.6), (0.35, 0.35, 0.2), _c("brown", rng)))
    if rider:
        parts += _rider(rng, -0.2, 0.9)
    return ObjectSpec(name + (" with rider" if rider else ""), 2, colour, parts, {"rider": rider})


def _skin(rng: np.random.Generator) -> tuple[float, float, float]:
    return _rgb(np.array([0.78, 0.57, 0.45]) * rng.uniform(0.45, 1.1))


def _rider(rng: np.random.Generator, x: float, z: float) -> list[Part]:
    shirt = _c(str(rng.choice(["red", "blue", "black", "white", "green", "yellow"])), rng)
    return [
        Part(ELLIPSOID, (x, 0, z + 0.3), (0.16, 0.2, 0.32), shirt, reflect=0.4),
        Part(ELLIPSOID, (x + 0.05, 0, z + 0.75), (0.12, 0.11, 0.14), _skin(rng), TEX_SKIN, reflect=0.3),
    ]


def pedestrian(rng: np.random.Generator) -> ObjectSpec:
    name = str(rng.choice(PEDESTRIAN_NAMES, p=[0.35, 0.15, 0.12, 0.1, 0.1, 0.08, 0.1]))
    scale = rng.uniform(0.6, 0.75) if name == "child" else rng.uniform(0.92, 1.08)
    top_name = (
        "orange"
        if name == "construction worker"
        else str(rng.choice(["red", "blue", "black", "white", "green", "yellow", "grey", "beige", "maroon", "teal"]))
    )
    top = _c(top_name, rng)
    legs = _c(str(rng.choice(["dark blue", "black", "grey", "brown", "beige"])), rng)
    s = scale
    parts = [
        Part(BOX, (0, 0.1 * s, 0.42 * s), (0.09 * s, 0.07 * s, 0.42 * s), legs, reflect=0.35),
        Part(BOX, (0, -0.1 * s, 0.42 * s), (0.09 * s, 0.07 * s, 0.42 * s), legs, reflect=0.35),
        Part(ELLIPSOID, (0, 0, 1.12 * s), (0.14 * s, 0.22 * s, 0.32 * s), top, reflect=0.4),
        Part(ELLIPSOID, (0.02, 0, 1.58 * s), (0.1 * s, 0.09 * s, 0.12 * s), _skin(rng), TEX_SKIN, reflect=0.3),
    ]
    if name == "adult with backpack":
        parts.append(
            Part(BOX, (-0.2 * s, 0, 1.15 * s), (0.09, 0.16, 0.2), _c(str(rng.choice(["black", "red", "blue"])), rng))
        )
    if name == "person with umbrella":
        parts.append(
            Part(
                ELLIPSOID,
                (0, 0, 2.05),
                (0.5, 0.5, 0.12),
                _c(str(rng.choice(["black", "red", "blue", "yellow"])), rng),
                reflect=0.3,
            )
        )
    return ObjectSpec(name, 7, top_name, parts, {"clothing": top_name})


# ------------------------------------------------------------------------------- movable objects
def traffic_cone(rng: np.random.Generator) -> ObjectSpec:
    h = float(rng.uniform(0.5, 0.75))
    o = _c("orange", rng)
    parts = [
        Part(BOX, (0, 0, 0.02), (0.19, 0.19, 0.02), _c("black", rng), reflect=0.3),
        Part(CYLINDER, (0, 0, 0.04 + h * 0.3), (0.13, 0.13, h * 0.3), o, TEX_STRIPES, reflect=0.95),
        Part(CYLINDER, (0, 0, 0.04 + h * 0.8), (0.07, 0.07, h * 0.2), o, TEX_STRIPES, reflect=0.95),
    ]
    return ObjectSpec("traffic cone", 8, "orange", parts)


def barrier(rng: np.random.Generator) -> ObjectSpec:
    name = str(rng.choice(["jersey barrier", "plastic barrier", "barrier board"]))
    if name == "jersey barrier":
        colour, L = "grey", 2.0
        parts = [
            Part(BOX, (0, 0, 0.2), (1.0, 0.3, 0.2), _c("white", rng), reflect=0.5),
            Part(BOX, (0, 0, 0.6), (1.0, 0.15, 0.2), _c("white", rng), reflect=0.5),
        ]
    elif name == "plastic barrier":
        colour, L = "red", 1.8
        parts = [
            Part(
                BOX,
                (0, 0, 0.5),
                (0.9, 0.25, 0.5),
                _c(str(rng.choice(["red", "orange", "white"])), rng),
                TEX_STRIPES,
                reflect=0.8,
            )
        ]
    else:
        colour, L = "orange", 1.6
        parts = [
            Part(BOX, (0, 0, 0.85), (0.8, 0.04, 0.15), _c("orange", rng), TEX_STRIPES, reflect=0.95),
            Part(BOX, (0.7, 0, 0.4), (0.04, 0.25, 0.4), _c("grey", rng)),
            Part(BOX, (-0.7, 0, 0.4), (0.04, 0.25, 0.4), _c("grey", rng)),
        ]
    return ObjectSpec(name, 1, colour, parts, {"length": L})


def other_object(rng: np.random.Generator) -> ObjectSpec:
    name = str(rng.choice(OTHER_OBJECT_NAMES))
    if name == "wooden crate":
        s = rng.uniform(0.5, 1.0)
        parts = [Part(BOX, (0, 0, s / 2), (s / 2, s / 2, s / 2), _c("brown", rng), TEX_BRICK)]
        colour = "brown"
    elif name == "trash bin":
        colour = str(rng.choice(["green", "grey", "blue", "black"]))
        parts = [
            Part(BOX, (0, 0, 0.5), (0.3, 0.3, 0.5), _c(colour, rng), reflect=0.6),
            Part(BOX, (0, 0, 1.03), (0.33, 0.33, 0.03), _c(colour, rng)),
        ]
    elif name == "debris pile":
        colour = "grey"
        parts = [
            Part(
                ELLIPSOID,
                (rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), 0.0),
                (rng.uniform(0.5, 1.2), rng.uniform(0.5, 1.2), rng.uniform(0.4, 0.8)),
                _c(str(rng.choice(["grey", "brown", "beige"])), rng),
                TEX_FOLIAGE,
            )
            for _ in range(3)
        ]
    elif name == "pallet stack":
        colour = "beige"
        parts = [Part(BOX, (0, 0, 0.5), (0.6, 0.5, 0.5), _c("beige", rng), TEX_BRICK)]
    elif name == "cardboard boxes":
        colour = "brown"
        parts = [
            Part(
                BOX,
                (rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3), 0.25 + 0.5 * k),
                (0.3, 0.25, 0.25),
                _c("beige", rng),
                yaw=float(rng.uniform(-0.5, 0.5)),
            )
            for k in range(2)
        ]
    elif name == "shopping cart":
        colour = "silver"
        parts = [
            Part(BOX, (0, 0, 0.65), (0.45, 0.28, 0.3), _c("silver", rng), TEX_STRIPES, reflect=0.9),
            Part(BOX, (0, 0, 0.2), (0.4, 0.25, 0.2), _c("grey", rng)),
        ]
    else:
        colour = "black"
        parts = [Part(CYLINDER, (0, 0, 0.15 + 0.3 * k), (0.4, 0.4, 0.14), TIRE, reflect=0.15) for k in range(3)]
    return ObjectSpec(name, 0, colour, parts)


# ------------------------------------------------------------------------------- static: manmade
def building(rng: np.random.Generator, kind: str, L: float, W: float) -> ObjectSpec:
    """A building of footprint ``L x W`` (x along the street)."""
    if kind == "tower":
        name = str(
            rng.choice(["office tower", "apartment building", "hotel", "shop building"], p=[0.35, 0.35, 0.1, 0.2])
        )
        H = float(rng.uniform(12, 45)) if name != "shop building" else float(rng.uniform(6, 12))
        colour = str(rng.choice(["grey", "beige", "white", "brown", "silver"]))
        tex = TEX_FACADE
    elif kind == "warehouse":
        name = str(rng.choice(["warehouse", "factory hall", "garage"]))
        H = float(rng.uniform(5, 10))
        colour = str(rng.choice(["grey", "silver", "beige", "blue", "white"]))
        tex = TEX_BRICK
    else:
        name = str(rng.choice(["house", "townhouse", "bungalow", "corner shop"], p=[0.45, 0.25, 0.2, 0.1]))
        H = float(rng.uniform(3.2, 4.0)) if name == "bungalow" else float(rng.uniform(5.5, 9.0))
        colour = str(rng.choice(["white", "beige", "brown", "grey", "maroon", "yellow"]))
        tex = TEX_FACADE if name != "bungalow" else TEX_BRICK
    col = _c(colour, rng, 0.06)
    parts = [Part(BOX, (0, 0, H / 2), (L / 2, W / 2, H / 2), col, tex, reflect=0.55)]
    if kind == "house":
        roof = _c(str(rng.choice(["maroon", "grey", "brown", "black"])), rng)
        parts.append(Part(BOX, (0, 0, H + 0.5), (L / 2 + 0.3, W / 2 + 0.3, 0.5), roof, TEX_BRICK, reflect=0.4))
        parts.append(Part(BOX, (0, 0, H + 1.3), (L / 2 - 0.5, W / 2 - 1.2, 0.3), roof, TEX_BRICK, reflect=0.4))
    elif kind == "tower" and H > 15 and rng.random() < 0.5:
        parts.append(Part(BOX, (0, 0, H + 1.5), (L / 4, W / 4, 1.5), _c("grey", rng), reflect=0.5))
    return ObjectSpec(name, 15, colour, parts, {"height": H})


def street_furniture(rng: np.random.Generator, name: str) -> ObjectSpec:
    """Poles, signs, lights, benches, hydrants ... (manmade)."""
    grey, dark = _c("grey", rng), _c("black", rng)
    if name == "street lamp":
        h = float(rng.uniform(5, 8))
        parts = [
            Part(CYLINDER, (0, 0, h / 2), (0.08, 0.08, h / 2), grey, reflect=0.7),
            Part(BOX, (0.6, 0, h - 0.1), (0.6, 0.12, 0.08), grey),
        ]
    elif name == "traffic light":
        h = 3.2
        parts = [
            Part(CYLINDER, (0, 0, h / 2), (0.09, 0.09, h / 2), dark, reflect=0.6),
            Part(BOX, (0, 0, h + 0.45), (0.18, 0.18, 0.5), dark, TEX_STRIPES, reflect=0.8),
        ]
    elif name in ("stop sign", "speed limit sign", "street sign", "parking sign"):
        face = {"stop sign": "red", "speed limit sign": "white", "street sign": "green", "parking sign": "blue"}[name]
        parts = [
            Part(CYLINDER, (0, 0, 1.2), (0.04, 0.04, 1.2), grey, reflect=0.7),
            Part(BOX, (0, 0, 2.4), (0.03, 0.35, 0.35), _c(face, rng), reflect=1.0),
        ]
    elif name == "utility pole":
        parts = [
            Part(CYLINDER, (0, 0, 4.5), (0.13, 0.13, 4.5), _c("brown", rng), TEX_BARK, reflect=0.4),
            Part(BOX, (0, 0, 8.3), (0.08, 1.0, 0.06), _c("brown", rng)),
        ]
    elif name == "bench":
        c = _c(str(rng.choice(["brown", "green", "grey"])), rng)
        parts = [
            Part(BOX, (0, 0, 0.45), (0.25, 0.9, 0.04), c),
            Part(BOX, (-0.22, 0, 0.75), (0.03, 0.9, 0.25), c),
            Part(BOX, (0, 0.8, 0.22), (0.2, 0.04, 0.22), dark),
            Part(BOX, (0, -0.8, 0.22), (0.2, 0.04, 0.22), dark),
        ]
    elif name == "fire hydrant":
        c = _c(str(rng.choice(["red", "yellow"])), rng)
        parts = [
            Part(CYLINDER, (0, 0, 0.3), (0.13, 0.13, 0.3), c, reflect=0.8),
            Part(ELLIPSOID, (0, 0, 0.62), (0.12, 0.12, 0.1), c),
        ]
    elif name == "bollard":
        parts = [Part(CYLINDER, (0, 0, 0.45), (0.1, 0.1, 0.45), _c("grey", rng), TEX_STRIPES, reflect=0.8)]
    elif name == "mailbox":
        parts = [Part(BOX, (0, 0, 0.6), (0.25, 0.25, 0.6), _c("blue", rng), reflect=0.7)]
    elif name == "bus shelter":
        parts = [
            Part(BOX, (0, 0, 2.5), (1.0, 2.0, 0.05), grey),
            Part(BOX, (-0.95, 0, 1.25), (0.04, 2.0, 1.25), GLASS, TEX_GLASS),
            Part(BOX, (0, 1.95, 1.25), (0.9, 0.04, 1.25), GLASS, TEX_GLASS),
        ]
    elif name == "billboard":
        parts = [
            Part(CYLINDER, (0, 0, 2.5), (0.2, 0.2, 2.5), grey),
            Part(
                BOX,
                (0, 0, 6.0),
                (0.1, 3.0, 1.2),
                _c(str(rng.choice(["white", "yellow", "blue", "red"])), rng),
                TEX_FACADE,
            ),
        ]
    else:
        raise ValueError(f"street_furniture: unknown name {name!r}")
    return ObjectSpec(name, 15, "grey", parts)


def wall_or_fence(rng: np.random.Generator, name: str, length: float) -> ObjectSpec:
    """A wall or fence along local x, ``length`` metres long (manmade)."""
    if name == "brick wall":
        h = float(rng.uniform(1.2, 2.5))
        parts = [
            Part(
                BOX,
                (0, 0, h / 2),
                (length / 2, 0.15, h / 2),
                _c(str(rng.choice(["maroon", "brown", "beige"])), rng),
                TEX_BRICK,
            )
        ]
        colour = "brick"
    elif name == "concrete wall":
        h = float(rng.uniform(1.5, 3.0))
        parts = [Part(BOX, (0, 0, h / 2), (length / 2, 0.2, h / 2), _c("grey", rng), reflect=0.5)]
        colour = "grey"
    else:  # fence: thin panel plus posts
        h = float(rng.uniform(1.2, 2.0))
        colour = str(rng.choice(["white", "brown", "grey", "green"]))
        c = _c(colour, rng)
        parts = [Part(BOX, (0, 0, h / 2), (length / 2, 0.04, h / 2), c, TEX_STRIPES, reflect=0.6)]
        n = max(int(length / 3.0), 1)
        for k in range(n + 1):
            parts.append(Part(BOX, (-length / 2 + k * length / n, 0, h / 2 + 0.05), (0.06, 0.06, h / 2 + 0.05), c))
    return ObjectSpec(name, 15, colour, parts, {"length": length})


# ------------------------------------------------------------------------------- vegetation
def tree(rng: np.random.Generator, name: str | None = None) -> ObjectSpec:
    name = name or str(rng.choice(["oak tree", "maple tree", "pine tree", "birch tree", "plane tree"]))
    trunk_col = _c("brown", rng) if name != "birch tree" else _c("white", rng)
    leaf = _rgb(np.array([0.12, 0.3, 0.08]) * rng.uniform(0.7, 1.4) + rng.normal(0, 0.02, 3))
    if name == "maple tree" and rng.random() < 0.3:
        leaf = _rgb(np.array([0.6, 0.22, 0.05]) * rng.uniform(0.8, 1.2))
    H = float(rng.uniform(5, 12))
    r_tr = float(rng.uniform(0.12, 0.3))
    if name == "pine tree":
        parts = [Part(CYLINDER, (0, 0, H * 0.2), (r_tr, r_tr, H * 0.2), trunk_col, TEX_BARK, reflect=0.3)]
        for k, f in enumerate((0.35, 0.6, 0.82)):
            r = (1 - f) * H * 0.45 + 0.4
            parts.append(
                Part(ELLIPSOID, (0, 0, f * H), (r, r, H * 0.18), _rgb(np.array(leaf) * 0.8), TEX_FOLIAGE, reflect=0.25)
            )
    else:
        crown = H * float(rng.uniform(0.25, 0.35))
        trunk_h = H - 1.6 * crown
        parts = [
            Part(
                CYLINDER, (0, 0, trunk_h / 2 + 0.3), (r_tr, r_tr, trunk_h / 2 + 0.3), trunk_col, TEX_BARK, reflect=0.3
            ),
            Part(
                ELLIPSOID,
                (0, 0, H - crown),
                (crown * rng.uniform(0.9, 1.2), crown * rng.uniform(0.9, 1.2), crown),
                leaf,
                TEX_FOLIAGE,
                reflect=0.25,
            ),
        ]
        if rng.random() < 0.6:
            off = crown * 0.5
            parts.append(
                Part(
                    ELLIPSOID,
                    (off * rng.uniform(-1, 1), off * rng.uniform(-1, 1), H - 1.3 * crown),
                    (crown * 0.75, crown * 0.75, crown * 0.65),
                    leaf,
                    TEX_FOLIAGE,
                    reflect=0.25,
                )
            )
    return ObjectSpec(name, 16, "green", parts, {"height": H})


def bush(rng: np.random.Generator, name: str | None = None, length: float = 0.0) -> ObjectSpec:
    name = name or str(rng.choice(["bush", "shrub", "flower bed"], p=[0.5, 0.35, 0.15]))
    leaf = _rgb(np.array([0.13, 0.33, 0.1]) * rng.uniform(0.7, 1.3))
    if name == "hedge":
        h = float(rng.uniform(0.8, 1.8))
        parts = [Part(BOX, (0, 0, h / 2), (max(length, 1.0) / 2, 0.45, h / 2), leaf, TEX_FOLIAGE, reflect=0.25)]
    elif name == "flower bed":
        parts = [
            Part(
                ELLIPSOID,
                (0, 0, 0.05),
                (1.2, 0.8, 0.35),
                _rgb(np.array(leaf) * 0.7 + np.array([0.3, 0.05, 0.15])),
                TEX_FOLIAGE,
                reflect=0.25,
            )
        ]
    else:
        r = float(rng.uniform(0.5, 1.3))
        parts = [
            Part(ELLIPSOID, (0, 0, r * 0.7), (r, r * rng.uniform(0.8, 1.2), r * 0.8), leaf, TEX_FOLIAGE, reflect=0.25)
        ]
    return ObjectSpec(name, 16, "green", parts)
