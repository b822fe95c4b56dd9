"""``train.init_from``: a run that starts from another run's weights, matched by name and shape, with a
fresh optimiser and schedule; refused sources; the record; resume; real recipes; the CLI flag."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from engine_toy import ToyFrames, ToyMethod  # noqa: E402
from test_engine_hardening import _flip_byte_in_tensor_data  # noqa: E402
from test_engine_train import toy_config  # noqa: E402

from occkit.config import ConfigError, to_dict  # noqa: E402
from occkit.engine.checkpoint import (
    CHECKSUM_FILE,
    EMA_FILE,
    MODEL_FILE,
    latest_checkpoint,
    load_trainer_state,
    save_checkpoint,
)  # noqa: E402
from occkit.engine.init_from import group_names, init_from  # noqa: E402
from occkit.engine.logging import read_jsonl  # noqa: E402
from occkit.engine.train import train  # noqa: E402


class Source(ToyMethod):
    """Run A: the toy plus a part run B lacks."""

    def __init__(self) -> None:
        super().__init__()
        self.aux = nn.Linear(2, 2)


class Target(ToyMethod):
    """Run B: a convolution of another kernel size (shape mismatch) and a part A lacks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 5, padding=2)
        self.extra = nn.Linear(8, 8)


def clone(m: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


@pytest.fixture(scope="module")
def run_a(tmp_path_factory) -> Path:
    """Run A: 4 steps of :class:`Source`, with an EMA."""
    a = tmp_path_factory.mktemp("init_from") / "a"
    cfg = toy_config(4)
    cfg.optim.ema, cfg.optim.ema_decay = True, 0.5
    torch.manual_seed(0)
    train(cfg, a, ToyFrames(8), method=Source(), progress=False)
    return a


def start_b(tmp_path: Path, source: Path | str, steps: int = 3, stop_at: int | None = 0, **train_kw):
    """Run B from ``source``; ``stop_at=0`` stops right after loading (the method as loaded)."""
    cfg = toy_config(steps, init_from=str(source), **train_kw)
    torch.manual_seed(1)
    b = Target()
    before = clone(b)
    res = train(cfg, tmp_path / "b", ToyFrames(8), method=b, stop_at=stop_at, progress=False)
    return b, before, res, cfg


def test_matching_names_load_exactly_and_the_rest_is_reported(run_a, tmp_path, capsys):
    b, before, _, _ = start_b(tmp_path, run_a, init_from_ema=False)
    rec = json.loads((tmp_path / "b/init_from.json").read_text())
    assert rec["loaded"] == ["conv.bias", "fc.weight", "fc.bias"]
    assert rec["new"] == ["extra.weight", "extra.bias"]
    assert rec["skipped"] == [{"name": "conv.weight", "source_shape": [8, 3, 3, 3], "shape": [8, 3, 5, 5]}]
    assert rec["unused"] == ["aux.bias", "aux.weight"] and rec["fresh"] == []  # in the source file's (sorted) order
    ckpt = latest_checkpoint(run_a)
    assert rec["checkpoint"] == str(ckpt.resolve()) and rec["weights"] == str((ckpt / MODEL_FILE).resolve())
    assert rec["sha256"] == json.loads((ckpt / CHECKSUM_FILE).read_text())[MODEL_FILE] and rec["checksum_verified"]
    assert rec["init_from"] == str(run_a) and rec["source_step"] == 4 and rec["source_method"] == "supervised"
    a = load_file(str(ckpt / MODEL_FILE))
    after = b.state_dict()
    for k in rec["loaded"]:  # exactly A's, for exactly the names reported
        assert torch.equal(after[k], a[k]), k
    for k in rec["new"] + [s["name"] for s in rec["skipped"]]:  # untouched by loading
        assert torch.equal(after[k], before[k]), k
    assert set(rec["loaded"]) | set(rec["new"]) | {s["name"] for s in rec["skipped"]} == set(after)
    assert rec["loaded_values"] == sum(after[k].numel() for k in rec["loaded"])
    err = capsys.readouterr().err
    assert "train.init_from: loaded 3 of this method's 6 tensors" in err
    assert "extra.* (2)" in err and "conv.weight [8, 3, 3, 3] -> [8, 3, 5, 5]" in err and "aux.* (2)" in err
    assert json.loads((tmp_path / "b/config.json").read_text())["train"]["init_from"] == str(run_a)  # as given


def test_the_source_ema_by_default_and_a_weights_file_as_named(run_a, tmp_path):
    ckpt = latest_checkpoint(run_a)
    b, _, _, _ = start_b(tmp_path, run_a)
    rec = json.loads((tmp_path / "b/init_from.json").read_text())
    assert rec["weights"].endswith(EMA_FILE)
    assert torch.equal(b.state_dict()["fc.weight"], load_file(str(ckpt / EMA_FILE))["fc.weight"])
    b2, _, _, _ = start_b(tmp_path / "2", ckpt / MODEL_FILE)  # a file named directly is used as named
    assert json.loads((tmp_path / "2/b/init_from.json").read_text())["weights"].endswith(MODEL_FILE)
    assert torch.equal(b2.state_dict()["fc.weight"], load_file(str(ckpt / MODEL_FILE))["fc.weight"])


def test_b_starts_at_step_0_with_a_fresh_optimiser_and_its_ema_from_the_loaded_weights(run_a, tmp_path):
    ckpt = latest_checkpoint(run_a)
    b, before, res, _ = start_b(tmp_path, run_a, steps=3, stop_at=None, init_from_ema=False)
    assert [s for s, _ in res.losses] == [1, 2, 3]
    state = load_trainer_state(latest_checkpoint(tmp_path / "b"))
    assert state["step"] == 3 and state["scheduler"]["last_epoch"] == 3
    assert {int(s["step"]) for s in state["optimizer"]["state"].values()} == {3}  # Adam's moments from B's 3 steps only
    fresh = toy_config(3)  # the same run without init_from: the same schedule
    torch.manual_seed(1)
    plain = train(fresh, tmp_path / "plain", ToyFrames(8), method=Target(), progress=False)
    assert [r["lr"] for r in read_jsonl(tmp_path / "b/train.jsonl")] == [
        r["lr"] for r in read_jsonl(tmp_path / "plain/train.jsonl")
    ]
    assert res.losses[0][1] != plain.losses[0][1]
    # with an EMA (decay 0.5), after one step: ema = (start + weights) / 2, so start = 2 ema - weights
    cfg = toy_config(1, init_from=str(run_a), init_from_ema=False)
    cfg.optim.ema, cfg.optim.ema_decay = True, 0.5
    torch.manual_seed(1)
    train(cfg, tmp_path / "ema2", ToyFrames(8), method=Target(), progress=False)
    ck = tmp_path / "ema2/checkpoints/step_000001"
    ema, w = load_file(str(ck / EMA_FILE)), load_file(str(ck / MODEL_FILE))
    a = load_file(str(ckpt / MODEL_FILE))
    for k in ("conv.bias", "fc.weight", "fc.bias"):
        torch.testing.assert_close(2 * ema[k] - w[k], a[k], rtol=0, atol=1e-6)
    torch.testing.assert_close(2 * ema["extra.weight"] - w["extra.weight"], before["extra.weight"], rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "key, value, says",
    [
        ("voxel_size", 0.8, "model.voxel_size"),
        ("point_range", (-40.0, -40.0, -1.0, 40.0, 40.0, 6.2), "model.point_range"),
        ("num_classes", 20, "20 (model.num_classes)"),
        ("modality", "lidar", "modality 'camera' cannot start a 'lidar' network"),
    ],
)
def test_a_source_that_cannot_fit_is_refused_in_one_line(run_a, tmp_path, key, value, says):
    cfg = toy_config(2, init_from=str(run_a))
    setattr(cfg.model, key, value)
    with pytest.raises(ConfigError, match="train.init_from") as e:
        train(cfg, tmp_path / "b", ToyFrames(8), method=Target(), progress=False)
    assert says in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "b" / "checkpoints").exists() and not (tmp_path / "b" / "init_from.json").exists()


def test_fusion_starts_from_a_camera_run(run_a, tmp_path):
    cfg = toy_config(2, init_from=str(run_a))
    cfg.model.modality = "fusion"
    train(cfg, tmp_path / "b", ToyFrames(8), method=Target(), stop_at=0, progress=False)
    assert json.loads((tmp_path / "b/init_from.json").read_text())["loaded"]


def test_corrupted_missing_or_nan_sources_are_refused(run_a, tmp_path):
    import shutil

    copy = tmp_path / "a_copy"
    shutil.copytree(run_a, copy)
    _flip_byte_in_tensor_data(latest_checkpoint(copy) / EMA_FILE)
    with pytest.raises(ValueError, match=r"ema.safetensors: corrupted: its SHA-256"):
        start_b(tmp_path, copy)
    with pytest.raises(FileNotFoundError, match=r"train.init_from: .*nope: no such checkpoint or run folder"):
        start_b(tmp_path, tmp_path / "nope")
    bad = ToyMethod()
    with torch.no_grad():
        bad.fc.bias.fill_(float("nan"))
    save_checkpoint(tmp_path / "nan", 2, bad, to_dict(toy_config(2)), {"optimizer": {}})  # saved with its checksums
    with pytest.raises(ValueError, match=r"weights hold NaN or infinity in 1 tensor\(s\), e.g. fc.bias"):
        start_b(tmp_path, tmp_path / "nan")
    with pytest.raises(ValueError, match="train.init_from: empty"):
        start_b(tmp_path, " ")


def test_resume_does_not_init_again(run_a, tmp_path, capsys):
    import shutil

    copy = tmp_path / "a_copy"
    shutil.copytree(run_a, copy)
    _, _, straight, _ = start_b(tmp_path / "straight", copy, steps=4, stop_at=None)
    _, _, first, cfg = start_b(tmp_path, copy, steps=4, stop_at=2)
    record = (tmp_path / "b/init_from.json").read_bytes()
    _flip_byte_in_tensor_data(latest_checkpoint(copy) / EMA_FILE)  # the source changes: not re-checked on resume
    capsys.readouterr()
    torch.manual_seed(5)
    rest = train(cfg, tmp_path / "b", ToyFrames(8), method=Target(), resume=True, progress=False)
    err = capsys.readouterr().err
    assert "not applied again on resume" in err and "loaded" not in err
    assert (tmp_path / "b/init_from.json").read_bytes() == record
    assert [s for s, _ in rest.losses] == [3, 4]
    a = dict(straight.losses)
    for s, v in first.losses + rest.losses:
        assert abs(v - a[s]) <= 1e-6, (s, v, a[s])


def test_group_names():
    assert group_names(["model.lidar.stem.0.weight", "adapter.weight", "model.lidar.stem.0.bias", "step"]) == [
        ("model.lidar", ["model.lidar.stem.0.weight", "model.lidar.stem.0.bias"]),
        ("adapter", ["adapter.weight"]),
        ("step", ["step"]),
    ]


# ------------------------------------------------------------------------------------------ real recipes
def tiny_net(**kw):
    from occkit.models.occnet import OccNetConfig

    base = dict(
        backbone="test_resnet",
        neck_channels=16,
        context_channels=8,
        depth_min=1.0,
        depth_max=9.0,
        depth_step=1.0,
        point_range=(-4.0, -4.0, -1.0, 4.0, 4.0, 1.4),
        voxel_size=0.4,
        lift_downsample=(2, 2, 2),
        encoder_widths=(16,),
        head="voxel",
    )
    base.update(kw)
    return OccNetConfig(**base)


def test_a_supervised_run_starts_other_recipes(tmp_path, capsys):
    from occkit.experiment import ExperimentConfig, build_method

    torch.manual_seed(0)
    src_cfg = ExperimentConfig(method="supervised", model=tiny_net())
    src = build_method(src_cfg)
    save_checkpoint(tmp_path / "sup", 1, src, to_dict(src_cfg), {})
    a = src.state_dict()
    off = dict(depth_weight=0.0, semantic_weight=0.0, feature_weight=0.0, logit_weight=0.0)
    for cfg in (
        ExperimentConfig(method="render_sup", model=tiny_net()),
        ExperimentConfig(method="radocc", model=tiny_net()),
        ExperimentConfig(method="supervised", model=tiny_net(modality="fusion")),
    ):
        if cfg.method == "radocc":
            for k, v in off.items():
                setattr(cfg.radocc, k, v)
        torch.manual_seed(1)
        method = build_method(cfg)
        source, report = init_from(method, tmp_path / "sup", to_dict(cfg)["model"])
        net = [k for k in method.state_dict() if k.startswith("model.")]
        after = method.state_dict()
        for k in report.loaded:
            assert torch.equal(after[k], a[k]), k
        if cfg.model.modality == "camera":  # the whole network carries over
            assert set(net) <= set(report.loaded) and not report.skipped and not report.unused, cfg.method
        else:  # fusion: the camera path loads; the LiDAR stem is new; the encoder's first conv widens
            assert any(k.startswith("model.backbone") for k in report.loaded)
            assert any(k.startswith("model.lidar") for k in report.new)
            assert [n for n, _, _ in report.skipped] and all(
                n.startswith("model.encoder") for n, _, _ in report.skipped
            )


# ------------------------------------------------------------------------------------------ CLI
def test_cli_init_from(synth_root, tmp_path, capsys):
    from test_engine_cli import TINY

    from occkit.cli import main

    common = ["synth-cpu", "--data", str(synth_root), "--no-progress", "--no-val", "--max-steps", "1", "--set", *TINY]
    assert main(["train", *common[:3], "--out", str(tmp_path / "a"), *common[3:]]) == 0
    capsys.readouterr()
    assert (
        main(["train", *common[:3], "--out", str(tmp_path / "b"), "--init-from", str(tmp_path / "a"), *common[3:]]) == 0
    )
    err = capsys.readouterr().err
    rec = json.loads((tmp_path / "b/init_from.json").read_text())
    assert rec["loaded"] and not rec["new"] and not rec["skipped"] and not rec["unused"]
    assert f"train.init_from: loaded {len(rec['loaded'])} of this method's {len(rec['loaded'])} tensors" in err
    assert json.loads((tmp_path / "b/config.json").read_text())["train"]["init_from"] == str(tmp_path / "a")
    assert load_trainer_state(latest_checkpoint(tmp_path / "b"))["step"] == 1
    rc = main(["train", *common[:3], "--out", str(tmp_path / "c"), "--init-from", str(tmp_path / "nope"), *common[3:]])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and err.startswith("occkit train: error: train.init_from:") and "\n" not in err


# ------------------------------------------------------------------------------------------ DDP
def _ddp_worker(rank: int, world: int, port: int, run_dir: str, cfg_dict: dict) -> None:
    import os

    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world)
    )
    torch.set_num_threads(1)
    from occkit.experiment import experiment_from_dict

    torch.manual_seed(
        rank
    )  # different initial weights per rank (DDP's wrap broadcasts rank 0's; the init runs before it on every rank)
    train(experiment_from_dict(cfg_dict), run_dir, ToyFrames(8), method=ToyMethod(), progress=False)


def test_ddp_loads_on_every_rank_and_rank_0_writes(run_a, tmp_path):
    import torch.multiprocessing as mp
    from test_engine_train import _free_port

    single = toy_config(3, batch_size=4, init_from=str(run_a))
    torch.manual_seed(0)
    train(single, tmp_path / "single", ToyFrames(8), method=ToyMethod(), progress=False)
    ddp = toy_config(3, batch_size=2, init_from=str(run_a))
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path / "ddp"), to_dict(ddp)), nprocs=2, join=True)
    wa = load_file(str(tmp_path / "single/checkpoints/step_000003/model.safetensors"))
    wb = load_file(str(tmp_path / "ddp/checkpoints/step_000003/model.safetensors"))
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5)
    assert json.loads((tmp_path / "ddp/init_from.json").read_text())["loaded"] == [
        "conv.weight",
        "conv.bias",
        "fc.weight",
        "fc.bias",
    ]


def test_a_standalone_weights_file_is_checked_against_its_record(run_a, tmp_path, capsys):
    """A weights file copied out of its run, with ``<name>.json`` beside it holding the run's
    ``model`` section (occkit's shipped weights), is checked as a run folder is; without the record
    it loads unchecked, and an unreadable record is refused naming it."""
    import json
    import shutil

    from occkit.engine.checkpoint import resolve_checkpoint

    ckpt = resolve_checkpoint(run_a)
    weights = tmp_path / "standalone.safetensors"
    shutil.copy(ckpt / MODEL_FILE, weights)
    model = json.loads((ckpt / "config.json").read_text())["model"]
    (tmp_path / "standalone.json").write_text(json.dumps({"steps": 4, "model": model}))
    cfg = toy_config(2, init_from=str(weights))
    cfg.model.num_classes = 20
    with pytest.raises(ConfigError, match="20 \\(model.num_classes\\)"):
        train(cfg, tmp_path / "b", ToyFrames(8), method=Target(), progress=False)
    start_b(tmp_path, weights)  # the same grid and classes: loads, and says it checked them
    assert "not checked" not in capsys.readouterr().err
    (tmp_path / "standalone.json").unlink()
    start_b(tmp_path / "again", weights)
    assert "not checked" in capsys.readouterr().err
    (tmp_path / "standalone.json").write_text("{not json")
    with pytest.raises(ValueError, match="standalone.json: cannot read the weights' record"):
        start_b(tmp_path / "third", weights)


def test_a_source_of_which_nothing_loads_is_refused_unless_asked(run_a, tmp_path):
    """Issue 64: an init_from that would load no tensor (another method's run, say) is refused
    before any step, naming the source; train.init_from_empty=true accepts it."""
    from occkit.engine.checkpoint import CONFIG_FILE, resolve_checkpoint

    model = json.loads((resolve_checkpoint(run_a) / CONFIG_FILE).read_text())["model"]
    other = nn.Sequential(nn.Linear(3, 3))  # no name in common with run A's
    with pytest.raises(ConfigError, match="train.init_from: .*no tensor of it fits this run.*init_from_empty=true"):
        init_from(other, run_a, model)
    _, report = init_from(other, run_a, model, allow_empty=True)
    assert report.loaded == [] and report.new == ["0.weight", "0.bias"]
    cfg = toy_config(2, init_from=str(run_a))
    cfg.train.init_from_empty = True
    assert cfg.train.init_from_empty is True
