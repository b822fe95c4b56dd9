"""The occscene method: stages, frozen parts, gradients to MDA and the perception model, joint steps
lowering both losses, perception from a checkpoint."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from occkit.methods.base import Method
from occkit.methods.occscene import OccSceneConfig, OccSceneMethod

sys.path.insert(0, str(Path(__file__).parents[1] / "generation"))
sys.path.insert(0, str(Path(__file__).parent))
from test_supervised import tiny_batch, tiny_model_cfg  # noqa: E402
from tiny import tiny_generator_cfg, tiny_schedule  # noqa: E402


def make(**kw) -> OccSceneMethod:
    base = dict(
        generator=tiny_generator_cfg(),
        schedule=tiny_schedule(),
        vae_steps=1,
        diffusion_steps=1,
        occ_warmup_steps=0,
        occ_max_timestep=100,
        occ_weight=1.0,
        text_dropout=0.0,
        occ_dropout=0.0,
    )
    base.update(kw)
    torch.manual_seed(0)
    return OccSceneMethod(tiny_model_cfg(), OccSceneConfig(**base))


def batch(seed: int = 0):
    b = tiny_batch(seed=seed, B=1, N=1, H=32, W=64, lidar=False, depth=False)
    b.descriptions = ["a road with a car in front"]
    return b


def test_stages_losses_and_what_each_trains():
    m = make()
    assert isinstance(m, Method)
    names = []
    for stage in (0, 1, 2):
        assert m.stage() == stage
        m.zero_grad(set_to_none=True)
        losses = m.training_step(batch())
        names.append(set(losses))
        for k, v in losses.items():
            assert v.dim() == 0 and torch.isfinite(v), k
        sum(losses.values()).backward()
        vae_grad = any(p.grad is not None for p in m.generator.vae.parameters())
        unet_grad = any(p.grad is not None for p in m.generator.unet.parameters())
        occ_grad = any(p.grad is not None for p in m.model.parameters())
        assert (vae_grad, unet_grad, occ_grad) == [(True, False, True), (False, True, False), (False, True, True)][
            stage
        ]
    assert names == [
        {"loss_occ_real", "loss_vae_rec", "loss_vae_kl"},
        {"loss_diff"},
        {"loss_occ_real", "loss_diff", "loss_occ_gen"},
    ]
    assert int(m.step) == 3 and "step" in m.state_dict() and "generator.latent_scale" in m.state_dict()
    assert float(m.generator.latent_scale) != 1.0  # measured in stage 0
    logits = m.eval().predict(batch())
    assert logits.shape == (1, 18, 20, 20, 6) and not logits.requires_grad


def test_joint_gradients_reach_mda_and_perception_through_the_decoded_estimate():
    m = make(real_occ_weight=0.0)
    m.step.fill_(2)  # stage 2
    for p in m.generator.mda.zero_convs.parameters():  # as after some training: residuals non-zero
        torch.nn.init.normal_(p, std=0.1)
    losses = m.training_step(batch())
    assert set(losses) == {"loss_diff", "loss_occ_gen"}
    m.zero_grad(set_to_none=True)
    losses["loss_occ_gen"].backward()  # the perception loss alone
    assert m.generator.mda.deform.mix.weight.grad.abs().sum() > 0  # through decoder, x0 and eps into MDA
    assert m.generator.unet.conv_in.weight.grad.abs().sum() > 0
    assert m.model.head.parameters().__next__().grad.abs().sum() > 0
    assert all(p.grad is None for p in m.generator.vae.parameters())  # the VAE stays frozen
    m2 = make(real_occ_weight=0.0, occ_grad_to_generator=False)
    m2.step.fill_(2)
    m2.training_step(batch())["loss_occ_gen"].backward()
    assert m2.generator.unet.conv_in.weight.grad is None


def test_a_few_joint_steps_lower_both_losses():
    m = make(vae_steps=0, diffusion_steps=0, real_occ_weight=0.0, occ_max_timestep=60)
    opt = torch.optim.Adam([p for p in m.parameters()], lr=3e-3)
    b = batch()
    first, last = None, None
    torch.manual_seed(1)
    for i in range(12):
        torch.manual_seed(100 + i % 2)  # the same two (t, noise) draws alternate, so the losses are comparable
        losses = m.training_step(b)
        vals = {k: float(v.detach()) for k, v in losses.items()}
        if i < 2:
            first = vals if first is None else {k: (first[k] + vals[k]) / 2 for k in vals}
        if i >= 10:
            last = vals if last is None else {k: (last[k] + vals[k]) / 2 for k in vals}
        opt.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        opt.step()
    assert last["loss_diff"] < first["loss_diff"]
    assert last["loss_occ_gen"] < first["loss_occ_gen"]


def test_perception_only_and_errors(tmp_path):
    m = make(train_generator=False)
    assert m.generator is None and m.stage() == -1
    assert set(m.training_step(batch())) == {"loss_occ_real"}
    with pytest.raises(ValueError, match="occ_dropout"):
        make(occ_dropout=2.0)
    b = batch()
    b.occupancy = None
    with pytest.raises(ValueError, match="occupancy"):
        m.training_step(b)


def test_perception_from_a_checkpoint_is_loaded_by_the_composition_root(tmp_path):
    from occkit.config import to_dict
    from occkit.engine.checkpoint import save_checkpoint
    from occkit.experiment import ExperimentConfig, build_method
    from occkit.methods.supervised import SupervisedMethod

    torch.manual_seed(1)
    src_cfg = ExperimentConfig(method="supervised", model=tiny_model_cfg())
    src = build_method(src_cfg)
    save_checkpoint(tmp_path / "src", 1, src, to_dict(src_cfg), {})
    occ = dict(generator=tiny_generator_cfg(), schedule=tiny_schedule())

    def cfg(**kw) -> ExperimentConfig:
        return ExperimentConfig(method="occscene", model=tiny_model_cfg(), occscene=OccSceneConfig(**occ, **kw))

    torch.manual_seed(0)
    m = build_method(cfg(perception_ckpt=str(tmp_path / "src")))
    for k, v in src.model.state_dict().items():
        assert torch.equal(m.model.state_dict()[k], v), k
    torch.manual_seed(0)
    plain = build_method(cfg())  # loading the perception run leaves the caller's RNG alone
    for k, v in plain.generator.state_dict().items():
        assert torch.equal(m.generator.state_dict()[k], v), k
    with pytest.raises(FileNotFoundError, match="occscene.perception_ckpt"):
        build_method(cfg(perception_ckpt=str(tmp_path / "nope")))
    with pytest.raises(ValueError, match="occscene.perception_ckpt: .* is not loaded"):  # a recipe never loads runs
        OccSceneMethod(tiny_model_cfg(), OccSceneConfig(**occ, perception_ckpt=str(tmp_path / "src")))
    other = tiny_model_cfg()
    other.num_classes = 5
    with pytest.raises(ValueError, match="does not match this run's model config"):
        OccSceneMethod(other, OccSceneConfig(**occ), perception=src.model)
    assert isinstance(src, SupervisedMethod)


def test_init_from_an_occscene_run_restarts_the_stages(tmp_path):
    from occkit.config import to_dict
    from occkit.engine.checkpoint import save_checkpoint
    from occkit.engine.init_from import init_from
    from occkit.experiment import ExperimentConfig

    src = make()
    src.training_step(batch())
    src.training_step(batch())
    assert src.stage() == 2
    cfg = to_dict(ExperimentConfig(method="occscene", model=tiny_model_cfg()))
    save_checkpoint(tmp_path / "src", 2, src, cfg, {})
    torch.manual_seed(3)
    m = OccSceneMethod(tiny_model_cfg(), src.cfg)
    _, report = init_from(m, tmp_path / "src", cfg["model"])
    assert report.fresh == ["step"] and int(m.step) == 0 and m.stage() == 0  # a fresh run's stages
    assert not report.new and not report.skipped and not report.unused
    for k, v in src.state_dict().items():
        if k != "step":
            assert torch.equal(m.state_dict()[k], v), k
