"""The ablation's results, rebuilt from disk: ``results.json``, ``results.md`` and ``curves.png``.

Everything is read from the run folders (``metrics.jsonl``, the scorers' JSON, ``ablate.json``,
the newest checkpoint) and the stages' ``stage.json``, so ``occkit ablate SPEC --out DIR
--report`` rebuilds the same files without running anything, and the runner rewrites them after
every finished arm x seed (arms not run yet are marked so).

Per arm x seed: the spec's ``metric`` at the last validation at or before the budget (the
curve's end), the scorers' figures, the last two validations and whether they differ by at most
``tolerance`` (converged; None with fewer than two validations), and whether it started from the
stages' current builds (``build``: a run from another build, a stage rebuilt since, is listed
with a dagger and left out of the means). Per arm, over the seeds that have a value and the
current builds: the mean and the half-range ((max - min) / 2) of each figure; converged when every
seed is.

``results.json``::

    {"name", "description", "spec", "command", "updated", "budget", "validations", "val_every",
     "tolerance", "metric", "seeds",
     "columns": [{"id": "occ3d_camera.miou", "label": "mIoU (occ3d camera)", "file", "key"}, ...],
     "stages": {NAME: {"command", "hash", "folder", "status", "wall_seconds", "finished",
                       "quality": the stage's own figures (a train stage's last validation,
                                  a priors train run's losses)}},
     "arms": {ARM: {"preset", "set", "init_from", "data", "description", "status",
                    "seeds": {"0": {"run", "status", "detail", "step", "metric", "curve": [[step, value], ...],
                                    "last_two", "delta", "converged", "scores": {COLUMN_ID: value},
                                    "train_seconds", "score_seconds", "train_minutes", "error",
                                    "build": "current" | "other" | "unknown" | "new", "rebuilt_stages",
                                    "plateau": {COLUMN_ID: {"previous", "delta", "converged"}},
                                    "classes": {"metric" | COLUMN_ID: {CLASS: IoU or None}},
                                    "precision": the precisions its validations record, in order
                                                 ("bf16", "none": float32)}},
                    "summary": {"metric" | COLUMN_ID: {"mean", "half_range", "values", "seeds", "n"}},
                    "converged", "train_seconds", "score_seconds"}},
     "claims": [{"name", "arm", "against", "figure", "against_figure", "higher", "label",
                 "differences": {SEED: arm's figure - against's figure}, "summary": {"mean", "half_range", ...},
                 "ahead", "behind", "equal", "paired",
                 "verdict": "holds" | "reversed" | "mixed" | "one seed" | "not run yet",
                 "not_converged": [arm names],
                 "class_sets": {SEED: {"only_arm": [classes], "only_against": [classes],
                                       "common_difference": the difference over the classes both average}},
                 "common_differences": {SEED: difference over the classes both average} or {},
                 "precisions": {SEED: {"arm": [amp, ...], "against": [amp, ...]}} where they differ}],
     "time_left": {"runs", "lane_seconds", "estimated_runs", "paced_by", "lanes", "wall_seconds"} or None,
     "spec_resolved": the spec's mapping after the command line's overrides}

A claim (the spec's ``claims:``) pairs its two sides seed by seed, over the seeds where both runs
are trained to the budget (a scorer may be left to run) and of the current builds: the difference
``arm - against`` per seed, their mean and half-range, and in how many seeds the arm is ahead (above
with ``higher``, below without). It ``holds`` when the arm is ahead in every paired seed (two or
more), is ``reversed`` when behind in every one, ``mixed`` otherwise (``one seed`` with a single
pair); ``not_converged`` names a side whose arm the convergence rule flags.

``classes`` keeps, for a figure that is the mean of a per-class IoU table (an mIoU: the validation
record's, or a scored file's ``iou``), that table, a class undefined (NaN: neither the ground truth
nor the prediction has it) as None. The official means leave such a class out (Occ3D's mIoU is a
nanmean), so two runs of a claim can average over different classes: one predicts a class the
ground truth lacks (IoU 0, counted), the other does not predict it (left out). A claim names the
seeds where its two sides' tables define different classes (``class_sets``) and gives, beside the
official difference, the difference over the classes both define (``common_differences``, every
paired seed with tables on both sides; empty when no seed differs). The verdict stays the official
figure's.

``precision`` lists the precisions a run's validations record (``occkit train`` writes the one it
trains at, ``amp``, in each: a preset's CPU bf16 autocast is float32 on a CPU without native bf16).
Two runs of one seed of a claim trained at different precisions (on machines with and without
native bf16, or a run resumed on the other kind) are named in the claim (``precisions``): the
difference then holds the precision's effect too. Runs from before the record carry none and are
not named.

``plateau`` holds, for a scorer run with ``previous: true``, each figure at the checkpoint before
the last and whether it moved by at most ``tolerance`` since; results.md's converged column names
the figures that did not, and a claim on such a figure names its arm as not converged (on a figure
without it, the metric's curve decides).

``time_left`` is what the runs not done yet should take at the pace of the done ones: each arm's
mean wall seconds (training + scoring) over its finished runs of the current builds, the mean over
every arm's finished runs for an arm with none (``estimated_runs`` counts those), a stopped run
counted for the steps it has left; ``wall_seconds`` spreads it over the lanes of the command
(``lanes``). Stages still to build are not counted. None before any run has finished.

Wall seconds are the runner's clock around each subprocess, summed over the ``occkit ablate``
commands that ran it (a command killed midway loses its share); ``train_minutes`` is the engine's own count of training
time (validation excluded), which survives stops.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from occkit.ablate.scorers import PREVIOUS, SCORERS, score_columns
from occkit.ablate.spec import AblationSpec
from occkit.ablate.stages import RUN_RECORD, StagePlan, checkpoint_step
from occkit.fileio import read_json, write_json_atomic, write_text_atomic


class Ablation(Protocol):
    """What the report reads of an ablation (occkit.ablate.runner.Ablation has it; the runner imports this module,
    so this module names the runner's class by its shape, not by an import)."""

    spec: AblationSpec
    opts: Any
    out: Path
    plans: dict[str, StagePlan]
    reported: list[str]

    def runs(self) -> list[tuple[str, int]]: ...
    def run_dir(self, arm: str, seed: int) -> Path: ...
    def run_state(self, arm: str, seed: int) -> tuple[str, str]: ...
    def build_state(self, arm: str, seed: int) -> tuple[str, list[str]]: ...


# ------------------------------------------------------------------------------------- figures
def metric_curve(records: Sequence[dict[str, Any]], metric: str, budget: int | None = None) -> list[list[float]]:
    """``[[step, value], ...]`` of ``metric`` in validation records, by step (a step logged twice
    keeps its last record; steps past ``budget`` and non-finite values are left out)."""
    by_step: dict[int, float] = {}
    for r in records:
        step, v = r.get("step"), r.get(metric)
        if not isinstance(step, (int, float)) or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if budget is not None and step > budget or not math.isfinite(float(v)):
            continue
        by_step[int(step)] = float(v)
    return [[s, by_step[s]] for s in sorted(by_step)]


def convergence(curve: Sequence[Sequence[float]], tolerance: float) -> dict[str, Any]:
    """The last two validations of a curve and whether they differ by at most ``tolerance``
    (``converged`` None with fewer than two)."""
    if len(curve) < 2:
        return {"last_two": [v for _, v in curve[-1:]] or None, "delta": None, "converged": None}
    a, b = curve[-2][1], curve[-1][1]
    delta = b - a
    return {"last_two": [a, b], "delta": delta, "converged": bool(abs(delta) <= tolerance)}


def spread(values: dict[str, float | None]) -> dict[str, Any] | None:
    """Mean and half-range ((max - min) / 2) over the seeds that have a value, or None."""
    have = {k: float(v) for k, v in values.items() if v is not None and math.isfinite(float(v))}
    if not have:
        return None
    vs = list(have.values())
    return {
        "mean": sum(vs) / len(vs),
        "half_range": (max(vs) - min(vs)) / 2,
        "values": vs,
        "seeds": list(have),
        "n": len(vs),
    }


def columns(spec: Any) -> list[dict[str, str]]:
    """The table's scorer columns, in the order of ``scoring:``."""
    return score_columns(spec.scoring)


def _figure(data: dict[str, Any], key: str) -> float | None:
    v = data.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        return None
    return float(v)


def class_table(data: dict[str, Any], key: str) -> dict[str, float | None] | None:
    """``data``'s per-class ``iou`` table when ``data[key]`` is its mean over the classes it defines
    (an mIoU), a class undefined (None, NaN) as None; None for any other figure."""
    figure, iou = _figure(data, key), data.get("iou")
    if figure is None or not isinstance(iou, dict) or not iou:
        return None
    table = {str(k): _figure(iou, k) for k in iou}
    defined = [v for v in table.values() if v is not None]
    if not defined or not math.isclose(sum(defined) / len(defined), figure, rel_tol=1e-6, abs_tol=1e-9):
        return None
    return table


def seed_result(ab: Ablation, arm: str, seed: int, cols: list[dict[str, str]]) -> dict[str, Any]:
    """One arm x seed, as results.json records it, from its run folder."""
    from occkit.engine.logging import read_jsonl

    sp, run = ab.spec, ab.run_dir(arm, seed)
    status, detail = ab.run_state(arm, seed)
    res = _unrun_seed(os.path.relpath(run, ab.out), status, detail)
    if not run.exists():
        return res
    res["build"], res["rebuilt_stages"] = ab.build_state(arm, seed)
    res["step"] = checkpoint_step(run)
    records = read_jsonl(run / "metrics.jsonl") if (run / "metrics.jsonl").is_file() else []
    _read_validations(res, records, sp)
    files = {o for s in sp.scorings_for(arm) for o in SCORERS[s.scorer].outputs(s.options)}
    for c in cols:
        _read_score(res, run, c, files, sp.tolerance)
    if (run / RUN_RECORD).is_file():
        rec = read_json(run / RUN_RECORD)
        res["train_seconds"], res["score_seconds"], res["error"] = (
            rec.get("train_seconds"),
            rec.get("score_seconds"),
            rec.get("error"),
        )
        if rec.get("error") and status != "done" and status != "locked":
            res["status"] = "failed"
    return res


def _unrun_seed(run: str, status: str, detail: str) -> dict[str, Any]:
    """A seed's record before anything is read from its run folder (all it has when there is none)."""
    return {
        "run": run,
        "status": "not run" if status == "new" else status,
        "detail": detail,
        "step": None,
        "metric": None,
        "curve": [],
        "last_two": None,
        "delta": None,
        "converged": None,
        "scores": {},
        "train_seconds": None,
        "score_seconds": None,
        "train_minutes": None,
        "error": None,
        "build": "new",
        "rebuilt_stages": [],
        "plateau": {},
        "classes": {},
        "precision": [],
    }


def _read_validations(res: dict[str, Any], records: list[dict[str, Any]], sp: AblationSpec) -> None:
    """Fill a seed's record from its validation records: the curve, the metric at the budget and its
    class table, the convergence, the precisions and the training minutes."""
    res["curve"] = metric_curve(records, sp.metric, sp.budget)
    if res["step"] == sp.budget and res["curve"] and res["curve"][-1][0] == sp.budget:
        res["metric"] = res["curve"][-1][1]
    res.update(convergence(res["curve"], sp.tolerance) if res["step"] == sp.budget else {})
    if res["metric"] is not None:
        last = [r for r in records if r.get("step") == sp.budget]
        table = class_table(last[-1], sp.metric) if last else None
        if table is not None:
            res["classes"]["metric"] = table
    res["precision"] = list(dict.fromkeys(r["amp"] for r in records if isinstance(r.get("amp"), str)))
    minutes = [r.get("train_minutes") for r in records if isinstance(r.get("train_minutes"), (int, float))]
    res["train_minutes"] = minutes[-1] if minutes else None


def _read_score(res: dict[str, Any], run: Path, c: dict[str, str], files: set[str], tolerance: float) -> None:
    """Fill a seed's record with one scorer column: its figure, its class table, and its plateau
    when the scorer also scored the checkpoint before the last."""
    f = run / c["file"]
    if c["file"] in files and f.is_file():
        scored = read_json(f)
        res["scores"][c["id"]] = _figure(scored, c["key"])
        table = class_table(scored, c["key"])
        if table is not None:
            res["classes"][c["id"]] = table
    prev = c["file"].removesuffix(".json") + f"{PREVIOUS}.json"
    if prev in files and (run / prev).is_file() and res["scores"].get(c["id"]) is not None:
        before = _figure(read_json(run / prev), c["key"])
        if before is not None:
            delta = res["scores"][c["id"]] - before
            res["plateau"][c["id"]] = {
                "previous": before,
                "delta": delta,
                "converged": bool(abs(delta) <= tolerance),
            }


def collect(ab: Ablation) -> dict[str, Any]:
    """The whole results record (see the module docstring) from disk."""
    sp = ab.spec
    cols = columns(sp)
    out: dict[str, Any] = {
        "name": sp.name,
        "description": sp.description,
        "spec": str(sp.path),
        "command": ab.opts.command,
        "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "budget": sp.budget,
        "validations": sp.validations,
        "val_every": sp.val_every,
        "tolerance": sp.tolerance,
        "metric": sp.metric,
        "seeds": list(sp.report_seeds or sp.seeds),
        "columns": cols,
        "stages": {name: _stage_result(ab, ab.plans[name]) for name in ab.reported},
        "arms": {},
    }
    every = [(a, s) for a in sp.arms for s in (sp.report_seeds or sp.seeds)]
    asked = [tuple(r) for r in ab.runs()]
    seeds_of: dict[str, list[int]] = {a: list(sp.report_seeds or sp.seeds) for a in sp.arms}
    if set(asked) != set(every):
        # --only / --seeds: the table, the claims and the time left cover the arms and seeds asked for, and
        # the report seeds of those arms where their runs are on disk (not as runs still to do)
        seeds_of = _asked_seeds(ab, asked)
        out["seeds"] = sorted({s for ss in seeds_of.values() for s in ss})
        out["asked"] = {"runs": len(asked), "of": len(every)}
    for arm_name in sp.arms:
        if arm_name in seeds_of:
            out["arms"][arm_name] = _arm_result(ab, arm_name, seeds_of[arm_name], cols)
    out["claims"] = [claim_result(out, vars(c)) for c in sp.claims if c.arm in out["arms"] and c.against in out["arms"]]
    out["time_left"] = time_left(out, ab.opts.lanes, asked=set(asked))
    out["spec_resolved"] = sp.raw
    return out


def _stage_result(ab: Ablation, plan: StagePlan) -> dict[str, Any]:
    """One stage, as results.json records it."""
    rec = plan.record() or {}
    return {
        "command": plan.command,
        "hash": plan.hash,
        "folder": os.path.relpath(plan.out, ab.out),
        "status": plan.status(),
        "wall_seconds": rec.get("wall_seconds"),
        "finished": rec.get("finished"),
        "quality": stage_quality(plan.command, Path(plan.out)),
    }


def _asked_seeds(ab: Ablation, asked: list[tuple[Any, ...]]) -> dict[str, list[int]]:
    """Arm -> the seeds the report covers when the command asked for some runs only: those asked,
    and the report seeds whose run folders are on disk."""
    sp = ab.spec
    seeds_of: dict[str, list[int]] = {}
    for a, s in asked:
        seeds_of.setdefault(a, []).append(s)
    for a in seeds_of:
        seeds_of[a] = sorted(set(seeds_of[a]) | {s for s in (sp.report_seeds or sp.seeds) if ab.run_dir(a, s).is_dir()})
    return seeds_of


def _arm_result(ab: Ablation, arm_name: str, seed_list: list[int], cols: list[dict[str, str]]) -> dict[str, Any]:
    """One arm over ``seed_list``, as results.json records it: its seeds, their summary, its status."""
    sp = ab.spec
    arm = sp.arms[arm_name]
    seeds = {str(s): seed_result(ab, arm_name, s, cols) for s in seed_list}
    arm_cols = [
        c for c in cols if any(c["file"] in SCORERS[x.scorer].outputs(x.options) for x in sp.scorings_for(arm_name))
    ]
    same = {k: v for k, v in seeds.items() if v["build"] != "other"}  # another build of a stage is not averaged in
    summary: dict[str, Any] = {"metric": spread({k: v["metric"] for k, v in same.items()})}
    for c in arm_cols:
        summary[c["id"]] = spread({k: v["scores"].get(c["id"]) for k, v in same.items() if trained(v, sp.budget)})
    flags = [v["converged"] for v in seeds.values() if trained(v, sp.budget)]
    return {
        "preset": arm.preset,
        "set": list(arm.set),
        "init_from": arm.init_from,
        "data": arm.data,
        "description": arm.description,
        "status": _arm_status([v["status"] for v in seeds.values()]),
        "seeds": seeds,
        "summary": summary,
        "converged": (False if False in flags else True if flags and all(f is True for f in flags) else None),
        "train_seconds": sum(v["train_seconds"] or 0.0 for v in seeds.values()),
        "score_seconds": sum(v["score_seconds"] or 0.0 for v in seeds.values()),
    }


def _arm_status(statuses: list[str]) -> str:
    """An arm's status from its seeds': done, not run, failed (any seed failed) or partial."""
    if all(s == "done" for s in statuses):
        return "done"
    if all(s == "not run" for s in statuses):
        return "not run"
    return "failed" if "failed" in statuses else "partial"


def trained(v: dict[str, Any], budget: int | None) -> bool:
    """Whether a seed's run is done, or trained to the budget with a scorer still to run (a scorer
    added to the spec later): its figures that exist are reported."""
    return v["status"] == "done" or (v["status"] == "partial" and budget is not None and v.get("step") == budget)


def _side(arm: dict[str, Any], seed: str, figure: str, budget: int | None) -> float | None:
    v = arm["seeds"].get(seed)
    if v is None or not trained(v, budget) or v.get("build") == "other":
        return None
    return v["metric"] if figure == "metric" else v["scores"].get(figure)


def figure_label(results: dict[str, Any], figure: str) -> str:
    """A claim figure's name in the report: the metric's key, or its scorer column's label."""
    if figure == "metric":
        return results["metric"]
    return next((c["label"] for c in results["columns"] if c["id"] == figure), figure)


def claim_result(results: dict[str, Any], claim: dict[str, Any]) -> dict[str, Any]:
    """One claim decided on ``results`` (the arms as :func:`collect` records them; see the module
    docstring): ``claim`` holds ``name, arm, against, figure, against_figure, higher``."""
    a, b = results["arms"][claim["arm"]], results["arms"][claim["against"]]
    diffs: dict[str, float] = {}
    for seed in a["seeds"]:
        x, y = (
            _side(a, seed, claim["figure"], results.get("budget")),
            _side(b, seed, claim["against_figure"], results.get("budget")),
        )
        if x is not None and y is not None:
            diffs[seed] = x - y
    sign = 1.0 if claim["higher"] else -1.0
    ahead = sum(1 for d in diffs.values() if sign * d > 0)
    behind = sum(1 for d in diffs.values() if sign * d < 0)
    verdict = _verdict(len(diffs), ahead, behind)
    label = figure_label(results, claim["figure"])
    if claim["against_figure"] != claim["figure"]:
        label += " against " + figure_label(results, claim["against_figure"])
    flagged = _not_converged(results, claim, diffs)
    class_sets, common = _class_sets(a, b, claim, diffs)
    precisions = _precisions(a, b, diffs)
    return {
        **claim,
        "label": label,
        "differences": diffs,
        "summary": spread(dict(diffs)),
        "ahead": ahead,
        "behind": behind,
        "equal": len(diffs) - ahead - behind,
        "paired": len(diffs),
        "verdict": verdict,
        "not_converged": flagged,
        "class_sets": class_sets,
        "common_differences": common,
        "precisions": precisions,
    }


def _verdict(paired: int, ahead: int, behind: int) -> str:
    """A claim's verdict from the seeds paired and those where its arm is ahead and behind."""
    if not paired:
        return "not run yet"
    if paired == 1:
        return "one seed"
    if ahead == paired:
        return "holds"
    return "reversed" if behind == paired else "mixed"


def _not_converged(results: dict[str, Any], claim: dict[str, Any], diffs: dict[str, float]) -> list[str]:
    """The claim's sides whose figure did not converge: by its plateau over the paired seeds where it
    was scored at the checkpoint before the last too, else by the arm's metric curve."""
    flagged: list[str] = []
    for name, fig in ((claim["arm"], claim["figure"]), (claim["against"], claim["against_figure"])):
        arm = results["arms"][name]
        checks = [arm["seeds"][k].get("plateau", {}).get(fig) for k in diffs] if fig != "metric" else []
        if any(c is not None for c in checks):  # the figure was scored at the checkpoint before the last too
            bad = any(c is not None and not c["converged"] for c in checks)
        else:
            bad = arm["converged"] is False
        if bad and name not in flagged:
            flagged.append(name)
    return flagged


def _precisions(a: dict[str, Any], b: dict[str, Any], diffs: dict[str, float]) -> dict[str, dict[str, list[str]]]:
    """The paired seeds whose two runs trained at different precisions (machines with and without
    bf16), each side's precisions."""
    precisions = {}
    for seed in diffs:
        pa, pb = a["seeds"][seed].get("precision") or [], b["seeds"][seed].get("precision") or []
        if pa and pb and (pa != pb or len(pa) > 1):
            precisions[seed] = {"arm": pa, "against": pb}
    return precisions


def _class_sets(
    a: dict[str, Any], b: dict[str, Any], claim: dict[str, Any], diffs: dict[str, float]
) -> tuple[dict[str, dict[str, Any]], dict[str, float]]:
    """The paired seeds whose two per-class tables define different classes, and every paired
    seed's difference over the classes both define (empty when no seed differs)."""
    sets: dict[str, dict[str, Any]] = {}
    common: dict[str, float] = {}
    for seed in diffs:
        ta = a["seeds"][seed].get("classes", {}).get(claim["figure"])
        tb = b["seeds"][seed].get("classes", {}).get(claim["against_figure"])
        if ta is None or tb is None:
            continue
        both = [k for k in ta if k in tb and ta[k] is not None and tb[k] is not None]
        if not both:
            continue
        common[seed] = sum(ta[k] for k in both) / len(both) - sum(tb[k] for k in both) / len(both)
        only_a = [k for k in ta if ta[k] is not None and k not in both]
        only_b = [k for k in tb if tb[k] is not None and k not in both]
        if only_a or only_b:
            sets[seed] = {"only_arm": only_a, "only_against": only_b, "common_difference": common[seed]}
    return sets, (common if sets else {})


def claim_cell(c: dict[str, Any], n_seeds: int) -> str:
    """The verdict column: ``holds (ahead in 2 of 2 seeds paired, of 3)`` and what it rests on."""
    if c["verdict"] == "not run yet":
        return "not run yet"
    if c["verdict"] == "one seed":
        (seed,) = c["differences"]
        text = f"one seed so far (s{seed}: {'ahead' if c['ahead'] else 'behind' if c['behind'] else 'equal'})"
    else:
        text = f"{c['verdict']} (ahead in {c['ahead']}, behind in {c['behind']}"
        text += f", equal in {c['equal']}" if c["equal"] else ""
        text += f" of {c['paired']} seed(s) paired" + (f", of {n_seeds}" if c["paired"] < n_seeds else "") + ")"
    text += f" [not converged: {', '.join(c['not_converged'])}]" if c["not_converged"] else ""
    return text + precisions_text(c) + class_sets_text(c)


PRECISION_NAMES = {"none": "float32", "bf16": "bf16 autocast", "fp16": "fp16 autocast"}


def precision_name(p: Any) -> str:
    """A precision a run's ``metrics.jsonl`` records, in words (:data:`PRECISION_NAMES`); a value
    occkit does not write (an edited record) is said as such and shown shortened, its characters
    beyond letters, digits and ``.+-_`` as ``?``: never pasted into ``results.md`` as it is (a
    ``|`` or a line break there would break the report's tables)."""
    if isinstance(p, str) and p in PRECISION_NAMES:
        return PRECISION_NAMES[p]
    import re

    shown = re.sub(r"[^\w.+-]", "?", str(p), flags=re.ASCII)
    return f"unrecognised precision '{shown[:20]}{'...' if len(shown) > 20 else ''}'"


def precisions_text(c: dict[str, Any]) -> str:
    """`` [trained at different precisions: s0 feat3d bf16 autocast, student float32]``, or "" when
    every paired seed's two runs trained at one and the same precision (or did not record it)."""
    said = []
    for seed, d in (c.get("precisions") or {}).items():
        sides = [
            f"{name} {' then '.join(precision_name(p) for p in d[key])}"
            for name, key in ((c["arm"], "arm"), (c["against"], "against"))
        ]
        said.append(f"s{seed} {', '.join(sides)}")
    return f" [trained at different precisions: {'; '.join(said)}]" if said else ""


def class_sets_text(c: dict[str, Any]) -> str:
    """`` [means over different classes: bus counted in b's mean only (s0, s1); over the classes
    both average: s0 +0.20, s1 +0.08]``, or "" when both sides average over the same classes in every seed."""
    sets = c.get("class_sets") or {}
    if not sets:
        return ""
    groups: dict[tuple[tuple[str, ...], tuple[str, ...]], list[str]] = {}
    for seed, d in sets.items():
        groups.setdefault((tuple(d["only_arm"]), tuple(d["only_against"])), []).append(f"s{seed}")
    said = []
    for (only_a, only_b), seeds in groups.items():
        for names, side in ((only_a, c["arm"]), (only_b, c["against"])):
            if names:
                said.append(f"{', '.join(names)} counted in {side}'s mean only ({', '.join(seeds)})")
    per = ", ".join(f"s{k} {d:+.{_decimals(d)}f}" for k, d in c["common_differences"].items())
    return f" [means over different classes: {'; '.join(said)}; over the classes both average: {per}]"


def time_left(results: dict[str, Any], lanes: int, asked: set[tuple[str, int]] | None = None) -> dict[str, Any] | None:
    """What the runs of ``results`` not done yet should take (``results.json``'s ``time_left``, see
    the module docstring), of the runs ``asked`` (arm, seed) when given; None when no run has finished."""
    paces: dict[str, list[float]] = {}
    for name, arm in results["arms"].items():
        for v in arm["seeds"].values():
            if v["status"] == "done" and v.get("build") != "other" and v.get("train_seconds"):
                paces.setdefault(name, []).append(float(v["train_seconds"]) + float(v.get("score_seconds") or 0.0))
    finished = [x for xs in paces.values() for x in xs]
    if not finished:
        return None
    overall = sum(finished) / len(finished)
    runs, estimated, seconds = 0, 0, 0.0
    for name, arm in results["arms"].items():
        pace = sum(paces[name]) / len(paces[name]) if name in paces else overall
        for seed, v in arm["seeds"].items():
            if v["status"] == "done" or (asked is not None and (name, int(seed)) not in asked):
                continue
            step = v.get("step") or 0
            seconds += pace * max(0.0, 1.0 - step / results["budget"])
            runs += 1
            estimated += name not in paces
    lanes = max(1, int(lanes))
    return {
        "runs": runs,
        "lane_seconds": seconds,
        "estimated_runs": estimated,
        "paced_by": len(finished),
        "lanes": lanes,
        "wall_seconds": seconds / min(lanes, runs) if runs else 0.0,
    }


def time_left_text(t: dict[str, Any] | None) -> str:
    """One line for results.md and the command line: the runs left and their estimated time."""
    if t is None:
        return "Time left: no run has finished yet, so no pace to estimate it from."
    if t["runs"] == 0:
        return "Time left: none, every run is done."
    guess = (
        f"; {t['estimated_runs']} of them of arms with no finished run, paced by the mean of the others"
        if t["estimated_runs"]
        else ""
    )
    return (
        f"Time left: {t['runs']} run(s), about {t['lane_seconds'] / 3600:.1f} lane-hours at the pace of the "
        f"{t['paced_by']} finished here{guess}: about {_duration(t['wall_seconds'])} on {t['lanes']} lane(s) "
        "(stages still to build not counted)."
    )


# ------------------------------------------------------------------------------------- markdown
def _decimals(v: float) -> int:
    """Two decimals, or three significant digits for a small figure (a KID of 0.031, not 0.03)."""
    if v == 0 or not math.isfinite(v) or abs(v) >= 0.1:
        return 2
    return min(8, 2 - math.floor(math.log10(abs(v))))


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.{_decimals(v)}f}"


def _pm(s: dict[str, Any] | None) -> str:
    if s is None:
        return ""
    d = _decimals(s["mean"])
    return f"{s['mean']:.{d}f} ± {s['half_range']:.{d}f}"


def converged_cell(
    arm: dict[str, Any], tolerance: float, columns: Sequence[dict[str, str]] = (), budget: int | None = None
) -> str:
    """``yes``, ``no (s1: Δ 0.83)``, ``n/a`` (one validation) or empty (no seed done); then the
    scored figures checked at the checkpoint before the last (``previous: true``): those that moved
    by more than the tolerance, ``scored figures: yes`` when none did."""
    done = {k: v for k, v in arm["seeds"].items() if trained(v, budget)}
    if not done:
        return ""
    bad = [f"s{k}: Δ {v['delta']:+.2f}" for k, v in done.items() if v["converged"] is False]
    if bad:
        text = "no (" + ", ".join(bad) + ")"
    elif all(v["converged"] is None for v in done.values()):
        text = "n/a"
    else:
        text = "yes" + ("" if len(done) == len(arm["seeds"]) else f" ({len(done)} of {len(arm['seeds'])} seeds)")
    labels = {c["id"]: c["label"] for c in columns}
    checked = [c for c in labels if any(c in v.get("plateau", {}) for v in done.values())]
    moved = []
    for c in checked:
        deltas = [
            f"s{k}: Δ {v['plateau'][c]['delta']:+.2f}"
            for k, v in done.items()
            if c in v.get("plateau", {}) and not v["plateau"][c]["converged"]
        ]
        if deltas:
            moved.append(f"{labels[c]} no ({', '.join(deltas)})")
    if moved:
        text += "; " + "; ".join(moved)
    elif checked:
        text += "; scored figures: yes"
    return text


def markdown(results: dict[str, Any]) -> str:
    """``results.md``: the arms' table, its legend, and the stages' wall times."""
    r = results
    seeds = ", ".join(str(s) for s in r["seeds"])
    cols = r["columns"]
    head = [
        "arm",
        f"{r['metric']} at step {r['budget']}: mean ± half-range (per seed)",
        *[c["label"] for c in cols],
        "converged",
    ]
    lines = [f"# Ablation: {r['name']}", ""]
    if r["description"]:
        lines += [r["description"], ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, arm in r["arms"].items():
        cells = [_pm(arm["summary"].get(c["id"])) for c in cols]
        lines.append(
            "| "
            + " | ".join([name, _metric_cell(r, arm), *cells, converged_cell(arm, r["tolerance"], cols, r["budget"])])
            + " |"
        )
    lines += _rebuilt_note(r)
    lines += [
        "",
        f"Spec `{r['spec']}`; budget {r['budget']} steps; seeds {seeds}; validation every {r['val_every']} steps; "
        f"tolerance {r['tolerance']:g} ({r['metric']}: converged = the last two validations of every seed differ by "
        f"at most that). Figures: each seed's value at step {r['budget']}, mean ± half of the range over the seeds; "
        f"scorer columns likewise. Command: `{r['command']}`. Updated {r['updated']}.",
    ]
    if r.get("asked"):
        lines[-1] += (
            f" This command asked for {r['asked']['runs']} of the spec's {r['asked']['of']} runs (--only / --seeds): "
            "the table, the claims and the time left cover those."
        )
    if r.get("claims"):
        lines += _claims_table(r)
    lines += ["", time_left_text(r.get("time_left"))]
    if r["stages"]:
        lines += _stages_table(r["stages"])
    return "\n".join(lines) + "\n"


def _metric_cell(r: dict[str, Any], arm: dict[str, Any]) -> str:
    """An arm's metric cell: mean ± half-range and each seed's value, or why there is none, then
    the seeds that failed."""
    s = arm["summary"]["metric"]
    values = ", ".join(
        f"s{k} {_num(v['metric'])}" + ("†" if v.get("build") == "other" else "")
        for k, v in arm["seeds"].items()
        if v["metric"] is not None
    )
    if s is None and values:
        first = f"({values}) [no seed of the current builds]"
    elif s is not None:
        first = f"{_pm(s)} ({values})" + _seeds_missing(r, arm)
    else:
        first = {
            "not run": "not run yet",
            "failed": "failed (see the logs)",
            "done": f"no {r['metric']!r} at step {r['budget']} in metrics.jsonl",
        }.get(arm["status"], "running or stopped")
        steps = [f"s{k}: step {v['step']}" for k, v in arm["seeds"].items() if v["step"] is not None]
        if steps and arm["status"] != "not run":
            first += " (" + ", ".join(steps) + ")"
    failed = [f"s{k}" for k, v in arm["seeds"].items() if v["status"] == "failed"]
    if failed and arm["status"] != "failed":
        first += f" [failed: {', '.join(failed)} (see {'its' if len(failed) == 1 else 'their'} logs)]"
    return first


def _seeds_missing(r: dict[str, Any], arm: dict[str, Any]) -> str:
    """What follows an arm's mean: how many of its seeds are done, and those with a scorer still to run."""
    text = ""
    n_done = sum(1 for v in arm["seeds"].values() if trained(v, r["budget"]) and v.get("build") != "other")
    if n_done < len(arm["seeds"]):
        text += f" [{n_done} of {len(arm['seeds'])} seeds done]"
    unscored = [f"s{k}" for k, v in arm["seeds"].items() if v["status"] == "partial" and trained(v, r["budget"])]
    if unscored:
        text += f" [{', '.join(unscored)}: a scorer still to run]"
    return text


def _rebuilt_note(r: dict[str, Any]) -> list[str]:
    """The dagger's note under the arms' table (the stages rebuilt since some run started), or no lines."""
    rebuilt = sorted(
        {
            st
            for arm in r["arms"].values()
            for v in arm["seeds"].values()
            if v.get("build") == "other"
            for st in v.get("rebuilt_stages", [])
        }
    )
    if not rebuilt:
        return []
    return [
        "",
        f"† started from another build of stage(s) {', '.join(rebuilt)} than the cache holds now (rebuilt since; "
        "a rebuild need not give the same bytes): listed, left out of the means and spreads. Remove such a run's "
        "folder and run the same command to train it again from the current build.",
    ]


def _claims_table(r: dict[str, Any]) -> list[str]:
    """The claims' table and its legend."""
    lines = [
        "",
        "| claim | arm against | figure | difference per seed | mean ± half-range | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for c in r["claims"]:
        per = ", ".join(f"s{k} {d:+.{_decimals(d)}f}" for k, d in c["differences"].items()) or "-"
        side = c["arm"] + (" against " + c["against"] if c["against"] != c["arm"] else "")
        label = c["label"] + ("" if c["higher"] else "; lower is better")
        mean = c["summary"]
        pm = (
            ""
            if mean is None
            else f"{mean['mean']:+.{_decimals(mean['mean'])}f} ± {mean['half_range']:.{_decimals(mean['mean'])}f}"
        )
        lines.append(f"| {c['name']} | {side} | {label} | {per} | {pm} | {claim_cell(c, len(r['seeds']))} |")
    return lines + [
        "",
        "Claims: the arm's figure minus the other side's, seed by seed over the seeds where both runs are done; "
        "holds = ahead in every seed paired (two or more), reversed = behind in every one, mixed otherwise; a "
        "larger figure is better unless the row says otherwise.",
    ]


def _stages_table(stages: dict[str, Any]) -> list[str]:
    """The stages' table: command, folder, wall time and their own figures."""
    lines = ["", "| stage | command | folder | wall | its own figures |", "|---|---|---|---|---|"]
    for name, st in stages.items():
        wall = "not built" if st["wall_seconds"] is None else _duration(st["wall_seconds"])
        q = st.get("quality") or {}
        figs = ", ".join(f"{k} {_num(v)}" if isinstance(v, float) else f"{k} {v}" for k, v in q.items()) or "-"
        lines.append(f"| {name} | {st['command']} | `{st['folder']}` | {wall} | {figs} |")
    return lines


#: Figures of a ``train`` stage's last validation record shown in the stage table.
STAGE_FIGURES = (
    "miou",
    "geometry_iou",
    "rayiou",
    "ssc_miou",
    "completion_iou",
    "vae_psnr",
    "diffusion_loss",
    "depth_abs_rel",
    "depth_abs_m",
)
#: Figures of a ``retrieval`` stage (a baseline row: ``occkit retrieval --lifted``) in the stage table.
RETRIEVAL_FIGURES = ("map_all", "map_seen_all", "map_heldout_all", "map_visible")
#: What an ``eval-gen`` stage shows of its scores (FID and KID in the judge's features, the judge's
#: mIoU on the samples against their layouts).
EVAL_GEN_FIGURES = ("fid", "kid", "layout_miou")


def stage_quality(command: str, out: Path) -> dict[str, Any]:
    """A stage's own figures, read from what its command wrote: a ``train`` stage's last validation
    (step and :data:`STAGE_FIGURES` of ``metrics.jsonl``), a ``priors train`` run's steps and final
    losses, a ``retrieval`` stage's mAPs, an ``eval-gen`` stage's FID, KID and layout mIoU; empty for other
    commands or before anything was written."""
    from occkit.engine.logging import read_jsonl

    try:
        if command == "train" and (out / "metrics.jsonl").is_file():
            records = read_jsonl(out / "metrics.jsonl")
            last = records[-1] if records else {}
            figs = {k: float(last[k]) for k in STAGE_FIGURES if isinstance(last.get(k), (int, float))}
            if "depth_abs_rel" in figs:  # a run that learns no classes: its class mIoU means nothing
                figs.pop("miou", None)
            return {"step": last.get("step"), **figs} if last else {}
        if command == "retrieval" and (out / "score_retrieval.json").is_file():
            r = read_json(out / "score_retrieval.json")
            return {k: float(r[k]) for k in RETRIEVAL_FIGURES if isinstance(r.get(k), (int, float))}
        if command == "eval-gen" and (out / "score_eval_gen.json").is_file():
            r = read_json(out / "score_eval_gen.json")
            return {k: float(r[k]) for k in EVAL_GEN_FIGURES if isinstance(r.get(k), (int, float))}
        if command == "priors train" and (out / "config.json").is_file():
            train = read_json(out / "config.json").get("train", {})
            losses = train.get("final_losses") or {}
            return {
                "steps": train.get("steps"),
                **{f"loss_{k}": float(v) for k, v in losses.items() if isinstance(v, (int, float))},
            }
    except (OSError, ValueError):
        return {}
    return {}


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


# ------------------------------------------------------------------------------------- curves
def curves_image(results: dict[str, Any], width: int = 960, height: int = 560) -> np.ndarray:
    """``(H, W, 3) uint8``: the metric against the step, one colour per arm, one marker and dash
    pattern per seed, with axes, ticks, labels and a legend (occkit.viz.curves draws it)."""
    from occkit.viz.curves import curves_image as draw_curves

    r = results
    title = (
        f"{r['name']}: {r['metric']} on validation (budget {r['budget']} steps, seeds "
        f"{', '.join(str(s) for s in r['seeds'])})"
    )
    arms = {name: {seed: s["curve"] for seed, s in arm["seeds"].items()} for name, arm in r["arms"].items()}
    return draw_curves(title, r["metric"], r["budget"], arms, r["seeds"], width=width, height=height)


# ------------------------------------------------------------------------------------- writing
def write_outputs(results: dict[str, Any], out: str | Path) -> None:
    """``results.json``, ``results.md`` and ``curves.png`` in ``out``, each written atomically."""
    from occkit.outputs import record_output_file
    from occkit.viz.draw import save_png

    out = Path(out)
    check_report_files(out)  # a file of the user's put there while the ablation ran is never replaced
    record_output_file(write_json_atomic(out / "results.json", results), "ablate")
    record_output_file(write_text_atomic(out / "results.md", markdown(results)), "ablate")
    record_output_file(save_png(out / "curves.png", curves_image(results)), "ablate")


REPORT_FILES = ("results.json", "results.md", "curves.png")


def check_report_files(out: str | Path) -> None:
    """Refuse an ``--out`` holding a ``results.json``, ``results.md`` or ``curves.png`` that occkit
    ablate did not write (or that was changed since): the report never replaces a file of the user's.
    A folder of an older occkit (its report files unrecorded) is recognised by its ``results.json``."""
    from occkit.outputs import FILES_RECORD, check_output_file

    out = Path(out)
    legacy = not (out / FILES_RECORD).exists() and _legacy_results(out / "results.json")
    for name in REPORT_FILES:
        if legacy and (out / name).is_file():
            continue
        check_output_file(out / name, command="ablate")


def _legacy_results(path: Path) -> bool:
    try:
        r = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(r, dict) and {"arms", "metric", "budget"} <= set(r)


def write_report(ab: Ablation) -> dict[str, Any]:
    """Collect the results from disk and write the three files; returns the results."""
    results = collect(ab)
    write_outputs(results, ab.out)
    return results
