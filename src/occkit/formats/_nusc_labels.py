"""The label writers of the nuScenes family (``occkit convert`` between Occ3D-nuScenes, SurroundOcc and
OpenOccupancy): layouts whose frames are indexed by one ``annotations.json`` in Occ3D's schema
(:mod:`occkit.data.occ3d`, :mod:`occkit.data.lidar_frame`), so a converted folder keeps the source's
index, cameras and poses and only its label files change.

Occ3D's labels are in the ego frame, SurroundOcc's and OpenOccupancy's in the LiDAR frame: a frame's
``lidar_sensor.extrinsic`` (LiDAR -> ego) joins them. The synthetic world writes it; real Occ3D
annotations lack it, and ``occkit convert --infos I`` takes it (with the LiDAR file and token, and
the scene token, which the LiDAR-frame layouts name their files by) from the ``infos.json`` that
``occkit prepare nuscenes`` writes.
"""

from __future__ import annotations

import copy
import os
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from occkit.data.info_schema import FramePose
from occkit.fileio import read_json
from occkit.formats.spec import CameraMaps, FrameLabels, LabelWriter, link_inside
from occkit.schema import validate

FAMILY = "nuscenes"
#: What a frame needs from ``--infos`` when its annotations lack it.
_NEED = "pass --infos I, the folder occkit prepare nuscenes wrote for these frames"


def _pose_dict(T: np.ndarray) -> dict[str, list[float]]:
    import torch

    from occkit.geometry.transforms import matrix_to_quat

    q = matrix_to_quat(torch.from_numpy(np.asarray(T, dtype=np.float64)[:3, :3])).tolist()
    return {"translation": [float(v) for v in np.asarray(T)[:3, 3]], "rotation": [float(v) for v in q]}


_INFOS: dict[str, dict[str, dict[str, Any]]] = {}


def _infos(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """``{token: frame}`` of an ``infos.json`` (or its folder), read once."""
    from occkit.fileio import info_where, read_info_list

    key = str(Path(path).resolve())
    if key not in _INFOS:
        p = Path(path)
        p = p / "infos.json" if p.is_dir() else p
        # the frames' tokens are text, each once (read_info_list); the frame's index kept for the messages
        _INFOS[key] = {
            f["token"]: {**f, "_where": info_where(p, i, f)}
            for i, f in enumerate(read_info_list(p, what="nuScenes infos"))
        }
    return _INFOS[key]


def _complete_record(record: dict[str, Any], token: str, infos: str | os.PathLike | None) -> dict[str, Any]:
    """The frame's annotations entry with ``lidar_sensor`` and ``scene_token`` from ``infos`` where it
    lacks them."""
    if infos is None or (record.get("lidar_sensor") and record.get("scene_token")):
        return record
    table = _infos(infos)
    if token not in table:
        raise ValueError(f"{infos}: no frame {token} (its LiDAR extrinsic and file are needed)")
    f = table[token]
    from occkit.fileio import info_text
    from occkit.geometry.transforms import checked_pose

    where = f["_where"]
    for k in ("lidar2ego_translation", "lidar2ego_rotation"):
        if k not in f:
            raise ValueError(f"{where}: no '{k}' (the frame's LiDAR extrinsic is needed)")
    T = checked_pose(f["lidar2ego_translation"], f["lidar2ego_rotation"], "extrinsic", f"{where}: lidar2ego")
    lidar = dict(record.get("lidar_sensor") or {})
    lidar.setdefault("extrinsic", _pose_dict(np.asarray(T, dtype=np.float64)))
    # a path or token that is not text is refused here, not written into the label's name as "None" or "[...]"
    text = {k: info_text(f, k, where, default="") for k in ("lidar_path", "lidar_token", "scene_token")}
    if text["lidar_path"]:  # relative to the nuScenes root: samples/LIDAR_TOP/...
        path = text["lidar_path"]
        lidar.setdefault("filename", "samples/" + path.split("/samples/", 1)[1] if "/samples/" in path else path)
    if text["lidar_token"]:
        lidar.setdefault("token", text["lidar_token"])
    record["lidar_sensor"] = lidar
    if text["scene_token"] and not record.get("scene_token"):
        record["scene_token"] = text["scene_token"]
    got = {"filename": lidar.get("filename"), "token": lidar.get("token"), "scene_token": record.get("scene_token")}
    for field, key in (("filename", "lidar_path"), ("token", "lidar_token"), ("scene_token", "scene_token")):
        _GAPS.pop((token, field), None)
        if not got[field]:  # said by a target that needs it, instead of "pass --infos"
            _GAPS[(token, field)] = f"--infos {where} has no '{key}' either"
    return record


#: ``(token, field)`` -> what ``--infos`` lacks for the frame (the messages of the writers that need it).
_GAPS: dict[tuple[str, str], str] = {}


def _need(token: str, field: str) -> str:
    return _GAPS.get((token, field), _NEED)


def read_frame(dataset: Any, i: int, options: dict[str, Any], masks: tuple[str, ...] = ()) -> FrameLabels:
    """Frame ``i`` of an Occ3D-schema dataset: its labels (``masks``: those the layout keeps), the
    transforms it knows (``ego`` always; ``lidar`` from ``lidar_sensor`` or ``--infos``), its
    images and its annotations entry."""
    f = dataset.frames[i]
    token, scene = f.token, f.scene
    gt = dataset.read_labels(token)
    record = _complete_record(copy.deepcopy(dataset.info(token)), token, options.get("infos"))
    ego_from = {"ego": np.eye(4)}
    if record.get("lidar_sensor", {}).get("extrinsic") is not None:
        extrinsic = record["lidar_sensor"]["extrinsic"]
        where = f"{dataset.annotations_path}: frame {token}: lidar_sensor.extrinsic"
        ego_from["lidar"] = validate(FramePose, extrinsic, where).matrix().numpy()
    sensor_files = {}
    for cam in dataset.cameras:
        try:
            sensor_files[cam] = dataset.image_path(token, cam)
        except (KeyError, ValueError, FileNotFoundError):  # FileNotFoundError: the index records no image
            continue
    lidar = (record.get("lidar_sensor") or {}).get("filename")
    if lidar and (dataset.root / str(lidar)).is_file():
        sensor_files["lidar"] = dataset.root / str(lidar)
    return FrameLabels(
        token=token,
        scene=scene,
        semantics=np.asarray(gt["semantics"], dtype=np.uint8),
        masks={k: np.asarray(gt[k]).astype(bool) for k in masks if k in gt},
        T_ego_from=ego_from,
        sensor_files=sensor_files,
        record=record,
    )


def _lidar_field(frame: FrameLabels, key: str, target: str) -> str:
    value = (frame.record.get("lidar_sensor") or {}).get(key)
    if not value:
        raise ValueError(
            f"frame {frame.token}: {target} names its label files by the LiDAR sample's {key}, and the source's "
            f"annotations have no lidar_sensor.{key}: {_need(frame.token, key)}"
        )
    return str(value)


def occ3d_files(frame: FrameLabels) -> tuple[str, ...]:
    """Occ3D: ``gts/<scene>/<token>/labels.npz``, and the keyframe's LiDAR sweep at its index's
    ``lidar_sensor.filename`` where the frame gives it (:attr:`FrameLabels.scan`, ``occkit label``)."""
    return (f"gts/{frame.scene}/{frame.token}/labels.npz", *sensor_data_files(frame))


def sensor_data_files(frame: FrameLabels) -> tuple[str, ...]:
    """Where the frame's sensor readings go: its sweep (:attr:`FrameLabels.scan`) at the index's
    ``lidar_sensor.filename`` (``samples/<LiDAR>/<token>.pcd.bin``, nuScenes' place); none when the frame
    gives none."""
    if frame.scan is None:
        return ()
    rel = (frame.record.get("lidar_sensor") or {}).get("filename")
    if not isinstance(rel, str) or not rel:
        raise ValueError(f"frame {frame.token}: its LiDAR sweep is to be written, and its record names no file for it")
    return (rel.removeprefix("./"),)


def _write_sensor_data(out: Path, frame: FrameLabels) -> None:
    """The frame's LiDAR sweep as a nuScenes ``.pcd.bin`` (float32 rows x y z intensity ring), atomically."""
    from occkit.fileio import write_bytes_atomic
    from occkit.formats.spec import inside_out, pcd_rows

    for rel in sensor_data_files(frame):
        rows = pcd_rows(frame.scan, frame.token)
        write_bytes_atomic(inside_out(out, rel, f"frame {frame.token}: lidar_sensor.filename"), rows.tobytes())


def surroundocc_files(frame: FrameLabels) -> tuple[str, ...]:
    """SurroundOcc: ``nuscenes_occ/samples/<LiDAR file name>.npy``."""
    from occkit.data.surroundocc import LABEL_DIR, label_file_name

    return (f"{LABEL_DIR}/{label_file_name(_lidar_field(frame, 'filename', 'SurroundOcc'))}",)


def openoccupancy_files(frame: FrameLabels) -> tuple[str, ...]:
    """OpenOccupancy: ``nuScenes-Occupancy/scene_<scene token>/occupancy/<LiDAR token>.npy``."""
    from occkit.data.openoccupancy import label_rel_path

    scene_token = frame.record.get("scene_token")
    if not scene_token:
        raise ValueError(
            f"frame {frame.token}: OpenOccupancy names its label folders by the nuScenes scene token, and the "
            f"source's annotations have no scene_token: {_need(frame.token, 'scene_token')}"
        )
    return (label_rel_path(str(scene_token), _lidar_field(frame, "token", "OpenOccupancy")),)


_link = link_inside


def _link_sensors(out: Path, frame: FrameLabels) -> None:
    """The frame's camera images (at their ``img_path``) and LiDAR file (``samples/...``) linked."""
    cams = frame.record.get("camera_sensor") or {}
    for name, src in frame.sensor_files.items():
        if name == "lidar":
            rel = (frame.record.get("lidar_sensor") or {}).get("filename")
        else:
            rel = (cams.get(name) or {}).get("img_path")
        if rel and Path(src).is_file():
            _link(Path(src), out / str(rel).removeprefix("./"), out)


def write_occ3d(out: Path, frame: FrameLabels) -> None:
    """``labels.npz`` (``semantics``, ``mask_lidar``, ``mask_camera`` uint8, and ``flow`` where the
    frame gives it: ``occkit label --set flow=true``; ``occkit convert`` carries no field to Occ3D):
    the ignored voxels free (17) and unseen; a mask the source lacks is the voxels not ignored."""
    from occkit.fileio import save_npz_atomic
    from occkit.labels import OCC3D_FREE

    sem = frame.semantics.copy()
    known = sem != 255
    sem[~known] = OCC3D_FREE
    masks = {k: frame.masks.get(k, known) & known for k in ("mask_lidar", "mask_camera")}
    extra = {"flow": np.asarray(frame.fields["flow"], np.float32)} if "flow" in frame.fields else {}
    save_npz_atomic(
        out / occ3d_files(frame)[0],
        semantics=sem,
        mask_lidar=masks["mask_lidar"].astype(np.uint8),
        mask_camera=masks["mask_camera"].astype(np.uint8),
        **extra,
    )
    _write_sensor_data(out, frame)
    _link_sensors(out, frame)


def write_surroundocc(out: Path, frame: FrameLabels) -> None:
    from occkit.data.surroundocc import write_surroundocc_label

    write_surroundocc_label(out / surroundocc_files(frame)[0], frame.semantics)
    _link_sensors(out, frame)


def write_openoccupancy(out: Path, frame: FrameLabels) -> None:
    from occkit.data.openoccupancy import write_openoccupancy_label

    write_openoccupancy_label(out / openoccupancy_files(frame)[0], frame.semantics)
    _link_sensors(out, frame)


def finish(
    out: Path, frames: list[FrameLabels], options: dict[str, Any], files: Any, label_key: str | None
) -> list[str]:
    """``annotations.json`` finished from the frames' records: the converted frames' entries (each
    frame's ``record``, with ``label_key``, ``gt_path`` for Occ3D, set to the written file; the other
    layouts' own path keys dropped) under their scenes, and each split's converted scenes, through
    :func:`occkit.data.occ3d.write_occ3d_index`; where the source holds an ``annotations.json``, its
    other top-level keys (scene descriptions ...) too. A source of the family whose layout keeps none (a
    package's format: docs/design.md §9, ``writers.label_writer``) gives its index from the records
    alone. ``options``: ``source_root`` (the source folder; none: ``occkit label``), ``scene_splits``,
    ``index_keys`` (keys added at the end)."""
    from occkit.data.occ3d import write_occ3d_index

    top: dict[str, Any] = {}
    src_ann = Path(options["source_root"]) / "annotations.json" if options.get("source_root") else None
    if src_ann is not None and (src_ann.exists() or src_ann.is_symlink()):  # a source in Occ3D's own schema
        top = {k: v for k, v in read_json(src_ann).items() if k != "scene_infos" and not k.endswith("_split")}
    scene_infos: dict[str, dict[str, Any]] = {}
    for f in frames:
        rec = {k: v for k, v in f.record.items() if k not in ("gt_path", "occ_path")}
        if label_key is not None:
            rec[label_key] = files(f)[0]
        scene_infos.setdefault(f.scene, {})[f.token] = rec
    splits = options.get("scene_splits") or {}
    kept = {name: [s for s in scenes if s in scene_infos] for name, scenes in splits.items()}
    write_occ3d_index(out / "annotations.json", scene_infos, kept, head=top, tail=options.get("index_keys"))
    notes = []
    unrecorded = sum(_records_no_images(f.record) for f in frames)
    lacking = sum(not any(k != "lidar" for k in f.sensor_files) and not _records_no_images(f.record) for f in frames)
    if lacking:
        notes.append(f"{lacking} frame(s) have no camera images in the source: supply them at their img_path")
    if unrecorded:
        notes.append(f"{unrecorded} frame(s) record no cameras or camera images (labels of a recording without them)")
    posed = sum("ego_pose" not in f.record for f in frames)
    if posed:
        notes.append(
            f"{posed} frame(s) have no ego_pose in the source's records: supply it in annotations.json (the methods "
            "that follow the ego's motion read it)"
        )
    if options.get("source_root") and (Path(options["source_root"]) / "extras").is_dir():
        notes.append("the synthetic extras (extras/) are not carried: they are in the source's frame and grid")
    return notes


def _records_no_images(record: dict[str, Any]) -> bool:
    """Whether a frame's index entry records no camera image: no cameras (``camera_sensor`` empty) or
    every ``img_path`` empty (labels of a recording without images, as ``occkit label`` writes them)."""
    cams = record.get("camera_sensor")
    return isinstance(cams, dict) and all(isinstance(c, dict) and c.get("img_path") == "" for c in cams.values())


def camera_map_files(frame: FrameLabels, cameras: tuple[str, ...]) -> dict[str, str]:
    """Where the family's readers read a frame's 2D semantic maps (:class:`~occkit.formats.spec.CameraMaps`):
    ``extras/<scene>/<token>/<CAM>.npz``, every camera (:mod:`occkit.data.occ3d`'s extras)."""
    return {cam: f"extras/{frame.scene}/{frame.token}/{cam}.npz" for cam in cameras}


def _nusc_occ_to_occ3d() -> tuple[int, ...]:
    """SurroundOcc's and OpenOccupancy's class ids -> Occ3D's, the ids their readers read 2D maps in
    (:data:`occkit.data.lidar_frame.OCC3D_TO_NUSC_OCC` maps them back): 1..16 the same classes, empty (0)
    Occ3D's free (17, the synthetic maps' "nothing")."""
    from occkit.data.lidar_frame import NUSC_OCC_EMPTY
    from occkit.labels import OCC3D_FREE

    return tuple(OCC3D_FREE if i == NUSC_OCC_EMPTY else i for i in range(256))


def _writer(
    files: Any,
    write: Any,
    label_key: str | None,
    masks: tuple[str, ...],
    sensor_data: tuple[str, ...] = (),
    map_ids: tuple[int, ...] | None = None,
) -> LabelWriter:
    return LabelWriter(
        family=FAMILY,
        read=partial(read_frame, masks=masks),
        files=files,
        write=write,
        finish=partial(finish, files=files, label_key=label_key),
        masks=masks,
        sensor_data=sensor_data,
        camera_maps=CameraMaps(camera_map_files, map_ids),
    )


OCC3D_WRITER = _writer(occ3d_files, write_occ3d, "gt_path", ("mask_lidar", "mask_camera"), ("lidar",))
SURROUNDOCC_WRITER = _writer(surroundocc_files, write_surroundocc, None, (), map_ids=_nusc_occ_to_occ3d())
OPENOCCUPANCY_WRITER = _writer(openoccupancy_files, write_openoccupancy, None, (), map_ids=_nusc_occ_to_occ3d())
