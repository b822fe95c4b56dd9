"""Camera images of a rig folder (docs/labels.md, "The rig folder", "--write-rig", "nuScenes tables"):
a sweep row's ``"images": {camera: file}`` reaches the labels' index as ``img_path``, resolved in the
output through a link to the rig; ``--write-rig`` writes a recording's images into the rig, so labelling
the rig gives the same image files as labelling the recording, and the labels train with no hand step;
a bad or missing image is refused in one line naming the table, row and camera (nuScenes: the file and
the sample)."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

from occkit.cli import main

pytest.importorskip("nuscenes.nuscenes")

VERSION = "v1.0-synth"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A tiny driving world: Occ3D files and images, its rig folder and its nuScenes tables (1 scene, 2
    keyframes, a sweep between them, 8 beams)."""
    out = tmp_path_factory.mktemp("riw") / "w"
    argv = ["synth", "--format", "nuscenes", "--out", str(out), "--scenes", "1", "--frames", "2"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([*argv, "--image-size", "32", "48", "--sweeps", "1", "--beams", "8"]) == 0
    return out


@pytest.fixture(scope="module")
def tables(world, tmp_path_factory) -> Path:
    """The nuScenes root alone (tables, samples, sweeps, lidarseg, maps), no rig folder."""
    root = tmp_path_factory.mktemp("rit") / "nuscenes"
    root.mkdir()
    for name in (VERSION, "samples", "sweeps", "lidarseg", "maps"):
        shutil.copytree(world / name, root / name)
    return root


def _run(*argv: str) -> int:
    with contextlib.redirect_stdout(io.StringIO()):
        return main(list(argv))


def _images(labels: Path) -> dict[tuple[str, str, str], bytes]:
    """Every keyframe's camera image in the labels' index, read through its ``img_path`` in the output."""
    infos = json.loads((labels / "annotations.json").read_text())["scene_infos"]
    out = {}
    for scene, frames in infos.items():
        for token, info in frames.items():
            for cam, c in info["camera_sensor"].items():
                assert c["img_path"], (scene, token, cam)
                out[scene, token, cam] = (labels / c["img_path"]).read_bytes()
    return out


def test_write_rig_carries_the_images_and_its_labels_give_the_same_files_and_train(tables, tmp_path, capsys):
    fast = ("--preset", "naive")
    assert _run("label", "--data", str(tables), "--out", str(tmp_path / "from-tables"), *fast) == 0
    rig = tmp_path / "rig"
    assert _run("label", "--data", str(tables), "--write-rig", str(rig)) == 0
    rows = json.loads((rig / "scene-0000" / "sweeps.json").read_text())["sweeps"]
    keyframes = [r for r in rows if r["keyframe"]]
    assert keyframes and all(len(r["images"]) == 6 for r in keyframes)
    assert all(r["images"]["CAM_FRONT"] == f"images/CAM_FRONT/{r['token']}.jpg" for r in keyframes)
    assert _run("label", "--data", str(rig), "--out", str(tmp_path / "from-rig"), *fast) == 0
    a, b = _images(tmp_path / "from-tables"), _images(tmp_path / "from-rig")
    assert a.keys() == b.keys() and len(a) == 6 * len(keyframes)
    assert all(a[k] == b[k] for k in a)  # byte-identical image files in both outputs
    infos = json.loads((tmp_path / "from-rig" / "annotations.json").read_text())["scene_infos"]["scene-0000"]
    assert {i["camera_sensor"]["CAM_FRONT"]["img_path"].split("/")[0] for i in infos.values()} == {"rig"}
    capsys.readouterr()
    fast_train = ["--max-steps", "2", "--no-val", "--no-progress", "--set", "train.threads=1"]
    run = ["train", "synth-cpu", "--data", str(tmp_path / "from-rig"), "--out", str(tmp_path / "t")]
    assert main([*run, *fast_train]) == 0
    assert "no image recorded" not in capsys.readouterr().err


def _hand_rig(world: Path, tmp: Path) -> tuple[Path, str]:
    """The world's rig folder alone (no dataset beside it), with CAM_FRONT's image of the first keyframe
    copied into the rig and named in its sweep row; the keyframe's token."""
    rig = tmp / "rig"
    shutil.copytree(world / "rig", rig)
    infos = json.loads((world / "annotations.json").read_text())["scene_infos"]["scene-0000"]
    f = rig / "scene-0000" / "sweeps.json"
    table = json.loads(f.read_text())
    row = next(r for r in table["sweeps"] if r["keyframe"])
    shot = rig / "scene-0000" / "images" / "front.jpg"
    shot.parent.mkdir()
    shutil.copyfile(world / infos[row["token"]]["camera_sensor"]["CAM_FRONT"]["img_path"], shot)
    row["images"] = {"CAM_FRONT": "images/front.jpg"}
    f.write_text(json.dumps(table))
    return rig, row["token"]


def test_a_hand_written_rigs_images_are_the_readers_and_win_over_a_dataset_beside(world, tmp_path):
    from occkit.data.recordings.registry import open_recording

    rig, token = _hand_rig(world, tmp_path)
    rec = open_recording(rig)
    assert rec.images == {token: {"CAM_FRONT": "rig/scene-0000/images/front.jpg"}}
    assert rec.image_links == {"rig": rig}
    assert rec.image_file(rec.images[token]["CAM_FRONT"]) == rig / "scene-0000" / "images" / "front.jpg"
    beside = tmp_path / "data"  # the rig in a dataset (the synthetic world's route): the table's image wins
    beside.mkdir()
    shutil.copy(world / "annotations.json", beside)
    shutil.copytree(world / "samples", beside / "samples")
    shutil.move(rig, beside / "rig")
    rec = open_recording(beside)
    assert rec.images[token]["CAM_FRONT"] == "rig/scene-0000/images/front.jpg"
    assert rec.images[token]["CAM_BACK"].startswith("samples/CAM_BACK/")
    assert set(rec.image_links) == {"samples", "rig"}
    others = [t for t in rec.images if t != token]
    assert others and all(rec.images[t]["CAM_FRONT"].startswith("samples/") for t in others)


def test_write_rig_of_the_synthetic_worlds_rig_copies_its_dataset_images(world, tmp_path):
    rig = tmp_path / "rig"
    assert _run("label", "--data", str(world), "--write-rig", str(rig)) == 0
    infos = json.loads((world / "annotations.json").read_text())["scene_infos"]["scene-0000"]
    rows = {r["token"]: r for r in json.loads((rig / "scene-0000" / "sweeps.json").read_text())["sweeps"]}
    assert set(infos) <= set(rows)
    for token, info in infos.items():
        for cam, c in info["camera_sensor"].items():
            copy = rig / "scene-0000" / rows[token]["images"][cam]
            assert copy.read_bytes() == (world / c["img_path"]).read_bytes()


def _set_images(images):
    def spoil(rig: Path, token: str) -> None:
        f = rig / "scene-0000" / "sweeps.json"
        table = json.loads(f.read_text())
        next(r for r in table["sweeps"] if r["token"] == token)["images"] = images
        f.write_text(json.dumps(table))

    return spoil


def _image_gone(rig: Path, token: str) -> None:
    (rig / "scene-0000" / "images" / "front.jpg").unlink()


@pytest.mark.parametrize(
    "spoil, words",
    [
        (_set_images(["images/front.jpg"]), "images: list ['images/front.jpg'] is not an object"),
        (_set_images({"CAM_TOP": "images/front.jpg"}), "images: 'CAM_TOP' is not a camera of rig.json (its cameras:"),
        (_set_images({"CAM_FRONT": "../rig.json"}), "images.CAM_FRONT: file name '../rig.json' leaves the rig folder"),
        (_set_images({"CAM_FRONT": "/etc/hostname"}), "images.CAM_FRONT: file name '/etc/hostname' leaves the rig"),
        (_set_images({"CAM_FRONT": 7}), "images.CAM_FRONT: 7 is not text"),
        (_image_gone, "images.CAM_FRONT: "),
    ],
    ids=["a_list", "unknown_camera", "climbs_out", "absolute", "a_number", "file_missing"],
)
def test_a_bad_image_entry_is_refused_in_one_line_naming_the_table_row_and_camera(
    world, tmp_path, capsys, spoil, words
):
    rig, token = _hand_rig(world, tmp_path)
    spoil(rig, token)
    out = tmp_path / "lab"
    capsys.readouterr()
    assert main(["label", "--data", str(rig), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "scene-0000/sweeps.json: sweeps[" in err and f"(token {token!r})" in err and words in err, err
    if spoil is _image_gone:
        assert "front.jpg is missing" in err, err
    assert not out.exists() and not list(tmp_path.glob(".lab*"))


def test_nuscenes_tables_naming_a_missing_camera_file_are_refused_naming_it_and_its_sample(tables, tmp_path, capsys):
    root = tmp_path / "nuscenes"
    shutil.copytree(tables, root, symlinks=True)
    infos = json.loads((root / VERSION / "sample_data.json").read_text())
    gone = next(r for r in infos if r["is_key_frame"] and "/CAM_BACK/" in r["filename"])
    (root / gone["filename"]).unlink()
    out = tmp_path / "lab"
    capsys.readouterr()
    assert main(["label", "--data", str(root), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"{root / gone['filename']}: the CAM_BACK image of sample {gone['sample_token']}" in err, err
    assert "is missing" in err and not out.exists()
