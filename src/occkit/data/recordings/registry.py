"""The recording readers of ``occkit label --data``: occkit's own (``occkit/data/recordings/<module>.py``
holding ``READER``, a :class:`RecordingReader` subclass), then those of installed packages (entry point
group ``occkit.recordings``), found once. A package whose entry point fails to load or is not a
:class:`RecordingReader` subclass is named in one warning line and left out. An opened recording is
kept per process (:func:`open_recording`): a worker labelling several scenes opens it once."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from occkit.data.recordings.spec import ENTRY_POINT_GROUP, RecordingReader
from occkit.registries import in_tree

_REGISTRY: dict[str, type[RecordingReader]] | None = None
#: Recordings opened in this process, by ``(reader, resolved source, options, scenes)``.
_OPENED: dict[str, RecordingReader] = {}


def _is_reader(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, RecordingReader) and bool(obj.name)


def _found() -> dict[str, type[RecordingReader]]:
    global _REGISTRY
    if _REGISTRY is not None:
        return _REGISTRY
    import occkit.data.recordings as pkg

    found: list[tuple[type[RecordingReader], str]] = in_tree(pkg, "READER", frozenset({"spec", "registry"}))
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        where = f"entry point {ep.name} = {ep.value} (group {ENTRY_POINT_GROUP})"
        try:
            reader = ep.load()
        except Exception as e:  # noqa: BLE001 - a broken package is named, not fatal
            print(f"occkit: warning: {where}: cannot be loaded ({type(e).__name__}: {e}); left out", file=sys.stderr)
            continue
        if not _is_reader(reader):
            print(f"occkit: warning: {where}: not a RecordingReader subclass with a name; left out", file=sys.stderr)
            continue
        found.append((reader, where))
    readers: dict[str, type[RecordingReader]] = {}
    for reader, where in found:
        if reader.name in readers:
            print(f"occkit: warning: {where}: reader name {reader.name!r} is taken; left out", file=sys.stderr)
            continue
        readers[reader.name] = reader
    _REGISTRY = dict(sorted(readers.items(), key=lambda kv: (kv[1].priority, kv[0])))
    return _REGISTRY


def readers() -> dict[str, type[RecordingReader]]:
    """Every reader by name, in detection order."""
    return dict(_found())


def get_reader(name: str) -> type[RecordingReader]:
    r = _found()
    if name not in r:
        raise ValueError(f"--reader {name!r}: not a recording reader (one of {', '.join(r)})")
    return r[name]


def detect_reader(path: Path) -> tuple[type[RecordingReader], str]:
    """The reader that claims ``path`` and why; a one-line error naming every reader when none does."""
    if not path.exists():
        raise FileNotFoundError(f"--data {path}: no such file or folder")
    for reader in _found().values():
        why = reader.detect(path)
        if why:
            return reader, why
    names = "; ".join(f"{r.name}: {r.description}" for r in _found().values())
    raise ValueError(f"--data {path}: not a recording occkit label reads ({names}); --reader NAME says which")


def open_recording(
    source: str | Path,
    reader: str | None = None,
    options: Mapping[str, Any] | None = None,
    scenes: list[str] | None = None,
    keep: bool = False,
) -> RecordingReader:
    """The recording at ``source`` opened by ``reader`` (None: the one that detects it) with ``options``
    (its option values by field name) and the scenes asked for (None: all). ``keep``: the opened recording
    is kept for this process, so that a worker labelling several scenes of it opens it once."""
    import json

    path = Path(source)
    r = get_reader(reader) if reader else detect_reader(path)[0]
    if not keep:
        return r.open(path, dict(options or {}), scenes)
    key = json.dumps([r.name, str(path.resolve()), dict(options or {}), scenes], sort_keys=True, default=str)
    if key not in _OPENED:
        _OPENED.clear()  # one recording a worker at a time
        _OPENED[key] = r.open(path, dict(options or {}), scenes)
    return _OPENED[key]
