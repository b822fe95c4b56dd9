"""The README's picture of the indoor world: a few frames (image, 2D classes, occupancy in 3D).

    occkit synth --world indoor --out /tmp/indoor --scenes 4 --frames 3 --seed 0
    python benchmarks/indoor_figure.py --data /tmp/indoor --frames NYU0000_0000 NYU0002_0002 NYU0003_0001 \
        --out docs/images/indoor.png
"""

from __future__ import annotations

import argparse


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="a NYUv2-layout folder written by occkit synth --world indoor")
    ap.add_argument("--frames", nargs="+", required=True, help="frame names (NYU<room>_<view>)")
    ap.add_argument("--out", required=True, help="PNG to write")
    args = ap.parse_args()

    from occkit.data.nyu import NYUDataset
    from occkit.viz.draw import save_png
    from occkit.viz.indoor import indoor_figure

    ds = NYUDataset(args.data, "all", load_extras=True)
    image = indoor_figure([ds[ds.index_of(f)] for f in args.frames])
    save_png(args.out, image)
    print(f"wrote {args.out} ({image.shape[1]}x{image.shape[0]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
