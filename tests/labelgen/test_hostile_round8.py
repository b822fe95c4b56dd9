"""Cases of the eighth hostile round (issue 105) met by the label command's own checks: each refused in one line
naming the option or file, before any folder is made, and never answered in another command's words."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket

import numpy as np

from occkit.cli import main


def _refused(argv: list[str], capsys) -> str:
    capsys.readouterr()
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def _scans(tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    for i in range(2):
        np.save(folder / f"{i:06d}.npy", np.array([[5.0, 0, -1.8], [6.0, 1, -1.8]], np.float32))
    (folder / "poses.txt").write_text("1 0 0 0 0 1 0 0 0 0 1 0\n1 0 0 1 0 1 0 0 0 0 1 0\n")
    return folder


def test_a_reversed_grid_range_is_called_reversed_not_a_fraction_of_voxels(tmp_path, capsys):
    folder, out = _scans(tmp_path), tmp_path / "lab"
    err = _refused(["label", "--data", str(folder), "--out", str(out), "--grid", "0.4 40 -40 -1 -40 40 5.4"], capsys)
    assert "the x range 40.0 .. -40.0 is empty or reversed" in err and "whole number" not in err, err
    assert not out.exists()


def test_write_rig_and_out_together_are_refused(tmp_path, capsys):
    folder = _scans(tmp_path)
    err = _refused(["label", "--data", str(folder), "--out", str(tmp_path / "a"), "--write-rig", str(tmp_path / "b")],
                   capsys)  # fmt: skip
    assert "--write-rig and --out: give one" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_coordinate_named_as_the_label_field_is_refused(tmp_path, capsys):
    folder = _scans(tmp_path)
    err = _refused(["label", "--data", str(folder), "--out", str(tmp_path / "a"), "--label-field", "x"], capsys)
    assert "--label-field x: a coordinate of the points, not a field of labels" in err, err


def test_a_lock_taken_on_another_host_is_not_said_to_be_running(tmp_path, capsys):
    from occkit.locks import lock_path

    folder, out = _scans(tmp_path), tmp_path / "lab"
    lock = lock_path(out)
    lock.parent.mkdir(parents=True, exist_ok=True)
    other = socket.gethostname() + "-elsewhere"
    lock.write_text(json.dumps({"pid": os.getpid(), "host": other, "command": "label", "since": "2026-11-29"}))
    err = _refused(["label", "--data", str(folder), "--out", str(out)], capsys)
    assert f"on host {other}" in err and "which this host cannot see (it may still run)" in err, err
    assert "which still runs" not in err
