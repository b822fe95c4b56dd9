"""MonoScene's 3D context prior layer (CRP), for the bottleneck of a 3D U-Net.

On bottleneck features ``x`` of ``N = X*Y*Z`` voxels (MonoScene: 32x32x4 at 1/8 of the
256x256x32 grid):

1. ``x_agg`` = a 3D ASPP block (dilations 1, 2, 3, summed, residual);
2. supervoxel context: a stride-2 3x3x3 convolution of ``x_agg`` -> ``2C`` features per 2x2x2
   supervoxel (``M = N / 8``);
3. per relation ``r`` (``R`` of them): a 1x1x1 convolution of ``x_agg`` predicts, at every voxel,
   one logit per supervoxel: the relation matrix ``P_r`` ``(N, M)``, supervised by
   :func:`occkit.losses.monoscene.relation_loss` against
   :func:`occkit.losses.monoscene.relation_targets`;
4. relation context: ``sigmoid(P_r) @ context`` ``(N, 2C)`` for every ``r``, concatenated with
   ``x``, back to ``C`` channels by a 1x1x1 conv, BN, ReLU and a residual block.

Compute and memory grow with ``N * M = N^2 / 8``: 4 x 4096 x 512 logits (32 MiB float32) and
four ``(4096 x 512) @ (512 x 2C)`` products per frame at MonoScene's bottleneck.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from occkit.models.encoder3d import ResBlock


class ASPP3D(nn.Module):
    """Atrous spatial pyramid over 3D features: ``relu(x + sum_d branch_d(x))``, each branch
    conv3-BN-ReLU-conv3-BN with dilation ``d``; ``(B, C, X, Y, Z) -> (B, C, X, Y, Z)``."""

    def __init__(self, channels: int, dilations: tuple[int, ...] = (1, 2, 3)) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(
                nn.Conv3d(channels, channels, 3, padding=d, dilation=d, bias=False),
                nn.BatchNorm3d(channels),
                nn.ReLU(inplace=True),
                nn.Conv3d(channels, channels, 3, padding=d, dilation=d, bias=False),
                nn.BatchNorm3d(channels),
            )
            for d in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for b in self.branches:
            y = y + b(x)
        return F.relu(y)


class ContextPrior3D(nn.Module):
    """MonoScene's context relation prior on ``(B, C, X, Y, Z)`` bottleneck features (see the
    module docstring).

    Args:
        channels: ``C``.
        shape: ``(X, Y, Z)`` of the bottleneck, even on every axis (the number of supervoxels
            ``M`` is fixed by it: the relation logits are channels of a convolution).
        num_relations: ``R`` (MonoScene: 4).
    """

    def __init__(self, channels: int, shape: tuple[int, int, int], num_relations: int = 4) -> None:
        super().__init__()
        X, Y, Z = (int(s) for s in shape)
        if X % 2 or Y % 2 or Z % 2:
            raise ValueError(
                f"ContextPrior3D: the bottleneck {(X, Y, Z)} must be even on every axis (2x2x2 supervoxels)"
            )
        self.shape, self.num_relations = (X, Y, Z), int(num_relations)
        self.num_supervoxels = (X // 2) * (Y // 2) * (Z // 2)
        C, R, M = channels, self.num_relations, self.num_supervoxels
        self.aspp = ASPP3D(C)
        self.context = nn.Conv3d(C, 2 * C, 3, stride=2, padding=1)
        self.prior = nn.Conv3d(C, R * M, 1)  # the R relation convolutions as one
        self.resize = nn.Sequential(
            nn.Conv3d(C + R * 2 * C, C, 1, bias=False),
            nn.BatchNorm3d(C),
            nn.ReLU(inplace=True),
            ResBlock(3, C, C),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (B, C, X, Y, Z)`` -> features ``(B, C, X, Y, Z)`` and relation logits ``(B, R, N, M)``."""
        B, C = x.shape[:2]
        if tuple(x.shape[2:]) != self.shape:
            raise ValueError(f"ContextPrior3D: expected a {self.shape} bottleneck, got {tuple(x.shape[2:])}")
        N, M, R = x.shape[2] * x.shape[3] * x.shape[4], self.num_supervoxels, self.num_relations
        agg = self.aspp(x)
        ctx = self.context(agg).flatten(2).transpose(1, 2)  # (B, M, 2C)
        logits = self.prior(agg).view(B, R, M, N).transpose(2, 3)  # (B, R, N, M)
        rel = torch.einsum("brnm,bmc->bnrc", logits.sigmoid(), ctx).reshape(B, N, R * 2 * C)  # (B, N, R*2C)
        rel = rel.transpose(1, 2).reshape(B, R * 2 * C, *self.shape)  # (B, R*2C, X, Y, Z)
        return self.resize(torch.cat([x, rel], 1)), logits
