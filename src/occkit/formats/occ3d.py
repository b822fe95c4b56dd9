"""Occ3D-nuScenes as a dataset format: six cameras, 18 classes (17 = free) on a 200 x 200 x 16
grid at 0.4 m in the ego frame, scored by the Occ3D mIoU (camera mask) and RayIoU.

The reader is :class:`occkit.data.occ3d.Occ3DDataset` (the layout is described there), the
metrics :class:`occkit.metrics.occ3d.Occ3DMetric` and :class:`occkit.metrics.rayiou.RayIoUMetric`,
the submission files ``<token>.npz`` (``semantics`` uint8), scored by occkit's one scoring loop
(:func:`occkit.scoring.folder.evaluate_predictions`). A folder holding ``annotations.json`` is Occ3D.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from occkit.fileio import load_npz
from occkit.formats._nusc_labels import OCC3D_WRITER
from occkit.formats.spec import ClassTable, Metric, OpenOptions, PriorVocabulary, format_of_module, world_writer
from occkit.geometry.grid import occ3d_grid
from occkit.labels import OCC3D_CLASSES, OCC3D_FREE, OCC3D_NUM_CLASSES, OCC3D_PALETTE

#: The Occ3D-nuScenes grid: (200, 200, 16) voxels of 0.4 m.
GRID = occ3d_grid()
#: Occ3D-nuScenes' 18 classes (17 = free), 255 = ignored.
TABLE = ClassTable(names=OCC3D_CLASSES, free=OCC3D_FREE, ignore=255, palette=OCC3D_PALETTE)
#: How ``occkit convert`` writes a dataset's labels in this layout.
LABEL_WRITER = OCC3D_WRITER


def detect(root: Path) -> str | None:
    return "it holds annotations.json" if (root / "annotations.json").is_file() else None


#: The folders an Occ3D split was opened in that also hold ``sequences/``, said once a process.
_SAID_SEQUENCES: set[str] = set()


def _say_sequences_beside(root: Path) -> None:
    """One warning line when an Occ3D folder also holds ``sequences/`` (SemanticKITTI's layout), which
    reading it as Occ3D leaves unread (``annotations.json`` wins, docs/data.md "Dataset formats")."""
    key = os.path.abspath(root)
    if (Path(root) / "sequences").is_dir() and key not in _SAID_SEQUENCES:
        import sys

        _SAID_SEQUENCES.add(key)
        print(
            f"occkit: warning: {root}: read as Occ3D (it holds annotations.json); its sequences/ folder "
            "(SemanticKITTI's layout) is not read: the command's format option (--format semantickitti) reads that "
            "one; keep one layout per folder",
            file=sys.stderr,
            flush=True,
        )


def open_split(root: Path, split: str, options: OpenOptions) -> Any:
    from occkit.data.occ3d import Occ3DDataset

    _say_sequences_beside(root)
    return Occ3DDataset(
        root,
        split,
        cameras=tuple(options.cameras) if options.cameras else None,
        load_images=options.load_images,
        load_gt=options.load_gt,
        load_extras=options.load_extras,
        cache_mb=options.cache_mb,
    )


def metrics(options: dict[str, Any]) -> list[Metric]:
    """The Occ3D mIoU under ``options["mask"]`` (default ``camera``, the challenge's), and RayIoU
    when ``"rayiou"`` is in ``options["metrics"]`` (its targets need ``extra["ray_origins"]``)."""
    from occkit.metrics.occ3d import Occ3DMetric
    from occkit.metrics.rayiou import RayIoUMetric

    n = int(options.get("num_classes") or OCC3D_NUM_CLASSES)
    free = TABLE.free if n == TABLE.num_classes else n - 1  # the table's last: a model of fewer classes keeps it last
    device = options.get("device")
    out: list[Metric] = [Occ3DMetric(mask=options.get("mask") or "camera", num_classes=n, device=device, free=free)]
    if "rayiou" in (options.get("metrics") or ()):
        out.append(RayIoUMetric(num_classes=n, device=device, infos=options.get("infos"), free=free))
    return out


def prediction_relpath(token: str) -> str:
    return f"{token}.npz"


def write_prediction(folder: Path, token: str, labels: np.ndarray) -> Path:
    from occkit.fileio import save_npz_atomic
    from occkit.outputs import path_under

    path = path_under(folder, prediction_relpath(token), what=f"frame token {token!r}")  # never outside the folder
    return save_npz_atomic(path, semantics=np.ascontiguousarray(labels, dtype=np.uint8))


def read_prediction(path: str | os.PathLike, shape: tuple[int, int, int] | None = None) -> np.ndarray:
    """A prediction in the Occ3D submission format: ``shape`` (default the Occ3D grid's) uint8 class
    ids from 0 to the free class.

    Reads key ``semantics``, else ``pred``, else the file's only array; wrong shape, a float or
    boolean dtype or out-of-range classes raise naming the file."""
    z = load_npz(path)
    if "semantics" in z:
        a = z["semantics"]
    elif "pred" in z:
        a = z["pred"]
    elif len(z) == 1:
        a = next(iter(z.values()))
    else:
        raise KeyError(f"{path}: no 'semantics' or 'pred' array and more than one array ({sorted(z)})")
    shape = tuple(shape) if shape is not None else tuple(GRID.shape)
    if a.shape != shape:
        raise ValueError(f"{path}: prediction has shape {a.shape}, expected {shape}")
    if a.dtype == np.bool_:  # True / False would be scored as classes 1 and 0: refused, as NYUv2's reader does
        raise ValueError(
            f"{path}: prediction has dtype bool (an occupancy mask?), expected uint8 class ids; a boolean array "
            "would be scored as classes 0 and 1"
        )
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{path}: prediction has dtype {a.dtype}, expected uint8 class ids")
    if a.size and (int(a.min()) < 0 or int(a.max()) > OCC3D_FREE):
        raise ValueError(
            f"{path}: prediction has classes in [{int(a.min())}, {int(a.max())}], expected [0, {OCC3D_FREE}]"
        )
    return a.astype(np.uint8, copy=False)


def prediction_files(pred_dir: str | os.PathLike) -> dict[str, Path]:
    """``{token: path}`` of the Occ3D predictions ``<token>.npz`` anywhere under ``pred_dir``; two
    files of one token raise naming both."""
    pred_dir = Path(pred_dir)
    found: dict[str, Path] = {}
    for p in sorted(pred_dir.rglob("*.npz")):
        if p.stem in found:
            raise ValueError(f"{pred_dir}: two predictions for token {p.stem}: {found[p.stem]} and {p}")
        found[p.stem] = p
    return found


def write_generated(out: Path, frames: Sequence[Any], cameras: tuple[str, ...]) -> None:
    """Generated frames (:attr:`Writers.write_generated`) in the Occ3D layout under ``out``:
    ``samples/<CAM>/<token>.png``, ``gts/<scene>/<token>/labels.npz`` (``semantics``; ``mask_camera``
    = ``mask_lidar`` = the frame's mask), ``annotations.json`` (every scene in ``train_split``, an
    empty ``val_split``, each scene's text in ``scene_descriptions``, each frame's
    ``source_token``); the frames of a scene get timestamps 0.5 s apart."""
    from PIL import Image

    from occkit.fileio import atomic_write, save_npz_atomic, write_json_atomic
    from occkit.geometry.transforms import pose_from_transform
    from occkit.outputs import path_under

    root = Path(out)
    scene_infos: dict[str, dict[str, Any]] = {}
    descriptions: dict[str, str] = {}
    order: dict[str, list[str]] = {}
    for f in frames:
        what = f"generated frame: scene {f.scene!r}, token {f.token!r}"
        order.setdefault(f.scene, []).append(f.token)
        descriptions[f.scene] = f.text
        ego = pose_from_transform(f.T_global_from_ego.double())
        cams = {}
        for i, cam in enumerate(cameras):
            rel = f"samples/{cam}/{f.token}.png"
            pil = Image.fromarray(np.ascontiguousarray(f.images[i].permute(1, 2, 0).numpy()))
            atomic_write(path_under(root, rel, what=what), lambda fh, pil=pil: pil.save(fh, format="PNG"))
            cams[cam] = {
                "img_path": rel,
                "intrinsic": f.intrinsics[i].double().tolist(),
                "extrinsic": pose_from_transform(f.T_ego_from_cam[i].double()),
                "ego_pose": ego,
            }
        gt = f"gts/{f.scene}/{f.token}/labels.npz"
        mask = f.mask.bool().cpu().numpy().astype(np.uint8)
        save_npz_atomic(
            path_under(root, gt, what=what),
            semantics=f.semantics.cpu().numpy().astype(np.uint8),
            mask_camera=mask,
            mask_lidar=mask,
        )
        scene_infos.setdefault(f.scene, {})[f.token] = {
            "camera_sensor": cams,
            "ego_pose": ego,
            "gt_path": gt,
            "source_token": f.source,
        }
    for scene, tokens in order.items():
        for i, tok in enumerate(tokens):
            info = scene_infos[scene][tok]
            info["timestamp"] = 1_000_000 + 500_000 * i
            info["prev"] = tokens[i - 1] if i > 0 else ""
            info["next"] = tokens[i + 1] if i + 1 < len(tokens) else ""
    write_json_atomic(
        root / "annotations.json",
        {"train_split": list(order), "val_split": [], "scene_infos": scene_infos, "scene_descriptions": descriptions},
    )


#: The synthetic world in this layout (``occkit synth``, whose default format this is).
write_synthetic = world_writer("occkit.worlds.driving:generate_dataset", overwrite=True)


#: The name of the free class in 2D: the pixels that show no surface are the sky.
PRIOR_NOTHING = "sky"
#: Grounded-SAM as OccNeRF prompted it (docs/methods.md §2): ``(prompt, class)``. Riders go with their
#: vehicle's class (nuScenes annotates a cycle with its rider as one object) [unsure which OccNeRF took].
PRIOR_PROMPTS: tuple[tuple[str, str], ...] = (
    ("pedestrian", "pedestrian"),
    ("bus", "bus"),
    ("truck", "truck"),
    ("bicycle", "bicycle"),
    ("bicyclist", "bicycle"),
    ("motorcycle", "motorcycle"),
    ("motorcyclist", "motorcycle"),
    ("barrier", "barrier"),
    ("barricade", "barrier"),
    ("sedan", "car"),
    ("highway", "driveable_surface"),
    ("terrain", "terrain"),
    ("tree", "vegetation"),
    ("sidewalk", "sidewalk"),
    ("building", "manmade"),
    ("bridge", "manmade"),
    ("pole", "manmade"),
    ("billboard", "manmade"),
    ("light", "manmade"),
    ("ashbin", "manmade"),
    ("crane", "construction_vehicle"),
    ("trailer", "trailer"),
    ("cone", "traffic_cone"),
    ("sky", "sky"),
)
#: The prompts asked together, one detector pass per group.
PRIOR_GROUPS: tuple[tuple[str, ...], ...] = (
    ("pedestrian", "bus", "truck"),
    ("bicycle", "bicyclist"),
    ("motorcycle", "motorcyclist"),
    ("barrier", "barricade"),
    (
        "sedan",
        "highway",
        "terrain",
        "tree",
        "sidewalk",
        "building",
        "bridge",
        "pole",
        "billboard",
        "light",
        "ashbin",
        "crane",
        "trailer",
        "cone",
        "sky",
    ),
)
#: The classes an object of each class can be mistaken for (the oracle prior's error model).
PRIOR_CONFUSABLE: dict[int, tuple[int, ...]] = {
    0: (15, 1),
    1: (8, 0),
    2: (6,),
    3: (10, 9),
    4: (10,),
    5: (10,),
    6: (2,),
    7: (2,),
    8: (1,),
    9: (10,),
    10: (4, 9, 3),
    15: (0,),
    16: (14,),
}
#: Ground classes and what patches of them can be mistaken for.
PRIOR_STUFF_CONFUSABLE: dict[int, tuple[int, ...]] = {11: (12,), 12: (13, 11), 13: (12, 11), 14: (16, 13)}


def prior_vocabulary() -> PriorVocabulary:
    """The 2D priors' names of Occ3D's classes, the table of the driving world's priors: the free
    class is the sky; the ground classes and the sky take the driving world's words
    (:data:`occkit.worlds.driving.vocabulary.CLASS_WORDS`)."""
    from occkit.worlds.driving.vocabulary import CLASS_WORDS

    names = (*OCC3D_CLASSES[:OCC3D_FREE], PRIOR_NOTHING, *OCC3D_CLASSES[OCC3D_FREE + 1 :])
    return PriorVocabulary(
        nothing=PRIOR_NOTHING,
        words={names[c]: w for c, w in CLASS_WORDS.items()},
        prompts=PRIOR_PROMPTS,
        groups=PRIOR_GROUPS,
        confusable=PRIOR_CONFUSABLE,
        stuff_confusable=PRIOR_STUFF_CONFUSABLE,
    )


FORMAT = format_of_module(
    __name__,
    name="occ3d",
    title="Occ3D-nuScenes",
    summary="Occ3D-nuScenes (annotations.json, gts/<scene>/<token>/labels.npz; six cameras)",
    modality="multi-camera",
    label_frame="ego",
    ground_z=0.0,  # nuScenes' ego frame sits on the road
    splits=("train", "val"),
    detection={"priority": 10},
    scoring={"folder_options": frozenset({"mask", "metrics", "infos"}), "metric_names": ("miou", "rayiou")},
)
