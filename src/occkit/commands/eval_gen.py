"""``occkit eval-gen --gen DIR --real ROOT --judge RUN``: FID and KID of generated images against a
real split in the feature space of the judge's image backbone (an occkit-trained network, not
Inception: comparable between occkit runs only), and layout consistency: the judge's mIoU on the
generated images against the occupancy written with them (:mod:`occkit.generation.evaluate`).
"""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gen", required=True, help="generated dataset (occkit generate --out)")
    p.add_argument("--real", required=True, help="real dataset root")
    p.add_argument("--judge", required=True, help="run trained on real frames whose method has an OccNet at .model "
                                                 "(occscene with train_generator false, or supervised)")
    p.add_argument("--split", default="val", choices=("train", "val", "all"), help="real split (default val)")
    p.add_argument("--batch-size", type=int, default=4, help="frames per forward pass")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--out", default=None, help="write the scores as JSON here")


def run(args: argparse.Namespace) -> int:
    from occkit.experiment import build_dataset, load_checkpoint_method
    from occkit.fileio import write_json_atomic
    from occkit.generation.evaluate import evaluate_generation

    judge, cfg, folder, device = load_checkpoint_method(args.judge, args.device)
    scores = evaluate_generation(judge, lambda root, split: build_dataset(cfg, root, split, train=False), args.gen, args.real,
                                 args.split, device, args.batch_size)
    scores.update({"gen": str(args.gen), "real": str(args.real), "split": args.split, "judge": str(folder)})
    if args.out:
        write_json_atomic(args.out, scores)
    print(json.dumps(scores, indent=1))
    return 0
