"""One lock for every writer (issue 79): each command that writes an ``--out`` takes the lock beside
it (``occkit.locks.output_lock``); a second writer of the same folder, of the same command or of
another, is refused at once in one line naming the holder (process, command, start time), and the
first one's output is left as it was. The lock is held here by the test process itself, so that no
test races two slow commands. A lock file that is not what occkit writes is refused in one line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from occkit.cli import main
from occkit.locks import LockInvalid, lock_path, output_lock


def _refusal(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    return err


def _snapshot(folder: Path) -> dict[str, bytes]:
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _held_by_us(out: Path, command: str, argv: list[str], capsys) -> str:
    """Run ``argv`` while this process holds ``out``'s lock as occkit ``command``; its one-line refusal."""
    before = _snapshot(out)
    lock = output_lock(out, command)
    try:
        assert main(argv) == 1
    finally:
        lock.release()
    err = _refusal(capsys)
    assert f"is locked by process {os.getpid()} (occkit {command}, since " in err, err
    assert "which still runs" in err
    assert _snapshot(out) == before  # the holder's output untouched
    assert not lock_path(out).exists()  # released by the holder, never removed by the refused command
    return err


def test_generate_is_refused_while_another_writer_holds_its_out(tmp_path, capsys):
    out = tmp_path / "gen"
    argv = ["generate", "--ckpt", str(tmp_path / "run"), "--data", str(tmp_path / "data"), "--out", str(out)]
    err = _held_by_us(out, "generate", [*argv, "--n", "1"], capsys)
    assert err.startswith(f"occkit generate: error: --out {out}: {out} is locked")


def test_pseudolabel_is_refused_while_another_writer_holds_its_out(tmp_path, capsys):
    out = tmp_path / "pl"
    argv = ["pseudolabel", "--data", str(tmp_path / "d"), "--priors", str(tmp_path / "p"), "--out", str(out)]
    _held_by_us(out, "pseudolabel", argv, capsys)


def test_predict_is_refused_while_a_synth_writes_its_out(tmp_path, capsys):
    out = tmp_path / "pred"
    argv = ["predict", "--ckpt", str(tmp_path / "run"), "--data", str(tmp_path / "d"), "--out", str(out)]
    _held_by_us(out, "synth", argv, capsys)  # another command than predict: refused the same


def test_render_is_refused_while_another_writer_holds_its_out(tiny_occ3d_root, tmp_path, capsys):
    ann = json.loads((tiny_occ3d_root / "annotations.json").read_text())
    token = next(iter(next(iter(ann["scene_infos"].values()))))
    out = tmp_path / "render"
    out.mkdir()
    (out / "mine.txt").write_text("the first render's")
    argv = ["render", "--data", str(tiny_occ3d_root), "--token", token, "--out", str(out), "--no-picture"]
    _held_by_us(out, "render", argv, capsys)


def test_train_is_refused_while_synth_writes_the_same_folder(tmp_path, capsys):
    out = tmp_path / "run"  # synth writes beside it (.run.partial): the folder does not exist yet
    argv = ["train", "synth-cpu", "--data", str(tmp_path / "data"), "--out", str(out)]
    _held_by_us(out, "synth", argv, capsys)
    assert not out.exists()  # was: train made the folder, and synth's finished world was hidden in .run.partial


def test_a_writer_inside_an_output_being_written_is_refused(tmp_path, capsys):
    import socket
    import subprocess
    import sys

    from occkit.locks import process_start

    world = tmp_path / "world"  # an occkit synth (another process) writes it now
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        rec = {"pid": other.pid, "start": process_start(other.pid), "host": socket.gethostname(), "command": "synth"}
        lock_path(world).write_text(json.dumps({**rec, "since": "2026-01-01 00:00:00"}))
        out = world / "pred"
        argv = ["predict", "--ckpt", str(tmp_path / "run"), "--data", str(tmp_path / "d"), "--out", str(out)]
        assert main(argv) == 1
        err = _refusal(capsys)
        assert f"--out {out}: lies inside {world}, which process {other.pid} (occkit synth, since 2026-01-01" in err
        assert not world.exists()  # was: the folder made, and synth's finished world hidden in .world.partial
    finally:
        other.kill()
        other.wait()
    # its own process (or a parent: occkit ablate running occkit train) may write inside what it locked
    lock = output_lock(world, "synth")
    try:
        output_lock(world / "sub", "export").release()
    finally:
        lock.release()


def test_a_lock_file_that_is_not_occkit_s_is_refused_in_one_line(tmp_path, capsys):
    out = tmp_path / "world"
    args = ["synth", "--out", str(out), "--scenes", "1", "--frames", "1", "--image-size", "32", "88"]
    for content, why in (("[1, 2]", "JSON list"), ('{"pid": "x"}', "pid is str 'x'"), ("7", "JSON int")):
        lock_path(out).write_text(content)
        assert main(args) == 1  # was AttributeError: 'list' object has no attribute 'get' (a traceback)
        err = _refusal(capsys)
        assert f"occkit synth: error: {lock_path(out)}: not a lock file occkit writes ({why}" in err, err
        assert lock_path(out).read_text() == content and not out.exists()
    with pytest.raises(LockInvalid):
        output_lock(out, "train")


def test_a_train_lock_that_is_not_occkit_s_is_refused_in_one_line(tmp_path, capsys):
    from occkit.commands.train import TRAIN_LOCK
    from occkit.outputs import mark_output

    run = tmp_path / "run"
    mark_output(run, "train")
    (run / TRAIN_LOCK).write_text('["not", "a", "lock"]')
    assert main(["train", "synth-cpu", "--data", str(tmp_path / "data"), "--out", str(run)]) == 1
    err = _refusal(capsys)
    assert f"{run / TRAIN_LOCK}: not a lock file occkit writes (JSON list" in err, err
    assert not lock_path(run).exists()  # the lock beside the run, taken first, released on the refusal


def test_a_stale_lock_of_any_writer_is_taken_over(tmp_path):
    import socket
    import subprocess
    import sys

    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True).stdout)
    out = tmp_path / "out"
    lock_path(out).write_text(json.dumps({"pid": dead, "start": "0", "host": socket.gethostname(), "command": "x"}))
    lock = output_lock(out, "convert")
    try:
        rec = json.loads(lock_path(out).read_text())
        assert rec["pid"] == os.getpid() and rec["command"] == "convert" and rec["since"]
    finally:
        lock.release()
    assert not lock_path(out).exists()


def test_priors_run_is_refused_while_another_writer_holds_its_out(synth_root, tmp_path, capsys):
    out = tmp_path / "priors"
    argv = ["priors", "run", "--data", str(synth_root), "--out", str(out), "--prior", "oracle", "--no-progress"]
    lock = output_lock(out, "priors run")
    try:
        assert main([*argv, "--max-frames", "1"]) == 1
    finally:
        lock.release()
    err = _refusal(capsys)
    assert f"is locked by process {os.getpid()} (occkit priors run, since " in err, err
    assert not any(out.rglob("*.npy")) and not any(out.rglob("*.npz"))  # no frame written


# ---------------------------------------- issue 89: any pid, any file type, any foreign content
def _foreign_locks(tmp_path: Path):
    """(what, make(path)) of lock paths that are not occkit's: each must be refused by name."""
    import socket
    import time

    def absurd_pid(p: Path) -> None:
        p.write_text(json.dumps({"pid": 10**30, "start": None, "host": None, "command": "synth"}))

    def negative_pid(p: Path) -> None:
        p.write_text(json.dumps({"pid": -1, "start": None}))

    def fifo(p: Path) -> None:
        os.mkfifo(p)

    def sock(p: Path) -> None:
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(p))
        s.close()

    def folder(p: Path) -> None:
        p.mkdir()
        (p / "inside").write_text("x")

    def binary(p: Path) -> None:
        p.write_bytes(bytes(range(256)))
        os.utime(p, (time.time() - 60, time.time() - 60))

    def other_tools(p: Path) -> None:  # another tool's lock: its pid as text, an hour old
        p.write_text("12345\n")
        os.utime(p, (time.time() - 3600, time.time() - 3600))

    return [
        ("absurd pid", absurd_pid, "pid 1000000000000000000000000000000 is no process id"),
        ("negative pid", negative_pid, "pid -1 is no process id"),
        ("fifo", fifo, "a named pipe (FIFO)"),
        ("socket", sock, "a socket"),
        ("folder", folder, "a folder"),
        ("binary", binary, "not JSON"),
        ("another tool's", other_tools, "JSON int"),
    ]


def _in_a_thread(argv: list[str], limit: float = 120.0) -> int:
    """``occkit ARGV`` in this process, on a thread: a lock read that waited for ever fails here
    (the thread left blocked, a daemon), it does not hang the suite."""
    import threading

    rc: list[int] = []
    worker = threading.Thread(target=lambda: rc.append(main(argv)), daemon=True)
    worker.start()
    worker.join(limit)
    assert not worker.is_alive(), f"occkit {argv[0]} still waits after {limit} s"
    return rc[0]


@pytest.mark.parametrize("case", range(7), ids=lambda i: ["pid", "neg", "fifo", "sock", "dir", "bin", "txt"][i])
def test_a_lock_path_of_any_kind_or_content_is_refused_by_name_never_deleted_never_waited_on(tmp_path, case, capsys):
    """In this process (a thread with a time limit); the named pipe, the one a blocking read would wait
    on for ever, also through ``python -m occkit`` in a child process: its exit code and stderr."""
    import subprocess
    import sys
    import time

    what, make, words = _foreign_locks(tmp_path)[case]
    out = tmp_path / "world"
    lock = lock_path(out)
    make(lock)
    mode = os.lstat(lock).st_mode
    args = ["synth", "--out", str(out), "--scenes", "1", "--frames", "1", "--image-size", "32", "88"]
    t0 = time.monotonic()
    capsys.readouterr()
    rc, err = _in_a_thread(args), capsys.readouterr().err.strip()
    if what == "fifo":
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src"), "OMP_NUM_THREADS": "1"}
        proc = subprocess.run(
            [sys.executable, "-m", "occkit", *args], capture_output=True, text=True, timeout=120, env=env
        )
        assert (proc.returncode, proc.stderr.strip()) == (rc, err), (what, proc.stderr)
    assert rc == 1 and len(err.splitlines()) == 1, (what, err)
    assert f"{lock}: not a lock file occkit writes" in err and words in err, (what, err)
    assert "internal error" not in err and "Traceback" not in err
    assert os.lstat(lock).st_mode == mode and not out.exists()  # the lock path is left as it was
    with pytest.raises(LockInvalid, match="not a lock file occkit writes"):
        t1 = time.monotonic()
        output_lock(out, "convert")
    assert time.monotonic() - t1 < 1.0  # in-process: refused within a second
    assert time.monotonic() - t0 < 240


def test_a_lock_of_no_json_made_this_instant_is_busy_not_stale(tmp_path):
    """An empty lock file a second old is an occkit command taking it now (it writes the record right
    after creating the file): refused as busy, not taken over or deleted."""
    from occkit.locks import LockBusy

    out = tmp_path / "world"
    lock_path(out).write_text("")
    with pytest.raises(LockBusy, match="a process that is taking it now"):
        output_lock(out, "synth")
    assert lock_path(out).read_text() == ""
