"""LangOcc ablation on the synthetic world: one arm per invocation, a fixed step budget, a seed.

An arm trains a preset with ``--set`` overrides for exactly ``--steps`` steps (``occkit train``,
validation off), then scores the last checkpoint on the validation split:

- zero-shot / ordinary semantic occupancy: mIoU (camera mask) and geometry IoU
  (:func:`occkit.engine.evaluate.evaluate`, the metric ``occkit eval`` computes);
- for ``langocc`` runs, open-vocabulary retrieval over the query set (``occkit retrieval``):
  mAP seen / held-out, all / camera-visible occupied voxels.

The ``lifted`` arm trains nothing: it scores the lifted-2D baseline (each voxel the mean of the
2D features at its projections) of a prior cache with the same retrieval protocol.

Writes ``<out>/result.json`` (figures, the exact commands, the machine, timings). Usage::

    python benchmarks/bench_langocc.py --arm langocc --data runs/abl_world --priors runs/abl_world_priors_typical \\
        --steps 1000 --seed 0 --out runs/bench_langocc/langocc_typical_s0
    python benchmarks/bench_langocc.py --arm render_sup --data runs/abl_world --steps 1000 --seed 0 --out runs/bench_langocc/render_sup_s0
    python benchmarks/bench_langocc.py --arm lifted --data runs/abl_world --priors runs/abl_world_priors_typical --out runs/bench_langocc/lifted_typical

``benchmarks/langocc_arms.sh`` lists every arm of the ablation.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

PRESETS = {"langocc": "langocc", "render_sup": "render-sup-cpu"}


def occkit_bin() -> str:
    return str(Path(sys.executable).with_name("occkit"))


def sh(cmd: list[str], log: Path) -> float:
    """Run a command (output appended to ``log``); raise on failure; seconds taken."""
    t = time.time()
    with open(log, "a") as f:
        f.write("$ " + shlex.join(cmd) + "\n")
        f.flush()
        subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=True)
    return time.time() - t


def evaluate_run(run: Path, data: Path, device: str = "cpu") -> dict:
    from occkit.engine.data import eval_batches
    from occkit.engine.evaluate import evaluate, resolve_amp
    from occkit.experiment import build_dataset, load_checkpoint_method

    method, cfg, folder, dev = load_checkpoint_method(run, device)
    ds = build_dataset(cfg, data, "val", load_gt=True)
    scores = evaluate(method, eval_batches(ds, 1), dev, resolve_amp(dev, cfg.optim.amp, cfg.optim.cpu_bf16), mask="camera",
                      num_classes=cfg.model.num_classes)
    out = {"checkpoint": str(folder), "miou": scores["miou"], "geometry_iou": scores["geometry_iou"], "iou": scores["iou"],
           "frames": scores["frames"]}
    threshold = getattr(method, "threshold", None)
    if callable(threshold):
        out["occupied_threshold"] = threshold()
    if hasattr(method, "p_occupied"):  # diagnostic only (it reads the 3D truth): geometry IoU at other thresholds
        import torch

        from occkit.data.sample import collate

        ths = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7)
        inter, union = [0] * len(ths), [0] * len(ths)
        with torch.no_grad():
            for i in range(len(ds)):
                s = ds[i]
                p = method.p_occupied(method.forward(collate([s]).to(dev)).logits)[0].cpu()
                gt, cam = s.occupancy != 17, s.mask_camera.bool()
                for k, t in enumerate(ths):
                    inter[k] += int((p.ge(t) & gt & cam).sum())
                    union[k] += int(((p.ge(t) | gt) & cam).sum())
        out["diagnostic_geometry_iou_by_threshold"] = {str(t): 100 * a / max(b, 1) for t, a, b in zip(ths, inter, union)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arm", required=True, choices=("langocc", "render_sup", "lifted"))
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--priors", type=Path, help="prior cache with features (langocc, lifted)")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", nargs="*", default=[], help="extra config overrides of the preset")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--device", default="cpu", help="where the scoring runs: cpu, cuda, auto (training picks its own: auto)")
    ap.add_argument("--retrieval-frames", type=int, default=0, help="frames for retrieval (0 = the whole val split)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "bench.log"
    result: dict = {"arm": args.arm, "data": str(args.data), "priors": str(args.priors) if args.priors else None, "steps": args.steps,
                    "seed": args.seed, "overrides": args.set, "machine": platform.processor() or platform.machine(),
                    "torch_threads": os.environ.get("OMP_NUM_THREADS"), "device": args.device, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "commands": []}
    if args.arm in ("langocc", "lifted") and args.priors is None:
        ap.error(f"--arm {args.arm} needs --priors")
    if args.arm != "lifted":
        run = args.out / "run"
        sets = [f"train.seed={args.seed}", "train.ckpt_every=250"]
        if args.arm == "langocc":
            sets += [f"data.priors={args.priors}", "data.prior_kinds=[features]"]
        sets += args.set
        cmd = [occkit_bin(), "train", PRESETS[args.arm], "--data", str(args.data), "--out", str(run), "--max-steps", str(args.steps),
               "--no-val", "--no-progress", "--set", *sets]
        if (run / "checkpoints").is_dir():
            cmd.append("--resume")
        result["commands"].append(shlex.join(cmd))
        result["train_seconds"] = sh(cmd, log)
        result["train_last"] = json.loads((run / "train.jsonl").read_text().splitlines()[-1])
        t = time.time()
        result["occupancy"] = evaluate_run(run, args.data, args.device)
        result["eval_seconds"] = time.time() - t
        print(f"{args.arm} seed {args.seed}: mIoU {result['occupancy']['miou']:.2f}, geometry IoU {result['occupancy']['geometry_iou']:.2f}")
    if args.arm in ("langocc", "lifted"):
        ret = args.out / "retrieval.json"
        src = ["--ckpt", str(args.out / "run")] if args.arm == "langocc" else ["--lifted", "--priors", str(args.priors)]
        cmd = [occkit_bin(), "retrieval", "--data", str(args.data), *src, "--max-frames", str(args.retrieval_frames), "--out", str(ret),
               "--device", args.device]
        result["commands"].append(shlex.join(cmd))
        result["retrieval_seconds"] = sh(cmd, log)
        r = json.loads(ret.read_text())
        result["retrieval"] = {k: v for k, v in r.items() if k.startswith("map_") or k in ("frames", "queries_scored", "points")}
        print(f"{args.arm}: retrieval mAP all {r['map_all']} (seen {r['map_seen_all']}, held-out {r['map_heldout_all']}), "
              f"visible {r['map_visible']}")
    result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    from occkit.fileio import write_json_atomic

    write_json_atomic(args.out / "result.json", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
