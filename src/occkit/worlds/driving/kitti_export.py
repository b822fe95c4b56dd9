"""The synthetic world written as SemanticKITTI-style monocular SSC sequences.

One sequence per scene, one frame per keyframe (``NNNNNN`` = frame index), in the layout
:mod:`occkit.data.semantickitti` reads::

    sequences/<XX>/calib.txt            P0..P3 = P2 = K [I | 0] (front camera), Tr = velodyne -> camera
    sequences/<XX>/poses.txt            camera poses relative to the sequence's first frame
    sequences/<XX>/image_2/NNNNNN.png   the front camera (CAM_FRONT of the rig, config.image_size)
    sequences/<XX>/voxels/NNNNNN.label  uint16 raw SemanticKITTI ids (256 x 256 x 32, [x, y, z])
    sequences/<XX>/voxels/NNNNNN.invalid  bit-packed: voxels seen by neither the LiDAR nor the camera
    sequences/<XX>/voxels/NNNNNN.occluded bit-packed: voxels the LiDAR rays did not reach
    sequences/<XX>/voxels/NNNNNN.bin    bit-packed: the LiDAR sweep voxelised (the SSC input)
    splits.json                         {"train": [...], "val": [...]} sequence names

With a rig folder in the export (``occkit synth --sweeps K`` writes ``rig/`` first) the sequences
also hold the rig's sweeps as their raw scans (``velodyne/``, ``labels/``, ``times.txt``; KITTI-360's
``data_3d_raw/``, ``data_poses/``), ``poses.txt`` then has a row a scan, the frames are named by their
scan index (keyframe ``j`` is scan ``j (K + 1)``), and ``truth/`` holds the truth of ``occkit label
--quality`` (:mod:`occkit.worlds.driving.kitti_scans`; docs/labels.md, "SemanticKITTI and KITTI-360
sequences").

Beside the official files (which stay exactly as SemanticKITTI has them) are the synthetic
extras the oracle priors read::

    sequences/<XX>/extras/NNNNNN.npz            the front camera's exact maps: depth float32 (H, W)
                                                z-depth (0 = sky), semantics uint8 (H, W) Occ3D
                                                class (17 = sky), instance int32 (H, W) (0 = none)
    sequences/<XX>/extras/NNNNNN.instances.npz  instance int32 (256, 256, 32): the object that gives
                                                each voxel of the .label its class, 0 = none
    sequences/<XX>/extras/NNNNNN.objects.json   {"token": "<XX>/NNNNNN", "sequence", "scene",
                                                "frame", "objects": [...]}: every object within
                                                60 m of the ego or shown by a pixel, a LiDAR point or
                                                a voxel, as the Occ3D layout's objects.json, with
                                                box_ego / velocity_ego in the velodyne frame

Frames: the "velodyne" frame sits at the rig's LiDAR position with the ego's axes (x forward,
y left, z up), as KITTI's; the grid is 256 x 256 x 32 at 0.2 m from [0, -25.6, -2] m in it.
Sequence names follow SemanticKITTI's split: validation scenes are ``08`` (then ``30``, ``31``,
...), training scenes take ``00`` .. ``07``, ``09``, ``10`` (then ``22``, ``23``, ...); ``splits.json``
lists them, and ``SemanticKITTIDataset(root, "val")`` reads it before the official split (08 alone).

Occ3D class -> SemanticKITTI learning class (:data:`OCC3D_TO_SEMANTICKITTI`):

    others -> (raw 99 "other-object": ignored, 255)    barrier -> fence
    bicycle -> bicycle        bus -> other-vehicle      car -> car
    construction_vehicle -> other-vehicle               motorcycle -> motorcycle
    pedestrian -> person      traffic_cone -> (raw 99: ignored)    trailer -> other-vehicle
    truck -> truck            driveable_surface -> road            other_flat -> other-ground
    sidewalk -> sidewalk      terrain -> terrain        manmade -> building
    vegetation -> vegetation  free -> empty

Classes with no SemanticKITTI counterpart are written as raw id 99 ("other-object"), which the
completion evaluation ignores, as it does in the real data. Learning classes go to raw ids
through the official inverse map.

The same world in the SSCBench-KITTI-360 layout (:mod:`occkit.data.kitti360`; ``layout=``
:data:`KITTI360_LAYOUT`): ``data_2d_raw/<2013_05_28_drive_00XX_sync>/`` holds ``image_00/data_rect``,
``voxels/`` (``.label`` raw ids, ``.invalid`` one byte per voxel, ``.bin`` bit-packed; no
``.occluded``), ``cam0_to_world.txt`` and ``extras/``; ``preprocess/labels/<seq>/`` the ``_1_1`` and
``_1_8`` ``.npy`` labels; ``calibration/`` the front camera as ``P_rect_00`` and the velodyne pose
as ``calib_cam_to_velo``. Sequence names follow SSCBench's split (validation ``..._0006_sync`` first,
training ``0000``, ``0002``-``0005``, ``0007``, ``0010``, then unused numbers). Occ3D classes map
as above except that others and traffic_cone become other-object, a scored class of KITTI-360
(:data:`OCC3D_TO_KITTI360`).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from PIL import Image

from occkit.data.semantickitti import SEMANTICKITTI_SPLITS, write_bitpacked, write_calib, write_label
from occkit.fileio import save_npz_atomic, write_bytes_atomic, write_json_atomic, write_text_atomic
from occkit.geometry.grid import semantickitti_grid
from occkit.geometry.transforms import apply_transform, invert_transform, make_transform
from occkit.labels import kitti360_inverse_lut, semantickitti_inverse_lut
from occkit.worlds.driving.config import frame_token
from occkit.worlds.driving.kitti_scans import (
    RigScans,
    ScanPoses,
    T_ego_from_reader_ego,
    rig_scans,
    write_keyframe_truth,
    write_scans,
    write_truth_index,
)

if TYPE_CHECKING:  # the driving package imports this module lazily; no import cycle at run time
    from occkit.worlds.driving.config import SynthConfig

#: Occ3D class (index) -> (SemanticKITTI learning class, SSCBench-KITTI-360 learning class
#: (:data:`occkit.labels.KITTI360_CLASSES`)); -1 = SemanticKITTI's raw 99 "other-object" (ignored).
OCC3D_TO_KITTI_CLASSES: tuple[tuple[int, int], ...] = (
    (-1, 18),  # others -> other-object (ignored in SemanticKITTI)
    (14, 12),  # barrier -> fence
    (2, 2),  # bicycle
    (5, 5),  # bus -> other-vehicle
    (1, 1),  # car
    (5, 5),  # construction_vehicle -> other-vehicle
    (3, 3),  # motorcycle
    (6, 6),  # pedestrian -> person
    (-1, 18),  # traffic_cone -> other-object (ignored in SemanticKITTI)
    (5, 5),  # trailer -> other-vehicle
    (4, 4),  # truck
    (9, 7),  # driveable_surface -> road
    (12, 10),  # other_flat -> other-ground
    (11, 9),  # sidewalk
    (17, 14),  # terrain
    (13, 11),  # manmade -> building
    (15, 13),  # vegetation
    (0, 0),  # free -> empty
)
#: Occ3D class (index) -> SemanticKITTI learning class; -1 = raw 99 "other-object" (ignored).
OCC3D_TO_SEMANTICKITTI: tuple[int, ...] = tuple(kitti for kitti, _ in OCC3D_TO_KITTI_CLASSES)
OTHER_OBJECT_RAW = 99

#: Occ3D class (index) -> SSCBench-KITTI-360 learning class.
OCC3D_TO_KITTI360: tuple[int, ...] = tuple(kitti360 for _, kitti360 in OCC3D_TO_KITTI_CLASSES)


def _occ3d_to_raw(occ3d: np.ndarray, table: tuple[int, ...], inv: np.ndarray) -> np.ndarray:
    lut = np.array([OTHER_OBJECT_RAW if c < 0 else int(inv[c]) for c in table], dtype=np.uint16)
    occ3d = np.asarray(occ3d)
    if occ3d.size and int(occ3d.max()) >= len(lut):
        raise ValueError(f"Occ3D classes must lie in [0, {len(lut) - 1}], got {int(occ3d.max())}")
    return lut[occ3d.astype(np.int64)]


def occ3d_to_semantickitti_raw(occ3d: np.ndarray) -> np.ndarray:
    """Occ3D classes ``(...)`` uint8 in [0, 17] to SemanticKITTI raw ids ``(...)`` uint16."""
    return _occ3d_to_raw(occ3d, OCC3D_TO_SEMANTICKITTI, semantickitti_inverse_lut())


def occ3d_to_kitti360_raw(occ3d: np.ndarray) -> np.ndarray:
    """Occ3D classes ``(...)`` uint8 in [0, 17] to raw ids ``(...)`` uint16 through
    SSCBench-KITTI-360's inverse learning map."""
    return _occ3d_to_raw(occ3d, OCC3D_TO_KITTI360, kitti360_inverse_lut())


def _names(train: list[int], val: list[int], train_names: list[str], val_names: list[str], what: str) -> dict[int, str]:
    if len(train) > len(train_names) or len(val) > len(val_names):
        raise ValueError(f"too many scenes for {what}-style names ({len(train)} train, {len(val)} val)")
    out = {s: train_names[k] for k, s in enumerate(train)}
    out.update({s: val_names[k] for k, s in enumerate(val)})
    return out


def sequence_names(train: list[int], val: list[int]) -> dict[int, str]:
    """Scene index -> sequence name (see the module docstring)."""
    train_names = list(SEMANTICKITTI_SPLITS["train"]) + [f"{i:02d}" for i in range(22, 30)]
    val_names = ["08"] + [f"{i:02d}" for i in range(30, 100)]
    return _names(train, val, train_names, val_names, "SemanticKITTI")


def kitti360_sequence_names(train: list[int], val: list[int]) -> dict[int, str]:
    """Scene index -> SSCBench-KITTI-360 sequence name: validation ``2013_05_28_drive_0006_sync``
    then ``..._0030_sync`` on; training SSCBench's seven, then ``..._0011_sync`` .. ``..._0029_sync``."""
    from occkit.data.kitti360 import KITTI360_SPLITS, sequence_name

    train_names = list(KITTI360_SPLITS["train"]) + [sequence_name(i) for i in range(11, 30)]
    val_names = list(KITTI360_SPLITS["val"]) + [sequence_name(i) for i in range(30, 100)]
    return _names(train, val, train_names, val_names, "SSCBench-KITTI-360")


class FrameVoxels(NamedTuple):
    """A frame's voxel files, ``(256, 256, 32)`` each: the raw label ids and three masks."""

    raw: np.ndarray
    invalid: np.ndarray
    occluded: np.ndarray
    occupancy: np.ndarray
    """The input occupancy (the LiDAR points voxelised: the ``.bin`` file)."""


@dataclass(frozen=True)
class KittiLayout:
    """Where and how the synthetic world's KITTI-style files are written: SemanticKITTI's files
    (this class, :data:`SEMANTICKITTI_LAYOUT`); :class:`Kitti360Layout` writes what differs."""

    name: str
    """The layout's name in messages."""
    sequences: str
    """The folder of the sequences under the export."""
    images: str
    """The folder of a sequence's camera images under the sequence's folder."""
    sequence_names: Callable[[list[int], list[int]], dict[int, str]]
    """Scene index -> sequence name, from the training and validation scene indices."""
    occ3d_to_raw: Callable[[np.ndarray], np.ndarray]
    """Occ3D classes -> the layout's raw label ids."""

    def sequence_dir(self, out: Path, sequence: str) -> Path:
        return out / self.sequences / sequence

    def image_path(self, seq: Path, frame: str) -> Path:
        return seq / self.images / f"{frame}.png"

    def write_calibration(
        self, out: Path, seq: Path, P2: np.ndarray, Tr: np.ndarray, image_size: tuple[int, int]
    ) -> None:
        write_calib(seq / "calib.txt", P2, Tr)

    def write_voxels(self, out: Path, seq: Path, frame: str, voxels: FrameVoxels) -> None:
        write_label(seq / "voxels" / f"{frame}.label", voxels.raw)
        write_bitpacked(seq / "voxels" / f"{frame}.invalid", voxels.invalid)
        write_bitpacked(seq / "voxels" / f"{frame}.occluded", voxels.occluded)
        write_bitpacked(seq / "voxels" / f"{frame}.bin", voxels.occupancy)

    def write_poses(self, seq: Path, poses: list[torch.Tensor]) -> None:
        """``poses``: each frame's camera pose relative to the first, ``(4, 4)`` float64."""
        write_text_atomic(
            seq / "poses.txt", "".join(" ".join(f"{x:.9e}" for x in p[:3].reshape(-1).tolist()) + "\n" for p in poses)
        )

    #: Whether the layout holds each scan's point labels (SemanticKITTI's ``labels/``; KITTI-360 has none).
    scan_labels = True

    def scan_name(self, index: int) -> str:
        """The file stem of scan ``index`` (SemanticKITTI: 6 digits)."""
        return f"{index:06d}"

    def write_scan(self, out: Path, seq: Path, name: str, scan: np.ndarray, words: np.ndarray | None) -> None:
        """One scan: ``scan (N, 4)`` float32 x y z reflectance (velodyne frame), ``words (N,)`` uint32 labels."""
        write_bytes_atomic(seq / "velodyne" / f"{name}.bin", scan.tobytes())
        if words is not None:
            write_bytes_atomic(seq / "labels" / f"{name}.label", words.tobytes())

    def write_scan_poses(self, out: Path, seq: Path, poses: ScanPoses) -> None:
        """Every scan's pose: camera 0's (``poses.cam0``) and the scans' times."""
        self.write_poses(seq, [torch.from_numpy(p) for p in poses.cam0])
        write_text_atomic(seq / "times.txt", "".join(f"{t:.9e}\n" for t in poses.seconds))

    def done(self, out: Path) -> bool:
        """A finished export is there (its ``splits.json``)."""
        return (out / "splits.json").exists()

    def started(self, out: Path) -> Path | None:
        """The folder a started export leaves, if there."""
        p = out / self.sequences
        return p if p.exists() else None


class Kitti360Layout(KittiLayout):
    """The SSCBench-KITTI-360 layout's files (:mod:`occkit.data.kitti360`), and KITTI-360's raw scans,
    poses and calibration (``data_3d_raw/``, ``data_poses/``, ``calibration/calib_cam_to_pose.txt``)."""

    scan_labels = False

    def scan_name(self, index: int) -> str:
        return f"{index:010d}"

    def write_scan(self, out: Path, seq: Path, name: str, scan: np.ndarray, words: np.ndarray | None) -> None:
        write_bytes_atomic(out / "data_3d_raw" / seq.name / "velodyne_points" / "data" / f"{name}.bin", scan.tobytes())

    def write_scan_poses(self, out: Path, seq: Path, poses: ScanPoses) -> None:
        from occkit.worlds.driving.kitti_scans import kitti360_timestamps, matrix_line

        self.write_poses(seq, [torch.from_numpy(p) for p in poses.cam0])
        raw = out / "data_3d_raw" / seq.name / "velodyne_points"
        write_text_atomic(raw / "timestamps.txt", kitti360_timestamps(poses.seconds))
        # the pose (GPS/IMU) frame of the synthetic car is its ego frame
        write_text_atomic(
            out / "data_poses" / seq.name / "poses.txt",
            "".join(f"{i} {matrix_line(T)}\n" for i, T in enumerate(poses.ego)),
        )
        write_text_atomic(
            out / "calibration" / "calib_cam_to_pose.txt",
            "".join(f"image_0{c}: {matrix_line(poses.T_ego_from_cam0)}\n" for c in range(4)),
        )

    def write_calibration(
        self, out: Path, seq: Path, P2: np.ndarray, Tr: np.ndarray, image_size: tuple[int, int]
    ) -> None:
        from occkit.data.kitti360 import write_calibration

        write_calibration(out, P2, np.linalg.inv(np.asarray(Tr, dtype=np.float64)), image_size)

    def write_voxels(self, out: Path, seq: Path, frame: str, voxels: FrameVoxels) -> None:
        from occkit.data.kitti360 import labels_from_voxels, write_invalid, write_preprocessed, write_voxel_mask

        label = seq / "voxels" / f"{frame}.label"
        write_label(label, voxels.raw)
        write_invalid(seq / "voxels" / f"{frame}.invalid", voxels.invalid)
        write_voxel_mask(seq / "voxels" / f"{frame}.bin", voxels.occupancy)
        write_preprocessed(out, seq.name, frame, labels_from_voxels(voxels.raw, voxels.invalid, label))

    def write_poses(self, seq: Path, poses: list[torch.Tensor]) -> None:
        from occkit.data.kitti360 import write_cam0_to_world

        write_cam0_to_world(seq / "cam0_to_world.txt", {j: p.numpy() for j, p in enumerate(poses)})


SEMANTICKITTI_LAYOUT = KittiLayout("SemanticKITTI", "sequences", "image_2", sequence_names, occ3d_to_semantickitti_raw)
KITTI360_LAYOUT = Kitti360Layout(
    "SSCBench-KITTI-360", "data_2d_raw", "image_00/data_rect", kitti360_sequence_names, occ3d_to_kitti360_raw
)


def T_ego_from_velodyne() -> torch.Tensor:
    """``(4, 4)`` float64: the KITTI-style LiDAR frame (at the rig's LiDAR, ego axes) -> ego."""
    from occkit.worlds.driving.sensors import LIDAR_TRANSLATION

    return make_transform(torch.eye(3, dtype=torch.float64), torch.tensor(LIDAR_TRANSLATION, dtype=torch.float64))


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def export_semantickitti_scene(
    out_dir: str | os.PathLike,
    config: SynthConfig,
    scene_index: int,
    sequence: str,
    layout: KittiLayout = SEMANTICKITTI_LAYOUT,
    scans: RigScans | None = None,
) -> Path:
    """Write scene ``scene_index`` as ``sequences/<sequence>`` (or where ``layout`` puts it);
    returns the sequence folder. ``scans``: the rig whose sweeps the sequence's scans are
    (:mod:`occkit.worlds.driving.kitti_scans`): frames are then named by their scan index, the poses are
    the scans', and the keyframes' truth is written under ``truth/``."""
    from occkit.worlds.driving import (
        build_scene,
        render_camera,
        scene_state_at,
        semantic_instance_occupancy,
        simulate_lidar,
    )
    from occkit.worlds.driving.occupancy import (
        FREE,
        camera_mask_rays,
        camera_visibility,
        lidar_visibility,
        voxel_center_rays,
    )
    from occkit.worlds.driving.sensors import T_ego_from_camera, T_ego_from_lidar, camera_intrinsics
    from occkit.worlds.driving.writer import object_records, shown_instances

    seq = layout.sequence_dir(Path(out_dir), sequence)
    grid = semantickitti_grid()
    H, W = config.image_size
    K = camera_intrinsics("CAM_FRONT", (H, W))
    T_ec = T_ego_from_camera("CAM_FRONT")
    T_ev = T_ego_from_velodyne()
    T_cv = invert_transform(T_ec) @ T_ev  # velodyne -> camera ("Tr")
    T_vc = invert_transform(T_cv)
    T_el = T_ego_from_lidar()
    T_vl = invert_transform(T_ev) @ T_el  # the simulated LiDAR -> velodyne frame
    P2 = torch.cat([K, torch.zeros(3, 1, dtype=torch.float64)], 1)
    layout.write_calibration(Path(out_dir), seq, P2.numpy(), T_cv.numpy(), (H, W))

    scene = build_scene(config, scene_index)
    poses = []
    T_cam0_inv = None
    for j in range(config.frames):
        state = scene_state_at(scene, j)
        T_ge = state.T_global_from_ego.double()
        T_gv = T_ge @ T_ev
        T_gc = T_ge @ T_ec
        if T_cam0_inv is None:
            T_cam0_inv = invert_transform(T_gc)
        poses.append(T_cam0_inv @ T_gc)
        name = f"{j * (scans.stride if scans else 1):06d}"

        cam = render_camera(state, K, T_gc, H, W, noise_seed=config.seed * 1_000_003 + scene_index * 7919 + j * 31)
        write_bytes_atomic(
            layout.image_path(seq, name),
            _png(cam["rgb"].numpy() if isinstance(cam["rgb"], torch.Tensor) else cam["rgb"]),
        )

        sem, inst_vox = semantic_instance_occupancy(state, grid, T_gv)  # (256, 256, 32) Occ3D classes, instances
        pts_l, _, inst_l = simulate_lidar(state, T_ge @ T_el)
        pts_v = apply_transform(T_vl.float(), pts_l[:, :3].float())  # (N, 3) velodyne frame
        lidar_seen = lidar_visibility(grid, torch.zeros(3), pts_v)
        o, d = camera_mask_rays(K, T_vc, torch.as_tensor(cam["depth"]), grid)
        ov, dv = voxel_center_rays(K, T_vc, (H, W), grid, sem != FREE)
        cam_seen = camera_visibility(grid, sem != FREE, torch.cat([o, ov]), torch.cat([d, dv]))
        raw = layout.occ3d_to_raw(sem.numpy())
        invalid, occluded = (~(lidar_seen | cam_seen)).numpy(), (~lidar_seen).numpy()
        layout.write_voxels(Path(out_dir), seq, name, FrameVoxels(raw, invalid, occluded, grid.voxelize(pts_v).numpy()))
        ex = seq / "extras"
        save_npz_atomic(
            ex / f"{name}.npz",
            depth=cam["depth"].numpy(),
            semantics=cam["semantics"].numpy(),
            instance=cam["instance"].numpy(),
        )
        save_npz_atomic(ex / f"{name}.instances.npz", instance=inst_vox.numpy())
        objects = object_records(state, shown_instances(inst_vox, inst_l, cam["instance"]), T_global_from_frame=T_gv)
        write_json_atomic(
            ex / f"{name}.objects.json",
            {"token": f"{sequence}/{name}", "sequence": sequence, "scene": scene.name, "frame": j, "objects": objects},
        )
        if scans is not None:  # the truth of both routes: the KITTI reader's (by scan) and the rig's (by token)
            keys = [
                (sequence, f"{sequence}_{layout.scan_name(j * scans.stride)}", T_ego_from_reader_ego()),
                (scene.name, frame_token(config.seed, scene_index, j), np.eye(4)),
            ]
            write_keyframe_truth(Path(out_dir), keys, state, K, cam["depth"], config, objects)
    if scans is None:
        layout.write_poses(seq, poses)
    else:
        write_scans(Path(out_dir), seq, sequence, scene_index, scans, layout)
    return seq


def _kitti_worker(job: tuple[str, SynthConfig, int, str, KittiLayout, RigScans | None]) -> dict[str, Any]:
    torch.set_num_threads(1)
    out, config, i, sequence, layout, scans = job
    export_semantickitti_scene(out, config, i, sequence, layout, scans)
    return {"scene": sequence, "frames": config.frames}


def export_semantickitti(
    out_dir: str | os.PathLike,
    config: SynthConfig,
    overwrite: bool = False,
    progress: bool = False,
    resume: bool = False,
    layout: KittiLayout = SEMANTICKITTI_LAYOUT,
) -> Path:
    """Write the synthetic world (``config.scenes`` scenes of ``config.frames`` frames) as
    SemanticKITTI-style sequences under ``out_dir``; returns ``out_dir``. Deterministic for a
    given config. Train / validation scenes as :func:`occkit.worlds.driving.split_scenes`.
    A folder that already holds ``splits.json`` (a finished export) raises unless ``overwrite``.
    ``progress``: a line per scene with the time left; ``resume``: skip the scenes a stopped run
    of the same config finished (as :func:`occkit.worlds.driving.writer.run_scenes`); ``config.workers``
    scenes at once. ``layout``: :data:`SEMANTICKITTI_LAYOUT` or :data:`KITTI360_LAYOUT` (see
    :data:`export_kitti360`)."""
    from occkit.worlds.driving import split_scenes
    from occkit.worlds.driving.writer import DatasetExistsError, drop_scene_records, run_scenes

    out = Path(out_dir)
    started = layout.started(out)
    if layout.done(out) and not overwrite:
        raise DatasetExistsError(
            f"{out}: already holds a {layout.name} export ({started.name if started else 'sequences'}/ and "
            "splits.json; pass overwrite=True to write over it)"
        )
    if started is not None and not overwrite and not resume:
        raise DatasetExistsError(f"{out}: already holds {started.name}/ (pass overwrite=True to write over it)")
    train, val = split_scenes(config.scenes, config.val_fraction)
    names = layout.sequence_names(train, val)
    out.mkdir(parents=True, exist_ok=True)
    scans = rig_scans(out)  # occkit synth --sweeps K wrote its rig first: the sequences get its sweeps as scans
    jobs = [(str(out), config, s, names[s], layout, scans) for s in range(config.scenes)]
    run_scenes(out, config, _kitti_worker, progress=progress, resume=resume, jobs=jobs)
    splits = {"train": [names[s] for s in train], "val": [names[s] for s in val]}
    if scans is not None:
        write_truth_index(out, splits)
    write_json_atomic(out / "splits.json", splits)
    drop_scene_records(out)
    return out


#: The synthetic world in the SSCBench-KITTI-360 layout: :func:`export_semantickitti` with
#: ``layout=``:data:`KITTI360_LAYOUT` (``export_kitti360(out_dir, config, overwrite, progress, resume)``).
export_kitti360 = partial(export_semantickitti, layout=KITTI360_LAYOUT)
