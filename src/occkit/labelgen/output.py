"""What ``occkit label`` writes: the output format, its grid and frame, and the recording's classes on its
class table (docs/labels.md, "Classes, grid and output format").

- **Classes.** A recording's class list is its own (:attr:`occkit.data.recordings.spec.Recording.classes`).
  ``--class-map FILE`` (the YAML ``occkit convert --class-map`` reads, :mod:`occkit.formats.classmap`,
  with ``from: rig``) sends each recording class to the first ``to`` class of its common class; a
  recording class under ``drop.from`` (or sent to the table's free class) has its points left out. Every
  recording class must be in one common class or dropped: one left out is refused by name. Without a
  map, a recording whose class names are all names of the output table is mapped by name, in any order.
- **The pipeline's ids.** The pipeline (:mod:`occkit.labelgen.pipeline`) runs on the output table's
  occupied classes, numbered ``0 .. n-1`` in the table's order, ``n`` the free id: the kNN votes and the
  ground fill (``ground_classes``, names of the output table) see the classes the labels are written in.
  The labels are then written in the table's own ids (:attr:`LabelTarget.to_output`).
- **Grid and frame.** The format's own grid (``fmt.grid``) in its own frame (``fmt.label_frame``: ``ego``,
  or ``lidar``: the keyframe LiDAR's extrinsic places the grid); ``--grid`` gives Occ3D's layout another
  voxel size and range, stated in its ``annotations.json`` (:data:`occkit.data.occ3d.GRID_KEY`).
- **Files.** The format's own :class:`~occkit.formats.spec.LabelWriter` writes each keyframe
  (:func:`frame_labels`) and its index (``finish``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from occkit.geometry.grid import Grid

#: ``--grid``'s syntax, said in its errors and help.
GRID_SYNTAX = (
    "VOXEL (metres, Occ3D's range -40 -40 -1 40 40 5.4) or 'VOXEL XMIN YMIN ZMIN XMAX YMAX ZMAX' "
    "(metres, the ego frame)"
)


@dataclass(frozen=True)
class LabelTarget:
    """Where a label run's classes, grid and files go (picklable: each worker gets it).

    Attributes:
        format: the output format's registry name.
        grid: the label grid (the format's, or ``--grid``'s).
        frame: the grid's frame: ``ego`` or ``lidar`` (the keyframe LiDAR's).
        classes: the pipeline's class names, ids ``0 .. n-1`` (the output table's occupied classes).
        to_output: ``(n + 1,)`` pipeline id -> the output table's id (the last: the free id).
        from_recording: recording class id -> pipeline id, -1 for a class whose points are left out.
        recording_classes: the recording's class names.
        class_map: the ``--class-map`` file, or None (mapped by name).
        grid_given: whether ``--grid`` set the grid (stated in the index).
    """

    format: str
    grid: Grid
    frame: str
    classes: tuple[str, ...]
    to_output: tuple[int, ...]
    from_recording: tuple[int, ...]
    recording_classes: tuple[str, ...] = ()
    class_map: str | None = None
    grid_given: bool = False

    @property
    def free(self) -> int:
        """The pipeline's free id."""
        return len(self.classes)

    def record(self) -> dict[str, Any]:
        """What the run's resume key and ``label_config`` say of the target."""
        return {
            "to": self.format,
            "frame": self.frame,
            "grid": {
                "range_min": list(self.grid.range_min),
                "range_max": list(self.grid.range_max),
                "voxel_size": list(self.grid.voxel_size),
            },
            "class_map": self.class_map,
            "recording_classes": list(self.recording_classes),
        }


def parse_grid(text: str) -> Grid:
    """``--grid``: ``VOXEL`` (Occ3D's range at that voxel size) or ``VOXEL XMIN YMIN ZMIN XMAX YMAX ZMAX``;
    a range that is not a whole number of voxels, or anything else, is a one-line ``ValueError``."""
    from occkit.geometry.grid import occ3d_grid

    parts = str(text).replace(",", " ").split()
    try:
        values = [float(v) for v in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 7) or not all(math.isfinite(v) for v in values):
        raise ValueError(f"--grid {text!r}: expected {GRID_SYNTAX}")
    voxel = values[0]
    if voxel <= 0:
        raise ValueError(f"--grid {text!r}: the voxel size must be positive")
    lo, hi = (occ3d_grid().range_min, occ3d_grid().range_max) if len(values) == 1 else (values[1:4], values[4:7])
    for a, b, axis in zip(lo, hi, "xyz"):
        n = (b - a) / voxel
        if b <= a:
            raise ValueError(f"--grid {text!r}: the {axis} range {a} .. {b} is empty or reversed (its end must exceed "
                             "its start: VOXEL XMIN YMIN ZMIN XMAX YMAX ZMAX)")  # fmt: skip
        if abs(n - round(n)) > 1e-6:
            raise ValueError(f"--grid {text!r}: the {axis} range {a} .. {b} is not a whole number of {voxel} m voxels")
    voxels = math.prod(round((b - a) / voxel) for a, b in zip(lo, hi))
    need, have = voxels * BYTES_A_VOXEL, _memory_bytes()
    if have and need > have:
        raise ValueError(
            f"--grid {text!r}: {voxels:.3g} voxels a keyframe, about {need / 2**30:,.0f} GiB while labelling "
            f"(~{BYTES_A_VOXEL} bytes a voxel); this machine has {have / 2**30:.0f} GiB: a larger voxel or a smaller "
            "range"
        )
    return Grid(tuple(float(v) for v in lo), tuple(float(v) for v in hi), (voxel, voxel, voxel))  # type: ignore[arg-type]


#: a label run's peak memory a voxel of the output grid: 1.73 GB resident at OpenOccupancy's 512 x 512 x 40
#: (docs/results/labels.md, speed)
BYTES_A_VOXEL = 165


def _memory_bytes() -> int:
    """The machine's physical memory in bytes (0 where the system does not say)."""
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


def _class_map_lut(path: Path, rec_classes: tuple[str, ...], table: tuple[str, ...], fmt_name: str) -> np.ndarray:
    """Recording id -> output table id (-1: left out) from a class map ``from: rig``; one-line errors
    naming the file and the class."""
    from types import SimpleNamespace

    from occkit.formats.classmap import DROPPED, read_class_map_file, resolve_class_map, side_lut

    path = resolve_class_map(path)
    data = read_class_map_file(path)  # its layout, against its schema (ClassMapFile); one line naming the key
    if data["from"] != "rig":
        raise ValueError(
            f"{path}: from: {data['from']!r}; a class map for occkit label maps the recording's classes: from: rig"
        )
    if data["to"] != fmt_name:
        raise ValueError(f"{path}: to: {data['to']!r}, but the labels are written as {fmt_name} (--to)")
    common, drop = data["common"], data["drop"]
    rig = SimpleNamespace(name="rig", classes=SimpleNamespace(names=rec_classes, free=None))
    lut = side_lut(path, rig, "from", common, drop)  # every recording class in one common class or dropped
    firsts = []
    for name, entry in common.items():
        to = entry["to"]
        if not to:
            raise ValueError(f"{path}: common.{name}.to: [] lists no class of {fmt_name} (the class its voxels take)")
        bad = [c for c in to if c not in table]
        if bad:
            raise ValueError(
                f"{path}: common class {name!r}: {bad[0]!r} is not a class of {fmt_name} ({', '.join(table)}); "
                f"{fmt_name} cannot hold it"
            )
        firsts.append(table.index(to[0]))
    out = np.full(len(rec_classes), -1, np.int64)
    for i in range(len(rec_classes)):
        if lut[i] != DROPPED:
            out[i] = firsts[int(lut[i])]
    return out


#: the point classes' "no class" (SemanticKITTI's, KITTI-360's): dropped without a class map where the output
#: table has no class of that name
UNLABELED = "unlabeled"


def _lut_by_name(rec: tuple[str, ...], table: Any, name: str) -> Any:
    """Without ``--class-map``: each recording class to the output class of its name (-1: dropped). The free
    class's name, and "unlabeled" where the table has no class of that name: the point classes' unlabeled
    (SemanticKITTI's learning class 0, which its voxels name "empty") is no object; its points are dropped as
    the free class's are (docs/labels.md, 'Classes, grid and output format')."""
    free_names = {table.names[table.free]} | ({UNLABELED} - set(table.names))
    unknown = [c for c in rec if c not in table.names and c not in free_names]
    if unknown:
        raise ValueError(
            f"the recording's classes {', '.join(map(repr, unknown[:5]))}{' ...' if len(unknown) > 5 else ''} are "
            f"not classes of {name} ({', '.join(table.names)}): pass --class-map FILE (from: rig, to: {name}; "
            "docs/labels.md, 'Classes, grid and output format')"
        )
    return np.array([-1 if c in free_names else table.names.index(c) for c in rec], np.int64)


def plan_target(
    to: str | None, class_map: str | Path | None, grid: str | None, recording_classes: tuple[str, ...]
) -> LabelTarget:
    """The output of a label run: ``--to`` (default: occkit's default format), ``--class-map``, ``--grid``,
    checked against the recording's classes before anything is written (one-line ``ValueError``)."""
    from occkit.formats import default_format, get_format
    from occkit.formats.registry import format_names

    name = to or default_format().name
    try:
        fmt = get_format(name)
    except (KeyError, ValueError):
        raise ValueError(f"--to {name}: not a format (the formats: {', '.join(format_names())})") from None
    writable = [n for n in format_names() if get_format(n).writers.label_writer is not None]
    if fmt.writers.label_writer is None:
        raise ValueError(
            f"--to {name}: occkit writes no labels in {fmt.display_name} (it writes {', '.join(writable)})"
        )
    table = fmt.classes
    if table.free is None:
        raise ValueError(
            f"--to {name}: {fmt.display_name}'s classes have no free class; it cannot hold labels of free space"
        )
    if fmt.label_frame not in ("ego", "lidar"):
        raise ValueError(
            f"--to {name}: its labels are in the {fmt.label_frame!r} frame; occkit label writes the ego or LiDAR frame"
        )
    the_grid, given = fmt.grid, False
    if grid is not None:
        if fmt.label_frame != "ego" or fmt.writers.label_writer.family != "nuscenes":
            raise ValueError(f"--grid: {name} keeps its own grid; --grid is for Occ3D's layout (--to occ3d)")
        the_grid, given = parse_grid(grid), True
    occupied = [i for i in range(table.num_classes) if i != table.free]
    names = tuple(table.names[i] for i in occupied)
    to_output = (*occupied, table.free)
    rec = tuple(recording_classes)
    if class_map is not None:
        lut = _class_map_lut(Path(class_map), rec, tuple(table.names), name)
    else:
        lut = _lut_by_name(rec, table, name)
    pipeline_id = {t: k for k, t in enumerate(occupied)}
    from_rec = tuple(-1 if t < 0 or t == table.free else pipeline_id[int(t)] for t in lut.tolist())
    return LabelTarget(
        format=name,
        grid=the_grid,
        frame=fmt.label_frame,
        classes=names,
        to_output=tuple(to_output),
        from_recording=from_rec,
        recording_classes=rec,
        class_map=None if class_map is None else str(Path(class_map).resolve()),
        grid_given=given,
    )


def remap_record(rec: Any, target: LabelTarget) -> Any:
    """The scene record in the pipeline's classes (:attr:`LabelTarget.from_recording`): each point label
    and box class mapped; the points of a class left out dropped (with their labels), and the boxes of
    one (their points then join the static scene)."""
    from occkit.data.scene_record import Boxes

    if not target.recording_classes:
        return replace(rec, classes=target.classes)
    lut = np.asarray(target.from_recording, np.int64)
    sweeps = []
    for s in rec.sweeps:
        points, labels, intensity, boxes = s.points, s.labels, s.intensity, s.boxes
        if labels is not None:
            mapped = lut[labels] if len(labels) else labels.astype(np.int64)
            keep = mapped >= 0
            if not keep.all():
                points = points[keep]
                intensity = intensity[keep] if intensity is not None else None
            labels = mapped[keep]
        if boxes is not None:
            cls = lut[boxes.cls] if len(boxes.cls) else boxes.cls
            k = cls >= 0
            boxes = Boxes(boxes.track[k], cls[k], boxes.center[k], boxes.size[k], boxes.yaw[k])
        sweeps.append(replace(s, points=points, labels=labels, intensity=intensity, boxes=boxes))
    return replace(rec, sweeps=sweeps, classes=target.classes)


def T_ego_from_grid(rec: Any, target: LabelTarget) -> np.ndarray | None:
    """Where the grid sits in the ego frame: None for ``ego``; for ``lidar``, the extrinsic of the LiDAR
    the keyframes come from (one LiDAR: a scene whose keyframes come from two is refused)."""
    if target.frame == "ego":
        return None
    sensors = sorted({rec.sweeps[k].sensor for k in rec.keyframes})
    if len(sensors) != 1:
        raise ValueError(
            f"{rec.source or rec.name}: --to {target.format} writes labels in the LiDAR frame, and the keyframes of "
            f"scene {rec.name!r} come from {len(sensors)} LiDARs ({', '.join(sensors)})"
        )
    return np.asarray(rec.lidars[sensors[0]], np.float64)


#: ``occkit label``'s ground check: the share of the ground-class points below the grid that warns.
GROUND_BELOW_SHARE = 0.5


def ground_warning(rec: Any, target: LabelTarget, ground_classes: tuple[str, ...]) -> str | None:
    """One line when most of the scene's ground lies below the grid's lowest voxel, in the grid's frame at
    each keyframe: the ground-class points where the recording labels them, else the lowest dense band
    of returns (the 5th percentile of heights); None when the ground is inside the grid."""
    T_grid = T_ego_from_grid(rec, target)
    T_ge = np.linalg.inv(T_grid) if T_grid is not None else np.eye(4)
    ground = [i for i, n in enumerate(target.classes) if n in ground_classes]
    zs = []
    for k in rec.keyframes:
        s = rec.sweeps[k]
        T = T_ge @ rec.lidars[s.sensor]
        p = s.points.astype(np.float64) @ T[:3, :3].T + T[:3, 3]
        near = (np.abs(p[:, 0]) < 20) & (np.abs(p[:, 1]) < 20)
        if s.labels is not None and ground:
            m = near & np.isin(s.labels, ground)
            if m.any():
                zs.append(p[m, 2])
                continue
        if near.sum() > 20:
            zs.append(np.array([np.percentile(p[near, 2], 5)]))
    if not zs:
        return None
    z = np.concatenate(zs)
    zmin = float(target.grid.range_min[2])
    below = float((z < zmin).mean())
    ground = float(np.median(z))
    where = "the LiDAR frame" if target.frame == "lidar" else "the ego frame"
    if below <= GROUND_BELOW_SHARE:
        voxel = float(target.grid.voxel_size[2])
        if target.frame != "ego" or ground > -voxel:
            return None
        return (  # inside the grid, but a voxel or more under the ego origin: the labels lie that much low
            f"scene {rec.name}: the ground lies {-ground:.2f} m below the ego frame's origin (z {ground:.2f} m, "
            f"{-ground / voxel:.1f} voxels): the ego frame sits above the ground (a base_link at an IMU, as KITTI's "
            f"0.93 m up?), so the labels lie that much low; --ego-height {-ground:.2f} moves it down to the ground "
            "(docs/labels.md, 'Classes, grid and output format')"
        )
    return (
        f"scene {rec.name}: {100 * below:.0f} % of the ground lies below the grid's lowest voxel (z {zmin:g} m in "
        f"{where}; the ground at z {ground:.2f} m): "
        + (
            "the LiDAR extrinsic must give the LiDAR's height above the ground"
            if target.frame == "lidar"
            else "the rig's ego frame must sit on the ground (z = 0 at the road, as nuScenes'); an ego frame whose "
            f"origin is above the ground is moved down by --ego-height H (here about {-ground:.2f}), and a "
            "KITTI-style rig with its origin at the LiDAR needs a LiDAR extrinsic with the LiDAR's height"
        )
        + " (docs/labels.md, 'Classes, grid and output format')"
    )


def derived_masks(semantics_free: np.ndarray, mask_lidar: np.ndarray, mask_camera: np.ndarray) -> dict[str, np.ndarray]:
    """The masks a layout may keep, from a keyframe's label (``semantics_free``: bool, the free voxels):
    ``mask_lidar`` and ``mask_camera`` (Occ3D's) as labelled, ``invalid`` (the KITTI layouts'): the free voxels
    no ray of the keyframe's LiDAR crossed (their emptiness unknown)."""
    return {
        "mask_lidar": mask_lidar.astype(bool),
        "mask_camera": mask_camera.astype(bool),
        "invalid": semantics_free & ~mask_lidar.astype(bool),
    }


def frame_labels(
    target: LabelTarget,
    writer: Any,
    label: Any,
    scene: str,
    token: str,
    index: int,
    record: dict[str, Any],
    sweep: Any = None,
) -> Any:
    """One keyframe's :class:`~occkit.formats.spec.FrameLabels` for the output's writer: the semantics in
    the output table's ids, the masks the writer keeps, ``flow`` where made, its index record (the
    nuScenes family: the ``annotations.json`` entry; the KITTI family: sequence, frame, camera, pose, stamp,
    token), and the keyframe's own LiDAR sweep as recorded (``sweep``, a
    :class:`~occkit.data.scene_record.Sweep`) where the layout keeps it
    (:attr:`~occkit.formats.spec.LabelWriter.sensor_data` ``lidar``): one array, :func:`keyframe_scan`, from which
    each writer makes its files (Occ3D's ``.pcd.bin``, the KITTI layouts' velodyne scans)."""
    from occkit.formats.spec import FrameLabels

    lut = np.asarray(target.to_output, np.uint8)
    sem = lut[label.semantics.astype(np.int64)]
    masks = derived_masks(label.semantics == target.free, label.mask_lidar, label.mask_camera)
    fields = {"flow": label.flow} if label.flow is not None else {}
    if writer.family == "kitti":
        rec = {"sequence": scene, "frame": f"{index:06d}", **record}
        tok = f"{scene}/{index:06d}"
    else:
        rec, tok = record, token
    return FrameLabels(
        token=tok,
        scene=scene,
        semantics=np.ascontiguousarray(sem),
        masks={k: v for k, v in masks.items() if k in writer.masks},
        record=rec,
        fields=fields,
        scan=keyframe_scan(sweep) if sweep is not None and "lidar" in writer.sensor_data else None,
    )


# ---------------------------------------------------------------- the KITTI layouts' index, and the keyframes' scans


def kitti_index_record(rec: Any, sweep: Any) -> dict[str, Any]:
    """What the KITTI layouts' writers (:mod:`occkit.formats._kitti_labels`) hold of a keyframe: its camera
    (the recording's first, in its order: its name ``camera``, ``K``, ``T_cam_from_lidar``, the image size;
    a recording without cameras: ``camera`` and ``K`` None and the identity, camera 0 the LiDAR's frame),
    its pose ``T_world_from_lidar`` (the keyframe LiDAR's in
    the recording's world: ``T_global_from_ego @ T_ego_from_lidar``, from which the sequence's poses are
    written), its ``timestamp`` (microseconds) and ``token`` (``frames.txt``)."""
    cam = next(iter(rec.cameras.values()), None)
    T_el = np.asarray(rec.lidars[sweep.sensor], np.float64)
    out: dict[str, Any] = {
        "token": sweep.token,
        "timestamp": int(sweep.timestamp),
        "T_world_from_lidar": (np.asarray(sweep.T_global_from_ego, np.float64) @ T_el).tolist(),
    }
    if cam is None:
        return {"camera": None, "K": None, "T_cam_from_lidar": np.eye(4).tolist(), "image_size": None, **out}
    T = np.linalg.inv(np.asarray(cam.T_ego_from_cam, np.float64)) @ T_el
    return {
        "camera": cam.name,
        "K": np.round(cam.K, 6).tolist(),
        "T_cam_from_lidar": np.round(T, 9).tolist(),
        "image_size": list(cam.image_size),
        **out,
    }


def kitti_keyframe_image(recording: Any, images: dict[str, Any], token: str, record: dict[str, Any]) -> Path | None:
    """The file of the keyframe's image of the KITTI layouts' camera (``record["camera"]``,
    :func:`kitti_index_record`'s): the path the recording's :attr:`~occkit.data.recordings.spec.RecordingReader.images`
    give the keyframe ``token`` and that camera, through its ``image_links``; None where the recording has no
    image of it (or no camera)."""
    cam = record.get("camera")
    path = (images.get(token) or {}).get(cam) if cam else None
    file = recording.image_file(path) if path else None
    return file if file is not None and file.is_file() else None


def kitti_image_warning(target: LabelTarget, camera: str, missing: list[str], keyframes: int) -> str:
    """The line that says which keyframes (``missing``: ``<frame> (<token>)``) got no image of the layout's
    camera ``camera``."""
    if len(missing) == keyframes:
        return (
            f"the recording has no {camera} image of the keyframes: the {target.format} labels hold none, and a "
            "camera preset (kitti-mono) cannot train on them (docs/labels.md, 'What the labels open in')"
        )
    return (
        f"{len(missing)} of {keyframes} keyframes have no {camera} image ({', '.join(missing[:3])}"
        f"{' ...' if len(missing) > 3 else ''}): a camera preset stops at their missing image files"
    )


def keyframe_scan(sweep: Any) -> np.ndarray:
    """``(N, 4)`` float32 x y z intensity: the keyframe's scan as recorded, in its LiDAR's frame (the KITTI
    layouts' velodyne frame, the nuScenes family's LiDAR sample), intensity 0 where the recording has none:
    :attr:`~occkit.formats.spec.FrameLabels.scan`, which each layout that keeps it writes its own way."""
    points = np.asarray(sweep.points, np.float32).reshape(-1, 3)
    intensity = sweep.intensity if sweep.intensity is not None else np.zeros(len(points), np.float32)
    return np.concatenate([points, np.asarray(intensity, np.float32).reshape(-1, 1)], 1)
