"""Write one scene of a rig folder as a ROS bag, with rosbags' own writers (docs/labels.md, "ROS bags"):
what a team's car records, for trying ``occkit label --data BAG`` on the synthetic world.

    python tools/rig_to_bag.py --rig data/w/rig --scene scene-0000 --out data/bags/scene-0000 [--storage mcap]
    python tools/rig_to_bag.py --rig data/w/rig --scene scene-0000 --out data/bags/scene-0000.bag --storage ros1

The bag holds each sweep as a ``sensor_msgs/PointCloud2`` on ``--topic`` (fields x, y, z, intensity,
and ``label`` on the sweeps the rig labels), stamped with the sweep's time, in the frame named after the
rig's LiDAR; ``/tf`` (``map -> base_link`` at each sweep) and ``/tf_static`` (``base_link -> LiDAR``);
``--odom-topic`` adds the ego poses as ``nav_msgs/Odometry`` too. ``--cameras`` adds the cameras of a rig
that sits in a dataset (``occkit synth --sweeps K``: ``DATA/rig`` beside ``DATA/annotations.json``): each
keyframe's image as ``sensor_msgs/CompressedImage`` on ``/<CAM>/image_raw/compressed`` (the JPEG or PNG
file's bytes as they are), ``sensor_msgs/CameraInfo`` on ``/<CAM>/camera_info`` (K, no distortion), and
the camera's optical frame ``<CAM>_optical_frame`` on ``/tf_static``. The boxes go in a side
file (``--boxes FILE``: the rig's ``boxes.json`` rows keyed by stamp). The keyframes' stamps are written
to ``--keyframes FILE`` (nanoseconds, one a line), what ``occkit label --keyframes`` reads.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

STORAGES = ("sqlite3", "mcap", "ros1")


def _stamp(ts, ns: int):
    return ts.types["builtin_interfaces/msg/Time"](sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def _header(ts, ns: int, frame: str):
    extra = {"seq": 0} if _ros1(ts) else {}  # ROS 1 headers carry a sequence number
    return ts.types["std_msgs/msg/Header"](**extra, stamp=_stamp(ts, ns), frame_id=frame)


def _ros1(ts) -> bool:
    return "seq" in ts.types["std_msgs/msg/Header"].__dataclass_fields__


def _transform(ts, ns: int, parent: str, child: str, pose: dict):
    t, (w, x, y, z) = pose["translation"], pose["rotation"]
    T = ts.types
    return T["geometry_msgs/msg/TransformStamped"](
        header=_header(ts, ns, parent),
        child_frame_id=child,
        transform=T["geometry_msgs/msg/Transform"](
            translation=T["geometry_msgs/msg/Vector3"](x=t[0], y=t[1], z=t[2]),
            rotation=T["geometry_msgs/msg/Quaternion"](x=x, y=y, z=z, w=w),
        ),
    )


def _cloud(ts, ns: int, frame: str, points: np.ndarray, labels: np.ndarray | None):
    """A PointCloud2 of ``points (N, 3 or 4)`` (x y z [intensity]) and ``labels (N,)`` as a uint16 field."""
    T = ts.types
    PF = T["sensor_msgs/msg/PointField"]
    n = len(points)
    cols = [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4")]
    if labels is not None:
        cols.append(("label", "<u2"))
    arr = np.zeros(n, dtype=np.dtype(cols))
    for k, c in enumerate("xyz"):
        arr[c] = points[:, k]
    arr["intensity"] = points[:, 3] if points.shape[1] > 3 else 0.0
    if labels is not None:
        arr["label"] = labels
    kinds = {"<f4": PF.FLOAT32, "<u2": PF.UINT16}
    fields = [PF(name=name, offset=arr.dtype.fields[name][1], datatype=kinds[code], count=1) for name, code in cols]
    return T["sensor_msgs/msg/PointCloud2"](
        header=_header(ts, ns, frame),
        height=1,
        width=n,
        fields=fields,
        is_bigendian=False,
        point_step=arr.dtype.itemsize,
        row_step=arr.dtype.itemsize * n,
        data=np.frombuffer(arr.tobytes(), np.uint8),
        is_dense=True,
    )


def _odometry(ts, ns: int, pose: dict, world: str, ego: str):
    T = ts.types
    t, (w, x, y, z) = pose["translation"], pose["rotation"]
    p = T["geometry_msgs/msg/Pose"](
        position=T["geometry_msgs/msg/Point"](x=t[0], y=t[1], z=t[2]),
        orientation=T["geometry_msgs/msg/Quaternion"](x=x, y=y, z=z, w=w),
    )
    zero = T["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0)
    return T["nav_msgs/msg/Odometry"](
        header=_header(ts, ns, world),
        child_frame_id=ego,
        pose=T["geometry_msgs/msg/PoseWithCovariance"](pose=p, covariance=np.zeros(36)),
        twist=T["geometry_msgs/msg/TwistWithCovariance"](
            twist=T["geometry_msgs/msg/Twist"](linear=zero, angular=zero), covariance=np.zeros(36)
        ),
    )


def _camera_info(ts, ns: int, frame: str, K, size: tuple[int, int]):
    """A ``sensor_msgs/CameraInfo`` of a pinhole camera: ``K``, no distortion, ``size`` (H, W)."""
    K = np.asarray(K, np.float64)
    P = np.concatenate([K, np.zeros((3, 1))], 1)
    names = ("D", "K", "R", "P") if _ros1(ts) else ("d", "k", "r", "p")
    calib = dict(zip(names, (np.zeros(5), K.reshape(-1), np.eye(3).reshape(-1), P.reshape(-1))))
    T = ts.types
    return T["sensor_msgs/msg/CameraInfo"](
        header=_header(ts, ns, frame),
        height=int(size[0]),
        width=int(size[1]),
        distortion_model="plumb_bob",
        **calib,
        binning_x=0,
        binning_y=0,
        roi=T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
    )


def _compressed(ts, ns: int, frame: str, path: Path):
    """A ``sensor_msgs/CompressedImage`` holding the image file ``path``'s bytes as they are."""
    fmt = "png" if path.suffix.lower() == ".png" else "jpeg"
    data = np.frombuffer(path.read_bytes(), np.uint8)
    return ts.types["sensor_msgs/msg/CompressedImage"](header=_header(ts, ns, frame), format=fmt, data=data)


def _camera_rows(rig: Path, scene: str) -> list[tuple[int, str, Path]]:
    """``(stamp ns, camera, image file)`` of each keyframe's camera images in the dataset beside ``rig``."""
    ann = json.loads((rig.parent / "annotations.json").read_text())
    rows = []
    for info in ann["scene_infos"][scene].values():
        for cam, c in info["camera_sensor"].items():
            if c.get("img_path"):
                rows.append((int(info["timestamp"]) * 1000, cam, rig.parent / c["img_path"]))
    return rows


def write_bag(
    rig: Path,
    scene: str,
    out: Path,
    storage: str = "sqlite3",
    topic: str = "/lidar/points",
    odom_topic: str | None = None,
    tf: bool = True,
    world: str = "map",
    ego: str = "base_link",
    cameras: bool = False,
    camera_delay_ns: int = 0,
) -> list[int]:
    """Write ``rig``'s scene ``scene`` as a bag at ``out`` (``storage``: sqlite3 or mcap, a ROS 2 bag
    folder; ros1, a ``.bag`` file); returns the keyframes' stamps in nanoseconds. ``tf`` False: no
    ``/tf`` (the ego poses only on ``odom_topic``), ``/tf_static`` still places the LiDARs. ``cameras``:
    the keyframes' camera images too (the rig in a dataset), stamped ``camera_delay_ns`` after the sweep."""
    from rosbags.typesys import Stores, get_typestore

    meta = json.loads((rig / "rig.json").read_text())
    sweeps = json.loads((rig / scene / "sweeps.json").read_text())["sweeps"]
    if storage == "ros1":
        from rosbags.rosbag1 import Writer
        from rosbags.typesys import get_types_from_msg

        ts = get_typestore(Stores.ROS1_NOETIC)  # it lacks tf2_msgs: TFMessage's definition, as in ROS 1
        ts.register(get_types_from_msg("geometry_msgs/TransformStamped[] transforms", "tf2_msgs/msg/TFMessage"))
        writer, serialize = Writer(out), ts.serialize_ros1
    else:
        from rosbags.rosbag2 import StoragePlugin, Writer

        ts = get_typestore(Stores.ROS2_HUMBLE)
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        writer, serialize = Writer(out, version=9, storage_plugin=plugin), ts.serialize_cdr
    TF = "tf2_msgs/msg/TFMessage"
    with writer:
        c_cloud = writer.add_connection(topic, "sensor_msgs/msg/PointCloud2", typestore=ts)
        c_tf = writer.add_connection("/tf", TF, typestore=ts) if tf else None
        c_static = writer.add_connection("/tf_static", TF, typestore=ts)
        c_odom = writer.add_connection(odom_topic, "nav_msgs/msg/Odometry", typestore=ts) if odom_topic else None
        first = int(sweeps[0]["timestamp"]) * 1000
        links = [_transform(ts, first, ego, name, pose) for name, pose in meta["lidars"].items()]
        images: dict[int, list[tuple[str, Path]]] = {}
        if cameras:
            links += [_transform(ts, first, ego, f"{c}_optical_frame", pose) for c, pose in meta["cameras"].items()]
            c_img, c_info = {}, {}
            for c in meta["cameras"]:
                image = f"/{c}/image_raw/compressed"
                c_img[c] = writer.add_connection(image, "sensor_msgs/msg/CompressedImage", typestore=ts)
                c_info[c] = writer.add_connection(f"/{c}/camera_info", "sensor_msgs/msg/CameraInfo", typestore=ts)
            for ns, c, f in _camera_rows(rig, scene):
                images.setdefault(ns, []).append((c, f))
        writer.write(c_static, first, serialize(ts.types[TF](transforms=links), TF))
        for s in sweeps:
            ns = int(s["timestamp"]) * 1000
            if c_tf is not None:
                msg = ts.types[TF](transforms=[_transform(ts, ns, world, ego, s["ego_pose"])])
                writer.write(c_tf, ns, serialize(msg, TF))
            if c_odom is not None:
                writer.write(
                    c_odom, ns, serialize(_odometry(ts, ns, s["ego_pose"], world, ego), "nav_msgs/msg/Odometry")
                )
            z = np.load(rig / scene / s["points"])
            labels = z["labels"] if "labels" in z.files else None
            cloud = _cloud(ts, ns, s["sensor"], z["points"], labels)
            writer.write(c_cloud, ns, serialize(cloud, "sensor_msgs/msg/PointCloud2"))
            for c, f in images.get(ns, []):
                at, frame, cam = ns + camera_delay_ns, f"{c}_optical_frame", meta["cameras"][c]
                info = _camera_info(ts, at, frame, cam["intrinsic"], cam["image_size"])
                writer.write(c_info[c], at, serialize(info, "sensor_msgs/msg/CameraInfo"))
                writer.write(c_img[c], at, serialize(_compressed(ts, at, frame, f), "sensor_msgs/msg/CompressedImage"))
    return [int(s["timestamp"]) * 1000 for s in sweeps if s.get("keyframe")]


def write_boxes(rig: Path, scene: str, out: Path) -> int:
    """The scene's ``boxes.json`` as the side file ``occkit label --boxes`` reads with a bag: the same rows,
    each naming its sweep's ``stamp`` (ns) instead of the sweep's token; returns the number of rows."""
    sweeps = json.loads((rig / scene / "sweeps.json").read_text())["sweeps"]
    stamp = {s["token"]: int(s["timestamp"]) * 1000 for s in sweeps}
    rows = json.loads((rig / scene / "boxes.json").read_text())["boxes"]
    out.write_text(json.dumps({"boxes": [{"stamp": stamp[b.pop("sweep")], **b} for b in rows]}, indent=1))
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rig", type=Path, required=True, help="a rig folder (rig.json)")
    p.add_argument("--scene", required=True, help="the scene to write")
    p.add_argument("--out", type=Path, required=True, help="the bag: a folder (ROS 2) or a .bag file (ROS 1)")
    p.add_argument("--storage", choices=STORAGES, default="sqlite3")
    p.add_argument("--topic", default="/lidar/points", help="the PointCloud2 topic")
    p.add_argument("--odom-topic", default=None, help="also write the ego poses as nav_msgs/Odometry on this topic")
    p.add_argument(
        "--cameras", action="store_true", help="also write the keyframes' camera images (a rig in a dataset)"
    )
    p.add_argument("--keyframes", type=Path, default=None, help="write the keyframes' stamps (ns) to this file")
    p.add_argument("--boxes", type=Path, default=None, help="write the scene's boxes keyed by stamp to this file")
    a = p.parse_args(argv)
    stamps = write_bag(a.rig, a.scene, a.out, a.storage, a.topic, a.odom_topic, cameras=a.cameras)
    said = f"wrote {a.out} ({a.storage}); {len(stamps)} keyframes"
    if a.keyframes:
        a.keyframes.write_text("".join(f"{s}\n" for s in stamps))
        said += f" listed in {a.keyframes}"
    if a.boxes:
        said += f"; {write_boxes(a.rig, a.scene, a.boxes)} boxes in {a.boxes}"
    print(said)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
