"""``occkit label --quality``'s figures on Occ3D's grid for several sets of options on one world, without writing.

On a world written with sweeps (``occkit synth --sweeps K``), each set of options labels every keyframe on Occ3D's
grid (the ego frame) and the labels are scored against the world's exact occupancy by
:class:`occkit.labelgen.quality.QualityAccumulator`, as ``occkit label --data WORLD --out L --quality --set ...``
scores them (the same figures; no camera mask is cast: the scoring takes the truth's). One JSON line a set.

    python benchmarks/label_quality_sets.py --data WORLD --sets "off:object_fill=false" \\
        "carved:object_fill=true,object_fill_voxels=carved"
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

KEEP = (
    "occupied_iou_observable",
    "occupied_iou_static_observable",
    "precision_observable",
    "recall_observable",
    "semantic_miou_camera_mask",
    "rayiou",
    "moving_object_iou",
    "moving_objects",
    "trail_voxels_per_keyframe",
)


def parse_set(spec: str) -> tuple[str, dict]:
    """``NAME:KEY=VALUE,KEY=VALUE``: a name and options (each value JSON, else a word)."""
    name, colon, body = spec.partition(":")
    if not name or not colon:
        raise SystemExit(f"label_quality_sets.py: --sets: {spec!r} is not NAME:KEY=VALUE,...")
    out = {}
    for item in filter(None, body.split(",")):
        key, eq, value = item.partition("=")
        if not key or not eq:
            raise SystemExit(f"label_quality_sets.py: --sets: {item!r} in {spec!r} is not KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return name, out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--sets", nargs="+", required=True, help="NAME:KEY=VALUE,... (LabelOptions' names)")
    args = p.parse_args()
    torch.set_num_threads(1)

    from occkit.data.rig import read_rig_meta, read_scene
    from occkit.formats import default_format
    from occkit.geometry.grid import occ3d_grid
    from occkit.labelgen.pipeline import LabelOptions, label_scene
    from occkit.labelgen.quality import QualityAccumulator
    from occkit.labelgen.truth import WorldTruth

    sets = [parse_set(s) for s in args.sets]
    options = {}
    for name, kw in sets:
        try:
            options[name] = LabelOptions(camera_mask=False, **kw)
        except (TypeError, ValueError) as e:
            raise SystemExit(f"label_quality_sets.py: --sets {name}: {e}") from None
    fmt = default_format()
    free, names = fmt.classes.free, fmt.classes.names
    grid = occ3d_grid()
    meta = read_rig_meta(args.data / "rig")
    truth = WorldTruth(args.data)
    for name, opt in options.items():
        acc = QualityAccumulator(grid, fmt.classes.num_classes, free, names, tuple(opt.ground_classes))
        t0 = time.perf_counter()
        for scene in meta["scenes"]:
            labels, _ = label_scene(read_scene(meta, scene), grid, names[:free], free, opt)
            for lab in labels:
                acc.update({"semantics": lab.semantics}, truth.keyframe(scene, lab.token, opt.free_window))
        q = acc.compute()
        row = {"data": str(args.data), "set": name, **{k: q[k] for k in KEEP}}
        print(json.dumps({**row, "seconds": round(time.perf_counter() - t0, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
