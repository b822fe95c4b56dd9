"""The ``supervised`` recipe: the camera occupancy network trained on 3D labels.

A training step: ``OccNet`` forward; class-weighted cross-entropy and (optionally) Lovász-softmax
on the voxels (inside the camera mask when ``use_camera_mask``); depth supervision of the LSS depth
distribution from LiDAR or the synthetic depth maps (see ``depth_source``). Each returned loss is
already multiplied by its weight; the engine sums them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from occkit.data.sample import Batch
from occkit.losses.depth import depth_loss, depth_map_targets, lidar_depth_targets, semantic_map_targets
from occkit.losses.occupancy import (
    class_weights_from_counts,
    geometry_semantic_cross_entropy,
    lovasz_softmax,
    voxel_cross_entropy,
)
from occkit.methods.registry import MODEL_FROM_FORMAT, ExportSupport, MethodSpec, format_free
from occkit.models.occnet import OccNet, OccNetConfig, OccNetOutput, build_occnet
from occkit.shapes import check_shape


@dataclass
class SupervisedConfig:
    """Losses of the ``supervised`` method."""

    ce_weight: float = 1.0
    """Weight of the voxel cross-entropy (``loss_ce``, or ``loss_geo`` and ``loss_sem``)."""
    ce_mode: Literal["joint", "factored"] = "joint"
    """'joint': one class-weighted cross-entropy over all classes, free included (``loss_ce``).
    'factored': the same logits' cross-entropy split into geometry, free or occupied
    (``loss_geo``, unweighted but for ``occupied_weight``), and semantics, the class given
    occupied (``loss_sem``, class-weighted among the occupied classes only;
    :func:`occkit.losses.occupancy.geometry_semantic_cross_entropy`): rare classes' weights then
    no longer make the network call uncertain free space occupied."""
    occupied_weight: float = 1.0
    """``ce_mode='factored'``: weight of an occupied voxel against a free one in ``loss_geo``."""
    free: int | None = None
    """The free class (Occ3D: 17); used by ``ce_mode='factored'``. None: the data format's (filled in
    by :func:`occkit.experiment.fit_to_format`, else by :func:`occkit.experiment.build_method` from the
    format the config names); a recipe built by hand names it."""
    lovasz: bool = True
    """Add the Lovász-softmax loss (``loss_lovasz``)."""
    lovasz_weight: float = 1.0
    """Weight of the Lovász-softmax loss."""
    lovasz_max_voxels: int | None = None
    """Compute Lovász on a random subset of at most this many kept voxels (CPU speed); None = all."""
    depth_weight: float = 1.0
    """Weight of the depth loss (``loss_depth``); 0 drops the term."""
    depth_source: Literal["auto", "depth_map_or_lidar", "lidar", "depth_map", "none"] = "auto"
    """Depth targets: 'lidar' (batch.lidar projected into the cameras), 'depth_map' (batch.depth:
    dense maps, the synthetic extras or a depth model's), 'auto' (LiDAR when the batch has it,
    else depth maps, else no depth loss), 'depth_map_or_lidar' (dense maps first, else LiDAR,
    else none), 'none'."""
    depth_pool: Literal["nearest", "median"] = "nearest"
    """Which depth a feature pixel's target takes from the depths in its ``stride x stride`` block:
    'nearest' (BEVDet) or 'median', about the depth of the block's centre ray that the lift uses
    (:data:`occkit.losses.depth.DEPTH_POOLS`)."""
    depth_loss: Literal["bce", "ce"] = "bce"
    """'bce': BEVDet's binary cross-entropy against the one-hot bin; 'ce': -log p(bin)."""
    semantic_2d_weight: float = 0.0
    """Weight of the auxiliary 2D semantic loss (``loss_sem2d``): a 1x1 conv on the image features
    predicts each feature pixel's class (the majority Occ3D class of its stride x stride block of
    ``batch.semantics_2d``; 17 = sky / nothing), cross-entropy. Dense 2D labels teach the image
    features what things are much faster than the 3D loss through the view transform alone. 0
    drops the term (and the head); 0-valued when the batch has no semantic maps."""
    use_camera_mask: bool = True
    """Compute the voxel losses only where batch.mask_camera is true (Occ3D's camera-visible set). On
    frames that record no cameras (labels of a LiDAR-only recording, whose camera mask is empty) the run
    takes the LiDAR mask instead (``use_lidar_mask``), says so when training starts and records it in its
    config.json (:func:`resolve_class_counts`)."""
    use_lidar_mask: bool = False
    """Compute the voxel losses only where batch.mask_lidar is true (the voxels the keyframe's LiDAR rays
    crossed); with ``use_camera_mask`` too, where both are."""
    class_weights: tuple[float, ...] | None = None
    """Per-class CE weights (num_classes values); None = uniform unless class_counts is given."""
    class_counts: tuple[float, ...] | Literal["auto"] | None = None
    """Per-class voxel counts; weights = log-inverse frequency (``class_weights_from_counts``).
    ``auto``: the engine counts the training split's labels (inside the camera mask when
    ``use_camera_mask``) when training starts and writes the counts into the run's config.json
    (:func:`occkit.experiment.resolve_auto_class_counts`)."""
    class_weight_offset: float = 1.02
    """ENet's ``c`` of the log-inverse weights ``1 / log(c + f)`` from ``class_counts``: the rarest
    class weighs at most ``1 / log(c)`` (1.02: about 50x a frequent class; larger is softer)."""
    ignore_index: int = 255
    """Label value never counted in the voxel losses."""
    lift_depth: Literal["predicted", "sensor"] = "predicted"
    """What places the image features along their rays: 'predicted' (the camera-only network's
    depth distribution) or 'sensor' (the depth targets of ``depth_source``, one-hot, wherever a
    feature pixel has one; the prediction elsewhere): a LiDAR-camera model, which needs the sensor
    at test time too (RadOcc's teacher; an upper bound on what exact depth gives the rest of the
    network)."""


class SupervisedMethod(nn.Module):
    """OccNet + voxel and depth losses; implements :class:`occkit.methods.base.Method`."""

    def __init__(self, model_cfg: OccNetConfig, method_cfg: SupervisedConfig) -> None:
        super().__init__()
        self.model_cfg = model_cfg
        self.cfg = method_cfg
        self.model: OccNet = build_occnet(model_cfg)
        C = model_cfg.num_classes
        if not -C <= format_free(method_cfg.free, "supervised.free") < C:
            raise ValueError(f"SupervisedConfig.free: {method_cfg.free} is not a class of {C}")
        if method_cfg.class_weights is not None and method_cfg.class_counts is not None:
            raise ValueError("SupervisedConfig: give class_weights or class_counts, not both")
        weight = None
        if method_cfg.class_weights is not None:
            weight = torch.tensor(method_cfg.class_weights, dtype=torch.float32)
            if weight.shape != (C,) or bool((weight < 0).any()) or not bool(torch.isfinite(weight).all()):
                raise ValueError(
                    f"SupervisedConfig.class_weights: expected {C} finite non-negative values, got "
                    f"{method_cfg.class_weights}"
                )
        elif method_cfg.class_counts == "auto":
            pass  # resolved from the training split before training (training_step checks); inference needs no weights
        elif method_cfg.class_counts is not None:
            counts = torch.tensor(method_cfg.class_counts, dtype=torch.float64)
            if counts.shape != (C,):
                raise ValueError(
                    f"SupervisedConfig.class_counts: expected {C} values, got {len(method_cfg.class_counts)}"
                )
            if method_cfg.ce_mode == "factored":  # weights among the occupied classes only
                occ = torch.arange(C) != method_cfg.free % C
                weight = torch.zeros(C)
                weight[occ] = class_weights_from_counts(counts[occ], method_cfg.class_weight_offset)
            else:
                weight = class_weights_from_counts(counts, method_cfg.class_weight_offset)
        self.register_buffer("class_weight", weight, persistent=False)
        if method_cfg.semantic_2d_weight < 0:
            raise ValueError(f"SupervisedConfig.semantic_2d_weight: expected >= 0, got {method_cfg.semantic_2d_weight}")
        self.semantic_2d_head = nn.Conv2d(model_cfg.neck_channels, C, 1) if method_cfg.semantic_2d_weight > 0 else None
        """Auxiliary per-feature-pixel classifier (training only; None when the term is off)."""
        if method_cfg.lift_depth == "sensor" and method_cfg.depth_source == "none":
            raise ValueError("SupervisedConfig.lift_depth='sensor' needs a depth_source other than 'none'")
        if not self.model.uses_camera:  # modality 'lidar': no image path to put a depth or 2D loss on
            image_terms = {
                "depth_weight": method_cfg.depth_weight > 0 and method_cfg.depth_source != "none",
                "semantic_2d_weight": method_cfg.semantic_2d_weight > 0,
                "lift_depth": method_cfg.lift_depth == "sensor",
            }
            bad = [k for k, on in image_terms.items() if on]
            if bad:
                raise ValueError(
                    f"SupervisedConfig: {', '.join(bad)} act on the image path, which a LiDAR-only network "
                    "(model.modality: lidar) lacks: set supervised.depth_weight=0, semantic_2d_weight=0, "
                    "lift_depth=predicted"
                )

    def forward(self, batch: Batch) -> OccNetOutput:
        """The model's full output for ``batch`` (logits and intermediates)."""
        return self._forward(batch, self.depth_targets(batch) if self.cfg.lift_depth == "sensor" else None)

    def _forward(self, batch: Batch, depth_target: torch.Tensor | None) -> OccNetOutput:
        """The model on ``batch``; with ``lift_depth='sensor'`` it lifts with ``depth_target``."""
        if self.cfg.lift_depth != "sensor":
            depth_target = None
        elif depth_target is None:
            raise ValueError("SupervisedConfig.lift_depth='sensor' but the batch has neither LiDAR nor depth maps")
        return self.model(
            batch.images,
            batch.intrinsics,
            batch.T_ego_from_cam,
            depth_target,
            lidar=batch.lidar if self.model.uses_lidar else None,
        )

    @torch.no_grad()
    def predict(self, batch: Batch) -> torch.Tensor:
        """Logits ``(B, num_classes, X, Y, Z)`` on the output grid."""
        return self.forward(batch).logits

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Weighted losses ``loss_ce`` (``ce_mode='joint'``) or ``loss_geo`` and ``loss_sem``
        (``'factored'``), ``loss_lovasz`` (when enabled), ``loss_sem2d`` (when
        ``semantic_2d_weight > 0``), ``loss_depth`` (when the
        depth term is enabled; 0 when 'auto' finds no depth source in the batch)."""
        return self.training_outputs(batch)[0]

    def training_outputs(self, batch: Batch) -> tuple[dict[str, torch.Tensor], OccNetOutput]:
        """:meth:`training_step`'s losses and the model output they were computed from (recipes
        that add terms on the same forward pass, e.g. ``radocc``, read the output)."""
        cfg = self.cfg
        if cfg.class_counts == "auto":
            raise ValueError(
                "SupervisedConfig.class_counts='auto' is unresolved: the engine counts the training split's labels "
                "when training starts (occkit.experiment.resolve_auto_class_counts); call it before training this "
                "method"
            )
        if batch.occupancy is None:
            raise ValueError("batch.occupancy is None: the supervised method needs 3D labels")
        mask = None
        if cfg.use_camera_mask:
            if batch.mask_camera is None:
                raise ValueError("batch.mask_camera is None but SupervisedConfig.use_camera_mask is true")
            mask = batch.mask_camera
        if cfg.use_lidar_mask:
            if batch.mask_lidar is None:
                raise ValueError("batch.mask_lidar is None but SupervisedConfig.use_lidar_mask is true")
            mask = batch.mask_lidar if mask is None else mask & batch.mask_lidar
        need_depth = cfg.lift_depth == "sensor" or (cfg.depth_weight > 0 and cfg.depth_source != "none")
        target = self.depth_targets(batch) if need_depth else None
        out = self._forward(batch, target)
        check_shape(
            batch.occupancy, "B X Y Z", name="batch.occupancy", dims=dict(zip("XYZ", self.model.output_grid.shape))
        )
        losses: dict[str, torch.Tensor] = {}
        if cfg.ce_mode == "factored":
            geo, sem = geometry_semantic_cross_entropy(
                out.logits,
                batch.occupancy,
                mask,
                self.class_weight,
                free=cfg.free,
                occupied_weight=cfg.occupied_weight,
                ignore_index=cfg.ignore_index,
            )
            losses["loss_geo"] = cfg.ce_weight * geo
            losses["loss_sem"] = cfg.ce_weight * sem
        else:
            losses["loss_ce"] = cfg.ce_weight * voxel_cross_entropy(
                out.logits, batch.occupancy, mask, self.class_weight, cfg.ignore_index
            )
        if cfg.lovasz:
            losses["loss_lovasz"] = cfg.lovasz_weight * lovasz_softmax(
                out.logits, batch.occupancy, mask, cfg.ignore_index, max_voxels=cfg.lovasz_max_voxels
            )
        if self.semantic_2d_head is not None:
            losses["loss_sem2d"] = cfg.semantic_2d_weight * self.semantic_2d_loss(out, batch)
        if cfg.depth_weight > 0 and cfg.depth_source != "none":
            if target is None:
                losses["loss_depth"] = out.depth_prob.sum() * 0.0
            else:
                losses["loss_depth"] = cfg.depth_weight * depth_loss(out.depth_prob, target, cfg.depth_loss)
        return losses, out

    def semantic_2d_loss(self, out: OccNetOutput, batch: Batch) -> torch.Tensor:
        """Cross-entropy of the auxiliary 2D head against the majority class of each feature
        pixel's block of ``batch.semantics_2d`` (0, still differentiable, without semantic maps)."""
        assert self.semantic_2d_head is not None and out.image_features is not None
        B, N, Cf, h, w = out.image_features.shape
        logits = self.semantic_2d_head(out.image_features.flatten(0, 1))  # (B*N, C, h, w)
        if batch.semantics_2d is None:
            return logits.sum() * 0.0
        check_shape(batch.semantics_2d, "B N H W", name="batch.semantics_2d", dims={"B": B, "N": N})
        H, W = batch.semantics_2d.shape[-2:]
        if (H % h) or (W % w) or H // h != W // w:
            raise ValueError(f"batch.semantics_2d: size {(H, W)} is not the image features' {(h, w)} times the stride")
        C = logits.shape[1]
        lo, hi = int(batch.semantics_2d.min()), int(batch.semantics_2d.max())
        if lo < 0 or hi >= C:  # named here: the loss below knows no frame, field or format
            raise ValueError(
                f"batch.semantics_2d (the 2D semantic maps of frames {', '.join(batch.tokens[:2])}): class ids in "
                f"[{lo}, {hi}], outside the model's {C} classes (model.num_classes, from the data's format): the "
                "format's reader gives its 2D maps in another class table; set supervised.semantic_2d_weight=0, or "
                "give them in the format's ids (occkit's synthetic world: DatasetFormat.writers.synthetic_classes)"
            )
        target = semantic_map_targets(batch.semantics_2d.flatten(0, 1), H // h, C)  # (B*N, h, w)
        return F.cross_entropy(logits.float(), target)

    def depth_targets(self, batch: Batch) -> torch.Tensor | None:
        """Depth-bin targets ``(B, N, H/stride, W/stride)`` (-1 = none) from the configured source,
        or None when ``depth_source`` is 'auto' or 'depth_map_or_lidar' and the batch has neither LiDAR nor depth maps.
        Computed in float32 even under autocast (projections need the precision)."""
        with torch.autocast(device_type=batch.images.device.type, enabled=False):
            return self._depth_targets(batch)

    def _depth_targets(self, batch: Batch) -> torch.Tensor | None:
        m = self.model_cfg
        rng = (m.depth_min, m.depth_max, m.depth_step)
        B, N, _, H, W = batch.images.shape
        source = self.cfg.depth_source
        if source == "auto":
            source = "lidar" if batch.lidar is not None else "depth_map" if batch.depth is not None else "none"
        elif source == "depth_map_or_lidar":
            source = "depth_map" if batch.depth is not None else "lidar" if batch.lidar is not None else "none"
        if source == "none":
            return None
        if source == "lidar":
            if batch.lidar is None:
                raise ValueError("batch.lidar is None but SupervisedConfig.depth_source is 'lidar'")
            return torch.stack(
                [
                    lidar_depth_targets(
                        batch.lidar[b],
                        batch.intrinsics[b],
                        batch.T_ego_from_cam[b],
                        (H, W),
                        m.feature_stride,
                        rng,
                        self.cfg.depth_pool,
                    )
                    for b in range(B)
                ]
            )
        if batch.depth is None:
            raise ValueError("batch.depth is None but SupervisedConfig.depth_source is 'depth_map'")
        check_shape(batch.depth, "B N H W", name="batch.depth", dims={"B": B, "N": N, "H": H, "W": W})
        return depth_map_targets(batch.depth, m.feature_stride, rng, self.cfg.depth_pool)


# ------------------------------------------------------------------------------------ registration
#: What ``supervised`` (and ``radocc``, its student) takes from the data's format when the preset
#: leaves it unset: the network's classes, grid and ground height, the free class of
#: ``ce_mode='factored'``, the ignored label value.
SUPERVISED_FROM_FORMAT: dict[str, str] = {
    **MODEL_FROM_FORMAT,
    "supervised.free": "free",
    "supervised.ignore_index": "ignore",
}


def resolve_class_counts(cfg: Any, train_set: Any, max_frames: int = 2000, progress: bool = False) -> Any:
    """The ``supervised`` section resolved from the training frames: the voxel mask, then
    ``class_counts: auto``.

    - **Mask.** Frames that record no cameras (:meth:`occkit.data.occ3d.Occ3DDataset.records_no_cameras`:
      labels of a LiDAR-only recording, their camera mask empty) with ``use_camera_mask`` on: the LiDAR
      mask instead (``use_camera_mask`` off, ``use_lidar_mask`` on), said in one line (stderr).
    - **Counts.** ``class_counts: auto`` becomes the counts of every class over the frames of the dataset
      under ``train_set`` (at most ``max_frames`` of them, evenly spaced;
      :func:`occkit.data.stats.count_frame_classes`), inside the voxels the format scores (Occ3D: the camera
      mask) when ``use_camera_mask``, inside the LiDAR mask when ``use_lidar_mask``.

    Returns ``cfg`` unchanged when nothing is resolved, else a copy, so that the run's config.json records
    the mask and the weights it trained with.
    """
    import copy
    import sys

    from occkit.data.stats import fill_class_counts
    from occkit.data.wrappers import base_dataset

    base = base_dataset(train_set)
    said = getattr(base, "records_no_cameras", None)
    if cfg.supervised.use_camera_mask and callable(said) and len(base) and said():
        print(
            f"occkit train: {getattr(base, 'root', 'the training frames')} records no cameras (labels of a recording "
            "without them: the camera mask holds no voxel): the voxel losses use the LiDAR mask "
            "(supervised.use_camera_mask=false, use_lidar_mask=true)",
            file=sys.stderr,
            flush=True,
        )
        cfg = copy.deepcopy(cfg)
        cfg.supervised.use_camera_mask, cfg.supervised.use_lidar_mask = False, True
    sup = cfg.supervised
    if sup.class_counts != "auto":
        return cfg
    masks = ("camera",) * sup.use_camera_mask + ("lidar",) * sup.use_lidar_mask
    return fill_class_counts(
        cfg,
        "supervised",
        train_set,
        what="supervised.class_counts='auto'",
        scored_only=sup.use_camera_mask and not sup.use_lidar_mask,
        max_frames=max_frames,
        progress=progress,
        masks=masks if sup.use_lidar_mask else None,
    )


def unfed_losses(cfg: Any, sample: Any) -> list[str]:
    """The loss terms of the ``supervised`` section that a training frame (``sample``, a
    :class:`~occkit.data.sample.Sample`) cannot feed, one line each: the depth term with
    ``depth_source`` 'auto' or 'depth_map_or_lidar' and neither depth maps nor LiDAR, the 2D semantic
    term and no 2D semantic maps. Each would be 0 at every step ('lidar' and 'depth_map' raise at the
    first step instead)."""
    sup = cfg.supervised
    out = []
    if sup.depth_weight > 0 and sup.depth_source in ("auto", "depth_map_or_lidar"):
        if sample.lidar is None and sample.depth is None:
            out.append(
                f"supervised.depth_weight={sup.depth_weight:g}: frame {sample.token} has neither depth maps nor LiDAR "
                f"(depth_source {sup.depth_source}), so loss_depth is 0 at every step: give the frames' LiDAR "
                "(data.load_extras: true reads the synthetic extras and the LiDAR files occkit label writes; "
                "data.lidar_infos on real Occ3D-nuScenes) or set supervised.depth_weight=0"
            )
    if sup.semantic_2d_weight > 0 and sample.semantics_2d is None:
        out.append(
            f"supervised.semantic_2d_weight={sup.semantic_2d_weight:g}: frame {sample.token} has no 2D semantic maps "
            "(data.load_extras: true reads the synthetic world's extras and the maps occkit label renders), so "
            "loss_sem2d is 0 at every step: set supervised.semantic_2d_weight=0, or train on frames that have them"
        )
    return out


def export_check(cfg: Any) -> str | None:
    """Why a run whose config has a ``supervised`` section cannot be exported, or None."""
    if cfg.supervised.lift_depth == "sensor":
        return (
            "supervised.lift_depth is 'sensor': the lift reads each frame's measured depth (LiDAR or depth maps), "
            "an input the exported graph does not take"
        )
    return None


METHOD = MethodSpec(
    name="supervised",
    summary="the camera network trained on 3D labels (voxel cross-entropy, Lovász, LSS depth)",
    sections={"supervised": SupervisedConfig},
    from_format=SUPERVISED_FROM_FORMAT,
    build=lambda cfg, load_run: SupervisedMethod(cfg.model, cfg.supervised),
    resolve=resolve_class_counts,
    unfed_losses=unfed_losses,
    export=ExportSupport(check=export_check),
)
