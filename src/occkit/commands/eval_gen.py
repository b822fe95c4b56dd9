"""``occkit eval-gen --gen DIR --real ROOT --judge RUN``: FID and KID of generated images against a
real split in the feature space of the judge's image backbone (an occkit-trained network, not
Inception: comparable between occkit runs only), and layout consistency: the judge's mIoU on the
generated images against the occupancy written with them (:mod:`occkit.generation.evaluate`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from occkit.commands.checks import positive_int
from occkit.commands.options import add_data, add_device, add_out, add_split


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gen", required=True, help="generated dataset (occkit generate --out)")
    add_data(p, "real dataset root", type=str, flag="--real")
    p.add_argument(
        "--judge",
        required=True,
        help="run trained on real frames whose method has an OccNet at .model "
        "(occscene with train_generator false, or supervised)",
    )
    add_split(p, "real split")
    p.add_argument("--batch-size", type=positive_int, default=4, help="frames per forward pass")
    add_device(p)
    add_out(p, "write the scores as JSON here", type=str, required=False)


def run(args: argparse.Namespace) -> int:

    from occkit.experiment import build_dataset, load_checkpoint_method
    from occkit.fileio import read_json
    from occkit.generation.evaluate import evaluate_generation
    from occkit.outputs import check_output_file, write_json_output

    if args.batch_size < 1:
        raise ValueError(f"--batch-size: expected an integer >= 1, got {args.batch_size}")
    if args.out:
        check_output_file(args.out, {"--gen": args.gen, "--real": args.real}, command="eval-gen")
    gen_record = Path(args.gen) / "generation.json"
    if not gen_record.is_file():
        raise FileNotFoundError(f"--gen {args.gen}: no generation.json: not a dataset occkit generate wrote")
    judge, cfg, folder, device = load_checkpoint_method(args.judge, args.device)
    generator = read_json(gen_record).get("checkpoint")
    self_judged = bool(generator) and Path(generator).resolve().parent == folder.resolve().parent
    if self_judged:  # allowed (a smoke test), never silently: the scores say so too
        import warnings

        warnings.warn(
            f"--judge {args.judge}: the run that generated {args.gen}; a generator judging itself flatters its "
            "layout consistency: give a run trained on real frames",
            stacklevel=1,
        )
    if getattr(getattr(judge, "model", None), "cfg", None) is None:
        raise ValueError(
            f"--judge {folder}: a {cfg.method!r} run without an occupancy network at .model; the judge must be "
            "an occscene run with train_generator false, or a supervised run"
        )
    gen_cams, judge_cams = _cameras_of(Path(args.gen)), list(cfg.data.cameras)
    if gen_cams is not None and not set(judge_cams) <= set(gen_cams):  # the judge's fault, not the generation's file
        raise ValueError(
            f"--judge {folder}: sees {len(judge_cams)} camera(s) ({', '.join(judge_cams)}), but --gen {args.gen} "
            f"was generated with {len(gen_cams)} ({', '.join(gen_cams)}): give a judge trained on the generation's "
            "cameras (its data.cameras)"
        )
    scores = evaluate_generation(
        judge,
        lambda root, split: build_dataset(cfg, root, split, train=False),
        args.gen,
        args.real,
        args.split,
        device,
        args.batch_size,
    )
    scores.update(
        {
            "gen": str(args.gen),
            "real": str(args.real),
            "split": args.split,
            "judge": str(folder),
            "judge_is_generator": self_judged,
        }
    )
    if args.out:
        write_json_output(args.out, scores, "eval-gen")
    print(json.dumps(scores, indent=1))
    floor = scores.get("floor")
    if floor is not None:  # what the figures are read against, said beside them
        print(
            f"occkit eval-gen: FID {scores['fid']:.3f} / KID {scores['kid']:.2e} of {scores['n_gen']} generated "
            f"frames; the floor, {floor['n']} real frames of the {floor['split']} split against the same real frames: "
            f"FID {floor['fid']:.3f} / KID {floor['kid']:.2e} (a set's FID near its floor says nothing: with few "
            "frames FID is mostly estimation error; KID is unbiased)"
        )
    else:
        print(
            "occkit eval-gen: no floor (no other real split than --split with as many frames): read FID with care at "
            "this size"
        )
    return 0


def _cameras_of(root: Path) -> list[str] | None:
    """The cameras of a generated dataset (its first frame's in ``annotations.json``), or None."""
    from occkit.fileio import read_json

    try:
        infos = read_json(root / "annotations.json")["scene_infos"]
        frame = next(iter(next(iter(infos.values())).values()))
        return list(frame["camera_sensor"])
    except (OSError, ValueError, KeyError, TypeError, StopIteration, AttributeError):
        return None
