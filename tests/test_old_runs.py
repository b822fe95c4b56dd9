"""Runs written by earlier occkit keep working: they load, resume, predict, and start other runs.

``fixtures/run_2026-11-26`` is a run folder written by ``occkit train`` at commit 49183db
(2026-11-26), before methods registered themselves: its ``config.json`` holds every method's
section. It is a 2-step ``synth-cpu`` run on a tiny backbone (``test_efficientnet``, made by::

    occkit train synth-cpu --data WORLD --out RUN --set model.backbone=test_efficientnet model.neck_channels=8
      model.context_channels=8 model.encoder_widths=[8] model.encoder_blocks=1 model.lift_downsample=[4,4,2]
      optim.max_steps=2 optim.warmup_steps=1 optim.amp=none train.device=cpu train.threads=1 train.ckpt_every=2
      train.val_every=2 train.tensorboard=false train.log_every=1 data.image_aug.out_hw=[32,96]

on ``occkit synth --scenes 3 --frames 2 --image-size 64 176 --seed 0 --val-fraction 0.34``).
``fixtures/run_2026-11-26.json`` holds what that code observed from it on the ``synth_root``
world (``python tests/test_old_runs.py --write``): the predictions' label counts, the loss of a
resumed third step, the first loss of a run started from it (``init_from``). Today's code must
observe the same.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
RUN = FIXTURES / "run_2026-11-26"
RECORD = FIXTURES / "run_2026-11-26.json"
SETS = [
    "train.device=cpu",
    "train.threads=1",
    "train.val_every=0",
    "train.tensorboard=false",
    "train.log_every=1",
    "optim.amp=none",
]


def observe(world: Path, work: Path) -> dict:
    """What the fixture run gives on ``world``: predictions, a resumed step, a run started from it."""
    import numpy as np
    import torch

    from occkit.cli import main
    from occkit.engine.logging import read_jsonl

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out: dict = {}
        pred = work / "pred"
        assert (
            main(
                [
                    "predict",
                    "--ckpt",
                    str(RUN),
                    "--data",
                    str(world),
                    "--out",
                    str(pred),
                    "--device",
                    "cpu",
                    "--no-progress",
                ]
            )
            == 0
        )
        counts = {}
        for f in sorted(pred.rglob("*.npz")):
            with np.load(f) as z:
                counts[f.stem] = np.bincount(z["semantics"].ravel(), minlength=18).tolist()
        out["predicted_label_counts"] = counts
        from occkit.data.sample import collate
        from occkit.experiment import build_dataset, load_checkpoint_method

        method, cfg, _, _ = load_checkpoint_method(RUN, "cpu")
        ds = build_dataset(cfg, world, "val")
        with torch.no_grad():
            logits = method.predict(collate([ds[0]])).double()
        out["logits_first_val_frame"] = [float(logits.sum()), float(logits.abs().sum())]
        resumed = work / "resumed"
        shutil.copytree(RUN, resumed)
        assert (
            main(
                [
                    "train",
                    str(resumed / "config.json"),
                    "--data",
                    str(world),
                    "--out",
                    str(resumed),
                    "--resume",
                    "--no-progress",
                    "--no-val",
                    "--set",
                    "optim.max_steps=3",
                    *SETS,
                ]
            )
            == 0
        )
        out["resumed_step_3"] = [r["loss"] for r in read_jsonl(resumed / "train.jsonl") if r["step"] == 3]
        started = work / "started"
        assert (
            main(
                [
                    "train",
                    str(resumed / "config.json"),
                    "--data",
                    str(world),
                    "--out",
                    str(started),
                    "--init-from",
                    str(RUN),
                    "--no-progress",
                    "--no-val",
                    "--set",
                    "optim.max_steps=1",
                    *SETS,
                ]
            )
            == 0
        )
        out["init_from_step_1"] = [r["loss"] for r in read_jsonl(started / "train.jsonl")]
        out["init_from_loaded"] = json.loads((started / "init_from.json").read_text())["loaded"]
        return out
    finally:
        torch.set_num_threads(n)


def test_a_run_written_before_the_registry_loads_resumes_predicts_and_starts_others(synth_root, tmp_path):
    from occkit.experiment import load_checkpoint_method

    method, cfg, folder, _ = load_checkpoint_method(RUN, "cpu")
    assert cfg.method == "supervised" and folder.name == "step_000002"
    expect = json.loads(RECORD.read_text())
    seen = observe(synth_root, tmp_path)
    assert seen["predicted_label_counts"] == expect["predicted_label_counts"]
    assert seen["init_from_loaded"] == expect["init_from_loaded"]
    for key in ("logits_first_val_frame", "resumed_step_3", "init_from_step_1"):
        assert seen[key] == pytest.approx(expect[key], rel=1e-5), key


if __name__ == "__main__":  # python tests/test_old_runs.py --write: record what today's code observes
    import tempfile

    from occkit.worlds.driving import SynthConfig, generate_dataset

    if "--write" not in sys.argv:
        sys.exit("usage: python tests/test_old_runs.py --write")
    with tempfile.TemporaryDirectory() as tmp:
        world = generate_dataset(Path(tmp) / "synth", SynthConfig(scenes=2, frames=2, seed=0, image_size=(64, 176)))
        RECORD.write_text(json.dumps(observe(world, Path(tmp)), indent=1) + "\n")
    print(f"wrote {RECORD}", file=sys.stderr)


def test_the_free_index_keys_of_a_run_written_before_0_2_0_read_as_free():
    """The free class's config key was ``free_index`` in each method section before 0.2.0: the
    fixture run's config loads with it as ``free``, another method's section included."""
    from occkit.experiment import experiment_from_dict, upgrade_config_dict

    data = json.loads((RUN / "config.json").read_text())
    assert data["supervised"]["free_index"] == 17
    cfg = experiment_from_dict(data)
    assert cfg.supervised.free == 17
    up = upgrade_config_dict({"method": "radocc", "radocc": {"free_index": 0}, "supervised": {"free_index": 0}})
    assert up["radocc"] == {"free": 0} and up["supervised"] == {"free": 0}
    assert experiment_from_dict(up).radocc.free == 0
