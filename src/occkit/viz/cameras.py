"""Camera pictures: LiDAR points drawn onto an image, and the surround-camera mosaic."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from occkit.geometry.camera import project
from occkit.geometry.transforms import apply_transform, invert_transform
from occkit.shapes import check_shape
from occkit.viz.draw import BACKGROUND, check_image, colormap, put_text, resize

#: The mosaic arrangement of the six nuScenes cameras: front row, then back row.
NUSCENES_MOSAIC: tuple[tuple[str, ...], ...] = (
    ("CAM_FRONT_LEFT", "CAM_FRONT", "CAM_FRONT_RIGHT"),
    ("CAM_BACK_LEFT", "CAM_BACK", "CAM_BACK_RIGHT"),
)


def images_uint8(images: torch.Tensor, channels_last: bool = True) -> np.ndarray:
    """Float images in [0, 1] (``(..., 3, H, W)``) -> uint8, rounded as occkit writes them to PNG;
    uint8 input passes through. ``channels_last``: ``(..., H, W, 3)``, else ``(..., 3, H, W)``."""
    u8 = images if images.dtype == torch.uint8 else (images.detach().clamp(0, 1) * 255).round().byte()
    return np.ascontiguousarray((u8.movedim(-3, -1) if channels_last else u8).cpu().numpy())


def _as_tensor(x: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).detach().cpu()
    if not torch.is_floating_point(t):
        t = t.double()
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return t.double()


def overlay_lidar(
    image: np.ndarray,
    points_ego: np.ndarray | torch.Tensor,
    K: np.ndarray | torch.Tensor,
    T_ego_from_cam: np.ndarray | torch.Tensor,
    colors: np.ndarray | None = None,
    radius: int = 1,
    min_depth: float = 0.5,
    max_depth: float = 60.0,
) -> np.ndarray:
    """Draw LiDAR points onto a camera image; nearer points cover farther ones.

    Args:
        image: ``(H, W, 3) uint8`` the camera picture (not modified).
        points_ego: ``(P, 3)`` (or ``(P, >=3)``, extra columns ignored) points in the ego frame.
        K: ``(3, 3)`` intrinsics of ``image``.
        T_ego_from_cam: ``(4, 4)`` camera (OpenCV) -> ego.
        colors: optional ``(P, 3) uint8`` per-point colours (e.g. the class palette); default:
            coloured by depth (red near, violet at ``max_depth``).
        radius: points are squares of side ``2 * radius + 1`` pixels.
        min_depth: points nearer than this (or behind the camera) are dropped.
    Returns:
        ``(H, W, 3) uint8``, a new image.
    """
    check_image(image)
    pts = _as_tensor(points_ego, "points_ego")
    check_shape(pts, "P _", name="points_ego")
    if pts.shape[1] < 3:
        raise ValueError(f"points_ego: expected at least 3 columns, got shape {tuple(pts.shape)}")
    K_t = _as_tensor(K, "K")
    check_shape(K_t, "3 3", name="K")
    T = _as_tensor(T_ego_from_cam, "T_ego_from_cam")
    check_shape(T, "4 4", name="T_ego_from_cam")
    if colors is not None:
        colors = np.asarray(colors)
        check_shape(colors, "P 3", name="colors", dims={"P": pts.shape[0]})
        colors = colors.astype(np.uint8)
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    H, W = image.shape[:2]
    out = image.copy()
    if pts.shape[0] == 0:
        return out
    p_cam = apply_transform(invert_transform(T), pts[:, :3])  # (P, 3)
    uv, depth = project(p_cam, K_t)
    uv, depth = uv.numpy(), depth.numpy()
    col = np.floor(uv[:, 0]).astype(np.int64)
    row = np.floor(uv[:, 1]).astype(np.int64)
    keep = (depth > min_depth) & (col >= 0) & (col < W) & (row >= 0) & (row < H)
    if not keep.any():
        return out
    sel = np.flatnonzero(keep)
    sel = sel[np.argsort(depth[sel], kind="stable")]  # near first
    pc = colors[sel] if colors is not None else colormap(depth[sel], 0.0, max_depth)
    # Every pixel each point covers, near points first; the first writer of a pixel wins.
    offs = np.arange(-radius, radius + 1)
    dr, dc = np.meshgrid(offs, offs, indexing="ij")
    rr = row[sel][:, None] + dr.reshape(1, -1)  # (P', S)
    cc = col[sel][:, None] + dc.reshape(1, -1)
    inside = (rr >= 0) & (rr < H) & (cc >= 0) & (cc < W)
    order = np.broadcast_to(np.arange(len(sel))[:, None], rr.shape)
    flat = (rr * W + cc)[inside]
    which = order[inside]
    # stable order: by point (near first), so np.unique's first index is the nearest point
    first = np.argsort(which, kind="stable")
    flat, which = flat[first], which[first]
    pix, idx = np.unique(flat, return_index=True)
    out.reshape(-1, 3)[pix] = pc[which[idx]]
    return out


def camera_mosaic(
    images: np.ndarray | Sequence[np.ndarray],
    names: Sequence[str],
    tile_width: int | None = None,
    labels: bool = True,
    gap: int = 2,
    background: Sequence[int] = BACKGROUND,
) -> np.ndarray:
    """Arrange camera pictures in a grid, labelled with their names.

    The six nuScenes cameras go in the nuScenes arrangement (front-left, front, front-right /
    back-left, back, back-right); any other set goes in the given order, three per row.

    Args:
        images: ``(N, H, W, 3) uint8`` (or a list of N such images, all the same size).
        names: ``N`` camera names.
        tile_width: width of each tile (default: the image width); height keeps the aspect.
    Returns:
        ``(rows * h + (rows - 1) * gap, cols * w + (cols - 1) * gap, 3) uint8``.
    """
    imgs = list(images)
    if len(imgs) != len(names):
        raise ValueError(f"camera_mosaic: {len(imgs)} images but {len(names)} names")
    if not imgs:
        raise ValueError("camera_mosaic: no images")
    for i, im in enumerate(imgs):
        check_image(im, name=f"images[{i}]")
    H, W = imgs[0].shape[:2]
    if any(im.shape[:2] != (H, W) for im in imgs):
        raise ValueError(f"camera_mosaic: images differ in size {sorted({im.shape[:2] for im in imgs})}")
    tw = tile_width or W
    th = max(1, round(H * tw / W))
    by_name = dict(zip(names, imgs))
    if set(names) == {n for row in NUSCENES_MOSAIC for n in row}:
        layout = [list(row) for row in NUSCENES_MOSAIC]
    else:
        layout = [list(names[i : i + 3]) for i in range(0, len(names), 3)]
    cols = max(len(r) for r in layout)
    out = np.empty((len(layout) * th + (len(layout) - 1) * gap, cols * tw + (cols - 1) * gap, 3), np.uint8)
    out[:] = np.asarray(background, np.uint8)
    label_size = max(10, min(16, tw // 22))
    for r, row in enumerate(layout):
        for c, name in enumerate(row):
            tile = resize(by_name[name], tw, th)
            if labels and th >= 3 * label_size:  # no label on tiles too small to hold one
                tile = put_text(tile, name, (0, 0), size=label_size, box=(0, 0, 0))
            y, x = r * (th + gap), c * (tw + gap)
            out[y : y + th, x : x + tw] = tile
    return out
