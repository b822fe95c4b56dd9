"""Camera rays: they pass through pixel centres, in the ego frame, with the right bookkeeping."""

from __future__ import annotations

import math

import pytest
import torch

from occkit.geometry.camera import project
from occkit.geometry.grid import Grid
from occkit.geometry.transforms import invert_transform, make_transform, quat_to_matrix
from occkit.rendering.rays import camera_rays
from occkit.rendering.sampling import importance_samples, ray_box, uniform_samples


def two_cameras(dtype=torch.float64):
    K = torch.tensor([[20.0, 0, 16.0], [0, 22.0, 12.0], [0, 0, 1]], dtype=dtype).expand(2, 3, 3).clone()
    K[1, 0, 2] = 15.0
    # camera 0 looks along ego +x (OpenCV z forward = ego x, x right = -y, y down = -z)
    R0 = torch.tensor([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], dtype=dtype)
    yaw = quat_to_matrix(torch.tensor([math.cos(0.4), 0, 0, math.sin(0.4)], dtype=dtype))
    T = torch.stack(
        [
            make_transform(R0, torch.tensor([1.0, 0.0, 1.5], dtype=dtype)),
            make_transform(yaw @ R0, torch.tensor([0.5, 0.3, 1.6], dtype=dtype)),
        ]
    )
    return K, T


def test_rays_project_back_to_pixel_centres():
    K, T = two_cameras()
    H, W = 24, 32
    rays = camera_rays(K, T, H, W)
    assert len(rays) == 2 * H * W
    assert torch.allclose(rays.dirs.norm(dim=-1), torch.ones(len(rays), dtype=torch.float64))
    # ordering: camera-major, then row-major
    assert rays.cam[H * W].item() == 1 and rays.row[W].item() == 1 and rays.col[W + 3].item() == 3
    # a point along each ray projects to its pixel centre, with z-depth = t * z_per_t
    t = torch.linspace(1, 30, len(rays), dtype=torch.float64)
    p_ego = rays.origins + rays.dirs * t[:, None]
    T_cam_from_ego = invert_transform(T)[rays.cam]  # (R, 4, 4)
    p_cam = (T_cam_from_ego[:, :3, :3] @ p_ego[:, :, None])[:, :, 0] + T_cam_from_ego[:, :3, 3]
    uv, z = project(p_cam[:, None, :], K[rays.cam])
    torch.testing.assert_close(uv[:, 0, 0], rays.col.double() + 0.5)
    torch.testing.assert_close(uv[:, 0, 1], rays.row.double() + 0.5)
    torch.testing.assert_close(z[:, 0], t * rays.z_per_t)
    # camera 0's central-ish ray looks along ego +x
    i = (rays.cam == 0) & (rays.row == 11) & (rays.col == 15)
    torch.testing.assert_close(rays.dirs[i][0], torch.tensor([1.0, 0, 0], dtype=torch.float64), atol=0.06, rtol=0)
    torch.testing.assert_close(rays.origins[rays.cam == 1][0], T[1, :3, 3])


def test_stride_pixels_random_weighted():
    K, T = two_cameras(torch.float32)
    H, W = 24, 32
    s = camera_rays(K, T, H, W, stride=4)
    assert len(s) == 2 * 6 * 8
    assert s.row.unique().tolist() == list(range(2, 24, 4))
    px = torch.tensor([[1, 3, 5], [0, 23, 31]])
    p = camera_rays(K, T, H, W, pixels=px)
    assert p.cam.tolist() == [1, 0] and p.row.tolist() == [3, 23] and p.col.tolist() == [5, 31]
    g = torch.Generator().manual_seed(0)
    r = camera_rays(K, T, H, W, num_random=500, generator=g)
    assert len(r) == 500 and int(r.row.max()) < H and int(r.col.max()) < W and set(r.cam.tolist()) == {0, 1}
    w = torch.zeros(2, H, W)
    w[1, 5, 7] = 1.0
    w[0, 0, 0] = 3.0
    wr = camera_rays(K, T, H, W, num_random=400, weights=w, generator=g)
    picked = set(zip(wr.cam.tolist(), wr.row.tolist(), wr.col.tolist()))
    assert picked == {(1, 5, 7), (0, 0, 0)}
    assert 250 < int((wr.cam == 0).sum()) < 350
    # gather reads maps at the rays' pixels
    maps = torch.arange(2 * H * W).view(2, H, W)
    assert p.gather(maps).tolist() == [maps[1, 3, 5].item(), maps[0, 23, 31].item()]


def test_ray_errors():
    K, T = two_cameras()
    with pytest.raises(ValueError, match="T_ego_from_cam"):
        camera_rays(K, T[:1], 4, 4)
    with pytest.raises(ValueError, match="at most one"):
        camera_rays(K, T, 4, 4, stride=2, num_random=3)
    with pytest.raises(ValueError, match="pixels"):
        camera_rays(K, T, 4, 4, pixels=torch.tensor([[2, 0, 0]]))
    with pytest.raises(ValueError, match="weights"):
        camera_rays(K, T, 4, 4, num_random=3, weights=-torch.ones(2, 4, 4))
    with pytest.raises(ValueError, match="stride"):
        camera_rays(K, T, 4, 4, stride=0)
    K_nan = K.clone()
    K_nan[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        camera_rays(K_nan, T, 4, 4)


def test_ray_box_hand_computed():
    grid = Grid((0, 0, 0), (2, 1, 1), (1, 1, 1))
    o = torch.tensor([[-1.0, 0.5, 0.5], [0.5, 0.5, 0.5], [-1.0, 3.0, 0.5], [-1.0, 0.0, 0.5]])
    d = torch.tensor([[1.0, 0, 0], [0, 0, 1.0], [1.0, 0, 0], [0.6, 0.8, 0]])
    near, far = ray_box(o, d, grid)
    assert near.tolist() == pytest.approx([1.0, 0.0, far[2].item(), 1 / 0.6])
    assert far[:2].tolist() == pytest.approx([3.0, 0.5])
    assert far[2] == near[2]  # a miss: zero length
    # diagonal ray enters x = 0 at t = 5/3 (y = 4/3 > 1): misses too
    assert far[3] == near[3]


def test_uniform_and_importance_samples():
    near = torch.tensor([1.0, 2.0])
    far = torch.tensor([3.0, 2.5])
    s = uniform_samples(near, far, num_samples=4)
    assert s.t_starts[0].tolist() == pytest.approx([1.0, 1.5, 2.0, 2.5])
    assert s.t[1].tolist() == pytest.approx([2.0625, 2.1875, 2.3125, 2.4375])
    st = uniform_samples(near, far, step=0.5)
    assert st.t.shape == (2, 4)
    assert st.deltas[1].tolist() == pytest.approx([0.5, 0.0, 0.0, 0.0])
    g = torch.Generator().manual_seed(0)
    j = uniform_samples(near, far, num_samples=4, jitter=True, generator=g)
    assert bool(((j.t >= j.t_starts) & (j.t <= j.t_ends)).all())
    w = torch.tensor([[0.0, 0.0, 1.0, 0.0], [0.25, 0.25, 0.25, 0.25]])
    fine = importance_samples(s, w, 10, blur=0.0)
    assert fine.t.shape == (2, 14)
    new_in_third = ((fine.t_starts[0] >= 2.0) & (fine.t_ends[0] <= 2.5)).sum().item()
    assert new_in_third == 11  # 10 new points split [2, 2.5] into 11 intervals
    assert torch.all(fine.t_ends[:, :-1] == fine.t_starts[:, 1:])
    assert fine.t_starts[:, 0].tolist() == near.tolist() and fine.t_ends[:, -1].tolist() == far.tolist()
    with pytest.raises(ValueError, match="exactly one"):
        uniform_samples(near, far, num_samples=3, step=0.1)
    with pytest.raises(ValueError, match="weights"):
        importance_samples(s, w[:, :3], 4)
