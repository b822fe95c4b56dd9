"""Noise schedules, kept apart from the denoiser (diffusers' schedulers: parameter-free).

Training draws timesteps and noises latents with :class:`diffusers.DDPMScheduler`; sampling steps
with :class:`diffusers.DDIMScheduler` over the same betas. :func:`x0_from_eps` is the one formula
the joint training and the perception feedback need: the clean-latent estimate from the predicted
noise, ``x0 = (z_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from occkit.shapes import check_shape


@dataclass
class NoiseScheduleConfig:
    """The diffusion's noise schedule (shared by training and sampling)."""

    num_train_timesteps: int = 1000
    """T, the number of diffusion steps of the forward process."""
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = "scaled_linear"
    """How the betas grow (diffusers' names; 'scaled_linear' is Stable Diffusion's)."""
    beta_start: float = 0.00085
    """First beta."""
    beta_end: float = 0.012
    """Last beta."""
    sample_steps: int = 50
    """DDIM steps at sampling time."""
    eta: float = 0.0
    """DDIM's eta (0 = deterministic given the initial noise)."""


def _check(cfg: NoiseScheduleConfig) -> None:
    if cfg.num_train_timesteps < 2:
        raise ValueError(f"schedule.num_train_timesteps: expected >= 2, got {cfg.num_train_timesteps}")
    if not 0 < cfg.beta_start < cfg.beta_end < 1:
        raise ValueError(
            f"schedule.beta_start/beta_end: expected 0 < start < end < 1, got {cfg.beta_start}, {cfg.beta_end}"
        )
    if not 1 <= cfg.sample_steps <= cfg.num_train_timesteps:
        raise ValueError(f"schedule.sample_steps: expected 1..{cfg.num_train_timesteps}, got {cfg.sample_steps}")


def _common(cfg: NoiseScheduleConfig) -> dict:
    """The checked betas and the epsilon prediction both schedulers share (training and sampling
    must agree on them)."""
    _check(cfg)
    return dict(
        num_train_timesteps=cfg.num_train_timesteps,
        beta_schedule=cfg.beta_schedule,
        beta_start=cfg.beta_start,
        beta_end=cfg.beta_end,
        prediction_type="epsilon",
        clip_sample=False,
    )


def training_scheduler(cfg: NoiseScheduleConfig):
    """A :class:`diffusers.DDPMScheduler` (epsilon prediction) for training: ``add_noise`` and
    ``alphas_cumprod``."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(**_common(cfg))


def sampling_scheduler(cfg: NoiseScheduleConfig):
    """A :class:`diffusers.DDIMScheduler` over the same betas (``set_timesteps`` then ``step``)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        **_common(cfg),
        set_alpha_to_one=False,
        steps_offset=1,
    )


def x0_from_eps(z_t: torch.Tensor, eps: torch.Tensor, alphas_cumprod: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The clean-latent estimate ``(z_t - sqrt(1 - abar_t) * eps) / sqrt(abar_t)``.

    Args:
        z_t: ``(B, C, h, w)`` noisy latents; eps: ``(B, C, h, w)`` predicted noise.
        alphas_cumprod: ``(T,)`` abar of the schedule; t: ``(B,)`` long timesteps.
    Returns:
        ``(B, C, h, w)``.
    """
    dims = check_shape(z_t, "B C h w", name="z_t")
    check_shape(eps, "B C h w", name="eps", dims=dims)
    check_shape(t, "B", name="t", dims={"B": dims["B"]})
    abar = alphas_cumprod.to(device=z_t.device, dtype=torch.float32)[t].view(-1, 1, 1, 1)
    return (z_t - (1 - abar).sqrt() * eps) / abar.sqrt()
