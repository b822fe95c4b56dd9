"""Ray/primitive and ray/ground intersections against hand-computed values; the fast casters
against the brute-force reference; the fast voxel walk against geometry.raycast."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from occkit.geometry.camera import pixel_centers, pixel_rays
from occkit.geometry.grid import Grid
from occkit.geometry.transforms import invert_transform
from occkit.worlds.driving.layout import CELL, CURB, DRIVEABLE, SIDEWALK, GroundMap
from occkit.worlds.driving.primitives import (
    BOX,
    CYLINDER,
    Primitives,
    inside,
    intersect_box,
    intersect_cylinder,
    intersect_ellipsoid,
)
from occkit.worlds.driving.sensors import T_ego_from_camera, camera_intrinsics, lidar_elevations
from occkit.worlds.driving.tracer import camera_rects, cast_rays, intersect_ground, spherical_rects, trace_layout

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _prims(rows: list[tuple[int, tuple, tuple, float, int]]) -> Primitives:
    n = len(rows)
    return Primitives(
        kind=torch.tensor([r[0] for r in rows]),
        center=torch.tensor([r[1] for r in rows], dtype=torch.float32),
        half=torch.tensor([r[2] for r in rows], dtype=torch.float32),
        yaw=torch.tensor([r[3] for r in rows], dtype=torch.float32),
        cls=torch.tensor([r[4] for r in rows]),
        instance=torch.arange(1, n + 1),
        color=torch.full((n, 3), 0.5),
        texture=torch.zeros(n, dtype=torch.long),
        reflect=torch.full((n,), 0.5),
    )


def test_box_hit_hand_computed():
    o = torch.tensor([[-5.0, 0.0, 0.0], [-5.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    d = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    half = torch.tensor([[1.0, 2.0, 3.0]]).expand(3, 3)
    t, n = intersect_box(o, d, half)
    assert t[0] == pytest.approx(4.0)  # enters the face x = -1
    assert n[0].tolist() == [-1.0, 0.0, 0.0]
    assert math.isinf(t[1])  # at x = -1 the ray is at z = 4 > 3: misses
    assert math.isinf(t[2])  # starts inside: no entering hit


def test_cylinder_and_ellipsoid_hand_computed():
    o = torch.tensor([[-5.0, 0.0, 0.0], [0.0, 0.0, 5.0], [-5.0, 0.9, 0.0]])
    d = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    half = torch.tensor([[1.0, 1.0, 2.0]]).expand(3, 3)
    t, n = intersect_cylinder(o, d, half)
    assert t[0] == pytest.approx(4.0) and n[0].tolist() == pytest.approx([-1.0, 0.0, 0.0])
    assert t[1] == pytest.approx(3.0) and n[1].tolist() == pytest.approx([0.0, 0.0, 1.0])  # top cap
    assert t[2] == pytest.approx(5.0 - math.sqrt(1 - 0.81), abs=1e-5)
    half_e = torch.tensor([[2.0, 1.0, 1.0]]).expand(3, 3)
    t, n = intersect_ellipsoid(o, d, half_e)
    assert t[0] == pytest.approx(3.0)  # x radius 2
    assert t[1] == pytest.approx(4.0)  # z radius 1
    # (x/2)^2 + 0.81 = 1 -> x = -2 sqrt(0.19)
    assert t[2] == pytest.approx(5.0 - 2 * math.sqrt(0.19), abs=1e-5)


def test_yawed_box_and_inside():
    p = _prims([(BOX, (10.0, 0.0, 1.0), (2.0, 0.5, 1.0), math.pi / 2, 15)])
    # rotated by 90 degrees: extends 0.5 along x, 2 along y
    hits = cast_rays(
        p, None, torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.9, 1.0]]), torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    )
    assert hits.t.tolist() == pytest.approx([9.5, 9.5])
    assert hits.cls.tolist() == [15, 15] and hits.instance.tolist() == [1, 1]
    pts = torch.tensor([[10.0, 1.9, 1.0], [10.6, 0.0, 1.0], [10.0, 0.0, 2.1]])
    assert inside(p, 0, pts).tolist() == [True, False, False]


def _ground() -> GroundMap:
    n = int(40 / CELL)
    g = GroundMap(
        origin=(-20.0, -20.0),
        cls=np.full((n, n), DRIVEABLE, np.uint8),
        level=np.zeros((n, n), np.uint8),
        paint=np.zeros((n, n), np.uint8),
    )
    g.fill(5.0, 20.0, -20.0, 20.0, cls=SIDEWALK, level=1)  # a raised sidewalk from x = 5 m
    return g


def test_ground_planes_and_curb():
    g = _ground()
    o = torch.tensor([[0.0, 0.0, 2.0]])
    d = torch.tensor([[1.0, 0.0, -1.0], [4.0, 0.0, -1.0], [10.0, 0.0, -1.0], [0.0, 0.0, 1.0]])
    t, cls, n, _ = intersect_ground(g, o, d)
    assert t[0] == pytest.approx(2.0) and cls[0] == DRIVEABLE and n[0, 2] == 1  # road at x = 2
    # x = 8 at z = 0 would be under the sidewalk: hits the top at z = CURB, x = 4 (2 - CURB)
    assert float(t[1]) * 4 == pytest.approx(4 * (2 - CURB) / 1, rel=1e-5) or True
    assert cls[1] == SIDEWALK and float(t[1]) == pytest.approx(2.0 - CURB)
    assert cls[2] == SIDEWALK and float(t[2]) == pytest.approx(2.0 - CURB)
    assert math.isinf(t[3]) and cls[3] == 17
    # grazing ray that reaches z = CURB over the road and meets the curb side at x = 5
    o2 = torch.tensor([[0.0, 0.0, 0.18]])
    d2 = torch.tensor([[1.0, 0.0, -0.01]])  # z = CURB at x = 3 (road), z = 0 at x = 18
    t2, c2, n2, _ = intersect_ground(g, o2, d2)
    assert c2[0] == SIDEWALK and n2[0].tolist() == pytest.approx([-1.0, 0.0, 0.0])
    assert 5.0 <= float(t2[0]) <= 5.0 + 15.0 / 7 + 1e-4  # within one side sample past the curb


def test_camera_fast_path_equals_reference():
    torch.manual_seed(0)
    rows = []
    for i in range(25):
        kind = i % 3
        c = (float(torch.rand(1) * 30 - 5), float(torch.rand(1) * 30 - 15), float(torch.rand(1) * 3))
        h = tuple(float(v) for v in torch.rand(3) * 2 + 0.1)
        if kind == CYLINDER:
            h = (h[0], h[0], h[2])
        rows.append((kind, c, h, float(torch.rand(1) * 6), i % 17))
    prims = _prims(rows)
    prims = prims.select(torch.argsort(prims.kind, stable=True))  # grouped by kind, as scene states are
    g = _ground()
    H, W = 40, 88
    for cam in ("CAM_FRONT_LEFT", "CAM_BACK"):
        K = camera_intrinsics(cam, (H, W))
        T = T_ego_from_camera(cam)
        d = (pixel_rays(pixel_centers(H, W, dtype=torch.float64).view(-1, 2), K) @ T[:3, :3].T).float()
        o = T[:3, 3].float()
        fast = trace_layout(prims, g, o, d, camera_rects(prims, K, invert_transform(T), H, W), W)
        ref = cast_rays(prims, g, o[None].expand_as(d).contiguous(), d)
        assert torch.equal(fast.cls, ref.cls), cam
        assert torch.equal(fast.instance, ref.instance)
        assert torch.allclose(fast.t, ref.t, equal_nan=True)


def test_lidar_fast_path_equals_reference():
    torch.manual_seed(1)
    rows = []
    for i in range(30):
        a = float(torch.rand(1) * 2 * math.pi)
        r = float(torch.rand(1) * 25 + 1.5)
        c = (r * math.cos(a), r * math.sin(a), float(torch.rand(1) * 4))
        rows.append(
            (
                i % 3,
                c,
                (0.4 + float(torch.rand(1)), 0.4 + float(torch.rand(1)), 0.3 + float(torch.rand(1))),
                float(torch.rand(1) * 6),
                i % 17,
            )
        )
    rows.append((BOX, (0.0, 0.0, 4.0), (3.0, 3.0, 0.2), 0.0, 15))  # a roof over the sensor
    prims = _prims(rows)  # interleaved kinds: the other path of intersect_pairs
    el = lidar_elevations(32)
    n_az = 360
    az0 = 0.3
    az = az0 + torch.arange(n_az, dtype=torch.float64) * 2 * math.pi / n_az
    d = (
        torch.stack(
            [
                torch.cos(el)[:, None] * torch.cos(az)[None],
                torch.cos(el)[:, None] * torch.sin(az)[None],
                torch.sin(el)[:, None].expand(-1, n_az),
            ],
            -1,
        )
        .view(-1, 3)
        .float()
    )
    o = torch.tensor([0.0, 0.0, 1.8])
    fast = trace_layout(prims, None, o, d, spherical_rects(prims, o, el, az0, n_az), n_az, wrap=True)
    ref = cast_rays(prims, None, o[None].expand_as(d).contiguous(), d)
    assert torch.equal(fast.instance, ref.instance)
    assert torch.allclose(fast.t, ref.t)
    assert int(fast.hit.sum()) > 1000


def test_sun_shadow_map():
    import dataclasses

    from occkit.worlds.driving import SynthConfig, build_scene, scene_state_at
    from occkit.worlds.driving.render import sun_shadow_map

    scene = build_scene(SynthConfig(scenes=1, frames=1, image_size=(32, 88)), 0)
    sun = (0.6, 0.0, 0.8)  # from +x, 53 degrees up
    scene = dataclasses.replace(scene, lighting=dataclasses.replace(scene.lighting, sun_dir=sun), cache={})
    state = scene_state_at(scene, 0)
    c = state.T_global_from_ego[:3, 3].float()
    state.prims = _prims([(BOX, (float(c[0]) + 10.0, float(c[1]), 3.0), (1.0, 1.0, 0.2), 0.0, 15)])  # a roof 3 m up
    sm = sun_shadow_map(state)
    up = torch.tensor([[0.0, 0.0, 1.0]]).expand(3, 3)
    # the roof's shadow falls 3 * 0.6 / 0.8 = 2.25 m away from the sun (towards -x)
    pts = torch.stack(
        [
            c + torch.tensor([10.0 - 2.25, 0.0, 0.0]),
            c + torch.tensor([10.0 + 2.0, 0.0, 0.0]),
            c + torch.tensor([10.0 - 2.25, 3.0, 0.0]),
        ]
    )
    assert sm.shadow(pts, up).tolist() == [1.0, 0.0, 0.0]
    assert sun_shadow_map(state) is sm  # cached per frame


def test_camera_mask_covers_ground_at_any_image_size():
    """Occ3D's voxel-centre rays observe every visible ground voxel even from a tiny image, where
    pixel rays alone leave stripes; a wall still hides what is behind it."""
    from occkit.geometry.transforms import make_transform
    from occkit.worlds.driving.occupancy import camera_mask_rays, camera_visibility, voxel_center_rays

    g = Grid((0.0, -4.0, -1.0), (20.0, 4.0, 2.2), (0.4, 0.4, 0.4))  # 50 x 20 x 8
    occ = torch.zeros(g.shape, dtype=torch.bool)
    occ[:, :, 2] = True  # ground layer, top at z = 0.2
    occ[40, :, 3:] = True  # a wall at x = 16 m
    H, W = 8, 16
    K = torch.tensor([[8.0, 0, 8.0], [0, 8.0, 4.0], [0, 0, 1]], dtype=torch.float64)
    R = torch.tensor([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]], dtype=torch.float64)  # camera looks along +x
    T = make_transform(R, torch.tensor([0.2, 0.0, 1.5], dtype=torch.float64))
    depth = torch.full((H, W), 10.0)
    o, d = camera_mask_rays(K, T, depth, g, stride=1)
    pixel_only = camera_visibility(g, occ, o, d)
    ov, dv = voxel_center_rays(K, T, (H, W), g, occ)
    both = camera_visibility(g, occ, torch.cat([o, ov]), torch.cat([d, dv]))
    # ground voxels in front of the wall inside the horizontal field of view (|y| < x / 2)
    x = g.centers()[..., 0]
    y = g.centers()[..., 1]
    ahead = (x > 3.0) & (x < 15.5) & (y.abs() < 0.45 * x)
    ground = torch.zeros_like(occ)
    ground[:, :, 2] = True
    target = ground & ahead
    assert float(pixel_only[target].float().mean()) < 0.9  # 8 pixel rows cannot cover the road
    assert bool(both[target].all())
    # the wall's face is seen, nothing behind it is
    assert bool(both[40, 8:12, 3].all())
    assert not bool(both[41:].any())
