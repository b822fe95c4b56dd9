"""The toy dataset format: one ``.npz`` per frame, five classes on the Occ3D grid, the free class
first (README.md).

``FORMAT`` is what occkit's format registry reads (entry point group ``occkit.datasets``). It
declares its class table once (free id 0, not the last), how occkit's synthetic world maps onto it
(``SYNTHETIC_CLASSES``: occkit writes the world's labels in these ids, this module remaps nothing)
and its own metric, which knows nothing of ``eval --frustum``'s region: occkit applies it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from occkit.data.sample import Sample
from occkit.fileio import load_npz, save_npz_atomic, write_json_atomic
from occkit.formats import (
    ClassTable,
    DatasetFormat,
    Detection,
    FormatScoring,
    Metric,
    OpenOptions,
    PredictionFiles,
    Writers,
)
from occkit.geometry.grid import occ3d_grid

INDEX = "toyformat.json"
CLASSES = ClassTable(names=("free", "ground", "object", "structure", "vegetation"), free=0, ignore=255)
GRID = occ3d_grid()
#: occkit's synthetic world (Occ3D-nuScenes' classes) in this table, by name: objects, ground, manmade,
#: vegetation, free. ``occkit synth --format toy`` writes every label of the world in these ids.
SYNTHETIC_CLASSES = {
    **{c: "object" for c in ("others", "barrier", "bicycle", "bus", "car", "construction_vehicle")},
    **{c: "object" for c in ("motorcycle", "pedestrian", "traffic_cone", "trailer", "truck")},
    **{c: "ground" for c in ("driveable_surface", "other_flat", "sidewalk", "terrain")},
    "manmade": "structure",
    "vegetation": "vegetation",
    "free": "free",
}


def detect(root: Path) -> str | None:
    return f"it holds {INDEX}" if (root / INDEX).is_file() else None


class ToyFrames(torch.utils.data.Dataset):
    """The frames of a split (``all``: every frame), in the index's order."""

    def __init__(self, root: Path, split: str, options: OpenOptions) -> None:
        self.root = Path(root)
        path = self.root / INDEX
        index = json.loads(path.read_text(encoding="utf-8"))
        splits = index["splits"]
        if split != "all" and split not in splits:
            raise ValueError(f"{path}: no split {split!r} (it has {', '.join(splits)}, and all)")
        tokens = [t for s in splits.values() for t in s] if split == "all" else list(splits[split])
        self._scene = index["scenes"]
        stored = tuple(index["cameras"])
        unknown = [c for c in options.cameras or () if c not in stored]
        if unknown:
            raise ValueError(f"{path}: the frames have the cameras {list(stored)}, not {unknown}")
        self.cameras = tuple(options.cameras) if options.cameras else stored  # a run may see some of them
        self._cams = [stored.index(c) for c in self.cameras]
        self.options = options
        self.grid = GRID
        self.frames = [_Frame(t, self._scene[t]) for t in tokens]
        self.scenes = list(dict.fromkeys(f.scene for f in self.frames))
        self._index = {t: i for i, t in enumerate(tokens)}

    @property
    def tokens(self) -> list[str]:
        return [f.token for f in self.frames]

    def index_of(self, token: str) -> int:
        if token not in self._index:
            raise KeyError(f"token {token!r} is not a frame of {self.root}")
        return self._index[token]

    def __len__(self) -> int:
        return len(self.frames)

    def _read(self, i: int) -> dict[str, np.ndarray]:
        path = self.root / "frames" / f"{self.frames[i].token}.npz"
        z = load_npz(path)
        for key, shape, dtype in (("labels", GRID.shape, np.uint8), ("scored", GRID.shape, np.bool_)):
            if key not in z or z[key].shape != GRID.shape or z[key].dtype != dtype:
                got = "absent" if key not in z else f"{z[key].dtype} {z[key].shape}"
                raise ValueError(f"{path}: '{key}' is {got}, expected {np.dtype(dtype).name} {shape}")
        if int(z["labels"].max(initial=0)) >= CLASSES.num_classes:
            raise ValueError(
                f"{path}: 'labels' has class {int(z['labels'].max())}, outside 0..{CLASSES.num_classes - 1}"
            )
        return z

    def frame_labels(self, i: int) -> tuple[np.ndarray, np.ndarray, Path]:
        z = self._read(i)
        return z["labels"], z["scored"], self.root / "frames" / f"{self.frames[i].token}.npz"

    def __getitem__(self, i: int) -> Sample:
        z = self._read(i)
        f = self.frames[i]
        n = len(self.cameras)
        c = self._cams
        images = (
            torch.from_numpy(z["images"][c]).permute(0, 3, 1, 2).float().div_(255)
            if self.options.load_images
            else torch.zeros(n, 3, 0, 0)
        )
        s = Sample(
            token=f.token,
            scene=f.scene,
            timestamp=i,
            cam_names=self.cameras,
            images=images,
            intrinsics=torch.from_numpy(z["intrinsics"][c]).float(),
            T_ego_from_cam=torch.from_numpy(z["T_ego_from_cam"][c]).float(),
            T_global_from_ego=torch.from_numpy(z["T_global_from_ego"]).double(),
        )
        if self.options.load_gt:
            s.occupancy = torch.from_numpy(z["labels"].astype(np.int64))
            s.mask_camera = torch.from_numpy(z["scored"])
            s.mask_lidar = s.mask_camera.clone()
        return s


class _Frame:
    def __init__(self, token: str, scene: str) -> None:
        self.token, self.scene = token, scene


def open_split(root: Path, split: str, options: OpenOptions) -> ToyFrames:
    return ToyFrames(root, split, options)


class ToyMIoU:
    """The toy format's own metric: the IoU of each occupied class and their mean, and the IoU of
    occupied against free, over the voxels a frame scores (``Targets.mask_camera``, the frame's
    ``scored``) whose label is not the ignore id. It knows nothing of regions: ``occkit eval
    --frustum`` reaches it as false masks and ignore ids, which occkit writes."""

    name = "toy"

    def __init__(self) -> None:
        n = CLASSES.num_classes
        self.counts = np.zeros((n, n), np.int64)  # rows: ground truth
        self.frames = 0

    def update(self, pred: torch.Tensor, target: Any) -> None:
        gt = target.occupancy.detach().cpu().numpy().reshape(-1)
        p = (pred.argmax(1) if pred.dim() == 5 else pred).detach().cpu().numpy().reshape(-1)
        keep = gt != CLASSES.ignore
        if target.mask_camera is not None:
            keep &= target.mask_camera.detach().cpu().numpy().reshape(-1).astype(bool)
        n = CLASSES.num_classes
        self.counts += np.bincount(gt[keep].astype(np.int64) * n + p[keep], minlength=n * n).reshape(n, n)
        self.frames += int(target.occupancy.shape[0])

    def merge(self, other: Any) -> Any:
        self.counts += other.counts
        self.frames += other.frames
        return self

    def all_reduce(self) -> None:  # one process: nothing to gather
        pass

    def compute(self) -> dict[str, Any]:
        c, free = self.counts, CLASSES.free
        iou = {}
        for k in CLASSES.occupied:
            union = c[k].sum() + c[:, k].sum() - c[k, k]
            iou[CLASSES.names[k]] = 100.0 * c[k, k] / union if union else float("nan")
        occ = [k for k in range(len(c)) if k != free]
        tp = c[np.ix_(occ, occ)].sum()
        union = tp + c[occ, free].sum() + c[free, occ].sum()
        seen = [v for v in iou.values() if v == v]
        return {
            "miou": float(np.mean(seen)) if seen else float("nan"),
            "geometry_iou": 100.0 * tp / union if union else float("nan"),
            "iou": iou,
            "frames": self.frames,
        }


def metrics(options: dict[str, Any]) -> list[Metric]:
    """The toy format's own metric (:class:`ToyMIoU`)."""
    return [ToyMIoU()]


def write_prediction(folder: Path, token: str, labels: np.ndarray) -> Path:
    return save_npz_atomic(Path(folder) / f"{token}.npz", labels=np.ascontiguousarray(labels, dtype=np.uint8))


def prediction_files(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(Path(folder).glob("*.npz"))}


def read_prediction(path: Path) -> np.ndarray:
    a = load_npz(path, keys=("labels",))["labels"]
    if a.shape != GRID.shape or a.dtype != np.uint8 or int(a.max(initial=0)) >= CLASSES.num_classes:
        raise ValueError(f"{path}: 'labels' is {a.dtype} {a.shape}, expected uint8 {GRID.shape} in 0..4")
    return a


def write_synthetic(out: Path, config: Any) -> None:
    """occkit's synthetic world in this layout: written in the Occ3D layout beside the frames (a
    resumable source; its labels already in this table's ids, ``config.classes``), each frame laid
    out in this layout, the source removed."""
    from occkit.data.occ3d import Occ3DDataset, load_image
    from occkit.worlds.driving import generate_dataset

    out = Path(out)
    source = out / ".occ3d-source"
    generate_dataset(source, config, overwrite=True, progress=True, resume=True)
    index: dict[str, Any] = {"classes": list(CLASSES.names), "splits": {}, "scenes": {}}
    for split in ("train", "val"):
        ds = Occ3DDataset(source, split, load_extras=False)
        index["cameras"] = list(ds.cameras)
        index["splits"][split] = []
        for f in ds.frames:
            gt = ds.read_labels(f.token)
            images = np.stack([load_image(ds.image_path(f.token, c)) for c in ds.cameras])
            save_npz_atomic(
                out / "frames" / f"{f.token}.npz",
                images=images,
                intrinsics=np.stack([ds.intrinsics(f.token, c).numpy() for c in ds.cameras]).astype(np.float32),
                T_ego_from_cam=np.stack([ds.T_ego_from_cam(f.token, c).numpy() for c in ds.cameras]).astype(np.float32),
                T_global_from_ego=ds.T_global_from_ego(f.token).numpy(),
                labels=gt["semantics"],
                scored=gt["mask_camera"].astype(bool),
            )
            index["splits"][split].append(f.token)
            index["scenes"][f.token] = f.scene
    write_json_atomic(out / INDEX, index)
    shutil.rmtree(source)


FORMAT = DatasetFormat(
    name="toy",
    title="toy-format",
    summary="toy format (toyformat.json, frames/<token>.npz; five classes on the Occ3D grid)",
    modality="multi-camera",
    classes=CLASSES,
    grid=GRID,
    label_frame="ego",
    splits=("train", "val"),
    open=open_split,
    predictions=PredictionFiles(write=write_prediction, index=prediction_files, read=read_prediction),
    detection=Detection(detect),
    scoring=FormatScoring(metrics, folder_options=frozenset()),
    writers=Writers(write_synthetic=write_synthetic, synthetic_classes=SYNTHETIC_CLASSES),
)
