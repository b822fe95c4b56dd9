"""Every GPU preset at nuScenes' image size on the CPU: the full-resolution rehearsal.

A synthetic world at 900x1600 (six cameras, nuScenes' size; ``--image-size``) and one in the
SemanticKITTI layout at KITTI's 376x1241 (``--kitti-size``) are made with ``occkit synth``; the
stages the presets need are made at the same size with plain occkit commands (an oracle prior
cache, EasyOcc's pseudo-labels, a 2-step ``lidar-teacher-occ3d`` run as RadOcc's teacher). Then,
for each GPU preset (``preset_bench.ROWS``):

1. the user's path: ``occkit train PRESET --max-steps 2 --no-val``, ``occkit predict`` on the val
   split and ``occkit eval`` of it, each timed (wall, CPU, peak resident set);
2. in a process of its own, the step measured (``preset_bench.measure_step``): parameters, FLOPs
   per training step at the preset's batch, peak resident set, and the peak of live tensors over
   one step (the GPU memory the step would allocate at that batch, before the allocator's rounding
   and the CUDA context).

The CPU seconds per step are those of the second step of ``occkit train`` (its ``train.jsonl``,
logged every step: the loader's workers run beside it, as in any training), on ``--threads``
threads; ``--steps N`` also times N steps in the measuring process.

Results go to ``OUT/rows/<row>.json`` as each row finishes (run the same command again and
finished rows and stages are kept) and the table to ``OUT/table.md``.

    python benchmarks/full_size.py --out runs/fullsize --threads 2
    python benchmarks/full_size.py --out runs/fullsize --rows occ3d-r50 easyocc-gpu
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from preset_bench import ROWS, Row, Table, build_stages, occkit_argv, run_logged  # noqa: E402


def batch_sets(batch: int | None) -> list[str]:
    return [] if batch is None else [f"data.batch_size={batch}"]


def cli_rehearsal(row: Row, folders: dict[str, Path], out: Path, threads: int, batch: int | None) -> dict:
    """Train 2 steps, predict the val split, evaluate: each an ``occkit`` command, timed."""
    run = out / "runs" / row.label.replace(" ", "_")
    log = out / "logs" / f"{row.label.replace(' ', '_')}.log"
    data = folders[row.data]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    res: dict = {}
    if run.exists():  # an earlier rehearsal stopped half-way: start it again
        import shutil

        shutil.rmtree(run)
    sets = (
        row.resolved_sets(folders)
        + [f"train.threads={threads}", "train.ckpt_every=2", "train.log_every=1"]
        + batch_sets(batch)
    )
    res["train"] = run_logged(
        occkit_argv(
            [
                "train",
                row.preset,
                "--data",
                str(data),
                "--out",
                str(run),
                "--max-steps",
                "2",
                "--no-val",
                "--no-progress",
                "--set",
                *sets,
            ]
        ),
        log,
        env,
    )
    if res["train"]["rc"] != 0:
        return res
    res["predict"] = run_logged(
        occkit_argv(["predict", "--ckpt", str(run), "--data", str(data), "--out", str(run / "pred"), "--split", "val"]),
        log,
        env,
    )
    if res["predict"]["rc"] != 0:
        return res
    metrics = [] if row.data == "kitti" else ["--metrics", "miou,rayiou"]
    res["eval"] = run_logged(
        occkit_argv(
            [
                "eval",
                "--gt",
                str(data),
                "--pred",
                str(run / "pred"),
                "--split",
                "val",
                *metrics,
                "--json",
                str(run / "eval.json"),
            ]
        ),
        log,
        env,
    )
    return res


def measure_in_process(
    row: Row, folders: dict[str, Path], out: Path, threads: int, steps: int, batch: int | None
) -> dict:
    """``preset_bench.measure_step`` in a fresh process (its peak memory its own)."""
    dest = out / "logs" / f"{row.label.replace(' ', '_')}.measure.json"
    dest.unlink(missing_ok=True)
    code = (
        f"import json, sys, torch; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); "
        f"torch.set_num_threads({threads:d}); from preset_bench import measure_step; "
        f"r = measure_step({row.preset!r}, {str(folders[row.data])!r}, "
        f"{row.resolved_sets(folders) + batch_sets(batch)!r}, 'cpu', steps={steps:d}, warmup=1); "
        f"open({str(dest)!r}, 'w').write(json.dumps(r))"
    )
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    res = run_logged([sys.executable, "-c", code], out / "logs" / f"{row.label.replace(' ', '_')}.log", env)
    if res["rc"] != 0 or not dest.is_file():
        return {"error": f"exit code {res['rc']}", **res}
    return {**json.loads(dest.read_text()), "wall_s": res["wall_s"]}


def project_to_preset_batch(m: dict, preset: str) -> dict:
    """FLOPs and tensor memory at the preset's own batch from a measurement at another batch:
    FLOPs in proportion; parameters, gradients and optimiser state as they are, activations and
    temporaries in proportion (what a step holds per frame)."""
    from occkit.experiment import load_experiment

    if "batch_size" not in m:
        return {}
    b0, b = m["batch_size"], load_experiment(preset).data.batch_size
    out = {"preset_batch_size": b}
    if "gflop_per_step" in m:
        out["gflop_per_step_at_preset_batch"] = round(m["gflop_per_step"] * b / b0, 1)
    kinds = m.get("tensor_peak_by_kind_gib")
    if kinds is not None:
        fixed = sum(v for k, v in kinds.items() if k in ("param", "grad", "opt", "buffer"))
        per_batch = sum(v for k, v in kinds.items() if k not in ("param", "grad", "opt", "buffer"))
        out["tensor_peak_gib_at_preset_batch"] = round(fixed + per_batch * b / b0, 2)
    return out


def train_step_seconds(run: Path) -> float | None:
    """Seconds of the last step ``occkit train`` logged (``train.jsonl``, ``log_every=1``)."""
    p = run / "train.jsonl"
    if not p.is_file():
        return None
    recs = [json.loads(x) for x in p.read_text().splitlines() if x.strip()]
    rate = recs[-1].get("steps_per_s") if recs else None
    return None if not rate else 1.0 / rate


def _gib(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def table(out: Path) -> str:
    t = Table(
        [
            "preset",
            "input (cameras x H x W), batch trained",
            "parameters",
            "GFLOP per training step",
            "CPU s per step",
            "peak RSS (GiB)",
            "projected GPU memory at the preset's batch (GiB)",
            "occkit train 2 steps / predict / eval",
        ]
    )
    for row in ROWS:
        p = out / "rows" / f"{row.label.replace(' ', '_')}.json"
        if not p.is_file():
            continue
        r = json.loads(p.read_text())
        m, c = r.get("measure", {}), r.get("cli", {})
        cli = " / ".join(
            (f"ok {c[k]['wall_s']:.0f} s") if c.get(k, {}).get("rc") == 0 else (f"exit {c[k]['rc']}" if k in c else "—")
            for k in ("train", "predict", "eval")
        )
        if "error" in m:
            t.add(row.label, "", "", "", f"failed: {m['error']}", "", "", cli)
            continue
        hw = m.get("input_hw", ["?", "?"])
        step_s = r.get("train_step_s") or m.get("s_per_step")
        rss = max(m.get("process_peak_rss_mib", 0), c.get("train", {}).get("peak_rss_mib", 0)) / 1024
        t.add(
            row.label,
            f"{m.get('cameras')} x {hw[0]} x {hw[1]}, {m.get('batch_size')}",
            f"{m.get('parameters', 0) / 1e6:.1f} M",
            f"{m.get('gflop_per_step', 0):.0f}",
            "—" if step_s is None else f"{step_s:.1f}",
            _gib(rss),
            _gib(m.get("tensor_peak_gib_at_preset_batch", m.get("tensor_peak_gib")))
            + f" (batch {m.get('preset_batch_size')})",
            cli,
        )
    return t.text()


def check_options(args: argparse.Namespace) -> str | None:
    """The first bad option as one line (None: all fine), before any work; and ``--out`` must be new,
    empty, or this script's own earlier folder (which it continues): a folder of the user's is
    never written into."""
    from occkit.output_folders import check_output_folder
    from occkit.outputs import mark_output

    for name in ("image_size", "kitti_size"):
        h, w = getattr(args, name)
        if h < 1 or w < 1:
            return f"--{name.replace('_', '-')} {h} {w}: expected a height and a width of at least 1 pixel"
    for name in ("scenes", "frames", "workers", "threads"):
        if getattr(args, name) < 1:
            return f"--{name} {getattr(args, name)}: expected at least 1"
    if args.batch is not None and args.batch < 1:
        return f"--batch {args.batch}: expected at least 1"
    labels = [r.label for r in ROWS]
    unknown = [r for r in args.rows or [] if r not in labels and r not in [x.replace(" ", "_") for x in labels]]
    if unknown:
        return f"--rows {' '.join(unknown)}: not a row of the table (its rows: {', '.join(labels)})"
    if args.rows == []:
        return "--rows: no row given (its rows: " + ", ".join(labels) + "; leave --rows out for all)"

    def legacy(o: Path) -> bool:  # a folder of this script from before it left a record
        return (o / "stages").is_dir() and ((o / "rows").is_dir() or (o / "table.md").is_file())

    try:
        state = check_output_folder(args.out, "full_size", resume=True, legacy=legacy, overwrite_option=False)
    except (OSError, ValueError) as e:
        return str(e)
    if state in ("new", "empty"):
        mark_output(args.out, "full_size")
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--image-size", type=int, nargs=2, default=[900, 1600], metavar=("H", "W"))
    ap.add_argument("--kitti-size", type=int, nargs=2, default=[376, 1241], metavar=("H", "W"))
    ap.add_argument("--scenes", type=int, default=2, help="scenes of each world (the last 20%% are val; default 2)")
    ap.add_argument("--frames", type=int, default=3, help="frames per scene (default 3)")
    ap.add_argument("--workers", type=int, default=1, help="occkit synth's worker processes")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--steps",
        type=int,
        default=0,
        help="steps timed in the measuring process too (default 0: the CPU step time is occkit train's second step)",
    )
    ap.add_argument(
        "--batch",
        type=int,
        default=None,
        help="train and measure at this batch instead of the preset's (FLOPs "
        "and tensor memory are then projected to the preset's batch)",
    )
    ap.add_argument(
        "--rows", nargs="*", default=None, help="rows to run (default all): " + ", ".join(r.label for r in ROWS)
    )
    ap.add_argument("--redo", action="store_true", help="run the asked rows again even when finished")
    args = ap.parse_args(argv)
    bad = check_options(args)
    if bad:
        print(f"full_size: error: {bad}", file=sys.stderr)
        return 2
    rows = [r for r in ROWS if args.rows is None or r.label in args.rows or r.label.replace(" ", "_") in args.rows]
    opts = {
        "image_size": args.image_size,
        "kitti_size": args.kitti_size,
        "scenes": args.scenes,
        "frames": args.frames,
        "workers": args.workers,
        "threads": args.threads,
    }
    need = list(dict.fromkeys(s for r in rows for s in r.stages()))
    folders = build_stages(args.out / "stages", need, opts)
    (args.out / "rows").mkdir(parents=True, exist_ok=True)
    for row in rows:
        dest = args.out / "rows" / f"{row.label.replace(' ', '_')}.json"
        if dest.is_file() and not args.redo:
            continue
        print(f"{row.label}: occkit train / predict / eval ...", flush=True)
        cli = cli_rehearsal(row, folders, args.out, args.threads, args.batch)
        print(f"{row.label}: " + ", ".join(f"{k} rc {v['rc']} {v['wall_s']} s" for k, v in cli.items()), flush=True)
        print(f"{row.label}: measuring the step ...", flush=True)
        m = measure_in_process(row, folders, args.out, args.threads, args.steps, args.batch)
        m.update(project_to_preset_batch(m, row.preset))
        print(
            f"{row.label}: "
            + json.dumps(
                {
                    k: m.get(k)
                    for k in (
                        "parameters",
                        "gflop_per_step",
                        "s_per_step",
                        "tensor_peak_gib",
                        "process_peak_rss_mib",
                        "error",
                    )
                }
            ),
            flush=True,
        )
        rec = {
            "row": row.label,
            "preset": row.preset,
            "sets": list(row.sets),
            "cli": cli,
            "measure": m,
            "train_step_s": train_step_seconds(args.out / "runs" / row.label.replace(" ", "_")),
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "date": time.strftime("%Y-%m-%d %H:%M %Z"),
            "commit": subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
            ).stdout.strip(),
            "loadavg": os.getloadavg(),
        }
        tmp = dest.with_suffix(".tmp")
        tmp.write_text(json.dumps(rec, indent=1))
        tmp.replace(dest)
    text = table(args.out)
    from occkit.fileio import write_text_atomic

    write_text_atomic(args.out / "table.md", text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
