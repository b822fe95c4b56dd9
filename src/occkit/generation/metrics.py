"""Image-generation metrics in the feature space of a frozen encoder: FID (Frechet distance of
the two feature Gaussians) and KID (unbiased MMD^2 with the cubic polynomial kernel).

occkit has no pretrained Inception or CLIP weights: the features come from an image encoder
occkit trained on the synthetic images (``occkit eval-gen`` uses the judge occupancy network's
image backbone, globally average-pooled): these values compare runs within occkit, never with
papers' Inception FIDs.
"""

from __future__ import annotations

import torch

from occkit.shapes import check_shape


def _sqrtm_psd(a: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh(a)
    return (v * w.clamp(min=0).sqrt()) @ v.T


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """``|mu_r - mu_f|^2 + tr(S_r + S_f - 2 (S_r^1/2 S_f S_r^1/2)^1/2)`` of features ``(n, D)``
    (float64, unbiased covariances; needs n >= 2 each)."""
    check_shape(real, "n D", name="real")
    check_shape(fake, "m D", name="fake", dims={"D": real.shape[1]})
    if real.shape[0] < 2 or fake.shape[0] < 2:
        raise ValueError(f"frechet_distance: need at least 2 features each, got {real.shape[0]} and {fake.shape[0]}")
    r, f = real.double(), fake.double()
    mu_r, mu_f = r.mean(0), f.mean(0)
    s_r, s_f = torch.cov(r.T), torch.cov(f.T)
    s_r, s_f = s_r.reshape(r.shape[1], r.shape[1]), s_f.reshape(f.shape[1], f.shape[1])
    root = _sqrtm_psd(s_r)
    cross = _sqrtm_psd(root @ s_f @ root)
    return float((mu_r - mu_f).pow(2).sum() + torch.trace(s_r) + torch.trace(s_f) - 2 * torch.trace(cross))


def kernel_distance(
    real: torch.Tensor, fake: torch.Tensor, subset_size: int = 100, subsets: int = 50, seed: int = 0
) -> float:
    """KID: the unbiased MMD^2 with ``k(x, y) = (x.y / D + 1)^3``, averaged over ``subsets``
    random subsets of ``min(subset_size, n, m)`` features of each set (Binkowski et al.)."""
    check_shape(real, "n D", name="real")
    check_shape(fake, "m D", name="fake", dims={"D": real.shape[1]})
    n = min(subset_size, real.shape[0], fake.shape[0])
    if n < 2:
        raise ValueError("kernel_distance: need at least 2 features each")
    g = torch.Generator().manual_seed(seed)
    D = real.shape[1]
    vals = []
    for _ in range(subsets):
        x = real.double()[torch.randperm(real.shape[0], generator=g)[:n]]
        y = fake.double()[torch.randperm(fake.shape[0], generator=g)[:n]]
        kxx, kyy, kxy = (x @ x.T / D + 1) ** 3, (y @ y.T / D + 1) ** 3, (x @ y.T / D + 1) ** 3
        mmd = ((kxx.sum() - kxx.diagonal().sum()) + (kyy.sum() - kyy.diagonal().sum())) / (n * (n - 1)) - 2 * kxy.mean()
        vals.append(float(mmd))
    return sum(vals) / len(vals)


def psnr(images: torch.Tensor, reference: torch.Tensor, peak: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, ``10 log10(peak^2 / MSE)`` in dB: ``(M, C, H, W)``
    images against ``(M, C, H, W)`` references (values in ``[0, peak]``) -> ``(M,)``; ``inf``
    where an image equals its reference."""
    if images.shape != reference.shape or images.dim() != 4:
        raise ValueError(
            f"psnr: expected two (M, C, H, W) tensors of one shape, got {tuple(images.shape)} and "
            f"{tuple(reference.shape)}"
        )
    mse = (images.double() - reference.double()).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(peak**2 / mse)).float()
