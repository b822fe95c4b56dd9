"""The ``langocc`` recipe: open-vocabulary occupancy learnt by volume rendering of
vision-language features (LangOcc, docs/methods.md §4).

No 3D label and no depth is read. The camera network (:class:`~occkit.models.occnet.OccNet`,
voxel head) predicts per voxel of the output grid a density logit (its head with one output),
and its 3D encoder's output on the lift grid (``K = model.encoder_widths[0]`` channels) is the
latent the language features are decoded from. A training step:

1. ``OccNet`` forward: density logits ``(B, 1, X, Y, Z)``, latent ``(B, K, X', Y', Z')``; the density is
   ``sigma = softplus(l + b) / voxel`` (``b`` a learnable offset starting every voxel at
   ``p(occupied) = density_init``), so a ray crossing one voxel stops there with probability
   ``p(occupied) = sigmoid(l + b)``; or (``density: sigmoid``, the released head) ``sigma =
   sigmoid(l + b)`` in 1/m. With ``heads: separate`` the density and the features come from two
   MLPs on per-voxel features instead (the table below).
2. ``num_rays`` pixels per frame (uniform over every camera's pixels, or LiDAR-projected pixels:
   ``ray_pixels``, ``ray_box``, ``ray_depth``) give rays; with ``temporal_offsets`` a share of them
   (``temporal_rays_fraction``) comes from the cameras of neighbouring keyframes, rendered in the
   *current* frame's grid against those frames' 2D features (temporal rays, below). ``num_proposal``
   uniform samples between ``near`` and where the ray leaves the grid box (or ``far``), then
   ``num_importance`` more drawn from them (a pass without gradients), merged with them or
   replacing them (``sampler``).
3. At every sample the density and the latent are read trilinearly (each on its grid) and the latent
   decoded by the *language MLP* (``K -> mlp_width x mlp_layers -> D``) into an L2-normalised
   feature; the ray's feature is ``sum_i w_i f_i``, L2-normalised.
4. ``loss_feat``: :func:`~occkit.losses.language.cosine_weighted_mse` against the 2D features of
   the ray's frame, ``batch.prior_features`` or ``batch.temporal_features`` (the cached 2D
   vision-language features, bilinearly sampled at the ray's pixel at the cache's feature stride,
   L2-normalised); rays with zero opacity dropped.

Zero-shot semantic occupancy (:meth:`LangOccMethod.predict`): a voxel is free where
``p(occupied) < occupied_threshold``; otherwise its class is that of the best-matching class
text of the vocabulary YAML (synonyms x templates, averaged, renormalised). The class texts are
encoded once, at the first step, by ``text_encoder`` and saved with the weights (buffer
``class_text``), so a run predicts without the text encoder. ``predict`` returns scores
``(B, C, X, Y, Z)`` over the data's classes (``langocc.classes``, taken from the format: Occ3D's 18,
SurroundOcc's 17, ...): ``occkit predict`` / ``occkit eval`` work unchanged.

Free-text queries (:meth:`LangOccMethod.voxel_features`, :meth:`LangOccMethod.encode_text`):
``occkit query`` and ``occkit retrieval``. :func:`lifted_features` is the baseline without
rendering: each voxel the mean of the 2D features at its centre's projections.

Two readings of what surrounds the renderer and the loss (which equal the released code's):
each choice is an option; the defaults are occkit's own reading (what ``langocc.yaml`` trains),
``langocc-gpu.yaml`` takes the released code's (``boschresearch/LangOcc``):

- ``ray_pixels``: released ``lidar`` (pixels a LiDAR point hits); occkit ``all`` (any pixel, sky
  and beyond the box included).
- ``ray_box``, ``ray_depth``: released true, ``[1, 40]`` (points inside the grid box, 1-40 m from
  the camera); occkit false, null (depth > 0.1 m).
- ``ray_lidar``: released ``own`` (each keyframe's own LiDAR, box-tested in its own ego frame);
  occkit ``current`` (the current frame's LiDAR in the neighbour cameras).
- ``temporal_offsets``, ``temporal_rays_fraction``, ``num_rays``: released keyframes -12..+12,
  ``pooled`` (one pool of all keyframes' LiDAR pixels, about 1/25 each), 8192 rays per frame;
  occkit's CPU preset -1, +1, ``even`` (2/3 from the neighbours), 1024.
- ``density``, ``density_init``, ``occupied_threshold``: released ``sigmoid`` (sigma in 1/m, at
  most 1/m), 0.5 (0.5/m at start), 0.1 (free below 0.1/m: p 0.039 over a 0.4 m voxel); occkit
  ``softplus`` (``softplus(x) / voxel``, unbounded), 0.05 (p(occupied), about 0.13/m), 0.1 (p).
- ``sampler``, ``far``, ``num_proposal``, ``num_importance``: released ``replace``, 40 m, 50, 100
  (the importance samples replace the uniform ones; the transmittance left at 40 m goes to the
  last interval); occkit ``merged``, the box, 32, 32 (merged, with jitter and a blur).
- ``heads``: released ``separate`` (3x256 density and language MLPs on 256-d features of the
  0.4 m voxels); occkit ``latent`` (the density from the voxel head, the language MLP decoding a
  32-channel latent of the 0.8 m lift grid at the samples).

Not an option: the released network sees two frames (BEVStereo4D: the previous frame's images
feed a stereo depth and a second BEV volume); occkit's :class:`~occkit.models.occnet.OccNet` reads
one frame. Smaller differences kept: rays go through the centre of the pixel containing the LiDAR
projection (the released code: the exact projection, at most half a pixel away); the grid is read
with voxel centres where they are (the released ``grid_sample`` with ``align_corners=True`` puts
the box's faces at the outer voxels' centres, a 0.2 m stretch at the edges); the proposal is
sampled without gradient (the released code's gets none either: only the final samples render).

Readings taken where docs/methods.md §4 is unsure or where occkit differs:

- ``heads: latent``: the per-voxel feature is decoded from the encoder's latent by an MLP applied
  at the samples (the paper's language MLP on voxel features); a 384-d volume at 200x200x16 would
  not fit a CPU, and a latent volume upsampled to the output grid made steps 4x slower (backward
  of the upsampling and of the lookups): the latent stays on the lift grid (0.8 m in
  ``langocc``), the density is at the output grid's 0.4 m. ``langocc-gpu`` takes the released
  ``separate`` heads on the 0.4 m grid.
- ``far: null``: where the ray leaves the grid box (the released 40 m is the box's half-width;
  beyond the box the released density is zero, so the two differ only in where the samples are
  spent: the released ones partly beyond the box, and the importance samples of rays that keep
  transmittance at 40 m in the last interval there).
- Temporal rays (the paper: keyframes -12..+12 rendered in the current frame): ``temporal_offsets``
  lists keyframe offsets; :class:`occkit.data.temporal.WithTemporalPriors` (wrapped by
  ``build_dataset`` for langocc training frames) attaches the neighbours' cached 2D features
  (never their images: the network sees the current frame only) and their cameras expressed in
  the current ego frame (``inv(T_global_from_ego_cur) @ T_global_from_ego_nbr @ T_ego_from_cam_nbr``).
  Offsets past a scene's ends are clamped to its farthest existing keyframe (the current frame
  itself at its first / last frame), so shapes stay fixed. ``num_rays`` is shared:
  ``temporal_rays_fraction`` (``even``: ``T / (T + 1)``, every frame alike) of the rays are
  uniform over all ``T x N`` neighbour cameras' pixels, the rest over the current ones, so a
  step costs the same. Neighbour cameras are never image-augmented (their intrinsics describe
  the cache's unaugmented images); a BEV transform moves them with the ego frame.
  ``ray_pixels: lidar`` with ``ray_lidar: current``: the neighbour rays start where the *current*
  frame's LiDAR points project into the neighbour cameras (no neighbour LiDAR is read; a point
  occluded in the neighbour view still gives a valid ray, LiDAR only chooses pixels); with
  ``ray_lidar: own`` (the released code) each keyframe's own LiDAR chooses its pixels
  (``batch.temporal_lidar``, in its own ego frame, and ``temporal_T_ego_from_ego``); there the
  loader can ship each neighbour's features at those pixels only instead of its whole maps
  (``temporal_gather: lidar_pixels``, ``langocc-gpu``: 0.58 GB a frame instead of 2.5 GB at
  900x1600, BENCHMARKS.md). Dynamic objects move
  between keyframes and are not compensated (as in the paper): a neighbour ray through a moving
  car supervises the voxels where the car was then. Why temporal rays matter: the six surround
  cameras of one frame barely overlap, so one frame's rays are satisfied by a "feature fog"
  (every point along a ray takes the feature of the pixel the ray comes from: the lifted
  baseline) with no geometry (a 100-step run without them learnt a flat density); the paper's
  geometry comes from surfaces seen again from other keyframes. On the CPU preset ([-1, 1]) they
  cost no step time, and 150 steps only began to separate occupied from free voxels (BENCHMARKS.md).
- ``reduction_dim`` (the reduced variant): a learnt linear map ``D -> d`` applied to targets,
  texts and nothing else (the MLP outputs ``d``); it can collapse (all projections alike gives a
  zero loss), which the paper does not discuss: initialised orthonormal, use with care.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from occkit.data.sample import Batch
from occkit.data.temporal import check_offsets
from occkit.geometry.camera import in_image, lidar_pixels, project_ego
from occkit.labels import OCC3D_CLASSES
from occkit.losses.language import cosine_weighted_mse, normalize_features
from occkit.methods.calibration import CALIBRATION_BINS, calibration_threshold, calibration_update
from occkit.methods.registry import MODEL_FROM_FORMAT, MethodSpec, format_free
from occkit.models.occnet import OccNet, OccNetConfig, OccNetOutput, build_occnet, lift_grid_of
from occkit.rendering.rays import Rays, camera_rays, sample_feature_map
from occkit.rendering.resampling import jittered_uniform_samples, resample_from_transmittance
from occkit.rendering.sampling import RaySamples, importance_samples, ray_box, uniform_samples
from occkit.rendering.volrend import (
    RenderOutput,
    composite_unit_affine,
    grid_field,
    render_samples,
    value_lookup,
    weights_from_density,
)
from occkit.shapes import check_shape


@dataclass
class LangOccConfig:
    """Model heads, rays, rendering, loss and zero-shot settings of the ``langocc`` method."""

    feature_dim: int = 384
    """D, the width of the 2D features and of the text encoder (the prior cache's
    ``feature_dim``: 384 for MiniLM, 512 for CLIP ViT-B); checked against the batch."""
    mlp_width: int = 128
    """Hidden width of the language MLP (and of the density MLP with ``heads: separate``)."""
    mlp_layers: int = 2
    """Hidden layers of the language MLP (and of the density MLP with ``heads: separate``; the
    released code: 3 x 256)."""
    heads: Literal["latent", "separate"] = "latent"
    """Where density and features come from. ``latent`` (occkit's own reading): the network's
    voxel head gives the density logit on the output grid; the language MLP decodes the 3D
    encoder's ``K``-channel latent, read trilinearly on the lift grid at every ray sample.
    ``separate`` (the released code): a 3x3x3 convolution (+ ReLU) maps the encoder's output, on
    the output grid (trilinearly upsampled when the lift grid is coarser), to
    ``voxel_feature_dim`` channels per voxel; a density MLP and a language MLP (each ``mlp_layers``
    x ``mlp_width``) decode every voxel into a density logit and an L2-normalised feature, and the
    two volumes are read trilinearly at the samples (the network's own head is unused)."""
    voxel_feature_dim: int = 256
    """``heads: separate``: channels of the per-voxel features the two MLPs read (the released
    code: 256)."""
    reduction_dim: int = 0
    """d > 0: the reduced variant, a learnt linear map ``D -> d`` applied to the targets and the
    texts (the MLP outputs d); 0 = features in the text encoder's space."""
    num_rays: int = 1024
    """Rays per frame per step (the paper: 32768 per batch)."""
    ray_pixels: Literal["all", "lidar"] = "all"
    """Where rays start: ``all`` = uniform over all cameras' pixels (occkit's own reading, sky and
    pixels beyond the box included); ``lidar`` = pixels that LiDAR points project to (the released
    code; LiDAR only chooses the pixels; needs data.load_extras or data.lidar_infos). Temporal rays
    with ``lidar``: see ``ray_lidar``."""
    ray_lidar: Literal["current", "own"] = "current"
    """``ray_pixels: lidar``, temporal rays: whose LiDAR chooses the neighbour keyframes' pixels.
    ``current`` (occkit's own reading): the *current* frame's points projected into the neighbour
    cameras (no neighbour LiDAR is read); ``own`` (the released code): each keyframe's own
    key-frame LiDAR (``batch.temporal_lidar``, attached by the data pipeline when the frames carry
    LiDAR) projected into its own cameras, box-tested in its own ego frame."""
    ray_box: bool = False
    """``ray_pixels: lidar``: keep only the LiDAR points strictly inside the grid's box, tested in
    the ego frame of the keyframe they belong to (the released code: True); False = any point."""
    ray_depth: tuple[float, float] | None = None
    """``ray_pixels: lidar``: keep only the points whose camera-frame depth ``z`` lies strictly
    between these two distances, metres (the released code: ``[1, 40]``); None = ``z > 0.1``
    (occkit's own reading)."""
    temporal_offsets: tuple[int, ...] = ()
    """Temporal rays (the paper: keyframes -12..+12): offsets of keyframes of the same scene whose
    cameras' rays are rendered in the current frame's grid against those frames' 2D features
    (:class:`occkit.data.temporal.WithTemporalPriors` attaches them to training frames; offsets
    past the scene's ends are clamped to its last existing keyframe); distinct, non-zero;
    () = the current frame's rays only."""
    temporal_rays_fraction: float | Literal["even", "pooled"] = "even"
    """Share of ``num_rays`` cast from the neighbour frames' cameras (uniform over all of their
    cameras' pixels); the rest from the current frame's. ``even`` (occkit's own reading):
    ``T / (T + 1)`` for ``T`` offsets, every frame alike. ``pooled`` (the released code; needs
    ``ray_pixels: lidar``): the LiDAR pixels of all keyframes, the current one included, are pooled
    and ``num_rays`` of them drawn without replacement (with replacement when the pool is
    smaller), so each keyframe's share is its share of the pool (about ``1 / (T + 1)``). The
    step's cost stays that of ``num_rays`` rays."""
    temporal_gather: Literal["maps", "lidar_pixels"] = "maps"
    """What the data pipeline attaches of each neighbour keyframe's 2D features. ``maps`` (every
    reading; the default): the whole cached maps, ``temporal_features (T, N, D, h, w)`` float16,
    sampled at the drawn rays' pixels in the training step (at -12..+12 and 900x1600 images,
    about 2.5 GB per frame). ``lidar_pixels`` (only with ``ray_pixels: lidar`` and ``ray_lidar:
    own``, the released reading, where a neighbour's rays can only start at its own LiDAR
    pixels): the loader computes each neighbour's pixel pool (its own LiDAR, ``ray_box`` and
    ``ray_depth`` as in the step) and samples the features there (``temporal_pixels``,
    ``temporal_pixel_features``, stored float16); the step draws its rays from these pools and
    takes the features by index. The same rays; the targets differ from ``maps`` by the float16
    rounding of the sampled features only (relative 2^-11), and the loader ships a fraction of the
    maps (BENCHMARKS.md)."""
    near: float = 0.05
    """Nearest sample distance along a ray, metres."""
    far: float | None = None
    """Farthest sample distance along a ray, metres, the same for every ray (the released code:
    40; the density is zero outside the grid box); None = where the ray leaves the grid box
    (occkit's own reading)."""
    sampler: Literal["merged", "replace"] = "merged"
    """How the ``num_importance`` samples are placed. ``merged`` (occkit's own reading): drawn
    from the proposal weights with a uniform blur and merged with the proposal edges
    (``num_proposal + num_importance`` intervals at midpoints,
    :func:`~occkit.rendering.sampling.importance_samples`). ``replace`` (the released code,
    nerfacc's ``importance_sampling``): drawn from the proposal's transmittance, the transmittance
    left at the far end given to the last interval, and replacing the proposal samples
    (``num_importance`` intervals, :mod:`occkit.rendering.resampling`); proposal edges jittered."""
    num_proposal: int = 32
    """Uniform (stratified while training) samples per ray of the proposal pass (the released
    code: 50)."""
    num_importance: int = 32
    """Samples drawn from the proposal pass (inverse CDF): added to it (``merged``) or replacing it
    (``replace``; the released code: 100); 0 = the proposal samples only."""
    feature_weight: float = 1.0
    """Weight of ``loss_feat``."""
    detach_weight: bool = True
    """The loss's ``2 (1 - cos)`` weight is a constant (stop-gradient), as the paper's code."""
    density: Literal["softplus", "sigmoid"] = "softplus"
    """The density from the head's logit ``l`` (offset ``b`` included). ``softplus`` (occkit's own
    reading): ``sigma = softplus(l + b) / voxel``, unbounded, so that a ray crossing one voxel stops
    there with probability ``sigmoid(l + b)``. ``sigmoid`` (the released code): ``sigma =
    sigmoid(l + b)`` in 1/m (at most 1/m; ``alpha = 1 - exp(-sigma delta)``)."""
    density_init: float = 0.05
    """Initial ``sigmoid(l + b)`` of every voxel (a learnable offset ``b`` of the density logit):
    ``p(occupied)`` with ``density: softplus`` (0.05: about 0.13/m), the density in 1/m with
    ``sigmoid`` (the released code: 0.5, its head's last bias starting at 0)."""
    occupied_threshold: float | Literal["auto"] = 0.1
    """``predict``: a voxel is occupied where ``sigmoid(l + b)`` reaches this: ``p(occupied)`` with
    ``density: softplus`` (occkit's 0.1), the density in 1/m with ``sigmoid`` (the released code:
    free below 0.1/m, i.e. ``p(occupied)`` 0.039 over a 0.4 m voxel). ``auto``: calibrated while
    training from the 2D prior depth maps (``prior_depth`` of the cache: 2D data only, never a
    loss): the threshold that best separates the voxels at the rays' surfaces from those of the
    free space before them (:mod:`occkit.methods.calibration`, shared with ``render_sup``; each
    free sample weighted by the square root of the voxels its stretch crosses)."""
    calibration_decay: float = 0.99
    """``auto``: per-step decay of the calibration histograms."""
    calibration_margin: float = 0.8
    """``auto``: free-space samples lie at least this many metres before the surface."""
    vocabulary: str | None = None
    """Class vocabulary YAML (synonyms and templates); None = ``configs/vocabularies/occ3d.yaml``."""
    classes: tuple[str, ...] = ()
    """The classes ``predict`` scores, in the data's order, free included (at ``free``); each
    other class is looked up by name in ``vocabulary``. Empty: Occ3D's 18. Taken from the data's
    format when the preset leaves it unset (SurroundOcc's: ``empty`` first, then Occ3D's 1..16)."""
    free: int | None = None
    """The id of free space among ``classes`` (Occ3D: 17; SurroundOcc, OpenOccupancy: 0); taken
    from the data's format when the preset leaves it unset (None; as ``supervised.free``)."""
    text_encoder: str = "minilm"
    """Text encoder spec (:func:`occkit.priors.text.load_text_encoder`); must be the one of the
    prior cache's features (its ``text_encoder``)."""


def check_temporal_gather(c: LangOccConfig) -> str:
    """Why ``temporal_gather`` cannot work with the rest of ``c`` (a one-line message naming the
    option), or "" when it can."""
    if c.temporal_gather not in ("maps", "lidar_pixels"):
        return f"langocc.temporal_gather: expected 'maps' or 'lidar_pixels', got {c.temporal_gather!r}"
    if c.temporal_gather == "lidar_pixels" and not (c.ray_pixels == "lidar" and c.ray_lidar == "own"):
        return (
            "langocc.temporal_gather: 'lidar_pixels' gathers each neighbour's features at its own LiDAR pixels; it "
            f"needs ray_pixels: lidar and ray_lidar: own (got ray_pixels: {c.ray_pixels}, ray_lidar: {c.ray_lidar})"
        )
    return ""


def cat_rays(parts: Sequence[Rays]) -> Rays:
    """Rays of several camera sets as one ``Rays`` (``cam`` then indexes each part's own cameras)."""
    if not parts:
        raise ValueError("cat_rays: no rays")
    if len(parts) == 1:
        return parts[0]
    return Rays(
        **{k: torch.cat([getattr(p, k) for p in parts]) for k in ("origins", "dirs", "cam", "row", "col", "z_per_t")}
    )


def take_rows(parts: Sequence[torch.Tensor], index: torch.Tensor) -> torch.Tensor:
    """Rows ``index`` of the concatenation of ``parts`` (each ``(P_t, D)``), float32, without
    concatenating them (the neighbours' gathered features are large).

    All on ``index``'s device with no wait for it: each part gathers every row (clamped into its own
    range) and keeps those that fall in it; a part is a neighbour frame, so there are a few."""
    out = torch.zeros(len(index), parts[0].shape[1], dtype=torch.float32, device=index.device)
    start = 0
    for p in parts:
        if len(p):
            rows = (index - start).clamp(0, len(p) - 1)
            mine = ((index >= start) & (index < start + len(p)))[:, None]
            out = torch.where(mine, p.to(index.device)[rows].float(), out)
        start += len(p)
    return out


def lifted_features(
    features: torch.Tensor,
    intrinsics: torch.Tensor,
    T_ego_from_cam: torch.Tensor,
    image_hw: tuple[int, int],
    stride: int,
    points: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The baseline without rendering: each point takes the mean of the 2D features at its
    projections into the cameras that see it (bilinear at the feature stride), L2-normalised.

    Occlusion is ignored: a voxel behind a car takes the car's feature (what 3D training fixes).

    Args:
        features: ``(N, D, h, w)``; intrinsics ``(N, 3, 3)``; T_ego_from_cam ``(N, 4, 4)``;
        image_hw: ``(H, W)`` of the images the intrinsics describe; stride: the features' stride;
        points: ``(P, 3)`` ego-frame points (voxel centres).
    Returns:
        features ``(P, D)`` (zero where no camera sees the point) and ``seen (P,)`` bool.
    """
    check_shape(features, "N D h w", name="features")
    N, D, h, w = features.shape
    check_shape(intrinsics, "N 3 3", name="intrinsics", dims={"N": N})
    check_shape(T_ego_from_cam, "N 4 4", name="T_ego_from_cam", dims={"N": N})
    check_shape(points, "P 3", name="points")
    H, W = image_hw
    uv, z = project_ego(points, intrinsics, T_ego_from_cam)  # (N, P, 2), (N, P)
    ok = (z > 0.1) & in_image(uv, H, W)  # (N, P)
    acc = torch.zeros(points.shape[0], D, dtype=torch.float32, device=features.device)
    for n in range(N):
        sel = ok[n].nonzero()[:, 0]
        if sel.numel() == 0:
            continue
        g = torch.stack([uv[n, sel, 0] / stride / w * 2 - 1, uv[n, sel, 1] / stride / h * 2 - 1], -1)
        s = F.grid_sample(
            features[n : n + 1].float(),
            g.view(1, 1, -1, 2),
            mode="bilinear",
            padding_mode="border",
            align_corners=False,
        )
        acc[sel] += normalize_features(s[0, :, 0].t())
    return normalize_features(acc), ok.any(0)


def mlp(in_dim: int, width: int, layers: int, out_dim: int) -> nn.Sequential:
    """``layers`` hidden ``Linear(width) + ReLU``, then ``Linear(out_dim)``: ``(..., in_dim) -> (..., out_dim)``."""
    mods: list[nn.Module] = []
    d = in_dim
    for _ in range(layers):
        mods += [nn.Linear(d, width), nn.ReLU(inplace=True)]
        d = width
    mods.append(nn.Linear(d, out_dim))
    return nn.Sequential(*mods)


class LanguageMLP(nn.Module):
    """Latent ``(P, K)`` -> L2-normalised feature ``(P, D)``: ``layers`` hidden layers of ``width`` (ReLU)."""

    def __init__(self, latent_dim: int, width: int, layers: int, out_dim: int) -> None:
        super().__init__()
        self.net = mlp(latent_dim, width, layers, out_dim)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return normalize_features(self.net(latent))


class SeparateHeads(nn.Module):
    """The released code's heads (``heads: separate``): encoder output on the output grid
    ``(B, K, X, Y, Z)`` -> 3x3x3 conv + ReLU -> ``(B, F, X, Y, Z)`` -> per voxel a density MLP
    (``(B, 1, X, Y, Z)`` logit, before the offset) and a language MLP (``(B, d, X, Y, Z)``,
    L2-normalised over ``d``)."""

    def __init__(self, in_channels: int, feature_dim: int, width: int, layers: int, out_dim: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv3d(in_channels, feature_dim, 3, padding=1), nn.ReLU(inplace=True))
        self.density = mlp(feature_dim, width, layers, 1)
        nn.init.zeros_(self.density[-1].bias)
        self.language = LanguageMLP(feature_dim, width, layers, out_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_shape(x, "B K X Y Z", name="encoder features")
        v = self.conv(x).permute(0, 2, 3, 4, 1)  # (B, X, Y, Z, F)
        logit = self.density(v).permute(0, 4, 1, 2, 3)  # (B, 1, X, Y, Z)
        feat = self.language(v).permute(0, 4, 1, 2, 3)  # (B, d, X, Y, Z)
        return logit, feat


def _check_sizes_and_rays(c: LangOccConfig) -> None:
    """Refuse langocc's sizes below their least and ray settings that do not go together."""
    for key in ("feature_dim", "mlp_width", "num_rays", "num_proposal"):
        if getattr(c, key) < 1:
            raise ValueError(f"LangOccConfig.{key}: expected >= 1, got {getattr(c, key)}")
    if c.mlp_layers < 0 or c.num_importance < 0 or c.reduction_dim < 0:
        raise ValueError("LangOccConfig.mlp_layers, num_importance, reduction_dim: expected >= 0")
    if c.ray_depth is not None and not (len(c.ray_depth) == 2 and 0 <= c.ray_depth[0] < c.ray_depth[1]):
        raise ValueError(f"LangOccConfig.ray_depth: expected [lo, hi] with 0 <= lo < hi, or null, got {c.ray_depth!r}")
    if c.temporal_rays_fraction == "pooled" and c.ray_pixels != "lidar":
        raise ValueError(
            "LangOccConfig.temporal_rays_fraction: 'pooled' pools the keyframes' LiDAR pixels; it needs "
            "ray_pixels: lidar"
        )
    gather_error = check_temporal_gather(c)
    if gather_error:
        raise ValueError(gather_error)


def _check_ranges(c: LangOccConfig) -> None:
    """Refuse langocc's distances, probabilities, fractions and temporal offsets outside their ranges."""
    if not c.near >= 0:
        raise ValueError(f"LangOccConfig.near: expected >= 0, got {c.near}")
    if c.far is not None and not c.far > c.near:
        raise ValueError(f"LangOccConfig.far: expected a distance beyond near ({c.near}) or null, got {c.far}")
    if c.voxel_feature_dim < 1:
        raise ValueError(f"LangOccConfig.voxel_feature_dim: expected >= 1, got {c.voxel_feature_dim}")
    if not 0 < c.density_init < 1:
        raise ValueError(f"LangOccConfig.density_init: expected a probability in (0, 1), got {c.density_init}")
    if not (
        c.occupied_threshold == "auto"
        or (isinstance(c.occupied_threshold, (int, float)) and 0 < c.occupied_threshold < 1)
    ):
        raise ValueError(
            f"LangOccConfig.occupied_threshold: expected 'auto' or a number in (0, 1), got {c.occupied_threshold!r}"
        )
    if not 0 < c.calibration_decay <= 1:
        raise ValueError(f"LangOccConfig.calibration_decay: expected a number in (0, 1], got {c.calibration_decay}")
    check_offsets(c.temporal_offsets, "LangOccConfig.temporal_offsets")
    f = c.temporal_rays_fraction
    if not (f in ("even", "pooled") or (isinstance(f, (int, float)) and not isinstance(f, bool) and 0 <= f <= 1)):
        raise ValueError(
            f"LangOccConfig.temporal_rays_fraction: expected 'even', 'pooled' or a number in [0, 1], got {f!r}"
        )


class LangOccMethod(nn.Module):
    """OccNet (density + latent) + language MLP + feature rendering; implements
    :class:`occkit.methods.base.Method`."""

    def __init__(self, model_cfg: OccNetConfig, method_cfg: LangOccConfig) -> None:
        super().__init__()
        c = method_cfg
        _check_sizes_and_rays(c)
        _check_ranges(c)
        self.cfg = c
        if model_cfg.head != "voxel":
            raise ValueError(f"model.head: langocc needs the voxel head (a 3D latent), got {model_cfg.head!r}")
        mc = OccNetConfig(**{**model_cfg.__dict__})
        mc.num_classes = 1  # the head predicts the density logit only
        self.model_cfg = mc
        self.model: OccNet = build_occnet(mc)
        self.grid = self.model.output_grid
        self.latent_grid = self.model.lift_grid
        self.latent_dim = int(mc.encoder_widths[0])
        out_dim = c.reduction_dim or c.feature_dim
        self.out_dim = out_dim
        self.heads: SeparateHeads | None = None
        if c.heads == "separate":
            self.model.head = nn.Identity()  # the network's output: the encoder's features on the output grid
            self.heads = SeparateHeads(self.latent_dim, c.voxel_feature_dim, c.mlp_width, c.mlp_layers, out_dim)
            self.language = self.heads.language
        else:
            self.language = LanguageMLP(self.latent_dim, c.mlp_width, c.mlp_layers, out_dim)
        self.reduction: nn.Linear | None = None
        if c.reduction_dim:
            self.reduction = nn.Linear(c.feature_dim, c.reduction_dim, bias=False)
            nn.init.orthogonal_(self.reduction.weight)
        self.density_bias = nn.Parameter(torch.tensor(math.log(c.density_init / (1 - c.density_init))))
        """Learnable offset of the density logit (see ``density_init``)."""
        self.class_names: tuple[str, ...] = tuple(c.classes) or tuple(OCC3D_CLASSES)
        """The classes of ``predict``'s scores, free at ``cfg.free``."""
        if not 0 <= format_free(c.free, "langocc.free") < len(self.class_names):
            raise ValueError(
                f"langocc.free: {c.free} is not a class id of langocc.classes ({len(self.class_names)} classes)"
            )
        self.semantic_ids = [k for k in range(len(self.class_names)) if k != c.free]
        """The class ids with a text (every one but free), in the order of ``class_text``'s rows."""
        self.register_buffer("class_text", torch.zeros(len(self.semantic_ids), c.feature_dim))
        """``(K, D)`` text embeddings of the non-free classes (vocabulary), filled at the first step."""
        self.register_buffer("class_text_ready", torch.zeros((), dtype=torch.bool))
        self.register_buffer("calibration", torch.zeros(2, CALIBRATION_BINS))
        """Decayed histograms of p(occupied): row 0 at surface voxels, row 1 in free space."""

    # ------------------------------------------------------------------------------- text
    def encode_text(self, texts: Sequence[str], templates: Sequence[str] | None = None) -> torch.Tensor:
        """``(K, d)`` L2-normalised query embeddings in the space of :meth:`voxel_features`:
        each text in every template of the vocabulary (or ``templates``), averaged, renormalised,
        then through the reduction map when there is one. Loads the text encoder."""
        from occkit.priors.quality import load_class_vocabulary
        from occkit.priors.text import encode_prompts, load_text_encoder

        if templates is None:
            templates = load_class_vocabulary(self.cfg.vocabulary)[2]
        enc = load_text_encoder(self.cfg.text_encoder)
        if enc.dim != self.cfg.feature_dim:
            raise ValueError(
                f"langocc.text_encoder {self.cfg.text_encoder!r} gives {enc.dim}-d vectors, langocc.feature_dim is "
                f"{self.cfg.feature_dim}"
            )
        emb = encode_prompts(enc, list(texts), templates).to(self.class_text.device)
        return self.project(emb)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Targets or texts ``(..., D)`` into the feature space ``(..., d)``, L2-normalised."""
        if self.reduction is not None:
            x = self.reduction(x)
        return normalize_features(x)

    @torch.no_grad()
    def ensure_class_text(self) -> None:
        """Encode the vocabulary's 17 Occ3D classes once (saved with the weights)."""
        if bool(self.class_text_ready):
            return
        from occkit.priors.quality import load_class_vocabulary
        from occkit.priors.text import encode_prompts, load_text_encoder

        names, synonyms, templates = load_class_vocabulary(self.cfg.vocabulary)
        by_name = dict(zip(names, synonyms))
        wanted = [self.class_names[k] for k in self.semantic_ids]
        missing = [n for n in wanted if n not in by_name]
        if missing:
            raise ValueError(
                f"langocc.vocabulary {self.cfg.vocabulary or 'occ3d.yaml'}: has no class {', '.join(missing)} "
                f"(langocc.classes, the data's); it lists {', '.join(names)}"
            )
        enc = load_text_encoder(self.cfg.text_encoder)
        if enc.dim != self.cfg.feature_dim:
            raise ValueError(
                f"langocc.text_encoder {self.cfg.text_encoder!r} gives {enc.dim}-d vectors, langocc.feature_dim is "
                f"{self.cfg.feature_dim}"
            )
        self.class_text.copy_(encode_prompts(enc, [by_name[n] for n in wanted], templates).to(self.class_text))
        self.class_text_ready.fill_(True)

    # ------------------------------------------------------------------------------- field
    def forward(self, batch: Batch) -> OccNetOutput:
        """The network's output: ``logits (B, 1, X, Y, Z)`` the density logit (offset included);
        ``features``: with ``heads: latent`` the latent ``(B, K, X', Y', Z')`` on the lift grid, with
        ``separate`` the L2-normalised features ``(B, d, X, Y, Z)`` on the output grid."""
        out = self.model(batch.images, batch.intrinsics, batch.T_ego_from_cam)
        if self.heads is not None:
            out.logits, out.features = self.heads(
                out.logits
            )  # the identity head's output: encoder features on the output grid
        out.logits = out.logits + self.density_bias
        return out

    def p_occupied(self, logits: torch.Tensor) -> torch.Tensor:
        """``sigmoid`` of density logits ``(..., 1, X, Y, Z)``: ``(..., X, Y, Z)``; with ``density:
        softplus`` the probability that a ray crossing a whole voxel stops in it, with ``sigmoid``
        the density in 1/m. ``predict`` compares it with :meth:`threshold`."""
        return torch.sigmoid(logits[..., 0, :, :, :].float())

    def density(self, logits: torch.Tensor) -> torch.Tensor:
        """Density per metre of one frame's logits ``(1, X, Y, Z)``: ``(X, Y, Z)``;
        ``softplus(l) / voxel`` or ``sigmoid(l)`` (``density``)."""
        if self.cfg.density == "sigmoid":
            return torch.sigmoid(logits[0].float())
        return F.softplus(logits[0].float()) / min(self.grid.voxel_size)

    def threshold(self) -> float:
        """The ``p(occupied)`` threshold of ``predict`` (``auto``: the bin edge maximising the
        IoU of "occupied" on the calibration histograms; 0.1 before any calibration)."""
        tau = self.cfg.occupied_threshold
        return float(tau) if tau != "auto" else calibration_threshold(self.calibration, 0.1)

    def _check_frame(self, logits: torch.Tensor, latent: torch.Tensor) -> None:
        check_shape(logits, "1 X Y Z", name="logits", dims=dict(zip("XYZ", self.grid.shape)))
        self._check_features(latent)

    def _check_features(self, features: torch.Tensor) -> None:
        if self.heads is None:
            check_shape(
                features,
                "K X Y Z",
                name="latent",
                dims={"K": self.latent_dim, **dict(zip("XYZ", self.latent_grid.shape))},
            )
        else:
            check_shape(
                features, "d X Y Z", name="features", dims={"d": self.out_dim, **dict(zip("XYZ", self.grid.shape))}
            )

    def feature_field(self, features: torch.Tensor):
        """One frame's features at points: ``points (P, 3) -> (P, d)`` L2-normalised; ``heads: latent``:
        the language MLP of the latent ``(K, X', Y', Z')`` read trilinearly; ``separate``: the
        feature volume ``(d, X, Y, Z)`` read trilinearly."""
        self._check_features(features)
        if self.heads is None:
            lookup = self.latent_field(features)
            return lambda points: self.language(lookup(points))
        return value_lookup(features, self.grid)

    def _inside_box(self, points: torch.Tensor) -> torch.Tensor:
        """``(P,)`` bool: points strictly inside the output grid's box."""
        lo = torch.tensor(self.grid.range_min, dtype=points.dtype, device=points.device)
        hi = torch.tensor(self.grid.range_max, dtype=points.dtype, device=points.device)
        return ((points > lo) & (points < hi)).all(-1)

    def samples(self, sigma: torch.Tensor, rays: Rays, jitter: bool = False) -> RaySamples:
        """Where one frame's ``rays`` are rendered (``sampler``, ``near``, ``far``), given its
        density ``sigma (X, Y, Z)`` per metre for the proposal pass (no gradient)."""
        c = self.cfg
        o, d = rays.origins.float(), rays.dirs.float()
        if c.far is None:
            near, far = ray_box(o, d, self.grid, min_near=c.near)
        else:
            near, far = torch.full_like(o[:, 0], c.near), torch.full_like(o[:, 0], c.far)
        density_field = self.density_field(sigma)
        if c.sampler == "replace":
            samples = jittered_uniform_samples(near, far, c.num_proposal, jitter=jitter)
        else:
            samples = uniform_samples(near, far, num_samples=c.num_proposal, jitter=jitter)
        if c.num_importance == 0:
            return samples
        with torch.no_grad():
            pts = o[:, None] + d[:, None] * samples.t[..., None]  # (R, S, 3)
            s_c = density_field(pts.reshape(-1, 3))[0].view(samples.t.shape)  # (R, S)
            if c.sampler == "replace":
                return resample_from_transmittance(samples, s_c, c.num_importance, jitter=jitter)
            w, _ = weights_from_density(s_c, samples.deltas)
        return importance_samples(samples, w, c.num_importance, jitter=jitter)

    def density_field(self, sigma: torch.Tensor, values: torch.Tensor | None = None):
        """Trilinear field of one frame's density ``(X, Y, Z)`` (and values ``(C, X, Y, Z)``); with
        ``far`` set the samples leave the box, where the density is zero (the released code)."""
        f = grid_field(sigma, self.grid, values, mode="trilinear")
        if self.cfg.far is None:
            return f

        def boxed(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
            s, v = f(points)
            return s * self._inside_box(points).to(s.dtype), v

        return boxed

    def latent_field(self, latent: torch.Tensor):
        """Trilinear lookup of one frame's latent ``(K, X', Y', Z')``: ``points (P, 3) -> (P, K)``
        (``heads: latent``; features at points, whatever the heads: :meth:`feature_field`)."""
        if self.heads is not None:
            raise ValueError(
                "langocc.heads is 'separate': there is no latent to decode; read features with feature_field()"
            )
        return value_lookup(latent, self.latent_grid)

    def render(self, logits: torch.Tensor, latent: torch.Tensor, rays: Rays, jitter: bool = False) -> RenderOutput:
        """Render one frame (density logits ``(1, X, Y, Z)``; ``latent``: the frame's
        ``features`` of :meth:`forward`) along ``rays``: ``values (R, d)`` = the L2-normalised
        rendered features (zero where the opacity is 0), opacity, depth."""
        self._check_frame(logits, latent)
        o, d = rays.origins.float(), rays.dirs.float()
        sigma = self.density(logits)  # (X, Y, Z)
        samples = self.samples(sigma, rays, jitter=jitter)
        if self.heads is None:
            # sum_i w_i f_i / ||f_i|| with the norms folded into the weights and the language MLP's
            # last layer taken after the sum (composite_unit_affine): its (R, S, d) features are never made
            density_field = self.density_field(sigma)
            out = render_samples(lambda p: (density_field(p)[0], None), o, d, samples, return_weights=True)
            pts = o[:, None, :] + d[:, None, :] * samples.t[..., None]  # (R, S, 3): the points the weights are at
            net = self.language.net
            hidden = net[:-1](self.latent_field(latent)(pts.reshape(-1, 3)))  # (R*S, width): before the last Linear
            last = net[-1]
            values = composite_unit_affine(out.weights, hidden.view(*samples.t.shape, -1), last.weight, last.bias)
            out = RenderOutput(depth=out.depth, median_depth=out.median_depth, opacity=out.opacity, values=values)
        else:
            field = self.density_field(sigma, latent.float())  # one trilinear read of density and features
            out = render_samples(field, o, d, samples)
        out.values = normalize_features(out.values)
        return out

    def voxel_features(
        self, latent: torch.Tensor, mask: torch.Tensor | None = None, chunk: int = 65536
    ) -> torch.Tensor:
        """Features at the output grid's voxel centres of one frame (its ``features`` of
        :meth:`forward`): ``(M, d)`` for the ``M`` voxels of ``mask (X, Y, Z)`` bool (all voxels,
        x-major, when None)."""
        self._check_features(latent)
        if self.heads is not None:  # the feature volume is on the output grid already
            f = latent.float().reshape(latent.shape[0], -1).t()  # (X*Y*Z, d)
            return f if mask is None else f[mask.reshape(-1).to(latent.device)]
        pts = self.grid.centers(device=latent.device).reshape(-1, 3)  # (X*Y*Z, 3)
        if mask is not None:
            pts = pts[mask.reshape(-1).to(latent.device)]
        lookup = self.feature_field(latent)
        parts = [lookup(pts[i : i + chunk]) for i in range(0, pts.shape[0], chunk)]
        return torch.cat(parts) if parts else pts.new_zeros(0, self.out_dim)

    # ------------------------------------------------------------------------------- predict
    @torch.no_grad()
    def predict(self, batch: Batch) -> torch.Tensor:
        """Scores ``(B, C, X, Y, Z)`` over ``langocc.classes`` whose argmax is the zero-shot prediction: free
        where ``p(occupied) < threshold()``, else the class whose text best matches the voxel's
        feature (scores = cosine similarities)."""
        self.ensure_class_text()
        out = self.forward(batch)
        logits = out.logits
        B = logits.shape[0]
        X, Y, Z = self.grid.shape
        tau = self.threshold()
        text = self.project(self.class_text.float())  # (K, d)
        C, free = len(self.class_names), self.cfg.free
        scores = torch.zeros(B, C, X, Y, Z, device=logits.device)
        occ = self.p_occupied(logits) >= tau  # (B, X, Y, Z)
        scores[:, free] = torch.where(occ, torch.full_like(scores[:, 0], -1e4), torch.full_like(scores[:, 0], 2.0))
        rows = torch.tensor(self.semantic_ids, device=logits.device)
        for b in range(B):
            f = self.voxel_features(out.features[b], occ[b])  # (M, d)
            with torch.autocast(logits.device.type, enabled=False):  # float32 cosines, also under bf16 autocast
                sims = f.float() @ text.float().t()  # (M, K)
            view = scores[b].view(C, -1)
            cols = occ[b].reshape(-1).nonzero().squeeze(1)
            view[rows[:, None], cols[None, :]] = sims.t()
        return scores

    # ------------------------------------------------------------------------------- training
    def _lidar_filters(self) -> dict:
        """``lidar_pixels`` keywords of ``ray_box`` and ``ray_depth``."""
        c = self.cfg
        return {
            "box": self.grid if c.ray_box else None,
            "depth_range": None if c.ray_depth is None else tuple(c.ray_depth),
        }

    def lidar_pools(self, batch: Batch, b: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Frame ``b``'s candidate ray pixels with ``ray_pixels: lidar``: ``(P0, 3)`` long
        ``(cam, row, col)`` of its own cameras, and (``temporal_offsets``) ``(P1, 3)`` of the
        neighbour cameras (``cam`` indexing the ``T * N`` of them, offset-major) or None. The
        neighbours' pixels come from the current frame's LiDAR (``ray_lidar: current``) or each
        keyframe's own (``own``: ``batch.temporal_lidar``, box-tested in its ego frame, then
        mapped into this one by ``batch.temporal_T_ego_from_ego``); ``ray_box`` and ``ray_depth``
        filter both; with ``temporal_gather: lidar_pixels`` the neighbours' pools are
        ``batch.temporal_pixels``, computed so by the data pipeline."""
        c = self.cfg
        _, N, _, H, W = batch.images.shape
        lidar = batch.lidar[b] if batch.lidar is not None else None
        if lidar is None and not (c.temporal_offsets and c.ray_lidar == "own" and c.temporal_rays_fraction == "pooled"):
            raise ValueError(
                "langocc.ray_pixels='lidar' needs the LiDAR points (data.load_extras: true, or data.lidar_infos)"
            )
        dev = batch.intrinsics.device
        kw = self._lidar_filters()
        if lidar is not None:
            cur = lidar_pixels(lidar.to(dev), batch.intrinsics[b].float(), batch.T_ego_from_cam[b].float(), H, W, **kw)
        else:
            cur = torch.zeros(0, 3, dtype=torch.long, device=dev)
        if not c.temporal_offsets:
            return cur, None
        assert (
            batch.temporal_intrinsics is not None
            and batch.temporal_T_ego_from_cam is not None
            and batch.temporal_image_hw is not None
        )
        Ht, Wt = batch.temporal_image_hw
        K, T = (
            batch.temporal_intrinsics[b].float(),
            batch.temporal_T_ego_from_cam[b].float(),
        )  # (T, N, 3, 3), (T, N, 4, 4)
        if c.ray_lidar == "current":
            assert lidar is not None
            return cur, lidar_pixels(lidar.to(dev), K.flatten(0, 1), T.flatten(0, 1), Ht, Wt, **kw)
        if c.temporal_gather == "lidar_pixels":  # the pools the data pipeline computed the same way
            assert batch.temporal_pixels is not None
            return cur, torch.cat(
                [px.to(dev) + torch.tensor([t * N, 0, 0], device=dev) for t, px in enumerate(batch.temporal_pixels[b])]
            )
        assert batch.temporal_lidar is not None and batch.temporal_T_ego_from_ego is not None
        parts = []
        for t, pts in enumerate(batch.temporal_lidar[b]):
            px = lidar_pixels(
                pts.to(dev), K[t], T[t], Ht, Wt, T_ego_from_points=batch.temporal_T_ego_from_ego[b, t], **kw
            )
            px[:, 0] += t * N
            parts.append(px)
        return cur, torch.cat(parts)

    def ray_split(self) -> tuple[int, int]:
        """``(current, temporal)``: how ``num_rays`` is shared between the current frame's cameras
        and the neighbour frames' (``temporal_rays_fraction``; ``pooled`` decides per frame, from
        the pools: this returns its expectation with pools of equal size, the ``even`` split)."""
        c = self.cfg
        n_frames = len(c.temporal_offsets)
        if n_frames == 0:
            return c.num_rays, 0
        f = (
            n_frames / (n_frames + 1)
            if c.temporal_rays_fraction in ("even", "pooled")
            else float(c.temporal_rays_fraction)
        )
        n = int(round(f * c.num_rays))
        return c.num_rays - n, n

    def _check_temporal(self, batch: Batch) -> None:
        """With ``temporal_offsets``: the batch carries the neighbours' fields, of matching shapes."""
        c = self.cfg
        if not c.temporal_offsets:
            return
        names = ["temporal_features", "temporal_intrinsics", "temporal_T_ego_from_cam", "temporal_image_hw"]
        if c.temporal_gather == "lidar_pixels":
            names = ["temporal_pixels", "temporal_pixel_features", *names[1:]]
        elif c.ray_pixels == "lidar" and c.ray_lidar == "own":
            names += ["temporal_lidar", "temporal_T_ego_from_ego"]
        missing = [n for n in names if getattr(batch, n) is None]
        if missing:
            raise ValueError(
                f"langocc.temporal_offsets={list(c.temporal_offsets)} but the batch has no {', '.join(missing)}: the "
                "training frames must be wrapped in occkit.data.temporal.WithTemporalPriors (build_dataset does it "
                "for langocc training with data.priors; the neighbours' LiDAR, for ray_lidar: own, comes with "
                "data.load_extras on the synthetic world or data.lidar_infos)"
            )
        B, N = batch.images.shape[:2]
        n_frames = len(c.temporal_offsets)
        dims = {"B": B, "T": n_frames, "N": N}
        if c.temporal_gather == "lidar_pixels":
            check_shape(batch.temporal_intrinsics, "B T N 3 3", name="batch.temporal_intrinsics", dims=dims)
            check_shape(batch.temporal_T_ego_from_cam, "B T N 4 4", name="batch.temporal_T_ego_from_cam", dims=dims)
            for name in ("temporal_pixels", "temporal_pixel_features"):
                per_frame = getattr(batch, name)
                if len(per_frame) != B or any(len(per) != n_frames for per in per_frame):
                    raise ValueError(f"batch.{name}: expected {B} lists of {n_frames} tensors, one per neighbour")
            for px, f in zip(sum(batch.temporal_pixels, []), sum(batch.temporal_pixel_features, [])):
                check_shape(px, "P 3", name="batch.temporal_pixels[b][t]")
                check_shape(
                    f, "P D", name="batch.temporal_pixel_features[b][t]", dims={"P": len(px), "D": c.feature_dim}
                )
            return
        if batch.temporal_features.dim() != 6 or batch.temporal_features.shape[1] != n_frames:
            raise ValueError(
                f"batch.temporal_features {tuple(batch.temporal_features.shape)}: expected (B, T, N, D, h, w) with "
                f"T = {n_frames} neighbour frames, one per offset of "
                f"langocc.temporal_offsets={list(c.temporal_offsets)}"
            )
        check_shape(
            batch.temporal_features, "B T N D h w", name="batch.temporal_features", dims={**dims, "D": c.feature_dim}
        )
        check_shape(batch.temporal_intrinsics, "B T N 3 3", name="batch.temporal_intrinsics", dims=dims)
        check_shape(batch.temporal_T_ego_from_cam, "B T N 4 4", name="batch.temporal_T_ego_from_cam", dims=dims)
        if "temporal_lidar" in names:
            check_shape(batch.temporal_T_ego_from_ego, "B T 4 4", name="batch.temporal_T_ego_from_ego", dims=dims)
            if len(batch.temporal_lidar) != B or any(len(per) != n_frames for per in batch.temporal_lidar):
                raise ValueError(
                    f"batch.temporal_lidar: expected {B} lists of {n_frames} point clouds, one per neighbour"
                )

    @staticmethod
    def _pick(px: torch.Tensor, num: int, replacement: bool = True) -> torch.Tensor:
        """The indices of ``num`` rows of ``px``: uniform with replacement, or without (a random
        subset) when ``replacement`` is False and there are enough."""
        if not replacement and px.shape[0] >= num:
            return torch.randperm(px.shape[0], device=px.device)[:num]
        return torch.randint(0, px.shape[0], (num,), device=px.device)

    def frame_rays(self, batch: Batch, b: int) -> dict[str, tuple[Rays, torch.Tensor]]:
        """Frame ``b``'s training rays and their 2D targets ``(R, D)`` (float32, not projected):
        ``current`` = rays of its own cameras against ``prior_features``; ``temporal`` = rays of
        the neighbour frames' cameras (``temporal_T_ego_from_cam``: already in this frame's ego
        frame, unaugmented images of ``temporal_image_hw``) against ``temporal_features``, their
        ``cam`` indexing the ``T * N`` neighbour cameras (offset-major; with ``temporal_gather:
        lidar_pixels`` the targets are the gathered ``temporal_pixel_features`` of the drawn pool
        rows, float32). A part with no rays
        (:meth:`ray_split`, or the ``pooled`` draw) is absent."""
        c = self.cfg
        _, _, _, H, W = batch.images.shape
        cams: dict[str, tuple[torch.Tensor, torch.Tensor, tuple[int, int]]] = {
            "current": (batch.intrinsics[b].float(), batch.T_ego_from_cam[b].float(), (H, W))
        }
        if c.temporal_offsets:
            assert batch.temporal_intrinsics is not None and batch.temporal_T_ego_from_cam is not None
            assert batch.temporal_image_hw is not None
            K_tmp = batch.temporal_intrinsics[b].flatten(0, 1).float()  # (T*N, 3, 3)
            T_tmp = batch.temporal_T_ego_from_cam[b].flatten(0, 1).float()  # (T*N, 4, 4)
            cams["temporal"] = (K_tmp, T_tmp, tuple(batch.temporal_image_hw))
        tmp_index: torch.Tensor | None = None  # temporal rays' rows of the neighbours' pool
        if c.ray_pixels == "all":
            rays: dict[str, Rays] = {}
            for name, n in zip(("current", "temporal"), self.ray_split()):
                if n:
                    K, T, (h, w) = cams[name]
                    rays[name] = camera_rays(K, T, h, w, num_random=n)
        else:
            cur, tmp = self.lidar_pools(batch, b)
            where = f"frame {batch.tokens[b]}"
            if c.temporal_rays_fraction == "pooled" and tmp is not None:
                rays, tmp_index = self._pooled_lidar_rays(cur, tmp, cams, where)
            else:
                rays, tmp_index = self._lidar_rays_by_part(cur, tmp, cams, where)
        return self._ray_targets(batch, b, rays, tmp_index)

    def _pooled_lidar_rays(
        self, cur: torch.Tensor, tmp: torch.Tensor, cams: dict[str, Any], where: str
    ) -> tuple[dict[str, Rays], torch.Tensor | None]:
        """``temporal_rays_fraction: pooled``: ``num_rays`` drawn from the keyframes' LiDAR pixels
        pooled (``cur`` then ``tmp``), each ray to the part its pixel came from; with the temporal
        rays' rows of ``tmp`` (None when none was drawn)."""
        c = self.cfg
        rays: dict[str, Rays] = {}
        tmp_index: torch.Tensor | None = None
        pool = torch.cat([cur, tmp])
        if pool.shape[0] == 0:
            raise ValueError(
                f"{where}: no LiDAR point of any keyframe projects into a camera (langocc.ray_pixels='lidar')"
            )
        pick = (
            torch.randperm(pool.shape[0], device=pool.device)[: c.num_rays]
            if pool.shape[0] >= c.num_rays
            else torch.randint(0, pool.shape[0], (c.num_rays,), device=pool.device)
        )
        is_cur = pick < cur.shape[0]
        # Two waits for the device, needed: which ray sets exist (and their sizes) is shape, not data
        if bool(is_cur.any()):
            K, T, (h, w) = cams["current"]
            rays["current"] = camera_rays(K, T, h, w, pixels=pool[pick[is_cur]])
        if bool((~is_cur).any()):
            tmp_index = pick[~is_cur] - cur.shape[0]
            K, T, (h, w) = cams["temporal"]
            rays["temporal"] = camera_rays(K, T, h, w, pixels=tmp[tmp_index])
        return rays, tmp_index

    def _lidar_rays_by_part(
        self, cur: torch.Tensor, tmp: torch.Tensor | None, cams: dict[str, Any], where: str
    ) -> tuple[dict[str, Rays], torch.Tensor | None]:
        """Each part's rays (:meth:`ray_split`; all current with ``pooled`` and no neighbours) drawn
        from its own LiDAR pixels ``cur`` / ``tmp``; with the temporal rays' rows of ``tmp``."""
        c = self.cfg
        rays: dict[str, Rays] = {}
        tmp_index: torch.Tensor | None = None
        n_cur, n_tmp = self.ray_split() if c.temporal_rays_fraction != "pooled" else (c.num_rays, 0)
        for name, n, px in (("current", n_cur, cur), ("temporal", n_tmp, tmp)):
            if not n:
                continue
            if px is None or px.shape[0] == 0:
                which = "" if name == "current" else ", neighbour cameras"
                raise ValueError(f"{where}{which}: no LiDAR point projects into a camera (langocc.ray_pixels='lidar')")
            index = self._pick(px, n)
            if name == "temporal":
                tmp_index = index
            K, T, (h, w) = cams[name]
            rays[name] = camera_rays(K, T, h, w, pixels=px[index])
        return rays, tmp_index

    def _ray_targets(
        self, batch: Batch, b: int, rays: dict[str, Rays], tmp_index: torch.Tensor | None
    ) -> dict[str, tuple[Rays, torch.Tensor]]:
        """Each part's rays with their 2D targets ``(R, D)``: the prior features sampled where the
        rays leave their cameras, or the neighbours' gathered pixel features (``lidar_pixels``)."""
        c = self.cfg
        stride = batch.prior_feature_stride
        out: dict[str, tuple[Rays, torch.Tensor]] = {}
        if "current" in rays:
            out["current"] = (
                rays["current"],
                sample_feature_map(batch.prior_features[b].float(), rays["current"], stride),
            )
        if "temporal" in rays and c.temporal_gather == "lidar_pixels":
            assert batch.temporal_pixel_features is not None and tmp_index is not None
            out["temporal"] = (rays["temporal"], take_rows(batch.temporal_pixel_features[b], tmp_index))
        elif "temporal" in rays:
            assert batch.temporal_features is not None
            feats = batch.temporal_features[b].flatten(0, 1)  # (T*N, D, h, w)
            out["temporal"] = (rays["temporal"], sample_feature_map(feats, rays["temporal"], stride))
        return out

    @torch.no_grad()
    def _calibrate(self, logits: torch.Tensor, rays: Rays, z: torch.Tensor) -> None:
        """Histograms for ``occupied_threshold: auto`` from one frame's rays and their 2D prior
        depths ``z (R,)`` (camera z, 0 = unknown)."""
        c = self.cfg
        p = self.p_occupied(logits)  # (X, Y, Z)
        t = z / rays.z_per_t.clamp(min=1e-6)
        near, far = ray_box(rays.origins.float(), rays.dirs.float(), self.grid, min_near=c.near)
        ok = (z > 0) & (t > near) & (t <= far)
        calibration_update(self.calibration, p, self.grid, rays, t, near, ok, c.calibration_margin, c.calibration_decay)

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """``loss_feat``: the cosine-weighted MSE of the rendered features against the 2D prior
        features, over the current frame's rays and (``temporal_offsets``) the neighbour frames'
        rays rendered in the current frame's grid (:meth:`frame_rays`), mean over frames."""
        c = self.cfg
        if batch.prior_features is None or batch.prior_feature_stride < 1:
            raise ValueError(
                "batch.prior_features is None: langocc trains on 2D vision-language features "
                "(data.priors: a cache made with --kinds features)"
            )
        B, N = batch.images.shape[:2]
        check_shape(batch.prior_features, "B N D h w", name="batch.prior_features", dims={"B": B, "N": N})
        if batch.prior_features.shape[2] != c.feature_dim:
            raise ValueError(
                f"batch.prior_features are {batch.prior_features.shape[2]}-d but langocc.feature_dim is {c.feature_dim}"
            )
        self._check_temporal(batch)
        self.ensure_class_text()
        out = self.forward(batch)
        losses = []
        for b in range(B):
            parts = self.frame_rays(batch, b)
            if c.occupied_threshold == "auto" and batch.prior_depth is not None and "current" in parts:
                cur = parts["current"][0]
                self._calibrate(out.logits[b], cur, cur.gather(batch.prior_depth[b]).float())
            rays = cat_rays([p[0] for p in parts.values()])
            target = torch.cat([p[1] for p in parts.values()])  # (R, D)
            has_target = target.norm(dim=-1) > 1e-6
            target = self.project(target)
            r = self.render(out.logits[b], out.features[b], rays, jitter=True)
            valid = (r.opacity.detach() > 1e-6) & has_target
            losses.append(cosine_weighted_mse(r.values, target, valid, detach_weight=c.detach_weight))
        return {"loss_feat": c.feature_weight * torch.stack(losses).mean()}


# ------------------------------------------------------------------------------------ registration
def wrap_dataset(cfg: Any, ds: Any, train: bool) -> Any:
    """The prior cache's features must be ``langocc.feature_dim`` wide; training frames get their
    neighbours' 2D features and cameras for the temporal rays (``langocc.temporal_offsets``)."""
    from occkit.config import ConfigError

    cache = getattr(ds, "cache", None)  # the WithPriors of data.priors, when set
    if (
        cache is not None
        and "features" in cache.kinds
        and cache.feature_dim
        and cache.feature_dim != cfg.langocc.feature_dim
    ):
        raise ConfigError(
            f"data.priors {cfg.data.priors}: its features are {cache.feature_dim}-d (its prior.json, text "
            f"encoder {cache.record.get('text_encoder')}) but langocc.feature_dim is {cfg.langocc.feature_dim}; "
            "set langocc.feature_dim to the cache's width"
        )
    if train and cfg.langocc.temporal_offsets:  # LangOcc's temporal rays: neighbours' 2D features
        if not cfg.data.priors:
            raise ConfigError(
                "langocc.temporal_offsets: the neighbours' 2D features come from the prior cache; set data.priors"
            )
        from occkit.data.temporal import WithTemporalPriors
        from occkit.priors.cache import PriorCache

        c = cfg.langocc
        gather: dict[str, Any] = {}
        if c.temporal_gather != "maps":
            gather_error = check_temporal_gather(c)
            if gather_error:
                raise ConfigError(gather_error)
            gather = {
                "gather": c.temporal_gather,
                "box": lift_grid_of(cfg.model)[0] if c.ray_box else None,  # the model's output grid
                "depth_range": None if c.ray_depth is None else tuple(c.ray_depth),
            }
            if cfg.data.lidar_infos:  # real Occ3D-nuScenes: each keyframe's own points from the info file
                from occkit.data.lidar_sweeps import WithLidarSweeps

                gather["lidar_of"] = WithLidarSweeps(ds, 1, cfg.data.lidar_infos).keyframe_lidar
        ds = WithTemporalPriors(ds, PriorCache(cfg.data.priors, kinds=("features",)), c.temporal_offsets, **gather)
    return ds


METHOD = MethodSpec(
    name="langocc",
    summary="rendered vision-language features from a 2D prior cache; classes zero-shot from text",
    sections={"langocc": LangOccConfig},
    from_format={**MODEL_FROM_FORMAT, "langocc.classes": "names", "langocc.free": "free"},
    build=lambda cfg, load_run: LangOccMethod(cfg.model, cfg.langocc),
    wrap_dataset=wrap_dataset,
    needs_priors="it trains on the 2D vision-language features of a prior cache (occkit priors run; the cache's "
    "features of every frame)",
    export_refused="its prediction is not the network's output: each voxel's vision-language feature is matched "
    "against text embeddings of a sentence-transformer (zero-shot classes) under a calibrated density threshold",
)
