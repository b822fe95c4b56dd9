"""What a conversion will do before any frame: the target format (one that can be written) and how
the source's class ids become the target's (:class:`ClassConversion`, through a class map or the
identity)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from occkit.formats.classmap import DROPPED, ClassMap, class_map_names, load_class_map
from occkit.formats.registry import format_names, formats, get_format
from occkit.formats.spec import ConvertError, DatasetFormat


def writable_formats() -> tuple[str, ...]:
    """The formats ``occkit convert`` writes (those with a label writer)."""
    return tuple(n for n, f in formats().items() if f.writers.label_writer is not None)


def target_format(name: str) -> DatasetFormat:
    """The format ``--to`` names; an unknown one lists the formats, one that cannot be written says so."""
    if name not in formats():
        raise ConvertError(f"--to {name}: not a format (the formats: {', '.join(format_names())})")
    fmt = get_format(name)
    if fmt.writers.label_writer is None:
        raise ConvertError(
            f"--to {name}: occkit convert cannot write {fmt.display_name} (the format has no label writer); "
            f"it writes {', '.join(writable_formats())}"
        )
    return fmt


@dataclass
class ClassConversion:
    """Source class id -> target class id (``lut``, 255 = the target's ignore value), and what it loses.

    Attributes:
        lut: ``(256,)`` uint8.
        dropped: source class ids whose voxels become ignored.
        merged: target id -> the source ids written as it, where more than one.
        split: target id -> the target classes its common class gathers, where more than one (the
            conversion writes the first).
        class_map: the map's file, or None (one class table).
    """

    lut: np.ndarray
    dropped: tuple[int, ...] = ()
    merged: dict[int, tuple[int, ...]] = field(default_factory=dict)
    split: dict[int, tuple[str, ...]] = field(default_factory=dict)
    class_map: Path | None = None


def _same_table(a: DatasetFormat, b: DatasetFormat) -> bool:
    return a.classes.names == b.classes.names and a.classes.free == b.classes.free


def _map_joins(cm: ClassMap, src: DatasetFormat, dst: DatasetFormat) -> bool | None:
    """True: ``cm`` maps ``src`` -> ``dst`` as written; False: reversed; None: it joins other tables."""
    a, b = get_format(cm.source), get_format(cm.target)
    if _same_table(a, src) and _same_table(b, dst):
        return True
    if _same_table(a, dst) and _same_table(b, src):
        return False
    return None


def find_class_map(src: DatasetFormat, dst: DatasetFormat) -> str:
    """The one shipped class map joining the two class tables; none or several is a one-line error."""
    found = []
    for name in class_map_names():
        try:
            if _map_joins(load_class_map(name), src, dst) is not None:
                found.append(name)
        except (ValueError, KeyError, FileNotFoundError):
            continue
    if len(found) == 1:
        return found[0]
    if not found:
        raise ConvertError(
            f"no class map joins {src.name}'s classes and {dst.name}'s (occkit's: {', '.join(class_map_names())}): "
            "write one (docs/DATASET.md, 'Converting between layouts') and pass --class-map FILE"
        )
    raise ConvertError(f"several class maps join {src.name} and {dst.name} ({', '.join(found)}): pass --class-map NAME")


def class_conversion(src: DatasetFormat, dst: DatasetFormat, class_map: str | os.PathLike | None) -> ClassConversion:
    """How ``src``'s class ids become ``dst``'s: the identity for one class table (unless a map is
    given), else through ``class_map`` (or the one shipped map joining the tables)."""
    ignore = 255 if dst.classes.ignore is None else dst.classes.ignore
    if class_map is None and _same_table(src, dst):
        lut = np.full(256, ignore, np.uint8)
        lut[: src.classes.num_classes] = np.arange(src.classes.num_classes)
        return ClassConversion(lut)
    cm = load_class_map(class_map if class_map is not None else find_class_map(src, dst))
    forward = _map_joins(cm, src, dst)
    if forward is None:
        raise ConvertError(
            f"{cm.path}: joins {cm.source} and {cm.target}, not {src.name}'s classes and {dst.name}'s "
            f"(--class-map for this conversion maps {src.name} to {dst.name} or back)"
        )
    s_lut = cm.source_lut if forward else cm.target_lut
    t_members = cm.target_members if forward else cm.source_members
    dst_ids = {n: i for i, n in enumerate(dst.classes.names)}
    lut = np.full(256, ignore, np.uint8)
    dropped, into, split = [], {}, {}
    for i in range(src.classes.num_classes):
        k = int(s_lut[i])
        if k == DROPPED:
            dropped.append(i)
            continue
        members = t_members[k]
        lut[i] = dst_ids[members[0]]
        into.setdefault(int(lut[i]), []).append(i)
        if len(members) > 1:
            split[int(lut[i])] = members
    merged = {t: tuple(s) for t, s in into.items() if len(s) > 1}
    return ClassConversion(lut, tuple(dropped), merged, split, cm.path)
