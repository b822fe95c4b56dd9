"""MDA, the Mamba-based dual alignment of OccScene: semantic occupancy -> residuals added to the
denoiser's features, ControlNet-style.

1. Cross-view camera encoding: the occupancy, as class probabilities ``(B, C, X, Y, Z)`` (one-hot
   for a ground-truth layout, softmax for a perception model's), cropped to ``region`` and
   interpolated (area) to ``grid`` (class fractions per cell); a 3D deformable convolution
   (:class:`DeformConv3d`) reads them at learned offsets and embeds them in ``channels``; the
   result is multiplied by ``1 +`` an encoding of each camera's parameters (:class:`CameraEncoder`,
   zero-initialised, so the features keep their scale at the start).
   (The deformable convolution reads the occupancy itself, which needs no gradient: the
   backward of ``grid_sample`` with respect to its input, a scatter, is what costs on a CPU.)
2. Sequential feature encoding: a 3D patch embedding (strided Conv3d) makes tokens; the tokens of
   every camera are stacked into one sequence; a bidirectional Mamba block (:class:`BiMamba`,
   ``mambapy``: two Linear -> causal depthwise conv -> selective SSM -> Linear branches, one on
   the reversed sequence, summed) mixes them.
3. Alignment to the image plane (occkit's reading: the paper's figure does not say how 3D tokens
   meet 2D latents): each latent pixel samples the token volume along its camera ray at
   ``ray_samples`` log-spaced depths (trilinear), the samples are concatenated and mixed by a 1x1 conv; a
   zero-initialised 1x1 convolution per UNet skip feature (and one for the middle block) makes the
   residuals, so at initialisation the denoiser is exactly unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from occkit.generation.frustum import latent_ray_points
from occkit.geometry.grid import Grid
from occkit.shapes import check_shape


@dataclass
class MDAConfig:
    """The MDA module."""

    enabled: bool = True
    """False: no MDA at all (the text-only generator)."""
    region: tuple[float, float, float, float, float, float] | None = (0.0, -25.6, -1.0, 40.0, 25.6, 5.4)
    """Part of the occupancy grid MDA reads, [xmin, ymin, zmin, xmax, ymax, zmax] ego metres (must
    fall on voxel boundaries); the default is the front camera's half of the Occ3D grid. None = the
    whole grid (surround cameras)."""
    grid: tuple[int, int, int] = (32, 32, 8)
    """The region is interpolated (area) to this many cells (x, y, z)."""
    channels: int = 32
    """Width of the 3D occupancy features."""
    deformable: bool = True
    """Use the 3D deformable convolution (False: a plain 3x3x3 convolution)."""
    camera_encoding: bool = True
    """Multiply the features by the camera-parameter encoding (False: by 1)."""
    camera_modulation: str = "residual"
    """How the camera encoding ``e`` multiplies the features: ``residual`` by ``1 + e`` with ``e``'s last
    layer zero-initialised (the features keep their scale at initialisation); ``plain`` by ``e``
    itself (occkit's first version, which shrank the layout signal about tenfold at initialisation)."""
    patch: tuple[int, int, int] = (2, 2, 2)
    """3D patch size (x, y, z) of the token embedding; must divide ``grid``."""
    token_dim: int = 64
    """Width of the tokens (the Mamba model dimension)."""
    mamba_layers: int = 1
    """Bidirectional Mamba blocks."""
    mamba_state: int = 16
    """SSM state size N."""
    ray_samples: int = 16
    """Depths sampled along each latent pixel's ray."""
    ray_depth: tuple[float, float] = (1.0, 45.0)
    """Nearest and farthest sampled camera depth (metres)."""
    ray_spacing: str = "log"
    """How the ``ray_samples`` depths are spaced between ``ray_depth``: ``log`` (geometric: as many
    samples per doubling of depth), ``linear``, or ``inverse`` (even in 1/depth, occkit's first
    version: with (1, 45) m it put 13 of 16 samples within 5 m of the camera, in front of the scene)."""
    out_channels: int = 64
    """Width of the 2D features the zero-initialised projections read."""


class CameraEncoder(nn.Module):
    """Camera parameters -> a ``channels`` vector: intrinsics normalised by the image size
    (fx/W, fy/H, cx/W, cy/H), rotation (9) and translation / 10 m (3) of ``T_ego_from_cam``,
    through a 2-layer MLP."""

    def __init__(self, channels: int, residual: bool = True) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(16, channels), nn.SiLU(), nn.Linear(channels, channels))
        self.residual = residual
        if residual:  # 1 + e: exactly 1 at initialisation
            nn.init.zeros_(self.mlp[2].weight)
            nn.init.zeros_(self.mlp[2].bias)

    def forward(
        self, intrinsics: torch.Tensor, T_ego_from_cam: torch.Tensor, image_hw: tuple[int, int]
    ) -> torch.Tensor:
        """intrinsics ``(M, 3, 3)``, T_ego_from_cam ``(M, 4, 4)`` -> ``(M, channels)``."""
        H, W = image_hw
        K = intrinsics.float()
        k = torch.stack([K[:, 0, 0] / W, K[:, 1, 1] / H, K[:, 0, 2] / W, K[:, 1, 2] / H], -1)  # (M, 4)
        T = T_ego_from_cam.float()
        x = torch.cat([k, T[:, :3, :3].flatten(1), T[:, :3, 3] / 10.0], -1)  # (M, 16)
        e = self.mlp(x)
        return 1 + e if self.residual else e


class DeformConv3d(nn.Module):
    """A 3D deformable convolution in pure PyTorch (torchvision has only ``deform_conv2d``).

    ``y(p) = sum_k W_k x(p + p_k + dp_k(p))`` over the ``k^3`` taps ``p_k``: a plain 3D conv predicts
    the offsets ``dp`` (3 per tap, zero-initialised, in cells), ``grid_sample`` reads ``x``
    trilinearly at the shifted positions (zeros outside), and a 1x1x1 convolution over the
    concatenated taps applies the weights ``W_k``. With zero offsets it is an ordinary 3D conv
    with zero padding.
    """

    def __init__(self, channels: int, out_channels: int, kernel: int = 3) -> None:
        super().__init__()
        self.kernel = kernel
        self.offset = nn.Conv3d(channels, 3 * kernel**3, kernel, padding=kernel // 2)
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)
        self.mix = nn.Conv3d(channels * kernel**3, out_channels, 1)
        r = torch.arange(kernel, dtype=torch.float32) - kernel // 2
        taps = torch.stack(torch.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)  # (K, 3) as (dx, dy, dz)
        self.register_buffer("taps", taps, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, X, Y, Z)`` -> ``(B, out_channels, X, Y, Z)``."""
        B, C, X, Y, Z = x.shape
        K = self.taps.shape[0]
        offsets = self.offset(x).view(B, K, 3, X, Y, Z).permute(0, 1, 3, 4, 5, 2)  # (B, K, X, Y, Z, 3)
        axes = [torch.arange(n, device=x.device, dtype=x.dtype) for n in (X, Y, Z)]
        base = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1)  # (X, Y, Z, 3) cell indices
        pos = base + self.taps.to(x.dtype).view(K, 1, 1, 1, 3) + offsets  # (B, K, X, Y, Z, 3)
        size = torch.tensor([X, Y, Z], device=x.device, dtype=x.dtype)
        norm = (pos + 0.5) / size * 2 - 1  # align_corners=False coordinates, (x, y, z) order
        # grid_sample's last axis is (W, H, D) = (Z, Y, X) for a (B, C, X, Y, Z) input
        g = norm.flip(-1).reshape(B, K * X, Y, Z, 3)
        sampled = F.grid_sample(x, g, mode="bilinear", padding_mode="zeros", align_corners=False)  # (B, C, K*X, Y, Z)
        sampled = sampled.view(B, C, K, X, Y, Z).transpose(1, 2).reshape(B, K * C, X, Y, Z)
        return self.mix(sampled)


class BiMamba(nn.Module):
    """Pre-norm bidirectional Mamba block: ``x + Linear(Mamba_f(LN x) + flip(Mamba_b(flip(LN x))))``
    (each ``mambapy`` MambaBlock is Linear -> causal depthwise conv -> selective SSM -> Linear)."""

    def __init__(self, dim: int, state: int = 16) -> None:
        super().__init__()
        from mambapy.mamba import MambaBlock, MambaConfig

        cfg = MambaConfig(d_model=dim, n_layers=1, d_state=state, pscan=True)
        self.norm = nn.LayerNorm(dim)
        self.forward_branch = MambaBlock(cfg)
        self.backward_branch = MambaBlock(cfg)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, L, D)`` -> ``(B, L, D)``."""
        h = self.norm(x)
        y = self.forward_branch(h) + self.backward_branch(h.flip(1)).flip(1)
        return x + self.out(y)


def ray_depths(near: float, far: float, n: int, spacing: str = "log") -> torch.Tensor:
    """``n`` camera depths from ``near`` to ``far``: ``log`` (geometric), ``linear`` or ``inverse``
    (even in 1 / depth)."""
    if spacing == "log":
        return torch.logspace(math.log10(near), math.log10(far), n)
    if spacing == "linear":
        return torch.linspace(near, far, n)
    if spacing == "inverse":
        return 1 / torch.linspace(1 / near, 1 / far, n)
    raise ValueError(f"mda.ray_spacing: expected 'log', 'linear' or 'inverse', got {spacing!r}")


def _zero_conv(cin: int, cout: int) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class MDA(nn.Module):
    """Occupancy -> residuals for the denoiser's skip features and middle block.

    Args:
        cfg: :class:`MDAConfig`.
        num_classes: C of the occupancy.
        occ_grid: the occupancy's grid (Occ3D's).
        residual_shapes: (channels, h, w) of each UNet skip feature, and of the middle block
            (:func:`occkit.generation.denoiser.residual_shapes`); only the channels are fixed,
            the sizes follow the latent at run time.
        latent_stride: image pixels per latent pixel.
    """

    def __init__(
        self,
        cfg: MDAConfig,
        num_classes: int,
        occ_grid: Grid,
        residual_channels: list[int],
        mid_channels: int,
        latent_stride: int,
    ) -> None:
        super().__init__()
        self.cfg, self.num_classes, self.latent_stride = cfg, num_classes, latent_stride
        region = cfg.region if cfg.region is not None else occ_grid.point_range
        lo = [round((region[i] - occ_grid.range_min[i]) / occ_grid.voxel_size[i]) for i in range(3)]
        hi = [round((region[i + 3] - occ_grid.range_min[i]) / occ_grid.voxel_size[i]) for i in range(3)]
        for i in range(3):
            if not 0 <= lo[i] < hi[i] <= occ_grid.shape[i]:
                raise ValueError(f"mda.region {region}: not inside the occupancy grid {occ_grid.point_range}")
        self.slices = tuple(slice(a, b) for a, b in zip(lo, hi))
        self.region = tuple(float(v) for v in region)
        if any(g % p for g, p in zip(cfg.grid, cfg.patch)):
            raise ValueError(f"mda.patch {cfg.patch} must divide mda.grid {cfg.grid}")
        c = cfg.channels
        self.deform = DeformConv3d(num_classes, c) if cfg.deformable else nn.Conv3d(num_classes, c, 3, padding=1)
        if cfg.camera_modulation not in ("residual", "plain"):
            raise ValueError(f"mda.camera_modulation: expected 'residual' or 'plain', got {cfg.camera_modulation!r}")
        self.camera = CameraEncoder(c, residual=cfg.camera_modulation == "residual") if cfg.camera_encoding else None
        self.patch_embed = nn.Conv3d(c, cfg.token_dim, cfg.patch, stride=cfg.patch)
        self.mamba = nn.ModuleList(BiMamba(cfg.token_dim, cfg.mamba_state) for _ in range(cfg.mamba_layers))
        self.to_image = nn.Sequential(
            nn.Conv2d(cfg.token_dim * cfg.ray_samples, cfg.out_channels, 1),
            nn.SiLU(),
            nn.Conv2d(cfg.out_channels, cfg.out_channels, 3, padding=1),
            nn.SiLU(),
        )
        self.zero_convs = nn.ModuleList(_zero_conv(cfg.out_channels, ch) for ch in residual_channels)
        self.zero_mid = _zero_conv(cfg.out_channels, mid_channels)
        near, far = cfg.ray_depth
        if not 0 < near < far:
            raise ValueError(f"mda.ray_depth: expected 0 < near < far, got {cfg.ray_depth}")
        self.register_buffer("depths", ray_depths(near, far, cfg.ray_samples, cfg.ray_spacing), persistent=False)

    def forward(
        self,
        occupancy: torch.Tensor,
        intrinsics: torch.Tensor,
        T_ego_from_cam: torch.Tensor,
        image_hw: tuple[int, int],
        latent_shapes: list[tuple[int, int]],
        mid_shape: tuple[int, int],
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Residuals for ``B * N`` latents (camera-major within a frame).

        Args:
            occupancy: ``(B, C, X, Y, Z)`` class probabilities on the occupancy grid.
            intrinsics: ``(B, N, 3, 3)`` at image size ``image_hw``; T_ego_from_cam: ``(B, N, 4, 4)``.
            latent_shapes: (h, w) of each skip feature; mid_shape: (h, w) of the middle block.
        Returns:
            (list of ``(B*N, c_i, h_i, w_i)``, ``(B*N, c_mid, h, w)``).
        """
        dims = check_shape(occupancy, "B C X Y Z", name="occupancy", dims={"C": self.num_classes})
        check_shape(intrinsics, "B N 3 3", name="intrinsics", dims={"B": dims["B"]})
        B, N = intrinsics.shape[:2]
        cfg = self.cfg
        occ = occupancy[(slice(None), slice(None), *self.slices)].float()
        occ = F.interpolate(occ, size=tuple(cfg.grid), mode="area")  # (B, C, gx, gy, gz)
        feat = F.silu(self.deform(occ))  # (B, c, gx, gy, gz)
        feat = feat[:, None].expand(-1, N, -1, -1, -1, -1).flatten(0, 1)  # (B*N, c, gx, gy, gz)
        K, T = intrinsics.flatten(0, 1), T_ego_from_cam.flatten(0, 1)  # (B*N, 3, 3), (B*N, 4, 4)
        if self.camera is not None:
            feat = feat * self.camera(K, T, image_hw)[:, :, None, None, None]
        tokens = self.patch_embed(feat)  # (B*N, D, tx, ty, tz)
        D, tx, ty, tz = tokens.shape[1:]
        seq = tokens.view(B, N, D, tx * ty * tz).permute(0, 1, 3, 2).reshape(B, N * tx * ty * tz, D)  # cameras stacked
        for block in self.mamba:
            seq = block(seq)
        vol = seq.view(B, N, tx, ty, tz, D).permute(0, 1, 5, 2, 3, 4).reshape(B * N, D, tx, ty, tz)
        # each latent pixel samples the token volume along its ray
        pts = latent_ray_points(K, T, image_hw, self.latent_stride, self.depths)  # (B*N, S, h, w, 3)
        lo = pts.new_tensor(self.region[:3])
        hi = pts.new_tensor(self.region[3:])
        g = ((pts - lo) / (hi - lo) * 2 - 1).flip(-1)  # (x, y, z) -> grid_sample's (z, y, x)
        samp = F.grid_sample(vol, g, mode="bilinear", padding_mode="zeros", align_corners=False)  # (B*N, D, S, h, w)
        img = self.to_image(samp.flatten(1, 2))  # (B*N, out, h, w)
        res = []
        for conv, hw in zip(self.zero_convs, latent_shapes):
            x = img if tuple(img.shape[-2:]) == tuple(hw) else F.adaptive_avg_pool2d(img, hw)
            res.append(conv(x))
        mid = self.zero_mid(F.adaptive_avg_pool2d(img, mid_shape))
        return res, mid
