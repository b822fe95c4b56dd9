"""A tiny method and dataset for engine tests (the engine must not depend on a real model)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from occkit.data.sample import Batch, Sample

GRID = (4, 4, 2)
C = 18


class ToyFrames(torch.utils.data.Dataset):
    """``n`` frames: one 8x8 camera whose colour encodes the frame's occupancy pattern (3 kinds),
    plus random noise (exercises seeded augmentation)."""

    def __init__(self, n: int = 12, noise: float = 0.05) -> None:
        self.n, self.noise = n, noise

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Sample:
        kind = i % 3
        img = torch.zeros(1, 3, 8, 8)
        img[0, kind] = 1.0
        img = img + self.noise * torch.rand(1, 3, 8, 8)  # "augmentation"
        g = torch.Generator().manual_seed(kind)
        occ = torch.randint(0, C, GRID, generator=g)
        mask = torch.ones(GRID, dtype=torch.bool)
        return Sample(
            token=f"t{i:03d}",
            scene=f"s{i // 4}",
            timestamp=i,
            cam_names=("CAM_FRONT",),
            images=img,
            intrinsics=torch.eye(3)[None],
            T_ego_from_cam=torch.eye(4)[None],
            T_global_from_ego=torch.eye(4, dtype=torch.float64),
            occupancy=occ,
            mask_camera=mask,
            mask_lidar=mask,
        )


class ToyMethod(nn.Module):
    """Conv -> pooled features -> (dropout) -> linear -> logits ``(B, C, 4, 4, 2)``."""

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(8, C * GRID[0] * GRID[1] * GRID[2])

    def predict(self, batch: Batch) -> torch.Tensor:
        B, N = batch.images.shape[:2]
        f = self.conv(batch.images.flatten(0, 1)).relu().mean((2, 3))  # (B*N, 8)
        f = f.view(B, N, -1).mean(1)  # (B, 8)
        return self.fc(self.drop(f)).view(B, C, *GRID)

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        logits = self.predict(batch)
        return {
            "ce": F.cross_entropy(logits, batch.occupancy),
            "l2": 1e-4 * self.fc.weight.square().sum(),
        }
