"""SSCBench-KITTI-360 semantic scene completion: its on-disk layout, read and written.

SSCBench-KITTI-360 (Li et al., SSCBench, 2023) is KITTI-360 in the SemanticKITTI SSC file
layout, with KITTI-360's class table, split and calibration. Layout under ``root`` (the
``KITTI-360`` folder of the release)::

    data_2d_raw/<seq>/image_00/data_rect/<NNNNNN>.png  left rectified camera (1408 x 376 on the real data)
    data_2d_raw/<seq>/voxels/<NNNNNN>.bin              input occupancy (LiDAR sweep), bit-packed
    data_2d_raw/<seq>/voxels/<NNNNNN>.label            uint16 raw label ids per voxel (SemanticKITTI ids)
    data_2d_raw/<seq>/voxels/<NNNNNN>.invalid          uint8 per voxel, 1 = left out (NOT bit-packed)
    data_2d_raw/<seq>/cam0_to_world.txt                (optional) "<frame> <16 numbers>" per line
    preprocess/labels/<seq>/<NNNNNN>_1_1.npy           (256, 256, 32) learning classes, 255 = ignored
    preprocess/labels/<seq>/<NNNNNN>_1_8.npy           (32, 32, 4) uint8, the 1/8 labels
    calibration/perspective.txt                        (optional) ``P_rect_00: <12 numbers>``
    calibration/calib_cam_to_velo.txt                  (optional) 12 numbers: camera 0 -> velodyne;
                                                       alone (no perspective.txt): no camera
    data_3d_raw/<seq>/velodyne_points/data/<NNNNNNNNNN>.bin  (optional) the scans, float32 x y z reflectance

``<seq>`` is ``2013_05_28_drive_00XX_sync``; every 5th frame is labelled. The grid is
SemanticKITTI's: 256 x 256 x 32 at 0.2 m from [0, -25.6, -2] m in the velodyne frame, C order
``[x, y, z]``.

What differs from SemanticKITTI, as SSCBench's released code has it:

- 19 learning classes (0 = empty; :data:`occkit.labels.KITTI360_CLASSES`) through its own
  learning map of the same raw ids (:func:`occkit.labels.kitti360_remap_lut`); other-object (99)
  and other-structure (52) are scored classes, trunk and the riders are ignored.
- The ``.invalid`` files hold one byte per voxel (the released preprocessing reads them with
  ``np.fromfile(..., uint8)`` and no unpacking); this reader also accepts bit-packed ones.
- Voxels with a non-zero raw label are never invalid: the preprocessing clears the invalid flag
  where the label is not 0 before it writes 255 into the invalid rest. The ``_1_1.npy`` files
  hold the result, and so does what this reader returns from ``.label`` + ``.invalid``.
- The split: train 00, 02-05, 07, 10; val 06; test 09 (:data:`KITTI360_SPLITS`).
- The calibration: the benchmark's loaders use KITTI-360's rectified camera 0 intrinsics
  (``P_rect_00``) and the inverse of ``calib_cam_to_velo`` as velodyne -> camera, without
  ``R_rect_00`` (a 0.4 degree rotation); this reader does the same, from ``calibration/`` when
  present and from KITTI-360's published values (:data:`KITTI360_P_RECT_00`,
  :data:`KITTI360_CAM_TO_VELO`) otherwise.

In a :class:`~occkit.data.sample.Sample` the "ego" frame is the velodyne frame, the one camera is
``image_00``, ``occupancy`` holds learning classes with 255 where ignored or invalid, and
``mask_camera`` = ``mask_lidar`` = not invalid. Synthetic extras as
:mod:`occkit.data.semantickitti`'s, under ``data_2d_raw/<seq>/extras/``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch

from occkit.data.layout_files import existing, numbers, one_of, rigid, sscnet_downsample, through_table
from occkit.data.semantickitti import (
    SSC_SHAPE,
    SemanticKITTIDataset,
    camera_from_calib,
    read_label,
    read_ssc_prediction,
    require_invalid,
    unpack_bits,
    write_bitpacked,
    write_ssc_prediction,
)
from occkit.fileio import load_npy, save_npy_atomic, write_bytes_atomic, write_text_atomic
from occkit.labels import (
    KITTI360_IGNORE,
    KITTI360_LEARNING_MAP,
    KITTI360_NUM_CLASSES,
    kitti360_inverse_lut,
    kitti360_remap_lut,
    refuse_ids_outside,
)

#: The SSCBench split (sequences ``2013_05_28_drive_00XX_sync``).
KITTI360_SPLITS: dict[str, tuple[str, ...]] = {
    "train": tuple(f"2013_05_28_drive_{i:04d}_sync" for i in (0, 2, 3, 4, 5, 7, 10)),
    "val": ("2013_05_28_drive_0006_sync",),
    "test": ("2013_05_28_drive_0009_sync",),
}
#: KITTI-360's ``perspective.txt`` ``P_rect_00`` (rectified camera 0, 1408 x 376).
KITTI360_P_RECT_00: tuple[tuple[float, ...], ...] = (
    (552.554261, 0.0, 682.049453, 0.0),
    (0.0, 552.554261, 238.769549, 0.0),
    (0.0, 0.0, 1.0, 0.0),
)
#: KITTI-360's ``calib_cam_to_velo.txt``: camera 0 -> velodyne, 3 x 4.
KITTI360_CAM_TO_VELO: tuple[tuple[float, ...], ...] = (
    (0.04307104361, -0.08829286498, 0.995162929, 0.8043914418),
    (-0.999004371, 0.007784614041, 0.04392796942, 0.2993489574),
    (-0.01162548558, -0.9960641394, -0.08786966659, -0.1770225824),
)
KITTI360_IMAGE_SIZE: tuple[int, int] = (376, 1408)
_N = int(np.prod(SSC_SHAPE))
#: Where :class:`Kitti360Dataset` reads a frame's ground truth from (its ``labels``).
LabelSource = Literal["auto", "preprocess", "voxels"]
_RAW_KNOWN = np.zeros(1 << 16, dtype=bool)
_RAW_KNOWN[list(KITTI360_LEARNING_MAP)] = True


def sequence_name(number: int) -> str:
    """``2013_05_28_drive_00XX_sync`` of sequence ``XX``."""
    return f"2013_05_28_drive_{number:04d}_sync"


# ------------------------------------------------------------------------------------ labels


def raw_to_learning(raw: np.ndarray, where: str | os.PathLike = "labels") -> np.ndarray:
    """Raw ids to learning classes (uint8, 255 = ignored) through SSCBench-KITTI-360's completion
    map; a raw id outside its table raises naming ``where``."""
    return through_table(raw, kitti360_remap_lut(True), _RAW_KNOWN, where, "SSCBench-KITTI-360's learning map")


def learning_to_raw(classes: np.ndarray, where: str | os.PathLike = "labels") -> np.ndarray:
    """Learning classes ``[0, 19)`` to uint16 raw ids through the inverse map (prediction files)."""
    lut, n = kitti360_inverse_lut(), KITTI360_NUM_CLASSES
    return through_table(
        classes, lut, np.arange(lut.size) < n, where, f"SSCBench-KITTI-360's learning classes 0..{n - 1}", "classes"
    )


def read_invalid(path: str | os.PathLike) -> np.ndarray:
    """An ``.invalid`` file: one uint8 (0 or 1) per voxel, as SSCBench-KITTI-360 ships them, or
    bit-packed as SemanticKITTI's; ``(256, 256, 32)`` bool."""
    data = np.fromfile(existing(path, "invalid-mask file"), dtype=np.uint8)
    if data.size == _N:
        if data.max(initial=0) > 1:
            raise ValueError(f"{path}: one byte per voxel must be 0 or 1, found {int(data.max())}")
        return data.reshape(SSC_SHAPE).astype(bool)
    if data.size == _N // 8:
        return unpack_bits(data, SSC_SHAPE)
    raise ValueError(f"{path}: holds {data.size} bytes, expected {_N} (one per voxel) or {_N // 8} (bit-packed)")


def write_invalid(path: str | os.PathLike, invalid: np.ndarray) -> Path:
    """Write an invalid mask as SSCBench-KITTI-360 does: one uint8 (0 / 1) per voxel (atomically)."""
    invalid = np.asarray(invalid)
    if invalid.shape != SSC_SHAPE:
        raise ValueError(f"{path}: invalid mask has shape {invalid.shape}, expected {SSC_SHAPE}")
    return write_bytes_atomic(path, invalid.astype(bool).astype(np.uint8).reshape(-1).tobytes())


#: Read a ``.bin`` input occupancy, bit-packed (as written here and by SemanticKITTI) or one byte per
#: voxel: ``(256, 256, 32)`` bool.
read_voxel_mask = read_invalid
#: Write a ``.bin`` input occupancy bit-packed (atomically), as SemanticKITTI's.
write_voxel_mask = write_bitpacked


def labels_from_voxels(raw: np.ndarray, invalid: np.ndarray | None, where: str | os.PathLike = "labels") -> np.ndarray:
    """The benchmark's ground truth from a frame's ``.label`` raw ids and ``.invalid`` mask: learning
    classes ``(256, 256, 32)`` uint8 with 255 where ignored or invalid; a voxel with a non-zero raw
    label is never invalid (SSCBench's preprocessing)."""
    labels = raw_to_learning(raw, where)
    if invalid is not None:
        labels[np.asarray(invalid, dtype=bool) & (np.asarray(raw) == 0)] = KITTI360_IGNORE
    return labels


def downsample_labels(labels: np.ndarray, factor: int = 8) -> np.ndarray:
    """The ``_1_<factor>`` labels of SSCBench's preprocessing (SSCNet's rule): a block whose
    empty-or-ignored voxels exceed 95 % is empty (0) when it has more empty than ignored voxels
    and 255 otherwise; any other block takes its most frequent class (the smallest id on a tie).
    ``(X, Y, Z)`` -> ``(X / f, Y / f, Z / f)`` uint8."""
    return sscnet_downsample(labels, factor, KITTI360_IGNORE, KITTI360_IGNORE)  # every class below 255 counted


def check_labels(labels: np.ndarray, where: str | os.PathLike, shape: tuple[int, ...] = SSC_SHAPE) -> np.ndarray:
    """Learning classes of a ``.npy`` as uint8; a wrong shape, a non-integer value or a class
    outside ``[0, 19)`` and 255 raises naming ``where``."""
    labels = np.asarray(labels)
    if labels.shape != tuple(shape):
        raise ValueError(f"{where}: labels of shape {labels.shape}, expected {tuple(shape)}")
    if labels.dtype.kind not in "uif":
        raise ValueError(f"{where}: labels of dtype {labels.dtype}, expected integer or float class ids")
    if labels.dtype.kind == "f" and not np.array_equal(labels, np.round(labels)):
        raise ValueError(f"{where}: labels hold non-integer or NaN values")
    ids = labels.astype(np.int64)
    refuse_ids_outside(ids, KITTI360_NUM_CLASSES, KITTI360_IGNORE, where, "SSCBench-KITTI-360's classes")
    return ids.astype(np.uint8)


def preprocessed_paths(root: str | os.PathLike, sequence: str, frame: str) -> tuple[Path, Path]:
    """``preprocess/labels/<seq>/<frame>_1_1.npy`` and ``..._1_8.npy``."""
    d = Path(root) / "preprocess" / "labels" / sequence
    return d / f"{frame}_1_1.npy", d / f"{frame}_1_8.npy"


def write_preprocessed(root: str | os.PathLike, sequence: str, frame: str, labels: np.ndarray) -> tuple[Path, Path]:
    """Write a frame's ``_1_1.npy`` (float32, as the released preprocessing saves its array) and
    ``_1_8.npy`` (uint8, :func:`downsample_labels`) from learning classes with 255."""
    labels = check_labels(labels, f"{sequence}/{frame}")
    p1, p8 = preprocessed_paths(root, sequence, frame)
    save_npy_atomic(p1, labels.astype(np.float32))
    save_npy_atomic(p8, downsample_labels(labels, 8))
    return p1, p8


def read_preprocessed(path: str | os.PathLike, shape: tuple[int, ...] = SSC_SHAPE) -> np.ndarray:
    """A ``_1_1.npy`` (or, with its shape, ``_1_8.npy``) as uint8 learning classes, checked."""
    return check_labels(load_npy(path, "label"), Path(path), shape)  # an empty or foreign file too: one line


# ------------------------------------------------------------------------------------ predictions


def write_prediction(path: str | os.PathLike, classes: np.ndarray | torch.Tensor) -> Path:
    """A prediction file: ``(256, 256, 32)`` learning classes -> uint16 raw ids ``.label`` (the
    SemanticKITTI submission format with KITTI-360's inverse map), atomically."""
    return write_ssc_prediction(path, classes, learning_to_raw)


def read_prediction(path: str | os.PathLike) -> np.ndarray:
    """A prediction ``.label`` as learning classes ``(256, 256, 32)`` uint8 (:func:`read_ssc_prediction`
    with KITTI-360's map); a wrong size or a raw id that is not a class raises naming the file."""
    return read_ssc_prediction(path, raw_to_learning)


def prediction_path(folder: str | os.PathLike, token: str) -> Path:
    """``<folder>/<seq>/<frame>.label`` of the token ``"<seq>/<frame>"``."""
    seq, _, frame = token.partition("/")
    if not seq or not frame or "/" in frame:
        raise ValueError(f"token {token!r} is not '<sequence>/<frame>'")
    return Path(folder) / seq / f"{frame}.label"


# ------------------------------------------------------------------------------------ calibration

_KEY = re.compile(r"^\s*([A-Za-z0-9_]+)\s*:(.*)$")


def read_perspective(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """KITTI-360's ``perspective.txt``: every ``KEY: numbers`` line as a float64 vector (the
    ``calib_time`` line is skipped); ``P_rect_00`` must be there (12 numbers)."""
    path = existing(path, "calibration file")
    out: dict[str, np.ndarray] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        m = _KEY.match(line)
        if m and m.group(1) != "calib_time":
            key = m.group(1)
            out[key] = numbers(m.group(2), f"{path}:{n}: {key}", 12 if key == "P_rect_00" else None)
    if "P_rect_00" not in out:
        raise KeyError(f"{path}: missing 'P_rect_00'")
    return out


def read_cam_to_velo(path: str | os.PathLike) -> np.ndarray:
    """KITTI-360's ``calib_cam_to_velo.txt`` (12 numbers): camera 0 -> velodyne ``(4, 4)`` float64."""
    path = existing(path, "calibration file")
    T = np.eye(4)
    T[:3] = numbers(path.read_text(), f"{path}: camera -> velodyne", 12).reshape(3, 4)
    return T


def write_calibration(
    root: str | os.PathLike, P_rect_00: np.ndarray | None, cam_to_velo: np.ndarray, image_size: tuple[int, int]
) -> None:
    """Write ``calibration/perspective.txt`` (``S_rect_00``, ``R_rect_00`` = identity, ``P_rect_00``)
    and ``calibration/calib_cam_to_velo.txt`` as KITTI-360 lays them out, atomically; ``P_rect_00`` None:
    ``calib_cam_to_velo.txt`` alone (no camera: "camera 0" is then a frame the poses are given in)."""
    root = Path(root)
    T = np.asarray(cam_to_velo, dtype=np.float64)[:3].reshape(3, 4)
    H, W = image_size

    def fmt(v: np.ndarray) -> str:
        return " ".join(f"{x:.12e}" for x in np.asarray(v, dtype=np.float64).reshape(-1))

    write_text_atomic(root / "calibration" / "calib_cam_to_velo.txt", fmt(T) + "\n")
    if P_rect_00 is None:
        return
    P = np.asarray(P_rect_00, dtype=np.float64).reshape(3, 4)
    write_text_atomic(
        root / "calibration" / "perspective.txt",
        f"S_rect_00: {fmt(np.array([W, H]))}\nR_rect_00: {fmt(np.eye(3))}\nP_rect_00: {fmt(P)}\n",
    )


def read_calibration(root: str | os.PathLike, camera: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
    """``P_rect_00`` ``(3, 4)`` and ``Tr`` = velodyne -> camera ``(4, 4)`` (the inverse of
    ``calib_cam_to_velo``, no ``R_rect_00``, as the benchmark's loaders) from ``root/calibration/``,
    or KITTI-360's published values when that folder is absent. With ``camera`` False, a
    ``calib_cam_to_velo.txt`` without ``perspective.txt`` gives ``P_rect_00`` None: no camera (labels
    ``occkit label`` wrote from a recording without cameras; docs/labels.md)."""
    d = Path(root) / "calibration"
    persp, c2v = d / "perspective.txt", d / "calib_cam_to_velo.txt"
    P: np.ndarray | None
    if not persp.exists() and not c2v.exists():
        P = np.asarray(KITTI360_P_RECT_00, dtype=np.float64).reshape(3, 4)
        C2V = np.eye(4)
        C2V[:3] = np.asarray(KITTI360_CAM_TO_VELO, dtype=np.float64).reshape(3, 4)
    else:
        P = None if not camera and not persp.exists() else read_perspective(persp)["P_rect_00"].reshape(3, 4)
        C2V = read_cam_to_velo(c2v)
    return P, np.linalg.inv(C2V)


def read_cam0_to_world(path: str | os.PathLike) -> dict[int, np.ndarray]:
    """``cam0_to_world.txt``: ``{frame: (4, 4) float64}`` from lines ``<frame> <16 numbers>``."""
    path = Path(path)
    out: dict[int, np.ndarray] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        v = numbers(line, f"{path}: line {n}", 17)
        out[int(v[0])] = rigid(v[1:].reshape(4, 4), f"{path}: line {n}")
    return out


def write_cam0_to_world(path: str | os.PathLike, poses: dict[int, np.ndarray]) -> Path:
    """Write ``cam0_to_world.txt`` (``<frame> <16 numbers>`` per line), atomically."""
    lines = [
        f"{f} " + " ".join(f"{x:.9e}" for x in np.asarray(T, dtype=np.float64).reshape(-1)) for f, T in poses.items()
    ]
    return write_text_atomic(path, "\n".join(lines) + "\n")


# ------------------------------------------------------------------------------------ dataset


class Kitti360Dataset(SemanticKITTIDataset):
    """Frames of an SSCBench-KITTI-360 layout as :class:`~occkit.data.sample.Sample` (monocular,
    ``image_00``); the SemanticKITTI reader with KITTI-360's paths, classes, invalid files, split
    and calibration.

    Args:
        root: the folder holding ``data_2d_raw/`` (and ``preprocess/``, ``calibration/``).
        split: ``"train"``, ``"val"``, ``"test"`` (SSCBench's sequences; a ``splits.json`` at
            ``root`` takes precedence), ``"all"``, or a tuple of sequence names.
        load_images, load_gt, frame_stride, load_extras: as :class:`SemanticKITTIDataset`.
        labels: where the ground truth comes from: ``"preprocess"`` (``_1_1.npy``, what the
            benchmark's loaders read), ``"voxels"`` (``.label`` + ``.invalid``), or ``"auto"``
            (the ``.npy`` when a frame has one, else the voxels).
    """

    format_name = "kitti360"
    CAMERA = "image_00"
    IMAGE_DIR = "image_00/data_rect"
    SEQUENCES, LAYOUT, SPLITS = "data_2d_raw", "an SSCBench-KITTI-360 layout", KITTI360_SPLITS

    def __init__(self, root: str | os.PathLike, *args: Any, labels: LabelSource = "auto", **options: Any) -> None:
        self.labels = one_of(labels, get_args(LabelSource), "labels")
        self.P_rect_00, self.T_cam_from_velo = read_calibration(root, camera=False)
        super().__init__(root, *args, **options)

    def _frame_ids(self, seq: Path, load_gt: bool) -> set[str]:
        """The frames with a label as :attr:`labels` says (a ``_1_1.npy``, a ``.label``), and without
        ``load_gt`` those with an input ``.bin`` too."""
        ids = set()
        if self.labels != "voxels":
            pre = self.root / "preprocess" / "labels" / seq.name
            ids |= {p.name[: -len("_1_1.npy")] for p in pre.glob("*_1_1.npy")}
        if self.labels != "preprocess":
            ids |= super()._frame_ids(seq, True)
        return ids if load_gt else ids | super()._frame_ids(seq, False)

    def _camera_and_poses(self, seq: Path) -> tuple[tuple[np.ndarray, np.ndarray] | None, Any]:
        P, Tr = self.P_rect_00, self.T_cam_from_velo
        poses = seq / "cam0_to_world.txt"
        return (
            camera_from_calib(P, Tr) if P is not None else None,
            {f: T @ Tr for f, T in read_cam0_to_world(poses).items()} if poses.is_file() else None,
        )

    def frame_pose(self, i: int) -> np.ndarray | None:
        s, f = self.frames[i]
        poses = self._poses[s]
        return None if poses is None else poses.get(int(f))  # type: ignore[union-attr]

    def read_input_occupancy(self, i: int) -> np.ndarray | None:
        path = self.voxel_path(i, "bin")
        return read_voxel_mask(path) if path.is_file() else None

    def label_path(self, i: int) -> Path:
        """The file the frame's ground truth is read from (``_1_1.npy`` or ``.label``)."""
        s, f = self.frames[i]
        npy = preprocessed_paths(self.root, s, f)[0]
        if self.labels == "preprocess" or (self.labels == "auto" and npy.is_file()):
            return npy
        return self.voxel_path(i, "label")

    def load_gt_arrays(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Learning classes ``(256, 256, 32)`` uint8 (255 where ignored or invalid) and the
        invalid mask the benchmark applies ``(256, 256, 32)`` bool (the ``.invalid`` voxels whose
        raw label is 0; from a ``_1_1.npy``, where it is already 255, all False). A ``.label``
        without its ``.invalid`` raises naming the missing file."""
        path = self.label_path(i)
        if path.suffix == ".npy":
            return read_preprocessed(path), np.zeros(SSC_SHAPE, dtype=bool)
        raw = read_label(path)
        invalid = read_invalid(require_invalid(path, self.voxel_path(i, "invalid")))  # SSCBench's code needs it too
        invalid &= raw == 0
        return labels_from_voxels(raw, invalid, path), invalid
