"""Throughput of the 2D prior providers: camera images per second, per provider and kind.

    python benchmarks/bench_priors.py --data runs/world_eval_s0 --frames 6 --threads 1
    python benchmarks/bench_priors.py --data runs/world_eval_s0 --world runs/world_prior_s7 --hf ROOT

Each provider runs on the same ``--frames`` frames (evenly spaced over the dataset, all cameras),
after one warm-up frame; the figure is images / second of wall time for all the kinds the
provider gives (and, for the oracle, features alone, which run the text encoder), and the
process's CPU time per image (the steadier figure on a shared machine). Loading the frames from
disk is not counted. ``--world RUN`` adds a trained ``world:RUN`` prior, ``--hf ROOT``
the foundation models saved under ROOT.
"""

from __future__ import annotations

import argparse
import time

import torch

from occkit.priors import build_prior
from occkit.priors.cache import open_dataset, prior_frame


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="a synthetic dataset (the oracle needs its extras)")
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--world", default=None, help="a world prior run (occkit priors train)")
    ap.add_argument("--hf", default=None, help="a folder of saved transformers models (hf:ROOT)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    ds, _ = open_dataset(args.data, "all")
    n = len(ds)
    idx = sorted({round(i * (n - 1) / max(1, args.frames)) for i in range(args.frames + 1)})
    frames = [prior_frame(ds, ds[i]) for i in idx]
    warm, timed = frames[0], frames[1:]
    cams = len(warm.cam_names)
    H, W = warm.image_size
    specs: list[tuple[str, tuple[str, ...] | None]] = [
        ("oracle:clean", None),
        ("oracle:typical", None),
        ("oracle:noisy", None),
        ("oracle:typical", ("semantics", "segments", "depth")),
        ("oracle:typical", ("features",)),
        ("superpixels:slic", None),
        ("superpixels:felzenszwalb", None),
    ]
    if args.world:
        specs.append((f"world:{args.world}", None))
    if args.hf:
        specs.append((f"hf:{args.hf}", None))
    print(f"{len(timed)} frames x {cams} cameras of {H}x{W}, {args.threads} thread(s)")
    print(f"{'provider':<40} {'kinds':<36} {'images/s':>9} {'ms/image':>9} {'CPU ms/image':>12}")
    for spec, kinds in specs:
        p = build_prior(spec)
        kinds = kinds or p.kinds
        with torch.no_grad():
            p(warm, kinds)
            t, c = time.perf_counter(), time.process_time()
            for f in timed:
                p(f, kinds)
            dt, dc = time.perf_counter() - t, time.process_time() - c
        images = len(timed) * cams
        print(
            f"{spec:<40} {','.join(kinds):<36} {images / dt:>9.2f} {1000 * dt / images:>9.1f} "
            f"{1000 * dc / images:>12.1f}"
        )


if __name__ == "__main__":
    main()
