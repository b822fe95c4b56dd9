"""Occupancy heads: per-voxel classifier (3D) and FlashOcc's channel-to-height (BEV)."""

from __future__ import annotations

import torch
from torch import nn


class VoxelHead(nn.Module):
    """Per-voxel MLP (two 1x1x1 convs): ``(B, C_in, X, Y, Z) -> (B, num_classes, X, Y, Z)``."""

    def __init__(self, in_channels: int, num_classes: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or in_channels
        self.body = nn.Sequential(
            nn.Conv3d(in_channels, hidden, 1),
            nn.Softplus(),
            nn.Conv3d(hidden, num_classes, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class BEVHead(nn.Module):
    """Channel-to-height: a 2D conv predicts ``num_classes * Z`` channels per BEV cell.

    ``(B, C_in, X, Y) -> (B, num_classes * Z, X, Y)``; :meth:`to_voxels` reshapes that to
    ``(B, num_classes, X, Y, Z)`` (channel index = class * Z + z).
    """

    def __init__(self, in_channels: int, num_classes: int, height: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or in_channels
        self.num_classes = num_classes
        self.height = height
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 3, padding=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, num_classes * height, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def to_voxels(self, y: torch.Tensor) -> torch.Tensor:
        """``(B, num_classes * Z, X, Y) -> (B, num_classes, X, Y, Z)``."""
        B, _, X, Y = y.shape
        return y.view(B, self.num_classes, self.height, X, Y).permute(0, 1, 3, 4, 2)
