"""Bird's-eye view of a semantic voxel grid.

Picture orientation (ego frame x forward, y left): +x points up in the picture and +y to the
left, so the picture reads like a map seen from above with the car driving up. Row ``r`` shows
``x = X - 1 - r`` and column ``c`` shows ``y = Y - 1 - c``; the ego, at the grid centre for
Occ3D, is at the picture centre.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from occkit.labels import OCC3D_PALETTE
from occkit.shapes import check_shape
from occkit.viz.draw import BACKGROUND, checked_palette

MASK_MODES = ("hide", "grey")


def as_label_grid(semantics: np.ndarray | torch.Tensor, name: str = "semantics") -> np.ndarray:
    """``(X, Y, Z)`` integer class ids as a numpy ``int64`` array (torch tensors accepted)."""
    if isinstance(semantics, torch.Tensor):
        semantics = semantics.detach().cpu().numpy()
    if not isinstance(semantics, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array or torch tensor, got {type(semantics).__name__}")
    check_shape(semantics, "X Y Z", name=name)
    if not (np.issubdtype(semantics.dtype, np.integer) or semantics.dtype == np.bool_):
        raise TypeError(f"{name}: expected integer class ids, got dtype {semantics.dtype}")
    return semantics.astype(np.int64, copy=False)


def as_mask(mask: np.ndarray | torch.Tensor | None, shape: tuple[int, ...], name: str = "mask") -> np.ndarray | None:
    """Optional ``(X, Y, Z)`` mask as numpy bool, checked against ``shape``."""
    if mask is None:
        return None
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    check_shape(mask, "X Y Z", name=name, dims=dict(zip("XYZ", shape)))
    return np.asarray(mask).astype(bool, copy=False)


#: The colour voxels outside a visibility mask are blended towards with ``mask_mode="grey"``: a
#: slate blue-grey, apart from every class colour (other_flat's neutral grey among them) and from
#: the background of empty cells.
MASK_TINT: tuple[int, int, int] = (92, 104, 150)


def desaturate(colors: np.ndarray, amount: float = 0.8, grey: Sequence[int] = MASK_TINT) -> np.ndarray:
    """Blend ``(..., 3) uint8`` colours towards ``grey`` (a colour) by ``amount`` in [0, 1]."""
    c = colors.astype(np.float32) * (1 - amount) + np.asarray(grey, np.float32) * amount
    return np.round(c).astype(np.uint8)


def top_voxels(semantics: np.ndarray, *, free: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-most non-free voxel of each column.

    Args:
        semantics: ``(X, Y, Z)`` integer class ids; free: the free class.
    Returns:
        z: ``(X, Y)`` int64 height index of the top non-free voxel, ``-1`` for an all-free column;
        cls: ``(X, Y)`` int64 its class (``free`` where the column is empty).
    """
    sem = np.asarray(semantics)
    Z = sem.shape[2]
    occ = sem != free
    any_occ = occ.any(axis=2)
    z = Z - 1 - np.argmax(occ[:, :, ::-1], axis=2)  # last True along z
    z = np.where(any_occ, z, -1)
    cls = np.take_along_axis(sem, np.clip(z, 0, None)[..., None], axis=2)[..., 0].astype(np.int64)
    cls = np.where(any_occ, cls, free)
    return z, cls


def bev_image(
    semantics: np.ndarray | torch.Tensor,
    mask: np.ndarray | torch.Tensor | None = None,
    palette: Sequence[Sequence[int]] = OCC3D_PALETTE,
    mask_mode: str = "hide",
    *,
    free: int,
    scale: int = 1,
    shade: float = 0.6,
    background: Sequence[int] = BACKGROUND,
) -> np.ndarray:
    """Bird's-eye view: the class colour of the top-most non-free voxel of each column, shaded by
    its height (lower = darker).

    Args:
        semantics: ``(X, Y, Z)`` integer class ids (uint8 for Occ3D; ``free``, the free class, = empty).
        mask: optional ``(X, Y, Z)`` bool, the observed voxels (e.g. ``mask_camera``).
        palette: ``(C, 3)`` RGB colours indexed by class.
        mask_mode: ``"hide"``: unobserved voxels count as free; ``"grey"``: columns whose top
            voxel is unobserved are drawn greyed out.
        scale: each voxel becomes a ``scale x scale`` block of pixels.
        shade: brightness of the lowest layer relative to the highest (1 = no height shading).
        background: colour of all-free columns.
    Returns:
        ``(X * scale, Y * scale, 3) uint8``; row 0 is the front (+x), column 0 the left (+y).
    """
    sem = as_label_grid(semantics)
    X, Y, Z = sem.shape
    m = as_mask(mask, sem.shape)
    if mask_mode not in MASK_MODES:
        raise ValueError(f"mask_mode must be one of {MASK_MODES}, got {mask_mode!r}")
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    pal = checked_palette(palette, sem, free)
    if m is not None and mask_mode == "hide":
        sem = np.where(m, sem, free)
    z, cls = top_voxels(sem, free=free)
    empty = z < 0
    colors = pal[np.where(empty, 0, cls)].astype(np.float32)  # (X, Y, 3)
    height = np.clip(z, 0, None) / max(Z - 1, 1)
    colors *= (shade + (1 - shade) * height)[..., None]
    out = np.round(colors).astype(np.uint8)
    if m is not None and mask_mode == "grey":
        seen = np.take_along_axis(m, np.clip(z, 0, None)[..., None], axis=2)[..., 0]
        grey = ~seen & ~empty
        out[grey] = desaturate(out[grey])
    out[empty] = np.asarray(background, np.uint8)
    out = out[::-1, ::-1]  # rows: +x up; columns: +y left
    if scale > 1:
        out = np.repeat(np.repeat(out, scale, axis=0), scale, axis=1)
    return np.ascontiguousarray(out)
