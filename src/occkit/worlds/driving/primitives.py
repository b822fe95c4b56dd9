"""Analytic primitives of the synthetic world and their ray and point tests.

Three kinds, each posed by a centre and a yaw about +z (objects stand upright):

- ``BOX``: half extents ``half = (hx, hy, hz)`` along the local axes.
- ``CYLINDER``: vertical, radius ``half[0]`` (``half[1]`` equals it), half height ``half[2]``.
- ``ELLIPSOID``: radii ``half`` along the local axes (a sphere when all three are equal).

Everything is vectorised over "pairs" (one ray tested against one primitive) so that a renderer
can test each primitive only against the rays that can see it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch

from occkit.shapes import Rows, check_shape

BOX, CYLINDER, ELLIPSOID = 0, 1, 2
KIND_NAMES = ("box", "cylinder", "ellipsoid")

#: Texture ids (procedural patterns the shader knows).
TEX_PLAIN, TEX_FACADE, TEX_FOLIAGE, TEX_GLASS, TEX_BRICK, TEX_STRIPES, TEX_BARK, TEX_SKIN = range(8)

#: Ray hits closer than this (metres along a unit ray) are ignored (no self hits, no hits behind).
EPS = 1e-4


@dataclass
class Primitives(Rows):
    """``P`` primitives in one frame (world or local coordinates, as the owner says).

    Attributes:
        kind: ``(P,)`` long, BOX / CYLINDER / ELLIPSOID.
        center: ``(P, 3)`` float32 metres.
        half: ``(P, 3)`` float32 half extents / radii (see module docstring).
        yaw: ``(P,)`` float32 radians about +z.
        cls: ``(P,)`` long Occ3D class 0..16.
        instance: ``(P,)`` long instance id (>= 1) of the object the primitive belongs to.
        color: ``(P, 3)`` float32 albedo in [0, 1].
        texture: ``(P,)`` long texture id (TEX_*).
        reflect: ``(P,)`` float32 LiDAR reflectivity in [0, 1].
    """

    kind: torch.Tensor
    center: torch.Tensor
    half: torch.Tensor
    yaw: torch.Tensor
    cls: torch.Tensor
    instance: torch.Tensor
    color: torch.Tensor
    texture: torch.Tensor
    reflect: torch.Tensor

    @staticmethod
    def cat(parts: list[Primitives]) -> Primitives:
        if not parts:
            return empty_primitives()
        return Primitives(**{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(Primitives)})

    def validate(self, name: str = "primitives") -> None:
        """Raise ``ValueError`` naming the field when shapes or values are wrong."""
        P = len(self)
        for f in fields(self):
            v = getattr(self, f.name)
            spec = "P 3" if f.name in ("center", "half", "color") else "P"
            check_shape(v, spec, name=f"{name}.{f.name}", dims={"P": P})
        if P and bool((self.half <= 0).any()):
            raise ValueError(f"{name}.half: every half extent must be positive")
        if P and not bool(torch.isfinite(self.center).all()):
            raise ValueError(f"{name}.center: not finite")
        if P and (int(self.kind.min()) < 0 or int(self.kind.max()) > 2):
            raise ValueError(f"{name}.kind: must be 0 (box), 1 (cylinder) or 2 (ellipsoid)")
        if P and (int(self.cls.min()) < 0 or int(self.cls.max()) > 16):
            raise ValueError(f"{name}.cls: Occ3D classes must lie in 0..16")

    def bounding_radius(self) -> torch.Tensor:
        """``(P,)`` radius of a sphere around ``center`` holding the primitive."""
        h = self.half.clone()
        cyl = self.kind == CYLINDER
        h[cyl, 1] = h[cyl, 0]
        return h.norm(dim=-1)

    def corners(self) -> torch.Tensor:
        """``(P, 8, 3)`` corners of each primitive's oriented bounding box."""
        s = torch.tensor([[a, b, c] for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)], dtype=self.half.dtype)
        half = self.half.clone()
        cyl = self.kind == CYLINDER
        half[cyl, 1] = half[cyl, 0]  # a cylinder's radius is half[0]
        local = s[None] * half[:, None, :]  # (P, 8, 3)
        c, si = torch.cos(self.yaw)[:, None], torch.sin(self.yaw)[:, None]
        x = c * local[..., 0] - si * local[..., 1]
        y = si * local[..., 0] + c * local[..., 1]
        return torch.stack([x, y, local[..., 2]], -1) + self.center[:, None, :]


def empty_primitives() -> Primitives:
    f, l = torch.float32, torch.long
    return Primitives(
        kind=torch.zeros(0, dtype=l),
        center=torch.zeros(0, 3, dtype=f),
        half=torch.ones(0, 3, dtype=f),
        yaw=torch.zeros(0, dtype=f),
        cls=torch.zeros(0, dtype=l),
        instance=torch.zeros(0, dtype=l),
        color=torch.zeros(0, 3, dtype=f),
        texture=torch.zeros(0, dtype=l),
        reflect=torch.zeros(0, dtype=f),
    )


def inflated(prims: Primitives, min_half: float) -> Primitives:
    """A copy whose half extents are at least ``min_half`` (thin poles stay visible to voxels)."""
    return replace(prims, half=prims.half.clamp(min=min_half))


def to_local(points: torch.Tensor, center: torch.Tensor, yaw: torch.Tensor) -> torch.Tensor:
    """World points ``(N, 3)`` into the frames of primitives posed at ``center (N, 3)``, ``yaw (N,)``."""
    p = points - center
    c, s = torch.cos(yaw), torch.sin(yaw)
    return torch.stack([c * p[:, 0] + s * p[:, 1], -s * p[:, 0] + c * p[:, 1], p[:, 2]], -1)


def rotate_to_local(dirs: torch.Tensor, yaw: torch.Tensor) -> torch.Tensor:
    """Directions ``(N, 3)`` into frames rotated by ``yaw (N,)``."""
    c, s = torch.cos(yaw), torch.sin(yaw)
    return torch.stack([c * dirs[:, 0] + s * dirs[:, 1], -s * dirs[:, 0] + c * dirs[:, 1], dirs[:, 2]], -1)


def rotate_to_world(vecs: torch.Tensor, yaw: torch.Tensor) -> torch.Tensor:
    """Local vectors ``(N, 3)`` back to the world frame (inverse of :func:`rotate_to_local`)."""
    c, s = torch.cos(yaw), torch.sin(yaw)
    return torch.stack([c * vecs[:, 0] - s * vecs[:, 1], s * vecs[:, 0] + c * vecs[:, 1], vecs[:, 2]], -1)


def intersect_box(o: torch.Tensor, d: torch.Tensor, half: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ray/box in the box frame (slab test), entering hits only.

    Args:
        o, d: ``(N, 3)`` local origins and directions (any length); half: ``(N, 3)``.
    Returns:
        t: ``(N,)`` ray parameter of the hit (``inf`` where none); normal: ``(N, 3)`` local unit
        outward normal of the face hit.
    """
    inv = 1.0 / d
    ta = (-half - o) * inv
    tb = (half - o) * inv
    tmin = torch.minimum(ta, tb).nan_to_num(nan=-float("inf"))
    tmax = torch.maximum(ta, tb).nan_to_num(nan=float("inf"))
    t_near, axis = tmin.max(-1)
    t_far = tmax.min(-1).values
    hit = (t_near <= t_far) & (t_near > EPS)
    t = torch.where(hit, t_near, torch.full_like(t_near, float("inf")))
    normal = torch.zeros_like(o)
    sign = -torch.sign(d.gather(1, axis[:, None]))
    normal.scatter_(1, axis[:, None], sign)
    return t, normal


def intersect_cylinder(o: torch.Tensor, d: torch.Tensor, half: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ray/vertical capped cylinder in its frame (radius ``half[:, 0]``, half height ``half[:, 2]``).

    Same arguments and results as :func:`intersect_box`.
    """
    r, hz = half[:, 0], half[:, 2]
    inf = torch.full_like(r, float("inf"))
    a = d[:, 0] ** 2 + d[:, 1] ** 2
    b = o[:, 0] * d[:, 0] + o[:, 1] * d[:, 1]
    c = o[:, 0] ** 2 + o[:, 1] ** 2 - r * r
    disc = b * b - a * c
    ok = (disc >= 0) & (a > 1e-12)
    ts = (-b - disc.clamp(min=0).sqrt()) / a.clamp(min=1e-12)
    zs = o[:, 2] + ts * d[:, 2]
    ts = torch.where(ok & (ts > EPS) & (zs.abs() <= hz), ts, inf)
    zc = torch.where(d[:, 2] < 0, hz, -hz)
    tc = (zc - o[:, 2]) / d[:, 2]
    xc = o[:, 0] + tc * d[:, 0]
    yc = o[:, 1] + tc * d[:, 1]
    tc = torch.where((tc > EPS) & (xc * xc + yc * yc <= r * r) & torch.isfinite(tc), tc, inf)
    side = ts <= tc
    t = torch.minimum(ts, tc)
    p = o + t.nan_to_num(posinf=0)[:, None] * d
    n_side = torch.stack([p[:, 0] / r, p[:, 1] / r, torch.zeros_like(r)], -1)
    n_cap = torch.stack([torch.zeros_like(r), torch.zeros_like(r), torch.sign(zc)], -1)
    normal = torch.where(side[:, None], n_side, n_cap)
    return t, normal


def intersect_ellipsoid(o: torch.Tensor, d: torch.Tensor, half: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ray/ellipsoid with radii ``half`` in its frame. Same results as :func:`intersect_box`."""
    os_, ds = o / half, d / half
    a = (ds * ds).sum(-1)
    b = (os_ * ds).sum(-1)
    c = (os_ * os_).sum(-1) - 1
    disc = b * b - a * c
    t = (-b - disc.clamp(min=0).sqrt()) / a
    t = torch.where((disc >= 0) & (t > EPS), t, torch.full_like(t, float("inf")))
    p = o + t.nan_to_num(posinf=0)[:, None] * d
    n = p / (half * half)
    normal = n / n.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    return t, normal


_INTERSECT = (intersect_box, intersect_cylinder, intersect_ellipsoid)


def intersect_pairs(
    prims: Primitives,
    ray_o: torch.Tensor,
    ray_d: torch.Tensor,
    pair_prim: torch.Tensor,
    pair_ray: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Test ray ``pair_ray[k]`` against primitive ``pair_prim[k]`` for every pair ``k``.

    Args:
        prims: ``P`` primitives (world frame).
        ray_o, ray_d: ``(R, 3)`` or ``(1, 3)`` (origins shared by all rays) world origins and
            directions; the hit parameter ``t`` is in units of ``|ray_d|``.
        pair_prim, pair_ray: ``(K,)`` long.
    Returns:
        t: ``(K,)`` (``inf`` = miss); normal: ``(K, 3)`` world unit normals.
    """
    K = pair_prim.shape[0]
    t = torch.full((K,), float("inf"), dtype=ray_d.dtype)
    normal = torch.zeros(K, 3, dtype=ray_d.dtype)
    kinds = prims.kind[pair_prim]
    # pairs grouped by kind (primitives sorted by kind, as scene states are): slice, don't gather
    grouped = K < 2 or bool((kinds[1:] >= kinds[:-1]).all())
    bounds = torch.searchsorted(kinds, torch.arange(4)).tolist() if grouped else []
    for kind, fn in enumerate(_INTERSECT):
        if grouped:
            sel = slice(bounds[kind], bounds[kind + 1])
            if bounds[kind + 1] == bounds[kind]:
                continue
            n_sel = bounds[kind + 1] - bounds[kind]
        else:
            sel = (kinds == kind).nonzero().squeeze(1)
            n_sel = sel.numel()
            if n_sel == 0:
                continue
        pp = pair_prim[sel]
        rr = pair_ray[sel]
        o = ray_o[0].expand(n_sel, 3) if ray_o.shape[0] == 1 else ray_o[rr]
        yaw = prims.yaw[pp]
        o_l = to_local(o, prims.center[pp], yaw)
        d_l = rotate_to_local(ray_d[rr], yaw)
        tk, nk = fn(o_l, d_l, prims.half[pp])
        t[sel] = tk
        normal[sel] = rotate_to_world(nk, yaw)
    return t, normal


def inside(prims: Primitives, index: int, points: torch.Tensor) -> torch.Tensor:
    """``(N,)`` bool: which world ``points (N, 3)`` lie inside primitive ``index``."""
    c = prims.center[index].expand_as(points)
    p = to_local(points, c, prims.yaw[index].expand(points.shape[0]))
    h = prims.half[index]
    kind = int(prims.kind[index])
    if kind == BOX:
        return (p.abs() <= h).all(-1)
    if kind == CYLINDER:
        return (p[:, 0] ** 2 + p[:, 1] ** 2 <= h[0] ** 2) & (p[:, 2].abs() <= h[2])
    return ((p / h) ** 2).sum(-1) <= 1.0
