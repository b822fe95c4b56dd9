"""The floor of `occkit eval-gen`'s FID and KID: real frames against other real frames, as many as a
generated set holds, in the same judge's image features. A generated set's FID or KID means something
only beside this floor: with few frames in many feature dimensions (32 frames, 512 dimensions: the
covariances are of rank 31) FID is dominated by its estimation error, where KID is unbiased.

  python benchmarks/eval_gen_floor.py --judge JUDGE --data WORLD [--n 32] [--views 4]

JUDGE: the eval-gen judge (a run trained on real frames); WORLD: the real dataset. Scores the real
validation split against training frames: view 0 of the first n training rooms, view 1 of the same
rooms, and view 0 against view 1 (frames are taken every ``--views`` from the training split, which
lists each room's views in a row).
"""

from __future__ import annotations

import argparse
import sys

import torch


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--judge", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--n", type=int, default=32, help="frames per set (the generated sets' size)")
    p.add_argument("--views", type=int, default=4, help="views per room in the training split")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from occkit.engine.data import eval_batches
    from occkit.experiment import build_dataset, load_checkpoint_method
    from occkit.formats import format_of
    from occkit.generation.evaluate import score_frames
    from occkit.generation.metrics import frechet_distance, kernel_distance

    judge, cfg, _, _ = load_checkpoint_method(args.judge, "cpu")
    judge.eval()
    cpu = torch.device("cpu")

    def features(split: str, picks: list[int] | None = None) -> torch.Tensor:
        ds = build_dataset(cfg, args.data, split, train=False)
        fmt = format_of(ds)
        frames = ds if picks is None else torch.utils.data.Subset(ds, picks)
        return score_frames(judge, eval_batches(frames, 4), cpu, fmt=fmt)[0]

    real = features("val")[: args.n]
    view0 = features("train", list(range(0, args.n * args.views, args.views)))
    view1 = features("train", list(range(1, args.n * args.views, args.views)))
    for name, a, b in (
        ("val vs train view 0", real, view0),
        ("val vs train view 1", real, view1),
        ("train view 0 vs view 1", view0, view1),
    ):
        fid, kid = frechet_distance(a, b), kernel_distance(a, b, subset_size=100)
        print(f"{name} ({len(a)} vs {len(b)} frames, {a.shape[1]}-d): FID {fid:.4f}  KID {kid:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
