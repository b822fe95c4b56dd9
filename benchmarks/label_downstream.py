"""What labels made by ``occkit label`` cost a model trained on them (docs/labels.md, "Quality").

One synthetic world written with sweeps (``occkit synth --sweeps 10``, Occ3D layout) and its labels made by
``occkit label`` from those sweeps: the same preset is trained on each (the world's exact labels against the
made ones; same images, same frames, same start: occkit's shipped image backbone under a fresh 3D network, as
``occkit demo`` starts), for the same steps and seeds, and both are scored on the world's validation frames
against the exact occupancy (``occkit predict`` then ``occkit eval --metrics miou,rayiou``).

    occkit synth --out W --scenes 10 --frames 8 --seed 11 --image-size 192 512 --sweeps 10
    occkit label --data W --out L
    python benchmarks/label_downstream.py --world W --labels L --out OUT --steps 300 [--seeds 0,1,2] [--same-losses]
        [--no-sem2d] [--set KEY=VALUE ...] [--parallel N] [--eval-steps 300,1000] [--deadline-s S]

The two arms do not see the same supervision by default: the world has rendered depth maps (``loss_depth`` from
the dense maps), the labels' output has each keyframe's LiDAR sweep (depth from it). Both have per-camera 2D
semantic maps for ``loss_sem2d``: the world's rendered from its scene, the labels' rendered from the labels'
own voxels (``occkit label`` writes them, :mod:`occkit.labelgen.semantic_maps`). Each run's losses are read
back from its ``train.jsonl`` (each term's mean over the last ``--loss-window`` steps) and reported beside the
scores, so a table says which losses each arm had. ``--same-losses`` gives both arms the same terms from the
same sensors: depth from the keyframe's LiDAR sweep (``supervised.depth_source=lidar``), and the 2D semantic loss
from each arm's own maps, so the difference is the labels' (the 2D maps are the labels' too). ``--no-sem2d``
turns the 2D semantic loss off in both arms (``supervised.semantic_2d_weight=0``: the measurement before the
labels carried their maps).

Each run is kept as it finishes (OUT/<arm>-s<seed>/eval.json, with the settings it was trained with in
settings.json); a stopped run resumes with what it lacks (``occkit train --resume`` for a run cut short), and a
run trained with other settings is refused rather than mixed. Writes OUT/downstream-<arms>.json and prints a
table.

``--set KEY=VALUE`` goes to every ``occkit train`` of both arms (e.g. ``train.device=cuda data.workers=2``) and is
kept in settings.json. ``--parallel N`` trains up to N runs at once (each run's output in its folder's
train.log, predict.log, eval.log). ``--eval-steps 300,1000`` also scores the checkpoints at those steps
(``train.ckpt_every`` set to ``--ckpt-every``, by default the steps' greatest common divisor with ``--steps``, and
``train.keep_checkpoints=0``): the table gives each arm's scores at each step, and an arm whose mean score rose
between the last two steps by more than its seeds' spread (max - min at the later step) is marked "not
converged". ``--deadline-s S`` stops the trainings still running S seconds after the study started (SIGTERM,
then a kill) and scores every run at the last saved step that all runs reached (the same step for each arm and
seed); such a study resumes later with what it lacks.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shutil
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

SAME_LOSSES = ["supervised.depth_source=lidar"]
NO_SEM2D = ["supervised.semantic_2d_weight=0"]


class StudyError(Exception):
    """A one-line reason the study cannot go on."""


def _occkit() -> list[str]:
    """The ``occkit`` beside this Python, else this Python's ``-m occkit`` (a tree on PYTHONPATH, no install)."""
    exe = Path(sys.executable).with_name("occkit")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "occkit"]


def _say(line: str) -> None:
    """One line to the console in one write (the runs' threads print at once)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Clock:
    """The study's wall clock and its optional deadline (seconds since the study started)."""

    def __init__(self, deadline_s: float | None = None) -> None:
        self.t0 = time.monotonic()
        self.deadline_s = deadline_s
        self.stopped = threading.Event()  # a run was stopped at the deadline

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def passed(self) -> bool:
        return self.deadline_s is not None and self.elapsed() >= self.deadline_s


def _run(cmd: list[str], what: str, log: Path | None = None, clock: Clock | None = None, grace: float = 20.0) -> bool:
    """Run ``cmd`` (its output to ``log`` when given, else to this console). Past ``clock``'s deadline it is
    stopped (SIGTERM, then a kill after ``grace`` seconds) and False is returned; a failure raises."""
    _say("$ " + " ".join(cmd) + (f"  > {log}" if log else ""))
    with open(log, "a") if log else contextlib.nullcontext() as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT if fh else None)
        while True:
            try:
                rc = proc.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if clock is not None and clock.passed():
                    proc.terminate()
                    try:
                        proc.wait(timeout=grace)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                    clock.stopped.set()
                    _say(f"stopped {what} at the deadline ({clock.elapsed():.0f} s)")
                    return False
    if rc != 0:
        raise StudyError(f"{what} failed (exit {rc}); its output is {'in ' + str(log) if log else 'above'}")
    return True


def run_losses(train_dir: Path, window: int, upto: int | None = None) -> dict[str, float]:
    """Each loss term's mean over the last ``window`` steps of a run's ``train.jsonl`` (the logged steps with
    ``step > last - window``; ``last``: the last logged step, or the last one up to ``upto`` when given); a term
    the run never logged is absent. The last record of a resumed step wins."""
    log = train_dir / "train.jsonl"
    if not log.is_file():
        raise StudyError(f"{log}: missing, so the run's losses cannot be read")
    by_step: dict[int, dict] = {}
    for n, line in enumerate(log.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            by_step[int(rec["step"])] = rec
        except (ValueError, KeyError, TypeError):
            raise StudyError(f"{log}: line {n} is not a step record") from None
    if upto is not None:
        by_step = {k: v for k, v in by_step.items() if k <= upto}
    if not by_step:
        raise StudyError(f"{log}: no step records" + (f" up to step {upto}" if upto is not None else ""))
    last = max(by_step)
    recs = [r for s, r in by_step.items() if s > last - window]
    names = sorted({k for r in recs for k in r if k.startswith("loss_")})
    return {k: statistics.mean(float(r[k]) for r in recs if k in r) for k in names}


def _stats(vals: list[float]) -> dict:
    return {
        "mean": round(statistics.mean(vals), 2),
        "min": round(min(vals), 2),
        "max": round(max(vals), 2),
        "std": round(statistics.stdev(vals), 2) if len(vals) > 1 else 0.0,
        "spread": round(max(vals) - min(vals), 2),
        "runs": [round(v, 2) for v in vals],
    }


def summarise(rows: list[dict]) -> dict:
    """An arm's runs (each ``{"seed", "eval", "losses", "settings"}``, settings: the loss settings given beside
    the preset's): each score's mean, min, max, std and runs; each loss term's mean over the runs and whether it
    was nonzero (> 1e-6 in every run)."""
    s: dict = {"seeds": [r["seed"] for r in rows]}
    for key in ("miou", "rayiou", "geometry_iou"):
        vals = [float(r["eval"][key]) for r in rows if key in r["eval"]]
        if vals:
            s[key] = _stats(vals)
    names = sorted({k for r in rows for k in r["losses"]})
    s["losses"] = {
        k: {
            "mean": round(statistics.mean(r["losses"].get(k, 0.0) for r in rows), 4),
            "nonzero": all(abs(r["losses"].get(k, 0.0)) > 1e-6 for r in rows),
        }
        for k in names
    }
    s["settings"] = rows[0]["settings"]
    return s


def _loss_cell(losses: dict, names: list[str]) -> str:
    """Each term of any arm: its mean, 0 where some run had it 0 at the end, "off" where the arm never logged it."""
    cells = []
    for k in names:
        v = losses.get(k)
        cells.append(f"{k[5:]} off" if v is None else f"{k[5:]} {v['mean']:.3g}" if v["nonzero"] else f"{k[5:]} 0")
    return ", ".join(cells)


def table(summary: dict) -> str:
    lines = [
        "| arm | seeds | mIoU mean (min..max) | RayIoU mean (min..max) | geometry IoU mean (min..max) "
        "| losses (mean, last steps) | loss settings |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    names = sorted({k for s in summary.values() for k in s["losses"]})
    for arm, s in summary.items():
        cells = []
        for key in ("miou", "rayiou", "geometry_iou"):
            v = s.get(key)
            cells.append(f"{v['mean']:.2f} ({v['min']:.2f}..{v['max']:.2f})" if v else "-")
        seeds = ",".join(str(x) for x in s["seeds"])
        lines.append(
            f"| {arm} | {seeds} | "
            + " | ".join(cells)
            + f" | {_loss_cell(s['losses'], names)} | {' '.join(s['settings']) or 'the preset'} |"
        )
    return "\n".join(lines)


def maps_agreement(world: Path, labels: Path, stride: int) -> dict:
    """How the 2D semantic maps the arms train on (``loss_sem2d``) compare with the world's own (rendered from
    its scene, the truth arm's): the labels' maps (``occkit label``'s voxels rendered into each camera) and,
    to tell what rendering voxels alone loses, the world's exact voxels rendered the same way
    (:func:`occkit.labelgen.semantic_maps.render_semantic_maps`). Each: the share of pixels of the world's
    class (``pixels``), and of the feature pixels whose target, the majority class of their ``stride x stride``
    block, is the world's (``targets``), over every keyframe and camera."""
    import numpy as np
    import torch

    from occkit.data.occ3d import Occ3DDataset
    from occkit.data.scene_record import Camera
    from occkit.formats import get_format
    from occkit.labelgen.semantic_maps import render_semantic_maps
    from occkit.losses.depth import semantic_map_targets

    w = Occ3DDataset(world, "all", load_images=False, load_extras=True)
    lab = Occ3DDataset(labels, "all", load_images=False, load_extras=True)
    table = get_format("occ3d").classes  # the world's and the labels' layout
    C = table.num_classes
    counts = {k: [0, 0, 0, 0] for k in ("labels", "exact_voxels")}  # pixels same, pixels, targets same, targets
    for i in range(len(lab)):
        s = lab[i]
        t = w[w.index_of(s.token)]
        if s.semantics_2d is None or t.semantics_2d is None:
            raise StudyError(f"frame {s.token}: no 2D semantic maps in {labels if s.semantics_2d is None else world}")
        cams = {
            c: Camera(c, t.intrinsics[k].numpy(), t.T_ego_from_cam[k].numpy(), tuple(t.semantics_2d.shape[-2:]))
            for k, c in enumerate(t.cam_names)
        }
        exact = render_semantic_maps(w.read_labels(s.token)["semantics"], w.grid, table.free, cams)
        ref = semantic_map_targets(t.semantics_2d, stride, C)
        for key, maps in (
            ("labels", s.semantics_2d),
            ("exact_voxels", torch.from_numpy(np.stack(list(exact.values())))),
        ):
            maps = maps.long()
            c = counts[key]
            c[0] += int((maps == t.semantics_2d).sum())
            c[1] += maps.numel()
            c[2] += int((semantic_map_targets(maps, stride, C) == ref).sum())
            c[3] += ref.numel()
    return {k: {"pixels": round(c[0] / c[1], 4), "targets": round(c[2] / c[3], 4)} for k, c in counts.items()}


def _parse_ints(text: str, flag: str, what: str = "seed") -> list[int]:
    try:
        vals = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise StudyError(f"{flag} {text!r}: expected comma-separated integers") from None
    if not vals:
        raise StudyError(f"{flag} {text!r}: names no {what}")
    return vals


def check_settings(run: Path, settings: dict) -> None:
    """Refuse a run folder trained with other settings (its settings.json) or holding a run without them."""
    kept = run / "settings.json"
    if kept.is_file():
        if json.loads(kept.read_text()) != settings:
            raise StudyError(f"{run}: trained with other settings ({kept}); give another --out or remove the folder")
    elif run.exists() and any(run.iterdir()):
        raise StudyError(f"{run}: holds a run without settings.json; give another --out or remove it")


def checkpoint_every(eval_steps: list[int], steps: int, given: int | None) -> int:
    """``train.ckpt_every`` for ``--eval-steps``: ``--ckpt-every`` when given (every eval step below ``steps``
    must be a multiple of it), else the greatest common divisor of the eval steps and ``steps``."""
    bad = [s for s in eval_steps if not 1 <= s <= steps]
    if bad:
        raise StudyError(f"--eval-steps: {bad} not within 1..--steps {steps}")
    if given is None:
        return math.gcd(steps, *eval_steps)
    if given < 1:
        raise StudyError(f"--ckpt-every {given}: expected at least 1")
    off = [s for s in eval_steps if s != steps and s % given]
    if off:
        raise StudyError(f"--eval-steps {off}: not multiples of --ckpt-every {given}, so never saved")
    return given


def saved_steps(train_dir: Path) -> set[int]:
    """The steps of a run's complete checkpoints (``checkpoints/step_N`` holding its checksums)."""
    root = train_dir / "checkpoints"
    if not root.is_dir():
        return set()
    found = set()
    for p in root.iterdir():
        if p.is_dir() and p.name.startswith("step_") and p.name[5:].isdigit() and (p / "checksums.json").is_file():
            found.add(int(p.name[5:]))
    return found


def common_step(saved: dict[str, set[int]]) -> int | None:
    """The last step that every run saved a checkpoint at (None when they share none): like for like."""
    if not saved:
        return None
    shared = set.intersection(*(set(s) for s in saved.values()))
    return max(shared) if shared else None


def prunable(saved: dict[str, set[int]], keep: set[int]) -> dict[str, set[int]]:
    """Each run's checkpoints that can be neither scored nor the step every run is scored at: those below the
    last step all runs saved so far (the scored step can only be it or a later one) and not in ``keep`` (the eval
    steps and the last step)."""
    floor = common_step(saved)
    if floor is None:
        return {}
    return {k: {n for n in s if n < floor and n not in keep} for k, s in saved.items()}


def prune(plan: Plan) -> None:
    """Remove the checkpoints :func:`prunable` names (each is ``134 MB`` for synth-cpu): a long run saving every
    few steps stays within the disk."""
    runs = {r.folder.name: r for r in plan.runs}
    saved = {k: saved_steps(r.train_dir) for k, r in runs.items()}
    for k, steps in prunable(saved, {*plan.eval_steps, plan.steps}).items():
        for n in steps:
            shutil.rmtree(runs[k].train_dir / "checkpoints" / f"step_{n:06d}", ignore_errors=True)


def _pruning(plan: Plan, stop: threading.Event, every_s: float = 2.0) -> None:
    while not stop.wait(every_s):
        prune(plan)


def convergence(by_step: dict[int, dict]) -> dict:
    """An arm's scores at its last two scored steps (``{step: {"miou": stats, "rayiou": stats}}``): for each
    score, the mean's rise and the seeds' spread at the later step; ``converged`` is False where the mean rose by
    more than that spread. Empty with fewer than two steps."""
    steps = sorted(by_step)
    if len(steps) < 2:
        return {}
    a, b = steps[-2], steps[-1]
    out: dict = {"from_step": a, "to_step": b}
    for key in ("miou", "rayiou"):
        if key in by_step[a] and key in by_step[b]:
            rise = round(by_step[b][key]["mean"] - by_step[a][key]["mean"], 2)
            spread = by_step[b][key]["spread"]
            out[key] = {"rise": rise, "spread": spread, "converged": rise <= spread}
    out["converged"] = all(v["converged"] for k, v in out.items() if isinstance(v, dict))
    return out


def steps_table(by_step: dict[str, dict[int, dict]], conv: dict[str, dict]) -> str:
    """Each arm's mIoU and RayIoU (mean, min..max over the seeds) at each scored step, and the convergence line."""
    lines = ["| arm | step | mIoU mean (min..max) | RayIoU mean (min..max) |", "|---|---:|---:|---:|"]
    for arm, steps in by_step.items():
        for step in sorted(steps):
            cells = []
            for key in ("miou", "rayiou"):
                v = steps[step].get(key)
                cells.append(f"{v['mean']:.2f} ({v['min']:.2f}..{v['max']:.2f})" if v else "-")
            lines.append(f"| {arm} | {step} | " + " | ".join(cells) + " |")
    for arm, c in conv.items():
        if not c:
            continue
        rises = ", ".join(
            f"{k} {c[k]['rise']:+.2f} (spread {c[k]['spread']:.2f})" for k in ("miou", "rayiou") if k in c
        )
        verdict = "converged" if c["converged"] else "not converged"
        lines.append(f"{arm}: {verdict} from step {c['from_step']} to {c['to_step']}: {rises}")
    return "\n".join(lines)


@dataclass
class Run:
    arm: str
    seed: int
    folder: Path
    data: Path
    sets: list[str]
    settings: dict

    @property
    def train_dir(self) -> Path:
        return self.folder / "train"


@dataclass
class Plan:
    """What the study runs: its runs, the final step, the eval steps, where the logs go, the clock."""

    runs: list[Run]
    steps: int
    eval_steps: list[int]
    clock: Clock
    logs: bool  # each run's output to its folder's logs (else this console)
    pruning: bool = False  # remove the checkpoints no score can need (--eval-steps, --deadline-s)
    failures: list[str] = field(default_factory=list)


def eval_file(run: Run, step: int, steps: int) -> Path:
    """``eval.json`` for the full run's step, ``eval-step<N>.json`` for another step."""
    return run.folder / ("eval.json" if step == steps else f"eval-step{step}.json")


def score(run: Run, step: int, args: argparse.Namespace, plan: Plan) -> None:
    """``occkit predict`` of the run's checkpoint at ``step`` over the world's val split, then ``occkit eval``."""
    done = eval_file(run, step, plan.steps)
    if done.exists():
        return
    ckpt = run.train_dir if step == plan.steps else run.train_dir / "checkpoints" / f"step_{step:06d}"
    pred = run.folder / ("pred" if step == plan.steps else f"pred-step{step}")
    name = f"{run.folder.name} step {step}"
    _run(
        [*_occkit(), "predict", "--ckpt", str(ckpt), "--data", str(args.world), "--split", "val"]
        + ["--out", str(pred), "--overwrite", "--no-progress"],
        f"occkit predict ({name})",
        run.folder / "predict.log" if plan.logs else None,
    )
    tmp = done.with_suffix(".tmp.json")
    _run(
        [*_occkit(), "eval", "--gt", str(args.world), "--pred", str(pred), "--split", "val"]
        + ["--metrics", "miou,rayiou", "--json", str(tmp)],
        f"occkit eval ({name})",
        run.folder / "eval.log" if plan.logs else None,
    )
    tmp.replace(done)


def train_and_score(run: Run, args: argparse.Namespace, plan: Plan) -> None:
    """Train the run to ``--steps`` (resuming a run cut short); without a deadline, score it at once."""
    if plan.failures or plan.clock.passed() or eval_file(run, plan.steps, plan.steps).exists():
        return
    try:
        if plan.steps not in saved_steps(run.train_dir):
            cmd = [*_occkit(), "train", args.preset, "--data", str(run.data), "--out", str(run.train_dir)]
            cmd += ["--max-steps", str(plan.steps), "--no-val", "--no-progress", "--set", *run.sets]
            resume = ["--resume"] if saved_steps(run.train_dir) else []
            log = run.folder / "train.log" if plan.logs else None
            if not _run(cmd + resume, f"occkit train ({run.folder.name})", log, plan.clock):
                return
        if plan.clock.deadline_s is None and plan.steps in saved_steps(run.train_dir):  # else: at the common step
            score(run, plan.steps, args, plan)
    except StudyError as e:
        plan.failures.append(str(e))


def _pool(fn, items: list, parallel: int) -> None:  # noqa: ANN001
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as ex:
        list(ex.map(fn, items))


def scored_step(plan: Plan) -> tuple[int, str | None]:
    """The step every run is scored at: ``--steps`` when all reached it, else the last step all saved (the
    deadline's line says so)."""
    saved = {
        r.folder.name: saved_steps(r.train_dir)
        | ({plan.steps} if eval_file(r, plan.steps, plan.steps).exists() else set())
        for r in plan.runs
    }
    if all(plan.steps in s for s in saved.values()):
        return plan.steps, None
    step = common_step(saved)
    reached = ", ".join(f"{k} {max(v) if v else 0}" for k, v in saved.items())
    why = f"not every run reached step {plan.steps}"
    if plan.clock.deadline_s is not None:
        why += f" by the deadline ({plan.clock.deadline_s:g} s"
        why += f", runs stopped at {plan.clock.elapsed():.0f} s)" if plan.clock.stopped.is_set() else ")"
    if step is None:
        raise StudyError(f"{why}, and no step was saved by every run (last saved: {reached})")
    return step, (
        f"{why}: every run scored at step {step}, the last saved step all {len(plan.runs)} runs reached "
        f"(last saved: {reached})"
    )


def plan_runs(args: argparse.Namespace, seeds: list[int], arms: list[str], clock: Clock) -> Plan:
    """Each (arm, seed) run with the settings it trains with; a folder trained with others is refused up front."""
    data = {"truth": args.world, "labels": args.labels}
    eval_steps = sorted(set(_parse_ints(args.eval_steps, "--eval-steps", "step"))) if args.eval_steps else []
    ckpt_sets = []
    if eval_steps or args.deadline_s is not None:
        every = checkpoint_every(eval_steps, args.steps, args.ckpt_every)
        ckpt_sets = [f"train.ckpt_every={every}", "train.keep_checkpoints=0"]
    backbone = args.out / "backbone.safetensors"
    extra = (SAME_LOSSES if args.same_losses else []) + (NO_SEM2D if args.no_sem2d else [])
    runs = []
    for seed in seeds:  # seed by seed: a stopped study has both arms
        for arm in arms:
            folder = args.out / f"{arm}-s{seed}"
            sets = [f"model.backbone_weights={backbone.resolve()}", f"train.seed={seed}"]
            sets += [f"train.threads={args.threads}", *extra, *args.set, *ckpt_sets]
            settings = {"preset": args.preset, "data": str(data[arm]), "steps": args.steps, "set": sets}
            check_settings(folder, settings)
            runs.append(Run(arm, seed, folder, data[arm], sets, settings))
    for run in runs:
        run.folder.mkdir(parents=True, exist_ok=True)
        (run.folder / "settings.json").write_text(json.dumps(run.settings, indent=1))
    return Plan(runs, args.steps, eval_steps, clock, logs=args.parallel > 1, pruning=bool(ckpt_sets))


def collect(plan: Plan, args: argparse.Namespace, scored: list[int], line: str | None) -> dict:
    """The study's JSON: each arm's scores and losses at the scored step, its scores at every scored step and
    whether it converged, the settings, the deadline's outcome."""
    final = scored[0]
    extra = (SAME_LOSSES if args.same_losses else []) + (NO_SEM2D if args.no_sem2d else [])
    results: dict[str, list[dict]] = {}
    by_step: dict[str, dict[int, dict]] = {}
    for run in plan.runs:
        evals = {s: json.loads(eval_file(run, s, plan.steps).read_text()) for s in scored}
        row = {
            "seed": run.seed,
            "eval": evals[final],
            "losses": run_losses(run.train_dir, args.loss_window, upto=final),
            "settings": extra,
        }
        results.setdefault(run.arm, []).append(row)
        for s, ev in evals.items():
            cell = by_step.setdefault(run.arm, {}).setdefault(s, {})
            for key in ("miou", "rayiou"):
                if key in ev:
                    cell.setdefault(key, []).append(float(ev[key]))
    by_stats = {arm: {s: {k: _stats(v) for k, v in c.items()} for s, c in st.items()} for arm, st in by_step.items()}
    conv = {arm: convergence(st) for arm, st in by_stats.items()}
    for c in conv.values():
        if c:
            c["flag"] = "converged" if c["converged"] else "not converged"
    return {
        "summary": {arm: summarise(rows) for arm, rows in results.items()},
        "by_step": by_stats,
        "convergence": conv,
        "scored_step": final,
        "deadline": {"deadline_s": args.deadline_s, "stopped": plan.clock.stopped.is_set(), "line": line},
    }


def write_summary(args: argparse.Namespace, arms: list[str], got: dict, maps: dict | None) -> Path:
    out = args.out / f"downstream-{'-'.join(arms)}.json"
    summary_all = {
        "preset": args.preset,
        "steps": args.steps,
        "same_losses": args.same_losses,
        "no_sem2d": args.no_sem2d,
        "set": args.set,
        "parallel": args.parallel,
        "loss_window": args.loss_window,
        "maps_agree_with_the_worlds": maps,
        "arms": got["summary"],
        "scored_step": got["scored_step"],
        "deadline": got["deadline"],
        "by_step": {arm: {str(s): v for s, v in sorted(st.items())} for arm, st in got["by_step"].items()},
        "convergence": got["convergence"],
    }
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(summary_all, indent=1))
    tmp.replace(out)
    return out


def score_steps(plan: Plan, args: argparse.Namespace, final: int, arms: list[str], line: str | None) -> dict:
    """Score every run at ``final`` and then at each eval step below it (latest first; a step some run has no
    checkpoint of is left out, said in one line), writing the study's JSON after each step."""
    scored: list[int] = []
    got: dict = {}
    for step in [final] + sorted((s for s in plan.eval_steps if s < final), reverse=True):
        lacking = [
            r.folder.name
            for r in plan.runs
            if not eval_file(r, step, plan.steps).exists() and step not in saved_steps(r.train_dir)
        ]
        if lacking:
            print(f"step {step}: not scored, no checkpoint of it in {', '.join(lacking)}", flush=True)
            continue
        _pool(lambda r, s=step: score(r, s, args, plan), plan.runs, args.parallel)
        scored.append(step)
        got = collect(plan, args, scored, line)
        maps_file = args.out / "maps.json"
        write_summary(args, arms, got, json.loads(maps_file.read_text()) if maps_file.is_file() else None)
    return got


def study(args: argparse.Namespace) -> int:
    clock = Clock(args.deadline_s)
    for flag, path in (("--world", args.world), ("--labels", args.labels)):
        if not path.is_dir():
            raise StudyError(f"{flag} {path}: not a folder")
    for flag, val in (("--steps", args.steps), ("--loss-window", args.loss_window), ("--parallel", args.parallel)):
        if val < 1:
            raise StudyError(f"{flag} {val}: expected at least 1")
    if args.deadline_s is not None and args.deadline_s <= 0:
        raise StudyError(f"--deadline-s {args.deadline_s}: expected a positive number of seconds")
    bad_sets = [s for s in args.set if "=" not in s]
    if bad_sets:
        raise StudyError(f"--set {bad_sets[0]!r}: expected KEY=VALUE")
    seeds = _parse_ints(args.seeds, "--seeds")
    arms = [a for a in args.arms.split(",") if a]
    bad = [a for a in arms if a not in ("truth", "labels")]
    if bad or not arms:
        raise StudyError(f"--arms {args.arms!r}: expected truth, labels or both")
    args.out.mkdir(parents=True, exist_ok=True)
    plan = plan_runs(args, seeds, arms, clock)
    backbone = args.out / "backbone.safetensors"
    if not backbone.exists():
        from occkit.commands.demo import write_shipped_backbone

        write_shipped_backbone(backbone)
    stop = threading.Event()
    pruner = threading.Thread(target=_pruning, args=(plan, stop), daemon=True)
    if plan.pruning:
        pruner.start()
    try:
        _pool(lambda r: train_and_score(r, args, plan), plan.runs, args.parallel)
    finally:
        stop.set()
    if plan.pruning:
        pruner.join()
        prune(plan)
    if plan.failures:
        raise StudyError(plan.failures[0] + (f" (and {len(plan.failures) - 1} more)" if len(plan.failures) > 1 else ""))
    final, line = scored_step(plan)
    if line:
        print(line, flush=True)
    got = score_steps(plan, args, final, arms, line)
    maps_file = args.out / "maps.json"
    if not maps_file.is_file():
        maps_file.write_text(json.dumps(maps_agreement(args.world, args.labels, args.map_stride), indent=1))
    maps = json.loads(maps_file.read_text())
    write_summary(args, arms, got, maps)
    summary = got["summary"]
    print(table(summary))
    if any(len(st) > 1 for st in got["by_step"].values()):
        print(steps_table(got["by_step"], got["convergence"]))
    if line:
        print(line)
    print(
        "2D semantic maps against the world's (pixels, targets at stride {}): the labels' {}, {}; the exact voxels "
        "rendered {}, {}".format(args.map_stride, *maps["labels"].values(), *maps["exact_voxels"].values())
    )
    if len(summary) == 2 and all("rayiou" in s and "miou" in s for s in summary.values()):
        t, lab = summary["truth"], summary["labels"]
        for key in ("miou", "rayiou"):
            print(
                f"{key}: labels - truth {lab[key]['mean'] - t[key]['mean']:+.2f} "
                f"(spreads {t[key]['spread']}, {lab[key]['spread']})"
            )
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--world", type=Path, required=True, help="the synthetic world (its exact labels, its images)")
    p.add_argument("--labels", type=Path, required=True, help="occkit label --data WORLD --out LABELS")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--preset", default="synth-cpu")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--arms", default="truth,labels", help="which arms to run here (two lanes: one each)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--same-losses",
        action="store_true",
        help="both arms with the same loss terms from the same sensors: " + ", ".join(SAME_LOSSES),
    )
    p.add_argument(
        "--no-sem2d", action="store_true", help="the 2D semantic loss off in both arms: " + ", ".join(NO_SEM2D)
    )
    p.add_argument(
        "--map-stride",
        type=int,
        default=8,
        help="the 2D maps' targets: the preset's model.feature_stride (synth-cpu 8)",
    )
    p.add_argument(
        "--loss-window", type=int, default=100, help="each run's losses: their mean over its last this many steps"
    )
    p.add_argument(
        "--set",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="given to every occkit train of both arms, e.g. train.device=cuda data.workers=2 (repeatable)",
    )
    p.add_argument("--parallel", type=int, default=1, help="train up to this many runs at once (default 1)")
    p.add_argument("--eval-steps", default="", help="also score each run's checkpoints at these steps, e.g. 300,1000")
    p.add_argument(
        "--ckpt-every",
        type=int,
        default=None,
        help="with --eval-steps or --deadline-s: save every this many steps (default: the greatest common "
        "divisor of --eval-steps and --steps; give it with --deadline-s alone)",
    )
    p.add_argument(
        "--deadline-s",
        type=float,
        default=None,
        help="stop the trainings this many seconds after the study started and score every run at the last "
        "saved step all runs reached",
    )
    args = p.parse_args()
    try:
        return study(args)
    except StudyError as e:
        print(f"label_downstream: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
