"""LiDAR sweeps between keyframes, with the boxes of every object, for ``occkit label``.

A scene's keyframes are at ``scene.times`` (2 Hz); ``K`` sweeps lie evenly between two keyframes
(nuScenes' LiDAR spins at 20 Hz: 9 sweeps between its 2 Hz keyframes). Each sweep is the world
posed at its own time (ego and objects move), swept once by the roof LiDAR
(:func:`~occkit.worlds.driving.lidar.simulate_lidar`). What a real rig gets wrong is dialled in by
:class:`SweepNoise`: the recorded ego poses (a random error per sweep and a drift that grows with
time), the boxes (centre, size, yaw), the beam count and flipped point labels. The truth (the
sweeps' true poses) is kept apart, in the dataset's ``extras/<scene>/sweeps.json``.

:func:`scene_record` gives the scene as the label pipeline's :class:`~occkit.data.scene_record.SceneRecord`;
:func:`write_rig` writes the rig folder (docs/labels.md) of a whole world.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from occkit.data.nuscenes_tables import NUSCENES_EGO_CENTER, NUSCENES_EGO_SIZE
from occkit.data.occ3d import NUSCENES_CAMERAS
from occkit.data.rig import write_rig_meta, write_scene
from occkit.data.scene_record import Boxes, Camera, SceneRecord, Sweep
from occkit.fileio import write_json_atomic
from occkit.labels import OCC3D_CLASSES
from occkit.worlds.driving.config import SynthConfig, frame_token
from occkit.worlds.driving.lidar import simulate_lidar
from occkit.worlds.driving.scene import Scene, build_scene, scene_state_at
from occkit.worlds.driving.sensors import T_ego_from_camera, T_ego_from_lidar, camera_intrinsics

#: The world's classes that carry boxes (nuScenes' box categories): barrier .. truck.
BOX_CLASSES = tuple(range(1, 11))
#: The world's ego vehicle (nuScenes' Renault Zoe, about 4.1 x 1.7 m): box size and centre, ego frame.
EGO_SIZE = NUSCENES_EGO_SIZE
EGO_CENTER = NUSCENES_EGO_CENTER
TIMESTAMP_BASE_US = 1_600_000_000_000_000


@dataclass(frozen=True)
class SweepNoise:
    """What the recorded sweeps get wrong (all 0: a perfect rig)."""

    pose_sigma: float = 0.0
    """Standard deviation of each sweep's ego-pose error, metres (x, y, z) and the same in
    degrees of yaw / 10 (0.1 m -> 0.01 degree)."""
    drift: float = 0.0
    """Pose drift, metres per second: the recorded poses slide along a fixed random horizontal
    direction by ``drift * t`` (t from the scene's start)."""
    box_center: float = 0.0
    """Standard deviation of each box centre's error, metres (per box, per sweep)."""
    box_size: float = 0.0
    """Relative standard deviation of each box dimension (0.05 = 5 %)."""
    box_yaw: float = 0.0
    """Standard deviation of each box's yaw error, degrees."""
    label_flips: float = 0.0
    """Fraction of point labels replaced by a random class."""
    seed: int = 0
    """Seed of the noise (independent of the world's seed)."""

    def __post_init__(self) -> None:
        for name in ("pose_sigma", "drift", "box_center", "box_size", "box_yaw", "label_flips"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"SweepNoise: {name} must be a finite number >= 0, got {v!r}")
        if self.label_flips > 1:
            raise ValueError(f"SweepNoise: label_flips is a fraction in [0, 1], got {self.label_flips}")


def sweep_times(scene: Scene, sweeps: int) -> list[tuple[float, int, bool]]:
    """``(time s, keyframe index, is_keyframe)`` of every sweep of a scene, in time order: each
    keyframe, then ``sweeps`` evenly between it and the next (none after the last keyframe)."""
    if sweeps < 0:
        raise ValueError(f"sweeps must be >= 0, got {sweeps}")
    times = [float(t) for t in scene.times]
    out = []
    for i, t in enumerate(times):
        out.append((t, i, True))
        if i + 1 < len(times):
            dt = (times[i + 1] - t) / (sweeps + 1)
            out += [(t + j * dt, i, False) for j in range(1, sweeps + 1)]
    return out


def sweep_token(seed: int, scene_index: int, frame_index: int, j: int) -> str:
    """Token of the ``j``-th sweep after keyframe ``frame_index`` (j = 0: the keyframe's own token)."""
    if j == 0:
        return frame_token(seed, scene_index, frame_index)
    return hashlib.sha1(f"occkit-synth/{seed}/{scene_index}/{frame_index}/sweep{j}".encode()).hexdigest()[:32]


def _yaw_matrix(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rig_cameras(config: SynthConfig) -> dict[str, Camera]:
    """The world's six cameras at the config's image size."""
    return {
        cam: Camera(
            cam,
            camera_intrinsics(cam, config.image_size).numpy(),
            T_ego_from_camera(cam).numpy(),
            tuple(config.image_size),
        )
        for cam in NUSCENES_CAMERAS
    }


def scene_record(
    config: SynthConfig,
    scene_index: int,
    sweeps: int,
    noise: SweepNoise = SweepNoise(),
    beams: int | None = None,
    sweep_labels: bool = False,
    scene: Scene | None = None,
) -> tuple[SceneRecord, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Sweep a scene of the world.

    Args:
        config: the world's options (the scene is :func:`build_scene` of it).
        scene_index: which scene.
        sweeps: sweeps between two keyframes.
        noise: what the recording gets wrong.
        beams: LiDAR beams (default: the config's).
        sweep_labels: label the points of every sweep (default: keyframes only, as nuScenes).
    Returns:
        the record (noisy poses, boxes and labels as recorded; the world's class ids), each
        sweep's true ``T_global_from_ego (4, 4)`` by token, and each sweep's point track ids
        ``(N,)`` int32 by token (0 = ground or a thing without a box).
    """
    scene = build_scene(config, scene_index) if scene is None else scene
    rng = np.random.default_rng([int(noise.seed), int(config.seed), int(scene_index), 0x1AB])
    drift_dir = rng.normal(size=2)
    drift_dir /= max(np.linalg.norm(drift_dir), 1e-9)
    T_el = T_ego_from_lidar()
    out: list[Sweep] = []
    truth: dict[str, np.ndarray] = {}
    tracks: dict[str, np.ndarray] = {}
    counter: dict[int, int] = {}
    n_cls = len(OCC3D_CLASSES) - 1  # the world's labels: every class but free
    for t, fi, is_key in sweep_times(scene, sweeps):
        j = 0 if is_key else counter.get(fi, 0) + 1
        counter[fi] = j
        token = sweep_token(config.seed, scene_index, fi, j)
        state = scene_state_at(scene, fi, time=t)
        T_ge = state.T_global_from_ego.double()
        pts, labels, inst = simulate_lidar(state, T_ge @ T_el, beams=beams)
        T_true = T_ge.numpy()
        T_rec = T_true.copy()
        if noise.pose_sigma > 0 or noise.drift > 0:
            e = rng.normal(scale=noise.pose_sigma, size=3) if noise.pose_sigma > 0 else np.zeros(3)
            e[:2] += drift_dir * noise.drift * t
            dyaw = math.radians(rng.normal(scale=noise.pose_sigma / 10)) if noise.pose_sigma > 0 else 0.0
            T_rec[:3, :3] = _yaw_matrix(dyaw) @ T_rec[:3, :3]
            T_rec[:3, 3] += e
        lab = labels.numpy().astype(np.int64) if (is_key or sweep_labels) else None
        if lab is not None and noise.label_flips > 0 and len(lab):
            flip = rng.random(len(lab)) < noise.label_flips
            lab = lab.copy()
            lab[flip] = rng.integers(0, n_cls, int(flip.sum()))
        out.append(
            Sweep(
                token=token,
                timestamp=TIMESTAMP_BASE_US + scene_index * 600_000_000 + int(round(t * 1e6)),
                sensor="LIDAR_TOP",
                T_global_from_ego=T_rec,
                points=pts[:, :3].numpy().astype(np.float32),
                labels=lab,
                intensity=pts[:, 3].numpy().astype(np.float32),
                keyframe=is_key,
                boxes=_boxes(state.objects, noise, rng),
            )
        )
        truth[token] = T_true
        tracks[token] = inst.numpy().astype(np.int32)
    rec = SceneRecord(
        name=scene.name,
        sweeps=out,
        lidars={"LIDAR_TOP": T_el.numpy()},
        cameras=rig_cameras(config),
        classes=tuple(OCC3D_CLASSES[:-1]),
        ego_size=EGO_SIZE,
        ego_center=EGO_CENTER,
        source=f"synthetic world seed {config.seed} {scene.name}",
    )
    return rec, truth, tracks


def _boxes(objects: list[dict], noise: SweepNoise, rng: np.random.Generator) -> Boxes:
    objs = [o for o in objects if int(o["class_id"]) in BOX_CLASSES]
    if not objs:
        return Boxes.empty()
    b = Boxes(
        track=np.array([int(o["instance"]) for o in objs], np.int64),
        cls=np.array([int(o["class_id"]) for o in objs], np.int64),
        center=np.array([o["center"] for o in objs], np.float64),
        size=np.array([o["size"] for o in objs], np.float64),
        yaw=np.array([o["yaw"] for o in objs], np.float64),
    )
    m = len(b)
    if noise.box_center > 0:
        b.center = b.center + rng.normal(scale=noise.box_center, size=(m, 3))
    if noise.box_size > 0:
        b.size = b.size * np.clip(1.0 + rng.normal(scale=noise.box_size, size=(m, 3)), 0.2, None)
    if noise.box_yaw > 0:
        b.yaw = b.yaw + np.radians(rng.normal(scale=noise.box_yaw, size=m))
    return b


def write_rig(
    dataset: str | os.PathLike,
    config: SynthConfig,
    sweeps: int,
    noise: SweepNoise = SweepNoise(),
    beams: int | None = None,
    sweep_labels: bool = False,
    rig_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> Path:
    """Write the rig folder of every scene of the world (default ``<dataset>/rig``) and each
    scene's true sweep poses in ``<dataset>/extras/<scene>/sweeps.json`` (the truth the quality
    report uses: the sensor origins that could see a voxel)."""
    root = Path(rig_dir) if rig_dir is not None else Path(dataset) / "rig"
    names = []
    first: SceneRecord | None = None
    for i in range(config.scenes):
        with torch.no_grad():
            rec, truth, tracks = scene_record(config, i, sweeps, noise, beams, sweep_labels)
        write_scene(root, rec, instance=tracks)
        write_json_atomic(
            Path(dataset) / "extras" / rec.name / "sweeps.json",
            {
                "scene": rec.name,
                "sweeps_between_keyframes": sweeps,
                "noise": {k: getattr(noise, k) for k in noise.__dataclass_fields__},
                "sweeps": [
                    {
                        "token": s.token,
                        "keyframe": s.keyframe,
                        "timestamp": s.timestamp,
                        "T_global_from_ego": np.round(truth[s.token], 9).tolist(),
                    }
                    for s in rec.sweeps
                ],
            },
        )
        names.append(rec.name)
        first = first or rec
        if progress:
            print(f"synth: {rec.name}: {len(rec.sweeps)} sweeps written to {root}", flush=True)
    assert first is not None
    write_rig_meta(root, first, names)
    return root
