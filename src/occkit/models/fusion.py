"""Multi-level feature fusion of CIGOcc (docs/methods.md §3): segmentation, appearance and depth
feature maps fused by a deformable convolution whose offsets come from the concatenated levels.

:class:`DeformableFusion` takes ``L`` feature maps (any channels, any strides), resizes them to
one target size (bilinear), concatenates them ``(B, sum C_l, h, w)``, predicts per-pixel
sampling offsets from that concatenation (a 3x3 conv, zero-initialised so training starts from
a plain convolution) and applies ``torchvision.ops.DeformConv2d`` to the concatenation, then
BatchNorm + ReLU. ``mode="concat"`` is the ablation: the same 3x3 convolution without offsets
(plain concatenation + conv). :class:`MultiScaleFusion` runs one fusion per output scale
("across scales": every level is resampled to every scale), giving the pyramid the sampling
lift reads.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from occkit.shapes import check_shape


class DeformableFusion(nn.Module):
    """Fuse ``L`` feature maps into one ``(B, out_channels, h, w)`` map.

    Args:
        in_channels: channels of each level.
        out_channels: channels of the fused map.
        mode: 'deformable' (offsets from the concatenated levels, DeformConv2d) or 'concat'
            (the same 3x3 conv with no offsets).
        kernel_size: of the (deformable) convolution (odd).
    """

    def __init__(
        self,
        in_channels: list[int],
        out_channels: int,
        mode: Literal["deformable", "concat"] = "deformable",
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        if mode not in ("deformable", "concat"):
            raise ValueError(f"DeformableFusion: mode must be 'deformable' or 'concat', got {mode!r}")
        if not in_channels or kernel_size % 2 == 0:
            raise ValueError(f"DeformableFusion: need >= 1 level and an odd kernel, got {in_channels}, {kernel_size}")
        self.mode, self.in_channels, self.k = mode, list(in_channels), kernel_size
        c_in = sum(in_channels)
        pad = kernel_size // 2
        if mode == "deformable":
            self.offset = nn.Conv2d(c_in, 2 * kernel_size * kernel_size, kernel_size, padding=pad)
            nn.init.zeros_(self.offset.weight)
            nn.init.zeros_(self.offset.bias)
            from torchvision.ops import DeformConv2d  # here: torchvision.ops brings torch._dynamo (1 s at import)

            self.conv: nn.Module = DeformConv2d(c_in, out_channels, kernel_size, padding=pad, bias=False)
        else:
            self.offset = None
            self.conv = nn.Conv2d(c_in, out_channels, kernel_size, padding=pad, bias=False)
        self.norm = nn.BatchNorm2d(out_channels)

    def concat(self, levels: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """Levels ``(B, C_l, h_l, w_l)`` resized to ``size`` and concatenated: ``(B, sum C_l, h, w)``."""
        if len(levels) != len(self.in_channels):
            raise ValueError(f"DeformableFusion: expected {len(self.in_channels)} levels, got {len(levels)}")
        B = levels[0].shape[0]
        out = []
        for f, c in zip(levels, self.in_channels):
            check_shape(f, "B C h w", name="level", dims={"B": B, "C": c})
            out.append(
                f
                if tuple(f.shape[-2:]) == tuple(size)
                else F.interpolate(f, size=size, mode="bilinear", align_corners=False)
            )
        return torch.cat(out, 1)

    def forward(self, levels: list[torch.Tensor], size: tuple[int, int] | None = None) -> torch.Tensor:
        """``(B, out_channels, h, w)`` at ``size`` (default: the first level's)."""
        size = tuple(levels[0].shape[-2:]) if size is None else tuple(size)
        x = self.concat(levels, size)
        if self.offset is not None:
            offset = self.offset(x)
            # torchvision's deform_conv2d has no bf16 CPU kernel (and casts to float32 under CUDA
            # autocast itself): under autocast it runs in float32, as on CUDA
            with torch.autocast(x.device.type, enabled=False):
                y = self.conv(x.float(), offset.float())
        else:
            y = self.conv(x)
        return F.relu(self.norm(y))


class MultiScaleFusion(nn.Module):
    """One :class:`DeformableFusion` per output scale.

    Args:
        in_channels: channels of each input level; out_channels: of each fused map.
        scales: output strides relative to the image (e.g. ``(8, 16)``).
        mode: see :class:`DeformableFusion`.
    """

    def __init__(
        self,
        in_channels: list[int],
        out_channels: int,
        scales: tuple[int, ...],
        mode: Literal["deformable", "concat"] = "deformable",
    ) -> None:
        super().__init__()
        if not scales:
            raise ValueError("MultiScaleFusion: need >= 1 scale")
        self.scales = tuple(int(s) for s in scales)
        self.fusions = nn.ModuleList(DeformableFusion(in_channels, out_channels, mode) for _ in self.scales)

    def forward(self, levels: list[torch.Tensor], image_hw: tuple[int, int]) -> list[torch.Tensor]:
        """Fused maps ``(B, out_channels, ceil(H/s), ceil(W/s))``, one per scale."""
        H, W = image_hw
        return [f(levels, (-(-H // s), -(-W // s))) for f, s in zip(self.fusions, self.scales)]
