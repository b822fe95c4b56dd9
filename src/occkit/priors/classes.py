"""The class tables of 2D priors: which classes a prior's ``semantics`` name, per dataset format.

A prior's semantic ids, the synthetic world's exact 2D maps (``semantics_2d``), the words that
name each class in text (the oracle's and the world prior's vision-language features) and the
prompts of a Grounded-SAM-style detector all belong to one :class:`PriorClasses`. Which table a
dataset's priors use is a property of its format (:func:`prior_classes_of`):

- the formats of the **driving** world (Occ3D, SemanticKITTI, KITTI-360, SurroundOcc,
  OpenOccupancy, ...): :data:`OCC3D_PRIORS`, Occ3D's classes 0..16 then sky (17), whatever the
  layout's own label classes are (the driving world writes its exact 2D maps in these classes;
  a method maps them to its labels itself);
- the other formats (the **indoor** world's NYUv2): the format's own class table
  (:attr:`occkit.formats.DatasetFormat.classes`), its free class standing for the pixels that show
  no surface of the scene (NYUv2's ``empty``: the indoor world's rays that hit nothing), with the
  words and prompts of :data:`FORMAT_VOCABULARY` where occkit has them.

A prior cache records its table (``class_table``, ``class_names`` in ``prior.json``) and a dataset
of another table refuses it (:meth:`occkit.priors.cache.PriorCache.check_dataset`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from occkit.labels import OCC3D_CLASSES, OCC3D_FREE


@dataclass(frozen=True)
class PriorClasses:
    """The classes of a prior's ``semantics``.

    Attributes:
        name: the table's name, recorded in caches (``occ3d``; a format's name otherwise).
        names: one name per class id ``0 .. C-1``.
        nothing: the id of pixels that show no surface of the scene (the sky outdoors; NYUv2's
            ``empty`` indoors): depth 0 there.
        words: the text naming each class (vision-language features of pixels without an object
            name), one per id.
        prompts: ``(prompt, class name)`` pairs: what an open-vocabulary detector is asked for and
            the class each answer gives.
        caption_groups: the prompts asked together, one detector pass per group.
    """

    name: str
    names: tuple[str, ...]
    nothing: int
    words: tuple[str, ...]
    prompts: tuple[tuple[str, str], ...] = ()
    caption_groups: tuple[tuple[str, ...], ...] = ()

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


# ------------------------------------------------------------------------------------ Occ3D (driving)
def _occ3d() -> PriorClasses:
    from occkit.worlds.driving.vocabulary import CLASS_WORDS

    names = (*OCC3D_CLASSES[:OCC3D_FREE], "sky")
    # the driving world's words for its ground classes and the sky; the class name otherwise
    words = tuple(CLASS_WORDS.get(c, names[c].replace("_", " ")) for c in range(len(names)))
    # Grounded-SAM as OccNeRF prompted it (docs/methods.md §2). Riders go with their vehicle's class
    # (nuScenes annotates a cycle with its rider as one object) [unsure which OccNeRF took].
    prompts = (
        ("pedestrian", "pedestrian"),
        ("bus", "bus"),
        ("truck", "truck"),
        ("bicycle", "bicycle"),
        ("bicyclist", "bicycle"),
        ("motorcycle", "motorcycle"),
        ("motorcyclist", "motorcycle"),
        ("barrier", "barrier"),
        ("barricade", "barrier"),
        ("sedan", "car"),
        ("highway", "driveable_surface"),
        ("terrain", "terrain"),
        ("tree", "vegetation"),
        ("sidewalk", "sidewalk"),
        ("building", "manmade"),
        ("bridge", "manmade"),
        ("pole", "manmade"),
        ("billboard", "manmade"),
        ("light", "manmade"),
        ("ashbin", "manmade"),
        ("crane", "construction_vehicle"),
        ("trailer", "trailer"),
        ("cone", "traffic_cone"),
        ("sky", "sky"),
    )
    groups = (
        ("pedestrian", "bus", "truck"),
        ("bicycle", "bicyclist"),
        ("motorcycle", "motorcyclist"),
        ("barrier", "barricade"),
        (
            "sedan",
            "highway",
            "terrain",
            "tree",
            "sidewalk",
            "building",
            "bridge",
            "pole",
            "billboard",
            "light",
            "ashbin",
            "crane",
            "trailer",
            "cone",
            "sky",
        ),
    )
    return PriorClasses("occ3d", names, 17, words, prompts, groups)


#: The driving world's table: Occ3D's classes 0..16, then sky (17).
OCC3D_PRIORS: PriorClasses = _occ3d()

# ------------------------------------------------------------------------------------ other formats
#: Words and detector prompts of formats whose table is their own class table (occkit's choice
#: for NYUv2, no paper prompts indoors [own]): ``{format: {"words": {class: word}, "prompts":
#: {prompt: class}, "groups": (...)}}``; a class without a word is named by its name.
FORMAT_VOCABULARY: dict[str, dict[str, Any]] = {
    "nyu": {
        "words": {"empty": "nothing", "tvs": "television", "objects": "object"},
        "prompts": {
            "ceiling": "ceiling",
            "floor": "floor",
            "wall": "wall",
            "window": "window",
            "chair": "chair",
            "bed": "bed",
            "sofa": "sofa",
            "table": "table",
            "desk": "table",
            "television": "tvs",
            "monitor": "tvs",
            "cabinet": "furniture",
            "wardrobe": "furniture",
            "shelf": "furniture",
            "dresser": "furniture",
            "lamp": "objects",
            "picture": "objects",
            "plant": "objects",
            "box": "objects",
            "book": "objects",
        },
        "groups": (
            ("ceiling", "floor", "wall", "window"),
            ("chair", "bed", "sofa", "table", "desk"),
            ("television", "monitor", "cabinet", "wardrobe", "shelf", "dresser"),
            ("lamp", "picture", "plant", "box", "book"),
        ),
    },
}


def table_from_format(fmt: Any) -> PriorClasses:
    """The table of a format's own classes (its free class = no surface), with its vocabulary."""
    ct = fmt.classes
    if ct.free is None:
        raise ValueError(f"format {fmt.name!r}: its classes have no free class to stand for pixels of no surface")
    vocab = FORMAT_VOCABULARY.get(fmt.name, {})
    words = tuple(vocab.get("words", {}).get(n, n.replace("_", " ")) for n in ct.names)
    prompts = tuple(vocab.get("prompts", {}).items())
    return PriorClasses(fmt.name, tuple(ct.names), int(ct.free), words, prompts, tuple(vocab.get("groups", ())))


def prior_classes_of(fmt: Any) -> PriorClasses:
    """The table of a dataset format's priors (see the module docstring): Occ3D's for the driving
    world's formats, the format's own classes otherwise."""
    if getattr(fmt, "world", "driving") == "driving":
        return OCC3D_PRIORS
    return table_from_format(fmt)


def prior_classes_of_dataset(dataset: Any) -> PriorClasses:
    """:func:`prior_classes_of` the format of the frames under a stack of dataset wrappers;
    :data:`OCC3D_PRIORS` for a dataset of no known format (tests' in-memory frames)."""
    from occkit.formats import format_of

    try:
        fmt = format_of(dataset)
    except (TypeError, ValueError):
        return OCC3D_PRIORS
    return prior_classes_of(fmt)


def prior_classes_named(name: str) -> PriorClasses:
    """The table of a cache's or a run's record: ``occ3d`` or a registered format's name."""
    if name == OCC3D_PRIORS.name:
        return OCC3D_PRIORS
    from occkit.formats import get_format

    return prior_classes_of(get_format(name))
