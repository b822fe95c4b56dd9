"""``occkit label`` on nuScenes tables (the reader ``nuscenes``, read by nuscenes-devkit): from the
tables ``occkit synth --format nuscenes --sweeps K`` writes, with its rig folder removed, the labels
equal those of the rig folder; the record it reads is the rig's where the tables hold the same
information, and the boxes of the sweeps between keyframes are the keyframes' interpolated; bad
input is one line naming the file (docs/labels.md, "nuScenes tables")."""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from occkit.cli import main

pytest.importorskip(
    "nuscenes.nuscenes",
    reason="nuscenes-devkit is not installed: pip install --no-deps 'nuscenes-devkit>=1.1' (.ci/run does)",
)

VERSION = "v1.0-synth"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A tiny driving world as Occ3D files, a rig folder (2 sweeps between keyframes, 8 beams) and the
    nuScenes tables of the same recording."""
    out = tmp_path_factory.mktemp("nw") / "w"
    argv = ["synth", "--format", "nuscenes", "--out", str(out), "--scenes", "2", "--frames", "2"]
    assert main([*argv, "--image-size", "48", "80", "--sweeps", "2", "--beams", "8"]) == 0
    return out


@pytest.fixture(scope="module")
def tables(world, tmp_path_factory) -> Path:
    """The nuScenes root alone: the world's tables, samples, sweeps, lidarseg and maps, no rig folder."""
    root = tmp_path_factory.mktemp("nt") / "nuscenes"
    root.mkdir()
    for name in (VERSION, "samples", "sweeps", "lidarseg", "maps"):
        shutil.copytree(world / name, root / name)
    return root


def _label(data: Path, out: Path, *extra: str) -> int:
    with contextlib.redirect_stdout(io.StringIO()):
        return main(["label", "--data", str(data), "--out", str(out), *extra])


@pytest.fixture(scope="module")
def both(world, tables, tmp_path_factory) -> tuple[Path, Path]:
    """``occkit label`` of the rig folder and of the tables alone (the reader found by detection)."""
    base = tmp_path_factory.mktemp("nl")
    assert _label(world, base / "rig") == 0
    assert _label(tables, base / "tables") == 0
    return base / "rig", base / "tables"


def _close(a, b, tol=1e-6) -> bool:
    """JSON values equal, numbers within ``tol`` (poses rounded to 9 decimals on either route)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_close(a[k], b[k], tol) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_close(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return abs(a - b) <= tol
    return a == b


def test_detection_keeps_the_rig_first_and_finds_the_tables_alone(world, tables):
    from occkit.data.recordings.registry import detect_reader

    assert detect_reader(world)[0].name == "rig"  # a world holding both: the rig unless --reader nuscenes
    reader, why = detect_reader(tables)
    assert reader.name == "nuscenes" and why.endswith("sample_data.json")


def test_labels_from_the_tables_equal_the_labels_from_the_rig(both):
    rig, tab = both
    a = json.loads((rig / "annotations.json").read_text())
    b = json.loads((tab / "annotations.json").read_text())
    assert a["scene_infos"].keys() == b["scene_infos"].keys()
    n = 0
    for scene, infos in a["scene_infos"].items():
        assert list(infos) == list(b["scene_infos"][scene])  # named by sample token, in the same order
        for token, info in infos.items():
            other = b["scene_infos"][scene][token]
            assert _close(info, other), (scene, token)  # poses, cameras, image paths, prev / next
            za, zb = np.load(rig / info["gt_path"]), np.load(tab / other["gt_path"])
            assert za.files == zb.files
            for k in za.files:
                assert np.array_equal(za[k], zb[k]), (token, k)
            n += 1
            assert (za["semantics"] != 17).sum() > 1000 and za["mask_camera"].any()  # labels, not an empty grid
            assert (tab / other["camera_sensor"]["CAM_FRONT"]["img_path"]).is_file()  # samples/ linked in
    assert n == 4
    assert b["label_config"]["recording"]["reader"] == "nuscenes"
    assert b["label_config"]["recording"]["options"]["version"] == VERSION


def _rig_and_tables(world: Path, tables: Path, scene: str):
    from occkit.data.recordings.registry import open_recording

    rig = open_recording(world, "rig", {}).read_scene(scene)
    tab = open_recording(tables, None, {"version": None}).read_scene(scene)
    return rig, tab


def _match(rig_boxes, tab_boxes):
    """Each table box's rig box (same centre within 1e-6 m): table track -> rig index."""
    out = {}
    for k in range(len(tab_boxes)):
        d = np.abs(rig_boxes.center - tab_boxes.center[k]).max(1)
        j = int(d.argmin())
        assert d[j] < 1e-6, f"table box {k} has no rig box at its centre ({d[j]:.3g} m away)"
        out[int(tab_boxes.track[k])] = j
    return out


@pytest.mark.parametrize("scene", ["scene-0000", "scene-0001"])
def test_the_record_read_from_the_tables_is_the_rigs(world, tables, scene):
    rig, tab = _rig_and_tables(world, tables, scene)
    assert [s.keyframe for s in tab.sweeps] == [s.keyframe for s in rig.sweeps]
    assert [s.timestamp for s in tab.sweeps] == [s.timestamp for s in rig.sweeps]
    assert [s.token for s in tab.sweeps if s.keyframe] == [s.token for s in rig.sweeps if s.keyframe]
    assert list(tab.lidars) == ["LIDAR_TOP"] and np.allclose(
        tab.lidars["LIDAR_TOP"], rig.lidars["LIDAR_TOP"], atol=1e-9
    )
    assert list(tab.cameras) == list(rig.cameras)
    for name, cam in tab.cameras.items():
        assert np.allclose(cam.K, rig.cameras[name].K) and cam.image_size == rig.cameras[name].image_size
        assert np.allclose(cam.T_ego_from_cam, rig.cameras[name].T_ego_from_cam, atol=1e-7)
    assert (tab.ego_size, tab.ego_center) == (tuple(rig.ego_size), tuple(rig.ego_center))
    assert tab.classes == tuple(rig.classes)
    for s, r in zip(tab.sweeps, rig.sweeps):
        assert np.allclose(s.T_global_from_ego, r.T_global_from_ego, atol=1e-9)
        assert np.array_equal(s.points, r.points) and np.array_equal(s.intensity, r.intensity)
        if s.keyframe:  # lidarseg through the class map gives back the rig's classes
            assert s.labels is not None and np.array_equal(s.labels, r.labels)
            match = _match(r.boxes, s.boxes)  # every annotated box is one of the rig's, with its class and shape
            for k, tr in enumerate(s.boxes.track.tolist()):
                j = match[tr]
                assert s.boxes.cls[k] == r.boxes.cls[j]
                assert np.allclose(s.boxes.size[k], r.boxes.size[j], atol=1e-6)
                assert abs(math.remainder(s.boxes.yaw[k] - r.boxes.yaw[j], math.tau)) < 1e-5  # both rounded in JSON
        else:
            assert s.labels is None and r.labels is None  # nuScenes labels keyframes only, as the rig here


def test_a_sweeps_boxes_are_the_keyframes_boxes_interpolated(world, tables):
    """Between two keyframes a box is the later keyframe's track interpolated at the sweep's time: its
    centre linearly, its yaw along the shorter way (computed here from the two keyframes' boxes)."""
    _, tab = _rig_and_tables(world, tables, "scene-0000")
    keys = tab.keyframes
    k0, k1 = tab.sweeps[keys[0]], tab.sweeps[keys[1]]
    b0 = {int(t): i for i, t in enumerate(k0.boxes.track)}
    checked = 0
    for s in tab.sweeps[keys[0] + 1 : keys[1]]:
        a = (s.timestamp - k0.timestamp) / (k1.timestamp - k0.timestamp)
        assert 0 < a < 1
        assert sorted(s.boxes.track.tolist()) == sorted(k1.boxes.track.tolist())
        for k, tr in enumerate(s.boxes.track.tolist()):
            j1 = int(np.flatnonzero(k1.boxes.track == tr)[0])
            if tr in b0:
                i0 = b0[tr]
                c = (1 - a) * k0.boxes.center[i0] + a * k1.boxes.center[j1]
                dy = math.remainder(k1.boxes.yaw[j1] - k0.boxes.yaw[i0], math.tau)
                yaw = k0.boxes.yaw[i0] + a * dy
                checked += 1
            else:
                c, yaw = k1.boxes.center[j1], k1.boxes.yaw[j1]
            assert np.allclose(s.boxes.center[k], c, atol=1e-6)
            assert abs(math.remainder(s.boxes.yaw[k] - yaw, math.tau)) < 1e-6
            assert np.allclose(s.boxes.size[k], k1.boxes.size[j1])
    assert checked > 10


def test_official_splits_only_when_every_scene_is_one_of_nuscenes():
    from nuscenes.utils.splits import create_splits_scenes

    from occkit.data.recordings.nuscenes import official_splits

    lists = create_splits_scenes(verbose=False)
    tr, va = lists["mini_train"][:2], lists["mini_val"][:1]
    assert official_splits(tr + va, "v1.0-mini") == {"train_split": tr, "val_split": va}
    assert official_splits([*tr, "scene-0000"], "v1.0-mini") == {}  # a scene nuScenes does not have: no splits


def test_the_class_map_is_the_devkits_lidarseg_map_onto_occ3d():
    from occkit.data.nuscenes_tables import LIDARSEG_CATEGORIES
    from occkit.data.recordings.nuscenes import class_of_category
    from occkit.labels import OCC3D_CLASSES

    m = class_of_category()
    assert set(m) == set(LIDARSEG_CATEGORIES)
    assert set(m.values()) == set(OCC3D_CLASSES[:-1])  # every class but free, 'others' for the ignored ones
    assert m["vehicle.bus.bendy"] == m["vehicle.bus.rigid"] == "bus" and m["static.other"] == "others"


def _refused(capsys, argv: list[str], *words: str) -> str:
    capsys.readouterr()
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err
    return err


def _root_with(tables: Path, dst: Path, *versions: str) -> Path:
    """A nuScenes root whose table folders link to the world's (under each name in ``versions``)."""
    dst.mkdir()
    for v in versions:
        (dst / v).symlink_to(tables / VERSION, target_is_directory=True)
    for name in ("samples", "sweeps", "lidarseg", "maps"):
        (dst / name).symlink_to(tables / name, target_is_directory=True)
    return dst


def test_bad_input_is_refused_in_one_line(tables, tmp_path, capsys):
    out = tmp_path / "lab"
    empty = tmp_path / "empty"
    empty.mkdir()
    _refused(capsys, ["label", "--data", str(empty), "--reader", "nuscenes", "--out", str(out)], "no nuScenes table")
    _refused(capsys, ["label", "--data", str(tables / VERSION), "--reader", "nuscenes", "--out", str(out)], "--version")
    two = _root_with(tables, tmp_path / "two", VERSION, "v1.0-other")
    _refused(capsys, ["label", "--data", str(two), "--out", str(out)], "several", VERSION, "v1.0-other", "--version")
    _refused(
        capsys, ["label", "--data", str(two), "--version", "v1.0-mini", "--out", str(out)], "v1.0-mini", "v1.0-other"
    )
    _refused(capsys, ["label", "--data", str(tables), "--scenes", "scene-0009", "--out", str(out)], "scene-0009")
    assert not out.exists() and not list(tmp_path.glob(".lab*"))


def test_a_missing_point_file_is_named(tables, tmp_path, capsys):
    root = tmp_path / "root"
    root.mkdir()
    shutil.copytree(tables / VERSION, root / VERSION)
    shutil.copytree(tables / "sweeps", root / "sweeps")
    for name in ("samples", "lidarseg", "maps"):
        (root / name).symlink_to(tables / name, target_is_directory=True)
    gone = sorted((root / "sweeps" / "LIDAR_TOP").glob("scene-0001__*.pcd.bin"))[0]
    gone.unlink()
    out = tmp_path / "lab"
    err = _refused(capsys, ["label", "--data", str(root), "--out", str(out)], str(gone), "missing")
    assert "sample_data" in err
    assert not out.exists() and not list(tmp_path.glob(".lab*"))


def test_a_missing_devkit_is_one_line_naming_the_pip_command(tables, tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "nuscenes.nuscenes", None)  # import fails as when it is not installed
    out = tmp_path / "lab"
    _refused(capsys, ["label", "--data", str(tables), "--out", str(out)], "nuscenes-devkit", "pip install")
    assert not out.exists()


def test_panoptic_labels_are_read_where_lidarseg_is_absent(tables, tmp_path):
    """nuScenes-panoptic (category index * 1000 + instance) gives the same classes as lidarseg."""
    from occkit.data.recordings.registry import open_recording

    root = tmp_path / "root"
    root.mkdir()
    shutil.copytree(tables / VERSION, root / VERSION)
    for name in ("samples", "sweeps", "maps"):
        (root / name).symlink_to(tables / name, target_is_directory=True)
    rows = json.loads((root / VERSION / "lidarseg.json").read_text())
    (root / VERSION / "lidarseg.json").unlink()
    pan = []
    for r in rows:
        seg = np.fromfile(tables / r["filename"], dtype=np.uint8).astype(np.int32)
        rel = f"panoptic/{VERSION}/{r['sample_data_token']}_panoptic.npz"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(root / rel, data=(seg * 1000 + 7).astype(np.uint16))
        pan.append({**r, "filename": rel})
    (root / VERSION / "panoptic.json").write_text(json.dumps(pan))
    a = open_recording(tables, "nuscenes", {}).read_scene("scene-0001")
    b = open_recording(root, "nuscenes", {}).read_scene("scene-0001")
    keys = [s for s in b.sweeps if s.keyframe]
    assert keys and all(s.labels is not None for s in keys)
    for s, r in zip(b.sweeps, a.sweeps):
        assert (s.labels is None) == (r.labels is None)
        if s.labels is not None:
            assert np.array_equal(s.labels, r.labels)
