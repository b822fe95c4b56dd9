"""The ``cigocc`` recipe (CIGOcc, docs/methods.md §3) and its monocular SSC baseline (preset
``kitti-mono``, MonoScene-like): semantic scene completion from one camera on the SemanticKITTI
layout (``data.format: semantickitti``; 20 classes, 0 = empty, 255 ignored).

The network (:class:`CIGOccNet`) reads one image:

- **appearance** features: a timm backbone + FPN neck at ``model.feature_stride`` (plus the
  backbone levels at ``model.sample_strides``, as MonoScene's FLoSP over scales, in the baseline);
- **depth** features (``"depth" in features``): a depth branch on the neck (3x3 conv, ReLU) with a
  log-depth output supervised by the depth prior (``Batch.prior_depth``, L1 in log depth on the
  known pixels, ``loss_depth``); its hidden map and log depth are the features;
- **segmentation** features (``"segmentation" in features``): a segmentation branch on the neck
  with ``seg_classes`` outputs (the classes of the semantics prior, its dataset format's table,
  :mod:`occkit.priors.classes`: 18 = Occ3D's classes 0..16 and sky on the driving world's
  layouts, 12 = NYUv2's indoors) supervised by the semantics prior (``Batch.prior_semantics``, CE
  with 255 unknown, ``loss_seg``); its hidden map and class probabilities are the features.

With more than one kind of feature they are fused by :class:`occkit.models.fusion.MultiScaleFusion`
(``fusion: deformable``: DeformConv2d with offsets from the concatenated levels, at every scale
of ``fusion_scales``; ``fusion: concat``: the same conv without offsets). The fused pyramid (or
the baseline's appearance pyramid) is lifted by the sampling lift (voxel centres projected into
the image, bilinear samples summed over scales, :class:`occkit.models.lift.SampleViewTransform`).

**Depth-aware voxel queries** (``depth_queries``, with depth features): every voxel also gets
two channels from the predicted depth ``d`` at its projection and its own camera depth ``z``:
``exp(-|z - d| / depth_query_sigma)`` (near the predicted surface: VoxFormer's query proposal,
soft) and ``clamp((z - d) / 10 m, -1, 1)`` (in front of / behind it).

**Stage 2, simplified** (the paper's deformable cross-attention from the voxel queries to the
fused features, then deformable self-attention): the cross-attention is the multi-scale
sampling lift of the fused maps (one reference point per voxel and scale, uniform weights:
deformable attention with zero offsets), the self-attention a 3D residual U-Net
(:class:`occkit.models.encoder3d.UNetEncoder`), then the voxel head.

**Stage-1 SSC loss** (``stage1_weight > 0``; the paper figure's reading [paper figure]: stage 1's
3D U-Net output carries an SSC loss). A small 3D U-Net (``encoder_widths[:2]``) on the raw voxel
features (the lifted volume and the depth query channels) with its own voxel head predicts the
classes at the lift grid; its features are appended to the input of the main (stage-2) U-Net.
``loss_stage1`` = CE + scal_geo + scal_sem of these logits against the labels brought to the
lift grid by SSCNet's rule (:func:`occkit.losses.monoscene.downsample_labels`), times the
weight. The figure gives neither the resolution nor the loss's parts [unsure]: occkit takes the
lift grid and MonoScene's three terms.

**SAM-guided distillation** (``distill_weight > 0``), two readings (``distill``):

- ``affinity`` (occkit's own reading, the default): an auxiliary head on the image branch (the
  neck) predicts, at every feature pixel, whether its right and lower neighbours lie in the
  same prior segment (``Batch.prior_segments``, 0 = none, pairs touching 0 left out): BCE
  against these same-segment affinities (``loss_distill``). An affinity is invariant to the
  segment ids (SAM's segments have no class or order) and marks the segment boundaries.
- ``masks`` (the paper figure's reading [paper figure]: the extractor's features supervised by
  BCE against SAM's masks): a head on the image branch gives every feature pixel an embedding
  ``e_p`` (``branch_channels``); each prior segment ``s`` of the frame is a query, the mean
  embedding ``q_s`` of its pixels; the mask logits ``<e_p, q_s> / sqrt(D)`` are pushed by BCE
  to the segment's binary mask (:func:`segment_mask_bce`). How the figure turns class-agnostic
  masks into targets is not published [unsure]; queries from the masks themselves keep the
  loss independent of the segment ids.

3D losses (MonoScene's, all weight 1): ``loss_ce`` (class-weighted CE, ``w_c = 1/ln(f_c +
0.001)`` with ``f_c`` the voxel counts: ``class_counts`` given, or with ``class_balance:
dataset`` (default) the counts of the training split's labels, filled in by the engine when
training starts (:func:`occkit.experiment.resolve_auto_class_counts`) and recorded in the run's
config; ``running``: the counts of the training batches seen so far, which weigh a class seen
once in the first frames ~1000 times more than MonoScene's fixed counts would), ``loss_scal_geo``,
``loss_scal_sem`` (:mod:`occkit.losses.ssc`). Voxels outside ``Batch.mask_camera``
(SemanticKITTI's ``.invalid``) are ignored.

MonoScene's further parts, each a switch (:mod:`occkit.losses.monoscene`; on in ``kitti-mono``
as in MonoScene's shipped config, off in ``cigocc``, whose losses the paper lists without them):

- ``frustum_weight > 0``: the frustum proportion loss ``loss_frustum`` over ``frustum_size x
  frustum_size`` local frusta of the image (MonoScene: 8), on the output grid;
- ``context_prior``: MonoScene's 3D context relation prior
  (:class:`occkit.models.context_prior.ContextPrior3D`) at the bottleneck of the main 3D U-Net,
  and with ``relation_weight > 0`` its relation loss ``loss_relation`` against the relation
  matrices of the labels brought to the bottleneck grid by SSCNet's rule. The matrix is ``R x N
  x N/8`` over the ``N`` bottleneck voxels: at ``kitti-mono``'s 32x32x4 bottleneck (MonoScene's
  own size) 4 x 4096 x 512 = 8.4 M logits per frame (32 MiB).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from occkit.data.sample import Batch
from occkit.losses.monoscene import downsample_labels, frustum_ids, relation_loss, relation_targets
from occkit.losses.pseudo_labels import count_labels
from occkit.losses.ssc import ssc_class_weights, ssc_losses
from occkit.methods.registry import ExportHead, ExportSupport, MethodSpec
from occkit.models.backbone import Backbone
from occkit.models.context_prior import ContextPrior3D
from occkit.models.encoder3d import UNetEncoder
from occkit.models.fusion import MultiScaleFusion
from occkit.models.heads import VoxelHead
from occkit.models.lift import SampleViewTransform, invert_poses, project_points
from occkit.models.neck import FPNNeck
from occkit.models.occnet import IMAGENET_MEAN, IMAGENET_STD, OccNetConfig, OccNetOutput, lift_grid_of
from occkit.shapes import check_shape

FEATURE_KINDS = ("appearance", "depth", "segmentation")
PRIOR_SEG_CLASSES = 18  # Occ3D classes 0..16 + sky (17), the driving world's prior classes (the default)


@dataclass
class CIGOccConfig:
    """The ``cigocc`` method: which image features, how they are fused, and the losses."""

    features: tuple[str, ...] = ("appearance", "depth", "segmentation")
    """Image features lifted to 3D: any of 'appearance' (always needed), 'depth', 'segmentation'.
    ``("appearance",)`` is the MonoScene-like baseline (``kitti-mono``)."""
    fusion: Literal["deformable", "concat"] = "deformable"
    """How several kinds of features are fused: 'deformable' (DeformConv2d, offsets from the
    concatenated levels) or 'concat' (the same conv, no offsets: the ablation)."""
    fusion_channels: int = 64
    """Channels of each fused map."""
    fusion_scales: tuple[int, ...] = (8, 16)
    """Strides (w.r.t. the image) of the fused maps the lift samples (summed)."""
    branch_channels: int = 32
    """Hidden channels of the depth and segmentation branches."""
    depth_queries: bool = True
    """Depth-aware voxel query channels (needs 'depth' in ``features``)."""
    depth_query_sigma: float = 1.0
    """Metres: width of the near-the-predicted-surface channel ``exp(-|z - d| / sigma)``."""
    depth_range: tuple[float, float] = (0.5, 80.0)
    """Predicted depth is clamped to this range (metres)."""
    depth_weight: float = 1.0
    """Weight of ``loss_depth`` (the depth branch vs ``prior_depth``)."""
    seg_weight: float = 1.0
    """Weight of ``loss_seg`` (the segmentation branch vs ``prior_semantics``)."""
    seg_classes: int = 18
    """Outputs of the segmentation branch: the classes of the semantics prior (18: the driving
    world's, Occ3D's classes and sky; 12: NYUv2's indoors); checked against the data's format when
    training starts."""
    distill_weight: float = 0.0
    """Weight of ``loss_distill`` (SAM-guided distillation into the image branch); 0 = off."""
    distill: Literal["affinity", "masks"] = "affinity"
    """Which distillation: 'affinity' (occkit's reading: BCE of same-segment affinities of
    neighbouring pixels) or 'masks' (the paper figure's: BCE of per-segment mask logits from the
    extractor's features against SAM's masks)."""
    stage1_weight: float = 0.0
    """Weight of ``loss_stage1`` (the paper figure's SSC loss on a stage-1 3D U-Net at the lift
    grid, whose features feed the main U-Net); 0 = no stage-1 U-Net."""
    frustum_weight: float = 0.0
    """Weight of ``loss_frustum`` (MonoScene's frustum proportion loss); 0 = off."""
    frustum_size: int = 8
    """Local frusta per image side (MonoScene's ``frustum_size``: 8)."""
    context_prior: bool = False
    """MonoScene's 3D context relation prior at the bottleneck of the main 3D U-Net."""
    relation_weight: float = 0.0
    """Weight of ``loss_relation`` (the context prior's relation loss; needs ``context_prior``)."""
    num_relations: int = 4
    """Relations of the context prior: 4 (MonoScene's) or 2 (its binary same / different)."""
    ce_weight: float = 1.0
    """Weight of ``loss_ce``."""
    scal_geo_weight: float = 1.0
    """Weight of ``loss_scal_geo``."""
    scal_sem_weight: float = 1.0
    """Weight of ``loss_scal_sem``."""
    class_balance: Literal["dataset", "running", "none"] = "dataset"
    """CE weights when ``class_counts`` is not given: 'dataset': from the label counts of the
    training split, counted by the engine when training starts and written into
    ``class_counts`` (as ``supervised.class_counts: auto``); 'running': from the label counts of
    the training batches seen so far; 'none': uniform."""
    class_counts: tuple[float, ...] | None = None
    """Fixed voxel counts per class for the CE weights (e.g. SemanticKITTI's,
    :data:`occkit.losses.ssc.SEMANTICKITTI_CLASS_FREQUENCIES`); overrides ``class_balance``."""
    empty_index: int = 0
    """The empty class (SemanticKITTI: 0)."""
    ignore_index: int = 255
    """Unknown label."""


class CIGOccNet(nn.Module):
    """Monocular SSC network of :mod:`occkit.methods.cigocc` (see there)."""

    def __init__(self, mcfg: OccNetConfig, cfg: CIGOccConfig) -> None:
        super().__init__()
        bad = [f for f in cfg.features if f not in FEATURE_KINDS]
        if bad or "appearance" not in cfg.features:
            raise ValueError(
                f"cigocc.features: {tuple(cfg.features)} must include 'appearance' and only {FEATURE_KINDS}"
            )
        if mcfg.head != "voxel":
            raise ValueError("cigocc: needs model.head: voxel")
        self.mcfg, self.cfg = mcfg, cfg
        self.output_grid, self.lift_grid = lift_grid_of(mcfg)
        self.backbone = Backbone(mcfg.backbone, mcfg.feature_stride, mcfg.backbone_weights)
        self.neck = FPNNeck(self.backbone.channels, mcfg.neck_channels)
        self.use_depth = "depth" in cfg.features
        self.use_seg = "segmentation" in cfg.features
        self.fused = self.use_depth or self.use_seg
        self._build_2d_heads()
        lift_in = self._build_fusion()
        self.lift = SampleViewTransform(lift_in, mcfg.context_channels, self.lift_grid, coords=mcfg.sample_coords)
        self.queries = self.use_depth and cfg.depth_queries
        in3d = self.lift.out_channels + (2 if self.queries else 0)
        self.stage1 = self.stage1_head = None
        if cfg.stage1_weight > 0:  # the figure's stage-1 3D U-Net with its own SSC head
            w1 = tuple(mcfg.encoder_widths[:2])
            self.stage1 = UNetEncoder(3, in3d, w1, 1)
            self.stage1_head = VoxelHead(w1[0], mcfg.num_classes)
            in3d += w1[0]
        self.encoder = UNetEncoder(3, in3d, tuple(mcfg.encoder_widths), mcfg.encoder_blocks)
        self.context_prior = None
        self.bottleneck_shape: tuple[int, ...] | None = None
        """``(X, Y, Z)`` of the main U-Net's bottleneck where the context prior sits (else None)."""
        if cfg.context_prior:
            self._build_context_prior()
        sub = (
            tuple(o // l for o, l in zip(self.output_grid.shape, self.lift_grid.shape))
            if mcfg.voxel_upsample == "subvoxel"
            else (1, 1, 1)
        )
        self.head = VoxelHead(self.encoder.out_channels, mcfg.num_classes, subvoxels=sub)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def _build_2d_heads(self) -> None:
        """The depth and segmentation branches (of the features in use) and the SAM-distillation head
        (with ``distill_weight > 0``), on the neck's features."""
        mcfg, cfg = self.mcfg, self.cfg
        Cn, Cb = mcfg.neck_channels, cfg.branch_channels
        self.depth_branch = self.seg_branch = None
        if self.use_depth:
            self.depth_branch = nn.Sequential(
                nn.Conv2d(Cn, Cb, 3, padding=1), nn.BatchNorm2d(Cb), nn.ReLU(inplace=True)
            )
            self.depth_out = nn.Conv2d(Cb, 1, 1)
        if self.use_seg:
            self.seg_branch = nn.Sequential(nn.Conv2d(Cn, Cb, 3, padding=1), nn.BatchNorm2d(Cb), nn.ReLU(inplace=True))
            self.seg_out = nn.Conv2d(Cb, cfg.seg_classes, 1)
        # the SAM-distillation head: same-segment affinity to the right / lower neighbour (2
        # channels) or pixel embeddings for the per-segment mask logits (Cb channels)
        dist_out = 2 if cfg.distill == "affinity" else Cb
        self.mask_head = (
            nn.Sequential(nn.Conv2d(Cn, Cb, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(Cb, dist_out, 1))
            if cfg.distill_weight > 0
            else None
        )

    def _build_fusion(self) -> list[int]:
        """The multi-scale fusion of the neck's features with the depth / segmentation branches (None
        with appearance alone); returns the channels of each map the lift samples."""
        mcfg, cfg = self.mcfg, self.cfg
        Cn, Cb = mcfg.neck_channels, cfg.branch_channels
        if self.fused:
            in_ch = [Cn] + ([Cb + 1] if self.use_depth else []) + ([Cb + cfg.seg_classes] if self.use_seg else [])
            self.fusion = MultiScaleFusion(in_ch, cfg.fusion_channels, tuple(cfg.fusion_scales), cfg.fusion)
            return [cfg.fusion_channels] * len(cfg.fusion_scales)
        self.fusion = None
        bad_s = [s for s in mcfg.sample_strides if s not in self.backbone.strides[1:]]
        if bad_s:
            raise ValueError(
                f"model.sample_strides: {bad_s} are not backbone levels coarser than {mcfg.feature_stride}"
            )
        return [Cn] + [self.backbone.channels[self.backbone.strides.index(s)] for s in mcfg.sample_strides]

    def _build_context_prior(self) -> None:
        """MonoScene's context prior at the main U-Net's bottleneck (refused where it is odd on an axis)."""
        mcfg = self.mcfg
        shape = self.lift_grid.shape
        for _ in range(len(mcfg.encoder_widths) - 1):
            shape = tuple((s + 1) // 2 for s in shape)  # a stride-2 3x3x3 conv, padding 1
        if any(s % 2 for s in shape):
            raise ValueError(
                f"cigocc.context_prior: the 3D U-Net's bottleneck {shape} must be even on every axis "
                "(2x2x2 supervoxels); change model.lift_downsample or model.encoder_widths"
            )
        self.context_prior = ContextPrior3D(mcfg.encoder_widths[-1], shape, self.cfg.num_relations)
        self.bottleneck_shape = shape

    def forward(
        self, images: torch.Tensor, intrinsics: torch.Tensor, T_ego_from_cam: torch.Tensor
    ) -> tuple[OccNetOutput, dict[str, torch.Tensor]]:
        """Logits and the 2D branch outputs.

        Args:
            images: ``(B, N, 3, H, W)`` in [0, 1] (N = 1 on SemanticKITTI); intrinsics ``(B, N, 3,
                3)``; T_ego_from_cam ``(B, N, 4, 4)``.
        Returns:
            :class:`OccNetOutput` (``logits (B, C, X, Y, Z)``) and a dict of the auxiliary outputs
            the configuration has: 2D maps at the feature stride, each ``(B*N, ., h, w)``:
            ``log_depth`` (1 channel), ``seg_logits`` (``seg_classes``), ``affinity_logits`` (2: right, down)
            or ``mask_embeddings`` (``branch_channels``); ``stage1_logits`` ``(B, C, X', Y', Z')``
            at the lift grid; ``relation_logits`` ``(B, R, N_b, N_b / 8)`` over the bottleneck.
        """
        dims = check_shape(images, "B N 3 H W", name="images")
        check_shape(intrinsics, "B N 3 3", name="intrinsics", dims={"B": dims["B"], "N": dims["N"]})
        check_shape(T_ego_from_cam, "B N 4 4", name="T_ego_from_cam", dims={"B": dims["B"], "N": dims["N"]})
        B, N, _, H, W = images.shape
        top = self.backbone.strides[-1]
        if H % top or W % top:
            raise ValueError(f"images: H, W = {(H, W)} must be multiples of the backbone stride {top}")
        x = (images.flatten(0, 1) - self.mean) / self.std
        levels = self.backbone(x)
        app = self.neck(levels)  # (B*N, Cn, h, w)
        aux: dict[str, torch.Tensor] = {}
        inputs = [app]
        if self.use_depth:
            hd = self.depth_branch(app)
            lo, hi = self.cfg.depth_range
            log_d = self.depth_out(hd).clamp(min=float(torch.tensor(lo).log()), max=float(torch.tensor(hi).log()))
            aux["log_depth"] = log_d
            inputs.append(torch.cat([hd, log_d], 1))
        if self.use_seg:
            hs = self.seg_branch(app)
            sl = self.seg_out(hs)
            aux["seg_logits"] = sl
            inputs.append(torch.cat([hs, sl.softmax(1)], 1))
        if self.mask_head is not None:
            aux["affinity_logits" if self.cfg.distill == "affinity" else "mask_embeddings"] = self.mask_head(app)
        if self.fusion is not None:
            maps = self.fusion(inputs, (H, W))
        else:
            maps = [app] + [levels[self.backbone.strides.index(s)] for s in self.mcfg.sample_strides]
        maps = [m.view(B, N, *m.shape[1:]) for m in maps]
        lifted = self.lift(maps, intrinsics, T_ego_from_cam, (H, W))  # (B, C', X', Y', Z')
        if self.queries:
            lifted = torch.cat(
                [
                    lifted,
                    self.depth_query_channels(
                        aux["log_depth"].view(B, N, 1, *aux["log_depth"].shape[-2:]), intrinsics, T_ego_from_cam, (H, W)
                    ),
                ],
                1,
            )
        x3d = lifted
        if self.stage1 is not None:
            s1 = self.stage1(lifted)  # (B, w0, X', Y', Z')
            aux["stage1_logits"] = self.stage1_head(s1)
            x3d = torch.cat([lifted, s1], 1)
        if self.context_prior is not None:

            def bottleneck(x: torch.Tensor) -> torch.Tensor:
                y, aux["relation_logits"] = self.context_prior(x)
                return y

            feats = self.encoder(x3d, bottleneck=bottleneck)
        else:
            feats = self.encoder(x3d)
        logits = self.head(feats)
        X, Y, Z = self.output_grid.shape
        if logits.shape[-3:] != (X, Y, Z):
            logits = F.interpolate(logits, size=(X, Y, Z), mode="trilinear", align_corners=False)
        out = OccNetOutput(
            logits=logits,
            depth_prob=None,
            context=None,
            lifted=lifted,
            features=feats,
            image_features=app.view(B, N, *app.shape[1:]),
        )
        return out, aux

    def depth_query_channels(
        self, log_depth: torch.Tensor, intrinsics: torch.Tensor, T_ego_from_cam: torch.Tensor, image_hw: tuple[int, int]
    ) -> torch.Tensor:
        """``(B, 2, X', Y', Z')``: nearness to the predicted surface and signed offset behind it,
        averaged over the cameras that see each voxel (0 where none does).

        Args:
            log_depth: ``(B, N, 1, h, w)`` predicted log depth.
        """
        B, N = log_depth.shape[:2]
        centres = self.lift.centres  # (P, 3)
        xy, valid = project_points(centres, intrinsics, T_ego_from_cam, image_hw)  # (B, N, P, 2), (B, N, P)
        T = invert_poses(T_ego_from_cam.float())  # (B, N, 4, 4) cam <- ego
        z = (centres.float() @ T[..., 2, :3, None])[..., 0] + T[..., 2, 3, None]  # (B, N, P) camera depth
        acc = log_depth.new_zeros(B, 2, centres.shape[0])
        for n in range(N):
            d = F.grid_sample(
                log_depth[:, n].float(),
                xy[:, n, None].float(),
                mode="bilinear",
                padding_mode="border",
                align_corners=False,
            )[:, 0, 0].exp()  # (B, P)
            m = valid[:, n].float()
            near = torch.exp(-(z[:, n] - d).abs() / self.cfg.depth_query_sigma)
            behind = ((z[:, n] - d) / 10.0).clamp(-1, 1)
            acc = acc + torch.stack([near, behind], 1) * m[:, None]
        acc = acc / valid.sum(1).clamp(min=1)[:, None].to(acc)
        return acc.view(B, 2, *self.lift_grid.shape)


def affinity_targets(segments: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Same-segment affinities of a segment-id map: targets and validity, each ``(M, 2, h, w)``.

    Channel 0: pixel and its right neighbour share a segment; channel 1: its lower neighbour. Pairs
    with a 0 (no segment) or outside the map are invalid.

    Args:
        segments: ``(M, h, w)`` long segment ids, 0 = none.
    """
    check_shape(segments, "M h w", name="segments")
    s = segments.long()
    tgt = torch.zeros(s.shape[0], 2, *s.shape[1:], dtype=torch.float32, device=s.device)
    val = torch.zeros_like(tgt, dtype=torch.bool)
    tgt[:, 0, :, :-1] = (s[:, :, :-1] == s[:, :, 1:]).float()
    val[:, 0, :, :-1] = (s[:, :, :-1] > 0) & (s[:, :, 1:] > 0)
    tgt[:, 1, :-1] = (s[:, :-1] == s[:, 1:]).float()
    val[:, 1, :-1] = (s[:, :-1] > 0) & (s[:, 1:] > 0)
    return tgt, val


def segment_mask_bce(embeddings: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """BCE of per-segment mask logits against the segments' binary masks (``distill: masks``).

    For every image ``m`` and segment id ``s > 0`` in it: the query ``q_s`` is the mean embedding
    of the segment's pixels; the logit of pixel ``p`` is ``<e_p, q_s> / sqrt(D)``; the target is
    ``[segment(p) == s]`` (pixels of no segment are negatives of every mask). The result is the
    mean over every (segment, pixel) pair of the batch; 0 (connected) when no image has a segment.

    Args:
        embeddings: ``(M, D, h, w)``; segments: ``(M, h, w)`` long, 0 = none.
    """
    d = check_shape(embeddings, "M D h w", name="embeddings")
    check_shape(segments, "M h w", name="segments", dims={k: d[k] for k in ("M", "h", "w")})
    D = d["D"]
    logits, targets = [], []
    for m in range(d["M"]):
        e = embeddings[m].float().flatten(1)  # (D, P)
        ids = segments[m].long().flatten()  # (P,)
        uniq = torch.unique(ids[ids > 0])
        if uniq.numel() == 0:
            continue
        member = ids[None] == uniq[:, None]  # (S, P)
        q = (member.float() @ e.T) / member.sum(1, keepdim=True).float()  # (S, D)
        logits.append((q @ e / D**0.5).flatten())  # (S*P,)
        targets.append(member.float().flatten())
    if not logits:
        return embeddings.sum() * 0
    return F.binary_cross_entropy_with_logits(torch.cat(logits), torch.cat(targets))


def _nearest(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """``(M, H, W)`` map sampled at the centres of an ``hw`` grid (nearest)."""
    return F.interpolate(x[:, None].float(), size=hw, mode="nearest")[:, 0].to(x.dtype)


class CIGOccMethod(nn.Module):
    """:class:`CIGOccNet` + MonoScene's SSC losses + the 2D branch losses; implements
    :class:`occkit.methods.base.Method`."""

    def __init__(self, model_cfg: OccNetConfig, method_cfg: CIGOccConfig) -> None:
        super().__init__()
        c = method_cfg
        C = model_cfg.num_classes
        if c.class_counts is not None and len(c.class_counts) != C:
            raise ValueError(f"cigocc.class_counts: expected {C} values, got {len(c.class_counts)}")
        if not 0 <= c.empty_index < C:
            raise ValueError(f"cigocc.empty_index: {c.empty_index} is not a class of {C}")
        for k in (
            "depth_weight",
            "seg_weight",
            "distill_weight",
            "ce_weight",
            "scal_geo_weight",
            "scal_sem_weight",
            "stage1_weight",
            "frustum_weight",
            "relation_weight",
        ):
            if getattr(c, k) < 0:
                raise ValueError(f"cigocc.{k} must be >= 0")
        if c.seg_classes < 2:
            raise ValueError(f"cigocc.seg_classes: expected >= 2 classes of the semantics prior, got {c.seg_classes}")
        if c.frustum_size < 1:
            raise ValueError(f"cigocc.frustum_size: expected >= 1 frusta per side, got {c.frustum_size}")
        if c.num_relations not in (2, 4):
            raise ValueError(f"cigocc.num_relations: expected 4 (MonoScene's) or 2 (binary), got {c.num_relations}")
        if c.relation_weight > 0 and not c.context_prior:
            raise ValueError("cigocc.relation_weight > 0 supervises the context prior: set cigocc.context_prior: true")
        self.model_cfg, self.cfg = model_cfg, method_cfg
        self.model = CIGOccNet(model_cfg, method_cfg)
        out_shape = self.model.output_grid.shape
        self.stage1_factor = tuple(o // l for o, l in zip(out_shape, self.model.lift_grid.shape))
        self.bottleneck_factor = None
        if self.model.bottleneck_shape is not None:
            if any(o % b for o, b in zip(out_shape, self.model.bottleneck_shape)):
                raise ValueError(
                    f"cigocc.context_prior: the bottleneck {self.model.bottleneck_shape} does not divide the output "
                    f"grid {out_shape}"
                )
            self.bottleneck_factor = tuple(o // b for o, b in zip(out_shape, self.model.bottleneck_shape))
        if c.frustum_weight > 0:  # output voxel centres, projected every step (the camera may change)
            self.register_buffer("output_centres", self.model.output_grid.centers().reshape(-1, 3), persistent=False)
        self.register_buffer("label_counts", torch.zeros(C, dtype=torch.float64))
        """Voxels per class seen by ``training_step`` (``class_balance: running``)."""

    def forward(self, batch: Batch) -> tuple[OccNetOutput, dict[str, torch.Tensor]]:
        return self.model(batch.images, batch.intrinsics, batch.T_ego_from_cam)

    @torch.no_grad()
    def predict(self, batch: Batch) -> torch.Tensor:
        """Logits ``(B, num_classes, X, Y, Z)``."""
        return self.forward(batch)[0].logits

    def class_weight(self) -> torch.Tensor | None:
        """``(C,)`` CE weights now (None = uniform)."""
        c = self.cfg
        if c.class_counts is not None:
            return ssc_class_weights(torch.tensor(c.class_counts, dtype=torch.float64)).float()
        if c.class_balance == "dataset":
            raise ValueError(
                "cigocc.class_balance='dataset' has no counts: the engine counts the training split's labels when "
                "training starts (occkit.experiment.resolve_auto_class_counts); call it before training, or give "
                "cigocc.class_counts"
            )
        if c.class_balance == "running" and float(self.label_counts.sum()) > 0:
            return ssc_class_weights(self.label_counts).float()
        return None

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        c = self.cfg
        if batch.occupancy is None:
            raise ValueError("batch.occupancy is None: cigocc trains on 3D labels (SemanticKITTI .label)")
        check_shape(
            batch.occupancy, "B X Y Z", name="batch.occupancy", dims=dict(zip("XYZ", self.model.output_grid.shape))
        )
        target = batch.occupancy.long()
        if batch.mask_camera is not None:
            target = torch.where(batch.mask_camera.bool(), target, torch.full_like(target, c.ignore_index))
        if c.class_balance == "running" and c.class_counts is None:
            with torch.no_grad():
                self.label_counts += count_labels(target, None, self.model_cfg.num_classes, c.ignore_index).to(
                    self.label_counts
                )
        out, aux = self.forward(batch)
        logits = out.logits
        losses: dict[str, torch.Tensor] = {}
        # CE, scal_geo, scal_sem and the frustum proportions from one gather of the known voxels and one softmax
        weights = {
            "ce": c.ce_weight,
            "scal_geo": c.scal_geo_weight,
            "scal_sem": c.scal_sem_weight,
            "frustum": c.frustum_weight,
        }
        terms = tuple(k for k, w in weights.items() if w > 0)
        ids, n = self.frustum_ids(batch) if c.frustum_weight > 0 else (None, 0)
        for k, v in ssc_losses(
            logits, target, self.class_weight(), c.empty_index, c.ignore_index, terms, ids, n
        ).items():
            losses[f"loss_{k}"] = weights[k] * v
        if "log_depth" in aux and c.depth_weight > 0:
            if batch.prior_depth is None:
                raise ValueError("cigocc: depth features need the depth prior (data.priors with kind 'depth')")
            ld = aux["log_depth"][:, 0]  # (M, h, w)
            gt = _nearest(batch.prior_depth.flatten(0, 1), tuple(ld.shape[-2:]))
            known = gt > 0
            # No host branch on "any pixel known" (a device wait per step): the mean of none is NaN and
            # torch.where keeps 0 then, with no gradient. The boolean index itself waits once for its
            # size; kept, as a masked sum would round differently from the recorded first losses.
            depth_l1 = (ld - gt.clamp(min=1e-3).log()).abs()[known].mean()
            losses["loss_depth"] = c.depth_weight * torch.where(known.any(), depth_l1, ld.sum() * 0)
        if "seg_logits" in aux and c.seg_weight > 0:
            if batch.prior_semantics is None:
                raise ValueError(
                    "cigocc: segmentation features need the semantics prior (data.priors with kind 'semantics')"
                )
            sl = aux["seg_logits"]
            gt = _nearest(batch.prior_semantics.flatten(0, 1), tuple(sl.shape[-2:])).long()
            gt = torch.where(gt < c.seg_classes, gt, torch.full_like(gt, 255))
            seg_ce = F.cross_entropy(sl.float(), gt, ignore_index=255)  # NaN when every pixel is ignored
            losses["loss_seg"] = c.seg_weight * torch.where((gt != 255).any(), seg_ce, sl.sum() * 0)
        if c.distill_weight > 0 and ("affinity_logits" in aux or "mask_embeddings" in aux):
            if batch.prior_segments is None:
                raise ValueError("cigocc: distillation needs the segments prior (data.priors with kind 'segments')")
            if "affinity_logits" in aux:
                al = aux["affinity_logits"]
                segs = _nearest(batch.prior_segments.flatten(0, 1), tuple(al.shape[-2:]))
                tgt, val = affinity_targets(segs)
                # as loss_depth: the boolean index waits once for its size, the empty case is a where
                bce = F.binary_cross_entropy_with_logits(al.float()[val], tgt[val])
                losses["loss_distill"] = c.distill_weight * torch.where(val.any(), bce, al.sum() * 0)
            else:
                emb = aux["mask_embeddings"]
                segs = _nearest(batch.prior_segments.flatten(0, 1), tuple(emb.shape[-2:]))
                losses["loss_distill"] = c.distill_weight * segment_mask_bce(emb, segs)
        if "stage1_logits" in aux and c.stage1_weight > 0:
            s1 = aux["stage1_logits"]
            t1 = downsample_labels(
                target, self.stage1_factor, c.empty_index, c.ignore_index, self.model_cfg.num_classes
            )
            losses["loss_stage1"] = c.stage1_weight * sum(
                ssc_losses(s1, t1, self.class_weight(), c.empty_index, c.ignore_index).values()
            )
        if "relation_logits" in aux and c.relation_weight > 0:
            tb = downsample_labels(
                target, self.bottleneck_factor, c.empty_index, c.ignore_index, self.model_cfg.num_classes
            )
            rel = relation_targets(tb, c.num_relations, c.empty_index, c.ignore_index, self.model_cfg.num_classes)
            losses["loss_relation"] = c.relation_weight * relation_loss(aux["relation_logits"], rel)
        return losses

    def frustum_ids(self, batch: Batch) -> tuple[torch.Tensor, int]:
        """Local frustum of every output voxel ``(B, X, Y, Z)`` long (-1 = seen by no camera) and
        the number of frusta: ``frustum_size**2`` per camera, a voxel seen by several cameras taking
        the first's (SemanticKITTI has one)."""
        B, N, _, H, W = batch.images.shape
        size = self.cfg.frustum_size
        xy, valid = project_points(
            self.output_centres, batch.intrinsics, batch.T_ego_from_cam, (H, W)
        )  # (B, N, P, 2), (B, N, P)
        uv = (xy + 1) / 2 * xy.new_tensor([W, H])  # pixel coordinates
        ids = torch.full((B, valid.shape[2]), -1, dtype=torch.long, device=valid.device)  # (B, P)
        for n in range(N):
            fid = frustum_ids(uv[:, n], valid[:, n], (H, W), size)
            ids = torch.where((ids < 0) & (fid >= 0), fid + n * size * size, ids)
        return ids.view(B, *self.model.output_grid.shape), N * size * size


# ------------------------------------------------------------------------------------ registration
def resolve_class_counts(cfg: Any, train_set: Any, max_frames: int = 2000, progress: bool = False) -> Any:
    """``cigocc.class_balance: dataset`` without ``class_counts``: the voxel counts of the training
    frames' labels (at most ``max_frames``, evenly spaced; :func:`occkit.data.stats.count_frame_classes`)
    written into a copy of ``cfg``, so that the run's config.json records them: the voxels the
    format scores (SemanticKITTI: every label but 255 outside ``.invalid``, what cigocc trains on;
    Occ3D: inside the camera mask). ``cfg`` unchanged otherwise.

    With segmentation features, ``cigocc.seg_classes`` must be the size of the class table of the
    data's priors (:func:`occkit.priors.classes.prior_classes_of`): a one-line error says what to set.
    """
    from occkit.data.stats import fill_class_counts

    c = cfg.cigocc
    if "segmentation" in c.features:
        from occkit.priors.classes import prior_classes_of_dataset

        table = prior_classes_of_dataset(train_set)
        if table.num_classes != c.seg_classes:
            root = getattr(train_set, "root", None) or getattr(getattr(train_set, "dataset", None), "root", "the data")
            raise ValueError(
                f"cigocc.seg_classes: {c.seg_classes}, but the priors of {root} are in the {table.name} classes "
                f"({table.num_classes}): set cigocc.seg_classes={table.num_classes}"
            )
    if c.class_balance != "dataset" or c.class_counts is not None:
        return cfg
    what = "cigocc.class_balance='dataset'"
    return fill_class_counts(cfg, "cigocc", train_set, what=what, max_frames=max_frames, progress=progress)


METHOD = MethodSpec(
    name="cigocc",
    summary="monocular semantic scene completion on SemanticKITTI (CIGOcc; kitti-mono is its MonoScene baseline)",
    sections={"cigocc": CIGOccConfig},
    build=lambda cfg, load_run: CIGOccMethod(cfg.model, cfg.cigocc),
    resolve=resolve_class_counts,
    export=ExportSupport(head=lambda method: ExportHead(method.model, output_index=0)),
)
