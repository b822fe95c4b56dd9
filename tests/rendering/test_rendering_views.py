"""Rendering a hard label grid reproduces analytic depth and classes of a hand-made scene."""

from __future__ import annotations

import math

import pytest
import torch

from occkit.geometry.grid import Grid
from occkit.geometry.transforms import make_transform
from occkit.labels import OCC3D_FREE
from occkit.rendering.rays import camera_rays
from occkit.rendering.views import hard_density, render_logits_views, render_occupancy_views

GRID = Grid((-4.0, -4.0, -1.0), (4.0, 4.0, 1.4), (0.4, 0.4, 0.4))  # (20, 20, 6)
BOX_LO, BOX_HI = (-0.8, -0.4, -0.6), (0.4, 0.4, 0.6)  # voxels x 8..10, y 9..10, z 1..3


def scene() -> torch.Tensor:
    occ = torch.full(GRID.shape, 17, dtype=torch.long)
    occ[:, :, 0] = 11  # ground: top face at z = -0.6
    occ[8:11, 9:11, 1:4] = 4  # a car
    return occ


def camera(H=24, W=40):
    K = torch.tensor([[[20.0, 0, W / 2], [0, 20.0, H / 2], [0, 0, 1]]])
    c, s = math.cos(0.15), math.sin(0.15)  # pitched down a little
    R_ego_from_cam = torch.tensor([[0.0, -s, c], [-1, 0, 0], [0, -c, -s]])
    T = make_transform(R_ego_from_cam, torch.tensor([-3.0, 0.1, 0.5]))[None]
    return K, T, H, W


def analytic(origins, dirs):
    """Distance to the first surface (box or ground top z = -0.6) inside the grid box, inf if none."""
    lo, hi = torch.tensor(BOX_LO), torch.tensor(BOX_HI)
    inv = 1 / dirs
    t1, t2 = (lo - origins) * inv, (hi - origins) * inv
    tn, tf = torch.minimum(t1, t2).amax(-1), torch.maximum(t1, t2).amin(-1)
    t_box = torch.where((tf >= tn) & (tf > 0), tn, torch.full_like(tn, math.inf))
    t_ground = torch.where(dirs[:, 2] < 0, (-0.6 - origins[:, 2]) / dirs[:, 2], torch.full_like(tn, math.inf))
    p = origins + dirs * t_ground[:, None]
    inside = (p[:, 0].abs() < 4) & (p[:, 1].abs() < 4)
    t_ground = torch.where(inside, t_ground, torch.full_like(t_ground, math.inf))
    t = torch.minimum(t_box, t_ground)
    cls = torch.where(t_box <= t_ground, 4, 11)
    return t, torch.where(torch.isfinite(t), cls, torch.full_like(cls, 17))


def test_hard_grid_reproduces_analytic_scene():
    K, T, H, W = camera()
    maps = render_occupancy_views(scene(), GRID, K, T, H, W, step=0.05, free=OCC3D_FREE)
    rays = camera_rays(K, T, H, W)
    t_true, cls_true = analytic(rays.origins, rays.dirs)
    t_true, cls_true = t_true.view(1, H, W), cls_true.view(1, H, W)
    hit = torch.isfinite(t_true)
    assert hit.float().mean() > 0.3 and (cls_true == 4).sum() > 20  # the scene is in view
    assert torch.equal(maps.distance > 0, hit)
    err = (maps.distance[hit] - t_true[hit]).abs()
    assert err.max() <= 0.05  # within one sample step (nearest lookups at interval midpoints)
    torch.testing.assert_close(maps.depth, maps.distance * rays.z_per_t.view(1, H, W))
    agree = (maps.semantics == cls_true).float().mean()
    assert agree >= 0.97, agree  # disagreements only where a ray grazes an edge
    assert maps.opacity[~hit].max() < 0.5


def test_logits_views_follow_confident_logits():
    occ = scene()
    logits = torch.nn.functional.one_hot(occ, 18).permute(3, 0, 1, 2).float() * 20  # near-certain
    K, T, H, W = camera()
    hard = render_occupancy_views(occ, GRID, K, T, H, W, stride=2, free=OCC3D_FREE)
    soft = render_logits_views(logits, GRID, K, T, H, W, stride=2, mode="nearest", step=0.05, free=OCC3D_FREE)
    assert soft.depth.shape == (1, 12, 20)
    assert (soft.semantics == hard.semantics).float().mean() >= 0.97
    both = (soft.distance > 0) & (hard.distance > 0)
    assert (soft.distance[both] - hard.distance[both]).abs().max() < 0.1


def test_view_errors():
    K, T, H, W = camera()
    with pytest.raises(ValueError, match="class ids"):
        render_occupancy_views(torch.full(GRID.shape, 18), GRID, K, T, H, W, free=OCC3D_FREE)
    with pytest.raises(ValueError, match="occupancy"):
        render_occupancy_views(torch.zeros(3, 3, 3, dtype=torch.long), GRID, K, T, H, W, free=OCC3D_FREE)
    with pytest.raises(TypeError):
        hard_density(torch.zeros(2, 2, 2), free=OCC3D_FREE)
    with pytest.raises(ValueError, match="T_ego_from_cam"):
        render_logits_views(torch.zeros(18, *GRID.shape), GRID, K, T.expand(2, 4, 4), H, W, free=OCC3D_FREE)
