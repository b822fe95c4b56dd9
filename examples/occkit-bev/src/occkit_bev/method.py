"""The ``bev_plane`` recipe: camera occupancy through a bird's-eye-view plane.

The network is occkit's :class:`~occkit.models.occnet.OccNet` with ``model.head: bev``: the
cameras' features are lifted onto the BEV plane (the height axis collapsed), a 2D U-Net runs
there, and each BEV cell's ``num_classes x Z`` channels are read back as the column's voxel
logits (FlashOcc's channel-to-height). A training step:

- ``loss_ce``: class-weighted voxel cross-entropy on the 3D labels (inside the camera mask when
  ``use_camera_mask``), each class weighted by ``1 / log(offset + f_k)`` of the label frequencies
  seen so far (a running count saved with the weights);
- ``loss_column``: for each BEV column, binary cross-entropy between its predicted occupancy,
  the largest ``p(occupied) = 1 - p(free)`` over its heights, and whether any of its voxels is
  occupied (columns with at least one voxel inside the mask): what a BEV plane holds best.

Registered with occkit by ``METHOD`` below, which ``pyproject.toml`` names under the entry point
group ``occkit.methods``; occkit itself is not edited.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from occkit.data.sample import Batch
from occkit.losses.occupancy import class_weights_from_counts, voxel_cross_entropy
from occkit.losses.pseudo_labels import count_labels
from occkit.methods.registry import ExportSupport, MethodSpec
from occkit.models.occnet import OccNet, OccNetConfig, OccNetOutput, build_occnet


@dataclass
class BEVPlaneConfig:
    """Settings of the ``bev_plane`` method (the ``bev_plane:`` section of a preset)."""

    ce_weight: float = 1.0
    """Weight of the voxel cross-entropy."""
    column_weight: float = 1.0
    """Weight of the per-column occupancy term (0 = off)."""
    use_camera_mask: bool = True
    """Count only the voxels inside ``Batch.mask_camera``."""
    class_weight_offset: float = 1.05
    """``c`` of the class weights ``1 / log(c + f_k)`` (larger = flatter)."""
    free: int = 17
    """The free (empty) class."""


class BEVPlaneMethod(nn.Module):
    """OccNet with a BEV head + voxel and column losses; implements :class:`occkit.methods.base.Method`."""

    def __init__(self, model_cfg: OccNetConfig, cfg: BEVPlaneConfig) -> None:
        super().__init__()
        if model_cfg.head != "bev":
            raise ValueError(
                f"model.head: bev_plane lifts onto the BEV plane: set model.head=bev (got {model_cfg.head!r})"
            )
        if not 0 <= cfg.free < model_cfg.num_classes:
            raise ValueError(f"bev_plane.free {cfg.free} outside the model's {model_cfg.num_classes} classes")
        if cfg.ce_weight < 0 or cfg.column_weight < 0:
            raise ValueError("bev_plane.ce_weight and bev_plane.column_weight must be >= 0")
        self.model_cfg, self.cfg = model_cfg, cfg
        self.model: OccNet = build_occnet(model_cfg)
        self.register_buffer("label_counts", torch.zeros(model_cfg.num_classes, dtype=torch.float64))
        """Label voxels per class seen by ``training_step`` (the class weights' frequencies)."""

    def forward(self, batch: Batch) -> OccNetOutput:
        return self.model(batch.images, batch.intrinsics, batch.T_ego_from_cam)

    @torch.no_grad()
    def predict(self, batch: Batch) -> torch.Tensor:
        """Logits ``(B, num_classes, X, Y, Z)``."""
        return self.forward(batch).logits

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        c = self.cfg
        if batch.occupancy is None:
            raise ValueError("batch.occupancy is None: bev_plane trains on 3D labels")
        target = batch.occupancy.long()
        mask = None
        if c.use_camera_mask:
            if batch.mask_camera is None:
                raise ValueError("batch.mask_camera is None but bev_plane.use_camera_mask is true")
            mask = batch.mask_camera.bool()
        with torch.no_grad():
            self.label_counts += count_labels(target, mask, self.model_cfg.num_classes).to(self.label_counts)
        weight = class_weights_from_counts(self.label_counts, c.class_weight_offset).float().to(target.device)
        logits = self.forward(batch).logits  # (B, C, X, Y, Z)
        losses = {"loss_ce": c.ce_weight * voxel_cross_entropy(logits, target, mask, weight)}
        if c.column_weight > 0:
            p_occupied = 1 - logits.float().softmax(1)[:, c.free]  # (B, X, Y, Z)
            column_p = p_occupied.amax(-1).clamp(1e-6, 1 - 1e-6)  # (B, X, Y)
            solid = (target != c.free) & (target != 255)
            if mask is not None:
                solid = solid & mask
            occupied = solid.any(-1)  # (B, X, Y)
            seen = mask.any(-1) if mask is not None else torch.ones_like(occupied)
            bce = F.binary_cross_entropy(column_p, occupied.float(), reduction="none")
            losses["loss_column"] = c.column_weight * (bce * seen).sum() / seen.sum().clamp(min=1)
        return losses


METHOD = MethodSpec(
    name="bev_plane",
    summary="a BEV-plane baseline (occkit-bev): the cameras lifted onto the ground plane, heights read from channels",
    sections={"bev_plane": BEVPlaneConfig},
    build=lambda cfg, load_run: BEVPlaneMethod(cfg.model, cfg.bev_plane),
    export=ExportSupport(),
    presets=Path(__file__).parent / "presets",
)
