"""easyocc: a tiny sampling-lift network trained on pseudo-labels (the loss must fall); render_sup's
EasyOcc options (2D targets from priors, the 3D pseudo-label loss)."""

from __future__ import annotations

import pytest
import torch
from two_cameras import rendered_batch as tiny_batch
from two_cameras import tiny_model_cfg

from occkit.data.sample import Batch
from occkit.methods.easyocc import EasyOccConfig, EasyOccMethod
from occkit.methods.render_sup import RenderSupConfig, RenderSupMethod


def pseudo_batch() -> Batch:
    """The render_sup test frame with 3D pseudo-labels: the ground, a car, a wall; observed = the
    lower half of the grid."""
    b = tiny_batch()
    occ = torch.full((1, 16, 16, 6), 17, dtype=torch.long)
    occ[:, :, :, 0] = 11
    occ[:, 11:14, 6:10, 1:4] = 4
    occ[:, 2:4, 9:12, 1:3] = 15
    b.occupancy = occ
    b.mask_camera = torch.zeros(1, 16, 16, 6, dtype=torch.bool)
    b.mask_camera[:, :, :, :3] = True
    return b


def sample_cfg():
    cfg = tiny_model_cfg()
    cfg.lift = "sample"
    cfg.sample_coords = True
    return cfg


def test_easyocc_loss_falls_and_counts_labels_in_the_mask():
    torch.manual_seed(0)
    batch = pseudo_batch()
    method = EasyOccMethod(sample_cfg(), EasyOccConfig(lovasz_max_voxels=None))
    opt = torch.optim.Adam(method.parameters(), lr=1e-2)
    history = []
    for _ in range(10):
        losses = method.training_step(batch)
        assert set(losses) == {"loss_ce", "loss_lovasz"}
        total = sum(losses.values())
        opt.zero_grad()
        total.backward()
        opt.step()
        history.append(float(total.detach()))
    assert sum(history[-3:]) < 0.8 * sum(history[:3]), history
    kept = batch.occupancy[batch.mask_camera]
    assert method.label_counts[4] == 10 * int((kept == 4).sum()) and method.label_counts.sum() == 10 * kept.numel()
    assert "label_counts" in method.state_dict()
    method.eval()
    assert method.predict(batch).shape == (1, 18, 16, 16, 6)


def test_easyocc_checks_its_inputs():
    batch = pseudo_batch()
    batch.occupancy = None
    m = EasyOccMethod(sample_cfg(), EasyOccConfig())
    with pytest.raises(ValueError, match="pseudo-labels"):
        m.training_step(batch)
    with pytest.raises(ValueError, match="class_counts"):
        EasyOccMethod(sample_cfg(), EasyOccConfig(class_counts=(1.0, 2.0)))
    from occkit.config import ConfigError, from_dict

    with pytest.raises(
        ConfigError, match="class_balance: 'median' is not one of"
    ):  # checked once, when the config loads
        from_dict(EasyOccConfig, {"class_balance": "median"})


def test_preset_builds_easyocc():
    from occkit.experiment import build_method, load_experiment

    for name in ("easyocc", "easyocc-gpu"):
        cfg = load_experiment(name)
        assert cfg.method == "easyocc" and cfg.model.lift == "sample"
    assert isinstance(build_method(load_experiment("easyocc")), EasyOccMethod)


def test_render_sup_takes_prior_targets_and_a_pseudo_label_loss():
    torch.manual_seed(0)
    b = pseudo_batch()
    # priors: the exact maps with unknowns: depth 0 on some surface pixels, class 255 on others
    b.prior_depth = b.depth.clone()
    b.prior_semantics = b.semantics_2d.clone()
    surf = b.depth > 0
    b.prior_depth[..., ::2, :][surf[..., ::2, :]] = 0.0
    b.prior_semantics[..., 1::2, :][surf[..., 1::2, :]] = 255
    b.depth = b.semantics_2d = None  # no exact maps: the priors alone must do
    cfg = RenderSupConfig(free=17, num_rays=256, sample_step=0.2, targets="priors", pseudo_label_weight=0.5)
    m = RenderSupMethod(tiny_model_cfg(), cfg)
    losses = m.training_step(b)
    assert "loss_pseudo" in losses and all(torch.isfinite(v) for v in losses.values())
    assert float(m.label_counts.sum()) == float(b.mask_camera.sum())
    with pytest.raises(ValueError, match="prior"):
        b2 = pseudo_batch()
        RenderSupMethod(tiny_model_cfg(), RenderSupConfig(free=17, num_rays=8, targets="priors")).training_step(b2)
    with pytest.raises(ValueError, match="lss_depth_weight"):
        RenderSupMethod(sample_cfg(), RenderSupConfig(free=17, lss_depth_weight=1.0))
    # the defaults are unchanged: no pseudo-label buffer, the extras' maps
    assert "label_counts" not in RenderSupMethod(tiny_model_cfg(), RenderSupConfig(free=17)).state_dict()
