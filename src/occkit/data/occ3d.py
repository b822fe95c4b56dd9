"""Reader for the Occ3D-nuScenes layout, real or synthetic (one code path for both).

Layout under ``root``::

    annotations.json            train_split, val_split, scene_infos[scene][token] = {
                                  timestamp, camera_sensor[cam] = {img_path, intrinsic,
                                  extrinsic {translation, rotation} (camera -> ego),
                                  ego_pose {translation, rotation}}, ego_pose, gt_path, prev, next,
                                  [lidar_sensor {extrinsic (LiDAR -> ego)}]}   (synthetic addition)
                                [scene_descriptions {scene: text}]            (synthetic addition)
    gts/<scene>/<token>/labels.npz   semantics, mask_lidar, mask_camera: uint8 (200, 200, 16)
    <img_path>                  camera images (JPEG or PNG), relative to root (or image_root)
    <lidar_sensor.filename>     (occkit label) the keyframe's LiDAR sweep, a nuScenes .pcd.bin
    extras/<scene>/<token>/     (synthetic addition) <CAM>.npz {depth, semantics, instance},
                                lidar.npz {points (P, 4), labels, instance}, objects.json,
                                instances.npz {instance (200, 200, 16) int32}; (occkit label) <CAM>.npz
                                {semantics}: the labels rendered into each camera

Readers of the real dataset never require the synthetic additions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from occkit.data.info_schema import Occ3DIndex
from occkit.data.layout_files import one_of, read_arrays
from occkit.data.sample import NUSCENES_CAMERAS, FrameList, Sample  # NUSCENES_CAMERAS: importable from here too
from occkit.fileio import read_json
from occkit.geometry.grid import Grid, occ3d_grid
from occkit.geometry.transforms import invert_transform
from occkit.labels import refuse_ids_outside
from occkit.schema import validate

SPLITS = ("train", "val", "all")


@dataclass(frozen=True)
class FrameRef:
    """Where a frame sits: its scene, token and index within the scene (temporal order)."""

    scene: str
    token: str
    index_in_scene: int


def load_image(path: Path) -> np.ndarray:
    """Read an RGB image as ``(H, W, 3) uint8``; a missing or corrupt file raises naming it.

    JPEGs are decoded by ``simplejpeg`` (libjpeg-turbo: the same pixels as Pillow's decoder in 0.6
    of its time on nuScenes-size frames; BENCHMARKS.md, "The input pipeline at full size"), other
    formats, and JPEGs it declines, by Pillow."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image not found")
    if path.suffix.lower() in (".jpg", ".jpeg"):
        img = _decode_jpeg(path)
        if img is not None:
            return img
    try:
        with Image.open(path) as im:
            im.load()
            mode, fmt = im.mode, im.format
            pixels = np.asarray(im) if mode.startswith("I") or mode == "F" else np.asarray(im.convert("RGB"))
    except Exception as e:  # PIL raises several types for truncated/corrupt files
        raise ValueError(f"{path}: cannot decode image ({type(e).__name__}: {e})") from e
    if mode.startswith("I;16") or (mode == "I" and fmt == "PNG"):  # 16-bit grey: to 8 bits (convert clips: white)
        grey = ((pixels.astype(np.int64) + 128) // 257).clip(0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    if mode.startswith("I") or mode == "F":
        raise ValueError(f"{path}: a {mode} image (32-bit integer or float pixels); camera images are 8- or 16-bit")
    return pixels


def _decode_jpeg(path: Path) -> np.ndarray | None:
    """``simplejpeg`` (libjpeg-turbo) decoding, or None where it declines (a file it cannot read,
    a colour space it does not convert): Pillow then decodes it, or names the file it cannot."""
    import simplejpeg

    try:
        return simplejpeg.decode_jpeg(path.read_bytes(), colorspace="RGB", strict=True)
    except (ValueError, RuntimeError):
        return None


#: A frame's ``labels.npz`` (:func:`occkit.data.layout_files.read_arrays`'s table; X Y Z: the grid's shape).
LABEL_ARRAYS = {"semantics": "uint8 X Y Z", "mask_lidar": "uint8|bool X Y Z", "mask_camera": "uint8|bool X Y Z"}


def load_occ3d_labels(path: Path, shape: tuple[int, int, int] = (200, 200, 16)) -> dict[str, np.ndarray]:
    """Read a ``labels.npz`` (:data:`LABEL_ARRAYS`) and check its classes and masks; errors name the file."""
    z = read_arrays(path, LABEL_ARRAYS, dict(zip("XYZ", shape)))
    refuse_ids_outside(z["semantics"], 18, None, f"{path}: 'semantics'", "Occ3D's classes")
    for k in ("mask_lidar", "mask_camera"):
        refuse_ids_outside(z[k], 2, None, f"{path}: '{k}'", "a mask's values")
    return z


#: How far the principal point may lie from the image centre, as a fraction of the width, before
#: the image is taken to be resized without its intrinsics (nuScenes: under 0.03; a half-size
#: image with full-size intrinsics: 0.5).
PRINCIPAL_POINT_TOLERANCE = 0.2


def check_image_fits_intrinsics(
    K: torch.Tensor, hw: tuple[int, int], where: str, recorded_hw: tuple[int, int] | None = None
) -> None:
    """Refuse an image whose size does not fit its intrinsics (a resized image with the original
    ``K`` would give a silently wrong model input).

    Checks: the image size equals the size the dataset records for the camera (``recorded_hw``,
    when it records one); the principal point lies inside the image and within
    :data:`PRINCIPAL_POINT_TOLERANCE` of the width from its horizontal centre (vertically only
    inside: crops from the top, as BEVDet-style pipelines and the synthetic world make them,
    move it up).

    Args:
        K: ``(3, 3)`` intrinsics. hw: the image's ``(H, W)``. where: what to name in the error.
    """
    H, W = hw
    if recorded_hw is not None and tuple(recorded_hw) != (H, W):
        raise ValueError(
            f"{where}: the image is {W}x{H} but the annotations record {recorded_hw[1]}x{recorded_hw[0]} "
            "for this camera: resize the image back, or rescale the intrinsics and the recorded size"
        )
    cx, cy = float(K[0, 2]), float(K[1, 2])
    if not (0 < cx < W and 0 < cy < H) or abs(cx / W - 0.5) > PRINCIPAL_POINT_TOLERANCE:
        raise ValueError(
            f"{where}: the image is {W}x{H} but the intrinsics put the principal point at ({cx:.1f}, {cy:.1f}), "
            f"which fits an image of about {2 * cx:.0f} pixels wide: a resized image with the original intrinsics? "
            "Rescale 'intrinsic' in annotations.json to the image size (occkit does not guess)"
        )


def read_objects(path: Path) -> list[dict[str, Any]]:
    """The ``objects`` list of a synthetic ``objects.json`` (``[]`` when the file is absent)."""
    if not path.is_file():
        return []
    data = read_json(path)
    objs = data.get("objects") if isinstance(data, dict) else None
    if not isinstance(objs, list):
        raise ValueError(f"{path}: expected {{'objects': [...]}}")
    return objs


def read_instance_names(path: Path) -> dict[int, str]:
    """``{instance id: fine name}`` of a synthetic ``objects.json`` (``{}`` when absent)."""
    try:
        return {int(o["instance"]): str(o["name"]) for o in read_objects(path)}
    except (KeyError, TypeError) as e:
        raise ValueError(f"{path}: an object lacks 'instance' or 'name' ({e})") from e


def check_tokens_unique(scene_infos: dict[str, dict[str, Any]], path: str | os.PathLike) -> None:
    """Refuse a ``scene_infos`` (``{scene: {token: info}}``) listing one token in two scenes: the
    frame would be read, and scored, twice. The error names ``path``, the token and both scenes."""
    seen: dict[str, str] = {}
    for scene, infos in scene_infos.items():
        for token in infos:
            first = seen.setdefault(token, scene)
            if first != scene:
                raise ValueError(
                    f"{path}: token {token} is listed in two scenes, {first} and {scene} (its frame would be "
                    "counted twice)"
                )


#: The key of ``annotations.json`` that states a grid other than Occ3D's (``occkit label --grid``):
#: ``{"range_min": [x, y, z], "range_max": [x, y, z], "voxel_size": [x, y, z]}`` in the ego frame.
GRID_KEY = "grid"


def occ3d_index(
    scene_infos: dict[str, Any],
    splits: dict[str, list[str]],
    *,
    head: dict[str, Any] | None = None,
    tail: dict[str, Any] | None = None,
    always: tuple[str, ...] = ("train", "val"),
) -> dict[str, Any]:
    """Occ3D's ``annotations.json`` content, its keys in one order for every writer: ``head``'s keys,
    then ``<name>_split`` for each of ``splits`` (``{"train": [scene, ...], ...}``, in order) and for
    each of ``always`` it lacks (empty), then ``scene_infos``, then ``tail``'s keys (the layout's
    schema: docs/formats/occ3d.md)."""
    out: dict[str, Any] = dict(head or {})
    for name, scenes in splits.items():
        out[f"{name}_split"] = list(scenes)
    for name in always:
        out.setdefault(f"{name}_split", [])
    out["scene_infos"] = scene_infos
    out.update(tail or {})
    return out


def index_parts(ann: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """An ``annotations.json`` read back as :func:`occ3d_index`'s parts ``(head, splits, scene_infos, tail)``:
    the keys before the first split (or ``scene_infos``), the splits by name (``train`` for ``train_split``),
    the frames, the other keys after; ``occ3d_index(*parts, always=())`` gives it back in its order."""
    keys = list(ann)
    first = next((i for i, k in enumerate(keys) if k == "scene_infos" or k.endswith("_split")), len(keys))
    splits = {k.removesuffix("_split"): ann[k] for k in keys if k.endswith("_split")}
    tail = {k: ann[k] for k in keys[first:] if k != "scene_infos" and not k.endswith("_split")}
    return {k: ann[k] for k in keys[:first]}, splits, ann.get("scene_infos", {}), tail


def write_occ3d_index(
    path: str | os.PathLike, scene_infos: dict[str, Any], splits: dict[str, list[str]], **keys: Any
) -> Path:
    """:func:`occ3d_index` written atomically at ``path`` (a folder: its ``annotations.json``); ``keys``
    as :func:`occ3d_index`'s. The one writer of Occ3D's index (the synthetic world, ``occkit convert``,
    ``occkit label``, ``occkit pseudolabel``, the index built from nuScenes info files)."""
    from occkit.fileio import write_json_atomic

    p = Path(path)
    if p.is_dir():
        p = p / "annotations.json"
    return write_json_atomic(p, occ3d_index(scene_infos, splits, **keys))


def grid_record(grid: Grid) -> dict[str, list[float]]:
    """The :data:`GRID_KEY` entry that states ``grid`` in ``annotations.json``."""
    return {
        "range_min": [float(v) for v in grid.range_min],
        "range_max": [float(v) for v in grid.range_max],
        "voxel_size": [float(v) for v in grid.voxel_size],
    }


def grid_of_index(index: Any, path: str | os.PathLike) -> Grid:
    """The grid an ``annotations.json`` states (:data:`GRID_KEY`; ``index``: the file read as
    :class:`occkit.data.info_schema.Occ3DIndex`), else Occ3D's; one that is no grid raises one line naming the
    file."""
    rec = index.grid
    if rec is None:
        return occ3d_grid()
    try:
        return Grid(tuple(rec.range_min), tuple(rec.range_max), tuple(rec.voxel_size))  # type: ignore[arg-type]
    except ValueError as e:
        raise ValueError(f"{path}: {GRID_KEY}: {e}") from None


class Occ3DDataset(FrameList):
    """Frames of an Occ3D-nuScenes-layout dataset as :class:`~occkit.data.sample.Sample`.

    Args:
        root: folder holding ``annotations.json``.
        split: ``"train"``, ``"val"`` or ``"all"``.
        cameras: camera names to load, in this order (default: the cameras every frame records, in
            the order ``annotations.json`` lists them; nuScenes' order for its six cameras). A camera
            that some frame lacks is refused in one line. Cameras may differ in image size and
            intrinsics: each frame's images are brought to its first camera's size, each camera's
            intrinsics (and per-pixel maps) scaled with it (:func:`_one_size`), before they are stacked.
        load_images: read the camera images (off for metric-only use).
        load_gt: read ``labels.npz`` (occupancy and masks).
        load_extras: read the synthetic extras (depth/semantics/instance maps, LiDAR) when present.
        image_root: where ``img_path`` is relative to, if not ``root``.
        cache_mb: keep the decoded files of frames in memory, up to this many MiB (0 = off): the
            first read of a frame decodes its files, later reads copy them from memory. Frames
            are kept in the order first read, none evicted. Each DataLoader worker holds its own
            cache, so it suits ``workers: 0`` (a small dataset read many times on a few cores).
    """

    #: The dataset format of these frames (:mod:`occkit.formats.occ3d`); a dataset format's
    #: ``open_split`` sets it on the instance, so a subclass read as another format says so.
    format_name = "occ3d"

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        cameras: tuple[str, ...] | None = None,
        load_images: bool = True,
        load_gt: bool = True,
        load_extras: bool = True,
        image_root: str | os.PathLike | None = None,
        cache_mb: float = 0.0,
    ) -> None:
        self.root = Path(root)
        if not cache_mb >= 0:
            raise ValueError(f"cache_mb must be >= 0, got {cache_mb!r}")
        self.cache_limit = int(cache_mb * 2**20)
        self._cache: dict[str, dict[str, Any]] = {}
        self.cache_bytes = 0
        self.split = one_of(split, SPLITS, "split")
        self.cameras = tuple(cameras) if cameras else NUSCENES_CAMERAS
        self.load_images, self.load_gt, self.load_extras = load_images, load_gt, load_extras
        self.image_root = Path(image_root) if image_root else self.root
        ann_path = self.root / "annotations.json"
        ann = read_json(ann_path)
        index = validate(Occ3DIndex, ann, str(ann_path))
        self.annotations_path = ann_path
        self.scene_infos: dict[str, dict[str, Any]] = ann["scene_infos"]
        check_tokens_unique(self.scene_infos, ann_path)
        self.scene_descriptions: dict[str, str] = ann.get("scene_descriptions", {})
        if split == "all":
            scenes = list(self.scene_infos)
        else:
            key = f"{split}_split"
            if key not in ann:
                raise KeyError(f"{ann_path}: missing key '{key}'")
            scenes = [s for s in ann[key] if s in self.scene_infos]
        self.scenes: list[str] = scenes
        self.frames: list[FrameRef] = []
        for scene in scenes:
            for i, token in enumerate(self.scene_tokens(scene)):
                self.frames.append(FrameRef(scene, token, i))
        self._index = {f.token: i for i, f in enumerate(self.frames)}
        self._index_grid = grid_of_index(index, ann_path)
        self.grid: Grid = self.layout_grid()
        if self.frames and self.records_no_cameras():
            self.cameras = ()  # labels of a rig without cameras (occkit label): occupancy (and LiDAR) alone
        elif cameras is None and self.frames:
            self.cameras = self.default_cameras()
        if cameras and self.frames:  # a camera the data lack is the setting's fault, not annotations.json's
            self._check_cameras_recorded(self.cameras)

    def layout_grid(self) -> Grid:
        """The grid of the layout's label files: the one ``annotations.json`` states (:data:`GRID_KEY`,
        ``occkit label --grid``), else Occ3D's (a layout in another grid gives its own)."""
        return self._index_grid

    # ------------------------------------------------------------------ lookup
    def cameras_recorded(self) -> tuple[str, ...]:
        """The cameras ``annotations.json`` records for the first frame (``camera_sensor``'s keys, in
        its order; ``()`` without frames): what a reader that takes the data's own cameras opens
        (``occkit stats``; a dataset ``occkit generate`` wrote holds one)."""
        if not self.frames:
            return ()
        first = self.scene_infos[self.frames[0].scene][self.frames[0].token]
        return tuple((first.get("camera_sensor") or {}) if isinstance(first, dict) else {})

    def _camera_sets(self) -> list[tuple[FrameRef, tuple[str, ...]]]:
        """Each frame that records ``camera_sensor`` (a mapping) with its cameras, in order; a frame
        without one is left out (reading its cameras names it)."""
        out = []
        for f in self.frames:
            info = self.scene_infos[f.scene].get(f.token)
            sensors = info.get("camera_sensor") if isinstance(info, dict) else None
            if isinstance(sensors, dict):
                out.append((f, tuple(sensors)))
        return out

    def common_cameras(self) -> tuple[tuple[str, ...], dict[str, int]]:
        """The cameras every frame records (in the first frame's order) and, for each camera that only
        some frames record, how many frames lack it (``{}`` when every frame has the same cameras)."""
        sets = self._camera_sets()
        if not sets:
            return (), {}
        common = [c for c in sets[0][1] if all(c in cams for _, cams in sets)]
        seen: dict[str, int] = {}
        for _, cams in sets:
            for c in cams:
                seen[c] = seen.get(c, 0) + 1
        return tuple(common), {c: len(sets) - n for c, n in seen.items() if n < len(sets)}

    def default_cameras(self) -> tuple[str, ...]:
        """The cameras read when none are named: those every frame records, in the order
        ``annotations.json`` lists them (nuScenes' order, :data:`NUSCENES_CAMERAS`, when they are
        its six cameras); nuScenes' six when no frame records any. Frames that share no camera are
        refused in one line."""
        common, partial = self.common_cameras()
        if set(common) == set(NUSCENES_CAMERAS):
            return NUSCENES_CAMERAS
        if common:
            return common
        if partial:
            raise ValueError(
                f"{self.annotations_path}: its frames share no camera (cameras some frames lack: "
                f"{', '.join(sorted(partial))}): name the cameras to read with data.cameras"
            )
        return NUSCENES_CAMERAS

    def _check_cameras_recorded(self, cameras: tuple[str, ...]) -> None:
        """Refuse, in one line, cameras that no frame records (naming the cameras the data have) or
        that some frames lack (naming how many, the first, and the cameras every frame has)."""
        sets = self._camera_sets()
        have = self.cameras_recorded()
        if not sets or not have:
            return
        known = {c for _, cams in sets for c in cams}
        bad = [c for c in cameras if c not in known]
        if bad:
            common, _ = self.common_cameras()
            raise ValueError(
                f"data.cameras: {', '.join(bad)} {'is not a camera' if len(bad) == 1 else 'are not cameras'} of "
                f"{self.root} (its cameras: {', '.join(common or have)})"
            )
        for c in cameras:
            lacking = [f for f, cams in sets if c not in cams]
            if lacking:
                common, _ = self.common_cameras()
                f = lacking[0]
                raise ValueError(
                    f"data.cameras: camera {c} is missing from {len(lacking)} of the {len(sets)} frames of "
                    f"{self.annotations_path} (the first: scene {f.scene}, frame {f.token}); the cameras every frame "
                    f"has: {', '.join(common) or 'none'}"
                )

    def records_no_cameras(self) -> bool:
        """Whether the index says the data have no cameras: every frame's ``camera_sensor`` is
        present and empty (``occkit label`` on a rig without cameras writes it so; docs/labels.md).
        A frame that lacks ``camera_sensor`` says nothing: reading its cameras then names it."""
        return all(
            isinstance(info, dict) and info.get("camera_sensor", None) == {}
            for infos in self.scene_infos.values()
            if isinstance(infos, dict)
            for info in infos.values()
        )

    @property
    def images_recorded(self) -> bool:
        """Whether the frames have camera images to read: cameras, and a non-empty ``img_path`` for
        each in the first frame (``occkit label`` on a rig with cameras but no images writes them
        empty). False: readers that can do without images (``occkit show``, ``view``, ``stats``)
        read the frames with ``load_images`` off; a reader that asks for images is told which
        frame and camera record none."""
        if not self.cameras or not self.frames:
            return False
        first = self.scene_infos[self.frames[0].scene].get(self.frames[0].token)
        sensors = (first.get("camera_sensor") or {}) if isinstance(first, dict) else {}
        return all(isinstance(sensors.get(c), dict) and sensors[c].get("img_path", None) != "" for c in self.cameras)

    def scene_tokens(self, scene: str) -> list[str]:
        """Tokens of a scene in temporal order (by timestamp)."""
        infos = self.scene_infos[scene]
        return sorted(infos, key=lambda t: (infos[t].get("timestamp", 0), t))

    def info(self, token: str) -> dict[str, Any]:
        """The raw ``scene_infos`` entry of a frame."""
        f = self.frames[self.index_of(token)]
        return self.scene_infos[f.scene][token]

    # ------------------------------------------------------------------ paths
    def gt_path(self, token: str) -> Path:
        f = self.frames[self.index_of(token)]
        rel = self.info(token).get("gt_path") or f"gts/{f.scene}/{token}/labels.npz"
        return self.root / rel.removeprefix("./")

    def image_path(self, token: str, cam: str) -> Path:
        info = self.info(token)
        rel = self._field(info, ("camera_sensor", cam, "img_path"), token, cam)
        if rel == "":
            raise FileNotFoundError(
                f"{self._where(token, cam)}: no image recorded ('img_path' is empty: labels of a recording without "
                "camera images, which open without images in occkit show, view, stats, eval and convert)"
            )
        p = Path(rel)
        if p.is_absolute():
            return p
        return self.image_root / rel.removeprefix("./")

    def extras_dir(self, token: str) -> Path:
        f = self.frames[self.index_of(token)]
        return self.root / "extras" / f.scene / token

    def objects(self, token: str) -> list[dict[str, Any]]:
        """The frame's ``objects.json`` entries (synthetic extras), ``[]`` when absent."""
        return read_objects(self.extras_dir(token) / "objects.json")

    def instance_names(self, token: str) -> dict[int, str]:
        """``{instance id: fine name}`` of the frame's objects (synthetic extras; ``{}`` when absent)."""
        return read_instance_names(self.extras_dir(token) / "objects.json")

    def read_instances(self, token: str) -> np.ndarray | None:
        """The frame's voxel instance ids (synthetic extras ``instances.npz``): ``(X, Y, Z)`` int32,
        the object that gives each voxel of ``semantics`` its class, 0 = ground / free; ``None``
        when the file is absent. A wrong shape or dtype raises naming the file."""
        path = self.extras_dir(token) / "instances.npz"
        if not path.is_file():
            return None
        return read_arrays(path, {"instance": "int32 X Y Z"}, dict(zip("XYZ", self.grid.shape)))["instance"]

    # ------------------------------------------------------------------ poses
    def _where(self, token: str, cam: str | None = None) -> str:
        """``annotations.json: scene S, frame T[, camera C]``, for errors."""
        f = self.frames[self.index_of(token)]
        return f"{self.annotations_path}: scene {f.scene}, frame {token}" + (f", camera {cam}" if cam else "")

    def _field(self, entry: Any, keys: tuple[str, ...], token: str, cam: str | None = None) -> Any:
        """``entry[k0][k1]...``; a missing key raises ``KeyError`` naming file, scene, frame, camera."""
        node, path = entry, []
        for k in keys:
            path.append(k)
            if not isinstance(node, dict) or k not in node:
                raise KeyError(f"{self._where(token, cam)}: no '{'.'.join(path)}'")
            node = node[k]
        return node

    def frame(self, token: str) -> Any:
        """The frame's poses and sensors, checked (:class:`occkit.data.info_schema.Occ3DFrame`) the first time
        the frame is read: a field that is missing or wrong is one line naming the file, scene, frame and field."""
        from occkit.data.info_schema import Occ3DFrame
        from occkit.schema import validate

        checked = self.__dict__.setdefault("_checked", {})
        if token not in checked:
            checked[token] = validate(Occ3DFrame, self.info(token), self._where(token))
        return checked[token]

    def camera(self, token: str, cam: str) -> Any:
        """The frame's camera ``cam`` (:class:`occkit.data.info_schema.CameraSensor`)."""
        sensors = self.frame(token).camera_sensor
        if cam not in sensors:
            raise KeyError(f"{self._where(token, cam)}: no 'camera_sensor.{cam}'")
        return sensors[cam]

    def T_global_from_ego(self, token: str) -> torch.Tensor:
        """``(4, 4)`` float64 ego pose of the frame."""
        return self.frame(token).ego_pose.matrix()

    def T_ego_from_cam(self, token: str, cam: str) -> torch.Tensor:
        """``(4, 4)`` float64 camera -> ego (at the frame's timestamp).

        nuScenes cameras fire at slightly different times from the frame: with the camera's own
        ego pose, ``T_ego_from_cam = T_ego_from_global @ T_global_from_egocam @ T_egocam_from_cam``.
        """
        c = self.camera(token, cam)
        T = c.extrinsic.matrix()
        if c.ego_pose is not None:
            T = invert_transform(Occ3DDataset.T_global_from_ego(self, token)) @ c.ego_pose.matrix() @ T
        return T

    def T_ego_from_lidar(self, token: str) -> torch.Tensor | None:
        """``(4, 4)`` float64 LiDAR -> ego, when the annotations carry ``lidar_sensor``."""
        sensor = self.frame(token).lidar_sensor
        return None if sensor is None else sensor.extrinsic.matrix()

    def intrinsics(self, token: str, cam: str) -> torch.Tensor:
        return torch.tensor(self.camera(token, cam).intrinsic, dtype=torch.float64)

    def recorded_image_size(self, token: str, cam: str) -> tuple[int, int] | None:
        """``(H, W)`` the annotations record for a camera image (``height`` / ``width`` beside
        ``img_path``, as nuScenes' sample_data has them), or None: Occ3D records none."""
        c = self.camera(token, cam)
        return None if c.height is None or c.width is None else (c.height, c.width)

    # ------------------------------------------------------------------ loading
    #: The per-voxel masks the layout's label files hold beside the classes (``occkit stats``
    #: reports each; the first is the one the benchmark scores). A layout without any sets ().
    label_mask_names: tuple[str, ...] = ("camera", "lidar")

    def label_masks(self, i: int) -> tuple[np.ndarray, dict[str, np.ndarray], Path]:
        """Frame ``i``'s class ids ``(X, Y, Z)`` uint8, its masks by :attr:`label_mask_names`
        (``(X, Y, Z)`` bool: ``mask_camera``, ``mask_lidar``) and the file they come from."""
        token = self.frames[i].token
        gt = self.read_labels(token)
        masks = {"camera": gt["mask_camera"].astype(bool), "lidar": gt["mask_lidar"].astype(bool)}
        return gt["semantics"], masks, self.gt_path(token)

    def frame_labels(self, i: int) -> tuple[np.ndarray, np.ndarray, Path]:
        """Frame ``i``'s class ids ``(X, Y, Z)`` uint8, the voxels its benchmark scores (``(X, Y, Z)``
        bool: the camera mask) and the file they come from (for errors)."""
        token = self.frames[i].token
        gt = self.read_labels(token)
        return gt["semantics"], gt["mask_camera"].astype(bool), self.gt_path(token)

    def read_labels(self, token: str) -> dict[str, np.ndarray]:
        """The frame's ``labels.npz`` arrays (semantics, mask_lidar, mask_camera), checked."""
        return load_occ3d_labels(self.gt_path(token), self.grid.shape)

    def _read_files(self, token: str) -> dict[str, Any]:
        """The frame's decoded files, checked: ``images`` (list of ``(H, W, 3)`` uint8),
        ``labels`` (dict, with ``load_gt``), ``lidar`` and ``cams`` (extras, when present)."""
        raw: dict[str, Any] = {}
        if self.load_images and self.cameras:
            raw["images"] = [load_image(self.image_path(token, c)) for c in self.cameras]  # sizes may differ
        if self.load_gt:
            raw["labels"] = self.read_labels(token)
        if self.load_extras:
            raw.update(self._read_extras(token, raw.get("images")))
            if "lidar" not in raw:  # no synthetic extras: the LiDAR file the index names (occkit label's)
                points = self.index_lidar(token)
                if points is not None:
                    raw["lidar"] = {"points": points, "labels": None}
        return raw

    def index_lidar(self, token: str) -> np.ndarray | None:
        """The frame's LiDAR sweep from the file its ``lidar_sensor.filename`` names under the root (``occkit
        label`` writes each keyframe's there, a nuScenes ``.pcd.bin``), in the ego frame through
        ``lidar_sensor.extrinsic``: ``(P, 4)`` float32 x, y, z, intensity; None where the index names no
        file or the file is not there (real Occ3D: ``data.lidar_infos`` gives its LiDAR)."""
        from occkit.data.pcd_bin import read_pcd_bin

        rel = (self.info(token).get("lidar_sensor") or {}).get("filename")
        if not isinstance(rel, str) or not rel or not (self.root / rel.removeprefix("./")).is_file():
            return None
        T = self.T_ego_from_lidar(token)
        if T is None:
            return None
        pts = read_pcd_bin(self.root / rel.removeprefix("./")).double()
        xyz = pts[:, :3] @ T[:3, :3].T + T[:3, 3]
        return torch.cat([xyz, pts[:, 3:4]], 1).float().numpy()

    def frame_lidar(self, token: str) -> np.ndarray | None:
        """The frame's LiDAR points ``(P, 4)`` in its ego frame: the synthetic extras' ``lidar.npz``, else
        :meth:`index_lidar`; None without either."""
        path = self.extras_dir(token) / "lidar.npz"
        return read_arrays(path, {"points": "* P 4"})["points"] if path.exists() else self.index_lidar(token)

    def _files(self, token: str) -> dict[str, Any]:
        """:meth:`_read_files`, through the memory cache when ``cache_mb`` > 0."""
        if self.cache_limit <= 0:
            return self._read_files(token)
        raw = self._cache.get(token)
        if raw is None:
            raw = self._read_files(token)
            size = _nbytes(raw)
            if self.cache_bytes + size <= self.cache_limit:
                self._cache[token] = raw
                self.cache_bytes += size
        return raw

    def scoring_labels(self, i: int) -> dict[str, torch.Tensor]:
        """Frame ``i``'s labels as occkit's scoring loop reads them, without the rest of a sample (its
        cameras' poses and calibrations): ``occupancy`` (uint8 class ids), ``mask_camera`` and
        ``mask_lidar`` (bool)."""
        gt = self.read_labels(self.frames[i].token)
        return {
            "occupancy": torch.from_numpy(np.ascontiguousarray(gt["semantics"], dtype=np.uint8)),
            "mask_camera": torch.from_numpy(gt["mask_camera"].astype(bool)),
            "mask_lidar": torch.from_numpy(gt["mask_lidar"].astype(bool)),
        }

    def __getitem__(self, i: int) -> Sample:
        f = self.frames[i]
        token = f.token
        info = self.info(token)
        Ks = torch.stack([self.intrinsics(token, c) for c in self.cameras] or [torch.eye(3)])[: len(self.cameras)]
        Ts = torch.stack([self.T_ego_from_cam(token, c) for c in self.cameras] or [torch.eye(4)])[: len(self.cameras)]
        Ks, Ts = Ks.float(), Ts.float()
        raw = self._files(token)
        maps = None
        if "cams" in raw:
            maps = [{to: torch.from_numpy(m[k].astype(dt)) for k, to, dt in _MAPS if k in m} for m in raw["cams"]]
        if self.load_images and self.cameras:
            for c, K, im in zip(self.cameras, Ks, raw["images"]):
                check_image_fits_intrinsics(
                    K,
                    im.shape[:2],
                    f"{self.image_path(token, c)} ({self._where(token, c)})",
                    self.recorded_image_size(token, c),
                )
            images, Ks, maps = _one_size(raw["images"], Ks, maps)
        else:
            images = torch.zeros(len(self.cameras), 3, 0, 0)
        sample = Sample(
            token=token,
            scene=f.scene,
            timestamp=int(info.get("timestamp", 0)),
            cam_names=self.cameras,
            images=images,
            intrinsics=Ks,
            T_ego_from_cam=Ts,
            T_global_from_ego=self.T_global_from_ego(token),
            description=self.scene_descriptions.get(f.scene),
        )
        T_l = self.T_ego_from_lidar(token)
        if T_l is not None:
            sample.T_ego_from_lidar = T_l.float()
        if self.load_gt:
            gt = raw["labels"]
            sample.occupancy = torch.from_numpy(gt["semantics"].astype(np.int64))
            sample.mask_camera = torch.from_numpy(gt["mask_camera"].astype(bool))
            sample.mask_lidar = torch.from_numpy(gt["mask_lidar"].astype(bool))
        # every array below is a new copy (astype / stack): the cached ones are never handed out
        if "lidar" in raw:
            sample.lidar = torch.from_numpy(raw["lidar"]["points"].astype(np.float32))
            labels = raw["lidar"]["labels"]
            sample.lidar_labels = None if labels is None else torch.from_numpy(labels.astype(np.int64))
        if maps is not None:
            for k in maps[0]:
                setattr(sample, k, torch.stack([m[k] for m in maps]))
        return sample

    def _read_extras(self, token: str, images: list[np.ndarray] | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        d = self.extras_dir(token)
        if not d.is_dir():
            return out
        lidar_path = d / "lidar.npz"
        if lidar_path.exists():
            out["lidar"] = read_arrays(lidar_path, {"points": "* P 4", "labels": "* P"})
        cam_files = [d / f"{c}.npz" for c in self.cameras]
        if cam_files and all(p.exists() for p in cam_files):
            # the world's maps: depth, semantics, instance; occkit label's (the labels rendered): semantics only
            keys = ("depth", "semantics", "instance") if "depth" in _npz_names(cam_files[0]) else ("semantics",)
            maps: list[dict[str, np.ndarray]] = []
            for i, p in enumerate(cam_files):  # each camera's image size, else the first camera's maps'
                hw = images[i].shape[:2] if images is not None else maps[0][keys[0]].shape if maps else ()
                maps.append(read_arrays(p, {k: "* H W" for k in keys}, dict(zip("HW", hw))))
            out["cams"] = maps
        return out


#: a camera's maps in ``extras/``: the file's array, the Sample's field, its dtype
_MAPS = (("depth", "depth", np.float32), ("semantics", "semantics_2d", np.int64), ("instance", "instance_2d", np.int64))


def _npz_names(path: Path) -> list[str]:
    """The arrays an ``.npz`` holds (none decompressed); a corrupt file raises naming it."""
    from occkit.fileio import numpy_read_error

    try:
        with np.load(path, allow_pickle=False) as z:
            return list(z.files)
    except Exception as e:  # zipfile.BadZipFile, ValueError, OSError, EOFError ...
        raise numpy_read_error(path, e, ".npz") from e


def _one_size(
    images: list[np.ndarray], Ks: torch.Tensor, maps: list[dict[str, torch.Tensor]] | None
) -> tuple[torch.Tensor, torch.Tensor, list[dict[str, torch.Tensor]] | None]:
    """A frame's camera images ``(H_i, W_i, 3)`` uint8 as one ``(N, 3, H, W)`` float tensor in [0, 1]:
    a camera of another size than the first is resized to the first camera's ``(H, W)`` (each axis by
    its own factor), its intrinsics ``Ks[i]`` ``(3, 3)`` scaled and its per-pixel ``maps`` resized to
    match (:func:`occkit.data.augment.resize_view`). Returns the images, the intrinsics ``(N, 3, 3)``
    and the maps."""
    hw = images[0].shape[:2]
    if all(im.shape[:2] == hw for im in images):
        return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255), Ks, maps
    from occkit.data.augment import resize_view

    out, new_K, new_maps = [], [], []
    for i, im in enumerate(images):
        img = torch.tensor(im).permute(2, 0, 1).float().div_(255)  # a copy: the cache's array stays as read
        m = maps[i] if maps is not None else {}
        if im.shape[:2] != hw:
            img, K, m = resize_view(img, Ks[i], hw, m)
        else:
            K = Ks[i]
        out.append(img)
        new_K.append(K)
        new_maps.append(m)
    return torch.stack(out), torch.stack(new_K), new_maps if maps is not None else None


def _nbytes(tree: Any) -> int:
    """Bytes of the numpy arrays in nested dicts / lists."""
    if isinstance(tree, np.ndarray):
        return tree.nbytes
    if isinstance(tree, dict):
        return sum(_nbytes(v) for v in tree.values())
    if isinstance(tree, (list, tuple)):
        return sum(_nbytes(v) for v in tree)
    return 0
