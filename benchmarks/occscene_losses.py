"""Held-out losses of an occscene run's checkpoints, at fixed noise: did both losses fall?

For every checkpoint of RUN and every val frame, ``--draws`` fixed (t, noise) draws (the same
for every checkpoint): the diffusion loss, the perception loss on the decoded clean-image
estimate (unweighted, frames with t < occ_max_timestep) and on the real image. Prints a table
and writes JSON.

  python benchmarks/occscene_losses.py --run runs/occscene_smoke/run --data runs/abl_world
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="val")
    p.add_argument("--draws", type=int, default=4)
    p.add_argument("--frames", type=int, default=8, help="val frames, evenly spread (0 = all)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from occkit.data.sample import collate
    from occkit.engine.checkpoint import list_checkpoints
    from occkit.experiment import build_dataset, load_checkpoint_method

    rows = []
    for ckpt in list_checkpoints(args.run):
        method, cfg, folder, _ = load_checkpoint_method(ckpt, "cpu", ema=False)
        method.cfg = dataclasses.replace(
            method.cfg, occ_weight=1.0, real_occ_weight=1.0, occ_warmup_steps=0, text_dropout=0.0, occ_dropout=0.0
        )
        ds = build_dataset(cfg, args.data, args.split, train=False)
        n = len(ds) if args.frames <= 0 else min(args.frames, len(ds))
        idx = [(i * len(ds)) // n for i in range(n)]
        sums: dict[str, list[float]] = {}
        start = method.cfg.vae_steps + method.cfg.diffusion_steps
        method.train()  # the losses as training computes them (frame BatchNorm statistics)
        with torch.no_grad():
            for i in idx:
                batch = collate([ds[i]])
                for d in range(args.draws):
                    method.step.fill_(start)  # stage 2: every loss
                    torch.manual_seed(1000 * i + d)
                    losses = method.training_step(batch)
                    for k, v in losses.items():
                        if k == "loss_occ_gen" and float(v) == 0.0:
                            continue  # t above occ_max_timestep: nothing read
                        sums.setdefault(k, []).append(float(v))
        row = {
            "checkpoint": folder.name,
            **{k: sum(v) / len(v) for k, v in sums.items()},
            "n": {k: len(v) for k, v in sums.items()},
        }
        rows.append(row)
        print(json.dumps(row))
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
