"""SemanticKITTI and KITTI-360 sequences into ``occkit label`` (the ``kitti`` reader): ``occkit synth --format
semantickitti --sweeps K`` writes the rig's sweeps as the sequences' scans in SemanticKITTI's published layout
(float32 x y z reflectance ``.bin``, uint32 ``.label`` = raw id | instance << 16, 3x4 ``poses.txt``, ``calib.txt``),
the reader puts every scan where the rig puts its sweep, the sequence route scores within a point of the rig
route against the world's truth, and bad files are refused in one line naming them."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from occkit.cli import main

SYNTH = ["--scenes", "2", "--frames", "2", "--image-size", "48", "80", "--beams", "8"]
#: The synthetic world's velodyne: at the rig's LiDAR (0.986, 0, 1.84) m in the world's ego frame, ego axes.
VELODYNE = np.array([0.986, 0.0, 1.84])
#: SemanticKITTI's learning classes onto Occ3D's (the recording's classes, ``from: rig``; docs/labels.md)
CLASS_MAP = """from: rig
to: occ3d
common:
  others: {from: [unlabeled], to: [others]}
  car: {from: [car], to: [car]}
  bicycle: {from: [bicycle, bicyclist], to: [bicycle]}
  motorcycle: {from: [motorcycle, motorcyclist], to: [motorcycle]}
  truck: {from: [truck], to: [truck]}
  other_vehicle: {from: [other-vehicle], to: [bus]}
  pedestrian: {from: [person], to: [pedestrian]}
  road: {from: [road, parking], to: [driveable_surface]}
  sidewalk: {from: [sidewalk], to: [sidewalk]}
  other_ground: {from: [other-ground], to: [other_flat]}
  terrain: {from: [terrain], to: [terrain]}
  manmade: {from: [building, fence, pole, traffic-sign], to: [manmade]}
  vegetation: {from: [vegetation, trunk], to: [vegetation]}
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kw") / "w"
    assert (
        main(["synth", "--out", str(out), "--format", "semantickitti", *SYNTH, "--sweeps", "2", "--sweep-labels"]) == 0
    )
    return out


def _label(out: Path, *argv: str) -> tuple[int, str]:
    said = io.StringIO()
    with contextlib.redirect_stdout(said):
        rc = main(["label", "--out", str(out), *argv])
    return rc, said.getvalue()


@pytest.fixture(scope="module")
def routes(world, tmp_path_factory) -> dict[str, Path]:
    """``occkit label --quality`` of the same sweeps by the rig folder (``DATA/rig``) and by the sequences, with
    no camera mask in either: the ground fill also fills the ground the cameras saw, and the routes' cameras
    differ (the rig's six, the sequences' one ``image_2``), so with them the rig's labels hold more of the ground
    (2.8 points of occupied IoU more inside the observable region) for a reason that is not the reader's."""
    base = tmp_path_factory.mktemp("kl")
    out = {"rig": base / "rig", "kitti": base / "kitti"}
    same = ["--quality", "--set", "camera_mask=false"]
    assert _label(out["rig"], "--data", str(world), *same)[0] == 0
    cmap = base / "semantickitti-occ3d.yaml"
    cmap.write_text(CLASS_MAP)
    argv = ["--data", str(world), "--reader", "kitti", "--lidar-height", "1.84", "--class-map", str(cmap)]
    rc, said = _label(out["kitti"], *argv, *same)
    assert rc == 0 and "SemanticKITTI sequences" in said
    return out


def _rig_sweeps(world: Path, scene: str) -> list[dict]:
    return json.loads((world / "rig" / scene / "sweeps.json").read_text())["sweeps"]


def test_synth_writes_the_scans_in_semantickittis_published_layout(world):
    from occkit.formats.semantickitti import FORMAT  # noqa: F401  (the registry knows the layout)
    from occkit.labels import SEMANTICKITTI_LEARNING_MAP
    from occkit.worlds.driving.kitti_export import OCC3D_TO_SEMANTICKITTI

    seq = world / "sequences" / "00"  # scene-0000 (SemanticKITTI's split: train 00.., val 08)
    rows = _rig_sweeps(world, "scene-0000")
    bins = sorted((seq / "velodyne").glob("*.bin"))
    assert [b.name for b in bins] == [f"{i:06d}.bin" for i in range(len(rows))]  # a scan a sweep, in time order
    # the SSC frames are the keyframes, named by their scan index (K = 2 sweeps between: every 3rd scan)
    assert sorted(p.stem for p in (seq / "voxels").glob("*.label")) == ["000000", "000003"]
    assert sorted(p.stem for p in (seq / "image_2").glob("*.png")) == ["000000", "000003"]
    assert [r["keyframe"] for r in rows] == [True, False, False, True]
    poses = [ln.split() for ln in (seq / "poses.txt").read_text().splitlines()]
    assert len(poses) == len(bins) and all(len(r) == 12 for r in poses)
    assert np.allclose(np.array(poses[0], float).reshape(3, 4), np.eye(4)[:3])  # relative to the first scan
    assert len((seq / "times.txt").read_text().split()) == len(bins)
    calib = dict(ln.split(":", 1) for ln in (seq / "calib.txt").read_text().splitlines())
    assert set(calib) == {"P0", "P1", "P2", "P3", "Tr"} and all(len(v.split()) == 12 for v in calib.values())
    moving = 0
    for b, r in zip(bins, rows):
        assert b.stat().st_size % 16 == 0
        scan = np.fromfile(b, dtype="<f4").reshape(-1, 4)  # x y z reflectance
        rig = np.load(world / "rig" / "scene-0000" / r["points"])
        assert scan.shape == rig["points"].shape
        # the velodyne frame: the rig's LiDAR (yaw -90 degrees: its x to the right, y ahead) turned to the
        # ego's axes (x ahead), about the same origin: the same ranges
        assert np.allclose(np.linalg.norm(scan[:, :3], axis=1), np.linalg.norm(rig["points"][:, :3], axis=1), atol=1e-4)
        assert np.allclose(scan[:, 0], rig["points"][:, 1], atol=1e-4) and np.allclose(scan[:, 3], rig["points"][:, 3])
        lab = b.parent.parent / "labels" / f"{b.stem}.label"
        assert lab.stat().st_size == 4 * len(scan)
        words = np.fromfile(lab, dtype="<u4")
        raw, inst = words & 0xFFFF, words >> 16
        assert set(np.unique(raw).tolist()) <= set(SEMANTICKITTI_LEARNING_MAP)  # raw ids of the published map
        assert np.array_equal(inst, rig["instance"])
        still = raw < 252
        want = np.array([SEMANTICKITTI_LEARNING_MAP[int(v)] for v in raw[still]])
        occ3d = np.array([max(OCC3D_TO_SEMANTICKITTI[int(c)], 0) for c in rig["labels"][still]])
        assert np.array_equal(want, occ3d)
        moving += int((~still).sum())
        assert (inst[~still] > 0).all()  # a moving point is an object's
    assert moving > 0  # the world's cars and people that drive and walk take SemanticKITTI's moving ids
    from occkit.data.semantickitti import SemanticKITTIDataset, read_calib

    ssc = SemanticKITTIDataset(world, "train", load_images=False)  # the SSC frames read on, posed by their scan
    assert ssc.frames == [("00", "000000"), ("00", "000003")]
    Tr = read_calib(seq / "calib.txt")["Tr"]
    P3 = np.eye(4)
    P3[:3] = np.array(poses[3], float).reshape(3, 4)
    assert np.allclose(ssc.frame_pose(1), P3 @ Tr)


def test_the_reader_puts_every_scan_where_the_rig_puts_its_sweep(world):
    from occkit.data.recordings.registry import open_recording

    kitti = open_recording(world, "kitti", {"lidar_height": 1.84})
    assert kitti.scenes == ["00", "08"] and kitti.splits == {"train_split": ["00"], "val_split": ["08"]}
    assert kitti.classes[:3] == ("unlabeled", "car", "bicycle") and len(kitti.classes) == 20
    rec = kitti.read_scene("00")
    rig = open_recording(world, "rig", {}).read_scene("scene-0000")
    assert np.allclose(rec.lidars["velodyne"][:3, 3], [0, 0, 1.84])  # the ego origin under the velodyne, at the ground
    T0 = np.linalg.inv(rig.sweeps[0].T_global_from_ego)
    for a, b in zip(rig.sweeps, rec.sweeps):
        assert b.timestamp - rec.sweeps[0].timestamp == a.timestamp - rig.sweeps[0].timestamp
        Ta = T0 @ a.T_global_from_ego @ rig.lidars[a.sensor]
        Tb = b.T_global_from_ego @ rec.lidars[b.sensor]
        pa = a.points @ Ta[:3, :3].T + Ta[:3, 3]
        pb = b.points @ Tb[:3, :3].T + Tb[:3, 3]
        # the sequence's world is its first ego frame, VELODYNE's x ahead of the rig's
        assert np.allclose(pa - [VELODYNE[0], 0, 0], pb, atol=2e-3)
    assert [s.token for s in rec.sweeps if s.keyframe] == ["00_000000", "00_000003"]  # the scans with SSC labels
    every2 = open_recording(world, "kitti", {"lidar_height": 1.84, "keyframe_every": 2}).read_scene("00")
    assert [s.token for s in every2.sweeps if s.keyframe] == ["00_000000", "00_000002"]


def test_moving_instances_become_boxes_that_hold_their_points(world):
    from occkit.data.recordings.registry import open_recording
    from occkit.labelgen.steps import assign_to_boxes

    rec = open_recording(world, "kitti", {"lidar_height": 1.84}).read_scene("00")
    boxed = 0
    for s in rec.sweeps:
        words = np.fromfile(Path(s.source).parent.parent / "labels" / f"{Path(s.source).stem}.label", dtype="<u4")
        mov = (words & 0xFFFF) >= 252
        assert s.boxes is not None
        if not mov.any():
            continue
        T = s.T_global_from_ego @ rec.lidars["velodyne"]
        pw = s.points.astype(np.float64) @ T[:3, :3].T + T[:3, 3]
        k = assign_to_boxes(pw, s.boxes, 0.0)
        assert (k[mov] >= 0).all()  # every moving point lies in a box
        assert set((s.boxes.track & 0xFFFF).tolist()) == set((words[mov] >> 16).tolist())  # one track an instance
        assert set(s.boxes.cls.tolist()) <= {1, 4, 5, 6, 7, 8}  # car .. motorcyclist: moving classes' learning ids
        boxed += len(s.boxes)
    assert boxed > 0


def test_the_sequence_route_scores_within_a_point_of_the_rig_route(routes):
    """Both routes' labels on Occ3D's grid against the world's exact occupancy (``truth/``): the occupied
    IoU (the sequences' SemanticKITTI classes mapped onto Occ3D's by the class map, coarser than the rig's:
    the semantic figures are not compared)."""
    q = {k: json.loads((v / "quality.json").read_text()) for k, v in routes.items()}
    assert q["rig"]["keyframes"] == q["kitti"]["keyframes"] == 4
    for figure in ("occupied_iou_observable", "occupied_iou_overall"):
        assert q["kitti"][figure] > 0 and abs(q["kitti"][figure] - q["rig"][figure]) <= 1.0, (figure, q)
    ann = json.loads((routes["kitti"] / "annotations.json").read_text())
    assert list(ann["scene_infos"]) == ["00", "08"] and list(ann["scene_infos"]["00"]) == ["00_000000", "00_000003"]
    frame = ann["scene_infos"]["00"]["00_000000"]
    assert (routes["kitti"] / frame["camera_sensor"]["image_2"]["img_path"]).is_file()  # the image, linked
    z = np.load(routes["kitti"] / frame["gt_path"])
    assert z["semantics"].shape == (200, 200, 16) and int(z["semantics"].max()) <= 17  # Occ3D's ids, free 17


def test_sequences_label_in_semantickittis_own_classes_without_a_class_map(world, tmp_path):
    """``--to semantickitti`` needs no class map from SemanticKITTI's own point classes (docs/labels.md): the
    points' ``unlabeled`` is dropped as the free class ``empty`` is, as an explicit map saying so gives."""
    from occkit.labels import SEMANTICKITTI_CLASSES

    argv = ["--data", str(world), "--reader", "kitti", "--lidar-height", "1.84", "--to", "semantickitti"]
    rc, said = _label(tmp_path / "plain", *argv)
    assert rc == 0 and "written as semantickitti" in said, said
    common = "".join(f"  {c}: {{from: [{c}], to: [{c}]}}\n" for c in SEMANTICKITTI_CLASSES[1:])
    cmap = tmp_path / "sk.yaml"
    cmap.write_text(f"from: rig\nto: semantickitti\ncommon:\n{common}drop: {{from: [unlabeled]}}\n")
    assert _label(tmp_path / "mapped", *argv, "--class-map", str(cmap))[0] == 0
    plain = sorted((tmp_path / "plain" / "sequences").rglob("voxels/*.label"))
    mapped = sorted((tmp_path / "mapped" / "sequences").rglob("voxels/*.label"))
    assert plain and [f.name for f in plain] == [f.name for f in mapped]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(plain, mapped))
    assert any(np.fromfile(f, np.uint16).max() > 0 for f in plain)  # occupied voxels of named classes
    # each keyframe's image_2 linked, in the output's own sequence folders (both sequences labelled)
    seqs = sorted(p.name for p in (tmp_path / "plain" / "sequences").iterdir())
    assert len(seqs) == 2 and not any((tmp_path / "plain" / "sequences" / q).is_symlink() for q in seqs)
    for q in seqs:
        for frame, _, token in (ln.split() for ln in (tmp_path / "plain" / "sequences" / q / "frames.txt").open()):
            png = tmp_path / "plain" / "sequences" / q / "image_2" / f"{frame}.png"
            scan = token.removeprefix(f"{q}_")
            assert png.resolve() == (world / "sequences" / q / "image_2" / f"{scan}.png").resolve()


@pytest.fixture(scope="module")
def world360(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("k360") / "w"
    argv = ["synth", "--out", str(out), "--format", "kitti360", "--scenes", "1", "--frames", "2"]
    assert main([*argv, "--image-size", "48", "80", "--beams", "8", "--sweeps", "1"]) == 0
    return out


def test_kitti360_scans_poses_and_calibration_read_as_the_rigs_sweeps(world360):
    from occkit.data.recordings.registry import open_recording

    seq = "2013_05_28_drive_0000_sync"
    data = world360 / "data_3d_raw" / seq / "velodyne_points" / "data"
    assert sorted(p.name for p in data.glob("*.bin")) == [f"{i:010d}.bin" for i in range(3)]
    rows = [ln.split() for ln in (world360 / "data_poses" / seq / "poses.txt").read_text().splitlines()]
    assert [int(r[0]) for r in rows] == [0, 1, 2] and all(len(r) == 13 for r in rows)
    assert (world360 / "calibration" / "calib_cam_to_pose.txt").read_text().startswith("image_00: ")
    rec = open_recording(world360, "kitti", {"lidar_height": 1.84}).read_scene(seq)
    rig = open_recording(world360, "rig", {}).read_scene("scene-0000")
    assert rec.classes == () and all(s.labels is None and s.boxes is None for s in rec.sweeps)
    assert [s.token for s in rec.sweeps if s.keyframe] == [f"{seq}_0000000000", f"{seq}_0000000002"]
    T0 = np.linalg.inv(rig.sweeps[0].T_global_from_ego)
    for a, b in zip(rig.sweeps, rec.sweeps):
        Ta = T0 @ a.T_global_from_ego @ rig.lidars[a.sensor]
        Tb = b.T_global_from_ego @ rec.lidars[b.sensor]
        assert np.allclose(
            a.points @ Ta[:3, :3].T + Ta[:3, 3] - [VELODYNE[0], 0, 0], b.points @ Tb[:3, :3].T + Tb[:3, 3], atol=2e-3
        )
        assert b.timestamp - rec.sweeps[0].timestamp == a.timestamp - rig.sweeps[0].timestamp


def _sequence(world: Path, tmp: Path) -> Path:
    """A copy of sequence 00 alone, as SemanticKITTI lays it out (no rig beside it)."""
    dst = tmp / "kitti" / "sequences" / "00"
    shutil.copytree(world / "sequences" / "00", dst)
    return tmp / "kitti"


def _truncate(f: Path, drop: int) -> Path:
    f.write_bytes(f.read_bytes()[:-drop])
    return f


@pytest.mark.parametrize(
    "spoil, words",
    [
        (lambda s: _truncate(s / "poses.txt", len((s / "poses.txt").read_text().splitlines()[-1]) + 1), "poses for"),
        (lambda s: _truncate(s / "velodyne" / "000001.bin", 6), "not a multiple of 16"),
        (lambda s: _truncate(s / "labels" / "000002.label", 4), "labels (uint32)"),
        (lambda s: (s / "calib.txt").unlink() or s / "calib.txt", "no such calibration file"),
    ],
)
def test_bad_sequence_files_are_refused_in_one_line_naming_the_file(world, tmp_path, capsys, spoil, words):
    root = _sequence(world, tmp_path)
    named = spoil(root / "sequences" / "00")
    out = tmp_path / "lab"
    capsys.readouterr()
    rc, _ = _label(out, "--data", str(root))  # found by the kitti reader: no --reader needed
    err = capsys.readouterr().err.strip()
    assert rc == 1 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert str(named) in err and words in err, err
    assert not out.exists() and not list(tmp_path.glob(".lab*"))


def test_a_moving_instance_seen_from_one_side_gets_a_box_along_its_motion():
    """A hand case: a 4 x 2 x 1.5 m car driving along +x at 1 m a scan, seen only on its left side (y = 1)
    and its back, with its lower half hidden in the first scan; a parked car (raw 10) and the road get no box."""
    from occkit.data.recordings.kitti import moving_boxes
    from occkit.labels import semantickitti_remap_lut

    rng = np.random.default_rng(0)
    pts, raw, inst = [], [], []
    for i in range(5):
        side = np.c_[rng.uniform(-2, 2, 60), np.full(60, 1.0), rng.uniform(0 if i else 0.75, 1.5, 60)]
        back = np.c_[np.full(20, -2.0), rng.uniform(-1, 1, 20), rng.uniform(0, 1.5, 20)]
        car = np.concatenate([side, back]) + [10.0 + i, 5.0, 0.0]
        parked = rng.uniform([20, -5, 0], [24, -3, 1.5], (30, 3))
        road = np.c_[rng.uniform(0, 30, 50), rng.uniform(-5, 5, 50), np.zeros(50)]
        pts.append(np.concatenate([car, parked, road]))
        raw.append(np.r_[np.full(80, 252), np.full(30, 10), np.full(50, 40)])
        inst.append(np.r_[np.full(80, 7), np.full(30, 8), np.zeros(50, int)])
    boxes = moving_boxes(pts, raw, inst, semantickitti_remap_lut(for_completion=False))
    for i, b in enumerate(boxes):
        assert len(b) == 1 and int(b.cls[0]) == 1 and int(b.track[0]) & 0xFFFF == 7  # car; the instance's track
        # heading along the motion, +x, within 3 degrees (the centroid of the points seen wanders)
        assert abs(np.sin(b.yaw[0])) < 0.05 and np.cos(b.yaw[0]) > 0
        lo, hi = b.center[0] - b.size[0] / 2, b.center[0] + b.size[0] / 2
        car = pts[i][:80]
        assert (car >= lo - 1e-9).all() and (car <= hi + 1e-9).all()  # the box holds every point of the car
        assert not ((pts[i][80:110] >= lo) & (pts[i][80:110] <= hi)).all(1).any()  # nor the parked car's
        assert np.allclose(b.size[0][2], 1.5 + 0.2, atol=0.02)  # the height over the whole track, padded
    assert len({tuple(np.round(b.size[0], 6)) for b in boxes}) == 1  # one size for the track
    assert moving_boxes([None], [None], [None], semantickitti_remap_lut(False)) == [None]  # unlabelled: no boxes
