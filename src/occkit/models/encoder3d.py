"""Encoders for the lifted volume (3D) or BEV map (2D): a small residual U-Net.

One class serves both: ``dims=3`` uses Conv3d/BatchNorm3d, ``dims=2`` Conv2d/BatchNorm2d.
Stage 0 keeps the resolution; every further stage halves it (stride 2); the decoder upsamples
each stage back, concatenates the skip and fuses with a 3x3 conv, so the output has the input's
resolution and ``widths[0]`` channels.

``fuse="split"`` computes that fusion without the upsampled and concatenated tensors: a 3x3 conv
of ``cat(skip, up(x))`` is the skip's slice of the kernel applied to the skip plus the other slice
applied to ``up(x)``, and a 3-tap conv of a nearest x2 upsampling is a stride-2 transposed conv
with 4 taps per axis, each the sum of the 3-tap weights that read the same coarse sample (fine
output ``2i`` reads coarse ``i - 1`` through tap -1 and ``i`` through taps 0 and +1; ``2i + 1``
reads ``i`` through taps -1 and 0 and ``i + 1`` through +1). Zero padding agrees on both sides,
so the values are the concatenation's up to float rounding, from the same parameters.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def _layers(dims: int) -> tuple[type[nn.Module], type[nn.Module]]:
    if dims == 2:
        return nn.Conv2d, nn.BatchNorm2d
    if dims == 3:
        return nn.Conv3d, nn.BatchNorm3d
    raise ValueError(f"encoder: dims must be 2 or 3, got {dims}")


class ResBlock(nn.Module):
    """Two 3x3(x3) conv-BN layers with a residual connection (1x1 projection when needed)."""

    def __init__(self, dims: int, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        Conv, Norm = _layers(dims)
        self.conv1 = Conv(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = Norm(out_ch)
        self.conv2 = Conv(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = Norm(out_ch)
        self.skip = (
            nn.Sequential(Conv(in_ch, out_ch, 1, stride=stride, bias=False), Norm(out_ch))
            if stride != 1 or in_ch != out_ch
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.skip(x), inplace=True)


class UNetEncoder(nn.Module):
    """Residual U-Net over ``(B, C, X, Y[, Z])``.

    Args:
        dims: 2 (BEV) or 3 (voxels).
        in_channels: channels of the input.
        widths: channels per stage; stage ``i > 0`` runs at ``1 / 2**i`` resolution.
        blocks: residual blocks per stage (>= 1).
    """

    def __init__(
        self, dims: int, in_channels: int, widths: tuple[int, ...], blocks: int = 1, fuse: str = "concat"
    ) -> None:
        super().__init__()
        Conv, Norm = _layers(dims)
        if not widths or blocks < 1:
            raise ValueError(f"UNetEncoder: need >= 1 width and >= 1 block, got {widths}, {blocks}")
        if fuse not in ("concat", "split"):
            raise ValueError(f"encoder_fuse: expected 'concat' or 'split', got {fuse!r}")
        self.dims = dims
        self.fuse_mode = fuse
        if fuse == "split":
            # rows: the transposed conv's taps 0..3; columns: the 3x3 conv's taps -1, 0, +1 (module docstring)
            taps = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
            self.register_buffer("up_taps", taps, persistent=False)
        self.out_channels = widths[0]
        stages = []
        prev = in_channels
        for i, w in enumerate(widths):
            layers = [ResBlock(dims, prev, w, stride=1 if i == 0 else 2)]
            layers += [ResBlock(dims, w, w) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*layers))
            prev = w
        self.stages = nn.ModuleList(stages)
        self.fuse = nn.ModuleList(
            nn.Sequential(
                Conv(widths[i] + widths[i + 1], widths[i], 3, padding=1, bias=False),
                Norm(widths[i]),
                nn.ReLU(inplace=True),
            )
            for i in range(len(widths) - 1)
        )

    def forward(
        self, x: torch.Tensor, bottleneck: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> torch.Tensor:
        """``(B, C_in, *S)`` -> ``(B, widths[0], *S)``.

        ``bottleneck``, when given, maps the deepest stage's output ``(B, widths[-1], *S / 2**k)``
        to a tensor of the same shape before the decoder reads it (e.g. MonoScene's 3D context
        prior, :class:`occkit.models.context_prior.ContextPrior3D`)."""
        if x.dim() != self.dims + 2:
            raise ValueError(f"UNetEncoder: expected a {self.dims + 2}-D input, got shape {tuple(x.shape)}")
        w = next(self.parameters())
        if x.dtype != w.dtype and x.is_floating_point() and not torch.is_autocast_enabled(x.device.type):
            x = x.to(w.dtype)  # .half() / .bfloat16() weights: the lift sums its volume in float32
        skips = []
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        x = skips[-1] if bottleneck is None else bottleneck(skips[-1])
        for i in range(len(skips) - 2, -1, -1):
            if self.fuse_mode == "split" and all(s == 2 * c for s, c in zip(skips[i].shape[2:], x.shape[2:])):
                x = self._fuse_split(i, skips[i], x)
                continue
            up = F.interpolate(x, size=skips[i].shape[2:], mode="nearest")
            cat = torch.cat([skips[i], up], 1)
            if self.dims == 3 and skips[i].is_contiguous(memory_format=torch.channels_last_3d):
                cat = cat.contiguous(memory_format=torch.channels_last_3d)  # cat drops the layout
            x = self.fuse[i](cat)
        return x

    def _fuse_split(self, i: int, skip: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``self.fuse[i](cat(skip, up2(x)))`` without the upsampling and the concatenation (module
        docstring); ``skip`` has exactly twice ``x``'s size on every axis."""
        conv, rest = self.fuse[i][0], self.fuse[i][1:]
        w = conv.weight  # (out, C_skip + C_x, 3, 3[, 3])
        cs = skip.shape[1]
        with torch.autocast(device_type=w.device.type, enabled=False):
            m = self.up_taps.to(torch.float32)
            if self.dims == 3:
                wt = torch.einsum("oiabc,ka,lb,mc->ioklm", w[:, cs:].float(), m, m, m)
            else:
                wt = torch.einsum("oiab,ka,lb->iokl", w[:, cs:].float(), m, m)
            wt = wt.to(w.dtype)  # (C_x, out, 4, 4[, 4]): a transposed conv's weight
        conv_t = F.conv_transpose3d if self.dims == 3 else F.conv_transpose2d
        conv_n = F.conv3d if self.dims == 3 else F.conv2d
        y = conv_n(skip, w[:, :cs], conv.bias, 1, 1) + conv_t(x, wt, None, 2, 1)  # a bias once (BatchNorm folded)
        return rest(y)
