"""Where a command may write: one set of rules for every ``--out``.

- A folder is wanted where a file is (or the reverse): refused.
- An ``--out`` equal to, inside, or holding one of the command's inputs (the dataset it reads,
  the cache, the run): refused, ``--overwrite`` or not.
- A non-empty folder is written into only when the same command made it: its record
  (:data:`OUTPUT_RECORD`, written when the command starts in a new or empty folder) or an older
  marker of that command says so. A folder of anything else, or of another command, is refused,
  ``--overwrite`` or not: nothing of the user's is ever overwritten.
- A single file (a picture, a report, an exported model) is written over an existing file only
  when occkit's record of that folder (:data:`FILES_RECORD`) says the same command wrote it and
  its size and checksum still match: a file of the user's, one changed since, or one of another
  command is refused (:func:`check_output_file`, :func:`record_output_file`).
- :func:`staged_folder` writes a folder whole: into a hidden temporary folder beside ``--out``,
  renamed into place at the end, so a failed command leaves no folder that looks like a result.
  Every file of such a folder is recorded (:func:`record_folder_files`); an ``--overwrite``
  replaces the folder only when each file in it is still one the command recorded
  (:func:`check_own_files`), else it refuses naming the first that is not.

The errors are ``FileExistsError`` (something is in the way) and ``ValueError`` (the path is
wrong), each naming ``--out`` and what is wrong; the command line prints them in one line.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# path_under and OutsideOutput live in occkit.fileio (the formats' declarations use them, and this module
# reads the format registry): named here too, where the docs and packages know them
from occkit.fileio import OutsideOutput as OutsideOutput
from occkit.fileio import _resolved, check_not_dangling, publish_folder
from occkit.fileio import path_under as path_under

OUTPUT_RECORD = ".occkit-output.json"
"""The record a writing command leaves in its output folder: ``{"command": ..., "occkit": ...}``."""

#: Commands whose output is a dataset (another command's ``--data``).
DATASET_COMMANDS = ("synth", "pseudolabel", "generate")

#: Files that a caller (``occkit ablate``) puts in a folder before it runs a command there; they
#: neither make the folder foreign nor count as content.
CALLER_FILES = ("ablate.lock", "ablate.json", "stage.lock", "*.log")


def check_not_inside_inputs(
    out: str | os.PathLike, inputs: Mapping[str, str | os.PathLike | None], what: str = "--out"
) -> None:
    """Refuse ``out`` equal to, inside, or holding an input (``{"--data": path, ...}``)."""
    o = _resolved(out)
    for name, p in inputs.items():
        if p is None:
            continue
        i = _resolved(p)
        if o == i:
            raise ValueError(f"{what} {out}: the same folder as {name} (an input); choose a new folder outside it")
        if i in o.parents:
            raise ValueError(
                f"{what} {out}: lies inside {name} {p} (an input, which a command never writes into); "
                "choose a folder outside it"
            )
        if o in i.parents:
            raise ValueError(f"{what} {out}: holds {name} {p} (an input); choose a folder that does not contain it")


def read_output_record(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The folder's :data:`OUTPUT_RECORD`, or None (missing or unreadable)."""
    path = Path(folder) / OUTPUT_RECORD
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def _content(folder: Path, ignore: tuple[str, ...]) -> list[str]:
    pats = CALLER_FILES + ignore + (OUTPUT_RECORD,)
    return [p.name for p in folder.iterdir() if not any(fnmatch.fnmatch(p.name, pat) for pat in pats)]


def check_writable_place(out: str | os.PathLike, what: str = "--out") -> None:
    """Refuse, before any work, an ``out`` whose nearest existing folder above it (where the
    command makes its folder, or its hidden folder beside it) is not writable, or that lies under a
    file (which ``mkdir`` answered with a bare "File exists")."""
    o = Path(out).absolute()
    place = o.parent
    while not place.exists() and place != place.parent:
        place = place.parent
    if place.exists() and not place.is_dir():
        raise NotADirectoryError(f"{what} {out}: {place} is a file, not a folder, so no folder can be made under it")
    if place.is_dir() and not os.access(place, os.W_OK | os.X_OK):
        raise PermissionError(
            f"{what} {out}: {place} is not writable, so nothing can be written there; nothing was "
            "generated: choose a folder you can write to"
        )


def mark_output(out: str | os.PathLike, command: str, **extra: Any) -> Path:
    """Write ``out``'s :data:`OUTPUT_RECORD` (creating ``out``): the folder is occkit COMMAND's."""
    from occkit import __version__
    from occkit.fileio import write_json_atomic

    o = Path(out)
    o.mkdir(parents=True, exist_ok=True)
    return write_json_atomic(o / OUTPUT_RECORD, {"command": command, "occkit": __version__, **extra})


FILES_RECORD = ".occkit-files.json"
"""In a folder where occkit wrote single files: ``{name: {"command", "size", "sha256"}}`` of each,
updated after each write; what lets a command replace its own earlier file and never a user's."""


def _files_record(folder: Path) -> dict[str, Any]:
    try:
        rec = json.loads((folder / FILES_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return rec if isinstance(rec, dict) else {}


def file_writer(path: str | os.PathLike) -> str | None:
    """The occkit command that wrote the file ``path``, when the record of its folder says so and
    the file still has the recorded size and checksum; else None (the user's, or changed since)."""
    from occkit.fileio import sha256_file

    p = Path(path)
    want = _files_record(p.parent).get(p.name)
    if not isinstance(want, dict) or not p.is_file():
        return None
    if p.stat().st_size != want.get("size") or sha256_file(p) != want.get("sha256"):
        return None
    cmd = want.get("command")
    return cmd if isinstance(cmd, str) else None


def record_output_file(path: str | os.PathLike, command: str) -> Path:
    """Record that occkit COMMAND wrote the file ``path`` (its size and SHA-256) in the folder's
    :data:`FILES_RECORD`, atomically. Two commands writing into one folder at the same moment may
    drop each other's entry: the file is then treated as the user's (refused, never lost)."""
    from occkit.fileio import sha256_file, write_json_atomic

    p = Path(path)
    rec = _files_record(p.parent)
    rec[p.name] = {"command": command, "size": p.stat().st_size, "sha256": sha256_file(p)}
    write_json_atomic(p.parent / FILES_RECORD, rec)
    return p


def write_json_output(path: str | os.PathLike, obj: Any, command: str) -> Path:
    """Write occkit COMMAND's JSON output ``obj`` to ``path`` atomically and record it
    (:func:`record_output_file`)."""
    from occkit.fileio import write_json_atomic

    return record_output_file(write_json_atomic(path, obj), command)


def _walk_files(folder: Path, ignore: tuple[str, ...] = ()) -> Iterator[str]:
    """Relative POSIX paths of the files (and links) under ``folder``, sorted, without occkit's own
    records and the files a caller puts there (:data:`CALLER_FILES`, ``ignore``) at its top."""
    top = CALLER_FILES + ignore + (OUTPUT_RECORD, FILES_RECORD, ".partial.json")
    for root, dirs, files in os.walk(folder):
        rel_root = Path(root).relative_to(folder)
        if rel_root == Path("."):  # a hidden folder the command fills there (a mount point's) is not walked
            dirs[:] = [d for d in dirs if not any(fnmatch.fnmatch(d, pat) for pat in ignore)]
        dirs.sort()
        for name in sorted(files) + sorted(d for d in dirs if (Path(root) / d).is_symlink()):
            rel = (rel_root / name).as_posix()
            if rel_root == Path(".") and any(fnmatch.fnmatch(name, pat) for pat in top):
                continue
            yield rel


def record_folder_files(folder: str | os.PathLike, command: str) -> Path:
    """Record every file under ``folder`` as occkit COMMAND's (relative path, size, SHA-256) in the
    folder's :data:`FILES_RECORD`: what lets an ``--overwrite`` later replace the folder, and only
    when nothing else was put in it since (:func:`check_own_files`)."""
    from occkit.fileio import sha256_file, write_json_atomic

    f = Path(folder)
    rec = _files_record(f)
    for rel in _walk_files(f):
        p = f / rel
        if p.is_symlink():  # a link the command made (occkit label's to the recording's images): its target
            rec[rel] = {"command": command, "link": os.readlink(p)}
        elif p.is_file():
            rec[rel] = {"command": command, "size": p.stat().st_size, "sha256": sha256_file(p)}
    return write_json_atomic(f / FILES_RECORD, rec)


def check_own_files(
    folder: str | os.PathLike,
    command: str,
    what: str = "--out",
    ignore: tuple[str, ...] = (),
    legacy_files: Callable[[Path], set[str] | None] | None = None,
) -> None:
    """Before occkit COMMAND replaces (removes) its earlier output ``folder``: every file in it must
    be one the command recorded as its own (:func:`record_folder_files`) and unchanged since;
    otherwise ``FileExistsError`` naming the first file that is not, and nothing is touched.

    Args:
        legacy_files: for an output made before the record existed, the relative paths the
            command knows it wrote (e.g. the tokens a prediction's provenance lists); None: unknown.
    """
    from occkit.fileio import sha256_file

    f = Path(folder)
    if mount_point(f):  # the hidden folder a command fills inside a mount point is its own
        ignore = (*ignore, f".{f.name}.*.tmp", f".{f.name}{PARTIAL_SUFFIX}")
    rec = _files_record(f)
    known = legacy_files(f) if not rec and legacy_files is not None else None
    if not rec and known is None:
        first = next(iter(_walk_files(f, ignore)), None)
        if first is None:
            return
        raise FileExistsError(
            f"{what} {f}: an earlier output of occkit {command} that does not record its files (made by "
            f"an older occkit), so it cannot tell {first} from a file of yours; nothing is touched: move "
            "the folder away or delete it yourself, or choose a new folder"
        )
    for rel in _walk_files(f, ignore):
        p = f / rel
        if known is not None:
            ok = rel in known and p.is_file() and not p.is_symlink()
        else:
            want = rec.get(rel)
            ok = (
                isinstance(want, dict)
                and want.get("command") == command
                and p.is_symlink()
                and "link" in want
                and os.readlink(p) == want["link"]
            ) or (
                isinstance(want, dict)
                and want.get("command") == command
                and p.is_file()
                and not p.is_symlink()
                and p.stat().st_size == want.get("size")
                and sha256_file(p) == want.get("sha256")
            )
        if not ok:
            raise FileExistsError(
                f"{what} {f}: {rel} is not a file occkit {command} wrote there (or it was changed "
                "since); --overwrite replaces only the command's own files, and nothing is touched: move "
                "it out of the folder, or choose a new folder"
            )
    own = set(known) if known is not None else set(rec)
    for rel in _empty_folders(f, ignore):  # a folder of the user's holds no file, yet is the user's
        if not any(k.startswith(rel + "/") for k in own):
            raise FileExistsError(
                f"{what} {f}: {rel}/ is a folder occkit {command} did not make there (it holds no file of "
                "the command's); --overwrite replaces only the command's own files, and nothing is touched: "
                "move it out of the folder, or choose a new folder"
            )


def _empty_folders(folder: Path, ignore: tuple[str, ...] = ()) -> Iterator[str]:
    """Relative POSIX paths of the folders under ``folder`` that hold no file at any depth."""
    top = CALLER_FILES + ignore
    for root, dirs, files in os.walk(folder, topdown=False):
        rel = Path(root).relative_to(folder)
        if rel == Path(".") or any(fnmatch.fnmatch(rel.parts[0], pat) for pat in top):
            continue
        if not any(Path(r, n).is_file() or Path(r, n).is_symlink() for r, _, fs in os.walk(root) for n in fs):
            yield rel.as_posix()


def check_output_file(
    out: str | os.PathLike,
    inputs: Mapping[str, str | os.PathLike | None] | None = None,
    what: str = "--out",
    command: str | None = None,
    replace_own: bool = True,
) -> None:
    """A file output (a picture, a JSON report, an exported model): refuse a folder there, and a
    path that is, lies in, or holds an input (``inputs``). An existing file is refused unless
    occkit ``command`` wrote it (:func:`file_writer`), and then only with ``replace_own`` (a
    command's ``--overwrite``; a report or a picture is simply rewritten). ``command`` None skips
    that check (a caller that has its own)."""
    o = Path(out)
    check_not_dangling(o, what)
    if o.is_dir():
        raise FileExistsError(f"{what} {o}: is a folder; give a file's path")
    if o.parent.exists() and not o.parent.is_dir():
        raise FileExistsError(f"{what} {o}: {o.parent} is a file, not a folder")
    check_not_inside_inputs(o, inputs or {}, what)
    check_writable_place(o, what)  # a read-only folder: refused before the work, not after it
    if command is None or not (o.exists() or o.is_symlink()):
        return
    by = file_writer(o)
    if by is None:
        raise FileExistsError(
            f"{what} {o}: the file exists and occkit did not write it (or it was changed since); "
            "nothing of yours is overwritten: give another path, or move the file away"
        )
    if by != command:
        raise FileExistsError(f"{what} {o}: written by occkit {by}, not occkit {command}; give another path")
    if not replace_own:
        raise FileExistsError(
            f"{what} {o}: exists (written by occkit {command} before); pass --overwrite to replace it"
        )


def _parent_ready(out: str | os.PathLike) -> Path:
    """``out`` as a Path, its parent created and the hidden folders a crash left beside it removed."""
    o = Path(out)
    try:
        o.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(f"--out {o}: cannot create {o.parent} ({e.strerror or e})") from e
    for stale in [*o.parent.glob(f".{o.name}.*.tmp"), *(o.glob(f".{o.name}.*.tmp") if mount_point(o) else [])]:
        if stale.is_dir() and not stale.is_symlink():  # a crashed run's (the caller holds --out's lock)
            shutil.rmtree(stale, ignore_errors=True)
    return o


def mount_point(o: Path) -> bool:
    """Whether ``o`` is an existing mount point (a freshly mounted disk): it cannot be renamed over
    ("Device or resource busy"), and the disk beside it may not be the one meant, so a command
    writes there in place (:func:`staged_folder`, :func:`resumable_folder`)."""
    return o.is_dir() and not o.is_symlink() and os.path.ismount(o)


def _record_and_publish(tmp: Path, o: Path, in_place: bool, command: str, record: dict[str, Any]) -> None:
    """Add the record to the finished ``tmp`` and put it in place of ``o``: moved up into ``o`` when
    that is a mount point (``in_place``), else renamed over it. Only the command's own earlier files
    in ``o`` are ever removed (files put there while the command ran are not)."""
    mark_output(tmp, command, **record)
    record_folder_files(tmp, command)
    if in_place:
        _publish_in_place(tmp, o, command)
        return
    if o.exists():
        check_own_files(o, command)
    publish_folder(tmp, o, o.parent / f".{o.name}.old.tmp")


def _publish_in_place(tmp: Path, o: Path, command: str) -> None:
    """Put the finished ``tmp`` (a hidden folder inside the mount point ``o``) in place: the
    command's own earlier files in ``o`` (checked first) are removed, ``tmp``'s entries moved up."""
    hidden = (tmp.name, f".{o.name}.*.tmp", f".{o.name}{PARTIAL_SUFFIX}")
    if _content(o, hidden):
        check_own_files(o, command, ignore=hidden)  # only the command's own earlier files are removed
        for p in o.iterdir():
            if p != tmp and not any(fnmatch.fnmatch(p.name, pat) for pat in hidden + CALLER_FILES):
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    for p in list(tmp.iterdir()):
        os.replace(p, o / p.name)
    tmp.rmdir()


PARTIAL_SUFFIX = ".partial"
"""A resumable command's folder in the making: ``.NAME.partial`` beside ``--out``."""


def _partial_owner(part: Path, command: str) -> Any:
    """The key of the work a command's folder in the making ``part`` holds (its ``.partial.json``),
    None when it holds none yet (an empty folder: a stop before the record); refused in one line
    (``FileExistsError``) when ``part`` is not a folder occkit ``command`` left there: a link, a
    folder without its record, a record that is not an object, or another command's."""
    key_file = part / ".partial.json"
    if part.is_symlink() or not part.is_dir():
        raise FileExistsError(
            f"{part}: is in the way (not a folder occkit {command} made there); nothing is touched: move it away"
        )
    if not key_file.is_file():
        if any(part.iterdir()):
            raise FileExistsError(
                f"{part}: a hidden folder without the record occkit {command} keeps in its folder in the making "
                "(.partial.json): not its own, so nothing in it is touched; move it away"
            )
        return None
    try:
        rec = json.loads(key_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise FileExistsError(
            f"{key_file}: not the record occkit {command} writes ({e}); nothing in {part} is touched: move it away"
        ) from e
    if not isinstance(rec, dict) or rec.get("command") != command:
        what = f"JSON {type(rec).__name__}" if not isinstance(rec, dict) else f"command {rec.get('command')!r}"
        raise FileExistsError(
            f"{key_file}: not the record occkit {command} writes ({what}); nothing in {part} is touched: move it away"
        )
    return rec.get("key")


@contextmanager
def resumable_folder(
    out: str | os.PathLike, command: str, key: Any, keep_on_error: bool = True, **record: Any
) -> Iterator[tuple[Path, bool]]:
    """As :func:`staged_folder`, but the folder being filled (``.NAME.partial`` beside ``out``) is
    kept when the work stops, so the same command again continues it; yields ``(folder,
    resumed)``. ``key`` (JSON) identifies the work: a partial folder left by other work of the same
    command (another key) is removed and started again; one the command did not leave (no record of
    its own in it) is refused, never removed. ``keep_on_error`` False: a failure (an exception, not
    a stop) removes the folder, so that nothing hidden is left behind (``occkit prepare``: its
    failures are in its input, which a rerun changes); a failure before anything was written in it
    (bad input refused) removes it too."""
    from occkit.fileio import write_json_atomic

    o = _parent_ready(out)
    in_place = mount_point(o)  # a mount point is filled where it is, never renamed
    part = (o if in_place else o.parent) / f".{o.name}{PARTIAL_SUFFIX}"
    key_file = part / ".partial.json"
    key = json.loads(json.dumps(key))
    earlier = _partial_owner(part, command) if (part.exists() or part.is_symlink()) else None
    resumed = part.is_dir() and earlier == key
    if part.exists() and not resumed:
        if earlier is not None and not _holds_only(part, key_file):
            import warnings

            warnings.warn(
                f"{part}: a stopped run of occkit {command} there was of other work (its input or options changed "
                "since): its files are removed and the work starts anew",
                stacklevel=3,
            )
        shutil.rmtree(part)  # checked above: this command's own folder in the making, of other work
    part.mkdir(exist_ok=True)
    write_json_atomic(key_file, {"command": command, "key": key})
    try:
        yield part, resumed
    except Exception:
        if not keep_on_error or _holds_only(part, key_file):  # nothing done to resume: no hidden folder left
            shutil.rmtree(part, ignore_errors=True)
        raise
    key_file.unlink()
    _record_and_publish(part, o, in_place, command, record)


def _holds_only(folder: Path, record: Path) -> bool:
    """Whether ``folder`` holds nothing but ``record`` (a folder in the making its work never wrote to)."""
    try:
        return [p.name for p in folder.iterdir()] in ([record.name], [])
    except OSError:
        return False


@contextmanager
def staged_folder(out: str | os.PathLike, command: str, **record: Any) -> Iterator[Path]:
    """Write a folder whole: yields a new hidden folder beside ``out`` (``.NAME.*.tmp``) to fill;
    on success the record is added and it replaces ``out`` (which must have passed
    :func:`check_output_folder`); on any failure it is removed and ``out`` is left as it was.
    Hidden folders a crash left beside ``out`` are removed first."""
    o = _parent_ready(out)
    in_place = mount_point(o)  # a mount point is filled where it is, never renamed
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{o.name}.", suffix=".tmp", dir=o if in_place else o.parent))
    except OSError as e:
        raise OSError(f"--out {o}: cannot create a folder in {o.parent} ({e.strerror or e})") from e
    try:
        yield tmp
        _record_and_publish(tmp, o, in_place, command, record)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
