"""A config section the method does not read is refused (issue 73), no run clobbers
another, and every value is checked where it enters."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from occkit.cli import main
from occkit.config import ConfigError
from occkit.experiment import load_experiment

sys.path.insert(0, str(Path(__file__).parent / "ablate"))
from ablate_helpers import tiny_spec, write  # noqa: E402


# ------------------------------------------------------------ a section the method does not read
def test_a_section_the_method_does_not_read_is_refused_on_the_command_line(capsys, tmp_path):
    with pytest.raises(ConfigError, match="--set radocc.depth_tau: section radocc is not read by method supervised"):
        load_experiment("synth-cpu", ["radocc.depth_tau=1"])
    load_experiment("synth-cpu", ["method=radocc", "radocc.depth_tau=1"])  # the method that reads it: fine
    assert (
        main(
            ["train", "synth-cpu", "--data", str(tmp_path), "--out", str(tmp_path / "run")]
            + ["--set", "radocc.depth_tau=1"]
        )
        == 1
    )
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "radocc.depth_tau" in err
    assert "which reads model, supervised, data, optim, train" in err


def test_a_section_the_method_does_not_read_is_refused_in_an_ablation_arm(tmp_path, capsys):
    spec = write(tmp_path, "spec.yaml", tiny_spec())
    out = tmp_path / "abl"
    args = ["ablate", str(spec), "--out", str(out), "--dry-run", "--set", "arms.a.set+=[radocc.depth_tau=5]"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "radocc.depth_tau: section radocc is not read by method supervised" in err and str(spec) in err


def test_a_section_the_run_does_not_read_is_refused_at_inference(tmp_path):
    from occkit.config import to_dict
    from occkit.experiment import load_checkpoint_method

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps(to_dict(load_experiment("synth-cpu"))))
    (ckpt / "model.safetensors").write_bytes(b"")  # refused before the weights are read
    with pytest.raises(ConfigError, match=r"config.json: --set radocc.depth_tau: section radocc is not read by"):
        load_checkpoint_method(ckpt, "cpu", overrides=["radocc.depth_tau=1"])


# ------------------------------------------------------------ no run clobbers another
def _dead_pid() -> int:
    p = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(p.stdout)


def _stale_lock(path: Path) -> None:
    """A lock left by a process that ended (killed with kill -9)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": _dead_pid(), "start": "0", "host": socket.gethostname()}))


def test_a_second_train_into_the_same_run_folder_is_refused_naming_the_first(tmp_path):
    from occkit.commands.train import TRAIN_LOCK
    from occkit.locks import FolderLock
    from occkit.outputs import mark_output

    run = tmp_path / "run"
    mark_output(run, "train")  # as the first occkit train has done, which now holds the lock
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("OCCKIT_DEBUG", None)
    with FolderLock(run / TRAIN_LOCK, "the first occkit train"):
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "occkit.cli",
                "train",
                "synth-cpu",
                "--data",
                str(tmp_path / "data"),
                "--out",
                str(run),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"occkit train: error: --out {run}: {run} is locked")
    assert f"by process {os.getpid()} (since " in lines[0] and "which still runs" in lines[0]


def test_a_stale_train_lock_is_taken_over_and_released(tmp_path, capsys):
    from occkit.commands.train import TRAIN_LOCK
    from occkit.outputs import mark_output

    run = tmp_path / "run"
    mark_output(run, "train")
    _stale_lock(run / TRAIN_LOCK)
    # taken over: the run goes on to its data (none here), then the lock is released
    assert main(["train", "synth-cpu", "--data", str(tmp_path / "nodata"), "--out", str(run)]) == 1
    err = capsys.readouterr().err
    assert "locked" not in err and "nodata" in err
    assert not (run / TRAIN_LOCK).exists()


def test_a_second_synth_into_the_same_out_is_refused_and_a_stale_lock_taken_over(tmp_path, capsys):
    from occkit.locks import output_lock

    out = tmp_path / "world"
    args = ["synth", "--out", str(out), "--scenes", "1", "--frames", "1", "--image-size", "32", "88"]
    lock = output_lock(out, "synth")
    try:
        assert main(args) == 1
    finally:
        lock.release()
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"--out {out}: {out} is locked by process {os.getpid()}" in err
    assert not out.exists() and not (tmp_path / ".world.partial").exists()
    _stale_lock(tmp_path / ".world.lock")
    assert main(args) == 0
    assert (out / "annotations.json").is_file() and not (tmp_path / ".world.lock").exists()


def test_a_second_export_to_the_same_file_is_refused_and_its_check_file_is_its_own(tmp_path, capsys):
    from occkit.commands.export import check_file_name
    from occkit.locks import output_lock

    out = tmp_path / "model.onnx"
    lock = output_lock(out, "export")
    try:
        assert main(["export", "--ckpt", str(tmp_path / "run"), "--out", str(out)]) == 1
    finally:
        lock.release()
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{out} is locked by process {os.getpid()}" in err
    assert f"process {os.getpid()} (occkit export, since " in err
    left = tmp_path / ".model.onnx.12345.check.tmp"  # of an export that was killed
    left.write_text("x")
    mine = check_file_name(out)
    assert mine.name == f".model.onnx.{os.getpid()}.check.tmp" and not left.exists()


# ------------------------------------------------------------ every value checked where it enters
@pytest.mark.parametrize(
    "override, message",
    [
        ("render_sup.depth_weight=-5", "render_sup.depth_weight must be >= 0 (a loss weight"),
        ("supervised.class_weights=[1.0,-2.0]", "supervised.class_weights must be >= 0"),
        ("optim.grad_clip=-1", "optim.grad_clip must be >= 0"),
        ("train.seed=-1", "train.seed must be >= 0"),
        ("train.max_minutes=-1", "train.max_minutes must be >= 0"),
        ("model.neck_channels=-8", "model.neck_channels must be >= 1"),
    ],
)
def test_an_out_of_range_value_is_refused_naming_its_key(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_experiment("synth-cpu", [f"method={'render_sup' if 'render_sup' in override else 'supervised'}", override])


def test_a_negative_channel_count_is_one_line_not_a_traceback(tmp_path, capsys):
    args = ["train", "synth-cpu", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--set"]
    assert main([*args, "model.neck_channels=-8"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "occkit train: error: model.neck_channels must be >= 1 (a number of channels), got -8"


def _annotations(root: Path, edit) -> tuple[Path, str]:
    """Edit the first frame's entry of ``root``'s annotations.json; returns (file, token)."""
    path = root / "annotations.json"
    ann = json.loads(path.read_text())
    scene = next(iter(ann["scene_infos"]))
    token = next(iter(ann["scene_infos"][scene]))
    edit(ann["scene_infos"][scene][token])
    path.write_text(json.dumps(ann))
    return path, token


@pytest.mark.parametrize(
    "case, edit, read, message",
    [
        (
            "ego_pose NaN",
            lambda e: e["ego_pose"]["translation"].__setitem__(0, float("nan")),
            lambda ds, t: ds.T_global_from_ego(t),
            "ego_pose.translation[0]: nan is not finite",
        ),
        (
            "lidar_sensor NaN",
            lambda e: e.__setitem__(
                "lidar_sensor", {"extrinsic": {"translation": [0.0, 0.0, float("nan")], "rotation": [1, 0, 0, 0]}}
            ),
            lambda ds, t: ds.T_ego_from_lidar(t),
            "lidar_sensor.extrinsic.translation[2]: nan is not finite",
        ),
        (
            "extrinsic 1e30",
            lambda e: e["camera_sensor"]["CAM_FRONT"]["extrinsic"].__setitem__("translation", [1e30, 0.0, 1.5]),
            lambda ds, t: ds.T_ego_from_cam(t, "CAM_FRONT"),
            "camera_sensor.CAM_FRONT.extrinsic.translation: [1e+30, 0.0, 1.5] lies more than 1000 m",
        ),
        (
            "rotation NaN",
            lambda e: e["camera_sensor"]["CAM_FRONT"]["extrinsic"]["rotation"].__setitem__(1, float("nan")),
            lambda ds, t: ds.T_ego_from_cam(t, "CAM_FRONT"),
            "camera_sensor.CAM_FRONT.extrinsic.rotation[1]: nan is not finite",
        ),
    ],
)
def test_a_bad_pose_is_named_with_the_file_and_token(tmp_path, case, edit, read, message):
    from conftest import write_tiny_occ3d

    from occkit.data.occ3d import Occ3DDataset

    root = write_tiny_occ3d(tmp_path / "data", scenes=1, frames=1, image_size=(8, 16))
    path, token = _annotations(root, edit)
    ds = Occ3DDataset(root, "all")
    with pytest.raises(ValueError) as e:
        read(ds, token)
    assert str(e.value).startswith(f"{path}: scene scene-0000, frame {token}") and message in str(e.value)


def test_a_16_bit_grey_camera_image_is_read_to_8_bits_not_white(tmp_path):
    from PIL import Image

    from occkit.data.occ3d import load_image

    grey = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)  # 8-bit 0, 1, 128, 255
    Image.fromarray(grey).save(tmp_path / "g16.png")
    img = load_image(tmp_path / "g16.png")
    assert img.dtype == np.uint8 and img.shape == (1, 4, 3)
    assert img[0, :, 0].tolist() == [0, 1, 128, 255] and (img == img[..., :1]).all()
    Image.fromarray(np.ones((2, 3), np.float32)).save(tmp_path / "f.tif")
    with pytest.raises(ValueError, match="f.tif: a F image .*camera images are 8- or 16-bit"):
        load_image(tmp_path / "f.tif")
