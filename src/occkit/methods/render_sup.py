"""The ``render_sup`` recipe: the camera occupancy network trained from 2D maps only (RenderOcc).

No 3D label is read. A training step:

1. ``OccNet`` forward: logits ``(B, 18, X, Y, Z)``.
2. The logits become a radiance-free field: density ``sigma = -log p(free) / voxel`` (so a ray
   crossing one voxel stops there with probability ``p(occupied)``) and class probabilities
   given "occupied" (softmax over the 17 non-free logits); see :mod:`occkit.rendering.volrend`.
3. ``num_rays`` random pixels per frame across its cameras are rendered through the grid
   (samples every ``sample_step`` metres, trilinear lookups, optional importance pass).
4. Losses against the per-camera maps ``batch.depth`` (camera z-depth in metres, 0 = none) and
   ``batch.semantics_2d`` (Occ3D class ids, 17 = sky / nothing):

   - ``loss_sem``: cross-entropy of the rendered class distribution, on rays whose true surface
     lies inside the grid box (other rays' class is not in the grid to be rendered);
   - ``loss_depth``: SILog (or L1) of the rendered depth against the true ray distance
     (``z-depth / z_per_t``), on the same rays;
   - ``loss_opacity``: binary cross-entropy of the ray's opacity against "the surface lies
     inside the grid box" (1) or "the ray leaves the grid unstopped" (0: sky, or a surface
     beyond the box), which carves free space;
   - ``loss_termination``: ``-log P(the ray stops within termination_window of the true
     depth)`` under its termination distribution, on surface rays: the expected-depth loss alone
     is met by a diffuse fog (many voxels each slightly opaque), this one needs the mass at the
     surface and clear space before it;
   - ``loss_distortion`` (Mip-NeRF 360, distances divided by the ray's span inside the box) and
     ``loss_entropy`` (entropy of the termination distribution) on surface rays;
   - ``loss_lss_depth``: the LSS depth-distribution loss from the depth maps, as the supervised
     recipe does (2D supervision too).

Two options serve EasyOcc's plug-in claim (docs/methods.md §2): ``targets: priors`` takes the 2D
targets from a prior cache (``data.priors``: ``batch.prior_depth``, 0 = unknown, and
``batch.prior_semantics``, 255 = unknown) instead of the synthetic world's exact maps, so the
self-supervised baseline sees the same 2D priors as the pseudo-labels; rays with unknown depth that
the prior does not call sky are left out of ``loss_opacity``, unknown classes out of ``loss_sem``.
``pseudo_label_weight > 0`` adds ``loss_pseudo``: class-balanced cross-entropy of the voxel logits
against 3D pseudo-labels (``occkit pseudolabel``; train with ``--data DIR2``, where
``batch.occupancy`` / ``batch.mask_camera`` are the pseudo-labels and their observed voxels).

The network is unchanged; a learnable offset of the free logit starts every voxel at
``p(free) = free_prior``. ``predict`` returns ``(B, 18, X, Y, Z)`` scores whose argmax is the
prediction (occupied where ``p(occupied) >= occupied_threshold``, then the most likely non-free
class), so the engine evaluates it exactly like ``supervised``. The 2D
targets come from the synthetic world's extras now; LiDAR projections or 2D priors can fill
``batch.depth`` / ``batch.semantics_2d`` later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from occkit.data.sample import Batch
from occkit.losses.depth import depth_loss, depth_map_targets, lidar_depth_maps
from occkit.losses.pseudo_labels import balanced_cross_entropy, count_labels
from occkit.losses.render import (
    distortion_loss,
    l1_depth_loss,
    rendered_semantic_loss,
    silog_loss,
    termination_loss,
    weight_entropy_loss,
)
from occkit.methods.calibration import CALIBRATION_BINS, calibration_threshold, calibration_update
from occkit.methods.registry import MODEL_FROM_FORMAT, ExportHead, ExportSupport, MethodSpec, format_free
from occkit.models.occnet import OccNet, OccNetConfig, OccNetOutput, build_occnet
from occkit.rendering.rays import Rays, camera_rays
from occkit.rendering.sampling import ray_box
from occkit.rendering.volrend import RenderOutput, logits_field, render_rays
from occkit.shapes import check_shape


@dataclass
class RenderSupConfig:
    """Rays, rendering and losses of the ``render_sup`` method."""

    num_rays: int = 2048
    """Random pixels rendered per frame per step (uniform over all cameras' pixels)."""
    sample_step: float = 0.2
    """Metres between samples along a ray inside the grid box (half a 0.4 m voxel)."""
    num_importance: int = 0
    """Extra samples per ray from a coarse pass (inverse CDF); 0 = uniform samples only."""
    lookup: Literal["trilinear", "nearest"] = "trilinear"
    """How samples read the voxel grid: trilinear interpolation (smooth gradients) or nearest."""
    chunk: int = 8192
    """Rays rendered per pass (bounds memory with ``checkpoint``)."""
    checkpoint: bool = False
    """Recompute each chunk during backward instead of keeping its graph (saves memory)."""
    free: int | None = None
    """The free class of the logits; also the sky / nothing label of the 2D semantic maps. None: the
    data format's (as ``supervised.free``)."""
    semantic_weight: float = 1.0
    """Weight of ``loss_sem``."""
    depth_weight: float = 1.0
    """Weight of ``loss_depth``."""
    depth_loss: Literal["silog", "l1"] = "silog"
    """Rendered depth loss: scale-invariant log (``silog_lambda``) or L1 in metres."""
    silog_lambda: float = 0.85
    """Variance focus of SILog (0: log-RMSE, 1: fully scale invariant)."""
    termination_weight: float = 1.0
    """Weight of ``loss_termination``: -log P(ray stops within ``termination_window`` of the true
    depth) under the termination distribution; 0 drops it."""
    termination_window: float = 0.4
    """Half-width of that band, metres (one Occ3D voxel)."""
    opacity_weight: float = 1.0
    """Weight of ``loss_opacity`` (free-space carving); 0 drops it."""
    distortion_weight: float = 0.01
    """Weight of ``loss_distortion``; 0 drops it."""
    entropy_weight: float = 0.001
    """Weight of ``loss_entropy``; 0 drops it."""
    lss_depth_weight: float = 1.0
    """Weight of the LSS depth-distribution loss from the depth maps (``loss_lss_depth``); 0 drops it."""
    occupied_threshold: float | Literal["auto"] = "auto"
    """``predict``: a voxel is occupied when ``p(occupied) = 1 - p(free)`` reaches this, then takes
    its most likely non-free class. Rendering spreads a surface's opacity over the voxels a ray
    crosses near it (several for grazing rays on the ground), so surface voxels keep a
    ``p(occupied)`` far below what a plain argmax over 18 classes needs. ``auto``: calibrated
    while training, from the 2D depth maps only (:meth:`RenderSupMethod.threshold`); a number:
    that fixed value; 0: plain argmax of the logits."""
    calibration_decay: float = 0.99
    """``auto`` threshold: per-step decay of the calibration histograms (recent steps count most)."""
    calibration_margin: float = 0.8
    """``auto`` threshold: free-space samples lie at least this many metres before the surface."""
    targets: Literal["extras", "priors", "lidar"] = "extras"
    """Where the 2D targets come from: 'extras' (``batch.depth`` / ``batch.semantics_2d``, the
    synthetic world's exact maps, ``data.load_extras``), 'priors' (``batch.prior_depth`` /
    ``batch.prior_semantics`` from the prior cache of ``data.priors``) or 'lidar' (depth only:
    each camera's sparse depth map from the frame's LiDAR points, ``batch.lidar``; rays are drawn
    at the pixels a point hits, no class is known, so set ``semantic_weight: 0``). 'lidar' trains
    occkit's base checkpoint (``base-cpu``): geometry from LiDAR depth, no labels, as BEVStereo4D's
    depth net is trained."""
    pseudo_label_weight: float = 0.0
    """Weight of ``loss_pseudo``, class-balanced voxel cross-entropy against 3D pseudo-labels
    (``batch.occupancy`` of an ``occkit pseudolabel`` dataset, inside its ``mask_camera``); 0 = off."""
    pseudo_label_offset: float = 1.05
    """ENet's ``c`` of ``loss_pseudo``'s class weights (log-inverse frequencies of the pseudo-labels
    seen so far)."""
    free_prior: float = 0.0
    """Initial p(free) of every voxel, through a learnable offset added to the free logit
    (``log(p / (1 - p)) + log(C - 1)``, as detectors initialise a rare-class bias); 0 = no offset.
    Without it the untrained network's p(free) ~ 1/C makes every ray opaque at its first sample."""


class RenderSupMethod(nn.Module):
    """OccNet + volume-rendering losses against 2D maps; implements :class:`occkit.methods.base.Method`."""

    def __init__(self, model_cfg: OccNetConfig, method_cfg: RenderSupConfig) -> None:
        super().__init__()
        c = method_cfg
        if c.num_rays < 1:
            raise ValueError(f"RenderSupConfig.num_rays: expected >= 1, got {c.num_rays}")
        if not c.sample_step > 0:
            raise ValueError(f"RenderSupConfig.sample_step: expected > 0, got {c.sample_step}")
        if not 0 <= format_free(c.free, "render_sup.free") < model_cfg.num_classes:
            raise ValueError(f"RenderSupConfig.free {c.free} outside the model's {model_cfg.num_classes} classes")
        self.model_cfg = model_cfg
        self.cfg = method_cfg
        if not 0 <= c.free_prior < 1:
            raise ValueError(f"RenderSupConfig.free_prior: expected a probability in [0, 1), got {c.free_prior}")
        self.model: OccNet = build_occnet(model_cfg)
        self.grid = self.model.output_grid
        C = model_cfg.num_classes
        init = math.log(c.free_prior / (1 - c.free_prior)) + math.log(C - 1) if c.free_prior > 0 else 0.0
        self.free_bias = nn.Parameter(torch.tensor(float(init)))
        """Learnable offset of the free logit (see ``free_prior``)."""
        if not (
            c.occupied_threshold == "auto"
            or (isinstance(c.occupied_threshold, float) and 0 <= c.occupied_threshold < 1)
        ):
            raise ValueError(
                "RenderSupConfig.occupied_threshold: expected 'auto' or a number in [0, 1), got "
                f"{c.occupied_threshold!r}"
            )
        if not 0 < c.calibration_decay <= 1:
            raise ValueError(
                f"RenderSupConfig.calibration_decay: expected a number in (0, 1], got {c.calibration_decay}"
            )
        if c.targets == "lidar" and c.semantic_weight > 0:
            raise ValueError("render_sup.targets='lidar' gives depth only: set render_sup.semantic_weight=0")
        if c.pseudo_label_weight < 0:
            raise ValueError(f"RenderSupConfig.pseudo_label_weight: expected >= 0, got {c.pseudo_label_weight}")
        if model_cfg.lift == "sample" and c.lss_depth_weight > 0:
            raise ValueError(
                "RenderSupConfig.lss_depth_weight > 0 needs the LSS lift's depth distribution; model.lift is 'sample' "
                "(set it to 0)"
            )
        if c.pseudo_label_weight > 0:
            self.register_buffer("label_counts", torch.zeros(C, dtype=torch.float64))
            """Pseudo-label voxels per class seen so far (``loss_pseudo``'s class weights)."""
        self.register_buffer("calibration", torch.zeros(2, CALIBRATION_BINS))
        """Decayed histograms of p(occupied) over [0, 1]: row 0 at training rays' surface voxels,
        row 1 at voxels of the free space before them (saved with the weights)."""
        if (
            c.semantic_weight > 0
        ):  # learns classes: no depth figures, and the engine skips a second pass over validation
            self.validation_figures = None  # type: ignore[method-assign]

    def forward(self, batch: Batch) -> OccNetOutput:
        """The model's full output for ``batch`` (logits and intermediates), with ``free_bias``
        added to the free logit."""
        out = self.model(batch.images, batch.intrinsics, batch.T_ego_from_cam)
        offset = F.one_hot(torch.tensor(self.cfg.free), self.model_cfg.num_classes).to(out.logits)
        out.logits = out.logits + (self.free_bias * offset).view(1, -1, 1, 1, 1)
        return out

    def threshold(self) -> float:
        """The ``p(occupied)`` threshold ``predict`` uses; with ``occupied_threshold: auto`` the one
        calibrated from the 2D depth maps while training (:mod:`occkit.methods.calibration`), 0.5
        before any training step."""
        tau = self.cfg.occupied_threshold
        return float(tau) if tau != "auto" else calibration_threshold(self.calibration, 0.5)

    @torch.no_grad()
    def _calibrate(
        self, logits: torch.Tensor, rays: Rays, t_true: torch.Tensor, near: torch.Tensor, surface: torch.Tensor
    ) -> None:
        """Add one frame's rays to the calibration histograms (see :meth:`threshold`)."""
        c = self.cfg
        p_occ = -torch.expm1(torch.log_softmax(logits.detach().float(), 0)[c.free])  # (X, Y, Z)
        margin, decay = c.calibration_margin, c.calibration_decay
        calibration_update(self.calibration, p_occ, self.grid, rays, t_true, near, surface, margin, decay)

    @torch.no_grad()
    def predict(self, batch: Batch) -> torch.Tensor:
        """Scores ``(B, num_classes, X, Y, Z)`` whose argmax is the prediction: with
        ``occupied_threshold = tau > 0``, the non-free classes' scores are their log-probabilities
        given "occupied" and the free score is +1 where ``p(occupied) < tau``, else -inf (-1e4);
        with ``tau = 0``, the logits."""
        logits = self.forward(batch).logits
        tau = self.threshold()
        if tau <= 0:
            return logits
        f = self.cfg.free
        log_p = torch.log_softmax(logits.float(), 1)
        occupied = -torch.expm1(log_p[:, f]) >= tau  # (B, X, Y, Z)
        keep = [c for c in range(logits.shape[1]) if c != f]
        scores = torch.empty_like(log_p)
        scores[:, keep] = torch.log_softmax(logits.float()[:, keep], 1)
        scores[:, f] = torch.where(occupied, torch.full_like(log_p[:, f], -1e4), torch.ones_like(log_p[:, f]))
        return scores

    def render(self, logits: torch.Tensor, rays: Rays, **kwargs) -> RenderOutput:
        """Render one frame's logits ``(C, X, Y, Z)`` along ``rays``: depth (ray distance),
        opacity, values ``(R, C-1)`` = rendered non-free class probabilities, and (with
        ``return_weights``) the weights. Keyword arguments override the config's."""
        check_shape(
            logits, "C X Y Z", name="logits", dims=dict(zip("XYZ", self.grid.shape), C=self.model_cfg.num_classes)
        )
        c = self.cfg
        field = logits_field(logits, self.grid, free=c.free, mode=kwargs.pop("lookup", c.lookup))
        opts = dict(step=c.sample_step, num_importance=c.num_importance, chunk=c.chunk, checkpoint=c.checkpoint)
        opts.update(kwargs)
        return render_rays(field, rays.origins.float(), rays.dirs.float(), self.grid, **opts)

    #: Rays per frame of the validation depth figures (a fixed draw: the same pixels at every validation).
    VALIDATION_RAYS = 4096

    @torch.no_grad()
    def validation_figures(self, batch: Batch) -> dict[str, tuple[float, int]]:
        """What a run that learns no classes (``semantic_weight: 0``, e.g. base-cpu: depth from
        LiDAR alone) is validated on besides geometry IoU: the rendered depth against the 2D depth
        targets at up to :data:`VALIDATION_RAYS` pixels per frame that have one, a fixed draw
        (seed 0; the global RNG is left as it was). ``depth_abs_rel`` = mean |d - d*| / d*,
        ``depth_abs_m`` = mean |d - d*| in metres (ray distance), ``depth_hit`` = percent of those
        rays the rendering ends on a surface (opacity > 0.5). Nothing for a run that learns
        classes: its class mIoU is its figure."""
        depth_maps, _ = self.targets_2d(batch)
        B, N, _, H, W = batch.images.shape
        logits = self.forward(batch).logits
        rel = err = hit = 0.0
        n = 0
        for b in range(B):
            at = (depth_maps[b] > 0).float()
            if not bool(at.any()):
                continue
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                rays = camera_rays(
                    batch.intrinsics[b].float(),
                    batch.T_ego_from_cam[b].float(),
                    H,
                    W,
                    num_random=self.VALIDATION_RAYS,
                    weights=at,
                )
            z = rays.gather(depth_maps[b]).float()
            t_true = torch.where(z > 0, z / rays.z_per_t.clamp(min=1e-6), torch.zeros_like(z))
            near, far = ray_box(rays.origins, rays.dirs, self.grid)
            ok = (t_true > 0) & (t_true > near) & (t_true <= far)
            if not bool(ok.any()):
                continue
            r = self.render(logits[b], rays)
            d, t = r.depth.float()[ok], t_true[ok]
            rel += float(((d - t).abs() / t).sum())
            err += float((d - t).abs().sum())
            hit += float((r.opacity.float()[ok] > 0.5).sum())
            n += int(ok.sum())
        if n == 0:
            return {}
        return {"depth_abs_rel": (rel, n), "depth_abs_m": (err, n), "depth_hit": (100.0 * hit, n)}

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Weighted losses ``loss_sem``, ``loss_depth``, ``loss_opacity``, ``loss_distortion``,
        ``loss_entropy``, ``loss_lss_depth`` (terms with weight 0 are left out)."""
        c = self.cfg
        depth_maps, sem_maps = self.targets_2d(batch)
        B, N, _, H, W = batch.images.shape
        check_shape(depth_maps, "B N H W", name="batch.depth", dims={"B": B, "N": N, "H": H, "W": W})
        check_shape(sem_maps, "B N H W", name="batch.semantics_2d", dims={"B": B, "N": N, "H": H, "W": W})
        out = self.forward(batch)
        totals: dict[str, list[torch.Tensor]] = {}
        for b in range(B):
            for k, v in self._frame_losses(batch, b, out.logits[b], depth_maps[b], sem_maps[b]).items():
                totals.setdefault(k, []).append(v)
        losses = {k: torch.stack(v).mean() for k, v in totals.items()}
        if c.lss_depth_weight > 0:
            m = self.model_cfg
            target = depth_map_targets(depth_maps, m.feature_stride, (m.depth_min, m.depth_max, m.depth_step))
            losses["loss_lss_depth"] = c.lss_depth_weight * depth_loss(out.depth_prob, target, "bce")
        if c.pseudo_label_weight > 0:
            losses["loss_pseudo"] = self._pseudo_label_loss(batch, out.logits)
        return losses

    def _frame_losses(
        self, batch: Batch, b: int, logits: torch.Tensor, depth_map: torch.Tensor, sem_map: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Frame ``b``'s weighted rendering terms: its rays (``num_rays``, LiDAR pixels with
        ``targets: lidar``) rendered through its ``logits`` against its depth and class maps."""
        c = self.cfg
        H, W = batch.images.shape[-2:]
        at = (depth_map > 0).float() if c.targets == "lidar" else None  # LiDAR: rays where a point is
        if at is not None and not bool(at.any()):
            raise ValueError(f"render_sup.targets='lidar': frame {batch.tokens[b]} has no LiDAR point in any camera")
        rays = camera_rays(
            batch.intrinsics[b].float(), batch.T_ego_from_cam[b].float(), H, W, num_random=c.num_rays, weights=at
        )
        z = rays.gather(depth_map).float()  # (R,) camera z-depth, 0 = none
        sem_raw = rays.gather(sem_map).long()  # (R,)
        unknown = sem_raw == 255 if c.targets in ("priors", "lidar") else torch.zeros_like(sem_raw, dtype=torch.bool)
        sem = torch.where(unknown, torch.full_like(sem_raw, c.free), sem_raw)
        if bool(((sem < 0) | (sem >= self.model_cfg.num_classes)).any()):
            raise ValueError(f"batch.semantics_2d: class ids must lie in [0, {self.model_cfg.num_classes})")
        t_true = torch.where(z > 0, z / rays.z_per_t.clamp(min=1e-6), torch.zeros_like(z))  # ray distance
        near, far = ray_box(rays.origins, rays.dirs, self.grid)
        surface = (
            (t_true > 0) & (t_true > near) & (t_true <= far) & ((sem != c.free) | unknown)
        )  # (R,) hit inside the box
        if c.occupied_threshold == "auto":
            self._calibrate(logits, rays, t_true, near, surface)
        r = self.render(
            logits,
            rays,
            return_weights=c.distortion_weight > 0 or c.entropy_weight > 0 or c.termination_weight > 0,
        )
        terms: dict[str, torch.Tensor] = {}
        if c.semantic_weight > 0:
            target = torch.where(surface & ~unknown, sem, torch.full_like(sem, c.free))
            # r.values' columns are the non-free classes in order: a class id above free is one column lower
            column = torch.where(target == c.free, -1, target - (target > c.free).long())
            terms["loss_sem"] = c.semantic_weight * rendered_semantic_loss(r.values, column, ignore_index=-1)
        if c.depth_weight > 0:
            if c.depth_loss == "silog":
                terms["loss_depth"] = c.depth_weight * silog_loss(r.depth, t_true, surface, lam=c.silog_lambda)
            else:
                terms["loss_depth"] = c.depth_weight * l1_depth_loss(r.depth, t_true, surface)
        if c.opacity_weight > 0:
            terms["loss_opacity"] = self._opacity_loss(r.opacity, surface, z, sem_raw)
        if c.termination_weight > 0:
            terms["loss_termination"] = c.termination_weight * termination_loss(
                r.weights, r.samples.t, t_true, surface, c.termination_window
            )
        terms.update(self._weight_losses(r, surface, near, far))
        return terms

    def _opacity_loss(
        self, opacity: torch.Tensor, surface: torch.Tensor, z: torch.Tensor, sem_raw: torch.Tensor
    ) -> torch.Tensor:
        """The weighted BCE of the rays' opacity against whether they hit a surface, in float32; with
        2D priors or LiDAR targets over the rays with a depth ``z`` or a free class ``sem_raw`` only."""
        c = self.cfg
        with torch.autocast(device_type=opacity.device.type, enabled=False):
            if c.targets in ("priors", "lidar"):  # depth 0 = unknown, not "nothing": sky rays and rays with a depth
                known = (z > 0) | (sem_raw == c.free)
                bce = F.binary_cross_entropy(opacity.float().clamp(1e-5, 1 - 1e-5), surface.float(), reduction="none")
                return c.opacity_weight * (bce * known).sum() / known.sum().clamp(min=1)
            return c.opacity_weight * F.binary_cross_entropy(opacity.float().clamp(1e-5, 1 - 1e-5), surface.float())

    def _weight_losses(
        self, r: RenderOutput, surface: torch.Tensor, near: torch.Tensor, far: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The weighted distortion and entropy terms of the sample weights of the rays that hit a
        surface (``near`` / ``far``: where each ray enters and leaves the box); zero, with a graph,
        when none does."""
        c = self.cfg
        terms: dict[str, torch.Tensor] = {}
        if r.weights is not None and bool(surface.any()):
            s = r.samples
            w = r.weights[surface]
            if c.distortion_weight > 0:
                terms["loss_distortion"] = c.distortion_weight * distortion_loss(
                    w, s.t_starts[surface], s.t_ends[surface], scale=(far - near)[surface].clamp(min=1e-3)
                )
            if c.entropy_weight > 0:
                terms["loss_entropy"] = c.entropy_weight * weight_entropy_loss(w)
        elif r.weights is not None:
            if c.distortion_weight > 0:
                terms["loss_distortion"] = r.weights.sum() * 0
            if c.entropy_weight > 0:
                terms["loss_entropy"] = r.weights.sum() * 0
        return terms

    def _pseudo_label_loss(self, batch: Batch, logits: torch.Tensor) -> torch.Tensor:
        """The weighted class-balanced CE of the 3D logits against the batch's pseudo-labels (in the
        camera mask); counts their labels first."""
        c = self.cfg
        if batch.occupancy is None or batch.mask_camera is None:
            raise ValueError(
                "render_sup.pseudo_label_weight > 0 needs 3D pseudo-labels in the batch (train with --data DIR2 "
                "of occkit pseudolabel)"
            )
        mask = batch.mask_camera.bool()
        with torch.no_grad():
            self.label_counts += count_labels(batch.occupancy, mask, self.model_cfg.num_classes).to(self.label_counts)
        return c.pseudo_label_weight * balanced_cross_entropy(
            logits, batch.occupancy, mask, self.label_counts, c.pseudo_label_offset
        )

    def targets_2d(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The per-camera depth ``(B, N, H, W)`` (metres, 0 = none/unknown) and class maps
        ``(B, N, H, W)`` the rendering losses use, from ``targets`` ('extras', 'priors' or 'lidar';
        'lidar' has no classes: 255 everywhere)."""
        if self.cfg.targets == "lidar":
            if batch.lidar is None:
                raise ValueError(
                    "render_sup.targets='lidar' needs the frames' LiDAR (data.load_extras: true, or data.lidar_infos)"
                )
            B, N, _, H, W = batch.images.shape
            depth = torch.stack(
                [
                    lidar_depth_maps(batch.lidar[b], batch.intrinsics[b], batch.T_ego_from_cam[b], (H, W))
                    for b in range(B)
                ]
            )  # (B, N, H, W)
            return depth, torch.full(depth.shape, 255, dtype=torch.uint8, device=depth.device)
        if self.cfg.targets == "priors":
            if batch.prior_depth is None or batch.prior_semantics is None:
                raise ValueError(
                    "render_sup.targets='priors' needs batch.prior_depth / batch.prior_semantics: set data.priors to "
                    "a prior cache with depth and semantics"
                )
            return batch.prior_depth, batch.prior_semantics
        if batch.depth is None or batch.semantics_2d is None:
            raise ValueError(
                "batch.depth / batch.semantics_2d is None: render_sup needs per-camera depth and semantic maps (load "
                "the extras, or render_sup.targets: priors)"
            )
        return batch.depth, batch.semantics_2d


# ------------------------------------------------------------------------------------ registration
def export_head(method: RenderSupMethod) -> ExportHead:
    """The network, its learnt free-class bias, and ``predict``'s calibrated occupied threshold
    (a constant of the exported graph)."""
    return ExportHead(
        method.model,
        free_bias=method.free_bias,
        free=int(method.cfg.free),
        threshold=float(method.threshold()),
    )


METHOD = MethodSpec(
    name="render_sup",
    summary="the camera network trained from 2D depth / semantic maps alone through volume rendering",
    sections={"render_sup": RenderSupConfig},
    from_format={**MODEL_FROM_FORMAT, "render_sup.free": "free"},
    build=lambda cfg, load_run: RenderSupMethod(cfg.model, cfg.render_sup),
    export=ExportSupport(head=export_head),
    validation_figures=lambda cfg: cfg.render_sup.semantic_weight <= 0,  # a run that learns classes logs none
)
