"""Occupancy heads: per-voxel classifier (3D) and FlashOcc's channel-to-height (BEV)."""

from __future__ import annotations

import torch
from torch import nn


class VoxelHead(nn.Module):
    """Per-voxel MLP (two 1x1x1 convs): ``(B, C_in, X, Y, Z) -> (B, num_classes, X, Y, Z)``.

    With ``subvoxels = (fx, fy, fz)`` each input voxel predicts the logits of its ``fx*fy*fz``
    children (channel-to-subvoxel, FlashOcc's channel-to-height in three axes):
    ``(B, C_in, X, Y, Z) -> (B, num_classes, fx*X, fy*Y, fz*Z)``. A coarse grid then places a
    one-voxel-thick surface (a road layer, a facade) at the fine resolution, which trilinear
    upsampling of coarse logits smears over two voxels.
    """

    def __init__(
        self, in_channels: int, num_classes: int, hidden: int | None = None, subvoxels: tuple[int, int, int] = (1, 1, 1)
    ) -> None:
        super().__init__()
        hidden = hidden or in_channels
        if len(subvoxels) != 3 or any(int(f) < 1 for f in subvoxels):
            raise ValueError(f"VoxelHead: subvoxels must be 3 positive integers, got {subvoxels}")
        self.num_classes = num_classes
        self.subvoxels = tuple(int(f) for f in subvoxels)
        fx, fy, fz = self.subvoxels
        self.body = nn.Sequential(
            nn.Conv3d(in_channels, hidden, 1),
            nn.Softplus(),
            nn.Conv3d(hidden, num_classes * fx * fy * fz, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fx, fy, fz = self.subvoxels
        if fx * fy * fz == 1:
            return self.body(x)
        # The last 1x1x1 conv as one matmul whose columns are ordered (i, j, k, class): its output
        # (voxel, child, class) moves to the fine grid in contiguous runs of fz * classes values,
        # and the logits come out channels-last (B, C, X', Y', Z' logically; the class innermost in
        # memory), the layout the losses gather the known voxels from. The weights keep the conv's
        # layout: channel = ((class * fx + i) * fy + j) * fz + k for child (i, j, k).
        h = self.body[1](self.body[0](x))
        conv = self.body[2]
        B, hid, X, Y, Z = h.shape
        C, n = self.num_classes, fx * fy * fz
        w = conv.weight.view(C, n, hid).transpose(0, 1).reshape(n * C, hid)  # rows (i, j, k, class)
        b = conv.bias.view(C, n).T.reshape(n * C)
        y = torch.addmm(b.to(h.dtype), h.movedim(1, -1).reshape(-1, hid), w.to(h.dtype).T)  # (B X Y Z, n C)
        y = y.view(B, X, Y, Z, fx, fy, fz, C).permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(B, X * fx, Y * fy, Z * fz, C)
        return y.permute(0, 4, 1, 2, 3)


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
