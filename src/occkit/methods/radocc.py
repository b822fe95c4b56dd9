"""The ``radocc`` recipe: a frozen LiDAR (or camera+LiDAR) teacher distilled into the camera
network through rendered views (RadOcc, AAAI 2024; METHODS.md §1).

The student is the camera occupancy network of the ``supervised`` recipe, with all its own
losses (the ``supervised`` section of the config: CE, Lovász, depth, 2D semantics). The teacher
is an ordinary run (``radocc.teacher: RUN``, trained with ``supervised`` and ``model.modality:
lidar`` or ``fusion``), loaded with its own config, in eval mode, gradients off, held outside
this module's parameters and state: the optimiser never sees it and the run's checkpoints hold
the student (and the feature adapter) only, so ``occkit predict`` / ``eval`` on a radocc run
score the student. A training step adds, on ``num_rays`` camera rays per frame (pixels with a
LiDAR return, as the released code, or any pixel: ``rays``):

- ``loss_rdc`` (rendered depth consistency): both networks' logits are volume-rendered along the
  same rays on the same samples (density ``-log p(free) / voxel``, occkit's
  :func:`~occkit.rendering.volrend.density_from_logits`, the family of the released code's
  ``softplus``); ``tau^2 KL(softmax(w_T / tau) || softmax(w_S / tau))`` of the termination
  weights per ray (:func:`occkit.losses.distill.rendered_depth_kl`);
- ``loss_rsc`` (rendered semantic consistency): the rendered semantic features (the non-free
  logits centred per voxel, weighted by ``w``) pooled per 2D segment (``Batch.prior_segments``, from a prior
  cache: SAM-like oracle segments or superpixels), cosine affinities between segments, MSE
  teacher vs student (``semantic_mode: affinity``, the paper's); or the KL of the per-ray
  rendered class distributions (``semantic_mode: kl``, the released configs');
- the 3D baselines: ``loss_feat``, masked L1 between the 3D encoders' voxel features (the
  student's through a learnt 1x1x1 adapter when the widths differ), and ``loss_logit``, KL of the
  voxel class distributions at temperature ``logit_tau`` (both inside the camera mask when
  ``mask_3d: camera``).

``teacher_density: hard`` (occkit's option, not the paper's, for diagnosis) renders the
teacher's argmax occupancy as a hard density instead of ``-log p(free) / voxel``: a teacher whose
voxel argmax is right but whose ``p(free)`` stays well below 1 in free space (a short or
class-weighted training) renders a near fog; the hard density keeps its surfaces sharp where its
argmax is. On the ablation world it made distillation worse, not better (BENCHMARKS.md).
``semantic_density_grad: false`` (occkit's diagnostic option) stops ``loss_rsc``'s gradient at the
student's density (the semantic term renders the student a second time with its density detached),
so the semantic term can only change what the student's rays render, not where they stop.

Every term has its weight (0 = off), so each ablation arm is the preset plus ``--set``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from occkit.data.sample import Batch
from occkit.geometry.camera import project
from occkit.losses.distill import feature_l1, logit_kl, rendered_depth_kl, rendered_semantic_kl, segment_affinity_loss
from occkit.methods.supervised import SupervisedConfig, SupervisedMethod
from occkit.models.occnet import OccNetConfig, OccNetOutput
from occkit.rendering.rays import Rays, camera_rays
from occkit.rendering.volrend import RenderOutput, density_from_logits, grid_field, render_rays, semantic_probs_from_logits
from occkit.shapes import check_shape


@dataclass
class RadOccConfig:
    """Teacher, rays and distillation terms of the ``radocc`` method (the student's own losses
    are the ``supervised`` section's)."""

    teacher: str | None = None
    """The teacher: a run folder, checkpoint folder or weights file of a trained method (its
    config.json is read from the run). Required unless every distillation weight is 0."""
    teacher_ema: bool = True
    """Load the teacher's EMA weights when its checkpoint has them."""
    num_rays: int = 2048
    """Camera rays rendered per frame per step (the paper: ~80k per batch on GPUs)."""
    rays: Literal["lidar", "all"] = "lidar"
    """Which pixels: 'lidar', those a LiDAR point of the frame projects into (the released code;
    needs ``Batch.lidar``); 'all', uniform over every camera's pixels."""
    sample_step: float = 0.2
    """Metres between samples along a ray (the released code: 0.2, half an Occ3D voxel)."""
    jitter: bool = True
    """One random offset of the samples per ray per step (the same for teacher and student)."""
    lookup: Literal["trilinear", "nearest"] = "trilinear"
    """How samples read the voxel grids."""
    teacher_density: Literal["soft", "hard"] = "soft"
    """How the teacher's logits become density: 'soft', ``-log p(free) / voxel`` (as the student;
    the released code's family); 'hard', ``hard_sigma`` where the teacher's argmax is not free,
    else 0 (occkit's option for teachers whose renders are a fog; the module docstring)."""
    hard_sigma: float = 1000.0
    """Density per metre of the teacher's occupied voxels with ``teacher_density: hard``."""
    chunk: int = 8192
    """Rays rendered per pass."""
    free_index: int = 17
    """The free class of the logits."""
    depth_weight: float = 100.0
    """Weight of ``loss_rdc`` (released code: 100); 0 = off."""
    depth_tau: float = 1.0
    """Temperature of ``loss_rdc`` (released code: 1 with a LiDAR teacher, 10 with camera+LiDAR)."""
    semantic_weight: float = 0.0
    """Weight of ``loss_rsc``; 0 = off. The KL variant's released weight is 10; the affinity
    variant's is not given (METHODS.md: unsure)."""
    semantic_mode: Literal["affinity", "kl"] = "affinity"
    """'affinity': segment-guided affinity MSE (the paper's; needs ``Batch.prior_segments``,
    ``data.priors`` with segments); 'kl': KL of rendered class distributions per ray."""
    semantic_density_grad: bool = True
    """Whether ``loss_rsc`` trains the student's density too (True: one render of the student
    serves both terms, as the released code). False: the semantic term renders the student with
    its density detached, so it trains the rendered semantics only (occkit's diagnostic option:
    does the semantic term harm the geometry through the density?)."""
    feature_weight: float = 0.0
    """Weight of ``loss_feat`` (3D feature distillation baseline; released: 0.1); 0 = off."""
    logit_weight: float = 0.0
    """Weight of ``loss_logit`` (3D logit distillation baseline; released: 0.1 baseline, 10 in the
    final config); 0 = off."""
    logit_tau: float = 1.0
    """Temperature of ``loss_logit``."""
    mask_3d: Literal["camera", "all"] = "camera"
    """Voxels the 3D terms count: 'camera' (``Batch.mask_camera``) or 'all'."""


class _Frozen:
    """Holds the teacher outside the module tree (no parameters, no state dict, no ``.to``), and
    shares it, not copies it, when the method is deep-copied (the engine's EMA copy)."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __deepcopy__(self, memo: dict) -> "_Frozen":
        return self


class RadOccMethod(SupervisedMethod):
    """The camera student (a :class:`SupervisedMethod`: same weights, same ``predict``) plus the
    distillation terms from a frozen teacher; implements :class:`occkit.methods.base.Method`.

    Args:
        model_cfg: the student's network. method_cfg: the student's own losses.
        radocc_cfg: teacher and distillation.
        teacher: the teacher, a loaded method whose ``forward(batch)`` returns an
            :class:`OccNetOutput` (``supervised``, ``render_sup``, ``radocc``); it is frozen here
            (eval mode, ``requires_grad`` False). :func:`occkit.experiment.build_method` loads it
            from ``radocc_cfg.teacher`` (:func:`occkit.experiment.load_teacher`); a recipe never
            loads runs itself. None: the student alone, allowed only when every distillation
            weight is 0.
    """

    def __init__(self, model_cfg: OccNetConfig, method_cfg: SupervisedConfig, radocc_cfg: RadOccConfig,
                 teacher: nn.Module | None = None) -> None:
        super().__init__(model_cfg, method_cfg)
        c = radocc_cfg
        self.radocc = c
        if c.num_rays < 1:
            raise ValueError(f"radocc.num_rays: expected >= 1, got {c.num_rays}")
        if not c.sample_step > 0:
            raise ValueError(f"radocc.sample_step: expected > 0, got {c.sample_step}")
        for name in ("depth_weight", "semantic_weight", "feature_weight", "logit_weight"):
            if getattr(c, name) < 0:
                raise ValueError(f"radocc.{name}: expected >= 0, got {getattr(c, name)}")
        if not c.hard_sigma > 0:
            raise ValueError(f"radocc.hard_sigma: expected > 0, got {c.hard_sigma}")
        if not (c.depth_tau > 0 and c.logit_tau > 0):
            raise ValueError(f"radocc.depth_tau and logit_tau: expected > 0, got {c.depth_tau}, {c.logit_tau}")
        checks = {"rays": ("lidar", "all"), "semantic_mode": ("affinity", "kl"), "lookup": ("trilinear", "nearest"), "mask_3d": ("camera", "all"),
                  "teacher_density": ("soft", "hard")}
        for name, allowed in checks.items():
            if getattr(c, name) not in allowed:
                raise ValueError(f"radocc.{name}: expected one of {allowed}, got {getattr(c, name)!r}")
        if not 0 <= c.free_index < model_cfg.num_classes:
            raise ValueError(f"radocc.free_index {c.free_index} outside the model's {model_cfg.num_classes} classes")
        self.distills = bool(c.depth_weight or c.semantic_weight or c.feature_weight or c.logit_weight)
        """Whether any distillation term is on (all weights 0: the student alone, no teacher needed)."""
        self.adapter: nn.Module | None = None
        """Learnt 1x1x1 conv from the student's voxel features to the teacher's width (only when
        ``feature_weight > 0``; identity when the widths agree)."""
        if teacher is None and not self.distills:
            self._teacher = None  # the ablation's "student alone" arm
            return
        if teacher is None:
            if not c.teacher:
                raise ValueError("radocc.teacher: give the teacher's run folder (a run trained with model.modality lidar or fusion)")
            raise ValueError(f"radocc.teacher: {c.teacher} is not loaded: build the method with occkit.experiment.build_method "
                             "(which loads it), or pass teacher=")
        if not hasattr(teacher, "model") or not callable(getattr(teacher, "forward", None)):
            raise TypeError(f"radocc.teacher: a {type(teacher).__name__}, not an occupancy method")
        for p in teacher.parameters():
            p.requires_grad_(False)
        teacher.eval()
        t_grid = teacher.model.output_grid
        if t_grid != self.model.output_grid or teacher.model.cfg.num_classes != model_cfg.num_classes:
            raise ValueError(f"radocc.teacher: its output grid {t_grid.shape} / {teacher.model.cfg.num_classes} classes differ from the "
                             f"student's {self.model.output_grid.shape} / {model_cfg.num_classes}")
        self._teacher = _Frozen(teacher)
        t_width, s_width = teacher.model.encoder.out_channels, self.model.encoder.out_channels
        if c.feature_weight > 0:
            if teacher.model.lift_grid != self.model.lift_grid:
                raise ValueError(f"radocc.feature_weight > 0: the teacher's lift grid {teacher.model.lift_grid.shape} differs from the "
                                 f"student's {self.model.lift_grid.shape}; 3D feature distillation needs the same voxels")
            self.adapter = nn.Conv3d(s_width, t_width, 1) if s_width != t_width else nn.Identity()

    @property
    def teacher(self) -> nn.Module:
        """The frozen teacher (not a submodule: never in ``parameters()`` or ``state_dict()``)."""
        if self._teacher is None:
            raise ValueError("radocc.teacher is not set (every distillation weight is 0: the student alone)")
        return self._teacher.module

    def train(self, mode: bool = True) -> "RadOccMethod":
        super().train(mode)
        if self._teacher is not None:
            self.teacher.eval()  # frozen whatever the student does
        return self

    # ------------------------------------------------------------------------------ rays
    def ray_pixels(self, batch: Batch, b: int, num: int) -> Rays:
        """``num`` camera rays of frame ``b``: pixels with a LiDAR return (``rays: lidar``) or any."""
        _, N, _, H, W = batch.images.shape
        K, T = batch.intrinsics[b].float(), batch.T_ego_from_cam[b].float()
        if self.radocc.rays == "all":
            return camera_rays(K, T, H, W, num_random=num)
        if batch.lidar is None:
            raise ValueError("radocc.rays='lidar' but the batch has no LiDAR (data.load_extras: true, or radocc.rays=all)")
        hits = lidar_pixel_mask(batch.lidar[b][:, :3].float(), K, T, H, W)  # (N, H, W)
        if not bool(hits.any()):
            return camera_rays(K, T, H, W, num_random=num)
        return camera_rays(K, T, H, W, num_random=num, weights=hits.float())

    def render(self, logits: torch.Tensor, rays: Rays, seed: int | None, values: bool = True, hard: bool = False,
               detach_density: bool = False) -> RenderOutput:
        """Render one frame's logits ``(C, X, Y, Z)`` along ``rays``, with the weights; ``values``
        ``(R, 2 (C-1))`` are the rendered class probabilities given occupied (first ``C-1``) and the
        rendered centred non-free logits (``l_c - mean_c l_c``, the last ``C-1``: semantic features
        whose cosines span [-1, 1], where probabilities, all positive, give cosines near 1).
        ``seed`` fixes the jitter (the same for teacher and student). ``values=False`` renders the
        density only (``values`` None: what the depth term needs, at a fraction of the cost).
        ``hard``: density ``hard_sigma`` where the argmax is not free, else 0 (no gradient).
        ``detach_density``: the density carries no gradient (the values still do)."""
        c = self.radocc
        grid = self.model.output_grid
        check_shape(logits, "C X Y Z", name="logits", dims=dict(zip("XYZ", grid.shape)))
        if hard:
            sigma = (logits.argmax(0) != c.free_index).float() * c.hard_sigma  # (X, Y, Z)
        else:
            sigma = density_from_logits((logits.detach() if detach_density else logits).float(), c.free_index, min(grid.voxel_size), dim=0)
        field_values = None
        if values:
            probs = semantic_probs_from_logits(logits.float(), c.free_index, dim=0)  # (C-1, X, Y, Z)
            keep = [k for k in range(logits.shape[0]) if k != c.free_index]
            feats = logits.float()[keep]
            feats = feats - feats.mean(0, keepdim=True)  # (C-1, X, Y, Z)
            field_values = torch.cat([probs, feats])  # (2 (C-1), X, Y, Z)
        gen = None
        if c.jitter and seed is not None:
            gen = torch.Generator(device=logits.device).manual_seed(seed)
        return render_rays(grid_field(sigma, grid, field_values, mode=c.lookup), rays.origins.float(), rays.dirs.float(), grid,
                           step=c.sample_step, jitter=c.jitter and seed is not None, generator=gen, chunk=c.chunk, return_weights=True)

    # ------------------------------------------------------------------------------ the step
    @torch.no_grad()
    def teacher_outputs(self, batch: Batch) -> OccNetOutput:
        """The teacher's forward pass on ``batch`` (moved to the batch's device on first use)."""
        t = self.teacher
        dev = batch.images.device
        if next(t.parameters()).device != dev:
            t.to(dev)
        return t.forward(batch)

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The student's losses (``supervised``) plus the weighted ``loss_rdc``, ``loss_rsc``,
        ``loss_feat``, ``loss_logit`` of the terms whose weight is > 0."""
        c = self.radocc
        losses, out = self.training_outputs(batch)
        if not self.distills:
            return losses  # the student alone
        t_out = self.teacher_outputs(batch)
        if c.depth_weight > 0 or c.semantic_weight > 0:
            losses.update(self.rendered_losses(batch, out.logits, t_out.logits))
        mask = None
        if c.mask_3d == "camera" and (c.feature_weight > 0 or c.logit_weight > 0):
            if batch.mask_camera is None:
                raise ValueError("radocc.mask_3d='camera' but batch.mask_camera is None")
            mask = batch.mask_camera.bool()
        if c.logit_weight > 0:
            losses["loss_logit"] = c.logit_weight * logit_kl(out.logits, t_out.logits, c.logit_tau, mask)
        if c.feature_weight > 0:
            assert self.adapter is not None
            f_s = self.adapter(out.features)  # (B, C_teacher, X', Y', Z')
            m = None
            if mask is not None:
                factors = tuple(o // l for o, l in zip(self.model.output_grid.shape, self.model.lift_grid.shape))
                m = F.max_pool3d(mask[:, None].float(), factors, factors)[:, 0] > 0 if factors != (1, 1, 1) else mask
            losses["loss_feat"] = c.feature_weight * feature_l1(f_s, t_out.features, m)
        return losses

    def rendered_losses(self, batch: Batch, logits: torch.Tensor, teacher_logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """``loss_rdc`` and ``loss_rsc`` (weighted, those with weight > 0), averaged over frames."""
        c = self.radocc
        B = logits.shape[0]
        if c.semantic_weight > 0 and c.semantic_mode == "affinity" and batch.prior_segments is None:
            raise ValueError("radocc.semantic_mode='affinity' needs 2D segments: set data.priors to a prior cache with segments")
        totals: dict[str, list[torch.Tensor]] = {}
        split = c.semantic_weight > 0 and not c.semantic_density_grad  # the semantic term renders its own detached density
        for b in range(B):
            rays = self.ray_pixels(batch, b, c.num_rays)
            seed = int(torch.randint(0, 2**62, ())) if c.jitter else None  # the step's seeded global RNG
            r_s = None if split and c.depth_weight <= 0 else self.render(logits[b], rays, seed, values=c.semantic_weight > 0 and not split)
            r_sem = self.render(logits[b], rays, seed, values=True, detach_density=True) if split else r_s
            with torch.no_grad():
                r_t = self.render(teacher_logits[b], rays, seed, values=c.semantic_weight > 0, hard=c.teacher_density == "hard")
            if c.depth_weight > 0:
                totals.setdefault("loss_rdc", []).append(c.depth_weight * rendered_depth_kl(r_s.weights, r_t.weights, c.depth_tau))
            if c.semantic_weight > 0:
                k = r_sem.values.shape[1] // 2
                if c.semantic_mode == "kl":
                    term = rendered_semantic_kl(r_sem.values[:, :k], r_t.values[:, :k])
                else:
                    seg = rays.gather(batch.prior_segments[b]).long()  # (R,) ids per camera, 0 = none
                    key = torch.where(seg > 0, rays.cam * (int(seg.max()) + 1) + seg, torch.zeros_like(seg))  # unique across cameras
                    term = segment_affinity_loss(r_sem.values[:, k:], r_t.values[:, k:], key)
                totals.setdefault("loss_rsc", []).append(c.semantic_weight * term)
        return {k: torch.stack(v).mean() for k, v in totals.items()}


def lidar_pixel_mask(points: torch.Tensor, intrinsics: torch.Tensor, T_ego_from_cam: torch.Tensor, height: int, width: int,
                     min_depth: float = 0.1) -> torch.Tensor:
    """Pixels a LiDAR point projects into.

    Args:
        points: ``(P, 3)`` ego frame. intrinsics: ``(N, 3, 3)``. T_ego_from_cam: ``(N, 4, 4)``.
    Returns:
        ``(N, H, W)`` bool.
    """
    check_shape(points, "P 3", name="points")
    dims = check_shape(intrinsics, "N 3 3", name="intrinsics")
    check_shape(T_ego_from_cam, "N 4 4", name="T_ego_from_cam", dims=dims)
    T_cam_from_ego = torch.linalg.inv(T_ego_from_cam.float())  # (N, 4, 4)
    cam = points[None] @ T_cam_from_ego[:, :3, :3].transpose(1, 2) + T_cam_from_ego[:, None, :3, 3]  # (N, P, 3)
    uv, z = project(cam, intrinsics.float())
    col, row = uv[..., 0].floor().long(), uv[..., 1].floor().long()
    ok = (z > min_depth) & (col >= 0) & (col < width) & (row >= 0) & (row < height)
    n = torch.arange(dims["N"], device=points.device)[:, None].expand_as(col)
    out = torch.zeros(dims["N"], height, width, dtype=torch.bool, device=points.device)
    out[n[ok], row[ok], col[ok]] = True
    return out
