"""What labels made by ``occkit label`` cost a model trained on them (docs/labels.md, "Quality").

One synthetic world written with sweeps (``occkit synth --sweeps 10``, Occ3D layout) and its labels made by
``occkit label`` from those sweeps: the same preset is trained on each (the world's exact labels against the
made ones; same images, same frames, same start: occkit's shipped image backbone under a fresh 3D network, as
``occkit demo`` starts), for the same steps and seeds, and both are scored on the world's validation frames
against the exact occupancy (``occkit predict`` then ``occkit eval --metrics miou,rayiou``).

    python benchmarks/label_downstream.py --world W --labels L --out OUT [--steps 400 --seeds 0,1]

Each run is kept as it finishes (OUT/<arm>-s<seed>/eval.json); a stopped run resumes with what it lacks
(``occkit train --resume`` for a run cut short). Writes OUT/downstream.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path


def _occkit() -> str:
    exe = Path(sys.executable).with_name("occkit")
    return str(exe) if exe.exists() else "occkit"


def _run(cmd: list[str]) -> None:
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--world", type=Path, required=True, help="the synthetic world (its exact labels, its images)")
    p.add_argument("--labels", type=Path, required=True, help="occkit label --data WORLD --out LABELS")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--preset", default="synth-cpu")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--arms", default="truth,labels", help="which arms to run here (two lanes: one each)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    backbone = out / "backbone.safetensors"
    if not backbone.exists():
        from occkit.commands.demo import write_shipped_backbone

        write_shipped_backbone(backbone)
    data = {"truth": args.world, "labels": args.labels}
    results: dict[str, list[dict]] = {}
    for seed in [int(s) for s in args.seeds.split(",") if s]:  # seed by seed: a stopped study has both arms
        for arm in [a for a in args.arms.split(",") if a]:
            run = out / f"{arm}-s{seed}"
            done = run / "eval.json"
            if not done.exists():
                ckpt = run / "train"
                if not (ckpt / "checkpoints" / f"step_{args.steps:06d}").is_dir():
                    cmd = [_occkit(), "train", args.preset, "--data", str(data[arm]), "--out", str(ckpt)]
                    cmd += ["--max-steps", str(args.steps), "--no-val", "--no-progress"]
                    cmd += ["--set", f"model.backbone_weights={backbone.resolve()}", f"train.seed={seed}"]
                    cmd += [f"train.threads={args.threads}"]
                    _run(cmd + (["--resume"] if (ckpt / "checkpoints").is_dir() else []))
                pred = run / "pred"
                _run(
                    [_occkit(), "predict", "--ckpt", str(ckpt), "--data", str(args.world), "--split", "val"]
                    + ["--out", str(pred), "--overwrite", "--no-progress"]
                )
                tmp = run / "eval.tmp.json"
                _run(
                    [_occkit(), "eval", "--gt", str(args.world), "--pred", str(pred), "--split", "val"]
                    + ["--metrics", "miou,rayiou", "--json", str(tmp)]
                )
                tmp.replace(done)
            results.setdefault(arm, []).append({"seed": seed, **json.loads(done.read_text())})
    summary = {}
    for arm, rows in results.items():
        s = {}
        for key in ("miou", "rayiou", "geometry_iou"):
            vals = [float(r[key]) for r in rows if key in r]
            if vals:
                s[key] = {
                    "mean": round(statistics.mean(vals), 2),
                    "spread": round(max(vals) - min(vals), 2),
                    "runs": [round(v, 2) for v in vals],
                }
        summary[arm] = s
    (out / f"downstream-{args.arms.replace(',', '-')}.json").write_text(json.dumps(summary, indent=1))
    for arm, s in summary.items():
        print(arm, " ".join(f"{k} {v['mean']} (spread {v['spread']}, runs {v['runs']})" for k, v in s.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
