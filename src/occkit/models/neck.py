"""FPN-style neck: fuse backbone levels top-down into one map at the finest kept stride."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FPNNeck(nn.Module):
    """Lateral 1x1 convs, top-down nearest upsampling and addition, a 3x3 output conv.

    Args:
        in_channels: channels of each input level, finest first (strides increasing).
        out_channels: channels of the output map.
    """

    def __init__(self, in_channels: list[int], out_channels: int) -> None:
        super().__init__()
        if not in_channels:
            raise ValueError("FPNNeck: in_channels is empty")
        self.in_channels = list(in_channels)
        self.lateral = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
        self.out = nn.Sequential(
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """``feats``: ``(B, C_l, H_l, W_l)`` per level, finest first -> ``(B, C_out, H_0, W_0)``."""
        if len(feats) != len(self.lateral):
            raise ValueError(f"FPNNeck: expected {len(self.lateral)} levels, got {len(feats)}")
        x = self.lateral[-1](feats[-1])
        for lat, f in zip(reversed(self.lateral[:-1]), reversed(feats[:-1])):
            x = lat(f) + F.interpolate(x, size=f.shape[-2:], mode="nearest")
        return self.out(x)
