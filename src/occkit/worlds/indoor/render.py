"""RGB-D views of a room: the driving world's tracer (:func:`~occkit.worlds.driving.tracer.trace_layout`
over the room's primitives, no ground) and an indoor shader (a ceiling light with soft falloff, a
sky-lit window term, ambient light; wood, fabric, tiles, glass and screens; sensor noise)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from occkit.geometry.camera import pixel_centers, pixel_rays
from occkit.geometry.transforms import invert_transform
from occkit.shapes import check_shape
from occkit.worlds.driving.render import hash3, value_noise
from occkit.worlds.driving.tracer import Hits, camera_rects, trace_layout
from occkit.worlds.indoor.room import TEX_FABRIC, TEX_GLASS, TEX_PAINT, TEX_SCREEN, TEX_TILES, TEX_WOOD, Room


def trace_view(room: Room, K: torch.Tensor, T_room_from_cam: torch.Tensor, height: int, width: int):
    """Nearest hits of every pixel's ray: ``(hits, origin (3,), dirs (H*W, 3))`` (z-depth = ``hits.t``)."""
    check_shape(K, "3 3", name="K")
    check_shape(T_room_from_cam, "4 4", name="T_room_from_cam")
    T = T_room_from_cam.double()
    origin = T[:3, 3].float()
    uv = pixel_centers(height, width, dtype=torch.float64).view(-1, 2)
    dirs = (pixel_rays(uv, K.double()) @ T[:3, :3].T).float()
    rects = camera_rects(room.prims, K, invert_transform(T), height, width)
    return trace_layout(room.prims, None, origin, dirs, rects, width), origin, dirs


def render_view(
    room: Room,
    K: torch.Tensor,
    T_room_from_cam: torch.Tensor,
    height: int,
    width: int,
    noise_seed: int | None = None,
    render_scale: int = 1,
) -> dict[str, torch.Tensor]:
    """Render one view.

    Args:
        K: ``(3, 3)`` intrinsics of the ``height x width`` image; T_room_from_cam: ``(4, 4)``.
        render_scale: shade the colour image at ``1 / render_scale`` size, then upsample it
            (bilinear); the maps are traced at full size either way.
    Returns:
        ``rgb (H, W, 3) uint8``, ``depth (H, W) float32`` z-depth in metres (0 = nothing hit),
        ``semantics (H, W) uint8`` NYU classes (0 = nothing), ``instance (H, W) int32`` (0 = none).
    """
    hits, origin, dirs = trace_view(room, K, T_room_from_cam, height, width)
    if render_scale == 1:
        rgb = shade(hits, room, origin, dirs)
    else:
        h, w = height // render_scale, width // render_scale
        Ks = K.clone().double()
        Ks[:2] /= render_scale
        small, o2, d2 = trace_view(room, Ks, T_room_from_cam, h, w)
        rgb = shade(small, room, o2, d2).view(h, w, 3).permute(2, 0, 1)[None]
        rgb = F.interpolate(rgb, size=(height, width), mode="bilinear", align_corners=False)[0].permute(1, 2, 0)
        rgb = rgb.reshape(-1, 3)
    if noise_seed is not None:
        g = torch.Generator().manual_seed(int(noise_seed))
        rgb = rgb + torch.randn(rgb.shape, generator=g) * 0.01
    img = (rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8).view(height, width, 3)
    hit = hits.hit
    depth = torch.where(hit, hits.t, torch.zeros_like(hits.t)).view(height, width).float()
    sem = torch.where(hit, hits.cls, torch.zeros_like(hits.cls))
    return {
        "rgb": img,
        "depth": depth,
        "semantics": sem.view(height, width).to(torch.uint8),
        "instance": hits.instance.view(height, width).to(torch.int32),
    }


def _albedo(room: Room, prim: torch.Tensor, p: torch.Tensor, normal: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    prims = room.prims
    a = prims.color[prim].clone()
    tex = prims.texture[prim]
    j = (tex == TEX_WOOD).nonzero().squeeze(1)
    if j.numel():  # grain: bands along the longest horizontal axis, with noise
        q = p[j]
        along = torch.where(normal[j, 0].abs() > 0.5, q[:, 1], q[:, 0]) + torch.where(
            normal[j, 2].abs() > 0.5, 0.0, q[:, 2]
        )
        grain = torch.sin(along * 22 + 2.5 * value_noise(q, 1.5)) * 0.5 + 0.5
        a[j] *= (0.9 + 0.1 * grain)[:, None]
    j = (tex == TEX_FABRIC).nonzero().squeeze(1)
    if j.numel():
        a[j] *= (0.8 + 0.3 * value_noise(p[j], 25.0))[:, None]
    j = (tex == TEX_PAINT).nonzero().squeeze(1)
    if j.numel():
        a[j] *= (0.95 + 0.05 * value_noise(p[j], 6.0))[:, None]
    j = (tex == TEX_TILES).nonzero().squeeze(1)
    if j.numel():
        q = p[j]
        line = (torch.remainder(q[:, 0], 0.5) < 0.012) | (torch.remainder(q[:, 1], 0.5) < 0.012)
        a[j] *= (0.9 + 0.1 * hash3(q, 2.0))[:, None]
        a[j[line]] *= 0.6
    j = (tex == TEX_GLASS).nonzero().squeeze(1)
    if j.numel():  # the view out: a sky gradient over a horizon of greenery
        d = dirs[j] / dirs[j].norm(dim=-1, keepdim=True)
        up = d[:, 2].clamp(-1, 1)
        sky = (
            torch.tensor([0.55, 0.72, 0.95]) * (1 - up.clamp(min=0))[:, None]
            + torch.tensor([0.3, 0.5, 0.9]) * up.clamp(min=0)[:, None]
        )
        green = torch.tensor([0.25, 0.4, 0.2]) * (0.8 + 0.4 * value_noise(p[j], 4.0))[:, None]
        a[j] = torch.where((up < -0.05)[:, None], green, sky) * 1.6
    j = (tex == TEX_SCREEN).nonzero().squeeze(1)
    if j.numel():
        a[j] = torch.tensor([0.04, 0.05, 0.07]) + 0.05 * hash3(p[j], 30.0)[:, None]
    return a


def shade(hits: Hits, room: Room, origin: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """Colours ``(R, 3)`` in [0, 1] (unclamped) of the hits of rays ``dirs (R, 3)`` from ``origin``."""
    out = torch.zeros(dirs.shape[0], 3)
    hit = hits.hit
    if not bool(hit.any()):
        return out
    idx = hit.nonzero().squeeze(1)
    t, d = hits.t[idx], dirs[idx]
    p = origin[None] + t[:, None] * d
    n = hits.normal[idx]
    n = torch.where(((n * d).sum(-1) > 0)[:, None], -n, n)
    prim = hits.prim[idx]
    alb = _albedo(room, prim, p, n, d)
    light = torch.full((idx.numel(),), 0.32) + 0.08 * n[:, 2]  # ambient, a little more from above
    for lx, ly, lz in room.lights:
        lvec = torch.tensor([lx, ly, lz]) - p
        dist2 = (lvec * lvec).sum(-1)
        lam = ((lvec * n).sum(-1) / dist2.sqrt().clamp(min=1e-6)).clamp(min=0)
        light = light + 0.95 * lam * 4.0 / (4.0 + dist2)
    emissive = room.prims.texture[prim] == TEX_GLASS
    col = alb * light[:, None]
    col = torch.where(emissive[:, None], alb * 0.85, col)
    lamp = (room.prims.cls[prim] == 11) & (p[:, 2] > room.size[2] - 0.25)
    col = torch.where(lamp[:, None], torch.tensor([1.0, 0.97, 0.88]).expand_as(col), col)
    out[idx] = col * 1.1
    return out
