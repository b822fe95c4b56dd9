"""The cameras of the ``kitti`` reader: SemanticKITTI's ``image_2`` and ``image_3`` (``calib.txt``'s P2, P3) and
KITTI-360's rectified ``image_00`` and ``image_01`` (``perspective.txt``'s P_rect and R_rect,
``calib_cam_to_pose.txt``), each placed where the files put it, with its images in the labels' index. Tiny
sequences written by hand: the rectified cameras' true poses chosen first, the files made from them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from occkit.data.recordings.kitti import KITTI_LIDAR_HEIGHT

K = np.array([[700.0, 0, 320], [0, 700, 96], [0, 0, 1]])
SIZE = (192, 640)  # H, W
#: OpenCV camera axes (x right, y down, z ahead) in the velodyne's (x ahead, y left, z up).
R_CV = np.array([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]])


def _T(R: np.ndarray, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t
    return T


def _rz(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _rx(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _fmt(M) -> str:
    return " ".join(repr(float(v)) for v in np.asarray(M).reshape(-1))


def _png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", SIZE[::-1], (90, 120, 150)).save(path)


def _scan(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    np.c_[rng.uniform(-20, 20, (200, 2)), rng.uniform(-1.7, 1, 200), rng.uniform(0, 1, 200)].astype("<f4").tofile(path)


#: The rectified cameras' true poses in the velodyne frame: camera 0 (or 2) ahead, the second at the
#: baseline to its right, both with one orientation (rectified).
T_VELO_LEFT = _T(R_CV @ _rx(0.01), [0.27, 0.06, -0.08])
T_VELO_RIGHT = T_VELO_LEFT @ _T(np.eye(3), [0.54, 0, 0])


def _lifted(T: np.ndarray) -> np.ndarray:
    return _T(np.eye(3), [0, 0, KITTI_LIDAR_HEIGHT]) @ T


@pytest.fixture
def semantickitti(tmp_path) -> Path:
    """One sequence of two scans; its camera 0 (``Tr``'s, rectified) 0.06 m right of camera 2."""
    seq = tmp_path / "sk" / "sequences" / "00"
    for i in range(2):
        _scan(seq / "velodyne" / f"{i:06d}.bin")
    (seq / "poses.txt").write_text(f"{_fmt(np.eye(4)[:3])}\n{_fmt(_T(np.eye(3), [0, 0, 1])[:3])}\n")
    T_cam0_velo = np.linalg.inv(T_VELO_LEFT @ _T(np.eye(3), [0.06, 0, 0]))
    P = {c: K @ np.c_[np.eye(3), t] for c, t in (("P2", [0.06, 0, 0]), ("P3", [0.06 - 0.54, 0, 0]))}
    P0 = K @ np.c_[np.eye(3), np.zeros(3)]
    (seq / "calib.txt").write_text(
        f"P0: {_fmt(P0)}\nP1: {_fmt(P0)}\nP2: {_fmt(P['P2'])}\nP3: {_fmt(P['P3'])}\nTr: {_fmt(T_cam0_velo[:3])}\n"
    )
    for cam in ("image_2", "image_3"):
        _png(seq / cam / "000000.png")
    return tmp_path / "sk"


def test_semantickittis_image_3_is_camera_3_at_the_baseline(semantickitti):
    from occkit.data.recordings.registry import open_recording

    rec = open_recording(semantickitti, "kitti", {})
    assert rec.images["00_000000"] == {c: f"sequences/00/{c}/000000.png" for c in ("image_2", "image_3")}
    assert all((rec.image_links["sequences"] / p.split("/", 1)[1]).is_file() for p in rec.images["00_000000"].values())
    cams = rec.read_scene("00").cameras
    assert list(cams) == ["image_2", "image_3"]
    for name, T in (("image_2", T_VELO_LEFT), ("image_3", T_VELO_RIGHT)):
        assert np.allclose(cams[name].K, K) and cams[name].image_size == SIZE
        assert np.allclose(cams[name].T_ego_from_cam, _lifted(T), atol=1e-9), name


def test_semantickittis_image_3_without_p3_is_refused_naming_calib(semantickitti, capsys):
    from occkit.cli import main

    calib = semantickitti / "sequences" / "00" / "calib.txt"
    calib.write_text("".join(ln + "\n" for ln in calib.read_text().splitlines() if not ln.startswith("P3")))
    assert main(["label", "--data", str(semantickitti), "--out", str(semantickitti.parent / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(calib) in err and "'P3:'" in err, err


SEQ = "2013_05_28_drive_0000_sync"


@pytest.fixture
def kitti360(tmp_path) -> Path:
    """One KITTI-360 sequence of two scans with both perspective cameras: each unrectified camera turned off
    the rectified frame by its own R_rect, the pose frame (GPS/IMU) off the velodyne."""
    root = tmp_path / "k360"
    for i in range(2):
        _scan(root / "data_3d_raw" / SEQ / "velodyne_points" / "data" / f"{i:010d}.bin")
        for cam in ("image_00", "image_01"):
            _png(root / "data_2d_raw" / SEQ / cam / "data_rect" / f"{i:010d}.png")
    (root / "data_poses" / SEQ).mkdir(parents=True)
    (root / "data_poses" / SEQ / "poses.txt").write_text(
        "".join(f"{i} {_fmt(_T(_rz(0.1 * i), [2.0 * i, 0, 0])[:3])}\n" for i in range(2))
    )
    R_rect = {"00": _rx(0.004) @ _rz(-0.003), "01": _rz(0.005)}  # unrectified -> rectified
    T_pose_velo = _T(_rz(0.02), [0.8, -0.3, 0.7])
    unrect = {n: T @ _T(R_rect[n], [0, 0, 0]) for n, T in (("00", T_VELO_LEFT), ("01", T_VELO_RIGHT))}
    cal = root / "calibration"
    cal.mkdir()
    (cal / "calib_cam_to_velo.txt").write_text(_fmt(unrect["00"][:3]) + "\n")
    (cal / "calib_cam_to_pose.txt").write_text(
        "".join(f"image_{n}: {_fmt((T_pose_velo @ unrect[n])[:3])}\n" for n in ("00", "01"))
    )
    (cal / "perspective.txt").write_text(
        "calib_time: 09-Jan-2012 13:57:47\n"
        + "".join(
            f"S_rect_{n}: {SIZE[1]} {SIZE[0]}\nR_rect_{n}: {_fmt(R_rect[n])}\n"
            f"P_rect_{n}: {_fmt(K @ np.c_[np.eye(3), t])}\n"
            for n, t in (("00", [0, 0, 0]), ("01", [-0.54, 0, 0]))
        )
    )
    return root


def test_kitti360s_two_perspective_cameras_are_posed_by_cam_to_pose_and_r_rect(kitti360):
    from occkit.data.recordings.registry import open_recording

    rec = open_recording(kitti360, "kitti", {})
    tok = f"{SEQ}_0000000001"
    assert rec.images[tok] == {c: f"{SEQ}/{c}/data_rect/0000000001.png" for c in ("image_00", "image_01")}
    assert all((rec.image_links["data_2d_raw"] / p).is_file() for p in rec.images[tok].values())
    cams = rec.read_scene(SEQ).cameras
    assert list(cams) == ["image_00", "image_01"]
    for name, T in (("image_00", T_VELO_LEFT), ("image_01", T_VELO_RIGHT)):
        assert np.allclose(cams[name].K, K) and cams[name].image_size == SIZE
        assert np.allclose(cams[name].T_ego_from_cam, _lifted(T), atol=1e-9), name


def test_kitti360s_image_01_without_its_projection_is_refused_naming_perspective(kitti360, capsys):
    from occkit.cli import main

    f = kitti360 / "calibration" / "perspective.txt"
    f.write_text("".join(ln + "\n" for ln in f.read_text().splitlines() if not ln.startswith("P_rect_01")))
    assert main(["label", "--data", str(kitti360), "--out", str(kitti360.parent / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(f) in err and "P_rect_01" in err, err
