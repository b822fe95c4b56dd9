"""What occkit's scoring refuses rather than scoring in silence (docs/hardening.md, "Scored in
silence"): poses on RayIoU's paths (the annotations' LiDAR poses and ``eval --infos``) that are not
finite or lie implausibly far, and a token listed twice in the info files."""

from __future__ import annotations

import math

import pytest
from test_metrics_eval_command import write_occ3d

from occkit.cli import main
from occkit.fileio import save_npz_atomic, write_json_atomic
from occkit.formats import get_format
from occkit.scoring.folder import evaluate_predictions


def evaluate_occ3d(gt, pred, split="val", **options):
    """An Occ3D folder scored by occkit's one scoring loop (what ``occkit eval`` runs)."""
    return evaluate_predictions(get_format("occ3d"), gt, pred, split, **options)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _perfect(tmp_path, gts):
    for t, (sem, _, _) in gts.items():
        save_npz_atomic(tmp_path / "pred" / f"{t}.npz", semantics=sem)


def _infos(gts, **change):
    rows = [
        {
            "token": t,
            "scene_name": "scene-a",
            "timestamp": i,
            "lidar2ego_translation": [0.9, 0.0, 1.8],
            "lidar2ego_rotation": [1, 0, 0, 0],
            "ego2global_translation": [3.0 * i, 0, 0],
            "ego2global_rotation": [1, 0, 0, 0],
        }
        for i, t in enumerate(gts)
    ]
    for key, value in change.items():
        rows[1][key] = value
    return rows


@pytest.mark.parametrize(
    "key,value,says",
    [
        ("ego2global_rotation", [float("nan"), 0, 0, 0], "ego2global: not finite"),
        ("lidar2ego_rotation", [1, float("nan"), 0, 0], "lidar2ego: not finite"),
        ("lidar2ego_translation", [1e9, 0, 0], "lidar2ego: translation"),
        ("ego2global_rotation", [0, 0, 0, 0], "zero quaternion"),
        ("ego2global_translation", ["a", 0, 0], "ego2global: not a pose"),
    ],
)
def test_eval_infos_refuses_a_bad_pose_naming_the_file_and_token(tmp_path, capsys, key, value, says):
    gts = write_occ3d(tmp_path / "gt", frames=3, lidar=False)
    _perfect(tmp_path, gts)
    write_json_atomic(tmp_path / "infos.json", {"infos": _infos(gts, **{key: value})})
    rc = main(
        ["eval", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred"), "--metrics", "miou,rayiou"]
        + ["--infos", str(tmp_path / "infos.json"), "--no-progress", "--processes", "1"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1, err
    assert "infos.json: frame 1 (token tok01)" in err[0] and says in err[0]


def test_eval_infos_refuses_a_token_listed_twice(tmp_path):
    gts = write_occ3d(tmp_path / "gt", frames=2, lidar=False)
    _perfect(tmp_path, gts)
    rows = _infos(gts)
    write_json_atomic(tmp_path / "infos.json", rows + [dict(rows[0], scene_name="scene-b")])
    with pytest.raises(ValueError, match="token tok00 is listed twice"):
        evaluate_occ3d(
            tmp_path / "gt", tmp_path / "pred", metrics=("rayiou",), infos=tmp_path / "infos.json", progress=False
        )


@pytest.mark.parametrize(
    "entry,value,says",
    [
        ("lidar_sensor", {"extrinsic": {"translation": [0.9, 0, 1.8], "rotation": [math.nan, 0, 0, 0]}}, "not finite"),
        ("ego_pose", {"translation": [0, 0, 0], "rotation": [1, math.nan, 0, 0]}, "ego_pose: not finite"),
        ("lidar_sensor", {"extrinsic": {"translation": [1e9, 0, 1.8], "rotation": [1, 0, 0, 0]}}, "1000 m"),
    ],
)
def test_rayiou_from_the_annotations_refuses_a_bad_pose_of_any_frame_of_the_scene(tmp_path, entry, value, says):
    # Before: a NaN pose's LiDAR origin fell out of the origins unseen and RayIoU moved (51.13 -> 51.82).
    gts = write_occ3d(tmp_path / "gt", frames=3, lidar=True)
    _perfect(tmp_path, gts)
    ann = tmp_path / "gt" / "annotations.json"
    import json

    data = json.loads(ann.read_text())
    data["scene_infos"]["scene-a"]["tok02"][entry] = value
    write_json_atomic(ann, data)
    with pytest.raises(ValueError) as e:
        evaluate_occ3d(tmp_path / "gt", tmp_path / "pred", metrics=("miou", "rayiou"), progress=False)
    msg = str(e.value)
    assert "annotations.json: frame tok02 of scene scene-a" in msg and says in msg and "\n" not in msg
