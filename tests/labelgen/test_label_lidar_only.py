"""A LiDAR-only recording: ``occkit label`` writes each keyframe's own sweep where the index names it, the
Occ3D reader gives it as the frame's LiDAR, the LiDAR teacher trains on the labels (LiDAR mask, no camera),
a camera preset is refused naming the LiDAR route, and a loss the frames cannot feed is said."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from occkit.cli import main


@pytest.fixture(scope="module")
def lidar_only(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny world's rig with its cameras removed, and its labels (scene-0001 in val)."""
    root = tmp_path_factory.mktemp("lidar_only")
    world = root / "w"
    argv = ["synth", "--out", str(world), "--scenes", "2", "--frames", "2", "--image-size", "48", "80"]
    assert main([*argv, "--sweeps", "2", "--beams", "8"]) == 0
    rig = root / "rig"
    shutil.copytree(world / "rig", rig)
    meta = json.loads((rig / "rig.json").read_text())
    meta["cameras"] = {}
    (rig / "rig.json").write_text(json.dumps(meta))
    labels = root / "labels"
    assert main(["label", "--data", str(rig), "--out", str(labels), "--val-scenes", "scene-0001"]) == 0
    return rig, labels


def test_each_keyframe_sweep_is_written_where_the_index_names_it_and_counted_in_the_scene_record(lidar_only):
    rig, labels = lidar_only
    ann = json.loads((labels / "annotations.json").read_text())
    record = json.loads((labels / ".label" / "scenes" / "scene-0000.json").read_text())
    sweeps = json.loads((rig / "scene-0000" / "sweeps.json").read_text())["sweeps"]
    keyframes = {s["token"]: s for s in sweeps if s["keyframe"]}
    assert set(ann["scene_infos"]["scene-0000"]) == set(keyframes)
    for token, info in ann["scene_infos"]["scene-0000"].items():
        rel = info["lidar_sensor"]["filename"]
        assert rel in record["infos"][token]["files"] and record["infos"][token]["gt_path"] != rel
        rows = np.fromfile(labels / rel, dtype=np.float32).reshape(-1, 5)
        given = np.load(rig / "scene-0000" / keyframes[token]["points"])["points"]
        np.testing.assert_array_equal(rows[:, :4], given.astype(np.float32))  # the sweep as recorded, LiDAR frame
        assert info["camera_sensor"] == {}
    assert not list(labels.rglob(".*.tmp"))  # written atomically: no temporary left


def test_the_occ3d_reader_gives_the_written_sweep_in_the_ego_frame(lidar_only):
    from occkit.data.occ3d import Occ3DDataset
    from occkit.geometry.transforms import transform_from_pose

    rig, labels = lidar_only
    ds = Occ3DDataset(labels, "all", load_images=False)
    assert ds.cameras == () and len(ds) == 4
    s = ds[0]
    meta = json.loads((rig / "rig.json").read_text())
    pose = meta["lidars"]["LIDAR_TOP"]
    T = transform_from_pose(pose["translation"], pose["rotation"]).numpy()
    rows = np.fromfile(labels / ds.info(s.token)["lidar_sensor"]["filename"], dtype=np.float32).reshape(-1, 5)
    want = rows[:, :3].astype(np.float64) @ T[:3, :3].T + T[:3, 3]
    assert s.lidar is not None and s.lidar.shape == (len(rows), 4) and s.lidar_labels is None
    np.testing.assert_allclose(s.lidar[:, :3].numpy(), want, atol=1e-4)
    np.testing.assert_array_equal(s.lidar[:, 3].numpy(), rows[:, 3])
    assert Occ3DDataset(labels, "all", load_images=False, load_extras=False)[0].lidar is None


def test_the_lidar_teacher_trains_on_labels_without_cameras_in_the_lidar_mask(lidar_only, tmp_path, capsys):
    _, labels = lidar_only
    run = tmp_path / "run"
    argv = ["train", "lidar-teacher", "--data", str(labels), "--out", str(run), "--max-steps", "1", "--no-progress"]
    assert main([*argv, "--no-val"]) == 0
    said = capsys.readouterr().err
    assert "records no cameras" in said and "use_lidar_mask=true" in said
    sup = json.loads((run / "config.json").read_text())["supervised"]
    assert sup["use_camera_mask"] is False and sup["use_lidar_mask"] is True
    counts = np.asarray(sup["class_counts"])
    assert counts.sum() > 0 and counts[17] > 0  # counted inside the LiDAR mask, free voxels among them
    losses = [json.loads(line) for line in (run / "train.jsonl").read_text().splitlines()]
    assert losses and all(np.isfinite(r["loss"]) and r["loss"] > 0 for r in losses if "loss" in r)


def test_a_camera_preset_on_labels_without_cameras_is_refused_naming_the_lidar_route(lidar_only, tmp_path, capsys):
    _, labels = lidar_only
    run = tmp_path / "cam"
    assert main(["train", "synth-cpu", "--data", str(labels), "--out", str(run), "--max-steps", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "had no cameras" in err[0] and "occkit train lidar-teacher" in err[0]
    assert not (run / "checkpoints").exists()


def test_a_loss_the_frames_cannot_feed_is_said_in_one_line():
    from occkit.methods.supervised import SupervisedConfig, unfed_losses

    cfg = SimpleNamespace(supervised=SupervisedConfig(depth_weight=1.0, semantic_2d_weight=0.5))
    bare = SimpleNamespace(token="t0", lidar=None, depth=None, semantics_2d=None)
    lines = unfed_losses(cfg, bare)
    assert len(lines) == 2 and "loss_depth is 0" in lines[0] and "loss_sem2d is 0" in lines[1]
    fed = SimpleNamespace(token="t0", lidar=np.zeros((3, 4)), depth=None, semantics_2d=np.zeros((1, 2, 2)))
    assert unfed_losses(cfg, fed) == []
    cfg.supervised.depth_source = "none"  # a term turned off is not said
    assert unfed_losses(cfg, SimpleNamespace(**{**vars(bare), "semantics_2d": fed.semantics_2d})) == []
