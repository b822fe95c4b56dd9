"""No host-device wait inside a training step where none is needed (issue 72): the engine reads
the losses back once per log, validation or checkpoint on a GPU; LangOcc's row gather and the
empty-mask cases of the losses stay on the device. Checked on the CPU by their values."""

from __future__ import annotations

import pytest
import torch

from occkit.engine.train import TrainResult, _flush_losses
from occkit.losses.occupancy import lovasz_softmax
from occkit.methods.langocc import take_rows


class Bar:
    def __init__(self) -> None:
        self.postfix: dict = {}

    def set_postfix(self, **kw) -> None:
        self.postfix = kw


class Sched:
    def get_last_lr(self) -> list[float]:
        return [1e-3]


def pending(values):
    return [(s, torch.tensor(v), {"loss_a": torch.tensor(v)}, [f"f{s}"]) for s, v in enumerate(values)]


def test_flush_reads_every_pending_step_and_names_the_first_non_finite_one():
    res, bar = TrainResult(step=0, train_seconds=0.0), Bar()
    p = pending([1.5, 0.25])
    _flush_losses(p, res, bar, Sched())
    assert res.losses == [(1, 1.5), (2, 0.25)] and p == [] and bar.postfix["loss"] == "0.2500"
    p = pending([1.0, float("nan"), float("inf")])
    named = r"step 1: the loss is not finite: \{'loss_a': nan\} \(frames \['f1'\]\)"
    with pytest.raises(FloatingPointError, match=named):
        _flush_losses(p, res, bar, Sched())
    assert res.losses[-1] == (1, 1.0) and p == []


def test_take_rows_is_the_concatenation_indexed_on_the_index_device():
    g = torch.Generator().manual_seed(0)
    parts = [torch.randn(5, 3, generator=g).half(), torch.randn(0, 3).half(), torch.randn(4, 3, generator=g).half()]
    index = torch.tensor([8, 0, 4, 5, 5, 7, 1])
    out = take_rows(parts, index)
    assert out.dtype == torch.float32 and out.device == index.device
    assert torch.equal(out, torch.cat(parts).float()[index])


def test_lovasz_with_no_class_present_is_zero_with_a_gradient_path():
    logits = torch.randn(1, 3, 2, 2, 2, requires_grad=True)
    target = torch.full((1, 2, 2, 2), 255)  # every voxel ignored
    loss = lovasz_softmax(logits, target, None, 255)
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
