"""The ``occkit`` command: each subcommand is a thin call into the library.

Subcommands live in ``occkit.commands.<name>`` with ``add_arguments(parser)`` and
``run(args) -> int``; they are imported only when used, so ``occkit --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from occkit.commands import COMMANDS, build_parser  # the verbs' table and parser, re-exported here

#: OpenMP's wait policy for the ``occkit`` command unless the environment sets one. Threads that
#: spin while they wait (OpenMP's default) collapse when another job shares the cores: a synth-cpu
#: training step took 65.5 s with 2 spinning threads against 25.0 s with 2 passive ones and 22.9 s
#: with 1 thread, on 2 cores at load average 10-12 (BENCHMARKS.md, "Training (supervised)").
OMP_WAIT_POLICY = "PASSIVE"


def _option_before_command(argv: list[str]) -> str | None:
    """The one-line error for a command's option given before the command (``occkit --out X synth``,
    which argparse read as the command ``X``: "invalid choice"), or None."""
    if not argv or not argv[0].startswith("-") or argv[0] in ("-h", "--help", "--version"):
        return None
    names = {c[0] for c in COMMANDS}
    i = next((k for k, a in enumerate(argv) if a in names), None)
    if i is None:
        return None
    import shlex

    fixed = shlex.join([argv[i], *argv[:i], *argv[i + 1 :]])
    return f"occkit: error: {argv[0]} is an option of occkit {argv[i]} and goes after the command: occkit {fixed}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # --debug (anywhere; no subcommand has an option of that name): tracebacks of every error
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    # read by OpenMP when torch is first imported, which happens below (in the subcommands)
    os.environ.setdefault("OMP_WAIT_POLICY", OMP_WAIT_POLICY)
    misplaced = _option_before_command(argv)
    if misplaced is not None:
        print(misplaced, file=sys.stderr)
        return 2
    # Import only the module of the requested subcommand (plus cheap help for the rest).
    chosen = next((a for a in argv if not a.startswith("-")), None)
    commands = tuple(c for c in COMMANDS if c[0] == chosen) or COMMANDS
    if chosen is None or chosen not in {c[0] for c in COMMANDS}:
        parser = argparse.ArgumentParser(prog="occkit", description="3D semantic occupancy toolkit.")
        parser.add_argument("--version", action="store_true", help="print the version and exit")
        parser.add_argument(
            "--debug",
            action="store_true",
            help=f"show the traceback of every error (or set {DEBUG_ENV}=1); "
            "without it, bad input or a problem with files gives one line",
        )
        sub = parser.add_subparsers(dest="command", metavar="COMMAND")
        for name, _, help_text in COMMANDS:
            sub.add_parser(name, help=help_text)
        args = parser.parse_args(argv)
        if args.version:
            from occkit import __version__

            print(__version__)
            return 0
        parser.print_help()
        return 0
    built: list[argparse.ArgumentParser] = []
    # the parser asks the registry (a method's help): its warnings are one line and its errors too
    status = run_guarded(f"occkit {chosen}", lambda: built.append(build_parser(commands)), debug)
    if not built:
        return status
    parsed: list[argparse.Namespace] = []
    # --help asks the registry only now (train's list of methods): its warnings are one line here too
    status = run_guarded(f"occkit {chosen}", lambda: parsed.append(built[0].parse_args(argv)), debug)
    if not parsed:
        return status
    args = parsed[0]
    # a CPU torch beside a CUDA torchvision fails deep inside the first import of torchvision: said here, first
    from occkit import torch_pair

    mismatch = None if torch_pair.skip_check() else torch_pair.pair_problem()
    if mismatch is not None:
        print(f"occkit {args.command}: error: {mismatch}", file=sys.stderr)
        return 1
    return run_guarded(f"occkit {args.command}", lambda: importlib.import_module(args._module).run(args), debug)


#: Set (to anything but "" or "0") to see the traceback of every error, as ``--debug`` does.
DEBUG_ENV = "OCCKIT_DEBUG"


def user_error_message(e: BaseException) -> str | None:
    """The one-line message of an error caused by the user's input or environment, or None for
    what is a bug in occkit (whose traceback the user should see and report).

    Input and environment: files and folders (``OSError``: missing, in the way, permission
    denied, disk full, ...), values and shapes (``ValueError``, which occkit raises naming the
    file or argument; ``KeyError`` for a missing name), non-finite numbers (``FloatingPointError``,
    e.g. a training loss), memory (``MemoryError``, CUDA out of memory), an output another command
    writes now (``occkit.locks.LockBusy``), a torchvision that cannot load beside the installed torch
    (``occkit.torch_pair``). A full disk is said as such whatever raised it (an
    ``OSError``, or a library's error around one: an ONNX export's holds its whole graph)."""
    full = _disk_full(e)
    if full is not None:
        return full
    from occkit.torch_pair import broken_pair_message

    pair = broken_pair_message(e)  # torchvision's operators not loadable beside this torch: the install, not occkit
    if pair is not None:
        return pair
    if isinstance(e, FileNotFoundError):  # "not found" of a path that is there, as a loop or a dangling link
        link = _link_trouble(e.filename or str(e).split(": ", 1)[0])
        if link is not None:
            return link
    if isinstance(e, OSError):
        if e.filename is not None and e.strerror:
            where = f"{e.filename}" + (f" -> {e.filename2}" if e.filename2 is not None else "")
            return f"{where}: {e.strerror}"
        return str(e) or type(e).__name__
    if isinstance(e, KeyError):
        return _from_loader_worker(e, str(e.args[0]) if len(e.args) == 1 else str(e))
    if isinstance(e, (ValueError, FloatingPointError, MemoryError)):
        return _from_loader_worker(e, str(e) or type(e).__name__)
    if type(e).__name__ == "LockBusy":  # occkit.locks: another command writes the same output now
        return str(e)
    if type(e).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError (a RuntimeError)
        return f"out of memory: {str(e).splitlines()[0] if str(e) else ''}".rstrip()
    return None


def _link_trouble(path: object) -> str | None:
    """Why ``path`` cannot be opened when a symbolic link is to blame (a loop of links, or a link
    to nothing), in words; else None."""
    import errno

    if not isinstance(path, str) or not path:
        return None
    p = Path(path)
    try:
        p.resolve(strict=True)
    except RuntimeError:  # Python < 3.13: "Symlink loop from ..."
        return f"{path}: a loop of symbolic links (each points on to the next and back); give a real folder's path"
    except OSError as x:
        if x.errno == errno.ELOOP:
            return f"{path}: a loop of symbolic links (each points on to the next and back); give a real folder's path"
        if p.is_symlink():
            return f"{path}: a symbolic link to {os.readlink(p)}, which does not exist"
    return None


_DISK_FULL_WORDS = ("No space left on device", "Disk quota exceeded", "StorageFull", "os error 28", "os error 122")


def _disk_full(e: BaseException) -> str | None:
    """ "the disk is full ..." when ``e`` or an error it was raised from or during is ENOSPC (or
    EDQUOT), naming the file being written where it is known; else None."""
    import errno

    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        first = str(cur).splitlines()[0] if str(cur) else ""
        if (
            isinstance(cur, OSError)
            and cur.errno in (errno.ENOSPC, errno.EDQUOT)
            or any(w in str(cur) for w in _DISK_FULL_WORDS)
        ):
            where = getattr(cur, "filename", None)
            quota = "quota" in str(cur).lower() or getattr(cur, "errno", 0) == errno.EDQUOT
            return (
                ("the disk quota is exceeded" if quota else "the disk is full (No space left on device)")
                + (f" while writing {where}" if where else "")
                + ": free space there (or write elsewhere) and run the command again"
                + ("" if isinstance(cur, OSError) else f" [{type(cur).__name__}: {first[:160]}]")
            )
        cur = cur.__cause__ or cur.__context__
    return None


def _from_loader_worker(e: BaseException, msg: str) -> str:
    """The error's own message when a data loader worker raised it: torch re-raises it in the main
    process as ``Caught ValueError in DataLoader worker process 0. Original Traceback (...): ...``,
    the worker's traceback inside the message; the last line of which is the message occkit wrote."""
    if not msg.startswith("Caught ") or "Original Traceback" not in msg:
        return msg
    lines = msg.rstrip().splitlines()
    head = f"{type(e).__name__}: "
    for i in range(len(lines) - 1, 0, -1):
        if lines[i].startswith(head):
            return (
                " ".join(x.strip() for x in [lines[i][len(head) :], *lines[i + 1 :]] if x.strip())
                + " (in a data loader worker)"
            )
    return lines[-1].strip()


def run_guarded(prog: str, fn, debug: bool = False) -> int:
    """Run ``fn() -> int | None`` as a command: the exit status it returns; an error caused by
    the input or environment becomes one line ``PROG: error: ...`` on stderr and status 1 (the
    traceback too with ``debug`` or ``OCCKIT_DEBUG=1``); Ctrl-C status 130; any other exception
    is a bug in occkit and keeps its traceback."""
    import warnings

    debug = debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    format_warning = warnings.formatwarning
    if not debug:  # a warning is one line too: "PROG: warning: ..."
        warnings.formatwarning = lambda message, category, filename, lineno, line=None: f"{prog}: warning: {message}\n"
    try:
        return int(fn() or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        msg = user_error_message(e)
        if msg is None:
            print(
                f"{prog}: internal error (a bug in occkit; please report it with the traceback below)", file=sys.stderr
            )
            raise
        if debug:
            import traceback

            traceback.print_exc()
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return 1
    finally:
        warnings.formatwarning = format_warning


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
