"""Child processes that end with the process that started them.

Linux only (``prctl(PR_SET_PDEATHSIG)``); elsewhere nothing is set. Used by the ablation runner
for its subprocesses and by ``occkit eval`` for its counting processes, so that stopping the
command (SIGTERM, SIGKILL, a closed terminal) never leaves work running.
"""

from __future__ import annotations

import os
import sys


def die_with_parent(parent: int, sig: int) -> None:
    """In a child: have the kernel send ``sig`` when its parent dies; exit at once if the parent
    (pid ``parent``) died before the setting took effect. A no-op where ``prctl`` is missing."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return
    prctl(1, sig, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)
