"""The ablation runner: stages first, then each arm x seed in lanes, resumable after any stop.

Layout of ``--out DIR``::

    DIR/runs/<arm>_s<seed>/     an ordinary occkit run folder (checkpoints/, metrics.jsonl, ...)
        train.log               occkit train's output (each resumed command appends)
        score_<scorer>[_<name>].log  the scorers' commands' output (an entry's name, when it has one)
        score_*.json            the scorers' results
        ablate.json             what trained it (arm, seed, preset, overrides, data as stage hashes,
                                budget), the builds of the stages it started from, wall seconds of
                                training and scoring, the last error
        ablate.lock             while a runner works on it
    DIR/results.json, results.md, curves.png   rewritten after every finished arm x seed

Every command runs as ``python -m occkit.cli ...``, its output appended to a log file (a stage's
newest log line is also echoed to the console every ``progress_seconds``: :class:`LogWatch`; a
training's pace here, once per preset, against the table of measured step times: :class:`PaceWatch`); up to
``lanes`` at a time, each with ``threads`` torch threads (``OMP_NUM_THREADS`` too). Where it runs is
the launcher's (:class:`Launcher`): :class:`LocalLauncher` starts subprocesses here (with
``--device cuda`` and lanes on several GPUs, lane slot ``i`` gets the ``i``-th GPU in turn through
``CUDA_VISIBLE_DEVICES``: :func:`lane_gpus`); :class:`RayLauncher` (``--launcher ray``) submits each
command as a Ray task asking for ``threads`` CPUs (and a GPU on cuda), on a local cluster or the one
``RAY_ADDRESS`` names, after a task on each node has checked that it sees ``out`` and the stage
cache as the runner's own, writable folders (a shared file system). Either way the jobs (the
generators below: locks, ``ablate.json``, reports) run in the runner, so resume, locks and figures
are the same.

Stages are built first, in dependency order (independent ones side by side), then the arms x
seeds in the order seed 0 of every arm, seed 1 of every arm, ... (a first comparison arrives
early). Each arm x seed trains (``--resume`` when its folder holds a checkpoint), then runs its
scorers in the same lane.

Stops: everything lives on disk, so rerunning the same command resumes: a stopped training goes
on from its newest checkpoint (the engine resumes exactly: same data order, RNG streams and
schedule, so the figures are those of an uninterrupted run), finished arms x seeds are skipped,
missing scorer files are made. The children die with the runner (Linux: ``PR_SET_PDEATHSIG``; and
they share its process group; a Ray task's child dies with its worker, which Ray ends with the
runner or on a stop's ``ray.cancel``); a folder locked by a process that still runs is reported and
left alone (under Ray the lock names the runner, on the runner's host). A run folder trained with
other settings (another budget, world, overrides) is refused rather than mixed: use another
``--out``; one that holds no checkpoint and no score yet
(a start stopped before its first checkpoint) is emptied and started again with the new settings.

Builds: a stage rebuilt under the same hash (the cache lost, another machine) need not hold the
same bytes, so each run records the build (``stage.json``'s finished time) of every stage it
depends on. A run whose stages were rebuilt since it started is not continued (its checkpoints
would mix two builds; remove its folder to run it again); a finished one is kept and reported as
of another build, listed but left out of the means (``occkit.ablate.report``). Runs recorded
before builds were (no ``stage_builds``) are dated by their first start in ``train.log``: a stage
finished after it is another build.
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from occkit import __version__
from occkit.ablate.estimate import Pace, estimate, estimate_text, measured_seconds_per_step, pace_text
from occkit.ablate.lock import FolderLock, LockBusy
from occkit.ablate.report import collect, time_left_text, write_report
from occkit.ablate.scorers import SCORERS, ScoreContext
from occkit.ablate.spec import (
    AblationSpec,
    Scoring,
    arm_sets,
    init_from_words,
    refs_in,
    runner_sets,
    substitute,
    upstream,
)
from occkit.ablate.stages import (
    RUN_RECORD,
    StagePlan,
    checkpoint_step,
    machine_info,
    plan_stages,
    stage_folders,
    stage_hashes,
)
from occkit.fileio import read_json, write_json_atomic

RUN_LOCK = "ablate.lock"
STAGE_LOCK = "stage.lock"


class JobError(RuntimeError):
    """A stage or an arm x seed failed; the message is one line naming it and its log."""


@dataclass
class RunOptions:
    """How ``occkit ablate`` runs a spec (none of this changes the figures, except the device)."""

    out: Path
    """The ablation folder."""
    cache: Path
    """The stage cache (shared by specs)."""
    lanes: int = 1
    """Commands at once (subprocesses, or Ray tasks in flight)."""
    threads: int = 1
    """Torch threads per subprocess."""
    device: str = "cpu"
    """``cpu``, ``cuda`` (with several lanes on several GPUs, lane slot ``i`` takes GPU ``i`` mod
    their number: :func:`lane_gpus`; on Ray, each task its own GPU) or ``cuda:N`` (all lanes share GPU N)."""
    launcher: str = "local"
    """``local`` (subprocesses of the runner) or ``ray`` (a Ray task per command: :class:`RayLauncher`)."""
    only: list[str] | None = None
    """Run only these (None = all): arm names (every seed, seed-major) or single runs named as their
    folders, ``ARM_sSEED``; with any single run named, the runs go in the order listed."""
    stages_only: bool = False
    """Build the stages the arms need and stop (no arm runs)."""
    command: str = ""
    """The ``occkit ablate`` command line, for the report."""
    poll_seconds: float = 0.1
    progress_seconds: float = 30.0  # a building stage's newest log line, echoed this often
    """How often the lanes are checked."""


@dataclass
class Command:
    """One subprocess of a job: ``occkit <argv>`` with its output appended to ``log``."""

    argv: list[str]
    log: Path
    on_start: Callable[[int], None] | None = None
    progress: str | None = None
    """When set, while it runs the newest line of its log is echoed every ``progress_seconds``
    after this name (a stage being built: minutes with nothing else on the console)."""
    pace: Pace | None = None
    """When set (a training), its pace is read from its ``train.jsonl`` while it runs and handed,
    once, to ``run_jobs``' ``on_pace``."""


@dataclass
class Wait:
    """A job's pause with no subprocess: until ``done()`` (a stage this runner needs being built by
    another runner beside it, on the same cache), polled as commands are; the job then receives 0."""

    done: Callable[[], bool]
    what: str


@dataclass
class Job:
    """A stage or an arm x seed: a generator yielding :class:`Command` s and receiving their exit codes."""

    name: str
    label: str
    make: Callable[[], Generator[Command, int, None]]
    deps: list[str] = field(default_factory=list)


def occkit_argv(argv: list[str]) -> list[str]:
    """The full command line of ``occkit <argv>`` in this Python."""
    return [sys.executable, "-m", "occkit.cli", *argv]


def show(argv: list[str]) -> str:
    """``occkit <argv>`` as one shell-quoted line."""
    return "occkit " + shlex.join(argv)


def _death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has Linux kill the child (SIGKILL) when the runner dies, or None
    elsewhere. (It fires when the thread that started the child ends: the runner starts them all
    from its main thread.)"""
    if not sys.platform.startswith("linux"):
        return None
    from functools import partial

    from occkit.processes import die_with_parent

    return partial(die_with_parent, os.getpid(), signal.SIGKILL)


def _parse_time(text: str | None) -> float | None:
    """Seconds since the epoch of a ``stage.json`` time (``%Y-%m-%dT%H:%M:%S%z``), or None."""
    import datetime as dt

    try:
        return dt.datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except ValueError:
        return None


def first_start(log: Path) -> float | None:
    """When a run first started (seconds since the epoch): the first ``# occkit ablate`` header of its
    ``train.log`` (local time, as written), or None."""
    try:
        with log.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("# occkit ablate "):
                    return time.mktime(time.strptime(line[16:35], "%Y-%m-%d %H:%M:%S"))
    except (OSError, ValueError):
        return None
    return None


def _empty_but_lock(run: Path) -> None:
    """Remove everything in a run folder but its lock (a start begun again)."""
    for p in run.iterdir():
        if p.name != RUN_LOCK:
            shutil.rmtree(p) if p.is_dir() else p.unlink()


class Ablation:
    """A parsed spec with its stages planned, ready to run, plan or report."""

    def __init__(self, spec: AblationSpec, opts: RunOptions) -> None:
        self.spec, self.opts = spec, opts
        self.out = Path(opts.out).resolve()
        self._runs = select_runs(spec, opts.only)
        self.arms = list(dict.fromkeys(a for a, _ in self._runs))
        self.plans: dict[str, StagePlan] = plan_stages(spec, opts.cache)
        self.folders = stage_folders(self.plans)
        self.needed = upstream(spec.stages, self._refs(self.arms) + list(spec.baselines))
        """The stages the arms to run need and the baselines (with their upstream), in dependency order."""
        self.reported = upstream(spec.stages, self._refs(list(spec.arms)) + list(spec.baselines))
        """The stages any arm of the spec needs (the report's stage table)."""

    # ---------------------------------------------------------------------------- what and where
    def _refs(self, arms: list[str]) -> list[str]:
        refs: list[str] = []
        for a in arms:
            arm = self.spec.arms[a]
            refs += refs_in(arm.data) + refs_in(arm.set) + refs_in(arm.init_from or "")
            for s in self.spec.scorings_for(a):
                refs += refs_in(s.options) + refs_in(s.data or "")
        return list(dict.fromkeys(refs))

    def runs(self) -> list[tuple[str, int]]:
        """The arm x seed pairs to run: seed-major, or in ``--only``'s order when it names single runs."""
        return list(self._runs)

    def run_dir(self, arm: str, seed: int) -> Path:
        return self.out / "runs" / f"{arm}_s{seed}"

    def identity(self, arm: str, seed: int) -> dict[str, Any]:
        """What makes a run's figures: recorded in ``ablate.json``, compared on every resume."""
        a, h = self.spec.arms[arm], stage_hashes(self.plans)
        return {
            "arm": arm,
            "seed": seed,
            "preset": a.preset,
            "data": substitute(a.data, h),
            "set": [substitute(s, h) for s in a.set],
            "init_from": substitute(a.init_from, h) if a.init_from else None,
            "budget": self.spec.budget,
            "val_every": self.spec.val_every,
        }

    def stage_builds(self, arm: str) -> dict[str, str | None]:
        """The current build of every stage the arm depends on (with their upstream)."""
        return {n: self.plans[n].build() for n in upstream(self.spec.stages, self._refs([arm]))}

    def build_state(self, arm: str, seed: int) -> tuple[str, list[str]]:
        """``(state, stages)``: whether a run started from the stages' current builds: ``current``,
        ``other`` (with the stages rebuilt since it started), ``unknown`` (no record to tell) or
        ``new`` (not started)."""
        run = self.run_dir(arm, seed)
        if not (run / RUN_RECORD).is_file():
            return "new", []
        rec = read_json(run / RUN_RECORD)
        now = self.stage_builds(arm)
        recorded = rec.get("stage_builds")
        if isinstance(recorded, dict):
            other = [n for n in now if n in recorded and recorded[n] != now[n]]
            return ("other" if other else "current"), other
        started = first_start(run / "train.log")  # a run recorded before builds were: date it
        if started is None or any(b is None for b in now.values()):
            return "unknown", []
        other = [n for n, b in now.items() if _parse_time(b) is not None and _parse_time(b) > started]
        return ("other" if other else "current"), other

    def train_argv(self, arm: str, seed: int) -> list[str]:
        """``occkit train`` of one arm x seed (``--resume`` when its folder holds a checkpoint)."""
        a, run = self.spec.arms[arm], self.run_dir(arm, seed)
        argv = [
            "train",
            a.preset,
            "--data",
            substitute(a.data, self.folders),
            "--out",
            str(run),
            "--max-steps",
            str(self.spec.budget),
            "--set",
            *runner_sets(self.spec, seed, self.opts.threads, self.opts.device),
        ]
        sets = arm_sets(a, self.folders)
        if sets:
            argv += ["--set", *sets]
        argv += [*init_from_words(a, self.folders), "--no-progress"]
        if checkpoint_step(run) is not None:
            argv.append("--resume")
        return argv

    def score_context(self, arm: str, seed: int, scoring: Scoring) -> ScoreContext:
        """What one scoring entry needs for one arm x seed (stage references resolved)."""
        data = substitute(scoring.data or self.spec.arms[arm].data, self.folders)
        return ScoreContext(
            run=self.run_dir(arm, seed),
            data=data,
            device=self.opts.device,
            threads=self.opts.threads,
            options=substitute(scoring.options, self.folders),
            previous_step=self.spec.budget - self.spec.val_every if self.spec.val_every else None,
        )

    def missing_scores(self, arm: str, seed: int) -> list[tuple[Scoring, ScoreContext, list[str]]]:
        """The scorers of an arm x seed whose files are not all there, with their missing files."""
        run = self.run_dir(arm, seed)
        out = []
        for sc in self.spec.scorings_for(arm):
            ctx = self.score_context(arm, seed, sc)
            missing = [o for o in SCORERS[sc.scorer].outputs(ctx.options) if not (run / o).is_file()]
            if missing:
                out.append((sc, ctx, missing))
        return out

    def complete(self, arm: str, seed: int) -> bool:
        """Whether a run is trained to the budget and scored by every scorer (lock aside)."""
        return checkpoint_step(self.run_dir(arm, seed)) == self.spec.budget and not self.missing_scores(arm, seed)

    def locked_here(self, arm: str, seed: int) -> bool:
        """Whether this runner holds the run's lock (it is training or scoring it now)."""
        return FolderLock(self.run_dir(arm, seed) / RUN_LOCK, "").mine()

    def run_state(self, arm: str, seed: int) -> tuple[str, str]:
        """``(status, detail)``: status ``done``, ``partial``, ``new`` or ``locked``."""
        run = self.run_dir(arm, seed)
        if not run.exists():
            return "new", ""
        who = FolderLock(run / RUN_LOCK, "").busy()
        if who is not None:
            return "locked", f"by {who}"
        step = checkpoint_step(run)
        if step is None:
            return ("partial", "no checkpoint yet") if (run / RUN_RECORD).is_file() else ("new", "")
        build, stages = self.build_state(arm, seed)
        rebuilt = f"; stage(s) {', '.join(stages)} rebuilt since it started" if build == "other" else ""
        if step < self.spec.budget:
            return "partial", f"step {step} of {self.spec.budget}{rebuilt}"
        missing = [o for _, _, m in self.missing_scores(arm, seed) for o in m]
        if missing:
            return "partial", f"trained; to score: {', '.join(missing)}{rebuilt}"
        return "done", (f"from another build of stage(s) {', '.join(stages)}" if build == "other" else "")

    # ---------------------------------------------------------------------------- the plan
    def plan_text(self) -> str:
        """What a run would do: stages cached or not, arms x seeds done or not, and the commands."""
        sp = self.spec
        lines = [
            f"ablation {sp.name} ({sp.path}): {len(self.arms)} arm(s), {len(self._runs)} run(s), "
            f"budget {sp.budget} steps, validation and checkpoint every {sp.val_every} steps, "
            f"metric {sp.metric}, tolerance {sp.tolerance:g}",
            f"stages (cache {Path(self.opts.cache).resolve()}):",
        ]
        if not self.needed:
            lines.append("  (none)")
        unused = [n for n in self.plans if n not in self.needed]
        for name in self.needed:
            plan = self.plans[name]
            status = plan.status()
            note = {
                "partial": " (stopped half-way: " + ("continued)" if plan.continues() else "redone from scratch)")
            }.get(status, "")
            who = FolderLock(plan.folder / STAGE_LOCK, "").busy() if status != "cached" else None
            if who is not None:  # its lock is held: not stopped, another process is building it now
                status, note = (
                    "building",
                    f" (being built now by {who}, which holds {plan.folder / STAGE_LOCK}; a run waits for it)",
                )
            lines.append(f"  {name:<16} {status:<8} {plan.out}{note}")
            if status != "cached":
                lines.append(f"      $ {show(plan.argv(self.opts.threads, self.opts.device))}")
        if unused:
            lines.append(f"  not needed by these arms (not built): {', '.join(unused)}")
        lines.append(
            f"runs ({self.out / 'runs'}; {self.opts.lanes} lane(s) x {self.opts.threads} thread(s) on "
            f"{self.opts.device}):"
        )
        for arm, seed in self.runs():
            status, detail = self.run_state(arm, seed)
            lines.append(f"  {arm + '_s' + str(seed):<24} {status}" + (f" ({detail})" if detail else ""))
            if status in ("done", "locked"):
                continue
            step = checkpoint_step(self.run_dir(arm, seed))
            if step is None or step < sp.budget:
                lines.append(f"      $ {show(self.train_argv(arm, seed))}")
            pending = self.missing_scores(arm, seed)
            for sc, ctx, missing in pending:
                for argv in SCORERS[sc.scorer].commands(ctx, missing):
                    lines.append(f"      $ {show(argv)}")
        lines.append(self.time_text())
        return "\n".join(lines)

    def time_text(self) -> str:
        """The time the ablation should still take: paced by the runs finished here once one has
        finished (report.time_left), before that from the presets' measured step times (estimate)."""
        paced = collect(self)["time_left"]
        if paced is not None and paced["runs"] == 0:
            return time_left_text(paced)
        if paced is not None:
            return time_left_text(paced) + " (paced by the finished runs, not by the presets' measured step times)"
        return estimate_text(estimate(self), self.spec.budget)

    # ---------------------------------------------------------------------------- jobs
    def _stage_job(self, plan: StagePlan) -> Generator[Command, int, None]:
        if plan.status() == "cached":
            return
        plan.folder.mkdir(parents=True, exist_ok=True)
        lock = FolderLock(plan.folder / STAGE_LOCK, f"stage {plan.name}")
        try:
            lock.acquire()
        except LockBusy:
            # another runner (an ablation beside this one, sharing the cache) builds it: wait for it,
            # then use its build; build it here only when that runner stopped without finishing
            who = lock.busy() or "another runner"
            self._say(f"stage {plan.name}: being built by {who}; waiting for that build")
            yield Wait(lambda: plan.status() == "cached" or lock.busy() is None, f"stage {plan.name}")
            if plan.status() == "cached":
                self._say(f"stage {plan.name}: built by the other runner -> {plan.out}")
                return
            try:
                lock.acquire()
            except LockBusy as e:
                raise JobError(str(e)) from None
        try:
            if plan.status() == "cached":  # another runner finished it meanwhile
                return
            plan.prepare()
            argv = plan.argv(self.opts.threads, self.opts.device)
            self._say(f"stage {plan.name}: building ({plan.command}) -> {plan.log}")
            t0 = time.monotonic()
            preset = plan.args.get("config")
            pace = (
                Pace(plan.out / "train.jsonl", preset, f"stage {plan.name}")
                if plan.command == "train" and isinstance(preset, str)
                else None
            )
            rc = yield Command(argv, plan.log, lock.set_child, progress=f"stage {plan.name}", pace=pace)
            wall = time.monotonic() - t0
            if rc != 0:
                raise JobError(f"stage {plan.name} (occkit {plan.command}) failed with exit code {rc}; see {plan.log}")
            write_json_atomic(
                plan.record_path,
                {
                    "stage": plan.name,
                    "command": plan.command,
                    "args": plan.args,
                    "argv": argv,
                    "hash": plan.hash,
                    "occkit": __version__,
                    "wall_seconds": round(wall, 3),
                    "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "machine": machine_info(),
                },
            )
            self._say(f"stage {plan.name}: built in {wall:.1f} s -> {plan.out}")
        finally:
            lock.release()

    def _arm_job(self, arm: str, seed: int) -> Generator[Command, int, None]:
        sp, run = self.spec, self.run_dir(arm, seed)
        label = f"arm {arm} seed {seed}"
        run.mkdir(parents=True, exist_ok=True)
        lock = FolderLock(run / RUN_LOCK, label)
        try:
            lock.acquire()
        except LockBusy as e:
            raise JobError(str(e)) from None
        record: dict[str, Any] = {}
        try:
            record = self._run_record(arm, seed)
            step = checkpoint_step(run)
            if step is not None and step > sp.budget:
                raise JobError(
                    f"{label}: {run} holds a checkpoint at step {step}, past the budget {sp.budget}; use another --out"
                )
            if step is None or step < sp.budget:
                argv = self.train_argv(arm, seed)
                self._say(
                    f"{label}: training "
                    + (f"from step {step}" if step else "from step 0")
                    + f" -> {run / 'train.log'}"
                )
                t0 = time.monotonic()
                pace = Pace(run / "train.jsonl", sp.arms[arm].preset, label)
                rc = yield Command(argv, run / "train.log", lock.set_child, pace=pace)
                record["train_seconds"] = record.get("train_seconds", 0.0) + time.monotonic() - t0
                write_json_atomic(run / RUN_RECORD, record)
                if rc != 0:
                    raise JobError(f"{label}: occkit train failed with exit code {rc}; see {run / 'train.log'}")
                step = checkpoint_step(run)
                if step != sp.budget:
                    raise JobError(
                        f"{label}: training ended at step {step}, not the budget {sp.budget} (a time limit, "
                        f"train.max_minutes?); see {run / 'train.log'}"
                    )
            for sc, ctx, missing in self.missing_scores(arm, seed):
                scorer = SCORERS[sc.scorer]
                for tmp in scorer.temporary(ctx):  # a half-written leftover of a stopped scoring
                    shutil.rmtree(tmp, ignore_errors=True)
                named = (
                    f"{sc.scorer}_{sc.options['name']}" if sc.options.get("name") else sc.scorer
                )  # eval_gen's feedback, text
                named += "_frustum" if sc.options.get("frustum") else ""  # occ3d inside the run's camera frusta
                log = run / f"score_{named}.log"
                self._say(f"{label}: scoring ({named}) -> {log}")
                t0 = time.monotonic()
                try:
                    for argv in scorer.commands(ctx, missing):
                        rc = yield Command(argv, log, lock.set_child)
                        if rc != 0:
                            raise JobError(
                                f"{label}: scorer {sc.scorer} (occkit {argv[0]}) failed with exit code {rc}; see {log}"
                            )
                finally:
                    record["score_seconds"] = record.get("score_seconds", 0.0) + time.monotonic() - t0
                    write_json_atomic(run / RUN_RECORD, record)
                if not ctx.options.get("keep_predictions"):
                    for tmp in scorer.temporary(ctx):
                        shutil.rmtree(tmp, ignore_errors=True)
            record["error"] = None
            write_json_atomic(run / RUN_RECORD, record)
        except JobError as e:
            if record:
                record["error"] = str(e)
                write_json_atomic(run / RUN_RECORD, record)
            raise
        finally:
            lock.release()

    def _run_record(self, arm: str, seed: int) -> dict[str, Any]:
        """The run's ``ablate.json``, made on its first start; a run trained with other settings, or
        from stages rebuilt since it started, is refused (or, holding nothing yet, started again)."""
        run, ident = self.run_dir(arm, seed), self.identity(arm, seed)
        path = run / RUN_RECORD

        def start_again(empty: bool = True) -> dict[str, Any]:
            if empty:
                _empty_but_lock(run)
            record = {
                "identity": ident,
                "stage_builds": self.stage_builds(arm),
                "train_seconds": 0.0,
                "score_seconds": 0.0,
                "error": None,
            }
            write_json_atomic(path, record)
            return record

        if not path.is_file():
            if checkpoint_step(run) is not None:
                raise JobError(
                    f"arm {arm} seed {seed}: {run} holds checkpoints that occkit ablate did not make ({RUN_RECORD} is "
                    "missing); use another --out, or remove that folder"
                )
            return start_again(empty=False)  # a first start: nothing of occkit ablate's there to remove
        record = read_json(path)
        old = record.get("identity", {})
        fresh = checkpoint_step(run) is None and not any(run.glob("score_*.json"))  # nothing trained or scored yet
        if old != ident:
            diff = next((k for k in ident if old.get(k) != ident[k]), "identity")
            if not fresh:
                raise JobError(
                    f"arm {arm} seed {seed}: {run} was trained with other settings ({diff}: {old.get(diff)!r}, now "
                    f"{ident.get(diff)!r}); use another --out, or remove that folder"
                )
            self._say(
                f"arm {arm} seed {seed}: {run} holds no checkpoint of its former settings ({diff}: "
                f"{old.get(diff)!r}); starting it again with {ident.get(diff)!r}"
            )
            return start_again()
        build, stages = self.build_state(arm, seed)
        if build == "other" and fresh:
            self._say(
                f"arm {arm} seed {seed}: stage(s) {', '.join(stages)} rebuilt since {run} started, and it holds "
                "no checkpoint: starting it again from the current build"
            )
            return start_again()
        if build == "other" and not self.complete(arm, seed):
            raise JobError(
                f"arm {arm} seed {seed}: stage(s) {', '.join(stages)} were rebuilt since {run} started; "
                "continuing it would mix two builds: remove that folder to run it again from the current build"
            )
        if fresh and not isinstance(record.get("stage_builds"), dict):  # recorded before builds were: starts from these
            record["stage_builds"] = self.stage_builds(arm)
            write_json_atomic(path, record)
        return record

    # ---------------------------------------------------------------------------- running
    def _say(self, msg: str) -> None:
        print(f"occkit ablate: {msg}", flush=True)

    def stage_jobs(self) -> list[Job]:
        """A job per needed stage not built yet (named ``stage:NAME``), each after those of its
        upstream stages being built."""
        to_build = [n for n in self.needed if self.plans[n].status() != "cached"]
        return [
            Job(
                f"stage:{n}",
                f"stage {n}",
                lambda p=self.plans[n]: self._stage_job(p),
                [f"stage:{d}" for d in self.plans[n].deps if d in to_build],
            )
            for n in to_build
        ]

    def arm_jobs(self, building: set[str]) -> list[Job]:
        """A job per arm x seed (named ``run:ARM_sSEED``), seed-major, each after the stages in
        ``building`` that it needs (its data, ``set``, ``init_from`` and scorers, with their upstream)."""
        jobs = []
        for a, s in self.runs():
            needs = upstream(self.spec.stages, self._refs([a]))
            jobs.append(
                Job(
                    f"run:{a}_s{s}",
                    f"arm {a} seed {s}",
                    lambda a=a, s=s: self._arm_job(a, s),
                    [f"stage:{n}" for n in needs if n in building],
                )
            )
        return jobs

    def run(self) -> int:
        """Build the needed stages and run every arm x seed, each as soon as the stages it needs
        are built (a lane never waits for a stage its next run does not need); 0 when all are done."""
        launcher = self.launcher()  # before any work: a Ray cluster that cannot run these is refused here
        try:
            return self._run(launcher)
        finally:
            launcher.close()

    def launcher(self) -> Launcher:
        """Where the commands run (``--launcher``): subprocesses here (``--device cuda`` with lanes
        on several GPUs: a GPU per lane slot), or Ray tasks with ``--threads`` CPUs (and a GPU on
        cuda) each, after checking that every node sees ``--out`` and the stage cache."""
        env = self._env()
        if self.opts.launcher == "local":
            return LocalLauncher(env, lane_gpus(env, self.opts.device, self.opts.lanes))
        if self.opts.launcher != "ray":
            raise ValueError(f"--launcher {self.opts.launcher}: unknown (local or ray)")
        if self.opts.device not in ("cpu", "cuda"):
            raise ValueError(
                f"--device {self.opts.device} with --launcher ray: Ray gives each task its own GPU; use --device cuda"
            )
        changed = {k: v for k, v in env.items() if os.environ.get(k) != v}
        launcher = RayLauncher(
            changed, num_cpus=max(1, self.opts.threads), num_gpus=1 if self.opts.device == "cuda" else 0
        )
        try:
            launcher.check([self.out, Path(self.opts.cache).resolve()])
        except BaseException:
            launcher.close()
            raise
        return launcher

    def _run(self, launcher: Launcher) -> int:
        stages = self.stage_jobs()
        self.out.mkdir(parents=True, exist_ok=True)
        write_report(self)
        self._say(self.time_text())

        def finished(job: Job, error: str | None) -> None:
            if error:
                self._say(f"error: {error}")
            if not job.name.startswith("run:"):
                return
            results = write_report(self)
            if error:
                return
            arm, seed = job.name[len("run:") :].rsplit("_s", 1)
            s = results["arms"][arm]["seeds"][seed]
            value = s.get("metric")
            shown = "n/a" if value is None else f"{value:.2f}"
            self._say(
                f"{job.label}: done: {self.spec.metric} {shown} at step {s.get('step')} -> {self.out / 'results.md'}"
            )

        paced: set[str] = set()

        def pace_here(pace: Pace, seconds: float, steps: tuple[int, int]) -> None:
            if pace.preset in paced:  # once per preset: its first training here says it
                return
            paced.add(pace.preset)
            self._say(pace_text(pace, seconds, steps, self.opts.threads, estimate(self)))

        arms = [] if self.opts.stages_only else self.arm_jobs({j.name[len("stage:") :] for j in stages})
        errors = run_jobs(
            stages + arms,
            self.opts.lanes,
            self._env(),
            self.opts.poll_seconds,
            on_finish=finished,
            launcher=launcher,
            progress_seconds=self.opts.progress_seconds,
            on_pace=pace_here,
        )
        results = write_report(self)
        bad_stages = [n[len("stage:") :] for n, e in errors.items() if e and n.startswith("stage:")]
        if self.opts.stages_only:
            self._say(
                f"stages: {len(self.needed) - len(bad_stages)} of {len(self.needed)} cached"
                + (f"; failed: {', '.join(bad_stages)}" if bad_stages else "")
                + f" ({self.opts.cache}); no arm run (--stages-only)"
            )
            return 1 if bad_stages else 0
        bad = [n[len("run:") :] for n, e in errors.items() if e and n.startswith("run:")]
        done = sum(1 for a, s in self.runs() if results["arms"][a]["seeds"][str(s)]["status"] == "done")
        self._say(
            f"{done} of {len(self.runs())} run(s) done"
            + (f", {len(bad)} not ({', '.join(bad)})" if bad else "")
            + (f"; stage(s) failed: {', '.join(bad_stages)}" if bad_stages else "")
            + f": {self.out / 'results.md'}"
        )
        if done < len(self.runs()) or results["time_left"] and results["time_left"]["runs"]:
            self._say(time_left_text(results["time_left"]))
        return 1 if bad or bad_stages else 0

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        t = str(max(1, self.opts.threads))
        env.update(OMP_NUM_THREADS=t, MKL_NUM_THREADS=t, PYTHONUNBUFFERED="1")
        return env


def select_runs(spec: AblationSpec, only: list[str] | None) -> list[tuple[str, int]]:
    """The arm x seed pairs ``--only`` asks for (see :attr:`RunOptions.only`).

    Raises ``ValueError`` naming an entry that is neither an arm of the spec nor ``ARM_sSEED``
    with a seed of the spec (its ``seeds``, or ``--seeds``).
    """
    if not only:
        return [(a, s) for s in spec.seeds for a in spec.arms]
    singles = [w for w in only if w not in spec.arms]
    if not singles:
        return [(a, s) for s in spec.seeds for a in only]
    runs: list[tuple[str, int]] = []
    for word in only:
        if word in spec.arms:
            runs += [(word, s) for s in spec.seeds]
            continue
        arm, sep, seed = word.rpartition("_s")
        if not sep or arm not in spec.arms or not seed.isdigit():
            raise ValueError(
                f"--only {word}: unknown arm or run (arms: {', '.join(spec.arms)}; a single run is ARM_sSEED)"
            )
        if int(seed) not in spec.seeds:
            raise ValueError(f"--only {word}: seed {seed} is not among the seeds {spec.seeds} (add it with --seeds)")
        runs.append((arm, int(seed)))
    return list(dict.fromkeys(runs))


def lane_gpus(env: dict[str, str], device: str, lanes: int, count: Callable[[], int] | None = None) -> list[str] | None:
    """The GPUs the lanes take in turn (lane slot ``i`` gets ``gpus[i % len(gpus)]``), or None when
    the lanes share what they see: only ``--device cuda`` with two lanes or more on two GPUs or
    more spreads them. The GPUs are those of ``CUDA_VISIBLE_DEVICES`` in ``env`` when it is set,
    else ``0 .. count()-1`` (``count`` defaults to ``torch.cuda.device_count``)."""
    if device != "cuda" or lanes < 2:
        return None
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        gpus = [g.strip() for g in visible.split(",") if g.strip()]
    else:
        if count is None:
            import torch

            count = torch.cuda.device_count
        gpus = [str(i) for i in range(count())]
    return gpus if len(gpus) > 1 else None


def lane_env(env: dict[str, str], slot: int, gpus: list[str] | None) -> dict[str, str]:
    """The environment of a command in lane slot ``slot``: ``env`` with ``CUDA_VISIBLE_DEVICES``
    set to the slot's GPU when the lanes spread over ``gpus`` (see :func:`lane_gpus`)."""
    if not gpus:
        return env
    return {**env, "CUDA_VISIBLE_DEVICES": gpus[slot % len(gpus)]}


class Launcher(ABC):
    """Where the commands of :func:`run_jobs` run: :meth:`start` one (its output appended to its
    log after ``header``), :meth:`poll` its exit code (None while it runs), :meth:`stop` those
    still running (on a stop of the runner), :meth:`close` when the runner is done."""

    @abstractmethod
    def start(self, cmd: Command, header: str, slot: int) -> Any:
        """See the class."""

    @abstractmethod
    def poll(self, handle: Any) -> int | None:
        """See the class."""

    @abstractmethod
    def stop(self, handles: list[Any]) -> None:
        """See the class."""

    def close(self) -> None:
        pass


class LocalLauncher(Launcher):
    """Each command a subprocess of the runner, with ``env`` (and lane slot ``i``'s GPU when ``gpus``
    is given: :func:`lane_env`); the children die with the runner."""

    def __init__(self, env: dict[str, str], gpus: list[str] | None = None) -> None:
        self.env, self.gpus = env, gpus
        self._preexec = _death_signal()

    def start(self, cmd: Command, header: str, slot: int) -> tuple[subprocess.Popen, Any]:
        fh = open(cmd.log, "ab")
        try:
            fh.write(header.encode())
            fh.flush()
            proc = subprocess.Popen(
                occkit_argv(cmd.argv),
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=lane_env(self.env, slot, self.gpus),
                preexec_fn=self._preexec,
            )
        except BaseException:
            fh.close()
            raise
        if cmd.on_start is not None:
            cmd.on_start(proc.pid)
        return proc, fh

    def poll(self, handle: tuple[subprocess.Popen, Any]) -> int | None:
        proc, fh = handle
        rc = proc.poll()
        if rc is not None:
            fh.close()
        return rc

    def stop(self, handles: list[tuple[subprocess.Popen, Any]]) -> None:
        for proc, _ in handles:
            if proc.poll() is None:
                proc.terminate()
        for proc, fh in handles:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            fh.close()


def run_command(argv: list[str], log: str, header: str, env: dict[str, str], cwd: str) -> int:
    """Run ``occkit <argv>`` here, its output appended to ``log`` after ``header``, with this
    process's environment updated by ``env``, in ``cwd``; its exit code. (The body of a Ray task:
    the child dies with the worker, so ``ray.cancel(force=True)`` stops it.)"""
    if not os.path.isdir(cwd):
        raise OSError(f"the runner's working folder {cwd} is not on this node ({_node_name()})")
    with open(log, "ab") as fh:
        fh.write(header.encode())
        fh.flush()
        proc = subprocess.Popen(
            occkit_argv(argv),
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **env},
            cwd=cwd,
            preexec_fn=_death_signal(),
        )
        try:
            return proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise


def _node_name() -> str:
    import socket

    return socket.gethostname()


def check_folder(path: str, token: str) -> str | None:
    """None when ``path`` is a folder this node can write in and that holds the file ``.occkit-ray-<token>``
    the runner wrote (so the same folder as the runner's, not one of the same name); else why not."""
    if not os.path.isdir(path):
        return "no such folder"
    mark = os.path.join(path, f".occkit-ray-{token}")
    try:
        with open(mark, encoding="utf-8") as f:
            if f.read() != token:
                return "not the runner's folder (another file system under the same name?)"
    except OSError:
        return "not the runner's folder (another file system under the same name?)"
    probe = os.path.join(path, f".occkit-ray-{token}-{os.getpid()}-{_node_name()}")
    try:
        with open(probe, "w", encoding="utf-8") as f:
            f.write(token)
        os.unlink(probe)
    except OSError as e:
        return f"not writable ({e.strerror or e})"
    return None


class RayLauncher(Launcher):
    """Each command a Ray task running :func:`run_command` with ``num_cpus`` CPUs and ``num_gpus``
    GPUs (Ray sets the task's ``CUDA_VISIBLE_DEVICES``); ``env`` holds what the runner changes in
    its environment (``OMP_NUM_THREADS`` ...), which travels with each task. Ray starts a local
    cluster with this machine's resources unless it runs already or ``RAY_ADDRESS`` names one;
    :meth:`close` shuts down what this launcher started."""

    def __init__(self, env: dict[str, str], num_cpus: int, num_gpus: int = 0) -> None:
        try:
            import ray
        except ImportError:
            raise ValueError(
                "--launcher ray: ray is not installed; pip install -e '.[ray]' (or pip install 'ray>=2.9')"
            ) from None
        self.ray = ray
        self.env, self.num_cpus, self.num_gpus = env, num_cpus, num_gpus
        self.started = False
        if not ray.is_initialized():
            import logging

            kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
            if not os.environ.get("RAY_ADDRESS"):
                kwargs["include_dashboard"] = False
            import threading

            _reachable(os.environ.get("RAY_ADDRESS", ""))
            main = threading.current_thread() is threading.main_thread()
            on_term = signal.getsignal(signal.SIGTERM) if main else None
            try:
                ray.init(**kwargs)
            except (ConnectionError, RuntimeError) as e:
                where = (
                    f"RAY_ADDRESS={os.environ['RAY_ADDRESS']}" if os.environ.get("RAY_ADDRESS") else "a local cluster"
                )
                raise ValueError(
                    f"--launcher ray: could not start or reach {where}: "
                    f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
                ) from None
            if (
                on_term is not None
            ):  # Ray's own handler aborts the process: SIGTERM stops the runs and releases the locks again
                signal.signal(signal.SIGTERM, on_term)
            self.started = True
        self._task = ray.remote(run_command).options(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=0)
        # a command that computes on no GPU (synth, pseudolabel, a stage on the CPU) asks for none
        self._cpu_task = ray.remote(run_command).options(num_cpus=num_cpus, num_gpus=0, max_retries=0)
        self._logs: dict[Any, Path] = {}

    def nodes(self) -> list[dict[str, Any]]:
        """The cluster's alive nodes (``ray.nodes()`` entries)."""
        return [n for n in self.ray.nodes() if n.get("Alive")]

    def check(self, folders: list[Path], timeout: float = 120.0, cwd: str | None = None) -> None:
        """Refuse (``ValueError``, one line naming the node and the folder) a cluster where no node
        has the resources of a task, or where an alive node does not see one of ``folders`` (the
        runner's, made here first) as the same writable folder, has no working folder ``cwd`` (the
        runner's: the tasks run there), or runs another occkit than the runner (:func:`occkit_identity`:
        its version and a digest of its source files)."""
        import uuid

        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        nodes = self.nodes()
        fits = [
            n
            for n in nodes
            if n.get("Resources", {}).get("CPU", 0) >= self.num_cpus
            and n.get("Resources", {}).get("GPU", 0) >= self.num_gpus
        ]
        if not fits:
            have = ", ".join(
                f"{n.get('NodeManagerAddress')}: {n.get('Resources', {}).get('CPU', 0):g} CPU, "
                f"{n.get('Resources', {}).get('GPU', 0):g} GPU"
                for n in nodes
            )
            raise ValueError(
                f"--launcher ray: no node of the cluster has the {self.num_cpus} CPU(s)"
                + (f" and {self.num_gpus} GPU" if self.num_gpus else "")
                + " a run asks for (--threads"
                + (", --device cuda" if self.num_gpus else "")
                + f"; nodes: {have or 'none'})"
            )
        token = uuid.uuid4().hex
        marks = []
        try:
            for folder in folders:
                folder.mkdir(parents=True, exist_ok=True)
                mark = folder / f".occkit-ray-{token}"
                mark.write_text(token, encoding="utf-8")
                marks.append(mark)
            probe = self.ray.remote(_check_node)
            cwd = os.getcwd() if cwd is None else cwd
            refs = {
                probe.options(
                    num_cpus=0,
                    max_retries=0,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False),
                ).remote([str(f) for f in folders], token, cwd): n
                for n in nodes
            }
            ready, waiting = self.ray.wait(list(refs), num_returns=len(refs), timeout=timeout)
            if waiting:
                n = refs[waiting[0]]
                raise ValueError(
                    f"--launcher ray: node {n.get('NodeManagerAddress')} did not answer the check of "
                    f"{', '.join(map(str, folders))} in {timeout:.0f} s"
                )
            mine = occkit_identity()
            for ref in ready:
                node = refs[ref].get("NodeManagerAddress")
                try:
                    seen = self.ray.get(ref)
                except Exception as e:  # noqa: BLE001 - e.g. occkit not importable there: the node is named
                    cause = getattr(e, "cause", None) or e
                    last = str(cause).strip().splitlines()[-1] if str(cause).strip() else ""
                    raise ValueError(
                        f"--launcher ray: node {node} could not run occkit's check ({type(cause).__name__}: {last}); "
                        "install the runner's occkit on every node"
                    ) from None
                for folder, why in seen["folders"]:
                    if why is not None:
                        raise ValueError(
                            f"--launcher ray: node {node} does not see {folder} "
                            f"({why}); --out and --cache must be on a file system every node shares"
                        )
                if seen["cwd"] is not None:
                    raise ValueError(
                        f"--launcher ray: node {node} has no working folder {cwd} ({seen['cwd']}), where the runs "
                        "start; run occkit ablate from a folder every node shares (docs/gpu.md)"
                    )
                if seen["occkit"] != mine:
                    raise ValueError(
                        f"--launcher ray: node {node} runs occkit {seen['occkit']}, the runner {mine}; install the "
                        "same occkit on every node (the same commit, e.g. pip install -e from the shared folder)"
                    )
        finally:
            for mark in marks:
                mark.unlink(missing_ok=True)

    def start(self, cmd: Command, header: str, slot: int) -> Any:
        task = self._task if self.num_gpus and asks_for_gpu(cmd.argv) else self._cpu_task
        ref = task.remote(cmd.argv, str(cmd.log), header, self.env, os.getcwd())
        self._logs[ref] = cmd.log
        return ref

    def poll(self, handle: Any) -> int | None:
        ready, _ = self.ray.wait([handle], timeout=0)
        if not ready:
            return None
        log = self._logs.pop(handle)
        try:
            return int(self.ray.get(handle))
        except Exception as e:  # the task failed or its worker was lost: say so in the log
            cause = getattr(e, "cause", None) or e
            line = str(cause).strip().splitlines()[-1] if str(cause).strip() else type(cause).__name__
            try:
                with open(log, "a", encoding="utf-8") as fh:
                    fh.write(f"\n# occkit ablate: the Ray task failed: {type(cause).__name__}: {line}\n")
            except OSError:
                pass
            return 1

    def stop(self, handles: list[Any]) -> None:
        for ref in handles:
            self.ray.cancel(ref, force=True)
        if handles:
            self.ray.wait(handles, num_returns=len(handles), timeout=30)

    def close(self) -> None:
        if self.started and self.ray.is_initialized():
            self.ray.shutdown()
        self.started = False


def _reachable(address: str, timeout: float = 10.0) -> None:
    """Refuse (``ValueError``) a ``RAY_ADDRESS`` of the form ``HOST:PORT`` where nothing answers
    (``ray.init`` would retry for minutes); other forms (``auto``, ``ray://...``) are Ray's to check."""
    import re
    import socket

    m = re.fullmatch(r"(?:\[([^\]]+)\]|([^/:\[\]]+)):(\d+)", address.strip())  # host:port, [ipv6]:port
    if m is None and address.strip() and address.strip() not in ("auto", "local") and "://" not in address:
        raise ValueError(
            f"--launcher ray: RAY_ADDRESS={address}: not a Ray address (HOST:PORT, auto, or ray://HOST:PORT); "
            "fix it, or unset RAY_ADDRESS for a local cluster"
        )
    if m is None:
        return
    try:
        socket.create_connection((m.group(1) or m.group(2), int(m.group(3))), timeout=timeout).close()
    except OSError as e:
        raise ValueError(
            f"--launcher ray: RAY_ADDRESS={address}: no Ray cluster answers there ({e.strerror or e}); "
            "start one (ray start --head) or unset RAY_ADDRESS for a local cluster"
        ) from None


def _check_folders(folders: list[str], token: str) -> list[tuple[str, str | None]]:
    """:func:`check_folder` of each folder."""
    return [(f, check_folder(f, token)) for f in folders]


def _check_node(folders: list[str], token: str, cwd: str) -> dict[str, Any]:
    """What a node sees (the body of the Ray task of :meth:`RayLauncher.check`): :func:`check_folder`
    of each folder, whether the working folder ``cwd`` is there (None, or why not), its occkit."""
    return {
        "folders": _check_folders(folders, token),
        "cwd": None if os.path.isdir(cwd) else "no such folder",
        "occkit": occkit_identity(),
    }


@functools.lru_cache(maxsize=1)
def occkit_identity() -> str:
    """The occkit this process imports: its version and a digest of its source files (two trees
    of one version differ when their code does), e.g. ``0.1.0+3f2a9c1d0b4e``."""
    import hashlib

    import occkit

    root = Path(occkit.__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(f.relative_to(root).as_posix().encode())
        h.update(f.read_bytes())
    return f"{occkit.__version__}+{h.hexdigest()[:12]}"


def asks_for_gpu(argv: list[str]) -> bool:
    """Whether ``occkit <argv>`` computes on a GPU: ``--device cuda[:N]`` or ``train.device=cuda``
    among its words (the runner names the device wherever a command takes one)."""
    for i, w in enumerate(argv):
        value = None
        if w == "--device" and i + 1 < len(argv):
            value = argv[i + 1]
        elif w.startswith("--device="):
            value = w.split("=", 1)[1]
        elif w.replace(" ", "").startswith("train.device="):
            value = w.split("=", 1)[1]
        if value is not None and value.strip().startswith("cuda"):
            return True
    return False


class LogWatch:
    """The newest line a command's log gained since it started (its output appended after
    ``skip`` bytes of header), printed after ``name`` at most every ``every`` seconds when it changed;
    when it has not changed for ``4 * every`` seconds, that the command still runs."""

    def __init__(self, log: Path, name: str, skip: int = 0) -> None:
        self.log, self.name = log, name
        try:
            self.start = log.stat().st_size + skip
        except OSError:
            self.start = skip
        self.started = self.last_time = self.last_print = time.monotonic()
        self.last_line: str | None = None

    def newest_line(self) -> str | None:
        try:
            with self.log.open("rb") as fh:
                size = fh.seek(0, os.SEEK_END)
                fh.seek(max(self.start, size - 4096))
                tail = fh.read().decode("utf-8", errors="replace")
        except OSError:
            return None
        lines = [x.strip() for x in tail.replace("\r", "\n").split("\n")]
        lines = [x for x in lines if x and not x.startswith("# occkit ablate ")]
        return lines[-1][:200] if lines else None

    def echo(self, every: float) -> None:
        now = time.monotonic()
        if now - self.last_time < every:
            return
        self.last_time = now
        line = self.newest_line()
        if line is not None and line != self.last_line:
            self.last_line, self.last_print = line, now
            print(f"occkit ablate: {self.name}: {line}", flush=True)
        elif now - self.last_print >= 4 * every:  # a command that prints nothing for long: still say it runs
            self.last_print = now
            print(
                f"occkit ablate: {self.name}: still running, {(now - self.started) / 60:.1f} min so far "
                f"(no new line in {self.log})",
                flush=True,
            )


class PaceWatch:
    """A training's pace, read from its ``train.jsonl`` (the records written since it started) at
    most every ``every`` seconds until it has one (:func:`measured_seconds_per_step`)."""

    def __init__(self, pace: Pace) -> None:
        self.pace = pace
        try:
            self.start = pace.train_log.stat().st_size  # a resumed run's earlier records are not this pace
        except OSError:
            self.start = 0
        self.last_time = time.monotonic()

    def check(self, every: float, on_pace: Callable[[Pace, float, tuple[int, int]], None]) -> bool:
        """Whether the pace was found (and handed to ``on_pace``)."""
        now = time.monotonic()
        if now - self.last_time < every:
            return False
        self.last_time = now
        found = measured_seconds_per_step(self.pace.train_log, self.start)
        if found is None:
            return False
        on_pace(self.pace, found[0], (found[1], found[2]))
        return True


def run_jobs(
    jobs: list[Job],
    lanes: int,
    env: dict[str, str],
    poll_seconds: float = 0.1,
    on_finish: Callable[[Job, str | None], None] | None = None,
    launcher: Launcher | None = None,
    progress_seconds: float = 30.0,
    on_pace: Callable[[Pace, float, tuple[int, int]], None] | None = None,
) -> dict[str, str | None]:
    """Run jobs in up to ``lanes`` commands at once, a job after those in its ``deps``.

    The commands run through ``launcher`` (default: :class:`LocalLauncher` ``(env)``, subprocesses
    of this process); the generators run here, so locks, records and reports are the same on any
    launcher. A job keeps its lane slot (0 .. lanes-1) from its first command to its last.

    Returns job name -> None (done) or its one-line error. A job whose dependency failed is not
    started. On an exception (Ctrl-C, SIGTERM) the running commands are stopped and each job's
    generator closed (its ``finally`` releases its lock) before it propagates.

    A command with a ``progress`` name has the newest line its log gained since it started
    printed every ``progress_seconds`` (when it changed), after that name. A command with a
    ``pace`` (a training) has its pace read every ``progress_seconds`` until it has one, then handed
    once to ``on_pace`` (seconds a step, the first and last step it covers).
    """
    launcher = launcher if launcher is not None else LocalLauncher(env)
    return _JobLoop(jobs, max(1, lanes), launcher, on_finish, on_pace).run(poll_seconds, progress_seconds)


class _JobLoop:
    """The state of one :func:`run_jobs`: the jobs waiting, those running (with their generator,
    their command's handle or :class:`Wait`, and their lane slot), the logs and paces watched, and
    the results so far."""

    def __init__(
        self,
        jobs: list[Job],
        lanes: int,
        launcher: Launcher,
        on_finish: Callable[[Job, str | None], None] | None,
        on_pace: Callable[[Pace, float, tuple[int, int]], None] | None,
    ) -> None:
        self.lanes, self.launcher, self.on_finish, self.on_pace = lanes, launcher, on_finish, on_pace
        self.results: dict[str, str | None] = {}
        self.pending = list(jobs)
        self.running: dict[str, tuple[Job, Generator[Command, int, None], Any, int]] = {}
        self.watched: dict[str, LogWatch] = {}
        self.pacing: dict[str, PaceWatch] = {}

    def run(self, poll_seconds: float, progress_seconds: float) -> dict[str, str | None]:
        """Run every job to its end (see :func:`run_jobs`); returns the results."""
        try:
            while self.pending or self.running:
                self.drop_failed()
                self.start_ready()
                self.drop_stranded()
                self.poll()
                self.watch(progress_seconds)
                if self.running:
                    time.sleep(poll_seconds)
        finally:
            self.launcher.stop([handle for _, _, handle, _ in self.running.values() if not isinstance(handle, Wait)])
            for _, gen, _, _ in self.running.values():
                gen.close()
        return self.results

    def finish(self, job: Job, error: str | None) -> None:
        """Record a job's end (None: done) and tell ``on_finish``."""
        self.results[job.name] = error
        if self.on_finish is not None:
            self.on_finish(job, error)

    def advance(self, job: Job, gen: Generator[Command, int, None], rc: int | None, slot: int) -> None:
        """Hand a job's generator its last command's exit status (None at its start) and start the
        command it yields next, or finish the job when it yields none or fails."""
        try:
            cmd = next(gen) if rc is None else gen.send(rc)
        except StopIteration:
            self.finish(job, None)
            return
        except (JobError, OSError, ValueError) as e:
            self.finish(job, str(e))
            return
        if isinstance(cmd, Wait):  # no subprocess: polled below until done
            self.running[job.name] = (job, gen, cmd, slot)
            return
        cmd.log.parent.mkdir(parents=True, exist_ok=True)
        header = f"\n# occkit ablate {time.strftime('%Y-%m-%d %H:%M:%S')}: {show(cmd.argv)}\n"
        self.watched.pop(job.name, None)
        self.pacing.pop(job.name, None)
        if cmd.progress:
            self.watched[job.name] = LogWatch(cmd.log, cmd.progress, len(header.encode()))
        if cmd.pace is not None and self.on_pace is not None:
            self.pacing[job.name] = PaceWatch(cmd.pace)
        try:
            handle = self.launcher.start(cmd, header, slot)
        except OSError as e:
            gen.close()
            self.finish(job, f"{job.label}: could not start occkit {cmd.argv[0]}: {e}")
            return
        self.running[job.name] = (job, gen, handle, slot)

    def drop_failed(self) -> None:
        """Finish, unstarted, the waiting jobs with a dependency that failed."""
        for job in list(self.pending):
            failed = [d for d in job.deps if self.results.get(d)]
            if failed:
                self.pending.remove(job)
                self.finish(job, f"{job.label}: not run: {failed[0]} failed")

    def start_ready(self) -> None:
        """Start waiting jobs whose dependencies are done, in free lane slots."""
        while len(self.running) < self.lanes:
            # deps done, not failed: a dep that failed in this very pass (a lock refused at once)
            # must not let its dependents start before the check above has run again
            ready = next(
                (j for j in self.pending if all(d in self.results and not self.results[d] for d in j.deps)), None
            )
            if ready is None:
                break
            self.pending.remove(ready)
            used = {slot for *_, slot in self.running.values()}
            self.advance(ready, ready.make(), None, min(set(range(self.lanes)) - used))

    def drop_stranded(self) -> None:
        """With nothing running, finish the waiting jobs when none can ever start (dependencies
        that are not jobs here)."""
        if not self.running and self.pending and not any(all(d in self.results for d in j.deps) for j in self.pending):
            for job in self.pending:  # dependencies that are not jobs here: nothing will run them
                waits = ", ".join(d for d in job.deps if d not in self.results)
                self.finish(job, f"{job.label}: not run: waits on {waits}")
            self.pending.clear()

    def poll(self) -> None:
        """Advance each running job whose command (or wait) has ended."""
        for name, (job, gen, handle, slot) in list(self.running.items()):
            if isinstance(handle, Wait):
                rc = 0 if handle.done() else None
            else:
                rc = self.launcher.poll(handle)
            if rc is None:
                continue
            del self.running[name]
            self.watched.pop(name, None)
            self.pacing.pop(name, None)
            self.advance(job, gen, rc, slot)

    def watch(self, progress_seconds: float) -> None:
        """Print the running commands' progress lines and hand on the paces found."""
        for name, w in list(self.watched.items()):
            if name in self.running:
                w.echo(progress_seconds)
        for name, p in list(self.pacing.items()):
            if name in self.running and self.on_pace is not None and p.check(progress_seconds, self.on_pace):
                del self.pacing[name]
