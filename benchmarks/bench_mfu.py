"""Model FLOP utilisation of the CPU presets: a training step's FLOPs per second over a 2048x2048
matrix product's, on the same threads, in bf16 and in float32.

Per CPU preset (``preset_bench.CPU_ROWS``) on a small synthetic world and the stages it needs
(made with plain occkit commands, kept between runs under ``--out``): the FLOPs of one training
step at the preset's batch (``FlopCounterMode``: matrix products, convolutions, attention;
forward and backward), the mean seconds of ``--steps`` steps after a warm-up (the preset's own
autocast: bf16 where the CPU has native bf16, else float32), and the rate of a 2048x2048 product
in bf16 and float32 measured in the same process just before (the best product of 3 s) and
between the timed steps (one product of each dtype before every step, their mean rate: on a
loaded machine the estimate that sees the steps' load). MFU = step FLOPs / step seconds / matmul
rate, also from the best step against the best product. Element-wise work is not counted, so an
MFU below 100 % is also work the count does not see. Writes ``OUT/rows/*.json`` (kept: a second
run measures only the missing rows; ``--redo`` all) and ``OUT/table.md``.

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
# as the ``occkit`` command does (occkit.cli): threads that spin while they wait lose their share of a
# loaded machine; libgomp reads this when torch loads, so it is set before the import
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
from preset_bench import CPU_ROWS, Table, build_stages, matmul_rate, measure_step


class Interleaved:
    """Called before each timed step: one 2048x2048 product in bf16 and one in float32, timed;
    :meth:`rates` is their FLOPs over their summed seconds (a mean, as the step's is)."""

    def __init__(self, n: int = 2048) -> None:
        self.n, self.seconds = n, {torch.bfloat16: 0.0, torch.float32: 0.0}
        self.count = 0
        self.ab = {dt: (torch.randn(n, n).to(dt), torch.randn(n, n).to(dt)) for dt in self.seconds}

    def __call__(self) -> None:
        for dt, (a, b) in self.ab.items():
            t0 = time.perf_counter()
            a @ b
            self.seconds[dt] += time.perf_counter() - t0
        self.count += 1

    def rates(self) -> dict[str, float]:
        names = {torch.bfloat16: "bf16", torch.float32: "float32"}
        return {names[dt]: 2 * self.n**3 * self.count / s for dt, s in self.seconds.items() if s > 0}


def row_file(out: Path, label: str, tag: str) -> Path:
    return out / "rows" / f"{label.replace(' ', '_')}{'__' + tag if tag else ''}.json"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--image-size", type=int, nargs=2, default=[192, 512])
    ap.add_argument("--rows", nargs="*", default=None, help="default all: " + ", ".join(r.label for r in CPU_ROWS))
    ap.add_argument("--redo", action="store_true")
    ap.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="overrides added to every row's (to compare a setting: run once with it, once without, under different "
        "--tag)",
    )
    ap.add_argument("--tag", default="", help="appended to the rows' file names and labels")
    args = ap.parse_args()
    rows = [r for r in CPU_ROWS if args.rows is None or r.label in args.rows]
    opts = {
        "image_size": args.image_size,
        "kitti_size": (128, 416),
        "scenes": 2,
        "frames": 3,
        "workers": 1,
        "threads": args.threads,
        "teacher_preset": "lidar-teacher",
    }
    folders = build_stages(args.out / "stages", list(dict.fromkeys(s for r in rows for s in r.stages())), opts)
    torch.set_num_threads(args.threads)
    (args.out / "rows").mkdir(parents=True, exist_ok=True)
    for row in rows:
        dest = row_file(args.out, row.label, args.tag)
        if dest.is_file() and not args.redo:
            continue
        rates = {"bf16": matmul_rate(args.threads, torch.bfloat16), "float32": matmul_rate(args.threads, torch.float32)}
        mm = Interleaved()
        try:
            m = measure_step(
                row.preset,
                folders[row.data],
                row.resolved_sets(folders) + list(args.set),
                "cpu",
                steps=args.steps,
                warmup=2,
                memory=False,
                between=mm,
            )
        except Exception as e:  # noqa: BLE001 - reported in the table
            m = {"error": f"{type(e).__name__}: {e}"[:300]}
        rec = {
            "row": row.label + (f" {args.tag}" if args.tag else ""),
            "measure": m,
            "matmul_gflops": {k: round(v / 1e9, 1) for k, v in rates.items()},
            "loadavg": os.getloadavg(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        }
        if "s_per_step" in m:
            rate = m["gflop_per_step"] * 1e9 / m["s_per_step"]
            # against the products timed between the steps: the same stretch of the machine's load, alike averaged
            rec["matmul_gflops_between"] = {k: round(v / 1e9, 1) for k, v in mm.rates().items()}
            rec["mfu_between"] = {k: round(100 * rate / v, 1) for k, v in mm.rates().items()}
            rec["step_gflops"] = round(rate / 1e9, 1)
            rec["mfu_bf16"] = round(100 * rate / rates["bf16"], 1)
            rec["mfu_float32"] = round(100 * rate / rates["float32"], 1)
            # the matmul's rate is its best product; on a loaded machine the step's best is the figure that matches it
            best = m["gflop_per_step"] * 1e9 / m["s_per_step_min"]
            rec["step_gflops_best"] = round(best / 1e9, 1)
            rec["mfu_bf16_best"] = round(100 * best / rates["bf16"], 1)
            rec["mfu_float32_best"] = round(100 * best / rates["float32"], 1)
        print(
            json.dumps(
                {k: v for k, v in rec.items() if k != "measure"}
                | {"s_per_step": m.get("s_per_step"), "gflop": m.get("gflop_per_step"), "amp": m.get("amp")}
            ),
            flush=True,
        )
        tmp = dest.with_suffix(".tmp")
        tmp.write_text(json.dumps(rec, indent=1))
        tmp.replace(dest)
    t = Table(
        [
            "preset",
            "autocast",
            "GFLOP per step",
            "s per step",
            "step GFLOP/s",
            "2048² matmul GFLOP/s bf16 / fp32",
            "MFU vs bf16",
            "MFU vs fp32",
            "best step: MFU vs bf16 / fp32",
            "matmuls between the steps: GFLOP/s bf16 / fp32",
            "MFU vs those: bf16 / fp32",
            "load average",
        ]
    )
    for row in rows:
        p = row_file(args.out, row.label, args.tag)
        if not p.is_file():
            continue
        r = json.loads(p.read_text())
        label = r["row"]
        bw, mb = r.get("matmul_gflops_between", {}), r.get("mfu_between", {})
        between = f"{bw['bf16']:.0f} / {bw['float32']:.0f}" if bw else "–"
        mfu_between = f"{mb['bf16']:.1f} / {mb['float32']:.1f} %" if mb else "–"
        best = f"{r['mfu_bf16_best']:.1f} / {r['mfu_float32_best']:.1f} %" if "mfu_bf16_best" in r else "–"
        m = r["measure"]
        if "error" in m:
            t.add(label, "failed: " + m["error"], "", "", "", "", "", "", "", "", "", "")
            continue
        t.add(
            label,
            m["amp"],
            f"{m['gflop_per_step']:.1f}",
            f"{m['s_per_step']:.3f}",
            f"{r['step_gflops']:.0f}",
            f"{r['matmul_gflops']['bf16']:.0f} / {r['matmul_gflops']['float32']:.0f}",
            f"{r['mfu_bf16']:.1f} %",
            f"{r['mfu_float32']:.1f} %",
            best,
            between,
            mfu_between,
            f"{r['loadavg'][0]:.1f}",
        )
    table = args.out / (f"table_{args.tag}.md" if args.tag else "table.md")
    tmp = table.with_suffix(".tmp")
    tmp.write_text(t.text() + "\n")
    tmp.replace(table)
    print(t.text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
