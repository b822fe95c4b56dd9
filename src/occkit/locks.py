"""A lock file per output, so that two commands never write the same thing at once: an ablation's
run and stage folders (``occkit ablate``), a training run's folder (``occkit train --out``), a
dataset or file written beside its ``--out`` and renamed into place (``occkit synth``,
``occkit export``; :func:`output_lock`).

The file holds JSON: the runner's process id and start time, and those of the child process it
is running (``occkit train`` ...). A lock whose processes have all ended (a runner killed with
``kill -9`` leaves its lock behind) is stale and is taken over; one held by a living process is
refused with :class:`LockBusy`, naming the process. Start times (from ``/proc``) tell a living
process from a later one that reuses its id.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from occkit.fileio import write_json_atomic


class LockBusy(RuntimeError):
    """The folder is locked by a process that still runs (the command line prints its message as one line)."""


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


def process_alive(pid: int | None, start: str | None = None) -> bool:
    """Whether process ``pid`` runs (and is the one that started at ``start``, when given)."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
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
    ) -> None:
        self.path = Path(path)
        self.what = what
        self.hint = hint
        self.folder = Path(folder) if folder is not None else self.path.parent
        self.held = False
        self._record: dict[str, Any] = {}

    def holder(self) -> dict[str, Any] | None:
        """The lock file's record, or None when there is none (or it is unreadable)."""
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}

    def busy(self) -> str | None:
        """A description of the living holder of the lock, or None when it is free or stale."""
        rec = self.holder()
        if rec is None:
            return None
        if rec == {}:  # being written this instant, or torn
            try:
                fresh = time.time() - self.path.stat().st_mtime < 10
            except FileNotFoundError:
                return None
            return "a process that is taking it now" if fresh else None
        if rec.get("host") not in (None, socket.gethostname()):
            return f"process {rec.get('pid')} on host {rec.get('host')}"
        if process_alive(rec.get("child"), rec.get("child_start")):
            return f"process {rec.get('child')} (a child of runner {rec.get('pid')})"
        if process_alive(rec.get("pid"), rec.get("start")):
            return f"process {rec.get('pid')}"
        return None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                who = self.busy()
                if who is not None:
                    raise LockBusy(
                        f"{self.what}: {self.folder} is locked by {who}, which still runs ({self.hint}); "
                        f"not run twice (the lock: {self.path})"
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
                "since": time.strftime("%Y-%m-%d %H:%M:%S"),
            }
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(json.dumps(self._record))
            self.held = True
            return
        raise LockBusy(f"{self.what}: could not take {self.path}")

    def set_child(self, pid: int) -> None:
        """Record the child process now running for this folder."""
        if self.held:
            self._record.update(child=pid, child_start=process_start(pid))
            write_json_atomic(self.path, self._record, indent=None)

    def release(self) -> None:
        if self.held:
            self.held = False
            rec = self.holder()
            if rec and rec.get("pid") == os.getpid():
                try:
                    self.path.unlink()
                except FileNotFoundError:
                    pass

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def output_lock(out: str | os.PathLike, command: str) -> FolderLock:
    """The lock of an ``--out`` that ``occkit COMMAND`` writes beside itself and renames into place
    (a dataset folder, an exported file): ``.NAME.lock`` beside ``out``, taken (a
    :class:`LockBusy` names the process that holds it); release it when the command ends."""
    o = Path(out)
    lock = FolderLock(
        o.parent / f".{o.name}.lock", f"--out {o}", hint=f"another occkit {command} writing it?", folder=o
    )
    lock.acquire()
    return lock
