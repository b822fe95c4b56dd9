"""The scorers run on each arm's run once its training reaches the budget: one small table.

Each scorer turns options from the spec's ``scoring:`` list into occkit commands that write JSON
files in the run folder, and names the keys of those files the results table reports. An arm x
seed is finished when every scorer's files exist; a scorer whose files all exist is not rerun.
Adding a scorer is one entry in :data:`SCORERS`.

Every entry of ``scoring:`` also takes ``data`` (the dataset scored; default the arm's ``data``,
e.g. the real world where an arm trains on pseudo-labels) and ``arms`` (the arms it applies to;
default all). The learning curve (the spec's ``metric`` in ``RUN/metrics.jsonl``) is always read.

``occ3d`` and ``ssc`` also take ``previous: true``: the checkpoint before the last (the previous
validation's) is scored the same way into ``score_..._prev.json``, and the report flags a scored
figure that moved by more than the spec's ``tolerance`` between the two, as it flags the metric's
curve. That is the plateau check of a figure the training validation does not compute (a region,
a mask, another dataset).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: An option with no default: the spec must give it.
REQUIRED = object()


@dataclass(frozen=True)
class ScoreContext:
    """What a scorer's commands need: one run, where and how to score it."""

    run: Path
    """The arm x seed run folder (its newest checkpoint is scored)."""
    data: str
    """The dataset scored (resolved path)."""
    device: str
    """``cpu`` / ``cuda`` (the runner's ``--device``)."""
    threads: int
    """Torch threads per process (the runner's ``--threads``)."""
    options: dict[str, Any]
    """The scoring entry's options (defaults filled, stage references resolved)."""
    previous_step: int | None = None
    """The step of the checkpoint before the newest once the run has trained (the spec's budget less its
    validation interval), named by a plan printed before the run has checkpoints (``--dry-run``)."""


@dataclass(frozen=True)
class Scorer:
    """How to run one kind of scoring and what to report of it."""

    name: str
    help: str
    options: dict[str, Any]
    """Its own options -> default (:data:`REQUIRED` when the spec must give it)."""
    outputs: Callable[[dict[str, Any]], list[str]]
    """Options -> the JSON file names it writes in the run folder."""
    commands: Callable[[ScoreContext, list[str]], list[list[str]]]
    """``(context, missing outputs)`` -> occkit argv lists (after ``occkit``), run in order."""
    figures: tuple[tuple[str, str], ...]
    """``(key in its JSON, column label)`` reported in the table (keys absent from a file are skipped)."""
    temporary: Callable[[ScoreContext], list[Path]] = lambda ctx: []
    """Folders removed once its files are written (unless ``keep: true``)."""
    check: Callable[[dict[str, Any]], None] = lambda opts: None
    """Raises ``ValueError`` naming a bad option value."""


# ----------------------------------------------------------------------------------- mIoU scorers (occ3d, ssc)
MASKS = ("camera", "lidar", "both", "none")


#: Suffix of the files scored from the checkpoint before the last (``previous: true``).
PREVIOUS = "_prev"


def _masked_names(o: dict[str, Any], previous: bool = False) -> list[str]:
    suffix = ("_frustum" if o["frustum"] else "") + (PREVIOUS if previous else "")
    return [f"score_occ3d_{m}{suffix}.json" for m in o["masks"]]


def _masked_outputs(o: dict[str, Any]) -> list[str]:
    return _masked_names(o) + (_masked_names(o, previous=True) if o["previous"] else [])


def _ssc_outputs(o: dict[str, Any]) -> list[str]:
    return ["score_ssc.json"] + ([f"score_ssc{PREVIOUS}.json"] if o["previous"] else [])


def _previous_check(o: dict[str, Any]) -> None:
    if not isinstance(o["previous"], bool):
        raise ValueError(f"previous: expected true or false, got {o['previous']!r}")


def _masked_check(o: dict[str, Any]) -> None:
    masks = o["masks"]
    if not isinstance(masks, list) or not masks or any(m not in MASKS for m in masks):
        raise ValueError(f"masks: expected a non-empty list of {', '.join(MASKS)}, got {masks!r}")
    metrics = o["metrics"]
    if not isinstance(metrics, list) or not metrics or any(m not in ("miou", "rayiou") for m in metrics):
        raise ValueError(f"metrics: expected a list of miou, rayiou, got {metrics!r}")
    if not isinstance(o["frustum"], bool):
        raise ValueError(f"frustum: expected true or false, got {o['frustum']!r}")
    if o["frustum"] and "rayiou" in metrics:
        raise ValueError("frustum: true scores mIoU only (RayIoU is scored along LiDAR rays); give metrics: [miou]")
    _previous_check(o)


def previous_checkpoint(run: Path, planned_step: int | None = None) -> Path:
    """The run's checkpoint before its newest (the previous validation's, with ``ckpt_every`` =
    ``val_every`` as the runner sets them). Before the run has two: the one it will write at
    ``planned_step`` (what a ``--dry-run`` plan prints), else a path that does not exist, so that
    ``occkit predict`` fails with an error naming it."""
    from occkit.engine.checkpoint import checkpoint_name, list_checkpoints

    ckpts = list_checkpoints(run)
    if len(ckpts) >= 2:
        return ckpts[-2]
    if planned_step is not None and planned_step > 0 and not ckpts:
        return run / "checkpoints" / checkpoint_name(planned_step)
    return run / "checkpoints" / "no-checkpoint-before-the-last"


def _predict(ctx: ScoreContext, kind: str, previous: bool) -> tuple[Path, list[str]]:
    """The prediction folder ``RUN/pred_<kind>[PREVIOUS]`` and the ``occkit predict`` argv that
    writes it (from the checkpoint before the newest when ``previous``)."""
    pred = ctx.run / (f"pred_{kind}" + (PREVIOUS if previous else ""))
    return pred, [
        "predict",
        "--ckpt",
        str(previous_checkpoint(ctx.run, ctx.previous_step) if previous else ctx.run),
        "--data",
        ctx.data,
        "--out",
        str(pred),
        "--split",
        ctx.options["split"],
        "--device",
        ctx.device,
        "--overwrite",
        "--no-progress",
    ]


def _eval(ctx: ScoreContext, pred: Path, name: str, *options: str) -> list[str]:
    """The ``occkit eval`` argv scoring ``pred`` (with ``options``) into ``RUN/name``; the data's
    format (detected by ``occkit eval``) scores it."""
    return [
        "eval",
        "--gt",
        ctx.data,
        "--pred",
        str(pred),
        "--split",
        ctx.options["split"],
        *options,
        "--json",
        str(ctx.run / name),
        "--threads",
        str(ctx.threads),
        "--no-progress",
    ]


def _masked_commands(ctx: ScoreContext, missing: list[str]) -> list[list[str]]:
    out = []
    for previous in (False, True) if ctx.options["previous"] else (False,):
        todo = [(m, n) for m, n in zip(ctx.options["masks"], _masked_names(ctx.options, previous)) if n in missing]
        if not todo:
            continue
        pred, predict = _predict(ctx, "occ3d", previous)
        out.append(predict)
        metrics = ",".join(ctx.options["metrics"])
        for m, name in todo:
            out.append(
                _eval(ctx, pred, name, "--mask", m, "--metrics", metrics)
                + (["--frustum", str(ctx.run)] if ctx.options["frustum"] else [])
            )
    return out


def _ssc_commands(ctx: ScoreContext, missing: list[str]) -> list[list[str]]:
    out = []
    for name in _ssc_outputs(ctx.options):
        if name not in missing:
            continue
        previous = name.endswith(f"{PREVIOUS}.json")
        pred, predict = _predict(ctx, "ssc", previous)
        out += [predict, _eval(ctx, pred, name)]
    return out


# ----------------------------------------------------------------------------------- retrieval
def _scored_run(ctx: ScoreContext, command: str, *options: str) -> list[str]:
    """The argv of ``occkit COMMAND`` scoring the run's newest checkpoint on ``split`` (at most
    ``max_frames`` frames) into ``RUN/score_COMMAND.json``, with ``options``."""
    o = ctx.options
    return [
        command,
        "--ckpt",
        str(ctx.run),
        "--data",
        ctx.data,
        "--split",
        o["split"],
        *options,
        "--max-frames",
        str(o["max_frames"]),
        "--device",
        ctx.device,
        "--out",
        str(ctx.run / f"score_{command}.json"),
    ]


def _retrieval_commands(ctx: ScoreContext, missing: list[str]) -> list[list[str]]:
    queries = ctx.options["queries"]
    options = ["--protocol", ctx.options["protocol"]] + ([] if queries is None else ["--queries", str(queries)])
    return [_scored_run(ctx, "retrieval", *options)]


def _retrieval_check(o: dict[str, Any]) -> None:
    if o["protocol"] not in ("voxels", "points"):
        raise ValueError(f"protocol: expected voxels or points, got {o['protocol']!r}")


# ----------------------------------------------------------------------------------- geometry
def _geometry_commands(ctx: ScoreContext, missing: list[str]) -> list[list[str]]:
    return [_scored_run(ctx, "geometry", "--mask", ctx.options["mask"])]


def _geometry_check(o: dict[str, Any]) -> None:
    if o["mask"] not in ("camera", "lidar", "none"):
        raise ValueError(f"mask: expected camera, lidar or none, got {o['mask']!r}")
    if not isinstance(o["max_frames"], int) or isinstance(o["max_frames"], bool) or o["max_frames"] < 0:
        raise ValueError(f"max_frames: expected an integer >= 0 (0 = all), got {o['max_frames']!r}")


# ----------------------------------------------------------------------------------- eval_gen
def _eval_gen_commands(ctx: ScoreContext, missing: list[str]) -> list[list[str]]:
    from occkit.ablate.cliargs import mapping_argv, verb_parsers

    o = ctx.options
    gen = _eval_gen_folder(ctx)
    if gen.exists():  # occkit generate wants a new folder (a stopped one resumes from its hidden work folder)
        shutil.rmtree(gen)
    generate = [
        "generate",
        "--ckpt",
        str(ctx.run),
        "--data",
        ctx.data,
        "--out",
        str(gen),
        "--device",
        ctx.device,
        "--no-progress",
        *mapping_argv(verb_parsers("generate")[1], o["generate"]),
    ]
    judge = [
        "eval-gen",
        "--gen",
        str(gen),
        "--real",
        ctx.data,
        "--judge",
        str(o["judge"]),
        "--split",
        o["split"],
        "--device",
        ctx.device,
        "--out",
        str(ctx.run / _eval_gen_outputs(o)[0]),
    ]
    return [generate, judge]


def _eval_gen_outputs(o: dict[str, Any]) -> list[str]:
    return [f"score_eval_gen_{o['name']}.json" if o["name"] else "score_eval_gen.json"]


def _eval_gen_folder(ctx: ScoreContext) -> Path:
    """Where the entry's samples are written: ``RUN/gen`` or, for a named entry, ``RUN/gen_NAME``."""
    return ctx.run / (f"gen_{ctx.options['name']}" if ctx.options["name"] else "gen")


def _eval_gen_check(o: dict[str, Any]) -> None:
    import re

    from occkit.ablate.cliargs import mapping_argv, parse_check, verb_parsers

    if o["name"] is not None and not (isinstance(o["name"], str) and re.fullmatch(r"[a-z0-9][a-z0-9_]*", o["name"])):
        raise ValueError(f"name: expected a short lower-case name (letters, digits, _), got {o['name']!r}")

    if not isinstance(o["generate"], dict):
        raise ValueError(f"generate: expected a mapping of occkit generate options, got {o['generate']!r}")
    for k in ("ckpt", "data", "out", "device"):
        if k in o["generate"]:
            raise ValueError(f"generate.{k}: set by the runner")
    words = mapping_argv(verb_parsers("generate")[1], o["generate"])
    try:
        parse_check("generate", ["--ckpt", "RUN", "--data", "DATA", "--out", "GEN", *words])
    except ValueError as e:
        raise ValueError(f"generate: {e}") from None


#: name -> scorer. ``occkit ablate --help`` and the spec checks read this table.
SCORERS: dict[str, Scorer] = {
    s.name: s
    for s in (
        Scorer(
            name="occ3d",
            help="occkit predict on the split, then occkit eval --mask M --json per mask (Occ3D mIoU, geometry IoU, "
            "RayIoU); frustum: true scores only inside the view frusta of the cameras the run sees (eval "
            "--frustum RUN; score_occ3d_M_frustum.json), for a model given fewer cameras than the dataset has; "
            "previous: true also scores the checkpoint before the last (score_..._prev.json: whether the scored "
            "figure is at its plateau)",
            options={
                "masks": ["camera"],
                "metrics": ["miou"],
                "split": "val",
                "keep_predictions": False,
                "frustum": False,
                "previous": False,
            },
            outputs=_masked_outputs,
            commands=_masked_commands,
            figures=(("miou", "mIoU"), ("geometry_iou", "IoU"), ("rayiou", "RayIoU")),
            temporary=lambda ctx: [ctx.run / "pred_occ3d", ctx.run / f"pred_occ3d{PREVIOUS}"],
            check=_masked_check,
        ),
        Scorer(
            name="ssc",
            help="occkit predict, then occkit eval (SemanticKITTI SSC mIoU, completion IoU); previous: true as occ3d's",
            options={"split": "val", "keep_predictions": False, "previous": False},
            outputs=_ssc_outputs,
            commands=_ssc_commands,
            figures=(("ssc_miou", "SSC mIoU"), ("completion_iou", "completion IoU")),
            temporary=lambda ctx: [ctx.run / "pred_ssc", ctx.run / f"pred_ssc{PREVIOUS}"],
            check=_previous_check,
        ),
        Scorer(
            name="retrieval",
            help="occkit retrieval --ckpt RUN (open-vocabulary mAP: all, seen, held-out names)",
            options={"split": "val", "protocol": "voxels", "max_frames": 0, "queries": None},
            outputs=lambda o: ["score_retrieval.json"],
            commands=_retrieval_commands,
            figures=(("map_all", "mAP"), ("map_seen_all", "mAP seen"), ("map_heldout_all", "mAP held-out")),
            check=_retrieval_check,
        ),
        Scorer(
            name="geometry",
            help="occkit geometry --ckpt RUN (p(occupied) ranked against the truth before any threshold: geometry AP, "
            "the IoU at the best threshold, chosen by the truth, and at the run's own), for runs that cut a "
            "p(occupied) field at a threshold (langocc, render_sup)",
            options={"split": "val", "mask": "camera", "max_frames": 0},
            outputs=lambda o: ["score_geometry.json"],
            commands=_geometry_commands,
            figures=(("geometry_ap", "geometry AP"), ("geometry_iou_best", "IoU at the best threshold")),
            check=_geometry_check,
        ),
        Scorer(
            name="eval_gen",
            help="occkit generate (options in generate:) then occkit eval-gen --judge JUDGE (FID, KID, layout mIoU); "
            "name: N writes score_eval_gen_N.json and samples into gen_N/, so that one run is sampled several ways",
            options={"judge": REQUIRED, "generate": {}, "split": "val", "keep_predictions": False, "name": None},
            outputs=_eval_gen_outputs,
            commands=_eval_gen_commands,
            figures=(("fid", "FID"), ("kid", "KID"), ("layout_miou", "layout mIoU")),
            temporary=lambda ctx: [_eval_gen_folder(ctx)],
            check=_eval_gen_check,
        ),
    )
}

#: Keys every ``scoring:`` entry takes besides its scorer's own options.
COMMON_KEYS = ("scorer", "data", "arms")

#: Options holding a path (a stage reference, or a path relative to the spec file).
PATH_OPTIONS = ("data", "judge", "queries")


def output_label(scorer: str, output: str) -> str:
    """A short column suffix for one output file: ``score_occ3d_camera.json`` -> ``occ3d camera``."""
    stem = output.removesuffix(".json").removeprefix("score_")
    return stem.replace(f"{scorer}_", f"{scorer} ", 1) if stem != scorer else scorer


def score_columns(scoring: Any) -> list[dict[str, str]]:
    """The figures a spec's ``scoring:`` entries write, in their order: ``[{"id", "label", "file",
    "key"}, ...]`` with ``id`` = ``FILE_STEM.KEY`` (``score_occ3d_camera.json``'s mIoU is
    ``occ3d_camera.miou``). The results table's columns and the names a claim's figure takes."""
    out = []
    for sc in scoring:
        scorer = SCORERS[sc.scorer]
        for f in scorer.outputs(sc.options):
            if f.endswith(f"{PREVIOUS}.json"):  # the checkpoint before the last: read beside its column
                continue
            for key, label in scorer.figures:
                if sc.scorer == "occ3d" and key == "rayiou" and "rayiou" not in sc.options["metrics"]:
                    continue
                out.append(
                    {
                        "id": f"{f.removesuffix('.json').removeprefix('score_')}.{key}",
                        "label": f"{label} ({output_label(sc.scorer, f)})",
                        "file": f,
                        "key": key,
                    }
                )
    return out
