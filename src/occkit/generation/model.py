"""The scene generator, assembled from its parts in one place: autoencoder, text conditioner,
denoiser, MDA (:func:`build_generator`). The noise schedules live in :mod:`.schedule`, the
sampling loop in :mod:`.sampling`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from occkit.generation.autoencoder import AutoencoderConfig, build_autoencoder, downsample_factor
from occkit.generation.denoiser import DenoiserConfig, build_denoiser, residual_shapes
from occkit.generation.mda import MDA, MDAConfig
from occkit.generation.text import TextConditioner
from occkit.geometry.grid import Grid
from occkit.shapes import check_shape


@dataclass
class GeneratorConfig:
    """The latent diffusion model of OccScene."""

    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    """The KL-VAE."""
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    """The text-conditioned UNet."""
    mda: MDAConfig = field(default_factory=MDAConfig)
    """The occupancy conditioning (``mda.enabled: false`` = text only)."""
    text_encoder: str = "minilm"
    """Text encoder spec (:func:`occkit.priors.text.load_text_encoder`; sentence-transformers)."""
    max_tokens: int = 48
    """Text tokens kept for cross-attention."""


class SceneGenerator(nn.Module):
    """VAE + UNet + MDA (+ the frozen text conditioner, held outside the module's parameters).

    Attributes:
        latent_scale: buffer, 1 / std of the VAE latents (measured while the VAE trains), so the
            diffusion runs on unit-variance latents as Stable Diffusion's 0.18215 does.
    """

    def __init__(self, cfg: GeneratorConfig, num_classes: int, occ_grid: Grid, text_dim: int | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.vae = build_autoencoder(cfg.autoencoder)
        self.stride = downsample_factor(cfg.autoencoder)
        self._text: list[TextConditioner] = []  # lazily loaded; a list so nn.Module does not register it
        dim = text_dim if text_dim is not None else self.text.dim
        self.unet = build_denoiser(cfg.denoiser, cfg.autoencoder.latent_channels, dim)
        shapes, mid = residual_shapes(cfg.denoiser, (8, 8))
        self.mda = (
            MDA(cfg.mda, num_classes, occ_grid, [s[0] for s in shapes], mid[0], self.stride)
            if cfg.mda.enabled
            else None
        )
        self.register_buffer("latent_scale", torch.ones(()))

    @property
    def text(self) -> TextConditioner:
        if not self._text:
            self._text.append(TextConditioner(self.cfg.text_encoder, self.cfg.max_tokens))
        return self._text[0]

    def encode_text(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(K, T, D)`` token states and ``(K, T)`` mask on this module's device."""
        return self.text.encode(texts, self.latent_scale.device)

    def encode(self, images: torch.Tensor, sample: bool = True) -> torch.Tensor:
        """images ``(M, 3, H, W)`` in [-1, 1] -> scaled latents ``(M, c, H/f, W/f)``."""
        dist = self.vae.encode(images).latent_dist
        z = dist.sample() if sample else dist.mode()
        return z * self.latent_scale

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """scaled latents ``(M, c, h, w)`` -> images ``(M, 3, h*f, w*f)`` in about [-1, 1]."""
        return self.vae.decode(latents / self.latent_scale).sample

    def residuals(
        self,
        latents: torch.Tensor,
        occupancy: torch.Tensor | None,
        intrinsics: torch.Tensor,
        T_ego_from_cam: torch.Tensor,
    ) -> tuple[list[torch.Tensor] | None, torch.Tensor | None]:
        """MDA's residuals for ``latents (B*N, c, h, w)``, or (None, None) without MDA or occupancy."""
        if self.mda is None or occupancy is None:
            return None, None
        h, w = latents.shape[-2:]
        shapes, mid = residual_shapes(self.cfg.denoiser, (h, w))
        image_hw = (h * self.stride, w * self.stride)
        return self.mda(occupancy, intrinsics, T_ego_from_cam, image_hw, [s[1:] for s in shapes], mid[1:])

    def denoise(
        self,
        latents: torch.Tensor,
        t: torch.Tensor,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        occupancy: torch.Tensor | None,
        intrinsics: torch.Tensor,
        T_ego_from_cam: torch.Tensor,
        occupancy_keep: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The predicted noise.

        Args:
            latents: ``(B*N, c, h, w)`` noisy latents (frame-major, camera-minor).
            t: ``(B*N,)`` or scalar timesteps.
            text: ``(B*N, T, D)`` token states; text_mask: ``(B*N, T)`` bool.
            occupancy: ``(B, C, X, Y, Z)`` class probabilities, or None (text only).
            intrinsics: ``(B, N, 3, 3)`` (at the image size the latents decode to);
            T_ego_from_cam: ``(B, N, 4, 4)``.
            occupancy_keep: optional ``(B*N,)`` 0/1: latents whose MDA residuals are dropped (0)
                as if sampled without occupancy (occupancy dropout while training).
        Returns:
            ``(B*N, c, h, w)``.
        """
        check_shape(latents, "M c h w", name="latents")
        down, mid = self.residuals(latents, occupancy, intrinsics, T_ego_from_cam)
        if down is not None and mid is not None and occupancy_keep is not None:
            k = occupancy_keep.to(latents.dtype).view(-1, 1, 1, 1)
            down, mid = [r * k for r in down], mid * k
        return self.unet(
            latents,
            t,
            encoder_hidden_states=text,
            encoder_attention_mask=text_mask,
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
        ).sample
