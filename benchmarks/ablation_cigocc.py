"""CIGOcc's ablation on the synthetic world in the SemanticKITTI layout: one arm per invocation,
at a fixed number of steps.

Every arm is the ``cigocc`` preset plus ``--set`` overrides (ARMS below): the kitti-mono baseline
(appearance features, FLoSP over strides 8/16/32), + depth features, + segmentation features,
full fusion (deformable), full fusion + SAM distillation, and full fusion by plain concatenation.
Trains ``--steps`` steps with ``--seed`` (1 torch thread), evaluates the final weights on the
whole validation split with SemanticKITTI's SSC metrics (completion IoU, mIoU over the 19
classes) and writes ``OUT/<arm>_s<seed>/result.json`` with the figures, the overrides, the
command and the step time (the paper claims no extra training cost: compare ``seconds_per_step``
of arms run side by side).

    python benchmarks/ablation_cigocc.py --arm baseline --seed 0 --steps 300 --data runs/abl_kitti \\
        --priors runs/abl_kitti_priors_typical --out runs/cigocc_abl
    python benchmarks/ablation_cigocc.py --list                     # the arms and their overrides
    python benchmarks/ablation_cigocc.py --summary runs/cigocc_abl  # the table over seeds
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

FULL = ["cigocc.features=[appearance,depth,segmentation]", "cigocc.distill_weight=0"]

#: arm -> (description, overrides on top of the cigocc preset)
ARMS: dict[str, tuple[str, list[str]]] = {
    "baseline": ("kitti-mono: appearance features only (FLoSP over strides 8, 16, 32)",
                 ["cigocc.features=[appearance]", "cigocc.distill_weight=0", "model.sample_strides=[16,32]"]),
    "depth": ("+ depth features (deformable fusion)", ["cigocc.features=[appearance,depth]", "cigocc.distill_weight=0"]),
    "seg": ("+ segmentation features (deformable fusion)", ["cigocc.features=[appearance,segmentation]", "cigocc.distill_weight=0"]),
    "full": ("full fusion: appearance + depth + segmentation (deformable)", FULL),
    "full_sam": ("full fusion + SAM distillation (the cigocc preset)", []),
    "concat": ("full fusion by plain concatenation (no offsets)", FULL + ["cigocc.fusion=concat"]),
}


def arm_overrides(arm: str, args: argparse.Namespace) -> list[str]:
    data = [f"data.priors={args.priors}"] if arm != "baseline" else []
    return ARMS[arm][1] + data + [f"train.seed={args.seed}", "train.threads=1", f"optim.max_steps={args.steps}",
                                  f"optim.warmup_steps={min(50, args.steps // 10)}", "train.val_every=0",
                                  f"train.ckpt_every={args.steps}", "train.tensorboard=false"] + list(args.set)


def evaluate_run(ckpt: str, data: str, split: str) -> dict:
    from occkit.engine.data import eval_batches
    from occkit.engine.evaluate import evaluate, resolve_amp
    from occkit.experiment import build_dataset, load_checkpoint_method

    method, cfg, _, device = load_checkpoint_method(ckpt, "cpu")
    cfg.data.priors, cfg.data.prior_kinds = None, ()  # prediction needs no priors
    val = build_dataset(cfg, data, split)
    amp = resolve_amp(device, cfg.optim.amp, cfg.optim.cpu_bf16)
    res = evaluate(method, eval_batches(val, 1), device, amp, num_classes=cfg.model.num_classes, metric_kind="ssc")
    return {k: res[k] for k in ("ssc_miou", "completion_iou", "precision", "recall", "iou", "frames")}


def summary(folder: Path) -> None:
    rows: dict[str, list[dict]] = {}
    for f in sorted(folder.glob("*/result.json")):
        r = json.loads(f.read_text())
        rows.setdefault(r["arm"], []).append(r)
    print("| arm | seeds | SSC mIoU (mean ± sd) | per seed | completion IoU (mean ± sd) | s/step |")
    print("|---|---:|---:|---|---:|---:|")
    for arm in ARMS:
        rs = rows.get(arm)
        if not rs:
            continue
        m = [r["ssc_miou"] for r in rs]
        g = [r["completion_iou"] for r in rs]
        sd = lambda v: statistics.stdev(v) if len(v) > 1 else float("nan")  # noqa: E731
        sps = statistics.mean(r.get("seconds_per_step", float("nan")) for r in rs)
        print(f"| {arm}: {ARMS[arm][0]} | {len(rs)} | {statistics.mean(m):.2f} ± {sd(m):.2f} | {', '.join(f'{x:.2f}' for x in m)} "
              f"| {statistics.mean(g):.2f} ± {sd(g):.2f} | {sps:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arm", choices=list(ARMS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--data", default="runs/abl_kitti")
    ap.add_argument("--priors", default="runs/abl_kitti_priors_typical", help="prior cache (oracle:typical: semantics, depth, segments)")
    ap.add_argument("--config", default="cigocc")
    ap.add_argument("--out", default="runs/cigocc_abl")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="extra overrides for every arm")
    ap.add_argument("--list", action="store_true", help="print the arms and exit")
    ap.add_argument("--summary", type=Path, help="print the table of a results folder and exit")
    args = ap.parse_args()
    if args.list:
        for arm, (desc, sets) in ARMS.items():
            print(f"{arm:10s} {desc}: {' '.join(sets) or '(the preset)'}")
        return
    if args.summary:
        summary(args.summary)
        return
    if args.arm is None:
        ap.error("--arm is required")
    import torch

    torch.set_num_threads(1)
    from occkit.engine.train import train
    from occkit.experiment import build_dataset, load_experiment

    out = Path(args.out) / f"{args.arm}_s{args.seed}"
    command = " ".join([sys.executable.split("/")[-1], *sys.argv])
    overrides = arm_overrides(args.arm, args)
    cfg = load_experiment(args.config, overrides)
    train_set = build_dataset(cfg, args.data, cfg.data.train_split, train=True)
    t0 = time.perf_counter()
    result = train(cfg, out, train_set, None, progress=False)
    wall = time.perf_counter() - t0
    res = evaluate_run(str(result.checkpoint), args.data, "val")
    res.update(arm=args.arm, description=ARMS[args.arm][0], seed=args.seed, steps=result.step, overrides=overrides,
               config=args.config, command=command, train_seconds=result.train_seconds, wall_seconds=wall,
               seconds_per_step=result.train_seconds / max(1, result.step), final_losses=result.losses[-20:],
               threads=torch.get_num_threads(), cpus=os.cpu_count())
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "result.json.tmp"
    tmp.write_text(json.dumps(res, indent=1))
    os.replace(tmp, out / "result.json")
    print(f"{args.arm} seed {args.seed}: SSC mIoU {res['ssc_miou']:.2f}, completion IoU {res['completion_iou']:.2f} -> {out / 'result.json'}")


if __name__ == "__main__":
    main()
