"""``occkit train CONFIG --data DIR --out RUN``: train a method with the engine.

CONFIG is the name of a preset shipped in ``occkit/configs/`` (``occkit train --help`` lists them)
or a YAML path. Under ``torchrun`` (which
sets RANK/WORLD_SIZE) every process runs this same command and the engine joins the group.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from occkit.commands.checks import nonneg_float, positive_int
from occkit.commands.options import add_data, add_out, add_overrides


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    config = p.add_argument("config", help="preset name or path to a YAML config")

    def format_help() -> str:  # the methods and presets only when help is shown: no torch to build the parser
        from importlib import resources

        from occkit.methods.registry import help_catalogue

        methods, folders = help_catalogue()
        presets = {f.name[:-5] for f in (resources.files("occkit") / "configs").iterdir() if f.name.endswith(".yaml")}
        presets |= {f.stem for folder in folders for f in Path(folder).glob("*.yaml")}
        p.epilog = "methods (a preset's method:, from occkit and from installed packages):\n" + "\n".join(
            f"  {name}: {summary}" for name, summary in methods
        )
        config.help = (
            f"preset name ({', '.join(sorted(presets))}) or path to a YAML config; its method: is one of "
            f"{', '.join(name for name, _ in methods)}"
        )
        return argparse.ArgumentParser.format_help(p)

    p.format_help = format_help
    add_data(
        p,
        "dataset folder of any format ({formats}), detected from what it holds (Occ3D-nuScenes: annotations.json, "
        "SemanticKITTI: sequences/, NYUv2: NYUtrain/, ...)",
        type=str,
    )
    add_out(p, "run folder: checkpoints/, tb/, train.jsonl, metrics.jsonl", type=str)
    p.add_argument(
        "--max-steps",
        type=positive_int,
        default=None,
        help="length of the run in steps (sets optim.max_steps; default: the preset's)",
    )
    p.add_argument(
        "--minutes",
        type=nonneg_float,
        default=None,
        help="train for this many minutes (sets train.max_minutes): the time then rules, the learning rate's cosine "
        "follows the time spent and the preset's step count goes (unless --max-steps is given too); default: the "
        "preset's, 0 = no limit",
    )
    p.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint in --out")
    p.add_argument(
        "--init-from",
        metavar="RUN",
        default=None,
        help="start from another run's weights (a run folder, RUN/checkpoints/step_N or a .safetensors file; "
        "sets train.init_from): tensors matching by name and shape are loaded, with a fresh optimiser and "
        "schedule at step 0; what loaded goes to stderr and RUN/init_from.json",
    )
    add_overrides(p, "config overrides, e.g. optim.lr=1e-3 data.batch_size=2 (repeatable: every --set counts)")
    p.add_argument("--no-val", action="store_true", help="skip validation")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (training, class counts, validation)")


def _made_by_train(out: Path) -> bool:
    """Whether ``out`` is a run folder of occkit train from before output records existed."""
    return any((out / name).exists() for name in ("checkpoints", "train.jsonl", "metrics.jsonl", "tb"))


def _check_run_folder(args: argparse.Namespace, mark: bool = True) -> None:
    """--out: a new or empty folder, or a run of occkit train (which the engine continues with
    --resume and otherwise refuses when it holds checkpoints); never a file, a folder of
    something else, or a folder inside --data or --init-from. Marks a new run folder as train's.

    Under torchrun only rank 0 checks and marks it (rank 0 alone writes the run): were every rank
    to, one rank's half-written record would be a stranger's file to another's check.
    """
    from occkit.output_folders import check_output_folder
    from occkit.outputs import mark_output

    if os.environ.get("RANK", "0") != "0":
        return
    inputs = {"--data": args.data, "--init-from": args.init_from}
    state = check_output_folder(
        args.out, "train", inputs=inputs, resume=True, legacy=_made_by_train, ignore=(TRAIN_LOCK,)
    )
    if state != "own" and mark:
        mark_output(args.out, "train")


TRAIN_LOCK = "train.lock"
"""In the run folder while ``occkit train`` writes it: a second one into the same folder is refused
naming the first's process (a lock of a process that ended is taken over)."""


def _lock_run_folder(out: str) -> list:
    """Take the lock every writer of ``--out`` takes (:func:`occkit.locks.output_lock`, beside the
    folder: an ``occkit synth`` or ``export`` into the same folder now is refused) and the run
    folder's :data:`TRAIN_LOCK` (what ``occkit ablate`` reads); rank 0 alone writes the run, the
    others take none."""
    from occkit.locks import FolderLock, output_lock

    if os.environ.get("RANK", "0") != "0":
        return []
    locks = [output_lock(out, "train")]
    try:
        lock = FolderLock(Path(out) / TRAIN_LOCK, f"--out {out}", hint="another occkit train into the same folder?")
        lock.acquire()
    except BaseException:
        locks[0].release()
        raise
    return [*locks, lock]


#: ``optim.max_steps`` of a run that ``--minutes`` alone bounds (as ``occkit demo --minutes``): no step limit.
UNLIMITED_STEPS = 10**6


def budget_overrides(args: argparse.Namespace) -> tuple[list[str], str]:
    """The config overrides of ``--set``, ``--max-steps`` and ``--minutes``, and the line that says
    which budget rules ("" when the preset's steps do).

    ``--minutes M`` (> 0) makes the time rule, as ``occkit demo --minutes`` does: the cosine follows
    the share of the M minutes spent (``optim.schedule=time``), so that the learning rate has decayed
    when the time is up (fitted to the preset's 2000 steps, a 30-minute run stopped at step 799 with
    the rate still near its peak), and the step limit goes (the bar counts steps without an ETA of
    the preset's steps) unless ``--max-steps`` gives one, which then stops the run if it comes
    first. A ``--set optim.schedule`` or ``--set optim.max_steps`` of the user's is kept.
    """
    given = {item.split("=", 1)[0].strip() for item in (args.set or [])}
    overrides = list(args.set or [])
    if args.max_steps is not None:
        overrides.append(f"optim.max_steps={args.max_steps}")
    if args.minutes is None:
        return overrides, ""
    overrides.append(f"train.max_minutes={args.minutes}")
    if args.minutes <= 0 or "optim.schedule" in given:
        return overrides, ""
    overrides.append("optim.schedule=time")
    if args.max_steps is None and "optim.max_steps" not in given:
        overrides.append(f"optim.max_steps={UNLIMITED_STEPS}")
        cap = "no step limit"
    else:
        steps = args.max_steps if args.max_steps is not None else "optim.max_steps"
        cap = f"it stops at step {steps} if that comes first"
    return overrides, (
        f"occkit train: --minutes {args.minutes:g} rules: the learning rate's cosine follows the time spent "
        f"(optim.schedule=time; the warm-up stays in steps); {cap}"
    )


def run(args: argparse.Namespace) -> int:
    overrides, budget = budget_overrides(args)
    missing = missing_priors(args.config, overrides, args.data)  # at the start: before torch and the data
    if missing is not None:
        raise ValueError(missing)
    from occkit.experiment import load_experiment

    cfg = load_experiment(args.config, overrides)
    if budget:
        print(budget, file=sys.stderr, flush=True)
    _check_run_folder(args, mark=False)  # before the lock: a wrong --out gets no lock file beside it
    locks = _lock_run_folder(args.out)
    try:
        _check_run_folder(args)  # again under the lock: what another writer left meanwhile counts
        return _train(args, cfg)
    finally:
        for lock in reversed(locks):
            lock.release()


def _priors_refusal(where: str, method: str, why: str, data: str) -> str:
    return (
        f"{where}: method {method} cannot train without a prior cache: {why}; data.priors is not set. Make one "
        f"(docs/priors.md; on occkit's synthetic world: occkit priors run --data {data} --prior oracle:typical "
        "--out PRIORS) and add --set data.priors=PRIORS"
    )


def missing_priors(config: str, overrides: list[str], data: str) -> str | None:
    """Why the run cannot start when its method cannot train without a prior cache
    (:attr:`occkit.methods.registry.MethodSpec.needs_priors`) and neither the preset nor ``--set`` gives
    ``data.priors``: read from the YAML and the overrides alone, without torch, before any data or network is
    built; None otherwise, and where the preset is not a file or occkit's own (the config's load names its
    errors; a package's method is checked once the config is loaded)."""
    from importlib import resources

    from occkit.config import ConfigError, load_yaml, parse_overrides
    from occkit.methods.registry import needs_priors_of

    path = Path(config)
    if not path.is_file():
        path = Path(str(resources.files("occkit") / "configs" / f"{config}.yaml"))
        if not path.is_file():
            return None
    try:
        preset, over = load_yaml(path), parse_overrides(overrides)
    except (ConfigError, OSError):
        return None
    method = over.get("method", preset.get("method"))
    if not isinstance(method, str):
        return None
    given = [d["data"]["priors"] for d in (over, preset) if isinstance(d.get("data"), dict) and "priors" in d["data"]]
    if given and given[0]:  # --set's before the preset's
        return None
    why = needs_priors_of(method)
    return None if why is None else _priors_refusal(config, method, why, data)


def _check_set_cameras(args: argparse.Namespace, cfg: Any) -> None:
    """A ``--set data.cameras=...`` naming cameras that a format of fixed cameras (NYUv2's kinect,
    SemanticKITTI's image_2, ...) lacks is refused: the frames are read with the format's own camera
    whatever the setting says, and the run would record a camera its data lack. A preset's value is
    left to the format (``kitti-mono``'s image_2 trains on KITTI-360's image_00)."""
    given = [s for s in args.set or [] if s.split("=", 1)[0].strip() == "data.cameras"]
    if not given:
        return
    from occkit.experiment import dataset_format

    fmt = dataset_format(cfg, args.data)
    if fmt.cameras is None:
        return  # the dataset reader checks the cameras against the data (Occ3D's family)
    bad = [c for c in cfg.data.cameras if c not in fmt.cameras]
    if bad:
        raise ValueError(
            f"--set {given[-1]}: {', '.join(bad)} is not a camera of {fmt.display_name} (format {fmt.name}), whose "
            f"frames have {', '.join(fmt.cameras)}; leave data.cameras out, or set it to {list(fmt.cameras)}"
        )


#: The route for labels of a recording without cameras (docs/labels.md, "A LiDAR-only rig").
LIDAR_ROUTE = "occkit train lidar-teacher --data DATA --out RUN"


def _refuse_cameras_the_data_lack(args: argparse.Namespace, cfg: Any, train_set: Any) -> None:
    """A network that reads camera images (``model.modality`` camera or fusion) on frames whose index
    records no cameras (``occkit label`` on a recording without them) is refused in one line naming the
    LiDAR route: it would read no image, and its voxel losses would count no voxel (the camera mask is empty)."""
    from occkit.data.wrappers import base_dataset

    base = base_dataset(train_set)
    said = getattr(base, "records_no_cameras", None)
    if getattr(cfg.model, "modality", "camera") == "lidar" or not (callable(said) and said()):
        return
    raise ValueError(
        f"--data {args.data}: the recording had no cameras (its index records none for every frame: labels of a "
        f"LiDAR-only rig), and {args.config}'s network reads camera images (model.modality: "
        f"{cfg.model.modality}); train the LiDAR network on it: {LIDAR_ROUTE.replace('DATA', str(args.data))} "
        "(docs/labels.md, 'A LiDAR-only rig')"
    )


def _train(args: argparse.Namespace, cfg) -> int:
    from occkit.engine.logging import validation_summary
    from occkit.engine.train import train
    from occkit.experiment import build_dataset, build_train_set, fit_to_format, prepare_run

    if cfg.method == "easyocc" and not (Path(args.data) / "pseudolabel.json").is_file():
        import warnings

        warnings.warn(
            f"--data {args.data}: holds no pseudolabel.json, so it is not a pseudo-label set of occkit pseudolabel; "
            "easyocc is a pseudo-label recipe: it trains on these labels as if they were pseudo-labels",
            stacklevel=1,
        )
    from occkit.methods.registry import get_method

    why = get_method(cfg.method).needs_priors  # a package's method, which missing_priors did not read
    if why and not cfg.data.priors:
        raise ValueError(_priors_refusal(args.config, cfg.method, why, args.data))
    if args.init_from is not None:  # set as given (a path is not parsed as YAML as --set values are)
        cfg.train.init_from = args.init_from
    cfg = fit_to_format(cfg, args.data)  # classes, free id, grid the preset leaves to the data's format
    _check_set_cameras(args, cfg)
    train_set = build_train_set(cfg, args.data)
    if len(train_set) == 0:
        raise ValueError(f"{args.data}: split '{cfg.data.train_split}' has no frames")
    _refuse_cameras_the_data_lack(args, cfg, train_set)
    val_set = None if args.no_val else build_dataset(cfg, args.data, cfg.data.val_split)
    if val_set is not None and len(val_set) == 0:
        print(
            f"occkit train: split '{cfg.data.val_split}' of {args.data} has no frames; no validation", file=sys.stderr
        )
        val_set = None
    if val_set is not None:  # a metric the data's format does not compute refused now, not at the first validation
        from occkit.formats import format_of
        from occkit.scoring.core import check_metric_names

        check_metric_names(format_of(val_set), cfg.train.val_metrics, what="train.val_metrics")
    cfg, method = prepare_run(cfg, train_set, progress=not args.no_progress)
    result = train(
        cfg,
        args.out,
        train_set,
        val_set,
        method,
        resume=args.resume,
        progress=not args.no_progress,
    )
    last = result.validations[-1] if result.validations else None
    if result.checkpoint is None and args.resume:  # a finished run resumed: nothing was trained (was "checkpoint None")
        from occkit.engine.checkpoint import latest_checkpoint

        if os.environ.get("RANK", "0") == "0":
            print(
                f"occkit train: --resume {args.out}: the run is already trained to step {result.step} (optim.max_steps "
                f"{cfg.optim.max_steps}); nothing to do: its newest checkpoint is {latest_checkpoint(Path(args.out))} "
                "(to train on, raise the step limit: --max-steps N or --set optim.max_steps=N)"
            )
        return 0
    msg = (
        f"occkit train: {result.step} steps ({result.train_seconds / 60:.1f} min of training), checkpoint "
        f"{result.checkpoint}"
    )
    if last is not None:
        msg += f", {validation_summary(last)}"
        if "depth_abs_rel" in last:  # a preset that learns no classes (base-cpu): its depth and geometry, no class mIoU
            msg += " at LiDAR pixels (this preset learns no classes: no class mIoU)"
    if os.environ.get("RANK", "0") == "0":  # one summary per job, from rank 0
        print(msg)
    return 0
