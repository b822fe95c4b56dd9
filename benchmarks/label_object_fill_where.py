"""Where ``occkit label --set object_fill=true`` changes the labels, against the synthetic world's exact occupancy.

On a world written with sweeps (``occkit synth --sweeps K``), every keyframe is labelled on Occ3D's grid without
the fill and with it (``--voxels``: ``object_fill_voxels``, which voxels the hull fills; docs/labels.md, step 4);
each voxel whose label the fill changes is split by the truth there (the
fill's class: right; free; another class; right before the fill and wrong after), by the fill's class and by
whether its centre lies in the object's box at the keyframe; and each class's IoU (camera mask) without and with
the fill.

    python benchmarks/label_object_fill_where.py --data WORLD [--voxels crossed|carved|centre|reached] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np
import torch


def _in_boxes(centres: np.ndarray, boxes, T_ego_from_world: np.ndarray) -> np.ndarray:
    """Whether each voxel centre ``(N, 3)`` (ego frame) lies in one of the sweep's ``boxes`` (world frame)."""
    from occkit.labelgen.steps import in_box, to_box_frame

    out = np.zeros(len(centres), bool)
    if boxes is None:
        return out
    T_we = np.linalg.inv(T_ego_from_world)
    world = centres @ T_we[:3, :3].T + T_we[:3, 3]
    for j in range(len(boxes)):
        out |= in_box(to_box_frame(world, boxes.center[j], float(boxes.yaw[j])), boxes.size[j])
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument(
        "--voxels", choices=("carved", "centre", "crossed", "reached"), default="crossed", help="object_fill_voxels"
    )
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    torch.set_num_threads(1)

    from occkit.data.rig import read_rig_meta, read_scene
    from occkit.formats import default_format
    from occkit.geometry.grid import occ3d_grid
    from occkit.labelgen.pipeline import LabelOptions, label_scene
    from occkit.labelgen.truth import WorldTruth
    from occkit.metrics.occ3d import Occ3DMetric

    fmt = default_format()
    free, names = fmt.classes.free, fmt.classes.names
    grid = occ3d_grid()
    centres = grid.centers(dtype=torch.float64).reshape(-1, 3).numpy()
    meta = read_rig_meta(args.data / "rig")
    truth = WorldTruth(args.data)
    split: Counter = Counter()
    by_class: Counter = Counter()
    miou = {m: Occ3DMetric(mask="camera", num_classes=len(names), class_names=names, free=free) for m in ("off", "on")}
    for scene in meta["scenes"]:
        rec = read_scene(meta, scene)
        off, _ = label_scene(rec, grid, names[:free], free, LabelOptions(object_fill=False, camera_mask=False))
        opt = LabelOptions(object_fill=True, object_fill_voxels=args.voxels, camera_mask=False)
        on, _ = label_scene(rec, grid, names[:free], free, opt)
        sweeps = {s.token: s for s in rec.sweeps}
        for a, b in zip(off, on):
            t = truth.keyframe(scene, a.token, 1)
            g = t.semantics
            for m, lab in (("off", a), ("on", b)):
                miou[m].update(
                    torch.from_numpy(lab.semantics.astype(np.int64))[None],
                    torch.from_numpy(g.astype(np.int64))[None],
                    mask_camera=torch.from_numpy(t.mask_camera.astype(bool))[None],
                )
            s = sweeps[a.token]
            changed = np.nonzero((a.semantics != b.semantics).reshape(-1))[0]
            inbox = _in_boxes(centres[changed], s.boxes, np.linalg.inv(s.T_global_from_ego))
            gt, before, after = (
                g.reshape(-1)[changed],
                a.semantics.reshape(-1)[changed],
                b.semantics.reshape(-1)[changed],
            )
            for v in range(len(changed)):
                kind = (
                    "right"
                    if gt[v] == after[v]
                    else "free"
                    if gt[v] == free
                    else "was right"
                    if gt[v] == before[v]
                    else "another class"
                )
                split[(kind, "centre in the box" if inbox[v] else "centre beyond the box")] += 1
                by_class[(kind, names[after[v]], "free" if gt[v] == free else names[gt[v]])] += 1
    scores = {m: miou[m].compute() for m in miou}
    out = {
        "data": str(args.data),
        "voxels": args.voxels,
        "changed": {" / ".join(k): v for k, v in sorted(split.items(), key=lambda kv: -kv[1])},
        "by_class (truth, fill's class, true class)": {
            " / ".join(k): v for k, v in sorted(by_class.items(), key=lambda kv: -kv[1])
        },
        "miou": {m: round(float(scores[m]["miou"]), 2) for m in scores},
        "class_iou": {
            n: [round(float(scores["off"]["iou"][n]), 1), round(float(scores["on"]["iou"][n]), 1)]
            for n in names[:free]
            if scores["off"]["iou"][n] == scores["off"]["iou"][n]
        },
    }
    text = json.dumps(out, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
