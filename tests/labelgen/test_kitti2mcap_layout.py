"""A bag in kitti2mcap's layout (kitti2mcap 0.1.1, PyPI: a KITTI raw drive as one ROS 2 MCAP file, read through
pykitti 0.3.1), read by the ``rosbag`` reader against the same drive read by the ``kitti-raw`` reader.

The fixture ``tests/fixtures/kitti2mcap/`` holds a tiny KITTI raw drive (:func:`write_drive`: 3 scans, two
rectified colour cameras of 24 x 80 pixels, KITTI's calibration files with KITTI's stereo offsets scaled to the
small image) and ``2011_09_26_drive_0001_sync.mcap``, the file kitti2mcap itself wrote from it::

    python tests/labelgen/test_kitti2mcap_layout.py tests/fixtures/kitti2mcap/raw     # the drive
    pip install kitti2mcap pandas     # pykitti, kitti2mcap's reader, imports pandas
    kitti2mcap --kitti-dir tests/fixtures/kitti2mcap/raw --date 2011_09_26 --drive 0001 --cameras 2,3 \\
        --output tests/fixtures/kitti2mcap/2011_09_26_drive_0001_sync.mcap

kitti2mcap's layout (its cli.py, reader.py, calibration.py, writers/): clouds ``sensor_msgs/PointCloud2`` on
``/kitti/velodyne_points`` (x y z intensity float32, frame ``velodyne``); each camera ``sensor_msgs/Image``
(``rgb8``, unrectified topic name) on ``/kitti/camera_color_left/image_raw`` with ``sensor_msgs/CameraInfo``
on ``/kitti/camera_color_left/camera_info`` (``k`` = pykitti's ``K_cam2`` = ``P_rect_02``'s left 3 x 3, ``p``
= ``P_rect_02``, ``r`` = ``R_rect_02``, ``plumb_bob`` with zero ``d``; the right camera ``camera_color_right``),
frame ``camera_color_left``: the rectified camera's own axes (OpenCV's), a name without ``_optical``, so that
``--camera-axes optical`` is needed; ``/tf_static`` ``base_link -> velodyne`` and ``base_link -> camera_*``
(``base_link`` the IMU, pykitti's ``T_velo_imu`` and ``T_camX_imu`` inverted); ``/tf`` ``map -> base_link`` at each
OXTS row (pykitti's ``T_w_imu``).

pykitti places rectified camera ``X`` at ``P_rect_0X[0, 3] / fx`` along x alone; the ``kitti-raw`` reader takes the
whole offset ``K^-1 P_rect_0X[:, 3]``. On KITTI's calibration (a few millimetres of offset along y and z) the
bag's cameras then sit a few millimetres from the drive's: the test checks they differ by exactly that.
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

import numpy as np
import pytest
from kitti_drive import DATE, DRIVE, calib_line, rot
from kitti_drive import write_drive as write_kitti_drive

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "kitti2mcap"
BAG = FIXTURE / f"{DRIVE}.mcap"
SCANS = 3
SIZE = (24, 80)  # H, W
#: A KITTI-like rectified intrinsic (of the order of the 2011_09_26 drives') scaled to the small image.
K = np.array([[60.0, 0.0, 40.5], [0.0, 60.0, 11.5], [0.0, 0.0, 1.0]])
#: Each rectified camera's offset from camera 0 (``K^-1 P_rect_0X[:, 3]``), metres: KITTI-like values.
OFFSET = {"02": np.array([0.059849, -0.000358, 0.002746]), "03": np.array([-0.473040, 0.002390, 0.002730])}
#: The cameras' topics as kitti2mcap names them, and the bag reader's names for them (the namespace's).
TOPICS = {"02": "kitti_camera_color_left", "03": "kitti_camera_color_right"}


def _line(key: str, M) -> str:
    return calib_line(key, M, lambda v: f"{v:.12e}")


def _image(i: int, cam: str) -> np.ndarray:
    """A smooth pattern that differs by frame and camera (small as a PNG)."""
    y, x = np.mgrid[: SIZE[0], : SIZE[1]]
    shift = 7 * i + (0 if cam == "02" else 3)
    return np.stack([(4 * x + shift) % 256, (9 * y + 2 * shift) % 256, (x + y + 40 * i) % 256], -1).astype(np.uint8)


def write_drive(root: Path) -> Path:
    """A tiny KITTI raw drive ``root/DATE/DRIVE`` in KITTI's files (the three calibration files as KITTI writes
    them, every key pykitti reads included; OXTS rows of a car turning as it drives 1 m a scan; timestamps of
    the scans, OXTS rows and both cameras, nanoseconds)."""
    from PIL import Image

    rng = np.random.default_rng(7)
    R_cv = np.array([[0.0, -1, 0], [0, 0, -1], [1, 0, 0]])  # velodyne (x ahead, z up) -> camera (z ahead, y down)
    imu_to_velo = _line("R", rot(2, 0.01) @ rot(1, 0.005)) + _line("T", [-0.81, 0.32, -0.8])
    velo_to_cam = _line("R", rot(0, 0.012) @ R_cv @ rot(2, -0.007)) + _line("T", [-0.004069, -0.076316, -0.271781])
    rect = {"00": rot(0, 0.004) @ rot(2, -0.002), "01": rot(0, 0.003), "02": rot(1, 0.002), "03": rot(1, -0.001)}
    off = {"00": np.zeros(3), "01": np.array([-0.537, 0.0, 0.0]), **OFFSET}
    lines = []
    for c in ("00", "01", "02", "03"):
        lines += [_line(f"S_{c}", SIZE[::-1]), _line(f"K_{c}", K), _line(f"D_{c}", np.zeros(5))]
        lines += [_line(f"R_{c}", np.eye(3)), _line(f"T_{c}", off[c]), _line(f"S_rect_{c}", SIZE[::-1])]
        lines += [_line(f"R_rect_{c}", rect[c]), _line(f"P_rect_{c}", K @ np.c_[np.eye(3), off[c]])]
    t0 = datetime.datetime(2011, 9, 26, 13, 2, 25, 964389)

    def scans():
        for i in range(SCANS):
            pts = np.c_[rng.uniform(-30, 30, (150, 2)), rng.uniform(-1.8, 2, 150), rng.uniform(0, 1, 150)]
            lat, lon = 49.011 + 9e-6 * i, 8.4237 + 1e-6 * i * i
            oxts = [lat, lon, 112.5 + 0.01 * i, 0.01, -0.02 * i, 0.3 + 0.05 * i] + [0.0] * 19
            images = {f"image_{c}": Image.fromarray(_image(i, c)) for c in ("02", "03")}
            stamp = (t0 + datetime.timedelta(milliseconds=100 * i)).strftime("%Y-%m-%d %H:%M:%S.%f") + "000"
            yield pts, oxts, images, stamp

    return write_kitti_drive(root, imu_to_velo, velo_to_cam, "".join(lines), scans())


pytest.importorskip("rosbags")


@pytest.fixture(scope="module")
def routes():
    """The fixture's bag (``--camera-axes optical``) and drive, each opened by its reader, every scan a keyframe."""
    from occkit.data.recordings.registry import open_recording

    bag = open_recording(BAG, None, {"camera_axes": "optical", "keyframe_every": 1})
    raw = open_recording(FIXTURE / "raw", None, {"keyframe_every": 1})
    assert (type(bag).__name__, type(raw).__name__) == ("BagReader", "KittiRawReader")
    assert bag.scenes == raw.scenes == [DRIVE]  # the bag is a scene named after its file
    return bag, bag.read_scene(DRIVE), raw, raw.read_scene(DRIVE)


def _in_velodyne(rec, cam: str) -> np.ndarray:
    """The camera's pose in the velodyne's frame (the two routes' ego frames differ: the IMU, the ground)."""
    return np.linalg.inv(rec.lidars["velodyne"]) @ rec.cameras[cam].T_ego_from_cam


def test_the_bags_cameras_are_found_with_the_drives_intrinsics_and_images(routes, tmp_path):
    from PIL import Image

    bag, by_bag, raw, by_raw = routes
    assert sorted(by_bag.cameras) == sorted(TOPICS.values())
    for c, name in TOPICS.items():
        a, b = by_raw.cameras[f"image_{c}"], by_bag.cameras[name]
        assert np.array_equal(b.K, a.K) and np.array_equal(a.K, K) and b.image_size == a.image_size == SIZE
    written = bag.write_images(DRIVE, tmp_path)  # rgb8 Image messages, written as PNG
    tokens = [s.token for s in by_raw.sweeps]
    assert len(written) == len(tokens) == SCANS
    for i, (stamp, files) in enumerate(sorted(written.items(), key=lambda kv: int(kv[0]))):
        assert sorted(files) == sorted(TOPICS.values())
        for c, name in TOPICS.items():
            drive_image = raw.image_file(raw.images[tokens[i]][f"image_{c}"])
            with Image.open(tmp_path / files[name]) as got, Image.open(drive_image) as want:
                assert got.mode == want.mode == "RGB"
                assert np.array_equal(np.asarray(got), np.asarray(want)), (i, c)


def test_the_bags_cameras_sit_where_pykitti_puts_the_drives(routes):
    """Each camera's rotation is the drive's; its position differs from the kitti-raw reader's by what pykitti
    leaves out of ``P_rect_0X``'s offset (all but ``P[0, 3] / fx``), a few millimetres on KITTI's calibration."""
    from occkit.data.recordings.kitti_raw import read_calibration

    _, by_bag, _, by_raw = routes
    calib = read_calibration(FIXTURE / "raw" / DATE / DRIVE)
    for c, name in TOPICS.items():
        a, b = _in_velodyne(by_raw, f"image_{c}"), _in_velodyne(by_bag, name)
        np.testing.assert_allclose(b[:3, :3], a[:3, :3], atol=1e-9)
        P = calib.P_rect[f"image_{c}"]
        exact = np.linalg.solve(P[:, :3], P[:, 3])  # the kitti-raw reader's offset: K^-1 P[:, 3]
        pykitti = np.array([P[0, 3] / P[0, 0], 0.0, 0.0])
        np.testing.assert_allclose(exact, OFFSET[c], atol=1e-9)
        left_out = a[:3, :3] @ (exact - pykitti)  # in the velodyne's axes
        np.testing.assert_allclose(b[:3, 3] - a[:3, 3], left_out, atol=1e-6)
        assert 1e-3 < np.linalg.norm(left_out) < 5e-3
    baseline = _in_velodyne(by_bag, TOPICS["03"])[:3, 3] - _in_velodyne(by_bag, TOPICS["02"])[:3, 3]
    assert abs(np.linalg.norm(baseline) - 0.5329) < 1e-3  # KITTI's stereo baseline, P_rect_03's x offset


def test_the_bags_sweeps_and_motion_are_the_drives(routes):
    """Each cloud holds its scan's points and reflectance; the velodyne moves between scans as the OXTS rows
    say (kitti2mcap's /tf from pykitti's poses, the kitti-raw reader's from its own Mercator)."""
    _, by_bag, _, by_raw = routes
    assert len(by_bag.sweeps) == len(by_raw.sweeps) == SCANS
    velo = [[s.T_global_from_ego @ r.lidars["velodyne"] for s in r.sweeps] for r in (by_bag, by_raw)]
    for i, (a, b) in enumerate(zip(by_raw.sweeps, by_bag.sweeps)):
        assert np.array_equal(b.points, a.points) and np.array_equal(b.intensity, a.intensity)
        rel = [np.linalg.inv(v[0]) @ v[i] for v in velo]
        np.testing.assert_allclose(rel[0][:3, :3], rel[1][:3, :3], atol=1e-9)
        np.testing.assert_allclose(rel[0][:3, 3], rel[1][:3, 3], atol=1e-6)
    assert np.linalg.norm((np.linalg.inv(velo[1][0]) @ velo[1][-1])[:3, 3]) > 1.0  # the drive moves


def test_the_bags_frames_are_taken_as_camera_bodies_without_camera_axes(routes):
    """kitti2mcap names its rectified cameras' frames ``camera_color_left``, without ``_optical``: ``--camera-axes
    auto`` takes them as body frames (x forward) and turns them, so a bag of it is read with ``optical``."""
    from occkit.data.recordings.bag_cameras import R_BODY_FROM_OPTICAL
    from occkit.data.recordings.registry import open_recording

    _, by_bag, _, _ = routes
    auto = open_recording(BAG, None, {"keyframe_every": 1}).read_scene(DRIVE)
    turn = np.eye(4)
    turn[:3, :3] = R_BODY_FROM_OPTICAL
    for name in TOPICS.values():
        np.testing.assert_allclose(_in_velodyne(auto, name), _in_velodyne(by_bag, name) @ turn, atol=1e-9)


def test_the_fixtures_drive_is_the_one_write_drive_writes(tmp_path):
    """The committed drive is :func:`write_drive`'s (the images' pixels; every other file byte for byte), so that
    the command in this module's docstring makes the fixture again."""
    from PIL import Image

    write_drive(tmp_path)
    ours = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert ours == sorted(p.relative_to(FIXTURE / "raw") for p in (FIXTURE / "raw").rglob("*") if p.is_file())
    for rel in ours:
        a, b = tmp_path / rel, FIXTURE / "raw" / rel
        if rel.suffix == ".png":
            with Image.open(a) as x, Image.open(b) as y:
                assert np.array_equal(np.asarray(x), np.asarray(y)), rel
        else:
            assert a.read_bytes() == b.read_bytes(), rel


if __name__ == "__main__":  # the fixture's drive: python tests/labelgen/test_kitti2mcap_layout.py OUT
    print(write_drive(Path(sys.argv[1])))
