"""NYUv2 semantic scene completion in MonoScene's layout (``NYUtrain/``, ``NYUtest/``; see
:mod:`occkit.data.nyu`): the format ``nyu``, the indoor one (``occkit synth --world indoor`` writes
the procedural indoor world in it).

Monocular (one Kinect camera, ``kinect``, MonoScene's intrinsics), 12 classes with 0 = empty and 255
ignored, the 60 x 60 x 36 grid at 0.08 m (occkit's (x, y, z) order of MonoScene's 60 x 36 x 60
target) in the gravity-aligned world frame shifted to each frame's voxel origin. Scored as MonoScene
scores NYUv2 (:class:`occkit.metrics.ssc.NYUSSCMetric`): every known voxel, no visibility mask.
Predictions are ``<token>.npz`` files holding ``semantics``, uint8 ``(60, 60, 36)``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from occkit.data.nyu import NYUDataset, is_nyu_root
from occkit.fileio import load_npz, save_npz_atomic
from occkit.formats.spec import (
    MONOCULAR_SSC,
    ClassTable,
    OpenOptions,
    PriorVocabulary,
    format_of_module,
    open_one_camera,
    refuse_another_class_count,
    world_writer,
)
from occkit.geometry.grid import nyu_grid
from occkit.labels import NYU_CLASSES, NYU_IGNORE, NYU_NUM_CLASSES, NYU_PALETTE
from occkit.metrics.ssc import NYUSSCMetric

#: NYUv2's 12 classes (SSCNet's 11 + empty, 0 = empty), 255 = unknown.
TABLE = ClassTable(names=NYU_CLASSES, free=0, ignore=NYU_IGNORE, palette=NYU_PALETTE)
#: MonoScene's (60, 60, 36) grid of 0.08 m voxels in the room's world frame.
GRID = nyu_grid()
#: The one camera of every frame.
CAMERAS = (NYUDataset.CAMERA,)


def detect(root: Path) -> str | None:
    if is_nyu_root(root):
        return "it holds NYUtrain/ or NYUtest/ (MonoScene's NYUv2 layout)"
    return None


def open_split(root: Path, split: str, options: OpenOptions) -> NYUDataset:
    return open_one_camera(NYUDataset, "the NYUv2 layout", root, split, options)


def metrics(options: dict[str, Any]) -> list[NYUSSCMetric]:
    """A fresh :class:`NYUSSCMetric` (options: ``device``; ``num_classes``, the model's, must be
    12; ``mask`` unused: MonoScene scores every known voxel)."""
    refuse_another_class_count(options, TABLE, "NYUv2", "nyu-mono")
    return [NYUSSCMetric(options.get("device"))]


def prediction_relpath(token: str) -> str:
    """Token ``NYU<room>_<view>`` -> ``NYU<room>_<view>.npz``."""
    return f"{token}.npz"


def write_prediction(folder: Path, token: str, labels: np.ndarray) -> Path:
    """``folder/<token>.npz`` holding ``semantics`` uint8 ``(60, 60, 36)`` (atomically)."""
    labels = np.asarray(labels)
    if labels.shape != GRID.shape:
        raise ValueError(f"{token}: prediction has shape {labels.shape}, expected {GRID.shape}")
    from occkit.outputs import path_under

    path = path_under(folder, prediction_relpath(token), what=f"frame token {token!r}")  # never outside the folder
    return save_npz_atomic(path, semantics=np.ascontiguousarray(labels.astype(np.uint8)))


def prediction_files(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(Path(folder).glob("*.npz"))}


def read_prediction(path: Path) -> np.ndarray:
    """A prediction file as ``(60, 60, 36)`` uint8 classes; a wrong key, shape, dtype or class raises naming it."""
    z = load_npz(path, keys=("semantics",))
    sem = z["semantics"]
    if sem.shape != GRID.shape:
        raise ValueError(f"{path}: 'semantics' has shape {sem.shape}, expected {GRID.shape}")
    if not np.issubdtype(sem.dtype, np.integer):
        raise ValueError(f"{path}: 'semantics' has dtype {sem.dtype}, expected integer classes (uint8)")
    if sem.size and (int(sem.min()) < 0 or int(sem.max()) >= NYU_NUM_CLASSES):
        raise ValueError(f"{path}: 'semantics' has classes outside 0..{NYU_NUM_CLASSES - 1}")
    return sem.astype(np.uint8)


#: JPEG quality of generated colour images (the indoor world writes its own at 92 by default).
GENERATED_JPEG_QUALITY = 95


def write_generated(out: Path, frames: Sequence[Any], cameras: tuple[str, ...]) -> None:
    """Generated frames (:attr:`Writers.write_generated`) in MonoScene's NYUv2 layout under
    ``out``, all in ``NYUtrain/``: ``<token>_color.jpg`` (the image resized, bicubic, to NYUv2's 640 x
    480 and stored as JPEG at :data:`GENERATED_JPEG_QUALITY`, as the layout stores colour; a frame
    generated at 96 x 128 reads back at 96 x 128 within the resampling and JPEG error),
    ``<token>.bin`` (the voxel origin and camera pose of the conditioning frame, the labels: each
    0.08 m voxel repeated over its 4 x 4 x 4 voxels of the 0.02 m grid, 255 outside the mask, so the
    reader's SSCNet downsampling gives back exactly ``semantics`` where the mask is set and 255
    elsewhere) and ``indoor.json`` (each frame's ``description`` and ``source``). No depth images:
    a generated frame has none. The intrinsics must be MonoScene's kinect scaled to the generated
    size (what the reader's resize gives); a crop or another camera raises naming the frame."""
    from PIL import Image

    from occkit.data.nyu import INDEX_FILE, NYU_IMAGE_HW, NYU_K, write_bin, xyz_to_file
    from occkit.fileio import write_bytes_atomic, write_json_atomic
    from occkit.outputs import path_under

    if tuple(cameras) != CAMERAS:
        raise ValueError(f"the NYUv2 layout has one camera, {CAMERAS[0]}; the generated frames have {list(cameras)}")
    root = Path(out)
    H0, W0 = NYU_IMAGE_HW
    K_nyu = np.asarray(NYU_K, dtype=np.float64)
    grid = nyu_grid()
    index: dict[str, dict[str, Any]] = {}
    for f in frames:
        img = np.ascontiguousarray(f.images[0].permute(1, 2, 0).numpy())
        H, W = img.shape[:2]
        K = f.intrinsics[0].double().numpy() * np.array([[W0 / W], [H0 / H], [1.0]])
        if (
            abs(K[0, 0] / K_nyu[0, 0] - 1) > 1e-3
            or abs(K[1, 1] / K_nyu[1, 1] - 1) > 1e-3
            or np.abs(K[:2, 2] - K_nyu[:2, 2]).max() > 2.0
        ):
            raise ValueError(
                f"generated frame {f.token}: intrinsics {np.round(f.intrinsics[0].double().numpy(), 3).tolist()} at "
                f"{W}x{H} are not the kinect's scaled to that size (a crop?): the NYUv2 layout stores 640x480 images"
            )
        sem = f.semantics.cpu().numpy()
        if sem.shape != grid.shape:
            raise ValueError(f"generated frame {f.token}: labels of shape {sem.shape}, expected {grid.shape}")
        labels = np.where(f.mask.bool().cpu().numpy(), sem, NYU_IGNORE).astype(np.uint8)
        fine = labels.repeat(4, 0).repeat(4, 1).repeat(4, 2)  # (240, 240, 144) x, y, z
        T_global_from_ego = f.T_global_from_ego.double().cpu().numpy()
        pose = T_global_from_ego @ f.T_ego_from_cam[0].double().cpu().numpy()
        folder = root / "NYUtrain"
        buf = io.BytesIO()
        Image.fromarray(img, "RGB").resize((W0, H0), Image.Resampling.BICUBIC).save(
            buf, format="JPEG", quality=GENERATED_JPEG_QUALITY
        )
        what = f"generated frame: token {f.token!r}"
        write_bytes_atomic(path_under(folder, f"{f.token}_color.jpg", what=what), buf.getvalue())
        write_bin(
            path_under(folder, f"{f.token}.bin", what=what),
            T_global_from_ego[:3, 3],
            pose,
            np.ascontiguousarray(xyz_to_file(fine)),
        )
        index[f.token] = {"split": "NYUtrain", "description": f.text, "source": f.source}
    write_json_atomic(root / INDEX_FILE, {"generated": True, "frames": index})


#: The procedural indoor world (an :class:`~occkit.worlds.indoor.IndoorConfig`) in this layout.
write_synthetic = world_writer("occkit.worlds.indoor:generate_indoor")


def prior_vocabulary() -> PriorVocabulary:
    """The 2D priors' names of NYUv2's classes (occkit's choice, no paper prompts indoors [own]): the
    free class ``empty`` stands for the pixels that show no surface (the indoor world's rays that hit
    nothing); the confusions of the oracle prior's error model: objects (chair 5, bed 6, sofa 7,
    table 8, tvs 9, furniture 10, objects 11, window 4) and the structure (ceiling 1, floor 2, wall 3)."""
    prompts = {
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
    }
    return PriorVocabulary(
        words={"empty": "nothing", "tvs": "television", "objects": "object"},
        prompts=tuple(prompts.items()),
        groups=(
            ("ceiling", "floor", "wall", "window"),
            ("chair", "bed", "sofa", "table", "desk"),
            ("television", "monitor", "cabinet", "wardrobe", "shelf", "dresser"),
            ("lamp", "picture", "plant", "box", "book"),
        ),
        confusable={4: (3,), 5: (7, 10), 6: (7, 10), 7: (5, 6), 8: (10,), 9: (11, 10), 10: (8, 11), 11: (10,)},
        stuff_confusable={1: (3,), 3: (1,)},
    )


FORMAT = format_of_module(
    __name__,
    name="nyu",
    title="NYUv2",
    summary="NYUv2 semantic scene completion in MonoScene's layout (NYUtrain/, NYUtest/: colour, depth, .bin; "
    "one camera, kinect)",
    label_frame="world",
    splits=("train", "test", "val"),
    world="indoor",
    **MONOCULAR_SSC,
)
