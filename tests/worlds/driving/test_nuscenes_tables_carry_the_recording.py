"""``occkit synth --format nuscenes --sweeps K`` with the noise options: the nuScenes tables record the same
imperfect keyframe poses, boxes and point labels as the rig folder (what a generator reading the tables is
given), while the world's truth (extras/) stays exact."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from occkit.cli import main
from occkit.worlds.driving.nuscenes_export import nuscenes_token


@pytest.fixture(scope="module")
def noisy(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("nn") / "w"
    argv = ["synth", "--format", "nuscenes", "--out", str(out), "--scenes", "1", "--frames", "2"]
    argv += ["--image-size", "48", "80", "--sweeps", "1", "--beams", "8", "--pose-noise", "0.3"]
    argv += ["--box-center-noise", "0.5", "--box-yaw-noise", "10", "--label-flips", "0.3"]
    assert main(argv) == 0
    return out


def _table(root: Path, name: str) -> list[dict]:
    (folder,) = [p for p in root.glob("v1.0-*") if p.is_dir()]
    return json.loads((folder / f"{name}.json").read_text())


def test_every_sensor_s_keyframe_pose_is_the_rig_s_recorded_one(noisy):
    rig = json.loads((noisy / "rig" / "scene-0000" / "sweeps.json").read_text())["sweeps"]
    recorded = {s["token"]: s["ego_pose"] for s in rig if s["keyframe"]}
    truth = {
        s["token"]: s["T_global_from_ego"]
        for s in json.loads((noisy / "extras" / "scene-0000" / "sweeps.json").read_text())["sweeps"]
    }
    poses = {p["token"]: p for p in _table(noisy, "ego_pose")}
    key_sd = [sd for sd in _table(noisy, "sample_data") if sd["is_key_frame"]]
    assert {sd["sample_token"] for sd in key_sd} == set(recorded)
    for sd in key_sd:  # the six cameras' rows and the LiDAR's
        pose = poses[sd["ego_pose_token"]]
        np.testing.assert_allclose(pose["translation"], recorded[sd["sample_token"]]["translation"], atol=1e-6)
        off = np.linalg.norm(np.asarray(pose["translation"]) - np.asarray(truth[sd["sample_token"]])[:3, 3])
        assert off > 1e-3  # the noise is there: not the truth


def test_keyframe_annotations_are_the_rig_s_noisy_boxes_and_the_truth_stays_exact(noisy):
    boxes = json.loads((noisy / "rig" / "scene-0000" / "boxes.json").read_text())["boxes"]
    rig = json.loads((noisy / "rig" / "scene-0000" / "sweeps.json").read_text())["sweeps"]
    keys = {s["token"] for s in rig if s["keyframe"]}
    by = {(b["sweep"], b["track"]): b for b in boxes if b["sweep"] in keys}
    inst_of = {}
    for inst in _table(noisy, "instance"):
        inst_of[inst["token"]] = inst
    anns = _table(noisy, "sample_annotation")
    assert anns
    checked = moved = 0
    for a in anns:
        objs = json.loads((noisy / "extras" / "scene-0000" / a["sample_token"] / "objects.json").read_text())["objects"]
        for o in objs:
            if nuscenes_token("sample_annotation", a["sample_token"], int(o["instance"])) != a["token"]:
                continue
            b = by[(a["sample_token"], int(o["instance"]))]
            np.testing.assert_allclose(a["translation"], b["center"], atol=1e-6)
            np.testing.assert_allclose(a["size"], [b["size"][1], b["size"][0], b["size"][2]], atol=1e-6)
            checked += 1
            moved += np.linalg.norm(np.asarray(o["box_global"]["center"]) - np.asarray(b["center"])) > 1e-3
    assert checked == len(anns) and moved > 0  # the truth (extras) is the exact box, the tables the noisy one


def test_lidarseg_holds_the_rig_s_flipped_keyframe_labels(noisy):
    rig = json.loads((noisy / "rig" / "scene-0000" / "sweeps.json").read_text())["sweeps"]
    key = next(s for s in rig if s["keyframe"])
    lab = np.load(noisy / "rig" / "scene-0000" / key["points"])["labels"].astype(np.int64)
    sd = next(
        r for r in _table(noisy, "sample_data") if r["sample_token"] == key["token"] and r["filename"].endswith(".bin")
    )
    seg = next(r for r in _table(noisy, "lidarseg") if r["sample_data_token"] == sd["token"])
    ids = np.fromfile(noisy / seg["filename"], dtype=np.uint8)
    assert len(ids) == len(lab)
    # one lidarseg category per rig class: the tables' labels are the rig's, flips and all (30 % of the points
    # drawn from every class: far more classes than one street's keyframe holds)
    pairs = set(zip(lab.tolist(), ids.tolist()))
    assert len(pairs) == len(set(lab.tolist())) >= 12
