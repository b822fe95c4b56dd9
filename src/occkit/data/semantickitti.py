"""SemanticKITTI semantic scene completion: the official on-disk layout, read and written.

Layout under ``root``::

    sequences/<XX>/calib.txt                  P0..P3 (3x4 projections), Tr (velodyne -> cam0, 3x4); Tr
                                              alone: a sequence without a camera
    sequences/<XX>/poses.txt                  (optional) cam0 poses, one 3x4 per line
    sequences/<XX>/image_2/<NNNNNN>.png       left colour camera (optional: a sequence without the
                                              folder is read without images)
    sequences/<XX>/velodyne/<NNNNNN>.bin      (optional) the scan, float32 x y z reflectance
    sequences/<XX>/voxels/<NNNNNN>.bin        input occupancy, bit-packed (256*256*32 bits)
    sequences/<XX>/voxels/<NNNNNN>.label      uint16 raw label ids per voxel
    sequences/<XX>/voxels/<NNNNNN>.invalid    bit-packed, voxels left out of the evaluation
    sequences/<XX>/voxels/<NNNNNN>.occluded   bit-packed
    sequences/<XX>/predictions/<NNNNNN>.label submission: uint16 raw ids (through the inverse map)

Voxel files hold the 256 x 256 x 32 grid (0.2 m, from [0, -25.6, -2] m in the LiDAR frame) in
C order with axes ``[x, y, z]``; bit-packed files are unpacked most significant bit first.
Ground truth is read as learning classes through the completion lookup table (raw ids that map
to nothing become 255, ignored), see :func:`occkit.labels.semantickitti_remap_lut`; a raw id that
is not in the table (9999) is refused naming the file, and so is a ``.label`` without its
``.invalid`` (scored without it, every voxel would count as valid).

In a :class:`~occkit.data.sample.Sample` the "ego" frame is the LiDAR (velodyne) frame, the one
camera is ``image_2``, ``occupancy`` holds learning classes with 255 where ignored, and
``mask_camera`` = ``mask_lidar`` = not invalid; ``extra["input_occupancy"]`` is the ``.bin``.

Synthetic additions (written by ``occkit synth --format semantickitti``; never required)::

    sequences/<XX>/extras/<NNNNNN>.npz            depth float32, semantics uint8, instance int32,
                                                  each (H, W): image_2's exact z-depth (0 = sky),
                                                  Occ3D class (17 = sky), instance id (0 = none)
    sequences/<XX>/extras/<NNNNNN>.instances.npz  instance int32 (256, 256, 32), 0 = none
    sequences/<XX>/extras/<NNNNNN>.objects.json   {"objects": [...]}: fine names by instance

With ``load_extras`` the maps fill the Sample's ``depth``, ``semantics_2d`` and ``instance_2d``
(``(1, H, W)``); ``semantics_2d`` is in Occ3D classes with 17 = sky (the prior layer's
vocabulary, :data:`occkit.priors.base.PRIOR_CLASSES`), not in SemanticKITTI learning classes.
``occkit label --to semantickitti`` writes ``extras/<NNNNNN>.npz`` with ``semantics`` alone: its labels
rendered into image_2 (:mod:`occkit.labelgen.semantic_maps`), in the learning classes (0 = empty where a
pixel's ray meets no voxel), read as ``semantics_2d`` alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from occkit.data.layout_files import CAMERA_MAPS, existing, numbers, read_arrays, rigid, through_table
from occkit.data.occ3d import load_image, read_instance_names, read_objects
from occkit.data.sample import FrameList, Sample
from occkit.fileio import write_bytes_atomic, write_text_atomic
from occkit.geometry.grid import Grid, semantickitti_grid
from occkit.labels import SEMANTICKITTI_LEARNING_MAP, semantickitti_inverse_lut, semantickitti_remap_lut

#: The official splits (sequences).
SEMANTICKITTI_SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("00", "01", "02", "03", "04", "05", "06", "07", "09", "10"),
    "val": ("08",),
    "test": tuple(f"{i:02d}" for i in range(11, 22)),
}
SSC_SHAPE: tuple[int, int, int] = (256, 256, 32)
_RAW_KNOWN = np.zeros(1 << 16, dtype=bool)
_RAW_KNOWN[list(SEMANTICKITTI_LEARNING_MAP)] = True
SPLITS_FILE = "splits.json"
"""A dataset's own split of its sequences, ``{"train": [...], "val": [...]}`` (the synthetic world
writes one: its validation has more scenes than sequence 08); read before the official split."""


def dataset_splits(root: str | os.PathLike) -> dict[str, tuple[str, ...]]:
    """The named splits of ``root/splits.json`` (empty when there is none); a malformed file raises
    naming it."""
    from pydantic import ConfigDict, RootModel

    from occkit.fileio import read_json
    from occkit.schema import validate

    class SplitsFile(RootModel[dict[str, list[str]]]):
        """``{"train": [sequence, ...], "val": [...]}``."""

        model_config = ConfigDict(strict=True)

    path = Path(root) / SPLITS_FILE
    if not path.is_file():
        return {}
    return {k: tuple(v) for k, v in validate(SplitsFile, read_json(path), str(path)).root.items()}


def own_split(root: Path, seq_root: Path, split: str, own: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """The sequences of ``split`` in the dataset's own ``splits.json`` (``own``), each of which must be
    a folder of ``seq_root``: the dataset's own split names them, so a missing one is a copy that lost
    it (not a subset, as the official splits on part of the data), refused naming the file."""
    gone = [q for q in own[split] if not (seq_root / q).is_dir()]
    if gone:
        raise ValueError(
            f"{Path(root) / SPLITS_FILE}: split {split!r} names sequence(s) {', '.join(gone)}, which {seq_root} "
            "does not hold"
        )
    return own[split]


def resolve_split(
    root: Path, seq_root: Path, split: str | tuple[str, ...], official: dict[str, tuple[str, ...]]
) -> tuple[str, ...]:
    """The sequence names of ``split`` in a KITTI-style layout (SemanticKITTI, KITTI-360), before
    the reader keeps those ``seq_root`` holds: ``"all"`` (every folder of ``seq_root``), a name of the
    dataset's own ``splits.json`` (:func:`own_split`, which takes precedence), a name of ``official``
    (the benchmark's splits), or a tuple of sequence names as given. Another name raises."""
    if not isinstance(split, str):
        return tuple(split)
    own = dataset_splits(root)
    if split == "all":
        return tuple(sorted(p.name for p in seq_root.iterdir() if p.is_dir()))
    if split in own:
        return own_split(root, seq_root, split, own)
    if split in official:
        return official[split]
    raise ValueError(f"split must be one of {sorted(official) + ['all']} or a tuple of sequences, got {split!r}")


# ------------------------------------------------------------------------------------ voxels


def unpack_bits(packed: np.ndarray, shape: tuple[int, int, int] = SSC_SHAPE) -> np.ndarray:
    """Bit-packed bytes (most significant bit first) to a ``shape`` bool array."""
    n = int(np.prod(shape))
    bits = np.unpackbits(packed.astype(np.uint8, copy=False))
    if bits.size != n:
        raise ValueError(f"bit-packed data holds {bits.size} bits, expected {n} for {shape}")
    return bits.reshape(shape).astype(bool)


def pack_bits(voxels: np.ndarray) -> np.ndarray:
    """A bool (or 0/1) voxel array to bytes, most significant bit first (C order)."""
    return np.packbits(np.asarray(voxels).reshape(-1).astype(bool))


def _read_raw(path: str | os.PathLike, dtype: np.dtype, count: int, what: str) -> np.ndarray:
    data = np.fromfile(existing(path, f"{what} file"), dtype=dtype)
    if data.size != count:
        raise ValueError(f"{path}: holds {data.size} values of {np.dtype(dtype).name}, expected {count} ({what})")
    return data


def read_bitpacked(path: str | os.PathLike, shape: tuple[int, int, int] = SSC_SHAPE) -> np.ndarray:
    """Read a ``.bin`` / ``.invalid`` / ``.occluded`` file: ``shape`` bool."""
    n = int(np.prod(shape))
    return unpack_bits(_read_raw(path, np.uint8, (n + 7) // 8, "bit-packed voxel"), shape)


def require_invalid(label: Path, invalid: Path) -> Path:
    """``invalid``, the ``.invalid`` file of the frame whose ground truth is ``label``; a missing one
    raises ``FileNotFoundError`` in one line naming it (scoring the frame without it would count
    the voxels the benchmark leaves out)."""
    why = "every voxel would be scored as valid (the official evaluation reads both)"
    return existing(invalid, f"file: the .invalid of {label.name}, without which {why}")


def write_bitpacked(path: str | os.PathLike, voxels: np.ndarray) -> Path:
    """Write a bool voxel array as a bit-packed file (atomically)."""
    return write_bytes_atomic(path, pack_bits(voxels).tobytes())


def read_label(path: str | os.PathLike, shape: tuple[int, int, int] = SSC_SHAPE) -> np.ndarray:
    """Read a voxel ``.label`` file: ``shape`` uint16 raw ids."""
    return _read_raw(path, np.dtype("<u2"), int(np.prod(shape)), "uint16 voxel label").reshape(shape).astype(np.uint16)


def write_label(path: str | os.PathLike, raw: np.ndarray) -> Path:
    """Write uint16 raw ids as a voxel ``.label`` file (atomically)."""
    raw = np.asarray(raw)
    if raw.dtype != np.uint16:
        raise TypeError(f"{path}: .label data must be uint16 raw ids, got {raw.dtype}")
    return write_bytes_atomic(path, raw.astype("<u2").reshape(-1).tobytes())


def raw_to_learning(raw: np.ndarray, for_completion: bool = True, where: str | os.PathLike = "labels") -> np.ndarray:
    """Raw ids to learning classes (uint8, 255 = ignored) through the official learning map; a raw
    id that is not a key of the map (e.g. 9999) raises naming ``where``, as KITTI-360's reader does."""
    return through_table(
        raw, semantickitti_remap_lut(for_completion), _RAW_KNOWN, where, "SemanticKITTI's learning map"
    )


def learning_to_raw(classes: np.ndarray, where: str | os.PathLike = "labels") -> np.ndarray:
    """Learning classes ``[0, 20)`` to uint16 raw ids through the inverse map (for submission)."""
    lut = semantickitti_inverse_lut()
    return through_table(
        classes, lut, np.arange(lut.size) < 20, where, "SemanticKITTI's learning classes 0..19", "classes"
    )


def write_ssc_prediction(
    path: str | os.PathLike, classes: np.ndarray | torch.Tensor, to_raw: Any = learning_to_raw
) -> Path:
    """Write a prediction in the official submission format: ``(256, 256, 32)`` learning classes
    -> uint16 raw ids ``.label`` through ``to_raw`` (the layout's inverse map), atomically."""
    if isinstance(classes, torch.Tensor):
        classes = classes.detach().cpu().numpy()
    if classes.shape != SSC_SHAPE:
        raise ValueError(f"{path}: prediction has shape {classes.shape}, expected {SSC_SHAPE}")
    return write_label(path, to_raw(classes, path))


def read_ssc_prediction(path: str | os.PathLike, to_learning: Any = raw_to_learning) -> np.ndarray:
    """Read a submission ``.label`` as learning classes ``(256, 256, 32)`` uint8 through ``to_learning``
    (the layout's learning map, as the official evaluation remaps predictions); a wrong size, a raw id
    outside the map or one it ignores (no learning class) raises naming the file and the ids."""
    raw = read_label(path)
    classes = to_learning(raw, where=path)
    if (classes == 255).any():
        bad = np.unique(raw[classes == 255])[:8].tolist()
        raise ValueError(f"{path}: prediction holds raw ids {bad} that are no learning class (ignored ids)")
    return classes


def index_predictions(folder: str | os.PathLike) -> dict[str, Path]:
    """``{token: path}`` of a prediction folder (``<seq>/<frame>.label`` or ``<seq>/predictions/<frame>.label``)."""
    out: dict[str, Path] = {}
    for p in sorted(Path(folder).rglob("*.label")):
        seq = p.parent.parent.name if p.parent.name == "predictions" else p.parent.name
        out[f"{seq}/{p.stem}"] = p
    return out


# ------------------------------------------------------------------------------------ calib


def read_calib(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read ``calib.txt``: ``P0``..``P3`` as ``(3, 4)`` and ``Tr`` padded to ``(4, 4)`` float64. ``Tr``
    must be there; ``P2`` may be absent (a sequence without a camera, as ``occkit label`` writes one from a
    recording without cameras), but a ``calib.txt`` with other projections and no ``P2`` is refused."""
    path = existing(path, "calibration file")
    out: dict[str, np.ndarray] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        key, _, vals = line.partition(":")
        if line.strip():
            out[key.strip()] = numbers(vals, f"{path}:{n}: '{key.strip()}'", 12).reshape(3, 4)
    for k in ("P2", "Tr") if any(k.startswith("P") for k in out) else ("Tr",):
        if k not in out:
            raise KeyError(f"{path}: missing '{k}'")
    Tr = np.eye(4)
    Tr[:3] = out["Tr"]
    out["Tr"] = Tr
    return out


def write_calib(
    path: str | os.PathLike, P2: np.ndarray | None, Tr: np.ndarray, others: dict[str, np.ndarray] | None = None
) -> Path:
    """Write a ``calib.txt`` with ``P0``..``P3`` (P2 given; the others default to P2) and ``Tr``
    (``(3, 4)`` or ``(4, 4)``), atomically; ``P2`` None: ``Tr`` alone (a sequence without a camera)."""
    mats = {f"P{i}": np.asarray(P2) for i in range(4)} if P2 is not None else {}
    if P2 is not None:
        mats.update(others or {})
        mats["P2"] = np.asarray(P2)
    mats["Tr"] = np.asarray(Tr)[:3]
    lines = []
    for k in ("P0", "P1", "P2", "P3", "Tr") if P2 is not None else ("Tr",):
        m = np.asarray(mats[k], dtype=np.float64)
        if m.shape != (3, 4):
            raise ValueError(f"{path}: {k} has shape {m.shape}, expected (3, 4)")
        lines.append(f"{k}: " + " ".join(f"{x:.12e}" for x in m.reshape(-1)))
    return write_text_atomic(path, "\n".join(lines) + "\n")


def camera_from_calib(P2: np.ndarray, Tr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Intrinsics ``K (3, 3)`` and ``T_cam_from_lidar (4, 4)`` with ``P2 @ Tr = K @ T[:3]``
    (P2 = K [I | t] for the rectified camera 2, so the camera sits at ``K^-1 P2[:, 3]``)."""
    K = np.asarray(P2, dtype=np.float64)[:, :3]
    t = np.linalg.solve(K, np.asarray(P2, dtype=np.float64)[:, 3])
    T_cam2_from_cam0 = np.eye(4)
    T_cam2_from_cam0[:3, 3] = t
    Tr4 = np.eye(4)
    Tr4[: np.asarray(Tr).shape[0]] = np.asarray(Tr)[:4]
    return K, T_cam2_from_cam0 @ Tr4


def read_poses(path: str | os.PathLike) -> np.ndarray:
    """Read ``poses.txt`` (one 3x4 per line): ``(N, 4, 4)`` float64."""
    path = existing(path, "poses file")
    rows = [line for line in path.read_text().splitlines() if line.strip()]
    out = np.tile(np.eye(4), (len(rows), 1, 1))
    for i, line in enumerate(rows):
        out[i, :3] = numbers(line, f"{path}:{i + 1}", 12).reshape(3, 4)
        rigid(out[i], f"{path}:{i + 1}")
    return out


# ------------------------------------------------------------------------------------ dataset


class KittiFrame(NamedTuple):
    """A frame: its sequence and frame id (a pair, as before), with the ``scene`` (the sequence) and
    ``token`` (``"<sequence>/<frame id>"``) every dataset format's frames have."""

    sequence: str
    frame: str
    scene = property(lambda self: self.sequence)
    token = property(lambda self: f"{self.sequence}/{self.frame}")


class SemanticKITTIDataset(FrameList):
    """Frames of a SemanticKITTI SSC layout as :class:`~occkit.data.sample.Sample` (monocular).

    Args:
        root: the folder holding ``sequences/``.
        split: ``"train"``, ``"val"``, ``"test"`` (official sequences), ``"all"`` (every sequence
            found), or a tuple of sequence names.
        load_images: read ``image_2``.
        load_gt: read ``.label`` / ``.invalid`` (absent for the test split).
        frame_stride: keep every n-th labelled frame.
        load_extras: fill ``depth``, ``semantics_2d``, ``instance_2d`` from the synthetic extras
            (``extras/<NNNNNN>.npz``) where a frame has them (off: real data has none).
    """

    #: The dataset format of these frames (:mod:`occkit.formats.semantickitti`).
    format_name = "semantickitti"

    #: The camera's name in a Sample and its image folder under a sequence's folder.
    CAMERA = "image_2"
    IMAGE_DIR = "image_2"
    #: The sequences' folder under the root, the layout in a refusal, the official splits.
    SEQUENCES, LAYOUT, SPLITS = "sequences", "a SemanticKITTI layout", SEMANTICKITTI_SPLITS

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | tuple[str, ...] = "train",
        load_images: bool = True,
        load_gt: bool = True,
        frame_stride: int = 1,
        load_extras: bool = False,
    ) -> None:
        self.root = Path(root)
        seq_root = self.root / self.SEQUENCES
        if not seq_root.is_dir():
            raise FileNotFoundError(f"{seq_root}: no '{self.SEQUENCES}' folder (not {self.LAYOUT})")
        seqs = resolve_split(self.root, seq_root, split, self.SPLITS)
        self.sequences = tuple(s for s in seqs if (seq_root / s).is_dir())
        self.grid: Grid = semantickitti_grid()
        self.load_images, self.load_gt, self.load_extras = load_images, load_gt, load_extras
        self.frames: list[KittiFrame] = []
        self._calib: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}  # None: a sequence without a camera
        self._poses: dict[str, Any] = {}
        for s in self.sequences:
            self.frames += [KittiFrame(s, i) for i in sorted(self._frame_ids(seq_root / s, load_gt))[::frame_stride]]
            self._calib[s], self._poses[s] = self._camera_and_poses(seq_root / s)
        self._index = {f.token: i for i, f in enumerate(self.frames)}

    def _frame_ids(self, seq: Path, load_gt: bool) -> set[str]:
        """The frames of the sequence folder ``seq`` read: those with a ``.label`` (``load_gt``), else
        those with an input ``.bin``."""
        return {p.stem for p in (seq / "voxels").glob("*.label" if load_gt else "*.bin")}

    def _camera_and_poses(self, seq: Path) -> tuple[tuple[np.ndarray, np.ndarray] | None, Any]:
        """The camera (:func:`camera_from_calib`; None without one) and the ``(N, 4, 4)``
        ``T_world_from_velo`` poses (None without ``poses.txt``) of the sequence folder ``seq``."""
        calib = read_calib(seq / "calib.txt")
        camera = camera_from_calib(calib["P2"], calib["Tr"]) if "P2" in calib else None
        poses = seq / "poses.txt"
        return camera, read_poses(poses) @ calib["Tr"] if poses.is_file() else None

    @property
    def cameras(self) -> tuple[str, ...]:
        """The one camera of every frame (what the prior cache and the loaders ask for); ``()`` when no
        sequence read has one (a calibration without the camera's projection: labels of a recording
        without cameras, as ``occkit label`` writes them; docs/labels.md)."""
        if self._calib and all(c is None for c in self._calib.values()):
            return ()
        return (self.CAMERA,)

    @property
    def images_recorded(self) -> bool:
        """Whether the frames have camera images to read: a camera and, for some sequence read, its image
        folder (``image_2/``). False: readers that can do without images (``occkit show``, ``view``,
        ``stats``) read the frames with ``load_images`` off (labels ``occkit label`` wrote from a recording
        without cameras or images have no image folder; docs/labels.md); a folder that is there but lacks
        a frame's image is still refused naming the file."""
        if not self.cameras:
            return False
        return any((self.sequence_dir(s) / self.IMAGE_DIR).is_dir() for s in self.sequences if self._calib.get(s))

    @property
    def scenes(self) -> list[str]:
        """The sequences read, in order (a format's scenes)."""
        return list(self.sequences)

    def sequence_dir(self, sequence: str) -> Path:
        """The folder of a sequence (``sequences/<XX>``; KITTI-360: ``data_2d_raw/<sequence>``)."""
        return self.root / self.SEQUENCES / sequence

    def voxel_path(self, i: int, ext: str) -> Path:
        s, f = self.frames[i]
        return self.sequence_dir(s) / "voxels" / f"{f}.{ext}"

    def image_path(self, i: int) -> Path:
        """The frame's camera image."""
        s, f = self.frames[i]
        return self.sequence_dir(s) / self.IMAGE_DIR / f"{f}.png"

    def frame_pose(self, i: int) -> np.ndarray | None:
        """``T_world_from_velo`` ``(4, 4)`` float64 of the frame, or None when the sequence has no poses."""
        s, f = self.frames[i]
        poses = self._poses[s]
        return poses[int(f)] if poses is not None and int(f) < len(poses) else None

    def read_input_occupancy(self, i: int) -> np.ndarray | None:
        """The frame's ``.bin`` input occupancy ``(256, 256, 32)`` bool, or None when absent."""
        path = self.voxel_path(i, "bin")
        return read_bitpacked(path) if path.is_file() else None

    # ---------------------------------------------------------------- synthetic extras
    def extras_path(self, token: str, suffix: str = ".npz") -> Path:
        """``sequences/<XX>/extras/<NNNNNN><suffix>`` of a frame (``.npz``, ``.instances.npz``,
        ``.objects.json``); the file may not exist (real data has no extras)."""
        s, f = self.frames[self.index_of(token)]
        return self.sequence_dir(s) / "extras" / f"{f}{suffix}"

    def read_camera_extras(self, token: str, hw: tuple[int, int] | None = None) -> dict[str, np.ndarray] | None:
        """image_2's maps: the synthetic world's exact ones, ``depth`` float32, ``semantics`` uint8 (Occ3D
        classes, 17 = sky), ``instance`` int32, or ``occkit label``'s, ``semantics`` alone (its labels rendered
        into the camera, in this layout's learning classes); each ``(H, W)`` (``hw``, the image's, when given);
        ``None`` when absent. Wrong shapes or dtypes raise naming the file."""
        from occkit.data.occ3d import _npz_names

        path = self.extras_path(token)
        if not path.is_file():
            return None
        table = CAMERA_MAPS if "depth" in _npz_names(path) else {"semantics": CAMERA_MAPS["semantics"]}
        return read_arrays(path, table, dict(zip("HW", hw or ())))

    def read_instances(self, token: str) -> np.ndarray | None:
        """The frame's voxel instance ids (synthetic extras ``<NNNNNN>.instances.npz``):
        ``(256, 256, 32)`` int32 on the ``.label`` grid, 0 = none; ``None`` when absent. A wrong
        shape or dtype raises naming the file."""
        path = self.extras_path(token, ".instances.npz")
        return (
            read_arrays(path, {"instance": "int32 X Y Z"}, dict(zip("XYZ", SSC_SHAPE)))["instance"]
            if path.is_file()
            else None
        )

    def objects(self, token: str) -> list[dict[str, Any]]:
        """The frame's ``<NNNNNN>.objects.json`` entries (synthetic extras), ``[]`` when absent."""
        return read_objects(self.extras_path(token, ".objects.json"))

    def instance_names(self, token: str) -> dict[int, str]:
        """``{instance id: fine name}`` of the frame's objects (synthetic extras; ``{}`` when absent)."""
        return read_instance_names(self.extras_path(token, ".objects.json"))

    def load_gt_arrays(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Learning classes ``(256, 256, 32)`` uint8 (255 ignored) and invalid ``(256, 256, 32)``
        bool. A ``.label`` without its ``.invalid`` raises naming the missing file (the
        semantic-kitti-api reads both; without it every voxel would count as valid); a raw id
        outside the learning map raises naming the ``.label``."""
        label_path = self.voxel_path(i, "label")
        labels = raw_to_learning(read_label(label_path), where=label_path)
        return labels, read_bitpacked(require_invalid(label_path, self.voxel_path(i, "invalid")))

    def frame_labels(self, i: int) -> tuple[np.ndarray, np.ndarray, Path]:
        """Frame ``i``'s learning classes ``(256, 256, 32)`` uint8 (255 ignored), the voxels the SSC
        metric scores (bool: not invalid, not ignored) and the ``.label`` file (for errors)."""
        labels, invalid = self.load_gt_arrays(i)
        return labels, ~invalid & (labels != 255), self.voxel_path(i, "label")

    def __getitem__(self, i: int) -> Sample:
        s, f = self.frames[i]
        camera = self._calib[s]
        if camera is None:  # a sequence without a camera: the frame's occupancy alone
            K, T_ego_from_cam, cams = np.zeros((0, 3, 3)), np.zeros((0, 4, 4)), ()
        else:
            K, T_ego_from_cam, cams = camera[0][None], np.linalg.inv(camera[1])[None], (self.CAMERA,)
        if self.load_images and cams:
            img = load_image(self.image_path(i))
            images = torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float().div_(255)
        else:
            images = torch.zeros(len(cams), 3, 0, 0)
        pose = self.frame_pose(i)
        T_g = torch.from_numpy(pose) if pose is not None else torch.eye(4, dtype=torch.float64)
        sample = Sample(
            token=f"{s}/{f}",
            scene=s,
            timestamp=int(f),
            cam_names=cams,
            images=images,
            intrinsics=torch.from_numpy(K).float(),
            T_ego_from_cam=torch.from_numpy(T_ego_from_cam).float(),
            T_global_from_ego=T_g,
            T_ego_from_lidar=torch.eye(4),
        )
        occ_in = self.read_input_occupancy(i)
        if occ_in is not None:
            sample.extra["input_occupancy"] = torch.from_numpy(occ_in)
        if self.load_gt:
            labels, invalid = self.load_gt_arrays(i)
            sample.occupancy = torch.from_numpy(labels.astype(np.int64))
            valid = torch.from_numpy(~invalid)
            sample.mask_camera = valid
            sample.mask_lidar = valid.clone()
        if self.load_extras:
            maps = self.read_camera_extras(sample.token, tuple(images.shape[-2:]) if self.load_images else None)
            if maps is not None:  # the sizes of image_2's image when it is read
                sample.semantics_2d = torch.from_numpy(maps["semantics"].astype(np.int64))[None]  # (1, H, W)
                if "depth" in maps:  # the world's maps (occkit label's have the semantics alone)
                    sample.depth = torch.from_numpy(maps["depth"])[None]
                    sample.instance_2d = torch.from_numpy(maps["instance"].astype(np.int64))[None]
        return sample
