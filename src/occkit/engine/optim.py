"""Optimiser, learning-rate schedule and weight EMA.

- AdamW with weight decay on matrices and convolution kernels only (biases, norms and other
  1-D parameters get none), as nanoGPT and timm do.
- Per-parameter learning-rate multipliers (``optim.lr_mult``: a name substring -> a factor), as
  mmcv's ``paramwise_cfg`` (``custom_keys``, ``dcn_offset_lr_mult``) and Deformable DETR's
  ``lr_linear_proj_mult`` (0.1 on the sampling offsets) do: under Adam a parameter moves about
  ``lr`` per step whatever its gradient's scale, so a layer whose output is a length (deformable
  offsets) needs its own, smaller rate.
- Linear warm-up from 0 to ``lr`` over ``warmup_steps``, then a cosine decay to
  ``lr * min_lr_ratio`` at ``max_steps``:
  ``factor(s) = (s + 1) / warmup`` for ``s < warmup``, else
  ``min + (1 - min) * (1 + cos(pi * p)) / 2`` with ``p = (s - warmup) / (max_steps - warmup)``.
  With a time budget instead (``optim.schedule = "time"``), ``p`` is the fraction of the budget
  spent, set by the loop before each step in ``time_fraction``: the decay then fits the budget
  whatever the machine's speed (at the price of a run that depends on timing).
- One optimisation step (:func:`optimiser_step`): back-propagate the loss (scaled under fp16),
  clip the gradient norm, step the optimiser (through the loss scaler), clear the gradients.
- EMA: ``ema = decay * ema + (1 - decay) * param`` after each step (buffers copied).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable

import torch


class WarmupCosine:
    """Multiplicative LR factor for ``torch.optim.lr_scheduler.LambdaLR`` (picklable state: 3 numbers)."""

    def __init__(self, warmup_steps: int, max_steps: int, min_ratio: float = 0.0) -> None:
        if warmup_steps < 0 or max_steps < 1:
            raise ValueError(f"optim: need warmup_steps >= 0 and max_steps >= 1, got {warmup_steps}, {max_steps}")
        if not 0.0 <= min_ratio <= 1.0:
            raise ValueError(f"optim.min_lr_ratio must be in [0, 1], got {min_ratio}")
        self.warmup_steps = int(warmup_steps)
        self.max_steps = int(max_steps)
        self.min_ratio = float(min_ratio)
        self.time_fraction: float | None = None  # set by the loop in time-budget mode

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.time_fraction is not None:
            p = min(1.0, max(0.0, self.time_fraction))
        else:
            p = min(1.0, (step - self.warmup_steps) / max(1, self.max_steps - self.warmup_steps))
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * p))


def build_optimizer(
    module: torch.nn.Module,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float] = (0.9, 0.999),
    fused: bool = False,
    lr_mult: dict[str, float] | None = None,
) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; decay only on parameters with 2 or more dimensions.

    ``lr_mult`` maps a substring of a parameter's name (``module.named_parameters()``, e.g.
    ``"offset"`` for ``net.fusion.fusions.0.offset.weight``) to a factor on ``lr`` (and on the
    schedule that follows it); where several keys match, the longest wins. The first two groups
    are always the factor-1 ones (decay, no decay; empty when every parameter has a factor), so
    ``param_groups[0]`` carries the run's ``lr`` and a run without ``lr_mult`` has the two groups
    it always had. A key that matches no trainable parameter, or a negative or non-finite factor,
    raises ``ValueError`` naming it.
    """
    mult = dict(lr_mult or {})
    for k, v in mult.items():
        if (
            not isinstance(k, str)
            or not k
            or isinstance(v, bool)
            or not isinstance(v, (int, float))
            or not math.isfinite(v)
            or v < 0
        ):
            raise ValueError(f"optim.lr_mult: {k!r}: expected a name substring and a factor >= 0, got {v!r}")
    keys = sorted(mult, key=len, reverse=True)
    groups_by: dict[tuple[float, bool], list[torch.nn.Parameter]] = {(1.0, True): [], (1.0, False): []}
    used: set[str] = set()
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        key = next((k for k in keys if k in name), None)
        if key is not None:
            used.add(key)
        groups_by.setdefault((float(mult[key]) if key else 1.0, p.ndim >= 2), []).append(p)
    if not any(groups_by.values()):
        raise ValueError("build_optimizer: the method has no trainable parameters")
    unused = sorted(set(mult) - used)
    if unused:
        raise ValueError(f"optim.lr_mult: no trainable parameter's name contains {', '.join(map(repr, unused))}")
    groups = [
        {"params": ps, "weight_decay": weight_decay if decay else 0.0, "lr": lr * f}
        for (f, decay), ps in groups_by.items()
        if ps or f == 1.0
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused or None)


def build_scheduler(
    optimizer: torch.optim.Optimizer, warmup_steps: int, max_steps: int, min_ratio: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """``LambdaLR`` with :class:`WarmupCosine`; call ``step()`` once after each optimiser step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(warmup_steps, max_steps, min_ratio))


def optimiser_step(
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    clip: Iterable[torch.nn.Parameter] | None = None,
    max_norm: float = math.inf,
    scaler: torch.amp.GradScaler | None = None,
) -> torch.Tensor | None:
    """Back-propagate ``loss`` (scaled by ``scaler`` when given), clip the gradient norm of the
    parameters ``clip`` at ``max_norm`` (none clipped when None), step ``optimizer`` (through the
    scaler) and clear its gradients. Returns the gradient norm before clipping (None without ``clip``)."""
    (scaler.scale(loss) if scaler is not None else loss).backward()
    if scaler is not None:
        scaler.unscale_(optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(clip, max_norm) if clip is not None else None
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm


class EMA:
    """Exponential moving average of a module's weights, kept in a frozen copy (``.module``)."""

    def __init__(self, module: torch.nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"optim.ema_decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.module = copy.deepcopy(module).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        """Blend ``module``'s current parameters in; copy its buffers (e.g. BatchNorm statistics)."""
        ema_params = [p for p in self.module.parameters()]
        params = [p.detach() for p in module.parameters()]
        floats = [(e, p) for e, p in zip(ema_params, params) if e.is_floating_point()]
        if floats:
            torch._foreach_lerp_([e for e, _ in floats], [p.to(e.dtype) for e, p in floats], 1.0 - self.decay)
        for e, b in zip(self.module.buffers(), module.buffers()):
            e.copy_(b)
