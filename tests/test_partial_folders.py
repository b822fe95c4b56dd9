"""A resumable command's folder in the making (``.NAME.partial`` beside ``--out``) is removed only when
the same command left it (issue 79): a folder of the user's by that name, a link, or one whose record
is not the command's is refused in one line and left as it is; a failure of ``occkit prepare`` leaves
nothing hidden behind."""

from __future__ import annotations

import json

import pytest

from occkit.outputs import resumable_folder


def _enter(out, command="synth", key=1, **kw):
    with resumable_folder(out, command, key, **kw) as (part, resumed):
        (part / "a.txt").write_text("x")
        return part, resumed


def test_a_partial_folder_of_other_work_of_the_same_command_is_replaced(tmp_path):
    out = tmp_path / "w"
    part = tmp_path / ".w.partial"
    part.mkdir()
    (part / ".partial.json").write_text(json.dumps({"command": "synth", "key": 0}))
    (part / "old.txt").write_text("old")
    with pytest.warns(UserWarning, match=r"\.w\.partial: a stopped run of occkit synth there was of other work"):
        _enter(out)  # said: the stopped run's files are removed (was: with no word)
    assert (out / "a.txt").is_file() and not (out / "old.txt").exists() and not part.exists()


@pytest.mark.parametrize(
    "record, message",
    [
        (None, "a hidden folder without the record occkit synth keeps"),
        ("[1]", ".partial.json: not the record occkit synth writes (JSON list)"),
        ('{"command": "prepare", "key": 1}', ".partial.json: not the record occkit synth writes (command 'prepare')"),
    ],
)
def test_a_partial_folder_synth_did_not_leave_is_refused_and_kept(tmp_path, record, message):
    out = tmp_path / "w"
    part = tmp_path / ".w.partial"
    part.mkdir()
    (part / "mine.txt").write_text("the user's")
    if record is not None:
        (part / ".partial.json").write_text(record)
    with pytest.raises(FileExistsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _enter(out)
    assert (part / "mine.txt").read_text() == "the user's" and not out.exists()


def test_a_link_named_as_the_partial_folder_is_refused_and_its_target_kept(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("k")
    (tmp_path / ".w.partial").symlink_to(elsewhere)
    with pytest.raises(FileExistsError, match="is in the way"):
        _enter(tmp_path / "w")
    assert (elsewhere / "keep.txt").read_text() == "k"


def test_a_failure_removes_the_partial_folder_when_asked_and_a_stop_keeps_it(tmp_path):
    out = tmp_path / "w"
    with pytest.raises(ValueError):
        with resumable_folder(out, "prepare", 1, keep_on_error=False) as (part, _):
            (part / "scene.json").write_text("{}")
            raise ValueError("the tables are wrong")
    assert not (tmp_path / ".w.partial").exists() and not out.exists()
    with pytest.raises(KeyboardInterrupt):
        with resumable_folder(out, "prepare", 1, keep_on_error=False) as (part, _):
            (part / "scene.json").write_text("{}")
            raise KeyboardInterrupt
    assert (tmp_path / ".w.partial" / "scene.json").is_file()  # a stop: the same command resumes it


def test_a_failure_before_any_work_leaves_no_partial_folder_and_one_after_keeps_it(tmp_path):
    """Bad input refused before anything was written (``occkit label`` reading a corrupt scan) leaves no
    hidden folder beside ``--out``; a failure after some work keeps it for the rerun to resume."""
    out = tmp_path / "w"
    with pytest.raises(ValueError):
        with resumable_folder(out, "label", 1) as (part, _):
            raise ValueError("a corrupt scan")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    with pytest.raises(ValueError):
        with resumable_folder(out, "label", 1) as (part, _):
            (part / "scene-0000.json").write_text("{}")
            raise ValueError("a corrupt scan of the second scene")
    assert (tmp_path / ".w.partial" / "scene-0000.json").is_file()
    with resumable_folder(out, "label", 1) as (part, resumed):
        assert resumed and (part / "scene-0000.json").is_file()
