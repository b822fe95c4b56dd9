"""The fine-name vocabulary (occkit.worlds.driving.vocabulary) against the catalogue: every name an
object can get is in FINE_NAMES with its class, and every name in FINE_NAMES can be produced."""

from __future__ import annotations

import numpy as np
import pytest

from occkit.worlds.driving import SynthConfig, build_scene
from occkit.worlds.driving import catalog as cat
from occkit.worlds.driving import vocabulary as vocab
from occkit.worlds.driving.layout import DRIVEABLE, OTHER_FLAT, SIDEWALK, TERRAIN

#: Every name street_furniture() accepts (its branches).
FURNITURE = (
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


def _catalogue_draws(n: int = 150) -> list[cat.ObjectSpec]:
    """Specs from every catalogue function, ``n`` random draws each (seeded)."""
    rng = np.random.default_rng(0)
    specs: list[cat.ObjectSpec] = []
    for _ in range(n):
        specs += [
            cat.car(rng),
            cat.truck(rng),
            cat.bus(rng),
            cat.trailer(rng),
            cat.construction_vehicle(rng),
            cat.pedestrian(rng),
            cat.traffic_cone(rng),
            cat.barrier(rng),
            cat.other_object(rng),
            cat.tree(rng),
            cat.bush(rng),
        ]
        specs += [f(rng, rider) for f in (cat.motorcycle, cat.bicycle) for rider in (False, True)]
        specs += [cat.building(rng, kind, 12.0, 10.0) for kind in ("house", "tower", "warehouse")]
    specs += [cat.street_furniture(rng, name) for name in FURNITURE]
    specs += [cat.wall_or_fence(rng, name, 8.0) for name in ("brick wall", "concrete wall", "fence")]
    specs += [cat.bush(rng, "hedge", 6.0), cat.bush(rng, "flower bed"), cat.tree(rng, "plane tree")]
    return specs


def test_every_catalogue_name_is_in_the_vocabulary_with_its_class():
    drawn = {(s.name, s.cls) for s in _catalogue_draws()}
    unknown = sorted(n for n, _ in drawn if n not in vocab.FINE_NAME_CLASS)
    assert not unknown, f"catalogue names missing from FINE_NAMES: {unknown}"
    wrong = sorted((n, c, vocab.FINE_NAME_CLASS[n]) for n, c in drawn if vocab.FINE_NAME_CLASS[n] != c)
    assert not wrong, f"(name, catalogue class, vocabulary class): {wrong}"
    # and nothing stale: every vocabulary name is one the catalogue produces
    assert {n for n, _ in drawn} == set(vocab.fine_names())
    with pytest.raises(ValueError):
        cat.street_furniture(np.random.default_rng(0), "phone booth")


def test_the_objects_of_built_scenes_are_in_the_vocabulary():
    n = 0
    for seed, index in ((0, 0), (1, 1), (7, 2)):
        scene = build_scene(SynthConfig(frames=1, seed=seed), index)
        for o in scene.objects:
            assert vocab.FINE_NAME_CLASS.get(o.spec.name) == o.spec.cls, (
                scene.name,
                o.instance,
                o.spec.name,
                o.spec.cls,
            )
            assert vocab.class_of(o.spec.name) == o.spec.cls
            n += 1
        # every ground class of the town has its word (pixels / voxels with no object)
        ground = set(np.unique(scene.ground.cls).tolist())
        assert ground <= set(vocab.CLASS_WORDS), ground
    assert n > 500


def test_vocabulary_tables():
    names = vocab.fine_names()
    assert len(names) == len(set(names)) == len(vocab.FINE_NAMES)
    assert set(vocab.HELDOUT_NAMES) <= set(names)
    assert set(vocab.fine_names(True)) == set(vocab.HELDOUT_NAMES)
    assert set(vocab.fine_names(False)) | set(vocab.fine_names(True)) == set(names)
    assert {DRIVEABLE, OTHER_FLAT, SIDEWALK, TERRAIN, 17} == set(vocab.CLASS_WORDS)
    assert vocab.class_of("sky") == 17 and vocab.class_of("sedan") == 4
    with pytest.raises(KeyError, match="unicorn"):
        vocab.class_of("unicorn")
    rows = vocab.describe()
    assert len(rows) == len(vocab.FINE_NAMES) + len(vocab.CLASS_WORDS)
    assert {r["kind"] for r in rows} == {"object", "stuff"}
    # every class with several names keeps at least one seen name
    by_class: dict[int, set[str]] = {}
    for n, c in vocab.FINE_NAMES:
        by_class.setdefault(c, set()).add(n)
    assert all(ns - set(vocab.HELDOUT_NAMES) for ns in by_class.values())
