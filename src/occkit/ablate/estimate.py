"""An ablation's time before any run has finished: its steps at the presets' measured step times.

``step_rates.json`` (package data, made by ``benchmarks/step_rates.py`` from
``benchmarks/bench_mfu.py``'s rows) holds, per CPU preset, the mean seconds of one training step at
the threads it was measured at, on the machine it names. :func:`estimate` counts, for every run not
done yet, the steps left (the budget less its checkpoint's step) and for every ``train`` stage not
built yet its ``max-steps``; steps times the preset's step time, taken as it is at any
``--threads`` (not scaled: on the 2-core machine the table was measured on, the regime's
``synth-abl`` runs at one thread each, two lanes, took 0.9-1.0 s per step with their validations,
BENCHMARKS.md, against 0.88 s in the table at two threads). Lane-seconds over the lanes give the wall time, as if the
work spread evenly over them. Not counted: validations and scoring (not measured), other stages
(worlds, prior caches, backbone pretraining), and arms or stages whose preset is not in the table
(a YAML path, a package's method): those are named, never taken as zero.

The table is one machine's: on another the steps can take several times as long (a CPU without
native bf16 trains the table's bf16-autocast presets in float32). So the estimate names this
machine beside the table's, and once a training command of the ablation (a stage or a run) has
logged its first steps here, :func:`measured_seconds_per_step` reads its pace from its
``train.jsonl`` and :func:`pace_text` says it against the table's, with the estimate at that ratio.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from statistics import median
from typing import Any

STEP_RATES = "step_rates.json"
PACE_WARMUP_STEPS = 20
"""Steps a training logs before its pace counts (the first steps load data and warm caches)."""
PACE_RECORDS = 3
"""Logged records past the warm-up a pace needs (each ``train.jsonl`` record: the steps since the last)."""


@dataclass
class Pace:
    """A training command whose pace the runner reads while it runs: its ``train.jsonl``, its
    preset, and what the console calls it (``stage student``, ``arm rdc seed 1``)."""

    train_log: Path
    preset: str
    what: str


def step_rates() -> dict[str, Any]:
    """The packaged table (``{"machine", "threads", "date", "commit", "command", "world", "presets"}``)."""
    return json.loads(resources.files("occkit.ablate").joinpath(STEP_RATES).read_text(encoding="utf-8"))


def _this_machine() -> dict[str, Any]:
    from occkit.ablate.stages import machine_info

    return machine_info()


def _seconds(preset: str, steps: int, table: dict[str, Any]) -> float | None:
    row = table["presets"].get(preset)
    if row is None:
        return None
    return steps * float(row["s_per_step"])


def estimate(ab: Any, table: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the runs not done yet (and the ``train`` stages not built yet) of ``ab`` (an
    :class:`occkit.ablate.runner.Ablation`, which calls this: no import back up to it) should take
    at the table's step times; see the module docstring."""
    from occkit.ablate.stages import checkpoint_step

    table = step_rates() if table is None else table
    threads = ab.opts.threads
    runs, steps, run_seconds, validations = 0, 0, 0.0, 0
    unestimated: dict[str, str] = {}  # arm -> preset
    unestimated_runs = 0
    counted: set[str] = set()  # the presets of the runs and stages estimated
    for arm, seed in ab.runs():
        state = ab.run_state(arm, seed)[0]
        if state == "done" or (state == "locked" and not ab.locked_here(arm, seed)):  # another runner's: not ours
            continue
        left = max(0, ab.spec.budget - (checkpoint_step(ab.run_dir(arm, seed)) or 0))
        preset = ab.spec.arms[arm].preset
        s = _seconds(preset, left, table)
        if s is None:
            unestimated[arm] = preset
            unestimated_runs += 1
            continue
        runs, steps, run_seconds = runs + 1, steps + left, run_seconds + s
        counted.add(preset)
        validations += ab.spec.validations if left else 0
    stage_seconds, stages, not_counted = 0.0, [], []
    for name in ab.needed:
        plan = ab.plans[name]
        if plan.status() == "cached":
            continue
        args = plan.args
        preset, max_steps = args.get("config"), args.get("max-steps")
        s = None
        if plan.command == "train" and isinstance(preset, str) and isinstance(max_steps, int):
            done = checkpoint_step(plan.out) or 0
            s = _seconds(preset, max(0, max_steps - done), table)
        if s is None:
            not_counted.append(name)
        else:
            stage_seconds += s
            stages.append(name)
            counted.add(preset)
    lanes = max(1, ab.opts.lanes)
    return {
        "runs": runs,
        "steps": steps,
        "validations": validations,
        "run_seconds": run_seconds,
        "unestimated": unestimated,
        "unestimated_runs": unestimated_runs,
        "stages": stages,
        "stage_seconds": stage_seconds,
        "stages_not_counted": not_counted,
        "lanes": lanes,
        "threads": threads,
        # a lane runs one command at a time: more lanes than commands leave lanes idle
        "wall_seconds": stage_seconds / min(lanes, max(1, len(stages))) + run_seconds / min(lanes, max(1, runs)),
        "machine": table.get("machine", "?"),
        "table_threads": table.get("threads"),
        "table_date": table.get("date"),
        "here": _this_machine(),
        "device": ab.opts.device,
        # the presets counted whose row was measured under bf16 autocast (native on the table's machine)
        "bf16_presets": sorted(p for p in counted if table["presets"][p].get("amp") == "bf16"),
    }


def _hours(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{max(1, round(seconds / 60))} min" if seconds > 0 else "0 min"  # never "0 min" for work left


def estimate_text(e: dict[str, Any], budget: int) -> str:
    """A few lines for the plan: the estimate, what it is made of and what it leaves out."""
    measured = e["table_threads"]
    at = "/".join(str(t) for t in measured) if isinstance(measured, list) else str(measured)
    scaled = (
        f"; taken unscaled at {e['threads']} thread(s) (on that machine a step at 1 thread per lane took about "
        "as long: the regime's synth-abl runs, BENCHMARKS.md)"
        if [e["threads"]] != measured
        else ""
    )
    whole = e["steps"] == e["runs"] * budget
    if e["runs"] == 0 and e["unestimated_runs"] and not e["stages"]:  # nothing measured: no figure, not "0 min"
        names = ", ".join(f"{a} ({p})" for a, p in e["unestimated"].items())
        return (
            f"Time estimate: unknown: none of the {e['unestimated_runs']} run(s) left has a preset in the table of "
            f"measured step times (occkit/ablate/{STEP_RATES}): arm(s) {names}; the pace of the first finished "
            "run estimates the rest"
        )
    lines = [
        f"Time estimate: about {_hours(e['wall_seconds'])} on {e['lanes']} lane(s) x {e['threads']} thread(s) "
        + (f"(only {max(1, e['runs'])} busy: one run per lane) " if e["lanes"] > max(1, e["runs"]) else "")
        + "(no run has finished yet: from the presets' measured step times, not from a pace measured here)"
        + (f"; {e['unestimated_runs']} run(s) more, unestimated, not in it" if e["unestimated_runs"] else ""),
        f"  runs: {e['runs']} x {budget} steps" if whole else f"  runs: {e['runs']}, {e['steps']} steps left in all",
    ]
    lines[-1] += (
        f" ({_hours(e['run_seconds'])} of lane time) at the presets' seconds per step measured on {e['machine']} "
        f"at {at} thread(s), {e['table_date']} (occkit/ablate/{STEP_RATES}){scaled}"
    )
    if e["unestimated"]:
        names = ", ".join(f"{a} ({p})" for a, p in e["unestimated"].items())
        lines.append(f"  unestimated: {e['unestimated_runs']} run(s) whose preset is not in the table: arm(s) {names}")
    if e["stages"]:
        lines.append(
            f"  train stages counted by their max-steps: {', '.join(e['stages'])} ({_hours(e['stage_seconds'])})"
        )
    if e["stages_not_counted"]:
        lines.append(f"  stages not counted: {', '.join(e['stages_not_counted'])}")
    lines.append(f"  not counted: validations ({e['validations']} in all), scoring")
    here = e.get("here") or {}
    if here:
        bf16 = {True: "native bf16", False: "no native bf16"}.get(here.get("bf16"), "bf16 unknown")
        lines.append(
            f"  this machine: {here.get('cpu', '?')} ({bf16}); the first steps of each training here give its pace "
            "(printed as 'pace here'), which corrects this figure"
        )
        # on CUDA the presets' bf16 autocast is the GPU's: the CPU's lack of it changes nothing
        if here.get("bf16") is False and e.get("bf16_presets") and str(e.get("device", "cpu")).startswith("cpu"):
            lines.append(
                f"  the table's rows for {', '.join(e['bf16_presets'])} were measured under bf16 autocast, native "
                "on that machine; this CPU trains them in float32: expect their steps to take longer than the table's"
            )
    return "\n".join(lines)


def measured_seconds_per_step(
    train_log: Path, start: int = 0, warmup: int = PACE_WARMUP_STEPS, last: int = 10
) -> tuple[float, int, int] | None:
    """The pace a training logged in ``train_log`` (its ``train.jsonl``) after byte ``start`` (where
    this command's records begin: a resumed run's file holds its earlier ones): the median seconds
    per step of its last ``last`` records past its first ``warmup`` steps, with the first and last
    step those records cover. None before :data:`PACE_RECORDS` such records, or when the file
    cannot be read. A record's ``steps_per_s`` counts the steps since the record before, so a
    validation in between makes one slow record, which the median leaves aside."""
    try:
        with train_log.open("rb") as fh:
            fh.seek(start)
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    records = []
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:  # a line being written
            continue
        if isinstance(rec, dict) and isinstance(rec.get("step"), int) and (rec.get("steps_per_s") or 0) > 0:
            records.append(rec)
    if not records:
        return None
    first = records[0]["step"]
    records = [r for r in records if r["step"] - first >= warmup][-last:]
    if len(records) < PACE_RECORDS:
        return None
    return median(1.0 / float(r["steps_per_s"]) for r in records), records[0]["step"], records[-1]["step"]


def pace_text(pace: Pace, seconds: float, steps: tuple[int, int], threads: int, e: dict[str, Any]) -> str:
    """The line that says a training's pace here against the table's row for its preset (``e``: an
    :func:`estimate` of the work left now), with the estimate at that ratio."""
    table = step_rates()
    head = (
        f"pace here: {pace.what} ({pace.preset}) {seconds:.2f} s a step at {threads} thread(s) "
        f"(median over steps {steps[0]}-{steps[1]})"
    )
    row = table["presets"].get(pace.preset)
    if row is None:
        return head + f"; the table of measured step times (occkit/ablate/{STEP_RATES}) has no row for this preset"
    ratio = seconds / float(row["s_per_step"])
    text = (
        head + f", against {float(row['s_per_step']):.2f} s measured on {table.get('machine', '?')}: "
        f"{ratio:.1f}x the table's"
    )
    if e["runs"] or e["stages"]:
        text += (
            f"; at that ratio the work the table counts takes about {_hours(e['wall_seconds'] * ratio)} "
            f"on {e['lanes']} lane(s), not {_hours(e['wall_seconds'])}"
        )
    return text
