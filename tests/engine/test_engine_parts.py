"""Engine parts: schedule, sampler, EMA, checkpoints (round trip, atomicity, named errors), presets."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from occkit.config import ConfigError
from occkit.engine.checkpoint import (
    latest_checkpoint,
    list_checkpoints,
    load_config_dict,
    load_trainer_state,
    load_weights,
    resolve_checkpoint,
    save_checkpoint,
)
from occkit.engine.data import SeededItems, StepSampler
from occkit.engine.optim import EMA, WarmupCosine, build_optimizer, build_scheduler
from occkit.experiment import find_preset, load_experiment, preset_names


def test_warmup_cosine_hand_values():
    f = WarmupCosine(warmup_steps=4, max_steps=14, min_ratio=0.1)
    assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(4) == pytest.approx(1.0)
    assert f(9) == pytest.approx(0.1 + 0.9 * 0.5)  # half way through the cosine
    assert f(14) == pytest.approx(0.1) and f(100) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="min_lr_ratio"):
        WarmupCosine(1, 10, 1.5)


def test_scheduler_drives_optimizer_lr_and_decay_groups():
    m = nn.Linear(3, 2)
    opt = build_optimizer(m, lr=0.1, weight_decay=0.5)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.5, 0.0]
    assert opt.param_groups[0]["params"][0] is m.weight and opt.param_groups[1]["params"][0] is m.bias
    sched = build_scheduler(opt, 2, 10, 0.0)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:3] == pytest.approx([0.05, 0.1, 0.1])
    assert lrs[6] == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 4 / 8)))


def test_step_sampler_shards_equal_the_single_process_batches():
    single = StepSampler(10, batch_size=4, seed=3)
    r0 = StepSampler(10, batch_size=2, seed=3, rank=0, world_size=2)
    r1 = StepSampler(10, batch_size=2, seed=3, rank=1, world_size=2)
    assert single.steps_per_epoch == r0.steps_per_epoch == 2
    for epoch in (0, 1):
        for s in (single, r0, r1):
            s.set_position(epoch)
        a, b0, b1 = list(single), list(r0), list(r1)
        for k in range(2):
            assert a[4 * k : 4 * k + 4] == b0[2 * k : 2 * k + 2] + b1[2 * k : 2 * k + 2]
    # resuming at (epoch 1, batch 1) gives the tail of epoch 1
    single.set_position(1, 0)
    full = list(single)
    single.set_position(1, 1)
    assert list(single) == full[4:]
    # epochs differ, seeds differ
    assert single.order(0).tolist() != single.order(1).tolist()
    assert StepSampler(10, 4, seed=4).order(0).tolist() != single.order(0).tolist()
    with pytest.raises(ValueError, match="cannot fill one global batch"):
        StepSampler(3, batch_size=2, seed=0, world_size=2)


def test_seeded_items_are_reproducible_and_leave_the_caller_rng_alone():
    class Noisy(torch.utils.data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return torch.rand(2) + i

    ds = SeededItems(Noisy())
    torch.manual_seed(0)
    expected_next = torch.rand(1)
    torch.manual_seed(0)
    a = ds[(1, 77)]
    assert torch.equal(torch.rand(1), expected_next)
    assert torch.equal(a, ds[(1, 77)]) and not torch.equal(a, ds[(1, 78)])


def test_ema_update_hand_value():
    m = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        m.weight.fill_(1.0)
    ema = EMA(m, decay=0.9)
    with torch.no_grad():
        m.weight.fill_(3.0)
    ema.update(m)
    assert ema.module.weight.item() == pytest.approx(0.9 * 1.0 + 0.1 * 3.0)
    assert not ema.module.weight.requires_grad


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(2, 3)
        self.bn = nn.BatchNorm1d(3)


def _save(run, step, model, **kw):
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    return save_checkpoint(
        run,
        step,
        model,
        {"method": "x", "n": step},
        {"optimizer": opt.state_dict(), "rng": torch.get_rng_state()},
        **kw,
    )


def test_checkpoint_round_trip_and_latest(tmp_path):
    torch.manual_seed(0)
    m = Tiny()
    m.bn.running_mean.fill_(0.25)
    ck = _save(tmp_path, 7, m, ema=Tiny())
    assert ck.name == "step_000007" and sorted(p.name for p in ck.iterdir()) == [
        "checksums.json",
        "config.json",
        "ema.safetensors",
        "model.safetensors",
        "trainer.pt",
    ]
    other = Tiny()
    load_weights(other, ck / "model.safetensors")
    for k, v in m.state_dict().items():
        assert torch.equal(v, other.state_dict()[k])
    state = load_trainer_state(ck)
    assert (
        state["step"] == 7 and state["rng"].dtype == torch.uint8 and state["optimizer"]["param_groups"][0]["lr"] == 0.1
    )
    assert load_config_dict(ck) == {"method": "x", "n": 7}
    _save(tmp_path, 9, m)
    _save(tmp_path, 12, m, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_000009", "step_000012"]
    assert latest_checkpoint(tmp_path).name == "step_000012"
    assert resolve_checkpoint(tmp_path).name == "step_000012"
    assert resolve_checkpoint(tmp_path / "checkpoints/step_000009/model.safetensors").name == "step_000009"
    # no temporary folders left behind
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")]
    # an incomplete newest folder (crash before rename cannot make one; a user deleting a file can)
    (tmp_path / "checkpoints/step_000012/trainer.pt").unlink()
    assert latest_checkpoint(tmp_path).name == "step_000009"


def test_checkpoint_errors_name_the_file(tmp_path):
    m = Tiny()
    ck = _save(tmp_path, 1, m)
    (ck / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="model.safetensors"):
        load_weights(m, ck / "model.safetensors")
    (ck / "trainer.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="trainer.pt"):
        load_trainer_state(ck)
    with pytest.raises(FileNotFoundError, match="nothing.safetensors"):
        load_weights(m, tmp_path / "nothing.safetensors")
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        resolve_checkpoint(tmp_path / "missing_run")
    # weights of another architecture
    ck2 = save_checkpoint(tmp_path / "r2", 1, nn.Linear(5, 5), {}, {})
    with pytest.raises(ValueError, match="does not fit the model"):
        load_weights(m, ck2 / "model.safetensors")
    # a pickled object in trainer.pt is refused (weights_only)
    torch.save({"step": 1, "obj": Tiny}, ck2 / "trainer.pt")
    with pytest.raises(ValueError, match="trainer.pt"):
        load_trainer_state(ck2)


def test_presets_by_name_and_path_unknown_keys_named(tmp_path):
    assert {"synth-cpu", "occ3d-r50"} <= set(preset_names())
    assert find_preset("synth-cpu") == find_preset(str(find_preset("synth-cpu")))
    cfg = load_experiment("occ3d-r50")
    assert cfg.model.backbone == "resnet50" and tuple(cfg.data.image_aug.out_hw) == (256, 704)
    assert (cfg.model.depth_min, cfg.model.depth_max, cfg.model.depth_step) == (1.0, 45.0, 0.5)
    cfg = load_experiment("synth-cpu", ["optim.lr=0.5", "data.batch_size=3"])
    assert cfg.optim.lr == 0.5 and cfg.data.batch_size == 3
    with pytest.raises(ConfigError, match="optim.bogus"):
        load_experiment("synth-cpu", ["optim.bogus=1"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  sede: 3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*train.sede"):
        load_experiment(bad)
    with pytest.raises(FileNotFoundError, match="synth-cpu"):  # lists the presets
        load_experiment("no-such-preset")
    with pytest.raises(ConfigError, match="optim.max_steps"):
        load_experiment("synth-cpu", ["optim.max_steps=0"])


def test_time_schedule_follows_the_budget_fraction():
    f = WarmupCosine(warmup_steps=2, max_steps=10**6, min_ratio=0.0)
    f.time_fraction = 0.5
    assert f(0) == 0.5  # warm-up stays in steps
    assert f(5) == pytest.approx(0.5) and f(500) == pytest.approx(0.5)
    f.time_fraction = 1.0
    assert f(7) == pytest.approx(0.0)


def test_lr_mult_groups_by_name_longest_key_wins_and_scales_the_schedule():
    m = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2))  # names 0.weight, 0.bias, 1.weight, 1.bias
    opt = build_optimizer(m, lr=0.1, weight_decay=0.5, lr_mult={"1.": 0.1, "1.bias": 0.0})
    got = [([p.shape for p in g["params"]], g["lr"], g["weight_decay"]) for g in opt.param_groups]
    # the factor-1 groups first (decay, no decay), then one group per (factor, decay)
    assert got == [
        ([m[0].weight.shape], 0.1, 0.5),
        ([m[0].bias.shape], 0.1, 0.0),
        ([m[1].weight.shape], pytest.approx(0.01), 0.5),
        ([m[1].bias.shape], 0.0, 0.0),
    ]
    assert opt.param_groups[2]["params"][0] is m[1].weight and opt.param_groups[3]["params"][0] is m[1].bias
    sched = build_scheduler(opt, 2, 10, 0.0)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.05, 0.05, 0.005, 0.0])  # warm-up step 0: half
    opt.step()
    sched.step()
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.1, 0.1, 0.01, 0.0])
    # a frozen parameter's factor makes no group; every parameter with a factor leaves the first two empty
    m[0].requires_grad_(False)
    opt = build_optimizer(m, lr=0.1, weight_decay=0.5, lr_mult={"1.": 2.0})
    assert [len(g["params"]) for g in opt.param_groups] == [0, 0, 1, 1]
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.1, 0.1, 0.2, 0.2])


def test_lr_mult_rejects_a_key_matching_nothing_and_bad_factors():
    m = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="no trainable parameter's name contains 'ofset'"):
        build_optimizer(m, lr=0.1, weight_decay=0.0, lr_mult={"ofset": 0.1})
    for bad in (-1.0, float("nan"), True, "0.1"):
        with pytest.raises(ValueError, match="optim.lr_mult: 'weight'"):
            build_optimizer(m, lr=0.1, weight_decay=0.0, lr_mult={"weight": bad})


def test_optim_lr_mult_from_config_converts_its_values():
    from occkit.config import ConfigError, from_dict, parse_overrides
    from occkit.engine.config import OptimConfig

    assert OptimConfig().lr_mult == {}
    got = from_dict(OptimConfig, parse_overrides(["lr_mult.offset=1"])).lr_mult
    assert got == {"offset": 1.0} and isinstance(got["offset"], float)
    with pytest.raises(ConfigError, match=r"lr_mult.offset: expected a number, got 'abc'"):
        from_dict(OptimConfig, {"lr_mult": {"offset": "abc"}})


def test_a_validation_record_in_words():
    """One wording for a validation record, in the training loop's lines and occkit train's last line."""
    from occkit.engine.logging import validation_summary

    assert validation_summary({"miou": 41.236, "geometry_iou": 50.0}) == "val mIoU 41.24"
    assert validation_summary({"miou": 41.236, "rayiou": 35.1}) == "val mIoU 41.24, RayIoU 35.10"
    # a validation on a subset of the frames (train.val_max_frames) says so: occkit eval of the run scores them all
    subset = {"miou": 0.851, "val_frames": 16, "val_frames_total": 80}
    assert validation_summary(subset) == "val mIoU 0.85 (on 16 of the 80 val frames: train.val_max_frames)"
    depth = {"miou": 0.0, "geometry_iou": 30.126, "depth_abs_rel": 0.2104, "depth_abs_m": 2.314}
    assert validation_summary(depth) == "val geometry IoU 30.13, depth abs-rel 0.210 (2.31 m)"
