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
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

STEP_RATES = "step_rates.json"


def step_rates() -> dict[str, Any]:
    """The packaged table (``{"machine", "threads", "date", "commit", "command", "world", "presets"}``)."""
    return json.loads(resources.files("occkit.ablate").joinpath(STEP_RATES).read_text(encoding="utf-8"))


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
    for arm, seed in ab.runs():
        if ab.run_state(arm, seed)[0] in ("done", "locked"):
            continue
        left = max(0, ab.spec.budget - (checkpoint_step(ab.run_dir(arm, seed)) or 0))
        preset = ab.spec.arms[arm].preset
        s = _seconds(preset, left, table)
        if s is None:
            unestimated[arm] = preset
            unestimated_runs += 1
            continue
        runs, steps, run_seconds = runs + 1, steps + left, run_seconds + s
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
    return "\n".join(lines)
