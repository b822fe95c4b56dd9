import torch

from occkit.geometry.camera import crop_intrinsics, pixel_centers, pixel_rays, project, scale_intrinsics, unproject

K = torch.tensor([[100.0, 0.0, 64.0], [0.0, 110.0, 48.0], [0.0, 0.0, 1.0]])


def test_point_on_axis_hits_principal_point():
    uv, z = project(torch.tensor([[0.0, 0.0, 5.0], [1.0, -2.0, 4.0]]), K)
    assert torch.allclose(uv[0], torch.tensor([64.0, 48.0]))
    assert torch.allclose(uv[1], torch.tensor([64 + 100 / 4, 48 - 220 / 4]))
    assert torch.allclose(z, torch.tensor([5.0, 4.0]))


def test_project_unproject_round_trip():
    gen = torch.Generator().manual_seed(0)
    pts = torch.randn(2, 100, 3, generator=gen)
    pts[..., 2] = pts[..., 2].abs() + 0.5
    uv, z = project(pts, K.expand(2, 3, 3))
    assert torch.allclose(unproject(uv, z, K.expand(2, 3, 3)), pts, atol=1e-5)


def test_pixel_centers_and_rays():
    c = pixel_centers(4, 6)
    assert c.shape == (4, 6, 2)
    assert torch.equal(c[0, 0], torch.tensor([0.5, 0.5])) and torch.equal(c[3, 5], torch.tensor([5.5, 3.5]))
    r = pixel_rays(torch.tensor([[64.0, 48.0]]), K)
    assert torch.allclose(r, torch.tensor([[0.0, 0.0, 1.0]]))


def test_resize_and_crop_keep_projection_consistent():
    p = torch.tensor([[0.3, -0.2, 3.0]])
    uv, _ = project(p, K)
    uv_s, _ = project(p, scale_intrinsics(K, 0.5, 0.25))
    assert torch.allclose(uv_s, uv * torch.tensor([0.5, 0.25]))
    uv_c, _ = project(p, crop_intrinsics(K, 10, 4))
    assert torch.allclose(uv_c, uv - torch.tensor([10.0, 4.0]))
