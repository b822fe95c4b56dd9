"""Tables of the OccScene ablation (benchmarks/bench_occscene.py results) in Markdown.

    python benchmarks/summarize_occscene.py runs/occscene_bench

Each figure: the mean over seeds, +- half the range, then the seeds' values. Generation arms: FID
and KID in the judge's image features (lower is better) and layout mIoU (the judge's occupancy
from the generated images against the occupancy they were generated from; higher is better).
Perception arms: val mIoU (camera mask, front frustum); perc_blankgen is perc_realgen with every
generated image replaced by its mean colour (the generated labels without their appearance).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def fmt(values: list[float], digits: int = 2) -> str:
    if not values:
        return "-"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.{digits}f} (one seed)"
    half = (max(values) - min(values)) / 2
    return f"{mean:.{digits}f} +- {half:.{digits}f} ({', '.join(f'{v:.{digits}f}' for v in values)})"


def load(root: Path, arm: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.glob(f"{arm}_s*.json"))]


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/occscene_bench")
    judge = load(root, "judge")
    if judge:
        print(f"Judge (perception only, every real training scene): val mIoU {fmt([r['val_miou'] for r in judge])}\n")
    rows = []
    for arm, label in (("gen_mda", "layout through MDA"), ("gen_text", "text only (no MDA)")):
        rs = load(root, arm)
        if rs:
            rows.append((f"{arm}: {label}", rs))
    fb = load(root, "feedback")
    if rows or fb:
        print("| generation | seeds | FID | KID x 1000 | layout mIoU |")
        print("|---|---|---|---|---|")
        for key, label in (("with_feedback", "gen_mda's run, perception feedback (no layout)"),
                           ("text_only", "gen_mda's run, text only (no layout)")):
            rs = [r[key] for r in fb if key in r]
            if rs:
                rows.append((label, rs))
        for name, rs in rows:
            print(f"| {name} | {len(rs)} | {fmt([r['fid'] for r in rs], 3)} | {fmt([1000 * r['kid'] for r in rs], 3)} | "
                  f"{fmt([r['layout_miou'] for r in rs])} |")
        print()
    perc = [(arm, load(root, arm)) for arm in ("perc_real", "perc_realgen", "perc_blankgen")]
    if any(rs for _, rs in perc):
        print("| perception | seeds | real frames | generated frames | val mIoU |")
        print("|---|---|---|---|---|")
        for arm, rs in perc:
            if rs:
                print(f"| {arm} | {len(rs)} | {rs[0]['real_frames']} | {rs[0]['generated_frames']} | {fmt([r['val_miou'] for r in rs])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
