"""Tiny generator configs shared by the generation and occscene tests."""

from __future__ import annotations

from occkit.generation.autoencoder import AutoencoderConfig
from occkit.generation.denoiser import DenoiserConfig
from occkit.generation.mda import MDAConfig
from occkit.generation.model import GeneratorConfig
from occkit.generation.schedule import NoiseScheduleConfig


def tiny_generator_cfg(**mda) -> GeneratorConfig:
    m = dict(
        region=None,
        grid=(8, 8, 2),
        channels=8,
        patch=(2, 2, 1),
        token_dim=16,
        mamba_state=4,
        ray_samples=4,
        ray_depth=(1.0, 8.0),
        out_channels=16,
    )
    m.update(mda)
    return GeneratorConfig(
        autoencoder=AutoencoderConfig(channels=(8, 8, 16, 16), norm_groups=8, latent_channels=4),
        denoiser=DenoiserConfig(channels=(16, 32), cross_attention=(False, True), attention_head_dim=8, norm_groups=8),
        mda=MDAConfig(**m),
        max_tokens=16,
    )


def tiny_schedule() -> NoiseScheduleConfig:
    return NoiseScheduleConfig(num_train_timesteps=100, sample_steps=5)
