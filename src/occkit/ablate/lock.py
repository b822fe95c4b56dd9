"""The lock files of an ablation's run and stage folders: :mod:`occkit.locks` (shared with
``occkit train``, ``synth`` and ``export``), re-exported here."""

from occkit.locks import FolderLock, LockBusy, output_lock, process_alive, process_start

__all__ = ["FolderLock", "LockBusy", "output_lock", "process_alive", "process_start"]
