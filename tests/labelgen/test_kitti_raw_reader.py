"""KITTI raw drives into ``occkit label`` (the ``kitti-raw`` reader): the synthetic world's rig (``occkit synth
--sweeps K``) written as a KITTI raw drive (velodyne bins, OXTS rows from its poses by the inverse Mercator
projection, its front camera as ``image_02`` and a right camera at KITTI's baseline as ``image_03``, the three
calibration files) reads back the rig's poses, cameras and labels; bad files are refused in one line naming
them.

A rectified stereo pair shares one orientation (KITTI's ``R_rect_00``), which no two of the world's cameras
do: ``image_03`` is the front camera moved 0.54 m to its right, its images the front camera's (the labels'
camera mask uses the cameras' geometry, not their pixels). The rig route compared voxel for voxel is the
same sweeps as a rig folder with the drive's information: its ego frame under the velodyne (the reader's),
no point labels, no boxes, the drive's two cameras.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from kitti_drive import CAMERAS, DATE, DRIVE, calib_line, rot
from kitti_drive import write_drive as write_kitti_drive

from occkit.cli import main

SYNTH = ["--scenes", "1", "--frames", "2", "--image-size", "48", "80", "--beams", "8", "--sweeps", "2"]
#: Where the drive starts (Karlsruhe), degrees and metres.
LAT0, LON0, ALT0 = 49.011, 8.4237, 112.5
EARTH = 6378137.0
#: KITTI's stereo baseline, metres; the synthetic world's velodyne above the road.
BASELINE = 0.54
VELO_HEIGHT = 1.84
#: camera 2 in the rectified camera 0's frame (``P_rect_02 = K [I | T2]``), as KITTI's P_rect_02 has one.
T2 = np.array([0.06, -0.004, 0.002])
READ = ["--reader", "kitti-raw", "--lidar-height", str(VELO_HEIGHT), "--keyframe-every", "3"]


def _T(pose: dict) -> np.ndarray:
    from occkit.geometry.transforms import checked_pose

    return checked_pose(pose["translation"], pose["rotation"], "ego_pose", "test").numpy()


def _pose(T: np.ndarray) -> dict:
    import torch

    from occkit.geometry.transforms import pose_from_transform

    p = pose_from_transform(torch.as_tensor(T))
    return {"translation": [float(v) for v in p["translation"]], "rotation": [float(v) for v in p["rotation"]]}


def _rig(world: Path) -> tuple[dict, list[dict]]:
    rig = json.loads((world / "rig" / "rig.json").read_text())
    return rig, json.loads((world / "rig" / "scene-0000" / "sweeps.json").read_text())["sweeps"]


def _velodyne(rig: dict) -> tuple[np.ndarray, np.ndarray]:
    """The drive's velodyne in the world's ego frame (at the LiDAR, the ego's axes) and LiDAR -> velodyne."""
    T_e_l = _T(rig["lidars"]["LIDAR_TOP"])
    T_e_v = np.eye(4)
    T_e_v[:3, 3] = T_e_l[:3, 3]
    return T_e_v, np.linalg.inv(T_e_v) @ T_e_l


def write_drive(world: Path, root: Path) -> Path:
    """The world's one scene as the KITTI raw drive ``root/DATE/DRIVE``: an IMU and a camera 0 placed and
    turned off the velodyne's axes, so that every calibration file's rotation counts."""
    from PIL import Image

    rig, rows = _rig(world)
    T_e_v, T_v_l = _velodyne(rig)
    T_e_i = np.eye(4)  # the IMU (the OXTS's frame), in the world's ego frame
    T_e_i[:3, :3] = rot(2, 0.03) @ rot(0, 0.01)
    T_e_i[:3, 3] = [0.2, -0.3, 0.9]
    cam = rig["cameras"]["CAM_FRONT"]
    K = np.array(cam["intrinsic"], float)
    T_c2_r0 = np.eye(4)
    T_c2_r0[:3, 3] = T2
    R_rect = np.eye(4)  # unrectified camera 0 -> rectified
    R_rect[:3, :3] = rot(0, 0.004) @ rot(2, -0.002)
    T_c0_v = np.linalg.inv(R_rect) @ np.linalg.inv(_T(cam) @ T_c2_r0) @ T_e_v
    T_v_i = np.linalg.inv(T_e_v) @ T_e_i
    H, W = cam["image_size"]
    cam_to_cam = (
        calib_line("R_rect_00", R_rect[:3, :3])
        + calib_line("P_rect_00", K @ np.c_[np.eye(3), np.zeros(3)])
        + "".join(
            calib_line(f"S_rect_0{c}", [W, H]) + calib_line(f"P_rect_0{c}", K @ np.c_[np.eye(3), t])
            for c, t in ((2, T2), (3, T2 - [BASELINE, 0, 0]))
        )
    )
    T_w_i = [_T(r["ego_pose"]) @ T_e_i for r in rows]
    scale = math.cos(math.radians(LAT0))
    x0 = scale * LON0 * math.pi * EARTH / 180
    y0 = scale * EARTH * math.log(math.tan((90 + LAT0) * math.pi / 360))
    infos = json.loads((world / "annotations.json").read_text())["scene_infos"]["scene-0000"]

    def scans():
        image = None
        for r, T in zip(rows, T_w_i):
            z = np.load(world / "rig" / "scene-0000" / r["points"])
            p = z["points"][:, :3].astype(np.float64) @ T_v_l[:3, :3].T + T_v_l[:3, 3]
            t = T[:3, 3] - T_w_i[0][:3, 3]  # the inverse of the Mercator projection, the scale of the first row
            lon = (x0 + t[0]) * 180 / (scale * math.pi * EARTH)
            lat = 360 / math.pi * math.atan(math.exp((y0 + t[1]) / (scale * EARTH))) - 90
            R = T[:3, :3]  # Rz(yaw) Ry(pitch) Rx(roll)
            euler = [math.atan2(R[2, 1], R[2, 2]), -math.asin(R[2, 0]), math.atan2(R[1, 0], R[0, 0])]
            oxts = [lat, lon, ALT0 + t[2], *euler] + [0.0] * 19
            stamp = datetime.datetime.fromtimestamp(r["timestamp"] / 1e6).strftime("%Y-%m-%d %H:%M:%S.%f") + "000"
            if r["token"] in infos:  # a keyframe's front image; a scan between keyframes takes the last one's
                image = world / infos[r["token"]]["camera_sensor"]["CAM_FRONT"]["img_path"]
            with Image.open(image) as im:  # the world's JPEG as KITTI's PNG
                yield np.c_[p, z["points"][:, 3]], oxts, dict.fromkeys(CAMERAS, im), stamp

    imu_to_velo = calib_line("R", T_v_i[:3, :3]) + calib_line("T", T_v_i[:3, 3])
    velo_to_cam = calib_line("R", T_c0_v[:3, :3]) + calib_line("T", T_c0_v[:3, 3])
    return write_kitti_drive(root, imu_to_velo, velo_to_cam, cam_to_cam, scans(), stamped=("velodyne_points", "oxts"))


def write_rig_like_the_drive(world: Path, out: Path) -> Path:
    """The world's rig with the drive's information: the ego frame under the velodyne, the kitti readers'
    ego box, no point labels, no boxes, the drive's two cameras."""
    from occkit.data.recordings.kitti import EGO_CENTER, EGO_SIZE

    rig, rows = _rig(world)
    T_e_v, _ = _velodyne(rig)
    S = np.eye(4)
    S[:2, 3] = T_e_v[:2, 3]
    rig["lidars"]["LIDAR_TOP"] = _pose(np.linalg.inv(S) @ _T(rig["lidars"]["LIDAR_TOP"]))
    cam = rig["cameras"]["CAM_FRONT"]
    c2 = np.linalg.inv(S) @ _T(cam)
    B = np.eye(4)
    B[0, 3] = BASELINE
    rig["cameras"] = {
        n: {**_pose(T), "intrinsic": cam["intrinsic"], "image_size": cam["image_size"]}
        for n, T in (("image_02", c2), ("image_03", c2 @ B))
    }
    rig["ego"] = {"size": list(EGO_SIZE), "center": list(EGO_CENTER)}
    (out / "scene-0000" / "lidar").mkdir(parents=True)
    (out / "rig.json").write_text(json.dumps(rig))
    for r in rows:
        np.savez(out / "scene-0000" / r["points"], points=np.load(world / "rig" / "scene-0000" / r["points"])["points"])
        r["ego_pose"] = _pose(_T(r["ego_pose"]) @ S)
    (out / "scene-0000" / "sweeps.json").write_text(json.dumps({"sweeps": rows}))
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kr") / "w"
    assert main(["synth", "--out", str(out), *SYNTH]) == 0
    return out


@pytest.fixture(scope="module")
def raw(world, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("raw") / "kitti_raw"
    write_drive(world, root)
    return root


def _label(out: Path, *argv: str) -> tuple[int, str]:
    said = io.StringIO()
    with contextlib.redirect_stdout(said):
        rc = main(["label", "--out", str(out), *argv])
    return rc, said.getvalue()


def test_the_drive_reads_back_the_rigs_poses_and_cameras(world, raw):
    from occkit.data.recordings.registry import detect_reader, open_recording

    for where in (raw, raw / DATE, raw / DATE / DRIVE):  # a folder of dates, a date folder, a drive
        assert detect_reader(where)[0].name == "kitti-raw"
    kr = open_recording(raw, None, {"lidar_height": VELO_HEIGHT, "keyframe_every": 3})
    assert kr.scenes == [DRIVE] and kr.classes == ()
    rec = kr.read_scene(DRIVE)
    rig = open_recording(world, "rig", {}).read_scene("scene-0000")
    T_e_v, _ = _velodyne(_rig(world)[0])
    S = np.eye(4)
    S[:2, 3] = T_e_v[:2, 3]  # the drive's ego origin: under the velodyne, on the ground
    assert np.allclose(rec.lidars["velodyne"], np.linalg.inv(S) @ T_e_v)
    T0 = np.linalg.inv(rig.sweeps[0].T_global_from_ego @ S)
    assert len(rec.sweeps) == len(rig.sweeps) == 4
    for a, b in zip(rig.sweeps, rec.sweeps):  # the world: the first scan's ego frame
        want = T0 @ a.T_global_from_ego @ S
        assert np.abs(b.T_global_from_ego[:3, 3] - want[:3, 3]).max() < 1e-3  # within 1 mm
        assert np.abs(b.T_global_from_ego[:3, :3] - want[:3, :3]).max() < 1e-6
        assert b.timestamp - rec.sweeps[0].timestamp == a.timestamp - rig.sweeps[0].timestamp
        assert b.keyframe == a.keyframe
    moved = np.linalg.norm(rec.sweeps[-1].T_global_from_ego[:3, 3])
    assert moved > 1.0  # the drive moves: the poses are not all the first
    front = rig.cameras["CAM_FRONT"]
    assert sorted(rec.cameras) == ["image_02", "image_03"]
    c2, c3 = rec.cameras["image_02"], rec.cameras["image_03"]
    assert np.allclose(c2.K, front.K) and np.allclose(c3.K, front.K) and c2.image_size == front.image_size
    assert np.allclose(c2.T_ego_from_cam, np.linalg.inv(S) @ front.T_ego_from_cam, atol=1e-9)
    right = (
        np.linalg.inv(S)
        @ front.T_ego_from_cam
        @ np.array([[1, 0, 0, BASELINE], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float)
    )
    assert np.allclose(c3.T_ego_from_cam, right, atol=1e-9)  # the baseline along the camera's x (to the right)
    tok = f"{DRIVE}_0000000003"
    assert kr.images[tok] == {c: f"{DRIVE}/{c}/data/0000000003.png" for c in ("image_02", "image_03")}
    assert all((kr.image_links[DRIVE].parent / p).is_file() for p in kr.images[tok].values())


def test_the_drive_labels_as_the_rig_with_its_information(world, raw, tmp_path):
    """Voxel for voxel (semantics and both masks) against the same sweeps as a rig folder; the index records
    both cameras' images, linked into the output; ``--to semantickitti`` writes image_02's calibration and
    images (``image_2``), on which the monocular preset trains, and whose predictions ``eval`` scores."""
    rig = write_rig_like_the_drive(world, tmp_path / "rig")
    assert _label(tmp_path / "by-rig", "--data", str(rig))[0] == 0
    rc, said = _label(tmp_path / "by-drive", "--data", str(raw), *READ)
    assert rc == 0 and "KITTI raw" in said, said
    a, b = (json.loads((tmp_path / o / "annotations.json").read_text())["scene_infos"] for o in ("by-rig", "by-drive"))
    fa, fb = list(a["scene-0000"].values()), list(b[DRIVE].values())
    assert len(fa) == len(fb) == 2
    for x, y in zip(fa, fb):
        za, zb = np.load(tmp_path / "by-rig" / x["gt_path"]), np.load(tmp_path / "by-drive" / y["gt_path"])
        assert (zb["semantics"] != 17).sum() > 1000  # occupied voxels (class others: no point labels)
        for k in ("semantics", "mask_lidar", "mask_camera"):
            assert (za[k] == zb[k]).mean() >= 0.99, k
        assert zb["mask_camera"].any() and not zb["mask_camera"].all()
        for c in ("image_02", "image_03"):
            assert (tmp_path / "by-drive" / y["camera_sensor"][c]["img_path"]).is_file()  # linked into the output
            assert y["camera_sensor"][c]["intrinsic"] == x["camera_sensor"][c]["intrinsic"]

    from occkit.data.recordings.registry import open_recording
    from occkit.data.semantickitti import read_calib

    sk = tmp_path / "sk"
    rc, said = _label(sk, "--data", str(raw), *READ, "--to", "semantickitti")
    assert rc == 0 and "written as semantickitti" in said and "warning" not in said, said
    seq = sk / "sequences" / DRIVE
    calib = read_calib(seq / "calib.txt")
    rec = open_recording(raw, "kitti-raw", {"lidar_height": VELO_HEIGHT}).read_scene(DRIVE, load_points=False)
    cam = rec.cameras["image_02"]
    assert np.allclose(calib["P2"][:, :3], cam.K, atol=1e-5)
    T_cam_velo = np.linalg.inv(cam.T_ego_from_cam) @ rec.lidars["velodyne"]
    assert np.allclose(calib["Tr"], T_cam_velo, atol=1e-6)  # velodyne -> image_02, as KITTI's Tr
    # each keyframe's image_02 image (scans 0 and 3: --keyframe-every 3) linked as image_2/<frame>.png
    scans = [ln.split()[2].rsplit("_", 1)[1] for ln in (seq / "frames.txt").read_text().splitlines()]
    assert scans == ["0000000000", "0000000003"]
    for k, scan in enumerate(scans):
        png = seq / "image_2" / f"{k:06d}.png"
        assert png.resolve() == (raw / DATE / DRIVE / "image_02" / "data" / f"{scan}.png").resolve()
    # the monocular preset trains on the labels as written (without MonoScene's context prior and frustum loss:
    # the test's time), predict writes its predictions, eval scores them
    quiet = contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO())
    run, pred, said_eval = tmp_path / "run", tmp_path / "pred", io.StringIO()
    light = ["cigocc.context_prior=false", "cigocc.relation_weight=0", "cigocc.frustum_weight=0"]
    with quiet[0], quiet[1]:
        argv = ["train", "kitti-mono", "--data", str(sk), "--out", str(run), "--max-steps", "2", "--set", *light]
        assert main(argv) == 0
        assert main(["predict", "--ckpt", str(run), "--data", str(sk), "--out", str(pred), "--split", "all"]) == 0
    assert sorted(p.name for p in (pred / "sequences" / DRIVE / "predictions").glob("*.label")) == [
        "000000.label",
        "000001.label",
    ]
    with contextlib.redirect_stdout(said_eval):
        argv = ["eval", "--gt", str(sk), "--pred", str(pred), "--split", "all", "--no-progress"]
        assert main([*argv, "--json", str(tmp_path / "eval.json")]) == 0
    scores = json.loads((tmp_path / "eval.json").read_text())
    assert scores["benchmark"] == "semantickitti" and scores["frames"] == 2, scores
    assert math.isfinite(scores["ssc_miou"]) and math.isfinite(scores["completion_iou"]), scores


def test_the_oxts_projection_on_a_hand_case():
    """At the equator (Mercator scale 1) 0.001 degrees of longitude east are R pi / 180e3 metres along x, and
    a heading of 90 degrees (yaw) turns the IMU's x axis to the world's y (north)."""
    from occkit.data.recordings.kitti_raw import oxts_poses

    row = np.zeros(30)
    east = row.copy()
    east[1], east[2], east[5] = 0.001, 3.0, math.pi / 2
    T0, T1 = oxts_poses([row, east])
    assert np.allclose(T0, np.eye(4))
    assert np.allclose(T1[:3, 3], [EARTH * math.pi / 180e3, 0, 3.0], atol=1e-9)
    assert np.allclose(T1[:3, :3] @ [1, 0, 0], [0, 1, 0])
    north = row.copy()
    north[0] = 0.001  # near the equator the projection's y is the arc length
    assert abs(oxts_poses([row, north])[1][1, 3] - EARTH * math.radians(0.001)) < 1e-6


def _copy(raw: Path, tmp: Path) -> Path:
    dst = tmp / "copy"
    shutil.copytree(raw, dst)
    return dst


def _spoil_oxts(d: Path) -> Path:
    f = d / DRIVE / "oxts" / "data" / "0000000002.txt"
    f.write_text(" ".join(f.read_text().split()[:29]) + "\n")
    return f


def _spoil_images(d: Path) -> Path:
    (d / DRIVE / "image_03" / "data" / "0000000001.png").unlink()
    return d / DRIVE / "image_03" / "data"


def _spoil_calib(d: Path) -> Path:
    (d / "calib_velo_to_cam.txt").unlink()
    return d / "calib_velo_to_cam.txt"


def _spoil_p_rect(d: Path) -> Path:
    f = d / "calib_cam_to_cam.txt"
    f.write_text("".join(ln + "\n" for ln in f.read_text().splitlines() if not ln.startswith("P_rect_03")))
    return f


@pytest.mark.parametrize(
    "spoil, words",
    [
        (_spoil_calib, "no such calibration file"),
        (_spoil_oxts, "holds 29 numbers; want 30, an OXTS row's"),
        (_spoil_images, "3 images for 4 scans"),
        (_spoil_p_rect, "no 'P_rect_03:' line"),
    ],
)
def test_bad_drive_files_are_refused_in_one_line_naming_the_file(raw, tmp_path, capsys, spoil, words):
    root = _copy(raw, tmp_path)
    named = spoil(root / DATE)
    out = tmp_path / "lab"
    capsys.readouterr()
    rc, _ = _label(out, "--data", str(root), "--lidar-height", str(VELO_HEIGHT))  # found by detection
    err = capsys.readouterr().err.strip()
    assert rc == 1 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert str(named) in err and words in err, err
    assert not out.exists() and not list(tmp_path.glob(".lab*"))
