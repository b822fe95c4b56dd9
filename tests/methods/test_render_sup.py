"""render_sup: a tiny network trained from 2D depth and semantic maps only; the loss must fall."""

from __future__ import annotations

import math

import pytest
import torch
from two_cameras import rendered_batch as tiny_batch
from two_cameras import tiny_model_cfg

from occkit.methods.render_sup import RenderSupConfig, RenderSupMethod


def test_render_sup_loss_falls():
    torch.manual_seed(0)
    batch = tiny_batch()
    assert (batch.depth > 0).float().mean() > 0.3
    method = RenderSupMethod(tiny_model_cfg(), RenderSupConfig(free=17, num_rays=512, sample_step=0.2))
    opt = torch.optim.Adam(method.parameters(), lr=1e-2)
    history = []
    for _ in range(12):
        losses = method.training_step(batch)
        assert set(losses) == {
            "loss_sem",
            "loss_depth",
            "loss_opacity",
            "loss_termination",
            "loss_distortion",
            "loss_entropy",
            "loss_lss_depth",
        }
        total = sum(losses.values())
        assert torch.isfinite(total)
        opt.zero_grad()
        total.backward()
        opt.step()
        history.append(float(total.detach()))
    first, last = sum(history[:3]) / 3, sum(history[-3:]) / 3
    assert last < 0.8 * first, history
    method.eval()
    logits = method.predict(batch)
    assert logits.shape == (1, 18, 16, 16, 6)


def test_render_sup_needs_2d_maps_and_checks_config():
    batch = tiny_batch()
    batch.depth = None
    method = RenderSupMethod(tiny_model_cfg(), RenderSupConfig(free=17, num_rays=8))
    with pytest.raises(ValueError, match="batch.depth"):
        method.training_step(batch)
    with pytest.raises(ValueError, match="num_rays"):
        RenderSupMethod(tiny_model_cfg(), RenderSupConfig(free=17, num_rays=0))
    with pytest.raises(ValueError, match="free_prior"):
        RenderSupMethod(tiny_model_cfg(), RenderSupConfig(free=17, free_prior=1.0))
    m = RenderSupMethod(tiny_model_cfg(), RenderSupConfig(free=17, free_prior=0.9, occupied_threshold=0.0))
    assert float(m.free_bias.detach()) == pytest.approx(math.log(9) + math.log(17))
    m.eval()
    with torch.no_grad():
        base = m.model(batch.images, batch.intrinsics, batch.T_ego_from_cam).logits
    shifted = m.predict(batch)
    torch.testing.assert_close(shifted[:, 17] - base[:, 17], torch.full_like(base[:, 17], float(m.free_bias.detach())))
    torch.testing.assert_close(shifted[:, :17], base[:, :17])
    from occkit.config import ConfigError, from_dict

    with pytest.raises(ConfigError, match="depth_loss: 'l2' is not one of"):  # checked once, when the config loads
        from_dict(RenderSupConfig, {"depth_loss": "l2"})


def test_preset_builds_render_sup_through_the_engine_builder():
    from occkit.config import to_dict
    from occkit.experiment import build_method, experiment_from_dict, load_experiment

    cfg = load_experiment("render-sup-cpu", ["render_sup.num_rays=64"])
    assert cfg.method == "render_sup" and cfg.render_sup.num_rays == 64
    assert cfg.data.load_extras  # the 2D maps come from the extras
    again = experiment_from_dict(to_dict(cfg))  # as a checkpoint's config.json is read back
    assert again.render_sup == cfg.render_sup
    method = build_method(again)
    assert isinstance(method, RenderSupMethod) and method.cfg.num_rays == 64


def test_predict_thresholds_p_occupied():
    batch = tiny_batch()
    m = RenderSupMethod(tiny_model_cfg(), RenderSupConfig(free=17, occupied_threshold=0.3)).eval()
    with torch.no_grad():
        logits = m.forward(batch).logits
    scores = m.predict(batch)
    p = torch.softmax(logits, 1)
    pred = scores.argmax(1)
    occupied = (1 - p[:, 17]) >= 0.3
    assert torch.equal(pred == 17, ~occupied)
    torch.testing.assert_close(pred[occupied], p[:, :17].argmax(1)[occupied])


def test_auto_threshold_is_calibrated_from_2d_depth_only():
    from occkit.methods.render_sup import CALIBRATION_BINS

    torch.manual_seed(0)
    m = RenderSupMethod(tiny_model_cfg(), RenderSupConfig(free=17, num_rays=64, free_prior=0.9))
    assert m.cfg.occupied_threshold == "auto" and m.threshold() == 0.5  # nothing seen yet
    batch = tiny_batch()
    batch.occupancy = None  # no 3D label anywhere: the calibration reads the depth maps
    m.training_step(batch)
    surf, free = m.calibration
    assert float(surf.sum()) > 0 and float(free.sum()) > 0
    assert "calibration" in m.state_dict()  # saved with the weights, so predictions reproduce
    # hand-made histograms: surface samples at p = 0.30-0.39, free ones at 0.05 and 0.35
    m.calibration.zero_()
    m.calibration[0, 30:40] = 10.0
    m.calibration[1, 5] = 1000.0
    m.calibration[1, 35] = 10.0
    # tau in (0.05, 0.30] keeps all 100 surface samples and 10 free ones (IoU 100/110); tau = 0.36
    # keeps 40 surface samples and no free one (IoU 0.4): the middle of the plateau 0.06-0.30 wins
    assert m.threshold() == pytest.approx(18 / CALIBRATION_BINS)
    m.calibration[1, 35] = 1000.0  # now passing the free bump costs more than the surface lost
    assert m.threshold() == pytest.approx(36 / CALIBRATION_BINS)
    fixed = RenderSupMethod(tiny_model_cfg(), RenderSupConfig(free=17, occupied_threshold=0.2))
    fixed.training_step(batch)
    assert fixed.threshold() == 0.2 and float(fixed.calibration.sum()) == 0
    with pytest.raises(ValueError, match="occupied_threshold"):
        RenderSupMethod(tiny_model_cfg(), RenderSupConfig(free=17, occupied_threshold=1.5))


def test_lidar_targets_train_depth_only_at_lidar_pixels():
    """``targets: lidar``: depth maps from the frame's LiDAR points, rays only where a point is,
    no semantic term; the depth losses fall, and a batch without LiDAR is refused."""
    torch.manual_seed(0)
    batch = tiny_batch()
    # LiDAR: the surface points the front and back cameras see, every 7th pixel, in the ego frame
    from occkit.geometry.transforms import apply_transform

    pts = []
    for n in range(2):
        K, T, depth = batch.intrinsics[0, n], batch.T_ego_from_cam[0, n], batch.depth[0, n]
        v, u = torch.nonzero(depth > 0, as_tuple=True)
        v, u = v[::7], u[::7]
        z = depth[v, u]
        x = (u.float() + 0.5 - K[0, 2]) / K[0, 0] * z
        y = (v.float() + 0.5 - K[1, 2]) / K[1, 1] * z
        pts.append(apply_transform(T, torch.stack([x, y, z], -1)))
    pts = torch.cat(pts)
    batch.lidar = [torch.cat([pts, torch.ones(len(pts), 1)], 1)]
    with pytest.raises(ValueError, match="semantic_weight=0"):
        RenderSupMethod(tiny_model_cfg(), RenderSupConfig(free=17, targets="lidar"))
    method = RenderSupMethod(
        tiny_model_cfg(), RenderSupConfig(free=17, targets="lidar", semantic_weight=0.0, num_rays=256, sample_step=0.2)
    )
    depth, sem = method.targets_2d(batch)
    hit = depth > 0
    assert 0 < hit.float().mean() < 0.2 and bool((sem == 255).all())
    assert torch.allclose(depth[hit], batch.depth[hit], atol=1e-3)  # the points' own pixels and depths
    opt = torch.optim.Adam(method.parameters(), lr=1e-2)
    first = last = None
    for _ in range(10):
        losses = method.training_step(batch)
        assert "loss_sem" not in losses and "loss_depth" in losses
        total = sum(losses.values())
        assert torch.isfinite(total)
        first = float(total.detach()) if first is None else first
        last = float(total.detach())
        opt.zero_grad()
        total.backward()
        opt.step()
    assert last < first
    batch.lidar = None
    with pytest.raises(ValueError, match="LiDAR"):
        method.training_step(batch)


def test_a_run_that_learns_no_classes_is_validated_on_its_depth():
    """Issue 64: render_sup with semantic_weight 0 (base-cpu) reports rendered-depth figures at
    validation, the same draw each time, and they improve as depth is learnt; a run that learns
    classes adds none (its class mIoU is its figure)."""
    torch.manual_seed(0)
    batch = tiny_batch()
    assert RenderSupMethod(tiny_model_cfg(), RenderSupConfig(free=17)).validation_figures is None  # the engine skips it
    method = RenderSupMethod(
        tiny_model_cfg(), RenderSupConfig(free=17, semantic_weight=0.0, num_rays=512, sample_step=0.2)
    )
    method.eval()
    state = torch.random.get_rng_state()
    before = method.validation_figures(batch)
    assert torch.equal(torch.random.get_rng_state(), state) and before == method.validation_figures(batch)
    assert set(before) == {"depth_abs_rel", "depth_abs_m", "depth_hit"} and before["depth_abs_rel"][1] > 100
    method.train()
    opt = torch.optim.Adam(method.parameters(), lr=1e-2)
    for _ in range(15):
        total = sum(method.training_step(batch).values())
        opt.zero_grad()
        total.backward()
        opt.step()
    method.eval()
    after = method.validation_figures(batch)
    rel = {k: v[0] / v[1] for k, v in after.items()}
    assert rel["depth_abs_rel"] < before["depth_abs_rel"][0] / before["depth_abs_rel"][1], (before, after)
