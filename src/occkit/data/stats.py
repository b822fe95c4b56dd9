"""Statistics of an Occ3D-layout dataset: class frequencies, free and masked fractions, frames per
scene. Reads only ``annotations.json`` and the ``labels.npz`` files (plus one image header)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from occkit.data.occ3d import Occ3DDataset
from occkit.labels import OCC3D_CLASSES, OCC3D_FREE, OCC3D_NUM_CLASSES
from occkit.shapes import check_shape


def count_frame_classes(
    ds: Any,
    num_classes: int,
    scored_only: bool = True,
    max_frames: int = 2000,
    progress: bool = False,
    what: str = "class counts",
) -> np.ndarray:
    """Voxels of each class ``(num_classes,)`` float64 over the frames of a frame dataset of any
    format (its ``frame_labels(i) -> (labels, scored mask, path)``), at most ``max_frames`` of them,
    evenly spaced: inside the voxels its benchmark scores (``scored_only``; Occ3D: the camera mask,
    SemanticKITTI: not invalid nor ignored), else every voxel but the ignore value 255. The class
    weights of ``supervised.class_counts: auto`` and ``cigocc.class_balance: dataset``.

    A label outside ``[0, num_classes)`` raises naming its file; no frame, or no labelled voxel,
    raises naming ``what`` and the dataset's root.
    """
    n = len(ds.frames)
    root = getattr(ds, "root", "the dataset")
    if n == 0:
        raise ValueError(f"{what}: the training split of {root} has no frames to count")
    picks: Any = range(n) if n <= max_frames else [round(i * (n - 1) / (max_frames - 1)) for i in range(max_frames)]
    if progress:
        from tqdm import tqdm

        picks = tqdm(picks, desc="class counts", unit="frame", leave=False)
    counts = np.zeros(num_classes, dtype=np.float64)
    for i in picks:
        labels, scored, where = ds.frame_labels(i)
        known = labels[scored] if scored_only else labels[labels != 255]
        if known.size and int(known.max()) >= num_classes:
            raise ValueError(f"{where}: label {int(known.max())} is not a class of model.num_classes={num_classes}")
        counts += np.bincount(known.astype(np.int64).reshape(-1), minlength=num_classes)
    if counts.sum() == 0:
        raise ValueError(f"{what}: no labelled voxels in the training split of {root}")
    return counts


def fill_class_counts(
    cfg: Any,
    section: str,
    train_set: Any,
    what: str,
    scored_only: bool = True,
    max_frames: int = 2000,
    progress: bool = False,
) -> Any:
    """A copy of the experiment config ``cfg`` whose ``cfg.<section>.class_counts`` holds the voxels
    of each class over the training frames (:func:`count_frame_classes` of the frame dataset under
    ``train_set``'s wrappers, at most ``max_frames``, with ``scored_only`` and ``what`` as there), so
    that the run's config.json records the class weights it trained with. A method's ``resolve``
    (``supervised.class_counts: auto``, ``cigocc.class_balance: dataset``) calls it when its config
    leaves the counts to the data."""
    import copy

    from occkit.data.wrappers import base_dataset

    counts = count_frame_classes(
        base_dataset(train_set),
        cfg.model.num_classes,
        scored_only=scored_only,
        max_frames=max_frames,
        progress=progress,
        what=what,
    )
    out = copy.deepcopy(cfg)
    getattr(out, section).class_counts = tuple(float(c) for c in counts)
    return out


@dataclass
class LabelCounts:
    """Voxel counts summed over frames; every ``*_counts`` list has one entry per class 0..17.

    Attributes:
        frames: number of frames added.
        voxels: number of voxels seen.
        counts: voxels of each class.
        counts_camera: voxels of each class inside ``mask_camera``.
        counts_lidar: voxels of each class inside ``mask_lidar``.
        frames_with_class: frames in which each class occurs at least once.
        camera_voxels, lidar_voxels, both_voxels: voxels inside the camera mask, the LiDAR mask,
            both.
    """

    frames: int = 0
    voxels: int = 0
    counts: list[int] = field(default_factory=lambda: [0] * OCC3D_NUM_CLASSES)
    counts_camera: list[int] = field(default_factory=lambda: [0] * OCC3D_NUM_CLASSES)
    counts_lidar: list[int] = field(default_factory=lambda: [0] * OCC3D_NUM_CLASSES)
    frames_with_class: list[int] = field(default_factory=lambda: [0] * OCC3D_NUM_CLASSES)
    camera_voxels: int = 0
    lidar_voxels: int = 0
    both_voxels: int = 0

    def add(self, semantics: np.ndarray, mask_camera: np.ndarray, mask_lidar: np.ndarray) -> None:
        """Add one frame.

        Args:
            semantics: ``(X, Y, Z)`` integer class ids in [0, 17].
            mask_camera, mask_lidar: ``(X, Y, Z)`` 0/1 (uint8 or bool).
        """
        dims = check_shape(semantics, "X Y Z", name="semantics")
        check_shape(mask_camera, "X Y Z", name="mask_camera", dims=dims)
        check_shape(mask_lidar, "X Y Z", name="mask_lidar", dims=dims)
        sem = np.asarray(semantics).reshape(-1).astype(np.int64)
        if sem.size and (sem.min() < 0 or sem.max() >= OCC3D_NUM_CLASSES):
            raise ValueError(f"semantics: classes must lie in [0, {OCC3D_NUM_CLASSES}), got [{sem.min()}, {sem.max()}]")
        cam = np.asarray(mask_camera).reshape(-1).astype(bool)
        lid = np.asarray(mask_lidar).reshape(-1).astype(bool)
        n = OCC3D_NUM_CLASSES
        c_all = np.bincount(sem, minlength=n)
        c_cam = np.bincount(sem[cam], minlength=n)
        c_lid = np.bincount(sem[lid], minlength=n)
        self.frames += 1
        self.voxels += int(sem.size)
        for i in range(n):
            self.counts[i] += int(c_all[i])
            self.counts_camera[i] += int(c_cam[i])
            self.counts_lidar[i] += int(c_lid[i])
            self.frames_with_class[i] += int(c_all[i] > 0)
        self.camera_voxels += int(cam.sum())
        self.lidar_voxels += int(lid.sum())
        self.both_voxels += int((cam & lid).sum())


def _fractions(counts: list[int]) -> tuple[list[float], float]:
    """Per-class fraction among occupied voxels (classes 0..16) and the free fraction."""
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    occ = c[:OCC3D_FREE].sum()
    per = (c[:OCC3D_FREE] / occ).tolist() if occ > 0 else [0.0] * OCC3D_FREE
    return per, float(c[OCC3D_FREE] / total) if total > 0 else 0.0


@dataclass
class DatasetStats:
    """What ``occkit stats`` reports; see :func:`dataset_stats`."""

    root: str
    split: str
    num_scenes: int
    num_frames: int
    frames_per_scene: dict[str, int]
    image_size: tuple[int, int] | None  # (height, width) of the first camera of the first frame
    cameras: tuple[str, ...]
    labels: LabelCounts

    @property
    def classes_present(self) -> list[int]:
        """Classes 0..16 with at least one voxel."""
        return [i for i in range(OCC3D_FREE) if self.labels.counts[i] > 0]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (counts and fractions, per class by name)."""
        lab = self.labels
        occ_frac, free_frac = _fractions(lab.counts)
        occ_cam, free_cam = _fractions(lab.counts_camera)
        occ_lid, free_lid = _fractions(lab.counts_lidar)
        v = max(lab.voxels, 1)
        classes = []
        for i in range(OCC3D_NUM_CLASSES):
            row: dict[str, Any] = {
                "id": i,
                "name": OCC3D_CLASSES[i],
                "voxels": lab.counts[i],
                "voxels_in_camera_mask": lab.counts_camera[i],
                "voxels_in_lidar_mask": lab.counts_lidar[i],
                "frames_present": lab.frames_with_class[i],
            }
            if i < OCC3D_FREE:
                row["fraction_of_occupied"] = occ_frac[i]
                row["fraction_of_occupied_in_camera_mask"] = occ_cam[i]
                row["fraction_of_occupied_in_lidar_mask"] = occ_lid[i]
            classes.append(row)
        return {
            "root": self.root,
            "split": self.split,
            "num_scenes": self.num_scenes,
            "num_frames": self.num_frames,
            "frames_per_scene": dict(self.frames_per_scene),
            "image_size": None
            if self.image_size is None
            else {"height": self.image_size[0], "width": self.image_size[1]},
            "cameras": list(self.cameras),
            "voxels_per_frame": lab.voxels // max(lab.frames, 1),
            "classes_present": self.classes_present,
            "num_classes_present": len(self.classes_present),
            "occupied_fraction": 1.0 - free_frac if lab.voxels else 0.0,
            "free_fraction": free_frac,
            "free_fraction_in_camera_mask": free_cam,
            "free_fraction_in_lidar_mask": free_lid,
            "camera_mask_fraction": lab.camera_voxels / v,
            "lidar_mask_fraction": lab.lidar_voxels / v,
            "both_masks_fraction": lab.both_voxels / v,
            "classes": classes,
            "raw": asdict(lab),
        }

    def format_table(self) -> str:
        """A readable text report."""
        d = self.to_dict()
        fps = list(self.frames_per_scene.values())
        lines = [
            f"dataset {self.root}  split '{self.split}'",
            f"scenes {self.num_scenes}   frames {self.num_frames}   frames per scene "
            + (f"min {min(fps)} / mean {np.mean(fps):.1f} / max {max(fps)}" if fps else "-"),
            f"cameras {len(self.cameras)}   image size "
            + ("unknown" if self.image_size is None else f"{self.image_size[1]}x{self.image_size[0]} (WxH)"),
            f"voxels per frame {d['voxels_per_frame']}   occupied {100 * d['occupied_fraction']:.2f}%   "
            f"free {100 * d['free_fraction']:.2f}%",
            f"camera mask {100 * d['camera_mask_fraction']:.2f}% of voxels (free inside: "
            f"{100 * d['free_fraction_in_camera_mask']:.2f}%)   LiDAR mask {100 * d['lidar_mask_fraction']:.2f}% "
            f"(free inside: {100 * d['free_fraction_in_lidar_mask']:.2f}%)   "
            f"both {100 * d['both_masks_fraction']:.2f}%",
            f"classes present (0..16): {len(self.classes_present)}/17",
            "",
            f"{'id':>2}  {'class':<21}{'voxels':>12}  {'% occupied':>10}  {'% occ. cam':>10}  {'frames':>7}",
        ]
        for row in d["classes"]:
            if row["id"] == OCC3D_FREE:
                continue
            lines.append(
                f"{row['id']:>2}  {row['name']:<21}{row['voxels']:>12}  {100 * row['fraction_of_occupied']:>10.3f}  "
                f"{100 * row['fraction_of_occupied_in_camera_mask']:>10.3f}  {row['frames_present']:>7}"
            )
        free = d["classes"][OCC3D_FREE]
        lines.append(
            f"{OCC3D_FREE:>2}  {'free':<21}{free['voxels']:>12}  {'-':>10}  {'-':>10}  {free['frames_present']:>7}"
        )
        lines.append(
            "% occupied: share among non-free voxels; % occ. cam: the same inside mask_camera; "
            "frames: frames where the class occurs"
        )
        return "\n".join(lines)


def dataset_stats(root: str | os.PathLike, split: str = "all", progress: bool = True) -> DatasetStats:
    """Count labels over every frame of ``split`` of the Occ3D-layout dataset at ``root``.

    Reads ``annotations.json`` and each frame's ``labels.npz`` (errors name the file), and the
    header of one camera image for the image size.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found")
    ds = Occ3DDataset(root, split=split, load_images=False, load_extras=False)
    labels = LabelCounts()
    frames = ds.frames
    it = frames
    if progress:
        from tqdm import tqdm

        it = tqdm(frames, desc="stats", unit="frame", leave=False)
    for f in it:
        gt = ds.read_labels(f.token)
        labels.add(gt["semantics"], gt["mask_camera"], gt["mask_lidar"])
    image_size = None
    cameras: tuple[str, ...] = ()
    if frames:
        cameras = tuple(ds.info(frames[0].token).get("camera_sensor", {}))
    if cameras:
        p = ds.image_path(frames[0].token, cameras[0])
        if p.is_file():
            try:
                with Image.open(p) as im:  # reads the header only
                    image_size = (im.height, im.width)
            except Exception as e:
                raise ValueError(f"{p}: cannot read image header ({type(e).__name__}: {e})") from e
    return DatasetStats(
        root=str(root),
        split=split,
        num_scenes=len(ds.scenes),
        num_frames=len(frames),
        frames_per_scene={s: len(ds.scene_tokens(s)) for s in ds.scenes},
        image_size=image_size,
        cameras=cameras,
        labels=labels,
    )
