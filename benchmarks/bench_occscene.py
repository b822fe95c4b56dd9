"""OccScene ablations on the synthetic world, one arm per invocation (METHODS.md section 5; the
paper's claim: generation and perception both gain from each other).

Arms (each at a fixed number of training STEPS, a seed, 1 torch thread by default):

  judge         perception only (occscene with train_generator=false) on every real training
                scene: the frozen judge of eval-gen (FID/KID features, layout mIoU)
  gen_mda       the generator with MDA (occscene-cpu); sampled on the val layouts; eval-gen
  gen_text      the generator without MDA (generator.mda.enabled=false); sampled from text on
                the same frames, scored against their layouts (which it never saw)
  feedback      gen_mda's run sampled without any layout: perception feedback through MDA at each
                step, against text-only sampling of the same run (both scored by the judge
                against the labels the run's perception model predicts)
  perc_real     perception only, a quarter of the real training scenes
  perc_realgen  the same + scenes gen_mda's run generates from that quarter's layouts (new seeds)
  perc_blankgen control of perc_realgen: its generated layouts (labels), each image replaced by
                its own mean colour: what the extra labels give without any generated appearance

Each arm writes ARM_sSEED.json under --out (figures + the exact commands); run_occscene_arms.sh
lists every arm in dependency order. Rerunning an interrupted arm resumes its training from the
newest checkpoint (and redoes the sampling and scoring). Perception mIoU is Occ3D's (camera mask) inside the front
camera's frustum, on the val split.

  python benchmarks/bench_occscene.py --arm judge --seed 0 --data runs/abl_world --out runs/occscene_bench
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARMS = ("judge", "gen_mda", "gen_text", "feedback", "perc_real", "perc_realgen", "perc_blankgen")


def occkit(*args: str) -> list[str]:
    return [sys.executable, "-m", "occkit.cli", *args]


def sh(cmd: list[str], log: Path) -> None:
    """Run a command, appending its output to ``log``; raise on failure."""
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    if r.returncode:
        raise SystemExit(f"failed ({r.returncode}): {' '.join(cmd)} (see {log})")


def train(preset: str, data: str, run: Path, steps: int, seed: int, sets: list[str], log: Path) -> list[str]:
    cmd = occkit("train", preset, "--data", data, "--out", str(run), "--max-steps", str(steps), "--no-val", "--no-progress",
                 "--resume", "--set", f"train.seed={seed}", "train.threads=1", "train.ckpt_every=100", *sets)
    sh(cmd, log)  # --resume: an interrupted arm continues exactly; a finished one returns at once
    return cmd


def stage_sets(steps: int) -> list[str]:
    """Stage lengths scaled to the budget: 25 % VAE + perception, 50 % diffusion, 25 % joint."""
    return [f"occscene.vae_steps={steps // 4}", f"occscene.diffusion_steps={steps // 2}",
            f"occscene.occ_warmup_steps={max(1, steps // 20)}"]


def perception_miou(run: Path, data: str, split: str = "val", device: str = "cpu") -> float:
    """The run's perception mIoU on ``split`` (camera mask, front frustum)."""
    import torch

    from occkit.engine.data import eval_batches
    from occkit.experiment import build_dataset, load_checkpoint_method
    from occkit.generation.evaluate import score_frames

    torch.set_num_threads(1)
    method, cfg, _, dev = load_checkpoint_method(run, device)
    _, scores = score_frames(method, eval_batches(build_dataset(cfg, data, split), 2), dev)
    return scores["miou"]


def train_perception_on(preset: str, data: str, gen: str | None, run: Path, steps: int, seed: int, scenes_fraction: float,
                        sets: list[str]) -> dict:
    """Perception-only training on the first ``scenes_fraction`` of the real training scenes (+ a
    generated dataset): the engine's loop on a concatenation of the two (same transforms)."""
    import torch
    from torch.utils.data import ConcatDataset, Subset

    from occkit.engine.train import train as engine_train
    from occkit.experiment import base_dataset, build_dataset, load_experiment

    torch.set_num_threads(1)
    cfg = load_experiment(preset, ["occscene.train_generator=false", f"optim.max_steps={steps}", f"train.seed={seed}",
                                   "train.threads=1", "train.ckpt_every=100", *sets])
    real = build_dataset(cfg, data, "train", train=True)
    base = base_dataset(real)
    keep_scenes = base.scenes[: max(1, round(len(base.scenes) * scenes_fraction))]
    idx = [i for i, f in enumerate(base.frames) if f.scene in keep_scenes]
    parts = [Subset(real, idx)]
    if gen:
        parts.append(build_dataset(cfg, gen, "all", train=True))
    train_set = ConcatDataset(parts)
    engine_train(cfg, run, train_set, resume=True, progress=False)  # continues an interrupted arm
    return {"real_scenes": keep_scenes, "real_frames": len(idx), "generated_frames": len(parts[1]) if gen else 0}


def blank_copy(src: Path, dst: Path) -> int:
    """Copy the generated dataset ``src`` to ``dst`` with every camera image replaced by its own
    mean colour (labels, poses and layout untouched); returns the number of images blanked."""
    import shutil

    import numpy as np
    from PIL import Image

    if (dst / "annotations.json").exists():
        return sum(1 for _ in (dst / "samples").rglob("*.png"))
    tmp = dst.with_name(dst.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    images = sorted((tmp / "samples").rglob("*.png"))
    if not images:
        raise SystemExit(f"{src}: no generated images under samples/")
    for f in images:
        a = np.asarray(Image.open(f).convert("RGB"))
        mean = a.reshape(-1, 3).mean(0).round().astype(np.uint8)
        Image.fromarray(np.broadcast_to(mean, a.shape).copy()).save(f)
    meta = tmp / "generation.json"
    if meta.exists():
        info = json.loads(meta.read_text())
        info["images_blanked_to_mean_colour_from"] = str(src)
        meta.write_text(json.dumps(info, indent=1))
    tmp.rename(dst)  # complete or absent: a rerun after an interruption starts the copy over
    return len(images)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arm", required=True, choices=ARMS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default="runs/abl_world")
    p.add_argument("--out", default="runs/occscene_bench")
    p.add_argument("--preset", default="occscene-cpu")
    p.add_argument("--steps", type=int, default=2000, help="training steps of a generator arm (stages 25/50/25 %%)")
    p.add_argument("--perception-steps", type=int, default=1000, help="training steps of a perception arm (judge, perc_*)")
    p.add_argument("--judge-seed", type=int, default=0, help="which judge run scores the generator arms")
    p.add_argument("--n", type=int, default=32, help="frames generated for eval-gen")
    p.add_argument("--n-augment", type=int, default=64, help="frames generated for perc_realgen")
    p.add_argument("--sample-steps", type=int, default=25, help="DDIM steps")
    p.add_argument("--quarter", type=float, default=0.25, help="fraction of the real training scenes of the perc_* arms")
    p.add_argument("--set", nargs="*", default=[], help="extra config overrides for every training of this arm")
    p.add_argument("--device", default="cpu", help="where sampling and scoring run: cpu (default), auto, cuda "
                   "(training always takes CUDA when there is one)")
    p.add_argument("--train-only", action="store_true", help="gen_mda / gen_text: train, then stop (sample and "
                   "score on a second call, once the judge exists)")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"{args.arm}_s{args.seed}"
    log = out / f"{name}.log"
    result: dict = {"arm": args.arm, "seed": args.seed, "data": args.data, "preset": args.preset, "commands": [],
                    "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    judge = out / f"judge_s{args.judge_seed}" / "run"
    gen_mda = out / f"gen_mda_s{args.seed}" / "run"
    steps_gen = [*stage_sets(args.steps), *args.set]
    t0 = time.time()

    def eval_gen(gen_dir: Path) -> dict:
        cmd = occkit("eval-gen", "--gen", str(gen_dir), "--real", args.data, "--judge", str(judge), "--split", "val",
                     "--device", args.device, "--out", str(gen_dir) + ".scores.json")
        sh(cmd, log)
        result["commands"].append(" ".join(cmd))
        return json.loads(Path(str(gen_dir) + ".scores.json").read_text())

    def generate(run: Path, gen_dir: Path, *how: str, n: int | None = None, split: str = "val", seed: int = 0) -> None:
        if not (gen_dir / "annotations.json").exists():
            cmd = occkit("generate", "--ckpt", str(run), "--data", args.data, "--n", str(n or args.n), "--out", str(gen_dir),
                         "--steps", str(args.sample_steps), "--seed", str(seed), "--split", split, "--device", args.device,
                         "--no-progress", *how)
            sh(cmd, log)
            result["commands"].append(" ".join(cmd))

    if args.arm == "judge":
        run = out / name / "run"
        result["commands"].append(" ".join(train(args.preset, args.data, run, args.perception_steps, args.seed,
                                                 ["occscene.train_generator=false", *args.set], log)))
        result["val_miou"] = perception_miou(run, args.data, device=args.device)
    elif args.arm in ("gen_mda", "gen_text"):
        run = out / name / "run"
        sets = steps_gen + (["occscene.generator.mda.enabled=false", "occscene.occ_dropout=0"] if args.arm == "gen_text" else [])
        result["commands"].append(" ".join(train(args.preset, args.data, run, args.steps, args.seed, sets, log)))
        if args.train_only:
            print(f"trained: {run}")
            return 0
        gen_dir = out / name / "gen_val"
        generate(run, gen_dir, "--occupancy", "val", *(["--text-only"] if args.arm == "gen_text" else []))
        result.update(eval_gen(gen_dir))
        result["train_last"] = json.loads((run / "train.jsonl").read_text().splitlines()[-1])
    elif args.arm == "feedback":
        if not (gen_mda / "checkpoints").is_dir():
            raise SystemExit(f"run the gen_mda arm of seed {args.seed} first ({gen_mda})")
        for label, how in (("with_feedback", ["--from-perception"]), ("text_only", [])):
            gen_dir = out / name / label
            generate(gen_mda, gen_dir, *how)
            result[label] = eval_gen(gen_dir)
    elif args.arm in ("perc_real", "perc_realgen", "perc_blankgen"):
        run = out / name / "run"
        gen = None
        if args.arm == "perc_blankgen":
            src = out / f"perc_realgen_s{args.seed}" / "gen_train"
            if not (src / "annotations.json").exists():
                raise SystemExit(f"run the perc_realgen arm of seed {args.seed} first ({src})")
            gen = out / name / "gen_train"
            result["blanked_images"] = blank_copy(src, gen)
        elif args.arm == "perc_realgen":
            if not (gen_mda / "checkpoints").is_dir():
                raise SystemExit(f"run the gen_mda arm of seed {args.seed} first ({gen_mda})")
            gen = out / name / "gen_train"
            # new appearances of the quarter's own layouts (the generator saw every training scene's
            # images; the perception arm sees only the quarter's real images plus these)
            generate(gen_mda, gen, "--occupancy", "train", n=args.n_augment, split="train", seed=1000 + args.seed)
        info = train_perception_on(args.preset, args.data, str(gen) if gen else None, run, args.perception_steps, args.seed,
                                   args.quarter, args.set)
        result.update(info)
        result["commands"].append(f"bench_occscene.py --arm {args.arm} --seed {args.seed} (engine train on the concatenation)")
        result["val_miou"] = perception_miou(run, args.data, device=args.device)
    result["minutes"] = (time.time() - t0) / 60
    from occkit.fileio import write_json_atomic

    write_json_atomic(out / f"{name}.json", result)
    print(json.dumps({k: v for k, v in result.items() if k != "commands"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
