"""`--overwrite` removes only what occkit wrote (issue 64), no traceback,
refusals before the work and naming the real cause, records that tell the truth, and a first
contact without stumbles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from occkit.cli import main
from occkit.outputs import FILES_RECORD, check_own_files, record_folder_files, staged_folder


def _err(capsys) -> str:
    return capsys.readouterr().err.strip()


TINY = ["--scenes", "1", "--frames", "1", "--image-size", "8", "16"]


# ------------------------------------------------- 1. --overwrite replaces only what occkit wrote
def test_own_files_are_recorded_and_a_foreign_or_changed_file_is_named(tmp_path):
    out = tmp_path / "W"
    with staged_folder(out, "synth") as tmp:
        (tmp / "a").mkdir()
        (tmp / "a" / "x.bin").write_bytes(b"123")
        (tmp / "top.json").write_text("{}")
    rec = json.loads((out / FILES_RECORD).read_text())
    assert set(rec) == {"a/x.bin", "top.json"} and rec["a/x.bin"]["size"] == 3
    check_own_files(out, "synth")  # all its own: nothing to say
    with pytest.raises(FileExistsError, match="not occkit generate|is not a file occkit generate"):
        check_own_files(out, "generate")
    (out / "a" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="a/notes.txt is not a file occkit synth wrote"):
        check_own_files(out, "synth")
    (out / "a" / "notes.txt").unlink()
    (out / "top.json").write_text('{"edited": true}')
    with pytest.raises(FileExistsError, match="top.json.*changed"):
        check_own_files(out, "synth")
    # a staged folder refuses to replace it then, and leaves both as they were
    with pytest.raises(FileExistsError, match="top.json"):
        with staged_folder(out, "synth") as tmp:
            (tmp / "new").write_text("1")
    assert (out / "top.json").read_text() == '{"edited": true}' and not (out / "new").exists()
    # an output from before the record: nothing can be told apart, so nothing is removed
    old = tmp_path / "old"
    old.mkdir()
    (old / "annotations.json").write_text("{}")
    with pytest.raises(FileExistsError, match="does not record its files"):
        check_own_files(old, "synth")
    # a caller's leftovers (occkit ablate's lock and logs) do not count
    (out / "top.json").write_text("{}")
    record_folder_files(out, "synth")
    (out / "synth.log").write_text("log")
    check_own_files(out, "synth")


def test_synth_overwrite_keeps_a_file_the_user_put_in_its_folder(tmp_path, capsys):
    out = tmp_path / "W"
    assert main(["synth", "--out", str(out), *TINY]) == 0
    assert main(["synth", "--out", str(out), *TINY, "--seed", "1", "--overwrite"]) == 0  # its own files only: replaced
    capsys.readouterr()
    (out / "my_notes.txt").write_text("notes")
    assert main(["synth", "--out", str(out), *TINY, "--seed", "2", "--overwrite"]) == 1
    err = _err(capsys)
    assert len(err.splitlines()) == 1 and "my_notes.txt is not a file occkit synth wrote" in err
    assert (out / "my_notes.txt").read_text() == "notes"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # refused before any generation


def test_predict_overwrite_keeps_a_file_the_user_put_in_its_folder(tmp_path, capsys):
    pred = tmp_path / "pred"
    pred.mkdir()
    (pred / "provenance.json").write_text(json.dumps({"tokens": ["t0", "t1"]}))  # a folder of an older occkit
    for t in ("t0", "t1"):
        (pred / f"{t}.npz").write_bytes(b"x")
    (pred / "summary.xlsx").write_bytes(b"mine")
    rc = main(
        [
            "predict",
            "--ckpt",
            str(tmp_path / "no_run"),
            "--data",
            str(tmp_path / "d"),
            "--out",
            str(pred),
            "--overwrite",
        ]
    )
    err = _err(capsys)
    assert rc == 1 and "summary.xlsx is not a file occkit predict wrote" in err and (pred / "summary.xlsx").exists()
    (pred / "summary.xlsx").unlink()  # only its own files left: it goes on (to the missing checkpoint)
    rc = main(
        [
            "predict",
            "--ckpt",
            str(tmp_path / "no_run"),
            "--data",
            str(tmp_path / "d"),
            "--out",
            str(pred),
            "--overwrite",
        ]
    )
    assert rc == 1 and "no_run" in _err(capsys)


def test_render_never_replaces_a_users_file_of_a_name_it_writes(tiny_occ3d_root, tmp_path, capsys, one_torch_thread):
    token = "0000" + "ab" * 14  # the first frame of the tiny dataset (tests/conftest.py)
    out = tmp_path / "r"
    out.mkdir()
    (out / "render.png").write_bytes(b"my picture")
    argv = ["render", "--data", str(tiny_occ3d_root), "--token", token, "--out", str(out), "--stride", "8"]
    assert main(argv) == 1
    err = _err(capsys)
    assert (
        "render.png: the file exists and occkit did not write it" in err
        and (out / "render.png").read_bytes() == b"my picture"
    )
    assert not list(out.glob("*.npy"))  # refused before anything was written
    (out / "render.png").unlink()
    for _ in range(2):  # its own files: rewritten
        assert main(argv) == 0
    assert (out / "render.png").stat().st_size > 1000


def test_picture_figures_are_rounded_for_reading():
    from occkit.viz.draw import readable

    assert (
        readable(35.9263) == "35.9"
        and readable(0.51234) == "0.512"
        and readable(1234.5) == "1234"
        and readable(0) == "0"
    )


# ------------------------------------------------------------------------------ 2. no traceback
def test_a_diverged_depth_distribution_gives_a_nan_loss_not_an_exception():
    import torch

    from occkit.losses.depth import depth_loss

    p = torch.full((1, 1, 4, 2, 2), 0.25)
    p[0, 0, 1, 0, 0] = float("nan")
    target = torch.zeros((1, 1, 2, 2), dtype=torch.long)
    assert torch.isnan(depth_loss(p, target, "bce"))  # the trainer then stops in one line naming the step
    assert torch.isfinite(depth_loss(torch.full((1, 1, 4, 2, 2), 0.25), target, "bce"))


# ----------------------------------------------------------- 3. refuse before the work what cannot work
@pytest.mark.parametrize("value", ["0", "-1", "100.5", "nan", "inf"])
def test_export_min_agreement_is_a_percentage(value, capsys):
    with pytest.raises(SystemExit) as e:
        main(["export", "--ckpt", "R", "--out", "m.onnx", "--min-agreement", value])
    assert e.value.code == 2 and "--min-agreement" in _err(capsys)


def test_eval_frustum_refuses_a_run_without_cameras(tmp_path, capsys, tiny_occ3d_root):
    from occkit.config import to_dict
    from occkit.experiment import load_experiment
    from occkit.fileio import write_json_atomic

    run = tmp_path / "lidar_run"
    write_json_atomic(run / "config.json", to_dict(load_experiment("lidar-teacher-occ3d")))
    (run / "model.safetensors").write_bytes(b"")
    pred = tmp_path / "pred"
    pred.mkdir()
    rc = main(
        [
            "eval",
            "--gt",
            str(tiny_occ3d_root),
            "--pred",
            str(pred),
            "--mask",
            "none",
            "--no-progress",
            "--frustum",
            str(run),
        ]
    )
    err = _err(capsys)
    assert rc == 1 and "lidar_run: the run uses no cameras" in err and len(err.splitlines()) == 1


def test_easyocc_on_data_without_a_pseudo_label_record_is_warned_about(tmp_path, capsys):
    data = tmp_path / "real"
    data.mkdir()
    with pytest.warns(UserWarning, match="holds no pseudolabel.json"):
        rc = main(
            [
                "train",
                "easyocc",
                "--data",
                str(data),
                "--out",
                str(tmp_path / "run"),
                "--max-steps",
                "1",
                "--no-progress",
            ]
        )
    assert rc == 1 and "annotations.json" in _err(capsys)


# --------------------------------------------------------------------------- 4. name the real cause
def test_a_run_of_one_dataset_format_on_data_of_another_says_they_differ(tmp_path, tiny_occ3d_root):
    from occkit.experiment import build_dataset, load_experiment

    cfg = load_experiment("kitti-mono")
    assert cfg.data.format == "semantickitti"
    with pytest.raises(
        ValueError, match="an Occ3D-nuScenes dataset, but the run is of a SemanticKITTI dataset.*differ"
    ):
        build_dataset(cfg, tiny_occ3d_root, "val", load_gt=False)


def test_a_spec_that_is_not_utf8_is_named_with_its_line(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_bytes(b"name: s\n# caf\xe9\n")
    assert main(["ablate", str(spec), "--out", str(tmp_path / "o"), "--dry-run"]) == 1
    assert f"{spec}:2: not UTF-8 text" in _err(capsys)


def test_ablate_cache_that_is_a_file_is_refused_at_once(tmp_path, capsys):
    (tmp_path / "cache").write_text("x")
    spec = Path(__file__).parents[1] / "src/occkit/configs/ablations/regime.yaml"
    assert (
        main(["ablate", str(spec), "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "cache"), "--dry-run"]) == 1
    )
    err = _err(capsys)
    assert "--cache" in err and "is a file" in err


def test_a_dataset_given_as_pred_is_named_as_one(tiny_occ3d_root, capsys):
    assert main(["eval", "--gt", str(tiny_occ3d_root), "--pred", str(tiny_occ3d_root), "--no-progress"]) == 1
    assert "--pred" in (err := _err(capsys)) and "a dataset (it holds annotations.json), not a prediction folder" in err


def test_an_unknown_camera_names_the_option(tiny_occ3d_root, tmp_path, capsys):
    rc = main(
        [
            "priors",
            "run",
            "--data",
            str(tiny_occ3d_root),
            "--out",
            str(tmp_path / "P"),
            "--prior",
            "oracle",
            "--cameras",
            "CAM_FRONT,CAM_X",
            "--no-progress",
        ]
    )
    err = _err(capsys)
    assert rc == 1 and "--cameras: CAM_X is not a camera of" in err and "CAM_BACK" in err


def test_generate_suggests_no_option_it_lacks(tmp_path):
    from occkit.output_folders import check_output_folder

    with staged_folder(tmp_path / "G", "generate") as tmp:
        (tmp / "x").write_text("1")
    with pytest.raises(FileExistsError) as e:
        check_output_folder(tmp_path / "G", "generate", overwrite_option=False)
    assert "--overwrite" not in str(e.value) and "choose a new folder" in str(e.value)


def test_a_symlink_loop_is_named_as_one(tmp_path, capsys):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    assert main(["synth", "--out", str(tmp_path / "a"), *TINY]) == 1
    err = _err(capsys)
    assert "a loop of symbolic links" in err and "Traceback" not in err


def test_synth_into_a_read_only_place_is_refused_before_it_generates(tmp_path, capsys, monkeypatch):
    import os

    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == tmp_path else real(p, mode, **kw))
    assert (
        main(["synth", "--out", str(tmp_path / "W"), *TINY]) == 1
    )  # root writes anywhere: the check is what is tested
    assert "is not writable" in _err(capsys) and list(tmp_path.iterdir()) == []


def test_a_set_that_changes_a_shape_at_predict_names_the_key(tmp_path):
    from occkit.config import to_dict
    from occkit.engine.checkpoint import save_checkpoint
    from occkit.experiment import build_method, load_checkpoint_method, load_experiment

    cfg = load_experiment("base-cpu")
    save_checkpoint(tmp_path / "run", 1, build_method(cfg), to_dict(cfg), {"step": 1})
    load_checkpoint_method(tmp_path / "run", "cpu")  # as saved: loads
    with pytest.raises(ValueError, match="--set model.neck_channels=8: changes the network of") as e:
        load_checkpoint_method(tmp_path / "run", "cpu", overrides=["model.neck_channels=8"])
    assert "\n" not in str(e.value)  # one line


# ------------------------------------------------------------------------------- 6. first contact
def test_a_stop_message_gives_the_command_as_typed(monkeypatch):
    import sys

    from occkit.commands.checks import typed_command

    monkeypatch.setattr(sys, "argv", [".venv/bin/occkit", "demo", "--out", "my demo"])
    assert typed_command() == ".venv/bin/occkit demo --out 'my demo'"
    monkeypatch.setattr(sys, "argv", ["/x/src/occkit/__main__.py", "demo"])
    assert typed_command().endswith("-m occkit demo")


def test_dry_run_says_a_stage_is_being_built_when_its_lock_is_held(tmp_path, capsys):
    import os

    from occkit.ablate.spec import parse_spec
    from occkit.ablate.stages import plan_stages

    spec = Path(__file__).parents[1] / "src/occkit/configs/ablations/regime.yaml"
    cache = tmp_path / "stages"
    world = plan_stages(parse_spec(spec), cache)["world"]
    (world.out / "part").mkdir(parents=True)  # half-built ...
    (world.folder / "stage.lock").write_text(json.dumps({"pid": os.getpid(), "start": None}))  # ... by a living process
    assert main(["ablate", str(spec), "--out", str(tmp_path / "o"), "--cache", str(cache), "--dry-run"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("world "))
    assert "building" in line and f"being built now by process {os.getpid()}" in line and "half-way" not in line


def test_resume_with_another_preset_names_the_difference(tmp_path):
    import sys

    import torch
    from torch import nn

    sys.path.insert(0, str(Path(__file__).parent / "engine"))
    from engine_toy import ToyFrames, ToyMethod
    from test_engine_train import toy_config

    from occkit.engine.train import train

    train(toy_config(4), tmp_path, ToyFrames(8), method=ToyMethod(), progress=False)
    other = ToyMethod()
    other.conv = nn.Conv2d(3, 8, 5, padding=2)  # another network ...
    cfg = toy_config(8)
    cfg.model.neck_channels = 7  # ... from another preset
    torch.manual_seed(0)
    with pytest.raises(
        ValueError, match=r"--resume .*another network than this run's config \(model.neck_channels: \d+ -> 7\)"
    ):
        train(cfg, tmp_path, ToyFrames(8), method=other, resume=True, progress=False)


def test_an_ablation_metric_no_arm_logs_is_refused_at_dry_run(tmp_path, capsys):
    from occkit.ablate.spec import logged_metrics
    from occkit.experiment import load_experiment

    assert {"miou", "geometry_iou"} <= logged_metrics(load_experiment("synth-cpu"))
    assert "ssc_miou" in logged_metrics(load_experiment("kitti-mono"))
    assert logged_metrics(load_experiment("occscene-cpu")) is None  # its own figures: only a run shows them
    spec = Path(__file__).parents[1] / "src/occkit/configs/ablations/regime.yaml"
    text = spec.read_text().replace("metric: miou", "metric: mIoU")
    bad = tmp_path / "regime.yaml"
    bad.write_text(text)
    assert main(["ablate", str(bad), "--out", str(tmp_path / "o"), "--dry-run"]) == 1
    err = _err(capsys)
    assert f"{bad}:29" in err and "metric: mIoU: arm" in err and "does not log it" in err and "miou" in err
    assert not (tmp_path / "o").exists() and not (tmp_path / "stages").exists()


# ----------------------------------------------------------------------- 5. records tell the truth
def test_the_demo_reports_seconds_per_step_over_the_whole_run_after_a_resume():
    from types import SimpleNamespace

    from occkit.commands.demo import seconds_per_trained_step

    resumed = SimpleNamespace(
        step=100, train_seconds=60.0, losses=[(s, 1.0) for s in range(90, 100)]
    )  # 10 steps this time
    assert seconds_per_trained_step(resumed) == pytest.approx(0.6)


def test_show_and_view_with_pred_alone_take_the_split_it_was_predicted_on(tiny_occ3d_root, tmp_path, capsys):
    from occkit.commands.checks import default_split
    from occkit.data.occ3d import Occ3DDataset

    pred = tmp_path / "pred"
    pred.mkdir()
    (pred / "provenance.json").write_text(json.dumps({"split": "val", "tokens": []}))
    assert (
        default_split(None, pred) == "val"
        and default_split("train", pred) == "train"
        and default_split(None, None) == "all"
    )
    assert main(["show", str(tiny_occ3d_root), "--pred", str(pred), "--list"]) == 0
    listed = {ln.strip() for ln in capsys.readouterr().out.splitlines() if ln.startswith("  ")}
    assert listed == {f.token for f in Occ3DDataset(tiny_occ3d_root, "val", load_gt=False).frames}
