"""NYUv2 semantic scene completion in the layout of MonoScene's NYUv2 release (SSCNet's ``depthbin``).

Layout under ``root``::

    NYUtrain/NYU<id>_<view>_color.jpg   colour image, 640 x 480
    NYUtrain/NYU<id>_<view>.png         depth, 16-bit PNG in SUN3D's bit order: the stored value
                                        is the depth in millimetres rotated left by 3 bits, so
                                        ``((v >> 3) | (v << 13)) / 1000`` metres (``v / 8000``
                                        below 8.19 m, as SSC loaders read it); 0 = no depth
    NYUtrain/NYU<id>_<view>.bin         float32 voxel origin (3), float32 camera pose (4 x 4,
                                        row-major: camera -> world), then uint32 run-length
                                        pairs (label id, count) over the 240 x 144 x 240 grid
    NYUtest/...                         the same for the test split

Every number little-endian. Real NYUv2 names are ``NYU<4-digit image id>_0000``; the indoor
world names its frames ``NYU<room>_<view>`` (both are ``*.bin`` to MonoScene's loader).

**Frames and axes** (as MonoScene's code uses the files): the world frame is gravity-aligned with
z up; the camera is OpenCV's (x right, y down, z forward) with MonoScene's intrinsics
:data:`NYU_K` (fx = fy = 518.8579, principal point (320, 240)). The voxel of index ``(i, j, k)``
in a file's ``(240, 144, 240)`` array (C order) has its centre at world ``origin + 0.02 * (i +
0.5, k + 0.5, j + 0.5)``: the file's axes are (x, z, y). MonoScene's targets keep that order,
``(60, 36, 60)`` at 0.08 m. In an occkit :class:`~occkit.data.sample.Sample` the grid is
:func:`~occkit.geometry.grid.nyu_grid`, ``(60, 60, 36)`` indexed (x, y, z), in an "ego" frame
that is the world shifted to the voxel origin (``T_global_from_ego`` = that translation);
:func:`file_to_xyz` / :func:`xyz_to_file` swap the last two axes.

**Labels**: the ``.bin`` ids are SSCNet's 36 categories + empty, mapped to the 12 classes of
:data:`~occkit.labels.NYU_CLASSES` by :data:`~occkit.labels.NYU_RAW_TO_CLASS` (255 stays 255,
ignored). The scored target is the 1:4 grid made by SSCNet's downsampling rule
(:func:`~occkit.losses.monoscene.downsample_labels`), as MonoScene's preprocessing makes it.

Synthetic additions (written by ``occkit synth --world indoor``; never required)::

    indoor.json                         the world's config, the frames' rooms and descriptions
    extras/NYU<id>_<view>.npz           depth float32 (exact z-depth, metres), semantics uint8
                                        (NYU classes, 0 = nothing), instance int32, each (480, 640)
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from pydantic import BaseModel

from occkit.data.layout_files import CAMERA_MAPS, existing, one_of, read_arrays, rigid, sscnet_downsample
from occkit.data.sample import FrameList, Sample
from occkit.fileio import read_json, write_bytes_atomic
from occkit.geometry.grid import Grid, nyu_grid
from occkit.labels import NYU_CLASS_TO_RAW, NYU_IGNORE, NYU_NUM_CLASSES, NYU_RAW_TO_CLASS, refuse_ids_outside
from occkit.schema import validate

#: MonoScene's NYUv2 intrinsics (its ``NYUDataset.cam_k``).
NYU_K: tuple[tuple[float, float, float], ...] = ((518.8579, 0.0, 320.0), (0.0, 518.8579, 240.0), (0.0, 0.0, 1.0))
NYU_IMAGE_HW: tuple[int, int] = (480, 640)
#: A ``.bin``'s grid as stored: (x, z, y) at 0.02 m.
NYU_FILE_SHAPE: tuple[int, int, int] = (240, 144, 240)
#: MonoScene's target: the file's axes at 0.08 m.
NYU_TARGET_SHAPE: tuple[int, int, int] = (60, 36, 60)
NYU_VOXEL_SIZE = 0.08
NYU_SPLITS: dict[str, str] = {"train": "NYUtrain", "test": "NYUtest", "val": "NYUtest"}
INDEX_FILE = "indoor.json"
HEADER_BYTES = 4 * (3 + 16)
RIGID_TOL = 1e-3
"""Largest deviation of a pose's rotation from orthonormal (``|R^T R - I|``, ``|det R - 1|``) accepted."""

_RAW_TO_CLASS = np.full(256, 255, dtype=np.uint8)
_RAW_TO_CLASS[: len(NYU_RAW_TO_CLASS)] = NYU_RAW_TO_CLASS
_CLASS_TO_RAW = np.full(256, 255, dtype=np.uint8)
_CLASS_TO_RAW[:NYU_NUM_CLASSES] = NYU_CLASS_TO_RAW


def file_to_xyz(a: np.ndarray | torch.Tensor) -> Any:
    """A grid in the files' / MonoScene's axis order (x, z, y) to occkit's (x, y, z) (a view)."""
    return a.swapaxes(-1, -2) if isinstance(a, np.ndarray) else a.transpose(-1, -2)


def xyz_to_file(a: np.ndarray | torch.Tensor) -> Any:
    """occkit's (x, y, z) to the files' (x, z, y) (a view); the inverse of :func:`file_to_xyz`."""
    return file_to_xyz(a)


# ------------------------------------------------------------------------------------ run lengths


def rle_encode(values: np.ndarray) -> np.ndarray:
    """Run-length pairs ``[v0, n0, v1, n1, ...]`` (uint32) of a 1D array of label ids."""
    v = np.asarray(values).reshape(-1)
    if v.size == 0:
        return np.zeros(0, dtype=np.uint32)
    starts = np.flatnonzero(np.r_[True, v[1:] != v[:-1]])
    counts = np.diff(np.r_[starts, v.size])
    return np.stack([v[starts].astype(np.uint32), counts.astype(np.uint32)], 1).reshape(-1)


def rle_decode(rle: np.ndarray, size: int, name: str = "run-length data") -> np.ndarray:
    """The 1D uint8 array of ``size`` ids that :func:`rle_encode` pairs describe; pairs that do not
    cover exactly ``size`` values, or ids above 255, raise naming ``name``."""
    rle = np.asarray(rle).reshape(-1)
    if rle.size % 2:
        raise ValueError(f"{name}: {rle.size} run-length numbers, expected (id, count) pairs")
    ids, counts = rle[0::2].astype(np.int64), rle[1::2].astype(np.int64)
    total = int(counts.sum())
    if total != size:
        raise ValueError(f"{name}: the runs cover {total} voxels, expected {size}")
    if ids.size and int(ids.max()) > 255:
        raise ValueError(f"{name}: label id {int(ids.max())} does not fit the uint8 labels")
    return np.repeat(ids.astype(np.uint8), counts)


# ------------------------------------------------------------------------------------ .bin files


@dataclass
class NYUVoxels:
    """One ``.bin``: ``origin (3,)`` float32 world position of the grid's corner, ``pose (4, 4)``
    float32 camera -> world, ``labels`` ``(240, 144, 240)`` uint8 classes (file axes, 255 ignored)."""

    origin: np.ndarray
    pose: np.ndarray
    labels: np.ndarray


def encode_bin(origin: np.ndarray, pose: np.ndarray, labels: np.ndarray) -> bytes:
    """The bytes of a ``.bin`` from classes ``labels`` ``(240, 144, 240)`` (file axes; 0..11, 255)."""
    labels = np.asarray(labels)
    if labels.shape != NYU_FILE_SHAPE:
        raise ValueError(f"labels: shape {labels.shape}, expected {NYU_FILE_SHAPE} (file axes x, z, y)")
    refuse_ids_outside(labels, NYU_NUM_CLASSES, NYU_IGNORE, "labels", "NYUv2's classes")
    origin = np.asarray(origin, dtype=np.float64).reshape(-1)
    if origin.shape != (3,) or not np.isfinite(origin).all():
        raise ValueError(f"origin: expected 3 finite numbers, got {origin.tolist()}")
    rigid(pose, "camera", RIGID_TOL)
    raw = _CLASS_TO_RAW[labels.reshape(-1).astype(np.uint8)]
    return (
        origin.astype("<f4").tobytes()
        + np.asarray(pose, dtype="<f4").reshape(-1).tobytes()
        + rle_encode(raw).astype("<u4").tobytes()
    )


def write_bin(path: str | os.PathLike, origin: np.ndarray, pose: np.ndarray, labels: np.ndarray) -> Path:
    """Write a ``.bin`` (atomically); see :func:`encode_bin`."""
    return write_bytes_atomic(path, encode_bin(origin, pose, labels))


def read_bin(path: str | os.PathLike) -> NYUVoxels:
    """Read a ``.bin`` (no pickle): origin, pose and the 12-class labels (file axes).

    A file too short or of a length that is not whole pairs, runs that do not cover the grid,
    unknown label ids, or a pose that is not rigid raise one line naming the file."""
    data = existing(path, ".bin file").read_bytes()
    n = len(data)
    if n < HEADER_BYTES + 8 or n % 4 or (n - HEADER_BYTES) % 8:
        raise ValueError(
            f"{path}: {n} bytes is not a NYU .bin (76 bytes of origin and pose, then uint32 (id, count) pairs)"
        )
    origin = np.frombuffer(data, "<f4", 3, 0).astype(np.float32)
    pose = np.frombuffer(data, "<f4", 16, 12).reshape(4, 4).astype(np.float32)
    if not np.isfinite(origin).all():
        raise ValueError(f"{path}: the voxel origin is not finite")
    rigid(pose, f"{path}: camera", RIGID_TOL)
    rle = np.frombuffer(data, "<u4", offset=HEADER_BYTES)
    raw = rle_decode(rle, int(np.prod(NYU_FILE_SHAPE)), str(path))
    ids = np.unique(rle[0::2])
    unknown = ids[(ids >= len(NYU_RAW_TO_CLASS)) & (ids != 255)]
    if unknown.size:
        raise ValueError(f"{path}: label ids {unknown[:5].tolist()} are not NYU ids (0..36 or 255)")
    return NYUVoxels(origin=origin, pose=pose, labels=_RAW_TO_CLASS[raw].reshape(NYU_FILE_SHAPE))


# ------------------------------------------------------------------------------------ depth images


def encode_depth_png(depth: np.ndarray) -> bytes:
    """A 16-bit PNG of ``depth`` (metres, 0 = none) in SUN3D's bit order (see the module docstring)."""
    from PIL import Image

    d = np.asarray(depth, dtype=np.float64)
    if d.ndim != 2 or not np.isfinite(d).all() or (d < 0).any():
        raise ValueError("depth: expected a finite non-negative (H, W) array of metres")
    mm = np.clip(np.round(d * 1000.0), 0, 65535).astype(np.uint32)
    v = (((mm << 3) | (mm >> 13)) & 0xFFFF).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(v).save(buf, format="PNG")
    return buf.getvalue()


def read_depth_png(path: str | os.PathLike, image_hw: tuple[int, int] | None = NYU_IMAGE_HW) -> np.ndarray:
    """A depth PNG as ``(H, W)`` float32 metres; a file that is not a 16-bit single-channel PNG,
    or not ``image_hw``, raises naming it."""
    from PIL import Image

    path = existing(path, "depth image")
    try:
        with Image.open(path) as im:
            v = np.asarray(im)
    except Exception as e:  # PIL raises several types for corrupt files
        raise ValueError(f"{path}: cannot decode depth image ({type(e).__name__}: {e})") from e
    if v.ndim != 2 or v.dtype not in (np.uint16, np.int32, np.uint8):
        raise ValueError(f"{path}: depth image is {v.dtype} {v.shape}, expected one 16-bit channel")
    if image_hw is not None and v.shape != tuple(image_hw):
        raise ValueError(f"{path}: depth image is {v.shape[1]}x{v.shape[0]}, expected {image_hw[1]}x{image_hw[0]}")
    v = v.astype(np.uint32) & 0xFFFF
    mm = ((v >> 3) | (v << 13)) & 0xFFFF
    return (mm.astype(np.float32) / 1000.0).astype(np.float32)


def write_depth_png(path: str | os.PathLike, depth: np.ndarray) -> Path:
    return write_bytes_atomic(path, encode_depth_png(depth))


# ------------------------------------------------------------------------------------ targets


def downsample_target(labels: np.ndarray | torch.Tensor, factor: int = 4) -> torch.Tensor:
    """The coarse target of full-resolution NYU labels (any axis order; classes 0..11 and 255) by
    SSCNet's rule, as MonoScene's preprocessing makes it: per block of ``factor^3`` voxels, with
    ``n0`` empty and ``n255`` unknown ones, empty (0) if ``n0 + n255 > 0.95 * factor^3`` and ``n0 >
    n255``, unknown (255) if above that threshold otherwise, else the most frequent other class
    (the smallest on a tie). The same numbers as :func:`~occkit.losses.monoscene.downsample_labels`
    in a vectorised uint8 form (about 30 times faster on the 240 x 144 x 240 grid).

    Returns:
        ``(X / f, Y / f, Z / f)`` long.
    """
    a = labels.numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    return torch.from_numpy(sscnet_downsample(a, factor, NYU_NUM_CLASSES, NYU_IGNORE).astype(np.int64))


def voxel_projection(
    origin: np.ndarray, pose: np.ndarray, K: np.ndarray | None = None, image_hw: tuple[int, int] = NYU_IMAGE_HW
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where the centres of the 60 x 60 x 36 voxels (occkit's (x, y, z) order, flattened) fall in
    the image, computed as MonoScene's NYU loader does (float32 centres and transform, pixel =
    the coordinate rounded half to even, pixel ``i`` centred on ``i``).

    Returns:
        pix ``(N, 2)`` int64 (u, v); fov ``(N,)`` bool (pixel inside the image and ``z > 0``);
        z ``(N,)`` float32 camera depth.
    """
    K = np.asarray(NYU_K if K is None else K, dtype=np.float32)
    X, Y, Z = nyu_grid().shape
    idx = np.stack(np.meshgrid(np.arange(X), np.arange(Y), np.arange(Z), indexing="ij"), -1).reshape(-1, 3)
    o = np.asarray(origin, dtype=np.float32)
    # in float64, stored as float32, as MonoScene's (numba) vox2world does
    centres = (o.astype(np.float64) + NYU_VOXEL_SIZE * idx.astype(np.float64) + NYU_VOXEL_SIZE * 0.5).astype(np.float32)
    T = np.linalg.inv(np.asarray(pose, dtype=np.float32))
    cam = np.dot(T, np.hstack([centres, np.ones((len(centres), 1), dtype=np.float32)]).T).T[:, :3]
    z = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = cam[:, 0] * K[0, 0] / z + K[0, 2]
        v = cam[:, 1] * K[1, 1] / z + K[1, 2]
    finite = np.isfinite(u) & np.isfinite(v)
    big = np.float32(2**40)
    pix = np.stack(
        [
            np.round(np.clip(np.where(finite, u, -big), -big, big)),
            np.round(np.clip(np.where(finite, v, -big), -big, big)),
        ],
        1,
    ).astype(np.int64)
    H, W = image_hw
    fov = (pix[:, 0] >= 0) & (pix[:, 0] < W) & (pix[:, 1] >= 0) & (pix[:, 1] < H) & (z > 0)
    return pix, fov, z


def ego_from_world(origin: np.ndarray) -> np.ndarray:
    """``(4, 4)`` float64: the NYU world -> the sample's ego frame (the world shifted to ``origin``)."""
    T = np.eye(4)
    T[:3, 3] = -np.asarray(origin, dtype=np.float64)
    return T


# ------------------------------------------------------------------------------------ dataset


class _Object(BaseModel):
    instance: int
    name: str


class _Room(BaseModel):
    objects: list[_Object] = []


class _Frame(BaseModel):
    description: str | None = None  # null: no text; a number is refused (str(5) would have become a prompt)
    room: int = -1


class IndoorIndex(BaseModel):
    """What the reader reads of the indoor world's ``indoor.json`` (:mod:`occkit.worlds.indoor`; it holds
    more, which passes): each frame's ``description`` and ``room``, each room's objects' ``instance`` and
    ``name``; a field of another type is one line naming the file and the field (:func:`occkit.schema.validate`)."""

    frames: dict[str, _Frame] = {}
    rooms: dict[str, _Room] = {}


class NYUFrame(NamedTuple):
    """A frame: its folder (``NYUtrain`` or ``NYUtest``) and name (``NYU<room>_<view>``), with the
    ``token`` (the name) and ``scene`` (``NYU<room>``, the part before ``_``) every dataset
    format's frames have."""

    folder: str
    name: str
    token = property(lambda self: self.name)
    scene = property(lambda self: self.name.partition("_")[0])


def is_nyu_root(root: str | os.PathLike) -> bool:
    """Whether ``root`` holds a ``NYUtrain`` or ``NYUtest`` folder."""
    r = Path(root)
    return (r / "NYUtrain").is_dir() or (r / "NYUtest").is_dir()


class NYUDataset(FrameList):
    """Frames of a NYUv2 SSC layout (MonoScene's) as :class:`~occkit.data.sample.Sample` (one camera).

    The sample's ``occupancy`` is the scored target, ``(60, 60, 36)`` long on
    :func:`~occkit.geometry.grid.nyu_grid` (0 empty, 255 ignored), ``mask_camera`` = ``mask_lidar``
    = every voxel (MonoScene's NYU evaluation masks only the 255 voxels), ``extra`` holds
    ``voxel_origin`` and ``cam_pose`` as the ``.bin`` has them.

    Args:
        root: the folder holding ``NYUtrain/`` and ``NYUtest/``.
        split: ``"train"``, ``"test"`` (``"val"`` is the test split, as MonoScene validates on it),
            or ``"all"``.
        load_images, load_gt: read the colour images, the ``.bin`` labels.
        load_depth: fill ``depth`` from the depth PNGs.
        load_extras: fill ``depth`` (exact), ``semantics_2d``, ``instance_2d`` from the synthetic
            extras where present. ``description`` comes from ``indoor.json`` whenever it has the
            frame (as the Occ3D reader's scene descriptions do: OccScene's text conditioning).
    """

    #: The format (:mod:`occkit.formats.nyu`) whose frames these are (:func:`occkit.formats.format_of`).
    format_name = "nyu"

    #: The camera's name in a Sample.
    CAMERA = "kinect"

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        load_images: bool = True,
        load_gt: bool = True,
        load_depth: bool = False,
        load_extras: bool = False,
        frame_stride: int = 1,
    ) -> None:
        self.root = Path(root)
        if not is_nyu_root(self.root):
            raise FileNotFoundError(f"{self.root}: no NYUtrain/ or NYUtest/ folder (not a NYUv2 SSC layout)")
        one_of(split, [*sorted(NYU_SPLITS), "all"], "split")
        folders = ("NYUtrain", "NYUtest") if split == "all" else (NYU_SPLITS[split],)
        self.split = split
        self.grid: Grid = nyu_grid()
        self.load_images, self.load_gt = load_images, load_gt
        self.load_depth, self.load_extras = load_depth, load_extras
        self.frames: list[NYUFrame] = []
        for f in folders:
            d = self.root / f
            if d.is_dir():
                self.frames += [NYUFrame(f, p.stem) for p in sorted(d.glob("*.bin"))][::frame_stride]
        self._index = {name: i for i, (_, name) in enumerate(self.frames)}
        self._descriptions: dict[str, str] | None = None
        self._instance_names: dict[str, dict[int, str]] | None = None

    @property
    def scenes(self) -> list[str]:
        """The rooms (``NYU<room>``) of the frames, in order of first appearance."""
        return list(dict.fromkeys(f.scene for f in self.frames))

    @property
    def cameras(self) -> tuple[str, ...]:
        """The one camera of every frame (what the prior cache and the loaders ask for)."""
        return (self.CAMERA,)

    def frame_labels(self, i: int) -> tuple[np.ndarray, np.ndarray, Path]:
        """Frame ``i``'s scored target ``(60, 60, 36)`` uint8 (255 unknown), the voxels MonoScene's
        NYUv2 metric scores (every known one) and the ``.bin`` file (for errors)."""
        labels = file_to_xyz(downsample_target(self.read_voxels(i).labels)).numpy().astype(np.uint8)
        return labels, labels != NYU_IGNORE, self.path(i, ".bin")

    def path(self, i: int, suffix: str) -> Path:
        """``NYU<split>/<name><suffix>`` of frame ``i`` (``.bin``, ``.png``, ``_color.jpg``)."""
        folder, name = self.frames[i]
        return self.root / folder / f"{name}{suffix}"

    def extras_path(self, token: str) -> Path:
        return self.root / "extras" / f"{token}.npz"

    def indoor_index(self) -> IndoorIndex:
        """``indoor.json`` read as :class:`IndoorIndex` (empty when there is none)."""
        p = self.root / INDEX_FILE
        return validate(IndoorIndex, read_json(p), str(p)) if p.is_file() else IndoorIndex()

    def descriptions(self) -> dict[str, str]:
        """``{frame: description}`` from ``indoor.json`` (``{}`` when there is none)."""
        if self._descriptions is None:
            self._descriptions = {k: f.description or "" for k, f in self.indoor_index().frames.items()}
        return self._descriptions

    def instance_names(self, token: str) -> dict[int, str]:
        """``{instance id: fine name}`` of the objects of the frame's room (``indoor.json``'s rooms;
        ``{}`` without one): what the oracle's and the world prior's features name objects by."""
        if self._instance_names is None:
            index = self.indoor_index()
            by_room = {  # "room-0007" -> room 7
                int(key.rpartition("-")[2]): {o.instance: o.name for o in room.objects}
                for key, room in index.rooms.items()
                if key.rpartition("-")[2].isdigit()
            }
            self._instance_names = {k: by_room.get(f.room, {}) for k, f in index.frames.items()}
        return self._instance_names.get(token, {})

    def read_voxels(self, i: int) -> NYUVoxels:
        return read_bin(self.path(i, ".bin"))

    def read_camera_extras(self, token: str) -> dict[str, np.ndarray] | None:
        """The exact maps of a synthetic frame (``depth`` float32, ``semantics`` uint8, ``instance``
        int32, each 480 x 640), ``None`` when absent; wrong shapes or dtypes raise naming the file."""
        path = self.extras_path(token)
        return read_arrays(path, CAMERA_MAPS, dict(zip("HW", NYU_IMAGE_HW))) if path.is_file() else None

    def __getitem__(self, i: int) -> Sample:
        from occkit.data.occ3d import load_image

        name = self.token(i)
        vox = self.read_voxels(i)
        T_ego_from_world = ego_from_world(vox.origin)
        T_ego_from_cam = T_ego_from_world @ vox.pose.astype(np.float64)
        if self.load_images:
            path = self.path(i, "_color.jpg")
            img = load_image(path)
            if img.shape[:2] != NYU_IMAGE_HW:
                raise ValueError(f"{path}: image is {img.shape[1]}x{img.shape[0]}, expected 640x480")
            images = torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float().div_(255)
        else:
            images = torch.zeros(1, 3, 0, 0)
        T_global_from_ego = np.linalg.inv(T_ego_from_world)
        scene, _, view = name.partition("_")
        sample = Sample(
            token=name,
            scene=scene,
            timestamp=int(view) if view.isdigit() else 0,
            cam_names=(self.CAMERA,),
            images=images,
            intrinsics=torch.tensor(NYU_K, dtype=torch.float32)[None],
            T_ego_from_cam=torch.from_numpy(T_ego_from_cam).float()[None],
            T_global_from_ego=torch.from_numpy(T_global_from_ego),
        )
        sample.extra["voxel_origin"] = torch.from_numpy(vox.origin.copy())
        sample.extra["cam_pose"] = torch.from_numpy(vox.pose.copy())
        if self.load_gt:
            target = file_to_xyz(downsample_target(vox.labels))
            sample.occupancy = target.contiguous()
            sample.mask_camera = torch.ones(self.grid.shape, dtype=torch.bool)
            sample.mask_lidar = sample.mask_camera.clone()
        if self.load_depth:
            sample.depth = torch.from_numpy(read_depth_png(self.path(i, ".png")))[None]
        if self.load_extras:
            maps = self.read_camera_extras(name)
            if maps is not None:
                sample.depth = torch.from_numpy(maps["depth"])[None]
                sample.semantics_2d = torch.from_numpy(maps["semantics"].astype(np.int64))[None]
                sample.instance_2d = torch.from_numpy(maps["instance"].astype(np.int64))[None]
        sample.description = self.descriptions().get(name)  # one JSON read per dataset; what text conditions on
        return sample
