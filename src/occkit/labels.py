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

#: semantic-kitti.yaml `learning_map`: raw label id -> learning class.
SEMANTICKITTI_LEARNING_MAP = MappingProxyType(
    {
        0: 0,
        1: 0,
        10: 1,
        11: 2,
        13: 5,
        15: 3,
        16: 5,
        18: 4,
        20: 5,
        30: 6,
        31: 7,
        32: 8,
        40: 9,
        44: 10,
        48: 11,
        49: 12,
        50: 13,
        51: 14,
        52: 0,
        60: 9,
        70: 15,
        71: 16,
        72: 17,
        80: 18,
        81: 19,
        99: 0,
        252: 1,
        253: 7,
        254: 6,
        255: 8,
        256: 5,
        257: 5,
        258: 4,
        259: 5,
    }
)
#: semantic-kitti.yaml `learning_map_inv`: learning class -> raw label id.
SEMANTICKITTI_LEARNING_MAP_INV = MappingProxyType(
    {
        0: 0,
        1: 10,
        2: 11,
        3: 15,
        4: 18,
        5: 20,
        6: 30,
        7: 31,
        8: 32,
        9: 40,
        10: 44,
        11: 48,
        12: 49,
        13: 50,
        14: 51,
        15: 70,
        16: 71,
        17: 72,
        18: 80,
        19: 81,
    }
)

SEMANTICKITTI_PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0),
    (100, 150, 245),
    (100, 230, 245),
    (30, 60, 150),
    (80, 30, 180),
    (100, 80, 250),
    (255, 30, 30),
    (255, 40, 200),
    (150, 30, 90),
    (255, 0, 255),
    (255, 150, 255),
    (75, 0, 75),
    (175, 0, 75),
    (255, 200, 0),
    (255, 120, 50),
    (0, 175, 0),
    (135, 60, 0),
    (150, 240, 80),
    (255, 240, 150),
    (255, 0, 0),
)


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

#: SSCBench-KITTI-360's 19 learning classes (0 = empty), in learning-id order.
KITTI360_CLASSES: tuple[str, ...] = (
    "empty",
    "car",
    "bicycle",
    "motorcycle",
    "truck",
    "other-vehicle",
    "person",
    "road",
    "parking",
    "sidewalk",
    "other-ground",
    "building",
    "fence",
    "vegetation",
    "terrain",
    "pole",
    "traffic-sign",
    "other-structure",
    "other-object",
)
KITTI360_NUM_CLASSES = 19
KITTI360_IGNORE = 255

#: SSCBench's ``kitti360.yaml`` ``learning_map``: raw label id (the SemanticKITTI raw ids) ->
#: learning class. Unlike SemanticKITTI: bicyclist, motorcyclist and trunk are unlabelled (ignored
#: in completion), other-structure (52) and other-object (99) are classes of their own.
KITTI360_LEARNING_MAP = MappingProxyType(
    {
        0: 0,
        1: 0,
        10: 1,
        11: 2,
        13: 5,
        15: 3,
        16: 5,
        18: 4,
        20: 5,
        30: 6,
        31: 0,
        32: 0,
        40: 7,
        44: 8,
        48: 9,
        49: 10,
        50: 11,
        51: 12,
        52: 17,
        60: 7,
        70: 13,
        71: 0,
        72: 14,
        80: 15,
        81: 16,
        99: 18,
        252: 1,
        253: 0,
        254: 6,
        255: 0,
        256: 5,
        257: 5,
        258: 4,
        259: 5,
    }
)
#: ``learning_map_inv``: learning class -> raw label id (what a prediction ``.label`` holds).
KITTI360_LEARNING_MAP_INV = MappingProxyType(
    {
        0: 0,
        1: 10,
        2: 11,
        3: 15,
        4: 18,
        5: 20,
        6: 30,
        7: 40,
        8: 44,
        9: 48,
        10: 49,
        11: 50,
        12: 51,
        13: 70,
        14: 72,
        15: 80,
        16: 81,
        17: 52,
        18: 99,
    }
)

#: The yaml's ``color_map`` (BGR by raw id) as RGB by learning class.
KITTI360_PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0),
    (100, 150, 245),
    (100, 230, 245),
    (30, 60, 150),
    (80, 30, 180),
    (0, 0, 255),
    (255, 30, 30),
    (255, 0, 255),
    (255, 150, 255),
    (75, 0, 75),
    (175, 0, 75),
    (255, 200, 0),
    (255, 120, 50),
    (0, 175, 0),
    (150, 240, 80),
    (255, 240, 150),
    (255, 0, 0),
    (255, 150, 0),
    (50, 255, 255),
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
NYU_PALETTE: tuple[tuple[int, int, int], ...] = (
    (255, 255, 255),  # empty
    (22, 191, 206),  # ceiling
    (214, 38, 40),  # floor
    (43, 160, 43),  # wall
    (158, 216, 229),  # window
    (114, 158, 206),  # chair
    (204, 204, 91),  # bed
    (255, 186, 119),  # sofa
    (147, 102, 188),  # table
    (30, 119, 181),  # tvs
    (188, 188, 33),  # furniture
    (255, 127, 12),  # objects
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
