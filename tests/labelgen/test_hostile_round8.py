"""Cases of the eighth hostile round (issue 105; docs/hardening.md, "Eighth round"): those the label command's own
checks meet, and those of the recording readers (nuScenes tables, SemanticKITTI and KITTI-360 files, point
folders, rig folders, ROS bags, ``--refine-poses`` / ``--refine-boxes``). Each is refused in one line naming the
file, field or option, before any folder is made, and never answered in another command's words, or said in one
warning line; the inputs are tiny tables and files written here."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket

import numpy as np
import pytest

from occkit.cli import main


def _refused(argv: list[str], capsys) -> str:
    capsys.readouterr()
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def _scans(tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    for i in range(2):
        np.save(folder / f"{i:06d}.npy", np.array([[5.0, 0, -1.8], [6.0, 1, -1.8]], np.float32))
    (folder / "poses.txt").write_text("1 0 0 0 0 1 0 0 0 0 1 0\n1 0 0 1 0 1 0 0 0 0 1 0\n")
    return folder


def test_a_reversed_grid_range_is_called_reversed_not_a_fraction_of_voxels(tmp_path, capsys):
    folder, out = _scans(tmp_path), tmp_path / "lab"
    err = _refused(["label", "--data", str(folder), "--out", str(out), "--grid", "0.4 40 -40 -1 -40 40 5.4"], capsys)
    assert "the x range 40.0 .. -40.0 is empty or reversed" in err and "whole number" not in err, err
    assert not out.exists()


def test_write_rig_and_out_together_are_refused(tmp_path, capsys):
    folder = _scans(tmp_path)
    err = _refused(["label", "--data", str(folder), "--out", str(tmp_path / "a"), "--write-rig", str(tmp_path / "b")],
                   capsys)  # fmt: skip
    assert "--write-rig and --out: give one" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_coordinate_named_as_the_label_field_is_refused(tmp_path, capsys):
    folder = _scans(tmp_path)
    err = _refused(["label", "--data", str(folder), "--out", str(tmp_path / "a"), "--label-field", "x"], capsys)
    assert "--label-field x: a coordinate of the points, not a field of labels" in err, err


def test_a_lock_taken_on_another_host_is_not_said_to_be_running(tmp_path, capsys):
    from occkit.locks import lock_path

    folder, out = _scans(tmp_path), tmp_path / "lab"
    lock = lock_path(out)
    lock.parent.mkdir(parents=True, exist_ok=True)
    other = socket.gethostname() + "-elsewhere"
    lock.write_text(json.dumps({"pid": os.getpid(), "host": other, "command": "label", "since": "2026-11-29"}))
    err = _refused(["label", "--data", str(folder), "--out", str(out)], capsys)
    assert f"on host {other}" in err and "which this host cannot see (it may still run)" in err, err
    assert "which still runs" not in err


# ---- nuScenes tables: a tiny root written by hand (one LiDAR, two keyframes a scene, one car), no labelling

NUSC_VERSION = "v1.0-test"


def _nuscenes_root(root, scenes=("scene-0001",)):
    """A nuScenes root of ``scenes`` (two keyframes each, one car annotated at both) that nuscenes-devkit loads."""
    from occkit.data.nuscenes_tables import LIDARSEG_CATEGORIES, NUSCENES_TABLES

    t: dict[str, list] = {name: [] for name in NUSCENES_TABLES}
    cats = enumerate(LIDARSEG_CATEGORIES)
    t["category"] = [{"token": f"cat{i}", "name": n, "description": "", "index": i} for i, n in cats]
    t["attribute"] = [{"token": "att", "name": "vehicle.parked", "description": ""}]
    t["visibility"] = [{"token": "1", "level": "v0-40", "description": ""}]
    t["sensor"] = [{"token": "sen", "channel": "LIDAR_TOP", "modality": "lidar"}]
    t["calibrated_sensor"] = [
        {"token": "cal", "sensor_token": "sen", "translation": [0.9, 0.0, 1.8], "rotation": [1.0, 0.0, 0.0, 0.0],
         "camera_intrinsic": []}
    ]  # fmt: skip
    t["log"] = [{"token": "log", "logfile": "l", "vehicle": "v", "date_captured": "2020-01-01", "location": "x"}]
    t["map"] = [{"token": "map", "log_tokens": ["log"], "category": "semantic_prior", "filename": "maps/map.png"}]
    (root / "maps").mkdir(parents=True)
    (root / "maps" / "map.png").write_bytes(b"")
    (root / "samples" / "LIDAR_TOP").mkdir(parents=True)
    car = f"cat{LIDARSEG_CATEGORIES.index('vehicle.car')}"
    points = np.array([[5, 0, -1.8, 1, 0], [6, 1, -1.8, 1, 1], [8, -2, 0, 1, 2]], np.float32)
    for k, name in enumerate(scenes):
        s = [f"{k}s0", f"{k}s1"]
        t["scene"].append({"token": f"{k}sc", "log_token": "log", "nbr_samples": 2, "first_sample_token": s[0],
                           "last_sample_token": s[1], "name": name, "description": ""})  # fmt: skip
        t["instance"].append({"token": f"{k}in", "category_token": car, "nbr_annotations": 2,
                              "first_annotation_token": f"{k}a0", "last_annotation_token": f"{k}a1"})  # fmt: skip
        for i in range(2):
            ts, f = 1_600_000_000_000_000 + 10_000_000 * k + 500_000 * i, f"samples/LIDAR_TOP/{k}_{i}.pcd.bin"
            points.tofile(root / f)
            link = {"prev": f"{k}%s{i - 1}" if i else "", "next": "" if i else f"{k}%s1"}
            t["sample"].append({"token": s[i], "timestamp": ts, "scene_token": f"{k}sc",
                                **{key: v % "s" if v else v for key, v in link.items()}})  # fmt: skip
            t["ego_pose"].append({"token": f"{k}e{i}", "timestamp": ts, "rotation": [1.0, 0.0, 0.0, 0.0],
                                  "translation": [100.0 * k + 2.0 * i, 0.0, 0.0]})  # fmt: skip
            t["sample_data"].append({"token": f"{k}d{i}", "sample_token": s[i], "ego_pose_token": f"{k}e{i}",
                                     "calibrated_sensor_token": "cal", "timestamp": ts, "fileformat": "pcd",
                                     "is_key_frame": True, "height": 0, "width": 0, "filename": f,
                                     **{key: v % "d" if v else v for key, v in link.items()}})  # fmt: skip
            t["sample_annotation"].append({"token": f"{k}a{i}", "sample_token": s[i], "instance_token": f"{k}in",
                                           "visibility_token": "1", "attribute_tokens": ["att"],
                                           "translation": [100.0 * k + 12.0, 3.0, 0.8], "size": [1.9, 4.5, 1.6],
                                           "rotation": [1.0, 0.0, 0.0, 0.0], "num_lidar_pts": 3, "num_radar_pts": 0,
                                           **{key: v % "a" if v else v for key, v in link.items()}})  # fmt: skip
    (root / NUSC_VERSION).mkdir()
    for name, rows in t.items():
        (root / NUSC_VERSION / f"{name}.json").write_text(json.dumps(rows))
    return root


def _edit_table(root, table, edit):
    f = root / NUSC_VERSION / f"{table}.json"
    rows = json.loads(f.read_text())
    edit(rows)
    f.write_text(json.dumps(rows))  # NaN written as NaN, as Python's json (and json.load) take it
    return f


def test_the_hand_written_nuscenes_root_reads_as_it_is(tmp_path):
    """The hand-written root the cases below spoil is one both readers take as it is."""
    pytest.importorskip("nuscenes.nuscenes", reason="nuscenes-devkit is not installed")
    from occkit.data.recordings.nuscenes import NuScenesOptions, NuScenesReader

    rec = NuScenesReader(_nuscenes_root(tmp_path / "n"), NuScenesOptions()).read("scene-0001")
    assert [s.token for s in rec.sweeps] == ["0s0", "0s1"] and [len(s.boxes) for s in rec.sweeps] == [1, 1]


@pytest.mark.parametrize(
    "table, field, value, said",
    [
        ("sample_annotation", "translation", [float("nan"), 3.0, 0.8], "is not finite (NaN or infinite)"),
        ("sample_annotation", "size", [1.9, 0.0, 1.6], "has a side that is not positive"),
        ("sample_annotation", "rotation", [2.0, 0.0, 0.0, 0.0], "is not a unit quaternion"),
        ("ego_pose", "translation", [1.0, "2", 0.0], "is not a list of 3 numbers"),
        ("sample_data", "timestamp", 1.6e15, "is not a whole number"),
    ],
)
def test_a_bad_number_in_a_nuscenes_table_is_named_by_table_token_and_field(tmp_path, capsys, table, field, value,
                                                                            said):  # fmt: skip
    pytest.importorskip("nuscenes.nuscenes", reason="nuscenes-devkit is not installed")
    root = _nuscenes_root(tmp_path / "n")
    f = _edit_table(root, table, lambda rows: rows[-1].update({field: value}))
    token = json.loads(f.read_text())[-1]["token"]
    err = _refused(["label", "--data", str(root), "--out", str(tmp_path / "o")], capsys)
    assert f"{f}: record {token!r}: {field} {value!r} {said}" in err and "internal error" not in err, err
    if table == "sample_annotation":  # prepare loads the tables through the same check
        err = _refused(["prepare", "nuscenes", "--dataroot", str(root), "--out", str(tmp_path / "p")], capsys)
        assert f"{f}: record {token!r}: {field} {value!r} {said}" in err, err


def test_two_nuscenes_scenes_of_one_name_are_refused_naming_both_tokens(tmp_path, capsys):
    pytest.importorskip("nuscenes.nuscenes", reason="nuscenes-devkit is not installed")
    root = _nuscenes_root(tmp_path / "n", scenes=("scene-0001", "scene-0001"))
    err = _refused(["label", "--data", str(root), "--out", str(tmp_path / "o")], capsys)
    table = root / NUSC_VERSION / "scene.json"
    assert f"{table}: two scenes are named 'scene-0001' (tokens '0sc' and '1sc')" in err, err
    assert not (tmp_path / "o").exists()


def test_sweep_times_out_of_order_name_sample_data_not_the_scene_table(tmp_path, capsys):
    pytest.importorskip("nuscenes.nuscenes", reason="nuscenes-devkit is not installed")
    root = _nuscenes_root(tmp_path / "n")
    f = _edit_table(root, "sample_data", lambda rows: rows[1].update(timestamp=rows[0]["timestamp"]))
    _edit_table(root, "sample", lambda rows: rows[1].update(timestamp=rows[0]["timestamp"]))
    err = _refused(["label", "--data", str(root), "--out", str(tmp_path / "o")], capsys)
    assert err.startswith(f"occkit label: error: {f}: LIDAR_TOP sample_data '0d1' of scene scene-0001: timestamp"), err
    assert "scene.json" not in err and "out of order" in err


def test_a_missing_nuscenes_table_is_said_in_the_label_commands_words(tmp_path, capsys):
    pytest.importorskip("nuscenes.nuscenes", reason="nuscenes-devkit is not installed")
    root = _nuscenes_root(tmp_path / "n")
    (root / NUSC_VERSION / "visibility.json").unlink()
    err = _refused(["label", "--data", str(root), "--out", str(tmp_path / "o")], capsys)
    assert "visibility.json: missing: the nuScenes table 'visibility', which label needs" in err, err
    assert "prepare" not in err and "--dataroot" not in err and f"is --data the folder holding {NUSC_VERSION}/" in err


# ---- SemanticKITTI sequences, point folders, rig folders: tiny files written here, read without labelling


def _sequence(tmp_path, n=3, labels=(10, 40, 50)):
    """A SemanticKITTI ``sequences/00`` of ``n`` scans of three points, each with a ``.label`` of ``labels``."""
    seq = tmp_path / "sk" / "sequences" / "00"
    (seq / "velodyne").mkdir(parents=True)
    (seq / "labels").mkdir()
    for i in range(n):
        np.array([[5, 0, -1.7, 0], [6, 1, -1.7, 0], [8, -2, 0, 0]], np.float32).tofile(
            seq / "velodyne" / f"{i:06d}.bin"
        )
        np.array(labels, np.uint32).tofile(seq / "labels" / f"{i:06d}.label")
    (seq / "poses.txt").write_text("".join(f"1 0 0 0 0 1 0 0 0 0 1 {i}\n" for i in range(n)))
    (seq / "calib.txt").write_text("Tr: 0 -1 0 0 0 0 -1 0 1 0 0 0\n")
    return seq


def _kitti(seq):
    from occkit.data.recordings.kitti import KittiOptions, KittiReader

    return KittiReader(seq.parent.parent, KittiOptions())


def test_semantickitti_raw_ids_outside_its_learning_map_are_refused_naming_the_file_and_ids(tmp_path):
    seq = _sequence(tmp_path)
    bad = seq / "labels" / "000001.label"
    np.array([10, 7, 300 | (5 << 16)], np.uint32).tofile(bad)  # 7 and 300 are no SemanticKITTI raw ids
    rec = _kitti(seq).read("00", load_points=False)  # the check before any work reads the sizes only
    assert rec.warnings == []
    with pytest.raises(ValueError) as e:
        _kitti(seq).read("00")
    assert str(e.value).startswith(f"{bad}: raw label ids 7, 300 at 2 of 3 points are not SemanticKITTI's"), e.value


def test_a_scan_without_its_label_file_in_a_labelled_sequence_is_said_in_one_line(tmp_path):
    seq = _sequence(tmp_path, n=4)
    (seq / "labels" / "000002.label").unlink()
    rec = _kitti(seq).read("00")
    assert rec.sweeps[2].labels is None and rec.sweeps[1].labels is not None
    assert len(rec.warnings) == 1 and rec.warnings[0].startswith(
        f"1 of 4 scans have no labels file in {seq / 'labels'} (the first: 000002.label)"
    ), rec.warnings
    for f in (seq / "labels").iterdir():  # a sequence without labels at all (the test split's) is said elsewhere
        f.unlink()
    assert _kitti(seq).read("00").warnings == []


def test_a_singular_camera_projection_in_calib_txt_is_refused_naming_it(tmp_path):
    from PIL import Image

    seq = _sequence(tmp_path)  # image_2 holds an image: its P2 is read (and was solved with: numpy's error)
    (seq / "image_2").mkdir()
    Image.new("RGB", (8, 4)).save(seq / "image_2" / "000000.png")
    (seq / "calib.txt").write_text("P2: " + " ".join(["0"] * 12) + "\nTr: 0 -1 0 0 0 0 -1 0 1 0 0 0\n")
    with pytest.raises(ValueError) as e:
        _kitti(seq).read("00", load_points=False)
    assert str(e.value).startswith(f"{seq / 'calib.txt'}: the 'P2:' first three columns are singular"), e.value


def test_scan_times_out_of_order_name_the_times_file_not_the_sequence(tmp_path):
    seq = _sequence(tmp_path)
    (seq / "times.txt").write_text("0.0\n0.1\n0.1\n")
    with pytest.raises(ValueError) as e:
        _kitti(seq).read("00", load_points=False)
    assert str(e.value) == (  # check_record's rule, naming the row the time was read from
        f"{seq / 'times.txt'}:3 (scan 000002): time 0.100000 s from the first sweep is not after the previous "
        "sweep's 0.100000 s (out of order)"
    )


def test_tum_pose_times_out_of_order_name_the_poses_file_not_a_scan(tmp_path, capsys):
    folder = _scans(tmp_path)
    np.save(folder / "000002.npy", np.array([[5.0, 0, -1.8]], np.float32))
    (folder / "poses.txt").write_text("0.0 0 0 0 0 0 0 1\n0.1 1 0 0 0 0 0 1\n0.1 2 0 0 0 0 0 1\n")
    err = _refused(["label", "--data", str(folder), "--out", str(tmp_path / "o")], capsys)
    said = "line 3: time 0.100000 s from the first sweep is not after the previous sweep's 0.100000 s (out of order)"
    assert f"--poses {folder / 'poses.txt'}: {said}" in err, err
    assert "sweep '000002'" not in err


def test_a_kitti_pose_row_that_is_no_rigid_transform_is_named_by_its_line(tmp_path, capsys):
    folder = _scans(tmp_path)  # check_record holds a scan's pose rigid, naming the row it was read from
    (folder / "poses.txt").write_text("1 0 0 0 0 1 0 0 0 0 1 0\n2 0 0 1 0 1 0 0 0 0 1 0\n")
    err = _refused(["label", "--data", str(folder), "--out", str(tmp_path / "o")], capsys)
    assert f"--poses {folder / 'poses.txt'}: line 2: ego_pose is not rigid" in err, err


def _rig(tmp_path, labels=None, boxes=None):
    """A rig folder of one scene, two sweeps of three points (``labels``: their class ids, written as given;
    ``boxes``: the rows of its boxes.json, None: no boxes.json)."""
    from occkit.data.rig import write_rig_meta, write_scene
    from occkit.data.scene_record import SceneRecord, Sweep

    pts = np.array([[5, 0, -1.8], [6, 1, -1.8], [8, -2, 0]], np.float32)
    sweeps = [Sweep(f"t{i}", 1_600_000_000_000_000 + 100_000 * i, "L", np.eye(4), pts, keyframe=True) for i in range(2)]
    rec = SceneRecord("s", sweeps, {"L": np.eye(4)}, classes=("car", "driveable_surface", "others"))
    rig = tmp_path / "rig"
    write_rig_meta(rig, rec, ["s"])
    write_scene(rig, rec)
    if labels is not None:
        np.savez(rig / "s" / "lidar" / "t1.npz", points=pts, labels=np.asarray(labels, np.int64))
    if boxes is not None:
        (rig / "s" / "boxes.json").write_text(json.dumps({"boxes": boxes}))
    return rig


def test_a_point_label_of_minus_one_is_said_as_minus_one(tmp_path, capsys):
    rig = _rig(tmp_path, labels=[2, -1, 0])
    err = _refused(["label", "--data", str(rig), "--out", str(tmp_path / "o")], capsys)
    assert f"{rig / 's' / 'lidar' / 't1.npz'}: labels: id -1 at 1 of 3 points, outside the class table (0..2)" in err
    from occkit.data.scene_record import SceneRecord, Sweep, check_record

    s = Sweep("t", 1, "L", np.eye(4), np.zeros((2, 3), np.float32), labels=np.array([-1, 2]), keyframe=True)
    with pytest.raises(ValueError, match=r"labels: id -1 at 1 of 2 points, outside the class table \(0\.\.2\)"):
        check_record(SceneRecord("s", [s], {"L": np.eye(4)}, classes=("a", "b", "c")))


def test_refine_boxes_with_an_empty_list_of_boxes_is_refused_naming_the_option(tmp_path, capsys):
    rig = _rig(tmp_path, boxes=[])
    err = _refused(["label", "--data", str(rig), "--out", str(tmp_path / "o"), "--refine-boxes"], capsys)
    assert err.startswith("occkit label: error: --refine-boxes: the boxes of scene 's' of ") and "empty list" in err
    assert not (tmp_path / "o").exists()


# ---- ROS bags: a tiny one written from the rig above by tools/rig_to_bag.py


def _rig_to_bag():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("rig_to_bag", Path(__file__).parents[2] / "tools" / "rig_to_bag.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_a_cloud_naming_a_field_twice_is_refused_naming_the_topic_and_stamp():
    pytest.importorskip("rosbags")
    from rosbags.typesys import Stores, get_typestore

    from occkit.data.recordings.rosbag import cloud_arrays, cloud_arrays_fields

    ts = get_typestore(Stores.ROS2_HUMBLE)
    msg = _rig_to_bag()._cloud(ts, 5, "lidar", np.array([[1, 2, 3], [4, 5, 6]], np.float32), None)
    PF = ts.types["sensor_msgs/msg/PointField"]
    msg.fields = [*msg.fields, PF(name="x", offset=12, datatype=PF.FLOAT32, count=1)]  # the intensity's bytes as x
    where = "b: /lidar/points cloud at stamp 5 ns"
    for read in (lambda: cloud_arrays(msg, where, None), lambda: cloud_arrays_fields(msg, where)):
        with pytest.raises(ValueError) as e:
            read()
        assert str(e.value) == (
            f"{where}: the cloud names the field x more than once (its fields: x, y, z, intensity, x): which one to "
            "read cannot be told"
        )


def test_boxes_whose_stamps_all_lie_outside_the_bag_are_refused_naming_the_file_and_the_span(tmp_path, capsys):
    pytest.importorskip("rosbags")
    rig = _rig(tmp_path)
    bag = tmp_path / "b"
    _rig_to_bag().write_bag(rig, "s", bag)
    row = {"track": 1, "class": 0, "center": [10, 0, 0.8], "size": [4, 2, 1.6], "yaw": 0.0}
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"boxes": [{**row, "stamp": 1_600_000_000_000}]}))  # microseconds, not ns
    err = _refused(["label", "--data", str(bag), "--out", str(tmp_path / "o"), "--boxes", str(boxes)], capsys)
    span = "1600000000000000000..1600000000100000000 ns"
    assert f"--boxes {boxes}: none of its 1 stamps (1600000000000..1600000000000 ns) lies within the clouds" in err
    assert f"on /lidar/points in {bag} ({span})" in err, err
    assert not (tmp_path / "o").exists()


def test_refine_poses_says_a_jump_it_keeps_in_one_warning_line_not_only_in_the_report():
    """A 500 m jump in the recorded poses from the third of four sweeps: the registration disagrees there, so
    the recorded pose is kept (no edge joins the two parts); the scene's warnings, which ``occkit label`` prints,
    say so."""
    pytest.importorskip("kiss_icp")
    import dataclasses

    from occkit.data.scene_record import SceneRecord, Sweep
    from occkit.geometry.grid import Grid
    from occkit.labelgen.pipeline import LabelOptions, label_scene

    rng = np.random.default_rng(0)
    n = 600
    walls = [np.c_[rng.uniform(-20, 30, n), np.full(n, y), rng.uniform(0, 6, n)] for y in (6.0, -7.0)]
    turns = [rng.uniform(0, 6.3, 300) for _ in range(4)]
    poles = [
        np.c_[x + 0.4 * np.cos(a), y + 0.4 * np.sin(a), rng.uniform(0, 4, 300)]
        for (x, y), a in zip([(-4, 3), (3, -4), (10, 4), (16, -5)], turns)
    ]
    cross = np.c_[np.full(n, 25.0), rng.uniform(-7, 6, n), rng.uniform(0, 5, n)]
    ground = np.c_[rng.uniform(-20, 30, n), rng.uniform(-10, 10, n), np.zeros(n)]
    world = np.concatenate([ground, *walls, cross, *poles])
    T_el = np.eye(4)
    T_el[2, 3] = 1.8
    sweeps = []
    for i in range(4):
        T = np.eye(4)
        T[0, 3] = i + (500.0 if i >= 2 else 0.0)
        pts = (world - [i, 0.0, 1.8]).astype(np.float32)
        sweeps.append(Sweep(f"s{i}", 1_000_000 + 100_000 * i, "L", T, pts, keyframe=i == 0))
    opt = LabelOptions()
    opt = dataclasses.replace(opt, refine_poses=dataclasses.replace(opt.refine_poses, enabled=True))
    grid = Grid((-4, -4, -1), (4, 4, 3), (0.5, 0.5, 0.5))
    _, report = label_scene(SceneRecord("s", sweeps, {"L": T_el}), grid, ("others",), 1, opt)
    said = [w for w in report["warnings"] if w.startswith("--refine-poses:")]
    assert said == [
        "--refine-poses: the recorded pose kept at 1 of 4 sweeps, where the registration disagrees with the recorded "
        "motion by up to 500.00 m (sweep s2): a jump there stays in the labels (report.json: "
        "pose_refinement.problems)"
    ], report["warnings"]


# ---- two more of the same kind: a file's fault named by another file, a row silently replaced


def test_a_calibration_that_is_no_rigid_transform_is_named_by_calib_txt_not_by_each_scan(tmp_path):
    seq = _sequence(tmp_path)
    (seq / "calib.txt").write_text("Tr: 0 -1 0 0 0 0 -1 nan 1 0 0 0\n")  # was: '<seq>: sweep '00_000000': ego_pose'
    with pytest.raises(ValueError) as e:
        _kitti(seq).read("00", load_points=False)
    assert str(e.value) == f"{seq / 'calib.txt'}: Tr (velodyne -> camera 0): the pose is not a finite 4x4 matrix"


def test_a_kitti360_frame_posed_twice_is_refused_not_overwritten(tmp_path):
    from occkit.data.recordings.kitti import KittiOptions, KittiReader

    root, seq = tmp_path / "k360", "2013_05_28_drive_0000_sync"
    scans = root / "data_3d_raw" / seq / "velodyne_points" / "data"
    scans.mkdir(parents=True)
    for i in range(2):
        np.array([[5, 0, -1.7, 0], [6, 1, -1.7, 0]], np.float32).tofile(scans / f"{i:010d}.bin")
    (root / "calibration").mkdir()
    (root / "calibration" / "calib_cam_to_pose.txt").write_text("image_00: 1 0 0 0 0 1 0 0 0 0 1 0\n")
    (root / "calibration" / "calib_cam_to_velo.txt").write_text("1 0 0 0 0 1 0 0 0 0 1 0\n")
    (root / "data_poses" / seq).mkdir(parents=True)
    pf = root / "data_poses" / seq / "poses.txt"
    pf.write_text("0 1 0 0 0 0 1 0 0 0 0 1 0\n1 1 0 0 1 0 1 0 0 0 0 1 0\n")
    assert len(KittiReader(root, KittiOptions()).read(seq, load_points=False).sweeps) == 2
    pf.write_text("0 1 0 0 0 0 1 0 0 0 0 1 0\n1 1 0 0 1 0 1 0 0 0 0 1 0\n1 1 0 0 9 0 1 0 0 0 0 1 0\n")
    with pytest.raises(ValueError) as e:
        KittiReader(root, KittiOptions()).read(seq, load_points=False)
    assert str(e.value) == f"{pf}: frame 1 has two pose rows (one a registered frame)"
