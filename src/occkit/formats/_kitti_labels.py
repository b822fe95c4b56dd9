"""The label writers of the KITTI family (``occkit convert`` between SemanticKITTI and
SSCBench-KITTI-360): sequences of one camera and a velodyne, labels on the same 256 x 256 x 32 grid
at 0.2 m in the velodyne frame as ``.label`` raw ids with an ``.invalid`` mask
(:mod:`occkit.data.semantickitti`, :mod:`occkit.data.kitti360`). The sequences keep their names; a
converted folder gets a ``splits.json`` of them, its calibration from the source's, and its images
linked.

Both learning maps send the raw id 1 (outlier) to 255, so a voxel ignored in the learning classes
is written as raw 1; the invalid mask is written as the layout writes it (SemanticKITTI bit-packed,
KITTI-360 one byte per voxel, with the benchmark's ``preprocess/labels`` files).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from occkit.formats.spec import FrameLabels, LabelWriter

FAMILY = "kitti"
#: The raw id both learning maps ignore (``outlier``): what an ignored voxel is written as.
IGNORED_RAW = 1


def read_frame(dataset: Any, i: int, options: dict[str, Any]) -> FrameLabels:
    """Frame ``i`` of a SemanticKITTI-layout dataset: learning classes (255 ignored), the invalid
    mask, its image, and its camera (``K``, ``T_cam_from_lidar``) for the target's calibration."""
    s, f = dataset.frames[i]
    labels, invalid = dataset.load_gt_arrays(i)
    K, T_cam_from_lidar = dataset._calib[s]
    image = dataset.image_path(i)
    size = None
    if Path(image).is_file():
        from PIL import Image

        with Image.open(image) as im:
            size = [im.height, im.width]
    return FrameLabels(
        token=f"{s}/{f}",
        scene=s,
        semantics=np.asarray(labels, dtype=np.uint8),
        masks={"invalid": np.asarray(invalid, dtype=bool)},
        T_ego_from={"lidar": np.eye(4)},
        sensor_files={
            k: Path(v)
            for k, v in ((dataset.CAMERA, image), ("input_occupancy", dataset.voxel_path(i, "bin")))
            if Path(v).is_file()
        },
        record={
            "sequence": s,
            "frame": f,
            "K": np.asarray(K).tolist(),
            "T_cam_from_lidar": np.asarray(T_cam_from_lidar).tolist(),
            "image_size": size,
        },
    )


def read_kitti360_frame(dataset: Any, i: int, options: dict[str, Any]) -> FrameLabels:
    """As :func:`read_frame`, from the frame's ``.label`` and ``.invalid`` where it has them: the
    learning classes of the raw ids and the whole invalid mask, before the benchmark folds the
    invalid unlabelled voxels into 255 (its ``_1_1.npy``), so that a conversion back keeps both. A
    ``.label`` without its ``.invalid`` raises naming the missing file."""
    from occkit.data.kitti360 import raw_to_learning, read_invalid
    from occkit.data.semantickitti import read_label, require_invalid

    frame = read_frame(dataset, i, options)
    label, invalid = dataset.voxel_path(i, "label"), dataset.voxel_path(i, "invalid")
    if label.is_file():
        frame.semantics = raw_to_learning(read_label(label), label)
        frame.masks["invalid"] = read_invalid(require_invalid(label, invalid))
    return frame


def _raw(frame: FrameLabels, inverse: np.ndarray) -> np.ndarray:
    """Raw ids of the frame's learning classes, an ignored voxel as raw 1 (outlier)."""
    sem = frame.semantics.astype(np.int64)
    raw = np.full(sem.shape, IGNORED_RAW, dtype=np.uint16)
    known = sem != 255
    raw[known] = inverse[sem[known]]
    return raw


def semantickitti_files(frame: FrameLabels) -> tuple[str, ...]:
    s, f = frame.record["sequence"], frame.record["frame"]
    return (f"sequences/{s}/voxels/{f}.label", f"sequences/{s}/voxels/{f}.invalid")


def kitti360_files(frame: FrameLabels) -> tuple[str, ...]:
    s, f = frame.record["sequence"], frame.record["frame"]
    return (
        f"preprocess/labels/{s}/{f}_1_1.npy",
        f"data_2d_raw/{s}/voxels/{f}.label",
        f"data_2d_raw/{s}/voxels/{f}.invalid",
        f"preprocess/labels/{s}/{f}_1_8.npy",
    )


def _link_sensors(out: Path, frame: FrameLabels, image_dir: str, voxel_dir: str) -> None:
    """The frame's image and ``.bin`` input occupancy (bit-packed in both layouts) linked."""
    from occkit.formats._nusc_labels import _link

    for name, src in frame.sensor_files.items():
        folder = voxel_dir if name == "input_occupancy" else image_dir
        _link(Path(src), out / folder / f"{frame.record['frame']}{Path(src).suffix}", out)


def write_semantickitti(out: Path, frame: FrameLabels) -> None:
    from occkit.data.semantickitti import write_bitpacked, write_label
    from occkit.labels import semantickitti_inverse_lut

    label, invalid = semantickitti_files(frame)
    write_label(out / label, _raw(frame, semantickitti_inverse_lut()))
    write_bitpacked(out / invalid, frame.masks.get("invalid", np.zeros(frame.semantics.shape, bool)))
    s = frame.record["sequence"]
    _link_sensors(out, frame, f"sequences/{s}/image_2", f"sequences/{s}/voxels")


def write_kitti360(out: Path, frame: FrameLabels) -> None:
    from occkit.data.kitti360 import labels_from_voxels, write_invalid, write_preprocessed
    from occkit.data.semantickitti import write_label
    from occkit.labels import kitti360_inverse_lut

    _, label, invalid_file, _ = kitti360_files(frame)
    raw = _raw(frame, kitti360_inverse_lut())
    invalid = frame.masks.get("invalid", np.zeros(frame.semantics.shape, bool))
    write_label(out / label, raw)
    write_invalid(out / invalid_file, invalid)
    # the benchmark's own files: 255 where ignored or invalid (and raw 0), as its preprocessing writes
    write_preprocessed(out, frame.record["sequence"], frame.record["frame"], labels_from_voxels(raw, invalid))
    s = frame.record["sequence"]
    _link_sensors(out, frame, f"data_2d_raw/{s}/image_00/data_rect", f"data_2d_raw/{s}/voxels")


def _cameras(frames: list[FrameLabels]) -> dict[str, tuple[np.ndarray, np.ndarray, Any]]:
    out: dict[str, tuple[np.ndarray, np.ndarray, Any]] = {}
    for f in frames:
        out.setdefault(
            f.scene, (np.asarray(f.record["K"]), np.asarray(f.record["T_cam_from_lidar"]), f.record.get("image_size"))
        )
    return out


def _splits(out: Path, frames: list[FrameLabels], options: dict[str, Any]) -> None:
    from occkit.data.semantickitti import SPLITS_FILE
    from occkit.fileio import write_json_atomic

    seqs = {f.scene for f in frames}
    splits = {k: [s for s in v if s in seqs] for k, v in (options.get("scene_splits") or {}).items()}
    write_json_atomic(out / SPLITS_FILE, {k: v for k, v in splits.items() if v})


def finish_semantickitti(out: Path, frames: list[FrameLabels], options: dict[str, Any]) -> list[str]:
    """``sequences/<s>/calib.txt`` (``P2 = K [I | 0]``, ``Tr`` = velodyne -> camera) per sequence
    and ``splits.json``."""
    from occkit.data.semantickitti import write_calib

    for s, (K, T, _) in _cameras(frames).items():
        P = np.concatenate([K, np.zeros((3, 1))], 1)
        write_calib(out / "sequences" / s / "calib.txt", P, T)
    _splits(out, frames, options)
    return ["poses.txt is not carried: copy it from the source where needed"]


def finish_kitti360(out: Path, frames: list[FrameLabels], options: dict[str, Any]) -> list[str]:
    """``calibration/perspective.txt`` and ``calib_cam_to_velo.txt`` (one for the dataset: the first
    sequence's) and ``splits.json``."""
    from occkit.data.kitti360 import KITTI360_IMAGE_SIZE, write_calibration

    cams = _cameras(frames)
    notes = ["the poses are not carried (cam0_to_world.txt): copy them where needed"]
    if cams:
        first, (K, T, size) = next(iter(cams.items()))
        P = np.concatenate([K, np.zeros((3, 1))], 1)
        write_calibration(out, P, np.linalg.inv(T)[:3], tuple(size or KITTI360_IMAGE_SIZE))
        if any(not (np.allclose(K, k) and np.allclose(T, t)) for k, t, _ in cams.values()):
            notes.append(f"the sequences differ in calibration; calibration/ holds {first}'s (KITTI-360 has one)")
    _splits(out, frames, options)
    return notes


def _writer(read: Any, files: Any, write: Any, finish: Any) -> LabelWriter:
    """A writer of the KITTI family, whose layouts keep one mask: the ``.invalid`` voxels."""
    return LabelWriter(family=FAMILY, read=read, files=files, write=write, finish=finish, masks=("invalid",))


SEMANTICKITTI_WRITER = _writer(read_frame, semantickitti_files, write_semantickitti, finish_semantickitti)
KITTI360_WRITER = _writer(read_kitti360_frame, kitti360_files, write_kitti360, finish_kitti360)
