"""One bad table of a nuScenes table folder is named by its own file, not the folder (docs/formats/nuscenes.md):
a table cut short, one holding an object or numbers where a list of records belongs, a record without its
token or without a field the readers use, a point-label table that does not match its files. Both readers of
the tables say it: ``occkit prepare nuscenes`` and ``occkit label``'s reader ``nuscenes``."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from pathlib import Path

import pytest

from occkit.cli import main

pytest.importorskip(
    "nuscenes.nuscenes",
    reason="nuscenes-devkit is not installed: pip install --no-deps 'nuscenes-devkit>=1.1' (.ci/run does)",
)

VERSION = "v1.0-synth"


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> Path:
    """A tiny nuScenes root (tables, samples, sweeps, lidarseg, maps) of the synthetic world, no rig folder."""
    world = tmp_path_factory.mktemp("nw") / "w"
    argv = ["synth", "--format", "nuscenes", "--out", str(world), "--scenes", "2", "--frames", "2"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([*argv, "--image-size", "48", "80", "--sweeps", "2", "--beams", "8"]) == 0
    root = tmp_path_factory.mktemp("nt") / "nuscenes"
    root.mkdir()
    for name in (VERSION, "samples", "sweeps", "lidarseg", "maps"):
        shutil.copytree(world / name, root / name)
    return root


def _rows(root: Path, table: str) -> list:
    return json.loads((root / VERSION / f"{table}.json").read_text())


def _put(root: Path, table: str, value) -> None:
    (root / VERSION / f"{table}.json").write_text(json.dumps(value))


def _cut(root, table):
    f = root / VERSION / f"{table}.json"
    f.write_bytes(f.read_bytes()[:200])


def _without(field):
    def edit(root, table):
        _put(root, table, [{k: v for k, v in r.items() if k != field} for r in _rows(root, table)])

    return edit


CASES = {
    # table, how it is spoiled, what the line says after the table file's path
    "sample_data cut short": ("sample_data", _cut, r"not valid JSON"),
    "sample_data an object": (
        "sample_data",
        lambda r, t: _put(r, t, {"records": []}),
        r"holds a JSON object, not a list",
    ),
    "ego_pose numbers": ("ego_pose", lambda r, t: _put(r, t, [1, 2]), r"record \[0\] is a JSON number, not an object"),
    "sample without tokens": ("sample", _without("token"), r"record \[0\] has no 'token'"),
    "sample_data without prev": (
        "sample_data",
        _without("prev"),
        r"record \[0\] \(token '\w+'\) lacks the field 'prev'",
    ),
    "sample_data without its pose": (
        "sample_data",
        _without("ego_pose_token"),
        r"record \[0\] \(token '\w+'\) lacks the field 'ego_pose_token'",
    ),
    "lidarseg a record short": (
        "lidarseg",
        lambda r, t: _put(r, t, _rows(r, t)[:-1]),
        r"nuscenes-devkit cannot load this table \(AssertionError: .*label files but",
    ),
}


def _last_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err, "no error said"
    return err.splitlines()[-1]


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_nuscenes_table_is_named_by_its_own_file(case, tables, tmp_path, capsys):
    table, spoil, said = CASES[case]
    root = tmp_path / "nuscenes"
    shutil.copytree(tables, root)
    spoil(root, table)
    path = re.escape(f"{VERSION}/{table}.json")
    capsys.readouterr()
    with contextlib.redirect_stdout(io.StringIO()):
        rc = main(["prepare", "nuscenes", "--dataroot", str(root), "--out", str(tmp_path / "infos")])
    assert rc == 1
    line = _last_line(capsys)
    assert re.search(rf"^occkit prepare: error: \S*{path}: {said}", line), line
    with contextlib.redirect_stdout(io.StringIO()):
        rc = main(["label", "--data", str(root), "--reader", "nuscenes", "--out", str(tmp_path / "labels")])
    assert rc == 1
    line = _last_line(capsys)
    assert re.search(rf"^occkit label: error: \S*{path}: {said}", line), line
    assert not (tmp_path / "infos").exists() and not (tmp_path / "labels" / "gts").exists()  # nothing written


def test_the_tables_unspoiled_prepare_and_label(tables, tmp_path):
    """The control: the same folder, every table as written, is read by both."""
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["prepare", "nuscenes", "--dataroot", str(tables), "--out", str(tmp_path / "infos")]) == 0
        assert main(["label", "--data", str(tables), "--reader", "nuscenes", "--out", str(tmp_path / "labels")]) == 0
