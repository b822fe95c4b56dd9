"""CIGOcc's multi-level fusion: shapes, gradients, zero offsets = a plain convolution."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from occkit.models.fusion import DeformableFusion, MultiScaleFusion


def levels(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(2, 4, 6, 10, generator=g),
        torch.randn(2, 3, 3, 5, generator=g),
        torch.randn(2, 5, 6, 10, generator=g),
    ]


def test_zero_offsets_equal_a_plain_convolution():
    fus = DeformableFusion([4, 3, 5], 7)
    x = fus.concat(levels(), (6, 10))
    assert x.shape == (2, 12, 6, 10)
    off = fus.offset(x)
    assert off.shape == (2, 18, 6, 10) and off.abs().max() == 0  # zero-initialised
    torch.testing.assert_close(fus.conv(x, off), F.conv2d(x, fus.conv.weight, padding=1), rtol=1e-5, atol=1e-5)
    # the concatenation arm with the same weights gives the same output at initialisation
    cat = DeformableFusion([4, 3, 5], 7, mode="concat")
    cat.conv.weight.data.copy_(fus.conv.weight.data)
    fus.eval(), cat.eval()
    torch.testing.assert_close(fus(levels()), cat(levels()), rtol=1e-5, atol=1e-5)


def test_shapes_and_gradients():
    fus = DeformableFusion([4, 3, 5], 7)
    with torch.no_grad():
        fus.offset.bias.normal_()  # non-zero offsets: sampling moves off the grid
    xs = [t.requires_grad_(True) for t in levels()]
    y = fus(xs, (12, 20))
    assert y.shape == (2, 7, 12, 20)
    y.square().mean().backward()
    assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in xs)
    assert fus.offset.weight.grad.abs().sum() > 0  # offsets learn from the concatenated levels
    ms = MultiScaleFusion([4, 3, 5], 8, (8, 16))
    outs = ms(levels(), (48, 80))
    assert [tuple(o.shape) for o in outs] == [(2, 8, 6, 5 * 2), (2, 8, 3, 5)]


def test_errors():
    with pytest.raises(ValueError, match="mode"):
        DeformableFusion([4], 4, mode="sum")
    with pytest.raises(ValueError, match="levels"):
        DeformableFusion([4, 3], 4)([torch.zeros(1, 4, 2, 2)])


def test_deformable_fusion_trains_under_cpu_bf16_autocast():
    # torchvision's deform_conv2d has no bf16 CPU kernel: under autocast the fusion runs it in float32,
    # so the cigocc presets can train under cpu_bf16 and give the float32 output to bf16's precision
    fus = DeformableFusion([4, 3, 5], 7)
    with torch.no_grad():
        fus.offset.bias.normal_(generator=torch.Generator().manual_seed(1))
    fus.eval()
    ref = fus(levels())
    xs = [t.bfloat16().requires_grad_(True) for t in levels()]  # what a bf16 backbone hands over
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = fus(xs)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, ref, rtol=0.05, atol=0.05)
    y.sum().backward()
    assert all(t.grad is not None and t.grad.dtype == torch.bfloat16 and torch.isfinite(t.grad).all() for t in xs)
