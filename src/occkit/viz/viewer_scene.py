"""What the 3D viewer (``occkit view``) draws, as plain arrays: no server, no browser.

The viewer (:mod:`occkit.viz.viewer`) sends these arrays to the browser; everything that decides
*what* is drawn lives here so that it is tested without one:

- :func:`surface_voxels`: the occupied voxels worth sending: those with a 6-neighbour that is not
  of their own class (free, hidden by a mask, another class, or outside the grid). A voxel buried
  in its own class is never seen, and hiding any class never opens a hole (its neighbours of
  other classes are already drawn).
- :func:`voxel_layer`: one view of a frame (ground truth, prediction or errors) as voxel centres,
  colours in the Occ3D palette and the class of each voxel (what the class toggles act on).
- :func:`compare_grids`: each voxel's kind of error of a prediction against its ground truth.
- :func:`camera_frustums`, :func:`lidar_colors`, :func:`similarity_colors`: cameras, LiDAR points
  and a text query's similarity as the viewer draws them.

Shapes: grids ``(X, Y, Z)`` indexed ``[x, y, z]`` in the ego frame (x forward, y left, z up);
centres ``(M, 3)`` float32 metres; colours ``(M, 3)`` uint8.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from occkit.geometry.grid import Grid
from occkit.geometry.transforms import matrix_to_quat
from occkit.shapes import check_shape
from occkit.viz.bev import desaturate
from occkit.viz.draw import colormap

#: What the viewer shows of a frame: the ground truth, the prediction, both side by side, or the
#: prediction's errors against the ground truth.
VIEWS = ("ground truth", "prediction", "side by side", "errors")
#: Voxels outside the chosen visibility mask: drawn as they are, hidden, or dimmed towards slate.
MASK_MODES = ("show", "hide", "dim")

#: :func:`compare_grids` codes (0: free in both, not drawn).
CORRECT, WRONG_CLASS, MISSED, FALSE_OCCUPIED = 1, 2, 3, 4
ERROR_NAMES = {
    CORRECT: "correct",
    WRONG_CLASS: "wrong class",
    MISSED: "missed (predicted free)",
    FALSE_OCCUPIED: "false occupied (free in ground truth)",
}
#: Colours of the error view: wrong class red, missed blue, false occupied orange; correct voxels
#: keep their class colour, faded towards white so that the errors stand out.
ERROR_COLORS = {WRONG_CLASS: (230, 30, 30), MISSED: (40, 110, 245), FALSE_OCCUPIED: (255, 165, 0)}
CORRECT_FADE = 0.6

#: Gap in metres between the ground truth and the prediction side by side (the prediction sits to
#: the right, at -y).
SIDE_GAP = 4.0


@dataclass
class VoxelLayer:
    """Voxels to draw: ``centres (M, 3)`` float32 metres, ``colors (M, 3)`` uint8, ``classes (M,)``
    uint8 (the class the toggles act on: the ground truth's, else the prediction's)."""

    centres: np.ndarray
    colors: np.ndarray
    classes: np.ndarray

    def __len__(self) -> int:
        return len(self.classes)

    def by_class(self) -> dict[int, VoxelLayer]:
        """The layer split by class (one scene node per class, so a toggle is one message)."""
        return {
            int(c): VoxelLayer(
                self.centres[self.classes == c], self.colors[self.classes == c], self.classes[self.classes == c]
            )
            for c in np.unique(self.classes)
        }


@dataclass
class FrameData:
    """One frame as the viewer needs it.

    ``gt``, ``pred``: ``(X, Y, Z)`` uint8 classes (17 free) or None; ``mask_camera``,
    ``mask_lidar``: ``(X, Y, Z)`` bool or None; ``images``: ``(N, H, W, 3)`` uint8;
    ``intrinsics (N, 3, 3)``, ``T_ego_from_cam (N, 4, 4)`` float; ``lidar (P, 3)`` float32 ego
    frame and ``lidar_labels (P,)`` or None.
    """

    token: str
    scene: str
    gt: np.ndarray | None
    pred: np.ndarray | None = None
    mask_camera: np.ndarray | None = None
    mask_lidar: np.ndarray | None = None
    cam_names: tuple[str, ...] = ()
    images: np.ndarray | None = None
    intrinsics: np.ndarray | None = None
    T_ego_from_cam: np.ndarray | None = None
    lidar: np.ndarray | None = None
    lidar_labels: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


def _check_grid(a: np.ndarray, name: str, shape: tuple[int, int, int] | None = None) -> None:
    if not isinstance(a, np.ndarray) or a.ndim != 3:
        raise ValueError(f"{name}: expected an (X, Y, Z) array, got {getattr(a, 'shape', type(a).__name__)}")
    if shape is not None and a.shape != tuple(shape):
        raise ValueError(f"{name}: has shape {a.shape}, expected {tuple(shape)}")


def surface_voxels(labels: np.ndarray, drawn: np.ndarray) -> np.ndarray:
    """Voxels of ``drawn`` with a 6-neighbour that is not a drawn voxel of the same label.

    Args:
        labels: ``(X, Y, Z)`` integer (e.g. class, or class and error kind combined).
        drawn: ``(X, Y, Z)`` bool, the voxels to draw.
    Returns:
        ``(X, Y, Z)`` bool, a subset of ``drawn``; voxels on the grid's border count as exposed.
    """
    _check_grid(labels, "labels")
    _check_grid(drawn, "drawn", labels.shape)
    key = np.where(drawn, labels.astype(np.int64), -1)
    inner = np.zeros(drawn.shape, bool)
    inner[1:-1, 1:-1, 1:-1] = True
    for axis in range(3):
        for step in (1, -1):
            nb = np.roll(key, step, axis=axis)  # wraps at the border, which `inner` excludes
            inner &= nb == key
    return drawn & ~inner


def compare_grids(gt: np.ndarray, pred: np.ndarray, *, free: int) -> np.ndarray:
    """Each voxel's error kind: ``(X, Y, Z)`` uint8, 0 free in both, :data:`CORRECT`,
    :data:`WRONG_CLASS` (both occupied, classes differ), :data:`MISSED` (occupied in ``gt``, free
    in ``pred``), :data:`FALSE_OCCUPIED` (free in ``gt``, occupied in ``pred``)."""
    _check_grid(gt, "gt")
    _check_grid(pred, "pred", gt.shape)
    go, po = gt != free, pred != free
    kind = np.zeros(gt.shape, np.uint8)
    kind[go & po & (gt == pred)] = CORRECT
    kind[go & po & (gt != pred)] = WRONG_CLASS
    kind[go & ~po] = MISSED
    kind[~go & po] = FALSE_OCCUPIED
    return kind


def error_counts(kind: np.ndarray, visible: np.ndarray | None = None) -> dict[str, int]:
    """Voxels of each error kind of :func:`compare_grids` (within ``visible`` when given)."""
    k = kind if visible is None else kind[visible]
    return {name: int((k == code).sum()) for code, name in ERROR_NAMES.items()}


def voxel_centres(index: np.ndarray, grid: Grid) -> np.ndarray:
    """Centres ``(M, 3)`` float32 of voxel indices ``(M, 3)``: ``index * size + size / 2 + range_min``."""
    lo, vs = np.asarray(grid.range_min, np.float32), np.asarray(grid.voxel_size, np.float32)
    return (index.astype(np.float32) * vs + vs / 2 + lo).astype(np.float32)


def voxel_layer(
    frame: FrameData,
    view: str,
    grid: Grid,
    *,
    mask: str = "none",
    mask_mode: str = "show",
    surface_only: bool = True,
    palette: tuple[tuple[int, int, int], ...],
    free: int,
) -> VoxelLayer:
    """The voxels of ``frame`` to draw for ``view`` (one of :data:`VIEWS`).

    ``"side by side"`` draws the ground truth in place and the prediction shifted to the right
    (-y) by the grid's width plus :data:`SIDE_GAP`. ``"errors"`` draws every voxel occupied in
    either grid: correct ones in their class colour faded towards white, the others in
    :data:`ERROR_COLORS`; its toggle class is the ground truth's (the prediction's for false
    occupied voxels).

    ``mask``: ``"none"``, ``"camera"`` or ``"lidar"``: the frame's visibility mask; voxels outside
    it are drawn (``mask_mode="show"``), left out (``"hide"``) or dimmed towards slate (``"dim"``).
    ``free``: the free class (never drawn). Raises ``ValueError`` naming what is missing (a
    prediction, a mask) or wrong.
    """
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    if mask_mode not in MASK_MODES:
        raise ValueError(f"mask_mode must be one of {MASK_MODES}, got {mask_mode!r}")
    if view == "side by side":
        a, b = (
            voxel_layer(
                frame,
                side,
                grid,
                mask=mask,
                mask_mode=mask_mode,
                surface_only=surface_only,
                palette=palette,
                free=free,
            )
            for side in ("ground truth", "prediction")
        )
        b.centres = b.centres + np.array([0.0, -side_offset(grid), 0.0], np.float32)
        return VoxelLayer(
            np.concatenate([a.centres, b.centres]),
            np.concatenate([a.colors, b.colors]),
            np.concatenate([a.classes, b.classes]),
        )
    need = {"ground truth": ("gt",), "prediction": ("pred",), "errors": ("gt", "pred")}[view]
    for name in need:
        if getattr(frame, name) is None:
            what = "ground truth" if name == "gt" else "prediction"
            raise ValueError(f"frame {frame.token}: the {view!r} view needs a {what}, and this frame has none")
    shape = grid.shape
    for name in ("gt", "pred"):
        if getattr(frame, name) is not None:
            _check_grid(getattr(frame, name), f"frame {frame.token}: {name}", shape)
    visible = None
    if mask != "none":
        if mask not in ("camera", "lidar"):
            raise ValueError(f"mask must be 'none', 'camera' or 'lidar', got {mask!r}")
        visible = getattr(frame, f"mask_{mask}")
        if visible is None:
            raise ValueError(f"frame {frame.token}: no {mask} mask (it comes with the ground truth)")
        _check_grid(visible, f"frame {frame.token}: mask_{mask}", shape)
        visible = visible.astype(bool)
    pal = np.asarray(palette, np.uint8)
    if view == "errors":
        gt, pred = frame.gt, frame.pred
        kind = compare_grids(gt, pred, free=free)
        classes = np.where(gt != free, gt, pred).astype(np.uint8)
        drawn = kind > 0
        key = classes.astype(np.int64) * 8 + kind
    else:
        classes = (frame.gt if view == "ground truth" else frame.pred).astype(np.uint8)
        drawn = classes != free
        key = classes.astype(np.int64)
        kind = None
    if visible is not None and mask_mode == "hide":
        drawn = drawn & visible
    elif visible is not None and mask_mode == "dim":
        key = key * 2 + visible
    if int(classes[drawn].max(initial=0)) >= len(pal):
        raise ValueError(
            f"frame {frame.token}: class {int(classes[drawn].max())} has no colour in a palette of {len(pal)}"
        )
    sel = surface_voxels(key, drawn) if surface_only else drawn
    idx = np.argwhere(sel)  # (M, 3)
    cls = classes[sel]
    colors = pal[cls]
    if kind is not None:
        k = kind[sel]
        colors[k == CORRECT] = np.round(colors[k == CORRECT] * (1 - CORRECT_FADE) + 255 * CORRECT_FADE).astype(np.uint8)
        for code, c in ERROR_COLORS.items():
            colors[k == code] = c
    if visible is not None and mask_mode == "dim":
        out = ~visible[sel]
        colors[out] = desaturate(colors[out])
    return VoxelLayer(voxel_centres(idx, grid), colors, cls)


def side_offset(grid: Grid) -> float:
    """How far (metres, towards -y) the prediction is shifted in the side-by-side view."""
    return float(grid.range_max[1] - grid.range_min[1] + SIDE_GAP)


def box_mesh(size: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """A box centred on the origin: vertices ``(8, 3)`` float32, faces ``(12, 3)`` uint32, wound
    counter-clockwise seen from outside (so that one-sided rendering shows the outer faces)."""
    sx, sy, sz = (s / 2 for s in size)
    v = np.array([[x, y, z] for x in (-sx, sx) for y in (-sy, sy) for z in (-sz, sz)], np.float32)
    # vertex index = 4 * (x > 0) + 2 * (y > 0) + (z > 0)
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = []
    for a, b, c, d in quads:
        faces += [(a, b, c), (a, c, d)]
    return v, np.asarray(faces, np.uint32)


def camera_frustums(intrinsics: np.ndarray, T_ego_from_cam: np.ndarray, hw: tuple[int, int]) -> list[dict]:
    """Each camera as a viewer frustum: ``fov`` (vertical, radians), ``aspect`` (W / H), ``wxyz``
    (camera -> ego rotation, OpenCV axes as the viewer expects) and ``position`` (metres, ego).

    Args:
        intrinsics: ``(N, 3, 3)``. T_ego_from_cam: ``(N, 4, 4)``. hw: the images' ``(H, W)``.
    """
    K = np.asarray(intrinsics, np.float64)
    T = np.asarray(T_ego_from_cam, np.float64)
    check_shape(K, "N 3 3", name="intrinsics")
    check_shape(T, f"{len(K)} 4 4", name="T_ego_from_cam")
    H, W = hw
    q = matrix_to_quat(torch.from_numpy(T[:, :3, :3])).numpy()  # (N, 4) w, x, y, z
    return [
        {
            "fov": float(2 * np.arctan2(H / 2, K[n, 1, 1])),
            "aspect": float(W / H),
            "wxyz": q[n].astype(np.float64),
            "position": T[n, :3, 3].astype(np.float64),
        }
        for n in range(len(K))
    ]


def lidar_colors(
    points: np.ndarray, labels: np.ndarray | None = None, *, palette: tuple[tuple[int, int, int], ...] | None = None
) -> np.ndarray:
    """Colours ``(P, 3)`` uint8 of LiDAR points ``(P, >=3)``: by class in ``palette`` (the data
    format's) when ``labels (P,)`` are given (labels outside the palette grey), else by height
    (-1 .. 5 m)."""
    check_shape(points, "P D", name="points")
    if labels is None:
        return colormap(points[:, 2], -1.0, 5.0)
    if palette is None:
        raise ValueError("lidar_colors: labels given without the palette of their format's classes")
    lab = np.asarray(labels).astype(np.int64)
    if lab.shape != (len(points),):
        raise ValueError(f"labels: expected ({len(points)},), got {lab.shape}")
    pal = np.asarray(palette, np.uint8)
    out = np.full((len(points), 3), 160, np.uint8)
    ok = (lab >= 0) & (lab < len(pal))
    out[ok] = pal[lab[ok]]
    return out


def similarity_colors(
    sim: np.ndarray, vmin: float | None = None, vmax: float | None = None
) -> tuple[np.ndarray, float, float]:
    """Colours ``(M, 3)`` uint8 of cosine similarities ``(M,)`` on the depth colour map, red at
    ``vmin`` (default: the lowest) to violet at ``vmax`` (default: the highest); returns the
    colours and the range used."""
    s = np.asarray(sim, np.float64)
    lo = (float(s.min()) if s.size else 0.0) if vmin is None else vmin
    hi = (float(s.max()) if s.size else 1.0) if vmax is None else vmax
    if hi - lo < 1e-6:
        hi = lo + 1e-6
    return colormap(s, lo, hi), lo, hi


@dataclass(frozen=True)
class ClassStyle:
    """How a class table is drawn: its names, one colour per class and the free class (not drawn).
    :meth:`of` builds it from a dataset format's :class:`occkit.formats.ClassTable` (the format
    decides; there is no default table)."""

    names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    free: int

    @classmethod
    def of(cls, table: Any) -> ClassStyle:
        """The style of a ``ClassTable`` (its palette, or evenly spaced hues when it has none; a table
        without a free class draws every class)."""
        n = table.num_classes
        palette = tuple(table.palette) or _hues(n)
        return cls(tuple(table.names), palette, n if table.free is None else int(table.free))

    @property
    def drawn(self) -> tuple[int, ...]:
        """The class ids drawn (every one but free)."""
        return tuple(c for c in range(len(self.names)) if c != self.free)

    def node_name(self, c: int) -> str:
        """The scene node name of class ``c``'s voxels: its name, else ``class_<c>``."""
        return self.names[c] if 0 <= c < len(self.names) else f"class_{c}"


def _hues(n: int) -> tuple[tuple[int, int, int], ...]:
    import colorsys

    return tuple(
        tuple(int(round(255 * v)) for v in colorsys.hsv_to_rgb(i / max(n, 1), 0.65, 0.9))  # type: ignore[misc]
        for i in range(n)
    )


def images_small(images: np.ndarray, max_width: int = 320) -> np.ndarray:
    """Camera images ``(N, H, W, 3)`` uint8 shrunk by a whole factor to at most ``max_width``
    pixels wide (textures of the frustums: small enough to send every frame)."""
    check_shape(images, "N H W 3", name="images")
    f = max(1, int(np.ceil(images.shape[2] / max_width)))
    return np.ascontiguousarray(images[:, ::f, ::f])
