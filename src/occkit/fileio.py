"""Atomic file writes: write to a temporary file in the same folder, then rename over the target.

A crash mid-write leaves the previous file (or nothing) in place, never a torn one. Also the
readers shared by several layers: ``.npz`` with key checks, nuScenes-style info files
(:func:`read_info_list`, pickles unpickled with a restricted unpickler).
"""

from __future__ import annotations

import io as _io
import json
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np


def read_utf8_text(path: Path, what: str, error: type[Exception]) -> str:
    """The text of the file ``path`` (a ``what``: "ablation spec", "YAML file") read as UTF-8. A missing
    file raises ``FileNotFoundError``, bytes that are not UTF-8 raise ``error``: both name the file, the
    second also the line, the byte and its offset."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {what}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise error(
            f"{path}:{line}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); "
            f"save the {what} as UTF-8"
        ) from None


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(f)`` on a temporary binary file next to ``path``, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600; give the file the permissions a plain open() would (0666 & ~umask)
        os.fchmod(fd, 0o666 & ~_current_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def disk_nearly_full(folder: str | os.PathLike, margin: int = 64 << 20) -> bool:
    """Whether the disk of ``folder`` has less than ``margin`` bytes free (64 MiB): what tells a
    library's bare "write failed" (``torch.save``) on a full disk from other failures."""
    try:
        return shutil.disk_usage(folder).free < margin
    except OSError:
        return False


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int | None = 1) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=indent) + "\n")


def save_npz_atomic(path: str | os.PathLike, compressed: bool = True, **arrays: np.ndarray) -> Path:
    """``np.savez_compressed`` (or ``np.savez``) to ``path`` atomically."""
    buf = _io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return write_bytes_atomic(path, buf.getvalue())


def save_npy_atomic(path: str | os.PathLike, array: np.ndarray) -> Path:
    buf = _io.BytesIO()
    np.save(buf, array)
    return write_bytes_atomic(path, buf.getvalue())


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a missing or malformed file raises an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e


#: The first bytes of each kind of NumPy file: ``.npy`` its magic string, ``.npz`` a zip archive's.
_NUMPY_MAGIC = {".npy": b"\x93NUMPY", ".npz": b"PK"}


def numpy_read_error(path: str | os.PathLike, e: BaseException, kind: str) -> ValueError:
    """The one-line error of a ``kind`` (``.npy`` / ``.npz``) file NumPy could not read: a file that
    does not begin as one (a text file, an image, nothing) said as such, since NumPy then reports
    "pickled (object) data" and advises ``allow_pickle``, which is never the cure; else NumPy's reason."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        head = None
    magic = _NUMPY_MAGIC.get(kind)
    if head is not None and magic is not None and not head.startswith(magic):
        what = "it is empty" if not head else f"it begins with {head!r}, not {magic!r}"
        return ValueError(f"{path}: not a {kind} file ({what}; a damaged copy, or another kind of file?)")
    return ValueError(f"{path}: cannot read as {kind} ({type(e).__name__}: {e})")


def _retry_spurious_ast_error(read, tries: int = 3):
    """``read()``, again (up to ``tries`` times in all) when it raises CPython 3.11's spurious
    ``SystemError: AST constructor recursion depth mismatch``: NumPy parses each array's header with
    ``ast.literal_eval``, and on 3.11 that check can fail when threads parse at once (python/cpython
    gh-106905; occkit's readers run in threads, e.g. ``occkit eval``'s prefetch). The file is fine and
    nothing was read half, so reading it again is the cure; any other error passes through."""
    for attempt in range(tries):
        try:
            return read()
        except SystemError as e:
            if "AST constructor recursion depth mismatch" not in str(e) or attempt == tries - 1:
                raise


def load_npy(path: str | os.PathLike, what: str = "") -> np.ndarray:
    """Load an ``.npy`` (no pickles); a missing or unreadable file raises an error naming it
    (``what``: the kind of file, for the missing-file message)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {what + ' ' if what else ''}file")
    try:
        return _retry_spurious_ast_error(lambda: np.load(path, allow_pickle=False))
    except Exception as e:  # ValueError (pickled / corrupt), OSError, EOFError
        raise numpy_read_error(path, e, ".npy") from e


def load_npz(path: str | os.PathLike, keys: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Load an ``.npz`` into a dict (no pickles): every array, or with ``keys`` those arrays only
    (the others are not decompressed); missing file, corrupt file or missing keys raise an error
    naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")

    def read() -> tuple[list[str], list[str], dict[str, np.ndarray]]:
        with np.load(path, allow_pickle=False) as z:
            names = list(z.files)
            missing = [k for k in keys if k not in names]
            return names, missing, ({} if missing else {k: z[k] for k in (keys or names)})

    try:
        names, missing, out = _retry_spurious_ast_error(read)
    except Exception as e:  # zipfile.BadZipFile, ValueError, OSError, EOFError ...
        raise numpy_read_error(path, e, ".npz") from e
    if missing:
        raise KeyError(f"{path}: missing arrays {missing} (has {sorted(names)})")
    return out


FILE_SUMS = "files.json"
"""Beside files written one folder at a time (a prior cache's frame, a pseudo-label frame):
``{name: {"size": bytes, "sha256": hex}}`` of each, written after them; a resumed run keeps
the files only when every one matches it (:func:`files_intact`)."""


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_sums(root: str | os.PathLike, rels: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``{rel: {"size", "sha256"}}`` of the files ``root/rel``: what a resumable writer records
    beside its output so that a later run can tell a finished file from a damaged one
    (:func:`sums_match`)."""
    root = Path(root)
    return {str(r): {"size": (root / r).stat().st_size, "sha256": sha256_file(root / r)} for r in rels}


def sums_match(root: str | os.PathLike, sums: Any) -> bool:
    """Whether every file a :func:`file_sums` record names is under ``root`` with the size and
    checksum recorded: a missing, zero-byte, truncated or changed file (or a record that is not one)
    means it is redone."""
    if not isinstance(sums, dict):
        return False
    root = Path(root)
    for rel, want in sums.items():
        p = root / rel
        if not isinstance(want, dict) or not p.is_file() or p.stat().st_size != want.get("size"):
            return False
        if sha256_file(p) != want.get("sha256"):
            return False
    return True


def record_files(files: Sequence[Path]) -> None:
    """Write the size and checksum of files of one folder (:data:`FILE_SUMS`, atomically)."""
    folder = Path(files[0]).parent
    write_json_atomic(folder / FILE_SUMS, file_sums(folder, [Path(p).name for p in files]))


def files_intact(files: Sequence[Path]) -> bool:
    """Whether files of one folder are all there with the size and checksum recorded when they
    were written: a missing, zero-byte, truncated or changed file (or no record: output from
    before records, or a run killed between the files and the record) means they are redone."""
    folder = Path(files[0]).parent
    try:
        sums = json.loads((folder / FILE_SUMS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(sums, dict):
        return False
    return sums_match(folder, {Path(p).name: sums.get(Path(p).name) for p in files})


def publish_folder(tmp: str | os.PathLike, final: str | os.PathLike, old: str | os.PathLike) -> Path:
    """Put the finished folder ``tmp`` (``mkdtemp``, mode 0700) in place as ``final`` with the mode
    ``mkdir`` would give (0777 & ~umask): renamed over nothing, or, when ``final`` exists, the old
    one first renamed to ``old`` (a hidden name beside it), then removed. A crash leaves either
    folder whole at ``final``."""
    tmp, final, old = Path(tmp), Path(final), Path(old)
    mask = _current_umask()
    os.chmod(tmp, 0o777 & ~mask)
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    return final


class _InfoUnpickler(pickle.Unpickler):
    """Unpickles only plain containers and numpy arrays (what nuScenes info files hold)."""

    _ALLOWED = {
        ("collections", "OrderedDict"),
        ("collections", "defaultdict"),
        ("builtins", "dict"),
        ("builtins", "list"),
        ("builtins", "tuple"),
        ("builtins", "set"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED or (module == "numpy" and name in {"float64", "float32", "int64", "int32"}):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from an info file")


PREPARED_INFOS = "infos.json"
"""The file in a folder ``occkit prepare nuscenes`` wrote: an info file (``{"infos": [...], ...}``)."""


def read_info_file(path: str | os.PathLike, what: str = "info file") -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The raw frame dicts of a nuScenes-style info file, and the file's other top-level entries
    (``{}`` for a bare list): a ``.json``, a ``.pkl`` read with a restricted unpickler (containers
    and numpy arrays only), or a folder ``occkit prepare nuscenes`` wrote (its ``infos.json``),
    holding a list of frames or ``{"infos": [...]}`` / ``{"data_list": [...]}``. Errors name the
    file (``what`` says whose)."""
    path = Path(path)
    if path.is_dir():
        if not (path / PREPARED_INFOS).is_file():
            raise FileNotFoundError(
                f"{path}: a folder without {PREPARED_INFOS} ({what}: an info file, or a folder occkit prepare nuscenes "
                "wrote)"
            )
        path = path / PREPARED_INFOS
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such info file ({what})")
    try:
        if path.suffix == ".json":
            import json

            data = json.loads(path.read_text(encoding="utf-8"))
        else:
            with path.open("rb") as f:
                data = _InfoUnpickler(f).load()
    except pickle.UnpicklingError as e:
        if str(e).startswith("refusing to load"):  # _InfoUnpickler: a class other than plain containers
            raise ValueError(
                f"{path}: cannot read info file: it pickles an object of class {str(e).split()[3]}, and occkit "
                "unpickles only lists, dicts and numpy arrays (an info file of another tool's classes: save it as "
                "plain containers, or as .json)"
            ) from None
        raise ValueError(
            f"{path}: cannot read info file: a damaged or cut-short pickle, or not a pickle ({e})"
        ) from None
    except EOFError as e:
        raise ValueError(f"{path}: cannot read info file: the pickle ends early or the file is empty ({e})") from None
    except Exception as e:
        raise ValueError(f"{path}: cannot read info file ({type(e).__name__}: {e})") from e
    meta: dict[str, Any] = {}
    if isinstance(data, dict):
        meta = {k: v for k, v in data.items() if k not in ("infos", "data_list")}
        key = "infos" if "infos" in data else "data_list" if "data_list" in data else None
        if key is None:
            raise ValueError(
                f"{path}: a mapping without 'infos' or 'data_list' (it holds {_some(list(data))}): not an info file "
                "(a list of frames, or {'infos': [...]})"
            )
        data = data[key]
        if not isinstance(data, list):
            raise ValueError(f"{path}: '{key}' is {_kind(data)}, not a list of frames")
    elif not isinstance(data, list):
        raise ValueError(f"{path}: holds {_kind(data)}, not a list of frames or a mapping with 'infos'")
    seen: dict[str, int] = {}
    for i, f in enumerate(data):
        if not isinstance(f, dict):  # a frame is a mapping of its fields (token, lidar2ego_*, ...)
            raise ValueError(
                f"{path}: frame {i} is {type(f).__name__} {str(f)[:40]!r}, not a mapping of the frame's fields "
                "(token, lidar2ego_translation, ...)"
            )
        # every reader keys the frames by token: one that is not text, or listed twice, is said here
        token = info_text(f, "token", f"{path}: frame {i}")
        if token in seen:
            raise ValueError(f"{path}: token {token} is listed twice (frames {seen[token]} and {i})")
        seen[token] = i
    return data, meta


def _kind(v: Any) -> str:
    """``v``'s type and the start of its text, for a message: ``list ['a', 'b']``."""
    return f"{type(v).__name__} {str(v)[:40]!r}"


def _some(names: list[Any]) -> str:
    return ", ".join(map(str, names[:5])) + (" ..." if len(names) > 5 else "") if names else "nothing"


def info_where(path: str | os.PathLike, i: int, frame: dict[str, Any]) -> str:
    """``PATH: frame I (token T)``: the start of a message about a frame of an info file."""
    token = frame.get("token")
    return f"{path}: frame {i}" + (f" (token {token})" if isinstance(token, str) else "")


def info_text(frame: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    """``frame[key]`` of an info file: non-empty text (a token, a scene, a file path), or a one-line
    ``ValueError`` starting with ``where`` (a number, a list or None there is refused, not turned into
    the text ``"None"``); ``default`` where the frame lacks ``key`` (None: required)."""
    if key not in frame:
        if default is not None:
            return default
        raise ValueError(f"{where}: no '{key}'")
    v = frame[key]
    if not isinstance(v, str) or (not v and default is None):
        raise ValueError(
            f"{where}: '{key}' is {_kind(v)}, not " + ("text" if default is not None else "a non-empty text")
        )
    return str(v)


def info_timestamp(frame: dict[str, Any], where: str, default: int) -> int:
    """``frame["timestamp"]`` of an info file: a whole number of microseconds (``default`` where the
    frame has none), or a one-line ``ValueError`` starting with ``where`` (text, a boolean, a NaN or
    a fraction refused: they used to fail in ``int()`` naming no file, or be read as 1 µs)."""
    if "timestamp" not in frame:
        return default
    v = frame["timestamp"]
    if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        return int(v)
    if isinstance(v, (float, np.floating)) and np.isfinite(v) and float(v).is_integer():
        return int(v)
    raise ValueError(f"{where}: 'timestamp' is {_kind(v)}, not a whole number of microseconds")


def info_array(frame: dict[str, Any], key: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    """``frame[key]`` of an info file as a finite float64 array of ``shape`` (a rotation matrix, a
    translation), or a one-line ``ValueError`` starting with ``where`` naming the field."""
    if key not in frame:
        raise ValueError(f"{where}: no '{key}'")
    try:
        a = np.asarray(frame[key], dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: '{key}' is {_kind(frame[key])}, not numbers ({e})") from None
    if a.shape != shape:
        want = "x".join(map(str, shape))
        raise ValueError(f"{where}: '{key}' has shape {'x'.join(map(str, a.shape)) or 'scalar'}, not {want}")
    if not np.isfinite(a).all():
        raise ValueError(f"{where}: '{key}' is not finite ({a.ravel().tolist()})")
    return a


def read_info_list(path: str | os.PathLike, what: str = "info file") -> list[dict[str, Any]]:
    """The raw frame dicts of a nuScenes-style info file (:func:`read_info_file`, without the rest)."""
    return read_info_file(path, what)[0]


def _resolved(p: str | os.PathLike) -> Path:
    try:
        return Path(p).expanduser().resolve()
    except RuntimeError as e:  # Python < 3.13: "Symlink loop from ..."
        raise ValueError(
            f"{p}: a loop of symbolic links (each points on to the next and back); give a real folder's path"
        ) from e


def check_not_dangling(out: str | os.PathLike, what: str = "--out") -> None:
    """Refuse an ``out`` that is a symbolic link to nothing: ``exists()`` is false there, so a command
    took it for a new path and failed with "File exists" once all the work was done."""
    o = Path(out)
    if o.is_symlink() and not o.exists():
        _resolved(o)  # a loop of links is said as one
        raise FileExistsError(
            f"{what} {o}: a symbolic link to {os.readlink(o)}, which does not exist; nothing can be written there: "
            "give another path, or remove the link (or make what it points to)"
        )


class OutsideOutput(ValueError):
    """A path built from a name in the data (a frame token, a scene, a camera, a file name in a
    table, the path a format package's writer returns) that leads outside the folder being
    written: refused before anything is written there (:func:`path_under`)."""


def path_under(
    root: str | os.PathLike,
    *parts: Any,
    what: str = "a name in the data",
    shown: str | os.PathLike | None = None,
    tail: str = "occkit writes only under its output folder: nothing was written there",
) -> Path:
    """``root / parts...`` for names that come from the data, refused in one line
    (:class:`OutsideOutput`, naming ``what``, e.g. ``"W/annotations.json: frame token 'x'"``) unless
    they stay under ``root``: each part a non-empty string (or path) with no NUL byte, not absolute,
    no ``..`` component, and the folders of the joined path, once resolved, inside ``root``
    resolved (a link in ``root`` to a folder elsewhere is an escape). The last component is not
    followed: an atomic write replaces a link there, never writes through it. ``shown``: the folder
    the messages name (``--out`` when ``root`` is a hidden folder beside it)."""
    shown = root if shown is None else shown
    names: list[str] = []
    for part in parts:
        if isinstance(part, os.PathLike):
            part = os.fspath(part)
        if not isinstance(part, str) or not part or "\0" in part:
            raise OutsideOutput(
                f"{what}: {part!r} is not a name occkit can write under --out {shown} (an empty name, a NUL byte "
                f"or not text); {tail}"
            )
        names.append(part)
    rel = Path(*names) if names else Path(".")
    if any(Path(n).is_absolute() for n in names):
        raise OutsideOutput(f"{what}: names {rel}, which lies outside --out {shown} (an absolute path); {tail}")
    if ".." in rel.parts:
        raise OutsideOutput(f"{what}: names {rel}, which lies outside --out {shown} (it climbs out with ..); {tail}")
    base = Path(root).resolve()
    full = (Path(root) / rel).parent.resolve() / rel.name if rel.name else base
    if base == full:
        raise OutsideOutput(f"{what}: {rel} names --out {shown} itself, not a file in it; {tail}")
    if base not in full.parents:
        raise OutsideOutput(
            f"{what}: {rel} resolves to {full}, outside --out {shown} (a folder there links elsewhere); {tail}"
        )
    return Path(root) / rel
