"""EasyOcc ablation on the synthetic world (METHODS.md §2, issue 17): one arm per invocation.

Two kinds of arm:

- ``labels-K<k>-<filter|keep>``: ``occkit pseudolabel`` with ``--past k`` (and the dynamic rule)
  from a prior cache, then the label quality against the real labels (mIoU and geometry IoU with
  the camera mask and without, occupied precision/recall, density) -> ``OUT/result.json``;
- training arms (``easyocc-dense``, ``easyocc-single``, ``rendersup-priors``,
  ``rendersup-pseudo``, ``supervised-real``): ``occkit train`` for a fixed number of STEPS with a
  seed, then ``occkit predict`` on the real dataset's val split and ``occkit eval`` against the
  REAL ground truth with the camera mask and without (``--mask none``) -> ``OUT/result.json``.

Every arm writes the exact commands it ran beside its figures. The training arms need the label
datasets of ``labels-K13-filter`` (dense) and ``labels-K0-filter`` (single frame) made first
(``--labels-root``). ``--list`` prints every arm; benchmarks/run_easyocc_ablation.sh runs them all.

    python benchmarks/ablation_easyocc.py --arm labels-K13-filter --out runs/easyocc_abl/labels-K13-filter
    python benchmarks/ablation_easyocc.py --arm easyocc-dense --seed 0 --steps 600 --out runs/easyocc_abl/easyocc-dense_s0
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

OCCKIT = [sys.executable, "-m", "occkit.cli"]

LABEL_ARMS = {f"labels-K{k}-{d}": {"past": k, "dynamic": d} for k in (0, 3, 7, 13) for d in ("filter", "keep")}
LABEL_ARMS["labels-K13F13-filter"] = {"past": 13, "future": 13, "dynamic": "filter"}  # every frame of the scene

#: training arms: preset, --set overrides, which labels they train on ('dense', 'single', or
#: 'real' = the real dataset), whether they read the prior cache
TRAIN_ARMS: dict[str, dict] = {
    "easyocc-dense": {"preset": "easyocc", "set": [], "labels": "dense", "priors": False},
    "easyocc-single": {"preset": "easyocc", "set": [], "labels": "single", "priors": False},
    "rendersup-priors": {"preset": "render-sup-cpu", "labels": "dense", "priors": True,
                          "set": ["render_sup.targets=priors", "data.load_extras=false", "data.workers=0"]},
    "rendersup-pseudo": {"preset": "render-sup-cpu", "labels": "dense", "priors": True,
                          "set": ["render_sup.targets=priors", "render_sup.pseudo_label_weight=1.0", "data.load_extras=false", "data.workers=0"]},
    "supervised-real": {"preset": "render-sup-cpu", "labels": "real", "priors": False,
                         "set": ["method=supervised", "supervised.class_counts=auto", "supervised.class_weight_offset=1.05",
                                 "supervised.lovasz_max_voxels=20000", "supervised.depth_weight=0", "supervised.depth_source=none",
                                 "data.load_extras=false", "data.workers=0"]},
    "easyocc-real": {"preset": "easyocc", "set": [], "labels": "real", "priors": False},  # the same net on the real labels
}


def sh(cmd: list[str], log: Path, record: list[str]) -> None:
    record.append(shlex.join(cmd))
    print("+", shlex.join(cmd), flush=True)
    with open(log, "a") as f:
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
    if r.returncode:
        raise SystemExit(f"failed ({r.returncode}): {shlex.join(cmd)} (see {log})")


def predict_val(run: Path, data: str, out: Path) -> None:
    """``occkit predict --split val`` of the run's newest checkpoint, reading from its
    config.json only the sections this arm's method uses: other recipes' settings (other
    engineers' methods in a shared, moving tree) may have changed keys since it was written."""
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from occkit.engine.checkpoint import EMA_FILE, MODEL_FILE, load_config_dict, load_weights, resolve_checkpoint
    from occkit.engine.data import eval_batches
    from occkit.engine.evaluate import resolve_amp, write_prediction_folder
    from occkit.experiment import build_dataset, build_method, experiment_from_dict

    folder = resolve_checkpoint(run)
    d = load_config_dict(folder)
    d = {k: v for k, v in d.items() if k in {"method", "model", "data", "optim", "train", "supervised", d["method"]}}
    cfg = experiment_from_dict(d, where=str(folder / "config.json"))
    method = build_method(cfg)
    load_weights(method, folder / EMA_FILE if (folder / EMA_FILE).is_file() else folder / MODEL_FILE)
    method.eval()
    device = torch.device("cpu")
    ds = build_dataset(cfg, data, "val", load_gt=False)
    loader = eval_batches(ds, 1, workers=0, pin_memory=False)
    prov = {"checkpoint": str(folder.resolve()), "data": str(Path(data).resolve()), "split": "val"}
    write_prediction_folder(method, loader, out, device, prov, resolve_amp(device, cfg.optim.amp, cfg.optim.cpu_bf16),
                            overwrite=True, progress=False, total=len(loader))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arm", help="arm name (--list)")
    ap.add_argument("--list", action="store_true", help="print every arm and exit")
    ap.add_argument("--data", default="runs/abl_world", help="the real dataset (images, poses, real labels)")
    ap.add_argument("--priors", default="runs/abl_world_priors_typical", help="prior cache of --data (semantics, depth)")
    ap.add_argument("--labels-root", default="runs/easyocc_abl", help="where the label arms write (training arms read labels-K13-filter and labels-K0-filter there)")
    ap.add_argument("--out", help="arm folder (default: LABELS_ROOT/ARM[_sSEED])")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=600, help="training steps (equal for every training arm)")
    ap.add_argument("--workers", type=int, default=1, help="pseudolabel processes")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="extra overrides for a training arm")
    ap.add_argument("--force", action="store_true", help="run the arm even when its result.json exists")
    args = ap.parse_args()
    if args.list or not args.arm:
        print("label arms:", " ".join(LABEL_ARMS))
        print("training arms:", " ".join(TRAIN_ARMS))
        return
    root = Path(args.labels_root)
    if args.arm in LABEL_ARMS:
        out = Path(args.out or root / args.arm)
    elif args.arm in TRAIN_ARMS:
        out = Path(args.out or root / f"{args.arm}_s{args.seed}")
    else:
        raise SystemExit(f"unknown arm {args.arm!r} (--list)")
    if (out / "result.json").is_file() and not args.force:
        print(f"{out / 'result.json'} exists: arm done (--force to run it again)")
        return
    out.mkdir(parents=True, exist_ok=True)
    log = out / "log.txt"
    commands: list[str] = []
    result: dict = {"arm": args.arm, "data": args.data, "priors": args.priors, "machine": platform.machine(),
                    "threads": os.environ.get("OMP_NUM_THREADS", "1"), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    t0 = time.perf_counter()
    if args.arm in LABEL_ARMS:
        a = LABEL_ARMS[args.arm]
        cmd = OCCKIT + ["pseudolabel", "--data", args.data, "--priors", args.priors, "--out", str(out / "dataset"),
                        "--past", str(a["past"]), "--future", str(a.get("future", 0)), "--dynamic", a["dynamic"],
                        "--workers", str(args.workers), "--no-progress", "--quality", str(out / "quality.json")]
        sh(cmd, log, commands)
        result.update(config=a, quality=json.loads((out / "quality.json").read_text()),
                      record=json.loads((out / "dataset" / "pseudolabel.json").read_text()))
    else:
        a = TRAIN_ARMS[args.arm]
        labels = {"dense": root / "labels-K13-filter" / "dataset", "single": root / "labels-K0-filter" / "dataset", "real": Path(args.data)}[a["labels"]]
        if not (labels / "annotations.json").is_file():
            raise SystemExit(f"{labels}: no dataset (run the label arm first)")
        sets = list(a["set"]) + [f"train.seed={args.seed}"] + (["data.priors=" + str(Path(args.priors).resolve())] if a["priors"] else []) + list(args.set)
        run = out / "run"
        if (run / "checkpoints").is_dir() and any((run / "checkpoints").iterdir()):
            train_cmd = OCCKIT + ["train", a["preset"], "--data", str(labels), "--out", str(run), "--resume", "--max-steps", str(args.steps), "--no-val", "--no-progress", "--set", *sets]
        else:
            train_cmd = OCCKIT + ["train", a["preset"], "--data", str(labels), "--out", str(run), "--max-steps", str(args.steps), "--no-val", "--no-progress", "--set", *sets]
        sh(train_cmd, log, commands)
        t_train = time.perf_counter() - t0
        pred = out / "pred"
        predict_val(run, args.data, pred)
        commands.append(f"(in-process) occkit predict --ckpt {run} --data {args.data} --out {pred} --split val --overwrite")
        for mask in ("camera", "none"):
            sh(OCCKIT + ["eval", "--gt", args.data, "--pred", str(pred), "--split", "val", "--mask", mask, "--json", str(out / f"eval_{mask}.json"),
                         "--no-progress", "--threads", "1"], log, commands)
        ev = {m: json.loads((out / f"eval_{m}.json").read_text()) for m in ("camera", "none")}
        steps = [json.loads(line) for line in (run / "train.jsonl").read_text().splitlines() if line.strip()]
        result.update(config=a, labels=str(labels), seed=args.seed, steps=args.steps, overrides=sets, train_seconds=t_train,
                      last_log=steps[-1] if steps else None,
                      miou_camera=ev["camera"]["miou"], miou_none=ev["none"]["miou"],
                      geometry_iou_camera=ev["camera"].get("geometry_iou"), geometry_iou_none=ev["none"].get("geometry_iou"),
                      iou_camera=ev["camera"].get("iou"), iou_none=ev["none"].get("iou"))
    result["seconds"] = time.perf_counter() - t0
    result["commands"] = commands
    (out / "result.json").write_text(json.dumps(result, indent=1, default=float) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k in ("arm", "seed", "miou_camera", "miou_none", "seconds")} | (
        {k: result["quality"][k] for k in ("miou_camera", "miou_none", "geometry_iou_camera", "geometry_iou_none", "precision_none", "recall_none", "density")}
        if "quality" in result else {}), default=float))


if __name__ == "__main__":
    main()
