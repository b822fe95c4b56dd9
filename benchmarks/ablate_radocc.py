"""RadOcc's ablation on a synthetic world: one arm per invocation, at a fixed number of steps.

Every arm is the ``radocc`` preset plus ``--set`` overrides (ARMS below): the student alone (all
distillation weights 0), + 3D feature distillation, + 3D logit distillation, + rendered depth
consistency, + rendered semantic consistency (segment affinity; oracle segments or
superpixels), + both rendered terms, and the released-code semantic KL. Trains ``--steps`` steps
with ``--seed`` (1 torch thread), evaluates the final weights on the whole validation split
(mIoU, camera mask; geometry IoU) and writes ``OUT/<arm>_s<seed>/result.json`` with the figures,
the overrides, the command and the step times. The teacher's own mIoU is measured with
``--arm teacher`` (no training: the teacher run evaluated on the same split).

    python benchmarks/ablate_radocc.py --arm student --seed 0 --steps 300 --data runs/abl_world \\
        --teacher runs/radocc_teacher_lidar --priors runs/abl_world_priors_typical \\
        --priors-sp runs/abl_world_priors_sp --out runs/radocc_abl
    python benchmarks/ablate_radocc.py --list          # the arms and their overrides
    python benchmarks/ablate_radocc.py --summary runs/radocc_abl   # the table over seeds
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

OFF = ["radocc.depth_weight=0", "radocc.semantic_weight=0", "radocc.feature_weight=0", "radocc.logit_weight=0"]

#: arm -> (description, overrides on top of the radocc preset; "{sp}" = use the superpixel cache)
ARMS: dict[str, tuple[str, list[str]]] = {
    "student": ("student alone (no distillation)", OFF),
    "feat3d": ("+ 3D feature distillation (L1, weight 0.1)", OFF + ["radocc.feature_weight=0.1"]),
    "logit3d": ("+ 3D logit distillation (KL, weight 0.1, tau 1)", OFF + ["radocc.logit_weight=0.1"]),
    "rdc": ("+ rendered depth consistency (weight 100, tau 1)", OFF + ["radocc.depth_weight=100"]),
    "rsc": ("+ rendered semantic consistency (segment affinity, oracle segments)", OFF + ["radocc.semantic_weight=10"]),
    "rdc_rsc": ("+ both rendered terms (the radocc preset)", []),
    "rsc_sp": ("+ rendered semantic consistency, superpixel segments", OFF + ["radocc.semantic_weight=10", "{sp}"]),
    "rdc_rsc_hard": ("+ both rendered terms, the teacher rendered as its hard argmax occupancy (occkit's option)",
                     ["radocc.teacher_density=hard"]),
    "rsc_sg": ("+ rendered semantic consistency, its gradient stopped at the student's density (occkit's option)",
               OFF + ["radocc.semantic_weight=10", "radocc.semantic_density_grad=false"]),
    "rdc_rsc_sg": ("+ both rendered terms, the semantic term's gradient stopped at the student's density (occkit's option)",
                   ["radocc.semantic_density_grad=false"]),
    "rsc_kl": ("+ rendered semantic consistency, released-code KL (weight 10)", OFF + ["radocc.semantic_weight=10", "radocc.semantic_mode=kl"]),
}


def arm_overrides(arm: str, args: argparse.Namespace) -> list[str]:
    priors = args.priors
    out = []
    for o in ARMS[arm][1]:
        if o == "{sp}":
            priors = args.priors_sp
        else:
            out.append(o)
    data = [] if arm == "student" else [f"radocc.teacher={args.teacher}", f"data.priors={priors}", "data.prior_kinds=[segments]"]
    return out + data + [f"train.seed={args.seed}", "train.threads=1", f"optim.max_steps={args.steps}",
                  f"optim.warmup_steps={min(50, args.steps // 10)}", "train.val_every=0", f"train.ckpt_every={args.steps}",
                  "train.tensorboard=false"] + list(args.set)


def evaluate_run(ckpt: str, data: str, split: str) -> dict:
    from occkit.engine.data import eval_batches
    from occkit.engine.evaluate import evaluate, resolve_amp
    from occkit.experiment import build_dataset, load_checkpoint_method

    method, cfg, _, device = load_checkpoint_method(ckpt, "cpu")
    if cfg.method == "radocc":
        cfg.data.priors, cfg.data.prior_kinds = None, ()  # predict needs no priors
    val = build_dataset(cfg, data, split)
    amp = resolve_amp(device, cfg.optim.amp, cfg.optim.cpu_bf16)
    res = evaluate(method, eval_batches(val, 1), device, amp, mask="camera", num_classes=cfg.model.num_classes, progress=False)
    return {"miou": res["miou"], "geometry_iou": res["geometry_iou"], "iou": res["iou"], "frames": res["frames"]}


def summary(folder: Path) -> None:
    rows: dict[str, list[dict]] = {}
    for f in sorted(folder.glob("*/result.json")):
        r = json.loads(f.read_text())
        rows.setdefault(r["arm"], []).append(r)
    print("| arm | seeds | mIoU (mean ± sd) | per seed | geometry IoU | s/step |")
    print("|---|---:|---:|---|---:|---:|")
    for arm in ["teacher", *ARMS]:
        rs = rows.get(arm)
        if not rs:
            continue
        m = [r["miou"] for r in rs]
        sd = statistics.stdev(m) if len(m) > 1 else float("nan")
        g = statistics.mean(r["geometry_iou"] for r in rs)
        sps = statistics.mean(r.get("seconds_per_step", float("nan")) for r in rs)
        desc = ARMS[arm][0] if arm in ARMS else "LiDAR teacher"
        print(f"| {arm}: {desc} | {len(rs)} | {statistics.mean(m):.2f} ± {sd:.2f} | {', '.join(f'{x:.2f}' for x in m)} | {g:.2f} | {sps:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arm", choices=["teacher", *ARMS])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--data", default="runs/abl_world")
    ap.add_argument("--teacher", default="runs/radocc_teacher_lidar")
    ap.add_argument("--priors", default="runs/abl_world_priors_typical", help="prior cache with oracle segments")
    ap.add_argument("--priors-sp", default="runs/abl_world_priors_sp", help="prior cache with superpixel segments")
    ap.add_argument("--config", default="radocc")
    ap.add_argument("--out", default="runs/radocc_abl")
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
    out = Path(args.out) / (f"{args.arm}_s{args.seed}" if args.arm != "teacher" else "teacher")
    command = " ".join([sys.executable.split("/")[-1], *sys.argv])
    if args.arm == "teacher":
        t0 = time.perf_counter()
        res = evaluate_run(args.teacher, args.data, "val")
        res.update(arm="teacher", seed=None, run=args.teacher, command=command, eval_seconds=time.perf_counter() - t0)
    else:
        from occkit.engine.train import train
        from occkit.experiment import build_dataset, load_experiment

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
    print(f"{res['arm']} seed {res['seed']}: mIoU {res['miou']:.2f}, geometry IoU {res['geometry_iou']:.2f} -> {out / 'result.json'}")


if __name__ == "__main__":
    main()
