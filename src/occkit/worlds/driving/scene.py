"""A scene of the synthetic world: a town, its objects with trajectories, the ego drive, lighting
and a text description; and the scene posed at a frame (:func:`scene_state_at`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from occkit.geometry.transforms import make_transform, rotation_z
from occkit.labels import OCC3D_CLASSES
from occkit.worlds.driving import catalog as cat
from occkit.worlds.driving.config import SynthConfig, scene_name, scene_seed
from occkit.worlds.driving.layout import CURB, Block, GroundMap, Path, Street, Town, build_town, random_route
from occkit.worlds.driving.primitives import Primitives, empty_primitives

AREAS = ("residential", "downtown", "industrial", "park")
WEATHERS = ("sunny", "overcast", "dusk", "hazy")
KEEP_RADIUS = 110.0
"""Objects farther than this from the ego route are not generated."""
EGO_LENGTH, EGO_WIDTH, EGO_CENTER_X = 4.7, 1.95, 1.35
"""The ego car's footprint (its origin is under the rear axle, its centre ahead of it)."""


@dataclass(frozen=True)
class Lighting:
    """Per-scene light: unit ``sun_dir`` (towards the sun, world), colours as RGB in [0, 1]."""

    weather: str
    sun_dir: tuple[float, float, float]
    sun_color: tuple[float, float, float]
    ambient: float
    sky_zenith: tuple[float, float, float]
    sky_horizon: tuple[float, float, float]
    fog_distance: float
    exposure: float
    tint: tuple[float, float, float]


@dataclass
class SynthObject:
    """One object: identity, appearance and motion.

    ``path is None``: static at ``(x, y, yaw)``. Otherwise it sits at arc length
    ``s0 + speed * t`` on ``path`` at time ``t`` (seconds), heading along it (``yaw`` is then an
    offset: pi for a vehicle driving backwards, which never happens).
    """

    instance: int
    spec: cat.ObjectSpec
    x: float
    y: float
    yaw: float
    path: Path | None = None
    s0: float = 0.0
    speed: float = 0.0
    parts: Primitives = field(default_factory=empty_primitives)

    @property
    def dynamic(self) -> bool:
        return self.path is not None and self.speed > 0

    def pose(self, t: float) -> tuple[float, float, float]:
        """World ``(x, y, yaw)`` at time ``t``."""
        if self.path is None:
            return self.x, self.y, self.yaw
        x, y, yaw = self.path.pose_at(self.s0 + self.speed * t)
        return float(x), float(y), float(yaw) + self.yaw

    def velocity(self, t: float) -> tuple[float, float]:
        """World ``(vx, vy)`` in m/s at time ``t``."""
        if not self.dynamic:
            return 0.0, 0.0
        _, _, yaw = self.pose(t)
        return self.speed * math.cos(yaw), self.speed * math.sin(yaw)


@dataclass
class Scene:
    """Everything that defines a scene; its frames are pure functions of it."""

    index: int
    name: str
    config: SynthConfig
    area: str
    lighting: Lighting
    town: Town
    ego_path: Path
    ego_speed: float
    objects: list[SynthObject]
    description: str
    times: np.ndarray
    """``(T,)`` frame times in seconds."""
    cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """Derived tables (filled on first use by :func:`scene_state_at`)."""

    @property
    def ground(self) -> GroundMap:
        return self.town.ground

    def ego_pose(self, frame_index: int) -> tuple[float, float, float]:
        return self.ego_pose_at(float(self.times[frame_index]))

    def ego_pose_at(self, t: float) -> tuple[float, float, float]:
        """World ``(x, y, yaw)`` of the ego at time ``t`` (seconds)."""
        x, y, yaw = self.ego_path.pose_at(self.ego_speed * float(t))
        return float(x), float(y), float(yaw)


@dataclass
class SceneState:
    """The scene at one frame.

    Attributes:
        scene: the scene.
        frame_index, time: which frame, and its time in seconds.
        T_global_from_ego: ``(4, 4)`` float64 ego pose.
        prims: world-frame primitives of every object near the ego.
        objects: one dict per object near the ego: instance, class_id, class_name, name,
            attributes, center (3,) (box centre, world), size (l, w, h), yaw, velocity (vx, vy).
    """

    scene: Scene
    frame_index: int
    time: float
    T_global_from_ego: torch.Tensor
    prims: Primitives
    objects: list[dict[str, Any]]
    cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """Derived per-frame data (e.g. the sun's shadow map), filled on first use."""

    @property
    def ground(self) -> GroundMap:
        return self.scene.ground

    @property
    def lighting(self) -> Lighting:
        return self.scene.lighting


def make_lighting(rng: np.random.Generator, weather: str) -> Lighting:
    """Sun, sky, fog and exposure of a weather (with per-scene variation)."""
    az = rng.uniform(0, 2 * math.pi)
    elev = math.radians(
        {"sunny": rng.uniform(25, 65), "overcast": 55.0, "dusk": rng.uniform(4, 14), "hazy": rng.uniform(25, 45)}[
            weather
        ]
    )
    sun_dir = (math.cos(elev) * math.cos(az), math.cos(elev) * math.sin(az), math.sin(elev))
    j = lambda v, s=0.05: tuple(float(x) for x in np.clip(np.asarray(v) * rng.uniform(1 - s, 1 + s, 3), 0, 1.5))  # noqa: E731
    table = {
        "sunny": ((1.0, 0.96, 0.88), 0.38, (0.22, 0.42, 0.85), (0.68, 0.8, 0.95), 320.0),
        "overcast": ((0.3, 0.3, 0.3), 0.78, (0.56, 0.58, 0.62), (0.76, 0.77, 0.79), 170.0),
        "dusk": ((1.0, 0.58, 0.32), 0.3, (0.16, 0.2, 0.45), (0.95, 0.58, 0.38), 220.0),
        "hazy": ((0.75, 0.72, 0.62), 0.55, (0.62, 0.66, 0.72), (0.86, 0.85, 0.8), 100.0),
    }
    sun_c, amb, zen, hor, fog = table[weather]
    return Lighting(
        weather=weather,
        sun_dir=sun_dir,
        sun_color=j(sun_c),
        ambient=float(amb * rng.uniform(0.9, 1.1)),
        sky_zenith=j(zen),
        sky_horizon=j(hor),
        fog_distance=float(fog * rng.uniform(0.85, 1.15)),
        exposure=float(rng.uniform(0.9, 1.1)),
        tint=j((1.0, 1.0, 1.0), 0.04),
    )


# ---------------------------------------------------------------------------------------------
class _Builder:
    """Collects objects, checks clearance of anything on the road against the ego and movers."""

    def __init__(
        self,
        rng: np.random.Generator,
        town: Town,
        ego: Path,
        ego_speed: float,
        times: np.ndarray,
        extra_seed: list[int],
    ) -> None:
        self.rng, self.town, self.times = rng, town, times
        # a second stream (seeded apart) for additions that must leave the main stream's draws alone
        self.rng_extra = np.random.default_rng(extra_seed)
        self.objects: list[SynthObject] = []
        self.ego_xy = np.stack(ego.pose_at(ego_speed * times), -1)  # (T, 3) x, y, yaw
        route = ego.xy[:: max(1, int(5.0 / 0.25))]
        self.route_xy = np.concatenate([route, ego.xy[-1:]])
        self.movers: list[np.ndarray] = []  # footprint circles over time of accepted movers
        self.ego_circles = self._circles(self.ego_xy, EGO_LENGTH, EGO_WIDTH, EGO_CENTER_X)

    def near_route(self, x: float, y: float, radius: float = KEEP_RADIUS) -> bool:
        d2 = ((self.route_xy - np.array([x, y])) ** 2).sum(-1)
        return bool(d2.min() <= radius * radius)

    @staticmethod
    def _circles(pose: np.ndarray, L: float, W: float, cx: float = 0.0) -> np.ndarray:
        """``(T, K, 3)`` circles (x, y, r) covering a footprint at poses ``(T, 3)``."""
        k = max(int(math.ceil(L / max(W, 0.5))), 1)
        offs = cx + (np.arange(k) + 0.5) / k * L - L / 2
        r = math.hypot(L / (2 * k), W / 2)
        c, s = np.cos(pose[:, 2:3]), np.sin(pose[:, 2:3])
        x = pose[:, 0:1] + c * offs
        y = pose[:, 1:2] + s * offs
        return np.stack([x, y, np.full_like(x, r)], -1)

    @staticmethod
    def _clash(a: np.ndarray, b: np.ndarray, margin: float) -> bool:
        d = np.linalg.norm(a[:, :, None, :2] - b[:, None, :, :2], axis=-1)
        return bool((d < a[:, :, None, 2] + b[:, None, :, 2] + margin).any())

    def add(
        self,
        spec: cat.ObjectSpec,
        x: float,
        y: float,
        yaw: float,
        path: Path | None = None,
        s0: float = 0.0,
        speed: float = 0.0,
        check: bool = False,
        mover: bool = False,
        keep: float = KEEP_RADIUS,
    ) -> SynthObject | None:
        obj = SynthObject(len(self.objects) + 1, spec, float(x), float(y), float(yaw), path, float(s0), float(speed))
        poses = np.array([obj.pose(float(t)) for t in self.times])
        if not any(self.near_route(px, py, keep) for px, py, _ in poses[[0, -1]]):
            return None
        if check or mover:
            L, W, _ = spec.size()
            circ = self._circles(poses, L, W)
            if self._clash(circ, self.ego_circles, 0.4):
                return None
            if mover and any(self._clash(circ, m, 0.3) for m in self.movers):
                return None
            if mover:
                self.movers.append(circ)
        obj.parts = cat.parts_to_primitives(spec, obj.instance)
        self.objects.append(obj)
        return obj


def _sidewalk_stretches(town: Town) -> list[tuple[Street, float, float]]:
    """Every street's stretches between intersections: (street, start, end) along it."""
    out = []
    H = town.size
    for streets, cross in ((town.streets_x, town.streets_y), (town.streets_y, town.streets_x)):
        for s in streets:
            cuts = [(-H, -H)] + [(c.pos - c.half_total, c.pos + c.half_total) for c in cross] + [(H, H)]
            for (_, a), (b, _) in zip(cuts[:-1], cuts[1:]):
                if b - a > 4:
                    out.append((s, a, b))
    return out


def _at(s: Street, along: float, across: float) -> tuple[float, float]:
    """World xy at ``along`` the street and ``across`` from its centre line (+ = left of +axis)."""
    return (s.pos - across, along) if s.axis == 1 else (along, s.pos + across)


def _street_yaw(s: Street, forward: bool = True) -> float:
    base = math.pi / 2 if s.axis == 1 else 0.0
    return base if forward else base + math.pi


def build_scene(config: SynthConfig, scene_index: int) -> Scene:
    """Build scene ``scene_index``: a pure function of ``(config.seed, scene_index)`` and the
    options that shape scenes (frames, frame rate)."""
    if not 0 <= scene_index:
        raise ValueError(f"scene_index must be >= 0, got {scene_index}")
    rng = np.random.default_rng(scene_seed(config.seed, scene_index))
    area = str(rng.choice(AREAS, p=[0.4, 0.3, 0.15, 0.15]))
    weather = str(rng.choice(WEATHERS, p=[0.45, 0.25, 0.15, 0.15]))
    lighting = make_lighting(rng, weather)
    town = build_town(rng, area)
    times = np.arange(config.frames, dtype=np.float64) / config.frame_rate_hz
    duration = float(times[-1])
    ego_lane = 1 if rng.random() < 0.3 else 0  # the outer lane, where a street has two
    ego_speed = float(rng.uniform(3.0, 11.0))
    if np.random.default_rng(scene_seed(config.seed, scene_index) + [3]).random() < 0.05:
        ego_speed = 0.0  # now and then the ego waits (its own stream: the rest of the scene stays put)
    ego_path = random_route(rng, town, ego_speed * duration + 5.0, lane=ego_lane)
    b = _Builder(rng, town, ego_path, ego_speed, times, scene_seed(config.seed, scene_index) + [1])
    dens = {"residential": 1.0, "downtown": 1.5, "industrial": 0.8, "park": 0.8}[area]

    _fill_blocks(b, rng, town)
    _sidewalk_furniture(b, rng, town, area)
    _parked_vehicles(b, rng, town, dens)
    _traffic(b, rng, town, dens, duration)
    _pedestrians(b, rng, town, dens, area)
    _road_works(b, rng, town)

    scene = Scene(
        index=scene_index,
        name=scene_name(scene_index),
        config=config,
        area=area,
        lighting=lighting,
        town=town,
        ego_path=ego_path,
        ego_speed=ego_speed,
        objects=b.objects,
        description="",
        times=times,
    )
    scene.description = describe_scene(scene)
    return scene


def _uniform_within(rng: np.random.Generator, lo: float, hi: float) -> float:
    """A uniform draw in ``[lo, hi]``; where a small block leaves no room (``hi < lo``), its middle.

    One draw is taken either way, so the scenes of every other seed stay byte-identical (a
    construction block narrower than 16 m made ``rng.uniform`` raise ``high - low < 0``: seed
    4242, scene 2)."""
    if hi < lo:
        lo = hi = (lo + hi) / 2
    return float(rng.uniform(lo, hi))


def _pick(
    rng: np.random.Generator, u: float, table: Sequence[tuple[float, Callable[[np.random.Generator], cat.ObjectSpec]]]
) -> cat.ObjectSpec:
    """What the first row of ``table`` whose threshold exceeds the draw ``u`` (in ``[0, 1)``)
    makes from ``rng``; the last row, threshold 1.0, takes the rest. Only the chosen row draws."""
    for threshold, make in table[:-1]:
        if u < threshold:
            return make(rng)
    return table[-1][1](rng)


def _parked_motorcycle(rng: np.random.Generator) -> cat.ObjectSpec:
    return cat.motorcycle(rng, False)


def _fill_blocks(b: _Builder, rng: np.random.Generator, town: Town) -> None:
    """Fill every block near the route by its use: lots of houses or towers, a park, a car park, a
    fenced yard (warehouses, a construction site) or a plaza."""
    for blk in town.blocks:
        cx, cy = (blk.x0 + blk.x1) / 2, (blk.y0 + blk.y1) / 2
        r = math.hypot(blk.x1 - blk.x0, blk.y1 - blk.y0) / 2
        if not b.near_route(cx, cy, KEEP_RADIUS + r):
            continue
        fill = _BLOCK_FILLERS.get(blk.use)
        if fill is not None:
            fill(b, rng, blk)


@dataclass(frozen=True)
class _Lots:
    """How a block of houses or towers is cut into lots: the building kind, the ranges (m) of its
    setback from the edge, its depth and the lot's width, and how much narrower than its lot it is."""

    kind: str
    setback: tuple[float, float]
    depth: tuple[float, float]
    lot: tuple[float, float]
    trim: float


_LOTS = {
    "houses": _Lots("house", (3.0, 7.0), (8.0, 12.0), (12.0, 20.0), 2.0),
    "towers": _Lots("tower", (0.0, 1.0), (12.0, 22.0), (14.0, 32.0), 0.5),
}


@dataclass(frozen=True)
class _Edge:
    """One edge of a block, whose lots face it: along x (or y), its fixed coordinate, the sign
    pointing into the block, and half the block's depth across it."""

    along_x: bool
    fixed: float
    inward: int
    half: float

    @property
    def yaw(self) -> float:
        """The heading of a building facing the edge."""
        return 0.0 if self.along_x else math.pi / 2

    def at(self, along: Any, across: Any) -> tuple[Any, Any]:
        """The ``(x, y)`` of a point ``along`` the edge and ``across`` it."""
        return (along, across) if self.along_x else (across, along)


def _fill_lots(b: _Builder, rng: np.random.Generator, blk: Block) -> None:
    """A block of houses (with their yards) or towers: lots along its four edges."""
    lots = _LOTS[blk.use]
    bw, bh = blk.x1 - blk.x0, blk.y1 - blk.y0
    # four edges: (start, end, fixed edge coordinate, axis of the edge, inward sign)
    for edge in range(4):
        along_x = edge < 2
        lo, hi = (blk.x0, blk.x1) if along_x else (blk.y0, blk.y1)
        side = _Edge(along_x, (blk.y0, blk.y1, blk.x0, blk.x1)[edge], (1, -1, 1, -1)[edge], (bh if along_x else bw) / 2)
        if not along_x:
            margin = lots.setback[1] + lots.depth[1] + 2.0
            lo, hi = lo + margin, hi - margin
        _fill_edge(b, rng, lots, side, lo, hi)


def _fill_edge(b: _Builder, rng: np.random.Generator, lots: _Lots, side: _Edge, lo: float, hi: float) -> None:
    """The lots of one edge of a block, from ``lo`` to ``hi`` along it, until the room runs out."""
    t = lo + 1.0
    while t < hi - 6.0:
        w = min(float(rng.uniform(*lots.lot)), hi - t - 1.0)
        if w < 6.0:
            break
        sb, dp = float(rng.uniform(*lots.setback)), float(rng.uniform(*lots.depth))
        if dp + sb > side.half - 1.0:
            dp = side.half - 1.0 - sb
        if dp < 5.0:
            break
        a = t + w / 2
        x, y = side.at(a, side.fixed + side.inward * (sb + dp / 2))
        if rng.random() < 0.9:
            b.add(cat.building(rng, lots.kind, w - lots.trim, dp), x, y, side.yaw)
        if lots.kind == "house":
            _back_yard(b, side, a, w, sb, dp)
            _front_yard(b, rng, side, a, w, sb)
        t += w


def _back_yard(b: _Builder, side: _Edge, a: float, w: float, sb: float, dp: float) -> None:
    """Trees and bushes behind the house of the lot centred at ``a`` (when the block leaves room),
    drawn from the builder's second stream."""
    room = side.half - sb - dp
    yr = b.rng_extra
    for _ in range(int(yr.integers(0, 3)) if room > 4.0 else 0):
        cb = side.fixed + side.inward * (sb + dp + float(yr.uniform(2.0, min(room - 1.0, 9.0))))
        ab = a + float(yr.uniform(-w / 2.5, w / 2.5))
        xx, yy = side.at(ab, cb)
        b.add(cat.tree(yr) if yr.random() < 0.75 else cat.bush(yr), xx, yy, float(yr.uniform(0, 6.28)))


def _front_yard(b: _Builder, rng: np.random.Generator, side: _Edge, a: float, w: float, sb: float) -> None:
    """The front yard of the lot centred at ``a``: a tree or bush, a hedge or fence, or nothing."""
    yc = side.fixed + side.inward * sb / 2
    u = rng.random()
    if u < 0.35 and sb > 2.0:
        spec = cat.tree(rng) if rng.random() < 0.6 else cat.bush(rng)
        xx, yy = side.at(a + rng.uniform(-w / 3, w / 3), yc)
        b.add(spec, xx, yy, float(rng.uniform(0, 6.28)))
    elif u < 0.6:
        xx, yy = side.at(a, side.fixed + side.inward * 0.6)
        spec = (
            cat.bush(rng, "hedge", w - 2.0)
            if rng.random() < 0.5
            else cat.wall_or_fence(rng, str(rng.choice(["fence", "brick wall"])), w - 2.0)
        )
        b.add(spec, xx, yy, side.yaw)


def _fill_park(b: _Builder, rng: np.random.Generator, blk: Block) -> None:
    """A park: trees, bushes, benches, lamps and other things scattered over it."""
    bw, bh = blk.x1 - blk.x0, blk.y1 - blk.y0
    n = int(bw * bh / 60)
    for _ in range(n):
        x, y = rng.uniform(blk.x0 + 2, blk.x1 - 2), rng.uniform(blk.y0 + 2, blk.y1 - 2)
        spec = _pick(
            rng,
            rng.random(),
            [
                (0.6, cat.tree),
                (0.85, cat.bush),
                (0.95, lambda r: cat.street_furniture(r, str(r.choice(["bench", "street lamp"])))),
                (1.0, cat.other_object),
            ],
        )
        b.add(spec, x, y, float(rng.uniform(0, 6.28)))


def _fill_parking(b: _Builder, rng: np.random.Generator, blk: Block) -> None:
    """A car park: rows of bays, about half of them taken, and street lamps along one side."""
    yaw = math.pi / 2 if rng.random() < 0.5 else 0.0
    step_a, step_b = (2.7, 6.5) if yaw else (6.5, 2.7)
    x = blk.x0 + 4.0
    while x < blk.x1 - 4.0:
        y = blk.y0 + 4.0
        while y < blk.y1 - 4.0:
            if rng.random() < 0.55:
                spec = _pick(
                    rng,
                    rng.random(),
                    [(0.85, cat.car), (0.9, cat.trailer), (0.95, _parked_motorcycle), (1.0, cat.truck)],
                )
                b.add(spec, x, y, yaw + (math.pi if rng.random() < 0.5 else 0.0))
            y += step_b if yaw else step_a * 1.0
        x += step_a if yaw else step_b * 2.0
    for _ in range(3):
        b.add(
            cat.street_furniture(rng, "street lamp"),
            rng.uniform(blk.x0 + 1, blk.x1 - 1),
            blk.y0 + 1.0,
            math.pi / 2,
        )


def _fence_yard(b: _Builder, rng: np.random.Generator, blk: Block) -> None:
    """The fences (or a wall) along the two long sides of a warehouse yard or a construction site."""
    bw = blk.x1 - blk.x0
    fence = cat.wall_or_fence(rng, str(rng.choice(["fence", "concrete wall"])), bw - 4.0)
    b.add(fence, (blk.x0 + blk.x1) / 2, blk.y0 + 1.0, 0.0)
    fence2 = cat.wall_or_fence(rng, "fence", bw - 4.0)
    b.add(fence2, (blk.x0 + blk.x1) / 2, blk.y1 - 1.0, 0.0)


def _fill_warehouses(b: _Builder, rng: np.random.Generator, blk: Block) -> None:
    """A fenced warehouse yard: the warehouse (where it fits) and trucks and trailers at the front."""
    _fence_yard(b, rng, blk)
    bw, bh = blk.x1 - blk.x0, blk.y1 - blk.y0
    L, W = min(bw - 16, float(rng.uniform(25, 50))), min(bh - 20, float(rng.uniform(15, 30)))
    if L > 8 and W > 8:
        b.add(cat.building(rng, "warehouse", L, W), (blk.x0 + blk.x1) / 2, (blk.y0 + blk.y1) / 2, 0.0)
    for _ in range(int(rng.integers(3, 8))):
        x, y = rng.uniform(blk.x0 + 4, blk.x1 - 4), blk.y0 + rng.uniform(4, 7)
        spec = _pick(rng, rng.random(), [(0.35, cat.truck), (0.6, cat.trailer), (1.0, cat.other_object)])
        b.add(spec, x, y, 0.0)


def _fill_construction(b: _Builder, rng: np.random.Generator, blk: Block) -> None:
    """A fenced construction site: construction vehicles, cones, barriers and other things."""
    _fence_yard(b, rng, blk)
    for _ in range(int(rng.integers(2, 5))):
        b.add(
            cat.construction_vehicle(rng),
            _uniform_within(rng, blk.x0 + 8, blk.x1 - 8),
            _uniform_within(rng, blk.y0 + 8, blk.y1 - 8),
            float(rng.uniform(0, 6.28)),
        )
    for _ in range(int(rng.integers(6, 14))):
        spec = _pick(rng, rng.random(), [(0.45, cat.other_object), (0.75, cat.traffic_cone), (1.0, cat.barrier)])
        b.add(
            spec,
            rng.uniform(blk.x0 + 3, blk.x1 - 3),
            rng.uniform(blk.y0 + 3, blk.y1 - 3),
            float(rng.uniform(0, 6.28)),
        )


def _fill_plaza(b: _Builder, rng: np.random.Generator, blk: Block) -> None:
    """A plaza: plane trees, street furniture, flower beds and other things."""
    bw, bh = blk.x1 - blk.x0, blk.y1 - blk.y0
    for _ in range(int(bw * bh / 120)):
        u = rng.random()
        name = str(rng.choice(["bench", "street lamp", "bollard", "billboard", "mailbox"]))
        spec = _pick(
            rng,
            u,
            [
                (0.35, lambda r: cat.tree(r, "plane tree")),
                (0.8, lambda r: cat.street_furniture(r, name)),
                (0.9, cat.other_object),
                (1.0, lambda r: cat.bush(r, "flower bed")),
            ],
        )
        b.add(
            spec,
            rng.uniform(blk.x0 + 2, blk.x1 - 2),
            rng.uniform(blk.y0 + 2, blk.y1 - 2),
            float(rng.choice([0.0, math.pi / 2])),
        )


#: Block use -> what fills such a block (a use not here is left empty).
_BLOCK_FILLERS: dict[str, Callable[[_Builder, np.random.Generator, Block], None]] = {
    "houses": _fill_lots,
    "towers": _fill_lots,
    "park": _fill_park,
    "parking": _fill_parking,
    "warehouses": _fill_warehouses,
    "construction": _fill_construction,
    "plaza": _fill_plaza,
}


def _sidewalk_furniture(b: _Builder, rng: np.random.Generator, town: Town, area: str) -> None:
    names = [
        "street lamp",
        "stop sign",
        "speed limit sign",
        "street sign",
        "parking sign",
        "fire hydrant",
        "bollard",
        "mailbox",
        "bench",
        "utility pole",
        "bus shelter",
    ]
    p_tree = {"residential": 0.55, "downtown": 0.35, "industrial": 0.25, "park": 0.6}[area]
    for s, a, e in _sidewalk_stretches(town):
        for side in (-1.0, 1.0):
            across = side * (s.half_road + 0.7)
            t = a + float(rng.uniform(1.5, 6))
            while t < e - 1.5:
                x, y = _at(s, t, across)
                if b.near_route(x, y):
                    u = rng.random()
                    yaw = _street_yaw(s) + (math.pi / 2 if side > 0 else -math.pi / 2)
                    if u < p_tree:
                        b.add(
                            cat.tree(rng) if rng.random() < 0.85 else cat.bush(rng), x, y, float(rng.uniform(0, 6.28))
                        )
                    elif u < p_tree + 0.3:
                        name = str(rng.choice(names, p=[0.28, 0.05, 0.06, 0.08, 0.05, 0.1, 0.1, 0.05, 0.1, 0.1, 0.03]))
                        if name == "bus shelter":
                            xx, yy = _at(s, t, side * (s.half_road + s.sidewalk - 1.2))
                            b.add(
                                cat.street_furniture(rng, name),
                                xx,
                                yy,
                                _street_yaw(s) + (math.pi / 2 if side > 0 else -math.pi / 2) - math.pi / 2,
                            )
                        else:
                            b.add(cat.street_furniture(rng, name), x, y, yaw)
                    elif u < p_tree + 0.38:
                        b.add(cat.other_object(rng), x, y, float(rng.uniform(0, 6.28)))
                    elif u < p_tree + 0.45:
                        spec = cat.bicycle(rng, False) if rng.random() < 0.6 else cat.motorcycle(rng, False)
                        b.add(spec, x, y, _street_yaw(s))
                t += float(rng.uniform(6, 13))
        # traffic lights at the corners of the intersection at the end of the stretch
        if e < town.size - 1 and rng.random() < 0.5:
            for side in (-1.0, 1.0):
                x, y = _at(s, e - 0.6, side * (s.half_road + 0.5))
                b.add(cat.street_furniture(rng, "traffic light"), x, y, _street_yaw(s))


def _parked_vehicles(b: _Builder, rng: np.random.Generator, town: Town, dens: float) -> None:
    for s, a, e in _sidewalk_stretches(town):
        if s.parking <= 0:
            continue
        for side in (-1.0, 1.0):
            across = side * (s.half_road - s.parking / 2)
            t = a + 7.0
            while t < e - 7.0:
                x, y = _at(s, t, across)
                if b.near_route(x, y) and rng.random() < 0.55 * min(dens, 1.3):
                    spec = _pick(
                        rng,
                        rng.random(),
                        [
                            (0.82, cat.car),
                            (0.88, cat.truck),
                            (0.93, _parked_motorcycle),
                            (0.97, cat.trailer),
                            (1.0, cat.construction_vehicle),
                        ],
                    )
                    L = spec.size()[0]
                    forward = (side < 0) if s.axis == 0 else (side < 0)
                    xx, yy = _at(s, t + L / 2, across)
                    b.add(spec, xx, yy, _street_yaw(s, forward), check=True)
                    t += L + float(rng.uniform(0.8, 3.0))
                else:
                    t += float(rng.uniform(5.0, 8.0))


def _route_near(b: _Builder, rng: np.random.Generator, town: Town, length: float, lane: int) -> Path:
    """A route starting near the ego's (retry a few times, keep the best)."""
    best = None
    for _ in range(6):
        p = random_route(rng, town, length, lane)
        d = np.min(((b.route_xy - p.xy[0]) ** 2).sum(-1))
        if best is None or d < best[0]:
            best = (d, p)
        if d < 70.0**2:
            break
    return best[1]  # type: ignore[index]


def _traffic(b: _Builder, rng: np.random.Generator, town: Town, dens: float, duration: float) -> None:
    n = int(rng.integers(8, 18) * dens)
    for _ in range(n):
        u = rng.random()
        speed = 0.0 if rng.random() < 0.15 else float(rng.uniform(3.0, 12.0))
        lane = int(rng.integers(0, 2))
        path = _route_near(b, rng, town, speed * duration + 60.0, lane)
        s0 = float(rng.uniform(5.0, 45.0))
        if u < 0.62:
            b.add(cat.car(rng), 0, 0, 0.0, path, s0, speed, mover=True)
        elif u < 0.7:
            b.add(cat.bus(rng), 0, 0, 0.0, path, s0 + 8.0, speed, mover=True)
        elif u < 0.78:
            b.add(cat.truck(rng), 0, 0, 0.0, path, s0 + 5.0, speed, mover=True)
        elif u < 0.84:  # tractor with a trailer behind it
            tr, tl = cat.truck(rng), cat.trailer(rng)
            L1, L2 = tr.size()[0], tl.size()[0]
            s_tr = s0 + L2 + 5.0
            o1 = b.add(tr, 0, 0, 0.0, path, s_tr, speed, mover=True)
            if o1 is not None:
                b.add(tl, 0, 0, 0.0, path, s_tr - L1 / 2 - L2 / 2 + 0.8, speed, check=True)
        elif u < 0.9:
            b.add(cat.motorcycle(rng, True), 0, 0, 0.0, path, s0, speed, mover=True)
        elif u < 0.93:
            b.add(cat.construction_vehicle(rng), 0, 0, 0.0, path, s0 + 5.0, min(speed, 4.0), mover=True)
        else:  # cyclist near the right edge of the outer lane
            p = _route_near(b, rng, town, 6.0 * duration + 60.0, 1)
            xy = p.xy.copy()
            nrm = np.stack([np.sin(p.yaw), -np.cos(p.yaw)], -1)  # right-hand normal
            p2 = Path(xy=xy + 1.1 * nrm, s=p.s, yaw=p.yaw)
            b.add(cat.bicycle(rng, True), 0, 0, 0.0, p2, s0, float(rng.uniform(2.5, 6.0)), mover=True)


def _pedestrians(b: _Builder, rng: np.random.Generator, town: Town, dens: float, area: str) -> None:
    n = int(rng.integers(10, 22) * dens * (1.5 if area == "downtown" else 1.0))
    stretches = [st for st in _sidewalk_stretches(town) if b.near_route(*_at(st[0], (st[1] + st[2]) / 2, 0.0), 90.0)]
    if not stretches:
        return
    for _ in range(n):
        s, a, e = stretches[int(rng.integers(len(stretches)))]
        side = float(rng.choice([-1.0, 1.0]))
        speed = 0.0 if rng.random() < 0.25 else float(rng.uniform(0.8, 1.8))
        if rng.random() < 0.15:  # crossing the street at the end of the stretch
            along = e - 2.0 if rng.random() < 0.5 else a + 2.0
            p0 = _at(s, along, side * (s.half_total - 1.0))
            p1 = _at(s, along, -side * (s.half_total - 1.0))
            path = Path.from_waypoints([p0, p1])
            b.add(cat.pedestrian(rng), 0, 0, 0.0, path, float(rng.uniform(0, path.length * 0.5)), speed, check=True)
            continue
        across = side * (s.half_road + s.sidewalk * float(rng.uniform(0.5, 0.8)))
        t0 = float(rng.uniform(a + 1, e - 1))
        forward = rng.random() < 0.5
        p0, p1 = _at(s, a + 0.5 if not forward else t0, across), _at(s, e - 0.5 if forward else t0, across)
        if forward:
            path = Path.from_waypoints([p0, p1])
        else:
            path = Path.from_waypoints([p1, p0])
        if path.length < 2.0:
            continue
        b.add(cat.pedestrian(rng), 0, 0, 0.0, path, 0.0, speed, check=True)


def _road_works(b: _Builder, rng: np.random.Generator, town: Town) -> None:
    """Sometimes: cones and barriers closing a parking strip or the outer lane near the ego."""
    n = int(rng.integers(1, 4))
    for _ in range(n):
        k = int(rng.integers(len(b.route_xy)))
        x0, y0 = b.route_xy[k]
        cands = [
            (st, a, e)
            for st, a, e in _sidewalk_stretches(town)
            if a < (y0 if st.axis == 1 else x0) < e and abs((x0 if st.axis == 1 else y0) - st.pos) < st.half_road + 2
        ]
        if not cands:
            continue
        s, a, e = cands[0]
        side = float(rng.choice([-1.0, 1.0]))
        centre = float(rng.uniform(a + 10, max(a + 11, e - 10)))
        across = side * (s.half_road - 1.2)
        for k2 in range(int(rng.integers(5, 10))):
            x, y = _at(s, centre + (k2 - 4) * 2.5, across)
            spec = cat.traffic_cone(rng) if k2 % 2 == 0 or rng.random() < 0.5 else cat.barrier(rng)
            b.add(spec, x, y, _street_yaw(s), check=True)
        if rng.random() < 0.5:
            x, y = _at(s, centre + 3.0, side * (s.half_road + 0.3))
            b.add(cat.other_object(rng), x, y, 0.0, check=True)


# ---------------------------------------------------------------------------------------------
def describe_scene(scene: Scene) -> str:
    """A one-sentence description generated from the scene's content near the ego route."""
    near = [o for o in scene.objects if _min_route_dist(scene, o) < 45.0]
    cls = Counter(o.spec.cls for o in near)
    moving = Counter(o.spec.cls for o in near if o.dynamic)
    parked = sum(1 for o in near if o.spec.cls == 4 and not o.dynamic)
    tall_trees = sum(1 for o in near if o.spec.cls == 16 and o.spec.extra.get("height", 0) > 8)
    weather = {"sunny": "sunny", "overcast": "overcast", "dusk": "dusky", "hazy": "hazy"}[scene.lighting.weather]
    area = {
        "residential": "residential street",
        "downtown": "downtown street",
        "industrial": "street in an industrial area",
        "park": "street along a park",
    }[scene.area]
    n_moving = moving[4] + moving[10] + moving[3] + moving[6]
    # salient features, scored by how much of each there is; the description names the top three
    scored = [
        (parked / 8, "parked cars"),
        (n_moving / 6, "busy traffic" if n_moving >= 6 else "light traffic"),
        (1.1 * min(cls[3], 1), "a bus" if cls[3] == 1 else "buses"),
        ((cls[10] + cls[9]) / 5, "trucks and trailers"),
        (max(tall_trees / 10, cls[16] / 30), "tall trees" if tall_trees >= 4 else "trees and bushes"),
        (
            1.2
            * any(
                o.spec.name in ("office tower", "apartment building", "hotel") and o.spec.extra.get("height", 0) > 20
                for o in near
            ),
            "tall buildings",
        ),
        (cls[7] / 6, "pedestrians on the sidewalks" if cls[7] >= 3 else "a few pedestrians"),
        (0.9 * min(moving[2], 1), "cyclists"),
        (
            cls[8] / 12 + cls[5] / 2 + cls[1] / 6,
            "road works marked by traffic cones" + (" and barriers" if cls[1] else "")
            if cls[8]
            else "construction vehicles",
        ),
    ]
    scored.sort(key=lambda x: -x[0])
    parts = [text for score, text in scored[:3] if score >= 0.3]
    if scene.ego_speed == 0:
        parts.append("the ego car standing still")
    body = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
    article = "an" if weather[0] in "aeiou" else "a"
    return f"{article} {weather} {area} with {body}"


def _min_route_dist(scene: Scene, o: SynthObject) -> float:
    x, y, _ = o.pose(0.0)
    d2 = ((scene.ego_path.xy[::8] - np.array([x, y])) ** 2).sum(-1)
    return float(np.sqrt(d2.min()))


# ---------------------------------------------------------------------------------------------
def T_global_from_pose(x: float, y: float, yaw: float, z: float = 0.0) -> torch.Tensor:
    """``(4, 4)`` float64 pose on the ground plane."""
    return make_transform(rotation_z(yaw), torch.tensor([x, y, z], dtype=torch.float64))


def ground_height(ground: GroundMap, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Surface height (0 or ``CURB``) at world points."""
    code = ground.lookup_code(torch.as_tensor(np.stack([x, y], -1), dtype=torch.float32).view(-1, 2))
    return ((code >> 5) & 1).numpy().astype(np.float64) * CURB


def _object_table(scene: Scene) -> dict[str, Any]:
    """Per-scene cache: every object's parts in one :class:`Primitives` (object frames), the
    owner of each part, and each object's box size and box centre (object frame)."""
    if "table" not in scene.cache:
        parts = Primitives.cat([o.parts for o in scene.objects])
        owner = (
            torch.cat([torch.full((len(o.parts),), k, dtype=torch.long) for k, o in enumerate(scene.objects)])
            if scene.objects
            else torch.zeros(0, dtype=torch.long)
        )
        scene.cache["table"] = {
            "parts": parts,
            "owner": owner,
            "size": [o.spec.size() for o in scene.objects],
            "box_center": [_local_box_center(o) for o in scene.objects],
        }
    return scene.cache["table"]


def scene_state_at(
    scene: Scene, frame_index: int, radius: float | None = None, time: float | None = None
) -> SceneState:
    """The scene posed at frame ``frame_index``: objects within ``radius`` (default
    ``config.max_render_distance``) of the ego, as world primitives, and their boxes.

    ``time``: pose the scene at this time (seconds) instead of the frame's, e.g. a LiDAR sweep
    between two keyframes (:mod:`occkit.worlds.driving.sweeps`); ``frame_index`` is then the
    keyframe the state is recorded under."""
    if not 0 <= frame_index < len(scene.times):
        raise IndexError(f"frame_index {frame_index} out of range for {len(scene.times)} frames of {scene.name}")
    radius = scene.config.max_render_distance if radius is None else radius
    t = float(scene.times[frame_index]) if time is None else float(time)
    ex, ey, eyaw = scene.ego_pose_at(t)
    table = _object_table(scene)
    pose = np.asarray([o.pose(t) for o in scene.objects], dtype=np.float64).reshape(-1, 3)
    near = (pose[:, 0] - ex) ** 2 + (pose[:, 1] - ey) ** 2 <= (radius + 20.0) ** 2
    keep = np.nonzero(near)[0]
    zs = np.zeros(len(scene.objects))
    if keep.size:
        zs[keep] = ground_height(scene.ground, pose[keep, 0], pose[keep, 1])
    owner = table["owner"]
    sel = torch.from_numpy(near)[owner] if len(owner) else torch.zeros(0, dtype=torch.bool)
    p = table["parts"].select(sel)
    own = owner[sel]
    pz = torch.from_numpy(np.stack([pose[:, 0], pose[:, 1], pose[:, 2], zs], -1))[own]  # (P, 4) float64
    c, s = torch.cos(pz[:, 2]), torch.sin(pz[:, 2])
    lc = p.center.double()
    cx = lc[:, 0] * c - lc[:, 1] * s + pz[:, 0]
    cy = lc[:, 0] * s + lc[:, 1] * c + pz[:, 1]
    prims = Primitives(
        kind=p.kind,
        center=torch.stack([cx, cy, lc[:, 2] + pz[:, 3]], -1).float(),
        half=p.half,
        yaw=(p.yaw.double() + pz[:, 2]).float(),
        cls=p.cls,
        instance=p.instance,
        color=p.color,
        texture=p.texture,
        reflect=p.reflect,
    )
    prims = prims.select(torch.argsort(prims.kind, stable=True))  # grouped by kind: faster ray tests
    records = []
    for k in keep.tolist():
        o = scene.objects[k]
        x, y, yaw = pose[k]
        L, W, H = table["size"][k]
        loc = table["box_center"][k]
        cc, ss = math.cos(yaw), math.sin(yaw)
        vx, vy = o.velocity(t)
        records.append(
            {
                "instance": o.instance,
                "class_id": o.spec.cls,
                "class_name": OCC3D_CLASSES[o.spec.cls],
                "name": o.spec.name,
                "attributes": {
                    "colour": o.spec.colour,
                    "size": [round(L, 3), round(W, 3), round(H, 3)],
                    **{k2: v for k2, v in o.spec.extra.items() if isinstance(v, (str, bool))},
                },
                "center": [
                    float(x + loc[0] * cc - loc[1] * ss),
                    float(y + loc[0] * ss + loc[1] * cc),
                    float(zs[k] + loc[2]),
                ],
                "size": [L, W, H],
                "yaw": float(yaw),
                "velocity": [float(vx), float(vy)],
                "dynamic": o.dynamic,
            }
        )
    return SceneState(
        scene=scene,
        frame_index=frame_index,
        time=t,
        T_global_from_ego=T_global_from_pose(ex, ey, eyaw, 0.0),
        prims=prims,
        objects=records,
    )


def _local_box_center(o: SynthObject) -> tuple[float, float, float]:
    lo = np.array([np.inf] * 3)
    hi = -lo
    for p in o.spec.parts:
        h = np.asarray(p.half, dtype=np.float64)
        if p.kind == 1:
            h = np.array([h[0], h[0], h[2]])
        r = abs(np.cos(p.yaw)) * h[0] + abs(np.sin(p.yaw)) * h[1]
        r2 = abs(np.sin(p.yaw)) * h[0] + abs(np.cos(p.yaw)) * h[1]
        hh = np.array([r, r2, h[2]])
        c = np.asarray(p.center)
        lo, hi = np.minimum(lo, c - hh), np.maximum(hi, c + hh)
    m = (lo + hi) / 2
    return float(m[0]), float(m[1]), float(m[2])
