"""Losses of the generator, as pure functions (the perception losses are
:mod:`occkit.losses.occupancy`'s)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from occkit.shapes import check_shape


def reconstruction_loss(reconstruction: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Mean absolute error ``mean |rec - x|`` over ``(M, 3, H, W)`` images in [-1, 1]."""
    dims = check_shape(images, "M 3 H W", name="images")
    check_shape(reconstruction, "M 3 H W", name="reconstruction", dims=dims)
    return (reconstruction.float() - images.float()).abs().mean()


def kl_to_standard_normal(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)) summed over the latent's cells and channels, averaged
    over the batch: ``mean_m sum 0.5 (mu^2 + exp(lv) - 1 - lv)`` (Stable Diffusion's VAE term).

    Args:
        mean, logvar: ``(M, c, h, w)``.
    """
    dims = check_shape(mean, "M c h w", name="mean")
    check_shape(logvar, "M c h w", name="logvar", dims=dims)
    kl = 0.5 * (mean.float().pow(2) + logvar.float().exp() - 1.0 - logvar.float())
    return kl.flatten(1).sum(1).mean()


def diffusion_loss(eps_pred: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The epsilon-prediction loss ``mean (eps_pred - eps)^2`` over ``(M, c, h, w)``."""
    dims = check_shape(noise, "M c h w", name="noise")
    check_shape(eps_pred, "M c h w", name="eps_pred", dims=dims)
    return F.mse_loss(eps_pred.float(), noise.float())


def one_hot_occupancy(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Class ids ``(B, X, Y, Z)`` -> one-hot probabilities ``(B, C, X, Y, Z)`` float32 (ids
    outside 0..C-1, e.g. 255, give all-zero columns)."""
    check_shape(labels, "B X Y Z", name="labels")
    valid = (labels >= 0) & (labels < num_classes)
    # scattered straight into the channels-first layout: a tenth of the time of F.one_hot's
    # channels-last result permuted and copied (a 200x200x16 frame: about 25 ms against 250 on a CPU)
    out = torch.zeros((labels.shape[0], num_classes, *labels.shape[1:]), device=labels.device)
    out.scatter_(1, labels.long().clamp(0, num_classes - 1)[:, None], valid[:, None].float())
    return out
