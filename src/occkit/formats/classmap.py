"""Class maps between dataset formats, as data: ``configs/classmaps/<name>.yaml`` (or any YAML file)
saying which classes of the predictions' format (``from``) and of the ground truth's (``to``) each
common class gathers, and which are dropped (their voxels left out of the scoring).

    from: occ3d
    to: semantickitti
    common:                       # in order; the one holding the free classes last
      car: {from: [car], to: [car]}
      ...
      free: {from: [free], to: [empty]}
    drop: {from: [others], to: [bicyclist]}

Every class of both tables is in exactly one common class or under ``drop``: a class left
unmapped, mapped twice, or unknown is a one-line error naming it and the file. ``occkit eval
--class-map NAME|FILE`` scores a model of one layout on another's common classes
(:func:`occkit.scoring.folder.evaluate_predictions`), resampling the predictions where the grids
differ; ``occkit convert`` reads a map in either direction to write one layout's labels in
another's (:mod:`occkit.convert`: a common class is written as the first class its target
side lists). A map joins class tables: it serves any format of the tables it names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from occkit.schema import Table, Text

#: The value of a dropped class in a lookup table (its voxels are left out).
DROPPED = 255


@dataclass(frozen=True)
class ClassMap:
    """A loaded class map.

    Attributes:
        path: the file it was read from.
        source, target: the names of the predictions' format and the ground truth's.
        names: the common classes, the free one last.
        source_lut, target_lut: ``(256,)`` uint8: a class id of that format -> its common class id,
            :data:`DROPPED` for a dropped class (and for ids outside the table, 255 = ignore).
        source_members, target_members: per common class, the classes of that side it gathers, in
            the file's order (``occkit convert`` writes a common class as the first of the target's).
    """

    path: Path
    source: str
    target: str
    names: tuple[str, ...]
    source_lut: np.ndarray
    target_lut: np.ndarray
    source_members: tuple[tuple[str, ...], ...] = ()
    target_members: tuple[tuple[str, ...], ...] = ()

    @property
    def free(self) -> int:
        return len(self.names) - 1


class Members(Table):
    """The classes of each side a common class gathers."""

    source: list[Text] = Field(alias="from", description="classes of the predictions' format")
    target: list[Text] = Field(alias="to", description="classes of the ground truth's format")


class Dropped(Table):
    """The classes of each side left out of the scoring."""

    source: list[Text] | None = Field(None, alias="from", description="a list of class names")
    target: list[Text] | None = Field(None, alias="to", description="a list of class names")


class ClassMapFile(Table):
    """A class map file (see the module's docstring)."""

    source: Text = Field(alias="from", description="one format's name: the predictions'")
    target: Text = Field(alias="to", description="one format's name: the ground truth's")
    common: dict[str, Members] = Field(min_length=1, description="each common class: {from: [...], to: [...]}")
    drop: Dropped | None = None


def _occkit_maps() -> tuple[str, ...]:
    folder = resources.files("occkit") / "configs" / "classmaps"
    return tuple(sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")))


#: The entry point group through which another package ships named class maps, without importing it:
#: ``NAME = "package.folder"``, the map being the file ``NAME.yaml`` in that package folder.
CLASSMAP_GROUP = "occkit.classmaps"


def package_class_maps() -> dict[str, tuple[str, str]]:
    """The named class maps other packages ship (entry point group :data:`CLASSMAP_GROUP`): name ->
    (the package folder, the distribution). A name occkit already ships stays occkit's. Nothing is
    imported: ``--help`` lists them without loading torch."""
    from importlib import metadata

    own = set(_occkit_maps())
    out: dict[str, tuple[str, str]] = {}
    for ep in sorted(metadata.entry_points(group=CLASSMAP_GROUP), key=lambda e: e.name):
        if ep.name not in own:
            dist = ep.dist.name if getattr(ep, "dist", None) is not None else "a package"
            out.setdefault(ep.name, (ep.value.strip(), dist))
    return out


def class_map_names() -> tuple[str, ...]:
    """The named class maps: occkit's (``configs/classmaps/*.yaml``) and those installed packages ship
    (:func:`package_class_maps`)."""
    return tuple(sorted({*_occkit_maps(), *package_class_maps()}))


def resolve_class_map(name_or_path: str | os.PathLike) -> Path:
    """A named class map's file (occkit's, or one an installed format ships), or the file given; an
    unknown one names the known ones."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    shipped = resources.files("occkit") / "configs" / "classmaps" / f"{name_or_path}.yaml"
    if shipped.is_file():
        return Path(str(shipped))
    packaged = package_class_maps().get(str(name_or_path))
    if packaged is not None:
        folder, dist = packaged
        try:
            f = resources.files(folder) / f"{name_or_path}.yaml"
        except (ImportError, TypeError, ValueError) as e:
            raise FileNotFoundError(
                f"--class-map {name_or_path}: {dist} names the folder {folder!r} (entry point group {CLASSMAP_GROUP}), "
                f"which cannot be found ({e})"
            ) from None
        if not f.is_file():
            raise FileNotFoundError(
                f"--class-map {name_or_path}: {dist} names {folder}/{name_or_path}.yaml, which does not exist"
            )
        return Path(str(f))
    raise FileNotFoundError(
        f"--class-map {name_or_path}: no such file, nor a named class map ({', '.join(class_map_names())})"
    )


def _side_format(path: Path, name: str, side: str) -> Any:
    """The format a side of the map (``from`` / ``to``) names, or a one-line error naming the file."""
    from occkit.formats.registry import get_format

    try:
        return get_format(name)
    except (KeyError, ValueError) as e:  # the registry's message, about this file's key
        raise ValueError(f"{path}: '{side}': {str(e.args[0] if e.args else e).removeprefix('format: ')}") from e


def side_lut(path: Path, fmt: Any, side: str, common: dict, drop: dict) -> np.ndarray:
    """The lookup table of one side: each class id of ``fmt`` -> its common class (``DROPPED`` for a
    dropped one), every class mapped once, the free class in the last common class."""
    ids = {n: i for i, n in enumerate(fmt.classes.names)}
    lut = np.full(256, DROPPED, np.uint8)
    seen: dict[str, str] = {}

    def take(cls: Any, where: str, value: int) -> None:
        if cls not in ids:
            raise ValueError(f"{path}: {where}: {cls!r} is not a class of {fmt.name} ({', '.join(fmt.classes.names)})")
        if cls in seen:
            raise ValueError(f"{path}: {fmt.name} class {cls!r} is mapped twice ({seen[cls]} and {where})")
        seen[cls] = where
        lut[ids[cls]] = value

    for k, (name, entry) in enumerate(common.items()):
        for cls in entry[side]:
            take(cls, f"common class {name!r}", k)
    for cls in drop.get(side) or []:
        take(cls, f"drop.{side}", DROPPED)
    unmapped = [n for n in fmt.classes.names if n not in seen]
    if unmapped:
        raise ValueError(
            f"{path}: {fmt.name} class {unmapped[0]!r} is unmapped (give it a common class or list it under "
            f"drop.{side})" + (f"; so are {', '.join(map(repr, unmapped[1:]))}" if len(unmapped) > 1 else "")
        )
    if fmt.classes.free is not None and lut[fmt.classes.free] != len(common) - 1:
        raise ValueError(
            f"{path}: {fmt.name}'s free class {fmt.classes.names[fmt.classes.free]!r} must be in the last common "
            f"class ({list(common)[-1]!r})"
        )
    return lut


def read_class_map_file(path: Path) -> dict[str, Any]:
    """A class map file read against its schema (:class:`ClassMapFile`): ``{"from", "to", "common": {name:
    {"from": [...], "to": [...]}}, "drop": {"from": [...], "to": [...]}}``, or one line naming the file and
    the key."""
    from occkit.config import load_yaml
    from occkit.schema import validate

    m = validate(ClassMapFile, load_yaml(path), str(path))
    return m.model_dump(by_alias=True) | {"drop": m.drop.model_dump(by_alias=True) if m.drop else {}}


def load_class_map(name_or_path: str | os.PathLike) -> ClassMap:
    """Read and check a class map (see the module docstring); errors are one line naming the file."""
    path = resolve_class_map(name_or_path)
    data = read_class_map_file(path)
    fmts = {side: _side_format(path, data[side], side) for side in ("from", "to")}
    common, drop = data["common"], data["drop"]
    luts = {side: side_lut(path, fmts[side], side, common, drop) for side in ("from", "to")}
    members = {side: tuple(tuple(str(c) for c in entry[side]) for entry in common.values()) for side in ("from", "to")}
    return ClassMap(
        path,
        fmts["from"].name,
        fmts["to"].name,
        tuple(common),
        luts["from"],
        luts["to"],
        members["from"],
        members["to"],
    )
