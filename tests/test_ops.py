"""occkit.ops: the vectorised softplus against PyTorch's, by value, at the extremes, by gradient."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from occkit.ops import Softplus, softplus


def test_softplus_equals_torchs_to_float32_rounding():
    torch.manual_seed(0)
    x = torch.randn(4096) * 8
    x[:8] = torch.tensor([-100.0, -30.0, -16.0, -1e-8, 0.0, 1e-8, 25.0, 100.0])
    ref, out = F.softplus(x), softplus(x)
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-40)  # e^-100 is a float32 subnormal
    # by hand: log 2 at 0, e^-30 far left (not rounded to 0), x far right
    assert out[4].item() == math.log(2.0) or abs(out[4].item() - math.log(2.0)) < 1e-7
    assert abs(out[1].item() - math.exp(-30.0)) / math.exp(-30.0) < 1e-6 and out[7].item() == 100.0
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    F.softplus(a).sum().backward()
    Softplus()(b).sum().backward()
    torch.testing.assert_close(b.grad, a.grad, rtol=1e-6, atol=1e-7)  # sigmoid(x)
    d = torch.randn(16, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(softplus, (d,))


def test_softplus_keeps_the_dtype_and_runs_under_autocast():
    x = (torch.randn(64) * 4).to(torch.bfloat16).requires_grad_()
    y = softplus(x)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), F.softplus(x.float()).to(torch.bfloat16).float())
    y.float().sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.bfloat16
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert softplus(torch.randn(8)).dtype == torch.float32
