"""The quality of EasyOcc's pseudo-labels against the real labels, for each label rule and each
number of past frames K (issue 32): which rule sets the labels' occupied precision.

For every rule variant x K: ``occkit pseudolabel`` on the chosen split of WORLD with the prior
cache PRIORS (the Python API, the same code), then ``--quality`` against WORLD's real labels.
Each variant's labels and quality JSON (with its wall seconds: beside other jobs and with the
prior cache cold or in the page cache, they are not a speed figure) live under ``OUT/<variant>-K<k>/``; a variant whose
quality JSON exists is not redone (the script resumes). ``OUT/labels_quality.json`` holds every
row and ``OUT/labels_quality.md`` the table.

    python benchmarks/easyocc_labels.py --data WORLD --priors PRIORS --out runs/easyocc_labels \
        --split val --past 0,3,7 --skip carve_all-K7,consistency_carve_all-K3,consistency_carve_all-K7

On the ablation regime's stages (configs/ablations/easyocc.yaml): WORLD = the ``world`` stage,
PRIORS = the ``priors`` stage (``occkit ablate easyocc --out runs/abl/easyocc --dry-run`` prints
their folders).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

#: name -> PseudoLabelConfig overrides; the default rule first.
VARIANTS: dict[str, dict] = {
    "default": {},
    "min_points2": {"min_points": 2},
    "min_points3": {"min_points": 3},
    "vote_count": {"vote": "count"},
    "carve_all": {"carve_every": 1},
    "carve32": {"carve_every": 32},
    "consistency": {"consistency": "frames"},
    "consistency_carve_all": {"consistency": "frames", "carve_every": 1},
    "dynamic_keep": {"dynamic": "keep"},
}
#: variants that mean the same with one frame (K = 0) are run once there.
MULTI_FRAME_ONLY = ("consistency", "consistency_carve_all", "dynamic_keep")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="world with real labels (Occ3D layout)")
    ap.add_argument("--priors", type=Path, required=True, help="its prior cache (semantics, depth)")
    ap.add_argument("--out", type=Path, required=True, help="folder of the label sets and the table")
    ap.add_argument(
        "--split", default="val", choices=("train", "val", "all"), help="frames labelled and scored (default val)"
    )
    ap.add_argument("--past", default="0,3,7", help="comma-separated K (default 0,3,7)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {','.join(VARIANTS)}")
    ap.add_argument(
        "--skip",
        default="",
        help="comma-separated VARIANT-KK rows not to run (e.g. carve_all-K7: every point's ray is slow)",
    )
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = ap.parse_args(argv)

    import torch

    from occkit.fileio import write_json_atomic, write_text_atomic
    from occkit.pseudolabel.dataset import PseudoLabelConfig, make_pseudo_labels
    from occkit.pseudolabel.quality import label_quality

    torch.set_num_threads(args.threads)
    ks = [int(k) for k in args.past.split(",")]
    names = [v for v in args.variants.split(",") if v]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        print(f"easyocc_labels.py: unknown variants {unknown} (known: {list(VARIANTS)})", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for k in ks:
        for name in names:
            if (k == 0 and name in MULTI_FRAME_ONLY) or f"{name}-K{k}" in args.skip.split(","):
                continue
            folder = args.out / f"{name}-K{k}"
            qpath = folder / "quality.json"
            if qpath.is_file():
                row = json.loads(qpath.read_text())
            else:
                cfg = PseudoLabelConfig(past=k, future=0, split=args.split, **VARIANTS[name])
                t0 = time.perf_counter()
                make_pseudo_labels(args.data, args.priors, folder / "labels", cfg, workers=1, progress=False)
                seconds = time.perf_counter() - t0
                q = label_quality(folder / "labels", args.data, split=args.split)
                row = {
                    "variant": name,
                    "past": k,
                    "overrides": VARIANTS[name],
                    "seconds": seconds,
                    **json.loads(json.dumps(q, default=float)),
                }
                write_json_atomic(qpath, row)
            rows.append(row)
            print(
                f"{name:>22} K={k}: mIoU {row['miou_camera']:.2f} / {row['miou_none']:.2f}  "
                f"precision {row['precision_camera']:.1f} / {row['precision_none']:.1f}  "
                f"recall {row['recall_camera']:.1f} / {row['recall_none']:.1f}  ({row['seconds']:.0f} s)",
                flush=True,
            )
    write_json_atomic(args.out / "labels_quality.json", rows)
    lines = [
        "| rule | K | mIoU camera / none | geometry IoU camera / none | occupied precision camera / none | occupied "
        "recall camera / none | observed % | occupied % |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['past']} | {r['miou_camera']:.2f} / {r['miou_none']:.2f} | "
            f"{r['geometry_iou_camera']:.2f} / {r['geometry_iou_none']:.2f} | "
            f"{r['precision_camera']:.1f} / {r['precision_none']:.1f} | "
            f"{r['recall_camera']:.1f} / {r['recall_none']:.1f} | {r['density']:.1f} | {r['occupied_fraction']:.2f} |"
        )
    write_text_atomic(args.out / "labels_quality.md", "\n".join(lines) + "\n")
    print(f"wrote {args.out / 'labels_quality.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
