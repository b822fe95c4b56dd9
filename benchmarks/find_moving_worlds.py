"""``occkit label --find-moving`` on recordings without boxes, over several worlds (docs/results/labels.md,
"What the options recover").

For each world seed and sweep density, the cell of ``benchmarks/label_factors.py`` whose tracks all lost their
boxes (``tracks without boxes = 1``) is labelled without and with ``--find-moving`` (the same cells, the same
cache: OUT/s<seed>-w<sweeps>/cells/miss-boxes=1/), and the search's decisions are checked against the world's
truth: each return's instance (the rig's ``instance`` arrays) and whether that object moves (``dynamic`` in the
world's ``extras/<scene>/<token>/objects.json``). Figures per world:

- **trail share**: ``trail_voxels_per_keyframe`` with the option over without it (bound: at most 25 %);
- **static non-ground returns found moving**: the returns of objects that never move (trees, fences, walls,
  parked cars; instance > 0 and not dynamic) that the search marked moving, over all such returns of every
  sweep; and those inside a box it made (grown by ``box_margin``: what the labels then take for a moving
  object's; bound: both at most 0.5 %). Ground returns (instance 0: road, sidewalk, terrain) are never
  candidates and are not counted;
- **moving returns found**: the returns of moving objects marked moving (and inside a box made), over all;
- the static occupied IoU without and with the option (bound: at most 1 point lost).

The search is run again here on the record the label run read (the recording's reader, its local frame), with
the label run's settings (``--set KEY=VALUE`` given by ``--set`` here too); its per-keyframe counts are checked
against the label run's report, so the figures are those of the labels scored.

    python benchmarks/find_moving_worlds.py --out OUT [--seeds 3,5,7 --sweeps 5,10 --set find_moving.KEY=V]

Writes OUT/find_moving.json (every world's figures) and OUT/find_moving.md (a table, the mean and the spread).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import label_factors  # noqa: E402

CELL = "miss-boxes=1"
OPTION = "--find-moving"
BOUND_TRAIL, BOUND_STATIC, BOUND_IOU = 25.0, 0.5, 1.0


def moving_instances(world: Path, scene: str) -> set[int]:
    """The instance ids of the objects that move at some keyframe of ``scene`` (``dynamic`` in its objects.json)."""
    out: set[int] = set()
    for f in sorted((world / "extras" / scene).glob("*/objects.json")):
        out |= {int(o["instance"]) for o in json.loads(f.read_text()).get("objects", []) if o.get("dynamic")}
    return out


def truth_counts(dyn: np.ndarray, boxed: np.ndarray, instance: np.ndarray, moving: set[int]) -> dict[str, int]:
    """One sweep's counts: its static non-ground returns (instance > 0, not in ``moving``), those among them the
    search marked moving (``dyn``) and those inside a box it made (``boxed``: what the labels then take for a
    moving object's), its moving objects' returns and those found."""
    if not len(dyn) == len(boxed) == len(instance):
        raise ValueError(f"{len(dyn)} returns searched, {len(instance)} instance ids: not the same sweep")
    is_moving = np.isin(instance, np.fromiter(moving, np.int64, len(moving)))
    static = (instance > 0) & ~is_moving
    return {
        "static_nonground": int(static.sum()),
        "static_nonground_found": int((static & dyn).sum()),
        "static_nonground_boxed": int((static & boxed).sum()),
        "ground_found": int((dyn & (instance == 0)).sum()),
        "moving": int(is_moving.sum()),
        "moving_found": int((is_moving & dyn).sum()),
        "moving_boxed": int((is_moving & boxed).sum()),
    }


def search_against_truth(world: Path, sets: list[str]) -> dict[str, Any]:
    """The search run on every scene of ``world`` as ``occkit label --find-moving`` runs it, its decisions
    counted against the world's instances; and each keyframe's count of returns found moving."""
    from occkit.commands.label import PRESETS
    from occkit.config import from_dict, merge, parse_overrides, to_dict
    from occkit.data.recordings.registry import open_recording
    from occkit.labelgen.find_moving import dynamic_points, find_moving
    from occkit.labelgen.pipeline import LabelOptions, local_record
    from occkit.labelgen.steps import assign_to_boxes

    # the label command's options: the default preset's, then --set, with --find-moving on
    values = merge(merge(to_dict(LabelOptions()), PRESETS["occkit"]), parse_overrides(list(sets)))
    values["find_moving"]["enabled"] = True
    opt = from_dict(LabelOptions, values)
    reader = open_recording(world)
    counts: dict[str, int] = {}
    per_keyframe: dict[str, int] = {}
    for scene in reader.scenes:
        rec, _ = local_record(reader.read_scene(scene))
        inst = reader.instances(scene)
        if not inst:
            raise ValueError(f"{world}: scene {scene!r} has no point instances to check the search against")
        moving = moving_instances(world, scene)
        dyn = dynamic_points(rec, opt.find_moving, opt.box_margin, opt.ego_margin)
        found, _ = find_moving(rec, opt.find_moving, opt.box_margin, opt.ego_margin)
        for s, f, d in zip(rec.sweeps, found.sweeps, dyn):
            n_own = 0 if s.boxes is None else len(s.boxes)
            boxed = np.zeros(len(d), bool)
            if f.boxes is not None and len(f.boxes) > n_own:  # the boxes the search added (after the recorded)
                T = s.T_global_from_ego @ rec.lidars[s.sensor]
                pw = s.points.astype(np.float64) @ T[:3, :3].T + T[:3, 3]
                boxed = assign_to_boxes(pw, _tail(f.boxes, n_own), opt.box_margin) >= 0
            for k, v in truth_counts(d, boxed, np.asarray(inst[s.token]), moving).items():
                counts[k] = counts.get(k, 0) + v
            if s.keyframe:
                per_keyframe[s.token] = int(d.sum())
    return {**counts, "per_keyframe": per_keyframe}


def _tail(boxes: Any, start: int) -> Any:
    from occkit.data.scene_record import Boxes

    return Boxes(boxes.track[start:], boxes.cls[start:], boxes.center[start:], boxes.size[start:], boxes.yaw[start:])


def _reported_per_keyframe(label_dir: Path) -> dict[str, int]:
    """Each keyframe's returns found moving, as the label run's report.json says."""
    out: dict[str, int] = {}

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            if "found_moving" in x and isinstance(x["found_moving"], dict):
                out.update(x["found_moving"].get("per_keyframe", {}))
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(json.loads((label_dir / "report.json").read_text()))
    return out


def one_world(out: Path, seed: int, sweeps: int, args: argparse.Namespace) -> dict[str, Any]:
    """One world's figures (cached in its cell folder as find-moving-truth.json)."""
    wout = out / f"s{seed}-w{sweeps}"
    ns = argparse.Namespace(scenes=args.scenes, frames=args.frames, seed=seed, sweeps=sweeps)
    option = " ".join([OPTION, *(f"--set {s}" for s in args.set)])
    q0 = label_factors.run_cell(wout, CELL, ["--miss-boxes", "1"], ns)
    q1 = label_factors.run_cell(wout, CELL, ["--miss-boxes", "1"], ns, option)
    done = wout / "cells" / CELL / (option.lstrip("-").replace(" ", "-") + ".truth.json")
    if done.exists():
        truth = json.loads(done.read_text())
    else:
        world = wout / "worlds" / CELL
        truth = search_against_truth(world, args.set)
        label_dir = wout / "labels" / f"{CELL}+{option.lstrip('-').replace(' ', '-')}"
        reported = _reported_per_keyframe(label_dir)
        if reported != truth["per_keyframe"]:
            raise SystemExit(f"{label_dir}: the label run found {reported}, the search here {truth['per_keyframe']}")
        done.write_text(json.dumps(truth, indent=1))
    t0, t1 = q0["trail_voxels_per_keyframe"], q1["trail_voxels_per_keyframe"]
    return {
        "seed": seed,
        "sweeps": sweeps,
        "trail_without": t0,
        "trail_with": t1,
        "trail_share": round(100.0 * t1 / t0, 1) if t0 else float("nan"),
        "static_found_moving": round(100.0 * truth["static_nonground_found"] / max(truth["static_nonground"], 1), 3),
        "static_boxed": round(100.0 * truth["static_nonground_boxed"] / max(truth["static_nonground"], 1), 3),
        "static_found": truth["static_nonground_found"],
        "static_returns": truth["static_nonground"],
        "moving_found": round(100.0 * truth["moving_found"] / max(truth["moving"], 1), 1),
        "moving_boxed": round(100.0 * truth["moving_boxed"] / max(truth["moving"], 1), 1),
        "static_iou_without": q0["occupied_iou_static_observable"],
        "static_iou_with": q1["occupied_iou_static_observable"],
        "miou_without": q0["semantic_miou_camera_mask"],
        "miou_with": q1["semantic_miou_camera_mask"],
    }


def summary(rows: list[dict[str, Any]]) -> list[str]:
    """The table of every world, the mean and spread of each figure, and each bound checked on every world."""
    cols = ["seed", "sweeps", "trail_without", "trail_with", "trail_share", "static_found_moving", "static_boxed"]
    cols += [
        "static_found",
        "static_returns",
        "moving_found",
        "moving_boxed",
        "static_iou_without",
        "static_iou_with",
        "miou_without",
        "miou_with",
    ]
    lines = ["| " + " | ".join(cols) + " |", "|---" * len(cols) + "|"]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    lines.append("")
    for c in cols[2:]:
        v = np.array([r[c] for r in rows], np.float64)
        lines.append(f"- {c}: mean {v.mean():.3f}, spread {v.min():g}..{v.max():g}")
    figures = {
        f"trail share <= {BOUND_TRAIL:g} %": ([r["trail_share"] for r in rows], BOUND_TRAIL),
        f"static non-ground found moving, and inside a box found, <= {BOUND_STATIC:g} %": (
            [max(r["static_found_moving"], r["static_boxed"]) for r in rows],
            BOUND_STATIC,
        ),
        f"static occupied IoU lost <= {BOUND_IOU:g}": (
            [round(r["static_iou_without"] - r["static_iou_with"], 2) for r in rows],
            BOUND_IOU,
        ),
    }
    for name, (values, bound) in figures.items():
        over = [f"s{r['seed']}-w{r['sweeps']} {v:g}" for r, v in zip(rows, values) if v > bound]
        said = "met on every world" if not over else "NOT met on " + ", ".join(over)
        lines.append(f"- bound {name}: {said} (worst {max(values):g})")
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seeds", default="3,5,7")
    p.add_argument("--sweeps", default="5,10")
    p.add_argument("--scenes", type=int, default=1)
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--set", action="append", default=[], help="a find_moving.KEY=VALUE for the label runs")
    args = p.parse_args()
    rows = []
    for sw in (int(x) for x in args.sweeps.split(",")):
        for seed in (int(x) for x in args.seeds.split(",")):
            rows.append(one_world(args.out, seed, sw, args))
            print(json.dumps(rows[-1]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "find_moving.json").write_text(json.dumps(rows, indent=1))
    lines = summary(rows)
    (args.out / "find_moving.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
