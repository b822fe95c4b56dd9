"""``occkit label --data BAG`` (occkit.data.recordings.rosbag): ROS 2 bags (sqlite3 and MCAP) and a ROS 1
bag written by rosbags' own writers from a synthetic rig's sweeps (tools/rig_to_bag.py) give the labels
of the rig route without boxes and cameras, keyframes matched by timestamp; ``--write-rig`` of a bag
labels as the bag; poses from odometry and interpolated tf; each bad input one line naming the bag or
topic and the cause, with nothing written."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rosbags")

from conftest import load_tool, write_sweep_world  # noqa: E402

from occkit.cli import main  # noqa: E402

EGO_BOX = "4.1 1.8 1.6 1.3 0 0.8"  # the synthetic rig's (rig.json "ego"): a bag carries no vehicle box


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return write_sweep_world(tmp_path_factory.mktemp("bagw") / "w")


def _label(data: Path, out: Path, *extra: str) -> int:
    with contextlib.redirect_stdout(io.StringIO()):
        return main(["label", "--data", str(data), "--out", str(out), *extra])


def _labels_by_time(out: Path) -> dict[int, dict[str, np.ndarray]]:
    ann = json.loads((out / "annotations.json").read_text())
    got = {}
    for infos in ann["scene_infos"].values():
        for info in infos.values():
            z = np.load(out / info["gt_path"])
            got[info["timestamp"]] = {k: z[k] for k in z.files}
    return got


def _same_labels(a: Path, b: Path) -> int:
    la, lb = _labels_by_time(a), _labels_by_time(b)
    assert sorted(la) == sorted(lb)
    for t in la:
        assert sorted(la[t]) == sorted(lb[t])
        for k in la[t]:
            assert np.array_equal(la[t][k], lb[t][k]), (t, k, int((la[t][k] != lb[t][k]).sum()))
    return len(la)


@pytest.fixture(scope="module")
def rig_route(world, tmp_path_factory) -> Path:
    """The rig's labels without boxes and cameras (rig.json's cameras emptied, boxes.json removed)."""
    rig = tmp_path_factory.mktemp("plain") / "rig"
    shutil.copytree(world / "rig", rig)
    meta = json.loads((rig / "rig.json").read_text())
    meta["cameras"] = {}
    (rig / "rig.json").write_text(json.dumps(meta))
    for scene in meta["scenes"]:
        (rig / scene / "boxes.json").unlink()
    out = rig.parent / "labels"
    assert _label(rig, out) == 0
    return out


@pytest.fixture(scope="module")
def bags(world, tmp_path_factory) -> dict[str, Path]:
    """The scene as a ROS 2 bag (sqlite3, MCAP) and a ROS 1 bag, and the keyframes' stamps (ns) file."""
    tool = load_tool("rig_to_bag")
    root = tmp_path_factory.mktemp("bags")
    out = {"sqlite3": root / "s-sqlite3", "mcap": root / "s-mcap", "ros1": root / "s-ros1.bag"}
    for storage, path in out.items():
        stamps = tool.write_bag(world / "rig", "scene-0000", path, storage, odom_topic="/odom")
    (root / "keyframes.txt").write_text("".join(f"{s}\n" for s in stamps))
    out["keyframes"] = root / "keyframes.txt"
    return out


@pytest.fixture(scope="module")
def bag_labels(bags, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("baglabels")
    out = {}
    for storage in ("sqlite3", "mcap", "ros1"):
        out[storage] = root / storage
        assert _label(bags[storage], out[storage], "--keyframes", str(bags["keyframes"]), "--ego-box", EGO_BOX) == 0
    return out


@pytest.mark.parametrize("storage", ["sqlite3", "mcap", "ros1"])
def test_a_bag_labels_as_the_rig_without_boxes_and_cameras(rig_route, bags, bag_labels, storage):
    assert bags[storage].exists()
    assert _same_labels(rig_route, bag_labels[storage]) == 2
    ann = json.loads((bag_labels[storage] / "annotations.json").read_text())
    ((scene, infos),) = ann["scene_infos"].items()
    assert scene == ("s-ros1" if storage == "ros1" else f"s-{storage}")  # a scene a bag, named after it
    stamps = [int(s) for s in bags["keyframes"].read_text().split()]
    assert list(infos) == [str(s) for s in stamps]  # a keyframe's token: its cloud's stamp in ns
    assert [i["timestamp"] for i in infos.values()] == [s // 1000 for s in stamps]  # the index: microseconds


def test_write_rig_of_a_bag_labels_as_the_bag(bags, bag_labels, tmp_path, capsys):
    rig = tmp_path / "from-bag"
    assert main(["label", "--data", str(bags["sqlite3"]), "--keyframes", str(bags["keyframes"]), "--ego-box", EGO_BOX,
                 "--write-rig", str(rig)]) == 0  # fmt: skip
    assert "rig folder" in capsys.readouterr().out
    meta = json.loads((rig / "rig.json").read_text())
    assert meta["scenes"] == ["s-sqlite3"] and meta["ego"] == {"size": [4.1, 1.8, 1.6], "center": [1.3, 0.0, 0.8]}
    assert not list(tmp_path.glob(".from-bag*"))  # written beside and renamed: nothing left over
    assert _label(rig, tmp_path / "lab") == 0
    assert _same_labels(bag_labels["sqlite3"], tmp_path / "lab") == 2
    assert main(["label", "--data", str(bags["sqlite3"]), "--write-rig", str(rig)]) == 1  # never overwritten
    assert "not empty" in capsys.readouterr().err


def _records(data: Path, **options):
    from occkit.data.recordings.registry import open_recording

    rec = open_recording(data, None, options)
    return rec.read_scene(rec.scenes[0])


def _same_sweeps(a, b) -> None:
    assert [s.timestamp for s in a.sweeps] == [s.timestamp for s in b.sweeps]
    for sa, sb in zip(a.sweeps, b.sweeps):
        assert np.array_equal(sa.points, sb.points) and np.array_equal(sa.intensity, sb.intensity)
        assert np.array_equal(sa.T_global_from_ego, sb.T_global_from_ego)
        assert (sa.labels is None) == (sb.labels is None)
        assert sa.labels is None or np.array_equal(sa.labels, sb.labels)
    assert {k: v.tolist() for k, v in a.lidars.items()} == {k: v.tolist() for k, v in b.lidars.items()}


def test_poses_from_an_odometry_topic_equal_the_rigs(world, tmp_path):
    load_tool("rig_to_bag").write_bag(world / "rig", "scene-0000", tmp_path / "odom", odom_topic="/odom", tf=False)
    rig = _records(world / "rig")
    bag = _records(tmp_path / "odom", odom_topic="/odom", keyframe_every=3)
    _same_sweeps(rig, bag)
    assert [s.keyframe for s in bag.sweeps] == [s.keyframe for s in rig.sweeps] == [True, False, False, True]
    assert [s.keyframe for s in _records(tmp_path / "odom", odom_topic="/odom").sweeps] == [True, False, False, False]


def test_a_label_field_named_that_no_cloud_has_is_refused_not_read_as_no_labels(world, tmp_path):
    """``--label-field`` named: a scene none of whose clouds has it is refused; the default ``label`` is read
    where a cloud has it (the keyframes' clouds here), so the bag's own field named reads the same sweeps."""
    load_tool("rig_to_bag").write_bag(world / "rig", "scene-0000", tmp_path / "bag", odom_topic="/odom", tf=False)
    with pytest.raises(ValueError, match=r"no point has the field 'class_id' \(--label-field\)"):
        _records(tmp_path / "bag", odom_topic="/odom", label_field="class_id")
    named, default = (_records(tmp_path / "bag", odom_topic="/odom", label_field=f) for f in ("label", None))
    _same_sweeps(named, default)
    assert any(s.labels is not None for s in default.sweeps)
    assert all(s.labels is None for s in _records(tmp_path / "bag", odom_topic="/odom", label_field="").sweeps)


def test_boxes_from_a_side_file_keyed_by_stamp_equal_the_rigs(world, bags, tmp_path):
    tool = load_tool("rig_to_bag")
    n = tool.write_boxes(world / "rig", "scene-0000", tmp_path / "boxes.json")
    rig = _records(world / "rig")
    bag = _records(bags["sqlite3"], boxes=str(tmp_path / "boxes.json"), keyframe_every=3)
    assert n > 0 and sum(len(s.boxes) for s in bag.sweeps) == n
    for sa, sb in zip(rig.sweeps, bag.sweeps):
        for k in ("track", "cls", "center", "size", "yaw"):
            assert np.array_equal(getattr(sa.boxes, k), getattr(sb.boxes, k))
    rows = json.loads((tmp_path / "boxes.json").read_text())
    rows["boxes"][0]["stamp"] += 1  # within the bag's time, but no cloud's stamp
    (tmp_path / "boxes.json").write_text(json.dumps(rows))
    with pytest.raises(ValueError, match="is not the stamp of a cloud on /lidar/points"):
        _records(bags["sqlite3"], boxes=str(tmp_path / "boxes.json"))


def test_tf_is_interpolated_between_its_samples():
    """Half-way between a pose at the origin facing +x and one at (2, 4, 0) facing +y: (1, 2, 0), facing 45 degrees."""
    from occkit.data.recordings.rosbag import _Track

    track = _Track("map -> base_link")
    c = np.cos(np.pi / 4)
    track.add(1_000, (0.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0))
    track.add(3_000, (2.0, 4.0, 0.0), (c, 0.0, 0.0, c))  # 90 degrees about z
    T = track.at(2_000, "test")
    h = np.pi / 8
    assert np.allclose(T[:3, 3], [1.0, 2.0, 0.0])
    assert np.allclose(T[:3, :3], [[np.cos(2 * h), -np.sin(2 * h), 0], [np.sin(2 * h), np.cos(2 * h), 0], [0, 0, 1]])
    assert track.at(999, "test") is None and track.at(3_001, "test") is None  # never extrapolated


# ---- bad input -------------------------------------------------------------------------------------


def _bag(path: Path, msgs: list[tuple[str, str, int, object]]) -> Path:
    """A ROS 2 bag (sqlite3) of ``(topic, msgtype, log time ns, message)`` (message None: a topic without one)."""
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_HUMBLE)
    with Writer(path, version=9) as w:
        conns = {}
        for topic, mt, t, msg in msgs:
            if topic not in conns:
                conns[topic] = w.add_connection(topic, mt, typestore=ts)
            if msg is not None:  # None: the topic's connection alone
                w.write(conns[topic], t, ts.serialize_cdr(msg, mt))
    return path


def _scene_msgs(
    world: Path, tf_until: int = 99, stamps: list[int] | None = None, drop_z: bool = False, extra=(), tf_shift: int = 0
):
    """The scene's clouds and tf as messages: tf for the first ``tf_until`` sweeps (stamped ``tf_shift`` ns
    later), the clouds stamped ``stamps`` (ns) where given, the z field left out with ``drop_z``."""
    from rosbags.typesys import Stores, get_typestore

    tool, ts = load_tool("rig_to_bag"), get_typestore(Stores.ROS2_HUMBLE)
    rig = world / "rig"
    meta = json.loads((rig / "rig.json").read_text())
    sweeps = json.loads((rig / "scene-0000" / "sweeps.json").read_text())["sweeps"]
    TF, PC = "tf2_msgs/msg/TFMessage", "sensor_msgs/msg/PointCloud2"
    first = sweeps[0]["timestamp"] * 1000
    lidar = tool._transform(ts, first, "base_link", "LIDAR_TOP", meta["lidars"]["LIDAR_TOP"])
    out = [("/tf_static", TF, first, ts.types[TF](transforms=[lidar]))]
    for i, s in enumerate(sweeps):
        ns = s["timestamp"] * 1000
        if i < tf_until:
            tf = tool._transform(ts, ns + tf_shift, "map", "base_link", s["ego_pose"])
            out.append(("/tf", TF, ns + tf_shift, ts.types[TF](transforms=[tf])))
        cloud = tool._cloud(
            ts, stamps[i] if stamps else ns, "LIDAR_TOP", np.load(rig / "scene-0000" / s["points"])["points"], None
        )
        if drop_z:
            cloud.fields = [f for f in cloud.fields if f.name != "z"]
        out.append(("/lidar/points", PC, ns, cloud))
        for topic, make in extra:
            out.append((topic, PC, ns, make(ts, ns)))
    return out  # fmt: skip


def _missing_topic(world, tmp):
    return [_bag(tmp / "b", _scene_msgs(world)), "--lidar-topic", "/velodyne_points"]


def _wrong_type(world, tmp):
    return [_bag(tmp / "b", _scene_msgs(world)), "--lidar-topic", "/tf"]


def _two_clouds(world, tmp):
    other = [
        (
            "/radar/points",
            lambda ts, ns: load_tool("rig_to_bag")._cloud(ts, ns, "radar", np.zeros((3, 3), np.float32), None),
        )
    ]
    return [_bag(tmp / "b", _scene_msgs(world, extra=other))]


def _no_z(world, tmp):
    return [_bag(tmp / "b", _scene_msgs(world, drop_z=True))]


def _tf_far_off(world, tmp):  # /tf 10 s after every cloud: no cloud has a pose (a few left out are only counted)
    return [_bag(tmp / "b", _scene_msgs(world, tf_shift=10 * 10**9))]


def _out_of_order(world, tmp):
    sweeps = json.loads((world / "rig" / "scene-0000" / "sweeps.json").read_text())["sweeps"]
    stamps = [s["timestamp"] * 1000 for s in sweeps]
    stamps[1], stamps[2] = stamps[2], stamps[1]
    return [_bag(tmp / "b", _scene_msgs(world, stamps=stamps))]


def _no_tf(world, tmp):
    return [_bag(tmp / "b", [m for m in _scene_msgs(world) if m[0] == "/lidar/points"])]


def _garbage_ros1(world, tmp):
    (tmp / "b.bag").write_bytes(b"#ROSBAG V2.0\n" + bytes(range(256)) * 8)
    return [tmp / "b.bag"]


def _truncated_ros1(world, tmp):
    load_tool("rig_to_bag").write_bag(world / "rig", "scene-0000", tmp / "full.bag", "ros1")
    data = (tmp / "full.bag").read_bytes()
    (tmp / "b.bag").write_bytes(data[: len(data) // 2])
    (tmp / "full.bag").unlink()
    return [tmp / "b.bag"]


def _corrupt_sqlite(world, tmp):
    bag = _bag(tmp / "b", _scene_msgs(world))
    db = next(bag.glob("*.db3"))
    db.write_bytes(b"not a database" * 100)
    return [bag]


def _stray_keyframe(world, tmp):
    sweeps = json.loads((world / "rig" / "scene-0000" / "sweeps.json").read_text())["sweeps"]
    (tmp / "kf.txt").write_text(f"{sweeps[1]['timestamp'] * 1000 + 5_000_000}\n")  # 5 ms off a cloud
    return [_bag(tmp / "b", _scene_msgs(world)), "--keyframes", str(tmp / "kf.txt"), "--keyframe-tolerance", "0.001"]


def _no_clouds(world, tmp):  # a cloud topic (a connection) without a message
    return [
        _bag(
            tmp / "b",
            [m for m in _scene_msgs(world) if m[0] != "/lidar/points"]
            + [("/lidar/points", "sensor_msgs/msg/PointCloud2", 0, None)],
        )
    ]


@pytest.mark.parametrize(
    "make, words",
    [
        (_missing_topic, ["no topic /velodyne_points", "/lidar/points (sensor_msgs/msg/PointCloud2)", "/tf ("]),
        (_wrong_type, ["topic /tf holds tf2_msgs/msg/TFMessage, not sensor_msgs/msg/PointCloud2"]),
        (_two_clouds, ["several sensor_msgs/msg/PointCloud2 topics", "/radar/points", "--lidar-topic"]),
        (_no_z, ["/lidar/points cloud at stamp", "no z field", "x, y, intensity"]),
        (
            _tf_far_off,
            [
                "no transform from 'map' to 'base_link' at stamp 1600000000000000000 ns",
                "map -> base_link",
                "every cloud",
            ],
        ),
        (
            _out_of_order,
            ["/lidar/points: cloud stamps out of order", "1600000000166667000 ns comes after 1600000000333333000 ns"],
        ),
        (_no_tf, ["no /tf or /tf_static topic", "--odom-topic"]),
        (_garbage_ros1, ["cannot be read as a ROS bag"]),
        (_truncated_ros1, ["cannot be read as a ROS bag"]),
        (_corrupt_sqlite, ["cannot be read as a ROS bag"]),
        (_stray_keyframe, ["is 0.005 s from the nearest cloud on /lidar/points", "more than 0.001 s"]),
        (_no_clouds, ["topic /lidar/points holds no message"]),
    ],
)
def test_bad_bags_are_refused_in_one_line_naming_the_bag_and_nothing_is_written(world, tmp_path, capsys, make, words):
    data, *extra = make(world, tmp_path)
    out = tmp_path / "lab"
    capsys.readouterr()
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["label", "--data", str(data), "--out", str(out), *extra]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert all(w in err for w in words), err
    assert any(str(x) in err for x in [data, *extra])  # the bag (or the file given) is named
    assert not out.exists() and not list(tmp_path.glob(".lab*"))  # refused before any folder is made


def test_without_rosbags_the_extra_is_named(monkeypatch, tmp_path):
    import builtins

    from occkit.data.recordings import rosbag

    real = builtins.__import__

    def no_rosbags(name, *a, **k):
        if name == "rosbags" or name.startswith("rosbags."):
            raise ImportError("No module named 'rosbags'")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_rosbags)
    (tmp_path / "x.bag").write_bytes(b"")
    with pytest.raises(ImportError, match=r"pip install 'occkit\[rosbag\]'"):
        rosbag.READER.open(tmp_path / "x.bag", {})


def test_write_rig_of_a_rig_keeps_every_array_and_table(world, tmp_path, capsys):
    """A rig written again is the same rig: points, labels, track ids, poses, boxes and rig.json's tables."""
    out = tmp_path / "again"
    assert main(["label", "--data", str(world / "rig"), "--write-rig", str(out)]) == 0
    src = world / "rig" / "scene-0000"
    for f in sorted((src / "lidar").glob("*.npz")):
        a, b = np.load(f), np.load(out / "scene-0000" / "lidar" / f.name)
        assert sorted(a.files) == sorted(b.files) and "instance" in b.files
        assert all(np.array_equal(a[k], b[k]) for k in a.files)
    assert json.loads((src / "boxes.json").read_text()) == json.loads((out / "scene-0000" / "boxes.json").read_text())
    rows = json.loads((out / "scene-0000" / "sweeps.json").read_text())["sweeps"]
    assert all(bool(r.pop("images", None)) == r["keyframe"] for r in rows)  # the dataset's images, now the rig's
    assert json.loads((src / "sweeps.json").read_text())["sweeps"] == rows
    meta_a, meta_b = (json.loads((d / "rig.json").read_text()) for d in (world / "rig", out))
    assert {k: meta_a[k] for k in ("classes", "ego", "scenes")} == {k: meta_b[k] for k in ("classes", "ego", "scenes")}
    assert set(meta_b["cameras"]) == set(meta_a["cameras"])
    capsys.readouterr()
    assert main(["label", "--data", str(world / "rig"), "--write-rig", str(world / "rig" / "inside")]) == 1
    assert "--write-rig" in capsys.readouterr().err and not (world / "rig" / "inside").exists()
