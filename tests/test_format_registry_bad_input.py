"""The dataset-format registry (class maps, ``occkit convert``, the layouts'
readers, info files, ``occkit stats``) and the indoor world, probed with bad input; each error is one
line naming the file and the problem, and a resumed conversion keeps only what is intact."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from occkit.cli import main

COARSE = Path(__file__).parents[1] / "src" / "occkit" / "configs" / "classmaps" / "occ3d-coarse.yaml"


def _err(capsys) -> str:
    return capsys.readouterr().err.strip()


# ------------------------------------------------------------ a file that is no NumPy file at all
@pytest.mark.parametrize("content", [b"", b"label,x,y\n1,2,3\n"])
def test_a_foreign_file_read_as_npy_or_npz_is_said_not_to_be_one(tmp_path, content):
    """NumPy reads any file not starting with its magic as a pickle and advises allow_pickle: never the cure."""
    from occkit.data.kitti360 import read_preprocessed
    from occkit.data.lidar_frame import load_npy
    from occkit.fileio import load_npz

    for name, read in (
        ("a.npz", load_npz),
        ("b.npy", lambda p: load_npy(p, "label")),
        ("000000_1_1.npy", read_preprocessed),  # KITTI-360's: an empty one was an EOFError traceback
    ):
        p = tmp_path / name
        p.write_bytes(content)
        with pytest.raises(ValueError) as e:
            read(p)
        msg = str(e.value)
        assert msg.startswith(f"{p}: not a {p.suffix} file") and "\n" not in msg, msg
        assert "pickle" not in msg and ("empty" in msg if not content else "begins with b'label,x," in msg)
    np.save(tmp_path / "c.npy", np.arange(6))  # a real .npy cut short keeps NumPy's own reason
    (tmp_path / "c.npy").write_bytes((tmp_path / "c.npy").read_bytes()[:-8])
    with pytest.raises(ValueError, match=r"c\.npy: cannot read as \.npy \(ValueError: .*could only read"):
        load_npy(tmp_path / "c.npy", "label")


# ------------------------------------------------------------ YAML that does not parse: one line
def test_a_class_map_or_set_value_that_is_not_yaml_is_one_line(tmp_path, capsys):
    from occkit.config import ConfigError, parse_overrides
    from occkit.formats.classmap import load_class_map

    bad = tmp_path / "map.yaml"
    bad.write_text(COARSE.read_text()[:300])  # cut inside a flow list
    with pytest.raises(ConfigError) as e:
        load_class_map(bad)
    assert "\n" not in str(e.value) and str(e.value).startswith(f"{bad}: invalid YAML (line 6, column ")
    with pytest.raises(ConfigError) as e:
        parse_overrides(["model.foo=[1,"])
    assert "\n" not in str(e.value) and "line 1, column 4" in str(e.value)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("model:\n  depth_max: [1,\n")
    assert main(["train", str(cfg), "--data", str(tmp_path), "--out", str(tmp_path / "run")]) == 1
    err = _err(capsys)
    assert err.count("\n") == 0 and f"{cfg}: invalid YAML (line 3, column 1:" in err


# ------------------------------------------------------------ class maps
@pytest.mark.parametrize(
    "edit, message",
    [
        (("  from: [others]", "  from: others"), "drop.from: text 'others' is not a list (a list of class names)"),
        (("from: occ3d", "from: occ4d"), "'from': 'occ4d' is not one of"),
        (("to: occ3d", "to: [occ3d]"), "to: ['occ3d'] is not text (one format's name"),
        (("from: occ3d", "fro: occ3d"), "unknown key 'fro' (its keys: from, to, common, drop)"),
        (("free: {from: [free], to: [free]}", "free: {from: [free]}"), "common.free.to missing"),
    ],
)
def test_a_bad_class_map_names_its_file_and_key(tmp_path, edit, message):
    from occkit.formats.classmap import load_class_map

    text = COARSE.read_text()
    assert edit[0] in text
    p = tmp_path / "map.yaml"
    p.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(ValueError) as e:
        load_class_map(p)  # a bare drop name was read letter by letter: "'o' is not a class of occ3d"
    assert str(e.value).startswith(f"{p}: ") and message in str(e.value)


# ------------------------------------------------------------ info files
def test_an_info_file_of_other_things_than_frames_is_one_line(tmp_path):
    from occkit.fileio import read_info_list

    p = tmp_path / "infos.pkl"
    p.write_bytes(pickle.dumps({"infos": [{"token": "a"}, 3]}))
    with pytest.raises(ValueError, match=r"infos\.pkl: frame 1 is int '3', not a mapping of the frame's fields"):
        read_info_list(p)  # was a TypeError / AttributeError traceback in eval --infos and convert --infos


# ------------------------------------------------------------ poses
def test_a_non_rigid_or_nan_kitti_pose_is_refused_naming_the_line(tmp_path):
    from occkit.data.kitti360 import read_cam0_to_world
    from occkit.data.semantickitti import read_poses

    eye = "1 0 0 0 0 1 0 0 0 0 1 0"
    poses = tmp_path / "poses.txt"
    for line, why in (("2 0 0 0 0 1 0 0 0 0 1 0", "not rigid"), ("nan 0 0 0 0 1 0 0 0 0 1 0", "not a finite")):
        poses.write_text(f"{eye}\n{line}\n")
        with pytest.raises(ValueError, match=rf"poses\.txt:2: the pose is {why}"):
            read_poses(poses)
    poses.write_text(f"{eye}\n1 0 0 x 0 1 0 0 0 0 1 0\n")
    with pytest.raises(ValueError, match=r"poses\.txt:2: cannot parse numbers"):
        read_poses(poses)
    cam = tmp_path / "cam0_to_world.txt"
    cam.write_text("0 1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1\n5 1 0 0 0 0 1 0 0 0 0 1 0 3 0 0 1\n")
    with pytest.raises(ValueError, match=r"cam0_to_world\.txt: line 2: the pose is not rigid .*last row \[3\.0"):
        read_cam0_to_world(cam)
    cam.write_text("0 1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1\n")
    assert read_cam0_to_world(cam)[0].tolist() == np.eye(4).tolist()


# ------------------------------------------------------------ occkit stats on another layout
@pytest.mark.parametrize(
    "layout, says",
    [
        (("annotations.json", "nuscenes_occ/samples/"), "a SurroundOcc dataset"),
        (("NYUtrain/",), "a NYUv2 dataset"),
    ],
)
def test_stats_of_another_layout_says_so(tmp_path, capsys, layout, says):
    """A hollow folder of another layout: read as that format (occkit stats reads every format), its
    reader's one line names what is missing, not Occ3D's gts/<scene>/<token>/labels.npz."""
    for rel in layout:
        p = tmp_path / rel
        p.mkdir(parents=True) if rel.endswith("/") else p.write_text("{}")
    assert main(["stats", str(tmp_path), "--no-progress"]) == 1
    err = _err(capsys)
    assert err.count("\n") == 0 and str(tmp_path) in err and "labels.npz" not in err


# ------------------------------------------------------------ a resumed conversion
def test_a_resumed_conversion_redoes_a_damaged_file_and_a_damaged_record(tiny_occ3d_root, tmp_path):
    from occkit.convert import STATE_DIR, convert_dataset

    out = tmp_path / "out"
    convert_dataset(tiny_occ3d_root, out, "occ3d", progress=False)
    want = {p.relative_to(out): p.read_bytes() for p in sorted((out / "gts").rglob("*.npz"))}
    sides = sorted((out / STATE_DIR / "frames").iterdir())
    cut = out / json.loads(sides[0].read_text())["files"][0]
    cut.write_bytes(cut.read_bytes()[:50])  # a damaged copy: there, but not what was written
    sides[1].write_text("{")  # a damaged record: was "not valid JSON", the conversion stuck
    r = convert_dataset(tiny_occ3d_root, out, "occ3d", progress=False)
    assert r["frames_resumed"] == r["frames"] - 2
    assert {p.relative_to(out): p.read_bytes() for p in sorted((out / "gts").rglob("*.npz"))} == want
    r = convert_dataset(tiny_occ3d_root, out, "occ3d", progress=False)
    assert r["frames_resumed"] == r["frames"]


# ------------------------------------------------------------ NaN settings
def test_a_nan_setting_is_refused_naming_the_key():
    from occkit.config import ConfigError
    from occkit.experiment import check_experiment, load_experiment

    for over, message in (
        ("optim.lr=.nan", "optim.lr must be a finite number > 0, got nan"),  # was torch's "Invalid learning rate"
        ("optim.lr=.inf", "optim.lr must be a finite number > 0, got inf"),
        ("model.depth_max=.nan", "model.depth_max: NaN is not a setting"),
    ):
        with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
            check_experiment(load_experiment("nyu-mono", [over]))


# ------------------------------------------------------------ the indoor world's descriptions
def test_an_indoor_description_that_is_not_text_names_the_frame(tmp_path):
    from occkit.data.nyu import NYUDataset

    (tmp_path / "NYUtrain").mkdir()
    frames = {"NYU0000_0000": {"description": None}, "NYU0001_0000": {"description": "a kitchen"}}
    (tmp_path / "indoor.json").write_text(json.dumps({"frames": frames}))
    assert NYUDataset(tmp_path, "train").descriptions() == {"NYU0000_0000": "", "NYU0001_0000": "a kitchen"}
    frames["NYU0001_0000"]["description"] = 5  # was the prompt "5" (and null the prompt "None")
    (tmp_path / "indoor.json").write_text(json.dumps({"frames": frames}))
    with pytest.raises(ValueError, match=r"indoor\.json: frames\.NYU0001_0000\.description: 5 is not text"):
        NYUDataset(tmp_path, "train").descriptions()


# ------------------------------------------------------------ a driving recipe on the indoor world
def test_a_camera_lift_of_driving_depths_on_indoor_data_is_refused(tmp_path):
    """synth-cpu leaves its grid to the data's format, so on NYUv2 it trained with depth bins of
    1-45 m in rooms 7.4 m corner to corner, silently."""
    from occkit.config import ConfigError
    from occkit.experiment import fit_to_format, load_experiment
    from occkit.formats import get_format

    nyu = get_format("nyu")
    with pytest.raises(ConfigError) as e:
        fit_to_format(load_experiment("synth-cpu"), tmp_path, fmt=nyu)
    msg = str(e.value)
    assert msg.startswith("model.depth_max: 45 m, but the data") and "7.4 m corner to corner" in msg
    assert "driving scenes on indoor data" in msg
    depths = ["model.depth_min=0.5", "model.depth_max=8", "model.depth_step=0.5"]
    assert fit_to_format(load_experiment("synth-cpu", depths), tmp_path, fmt=nyu).model.depth_max == 8
    assert (
        fit_to_format(load_experiment("synth-cpu"), tmp_path, fmt=get_format("semantickitti")).model.num_classes == 20
    )
    assert fit_to_format(load_experiment("nyu-mono"), tmp_path, fmt=nyu).model.lift == "sample"  # no depth bins


# ------------------------------------------------------------ --no-progress means no bar
def test_loading_the_text_encoder_draws_no_progress_bar(capsys):
    """occkit generate / eval-gen --no-progress printed transformers' "Loading weights: 100% 103/103"."""
    from transformers.utils import logging as hf_logging

    from occkit.priors.text import SentenceTransformerText

    assert hf_logging.is_progress_bar_enabled()
    SentenceTransformerText()
    assert "Loading weights" not in capsys.readouterr().err
    assert hf_logging.is_progress_bar_enabled()  # put back as it was
