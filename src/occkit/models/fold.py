"""BatchNorms folded into the convolutions before them, for inference.

In eval mode a BatchNorm after a convolution is an affine map per output channel,
``y = (x - mean) / sqrt(var + eps) * gamma + beta``; folded into the convolution (its weight scaled by
``s = gamma / sqrt(var + eps)`` per output channel, its bias ``(b - mean) * s + beta``) the network
computes the same values without reading and writing every normalised activation once more: on
occ3d-r50 the BatchNorms move about a fifth of an eager forward's bytes (``benchmarks/bench_breakdown.py``).
For inference only: the folded network has no running statistics left to train, and a frame-statistics
BatchNorm (:class:`occkit.models.norm.FrameBatchNorm2d` with ``frame_stats``) is left as it is, since it
normalises by each frame's own statistics.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
#: Containers whose forward runs their children in the order they were registered.
_ORDERED = ("Sequential", "FeatureListNet")
#: Blocks whose forward applies ``bn{k}`` directly to the output of ``conv{k}``: timm's ResNet blocks and
#: occkit's 3D / BEV encoder block (:class:`occkit.models.encoder3d.ResBlock`).
_PAIRED = ("Bottleneck", "BasicBlock", "ResBlock")


def _last_conv(m: nn.Module) -> nn.Module | None:
    """The convolution whose output ``m``'s output is (``m`` itself, or the last module of a Sequential)."""
    while isinstance(m, nn.Sequential) and len(m):
        m = m[-1]
    return m if type(m) in _CONVS else None


def _foldable(bn: nn.Module) -> bool:
    return (
        isinstance(bn, _BatchNorm)
        and bn.running_mean is not None
        and bn.running_var is not None
        and not getattr(bn, "frame_stats", False)
    )


@torch.no_grad()
def _fold(conv: nn.Module, bn: _BatchNorm) -> None:
    var, mean = bn.running_var.double(), bn.running_mean.double()
    s = torch.rsqrt(var + bn.eps)
    if bn.affine:
        s = s * bn.weight.double()
    b = conv.bias.double() if conv.bias is not None else torch.zeros_like(mean)
    shift = (b - mean) * s + (bn.bias.double() if bn.affine else 0.0)
    w = conv.weight
    w.mul_(s.to(w.dtype).view(-1, *([1] * (w.dim() - 1))))  # in place: the weight keeps its memory layout
    if conv.bias is None:
        conv.bias = nn.Parameter(shift.to(device=w.device, dtype=w.dtype), requires_grad=w.requires_grad)
    else:
        conv.bias.copy_(shift)


def fold_batchnorms(module: nn.Module) -> int:
    """Fold, in place, every BatchNorm that directly follows a convolution into it and put an
    ``nn.Identity`` in its place: in a Sequential (or timm's FeatureListNet) the next module after a
    convolution, in timm's ResNet blocks and occkit's ``ResBlock`` ``bn{k}`` after ``conv{k}``. Returns
    how many were folded. The module must be in eval mode (folding uses the running statistics); the
    outputs are the same up to float rounding (tests/models/test_models_fast_options.py)."""
    norms = [m for m in module.modules() if isinstance(m, _BatchNorm)]
    if any(m.training for m in norms):
        raise ValueError(
            "fold_batchnorms: the module is in training mode; call .eval() first (folding uses the running statistics)"
        )
    n = 0
    for parent in list(module.modules()):
        names = list(parent._modules)
        if type(parent).__name__ in _ORDERED:
            pairs = list(zip(names, names[1:]))
        elif type(parent).__name__ in _PAIRED:
            pairs = [(f"conv{k}", f"bn{k}") for k in range(1, 4) if f"conv{k}" in names and f"bn{k}" in names]
        else:
            continue
        for a, b in pairs:
            conv, bn = _last_conv(parent._modules[a]), parent._modules[b]
            if conv is None or not _foldable(bn) or conv.out_channels != bn.num_features:
                continue
            _fold(conv, bn)
            parent._modules[b] = nn.Identity()
            n += 1
    return n
