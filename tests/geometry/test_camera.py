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


def test_project_ego_is_the_inverse_pose_then_the_pinhole():
    from occkit.geometry.camera import in_image, project, project_ego
    from occkit.geometry.transforms import make_transform, rotation_z

    g = torch.Generator().manual_seed(0)
    T = make_transform(
        rotation_z(torch.tensor([0.3, -1.2]), dtype=torch.float32), torch.tensor([[1.0, 0.5, 1.6], [0.0, -0.4, 1.5]])
    )  # (2, 4, 4)
    K = torch.tensor([[50.0, 0.0, 32.0], [0.0, 50.0, 16.0], [0.0, 0.0, 1.0]]).expand(2, 3, 3)
    pts = torch.randn(7, 3, generator=g) * 10
    uv, z = project_ego(pts, K, T)
    assert uv.shape == (2, 7, 2) and z.shape == (2, 7)
    cam = torch.stack([(torch.linalg.inv(T[n]) @ torch.cat([pts, torch.ones(7, 1)], 1).T).T[:, :3] for n in range(2)])
    ref_uv, ref_z = project(cam, K)
    torch.testing.assert_close(uv, ref_uv, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(z, ref_z, rtol=1e-5, atol=1e-5)
    edge = torch.tensor([[0.0, 0.0], [63.999, 31.999], [64.0, 5.0], [-0.001, 5.0], [5.0, 32.0]])
    assert in_image(edge, 32, 64).tolist() == [True, True, False, False, False]
