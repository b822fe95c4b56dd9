"""ROS 1 and ROS 2 bags as a recording (docs/labels.md, "ROS bags"), read with ``rosbags`` (pure
Python, no ROS install; ``pip install 'occkit[rosbag]'``).

``--data`` is a ROS 1 ``.bag`` file, a ROS 2 bag (a folder holding ``metadata.yaml``, with MCAP or
sqlite3 storage), or a folder holding such bags: one scene a bag, named after it. Each
``sensor_msgs/PointCloud2`` message of the LiDAR topic is a sweep, stamped by its header (the token is
the stamp in nanoseconds, the sweep's timestamp that in microseconds), in the frame its header names.
Points with a non-finite x, y or z (the gaps of an organised cloud) are dropped; the field
``--label-field`` gives point labels where a cloud has it. Ego poses come from ``/tf`` and
``/tf_static`` (``--world-frame`` to ``--ego-frame`` at each cloud's stamp, interpolated: linear in
translation, spherical in rotation, never extrapolated) or from a ``nav_msgs/Odometry`` topic
(``--odom-topic``); the LiDAR's extrinsic is the transform from the ego frame to the cloud's frame
(``/tf_static``'s, or ``/tf``'s at that frame's first cloud, the nearest sample where none lies around
it). Boxes come from a side file in a rig's ``boxes.json`` schema whose rows name a cloud's ``stamp``
(ns) instead of a sweep token.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from occkit.data.recordings._shared import (
    _first_line,
    check_label_field,
    read_classes,
    read_stamps,
)
from occkit.data.recordings.spec import (
    EgoBoxOptions,
    KeyframeOptions,
    PointLabelOptions,
    RecordingReader,
    option,
)

CLOUD = "sensor_msgs/msg/PointCloud2"
ODOMETRY = "nav_msgs/msg/Odometry"
TF_TYPES = ("tf2_msgs/msg/TFMessage", "tf/msg/tfMessage")
TF_TOPICS = {"/tf": False, "/tf_static": True}  # topic -> static

#: PointField datatypes (sensor_msgs/PointField) as numpy type codes.
_FIELD_TYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}


def bag_paths(path: Path) -> list[Path]:
    """The bags ``path`` names: a ROS 1 ``.bag``, a ROS 2 bag folder (``metadata.yaml``), or the bags
    a folder holds (sorted by name); empty when none."""
    if path.is_file() and path.suffix == ".bag":
        return [path]
    if path.is_dir() and (path / "metadata.yaml").is_file():
        return [path]
    if path.is_dir():
        return sorted(
            c
            for c in path.iterdir()
            if (c.is_file() and c.suffix == ".bag") or (c.is_dir() and (c / "metadata.yaml").is_file())
        )
    return []


def scene_name(bag: Path) -> str:
    """A bag's scene: its file name without ``.bag``, or its folder's name."""
    return bag.stem if bag.suffix == ".bag" else bag.name


def _need_rosbags() -> None:
    try:
        import rosbags  # noqa: F401
    except ImportError as e:
        raise ImportError(f"reading ROS bags needs rosbags ({e}): pip install 'occkit[rosbag]'") from None


def _frame(name: str) -> str:
    """A tf frame id without ROS 1's leading slash."""
    return str(name).lstrip("/")


def _ns(stamp: Any) -> int:
    """A ``builtin_interfaces/Time`` (ROS 2: sec, nanosec) or ROS 1 time (sec, nanosec in rosbags) in nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


@contextmanager
def _reading(bag: Path) -> Iterator[Any]:
    """The bag open in an ``AnyReader``; anything rosbags cannot read is one line naming the bag."""
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    try:
        reader = AnyReader([bag], default_typestore=get_typestore(Stores.LATEST))
        reader.open()
    except Exception as e:  # noqa: BLE001 - a corrupt bag, whatever rosbags raises, is named
        raise ValueError(f"{bag}: cannot be read as a ROS bag ({type(e).__name__}: {_first_line(e)})") from None
    try:
        yield reader
    finally:
        try:
            reader.close()
        except Exception:  # noqa: BLE001, S110 - closing after an error says nothing new
            pass


def _messages(reader: Any, bag: Path, connections: list[Any]) -> Iterator[tuple[str, Any]]:
    """``(topic, message)`` of ``connections`` in the bag's order, deserialised; a message that
    cannot be read (a truncated or corrupt bag) is one line naming the bag and the topic."""
    it = reader.messages(connections=connections)
    topic = "?"
    while True:
        try:
            conn, _, raw = next(it)
            topic = conn.topic
            msg = reader.deserialize(raw, conn.msgtype)
        except StopIteration:
            return
        except Exception as e:  # noqa: BLE001 - rosbags' errors of a corrupt bag are many
            raise ValueError(
                f"{bag}: cannot be read as a ROS bag after topic {topic} ({type(e).__name__}: {_first_line(e)})"
            ) from None
        yield conn.topic, msg


def _topics(reader: Any) -> dict[str, str]:
    """Every topic of the bag and its message type (``?`` where its connections disagree)."""
    return {name: info.msgtype or "?" for name, info in reader.topics.items()}


def _listing(topics: Mapping[str, str]) -> str:
    return ", ".join(f"{t} ({m})" for t, m in sorted(topics.items())) or "none"


def _choose_topics(bag: Path, topics: Mapping[str, str], opts: dict[str, Any]) -> str:
    """The LiDAR topic of ``bag`` (``--lidar-topic``, else its one PointCloud2 topic), the odometry
    topic checked, and a source of poses there; a one-line error listing the topics otherwise."""
    want = opts["lidar_topic"]
    if want:
        if want not in topics:
            raise ValueError(f"{bag}: no topic {want} (--lidar-topic); its topics: {_listing(topics)}")
        if topics[want] != CLOUD:
            raise ValueError(f"{bag}: topic {want} holds {topics[want]}, not {CLOUD} (--lidar-topic)")
        topic = want
    else:
        clouds = sorted(t for t, m in topics.items() if m == CLOUD)
        if not clouds:
            raise ValueError(f"{bag}: no {CLOUD} topic; its topics: {_listing(topics)}")
        if len(clouds) > 1:
            raise ValueError(f"{bag}: several {CLOUD} topics ({', '.join(clouds)}): say which with --lidar-topic")
        topic = clouds[0]
    odom = opts["odom_topic"]
    if odom:
        if odom not in topics:
            raise ValueError(f"{bag}: no topic {odom} (--odom-topic); its topics: {_listing(topics)}")
        if topics[odom] != ODOMETRY:
            raise ValueError(f"{bag}: topic {odom} holds {topics[odom]}, not {ODOMETRY} (--odom-topic)")
    elif not any(topics.get(t) in TF_TYPES for t in TF_TOPICS):
        raise ValueError(
            f"{bag}: no /tf or /tf_static topic to take the poses from (or give a {ODOMETRY} topic with "
            f"--odom-topic); its topics: {_listing(topics)}"
        )
    return topic


def _slerp(q0: Any, q1: Any, a: float) -> Any:
    """Spherical interpolation of unit quaternions ``q0 -> q1`` at ``a`` in [0, 1] (the short way)."""
    import numpy as np

    q0 = q0 / np.linalg.norm(q0)
    q1 = q1 / np.linalg.norm(q1)
    d = float(np.dot(q0, q1))
    if d < 0:
        q1, d = -q1, -d
    if d > 0.9995:  # nearly the same rotation: a normalised linear blend
        q = q0 + a * (q1 - q0)
        return q / np.linalg.norm(q)
    th = np.arccos(d)
    return (np.sin((1 - a) * th) * q0 + np.sin(a * th) * q1) / np.sin(th)


class _Track:
    """The samples of one transform (a tf link ``parent -> child``, or an odometry topic), in time order:
    translation and quaternion (w, x, y, z) each, interpolated at a stamp and never extrapolated."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.rows: list[tuple[int, tuple[float, ...], tuple[float, ...]]] = []
        self.static = False
        self.child = ""  # an odometry topic's child frame
        self._done = False

    def add(self, stamp: int, t: tuple[float, ...], q: tuple[float, ...]) -> None:
        self.rows.append((stamp, t, q))
        self._done = False

    def _finish(self) -> None:
        if not self._done:
            self.rows.sort(key=lambda r: r[0])
            self._done = True

    def span(self) -> str:
        self._finish()
        return f"{self.rows[0][0]}..{self.rows[-1][0]} ns" if self.rows else "no sample"

    def at(self, stamp: int, where: str, nearest: bool = False) -> Any:
        """The transform at ``stamp``: a static link's last sample; else the sample at that stamp, or
        between the two around it; outside the samples None (or, ``nearest``, the nearest sample)."""
        import bisect

        import numpy as np

        from occkit.data.recordings._shared import matrix

        self._finish()
        rows = self.rows
        if self.static:
            return matrix(rows[-1][1], rows[-1][2], "ego_pose", where)
        stamps = [r[0] for r in rows]
        k = bisect.bisect_left(stamps, stamp)
        if k < len(rows) and stamps[k] == stamp:
            return matrix(rows[k][1], rows[k][2], "ego_pose", where)
        if 0 < k < len(rows):
            (s0, t0, q0), (s1, t1, q1) = rows[k - 1], rows[k]
            a = (stamp - s0) / (s1 - s0)
            t = (1 - a) * np.asarray(t0) + a * np.asarray(t1)
            q = _slerp(np.asarray(q0, np.float64), np.asarray(q1, np.float64), a)
            return matrix(t.tolist(), q.tolist(), "ego_pose", where)
        if nearest:
            r = rows[0] if k == 0 else rows[-1]
            return matrix(r[1], r[2], "ego_pose", where)
        return None


class _TfTree:
    """The transforms of ``/tf`` and ``/tf_static``: a link a (parent, child) pair of frames."""

    def __init__(self, bag: Path) -> None:
        self.bag = bag
        self.links: dict[tuple[str, str], _Track] = {}

    def add(self, msg: Any, static: bool) -> None:
        for ts in msg.transforms:
            p, c = _frame(ts.header.frame_id), _frame(ts.child_frame_id)
            link = self.links.get((p, c))
            if link is None:
                link = self.links[(p, c)] = _Track(f"{p} -> {c}")
            if static and not link.static:
                link.static, link.rows = True, []
            elif link.static and not static:
                continue  # a link on /tf_static stays static
            tr, r = ts.transform.translation, ts.transform.rotation
            link.add(_ns(ts.header.stamp), (tr.x, tr.y, tr.z), (r.w, r.x, r.y, r.z))

    def frames(self) -> list[str]:
        return sorted({f for pc in self.links for f in pc})

    def _path(self, a: str, b: str) -> list[tuple[str, str, bool]] | None:
        """The links from frame ``a`` to ``b``: ``(parent, child, forward)``, forward when the link
        maps ``child`` into ``parent`` along the way; None when no links join them."""
        from collections import deque

        nbrs: dict[str, list[tuple[str, tuple[str, str, bool]]]] = {}
        for p, c in self.links:
            nbrs.setdefault(p, []).append((c, (p, c, True)))
            nbrs.setdefault(c, []).append((p, (p, c, False)))
        prev: dict[str, tuple[str, tuple[str, str, bool]] | None] = {a: None}
        todo = deque([a])
        while todo:
            f = todo.popleft()
            if f == b:
                break
            for g, link in nbrs.get(f, []):
                if g not in prev:
                    prev[g] = (f, link)
                    todo.append(g)
        if b not in prev:
            return None
        out = []
        f = b
        while prev[f] is not None:
            g, link = prev[f]
            out.append(link)
            f = g
        return out[::-1]

    def lookup(self, a: str, b: str, stamp: int, what: str, nearest: bool = False) -> Any:
        """``T_a_from_b`` at ``stamp`` (ns): the links' transforms composed; a one-line error naming
        the stamp, the frames and the link that does not cover the stamp."""
        import numpy as np

        T = np.eye(4)
        if a == b:
            return T
        path = self._path(a, b)
        if path is None:
            raise ValueError(
                f"{self.bag}: no transform between frames {a!r} and {b!r} in /tf or /tf_static ({what}); "
                f"frames there: {', '.join(self.frames()) or 'none'}"
            )
        for p, c, forward in path:
            link = self.links[(p, c)]
            M = link.at(stamp, f"{self.bag}: /tf {link.name} at {stamp} ns", nearest=nearest)
            if M is None:
                raise ValueError(
                    f"{self.bag}: no transform from {a!r} to {b!r} at stamp {stamp} ns ({what}): the link "
                    f"{link.name} on /tf covers {link.span()} (never extrapolated)"
                )
            if forward:
                T = T @ M
            else:
                R = M[:3, :3].T
                inv = np.eye(4)
                inv[:3, :3], inv[:3, 3] = R, -R @ M[:3, 3]
                T = T @ inv
        return T


def cloud_arrays(msg: Any, where: str, label_field: str | None) -> tuple[Any, Any, Any]:
    """A PointCloud2's points ``(N, 3)`` float32, intensities ``(N,)`` float32 or None and labels ``(N,)``
    int64 or None (the field ``label_field`` where the cloud has it); points with a non-finite
    coordinate (an organised cloud's gaps) are dropped. ``where`` names the cloud in errors."""
    import numpy as np

    fields = {f.name: f for f in msg.fields}
    lacking = [c for c in "xyz" if c not in fields]
    if lacking:
        raise ValueError(f"{where}: the cloud has no {'/'.join(lacking)} field (its fields: {', '.join(fields)})")
    wanted = ["x", "y", "z"] + [n for n in ("intensity", label_field) if n and n in fields]
    order = ">" if msg.is_bigendian else "<"
    step, width, height = int(msg.point_step), int(msg.width), int(msg.height)
    formats, offsets = [], []
    for n in wanted:
        f = fields[n]
        code = _FIELD_TYPES.get(int(f.datatype))
        if code is None:
            raise ValueError(f"{where}: field {n} has datatype {f.datatype}, not a sensor_msgs/PointField type")
        if int(f.offset) + np.dtype(code).itemsize > step:
            raise ValueError(f"{where}: field {n} at offset {f.offset} lies outside a point ({step} bytes): corrupt")
        formats.append(order + code)
        offsets.append(int(f.offset))
    data = np.asarray(msg.data, dtype=np.uint8)
    row = int(msg.row_step)
    if row < width * step or len(data) < row * (height - 1) + width * step:
        raise ValueError(
            f"{where}: the cloud's data holds {len(data)} bytes, its header says {height} rows of {width} points "
            f"of {step} bytes (row_step {row}): corrupt"
        )
    if height > 1 and row != width * step:  # padded rows: keep each row's points
        data = np.concatenate([data[r * row : r * row + width * step] for r in range(height)])
    dt = np.dtype({"names": wanted, "formats": formats, "offsets": offsets, "itemsize": step})
    arr = np.frombuffer(data.tobytes(), dtype=dt, count=width * height)
    xyz = np.stack([arr["x"], arr["y"], arr["z"]], 1).astype(np.float32)
    keep = np.isfinite(xyz).all(1)
    xyz = np.ascontiguousarray(xyz[keep])
    inten = np.ascontiguousarray(arr["intensity"][keep], dtype=np.float32) if "intensity" in wanted else None
    labels = None
    if label_field and label_field in wanted:
        lab = arr[label_field][keep]
        if lab.dtype.kind == "f":
            if not np.isfinite(lab).all() or (lab != np.round(lab)).any():
                raise ValueError(f"{where}: field {label_field}: labels must be whole class ids")
        labels = lab.astype(np.int64)
    return xyz, inten, labels


def _options(options: BagOptions) -> dict[str, Any]:
    """The bag reader's options checked, the side files read."""
    opts = {
        "lidar_topic": options.lidar_topic or None,
        "label_field": options.field(),
        "world": _frame(options.world_frame or "map"),
        "ego": _frame(options.ego_frame or "base_link"),
        "odom_topic": options.odom_topic or None,
        "every": options.every(10),
        "keyframes": None,
        "keyframes_file": options.keyframes,
        "boxes": None,
        "boxes_file": options.boxes,
        "ego_box": options.ego(),
        "classes": read_classes(options.classes),
    }
    if opts["keyframes_file"]:
        opts["keyframes"] = sorted(set(read_stamps(opts["keyframes_file"])))
    if opts["boxes_file"]:
        opts["boxes"] = _read_boxes(Path(opts["boxes_file"]))
    return opts


def _read_boxes(f: Path) -> dict[int, list[dict[str, Any]]]:
    """``--boxes FILE``: a rig's ``boxes.json`` whose rows name a cloud's ``stamp`` (ns), by stamp."""
    from occkit.fileio import read_json

    if not f.is_file():
        raise FileNotFoundError(f"--boxes {f}: no such file")
    table = read_json(f)
    rows = table.get("boxes") if isinstance(table, dict) else None
    if not isinstance(rows, list):
        raise ValueError(f"--boxes {f}: want {{'boxes': [{{'stamp': ns, 'track', 'class', 'center', 'size', 'yaw'}}]}}")
    by: dict[int, list[dict[str, Any]]] = {}
    for i, b in enumerate(rows):
        if not isinstance(b, dict) or "stamp" not in b:
            raise ValueError(f"--boxes {f}: boxes[{i}]: needs stamp (the cloud's header stamp in ns)")
        try:
            stamp = int(b["stamp"])
        except (TypeError, ValueError):
            raise ValueError(f"--boxes {f}: boxes[{i}]: stamp {b['stamp']!r} is not an integer (ns)") from None
        by.setdefault(stamp, []).append({**{k: v for k, v in b.items() if k != "stamp"}, "sweep": str(stamp)})
    return by


@dataclass(frozen=True)
class BagOptions(KeyframeOptions, PointLabelOptions, EgoBoxOptions):
    """The options of ROS bags."""

    lidar_topic: str | None = option("the sensor_msgs/PointCloud2 topic (default: the bag's only one)", metavar="T")
    world_frame: str | None = option("the tf frame of the world (default map)", metavar="FRAME")
    ego_frame: str | None = option("the tf frame of the vehicle (default base_link)", metavar="FRAME")
    odom_topic: str | None = option("ego poses from this nav_msgs/Odometry topic instead of /tf", metavar="TOPIC")
    boxes: str | None = option(
        "boxes: a rig's boxes.json whose rows name the cloud's 'stamp' (ns) instead of 'sweep'", metavar="FILE"
    )
    cameras: str | None = option(
        "the camera image topics (sensor_msgs/Image or CompressedImage, each with a CameraInfo topic in its "
        "namespace; '' none); default: every image topic with a CameraInfo beside it",
        metavar="TOPIC,...",
    )
    camera_tolerance: float | None = option(
        "a keyframe takes each camera's image nearest its cloud's stamp within this many seconds (default: half "
        "that camera's period); a camera with none is missing at that keyframe",
        type=float,
        metavar="S",
    )
    camera_axes: str | None = option(
        "the axes of the image frames: optical (z forward, x right, y down), body (x forward, y left, z up: "
        "turned to optical), or auto (default): optical for frames named *_optical_frame or *_optical, else body",
        metavar="AXES",
        choices=("auto", "optical", "body"),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        t = self.camera_tolerance
        if t is not None and not (0 <= t < float("inf")):
            raise ValueError(f"--camera-tolerance {t!r}: must be a number of seconds, 0 or more")


class BagReader(RecordingReader):
    """ROS 1 and ROS 2 bags read with rosbags (docs/labels.md, "ROS bags"): one scene a bag."""

    name = "rosbag"
    description = "a ROS 1 .bag, a ROS 2 bag folder (metadata.yaml; MCAP or sqlite3), or a folder of bags (rosbags)"
    Options = BagOptions
    priority = 30
    extra = "rosbag"
    options: BagOptions

    @classmethod
    def detect(cls, path: Path) -> str | None:
        bags = bag_paths(path)
        if not bags:
            return None
        kinds = sorted({"ROS 1" if b.suffix == ".bag" else "ROS 2" for b in bags})
        return f"{len(bags)} {' and '.join(kinds)} bag(s)"

    def __init__(self, source: Path, options: BagOptions, wanted: list[str] | None = None) -> None:
        super().__init__(source, options, wanted)
        path = source
        _need_rosbags()
        bags = bag_paths(path)
        if not bags:
            raise ValueError(f"--data {path}: not a ROS bag (a .bag file, a folder with metadata.yaml, or one of them)")
        by_scene: dict[str, Path] = {}
        for b in bags:
            name = scene_name(b)
            if name in by_scene:
                raise ValueError(f"--data {path}: two bags are named {name!r} ({by_scene[name]}, {b}): one scene a bag")
            by_scene[name] = b
        self.opts = opts = _options(options)
        self.bags = by_scene
        self.topics: dict[str, str] = {}
        self.cameras: dict[str, list[Any]] = {}  # each scene's camera topics (bag_cameras.CameraTopic)
        self._camera_plans: dict[str, Any] = {}  # each scene read's cameras and keyframe images
        notes: list[str] = []
        for name, b in by_scene.items():  # only the scenes asked for are opened (a worker opens its own)
            if wanted is None or name in wanted:
                notes += self._open_topics(name)
        poses = f"odometry {opts['odom_topic']}" if opts["odom_topic"] else f"tf {opts['world']} -> {opts['ego']}"
        shown = sorted(set(self.topics.values()))
        cams = sorted({c.name for cs in self.cameras.values() for c in cs})
        self.classes = opts["classes"]
        self._scenes = list(by_scene)
        self.describe = (
            f"ROS bag(s) {path}: {len(by_scene)} bag(s), clouds on {', '.join(shown)}, poses from {poses}, "
            + (f"cameras {', '.join(cams)}" if cams else "no cameras")
            + "".join(f"; {n}" for n in dict.fromkeys(notes))
        )

    def _open_topics(self, scene: str) -> list[str]:
        """The scene's LiDAR topic and cameras chosen (its bag opened); the notes on image topics left out."""
        from occkit.data.recordings.bag_cameras import find_cameras

        b = self.bags[scene]
        with _reading(b) as r:
            topics = _topics(r)
        self.topics[scene] = _choose_topics(b, topics, self.opts)
        self.cameras[scene], notes = find_cameras(b, topics, self.options.cameras)
        return notes

    def read(self, scene: str, load_points: bool = True) -> Any:
        from occkit.data.recordings.bag_cameras import AXES, plan_cameras

        if scene not in self.topics:  # a scene not asked for at opening: its topics chosen now
            self._open_topics(scene)
        bag = self.bags[scene]
        rec = read_bag(bag, self.topics[scene], self.opts, scene, load_points)
        keyframes = [(int(s.token), s.token) for s in rec.sweeps if s.keyframe]
        cams, tf = self.cameras[scene], _TfTree(bag)
        messages = self._messages_of(scene, {t for c in cams for t in (c.topic, c.info)}, tf)
        axes = self.options.camera_axes or AXES[0]
        tolerance = self.options.camera_tolerance
        plan = plan_cameras(bag, cams, keyframes, self.opts["ego"], tolerance, axes, messages, tf)
        self._camera_plans[scene] = plan
        rec.cameras = plan.cameras
        return rec

    def write_images(self, scene: str, out: Path) -> dict[str, dict[str, str]]:
        """The keyframes' camera images of ``scene`` written under ``out`` (docs/labels.md, "ROS bags")."""
        from occkit.data.recordings.bag_cameras import write_images

        if scene not in self._camera_plans:
            self.read(scene, load_points=False)
        return write_images(
            self.bags[scene], self._camera_plans[scene], Path(out), lambda topics: self._messages_of(scene, topics)
        )

    def _messages_of(self, scene: str, topics: set[str], tf: _TfTree | None = None) -> Iterator[tuple[str, Any]]:
        """``(topic, message)`` of ``topics`` in the scene's bag, in order (the bag opened when the first is
        asked for, closed when the last is or the caller stops); with ``tf``, /tf and /tf_static fed into it on
        the way."""
        bag = self.bags[scene]
        with _reading(bag) as r:
            have = _topics(r)
            tf_topics = {t: s for t, s in TF_TOPICS.items() if have.get(t) in TF_TYPES} if tf is not None else {}
            conns = [c for c in r.connections if c.topic in topics or c.topic in tf_topics]
            for t, msg in _messages(r, bag, conns):
                if t in tf_topics:
                    tf.add(msg, tf_topics[t])
                else:
                    yield t, msg


def _collect(bag: Path, topic: str, opts: dict[str, Any], load_points: bool) -> tuple[list[tuple], _TfTree, _Track]:
    """One pass over the bag: its clouds ``(stamp, frame, points, intensity, labels)`` in order (the
    points left empty without ``load_points``, the fields still checked), its tf and its odometry."""
    import numpy as np

    tf = _TfTree(bag)
    odom = _Track(opts["odom_topic"] or "")
    clouds: list[tuple] = []
    with _reading(bag) as r:
        have = _topics(r)
        tf_topics = {t: static for t, static in TF_TOPICS.items() if have.get(t) in TF_TYPES}
        want = {topic, *tf_topics, *([opts["odom_topic"]] if opts["odom_topic"] else [])}
        for t, msg in _messages(r, bag, [c for c in r.connections if c.topic in want]):
            if t == topic:
                stamp = _ns(msg.header.stamp)
                at = f"{bag}: {topic} cloud at stamp {stamp} ns"
                if clouds and stamp <= clouds[-1][0]:
                    raise ValueError(
                        f"{bag}: {topic}: cloud stamps out of order: {stamp} ns comes after {clouds[-1][0]} ns"
                    )
                if load_points:
                    xyz, inten, lab = cloud_arrays(msg, at, opts["label_field"])
                else:
                    cloud_arrays_fields(msg, at)
                    xyz, inten, lab = np.zeros((0, 3), np.float32), None, None
                clouds.append((stamp, _frame(msg.header.frame_id), xyz, inten, lab))
            elif t == opts["odom_topic"]:
                p, q = msg.pose.pose.position, msg.pose.pose.orientation
                odom.add(_ns(msg.header.stamp), (p.x, p.y, p.z), (q.w, q.x, q.y, q.z))
                odom.child = _frame(msg.child_frame_id) or opts["ego"]
            elif t in tf_topics:
                tf.add(msg, tf_topics[t])
    if not clouds:
        raise ValueError(f"{bag}: topic {topic} holds no message")
    return clouds, tf, odom


def _ego_pose(bag: Path, topic: str, stamp: int, tf: _TfTree, odom: _Track, opts: dict[str, Any]) -> Any:
    """``T_world_from_ego`` at ``stamp``: from tf, or from the odometry (then through tf from its child frame)."""
    what = f"the cloud on {topic} at stamp {stamp} ns"
    if not opts["odom_topic"]:
        return tf.lookup(opts["world"], opts["ego"], stamp, what)
    T = odom.at(stamp, f"{bag}: {opts['odom_topic']} at {stamp} ns")
    if T is None:
        raise ValueError(
            f"{bag}: no pose at stamp {stamp} ns ({what}): {opts['odom_topic']} covers {odom.span()} "
            "(never extrapolated)"
        )
    return T @ tf.lookup(odom.child, opts["ego"], stamp, f"odometry's child frame to the ego frame; {what}")


def read_bag(bag: Path, topic: str, opts: dict[str, Any], scene: str, load_points: bool = True) -> Any:
    """One bag as a checked :class:`~occkit.data.scene_record.SceneRecord` (``opts``: :func:`_options`)."""
    from occkit.data.scene_record import SceneRecord, Sweep, check_record

    clouds, tf, odom = _collect(bag, topic, opts, load_points)
    stamps = [c[0] for c in clouds]
    keyframes = _keyframes(bag, topic, stamps, opts)
    lidars = {}
    for stamp, frame, *_ in clouds:
        if frame not in lidars:
            what = f"the LiDAR's extrinsic: ego frame {opts['ego']!r} to the cloud's frame {frame!r}"
            lidars[frame] = tf.lookup(opts["ego"], frame, stamp, what, nearest=True)
    sweeps = [
        Sweep(
            token=str(stamp),
            timestamp=stamp // 1000,
            sensor=frame,
            T_global_from_ego=_ego_pose(bag, topic, stamp, tf, odom, opts),
            points=xyz,
            labels=lab,
            intensity=inten,
            keyframe=kf,
            source=f"{bag}: {topic} at stamp {stamp} ns",
        )
        for (stamp, frame, xyz, inten, lab), kf in zip(clouds, keyframes)
    ]
    if opts["boxes"] is not None:
        _boxes_of(bag, topic, sweeps, stamps, opts)
    size, center = opts["ego_box"]
    rec = SceneRecord(
        name=scene,
        sweeps=sweeps,
        lidars=lidars,
        classes=opts["classes"],
        ego_size=size,
        ego_center=center,
        source=str(bag),
    )
    check_label_field(opts["label_field"], sweeps, f"{bag}: {topic}")
    check_record(rec)
    return rec


def cloud_arrays_fields(msg: Any, where: str) -> None:
    """Refuse a cloud without x, y and z fields (the check made without reading its points)."""
    names = [f.name for f in msg.fields]
    lacking = [c for c in "xyz" if c not in names]
    if lacking:
        raise ValueError(f"{where}: the cloud has no {'/'.join(lacking)} field (its fields: {', '.join(names)})")


def _keyframes(bag: Path, topic: str, stamps: list[int], opts: dict[str, Any]) -> list[bool]:
    """Whether each cloud is a keyframe: its stamp listed in ``--keyframes`` (each listed stamp within
    the bag's clouds must be one of theirs), else every ``--keyframe-every`` N-th cloud from the first."""
    if opts["keyframes"] is None:
        return [i % opts["every"] == 0 for i in range(len(stamps))]
    have = set(stamps)
    inside = [s for s in opts["keyframes"] if stamps[0] <= s <= stamps[-1]]
    stray = [s for s in inside if s not in have]
    if stray:
        raise ValueError(
            f"--keyframes {opts['keyframes_file']}: stamp {stray[0]} ns is not the stamp of a cloud on {topic} "
            f"in {bag} ({len(stray)} such stamp(s))"
        )
    if not inside:
        raise ValueError(
            f"--keyframes {opts['keyframes_file']}: none of its stamps is a cloud's on {topic} in {bag} "
            f"(its clouds: {stamps[0]}..{stamps[-1]} ns)"
        )
    chosen = set(inside)
    return [s in chosen for s in stamps]


def _boxes_of(bag: Path, topic: str, sweeps: list[Any], stamps: list[int], opts: dict[str, Any]) -> None:
    """Attach the ``--boxes`` rows whose stamps are this bag's clouds' (a row within the bag's time
    that names no cloud is refused)."""
    from occkit.data.rig import _attach_boxes  # the rig's boxes.json rows, read by the rig's own code

    have = set(stamps)
    rows = []
    for s, rs in sorted(opts["boxes"].items()):
        if stamps[0] <= s <= stamps[-1]:
            if s not in have:
                raise ValueError(f"--boxes {opts['boxes_file']}: stamp {s} ns is not the stamp of a cloud on {topic}")
            rows.extend(rs)
    _attach_boxes(sweeps, {"boxes": rows}, Path(opts["boxes_file"]))


READER = BagReader
