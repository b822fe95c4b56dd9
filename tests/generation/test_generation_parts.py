"""occkit.generation's parts: schedule, losses, metrics, frustum, deformable conv, MDA, sampling."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from occkit.generation.denoiser import residual_shapes
from occkit.generation.frustum import frustum_mask, latent_ray_points
from occkit.generation.losses import diffusion_loss, kl_to_standard_normal, one_hot_occupancy, reconstruction_loss
from occkit.generation.mda import DeformConv3d
from occkit.generation.metrics import frechet_distance, kernel_distance
from occkit.generation.model import SceneGenerator
from occkit.generation.sampling import sample
from occkit.generation.schedule import sampling_scheduler, training_scheduler, x0_from_eps
from occkit.geometry.grid import Grid

sys.path.insert(0, str(Path(__file__).parent))
from tiny import tiny_generator_cfg, tiny_schedule  # noqa: E402

GRID = Grid.from_range((-4.0, -4.0, -1.0, 4.0, 4.0, 1.4), 0.4)  # (20, 20, 6)


def front_camera(B: int = 1, H: int = 32, W: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    R = torch.tensor([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]])  # camera (x right, y down, z fwd) -> ego
    T = torch.eye(4).repeat(B, 1, 1, 1)
    T[..., :3, :3] = R
    T[..., 2, 3] = 0.5
    K = torch.tensor([[20.0, 0, W / 2], [0, 20.0, H / 2], [0, 0, 1]]).repeat(B, 1, 1, 1)
    return K, T


@pytest.fixture(scope="module")
def generator():
    torch.manual_seed(0)
    return SceneGenerator(tiny_generator_cfg(), 18, GRID).eval()


# ------------------------------------------------------------------------------- schedule, losses
def test_x0_from_eps_inverts_add_noise():
    sched = training_scheduler(tiny_schedule())
    z0, noise = torch.randn(3, 4, 2, 5), torch.randn(3, 4, 2, 5)
    t = torch.tensor([0, 50, 99])
    z_t = sched.add_noise(z0, noise, t)
    assert torch.allclose(x0_from_eps(z_t, noise, sched.alphas_cumprod, t), z0, atol=1e-4)


def test_losses_hand_computed():
    mean, logvar = torch.zeros(2, 1, 1, 2), torch.zeros(2, 1, 1, 2)
    assert kl_to_standard_normal(mean, logvar).item() == 0.0
    mean[0, 0, 0, 0] = 2.0  # 0.5 * 4 = 2 on sample 0, averaged over 2 samples
    logvar[1, 0, 0, 1] = math.log(3.0)  # 0.5 * (3 - 1 - ln 3)
    assert kl_to_standard_normal(mean, logvar).item() == pytest.approx((2.0 + 0.5 * (2 - math.log(3))) / 2)
    x = torch.zeros(1, 3, 2, 2)
    assert reconstruction_loss(x + 0.5, x).item() == pytest.approx(0.5)
    assert diffusion_loss(torch.ones(1, 4, 1, 1) * 2, torch.zeros(1, 4, 1, 1)).item() == pytest.approx(4.0)
    oh = one_hot_occupancy(torch.tensor([[[[0, 2, 255, -1]]]]), 3)
    assert oh.shape == (1, 3, 1, 1, 4) and oh.dtype == torch.float32
    assert oh[0, :, 0, 0].T.tolist() == [[1, 0, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0]]
    labels = torch.randint(0, 20, (2, 5, 4, 3), generator=torch.Generator().manual_seed(0))  # 18, 19 out of range
    ref = torch.nn.functional.one_hot(labels.clamp(max=17), 18).permute(0, 4, 1, 2, 3).float() * (labels < 18)[:, None]
    assert torch.equal(one_hot_occupancy(labels, 18), ref) and torch.equal(
        one_hot_occupancy(labels.to(torch.uint8), 18), ref
    )
    with pytest.raises(ValueError, match="reconstruction"):
        reconstruction_loss(torch.zeros(1, 3, 2, 3), x)


def test_fid_and_kid_hand_computed():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(400, 3, generator=g)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # same covariance, mean shifted by (1, 2, 2): FID = |shift|^2 = 9
    assert frechet_distance(a, a + torch.tensor([1.0, 2.0, 2.0])) == pytest.approx(9.0, abs=1e-6)
    # 1-D: (mu1 - mu2)^2 + s1 + s2 - 2 sqrt(s1 s2)
    x = torch.tensor([[0.0], [2.0]])  # mean 1, var 2
    y = torch.tensor([[0.0], [4.0], [8.0]])  # mean 4, var 16
    assert frechet_distance(x, y) == pytest.approx(9 + 2 + 16 - 2 * math.sqrt(32))
    # KID with n = 2 and D = 1: k = (xy + 1)^3
    x, y = torch.tensor([[0.0], [1.0]]), torch.tensor([[1.0], [1.0]])
    kxx = 2 * 1.0  # off-diagonal k(0,1) twice
    kyy = 2 * 8.0
    kxy = (1 + 1 + 8 + 8) / 4
    assert kernel_distance(x, y, subset_size=2, subsets=3) == pytest.approx((kxx + kyy) / 2 - 2 * kxy)
    assert abs(kernel_distance(a[:200], a[200:], subset_size=100, subsets=20)) < 0.05


def test_psnr_hand_computed():
    from occkit.generation.metrics import psnr

    ref = torch.zeros(2, 1, 2, 2)
    img = ref.clone()
    img[0, 0, 0, 0] = 0.2  # MSE 0.01 -> 20 dB
    out = psnr(img, ref)
    assert out[0].item() == pytest.approx(20.0, abs=1e-4) and math.isinf(out[1].item())
    assert psnr(img * 255, ref, peak=255.0)[0].item() == pytest.approx(20.0, abs=1e-4)
    with pytest.raises(ValueError, match="psnr"):
        psnr(img, ref[:1])


# ------------------------------------------------------------------------------- geometry
def test_frustum_mask_and_ray_points():
    K, T = front_camera()
    m = frustum_mask(GRID, K, T, (32, 64))
    assert m.shape == (1, 20, 20, 6)
    assert m[0, 15, 10].any() and not m[0, 2, 10].any()  # in front seen, behind not
    pts = latent_ray_points(K[:, 0], T[:, 0], (32, 64), 8, torch.tensor([2.0, 4.0]))
    assert pts.shape == (1, 2, 4, 8, 3)
    # camera z-depth is ego x: the points sit at x = depth
    assert torch.allclose(pts[0, :, :, :, 0], torch.tensor([2.0, 4.0]).view(2, 1, 1).expand(2, 4, 8))


def test_deform_conv3d_with_zero_offsets_is_a_conv():
    torch.manual_seed(0)
    d = DeformConv3d(3, 5)
    x = torch.randn(2, 3, 4, 5, 6)
    # the 1x1x1 mix over tap-major, channel-minor samples = a 3x3x3 conv with these weights
    w = d.mix.weight.view(5, 27, 3).permute(0, 2, 1).reshape(5, 3, 3, 3, 3)
    ref = F.conv3d(x, w, d.mix.bias, padding=1)
    assert torch.allclose(d(x), ref, atol=1e-5)
    d.offset.bias.data.normal_()  # offsets move the samples: no longer the plain conv, gradients reach the offset net
    y = d(x)
    assert not torch.allclose(y, ref, atol=1e-3)
    y.square().sum().backward()
    assert d.offset.weight.grad.abs().sum() > 0


def test_residual_shapes_match_the_unet(generator):
    shapes, mid = residual_shapes(generator.cfg.denoiser, (4, 11))
    seen = []
    hooks = [generator.unet.conv_in.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape[1:])))]
    for blk in generator.unet.down_blocks:
        hooks.append(blk.register_forward_hook(lambda m, i, o: seen.extend(tuple(s.shape[1:]) for s in o[1])))
    hooks.append(generator.unet.mid_block.register_forward_hook(lambda m, i, o: seen.append(("mid", *o.shape[1:]))))
    text, mask = torch.zeros(1, 16, generator.unet.config.cross_attention_dim), torch.ones(1, 16, dtype=torch.bool)
    with torch.no_grad():
        generator.unet(torch.zeros(1, 4, 4, 11), 5, encoder_hidden_states=text, encoder_attention_mask=mask)
    for h in hooks:
        h.remove()
    assert seen == [*shapes, ("mid", *mid)]


# ------------------------------------------------------------------------------- MDA
def test_zero_initialised_mda_leaves_the_denoiser_unchanged(generator):
    K, T = front_camera(B=2)
    occ = one_hot_occupancy(torch.randint(0, 18, (2, 20, 20, 6)), 18)
    z = torch.randn(2, 4, 4, 8)
    text, mask = generator.encode_text(["a road with cars", "trees"])
    t = torch.tensor([10, 60])
    with torch.no_grad():
        down, mid = generator.residuals(z, occ, K, T)
        assert all(r.abs().max() == 0 for r in down) and mid.abs().max() == 0
        with_mda = generator.denoise(z, t, text, mask, occ, K, T)
        without = generator.denoise(z, t, text, mask, None, K, T)
    assert torch.equal(with_mda, without)


def test_gradients_reach_every_mda_part():
    torch.manual_seed(0)
    gen = SceneGenerator(tiny_generator_cfg(), 18, GRID)
    K, T = front_camera()
    occ = one_hot_occupancy(torch.randint(0, 18, (1, 20, 20, 6)), 18)
    text, mask = gen.encode_text(["a street"])
    opt = torch.optim.SGD(gen.mda.parameters(), lr=0.1)
    # the zero convolutions get gradients first; after one step everything upstream does, except the camera
    # encoder's first layer, behind its own zero-initialised last layer: after two
    for _ in range(3):
        opt.zero_grad()
        gen.denoise(torch.randn(1, 4, 4, 8), torch.tensor([30]), text, mask, occ, K, T).square().mean().backward()
        opt.step()
    mda = gen.mda
    for name, p in [
        ("zero conv", mda.zero_convs[0].weight),
        ("zero mid", mda.zero_mid.weight),
        ("to_image", mda.to_image[0].weight),
        ("mamba", mda.mamba[0].forward_branch.in_proj.weight),
        ("mamba reversed", mda.mamba[0].backward_branch.in_proj.weight),
        ("patch", mda.patch_embed.weight),
        ("camera", mda.camera.mlp[0].weight),
        ("deform", mda.deform.mix.weight),
        ("offsets", mda.deform.offset.weight),
    ]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_mda_bad_input_names_the_tensor(generator):
    K, T = front_camera()
    with pytest.raises(ValueError, match="occupancy"):
        generator.residuals(torch.zeros(1, 4, 4, 8), torch.zeros(1, 5, 20, 20, 6), K, T)


# ------------------------------------------------------------------------------- sampling
def test_sampling_loop_shapes_and_seed_determinism(generator):
    K, T = front_camera(B=2)
    sched = sampling_scheduler(tiny_schedule())
    occ = one_hot_occupancy(torch.randint(0, 18, (2, 20, 20, 6)), 18)
    a = sample(generator, sched, ["cars", "trees"], K, T, (32, 64), occupancy=occ, steps=3, seed=7)
    b = sample(generator, sched, ["cars", "trees"], K, T, (32, 64), occupancy=occ, steps=3, seed=7)
    c = sample(generator, sched, ["cars", "trees"], K, T, (32, 64), occupancy=occ, steps=3, seed=8)
    assert a.images.shape == (2, 1, 3, 32, 64) and a.images.min() >= 0 and a.images.max() <= 1
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    g = sample(generator, sched, ["cars", "trees"], K, T, (32, 64), steps=2, seed=7, guidance_scale=3.0)
    assert g.images.shape == (2, 1, 3, 32, 64) and g.occupancy is None
    with pytest.raises(ValueError, match="texts"):
        sample(generator, sched, ["one"], K, T, (32, 64), steps=2)
    with pytest.raises(ValueError, match="multiples"):
        sample(generator, sched, ["a", "b"], K, T, (30, 64), steps=2)


def test_sampling_with_perception_feedback_reads_every_step(generator):
    K, T = front_camera()
    sched = sampling_scheduler(tiny_schedule())
    calls = []

    def perception(images, intrinsics, T_ego_from_cam):
        calls.append(images.shape)
        logits = torch.zeros(images.shape[0], 18, 20, 20, 6)
        logits[:, 11] = images.mean() * 10  # depends on the images
        return logits

    out = sample(generator, sched, ["a road"], K, T, (32, 64), perception=perception, feedback=True, steps=4, seed=0)
    assert len(calls) == 4  # steps 1..3 read the estimate of the step before; one more on the final images
    assert calls[0] == (1, 1, 3, 32, 64)
    assert out.occupancy.shape == (1, 18, 20, 20, 6) and torch.allclose(out.occupancy.sum(1), torch.ones(1, 20, 20, 6))
    assert out.perception_logits.shape == (1, 18, 20, 20, 6)
    with pytest.raises(ValueError, match="perception"):
        sample(generator, sched, ["a"], K, T, (32, 64), feedback=True, steps=2)


def test_mda_ray_depths_and_camera_modulation():
    from occkit.generation.mda import CameraEncoder, ray_depths

    d = ray_depths(1.0, 45.0, 16, "log")
    assert d[0] == pytest.approx(1.0) and d[-1] == pytest.approx(45.0)
    ratio = d[1:] / d[:-1]
    assert torch.allclose(ratio, ratio[0].expand_as(ratio))  # geometric: as many samples per doubling of depth
    assert int((d > 5.0).sum()) >= 7  # the first version (inverse) kept 3 of 16 beyond 5 m
    inv = ray_depths(1.0, 45.0, 16, "inverse")
    assert torch.allclose(1 / inv, torch.linspace(1.0, 1 / 45.0, 16)) and int((inv > 5.0).sum()) == 3
    assert torch.allclose(ray_depths(2.0, 8.0, 4, "linear"), torch.tensor([2.0, 4.0, 6.0, 8.0]))
    with pytest.raises(ValueError, match="ray_spacing"):
        ray_depths(1.0, 2.0, 4, "cubic")
    K, T = front_camera(B=3)
    enc = CameraEncoder(8)  # residual: exactly 1 at initialisation, so the occupancy features keep their scale
    assert torch.equal(enc(K.flatten(0, 1), T.flatten(0, 1), (32, 64)), torch.ones(3, 8))
    plain = CameraEncoder(8, residual=False)
    assert not torch.allclose(plain(K.flatten(0, 1), T.flatten(0, 1), (32, 64)), torch.ones(3, 8))
    with pytest.raises(ValueError, match="camera_modulation"):
        SceneGenerator(tiny_generator_cfg(camera_modulation="add"), 18, GRID)
