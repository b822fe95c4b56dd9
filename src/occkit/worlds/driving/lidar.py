"""A spinning multi-beam LiDAR: one return per firing (beam x azimuth), nearest surface."""

from __future__ import annotations

import math

import torch

from occkit.shapes import check_shape
from occkit.worlds.driving.scene import SceneState
from occkit.worlds.driving.sensors import lidar_elevations
from occkit.worlds.driving.tracer import spherical_rects, trace_layout


def lidar_rays(
    T_global_from_lidar: torch.Tensor, beams: int, azimuth_steps: int
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """World directions of every firing, row-major (beam, azimuth): ``(beams * steps, 3)`` unit
    float32; the beam elevations ``(beams,)`` float64; the world azimuth of column 0."""
    el = lidar_elevations(beams)
    R = T_global_from_lidar[:3, :3].double()
    az0 = math.atan2(float(R[1, 0]), float(R[0, 0]))  # the LiDAR's x axis, in the world
    az = az0 + torch.arange(azimuth_steps, dtype=torch.float64) * (2 * math.pi / azimuth_steps)
    ce = torch.cos(el)[:, None]
    d = torch.stack(
        [ce * torch.cos(az)[None], ce * torch.sin(az)[None], torch.sin(el)[:, None].expand(-1, azimuth_steps)], -1
    )
    return d.view(-1, 3).float(), el, az0


def simulate_lidar(
    state: SceneState,
    T_global_from_lidar: torch.Tensor,
    beams: int | None = None,
    azimuth_steps: int | None = None,
    max_range: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sweep the LiDAR once (instantaneously) in the posed scene.

    Args:
        state: the scene at a frame.
        T_global_from_lidar: ``(4, 4)`` LiDAR -> world (the LiDAR's axes do not matter beyond
            where azimuth 0 points; beams are levelled with its z axis assumed vertical).
        beams, azimuth_steps, max_range: default to the scene config's.
    Returns:
        points: ``(N, 4)`` float32 (x, y, z, intensity in [0, 255]) in the LiDAR frame;
        labels: ``(N,)`` uint8 Occ3D class; instance: ``(N,)`` int32 (0 = ground).
        Firings that hit nothing within ``max_range`` give no point.
    """
    check_shape(T_global_from_lidar, "4 4", name="T_global_from_lidar")
    cfg = state.scene.config
    beams = cfg.lidar_beams if beams is None else beams
    steps = cfg.lidar_azimuth_steps if azimuth_steps is None else azimuth_steps
    max_range = cfg.lidar_max_range if max_range is None else max_range
    T = T_global_from_lidar.double()
    origin = T[:3, 3].float()
    dirs, el, az0 = lidar_rays(T, beams, steps)
    prims = state.prims
    if len(prims):
        near = (prims.center - origin).norm(dim=-1) - prims.bounding_radius() <= max_range
        prims = prims.select(near)
    rects = spherical_rects(prims, origin, el, az0, steps)
    hits = trace_layout(prims, state.ground, origin, dirs, rects, steps, wrap=True, ground_t_max=max_range)
    keep = hits.hit & (hits.t <= max_range)
    t = hits.t[keep]
    d = dirs[keep]
    p_world = origin[None].double() + (t[:, None] * d).double()
    Rl = T[:3, :3]
    p_lidar = (p_world - T[:3, 3]) @ Rl  # R^T (p - t)
    n = hits.normal[keep]
    cos_inc = (-(n * d).sum(-1)).clamp(0, 1)
    refl = torch.full_like(t, 0.3)
    prim = hits.prim[keep]
    isp = prim >= 0
    refl[isp] = prims.reflect[prim[isp]]
    cls = hits.cls[keep]
    ground_refl = torch.tensor([0.0] * 11 + [0.12, 0.2, 0.25, 0.35, 0.0, 0.0, 0.0])
    refl = torch.where(isp, refl, ground_refl[cls])
    paint = hits.paint[keep] > 0
    refl = torch.where(paint, torch.full_like(refl, 0.7), refl)
    intensity = (255.0 * refl * (0.25 + 0.75 * cos_inc) * torch.exp(-t / 200.0)).clamp(0, 255)
    points = torch.cat([p_lidar.float(), intensity[:, None]], -1)
    return points, cls.to(torch.uint8), hits.instance[keep].to(torch.int32)
