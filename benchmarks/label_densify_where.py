"""Where ``occkit label --densify tsdf`` changes the labels, against the synthetic world's exact occupancy.

On a world written with sweeps (``occkit synth --sweeps K``), every keyframe is labelled on Occ3D's grid with
the default options and with ``--densify tsdf``; inside the observable region (docs/labels.md, "Quality") the
voxels the densification adds are split into truly occupied and truly free, the false ones by their distance
(voxels) to the nearest truly occupied voxel and by class, and the voxels it takes away by their class and by
whether the densification added to their column (the ground fill fills empty columns only).

    python benchmarks/label_densify_where.py --data WORLD [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    from scipy.ndimage import distance_transform_edt

    from occkit.data.rig import read_rig_meta, read_scene
    from occkit.formats import default_format
    from occkit.geometry.grid import occ3d_grid
    from occkit.labelgen.pipeline import LabelOptions, label_scene
    from occkit.labelgen.quality import observable_region
    from occkit.labelgen.truth import WorldTruth

    fmt = default_format()
    free, names = fmt.classes.free, fmt.classes.names
    grid = occ3d_grid()
    meta = read_rig_meta(args.data / "rig")
    truth = WorldTruth(args.data)
    c: Counter = Counter()
    false_cls: Counter = Counter()
    true_cls: Counter = Counter()
    removed_cls: Counter = Counter()
    dist: list[float] = []
    for scene in meta["scenes"]:
        rec = read_scene(meta, scene)
        plain, _ = label_scene(rec, grid, names[:free], free, LabelOptions())
        dense, _ = label_scene(rec, grid, names[:free], free, LabelOptions(densify="tsdf"))
        for a, b in zip(plain, dense):
            t = truth.keyframe(scene, a.token, 1)
            g = t.semantics != free
            obs = observable_region(g, t.origins, grid)
            for tag, lab in (("none", a), ("tsdf", b)):
                pred = lab.semantics != free
                c[f"{tag}_tp"] += int((g & pred & obs).sum())
                c[f"{tag}_fp"] += int((~g & pred & obs).sum())
                c[f"{tag}_fn"] += int((g & ~pred & obs).sum())
            p0, p1 = a.semantics != free, b.semantics != free
            added, removed = p1 & ~p0 & obs, p0 & ~p1 & obs
            c["added_true"] += int((added & g).sum())
            c["added_false"] += int((added & ~g).sum())
            c["removed_true"] += int((removed & g).sum())
            c["removed_false"] += int((removed & ~g).sum())
            c["removed_in_a_column_added_to"] += int((removed & (p1 & ~p0).any(2, keepdims=True)).sum())
            dist += distance_transform_edt(~g)[added & ~g].tolist()
            false_cls.update(names[i] for i in b.semantics[added & ~g].tolist())
            true_cls.update(names[i] for i in b.semantics[added & g].tolist())
            removed_cls.update(names[i] for i in a.semantics[removed].tolist())
    d = np.asarray(dist)
    out = {
        "data": str(args.data),
        "occupied_iou_observable": {
            tag: round(100 * c[f"{tag}_tp"] / max(c[f"{tag}_tp"] + c[f"{tag}_fp"] + c[f"{tag}_fn"], 1), 2)
            for tag in ("none", "tsdf")
        },
        "counts": dict(c),
        "added_false_by_distance_voxels": {
            "1": int((d <= 1.5).sum()),
            "2": int(((d > 1.5) & (d <= 2.5)).sum()),
            "farther": int((d > 2.5).sum()),
        },
        "added_false_by_class": dict(false_cls),
        "added_true_by_class": dict(true_cls),
        "removed_by_class": dict(removed_cls),
    }
    print(json.dumps(out, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
