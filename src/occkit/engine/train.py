"""The training loop: explicit and short (nanoGPT's ``train.py`` is the model).

One step (:func:`_optimisation_step`): take this rank's next batch, move it to the device, seed
the step's RNGs, call the method's ``training_step`` (under autocast on CUDA) for a dict of named
losses, back-propagate their sum, clip the gradient norm, step AdamW and the warm-up + cosine
schedule, update the EMA. Around it (:func:`_after_step`): logging (tqdm, TensorBoard,
``train.jsonl``; :func:`_log_step`), validation (``metrics.jsonl``; :func:`_validate_and_log`) and
checkpoints (:func:`_save`), written from rank 0 only. Before the first step, :func:`_start` builds
the optimiser and the rest, or loads them from the checkpoint a resume continues. Three objects
carry what these share: :class:`_Run` (fixed for the call), :class:`_Stepper` (what a step works
on) and :class:`_Loop` (what changes from step to step). The engine knows nothing of a method's
insides, nor which methods there are: it takes a built method and its resolved config (the
composition root, :func:`occkit.experiment.prepare_run`, makes both).

Multi-process: launch with ``torchrun --nproc_per_node N -m occkit train CONFIG --data DIR --out RUN``
(``python -m occkit``, the ``occkit`` command line, in each process); each process takes ``data.batch_size``
frames per step, so the global batch is ``N * data.batch_size``.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset
from tqdm import tqdm

from occkit.config import to_dict
from occkit.data.sample import Batch
from occkit.engine.checkpoint import (
    MODEL_FILE,
    latest_checkpoint,
    load_config_dict,
    load_trainer_state,
    load_weights,
    remove_partial_checkpoints,
    save_checkpoint,
    weights_file,
)
from occkit.engine.config import TrainConfig
from occkit.engine.data import eval_batches, seed_everything, spread_indices, step_seed, train_batches
from occkit.engine.distributed import (
    DistInfo,
    all_reduce_mean,
    any_process,
    cleanup_distributed,
    init_distributed,
    is_distributed,
    max_over_processes,
)
from occkit.engine.evaluate import autocast, resolve_amp, score_frames
from occkit.engine.init_from import init_from, init_record, report_lines
from occkit.engine.logging import RunLogger, validation_summary
from occkit.engine.optim import EMA, build_optimizer, build_scheduler, optimiser_step
from occkit.fileio import write_json_atomic

INIT_RECORD = "init_from.json"
"""Where a run started from another's weights records the source and what loaded (in the run folder)."""


class TrainingStep(nn.Module):
    """Presents ``method.training_step`` as ``forward`` so that DDP's gradient hooks run."""

    def __init__(self, method: nn.Module) -> None:
        super().__init__()
        self.method = method

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        return self.method.training_step(batch)


@dataclass
class TrainResult:
    """What :func:`train` returns (on every rank; ``losses`` and ``validations`` from this rank)."""

    step: int
    """Optimiser steps taken in total (including those before a resume)."""
    losses: list[tuple[int, float]] = field(default_factory=list)
    """(step, this rank's total loss) for each step run in this call."""
    validations: list[dict[str, Any]] = field(default_factory=list)
    """The validation records written to ``metrics.jsonl`` in this call."""
    checkpoint: Path | None = None
    """The last checkpoint written."""
    train_seconds: float = 0.0
    """Seconds spent in training steps (validation and checkpoints excluded), all calls."""


def train(
    cfg: Any,
    run_dir: str | os.PathLike,
    train_set: Dataset,
    val_set: Dataset | None = None,
    method: nn.Module | None = None,
    resume: bool = False,
    stop_at: int | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train ``method`` for ``cfg.optim.max_steps`` steps.

    Args:
        cfg: the run's resolved experiment config (saved with every checkpoint): it reads
            ``optim``, ``train``, ``data`` (batch sizes, workers) and ``model.num_classes``.
        run_dir: where checkpoints, logs and metrics go.
        train_set, val_set: datasets of :class:`~occkit.data.sample.Sample` (val with ground truth).
        method: the built method (:func:`occkit.experiment.prepare_run` builds it from ``cfg``
            after seeding every RNG with ``train.seed``); required.
        resume: continue from the newest complete checkpoint in ``run_dir`` (exactly: same data
            order, RNG streams, optimiser and schedule); start fresh when there is none. Without
            it, a ``run_dir`` that already holds checkpoints is refused (``FileExistsError``): a
            fresh run there would overwrite them and mix its logs with theirs. Either way, the
            half-written checkpoint folders a crash left are removed first, a checkpoint whose
            files fail their checksum or hold NaN / infinity is refused before any step, and the
            records of ``train.jsonl`` / ``metrics.jsonl`` (and TensorBoard's events) past the
            step the run starts from are dropped, so the redone steps are not logged twice.
            ``cfg.train.init_from`` applies to a run that starts at step 0 (a fresh one, or a
            resume that finds no checkpoint): the source's matching weights are loaded on every
            rank before the EMA copy, the optimiser and the DDP wrapper are made
            (:mod:`occkit.engine.init_from`; rank 0 prints what loaded and writes
            ``RUN/init_from.json``). A resume from the run's own checkpoint neither applies nor
            re-checks it.
        stop_at: stop after this step as if interrupted (the schedule still spans max_steps).
        progress: show a progress bar (rank 0).
    """
    owns_group = not is_distributed()
    info, device = init_distributed(cfg.train.device)
    try:
        return _train(
            cfg,
            Path(run_dir),
            info,
            device,
            train_set,
            val_set,
            method,
            resume,
            stop_at,
            progress,
        )
    finally:
        if owns_group:
            cleanup_distributed()


@dataclass
class _Run:
    """What stays fixed through one call of :func:`train`."""

    cfg: Any
    cfg_dict: dict[str, Any]
    """``cfg`` as saved with every checkpoint (``config.json``)."""
    run_dir: Path
    info: DistInfo
    device: torch.device
    val_set: Dataset | None
    progress: bool


@dataclass
class _Stepper:
    """What one optimisation step works on: the method, the module the step calls (the method's
    ``training_step`` as ``forward``, under DDP when distributed), the optimiser, its schedule,
    the fp16 loss scaler (None unless fp16 on CUDA), the EMA copy (None without ``optim.ema``)
    and the mixed precision in use (:func:`occkit.engine.evaluate.resolve_amp`)."""

    method: nn.Module
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler | None
    ema: EMA | None
    amp: str


@dataclass
class _Loop:
    """What the loop carries from step to step."""

    step: int
    """Optimiser steps taken (including those before a resume)."""
    train_seconds: float
    """Seconds spent in training steps, all calls."""
    end: int
    """The step this call stops after (``optim.max_steps``, or ``stop_at`` when earlier)."""
    bar: Any
    """The progress bar (tqdm; disabled off rank 0 and without ``progress``)."""
    logger: RunLogger | None
    """Rank 0's logs; None on the other ranks."""
    result: TrainResult = field(init=False)
    """What :func:`train` returns: its losses, validations and last checkpoint grow as the loop runs."""
    last_val_seconds: float = field(init=False)
    """``train_seconds`` at the last validation (``train.val_every_minutes``)."""
    log_step0: int = field(init=False)
    log_t0: float = field(default_factory=time.perf_counter)
    """The step and the time of the last log (the logged ``steps_per_s``)."""
    wall0: float = field(default_factory=time.perf_counter)
    """When this call's loop began (the validation records' ``wall_minutes``)."""
    pending: list[tuple[int, torch.Tensor, dict[str, torch.Tensor], Any]] = field(default_factory=list)
    """(step, loss, named losses, frames) not yet read back from the device (:func:`_flush_losses`)."""

    def __post_init__(self) -> None:
        self.result = TrainResult(step=self.step, train_seconds=self.train_seconds)
        self.last_val_seconds, self.log_step0 = self.train_seconds, self.step


def _train(
    cfg: Any,
    run_dir: Path,
    info: DistInfo,
    device: torch.device,
    train_set: Dataset,
    val_set: Dataset | None,
    method: nn.Module | None,
    resume: bool,
    stop_at: int | None,
    progress: bool,
) -> TrainResult:
    oc, tc = cfg.optim, cfg.train
    _check_arguments(cfg, device, method)
    seed_everything(tc.seed)
    method.to(device)
    run = _Run(cfg, to_dict(cfg), run_dir, info, device, val_set, progress)
    stepper, step, train_seconds = _start(run, method, resume)
    batches = train_batches(
        train_set,
        cfg.data.batch_size,
        tc.seed,
        step,
        info.rank,
        info.world_size,
        cfg.data.workers,
        pin_memory=device.type == "cuda",
    )
    logger = RunLogger(run_dir, tensorboard=tc.tensorboard, start_step=step) if info.is_main else None
    if info.is_main:
        write_json_atomic(run_dir / "config.json", run.cfg_dict)
    bar = tqdm(
        total=oc.max_steps if oc.schedule == "steps" else None,
        initial=step,
        desc="train",
        unit="step",
        dynamic_ncols=True,
        disable=not (progress and info.is_main),
    )
    end = oc.max_steps if stop_at is None else min(oc.max_steps, stop_at)
    loop = _Loop(step, train_seconds, end, bar, logger)
    method.train()
    try:
        while loop.step < end:
            losses, grad_norm = _optimisation_step(run, stepper, loop, batches)
            bar.update(1)
            if _after_step(run, stepper, loop, losses, grad_norm):
                break
    finally:
        bar.close()
        if logger is not None:
            logger.close()
    loop.result.step, loop.result.train_seconds = loop.step, loop.train_seconds
    return loop.result


def _check_arguments(cfg: Any, device: torch.device, method: nn.Module | None) -> None:
    """Refuse what no step could run with (before anything is written); apply ``train.threads``."""
    oc, tc = cfg.optim, cfg.train
    if oc.schedule == "time" and tc.max_minutes <= 0:
        raise ValueError("optim.schedule='time' needs a time budget: set train.max_minutes > 0")
    if tc.init_from is not None and not str(tc.init_from).strip():
        raise ValueError(
            "train.init_from: empty; give a run folder, a checkpoint folder or a weights file (or leave it unset)"
        )
    if tc.threads > 0 and device.type == "cpu":
        torch.set_num_threads(tc.threads)
    if method is None:
        raise TypeError("train(): pass the built method (occkit.experiment.prepare_run builds it from the config)")


def _start(run: _Run, method: nn.Module, resume: bool) -> tuple[_Stepper, int, float]:
    """The step's objects at the step the run starts from, and that (step, train_seconds): a fresh
    run's (after ``train.init_from``'s weights, when set) or the newest checkpoint's on ``resume``.
    The DDP wrapper comes last, around the loaded weights."""
    info, tc = run.info, run.cfg.train
    ckpt = _checkpoint_to_resume(run.run_dir, resume, info)
    if tc.init_from and ckpt is None:  # every rank loads, before the EMA copy and the DDP wrapper
        _init_from(method, tc, run.cfg_dict, run.run_dir, info)
    elif tc.init_from and info.is_main:
        print(f"train.init_from: not applied again on resume ({ckpt} holds the weights)", file=sys.stderr)
    stepper = _build_stepper(run.cfg, method, run.device)
    step, train_seconds = 0, 0.0
    if ckpt is not None:
        step, train_seconds = _resume_from(ckpt, stepper, run)
    elif resume and info.is_main:
        print(f"--resume: no checkpoint under {run.run_dir / 'checkpoints'}; starting from step 0", file=sys.stderr)
    if info.enabled:
        stepper.model = DistributedDataParallel(
            stepper.model,
            device_ids=[run.device.index] if run.device.type == "cuda" else None,
            find_unused_parameters=_ddp_find_unused(method, tc.find_unused_parameters),
        )
    return stepper, step, train_seconds


def _checkpoint_to_resume(run_dir: Path, resume: bool, info: DistInfo) -> Path | None:
    """The newest complete checkpoint to resume from (None: start at step 0), once rank 0 has removed
    the half-written ones a crash left; without ``resume``, a run folder holding checkpoints is refused."""
    if info.is_main:
        for partial in remove_partial_checkpoints(run_dir):
            print(f"removed {partial}: a checkpoint left half-written by an earlier crash", file=sys.stderr)
    if not resume and (earlier := latest_checkpoint(run_dir)) is not None:
        raise FileExistsError(
            f"{run_dir} holds checkpoints of an earlier run (newest: {earlier.name}): resume it (--resume), "
            "or train into another folder"
        )
    return latest_checkpoint(run_dir) if resume else None


def _build_stepper(cfg: Any, method: nn.Module, device: torch.device) -> _Stepper:
    """The EMA copy, AdamW, the warm-up + cosine schedule and the loss scaler of a run at step 0."""
    oc = cfg.optim
    ema = EMA(method, oc.ema_decay) if oc.ema else None
    optimizer = build_optimizer(method, oc.lr, oc.weight_decay, tuple(oc.betas), lr_mult=oc.lr_mult)
    scheduler = build_scheduler(optimizer, oc.warmup_steps, oc.max_steps, oc.min_lr_ratio)
    scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" and oc.amp == "fp16" else None
    amp = resolve_amp(device, oc.amp, oc.cpu_bf16)
    return _Stepper(method, TrainingStep(method), optimizer, scheduler, scaler, ema, amp)


def _resume_from(ckpt: Path, s: _Stepper, run: _Run) -> tuple[int, float]:
    """Load a checkpoint's weights (and EMA weights), optimiser, schedule and loss scaler; returns
    its (step, train_seconds)."""
    saved = load_config_dict(ckpt)
    _warn_config_change(saved, run.cfg_dict, ckpt, run.info)
    try:
        load_weights(s.method, ckpt / MODEL_FILE)
    except ValueError as e:
        _refuse_other_network(e, saved, run, ckpt)
    if s.ema is not None:
        load_weights(s.ema.module, weights_file(ckpt))
    state = load_trainer_state(ckpt)
    s.optimizer.load_state_dict(state["optimizer"])
    _load_schedule(s.scheduler, state["scheduler"], ckpt, run.info)
    if s.scaler is not None and state.get("scaler"):
        s.scaler.load_state_dict(state["scaler"])
    step, train_seconds = int(state["step"]), float(state.get("train_seconds", 0.0))
    if run.info.is_main:
        print(f"resuming from {ckpt} at step {step}", file=sys.stderr)
    return step, train_seconds


def _refuse_other_network(error: ValueError, saved: dict[str, Any], run: _Run, ckpt: Path) -> NoReturn:
    """Re-raise a checkpoint's weights that do not fit the method: when the configs' ``method`` or
    ``model.*`` differ (another preset's network), naming what differs, not only the tensors."""
    diff = [
        f"{k}: {a!r} -> {b!r}"
        for k, a, b in _differences(saved, run.cfg_dict)
        if k == "method" or k.startswith("model.")
    ]
    if not diff:
        raise error
    raise ValueError(
        f"--resume {run.run_dir}: its checkpoint {ckpt.name} is of another network than this run's config "
        f"({'; '.join(diff[:6])}{'; ...' if len(diff) > 6 else ''}): resume with the preset and --set the "
        "run was made with, or train into a new --out"
    ) from error


def _optimisation_step(
    run: _Run, s: _Stepper, loop: _Loop, batches: Any
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One step: this rank's next batch, the step's RNG seeds, the method's losses (under autocast),
    their sum back-propagated (scaled under fp16), the gradient norm clipped, the optimiser, the
    schedule and the EMA stepped; advances ``loop.step`` and ``loop.train_seconds``. Returns the
    named losses and the gradient norm (for the log)."""
    oc, tc, device = run.cfg.optim, run.cfg.train, run.device
    t0 = time.perf_counter()
    batch = next(batches).to(device, non_blocking=True)
    seed_everything(step_seed(tc.seed, run.info.rank, loop.step))
    with autocast(device, s.amp):
        losses = s.model(batch)
    loss = sum(losses.values())
    # The finiteness check and the loss read back wait for the device; on a GPU they are gathered
    # here and read at the next log, validation or checkpoint (one wait per log_every steps, not one
    # per step): a non-finite step is still named, before anything is written. On a CPU reading
    # costs nothing: every step.
    loop.pending.append((loop.step, loss.detach(), {k: v.detach() for k, v in losses.items()}, batch.tokens))
    if device.type != "cuda":
        _flush_losses(loop.pending, loop.result, loop.bar, s.scheduler)
    max_norm = oc.grad_clip if oc.grad_clip > 0 else math.inf
    grad_norm = optimiser_step(loss, s.optimizer, s.method.parameters(), max_norm, s.scaler)
    if oc.schedule == "time":  # the cosine follows the share of the time budget spent
        spent = loop.train_seconds + time.perf_counter() - t0
        s.scheduler.lr_lambdas[0].time_fraction = max_over_processes(spent, device) / (tc.max_minutes * 60)
    s.scheduler.step()
    if s.ema is not None:
        s.ema.update(s.method)
    loop.step += 1
    loop.train_seconds += time.perf_counter() - t0
    return losses, grad_norm


def _after_step(run: _Run, s: _Stepper, loop: _Loop, losses: dict[str, torch.Tensor], grad_norm: torch.Tensor) -> bool:
    """What follows the step just taken: the log (every ``train.log_every`` steps and at the end),
    validation and a checkpoint when due (:func:`_what_is_due`), the pending losses read back
    before any of them. Returns whether the run ends here."""
    finished, validating, saving = _what_is_due(run, loop)
    logging = loop.step % run.cfg.train.log_every == 0 or finished
    if logging or validating or saving:
        _flush_losses(loop.pending, loop.result, loop.bar, s.scheduler)
    if logging:
        _log_step(loop, losses, grad_norm, s.scheduler)
    if validating:
        _validate_and_log(run, s, loop)
    if saving and run.info.is_main:
        loop.result.checkpoint = _save(run, s, loop)
    return finished


def _what_is_due(run: _Run, loop: _Loop) -> tuple[bool, bool, bool]:
    """(finished, validating, saving) after the step just taken: the run ends at its last step or when
    its time is up on any rank; it validates at the end, every ``train.val_every`` steps and every
    ``train.val_every_minutes``; it saves at the end and every ``train.ckpt_every`` steps. Every rank
    calls it (the time checks are collective)."""
    tc, step = run.cfg.train, loop.step
    out_of_time, due_by_time = _time_checks(tc, loop, run.device)
    finished = step == loop.end or out_of_time
    validating = run.val_set is not None and (
        finished or (tc.val_every > 0 and step % tc.val_every == 0) or due_by_time
    )
    saving = finished or (tc.ckpt_every > 0 and step % tc.ckpt_every == 0)
    return finished, validating, saving


def _time_checks(tc: TrainConfig, loop: _Loop, device: torch.device) -> tuple[bool, bool]:
    """(out of time, validation due by time) on any rank; (False, False) with no time setting."""
    if not (tc.max_minutes > 0 or tc.val_every_minutes > 0):
        return False, False
    out_of_time = any_process(tc.max_minutes > 0 and loop.train_seconds >= tc.max_minutes * 60, device)
    since_val = loop.train_seconds - loop.last_val_seconds
    return out_of_time, any_process(tc.val_every_minutes > 0 and since_val >= tc.val_every_minutes * 60, device)


def _log_step(loop: _Loop, losses: dict[str, torch.Tensor], grad_norm: torch.Tensor, scheduler: Any) -> None:
    """The named losses and the gradient norm of the step just taken (averaged over the ranks: every
    rank calls it), their total, the learning rate and the steps per second since the last log, to
    TensorBoard and ``train.jsonl`` (rank 0)."""
    named = torch.stack([v.detach().float() for v in losses.values()] + [grad_norm.detach().float()])
    named = all_reduce_mean(named).tolist()
    record = {k: v for k, v in zip(list(losses) + ["grad_norm"], named)}
    record["loss"] = sum(named[:-1])
    record["lr"] = scheduler.get_last_lr()[0]
    record["steps_per_s"] = (loop.step - loop.log_step0) / max(1e-9, time.perf_counter() - loop.log_t0)
    loop.log_t0, loop.log_step0 = time.perf_counter(), loop.step
    if loop.logger is not None:
        loop.logger.scalars(loop.step, record, prefix="train/")
        loop.logger.jsonl("train.jsonl", {"step": loop.step, **record})


def _validate_and_log(run: _Run, s: _Stepper, loop: _Loop) -> None:
    """Validate the EMA weights (else the method's) on every rank; rank 0 writes the record to
    ``metrics.jsonl``, its headline figures to TensorBoard and one line under the bar."""
    record = _validate(run, s.method if s.ema is None else s.ema.module, s.amp, loop)
    loop.last_val_seconds = loop.train_seconds
    loop.result.validations.append(record)
    if loop.logger is not None:
        loop.logger.jsonl("metrics.jsonl", record)
        headline = {k: record[k] for k in ("miou", "geometry_iou", "rayiou") if k in record}
        loop.logger.scalars(loop.step, headline, prefix="val/")
        loop.bar.write(f"step {loop.step}: {validation_summary(record)}")


def _save(run: _Run, s: _Stepper, loop: _Loop) -> Path:
    """A checkpoint of the step just taken (rank 0 only): the weights, the EMA weights, the config
    and what a resume needs to go on exactly (optimiser, schedule, loss scaler, time spent)."""
    tc = run.cfg.train
    trainer_state = {
        "optimizer": s.optimizer.state_dict(),
        "scheduler": s.scheduler.state_dict(),
        "scaler": s.scaler.state_dict() if s.scaler is not None else {},
        "train_seconds": loop.train_seconds,
        "world_size": run.info.world_size,
        "seed": tc.seed,
    }
    ema = s.ema.module if s.ema is not None else None
    return save_checkpoint(run.run_dir, loop.step, s.method, run.cfg_dict, trainer_state, ema, tc.keep_checkpoints)


def _ddp_find_unused(method: nn.Module, configured: bool) -> bool:
    """``train.find_unused_parameters``, or the method's own ``ddp_find_unused_parameters``: a method
    whose steps leave some parameters out by design (occscene's stages) says so itself."""
    return configured or bool(getattr(method, "ddp_find_unused_parameters", False))


def _flush_losses(pending: list, result: TrainResult, bar: Any, scheduler: Any) -> None:
    """Read the pending steps' losses back from the device (one wait for all of them): append them
    to ``result.losses``; raise on the first step whose loss is not finite, naming its terms and frames."""
    if not pending:
        return
    values = torch.stack([loss.float() for _, loss, _, _ in pending]).tolist()
    for (step, _, losses, tokens), value in zip(pending, values):
        if not math.isfinite(value):
            pending.clear()
            named = {k: float(v) for k, v in losses.items()}
            raise FloatingPointError(f"step {step}: the loss is not finite: {named} (frames {tokens})")
        result.losses.append((step + 1, value))
    pending.clear()
    bar.set_postfix(loss=f"{values[-1]:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")


def _init_from(method: nn.Module, tc: TrainConfig, cfg_dict: dict[str, Any], run_dir: Path, info: DistInfo) -> None:
    """Load ``train.init_from``'s matching weights into ``method`` (:mod:`occkit.engine.init_from`);
    rank 0 prints the report and writes ``RUN/init_from.json``."""
    source, report = init_from(
        method, tc.init_from, cfg_dict["model"], tc.init_from_ema, allow_empty=tc.init_from_empty
    )
    if info.is_main:
        for line in report_lines(source, report):
            print(line, file=sys.stderr)
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(run_dir / INIT_RECORD, init_record(source, report))


def _validate(run: _Run, method: nn.Module, amp: str, loop: _Loop) -> dict[str, Any]:
    """Validate on this rank's share of the validation frames; every rank returns the all-reduced record."""
    cfg, info, device = run.cfg, run.info, run.device

    def shard() -> Any:  # a fresh pass over this rank's share of the validation frames
        return eval_batches(
            run.val_set,
            cfg.data.val_batch_size,
            info.rank,
            info.world_size,
            cfg.data.workers,
            cfg.train.val_max_frames,
            pin_memory=device.type == "cuda",
        )

    scores = score_frames(
        method,
        cfg,
        run.val_set,
        shard(),
        device,
        amp,
        metrics=cfg.train.val_metrics,
        progress=run.progress and info.is_main,
        distributed=info.enabled,
    )
    wall_minutes = (time.perf_counter() - loop.wall0) / 60
    # ``amp``: the precision the run trains and validates at (resolve_amp: float32 'none' on a CPU without native
    # bf16 even where the preset asks for bf16), so that runs compared side by side can be seen to differ in it
    record = {"step": loop.step, "train_minutes": loop.train_seconds / 60, "wall_minutes": wall_minutes, "amp": amp}
    record.update(scores)
    n_val = len(run.val_set)
    if 0 < cfg.train.val_max_frames < n_val:  # a subset (train.val_max_frames): occkit eval scores every frame
        record["val_frames"] = len(spread_indices(n_val, cfg.train.val_max_frames))
        record["val_frames_total"] = n_val
    if callable(getattr(method, "validation_figures", None)):
        record.update(method_figures(method, shard(), device, amp, distributed=info.enabled))
    return record


def method_figures(
    method: nn.Module, batches: Any, device: torch.device, amp: str, distributed: bool = False
) -> dict[str, float]:
    """The method's own validation figures (``validation_figures``, see :mod:`occkit.methods.base`):
    each ``sum / count`` over ``batches`` (and over the ranks when ``distributed``)."""
    from occkit.engine.evaluate import autocast

    totals: dict[str, list[float]] = {}
    was_training = method.training
    method.eval()
    try:
        with torch.no_grad(), autocast(device, amp):
            for batch in batches:
                for k, (total, count) in method.validation_figures(batch.to(device, non_blocking=True)).items():
                    acc = totals.setdefault(k, [0.0, 0.0])
                    acc[0] += float(total)
                    acc[1] += float(count)
    finally:
        method.train(was_training)
    if distributed:
        import torch.distributed as dist

        keys = sorted(totals)
        t = torch.tensor([totals[k][i] for k in keys for i in (0, 1)], dtype=torch.float64, device=device)
        dist.all_reduce(t)
        totals = {k: [float(t[2 * i]), float(t[2 * i + 1])] for i, k in enumerate(keys)}
    return {k: s / c for k, (s, c) in totals.items() if c > 0}


def _differences(a: Any, b: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, value in ``a``, value in ``b``) of every leaf where two configs differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            d
            for k in sorted(set(a) | set(b))
            for d in _differences(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else k)
        ]
    return [] if a == b else [(prefix, a, b)]


def _load_schedule(scheduler: Any, saved: dict[str, Any], ckpt: Path, info: DistInfo) -> None:
    """The checkpoint's schedule position (its step count) under the schedule this run's config
    gives: ``LambdaLR.load_state_dict`` would also bring back the saved warm-up, length and floor, so
    a run resumed with a longer ``optim.max_steps`` (training on past the old end) kept the old
    cosine and sat at its floor. A schedule that changed is said in one line."""
    lam = scheduler.lr_lambdas[0]
    now = {k: getattr(lam, k) for k in ("warmup_steps", "max_steps", "min_ratio")}
    scheduler.load_state_dict(saved)
    lam = scheduler.lr_lambdas[0]
    before = {k: getattr(lam, k) for k in now}
    for k, v in now.items():
        setattr(lam, k, v)
    if before == now:
        return
    step = scheduler.last_epoch
    # the optimiser's learning rates from the schedule now in force (LambdaLR sets them on each step)
    for group, base in zip(scheduler.optimizer.param_groups, scheduler.base_lrs):
        group["lr"] = base * lam(step)
    scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]
    if info.is_main:
        was = type(lam)(before["warmup_steps"], before["max_steps"], before["min_ratio"])(step)
        print(
            f"resuming from {ckpt}: the learning-rate schedule follows this run's config ("
            + ", ".join(f"{k} {before[k]} -> {now[k]}" for k in now if before[k] != now[k])
            + f"); at step {step} its factor goes from {was:.4g} to {lam(step):.4g}",
            file=sys.stderr,
        )


def _warn_config_change(saved: dict[str, Any], current: dict[str, Any], ckpt: Path, info: DistInfo) -> None:
    """Print the keys whose values differ between the checkpoint's config and this run's.

    Sections the checkpoint has and this run's config has not are not compared: a config.json
    written before methods registered themselves holds every method's section."""
    if not info.is_main:
        return
    diffs: list[str] = []
    saved = {k: v for k, v in saved.items() if k in current or not isinstance(v, dict)}

    def walk(a: Any, b: Any, prefix: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                walk(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else k)
        elif a != b:
            diffs.append(f"{prefix}: {a!r} -> {b!r}")

    walk(saved, current, "")
    if diffs:
        print(f"warning: the config differs from {ckpt / 'config.json'}: " + "; ".join(diffs), file=sys.stderr)


if __name__ == "__main__":  # the entry point of earlier versions: the command line sits above the engine
    sys.exit(
        "occkit.engine.train is no longer run as a module: run occkit train through python -m occkit, "
        f"as in: torchrun --nproc_per_node N -m occkit train {' '.join(sys.argv[1:]) or 'CONFIG --data DIR --out RUN'}"
    )
