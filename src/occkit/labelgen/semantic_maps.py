"""The labels rendered into each camera: the 2D semantic maps ``occkit label`` writes beside its labels.

A camera method trained on 3D labels learns faster with a 2D semantic loss on its image features
(``supervised.semantic_2d_weight``, ``loss_sem2d``), which reads per-camera class maps
(``Sample.semantics_2d``). The synthetic world renders them from its scene; a recording has none. So
that the labels carry that supervision too, ``occkit label --to occ3d`` renders each keyframe's
labels into each of its cameras: every pixel's ray (through the pixel's centre, from the camera's
centre, in the label grid's frame) walks the grid (:func:`occkit.metrics.rayiou.cast_rays`, RayIoU's walk) and
the pixel takes the class of the first occupied voxel it meets, the free class where it meets none
(sky, or anything beyond the grid: the synthetic maps' "nothing" is Occ3D's free id too). Voxels of
the ``ignore`` value (unknown) are seen through.

They are written where Occ3D's reader looks for per-camera maps
(:mod:`occkit.data.occ3d`): ``extras/<scene>/<token>/<CAM>.npz`` with one array ``semantics``
``(H, W)`` uint8 in the labels' own class ids, the camera's recorded image size. The reader gives
them as ``Sample.semantics_2d`` with ``data.load_extras: true`` (docs/labels.md, "Training on the
labels").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from occkit.geometry.grid import Grid

#: the walk's "no voxel met" (free and unknown voxels are given it): above every class id of a table
_NONE = 254


def semantic_map_files(scene: str, token: str, cameras: Any) -> tuple[str, ...]:
    """The files (relative to the output) of a keyframe's maps, one a camera of ``cameras`` (names)."""
    return tuple(f"extras/{scene}/{token}/{cam}.npz" for cam in cameras)


def camera_rays(
    K: np.ndarray, T_grid_from_cam: np.ndarray, image_size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """A camera's rays through each pixel's centre, row-major: origin ``(3,)`` and unit directions ``(H * W, 3)``
    float64 in the grid's frame. ``K (3, 3)``; ``T_grid_from_cam (4, 4)`` (OpenCV camera axes); ``image_size``
    ``(H, W)``."""
    from occkit.geometry.camera import pixel_centers, pixel_rays

    H, W = (int(v) for v in image_size)
    if H <= 0 or W <= 0:
        raise ValueError(f"image_size: {tuple(image_size)} is not an image size (H, W)")
    T = torch.as_tensor(np.asarray(T_grid_from_cam, np.float64))
    uv = pixel_centers(H, W, dtype=torch.float64).reshape(-1, 2)
    dirs = pixel_rays(uv, torch.as_tensor(np.asarray(K, np.float64))) @ T[:3, :3].T
    return T[:3, 3].clone(), dirs / dirs.norm(dim=-1, keepdim=True)


def render_semantic_maps(
    semantics: np.ndarray,
    grid: Grid,
    free: int,
    cameras: dict[str, Any],
    T_ego_from_grid: np.ndarray | None = None,
    ignore: int = 255,
) -> dict[str, np.ndarray]:
    """Every camera's ``(H, W)`` uint8 map of a keyframe's labels ``semantics (X, Y, Z)`` (ids, ``free`` the
    free class, ``ignore`` unknown and seen through): each pixel the class of the first occupied voxel its
    ray meets, ``free`` where it meets none. ``cameras``: name -> :class:`~occkit.data.scene_record.Camera`
    (``K``, ``T_ego_from_cam``, ``image_size``); ``T_ego_from_grid``: where the grid sits in the ego frame
    (None: the ego frame). A camera outside the grid's box is a ``ValueError`` naming it."""
    from occkit.metrics.rayiou import cast_rays

    sem = np.asarray(semantics)
    if sem.shape != tuple(grid.shape):
        raise ValueError(f"semantics: shape {sem.shape}, but the grid is {tuple(grid.shape)}")
    if sem.dtype.kind not in "ui" or not 0 <= free < _NONE:
        raise ValueError(f"semantics: integer class ids and a free id below {_NONE}, got {sem.dtype} and free {free}")
    T_grid_from_ego = np.eye(4) if T_ego_from_grid is None else np.linalg.inv(np.asarray(T_ego_from_grid, np.float64))
    lo, hi = np.asarray(grid.range_min), np.asarray(grid.range_max)
    origins, dirs, sizes = [], [], []
    for name, cam in cameras.items():
        o, d = camera_rays(cam.K, T_grid_from_ego @ np.asarray(cam.T_ego_from_cam, np.float64), cam.image_size)
        if not ((o.numpy() > lo) & (o.numpy() < hi)).all():
            raise ValueError(f"camera {name}: its centre {o.numpy().round(2).tolist()} lies outside the label grid")
        origins.append(o.expand(len(d), 3))
        dirs.append(d)
        sizes.append(tuple(int(v) for v in cam.image_size))
    if not dirs:
        return {}
    seen_through = (sem == free) | (sem == ignore)
    if (sem[~seen_through] >= _NONE).any() or (sem < 0).any():
        raise ValueError(f"semantics: class ids outside [0, {_NONE}) (besides the ignore value {ignore})")
    vol = np.where(seen_through, _NONE, sem).astype(np.int64)  # the walk's occupied: the ids below _NONE
    rays = torch.cat(dirs)
    labels, _ = cast_rays(
        torch.from_numpy(vol)[None, None], torch.zeros(len(rays), dtype=torch.long),
        torch.cat(origins).contiguous(), rays.contiguous(), grid, free=_NONE, threads=1,
    )  # fmt: skip
    flat = labels[0].numpy()
    flat = np.where(flat == _NONE, free, flat).astype(np.uint8)
    out, at = {}, 0
    for name, (H, W) in zip(cameras, sizes):
        out[name] = flat[at : at + H * W].reshape(H, W)
        at += H * W
    return out


def write_semantic_maps(out: Path, scene: str, token: str, maps: dict[str, np.ndarray]) -> tuple[str, ...]:
    """Write a keyframe's maps (camera name -> ``(H, W)`` uint8) under ``out``; returns their files."""
    from occkit.fileio import save_npz_atomic

    files = semantic_map_files(scene, token, maps)
    for rel, m in zip(files, maps.values()):
        path = Path(out) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        save_npz_atomic(path, semantics=np.ascontiguousarray(m, np.uint8))
    return files


#: the output formats whose reader reads the maps (Occ3D's, in its own class ids; the LiDAR-frame layouts'
#: readers read Occ3D's ids only, and the KITTI layouts none)
MAP_FORMATS = ("occ3d",)


def write_keyframe_maps(
    out: Path, target: Any, cameras: dict[str, Any], frame: Any, T_ego_from_grid: np.ndarray | None, where: str
) -> tuple[str, ...]:
    """``occkit label``'s step: a keyframe's maps (:func:`render_semantic_maps` of ``frame.semantics``, a
    :class:`~occkit.formats.spec.FrameLabels` in the output's ids) written under ``out`` where the output
    format reads them (:data:`MAP_FORMATS`) and the recording has cameras; returns the files written (none
    otherwise). ``target``: the run's :class:`~occkit.labelgen.output.LabelTarget`; ``where`` names the
    keyframe in errors."""
    from occkit.formats.spec import inside_out

    if target.format not in MAP_FORMATS or not cameras:
        return ()
    files = semantic_map_files(frame.scene, frame.token, cameras)
    for rel in files:
        inside_out(out, rel, f"{where}, camera semantic map")
    free = int(target.to_output[-1])
    maps = render_semantic_maps(frame.semantics, target.grid, free, cameras, T_ego_from_grid)
    return write_semantic_maps(out, frame.scene, frame.token, maps)
