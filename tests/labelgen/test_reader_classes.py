"""Readers as small classes (docs/design.md, "Adding a reader"): each a RecordingReader subclass with a typed
options dataclass, from which `occkit label --help` lists every option of a reader under it; an option given to a
reader that does not take it is refused naming the reader; a worker opens a recording once; a reader from another
package (examples/occkit-toyformat's .toyrec) labels as occkit's own do."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import json
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from occkit.cli import main


def _points_folder(root: Path, height: float = -1.8) -> Path:
    """Three scans of a flat ground ``height`` metres from the LiDAR (.npy) and their KITTI poses: the smallest
    recording the points reader opens."""
    folder = root / "scans"
    folder.mkdir(parents=True)
    xs, ys = np.meshgrid(np.linspace(-10, 10, 41), np.linspace(-10, 10, 41))
    ground = np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, height)], 1).astype(np.float32)
    rows = []
    for i in range(3):
        np.save(folder / f"{i:06d}.npy", ground)
        rows.append("1 0 0 %g 0 1 0 0 0 0 1 0" % (0.5 * i))
    (folder / "poses.txt").write_text("\n".join(rows) + "\n")
    return folder


def _label(args: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    with contextlib.redirect_stdout(io.StringIO()):
        rc = main(["label", *args])
    return rc, capsys.readouterr().err.strip()


def test_every_reader_is_a_class_with_a_typed_options_dataclass():
    from occkit.data.recordings import ReaderOptions, RecordingReader
    from occkit.data.recordings.registry import readers

    found = readers()
    assert {"rig", "nuscenes", "rosbag", "kitti", "points"} <= set(found)
    for name, reader in found.items():
        assert isinstance(reader, type) and issubclass(reader, RecordingReader) and reader.name == name
        assert dataclasses.is_dataclass(reader.Options) and issubclass(reader.Options, ReaderOptions)
        for f in reader.Options.fields():  # each option declared with its help and its type
            assert f.metadata.get("help") and callable(f.metadata.get("type")), (name, f.name)


def _sections(help_text: str) -> dict[str, str]:
    """The help's groups by reader name."""
    out, name = {}, None
    for line in help_text.splitlines():
        if line.startswith("reader ") and line.endswith(":"):
            name = line[len("reader ") : -1]
            out[name] = ""
        elif name and line and not line.startswith(" "):
            name = None
        elif name:
            out[name] += line + "\n"
    return out


def test_the_help_lists_every_option_of_a_reader_under_it(capsys):
    with pytest.raises(SystemExit), contextlib.redirect_stdout(io.StringIO()) as out:
        main(["label", "--help"])
    groups = _sections(out.getvalue())
    shared = ["--label-field", "--classes", "--ego-box", "--keyframe-every", "--keyframes"]
    for flag in shared + ["--poses", "--rate", "--lidar-pose", "--scene-name"]:
        assert f"  {flag} " in groups["points"], flag
    for flag in shared + ["--lidar-topic", "--world-frame", "--ego-frame", "--odom-topic", "--boxes"]:
        assert f"  {flag} " in groups["rosbag"], flag
    assert "  --keyframe-every " in groups["kitti"] and "  --lidar-height " in groups["kitti"]
    assert "--keyframes " not in groups["kitti"] and "--rate" not in groups["rosbag"]
    assert "  --version " in groups["nuscenes"] and "  --ego-height " in groups["rig"]
    for name in ("rig", "points", "rosbag"):  # every reader whose ego frame the recording defines
        assert "  --ego-height " in groups[name], name


def test_an_option_the_reader_does_not_take_is_refused_naming_the_reader(tmp_path, capsys):
    folder = _points_folder(tmp_path)
    out = tmp_path / "labels"
    for given, words in [
        (["--lidar-topic", "/velodyne"], ["--lidar-topic: not an option of the reader points", "--poses"]),
        (["--lidar-height", "1.7"], ["--lidar-height: not an option of the reader points"]),
        (["--keyframe-every", "2", "--keyframes", str(folder / "poses.txt")], ["--keyframes and --keyframe-every"]),
        (["--keyframe-every", "0"], ["--keyframe-every 0: must be a positive integer"]),
        (["--rate", "0"], ["--rate 0.0: must be a positive number"]),
        (["--scene-name", "a/b"], ["--scene-name 'a/b'"]),
    ]:
        rc, err = _label(["--data", str(folder), "--out", str(out), *given], capsys)
        assert rc == 1 and len(err.splitlines()) == 1 and "Traceback" not in err, (given, err)
        assert all(w in err for w in words), (given, err)
        assert not out.exists() and not list(tmp_path.glob(".labels*"))  # refused before any folder is made


def test_option_values_are_typed_as_a_worker_reopens_them(tmp_path):
    from occkit.data.recordings.registry import open_recording

    folder = _points_folder(tmp_path)
    with pytest.raises(ValueError, match=r"--rate 'fast': not a number"):
        open_recording(folder, "points", {"rate": "fast"})
    with pytest.raises(ValueError, match=r"--keyframe-every True: not a whole number"):
        open_recording(folder, "points", {"keyframe_every": True})  # JSON's true is no count
    rec = open_recording(folder, None, {"rate": "5", "scene_name": "drive", "keyframe_every": 2})
    assert rec.reader == "points" and rec.scenes == ["drive"] and rec.options.rate == 5.0
    assert rec.option_values() == {"keyframe_every": 2, "rate": 5.0, "scene_name": "drive"}
    again = open_recording(folder, "points", rec.option_values())  # what a worker re-opens with
    assert again.options == rec.options
    record = again.read_scene("drive")
    assert [s.keyframe for s in record.sweeps] == [True, False, True]
    assert [s.timestamp for s in record.sweeps] == [0, 200000, 400000]  # 5 scans a second


def test_a_worker_opens_a_recording_once(tmp_path, monkeypatch):
    from occkit.data.recordings import points
    from occkit.data.recordings.registry import open_recording

    folder = _points_folder(tmp_path)
    opened = []
    real = points.PointsReader.__init__
    monkeypatch.setattr(points.PointsReader, "__init__", lambda self, *a: (opened.append(1), real(self, *a))[1])
    a = open_recording(folder, "points", {"rate": 5.0}, ["scans"], keep=True)
    b = open_recording(folder, "points", {"rate": 5.0}, ["scans"], keep=True)
    c = open_recording(folder, "points", {"rate": 4.0}, ["scans"], keep=True)  # another recording: opened anew
    assert a is b and c is not a and len(opened) == 2


def _has_package_reader() -> bool:
    if importlib.util.find_spec("occkit_toyformat") is None:
        return False
    return any(ep.name == "toyrec" for ep in metadata.entry_points(group="occkit.recordings"))


@pytest.mark.skipif(
    not _has_package_reader(),
    reason="the example package's reader is not installed: pip install -e examples/occkit-toyformat (.ci/run does)",
)
def test_a_reader_from_another_package_labels_and_keeps_its_own_options(tmp_path, capsys):
    from occkit.data.recordings.registry import detect_reader

    xs, ys = np.meshgrid(np.linspace(-12, 12, 49), np.linspace(-12, 12, 49))
    ground = np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size)], 1)
    wall = np.stack([np.full(200, 6.0), np.linspace(-3, 3, 200), np.tile(np.linspace(0.2, 2, 20), 10)], 1)
    points = np.concatenate([ground, wall]).round(3).tolist()
    sweeps = [
        {"token": f"t{i}", "timestamp": 100000 * i, "position": [0.3 * i, 0.0, 0.0], "points": points} for i in range(4)
    ]
    f = tmp_path / "drive.toyrec"
    f.write_text(json.dumps({"scenes": {"drive": sweeps}}))
    assert detect_reader(f)[0].name == "toyrec"
    out = tmp_path / "labels"
    rc, err = _label(["--data", str(f), "--out", str(out), "--rate", "5"], capsys)
    assert rc == 1 and "--rate: not an option of the reader toyrec (it takes --toy-every)" in err, err
    rc, err = _label(["--data", str(f), "--out", str(out), "--toy-every", "0"], capsys)
    assert rc == 1 and "--toy-every 0: must be a positive integer" in err, err
    rc, err = _label(["--data", str(f), "--out", str(out), "--toy-every", "3"], capsys)
    assert rc == 0, err
    ann = json.loads((out / "annotations.json").read_text())
    tokens = sorted(ann["scene_infos"]["drive"])
    assert tokens == ["t0", "t3"]  # every 3rd sweep a keyframe, as its own option said
    sem = np.load(out / ann["scene_infos"]["drive"]["t0"]["gt_path"])["semantics"]
    assert (sem != sem.max()).any()  # something occupied: the ground and the wall were labelled


def test_ego_height_moves_the_ego_frame_down_to_the_ground(tmp_path):
    from occkit.data.recordings.registry import open_recording

    folder = _points_folder(tmp_path)
    plain = open_recording(folder, "points", {}).read_scene("scans")
    low = open_recording(folder, "points", {"ego_height": 1.8}).read_scene("scans")
    for a, b in zip(plain.sweeps, low.sweeps):
        assert b.T_global_from_ego[2, 3] == pytest.approx(a.T_global_from_ego[2, 3] - 1.8)
        assert np.array_equal(a.points, b.points)  # points stay in their sensor's frame
    assert low.lidars["LIDAR"][2, 3] == pytest.approx(plain.lidars["LIDAR"][2, 3] + 1.8)
    assert low.ego_center == plain.ego_center  # the default box is the ground's, not the recording's frame's
    with pytest.raises(ValueError, match=r"--ego-height 50.0: metres from the ground"):
        open_recording(folder, "points", {"ego_height": 50})


@pytest.mark.parametrize("height, ego_height, words", [
    (-1.8, None, ["below the grid's lowest voxel", "--ego-height H (here about 1.80)"]),
    (-0.8, None, ["the ground lies 0.80 m below the ego frame's origin", "--ego-height 0.80"]),
    (-0.8, "0.8", None),
])  # fmt: skip
def test_the_ground_check_warns_both_ways_naming_ego_height(tmp_path, capsys, height, ego_height, words):
    folder = _points_folder(tmp_path, height)
    extra = ["--ego-height", ego_height] if ego_height else []
    capsys.readouterr()
    assert main(["label", "--data", str(folder), "--out", str(tmp_path / "lab"), "--keyframe-every", "3", *extra]) == 0
    out = capsys.readouterr().out
    warned = [ln for ln in out.splitlines() if "warning" in ln and "ground" in ln]
    if words is None:
        assert not warned, out
    else:
        assert len(warned) == 1 and all(w in warned[0] for w in words), out


@pytest.mark.parametrize(
    ("reader", "values", "said"),
    [
        (
            "kitti",
            {"lidar_height": 0.0},
            "--lidar-height 0.0: the velodyne's height above the ground must lie in (0, 10)",
        ),
        ("kitti", {"lidar_height": 10.0}, "--lidar-height 10.0: "),  # an open interval: its ends refused
        ("kitti-raw", {"lidar_height": float("nan")}, "--lidar-height nan: "),
        ("points", {"rate": float("inf")}, "--rate inf: must be a positive number of scans a second"),
        ("points", {"image_tolerance": -0.5}, "--image-tolerance -0.5: must be a number of seconds, 0 or more"),
        ("points", {"points_frame": "ego"}, "--points-frame 'ego': one of sensor, world"),
        (
            "rosbag",
            {"pose_tolerance": 3601.0},
            "--pose-tolerance 3601.0: must be a number of seconds, 0 or more (at most 3600)",
        ),
    ],
)
def test_option_bounds_are_refused_where_they_are_declared(reader, values, said):
    from occkit.data.recordings.registry import get_reader

    with pytest.raises(ValueError) as e:
        get_reader(reader).Options.from_values(values, reader)
    assert str(e.value).startswith(said), e.value


def test_an_open_bound_takes_what_lies_inside_it():
    from occkit.data.recordings.kitti import KittiOptions

    assert KittiOptions(lidar_height=9.99).height() == 9.99 and KittiOptions(lidar_height=1e-3).height() == 1e-3
