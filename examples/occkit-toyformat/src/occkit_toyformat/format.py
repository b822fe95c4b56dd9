"""The toy dataset format: one ``.npz`` per frame, five classes on the Occ3D grid (README.md).

``FORMAT`` is what occkit's format registry reads (entry point group ``occkit.datasets``).
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
from occkit.formats import ClassTable, DatasetFormat, Metric, OpenOptions, PredictionFiles
from occkit.geometry.grid import occ3d_grid

INDEX = "toyformat.json"
CLASSES = ClassTable(names=("ground", "object", "structure", "vegetation", "free"), free=4, ignore=255)
GRID = occ3d_grid()
#: Occ3D class -> toy class: objects (0-10), ground (11-14), manmade, vegetation, free.
FROM_OCC3D = np.array([1] * 11 + [0] * 4 + [2, 3, 4], dtype=np.uint8)


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
        self.cameras = tuple(index["cameras"])
        if options.cameras and tuple(options.cameras) != self.cameras:
            raise ValueError(f"{path}: the frames have the cameras {list(self.cameras)}, not {list(options.cameras)}")
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
        images = (
            torch.from_numpy(z["images"]).permute(0, 3, 1, 2).float().div_(255)
            if self.options.load_images
            else torch.zeros(n, 3, 0, 0)
        )
        s = Sample(
            token=f.token,
            scene=f.scene,
            timestamp=i,
            cam_names=self.cameras,
            images=images,
            intrinsics=torch.from_numpy(z["intrinsics"]).float(),
            T_ego_from_cam=torch.from_numpy(z["T_ego_from_cam"]).float(),
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


def metrics(options: dict[str, Any]) -> list[Metric]:
    """occkit's Occ3D mIoU over the five classes (free last), inside each frame's ``scored`` voxels."""
    from occkit.metrics.occ3d import Occ3DMetric

    return [
        Occ3DMetric(
            mask="camera", num_classes=CLASSES.num_classes, class_names=CLASSES.names, device=options.get("device")
        )
    ]


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
    resumable source), each frame converted, the source removed."""
    from occkit.data.occ3d import Occ3DDataset, load_image
    from occkit.data.synth import generate_dataset

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
                labels=FROM_OCC3D[gt["semantics"]],
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
    detect=detect,
    open=open_split,
    metrics=metrics,
    predictions=PredictionFiles(write=write_prediction, index=prediction_files, read=read_prediction),
    write_synthetic=write_synthetic,
    folder_options=frozenset(),
)
