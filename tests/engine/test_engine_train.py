"""End-to-end engine tests on a toy method: the loss falls, resume == uninterrupted, DDP == one process."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from engine_toy import ToyFrames, ToyMethod  # noqa: E402

from occkit.config import to_dict  # noqa: E402
from occkit.engine.checkpoint import latest_checkpoint, load_trainer_state  # noqa: E402
from occkit.engine.config import OptimConfig, TrainConfig  # noqa: E402
from occkit.engine.logging import read_jsonl  # noqa: E402
from occkit.engine.train import train  # noqa: E402
from occkit.experiment import DataConfig, ExperimentConfig  # noqa: E402


def toy_config(max_steps: int, batch_size: int = 4, **train_kw) -> ExperimentConfig:
    cfg = ExperimentConfig(
        data=DataConfig(batch_size=batch_size, val_batch_size=3),
        optim=OptimConfig(lr=5e-3, warmup_steps=2, max_steps=max_steps, grad_clip=1.0, amp="none"),
        train=TrainConfig(device="cpu", log_every=2, val_every=0, ckpt_every=4, tensorboard=False, **train_kw),
    )
    cfg.model.num_classes = 18
    return cfg


def test_loss_falls_and_logs(tmp_path):
    cfg = toy_config(40)
    cfg.optim.lr, cfg.train.ckpt_every = 2e-2, 10
    res = train(cfg, tmp_path, ToyFrames(12), ToyFrames(6), method=ToyMethod(), progress=False)
    first = res.losses[0][1]
    last = sum(v for _, v in res.losses[-5:]) / 5
    assert res.step == 40 and len(res.losses) == 40
    assert last < 0.5 * first, (first, last)
    # validation at the end, written to metrics.jsonl; the toy learns its 3 patterns perfectly
    recs = read_jsonl(tmp_path / "metrics.jsonl")
    assert recs[-1]["step"] == 40 and recs[-1]["frames"] == 6 and recs[-1]["mask"] == "camera"
    assert recs[-1]["miou"] > 90.0
    logs = read_jsonl(tmp_path / "train.jsonl")
    assert [r["step"] for r in logs][:3] == [2, 4, 6] and {"ce", "l2", "loss", "lr", "grad_norm"} <= set(logs[0])
    assert (tmp_path / "config.json").is_file()
    ck = latest_checkpoint(tmp_path)
    assert ck is not None and ck.name == "step_000040"
    assert len(list((tmp_path / "checkpoints").glob("step_*"))) == cfg.train.keep_checkpoints


def test_each_validation_prints_its_line(tmp_path, capsys):
    from occkit.engine.logging import validation_summary

    cfg = toy_config(4)
    cfg.train.val_every = 2
    res = train(cfg, tmp_path, ToyFrames(8), ToyFrames(3), method=ToyMethod(), progress=False)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("step ")]
    assert [r["step"] for r in res.validations] == [2, 4]
    assert lines == [f"step {r['step']}: val mIoU {r['miou']:.2f}" for r in res.validations]
    assert lines[-1] == f"step 4: {validation_summary(res.validations[-1])}"
    # each record says the precision the run trains at (float32 'none' here: the toy config asks for no CPU bf16),
    # in metrics.jsonl too, where occkit ablate reads it
    assert [r["amp"] for r in res.validations] == ["none", "none"]
    logged = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["amp"] for r in logged] == ["none", "none"]


def test_resume_equals_uninterrupted(tmp_path):
    cfg = toy_config(10, batch_size=3)
    cfg.optim.ema, cfg.optim.ema_decay = True, 0.9
    torch.manual_seed(0)
    straight = train(cfg, tmp_path / "a", ToyFrames(10), method=ToyMethod(dropout=0.3), progress=False)
    torch.manual_seed(0)
    first = train(cfg, tmp_path / "b", ToyFrames(10), method=ToyMethod(dropout=0.3), stop_at=5, progress=False)
    assert first.losses == straight.losses[:5]
    assert first.step == 5 and load_trainer_state(latest_checkpoint(tmp_path / "b"))["step"] == 5
    # resume in a "new process": a fresh method with different initial weights
    torch.manual_seed(123)
    rest = train(cfg, tmp_path / "b", ToyFrames(10), method=ToyMethod(dropout=0.3), resume=True, progress=False)
    assert [s for s, _ in rest.losses] == list(range(6, 11))
    a = dict(straight.losses)
    for s, v in rest.losses:
        assert abs(v - a[s]) <= 1e-6, (s, v, a[s])
    for name in ("model.safetensors", "ema.safetensors"):
        wa = load_file(str(tmp_path / "a/checkpoints/step_000010" / name))
        wb = load_file(str(tmp_path / "b/checkpoints/step_000010" / name))
        for k in wa:
            torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=1e-6)


def test_resume_with_a_longer_run_follows_the_new_schedule(tmp_path, capsys):
    """Training on past the old end (``--resume`` with a larger ``optim.max_steps``): the cosine spans
    the new length from the step reached, as a run of that length would have it, and the change is
    said; the checkpoint's own schedule would sit at its floor."""
    from occkit.engine.optim import WarmupCosine

    cfg = toy_config(6)
    train(cfg, tmp_path, ToyFrames(8), method=ToyMethod(), progress=False)
    longer = toy_config(12)
    res = train(longer, tmp_path, ToyFrames(8), method=ToyMethod(), resume=True, progress=False)
    assert res.step == 12
    assert "max_steps 6 -> 12" in capsys.readouterr().err
    rows = [r for r in read_jsonl(tmp_path / "train.jsonl") if r["step"] > 6]
    sched = WarmupCosine(2, 12, longer.optim.min_lr_ratio)
    for r in rows:  # the lr logged after step s is the one the next step uses: base * factor(s)
        assert r["lr"] == pytest.approx(5e-3 * sched(r["step"]), rel=1e-6), r
    floor = 5e-3 * longer.optim.min_lr_ratio
    assert rows and all(r["lr"] > 1.5 * floor for r in rows if r["step"] < 11)


def test_resume_without_checkpoint_starts_fresh(tmp_path, capsys):
    res = train(toy_config(2), tmp_path, ToyFrames(8), method=ToyMethod(), resume=True, progress=False)
    assert res.step == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_fresh_run_refuses_a_folder_with_checkpoints(tmp_path):
    train(toy_config(2), tmp_path, ToyFrames(8), method=ToyMethod(), progress=False)
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "checkpoints").glob("step_*/*")}
    with pytest.raises(FileExistsError, match=r"earlier run.*step_000002.*--resume"):
        train(toy_config(2), tmp_path, ToyFrames(8), method=ToyMethod(), progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "checkpoints").glob("step_*/*")} == before
    assert train(toy_config(4), tmp_path, ToyFrames(8), method=ToyMethod(), resume=True, progress=False).step == 4


def test_workers_give_the_same_batches(tmp_path):
    cfg = toy_config(4)
    torch.manual_seed(0)
    a = train(cfg, tmp_path / "a", ToyFrames(8), method=ToyMethod(), progress=False)
    cfg.data.workers = 1
    torch.manual_seed(0)
    b = train(cfg, tmp_path / "b", ToyFrames(8), method=ToyMethod(), progress=False)
    assert [round(v, 6) for _, v in a.losses] == [round(v, 6) for _, v in b.losses]


def test_non_finite_loss_raises(tmp_path):
    class Bad(ToyMethod):
        def training_step(self, batch):
            return {"ce": torch.tensor(float("nan"), requires_grad=True)}

    with pytest.raises(FloatingPointError, match="step 0: the loss is not finite"):
        train(toy_config(2), tmp_path, ToyFrames(8), method=Bad(), progress=False)


# ------------------------------------------------------------------------------------------ DDP
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, run_dir: str, cfg_dict: dict) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world)
    )
    torch.set_num_threads(1)
    from occkit.experiment import experiment_from_dict

    cfg = experiment_from_dict(cfg_dict)
    torch.manual_seed(0)
    res = train(cfg, run_dir, ToyFrames(12), ToyFrames(6), method=ToyMethod(), progress=False)
    torch.save({"losses": res.losses, "val": res.validations}, Path(run_dir) / f"rank{rank}.pt")


def test_ddp_two_cpu_processes_match_one_process(tmp_path):
    steps = 5
    single = toy_config(steps, batch_size=4)
    torch.manual_seed(0)
    ref = train(single, tmp_path / "single", ToyFrames(12), ToyFrames(6), method=ToyMethod(), progress=False)
    ddp = toy_config(steps, batch_size=2)  # 2 processes x 2 = the same global batch of 4
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path / "ddp"), to_dict(ddp)), nprocs=2, join=True)
    wa = load_file(str(tmp_path / f"single/checkpoints/step_{steps:06d}/model.safetensors"))
    wb = load_file(str(tmp_path / f"ddp/checkpoints/step_{steps:06d}/model.safetensors"))
    for k in wa:
        if wa[k].is_floating_point():
            torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5)
    torch.manual_seed(0)
    init = ToyMethod().state_dict()
    moved = max(float((wa[k].float() - init[k].float()).abs().max()) for k in wa if wa[k].is_floating_point())
    assert moved > 1e-3  # the weights did train
    # the two ranks' mean loss equals the single process's loss at every step
    r0, r1 = (torch.load(tmp_path / f"ddp/rank{r}.pt", weights_only=False) for r in (0, 1))
    for (s, l0), (_, l1), (_, l) in zip(r0["losses"], r1["losses"], ref.losses):
        assert abs((l0 + l1) / 2 - l) < 1e-4, (s, l0, l1, l)
    # validation split across ranks, all-reduced: the same frames and scores as one process
    assert r0["val"][-1]["frames"] == 6 == ref.validations[-1]["frames"]
    assert abs(r0["val"][-1]["miou"] - ref.validations[-1]["miou"]) < 1e-3


def test_time_budget_stops_and_decays(tmp_path):
    cfg = toy_config(10**6)
    cfg.optim.schedule, cfg.train.max_minutes, cfg.train.ckpt_every = "time", 0.03, 0
    torch.manual_seed(0)
    res = train(cfg, tmp_path, ToyFrames(8), method=ToyMethod(), progress=False)
    assert 3 <= res.step < 10**6 and res.train_seconds >= 1.8
    lrs = [r["lr"] for r in read_jsonl(tmp_path / "train.jsonl")]
    assert lrs[-1] == pytest.approx(cfg.optim.min_lr_ratio * cfg.optim.lr)  # the cosine ended with the budget
    assert latest_checkpoint(tmp_path).name == f"step_{res.step:06d}"
    cfg.train.max_minutes = 0
    with pytest.raises(ValueError, match="max_minutes"):
        train(cfg, tmp_path / "b", ToyFrames(8), method=ToyMethod(), progress=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (mixed precision paths)")
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_on_cuda(tmp_path, amp):
    # 40 steps, as test_loss_falls_and_logs: at 30 the toy's mIoU is 82.25 in float32 on the CPU and on CUDA, and in
    # bf16 and fp16 alike (an H200, 2026-11-29); at 40 it is 95.1 in all four
    cfg = toy_config(40)
    cfg.optim.lr, cfg.optim.amp, cfg.train.device, cfg.train.ckpt_every = 2e-2, amp, "cuda", 0
    torch.manual_seed(0)
    res = train(cfg, tmp_path, ToyFrames(12), ToyFrames(6), method=ToyMethod(), progress=False)
    assert sum(v for _, v in res.losses[-5:]) / 5 < 0.5 * res.losses[0][1]
    assert res.validations[-1]["miou"] > 90.0
    if amp == "fp16":
        assert load_trainer_state(latest_checkpoint(tmp_path))["scaler"]  # GradScaler state saved
