"""``occkit synth --sweeps`` and ``occkit label`` end to end on a tiny world: the labels read as an
Occ3D dataset, score against the truth, resume, run the same under Ray, take a rig folder that lacks
boxes, labels or cameras, and refuse bad input in one line with nothing written."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from occkit.cli import main


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lw") / "w"
    argv = ["synth", "--out", str(out), "--scenes", "2", "--frames", "2", "--image-size", "48", "80"]
    assert main([*argv, "--sweeps", "2", "--beams", "8", "--box-center-noise", "0.05"]) == 0
    return out


def _label(world: Path, out: Path, *extra: str) -> int:
    return main(["label", "--data", str(world), "--out", str(out), *extra])


@pytest.fixture(scope="module")
def labelled(world, tmp_path_factory) -> tuple[Path, str]:
    """``occkit label --quality`` of the whole world (the default preset, one local process), run once
    for the tests of the dataset it writes, of its scores, and of the labels a resumed run, worker
    processes and Ray must equal (``--quality`` scores the labels written; it changes none).
    Returns the output folder and what the command printed."""
    out = tmp_path_factory.mktemp("labelled") / "lab"
    said = io.StringIO()
    with contextlib.redirect_stdout(said):
        assert _label(world, out, "--quality") == 0
    return out, said.getvalue()


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("labels.npz"))}


def test_synth_writes_a_rig_and_the_true_sweep_poses(world):
    rig = json.loads((world / "rig" / "rig.json").read_text())
    assert rig["format"] == "occkit-rig" and rig["scenes"] == ["scene-0000", "scene-0001"]
    sweeps = json.loads((world / "rig" / "scene-0000" / "sweeps.json").read_text())["sweeps"]
    assert len(sweeps) == 2 + 2 and [s["keyframe"] for s in sweeps] == [True, False, False, True]
    ann = json.loads((world / "annotations.json").read_text())
    assert [s["token"] for s in sweeps if s["keyframe"]] == list(ann["scene_infos"]["scene-0000"])
    truth = json.loads((world / "extras" / "scene-0000" / "sweeps.json").read_text())
    assert [s["token"] for s in truth["sweeps"]] == [s["token"] for s in sweeps]
    z = np.load(world / "rig" / "scene-0000" / sweeps[1]["points"])
    assert "labels" not in z.files and z["points"].shape[1] == 4  # sweeps unlabelled, as nuScenes'
    assert (world / "rig" / "scene-0000" / "boxes.json").is_file()


def test_label_writes_an_occ3d_dataset_and_its_quality(labelled):
    out, said = labelled
    assert "quality: occupied IoU" in said
    from occkit.formats import detect_format

    assert detect_format(out).name == "occ3d"
    ann = json.loads((out / "annotations.json").read_text())
    assert set(ann["scene_infos"]) == {"scene-0000", "scene-0001"}
    frame = next(iter(ann["scene_infos"]["scene-0000"].values()))
    z = np.load(out / frame["gt_path"])
    assert {"semantics", "mask_lidar", "mask_camera"} <= set(z.files)
    assert z["semantics"].shape == (200, 200, 16) and z["semantics"].dtype == np.uint8
    assert z["mask_camera"].any() and z["mask_lidar"].any() and (z["semantics"] != 17).any()
    q = json.loads((out / "quality.json").read_text())
    assert q["keyframes"] == 4 and 0 < q["occupied_iou_observable"] <= 100
    assert q["occupied_iou_observable"] > q["occupied_iou_overall"]  # no sensor sees inside a wall
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["keyframes"] == 4 and report["summary"]["missing"] == []
    assert set(report["summary"]["seconds_per_keyframe_by_stage"]) >= {"aggregate", "voxelise", "cast"}


def test_aggregation_beats_the_naive_single_sweep_labels(world, labelled, tmp_path):
    assert _label(world, tmp_path / "n", "--quality", "--preset", "naive") == 0
    a = json.loads((labelled[0] / "quality.json").read_text())
    n = json.loads((tmp_path / "n" / "quality.json").read_text())
    assert a["recall_observable"] > n["recall_observable"]


def test_a_stopped_label_resumes_with_the_scenes_it_lacks(world, labelled, tmp_path, capsys, monkeypatch):
    import occkit.labelgen.run as label_run

    real = label_run.label_one_scene
    calls = []

    def stop_on_second(job):
        calls.append(job["scene"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(label_run, "label_one_scene", stop_on_second)
    out = tmp_path / "lab"
    assert _label(world, out) == 130  # Ctrl-C: the error boundary says "interrupted"
    assert not out.exists()  # only the hidden partial folder holds the finished scene
    monkeypatch.setattr(label_run, "label_one_scene", real)
    capsys.readouterr()
    assert _label(world, out) == 0
    assert "resuming: 1 of 2 scenes already labelled" in capsys.readouterr().out
    assert _files(out) == _files(labelled[0]) and len(_files(out)) == 4  # a run never stopped


def test_workers_and_ray_equal_the_local_run_bit_for_bit(world, labelled, tmp_path):
    pytest.importorskip("ray")
    assert _label(world, tmp_path / "procs", "--workers", "2") == 0
    assert _label(world, tmp_path / "ray", "--launcher", "ray", "--workers", "2") == 0
    import ray

    assert not ray.is_initialized()  # the Ray the command started is shut down (the next test's process is clean)
    local = _files(labelled[0])  # one local process
    assert len(local) == 4
    assert _files(tmp_path / "procs") == local
    assert _files(tmp_path / "ray") == local


def test_a_ray_worker_that_dies_loses_only_its_scene(world, labelled, tmp_path, capsys, monkeypatch):
    """One Ray worker dies while the other scene is labelled: one line names its process, node and scene,
    the other scene finishes and is kept, the run ends with one error line and no traceback, and the rerun
    labels only the lost scene (the whole then equal to the local run's). A local Ray of two CPUs, started
    once: its start is most of the test's time (about 10 s on a busy 2-core machine), which only Ray can show."""
    pytest.importorskip("ray")
    import occkit.labelgen.run as label_run

    def dies_on_scene_0001(job):
        """``label_one_scene``, but the process that takes scene-0001 dies at once (as a worker killed for
        its memory, or on a node lost). A local function: Ray sends it by value to its worker processes."""
        import os

        from occkit.labelgen.run import label_one_scene

        if job["scene"] == "scene-0001":
            os._exit(1)
        return label_one_scene(job)

    real = label_run.label_one_scene
    monkeypatch.setattr(label_run, "label_one_scene", dies_on_scene_0001)
    out = tmp_path / "lab"
    capsys.readouterr()
    with pytest.warns(UserWarning) as said:
        assert _label(world, out, "--launcher", "ray", "--workers", "2") == 1
    run = capsys.readouterr()
    lines = [str(w.message) for w in said if "--launcher ray" in str(w.message)]
    assert len(lines) == 1, lines
    assert re.fullmatch(
        r"--launcher ray: the worker process \d+ on node \S+ \(\S+, [0-9a-f]{12}\) died labelling scene "
        r"scene-0001: not labelled in this run; the other scenes go on",
        lines[0],
    ), lines[0]
    assert "label: scene-0000: 2 keyframes" in run.out  # the other scene finished
    assert "label: stopped after 1 of 2 scenes; the finished ones are kept" in run.out
    (error,) = [line for line in run.err.splitlines() if line.startswith("occkit label: error:")]
    assert error == (
        "occkit label: error: --launcher ray: 1 of 2 scene(s) not labelled, their Ray worker or node lost "
        "(scene-0001); the 1 other(s) finished"
    )
    assert "Traceback" not in run.out + run.err and not out.exists()
    assert not list(tmp_path.glob(".lab.partial/.label/running/*"))  # the tasks' notes of where they ran
    monkeypatch.setattr(label_run, "label_one_scene", real)
    assert _label(world, out) == 0
    assert "resuming: 1 of 2 scenes already labelled" in capsys.readouterr().out
    assert _files(out) == _files(labelled[0]) and len(_files(out)) == 4


def _rig_copy(world: Path, dst: Path) -> Path:
    shutil.copytree(world / "rig", dst)
    return dst


def test_a_rig_without_boxes_labels_or_cameras_still_gives_labels_and_says_what_is_missing(world, tmp_path, capsys):
    rig = _rig_copy(world, tmp_path / "rig")
    meta = json.loads((rig / "rig.json").read_text())
    meta["cameras"] = {}
    (rig / "rig.json").write_text(json.dumps(meta))
    for scene in meta["scenes"]:
        (rig / scene / "boxes.json").unlink()
        for f in (rig / scene / "lidar").glob("*.npz"):
            z = dict(np.load(f))
            z.pop("labels", None)
            np.savez(f, **z)
    out = tmp_path / "lab"
    assert _label(rig, out) == 0
    said = capsys.readouterr().out
    assert "no boxes" in said and "no point labels" in said and "no cameras" in said
    report = json.loads((out / "report.json").read_text())
    assert len(report["summary"]["missing"]) == 3
    z = np.load(next(out.rglob("labels.npz")))
    assert set(np.unique(z["semantics"]).tolist()) <= {0, 17} and (z["semantics"] == 0).any()
    assert not z["mask_camera"].any() and z["mask_lidar"].any()
    # geometry only, the ground is found by its height for the ground fill: it only adds occupied voxels
    assert _label(rig, tmp_path / "nofill", "--set", "ground_fill=0") == 0
    for f in out.rglob("labels.npz"):
        filled = np.load(f)["semantics"] != 17
        bare = np.load(tmp_path / "nofill" / f.relative_to(out))["semantics"] != 17
        assert (filled >= bare).all() and filled.sum() > bare.sum() + 100


def _spoil_sweep(rig: Path, i: int, **changes) -> Path:
    f = rig / "scene-0000" / "sweeps.json"
    t = json.loads(f.read_text())
    t["sweeps"][i].update(changes)
    for k, v in changes.items():
        if v is None:
            t["sweeps"][i].pop(k)
    f.write_text(json.dumps(t))
    return f


def _spoil_points(rig: Path, i: int, value: float) -> Path:
    t = json.loads((rig / "scene-0000" / "sweeps.json").read_text())
    f = rig / "scene-0000" / t["sweeps"][i]["points"]
    z = dict(np.load(f))
    z["points"][3, 1] = value
    np.savez(f, **z)
    return f


def _spoil_box(rig: Path, **changes) -> Path:
    f = rig / "scene-0000" / "boxes.json"
    t = json.loads(f.read_text())
    t["boxes"][0].update(changes)
    f.write_text(json.dumps(t))
    return f


def _track_changes_class(rig: Path) -> Path:
    f = rig / "scene-0000" / "boxes.json"
    t = json.loads(f.read_text())
    first = t["boxes"][0]
    later = next(b for b in t["boxes"] if b["track"] == first["track"] and b["sweep"] != first["sweep"])
    later["class"] = (first["class"] + 1) % 10 + 1
    f.write_text(json.dumps(t))
    return f


@pytest.mark.parametrize(
    "spoil, words",
    [
        (lambda r: _spoil_points(r, 1, float("nan")), "NaN or infinite"),
        (lambda r: _spoil_points(r, 1, float("inf")), "NaN or infinite"),
        (lambda r: _spoil_sweep(r, 1, ego_pose={"translation": [0, 0, 0], "rotation": [2, 0, 0, 0.5]}), "not rigid"),
        (lambda r: _spoil_sweep(r, 2, timestamp=1), "out of order"),
        (lambda r: _spoil_sweep(r, 1, ego_pose=None), "ego_pose missing"),
        (lambda r: _spoil_sweep(r, 1, sensor="LIDAR_REAR"), "not a LiDAR"),
        (lambda r: _spoil_box(r, size=[4.0, -1.0, 1.5]), "must be positive"),
        (_track_changes_class, "changes class"),
        (lambda r: _spoil_sweep(r, 1, points="../../../etc/passwd.npz"), "leaves the rig folder"),
    ],
)
def test_bad_input_is_refused_in_one_line_naming_the_file_and_nothing_is_written(world, tmp_path, capsys, spoil, words):
    rig = _rig_copy(world, tmp_path / "rig")
    spoil(rig)
    out = tmp_path / "lab"
    capsys.readouterr()
    assert _label(rig, out) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err and "Traceback" not in err, err
    assert "scene-0000" in err  # the file (its scene folder) is named
    assert not out.exists()
    if "NaN" not in words:  # the tables are checked before any folder is made
        assert not list(tmp_path.glob(".lab*"))


def test_the_pose_check_is_rigid_not_just_finite():
    from occkit.geometry.transforms import rigid_problem

    T = np.eye(4)
    T[0, 1] = 0.3  # a shear
    assert rigid_problem(T) and rigid_problem(np.eye(4)) is None


def test_refining_boxes_of_a_recording_without_boxes_is_refused_before_any_work(world, tmp_path, capsys):
    rig = _rig_copy(world, tmp_path / "rig")
    for f in rig.glob("*/boxes.json"):
        f.unlink()
    out = tmp_path / "lab"
    capsys.readouterr()
    assert _label(rig, out, "--refine-boxes") == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--refine-boxes" in err and "no boxes" in err, err
    assert not out.exists() and not list(tmp_path.glob(".lab*"))


def test_the_imperfect_recording_options_run_and_say_what_they_changed(world, tmp_path):
    out = tmp_path / "lab"
    argv = ["--refine-poses", "--refine-boxes", "--find-moving", "--densify", "tsdf"]
    assert _label(world, out, *argv) == 0
    rep = json.loads((out / "report.json").read_text())
    for scene in rep["scenes"]:
        assert {"refine_poses", "refine_boxes", "find_moving", "densify"} <= set(scene["seconds"])
        pr = scene["pose_refinement"]
        assert set(pr["per_sweep"]) == set(
            json.loads((world / "rig" / scene["scene"] / "sweeps.json").read_text())["sweeps"][i]["token"]
            for i in range(pr["sweeps"])
        )
        assert scene["box_refinement"]["boxes"] > 0 and "points_found_moving" in scene["found_moving"]
    cfg = json.loads((out / "annotations.json").read_text())["label_config"]
    assert cfg["refine_poses"]["enabled"] and cfg["refine_boxes"]["enabled"] and cfg["find_moving"]["enabled"]
    assert cfg["densify"]["method"] == "tsdf"
