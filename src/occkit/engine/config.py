"""Settings of the engine: the optimiser (:class:`OptimConfig`) and the loop (:class:`TrainConfig`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class OptimConfig:
    """AdamW, linear warm-up then cosine decay, gradient clipping, mixed precision, EMA."""

    lr: float = 2e-4
    """Peak learning rate (after warm-up)."""
    weight_decay: float = 0.01
    """AdamW weight decay, applied to parameters with 2 or more dimensions only."""
    lr_mult: dict[str, float] = field(default_factory=dict)
    """Learning-rate factors by parameter name: a substring of the name -> a factor on ``lr`` (the
    longest matching key wins; a key matching nothing is an error). E.g. ``--set
    optim.lr_mult.offset=0.1``: cigocc's deformable offsets (``fusion.fusions.N.offset.*``) at a
    tenth of the rate, as Deformable DETR (its sampling offsets) and mmcv's ``dcn_offset_lr_mult`` do."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas."""
    warmup_steps: int = 200
    """Linear warm-up from 0 to ``lr`` over this many steps."""
    max_steps: int = 10000
    """Length of the run in optimiser steps; the cosine reaches ``lr * min_lr_ratio`` here."""
    schedule: Literal["steps", "time"] = "steps"
    """What the cosine follows: ``steps`` (``max_steps``; exactly resumable) or ``time`` (the
    fraction of ``train.max_minutes`` spent: fits a wall-clock budget on a machine of unknown or
    varying speed; the run then stops at the budget or at ``max_steps``, whichever comes first)."""
    min_lr_ratio: float = 0.05
    """Final learning rate as a fraction of ``lr``."""
    grad_clip: float = 35.0
    """Clip the global gradient norm to this value (0 = no clipping)."""
    amp: Literal["bf16", "fp16", "none"] = "bf16"
    """Mixed precision on CUDA: bf16 autocast, or fp16 autocast with a gradient scaler. On CPU
    float32 unless ``cpu_bf16``."""
    cpu_bf16: bool = False
    """On CPU, train and validate under bf16 autocast (unless ``amp`` is 'none') when the CPU
    computes bf16 natively (AVX512-BF16 / AMX, as oneDNN reports it); elsewhere float32. Losses,
    depth targets and the view transform's geometry stay float32 either way."""
    ema: bool = False
    """Keep an exponential moving average of the weights; validation and checkpoints use it."""
    ema_decay: float = 0.999
    """EMA decay per step."""


@dataclass
class TrainConfig:
    """The loop: seeding, device, when to log, validate and save."""

    seed: int = 0
    """Seeds the data order, augmentation and the per-step RNGs (dropout, ray sampling ...)."""
    device: str = "auto"
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    threads: int = 0
    """``torch.set_num_threads`` per process on CPU (0 = leave PyTorch's default)."""
    log_every: int = 10
    """Log the losses every this many steps."""
    val_every: int = 1000
    """Validate every this many steps (0 = only at the end)."""
    val_every_minutes: float = 0.0
    """Also validate when this many minutes of training passed since the last validation (0 = off)."""
    val_max_frames: int = 0
    """Validate on this many frames spread evenly over the val split (0 = all)."""
    val_metrics: tuple[str, ...] = ("miou",)
    """The metrics validation computes beyond the first metric's mIoU: any the data's format offers
    (``occkit eval --metrics`` takes the same names; Occ3D: ``miou``, ``rayiou``, which needs the LiDAR
    poses of the scenes' frames), counted by the scoring core as ``occkit eval`` counts them."""
    ckpt_every: int = 1000
    """Save a checkpoint every this many steps (and always at the end)."""
    keep_checkpoints: int = 3
    """Keep the newest this many checkpoints (0 = all)."""
    max_minutes: float = 0.0
    """Stop after this many minutes of training (validation excluded; 0 = no time limit)."""
    find_unused_parameters: bool = False
    """DDP: allow parameters that get no gradient in a step (slower). A method that needs it says so
    itself (an attribute ``ddp_find_unused_parameters``, e.g. occscene's stages); this forces it for all."""
    tensorboard: bool = True
    """Write TensorBoard logs under ``RUN/tb``."""
    init_from: str | None = None
    """Start from another run's weights: a run folder (its newest checkpoint), a checkpoint folder
    (``RUN/checkpoints/step_N``) or a ``.safetensors`` weights file (``occkit train --init-from``).
    Unlike ``--resume`` the optimiser, the schedule and the step start afresh at 0. Every tensor of
    this method's ``state_dict`` whose name and shape match one of the source's is loaded; the rest
    keep their initial values. The source's files are checked against its ``checksums.json`` and
    NaN is refused; a source whose ``model.point_range`` / ``model.voxel_size`` (output grid),
    ``model.num_classes`` or ``model.modality`` cannot fit this run's is refused (camera and lidar
    share no input path; fusion starts from either and seeds either). What was loaded, new, skipped
    for its shape and left unused is printed and written to ``RUN/init_from.json`` (with the
    weights file and its SHA-256). A resumed run (``--resume`` with a checkpoint of its own) does
    not apply it again and does not re-check the source: its checkpoint holds the weights."""
    init_from_empty: bool = False
    """Accept an ``init_from`` source that loads no tensor at all (no name and shape in common);
    by default that is refused before any step, naming the source: it is almost always the wrong run."""
    init_from_ema: bool = True
    """With ``init_from`` a run or checkpoint folder: take the source's EMA weights
    (``ema.safetensors``) when it has them, else its raw weights. A weights file named directly is
    used as named."""
