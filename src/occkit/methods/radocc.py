"""The ``radocc`` recipe: a frozen LiDAR (or camera+LiDAR) teacher distilled into the camera
network through rendered views (RadOcc, AAAI 2024; docs/methods.md §1).

The student is the camera occupancy network of the ``supervised`` recipe, with all its own
losses (the ``supervised`` section of the config: CE, Lovász, depth, 2D semantics). The teacher
is an ordinary run (``radocc.teacher: RUN``, trained with ``supervised`` and ``model.modality:
lidar`` or ``fusion``), loaded with its own config, in eval mode, gradients off, held outside
this module's parameters and state: the optimiser never sees it and the run's checkpoints hold
the student (and the feature adapter) only, so ``occkit predict`` / ``eval`` on a radocc run
score the student. A training step adds, on camera rays (``num_rays`` per frame drawn from the
pixels with a LiDAR return, or every such pixel with ``num_rays: 0``, the released code's; or any
pixel: ``rays``):

- ``loss_rdc`` (rendered depth consistency): both networks' logits are volume-rendered along the
  same rays on the same samples; ``tau^2 KL(softmax(w_T / tau) || softmax(w_S / tau))`` of the
  termination weights per ray, summed or averaged over the samples (``depth_reduction``;
  :func:`occkit.losses.distill.rendered_depth_kl`);
- ``loss_rsc`` (rendered semantic consistency): the KL of the softmaxes of the rendered raw
  non-free logits (``semantic_mode: raw_kl``, the released code's, every config); the paper's
  segment affinity (``affinity``: rendered centred logits pooled per 2D segment,
  ``Batch.prior_segments`` from a prior cache, cosine affinities between segments, MSE teacher vs
  student); or occkit's KL of renormalised rendered class distributions (``kl``);
- the 3D baselines: ``loss_feat``, masked L1 between the 3D encoders' voxel features (the
  student's through a learnt 1x1x1 adapter when the widths differ), and ``loss_logit``, KL of the
  voxel class distributions at temperature ``logit_tau`` (both inside the camera mask when
  ``mask_3d: camera``; ``feature_reduction``, ``logit_reduction``).

The rendering has two readings (README.md's RadOcc table):

- occkit's former: density ``-log p(free) / voxel`` (``density: prob_free``,
  :func:`~occkit.rendering.volrend.density_from_logits`: every class's logit moves it), samples
  every ``sample_step`` metres inside the grid's box with jitter (``sampling: box``), a sum over
  the samples, ``num_rays`` rays per frame;
- the released code's (zhanghm1995/OCC_Distill): ``alpha = 1 - exp(-softplus(-l_free) *
  alpha_scale)`` from the raw free logit alone (``density: free_logit``), ``num_samples`` fixed
  samples ``t_k = sample_step * k`` from the camera centre in z-depth units, read at the left edge,
  zero outside the box (``sampling: camera``, :func:`occkit.rendering.fixed_steps.render_fixed_steps`),
  the KL averaged over the samples, tau 10, every LiDAR pixel with depth in ``lidar_depth_range``
  [1, 45) m (``num_rays: 0``; rendered ``chunk`` rays at a time, ``checkpoint`` to keep memory
  per chunk).

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
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from occkit.data.sample import Batch
from occkit.geometry.camera import in_image, project_ego
from occkit.losses.distill import (
    feature_l1,
    logit_kl,
    rendered_depth_kl,
    rendered_raw_logit_kl,
    rendered_semantic_kl,
    segment_affinity_loss,
)
from occkit.methods.registry import ExportSupport, MethodSpec, RunLoader, format_free
from occkit.methods.supervised import (
    SUPERVISED_FROM_FORMAT,
    SupervisedConfig,
    SupervisedMethod,
    export_check,
    resolve_class_counts,
    unfed_losses,
)
from occkit.models.occnet import OccNetConfig, OccNetOutput
from occkit.rendering.fixed_steps import render_fixed_steps
from occkit.rendering.rays import Rays, camera_rays
from occkit.rendering.volrend import (
    RenderOutput,
    density_from_logits,
    grid_field,
    render_rays,
    semantic_probs_from_logits,
)
from occkit.shapes import check_shape


@dataclass
class RadOccConfig:
    """Teacher, rays and distillation terms of the ``radocc`` method (the student's own losses
    are the ``supervised`` section's). Each option says which reading it is: the released code
    (zhanghm1995/OCC_Distill, branches ``zhm_nerf_S`` / ``zhm_cvpr``), the paper's text, or
    occkit's own (README.md's RadOcc table lists the released values beside occkit's former
    ones)."""

    teacher: str | None = None
    """The teacher: a run folder, checkpoint folder or weights file of a trained method (its
    config.json is read from the run). Required unless every distillation weight is 0."""
    teacher_ema: bool = True
    """Load the teacher's EMA weights when its checkpoint has them."""
    num_rays: int = 2048
    """Camera rays rendered per frame per step, drawn with replacement from the pixels of
    ``rays`` (occkit's; the paper: ~80k per batch on GPUs). 0: every such pixel once, no
    subsampling (the released code's: every pixel with a LiDAR return of every camera)."""
    rays: Literal["lidar", "all"] = "lidar"
    """Which pixels: 'lidar', those a LiDAR point of the frame projects into (the released code;
    needs ``Batch.lidar``); 'all', uniform over every camera's pixels (occkit's)."""
    lidar_depth_range: tuple[float, float] | None = None
    """``rays: lidar``: keep the LiDAR points whose camera z-depth ``z`` has ``lo <= z < hi``
    (the released code: [1, 45) m, the depth bins' range); None: every point in front of the
    camera (``z > 0.1`` m, occkit's former)."""
    sampling: Literal["box", "camera"] = "box"
    """Where the samples of a ray lie. 'box' (occkit's): the part of the ray inside the grid's box,
    every ``sample_step`` metres along unit directions, read at the interval's midpoint or a
    jittered point (:func:`occkit.rendering.volrend.render_rays`). 'camera' (the released code's):
    ``num_samples`` fixed samples ``t_k = sample_step * k`` from the camera centre along rays
    whose camera-frame z is 1 (z-depth units), read at the left edge ``t_k``, no jitter; a sample
    outside the box weighs 0 and reads 0 yet stays in the softmax over samples
    (:func:`occkit.rendering.fixed_steps.render_fixed_steps`)."""
    num_samples: int = 287
    """``sampling: camera``: samples per ray (the released code: 287, ``int(|(101, 101, 9)| / 0.5)
    + 1``: half-voxel steps to the grid's far corner)."""
    sample_step: float = 0.2
    """Between samples: metres with ``sampling: box``; z-depth units with ``sampling: camera``
    (the released code: 0.2, half an Occ3D voxel)."""
    jitter: bool = True
    """``sampling: box``: one random offset of the samples per ray per step (the same for teacher
    and student; occkit's). Must be false with ``sampling: camera`` (the released code has none)."""
    lookup: Literal["trilinear", "nearest"] = "trilinear"
    """How samples read the voxel grids (the released code: trilinear)."""
    align_corners: bool = True
    """``sampling: camera``: True reads the grids as the released code does (``grid_sample`` with
    ``align_corners=True`` on the box mapped to [-1, 1], which places voxel ``i`` at ``range_min
    + i (range_max - range_min) / (X - 1)``, up to half a voxel from its centre); False at the
    voxel centres (occkit's convention). ``sampling: box`` always reads at the voxel centres."""
    density: Literal["prob_free", "free_logit"] = "prob_free"
    """How logits become opacity. 'prob_free' (occkit's): ``sigma = -log p(free) / voxel``
    (:func:`~occkit.rendering.volrend.density_from_logits`; every class's logit moves it).
    'free_logit' (the released code's): ``alpha = 1 - exp(-softplus(-l_free) * alpha_scale)`` per
    sample from the raw free logit alone, so the depth term trains only the free logit (with
    ``sampling: box``, ``softplus(-l_free) * alpha_scale / sample_step`` per metre, taken per
    voxel before the lookup; with ``sampling: camera`` after it, as the released code)."""
    alpha_scale: float = 0.2
    """``density: free_logit``: the factor of ``softplus(-l_free)`` in a sample's optical
    thickness (the released code: 0.2, its step)."""
    teacher_density: Literal["soft", "hard"] = "soft"
    """How the teacher's logits become density: 'soft', as the student's (``density``); 'hard',
    ``hard_sigma`` where the teacher's argmax is not free, else 0 (occkit's option for teachers
    whose renders are a fog; the module docstring)."""
    hard_sigma: float = 1000.0
    """Density per metre of the teacher's occupied voxels with ``teacher_density: hard``."""
    chunk: int = 8192
    """Rays rendered per pass."""
    checkpoint: bool = False
    """Recompute each chunk of rays in the backward pass instead of keeping its graph (memory
    ``O(chunk)`` instead of ``O(rays)``, about one more forward pass of the rendering; occkit's,
    for ``num_rays: 0``)."""
    free: int | None = None
    """The free class of the logits. None: the data format's (as ``supervised.free``)."""
    depth_weight: float = 100.0
    """Weight of ``loss_rdc`` (released code: 100); 0 = off."""
    depth_tau: float = 1.0
    """Temperature of ``loss_rdc`` (released code: 10, mmdet's default, in the "all" configs with
    either teacher; 1 in the depth-only ablation configs)."""
    depth_reduction: Literal["sum", "mean"] = "sum"
    """``loss_rdc``'s KL per ray over its samples: 'sum' (occkit's, a proper KL) or 'mean' (the
    released code's, ``S`` times weaker; :func:`occkit.losses.distill.rendered_depth_kl`)."""
    semantic_weight: float = 0.0
    """Weight of ``loss_rsc``; 0 = off. Released (``raw_kl``): 1 or 10; the affinity variant's
    is not given (docs/methods.md §1: unsure)."""
    semantic_mode: Literal["raw_kl", "kl", "affinity"] = "raw_kl"
    """'raw_kl' (the released code's, every config): ``kl_div(log_softmax(rendered raw logits_S),
    softmax(rendered raw logits_T))``, reduction 'mean' (rays x classes), the rendered raw logits
    ``sum_i w_i l_i`` over the non-free classes; 'kl' (occkit's former): KL of the renormalised
    rendered class probabilities, summed over classes; 'affinity' (the paper's text):
    segment-guided affinity MSE of rendered centred logits (needs ``Batch.prior_segments``,
    ``data.priors`` with segments)."""
    semantic_density_grad: bool = True
    """Whether ``loss_rsc`` trains the student's density too (True: one render of the student
    serves both terms, as the released code). False: the semantic term renders the student with
    its density detached, so it trains the rendered semantics only (occkit's diagnostic option:
    does the semantic term harm the geometry through the density?)."""
    feature_weight: float = 0.0
    """Weight of ``loss_feat`` (3D feature distillation baseline; released: 0.1); 0 = off."""
    feature_reduction: Literal["mean", "sum_channels"] = "mean"
    """``loss_feat``: mean over voxels and channels (occkit's) or the sum over channels divided by
    the masked voxels (the released code's ``avg_factor``; :func:`occkit.losses.distill.feature_l1`)."""
    feature_align: Literal["same", "pool"] = "same"
    """How ``loss_feat`` pairs the student's lift-grid voxels with the teacher's: 'same' (the
    released code's: teacher and student share one voxel grid; a different grid is an error);
    'pool' (occkit's, for a teacher whose lift grid is coarser by integer factors, e.g. the
    50x50x8 lidar-teacher under the 100x100x8 synth-abl student): the student's adapted features
    are average-pooled onto the teacher's grid, and a teacher voxel is counted when any of its
    output voxels is in the mask."""
    logit_weight: float = 0.0
    """Weight of ``loss_logit`` (3D logit distillation baseline; released: 0.1 baseline, 10 in the
    final config); 0 = off."""
    logit_tau: float = 1.0
    """Temperature of ``loss_logit`` (released code: 10, mmdet's default)."""
    logit_reduction: Literal["sum", "mean"] = "sum"
    """``loss_logit``'s KL per voxel over the classes: 'sum' (occkit's, a proper KL) or 'mean'
    (the released code's; :func:`occkit.losses.distill.logit_kl`)."""
    mask_3d: Literal["camera", "all"] = "camera"
    """Voxels the 3D terms count: 'camera' (``Batch.mask_camera``) or 'all'."""


def _check_options(c: RadOccConfig, model_cfg: OccNetConfig) -> None:
    """Refuse radocc settings no step could run with, in one line naming the setting."""
    if c.num_rays < 0:
        raise ValueError(f"radocc.num_rays: expected >= 0 (0 = every pixel of radocc.rays), got {c.num_rays}")
    if not c.sample_step > 0:
        raise ValueError(f"radocc.sample_step: expected > 0, got {c.sample_step}")
    if c.num_samples < 1:
        raise ValueError(f"radocc.num_samples: expected >= 1, got {c.num_samples}")
    if not c.alpha_scale > 0:
        raise ValueError(f"radocc.alpha_scale: expected > 0, got {c.alpha_scale}")
    if c.chunk < 1:
        raise ValueError(f"radocc.chunk: expected >= 1, got {c.chunk}")
    for name in ("depth_weight", "semantic_weight", "feature_weight", "logit_weight"):
        if getattr(c, name) < 0:
            raise ValueError(f"radocc.{name}: expected >= 0, got {getattr(c, name)}")
    if not c.hard_sigma > 0:
        raise ValueError(f"radocc.hard_sigma: expected > 0, got {c.hard_sigma}")
    if not (c.depth_tau > 0 and c.logit_tau > 0):
        raise ValueError(f"radocc.depth_tau and logit_tau: expected > 0, got {c.depth_tau}, {c.logit_tau}")
    if c.sampling == "camera" and c.jitter:
        raise ValueError(
            "radocc.jitter: sampling 'camera' has fixed samples (the released code's); set radocc.jitter=false"
        )
    if c.lidar_depth_range is not None:
        lo, hi = c.lidar_depth_range
        if not 0 <= lo < hi:
            raise ValueError(
                f"radocc.lidar_depth_range: expected [lo, hi] with 0 <= lo < hi, got {list(c.lidar_depth_range)}"
            )
    if not 0 <= format_free(c.free, "radocc.free") < model_cfg.num_classes:
        raise ValueError(f"radocc.free {c.free} outside the model's {model_cfg.num_classes} classes")


class _Frozen:
    """Holds the teacher outside the module tree (no parameters, no state dict, no ``.to``), and
    shares it, not copies it, when the method is deep-copied (the engine's EMA copy)."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __deepcopy__(self, memo: dict) -> _Frozen:
        return self


class RadOccMethod(SupervisedMethod):
    """The camera student (a :class:`SupervisedMethod`: same weights, same ``predict``) plus the
    distillation terms from a frozen teacher; implements :class:`occkit.methods.base.Method`.

    Args:
        model_cfg: the student's network. method_cfg: the student's own losses.
        radocc_cfg: teacher and distillation.
        teacher: the teacher, a loaded method whose ``forward(batch)`` returns an
            :class:`OccNetOutput` (``supervised``, ``render_sup``, ``radocc``); it is frozen here
            (eval mode, ``requires_grad`` False). :func:`build` has it loaded from
            ``radocc_cfg.teacher`` by the composition root (:func:`load_teacher`); a recipe never
            loads runs itself. None: the student alone, allowed only when every distillation
            weight is 0.
    """

    def __init__(
        self,
        model_cfg: OccNetConfig,
        method_cfg: SupervisedConfig,
        radocc_cfg: RadOccConfig,
        teacher: nn.Module | None = None,
    ) -> None:
        super().__init__(model_cfg, method_cfg)
        c = radocc_cfg
        self.radocc = c
        _check_options(c, model_cfg)
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
                raise ValueError(
                    "radocc.teacher: give the teacher's run folder (a run trained with model.modality lidar or fusion)"
                )
            raise ValueError(
                f"radocc.teacher: {c.teacher} is not loaded: build the method with occkit.experiment.build_method "
                "(which has it loaded), or pass teacher="
            )
        self._freeze_teacher(teacher, c, model_cfg)
        self._teacher = _Frozen(teacher)
        t_width, s_width = teacher.model.encoder.out_channels, self.model.encoder.out_channels
        if c.feature_weight > 0:
            self.adapter = self._feature_adapter(teacher, c, t_width, s_width)

    def _freeze_teacher(self, teacher: nn.Module, c: RadOccConfig, model_cfg: OccNetConfig) -> None:
        """Freeze ``teacher`` (eval mode, ``requires_grad`` False); refuse one that is no occupancy
        method, or predicts another grid or class count than the student."""
        if not hasattr(teacher, "model") or not callable(getattr(teacher, "forward", None)):
            raise ValueError(f"radocc.teacher: a {type(teacher).__name__}, not an occupancy method")
        for p in teacher.parameters():
            p.requires_grad_(False)
        teacher.eval()
        t_grid = getattr(teacher.model, "output_grid", None)
        t_classes = getattr(getattr(teacher.model, "cfg", None), "num_classes", None)
        if t_grid != self.model.output_grid or t_classes != model_cfg.num_classes:
            # e.g. a run of another dataset format (a SemanticKITTI cigocc run): its model has neither
            who = c.teacher or "the teacher"
            grid = f"a {t_grid.shape} grid" if t_grid is not None else "no occupancy grid of this kind"
            raise ValueError(
                f"radocc.teacher: {who} is a {type(teacher).__name__} run predicting {grid} of "
                f"{t_classes if t_classes is not None else 'another set of'} classes, the student a "
                f"{self.model.output_grid.shape} grid of {model_cfg.num_classes}: the teacher must be a run on "
                "the same dataset format and grid (a lidar-teacher or fusion-teacher run on this data)"
            )

    def _feature_adapter(self, teacher: nn.Module, c: RadOccConfig, t_width: int, s_width: int) -> nn.Module:
        """The adapter of ``loss_feat`` (a 1x1x1 conv from the student's width ``s_width`` to the
        teacher's ``t_width``, or identity); refuse a teacher's lift grid ``feature_align`` cannot pair
        with the student's."""
        t_shape, s_shape = tuple(teacher.model.lift_grid.shape), tuple(self.model.lift_grid.shape)
        if c.feature_align == "same" and teacher.model.lift_grid != self.model.lift_grid:
            raise ValueError(
                f"radocc.feature_weight > 0: the teacher's lift grid {t_shape} differs from the student's "
                f"{s_shape}; 3D feature distillation needs the same voxels (or radocc.feature_align=pool for a "
                "coarser teacher)"
            )
        if c.feature_align == "pool" and any(s % t for s, t in zip(s_shape, t_shape)):
            raise ValueError(
                f"radocc.feature_align=pool: the student's lift grid {s_shape} is not an integer multiple of the "
                f"teacher's {t_shape}"
            )
        return nn.Conv3d(s_width, t_width, 1) if s_width != t_width else nn.Identity()

    @property
    def teacher(self) -> nn.Module:
        """The frozen teacher (not a submodule: never in ``parameters()`` or ``state_dict()``)."""
        if self._teacher is None:
            raise ValueError("radocc.teacher is not set (every distillation weight is 0: the student alone)")
        return self._teacher.module

    def train(self, mode: bool = True) -> RadOccMethod:
        super().train(mode)
        if self._teacher is not None:
            self.teacher.eval()  # frozen whatever the student does
        return self

    # ------------------------------------------------------------------------------ rays
    def ray_pixels(self, batch: Batch, b: int, num: int) -> Rays:
        """Camera rays of frame ``b`` through pixels with a LiDAR return (``rays: lidar``, points
        filtered by ``lidar_depth_range``) or any pixel (``rays: all``): ``num`` drawn with
        replacement, or every such pixel once when ``num`` is 0 (camera-major, row-major; none
        when no point projects)."""
        c = self.radocc
        _, N, _, H, W = batch.images.shape
        K, T = batch.intrinsics[b].float(), batch.T_ego_from_cam[b].float()
        if c.rays == "all":
            return camera_rays(K, T, H, W, num_random=num) if num > 0 else camera_rays(K, T, H, W, stride=1)
        if batch.lidar is None:
            raise ValueError(
                "radocc.rays='lidar' but the batch has no LiDAR (data.load_extras: true, or radocc.rays=all)"
            )
        hits = lidar_pixel_mask(batch.lidar[b][:, :3].float(), K, T, H, W, depth_range=c.lidar_depth_range)  # (N, H, W)
        if num == 0:
            return camera_rays(K, T, H, W, pixels=hits.nonzero())
        if not bool(hits.any()):
            return camera_rays(K, T, H, W, num_random=num)
        return camera_rays(K, T, H, W, num_random=num, weights=hits.float())

    def field_volumes(
        self,
        logits: torch.Tensor,
        values: bool = True,
        hard: bool = False,
        detach_density: bool = False,
    ) -> tuple[torch.Tensor, bool, torch.Tensor | None]:
        """What :meth:`render` reads from one frame's logits ``(C, X, Y, Z)``: the density volume
        ``(X, Y, Z)``, whether it is the raw ``-l_free`` (``density: free_logit``, softplus still
        to apply) rather than a density per metre, and the values ``(C-1, X, Y, Z)`` of
        ``semantic_mode`` (None unless ``values``): the raw non-free logits ('raw_kl'), the class
        probabilities given occupied ('kl') or the centred non-free logits ``l_c - mean_c l_c``
        ('affinity': semantic features whose cosines span [-1, 1], where probabilities, all
        positive, give cosines near 1)."""
        c = self.radocc
        src = (logits.detach() if detach_density else logits).float()
        if hard:
            dens, raw = (
                (logits.argmax(0) != c.free).float() * c.hard_sigma,
                False,
            )  # (X, Y, Z) per metre, no gradient
        elif c.density == "free_logit":
            dens, raw = -src[c.free], True
        else:
            dens, raw = (
                density_from_logits(src, free=c.free, voxel_size=min(self.model.output_grid.voxel_size), dim=0),
                False,
            )
        field_values = None
        if values:
            keep = [k for k in range(logits.shape[0]) if k != c.free]
            if c.semantic_mode == "kl":
                field_values = semantic_probs_from_logits(logits.float(), free=c.free, dim=0)
            elif c.semantic_mode == "raw_kl":
                field_values = logits.float()[keep]
            else:
                feats = logits.float()[keep]
                field_values = feats - feats.mean(0, keepdim=True)  # (C-1, X, Y, Z)
        return dens, raw, field_values

    def render(
        self,
        logits: torch.Tensor,
        rays: Rays,
        seed: int | None,
        values: bool = True,
        hard: bool = False,
        detach_density: bool = False,
    ) -> RenderOutput:
        """Render one frame's logits ``(C, X, Y, Z)`` along ``rays``, with the weights ``(R, S)``;
        ``values`` ``(R, C-1)`` are the rendered values of ``semantic_mode``
        (:meth:`field_volumes`). ``seed`` fixes the jitter of ``sampling: box`` (the same for
        teacher and student). ``values=False`` renders the density only (``values`` None: what
        the depth term needs, at a fraction of the cost). ``hard``: density ``hard_sigma`` where
        the argmax is not free, else 0 (no gradient). ``detach_density``: the density carries no
        gradient (the values still do)."""
        c = self.radocc
        grid = self.model.output_grid
        check_shape(logits, "C X Y Z", name="logits", dims=dict(zip("XYZ", grid.shape)))
        dens, raw, field_values = self.field_volumes(logits, values, hard, detach_density)
        if c.sampling == "camera":
            dirs = rays.dirs.float() / rays.z_per_t.float()[:, None]  # (R, 3) camera-frame z = 1: t in z-depth units
            # optical thickness of a sample: alpha_scale on softplus(-l_free), or the interval's metres on a density
            thickness = c.alpha_scale if raw else c.sample_step / rays.z_per_t.float()
            return render_fixed_steps(
                dens,
                grid,
                rays.origins.float(),
                dirs,
                field_values,
                num_samples=c.num_samples,
                step=c.sample_step,
                thickness=thickness,
                activation="softplus" if raw else "identity",
                mode="bilinear" if c.lookup == "trilinear" else "nearest",
                align_corners=c.align_corners,
                chunk=c.chunk,
                checkpoint=c.checkpoint,
            )
        if raw:
            dens = F.softplus(dens) * (
                c.alpha_scale / c.sample_step
            )  # per metre: alpha_scale * softplus over a full step
        gen = None
        if c.jitter and seed is not None:
            gen = torch.Generator(device=logits.device).manual_seed(seed)
        return render_rays(
            grid_field(dens, grid, field_values, mode=c.lookup),
            rays.origins.float(),
            rays.dirs.float(),
            grid,
            step=c.sample_step,
            jitter=c.jitter and seed is not None,
            generator=gen,
            chunk=c.chunk,
            return_weights=True,
            checkpoint=c.checkpoint,
        )

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
            losses["loss_logit"] = c.logit_weight * logit_kl(
                out.logits, t_out.logits, c.logit_tau, mask, reduction=c.logit_reduction
            )
        if c.feature_weight > 0:
            assert self.adapter is not None
            f_s = self.adapter(out.features)  # (B, C_teacher, X', Y', Z')
            t_shape = tuple(t_out.features.shape[2:])
            if c.feature_align == "pool" and tuple(f_s.shape[2:]) != t_shape:
                k = tuple(s // t for s, t in zip(f_s.shape[2:], t_shape))
                f_s = F.avg_pool3d(f_s, k, k)
            m = None
            if mask is not None:
                factors = tuple(o // t for o, t in zip(self.model.output_grid.shape, t_shape))
                m = F.max_pool3d(mask[:, None].float(), factors, factors)[:, 0] > 0 if factors != (1, 1, 1) else mask
            losses["loss_feat"] = c.feature_weight * feature_l1(f_s, t_out.features, m, reduction=c.feature_reduction)
        return losses

    def rendered_losses(
        self, batch: Batch, logits: torch.Tensor, teacher_logits: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """``loss_rdc`` and ``loss_rsc`` (weighted, those with weight > 0), averaged over frames
        (a frame without rays, ``num_rays: 0`` and no LiDAR pixel, adds 0)."""
        c = self.radocc
        B = logits.shape[0]
        if c.semantic_weight > 0 and c.semantic_mode == "affinity" and batch.prior_segments is None:
            raise ValueError(
                "radocc.semantic_mode='affinity' needs 2D segments: set data.priors to a prior cache with segments"
            )
        totals: dict[str, list[torch.Tensor]] = {}
        split = (
            c.semantic_weight > 0 and not c.semantic_density_grad
        )  # the semantic term renders its own detached density
        for b in range(B):
            rays = self.ray_pixels(batch, b, c.num_rays)
            if len(rays) == 0:
                zero = logits[b].sum() * 0.0
                for name, w in (("loss_rdc", c.depth_weight), ("loss_rsc", c.semantic_weight)):
                    if w > 0:
                        totals.setdefault(name, []).append(zero)
                continue
            jitter = c.jitter and c.sampling == "box"
            seed = int(torch.randint(0, 2**62, ())) if jitter else None  # the step's seeded global RNG
            r_s = (
                None
                if split and c.depth_weight <= 0
                else self.render(logits[b], rays, seed, values=c.semantic_weight > 0 and not split)
            )
            r_sem = self.render(logits[b], rays, seed, values=True, detach_density=True) if split else r_s
            with torch.no_grad():
                r_t = self.render(
                    teacher_logits[b], rays, seed, values=c.semantic_weight > 0, hard=c.teacher_density == "hard"
                )
            if c.depth_weight > 0:
                term = rendered_depth_kl(r_s.weights, r_t.weights, c.depth_tau, reduction=c.depth_reduction)
                totals.setdefault("loss_rdc", []).append(c.depth_weight * term)
            if c.semantic_weight > 0:
                if c.semantic_mode == "raw_kl":
                    term = rendered_raw_logit_kl(r_sem.values, r_t.values)
                elif c.semantic_mode == "kl":
                    term = rendered_semantic_kl(r_sem.values, r_t.values)
                else:
                    seg = rays.gather(batch.prior_segments[b]).long()  # (R,) ids per camera, 0 = none
                    key = torch.where(
                        seg > 0, rays.cam * (int(seg.max()) + 1) + seg, torch.zeros_like(seg)
                    )  # unique across cameras
                    term = segment_affinity_loss(r_sem.values, r_t.values, key)
                totals.setdefault("loss_rsc", []).append(c.semantic_weight * term)
        return {k: torch.stack(v).mean() for k, v in totals.items()}


def lidar_pixel_mask(
    points: torch.Tensor,
    intrinsics: torch.Tensor,
    T_ego_from_cam: torch.Tensor,
    height: int,
    width: int,
    min_depth: float = 0.1,
    depth_range: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Pixels a LiDAR point projects into (the pixel containing its projection).

    Args:
        points: ``(P, 3)`` ego frame. intrinsics: ``(N, 3, 3)``. T_ego_from_cam: ``(N, 4, 4)``.
        min_depth: keep points with camera z-depth ``z > min_depth`` (metres; used when
            ``depth_range`` is None).
        depth_range: ``(lo, hi)``: keep ``lo <= z < hi`` instead (the released code: [1, 45)).
    Returns:
        ``(N, H, W)`` bool.
    """
    check_shape(points, "P 3", name="points")
    dims = check_shape(intrinsics, "N 3 3", name="intrinsics")
    check_shape(T_ego_from_cam, "N 4 4", name="T_ego_from_cam", dims=dims)
    uv, z = project_ego(points, intrinsics, T_ego_from_cam)  # (N, P, 2), (N, P)
    col, row = uv[..., 0].floor().long(), uv[..., 1].floor().long()
    in_depth = z > min_depth if depth_range is None else (z >= depth_range[0]) & (z < depth_range[1]) & (z > 0)
    ok = in_depth & in_image(uv, height, width)
    n = torch.arange(dims["N"], device=points.device)[:, None].expand_as(col)
    out = torch.zeros(dims["N"], height, width, dtype=torch.bool, device=points.device)
    out[n[ok], row[ok], col[ok]] = True
    return out


# ------------------------------------------------------------------------------------ registration
def load_teacher(load_run: RunLoader, path: str, ema: bool = True) -> nn.Module:
    """radocc's teacher: the trained method of the run at ``path`` (loaded by the composition
    root's ``load_run``), frozen: eval mode, ``requires_grad`` False, on the CPU.

    The method must return an :class:`~occkit.models.occnet.OccNetOutput` from ``forward(batch)``
    (``supervised``, ``render_sup``, ``radocc``). Errors start with ``radocc.teacher:``.
    """
    teacher = load_run(path, "radocc.teacher", ema=ema)
    if not hasattr(teacher, "model") or not callable(getattr(teacher, "forward", None)):
        raise ValueError(f"radocc.teacher: {path} holds a {type(teacher).__name__}, not an occupancy method")
    modality = getattr(getattr(teacher.model, "cfg", None), "modality", None)
    if modality == "camera":  # allowed (a camera teacher is an experiment too), but never silently
        import warnings

        warnings.warn(
            f"radocc.teacher: {path} is a camera-only run (model.modality camera), not the LiDAR or fusion "
            "teacher RadOcc distils from",
            stacklevel=2,
        )
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher.eval()


def build(cfg: Any, load_run: RunLoader) -> RadOccMethod:
    """The student with its frozen teacher (``radocc.teacher``, loaded through ``load_run``)."""
    teacher = load_teacher(load_run, cfg.radocc.teacher, cfg.radocc.teacher_ema) if cfg.radocc.teacher else None
    return RadOccMethod(cfg.model, cfg.supervised, cfg.radocc, teacher=teacher)


def load_student(cfg: Any, weights: Path) -> nn.Module:
    """radocc's camera student from a run's weights file, without the teacher run its config names
    (what ``occkit export`` exports: the same weights and ``predict``); the checkpoint's
    distillation adapter (``adapter.*``) is all that is left out."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    from occkit.engine.checkpoint import non_finite_tensors, verify_checksum

    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: no such weights file")
    verify_checksum(weights)
    with torch.random.fork_rng(devices=[]):
        student = SupervisedMethod(cfg.model, cfg.supervised)
    try:
        missing, unexpected = load_model(student, str(weights), strict=False, device="cpu")
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{weights}: cannot read as safetensors ({type(e).__name__}: {e})") from e
    except RuntimeError as e:
        raise ValueError(f"{weights}: does not fit radocc's student ({e})") from e
    other = [k for k in unexpected if not k.startswith("adapter.")]
    if missing or other:
        raise ValueError(
            f"{weights}: does not fit radocc's student (missing {sorted(missing)[:3]}, unexpected {sorted(other)[:3]})"
        )
    bad = non_finite_tensors(student.state_dict())
    if bad:
        raise ValueError(f"{weights}: weights hold NaN or infinity in {len(bad)} tensor(s), e.g. {', '.join(bad[:3])}")
    return student


METHOD = MethodSpec(
    name="radocc",
    summary="the camera student of supervised plus distillation from a frozen LiDAR teacher through rendered views",
    sections={"supervised": SupervisedConfig, "radocc": RadOccConfig},
    from_format={**SUPERVISED_FROM_FORMAT, "radocc.free": "free"},
    build=build,
    resolve=resolve_class_counts,
    unfed_losses=unfed_losses,
    export=ExportSupport(check=export_check, load=load_student),
)
