"""Statistics of a dataset of any format: class frequencies, free, ignored and masked fractions,
frames per scene (``occkit stats``), and the class counts of ``class_counts: auto``. Reads the
labels through the format's reader (``frame_labels``, or ``label_masks`` where the layout keeps
masks beside the classes, as Occ3D's camera and LiDAR masks); the images are not read."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from occkit.labels import refuse_ids_outside
from occkit.shapes import check_shape


def count_frame_classes(
    ds: Any,
    num_classes: int,
    scored_only: bool = True,
    max_frames: int = 2000,
    progress: bool = False,
    what: str = "class counts",
    masks: tuple[str, ...] | None = None,
) -> np.ndarray:
    """Voxels of each class ``(num_classes,)`` float64 over the frames of a frame dataset of any
    format (its ``frame_labels(i) -> (labels, scored mask, path)``), at most ``max_frames`` of them,
    evenly spaced: inside the voxels its benchmark scores (``scored_only``; Occ3D: the camera mask,
    SemanticKITTI: not invalid nor ignored), else every voxel but the ignore value 255. The class
    weights of ``supervised.class_counts: auto`` and ``cigocc.class_balance: dataset``.

    ``masks`` (names of the dataset's :meth:`label_masks`, Occ3D's ``camera``, ``lidar``): inside every one
    of them instead (the LiDAR mask of ``supervised.use_lidar_mask``).

    A label outside ``[0, num_classes)`` raises naming its file (:class:`occkit.labels.ClassIdsOutside`); no
    frame, or no labelled voxel, raises naming ``what`` and the dataset's root.
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
        if masks:
            labels, by_name, where = ds.label_masks(i)
            inside = np.logical_and.reduce([by_name[m] for m in masks]) & (labels != 255)
            known = labels[inside]
        else:
            labels, scored, where = ds.frame_labels(i)
            known = labels[scored] if scored_only else labels[labels != 255]
        refuse_ids_outside(known, num_classes, None, where, whose=f"model.num_classes={num_classes}'s ids")
        counts += np.bincount(known.astype(np.int64).reshape(-1), minlength=num_classes)
    if counts.sum() == 0:
        inside = (
            f" inside the {' and '.join(masks)} mask" if masks else " inside the scored voxels" if scored_only else ""
        )
        raise ValueError(f"{what}: no labelled voxels{inside} in the training split of {root}")
    return counts


def fill_class_counts(
    cfg: Any,
    section: str,
    train_set: Any,
    what: str,
    scored_only: bool = True,
    max_frames: int = 2000,
    progress: bool = False,
    masks: tuple[str, ...] | None = None,
) -> Any:
    """A copy of the experiment config ``cfg`` whose ``cfg.<section>.class_counts`` holds the voxels
    of each class over the training frames (:func:`count_frame_classes` of the frame dataset under
    ``train_set``'s wrappers, at most ``max_frames``, with ``scored_only``, ``masks`` and ``what`` as there), so
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
        masks=masks,
    )
    out = copy.deepcopy(cfg)
    getattr(out, section).class_counts = tuple(float(c) for c in counts)
    return out


@dataclass
class LabelCounts:
    """Voxel counts summed over frames; every ``counts`` list has one entry per class.

    Attributes:
        num_classes: the class ids counted are ``0 .. num_classes - 1`` (Occ3D's 18 by default).
        masks: the names of the per-voxel masks counted beside the classes (Occ3D: ``camera``,
            ``lidar``; a layout without masks: ``scored``, the voxels its benchmark scores).
        ignore: a label value counted as unknown (``ignored``), not as a class; None: none.
        frames: number of frames added.
        voxels: number of voxels seen (ignored ones included).
        ignored: voxels holding ``ignore``.
        counts: voxels of each class.
        counts_in: ``{mask: voxels of each class inside it}``.
        frames_with_class: frames in which each class occurs at least once.
        mask_voxels: ``{mask: voxels inside it}``.
        all_masks_voxels: voxels inside every mask at once (Occ3D: camera and LiDAR).
    """

    num_classes: int
    masks: tuple[str, ...] = ("camera", "lidar")
    ignore: int | None = None
    frames: int = 0
    voxels: int = 0
    ignored: int = 0
    counts: list[int] = field(default_factory=list)
    counts_in: dict[str, list[int]] = field(default_factory=dict)
    frames_with_class: list[int] = field(default_factory=list)
    mask_voxels: dict[str, int] = field(default_factory=dict)
    all_masks_voxels: int = 0

    def __post_init__(self) -> None:
        n = self.num_classes
        self.counts = self.counts or [0] * n
        self.frames_with_class = self.frames_with_class or [0] * n
        self.counts_in = self.counts_in or {m: [0] * n for m in self.masks}
        self.mask_voxels = self.mask_voxels or {m: 0 for m in self.masks}

    def add(self, semantics: np.ndarray, masks: dict[str, np.ndarray], where: str = "semantics") -> None:
        """Add one frame.

        Args:
            semantics: ``(X, Y, Z)`` integer class ids in ``[0, num_classes)``, or ``ignore``.
            masks: ``{name: (X, Y, Z) 0/1 (uint8 or bool)}``, one per name of :attr:`masks`.
            where: what errors name (the frame's label file).
        """
        dims = check_shape(semantics, "X Y Z", name=where)
        if set(masks) != set(self.masks):
            raise ValueError(f"{where}: masks {sorted(masks)} given, {sorted(self.masks)} counted")
        flat = {}
        for m in self.masks:
            check_shape(masks[m], "X Y Z", name=f"{where} (mask {m})", dims=dims)
            flat[m] = np.asarray(masks[m]).reshape(-1).astype(bool)
        sem = np.asarray(semantics).reshape(-1).astype(np.int64)
        known = np.ones(sem.shape, bool) if self.ignore is None else sem != self.ignore
        n = self.num_classes
        bad = known & ((sem < 0) | (sem >= n))
        if bad.any():
            raise ValueError(
                f"{where}: label {int(sem[bad][0])} is not a class id of 0..{n - 1}"
                + ("" if self.ignore is None else f" nor the ignore value {self.ignore}")
            )
        c_all = np.bincount(sem[known], minlength=n)
        self.frames += 1
        self.voxels += int(sem.size)
        self.ignored += int(sem.size - known.sum())
        for i in range(n):
            self.counts[i] += int(c_all[i])
            self.frames_with_class[i] += int(c_all[i] > 0)
        for m in self.masks:
            inside = flat[m] & known
            c = np.bincount(sem[inside], minlength=n)
            for i in range(n):
                self.counts_in[m][i] += int(c[i])
            self.mask_voxels[m] += int(flat[m].sum())
        if self.masks:
            self.all_masks_voxels += int(np.logical_and.reduce([flat[m] for m in self.masks]).sum())


def _fractions(counts: list[int], free: int | None) -> tuple[list[float], float]:
    """Per-class fraction among the occupied voxels (every class but ``free``; 0 for ``free``
    itself) and the free fraction of the labelled voxels."""
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    occupied = np.ones(c.shape, bool)
    if free is not None:
        occupied[free] = False
    occ = c[occupied].sum()
    per = np.where(occupied, c / occ, 0.0).tolist() if occ > 0 else [0.0] * len(c)
    return per, float(c[free] / total) if free is not None and total > 0 else 0.0


@dataclass
class DatasetStats:
    """What ``occkit stats`` reports; see :func:`dataset_stats`."""

    root: str
    split: str
    format: str
    class_names: tuple[str, ...]
    free: int | None
    num_scenes: int
    num_frames: int
    frames_per_scene: dict[str, int]
    image_size: tuple[int, int] | None  # (height, width) of the first camera of the first frame
    cameras: tuple[str, ...]
    labels: LabelCounts

    @property
    def occupied_classes(self) -> list[int]:
        """Every class id but free."""
        return [i for i in range(len(self.class_names)) if i != self.free]

    @property
    def classes_present(self) -> list[int]:
        """Classes but free with at least one voxel."""
        return [i for i in self.occupied_classes if self.labels.counts[i] > 0]

    @property
    def scored_mask(self) -> str | None:
        """The mask the format's benchmark scores (the first one counted), or None."""
        return self.labels.masks[0] if self.labels.masks else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (counts and fractions, per class by name)."""
        lab = self.labels
        occ_frac, free_frac = _fractions(lab.counts, self.free)
        inside = {m: _fractions(lab.counts_in[m], self.free) for m in lab.masks}
        v = max(lab.voxels, 1)
        classes = []
        for i, name in enumerate(self.class_names):
            row: dict[str, Any] = {"id": i, "name": name, "voxels": lab.counts[i]}
            for m in lab.masks:
                row[f"voxels_in_{m}_mask"] = lab.counts_in[m][i]
            row["frames_present"] = lab.frames_with_class[i]
            if i != self.free:
                row["fraction_of_occupied"] = occ_frac[i]
                for m in lab.masks:
                    row[f"fraction_of_occupied_in_{m}_mask"] = inside[m][0][i]
            classes.append(row)
        known = lab.voxels - lab.ignored
        out: dict[str, Any] = {
            "root": self.root,
            "split": self.split,
            "format": self.format,
            "num_scenes": self.num_scenes,
            "num_frames": self.num_frames,
            "frames_per_scene": dict(self.frames_per_scene),
            "image_size": None
            if self.image_size is None
            else {"height": self.image_size[0], "width": self.image_size[1]},
            "cameras": list(self.cameras),
            "voxels_per_frame": lab.voxels // max(lab.frames, 1),
            "free_class": None if self.free is None else self.class_names[self.free],
            "classes_present": self.classes_present,
            "num_classes_present": len(self.classes_present),
            "occupied_fraction": 1.0 - free_frac if known else 0.0,
            "free_fraction": free_frac,
            "ignored_fraction": lab.ignored / v,
            "scored_mask": self.scored_mask,
        }
        for m in lab.masks:
            out[f"free_fraction_in_{m}_mask"] = inside[m][1]
        for m in lab.masks:
            out[f"{m}_mask_fraction"] = lab.mask_voxels[m] / v
        if len(lab.masks) == 2:
            out["both_masks_fraction"] = lab.all_masks_voxels / v
        out["classes"] = classes
        out["raw"] = asdict(lab)
        return out

    def format_table(self) -> str:
        """A readable text report."""
        d = self.to_dict()
        fps = list(self.frames_per_scene.values())
        lab = self.labels
        scored = self.scored_mask
        lines = [
            f"dataset {self.root}  format {self.format}  split '{self.split}'",
            f"scenes {self.num_scenes}   frames {self.num_frames}   frames per scene "
            + (f"min {min(fps)} / mean {np.mean(fps):.1f} / max {max(fps)}" if fps else "-"),
            f"cameras {len(self.cameras)}   image size "
            + ("unknown" if self.image_size is None else f"{self.image_size[1]}x{self.image_size[0]} (WxH)"),
            f"voxels per frame {d['voxels_per_frame']}   occupied {100 * d['occupied_fraction']:.2f}%   "
            f"free {100 * d['free_fraction']:.2f}%"
            + (f"   ignored (unknown) {100 * d['ignored_fraction']:.2f}% of voxels" if lab.ignore is not None else "")
            + ("   (occupied and free: shares of the known voxels)" if lab.ignored else ""),
        ]
        if lab.masks:
            lines.append(
                "   ".join(
                    f"{m} mask {100 * d[f'{m}_mask_fraction']:.2f}% of voxels (free inside: "
                    f"{100 * d[f'free_fraction_in_{m}_mask']:.2f}%)"
                    for m in lab.masks
                )
                + (f"   both {100 * d['both_masks_fraction']:.2f}%" if "both_masks_fraction" in d else "")
            )
        n_occ = len(self.occupied_classes)
        lines += [
            f"classes present (all but free): {len(self.classes_present)}/{n_occ}",
            "",
            f"{'id':>3}  {'class':<21}{'voxels':>12}  {'% occupied':>10}  {'% in ' + (scored or '-'):>12}  "
            f"{'frames':>7}",
        ]
        for row in d["classes"]:
            if row["id"] == self.free:
                continue
            in_scored = f"{100 * row[f'fraction_of_occupied_in_{scored}_mask']:>12.3f}" if scored else f"{'-':>12}"
            lines.append(
                f"{row['id']:>3}  {row['name']:<21}{row['voxels']:>12}  {100 * row['fraction_of_occupied']:>10.3f}  "
                f"{in_scored}  {row['frames_present']:>7}"
            )
        if self.free is not None:
            free = d["classes"][self.free]
            lines.append(
                f"{self.free:>3}  {free['name']:<21}{free['voxels']:>12}  {'-':>10}  {'-':>12}  "
                f"{free['frames_present']:>7}"
            )
        lines.append(
            "% occupied: share among the voxels of every class but free"
            + (
                f"; % in {scored}: the same inside the {scored} mask (the voxels the benchmark scores)"
                if scored
                else ""
            )
            + "; frames: frames where the class occurs"
        )
        return "\n".join(lines)


def dataset_stats(
    ds: Any,
    classes: Any,
    *,
    format_name: str,
    root: str | os.PathLike | None = None,
    split: str = "all",
    image_size: tuple[int, int] | None = None,
    cameras: tuple[str, ...] = (),
    progress: bool = True,
) -> DatasetStats:
    """Count the labels of every frame of the frame dataset ``ds`` (a format's ``open``, images not
    needed) over the format's class table ``classes`` (:class:`occkit.formats.ClassTable`: its
    ``names``, ``free`` and ``ignore``); ``format_name`` is the format's name, as the report gives it.

    Where the layout keeps masks beside the classes (the dataset's ``label_mask_names``, read with
    ``label_masks(i)``: Occ3D's camera and LiDAR masks) each is counted; otherwise the voxels its
    benchmark scores (``frame_labels(i)``) are, as the mask ``scored``. Errors name the label file.
    """
    class_names, free = tuple(classes.names), classes.free
    names = tuple(getattr(ds, "label_mask_names", ()))
    labels = LabelCounts(num_classes=len(class_names), masks=names or ("scored",), ignore=classes.ignore)
    it: Any = range(len(ds.frames))
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="stats", unit="frame", leave=False)
    for i in it:
        if names:
            sem, masks, where = ds.label_masks(i)
        else:
            sem, scored, where = ds.frame_labels(i)
            masks = {"scored": scored}
        labels.add(sem, masks, where=str(where))
    per_scene: dict[str, int] = {}
    for f in ds.frames:
        per_scene[f.scene] = per_scene.get(f.scene, 0) + 1
    return DatasetStats(
        root=str(root if root is not None else getattr(ds, "root", "")),
        split=split,
        format=format_name,
        class_names=class_names,
        free=free,
        num_scenes=len(per_scene),
        num_frames=len(ds.frames),
        frames_per_scene=per_scene,
        image_size=image_size,
        cameras=tuple(cameras),
        labels=labels,
    )
