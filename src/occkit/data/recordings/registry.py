"""The recording readers of ``occkit label --data``: occkit's own (``occkit/data/recordings/<module>.py``
holding ``READER``), then those of installed packages (entry point group ``occkit.recordings``), found
once. A package whose entry point fails to load or is not a :class:`RecordingReader` is named in one
warning line and left out."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from occkit.data.recordings.spec import ENTRY_POINT_GROUP, ReaderOption, Recording, RecordingReader
from occkit.registries import in_tree

_REGISTRY: dict[str, RecordingReader] | None = None


def _found() -> dict[str, RecordingReader]:
    global _REGISTRY
    if _REGISTRY is not None:
        return _REGISTRY
    import occkit.data.recordings as pkg

    found: list[tuple[RecordingReader, str]] = in_tree(pkg, "READER", frozenset({"spec", "registry"}))
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        where = f"entry point {ep.name} = {ep.value} (group {ENTRY_POINT_GROUP})"
        try:
            reader = ep.load()
        except Exception as e:  # noqa: BLE001 - a broken package is named, not fatal
            print(f"occkit: warning: {where}: cannot be loaded ({type(e).__name__}: {e}); left out", file=sys.stderr)
            continue
        if not isinstance(reader, RecordingReader):
            print(f"occkit: warning: {where}: not a RecordingReader; left out", file=sys.stderr)
            continue
        found.append((reader, where))
    readers: dict[str, RecordingReader] = {}
    for reader, where in found:
        if reader.name in readers:
            print(f"occkit: warning: {where}: reader name {reader.name!r} is taken; left out", file=sys.stderr)
            continue
        readers[reader.name] = reader
    _REGISTRY = dict(sorted(readers.items(), key=lambda kv: (kv[1].priority, kv[0])))
    return _REGISTRY


def readers() -> dict[str, RecordingReader]:
    """Every reader by name, in detection order."""
    return dict(_found())


def get_reader(name: str) -> RecordingReader:
    r = _found()
    if name not in r:
        raise ValueError(f"--reader {name!r}: not a recording reader (one of {', '.join(r)})")
    return r[name]


def reader_options() -> list[tuple[RecordingReader, ReaderOption]]:
    """Every reader's command-line options, each flag once (a flag two readers declare is one option)."""
    seen: set[str] = set()
    out = []
    for reader in _found().values():
        for opt in reader.options:
            if opt.flag not in seen:
                seen.add(opt.flag)
                out.append((reader, opt))
    return out


def detect_reader(path: Path) -> tuple[RecordingReader, str]:
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
    source: str | Path, reader: str | None = None, options: Mapping[str, Any] | None = None
) -> Recording:
    """The recording at ``source`` opened by ``reader`` (None: the one that detects it) with ``options``."""
    path = Path(source)
    r = get_reader(reader) if reader else detect_reader(path)[0]
    return r.open(path, dict(options or {}))
