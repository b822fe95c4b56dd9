"""``occkit label --data D --out L``: occupancy labels from LiDAR sweeps, poses and boxes
(:mod:`occkit.labelgen`; docs/labels.md).

``D`` is a recording of any kind a reader of :mod:`occkit.data.recordings` takes (a rig folder
``rig.json`` or a dataset that holds one at ``D/rig``, as ``occkit synth --sweeps K`` writes it; the
other readers: ``occkit label --help``). ``L`` is written by the label writer of the format ``--to`` names
(default Occ3D's: ``gts/<scene>/<token>/labels.npz`` with ``semantics``, ``mask_lidar``, ``mask_camera``, and
``annotations.json``) on its grid and in its classes (``--class-map``, ``--grid``; docs/labels.md, "Classes,
grid and output format"), so it reads as a dataset of that format. Scenes are finished one at a time and
kept: a stopped run resumes with the scenes it lacks. ``--quality`` scores the labels against a synthetic
world's exact occupancy.
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
    "occ3d-published": {"ground_fill": 0, "erase_trails": False, "knn": 1, "relabel_k": 0, "object_fill": False},
    # one keyframe's own sweep, voxelised: no aggregation at all
    "naive": {
        "keyframe_only": True,
        "ground_fill": 0,
        "erase_trails": False,
        "knn": 1,
        "relabel_k": 0,
        "object_fill": False,
    },
}


#: The prefix of the reader options' names in the parsed arguments (apart from the command's own and the CLI's).
READER_DEST = "reader_option__"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from occkit.data.recordings.registry import readers

    i = p.add_argument_group("input")
    i.add_argument(
        "--data",
        type=Path,
        required=True,
        help="the recording: a rig folder (rig.json: sweeps, poses, boxes, sensors; docs/labels.md), a dataset "
        "holding one at DATA/rig (occkit synth --sweeps K writes it), or any recording a reader below takes",
    )
    i.add_argument(
        "--reader",
        choices=tuple(readers()),
        default=None,
        help="which reader opens --data (default: the one that recognises it; each reader's options are listed "
        "under it below)",
    )
    i.add_argument("--scenes", default=None, help="comma-separated scene names (default: every scene of the recording)")
    o = p.add_argument_group("output")
    o.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder: labels in --to's layout (Occ3D's by default), report.json",
    )
    o.add_argument(
        "--write-rig",
        type=Path,
        default=None,
        metavar="RIG",
        help="write the recording --data as a rig folder (docs/labels.md) and stop, no labels (instead of --out)",
    )
    add_output_arguments(p, o)
    o.add_argument(
        "--val-scenes",
        default=None,
        metavar="A,B",
        help="comma-separated scenes written to the val split, every other scene to train (default: the splits the "
        'recording gives, rig.json\'s "splits"; without any, every scene is in train)',
    )
    o.add_argument(
        "--overwrite",
        action="store_true",
        help="replace labels occkit label wrote earlier in --out (only its own files: a folder holding anything "
        "else is never written into)",
    )
    lab = p.add_argument_group("labelling")
    lab.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        default="occkit",
        help="occkit (default); occ3d-published (Occ3D as published: aggregation, kNN labels, ray-cast masks, no "
        "fill, no trail erasing); naive (each keyframe's own sweep voxelised)",
    )
    lab.add_argument(
        "--window",
        type=nonneg_int,
        default=None,
        help="keyframes on each side whose sweeps build a keyframe's static scene (default 0: the whole scene)",
    )
    lab.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a label setting (occkit.labelgen.pipeline.LabelOptions: box_margin, knn, ground_fill, flow, ...; the "
        "imperfect-recording options' settings as refine_poses.KEY, refine_boxes.KEY, find_moving.KEY, "
        'densify.KEY; docs/labels.md, "What each option does")',
    )
    imp = p.add_argument_group("imperfect recordings", "each off by default; its settings: --set OPTION.KEY=VALUE")
    imp.add_argument(
        "--refine-poses",
        action="store_true",
        help="refine the recorded poses by LiDAR registration (KISS-ICP odometry fused with the recorded poses in a "
        "pose graph; each sweep's correction in report.json; needs kiss-icp: pip install 'occkit[refine]')",
    )
    imp.add_argument(
        "--refine-boxes",
        action="store_true",
        help="smooth every track's boxes along time before labelling (constant-velocity and turn-rate model, "
        "Rauch-Tung-Striebel smoother; the corrections in report.json); needs boxes",
    )
    imp.add_argument(
        "--find-moving",
        action="store_true",
        help="find moving returns from the sweeps themselves (returns other sweeps' rays pass through), with or "
        "without boxes: kept out of the static scene, each sweep's clusters boxed as its objects (report.json)",
    )
    imp.add_argument(
        "--densify",
        choices=("none", "tsdf"),
        default=None,
        help="tsdf: non-ground surfaces between the LiDAR's rings filled by a TSDF along the rays and marching "
        "cubes; none (default): only the ground fill",
    )
    q = p.add_argument_group("quality")
    q.add_argument(
        "--quality",
        action="store_true",
        help="score the labels along each keyframe's LiDAR rays against the measured ranges (no truth needed), "
        "and against the exact occupancy where DATA is a world occkit synth --sweeps wrote: quality.json and "
        "quality.md in --out (docs/labels.md)",
    )
    r = p.add_argument_group("running")
    r.add_argument("--workers", type=positive_int, default=1, help="scenes labelled in parallel processes")
    r.add_argument(
        "--launcher",
        choices=("local", "ray"),
        default="local",
        help="local processes, or Ray tasks over scenes (a cluster's RAY_ADDRESS; --out on a shared file system)",
    )
    add_reader_arguments(p)


def add_reader_arguments(p: argparse.ArgumentParser) -> None:
    """Each reader's options as its own group, built from its options dataclass: every option of a reader
    listed under it (an option several readers take is one flag, listed under each)."""
    from occkit.data.recordings.registry import readers
    from occkit.data.recordings.spec import flag_of

    made: dict[str, argparse.Action] = {}
    for reader in readers().values():
        own = reader.Options.__dict__.get("__annotations__", {})
        fields = sorted(reader.Options.fields(), key=lambda f: f.name not in own)  # its own options first
        g = p.add_argument_group(
            f"reader {reader.name}", reader.description + ("" if fields else " (no options of its own)")
        )
        for f in fields:
            flag = flag_of(f.name)
            if flag in made:  # shown under this reader too: argparse lists a group's actions as it holds them
                g._group_actions.append(made[flag])
                continue
            m = f.metadata
            made[flag] = g.add_argument(
                flag,
                dest=READER_DEST + f.name,
                type=m.get("type", str),
                default=argparse.SUPPRESS,  # absent unless given: an option given to another reader is refused
                metavar=m.get("metavar"),
                choices=m.get("choices"),
                help=m.get("help"),
            )


def add_output_arguments(p: argparse.ArgumentParser, group: Any = None) -> None:
    """``--to``, ``--class-map``, ``--grid``: the output's format, classes and grid (docs/labels.md,
    "Classes, grid and output format"), in ``group`` (default: the parser)."""
    from occkit import help_registries

    help_registries.use(p)
    p = group if group is not None else p
    p.add_argument(
        "--to",
        default=None,
        metavar="FORMAT",
        help="the output format, on its own grid and frame, written by its own label writer: {writable_formats} "
        "(default: occkit's default format)",
    )
    p.add_argument(
        "--class-map",
        default=None,
        metavar="FILE",
        help="a class map (occkit convert's YAML) from the recording's classes (from: rig) to the output "
        "format's (to: FORMAT); every recording class mapped or dropped. Default: the recording's class names "
        "must all be names of the output's classes (any order)",
    )
    p.add_argument(
        "--grid",
        default=None,
        metavar="GRID",
        help="another grid in Occ3D's layout: VOXEL (metres, Occ3D's range: --grid 0.2) or "
        "'VOXEL XMIN YMIN ZMIN XMAX YMAX ZMAX' (metres, ego frame); stated in annotations.json",
    )


def plan_output(args: argparse.Namespace, rec: Any, opt: Any) -> Any:
    """The output (:class:`occkit.labelgen.output.LabelTarget`) of ``--to``, ``--class-map`` and ``--grid`` for
    the recording's classes, checked before anything is written; a note when the label options' ground
    classes (``opt``) name no class of the output (no ground fill then)."""
    from occkit.labelgen.output import plan_target

    target = plan_target(args.to, args.class_map, args.grid, tuple(rec.classes))
    if opt.ground_fill > 0 and not set(opt.ground_classes) & set(target.classes):
        print(
            f"label: note: no ground fill: none of ground_classes ({', '.join(opt.ground_classes)}) is a class of "
            f"{target.format}; name its ground classes with --set ground_classes=[...]",
            flush=True,
        )
    return target


#: The settings a flag of ``occkit label`` gives, which ``--set`` does not (one spelling a setting).
FLAGGED = {
    "window": "--window N",
    "refine_poses.enabled": "--refine-poses",
    "refine_boxes.enabled": "--refine-boxes",
    "find_moving.enabled": "--find-moving",
    "densify.method": "--densify tsdf",
}


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def _options(args: argparse.Namespace, classes: tuple[str, ...] | None = None):
    """The pipeline's options: the preset's, then ``--set KEY=VALUE`` typed through the config system as
    ``occkit train --set`` is (values read as YAML, each checked against its field's type: ``erase_trails=False``
    is false, ``ground_classes=[terrain]`` a tuple, ``carve_rel=abc`` refused naming the key; the imperfect-recording
    options' settings nested, ``refine_poses.max_disagreement=2``), then the flags (``--window``,
    ``--refine-poses``, ...; a setting a flag gives is refused in ``--set`` naming the flag). ``classes``: the
    output's class names, which ``ground_classes`` given here must be among."""
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
    flat = _flat(over)
    for key, flag in FLAGGED.items():
        if key in flat:
            raise ConfigError(f"--set {key}: given by the flag {flag} (one spelling a setting)")
    groups = [k for k in ("refine_poses", "refine_boxes", "find_moving", "densify") if k in over]
    groups = [k for k in groups if not isinstance(over[k], dict)]
    if groups:
        k = groups[0]
        raise ConfigError(
            f"--set {k}={over[k]!r}: {k} is a group of settings (--set {k}.KEY=VALUE); it is turned on by "
            f"{FLAGGED[k + ('.method' if k == 'densify' else '.enabled')].split()[0]}"
        )
    values = merge(merge(to_dict(LabelOptions()), PRESETS[args.preset]), over)
    if args.window is not None:
        values["window"] = args.window
    if getattr(args, "densify", None) is not None:
        values["densify"]["method"] = args.densify
    for flag in ("refine_poses", "refine_boxes", "find_moving"):
        if getattr(args, flag, False):
            values[flag]["enabled"] = True
    try:
        opt = from_dict(LabelOptions, values)
    except (ConfigError, TypeError) as e:
        hint = " (a list is written in brackets: KEY=[a, b])" if "expected a list" in str(e) else ""
        raise ConfigError(f"--set {e}{hint}") from None
    if classes is not None:
        _check_ground_classes(args, opt, classes)
    return opt


def _check_ground_classes(args: argparse.Namespace, opt: Any, classes: tuple[str, ...]) -> None:
    """``--set ground_classes=[...]``: every name a class of the output (``classes``, the pipeline's: the output
    table's occupied classes); else a one-line refusal naming them."""
    from occkit.config import ConfigError

    if not any(item.split("=", 1)[0].strip() == "ground_classes" for item in args.set):
        return
    missing = [n for n in opt.ground_classes if n not in classes]
    if missing:
        names = ", ".join(map(repr, missing))
        raise ConfigError(f"--set ground_classes: {names} not in the output's classes ({', '.join(classes)})")


def reader_values(args: argparse.Namespace) -> dict[str, Any]:
    """The reader options given on the command line (by field name), as JSON values: what the reader
    opens the recording with (one it does not take is refused naming it)."""
    n = len(READER_DEST)
    return {
        k[n:]: (str(v) if isinstance(v, Path) else v)
        for k, v in sorted(vars(args).items())
        if k.startswith(READER_DEST)
    }


def _wanted(args: argparse.Namespace) -> list[str] | None:
    """The scenes ``--scenes`` names (None: every scene)."""
    if args.scenes is None:
        return None
    return [s.strip() for s in args.scenes.split(",") if s.strip()]


def _open_recording(args: argparse.Namespace):
    """The recording ``--data`` holds, opened by ``--reader`` or the reader that recognises it."""
    from occkit.data.recordings.registry import open_recording

    return open_recording(args.data, args.reader, reader_values(args), _wanted(args))


def run(args: argparse.Namespace) -> int:
    from contextlib import ExitStack

    with ExitStack() as held:
        return _run(args, held)


def _run(args: argparse.Namespace, held: Any) -> int:
    from occkit.config import to_dict
    from occkit.fileio import write_json_atomic, write_text_atomic
    from occkit.labelgen import report
    from occkit.labelgen.run import finish_output, quality_figures, summarise
    from occkit.locks import locked_output
    from occkit.output_folders import check_output_folder
    from occkit.outputs import check_own_files, check_writable_place, resumable_folder

    if args.write_rig is not None and args.out is not None:
        raise ValueError(
            "--write-rig and --out: give one (--write-rig writes the recording as a rig folder, no labels)"
        )
    opt = _options(args)
    rec = _open_recording(args)  # the recording's tables checked before any folder is made
    scenes = _scenes(args, rec, needs_boxes=opt.refine_boxes.enabled)
    if args.write_rig is not None:  # the recording as a rig folder, and no labels (docs/labels.md, "--write-rig")
        from occkit.commands.write_rig import write_rig

        return write_rig(args.write_rig, rec, scenes, inputs={"--data": args.data})
    if args.out is None:
        raise ValueError("--out: required, the labels' folder (or --write-rig RIG to write --data as a rig folder)")
    target = plan_output(args, rec, opt)  # the classes, grid and layout written, checked before any folder
    _check_ground_classes(args, opt, target.classes)
    truth_lacks = report.truth_lacks(args.data, scenes) if args.quality else None
    if truth_lacks:
        print(f"label: --quality: {truth_lacks}", flush=True)
    elif args.quality:
        from occkit.formats import get_format
        from occkit.labelgen.run import truth_classes

        truth_classes(get_format(target.format))  # the truth's classes in the output's, before any work
    split_of = _splits(args, rec, scenes)
    inputs = {"--data": args.data}
    check_output_folder(args.out, "label", inputs=inputs, overwrite=args.overwrite)
    check_writable_place(args.out)
    held.enter_context(locked_output(args.out, "label"))
    if check_output_folder(args.out, "label", inputs=inputs, overwrite=args.overwrite) == "own":
        check_own_files(args.out, "label")  # --overwrite replaces only what label wrote: refused before any work
    source = {"reader": rec.reader, "path": str(Path(rec.source).resolve()), "options": rec.option_values()}
    key = {"recording": source, "options": to_dict(opt), "scenes": scenes}
    key["content"] = rec.content_fingerprint(scenes)  # a recording changed since a stopped run is labelled anew
    key["output"] = target.record()
    key = json.loads(json.dumps(key))
    t0 = time.perf_counter()
    with resumable_folder(args.out, "label", key, source=str(args.data)) as (part, resumed):
        done = _label_scenes(args, part, rec, scenes, opt, target)
        train = [s for s in split_of["train"] if s in done]
        val = [s for s in split_of["val"] if s in done]
        config = {"preset": args.preset, **key["options"], "recording": source, "output": key["output"]}
        notes = finish_output(part, target, done, scenes, {"train": train, "val": val}, {"label_config": config})
        if (part / "annotations.json").is_file():  # the index's camera image paths resolve in the output
            for name, folder in rec.image_links.items():
                if rec.images and Path(folder).is_dir() and not (part / name).exists():
                    os.symlink(Path(folder).resolve(), part / name)
        reports = [done[s]["report"] for s in scenes]
        summary = summarise(reports)
        if args.quality:
            quality = quality_figures(args.data, rec, part, scenes, done, opt, target, truth_lacks is None)
            write_json_atomic(part / "quality.json", quality)
            write_text_atomic(part / "quality.md", report.quality_markdown(quality, _command_line(args)))
            summary["quality"] = quality
        write_json_atomic(part / "report.json", {"summary": summary, "scenes": reports})
    _print_summary(args, summary, len(scenes), time.perf_counter() - t0)
    print(f"label: {split_of['said']}", flush=True)
    _print_output(target, notes)
    return 0


def _splits(args: argparse.Namespace, rec: Any, scenes: list[str]) -> dict[str, Any]:
    """The labelled scenes' splits: ``--val-scenes`` (val, and every other scene train), else the
    recording's (rig.json's ``"splits"``: its train list as given, else every scene not in val), else
    every scene in train; ``said``: the line that tells where they come from (docs/labels.md)."""
    if args.val_scenes is not None:
        val = list(dict.fromkeys(s.strip() for s in args.val_scenes.split(",") if s.strip()))
        unknown = [s for s in val if s not in scenes]
        if unknown:
            raise ValueError(f"--val-scenes: {unknown} are not scenes labelled here ({scenes[:5]} ...)")
        train = [s for s in scenes if s not in val]
        return {"train": train, "val": val, "said": f"splits (--val-scenes): {len(train)} train, {len(val)} val"}
    given = rec.splits or {}
    if given.get("train_split") or given.get("val_split"):
        val = [s for s in given.get("val_split", []) if s in scenes]
        train = [s for s in given.get("train_split") or scenes if s in scenes and s not in val]
        rest = len(scenes) - len(train) - len(val)
        return {
            "train": train,
            "val": val,
            "said": f"splits (the recording's): {len(train)} train, {len(val)} val"
            + (f", {rest} in neither (in split all only)" if rest else ""),
        }
    return {
        "train": list(scenes),
        "val": [],
        "said": f"splits: every scene ({len(scenes)}) is in train, none in val: choose val with --val-scenes A,B "
        'or rig.json\'s "splits": {"train": [...], "val": [...]} (docs/labels.md)',
    }


def _scenes(args: argparse.Namespace, rec: Any, needs_boxes: bool = False) -> list[str]:
    """The scenes to label (``--scenes``, or every scene of the recording), each one's tables checked
    (``needs_boxes``: a scene without boxes refused, naming the option that needs them)."""
    from occkit.labelgen.run import safe_name

    scenes = rec.scenes
    if args.scenes is not None:
        wanted = [s.strip() for s in args.scenes.split(",") if s.strip()]
        if not wanted:  # "--scenes ," or "--scenes ''" used to label every scene
            raise ValueError(f"--scenes {args.scenes!r}: names no scene (give A,B, or leave --scenes out for all)")
        unknown = [s for s in wanted if s not in scenes]
        if unknown:
            raise ValueError(f"--scenes: {unknown} are not scenes of {rec.source} ({scenes[:5]} ...)")
        scenes = wanted
    twice = sorted({s for s in scenes if scenes.count(s) > 1})
    if twice:
        named = "--scenes" if args.scenes else str(rec.source)
        raise ValueError(f"{named}: scenes {twice} named more than once (each scene is labelled once)")
    n_boxes = 0
    for s in scenes:
        safe_name(s, "scene")
        tables = rec.read_scene(s, load_points=False)  # every scene's tables checked before any work
        if needs_boxes and not tables.has_boxes:
            raise ValueError(
                f"--refine-boxes: scene {s!r} of {rec.source} has no boxes to refine (--find-moving finds moving "
                "objects without boxes)"
            )
        n_boxes += sum(len(w.boxes) for w in tables.sweeps if w.boxes is not None)
    if needs_boxes and not n_boxes:  # a scene may hold no object; a recording whose boxes hold none has none
        which = f"scene {scenes[0]!r}" if len(scenes) == 1 else f"each of the {len(scenes)} scenes"
        raise ValueError(
            f"--refine-boxes: the boxes of {which} of {rec.source} are an empty list: no box to refine (leave "
            "--refine-boxes out; --find-moving finds moving objects without boxes)"
        )
    return scenes


def _label_scenes(
    args: argparse.Namespace, part: Path, rec: Any, scenes: list[str], opt: Any, target: Any
) -> dict[str, dict[str, Any]]:
    """Label the scenes a stopped run did not finish, saying each one's figures; the records of all."""
    from occkit.labelgen.resume import changed_since, finished_scenes
    from occkit.labelgen.run import launch

    done = finished_scenes(part, scenes)
    for s in changed_since(rec, done):  # what a finished scene read, hashed: an edit keeping sizes and times
        print(f"label: scene {s}: its recording reads otherwise than when it was labelled; labelled again", flush=True)
        del done[s]
    if done:
        print(f"label: resuming: {len(done)} of {len(scenes)} scenes already labelled", flush=True)
    recording = {"reader": rec.reader, "source": str(rec.source), "options": rec.option_values(), "scenes": scenes}
    todo = [
        {"part": str(part), "recording": recording, "scene": s, "options": opt, "images": rec.images, "target": target}
        for s in scenes
        if s not in done
    ]
    print(
        f"label: {len(todo)} scene(s) to label (of {rec.describe or rec.source}) with {args.workers} worker(s) "
        f"({args.launcher}), preset {args.preset}",
        flush=True,
    )
    try:
        for r in launch(todo, args.workers, args.launcher):
            done[r["scene"]] = r
            rep = r["report"]
            print(
                f"label: {r['scene']}: {rep['keyframes']} keyframes from {rep['sweeps']} sweeps, "
                f"{rep['seconds_per_keyframe']:.1f} s a keyframe, peak {rep['peak_traced_mb']:.0f} MB traced"
                + "".join(f"; {m}" for m in rep["missing"]),
                flush=True,
            )
            for w in rep.get("warnings", []):
                print(f"label: {r['scene']}: warning: {w}", flush=True)
    except BaseException:  # an error or a stop: say where the finished scenes wait (docs/labels.md, "Scale")
        if done:
            print(
                f"label: stopped after {len(done)} of {len(scenes)} scenes; the finished ones are kept in {part} "
                "(hidden, beside --out): run again on the recording unchanged, it labels only the others (a recording "
                "edited since is labelled anew)",
                flush=True,
            )
        raise
    return done


def _print_output(target: Any, notes: list[str]) -> None:
    """Say the output's format, grid and frame, and what its writer says the user must supply."""
    g = target.grid
    print(
        f"label: written as {target.format}: {'x'.join(map(str, g.shape))} voxels of {g.voxel_size[0]:g} m in the "
        f"{target.frame} frame" + "".join(f"; {n}" for n in notes if "camera images" not in n),
        flush=True,
    )


def _print_summary(args: argparse.Namespace, summary: dict[str, Any], n_scenes: int, dt: float) -> None:
    """Say what the run wrote, and with ``--quality`` how its labels score."""
    print(
        f"label: {summary['keyframes']} keyframes of {n_scenes} scenes written to {args.out} in {dt:.1f} s "
        f"({summary['seconds_per_keyframe']:.2f} s a keyframe of work; report.json)",
        flush=True,
    )
    if args.quality and "rays" in summary["quality"]:
        q = summary["quality"]
        r = q["rays"]
        if not r["stopped_percent"]:  # no return inside the grid, or none that stops: no figures to say
            print(f"label: quality along the LiDAR rays: no ray of {r['rays']} stops in the labels", flush=True)
        else:
            from occkit.labelgen.report import rays_line

            print(rays_line(q, r), flush=True)
    if args.quality and "occupied_iou_observable" in summary["quality"]:
        q = summary["quality"]
        print(
            f"label: quality: occupied IoU {q['occupied_iou_observable']:.2f} inside the observable region "
            f"({q['occupied_iou_overall']:.2f} overall), semantic mIoU {q['semantic_miou_camera_mask']:.2f}, "
            f"RayIoU {q.get('rayiou', float('nan')):.2f}, false-free {q['false_free_rate']:.2f} %, "
            f"{q['trail_voxels_per_keyframe']:.1f} trail voxels a keyframe (quality.md)",
            flush=True,
        )


def _command_line(args: argparse.Namespace) -> str:
    """The command that made the labels, as ``quality.md`` names it."""
    import shlex

    from occkit.data.recordings.spec import flag_of

    given = [
        (flag, getattr(args, attr, None))
        for flag, attr in (
            ("--reader", "reader"), ("--scenes", "scenes"), ("--window", "window"), ("--to", "to"),
            ("--class-map", "class_map"), ("--grid", "grid"), ("--densify", "densify"),
        )
    ]  # fmt: skip
    words = [f"{flag} {shlex.quote(str(v))}" for flag, v in given if v not in (None, "none")]
    words += [f for f, a in (("--refine-poses", "refine_poses"), ("--refine-boxes", "refine_boxes"),
                             ("--find-moving", "find_moving")) if getattr(args, a, False)]  # fmt: skip
    words += [f"{flag_of(k)} {shlex.quote(str(v))}" for k, v in sorted(reader_values(args).items())]
    words += ["--set " + shlex.quote(s) for s in args.set]
    return f"`occkit label --data {args.data} --preset {args.preset} {' '.join([*words, '--quality'])}`"
