"""The rig's LiDAR sweeps as the raw scans of KITTI sequences: what ``occkit synth --format semantickitti
--sweeps K`` (and ``--format kitti360``) writes beside the SSC files, so that ``occkit label --reader kitti``
(:mod:`occkit.data.recordings.kitti`; docs/labels.md, "SemanticKITTI and KITTI-360 sequences") reads the same
sweeps as the rig folder.

``occkit synth --sweeps K`` writes the rig folder ``DATA/rig`` first; the KITTI export
(:mod:`occkit.worlds.driving.kitti_export`) then finds it there and writes every sweep of it as one scan, in
time order, so the scan rate is ``(K + 1)`` times the keyframe rate and keyframe ``j`` is scan ``j (K + 1)``
(the SSC frames ``voxels/NNNNNN.*`` and the images are named by that scan index, as SemanticKITTI names
them). SemanticKITTI::

    sequences/<XX>/velodyne/NNNNNN.bin   float32 x y z reflectance, velodyne frame
    sequences/<XX>/labels/NNNNNN.label   uint32: semantic raw id (lower 16 bits) | instance id << 16
                                         (the sweeps the rig labels: keyframes, or every one with
                                         --sweep-labels); moving objects take the moving raw ids 252-259
    sequences/<XX>/poses.txt             camera 0's pose of every scan relative to the first (3x4 rows)
    sequences/<XX>/times.txt             seconds of every scan from the first

KITTI-360 (no per-scan labels: KITTI-360 labels its accumulated clouds, not the scans)::

    data_3d_raw/<seq>/velodyne_points/data/NNNNNNNNNN.bin   float32 x y z reflectance
    data_3d_raw/<seq>/velodyne_points/timestamps.txt        one date-time a scan
    data_poses/<seq>/poses.txt                              frame index + 3x4 pose (GPS/IMU) -> world
    calibration/calib_cam_to_pose.txt                       image_00..03: 3x4 camera -> pose frame

The poses are the rig's as recorded (with ``--pose-noise`` / ``--pose-drift`` their errors). The
synthetic pose (GPS/IMU) frame is the world's ego frame; the velodyne frame sits at the rig's LiDAR
with the ego's axes (as ``kitti_export.T_ego_from_velodyne``).

The truth ``occkit label --quality`` scores labels against (:mod:`occkit.labelgen.truth`) is written
under ``DATA/truth/`` in Occ3D's schema, for both routes through the same sweeps: the world's exact
occupancy on Occ3D's grid in the KITTI reader's ego frame (at the LiDAR's x, y; z = 0 at the ground)
keyed by sequence and scan name, and in the world's ego frame keyed by the rig's scene and token
(``annotations.json``, ``gts/<scene>/<token>/labels.npz``; ``mask_camera`` seen by the one front
camera), with ``extras/<scene>/sweeps.json`` (every sweep's true pose) and each keyframe's ``objects.json``.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from occkit.fileio import load_npz, read_json, save_npz_atomic, write_json_atomic

#: SemanticKITTI's raw id of a class -> its moving raw id (semantic-kitti.yaml: 252 moving-car ..
#: 259 moving-other-vehicle). A moving bicycle or motorcycle takes the rider's moving id (253, 255):
#: SemanticKITTI has no moving id of the two-wheeler itself.
MOVING_RAW: dict[int, int] = {10: 252, 11: 253, 13: 257, 15: 255, 16: 256, 18: 258, 20: 259, 30: 254}
#: A track whose box centre moves more than this over the scene is moving (metres).
MOVING_MIN_TRAVEL = 0.2
#: The folder of the truth of the sequences under the dataset.
TRUTH = "truth"


@dataclass(frozen=True)
class RigScans:
    """The rig folder a KITTI export writes as scans: where it is and how many scans lie from one
    keyframe to the next (``K + 1``)."""

    folder: Path
    stride: int


@dataclass(frozen=True)
class ScanPoses:
    """Every scan's pose, as :func:`write_scans` hands them to its layout's ``write_scan_poses``."""

    cam0: list[np.ndarray]
    """Camera 0 relative to the first scan's camera 0, per scan."""
    ego: list[np.ndarray]
    """The world's ego pose (``T_global_from_ego``), per scan."""
    seconds: list[float]
    """Each scan's time from the first scan's."""
    T_ego_from_cam0: np.ndarray
    """Camera 0's extrinsic."""


def rig_scans(dataset: Path) -> RigScans | None:
    """The rig ``occkit synth --sweeps K`` wrote into ``dataset`` (``dataset/rig``), or None."""
    from occkit.data.rig import read_rig_meta

    rig = Path(dataset) / "rig"
    if not (rig / "rig.json").is_file():
        return None
    meta = read_rig_meta(rig)
    rows = read_json(rig / meta["scenes"][0] / "sweeps.json")["sweeps"]
    keys = [i for i, r in enumerate(rows) if r.get("keyframe")]
    return RigScans(rig, keys[1] - keys[0] if len(keys) > 1 else 1)


def _translation(x: float, y: float, z: float) -> np.ndarray:
    T = np.eye(4)
    T[:3, 3] = (x, y, z)
    return T


def T_ego_from_reader_ego() -> np.ndarray:
    """``(4, 4)``: the KITTI reader's ego frame (the velodyne's x, y; z = 0 at the ground, ego axes) -> the
    world's ego frame."""
    from occkit.worlds.driving.sensors import LIDAR_TRANSLATION

    return _translation(LIDAR_TRANSLATION[0], LIDAR_TRANSLATION[1], 0.0)


def moving_tracks(rec: Any) -> set[int]:
    """The tracks of a rig scene whose box centre travels more than :data:`MOVING_MIN_TRAVEL`."""
    first: dict[int, np.ndarray] = {}
    out: set[int] = set()
    for s in rec.sweeps:
        if s.boxes is None:
            continue
        for tr, c in zip(s.boxes.track.tolist(), s.boxes.center):
            c0 = first.setdefault(tr, c)
            if float(np.linalg.norm(c[:2] - c0[:2])) > MOVING_MIN_TRAVEL:
                out.add(tr)
    return out


def label_words(labels: np.ndarray, instance: np.ndarray, moving: set[int], occ3d_to_raw: Any) -> np.ndarray:
    """SemanticKITTI ``.label`` words ``(N,)`` uint32 of the world's point classes ``labels`` and tracks
    ``instance`` (0 = none): the raw id in the lower 16 bits (:data:`MOVING_RAW` for a point of a moving
    track), the track id in the upper 16."""
    raw = np.asarray(occ3d_to_raw(np.asarray(labels, np.int64)), np.uint32)
    inst = np.asarray(instance, np.int64)
    if len(inst) and int(inst.max()) >= 1 << 16:
        raise ValueError(f"track id {int(inst.max())} does not fit the 16 bits of a .label's instance id")
    mov = np.isin(inst, sorted(moving)) & (inst > 0)
    if mov.any():
        lut = np.arange(1 << 16, dtype=np.uint32)
        for k, v in MOVING_RAW.items():
            lut[k] = v
        raw[mov] = lut[raw[mov]]
    return raw | (np.clip(inst, 0, None).astype(np.uint32) << 16)


def write_scans(out: Path, seq: Path, sequence: str, scene_index: int, scans: RigScans, layout: Any) -> list[str]:
    """Write scene ``scene_index``'s rig sweeps as the scans of ``sequence`` (``seq``: its folder) in
    ``layout``'s files, its per-scan poses and the truth's ``sweeps.json``; returns the scan names."""
    from occkit.data.rig import read_rig_meta, read_scene
    from occkit.worlds.driving.config import scene_name
    from occkit.worlds.driving.sensors import T_ego_from_camera

    meta = read_rig_meta(scans.folder)
    scene = scene_name(scene_index)
    rec = read_scene(meta, scene)
    from occkit.worlds.driving.sensors import LIDAR_TRANSLATION

    T_ev = _translation(*LIDAR_TRANSLATION)  # the velodyne frame: at the rig's LiDAR, the ego's axes
    T_ec = T_ego_from_camera("CAM_FRONT").numpy()
    moving = moving_tracks(rec)
    names = []
    poses = []
    t0 = rec.sweeps[0].timestamp
    for n, s in enumerate(rec.sweeps):
        name = layout.scan_name(n)
        names.append(name)
        T_vs = np.linalg.inv(T_ev) @ rec.lidars[s.sensor]
        pts = s.points.astype(np.float64) @ T_vs[:3, :3].T + T_vs[:3, 3]
        inten = s.intensity if s.intensity is not None else np.zeros(len(pts), np.float32)
        scan = np.concatenate([pts.astype(np.float32), inten.astype(np.float32)[:, None]], 1)
        words = None
        if s.labels is not None and layout.scan_labels:
            inst = load_npz(s.source).get("instance", np.zeros(len(pts), np.int32))
            words = label_words(s.labels, inst, moving, layout.occ3d_to_raw)
        layout.write_scan(out, seq, name, scan.astype("<f4"), None if words is None else words.astype("<u4"))
        poses.append(s.T_global_from_ego @ T_ec)
    cam0 = np.linalg.inv(poses[0])
    ego = [s.T_global_from_ego for s in rec.sweeps]
    seconds = [(s.timestamp - t0) / 1e6 for s in rec.sweeps]
    layout.write_scan_poses(out, seq, ScanPoses([cam0 @ p for p in poses], ego, seconds, T_ec))
    truth = read_json(scans.folder.parent / "extras" / scene / "sweeps.json")
    write_json_atomic(out / TRUTH / "extras" / scene / "sweeps.json", truth)  # the rig route's truth
    truth_rows = truth["sweeps"]
    T_er = T_ego_from_reader_ego()
    write_json_atomic(
        out / TRUTH / "extras" / sequence / "sweeps.json",
        {
            "scene": sequence,
            "sweeps": [
                {
                    "token": f"{sequence}_{name}",
                    "keyframe": bool(r["keyframe"]),
                    "timestamp": int(r["timestamp"]),
                    "T_global_from_ego": np.round(np.asarray(r["T_global_from_ego"]) @ T_er, 9).tolist(),
                }
                for name, r in zip(names, truth_rows)
            ],
        },
    )
    return names


def write_keyframe_truth(
    out: Path,
    keys: list[tuple[str, str, np.ndarray]],
    state: Any,
    K: torch.Tensor,
    depth: torch.Tensor,
    config: Any,
    objects: list,
) -> None:
    """The exact occupancy of one keyframe on Occ3D's grid, under ``out/truth``: for each ``(scene, token,
    T_ego_from_frame)`` of ``keys``, in that frame (the reader's ego frame keyed by sequence and scan, the
    world's keyed by the rig's scene and token), with the keyframe's ``objects.json`` and its index entry
    (``info.json``: ``gt_path``, the LiDAR's extrinsic in that frame). ``state``: the posed world; ``K``,
    ``depth``: the front camera's intrinsics and rendered depth (``mask_camera`` is that camera's)."""
    from occkit.geometry.grid import occ3d_grid
    from occkit.geometry.transforms import pose_from_transform
    from occkit.geometry.visibility import camera_mask_rays, camera_visibility, lidar_visibility, voxel_center_rays
    from occkit.worlds.driving.lidar import simulate_lidar
    from occkit.worlds.driving.occupancy import FREE, semantic_instance_occupancy
    from occkit.worlds.driving.sensors import T_ego_from_camera, T_ego_from_lidar

    grid = occ3d_grid()
    T_ge = state.T_global_from_ego.double()
    T_el = T_ego_from_lidar()
    pts, _, _ = simulate_lidar(state, T_ge @ T_el)
    for scene, token, T_ego_from_frame in keys:
        T_ef = torch.from_numpy(np.asarray(T_ego_from_frame, np.float64))
        T_fe = torch.linalg.inv(T_ef)
        sem, _ = semantic_instance_occupancy(state, grid, T_ge @ T_ef)
        T_fl = T_fe @ T_el
        pts_f = pts[:, :3].double() @ T_fl[:3, :3].T + T_fl[:3, 3]
        mask_l = lidar_visibility(grid, T_fl[:3, 3].float(), pts_f.float())
        T_fc = T_fe @ T_ego_from_camera("CAM_FRONT")
        occupied = sem != FREE
        o, d = camera_mask_rays(K, T_fc, torch.as_tensor(depth), grid, config.mask_ray_stride)
        ov, dv = voxel_center_rays(K, T_fc, tuple(config.image_size), grid, occupied)
        mask_c = camera_visibility(grid, occupied, torch.cat([o, ov]), torch.cat([d, dv]))
        rel = f"gts/{scene}/{token}/labels.npz"
        save_npz_atomic(
            out / TRUTH / rel,
            semantics=sem.numpy().astype(np.uint8),
            mask_lidar=mask_l.numpy().astype(np.uint8),
            mask_camera=mask_c.numpy().astype(np.uint8),
        )
        pose = pose_from_transform(T_fl)
        extrinsic = {
            "translation": [round(float(v), 6) for v in pose["translation"]],
            "rotation": [round(float(v), 9) for v in pose["rotation"]],
        }
        write_json_atomic(
            out / TRUTH / "gts" / scene / token / "info.json",
            {"gt_path": rel, "lidar_sensor": {"extrinsic": extrinsic}},
        )
        write_json_atomic(out / TRUTH / "extras" / scene / token / "objects.json", {"token": token, "objects": objects})


def write_truth_index(out: Path, splits: dict[str, list[str]]) -> None:
    """``out/truth/annotations.json``: the truth's keyframes by scene (Occ3D's schema), from their ``info.json``."""
    root = out / TRUTH
    infos: dict[str, dict[str, Any]] = {}
    for f in sorted(root.glob("gts/*/*/info.json")):
        infos.setdefault(f.parent.parent.name, {})[f.parent.name] = read_json(f)
    write_json_atomic(
        root / "annotations.json",
        {"train_split": splits.get("train", []), "val_split": splits.get("val", []), "scene_infos": infos},
    )


def kitti360_timestamps(seconds: list[float]) -> str:
    """KITTI-360's ``timestamps.txt`` lines (``2013-05-28 08:46:02.902000000``) of scans ``seconds`` from the
    first."""
    base = datetime.datetime(2013, 5, 28, 8, 0, 0)
    lines = []
    for t in seconds:
        d = base + datetime.timedelta(microseconds=int(round(t * 1e6)))
        lines.append(d.strftime("%Y-%m-%d %H:%M:%S.") + f"{d.microsecond * 1000:09d}")
    return "\n".join(lines) + "\n"


def matrix_line(T: np.ndarray) -> str:
    return " ".join(f"{x:.9e}" for x in np.asarray(T, np.float64)[:3].reshape(-1))
