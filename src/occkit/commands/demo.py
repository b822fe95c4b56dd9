"""``occkit demo [--out DIR]``: the main job on a laptop, end to end, with progress throughout.

1. generate a small synthetic world (``DIR/data``; reused when already there),
2. fine-tune the ``synth-cpu`` network that occkit ships (``occkit/weights/synth-cpu-demo.safetensors``:
   trained 3000 steps on a synthetic world of seed 1000, a seed the demo does not generate, by
   ``tools/make_demo_weights.py``) on this world for a fixed number of steps (``DIR/run``); or, with
   ``--from-scratch``, train it from random weights (900 steps, a larger world),
3. evaluate on the validation scenes: mIoU (camera mask), geometry IoU, RayIoU,
4. write Occ3D submission files (``DIR/predictions``), pictures of predictions beside their
   ground truth (``DIR/pictures``) and a short report (``DIR/report.md``).

Stopped (Ctrl-C), it says in one line what it kept; the same command again resumes: the world's
finished scenes are kept (``DIR/data/.scenes/``) and training continues from its newest checkpoint
(every 50 steps, ``CKPT_EVERY``) when the options are those of the stopped run (``DIR/demo.json``).

The demo trains a fixed number of steps (``--steps``), so the same command gives the same model on
a fast, a slow or a busy machine; only the time changes. The times of each CPU class (native bf16:
AVX512-BF16 / AMX; AVX2 only, where training runs in float32) are measured in BENCHMARKS.md;
the estimate printed before training is this module's ``SECONDS_PER_STEP*``. ``--minutes`` trains
for a time budget instead (the time-to-accuracy setting of the benchmarks; the result then depends
on the machine's speed and load).
"""

from __future__ import annotations

import argparse
import math
import shutil
import time
from pathlib import Path
from typing import Any

from occkit.commands.options import add_overrides

#: Training steps of ``--from-scratch``: what 9 minutes gave on an idle 2-core CPU with native bf16
#: (900-950 steps at commit 13537c8, BENCHMARKS.md), fixed so that a busy machine trains the same
#: model, only slower.
DEMO_STEPS = 900
#: Fine-tuning steps from the shipped weights (the default start).
FINETUNE_STEPS = 100
#: What the default demo's short fine-tune is for, said where its scores are (issue 73: a user saw the
#: geometry IoU fall after training and read it as training making the model worse)
FINETUNE_NOTE = (
    "the fine-tuning shows occkit's training loop at work on this machine; a few steps on a few frames are "
    "not meant to make the shipped weights better (they may score a little lower): for a better model, train "
    "longer on a larger world (next, below)"
)
#: The world of each start: (scenes, frames per scene). Fine-tuning needs few frames; 20 % of the
#: scenes (at least one) are validation.
WORLD_SHIPPED = (10, 8)
WORLD_SCRATCH = (20, 16)
#: Overrides of the fine-tuning run (before the user's ``--set``): a schedule for 100 steps from trained
#: weights: a fortieth of synth-cpu's rate, no warm-up (nothing to warm up from), and the EMA of the
#: weights (decay 0.99, started at the shipped weights) as the result. On the demo's 16 validation
#: frames (seed 0, 2026-11-26, native bf16, one thread, beside other jobs): the shipped weights
#: mIoU 18.81 / geometry IoU 61.91; the former schedule (lr 2e-4, 10 warm-up steps) 18.29 / 62.20
#: (BENCHMARKS.md); lr 5e-5 without warm-up 18.33 / 55.51; this one 18.84 / 59.33.
FINETUNE_SET = ("optim.lr=0.00005", "optim.warmup_steps=0", "optim.ema=true", "optim.ema_decay=0.99")
#: The preset the shipped weights are for.
SHIPPED_PRESET = "synth-cpu"
#: Seconds per synth-cpu training step on an idle 2-core CPU, for the time estimate printed before
#: training: with native bf16 (AVX512-BF16 / AMX; 0.57-0.60 in the loop at commit 13537c8) and
#: without it (AVX2 only, float32: 2.9-3.6 in benchmarks/bench_train_step.py, BENCHMARKS.md).
SECONDS_PER_STEP = 0.6
SECONDS_PER_STEP_FP32 = 3.0


def seconds_per_step() -> tuple[float, str]:
    """The expected seconds per demo step on this CPU and the CPU class it assumes."""
    from occkit.engine.evaluate import cpu_has_native_bf16

    if cpu_has_native_bf16():
        return SECONDS_PER_STEP, "an idle 2-core CPU with native bf16"
    return SECONDS_PER_STEP_FP32, "an idle 2-core CPU without native bf16 (float32)"


def shipped_weights() -> Path:
    """The packaged ``synth-cpu`` weights the demo starts from (a one-line error when absent)."""
    from importlib.resources import files

    path = Path(str(files("occkit") / "weights" / "synth-cpu-demo.safetensors"))
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: occkit's shipped demo weights are missing from this install; "
            "reinstall occkit, or run `occkit demo --from-scratch`"
        )
    return path


def shipped_record() -> dict[str, Any]:
    """How the shipped weights were made (``synth-cpu-demo.json`` beside them; {} when absent)."""
    from occkit.engine.init_from import weights_record

    return weights_record(shipped_weights())


def _made(record: dict[str, Any]) -> str | None:
    """One phrase on how shipped weights were made, from their record (None when it lacks the facts)."""
    if not {"steps", "world_seed", "val_miou"} <= set(record):
        return None
    return (
        f"trained {record['steps']} steps on a world of seed {record['world_seed']}: val mIoU {record['val_miou']} "
        "there"
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="demo", help="output folder (default ./demo)")
    p.add_argument(
        "--from-scratch",
        action="store_true",
        help=f"train {SHIPPED_PRESET} from random weights ({DEMO_STEPS} steps, {WORLD_SCRATCH[0]} scenes x "
        f"{WORLD_SCRATCH[1]} frames) instead of fine-tuning the weights occkit ships (default off: "
        f"fine-tune them {FINETUNE_STEPS} steps on {WORLD_SHIPPED[0]} scenes x {WORLD_SHIPPED[1]} frames)",
    )
    budget = p.add_mutually_exclusive_group()
    budget.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"training steps (default {FINETUNE_STEPS} from the shipped weights, {DEMO_STEPS} with --from-scratch)",
    )
    budget.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="train for this many minutes instead of --steps (the result then depends on the machine's "
        "speed and load; default: off)",
    )
    p.add_argument(
        "--scenes",
        type=int,
        default=None,
        help=f"synthetic scenes (default {WORLD_SHIPPED[0]}, {WORLD_SCRATCH[0]} with --from-scratch; 20%% are "
        "validation)",
    )
    p.add_argument(
        "--frames",
        type=int,
        default=None,
        help=f"frames per scene (default {WORLD_SHIPPED[1]}, {WORLD_SCRATCH[1]} with --from-scratch)",
    )
    p.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        default=(192, 512),
        metavar=("H", "W"),
        help="camera images (default 192 512: synth-cpu trains on the 96x512 band around the horizon)",
    )
    p.add_argument("--workers", type=int, default=2, help="processes generating the world (default 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the world and of training (default 0)")
    p.add_argument(
        "--config",
        default=SHIPPED_PRESET,
        help=f"preset or YAML to train (default {SHIPPED_PRESET}; another one needs --from-scratch)",
    )
    add_overrides(p, "config overrides (repeatable)")
    p.add_argument("--pictures", type=int, default=3, help="validation frames to draw (default 3)")


def _stage(i: int, text: str) -> None:
    print(f"\n[{i}/4] {text}", flush=True)


#: Steps between two training checkpoints: what a stopped demo can lose.
CKPT_EVERY = 50
CKPT_KEPT = "training's checkpoints"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def generate_world(data: Path, synth: Any) -> None:
    """``generate_dataset``'s world, resumable: a finished scene's record is kept in
    ``data/.scenes/`` until ``annotations.json`` is written, so a stopped generation resumes with
    the scenes it lacks; one line per scene with the time left."""
    from occkit.data.synth.writer import generate_dataset

    generate_dataset(data, synth, progress=True, resume=True)


REPORT_FILES = ("report.md", "report.json")


def _legacy_demo(folder: Path) -> bool:
    """A demo folder of an occkit that left no record: its options file, or a world stopped half-way."""
    return (folder / "demo.json").is_file() or (folder / "data" / ".scenes").is_dir()


def check_demo_out(out: Path) -> None:
    """Refuse, before any work, an ``--out`` that is not the demo's own (a new or empty folder, or an
    earlier demo's, which it resumes) and a report there that the demo did not write."""
    from occkit.outputs import FILES_RECORD, check_output_file, check_output_folder, read_output_record

    state = check_output_folder(out, "demo", resume=True, legacy=_legacy_demo)
    legacy = state == "own" and read_output_record(out) is None and not (out / FILES_RECORD).exists()
    for name in REPORT_FILES:
        if not legacy:
            check_output_file(out / name, command="demo")


def own_world(out: Path, world: dict[str, Any]) -> bool:
    """Whether ``out/data`` holds the world of these settings (reused); a world, finished or stopped
    half-way, of other settings (or of unknown ones) is removed here, to be generated again."""
    import json

    from occkit.outputs import read_output_record

    data = out / "data"
    earlier = (read_output_record(out) or {}).get("world")
    if earlier is None and (out / "demo.json").is_file():  # an older demo: its options hold the world's
        try:
            opts = json.loads((out / "demo.json").read_text(encoding="utf-8"))
            earlier = {k: opts.get(k) for k in world}
        except (OSError, ValueError, AttributeError):
            earlier = None
    if earlier == world:
        return (data / "annotations.json").is_file()
    if data.exists():
        diff = (
            ", ".join(f"{k} {earlier.get(k)} -> {v}" for k, v in world.items() if earlier.get(k) != v)
            if earlier
            else ""
        )
        print(f"replacing the earlier demo world in {data} (" + (diff or "its settings unknown") + ")", flush=True)
        shutil.rmtree(data)
    return False


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    kept: list[str] = []  # what a stop keeps, for the one line it prints
    try:
        return _run(args, out, kept)
    except KeyboardInterrupt:
        from occkit.commands.checks import typed_command
        from occkit.engine.checkpoint import latest_checkpoint

        kept[:] = [k for k in kept if not (k.startswith(CKPT_KEPT) and latest_checkpoint(out / "run") is None)] + (
            [f"no training checkpoint yet (the first is saved at step {CKPT_EVERY}: training starts again)"]
            if any(k.startswith(CKPT_KEPT) for k in kept) and latest_checkpoint(out / "run") is None
            else []
        )
        print(
            f"\nocckit demo: stopped; kept {', '.join(kept) or 'nothing yet'}; the same command resumes: "
            f"{typed_command()}",
            flush=True,
        )
        return 130


def _run(args: argparse.Namespace, out: Path, kept: list[str]) -> int:
    import json
    from functools import partial

    from occkit.data.occ3d import Occ3DDataset
    from occkit.data.synth import SynthConfig
    from occkit.engine.checkpoint import latest_checkpoint
    from occkit.engine.data import eval_batches
    from occkit.engine.evaluate import run_amp, score_frames, write_prediction_folder
    from occkit.engine.train import train
    from occkit.experiment import (
        base_dataset,
        build_dataset,
        fit_to_format,
        load_checkpoint_method,
        load_experiment,
        prepare_run,
    )
    from occkit.fileio import write_json_atomic
    from occkit.metrics.rayiou import RayIoUMetric, rayiou_origins
    from occkit.outputs import mark_output

    shipped = not args.from_scratch
    if shipped and args.config != SHIPPED_PRESET:
        raise ValueError(
            f"--config {args.config}: the shipped weights are {SHIPPED_PRESET}'s; add --from-scratch to train "
            "another preset from random weights"
        )
    # the preset against the world the demo writes (Occ3D's layout), before minutes of generating it:
    # a preset of another format (surroundocc-cpu) is one line naming the key and the format
    from occkit.config import ConfigError
    from occkit.formats import default_format

    try:
        fit_to_format(load_experiment(args.config, list(args.set)), out / "data", fmt=default_format())
    except ConfigError as e:
        raise ConfigError(
            f"--config {args.config}: {e}; occkit demo writes its world in {default_format().display_name}'s layout "
            "(a preset of another format trains on occkit synth --format NAME's world with occkit train)"
        ) from e
    world = WORLD_SHIPPED if shipped else WORLD_SCRATCH
    args.scenes = world[0] if args.scenes is None else args.scenes
    args.frames = world[1] if args.frames is None else args.frames
    if args.steps is None:
        args.steps = FINETUNE_STEPS if shipped else DEMO_STEPS
    if args.minutes is not None and args.minutes <= 0:
        raise ValueError(f"--minutes must be > 0, got {args.minutes}")
    if args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    start_set = [f"train.init_from={shipped_weights()}", *FINETUNE_SET] if shipped else []
    world_key = {"scenes": args.scenes, "frames": args.frames, "seed": args.seed, "image_size": list(args.image_size)}
    check_demo_out(out)  # a folder of the user's (even one holding only a data/) is never written into
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    timings: dict[str, float] = {}

    # 1. the world ---------------------------------------------------------------------------
    data = out / "data"
    synth = SynthConfig(
        scenes=args.scenes, frames=args.frames, seed=args.seed, image_size=tuple(args.image_size), workers=args.workers
    )
    t0 = time.perf_counter()
    reused = own_world(out, world_key)  # a world of other settings is replaced, never reported as this one's
    mark_output(out, "demo", world=world_key)
    if reused:
        _stage(1, f"reusing the synthetic world in {data}")
    else:
        _stage(
            1,
            f"generating a synthetic world: {args.scenes} scenes x {args.frames} frames, 6 cameras at "
            f"{args.image_size[0]}x{args.image_size[1]}, LiDAR, occupancy -> {data}",
        )
        kept.append(f"the world's finished scenes in {data}")
        generate_world(data, synth)
    kept[:] = [f"the world in {data}"]
    timings["generate"] = time.perf_counter() - t0

    # 2. training ----------------------------------------------------------------------------
    cfg = fit_to_format(load_experiment(args.config, [f"train.seed={args.seed}", *start_set, *args.set]), data)
    train_set = build_dataset(cfg, data, cfg.data.train_split, train=True)
    val_set = build_dataset(cfg, data, cfg.data.val_split)
    if len(train_set) == 0 or len(val_set) == 0:
        raise ValueError(
            f"{data}: need frames in both splits (train {len(train_set)}, val {len(val_set)}); use more --scenes"
        )
    if shipped:
        how = _made(shipped_record())
        verb = f"fine-tuning the {args.config} weights occkit ships" + (f" ({how})" if how else "")
    else:
        verb = f"training {args.config} from random weights"
    if args.minutes is not None:
        _stage(2, f"{verb} for {args.minutes:g} minutes on {len(train_set)} frames")
        cfg.optim.schedule = "time"  # the cosine fits the budget whatever this machine's speed
        cfg.optim.max_steps = 10**6
        cfg.train.max_minutes = args.minutes
    else:
        sps, cpu = seconds_per_step()
        _stage(
            2,
            f"{verb} for {args.steps} steps on {len(train_set)} frames: about "
            f"{_minutes(args.steps * sps)} on {cpu} "
            f"({sps} s per step; the bar shows this machine's estimate)",
        )
        cfg.optim.schedule = "steps"
        cfg.optim.max_steps = args.steps
        cfg.train.max_minutes = 0
    cfg.train.val_every = 0  # validate once, at the end (stage 3)
    cfg.train.ckpt_every = CKPT_EVERY
    t0 = time.perf_counter()
    # the options that make the run: the same ones again resume it, other ones retrain
    options = {
        "config": args.config,
        "from_scratch": args.from_scratch,
        "set": list(args.set),
        "seed": args.seed,
        "steps": args.steps,
        "minutes": args.minutes,
        "scenes": args.scenes,
        "frames": args.frames,
        "image_size": list(args.image_size),
    }
    run_dir, record = out / "run", out / "demo.json"
    earlier = json.loads(record.read_text(encoding="utf-8")) if record.is_file() else None
    resume = earlier == options and latest_checkpoint(run_dir) is not None
    if run_dir.exists() and not resume:
        print(
            f"replacing the earlier demo run in {run_dir}"
            + (" (other options)" if earlier not in (None, options) else ""),
            flush=True,
        )
        shutil.rmtree(run_dir)
    write_json_atomic(record, options)
    kept.append(f"{CKPT_KEPT} in {run_dir / 'checkpoints'} (every {CKPT_EVERY} steps)")
    cfg, method = prepare_run(cfg, train_set)
    result = train(cfg, run_dir, train_set, None, method, resume=resume)
    if result.checkpoint is None:  # resumed a run that had finished: nothing left to train
        result.checkpoint = latest_checkpoint(run_dir)
    kept[-1] = f"the trained run in {run_dir}"
    timings["train"] = time.perf_counter() - t0

    # 3. evaluation --------------------------------------------------------------------------
    _stage(3, f"evaluating on {len(val_set)} validation frames (mIoU with the camera mask, RayIoU)")
    t0 = time.perf_counter()
    method, cfg, ckpt, device = load_checkpoint_method(result.checkpoint, cfg.train.device)
    loader = eval_batches(val_set, 1)
    base = base_dataset(val_set)
    amp = run_amp(cfg, device)
    try:
        scores = score_frames(
            method,
            cfg,
            val_set,
            loader,
            device,
            amp,
            rayiou=RayIoUMetric(num_classes=cfg.model.num_classes),
            rayiou_origins=partial(rayiou_origins, base),
            progress=True,
        )
    except ValueError as e:  # e.g. no LiDAR poses: report mIoU alone
        print(f"RayIoU unavailable ({e}); mIoU only", flush=True)
        scores = score_frames(method, cfg, val_set, loader, device, amp, progress=True)
    from occkit.engine.checkpoint import checkpoint_identity

    provenance = {
        **checkpoint_identity(Path(ckpt)),
        "data": str(data.resolve()),
        "split": cfg.data.val_split,
        "made_by": "occkit demo",
    }
    n = write_prediction_folder(
        method, loader, out / "predictions", device, provenance, amp, overwrite=True, total=len(loader)
    )
    start_scores = None
    if cfg.train.init_from:  # the start too, on the same frames: what the fine-tuning changed
        from occkit.engine.init_from import load_matching

        load_matching(method, cfg.train.init_from)
        start_scores = score_frames(method, cfg, val_set, loader, device, amp)
    timings["evaluate"] = time.perf_counter() - t0
    print(
        f"mIoU {scores['miou']:.2f}  geometry IoU {scores['geometry_iou']:.2f}"
        + (f"  RayIoU {scores['rayiou']:.2f}" if "rayiou" in scores else "")
        + f"  ({n} predictions written)",
        flush=True,
    )
    if start_scores is not None:
        print(
            f"(the shipped weights before fine-tuning, same frames: mIoU {start_scores['miou']:.2f}  geometry IoU "
            f"{start_scores['geometry_iou']:.2f}); {FINETUNE_NOTE}",
            flush=True,
        )

    # 4. pictures and report -----------------------------------------------------------------
    _stage(4, f"drawing {args.pictures} predictions beside their ground truth; writing {out / 'report.md'}")
    t0 = time.perf_counter()
    raw = Occ3DDataset(data, cfg.data.val_split, cameras=tuple(cfg.data.cameras), load_extras=True)
    pictures = _draw(raw, out, args.pictures)
    timings["pictures"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start
    _report(out, args, synth, cfg, result, scores, pictures, timings, len(train_set), len(val_set), start_scores)
    print(f"\ndone in {timings['total'] / 60:.1f} min: {out / 'report.md'}", flush=True)
    print("\n".join(next_steps(out, result.checkpoint)), flush=True)
    return 0


def next_steps(out: Path, checkpoint: Any) -> list[str]:
    """What to do after the demo: the commands that look further, score, and train a run of one's own
    (printed last, and the report's last section)."""
    import shlex

    q = shlex.quote
    data, pred = str(out / "data"), str(out / "predictions")
    return [
        "next:",
        f"  occkit show {q(data)} --pred {q(pred)} --split val --mask camera   # another frame: --list, --token",
        f"  occkit view {q(data)} --pred {q(pred)}                             # in 3D, in the browser",
        f"  occkit eval --pred {q(pred)} --gt {q(data)}                         # the scores again, per class",
        f"  occkit train synth-cpu --data {q(data)} --out runs/mine --minutes 30  # a run of your own",
        f"  occkit predict --ckpt {q(str(checkpoint))} --data YOUR_DATA --out YOUR_PREDICTIONS  # this model",
        "  docs: README.md (datasets, presets, methods), docs/DATASET.md (your own data)",
    ]


def _draw(raw, out: Path, count: int) -> list[Path]:
    """Pictures of evenly spread validation frames (prediction beside ground truth)."""
    from occkit.fileio import load_npz
    from occkit.viz.draw import save_png
    from occkit.viz.figure import compose_frame_figure

    pics = []
    n = len(raw)
    picks = sorted({round(i * (n - 1) / max(1, count - 1)) for i in range(count)}) if count > 0 and n > 0 else []
    for i in picks:
        sample = raw[i]
        pred = load_npz(out / "predictions" / f"{sample.token}.npz", keys=("semantics",))["semantics"]
        image = compose_frame_figure(sample, pred, mask="camera", mask_mode="grey", panel_height=300)
        pics.append(save_png(out / "pictures" / f"{sample.scene}_{sample.token[:8]}.png", image))
    return pics


def seconds_per_trained_step(result: Any) -> float:
    """Seconds of training per step over the whole run: its training seconds (which a resumed run
    carries on from its checkpoint) over its steps, not over the losses of this invocation alone."""
    return result.train_seconds / max(1, result.step)


def logged_losses(path: Path) -> list[tuple[int, float]]:
    """``(step, loss)`` of a run's ``train.jsonl`` (empty when missing or unreadable)."""
    import json

    out = []
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            if isinstance(r, dict) and isinstance(r.get("loss"), (int, float)):
                out.append((int(r.get("step", 0)), float(r["loss"])))
    except (OSError, ValueError):
        return []
    return out


def _earlier_timings(out: Path) -> dict[str, float] | None:
    """The stage times the demo's earlier ``report.json`` recorded when it trained, or None."""
    import json

    try:
        rec = json.loads((out / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    t = rec.get("trained_timings_s") or rec.get("timings_s") if isinstance(rec, dict) else None
    return {k: float(v) for k, v in t.items() if isinstance(v, (int, float))} if isinstance(t, dict) else None


def _fmt_min(v: float | None) -> str:
    return "n/a" if v is None else f"{v / 60:.1f}"


def _fmt(v: Any) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"


def _report(
    out: Path,
    args,
    synth,
    cfg,
    result,
    scores: dict,
    pictures: list[Path],
    timings: dict,
    n_train: int,
    n_val: int,
    start_scores: dict | None = None,
) -> None:
    from occkit.fileio import write_text_atomic
    from occkit.outputs import record_output_file, write_json_output

    losses, of_what = result.losses, "of this invocation"
    earlier = _earlier_timings(out) if not losses else None  # a finished run resumed: what its training took
    if not losses:  # the run's own log says how its loss went
        losses, of_what = logged_losses(out / "run" / "train.jsonl"), "logged steps of the run, run/train.jsonl"
    how = _made(shipped_record()) if cfg.train.init_from else None
    first = sum(v for _, v in losses[:10]) / max(1, len(losses[:10]))
    last = sum(v for _, v in losses[-10:]) / max(1, len(losses[-10:]))
    lines = [
        "# occkit demo",
        "",
        f"A synthetic world of {synth.scenes} scenes x {synth.frames} frames (6 cameras at "
        f"{synth.image_size[0]}x{synth.image_size[1]}, seed {synth.seed}): {n_train} training and {n_val} validation "
        "frames.",
        f"The `{args.config}` preset ({cfg.model.backbone}, {cfg.model.head} head, input "
        f"{cfg.data.image_aug.out_hw[0]}x{cfg.data.image_aug.out_hw[1]}) "
        + (
            f"started from occkit's shipped weights ({Path(cfg.train.init_from).name}"
            + (f": {how}; made by `python tools/make_demo_weights.py`" if how else "")
            + ") and fine-tuned"
            if cfg.train.init_from
            else "trained from random weights"
        )
        + f" for {result.step} steps "
        f"({result.train_seconds / 60:.1f} min of training, {seconds_per_trained_step(result):.2f} s per step).",
        (
            f"Mean training loss: {first:.3f} over the first 10 steps, {last:.3f} over the last 10 ({of_what})."
            if losses
            else "No step trained in this invocation (a finished run resumed): its losses are in run/train.jsonl."
        ),
        "",
        "## Validation (Occ3D metrics, percent)",
        "",
        "| metric | value |",
        "|---|---|",
        f"| mIoU (camera mask) | {_fmt(scores['miou'])} |",
        f"| geometry IoU (camera mask) | {_fmt(scores['geometry_iou'])} |",
        f"| RayIoU | {_fmt(scores.get('rayiou'))} |",
        f"| frames | {scores['frames']} |",
        *(
            [
                "| mIoU / geometry IoU of the start (the shipped weights before fine-tuning) | "
                f"{_fmt(start_scores['miou'])} / "
                f"{_fmt(start_scores['geometry_iou'])} |"
            ]
            if start_scores is not None
            else []
        ),
        *(["", f"Note: {FINETUNE_NOTE}."] if start_scores is not None else []),
        "",
        "Per-class IoU (camera mask; n/a = class absent from both ground truth and prediction):",
        "",
        "| class | IoU |",
        "|---|---|",
        *[f"| {k} | {_fmt(v)} |" for k, v in scores["iou"].items()],
        "",
        "## Pictures (ground truth above, prediction below; slate blue-grey = outside the camera mask)",
        "",
        *[f"![{p.stem}]({p.relative_to(out).as_posix()})" for p in pictures],
        "",
        "## Time",
        "",
        *(
            ["| stage | minutes |", "|---|---|", *[f"| {k} | {v / 60:.1f} |" for k, v in timings.items()]]
            if not earlier
            else [
                "| stage | minutes (this invocation: a finished run resumed) | minutes (the invocation that trained) |",
                "|---|---|---|",
                *[
                    f"| {k} | {timings.get(k, 0.0) / 60:.1f} | {_fmt_min(earlier.get(k))} |"
                    for k in dict.fromkeys([*earlier, *timings])
                ],
            ]
        ),
        "",
        f"Checkpoint: `{result.checkpoint}`. Logs: `{out / 'run'}` (TensorBoard: `tensorboard --logdir "
        f"{out / 'run' / 'tb'}`).",
        "",
        "## Next",
        "",
        "```",
        *[line.strip() for line in next_steps(out, result.checkpoint)[1:]],
        "```",
        "",
    ]
    record_output_file(write_text_atomic(out / "report.md", "\n".join(lines)), "demo")
    write_json_output(
        out / "report.json",
        {
            "scores": {k: v for k, v in scores.items() if k != "rayiou_detail"},
            "start_scores": None
            if start_scores is None
            else {k: v for k, v in start_scores.items() if k != "rayiou_detail"},
            "steps": result.step,
            "train_minutes": result.train_seconds / 60,
            "timings_s": timings,
            "trained_timings_s": earlier if earlier else timings,  # kept across reruns of a finished run
            "pictures": [str(p) for p in pictures],
        },
        "demo",
    )
