"""radocc: the frozen teacher stays frozen and out of the checkpoint, the distillation terms fall,
and a radocc run loads like any other (predict = the student)."""

from __future__ import annotations

import functools
import math

import pytest
import torch
import torch.nn.functional as F
from two_cameras import RANGE, cameras, scene

from occkit.config import ConfigError, from_dict, to_dict
from occkit.data.sample import Batch, Sample, collate
from occkit.engine.checkpoint import save_checkpoint
from occkit.engine.optim import build_optimizer
from occkit.experiment import ExperimentConfig, build_method, load_checkpoint_method
from occkit.geometry.transforms import make_transform
from occkit.labels import OCC3D_FREE
from occkit.methods.radocc import RadOccConfig, RadOccMethod, lidar_pixel_mask
from occkit.methods.supervised import SupervisedConfig, SupervisedMethod
from occkit.models.occnet import OccNetConfig
from occkit.rendering.views import render_occupancy_views


def model_cfg(modality: str = "camera") -> OccNetConfig:
    return OccNetConfig(
        backbone="resnet18",
        neck_channels=16,
        feature_stride=16,
        depth_min=0.5,
        depth_max=8.5,
        depth_step=1.0,
        context_channels=8,
        point_range=RANGE,
        voxel_size=0.4,
        lift_downsample=(2, 2, 2),
        encoder_widths=(8, 16),
        modality=modality,
        lidar_channels=8,
    )


def student_sup() -> SupervisedConfig:
    return SupervisedConfig(free=17, depth_weight=0.5, depth_source="depth_map", lovasz=False)


def teacher_sup() -> SupervisedConfig:
    return SupervisedConfig(free=17, depth_weight=0.0, lovasz=False)


def tiny_batch() -> Batch:
    """One frame, two cameras of a ground plane and two boxes; LiDAR points = the depth maps
    unprojected; segments = the 2D classes per camera."""
    occ, grid = scene()
    H, W = 32, 64
    K, T = cameras(H, W)
    maps = render_occupancy_views(occ, grid, K, T, H, W, free=OCC3D_FREE)
    pts = []
    v, u = torch.meshgrid(torch.arange(0, H, 2) + 0.5, torch.arange(0, W, 2) + 0.5, indexing="ij")
    for n in range(2):
        z = maps.depth[n, ::2, ::2]
        keep = z > 0
        cam = torch.stack([(u - K[n, 0, 2]) / K[n, 0, 0] * z, (v - K[n, 1, 2]) / K[n, 1, 1] * z, z], -1)[keep]  # (P, 3)
        pts.append(cam @ T[n, :3, :3].T + T[n, :3, 3])
    lidar = torch.cat(pts)
    lidar = torch.cat([lidar, torch.full((lidar.shape[0], 1), 0.5)], 1)
    g = torch.Generator().manual_seed(0)
    sample = Sample(
        token="t0",
        scene="s0",
        timestamp=0,
        cam_names=("CAM_FRONT", "CAM_BACK"),
        images=torch.rand(2, 3, H, W, generator=g),
        intrinsics=K,
        T_ego_from_cam=T,
        T_global_from_ego=torch.eye(4, dtype=torch.float64),
        occupancy=occ,
        mask_camera=torch.ones(grid.shape, dtype=torch.bool),
        lidar=lidar,
        depth=maps.depth,
        semantics_2d=maps.semantics,
        prior_segments=maps.semantics + 1,
    )
    return collate([sample])


def make_teacher(steps: int = 0) -> SupervisedMethod:
    """A LiDAR teacher, trained ``steps`` Adam steps on the tiny batch (weights cached per count)."""
    torch.manual_seed(1)
    teacher = SupervisedMethod(model_cfg("lidar"), teacher_sup())
    teacher.load_state_dict(_trained_teacher_state(steps))
    return teacher


@functools.lru_cache(maxsize=4)
def _trained_teacher_state(steps: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    teacher = SupervisedMethod(model_cfg("lidar"), teacher_sup())
    if steps:
        opt = torch.optim.Adam(teacher.parameters(), lr=1e-2)
        batch = tiny_batch()
        for _ in range(steps):
            opt.zero_grad()
            sum(teacher.training_step(batch).values()).backward()
            opt.step()
    return {k: v.detach().clone() for k, v in teacher.state_dict().items()}


def radocc_cfg(**kw) -> RadOccConfig:
    base = dict(
        num_rays=256, sample_step=0.2, depth_weight=100.0, semantic_weight=10.0, feature_weight=0.1, logit_weight=0.1
    )
    base.update(kw)
    return RadOccConfig(free=17, **base)


def test_teacher_frozen_and_outside_the_state(one_torch_thread):
    teacher = make_teacher()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    torch.manual_seed(0)
    method = RadOccMethod(model_cfg(), student_sup(), radocc_cfg(), teacher=teacher)
    assert not any(k.startswith("teacher") for k in method.state_dict())
    ids = {id(p) for p in method.parameters()}
    assert not any(id(p) in ids for p in teacher.parameters())
    assert all(not p.requires_grad for p in teacher.parameters())
    opt = build_optimizer(method, 1e-2, 0.01, (0.9, 0.999))
    method.train()
    assert not teacher.training
    batch = tiny_batch()
    student_before = {k: v.clone() for k, v in method.model.state_dict().items()}
    losses = method.training_step(batch)
    assert {"loss_rdc", "loss_rsc", "loss_feat", "loss_logit", "loss_ce", "loss_depth"} <= set(losses)
    sum(losses.values()).backward()
    opt.step()
    for k, v in teacher.state_dict().items():  # weights and BatchNorm statistics unchanged
        assert torch.equal(v, before[k]), k
    assert any(not torch.equal(v, student_before[k]) for k, v in method.model.state_dict().items())
    import copy

    assert copy.deepcopy(method).teacher is teacher  # the engine's EMA copy shares the teacher


@pytest.mark.parametrize(
    "term,weight",
    [
        ("loss_rdc", "depth_weight"),
        ("loss_rsc", "semantic_weight"),
        ("loss_feat", "feature_weight"),
        ("loss_logit", "logit_weight"),
    ],
)
def test_distillation_losses_fall(term, weight, one_torch_thread):
    """A few steps along each term's gradient (normalised steps, the student's own losses off,
    BatchNorm on running statistics so the loss is one function of the weights) lower it."""
    teacher = make_teacher(steps=40)
    torch.manual_seed(0)
    weights = dict(depth_weight=0.0, semantic_weight=0.0, feature_weight=0.0, logit_weight=0.0)
    weights[weight] = 1.0
    method = RadOccMethod(
        model_cfg(),
        SupervisedConfig(free=17, ce_weight=0.0, depth_weight=0.0, lovasz=False),
        radocc_cfg(jitter=False, **weights),
        teacher=teacher,
    ).eval()
    batch = tiny_batch()
    history = []
    for _ in range(4):
        torch.manual_seed(0)  # the same rays every step
        loss = method.training_step(batch)[term]
        history.append(float(loss.detach()))
        method.zero_grad()
        loss.backward()
        params = [p for p in method.parameters() if p.grad is not None]
        norm = torch.sqrt(sum((p.grad**2).sum() for p in params))
        with torch.no_grad():
            for p in params:
                p -= 0.05 * p.grad / norm
    assert all(b < a for a, b in zip(history, history[1:])), history


def test_rsc_kl_variant_and_all_pixel_rays(one_torch_thread):
    method = RadOccMethod(
        model_cfg(),
        student_sup(),
        radocc_cfg(semantic_mode="kl", rays="all", feature_weight=0.0),
        teacher=make_teacher(),
    )
    losses = method.training_step(tiny_batch())
    assert "loss_rsc" in losses and "loss_feat" not in losses and torch.isfinite(losses["loss_rsc"])
    alone = RadOccMethod(
        model_cfg(),
        student_sup(),
        radocc_cfg(depth_weight=0, semantic_weight=0, feature_weight=0, logit_weight=0),
        teacher=make_teacher(),
    )
    assert set(alone.training_step(tiny_batch())) == {"loss_ce", "loss_depth"}  # the student alone
    no_teacher = RadOccMethod(
        model_cfg(), student_sup(), radocc_cfg(depth_weight=0, semantic_weight=0, feature_weight=0, logit_weight=0)
    )
    assert set(no_teacher.training_step(tiny_batch())) == {"loss_ce", "loss_depth"}  # needs no teacher


def test_lidar_rays_hit_lidar_pixels():
    batch = tiny_batch()
    hits = lidar_pixel_mask(batch.lidar[0][:, :3], batch.intrinsics[0], batch.T_ego_from_cam[0], 32, 64)
    assert hits.shape == (2, 32, 64)
    assert hits[:, ::2, ::2].float().mean() > 0.5 * (batch.depth[0, :, ::2, ::2] > 0).float().mean()
    method = RadOccMethod(model_cfg(), student_sup(), radocc_cfg(), teacher=make_teacher())
    rays = method.ray_pixels(batch, 0, 500)
    assert bool(hits[rays.cam, rays.row, rays.col].all())


def test_hard_teacher_density_terminates_at_its_argmax_surface(one_torch_thread):
    """With teacher_density='hard', a ray of logits whose argmax is free everywhere but one voxel,
    and p(free) only 0.6 everywhere (a fog when soft), puts its termination weight in that voxel."""
    method = RadOccMethod(
        model_cfg(), student_sup(), radocc_cfg(jitter=False, lookup="nearest"), teacher=make_teacher()
    )
    grid = method.model.output_grid  # (16, 16, 6), 0.4 m, x from -3.2
    logits = torch.zeros(18, *grid.shape)
    logits[17] = math.log(0.6 / 0.4 * 17)  # p(free) = 0.6 everywhere: argmax free
    logits[4, 12, 8, 2] = 10.0  # one car voxel: x in [1.6, 2.0)
    from occkit.rendering.rays import Rays

    z = (2 + 0.5) * 0.4 - 1.0  # the voxel's centre height
    rays = Rays(
        origins=torch.tensor([[-3.0, 0.2, z]]),
        dirs=torch.tensor([[1.0, 0.0, 0.0]]),
        z_per_t=torch.ones(1),
        cam=torch.zeros(1, dtype=torch.long),
        row=torch.zeros(1, dtype=torch.long),
        col=torch.zeros(1, dtype=torch.long),
    )
    hard = method.render(logits, rays, None, values=False, hard=True)
    soft = method.render(logits, rays, None, values=False, hard=False)
    # soft: -log 0.6 / 0.4 m per metre -> transmittance halves within ~0.55 m of the entry at x = -3.2
    assert float(soft.median_depth[0]) < 1.0
    # hard: all the weight where the car voxel is (x 1.6..2.0, i.e. t 4.6..5.0 from x = -3.0)
    assert 4.6 <= float(hard.median_depth[0]) <= 5.0
    assert float(hard.weights.sum()) == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(
        ConfigError, match="teacher_density: 'sharp' is not one of"
    ):  # checked once, when the config loads
        from_dict(RadOccConfig, {"teacher_density": "sharp"})


@pytest.mark.parametrize("mode", ["raw_kl", "affinity", "kl"])
def test_semantic_term_without_density_gradient(mode, one_torch_thread):
    """semantic_density_grad=False: the same loss values, but loss_rsc's gradient no longer reaches
    the free logit (the density's only own input) while it still reaches the class logits; loss_rdc
    keeps its gradient through the density."""
    method = RadOccMethod(
        model_cfg(), student_sup(), radocc_cfg(semantic_mode=mode, rays="all"), teacher=make_teacher(steps=40)
    )
    batch = tiny_batch()
    t_logits = method.teacher_outputs(batch).logits
    torch.manual_seed(1)
    s_logits = torch.randn_like(t_logits)
    grads, values = {}, {}
    for flag in (True, False):
        method.radocc.semantic_density_grad = flag
        for term in ("loss_rsc", "loss_rdc"):
            x = s_logits.clone().requires_grad_(True)
            torch.manual_seed(0)  # the same rays and jitter
            loss = method.rendered_losses(batch, x, t_logits)[term]
            loss.backward()
            grads[flag, term], values[flag, term] = x.grad, loss.item()
    free = method.radocc.free
    for term in ("loss_rsc", "loss_rdc"):
        assert values[True, term] == pytest.approx(values[False, term], rel=1e-5)
    assert float(grads[True, "loss_rsc"][:, free].abs().sum()) > 0
    assert float(grads[False, "loss_rsc"][:, free].abs().sum()) == 0
    assert float(grads[False, "loss_rsc"].abs().sum()) > 0
    assert torch.allclose(grads[True, "loss_rdc"], grads[False, "loss_rdc"])


def test_config_errors():
    with pytest.raises(ValueError, match="radocc.teacher"):
        RadOccMethod(model_cfg(), student_sup(), RadOccConfig(free=17))
    with pytest.raises(ConfigError, match="semantic_mode: 'mse' is not one of"):  # checked once, when the config loads
        from_dict(RadOccConfig, {"semantic_mode": "mse"})
    with pytest.raises(FileNotFoundError, match="radocc.teacher"):  # the composition root loads the teacher
        build_method(
            ExperimentConfig(
                method="radocc",
                model=model_cfg(),
                supervised=student_sup(),
                radocc=radocc_cfg(teacher="/nonexistent/run"),
            )
        )
    with pytest.raises(ValueError, match="radocc.teacher: /nonexistent/run is not loaded"):  # a recipe never loads runs
        RadOccMethod(model_cfg(), student_sup(), radocc_cfg(teacher="/nonexistent/run"))
    batch = tiny_batch()
    batch.prior_segments = None
    method = RadOccMethod(model_cfg(), student_sup(), radocc_cfg(semantic_mode="affinity"), teacher=make_teacher())
    with pytest.raises(ValueError, match="data.priors"):
        method.training_step(batch)
    with pytest.raises(ValueError, match="radocc.jitter"):
        RadOccMethod(model_cfg(), student_sup(), radocc_cfg(sampling="camera"), teacher=make_teacher())
    with pytest.raises(ValueError, match="radocc.num_rays"):
        RadOccMethod(model_cfg(), student_sup(), radocc_cfg(num_rays=-1), teacher=make_teacher())
    with pytest.raises(ValueError, match="radocc.lidar_depth_range"):
        RadOccMethod(model_cfg(), student_sup(), radocc_cfg(lidar_depth_range=(45.0, 1.0)), teacher=make_teacher())
    for name, bad in (
        ("density", "sigmoid"),
        ("depth_reduction", "max"),
        ("logit_reduction", "max"),
        ("feature_reduction", "sum"),
        ("sampling", "uniform"),
    ):
        with pytest.raises(ConfigError, match=f"{name}: '{bad}' is not one of"):  # checked once, when the config loads
            from_dict(RadOccConfig, {name: bad})


def test_teacher_from_a_run_and_radocc_run_predicts_the_student(tmp_path, one_torch_thread):
    t_cfg = ExperimentConfig(method="supervised", model=model_cfg("lidar"), supervised=teacher_sup())
    teacher = build_method(t_cfg)
    save_checkpoint(tmp_path / "teacher", 1, teacher, to_dict(t_cfg), {})
    cfg = ExperimentConfig(
        method="radocc",
        model=model_cfg(),
        supervised=student_sup(),
        radocc=radocc_cfg(teacher=str(tmp_path / "teacher")),
    )
    method = build_method(cfg)
    for k, v in teacher.state_dict().items():
        assert torch.equal(method.teacher.state_dict()[k], v)
    ckpt = save_checkpoint(tmp_path / "student", 1, method, to_dict(cfg), {})
    loaded, cfg2, _, _ = load_checkpoint_method(ckpt, device="cpu")
    assert cfg2.method == "radocc"
    batch = tiny_batch()
    method.eval()
    assert torch.allclose(loaded.predict(batch), method.predict(batch))


# ------------------------------------------------------------------ the released code's readings (issue 31)
RELEASED = dict(
    sampling="camera",
    jitter=False,
    num_samples=60,
    sample_step=0.2,
    num_rays=0,
    lidar_depth_range=(1.0, 45.0),
    density="free_logit",
    alpha_scale=0.2,
    depth_reduction="mean",
    depth_tau=10.0,
    semantic_mode="raw_kl",
    logit_reduction="mean",
    logit_tau=10.0,
    feature_reduction="sum_channels",
    checkpoint=True,
    chunk=300,
)


def one_ray(origin_x: float, z_per_t: float = 1.0):
    """A ray along +x at y = 0.2, z = 0 (voxel centres of the tiny grid), whose camera z is x."""
    from occkit.rendering.rays import Rays

    zero = torch.zeros(1, dtype=torch.long)
    return Rays(
        origins=torch.tensor([[origin_x, 0.2, 0.0]]),
        dirs=torch.tensor([[1.0, 0.0, 0.0]]),
        z_per_t=torch.tensor([z_per_t]),
        cam=zero,
        row=zero,
        col=zero,
    )


def test_lidar_pixel_mask_depth_range_by_hand():
    """A camera at the origin looking along ego x (f 10, centre (8, 4)); five points at camera
    depths 0.5, 1, 20, 44.99, 45 m land in columns 8..12 of row 4: [1, 45) keeps 9, 10, 11."""
    K = torch.tensor([[[10.0, 0, 8], [0, 10.0, 4], [0, 0, 1]]])
    R = torch.tensor([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]])  # camera (x right, y down, z forward) -> ego
    T = make_transform(R, torch.zeros(3))[None]
    xs = torch.tensor([0.5, 1.0, 20.0, 44.99, 45.0])
    pts = torch.stack([xs, -xs * (0.5 + torch.arange(5.0)) / 10, -0.05 * xs], -1)  # u = 8.5 + k, v = 4.5
    default = lidar_pixel_mask(pts, K, T, 8, 16)
    assert default[0].nonzero().tolist() == [[4, 8], [4, 9], [4, 10], [4, 11], [4, 12]]
    released = lidar_pixel_mask(pts, K, T, 8, 16, depth_range=(1.0, 45.0))
    assert released[0].nonzero().tolist() == [[4, 9], [4, 10], [4, 11]]


def test_every_lidar_pixel_once_with_num_rays_0():
    batch = tiny_batch()
    method = RadOccMethod(model_cfg(), student_sup(), radocc_cfg(**RELEASED), teacher=make_teacher())
    hits = lidar_pixel_mask(
        batch.lidar[0][:, :3], batch.intrinsics[0], batch.T_ego_from_cam[0], 32, 64, depth_range=(1.0, 45.0)
    )
    rays = method.ray_pixels(batch, 0, 0)
    assert len(rays) == int(hits.sum()) > 100
    assert torch.equal(torch.stack([rays.cam, rays.row, rays.col], -1), hits.nonzero())  # each pixel once, in order
    near = lidar_pixel_mask(batch.lidar[0][:, :3], batch.intrinsics[0], batch.T_ego_from_cam[0], 32, 64)
    assert int(near.sum()) > int(hits.sum())  # the tiny world has LiDAR points nearer than 1 m
    all_pixels = RadOccMethod(
        model_cfg(), student_sup(), radocc_cfg(**{**RELEASED, "rays": "all"}), teacher=make_teacher()
    )
    assert len(all_pixels.ray_pixels(batch, 0, 0)) == 2 * 32 * 64


def test_camera_sampling_free_logit_by_hand():
    """sampling camera, density free_logit: from x = -3.7 the samples x = -3.7 + 0.2 k enter the
    box [-3.2, 3.2] at k = 3 and leave after k = 34; a constant free logit l gives
    alpha = 1 - exp(-softplus(-l) 0.2), w_k = a (1 - a)^(k - 3) inside, 0 outside, and the
    rendered raw logits are l_c * opacity."""
    method = RadOccMethod(
        model_cfg(), student_sup(), radocc_cfg(**{**RELEASED, "num_samples": 40}), teacher=make_teacher()
    )
    grid = method.model.output_grid
    logits = (torch.arange(18.0) * 0.1).view(18, 1, 1, 1).expand(18, *grid.shape).clone()
    l_free = 0.3
    logits[17] = l_free
    out = method.render(logits, one_ray(-3.7), None, values=True)
    a = 1 - math.exp(-math.log1p(math.exp(-l_free)) * 0.2)
    k = torch.arange(40)
    expected = torch.where(
        (k >= 3) & (k <= 34), a * (1 - a) ** (k - 3).clamp(min=0).double(), torch.zeros(40, dtype=torch.float64)
    )
    assert torch.allclose(out.weights[0].double(), expected, rtol=1e-4, atol=1e-7)
    assert torch.allclose(out.values[0], torch.arange(17.0) * 0.1 * out.opacity[0], atol=1e-5)
    # occkit's density on the same samples: sigma = -log p(free) / 0.4 over 0.2 / z_per_t metres a sample;
    # with z_per_t = 0.5 the samples are 0.4 m apart (x = -3.7 + 0.4 k, inside for k = 2..17) and alpha = p(occupied)
    method.radocc.density = "prob_free"
    p_free = float(torch.softmax(logits[:, 0, 0, 0], 0)[17])
    out = method.render(logits, one_ray(-3.7, z_per_t=0.5), None, values=False)
    inside = (k >= 2) & (k <= 17)
    expected = torch.where(
        inside, (1 - p_free) * p_free ** (k - 2).clamp(min=0).double(), torch.zeros(40, dtype=torch.float64)
    )
    assert torch.allclose(out.weights[0].double(), expected, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("density", ["free_logit", "prob_free"])
def test_depth_term_moves_only_the_free_logit_with_the_released_density(density, one_torch_thread):
    method = RadOccMethod(
        model_cfg(), student_sup(), radocc_cfg(**{**RELEASED, "density": density}), teacher=make_teacher(steps=40)
    )
    batch = tiny_batch()
    t_logits = method.teacher_outputs(batch).logits
    torch.manual_seed(1)
    x = torch.randn_like(t_logits).requires_grad_(True)
    method.radocc.semantic_weight = 0.0
    method.rendered_losses(batch, x, t_logits)["loss_rdc"].backward()
    free = method.radocc.free
    assert float(x.grad[:, free].abs().sum()) > 0
    others = float(x.grad[:, :free].abs().sum())
    assert others == 0.0 if density == "free_logit" else others > 0


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")
def test_released_step_matches_the_released_formulas(one_torch_thread):
    """Every released option at once trains (finite losses, a backward pass); loss_rdc and
    loss_rsc equal the released code's expressions written with torch.nn.functional here (to
    float32 rounding: at T = 10 the KL per ray is ~1e-5, a difference of logs ~4)."""
    method = RadOccMethod(model_cfg(), student_sup(), radocc_cfg(**RELEASED), teacher=make_teacher(steps=40))
    batch = tiny_batch()
    torch.manual_seed(0)
    losses = method.training_step(batch)
    assert {"loss_rdc", "loss_rsc", "loss_feat", "loss_logit", "loss_ce", "loss_depth"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    with torch.no_grad():
        s_logits = method.forward(batch).logits
        t_logits = method.teacher_outputs(batch).logits
        rays = method.ray_pixels(batch, 0, 0)
        r_s, r_t = method.render(s_logits[0], rays, None), method.render(t_logits[0], rays, None)
        T = 10.0
        rdc = (
            F.kl_div(F.log_softmax(r_s.weights / T, 1), F.softmax(r_t.weights / T, 1), reduction="none").mean(1) * T * T
        ).mean()
        rsc = F.kl_div(F.log_softmax(r_s.values, 1), F.softmax(r_t.values, 1), reduction="mean")
        got = method.rendered_losses(batch, s_logits, t_logits)
    assert r_s.weights.shape == (len(rays), 60)
    assert float(got["loss_rdc"]) == pytest.approx(100.0 * float(rdc), rel=5e-3)
    assert float(got["loss_rsc"]) == pytest.approx(10.0 * float(rsc), rel=1e-4)


def test_3d_baseline_reductions(one_torch_thread):
    """feature_reduction sum_channels = C_teacher x mean; logit_reduction mean = sum / C."""
    batch = tiny_batch()
    values = {}
    for feat, logit in (("mean", "sum"), ("sum_channels", "mean")):
        torch.manual_seed(0)
        method = RadOccMethod(
            model_cfg(),
            student_sup(),
            radocc_cfg(depth_weight=0, semantic_weight=0, feature_reduction=feat, logit_reduction=logit),
            teacher=make_teacher(),
        ).eval()
        values[feat] = method.training_step(batch)
    width = make_teacher().model.encoder.out_channels
    assert float(values["sum_channels"]["loss_feat"]) == pytest.approx(
        width * float(values["mean"]["loss_feat"]), rel=1e-4
    )
    assert float(values["sum_channels"]["loss_logit"]) == pytest.approx(
        float(values["mean"]["loss_logit"]) / 18, rel=1e-4
    )


def test_presets_hold_the_released_values():
    from occkit.experiment import load_experiment

    for name in ("radocc-occ3d", "radocc"):
        c = load_experiment(name).radocc
        assert (c.sampling, c.jitter, c.density, c.alpha_scale) == ("camera", False, "free_logit", 0.2)
        assert (c.depth_reduction, c.depth_tau) == ("mean", 10.0)
        assert (c.semantic_mode, c.logit_reduction, c.logit_tau, c.feature_reduction) == (
            "raw_kl",
            "mean",
            10.0,
            "sum_channels",
        )
        assert tuple(c.lidar_depth_range) == (1.0, 45.0)
    gpu = load_experiment("radocc-occ3d")
    assert (gpu.radocc.num_rays, gpu.radocc.num_samples, gpu.radocc.sample_step) == (0, 287, 0.2)
    assert (gpu.supervised.lovasz, gpu.supervised.depth_weight) == (False, 0.05)


def test_box_sampling_with_the_free_logit_density():
    """density free_logit with occkit's box sampling: softplus(-l_free) * alpha_scale / step per
    metre, so a full 0.2 m interval has the released alpha 1 - exp(-softplus(-l) 0.2)."""
    method = RadOccMethod(
        model_cfg(),
        student_sup(),
        radocc_cfg(jitter=False, lookup="nearest", density="free_logit"),
        teacher=make_teacher(),
    )
    grid = method.model.output_grid
    logits = torch.zeros(18, *grid.shape)
    logits[17] = -0.5
    out = method.render(logits, one_ray(-3.1), None, values=False)  # origin inside: 6.3 m to the far face
    a = 1 - math.exp(-math.log1p(math.exp(0.5)) * 0.2)
    expected = a * (1 - a) ** torch.arange(31, dtype=torch.float64)
    assert torch.allclose(out.weights[0, :31].double(), expected, rtol=1e-4)


def test_frame_without_lidar_pixels_adds_zero(one_torch_thread):
    batch = tiny_batch()
    batch.lidar = [torch.tensor([[0.0, 0.0, 50.0, 0.5]])]  # one point above every camera's view
    method = RadOccMethod(model_cfg(), student_sup(), radocc_cfg(**RELEASED), teacher=make_teacher())
    assert len(method.ray_pixels(batch, 0, 0)) == 0
    x = torch.randn(1, 18, *method.model.output_grid.shape, requires_grad=True)
    losses = method.rendered_losses(batch, x, x.detach())
    assert float(losses["loss_rdc"].detach()) == 0.0 and float(losses["loss_rsc"].detach()) == 0.0
    sum(losses.values()).backward()


def test_feature_align_pool_pairs_a_coarser_teacher(one_torch_thread):
    """A teacher with lift grid 4x4x3 under a student's 8x8x3: 'same' refuses it; 'pool' scores the
    student's adapted features average-pooled 2x2x1 against the teacher's, over the teacher voxels
    any of whose output voxels is in the camera mask."""
    import dataclasses

    t_cfg = dataclasses.replace(model_cfg("lidar"), lift_downsample=(4, 4, 2))
    torch.manual_seed(1)
    teacher = SupervisedMethod(t_cfg, teacher_sup())
    only_feat = dict(depth_weight=0.0, semantic_weight=0.0, feature_weight=1.0, logit_weight=0.0)
    with pytest.raises(ValueError, match="feature_align=pool"):
        RadOccMethod(model_cfg(), student_sup(), radocc_cfg(**only_feat), teacher=teacher)
    torch.manual_seed(0)
    method = RadOccMethod(
        model_cfg(),
        student_sup(),
        radocc_cfg(feature_align="pool", feature_reduction="sum_channels", **only_feat),
        teacher=teacher,
    ).eval()
    batch = tiny_batch()
    batch.mask_camera[0, :8] = False  # the half x < 8 of the output grid (16 voxels) out of the mask
    loss = method.training_step(batch)["loss_feat"]
    with torch.no_grad():
        f_s = method.adapter(method.training_outputs(batch)[1].features)  # (1, C, 8, 8, 3)
        f_t = teacher(batch).features  # (1, C, 4, 4, 3)
    assert f_s.shape[2:] == (8, 8, 3) and f_t.shape[2:] == (4, 4, 3)
    pooled = (f_s[:, :, 0::2, 0::2] + f_s[:, :, 1::2, 0::2] + f_s[:, :, 0::2, 1::2] + f_s[:, :, 1::2, 1::2]) / 4
    d = (pooled - f_t).abs().sum(1)[0]  # the released reduction: sum over channels
    expected = d[2:].mean()  # teacher voxels x >= 2 cover output voxels x >= 8
    assert torch.allclose(loss, expected, rtol=1e-5), (float(loss), float(expected))
    finer = SupervisedMethod(
        dataclasses.replace(model_cfg("lidar"), lift_downsample=(1, 1, 1)), teacher_sup()
    )  # 16x16x6
    with pytest.raises(ValueError, match="integer multiple"):
        RadOccMethod(model_cfg(), student_sup(), radocc_cfg(feature_align="pool", **only_feat), teacher=finer)


def test_a_teacher_of_another_dataset_format_is_refused_naming_the_run():
    """A SemanticKITTI run (a cigocc method: its model has no num_classes nor the student's grid)
    given as radocc.teacher: one ValueError naming the run, not an AttributeError (issue 64)."""
    from types import SimpleNamespace

    class KittiLike(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = torch.nn.Linear(1, 1)
            self.model.cfg = SimpleNamespace(voxel_size=0.2)  # no num_classes, no output_grid

        def forward(self, batch):
            return batch

    with pytest.raises(ValueError, match="radocc.teacher: runs/kitti is a KittiLike run .*same dataset format"):
        RadOccMethod(model_cfg(), student_sup(), radocc_cfg(teacher="runs/kitti"), teacher=KittiLike())
