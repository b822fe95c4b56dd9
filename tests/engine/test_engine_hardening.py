"""Holes a crash or a damaged file used to leave: checksums, NaN states, half-written
checkpoints, duplicate log records after a resume, file permissions."""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).parent))
from engine_toy import ToyFrames, ToyMethod  # noqa: E402
from test_engine_train import toy_config  # noqa: E402

from occkit.engine.checkpoint import (  # noqa: E402
    CHECKSUM_FILE,
    MODEL_FILE,
    TRAINER_FILE,
    latest_checkpoint,
    load_trainer_state,
    load_weights,
    remove_partial_checkpoints,
    save_checkpoint,
)
from occkit.engine.logging import read_jsonl  # noqa: E402
from occkit.engine.train import train  # noqa: E402


def _flip_byte_in_tensor_data(path: Path) -> None:
    data = bytearray(path.read_bytes())
    header = int.from_bytes(data[:8], "little")
    data[8 + header + 5] ^= 0x40  # a byte of the first tensor's data: the header stays intact
    path.write_bytes(bytes(data))


def test_corrupted_tensor_data_is_refused_naming_the_file(tmp_path):
    ck = save_checkpoint(tmp_path, 3, ToyMethod(), {"a": 1}, {"optimizer": {}})
    assert set(json.loads((ck / CHECKSUM_FILE).read_text())) == {MODEL_FILE, "config.json", TRAINER_FILE}
    load_weights(ToyMethod(), ck / MODEL_FILE)  # intact: loads
    _flip_byte_in_tensor_data(ck / MODEL_FILE)
    load_file(str(ck / MODEL_FILE))  # safetensors alone sees nothing wrong
    with pytest.raises(ValueError, match=rf"{MODEL_FILE}: corrupted: its SHA-256"):
        load_weights(ToyMethod(), ck / MODEL_FILE)


def test_corrupted_trainer_state_is_refused(tmp_path):
    ck = save_checkpoint(tmp_path, 3, ToyMethod(), {"a": 1}, {"optimizer": {}})
    data = bytearray((ck / TRAINER_FILE).read_bytes())
    data[-30] ^= 0x01
    (ck / TRAINER_FILE).write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"{TRAINER_FILE}: corrupted"):
        load_trainer_state(ck)


def test_resume_on_a_corrupted_checkpoint_stops_before_training(tmp_path):
    cfg = toy_config(8)
    train(cfg, tmp_path, ToyFrames(8), method=ToyMethod(), stop_at=4, progress=False)
    _flip_byte_in_tensor_data(latest_checkpoint(tmp_path) / MODEL_FILE)
    with pytest.raises(ValueError, match="step_000004/model.safetensors: corrupted"):
        train(cfg, tmp_path, ToyFrames(8), method=ToyMethod(), resume=True, progress=False)


def test_resume_on_nan_weights_stops_with_a_clear_error(tmp_path):
    cfg = toy_config(8)
    train(cfg, tmp_path, ToyFrames(8), method=ToyMethod(), stop_at=4, progress=False)
    ck = latest_checkpoint(tmp_path)
    weights = load_file(str(ck / MODEL_FILE))
    name = next(iter(weights))
    weights[name] = torch.full_like(weights[name], float("nan"))
    save_file(weights, str(ck / MODEL_FILE))
    (ck / CHECKSUM_FILE).unlink()  # a NaN state saved as such (no checksum to catch it)
    with pytest.raises(
        ValueError, match=rf"model.safetensors: weights hold NaN or infinity in 1 tensor\(s\), e.g. {name}"
    ):
        train(cfg, tmp_path, ToyFrames(8), method=ToyMethod(), resume=True, progress=False)


def test_half_written_checkpoint_folders_are_removed_at_start_and_resume(tmp_path):
    cfg = toy_config(8)
    train(cfg, tmp_path, ToyFrames(8), method=ToyMethod(), stop_at=4, progress=False)
    root = tmp_path / "checkpoints"
    tmp = root / ".step_000008.abc123.tmp"  # a save killed midway
    tmp.mkdir()
    (tmp / MODEL_FILE).write_bytes(b"x" * 100)
    old = root / ".step_000004.old"  # killed between the two renames of a re-save: step_000004 is there
    shutil.copytree(root / "step_000004", old)
    train(cfg, tmp_path, ToyFrames(8), method=ToyMethod(), resume=True, progress=False)
    assert not tmp.exists() and not old.exists()
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step_000004", "step_000008"]


def test_a_re_saved_step_lost_between_renames_is_restored(tmp_path):
    ck = save_checkpoint(tmp_path, 2, ToyMethod(), {"a": 1}, {"optimizer": {}})
    os.replace(ck, ck.parent / ".step_000002.old")
    assert remove_partial_checkpoints(tmp_path) == []
    assert latest_checkpoint(tmp_path) == ck


def test_resume_drops_the_log_records_of_the_redone_steps(tmp_path):
    cfg = toy_config(12)
    cfg.train.ckpt_every, cfg.train.val_every = 4, 2
    train(cfg, tmp_path, ToyFrames(8), ToyFrames(3), method=ToyMethod(), stop_at=6, progress=False)
    # a crash after step 6: the checkpoint is at step 4, the logs go to 6
    shutil.rmtree(tmp_path / "checkpoints" / "step_000006")
    (tmp_path / "checkpoints" / "latest").write_text("step_000004\n")
    assert [r["step"] for r in read_jsonl(tmp_path / "train.jsonl")] == [2, 4, 6]
    train(cfg, tmp_path, ToyFrames(8), ToyFrames(3), method=ToyMethod(), resume=True, progress=False)
    for name in ("train.jsonl", "metrics.jsonl"):
        steps = [r["step"] for r in read_jsonl(tmp_path / name)]
        assert steps == [2, 4, 6, 8, 10, 12], (name, steps)


def test_resume_purges_tensorboard_past_the_resumed_step(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = toy_config(8)
    cfg.train.tensorboard, cfg.train.ckpt_every = True, 4
    train(cfg, tmp_path, ToyFrames(8), method=ToyMethod(), stop_at=6, progress=False)
    shutil.rmtree(tmp_path / "checkpoints" / "step_000006")
    (tmp_path / "checkpoints" / "latest").write_text("step_000004\n")
    train(cfg, tmp_path, ToyFrames(8), method=ToyMethod(), resume=True, progress=False)
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    steps = [e.step for e in acc.Scalars("train/loss")]
    assert steps == [2, 4, 6, 8], steps


def test_checkpoint_files_get_the_permissions_of_open(tmp_path):
    mask = os.umask(0o022)
    try:
        ck = save_checkpoint(tmp_path, 1, ToyMethod(), {"a": 1}, {"optimizer": {}})
    finally:
        os.umask(mask)
    assert stat.S_IMODE(ck.stat().st_mode) == 0o755
    assert {stat.S_IMODE(f.stat().st_mode) for f in ck.iterdir()} == {0o644}
