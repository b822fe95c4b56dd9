"""LSS lifting: frustum geometry, splatting against a brute-force loop, the view transform."""

import math

import pytest
import torch

from occkit.geometry.camera import project
from occkit.geometry.grid import Grid
from occkit.geometry.transforms import apply_transform, invert_transform, make_transform, rotation_z
from occkit.models.lift import LSSViewTransform, depth_bin_centers, frustum_to_ego, make_frustum, splat


def _cams(N: int) -> tuple[torch.Tensor, torch.Tensor]:
    """N cameras 1.5 m up, looking out horizontally at yaws 0, 2pi/N, ...; K for a 32x96 image."""
    R0 = torch.tensor([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]])  # OpenCV camera looking along ego +x
    R = rotation_z(torch.arange(N) * (2 * math.pi / N)).float() @ R0
    T = make_transform(R, torch.tensor([0.3, 0.0, 1.5]).expand(N, 3))
    K = torch.tensor([[40.0, 0, 48], [0, 40.0, 16], [0, 0, 1]]).expand(N, 3, 3)
    return K, T


def test_depth_bins():
    b = depth_bin_centers(1.0, 4.0, 0.5)
    assert torch.allclose(b, torch.tensor([1.25, 1.75, 2.25, 2.75, 3.25, 3.75]))
    with pytest.raises(ValueError):
        depth_bin_centers(1.0, 4.0, 0.7)
    with pytest.raises(ValueError):
        depth_bin_centers(5.0, 4.0, 0.5)


def test_frustum_projects_back_to_pixel_centres():
    depths = torch.tensor([2.0, 5.0])
    fr = make_frustum((32, 96), 16, depths)
    assert fr.shape == (2, 2, 6, 3)
    assert torch.allclose(fr[0, 1, 2], torch.tensor([40.0, 24.0, 2.0]))
    K, T = _cams(2)
    ego = frustum_to_ego(fr, K[None], T[None])  # (1, 2, D, h, w, 3)
    assert ego.shape == (1, 2, 2, 2, 6, 3)
    cam = apply_transform(invert_transform(T)[:, None], ego[0].reshape(2, 1, -1, 3))  # (2, 1, P, 3)
    uv, z = project(cam.squeeze(1), K)
    assert torch.allclose(uv, fr[..., :2].reshape(1, -1, 2).expand(2, -1, 2), atol=1e-4)
    assert torch.allclose(z, fr[..., 2].reshape(1, -1).expand(2, -1), atol=1e-4)
    with pytest.raises(ValueError):
        make_frustum((30, 96), 16, depths)


def test_splat_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    grid = Grid((-2.0, -2.0, -1.0), (2.0, 2.0, 1.0), (1.0, 1.0, 0.5))  # (4, 4, 4)
    B, N, D, h, w, C = 2, 2, 3, 2, 3, 4
    prob = torch.rand(B, N, D, h, w, generator=g)
    ctx = torch.randn(B, N, C, h, w, generator=g)
    pts = torch.rand(B, N, D, h, w, 3, generator=g) * 5 - 2.5  # some fall outside
    vol = splat(prob, ctx, pts, grid)
    bev = splat(prob, ctx, pts, grid, collapse_z=True)
    ref = torch.zeros(B, C, 4, 4, 4)
    for b in range(B):
        for n in range(N):
            for d in range(D):
                for i in range(h):
                    for j in range(w):
                        p = pts[b, n, d, i, j].tolist()
                        ix = [math.floor((p[k] - grid.range_min[k]) / grid.voxel_size[k]) for k in range(3)]
                        if all(0 <= ix[k] < 4 for k in range(3)):
                            ref[b, :, ix[0], ix[1], ix[2]] += prob[b, n, d, i, j] * ctx[b, n, :, i, j]
    assert ref.abs().sum() > 0
    assert torch.allclose(vol, ref, atol=1e-5)
    assert torch.allclose(bev, ref.sum(-1), atol=1e-5)


def test_splat_gradients_and_shape_errors():
    grid = Grid((-2.0, -2.0, -1.0), (2.0, 2.0, 1.0), (1.0, 1.0, 0.5))
    prob = torch.rand(1, 1, 2, 2, 2, dtype=torch.float64, requires_grad=True)
    ctx = torch.randn(1, 1, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    pts = torch.rand(1, 1, 2, 2, 2, 3, dtype=torch.float64) * 2 - 1
    assert torch.autograd.gradcheck(lambda a, b: splat(a, b, pts, grid), (prob, ctx))
    with pytest.raises(ValueError, match="context"):
        splat(prob, ctx[..., :1], pts, grid)
    with pytest.raises(ValueError, match="points_ego"):
        splat(prob, ctx, pts[..., :2], grid)


def test_view_transform_shapes_and_geometry():
    torch.manual_seed(0)
    grid = Grid((-8.0, -8.0, -1.0), (8.0, 8.0, 3.0), (1.0, 1.0, 1.0))
    vt = LSSViewTransform(8, (1.0, 9.0, 1.0), 5, 16, grid)
    K, T = _cams(2)
    feats = torch.randn(1, 2, 8, 2, 6)
    vol, prob, ctx = vt(feats, K[None], T[None], (32, 96))
    assert vol.shape == (1, 5, 16, 16, 4)
    assert prob.shape == (1, 2, 8, 2, 6) and ctx.shape == (1, 2, 5, 2, 6)
    assert torch.allclose(prob.sum(2), torch.ones(1, 2, 2, 6), atol=1e-5)
    # Camera 0 looks along +x, camera 1 along -x: features land in front of both.
    occupied = vol.abs().sum(1)[0]  # (X, Y, Z)
    assert occupied[9:].sum() > 0 and occupied[:7].sum() > 0
    with pytest.raises(ValueError, match="stride"):
        vt(feats, K[None], T[None], (48, 96))


def test_frustum_geometry_is_float32_under_autocast():
    K, T = _cams(2)
    fr = make_frustum((32, 96), 16, depth_bin_centers(1.0, 45.0, 0.5))
    ref = frustum_to_ego(fr, K[None], T[None])
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        got = frustum_to_ego(fr, K[None], T[None])
    assert got.dtype == torch.float32 and torch.equal(got, ref)


def test_ray_geometry_meets_the_ground_at_the_frustum_depth():
    from occkit.models.lift import ray_geometry

    K, T = _cams(3)
    K, T = K[None], T[None]
    stride = 8
    geo = ray_geometry((32, 96), stride, K, T)
    assert geo.shape == (1, 3, 4, 4, 12)
    assert torch.allclose(geo[:, :, :3].norm(dim=2), torch.ones(1, 3, 4, 12), atol=1e-5)
    inv = geo[0, :, 3]  # (N, h, w)
    # Rows above the horizon (v < cy = 16) never meet the ground; rows below do.
    assert bool((inv[:, :2] == 0).all()) and bool((inv[:, 2:] > 0).all())
    # The frustum point at depth 1 / inv of a ground-seeing pixel lies on z = 0.
    depths = 1.0 / inv[:, 2:, :]  # (N, 2, w)
    for n in range(3):
        pts = frustum_to_ego(make_frustum((32, 96), stride, depths[n, 0, :1]), K[:, n : n + 1], T[:, n : n + 1])
        assert abs(float(pts[0, 0, 0, 2, 0, 2])) < 1e-4  # row 2, column 0 of camera n on the road
    # The ground plane moves with ground_z; the directions follow the intrinsics (a cropped image).
    up = ray_geometry((32, 96), stride, K, T, ground_z=0.5)[0, :, 3]
    assert torch.allclose(up[:, 2:], inv[:, 2:] * 1.5 / 1.0, rtol=1e-4)
    K2 = K.clone()
    K2[..., 1, 2] -= 8  # image shifted up by 8 px: each row sees what the row below saw before
    assert torch.allclose(ray_geometry((32, 96), stride, K2, T)[0, :, :, :3], geo[0, :, :, 1:], atol=1e-5)


def test_view_transform_with_geometry_input():
    K, T = _cams(2)
    grid = Grid((-4.0, -4.0, -1.0), (4.0, 4.0, 1.4), (0.8, 0.8, 0.8))
    vt = LSSViewTransform(16, (1.0, 9.0, 1.0), 8, 8, grid, geometry_input=True)
    assert vt.depth_net.body[0].in_channels == 20
    feats = torch.rand(1, 2, 16, 4, 12, requires_grad=True)
    volume, depth_prob, context = vt(feats, K[None], T[None], (32, 96))
    assert volume.shape == (1, 8, *grid.shape) and depth_prob.shape == (1, 2, 8, 4, 12)
    volume.sum().backward()
    assert feats.grad is not None and bool(torch.isfinite(feats.grad).all())


def test_splat_visibility_in_front_of_and_behind_the_surface():
    from occkit.models.lift import splat_visibility

    # One camera at the origin looking along +x (a 1x1 feature map), a 1 m grid along x.
    T = make_transform(torch.tensor([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]]), torch.zeros(3))[None, None]
    K = torch.tensor([[10.0, 0, 4], [0, 10.0, 4], [0, 0, 1]])[None, None]
    depths = depth_bin_centers(0.5, 8.5, 1.0)  # 1, 2, ..., 8 m
    pts = frustum_to_ego(make_frustum((8, 8), 8, depths), K, T)  # (1, 1, 8, 1, 1, 3)
    grid = Grid((0.5, -0.5, -0.5), (10.5, 0.5, 0.5), (1.0, 1.0, 1.0))
    prob = torch.zeros(1, 1, 8, 1, 1)
    prob[0, 0, 3] = 1.0  # the surface at 4 m
    vis = splat_visibility(prob, pts, grid)
    assert vis.shape == (1, 3, 10, 1, 1)
    reach, term, seen = vis[0, :, :, 0, 0]
    assert torch.allclose(reach[:8], torch.tensor([1.0, 1, 1, 1, 0, 0, 0, 0]))  # reaches up to and into 4 m
    assert torch.allclose(term[:8], prob[0, 0, :, 0, 0])
    assert torch.equal(seen, torch.tensor([1.0] * 8 + [0.0, 0.0]))  # 9 and 10 m: beyond the last bin
    assert bool((vis[0, :, 8:] == 0).all())
    # A spread distribution: transmittance falls monotonically along the ray; gradients flow.
    p = torch.softmax(torch.randn(1, 1, 8, 1, 1), 2).requires_grad_(True)
    r = splat_visibility(p, pts, grid)[0, 0, :8, 0, 0]
    assert bool((r[1:] <= r[:-1] + 1e-6).all()) and abs(float(r[0].detach()) - 1.0) < 1e-6
    r.sum().backward()
    assert p.grad is not None
    # The view transform appends the three channels.
    Kc, Tc = _cams(2)
    g = Grid((-4.0, -4.0, -1.0), (4.0, 4.0, 1.4), (0.8, 0.8, 0.8))
    vt = LSSViewTransform(16, (1.0, 9.0, 1.0), 8, 8, g, visibility=True)
    vol, _, _ = vt(torch.rand(1, 2, 16, 4, 12), Kc[None], Tc[None], (32, 96))
    assert vt.out_channels == 11 and vol.shape == (1, 11, *g.shape)
