"""The synthetic world's fine-grained vocabulary: every object name the catalogue can produce,
with its Occ3D class, the words for ground and sky, and the held-out names.

An object's fine name is the ``name`` of its entry in ``objects.json`` (and of
:class:`occkit.worlds.driving.catalog.ObjectSpec`). Pixels and voxels with no object (instance 0)
show the ground (its Occ3D class) or the sky; they are named by :data:`CLASS_WORDS`.

Held-out names (:data:`HELDOUT_NAMES`) are never used to train a vision-language head
(``occkit priors train``), so that open-vocabulary retrieval can be tested on names the features
never saw. One or two per class with several names; classes with a single name keep it.

Everything here is an immutable tuple or mapping proxy (no module-level mutable state). From the
command line: ``occkit priors vocab``.
"""

from __future__ import annotations

from types import MappingProxyType

from occkit.labels import OCC3D_CLASSES, OCC3D_FREE

_RIDEABLE = ("motorcycle", "scooter", "sport bike", "bicycle", "city bike", "cargo bike", "mountain bike")

#: The pedestrians :func:`occkit.worlds.driving.catalog.pedestrian` draws from.
PEDESTRIAN_NAMES = (
    "adult",
    "adult with backpack",
    "child",
    "jogger",
    "construction worker",
    "person with umbrella",
    "elderly person",
)
#: The small objects :func:`occkit.worlds.driving.catalog.other_object` draws from.
OTHER_OBJECT_NAMES = (
    "wooden crate",
    "trash bin",
    "debris pile",
    "pallet stack",
    "cardboard boxes",
    "shopping cart",
    "tire pile",
)

#: (fine name, Occ3D class id) for every object name the catalogue produces.
FINE_NAMES: tuple[tuple[str, int], ...] = (
    *((n, 4) for n in ("sedan", "hatchback", "SUV", "pickup truck", "taxi", "station wagon", "delivery van")),
    *((n, 10) for n in ("box truck", "delivery truck", "garbage truck", "flatbed truck", "semi tractor")),
    *((n, 3) for n in ("city bus", "school bus", "coach", "articulated bus")),
    *((n, 9) for n in ("semi-trailer", "container trailer", "cargo trailer", "camping trailer")),
    *((n, 5) for n in ("excavator", "bulldozer", "crane truck", "cement mixer", "dump truck", "road roller")),
    *((n, 6) for n in ("motorcycle", "scooter", "sport bike")),
    *((n + " with rider", 6) for n in ("motorcycle", "scooter", "sport bike")),
    *((n, 2) for n in ("bicycle", "city bike", "cargo bike", "mountain bike")),
    *((n + " with rider", 2) for n in ("bicycle", "city bike", "cargo bike", "mountain bike")),
    *((n, 7) for n in PEDESTRIAN_NAMES),
    ("traffic cone", 8),
    *((n, 1) for n in ("jersey barrier", "plastic barrier", "barrier board")),
    *((n, 0) for n in OTHER_OBJECT_NAMES),
    *(
        (n, 15)
        for n in (
            "house",
            "townhouse",
            "bungalow",
            "corner shop",
            "office tower",
            "apartment building",
            "hotel",
            "shop building",
            "warehouse",
            "factory hall",
            "garage",
            "brick wall",
            "concrete wall",
            "fence",
            "street lamp",
            "traffic light",
            "stop sign",
            "speed limit sign",
            "street sign",
            "parking sign",
            "utility pole",
            "bench",
            "fire hydrant",
            "bollard",
            "mailbox",
            "bus shelter",
            "billboard",
        )
    ),
    *(
        (n, 16)
        for n in (
            "oak tree",
            "maple tree",
            "pine tree",
            "birch tree",
            "plane tree",
            "bush",
            "shrub",
            "flower bed",
            "hedge",
        )
    ),
)

#: Fine name -> Occ3D class id.
FINE_NAME_CLASS: MappingProxyType = MappingProxyType(dict(FINE_NAMES))

#: Words for what has no object: ground classes by Occ3D id, and the sky (id 17 in the 2D maps).
CLASS_WORDS: MappingProxyType = MappingProxyType(
    {
        11: "road",
        12: "plaza",
        13: "sidewalk",
        14: "grass",
        OCC3D_FREE: "sky",
    }
)

#: Names never used to train a vision-language head (open-vocabulary tests).
HELDOUT_NAMES: tuple[str, ...] = (
    "station wagon",
    "garbage truck",
    "school bus",
    "camping trailer",
    "excavator",
    "scooter",
    "scooter with rider",
    "cargo bike",
    "cargo bike with rider",
    "person with umbrella",
    "plastic barrier",
    "shopping cart",
    "fire hydrant",
    "bus shelter",
    "oak tree",
    "hedge",
)


def fine_names(heldout: bool | None = None) -> tuple[str, ...]:
    """Fine names in catalogue order: all (``None``), only held-out (``True``) or only seen (``False``)."""
    names = tuple(n for n, _ in FINE_NAMES)
    if heldout is None:
        return names
    return tuple(n for n in names if (n in HELDOUT_NAMES) == heldout)


def class_of(name: str) -> int:
    """Occ3D class id of a fine name or a class word (``sky`` -> 17); unknown names raise."""
    if name in FINE_NAME_CLASS:
        return FINE_NAME_CLASS[name]
    for cls, word in CLASS_WORDS.items():
        if word == name:
            return cls
    raise KeyError(f"{name!r} is not a fine name or class word of the synthetic world")


def describe() -> list[dict]:
    """The vocabulary as rows ``{"name", "class_id", "class_name", "heldout", "kind"}``."""
    rows = [
        {"name": n, "class_id": c, "class_name": OCC3D_CLASSES[c], "heldout": n in HELDOUT_NAMES, "kind": "object"}
        for n, c in FINE_NAMES
    ]
    rows += [
        {
            "name": w,
            "class_id": c,
            "class_name": "sky" if c == OCC3D_FREE else OCC3D_CLASSES[c],
            "heldout": False,
            "kind": "stuff",
        }
        for c, w in CLASS_WORDS.items()
    ]
    return rows
