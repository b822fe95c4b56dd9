"""The synthetic world written in the nuScenes occupancy layouts labelled in the LiDAR frame
(SurroundOcc, OpenOccupancy / nuScenes-Occupancy; :mod:`occkit.data.lidar_frame`).

The frames, cameras and images are those of the Occ3D export (:mod:`occkit.worlds.driving.writer`:
same sample tokens, poses, renders); the labels are the world's exact occupancy voxelised on the
layout's own grid in the LiDAR frame (the rig's LiDAR, x right, y forward, z up, as nuScenes'
LIDAR_TOP) and written in the layout's label files. Under ``out``::

    annotations.json                Occ3D's schema (cameras -> ego, ego poses, splits) plus, per
                                    frame, lidar_sensor {extrinsic (LiDAR -> ego), token, filename}
                                    and scene_token; no gt_path
    samples/CAM_*/<scene>__<token>__<CAM>.<jpg|png>   the camera images
    <the layout's label files>      (SurroundOcc: nuscenes_occ/samples/...; OpenOccupancy:
                                    nuScenes-Occupancy/scene_<scene token>/occupancy/...)
    extras/<scene>/<token>/<CAM>.npz    depth float32, semantics uint8 (Occ3D classes, 17 = sky),
                                        instance int32, each (H, W), as the Occ3D export
    extras/<scene>/<token>/lidar.npz    points float32 (P, 4) in the LiDAR frame, labels uint8 in
                                        the layout's classes (255 = Occ3D "others"), instance int32
    extras/<scene>/<token>/objects.json  objects as the Occ3D export's, boxes and velocities in
                                        the LiDAR frame

Occ3D class -> layout class: others -> noise (0 in the files, 255 when read: nuScenes' lidarseg
"noise" and the unlabelled classes have no class here either), barrier .. vegetation -> 1 .. 16
(the same names and order), free -> empty (0). The voxelisation samples each voxel at the same
spacing as the Occ3D export (:func:`label_supersample`). The LiDAR sample files themselves
(``samples/LIDAR_TOP/*.pcd.bin``) are not written: occkit reads only their names.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from occkit.data.occ3d import NUSCENES_CAMERAS
from occkit.data.openoccupancy import label_rel_path, openoccupancy_grid, write_openoccupancy_label
from occkit.data.surroundocc import LABEL_DIR, label_file_name, surroundocc_grid, write_surroundocc_label
from occkit.fileio import save_npz_atomic, write_bytes_atomic, write_json_atomic
from occkit.geometry.grid import Grid
from occkit.worlds.driving.config import SynthConfig, frame_token, scene_name

#: Occ3D class (index) -> the layouts' class, read form (255 = ignored).
OCC3D_TO_NUSC_OCC: tuple[int, ...] = (255, *range(1, 17), 0)

#: ``(out, scene token, LiDAR token, LiDAR file name, dense labels) -> label file written``.
LabelWriter = Callable[[Path, str, str, str, np.ndarray], Path]


def occ3d_to_nusc_occ(occ3d: np.ndarray) -> np.ndarray:
    """Occ3D classes (0..17) to the layouts' classes (0 empty, 1..16, 255 ignored), uint8."""
    occ3d = np.asarray(occ3d)
    if occ3d.size and int(occ3d.max()) > 17:
        raise ValueError(f"Occ3D classes must lie in [0, 17], got {int(occ3d.max())}")
    return np.asarray(OCC3D_TO_NUSC_OCC, dtype=np.uint8)[occ3d.astype(np.int64)]


def label_supersample(config: SynthConfig, grid: Grid) -> int:
    """Samples per voxel edge of the labels on ``grid``: the sample spacing of the Occ3D export
    (0.4 m / ``config.occupancy_supersample``) kept, rounded, at least one (SurroundOcc's 0.5 m voxels
    at the default 2: 2 samples per edge; nuScenes-Occupancy's 0.2 m voxels: 1)."""
    return max(1, round(min(grid.voxel_size) * config.occupancy_supersample / 0.4))


def lidar_token(sample_token: str) -> str:
    """The synthetic LIDAR_TOP sample_data token of a frame (32 hex digits)."""
    return hashlib.sha1(f"{sample_token}/LIDAR_TOP".encode()).hexdigest()[:32]


def scene_token(seed: int, scene_index: int) -> str:
    """The synthetic scene token (32 hex digits)."""
    return hashlib.sha1(f"occkit-synth-scene/{seed}/{scene_index}".encode()).hexdigest()[:32]


def lidar_filename(scene: str, token: str) -> str:
    """``samples/LIDAR_TOP/<scene>__<token>__LIDAR_TOP.pcd.bin`` (nuScenes' naming pattern)."""
    return f"samples/LIDAR_TOP/{scene}__{token}__LIDAR_TOP.pcd.bin"


def export_scene(
    out_dir: str | os.PathLike, config: SynthConfig, scene_index: int, grid: Grid, write_label: LabelWriter
) -> dict[str, Any]:
    """Write every frame of one scene; return its ``scene_infos`` entry and description."""
    from occkit.worlds.driving import build_scene, render_camera, scene_state_at, semantic_occupancy, simulate_lidar
    from occkit.worlds.driving.sensors import T_ego_from_camera, T_ego_from_lidar, camera_intrinsics
    from occkit.worlds.driving.writer import (
        TIMESTAMP_BASE_US,
        _encode_image,
        _pose,
        object_records,
        shown_instances,
        torch_threads,
    )

    out = Path(out_dir)
    H, W = config.image_size
    with torch_threads(1), torch.no_grad():
        scene = build_scene(config, scene_index)
        name = scene_name(scene_index)
        s_token = scene_token(config.seed, scene_index)
        tokens = [frame_token(config.seed, scene_index, i) for i in range(config.frames)]
        T_el = T_ego_from_lidar()
        infos: dict[str, Any] = {}
        for i, token in enumerate(tokens):
            state = scene_state_at(scene, i)
            T_ge = state.T_global_from_ego.double()
            T_gl = T_ge @ T_el
            ts = TIMESTAMP_BASE_US + scene_index * 600_000_000 + int(round(float(scene.times[i]) * 1e6))
            ego_pose = _pose(T_ge)
            extras = out / "extras" / name / token
            cam_infos, cam_instances = {}, []
            for ci, cam in enumerate(NUSCENES_CAMERAS):
                K = camera_intrinsics(cam, (H, W))
                T_ec = T_ego_from_camera(cam)
                seed = config.seed * 1_000_003 + scene_index * 7919 + i * 31 + ci
                c = render_camera(state, K, T_ge @ T_ec, H, W, noise_seed=seed)
                rel = f"samples/{cam}/{name}__{token}__{cam}.{config.image_format}"
                rgb = c["rgb"].numpy() if isinstance(c["rgb"], torch.Tensor) else c["rgb"]
                write_bytes_atomic(out / rel, _encode_image(rgb, config.image_format, config.jpeg_quality))
                cam_infos[cam] = {
                    "img_path": rel,
                    "intrinsic": [[round(float(v), 6) for v in row] for row in K],
                    "extrinsic": _pose(T_ec),
                    "ego_pose": ego_pose,
                }
                save_npz_atomic(
                    extras / f"{cam}.npz",
                    depth=c["depth"].numpy(),
                    semantics=c["semantics"].numpy(),
                    instance=c["instance"].numpy(),
                )
                cam_instances.append(c["instance"])
            pts, labels, inst = simulate_lidar(state, T_gl)  # LiDAR frame
            save_npz_atomic(
                extras / "lidar.npz",
                points=pts.float().numpy(),
                labels=occ3d_to_nusc_occ(labels.numpy()),
                instance=inst.numpy(),
            )
            objects = object_records(state, shown_instances(inst, *cam_instances), T_global_from_frame=T_gl)
            write_json_atomic(extras / "objects.json", {"token": token, "scene": name, "objects": objects})
            sem = occ3d_to_nusc_occ(semantic_occupancy(state, grid, T_gl, label_supersample(config, grid)).numpy())
            l_token = lidar_token(token)
            l_file = lidar_filename(name, token)
            write_label(out, s_token, l_token, l_file, sem)
            infos[token] = {
                "timestamp": ts,
                "camera_sensor": cam_infos,
                "ego_pose": ego_pose,
                "lidar_sensor": {"extrinsic": _pose(T_el), "token": l_token, "filename": l_file},
                "scene_token": s_token,
                "prev": tokens[i - 1] if i > 0 else "",
                "next": tokens[i + 1] if i + 1 < len(tokens) else "",
            }
    return {"scene": name, "infos": infos, "description": scene.description}


class _Worker:
    """A picklable per-scene job for :func:`occkit.worlds.driving.writer.run_scenes`."""

    def __init__(self, grid: Grid, write_label: LabelWriter) -> None:
        self.grid, self.write_label = grid, write_label

    def __call__(self, job: tuple[str, SynthConfig, int]) -> dict[str, Any]:
        torch.set_num_threads(1)
        out, config, i = job
        return export_scene(out, config, i, self.grid, self.write_label)


def export_lidar_frame_layout(
    out_dir: str | os.PathLike,
    config: SynthConfig,
    grid: Grid,
    write_label: LabelWriter,
    layout: str,
    overwrite: bool = False,
    progress: bool = False,
    resume: bool = True,
) -> Path:
    """Write the synthetic world (``config.scenes`` scenes of ``config.frames`` frames) under
    ``out_dir`` with labels on ``grid`` in the LiDAR frame, written by ``write_label``; returns
    ``out_dir``. Deterministic for a config; train / validation scenes as
    :func:`occkit.worlds.driving.split_scenes`; scenes a stopped run of the same config finished are
    kept (``resume``). A folder that already holds ``annotations.json`` raises unless ``overwrite``."""
    from occkit.worlds.driving.writer import export_occ3d_schema

    return export_occ3d_schema(
        out_dir, config, _Worker(grid, write_label), overwrite, progress, resume, header={"layout": layout}
    )


def _openoccupancy_label(out: Path, scene_token: str, lidar_token: str, lidar_file: str, dense: np.ndarray) -> Path:
    return write_openoccupancy_label(Path(out) / label_rel_path(scene_token, lidar_token), dense)


def _surroundocc_label(out: Path, scene_token: str, lidar_token: str, lidar_file: str, dense: np.ndarray) -> Path:
    return write_surroundocc_label(Path(out) / LABEL_DIR / label_file_name(lidar_file), dense)


#: Each layout's grid and label writer, by the layout's format name.
_LAYOUTS: dict[str, tuple[Callable[[], Grid], LabelWriter]] = {
    "openoccupancy": (openoccupancy_grid, _openoccupancy_label),
    "surroundocc": (surroundocc_grid, _surroundocc_label),
}


def write_lidar_frame_layout(
    layout: str, out: str | os.PathLike, config: SynthConfig, overwrite: bool = False, progress: bool = False
) -> Path:
    """The world (a :class:`~occkit.worlds.driving.SynthConfig`) under ``out`` in the layout named
    ``layout``: ``"openoccupancy"`` (OpenOccupancy's, :mod:`occkit.data.openoccupancy`) or
    ``"surroundocc"`` (SurroundOcc's, :mod:`occkit.data.surroundocc`); resumable."""
    grid, write_label = _LAYOUTS[layout]
    return export_lidar_frame_layout(out, config, grid(), write_label, layout, overwrite=overwrite, progress=progress)
