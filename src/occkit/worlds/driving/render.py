"""Camera images of the synthetic world: ray casting the analytic primitives and the ground,
then shading (sun + sky ambient, procedural textures, fog, sky gradient, sensor noise)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from occkit.geometry.camera import pixel_centers, pixel_rays
from occkit.geometry.transforms import invert_transform
from occkit.shapes import check_shape
from occkit.worlds.driving.layout import DRIVEABLE, OTHER_FLAT, PAINT_WHITE, PAINT_YELLOW, SIDEWALK, TERRAIN
from occkit.worlds.driving.primitives import (
    TEX_BARK,
    TEX_BRICK,
    TEX_FACADE,
    TEX_FOLIAGE,
    TEX_GLASS,
    TEX_STRIPES,
    Primitives,
    to_local,
)
from occkit.worlds.driving.scene import Lighting, SceneState
from occkit.worlds.driving.tracer import Hits, camera_rects, trace_layout


def hash3(p: torch.Tensor, scale: float) -> torch.Tensor:
    """Value in [0, 1) per cell of size ``1 / scale`` at points ``p (N, 3)`` (a fixed hash)."""
    q = torch.floor(p * scale)
    h = torch.sin(q[:, 0] * 12.9898 + q[:, 1] * 78.233 + q[:, 2] * 37.719) * 43758.5453
    return h - torch.floor(h)


def value_noise(p: torch.Tensor, scale: float) -> torch.Tensor:
    """Two octaves of blocky value noise in [0, 1): ``(N,)``."""
    return 0.6 * hash3(p, scale) + 0.4 * hash3(p + 17.31, scale * 2.7)


@dataclass
class ShadowMap:
    """Depth of the first surface along parallel sun rays, on a square of the plane facing the
    sun: cell ``(row, col)`` holds the ray through ``center + a u + b v`` (``a``, ``b`` the cell
    centre, ``back`` metres towards the sun), ``depth`` its hit distance (``inf``: none)."""

    center: torch.Tensor  # (3,)
    u: torch.Tensor  # (3,) unit, horizontal
    v: torch.Tensor  # (3,) unit
    w: torch.Tensor  # (3,) unit ray direction (away from the sun)
    half: float
    cell: float
    back: float
    depth: torch.Tensor  # (n, n) float32

    def shadow(self, p: torch.Tensor, normal: torch.Tensor) -> torch.Tensor:
        """Fraction in shadow ``(N,)`` of world points ``p (N, 3)`` with unit normals ``normal``
        (2x2 percentage-closer filtering; a slope-scaled bias against self-shadowing)."""
        n = self.depth.shape[0]
        rel = p - self.center
        a = (rel @ self.u + self.half) / self.cell - 0.5
        b = (rel @ self.v + self.half) / self.cell - 0.5
        dep = rel @ self.w + self.back
        cos = (-(normal @ self.w)).clamp(min=0.05)
        bias = 0.08 + self.cell * (torch.sqrt(1 - cos * cos) / cos).clamp(max=8.0)
        c0, r0 = torch.floor(a).long(), torch.floor(b).long()
        out = torch.zeros(p.shape[0])
        for dr in (0, 1):
            for dc in (0, 1):
                r, c = r0 + dr, c0 + dc
                ok = (r >= 0) & (r < n) & (c >= 0) & (c < n)
                d = self.depth.view(-1)[(r.clamp(0, n - 1) * n + c.clamp(0, n - 1))]
                out += (ok & (dep > d + bias)).float()
        return out / 4


def sun_shadow_map(state: SceneState, half: float = 56.0, cell: float = 0.3) -> ShadowMap | None:
    """The frame's shadow map around the ego (cached in ``state.cache``); None when the sun is
    (nearly) down. Only the primitives cast shadows (the ground is flat but for 0.15 m curbs)."""
    if "shadow_map" in state.cache:
        return state.cache["shadow_map"]
    sun = torch.tensor(state.lighting.sun_dir, dtype=torch.float32)
    sm = None
    if float(sun[2]) > 0.02:
        w = -sun / sun.norm()
        u = torch.linalg.cross(w, torch.tensor([0.0, 0.0, 1.0]))
        u = u / u.norm()
        v = torch.linalg.cross(w, u)
        center = state.T_global_from_ego[:3, 3].float()
        back = 1000.0
        n = int(round(2 * half / cell))
        ax = -half + (torch.arange(n, dtype=torch.float32) + 0.5) * cell
        bb, aa = torch.meshgrid(ax, ax, indexing="ij")  # rows: b, cols: a
        origins = (center - back * w) + aa.reshape(-1, 1) * u + bb.reshape(-1, 1) * v  # (n*n, 3)
        dirs = w.expand(n * n, 3).contiguous()
        prims = state.prims
        if len(prims):
            rel = prims.corners() - center  # (P, 8, 3)
            ca, cb = rel @ u, rel @ v
            c0 = torch.floor((ca.amin(1) + half) / cell).clamp(0, n)
            c1 = (torch.floor((ca.amax(1) + half) / cell) + 1).clamp(0, n)
            r0 = torch.floor((cb.amin(1) + half) / cell).clamp(0, n)
            r1 = (torch.floor((cb.amax(1) + half) / cell) + 1).clamp(0, n)
            rects = torch.stack([r0, r1, c0, c1], -1).long()
        else:
            rects = torch.zeros(0, 4, dtype=torch.long)
        hits = trace_layout(prims, None, origins, dirs, rects, n)
        sm = ShadowMap(center=center, u=u, v=v, w=w, half=half, cell=cell, back=back, depth=hits.t.view(n, n))
    state.cache["shadow_map"] = sm
    return sm


def render_camera(
    state: SceneState,
    K: torch.Tensor,
    T_global_from_cam: torch.Tensor,
    height: int,
    width: int,
    noise_seed: int | None = None,
) -> dict[str, torch.Tensor]:
    """Render one camera.

    Args:
        state: the scene at a frame.
        K: ``(3, 3)`` intrinsics; T_global_from_cam: ``(4, 4)`` camera (OpenCV) -> world.
        height, width: image size in pixels.
        noise_seed: seed of the sensor noise (None: no noise).
    Returns:
        ``rgb (H, W, 3) uint8``, ``depth (H, W) float32`` z-depth in metres (0 = nothing hit),
        ``semantics (H, W) uint8`` Occ3D classes (17 = sky), ``instance (H, W) int32`` (0 = none).
    """
    check_shape(K, "3 3", name="K")
    check_shape(T_global_from_cam, "4 4", name="T_global_from_cam")
    if height < 1 or width < 1:
        raise ValueError(f"render_camera: image size must be positive, got {height}x{width}")
    T = T_global_from_cam.double()
    origin = T[:3, 3].float()
    uv = pixel_centers(height, width, dtype=torch.float64).view(-1, 2)
    d_cam = pixel_rays(uv, K.double())  # (H*W, 3), z = 1
    dirs = (d_cam @ T[:3, :3].T).float()
    prims = state.prims
    cfg = state.scene.config
    if len(prims):
        far = (prims.center - origin).norm(dim=-1) - prims.bounding_radius() <= cfg.max_render_distance
        prims = prims.select(far)
    rects = camera_rects(prims, K, invert_transform(T), height, width)
    hits = trace_layout(prims, state.ground, origin, dirs, rects, width, ground_t_max=cfg.max_render_distance * 2)
    sm = sun_shadow_map(state) if cfg.shadows else None
    rgb = shade(hits, prims, origin, dirs, state.lighting, sm)
    if noise_seed is not None:
        g = torch.Generator().manual_seed(int(noise_seed))
        rgb = rgb + torch.randn(rgb.shape, generator=g) * 0.012
    img = (rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8).view(height, width, 3)
    depth = torch.where(hits.hit, hits.t, torch.zeros_like(hits.t)).view(height, width).float()
    return {
        "rgb": img,
        "depth": depth,
        "semantics": hits.cls.view(height, width).to(torch.uint8),
        "instance": hits.instance.view(height, width).to(torch.int32),
    }


_GROUND_BASE = {
    DRIVEABLE: (0.26, 0.26, 0.27),
    OTHER_FLAT: (0.46, 0.44, 0.41),
    SIDEWALK: (0.62, 0.6, 0.57),
    TERRAIN: (0.2, 0.36, 0.1),
}


def _subset(mask: torch.Tensor) -> torch.Tensor | None:
    idx = mask.nonzero().squeeze(1)
    return idx if idx.numel() else None


def _ground_albedo(hits: Hits, p: torch.Tensor) -> torch.Tensor:
    """Albedo ``(N, 3)`` of ground hits at world points ``p (N, 3)``: asphalt, paving slabs,
    grass, concrete; lane paint; light curb sides. Each pattern is computed only where used."""
    cls, paint = hits.cls, hits.paint
    table = torch.zeros(18, 3)
    for c, rgb in _GROUND_BASE.items():
        table[c] = torch.tensor(rgb)
    a = table[cls] * (0.88 + 0.12 * hash3(p, 12.0))[:, None]
    j = _subset((cls == DRIVEABLE) | (cls == TERRAIN))
    if j is not None:
        n = value_noise(p[j], 2.0)
        gain = torch.where(cls[j] == TERRAIN, 0.7 + 0.6 * n, 0.85 + 0.3 * n)
        a[j] *= gain[:, None]
    j = _subset(cls == SIDEWALK)
    if j is not None:
        q = p[j]
        tiles = (torch.remainder(q[:, 0], 1.2) < 0.05) | (torch.remainder(q[:, 1], 1.2) < 0.05)
        a[j[tiles]] *= 0.75
    a[paint == PAINT_WHITE] = torch.tensor([0.82, 0.82, 0.8])
    a[paint == PAINT_YELLOW] = torch.tensor([0.8, 0.62, 0.1])
    a[hits.normal[:, 2].abs() < 0.5] = torch.tensor([0.7, 0.7, 0.68])  # curb sides
    return a


def _prim_albedo(hits: Hits, prims: Primitives, idx: torch.Tensor, p: torch.Tensor, sky: torch.Tensor) -> torch.Tensor:
    """Albedo ``(N, 3)`` of primitive hits (``idx`` into the primitives, ``p`` world points,
    ``sky`` the sky colour in the ray's direction, for reflections). Each texture is computed
    only on the hits that carry it."""
    a = prims.color[idx].clone()
    tex = prims.texture[idx]
    nl = hits.normal
    j = _subset((tex == TEX_FACADE) | (tex == TEX_BRICK) | (tex == TEX_STRIPES) | (tex == TEX_BARK))
    if j is not None:
        pj = idx[j]
        loc = to_local(p[j], prims.center[pj], prims.yaw[pj])
        z = loc[:, 2] + prims.half[pj, 2]  # height above the primitive's bottom
        tj = tex[j]
        horiz = torch.where(nl[j, 0].abs() > nl[j, 1].abs(), loc[:, 1], loc[:, 0])
        # facades: windows on the vertical faces, floor height 3 m, 2.6 m spacing, some lit
        k = _subset((tj == TEX_FACADE) & (nl[j, 2].abs() < 0.5))
        if k is not None:
            fz = torch.remainder(z[k], 3.0)
            fa = torch.remainder(horiz[k] + 50.0, 2.6)
            window = (fz > 0.9) & (fz < 2.3) & (fa > 0.6) & (fa < 2.0) & (z[k] > 0.5)
            w = k[window]
            lit = hash3(
                torch.stack([torch.floor(horiz[w] / 2.6), torch.floor(z[w] / 3.0), prims.center[pj[w], 0]], -1), 1.0
            )
            a[j[w]] = (torch.tensor([0.1, 0.13, 0.18]) + 0.25 * sky[j[w]]) * (0.7 + 0.6 * lit)[:, None]
        k = _subset(tj == TEX_BRICK)
        if k is not None:
            line = (torch.remainder(z[k], 0.3) < 0.04) | (
                torch.remainder(horiz[k] + 50.0 + 0.6 * torch.floor(z[k] / 0.3), 1.2) < 0.04
            )
            a[j[k[line]]] *= 0.6
        k = _subset(tj == TEX_STRIPES)
        if k is not None:
            a[j[k[torch.remainder(z[k], 0.3) < 0.13]]] = torch.tensor([0.9, 0.9, 0.88])
        k = _subset(tj == TEX_BARK)
        if k is not None:
            bark = hash3(torch.stack([loc[k, 0] * 8, loc[k, 1] * 8, z[k] * 1.5], -1), 1.0)
            a[j[k]] *= (0.7 + 0.5 * bark)[:, None]
    j = _subset(tex == TEX_FOLIAGE)
    if j is not None:
        a[j] *= (0.55 + 0.8 * value_noise(p[j], 4.0))[:, None]
    j = _subset(tex == TEX_GLASS)
    if j is not None:
        a[j] = a[j] * 0.6 + 0.35 * sky[j]
    return a


def sky_color(dirs: torch.Tensor, light: Lighting) -> torch.Tensor:
    """``(R, 3)`` sky radiance for directions ``dirs (R, 3)``."""
    d = dirs / dirs.norm(dim=-1, keepdim=True)
    up = d[:, 2].clamp(min=0)
    zen, hor = torch.tensor(light.sky_zenith), torch.tensor(light.sky_horizon)
    k = up.pow(0.6)[:, None]
    c = hor * (1 - k) + zen * k
    sun = torch.tensor(light.sun_dir, dtype=d.dtype)
    glow = (d @ sun).clamp(min=0)
    c = c + torch.tensor(light.sun_color) * (0.5 * glow.pow(48) + 0.15 * glow.pow(6))[:, None]
    return c


def shade(
    hits: Hits,
    prims: Primitives,
    origin: torch.Tensor,
    dirs: torch.Tensor,
    light: Lighting,
    shadow_map: ShadowMap | None = None,
) -> torch.Tensor:
    """Colours ``(R, 3)`` in [0, 1] (unclamped) of the hits of rays ``dirs (R, 3)`` from
    ``origin``; sunlight is blocked where ``shadow_map`` says so."""
    sky = sky_color(dirs, light)
    out = sky.clone()
    hit = hits.hit
    if not bool(hit.any()):
        return out
    idx = hit.nonzero().squeeze(1)
    t = hits.t[idx]
    d = dirs[idx]
    p = origin[None] + t[:, None] * d
    sub = Hits(
        t=t,
        cls=hits.cls[idx],
        instance=hits.instance[idx],
        prim=hits.prim[idx],
        normal=hits.normal[idx],
        paint=hits.paint[idx],
    )
    alb = torch.empty(idx.numel(), 3)
    isp = sub.prim >= 0
    for mask, fn in ((~isp, "ground"), (isp, "prim")):
        if not bool(mask.any()):
            continue
        j = mask.nonzero().squeeze(1)
        part = Hits(
            t=t[j], cls=sub.cls[j], instance=sub.instance[j], prim=sub.prim[j], normal=sub.normal[j], paint=sub.paint[j]
        )
        alb[j] = (
            _ground_albedo(part, p[j]) if fn == "ground" else _prim_albedo(part, prims, sub.prim[j], p[j], sky[idx][j])
        )
    n = sub.normal
    n = torch.where(((n * d).sum(-1) > 0)[:, None], -n, n)
    sun = torch.tensor(light.sun_dir)
    lam = (n @ sun).clamp(min=0)
    if shadow_map is not None:
        lit = lam > 0
        if bool(lit.any()):
            j = lit.nonzero().squeeze(1)
            lam[j] = lam[j] * (1 - shadow_map.shadow(p[j], n[j]))
    amb = light.ambient * (0.7 + 0.3 * n[:, 2].clamp(-1, 1))
    col = alb * (amb[:, None] * torch.tensor(light.sky_horizon) * 1.2 + lam[:, None] * torch.tensor(light.sun_color))
    col = col * light.exposure * torch.tensor(light.tint)
    dist = t * d.norm(dim=-1)
    fog = torch.exp(-dist / light.fog_distance)[:, None]
    col = col * fog + torch.tensor(light.sky_horizon) * (1 - fog)
    out[idx] = col
    return out
