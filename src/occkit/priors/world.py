"""The ``world:RUN`` prior: small 2D networks occkit trains itself on a synthetic world.

``occkit priors train`` (:func:`occkit.priors.world_train.train_world_prior`) trains one
multi-head network on the ``train`` split of a synthetic world (images and the exact per-pixel
extras: depth, semantics, instance ids, fine names); :class:`WorldPrior` loads the run and
answers every prior kind for frames of *another* world (or any images):

- **semantics**: an 18-way head over :data:`~occkit.priors.base.PRIOR_CLASSES` (Occ3D 0..16,
  then sky) on the driving world, a 12-way one over NYUv2's classes on the indoor world (the
  world format's table, :mod:`occkit.priors.classes`; ``net.class_table`` in the run), trained
  with a class-balanced cross-entropy; confidence = max softmax probability.
- **depth**: log-depth regression in a *canonical camera* (Metric3D's trick): the target is
  ``log(depth * f_ref / f)``, ``f`` the image's focal length in pixels at the net's input
  (``sqrt(fx * fy)`` after resizing and cropping) and ``f_ref`` a reference focal recorded in
  the run, so cameras with other lenses (the synthetic ``CAM_BACK``, zoom-crop augmentation, a
  frame at another resolution) share one mapping from appearance to depth; at inference
  ``depth = exp(prediction) * f / f_ref``. L1 loss on the log, sky (depth 0) masked out.
- **features**: a vision-language head giving ``D``-dim L2-normalised features at stride ``s``
  (``D`` = the text encoder's width), trained against the text embedding of each cell's fine
  name (an object's ``objects.json`` name, else the class word of its ground class or ``sky``)
  with an InfoNCE loss over the table of seen names (or a cosine loss); names in
  :data:`~occkit.worlds.driving.vocabulary.HELDOUT_NAMES` are masked, never relabelled, and are not
  even negatives, so open-vocabulary retrieval of them stays an honest test.
- **segments**: a boundary head (instance or semantic edges, binary cross-entropy), then
  connected components of the non-boundary pixels that share a predicted class; components
  smaller than ``segment_min_pixels`` (at the net's resolution) and the boundary pixels join the
  nearest component (:func:`segments_from_maps`).

A run folder (written atomically, file by file, ``config.json`` last)::

    RUN/config.json           {"format": "occkit.world_prior", "config": WorldPriorConfig,
                               "net": {...derived: classes, text_dim, depth_focal ...},
                               "names": seen names (rows of the table), "train": {data, seeds,
                               wall time, steps, losses ...}, "status": "complete" | "partial"}
    RUN/model.safetensors     the network's state_dict
    RUN/text_table.safetensors  {"embeddings": (K, D)} the text embeddings of ``names``
    RUN/backbone.safetensors  the timm encoder alone, with metadata {format: occkit.backbone,
                              backbone: timm name, steps, world_seed}: a pretrained backbone for any
                              occupancy network of the same timm model (``model.backbone_weights``)
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from occkit.config import ConfigError, from_dict, to_dict
from occkit.fileio import read_json
from occkit.priors.base import KINDS, PRIOR_CLASSES, PriorFrame, Priors, check_kinds

#: ``format`` of a world-prior run's ``config.json``.
RUN_FORMAT = "occkit.world_prior"
CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
TABLE_FILE = "text_table.safetensors"
#: The run's image encoder alone (a timm ``features_only`` state_dict): the pretrained backbone
#: that ``model.backbone_weights`` reads (occkit's stand-in for ImageNet / depth pretraining).
BACKBONE_FILE = "backbone.safetensors"
#: ``format`` in the safetensors metadata of :data:`BACKBONE_FILE`.
BACKBONE_FORMAT = "occkit.backbone"

#: ImageNet statistics the network normalises its input with (timm's convention).
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)
#: Range of canonical depths the depth head can express (metres).
DEPTH_RANGE = (0.1, 400.0)


@dataclass
class WorldPriorConfig:
    """How a ``world:RUN`` prior is built and trained (``occkit priors train --set key=value``)."""

    image_size: tuple[int, int] = (96, 256)
    """``(H, W)`` the network sees: training images (after the crop) and inference frames are resized to it."""
    backbone: str = "resnet18"
    """timm model name, built with ``pretrained=False, features_only=True`` (no downloads); needs
    levels at strides 4 and ``feature_stride``."""
    width: int = 64
    """Channels of the FPN levels and of the dense heads' trunk (the VL trunk has twice as many)."""
    feature_stride: int = 8
    """Stride ``s`` of the vision-language features (a backbone level: 8, 16 or 32)."""
    text_encoder: str = "minilm"
    """Spec of the text encoder whose space the features live in (:func:`occkit.priors.text.load_text_encoder`)."""
    text_templates: bool = True
    """Embed each name through the prompt templates of :func:`occkit.priors.text.encode_prompts`
    (else the bare name)."""
    vl_loss: str = "contrastive"
    """``contrastive`` (InfoNCE over the seen names' table) or ``cosine`` (1 - cosine to the cell's name)."""
    vl_temperature: float = 0.07
    """Temperature of the contrastive loss."""
    vl_min_purity: float = 0.5
    """A feature cell is trained only when its most frequent name covers at least this fraction of
    it (and no pixel in it is held out)."""
    w_semantics: float = 1.0
    """Weight of the semantic cross-entropy (0 = off)."""
    w_depth: float = 1.0
    """Weight of the L1 log-depth loss (0 = off)."""
    w_boundary: float = 1.0
    """Weight of the boundary binary cross-entropy (0 = off)."""
    w_vl: float = 1.0
    """Weight of the vision-language loss (0 = off)."""
    class_balance: float = 0.5
    """Semantic class weights ``freq ** -class_balance`` over the training pixels, normalised to
    mean 1 per pixel (0 = plain cross-entropy)."""
    max_class_weight: float = 10.0
    """Upper bound of a class weight."""
    boundary_pos_weight: float = 3.0
    """``pos_weight`` of the boundary BCE (boundary pixels are rare)."""
    boundary_threshold: float = 0.5
    """Boundary probability above which a pixel separates segments."""
    segment_min_pixels: int = 6
    """Segments smaller than this (pixels at the net's resolution, scaled to the frame's) join their neighbours."""
    lr: float = 1e-3
    """Peak AdamW learning rate (cosine decay to 5 % after ``warmup_steps``)."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    warmup_steps: int = 30
    """Linear warm-up steps."""
    steps: int = 2000
    """Optimiser steps (0 = no step limit; then ``minutes`` must be set)."""
    minutes: float = 0.0
    """Wall-clock budget in minutes (0 = none); training stops at whichever budget (steps, minutes,
    cpu_minutes) ends first and the cosine schedule follows the largest fraction used."""
    cpu_minutes: float = 0.0
    """Budget of the process's CPU time in minutes (0 = none): on a shared machine it counts the
    work done, not the waiting (with one torch thread, CPU minutes = core minutes)."""
    batch_size: int = 8
    """Images per step (drawn from every camera of every training frame)."""
    seed: int = 0
    """Seed of the initialisation, the batch order and the augmentation."""
    flip: bool = True
    """Random horizontal flips."""
    zoom_max: float = 1.25
    """Random zoom-crops: a window ``1/z`` of the image, ``z`` uniform in ``[1, zoom_max]``
    (1 = off); depth stays consistent through the canonical focal."""
    color_jitter: float = 0.3
    """Photometric augmentation strength ``j``: gamma, brightness, contrast and saturation factors
    in ``[1-j, 1+j]``, per-channel gains in ``[1-j/3, 1+j/3]`` (0 = off); the synthetic world's
    scenes differ in weather, exposure and tint."""
    log_every: int = 10
    """Steps between entries of the loss history kept in the run's JSON."""
    save_every_minutes: float = 5.0
    """Write a partial run (weights + JSON, ``status: partial``) this often (0 = only at the end)."""

    def check(self, where: str = "WorldPriorConfig") -> None:
        """Raise :class:`~occkit.config.ConfigError` naming the first bad field."""
        H, W = self.image_size
        if H < 16 or W < 16:
            raise ConfigError(f"{where}.image_size: expected at least 16 x 16, got {self.image_size}")
        if self.feature_stride not in (4, 8, 16, 32):
            raise ConfigError(f"{where}.feature_stride: expected 4, 8, 16 or 32, got {self.feature_stride}")
        if self.vl_loss not in ("contrastive", "cosine"):
            raise ConfigError(f"{where}.vl_loss: expected 'contrastive' or 'cosine', got {self.vl_loss!r}")
        if (
            self.steps < 0
            or self.minutes < 0
            or self.cpu_minutes < 0
            or (self.steps == 0 and self.minutes == 0 and self.cpu_minutes == 0)
        ):
            raise ConfigError(
                f"{where}: need steps, minutes or cpu_minutes > 0 (got steps={self.steps}, minutes={self.minutes}, "
                f"cpu_minutes={self.cpu_minutes})"
            )
        if self.batch_size < 1:
            raise ConfigError(f"{where}.batch_size: expected >= 1, got {self.batch_size}")
        if self.zoom_max < 1:
            raise ConfigError(f"{where}.zoom_max: expected >= 1, got {self.zoom_max}")
        if not 0 <= self.color_jitter < 1:
            raise ConfigError(f"{where}.color_jitter: expected in [0, 1), got {self.color_jitter}")
        if not 0 <= self.vl_min_purity <= 1:
            raise ConfigError(f"{where}.vl_min_purity: expected in [0, 1], got {self.vl_min_purity}")
        for k in ("w_semantics", "w_depth", "w_boundary", "w_vl", "lr", "vl_temperature", "class_balance"):
            if getattr(self, k) < 0:
                raise ConfigError(f"{where}.{k}: expected >= 0, got {getattr(self, k)}")
        if self.vl_temperature == 0:
            raise ConfigError(f"{where}.vl_temperature: expected > 0")
        if self.width < 8:
            raise ConfigError(f"{where}.width: expected >= 8, got {self.width}")


def _conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class WorldNet(nn.Module):
    """Shared timm encoder, a top-down FPN, four light heads.

    Args:
        backbone: timm model name (``pretrained=False, features_only=True``).
        width: FPN / trunk channels.
        text_dim: ``D``, the width of the vision-language features.
        feature_stride: stride of the vision-language head (a backbone level).
        num_classes: semantic classes (18 = :data:`PRIOR_CLASSES`).

    ``forward(images (B, 3, H, W) in [0, 1])`` returns a dict:

    - ``semantics``: ``(B, C, H/4, W/4)`` logits;
    - ``log_depth``: ``(B, 1, H/4, W/4)`` canonical log-depth (see the module docstring);
    - ``boundary``: ``(B, 1, H/4, W/4)`` boundary logits;
    - ``features``: ``(B, D, ceil(H/s), ceil(W/s))`` L2-normalised over ``D``.
    """

    def __init__(
        self, backbone: str, width: int, text_dim: int, feature_stride: int, num_classes: int = len(PRIOR_CLASSES)
    ) -> None:
        super().__init__()
        import timm

        try:
            body = timm.create_model(backbone, pretrained=False, features_only=True)
        except RuntimeError as e:  # timm raises RuntimeError for unknown names
            raise ValueError(f"backbone: unknown timm model {backbone!r} ({e})") from e
        reductions = list(body.feature_info.reduction())
        channels = list(body.feature_info.channels())
        keep = [i for i, r in enumerate(reductions) if r >= 4]
        strides = [reductions[i] for i in keep]
        if 4 not in strides or feature_stride not in strides:
            raise ValueError(f"backbone {backbone!r}: needs levels at strides 4 and {feature_stride}, has {reductions}")
        self.body = body
        self.keep = keep
        self.strides = strides
        self.feature_stride = feature_stride
        self.text_dim = text_dim
        self.lateral = nn.ModuleList(nn.Conv2d(channels[i], width, 1) for i in keep)
        self.dense = _conv_bn_relu(width, width)
        self.head_semantics = nn.Conv2d(width, num_classes, 1)
        self.head_depth = nn.Conv2d(width, 1, 1)
        self.head_boundary = nn.Conv2d(width, 1, 1)
        self.vl = nn.Sequential(_conv_bn_relu(width, 2 * width), nn.Conv2d(2 * width, text_dim, 1))
        nn.init.constant_(self.head_depth.bias, float(np.log(10.0)))
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = (images - self.mean) / self.std
        feats = self.body(x)
        levels = [lat(feats[i]) for lat, i in zip(self.lateral, self.keep)]  # finest first
        pyramid = [levels[-1]]
        for f in reversed(levels[:-1]):
            pyramid.append(f + F.interpolate(pyramid[-1], size=f.shape[-2:], mode="nearest"))
        pyramid = pyramid[::-1]  # finest first again
        by_stride = dict(zip(self.strides, pyramid))
        trunk = self.dense(by_stride[4])  # (B, width, H/4, W/4)
        feat = self.vl(by_stride[self.feature_stride])  # (B, D, H/s, W/s)
        return {
            "semantics": self.head_semantics(trunk),
            "log_depth": self.head_depth(trunk),
            "boundary": self.head_boundary(trunk),
            "features": F.normalize(feat, dim=1),
        }


def build_net(cfg: WorldPriorConfig, text_dim: int, num_classes: int = len(PRIOR_CLASSES)) -> WorldNet:
    """The network of a config (``text_dim`` = the text encoder's width, ``num_classes`` = its class table's size)."""
    return WorldNet(cfg.backbone, cfg.width, text_dim, cfg.feature_stride, num_classes)


def effective_focal(
    intrinsics: torch.Tensor, scale_y: float | torch.Tensor, scale_x: float | torch.Tensor
) -> torch.Tensor:
    """``sqrt(fx * sx * fy * sy)``: the focal length in pixels after scaling the image by ``(sy, sx)``.

    ``intrinsics: (..., 3, 3)`` -> ``(...)``.
    """
    return torch.sqrt(intrinsics[..., 0, 0] * scale_x * intrinsics[..., 1, 1] * scale_y)


def segments_from_maps(
    boundary_prob: np.ndarray, semantics: np.ndarray, threshold: float = 0.5, min_pixels: int = 6
) -> np.ndarray:
    """Segment ids from a boundary probability map and a class map (one image).

    Connected components (4-connectivity) of pixels below ``threshold`` that share a class;
    components under ``min_pixels`` and the boundary pixels take the id of the nearest kept
    component (Euclidean distance transform). Ids are consecutive from 1.

    Args:
        boundary_prob: ``(H, W)`` float in [0, 1].
        semantics: ``(H, W)`` integer class ids.
    Returns:
        ``(H, W)`` int32, ids ``1..n`` (every pixel has a segment).
    """
    from scipy.ndimage import distance_transform_edt
    from skimage.measure import label

    if boundary_prob.shape != semantics.shape or boundary_prob.ndim != 2:
        raise ValueError(
            f"segments_from_maps: boundary_prob {boundary_prob.shape} and semantics {semantics.shape} must be the "
            "same (H, W)"
        )
    img = np.where(boundary_prob < threshold, semantics.astype(np.int64) + 1, 0)
    lab = label(img, background=0, connectivity=1)
    if min_pixels > 1 and lab.max() > 0:
        counts = np.bincount(lab.ravel())
        small = counts < min_pixels
        small[0] = True
        lab[small[lab]] = 0
    if lab.max() == 0:
        return np.ones(lab.shape, np.int32)
    holes = lab == 0
    if holes.any():
        iy, ix = distance_transform_edt(holes, return_distances=False, return_indices=True)
        lab = lab[iy, ix]
    _, inv = np.unique(lab, return_inverse=True)
    return (inv.reshape(lab.shape) + 1).astype(np.int32)


def read_run(run: str | os.PathLike) -> dict[str, Any]:
    """A world-prior run's ``config.json`` (checked for the format and the fields loading needs)."""
    run = Path(run)
    path = run / CONFIG_FILE
    if not run.is_dir():
        raise FileNotFoundError(f"{run}: no such world-prior run folder")
    record = read_json(path)
    if not isinstance(record, dict) or record.get("format") != RUN_FORMAT:
        raise ValueError(f"{path}: not a world-prior run (expected format {RUN_FORMAT!r})")
    for key in ("config", "net", "names"):
        if key not in record:
            raise ValueError(f"{path}: missing key {key!r}")
    return record


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file as a dict of tensors; errors name the file."""
    from safetensors.torch import load_file

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weights file")
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for corrupt files
        raise ValueError(f"{path}: cannot read as safetensors ({type(e).__name__}: {e})") from e


class WorldPrior:
    """Priors from a run of ``occkit priors train`` (the ``world:RUN`` spec).

    Args:
        run: the run folder.
        device: where the network runs.
        feature_stride: stride of the returned features (default: the run's); features are
            resized to the ``(ceil(H/s), ceil(W/s))`` grid of each frame.
        text_encoder: an already loaded encoder with the run's spec (saves loading it again);
            by default it is loaded from the run's recorded spec on first use.

    The network is loaded from ``model.safetensors`` with the run's own config, in eval mode,
    gradients off; it is never trained here.
    """

    kinds: tuple[str, ...] = KINDS

    def __init__(
        self, run: str | os.PathLike, device: str = "cpu", feature_stride: int | None = None, text_encoder: Any = None
    ) -> None:
        self.run = Path(run)
        self.record = read_run(self.run)
        where = str(self.run / CONFIG_FILE)
        try:
            self.cfg = from_dict(WorldPriorConfig, self.record["config"])
            self.cfg.check(where)
        except ConfigError as e:
            raise ValueError(f"{where}: {e}") from e
        net_info = self.record["net"]
        self.text_dim = int(net_info["text_dim"])
        self.depth_focal = float(net_info["depth_focal"])
        self.feature_stride = int(feature_stride or self.cfg.feature_stride)
        if self.feature_stride < 1:
            raise ValueError(f"WorldPrior: feature_stride must be >= 1, got {feature_stride}")
        self.device = torch.device(device)
        from occkit.priors.classes import DEFAULT_PRIORS, prior_classes_named

        table = str(net_info.get("class_table", DEFAULT_PRIORS.name))  # runs before class tables: Occ3D's
        try:
            self.classes = prior_classes_named(table)
        except ValueError as e:
            raise ValueError(f"{where}: class table {table!r} unknown ({e})") from e
        """The class table the semantic head answers in (the world it was trained on)."""
        self.net = build_net(self.cfg, self.text_dim, self.classes.num_classes)
        weights = self.run / MODEL_FILE
        try:
            self.net.load_state_dict(load_state(weights), strict=True)
        except RuntimeError as e:
            raise ValueError(f"{weights}: does not fit the run's network ({e})") from e
        self.net.eval().requires_grad_(False).to(self.device)
        self.spec = f"world:{run}"
        if text_encoder is not None and getattr(text_encoder, "spec", None) != self.cfg.text_encoder:
            raise ValueError(
                f"WorldPrior: text_encoder {getattr(text_encoder, 'spec', None)!r} is not the run's "
                f"({self.cfg.text_encoder!r}, {where})"
            )
        self._text_encoder = text_encoder

    @property
    def text_encoder(self) -> Any:
        """The run's text encoder (loaded on first use)."""
        if self._text_encoder is None:
            from occkit.priors.text import load_text_encoder

            self._text_encoder = load_text_encoder(self.cfg.text_encoder)
            if int(self._text_encoder.dim) != self.text_dim:
                raise ValueError(
                    f"{self.run / CONFIG_FILE}: text encoder {self.cfg.text_encoder!r} has width "
                    f"{self._text_encoder.dim}, the run {self.text_dim}"
                )
        return self._text_encoder

    def describe(self) -> dict[str, Any]:
        weights = self.run / MODEL_FILE
        h = hashlib.sha256()
        with open(weights, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        train = self.record.get("train", {})
        return {
            "spec": self.spec,
            "provider": "world",
            "run": str(self.run.resolve()),
            "status": self.record.get("status", "unknown"),
            "weights_sha256": h.hexdigest(),
            "config": to_dict(self.cfg),
            "text_encoder": self.cfg.text_encoder,
            "feature_stride": self.feature_stride,
            "depth_focal": self.depth_focal,
            "train_data": train.get("data"),
            "train_world_seed": train.get("world_seed"),
            "seed": self.cfg.seed,
            "steps": train.get("steps"),
        }

    @torch.no_grad()
    def __call__(self, frame: PriorFrame, kinds: Sequence[str]) -> Priors:
        kinds = check_kinds(kinds, self.kinds, self.spec)
        H, W = frame.image_size
        Hn, Wn = self.cfg.image_size
        images = frame.images.to(self.device, torch.float32)
        x = F.interpolate(images, size=(Hn, Wn), mode="bilinear", align_corners=False, antialias=(Hn < H or Wn < W))
        out = self.net(x.clamp(0, 1))
        pri = Priors()
        full = (H, W)
        probs = None
        if "semantics" in kinds or "segments" in kinds:
            logits = F.interpolate(out["semantics"], size=full, mode="bilinear", align_corners=False)  # (N, C, H, W)
            probs = logits.softmax(1)
            conf, sem = probs.max(1)
            if "semantics" in kinds:
                pri.semantics = sem.to(torch.uint8).cpu()
                pri.confidence = conf.float().clamp(0, 1).cpu()
        if "depth" in kinds:
            log_d = F.interpolate(out["log_depth"], size=full, mode="bilinear", align_corners=False)[:, 0]  # (N, H, W)
            lo, hi = np.log(DEPTH_RANGE[0]), np.log(DEPTH_RANGE[1])
            f_net = effective_focal(frame.intrinsics.to(self.device, torch.float32), Hn / H, Wn / W)  # (N,)
            pri.depth = (log_d.clamp(lo, hi).exp() * (f_net / self.depth_focal).view(-1, 1, 1)).float().cpu()
        if "segments" in kinds:
            assert probs is not None
            bprob = F.interpolate(out["boundary"], size=full, mode="bilinear", align_corners=False)[:, 0].sigmoid()
            sem_np = probs.argmax(1).cpu().numpy()
            b_np = bprob.cpu().numpy()
            min_px = max(1, round(self.cfg.segment_min_pixels * (H * W) / (Hn * Wn)))
            segs = [
                segments_from_maps(b_np[i], sem_np[i], self.cfg.boundary_threshold, min_px) for i in range(len(b_np))
            ]
            pri.segments = torch.from_numpy(np.stack(segs))
        if "features" in kinds:
            s = self.feature_stride
            grid = (-(-H // s), -(-W // s))
            feat = out["features"]
            if tuple(feat.shape[-2:]) != grid:
                feat = F.interpolate(feat, size=grid, mode="bilinear", align_corners=False)
            pri.features = F.normalize(feat, dim=1).float().cpu()
            pri.feature_stride = s
        return pri
