"""Tables of the EasyOcc ablation (benchmarks/ablation_easyocc.py results) in Markdown.

    python benchmarks/summarize_easyocc.py runs/easyocc_abl runs/easyocc_abl_world

Label arms: quality against the real labels per K and dynamic rule. Training arms: mIoU against
the real labels with the camera mask and without (mean over seeds, +- half the range, the seeds'
values), and the share of the masked score kept without the mask (none / camera).
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path


def main() -> None:
    roots = [Path(a) for a in sys.argv[1:]] or [Path("runs/easyocc_abl")]
    for root in roots:
        results = [json.loads(p.read_text()) for p in sorted(root.glob("*/result.json"))]
        labels = [r for r in results if "quality" in r]
        if labels:
            print(f"\n#### Label quality: {root} (priors {labels[0]['priors']})\n")
            print("| arm | past K | dynamic | mIoU cam | mIoU none | geo IoU cam | geo IoU none | occ. precision | occ. recall | observed % | s/frame |")
            print("|---|---|---|---|---|---|---|---|---|---|---|")
            for r in sorted(labels, key=lambda r: (r["config"]["dynamic"], r["config"]["past"], r["config"].get("future", 0))):
                q, c = r["quality"], r["config"]
                k = f"{c['past']}" + (f" + {c['future']} future" if c.get("future") else "")
                print(f"| {r['arm']} | {k} | {c['dynamic']} | {q['miou_camera']:.2f} | {q['miou_none']:.2f} | {q['geometry_iou_camera']:.2f} | "
                      f"{q['geometry_iou_none']:.2f} | {q['precision_none']:.1f} | {q['recall_none']:.1f} | {q['density']:.1f} | "
                      f"{r['record'].get('seconds_per_frame', float('nan')):.1f} |")
        train = [r for r in results if "miou_camera" in r and "quality" not in r]
        if train:
            by = defaultdict(list)
            for r in train:
                by[(r["arm"], r["steps"])].append(r)
            print(f"\n#### Training arms: {root} (mIoU against the real labels, val split)\n")
            print("| arm | steps | seeds | mIoU camera mask | mIoU no mask | none / camera | geo IoU camera | geo IoU none |")
            print("|---|---|---|---|---|---|---|---|")
            for (arm, steps), rs in sorted(by.items()):
                def stat(key: str) -> str:
                    v = [r[key] for r in rs if r.get(key) is not None]
                    if not v:
                        return "-"
                    m = sum(v) / len(v)
                    return f"{m:.2f} ± {(max(v) - min(v)) / 2:.2f} ({', '.join(f'{x:.2f}' for x in v)})"
                ratio = [r["miou_none"] / r["miou_camera"] for r in rs if r["miou_camera"]]
                print(f"| {arm} | {steps} | {','.join(str(r['seed']) for r in rs)} | {stat('miou_camera')} | {stat('miou_none')} | "
                      f"{sum(ratio) / max(len(ratio), 1):.2f} | {stat('geometry_iou_camera')} | {stat('geometry_iou_none')} |")


if __name__ == "__main__":
    main()
