"""A recording's labels do not depend on where its world frame's origin lies (issue 105): the rig of a tiny
synthetic world, its tables rewritten with the world frame moved by a constant offset (ego poses and box
centres; the points are in the sensor frame), labels the same, bit for bit, at 1e4 m, 1e6 m, a UTM-sized
(5e5, 5e6, 0) and an ECEF-like (4e6, 1e6, 4.8e6) offset, in the default pipeline and with ``--refine-poses``,
``--refine-boxes`` and ``--find-moving``; and ``occkit label`` end to end at the UTM offset. Before the
pipeline moved each scene to a local origin (:func:`occkit.labelgen.pipeline.local_record`) its float32
world points stepped by 0.5 m at y = 5e6 and the UTM labels lost some 4 % of their occupied IoU."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from occkit.cli import main

OFFSETS = {
    "1e4": (1e4, 1e4, 1e4),
    "1e6": (1e6, 1e6, 1e6),
    "utm": (5e5, 5e6, 0.0),
    "ecef": (4e6, 1e6, 4.8e6),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """One scene, two keyframes, two sweeps between; poses and box centres noisy so that the refinements
    move them."""
    out = tmp_path_factory.mktemp("geo") / "w"
    argv = ["synth", "--out", str(out), "--scenes", "1", "--frames", "2", "--image-size", "48", "80"]
    argv += ["--sweeps", "2", "--beams", "8", "--pose-noise", "0.05", "--box-center-noise", "0.1"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(argv) == 0
    return out


def shifted_rig(rig: Path, out: Path, offset: tuple[float, float, float]) -> Path:
    """A copy of ``rig`` whose world frame is moved by ``offset``: every ego pose's translation and every
    box centre plus ``offset`` (floats as JSON writes them, the shortest that reads back the same)."""
    shutil.copytree(rig, out)
    for scene in json.loads((rig / "rig.json").read_text())["scenes"]:
        f = out / scene / "sweeps.json"
        table = json.loads(f.read_text())
        for s in table["sweeps"]:
            s["ego_pose"]["translation"] = [v + o for v, o in zip(s["ego_pose"]["translation"], offset)]
        f.write_text(json.dumps(table))
        f = out / scene / "boxes.json"
        if f.is_file():
            table = json.loads(f.read_text())
            for b in table["boxes"]:
                b["center"] = [v + o for v, o in zip(b["center"], offset)]
            f.write_text(json.dumps(table))
    return out


@pytest.fixture(scope="module")
def rigs(world, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("geo_rigs")
    return {"0": world / "rig", **{k: shifted_rig(world / "rig", root / k, o) for k, o in OFFSETS.items()}}


def _labels(rig: Path, **options) -> tuple[list, dict]:
    from occkit.data.recordings.registry import open_recording
    from occkit.formats import default_format
    from occkit.labelgen.pipeline import LabelOptions, label_scene

    fmt = default_format()
    free = fmt.classes.free
    recording = open_recording(rig, None, {})
    rec = recording.read_scene(recording.scenes[0])
    return label_scene(rec, fmt.grid, fmt.classes.names[:free], free, LabelOptions(**options))


def _differences(ref: list, got: list) -> list[str]:
    out = []
    for a, b in zip(ref, got, strict=True):
        for name in ("semantics", "mask_lidar", "mask_camera", "track"):
            n = int((getattr(a, name) != getattr(b, name)).sum())
            if n:
                out.append(f"{a.token} {name}: {n} voxels")
    return out


@pytest.mark.parametrize(
    "options",
    [{}, {"refine_poses": True, "refine_boxes": True, "find_moving": True, "camera_mask": False}],
    ids=["default", "refine-poses+refine-boxes+find-moving"],
)
def test_the_labels_are_the_same_whatever_offset_the_world_frame_has(rigs, options):
    ref, report = _labels(rigs["0"], **options)
    from occkit.formats import default_format

    free = default_format().classes.free
    assert len(ref) == 2 and all((lab.semantics != free).any() for lab in ref)
    assert all(lab.mask_lidar.any() and (lab.mask_camera.any() or "camera_mask" in options) for lab in ref)
    if options:  # the refinements had something to do on this recording: the comparison is not of no-ops
        assert report["pose_refinement"]["correction_m"]["max"] > 0
        assert report["box_refinement"]["center_correction_m"]["max"] > 0
        assert report["found_moving"]["objects"] > 0
    differ, reports = {}, {}
    for name in OFFSETS:
        got, reports[name] = _labels(rigs[name], **options)
        differ[name] = _differences(ref, got)
    assert differ == {name: [] for name in OFFSETS}  # every offset's differences at once
    for name, offset in OFFSETS.items():
        rep = reports[name]
        for key in ("pose_refinement", "box_refinement", "found_moving"):
            if key in report:
                assert rep[key] == report[key], (name, key)
        # the report says where the local frame lies: the same point of the world, in the shifted frame's terms
        moved = np.asarray(rep["local_origin_m"]) - offset
        assert np.allclose(moved, report["local_origin_m"], atol=1.0), rep["local_origin_m"]


def test_occkit_label_writes_the_same_label_files_at_a_utm_offset(rigs, tmp_path):
    """End to end: the label files of the shifted rig equal the unshifted rig's, and the index keeps the
    recording's own (shifted) ego poses."""
    outs = {}
    for name in ("0", "utm"):
        outs[name] = tmp_path / name
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["label", "--data", str(rigs[name]), "--out", str(outs[name])]) == 0
    anns = {k: json.loads((v / "annotations.json").read_text())["scene_infos"] for k, v in outs.items()}
    files = 0
    for scene, infos in anns["0"].items():
        for token, info in infos.items():
            a, b = np.load(outs["0"] / info["gt_path"]), np.load(outs["utm"] / anns["utm"][scene][token]["gt_path"])
            assert sorted(a.files) == sorted(b.files)
            for k in a.files:
                assert np.array_equal(a[k], b[k]), (token, k)
            t0 = np.asarray(info["ego_pose"]["translation"])
            t1 = np.asarray(anns["utm"][scene][token]["ego_pose"]["translation"])
            assert np.allclose(t1 - t0, OFFSETS["utm"], atol=1e-5)
            files += 1
    assert files == 2


def test_local_record_moves_the_world_frame_to_a_whole_metre_near_the_first_pose(rigs):
    from occkit.data.recordings.registry import open_recording
    from occkit.labelgen.pipeline import local_record

    recording = open_recording(rigs["utm"], None, {})
    rec = recording.read_scene(recording.scenes[0])
    before = [s.T_global_from_ego.copy() for s in rec.sweeps]
    local, origin = local_record(rec)
    first = rec.sweeps[0].T_global_from_ego[:3, 3]
    assert np.array_equal(origin, np.round(origin)) and np.abs(origin - first).max() <= 0.5
    for s, t, b in zip(local.sweeps, before, rec.sweeps):
        assert np.array_equal(s.T_global_from_ego[:3, :3], t[:3, :3])  # rotations untouched
        assert np.allclose(s.T_global_from_ego[:3, 3] + origin, t[:3, 3], atol=1e-6)
        assert np.array_equal(b.T_global_from_ego, t)  # the record read is left as it was
        if s.boxes is not None:
            assert np.allclose(s.boxes.center + origin, b.boxes.center, atol=1e-6)
            assert np.array_equal(s.boxes.yaw, b.boxes.yaw)
