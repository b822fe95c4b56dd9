"""Where an output cannot go, and who holds a lock, said plainly: an ``--out`` under a file is refused
naming the file (not a bare "File exists"), and a lock held by a process id that runs names the id, the
host it was taken on and how to remove the lock when sure no occkit command writes there. docs/hardening.md."""

from __future__ import annotations

import json
import os
import socket

import pytest

from occkit.cli import main
from occkit.locks import lock_path

SYNTH = ["synth", "--scenes", "1", "--frames", "1", "--image-size", "32", "48"]


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("below", ["x", "x/y"])
def test_an_out_under_a_file_is_refused_naming_the_file(tmp_path, capsys, below):
    f = tmp_path / "notes.txt"
    f.write_text("mine")
    out = f / below
    assert main([*SYNTH, "--out", str(out)]) == 1
    err = _one_line(capsys)
    assert f"--out {out}: {f} is a file, not a folder" in err and "File exists" not in err
    assert f.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_the_lock_checks_refuse_an_out_under_a_file_for_every_writer(tmp_path):
    from occkit.locks import output_lock
    from occkit.outputs import check_writable_place

    f = tmp_path / "f"
    f.write_text("")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        check_writable_place(f / "out")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        output_lock(f / "a" / "out", "convert")


def test_a_lock_of_a_running_process_id_names_it_its_host_and_how_to_remove_the_lock(tmp_path, capsys):
    if not os.path.exists("/proc/1"):
        pytest.skip("no process 1 visible here")
    out = tmp_path / "d"
    lock = lock_path(out)
    host = socket.gethostname()
    rec = {"pid": 1, "start": None, "host": host, "child": None, "child_start": None, "command": None, "since": None}
    lock.write_text(json.dumps(rec))
    assert main([*SYNTH, "--out", str(out)]) == 1
    err = _one_line(capsys)
    assert "is locked by process 1, which still runs" in err
    assert f"taken by process 1 on host {host}; process 1 is the first process of the system" in err
    assert f"remove the lock and run again: rm {lock}" in err
    assert lock.is_file() and not out.exists()  # kept: occkit never deletes a lock of a process that runs


def test_demo_is_refused_while_a_synth_writes_its_out(tmp_path, capsys):
    """The demo takes --out's lock as every writer does: a synth writing there now is named, nothing mixed."""
    from occkit.locks import output_lock

    out = tmp_path / "demo"
    lock = output_lock(out, "synth")
    try:
        assert main(["demo", "--out", str(out)]) == 1
    finally:
        lock.release()
    err = _one_line(capsys)
    assert f"--out {out}: {out} is locked by process {os.getpid()} (occkit synth, since " in err, err
    assert not out.exists() and not lock.path.exists()
