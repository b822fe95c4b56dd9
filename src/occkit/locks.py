"""A lock file per output, so that two commands never write the same thing at once: an ablation's
run and stage folders (``occkit ablate``), a training run's folder (``occkit train --out``), a
dataset or file written beside its ``--out`` and renamed into place (``occkit synth``,
``occkit export``; :func:`output_lock`).

The file holds a JSON object: the runner's process id and start time, the command and when it
took the lock, and the child process it is running (``occkit train`` ...). A lock whose
processes have all ended (a runner killed with ``kill -9`` leaves its lock behind) is stale and
is taken over; one held by a living process is refused with :class:`LockBusy`, naming the
process, its command and when it started. Start times (from ``/proc``) tell a living process
from a later one that reuses its id. A lock file that is not such a record (a JSON list, a
process id that is not a number or no process id at all, content that is not JSON: another
tool's lock) is refused in one line naming it, and so is a lock path that is not a regular file (a
folder, a named pipe, a socket): occkit does not guess whether its writer still runs, never deletes
it, and never waits on it (:func:`read_lock_file`).

Every command that writes an ``--out`` takes :func:`output_lock` (``.NAME.lock`` beside it), so
that two writers of one folder, of one command or of two, never run at once; a writer into a
folder *inside* an output that another command is writing now is refused too.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from occkit.fileio import write_json_atomic


class LockBusy(RuntimeError):
    """The folder is locked by a process that still runs (the command line prints its message as one line)."""


class LockInvalid(ValueError):
    """A lock file that is not a record occkit writes (the command line prints its message as one line)."""


#: The fields of a lock record and the types each may have (None: not recorded).
_FIELDS: dict[str, tuple[type, ...]] = {
    "pid": (int,),
    "start": (str, type(None)),
    "host": (str, type(None)),
    "child": (int, type(None)),
    "child_start": (str, type(None)),
    "command": (str, type(None)),
    "since": (str, type(None)),
}


def check_record(rec: Any, path: str | os.PathLike) -> dict[str, Any]:
    """``rec`` (a lock file's parsed JSON) when it is a record occkit writes, else :class:`LockInvalid`
    naming ``path`` and what is wrong."""
    if not isinstance(rec, dict):
        raise LockInvalid(
            f"{path}: not a lock file occkit writes (JSON {type(rec).__name__}, expected an object with pid, start, "
            "host); if no occkit command is writing there now, delete it"
        )
    for key, types in _FIELDS.items():
        v = rec.get(key)
        if not isinstance(v, types) or isinstance(v, bool) or (key == "pid" and v is None):
            raise LockInvalid(
                f"{path}: not a lock file occkit writes ({key} is {type(v).__name__} {_short(v)}); if no occkit "
                "command is writing there now, delete it"
            )
        if key in ("pid", "child") and v is not None and not 0 < v <= MAX_PID:
            raise LockInvalid(
                f"{path}: not a lock file occkit writes ({key} {_short(v)} is no process id: they lie in "
                f"1..{MAX_PID}); if no occkit command is writing there now, delete it"
            )
    return rec


#: The largest process id a system gives (Linux's ``PID_MAX_LIMIT``); a lock naming a larger one is not occkit's.
MAX_PID = 1 << 22

#: A lock record is a line of JSON; a larger file is not one.
MAX_LOCK_BYTES = 64 << 10

#: How long a lock file that holds no JSON yet may be one being written this instant (seconds).
TORN_SECONDS = 10


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _kind(mode: int) -> str:
    """What a file that is not a regular file is, in words."""
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def read_lock_file(path: Path) -> dict[str, Any] | None:
    """The record of the lock file ``path``: None when there is none, ``{}`` when it holds no JSON
    yet and was made in the last :data:`TORN_SECONDS` (being written this instant), else the
    checked record (:func:`check_record`). Anything else is :class:`LockInvalid` naming it, and is
    never deleted: a folder, a pipe, a socket, a link or a device (never opened, so never waited
    on), a file too large to be a lock, one that is not JSON (another tool's lock), or a record of
    another shape."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    tail = "occkit leaves it alone: if no occkit command is writing there now, move it away"
    if not stat.S_ISREG(st.st_mode):
        raise LockInvalid(f"{path}: not a lock file occkit writes ({_kind(st.st_mode)}); {tail}")
    if st.st_size > MAX_LOCK_BYTES:
        raise LockInvalid(f"{path}: not a lock file occkit writes ({st.st_size} bytes, not a line of JSON); {tail}")
    try:  # not blocking, not following a link: a pipe put there since the check is read as empty, never waited on
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as f:
            data = f.read(MAX_LOCK_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise LockInvalid(f"{path}: cannot be read ({e.strerror or e}); {tail}") from None
    try:
        rec = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        if time.time() - st.st_mtime < TORN_SECONDS and (not data.strip() or data.lstrip().startswith(b"{")):
            return {}  # being written this instant (occkit writes the record right after creating the file)
        what = "empty" if not data.strip() else "not JSON: " + _short(data[:40])
        raise LockInvalid(f"{path}: not a lock file occkit writes ({what}); {tail}") from None
    return check_record(rec, path)


def process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot, from ``/proc``), or None where
    ``/proc`` is not available or the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def _lineage() -> set[int]:
    """This process's id and those of its parents (from ``/proc``; only this process's id where it
    is not available): a command run by an occkit command (``occkit ablate`` running ``occkit
    train``) may write inside the output its parent locked."""
    pids, pid = {os.getpid()}, os.getppid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def process_alive(pid: int | None, start: str | None = None) -> bool:
    """Whether process ``pid`` runs (and is the one that started at ``start``, when given)."""
    if not pid or not 0 < int(pid) <= MAX_PID:
        return False
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        pass
    if _zombie(int(pid)):
        return False
    if start is not None:
        now = process_start(int(pid))
        if now is not None and now != start:
            return False
    return True


class FolderLock:
    """``with FolderLock(path):`` or :meth:`acquire` / :meth:`release`; see the module docstring.

    Args:
        path: the lock file.
        what: starts the refusal's message.
        hint: who the holder probably is, in the refusal.
        folder: what is locked, in the refusal (default: the lock file's folder).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        what: str,
        hint: str = "another occkit ablate?",
        folder: str | os.PathLike | None = None,
        command: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.what = what
        self.hint = hint
        self.folder = Path(folder) if folder is not None else self.path.parent
        self.command = command
        self.held = False
        self._record: dict[str, Any] = {}

    def holder(self) -> dict[str, Any] | None:
        """The lock file's record, None when there is none, ``{}`` when it cannot be read (being
        written this instant, or torn); :class:`LockInvalid` when it is JSON but not a lock record."""
        return read_lock_file(self.path)

    def busy(self) -> str | None:
        """A description of the living holder of the lock (its process, command and start), or None
        when it is free or stale."""
        rec = self.holder()
        if rec is None:
            return None
        if rec == {}:  # being written this instant (read_lock_file refuses an older file that holds no record)
            return "a process that is taking it now"
        what = ""
        if rec.get("command"):
            what = f"occkit {rec['command']}" + (f", since {rec['since']}" if rec.get("since") else "")
        elif rec.get("since"):
            what = f"since {rec['since']}"
        if rec.get("host") not in (None, socket.gethostname()):
            return f"process {rec.get('pid')} on host {rec.get('host')}" + (f" ({what})" if what else "")
        if process_alive(rec.get("child"), rec.get("child_start")):
            return f"process {rec.get('child')} (a child of runner {rec.get('pid')}" + (f", {what})" if what else ")")
        if process_alive(rec.get("pid"), rec.get("start")):
            return f"process {rec.get('pid')}" + (f" ({what})" if what else "")
        return None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                who = self.busy()
                if who is not None:
                    hint = "" if "occkit " in who else f" ({self.hint})"  # the record names its command
                    runs = "which this host cannot see (it may still run)" if " on host " in who else "which still runs"
                    raise LockBusy(
                        f"{self.what}: {self.folder} is locked by {who}, {runs}{hint}; "
                        f"not run twice (the lock: {self.path}{self._taken_where()}). If you are sure no occkit "
                        f"command writes there now (a process id is reused once its process ends), remove the "
                        f"lock and run again: rm {shlex.quote(str(self.path))}"
                    ) from None
                try:
                    self.path.unlink()  # stale: its processes ended
                except FileNotFoundError:
                    pass
                continue
            pid = os.getpid()
            self._record = {
                "pid": pid,
                "start": process_start(pid),
                "host": socket.gethostname(),
                "child": None,
                "child_start": None,
                "command": self.command,
                "since": time.strftime("%Y-%m-%d %H:%M:%S"),
            }
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(json.dumps(self._record))
            self.held = True
            return
        raise LockBusy(f"{self.what}: could not take {self.path}")

    def _taken_where(self) -> str:
        """Where the lock's record says it was taken (its host), and a word on a process id 1 (the first
        process of the system or of a container: a reused id more often than an occkit command)."""
        try:
            rec = self.holder() or {}
        except LockInvalid:
            return ""
        host = rec.get("host")
        where = f", taken by process {rec.get('pid')} on host {host}" if host else ""
        if 1 in (rec.get("pid"), rec.get("child")):
            where += "; process 1 is the first process of the system or of its container"
        return where

    def set_child(self, pid: int) -> None:
        """Record the child process now running for this folder."""
        if self.held:
            self._record.update(child=pid, child_start=process_start(pid))
            write_json_atomic(self.path, self._record, indent=None)

    def mine(self) -> bool:
        """Whether the lock file is this process's own (taken here, by this process)."""
        try:
            rec = self.holder()
        except LockInvalid:  # replaced by something else: not ours
            return False
        return bool(rec) and rec.get("pid") == os.getpid() and rec.get("host") in (None, socket.gethostname())

    def release(self) -> None:
        if self.held:
            self.held = False
            if self.mine():
                try:
                    self.path.unlink()
                except FileNotFoundError:
                    pass

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def lock_path(out: str | os.PathLike) -> Path:
    """The lock file of an output ``out``: ``.NAME.lock`` beside it (``out`` made absolute, so that
    ``.`` and ``run/`` lock the folder they name)."""
    o = Path(os.path.abspath(out))
    return o.parent / f".{o.name}.lock"


def output_lock(out: str | os.PathLike, command: str) -> FolderLock:
    """The lock of an ``--out`` that ``occkit COMMAND`` writes (a dataset folder, a run, an exported
    file): ``.NAME.lock`` beside ``out``, taken; a :class:`LockBusy` names the process that holds
    it, its command and when it started. An ``out`` inside an output that another command is
    writing now is refused as well (a ``.lock`` of a living process beside a folder above it).
    Release it when the command ends."""
    o = Path(os.path.abspath(out))
    above = next((p for p in o.parents if p.exists() or p.is_symlink()), None)
    if above is not None and not above.is_dir():  # mkdir would say a bare "File exists"
        raise NotADirectoryError(f"--out {out}: {above} is a file, not a folder, so no folder can be made under it")
    mine = _lineage()
    for parent in o.parents:
        if parent == parent.parent:
            break
        above = FolderLock(lock_path(parent), "")
        rec = above.holder()
        if not rec or rec.get("pid") in mine:  # none, torn, or this command's own (or its parent's)
            continue
        who = above.busy()
        if who is not None:
            raise LockBusy(
                f"--out {out}: lies inside {parent}, which {who} writes now; not written into (the lock: {above.path})"
            )
    lock = FolderLock(
        lock_path(o), f"--out {out}", hint=f"another occkit {command} writing it?", folder=o, command=command
    )
    lock.acquire()
    return lock


@contextmanager
def locked_output(out: str | os.PathLike, command: str) -> Iterator[FolderLock]:
    """``with locked_output(out, COMMAND):`` :func:`output_lock` held for the block, released after."""
    lock = output_lock(out, command)
    try:
        yield lock
    finally:
        lock.release()
