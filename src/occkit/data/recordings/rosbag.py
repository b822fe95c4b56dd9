"""ROS 1 and ROS 2 bags as a recording (docs/labels.md, "ROS bags"), read with ``rosbags`` (pure
Python, no ROS install; ``pip install 'occkit[rosbag]'``).

``--data`` is a ROS 1 ``.bag`` file, a ROS 2 bag (a folder holding ``metadata.yaml``, with MCAP or
sqlite3 storage), a bare ``.mcap`` or ``.db3`` storage file (what many recorders and converters write,
without ``metadata.yaml``), or a folder holding such bags: one scene a bag, named after it. Each
``sensor_msgs/PointCloud2`` message of the LiDAR topic is a sweep, stamped by its header (the token is
the stamp in nanoseconds, the sweep's timestamp that in microseconds), in the frame its header names.
Points with a non-finite x, y or z (the gaps of an organised cloud) are dropped; the field
``--label-field`` gives point labels where a cloud has it. Ego poses come from ``/tf`` and
``/tf_static`` (``--world-frame`` to ``--ego-frame`` at each cloud's stamp, interpolated: linear in
translation, spherical in rotation; a cloud at most ``--pose-tolerance`` outside the poses' span takes the
nearest pose extrapolated at constant velocity, one further out is left out and counted) or from a
``nav_msgs/Odometry`` topic (``--odom-topic``); ``--ego-height`` moves the ego frame down to the ground
(:func:`~occkit.data.scene_record.lower_ego`); the LiDAR's extrinsic is the transform from the ego frame
to the cloud's frame (``/tf_static``'s, or ``/tf``'s at that frame's first cloud, the nearest sample where
none lies around it). Boxes come from a side file in a rig's ``boxes.json`` schema whose rows name a cloud's ``stamp``
(ns) instead of a sweep token.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from occkit.data.recordings._shared import (
    _first_line,
    check_label_field,
    library,
    listing,
    matrix,
    read_classes,
    read_stamps,
    require_topic,
    stamp_ns,
)
from occkit.data.recordings.spec import RecordingReader, SweepOptions, option, seconds

CLOUD = "sensor_msgs/msg/PointCloud2"
ODOMETRY = "nav_msgs/msg/Odometry"
TF_TYPES = ("tf2_msgs/msg/TFMessage", "tf/msg/tfMessage")
TF_TOPICS = {"/tf": False, "/tf_static": True}  # topic -> static

#: Seconds a cloud may lie outside its poses' span and take the nearest pose extrapolated (``--pose-tolerance``):
#: real recordings' clocks are that far apart (KITTI's raw drives: LiDAR stamps a few ms past the last pose).
POSE_TOLERANCE = 0.05

#: PointField datatypes (sensor_msgs/PointField) as numpy type codes.
_FIELD_TYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}


#: The files that are a bag by themselves: a ROS 1 bag, and ROS 2 storage files read without ``metadata.yaml``.
BAG_FILES = {".bag": "ROS 1 bag", ".mcap": "MCAP file", ".db3": "sqlite3 file"}


def _is_bag(p: Path) -> bool:
    return (p.is_file() and p.suffix in BAG_FILES) or (p.is_dir() and (p / "metadata.yaml").is_file())


def bag_paths(path: Path) -> list[Path]:
    """The bags ``path`` names: a ROS 1 ``.bag``, a ROS 2 bag folder (``metadata.yaml``), a bare ``.mcap`` or
    ``.db3`` storage file, or the bags a folder holds (sorted by name); empty when none."""
    if _is_bag(path):
        return [path]
    if path.is_dir():
        return sorted(c for c in path.iterdir() if _is_bag(c))
    return []


def bag_kind(bag: Path) -> str:
    """What a bag is, in words: a ROS 1 bag, a ROS 2 bag folder, an MCAP or sqlite3 file."""
    return BAG_FILES.get(bag.suffix, "ROS 2 bag") if bag.is_file() else "ROS 2 bag"


def scene_name(bag: Path) -> str:
    """A bag's scene: its file name without ``.bag``, ``.mcap`` or ``.db3``, or its folder's name."""
    return bag.stem if bag.is_file() else bag.name


def _frame(name: str) -> str:
    """A tf frame id without ROS 1's leading slash."""
    return str(name).lstrip("/")


@contextmanager
def _unreadable(bag: Path, after: Callable[[], str] = str) -> Iterator[None]:
    """Whatever rosbags raises inside (a corrupt or truncated bag: its errors are many) as one line naming
    the bag (and ``after()``: where in it)."""
    try:
        yield
    except Exception as e:  # noqa: BLE001
        raise ValueError(
            f"{bag}: cannot be read as a ROS bag{after()} ({type(e).__name__}: {_first_line(e)})"
        ) from None


@contextmanager
def _reading(bag: Path) -> Iterator[Any]:
    """The bag open in an ``AnyReader``; anything rosbags cannot read is one line naming the bag."""
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    with _unreadable(bag):
        reader = AnyReader([bag], default_typestore=get_typestore(Stores.LATEST))
        reader.open()
    try:
        yield reader
    finally:
        with suppress(Exception):  # closing after an error says nothing new
            reader.close()


def _topics(reader: Any) -> dict[str, str]:
    """Every topic of the bag and its message type (``?`` where its connections disagree)."""
    return {name: info.msgtype or "?" for name, info in reader.topics.items()}


def _choose_topics(bag: Path, topics: Mapping[str, str], opts: dict[str, Any]) -> str:
    """The LiDAR topic of ``bag`` (``--lidar-topic``, else its one PointCloud2 topic), the odometry
    topic checked, and a source of poses there; a one-line error listing the topics otherwise."""
    for flag, topic, types in (
        ("--lidar-topic", opts["lidar_topic"], (CLOUD,)),
        ("--odom-topic", opts["odom_topic"], (ODOMETRY,)),
    ):
        if topic:
            require_topic(bag, topics, topic, flag, types)
    clouds = sorted(t for t, m in topics.items() if m == CLOUD)
    if not opts["lidar_topic"] and len(clouds) != 1:
        several = f"several {CLOUD} topics ({', '.join(clouds)}): say which with --lidar-topic"
        raise ValueError(f"{bag}: {several if clouds else f'no {CLOUD} topic; its topics: {listing(topics)}'}")
    if not opts["odom_topic"] and not any(topics.get(t) in TF_TYPES for t in TF_TOPICS):
        raise ValueError(
            f"{bag}: no /tf or /tf_static topic to take the poses from (or give a {ODOMETRY} topic with "
            f"--odom-topic); its topics: {listing(topics)}"
        )
    return opts["lidar_topic"] or clouds[0]


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


class Uncovered(ValueError):
    """A pose asked at a stamp outside its samples' span by more than the tolerance: that cloud is left out."""


def _along(r0: tuple, r1: tuple, stamp: int) -> tuple[Any, Any]:
    """The pose at ``stamp`` on the line through samples ``r0``, ``r1`` (stamp, t, q): between them
    interpolated, outside them extrapolated at constant velocity in translation and in rotation (the
    spherical path continued)."""
    import numpy as np

    (s0, t0, q0), (s1, t1, q1) = r0, r1
    if s1 == s0:  # two samples at one stamp: no velocity, the nearer pose
        return np.asarray(t1 if abs(stamp - s1) <= abs(stamp - s0) else t0, np.float64), np.asarray(q1, np.float64)
    a = (stamp - s0) / (s1 - s0)
    t = (1 - a) * np.asarray(t0, np.float64) + a * np.asarray(t1, np.float64)
    q = _slerp(np.asarray(q0, np.float64), np.asarray(q1, np.float64), a)
    return t, q / np.linalg.norm(q)


class _Track:
    """The samples of one transform (a tf link ``parent -> child``, or an odometry topic), in time order:
    translation and quaternion (w, x, y, z) each, interpolated at a stamp; outside the samples, within a
    tolerance, extrapolated at constant velocity from the two nearest."""

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

    def coverage(self, stamp: int, tolerance: int) -> str:
        """The samples' span against ``stamp`` (how far off) and ``tolerance`` (ns), for a message."""
        away = f"{self.outside(stamp) / 1e9:.3f} s away"
        return f"covers {self.span()} ({away}; extrapolated within --pose-tolerance {tolerance / 1e9:g} s)"

    def outside(self, stamp: int) -> int:
        """How far (ns) ``stamp`` lies outside the samples' span (0 within it, or for a static link)."""
        self._finish()
        if self.static or not self.rows:
            return 0
        return max(self.rows[0][0] - stamp, stamp - self.rows[-1][0], 0)

    def at(self, stamp: int, where: str, nearest: bool = False, tolerance: int = 0) -> Any:
        """The transform at ``stamp``: a static link's last sample; else the sample at that stamp, or
        between the two around it; outside the samples by at most ``tolerance`` ns the nearest pose
        extrapolated at constant velocity (the nearest sample where the link has one); further out None
        (or, ``nearest``, the nearest sample)."""
        import bisect

        self._finish()
        rows = self.rows
        stamps = [r[0] for r in rows]
        k = bisect.bisect_left(stamps, stamp)
        if self.static or (k < len(rows) and stamps[k] == stamp):
            r = rows[-1] if self.static else rows[k]
            return matrix(r[1], r[2], "ego_pose", where)
        if 0 < k < len(rows):  # between two samples
            pair = rows[k - 1 : k + 1]
        elif nearest or (rows and self.outside(stamp) <= tolerance):
            r = rows[0] if k == 0 else rows[-1]
            if nearest or len(rows) < 2:
                return matrix(r[1], r[2], "ego_pose", where)
            pair = rows[:2] if k == 0 else rows[-2:]
        else:
            return None
        t, q = _along(*pair, stamp)
        return matrix(t.tolist(), q.tolist(), "ego_pose", where)


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
            link.add(stamp_ns(ts.header.stamp), (tr.x, tr.y, tr.z), (r.w, r.x, r.y, r.z))

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

    def lookup(self, a: str, b: str, stamp: int, what: str, nearest: bool = False, tolerance: int = 0) -> Any:
        """``T_a_from_b`` at ``stamp`` (ns): the links' transforms composed (each extrapolated within
        ``tolerance`` ns of its span); a one-line error naming the stamp, the frames and the link that
        does not cover the stamp (:class:`Uncovered`)."""
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
            M = link.at(stamp, f"{self.bag}: /tf {link.name} at {stamp} ns", nearest=nearest, tolerance=tolerance)
            if M is None:
                raise Uncovered(
                    f"{self.bag}: no transform from {a!r} to {b!r} at stamp {stamp} ns ({what}): the link "
                    f"{link.name} on /tf {link.coverage(stamp, tolerance)}"
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

    cloud_arrays_fields(msg, where)
    fields = {f.name: f for f in msg.fields}
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
    return {
        "lidar_topic": options.lidar_topic or None,
        "label_field": options.field(),
        "world": _frame(options.world_frame or "map"),
        "ego": _frame(options.ego_frame or "base_link"),
        "odom_topic": options.odom_topic or None,
        "every": options.every(10),
        "keyframes": sorted(set(read_stamps(options.keyframes))) if options.keyframes else None,
        "keyframes_file": options.keyframes,
        "boxes": _read_boxes(Path(options.boxes)) if options.boxes else None,
        "boxes_file": options.boxes,
        "ego_box": options.ego(),
        "classes": read_classes(options.classes),
        "keyframe_tolerance": options.keyframe_tolerance,  # seconds; None: half the cloud period
        "pose_tolerance": POSE_TOLERANCE if options.pose_tolerance is None else options.pose_tolerance,
    }


def _read_boxes(f: Path) -> dict[int, list[dict[str, Any]]]:
    """``--boxes FILE``: a rig's ``boxes.json`` whose rows name a cloud's ``stamp`` (ns), by stamp
    (:class:`occkit.data.rig_schema.StampedBoxesTable`; a missing file or bad JSON said by ``read_json``)."""
    from occkit.data.rig_schema import StampedBoxesTable
    from occkit.fileio import read_json
    from occkit.schema import validate

    by: dict[int, list[dict[str, Any]]] = {}
    for b in validate(StampedBoxesTable, read_json(f), f"--boxes {f}").boxes:
        row = b.model_dump(by_alias=True, exclude={"stamp", "sweep"})
        by.setdefault(b.stamp, []).append({**row, "sweep": str(b.stamp)})
    return by


@dataclass(frozen=True)
class BagOptions(SweepOptions):
    """The options of ROS bags."""

    lidar_topic: str | None = option("the sensor_msgs/PointCloud2 topic (default: the bag's only one)", metavar="T")
    world_frame: str | None = option("the tf frame of the world (default map)", metavar="FRAME")
    ego_frame: str | None = option("the tf frame of the vehicle (default base_link)", metavar="FRAME")
    odom_topic: str | None = option("ego poses from this nav_msgs/Odometry topic instead of /tf", metavar="TOPIC")
    boxes: str | None = option(
        "boxes: a rig's boxes.json whose rows name the cloud's 'stamp' (ns) instead of 'sweep'", metavar="FILE"
    )
    keyframe_tolerance: float | None = seconds(
        "a --keyframes stamp is the nearest cloud's within this many seconds (default: half the cloud period); "
        "one further from every cloud is refused",
        at_most=3600,
    )
    pose_tolerance: float | None = seconds(
        f"a cloud at most this many seconds outside the poses' span (/tf's or --odom-topic's) takes the nearest "
        f"pose extrapolated at constant velocity; one further out is left out and counted (default {POSE_TOLERANCE})",
        at_most=3600,
    )
    cameras: str | None = option(
        "the camera image topics (sensor_msgs/Image or CompressedImage, each with a CameraInfo topic in its "
        "namespace; '' none); default: every image topic with a CameraInfo beside it",
        metavar="TOPIC,...",
    )
    camera_tolerance: float | None = seconds(
        "a keyframe takes each camera's image nearest its cloud's stamp within this many seconds (default: half "
        "that camera's period); a camera with none is missing at that keyframe",
    )
    camera_axes: str | None = option(
        "the axes of the image frames: optical (z forward, x right, y down), body (x forward, y left, z up: "
        "turned to optical), or auto (default): optical for frames named *_optical_frame or *_optical, else body",
        metavar="AXES",
        choices=("auto", "optical", "body"),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.keyframe_tolerance is not None and not self.keyframes:
            raise ValueError("--keyframe-tolerance: matches --keyframes stamps to clouds; give --keyframes FILE too")


class BagReader(RecordingReader[BagOptions], name="rosbag", priority=30, extra="rosbag"):
    """ROS 1 and ROS 2 bags read with rosbags (docs/labels.md, "ROS bags"): one scene a bag."""

    description = (
        "a ROS 1 .bag, a ROS 2 bag folder (metadata.yaml; MCAP or sqlite3), a bare .mcap or .db3 file, or a folder "
        "of bags (rosbags)"
    )

    @classmethod
    def detect(cls, path: Path) -> str | None:
        bags = bag_paths(path)
        if not bags:
            return None
        kinds = sorted({bag_kind(b) for b in bags})
        return f"{len(bags)} bag(s): {', '.join(kinds)}"

    def __init__(self, source: Path, options: BagOptions, wanted: list[str] | None = None) -> None:
        super().__init__(source, options, wanted)
        path = source
        library("rosbags", "reading ROS bags")
        bags = bag_paths(path)
        if not bags:
            raise ValueError(
                f"--data {path}: not a ROS bag (a .bag, .mcap or .db3 file, a folder with metadata.yaml, or a folder "
                "of them)"
            )
        by_scene: dict[str, Path] = {}
        for b in bags:
            name = scene_name(b)
            if name in by_scene:
                raise ValueError(f"--data {path}: two bags are named {name!r} ({by_scene[name]}, {b}): one scene a bag")
            by_scene[name] = b
        self.opts = opts = _options(options)
        opts["bags"] = len(by_scene)  # a --keyframes stamp no bag holds is refused once every bag was read
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
            + f"; {keyframe_rule(opts)}"
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
        from occkit.data.scene_record import check_record

        if scene not in self.topics:  # a scene not asked for at opening: its topics chosen now
            self._open_topics(scene)
        bag = self.bags[scene]
        rec = read_bag(bag, self.topics[scene], self.opts, scene, load_points)
        keyframes = [(int(s.token), s.token) for s in rec.sweeps if s.keyframe]
        cams, tf = self.cameras[scene], _TfTree(bag)
        messages = _stream(bag, {t for c in cams for t in (c.topic, c.info)}, tf, need=True)
        axes = self.options.camera_axes or AXES[0]
        tolerance = self.options.camera_tolerance
        plan = plan_cameras(bag, cams, keyframes, self.opts["ego"], tolerance, axes, messages, tf)
        self._camera_plans[scene] = plan
        rec.cameras = plan.cameras
        if cams:
            rec.notes["cameras"] = plan.notes()
        missing = [f"{n} at {k} of {len(keyframes)}" for n, k in plan.missing.items() if k]
        if missing:
            rec.warnings.append(
                f"camera images missing at some keyframes ({', '.join(missing)}): no image within the tolerance "
                "(--camera-tolerance) of the keyframe's cloud; those cameras are left out of those keyframes' index "
                "entries"
            )
        if self.options.ego_height:  # a given --ego-box is in the bag's ego frame and moves with it
            rec.notes["ego_height"] = self.options.ego_height
        rec = self.options.lowered(rec, box_given=bool(self.options.ego_box))
        check_record(rec)
        return rec

    def write_images(self, scene: str, out: Path) -> dict[str, dict[str, str]]:
        """The keyframes' camera images of ``scene`` written under ``out`` (docs/labels.md, "ROS bags")."""
        from occkit.data.recordings.bag_cameras import write_images

        if scene not in self._camera_plans:
            self.read(scene, load_points=False)
        return write_images(
            self.bags[scene], self._camera_plans[scene], Path(out), lambda topics: _stream(self.bags[scene], topics)
        )


def _stream(
    bag: Path, topics: set[str], tf: _TfTree | None = None, check: bool = False, need: bool = False
) -> Iterator[tuple[str, Any]]:
    """``(topic, message)`` of ``topics`` in ``bag``, in order, deserialised (the bag opened when the first is
    asked for, closed when the last is or the caller stops; a message that cannot be read, one line naming
    the bag and the topic); with ``tf``, /tf and /tf_static fed into it on the way. Once every message was
    read: ``check``, the bag's metadata checked against them (:func:`_check_metadata`); ``need``, a topic of
    ``topics`` that held none refused."""
    with _reading(bag) as r:
        have = _topics(r)
        tf_topics = {t: s for t, s in TF_TOPICS.items() if have.get(t) in TF_TYPES} if tf is not None else {}
        counts = dict.fromkeys([*topics, *tf_topics], 0)
        it, t = r.messages(connections=[c for c in r.connections if c.topic in counts]), "?"

        def after() -> str:
            return f" after topic {t}"

        while True:
            with _unreadable(bag, after):
                item = next(it, None)
                if item is None:
                    break
                conn, _, raw = item
                t = conn.topic  # named if its message cannot be read
                msg = r.deserialize(raw, conn.msgtype)
            counts[t] += 1
            if t in tf_topics:
                tf.add(msg, tf_topics[t])
            else:
                yield t, msg
        if check:
            _check_metadata(bag, r, counts)
    if need and not all(counts[t] for t in topics):
        raise ValueError(f"{bag}: topic {min(t for t in topics if not counts[t])} holds no message")


def _collect(bag: Path, topic: str, opts: dict[str, Any], load_points: bool) -> tuple[list[tuple], _TfTree, _Track]:
    """One pass over the bag: its clouds ``(stamp, frame, points, intensity, labels)`` in order (the
    points left empty without ``load_points``, the fields still checked), its tf and its odometry."""
    import numpy as np

    tf, odom_topic = _TfTree(bag), opts["odom_topic"]
    odom = _Track(odom_topic or "")
    clouds: list[tuple] = []
    for t, msg in _stream(bag, {topic, *([odom_topic] if odom_topic else [])}, tf, check=True, need=True):
        if t == topic:
            stamp = stamp_ns(msg.header.stamp)
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
        else:
            p, q = msg.pose.pose.position, msg.pose.pose.orientation
            odom.add(stamp_ns(msg.header.stamp), (p.x, p.y, p.z), (q.w, q.x, q.y, q.z))
            odom.child = _frame(msg.child_frame_id) or opts["ego"]
    return clouds, tf, odom


def _check_metadata(bag: Path, reader: Any, got: dict[str, int]) -> None:
    """A ROS 2 bag folder whose ``metadata.yaml`` disagrees with its storage (message counts the storage does
    not hold, or QoS profiles, types or serialisation its channels lack: rosbags then yields none of that
    topic's messages) is refused in one line naming the topic and both counts."""
    if not (bag.is_dir() and bag.suffix != ".bag"):
        return
    counted = {t: info.msgcount for t, info in reader.topics.items()}
    if all(counted.get(t, 0) == n for t, n in got.items()):
        return
    held: dict[str, int] = {}
    channels: dict[str, list[Any]] = {}
    files: list[str] = []
    try:  # the storage files' own channels and counts (rosbags' directory reader keeps them)
        for store in reader.readers[0].storage.storages:
            files.append(Path(getattr(store, "path", "?")).name)
            for c in store.connections:
                held[c.topic] = held.get(c.topic, 0) + int(c.msgcount)
                channels.setdefault(c.topic, []).append(c)
    except AttributeError:
        files = []
    t = next(t for t, n in got.items() if counted.get(t, 0) != n)
    where = f"{bag / 'metadata.yaml'} disagrees with its storage ({', '.join(files) or 'its files'})"
    if t in held and got[t] == 0 and held[t]:
        meta = next((c for c in reader.connections if c.topic == t), None)
        why = "its QoS profiles, type or serialisation there match none of the storage's channels"
        if meta is not None and not any(c.msgtype == meta.msgtype for c in channels[t]):
            why = f"it says type {meta.msgtype}, the storage {channels[t][0].msgtype}"
        said = f"topic {t}: it counts {counted.get(t, 0)} message(s), the storage holds {held[t]}, none read ({why})"
    else:
        said = (
            f"topic {t}: it counts {counted.get(t, 0)} message(s), the storage holds "
            f"{held.get(t, got[t])} and {got[t]} were read"
        )
    raise ValueError(
        f"{where}: {said}; give --data the storage file itself (read without metadata.yaml), or write the "
        "metadata anew (ros2 bag reindex)"
    )


def _ego_pose(bag: Path, topic: str, stamp: int, tf: _TfTree, odom: _Track, opts: dict[str, Any]) -> Any:
    """``T_world_from_ego`` at ``stamp``: from tf, or from the odometry (then through tf from its child frame);
    each extrapolated within ``--pose-tolerance`` of its samples' span, else :class:`Uncovered`."""
    what = f"the cloud on {topic} at stamp {stamp} ns"
    tol = int(round(opts["pose_tolerance"] * 1e9))
    if not opts["odom_topic"]:
        return tf.lookup(opts["world"], opts["ego"], stamp, what, tolerance=tol)
    T = odom.at(stamp, f"{bag}: {opts['odom_topic']} at {stamp} ns", tolerance=tol)
    if T is None:
        raise Uncovered(
            f"{bag}: no pose at stamp {stamp} ns ({what}): {opts['odom_topic']} {odom.coverage(stamp, tol)}"
        )
    return T @ tf.lookup(
        odom.child, opts["ego"], stamp, f"odometry's child frame to the ego frame; {what}", tolerance=tol
    )


def read_bag(bag: Path, topic: str, opts: dict[str, Any], scene: str, load_points: bool = True) -> Any:
    """One bag's clouds as a :class:`~occkit.data.scene_record.SceneRecord` in the bag's ego frame, not yet
    checked (``opts``: :func:`_options`): the clouds without an ego pose within ``--pose-tolerance`` left out
    and counted (:attr:`SceneRecord.warnings`), how the keyframes were taken in :attr:`SceneRecord.notes`."""
    from occkit.data.scene_record import SceneRecord, Sweep

    clouds, tf, odom = _collect(bag, topic, opts, load_points)
    stamps = [c[0] for c in clouds]
    poses, left, extrapolated = _poses(bag, topic, stamps, tf, odom, opts)
    keyframes, notes = _keyframes(bag, topic, stamps, opts, left)
    lidars = {}
    for (stamp, frame, *_), T in zip(clouds, poses):
        if frame not in lidars and T is not None:
            what = f"the LiDAR's extrinsic: ego frame {opts['ego']!r} to the cloud's frame {frame!r}"
            lidars[frame] = tf.lookup(opts["ego"], frame, stamp, what, nearest=True)
    sweeps = [
        Sweep(
            token=str(stamp),
            timestamp=stamp // 1000,
            sensor=frame,
            T_global_from_ego=T,
            points=xyz,
            labels=lab,
            intensity=inten,
            keyframe=kf,
            source=f"{bag}: {topic} at stamp {stamp} ns",
        )
        for (stamp, frame, xyz, inten, lab), kf, T in zip(clouds, keyframes, poses)
        if T is not None
    ]
    if opts["boxes"] is not None:
        _boxes_of(bag, topic, sweeps, stamps, opts)
    warnings = []
    notes.update(clouds=len(clouds), clouds_extrapolated=extrapolated, clouds_left_out=len(left))
    if left:
        out = sorted(left)
        notes["left_out_stamps"] = out
        tol = opts["pose_tolerance"]
        first = left[out[0]].replace(f"{bag}: ", "", 1)
        warnings.append(
            f"{len(left)} of {len(clouds)} clouds on {topic} left out (stamps {out[0]}..{out[-1]} ns): no ego pose "
            f"within --pose-tolerance {tol:g} s of the poses' span; the first: {first}"
        )
    size, center = opts["ego_box"]
    rec = SceneRecord(
        name=scene,
        sweeps=sweeps,
        lidars=lidars,
        classes=opts["classes"],
        ego_size=size,
        ego_center=center,
        source=str(bag),
        notes=notes,
        warnings=warnings,
    )
    check_label_field(opts["label_field"], sweeps, f"{bag}: {topic}")
    return rec


def _poses(
    bag: Path, topic: str, stamps: list[int], tf: _TfTree, odom: _Track, opts: dict[str, Any]
) -> tuple[list[Any], dict[int, str], int]:
    """Each cloud's ego pose (None: left out), the left-out clouds' reasons by stamp, and how many clouds took
    a pose extrapolated within ``--pose-tolerance``; every cloud left out is refused with the first reason."""
    poses: list[Any] = []
    left: dict[int, str] = {}
    extrapolated = 0
    exact = {**opts, "pose_tolerance": 0.0}
    for stamp in stamps:
        try:
            poses.append(_ego_pose(bag, topic, stamp, tf, odom, exact))
            continue
        except Uncovered:
            pass
        try:
            poses.append(_ego_pose(bag, topic, stamp, tf, odom, opts))
            extrapolated += 1
        except Uncovered as e:
            poses.append(None)
            left[stamp] = str(e)
    if len(left) == len(stamps):
        raise ValueError(f"{left[stamps[0]]}; so for every cloud of the bag ({len(stamps)}): nothing to label")
    return poses, left, extrapolated


def cloud_arrays_fields(msg: Any, where: str) -> None:
    """Refuse a cloud without x, y and z fields, or with a field named twice (two ``x``: which one holds the
    coordinate cannot be told, and a reader that takes either reads the other's bytes as points)."""
    names = [f.name for f in msg.fields]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(
            f"{where}: the cloud names the field{'s' if len(twice) > 1 else ''} {', '.join(twice)} more than once "
            f"(its fields: {', '.join(names)}): which one to read cannot be told"
        )
    lacking = [c for c in "xyz" if c not in names]
    if lacking:
        raise ValueError(f"{where}: the cloud has no {'/'.join(lacking)} field (its fields: {', '.join(names)})")


def _ordinal(n: int) -> str:
    """``every 10th cloud``, ``every cloud``: the rule of ``--keyframe-every N`` in words."""
    if n == 1:
        return "every cloud"
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"every {n}{suffix} cloud"


def keyframe_rule(opts: dict[str, Any]) -> str:
    """How the keyframes are taken, in words (the first line ``occkit label`` prints, and ``report.json``)."""
    if opts["keyframes"] is None:
        every = opts["every"]
        return f"keyframes {_ordinal(every)} from the first (--keyframe-every {every}; a bag marks no keyframe)"
    tol = opts["keyframe_tolerance"]
    within = "half the cloud period" if tol is None else f"{tol:g} s"
    return (
        f"keyframes at the {len(opts['keyframes'])} stamps of --keyframes {opts['keyframes_file']}, each the nearest "
        f"cloud within {within}"
    )


def _listed_near(bag: Path, topic: str, stamps: list[int], opts: dict[str, Any], tol: int, said: str) -> list[int]:
    """The ``--keyframes`` stamps that are this bag's: in a recording of one bag every one (one far from every
    cloud is refused as any other is); in a folder of bags those within ``tol`` (ns) of its first to last
    cloud, a stamp that no bag holds refused once every bag was read."""
    n, f = opts.get("bags", 1), opts["keyframes_file"]
    if n == 1:
        return opts["keyframes"]
    lo, hi = stamps[0] - tol, stamps[-1] + tol
    spans = opts.setdefault("_spans", {})
    spans[str(bag)] = (lo, hi)
    nowhere = [s for s in opts["keyframes"] if not any(a <= s <= b for a, b in spans.values())]
    if len(spans) >= n and nowhere:  # every bag read: a stamp no bag holds is refused, never dropped
        raise ValueError(
            f"--keyframes {f}: stamp {nowhere[0]} ns lies within the clouds of none of the {n} bags (each bag's first "
            f"to last cloud, widened by the tolerance) ({len(nowhere)} such stamp(s))"
        )
    mine = [s for s in opts["keyframes"] if lo <= s <= hi]
    if not mine:
        raise ValueError(
            f"--keyframes {f}: none of its stamps is within {said} of a cloud on {topic} in {bag} "
            f"(its clouds: {stamps[0]}..{stamps[-1]} ns)"
        )
    return mine


def _keyframes(
    bag: Path, topic: str, stamps: list[int], opts: dict[str, Any], left: Mapping[int, str] | None = None
) -> tuple[list[bool], dict[str, Any]]:
    """Whether each cloud is a keyframe, and what ``report.json`` says of them: every ``--keyframe-every``
    N-th cloud with a pose from the first; or each ``--keyframes`` stamp the nearest cloud's within the
    tolerance (``--keyframe-tolerance``, default half the median cloud period). A listed stamp of this bag
    (:func:`_listed_near`) that is no cloud's within the tolerance, or whose cloud has no pose (``left``), is
    refused naming it; in a folder of bags, one that no bag's clouds hold is refused once every bag was read."""
    import bisect

    left = left or {}
    if opts["keyframes"] is None:
        kept = [s for s in stamps if s not in left]
        chosen = set(kept[:: opts["every"]])
        flags = [s in chosen for s in stamps]
        notes = {"keyframes": keyframe_rule(opts), "keyframe_stamps": sorted(chosen)}
        return flags, notes
    f = opts["keyframes_file"]
    periods = sorted(b - a for a, b in zip(stamps, stamps[1:]))
    tol_s = opts["keyframe_tolerance"]
    tol = int(round(tol_s * 1e9)) if tol_s is not None else (periods[len(periods) // 2] // 2 if periods else 0)
    said = f"{tol / 1e9:g} s" + (" (--keyframe-tolerance)" if tol_s is not None else " (half the cloud period)")
    mine = _listed_near(bag, topic, stamps, opts, tol, said)
    chosen: dict[int, int] = {}  # cloud stamp -> the listed stamp
    moved = 0
    for s in mine:
        k = bisect.bisect_left(stamps, s)
        near = min((c for c in stamps[max(k - 1, 0) : k + 1]), key=lambda c: abs(c - s))
        if abs(near - s) > tol:
            raise ValueError(
                f"--keyframes {f}: stamp {s} ns is {abs(near - s) / 1e9:.3f} s from the nearest cloud on {topic} in "
                f"{bag} (at {near} ns), more than {said}"
            )
        if near in left:
            raise ValueError(f"--keyframes {f}: stamp {s} ns: its cloud at {near} ns is left out: {left[near]}")
        if near in chosen:
            raise ValueError(
                f"--keyframes {f}: stamps {chosen[near]} and {s} ns are both nearest the cloud at {near} ns on "
                f"{topic} in {bag} (one keyframe a cloud)"
            )
        chosen[near] = s
        moved += near != s
    notes = {
        "keyframes": keyframe_rule(opts),
        "keyframe_stamps": sorted(chosen),
        "keyframe_tolerance_s": tol / 1e9,
        "keyframes_matched_off_stamp": moved,
    }
    return [s in chosen for s in stamps], notes


def _boxes_of(bag: Path, topic: str, sweeps: list[Any], stamps: list[int], opts: dict[str, Any]) -> None:
    """Attach the ``--boxes`` rows whose stamps are this bag's clouds' (a row within the bag's time
    that names no cloud is refused)."""
    from occkit.data.rig import _attach_boxes  # the rig's boxes.json rows, read by the rig's own code

    have = set(stamps)
    kept = {s.token for s in sweeps}  # a left-out cloud's boxes go with it
    _boxes_within(bag, topic, stamps, opts)
    rows = []
    for s, rs in sorted(opts["boxes"].items()):
        if stamps[0] <= s <= stamps[-1]:
            if s not in have:
                raise ValueError(f"--boxes {opts['boxes_file']}: stamp {s} ns is not the stamp of a cloud on {topic}")
            if str(s) in kept:
                rows.extend(rs)
    _attach_boxes(sweeps, {"boxes": rows}, Path(opts["boxes_file"]))


def _boxes_within(bag: Path, topic: str, stamps: list[int], opts: dict[str, Any]) -> None:
    """Refuse ``--boxes`` rows none of which lies within the clouds' span (the bag's first to last cloud on
    ``topic``): of this bag in a recording of one bag, of any bag once every bag of a folder was read. They
    would all be dropped, and the scene labelled without a box, with no word."""
    given = sorted(opts["boxes"])
    if not given:  # an empty list: no object (said by --refine-boxes where it needs one)
        return
    spans = opts.setdefault("_box_spans", {})
    spans[str(bag)] = (stamps[0], stamps[-1])
    n = opts.get("bags", 1)
    if len(spans) >= n and not any(a <= s <= b for a, b in spans.values() for s in given):
        first, last = min(a for a, _ in spans.values()), max(b for _, b in spans.values())
        clouds = f"on {topic} in {bag}" if n == 1 else f"of any of the {n} bags"
        raise ValueError(
            f"--boxes {opts['boxes_file']}: none of its {len(given)} stamps ({given[0]}..{given[-1]} ns) lies within "
            f"the clouds {clouds} ({first}..{last} ns): every box would be dropped (stamps of another recording, or in "
            "other units than ns?)"
        )


READER = BagReader
