"""Every output of ``occkit label`` opens (docs/labels.md, "What the labels open in"): labels of a recording
without cameras, written in each ``--to`` layout, are read by ``stats``, ``show`` (the occupancy panels alone,
said in one line), ``view --html`` and ``eval --gt`` (the labels scored against themselves); the KITTI layouts
carry the keyframes' scans, their poses and a ``frames.txt`` naming each frame's scan; ``--quality``'s rays
are scored in every layout; labels of a recording with cameras carry, in every layout, each camera's 2D
semantic map as its reader reads them (the labels rendered, :mod:`occkit.labelgen.semantic_maps`). One scene
of a tiny world, the ``naive`` preset. Occ3D's layout (the default) is tests/labelgen/test_label_opens.py's."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from occkit.cli import main

LAYOUTS = ("surroundocc", "openoccupancy", "semantickitti", "kitti360")
NUSC = ("barrier", "bicycle", "bus", "car", "construction_vehicle", "motorcycle", "pedestrian", "traffic_cone")
NUSC += ("trailer", "truck", "driveable_surface", "other_flat", "sidewalk", "terrain", "vegetation")
#: the rig's (Occ3D's) classes onto the KITTI layouts' (both name these classes alike)
KITTI = {
    "car": ["car"], "bicycle": ["bicycle"], "motorcycle": ["motorcycle"], "truck": ["truck"],
    "bus": ["other-vehicle"], "construction_vehicle": ["other-vehicle"], "trailer": ["other-vehicle"],
    "pedestrian": ["person"], "driveable_surface": ["road"], "sidewalk": ["sidewalk"],
    "other_flat": ["other-ground"], "terrain": ["terrain"], "vegetation": ["vegetation"],
    "manmade": ["building"], "barrier": ["building"], "traffic_cone": ["building"], "others": ["building"],
}  # fmt: skip


def _run(*argv: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def _class_map(to: str) -> str:
    if to in ("semantickitti", "kitti360"):
        pairs = {k: v[0] for k, v in KITTI.items()}
    else:
        pairs = {**{c: c for c in NUSC}, "manmade": "manmade", "others": "manmade"}
    lines = ["from: rig", f"to: {to}", "common:"]
    for dst in dict.fromkeys(pairs.values()):
        src = [c for c, d in pairs.items() if d == dst]
        lines.append(f"  c_{dst.replace('-', '_')}: {{from: [{', '.join(src)}], to: [{dst}]}}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def rig(tmp_path_factory) -> Path:
    """A rig folder without cameras (the world's, its cameras removed from rig.json), one scene."""
    tmp = tmp_path_factory.mktemp("open")
    tiny = ("--scenes", "1", "--frames", "2", "--image-size", "48", "80", "--sweeps", "1", "--beams", "8")
    rc, _, err = _run("synth", "--out", tmp / "w", *tiny)
    assert rc == 0, err
    shutil.copytree(tmp / "w" / "rig", tmp / "rig")
    meta = json.loads((tmp / "rig" / "rig.json").read_text())
    meta.pop("cameras")
    (tmp / "rig" / "rig.json").write_text(json.dumps(meta))
    return tmp / "rig"


@pytest.fixture(scope="module")
def labels(rig, tmp_path_factory) -> dict[str, Path]:
    """The rig's labels in every layout."""
    tmp = tmp_path_factory.mktemp("labels")
    out = {}
    for to in LAYOUTS:
        (tmp / f"{to}.yaml").write_text(_class_map(to))
        extra = ["--class-map", tmp / f"{to}.yaml"]
        rc, _, err = _run("label", "--data", rig, "--out", tmp / to, "--to", to, "--preset", "naive", *extra)
        assert rc == 0, err
        out[to] = tmp / to
    return out


@pytest.mark.parametrize("to", LAYOUTS)
def test_stats_show_view_and_eval_open_the_labels_of_a_camera_less_recording(labels, to, tmp_path):
    from occkit.formats import detect_format, get_format

    lab = labels[to]
    assert detect_format(lab).name == to
    rc, out, err = _run("stats", lab, "--no-progress")
    assert rc == 0, err
    assert "frames 2" in out and "cameras 0" in out, out
    rc, out, err = _run("show", lab, "--out", tmp_path / "s.png")
    assert rc == 0, err
    assert [ln for ln in out.splitlines() if "no camera" in ln and "the occupancy panels alone" in ln], out
    rc, out, err = _run("view", lab, "--html", tmp_path / "v.html")
    assert rc == 0, err
    assert (tmp_path / "v.html").stat().st_size > 0 and "2 frame(s)" in out
    fmt = get_format(to)  # the labels as a prediction: eval --gt scores them perfect
    ds = fmt.open_split(lab, "all", load_images=False)
    writer, table = fmt.writers.label_writer, fmt.classes
    for i, f in enumerate(ds.frames):
        sem = writer.read(ds, i, {}).semantics
        if table.ignore is not None:
            sem = np.where(sem == table.ignore, table.free, sem).astype(np.uint8)
        fmt.predictions.write(tmp_path / "pred", f.token, sem)
    rc, out, err = _run("eval", "--gt", lab, "--pred", tmp_path / "pred", "--split", "all", "--no-progress")
    assert rc == 0, err
    iou = [ln for ln in out.splitlines() if ln.startswith(("completion_iou", "geometry_iou"))]
    assert iou and iou[0].split()[-1] == "100.00", out
    # no camera, no 2D semantic map: none written, none read (the extras asked for)
    assert not list(lab.rglob("extras")) and fmt.open_split(lab, "all", load_extras=True)[0].semantics_2d is None


def _keyframes(rig: Path) -> list[dict]:
    rows = json.loads((rig / "scene-0000" / "sweeps.json").read_text())["sweeps"]
    return [r for r in rows if r["keyframe"]]


@pytest.mark.parametrize("to", ("semantickitti", "kitti360"))
def test_the_kitti_layouts_carry_the_scans_poses_and_which_scan_each_frame_is(rig, labels, to):
    from occkit.data.recordings.registry import open_recording
    from occkit.formats import get_format
    from occkit.formats._kitti_labels import input_occupancy

    lab = labels[to]
    seq = lab / ("sequences" if to == "semantickitti" else "data_2d_raw") / "scene-0000"
    keys = _keyframes(rig)
    rows = (seq / "frames.txt").read_text().splitlines()
    assert rows == [f"{i:06d} {k['timestamp']} {k['token']}" for i, k in enumerate(keys)]
    rec = open_recording(rig, None, {}).read_scene("scene-0000")
    sweeps = [rec.sweeps[k] for k in rec.keyframes]
    ds = get_format(to).open_split(lab, "all", load_images=False)
    poses = [ds.frame_pose(i) for i in range(len(ds))]
    for i, s in enumerate(sweeps):
        scan = (
            seq / "velodyne" / f"{i:06d}.bin"
            if to == "semantickitti"
            else lab / "data_3d_raw" / "scene-0000" / "velodyne_points" / "data" / f"{i:010d}.bin"
        )
        points = np.fromfile(scan, "<f4").reshape(-1, 4)
        np.testing.assert_array_equal(points[:, :3], s.points)  # the scan as recorded, in the LiDAR frame
        assert np.array_equal(ds.read_input_occupancy(i), input_occupancy(points)) and ds.read_input_occupancy(i).any()
        # the reader's velodyne poses move as the recording's LiDAR does
        T_wl = [np.asarray(x.T_global_from_ego) @ np.asarray(rec.lidars[x.sensor]) for x in (sweeps[0], s)]
        want = np.linalg.inv(T_wl[0]) @ T_wl[1]
        np.testing.assert_allclose(np.linalg.inv(poses[0]) @ poses[i], want, atol=1e-6)
    if to == "semantickitti":
        np.testing.assert_allclose(poses[0], np.eye(4), atol=1e-9)  # KITTI odometry's: the first frame's
        seconds = [float(x) for x in (seq / "times.txt").read_text().split()]
        assert seconds == pytest.approx([(k["timestamp"] - keys[0]["timestamp"]) / 1e6 for k in keys])
        assert "P2" not in (seq / "calib.txt").read_text()  # no camera: Tr alone
    else:
        np.testing.assert_allclose(poses[0], sweeps[0].T_global_from_ego @ rec.lidars[sweeps[0].sensor], atol=1e-6)
        assert not (lab / "calibration" / "perspective.txt").exists()


@pytest.mark.parametrize("to", LAYOUTS)
def test_quality_scores_the_rays_in_every_layout(rig, labels, to, one_torch_thread):
    """``--quality``'s rays on labels in any layout (``occkit.labelgen.run.quality_figures``): the labels read
    back through the format, the rays walked in its frame."""
    from occkit.data.recordings.registry import open_recording
    from occkit.fileio import read_json
    from occkit.labelgen.consistency import score_output
    from occkit.labelgen.output import plan_target

    lab = labels[to]
    recording = open_recording(rig, None, {})
    target = plan_target(to, lab.parent / f"{to}.yaml", None, tuple(recording.classes))
    done = {"scene-0000": read_json(lab / ".label" / "scenes" / "scene-0000.json")}
    r = score_output(recording, lab, done, ["scene-0000"], target)["rays"]
    assert r["keyframes"] == 2 and r["rays"] > 1000
    assert r["agree_percent"] > 50 and r["false_free_percent"] < 5, r  # naive: the sweep itself voxelised


@pytest.fixture(scope="module")
def with_cameras(rig, labels) -> dict[str, Path]:
    """The world's own labels (its cameras and images: the rig's folder beside them) in every layout."""
    out = {}
    for to in LAYOUTS:
        dst = labels[to].parent / f"{to}-cams"
        extra = ["--class-map", labels[to].parent / f"{to}.yaml"]
        rc, _, err = _run("label", "--data", rig.parent / "w", "--out", dst, "--to", to, "--preset", "naive", *extra)
        assert rc == 0, err
        out[to] = dst
    return out


@pytest.mark.parametrize("to", LAYOUTS)
def test_labels_of_a_recording_with_cameras_carry_each_cameras_map_as_the_layouts_reader_reads_them(
    rig, with_cameras, to, one_torch_thread
):
    """Each keyframe's ``semantics_2d`` (``load_extras``): the cameras the layout reads (the KITTI layouts: the
    recording's first, as their image), at the image's size, in the layout's classes, and equal to the labels
    as the reader gives them walked from each camera by another walk
    (:func:`occkit.geometry.raycast.first_hit`, which starts outside the grid too: the KITTI grid begins at the
    LiDAR, and the world's front camera sits behind it); the map files are among the keyframe's files that a
    rerun checks."""
    import torch

    from occkit.data.recordings.registry import open_recording
    from occkit.fileio import read_json
    from occkit.formats import get_format
    from occkit.geometry.raycast import first_hit
    from occkit.labelgen.semantic_maps import camera_rays

    fmt, lab = get_format(to), with_cameras[to]
    kitti = to in ("semantickitti", "kitti360")
    rec = open_recording(rig.parent / "w", None, {}).read_scene("scene-0000")
    ds = fmt.open_split(lab, "all", load_extras=True)
    state = read_json(lab / ".label" / "scenes" / "scene-0000.json")["infos"]
    free = fmt.classes.free
    for i, k in enumerate(rec.keyframes):
        sweep = rec.sweeps[k]
        s = ds[ds.index_of(f"scene-0000/{i:06d}" if kitti else sweep.token)]
        cams = [next(iter(rec.cameras.values()))] if kitti else [rec.cameras[c] for c in s.cam_names]
        assert s.semantics_2d is not None and s.depth is None and s.instance_2d is None
        assert s.semantics_2d.shape == (len(cams), *s.images.shape[-2:]) == (len(cams), 48, 80)
        assert 0 <= int(s.semantics_2d.min()) and int(s.semantics_2d.max()) < fmt.classes.num_classes
        occ = s.occupancy.numpy()
        occupied = torch.from_numpy((occ != free) & (occ != 255))
        T_lidar = np.asarray(rec.lidars[sweep.sensor], np.float64)  # every one of these layouts: the LiDAR frame
        for c, cam in enumerate(cams):
            o, d = camera_rays(cam.K, np.linalg.inv(T_lidar) @ np.asarray(cam.T_ego_from_cam), cam.image_size)
            hit = first_hit(occupied, o.expand(len(d), 3).contiguous(), d, fmt.grid)
            want = np.full(len(d), free, np.int64)
            idx = hit.index[hit.hit].numpy()
            want[hit.hit.numpy()] = occ[idx[:, 0], idx[:, 1], idx[:, 2]]
            assert hit.hit.any() and not hit.hit.all()
            np.testing.assert_array_equal(s.semantics_2d[c].numpy(), want.reshape(cam.image_size), err_msg=cam.name)
        files = state[sweep.token]["files"]
        maps = [f for f in files if "/extras/" in f or f.startswith("extras/")]
        assert len(maps) == len(cams) and all((lab / f).is_file() for f in maps)
    assert fmt.open_split(lab, "all", load_extras=False)[0].semantics_2d is None
