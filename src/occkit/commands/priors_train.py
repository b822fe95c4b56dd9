"""``occkit priors train``: train the ``world:RUN`` prior (2D networks) on a synthetic world.

Example::

    occkit priors train --data runs/world_train_s7 --out runs/world_prior_s7 --minutes 12
    occkit priors train --data DIR --out RUN --steps 500 --set batch_size=4 --set feature_stride=16
    occkit priors train --data DIR --out RUN --cpu-minutes 12 --minutes 70 --threads 1   # 12 core-minutes,
                                                                                         # at most 70 wall

The run is used with ``--prior world:RUN`` (``occkit priors run`` / ``eval``). Config keys are the
fields of :class:`occkit.priors.world.WorldPriorConfig` (unknown keys are refused); also runnable
as ``python -m occkit.commands.priors_train``.
"""

from __future__ import annotations

import argparse
import sys
import time

from occkit.commands.checks import positive_float, positive_int
from occkit.commands.options import add_data, add_device, add_out, add_overrides


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_data(p, "synthetic world (occkit synth) to train on; its train split is used", type=str)
    add_out(p, "run folder to write (must be absent or empty unless --overwrite)", type=str)
    budget = p.add_mutually_exclusive_group()
    budget.add_argument(
        "--minutes", type=positive_float, default=None, help="wall-clock budget in minutes (sets minutes=M, steps=0)"
    )
    budget.add_argument("--steps", type=positive_int, default=None, help="optimiser steps (sets steps=N, minutes=0)")
    p.add_argument(
        "--cpu-minutes",
        type=positive_float,
        default=None,
        help="budget of CPU time in minutes (sets cpu_minutes=M, and steps=0 unless --steps is given); "
        "with --minutes the wall clock caps it",
    )
    p.add_argument("--config", default=None, help="YAML file overriding WorldPriorConfig fields")
    add_overrides(
        p, "override a WorldPriorConfig field (repeatable), e.g. --set batch_size=4", action="append", dest="overrides"
    )
    add_device(p, "device to train on", default="cpu")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out")
    mode.add_argument(
        "--resume",
        action="store_true",
        help="continue the run stopped in --out from its last save (every save_every_minutes, default 5): "
        "the same settings and --data; a step budget ends with the weights of an unstopped run",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_config(args: argparse.Namespace):  # -> WorldPriorConfig
    """The config of a command line: defaults, ``--config``, ``--set``, then the budget flags."""
    from occkit.config import load_config
    from occkit.priors.world import WorldPriorConfig

    overrides = list(args.overrides)
    if args.minutes is not None:
        overrides += [f"minutes={args.minutes}", "steps=0"]
    if args.steps is not None:
        overrides += [f"steps={args.steps}", "minutes=0"]
    if args.cpu_minutes is not None:
        overrides += [f"cpu_minutes={args.cpu_minutes}"] + (["steps=0"] if args.steps is None else [])
    cfg = load_config(WorldPriorConfig, args.config, overrides)
    cfg.check()
    return cfg


def run(args: argparse.Namespace) -> int:
    import torch

    from occkit.priors.world_train import train_world_prior

    cfg = build_config(args)
    from occkit.output_folders import check_output_folder

    # a run of this command may be replaced with --overwrite; a folder of anything else never
    check_output_folder(
        args.out,
        "priors train",
        inputs={"--data": args.data},
        overwrite=args.overwrite,
        resume=args.resume,
        legacy=lambda o: (o / "config.json").is_file() and (o / "model.safetensors").is_file(),
    )
    from pathlib import Path

    from occkit.fileio import read_json

    done = Path(args.out) / "config.json"
    if args.resume and done.is_file() and read_json(done).get("status") == "complete":
        print(f"priors train: {args.out} is a finished run; nothing to resume")
        return 0
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads: expected >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    out = train_world_prior(
        args.data,
        args.out,
        cfg,
        progress=not args.no_progress,
        overwrite=args.overwrite,
        device=args.device,
        resume=args.resume,
    )
    from occkit.outputs import mark_output

    mark_output(out, "priors train")
    train = read_json(out / "config.json")["train"]
    losses = ", ".join(f"{k} {v:.4f}" for k, v in train.get("final_losses", {}).items())
    print(
        f"priors train: {train['steps']} steps ({train['images_seen']} images) in {train['wall_s']:.0f} s "
        f"({train['cpu_s']:.0f} s of CPU) "
        f"(total {time.perf_counter() - t0:.0f} s); final losses: {losses}; run: {out}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m occkit.commands.priors_train``)."""
    from occkit.config import ConfigError

    parser = argparse.ArgumentParser(prog="occkit priors train", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (ConfigError, FileNotFoundError, FileExistsError, ValueError, KeyError) as e:
        print(f"occkit priors train: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
