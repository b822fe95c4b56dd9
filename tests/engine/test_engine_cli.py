"""``occkit train`` / ``occkit predict`` end to end on the tiny synthetic world (a small, fast model
config; the synthetic extras give the depth loss LiDAR targets and RayIoU its LiDAR origins)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from occkit.cli import main
from occkit.data.occ3d import Occ3DDataset
from occkit.engine.checkpoint import latest_checkpoint, load_trainer_state
from occkit.engine.logging import read_jsonl

#: synth-cpu made tiny: the output grid (200 x 200 x 16) stays, everything else shrinks.
TINY = [
    "data.image_aug.out_hw=[32, 64]",
    "data.workers=0",
    "model.neck_channels=16",
    "model.context_channels=8",
    "model.depth_step=4.0",
    "model.lift_downsample=[4, 4, 2]",
    "model.encoder_widths=[8, 16]",
    "supervised.lovasz_max_voxels=2000",
    "train.log_every=1",
    "train.ckpt_every=1",
    "train.tensorboard=false",
    "optim.warmup_steps=1",
]


def test_train_resume_predict_cli(synth_root, tmp_path, capsys):
    run, pred = tmp_path / "run", tmp_path / "pred"
    args = ["train", "synth-cpu", "--data", str(synth_root), "--out", str(run), "--no-progress", "--set", *TINY]
    assert main([*args, "--max-steps", "2"]) == 0
    assert load_trainer_state(latest_checkpoint(run))["step"] == 2
    assert main([*args, "--max-steps", "3"]) == 1  # a fresh run over it would overwrite its checkpoints
    assert "earlier run" in capsys.readouterr().err
    assert main([*args, "train.val_metrics=[miou,rayiou]", "--max-steps", "3", "--resume"]) == 0
    assert load_trainer_state(latest_checkpoint(run))["step"] == 3
    err = capsys.readouterr().err
    assert "resuming from" in err and "optim.max_steps: 2 -> 3" in err
    logs = read_jsonl(run / "train.jsonl")
    assert [r["step"] for r in logs] == [1, 2, 3] and all(np.isfinite(r["loss"]) for r in logs)
    vals = read_jsonl(run / "metrics.jsonl")
    assert [v["step"] for v in vals] == [2, 3] and vals[-1]["frames"] == 2 and vals[-1]["mask"] == "camera"
    assert "rayiou" not in vals[0] and 0.0 <= vals[-1]["rayiou"] <= 100.0
    assert [r["loss_depth"] > 0 for r in logs] == [True] * 3  # depth targets from the extras (the depth maps)
    assert (
        main(["predict", "--ckpt", str(run), "--data", str(synth_root), "--out", str(pred), "--no-progress", "--eval"])
        == 0
    )
    tokens = [f.token for f in Occ3DDataset(synth_root, "val").frames]
    assert sorted(p.stem for p in pred.glob("*.npz")) == sorted(tokens)
    with np.load(pred / f"{tokens[0]}.npz") as z:
        assert z.files == ["semantics"] and z["semantics"].dtype == np.uint8 and z["semantics"].shape == (200, 200, 16)
    assert "mIoU (camera mask)" in capsys.readouterr().out
    # --set: an inference setting changed for one prediction, recorded; unknown keys and shape changes named
    assert (
        main(
            [
                "predict",
                "--ckpt",
                str(run),
                "--data",
                str(synth_root),
                "--out",
                str(tmp_path / "set"),
                "--no-progress",
                "--set",
                "train.val_max_frames=1",
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "set" / "provenance.json").read_text())["set"] == ["train.val_max_frames=1"]
    capsys.readouterr()
    assert (
        main(
            [
                "predict",
                "--ckpt",
                str(run),
                "--data",
                str(synth_root),
                "--out",
                str(tmp_path / "bad"),
                "--no-progress",
                "--set",
                "model.bogus_key=1",
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "model.bogus_key" in err and "--set" in err and len(err.strip().splitlines()) == 1
    assert (
        main(
            [
                "predict",
                "--ckpt",
                str(run),
                "--data",
                str(synth_root),
                "--out",
                str(tmp_path / "bad"),
                "--no-progress",
                "--set",
                "model.num_classes=5",
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "internal error" not in err
    for norm in ("running", "frame"):  # the checkpoint's weights, normalised either way
        assert (
            main(
                [
                    "predict",
                    "--ckpt",
                    str(run),
                    "--data",
                    str(synth_root),
                    "--out",
                    str(tmp_path / norm),
                    "--no-progress",
                    "--image-norm",
                    norm,
                ]
            )
            == 0
        )
        assert len(list((tmp_path / norm).glob("*.npz"))) == len(tokens)
    # occkit geometry: p(occupied) = 1 - p(free) of the class logits, ranked against the truth of the camera mask
    capsys.readouterr()
    assert (
        main(
            [
                "geometry",
                "--ckpt",
                str(run),
                "--data",
                str(synth_root),
                "--max-frames",
                "2",
                "--out",
                str(tmp_path / "g.json"),
            ]
        )
        == 0
    )
    g = json.loads((tmp_path / "g.json").read_text())
    assert g["frames"] == 2 and g["mask"] == "camera" and g["method"] == "supervised" and g["threshold"] is None
    assert g["voxels"] > 0 and 0 < g["occupied_fraction"] < 100 and 0 <= g["geometry_ap"] <= 100
    assert 0 < g["geometry_iou_best"] <= 100 and 0 <= g["best_threshold"] <= 1
    assert "geometry AP" in capsys.readouterr().out
    assert main(["geometry", "--ckpt", str(run), "--data", str(synth_root), "--max-frames", "2", "--mask", "none"]) == 0
    assert f"{200 * 200 * 16 * 2} voxels" in capsys.readouterr().out


def test_cli_errors_name_the_problem(tiny_occ3d_root, tmp_path, capsys):
    rc = main(["train", "synth-cpu", "--data", str(tiny_occ3d_root), "--out", str(tmp_path), "--set", "optim.bogus=1"])
    assert rc == 1 and "optim.bogus" in capsys.readouterr().err
    rc = main(
        ["predict", "--ckpt", str(tmp_path / "nope"), "--data", str(tiny_occ3d_root), "--out", str(tmp_path / "p")]
    )
    assert rc == 1 and "nope" in capsys.readouterr().err
    rc = main(["geometry", "--ckpt", str(tmp_path / "nope"), "--data", str(tiny_occ3d_root)])
    err = capsys.readouterr().err
    assert rc == 1 and "nope" in err and len(err.strip().splitlines()) == 1
    rc = main(["train", "synth-cpu", "--data", str(tmp_path / "no_data"), "--out", str(tmp_path / "r")])
    assert rc == 1 and "annotations.json" in capsys.readouterr().err


def test_torchrun_two_cpu_processes(tiny_occ3d_root, tmp_path):
    """``torchrun -m occkit train`` (gloo): both ranks train, rank 0 alone writes."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists() and shutil.which("torchrun") is None:
        pytest.skip("torchrun not found next to the Python executable or on PATH")
    cmd = [
        str(torchrun if torchrun.exists() else shutil.which("torchrun")),
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "occkit",
        "train",
        "synth-cpu",
        "--data",
        str(tiny_occ3d_root),
        "--out",
        str(tmp_path / "run"),
        "--max-steps",
        "2",
        "--no-progress",
        "--set",
        *TINY,
        "train.threads=1",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("occkit train: 2 steps") == 1  # the summary comes from rank 0 only
    assert load_trainer_state(latest_checkpoint(tmp_path / "run"))["world_size"] == 2
    assert read_jsonl(tmp_path / "run" / "metrics.jsonl")[-1]["frames"] == 2  # val split shared, all-reduced


def test_the_earlier_module_entry_names_the_command_line():
    """``python -m occkit.engine.train ARGS`` (earlier versions' torchrun line) trains nothing and
    prints the line that does: the engine does not import the command line above it."""
    import subprocess
    import sys

    res = subprocess.run(
        [sys.executable, "-m", "occkit.engine.train", "synth-cpu", "--data", "D", "--out", "R"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 1
    assert "-m occkit train synth-cpu --data D --out R" in res.stderr


def test_only_rank_0_checks_and_marks_the_run_folder(tmp_path, monkeypatch):
    """Under torchrun every rank runs ``occkit train``; a rank other than 0 must not write the
    folder's record (its half-written temporary file made rank 0's check refuse the folder)."""
    import argparse

    from occkit.commands.train import _check_run_folder
    from occkit.outputs import OUTPUT_RECORD, read_output_record

    args = argparse.Namespace(data=str(tmp_path / "data"), init_from=None)
    monkeypatch.setenv("RANK", "1")
    args.out = str(tmp_path / "rank1")
    _check_run_folder(args)
    assert not (tmp_path / "rank1").exists()
    monkeypatch.setenv("RANK", "0")
    args.out = str(tmp_path / "rank0")
    _check_run_folder(args)
    assert read_output_record(tmp_path / "rank0")["command"] == "train"
    assert (tmp_path / "rank0" / OUTPUT_RECORD).is_file()
