"""``occkit label --data D --out L``: occupancy labels from LiDAR sweeps, poses and boxes
(:mod:`occkit.labelgen`; docs/labels.md).

``D`` is a recording of any kind a reader of :mod:`occkit.data.recordings` takes (a rig folder
``rig.json`` or a dataset that holds one at ``D/rig``, as ``occkit synth --sweeps K`` writes it; the
other readers: ``occkit label --help``). ``L`` is written in Occ3D's layout (``gts/<scene>/<token>/labels.npz``
with ``semantics``, ``mask_lidar``, ``mask_camera``, and ``annotations.json``), so it reads as an
``occ3d`` dataset. Scenes are finished one at a time and kept: a stopped run resumes with the
scenes it lacks. ``--quality`` scores the labels against a synthetic world's exact occupancy.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from occkit.commands.checks import nonneg_int, positive_int

#: ``--preset``: the option sets of the anchors (docs/labels.md, "The anchors").
PRESETS: dict[str, dict[str, Any]] = {
    "occkit": {},
    # Occ3D as published: aggregate the scene (static in the world, objects in their boxes), kNN
    # labels, ray-cast masks; no mesh, no ground fill, no trail erasing
    "occ3d-published": {"ground_fill": 0, "erase_trails": False, "knn": 1, "relabel_k": 0},
    # one keyframe's own sweep, voxelised: no aggregation at all
    "naive": {"keyframe_only": True, "ground_fill": 0, "erase_trails": False, "knn": 1, "relabel_k": 0},
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    from occkit.data.recordings.registry import reader_options, readers

    p.add_argument(
        "--data",
        type=Path,
        required=True,
        help="the recording: a rig folder (rig.json: sweeps, poses, boxes, sensors; docs/labels.md), a dataset "
        "holding one at DATA/rig (occkit synth --sweeps K writes it), or any recording a reader below takes",
    )
    p.add_argument(
        "--reader",
        choices=tuple(readers()),
        default=None,
        help="which reader opens --data (default: the one that recognises it): "
        + "; ".join(f"{r.name}: {r.description}" for r in readers().values()),
    )
    p.add_argument("--out", type=Path, required=True, help="output folder: labels in Occ3D's layout, report.json")
    p.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        default="occkit",
        help="occkit (default); occ3d-published (Occ3D as published: aggregation, kNN labels, ray-cast masks, no "
        "fill, no trail erasing); naive (each keyframe's own sweep voxelised)",
    )
    p.add_argument(
        "--window",
        type=nonneg_int,
        default=None,
        help="keyframes on each side whose sweeps build a keyframe's static scene (default 0: the whole scene)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a pipeline option (occkit.labelgen.pipeline.LabelOptions: box_margin, knn, ground_fill, flow, ...)",
    )
    p.add_argument("--scenes", default=None, help="comma-separated scene names (default: every scene of the rig)")
    p.add_argument(
        "--quality",
        action="store_true",
        help="score the labels against the synthetic world's exact occupancy (DATA must be a world written by "
        "occkit synth --sweeps): quality.json and quality.md in --out",
    )
    p.add_argument("--workers", type=positive_int, default=1, help="scenes labelled in parallel processes")
    p.add_argument(
        "--launcher",
        choices=("local", "ray"),
        default="local",
        help="local processes, or Ray tasks over scenes (a cluster's RAY_ADDRESS; --out on a shared file system)",
    )
    groups: dict[str, Any] = {}
    for reader, opt in reader_options():
        g = groups.get(reader.name)
        if g is None:
            g = groups[reader.name] = p.add_argument_group(f"reader {reader.name}", reader.description)
        g.add_argument(
            opt.flag, type=opt.type, default=opt.default, metavar=opt.metavar, choices=opt.choices, help=opt.help
        )


def _options(args: argparse.Namespace, classes: tuple[str, ...] | None = None):
    """The pipeline's options: the preset's, then ``--set KEY=VALUE`` typed through the config system as
    ``occkit train --set`` is (values read as YAML, each checked against its field's type: ``erase_trails=False``
    is false, ``ground_classes=[terrain]`` a tuple, ``carve_rel=abc`` refused naming the key), then
    ``--window``. ``classes``: the output's class names, which ``ground_classes`` given here must be among."""
    from occkit.config import ConfigError, from_dict, merge, parse_overrides, to_dict
    from occkit.labelgen.pipeline import LabelOptions

    keys = LabelOptions.keys()
    try:
        over = parse_overrides(list(args.set))
    except ConfigError as e:
        raise ConfigError(f"--set {e}") from None
    unknown = [k for k in over if k not in keys]
    if unknown:
        raise ConfigError(f"--set {', '.join(unknown)}: not a label option (one of {', '.join(keys)})")
    values = merge(merge(to_dict(LabelOptions()), PRESETS[args.preset]), over)
    if args.window is not None:
        values["window"] = args.window
    try:
        opt = from_dict(LabelOptions, values)
    except ConfigError as e:
        hint = " (a list is written in brackets: KEY=[a, b])" if "expected a list" in str(e) else ""
        raise ConfigError(f"--set {e}{hint}") from None
    if "ground_classes" in over and classes is not None:
        missing = [n for n in opt.ground_classes if n not in classes]
        if missing:
            names = ", ".join(map(repr, missing))
            raise ConfigError(f"--set ground_classes: {names} not in the output's classes ({', '.join(classes)})")
    return opt


def _output_classes(fmt: str) -> tuple[str, ...]:
    """The class names of the label format ``fmt`` writes (its free class left out): what ``ground_classes`` names."""
    from occkit.formats import get_format

    table = get_format(fmt).classes
    return tuple(table.names[: table.free])


def reader_values(args: argparse.Namespace) -> dict[str, Any]:
    """Every reader option's value (by dest) and the scenes asked for, as JSON values: what the
    reader opens the recording with here, and a worker process or a Ray task again."""
    from occkit.data.recordings.registry import reader_options

    out: dict[str, Any] = {"scenes": args.scenes}
    for _, opt in reader_options():
        v = getattr(args, opt.dest, None)
        out[opt.dest] = str(v) if isinstance(v, Path) else v
    return out


def _open_recording(args: argparse.Namespace):
    """The recording ``--data`` holds, opened by ``--reader`` or the reader that recognises it."""
    from occkit.data.recordings.registry import open_recording

    return open_recording(args.data, args.reader, reader_values(args))


def run(args: argparse.Namespace) -> int:
    from contextlib import ExitStack

    with ExitStack() as held:
        return _run(args, held)


def _run(args: argparse.Namespace, held: Any) -> int:
    from occkit.fileio import write_json_atomic, write_text_atomic
    from occkit.formats import default_format
    from occkit.labelgen.run import score_run, summarise
    from occkit.locks import locked_output
    from occkit.output_folders import check_output_folder
    from occkit.outputs import check_writable_place, resumable_folder

    fmt = default_format().name  # the layout occkit label writes (Occ3D's: its classes, grid and masks)
    opt = _options(args, _output_classes(fmt))
    rec = _open_recording(args)  # the recording's tables checked before any folder is made
    scenes = _scenes(args, rec)
    if args.quality:
        _check_truth(args.data, scenes)
    inputs = {"--data": args.data}
    check_output_folder(args.out, "label", inputs=inputs)
    check_writable_place(args.out)
    held.enter_context(locked_output(args.out, "label"))
    check_output_folder(args.out, "label", inputs=inputs)
    source = {"reader": rec.reader, "path": str(Path(rec.source).resolve()), "options": rec.options}
    key = {"recording": source, "options": {k: getattr(opt, k) for k in opt.keys()}, "scenes": scenes}
    key = json.loads(json.dumps(key))
    t0 = time.perf_counter()
    with resumable_folder(args.out, "label", key, source=str(args.data)) as (part, resumed):
        done = _label_scenes(args, part, rec, scenes, opt, fmt)
        splits = rec.splits
        train = [s for s in splits.get("train_split", scenes) if s in done] or [s for s in scenes if s in done]
        val = [s for s in splits.get("val_split", []) if s in done]
        ann = {
            "train_split": train,
            "val_split": val,
            "scene_infos": {s: done[s]["infos"] for s in scenes},
            "label_config": {"preset": args.preset, **key["options"], "recording": source},
        }
        write_json_atomic(part / "annotations.json", ann)
        for name, folder in rec.image_links.items():
            if rec.images and Path(folder).is_dir() and not (part / name).exists():
                os.symlink(Path(folder).resolve(), part / name)
        reports = [done[s]["report"] for s in scenes]
        summary = summarise(reports)
        if args.quality:
            quality = score_run(args.data, part, scenes, done, opt, fmt)
            write_json_atomic(part / "quality.json", quality)
            write_text_atomic(part / "quality.md", _quality_md(quality, args))
            summary["quality"] = quality
        write_json_atomic(part / "report.json", {"summary": summary, "scenes": reports})
    _print_summary(args, summary, len(scenes), time.perf_counter() - t0)
    return 0


def _scenes(args: argparse.Namespace, rec: Any) -> list[str]:
    """The scenes to label (``--scenes``, or every scene of the recording), each one's tables checked."""
    from occkit.labelgen.run import _safe

    scenes = rec.scenes
    if args.scenes:
        wanted = [s.strip() for s in args.scenes.split(",") if s.strip()]
        unknown = [s for s in wanted if s not in scenes]
        if unknown:
            raise ValueError(f"--scenes: {unknown} are not scenes of {rec.source} ({scenes[:5]} ...)")
        scenes = wanted
    for s in scenes:
        _safe(s, "scene")
        rec.read_scene(s, load_points=False)  # every scene's tables checked before any work
    return scenes


def _check_truth(data: Path, scenes: list[str]) -> None:
    """Refuse ``--quality`` on a dataset that holds no exact occupancy of some of the scenes."""
    from occkit.labelgen.truth import WorldTruth

    truth = WorldTruth(data)
    lacking = [s for s in scenes if not truth.has(s)]
    if lacking:
        raise ValueError(
            f"--quality: {data} holds no truth for scenes {lacking[:3]} (extras/<scene>/sweeps.json): "
            "only a synthetic world written by occkit synth --sweeps K can be scored"
        )


def _labelled_scenes(part: Path, scenes: list[str]) -> dict[str, dict[str, Any]]:
    """The records of the scenes a stopped run finished: those whose label files are all there."""
    from occkit.fileio import read_json
    from occkit.labelgen.run import STATE

    done: dict[str, dict[str, Any]] = {}
    for s in scenes:
        f = part / STATE / "scenes" / f"{s}.json"
        if f.is_file():
            rec = read_json(f)
            if all((part / info["gt_path"]).is_file() for info in rec["infos"].values()):
                done[s] = rec
    return done


def _label_scenes(
    args: argparse.Namespace, part: Path, rec: Any, scenes: list[str], opt: Any, fmt: str
) -> dict[str, dict[str, Any]]:
    """Label the scenes a stopped run did not finish, saying each one's figures; the records of all."""
    from occkit.labelgen.run import launch

    done = _labelled_scenes(part, scenes)
    if done:
        print(f"label: resuming: {len(done)} of {len(scenes)} scenes already labelled", flush=True)
    recording = {"reader": rec.reader, "source": str(rec.source), "options": rec.options}
    todo = [
        {"part": str(part), "recording": recording, "scene": s, "options": opt, "images": rec.images, "format": fmt}
        for s in scenes
        if s not in done
    ]
    print(
        f"label: {len(todo)} scene(s) from {rec.describe or rec.source} with {args.workers} worker(s) "
        f"({args.launcher}), preset {args.preset}",
        flush=True,
    )
    for r in launch(todo, args.workers, args.launcher):
        done[r["scene"]] = r
        rep = r["report"]
        print(
            f"label: {r['scene']}: {rep['keyframes']} keyframes from {rep['sweeps']} sweeps, "
            f"{rep['seconds_per_keyframe']:.1f} s a keyframe, peak {rep['peak_traced_mb']:.0f} MB traced"
            + "".join(f"; {m}" for m in rep["missing"]),
            flush=True,
        )
    return done


def _print_summary(args: argparse.Namespace, summary: dict[str, Any], n_scenes: int, dt: float) -> None:
    """Say what the run wrote, and with ``--quality`` how its labels score."""
    print(
        f"label: {summary['keyframes']} keyframes of {n_scenes} scenes written to {args.out} in {dt:.1f} s "
        f"({summary['seconds_per_keyframe']:.2f} s a keyframe of work; report.json)",
        flush=True,
    )
    if args.quality:
        q = summary["quality"]
        print(
            f"label: quality: occupied IoU {q['occupied_iou_observable']:.2f} inside the observable region "
            f"({q['occupied_iou_overall']:.2f} overall), semantic mIoU {q['semantic_miou_camera_mask']:.2f}, "
            f"RayIoU {q.get('rayiou', float('nan')):.2f}, false-free {q['false_free_rate']:.2f} %, "
            f"{q['trail_voxels_per_keyframe']:.1f} trail voxels a keyframe (quality.md)",
            flush=True,
        )


def _quality_md(q: dict[str, Any], args: argparse.Namespace) -> str:
    rows = "\n".join(f"| {k} | {v} |" for k, v in q.items())
    return (
        f"# Label quality against the exact occupancy\n\n`occkit label --data {args.data} --preset {args.preset}"
        f"{''.join(' --set ' + s for s in args.set)} --quality` ({q['keyframes']} keyframes; percent; definitions in "
        f"docs/labels.md)\n\n| figure | value |\n|---|---|\n{rows}\n"
    )
