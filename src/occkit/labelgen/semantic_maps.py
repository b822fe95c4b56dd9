"""The labels rendered into each camera: the 2D semantic maps ``occkit label`` writes beside its labels.

A camera method trained on 3D labels learns faster with a 2D semantic loss on its image features
(``supervised.semantic_2d_weight``, ``loss_sem2d``), which reads per-camera class maps
(``Sample.semantics_2d``). The synthetic world renders them from its scene; a recording has none. So
that the labels carry that supervision too, ``occkit label`` renders each keyframe's labels into each
camera the output layout's reader reads: every pixel's ray (through the pixel's centre, from the camera's
centre, in the label grid's frame) walks the grid (:func:`occkit.metrics.rayiou.cast_rays`, RayIoU's walk) and
the pixel takes the class of the first occupied voxel it meets, the layout's free class where it meets none
(sky, or anything beyond the grid: the synthetic maps' "nothing"). Voxels of the ``ignore`` value (unknown)
are seen through.

They are written where the layout's reader reads the synthetic world's per-camera maps, as its label writer
says (:attr:`occkit.formats.spec.LabelWriter.camera_maps`), each an ``.npz`` of one array ``semantics``
``(H, W)`` uint8 at the camera's recorded image size: Occ3D's, SurroundOcc's and OpenOccupancy's
``extras/<scene>/<token>/<CAM>.npz`` for every camera (the latter two in Occ3D's ids, which their readers map
into their own), SemanticKITTI's ``sequences/<seq>/extras/<frame>.npz`` and KITTI-360's
``data_2d_raw/<seq>/extras/<frame>.npz`` for the layout's one camera (in their learning classes). Each reader
gives them as ``Sample.semantics_2d`` in its layout's classes with ``data.load_extras: true``
(docs/labels.md, "Training on the labels").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from occkit.geometry.grid import Grid

#: the walk's "no voxel met" (free and unknown voxels are given it): above every class id of a table
_NONE = 254


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
    (None: the ego frame). A camera outside the grid's box (SemanticKITTI's grid starts at the LiDAR, a camera
    may sit behind it) sees it from there: the grid is padded with voxels seen through up to its centre
    (:func:`_padded`); one more than :data:`OUTSIDE_LIMIT` metres outside is a ``ValueError`` naming it."""
    from occkit.metrics.rayiou import cast_rays

    sem = np.asarray(semantics)
    if sem.shape != tuple(grid.shape):
        raise ValueError(f"semantics: shape {sem.shape}, but the grid is {tuple(grid.shape)}")
    if sem.dtype.kind not in "ui" or not 0 <= free < _NONE:
        raise ValueError(f"semantics: integer class ids and a free id below {_NONE}, got {sem.dtype} and free {free}")
    T_grid_from_ego = np.eye(4) if T_ego_from_grid is None else np.linalg.inv(np.asarray(T_ego_from_grid, np.float64))
    origins, dirs, sizes = [], [], []
    for name, cam in cameras.items():
        o, d = camera_rays(cam.K, T_grid_from_ego @ np.asarray(cam.T_ego_from_cam, np.float64), cam.image_size)
        out_by = np.maximum(np.asarray(grid.range_min) - o.numpy(), o.numpy() - np.asarray(grid.range_max)).max()
        if out_by > OUTSIDE_LIMIT:
            raise ValueError(
                f"camera {name}: its centre {o.numpy().round(2).tolist()} lies {out_by:.1f} m outside the label grid "
                f"(more than {OUTSIDE_LIMIT:g} m: its extrinsic, or the LiDAR's, is not where the labels are)"
            )
        origins.append(o.expand(len(d), 3))
        dirs.append(d)
        sizes.append(tuple(int(v) for v in cam.image_size))
    if not dirs:
        return {}
    seen_through = (sem == free) | (sem == ignore)
    if (sem[~seen_through] >= _NONE).any() or (sem < 0).any():
        raise ValueError(f"semantics: class ids outside [0, {_NONE}) (besides the ignore value {ignore})")
    vol = np.where(seen_through, _NONE, sem).astype(np.int64)  # the walk's occupied: the ids below _NONE
    starts = torch.cat(origins).contiguous()
    vol, walked = _padded(vol, grid, starts.numpy())
    rays = torch.cat(dirs)
    labels, _ = cast_rays(
        torch.from_numpy(vol)[None, None], torch.zeros(len(rays), dtype=torch.long),
        starts, rays.contiguous(), walked, free=_NONE, threads=1,
    )  # fmt: skip
    flat = labels[0].numpy()
    flat = np.where(flat == _NONE, free, flat).astype(np.uint8)
    out, at = {}, 0
    for name, (H, W) in zip(cameras, sizes):
        out[name] = flat[at : at + H * W].reshape(H, W)
        at += H * W
    return out


#: how far outside the label grid (metres, along an axis) a camera may sit and still be rendered
OUTSIDE_LIMIT = 10.0


def _padded(vol: np.ndarray, grid: Grid, origins: np.ndarray) -> tuple[np.ndarray, Grid]:
    """``vol`` and ``grid`` grown by whole voxels seen through (:data:`_NONE`) until every ray origin of
    ``origins`` ``(R, 3)`` lies strictly inside (the walk starts inside its grid); the voxels keep their
    places, so a ray from outside meets the grid's voxels where it would."""
    lo, hi, vs = (np.asarray(v, np.float64) for v in (grid.range_min, grid.range_max, grid.voxel_size))
    below = np.where(origins.min(0) <= lo, np.floor((lo - origins.min(0)) / vs) + 1, 0).astype(int)
    above = np.where(origins.max(0) >= hi, np.floor((origins.max(0) - hi) / vs) + 1, 0).astype(int)
    if not (below.any() or above.any()):
        return vol, grid
    padded = np.pad(vol, list(zip(below, above)), constant_values=_NONE)
    lo2, hi2 = lo - below * vs, hi + above * vs
    return padded, Grid(tuple(lo2.tolist()), tuple(hi2.tolist()), tuple(vs.tolist()))  # type: ignore[arg-type]


def write_semantic_maps(out: Path, files: dict[str, str], maps: dict[str, np.ndarray]) -> tuple[str, ...]:
    """Write a keyframe's maps (camera name -> ``(H, W)`` uint8) under ``out`` at ``files`` (camera name ->
    path relative to ``out``); returns the files written."""
    from occkit.fileio import save_npz_atomic

    for cam, m in maps.items():
        path = Path(out) / files[cam]
        path.parent.mkdir(parents=True, exist_ok=True)
        save_npz_atomic(path, semantics=np.ascontiguousarray(m, np.uint8))
    return tuple(files[cam] for cam in maps)


def write_keyframe_maps(
    out: Path, target: Any, cameras: dict[str, Any], frame: Any, T_ego_from_grid: np.ndarray | None, where: str
) -> tuple[str, ...]:
    """``occkit label``'s step: a keyframe's maps (:func:`render_semantic_maps` of ``frame.semantics``, a
    :class:`~occkit.formats.spec.FrameLabels` in the output's ids) of the cameras the output format's reader
    reads, written where it reads them and in the ids it reads
    (:attr:`~occkit.formats.spec.LabelWriter.camera_maps`); returns the files written (none for a recording
    without cameras or a format that reads no maps). ``target``: the run's
    :class:`~occkit.labelgen.output.LabelTarget`; ``where`` names the keyframe in errors."""
    from occkit.formats import FormatPluginError, get_format
    from occkit.formats.spec import inside_out

    fmt = get_format(target.format)
    spec = fmt.writers.label_writer.camera_maps if fmt.writers.label_writer is not None else None
    files = spec.files(frame, tuple(cameras)) if spec is not None and cameras else {}
    if not files:
        return ()
    unknown = [cam for cam in files if cam not in cameras]
    if unknown:
        raise FormatPluginError(
            f"format {fmt.name} ({fmt.source}): its label writer's camera_maps name cameras the recording lacks: "
            f"{', '.join(unknown)}"
        )
    for rel in files.values():
        inside_out(out, rel, f"{where}, camera semantic map")
    free = int(target.to_output[-1])
    ignore = 255 if fmt.classes.ignore is None else int(fmt.classes.ignore)
    shown = {cam: cameras[cam] for cam in files}
    maps = render_semantic_maps(frame.semantics, target.grid, free, shown, T_ego_from_grid, ignore)
    if spec.ids is not None:  # into the ids the layout's reader reads (and maps back into its own)
        lut = np.asarray(spec.ids, np.uint8)
        if len(lut) < fmt.classes.num_classes:
            raise FormatPluginError(
                f"format {fmt.name} ({fmt.source}): its label writer's camera_maps.ids give {len(lut)} ids, fewer "
                f"than its {fmt.classes.num_classes} classes"
            )
        maps = {cam: lut[m] for cam, m in maps.items()}
    return write_semantic_maps(out, files, maps)
