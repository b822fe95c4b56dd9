"""The label writers of the KITTI family (``occkit convert`` between SemanticKITTI and
SSCBench-KITTI-360): sequences of one camera and a velodyne, labels on the same 256 x 256 x 32 grid
at 0.2 m in the velodyne frame as ``.label`` raw ids with an ``.invalid`` mask
(:mod:`occkit.data.semantickitti`, :mod:`occkit.data.kitti360`). The sequences keep their names; a
converted folder gets a ``splits.json`` of them, its calibration from the source's, and its images
linked.

Both learning maps send the raw id 1 (outlier) to 255, so a voxel ignored in the learning classes
is written as raw 1; the invalid mask is written as the layout writes it (SemanticKITTI bit-packed,
KITTI-360 one byte per voxel, with the benchmark's ``preprocess/labels`` files).

A frame that carries its scan (:attr:`FrameLabels.scan`: ``occkit label``'s keyframes, the layouts keeping the
``lidar`` sensor data) has it written as the
layout keeps scans (SemanticKITTI's ``velodyne/<NNNNNN>.bin``, KITTI-360's
``data_3d_raw/<seq>/velodyne_points/data/<NNNNNNNNNN>.bin``: float32 x y z reflectance in the velodyne frame)
with the input occupancy voxelised from it (``voxels/<NNNNNN>.bin``). Records that carry the frame's pose
(``T_world_from_lidar``), ``timestamp`` (microseconds) and ``token`` give each sequence its poses in the
layout's convention (SemanticKITTI's ``poses.txt`` and ``times.txt``; KITTI-360's ``cam0_to_world.txt`` and
the scans' ``timestamps.txt``) and a ``frames.txt``: a line ``<frame> <timestamp> <token>`` a frame, what
each frame was made from (docs/labels.md). A record whose ``K`` is None has no camera: the calibration
then holds the velodyne -> camera 0 transform alone (SemanticKITTI's ``Tr``, KITTI-360's
``calib_cam_to_velo.txt``), camera 0 being the velodyne's frame.

A frame's camera image (:attr:`FrameLabels.sensor_files`: a conversion's source image, ``occkit label``'s
keyframe image of the recording's first camera) is linked as the layout's (SemanticKITTI's
``image_2/<NNNNNN>.png``, KITTI-360's ``image_00/data_rect/<NNNNNN>.png``); one that is not a PNG (a
recording's JPEG) is written as a PNG, the name the layouts' readers read.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from occkit.formats.spec import CameraMaps, FrameLabels, LabelWriter

FAMILY = "kitti"
#: The raw id both learning maps ignore (``outlier``): what an ignored voxel is written as.
IGNORED_RAW = 1


def read_frame(dataset: Any, i: int, options: dict[str, Any]) -> FrameLabels:
    """Frame ``i`` of a SemanticKITTI-layout dataset: learning classes (255 ignored), the invalid
    mask, its image, and its camera (``K``, ``T_cam_from_lidar``) for the target's calibration."""
    s, f = dataset.frames[i]
    labels, invalid = dataset.load_gt_arrays(i)
    camera = dataset._calib[s]  # None: a sequence without a camera
    K, T_cam_from_lidar = camera if camera is not None else (None, np.eye(4))
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
            "K": None if K is None else np.asarray(K).tolist(),
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
    scan = (f"sequences/{s}/voxels/{f}.bin", f"sequences/{s}/velodyne/{f}.bin") if frame.scan is not None else ()
    return (f"sequences/{s}/voxels/{f}.label", f"sequences/{s}/voxels/{f}.invalid", *scan)


def kitti360_files(frame: FrameLabels) -> tuple[str, ...]:
    s, f = frame.record["sequence"], frame.record["frame"]
    scan = (
        (f"data_2d_raw/{s}/voxels/{f}.bin", f"data_3d_raw/{s}/velodyne_points/data/{int(f):010d}.bin")
        if frame.scan is not None
        else ()
    )
    return (
        f"preprocess/labels/{s}/{f}_1_1.npy",
        f"data_2d_raw/{s}/voxels/{f}.label",
        f"data_2d_raw/{s}/voxels/{f}.invalid",
        f"preprocess/labels/{s}/{f}_1_8.npy",
        *scan,
    )


def input_occupancy(scan: np.ndarray) -> np.ndarray:
    """``(256, 256, 32)`` bool: the voxels of the layouts' grid (SemanticKITTI's, in the velodyne frame) that
    hold a point of ``scan`` ``(N, 3+)``: the SSC input, a voxelised scan, as the layouts' ``.bin`` hold it."""
    from occkit.geometry.grid import semantickitti_grid

    grid = semantickitti_grid()
    p = np.asarray(scan, np.float64).reshape(len(scan), -1)[:, :3]
    idx = np.floor((p - np.asarray(grid.range_min)) / np.asarray(grid.voxel_size)).astype(np.int64)
    inside = ((idx >= 0) & (idx < np.asarray(grid.shape))).all(1)
    out = np.zeros(grid.shape, bool)
    out[tuple(idx[inside].T)] = True
    return out


def _write_scan(out: Path, frame: FrameLabels, occupancy: str, scan: str) -> None:
    """The frame's scan (float32 x y z reflectance, KITTI's ``.bin``) and its voxelised input occupancy
    (bit-packed, as both layouts write it)."""
    from occkit.data.semantickitti import write_bitpacked
    from occkit.fileio import write_bytes_atomic

    points = np.ascontiguousarray(np.asarray(frame.scan, "<f4").reshape(-1, 4))
    write_bytes_atomic(out / scan, points.tobytes())
    write_bitpacked(out / occupancy, input_occupancy(points))


def _link_sensors(out: Path, frame: FrameLabels, image_dir: str, voxel_dir: str) -> None:
    """The frame's image and ``.bin`` input occupancy (bit-packed in both layouts) linked; an image that is
    not a PNG (a recording's JPEG) written as one (:func:`png_image`): both layouts' readers read
    ``<frame>.png``."""
    from occkit.formats._nusc_labels import _link

    for name, src in frame.sensor_files.items():
        f = frame.record["frame"]
        if name == "input_occupancy":
            _link(Path(src), out / voxel_dir / f"{f}{Path(src).suffix}", out)
        elif Path(src).suffix.lower() == ".png":
            _link(Path(src), out / image_dir / f"{f}.png", out)
        else:
            png_image(Path(src), out / image_dir / f"{f}.png")


def png_image(src: Path, dst: Path) -> None:
    """``src`` (an image of any kind PIL reads) written as the PNG ``dst`` (atomically; kept where it is
    there); an unreadable image is a one-line ``ValueError`` naming it."""
    import io

    from PIL import Image, UnidentifiedImageError

    from occkit.fileio import write_bytes_atomic

    if dst.exists():
        return
    try:
        with Image.open(src) as im:
            buf = io.BytesIO()
            im.convert("RGB").save(buf, format="PNG")
    except (OSError, UnidentifiedImageError) as e:
        raise ValueError(f"{src}: not an image PIL reads ({e})") from None
    write_bytes_atomic(dst, buf.getvalue())


def write_semantickitti(out: Path, frame: FrameLabels) -> None:
    from occkit.data.semantickitti import write_bitpacked, write_label
    from occkit.labels import semantickitti_inverse_lut

    label, invalid, *scan = semantickitti_files(frame)
    write_label(out / label, _raw(frame, semantickitti_inverse_lut()))
    write_bitpacked(out / invalid, frame.masks.get("invalid", np.zeros(frame.semantics.shape, bool)))
    if scan:
        _write_scan(out, frame, *scan)
    s = frame.record["sequence"]
    _link_sensors(out, frame, f"sequences/{s}/image_2", f"sequences/{s}/voxels")


def write_kitti360(out: Path, frame: FrameLabels) -> None:
    from occkit.data.kitti360 import labels_from_voxels, write_invalid, write_preprocessed
    from occkit.data.semantickitti import write_label
    from occkit.labels import kitti360_inverse_lut

    _, label, invalid_file, _, *scan = kitti360_files(frame)
    raw = _raw(frame, kitti360_inverse_lut())
    invalid = frame.masks.get("invalid", np.zeros(frame.semantics.shape, bool))
    write_label(out / label, raw)
    write_invalid(out / invalid_file, invalid)
    # the benchmark's own files: 255 where ignored or invalid (and raw 0), as its preprocessing writes
    write_preprocessed(out, frame.record["sequence"], frame.record["frame"], labels_from_voxels(raw, invalid))
    if scan:
        _write_scan(out, frame, *scan)
    s = frame.record["sequence"]
    _link_sensors(out, frame, f"data_2d_raw/{s}/image_00/data_rect", f"data_2d_raw/{s}/voxels")


def _cameras(frames: list[FrameLabels]) -> dict[str, tuple[np.ndarray | None, np.ndarray, Any]]:
    """Each sequence's camera: ``K`` (None: no camera), ``T_cam_from_lidar``, the image size."""
    out: dict[str, tuple[np.ndarray | None, np.ndarray, Any]] = {}
    for f in frames:
        K = f.record.get("K")
        out.setdefault(
            f.scene,
            (
                None if K is None else np.asarray(K),
                np.asarray(f.record["T_cam_from_lidar"]),
                f.record.get("image_size"),
            ),
        )
    return out


#: what a record holds that gives the sequences their poses and ``frames.txt``
_CARRIED = ("T_world_from_lidar", "timestamp", "token")


def _sequences(frames: list[FrameLabels]) -> dict[str, list[FrameLabels]] | None:
    """The frames by sequence, in frame order, where every record carries its pose, stamp and token
    (:data:`_CARRIED`: ``occkit label``'s); None where one does not (a conversion: the source's poses are
    not carried)."""
    if not frames or any(any(k not in f.record for k in _CARRIED) for f in frames):
        return None
    out: dict[str, list[FrameLabels]] = {}
    for f in sorted(frames, key=lambda f: (f.scene, f.record["frame"])):
        out.setdefault(f.scene, []).append(f)
    return out


def _frames_txt(path: Path, frames: list[FrameLabels]) -> None:
    """``frames.txt``: ``<frame> <timestamp (microseconds)> <token>`` a line, the token last (the rest of
    the line): which scan of the recording each frame was made from."""
    from occkit.fileio import write_text_atomic

    rows = [f"{f.record['frame']} {int(f.record['timestamp'])} {f.record['token']}" for f in frames]
    write_text_atomic(path, "\n".join(rows) + "\n")


def _matrix_rows(matrices: list[np.ndarray], prefix: list[str] | None = None) -> str:
    lines = []
    for k, T in enumerate(matrices):
        head = f"{prefix[k]} " if prefix else ""
        lines.append(head + " ".join(f"{x:.12e}" for x in np.asarray(T, np.float64).reshape(-1)))
    return "\n".join(lines) + "\n"


def _carry_semantickitti(out: Path, s: str, frames: list[FrameLabels], T_cam_from_lidar: np.ndarray) -> None:
    """A sequence's ``poses.txt`` (KITTI odometry's convention: camera 0's pose of each frame in the first
    frame's camera 0, a 3 x 4 row; the reader's ``poses @ Tr`` gives the velodyne's), ``times.txt``
    (seconds since the first frame) and ``frames.txt``."""
    from occkit.fileio import write_text_atomic

    T_lidar_from_cam = np.linalg.inv(np.asarray(T_cam_from_lidar, np.float64))
    cams = [np.asarray(f.record["T_world_from_lidar"], np.float64) @ T_lidar_from_cam for f in frames]
    first = np.linalg.inv(cams[0])
    seq = out / "sequences" / s
    write_text_atomic(seq / "poses.txt", _matrix_rows([(first @ C)[:3] for C in cams]))
    t0 = int(frames[0].record["timestamp"])
    write_text_atomic(seq / "times.txt", "".join(f"{(int(f.record['timestamp']) - t0) / 1e6:.6e}\n" for f in frames))
    _frames_txt(seq / "frames.txt", frames)


def _carry_kitti360(out: Path, s: str, frames: list[FrameLabels], T_cam_from_lidar: np.ndarray) -> None:
    """A sequence's ``cam0_to_world.txt`` (``<frame> <16 numbers>``: camera 0 -> the recording's world, camera
    0 as the dataset's ``calibration/`` places it), its scans' ``timestamps.txt`` (a UTC date-time a scan, as
    KITTI-360's) and ``frames.txt``."""
    import datetime

    from occkit.fileio import write_text_atomic

    T_lidar_from_cam = np.linalg.inv(np.asarray(T_cam_from_lidar, np.float64))
    poses = {
        int(f.record["frame"]): np.asarray(f.record["T_world_from_lidar"], np.float64) @ T_lidar_from_cam
        for f in frames
    }
    write_text_atomic(
        out / "data_2d_raw" / s / "cam0_to_world.txt", _matrix_rows(list(poses.values()), [str(k) for k in poses])
    )
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    stamps = [
        (epoch + datetime.timedelta(microseconds=int(f.record["timestamp"]))).strftime("%Y-%m-%d %H:%M:%S.%f") + "000"
        for f in frames
    ]
    if any(f.scan is not None for f in frames) or (out / "data_3d_raw" / s).is_dir():
        write_text_atomic(out / "data_3d_raw" / s / "velodyne_points" / "timestamps.txt", "\n".join(stamps) + "\n")
    _frames_txt(out / "data_2d_raw" / s / "frames.txt", frames)


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

    cams = _cameras(frames)
    for s, (K, T, _) in cams.items():
        P = None if K is None else np.concatenate([K, np.zeros((3, 1))], 1)
        write_calib(out / "sequences" / s / "calib.txt", P, T)
    _splits(out, frames, options)
    seqs = _sequences(frames)
    if seqs is None:
        return ["poses.txt is not carried: copy it from the source where needed"]
    for s, fs in seqs.items():
        _carry_semantickitti(out, s, fs, cams[s][1])
    return []


def finish_kitti360(out: Path, frames: list[FrameLabels], options: dict[str, Any]) -> list[str]:
    """``calibration/perspective.txt`` and ``calib_cam_to_velo.txt`` (one for the dataset: the first
    sequence's) and ``splits.json``."""
    from occkit.data.kitti360 import KITTI360_IMAGE_SIZE, write_calibration

    cams = _cameras(frames)
    seqs = _sequences(frames)
    notes = [] if seqs is not None else ["the poses are not carried (cam0_to_world.txt): copy them where needed"]
    if cams:
        first, (K, T, size) = next(iter(cams.items()))
        P = None if K is None else np.concatenate([K, np.zeros((3, 1))], 1)
        write_calibration(out, P, np.linalg.inv(T)[:3], tuple(size or KITTI360_IMAGE_SIZE))
        same = [
            (k is None) == (K is None) and (K is None or np.allclose(K, k)) and np.allclose(T, t)
            for k, t, _ in cams.values()
        ]
        if not all(same):
            notes.append(f"the sequences differ in calibration; calibration/ holds {first}'s (KITTI-360 has one)")
        for s, fs in (seqs or {}).items():
            _carry_kitti360(out, s, fs, T)  # camera 0 as calibration/ places it: the poses stay the velodyne's
    _splits(out, frames, options)
    return notes


def camera_map_files(sequences: str, frame: FrameLabels, cameras: tuple[str, ...]) -> dict[str, str]:
    """Where the layouts' readers read a frame's 2D semantic map (:class:`~occkit.formats.spec.CameraMaps`):
    ``<sequences>/<seq>/extras/<NNNNNN>.npz`` (the synthetic extras' file, :mod:`occkit.data.semantickitti`), of
    the layout's one camera (the record's ``camera``: the recording's first), in the layout's learning classes;
    none for a frame without a camera."""
    cam = frame.record.get("camera")
    if not cam or cam not in cameras:
        return {}
    return {cam: f"{sequences}/{frame.record['sequence']}/extras/{frame.record['frame']}.npz"}


def _writer(read: Any, files: Any, write: Any, finish: Any, sequences: str) -> LabelWriter:
    """A writer of the KITTI family, whose layouts keep one mask: the ``.invalid`` voxels."""
    return LabelWriter(
        family=FAMILY,
        read=read,
        files=files,
        write=write,
        finish=finish,
        masks=("invalid",),
        sensor_data=("lidar",),
        camera_maps=CameraMaps(partial(camera_map_files, sequences)),
    )


SEMANTICKITTI_WRITER = _writer(
    read_frame, semantickitti_files, write_semantickitti, finish_semantickitti, sequences="sequences"
)
KITTI360_WRITER = _writer(read_kitti360_frame, kitti360_files, write_kitti360, finish_kitti360, sequences="data_2d_raw")
