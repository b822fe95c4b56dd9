"""occkit label's quality as the recording gets worse, one factor at a time (docs/labels.md, "Quality").

Each cell is a small synthetic world written with ``occkit synth --sweeps`` and one factor changed from the
base recording (10 sweeps between keyframes, 32 beams, exact poses and boxes, clean point labels), labelled
with ``occkit label --quality`` (the occkit preset) and scored against the world's exact occupancy. The base
world is written once and shared by every factor's base point. Cells are kept as they finish
(OUT/cells/<name>/quality.json): a stopped run resumes with the cells it lacks.

    python benchmarks/label_factors.py --out OUT [--scenes 1 --frames 4 --seed 11 --sweeps 10]

Each factor in ``OPTIONS`` is also labelled with each of the label options that answer it (``--refine-poses``
for the pose factors, ...), on the same world: the cell's figures with and without the option
(OUT/cells/<name>/<option>.json).

Writes OUT/factors.json (every cell's figures), OUT/factors.md (one table per factor) and OUT/factors.png
(one panel per factor: occupied IoU inside the observable region, mIoU inside the camera mask and the
false-free rate against the factor's value; an option's figures dashed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

#: factor -> (synth option, base value, values tried); the base value is the base world's.
FACTORS: dict[str, tuple[str, float, list[float]]] = {
    "sweeps between keyframes": ("--sweeps", 10, [2, 5, 10]),
    "LiDAR beams": ("--beams", 32, [16, 32, 64]),
    "pose drift (m/s)": ("--pose-drift", 0.0, [0.0, 0.05, 0.2]),
    "pose noise (m)": ("--pose-noise", 0.0, [0.0, 0.05, 0.2]),
    "box centre noise (m)": ("--box-center-noise", 0.0, [0.0, 0.1, 0.2, 0.5]),
    "box yaw noise (deg)": ("--box-yaw-noise", 0.0, [0.0, 2.0, 5.0]),
    "point-label flips": ("--label-flips", 0.0, [0.0, 0.1, 0.3]),
    # not an occkit synth option: the share of tracks whose boxes are taken out of the rig after it is written
    # (1: a recording without boxes), as a tracker that misses objects
    "tracks without boxes": ("--miss-boxes", 0.0, [0.0, 0.5, 1.0]),
    # nor this: the share of sweeps whose point labels are taken out (1: a recording of geometry alone)
    "sweeps without point labels": ("--strip-labels", 0.0, [0.0, 1.0]),
}
#: factor -> the occkit label options measured on its cells, with and without (docs/labels.md, "Imperfect recordings").
OPTIONS: dict[str, list[str]] = {
    "pose drift (m/s)": ["--refine-poses"],
    "pose noise (m)": ["--refine-poses"],
    "box centre noise (m)": ["--refine-boxes"],
    "box yaw noise (deg)": ["--refine-boxes"],
    "tracks without boxes": ["--find-moving"],
    "LiDAR beams": ["--densify tsdf"],
    # the ground fill finds the ground by its height where no point has a class; without it (ground_fill=0),
    # as before 2026-11-29, only returns are ground
    "sweeps without point labels": ["--set ground_fill=0"],
}
KEYS = [
    "occupied_iou_observable",
    "occupied_iou_static_observable",
    "precision_observable",
    "recall_observable",
    "false_free_rate",
    "semantic_miou_camera_mask",
    "rayiou",
    "trail_voxels_per_keyframe",
]


def _cell_name(option: str | None, value: float | None) -> str:
    return "base" if option is None else f"{option.lstrip('-')}={value:g}"


def _occkit() -> str:
    exe = Path(sys.executable).with_name("occkit")
    return str(exe) if exe.exists() else "occkit"


def _miss_boxes(rig: Path, share: float) -> None:
    """Take the boxes of ``share`` of the tracks (every ``1 / share``-th track id in sorted order; all at 1) out
    of every scene's boxes.json of the rig folder."""
    for f in sorted(rig.glob("*/boxes.json")):
        table = json.loads(f.read_text())
        tracks = sorted({b["track"] for b in table["boxes"]})
        step = max(int(round(1 / share)), 1)
        gone = set(tracks[::step]) if share < 1 else set(tracks)
        table["boxes"] = [b for b in table["boxes"] if b["track"] not in gone]
        f.write_text(json.dumps(table))


def _strip_labels(rig: Path, share: float) -> None:
    """Take the point labels out of ``share`` of the sweeps (every ``1 / share``-th in sorted order; all at 1)
    of every scene of the rig folder."""
    import numpy as np

    files = sorted(rig.glob("*/lidar/*.npz"))
    for f in files[:: max(int(round(1 / share)), 1)]:
        z = dict(np.load(f))
        if z.pop("labels", None) is not None:
            np.savez(f, **z)


def run_cell(out: Path, name: str, extra: list[str], args: argparse.Namespace, option: str = "") -> dict:
    """The figures of one cell: its world written (once), labelled with ``option`` (or none), scored."""
    cell = out / "cells" / name
    arm = option.lstrip("-").replace(" ", "-")
    done = cell / (f"{arm}.json" if arm else "quality.json")
    world, lab = out / "worlds" / name, out / "labels" / (f"{name}+{arm}" if arm else name)
    if done.exists():
        return json.loads(done.read_text())
    if not (world / "annotations.json").exists():
        shutil.rmtree(world, ignore_errors=True)
        cmd = [_occkit(), "synth", "--format", "nuscenes", "--out", str(world), "--scenes", str(args.scenes)]
        cmd += ["--frames", str(args.frames), "--seed", str(args.seed), "--image-size", "96", "160"]
        after = {o: float(extra[extra.index(o) + 1]) for o in ("--miss-boxes", "--strip-labels") if o in extra}
        synth = [a for i, a in enumerate(extra) if a not in after and (i == 0 or extra[i - 1] not in after)]
        cmd += synth if "--sweeps" in synth else ["--sweeps", str(args.sweeps), *synth]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        if after.get("--miss-boxes"):
            _miss_boxes(world / "rig", after["--miss-boxes"])
        if after.get("--strip-labels"):
            _strip_labels(world / "rig", after["--strip-labels"])
    if not (lab / "quality.json").exists():  # a stopped label run resumes in its own folder
        cmd = [_occkit(), "label", "--data", str(world), "--out", str(lab), "--quality", *option.split()]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    q = json.loads((lab / "quality.json").read_text())
    rep = json.loads((lab / "report.json").read_text())
    q["seconds_per_keyframe"] = rep["summary"]["seconds_per_keyframe"]
    cell.mkdir(parents=True, exist_ok=True)
    tmp = done.with_suffix(".tmp")
    tmp.write_text(json.dumps(q, indent=1))
    tmp.replace(done)
    return q


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--scenes", type=int, default=1)
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--sweeps", type=int, default=10, help="sweeps between keyframes of the base world (default 10)")
    p.add_argument("--keep-worlds", action="store_true", help="keep every cell's world (default: the base only)")
    p.add_argument("--factors", default=None, help="comma-separated factor names to run (default: every factor)")
    args = p.parse_args()
    out = args.out
    results: dict[str, list[dict]] = {}
    wanted = [f.strip() for f in args.factors.split(",")] if args.factors else list(FACTORS)
    for factor, (option, base, values) in FACTORS.items():
        if factor not in wanted:
            continue
        if option == "--sweeps":  # the base world's density is the one asked for
            base, values = args.sweeps, sorted({*values, args.sweeps})
        rows = []
        for v in values:
            name = "base" if v == base else _cell_name(option, v)
            synth = [] if v == base else [option, f"{v:g}"]
            for arm in ["", *OPTIONS.get(factor, [])]:
                q = run_cell(out, name, synth, args, arm)
                row = {"value": v, "option": arm, **{k: q.get(k) for k in KEYS}}
                rows.append({**row, "seconds_per_keyframe": q["seconds_per_keyframe"]})
                said = ", ".join(f"{k} {q.get(k)}" for k in KEYS[:5])
                print(f"{factor} = {v:g}{' ' + arm if arm else ''}: {said}", flush=True)
            if not args.keep_worlds and name != "base":
                shutil.rmtree(out / "worlds" / name, ignore_errors=True)
        results[factor] = rows
    (out / "factors.json").write_text(json.dumps(results, indent=1))
    lines = []
    for factor, rows in results.items():
        lines += [f"**{factor}**", "", "| value | option | " + " | ".join(KEYS) + " | s/keyframe |"]
        lines += ["|---" * (len(KEYS) + 3) + "|"]
        lines += [
            f"| {r['value']:g} | {r['option'] or 'none'} | "
            + " | ".join(str(r[k]) for k in KEYS)
            + f" | {r['seconds_per_keyframe']} |"
            for r in rows
        ]
        lines.append("")
    (out / "factors.md").write_text("\n".join(lines))
    _plot(results, out / "factors.png")
    print(f"wrote {out / 'factors.json'}, {out / 'factors.md'}, {out / 'factors.png'}")
    return 0


def _plot(results: dict[str, list[dict]], path: Path) -> None:
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = math.ceil(len(results) / 3)
    fig, axes = plt.subplots(rows, 3, figsize=(12, 3.3 * rows))
    series = [
        ("occupied_iou_observable", "occupied IoU, observable"),
        ("semantic_miou_camera_mask", "mIoU, camera mask"),
        ("false_free_rate", "false-free rate"),
    ]
    for ax, (factor, rows_) in zip(axes.ravel(), results.items()):
        arms = list(dict.fromkeys(r["option"] for r in rows_))
        for arm in arms:
            sel = [r for r in rows_ if r["option"] == arm]
            xs = [r["value"] for r in sel]
            for c, (key, label) in enumerate(series):
                style = dict(marker="o", color=f"C{c}", linestyle="--" if arm else "-")
                ax.plot(xs, [r[key] for r in sel], label=label if not arm else None, **style)
        ax.set_title(factor + "".join(f"\n(dashed: {a})" for a in arms if a), fontsize=9)
        ax.set_xlabel(factor)
        ax.set_ylabel("%")
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(results) :]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=8)
    fig.suptitle("occkit label against the exact occupancy, one factor of the recording at a time (solid: none)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
