"""``occkit synth``: generate a procedural world as a dataset of a format that writes it
(``--format``: Occ3D-nuScenes by default, SemanticKITTI, and the others' ``write_synthetic``): the
driving world, or (``--world indoor``) the indoor world, rooms in the formats of indoor scenes
(``nyu``, MonoScene's NYUv2 layout, by default)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from occkit.commands.checks import bounded_float, nonneg_int, positive_float, positive_int, seed_int, unit_float
from occkit.commands.options import keywords_of


def synthetic_format(name: str | None, world: str | None = None) -> Any:
    """The format ``--format`` names (None: the default format, occ3d, for the driving world; the
    first format of ``world``'s scenes that writes it otherwise); one that does not write the
    synthetic world, or writes another ``world`` than the one asked for, is a one-line error listing
    those that do. (The registry is read here, not when the parser is built: the formats import
    torch.)"""
    from occkit.formats import default_format, formats, get_format

    writers = [n for n, f in formats().items() if f.writers.write_synthetic is not None]
    if name is None:
        default = default_format().name
        kind = world or "driving"
        of_world = [n for n in writers if formats()[n].world == kind]
        if not of_world:
            raise ValueError(f"--world {kind}: no dataset format writes it")
        name = default if default in of_world else of_world[0]
    fmt = get_format(name)
    if fmt.writers.write_synthetic is None:
        raise ValueError(
            f"--format {fmt.name}: does not write the synthetic world (formats that do: {', '.join(writers)})"
        )
    if world is not None and fmt.world != world:
        same = [n for n in writers if formats()[n].world == world]
        raise ValueError(
            f"--format {fmt.name}: writes the {fmt.world} world, not the {world} one (formats of the {world} world: "
            f"{', '.join(same) or 'none'})"
        )
    return fmt


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--world",
        choices=("driving", "indoor"),
        default=None,
        help="driving (streets) or indoor (rooms at NYUv2's 640x480, written in MonoScene's NYUv2 layout by "
        "default: NYUtrain/, NYUtest/; --scenes rooms x --frames views; --image-size, --frame-rate and "
        "--image-format do not apply) (default: the --format's world, else driving)",
    )
    p.add_argument("--scenes", type=positive_int, default=2, help="number of scenes (default 2)")
    p.add_argument("--frames", type=positive_int, default=3, help="frames per scene (default 3)")
    p.add_argument("--seed", type=seed_int, default=0, help="master seed (default 0)")
    p.add_argument(
        "--image-size",
        type=positive_int,
        nargs=2,
        metavar=("H", "W"),
        default=(256, 704),
        help="camera image size (default 256 704)",
    )
    p.add_argument("--workers", type=positive_int, default=1, help="worker processes (default 1)")
    p.add_argument("--val-fraction", type=unit_float, default=0.2, help="fraction of validation scenes (default 0.2)")
    p.add_argument(
        "--frame-rate", type=positive_float, default=2.0, help="frames per second (default 2, nuScenes keyframes)"
    )
    p.add_argument("--image-format", choices=("jpg", "png"), default="jpg", help="image files (default jpg)")
    p.add_argument(
        "--format",
        default=None,
        metavar="NAME",
        help="dataset layout: a dataset format that writes the synthetic world, with the world it writes "
        "({synth_formats}) (default: occ3d; with --world indoor, nyu)",
    )
    g = p.add_argument_group(
        "LiDAR sweeps (occkit label's input; the driving world)",
        "with --sweeps K the dataset also holds a rig folder DATA/rig (docs/labels.md): K sweeps between keyframes "
        "with their ego poses and the objects' boxes (track ids kept), and each scene's true sweep poses in "
        "extras/<scene>/sweeps.json; the noise options make the recording imperfect",
    )
    g.add_argument(
        "--sweeps", type=nonneg_int, default=0, help="LiDAR sweeps between two keyframes (default 0: no rig)"
    )
    g.add_argument(
        "--beams", type=positive_int, default=None, help="LiDAR beams of the sweeps (default: the world's 32)"
    )
    g.add_argument("--sweep-labels", action="store_true", help="label every sweep's points (default: keyframes only)")
    for flag, (hi, unit, what) in SWEEP_NOISE.items():
        g.add_argument(flag, type=bounded_float(hi, unit), default=0.0, help=f"{what}, {unit} (0 to {hi:g})")
    g.add_argument("--label-flips", type=unit_float, default=0.0, help="fraction of point labels flipped at random")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a dataset that occkit synth wrote earlier in --out "
        "(a folder of anything else is never written into)",
    )


#: The noise options of ``--sweeps``: their largest value (beyond any recording's errors: a pose error of
#: 1e9 m was written, then refused by occkit label as corrupt), unit and meaning.
SWEEP_NOISE: dict[str, tuple[float, str, str]] = {
    "--pose-noise": (10.0, "metres", "each sweep's ego pose error (std)"),
    "--pose-drift": (10.0, "metres per second", "ego pose drift"),
    "--box-center-noise": (10.0, "metres", "box centre error (std)"),
    "--box-size-noise": (1.0, "relative", "box size error (std)"),
    "--box-yaw-noise": (180.0, "degrees", "box yaw error (std)"),
}
#: Options that make sense with ``--sweeps`` only, by dest: refused without it rather than dropped.
SWEEP_ONLY = ("beams", "sweep_labels", *(f.lstrip("-").replace("-", "_") for f in SWEEP_NOISE), "label_flips")


def _refuse_sweep_options_without_sweeps(args: argparse.Namespace) -> None:
    """``--pose-noise`` and the other options of the rig, given without ``--sweeps K``: a usage error."""
    if getattr(args, "sweeps", 0):
        return
    given = [d for d in SWEEP_ONLY if getattr(args, d, None) not in (None, 0, 0.0, False)]
    if given:
        flags = ", ".join("--" + d.replace("_", "-") for d in given)
        raise ValueError(f"{flags}: LiDAR sweep options, which need --sweeps K (no rig is written without it)")


def _made_by_synth(out: Path) -> bool:
    """Whether ``out`` holds a dataset occkit synth wrote before output records existed."""
    ann = out / "annotations.json"
    if ann.is_file():
        try:
            return "synth_config" in json.loads(ann.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
    return (out / "splits.json").is_file() and (out / "sequences").is_dir()


def run(args: argparse.Namespace) -> int:
    world = getattr(args, "world", None)
    try:
        fmt = synthetic_format(args.format, world)
    except ValueError as e:
        if world is None or args.format is None:
            raise
        print(f"occkit synth: {e}", file=sys.stderr)  # a usage error: the two options disagree
        return 2
    args.format = fmt.name
    _refuse_sweep_options_without_sweeps(args)
    if getattr(args, "sweeps", 0) and fmt.world != "driving":
        raise ValueError(f"--sweeps: the {fmt.world} world has no LiDAR sweeps (the driving world has)")
    config = _config(args, fmt.world)
    if fmt.world == "driving" and fmt.writers.synthetic_classes is not None:  # the world's labels in the format's ids
        from dataclasses import replace

        config = replace(config, classes=fmt.synthetic_lut())
    from occkit.locks import output_lock
    from occkit.output_folders import check_output_folder
    from occkit.outputs import check_own_files, check_writable_place

    check_output_folder(args.out, "synth", overwrite=args.overwrite, legacy=_made_by_synth)
    check_writable_place(args.out)
    lock = output_lock(args.out, "synth")  # a second synth into --out now is refused, naming this one
    try:
        # checked again under the lock: an occkit synth that finished meanwhile is not replaced unasked
        if check_output_folder(args.out, "synth", overwrite=args.overwrite, legacy=_made_by_synth) == "own":
            check_own_files(args.out, "synth")  # --overwrite removes only what synth wrote: refused before any work
        return _generate(args, config, fmt)
    finally:
        lock.release()


def _config(args: argparse.Namespace, world: str) -> Any:
    """The options of the procedural world ``world`` from the command line."""
    both = keywords_of(args, "scenes", "frames", "seed", "workers", "val_fraction")
    if world == "indoor":
        from occkit.worlds.indoor import IndoorConfig

        return IndoorConfig(**both)
    from occkit.worlds.driving import SynthConfig

    return SynthConfig(
        **both, image_size=tuple(args.image_size), frame_rate_hz=args.frame_rate, image_format=args.image_format
    )


def _generate(args: argparse.Namespace, config, fmt) -> int:
    from occkit.outputs import resumable_folder
    from occkit.worlds.driving.writer import SCENE_RECORDS, config_record

    t0 = time.perf_counter()
    # written into a hidden folder beside --out (.NAME.partial) and renamed at the end: a failure
    # leaves no folder that looks like a dataset, an --overwrite replaces the old one only then, and
    # a stop keeps the finished scenes, which the same command again does not generate twice
    key = {"format": args.format, "synth_config": config_record(config), **_sweep_key(args)}
    scenes, frames = ("rooms", "views") if fmt.world == "indoor" else ("scenes", "frames")
    part = None
    try:
        with resumable_folder(args.out, "synth", key, format=args.format) as (part, resumed):
            if resumed:
                print(f"synth: continuing the stopped run kept in {part}", flush=True)
            if getattr(args, "sweeps", 0):
                _write_rig(part, config, args)
            fmt.writers.write_synthetic(part, config)  # the format writes the world in its layout
    except KeyboardInterrupt:
        n = (
            len(list((part / SCENE_RECORDS).glob("*.json")))
            if part is not None and (part / SCENE_RECORDS).is_dir()
            else 0
        )
        from occkit.commands.checks import typed_command

        print(
            f"occkit synth: stopped; {n} of {config.scenes} {scenes} kept in {part}; the same command resumes them: "
            f"{typed_command()}",
            file=sys.stderr,
            flush=True,
        )
        return 130
    out = args.out
    dt = time.perf_counter() - t0
    n = config.scenes * config.frames
    print(
        f"synth: wrote {config.scenes} {scenes} x {config.frames} {frames} to {out} in {dt:.1f} s "
        f"({n / dt:.2f} frames/s)"
    )
    return 0


def _noise(args: argparse.Namespace) -> Any:
    from occkit.worlds.driving.sweeps import SweepNoise

    return SweepNoise(
        pose_sigma=args.pose_noise,
        drift=args.pose_drift,
        box_center=args.box_center_noise,
        box_size=args.box_size_noise,
        box_yaw=args.box_yaw_noise,
        label_flips=args.label_flips,
        seed=args.seed,
    )


def _sweep_key(args: argparse.Namespace) -> dict[str, Any]:
    """What decides the rig (for the resume key); nothing without --sweeps (earlier keys unchanged)."""
    if not getattr(args, "sweeps", 0):
        return {}
    from dataclasses import asdict

    return {
        "sweeps": args.sweeps,
        "beams": args.beams,
        "sweep_labels": args.sweep_labels,
        "noise": asdict(_noise(args)),
    }


def _write_rig(part: Path, config: Any, args: argparse.Namespace) -> None:
    from occkit.worlds.driving.sweeps import write_rig

    if getattr(config, "classes", None) is not None:
        raise ValueError(f"--sweeps with --format {args.format}: the rig is written in the world's own classes only")
    write_rig(part, config, args.sweeps, _noise(args), args.beams, args.sweep_labels, progress=True)
