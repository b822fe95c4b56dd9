"""Make the weights ``occkit demo`` starts from: ``src/occkit/weights/synth-cpu-demo.safetensors``.

The demo fine-tunes a ``synth-cpu`` network that occkit ships, so that its first run shows a
working model within minutes on any CPU. This script makes that network, from nothing but occkit:

1. a synthetic world of a seed the demo never generates (``--seed 1000``; the demo's worlds use
   seed 0 by default), 24 scenes x 16 frames at 192x512 (``occkit synth``), reused when present;
2. ``occkit train synth-cpu`` on it for ``--steps`` steps from random weights, validated on its
   own validation scenes (resumed when the run folder holds a checkpoint);
3. the final checkpoint's weights in float16 (half the bytes; the demo loads them into its float32
   network through ``train.init_from``), with a metadata record of how they were made
   (the commands, the world's seed, the steps, the run's last validation mIoU, the occkit commit)
   and ``synth-cpu-demo.json`` beside them (the same record plus the run's ``model`` config
   section, which ``train.init_from`` checks a run against); both written atomically.

    python tools/make_demo_weights.py --work runs/demo_weights --steps 3000 --threads 2

Every step is a plain occkit command, printed before it runs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

from occkit.engine.checkpoint import resolve_checkpoint
from occkit.fileio import write_json_atomic

OUT = Path(__file__).resolve().parents[1] / "src" / "occkit" / "weights" / "synth-cpu-demo.safetensors"


def _run(cmd: list[str]) -> None:
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def _last_val(run: Path) -> dict:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    if not rows:
        raise SystemExit(f"{run / 'metrics.jsonl'}: no validation recorded")
    return rows[-1]


def _write_record(out: Path, record: dict, run: Path) -> Path:
    """``<out>.json``: the record plus the run's ``model`` config section (train.init_from checks a
    run's grid, classes and modality against it)."""
    config = json.loads((resolve_checkpoint(run) / "config.json").read_text(encoding="utf-8"))
    return write_json_atomic(out.with_suffix(".json"), {**record, "model": config["model"]}, indent=2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--work", default="runs/demo_weights", help="folder for the world and the run (default runs/demo_weights)"
    )
    ap.add_argument("--seed", type=int, default=1000, help="the world's seed (default 1000: one the demo does not use)")
    ap.add_argument("--scenes", type=int, default=24, help="scenes of the world (default 24)")
    ap.add_argument("--frames", type=int, default=16, help="frames per scene (default 16)")
    ap.add_argument("--steps", type=int, default=3000, help="training steps (default 3000)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the training run (default 2)")
    ap.add_argument("--out", default=str(OUT), help=f"weights file to write (default {OUT})")
    ap.add_argument(
        "--record-only",
        action="store_true",
        help="rewrite only the record beside an existing weights file (its own metadata plus the run's model section)",
    )
    args = ap.parse_args()
    if args.record_only:
        from safetensors import safe_open

        out = Path(args.out)
        with safe_open(str(out), framework="pt") as f:
            record = json.loads((f.metadata() or {})["occkit_demo"])
        _write_record(out, record, Path(args.work) / "run")
        print(f"wrote {out.with_suffix('.json')}")
        return 0
    occkit = [sys.executable, "-m", "occkit.cli"]
    work = Path(args.work)
    world, run = work / "world", work / "run"
    world_cmd = occkit + [
        "synth",
        "--out",
        str(world),
        "--scenes",
        str(args.scenes),
        "--frames",
        str(args.frames),
        "--seed",
        str(args.seed),
        "--image-size",
        "192",
        "512",
    ]
    if not (world / "annotations.json").is_file():
        _run(world_cmd + ["--workers", "2"])
    train_cmd = occkit + [
        "train",
        "synth-cpu",
        "--data",
        str(world),
        "--out",
        str(run),
        "--max-steps",
        str(args.steps),
        "--set",
        "train.seed=0",
        f"train.threads={args.threads}",
        "train.val_every=500",
        "train.ckpt_every=500",
        "--no-progress",
    ]
    _run(train_cmd + (["--resume"] if (run / "checkpoints").is_dir() else []))
    val = _last_val(run)
    if int(val.get("step", -1)) != args.steps:
        raise SystemExit(
            f"{run}: the last validation is at step {val.get('step')}, not {args.steps}; run again to finish"
        )
    ckpt = resolve_checkpoint(run)  # the newest complete checkpoint
    src = ckpt / "ema.safetensors" if (ckpt / "ema.safetensors").is_file() else ckpt / "model.safetensors"
    state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in load_file(str(src)).items()}
    commit = (
        subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        or "unknown"
    )
    record = {
        "preset": "synth-cpu",
        "world": " ".join(["occkit"] + world_cmd[len(occkit) :]),
        "train": " ".join(["occkit"] + train_cmd[len(occkit) :]),
        "world_seed": args.seed,
        "steps": args.steps,
        "val_miou": round(float(val["miou"]), 2),
        "val_geometry_iou": round(float(val.get("geometry_iou", float("nan"))), 2),
        "source": f"{src.parent.name}/{src.name}",
        "dtype": "float16",
        "occkit_commit": commit,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    save_file(state, str(tmp), metadata={"occkit_demo": json.dumps(record)})
    tmp.replace(out)
    side = _write_record(out, record, run)
    print(
        f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) and {side}: val mIoU {record['val_miou']} at step "
        f"{args.steps}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
