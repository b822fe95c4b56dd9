"""A LiDAR-only ROS 2 bag (MCAP, no camera topics; the synthetic world's scene written by tools/rig_to_bag.py
with rosbags' own writer) labels into a dataset the LiDAR route takes as it is: each keyframe's own sweep beside
its labels, the LiDAR teacher's first batch holding that sweep and no camera, and (``OCCKIT_SLOW_TESTS=1``)
``lidar-teacher`` trained on it, its predictions scored by ``occkit predict --eval`` and ``occkit eval --mask
lidar`` to finite numbers, in the LiDAR mask (docs/labels.md, "A LiDAR-only rig")."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rosbags")

from conftest import load_tool, write_sweep_world  # noqa: E402

from occkit.cli import main  # noqa: E402

EGO_BOX = "4.1 1.8 1.6 1.3 0 0.8"  # the synthetic rig's (rig.json "ego"): a bag carries no vehicle box
SLOW = pytest.mark.skipif(
    os.environ.get("OCCKIT_SLOW_TESTS") != "1",
    reason="train + predict + eval: 10 s on a loaded 2-core CPU; set OCCKIT_SLOW_TESTS=1",
)


@pytest.fixture(scope="module")
def bag_labels(tmp_path_factory) -> dict[str, Path]:
    """The world's scene as an MCAP bag without cameras, and its labels (every scan a keyframe's or between)."""
    root = tmp_path_factory.mktemp("lidar_bag")
    world = root / "w"
    write_sweep_world(world)
    stamps = load_tool("rig_to_bag").write_bag(world / "rig", "scene-0000", root / "bag", "mcap")
    (root / "kf.txt").write_text("".join(f"{s}\n" for s in stamps))
    labels = root / "labels"
    said = io.StringIO()
    with contextlib.redirect_stdout(said):
        argv = ["label", "--data", str(root / "bag"), "--keyframes", str(root / "kf.txt"), "--ego-box", EGO_BOX]
        assert main([*argv, "--out", str(labels)]) == 0
    return {"bag": root / "bag", "labels": labels, "stamps": stamps, "said": said.getvalue()}


def test_the_bags_labels_hold_each_keyframes_sweep_and_no_camera(bag_labels):
    from occkit.data.recordings.registry import open_recording

    labels = bag_labels["labels"]
    assert "no cameras" in bag_labels["said"]
    rec = open_recording(bag_labels["bag"], None, {"keyframes": None, "keyframe_every": 1}).read_scene("bag")
    clouds = {int(s.token): s for s in rec.sweeps}
    infos = json.loads((labels / "annotations.json").read_text())["scene_infos"]["bag"]
    assert list(infos) == [str(s) for s in bag_labels["stamps"]]
    for token, info in infos.items():
        assert info["camera_sensor"] == {}
        z = np.load(labels / info["gt_path"])
        assert z["mask_lidar"].any() and not z["mask_camera"].any()  # a LiDAR mask, no camera mask
        rows = np.fromfile(labels / info["lidar_sensor"]["filename"], np.float32).reshape(-1, 5)
        cloud = clouds[int(token)]  # the keyframe's own cloud, as the bag holds it, in the LiDAR's frame
        assert np.array_equal(rows[:, :3], cloud.points.astype(np.float32))
        assert np.array_equal(rows[:, 3], cloud.intensity.astype(np.float32)) and not rows[:, 4].any()


def test_the_lidar_teachers_first_batch_holds_the_sweep_and_no_camera(bag_labels):
    import torch

    from occkit.data.sample import collate
    from occkit.experiment import build_dataset, load_experiment

    cfg = load_experiment("lidar-teacher", ["data.workers=0"])
    ds = build_dataset(cfg, bag_labels["labels"], "train", train=True)
    assert len(ds) == len(bag_labels["stamps"])
    sample = ds[0]
    batch = collate([sample])
    info = json.loads((bag_labels["labels"] / "annotations.json").read_text())["scene_infos"]["bag"][sample.token]
    rows = np.fromfile(bag_labels["labels"] / info["lidar_sensor"]["filename"], np.float32).reshape(-1, 5)
    (points,) = batch.lidar  # the keyframe's own sweep, in the ego frame
    assert points.shape == (len(rows), 4) and len(rows) >= 100 and torch.isfinite(points).all()
    assert np.array_equal(points[:, 3].numpy(), rows[:, 3])
    assert batch.mask_lidar.any() and not batch.mask_camera.any()


@SLOW
def test_lidar_teacher_trains_on_the_bags_labels_and_is_scored_in_the_lidar_mask(bag_labels, tmp_path, capsys):
    labels, run, pred = bag_labels["labels"], tmp_path / "run", tmp_path / "pred"
    fast = ["--max-steps", "2", "--no-val", "--no-progress", "--set", "train.threads=1", "data.workers=0"]
    assert main(["train", "lidar-teacher", "--data", str(labels), "--out", str(run), *fast]) == 0
    said = capsys.readouterr().err
    assert "records no cameras" in said and "use_lidar_mask=true" in said
    sup = json.loads((run / "config.json").read_text())["supervised"]
    assert sup["use_lidar_mask"] is True and sup["use_camera_mask"] is False
    argv = ["predict", "--ckpt", str(run), "--data", str(labels), "--out", str(pred), "--split", "train"]
    assert main([*argv, "--eval", "--no-progress", "--workers", "0"]) == 0
    assert len(list(pred.glob("*.npz"))) == len(bag_labels["stamps"])
    assert "mIoU" in capsys.readouterr().out
    res = tmp_path / "eval.json"
    argv = ["eval", "--gt", str(labels), "--pred", str(pred), "--split", "train", "--mask", "lidar"]
    assert main([*argv, "--json", str(res), "--no-progress"]) == 0
    scores = json.loads(res.read_text())
    assert scores["mask"] == "lidar" and scores["frames"] == len(bag_labels["stamps"])
    assert math.isfinite(scores["miou"]) and 0 <= scores["miou"] <= 100
    assert main(["eval", "--gt", str(labels), "--pred", str(pred), "--split", "train"]) == 1  # the camera mask: empty
    assert "camera" in capsys.readouterr().err
