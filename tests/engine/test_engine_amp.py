"""Which mixed precision a run uses: bf16/fp16 on CUDA, bf16 on CPU only when asked and native."""

import pytest
import torch

from occkit.engine import evaluate as ev
from occkit.engine.evaluate import autocast, resolve_amp

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_resolve_amp(monkeypatch):
    for amp in ("bf16", "fp16", "none"):
        assert resolve_amp(CUDA, amp) == amp
        assert resolve_amp(CUDA, amp, cpu_bf16=True) == amp
        assert resolve_amp(CPU, amp) == "none"  # CPU stays float32 unless cpu_bf16
    monkeypatch.setattr(ev, "cpu_has_native_bf16", lambda: True)
    assert resolve_amp(CPU, "bf16", cpu_bf16=True) == "bf16"
    assert resolve_amp(CPU, "fp16", cpu_bf16=True) == "bf16"  # CPU autocast is bf16 only
    assert resolve_amp(CPU, "none", cpu_bf16=True) == "none"
    monkeypatch.setattr(ev, "cpu_has_native_bf16", lambda: False)
    assert resolve_amp(CPU, "bf16", cpu_bf16=True) == "none"  # emulated bf16 would be slower
    with pytest.raises(ValueError, match="optim.amp"):
        resolve_amp(CPU, "fp8")
    assert isinstance(ev.cpu_has_native_bf16(), bool)


def test_cpu_autocast():
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    with autocast(CPU, "bf16"):
        assert (a @ b).dtype == torch.bfloat16
    with autocast(CPU, "none"):
        assert (a @ b).dtype == torch.float32
    with pytest.raises(ValueError, match="optim.amp"):
        autocast(CPU, "int8")
