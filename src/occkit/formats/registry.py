"""The dataset-format registry: occkit's own formats (``occkit/formats/<module>.py`` holding
``FORMAT``), then those of installed packages (entry point group ``occkit.datasets``), found once.

A package whose entry point fails to load, or is not a :class:`DatasetFormat`, or takes a name
already taken, is named in one warning line and left out; every other format works.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from occkit.deprecation import load_failure
from occkit.formats.spec import (
    ENTRY_POINT_GROUP,
    WORLDS,
    ClassTable,
    DatasetFormat,
    Detection,
    FormatScoring,
    PredictionFiles,
    Writers,
    _GuardedMetric,
    plugin_failure,
)
from occkit.geometry.grid import Grid
from occkit.registries import in_tree

#: The modules of occkit.formats that hold no format: the declarations, the registry, and the deprecated
#: aliases of modules that moved out (importing one warns: never imported to look for a format).
_SKIP = frozenset({"spec", "registry", "evaluate", "resample"})
_REGISTRY: dict[str, DatasetFormat] | None = None
#: The formats of packages left out when the registry was found, by name (the entry point's and the
#: format's), with why: ``--format NAME`` says it rather than only "not one of".
_LEFT_OUT: dict[str, str] = {}


class FormatRegistryError(ValueError):
    """A format is unknown, malformed or clashes with another; the message names where it comes from."""


class AmbiguousFormatError(FormatRegistryError):
    """A folder that two unrelated formats claim: never read as either without ``--format``."""


def _in_tree() -> list[tuple[DatasetFormat, str]]:
    import occkit.formats as pkg

    return in_tree(pkg, "FORMAT", _SKIP)


#: Whether the warning lines are kept back: in a process of the scoring loop, whose parent said them already.
_QUIET = False


def quiet() -> None:
    """Keep back this process's warning lines of packages left out, and of the old forms of occkit's API the
    packages use (a process of the scoring loop: the process that started it found the same registry and
    said them once)."""
    import warnings

    from occkit.deprecation import OccKitDeprecationWarning

    global _QUIET
    _QUIET = True
    warnings.filterwarnings("ignore", category=OccKitDeprecationWarning)


def _warn(msg: str) -> None:
    if not _QUIET:
        print(f"occkit: warning: {msg}", file=sys.stderr)


def _from_entry_points() -> list[tuple[DatasetFormat, str]]:
    found = []
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        where = f"entry point {ep.name} = {ep.value}" + (f" of {ep.dist.name}" if ep.dist is not None else "")
        try:
            spec = ep.load()
        except BaseException as e:  # noqa: BLE001 - a broken package (even one calling sys.exit) is named, not fatal
            if isinstance(e, KeyboardInterrupt):
                raise
            why = f"{where} (group {ENTRY_POINT_GROUP}): {load_failure(e)}"
            _warn(f"{why}; left out")
            _LEFT_OUT.setdefault(ep.name, why)
            continue
        found.append((spec, where))
    return found


def _check(spec: object, where: str) -> str | None:
    """Why ``spec`` is not a usable format, or None; a check that fails on what a package gave (a
    field of another type) is said as such, never raised."""
    if not isinstance(spec, DatasetFormat):
        return f"is a {type(spec).__name__}, not an occkit.formats.DatasetFormat"
    try:
        return _check_fields(spec)
    except Exception as e:  # noqa: BLE001 - a field of a package's format that is not what it says it is
        return f"cannot be checked ({type(e).__name__}: {e})"


#: The fields of a :class:`DatasetFormat` (``record.field``: of its record) that must be of a type, with the
#: type's name for the message; the records first, so that their fields can be read.
_FIELD_TYPES = {
    "classes": (ClassTable, "an occkit.formats.ClassTable"),
    "grid": (Grid, "an occkit.geometry.grid.Grid"),
    "predictions": (PredictionFiles, "an occkit.formats.PredictionFiles"),
    "detection": (Detection, "an occkit.formats.Detection"),
    "scoring": (FormatScoring, "an occkit.formats.FormatScoring"),
    "writers": (Writers, "an occkit.formats.Writers"),
    "summary": (str, "a str"),
    "title": (str, "a str"),
    "label_frame": (str, "a str"),
    "detection.priority": (int, "an int"),
    "detection.refines": (tuple, "a tuple of format names"),
    "splits": (tuple, "a tuple of split names"),
    "scoring.folder_options": (frozenset, "a frozenset"),
    "scoring.metric_names": (tuple, "a tuple of names"),
    "scoring.table_keys": (tuple, "a tuple of names"),
}


def _check_fields(spec: DatasetFormat) -> str | None:
    for path, (kind, said) in _FIELD_TYPES.items():
        record, _, attr = path.rpartition(".")
        value = getattr(getattr(spec, record) if record else spec, attr)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            return f"its {attr} is a {type(value).__name__}, not {said}"
    if not isinstance(spec.name, str) or not spec.name.replace("-", "_").isidentifier():
        return f"format name {spec.name!r} is not a name"
    if spec.modality not in ("multi-camera", "monocular"):
        return f"modality {spec.modality!r} is not 'multi-camera' or 'monocular'"
    if spec.world not in WORLDS:
        return f"world {spec.world!r} is not one of {', '.join(WORLDS)}"
    for attr, value in (("detect", spec.detection.detect), ("open", spec.open), ("metrics", spec.scoring.metrics)):
        if not callable(value):
            return f"{attr} is not callable"
    variants = spec.scoring.read_variants
    if not isinstance(variants, Mapping) or not all(callable(v) for v in variants.values()):
        return "its read_variants is not a mapping of option names to callables"
    for attr in ("write", "index", "read"):
        if not callable(getattr(spec.predictions, attr)):
            return f"predictions.{attr} is not callable"
    for name in (*spec.detection.refines, *spec.splits):
        if not isinstance(name, str):
            return f"its refines and splits are names, got {name!r}"
    try:
        spec.synthetic_lut()
    except ValueError as e:
        return str(e)
    return _metrics_disagree(spec)


def _metrics_disagree(spec: DatasetFormat) -> str | None:
    """How the format's metrics (built with their defaults) disagree with its class table: a class
    count, a free class, an ignore id or class names other than the table's; or None. A metric that
    says none of these (no ``num_classes``, ``free``, ``ignore_index``, ``class_names``) is
    taken at its word; one that cannot be built without options is left to the command that builds it."""
    table = spec.classes
    try:
        metrics = list(spec.scoring.metrics({}))
    except Exception:  # noqa: BLE001 - needs options (a device, a model's classes): named where it is built
        return None
    for m in metrics:
        name = getattr(m, "name", type(m).__name__)
        n = getattr(m, "num_classes", None)
        if n is not None and int(n) != table.num_classes:
            return f"its metric {name} counts {n} classes, its class table {table.num_classes}"
        free = getattr(m, "free", None)
        if free is not None and table.free is not None and int(free) != table.free:
            return f"its metric {name} takes class {free} as free, its class table's free id is {table.free}"
        ignore = getattr(m, "ignore_index", None)
        if ignore is not None and table.ignore is not None and int(ignore) != table.ignore:
            return f"its metric {name} leaves out id {ignore}, its class table's ignore id is {table.ignore}"
        names = getattr(m, "class_names", None)
        if names is not None and tuple(names) != tuple(table.names):
            return f"its metric {name} names the classes {tuple(names)}, its class table {tuple(table.names)}"
    return None


def formats() -> dict[str, DatasetFormat]:
    """Every format, by name: occkit's own (in module order), then installed packages'."""
    global _REGISTRY
    if _REGISTRY is None:
        _LEFT_OUT.clear()
        out: dict[str, DatasetFormat] = {}
        for spec, where in _in_tree():
            why = _check(spec, where)
            if why is not None:  # occkit's own: a bug, said as such
                raise FormatRegistryError(f"{where}: {why}")
            if spec.name in out:
                raise FormatRegistryError(
                    f"{where}: format {spec.name!r} is already registered by {out[spec.name].source}"
                )
            spec.source = where
            out[spec.name] = spec
        for spec, where in _from_entry_points():
            why = _check(spec, where)
            if why is None and spec.name in out:
                why = f"format {spec.name!r} is already registered by {out[spec.name].source}"
            if why is not None:
                _warn(f"{where} (group {ENTRY_POINT_GROUP}): {why}; left out")
                name = getattr(spec, "name", None)
                for key in {where.split(" = ")[0].removeprefix("entry point "), name if isinstance(name, str) else ""}:
                    if key and key not in out:
                        _LEFT_OUT.setdefault(key, f"{where} (group {ENTRY_POINT_GROUP}): {why}")
                continue
            spec.source = where
            out[spec.name] = spec
        order = {name: i for i, name in enumerate(out)}  # occkit's own first, each group by name
        _REGISTRY = dict(sorted(out.items(), key=lambda kv: (kv[1].detection.priority, order[kv[0]])))
    return _REGISTRY


#: The format a command or function uses when none is named nor detected: Occ3D-nuScenes. Not the
#: registry's first: formats whose folders Occ3D's detection would also claim are tried before it.
DEFAULT_FORMAT = "occ3d"


def default_format() -> DatasetFormat:
    """:data:`DEFAULT_FORMAT`, or the registry's first format when it is not registered."""
    reg = formats()
    return reg[DEFAULT_FORMAT] if DEFAULT_FORMAT in reg else next(iter(reg.values()))


def format_names() -> tuple[str, ...]:
    """The registered formats' names, in registry order."""
    return tuple(formats())


def get_format(name: str) -> DatasetFormat:
    """The format ``name``; a :class:`FormatRegistryError` lists the registered ones."""
    reg = formats()
    if name not in reg and name in _LEFT_OUT:
        raise FormatRegistryError(
            f"format: {name!r} is another package's format that failed to load: {_LEFT_OUT[name]}"
        )
    if name not in reg:
        raise FormatRegistryError(
            f"format: {name!r} is not one of {', '.join(reg)} (a package adds formats through the entry point "
            f"group {ENTRY_POINT_GROUP!r})"
        )
    return reg[name]


def format_of(dataset: object) -> DatasetFormat:
    """The format of the frames under a stack of dataset wrappers (each keeping the one it wraps at
    ``.dataset``; :func:`occkit.data.wrappers.base_dataset`); a ``TypeError`` names the outermost
    class when no frame dataset of a format lies under it."""
    from occkit.data.wrappers import base_dataset, format_name_of

    return get_format(format_name_of(base_dataset(dataset)))


#: What was warned of in this process, by key (each warning line once a process).
_WARNED: set[tuple[str, str]] = set()


def _warn_once(key: tuple[str, str], msg: str) -> None:
    """Warn ``msg`` unless ``key`` was warned of in this process."""
    if key not in _WARNED:
        _WARNED.add(key)
        _warn(msg)


#: The record an occkit command leaves in the folder it wrote (:data:`occkit.outputs.OUTPUT_RECORD`; named
#: here, since occkit.outputs asks this registry what a folder is).
OUTPUT_RECORD = ".occkit-output.json"


def detect_claims(root: str | os.PathLike) -> list[tuple[DatasetFormat, str]]:
    """Every format whose ``detect`` answers for the folder ``root``, with its reason, in registry
    order: an answer that says nothing (None, ``''``, ``False``, ``[]``) is no claim. Another package's
    ``detect`` that raises is named in one warning line (once per format and error) and counts as no
    answer, so that the other formats keep working; occkit's own formats' errors pass through."""
    r = Path(root)
    out = []
    for spec in formats().values():
        try:
            why = spec.detection.detect(r)
        except BaseException as e:  # a package's detect calling sys.exit is named too, not the end of the command
            if not spec.from_package or isinstance(e, KeyboardInterrupt):  # occkit's own: as it is
                raise
            _warn_once(
                (spec.name, f"{type(e).__name__}: {e}"),
                f"{plugin_failure(spec, f'detect({r})', e)}; left out of the detection",
            )
            continue
        if why:  # a reason; None, and an empty answer ('', False, []), claim nothing
            out.append((spec, str(why)))
    return out


def detect_format(root: str | os.PathLike, option: str | None = "--format {}") -> DatasetFormat:
    """The format of the dataset folder ``root``: the format ``occkit synth --format NAME`` wrote it as
    (its output record) when that format's ``detect`` answers, else the one format whose ``detect``
    answers, a format's variants (:attr:`Detection.refines`) before the layout they refine where
    the variant's ``detect`` gives another reason than the layout's (a variant whose ``detect`` answers
    as the layout's does, for the layout's own folders, is no answer there). The record settling a folder
    that other formats claim too (a second layout's label folder in it), and another package's variant taking a
    folder from the format it refines with no record, are each said in one warning line (once a process). A
    folder that two unrelated formats claim is refused in one line naming both; one that none claims, in one
    line naming the folder and every format tried. ``option``: how the calling command is told the
    format, as a template of the name (``"--format {}"``, ``occkit convert``'s ``"--from {}"``,
    ``occkit train``'s ``"--set data.format={}"``), which the messages suggest; None: the command
    takes none (the messages then suggest one layout per folder)."""
    r = Path(root)
    if not r.exists():
        raise FileNotFoundError(f"{r}: dataset folder not found (a folder of one of the formats {formats_tried()})")
    if not r.is_dir():
        raise NotADirectoryError(f"{r}: is a file, not a dataset folder")
    claims = detect_claims(r)
    said = {spec.name: why for spec, why in claims}
    # a variant wins over the layout it refines only on its own folders: where its detect sees more than
    # that layout's (another reason); one that answers as the layout does says nothing of its own
    own = [(spec, why) for spec, why in claims if not any(said.get(name) == why for name in spec.detection.refines)]
    refined = {name for spec, _ in own for name in spec.detection.refines}
    left = [(spec, why) for spec, why in own if spec.name not in refined]
    written = _written_as(r)
    for spec, why in claims:  # a folder occkit synth --format X wrote reads as X, whichever other format claims it
        if spec.name == written:
            _say_layouts_not_read(r, spec, why, [(s, w) for s, w in left if s.name != written], option)
            return spec
    if len(left) == 1:
        _say_package_took_over(r, *left[0], [name for name in left[0][0].detection.refines if name in said], option)
        return left[0][0]
    if left:
        said = "; ".join(f"{spec.name} ({why})" for spec, why in left)
        say = f"pass {option.format(left[0][0].name)} (or another of them), or " if option else ""
        raise AmbiguousFormatError(
            f"{r}: holds the layouts of {len(left)} formats, {said}; occkit does not guess which one is meant: "
            f"{say}keep one layout per folder"
        )
    hint = f"; pass {option.format('NAME')}" if option else ""
    raise FormatRegistryError(f"{r}: not a dataset of any known format (tried {formats_tried()}){hint}")


def _claimant(spec: DatasetFormat, why: str) -> str:
    """A format's claim as a detection line names it: its reason, and the package that registered it for another
    package's."""
    return f"{spec.name} ({why}; {spec.source})" if spec.from_package else f"{spec.name} ({why})"


def _say_layouts_not_read(
    root: Path, spec: DatasetFormat, why: str, others: list[tuple[DatasetFormat, str]], option: str | None
) -> None:
    """One warning line when the format ``occkit synth`` recorded (``spec``) settles a folder that also holds
    the layouts of ``others``, which reading it so leaves unread (without the record it would be refused)."""
    if not others:
        return
    held = " and ".join(_claimant(s, w) for s, w in others)
    how = (
        f"pass {option.format(others[0][0].name)} to read {'that one' if len(others) == 1 else 'another'}, or "
        if option
        else ""
    )
    msg = (
        f"{root}: read as {spec.name} ({why}), the format occkit synth wrote it as ({OUTPUT_RECORD}); the layout of "
        f"{held} it also holds is not read: {how}keep one layout per folder"
    )
    _warn_once((os.path.abspath(root), msg), msg)


def _say_package_took_over(root: Path, spec: DatasetFormat, why: str, over: list[str], option: str | None) -> None:
    """One warning line when another package's format takes a folder that no record of occkit's settles from
    the formats it refines (``over``: those of them that claim the folder too), saying which package and why."""
    if not spec.from_package or not over:
        return
    how = f"; pass {option.format(over[0])} to read it as {over[0]}" if option else ""
    msg = (
        f"{root}: read as {spec.name}, the format of {spec.source}, which refines {' and '.join(over)} and claims "
        f"the folder ({why}); no format recorded by occkit synth settles it{how}"
    )
    _warn_once((os.path.abspath(root), msg), msg)


def _written_as(root: Path) -> str | None:
    """The format the folder was written as, by ``occkit synth --format NAME`` (its output record), or None."""
    import json

    try:
        record = json.loads((root / OUTPUT_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):  # a record edited into a list or a scalar settles nothing
        return None
    fmt = record.get("format")
    return fmt if record.get("command") == "synth" and isinstance(fmt, str) else None


def formats_tried() -> str:
    """Every format in registry order with what its folders hold, for errors: ``occ3d (...), ...``."""
    return "; ".join(f"{name}: {fmt.summary}" for name, fmt in formats().items())


def guarded_by_name(name: str, metric: Any) -> _GuardedMetric:
    """A metric of another package's format unpickled (a process of the scoring loop sent it back): its
    format found again in the registry by name."""
    return _GuardedMetric(get_format(name), metric)
