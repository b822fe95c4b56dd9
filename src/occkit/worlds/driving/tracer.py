"""Ray casting against the analytic world: the ground raster (two levels with curbs) and the
primitives, with a z-buffer.

The fast path (:func:`trace_layout`) serves rays laid out as a 2D "ray image" (camera pixels,
or LiDAR beams x azimuths) from one origin: each primitive is tested only against the rays of
the rectangle its bounding box covers in that image, all pairs in one vectorised pass (in
chunks). :func:`cast_rays` is the reference for arbitrary rays (a bounding-sphere test over all
ray/primitive pairs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from occkit.shapes import check_shape
from occkit.worlds.driving.layout import CURB, GroundMap
from occkit.worlds.driving.primitives import CYLINDER, Primitives, intersect_pairs, to_local

NO_CLASS = 17
"""Class of a ray that hits nothing (Occ3D's free)."""
GROUND_SIDE_STEPS = 6
"""Samples used to find where a ray meets a curb's side between the two ground levels."""
MIN_RAISED_WIDTH = 2.0
"""Narrowest raised ground (medians are 2 m): rays travelling less than this between the two
ground planes cannot cross a raised strip unseen."""
MAX_PAIRS = 2_000_000
"""Ray/primitive pairs tested per chunk (bounds memory)."""


@dataclass
class Hits:
    """Nearest hits of ``R`` rays.

    Attributes:
        t: ``(R,)`` ray parameter (units of ``|dir|``), ``inf`` where nothing is hit.
        cls: ``(R,)`` long Occ3D class, ``NO_CLASS`` (17) where nothing is hit.
        instance: ``(R,)`` long instance id, 0 for the ground and for misses.
        prim: ``(R,)`` long index of the primitive hit, -1 for the ground and misses.
        normal: ``(R,)`` float world unit normals (zero for misses).
        paint: ``(R,)`` long ground paint mark (0 elsewhere).
    """

    t: torch.Tensor
    cls: torch.Tensor
    instance: torch.Tensor
    prim: torch.Tensor
    normal: torch.Tensor
    paint: torch.Tensor

    @property
    def hit(self) -> torch.Tensor:
        return torch.isfinite(self.t)


def intersect_ground(
    ground: GroundMap, o: torch.Tensor, d: torch.Tensor, t_max: float = 400.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rays against the ground: the plane z = 0 with raised cells (sidewalks, lawns, islands)
    at z = ``CURB``; curb sides are vertical.

    Args:
        o: ``(R, 3)`` or ``(1, 3)`` origins (above the ground); d: ``(R, 3)`` directions.
        t_max: hits beyond this many metres count as misses.
    Returns:
        t ``(R,)`` (inf = miss), cls ``(R,)`` long (17 = miss), normal ``(R, 3)``, paint ``(R,)`` long.
    """
    R = d.shape[0]
    o = o.expand(R, 3)
    dz = d[:, 2]
    down = dz < -1e-9
    inf = torch.full((R,), float("inf"), dtype=d.dtype)
    t_top = torch.where(down, (CURB - o[:, 2]) / dz.clamp(max=-1e-9), inf)
    t_bot = torch.where(down, (0.0 - o[:, 2]) / dz.clamp(max=-1e-9), inf)
    t_top = t_top.clamp(min=0.0)
    ok = down & (t_bot > 1e-6)
    t = torch.full((R,), float("inf"), dtype=d.dtype)
    cls = torch.full((R,), NO_CLASS, dtype=torch.long)
    paint = torch.zeros(R, dtype=torch.long)
    normal = torch.zeros(R, 3, dtype=d.dtype)
    idx = ok.nonzero().squeeze(1)
    if idx.numel() == 0:
        return t, cls, normal, paint
    oo, dd, t0, t1 = o[idx], d[idx], t_top[idx], t_bot[idx]
    n = idx.numel()
    # 1) the top plane; 2) the bottom plane; 3) where neither settles it (the ray crosses a
    # raised cell on its way down, or travels far between the planes), samples in between.
    code_top = ground.lookup_code(oo[:, :2] + t0[:, None] * dd[:, :2])
    code_bot = ground.lookup_code(oo[:, :2] + t1[:, None] * dd[:, :2])
    raised_top = (code_top >> 5) & 1 == 1
    raised_bot = (code_bot >> 5) & 1 == 1
    tk = torch.where(raised_top, t0, t1)
    code = torch.where(raised_top, code_top, code_bot)
    side = ~raised_top & raised_bot
    travel = (t1 - t0) * dd[:, :2].norm(dim=-1)
    unsure = ~raised_top & (raised_bot | (travel > MIN_RAISED_WIDTH))
    u = unsure.nonzero().squeeze(1)
    if u.numel():
        steps = torch.linspace(0, 1, GROUND_SIDE_STEPS + 2, dtype=d.dtype)[1:-1]  # interior samples
        ts = t0[u, None] + steps[None] * (t1 - t0)[u, None]  # (m, S)
        S = ts.shape[1]
        pts = oo[u, None, :2] + ts[..., None] * dd[u, None, :2]
        cs = ground.lookup_code(pts.reshape(-1, 2)).view(-1, S)
        solid = (cs >> 5) & 1 == 1
        anyk = solid.any(1)
        first = solid.float().argmax(1)
        ar = torch.arange(u.numel())
        uu = u[anyk]
        tk[uu] = ts[ar, first][anyk]
        code[uu] = cs[ar, first][anyk]
        side[uu] = True
    c = code & 31
    pt = (code >> 6) & 3
    nrm = torch.zeros(n, 3, dtype=d.dtype)
    nrm[:, 2] = torch.where(side, 0.0, 1.0)
    hxy = -dd[:, :2] / dd[:, :2].norm(dim=-1, keepdim=True).clamp(min=1e-9)
    nrm[:, :2] = torch.where(side[:, None], hxy, torch.zeros_like(hxy))
    dist = tk * dd.norm(dim=-1)
    keep = dist <= t_max
    t[idx] = torch.where(keep, tk, torch.full_like(tk, float("inf")))
    cls[idx] = torch.where(keep, c, torch.full_like(c, NO_CLASS))
    paint[idx] = torch.where(keep & ~side, pt, torch.zeros_like(pt))
    normal[idx] = nrm
    return t, cls, normal, paint


def _zbuffer(
    prims: Primitives,
    o: torch.Tensor,
    d: torch.Tensor,
    pair_prim: torch.Tensor,
    pair_ray: torch.Tensor,
    best_t: torch.Tensor,
    best_prim: torch.Tensor,
    best_n: torch.Tensor,
) -> None:
    """Test pairs and keep, per ray, the nearest primitive hit (in place)."""
    t, n = intersect_pairs(prims, o, d, pair_prim, pair_ray)
    hit = torch.isfinite(t)
    if not bool(hit.any()):
        return
    t, n, pp, rr = t[hit], n[hit], pair_prim[hit], pair_ray[hit]
    best_t.scatter_reduce_(0, rr, t, "amin")
    win = t == best_t[rr]
    rr, pp, n = rr[win], pp[win], n[win]
    # ties (same t): the larger primitive index wins, deterministically
    cand = torch.full_like(best_prim, -1)
    cand.scatter_reduce_(0, rr, pp, "amax")
    sel = pp == cand[rr]
    best_prim[rr[sel]] = pp[sel]
    best_n[rr[sel]] = n[sel]


def _pairs_from_rects(
    rects: torch.Tensor,
    Wr: int,
    wrap: bool,
    start: int,
    stop: int,
    prim_ids: torch.Tensor,
    sizes: torch.Tensor,
    offsets: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs (primitive, ray) for primitives ``prim_ids[start:stop]`` and their rectangles."""
    ids = prim_ids[start:stop]
    sz = sizes[start:stop]
    K = int(sz.sum())
    pair_prim = torch.repeat_interleave(ids, sz)
    base = torch.repeat_interleave(offsets[start:stop] - offsets[start], sz)
    local = torch.arange(K) - base
    r0, r1, c0, c1 = rects[pair_prim].unbind(-1)
    w = c1 - c0
    row = r0 + local // w
    col = c0 + local % w
    if wrap:
        col = col % Wr
    return pair_prim, row * Wr + col


def trace_layout(
    prims: Primitives,
    ground: GroundMap | None,
    origin: torch.Tensor,
    dirs: torch.Tensor,
    rects: torch.Tensor,
    Wr: int,
    wrap: bool = False,
    ground_t_max: float = 400.0,
) -> Hits:
    """Nearest hits of rays laid out as a ``(Hr, Wr)`` image from one origin.

    Args:
        prims: world primitives.
        ground: the ground raster (None: no ground).
        origin: ``(3,)`` world origin of every ray, or ``(Hr * Wr, 3)`` one per ray (e.g. an
            orthographic shadow map's parallel rays).
        dirs: ``(Hr * Wr, 3)`` world directions, row-major.
        rects: ``(P, 4)`` long ``[row0, row1, col0, col1)`` of the rays each primitive may hit
            (columns may run past ``Wr`` when ``wrap``: they are taken modulo ``Wr``).
        wrap: columns wrap around (LiDAR azimuths).
    """
    if origin.dim() != 1:
        check_shape(origin, "R 3", name="origin", dims={"R": dirs.shape[0]})
    else:
        check_shape(origin, "3", name="origin")
    check_shape(dirs, "R 3", name="dirs")
    check_shape(rects, "P 4", name="rects", dims={"P": len(prims)})
    R = dirs.shape[0]
    o = origin.to(dirs.dtype).view(-1, 3)  # (1, 3) shared, or (R, 3) per ray
    best_t = torch.full((R,), float("inf"), dtype=dirs.dtype)
    best_prim = torch.full((R,), -1, dtype=torch.long)
    best_n = torch.zeros(R, 3, dtype=dirs.dtype)
    sizes = (rects[:, 1] - rects[:, 0]).clamp(min=0) * (rects[:, 3] - rects[:, 2]).clamp(min=0)
    prim_ids = (sizes > 0).nonzero().squeeze(1)
    sizes = sizes[prim_ids]
    if prim_ids.numel():
        offsets = torch.cumsum(sizes, 0) - sizes
        start = 0
        total = sizes.cumsum(0)
        while start < prim_ids.numel():
            # as many primitives as fit in MAX_PAIRS (at least one)
            limit = (total[start] - sizes[start]) + MAX_PAIRS
            stop = int(torch.searchsorted(total, limit, right=True))
            stop = max(stop, start + 1)
            pp, rr = _pairs_from_rects(rects, Wr, wrap, start, stop, prim_ids, sizes, offsets)
            _zbuffer(prims, o, dirs, pp, rr, best_t, best_prim, best_n)
            start = stop
    return _merge_ground(prims, ground, o, dirs, best_t, best_prim, best_n, ground_t_max)


def _merge_ground(
    prims: Primitives,
    ground: GroundMap | None,
    o: torch.Tensor,
    d: torch.Tensor,
    best_t: torch.Tensor,
    best_prim: torch.Tensor,
    best_n: torch.Tensor,
    ground_t_max: float,
) -> Hits:
    R = d.shape[0]
    has = best_prim >= 0
    cls = torch.full((R,), NO_CLASS, dtype=torch.long)
    inst = torch.zeros(R, dtype=torch.long)
    cls[has] = prims.cls[best_prim[has]]
    inst[has] = prims.instance[best_prim[has]]
    paint = torch.zeros(R, dtype=torch.long)
    if ground is not None:
        gt, gc, gn, gp = intersect_ground(ground, o, d, ground_t_max)
        g = gt < best_t
        best_t = torch.where(g, gt, best_t)
        cls = torch.where(g, gc, cls)
        inst = torch.where(g, torch.zeros_like(inst), inst)
        best_prim = torch.where(g, torch.full_like(best_prim, -1), best_prim)
        best_n = torch.where(g[:, None], gn, best_n)
        paint = torch.where(g, gp, paint)
    return Hits(t=best_t, cls=cls, instance=inst, prim=best_prim, normal=best_n, paint=paint)


def cast_rays(
    prims: Primitives, ground: GroundMap | None, origins: torch.Tensor, dirs: torch.Tensor, chunk: int = 4096
) -> Hits:
    """Reference caster for arbitrary rays: every ray against every primitive whose bounding
    sphere it passes through.

    Args:
        origins: ``(R, 3)`` world origins; dirs: ``(R, 3)`` world directions.
    """
    check_shape(origins, "R 3", name="origins")
    check_shape(dirs, "R 3", name="dirs", dims={"R": origins.shape[0]})
    R = dirs.shape[0]
    best_t = torch.full((R,), float("inf"), dtype=dirs.dtype)
    best_prim = torch.full((R,), -1, dtype=torch.long)
    best_n = torch.zeros(R, 3, dtype=dirs.dtype)
    if len(prims):
        rad = prims.bounding_radius().to(dirs.dtype)
        cen = prims.center.to(dirs.dtype)
        for a in range(0, R, chunk):
            oo, dd = origins[a : a + chunk], dirs[a : a + chunk]
            dn = dd / dd.norm(dim=-1, keepdim=True)
            rel = cen[None] - oo[:, None]  # (r, P, 3)
            tca = (rel * dn[:, None]).sum(-1)
            d2 = (rel * rel).sum(-1) - tca * tca
            near = (d2 <= rad[None] ** 2 + 1e-6) & (tca >= -rad[None])
            rr, pp = near.nonzero().unbind(1)
            _zbuffer(prims, origins, dirs, pp, rr + a, best_t, best_prim, best_n)
    return _merge_ground(prims, ground, origins, dirs, best_t, best_prim, best_n, 400.0)


# --------------------------------------------------------------------------------- rectangles
_EDGES = torch.tensor([(i, i ^ b) for i in range(8) for b in (1, 2, 4) if not i & b])  # (12, 2)


def camera_rects(
    prims: Primitives, K: torch.Tensor, T_cam_from_global: torch.Tensor, H: int, W: int, near: float = 0.05
) -> torch.Tensor:
    """``(P, 4)`` long pixel rectangles ``[v0, v1, u0, u1)`` each primitive may cover (its
    bounding box clipped by the near plane, projected; empty when behind the camera)."""
    P = len(prims)
    if P == 0:
        return torch.zeros(0, 4, dtype=torch.long)
    corners = prims.corners().double().reshape(-1, 3)
    R, tt = T_cam_from_global[:3, :3].double(), T_cam_from_global[:3, 3].double()
    pc = (corners @ R.T + tt).view(P, 8, 3)
    a, b = pc[:, _EDGES[:, 0]], pc[:, _EDGES[:, 1]]  # (P, 12, 3)
    za, zb = a[..., 2:3], b[..., 2:3]
    cross = (za - near) * (zb - near) < 0
    s = ((near - za) / (zb - za).where(cross, torch.ones_like(za))).clamp(0, 1)
    ep = a + s * (b - a)
    pts = torch.cat([pc, ep], 1)  # (P, 20, 3)
    valid = torch.cat([pc[..., 2] >= near, cross[..., 0]], 1)
    z = pts[..., 2].clamp(min=near)
    Kd = K.double()
    u = Kd[0, 0] * pts[..., 0] / z + Kd[0, 2]
    v = Kd[1, 1] * pts[..., 1] / z + Kd[1, 2]
    big = torch.tensor(1e9, dtype=torch.float64)
    umin = torch.where(valid, u, big).amin(1)
    umax = torch.where(valid, u, -big).amax(1)
    vmin = torch.where(valid, v, big).amin(1)
    vmax = torch.where(valid, v, -big).amax(1)
    u0 = torch.floor(umin - 0.5).clamp(0, W)
    u1 = (torch.ceil(umax - 0.5) + 1).clamp(0, W)
    v0 = torch.floor(vmin - 0.5).clamp(0, H)
    v1 = (torch.ceil(vmax - 0.5) + 1).clamp(0, H)
    any_valid = valid.any(1)
    rect = torch.stack([v0, v1, u0, u1], -1).long()
    rect[~any_valid] = 0
    return rect


def spherical_rects(
    prims: Primitives, origin: torch.Tensor, elevations: torch.Tensor, az0: float, n_az: int
) -> torch.Tensor:
    """``(P, 4)`` long ``[row0, row1, col0, col1)`` in a (beams x azimuths) ray image from
    ``origin (3,)``: rows are ``elevations`` (ascending, uniform), column ``j`` has world azimuth
    ``az0 + 2 pi j / n_az``. Columns may exceed ``n_az`` (they wrap)."""
    P = len(prims)
    if P == 0:
        return torch.zeros(0, 4, dtype=torch.long)
    o = origin.double()
    corners = prims.corners().double() - o  # (P, 8, 3)
    cen = prims.center.double() - o
    half = prims.half.double().clone()
    cyl = prims.kind == CYLINDER
    half[cyl, 1] = half[cyl, 0]
    # horizontal distance from the sensor to the footprint rectangle
    loc = to_local(o[None].expand(P, 3).float(), prims.center, prims.yaw).double()
    dx = (loc[:, 0].abs() - half[:, 0]).clamp(min=0)
    dy = (loc[:, 1].abs() - half[:, 1]).clamp(min=0)
    dmin = torch.sqrt(dx * dx + dy * dy)
    dmax = corners[..., :2].norm(dim=-1).amax(1)
    zmax = corners[..., 2].amax(1)
    zmin = corners[..., 2].amin(1)
    emax = torch.atan2(zmax, torch.where(zmax > 0, dmin, dmax))
    emin = torch.atan2(zmin, torch.where(zmin < 0, dmin, dmax))
    el = elevations.double()
    n_el = el.numel()
    de = float(el[1] - el[0]) if n_el > 1 else 1.0
    r0 = torch.floor((emin - el[0]) / de).clamp(0, n_el)
    r1 = (torch.floor((emax - el[0]) / de) + 2).clamp(0, n_el)
    azc = torch.atan2(cen[:, 1], cen[:, 0])
    azs = torch.atan2(corners[..., 1], corners[..., 0])
    rel = torch.remainder(azs - azc[:, None] + math.pi, 2 * math.pi) - math.pi
    step = 2 * math.pi / n_az
    lo = torch.floor((azc + rel.amin(1) - az0) / step) - 1
    hi = torch.ceil((azc + rel.amax(1) - az0) / step) + 2
    c0 = torch.remainder(lo, n_az)
    c1 = c0 + (hi - lo)
    inside = dmin <= 1e-6
    full = inside | (c1 - c0 >= n_az)
    c0 = torch.where(full, torch.zeros_like(c0), c0)
    c1 = torch.where(full, torch.full_like(c1, n_az), c1)
    return torch.stack([r0, r1, c0, c1], -1).long()
