"""Class tables and palettes of the benchmarks occkit reads.

Occ3D-nuScenes: 18 classes, 17 = free. SemanticKITTI SSC: 20 learning classes, 0 = empty, with
the official raw-id learning map. SSCBench-KITTI-360: 19 learning classes, 0 = empty, with its own
learning map over the same raw ids. Everything here is an immutable tuple or mapping proxy: no
module-level mutable state.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np


def _palette(classes: tuple[str, ...], colours: Mapping[str, tuple[int, int, int]]) -> tuple[tuple[int, int, int], ...]:
    """A palette, RGB by learning class, from the colours of ``classes`` by name."""
    return tuple(colours[name] for name in classes)


OCC3D_CLASSES: tuple[str, ...] = (
    "others",
    "barrier",
    "bicycle",
    "bus",
    "car",
    "construction_vehicle",
    "motorcycle",
    "pedestrian",
    "traffic_cone",
    "trailer",
    "truck",
    "driveable_surface",
    "other_flat",
    "sidewalk",
    "terrain",
    "manmade",
    "vegetation",
    "free",
)
OCC3D_NUM_CLASSES = 18
OCC3D_FREE = 17
#: Classes that enter the official mIoU (free excluded, others included).
OCC3D_EVAL_CLASSES: tuple[int, ...] = tuple(range(17))

#: The palette the Occ3D / nuScenes-lidarseg visualisations use (RGB, uint8), index = class.
OCC3D_PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0),  # others
    (255, 120, 50),  # barrier
    (255, 192, 203),  # bicycle
    (255, 255, 0),  # bus
    (0, 150, 245),  # car
    (0, 255, 255),  # construction_vehicle
    (200, 180, 0),  # motorcycle
    (255, 0, 0),  # pedestrian
    (255, 240, 150),  # traffic_cone
    (135, 60, 0),  # trailer
    (160, 32, 240),  # truck
    (255, 0, 255),  # driveable_surface
    (139, 137, 137),  # other_flat
    (75, 0, 75),  # sidewalk
    (150, 240, 80),  # terrain
    (230, 230, 250),  # manmade
    (0, 175, 0),  # vegetation
    (255, 255, 255),  # free
)

SEMANTICKITTI_CLASSES: tuple[str, ...] = (
    "empty",
    "car",
    "bicycle",
    "motorcycle",
    "truck",
    "other-vehicle",
    "person",
    "bicyclist",
    "motorcyclist",
    "road",
    "parking",
    "sidewalk",
    "other-ground",
    "building",
    "fence",
    "vegetation",
    "trunk",
    "terrain",
    "pole",
    "traffic-sign",
)
SEMANTICKITTI_NUM_CLASSES = 20
SEMANTICKITTI_IGNORE = 255

#: semantic-kitti.yaml's raw label ids (its ``labels``, which SSCBench-KITTI-360 reads too), each with the
#: learning class the two benchmarks send it to: ``(raw id, raw name, SemanticKITTI class, KITTI-360 class)``.
#: The two yamls' ``learning_map`` are the last two columns; their ``learning_map_inv`` send a class back to
#: the raw id of its own name (empty to 0).
_KITTI_RAW_LABELS: tuple[tuple[int, str, str, str], ...] = (
    (0, "unlabeled", "empty", "empty"),
    (1, "outlier", "empty", "empty"),
    (10, "car", "car", "car"),
    (11, "bicycle", "bicycle", "bicycle"),
    (13, "bus", "other-vehicle", "other-vehicle"),
    (15, "motorcycle", "motorcycle", "motorcycle"),
    (16, "on-rails", "other-vehicle", "other-vehicle"),
    (18, "truck", "truck", "truck"),
    (20, "other-vehicle", "other-vehicle", "other-vehicle"),
    (30, "person", "person", "person"),
    (31, "bicyclist", "bicyclist", "empty"),
    (32, "motorcyclist", "motorcyclist", "empty"),
    (40, "road", "road", "road"),
    (44, "parking", "parking", "parking"),
    (48, "sidewalk", "sidewalk", "sidewalk"),
    (49, "other-ground", "other-ground", "other-ground"),
    (50, "building", "building", "building"),
    (51, "fence", "fence", "fence"),
    (52, "other-structure", "empty", "other-structure"),
    (60, "lane-marking", "road", "road"),
    (70, "vegetation", "vegetation", "vegetation"),
    (71, "trunk", "trunk", "empty"),
    (72, "terrain", "terrain", "terrain"),
    (80, "pole", "pole", "pole"),
    (81, "traffic-sign", "traffic-sign", "traffic-sign"),
    (99, "other-object", "empty", "other-object"),
    (252, "moving-car", "car", "car"),
    (253, "moving-bicyclist", "bicyclist", "empty"),
    (254, "moving-person", "person", "person"),
    (255, "moving-motorcyclist", "motorcyclist", "empty"),
    (256, "moving-on-rails", "other-vehicle", "other-vehicle"),
    (257, "moving-bus", "other-vehicle", "other-vehicle"),
    (258, "moving-truck", "truck", "truck"),
    (259, "moving-other-vehicle", "other-vehicle", "other-vehicle"),
)


def _learning_maps(classes: tuple[str, ...], column: int) -> tuple[Mapping[int, int], Mapping[int, int]]:
    """A benchmark's ``learning_map`` and ``learning_map_inv`` from its column of :data:`_KITTI_RAW_LABELS`."""
    raw_of_name = {"empty": 0, **{name: raw for raw, name, *_ in _KITTI_RAW_LABELS}}
    learning_map = {row[0]: classes.index(row[column]) for row in _KITTI_RAW_LABELS}
    inverse = {c: raw_of_name[name] for c, name in enumerate(classes)}
    return MappingProxyType(learning_map), MappingProxyType(inverse)


#: semantic-kitti.yaml's ``learning_map`` (raw label id -> learning class) and ``learning_map_inv``
#: (learning class -> raw label id).
SEMANTICKITTI_LEARNING_MAP, SEMANTICKITTI_LEARNING_MAP_INV = _learning_maps(SEMANTICKITTI_CLASSES, 2)

#: SemanticKITTI's colours (RGB) by class name; SSCBench-KITTI-360's are the same but other-vehicle's and
#: its two classes of its own.
_KITTI_COLOURS: Mapping[str, tuple[int, int, int]] = MappingProxyType(
    {
        "empty": (0, 0, 0),
        "car": (100, 150, 245),
        "bicycle": (100, 230, 245),
        "motorcycle": (30, 60, 150),
        "truck": (80, 30, 180),
        "other-vehicle": (100, 80, 250),
        "person": (255, 30, 30),
        "bicyclist": (255, 40, 200),
        "motorcyclist": (150, 30, 90),
        "road": (255, 0, 255),
        "parking": (255, 150, 255),
        "sidewalk": (75, 0, 75),
        "other-ground": (175, 0, 75),
        "building": (255, 200, 0),
        "fence": (255, 120, 50),
        "vegetation": (0, 175, 0),
        "trunk": (135, 60, 0),
        "terrain": (150, 240, 80),
        "pole": (255, 240, 150),
        "traffic-sign": (255, 0, 0),
    }
)
SEMANTICKITTI_PALETTE: tuple[tuple[int, int, int], ...] = _palette(SEMANTICKITTI_CLASSES, _KITTI_COLOURS)


def palette_array(palette: tuple[tuple[int, int, int], ...] = OCC3D_PALETTE) -> np.ndarray:
    """The palette as a fresh ``(C, 3) uint8`` array (safe to modify)."""
    return np.asarray(palette, dtype=np.uint8)


def remap_lut(learning_map: Mapping[int, int], for_completion: bool = True, ignore: int = 255) -> np.ndarray:
    """Lookup table raw id -> learning class, ``(max_raw + 1,) uint8``, of a raw-id learning map.

    With ``for_completion`` (the SSC evaluations), every raw id that the map sends to 0 except raw
    0 itself becomes ``ignore``, and raw ids missing from the map are ``ignore`` too, as the
    semantic-kitti-api's completion evaluation and SSCBench's label preprocessing do: only "empty"
    stays empty. Without it, unknown raw ids are 0.
    """
    size = max(learning_map) + 1
    lut = np.full(size, ignore if for_completion else 0, dtype=np.uint8)
    for raw, cls in learning_map.items():
        lut[raw] = cls
    if for_completion:
        lut[lut == 0] = ignore
        lut[0] = 0
    return lut


def semantickitti_remap_lut(for_completion: bool = True) -> np.ndarray:
    """SemanticKITTI's lookup table raw id -> learning class (:func:`remap_lut` of
    :data:`SEMANTICKITTI_LEARNING_MAP`), ``(max_raw + 1,) uint8``, 255 = ignored."""
    return remap_lut(SEMANTICKITTI_LEARNING_MAP, for_completion, SEMANTICKITTI_IGNORE)


def semantickitti_inverse_lut() -> np.ndarray:
    """Lookup table learning class -> raw id, ``(20,) uint16``."""
    return np.asarray([SEMANTICKITTI_LEARNING_MAP_INV[c] for c in range(SEMANTICKITTI_NUM_CLASSES)], dtype=np.uint16)


# ------------------------------------------------------------------------------------ SSCBench-KITTI-360

#: SSCBench-KITTI-360's 19 learning classes (0 = empty), in learning-id order: SemanticKITTI's less bicyclist,
#: motorcyclist and trunk (unlabelled, ignored in completion), then other-structure and other-object.
KITTI360_CLASSES: tuple[str, ...] = tuple(
    n for n in SEMANTICKITTI_CLASSES if n not in ("bicyclist", "motorcyclist", "trunk")
) + ("other-structure", "other-object")
KITTI360_NUM_CLASSES = 19
KITTI360_IGNORE = 255

#: SSCBench's ``kitti360.yaml`` ``learning_map`` (raw label id, the SemanticKITTI raw ids -> learning class) and
#: ``learning_map_inv`` (learning class -> the raw label id a prediction ``.label`` holds).
KITTI360_LEARNING_MAP, KITTI360_LEARNING_MAP_INV = _learning_maps(KITTI360_CLASSES, 3)

#: The yaml's ``color_map`` as RGB by learning class.
KITTI360_PALETTE: tuple[tuple[int, int, int], ...] = _palette(
    KITTI360_CLASSES,
    {**_KITTI_COLOURS, "other-vehicle": (0, 0, 255), "other-structure": (255, 150, 0), "other-object": (50, 255, 255)},
)


def kitti360_remap_lut(for_completion: bool = True) -> np.ndarray:
    """SSCBench-KITTI-360's lookup table raw id -> learning class (:func:`remap_lut` of
    :data:`KITTI360_LEARNING_MAP`), ``(260,) uint8``, 255 = ignored."""
    return remap_lut(KITTI360_LEARNING_MAP, for_completion, KITTI360_IGNORE)


def kitti360_inverse_lut() -> np.ndarray:
    """Lookup table learning class -> raw id, ``(19,) uint16``."""
    return np.asarray([KITTI360_LEARNING_MAP_INV[c] for c in range(KITTI360_NUM_CLASSES)], dtype=np.uint16)


# ------------------------------------------------------------------------------------ NYUv2 SSC
#: NYUv2 semantic scene completion (SSCNet's 11 classes + empty, MonoScene's order): 0 = empty.
NYU_CLASSES: tuple[str, ...] = (
    "empty",
    "ceiling",
    "floor",
    "wall",
    "window",
    "chair",
    "bed",
    "sofa",
    "table",
    "tvs",
    "furniture",
    "objects",
)
NYU_NUM_CLASSES = 12
NYU_IGNORE = 255
#: The label ids of the SSCNet ``.bin`` files (36 categories + empty) -> the 12 classes above, as
#: MonoScene's NYU preprocessing maps them (its ``seg_class_map``; 255 stays 255).
NYU_RAW_TO_CLASS: tuple[int, ...] = (
    0, 1, 2, 3, 4, 11, 5, 6, 7, 8, 8, 10, 10, 10, 11, 11, 9, 8, 11,
    11, 11, 11, 11, 11, 11, 11, 11, 10, 10, 11, 8, 10, 11, 9, 11, 11, 11,
)  # fmt: skip
#: A raw id per class for writing ``.bin`` files (the smallest raw id mapping to it).
NYU_CLASS_TO_RAW: tuple[int, ...] = tuple(NYU_RAW_TO_CLASS.index(c) for c in range(NYU_NUM_CLASSES))
#: Colours of the NYUv2 classes (RGB, uint8), index = class; empty is white.
NYU_PALETTE: tuple[tuple[int, int, int], ...] = _palette(
    NYU_CLASSES,
    {
        "empty": (255, 255, 255),
        "ceiling": (22, 191, 206),
        "floor": (214, 38, 40),
        "wall": (43, 160, 43),
        "window": (158, 216, 229),
        "chair": (114, 158, 206),
        "bed": (204, 204, 91),
        "sofa": (255, 186, 119),
        "table": (147, 102, 188),
        "tvs": (30, 119, 181),
        "furniture": (188, 188, 33),
        "objects": (255, 127, 12),
    },
)


class ClassIdsOutside(ValueError):
    """Labels holding class ids outside a class table: one line naming where (the file, the frame), the
    ids and how many voxels hold them (:func:`refuse_ids_outside`)."""

    def __init__(self, message: str, ids: tuple[int, ...] = (), voxels: int = 0) -> None:
        # the message alone also makes one: a DataLoader worker's error is raised again from its type and message
        super().__init__(message)
        self.ids, self.voxels = ids, voxels


def refuse_ids_outside(
    labels: Any, num_classes: int, ignore: int | None, where: Any, whose: str = "the format's ids"
) -> None:
    """Refuse integer ``labels`` (a NumPy array or a torch tensor on the CPU) holding an id outside ``0 ..
    num_classes - 1`` other than ``ignore``: a :class:`ClassIdsOutside` ``WHERE: class id 7 (1 voxels) outside
    WHOSE 0..4 and 255 (ignored)``, ``where`` a string or a callable giving it (called only then). Float
    labels and empty ones are not checked. One pass over the labels where every id is in range (scoring,
    training and the class counts read each frame through it)."""
    a = np.asarray(labels)
    if a.dtype.kind not in "iu" or not a.size:
        return
    lo, hi = int(a.min()), int(a.max())
    if lo >= 0 and hi < num_classes:
        return
    if lo >= 0 and hi < 1 << 16:  # the ids counted in one pass (the ignore id is in most frames of some formats)
        counts = np.bincount(a.reshape(-1), minlength=hi + 1)
        counts[: min(num_classes, hi + 1)] = 0
        if ignore is not None and 0 <= ignore <= hi:
            counts[ignore] = 0
        found = np.flatnonzero(counts)
        voxels = int(counts.sum())
    else:
        bad = (a < 0) | (a >= num_classes)
        if ignore is not None:
            bad &= a != ignore
        found = np.unique(a[bad])
        voxels = int(bad.sum())
    if not voxels:
        return
    ids = tuple(int(v) for v in found[:5])
    said = f"class id {ids[0]}" if len(ids) == 1 else f"class ids {', '.join(map(str, ids))}"
    allowed = f"0..{num_classes - 1}" + (f" and {ignore} (ignored)" if ignore is not None else "")
    raise ClassIdsOutside(
        f"{where() if callable(where) else where}: {said} ({voxels} voxels) outside {whose} {allowed}", ids, voxels
    )
