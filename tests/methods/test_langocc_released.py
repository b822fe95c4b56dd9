"""langocc's options for the released code's readings: LiDAR-pixel rays (box, 1-40 m), pooled
keyframes with their own LiDAR, the sigmoid density in 1/m, the replacing sampler with a fixed
far end, separate density and language heads. Values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from occkit.data.sample import Sample, collate
from occkit.geometry.grid import Grid
from occkit.geometry.transforms import make_transform
from occkit.methods.langocc import LangOccConfig, LangOccMethod, lidar_pixels
from occkit.models.occnet import OccNetConfig
from occkit.rendering.rays import Rays

D = 16
RANGE = (-3.2, -3.2, -1.0, 3.2, 3.2, 1.4)
# camera (OpenCV) -> ego: looking along the ego x axis
R_FWD = torch.tensor([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def tiny_method(**kw) -> LangOccMethod:
    model = OccNetConfig(
        backbone="resnet18",
        neck_channels=16,
        feature_stride=16,
        depth_min=0.5,
        depth_max=8.5,
        depth_step=0.5,
        context_channels=8,
        point_range=RANGE,
        voxel_size=0.4,
        lift_downsample=(2, 2, 2),
        encoder_widths=(8, 16),
        encoder_blocks=1,
    )
    opts = dict(feature_dim=D, mlp_width=32, num_rays=64, num_proposal=16, num_importance=16)
    m = LangOccMethod(model, LangOccConfig(free=17, **{**opts, **kw}))
    m.class_text.copy_(
        torch.nn.functional.normalize(torch.randn(17, D, generator=torch.Generator().manual_seed(1)), dim=-1)
    )
    m.class_text_ready.fill_(True)  # no text encoder in tests
    return m


# ----------------------------------------------------------------------------------- rays
def test_lidar_pixels_box_and_depth_filters():
    """Camera at (-1, 0, 0) looking along x, f = 10, principal point (8, 6), 16 x 12 pixels;
    box [-40, 40] x [-40, 40] x [-1, 5.4]."""
    grid = Grid.from_range((-40.0, -40.0, -1.0, 40.0, 40.0, 5.4), 0.4)
    K = torch.tensor([[[10.0, 0, 8], [0, 10.0, 6], [0, 0, 1]]])
    T = make_transform(R_FWD, torch.tensor([-1.0, 0.0, 0.0]))[None]
    pts = torch.tensor(
        [
            [5.0, 0, 0],  # A: z = 6, in the box                      -> pixel (row 6, col 8)
            [-0.5, 0, 0],  # B: z = 0.5 (too near for 1-40 m)           -> (6, 8)
            [29.0, 0, 6],  # C: z = 30, above the box (z > 5.4)         -> row 6 - 10 * 6 / 30 = 4
            [38.0, 0, 0],  # E: z = 39, in the box                      -> (6, 8)
            [39.5, 0, 0],  # F: z = 40.5 (beyond 40 m), in the box      -> (6, 8)
            [45.0, 0, 0],  # G: z = 46, outside the box                 -> (6, 8)
        ]
    )
    lidar = torch.cat([pts, torch.ones(6, 1)], 1)

    def rows(**kw):
        return lidar_pixels(lidar, K, T, 12, 16, **kw)[:, 1].tolist()

    assert lidar_pixels(lidar, K, T, 12, 16)[0].tolist() == [0, 6, 8]
    assert rows() == [6, 6, 4, 6, 6, 6]  # occkit's own: z > 0.1, anywhere
    assert len(rows(box=grid)) == 4  # A B E F
    assert rows(depth_range=(1.0, 40.0)) == [6, 4, 6]  # A C E
    assert len(rows(box=grid, depth_range=(1.0, 40.0))) == 2  # A E: the released rays
    # a neighbour keyframe's own points: box-tested in *its* ego frame (10 m ahead), then mapped
    E = make_transform(torch.eye(3), torch.tensor([10.0, 0.0, 0.0]))  # neighbour ego -> current ego
    T_nbr = E @ T[0]  # its camera, in the current frame: at (9, 0, 0)
    own = torch.tensor([[35.0, 0.0, 0.0, 1.0], [45.0, 0.0, 0.0, 1.0]])  # in its frame: inside / outside its box
    got = lidar_pixels(own, K, T_nbr[None], 12, 16, box=grid, depth_range=(1.0, 40.0), T_ego_from_points=E)
    assert got.tolist() == [[0, 6, 8]]  # (35, 0, 0): at (45, 0, 0) here, 36 m from the camera
    here = own.clone()
    here[:, 0] += 10
    assert lidar_pixels(here, K, T_nbr[None], 12, 16, box=grid).shape[0] == 0  # the current box would drop both


def pooled_batch():
    """Frame with one forward camera at (0, 0, 0.4) (f = 24, 64 x 32) and 5 LiDAR points; one
    neighbour keyframe 1 m ahead with the same camera and 3 points of its own (its own frame)."""
    H, W = 32, 64
    K = torch.tensor([[[24.0, 0, 32], [0, 24.0, 16], [0, 0, 1]]])
    T = make_transform(R_FWD, torch.tensor([0.0, 0.0, 0.4]))[None]
    E = make_transform(torch.eye(3), torch.tensor([1.0, 0.0, 0.0]))  # neighbour ego -> current ego
    cur = torch.tensor(
        [
            [2.0, 0.0, 0.4],  # (row 16, col 32)
            [2.0, 0.5, 0.4],  # col 32 - 24 * 0.5 / 2 = 26
            [3.0, 0.0, 0.0],  # row 16 + 24 * 0.4 / 3 = 19.2 -> 19
            [5.0, 0.0, 0.4],  # outside the box (x > 3.2)
            [0.5, 0.0, 0.4],  # 0.5 m: too near
        ]
    )
    own = torch.tensor(
        [
            [2.0, 0.0, 0.4],  # its (16, 32); at x = 3 here
            [
                2.8,
                0.7,
                0.4,
            ],  # its col 32 - 24 * 0.7 / 2.8 = 26; at x = 3.8 here: outside this frame's box, inside its own
            [4.0, 0.0, 0.4],  # outside its own box
        ]
    )
    feats = torch.nn.functional.normalize(torch.randn(1, D, 8, 16, generator=torch.Generator().manual_seed(0)), dim=1)
    s = Sample(
        token="t0",
        scene="s0",
        timestamp=0,
        cam_names=("CAM_FRONT",),
        images=torch.rand(1, 3, H, W),
        intrinsics=K,
        T_ego_from_cam=T,
        T_global_from_ego=torch.eye(4, dtype=torch.float64),
        lidar=torch.cat([cur, torch.ones(5, 1)], 1),
        prior_features=feats,
        prior_feature_stride=4,
    )
    s.temporal_features = feats[None].half()
    s.temporal_intrinsics, s.temporal_T_ego_from_cam = K[None], (E @ T)[None]
    s.temporal_offsets, s.temporal_image_hw = torch.tensor([1]), (H, W)
    s.temporal_T_ego_from_ego = E[None]
    s.temporal_lidar = [torch.cat([own, torch.ones(3, 1)], 1)]
    return collate([s])


def released_rays(**kw):
    return dict(
        ray_pixels="lidar",
        ray_lidar="own",
        ray_box=True,
        ray_depth=(1.0, 40.0),
        temporal_offsets=(1,),
        temporal_rays_fraction="pooled",
        **kw,
    )


def test_pooled_keyframes_with_their_own_lidar():
    batch = pooled_batch()
    m = tiny_method(**released_rays(num_rays=5))
    cur, tmp = m.lidar_pools(batch, 0)
    assert sorted(cur.tolist()) == [[0, 16, 26], [0, 16, 32], [0, 19, 32]]
    assert sorted(tmp.tolist()) == [[0, 16, 26], [0, 16, 32]]
    # num_rays = the pool's size: every pixel once (drawn without replacement), 3 current + 2 neighbour rays
    torch.manual_seed(0)
    parts = m.frame_rays(batch, 0)
    rays, target = parts["temporal"]
    assert len(parts["current"][0]) == 3 and len(rays) == 2
    assert sorted(torch.stack([rays.cam, rays.row, rays.col], 1).tolist()) == [[0, 16, 26], [0, 16, 32]]
    assert torch.allclose(
        rays.origins, torch.tensor([[1.0, 0.0, 0.4]]).expand(2, 3)
    )  # the neighbour's camera, in this frame
    assert target.shape == (2, D)
    # fewer rays than the pool: distinct pixels
    m4 = tiny_method(**released_rays(num_rays=4))
    parts = m4.frame_rays(batch, 0)
    got = [
        tuple(r)
        for p in ("current", "temporal")
        if p in parts
        for r in (
            torch.stack([parts[p][0].cam, parts[p][0].row, parts[p][0].col], 1) + (0 if p == "current" else 100)
        ).tolist()
    ]
    assert len(got) == 4 and len(set(got)) == 4
    # occkit's own reading of the neighbours: the current frame's points in the neighbour camera,
    # (2, 0, 0.4) at 1 m and (3, 0, 0) at 2 m (row 16 + 24 * 0.4 / 2 = 20.8); (2, .5, .4) leaves the image
    mc = tiny_method(**{**released_rays(num_rays=5), "ray_lidar": "current"})
    _, tmp = mc.lidar_pools(batch, 0)
    assert sorted(tmp.tolist()) == [[0, 20, 32]]  # (2, 0, 0.4) is 1 m away: not beyond 1 m
    loss = m.training_step(batch)["loss_feat"]
    assert torch.isfinite(loss)
    loss.backward()


def test_pooled_needs_lidar_rays_and_own_needs_the_neighbours_lidar():
    with pytest.raises(ValueError, match="pooled"):
        tiny_method(temporal_offsets=(1,), temporal_rays_fraction="pooled")
    with pytest.raises(ValueError, match="ray_depth"):
        tiny_method(ray_depth=(40.0, 1.0))
    batch = pooled_batch()
    batch.temporal_lidar = None
    with pytest.raises(ValueError, match="temporal_lidar"):
        tiny_method(**released_rays()).training_step(batch)


# ----------------------------------------------------------------------------------- density
def test_sigmoid_density_in_per_metre():
    m = tiny_method(density="sigmoid", density_init=0.5, num_importance=0)
    assert float(torch.sigmoid(m.density_bias.detach())) == pytest.approx(0.5)  # the released start: 0.5 / m
    X, Y, Z = m.grid.shape
    x = torch.tensor([-3.0, 0.0, math.log(0.1 / 0.9), 5.0])
    logits = x.view(1, 4, 1, 1).expand(1, 4, Y, Z).repeat(1, 4, 1, 1)[:, :X]  # (1, X, Y, Z), 4 values along x
    sigma = m.density(logits)
    assert torch.allclose(sigma[:4, 0, 0], torch.sigmoid(x)) and float(sigma.max()) < 1.0  # at most 1 / m
    assert float(sigma[2, 0, 0]) == pytest.approx(0.1)  # free below 0.1 / m: alpha over a 0.4 m voxel 1 - exp(-0.04)
    assert 1 - math.exp(-float(sigma[2, 0, 0]) * 0.4) == pytest.approx(0.0392, abs=1e-4)
    # one ray through a constant sigma = sigmoid(0) = 0.5 / m from t = 0.05 to the box at t = 4.2:
    # alpha_i = 1 - exp(-0.5 delta_i), opacity = 1 - prod exp(-0.5 delta_i) = 1 - exp(-0.5 * 4.15)
    const = torch.zeros(1, X, Y, Z)
    rays = Rays(
        torch.tensor([[-1.0, 0.2, 0.4]]),
        torch.tensor([[1.0, 0.0, 0.0]]),
        *(torch.zeros(1, dtype=torch.long),) * 3,
        torch.ones(1),
    )
    latent = torch.zeros(m.latent_dim, *m.latent_grid.shape)
    out = m.render(const, latent, rays)
    assert float(out.opacity[0]) == pytest.approx(1 - math.exp(-0.5 * 4.15), abs=1e-5)
    samples = m.samples(m.density(const), rays)
    w = 1 - torch.exp(-0.5 * samples.deltas[0])  # alpha of each interval
    T = torch.cumprod(torch.cat([torch.ones(1), 1 - w[:-1]]), 0)
    assert float((T * w).sum()) == pytest.approx(float(out.opacity[0]), abs=1e-6)
    # predict: occupied where sigma reaches occupied_threshold (0.1 / m)
    assert torch.equal(
        m.p_occupied(logits[None])[0, :4, 0, 0] >= m.threshold(), torch.tensor([False, True, True, True])
    )


def test_softplus_density_keeps_its_meaning():
    m = tiny_method()
    l = torch.full((1, *m.grid.shape), 0.3)
    assert torch.allclose(m.density(l), torch.nn.functional.softplus(l[0]) / 0.4)


# ----------------------------------------------------------------------------------- sampler
def test_replacing_sampler_with_a_fixed_far_end():
    rays = Rays(
        torch.tensor([[-1.0, 0.2, 0.4]]),
        torch.tensor([[1.0, 0.0, 0.0]]),
        *(torch.zeros(1, dtype=torch.long),) * 3,
        torch.ones(1),
    )
    m = tiny_method(density="sigmoid", sampler="replace", far=40.0, num_proposal=50, num_importance=100)
    X, Y, Z = m.grid.shape
    sigma = m.density(torch.zeros(1, X, Y, Z))  # 0.5 / m inside the box, zero outside (leaves it at t = 4.2)
    s = m.samples(sigma, rays)
    assert s.t.shape == (1, 100)  # the 50 proposal samples are replaced
    assert float(s.t_starts.min()) >= 0.05 and float(s.t_ends.max()) <= 40.0
    # the proposal (no jitter): 50 intervals of 39.95 / 50 = 0.799 m from 0.05, read at their
    # midpoints; the first 5 (midpoints 0.45 .. 3.65 m) are inside the box (it ends at 4.2 m), the
    # 6th (4.44 m) is not: the proposal stops before 4.045 m with probability 1 - exp(-0.5 * 5 * 0.799)
    # = 0.8643, and the rest, 0.1357, the transmittance left at 40 m, goes to the last interval
    # [39.201, 40]. u_k = (k + 0.5) / 100 < 0.8643 for k = 0 .. 85: 86 samples before 4.045 m, 14 in the last interval
    edge = 0.05 + 5 * 0.799
    assert int((s.t < edge).sum()) == 86 and float(s.t[0, 85]) < edge
    assert int((s.t > 40.0 - 0.799).sum()) == 14
    # inside [0.05, 4.045] the proposal's cdf is 1 - exp(-0.5 (t - 0.05)): t_k = 0.05 - 2 ln(1 - u_k) at the
    # proposal edges, linear between them
    u = (torch.arange(86.0) + 0.5) / 100
    edges = 0.05 + 0.799 * torch.arange(6.0)
    cdf = 1 - torch.exp(-0.5 * (edges - 0.05))
    i = torch.searchsorted(cdf, u, right=True)
    want = edges[i - 1] + (u - cdf[i - 1]) / (cdf[i] - cdf[i - 1]) * 0.799
    assert torch.allclose(s.t[0, :86], want, atol=1e-4)
    m_merged = tiny_method(density="sigmoid", num_proposal=50, num_importance=100)
    assert m_merged.samples(sigma, rays).t.shape == (1, 150)  # occkit's own: merged


# ----------------------------------------------------------------------------------- heads
def test_separate_heads_shapes_and_training():
    torch.manual_seed(0)
    m = tiny_method(
        heads="separate", voxel_feature_dim=24, mlp_width=20, mlp_layers=3, density="sigmoid", density_init=0.5
    )
    K = m.latent_dim
    assert m.heads.conv[0].weight.shape == (24, K, 3, 3, 3)
    lin = [mod for mod in m.heads.density if isinstance(mod, torch.nn.Linear)]
    assert [tuple(mod.weight.shape) for mod in lin] == [(20, 24), (20, 20), (20, 20), (1, 20)]
    lin = [mod for mod in m.heads.language.net if isinstance(mod, torch.nn.Linear)]
    assert [tuple(mod.weight.shape) for mod in lin] == [(20, 24), (20, 20), (20, 20), (D, 20)]
    batch = pooled_batch()
    out = m.forward(batch)
    X, Y, Z = m.grid.shape
    assert out.logits.shape == (1, 1, X, Y, Z) and out.features.shape == (
        1,
        D,
        X,
        Y,
        Z,
    )  # both on the 0.4 m output grid
    assert torch.allclose(out.features.norm(dim=1), torch.ones(1, X, Y, Z), atol=1e-5)
    mask = torch.zeros(X, Y, Z, dtype=torch.bool)
    mask[3, 4, 5] = True
    assert torch.allclose(m.voxel_features(out.features[0], mask)[0], out.features[0, :, 3, 4, 5])
    loss = m.training_step(batch)["loss_feat"]
    loss.backward()
    assert m.heads.density[-1].weight.grad is not None and float(m.heads.density[-1].weight.grad.abs().sum()) > 0
    assert all(p.grad is None for p in m.model.head.parameters())  # the network's own head is unused (identity)
    scores = m.predict(batch)
    assert scores.shape == (1, 18, X, Y, Z)


def test_feature_field_of_latent_heads_is_the_language_mlp_of_the_latent_lookup():
    """`occkit retrieval --ckpt` reads features through `feature_field` (both head kinds): for
    `heads: latent` it must equal the former path, the language MLP of the latent read trilinearly."""
    m = tiny_method().eval()
    g = torch.Generator().manual_seed(3)
    latent = torch.randn(m.latent_dim, *m.latent_grid.shape, generator=g)
    pts = (torch.rand(50, 3, generator=g) - 0.5) * 6.0
    with torch.no_grad():
        want = m.language(m.latent_field(latent)(pts))
        got = m.feature_field(latent)(pts)
    assert got.shape == (50, D)
    torch.testing.assert_close(got, want)
