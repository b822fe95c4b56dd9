"""The one in-memory record the label pipeline sees: a scene's sweeps, poses, boxes and sensors.

Every reader (the synthetic world's sweeps, a rig folder, raw nuScenes through ``occkit prepare``)
builds a :class:`SceneRecord`; the pipeline (:mod:`occkit.labelgen.pipeline`) never reads a
format's files. :func:`check_record` holds every record to the rules a pipeline relies on and
names the source file and field of the first rule broken (docs/labels.md, "Bad input").

Frames (docs/design.md §3): points of a sweep are in its sensor's frame; ``T_ego_from_sensor``
maps them into the ego frame at the sweep's time and ``T_global_from_ego`` into the world.
Boxes are in the world frame: centre of the box, size (length along the heading, width, height),
yaw about +z. The world frame may be georeferenced (UTM, ECEF: millions of metres from its origin), so poses
and box centres are float64, where float32 would step by 0.5 m; the label pipeline moves each scene to a local
origin before anything else (:func:`occkit.labelgen.pipeline.local_record`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from occkit.data.layout_files import rigid
from occkit.shapes import Rows


@dataclass
class Boxes(Rows):
    """The boxes of one sweep, as arrays (``M`` boxes).

    Attributes:
        track: ``(M,)`` int64 track ids, the same object keeps its id across sweeps.
        cls: ``(M,)`` int64 class ids (in the record's class table).
        center: ``(M, 3)`` float64 box centres, world frame.
        size: ``(M, 3)`` float64 (length, width, height), metres.
        yaw: ``(M,)`` float64 heading about +z, world frame, radians.
    """

    track: np.ndarray
    cls: np.ndarray
    center: np.ndarray
    size: np.ndarray
    yaw: np.ndarray

    @staticmethod
    def empty() -> Boxes:
        return Boxes(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0))


@dataclass
class Sweep:
    """One LiDAR sweep.

    Attributes:
        token: the sweep's id (a keyframe's token is its label's token).
        timestamp: microseconds; a scene's sweeps are in increasing order.
        sensor: the LiDAR id, a key of :attr:`SceneRecord.lidars`.
        T_global_from_ego: ``(4, 4)`` float64 ego pose at the sweep.
        points: ``(N, 3)`` float32 returns in the sensor frame.
        intensity: ``(N,)`` float32 return intensities, or None.
        labels: ``(N,)`` int64 class ids, or None (unlabelled sweep).
        keyframe: whether a label is made at this sweep.
        boxes: the objects' boxes at this sweep, or None (no boxes given).
        source: where its points were read from (for messages).
        row: where its token, time, sensor and pose were read from, for messages (a table's row, e.g.
            ``.../sweeps.json: sweeps[3] (token 'a')``); empty: the record's source and the token name it.
        boxes_source: the file its boxes were read from, for messages (empty: as :attr:`row`).
    """

    token: str
    timestamp: int
    sensor: str
    T_global_from_ego: np.ndarray
    points: np.ndarray
    labels: np.ndarray | None = None
    intensity: np.ndarray | None = None
    keyframe: bool = False
    boxes: Boxes | None = None
    source: str = ""
    row: str = ""
    boxes_source: str = ""


@dataclass
class Camera:
    """A camera of the rig: ``K (3, 3)``, ``T_ego_from_cam (4, 4)`` (OpenCV camera axes), image (H, W)."""

    name: str
    K: np.ndarray
    T_ego_from_cam: np.ndarray
    image_size: tuple[int, int]


@dataclass
class SceneRecord:
    """A scene as the label pipeline sees it.

    Attributes:
        name: the scene's name (a folder name under the output).
        sweeps: every sweep, in time order.
        lidars: LiDAR id -> ``(4, 4)`` float64 ``T_ego_from_lidar``.
        cameras: camera name -> :class:`Camera` (empty: no camera mask).
        classes: the class names of the ids in labels and boxes.
        ego_size, ego_center: the ego vehicle's box (length, width, height) and its centre in the
            ego frame; returns inside it are the vehicle itself.
        source: the file or folder the record came from (for messages).
        notes: what the reader says of how it read the scene (how its keyframes were taken, what it
            left out), JSON values: ``report.json`` holds them as the scene's ``recording``.
        warnings: what the reader left out or guessed, a line each: ``occkit label`` says them and
            ``report.json`` lists them among the scene's warnings.
    """

    name: str
    sweeps: list[Sweep]
    lidars: dict[str, np.ndarray]
    cameras: dict[str, Camera] = field(default_factory=dict)
    classes: tuple[str, ...] = ()
    ego_size: tuple[float, float, float] = (4.1, 1.9, 1.8)
    ego_center: tuple[float, float, float] = (0.9, 0.0, 0.9)
    source: str = ""
    notes: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def keyframes(self) -> list[int]:
        """Indices into :attr:`sweeps` of the keyframes."""
        return [i for i, s in enumerate(self.sweeps) if s.keyframe]

    @property
    def has_boxes(self) -> bool:
        return any(s.boxes is not None for s in self.sweeps)

    @property
    def has_labels(self) -> bool:
        return any(s.labels is not None for s in self.sweeps)

    def missing(self) -> list[str]:
        """What this record lacks, and what that costs, one phrase each."""
        out = []
        if not self.has_boxes:
            out.append("no boxes: every point is static (moving objects leave trails the ray casting must erase)")
        if not self.has_labels:
            out.append(
                "no point labels: geometry only (every occupied voxel is class 'others'; the ground fill finds the "
                "ground by its height)"
            )
        if not self.cameras:
            out.append("no cameras: no camera mask (mask_camera is all 0)")
        return out

    def T_global_from_sensor(self, i: int) -> np.ndarray:
        s = self.sweeps[i]
        return s.T_global_from_ego @ self.lidars[s.sensor]


def lower_ego(rec: SceneRecord, height: float, move_box: bool = True) -> SceneRecord:
    """``rec`` with its ego frame moved ``height`` metres down its z axis (a reader's ``--ego-height``: the ego
    origin ``height`` above the ground, KITTI's ``base_link`` at its IMU, so that z = 0 is the ground): each
    ``T_global_from_ego`` times a translation of ``-height`` along z, every LiDAR's and camera's
    ``T_ego_from_sensor`` raised by ``height``, and (``move_box``) the ego box's centre raised by ``height``.
    Points (in their sensor's frame) and boxes (in the world) are unchanged."""
    if not height:
        return rec
    down = np.eye(4)
    down[2, 3] = -float(height)
    up = np.eye(4)
    up[2, 3] = float(height)
    sweeps = [replace(s, T_global_from_ego=np.asarray(s.T_global_from_ego, np.float64) @ down) for s in rec.sweeps]
    lidars = {k: up @ np.asarray(T, np.float64) for k, T in rec.lidars.items()}
    cameras = {
        k: replace(c, T_ego_from_cam=up @ np.asarray(c.T_ego_from_cam, np.float64)) for k, c in rec.cameras.items()
    }
    cx, cy, cz = rec.ego_center
    center = (cx, cy, cz + float(height)) if move_box else rec.ego_center
    return replace(rec, sweeps=sweeps, lidars=lidars, cameras=cameras, ego_center=center)


def check_record(rec: SceneRecord) -> None:
    """Refuse a record a pipeline cannot trust, naming the source and the field (``ValueError``):
    non-finite points, poses that are not rigid, timestamps out of order, an unknown sensor id,
    two sweeps with one token, boxes with a size that is not positive or not finite, a track id
    that changes class or comes twice in a sweep, labels outside the class table, no keyframe.
    A sweep's points are named by their file (:attr:`Sweep.source`), its pose, time and token by its table's
    row (:attr:`Sweep.row`) and its boxes by their file (:attr:`Sweep.boxes_source`), else by the scene's
    source and the sweep's token (they come from the scene's tables, not the points' file).
    These rules are held here alone: a reader checks its files' types, shapes and bounds (its schema,
    :mod:`occkit.schema`) and leaves what they mean together to this check."""
    where = rec.source or rec.name
    if not rec.sweeps:
        raise ValueError(f"{where}: scene {rec.name!r} has no sweep")
    _check_rig(rec, where)
    n_cls = len(rec.classes)
    track_class: dict[int, tuple[int, str]] = {}
    last_t = None
    tokens: dict[str, tuple[int, str]] = {}
    for i, s in enumerate(rec.sweeps):
        row = s.row or f"{where}: sweep {s.token!r}"
        if s.token in tokens:
            j, first = tokens[s.token]
            shared = os.path.commonprefix([first, row])
            other = first[shared.rfind(": ") + 2 :] if s.row and ": " in shared else f"the scene's sweep {j}"
            raise ValueError(f"{row}: the token comes twice in the scene (also {other}; each sweep needs its own)")
        tokens[s.token] = (i, row)
        _check_sweep_pose(rec, s, row, last_t)
        last_t = s.timestamp
        _check_sweep_points(s, s.source or row, n_cls)
        if s.boxes is not None:
            at = f"{s.boxes_source}: sweep {s.token!r}" if s.boxes_source else row
            _check_sweep_boxes(s.boxes, at, n_cls, track_class, s.token)
    if not rec.keyframes:
        raise ValueError(f"{where}: scene {rec.name!r} has no keyframe (a sweep with keyframe: true)")


def _check_rig(rec: SceneRecord, where: str) -> None:
    """Refuse a LiDAR or camera of the rig whose pose is not rigid."""
    lidars = {f"LiDAR {name!r} pose (T_ego_from_lidar)": T for name, T in rec.lidars.items()}
    for what, T in {**lidars, **{f"camera {n!r} pose": c.T_ego_from_cam for n, c in rec.cameras.items()}}.items():
        rigid(T, where, what=what)


def _check_sweep_pose(rec: SceneRecord, s: Sweep, at: str, last_t: int | None) -> None:
    """Refuse a sweep from an unknown sensor, without a rigid ego pose, or not after the previous one."""
    if s.sensor not in rec.lidars:
        raise ValueError(f"{at}: sensor {s.sensor!r} is not a LiDAR of the rig (known: {sorted(rec.lidars)})")
    rigid(s.T_global_from_ego, at, what="ego_pose")  # None too: "not a finite 4x4 matrix"
    if last_t is not None and s.timestamp <= last_t:
        t, prev = (f"{(x - rec.sweeps[0].timestamp) / 1e6:.6f} s" for x in (s.timestamp, last_t))
        raise ValueError(f"{at}: time {t} from the first sweep is not after the previous sweep's {prev} (out of order)")


def _check_sweep_points(s: Sweep, at: str, n_cls: int) -> None:
    """Refuse a sweep's points that are not ``(N, 3)`` and finite, or labels that do not fit them or the class table."""
    if s.points.ndim != 2 or s.points.shape[1] != 3:
        raise ValueError(f"{at}: points must be (N, 3), got {tuple(s.points.shape)}")
    if not np.isfinite(s.points).all():
        bad = int((~np.isfinite(s.points).all(1)).sum())
        raise ValueError(f"{at}: points: {bad} of {len(s.points)} are NaN or infinite")
    if s.labels is not None:
        if s.labels.shape != (len(s.points),):
            raise ValueError(f"{at}: labels has shape {tuple(s.labels.shape)}, points {len(s.points)}")
        outside = ids_outside(s.labels, n_cls)
        if outside:
            raise ValueError(f"{at}: labels: {outside} the class table (0..{n_cls - 1})")


def ids_outside(labels: np.ndarray, n_cls: int) -> str | None:
    """``labels``' ids outside ``0 .. n_cls - 1`` in words, for an error to end with the table's name
    (``"ids -1, 20 at 3 of 1000 points, outside"``), or None (none, or no table). The ids are said as given: a
    -1 is -1 (the largest id, once said in its place, named a valid class)."""
    if not len(labels) or not n_cls:
        return None
    lab = np.asarray(labels).astype(np.int64)
    wrong = (lab < 0) | (lab >= n_cls)
    return f"{ids_at(lab, wrong)}, outside" if wrong.any() else None


def ids_at(labels: np.ndarray, wrong: np.ndarray) -> str:
    """The ids of ``labels`` where ``wrong`` and how many points hold them, in words (``"ids -1, 20 at 3 of 1000
    points"``, the first five ids named)."""
    bad = np.unique(labels[wrong]).tolist()
    ids = ", ".join(map(str, bad[:5])) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
    return f"id{'s' if len(bad) > 1 else ''} {ids} at {int(wrong.sum())} of {len(labels)} points"


#: the longest side a box may have (a road train is some 50 m; a box of 1e9 m held every return of the scene)
BOX_LIMIT_M = 100.0


def _check_sweep_boxes(b: Boxes, at: str, n_cls: int, track_class: dict[int, tuple[int, str]], token: str) -> None:
    """Refuse a sweep's boxes that are not finite, not of positive size or over :data:`BOX_LIMIT_M`, of a class
    outside the table, twice in the sweep, or whose track changed class since an earlier sweep
    (``track_class``: each track's first class and sweep)."""
    finite = np.isfinite(b.center).all(1) & np.isfinite(b.size).all(1) & np.isfinite(b.yaw)
    for bad, why in (
        (~finite, "a centre, size or yaw that is NaN or infinite"),
        (finite & (b.size <= 0).any(1), "a side of 0 or less (sizes must be positive)"),
        (
            finite & (b.size > BOX_LIMIT_M).any(1),
            f"a side over {BOX_LIMIT_M:g} m (no object is that large: other units, or corrupt)",
        ),
    ):
        if bad.any():
            k = int(np.argmax(bad))
            raise ValueError(
                f"{at}: boxes: track {int(b.track[k])} has {why} (center {b.center[k].tolist()}, size "
                f"{b.size[k].tolist()}, yaw {float(b.yaw[k])})"
            )
    if len(set(b.track.tolist())) < len(b):
        tr = next(t for t in b.track.tolist() if b.track.tolist().count(t) > 1)
        raise ValueError(f"{at}: boxes: track {tr} comes twice in the sweep (one box a track a sweep)")
    for tr, c in zip(b.track.tolist(), b.cls.tolist()):
        if n_cls and not 0 <= c < n_cls:
            raise ValueError(f"{at}: boxes: track {tr} has class {c}, outside the class table (0..{n_cls - 1})")
        seen = track_class.setdefault(tr, (c, token))
        if seen[0] != c:
            raise ValueError(f"{at}: boxes: track {tr} changes class from {seen[0]} (sweep {seen[1]!r}) to {c}")
