"""``occkit label``'s labels of a synthetic world against the world's exact labels, class by class
(docs/results/labels.md, "What the labels cost a model trained on them").

    occkit synth --out W --scenes 10 --frames 8 --seed 11 --image-size 192 512 --sweeps 10
    occkit label --data W --out L
    python benchmarks/label_classes.py --world W --labels L [--split all] [--json OUT.json]

Over every frame of the split, each voxel of the world's camera mask counted by its exact class and the labels'
class: each class's IoU (Occ3D's mIoU of the labels as a prediction) and the confusion among the ground classes.
Then what a model trained on the labels is told: of the exact ground voxels (``driveable_surface``,
``other_flat``, ``sidewalk``, ``terrain``) inside the world's camera mask, the share the labels give the same
class inside the labels' own camera mask (the mask their training loss is taken in), the share they leave free
there (taught as free), the share they give another class there, and the share outside the labels' mask.
And where the wrong ground classes lie: the columns (of the world's camera mask) where both hold ground, by
their top ground voxel, counted right or wrong by their distance in voxels to a column of another exact ground
class (1, 2, 3, 4, 5 or more), and the labels' top ground height less the exact one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

GROUND = ("driveable_surface", "other_flat", "sidewalk", "terrain")


class StudyError(Exception):
    """A one-line reason the comparison cannot go on."""


def class_ious(conf: np.ndarray, names: tuple[str, ...]) -> dict[str, float | None]:
    """Each class's IoU in percent from ``conf (C+1, C+1)`` (rows exact, columns labels, the last the free id):
    ``tp / (tp + fp + fn)``; None for a class the exact labels never hold."""
    out: dict[str, float | None] = {}
    for c, name in enumerate(names):
        tp = int(conf[c, c])
        union = int(conf[c].sum() + conf[:, c].sum()) - tp
        out[name] = None if not conf[c].sum() else round(100.0 * tp / union, 2)
    return out


def taught(counts: dict[str, np.ndarray], names: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Per ground class, the shares of its exact voxels (inside the world's mask) that the labels give the same
    class, leave free, give another class, inside the labels' own mask, and that lie outside it."""
    out = {}
    for name in GROUND:
        c = names.index(name)
        n = int(counts["total"][c])
        if n:
            out[name] = {k: round(float(counts[k][c]) / n, 4) for k in ("same", "free", "other", "outside")}
    return out


def top_ground(sem: np.ndarray, ground: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each column's top voxel of a ground class: ``has (X, Y)`` bool, its height ``z`` and class ``cls``."""
    g = np.isin(sem, ground)
    has = g.any(2)
    z = np.where(has, sem.shape[2] - 1 - g[:, :, ::-1].argmax(2), 0)
    return has, z, np.take_along_axis(sem, z[..., None], 2)[..., 0]


def border_columns(ts: np.ndarray, ls: np.ndarray, mask: np.ndarray, ground: list[int], acc: dict) -> None:
    """Add one frame's columns to ``acc``: ``right`` and ``wrong`` ``(5,)`` by distance to another exact ground
    class (1..4, 5 or more voxels), ``dz`` the height offsets (labels less exact) and their counts."""
    from scipy.ndimage import distance_transform_edt

    th, tz, tc = top_ground(ts, ground)
    lh, lz, lc = top_ground(ls, ground)
    both = th & lh & mask.any(2)
    dist = np.full(th.shape, np.inf)
    for g in ground:
        own, other = th & (tc == g), th & (tc != g)
        if own.any() and other.any():
            dist = np.where(own, distance_transform_edt(~other), dist)
    b = np.clip(np.floor(dist), 1, 5).astype(np.int64) - 1
    for key, sel in (("right", both & (lc == tc)), ("wrong", both & (lc != tc))):
        acc[key] += np.bincount(b[sel], minlength=5)
    for d, n in zip(*np.unique(lz[both] - tz[both], return_counts=True)):
        acc["dz"][int(d)] = acc["dz"].get(int(d), 0) + int(n)


def compare(world: Path, labels: Path, split: str) -> dict:
    """The figures of the module's docstring over ``split``'s frames."""
    from occkit.data.occ3d import Occ3DDataset
    from occkit.formats import get_format

    table = get_format("occ3d").classes
    names, free = tuple(table.names[: table.free]), table.free
    try:
        w = Occ3DDataset(world, split, load_images=False, load_extras=False)
        lab = Occ3DDataset(labels, split, load_images=False, load_extras=False)
    except (OSError, ValueError, KeyError) as e:
        raise StudyError(f"cannot open the world or the labels: {e}") from None
    conf = np.zeros((free + 1, free + 1), np.int64)
    counts = {k: np.zeros(free + 1, np.int64) for k in ("total", "same", "free", "other", "outside")}
    ground = [names.index(n) for n in GROUND]
    if not len(w):
        raise StudyError(f"{world}: no frames in split {split!r}")
    have = set(lab.tokens)
    cols: dict = {"right": np.zeros(5, np.int64), "wrong": np.zeros(5, np.int64), "dz": {}}
    for i in range(len(w)):
        token = w.frames[i].token
        if token not in have:
            raise StudyError(f"{labels}: no frame {token} of {world}'s {split} split")
        t, g = w.read_labels(token), lab.read_labels(token)
        ts, ls = t["semantics"].astype(np.int64), g["semantics"].astype(np.int64)
        m, lm = t["mask_camera"] > 0, g["mask_camera"] > 0
        np.add.at(conf, (ts[m], ls[m]), 1)
        tg = m & np.isin(ts, ground)
        for key, sel in (
            ("total", tg),
            ("same", tg & lm & (ls == ts)),
            ("free", tg & lm & (ls == free)),
            ("other", tg & lm & (ls != ts) & (ls != free)),
            ("outside", tg & ~lm),
        ):
            counts[key] += np.bincount(ts[sel], minlength=free + 1)
        border_columns(ts, ls, m, ground, cols)
    iou = class_ious(conf, names)
    present = [v for v in iou.values() if v is not None]
    sub = [*ground, free]
    return {
        "frames": len(w),
        "split": split,
        "iou": iou,
        "miou": round(float(np.mean(present)), 2),
        "ground_confusion": {
            "rows_exact_cols_labels": [*GROUND, "free"],
            "counts": conf[np.ix_(sub, sub)].tolist(),
        },
        "ground_taught": taught(counts, names),
        "ground_columns_by_border_distance": {
            "distance_voxels": ["1", "2", "3", "4", "5+"],
            "right": cols["right"].tolist(),
            "wrong": cols["wrong"].tolist(),
        },
        "ground_height_offset_columns": {str(k): v for k, v in sorted(cols["dz"].items())},
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--world", type=Path, required=True, help="the synthetic world (its exact labels)")
    p.add_argument("--labels", type=Path, required=True, help="occkit label --data WORLD --out LABELS")
    p.add_argument("--split", default="all", help="train, val or all (default)")
    p.add_argument("--json", type=Path, help="write the figures here too")
    args = p.parse_args()
    try:
        for flag, path in (("--world", args.world), ("--labels", args.labels)):
            if not path.is_dir():
                raise StudyError(f"{flag} {path}: not a folder")
        out = compare(args.world, args.labels, args.split)
    except StudyError as e:
        print(f"label_classes: {e}", file=sys.stderr)
        return 2
    text = json.dumps(out, indent=1)
    if args.json:
        args.json.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
