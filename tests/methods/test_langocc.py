"""langocc: feature rendering, zero-shot prediction, the lifted baseline; a tiny network's loss falls."""

from __future__ import annotations

import pytest
import torch
from two_cameras import RANGE, cameras, scene, tiny_model_cfg

from occkit.data.sample import Batch, Sample, collate
from occkit.geometry.grid import Grid
from occkit.labels import OCC3D_FREE
from occkit.methods.langocc import LangOccConfig, LangOccMethod, lidar_pixels, lifted_features, sample_feature_map
from occkit.rendering.rays import camera_rays
from occkit.rendering.views import render_occupancy_views

D = 16


def tiny_method(**kw) -> LangOccMethod:
    opts = dict(feature_dim=D, mlp_width=32, num_rays=256, num_proposal=16, num_importance=16)
    cfg = LangOccConfig(free=17, **{**opts, **kw})
    m = LangOccMethod(tiny_model_cfg(), cfg)
    g = torch.Generator().manual_seed(1)
    m.class_text.copy_(torch.nn.functional.normalize(torch.randn(17, D, generator=g), dim=-1))
    m.class_text_ready.fill_(True)  # no text encoder in tests
    return m


def tiny_batch(stride: int = 4) -> Batch:
    """One frame, two cameras of a ground plane and two boxes; 2D features = a unit vector per
    class of the rendered semantic map, at ``stride``."""
    occ, grid = scene()
    H, W = 32, 64
    K, T = cameras(H, W)
    maps = render_occupancy_views(occ, grid, K, T, H, W, free=OCC3D_FREE)
    g = torch.Generator().manual_seed(0)
    vocab = torch.nn.functional.normalize(torch.randn(18, D, generator=g), dim=-1)
    sem = maps.semantics[:, stride // 2 :: stride, stride // 2 :: stride]  # (N, h, w) cell centres
    feats = vocab[sem].permute(0, 3, 1, 2).contiguous()  # (N, D, h, w)
    sample = Sample(
        token="t0",
        scene="s0",
        timestamp=0,
        cam_names=("CAM_FRONT", "CAM_BACK"),
        images=torch.rand(2, 3, H, W, generator=g),
        intrinsics=K,
        T_ego_from_cam=T,
        T_global_from_ego=torch.eye(4, dtype=torch.float64),
        prior_features=feats,
        prior_feature_stride=stride,
    )
    return collate([sample])


def test_one_opaque_voxel_renders_its_feature():
    m = tiny_method(num_importance=8)
    X, Y, Z = m.grid.shape
    logits = torch.full((1, X, Y, Z), -30.0)
    logits[0, 12, 8, 3] = 30.0  # one opaque voxel, centre (1.8, 0.2, 0.4)
    latent = torch.zeros(m.latent_dim, *m.latent_grid.shape)
    latent[0] = 1.0
    latent[3] = -0.5
    origins = torch.tensor([[-1.0, 0.2, 0.4], [-1.0, -2.0, 0.4]])
    dirs = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    from occkit.rendering.rays import Rays

    rays = Rays(
        origins,
        dirs,
        torch.zeros(2, dtype=torch.long),
        torch.zeros(2, dtype=torch.long),
        torch.zeros(2, dtype=torch.long),
        torch.ones(2),
    )
    with torch.no_grad():
        out = m.render(logits, latent, rays)
        want = m.language(latent[:, 0, 0, 0][None])[0]
    assert float(out.opacity[0]) == pytest.approx(1.0, abs=1e-4)
    assert torch.allclose(out.values[0], want, atol=1e-4)
    assert (
        2.4 < float(out.depth[0]) < 3.0
    )  # enters the voxel at x = 1.6 (t = 2.6): trilinear density spreads it a little
    assert float(out.opacity[1]) < 1e-3  # the other ray misses it


def test_density_learns_only_from_features_that_differ_along_a_ray():
    """The rendered feature is L2-normalised, so the opacity's scale cancels: where the language
    features along a ray are all alike (early training), the feature loss gives the density no
    gradient; where they differ, the density is pushed towards the sample that matches the target."""
    from occkit.losses.language import cosine_weighted_mse
    from occkit.rendering.rays import Rays

    m = tiny_method(num_importance=0)
    X, Y, Z = m.grid.shape
    rays = Rays(
        torch.tensor([[-3.0, 0.2, 0.4]]),
        torch.tensor([[1.0, 0.0, 0.0]]),
        *(torch.zeros(1, dtype=torch.long),) * 3,
        torch.ones(1),
    )
    target = torch.nn.functional.normalize(torch.randn(1, D, generator=torch.Generator().manual_seed(3)), dim=-1)

    def density_grad(latent):
        logits = torch.full((1, X, Y, Z), -1.0, requires_grad=True)
        out = m.render(logits, latent, rays)
        cosine_weighted_mse(out.values, target).backward()
        return logits.grad

    alike = torch.zeros(m.latent_dim, *m.latent_grid.shape)
    alike[0] = 1.0  # the same latent everywhere: the same feature at every sample
    g = density_grad(alike)
    assert float(g.abs().max()) < 1e-6
    differ = alike.clone()
    differ[1, alike.shape[1] // 2 :] = 3.0  # the far half of the ray has another feature
    g = density_grad(differ)
    assert float(g.abs().max()) > 1e-4


def test_sample_feature_map_and_lidar_pixels():
    feats = (
        torch.arange(2 * 3 * 4, dtype=torch.float32).view(1, 2, 3, 4).expand(2, -1, -1, -1).clone()
    )  # (N=2, D=2, 3, 4)
    feats[1] += 100
    K, T = cameras(9, 12)
    pix = torch.tensor([[0, 1, 1], [1, 4, 7], [0, 7, 10]])  # centres of cells (0, 0), (1, 2), (2, 3) at stride 3
    rays = camera_rays(K, T, 9, 12, pixels=pix)
    got = sample_feature_map(feats, rays, 3)
    want = torch.stack([feats[0, :, 0, 0], feats[1, :, 1, 2], feats[0, :, 2, 3]])
    assert torch.allclose(got, want, atol=1e-4)
    # a point 5 m in front of the front camera, on its axis, projects to the principal point
    K, T = cameras(12, 16)
    p = (T[0] @ torch.tensor([0.0, 0.0, 5.0, 1.0]))[:3]
    px = lidar_pixels(torch.cat([p, torch.zeros(1)])[None], K, T, 12, 16)
    assert px.tolist() == [[0, 6, 8]]


def test_lifted_features_take_the_pixel_feature():
    K, T = cameras(12, 16)
    feats = torch.zeros(2, 3, 3, 4)
    feats[0, 0] = 1.0  # camera 0 sees direction e0 everywhere
    feats[1, 1] = 1.0
    front = (T[0] @ torch.tensor([0.0, 0.0, 5.0, 1.0]))[:3]
    back = (T[1] @ torch.tensor([0.0, 0.0, 5.0, 1.0]))[:3]
    side = torch.tensor([0.0, 30.0, 0.0])  # seen by neither
    f, seen = lifted_features(feats, K, T, (12, 16), 4, torch.stack([front, back, side]))
    assert seen.tolist() == [True, True, False]
    assert torch.allclose(f, torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 0]]))


def test_langocc_loss_falls_and_predicts_occ3d_scores():
    torch.manual_seed(0)
    batch = tiny_batch()
    method = tiny_method()
    opt = torch.optim.Adam(method.parameters(), lr=1e-2)
    history = []
    for _ in range(10):
        losses = method.training_step(batch)
        assert set(losses) == {"loss_feat"}
        opt.zero_grad()
        losses["loss_feat"].backward()
        opt.step()
        history.append(float(losses["loss_feat"].detach()))
    assert sum(history[-3:]) / 3 < 0.7 * sum(history[:3]) / 3, history
    method.eval()
    scores = method.predict(batch)
    assert scores.shape == (1, 18, 16, 16, 6)
    pred = scores.argmax(1)
    p_occ = method.p_occupied(method.forward(batch).logits)
    assert torch.equal(pred == 17, p_occ < method.threshold())
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as the engine validates on a CPU with native bf16
        scores_bf16 = method.predict(batch)
    assert scores_bf16.dtype == torch.float32 and torch.equal((scores_bf16.argmax(1) == 17), pred == 17)


def test_checks():
    batch = tiny_batch()
    batch.prior_features = None
    with pytest.raises(ValueError, match="prior_features"):
        tiny_method().training_step(batch)
    batch = tiny_batch()
    batch.prior_features = batch.prior_features[:, :, :8]
    with pytest.raises(ValueError, match="feature_dim"):
        tiny_method().training_step(batch)
    from occkit.config import ConfigError, from_dict

    with pytest.raises(ConfigError, match="ray_pixels: 'sky' is not one of"):  # checked once, when the config loads
        from_dict(LangOccConfig, {"ray_pixels": "sky"})
    with pytest.raises(ValueError, match="occupied_threshold"):
        tiny_method(occupied_threshold=1.5)
    batch = tiny_batch()
    with pytest.raises(ValueError, match="LiDAR"):
        tiny_method(ray_pixels="lidar").training_step(batch)
    cfg = tiny_model_cfg()
    cfg.head = "bev"
    with pytest.raises(ValueError, match="voxel head"):
        LangOccMethod(cfg, LangOccConfig(free=17, feature_dim=D))


def test_query_picture_draws_matches():
    from occkit.commands.query import query_picture

    grid = Grid.from_range(RANGE, 0.4)
    occ = torch.zeros(grid.shape, dtype=torch.bool)
    occ[:, :, 0] = True
    occ[11:14, 6:10, 1:4] = True
    sim = torch.where(occ, torch.full(grid.shape, 0.1), torch.full(grid.shape, float("nan")))
    sim[11:14, 6:10, 1:4] = 0.9
    match = occ & (sim > 0.5)
    K, T = cameras()
    pic = query_picture(
        torch.rand(2, 3, 32, 64), K, T, ("CAM_FRONT", "CAM_BACK"), grid, occ, sim, match, "car", 0.1, 0.9
    )
    assert pic.ndim == 3 and pic.shape[2] == 3 and pic.dtype.name == "uint8"


def test_render_folds_the_feature_norms_into_the_weights():
    """``render`` (latent heads) composites the language MLP's raw features with their norms folded
    into the weights; the same as rendering the normalised features, values and gradients."""
    from occkit.losses.language import normalize_features
    from occkit.rendering.rays import Rays
    from occkit.rendering.volrend import render_samples

    m = tiny_method(num_importance=8)
    g = torch.Generator().manual_seed(3)
    X, Y, Z = m.grid.shape
    logits = torch.randn(1, X, Y, Z, generator=g).mul(3).requires_grad_()
    latent = torch.randn(m.latent_dim, *m.latent_grid.shape, generator=g).requires_grad_()
    origins = torch.tensor([[-1.0, 0.2, 0.4], [0.0, -2.0, 0.3], [0.5, 0.5, 0.2]])
    dirs = torch.nn.functional.normalize(torch.tensor([[1.0, 0.1, 0.0], [0.2, 1.0, 0.0], [-1.0, 0.3, -0.1]]), dim=-1)
    rays = Rays(
        origins,
        dirs,
        torch.zeros(3, dtype=torch.long),
        torch.zeros(3, dtype=torch.long),
        torch.zeros(3, dtype=torch.long),
        torch.ones(3),
    )
    up = torch.randn(3, m.out_dim, generator=g)

    torch.manual_seed(5)
    fast = m.render(logits, latent, rays, jitter=True)
    grads_fast = torch.autograd.grad((fast.values * up).sum() + fast.depth.sum(), (logits, latent))

    torch.manual_seed(5)  # the same jittered samples
    sigma = m.density(logits)
    samples = m.samples(sigma, rays, jitter=True)
    dens, lookup = m.density_field(sigma), m.latent_field(latent)
    slow = render_samples(lambda p: (dens(p)[0], m.language(lookup(p))), origins, dirs, samples)
    slow_values = normalize_features(slow.values)
    grads_slow = torch.autograd.grad((slow_values * up).sum() + slow.depth.sum(), (logits, latent))

    assert float(fast.opacity.min()) > 0.05  # the rays meet density, so the features matter
    assert torch.allclose(fast.values, slow_values, atol=1e-5)
    assert torch.allclose(fast.depth, slow.depth) and torch.allclose(fast.opacity, slow.opacity)
    for a, b in zip(grads_fast, grads_slow):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)
