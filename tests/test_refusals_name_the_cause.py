"""Every refusal names the real file and cause (issue 79): cases whose message pointed elsewhere (a
class map that is not UTF-8, a duplicate YAML key, --from on another layout, a dangling link as
--out, an empty path read as ".", an option before the command, a seed past what the generators take,
--resume of a finished run, a report piped into ``head``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from occkit.cli import main


def _last_line(capsys) -> str:
    return capsys.readouterr().err.strip().splitlines()[-1]


def _convert(data, out, *extra) -> list[str]:
    return ["convert", "--data", str(data), "--out", str(out), *extra]


def test_a_class_map_that_is_not_utf8_names_the_file(tiny_occ3d_root, tmp_path, capsys):
    cmap = tmp_path / "latin1.yaml"
    cmap.write_bytes(b"from: occ3d\nto: surroundocc\n# caf\xe9 \xff\n")
    assert main(_convert(tiny_occ3d_root, tmp_path / "o", "--to", "surroundocc", "--class-map", str(cmap))) == 1
    err = _last_line(capsys)  # was: 'utf-8' codec can't decode byte 0xe9 ..., no file named
    assert f"{cmap}:3: not UTF-8 text (byte 0xe9 at offset 33); save the YAML file as UTF-8" in err, err


def test_a_duplicate_yaml_key_is_named_as_such(tiny_occ3d_root, tmp_path, capsys):
    cmap = tmp_path / "twice.yaml"
    cmap.write_text(
        "from: occ3d\nto: surroundocc\ncommon:\n  car: {from: [car], to: [car]}\n  car: {from: [bus], to: [bus]}\n"
    )
    assert main(_convert(tiny_occ3d_root, tmp_path / "o", "--to", "surroundocc", "--class-map", str(cmap))) == 1
    err = _last_line(capsys)  # was: reported as a class the map does not map
    assert f"{cmap}: invalid YAML (line 5, column 3: key 'car' given twice in one mapping (first on line 4))" in err


def test_from_another_layout_says_the_folder_is_not_of_that_format(tiny_occ3d_root, tmp_path, capsys):
    assert main(_convert(tiny_occ3d_root, tmp_path / "o", "--to", "occ3d", "--from", "surroundocc")) == 1
    err = _last_line(capsys)  # was: a file of the SurroundOcc layout missing
    assert f"--from surroundocc: {tiny_occ3d_root} is not a SurroundOcc" in err and "it looks like occ3d" in err, err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", ["synth", "convert"])
def test_a_dangling_link_as_out_is_refused_before_any_work(tiny_occ3d_root, tmp_path, capsys, command):
    out = tmp_path / "link"
    out.symlink_to(tmp_path / "nowhere")
    argv = ["synth", "--out", str(out), "--scenes", "1", "--frames", "1", "--image-size", "32", "64"]
    if command == "convert":
        argv = _convert(tiny_occ3d_root, out, "--to", "occ3d")
    assert main(argv) == 1
    err = _last_line(capsys)  # was: "File exists" after generating everything
    assert f"--out {out}: a symbolic link to {tmp_path / 'nowhere'}, which does not exist" in err, err
    assert not (tmp_path / "nowhere").exists() and not list(tmp_path.glob(".link*"))


@pytest.mark.parametrize(
    "argv, option",
    [(["synth", "--out", ""], "--out"), (["eval", "--gt", "g", "--pred", "p", "--json", ""], "--json")],
)
def test_an_empty_path_is_refused_not_read_as_this_folder(argv, option, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert _last_line(capsys).endswith(
        f"argument {option}: an empty path; give a file's or a folder's path (. for this folder)"
    )


def test_an_option_before_the_command_is_said_so(capsys):
    assert main(["--out", "X", "synth", "--scenes", "1"]) == 2  # was: argument COMMAND: invalid choice: 'X'
    assert _last_line(capsys) == (
        "occkit: error: --out is an option of occkit synth and goes after the command: occkit synth --out X --scenes 1"
    )


def test_a_seed_past_what_the_generators_take_is_refused_before_any_folder(tmp_path, capsys):
    out = tmp_path / "w"
    with pytest.raises(SystemExit) as e:
        main(["synth", "--out", str(out), "--seed", "99999999999999999999"])
    assert e.value.code == 2  # was: "Overflow when unpacking long long", a .partial folder left
    assert "argument --seed: expected an integer in [0, 4294967295] (a seed), got 99999999999999999999" in _last_line(
        capsys
    )
    assert not list(tmp_path.iterdir())


def test_resuming_a_finished_run_says_it_is_finished(synth_root, tmp_path, capsys):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "engine"))
    from test_engine_cli import TINY

    run = tmp_path / "run"
    argv = ["train", "synth-cpu", "--data", str(synth_root), "--out", str(run), "--no-progress", "--no-val"]
    argv += ["--max-steps", "1", "--set", *TINY]
    assert main(argv) == 0
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 0
    out = capsys.readouterr().out.strip()  # was: "occkit train: 1 steps (0.0 min of training), checkpoint None"
    assert "the run is already trained to step 1 (optim.max_steps 1); nothing to do" in out, out
    assert "step_000001" in out and "checkpoint None" not in out


def test_convert_json_into_a_closed_pipe_is_a_success(tiny_occ3d_root, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("OCCKIT_DEBUG", None)
    cmd = [sys.executable, "-m", "occkit.cli", *_convert(tiny_occ3d_root, tmp_path / "o", "--to", "occ3d", "--json")]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    p.stdout.readline()  # `| head -1`: one line read, then the pipe closed
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=300) == 0, err  # was: "Broken pipe", exit 1, after a complete conversion
    assert "Broken pipe" not in err and "Traceback" not in err
    assert json.loads((tmp_path / "o" / "convert_report.json").read_text())["frames"] == 4


def test_a_split_of_splits_json_naming_missing_sequences_names_splits_json(tmp_path):
    from occkit.data.semantickitti import SemanticKITTIDataset

    (tmp_path / "sequences" / "00" / "voxels").mkdir(parents=True)
    (tmp_path / "splits.json").write_text(json.dumps({"train": ["00", "05"], "val": ["00"]}))
    with pytest.raises(ValueError, match=r"splits\.json: split 'train' names sequence\(s\) 05, which .*sequences does"):
        SemanticKITTIDataset(tmp_path, "train")  # was: sequence 05 dropped in silence
    with pytest.raises(FileNotFoundError, match=r"00/calib\.txt"):  # its sequences are there: on to their files
        SemanticKITTIDataset(tmp_path, "val")


def test_a_kitti360_splits_json_naming_missing_sequences_names_splits_json(tmp_path):
    from occkit.data.kitti360 import Kitti360Dataset

    seq_root = tmp_path / "data_2d_raw"
    (seq_root / "2013_05_28_drive_0000_sync").mkdir(parents=True)
    (tmp_path / "splits.json").write_text(json.dumps({"val": ["2013_05_28_drive_0000_sync", "gone"]}))
    with pytest.raises(ValueError, match=r"splits\.json: split 'val' names sequence\(s\) gone, which "):
        Kitti360Dataset(tmp_path, "val")


def test_a_set_camera_a_fixed_camera_format_lacks_is_refused(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from occkit.data.nyu import NYU_FILE_SHAPE, write_bin, write_depth_png

    root = tmp_path / "nyu"
    (root / "NYUtrain").mkdir(parents=True)
    write_bin(root / "NYUtrain" / "NYU0001_0000.bin", np.zeros(3), np.eye(4), np.zeros(NYU_FILE_SHAPE, np.uint8))
    Image.fromarray(np.full((48, 64, 3), 128, np.uint8)).save(root / "NYUtrain" / "NYU0001_0000_color.jpg")
    write_depth_png(root / "NYUtrain" / "NYU0001_0000.png", np.full((48, 64), 2.0, np.float32))
    argv = ["train", "nyu-mono", "--data", str(root), "--out", str(tmp_path / "run"), "--no-progress"]
    assert main([*argv, "--set", "data.cameras=[CAM_FRONT]"]) == 1  # was: trained, recording CAM_FRONT
    err = _last_line(capsys)
    want = "--set data.cameras=[CAM_FRONT]: CAM_FRONT is not a camera of NYUv2 (format nyu), whose frames have kinect"
    assert want in err, err
    assert not (tmp_path / "run" / "checkpoints").exists()
    import argparse

    from occkit.commands.train import _check_set_cameras
    from occkit.experiment import load_experiment

    ok = argparse.Namespace(set=["data.cameras=[kinect]"], data=root)
    _check_set_cameras(ok, load_experiment("nyu-mono", ok.set))  # its own camera: accepted
