"""The town layout: a grid of streets, a 2D ground raster, and paths along the lanes.

World frame: x east, y north, z up, ground at z = 0 (road level). The ground is a raster of
``CELL`` metre cells indexed ``[ix, iy]`` with a class (driveable_surface, other_flat, sidewalk,
terrain), a level (0: road level, 1: curb height ``CURB``) and a paint mark (lane lines,
crossings). Streets run along x or along y; right-hand traffic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from occkit.shapes import check_shape

CELL = 0.2
"""Raster cell size in metres."""
CURB = 0.15
"""Height of sidewalks, lawns and traffic islands above the road, metres."""
LANE = 3.5
"""Lane width, metres."""
DRIVEABLE, OTHER_FLAT, SIDEWALK, TERRAIN = 11, 12, 13, 14
PAINT_NONE, PAINT_WHITE, PAINT_YELLOW = 0, 1, 2


@dataclass
class GroundMap:
    """The ground raster (numpy for building, torch for lookups).

    Attributes:
        origin: (x, y) world position of the corner of cell [0, 0].
        cls: ``(NX, NY)`` uint8 Occ3D ground class.
        level: ``(NX, NY)`` uint8, 0 = road level, 1 = ``CURB`` metres higher.
        paint: ``(NX, NY)`` uint8 PAINT_* marks on the surface.
    """

    origin: tuple[float, float]
    cls: np.ndarray
    level: np.ndarray
    paint: np.ndarray
    _torch: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def shape(self) -> tuple[int, int]:
        return self.cls.shape  # type: ignore[return-value]

    def index_range(self, lo: float, hi: float, axis: int) -> slice:
        """Cells whose centres lie in ``[lo, hi)`` along ``axis`` (0 = x, 1 = y), clipped."""
        n = self.shape[axis]
        a = int(math.ceil((lo - self.origin[axis]) / CELL - 0.5))
        b = int(math.ceil((hi - self.origin[axis]) / CELL - 0.5))
        return slice(min(max(a, 0), n), min(max(b, 0), n))

    def fill(
        self,
        x0: float,
        x1: float,
        y0: float,
        y1: float,
        cls: int | None = None,
        level: int | None = None,
        paint: int | None = None,
    ) -> None:
        """Set the cells of the world rectangle ``[x0, x1) x [y0, y1)``."""
        sx, sy = self.index_range(x0, x1, 0), self.index_range(y0, y1, 1)
        if cls is not None:
            self.cls[sx, sy] = cls
        if level is not None:
            self.level[sx, sy] = level
        if paint is not None:
            self.paint[sx, sy] = paint

    def code(self) -> torch.Tensor:
        """``(NX * NY,)`` int16 packed cells ``cls | level << 5 | paint << 6`` (cached)."""
        if "code" not in self._torch:
            packed = self.cls.astype(np.int16) | (self.level.astype(np.int16) << 5) | (self.paint.astype(np.int16) << 6)
            self._torch["code"] = torch.from_numpy(packed.reshape(-1))
        return self._torch["code"]

    def lookup_code(self, xy: torch.Tensor) -> torch.Tensor:
        """Packed cells (see :meth:`code`) at world points ``xy (N, 2)``: ``(N,)`` long; outside
        the raster: terrain at road level."""
        NX, NY = self.shape
        ix = ((xy[:, 0] - self.origin[0]) * (1.0 / CELL)).floor_().long()
        iy = ((xy[:, 1] - self.origin[1]) * (1.0 / CELL)).floor_().long()
        valid = (ix >= 0) & (ix < NX) & (iy >= 0) & (iy < NY)
        flat = ix.clamp_(0, NX - 1).mul_(NY).add_(iy.clamp_(0, NY - 1))
        c = self.code()[flat].long()
        return torch.where(valid, c, torch.full_like(c, TERRAIN))

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(cls, level, paint)`` as torch uint8 tensors (cached)."""
        if not self._torch:
            self._torch["t"] = (torch.from_numpy(self.cls), torch.from_numpy(self.level), torch.from_numpy(self.paint))
        return self._torch["t"]

    def lookup(self, xy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Ground at world points.

        Args:
            xy: ``(N, 2)`` world x, y.
        Returns:
            cls ``(N,)`` long, level ``(N,)`` long, paint ``(N,)`` long. Outside the raster: terrain
            at road level, no paint.
        """
        check_shape(xy, "N 2", name="xy")
        cls, level, paint = self.tensors()
        NX, NY = self.shape
        ix = torch.floor((xy[:, 0] - self.origin[0]) / CELL).long()
        iy = torch.floor((xy[:, 1] - self.origin[1]) / CELL).long()
        valid = (ix >= 0) & (ix < NX) & (iy >= 0) & (iy < NY)
        flat = ix.clamp(0, NX - 1) * NY + iy.clamp(0, NY - 1)
        c = cls.view(-1)[flat].long()
        lv = level.view(-1)[flat].long()
        pt = paint.view(-1)[flat].long()
        c = torch.where(valid, c, torch.full_like(c, TERRAIN))
        lv = torch.where(valid, lv, torch.zeros_like(lv))
        pt = torch.where(valid, pt, torch.zeros_like(pt))
        return c, lv, pt


@dataclass(frozen=True)
class Street:
    """A straight street through the whole town.

    Attributes:
        axis: 0 if it runs along x (at ``y = pos``), 1 if along y (at ``x = pos``).
        pos: its centre line coordinate.
        lanes: lanes per direction.
        median: width of the raised traffic island in the middle (0: a painted centre line).
        parking: width of the parking strip on each side (0: none).
        sidewalk: sidewalk width on each side.
    """

    axis: int
    pos: float
    lanes: int
    median: float
    parking: float
    sidewalk: float

    @property
    def half_road(self) -> float:
        return self.median / 2 + self.lanes * LANE + self.parking

    @property
    def half_total(self) -> float:
        return self.half_road + self.sidewalk


@dataclass(frozen=True)
class Block:
    """A rectangle between streets (inside the sidewalks): ``[x0, x1] x [y0, y1]``, and its use."""

    x0: float
    x1: float
    y0: float
    y1: float
    use: str


@dataclass
class Town:
    """Streets, blocks and the ground raster of one scene."""

    size: float
    streets_x: list[Street]  # streets running along y at x = pos (sorted by pos)
    streets_y: list[Street]  # streets running along x at y = pos
    blocks: list[Block]
    ground: GroundMap


def _street_positions(rng: np.random.Generator, half: float, spacing: tuple[float, float]) -> list[float]:
    pos = [-half + rng.uniform(25, 45)]
    while True:
        nxt = pos[-1] + rng.uniform(*spacing)
        if nxt > half - 25:
            break
        pos.append(nxt)
    return pos


def build_town(rng: np.random.Generator, area: str, half_size: float = 200.0) -> Town:
    """Generate the street grid, the blocks and the ground raster of a town.

    Args:
        rng: the scene's generator.
        area: ``"residential"``, ``"downtown"``, ``"industrial"`` or ``"park"`` (sets block uses).
        half_size: the town covers ``[-half_size, half_size]^2`` metres.
    """
    spacing = {
        "downtown": (55.0, 80.0),
        "residential": (65.0, 95.0),
        "industrial": (75.0, 110.0),
        "park": (70.0, 100.0),
    }[area]

    def street(axis: int, pos: float) -> Street:
        lanes = int(rng.choice([1, 2], p=[0.55, 0.45] if area != "downtown" else [0.3, 0.7]))
        median = float(rng.choice([0.0, 2.0])) if lanes == 2 else 0.0
        parking = float(rng.choice([0.0, 2.4], p=[0.4, 0.6]))
        sidewalk = float(rng.uniform(2.5, 4.5))
        return Street(axis, float(pos), lanes, median, parking, sidewalk)

    sx = [street(1, p) for p in _street_positions(rng, half_size, spacing)]
    sy = [street(0, p) for p in _street_positions(rng, half_size, spacing)]
    n = int(round(2 * half_size / CELL))
    ground = GroundMap(
        origin=(-half_size, -half_size),
        cls=np.full((n, n), TERRAIN, np.uint8),
        level=np.ones((n, n), np.uint8),
        paint=np.zeros((n, n), np.uint8),
    )
    H = half_size
    # sidewalks, then roads on top (intersections become road), then islands and paint
    for s in sx:
        ground.fill(s.pos - s.half_total, s.pos + s.half_total, -H, H, cls=SIDEWALK, level=1)
    for s in sy:
        ground.fill(-H, H, s.pos - s.half_total, s.pos + s.half_total, cls=SIDEWALK, level=1)
    for s in sx:
        ground.fill(s.pos - s.half_road, s.pos + s.half_road, -H, H, cls=DRIVEABLE, level=0)
    for s in sy:
        ground.fill(-H, H, s.pos - s.half_road, s.pos + s.half_road, cls=DRIVEABLE, level=0)
    for streets, cross in ((sx, sy), (sy, sx)):
        for s in streets:
            # stretches between intersections along this street
            cuts = [(-H, -H)] + [(c.pos - c.half_total, c.pos + c.half_total) for c in cross] + [(H, H)]
            for (_, a), (b, _) in zip(cuts[:-1], cuts[1:]):
                a2, b2 = a + 1.0, b - 1.0
                if b2 <= a2:
                    continue
                if s.median > 0:
                    _fill_along(ground, s, a2, b2, -s.median / 2, s.median / 2, cls=OTHER_FLAT, level=1)
                else:
                    _fill_along(ground, s, a2, b2, -0.25, -0.1, paint=PAINT_YELLOW)
                    _fill_along(ground, s, a2, b2, 0.1, 0.25, paint=PAINT_YELLOW)
                for k in range(1, s.lanes):
                    off = s.median / 2 + k * LANE
                    for sign in (-1, 1):
                        t = a2
                        while t < b2:  # dashed: 3 m line, 6 m gap
                            _fill_along(
                                ground, s, t, min(t + 3.0, b2), sign * off - 0.08, sign * off + 0.08, paint=PAINT_WHITE
                            )
                            t += 9.0
                if s.parking > 0:
                    off = s.half_road - s.parking
                    for sign in (-1, 1):
                        _fill_along(ground, s, a2, b2, sign * off - 0.08, sign * off + 0.08, paint=PAINT_WHITE)
                # zebra crossings at both ends of the stretch, stop lines before them
                for end, direction in ((a, 1.0), (b, -1.0)):
                    if abs(end) >= H:
                        continue
                    c0 = end + direction * 0.5
                    c1 = end + direction * 3.5
                    lo_c, hi_c = min(c0, c1), max(c0, c1)
                    w = -s.half_road + 0.3
                    while w < s.half_road - 0.3:
                        _fill_along(ground, s, lo_c, hi_c, w, min(w + 0.5, s.half_road - 0.3), paint=PAINT_WHITE)
                        w += 1.0
    blocks = _blocks(rng, area, sx, sy, H)
    for b in blocks:
        if b.use == "parking":
            ground.fill(b.x0 + 1.0, b.x1 - 1.0, b.y0 + 1.0, b.y1 - 1.0, cls=OTHER_FLAT, level=0)
        elif b.use == "plaza":
            ground.fill(b.x0, b.x1, b.y0, b.y1, cls=OTHER_FLAT, level=1)
    return Town(size=half_size, streets_x=sx, streets_y=sy, blocks=blocks, ground=ground)


def _fill_along(g: GroundMap, s: Street, a: float, b: float, w0: float, w1: float, **kw: int) -> None:
    """Fill along street ``s`` between ``a`` and ``b`` (along it) and offsets ``w0..w1`` across."""
    if s.axis == 1:
        g.fill(s.pos + w0, s.pos + w1, a, b, **kw)
    else:
        g.fill(a, b, s.pos + w0, s.pos + w1, **kw)


def _blocks(rng: np.random.Generator, area: str, sx: list[Street], sy: list[Street], H: float) -> list[Block]:
    uses = {
        "residential": (["houses", "park", "parking", "houses"], [0.6, 0.15, 0.1, 0.15]),
        "downtown": (["towers", "plaza", "parking", "towers"], [0.6, 0.15, 0.15, 0.1]),
        "industrial": (["warehouses", "construction", "parking", "park"], [0.45, 0.3, 0.2, 0.05]),
        "park": (["park", "houses", "parking", "construction"], [0.55, 0.25, 0.1, 0.1]),
    }[area]
    xs = [-H] + [v for s in sx for v in (s.pos - s.half_total, s.pos + s.half_total)] + [H]
    ys = [-H] + [v for s in sy for v in (s.pos - s.half_total, s.pos + s.half_total)] + [H]
    out = []
    for x0, x1 in zip(xs[0::2], xs[1::2]):
        for y0, y1 in zip(ys[0::2], ys[1::2]):
            if x1 - x0 < 8 or y1 - y0 < 8:
                continue
            use = str(rng.choice(uses[0], p=uses[1]))
            out.append(Block(float(x0), float(x1), float(y0), float(y1), use))
    return out


# ---------------------------------------------------------------------------------------------
# Paths


@dataclass
class Path:
    """A smooth path in the ground plane, parametrised by arc length.

    Attributes:
        xy: ``(N, 2)`` float64 samples; s: ``(N,)`` cumulative arc length; yaw: ``(N,)`` heading.
    """

    xy: np.ndarray
    s: np.ndarray
    yaw: np.ndarray

    @property
    def length(self) -> float:
        return float(self.s[-1])

    @staticmethod
    def from_waypoints(points: list[tuple[float, float]], corner: float = 8.0, step: float = 0.25) -> Path:
        """Polyline through ``points`` with corners rounded by quadratic Bezier arcs of reach ``corner``."""
        if len(points) < 2:
            raise ValueError("Path: need at least two waypoints")
        P = [np.asarray(p, dtype=np.float64) for p in points]
        pieces: list[np.ndarray] = [P[0][None]]
        cur = P[0]
        for i in range(1, len(P) - 1):
            a, b, c = P[i - 1], P[i], P[i + 1]
            la, lb = np.linalg.norm(b - a), np.linalg.norm(c - b)
            r = min(corner, 0.5 * la, 0.5 * lb)
            p0 = b + (a - b) / max(la, 1e-9) * r
            p2 = b + (c - b) / max(lb, 1e-9) * r
            pieces.append(_segment(cur, p0, step))
            u = np.linspace(0, 1, max(int(2 * r / step), 2))[1:, None]
            pieces.append((1 - u) ** 2 * p0 + 2 * u * (1 - u) * b + u**2 * p2)
            cur = p2
        pieces.append(_segment(cur, P[-1], step))
        xy = np.concatenate(pieces)
        keep = np.concatenate([[True], np.linalg.norm(np.diff(xy, axis=0), axis=1) > 1e-6])
        xy = xy[keep]
        seg = np.linalg.norm(np.diff(xy, axis=0), axis=1)
        s = np.concatenate([[0.0], np.cumsum(seg)])
        d = np.gradient(xy, axis=0)
        yaw = np.unwrap(np.arctan2(d[:, 1], d[:, 0]))
        return Path(xy=xy, s=s, yaw=yaw)

    def pose_at(self, s: float | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(x, y, yaw)`` at arc length ``s`` (clamped to the path; beyond its end it extends
        straight)."""
        s = np.asarray(s, dtype=np.float64)
        sc = np.clip(s, 0, self.length)
        x = np.interp(sc, self.s, self.xy[:, 0])
        y = np.interp(sc, self.s, self.xy[:, 1])
        yaw = np.interp(sc, self.s, self.yaw)
        extra = s - sc
        return x + extra * np.cos(yaw), y + extra * np.sin(yaw), yaw


def _segment(a: np.ndarray, b: np.ndarray, step: float) -> np.ndarray:
    n = max(int(np.linalg.norm(b - a) / step), 1)
    u = np.linspace(0, 1, n + 1)[1:, None]
    return a + u * (b - a)


def lane_offset(street: Street, lane: int) -> float:
    """Distance of the centre of lane ``lane`` (0 = innermost) from the centre line."""
    return street.median / 2 + (min(lane, street.lanes - 1) + 0.5) * LANE


def random_route(rng: np.random.Generator, town: Town, length: float, lane: int = 0) -> Path:
    """A drive along the lanes: a random walk over intersections (no U-turns), right-hand traffic,
    at least ``length`` metres long, starting part-way along a street."""
    xs, ys = town.streets_x, town.streets_y
    nx, ny = len(xs), len(ys)
    # node (i, j) = intersection of street xs[i] (along y) and ys[j] (along x)
    i, j = int(rng.integers(nx)), int(rng.integers(ny))
    moves = [(1, 0), (-1, 0), (0, 1), (0, -1)]
    came: tuple[int, int] | None = None
    nodes = [(i, j)]
    total = 0.0
    while total < length + 30.0 or len(nodes) < 2:
        opts = [
            m
            for m in moves
            if 0 <= i + m[0] < nx and 0 <= j + m[1] < ny and (came is None or m != (-came[0], -came[1]))
        ]
        if not opts:
            opts = [m for m in moves if 0 <= i + m[0] < nx and 0 <= j + m[1] < ny]
        # prefer going straight
        if came in opts and rng.random() < 0.6:
            m = came
        else:
            m = opts[int(rng.integers(len(opts)))]
        ni, nj = i + m[0], j + m[1]
        total += abs(xs[ni].pos - xs[i].pos) + abs(ys[nj].pos - ys[j].pos)
        i, j, came = ni, nj, m
        nodes.append((i, j))
    # lane lines: for a move along x (street ys[j]) heading +x, the right lane is at y = pos - off
    pts: list[tuple[float, float]] = []
    edges = list(zip(nodes[:-1], nodes[1:]))

    def line(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, float]:
        """(axis of travel, constant coordinate of the lane line) of an edge."""
        if a[1] == b[1]:  # along x on street ys[j]
            st = ys[a[1]]
            sign = 1.0 if b[0] > a[0] else -1.0
            return 0, st.pos - sign * lane_offset(st, lane)
        st = xs[a[0]]
        sign = 1.0 if b[1] > a[1] else -1.0
        return 1, st.pos + sign * lane_offset(st, lane)

    def node_xy(n: tuple[int, int]) -> tuple[float, float]:
        return xs[n[0]].pos, ys[n[1]].pos

    ax, c = line(*edges[0])
    start_frac = float(rng.uniform(0.1, 0.4))
    a, b = node_xy(edges[0][0]), node_xy(edges[0][1])
    along = a[ax] + start_frac * (b[ax] - a[ax])
    pts.append((along, c) if ax == 0 else (c, along))
    for e1, e2 in zip(edges[:-1], edges[1:]):
        ax1, c1 = line(*e1)
        ax2, c2 = line(*e2)
        if ax1 == ax2:
            continue
        pts.append((c2, c1) if ax1 == 0 else (c1, c2))
    ax, c = line(*edges[-1])
    end = node_xy(edges[-1][1])
    pts.append((end[0], c) if ax == 0 else (c, end[1]))
    return Path.from_waypoints(pts)
