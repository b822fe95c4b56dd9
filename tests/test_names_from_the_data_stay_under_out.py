"""Names in the data stay under ``--out``.

A frame token, a scene, a camera or a file name that the data give and that occkit turns into a
path it writes is checked to stay under the output folder first (:func:`occkit.outputs.path_under`):
an absolute name, one that climbs out with ``..`` or one that leads through a link elsewhere is
refused in one line naming where it comes from, and nothing is written outside ``--out``. Beside them,
what the same predictions meet next: ``occkit eval`` telling predictions of other data by their
fingerprint, one file for ``--json`` and ``--csv``, boolean predictions, an export into a dataset, and a
folder of two formats."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from occkit.cli import main
from occkit.outputs import OutsideOutput, path_under

#: a tiny network trained for one CPU step: a checkpoint to predict with, made once
TINY = [
    "model.backbone=test_efficientnet",
    "model.neck_channels=8",
    "model.context_channels=8",
    "model.encoder_widths=[8,16]",
    "model.depth_step=4.0",
    "model.lift_downsample=[4,4,2]",
    "data.image_aug.out_hw=[32,96]",
    "data.workers=0",
    "optim.max_steps=1",
    "optim.warmup_steps=1",
    "optim.amp=none",
    "train.val_every=0",
    "train.ckpt_every=1",
    "train.tensorboard=false",
    "train.threads=1",
    "train.device=cpu",
]


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def _tree(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


# ----------------------------------------------------------------------------------- the helper
def test_path_under_keeps_names_inside_and_refuses_each_way_out(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    assert path_under(out, "scene-1", "tok", "labels.npz") == out / "scene-1" / "tok" / "labels.npz"
    assert path_under(out, "00/000001.label") == out / "00" / "000001.label"  # a nested name: fine
    with pytest.raises(OutsideOutput, match=r"frame 'x': names /etc/passwd, which lies outside --out .*absolute"):
        path_under(out, "/etc/passwd", what="frame 'x'")
    with pytest.raises(OutsideOutput, match=r"names gts/\.\./\.\./evil\.npz, which lies outside --out .*climbs out"):
        path_under(out, "gts", "../../evil.npz")
    with pytest.raises(OutsideOutput, match="absolute"):
        path_under(out, "gts", "/tmp/evil")  # an absolute part in the middle: not silently the whole path
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "link").symlink_to(elsewhere)
    with pytest.raises(OutsideOutput, match=r"link/x\.npz resolves to .*elsewhere/x\.npz, outside --out"):
        path_under(out, "link", "x.npz")
    (out / "last").symlink_to(elsewhere / "f")  # the last name is not followed: an atomic write replaces the link
    assert path_under(out, "last") == out / "last"
    for bad in ("", "a\0b", 3):
        with pytest.raises(OutsideOutput, match="is not a name occkit can write"):
            path_under(out, bad)
    with pytest.raises(OutsideOutput, match="names --out .* itself"):
        path_under(out, ".")
    assert not list(elsewhere.iterdir())


# ------------------------------------------------------------------------------------ predict
@pytest.fixture(scope="module")
def world_and_run(tmp_path_factory):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("h6")
    world, run = root / "W", root / "run"
    synth = ["synth", "--out", str(world), "--scenes", "2", "--frames", "1", "--image-size", "32", "96"]
    assert main([*synth, "--val-fraction", "0.5", "--seed", "0"]) == 0
    assert main(["train", "synth-cpu", "--data", str(world), "--out", str(run), "--no-progress", "--set", *TINY]) == 0
    yield world, run
    torch.set_num_threads(n)


def _predict(run: Path, data: Path, out: Path) -> list[str]:
    return ["predict", "--ckpt", str(run), "--data", str(data), "--out", str(out), "--split", "val", "--no-progress"]


def _world_with_token(world: Path, tmp_path: Path, new_token: str) -> tuple[Path, str]:
    """A copy of ``world`` whose val frame's token (its key in annotations.json) is ``new_token``."""
    data = tmp_path / "data"
    shutil.copytree(world, data, symlinks=True)
    ann = json.loads((data / "annotations.json").read_text())
    infos = ann["scene_infos"][ann["val_split"][0]]
    old = next(iter(infos))
    infos[new_token] = infos.pop(old)
    (data / "annotations.json").write_text(json.dumps(ann))
    return data, old


@pytest.mark.parametrize("kind", ["climbs", "absolute"])
def test_predict_refuses_a_token_that_leads_outside_out(world_and_run, tmp_path, capsys, kind):
    world, run = world_and_run
    victim = tmp_path / "victim"
    token = "../../victim/evil" if kind == "climbs" else str(victim / "evil")
    data, _ = _world_with_token(world, tmp_path, token)
    before = _tree(tmp_path)
    out = tmp_path / "a" / "pred"
    rc = main(_predict(run, data, out))
    err = _one_line(capsys)
    assert rc == 1, err
    assert f"{data / 'annotations.json'}: frame token {token!r}" in err and "lies outside --out" in err, err
    assert not victim.exists() and not out.exists()
    assert _tree(tmp_path) - before <= {"a"}  # nothing anywhere but the (empty) parent of --out


def test_predict_refuses_a_package_writer_that_writes_outside_out(world_and_run, tmp_path, capsys, monkeypatch):
    """A format package whose prediction writer returns a path outside --out: refused naming the
    package, not "wrote 1 predictions"."""
    import occkit.formats as formats
    from occkit.formats.spec import PredictionFiles

    world, run = world_and_run
    real = formats.format_of
    elsewhere = tmp_path / "elsewhere"

    def evil_write(folder: Path, token: str, labels: np.ndarray) -> Path:
        elsewhere.mkdir(exist_ok=True)
        p = elsewhere / f"{token}.npz"
        np.savez(p, semantics=labels)
        return p

    def evil_format(ds):
        fmt = real(ds)
        files = PredictionFiles(write=evil_write, index=fmt.predictions.index, read=fmt.predictions.read)
        return replace(fmt, predictions=files, source="occkit-evilformat 0.1 (evil.format:FORMAT)")

    monkeypatch.setattr(formats, "format_of", evil_format)
    out = tmp_path / "pred"
    rc = main(_predict(run, world, out))
    captured = capsys.readouterr()
    assert rc == 1 and "wrote" not in captured.out, captured
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and "occkit-evilformat 0.1" in err, err
    assert "its prediction writer put frame" in err and f"outside --out {out}" in err, err
    assert not out.exists() and not list(tmp_path.glob(".pred*"))  # the staged folder is gone too


def test_predict_still_writes_tokens_that_stay_inside(world_and_run, tmp_path, capsys):
    world, run = world_and_run
    data, _ = _world_with_token(world, tmp_path, "nested/inside")
    out = tmp_path / "pred"
    rc = main(_predict(run, data, out))
    assert rc == 0, capsys.readouterr().err
    assert (out / "nested" / "inside.npz").is_file()


# --------------------------------------------------------------------------- render, priors run
def test_render_refuses_a_camera_name_that_leads_outside_out(tmp_path):
    """The cameras render names its maps by are the dataset's (a format package may take them from
    its data): one that leads outside --out is refused before anything is rendered or written."""
    import argparse

    from occkit.commands.render import _files_written

    out = tmp_path / "sub" / "render"
    args = argparse.Namespace(out=out, teacher=False, cameras=None, no_picture=False, data=tmp_path / "W")
    assert _files_written(args, ("CAM_FRONT",))[0] == out / "CAM_FRONT_depth.npy"
    with pytest.raises(OutsideOutput, match=r"--data .*W: camera '\.\./\.\./CAM_EVIL'.*lies outside --out"):
        _files_written(args, ("CAM_FRONT", "../../CAM_EVIL"))
    assert not list(tmp_path.rglob("*"))


def test_priors_run_refuses_a_scene_name_that_leads_outside_out(world_and_run, tmp_path, capsys):
    world, _ = world_and_run
    data = tmp_path / "data"
    shutil.copytree(world, data, symlinks=True)
    ann = json.loads((data / "annotations.json").read_text())
    scene = ann["train_split"][0]
    ann["scene_infos"]["../../evil_scene"] = ann["scene_infos"].pop(scene)
    ann["train_split"] = ["../../evil_scene"]
    (data / "annotations.json").write_text(json.dumps(ann))
    out = tmp_path / "p" / "priors"
    rc = main(["priors", "run", "--data", str(data), "--prior", "oracle:typical", "--out", str(out), "--no-progress"])
    err = _one_line(capsys)
    assert rc == 1 and "frame '../../evil_scene'" in err and "climbs out" in err, err
    assert not (tmp_path / "evil_scene").exists() and not (tmp_path / "p" / "evil_scene").exists()
    assert _tree(out) <= {".occkit-output.json"}  # the command's record, no frame written


# ------------------------------------------------------------------------ pseudolabel, generate
def test_pseudolabel_paths_of_a_frame_refuse_names_leading_outside(tmp_path):
    from occkit.pseudolabel.dataset import _labels_file, _state_file

    out = tmp_path / "out"
    assert _labels_file(out, "scene-1", "tok") == out / "gts" / "scene-1" / "tok" / "labels.npz"
    with pytest.raises(OutsideOutput, match=r"W/annotations.json: scene '\.\./\.\./x', frame token 'tok'"):
        _labels_file(out, "../../x", "tok", "W")
    with pytest.raises(OutsideOutput, match="absolute"):
        _labels_file(out, "scene-1", "/tmp/evil")
    with pytest.raises(OutsideOutput, match="climbs out"):
        _state_file(out, "../../../x", "tok")


def test_generate_refuses_a_scene_of_the_conditioning_data_that_leads_outside(tmp_path):
    from occkit.generation.dataset import GeneratedFrame, write_generated_dataset

    def frame(scene: str) -> GeneratedFrame:
        return GeneratedFrame(
            token="gen0000_000000",
            scene=scene,
            text="a road",
            images=torch.zeros(1, 3, 8, 16),
            intrinsics=torch.eye(3)[None],
            T_ego_from_cam=torch.eye(4)[None],
            semantics=torch.zeros(200, 200, 16, dtype=torch.uint8),
            mask=torch.ones(200, 200, 16, dtype=torch.bool),
            T_global_from_ego=torch.eye(4),
        )

    out = tmp_path / "gen"
    with pytest.raises(OutsideOutput, match=r"scene 'gen-\.\./\.\./\.\./evil'.*climbs out"):
        write_generated_dataset(out, [frame("gen-../../../evil")], ("CAM_FRONT",))
    with pytest.raises(OutsideOutput, match=r"camera '/tmp/cam'.*absolute"):
        write_generated_dataset(out, [frame("gen-a")], ("/tmp/cam",))
    assert not out.exists() and not (tmp_path.parent / "evil").exists()


# ------------------------------------------------------------------------------ eval and export
@pytest.fixture(scope="module")
def predicted(world_and_run, tmp_path_factory):
    world, run = world_and_run
    pred = tmp_path_factory.mktemp("h6pred") / "pred"
    args = ["predict", "--ckpt", str(run), "--data", str(world), "--out", str(pred), "--split", "val", "--no-progress"]
    assert main(args) == 0
    return pred


def _eval(gt: Path, pred: Path, *extra: str) -> list[str]:
    return ["eval", "--gt", str(gt), "--pred", str(pred), "--split", "val", "--no-progress", *extra]


def test_predict_records_a_fingerprint_of_the_data_and_eval_tells_other_data_by_it(
    world_and_run, predicted, tmp_path, capsys
):
    from occkit.metrics.evaluate import frames_fingerprint

    world, _ = world_and_run
    prov = json.loads((predicted / "provenance.json").read_text())
    assert prov["data_fingerprint"] == frames_fingerprint(prov["tokens"]) and prov["data_fingerprint"].startswith(
        "sha256:"
    )
    labels = prov["gt_fingerprint"]  # and of its labels, which a copy shares
    assert labels["format"] == "occ3d" and sorted(labels["labels"]) == sorted(prov["tokens"])
    copy = tmp_path / "copy"  # the same data at another path: no word
    shutil.copytree(world, copy, symlinks=True)
    capsys.readouterr()
    assert main(_eval(copy, predicted)) == 0
    assert "other data" not in capsys.readouterr().out
    ann = json.loads((copy / "annotations.json").read_text())  # other data: its val split holds another frame too
    ann["val_split"] = sorted(ann["scene_infos"])
    (copy / "annotations.json").write_text(json.dumps(ann))
    assert main(_eval(copy, predicted, "--allow-missing")) == 0
    warned = [line for line in capsys.readouterr().out.splitlines() if "other data" in line]
    assert len(warned) == 1 and f"made on other data than --gt {copy}" in warned[0], warned
    assert "provenance.json" in warned[0] and "fingerprint sha256:" in warned[0]


def test_eval_of_an_older_record_without_fingerprint_compares_the_data_path(world_and_run, predicted, tmp_path, capsys):
    world, _ = world_and_run
    old = tmp_path / "old"
    shutil.copytree(predicted, old)
    prov = json.loads((old / "provenance.json").read_text())
    del prov["data_fingerprint"]
    (old / "provenance.json").write_text(json.dumps(prov))
    assert main(_eval(world, old)) == 0
    assert "these predictions were made on" not in capsys.readouterr().out
    copy = tmp_path / "copy"
    shutil.copytree(world, copy, symlinks=True)
    assert main(_eval(copy, old)) == 0
    out = capsys.readouterr().out
    assert f"these predictions were made on {world.resolve()}, not --gt {copy}" in out, out


def test_eval_refuses_one_file_for_json_and_csv_before_scoring(world_and_run, predicted, tmp_path, capsys):
    world, _ = world_and_run
    report = tmp_path / "r.txt"
    assert main(_eval(world, predicted, "--json", str(report), "--csv", str(tmp_path / "." / "r.txt"))) == 1
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and "the same file" in err and f"--json {report}" in err, err
    assert not report.exists() and "mIoU" not in captured.out  # refused before any scoring


def test_eval_refuses_a_boolean_occ3d_prediction_as_nyu_does(world_and_run, predicted, tmp_path, capsys):
    from occkit.formats.occ3d import read_prediction

    world, _ = world_and_run
    pred = tmp_path / "pred"
    shutil.copytree(predicted, pred)
    f = next(pred.glob("*.npz"))
    np.savez_compressed(f, semantics=np.load(f)["semantics"] > 8)  # an occupancy mask, not class ids
    with pytest.raises(ValueError, match="prediction has dtype bool"):
        read_prediction(f)
    assert main(_eval(world, pred)) == 1
    err = _one_line(capsys)
    assert f"{f}: prediction has dtype bool" in err and "classes 0 and 1" in err, err


def test_export_refuses_an_out_inside_a_dataset(world_and_run, tmp_path, capsys):
    world, run = world_and_run
    before = {p: p.stat().st_mtime_ns for p in world.rglob("*")}
    out = world / "models" / "model.onnx"
    assert main(["export", "--ckpt", str(run), "--out", str(out), "--frames", "0"]) == 1
    err = _one_line(capsys)
    assert f"--out {out}: lies inside the dataset {world}" in err, err
    assert {p: p.stat().st_mtime_ns for p in world.rglob("*")} == before  # nothing written, no record rewritten


# ------------------------------------------------------- a folder of two formats: the right option
def test_a_folder_of_two_formats_names_the_option_each_command_takes(tmp_path, capsys):
    """``convert`` takes the source's format as ``--from``, ``train`` as ``--set data.format=``,
    ``eval`` as ``--format``; ``show`` takes none: each message names its own (it said ``--format`` to all)."""
    both = tmp_path / "both"
    (both / "data_2d_raw" / "2013_05_28_drive_0000_sync" / "voxels").mkdir(parents=True)
    (both / "annotations.json").write_text("{}")
    runs = {
        "convert": (["convert", "--data", str(both), "--to", "occ3d", "--out", str(tmp_path / "c")], "pass --from "),
        "train": (["train", "synth-cpu", "--data", str(both), "--out", str(tmp_path / "r")], "pass --set data.format="),
        "eval": (["eval", "--gt", str(both), "--pred", str(tmp_path)], "pass --format "),
        "show": (["show", str(both), "--out", str(tmp_path / "f.png")], None),
    }
    for command, (argv, says) in runs.items():
        assert main(argv) == 1, command
        err = _one_line(capsys)
        assert "holds the layouts of 2 formats" in err and "keep one layout per folder" in err, (command, err)
        if says is None:
            assert "pass " not in err, err
        else:
            assert says in err, (command, err)
            assert "--format" not in err or command == "eval", (command, err)


def test_a_written_prediction_path_is_judged_with_its_folders_resolved(tmp_path):
    from occkit.engine.evaluate import check_written_prediction
    from occkit.formats import get_format

    fmt = replace(get_format("occ3d"), source="occkit-evilformat 0.1")
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "link").symlink_to(elsewhere)
    check_written_prediction(fmt, out, out / "sub" / "t.npz", "t")  # inside: fine
    check_written_prediction(fmt, out, out.resolve() / "t.npz", "t")  # the same folder, spelled resolved: fine
    for bad in (elsewhere / "t.npz", out / "link" / "t.npz", out / ".." / "t.npz"):
        with pytest.raises(OutsideOutput, match=r"the format occ3d \(occkit-evilformat 0\.1\): its prediction writer"):
            check_written_prediction(fmt, out, bad, "t")
