"""A rig folder's tables read with their types checked: every value of the wrong JSON type (a list where an
object is meant, text where a boolean or a number is, a fraction where an integer is), a value no sensor
or recording has (a 10**9 pixel image, a 1e6 m ego box, a timestamp of 10**30), a singular intrinsic,
two sweeps with one token, a track twice in one sweep and a scene listed twice is refused by
``occkit label`` in one line naming the table (rig.json, sweeps.json or boxes.json), the row and the
field, before any folder is made. docs/labels.md, docs/hardening.md."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from occkit.cli import main


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rigw") / "w"
    argv = ["synth", "--out", str(out), "--scenes", "2", "--frames", "2", "--image-size", "48", "80"]
    assert main([*argv, "--sweeps", "2", "--beams", "8"]) == 0
    return out


def _edit(path: Path, change) -> None:
    t = json.loads(path.read_text())
    change(t)
    path.write_text(json.dumps(t))


def _rig(change):
    return lambda rig: _edit(rig / "rig.json", change)


def _sweeps(change):
    return lambda rig: _edit(rig / "scene-0000" / "sweeps.json", lambda t: change(t["sweeps"]))


def _boxes(change):
    return lambda rig: _edit(rig / "scene-0000" / "boxes.json", lambda t: change(t["boxes"]))


def _camera(**changes):
    return _rig(lambda m: m["cameras"]["CAM_FRONT"].update(changes))


def _keyframe_token_twice(rig: Path) -> None:
    """The last keyframe takes the first's token (boxes.json dropped: its rows name the old token)."""
    (rig / "scene-0000" / "boxes.json").unlink()
    _sweeps(lambda s: s[-1].update(token=s[0]["token"]))(rig)


def _box_moved(dx: float):
    return lambda b: b.append({**b[0], "center": [b[0]["center"][0] + dx, *b[0]["center"][1:]]})


CASES = [
    # a list or a number where an object is meant, and the other way round
    ("cameras_a_list", _rig(lambda m: m.update(cameras=[{"intrinsic": 1}])), "rig.json: cameras: list"),
    ("ego_a_list", _rig(lambda m: m.update(ego=[4, 2, 2])), "rig.json: ego: list"),
    ("lidars_a_list", _rig(lambda m: m.update(lidars=[{"translation": [0, 0, 0]}])), "rig.json: lidars: list"),
    ("ego_size_a_number", _rig(lambda m: m.update(ego={"size": 4})), "rig.json: ego.size: 4 is not a list of 3"),
    ("ego_center_text", _rig(lambda m: m.update(ego={"center": "front"})), "rig.json: ego.center: 'front'"),
    ("sensor_a_list", _sweeps(lambda s: s[1].update(sensor=["LIDAR_TOP"])), "sensor: ['LIDAR_TOP'] is not text"),
    ("token_a_list", _sweeps(lambda s: s[1].update(token=["x"])), "sweeps[1]: token: ['x'] is not text"),
    (
        "box_row_a_list",
        _boxes(lambda b: b.__setitem__(0, [1, 2])),
        "boxes.json: boxes[0]: list [1, 2] is not an object",
    ),
    ("version_a_boolean", _rig(lambda m: m.update(version=True)), "rig.json: version: True is not 1"),
    # values no camera, vehicle or clock has
    (
        "image_size_huge",
        _camera(image_size=[1e9, 1e9]),
        "cameras.CAM_FRONT.image_size[0]: 1000000000.0 is not in [1, 100000]",
    ),
    ("image_size_fraction", _camera(image_size=[48.5, 80]), "image_size[0]: 48.5 is not an integer"),
    ("intrinsic_singular", _camera(intrinsic=[[0, 0, 0], [0, 0, 0], [0, 0, 1]]), "cameras.CAM_FRONT.intrinsic: "),
    ("intrinsic_rank_two", _camera(intrinsic=[[50, 0, 40], [100, 0, 80], [0, 0, 1]]), "is not a camera matrix"),
    ("ego_size_nan", _rig(lambda m: m.update(ego={"size": [float("nan"), 2, 2]})), "ego.size[0]: nan is not finite"),
    (
        "ego_size_infinite",
        _rig(lambda m: m.update(ego={"size": [4, float("inf"), 2]})),
        "ego.size[1]: inf is not finite",
    ),
    (
        "ego_size_absurd",
        _rig(lambda m: m.update(ego={"size": [1e6, 2, 2]})),
        "ego.size[0]: 1000000.0 is not in (0, 50]",
    ),
    (
        "timestamp_huge",
        _sweeps(lambda s: s[-1].update(timestamp=10**30)),
        "is not in [0, 7258118400000000] (microseconds between 1970 and 2200)",
    ),
    ("timestamp_negative", _sweeps(lambda s: s[0].update(timestamp=-5)), "timestamp: -5 is not in [0, "),
    # text or booleans where JSON booleans and numbers belong, fractions where integers do
    ("keyframe_text", _sweeps(lambda s: s[0].update(keyframe="false")), "keyframe: 'false' is not true or false"),
    ("keyframe_number", _sweeps(lambda s: s[1].update(keyframe=1)), "keyframe: 1 is not true or false"),
    ("timestamp_boolean", _sweeps(lambda s: s[0].update(timestamp=True)), "timestamp: True is not an integer"),
    ("timestamp_text", _sweeps(lambda s: s[0].update(timestamp="1600000000000000")), "is not an integer"),
    ("timestamp_fraction", _sweeps(lambda s: s[1].update(timestamp=s[1]["timestamp"] + 0.5)), "refused, not rounded"),
    ("box_class_fraction", _boxes(lambda b: b[0].update({"class": 6.7})), "boxes[0]: class: 6.7 is not an integer"),
    ("box_track_fraction", _boxes(lambda b: b[0].update(track=129.5)), "boxes[0]: track: 129.5 is not an integer"),
    ("box_track_boolean", _boxes(lambda b: b[0].update(track=True)), "boxes[0]: track: True is not an integer"),
    ("box_yaw_text", _boxes(lambda b: b[0].update(yaw="0")), "boxes[0]: yaw: '0' is not a number"),
    ("box_center_short", _boxes(lambda b: b[0].update(center=[1, 2])), "boxes[0]: center: [1, 2] is not a list"),
    ("box_sweep_a_list", _boxes(lambda b: b[0].update(sweep=["x"])), "boxes[0]: sweep: ['x'] is not text"),
    ("box_missing_size", _boxes(lambda b: b[0].pop("size")), "boxes[0]: size missing"),
    # silent before: one label over another, one track in two places, one scene twice
    ("keyframe_token_twice", _keyframe_token_twice, "the token comes twice in the scene (also sweeps[0]"),
    ("track_twice_in_a_sweep", _boxes(_box_moved(20.0)), "comes twice in the sweep"),
    ("scene_listed_twice", _rig(lambda m: m.update(scenes=[*m["scenes"], m["scenes"][0]])), "listed more than once"),
    ("token_with_a_slash", _sweeps(lambda s: s[0].update(token="a/b")), "token: 'a/b' cannot name a folder"),
    ("token_dot_dot", _sweeps(lambda s: s[0].update(token="..")), "token: '..' cannot name a folder"),
    # a key the tables do not have: a misspelt one was read as absent (no keyframe, no splits, the default centre)
    (
        "sweep_key_misspelt",
        _sweeps(lambda s: s[0].update(keyfrmae=True)),
        "unknown key 'keyfrmae' (its keys: token, timestamp, sensor, ego_pose, keyframe, points, images)",
    ),
    ("box_key_unknown", _boxes(lambda b: b[0].update(colour="red")), "boxes[0]: unknown key 'colour' (its keys: sweep"),
    ("rig_key_misspelt", _rig(lambda m: m.update(split={"val": ["scene-0001"]})), "rig.json: unknown key 'split'"),
    ("ego_key_misspelt", _rig(lambda m: m["ego"].update(centre=[1, 0, 1])), "rig.json: ego: unknown key 'centre'"),
]


@pytest.mark.parametrize("spoil, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_rig_table_is_refused_in_one_line_naming_the_table_row_and_field(world, tmp_path, capsys, spoil, words):
    rig = tmp_path / "rig"
    shutil.copytree(world / "rig", rig)
    spoil(rig)
    out = tmp_path / "lab"
    capsys.readouterr()
    assert main(["label", "--data", str(rig), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and "internal error" not in err, err
    assert words in err, err
    tables = [t for t in ("rig.json: ", "scene-0000/sweeps.json: ", "scene-0000/boxes.json: ") if t in err]
    assert str(rig) in err and len(tables) == 1 and ".npz" not in err, err  # the table, not a LiDAR file
    assert not out.exists() and not list(tmp_path.glob(".lab*"))  # refused before any folder is made


@pytest.mark.parametrize(
    "spoil, table",
    [
        (_sweeps(lambda s: s[2].update(timestamp=1)), "scene-0000/sweeps.json: sweeps[2]"),
        (_boxes(lambda b: b[0].update({"class": 99})), "scene-0000/boxes.json: sweep '"),
        (_boxes(lambda b: b[0].update(size=[4.0, -1.0, 1.5])), "scene-0000/boxes.json: sweep '"),
    ],
    ids=["timestamp_out_of_order", "box_class_outside_the_table", "box_size_negative"],
)
def test_errors_of_the_tables_name_the_table_and_row_not_a_lidar_file(world, tmp_path, capsys, spoil, table):
    rig = tmp_path / "rig"
    shutil.copytree(world / "rig", rig)
    spoil(rig)
    capsys.readouterr()
    assert main(["label", "--data", str(rig), "--out", str(tmp_path / "lab")]) == 1
    err = capsys.readouterr().err
    assert table in err and ".npz" not in err, err


def test_a_scene_named_twice_in_scenes_is_refused(world, tmp_path, capsys):
    out = tmp_path / "lab"
    assert main(["label", "--data", str(world), "--out", str(out), "--scenes", "scene-0001,scene-0001"]) == 1
    err = capsys.readouterr().err
    assert "--scenes: scenes ['scene-0001'] named more than once" in err and not out.exists()


def test_a_rig_json_file_given_as_data_is_read_as_its_folder(world):
    from occkit.data.recordings.registry import open_recording

    rec = open_recording(world / "rig" / "rig.json")
    assert rec.reader == "rig" and rec.scenes == ["scene-0000", "scene-0001"]
    scene = rec.read_scene("scene-0000", load_points=False)
    assert len(scene.sweeps) == 4 and scene.source == str(world / "rig" / "scene-0000")


def test_check_record_refuses_two_sweeps_with_one_token_and_a_track_twice_in_a_sweep(world):
    """The same rules for every reader's record, not the rig folder's alone."""
    from occkit.data.rig import read_rig_meta, read_scene
    from occkit.data.scene_record import check_record

    meta = read_rig_meta(world / "rig")
    rec = read_scene(meta, "scene-0000", load_points=False)
    check_record(rec)
    rec.sweeps[1].token = rec.sweeps[0].token
    with pytest.raises(ValueError, match="comes twice in the scene"):
        check_record(rec)
    rec = read_scene(meta, "scene-0000", load_points=False)
    b = rec.sweeps[0].boxes
    assert b is not None and len(b) >= 2
    b.track[1] = b.track[0]
    b.cls[1] = b.cls[0]
    with pytest.raises(ValueError, match=f"track {int(b.track[0])} comes twice in the sweep"):
        check_record(rec)


def _empty_points(rig: Path, scene: str, which) -> list[str]:
    """Empty the points of the sweeps of ``scene`` that ``which(row)`` picks; their tokens."""
    import numpy as np

    rows = json.loads((rig / scene / "sweeps.json").read_text())["sweeps"]
    tokens = []
    for r in rows:
        if which(r):
            np.savez(rig / scene / r["points"], points=np.zeros((0, 4), np.float32))
            tokens.append(r["token"])
    return tokens


def test_a_keyframe_whose_window_has_no_returns_is_said_in_the_output_and_report(world, tmp_path, capsys):
    rig = tmp_path / "rig"
    shutil.copytree(world / "rig", rig)
    first = [True]

    def first_keyframe(r):
        hit = r["keyframe"] and first[0]
        first[0] = first[0] and not hit
        return hit

    (token,) = _empty_points(rig, "scene-0000", first_keyframe)
    (rig / "scene-0000" / "boxes.json").unlink()  # no object placed from the other sweeps: nothing at all
    out = tmp_path / "lab"
    capsys.readouterr()
    assert main(["label", "--data", str(rig), "--out", str(out), "--preset", "naive", "--scenes", "scene-0000"]) == 0
    said = capsys.readouterr().out
    line = f"keyframe {token}: no returns in the sweeps of its window: labels all free"
    assert f"label: scene-0000: warning: {line}" in said
    report = json.loads((out / "report.json").read_text())
    assert report["scenes"][0]["warnings"] == [line]
    assert report["summary"]["warnings"] == [f"scene-0000: {line}"]
    import numpy as np

    labels = np.load(out / "gts" / "scene-0000" / token / "labels.npz")["semantics"]
    assert (labels == 17).all()  # what the warning says: every voxel free


def test_a_scene_with_no_returns_at_all_is_refused(world, tmp_path, capsys):
    rig = tmp_path / "rig"
    shutil.copytree(world / "rig", rig)
    assert len(_empty_points(rig, "scene-0001", lambda r: True)) == 4
    capsys.readouterr()
    assert main(["label", "--data", str(rig), "--out", str(tmp_path / "lab"), "--scenes", "scene-0001"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "scene-0001: scene 'scene-0001': none of its 4 sweeps holds a return" in err
