"""Cameras of a ROS bag (occkit.data.recordings.bag_cameras): the synthetic world written as a ROS 2 bag with its
six cameras (CompressedImage of the world's own JPEG bytes, CameraInfo, optical frames on /tf_static; tools/
rig_to_bag.py --cameras) labels as the rig route does, images byte for byte, intrinsics and extrinsics equal,
and the labels train, predict and score with no hand step; distorted images are undistorted to the K recorded,
body frames are turned to optical axes, raw images are written as PNG, a camera missing at a keyframe is counted;
each bad input is one line naming the topic or bag, with nothing written."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rosbags")

from conftest import load_tool, write_sweep_world  # noqa: E402

from occkit.cli import main  # noqa: E402

EGO_BOX = "4.1 1.8 1.6 1.3 0 0.8"  # the synthetic rig's (rig.json "ego"): a bag carries no vehicle box
CAM = "CAM_FRONT"
TF, PC = "tf2_msgs/msg/TFMessage", "sensor_msgs/msg/PointCloud2"
JPEG, RAW, INFO = "sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/Image", "sensor_msgs/msg/CameraInfo"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return write_sweep_world(tmp_path_factory.mktemp("camw") / "w")


def _label(data: Path, out: Path, *extra: str) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["label", "--data", str(data), "--out", str(out), "--preset", "naive", *extra]) == 0
    return buf.getvalue()


def _entries(out: Path) -> dict[int, dict]:
    """The index entries of a label output by timestamp (microseconds): the rig's tokens are not the bag's."""
    ann = json.loads((out / "annotations.json").read_text())
    return {info["timestamp"]: info for infos in ann["scene_infos"].values() for info in infos.values()}


def _matrix(pose: dict) -> np.ndarray:
    from occkit.geometry.transforms import checked_pose

    return checked_pose(pose["translation"], pose["rotation"], "extrinsic", "test").numpy()


@pytest.fixture(scope="module")
def routes(world, tmp_path_factory) -> dict[str, Path]:
    """The world labelled through its rig (images linked from the world) and as a bag with its cameras (the
    images 4 ms after each keyframe's cloud: the nearest one is taken) and the rig's boxes in a side file."""
    root = tmp_path_factory.mktemp("routes")
    _label(world, root / "rig")
    tool = load_tool("rig_to_bag")
    stamps = tool.write_bag(world / "rig", "scene-0000", root / "bag", cameras=True, camera_delay_ns=4_000_000)
    (root / "kf.txt").write_text("".join(f"{s}\n" for s in stamps))
    tool.write_boxes(world / "rig", "scene-0000", root / "boxes.json")
    given = ["--keyframes", str(root / "kf.txt"), "--ego-box", EGO_BOX, "--boxes", str(root / "boxes.json")]
    said = _label(root / "bag", root / "bag-labels", *given)
    return {"rig": root / "rig", "bag": root / "bag-labels", "said": said}


def test_a_bag_with_cameras_labels_as_the_rig_route(routes):
    rig, bag = _entries(routes["rig"]), _entries(routes["bag"])
    assert sorted(rig) == sorted(bag) and len(rig) == 2
    assert (
        "cameras CAM_BACK, CAM_BACK_LEFT, CAM_BACK_RIGHT, CAM_FRONT, CAM_FRONT_LEFT, CAM_FRONT_RIGHT" in routes["said"]
    )
    for t in rig:
        a, b = rig[t]["camera_sensor"], bag[t]["camera_sensor"]
        assert sorted(a) == sorted(b) and len(a) == 6
        for cam in a:
            image = (routes["bag"] / b[cam]["img_path"]).read_bytes()
            assert image == (routes["rig"] / a[cam]["img_path"]).read_bytes()  # the world's JPEG, byte for byte
            assert b[cam]["img_path"] == f"samples/{cam}/{bag[t]['lidar_sensor']['token']}.jpg"
            np.testing.assert_allclose(b[cam]["intrinsic"], a[cam]["intrinsic"], atol=1e-5)
            np.testing.assert_allclose(_matrix(b[cam]["extrinsic"]), _matrix(a[cam]["extrinsic"]), atol=1e-5)
        a_lab, b_lab = np.load(routes["rig"] / rig[t]["gt_path"]), np.load(routes["bag"] / bag[t]["gt_path"])
        for k in a_lab.files:  # the same camera mask: the same cameras
            assert np.array_equal(a_lab[k], b_lab[k]), k
        assert b_lab["mask_camera"].any()


def test_the_bag_labels_train_predict_and_score_with_no_hand_step(routes, tmp_path, capsys):
    run, pred = tmp_path / "run", tmp_path / "pred"
    fast = [
        "--max-steps",
        "2",
        "--no-val",
        "--no-progress",
        "--set",
        "train.threads=1",
        "data.image_aug.out_hw=[32, 64]",
    ]
    assert main(["train", "synth-cpu", "--data", str(routes["bag"]), "--out", str(run), *fast]) == 0
    assert "CAM_FRONT" in json.loads((run / "config.json").read_text())["data"]["cameras"]
    argv = ["predict", "--ckpt", str(run), "--data", str(routes["bag"]), "--out", str(pred), "--split", "train"]
    assert main([*argv, "--eval", "--no-progress", "--workers", "0"]) == 0
    assert len(list(pred.glob("*.npz"))) == 2 and "mIoU" in capsys.readouterr().out


# ---- small bags --------------------------------------------------------------------------------------


def _bag(path: Path, msgs: list[tuple[str, str, int, object]]) -> Path:
    """A ROS 2 bag (sqlite3) of ``(topic, msgtype, log time ns, message)`` (message None: a topic without one)."""
    from rosbags.rosbag2 import Writer

    ts = _ts()
    with Writer(path, version=9) as w:
        conns = {}
        for topic, mt, t, msg in msgs:
            if topic not in conns:
                conns[topic] = w.add_connection(topic, mt, typestore=ts)
            if msg is not None:  # None: the topic's connection alone
                w.write(conns[topic], t, ts.serialize_cdr(msg, mt))
    return path


def _ts():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_HUMBLE)


def _jpeg(ts, ns, frame, path):
    return load_tool("rig_to_bag")._compressed(ts, ns, frame, path)


def _info(ts, ns, frame, K, size):
    return load_tool("rig_to_bag")._camera_info(ts, ns, frame, K, size)


def _scene(
    world: Path,
    image=_jpeg,
    info=_info,
    frame=f"{CAM}_optical_frame",
    pose=None,
    link="static",
    delay=0,
    base="image_raw",
):
    """The world's clouds, tf and camera CAM_FRONT as messages: ``image(ts, ns, frame, jpeg file)`` and
    ``info(ts, ns, frame, K, size)`` make its messages at each keyframe (``delay`` ns after it), its frame
    placed by ``pose`` (the rig's) on /tf_static (``link`` static), on /tf at the first keyframe only
    (``link`` first) or nowhere (``link`` None)."""
    tool, ts = load_tool("rig_to_bag"), _ts()
    rig = world / "rig"
    meta = json.loads((rig / "rig.json").read_text())
    sweeps = json.loads((rig / "scene-0000" / "sweeps.json").read_text())["sweeps"]
    ann = json.loads((world / "annotations.json").read_text())["scene_infos"]["scene-0000"]
    first = sweeps[0]["timestamp"] * 1000
    pose = pose or meta["cameras"][CAM]
    links = [tool._transform(ts, first, "base_link", "LIDAR_TOP", meta["lidars"]["LIDAR_TOP"])]
    if link == "static":
        links.append(tool._transform(ts, first, "base_link", frame, pose))
    out = [("/tf_static", TF, first, ts.types[TF](transforms=links))]
    if link == "first":
        out.append(("/tf", TF, first, ts.types[TF](transforms=[tool._transform(ts, first, "base_link", frame, pose)])))
    for s in sweeps:
        ns = s["timestamp"] * 1000
        out.append(
            ("/tf", TF, ns, ts.types[TF](transforms=[tool._transform(ts, ns, "map", "base_link", s["ego_pose"])]))
        )
        out.append(
            (
                "/lidar/points",
                PC,
                ns,
                tool._cloud(ts, ns, "LIDAR_TOP", np.load(rig / "scene-0000" / s["points"])["points"], None),
            )
        )
    cam = meta["cameras"][CAM]
    for entry in ann.values():
        ns = entry["timestamp"] * 1000 + delay
        msg = image(ts, ns, frame, world / entry["camera_sensor"][CAM]["img_path"])
        topic = f"/{CAM}/{base}" + ("/compressed" if msg.__msgtype__ == JPEG else "")
        out.append((topic, msg.__msgtype__, ns, msg))
        if info is not None:
            out.append((f"/{CAM}/camera_info", INFO, ns, info(ts, ns, frame, cam["intrinsic"], cam["image_size"])))
    return out  # fmt: skip


def _raw(pixels: np.ndarray, encoding: str):
    """An image maker of a raw ``sensor_msgs/Image`` holding ``pixels`` (H, W[, C]) uint8."""

    def make(ts, ns, frame, path):
        H, W = pixels.shape[:2]
        step = pixels.size // H
        head = load_tool("rig_to_bag")._header(ts, ns, frame)
        data = np.ascontiguousarray(pixels).reshape(-1)
        return ts.types[RAW](header=head, height=H, width=W, encoding=encoding, is_bigendian=0, step=step, data=data)

    return make


def _open(data: Path, **options):
    from occkit.data.recordings.registry import open_recording

    return open_recording(data, None, options)


def _kf(world: Path) -> list[int]:
    sweeps = json.loads((world / "rig" / "scene-0000" / "sweeps.json").read_text())["sweeps"]
    return [s["timestamp"] * 1000 for s in sweeps if s["keyframe"]]


def test_a_camera_missing_at_keyframes_is_counted_and_left_out_of_their_entries(world, tmp_path):
    """Images at two of four keyframes, within 0.1 s of none of the other two: those are missing there."""
    from occkit.labelgen.run import _index_record

    rec = _open(_bag(tmp_path / "b", _scene(world)), keyframe_every=1, camera_tolerance=0.1)
    scene = rec.read_scene(rec.scenes[0], load_points=False)
    written = rec.write_images(rec.scenes[0], tmp_path / "out")
    tokens = [s.token for s in scene.sweeps]
    assert sorted(written) == sorted(str(s) for s in _kf(world)) and len(tokens) == 4
    (line,) = [w for w in scene.warnings if "camera images missing" in w]
    assert "CAM_FRONT at 2 of 4" in line and "--camera-tolerance" in line
    assert scene.notes["cameras"][CAM]["keyframes_missing"] == 2 and scene.notes["cameras"][CAM]["tolerance_s"] == 0.1
    keys = scene.sweeps
    entries = [_index_record(scene, {"images": written}, keys, i, "nuscenes", own_images=True) for i in range(4)]
    assert [CAM in e["camera_sensor"] for e in entries] == [t in written for t in tokens]
    every = _open(tmp_path / "b", keyframe_every=1)  # by default half the period (0.25 s): every keyframe has one
    assert not every.read_scene(every.scenes[0], load_points=False).warnings
    assert len(every.write_images(every.scenes[0], tmp_path / "o2")) == 4


def test_write_rig_of_a_bag_writes_its_images_into_the_rig(world, tmp_path, capsys):
    bag = _bag(tmp_path / "b", _scene(world))
    assert main(["label", "--data", str(bag), "--keyframe-every", "3", "--write-rig", str(tmp_path / "rig")]) == 0
    assert "2 camera images" in capsys.readouterr().out
    rows = json.loads((tmp_path / "rig" / "b" / "sweeps.json").read_text())["sweeps"]
    ann = json.loads((world / "annotations.json").read_text())["scene_infos"]["scene-0000"]
    by_time = {e["timestamp"]: world / e["camera_sensor"][CAM]["img_path"] for e in ann.values()}
    shots = [(r["timestamp"], r["images"][CAM]) for r in rows if r.get("images")]
    assert len(shots) == 2 and not (tmp_path / "rig" / ".images").exists()
    for t, f in shots:
        assert (tmp_path / "rig" / "b" / f).read_bytes() == by_time[t].read_bytes()
    meta = json.loads((tmp_path / "rig" / "rig.json").read_text())
    assert list(meta["cameras"]) == [CAM]


def test_a_body_frame_is_turned_to_optical_axes(world, tmp_path):
    """A camera frame without the _optical suffix is a body frame (x forward): its link is the rig camera's
    optical pose turned back, and the reader turns it again; --camera-axes optical takes it as it is."""
    from occkit.data.recordings.bag_cameras import R_BODY_FROM_OPTICAL
    from occkit.data.rig import _pose_dict

    meta = json.loads((world / "rig" / "rig.json").read_text())
    T_opt = _matrix(meta["cameras"][CAM])
    R = np.eye(4)
    R[:3, :3] = R_BODY_FROM_OPTICAL
    body = _pose_dict(T_opt @ np.linalg.inv(R))
    bag = _bag(tmp_path / "b", _scene(world, frame="cam_front_link", pose=body))
    auto = _open(bag).read_scene("b", load_points=False).cameras[CAM]
    np.testing.assert_allclose(auto.T_ego_from_cam, T_opt, atol=1e-6)
    taken = _open(bag, camera_axes="optical").read_scene("b", load_points=False).cameras[CAM]
    np.testing.assert_allclose(taken.T_ego_from_cam, _matrix(body), atol=1e-6)


def test_a_rectified_topic_takes_p_and_r_and_is_taken_before_the_raw_one(world, tmp_path):
    """Beside image_raw, image_rect_color is the camera's topic (said): its K is P's left 3 x 3 (not K, not
    undistorted by D), and its axes R's: the extrinsic is the header frame's turned by R transposed."""
    meta = json.loads((world / "rig" / "rig.json").read_text())
    K_rect = np.asarray(meta["cameras"][CAM]["intrinsic"])
    a = 0.1
    R = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(a), -np.sin(a)], [0.0, np.sin(a), np.cos(a)]])

    def info(ts, ns, frame, K, size):
        msg = _info(ts, ns, frame, np.diag([1.3, 1.3, 1.0]) @ K, size)  # the raw camera's K: not the one taken
        msg.d, msg.r, msg.p = (
            np.array([-0.2, 0.05, 0.0, 0.0, 0.0]),
            R.reshape(-1),
            np.c_[K_rect, np.zeros(3)].reshape(-1),
        )
        return msg

    rect = [m for m in _scene(world, base="image_rect_color", info=None) if "image_rect_color" in m[0]]
    rec = _open(_bag(tmp_path / "b", _scene(world, info=info) + rect))
    assert f"camera {CAM}: /{CAM}/image_rect_color/compressed taken, not /{CAM}/image_raw/compressed" in rec.describe
    cam = rec.read_scene("b", load_points=False).cameras[CAM]
    np.testing.assert_allclose(cam.K, K_rect)
    turn = np.eye(4)
    turn[:3, :3] = R.T
    np.testing.assert_allclose(cam.T_ego_from_cam, _matrix(meta["cameras"][CAM]) @ turn, atol=1e-9)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono8"])
def test_raw_images_are_written_as_png_with_their_pixels(world, tmp_path, encoding):
    from PIL import Image

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)
    pixels = {"rgb8": rgb, "bgr8": rgb[..., ::-1], "mono8": rgb[..., 0]}[encoding]
    rec = _open(_bag(tmp_path / "b", _scene(world, image=_raw(pixels, encoding))))
    rec.read_scene("b", load_points=False)
    ((token, cams),) = rec.write_images("b", tmp_path / "out").items()
    assert cams == {CAM: f"samples/{CAM}/{token}.png"}
    got = np.asarray(Image.open(tmp_path / "out" / cams[CAM]))
    assert np.array_equal(got, rgb if encoding != "mono8" else rgb[..., 0])


def _dots_image(K, D, model, size, dirs):
    """A raw (distorted) grey image of bright dots along ``dirs`` (camera frame), made by undistorting each
    pixel's centre with OpenCV and lighting those within 0.01 (normalised units) of a dot."""
    import cv2

    H, W = size
    uv = np.stack(np.meshgrid(np.arange(W), np.arange(H)), -1).reshape(-1, 1, 2).astype(np.float64)
    if model == "equidistant":
        xy = cv2.fisheye.undistortPoints(uv, K, D.reshape(4, 1)).reshape(-1, 2)
    else:
        xy = cv2.undistortPoints(uv, K, D).reshape(-1, 2)
    img = np.zeros(H * W, np.uint8)
    for d in dirs:
        img[np.linalg.norm(xy - d[:2] / d[2], axis=1) < 0.03] = 255
    return img.reshape(H, W)


@pytest.mark.parametrize(
    "model, D", [("plumb_bob", [-0.25, 0.08, 0.001, -0.001, 0.0]), ("equidistant", [0.05, -0.02, 0.01, 0.0])]
)
def test_distorted_images_are_undistorted_to_the_k_recorded(world, tmp_path, model, D):
    """Dots seen through the distortion land, in the written image, where the recorded K projects them."""
    from PIL import Image

    K = np.array([[60.0, 0.0, 40.0], [0.0, 60.0, 24.0], [0.0, 0.0, 1.0]])
    D = np.asarray(D)
    dirs = [np.array(d) for d in ([0.0, 0.0, 1.0], [0.45, 0.2, 1.0], [-0.4, -0.25, 1.0], [0.3, -0.25, 1.0])]
    raw = _dots_image(K, D, model, (48, 80), dirs)

    def info(ts, ns, frame, _K, size):
        msg = _info(ts, ns, frame, K, size)
        msg.distortion_model, msg.d = model, D
        return msg

    rec = _open(_bag(tmp_path / "b", _scene(world, image=_raw(raw, "mono8"), info=info)))
    cam = rec.read_scene("b", load_points=False).cameras[CAM]
    assert not np.allclose(cam.K, K)  # a new K, recorded
    ((token, cams),) = rec.write_images("b", tmp_path / "out").items()
    img = np.asarray(Image.open(tmp_path / "out" / cams[CAM])).astype(np.float64)
    checked = 0
    for d in dirs:
        p = cam.K @ d
        u, v = p[:2] / p[2]
        if not (5 <= u <= 74 and 5 <= v <= 42):
            continue
        r, c = int(round(v)), int(round(u))
        win = img[r - 4 : r + 5, c - 4 : c + 5]
        vv, uu = np.mgrid[r - 4 : r + 5, c - 4 : c + 5]
        assert win.sum() > 0, (u, v)
        centre = np.array([(uu * win).sum(), (vv * win).sum()]) / win.sum()
        assert np.linalg.norm(centre - [u, v]) < 0.75, (centre, u, v)  # OpenCV: pixel centres at integers
        checked += 1
    assert checked >= 3


def test_an_image_topic_without_camera_info_is_left_out_with_a_note_and_none_chosen_with_an_empty_list(world, tmp_path):
    bag = _bag(tmp_path / "b", _scene(world, info=None))
    rec = _open(bag)
    assert f"image topic /{CAM}/image_raw/compressed left out: no sensor_msgs/msg/CameraInfo" in rec.describe
    assert rec.read_scene("b", load_points=False).cameras == {}
    rec = _open(_bag(tmp_path / "c", _scene(world)), cameras="")
    assert "no cameras" in rec.describe and rec.read_scene("c", load_points=False).cameras == {}


# ---- bad input -------------------------------------------------------------------------------------


def _named_without_info(world, tmp):
    return [_bag(tmp / "b", _scene(world, info=None)), "--cameras", f"/{CAM}/image_raw/compressed"]


def _bayer(world, tmp):
    return [_bag(tmp / "b", _scene(world, image=_raw(np.zeros((48, 80), np.uint8), "bayer_rggb8")))]


def _other_size(world, tmp):
    return [_bag(tmp / "b", _scene(world, info=lambda ts, ns, f, K, size: _info(ts, ns, f, K, (40, 80))))]


def _k_zeros(world, tmp):
    return [_bag(tmp / "b", _scene(world, info=lambda ts, ns, f, K, size: _info(ts, ns, f, np.zeros((3, 3)), size)))]


def _unknown_model(world, tmp):
    def info(ts, ns, frame, K, size):
        msg = _info(ts, ns, frame, K, size)
        msg.distortion_model, msg.d = "kannala_brandt", np.array([0.1, 0.0, 0.0, 0.0, 0.0, 0.0])
        return msg

    return [_bag(tmp / "b", _scene(world, info=info))]


def _no_tf(world, tmp):
    return [_bag(tmp / "b", _scene(world, link=None))]


def _tf_at_first_only(world, tmp):
    return [_bag(tmp / "b", _scene(world, link="first")), "--keyframe-every", "1"]


def _not_a_jpeg(world, tmp):
    def image(ts, ns, frame, path):
        msg = _jpeg(ts, ns, frame, path)
        msg.data = np.frombuffer(b"not an image at all", np.uint8)
        return msg

    return [_bag(tmp / "b", _scene(world, image=image))]


def _far_images(world, tmp):
    return [_bag(tmp / "b", _scene(world, delay=50_000_000)), "--camera-tolerance", "0.01"]


def _empty_info(world, tmp):  # a CameraInfo topic (a connection) without a message
    return [_bag(tmp / "b", [*_scene(world, info=None), (f"/{CAM}/camera_info", INFO, 0, None)])]


@pytest.mark.parametrize(
    "make, words",
    [
        (_named_without_info, ["image topic /CAM_FRONT/image_raw/compressed has no", "/CAM_FRONT/camera_info"]),
        (_bayer, ["/CAM_FRONT/image_raw: the image at stamp", "encoding 'bayer_rggb8' is not one", "rgb8, bgr8"]),
        (_other_size, ["80 x 48 pixels, but its CameraInfo /CAM_FRONT/camera_info says 80 x 40"]),
        (_k_zeros, ["/CAM_FRONT/camera_info: K is all zeros"]),
        (_unknown_model, ["/CAM_FRONT/camera_info: distortion model 'kannala_brandt' with 6", "plumb_bob with 4 or 5"]),
        (_no_tf, ["no transform between frames 'base_link' and 'CAM_FRONT_optical_frame'", "camera CAM_FRONT"]),
        (
            _tf_at_first_only,
            ["no transform from 'base_link' to 'CAM_FRONT_optical_frame' at stamp 1600000000500000000"],
        ),
        (_not_a_jpeg, ["/CAM_FRONT/image_raw/compressed: the image at stamp", "does not decode as jpeg"]),
        (_far_images, ["camera CAM_FRONT (/CAM_FRONT/image_raw/compressed): no image within 0.01 s", "keyframe"]),
        (_empty_info, ["topic /CAM_FRONT/camera_info holds no message"]),
    ],
)
def test_bad_cameras_are_refused_in_one_line_naming_the_topic_and_nothing_is_written(
    world, tmp_path, capsys, make, words
):
    data, *extra = make(world, tmp_path)
    out = tmp_path / "lab"
    capsys.readouterr()
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["label", "--data", str(data), "--out", str(out), *extra]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert all(w in err for w in words), err
    assert str(data) in err
    assert not out.exists() and not list(tmp_path.glob(".lab*"))  # refused before any folder is made


def test_a_camera_tolerance_below_zero_is_refused(world, tmp_path, capsys):
    argv = ["label", "--data", str(world / "rig"), "--reader", "rosbag", "--out", str(tmp_path / "o")]
    assert main([*argv, "--camera-tolerance", "-1"]) == 1
    assert "--camera-tolerance -1.0: must be a number of seconds" in capsys.readouterr().err
