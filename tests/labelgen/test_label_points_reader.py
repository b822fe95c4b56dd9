"""``occkit label --data FOLDER`` of point files (occkit.data.recordings.points): a synthetic rig's sweeps
written as ``.pcd`` (by pypcd4), ``.bin``, ``.ply`` and ``.npy`` with a TUM poses file and its cameras
(``cameras.yaml``, ``images/<camera>/``) label as the rig route does without labels and boxes, and train;
``.las`` (written by laspy), ``.pcd`` and ``.ply`` carry point labels; KITTI poses rows; scans in the natural
order of their names; NaN, infinite and 0 0 0 points dropped and counted; georeferenced points; each bad
input one line naming the file and the cause."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import write_sweep_world

from occkit.cli import main

EGO_BOX = "4.1 1.8 1.6 1.3 0 0.8"  # the synthetic rig's (rig.json "ego")
TINY = [  # a small network: two steps of training on the labels
    "data.workers=0",
    "model.neck_channels=16",
    "model.context_channels=8",
    "model.depth_step=4.0",
    "model.lift_downsample=[4, 4, 2]",
    "model.encoder_widths=[8, 16]",
    "supervised.lovasz_max_voxels=2000",
    "train.tensorboard=false",
    "optim.warmup_steps=1",
]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return write_sweep_world(tmp_path_factory.mktemp("ptw") / "w")


def _label(data: Path, out: Path, *extra: str) -> int:
    with contextlib.redirect_stdout(io.StringIO()):
        return main(["label", "--data", str(data), "--out", str(out), *extra])


def _sweeps(world: Path) -> list[dict]:
    return json.loads((world / "rig" / "scene-0000" / "sweeps.json").read_text())["sweeps"]


def _lidar_pose(world: Path) -> dict:
    return json.loads((world / "rig" / "rig.json").read_text())["lidars"]["LIDAR_TOP"]


def _matrix(pose: dict) -> np.ndarray:
    from occkit.geometry.transforms import transform_from_pose

    return transform_from_pose(pose["translation"], pose["rotation"]).numpy()


def _write_ply(f: Path, pts: np.ndarray, labels: np.ndarray | None = None) -> None:
    """A binary little-endian PLY, written from the format's published header rules."""
    cols = [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4")] + (
        [("label", "<u2")] if labels is not None else []
    )
    arr = np.zeros(len(pts), dtype=cols)
    for k, c in enumerate(["x", "y", "z", "intensity"]):
        arr[c] = pts[:, k]
    if labels is not None:
        arr["label"] = labels
    props = "".join(f"property {'float' if t == '<f4' else 'ushort'} {n}\n" for n, t in cols)
    head = f"ply\nformat binary_little_endian 1.0\ncomment occkit test\nelement vertex {len(pts)}\n{props}end_header\n"
    f.write_bytes(head.encode() + arr.tobytes())  # fmt: skip


def _write_pcd(f: Path, pts: np.ndarray, labels: np.ndarray | None = None) -> None:
    from pypcd4 import PointCloud

    if labels is None:
        PointCloud.from_xyzi_points(pts[:, :4]).save(f)
    else:
        PointCloud.from_xyzil_points(np.column_stack([pts[:, :4], labels]), label_type=np.uint32).save(f)


def _write_las(f: Path, pts: np.ndarray, labels: np.ndarray | None = None) -> None:
    import laspy

    las = laspy.LasData(laspy.LasHeader(point_format=3, version="1.2"))
    las.header.offsets, las.header.scales = [0.0, 0.0, 0.0], [1e-6, 1e-6, 1e-6]
    xyz = pts[:, :3].astype(np.float64)  # laspy scales in the dtype it is given: float64 keeps 1e-6 m
    las.x, las.y, las.z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    las.intensity = np.round(pts[:, 3]).astype(np.uint16)
    if labels is not None:
        las.add_extra_dim(laspy.ExtraBytesParams(name="label", type=np.uint16))
        las.label = labels
    las.write(f)


WRITERS = {
    ".pcd": _write_pcd,
    ".bin": lambda f, p, labels=None: p[:, :4].astype("<f4").tofile(f),
    ".ply": _write_ply,
    ".npy": lambda f, p, labels=None: np.save(f, p[:, :4]),
    ".las": _write_las,
}


def _tum(world: Path) -> str:
    """The rig's LiDAR poses (ego pose @ extrinsic) as TUM rows, stamped with the sweeps' times."""
    import torch

    from occkit.geometry.transforms import pose_from_transform

    L = _matrix(_lidar_pose(world))
    rows = []
    for s in _sweeps(world):
        p = pose_from_transform(torch.from_numpy(_matrix(s["ego_pose"]) @ L))
        (x, y, z), (qw, qx, qy, qz) = p["translation"], p["rotation"]
        ts = s["timestamp"]
        rows.append(f"{ts // 1_000_000}.{ts % 1_000_000:06d} {x!r} {y!r} {z!r} {qx!r} {qy!r} {qz!r} {qw!r}\n")
    return "".join(rows)


def _lidar_option(world: Path) -> str:
    p = _lidar_pose(world)
    return " ".join(repr(float(v)) for v in [*p["translation"], *p["rotation"]])


def _folder(world: Path, folder: Path, suffixes: list[str], labels: bool = False) -> Path:
    folder.mkdir(parents=True)
    for i, s in enumerate(_sweeps(world)):
        z = np.load(world / "rig" / "scene-0000" / s["points"])
        suffix = suffixes[i % len(suffixes)]
        lab = z["labels"] if labels and "labels" in z.files else None
        WRITERS[suffix](folder / f"{i:06d}{suffix}", z["points"], lab) if lab is not None else WRITERS[suffix](
            folder / f"{i:06d}{suffix}", z["points"]
        )
    (folder / "poses.txt").write_text(_tum(world))
    return folder  # fmt: skip


@pytest.fixture(scope="module")
def rig_route(world, tmp_path_factory) -> Path:
    """The rig's labels from geometry and cameras alone: no point labels or boxes."""
    rig = tmp_path_factory.mktemp("geom") / "rig"
    shutil.copytree(world / "rig", rig)
    (rig / "scene-0000" / "boxes.json").unlink()
    for f in (rig / "scene-0000" / "lidar").glob("*.npz"):
        z = dict(np.load(f))
        z.pop("labels", None)
        np.savez(f, **z)
    out = rig.parent / "labels"
    assert _label(rig, out) == 0
    return out


def _world_images(world: Path) -> dict[int, dict[str, Path]]:
    """The world's camera images by the index of their keyframe's sweep."""
    ann = json.loads((world / "annotations.json").read_text())
    index = {s["token"]: i for i, s in enumerate(_sweeps(world))}
    return {
        index[tok]: {cam: world / c["img_path"] for cam, c in info["camera_sensor"].items()}
        for infos in ann["scene_infos"].values()
        for tok, info in infos.items()
    }


def _add_cameras(world: Path, folder: Path, names: dict[int, str] | None = None) -> dict:
    """The rig's cameras as ``cameras.yaml`` (K as fx fy cx cy or 3x3, placed on the vehicle or on the LiDAR,
    with or without the image size, in turn) and its images in ``images/<camera>/``, named ``names[i]``
    (default: the scan's stem) for the keyframe of sweep ``i``. Returns rig.json's cameras."""
    import yaml

    cams = json.loads((world / "rig" / "rig.json").read_text())["cameras"]
    L = _matrix(_lidar_pose(world))
    spec = {}
    for k, (cam, c) in enumerate(cams.items()):
        K = c["intrinsic"]
        one = {"K": [K[0][0], K[1][1], K[0][2], K[1][2]] if k % 2 else K}
        if k % 2:
            one["T_lidar_from_cam"] = (np.linalg.inv(L) @ _matrix(c)).tolist()
        else:
            one["T_ego_from_cam"] = {"translation": c["translation"], "rotation": c["rotation"]}
            one["image_size"] = c["image_size"]
            one["distortion"] = {"model": "plumb_bob", "coefficients": [0.0] * 5}
        spec[cam] = one
    (folder / "cameras.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))  # the order: the rig's
    stems = sorted(p.stem for p in folder.iterdir() if p.suffix != ".txt" and p.is_file() and p.name[0].isdigit())
    for i, images in _world_images(world).items():
        for cam, f in images.items():
            (folder / "images" / cam).mkdir(parents=True, exist_ok=True)
            shutil.copy(f, folder / "images" / cam / f"{(names or {}).get(i, stems[i])}{f.suffix}")
    return cams


def _labels_by_time(out: Path) -> dict[int, dict[str, np.ndarray]]:
    ann = json.loads((out / "annotations.json").read_text())
    return {
        info["timestamp"]: dict(np.load(out / info["gt_path"]))
        for infos in ann["scene_infos"].values()
        for info in infos.values()
    }


def _spoil_pcd(f: Path, world: Path) -> int:
    """``f`` rewritten by pypcd4 as an organised cloud (height 2) with NaN, infinite and 0 0 0 rows among its
    points, as PCL and open3d write a scan's gaps; returns how many rows were added."""
    from pypcd4 import PointCloud

    pts = PointCloud.from_path(f).numpy(("x", "y", "z", "intensity"))
    bad = np.array([[np.nan] * 4, [0.0, 0.0, 0.0, 7.0], [np.inf, 1.0, 2.0, 3.0], [1.0, np.nan, 2.0, 0.0]], np.float32)
    rows = np.concatenate([bad[:2], pts, bad[2:]])
    if len(rows) % 2:
        rows = np.concatenate([rows, bad[:1]])
    pc = PointCloud.from_xyzi_points(rows)
    PointCloud(pc.metadata.model_copy(update={"width": len(rows) // 2, "height": 2}), pc.pc_data).save(f)
    return len(rows) - len(pts)


def test_a_folder_of_pcd_bin_ply_npy_files_with_cameras_labels_as_the_rig_and_trains(world, rig_route, tmp_path):
    pytest.importorskip("pypcd4")
    folder = _folder(world, tmp_path / "scans", [".pcd", ".bin", ".ply", ".npy"])
    cams = _add_cameras(world, folder)
    dropped = _spoil_pcd(folder / "000000.pcd", world)  # gaps of an organised cloud: dropped, counted
    (tmp_path / "kf.txt").write_text("000000.pcd\n000003\n")  # a file's name or its stem
    out = tmp_path / "lab"
    said = io.StringIO()
    with contextlib.redirect_stdout(said):
        assert main(["label", "--data", str(folder), "--out", str(out), "--keyframes", str(tmp_path / "kf.txt"),
                     "--lidar-pose", _lidar_option(world), "--ego-box", EGO_BOX]) == 0  # fmt: skip
    said = said.getvalue()
    assert f"scans: warning: {dropped} of " in said and "points dropped: no return (NaN, infinite, or 0 0 0)" in said
    assert "no cameras" not in said and "images matched by name" in said, said
    a, b = _labels_by_time(rig_route), _labels_by_time(out)
    assert sorted(a) == sorted(b) and len(a) == 2  # keyframes matched by timestamp (TUM's, in microseconds)
    for t in a:
        assert b[t]["mask_camera"].any()
        for k in a[t]:
            assert np.array_equal(a[t][k], b[t][k]), (t, k, int((a[t][k] != b[t][k]).sum()))
    ann, want = (json.loads((p / "annotations.json").read_text()) for p in (out, rig_route))
    assert list(ann["scene_infos"]) == ["scans"] and list(ann["scene_infos"]["scans"]) == ["000000", "000003"]
    rig = {i["timestamp"]: i for infos in want["scene_infos"].values() for i in infos.values()}
    for info in ann["scene_infos"]["scans"].values():
        got, ref = info["camera_sensor"], rig[info["timestamp"]]["camera_sensor"]
        assert list(got) == list(cams) == list(ref)
        for cam in cams:
            assert got[cam]["intrinsic"] == ref[cam]["intrinsic"]
            for k in ("translation", "rotation"):
                assert np.allclose(got[cam]["extrinsic"][k], ref[cam]["extrinsic"][k], rtol=0, atol=1e-9), (cam, k)
            assert got[cam]["img_path"].startswith(f"images/{cam}/") and (out / got[cam]["img_path"]).is_file()
    run = tmp_path / "run"
    fast = ["--max-steps", "2", "--no-val", "--no-progress", "--set", "train.threads=1", *TINY]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["train", "synth-cpu", "--data", str(out), "--out", str(run), *fast]) == 0
    assert any(run.rglob("*.safetensors")) or any(run.rglob("*.pt"))


@pytest.mark.parametrize("suffix", [".pcd", ".ply", ".las"])
def test_point_labels_are_read_from_a_label_field(world, tmp_path, suffix):
    pytest.importorskip({".pcd": "pypcd4", ".las": "laspy", ".ply": "numpy"}[suffix])
    from occkit.data.recordings.points import read_point_file

    s = _sweeps(world)[0]
    z = np.load(world / "rig" / "scene-0000" / s["points"])
    f = tmp_path / f"scan{suffix}"
    WRITERS[suffix](f, z["points"], z["labels"])
    xyz, inten, labels = read_point_file(f)
    tol = 1e-6 if suffix == ".las" else 0.0  # LAS keeps integers of 1e-6 m here
    assert np.allclose(xyz, z["points"][:, :3], rtol=0, atol=tol) and xyz.dtype == np.float32
    assert np.array_equal(labels, z["labels"].astype(np.int64))
    want = np.round(z["points"][:, 3]) if suffix == ".las" else z["points"][:, 3]
    assert np.array_equal(inten, want.astype(np.float32))
    assert read_point_file(f, label_field="class")[2] is None  # no such field: no labels


def test_a_label_field_named_that_no_file_has_is_refused(world, tmp_path, capsys):
    folder = _folder(world, tmp_path / "scans", [".ply"], labels=True)
    out = tmp_path / "lab"
    capsys.readouterr()
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["label", "--data", str(folder), "--out", str(out), "--label-field", "class_id"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no point has the field 'class_id' (--label-field)" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scans"]


def test_kitti_pose_rows_and_the_rate_give_the_poses_and_times(world, tmp_path):
    folder = _folder(world, tmp_path / "scans", [".npy"])
    L = _matrix(_lidar_pose(world))
    rows = [_matrix(s["ego_pose"]) @ L for s in _sweeps(world)]
    (folder / "poses.txt").write_text("".join(" ".join(f"{v:.17g}" for v in T[:3].ravel()) + "\n" for T in rows))
    from occkit.data.recordings.registry import open_recording

    rec = open_recording(folder, None, {"rate": 4.0, "lidar_pose": _lidar_option(world), "keyframe_every": 2})
    r = rec.read_scene("scans")
    assert [s.timestamp for s in r.sweeps] == [0, 250_000, 500_000, 750_000]
    assert [s.keyframe for s in r.sweeps] == [True, False, True, False]
    for s, sw in zip(r.sweeps, _sweeps(world)):
        assert np.allclose(s.T_global_from_ego, _matrix(sw["ego_pose"]), atol=1e-9)
    assert "KITTI" in rec.describe


@pytest.mark.parametrize("rate", [0.0, -2.0, float("inf"), float("nan")])
def test_a_rate_of_zero_or_not_finite_is_refused_not_read_as_the_default(world, tmp_path, rate):
    from occkit.data.recordings.registry import open_recording

    folder = _folder(world, tmp_path / "scans", [".npy"])
    with pytest.raises(ValueError, match="--rate .*: must be a positive number of scans a second"):
        open_recording(folder, None, {"rate": rate})


def test_a_rate_given_with_tum_rows_is_said_unused(world, tmp_path):
    from occkit.data.recordings.registry import open_recording

    folder = _folder(world, tmp_path / "scans", [".npy"])
    assert "--rate not used" in open_recording(folder, None, {"rate": 5.0}).describe
    assert "--rate" not in open_recording(folder, None, {}).describe


def _fewer_poses(world, folder):
    rows = (folder / "poses.txt").read_text().splitlines()
    (folder / "poses.txt").write_text("\n".join(rows[:2]) + "\n")
    return ["2 pose rows for 4 point files", "poses.txt"]


def _no_poses(world, folder):
    (folder / "poses.txt").unlink()
    return ["poses.txt: no such --poses file"]


def _mixed_rows(world, folder):
    rows = (folder / "poses.txt").read_text().splitlines()
    rows[2] = " ".join(["0"] * 12)
    (folder / "poses.txt").write_text("\n".join(rows) + "\n")
    return ["poses.txt: line 3 is a KITTI row after TUM rows"]


def _bad_pcd(world, folder):
    (folder / "000001.bin").unlink()
    (folder / "000001.pcd").write_bytes(b"# .PCD v0.7\nVERSION 0.7\nFIELDS x y\nnot a header\n")
    return ["000001.pcd: cannot be read as a .pcd"]


def _bad_las(world, folder):
    (folder / "000001.bin").unlink()
    (folder / "000001.las").write_bytes(b"LASF" + bytes(50))
    return ["000001.las: cannot be read as a .las"]


def _stray_keyframe(world, folder):
    (folder.parent / "kf.txt").write_text("000000\n000009.bin\n")
    return ["kf.txt: line 2: '000009.bin' is not a point file of the folder"]


@pytest.mark.parametrize("spoil", [_fewer_poses, _no_poses, _mixed_rows, _bad_pcd, _bad_las, _stray_keyframe])
def test_bad_point_files_are_refused_in_one_line_naming_the_file(world, tmp_path, capsys, spoil):
    pytest.importorskip("pypcd4")
    pytest.importorskip("laspy")
    folder = _folder(world, tmp_path / "scans", [".pcd", ".bin", ".ply", ".npy"])
    words = spoil(world, folder)
    listed = (tmp_path / "kf.txt").exists()  # --keyframes, or every 3rd scan (the two together are refused)
    extra = ["--keyframes", str(tmp_path / "kf.txt")] if listed else ["--keyframe-every", "3"]
    out = tmp_path / "lab"
    capsys.readouterr()
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["label", "--data", str(folder), "--out", str(out), *extra]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert all(w in err for w in words), err
    assert not out.exists() and not (tmp_path / ".lab.partial").exists()  # no hidden folder of no work left


def test_an_ascii_ply_is_read_with_its_labels(tmp_path):
    from occkit.data.recordings.points import read_point_file

    f = tmp_path / "scan.ply"
    f.write_text(
        "ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\n"
        "property uchar label\nelement face 0\nproperty list uchar int vertex_indices\nend_header\n"
        "1.5 -2 0.25 3\n4 5 6 16\n"
    )
    xyz, inten, labels = read_point_file(f)
    assert xyz.tolist() == [[1.5, -2.0, 0.25], [4.0, 5.0, 6.0]] and inten is None and labels.tolist() == [3, 16]


def test_classes_and_the_ego_box_options_are_read_and_checked(tmp_path):
    from occkit.data.recordings._shared import read_classes, read_ego_box
    from occkit.labels import OCC3D_CLASSES

    assert read_classes(None) == tuple(OCC3D_CLASSES[:17])  # a rig's default table
    (tmp_path / "c.yaml").write_text("- road\n- car\n- tree\n")
    (tmp_path / "c.json").write_text('{"0": "road", "1": "car"}')
    (tmp_path / "m.yaml").write_text("0: road\n1: car\n")
    assert read_classes(str(tmp_path / "c.yaml")) == ("road", "car", "tree")
    assert read_classes(str(tmp_path / "m.yaml")) == ("road", "car")
    assert read_classes(str(tmp_path / "c.json")) == ("road", "car")  # JSON's keys are strings
    (tmp_path / "gap.yaml").write_text("0: road\n2: car\n")
    with pytest.raises(ValueError, match=r"gap.yaml: want a list of class names"):
        read_classes(str(tmp_path / "gap.yaml"))
    (tmp_path / "twice.yaml").write_text("[road, road]")
    with pytest.raises(ValueError, match="given twice"):
        read_classes(str(tmp_path / "twice.yaml"))
    assert read_ego_box("4 2 1.5 1 0 0.75") == ((4.0, 2.0, 1.5), (1.0, 0.0, 0.75))
    with pytest.raises(ValueError, match="--ego-box"):
        read_ego_box("4 -2 1.5 1 0 0.75")


def _record(folder: Path, **options):
    from occkit.data.recordings.registry import open_recording

    rec = open_recording(folder, None, options)
    return rec, rec.read_scene(rec.scenes[0])


def test_scans_are_taken_in_the_natural_order_of_their_names(world, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    sweeps = _sweeps(world)
    L = _matrix(_lidar_pose(world))
    rows = []
    for i in range(13):  # the rig's sweeps again and again, each at its own time
        s = sweeps[i % len(sweeps)]
        np.save(plain / f"{i:06d}.npy", np.load(world / "rig" / "scene-0000" / s["points"])["points"][:, :4])
        T = _matrix(s["ego_pose"]) @ L
        rows.append(" ".join(f"{v:.17g}" for v in T[:3].ravel()) + "\n")
    (plain / "poses.txt").write_text("".join(rows))
    named = tmp_path / "named"
    shutil.copytree(plain, named)
    for i in range(13):
        (named / f"{i:06d}.npy").rename(named / f"scan_{i}.npy")
    (_, a), (b_rec, b) = _record(plain, keyframe_every=3), _record(named, keyframe_every=3)
    assert [s.token for s in b.sweeps] == [f"scan_{i}" for i in range(13)]  # scan_2 before scan_10
    assert "in the order of their names, numbers by value (scan_0.npy .. scan_12.npy)" in b_rec.describe
    for x, y in zip(a.sweeps, b.sweeps):
        assert np.array_equal(x.points, y.points) and np.array_equal(x.T_global_from_ego, y.T_global_from_ego)
        assert (x.timestamp, x.keyframe) == (y.timestamp, y.keyframe)


def test_nan_and_zero_rows_are_dropped_with_their_labels(tmp_path):
    from occkit.data.recordings.points import read_point_file

    f = tmp_path / "scan.ply"
    f.write_text(
        "ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y\nproperty float z\n"
        "property float label\nend_header\n1.5 -2 0.25 3\nnan nan nan nan\n0 0 0 nan\n4 5 6 16\n"
    )
    xyz, inten, labels = read_point_file(f)
    assert xyz.tolist() == [[1.5, -2.0, 0.25], [4.0, 5.0, 6.0]] and labels.tolist() == [3, 16]


def test_georeferenced_points_are_taken_to_their_sensor_in_float64(world, tmp_path):
    pytest.importorskip("laspy")
    import laspy

    folder = _folder(world, tmp_path / "geo", [".npy"])
    L = _matrix(_lidar_pose(world))
    offset = np.array([500_000.0, 5_400_000.0, 300.0])  # a UTM easting and northing: far from 0 in float32
    rows, want = [], []
    for i, s in enumerate(_sweeps(world)):
        T = _matrix(s["ego_pose"]) @ L
        T[:3, 3] += offset
        rows.append(" ".join(f"{v:.17g}" for v in T[:3].ravel()) + "\n")
        p = np.load(folder / f"{i:06d}.npy")[:, :3].astype(np.float64)
        want.append(p)
        world_xyz = p @ T[:3, :3].T + T[:3, 3]
        las = laspy.LasData(laspy.LasHeader(point_format=3, version="1.2"))
        las.header.offsets, las.header.scales = offset, [1e-4] * 3
        las.x, las.y, las.z = world_xyz[:, 0], world_xyz[:, 1], world_xyz[:, 2]
        (folder / f"{i:06d}.npy").unlink()
        las.write(folder / f"{i:06d}.las")
    (folder / "poses.txt").write_text("".join(rows))
    rec, r = _record(folder, points_frame="world")
    assert "--points-frame world" in rec.describe and not r.warnings
    for sw, p in zip(r.sweeps, want):
        assert np.abs(sw.points - p).max() < 2e-4  # the LAS's 1e-4 m, not float32's 0.5 m at 5400 km
    _, r = _record(folder)  # the same files taken as sensor-frame points
    assert len(r.warnings) == 1 and "4 of 4 scans' points lie a median" in r.warnings[0], r.warnings
    assert r.warnings[0].endswith("from their sensor: the points look georeferenced: --points-frame world")


def test_images_named_by_their_stamps_are_matched_by_time_and_missing_ones_counted(world, tmp_path):
    folder = _folder(world, tmp_path / "scans", [".npy"])
    sweeps = _sweeps(world)
    names = {i: str(sweeps[i]["timestamp"] * 1000 + 1_234_567) for i in _world_images(world)}  # ns, 1.2 ms late
    _add_cameras(world, folder, names)
    first = min(names)
    for f in (folder / "images" / "CAM_BACK").glob(f"{names[first]}.*"):
        f.unlink()
    rec, r = _record(folder, keyframe_every=3, lidar_pose=_lidar_option(world))
    assert "images matched by time (image names are stamps, whole ones in nanoseconds" in rec.describe
    assert "; CAM_BACK: no image for 1 of 2 keyframes" in rec.describe, rec.describe
    assert rec.image_links == {"images": folder / "images"}
    assert sorted(rec.images) == ["000000", "000003"] and "CAM_BACK" not in rec.images["000000"]
    assert rec.images["000003"]["CAM_FRONT"] == f"images/CAM_FRONT/{names[3]}.jpg"
    assert list(r.cameras) == list(json.loads((world / "rig" / "rig.json").read_text())["cameras"])
    with pytest.raises(ValueError, match="camera CAM_FRONT_RIGHT: image_size not given, and no keyframe has its"):
        _record(folder, keyframe_every=3, image_tolerance=0.001)  # 1.2 ms late: no image within 1 ms


def _yaml_fields(folder):
    (folder / "cameras.yaml").write_text(
        "CAM_FRONT:\n  K: [1, 2, 3]\n  T_ego_from_cam: {translation: [0, 0, 0], rotation: [2, 0, 0, 0]}\n"
        "  lens: wide\nCAM_BACK:\n  K: [[1, 0, 2], [0, 1, 2], [0, 0, 1]]\n  image_size: [48]\n"
        "  distortion: {model: radtan, coefficients: [0.1, 0, 0, 0]}\n"
    )
    return [
        "cameras.yaml: camera CAM_FRONT: ",
        "camera CAM_FRONT: unknown key 'lens'",
        "camera CAM_FRONT: K: want [fx, fy, cx, cy] (4 finite numbers) or a 3x3 list of rows, got [1, 2, 3]",
        "camera CAM_FRONT: T_ego_from_cam.rotation: [2.0, 0.0, 0.0, 0.0] is not rigid",
        "camera CAM_BACK: image_size: [48] is not a list of 2",
        "camera CAM_BACK: distortion: the images are distorted (radtan",
        "camera CAM_BACK: T_ego_from_cam: missing, and T_lidar_from_cam too",
    ]


def _no_yaml(folder):
    (folder / "cameras.yaml").unlink()
    return ["cameras.yaml: no such file", "holds camera folders (CAM_BACK, CAM_BACK_LEFT"]


def _loose_images(folder):
    (folder / "cameras.yaml").unlink()
    for f in (folder / "images" / "CAM_FRONT").iterdir():  # one camera's images straight in images/
        f.rename(folder / "images" / f.name)
    for cam in [p for p in (folder / "images").iterdir() if p.is_dir()]:
        shutil.rmtree(cam)
    return ["cameras.yaml: no such file", "holds images (000000.jpg, ...): each camera's images go in images/<camera>/"]


def _stray_folder(folder):
    (folder / "images" / "CAM_TOP").mkdir()
    return ["images/CAM_TOP: a folder of images of no camera of"]


def _no_folder(folder):
    shutil.rmtree(folder / "images" / "CAM_BACK")
    return ["cameras.yaml: camera CAM_BACK: no folder"]


def _other_size(folder):
    text = (folder / "cameras.yaml").read_text().replace("- 48\n  - 80", "- 48\n  - 81", 1)
    (folder / "cameras.yaml").write_text(text)
    return ["camera CAM_FRONT: image_size [48, 81], but", "is [48, 80] (H, W)"]


def _not_a_stamp(folder):
    for f in (folder / "images" / "CAM_FRONT").iterdir():
        f.rename(f.with_name("front_" + f.name))
    return ["front_1600000000.5.jpg: names neither a scan", "nor a stamp"]


def _twice(folder):
    f = next((folder / "images" / "CAM_BACK").iterdir())
    shutil.copy(f, f.with_suffix(".png"))
    return [f"images/CAM_BACK: {f.name} and {f.stem}.png are one image's name twice"]


@pytest.mark.parametrize(
    "spoil", [_yaml_fields, _no_yaml, _loose_images, _stray_folder, _no_folder, _other_size, _not_a_stamp, _twice]
)
def test_bad_cameras_are_refused_in_one_line_naming_the_file_camera_and_field(world, tmp_path, capsys, spoil):
    folder = _folder(world, tmp_path / "scans", [".npy"])
    _add_cameras(world, folder)
    if spoil is _not_a_stamp:  # no image named after a scan: by time, and this one is no stamp
        for cam in (folder / "images").iterdir():
            for f in cam.iterdir():
                f.rename(f.with_name(f"{1600000000 + int(f.stem)}.5{f.suffix}"))
    words = spoil(folder)
    capsys.readouterr()
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["label", "--data", str(folder), "--out", str(tmp_path / "lab"), "--keyframe-every", "3"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert all(w in err for w in words), err
    assert not (tmp_path / "lab").exists()


def test_the_rig_to_points_tool_writes_the_cameras_a_point_folder_takes(world, tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("rig_to_points", Path(__file__).parents[2] / "tools/rig_to_points.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    lidar = tool.write_points(world / "rig", "scene-0000", tmp_path / "scans", ".npy", "tum", cameras=True)
    rec, r = _record(tmp_path / "scans", keyframe_every=3, lidar_pose=lidar)
    cams = json.loads((world / "rig" / "rig.json").read_text())["cameras"]
    assert list(r.cameras) == list(cams) and sorted(rec.images) == ["000000", "000003"]
    for name, c in cams.items():
        assert np.array_equal(r.cameras[name].K, np.asarray(c["intrinsic"])) and r.cameras[name].image_size == (48, 80)
        assert np.allclose(r.cameras[name].T_ego_from_cam, _matrix(c), rtol=0, atol=1e-12)
        assert all((tmp_path / "scans" / rec.images[k][name]).is_file() for k in rec.images)


def test_cameras_yaml_takes_numbers_yaml_reads_as_text_and_a_camera_named_by_a_number(tmp_path):
    from occkit.data.recordings.point_cameras import read_cameras

    f = tmp_path / "cameras.yaml"  # YAML 1.1 leaves 1e3 and 5.0e2 (no exponent sign) as text
    f.write_text(
        "0:\n  K: [1e3, 1e3, 5.0e2, 2.5e+2]\n  T_lidar_from_cam: [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0.5]]\n"
    )
    T_el = np.eye(4)
    T_el[2, 3] = 1.5
    cams = read_cameras(f, T_el)
    assert list(cams) == ["0"] and cams["0"]["K"].tolist() == [[1e3, 0, 5e2], [0, 1e3, 2.5e2], [0, 0, 1]]
    assert cams["0"]["T_ego_from_cam"][2, 3] == 2.0 and cams["0"]["image_size"] is None
    f.write_text("0:\n  K: [1e3, nan, 5.0e2, 2.5e+2]\n  T_ego_from_cam: [[1, 0, 0, 0], [0, 1, 0, 0]]\n")
    with pytest.raises(
        ValueError, match=r"camera 0: K: want \[fx, fy, cx, cy\] \(4 finite.*nan.*; camera 0: T_ego_from_cam"
    ):
        read_cameras(f, T_el)


@pytest.mark.parametrize(
    "model, coeffs", [("plumb_bob", [-0.25, 0.06, 0.001, -0.002, 0.0]), ("fisheye", [0.1, -0.05, 0.01, 0.0])]
)
def test_distorted_images_undistorted_by_the_tool_put_points_where_the_new_k_does(tmp_path, model, coeffs):
    cv2 = pytest.importorskip("cv2")
    import importlib.util

    import yaml

    from occkit.data.recordings.registry import open_recording

    spec = importlib.util.spec_from_file_location(
        "undistort", Path(__file__).parents[2] / "tools/undistort_point_images.py"
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    data = tmp_path / "scans"
    (data / "images" / "cam").mkdir(parents=True)
    np.save(data / "000000.npy", np.array([[5.0, 0.0, 0.0, 1.0], [6.0, 1.0, 0.5, 1.0]], np.float32))
    (data / "poses.txt").write_text("0.0 0 0 0 0 0 0 1\n")
    H, W, K = 160, 240, np.array([[150.0, 0, 121.0], [0, 150.0, 79.0], [0, 0, 1]])
    X = np.array([[x, y, 4.0] for x in np.linspace(-2.2, 2.2, 7) for y in np.linspace(-1.4, 1.4, 5)])  # camera frame
    D = np.asarray(coeffs)
    if model == "fisheye":
        px = cv2.fisheye.projectPoints(X[None], np.zeros(3), np.zeros(3), K, D)[0][0]
    else:
        px = cv2.projectPoints(X, np.zeros(3), np.zeros(3), K, D)[0][:, 0]
    img = np.zeros((H, W, 3), np.uint8)
    for u, v in px:
        cv2.circle(img, (int(round(u * 16)), int(round(v * 16))), 24, (255, 255, 255), -1, cv2.LINE_AA, shift=4)
    cv2.imwrite(str(data / "images" / "cam" / "000000.png"), img)
    T = [[0, 0, 1, 0], [-1, 0, 0, 0], [0, -1, 0, 1.5], [0, 0, 0, 1]]
    cam = {"K": K.tolist(), "T_ego_from_cam": T, "distortion": {"model": model, "coefficients": coeffs}}
    (data / "cameras.yaml").write_text(yaml.safe_dump({"cam": cam}))
    with pytest.raises(ValueError, match="camera cam: distortion: the images are distorted"):
        open_recording(data, None, {})
    assert tool.undistort_folder(data, tmp_path / "pinhole") == {"cam": "undistorted"}
    rec = open_recording(tmp_path / "pinhole", None, {})
    newK = rec.read_scene(rec.scenes[0]).cameras["cam"].K
    out = cv2.imread(str(tmp_path / "pinhole" / "images" / "cam" / "000000.png"), cv2.IMREAD_GRAYSCALE)
    n, _, _, centres = cv2.connectedComponentsWithStats((out > 127).astype(np.uint8))
    want = (X / X[:, 2:]) @ newK.T
    inside = (want[:, 0] > 4) & (want[:, 0] < W - 5) & (want[:, 1] > 4) & (want[:, 1] < H - 5)
    err = np.linalg.norm(centres[1:, None] - want[None, inside, :2], axis=2).min(0)
    assert inside.sum() >= 20 and n - 1 >= inside.sum() and err.max() < 0.5, (int(inside.sum()), n, err.max())
    raw = cv2.imread(str(data / "images" / "cam" / "000000.png"), cv2.IMREAD_GRAYSCALE)
    _, _, _, dots = cv2.connectedComponentsWithStats((raw > 127).astype(np.uint8))
    assert np.linalg.norm(dots[1:, None] - want[None, inside, :2], axis=2).min(0).max() > 2  # were elsewhere


@pytest.mark.parametrize(
    "camera, said",
    [
        (
            "K: [[1, 0, 2], [0, 1, 2], [0, 0, 0]]\n  T_ego_from_cam: " + "[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]",
            "camera c: K: [[1.0, 0.0, 2.0], [0.0, 1.0, 2.0], [0.0, 0.0, 0.0]] is not a camera matrix",
        ),
        (
            "K: [1, 1, 2, 2]\n  T_ego_from_cam: [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]\n"
            "  T_lidar_from_cam: [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]",
            "camera c: T_ego_from_cam: give one of T_ego_from_cam and T_lidar_from_cam, not both",
        ),
        (
            "K: [1, 1, 2, 2]\n  T_ego_from_cam: [[2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]",
            "camera c: T_ego_from_cam: the transform is not rigid",
        ),
        (
            "K: [1, 1, 2, 2]\n  T_ego_from_cam: {translation: [0, 0, 0]}",
            "camera c: T_ego_from_cam: want translation [x, y, z] and rotation [qw, qx, qy, qz], or a 4x4 matrix",
        ),
        (
            "K: [1, 1, 2, 2]\n  T_ego_from_cam: {translation: [0, 0, 0], rotation: [1, 0, 0, 0]}\n"
            "  distortion: {model: fisheye, coefficients: [0, 0, 0, 0, 0]}",
            "camera c: distortion: coefficients: fisheye takes 4 numbers, got 5",
        ),
        (
            "K: [1, 1, 2, 2]\n  T_ego_from_cam: {translation: [0, 0, 0], rotation: [1, 0, 0, 0]}\n"
            "  distortion: {model: pinhole, coefficients: [0, 0, 0, 0]}",
            "camera c: distortion.model: 'pinhole' is not 'plumb_bob', 'radtan'",
        ),
        (
            "K: [1, 1, 2, 2]\n  T_ego_from_cam: {translation: [0, 0, 0], rotation: [1, 0, 0, 0]}\n"
            "  image_size: [48, 8.5]",
            "camera c: image_size[1]: 8.5 is not an integer",
        ),
        (
            "K: [1, 1, 2, 2]\n  T_ego_from_cam: lens",
            "camera c: T_ego_from_cam: want {translation, rotation} or a 4x4 matrix of rows, got lens",
        ),
    ],
    ids=["singular_K", "placed_twice", "not_rigid", "no_rotation", "coefficient_count", "model", "size", "not_pose"],
)
def test_each_bad_camera_field_is_named_with_its_file_and_camera(tmp_path, camera, said):
    from occkit.data.recordings.point_cameras import read_cameras

    f = tmp_path / "cameras.yaml"
    f.write_text(f"c:\n  {camera}\n")
    with pytest.raises(ValueError) as e:
        read_cameras(f, np.eye(4))
    assert str(e.value).startswith(f"{f}: camera c: ") and said in str(e.value) and "\n" not in str(e.value), e.value


def test_the_undistort_tool_names_a_bad_camera_field_in_one_line(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "undistort", Path(__file__).parents[2] / "tools/undistort_point_images.py"
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    pytest.importorskip("cv2")
    data = tmp_path / "scans"
    (data / "images" / "cam").mkdir(parents=True)
    (data / "cameras.yaml").write_text(
        "cam:\n  K: [1, 1, 2]\n  T_ego_from_cam: {translation: [0, 0, 0], rotation: [1, 0, 0, 0]}\n"
        "  distortion: {model: fisheye, coefficients: [0.1, 0]}\n"
    )
    with pytest.raises(SystemExit) as e:
        tool.undistort_folder(data, tmp_path / "out")
    line = str(e.value)
    assert line.startswith(f"{data / 'cameras.yaml'}: camera cam: K: want [fx, fy, cx, cy]") and "\n" not in line
    assert "distortion: coefficients: fisheye takes 4 numbers, got 2" in line, line
