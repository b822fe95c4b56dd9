"""The ``easyocc`` recipe (EasyOcc / Easy3D-Labels, docs/methods.md §2): a light camera network
trained on 3D pseudo-labels from 2D priors alone.

The data is a pseudo-label dataset (``occkit pseudolabel --data DIR --priors PRIORS --out DIR2``,
:mod:`occkit.pseudolabel`): its ``labels.npz`` hold the voxelised prior points (densified over
past frames) and its ``mask_camera`` the voxels the points or the free-space carving observed. No
3D ground truth, no LiDAR and no depth map is read: train with ``--data DIR2`` and evaluate
against the real labels with ``occkit eval --gt DIR``.

The network is :class:`~occkit.models.occnet.OccNet` with the sampling lift (``model.lift:
sample``: image features bilinearly sampled at the projections of the voxel centres, averaged over
the cameras, no depth distribution), then the 3D encoder and the voxel head, as the paper's
figure. A training step:

- ``loss_ce``: class-balanced cross-entropy on the pseudo-labels, inside their mask
  (``use_camera_mask``). The class weights are ENet's log-inverse frequencies
  (``1 / log(c + f)``) of the pseudo-label counts: given (``class_counts``), or with
  ``class_balance: running`` counted over the training batches seen so far (a buffer saved with
  the weights, so a resumed run continues with the same counts): no pass over the dataset and no
  3D ground truth;
- ``loss_lovasz``: Lovász-softmax on the same voxels (docs/methods.md §2 [2nd]).

There is no depth term: the sampling lift has no depth distribution to supervise, and the prior
depth already went into the pseudo-labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from occkit.data.sample import Batch
from occkit.losses.occupancy import class_weights_from_counts, lovasz_softmax
from occkit.losses.pseudo_labels import balanced_cross_entropy, count_labels
from occkit.methods.registry import MODEL_FROM_FORMAT, ExportSupport, MethodSpec
from occkit.models.occnet import OccNet, OccNetConfig, OccNetOutput, build_occnet
from occkit.shapes import check_shape


@dataclass
class EasyOccConfig:
    """Losses of the ``easyocc`` method (on pseudo-labels)."""

    ce_weight: float = 1.0
    """Weight of the class-balanced cross-entropy (``loss_ce``)."""
    lovasz_weight: float = 1.0
    """Weight of the Lovász-softmax loss (``loss_lovasz``); 0 drops it."""
    lovasz_max_voxels: int | None = 20000
    """Lovász on a random subset of at most this many kept voxels (CPU speed); None = all."""
    use_camera_mask: bool = True
    """Losses only on the voxels the pseudo-labels observed (their ``mask_camera``); false: every
    voxel, unobserved ones as free."""
    class_balance: Literal["running", "none"] = "running"
    """'running': class weights from the pseudo-label counts of the batches seen so far (inside
    the mask); 'none': uniform (unless ``class_counts`` is given)."""
    class_counts: tuple[float, ...] | None = None
    """Fixed per-class counts for the weights (e.g. from ``occkit stats`` of the pseudo-labels);
    overrides ``class_balance``."""
    class_weight_offset: float = 1.05
    """ENet's ``c`` in ``1 / log(c + f)``: the rarest class weighs at most ``1 / log(c)``."""
    ignore_index: int = 255
    """Label value never counted."""


class EasyOccMethod(nn.Module):
    """OccNet (sampling lift) + class-balanced CE and Lovász on pseudo-labels; implements
    :class:`occkit.methods.base.Method`."""

    def __init__(self, model_cfg: OccNetConfig, method_cfg: EasyOccConfig) -> None:
        super().__init__()
        c = method_cfg
        C = model_cfg.num_classes
        if c.ce_weight < 0 or c.lovasz_weight < 0:
            raise ValueError("EasyOccConfig: ce_weight and lovasz_weight must be >= 0")
        if c.class_counts is not None and len(c.class_counts) != C:
            raise ValueError(f"EasyOccConfig.class_counts: expected {C} values, got {len(c.class_counts)}")
        if not c.class_weight_offset > 1:
            raise ValueError(f"EasyOccConfig.class_weight_offset: expected > 1, got {c.class_weight_offset}")
        self.model_cfg, self.cfg = model_cfg, method_cfg
        self.model: OccNet = build_occnet(model_cfg)
        self.register_buffer("label_counts", torch.zeros(C, dtype=torch.float64))
        """Pseudo-label voxels per class seen by ``training_step`` (``class_balance: running``)."""

    def forward(self, batch: Batch) -> OccNetOutput:
        """The model's full output for ``batch``."""
        return self.model(batch.images, batch.intrinsics, batch.T_ego_from_cam)

    @torch.no_grad()
    def predict(self, batch: Batch) -> torch.Tensor:
        """Logits ``(B, num_classes, X, Y, Z)``."""
        return self.forward(batch).logits

    def class_weight(self) -> torch.Tensor | None:
        """``(C,)`` cross-entropy weights now (None = uniform)."""
        c = self.cfg
        if c.class_counts is not None:
            counts = torch.tensor(c.class_counts, dtype=torch.float64)
        elif c.class_balance == "running" and float(self.label_counts.sum()) > 0:  # outside training steps
            counts = self.label_counts
        else:
            return None
        return class_weights_from_counts(counts, c.class_weight_offset).float()

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Weighted ``loss_ce`` and ``loss_lovasz`` (when its weight is > 0) on the pseudo-labels."""
        c = self.cfg
        if batch.occupancy is None:
            raise ValueError(
                "batch.occupancy is None: easyocc trains on pseudo-labels (occkit pseudolabel --out DIR2; --data DIR2)"
            )
        check_shape(
            batch.occupancy, "B X Y Z", name="batch.occupancy", dims=dict(zip("XYZ", self.model.output_grid.shape))
        )
        mask = None
        if c.use_camera_mask:
            if batch.mask_camera is None:
                raise ValueError("batch.mask_camera is None but EasyOccConfig.use_camera_mask is true")
            mask = batch.mask_camera.bool()
        if c.class_balance == "running" and c.class_counts is None:
            with torch.no_grad():
                self.label_counts += count_labels(batch.occupancy, mask, self.model_cfg.num_classes, c.ignore_index).to(
                    self.label_counts
                )
        out = self.forward(batch)
        counts = (
            torch.tensor(c.class_counts, dtype=torch.float64)
            if c.class_counts is not None
            else (self.label_counts if c.class_balance == "running" else None)
        )
        losses = {
            "loss_ce": c.ce_weight
            * balanced_cross_entropy(out.logits, batch.occupancy, mask, counts, c.class_weight_offset, c.ignore_index)
        }
        if c.lovasz_weight > 0:
            losses["loss_lovasz"] = c.lovasz_weight * lovasz_softmax(
                out.logits, batch.occupancy, mask, c.ignore_index, max_voxels=c.lovasz_max_voxels
            )
        return losses


METHOD = MethodSpec(
    name="easyocc",
    summary="a light camera network trained on 3D pseudo-labels made from 2D priors (occkit pseudolabel)",
    sections={"easyocc": EasyOccConfig},
    from_format={**MODEL_FROM_FORMAT, "easyocc.ignore_index": "ignore"},
    build=lambda cfg, load_run: EasyOccMethod(cfg.model, cfg.easyocc),
    export=ExportSupport(),
)
