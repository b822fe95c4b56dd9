"""The sampling loop, written out (diffusers' philosophy): DDIM from Gaussian noise, text by
cross-attention (with optional classifier-free guidance), occupancy through MDA, and optionally
the perception model's occupancy fed back at each step (OccScene's perception -> generation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from occkit.generation.autoencoder import to_image_range
from occkit.generation.model import SceneGenerator
from occkit.generation.schedule import x0_from_eps
from occkit.shapes import check_shape

#: Perception: images ``(B, N, 3, H, W)`` in [0, 1] -> occupancy logits ``(B, C, X, Y, Z)``.
Perception = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Samples:
    """What :func:`sample` returns.

    Attributes:
        images: ``(B, N, 3, H, W)`` in [0, 1].
        occupancy: ``(B, C, X, Y, Z)`` the class probabilities that conditioned the last step
            (the given layout, or the perception's last prediction; None for text only).
        perception_logits: ``(B, C, X, Y, Z)`` the perception model on the final images, when given.
    """

    images: torch.Tensor
    occupancy: torch.Tensor | None
    perception_logits: torch.Tensor | None = None


@torch.no_grad()
def sample(
    generator: SceneGenerator,
    scheduler,
    texts: list[str],
    intrinsics: torch.Tensor,
    T_ego_from_cam: torch.Tensor,
    image_hw: tuple[int, int],
    occupancy: torch.Tensor | None = None,
    perception: Perception | None = None,
    feedback: bool = False,
    steps: int = 50,
    guidance_scale: float = 1.0,
    seed: int | None = 0,
    eta: float = 0.0,
) -> Samples:
    """Generate ``B`` frames of ``N`` camera images.

    Args:
        generator: the trained :class:`SceneGenerator` (eval mode).
        scheduler: a :class:`diffusers.DDIMScheduler` (its state is reset here).
        texts: ``B`` descriptions.
        intrinsics: ``(B, N, 3, 3)`` at ``image_hw``; T_ego_from_cam: ``(B, N, 4, 4)``.
        image_hw: (H, W), multiples of the autoencoder's factor.
        occupancy: ``(B, C, X, Y, Z)`` class probabilities (one-hot of a layout), or None.
        perception: images, intrinsics, T_ego_from_cam -> logits; read at every step when
            ``feedback`` (and on the final images whenever given).
        feedback: at each step after the first, condition MDA on the perception model's
            occupancy predicted from the previous step's clean-image estimate (replacing
            ``occupancy``; the first step, with nothing to perceive yet, uses ``occupancy``).
        steps: DDIM steps; guidance_scale: classifier-free guidance on the text (1 = none);
        seed: seeds the initial noise (and DDIM's noise when eta > 0); None = the global RNG.
    Returns:
        :class:`Samples`.
    """
    dims = check_shape(intrinsics, "B N 3 3", name="intrinsics")
    check_shape(T_ego_from_cam, "B N 4 4", name="T_ego_from_cam", dims=dims)
    B, N = dims["B"], dims["N"]
    if len(texts) != B:
        raise ValueError(f"texts: expected {B} descriptions (one per frame), got {len(texts)}")
    if feedback and perception is None:
        raise ValueError("feedback=True needs a perception model")
    H, W = image_hw
    f = generator.stride
    if H % f or W % f:
        raise ValueError(f"image_hw {image_hw}: must be multiples of the autoencoder's factor {f}")
    device = generator.latent_scale.device
    rng = torch.Generator(device="cpu").manual_seed(seed) if seed is not None else None
    c = generator.cfg.autoencoder.latent_channels

    # text tokens per latent (frame-major, camera-minor); the empty text for guidance
    text, mask = generator.encode_text([t for t in texts for _ in range(N)])  # (B*N, T, D), (B*N, T)
    guided = guidance_scale != 1.0
    if guided:
        null, null_mask = generator.encode_text([""] * (B * N))

    scheduler.set_timesteps(steps, device=device)
    latents = torch.randn((B * N, c, H // f, W // f), generator=rng).to(device) * scheduler.init_noise_sigma
    cond = occupancy
    for i, t in enumerate(scheduler.timesteps):
        tt = t.expand(B * N)
        eps = generator.denoise(latents, tt, text, mask, cond, intrinsics, T_ego_from_cam)
        if guided:
            eps_null = generator.denoise(latents, tt, null, null_mask, cond, intrinsics, T_ego_from_cam)
            eps = eps_null + guidance_scale * (eps - eps_null)
        if feedback and i + 1 < len(scheduler.timesteps):
            # perception -> generation: the occupancy of the current clean-image estimate conditions the next step
            x0 = x0_from_eps(latents, eps, scheduler.alphas_cumprod, tt)
            images = to_image_range(generator.decode(x0)).view(B, N, 3, H, W)
            cond = perception(images, intrinsics, T_ego_from_cam).float().softmax(1)  # type: ignore[misc]
        latents = scheduler.step(eps, t, latents, eta=eta, generator=rng).prev_sample
    images = to_image_range(generator.decode(latents)).view(B, N, 3, H, W)
    logits = perception(images, intrinsics, T_ego_from_cam) if perception is not None else None
    return Samples(images=images, occupancy=cond, perception_logits=logits)
