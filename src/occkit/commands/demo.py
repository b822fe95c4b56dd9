"""``occkit demo [--out DIR]``: the main job on a laptop, end to end, with progress throughout.

1. generate a small synthetic world (``DIR/data``; reused when already there),
2. train ``synth-cpu`` on it for a fixed number of steps (``DIR/run``), starting (``--start``) from
   - ``backbone`` (the default): the image backbone (ResNet-18) of the ``synth-cpu`` network that occkit
     ships (``occkit/weights/synth-cpu-demo.safetensors``: trained 3000 steps on a synthetic world of
     seed 1000, a seed the demo does not generate, by ``tools/make_demo_weights.py``), written to
     ``DIR/backbone.safetensors`` and read through ``model.backbone_weights``, under a fresh, randomly
     initialised 3D network (neck, depth net, lift, 3D encoder, head): 100 steps. This is how occkit's
     methods start (a pretrained 2D backbone, docs/design.md §8), and what the 100 steps do is seen:
     the 3D network learns the scene from nothing;
   - ``shipped``: the whole shipped network, fine-tuned 100 steps (a few steps on a few frames do not make
     it better: it shows the loop at work);
   - ``scratch`` (``--from-scratch``): random weights, 900 steps on a larger world,
3. evaluate the trained model on the validation scenes: mIoU (camera mask), geometry IoU, RayIoU; then its
   start on the same frames (before training); from the backbone, also the whole shipped network, for
   reference (what longer training reaches),
4. write Occ3D submission files of both (``DIR/predictions``, ``DIR/predictions_start``), pictures of the
   same frames before and after training beside their ground truth (``DIR/pictures``) and a short report
   (``DIR/report.md``), then ``next:`` commands that run as printed (the ``occkit`` that is running: a
   bare ``occkit`` only when that is the one on PATH).

Measured (2026-11-27, the 2-core VM with native bf16, busy with other jobs: load 4-6; ``occkit demo --out DIR``
into a new folder): before training mIoU 0.01, geometry IoU 6.48, RayIoU 0.06; after 100 steps 8.86, 56.29,
4.32 on the same 16 validation frames; the whole shipped network 18.81 / 61.91 there. The same figures in two
more runs (the world reused; a finished run resumed). On that busy machine 11.7 min in all: world 6.0, 100 steps
4.1 (2.45 s per step), evaluation 1.3, pictures 0.3; on an idle one a step takes about 0.6 s (BENCHMARKS.md).

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from occkit.commands.options import add_overrides

#: Training steps of ``--from-scratch``: what 9 minutes gave on an idle 2-core CPU with native bf16
#: (900-950 steps at commit 13537c8, BENCHMARKS.md), fixed so that a busy machine trains the same
#: model, only slower.
DEMO_STEPS = 900
#: Fine-tuning steps from the whole shipped network (``--start shipped``).
FINETUNE_STEPS = 100
#: Training steps from the shipped image backbone with a fresh 3D network (``--start backbone``, the default),
#: with the preset's own schedule (lr 2e-3 after 50 warm-up steps, cosine to step 100). ``occkit demo --out DIR``
#: on its 16 validation frames (seed 0; 2026-11-27; the 2-core VM with native bf16, busy: load 4-6 from other
#: jobs): before training mIoU 0.01 / geometry IoU 6.48 / RayIoU 0.06, after 100 steps 8.86 / 56.29 / 4.32 (the
#: same in three runs); the whole shipped network 18.81 / 61.91 on those frames.
BACKBONE_STEPS = 100
#: Where the demo's run starts (``--start``): the image backbone of the shipped weights under a fresh 3D network
#: (the default: the task occkit's methods start from, a pretrained 2D backbone), the whole shipped network
#: (fine-tuned), or random weights (``--from-scratch``).
STARTS = ("backbone", "shipped", "scratch")
#: The shipped backbone as ``model.backbone_weights`` reads it (a timm ``state_dict``), written in the demo folder.
BACKBONE_FILE = "backbone.safetensors"
#: The prefix of the backbone's tensors in the shipped weights (the ``supervised`` method's names).
SHIPPED_BACKBONE_PREFIX = "model.backbone.body."
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
#: What each start is, in the report.
START_TEXT = {
    "backbone": "the image backbone of occkit's shipped weights under a fresh (randomly initialised) 3D network",
    "shipped": "occkit's shipped weights, whole",
    "scratch": "random weights",
}
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


def write_shipped_backbone(path: Path) -> Path:
    """The image backbone of the shipped weights (their ``model.backbone.body.*`` tensors, as they are: float16)
    as a timm ``state_dict`` file that ``model.backbone_weights`` loads, with the backbone's name in its metadata;
    written atomically (again on each run: the shipped file is the source)."""
    from safetensors.torch import load_file, save

    from occkit.fileio import write_bytes_atomic

    src = shipped_weights()
    n = len(SHIPPED_BACKBONE_PREFIX)
    body = {k[n:]: v.contiguous() for k, v in load_file(str(src)).items() if k.startswith(SHIPPED_BACKBONE_PREFIX)}
    if not body:
        raise ValueError(f"{src}: no backbone tensors ({SHIPPED_BACKBONE_PREFIX}*) in occkit's shipped weights")
    name = (shipped_record().get("model") or {}).get("backbone")
    meta = {"source": src.name, **({"backbone": str(name)} if name else {})}
    return write_bytes_atomic(path, save(body, metadata=meta))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="demo", help="output folder (default ./demo)")
    p.add_argument(
        "--start",
        choices=STARTS,
        default=None,
        help=f"where training starts: backbone = the image backbone of the {SHIPPED_PRESET} weights occkit ships "
        f"under a fresh 3D network ({BACKBONE_STEPS} steps); shipped = the whole shipped network, fine-tuned "
        f"({FINETUNE_STEPS} steps); scratch = random weights (as --from-scratch). Default backbone",
    )
    p.add_argument(
        "--from-scratch",
        action="store_true",
        help=f"train {SHIPPED_PRESET} from random weights ({DEMO_STEPS} steps, {WORLD_SCRATCH[0]} scenes x "
        f"{WORLD_SCRATCH[1]} frames; --start scratch) instead of from the weights occkit ships (default off: "
        f"their backbone, {BACKBONE_STEPS} steps on {WORLD_SHIPPED[0]} scenes x {WORLD_SHIPPED[1]} frames)",
    )
    budget = p.add_mutually_exclusive_group()
    budget.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"training steps (default {BACKBONE_STEPS} from the shipped backbone, {FINETUNE_STEPS} from the whole "
        f"shipped network, {DEMO_STEPS} with --from-scratch)",
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
        help=f"preset or YAML to train (default {SHIPPED_PRESET}; another one needs --from-scratch: the shipped "
        "weights are synth-cpu's)",
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
    from occkit.worlds.driving.writer import generate_dataset

    generate_dataset(data, synth, progress=True, resume=True)


REPORT_FILES = ("report.md", "report.json")
#: The start's predictions on the validation frames (beside ``predictions``, the trained model's).
START_PREDICTIONS = "predictions_start"


def _legacy_demo(folder: Path) -> bool:
    """A demo folder of an occkit that left no record: its options file, or a world stopped half-way."""
    return (folder / "demo.json").is_file() or (folder / "data" / ".scenes").is_dir()


def check_demo_out(out: Path) -> None:
    """Refuse, before any work, an ``--out`` that is not the demo's own (a new or empty folder, or an
    earlier demo's, which it resumes) and a report there that the demo did not write."""
    from occkit.output_folders import check_output_folder
    from occkit.outputs import FILES_RECORD, check_output_file, read_output_record

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


@dataclass
class _Plan:
    """What the options make of a demo, checked before any work: where training starts, the overrides of
    that start, the world's settings and where the shipped backbone is written."""

    start: str
    start_set: list[str]
    world_key: dict[str, Any]
    backbone: Path

    @property
    def shipped(self) -> bool:
        """Whether the run starts from the shipped weights (their world and preset)."""
        return self.start != "scratch"


@dataclass
class _Trained:
    """Stage 2's result: the run's config, its datasets, the training result and the start's weights
    (None from the whole shipped network: its own file)."""

    cfg: Any
    train_set: Any
    val_set: Any
    result: Any
    start_state: dict[str, Any] | None


@dataclass
class _Scored:
    """Stage 3's result: the trained model's scores, its start's and (from the backbone) the whole shipped
    network's on the same frames, the config the checkpoint holds, what the start is and the predictions
    written."""

    cfg: Any
    scores: dict[str, Any]
    start_scores: dict[str, Any]
    shipped_scores: dict[str, Any] | None
    what: str
    written: int


def _run(args: argparse.Namespace, out: Path, kept: list[str]) -> int:
    from occkit.locks import locked_output

    plan = _plan(args, out)
    check_demo_out(out)  # a folder of the user's (even one holding only a data/) is never written into
    with locked_output(out, "demo"):  # a second demo, or a synth, writing --out now is refused, naming it
        check_demo_out(out)  # again under the lock: what a command that just ended left there
        out.mkdir(parents=True, exist_ok=True)
        t_start = time.perf_counter()
        timings: dict[str, float] = {}
        data, synth = _world_stage(args, out, plan, kept, timings)
        trained = _train_stage(args, out, data, plan, kept, timings)
        scored = _evaluate_stage(args, out, data, plan, trained, timings)
        _pictures_and_report(args, out, data, synth, plan, trained, scored, timings, t_start)
    return 0


def _plan(args: argparse.Namespace, out: Path) -> _Plan:
    """The options checked and completed (``args.scenes``, ``frames``, ``steps`` take their defaults), the
    preset against the world the demo writes, before minutes of generating it."""
    from occkit.config import ConfigError
    from occkit.experiment import fit_to_format, load_experiment
    from occkit.formats import default_format

    if args.from_scratch and args.start not in (None, "scratch"):
        raise ValueError(f"--from-scratch and --start {args.start}: two starts; give one")
    start = "scratch" if args.from_scratch else (args.start or "backbone")
    shipped = start != "scratch"  # the world and the preset of the shipped weights
    if shipped and args.config != SHIPPED_PRESET:
        raise ValueError(
            f"--config {args.config}: the shipped weights are {SHIPPED_PRESET}'s; add --from-scratch to train "
            "another preset from random weights"
        )
    # the preset against the world the demo writes (the default format's layout): a preset of another
    # format (surroundocc-cpu) is one line naming the key and the format
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
        args.steps = {"backbone": BACKBONE_STEPS, "shipped": FINETUNE_STEPS, "scratch": DEMO_STEPS}[start]
    if args.minutes is not None and args.minutes <= 0:
        raise ValueError(f"--minutes must be > 0, got {args.minutes}")
    if args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    backbone = (out / BACKBONE_FILE).resolve()  # absolute: the run's config names it, read from anywhere
    start_set = {
        "backbone": [f"model.backbone_weights={backbone}"],
        "shipped": [f"train.init_from={shipped_weights()}", *FINETUNE_SET],
        "scratch": [],
    }[start]
    world_key = {"scenes": args.scenes, "frames": args.frames, "seed": args.seed, "image_size": list(args.image_size)}
    return _Plan(start, start_set, world_key, backbone)


def _world_stage(
    args: argparse.Namespace, out: Path, plan: _Plan, kept: list[str], timings: dict[str, float]
) -> tuple[Path, Any]:
    """1. the world: reused when ``out/data`` holds this one, else generated (resumable); returns its
    folder and settings."""
    from occkit.outputs import mark_output
    from occkit.worlds.driving import SynthConfig

    data = out / "data"
    synth = SynthConfig(
        scenes=args.scenes, frames=args.frames, seed=args.seed, image_size=tuple(args.image_size), workers=args.workers
    )
    t0 = time.perf_counter()
    reused = own_world(out, plan.world_key)  # a world of other settings is replaced, never reported as this one's
    mark_output(out, "demo", world=plan.world_key)
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
    return data, synth


def _train_verb(args: argparse.Namespace, start: str, shipped: bool) -> str:
    """What stage 2 says it does, by the start."""
    how = _made(shipped_record()) if shipped else None
    if start == "backbone":
        return f"training {args.config}'s 3D network, fresh, on the image backbone of the weights occkit ships" + (
            f" ({how})" if how else ""
        )
    if start == "shipped":
        return f"fine-tuning the {args.config} weights occkit ships" + (f" ({how})" if how else "")
    return f"training {args.config} from random weights"


def _set_budget(args: argparse.Namespace, cfg: Any, verb: str, frames: int) -> None:
    """The run's budget (``--minutes`` or ``--steps``) into ``cfg``, said with stage 2's line."""
    if args.minutes is not None:
        _stage(2, f"{verb} for {args.minutes:g} minutes on {frames} frames")
        cfg.optim.schedule = "time"  # the cosine fits the budget whatever this machine's speed
        cfg.optim.max_steps = 10**6
        cfg.train.max_minutes = args.minutes
    else:
        sps, cpu = seconds_per_step()
        _stage(
            2,
            f"{verb} for {args.steps} steps on {frames} frames: about "
            f"{_minutes(args.steps * sps)} on {cpu} "
            f"({sps} s per step; the bar shows this machine's estimate)",
        )
        cfg.optim.schedule = "steps"
        cfg.optim.max_steps = args.steps
        cfg.train.max_minutes = 0
    cfg.train.val_every = 0  # validate once, at the end (stage 3)
    cfg.train.ckpt_every = CKPT_EVERY


def _train_stage(
    args: argparse.Namespace, out: Path, data: Path, plan: _Plan, kept: list[str], timings: dict[str, float]
) -> _Trained:
    """2. training: resumed from the newest checkpoint when the options are those of the stopped run
    (``out/demo.json``), else from the start."""
    import json

    from occkit.engine.checkpoint import latest_checkpoint
    from occkit.engine.train import train
    from occkit.experiment import build_dataset, fit_to_format, load_experiment, prepare_run
    from occkit.fileio import write_json_atomic

    start = plan.start
    if start == "backbone":
        write_shipped_backbone(plan.backbone)
    cfg = fit_to_format(load_experiment(args.config, [f"train.seed={args.seed}", *plan.start_set, *args.set]), data)
    train_set = build_dataset(cfg, data, cfg.data.train_split, train=True)
    val_set = build_dataset(cfg, data, cfg.data.val_split)
    if len(train_set) == 0 or len(val_set) == 0:
        raise ValueError(
            f"{data}: need frames in both splits (train {len(train_set)}, val {len(val_set)}); use more --scenes"
        )
    _set_budget(args, cfg, _train_verb(args, start, plan.shipped), len(train_set))
    t0 = time.perf_counter()
    # the options that make the run: the same ones again resume it, other ones retrain
    options = {
        "config": args.config,
        "start": start,
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
    cfg, method = prepare_run(cfg, train_set)  # seeded: the same start on every invocation, resumed or not
    # the start, scored on the validation frames after training (the shipped network's start: its own file)
    start_state = None if start == "shipped" else {k: v.detach().clone() for k, v in method.state_dict().items()}
    result = train(cfg, run_dir, train_set, None, method, resume=resume)
    if result.checkpoint is None:  # resumed a run that had finished: nothing left to train
        result.checkpoint = latest_checkpoint(run_dir)
    kept[-1] = f"the trained run in {run_dir}"
    timings["train"] = time.perf_counter() - t0
    return _Trained(cfg, train_set, val_set, result, start_state)


def _evaluate_stage(
    args: argparse.Namespace, out: Path, data: Path, plan: _Plan, trained: _Trained, timings: dict[str, float]
) -> _Scored:
    """3. evaluation: the trained model, then its start on the same frames (from the backbone, also the
    whole shipped network, for reference); the predictions of both written."""
    from occkit.engine.checkpoint import checkpoint_identity
    from occkit.engine.data import eval_batches
    from occkit.engine.evaluate import run_amp, score_frames, write_prediction_folder
    from occkit.engine.init_from import load_matching
    from occkit.experiment import base_dataset, load_checkpoint_method

    start, val_set, result = plan.start, trained.val_set, trained.result
    what = {
        "backbone": "the fresh 3D network on the shipped backbone",
        "shipped": "the shipped weights",
        "scratch": "random weights",
    }[start]
    _stage(
        3,
        f"evaluating on {len(val_set)} validation frames (mIoU with the camera mask, RayIoU): the trained model, "
        f"then its start ({what}) on the same frames",
    )
    t0 = time.perf_counter()
    # the checkpoint holds the whole network: the backbone file is not read again
    method, cfg, ckpt, device = load_checkpoint_method(
        result.checkpoint,
        trained.cfg.train.device,
        overrides=["model.backbone_weights=null"] if start == "backbone" else None,
    )
    loader = eval_batches(val_set, 1)
    amp = run_amp(cfg, device)

    def score() -> dict[str, Any]:
        try:
            return score_frames(method, cfg, val_set, loader, device, amp, metrics=("miou", "rayiou"), progress=True)
        except ValueError as e:  # e.g. no LiDAR poses: report mIoU alone
            print(f"RayIoU unavailable ({e}); mIoU only", flush=True)
            return score_frames(method, cfg, val_set, loader, device, amp, progress=True)

    provenance = {
        **checkpoint_identity(Path(ckpt)),
        "data": str(data.resolve()),
        "split": cfg.data.val_split,
        "made_by": "occkit demo",
    }
    scores = score()
    frames = base_dataset(val_set)  # its ground truth's fingerprint goes into provenance.json
    n = write_prediction_folder(
        method, loader, out / "predictions", device, provenance, amp, overwrite=True, total=len(loader), dataset=frames
    )
    if start == "shipped":
        load_matching(method, cfg.train.init_from)
    else:
        method.load_state_dict(trained.start_state)
    start_scores = score()
    write_prediction_folder(
        method,
        loader,
        out / START_PREDICTIONS,
        device,
        {  # not the checkpoint's: the network the run started from, before its first step
            "data": provenance["data"],
            "split": provenance["split"],
            "made_by": f"occkit demo: the start of its training ({what}), before step 1",
            "run": str((out / "run").resolve()),
            "train_seed": cfg.train.seed,
        },
        amp,
        overwrite=True,
        total=len(loader),
        dataset=frames,
    )
    shipped_scores = None
    if start == "backbone":  # the whole network occkit ships, for reference: what training longer reaches
        load_matching(method, shipped_weights())
        shipped_scores = score_frames(method, cfg, val_set, loader, device, amp)
    timings["evaluate"] = time.perf_counter() - t0
    for line in score_lines(start, what, result.step, scores, start_scores, shipped_scores, n):
        print(line, flush=True)
    return _Scored(cfg, scores, start_scores, shipped_scores, what, n)


def _pictures_and_report(
    args: argparse.Namespace,
    out: Path,
    data: Path,
    synth: Any,
    plan: _Plan,
    trained: _Trained,
    scored: _Scored,
    timings: dict[str, float],
    t_start: float,
) -> None:
    """4. pictures of validation frames before and after training, the report and the next steps."""
    from occkit.formats import format_of

    _stage(
        4,
        f"drawing {args.pictures} validation frames before and after training, beside their ground truth; "
        f"writing {out / 'report.md'}",
    )
    t0 = time.perf_counter()
    cfg = scored.cfg
    fmt = format_of(trained.val_set)  # the format the world was read in
    raw = fmt.open_split(data, cfg.data.val_split, cameras=tuple(cfg.data.cameras), load_extras=True)
    pictures = _draw(raw, out, args.pictures, fmt)
    timings["pictures"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start
    _report(
        out,
        args,
        synth,
        cfg,
        trained.result,
        scored.scores,
        pictures,
        timings,
        len(trained.train_set),
        len(trained.val_set),
        scored.start_scores,
        start=plan.start,
        shipped_scores=scored.shipped_scores,
    )
    print(f"\ndone in {timings['total'] / 60:.1f} min: {out / 'report.md'}", flush=True)
    print("\n".join(next_steps(out, trained.result.checkpoint, plan.start)), flush=True)


def occkit_program() -> str:
    """The ``occkit`` to print in a command to paste: ``occkit`` when that name on PATH is the program
    running now; else the program as it was typed (``.venv/bin/occkit``, before the environment is
    activated), or this Python with ``-m occkit``."""
    import os
    import shlex
    import shutil
    import sys

    first = sys.argv[0] if sys.argv else ""
    if os.path.basename(first) == "occkit" and os.path.isfile(first):
        on_path = shutil.which("occkit")
        if on_path and os.path.realpath(on_path) == os.path.realpath(first):
            return "occkit"
        return shlex.quote(first)
    return f"{shlex.quote(sys.executable or 'python3')} -m occkit"


def score_text(s: dict[str, Any]) -> str:
    """A score line's figures: mIoU, geometry IoU and, where measured, RayIoU."""
    return f"mIoU {_fmt(s['miou'])}  geometry IoU {_fmt(s['geometry_iou'])}" + (
        f"  RayIoU {_fmt(s['rayiou'])}" if "rayiou" in s else ""
    )


def score_lines(
    start: str,
    what: str,
    steps: int,
    scores: dict[str, Any],
    start_scores: dict[str, Any],
    shipped_scores: dict[str, Any] | None,
    written: int,
) -> list[str]:
    """What stage 3 prints: the start and the trained model on the same validation frames (and, from the
    shipped backbone, the whole shipped network for reference)."""
    lines = [
        f"before training: {score_text(start_scores)}   ({what})",
        f"after {steps} steps: {score_text(scores)}   (the same {scores['frames']} frames; {written} predictions "
        "written)",
    ]
    if shipped_scores is not None:
        how = _made(shipped_record())
        lines.append(
            f"for reference, the whole {SHIPPED_PRESET} network occkit ships"
            + (f" ({how})" if how else "")
            + f", the same frames: mIoU {_fmt(shipped_scores['miou'])}  geometry IoU "
            f"{_fmt(shipped_scores['geometry_iou'])}: what longer training reaches (next, below)"
        )
    if start == "shipped":
        lines.append(FINETUNE_NOTE)
    return lines


def next_steps(out: Path, checkpoint: Any, start: str = "backbone", program: str | None = None) -> list[str]:
    """What to do after the demo: commands that run as printed (``program`` is the ``occkit`` to call,
    default :func:`occkit_program`), to look further, score, and train a run of one's own (printed last,
    and the report's last section)."""
    import shlex

    q = shlex.quote
    occ = program or occkit_program()
    data, pred = q(str(out / "data")), q(str(out / "predictions"))
    longer = f" --set model.backbone_weights={q(str(out / BACKBONE_FILE))}" if start == "backbone" else ""
    return [
        "next:",
        f"  {occ} show {data} --pred {pred} --out {q(str(out / 'frame.png'))}   # one frame; others: --list, --token",
        f"  {occ} eval --pred {pred} --gt {data}   # the scores again, per class",
        f"  {occ} predict --ckpt {q(str(out / 'run'))} --data {data} --split val --out {q(str(out / 'predicted'))}"
        "   # this model on a dataset's frames",
        f"  {occ} view {data} --pred {pred}   # in 3D, in the browser",
        f"  {occ} train synth-cpu --data {data} --out runs/mine --minutes 30{longer}   # a longer run of your own",
        "  docs: README.md (datasets, presets, methods), docs/DATASET.md (your own data)",
    ]


def _draw(raw, out: Path, count: int, fmt: Any) -> list[tuple[Path, Path]]:
    """Pictures of evenly spread validation frames: for each, the start's prediction and the trained
    model's (the prediction files of the data's format ``fmt``), each beside the ground truth, as
    ``(before, after)``."""
    from occkit.viz.draw import save_png
    from occkit.viz.figure import compose_frame_figure

    pics = []
    n = len(raw)
    picks = sorted({round(i * (n - 1) / max(1, count - 1)) for i in range(count)}) if count > 0 and n > 0 else []
    files = (
        {folder: fmt.predictions.index(out / folder) for folder in (START_PREDICTIONS, "predictions")} if picks else {}
    )
    for i in picks:
        sample = raw[i]
        pair = []
        for folder, when in ((START_PREDICTIONS, "before"), ("predictions", "after")):
            if sample.token not in files[folder]:
                raise FileNotFoundError(f"{out / folder}: no prediction of frame {sample.token}")
            pred = fmt.predictions.read(files[folder][sample.token])
            image = compose_frame_figure(
                sample, pred, mask="camera", mask_mode="grey", panel_height=300, classes=fmt.classes
            )
            pair.append(save_png(out / "pictures" / f"{sample.scene}_{sample.token[:8]}_{when}.png", image))
        pics.append((pair[0], pair[1]))
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


def _picture_lines(out: Path, pair: tuple[Path, Path] | Path) -> list[str]:
    """The report's lines of one frame's pictures: before and after training, or a single picture."""
    if not isinstance(pair, tuple):
        return [f"![{pair.stem}]({pair.relative_to(out).as_posix()})"]
    before, after = (p.relative_to(out).as_posix() for p in pair)
    return [f"Before training: ![{pair[0].stem}]({before})", "", f"After: ![{pair[1].stem}]({after})", ""]


#: The demo's report (``DIR/report.md``) as a template of lines in the package (``commands/templates``): a line
#: that is only ``$name`` stands for a list of lines (none or more), ``$name`` elsewhere for one value.
REPORT_TEMPLATE = "demo_report.md"
#: The rows of the report's score table: the metric's words and its cell from one set of scores.
SCORE_ROWS = (
    ("mIoU (camera mask)", lambda s: _fmt(s["miou"])),
    ("geometry IoU (camera mask)", lambda s: _fmt(s["geometry_iou"])),
    ("RayIoU", lambda s: _fmt(s.get("rayiou"))),
    ("frames", lambda s: f"{s['frames']}"),
)


def _report_template() -> str:
    """The text of the report's template, as installed with occkit."""
    from importlib.resources import files

    return (files("occkit.commands") / "templates" / REPORT_TEMPLATE).read_text(encoding="utf-8")


def _fill_template(text: str, values: dict[str, Any]) -> str:
    """A template of lines filled from ``values``: a line that is only ``$name`` becomes the lines of that
    list, and the ``$name`` of other lines their value (:class:`string.Template`)."""
    import re
    from string import Template

    lines: list[str] = []
    for line in text.split("\n"):
        block = re.fullmatch(r"\$(\w+)", line)
        if block and isinstance(values[block[1]], list):
            lines.extend(values[block[1]])
        else:
            lines.append(Template(line).substitute(values))
    return "\n".join(lines)


def _configured_start(cfg: Any) -> str:
    """The start a demo config says (``--start``): shipped weights, the shipped backbone or random weights."""
    return "shipped" if cfg.train.init_from else "backbone" if cfg.model.backbone_weights else "scratch"


def _start_phrase(start: str, cfg: Any, how: str | None) -> str:
    """How the demo's network started and was trained, as the report's first paragraph says it."""
    if start == "shipped":
        made = f": {how}; made by `python tools/make_demo_weights.py`" if how else ""
        return f"started from occkit's shipped weights ({Path(cfg.train.init_from).name}{made}) and fine-tuned"
    if start == "backbone":
        made = f"{how}; " if how else ""
        return (
            f"started from the image backbone ({cfg.model.backbone}) of occkit's shipped weights ("
            f"{made}`{BACKBONE_FILE}` here) under a fresh 3D network, and trained"
        )
    return "trained from random weights"


def _world_values(synth: Any, n_train: int, n_val: int) -> dict[str, str]:
    """The report's values of the synthetic world: its size, cameras, seed and frames."""
    return {
        "scenes": f"{synth.scenes}",
        "frames": f"{synth.frames}",
        "image_size": f"{synth.image_size[0]}x{synth.image_size[1]}",
        "seed": f"{synth.seed}",
        "n_train": f"{n_train}",
        "n_val": f"{n_val}",
    }


def _training_values(args: Any, cfg: Any, result: Any, start: str, how: str | None) -> dict[str, str]:
    """The report's values of the training: the preset, its network, its start, steps and time."""
    return {
        "config": f"{args.config}",
        "backbone": f"{cfg.model.backbone}",
        "head": f"{cfg.model.head}",
        "input_size": f"{cfg.data.image_aug.out_hw[0]}x{cfg.data.image_aug.out_hw[1]}",
        "start_phrase": _start_phrase(start, cfg, how),
        "steps": f"{result.step}",
        "train_minutes": f"{result.train_seconds / 60:.1f}",
        "step_seconds": f"{seconds_per_trained_step(result):.2f}",
    }


def _loss_line(losses: list[tuple[int, float]], of_what: str) -> str:
    """The report's line on the training loss: its mean over the first and the last 10 steps."""
    if not losses:
        return "No step trained in this invocation (a finished run resumed): its losses are in run/train.jsonl."
    first = sum(v for _, v in losses[:10]) / max(1, len(losses[:10]))
    last = sum(v for _, v in losses[-10:]) / max(1, len(losses[-10:]))
    return f"Mean training loss: {first:.3f} over the first 10 steps, {last:.3f} over the last 10 ({of_what})."


def _scores_table(scores: dict, start_scores: dict | None) -> list[str]:
    """The report's table of the scores after training, beside those before it when measured."""
    if start_scores is None:
        return ["| metric | value |", "|---|---|", *[f"| {name} | {cell(scores)} |" for name, cell in SCORE_ROWS]]
    return [
        "| metric | before training | after |",
        "|---|---|---|",
        *[f"| {name} | {cell(start_scores)} | {cell(scores)} |" for name, cell in SCORE_ROWS],
    ]


def _reference_lines(shipped_scores: dict | None, how: str | None) -> list[str]:
    """The report's lines on the whole shipped network's scores on the same frames (none when not measured)."""
    if shipped_scores is None:
        return []
    return [
        "",
        f"For reference, the whole `{SHIPPED_PRESET}` network occkit ships"
        + (f" ({how})" if how else "")
        + f" scores mIoU {_fmt(shipped_scores['miou'])} / geometry IoU {_fmt(shipped_scores['geometry_iou'])}"
        " on the same frames: what longer training reaches.",
    ]


def _class_table(scores: dict, start_scores: dict | None) -> list[str]:
    """The report's table of the IoU of each class after training, beside that before it when measured."""
    if start_scores is not None and "iou" in start_scores:
        return [
            "| class | before | after |",
            "|---|---|---|",
            *[f"| {k} | {_fmt(start_scores['iou'].get(k))} | {_fmt(v)} |" for k, v in scores["iou"].items()],
        ]
    return ["| class | IoU |", "|---|---|", *[f"| {k} | {_fmt(v)} |" for k, v in scores["iou"].items()]]


def _time_table(timings: dict, earlier: dict[str, float] | None) -> list[str]:
    """The report's table of the minutes of each stage, beside those of the invocation that trained when
    this one resumed a finished run."""
    if not earlier:
        return ["| stage | minutes |", "|---|---|", *[f"| {k} | {v / 60:.1f} |" for k, v in timings.items()]]
    return [
        "| stage | minutes (this invocation: a finished run resumed) | minutes (the invocation that trained) |",
        "|---|---|---|",
        *[
            f"| {k} | {timings.get(k, 0.0) / 60:.1f} | {_fmt_min(earlier.get(k))} |"
            for k in dict.fromkeys([*earlier, *timings])
        ],
    ]


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
    start: str | None = None,
    shipped_scores: dict | None = None,
) -> None:
    """Write the demo's ``report.md`` (from :data:`REPORT_TEMPLATE`) and ``report.json``."""
    from occkit.fileio import write_text_atomic
    from occkit.outputs import record_output_file, write_json_output

    losses, of_what = result.losses, "of this invocation"
    earlier = _earlier_timings(out) if not losses else None  # a finished run resumed: what its training took
    if not losses:  # the run's own log says how its loss went
        losses, of_what = logged_losses(out / "run" / "train.jsonl"), "logged steps of the run, run/train.jsonl"
    if start is None:  # a caller of before --start: the start the config says
        start = _configured_start(cfg)
    how = _made(shipped_record()) if start != "scratch" else None
    values = {
        **_world_values(synth, n_train, n_val),
        **_training_values(args, cfg, result, start, how),
        "losses": _loss_line(losses, of_what),
        "scores_table": _scores_table(scores, start_scores),
        "before": [f"Before training: {START_TEXT[start]}; after: {result.step} steps from it."]
        if start_scores is not None
        else [],
        "reference": _reference_lines(shipped_scores, how),
        "note": ["", f"Note: {FINETUNE_NOTE}."] if start == "shipped" and start_scores is not None else [],
        "class_table": _class_table(scores, start_scores),
        "pictures": [line for pair in pictures for line in _picture_lines(out, pair)],
        "time_table": _time_table(timings, earlier),
        "checkpoint": f"{result.checkpoint}",
        "logs": f"{out / 'run'}",
        "tensorboard": f"{out / 'run' / 'tb'}",
        "next": [line.strip() for line in next_steps(out, result.checkpoint, start)[1:]],
    }
    record_output_file(write_text_atomic(out / "report.md", _fill_template(_report_template(), values)), "demo")
    write_json_output(
        out / "report.json",
        {
            "scores": scores,
            "start": start,
            "start_scores": start_scores,
            "shipped_scores": shipped_scores,
            "steps": result.step,
            "train_minutes": result.train_seconds / 60,
            "timings_s": timings,
            "trained_timings_s": earlier if earlier else timings,  # kept across reruns of a finished run
            "pictures": [[str(q) for q in p] if isinstance(p, tuple) else str(p) for p in pictures],
        },
        "demo",
    )
