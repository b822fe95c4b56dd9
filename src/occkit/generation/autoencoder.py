"""The image autoencoder: a small KL-VAE (diffusers' :class:`~diffusers.AutoencoderKL`) that
occkit trains on the synthetic images (no pretrained weights).

images ``(B, 3, H, W)`` in [-1, 1] -> latents ``(B, latent_channels, H/f, W/f)``, with
``f = 2 ** (len(channels) - 1)`` (8 with the default four levels).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class AutoencoderConfig:
    """A small :class:`diffusers.AutoencoderKL`."""

    channels: tuple[int, ...] = (32, 64, 64, 64)
    """Channels per level; each level after the first halves the resolution (4 levels: 8x)."""
    layers_per_block: int = 1
    """ResNet blocks per level."""
    latent_channels: int = 4
    """Channels of the latent image."""
    norm_groups: int = 16
    """GroupNorm groups (must divide every entry of ``channels``)."""
    kl_weight: float = 1.0e-6
    """Weight of the KL term against the reconstruction (``loss_vae_kl``)."""


def downsample_factor(cfg: AutoencoderConfig) -> int:
    """Image pixels per latent pixel along each axis."""
    return 2 ** (len(cfg.channels) - 1)


def build_autoencoder(cfg: AutoencoderConfig):
    """A randomly initialised :class:`diffusers.AutoencoderKL` of ``cfg``."""
    from diffusers import AutoencoderKL

    if not cfg.channels or any(c % cfg.norm_groups for c in cfg.channels):
        raise ValueError(
            f"autoencoder.channels {cfg.channels}: each must be a multiple of norm_groups {cfg.norm_groups}"
        )
    n = len(cfg.channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(cfg.channels),
        layers_per_block=cfg.layers_per_block,
        latent_channels=cfg.latent_channels,
        norm_num_groups=cfg.norm_groups,
        mid_block_add_attention=False,
    )


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1]."""
    return images * 2 - 1


def to_image_range(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped."""
    return ((x + 1) / 2).clamp(0, 1)
