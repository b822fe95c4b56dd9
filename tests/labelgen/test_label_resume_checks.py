"""What a stopped ``occkit label`` resumes from is checked: the resume key holds a fingerprint of the
recording's content (an edited rig is labelled anew, not resumed with labels of the old one), and each
finished scene's record is read back as the writer makes it (a record holding a list, or a label path
edited to lead outside the folder, is said and its scene labelled again, never published). docs/labels.md."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from occkit.cli import main


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("resw") / "w"
    argv = ["synth", "--out", str(out), "--scenes", "2", "--frames", "2", "--image-size", "48", "80"]
    assert main([*argv, "--sweeps", "1", "--beams", "8"]) == 0
    return out


@pytest.fixture(scope="module")
def stopped(world, tmp_path_factory) -> Path:
    """The hidden folder a label run of ``world`` left when stopped after its first scene."""
    import occkit.labelgen.run as label_run

    real = label_run.label_one_scene
    calls: list[str] = []

    def stop_on_second(job):
        calls.append(job["scene"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(job)

    label_run.label_one_scene = stop_on_second
    try:
        base = tmp_path_factory.mktemp("stopped")
        assert main(["label", "--data", str(world), "--out", str(base / "lab")]) == 130
    finally:
        label_run.label_one_scene = real
    part = base / ".lab.partial"
    assert (part / ".label" / "scenes" / "scene-0000.json").is_file()
    return part


def _resume(world: Path, stopped: Path, tmp_path: Path, monkeypatch, edit=None) -> tuple[list[str], Path]:
    """Copy the stopped run's folder to ``tmp_path``, ``edit`` it, run again; the scenes labelled."""
    import occkit.labelgen.run as label_run

    part = tmp_path / ".lab.partial"
    shutil.copytree(stopped, part)
    if edit is not None:
        edit(part)
    real = label_run.label_one_scene
    labelled: list[str] = []

    def counted(job):
        labelled.append(job["scene"])
        return real(job)

    monkeypatch.setattr(label_run, "label_one_scene", counted)
    assert main(["label", "--data", str(world), "--out", str(tmp_path / "lab")]) == 0
    return labelled, tmp_path / "lab"


def test_an_unchanged_recording_resumes_with_the_scene_it_lacks(world, stopped, tmp_path, monkeypatch, capsys):
    labelled, _ = _resume(world, stopped, tmp_path, monkeypatch)
    assert labelled == ["scene-0001"] and "resuming: 1 of 2 scenes" in capsys.readouterr().out


def test_a_recording_edited_since_the_stop_is_labelled_anew(world, stopped, tmp_path, monkeypatch, capsys):
    import os

    assert json.loads((stopped / ".partial.json").read_text())["key"]["content"]
    f = world / "rig" / "scene-0000" / "boxes.json"  # at the stopped run's path: the content alone differs
    kept, st = f.read_bytes(), f.stat()
    t = json.loads(kept)
    t["boxes"][0]["center"][0] += 3.0  # an object moved in the recording of the finished scene
    try:
        f.write_text(json.dumps(t))
        with pytest.warns(UserWarning, match="a stopped run of occkit label there was of other work"):
            labelled, _ = _resume(world, stopped, tmp_path, monkeypatch)  # said, not dropped with no word
    finally:
        f.write_bytes(kept)
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert sorted(labelled) == ["scene-0000", "scene-0001"]
    assert "resuming" not in capsys.readouterr().out


def test_a_points_file_rewritten_since_the_stop_changes_the_fingerprint(world):
    import os

    from occkit.data.recordings.registry import open_recording

    rec = open_recording(world)
    before = rec.content_fingerprint(["scene-0000"])
    assert rec.content_fingerprint(["scene-0000"]) == before
    assert rec.content_fingerprint(["scene-0001"]) != before
    f = next((world / "rig" / "scene-0000" / "lidar").glob("*.npz"))
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    try:
        assert rec.content_fingerprint(["scene-0000"]) != before
    finally:
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert rec.content_fingerprint(["scene-0000"]) == before


def test_a_resume_record_holding_a_list_is_said_and_its_scene_labelled_again(
    world, stopped, tmp_path, monkeypatch, capsys
):
    def spoil(part: Path) -> None:
        (part / ".label" / "scenes" / "scene-0000.json").write_text("[1, 2]")

    labelled, out = _resume(world, stopped, tmp_path, monkeypatch, spoil)
    said = capsys.readouterr()
    assert sorted(labelled) == ["scene-0000", "scene-0001"] and "Traceback" not in said.err
    assert (
        "label: .label/scenes/scene-0000.json: list [1, 2] is not an object; scene scene-0000 is labelled" in said.out
    )
    assert len(json.loads((out / "annotations.json").read_text())["scene_infos"]["scene-0000"]) == 2


def test_a_resume_record_whose_report_lost_a_figure_is_said_and_its_scene_labelled_again(
    world, stopped, tmp_path, monkeypatch, capsys
):
    def spoil(part: Path) -> None:
        f = part / ".label" / "scenes" / "scene-0000.json"
        rec = json.loads(f.read_text())
        rec["report"]["keyframes"] = "two"
        f.write_text(json.dumps(rec))

    labelled, out = _resume(world, stopped, tmp_path, monkeypatch, spoil)
    assert sorted(labelled) == ["scene-0000", "scene-0001"]
    assert "scene-0000.json: report.keyframes: 'two' is not an integer; scene scene-0000" in capsys.readouterr().out
    assert json.loads((out / "report.json").read_text())["summary"]["keyframes"] == 4


def test_a_resume_record_whose_label_path_leaves_the_folder_is_never_published(
    world, stopped, tmp_path, monkeypatch, capsys
):
    victim = tmp_path / "victim.npz"
    victim.write_bytes(b"not a label")

    def spoil(part: Path) -> None:
        f = part / ".label" / "scenes" / "scene-0000.json"
        rec = json.loads(f.read_text())
        first = next(iter(rec["infos"]))
        rec["infos"][first]["gt_path"] = "../victim.npz"
        f.write_text(json.dumps(rec))

    labelled, out = _resume(world, stopped, tmp_path, monkeypatch, spoil)
    assert sorted(labelled) == ["scene-0000", "scene-0001"]
    assert "gt_path '../victim.npz' is not one of the files its writer made" in capsys.readouterr().out
    ann = json.loads((out / "annotations.json").read_text())
    paths = [i["gt_path"] for s in ann["scene_infos"].values() for i in s.values()]
    assert len(paths) == 4 and all(p.startswith("gts/") and (out / p).is_file() for p in paths)
    assert victim.read_bytes() == b"not a label"


def test_a_run_failing_after_a_finished_scene_says_where_that_scene_is_kept_and_resumes(
    world, tmp_path, monkeypatch, capsys
):
    """Before: the error line alone, and a hidden folder beside --out with no word of it."""
    import occkit.labelgen.run as label_run

    real = label_run.label_one_scene

    def disk_full_on_second(job):
        if job["scene"] == "scene-0001":
            raise OSError(28, "No space left on device")
        return real(job)

    out = tmp_path / "lab"
    with monkeypatch.context() as m:
        m.setattr(label_run, "label_one_scene", disk_full_on_second)
        capsys.readouterr()
        assert main(["label", "--data", str(world), "--out", str(out), "--preset", "naive"]) == 1
    said = capsys.readouterr()
    part = tmp_path / ".lab.partial"
    line = (
        f"label: stopped after 1 of 2 scenes; the finished ones are kept in {part} (hidden, beside --out): "
        "run again on the recording unchanged, it labels only the others (a recording edited since is labelled anew)"
    )
    assert line in said.out.splitlines() and "No space left on device" in said.err, said
    assert (part / ".label" / "scenes" / "scene-0000.json").is_file() and not out.exists()
    assert main(["label", "--data", str(world), "--out", str(out), "--preset", "naive"]) == 0
    said = capsys.readouterr().out
    assert "resuming: 1 of 2 scenes already labelled" in said and "stopped after" not in said
    assert not part.exists() and len(json.loads((out / "annotations.json").read_text())["scene_infos"]) == 2


def test_a_run_failing_before_any_scene_is_finished_says_nothing_of_kept_scenes(world, tmp_path, capsys):
    rig = tmp_path / "rig"
    shutil.copytree(world / "rig", rig)
    rows = json.loads((rig / "scene-0000" / "sweeps.json").read_text())["sweeps"]
    (rig / "scene-0000" / rows[0]["points"]).write_bytes(b"not an npz")
    capsys.readouterr()
    assert main(["label", "--data", str(rig), "--out", str(tmp_path / "lab"), "--preset", "naive"]) == 1
    assert "stopped after" not in capsys.readouterr().out


def test_a_scene_that_reads_otherwise_than_when_it_was_labelled_is_labelled_again(
    world, stopped, tmp_path, monkeypatch, capsys
):
    """The rig's fingerprint sees sizes and times; what a finished scene read is hashed too (its record's
    ``read``), so an edit that keeps both (a file rewritten in place, its time put back) is labelled anew: here
    the reader hands one point moved by 1 m, as such an edit would."""
    from occkit.data.recordings import rig
    from occkit.labelgen.resume import scene_digest

    kept = json.loads((stopped / ".label" / "scenes" / "scene-0000.json").read_text())
    real = rig.RigReader.read
    assert kept["read"] == scene_digest(real(rig.RigReader.open(world), "scene-0000"))  # what it read, hashed

    def edited(self, scene, load_points=True):
        rec = real(self, scene, load_points)
        if scene == "scene-0000" and load_points:
            rec.sweeps[0].points[0, 0] += 1.0
        return rec

    monkeypatch.setattr(rig.RigReader, "read", edited)
    capsys.readouterr()
    labelled, _ = _resume(world, stopped, tmp_path, monkeypatch)
    out = capsys.readouterr().out
    assert "scene scene-0000: its recording reads otherwise than when it was labelled; labelled again" in out
    assert sorted(labelled) == ["scene-0000", "scene-0001"] and "resuming" not in out
