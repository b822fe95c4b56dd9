"""The ``occscene`` recipe (OccScene, arXiv 2412.11183): a latent diffusion model generating
camera images from text, guided by semantic occupancy through MDA, trained jointly with an
occupancy perception model that reads its denoised output (docs/methods.md §5).

Stages, by the method's own step counter (a buffer, so a resumed run continues where it was):

- stage 0, ``vae_steps``: the KL-VAE learns to reconstruct the real images
  (``loss_vae_rec`` + ``loss_vae_kl``) while the perception model is pre-trained on the real
  images against the true occupancy (``loss_occ_real``; skipped when ``perception_ckpt`` gives
  a trained one and ``real_occ_weight`` is 0). The VAE's latent scale is measured here.
- stage 1, ``diffusion_steps``: the denoiser and MDA learn epsilon prediction on the frozen VAE's
  latents (``loss_diff``), text and occupancy dropped now and then (classifier-free guidance,
  text-only sampling); the perception model rests.
- stage 2, the remaining steps: joint training. ``loss_diff`` continues; the clean-latent
  estimate ``x0 = (z_t - sqrt(1 - abar) eps) / sqrt(abar)`` is decoded by the frozen VAE decoder
  and the perception model, reading it, is trained against the true occupancy
  (``loss_occ_gen = occ_weight * ramp * CE``, only for ``t < occ_max_timestep``); its gradient
  reaches the denoiser and MDA too (``occ_grad_to_generator``), so generation learns to produce
  images whose layout perception can read. The perception model keeps learning from the real
  images (``loss_occ_real``).

L = L_diff + lambda L_occ (docs/methods.md §5 marks the weighting [unsure]: occkit's reading is the plain
weighted sum with a linear warm-up of lambda; the paper's exact schedule is not known).

The perception losses are computed inside the cameras' view frusta (and the camera mask): with the
front camera alone, most of the Occ3D grid is never seen.

``train_generator: false`` leaves out the generator: the recipe is then a perception model
trained on frames (real, generated, or both) with the same frustum-masked loss: the judge of
``occkit eval-gen`` and the perception arms of the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from occkit.data.sample import Batch
from occkit.generation.autoencoder import to_image_range, to_model_range
from occkit.generation.losses import diffusion_loss, kl_to_standard_normal, one_hot_occupancy, reconstruction_loss
from occkit.generation.model import GeneratorConfig, SceneGenerator
from occkit.generation.schedule import NoiseScheduleConfig, training_scheduler, x0_from_eps
from occkit.geometry.frustum import frustum_mask
from occkit.losses.occupancy import lovasz_softmax, voxel_cross_entropy
from occkit.methods.registry import MethodSpec, RunLoader
from occkit.models.occnet import OccNet, OccNetConfig, build_occnet


@dataclass
class OccSceneConfig:
    """Settings of the ``occscene`` method."""

    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    """The latent diffusion model (VAE, text-conditioned UNet, MDA)."""
    schedule: NoiseScheduleConfig = field(default_factory=NoiseScheduleConfig)
    """The noise schedule (DDPM for training, DDIM for sampling)."""
    train_generator: bool = True
    """False: no generator; only the perception model, trained on the frames' images."""
    vae_steps: int = 500
    """Stage 0 length: the VAE (and the perception model's pre-training on real images)."""
    diffusion_steps: int = 1000
    """Stage 1 length: the denoiser and MDA alone; the joint stage 2 follows until the end."""
    perception_ckpt: str | None = None
    """A run (or checkpoint) whose method has an ``OccNet`` of this ``model`` config at ``.model``
    (a ``supervised`` or ``occscene`` run): the perception model starts from its weights."""
    occ_weight: float = 0.1
    """lambda of ``loss_occ_gen``, the perception loss on the decoded clean-image estimate (0 = off)."""
    occ_warmup_steps: int = 200
    """lambda rises linearly from 0 over this many steps of stage 2."""
    occ_max_timestep: int = 400
    """``loss_occ_gen`` counts only the frames noised at ``t`` below this (the estimate of a
    heavily noised latent is a blur no perception model can read)."""
    occ_grad_to_generator: bool = True
    """Let ``loss_occ_gen``'s gradient reach the denoiser and MDA (through the frozen decoder)."""
    real_occ_weight: float = 1.0
    """Weight of ``loss_occ_real``, the perception loss on the real images (stages 0 and 2; and
    the only loss when ``train_generator`` is false)."""
    lovasz: bool = False
    """Add Lovász-softmax to the perception losses."""
    text_dropout: float = 0.1
    """Probability of training a frame on the empty text (classifier-free guidance)."""
    occ_dropout: float = 0.1
    """Probability of training a frame without MDA's residuals (text-only sampling, and the first
    step of perception-feedback sampling)."""
    use_camera_mask: bool = True
    """Perception losses only where ``mask_camera`` is set (and inside the cameras' frusta)."""
    class_weights: tuple[float, ...] | None = None
    """Per-class weights of the perception cross-entropy; None = uniform."""
    ignore_index: int = 255
    """Label never counted."""


class OccSceneMethod(nn.Module):
    """Perception ``model`` (an :class:`OccNet`) + ``generator`` (:class:`SceneGenerator`);
    implements :class:`occkit.methods.base.Method`.

    Args:
        model_cfg: the perception network. cfg: the recipe's settings.
        perception: the trained network the perception model starts from (an :class:`OccNet` of
            ``model_cfg``; its weights are copied, the module itself is not kept), required when
            ``cfg.perception_ckpt`` is set: :func:`build` has the composition root load it from
            there (:func:`load_perception`); a recipe never loads runs itself.
    """

    #: State that a run started from another run's weights (``train.init_from``) does not take
    #: over: the stage counter, so that the new run's stages start at its own step 0.
    init_from_fresh: tuple[str, ...] = ("step",)

    def __init__(self, model_cfg: OccNetConfig, cfg: OccSceneConfig, perception: OccNet | None = None) -> None:
        super().__init__()
        self.model_cfg, self.cfg = model_cfg, cfg
        for name in ("vae_steps", "diffusion_steps", "occ_warmup_steps", "occ_max_timestep"):
            if getattr(cfg, name) < 0:
                raise ValueError(f"occscene.{name}: expected >= 0, got {getattr(cfg, name)}")
        for name in ("text_dropout", "occ_dropout"):
            if not 0 <= getattr(cfg, name) <= 1:
                raise ValueError(f"occscene.{name}: expected a probability, got {getattr(cfg, name)}")
        if cfg.occ_weight < 0 or cfg.real_occ_weight < 0:
            raise ValueError("occscene.occ_weight and occscene.real_occ_weight must be >= 0")
        self.model: OccNet = build_occnet(model_cfg)
        if cfg.perception_ckpt and perception is None:
            raise ValueError(
                f"occscene.perception_ckpt: {cfg.perception_ckpt} is not loaded: build the method with "
                "occkit.experiment.build_method (which has it loaded), or pass perception="
            )
        if perception is not None:
            self._load_perception(perception, cfg.perception_ckpt or "the given perception network")
        C = model_cfg.num_classes
        weight = None
        if cfg.class_weights is not None:
            weight = torch.tensor(cfg.class_weights, dtype=torch.float32)
            if weight.shape != (C,):
                raise ValueError(f"occscene.class_weights: expected {C} values, got {len(cfg.class_weights)}")
        self.register_buffer("class_weight", weight, persistent=False)
        self.generator = SceneGenerator(cfg.generator, C, self.model.output_grid) if cfg.train_generator else None
        self.noise = training_scheduler(cfg.schedule)
        """The DDPM training scheduler (parameter-free, no state)."""
        self.register_buffer("alphas_cumprod", self.noise.alphas_cumprod.clone().float(), persistent=False)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        """Training steps taken (decides the stage; saved with the weights)."""

    def _load_perception(self, net: OccNet, where: str) -> None:
        if not isinstance(net, OccNet):
            raise ValueError(f"occscene.perception_ckpt: {where}: a {type(net).__name__}, not an OccNet")
        try:
            self.model.load_state_dict(net.state_dict())
        except RuntimeError as e:
            raise ValueError(
                f"occscene.perception_ckpt: {where}'s network does not match this run's model config: {e}"
            ) from e

    # ------------------------------------------------------------------------------------ stages
    def stage(self, step: int | None = None) -> int:
        """0 (VAE + perception pre-training), 1 (diffusion), 2 (joint); -1 without a generator."""
        s = int(self.step) if step is None else step
        if self.generator is None:
            return -1
        if s < self.cfg.vae_steps:
            return 0
        return 1 if s < self.cfg.vae_steps + self.cfg.diffusion_steps else 2

    @property
    def ddp_find_unused_parameters(self) -> bool:
        """Read by the engine when it wraps the method in DistributedDataParallel: with a generator,
        each stage trains a part and freezes the rest (stage 0 leaves the denoiser and MDA out,
        stage 1 the VAE and the perception model, stage 2 the VAE), so DDP must look each step for
        the parameters that took no part (their gradients stay None and AdamW skips them). Giving
        them a zero gradient instead would let AdamW's momentum and weight decay move frozen weights."""
        return self.generator is not None

    def _set_trainable(self, stage: int) -> None:
        """Freeze what this stage does not train (its gradients stay None, so AdamW skips it)."""
        self.model.requires_grad_(stage in (-1, 0, 2))
        if self.generator is not None:
            self.generator.vae.requires_grad_(stage == 0)
            self.generator.unet.requires_grad_(stage >= 1)
            if self.generator.mda is not None:
                self.generator.mda.requires_grad_(stage >= 1)

    # ------------------------------------------------------------------------------------ perception
    def perceive(self, images: torch.Tensor, intrinsics: torch.Tensor, T_ego_from_cam: torch.Tensor) -> torch.Tensor:
        """Occupancy logits ``(B, C, X, Y, Z)`` from images ``(B, N, 3, H, W)`` in [0, 1]."""
        return self.model(images, intrinsics, T_ego_from_cam).logits

    @torch.no_grad()
    def predict(self, batch: Batch) -> torch.Tensor:
        """The perception model's logits ``(B, C, X, Y, Z)`` on the batch's (real) images."""
        return self.perceive(batch.images, batch.intrinsics, batch.T_ego_from_cam)

    def loss_mask(self, batch: Batch) -> torch.Tensor:
        """``(B, X, Y, Z)`` bool: voxels inside the batch cameras' frusta (and the camera mask)."""
        H, W = batch.images.shape[-2:]
        with torch.no_grad():
            mask = frustum_mask(self.model.output_grid, batch.intrinsics, batch.T_ego_from_cam, (H, W))
        if self.cfg.use_camera_mask:
            if batch.mask_camera is None:
                raise ValueError("batch.mask_camera is None but occscene.use_camera_mask is true")
            mask = mask & batch.mask_camera.bool()
        return mask

    def perception_loss(self, logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Cross-entropy (+ Lovász) over the kept voxels."""
        loss = voxel_cross_entropy(logits, target, mask, self.class_weight, self.cfg.ignore_index)
        if self.cfg.lovasz:
            loss = loss + lovasz_softmax(logits, target, mask, self.cfg.ignore_index, max_voxels=20000)
        return loss

    #: Timesteps of the held-out denoising loss (``validation_figures``), as fractions of the schedule's
    #: ``num_train_timesteps`` (100, 300, ..., 900 of 1000); the noise is drawn from a fixed seed.
    VALIDATION_TIMESTEPS: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9)

    @torch.no_grad()
    def validation_figures(self, batch: Batch) -> dict[str, tuple[float, int]]:
        """The generator's own figures on validation frames (summed; the engine averages them):
        ``vae_psnr`` (dB), the VAE's reconstruction of each image from its posterior mean, and
        ``diffusion_loss``, the epsilon-MSE at the :data:`VALIDATION_TIMESTEPS` with noise of a fixed
        seed and the frame's text and layout (the same draws at every validation, so the curve
        shows the denoiser's plateau). Nothing without a generator."""
        from occkit.generation.metrics import psnr

        gen = self.generator
        if gen is None:
            return {}
        B, N, _, H, W = batch.images.shape
        x = to_model_range(batch.images.flatten(0, 1).float())
        z0 = gen.encode(x, sample=False)  # the posterior's mode: no draw
        rec = gen.decode(z0)
        figs: dict[str, tuple[float, int]] = {
            "vae_psnr": (
                float(psnr(to_image_range(rec.float()), batch.images.flatten(0, 1).float()).clamp(max=100).sum()),
                B * N,
            )
        }
        seed = torch.Generator().manual_seed(0)
        texts = [d or "" for d in (batch.descriptions or [""] * B)]
        text, text_mask = gen.encode_text([txt for txt in texts for _ in range(N)])
        occ = (
            one_hot_occupancy(batch.occupancy, self.model_cfg.num_classes)
            if batch.occupancy is not None and gen.mda is not None
            else None
        )  # text only: no layout read
        keep = torch.ones(B * N, device=x.device)
        total = 0.0
        for frac in self.VALIDATION_TIMESTEPS:
            noise = torch.randn(z0.shape, generator=seed).to(z0)
            t = torch.full(
                (B * N,), int(frac * self.cfg.schedule.num_train_timesteps), dtype=torch.long, device=x.device
            )
            eps = gen.denoise(
                self.noise.add_noise(z0, noise, t),
                t,
                text,
                text_mask,
                occ,
                batch.intrinsics,
                batch.T_ego_from_cam,
                keep,
            )
            total += float(diffusion_loss(eps, noise)) * B * N
        figs["diffusion_loss"] = (total / len(self.VALIDATION_TIMESTEPS), B * N)
        return figs

    # ------------------------------------------------------------------------------------ training
    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Named weighted losses of this step's stage (see the module docstring)."""
        cfg = self.cfg
        if batch.occupancy is None:
            raise ValueError("batch.occupancy is None: occscene trains against the true occupancy")
        step = int(self.step)
        stage = self.stage(step)
        self.step += 1
        self._set_trainable(stage)
        mask = self.loss_mask(batch)
        losses: dict[str, torch.Tensor] = {}
        if stage in (-1, 0, 2) and cfg.real_occ_weight > 0:
            logits = self.perceive(batch.images, batch.intrinsics, batch.T_ego_from_cam)
            losses["loss_occ_real"] = cfg.real_occ_weight * self.perception_loss(logits, batch.occupancy, mask)
        if self.generator is None:
            return losses
        gen = self.generator
        B, N, _, H, W = batch.images.shape
        x = to_model_range(batch.images.flatten(0, 1))  # (B*N, 3, H, W) in [-1, 1]
        if stage == 0:
            dist = gen.vae.encode(x).latent_dist
            rec = gen.vae.decode(dist.sample()).sample
            losses["loss_vae_rec"] = reconstruction_loss(rec, x)
            losses["loss_vae_kl"] = cfg.generator.autoencoder.kl_weight * kl_to_standard_normal(dist.mean, dist.logvar)
            with torch.no_grad():  # 1 / std of the latents, averaged over the stage
                inv_std = 1.0 / dist.mean.float().std().clamp(min=1e-3)
                gen.latent_scale.copy_(inv_std if step == 0 else 0.98 * gen.latent_scale + 0.02 * inv_std)
            return losses
        with torch.no_grad():
            z0 = gen.encode(x)  # (B*N, c, h, w), scaled
        t = torch.randint(0, cfg.schedule.num_train_timesteps, (B,), device=x.device).repeat_interleave(
            N
        )  # one t per frame
        noise = torch.randn_like(z0)
        z_t = self.noise.add_noise(z0, noise, t)
        texts = [d or "" for d in (batch.descriptions or [""] * B)]
        drop_text = torch.rand(B) < cfg.text_dropout
        texts = ["" if dropped else txt for txt, dropped in zip(texts, drop_text.tolist())]
        text, text_mask = gen.encode_text([txt for txt in texts for _ in range(N)])
        keep = (torch.rand(B, device=x.device) >= cfg.occ_dropout).float().repeat_interleave(N)
        occ = one_hot_occupancy(batch.occupancy, self.model_cfg.num_classes) if gen.mda is not None else None
        eps = gen.denoise(z_t, t, text, text_mask, occ, batch.intrinsics, batch.T_ego_from_cam, keep)
        losses["loss_diff"] = diffusion_loss(eps, noise)
        if stage == 2 and cfg.occ_weight > 0:
            start = cfg.vae_steps + cfg.diffusion_steps
            ramp = min(1.0, (step - start + 1) / cfg.occ_warmup_steps) if cfg.occ_warmup_steps > 0 else 1.0
            read = t.view(B, N)[:, 0] < cfg.occ_max_timestep  # (B,) frames clean enough to read
            if bool(read.any()):
                x0 = x0_from_eps(z_t, eps if cfg.occ_grad_to_generator else eps.detach(), self.alphas_cumprod, t)
                images = to_image_range(gen.decode(x0)).view(B, N, 3, H, W)
                logits = self.perceive(images, batch.intrinsics, batch.T_ego_from_cam)
                gen_mask = mask & read.view(B, 1, 1, 1)
                losses["loss_occ_gen"] = cfg.occ_weight * ramp * self.perception_loss(logits, batch.occupancy, gen_mask)
            else:
                losses["loss_occ_gen"] = eps.sum() * 0.0
        return losses


# ------------------------------------------------------------------------------------ registration
def load_perception(load_run: RunLoader, path: str) -> OccNet:
    """occscene's starting perception network: the ``OccNet`` at ``.model`` of the method the run
    at ``path`` holds (a ``supervised`` or ``occscene`` run), loaded by the composition root's
    ``load_run`` (CPU, its EMA weights when it has them). Errors start with ``occscene.perception_ckpt:``."""
    other = load_run(path, "occscene.perception_ckpt")
    net = getattr(other, "model", None)
    if not isinstance(net, OccNet):
        raise ValueError(f"occscene.perception_ckpt: {path} holds a {type(other).__name__} without an OccNet at .model")
    return net


def build(cfg: Any, load_run: RunLoader) -> OccSceneMethod:
    """The recipe, its perception network started from ``occscene.perception_ckpt`` when set."""
    perception = load_perception(load_run, cfg.occscene.perception_ckpt) if cfg.occscene.perception_ckpt else None
    return OccSceneMethod(cfg.model, cfg.occscene, perception=perception)


METHOD = MethodSpec(
    name="occscene",
    summary="occupancy-guided text-to-image diffusion trained jointly with the perception network",
    sections={"occscene": OccSceneConfig},
    build=build,
    validation_figures=lambda cfg: bool(cfg.occscene.train_generator),  # the generator's PSNR and denoising loss
    export_refused="the run is a text-to-image diffusion generator trained with its perception network; only recipes "
    "whose checkpoint is the camera network are exported",
)
