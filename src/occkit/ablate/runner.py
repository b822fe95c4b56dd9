"""The ablation runner: stages first, then each arm x seed in lanes, resumable after any stop.

Layout of ``--out DIR``::

    DIR/runs/<arm>_s<seed>/     an ordinary occkit run folder (checkpoints/, metrics.jsonl, ...)
        train.log               occkit train's output (every session appended)
        score_<scorer>[_<name>].log  the scorers' commands' output (an entry's name, when it has one)
        score_*.json            the scorers' results
        ablate.json             what trained it (arm, seed, preset, overrides, data as stage hashes,
                                budget), the builds of the stages it started from, wall seconds of
                                training and scoring, the last error
        ablate.lock             while a runner works on it
    DIR/results.json, results.md, curves.png   rewritten after every finished arm x seed

Every command runs as a subprocess (``python -m occkit.cli ...``), its output to a log file; up
to ``lanes`` at a time, each with ``threads`` torch threads (``OMP_NUM_THREADS`` too). Stages are
built first, in dependency order (independent ones side by side), then the arms x seeds in the
order seed 0 of every arm, seed 1 of every arm, ... (a first comparison arrives early). Each
arm x seed trains (``--resume`` when its folder holds a checkpoint), then runs its scorers in the
same lane.

Stops: everything lives on disk, so rerunning the same command resumes: a stopped training goes
on from its newest checkpoint (the engine resumes exactly: same data order, RNG streams and
schedule, so the figures are those of an uninterrupted run), finished arms x seeds are skipped,
missing scorer files are made. The children die with the runner (Linux: ``PR_SET_PDEATHSIG``; and
they share its process group); a folder locked by a process that still runs is reported and
left alone. A run folder trained with other settings (another budget, world, overrides) is
refused rather than mixed: use another ``--out``; one that holds no checkpoint and no score yet
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

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from occkit.ablate.lock import FolderLock, LockBusy
from occkit.ablate.report import collect, time_left_text, write_report
from occkit.ablate.scorers import SCORERS, ScoreContext
from occkit.ablate.spec import AblationSpec, Scoring, arm_sets, init_from_words, refs_in, runner_sets, substitute, upstream
from occkit.ablate.stages import StagePlan, machine_info, plan_stages, stage_folders, stage_hashes
from occkit.fileio import read_json, write_json_atomic

RUN_RECORD = "ablate.json"
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
    """Subprocesses at once."""
    threads: int = 1
    """Torch threads per subprocess."""
    device: str = "cpu"
    """``cpu`` or ``cuda`` (all lanes share the GPU)."""
    only: list[str] | None = None
    """Run only these (None = all): arm names (every seed, seed-major) or single runs named as their
    folders, ``ARM_sSEED``; with any single run named, the runs go in the order listed."""
    stages_only: bool = False
    """Build the stages the arms need and stop (no arm runs)."""
    command: str = ""
    """The ``occkit ablate`` command line, for the report."""
    poll_seconds: float = 0.1
    """How often the lanes are checked."""


@dataclass
class Command:
    """One subprocess of a job: ``occkit <argv>`` with its output appended to ``log``."""

    argv: list[str]
    log: Path
    on_start: Callable[[int], None] | None = None


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
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def set_death_signal() -> None:
        prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the runner died before prctl took effect
            os._exit(1)

    return set_death_signal


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


def checkpoint_step(run: Path) -> int | None:
    """The step of a run folder's newest complete checkpoint, or None."""
    if not (run / "checkpoints").is_dir():
        return None
    from occkit.engine.checkpoint import latest_checkpoint

    ckpt = latest_checkpoint(run)
    return None if ckpt is None else int(ckpt.name.split("_", 1)[1])


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
        return {"arm": arm, "seed": seed, "preset": a.preset, "data": substitute(a.data, h),
                "set": [substitute(s, h) for s in a.set], "init_from": substitute(a.init_from, h) if a.init_from else None,
                "budget": self.spec.budget, "val_every": self.spec.val_every}

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
        argv = ["train", a.preset, "--data", substitute(a.data, self.folders), "--out", str(run),
                "--max-steps", str(self.spec.budget),
                "--set", *runner_sets(self.spec, seed, self.opts.threads, self.opts.device)]
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
        return ScoreContext(run=self.run_dir(arm, seed), data=data, device=self.opts.device, threads=self.opts.threads,
                            options=substitute(scoring.options, self.folders))

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
        lines = [f"ablation {sp.name} ({sp.path}): {len(self.arms)} arm(s), {len(self._runs)} run(s), budget {sp.budget} steps, "
                 f"validation and checkpoint every {sp.val_every} steps, metric {sp.metric}, tolerance {sp.tolerance:g}",
                 f"stages (cache {Path(self.opts.cache).resolve()}):"]
        if not self.needed:
            lines.append("  (none)")
        unused = [n for n in self.plans if n not in self.needed]
        for name in self.needed:
            plan = self.plans[name]
            status = plan.status()
            note = {"partial": " (stopped half-way: " + ("continued)" if plan.continues() else "redone from scratch)")}.get(status, "")
            who = FolderLock(plan.folder / STAGE_LOCK, "").busy() if status != "cached" else None
            if who is not None:  # its lock is held: not stopped, another process is building it now
                status, note = "building", f" (being built now by {who}, which holds {plan.folder / STAGE_LOCK}; a run waits for it)"
            lines.append(f"  {name:<16} {status:<8} {plan.out}{note}")
            if status != "cached":
                lines.append(f"      $ {show(plan.argv(self.opts.threads, self.opts.device))}")
        if unused:
            lines.append(f"  not needed by these arms (not built): {', '.join(unused)}")
        lines.append(f"runs ({self.out / 'runs'}; {self.opts.lanes} lane(s) x {self.opts.threads} thread(s) on {self.opts.device}):")
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
        lines.append(time_left_text(collect(self)["time_left"]))
        return "\n".join(lines)

    # ---------------------------------------------------------------------------- jobs
    def _stage_job(self, plan: StagePlan) -> Generator[Command, int, None]:
        if plan.status() == "cached":
            return
        plan.folder.mkdir(parents=True, exist_ok=True)
        lock = FolderLock(plan.folder / STAGE_LOCK, f"stage {plan.name}")
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
            rc = yield Command(argv, plan.log, lock.set_child)
            wall = time.monotonic() - t0
            if rc != 0:
                raise JobError(f"stage {plan.name} (occkit {plan.command}) failed with exit code {rc}; see {plan.log}")
            write_json_atomic(plan.record_path, {
                "stage": plan.name, "command": plan.command, "args": plan.args, "argv": argv, "hash": plan.hash,
                "occkit": _version(), "wall_seconds": round(wall, 3), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "machine": machine_info(),
            })
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
                raise JobError(f"{label}: {run} holds a checkpoint at step {step}, past the budget {sp.budget}; use another --out")
            if step is None or step < sp.budget:
                argv = self.train_argv(arm, seed)
                self._say(f"{label}: training " + (f"from step {step}" if step else "from step 0") + f" -> {run / 'train.log'}")
                t0 = time.monotonic()
                rc = yield Command(argv, run / "train.log", lock.set_child)
                record["train_seconds"] = record.get("train_seconds", 0.0) + time.monotonic() - t0
                write_json_atomic(run / RUN_RECORD, record)
                if rc != 0:
                    raise JobError(f"{label}: occkit train failed with exit code {rc}; see {run / 'train.log'}")
                step = checkpoint_step(run)
                if step != sp.budget:
                    raise JobError(f"{label}: training ended at step {step}, not the budget {sp.budget} (a time limit, "
                                   f"train.max_minutes?); see {run / 'train.log'}")
            for sc, ctx, missing in self.missing_scores(arm, seed):
                scorer = SCORERS[sc.scorer]
                for tmp in scorer.temporary(ctx):  # a half-written leftover of a stopped scoring
                    shutil.rmtree(tmp, ignore_errors=True)
                named = f"{sc.scorer}_{sc.options['name']}" if sc.options.get("name") else sc.scorer  # eval_gen's feedback, text
                named += "_frustum" if sc.options.get("frustum") else ""  # occ3d inside the run's camera frusta
                log = run / f"score_{named}.log"
                self._say(f"{label}: scoring ({named}) -> {log}")
                t0 = time.monotonic()
                try:
                    for argv in scorer.commands(ctx, missing):
                        rc = yield Command(argv, log, lock.set_child)
                        if rc != 0:
                            raise JobError(f"{label}: scorer {sc.scorer} (occkit {argv[0]}) failed with exit code {rc}; see {log}")
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
            record = {"identity": ident, "stage_builds": self.stage_builds(arm), "train_seconds": 0.0, "score_seconds": 0.0,
                      "error": None}
            write_json_atomic(path, record)
            return record

        if not path.is_file():
            if checkpoint_step(run) is not None:
                raise JobError(f"arm {arm} seed {seed}: {run} holds checkpoints that occkit ablate did not make ({RUN_RECORD} is "
                               "missing); use another --out, or remove that folder")
            return start_again(empty=False)  # a first start: nothing of occkit ablate's there to remove
        record = read_json(path)
        old = record.get("identity", {})
        fresh = checkpoint_step(run) is None and not any(run.glob("score_*.json"))  # nothing trained or scored yet
        if old != ident:
            diff = next((k for k in ident if old.get(k) != ident[k]), "identity")
            if not fresh:
                raise JobError(f"arm {arm} seed {seed}: {run} was trained with other settings ({diff}: {old.get(diff)!r}, now "
                               f"{ident.get(diff)!r}); use another --out, or remove that folder")
            self._say(f"arm {arm} seed {seed}: {run} holds no checkpoint of its former settings ({diff}: "
                      f"{old.get(diff)!r}); starting it again with {ident.get(diff)!r}")
            return start_again()
        build, stages = self.build_state(arm, seed)
        if build == "other" and fresh:
            self._say(f"arm {arm} seed {seed}: stage(s) {', '.join(stages)} rebuilt since {run} started, and it holds "
                      "no checkpoint: starting it again from the current build")
            return start_again()
        if build == "other" and not self.complete(arm, seed):
            raise JobError(f"arm {arm} seed {seed}: stage(s) {', '.join(stages)} were rebuilt since {run} started; "
                           "continuing it would mix two builds: remove that folder to run it again from the current build")
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
        return [Job(f"stage:{n}", f"stage {n}", lambda p=self.plans[n]: self._stage_job(p),
                    [f"stage:{d}" for d in self.plans[n].deps if d in to_build])
                for n in to_build]

    def arm_jobs(self, building: set[str]) -> list[Job]:
        """A job per arm x seed (named ``run:ARM_sSEED``), seed-major, each after the stages in
        ``building`` that it needs (its data, ``set``, ``init_from`` and scorers, with their upstream)."""
        jobs = []
        for a, s in self.runs():
            needs = upstream(self.spec.stages, self._refs([a]))
            jobs.append(Job(f"run:{a}_s{s}", f"arm {a} seed {s}", lambda a=a, s=s: self._arm_job(a, s),
                            [f"stage:{n}" for n in needs if n in building]))
        return jobs

    def run(self) -> int:
        """Build the needed stages and run every arm x seed, each as soon as the stages it needs
        are built (a lane never waits for a stage its next run does not need); 0 when all are done."""
        stages = self.stage_jobs()
        self.out.mkdir(parents=True, exist_ok=True)
        write_report(self)

        def finished(job: Job, error: str | None) -> None:
            if error:
                self._say(f"error: {error}")
            if not job.name.startswith("run:"):
                return
            results = write_report(self)
            if error:
                return
            arm, seed = job.name[len("run:"):].rsplit("_s", 1)
            s = results["arms"][arm]["seeds"][seed]
            value = s.get("metric")
            shown = "n/a" if value is None else f"{value:.2f}"
            self._say(f"{job.label}: done: {self.spec.metric} {shown} at step {s.get('step')} -> {self.out / 'results.md'}")

        arms = [] if self.opts.stages_only else self.arm_jobs({j.name[len("stage:"):] for j in stages})
        errors = run_jobs(stages + arms, self.opts.lanes, self._env(), self.opts.poll_seconds, on_finish=finished)
        results = write_report(self)
        bad_stages = [n[len("stage:"):] for n, e in errors.items() if e and n.startswith("stage:")]
        if self.opts.stages_only:
            self._say(f"stages: {len(self.needed) - len(bad_stages)} of {len(self.needed)} cached"
                      + (f"; failed: {', '.join(bad_stages)}" if bad_stages else "") + f" ({self.opts.cache}); no arm run (--stages-only)")
            return 1 if bad_stages else 0
        bad = [n[len("run:"):] for n, e in errors.items() if e and n.startswith("run:")]
        done = sum(1 for a, s in self.runs() if results["arms"][a]["seeds"][str(s)]["status"] == "done")
        self._say(f"{done} of {len(self.runs())} run(s) done" + (f", {len(bad)} not ({', '.join(bad)})" if bad else "")
                  + (f"; stage(s) failed: {', '.join(bad_stages)}" if bad_stages else "") + f": {self.out / 'results.md'}")
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
            raise ValueError(f"--only {word}: unknown arm or run (arms: {', '.join(spec.arms)}; a single run is ARM_sSEED)")
        if int(seed) not in spec.seeds:
            raise ValueError(f"--only {word}: seed {seed} is not among the seeds {spec.seeds} (add it with --seeds)")
        runs.append((arm, int(seed)))
    return list(dict.fromkeys(runs))


def _version() -> str:
    from occkit import __version__

    return __version__


def run_jobs(
    jobs: list[Job], lanes: int, env: dict[str, str], poll_seconds: float = 0.1,
    on_finish: Callable[[Job, str | None], None] | None = None,
) -> dict[str, str | None]:
    """Run jobs in up to ``lanes`` subprocesses at once, a job after those in its ``deps``.

    Returns job name -> None (done) or its one-line error. A job whose dependency failed is not
    started. On an exception (Ctrl-C, SIGTERM) the running children are stopped and each job's
    generator closed (its ``finally`` releases its lock) before it propagates.
    """
    results: dict[str, str | None] = {}
    pending = list(jobs)
    running: dict[str, tuple[Job, Generator[Command, int, None], subprocess.Popen, Any]] = {}
    preexec = _death_signal()

    def finish(job: Job, error: str | None) -> None:
        results[job.name] = error
        if on_finish is not None:
            on_finish(job, error)

    def advance(job: Job, gen: Generator[Command, int, None], rc: int | None) -> None:
        try:
            cmd = next(gen) if rc is None else gen.send(rc)
        except StopIteration:
            finish(job, None)
            return
        except (JobError, OSError, ValueError) as e:
            finish(job, str(e))
            return
        cmd.log.parent.mkdir(parents=True, exist_ok=True)
        fh = open(cmd.log, "ab")
        fh.write(f"\n# occkit ablate {time.strftime('%Y-%m-%d %H:%M:%S')}: {show(cmd.argv)}\n".encode())
        fh.flush()
        proc = subprocess.Popen(occkit_argv(cmd.argv), stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, preexec_fn=preexec)
        if cmd.on_start is not None:
            cmd.on_start(proc.pid)
        running[job.name] = (job, gen, proc, fh)

    try:
        while pending or running:
            for job in list(pending):
                failed = [d for d in job.deps if results.get(d)]
                if failed:
                    pending.remove(job)
                    finish(job, f"{job.label}: not run: {failed[0]} failed")
            while len(running) < max(1, lanes):
                ready = next((j for j in pending if all(d in results for d in j.deps)), None)
                if ready is None:
                    break
                pending.remove(ready)
                advance(ready, ready.make(), None)
            if not running and pending and not any(all(d in results for d in j.deps) for j in pending):
                for job in pending:  # dependencies that are not jobs here: nothing will run them
                    finish(job, f"{job.label}: not run: waits on {', '.join(d for d in job.deps if d not in results)}")
                pending.clear()
            for name, (job, gen, proc, fh) in list(running.items()):
                rc = proc.poll()
                if rc is None:
                    continue
                fh.close()
                del running[name]
                advance(job, gen, rc)
            if running:
                time.sleep(poll_seconds)
    finally:
        for job, gen, proc, fh in running.values():
            if proc.poll() is None:
                proc.terminate()
        for job, gen, proc, fh in running.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            fh.close()
            gen.close()
    return results
