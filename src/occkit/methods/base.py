"""The contract between a training recipe (a *method*) and the engine.

The engine knows nothing of a method's insides: it moves a :class:`~occkit.data.sample.Batch` to
the device, calls ``training_step`` and sums the returned named losses (each already weighted),
calls ``predict`` for validation, and saves ``state_dict()``. A method is an ``nn.Module`` that
owns its model (and teacher, priors, generator ... as later methods need).

Optional: ``validation_figures(batch) -> {name: (sum, count)}`` — figures of the method's own beyond
the occupancy metrics (a generator's reconstruction PSNR, its held-out denoising loss), summed over
a validation batch; the engine adds ``sum / count`` over the validation frames to each validation
record (``metrics.jsonl``), under no_grad and the run's autocast.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from occkit.data.sample import Batch


@runtime_checkable
class Method(Protocol):
    """What every recipe provides (implemented by ``nn.Module`` subclasses)."""

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Named scalar losses for one batch, weights applied; the engine back-propagates their sum."""

    def predict(self, batch: Batch) -> torch.Tensor:
        """Occupancy logits ``(B, C, X, Y, Z)`` for evaluation (argmax over C gives classes)."""
