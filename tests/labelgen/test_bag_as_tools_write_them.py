"""Bags as tools write them (occkit.data.recordings.rosbag): a bare ``.mcap`` written by the ``mcap`` library
(what kitti2mcap and many recorders write, no ``metadata.yaml``) and a bare ``.db3`` open as bags; a
``metadata.yaml`` that disagrees with its storage is said in one line; how keyframes are taken is said and
reported, and ``--keyframes`` stamps off the clouds are matched within a tolerance or refused, never dropped;
clouds a few ms outside the poses' span take an extrapolated pose, further ones are left out and counted;
``--ego-height`` moves the ego frame down to the ground. Small bags made here: 8 clouds of a few hundred
points, a car driving at constant velocity."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rosbags")

from occkit.cli import main  # noqa: E402

T0 = 1_700_000_000_000_000_000  # ns
PERIOD = 100_000_000  # 10 Hz clouds
N = 8
SPEED = 5.0  # m/s along x
LIDAR_Z = 1.8
PC, TF = "sensor_msgs/msg/PointCloud2", "tf2_msgs/msg/TFMessage"


def _points() -> np.ndarray:
    """A patch of ground and a wall, in the LiDAR frame (x, y, z, intensity)."""
    g = np.stack(np.meshgrid(np.linspace(-8, 8, 17), np.linspace(-8, 8, 17)), -1).reshape(-1, 2)
    ground = np.c_[g, np.full(len(g), -LIDAR_Z)]
    w = np.stack(np.meshgrid(np.linspace(-4, 4, 9), np.linspace(-1.5, 1.5, 7)), -1).reshape(-1, 2)
    wall = np.c_[np.full(len(w), 10.0), w[:, 0], w[:, 1]]
    pts = np.r_[ground, wall].astype(np.float32)
    return np.c_[pts, np.ones(len(pts), np.float32)]


def _cloud_fields(pts: np.ndarray) -> dict:
    arr = np.zeros(len(pts), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4")])
    for k, c in enumerate(("x", "y", "z", "intensity")):
        arr[c] = pts[:, k]
    fields = [
        {"name": c, "offset": 4 * k, "datatype": 7, "count": 1} for k, c in enumerate(("x", "y", "z", "intensity"))
    ]
    return {
        "height": 1,
        "width": len(pts),
        "fields": fields,
        "is_bigendian": False,
        "point_step": 16,
        "row_step": 16 * len(pts),
        "data": arr.tobytes(),
        "is_dense": True,
    }


def _pose(ns: int) -> tuple[list[float], list[float]]:
    """The car's pose at ``ns``: along x at constant speed, no turn (so extrapolation is exact)."""
    return [SPEED * (ns - T0) / 1e9, 2.0, 0.0], [1.0, 0.0, 0.0, 0.0]


def _messages(tf_stamps: list[int] | None = None, clouds: int = N) -> list[tuple[str, int, dict]]:
    """``(topic, stamp ns, message as a dict)``: a cloud every PERIOD from T0, /tf at ``tf_stamps`` (default the
    clouds'), /tf_static base_link -> velo."""

    def header(ns, frame):
        return {"stamp": {"sec": ns // 10**9, "nanosec": ns % 10**9}, "frame_id": frame}

    def transform(ns, parent, child, t, q):
        return {
            "header": header(ns, parent),
            "child_frame_id": child,
            "transform": {
                "translation": dict(zip("xyz", t)),
                "rotation": {"w": q[0], "x": q[1], "y": q[2], "z": q[3]},
            },
        }

    stamps = [T0 + i * PERIOD for i in range(clouds)]
    tf_stamps = stamps if tf_stamps is None else tf_stamps
    out = [
        (
            "/tf_static",
            T0,
            {"transforms": [transform(T0, "base_link", "velo", [0.5, 0.0, LIDAR_Z], [1.0, 0.0, 0.0, 0.0])]},
        )
    ]
    out += [("/tf", s, {"transforms": [transform(s, "map", "base_link", *_pose(s))]}) for s in tf_stamps]
    pts = _points()
    out += [("/velodyne_points", s, {"header": header(s, "velo"), **_cloud_fields(pts)}) for s in stamps]
    return sorted(out, key=lambda m: m[1])


def _to_rosbags_msg(ts, typ: str, d: dict):
    """A dict message as the typestore's class (recursively, by its field definitions)."""
    kw = {}
    for name, (kind, sub) in ts.fielddefs[typ][1]:
        v = d[name]
        if kind.name == "NAME":
            v = _to_rosbags_msg(ts, sub, v)
        elif kind.name == "SEQUENCE" and sub[0][0].name == "NAME":
            v = [_to_rosbags_msg(ts, sub[0][1], x) for x in v]
        elif kind.name == "SEQUENCE":
            v = np.frombuffer(v, np.uint8)
        kw[name] = v
    return ts.types[typ](**kw)


def _write_rosbags(path: Path, msgs, storage: str = "sqlite3") -> Path:
    """A ROS 2 bag folder written by rosbags' own writer."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_HUMBLE)
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as w:
        conns = {}
        for topic, ns, d in msgs:
            typ = PC if topic == "/velodyne_points" else TF
            if topic not in conns:
                conns[topic] = w.add_connection(topic, typ, typestore=ts)
            w.write(conns[topic], ns, ts.serialize_cdr(_to_rosbags_msg(ts, typ, d), typ))
    return path


SEP = "=" * 80 + "\n"
TIME = "MSG: builtin_interfaces/Time\nint32 sec\nuint32 nanosec\n"
HEADER = "MSG: std_msgs/Header\nbuiltin_interfaces/Time stamp\nstring frame_id\n"
PC_DEF = (
    "std_msgs/Header header\nuint32 height\nuint32 width\nsensor_msgs/PointField[] fields\nbool is_bigendian\n"
    "uint32 point_step\nuint32 row_step\nuint8[] data\nbool is_dense\n"
    + SEP + HEADER + SEP + TIME + SEP
    + "MSG: sensor_msgs/PointField\nuint8 FLOAT32=7\nstring name\nuint32 offset\nuint8 datatype\nuint32 count\n"
)  # fmt: skip
TF_DEF = (
    "geometry_msgs/TransformStamped[] transforms\n" + SEP
    + "MSG: geometry_msgs/TransformStamped\nstd_msgs/Header header\nstring child_frame_id\n"
    "geometry_msgs/Transform transform\n" + SEP + HEADER + SEP + TIME + SEP
    + "MSG: geometry_msgs/Transform\ngeometry_msgs/Vector3 translation\ngeometry_msgs/Quaternion rotation\n" + SEP
    + "MSG: geometry_msgs/Vector3\nfloat64 x\nfloat64 y\nfloat64 z\n" + SEP
    + "MSG: geometry_msgs/Quaternion\nfloat64 x 0\nfloat64 y 0\nfloat64 z 0\nfloat64 w 1\n"
)  # fmt: skip


def _write_mcap(path: Path, msgs) -> Path:
    """A bare ``.mcap`` written by the ``mcap`` library's ROS 2 writer (what kitti2mcap and recorders
    without rosbag2 write): no metadata.yaml, the schemas' text as ROS 2 .msg definitions."""
    writer_mod = pytest.importorskip("mcap_ros2.writer")
    with open(path, "wb") as f, writer_mod.Writer(f) as w:
        schemas = {PC: w.register_msgdef(PC, PC_DEF), TF: w.register_msgdef(TF, TF_DEF)}
        for topic, ns, d in msgs:
            w.write_message(topic, schemas[PC if topic == "/velodyne_points" else TF], d, log_time=ns)
    return path


def _open(data: Path, **options):
    from occkit.data.recordings.registry import open_recording

    return open_recording(data, None, options)


def _record(data: Path, **options):
    rec = _open(data, **options)
    return rec.read_scene(rec.scenes[0])


def _same(a, b) -> None:
    assert [s.token for s in a.sweeps] == [s.token for s in b.sweeps]
    for sa, sb in zip(a.sweeps, b.sweeps):
        assert np.array_equal(sa.points, sb.points) and np.array_equal(sa.intensity, sb.intensity)
        assert np.array_equal(sa.T_global_from_ego, sb.T_global_from_ego) and sa.keyframe == sb.keyframe
    assert {k: v.tolist() for k, v in a.lidars.items()} == {k: v.tolist() for k, v in b.lidars.items()}


@pytest.fixture(scope="module")
def folder_bag(tmp_path_factory) -> Path:
    """The messages as a ROS 2 bag folder (sqlite3) written by rosbags: what the bare files must read as."""
    return _write_rosbags(tmp_path_factory.mktemp("bagio") / "drive", _messages())


# ---- 1. bare storage files -------------------------------------------------------------------------


def test_a_bare_mcap_and_a_bare_db3_open_as_bags_named_after_the_file(folder_bag, tmp_path):
    from occkit.data.recordings.rosbag import READER, bag_paths

    bare = tmp_path / "bare"
    bare.mkdir()
    mcap = _write_mcap(bare / "kitti_0001.mcap", _messages())
    db3 = shutil.copy(next(folder_bag.glob("*.db3")), bare / "drive_b.db3")  # the storage without its metadata
    assert bag_paths(mcap) == [mcap] and bag_paths(Path(db3)) == [Path(db3)]
    assert bag_paths(bare) == [Path(db3), mcap]  # a folder of bare files: a scene each, sorted by name
    assert READER.detect(mcap) == "1 bag(s): MCAP file"
    assert READER.detect(bare) == "2 bag(s): MCAP file, sqlite3 file"
    assert _open(bare).scenes == ["drive_b", "kitti_0001"]  # the file's stem
    want = _record(folder_bag)
    assert len(want.sweeps) == N and want.keyframes == [0]
    for f in (mcap, Path(db3)):
        rec = _record(f)
        assert rec.name == f.stem
        _same(want, rec)


# ---- 2. metadata.yaml that disagrees with its storage -------------------------------------------------


def _edit_metadata(bag: Path, edit) -> None:
    import yaml

    meta = yaml.safe_load((bag / "metadata.yaml").read_text())
    edit({t["topic_metadata"]["name"]: t for t in meta["rosbag2_bagfile_information"]["topics_with_message_count"]})
    (bag / "metadata.yaml").write_text(yaml.safe_dump(meta))


QOS = {
    "history": "keep_last",
    "depth": 10,
    "reliability": "reliable",
    "durability": "volatile",
    "deadline": {"sec": 0, "nsec": 0},
    "lifespan": {"sec": 0, "nsec": 0},
    "liveliness": "automatic",
    "liveliness_lease_duration": {"sec": 0, "nsec": 0},
    "avoid_ros_namespace_conventions": False,
}


@pytest.mark.parametrize(
    "edit, words",
    [
        (
            lambda t: t["/velodyne_points"]["topic_metadata"].update(offered_qos_profiles=[QOS]),
            ["topic /velodyne_points: it counts 8 message(s), the storage holds 8, none read", "QoS profiles"],
        ),
        (
            lambda t: t["/velodyne_points"].update(message_count=13),
            ["topic /velodyne_points: it counts 13 message(s), the storage holds 8 and 8 were read"],
        ),
    ],
)
def test_a_metadata_yaml_that_disagrees_with_its_storage_is_said_in_one_line(folder_bag, tmp_path, capsys, edit, words):
    bag = shutil.copytree(folder_bag, tmp_path / "drive")
    _edit_metadata(bag, edit)
    capsys.readouterr()
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["label", "--data", str(bag), "--out", str(tmp_path / "lab")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"{bag / 'metadata.yaml'} disagrees with its storage (drive.db3)" in err, err
    assert all(w in err for w in words) and "give --data the storage file itself" in err, err
    assert not (tmp_path / "lab").exists()
    _same(_record(folder_bag), _record(next(bag.glob("*.db3"))))  # the storage itself reads, as the message says


# ---- 3. keyframes ---------------------------------------------------------------------------------------


def test_keyframes_without_marks_are_said_and_reported(folder_bag, tmp_path):
    opened = _open(folder_bag)
    assert "keyframes every 10th cloud from the first (--keyframe-every 10; a bag marks no keyframe)" in opened.describe
    rec = _record(folder_bag, keyframe_every=3)
    stamps = [T0 + i * PERIOD for i in (0, 3, 6)]
    assert [int(rec.sweeps[k].token) for k in rec.keyframes] == stamps
    assert rec.notes["keyframe_stamps"] == stamps and "every 3rd cloud" in rec.notes["keyframes"]
    assert "every 2nd cloud" in _open(folder_bag, keyframe_every=2).describe


def test_listed_keyframes_off_the_clouds_are_matched_within_the_tolerance_or_refused(folder_bag, tmp_path):
    kf = tmp_path / "kf.txt"
    last = T0 + (N - 1) * PERIOD
    # 20 ms before the first cloud, 3 ms after the fifth, 40 ms after the last: all within half the period (50 ms)
    kf.write_text(f"{T0 - 20_000_000}\n{T0 + 4 * PERIOD + 3_000_000}\n{last + 40_000_000}\n")
    rec = _record(folder_bag, keyframes=str(kf))
    assert [int(rec.sweeps[k].token) for k in rec.keyframes] == [T0, T0 + 4 * PERIOD, last]  # 3 of 3, none dropped
    assert rec.notes["keyframes_matched_off_stamp"] == 3 and rec.notes["keyframe_tolerance_s"] == 0.05
    assert "each the nearest cloud within half the cloud period" in _open(folder_bag, keyframes=str(kf)).describe
    kf.write_text(f"{T0}\n{T0 - 200_000_000}\n")  # 0.2 s before the first cloud
    with pytest.raises(ValueError, match=rf"stamp {T0 - 200_000_000} ns is 0.200 s from the nearest cloud on"):
        _record(folder_bag, keyframes=str(kf))
    kf.write_text(f"{T0 + 2 * PERIOD + 30_000_000}\n")  # between clouds, 30 ms from the nearest
    with pytest.raises(ValueError, match=r"is 0.030 s from the nearest cloud .* more than 0.02 s \(--keyframe-tol"):
        _record(folder_bag, keyframes=str(kf), keyframe_tolerance=0.02)
    assert int(_record(folder_bag, keyframes=str(kf)).sweeps[2].token) == T0 + 2 * PERIOD  # within the default
    kf.write_text(f"{T0 + PERIOD - 10_000_000}\n{T0 + PERIOD + 10_000_000}\n")
    with pytest.raises(ValueError, match="are both nearest the cloud at"):
        _record(folder_bag, keyframes=str(kf))
    with pytest.raises(ValueError, match="--keyframe-tolerance: .* give --keyframes FILE too"):
        _open(folder_bag, keyframe_tolerance=0.1)


def test_a_folder_of_bags_refuses_a_stamp_no_bag_holds(tmp_path):
    two = tmp_path / "two"
    two.mkdir()
    _write_mcap(two / "a.mcap", _messages(clouds=4))
    later = [(t, s + 10 * 10**9, _shift(d, 10 * 10**9)) for t, s, d in _messages(clouds=4)]
    _write_mcap(two / "b.mcap", later)
    kf = tmp_path / "kf.txt"
    kf.write_text(f"{T0}\n{T0 + 10 * 10**9}\n")
    opened = _open(two, keyframes=str(kf))
    assert [r.keyframes for r in (opened.read_scene(s) for s in opened.scenes)] == [[0], [0]]
    kf.write_text(f"{T0}\n{T0 + 10 * 10**9}\n{T0 + 5 * 10**9}\n")  # 5 s: between the two bags
    opened = _open(two, keyframes=str(kf))
    opened.read_scene("a")
    with pytest.raises(ValueError, match=rf"stamp {T0 + 5 * 10**9} ns lies within the clouds of none of the 2 bags"):
        opened.read_scene("b")


def _shift(d: dict, dt: int) -> dict:
    """A message dict with every header stamp ``dt`` ns later."""
    d = json.loads(json.dumps(d, default=lambda b: b.hex()))
    for h in [d.get("header")] + [t["header"] for t in d.get("transforms", [])]:
        if h:
            ns = h["stamp"]["sec"] * 10**9 + h["stamp"]["nanosec"] + dt
            h["stamp"] = {"sec": ns // 10**9, "nanosec": ns % 10**9}
    if "data" in d:
        d["data"] = bytes.fromhex(d["data"])
    if "transforms" in d and d["transforms"][0]["child_frame_id"] == "base_link":
        d["transforms"][0]["transform"]["translation"]["x"] += SPEED * dt / 1e9
    return d


# ---- 4. clock offsets --------------------------------------------------------------------------------


def test_clouds_just_past_the_poses_take_an_extrapolated_pose_further_ones_are_left_out(tmp_path):
    stamps = [T0 + i * PERIOD for i in range(N)]
    # /tf ends 2.7 ms before the last cloud (KITTI's clocks) and starts 0.16 s late: two clouds before it
    tf = [s for s in stamps if s >= T0 + 2 * PERIOD][:-1] + [stamps[-1] - 2_700_000]
    bag = _write_mcap(tmp_path / "late.mcap", _messages(tf_stamps=[T0 + 160_000_000, *tf]))
    rec = _record(bag, keyframe_every=2)
    assert [int(s.token) for s in rec.sweeps] == stamps[2:]  # the clouds before /tf left out, not the whole bag
    assert np.allclose(rec.sweeps[-1].T_global_from_ego[:3, 3], _pose(stamps[-1])[0], atol=1e-9)  # extrapolated
    assert rec.notes["clouds_left_out"] == 2 and rec.notes["left_out_stamps"] == stamps[:2]
    assert rec.notes["clouds_extrapolated"] == 1 and rec.keyframes == [0, 2, 4]  # every 2nd of the clouds kept
    (w,) = rec.warnings
    assert w.startswith(f"2 of {N} clouds on /velodyne_points left out (stamps {stamps[0]}..{stamps[1]} ns)"), w
    assert "--pose-tolerance 0.05 s" in w and "map -> base_link" in w
    exact = _record(bag, pose_tolerance=0)
    assert [int(s.token) for s in exact.sweeps] == stamps[2:-1] and exact.notes["clouds_left_out"] == 3
    wide = _record(bag, pose_tolerance=0.2)
    assert len(wide.sweeps) == N and wide.notes["clouds_extrapolated"] == 3
    assert np.allclose([s.T_global_from_ego[0, 3] for s in wide.sweeps], [_pose(s)[0][0] for s in stamps])


# ---- 5. the ego frame's height -------------------------------------------------------------------------


def test_ego_height_moves_the_ego_frame_down_to_the_ground(folder_bag):
    base = _record(folder_bag, ego_box="4 2 1.5 1 0 -0.2")
    low = _record(folder_bag, ego_box="4 2 1.5 1 0 -0.2", ego_height=0.93)
    for a, b in zip(base.sweeps, low.sweeps):
        assert np.allclose(b.T_global_from_ego[:3, 3], a.T_global_from_ego[:3, 3] - [0, 0, 0.93])
        assert np.allclose(b.T_global_from_ego @ low.lidars["velo"], a.T_global_from_ego @ base.lidars["velo"])
    assert np.isclose(low.lidars["velo"][2, 3], LIDAR_Z + 0.93)
    assert np.allclose(low.ego_center, (1.0, 0.0, 0.73)) and low.notes["ego_height"] == 0.93
    default = _record(folder_bag, ego_height=0.93)
    assert (
        default.ego_center == base.__class__.__dataclass_fields__["ego_center"].default
    )  # nuScenes' car, on the ground
    with pytest.raises(ValueError, match=r"--ego-height 50.0: metres"):
        _open(folder_bag, ego_height=50)


def test_lower_ego_raises_every_sensor_and_keeps_world_points():
    from occkit.data.scene_record import Camera, SceneRecord, Sweep, lower_ego

    T = np.eye(4)
    T[:3, 3] = [3.0, 4.0, 5.0]
    cam = Camera("front", np.eye(3), np.eye(4), (10, 20))
    rec = SceneRecord("s", [Sweep("a", 1, "l", T, np.zeros((0, 3), np.float32))], {"l": np.eye(4)}, {"front": cam})
    low = lower_ego(rec, 1.5)
    assert np.allclose(low.sweeps[0].T_global_from_ego[:3, 3], [3.0, 4.0, 3.5])
    assert low.lidars["l"][2, 3] == 1.5 and low.cameras["front"].T_ego_from_cam[2, 3] == 1.5
    assert low.ego_center[2] == rec.ego_center[2] + 1.5 and rec.sweeps[0].T_global_from_ego[2, 3] == 5.0  # a copy


# ---- the label command: the first line and report.json ---------------------------------------------------


def test_label_says_how_keyframes_were_taken_and_reports_their_stamps_and_the_clouds_left_out(tmp_path):
    stamps = [T0 + i * PERIOD for i in range(N)]
    bag = _write_mcap(tmp_path / "drive.mcap", _messages(tf_stamps=stamps[1:]))  # the first cloud 0.1 s before /tf
    out = tmp_path / "lab"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["label", "--data", str(bag), "--out", str(out), "--keyframe-every", "4", "--grid", "0.8"]) == 0
    lines = printed.getvalue().splitlines()
    assert "keyframes every 4th cloud from the first (--keyframe-every 4; a bag marks no keyframe)" in lines[0], lines
    assert any(f"drive: warning: 1 of {N} clouds on /velodyne_points left out" in x for x in lines), lines
    (scene,) = json.loads((out / "report.json").read_text())["scenes"]
    assert scene["recording"]["keyframe_stamps"] == [stamps[1], stamps[5]] and scene["keyframes"] == 2
    assert scene["recording"]["clouds_left_out"] == 1 and scene["recording"]["left_out_stamps"] == [stamps[0]]
    assert any("1 of 8 clouds" in w for w in scene["warnings"])
