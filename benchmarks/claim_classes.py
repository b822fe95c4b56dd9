"""Which classes carry a claim: an ablation's two arms compared class by class, seed by seed.

An mIoU difference of a few tenths between two arms is often one rare class that swings from
seed to seed. This reads the scored files that ``occkit ablate`` leaves in each run folder
(``runs/<arm>_s<seed>/score_<scorer>[_<mask>].json``, their per-class ``iou``) and prints, for
each class, the arm's IoU minus the other arm's in every seed paired, and the share of the mIoU
difference it makes (its difference divided by the number of classes both runs define), so that
the rows of a seed sum to the two runs' mIoU difference over those classes: the official difference
when both define the same classes. Nothing is trained or scored again.

    python benchmarks/claim_classes.py --out runs/abl/cigocc --arm full --against seg
    python benchmarks/claim_classes.py --out runs/abl/radocc --arm rdc_rsc --against student

``--score NAME`` picks the scored file where a run holds several (one per scorer or mask).

A class whose IoU is undefined in one run (no voxel of it in the ground truth nor that run's
prediction) and 0 in the other (the other predicts it where the ground truth has none) makes the
official means average over different classes (Occ3D's mIoU is a nanmean); such a class is left
out of that seed's sum and named.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path


def _score_file(run: Path, name: str | None) -> Path | None:
    """The run's scored file; None while it is not scored yet (a run still training)."""
    if name:
        return run / name if (run / name).is_file() else None
    found = sorted(p for p in run.glob("score_*.json") if not p.stem.endswith("_prev"))
    if len(found) > 1:
        raise SystemExit(f"claim_classes: {run}: {', '.join(p.name for p in found)}: name one with --score")
    return found[0] if found else None


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise SystemExit(f"claim_classes: {path}: cannot be read as JSON ({err})") from None
    iou = data.get("iou")
    if not isinstance(iou, dict) or not iou:
        raise SystemExit(f"claim_classes: {path}: no per-class 'iou' table")
    return data


def _seeds(out: Path, arm: str) -> dict[int, Path]:
    pattern = re.compile(rf"^{re.escape(arm)}_s(\d+)$")
    found = {}
    for run in (out / "runs").glob(f"{arm}_s*"):
        match = pattern.match(run.name)
        if match and run.is_dir():
            found[int(match.group(1))] = run
    return found


def compare(out: Path, arm: str, against: str, score: str | None = None) -> dict:
    """Per seed paired: each class's IoU in both runs, its difference and its share of the mIoU difference."""
    mine, theirs = _seeds(out, arm), _seeds(out, against)
    paired = {}
    for seed in sorted(set(mine) & set(theirs)):
        a_path, b_path = _score_file(mine[seed], score), _score_file(theirs[seed], score)
        if a_path is None or b_path is None:
            continue
        a, b = _read(a_path), _read(b_path)
        classes = [c for c in a["iou"] if c in b["iou"]]
        defined = [c for c in classes if not (_nan(a["iou"][c]) or _nan(b["iou"][c]))]
        undefined = [c for c in classes if c not in defined]
        n = len(defined)
        rows = {
            c: (a["iou"][c], b["iou"][c], a["iou"][c] - b["iou"][c], (a["iou"][c] - b["iou"][c]) / n) for c in defined
        }
        paired[seed] = {"rows": rows, "undefined": undefined, "a": a_path, "b": b_path}
    return paired


def _nan(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def render(paired: dict, arm: str, against: str, top: int = 0) -> str:
    seeds = sorted(paired)
    classes = list(dict.fromkeys(c for s in seeds for c in paired[s]["rows"]))
    total = {c: sum(paired[s]["rows"].get(c, (0, 0, 0, 0))[3] for s in seeds) for c in classes}
    if top:
        classes = sorted(classes, key=lambda c: -abs(total[c]))[:top]
    head = "| class | " + " | ".join(f"s{s}: `{arm}` / `{against}` (difference)" for s in seeds)
    head += " | share of the mIoU difference, per seed |\n|---|" + "---|" * (len(seeds) + 1)
    lines = [head]
    for c in classes:
        cells = []
        for s in seeds:
            r = paired[s]["rows"].get(c)
            cells.append("undefined" if r is None else f"{r[0]:.2f} / {r[1]:.2f} ({r[2]:+.2f})")
        shares = ", ".join(f"{paired[s]['rows'][c][3]:+.3f}" if c in paired[s]["rows"] else "-" for s in seeds)
        lines.append(f"| {c} | " + " | ".join(cells) + f" | {shares} |")
    sums = ", ".join(f"s{s} {sum(r[3] for r in paired[s]['rows'].values()):+.3f}" for s in seeds)
    lines.append(f"\nmIoU difference (the sum of the shares): {sums}")
    for s in seeds:
        if paired[s]["undefined"]:
            lines.append(f"s{s}: undefined in either run, left out: {', '.join(paired[s]['undefined'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="the ablation's output folder (holds runs/)")
    ap.add_argument("--arm", required=True)
    ap.add_argument("--against", required=True)
    ap.add_argument("--score", default=None, help="the scored file's name in each run folder (default: the only one)")
    ap.add_argument("--top", type=int, default=0, help="only the N classes with the largest summed share")
    args = ap.parse_args(argv)
    if not (args.out / "runs").is_dir():
        raise SystemExit(f"claim_classes: {args.out}: no runs/ folder (not an `occkit ablate` output)")
    paired = compare(args.out, args.arm, args.against, args.score)
    if not paired:
        raise SystemExit(f"claim_classes: {args.out}: no seed with both `{args.arm}` and `{args.against}` scored")
    print(render(paired, args.arm, args.against, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
