"""occkit label's quality as the recording gets worse, one factor at a time (docs/labels.md, "Quality").

Each cell is a small synthetic world written with ``occkit synth --sweeps`` and one factor changed from the
base recording (10 sweeps between keyframes, 32 beams, exact poses and boxes, clean point labels), labelled
with ``occkit label --quality`` (the occkit preset) and scored against the world's exact occupancy. The base
world is written once and shared by every factor's base point. Cells are kept as they finish
(OUT/cells/<name>/quality.json): a stopped run resumes with the cells it lacks.

    python benchmarks/label_factors.py --out OUT [--scenes 1 --frames 4 --seed 11]

Writes OUT/factors.json (every cell's figures), OUT/factors.md (one table per factor) and OUT/factors.png
(one panel per factor: occupied IoU inside the observable region, mIoU inside the camera mask and the
false-free rate against the factor's value).
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
    "box centre noise (m)": ("--box-center-noise", 0.0, [0.0, 0.2, 0.5]),
    "point-label flips": ("--label-flips", 0.0, [0.0, 0.1, 0.3]),
}
KEYS = [
    "occupied_iou_observable",
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


def run_cell(out: Path, name: str, extra: list[str], args: argparse.Namespace) -> dict:
    cell = out / "cells" / name
    done = cell / "quality.json"
    world, lab = out / "worlds" / name, out / "labels" / name
    if done.exists():
        return json.loads(done.read_text())
    if not (world / "annotations.json").exists():
        shutil.rmtree(world, ignore_errors=True)
        cmd = [_occkit(), "synth", "--format", "nuscenes", "--out", str(world), "--scenes", str(args.scenes)]
        cmd += ["--frames", str(args.frames), "--seed", str(args.seed), "--image-size", "96", "160"]
        cmd += extra if "--sweeps" in extra else ["--sweeps", "10", *extra]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    if not (lab / "quality.json").exists():  # a stopped label run resumes in its own folder
        cmd = [_occkit(), "label", "--data", str(world), "--out", str(lab), "--quality"]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    q = json.loads((lab / "quality.json").read_text())
    rep = json.loads((lab / "report.json").read_text())
    q["seconds_per_keyframe"] = rep["summary"]["seconds_per_keyframe"]
    cell.mkdir(parents=True, exist_ok=True)
    tmp = done.with_suffix(".tmp")
    tmp.write_text(json.dumps(q, indent=1))
    tmp.replace(done)
    if not args.keep_worlds and name != "base":
        shutil.rmtree(world, ignore_errors=True)
    return q


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--scenes", type=int, default=1)
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--keep-worlds", action="store_true", help="keep every cell's world (default: the base only)")
    args = p.parse_args()
    out = args.out
    results: dict[str, list[dict]] = {}
    for factor, (option, base, values) in FACTORS.items():
        rows = []
        for v in values:
            name = "base" if v == base else _cell_name(option, v)
            q = run_cell(out, name, [] if v == base else [option, f"{v:g}"], args)
            rows.append({"value": v, **{k: q.get(k) for k in KEYS}, "seconds_per_keyframe": q["seconds_per_keyframe"]})
            print(f"{factor} = {v:g}: " + ", ".join(f"{k} {q.get(k)}" for k in KEYS[:5]), flush=True)
        results[factor] = rows
    (out / "factors.json").write_text(json.dumps(results, indent=1))
    lines = []
    for factor, rows in results.items():
        lines += [f"**{factor}**", "", "| value | " + " | ".join(KEYS) + " | s/keyframe |"]
        lines += ["|---" * (len(KEYS) + 2) + "|"]
        lines += [
            f"| {r['value']:g} | " + " | ".join(str(r[k]) for k in KEYS) + f" | {r['seconds_per_keyframe']} |"
            for r in rows
        ]
        lines.append("")
    (out / "factors.md").write_text("\n".join(lines))
    _plot(results, out / "factors.png")
    print(f"wrote {out / 'factors.json'}, {out / 'factors.md'}, {out / 'factors.png'}")
    return 0


def _plot(results: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    series = [
        ("occupied_iou_observable", "occupied IoU, observable"),
        ("semantic_miou_camera_mask", "mIoU, camera mask"),
        ("false_free_rate", "false-free rate"),
    ]
    for ax, (factor, rows) in zip(axes.ravel(), results.items()):
        xs = [r["value"] for r in rows]
        for key, label in series:
            ax.plot(xs, [r[key] for r in rows], marker="o", label=label)
        ax.set_title(factor)
        ax.set_xlabel(factor)
        ax.set_ylabel("%")
        ax.grid(alpha=0.3)
    axes.ravel()[0].legend(fontsize=8)
    fig.suptitle("occkit label against the exact occupancy, one factor of the recording at a time")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
