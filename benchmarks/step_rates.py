"""Turn ``bench_mfu.py``'s rows into the step-time table ``occkit ablate --dry-run`` estimates from
(``src/occkit/ablate/step_rates.json``): per CPU preset, the mean seconds of one training step.

    python benchmarks/step_rates.py runs/mfu/rows --command "python benchmarks/bench_mfu.py ..."

ROWS is bench_mfu's ``OUT/rows`` folder (a JSON file per row) or a file of its stdout (a JSON line
per row: ``s_per_step`` but not the threads or image size, given then by ``--threads`` and
``--image-size``). Only rows whose label is a preset's name are kept (not ``occscene-cpu joint``,
a variant of a preset's settings), and only those with a step time (not a row that failed).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "occkit" / "ablate" / "step_rates.json"


def read_rows(path: Path) -> list[dict]:
    """bench_mfu's rows as ``{"row", "date", "s_per_step", "threads"?, "input_hw"?, "amp"?}``."""
    out = []
    if path.is_dir():
        for p in sorted(path.glob("*.json")):
            rec = json.loads(p.read_text())
            m = rec.get("measure", {})
            out.append(
                {
                    "row": rec["row"],
                    "date": rec.get("date"),
                    "s_per_step": m.get("s_per_step"),
                    "threads": m.get("threads"),
                    "input_hw": m.get("input_hw"),
                    "amp": m.get("amp"),
                }
            )
        return out
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line[line.find("{") :] if "{" in line else ""
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and "row" in rec:
            out.append(
                {"row": rec["row"], "date": rec.get("date"), "s_per_step": rec.get("s_per_step"), "amp": rec.get("amp")}
            )
    return out


def cpu_name() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rows", type=Path, help="bench_mfu's OUT/rows folder, or a file of its stdout")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--threads", type=int, default=2, help="for rows that do not say (a stdout file)")
    ap.add_argument("--image-size", type=int, nargs=2, default=None, help="for rows that do not say")
    ap.add_argument("--machine", default=None, help="default: lscpu's model name and the core count")
    ap.add_argument("--commit", default="", help="the occkit commit bench_mfu ran at")
    ap.add_argument("--command", default="", help="the bench_mfu command line that made the rows")
    ap.add_argument(
        "--world",
        default="bench_mfu's world: 2 scenes x 3 frames (synth)",
        help="the world the steps were timed on",
    )
    args = ap.parse_args()
    import os

    presets: dict[str, dict] = {}
    for r in read_rows(args.rows):
        if " " in r["row"] or not r.get("s_per_step"):
            continue
        hw = r.get("input_hw") or args.image_size
        presets[r["row"]] = {
            "s_per_step": round(float(r["s_per_step"]), 4),
            "threads": int(r.get("threads") or args.threads),
            **({"image_hw": list(hw)} if hw else {}),
            **({"amp": r["amp"]} if r.get("amp") else {}),
            "date": r.get("date"),
        }
    if not presets:
        raise SystemExit(f"{args.rows}: no row with a step time")
    table = {
        "about": "seconds per training step of each CPU preset (batch of the preset), measured by "
        "benchmarks/bench_mfu.py; regenerate with benchmarks/step_rates.py",
        "machine": args.machine or f"{cpu_name()}, {os.cpu_count()} cores",
        "threads": sorted({p["threads"] for p in presets.values()}),
        "date": max(p["date"] or "" for p in presets.values()),
        "commit": args.commit,
        "command": args.command,
        "world": args.world,
        "presets": dict(sorted(presets.items())),
    }
    args.out.write_text(json.dumps(table, indent=1) + "\n")
    print(
        f"wrote {args.out}: {len(presets)} preset(s): "
        + ", ".join(f"{k} {v['s_per_step']} s" for k, v in presets.items())
    )


if __name__ == "__main__":
    main()
