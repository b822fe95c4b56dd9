"""The denoiser: a small :class:`diffusers.UNet2DConditionModel` reading text by cross-attention,
plus the list of the feature maps a ControlNet-style module adds residuals to.

``down_block_additional_residuals`` must match, one by one, the skip features the UNet keeps:
the ``conv_in`` output, then each down block's ResNet outputs and (but for the last block) its
downsampler's output; :func:`residual_shapes` lists their (channels, height, width).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DenoiserConfig:
    """A small :class:`diffusers.UNet2DConditionModel`."""

    channels: tuple[int, ...] = (64, 128, 128)
    """Channels per level (each level after the first halves the latent resolution)."""
    cross_attention: tuple[bool, ...] = (False, True, True)
    """Whether each level has transformer blocks reading the text (one entry per level); the
    middle block always has them."""
    layers_per_block: int = 1
    """ResNet blocks per down level (up levels have one more, as in diffusers)."""
    attention_head_dim: int = 32
    """Channels per attention head."""
    norm_groups: int = 16
    """GroupNorm groups (must divide every entry of ``channels``)."""


def build_denoiser(cfg: DenoiserConfig, latent_channels: int, text_dim: int):
    """A randomly initialised :class:`diffusers.UNet2DConditionModel` (``text_dim`` = the text
    encoder's token width, ``latent_channels`` = the autoencoder's)."""
    from diffusers import UNet2DConditionModel

    n = len(cfg.channels)
    if len(cfg.cross_attention) != n:
        raise ValueError(
            f"denoiser.cross_attention: expected {n} entries (one per level of channels), got "
            f"{len(cfg.cross_attention)}"
        )
    if any(c % cfg.norm_groups or c % cfg.attention_head_dim for c in cfg.channels):
        raise ValueError(
            f"denoiser.channels {cfg.channels}: each must be a multiple of norm_groups and attention_head_dim"
        )
    down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in cfg.cross_attention)
    up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(cfg.cross_attention))
    return UNet2DConditionModel(
        in_channels=latent_channels,
        out_channels=latent_channels,
        down_block_types=down,
        up_block_types=up,
        block_out_channels=tuple(cfg.channels),
        layers_per_block=cfg.layers_per_block,
        cross_attention_dim=text_dim,
        attention_head_dim=cfg.attention_head_dim,
        norm_num_groups=cfg.norm_groups,
    )


def residual_shapes(
    cfg: DenoiserConfig, latent_hw: tuple[int, int]
) -> tuple[list[tuple[int, int, int]], tuple[int, int, int]]:
    """(channels, h, w) of each of the UNet's skip features, in order, and of its middle block's
    output, for a latent of ``latent_hw`` (a stride-2 convolution gives ``ceil(n / 2)``)."""
    h, w = latent_hw
    shapes = [(cfg.channels[0], h, w)]
    for i, c in enumerate(cfg.channels):
        shapes += [(c, h, w)] * cfg.layers_per_block
        if i < len(cfg.channels) - 1:
            h, w = (h + 1) // 2, (w + 1) // 2
            shapes.append((c, h, w))
    return shapes, (cfg.channels[-1], h, w)
