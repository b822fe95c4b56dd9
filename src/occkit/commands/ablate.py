"""``occkit ablate SPEC.yaml --out DIR``: run an ablation spec (docs/design.md §8, "an ablation is a file").

Shared stages are built once into a cache (``--cache``, default ``DIR/../stages``, so ablations
side by side share them), each arm x seed trains in ``DIR/runs/<arm>_s<seed>/`` and is scored,
in ``--lanes`` subprocesses at once, or as Ray tasks on a cluster (``--launcher ray``);
``DIR/results.md``, ``results.json`` and ``curves.png`` are rewritten after every finished run.
Rerunning the same command after any stop resumes. The spec format: :mod:`occkit.ablate.spec`;
the runner and its launchers: :mod:`occkit.ablate.runner`; the outputs: :mod:`occkit.ablate.report`.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import textwrap
import threading
from pathlib import Path

from occkit.commands.checks import nonneg_int, positive_int
from occkit.commands.options import add_out, add_overrides

EPILOG = """\
spec (YAML; full format in occkit.ablate.spec's docstring):
  name, description      the ablation's name (default: the file's) and one line about it
  stages: NAME: {command, args}
                         shared inputs built once, cached by their inputs in CACHE/<NAME>-<hash>/;
%(stage_commands)s
                         args: the command's options without --out; ${NAME} = a stage's folder
  data                   dataset the arms train and are scored on (${stage} or a path)
  budget                 optimiser steps per arm (optim.max_steps)
  validations            validations per arm (default 4; train.val_every = ckpt_every = ceil(budget/validations))
  tolerance              flag "not converged" when the last two validations differ by more (default 0.5)
  metric                 key of metrics.jsonl for the curves and the first column (default miou)
  seeds                  train.seed values (default [0])
  arms: NAME: {preset, set, init_from, data}
                         a preset (name or YAML path) plus occkit train --set overrides and a start
  scoring: [{scorer, ...}]
                         run on each finished arm x seed; scorers: %(scorers)s
  claims: [{arm, against, figure, against_figure, higher, name}]
                         comparisons decided seed by seed in results.md (figure: metric, or a
                         column id such as ssc.completion_iou; higher: false for FID, KID)

outputs in --out: runs/<arm>_s<seed>/ (run folders), results.json, results.md, curves.png
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from occkit.ablate.scorers import SCORERS
    from occkit.ablate.spec import STAGE_COMMANDS, shipped_specs

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.description = textwrap.fill(p.description or "", 80)
    commands = textwrap.fill(
        "command: " + " | ".join(STAGE_COMMANDS) + ";",
        100,
        initial_indent=" " * 25,
        subsequent_indent=" " * 25,
        break_on_hyphens=False,
    )
    p.epilog = EPILOG % {"scorers": ", ".join(SCORERS), "stage_commands": commands}
    p.add_argument(
        "spec",
        help=f"the ablation spec: a YAML path, or the name of a spec shipped in occkit's configs/ablations/ "
        f"({', '.join(shipped_specs())})",
    )
    add_out(p, "ablation folder: runs/<arm>_s<seed>/, results.json, results.md, curves.png", type=str)
    p.add_argument(
        "--cache", default=None, help="stage cache folder (default: OUT/../stages, shared by the ablations beside OUT)"
    )
    p.add_argument(
        "--lanes",
        type=positive_int,
        default=None,
        help="commands at once: stages side by side, then arms x seeds (default 1; with --launcher ray: every "
        "run ready, the cluster's resources decide)",
    )
    p.add_argument(
        "--threads",
        type=positive_int,
        default=1,
        help="torch threads per command (train.threads, OMP_NUM_THREADS; a Ray task's num_cpus; default 1)",
    )
    p.add_argument(
        "--device",
        default="cpu",
        help="cpu, cuda or cuda:N for every training and scoring; cuda with --lanes N on several GPUs: lane i "
        "takes GPU i (round-robin over CUDA_VISIBLE_DEVICES or every GPU); cuda:N: all lanes share GPU N; "
        "with --launcher ray, cuda gives each task a GPU (default cpu)",
    )
    p.add_argument(
        "--launcher",
        choices=("local", "ray"),
        default="local",
        help="local: subprocesses of this command; ray: each stage build and arm x seed command a Ray task "
        "(num_cpus = --threads, num_gpus = 1 on cuda) on a local cluster, or the one RAY_ADDRESS names; "
        "--out and the stage cache must be on a file system every node sees (checked first); "
        "needs pip install -e '.[ray]' (default local)",
    )
    p.add_argument(
        "--seeds", default=None, metavar="S[,S...]", help="comma list replacing the spec's seeds (default: the spec's)"
    )
    p.add_argument(
        "--budget",
        type=positive_int,
        default=None,
        help="optimiser steps per arm, replacing the spec's budget (default: the spec's)",
    )
    p.add_argument(
        "--world-seed",
        type=nonneg_int,
        default=None,
        metavar="S",
        help="set args.seed of the stage named world, or else of every synth stage under the arms' data "
        "(default: the spec's)",
    )
    add_overrides(
        p,
        "override the spec: dotted path, YAML value; KEY+=VALUE appends to a list, e.g. "
        "stages.world.args.scenes=20 'arms.a.set+=[optim.lr=1e-3]' (repeatable; default none)",
    )
    p.add_argument(
        "--only",
        default=None,
        metavar="ARM[,ARM_sSEED...]",
        help="run only these arms (every seed), or single runs named as their folders (logit3d_s1); with a single "
        "run named, the runs go in the order listed (default: all)",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--stages-only",
        action="store_true",
        help="build the stages the arms (or --only's) need, then stop: caches ready for a later run "
        "or another machine (default off)",
    )
    mode.add_argument(
        "--dry-run",
        action="store_true",
        help="check the spec and print the plan (stages cached or missing, "
        "runs done, partial or new, the exact commands); run nothing (default off)",
    )
    mode.add_argument(
        "--report",
        action="store_true",
        help="rebuild results.json, results.md and curves.png from disk; run nothing (default off)",
    )


def command_line(args: argparse.Namespace) -> str:
    """The ``occkit ablate`` command line that makes these results (without --dry-run/--report)."""
    words = ["ablate", args.spec, "--out", args.out]
    for opt, value in (
        ("--cache", args.cache),
        ("--seeds", args.seeds),
        ("--budget", args.budget),
        ("--world-seed", args.world_seed),
        ("--only", args.only),
    ):
        if value is not None:
            words += [opt, str(value)]
    if args.set:
        words += ["--set", *args.set]
    if args.launcher != "local":
        words += ["--launcher", args.launcher]
    if args.lanes is not None or args.launcher == "local":
        words += ["--lanes", str(args.lanes or 1)]
    words += ["--threads", str(args.threads), "--device", args.device]
    return "occkit " + shlex.join(words)


def _seeds(text: str | None, spec: str) -> list[int] | None:
    if text is None:
        return None
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--seeds {text}: expected a comma list of integers such as 0,1,2") from None
    if not seeds:
        raise ValueError(f"--seeds {text}: no seeds")
    bad = [s for s in seeds if s < 0]
    if bad:  # the option's fault, not the spec's seeds line
        raise ValueError(f"--seeds {text}: a seed must be >= 0, got {bad[0]}")
    return seeds


def check_device(device: str, launcher: str) -> None:
    """Refuse at once (--dry-run too, before any stage) a device this machine cannot train on:
    ``cuda`` without CUDA, a GPU index it lacks, or no device at all. With ``--launcher ray`` the
    cluster's nodes have the GPUs, so only the name is checked."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"--device {device}: not a device (cpu, cuda or cuda:N)") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {device}: the ablation trains on cpu or cuda, not {dev.type}")
    if dev.type != "cuda" or launcher == "ray":
        return
    if not torch.cuda.is_available():
        raise ValueError(
            f"--device {device}: torch {torch.__version__} sees no CUDA device here (CUDA_VISIBLE_DEVICES="
            f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); use --device cpu, or run on a machine with a GPU"
        )
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")


def verb_parser(word: str) -> argparse.ArgumentParser:
    """The ``occkit`` parser that holds the one verb ``word`` (``"priors"``): what the ablation runner
    checks a stage's options and a scorer's with (:func:`occkit.ablate.cliargs.use_verb_parser`)."""
    from occkit.commands import COMMANDS, build_parser

    return build_parser(tuple(c for c in COMMANDS if c[0] == word))


def run(args: argparse.Namespace) -> int:
    from occkit.ablate.cliargs import use_verb_parser
    from occkit.ablate.report import check_report_files
    from occkit.ablate.runner import Ablation, RunOptions
    from occkit.ablate.spec import Overrides, check_spec, find_spec, parse_spec

    use_verb_parser(verb_parser)
    _check_options(args)
    check_device(args.device, args.launcher)
    check_report_files(args.out)  # a results.md of the user's: refused at once, --dry-run too
    overrides = Overrides(
        set=list(args.set), seeds=_seeds(args.seeds, args.spec), budget=args.budget, world_seed=args.world_seed
    )
    spec = parse_spec(find_spec(args.spec), overrides)
    only, only_arms = _only(args.only, spec)
    if not args.report:
        check_spec(spec, only_arms)
    out = Path(args.out)
    cache = Path(args.cache) if args.cache is not None else out.resolve().parent / "stages"
    if cache.exists() and not cache.is_dir():  # refused at once, not after the first stage's training
        raise FileExistsError(f"--cache {cache}: is a file; the stage cache is a folder: give a folder's path")
    ab = Ablation(
        spec,
        RunOptions(
            out=out,
            cache=cache,
            lanes=args.lanes or 1,
            threads=args.threads,
            device=args.device,
            only=only,
            command=command_line(args),
            stages_only=args.stages_only,
            launcher=args.launcher,
        ),
    )
    if (
        args.lanes is None and args.launcher == "ray"
    ):  # no cap: every ready run in flight, the cluster's resources decide
        ab.opts.lanes = max(1, len(ab.stage_jobs()) + (0 if args.stages_only else len(ab.runs())))
    if args.dry_run:
        _print_plan(ab, args)
        return 0
    if args.report:
        _print_report(ab)
        return 0
    return _run_stoppable(ab)


def _check_options(args: argparse.Namespace) -> None:
    """Refuse lanes, threads or a budget below one, and ``--launcher ray`` without Ray installed."""
    if args.lanes is not None and args.lanes < 1:
        raise ValueError(f"--lanes must be >= 1, got {args.lanes}")
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    if args.budget is not None and args.budget < 1:
        raise ValueError(f"--budget must be >= 1, got {args.budget}")
    if args.launcher == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise ValueError(
                "--launcher ray: ray is not installed; pip install -e '.[ray]' (or pip install 'ray>=2.9')"
            )


def _only(text: str | None, spec) -> tuple[list[str] | None, list[str] | None]:
    """``--only``'s words and the arms they name (None, None without it); a word naming no arm nor run refused."""
    from occkit.ablate.spec import SpecError

    if text is None:
        return None, None
    from occkit.ablate.runner import select_runs

    only = [a.strip() for a in text.split(",") if a.strip()]
    if not only:
        raise SpecError(f"{spec.path} (--only {text}): no arm given (arms: {', '.join(spec.arms)})")
    try:
        return only, list(dict.fromkeys(a for a, _ in select_runs(spec, only)))
    except ValueError as e:
        raise SpecError(f"{spec.path} ({e})") from None


def _print_plan(ab, args: argparse.Namespace) -> None:
    """``--dry-run``: print the plan, and with ``--launcher ray`` how the tasks go to the cluster."""
    print(ab.plan_text())
    if args.launcher == "ray":
        print(
            f"launcher: ray, a task per command with {args.threads} CPU(s)"
            + (" and 1 GPU" if args.device == "cuda" else "")
            + f", up to {ab.opts.lanes} at once "
            f"(RAY_ADDRESS={os.environ.get('RAY_ADDRESS') or 'unset: a local cluster'})"
        )


def _print_report(ab) -> None:
    """``--report``: rebuild the results from disk and say how far the ablation is, its claims and time left."""
    from occkit.ablate.report import claim_cell, time_left_text, write_report

    results = write_report(ab)
    done = sum(1 for a in results["arms"].values() for s in a["seeds"].values() if s["status"] == "done")
    total = sum(len(a["seeds"]) for a in results["arms"].values())
    print(f"occkit ablate: {done} of {total} run(s) done; wrote {ab.out / 'results.md'}, results.json, curves.png")
    for c in results.get("claims", []):
        print(f"occkit ablate: claim {c['name']!r} ({c['label']}): {claim_cell(c, len(results['seeds']))}")
    print(f"occkit ablate: {time_left_text(results['time_left'])}")


def _run_stoppable(ab) -> int:
    """Run the ablation; SIGTERM stops it as Ctrl-C does, saying how to resume (exit status 130)."""
    previous = None
    if threading.current_thread() is threading.main_thread():

        def stop(signum, frame):  # SIGTERM: stop the children and release the locks, as Ctrl-C does
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, stop)
    try:
        return ab.run()
    except KeyboardInterrupt:
        from occkit.commands.checks import typed_command

        print(
            f"occkit ablate: stopped; run the same command again to resume ({ab.out}): {typed_command()}",
            file=sys.stderr,
        )
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
