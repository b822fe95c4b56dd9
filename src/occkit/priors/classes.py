"""The class tables of 2D priors: which classes a prior's ``semantics`` name, per dataset format.

A prior's semantic ids, the synthetic world's exact 2D maps (``semantics_2d``), the words that
name each class in text (the oracle's and the world prior's vision-language features) and the
prompts of a Grounded-SAM-style detector all belong to one :class:`PriorClasses`. Which table a
dataset's priors use is a property of its format (:func:`prior_classes_of`), which names the format
whose class table it is (:meth:`occkit.formats.DatasetFormat.prior_table`):

- the formats of the **driving** world (Occ3D, SemanticKITTI, KITTI-360, SurroundOcc,
  OpenOccupancy, ...): Occ3D's classes 0..16 then sky (17), whatever the layout's own label classes
  are (the driving world writes its exact 2D maps in these classes; a method maps them to its labels
  itself); :data:`DEFAULT_PRIORS`, the default format's;
- the other formats (the **indoor** world's NYUv2): the format's own class table.

Either way the table is a format's class table (:attr:`occkit.formats.DatasetFormat.classes`), its
free class standing for the pixels that show no surface of the scene (the sky outdoors; NYUv2's
``empty``: the indoor world's rays that hit nothing), with the words, detector prompts and confusions
of the format's :attr:`~occkit.formats.DatasetFormat.prior_vocabulary`.

A prior cache records its table (``class_table``, ``class_names`` in ``prior.json``) and a dataset
of another table refuses it (:meth:`occkit.priors.cache.PriorCache.check_dataset`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from occkit.formats import DatasetFormat, default_format, format_of, get_format
from occkit.formats.spec import WORLD_PRIOR_TABLES, PriorVocabulary, plugin_call


@dataclass(frozen=True)
class PriorClasses:
    """The classes of a prior's ``semantics``.

    Attributes:
        name: the table's name, recorded in caches: the name of the format whose class table it is.
        names: one name per class id ``0 .. C-1``.
        nothing: the id of pixels that show no surface of the scene (the sky outdoors; NYUv2's
            ``empty`` indoors): depth 0 there.
        words: the text naming each class (vision-language features of pixels without an object
            name), one per id.
        prompts: ``(prompt, class name)`` pairs: what an open-vocabulary detector is asked for and
            the class each answer gives.
        caption_groups: the prompts asked together, one detector pass per group.
        confusable: ``{class id: (class id, ...)}``: the classes an object of a class can be mistaken
            for (the oracle prior's error model); none for a table without them.
        stuff_confusable: the same for patches of the ground (indoors: of the room's structure).
    """

    name: str
    names: tuple[str, ...]
    nothing: int
    words: tuple[str, ...]
    prompts: tuple[tuple[str, str], ...] = ()
    caption_groups: tuple[tuple[str, ...], ...] = ()
    confusable: Mapping[int, tuple[int, ...]] = field(default_factory=dict, compare=False)
    stuff_confusable: Mapping[int, tuple[int, ...]] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        n = len(self.names)
        if n < 2 or n > 255:
            raise ValueError(f"PriorClasses {self.name!r}: 2..255 classes (255 is the unknown id), got {n}")
        if not 0 <= self.nothing < n:
            raise ValueError(f"PriorClasses {self.name!r}: nothing id {self.nothing} outside 0..{n - 1}")
        if len(self.words) != n:
            raise ValueError(f"PriorClasses {self.name!r}: {len(self.words)} words for {n} classes")
        bad = [c for _, c in self.prompts if c not in self.names]
        if bad:
            raise ValueError(f"PriorClasses {self.name!r}: prompts give unknown classes {bad}")
        asked = {p for p, _ in self.prompts}
        missing = [p for g in self.caption_groups for p in g if p not in asked]
        if missing:
            raise ValueError(f"PriorClasses {self.name!r}: caption groups name prompts {missing} with no class")

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def prompt_class(self, prompt: str) -> int:
        """The class id a detector's answer ``prompt`` gives."""
        return self.names.index(dict(self.prompts)[prompt])

    def record(self) -> dict[str, Any]:
        """What a cache or a run stores of the table."""
        return {"class_table": self.name, "class_names": list(self.names)}


def table_from_format(fmt: DatasetFormat) -> PriorClasses:
    """The table of a format's own classes (its free class = no surface), with its vocabulary."""
    ct = fmt.classes
    if ct.free is None:
        raise ValueError(f"format {fmt.name!r}: its classes have no free class to stand for pixels of no surface")
    vocab = plugin_call(fmt, "prior_vocabulary", fmt.prior_vocabulary) if fmt.prior_vocabulary else PriorVocabulary()
    names = list(ct.names)
    if vocab.nothing:
        names[ct.free] = vocab.nothing
    words = tuple(vocab.words.get(n, n.replace("_", " ")) for n in names)
    return PriorClasses(
        fmt.name,
        tuple(names),
        int(ct.free),
        words,
        tuple(vocab.prompts),
        tuple(vocab.groups),
        dict(vocab.confusable),
        dict(vocab.stuff_confusable),
    )


#: The tables built, by format name, with the format they were built from (a registry reloaded with
#: another format of that name builds its table again).
_BUILT: dict[str, tuple[DatasetFormat, PriorClasses]] = {}


def _table(fmt: DatasetFormat) -> PriorClasses:
    built = _BUILT.get(fmt.name)
    if built is None or built[0] is not fmt:
        built = _BUILT[fmt.name] = (fmt, table_from_format(fmt))
    return built[1]


def prior_classes_of(fmt: DatasetFormat) -> PriorClasses:
    """The table of a dataset format's priors (see the module docstring): the class table of the
    format it names (:meth:`~occkit.formats.DatasetFormat.prior_table`: Occ3D's for the driving
    world's formats, the format's own otherwise)."""
    name = fmt.prior_table()
    return _table(fmt if name == fmt.name else get_format(name))


#: The table of the default format's priors (Occ3D's classes 0..16, then sky (17): the driving
#: world's): the table of frames of no known format and of caches and runs written before tables.
DEFAULT_PRIORS: PriorClasses = prior_classes_of(default_format())


def driving_world_table(classes: PriorClasses) -> bool:
    """Whether ``classes`` is the table of the driving world's priors (:data:`~occkit.formats.spec.WORLD_PRIOR_TABLES`),
    whose fine names and words are the driving world's vocabulary (:mod:`occkit.worlds.driving.vocabulary`)."""
    return classes.name == WORLD_PRIOR_TABLES.get("driving")


def prior_classes_of_dataset(dataset: Any) -> PriorClasses:
    """:func:`prior_classes_of` the format of the frames under a stack of dataset wrappers;
    :data:`DEFAULT_PRIORS` for a dataset of no known format (tests' in-memory frames)."""
    try:
        fmt = format_of(dataset)
    except (TypeError, ValueError):
        return DEFAULT_PRIORS
    return prior_classes_of(fmt)


def prior_classes_named(name: str) -> PriorClasses:
    """The table of a cache's or a run's record: a registered format's name."""
    if name == DEFAULT_PRIORS.name:
        return DEFAULT_PRIORS
    return prior_classes_of(get_format(name))
