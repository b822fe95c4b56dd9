"""Model FLOP utilisation of the CPU presets: a training step's FLOPs per second over a 2048x2048
matrix product's, on the same threads, in bf16 and in float32.

Per CPU preset (``preset_bench.CPU_ROWS``) on a small synthetic world and the stages it needs
(made with plain occkit commands, kept between runs under ``--out``): the FLOPs of one training
step at the preset's batch (``FlopCounterMode``: matrix products, convolutions, attention;
forward and backward), the mean seconds of ``--steps`` steps after a warm-up (the preset's own
autocast: bf16 where the CPU has native bf16, else float32), and the rate of a 2048x2048 product
in bf16 and float32 measured in the same process just before. MFU = step FLOPs / step seconds /
matmul rate. Element-wise work is not counted, so an MFU below 100 % is also work the count
does not see.

    python benchmarks/bench_mfu.py --out runs/mfu --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from preset_bench import CPU_ROWS, Table, build_stages, matmul_rate, measure_step  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--image-size", type=int, nargs=2, default=[192, 512])
    ap.add_argument("--rows", nargs="*", default=None, help="default all: " + ", ".join(r.label for r in CPU_ROWS))
    ap.add_argument("--redo", action="store_true")
    args = ap.parse_args()
    rows = [r for r in CPU_ROWS if args.rows is None or r.label in args.rows]
    opts = {"image_size": args.image_size, "kitti_size": (128, 416), "scenes": 2, "frames": 3, "workers": 1,
            "threads": args.threads, "teacher_preset": "lidar-teacher"}
    folders = build_stages(args.out / "stages", list(dict.fromkeys(s for r in rows for s in r.stages())), opts)
    torch.set_num_threads(args.threads)
    (args.out / "rows").mkdir(parents=True, exist_ok=True)
    for row in rows:
        dest = args.out / "rows" / f"{row.label.replace(' ', '_')}.json"
        if dest.is_file() and not args.redo:
            continue
        rates = {"bf16": matmul_rate(args.threads, torch.bfloat16), "float32": matmul_rate(args.threads, torch.float32)}
        try:
            m = measure_step(row.preset, folders[row.data], row.resolved_sets(folders), "cpu", steps=args.steps, warmup=2, memory=False)
        except Exception as e:  # noqa: BLE001 - reported in the table
            m = {"error": f"{type(e).__name__}: {e}"[:300]}
        rec = {"row": row.label, "measure": m, "matmul_gflops": {k: round(v / 1e9, 1) for k, v in rates.items()},
               "loadavg": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M %Z")}
        if "s_per_step" in m:
            rate = m["gflop_per_step"] * 1e9 / m["s_per_step"]
            rec["step_gflops"] = round(rate / 1e9, 1)
            rec["mfu_bf16"] = round(100 * rate / rates["bf16"], 1)
            rec["mfu_float32"] = round(100 * rate / rates["float32"], 1)
        print(json.dumps({k: v for k, v in rec.items() if k != "measure"} | {"s_per_step": m.get("s_per_step"),
                                                                              "gflop": m.get("gflop_per_step"), "amp": m.get("amp")}), flush=True)
        dest.write_text(json.dumps(rec, indent=1))
    t = Table(["preset", "autocast", "GFLOP per step", "s per step", "step GFLOP/s", "2048² matmul GFLOP/s bf16 / fp32",
               "MFU vs bf16", "MFU vs fp32", "load average"])
    for row in rows:
        p = args.out / "rows" / f"{row.label.replace(' ', '_')}.json"
        if not p.is_file():
            continue
        r = json.loads(p.read_text())
        m = r["measure"]
        if "error" in m:
            t.add(row.label, "failed: " + m["error"], "", "", "", "", "", "", "")
            continue
        t.add(row.label, m["amp"], f"{m['gflop_per_step']:.1f}", f"{m['s_per_step']:.3f}", f"{r['step_gflops']:.0f}",
              f"{r['matmul_gflops']['bf16']:.0f} / {r['matmul_gflops']['float32']:.0f}", f"{r['mfu_bf16']:.1f} %",
              f"{r['mfu_float32']:.1f} %", f"{r['loadavg'][0]:.1f}")
    (args.out / "table.md").write_text(t.text() + "\n")
    print(t.text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
