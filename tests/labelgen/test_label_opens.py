"""Labels every command opens (docs/labels.md, "What the labels open in"): ``occkit label`` on a rig
without cameras or images gives a dataset that ``stats``, ``show``, ``view``, ``eval --gt`` and
``convert`` read; splits from ``rig.json`` or ``--val-scenes``; ``--overwrite`` replacing only the
command's own files; ``--quality`` without truth scoring the labels along the LiDAR rays."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from occkit.cli import main


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ow") / "w"
    tiny = ("--scenes", "2", "--frames", "2", "--image-size", "48", "80", "--sweeps", "2", "--beams", "8")
    rc, _, err = _run("synth", "--out", out, *tiny)
    assert rc == 0, err
    return out


def _rig(world: Path, dst: Path, cameras: bool = False, **meta_changes) -> Path:
    """The world's rig folder alone (no dataset beside it: no images, no truth), without cameras."""
    shutil.copytree(world / "rig", dst)
    meta = json.loads((dst / "rig.json").read_text())
    if not cameras:
        meta.pop("cameras")
    meta.update(meta_changes)
    (dst / "rig.json").write_text(json.dumps(meta))
    return dst


@pytest.fixture(scope="module")
def bare(world, tmp_path_factory) -> tuple[Path, Path, str]:
    """Labels of the camera-less rig with scene-0001 in val and ``--quality`` (no truth there):
    (the rig, the labels, what the command printed)."""
    tmp = tmp_path_factory.mktemp("bare")
    rig = _rig(world, tmp / "rig")
    rc, said, err = _run("label", "--data", rig, "--out", tmp / "lab", "--val-scenes", "scene-0001", "--quality")
    assert rc == 0, err
    return rig, tmp / "lab", said


def test_camera_less_labels_record_no_cameras_and_their_splits(bare):
    _, lab, said = bare
    ann = json.loads((lab / "annotations.json").read_text())
    assert ann["train_split"] == ["scene-0000"] and ann["val_split"] == ["scene-0001"]
    assert all(i["camera_sensor"] == {} for s in ann["scene_infos"].values() for i in s.values())
    assert "splits (--val-scenes): 1 train, 1 val" in said


def test_stats_reads_camera_less_labels(bare):
    rc, out, err = _run("stats", bare[1], "--split", "all", "--no-progress")
    assert rc == 0, err
    assert "frames 4" in out and "cameras 0" in out


def test_show_draws_the_occupancy_panels_alone(bare, world, tmp_path):
    rc, _, err = _run("show", bare[1], "--out", tmp_path / "bare.png")
    assert rc == 0, err
    rc, _, err = _run("show", world, "--out", tmp_path / "world.png")  # the same frame with its cameras
    assert rc == 0, err
    h_bare = Image.open(tmp_path / "bare.png").size[1]
    h_world = Image.open(tmp_path / "world.png").size[1]
    assert h_bare < h_world  # no camera row


def test_view_writes_camera_less_labels(bare, tmp_path):
    rc, out, err = _run("view", bare[1], "--html", tmp_path / "v.html")
    assert rc == 0, err
    assert (tmp_path / "v.html").stat().st_size > 0 and "4 frame(s)" in out


def test_eval_scores_camera_less_labels_as_ground_truth(bare, tmp_path):
    ann = json.loads((bare[1] / "annotations.json").read_text())
    pred = tmp_path / "pred"
    pred.mkdir()
    for info in ann["scene_infos"]["scene-0001"].values():  # the val split's frames, predicted exactly
        sem = np.load(bare[1] / info["gt_path"])["semantics"]
        np.savez(pred / f"{Path(info['gt_path']).parent.name}.npz", semantics=sem)
    rc, out, err = _run("eval", "--gt", bare[1], "--pred", pred, "--mask", "lidar", "--no-progress")
    assert rc == 0, err
    assert "frames: 2" in out and "100.00" in out
    rc, out, err = _run("eval", "--gt", bare[1], "--pred", pred, "--no-progress")  # the camera mask: no voxel
    assert rc == 1 and len(err.strip().splitlines()) == 1 and "records no cameras" in err and "--mask lidar" in err


def test_convert_reads_camera_less_labels(bare, tmp_path):
    rc, out, err = _run("convert", "--data", bare[1], "--to", "occ3d", "--out", tmp_path / "c")
    assert rc == 0, err
    assert "record no cameras or camera images" in out
    assert len(list((tmp_path / "c").rglob("labels.npz"))) == 4


def test_labels_of_a_rig_with_cameras_but_no_images_open_and_say_so_when_images_are_asked(world, tmp_path):
    rig = _rig(world, tmp_path / "rig", cameras=True)
    assert _run("label", "--data", rig, "--out", tmp_path / "lab")[0] == 0
    rc, out, err = _run("stats", tmp_path / "lab", "--split", "all", "--no-progress")
    assert rc == 0 and "image size unknown" in out, err
    rc, _, err = _run("show", tmp_path / "lab", "--out", tmp_path / "s.png")
    assert rc == 0, err
    from occkit.data.occ3d import Occ3DDataset

    ds = Occ3DDataset(tmp_path / "lab", "all", load_extras=False)
    assert not ds.images_recorded
    with pytest.raises(FileNotFoundError, match="no image recorded"):
        ds[0]


def test_a_real_occ3d_dataset_missing_an_image_is_still_refused_naming_it(world, tmp_path):
    data = tmp_path / "w"
    shutil.copytree(world, data, symlinks=True)
    ann = json.loads((data / "annotations.json").read_text())
    info = next(iter(ann["scene_infos"]["scene-0000"].values()))
    img = data / info["camera_sensor"]["CAM_FRONT"]["img_path"]
    img.unlink()
    rc, _, err = _run("show", data, "--out", tmp_path / "s.png")
    assert rc == 1 and len(err.strip().splitlines()) == 1
    assert str(img) in err and "image not found" in err


def test_splits_come_from_rig_json(world, tmp_path):
    rig = _rig(world, tmp_path / "rig", splits={"train": ["scene-0001"], "val": ["scene-0000"]})
    rc, said, err = _run("label", "--data", rig, "--out", tmp_path / "lab")
    assert rc == 0, err
    ann = json.loads((tmp_path / "lab" / "annotations.json").read_text())
    assert ann["train_split"] == ["scene-0001"] and ann["val_split"] == ["scene-0000"]
    assert "splits (the recording's): 1 train, 1 val" in said


@pytest.mark.parametrize(
    "splits, words",
    [
        ({"train": ["scene-0000"], "val": ["scene-9"]}, "not scenes of the rig"),
        ({"train": ["scene-0000"], "val": ["scene-0000"]}, "in both train and val"),
        ({"test": ["scene-0000"]}, "splits: unknown key 'test' (its keys: train, val)"),
        ({"val": "scene-0000"}, "splits.val: text 'scene-0000' is not a list"),
    ],
)
def test_bad_splits_in_rig_json_are_refused_in_one_line(world, tmp_path, splits, words):
    rig = _rig(world, tmp_path / "rig", splits=splits)
    rc, _, err = _run("label", "--data", rig, "--out", tmp_path / "lab")
    assert rc == 1 and len(err.strip().splitlines()) == 1, err
    assert words in err and "rig.json" in err
    assert not (tmp_path / "lab").exists()


def test_val_scenes_must_be_labelled_scenes(world, tmp_path):
    rc, _, err = _run("label", "--data", world / "rig", "--out", tmp_path / "lab", "--val-scenes", "scene-7")
    assert rc == 1 and "--val-scenes" in err and "scene-7" in err
    assert not (tmp_path / "lab").exists()


def test_without_splits_every_scene_is_in_train_and_the_summary_says_how_to_choose_val(world, tmp_path):
    rig = _rig(world, tmp_path / "rig")
    rc, said, err = _run("label", "--data", rig, "--out", tmp_path / "lab", "--scenes", "scene-0000")
    assert rc == 0, err
    ann = json.loads((tmp_path / "lab" / "annotations.json").read_text())
    assert ann["train_split"] == ["scene-0000"] and ann["val_split"] == []
    assert "every scene (1) is in train" in said and "--val-scenes" in said


def test_overwrite_replaces_the_labels_and_only_the_commands_own_files(world, tmp_path):
    data, out = world / "rig", tmp_path / "lab"
    assert _run("label", "--data", data, "--out", out, "--scenes", "scene-0000")[0] == 0
    rc, _, err = _run("label", "--data", data, "--out", out)
    assert rc == 1 and "--overwrite" in err
    rc, _, err = _run("label", "--data", data, "--out", out, "--overwrite")
    assert rc == 0, err
    assert len(list(out.rglob("labels.npz"))) == 4  # both scenes now
    (out / "notes.txt").write_text("mine")
    rc, _, err = _run("label", "--data", data, "--out", out, "--overwrite")
    assert rc == 1 and "notes.txt" in err
    assert (out / "notes.txt").read_text() == "mine" and len(list(out.rglob("labels.npz"))) == 4


def test_overwrite_keeps_working_with_the_link_to_the_worlds_images(world, tmp_path):
    out = tmp_path / "lab"
    assert _run("label", "--data", world, "--out", out, "--scenes", "scene-0000")[0] == 0
    # samples/ is the output's own (the keyframes' LiDAR sweeps are written there), each camera folder of the
    # world linked into it
    assert (out / "samples").is_dir() and (out / "samples" / "CAM_FRONT").is_symlink()
    assert list((out / "samples" / "LIDAR_TOP").glob("*.pcd.bin"))
    # each keyframe's labels rendered into each camera, read as its 2D semantic maps (occkit.labelgen.semantic_maps)
    from occkit.data.occ3d import Occ3DDataset

    s = Occ3DDataset(out, "all", load_extras=True)[0]
    assert s.semantics_2d is not None and s.semantics_2d.shape == (len(s.cam_names), 48, 80) and s.lidar is not None
    rc, _, err = _run("label", "--data", world, "--out", out, "--scenes", "scene-0001", "--overwrite")
    assert rc == 0, err
    assert json.loads((out / "annotations.json").read_text())["scene_infos"].keys() == {"scene-0001"}
    assert (out / "samples" / "CAM_FRONT").is_symlink()


def test_quality_without_truth_says_what_it_needs_and_scores_the_lidar_rays(bare):
    rig, lab, said = bare
    lines = [ln for ln in said.splitlines() if "--quality" in ln]
    assert len(lines) == 1 and "holds no truth" in lines[0] and "LiDAR's own ranges" in lines[0]
    q = json.loads((lab / "quality.json").read_text())
    assert q["scored_against"] == "lidar rays" and "occupied_iou_observable" not in q
    r = q["rays"]
    assert r["keyframes"] == 4 and r["rays"] > 1000
    total = r["agree_percent"] + r["false_free_percent"] + r["false_occupied_percent"]
    assert total == pytest.approx(100.0, abs=0.01)
    assert json.loads((lab / "report.json").read_text())["summary"]["quality"]["rays"]["rays"] == r["rays"]
    assert "Quality without truth" in (lab / "quality.md").read_text()


def test_the_written_labels_agree_with_the_rays_better_than_the_same_labels_moved(bare):
    """The figures see a pose error: the labels shifted by one voxel up (0.4 m) or three forward (1.2 m) agree less."""
    from occkit.data.recordings.registry import open_recording
    from occkit.formats import get_format
    from occkit.labelgen.consistency import RayCounts, score_rays

    rig, lab, _ = bare
    fmt = get_format("occ3d")
    rec = open_recording(rig, None, {})
    ann = json.loads((lab / "annotations.json").read_text())
    here, up, forward = RayCounts(), RayCounts(), RayCounts()
    for s in rec.scenes:
        labels = {t: np.load(lab / i["gt_path"])["semantics"] for t, i in ann["scene_infos"][s].items()}
        record = rec.read_scene(s)
        for _, c in score_rays(record, labels, fmt.grid, fmt.classes.free):
            here.add(c)
        for moved, axis, by in ((up, 2, 1), (forward, 0, 3)):
            shifted = {t: np.roll(v, by, axis=axis) for t, v in labels.items()}
            for _, c in score_rays(record, shifted, fmt.grid, fmt.classes.free):
                moved.add(c)
    written = json.loads((lab / "quality.json").read_text())["rays"]
    assert here.figures()["agree_percent"] == written["agree_percent"]  # the command's figures, recomputed
    agree = here.figures()["agree_percent"]
    assert agree > up.figures()["agree_percent"] and agree > forward.figures()["agree_percent"]


@pytest.mark.skipif(
    not os.environ.get("OCCKIT_SLOW_TESTS"),
    reason="writes and labels a second world (about half a minute): set OCCKIT_SLOW_TESTS=1",
)
def test_labels_of_a_recording_with_pose_noise_agree_less_along_the_rays(world, bare, tmp_path):
    """End to end on a world: the same world recorded with 0.3 m of pose noise a sweep gives labels that agree
    less with the keyframes' own rays, and score lower against the truth (the two qualities agree)."""
    noisy = tmp_path / "noisy"
    tiny = ("--scenes", "2", "--frames", "2", "--image-size", "48", "80", "--sweeps", "2", "--beams", "8")
    assert _run("synth", "--out", noisy, *tiny, "--pose-noise", "0.3")[0] == 0
    rc, _, err = _run("label", "--data", noisy, "--out", tmp_path / "lab", "--quality")
    assert rc == 0, err
    clean = json.loads((bare[1] / "quality.json").read_text())["rays"]
    q = json.loads((tmp_path / "lab" / "quality.json").read_text())
    assert q["scored_against"] == "truth and lidar rays"
    assert q["rays"]["agree_percent"] < clean["agree_percent"]
    assert q["rays"]["range_error_mean_abs_m"] > clean["range_error_mean_abs_m"]
    assert q["rays_exact"]["agree_percent"] > q["rays"]["agree_percent"]  # the truth along the same rays
