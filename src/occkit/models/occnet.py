"""The camera occupancy network, assembled from its parts in one place (:func:`build_occnet`).

images ``(B, N, 3, H, W)`` -> ImageNet normalisation -> timm backbone -> FPN neck at
``feature_stride`` -> LSS view transform (depth distribution x context, splatted into the lift
grid) -> either

- ``head="voxel"``: 3D residual U-Net + per-voxel classifier, or
- ``head="bev"`` (FlashOcc): splat into a BEV map (z collapsed), 2D residual U-Net, and a head
  predicting ``num_classes * Z_out`` channels reshaped to heights (channel-to-height),

-> logits ``(B, num_classes, X, Y, Z)`` on the output grid (upsampled from the lift grid when
that is coarser: trilinear for voxels, bilinear over x, y for BEV).

``lift`` chooses the view transform: 'lss' (the depth distribution splat above, the default) or
'sample' (EasyOcc / MonoScene's FLoSP: every lift-grid voxel centre samples the image features
where it projects, averaged over the cameras that see it; no depth distribution,
:class:`occkit.models.lift.SampleViewTransform`), optionally from several feature levels
(``sample_strides``), summed.

``modality`` chooses what fills the lift grid (RadOcc's teachers, :mod:`occkit.models.lidar`):
'camera' (the above), 'lidar' (the frame's LiDAR points voxelised into the lift grid and a
3D conv stem: no image path at all) or 'fusion' (the camera lift's volume and the LiDAR volume
concatenated before the 3D encoder). LiDAR modalities need the voxel head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from occkit.geometry.grid import Grid
from occkit.labels import OCC3D_NUM_CLASSES
from occkit.models.backbone import Backbone
from occkit.models.encoder3d import UNetEncoder
from occkit.models.heads import BEVHead, VoxelHead
from occkit.models.lidar import LidarVoxelEncoder
from occkit.models.lift import LSSViewTransform, SampleViewTransform
from occkit.models.neck import FPNNeck
from occkit.models.norm import frame_batchnorms
from occkit.shapes import check_shape

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class OccNetConfig:
    """Configuration of :class:`OccNet` (defaults: the ``occ3d-r50`` setting)."""

    backbone: str = "resnet50"
    """timm model name (``features_only``), e.g. ``resnet18``, ``resnet50``."""
    backbone_weights: str | None = None
    """Optional local safetensors file with the backbone's timm state_dict; None = random init.
    occkit's own pretrained backbone is ``backbone.safetensors`` of a ``world`` prior run
    (``occkit priors train``: semantics, metric depth, boundaries and vision-language features
    learnt on a synthetic world of another seed), its stand-in for ImageNet / depth pretraining."""
    freeze_backbone: bool = False
    """Keep the backbone fixed: no gradient, and its BatchNorms in eval mode in training too (they
    normalise as ``image_norm_eval`` says, so training and inference agree). For a pretrained
    backbone (``backbone_weights``) where a method leaves the 2D network alone; a training step
    then skips the backbone's backward pass."""
    neck_channels: int = 256
    """Channels of the FPN neck output (also the depth net's hidden width)."""
    feature_stride: int = 16
    """Stride of the lifted image features; the backbone must have a level at this stride."""
    depth_min: float = 1.0
    """Nearest depth bin edge (metres, camera z)."""
    depth_max: float = 45.0
    """Farthest depth bin edge (metres)."""
    depth_step: float = 0.5
    """Depth bin width (metres); D = (depth_max - depth_min) / depth_step bins."""
    context_channels: int = 32
    """C, channels of the lifted context features."""
    depth_blocks: int = 0
    """Residual blocks (dilations 1, 2, 4, ...) in the depth net before its 1x1 output; 0 = the
    plain 3x3 conv. A wider view helps the depth of objects far from their ground contact."""
    depth_geometry: bool = False
    """Camera-aware depth net: append each feature pixel's ego-frame ray direction and the inverse
    depth at which its ray meets the ground plane (:func:`occkit.models.lift.ray_geometry`) to the
    depth net's input."""
    ground_z: float = 0.0
    """Ego-frame height of the ground plane for ``depth_geometry`` (0: nuScenes' and the synthetic
    world's ego frames sit on the road)."""
    lift_visibility: bool = False
    """Append 3 ray channels to the lifted volume (:func:`occkit.models.lift.splat_visibility`: mean
    transmittance and termination probability of the frustum points in each cell, and whether any
    ray passes), so the 3D net can tell seen free space from the unseen space behind surfaces."""
    point_range: tuple[float, float, float, float, float, float] = (-40.0, -40.0, -1.0, 40.0, 40.0, 5.4)
    """Output grid range [xmin, ymin, zmin, xmax, ymax, zmax] metres, ego frame (Occ3D)."""
    voxel_size: float = 0.4
    """Output voxel size (metres); Occ3D: 0.4 m -> (200, 200, 16)."""
    lift_downsample: tuple[int, int, int] = (1, 1, 1)
    """Lift grid = output grid coarsened by these factors per (x, y, z); logits are upsampled.
    The z factor is ignored by the BEV head (it predicts every output height directly)."""
    head: Literal["voxel", "bev"] = "voxel"
    """'voxel': 3D encoder + per-voxel head; 'bev': FlashOcc BEV encoder + channel-to-height."""
    voxel_upsample: Literal["trilinear", "subvoxel"] = "trilinear"
    """How the voxel head reaches the output grid from a coarser lift grid: 'trilinear'
    interpolation of the coarse logits, or 'subvoxel': each coarse voxel predicts the logits of
    its ``lift_downsample`` children (:class:`occkit.models.heads.VoxelHead`)."""
    encoder_widths: tuple[int, ...] = (32, 64, 128)
    """Encoder U-Net channels per stage (stage i at 1/2**i of the lift resolution). Stage 0 runs at
    the full lift resolution: keep it narrow for the voxel head (3D convs on 200x200x16)."""
    encoder_blocks: int = 1
    """Residual blocks per encoder stage."""
    channels_last: bool = False
    """Run the voxel path's 3D encoder and head in the NDHWC memory layout (``channels_last_3d``):
    oneDNN's bf16 and cuDNN's mixed-precision 3D convolutions are faster so (synth-cpu on 2 CPU
    cores under bf16: inference 6.1 -> 9.5 frames/s, BENCHMARKS.md), and so are oneDNN's float32
    ones on AVX2-only CPUs (a synth-abl training step 12-14 % faster, its backward 18 %;
    BENCHMARKS.md). A memory layout only: weights and state dicts are the same, outputs equal up
    to the order of float sums."""
    image_channels_last: bool = False
    """Run the image path (backbone, neck, depth net) in the NHWC memory layout (``channels_last``),
    in which cuDNN's bf16 / fp16 2D convolutions take their tensor-core kernels without transposing
    each layer's input and output. A memory layout only, as ``channels_last``: weights and state
    dicts are the same, outputs equal up to the order of float sums."""
    lifted_autocast: bool = False
    """Under autocast (``optim.amp``), hand the lifted volume to the 3D encoder in the autocast dtype
    (bf16 / fp16) rather than in the float32 the splat sums in. The encoder's convolutions cast it so
    anyway; what changes is its identity skip: stage 0's residual sum, and with it the full-resolution
    skip the decoder concatenates, are then no longer promoted to float32, nor cast back to bf16 by every
    convolution that reads them (occ3d-r50: 2.5 of 11.3 GB a frame read and written in an eager forward,
    ``benchmarks/bench_breakdown.py``). Outputs within the autocast dtype's rounding; without autocast
    nothing changes."""
    encoder_fuse: Literal["concat", "split"] = "concat"
    """How the 3D (or BEV) encoder's decoder fuses a skip with the coarser stage above it
    (:class:`occkit.models.encoder3d.UNetEncoder`): 'concat' upsamples the coarser stage (nearest,
    x2), concatenates and convolves; 'split' computes the same convolution as two: the skip's part
    of the kernel on the skip, and the rest as a stride-2 transposed convolution of the coarse
    stage (the nearest upsampling folded into its 4-tap kernel), summed. The same weights and
    values up to the order of float sums, without the upsampled and concatenated tensors and with
    a quarter of the coarse part's FLOPs (occ3d-r50: 1012 -> 813 GFLOP a frame)."""
    num_classes: int = OCC3D_NUM_CLASSES
    """Output classes (Occ3D: 18, 17 = free)."""
    lift: Literal["lss", "sample"] = "lss"
    """View transform: 'lss' (depth distribution x context splatted along each pixel's ray) or
    'sample' (bilinear samples of the image features at the projections of the lift-grid voxel
    centres, averaged over the cameras that see a voxel: EasyOcc, MonoScene; ``depth_*`` and
    ``depth_blocks``/``depth_geometry``/``lift_visibility`` then do nothing, ``depth_prob`` is
    None, so recipes must not put a depth loss on it)."""
    sample_strides: tuple[int, ...] = ()
    """``lift: sample``: coarser backbone levels (their strides, each > ``feature_stride``) sampled
    as well as the neck output, each through its own 1x1 conv to ``context_channels``, the samples
    summed (MonoScene's FLoSP over scales); empty = the neck output only."""
    sample_coords: bool = False
    """``lift: sample``: append each voxel's ego position, scaled to [-1, 1] over the grid (3
    channels): along a camera ray every voxel samples the same features, and the 3D network needs
    to know how far a voxel lies to place the surface."""
    modality: Literal["camera", "lidar", "fusion"] = "camera"
    """What fills the lift grid: 'camera' (the LSS lift of the images), 'lidar' (the frame's LiDAR
    points, ``Batch.lidar``, voxelised into the lift grid: occupancy, log point count, mean
    height and intensity per cell, :func:`occkit.models.lidar.voxelize_lidar`, then a 3D conv
    stem; no image path), or 'fusion' (both volumes concatenated before the 3D encoder). The
    LiDAR modalities need ``head: voxel`` and LiDAR in the batch (``data.load_extras: true`` on
    the synthetic world); they are RadOcc's teachers."""
    lidar_channels: int = 32
    """Width of the LiDAR stem's features (``modality`` 'lidar' or 'fusion')."""
    lidar_intensity_scale: float = 1.0
    """LiDAR intensities are divided by this (nuScenes and the synthetic world store 0..255: 255)."""
    image_norm_eval: Literal["running", "frame"] = "running"
    """How the BatchNorms of the image path (backbone, neck, depth net) normalise at inference:
    'running', with the running averages (PyTorch's eval mode); 'frame', with the statistics of
    each frame's own camera images, as training with a batch of one frame does
    (:mod:`occkit.models.norm`). 'frame' suits small training batches and backbones trained from
    scratch, whose running averages mix scenes of different light; the weights are the same
    either way, so a checkpoint can be evaluated both ways."""


@dataclass
class OccNetOutput:
    """What :meth:`OccNet.forward` returns (later methods use the intermediates).

    Attributes:
        logits: ``(B, num_classes, X, Y, Z)`` on the output grid.
        depth_prob: ``(B, N, D, h, w)`` depth distribution per feature pixel (sums to 1 over D);
            None for a LiDAR-only network (``modality: lidar``), as are ``context`` and
            ``image_features``.
        context: ``(B, N, C, h, w)`` lifted context features.
        lifted: splatted volume ``(B, C, X', Y', Z')`` (voxel head) or BEV ``(B, C, X', Y')``.
        features: encoder output, same layout as ``lifted`` with ``encoder_widths[0]`` channels.
        image_features: neck output ``(B, N, neck_channels, h, w)`` (2D auxiliary heads read it).
    """

    logits: torch.Tensor
    depth_prob: torch.Tensor | None
    context: torch.Tensor | None
    lifted: torch.Tensor
    features: torch.Tensor
    image_features: torch.Tensor | None = None


class OccNet(nn.Module):
    """Camera occupancy network; build it with :func:`build_occnet`.

    Attributes:
        cfg: its config; output_grid / lift_grid: the grids; depth_bins: ``(D,)`` bin centres.
    """

    def __init__(
        self,
        cfg: OccNetConfig,
        output_grid: Grid,
        lift_grid: Grid,
        backbone: Backbone | None,
        neck: FPNNeck | None,
        view_transform: LSSViewTransform | SampleViewTransform | None,
        encoder: UNetEncoder,
        head: VoxelHead | BEVHead,
        lidar_encoder: LidarVoxelEncoder | None = None,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.output_grid = output_grid
        self.lift_grid = lift_grid
        self.backbone = backbone
        self.neck = neck
        self.view_transform = view_transform
        self.encoder = encoder
        self.head = head
        self.lidar_encoder = lidar_encoder
        self._frame_norms = [
            m for part in (backbone, neck, view_transform) if part is not None for m in frame_batchnorms(part)
        ]
        self.set_image_norm_eval(cfg.image_norm_eval)
        self.frozen_backbone = bool(cfg.freeze_backbone and backbone is not None)
        if self.frozen_backbone:
            backbone.requires_grad_(False)
            backbone.eval()
        self.channels_last = cfg.channels_last and encoder.dims == 3
        if self.channels_last:  # see OccNetConfig.channels_last
            encoder.to(memory_format=torch.channels_last_3d)
            head.to(memory_format=torch.channels_last_3d)
            if isinstance(view_transform, LSSViewTransform):
                view_transform.channels_last = True  # the splat writes its volume channels-last directly
        self.image_channels_last = bool(cfg.image_channels_last and backbone is not None)
        if self.image_channels_last:  # see OccNetConfig.image_channels_last
            for part in (backbone, neck, view_transform):
                part.to(memory_format=torch.channels_last)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def set_image_norm_eval(self, mode: str) -> None:
        """Switch how the image path's BatchNorms normalise at inference ('running' or 'frame',
        :attr:`OccNetConfig.image_norm_eval`); the weights stay as they are."""
        if mode not in ("running", "frame"):
            raise ValueError(f"image_norm_eval: expected 'running' or 'frame', got {mode!r}")
        for m in self._frame_norms:
            m.frame_stats = mode == "frame"
        self.cfg.image_norm_eval = mode  # type: ignore[assignment]

    def train(self, mode: bool = True) -> OccNet:
        """``nn.Module.train``, keeping a frozen backbone (``freeze_backbone``) in eval mode."""
        super().train(mode)
        if self.frozen_backbone:
            self.backbone.eval()
        return self

    @property
    def depth_bins(self) -> torch.Tensor:
        if self.view_transform is None:
            raise AttributeError("depth_bins: a LiDAR-only network (modality 'lidar') has no depth bins")
        return self.view_transform.depth_bins

    @property
    def uses_camera(self) -> bool:
        """Whether the network reads the images (modality 'camera' or 'fusion')."""
        return self.view_transform is not None

    @property
    def uses_lidar(self) -> bool:
        """Whether the network reads ``lidar`` (modality 'lidar' or 'fusion')."""
        return self.lidar_encoder is not None

    def forward(
        self,
        images: torch.Tensor,
        intrinsics: torch.Tensor,
        T_ego_from_cam: torch.Tensor,
        depth_bins: torch.Tensor | None = None,
        lidar: list[torch.Tensor] | None = None,
    ) -> OccNetOutput:
        """Predict occupancy logits.

        Args:
            images: ``(B, N, 3, H, W)`` float in [0, 1]; H and W multiples of the largest backbone
                stride kept (32 for ResNets).
            intrinsics: ``(B, N, 3, 3)`` of these images (after any resize/crop).
            T_ego_from_cam: ``(B, N, 4, 4)`` camera (OpenCV) -> ego.
            depth_bins: optional ``(B, N, h, w)`` sensor depth bin per feature pixel (-1 = unknown)
                that the lift uses instead of the predicted depth where known (see
                :meth:`LSSViewTransform.forward`).
            lidar: ``B`` tensors ``(P_b, 4)`` (x, y, z, intensity) in the ego frame; needed by the
                LiDAR modalities, ignored by 'camera'.
        Returns:
            :class:`OccNetOutput`.
        """
        dims = check_shape(images, "B N 3 H W", name="images")
        check_shape(intrinsics, "B N 3 3", name="intrinsics", dims={"B": dims["B"], "N": dims["N"]})
        check_shape(T_ego_from_cam, "B N 4 4", name="T_ego_from_cam", dims={"B": dims["B"], "N": dims["N"]})
        if not images.is_floating_point():
            raise ValueError(f"images: expected float in [0, 1], got dtype {images.dtype}")
        B, N, _, H, W = images.shape
        feats = depth_prob = context = None
        if self.uses_lidar:
            if lidar is None or len(lidar) != B:
                raise ValueError(
                    f"lidar: modality {self.cfg.modality!r} needs one LiDAR point tensor per frame ({B}), got "
                    f"{'None' if lidar is None else len(lidar)} (load the LiDAR: data.load_extras: true on a layout "
                    "whose frames carry it, the synthetic world's or nuScenes' with data.lidar_infos; SemanticKITTI's "
                    "and KITTI-360's voxel folders and NYUv2's carry none)"
                )
            lidar_volume = self.lidar_encoder(lidar)  # (B, lidar_channels, X', Y', Z')
        if self.uses_camera:
            top = self.backbone.strides[-1]
            if H % top or W % top:
                raise ValueError(f"images: H, W = {(H, W)} must be multiples of the backbone stride {top}")
            for m in self._frame_norms:
                m.images_per_frame = N
            x = (images.flatten(0, 1) - self.mean) / self.std  # (B*N, 3, H, W)
            if x.dtype != self.mean.dtype and not torch.is_autocast_enabled(x.device.type):
                x = x.to(self.mean.dtype)  # .half() / .bfloat16() weights read float32 images
            if self.image_channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen_backbone):
                levels = self.backbone(x)  # (B*N, C_l, H/s_l, W/s_l) per level
            feats = self.neck(levels)  # (B*N, C_neck, H/s, W/s)
            feats = feats.view(B, N, *feats.shape[1:])  # (B, N, C_neck, h, w)
            if isinstance(self.view_transform, SampleViewTransform):
                extra = [levels[self.backbone.strides.index(s)] for s in self.cfg.sample_strides]
                extra = [f.view(B, N, *f.shape[1:]) for f in extra]  # (B, N, C_l, H/s_l, W/s_l)
                lifted = self.view_transform([feats, *extra], intrinsics, T_ego_from_cam, (H, W))
            else:
                lifted, depth_prob, context = self.view_transform(feats, intrinsics, T_ego_from_cam, (H, W), depth_bins)
            if self.uses_lidar:
                lifted = torch.cat([lifted, lidar_volume.to(lifted.dtype)], 1)  # (B, C + lidar_channels, X', Y', Z')
        else:
            lifted = lidar_volume
        if self.channels_last:
            lifted = lifted.contiguous(memory_format=torch.channels_last_3d)
        enc_in = lifted
        if self.cfg.lifted_autocast and torch.is_autocast_enabled(lifted.device.type):  # see OccNetConfig
            enc_in = lifted.to(torch.get_autocast_dtype(lifted.device.type))
        features = self.encoder(enc_in)
        X, Y, Z = self.output_grid.shape
        if isinstance(self.head, BEVHead):
            y = self.head(features)  # (B, classes * Z, X', Y')
            if y.shape[-2:] != (X, Y):
                y = F.interpolate(y, size=(X, Y), mode="bilinear", align_corners=False)
            logits = self.head.to_voxels(y)  # (B, classes, X, Y, Z)
        else:
            logits = self.head(features)  # (B, classes, X', Y', Z')
            if logits.shape[-3:] != (X, Y, Z):
                logits = F.interpolate(logits, size=(X, Y, Z), mode="trilinear", align_corners=False)
        return OccNetOutput(
            logits=logits,
            depth_prob=depth_prob,
            context=context,
            lifted=lifted,
            features=features,
            image_features=feats,
        )


def lift_grid_of(cfg: OccNetConfig) -> tuple[Grid, Grid]:
    """(output grid, lift grid) of a config; raises when a factor does not divide the grid."""
    output = Grid.from_range(cfg.point_range, cfg.voxel_size)
    factors = tuple(cfg.lift_downsample)
    if len(factors) != 3 or any(f < 1 for f in factors):
        raise ValueError(f"lift_downsample: expected 3 positive integers, got {factors}")
    if cfg.head == "bev":
        factors = (factors[0], factors[1], output.shape[2])  # z collapsed anyway
    for n, f, axis in zip(output.shape, factors, "xyz"):
        if n % f:
            raise ValueError(f"lift_downsample: {axis} factor {f} does not divide the grid size {n}")
    lift = Grid(output.range_min, output.range_max, tuple(s * f for s, f in zip(output.voxel_size, factors)))
    return output, lift


def build_occnet(cfg: OccNetConfig) -> OccNet:
    """Assemble an :class:`OccNet` from ``cfg``; derived sizes (backbone channels from timm's
    ``feature_info``, grid shapes, number of depth bins) are computed here."""
    if cfg.head not in ("voxel", "bev"):
        raise ValueError(f"head: expected 'voxel' or 'bev', got {cfg.head!r}")
    if cfg.modality not in ("camera", "lidar", "fusion"):
        raise ValueError(f"modality: expected 'camera', 'lidar' or 'fusion', got {cfg.modality!r}")
    if cfg.modality != "camera" and cfg.head != "voxel":
        raise ValueError(f"modality {cfg.modality!r}: the LiDAR volume needs head 'voxel', got {cfg.head!r}")
    if cfg.voxel_upsample not in ("trilinear", "subvoxel"):
        raise ValueError(f"voxel_upsample: expected 'trilinear' or 'subvoxel', got {cfg.voxel_upsample!r}")
    output, lift = lift_grid_of(cfg)
    lidar = LidarVoxelEncoder(lift, cfg.lidar_channels, cfg.lidar_intensity_scale) if cfg.modality != "camera" else None
    if cfg.modality == "lidar":
        encoder = UNetEncoder(3, lidar.out_channels, tuple(cfg.encoder_widths), cfg.encoder_blocks, cfg.encoder_fuse)
        sub = tuple(o // l for o, l in zip(output.shape, lift.shape)) if cfg.voxel_upsample == "subvoxel" else (1, 1, 1)
        return OccNet(
            cfg,
            output,
            lift,
            None,
            None,
            None,
            encoder,
            VoxelHead(encoder.out_channels, cfg.num_classes, subvoxels=sub),
            lidar,
        )
    if cfg.lift not in ("lss", "sample"):
        raise ValueError(f"lift: expected 'lss' or 'sample', got {cfg.lift!r}")
    backbone = Backbone(cfg.backbone, cfg.feature_stride, cfg.backbone_weights)
    neck = FPNNeck(backbone.channels, cfg.neck_channels)
    if cfg.lift == "sample":
        bad = [s for s in cfg.sample_strides if s not in backbone.strides[1:]]
        if bad:
            raise ValueError(
                f"sample_strides: {bad} are not backbone levels coarser than feature_stride {cfg.feature_stride} "
                f"({cfg.backbone!r} has {backbone.strides[1:]})"
            )
        in_channels = [cfg.neck_channels] + [backbone.channels[backbone.strides.index(s)] for s in cfg.sample_strides]
        view: LSSViewTransform | SampleViewTransform = SampleViewTransform(
            in_channels, cfg.context_channels, lift, collapse_z=cfg.head == "bev", coords=cfg.sample_coords
        )
    else:
        view = LSSViewTransform(
            cfg.neck_channels,
            (cfg.depth_min, cfg.depth_max, cfg.depth_step),
            cfg.context_channels,
            cfg.feature_stride,
            lift,
            collapse_z=cfg.head == "bev",
            depth_blocks=cfg.depth_blocks,
            geometry_input=cfg.depth_geometry,
            ground_z=cfg.ground_z,
            visibility=cfg.lift_visibility,
        )
    if cfg.head == "bev":
        encoder = UNetEncoder(2, view.out_channels, tuple(cfg.encoder_widths), cfg.encoder_blocks, cfg.encoder_fuse)
        head: VoxelHead | BEVHead = BEVHead(encoder.out_channels, cfg.num_classes, output.shape[2])
    else:
        in_channels = view.out_channels + (lidar.out_channels if lidar is not None else 0)
        encoder = UNetEncoder(3, in_channels, tuple(cfg.encoder_widths), cfg.encoder_blocks, cfg.encoder_fuse)
        if cfg.voxel_upsample not in ("trilinear", "subvoxel"):
            raise ValueError(f"voxel_upsample: expected 'trilinear' or 'subvoxel', got {cfg.voxel_upsample!r}")
        sub = tuple(o // l for o, l in zip(output.shape, lift.shape)) if cfg.voxel_upsample == "subvoxel" else (1, 1, 1)
        head = VoxelHead(encoder.out_channels, cfg.num_classes, subvoxels=sub)
    return OccNet(cfg, output, lift, backbone, neck, view, encoder, head, lidar)
