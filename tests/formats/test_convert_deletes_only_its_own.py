"""``occkit convert`` deletes and replaces only what it wrote inside ``--out`` (issue 79): frame records
edited to name files beside the output or elsewhere are refused before anything is deleted; records and
state files that are not what convert writes are refused in one line; a second writer is refused by
the output's lock."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from occkit.cli import main
from occkit.convert import STATE_DIR
from occkit.fileio import file_sums


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    return err


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def converted_once(tiny_occ3d_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("converted") / "out"
    assert main(["convert", "--data", str(tiny_occ3d_root), "--out", str(out), "--to", "occ3d"]) == 0
    return out


@pytest.fixture
def converted(converted_once, tmp_path) -> Path:
    """A conversion of the tiny world for each test to edit: a copy of one made once (its files, records
    and state as convert wrote them, the image links still links to the source)."""
    out = tmp_path / "out"
    shutil.copytree(converted_once, out, symlinks=True)
    assert _snapshot(out) == _snapshot(converted_once)
    return out


def _point_record_at(out: Path, targets: list[str]) -> Path:
    """Edit the first frame record so that it names ``targets`` (with their true sizes and SHA-256, as
    a careful forger would), as files the conversion wrote."""
    side = sorted((out / STATE_DIR / "frames").glob("*.json"))[0]
    rec = json.loads(side.read_text())
    rels = [str(t) for t in targets]
    rec["files"] = rels
    rec["sums"] = {r: file_sums(out, [r])[r] for r in rels}
    side.write_text(json.dumps(rec))
    return side


def test_overwrite_deletes_nothing_outside_out_when_a_record_names_paths_there(converted, tmp_path, capsys):
    out = converted
    beside = tmp_path / "beside.txt"
    beside.write_text("the user's file beside the dataset")
    elsewhere = tmp_path / "other" / "victim.txt"
    elsewhere.parent.mkdir()
    elsewhere.write_text("a file in another folder")
    before = _snapshot(out)
    for target in ("../beside.txt", str(elsewhere)):  # a ../ path, an absolute path
        side = _point_record_at(out, [target])
        argv = ["convert", "--data", json.loads((out / STATE_DIR / "state.json").read_text())["source"]]
        argv += ["--out", str(out), "--to", "occ3d", "--split", "val", "--overwrite"]
        assert main(argv) == 1
        err = _one_line(capsys)
        assert f"{side}: names {target}, which lies outside --out {out}" in err, err
        assert "nothing was touched" in err
        assert beside.read_text() == "the user's file beside the dataset"
        assert elsewhere.read_text() == "a file in another folder"
        # nothing of the output was deleted either (the records checked before any delete)
        now = _snapshot(out)
        assert set(now) == set(before)
    # a folder inside --out that links elsewhere: the path resolves outside, refused the same
    (out / "gts" / "link").symlink_to(elsewhere.parent)
    side = _point_record_at(out, ["gts/link/victim.txt"])
    state = json.loads((out / STATE_DIR / "state.json").read_text())
    argv = ["convert", "--data", state["source"], "--out", str(out), "--to", "occ3d", "--split", "val", "--overwrite"]
    assert main(argv) == 1
    err = _one_line(capsys)
    assert f"{side}: gts/link/victim.txt resolves to {elsewhere.resolve()}, outside --out {out}" in err
    assert elsewhere.is_file() and beside.is_file()


def test_a_resume_refuses_a_record_naming_a_file_outside_out(converted, tmp_path, capsys):
    out = converted
    victim = tmp_path / "victim.txt"
    victim.write_text("x")
    side = _point_record_at(out, ["../victim.txt"])
    src = json.loads((out / STATE_DIR / "state.json").read_text())["source"]
    assert main(["convert", "--data", src, "--out", str(out), "--to", "occ3d"]) == 1
    assert f"{side}: names ../victim.txt, which lies outside --out {out}" in _one_line(capsys)
    assert victim.read_text() == "x"


def test_overwrite_refuses_a_recorded_file_changed_since_and_deletes_nothing(converted, capsys):
    out = converted
    side = sorted((out / STATE_DIR / "frames").glob("*.json"))[-1]
    rel = json.loads(side.read_text())["files"][0]
    (out / rel).write_bytes(b"the user's edit")
    before = _snapshot(out)
    src = json.loads((out / STATE_DIR / "state.json").read_text())["source"]
    argv = ["convert", "--data", src, "--out", str(out), "--to", "occ3d", "--split", "val", "--overwrite"]
    assert main(argv) == 1
    err = _one_line(capsys)
    assert f"--out {out}: {rel} is not the file occkit convert wrote there" in err
    assert _snapshot(out) == before


@pytest.mark.parametrize(
    "where, content, message",
    [
        ("state.json", "[1, 2]", "state.json: not a state file occkit convert writes (JSON list)"),
        ("state.json", '{"a": 1}', "state.json: not a state file occkit convert writes (no 'source' and 'to')"),
        ("frame", "[]", "not a frame record occkit convert writes (JSON list, not an object)"),
        ("frame", '{"files": "gts", "sums": {}}', "not a frame record occkit convert writes (no list of 'files'"),
    ],
)
def test_a_state_or_record_that_is_not_convert_s_is_refused_in_one_line(converted, capsys, where, content, message):
    out = converted
    state = json.loads((out / STATE_DIR / "state.json").read_text())
    path = out / STATE_DIR / "state.json"
    if where == "frame":
        path = sorted((out / STATE_DIR / "frames").glob("*.json"))[0]
    path.write_text(content)
    before = _snapshot(out)
    argv = ["convert", "--data", state["source"], "--out", str(out), "--to", "occ3d", "--split", "val", "--overwrite"]
    assert main(argv) == 1  # was AttributeError: 'list' object has no attribute 'get' (a traceback)
    err = _one_line(capsys)
    assert err.startswith("occkit convert: error: ") and message in err, err
    assert _snapshot(out) == before


def test_a_source_whose_names_lead_outside_out_is_refused(tiny_occ3d_root, tmp_path):
    from occkit.convert import ConvertError, inside_out

    out = tmp_path / "out"
    out.mkdir()
    assert inside_out(out, "gts/s/t/labels.npz", "x") == out / "gts/s/t/labels.npz"
    for bad in ("gts/../../x.npz", "/etc/passwd", "", None):
        with pytest.raises(ConvertError):
            inside_out(out, bad, "frame t")
    # an image link whose place (the source's img_path) climbs out of the output: refused, nothing made
    from occkit.formats._nusc_labels import _link

    src = tmp_path / "img.jpg"
    src.write_bytes(b"jpg")
    with pytest.raises(ConvertError, match="lies outside --out"):
        _link(src, out / ".." / "escaped.jpg", out)
    assert not (tmp_path / "escaped.jpg").exists()


def test_a_second_convert_into_one_folder_is_refused_and_the_first_s_output_kept(converted, tmp_path, capsys):
    from occkit.locks import lock_path, output_lock

    out = converted
    before = _snapshot(out)
    state = json.loads((out / STATE_DIR / "state.json").read_text())
    lock = output_lock(out, "convert")  # the first conversion, still running
    try:
        argv = ["convert", "--data", state["source"], "--out", str(out), "--to", "surroundocc", "--overwrite"]
        assert main(argv) == 1
    finally:
        lock.release()
    err = _one_line(capsys)
    assert f"--out {out}: {out} is locked by process {os.getpid()} (occkit convert, since " in err, err
    assert _snapshot(out) == before and not lock_path(out).exists()
    # a lock file that is not occkit's: one line naming it, nothing done
    lock_path(out).write_text("[1]")
    assert main(["convert", "--data", state["source"], "--out", str(out), "--to", "occ3d"]) == 1
    err = _one_line(capsys)
    assert f"{lock_path(out)}: not a lock file occkit writes (JSON list" in err
    assert _snapshot(out) == before


@pytest.mark.parametrize(
    "err, says",
    [
        (28, "the disk is full (No space left on device) while writing {path}"),
        (27, "{path}: File too large"),
    ],
)
def test_a_full_disk_or_a_file_too_large_names_the_file_being_written(
    tiny_occ3d_root, tmp_path, capsys, monkeypatch, err, says
):
    import occkit.fileio

    def fail(path, **arrays):
        raise OSError(err, os.strerror(err))  # as a write through a file object: no file named

    monkeypatch.setattr(occkit.fileio, "save_npz_atomic", fail)
    out = tmp_path / "out"
    assert main(["convert", "--data", str(tiny_occ3d_root), "--out", str(out), "--to", "occ3d"]) == 1
    err_line = _one_line(capsys)
    ann = json.loads((tiny_occ3d_root / "annotations.json").read_text())
    scene = next(iter(ann["scene_infos"]))
    path = out / "gts" / scene / next(iter(ann["scene_infos"][scene])) / "labels.npz"
    assert says.format(path=path) in err_line, err_line


def test_a_pseudolabel_record_naming_a_file_outside_out_is_refused_on_resume(tmp_path):
    from occkit.convert import OutsideOutput
    from occkit.pseudolabel.dataset import _kept_frame, _state_file

    out = tmp_path / "pl"
    victim = tmp_path / "victim.txt"
    victim.write_text("x")
    side = _state_file(out, "scene-0", "tok")
    side.parent.mkdir(parents=True)
    side.write_text(json.dumps({"files": file_sums(out, ["../victim.txt"])}))
    with pytest.raises(OutsideOutput, match=r"names \.\./victim\.txt, which lies outside --out"):
        _kept_frame(out, "scene-0", "tok")
    side.write_text("[")  # a damaged record: the frame is made again, as before
    assert _kept_frame(out, "scene-0", "tok") is None and victim.read_text() == "x"
