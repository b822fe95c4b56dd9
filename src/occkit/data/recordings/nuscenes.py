"""nuScenes tables as a recording (docs/labels.md, "nuScenes tables"): ``occkit label --data ROOT
[--version V] [--scenes ...]``, read through nuScenes-devkit's own ``NuScenes`` class.

``ROOT`` is a nuScenes root, the folder holding a table folder ``v1.0-*/`` (``sample.json``,
``sample_data.json``, ...) beside ``samples/`` and ``sweeps/``. Each scene becomes one
:class:`~occkit.data.scene_record.SceneRecord`:

- every ``LIDAR_TOP`` ``sample_data`` of the scene, in time order (the keyframes are those with
  ``is_key_frame``; a keyframe's token is its **sample** token, so the labels are named by sample
  token as Occ3D names them; a sweep keeps its ``sample_data`` token), with its timestamp (µs),
  its own ``ego_pose`` and its points from the ``.pcd.bin`` (x, y, z, intensity, ring);
- the ``calibrated_sensor`` of the LiDAR as its extrinsic (one LiDAR id per calibration met in
  the scene: ``LIDAR_TOP``, then ``LIDAR_TOP#2`` ...);
- point labels at the keyframes from nuScenes-lidarseg (``lidarseg/<version>/*.bin``), else from
  nuScenes-panoptic (``category index * 1000 + instance``), through the devkit's lidarseg class map
  (``LidarsegClassMapper``: 32 categories -> the 16 classes and ``ignore``) onto Occ3D's classes
  (``ignore`` is Occ3D's ``others``);
- the boxes of every sweep from nuScenes-devkit's ``get_boxes``: a keyframe's ``sample_annotation``
  rows, a sweep's interpolated between the two keyframes around it (centre linearly, rotation by
  quaternion slerp; an instance missing from the earlier keyframe keeps the later one's box); the
  instance tokens are the tracks (integers in the order of the ``instance`` table), the category
  through the same class map;
- the six cameras (``camera_intrinsic``, ``calibrated_sensor``, image size) of the first keyframe,
  and their image paths (``samples/CAM_*/...``) by keyframe, linked into the output as ``samples``;
- the ego vehicle's box: nuScenes' Renault Zoe (:data:`occkit.data.nuscenes_tables.NUSCENES_EGO_SIZE`).

The splits are nuScenes' official ones (``nuscenes.utils.splits``) when every scene name is one of
the version's (``mini_train`` / ``mini_val`` for ``v1.0-mini``), else none (every scene is train).
The tables are loaded once per process (a worker labelling several scenes loads them once).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from occkit.data.recordings.spec import ReaderOptions, RecordingReader, option

#: Tables loaded by this process: ``(root, version, tables_key) -> _Opened``.
_LOADED: dict[tuple[str, str, str], Any] = {}


def table_folders(path: Path) -> list[str]:
    """The ``v1.0-*`` table folders under ``path`` (each holding sample.json, sample_data.json, scene.json)."""
    from occkit.data.nuscenes_tables import TABLE_MARKS

    if not path.is_dir():
        return []
    return sorted(
        p.name
        for p in path.iterdir()
        if p.is_dir() and p.name.startswith("v1.0-") and all((p / m).is_file() for m in TABLE_MARKS)
    )


def resolve_version(path: Path, version: str | None) -> str:
    """``--version`` checked against the table folders under ``--data`` ``path``; None: the one found (several:
    a one-line refusal listing them): :func:`occkit.data.nuscenes_raw.resolve_version` in label's words."""
    from occkit.data.nuscenes_raw import resolve_version as resolve

    return resolve(path, version, "--data", default=None)


def class_of_category() -> dict[str, str]:
    """nuScenes category name -> Occ3D class name: nuScenes-devkit's lidarseg map (32 categories onto
    16 classes and ``ignore``), ``ignore`` read as Occ3D's ``others``."""
    from nuscenes.eval.lidarseg.utils import LidarsegClassMapper

    # the mapping itself needs no tables (the mapper's constructor checks it against a lidarseg table set)
    mapper = LidarsegClassMapper.__new__(LidarsegClassMapper)
    mapper.ignore_class = LidarsegClassMapper.get_ignore_class()
    ignore = mapper.ignore_class["name"]
    return {fine: "others" if coarse == ignore else coarse for fine, coarse in mapper.get_fine2coarse().items()}


def official_splits(scenes: list[str], version: str) -> dict[str, list[str]]:
    """nuScenes' official train / val scenes of ``scenes`` when every one of them is a scene of the
    version's official split lists, else ``{}``."""
    from nuscenes.utils.splits import create_splits_scenes

    lists = create_splits_scenes(verbose=False)
    train, val = ("mini_train", "mini_val") if version == "v1.0-mini" else ("train", "val")
    known = set(lists[train]) | set(lists[val]) | (set(lists.get("test", [])) if version != "v1.0-mini" else set())
    if not scenes or not set(scenes) <= known:
        return {}
    return {
        "train_split": [s for s in scenes if s in set(lists[train])],
        "val_split": [s for s in scenes if s in set(lists[val])],
    }


class _Opened:
    """The devkit's tables of one root and version, with what the reader looks up by token."""

    def __init__(self, root: Path, version: str) -> None:
        import numpy as np

        from occkit.data.nuscenes_raw import _Tables, load_nuscenes
        from occkit.labels import OCC3D_CLASSES

        self.nusc = load_nuscenes(root, version)
        self.db = _Tables(self.nusc, root, version)
        self.root, self.version = root, version
        self.classes: tuple[str, ...] = tuple(OCC3D_CLASSES[:-1])  # Occ3D's classes without 'free'
        cls_of = class_of_category()
        self.class_id = {cat: self.classes.index(c) for cat, c in cls_of.items()}
        self.scene_by_name = {s["name"]: s for s in self.nusc.scene}
        self.track = {r["token"]: i + 1 for i, r in enumerate(self.nusc.instance)}
        # a point label's category index -> class id (-1: a category the class map does not know)
        idx2name = getattr(self.nusc, "lidarseg_idx2name_mapping", {}) or {}
        self.lut = np.full(max(idx2name, default=0) + 1, -1, np.int64)
        for idx, name in idx2name.items():
            self.lut[idx] = self.class_id.get(name, -1)
        self.point_labels: dict[str, tuple[str, str]] = {}
        for task in ("panoptic", "lidarseg"):  # lidarseg wins where both are there
            for r in getattr(self.nusc, task, None) or []:
                self.point_labels[r["sample_data_token"]] = (task, r["filename"])

    def lidar_rows(self, scene: dict[str, Any], samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Every ``LIDAR_TOP`` ``sample_data`` of the scene's samples, in time order (from the first
        keyframe back along ``prev`` and on along ``next`` while the row is one of the scene's)."""
        from occkit.data.nuscenes_tables import LIDAR_CHANNEL

        ours = {s["token"] for s in samples}
        start = self.db.lidar(samples[0], f"sample {samples[0]['token']} of {scene['name']}")

        def walk(link: str) -> list[dict[str, Any]]:  # the scene's sweeps along prev or next from the first
            out, tok = [], start[link]
            while tok:
                r = self.db.get("sample_data", tok, f"a {LIDAR_CHANNEL} sweep of {scene['name']}")
                if r["sample_token"] not in ours:
                    break
                out.append(r)
                tok = r[link]
            return out

        rows = walk("prev")[::-1] + [start] + walk("next")
        for a, b in zip(rows, rows[1:]):  # here, not only in check_record: the devkit's box interpolation divides by it
            if not b["timestamp"] > a["timestamp"]:
                raise ValueError(
                    f"{self.db.table('sample_data')}: {LIDAR_CHANNEL} sample_data {b['token']!r} of scene "
                    f"{scene['name']}: timestamp {b['timestamp']} is not after that of {a['token']!r} before it "
                    f"along prev / next ({a['timestamp']}): the sweeps' times are out of order"
                )
        keys = [r["sample_token"] for r in rows if r["is_key_frame"]]
        if keys != [s["token"] for s in samples]:
            raise ValueError(
                f"{self.db.table('sample_data')}: the {LIDAR_CHANNEL} rows of scene {scene['name']} linked by "
                f"prev / next hold {len(keys)} keyframes, the scene has {len(samples)} samples: an edited or "
                "damaged table"
            )
        return rows

    def images(self, samples: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
        """Camera image paths (relative to the root: ``samples/CAM_*/...``) by sample token."""
        out: dict[str, dict[str, str]] = {}
        for s in samples:
            cams = {}
            for ch, tok in s["data"].items():
                r = self.db.get("sample_data", tok, f"sample {s['token']}")
                if r.get("sensor_modality") == "camera":
                    cams[ch] = str(r["filename"])
            out[s["token"]] = cams
        return out


def check_images(root: Path, images: dict[str, dict[str, str]], table: Any) -> None:
    """Refuse camera images the tables name (``images``: by sample token and channel, paths relative to
    ``root``) that are not files under ``root/samples/`` (one stat each): one line naming the first such
    file, its sample and how many more there are. The labels' index would record them as ``img_path``
    and training would meet the hole later."""
    import os

    def inside(rel: str) -> bool:
        return rel.startswith("samples/") and ".." not in rel.split("/")

    top = os.fspath(root)  # plain strings, not Path objects: trainval names 200k images
    n = sum(map(len, images.values()))
    bad = [
        (token, cam, rel)
        for token, cams in images.items()
        for cam, rel in cams.items()
        if not inside(rel) or not os.path.isfile(os.path.join(top, rel))
    ]
    if not bad:
        return
    token, cam, rel = bad[0]
    where = "is missing" if inside(rel) else "is not a file under samples/"
    more = f" ({len(bad) - 1} more of the {n} camera images named are missing too)" if len(bad) > 1 else ""
    raise FileNotFoundError(
        f"{root / rel}: the {cam} image of sample {token} ({table}) {where}{more}: the labels record each "
        "keyframe's images for training; put the camera files under samples/ (nuScenes' blobs)"
    )


def _tables(root: Path, version: str) -> _Opened:
    from occkit.data.nuscenes_raw import check_tables, import_devkit, tables_key

    import_devkit()  # one line naming the pip command when the devkit is missing
    check_tables(root, version, "label", "--data")  # a missing table named before the devkit meets it
    key = (str(root.resolve()), version, repr(sorted(tables_key(root, version).items())))
    if key not in _LOADED:
        _LOADED.clear()  # one table set held at a time (trainval's take gigabytes)
        _LOADED[key] = _Opened(root, version)
    return _LOADED[key]


def _boxes(t: _Opened, sd_token: str):
    """The boxes of a ``sample_data`` (nuScenes-devkit's ``get_boxes``: interpolated between keyframes)."""
    import numpy as np

    from occkit.data.scene_record import Boxes

    rows = []
    for b in t.nusc.get_boxes(sd_token):
        cat = b.name
        if cat not in t.class_id:
            raise ValueError(
                f"{t.db.table('sample_annotation')}: annotation {b.token}: category {cat!r} is not one of nuScenes' "
                "categories the class map knows (nuscenes-devkit's LidarsegClassMapper)"
            )
        tr = t.track[t.nusc.get("sample_annotation", b.token)["instance_token"]]  # the devkit's index met each one
        w, length, h = (float(v) for v in b.wlh)
        q = b.orientation  # pyquaternion: yaw about +z of the box's heading (+x of the box)
        yaw = math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))
        rows.append((tr, t.class_id[cat], [float(v) for v in b.center], [length, w, h], yaw))
    if not rows:
        return Boxes.empty()
    rows.sort(key=lambda r: r[0])
    return Boxes(
        track=np.array([r[0] for r in rows], np.int64),
        cls=np.array([r[1] for r in rows], np.int64),
        center=np.array([r[2] for r in rows], np.float64),
        size=np.array([r[3] for r in rows], np.float64),
        yaw=np.array([r[4] for r in rows], np.float64),
    )


def _panoptic_categories(f: Path, whose: str):
    """The category indices of a nuScenes-panoptic ``.npz`` (its ``data``: ``category * 1000 +
    instance`` per point, unsigned integers), or one line naming the file and what is wrong."""
    import zipfile

    import numpy as np

    if not zipfile.is_zipfile(f):
        raise ValueError(f"{f}: not a .npz archive (damaged, cut short, or another kind of file): {whose}")
    try:
        with np.load(f) as z:
            names, data = z.files, (np.asarray(z["data"]) if "data" in z.files else None)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{f}: cannot be read as nuScenes panoptic labels ({e}): {whose}") from None
    if data is None or data.ndim != 1 or not np.issubdtype(data.dtype, np.integer):
        got = f"no 'data' array (it holds {', '.join(names) or 'nothing'})"
        if data is not None:
            got = f"'data' is {data.dtype} of shape {'x'.join(map(str, data.shape)) or 'scalar'}"
        raise ValueError(f"{f}: {got}, not one integer per point (category * 1000 + instance): {whose}")
    return data.astype(np.int64) // 1000


def _point_labels(t: _Opened, sd_token: str, n: int):
    """A keyframe's point labels (class ids) from lidarseg or panoptic, or None where it has none."""
    import numpy as np

    if sd_token not in t.point_labels:
        return None
    task, rel = t.point_labels[sd_token]
    f = t.root / rel
    whose = f"the {task} labels of sample_data {sd_token} ({t.db.table(task)})"
    if not f.is_file():
        raise FileNotFoundError(f"{f}: missing: {whose}")
    if task == "lidarseg":
        idx = np.fromfile(f, dtype=np.uint8).astype(np.int64)
    else:
        idx = _panoptic_categories(f, whose)
    if idx.shape != (n,):
        raise ValueError(f"{f}: {len(idx)} {task} labels for {n} points of sample_data {sd_token}")
    if len(idx) and (idx.min() < 0 or idx.max() >= len(t.lut) or (t.lut[idx] < 0).any()):
        bad = sorted({int(v) for v in idx if v < 0 or v >= len(t.lut) or t.lut[v] < 0})[:5]
        raise ValueError(f"{f}: category indices {bad} are not categories of {t.db.table('category')}")
    return t.lut[idx]


def _cameras(t: _Opened, sample: dict[str, Any]):
    import numpy as np

    from occkit.data.occ3d import NUSCENES_CAMERAS
    from occkit.data.scene_record import Camera

    cams = {}
    for ch, tok in sample["data"].items():
        r = t.db.get("sample_data", tok, f"sample {sample['token']}")
        if r.get("sensor_modality") != "camera":
            continue
        cs = t.db.get("calibrated_sensor", r["calibrated_sensor_token"], f"sample_data {tok}")
        K = np.asarray(cs["camera_intrinsic"], np.float64)  # finite, or [] (check_values)
        if K.shape != (3, 3):
            raise ValueError(
                f"{t.db.table('calibrated_sensor')}: record {cs['token']} ({ch}): camera_intrinsic is not a 3x3"
            )
        cams[ch] = Camera(ch, K, t.db.pose(cs), (int(r["height"]), int(r["width"])))
    order = [c for c in NUSCENES_CAMERAS if c in cams] + sorted(c for c in cams if c not in NUSCENES_CAMERAS)
    return {c: cams[c] for c in order}


def read_scene(t: _Opened, name: str, load_points: bool = True):
    """Scene ``name`` of the tables as a checked :class:`~occkit.data.scene_record.SceneRecord`;
    ``load_points`` False: no points, and boxes at the keyframes only (the check of every scene
    before any work, which on trainval would otherwise interpolate every sweep's boxes twice). A record
    that lacks a field is named by its table file (:func:`occkit.data.nuscenes_raw.fields_named`)."""
    from occkit.data.nuscenes_raw import fields_named

    with fields_named(t.root, t.version, f"a record of scene {name!r}"):
        return _read_scene(t, name, load_points)


def _read_scene(t: _Opened, name: str, load_points: bool):
    import numpy as np

    from occkit.data.nuscenes_tables import LIDAR_CHANNEL, NUSCENES_EGO_CENTER, NUSCENES_EGO_SIZE
    from occkit.data.pcd_bin import read_pcd_bin
    from occkit.data.scene_record import SceneRecord, Sweep, check_record

    scene = t.scene_by_name[name]  # one of the scenes (RecordingReader.read_scene)
    samples = t.db.samples(scene)
    rows = t.lidar_rows(scene, samples)
    lidars: dict[str, np.ndarray] = {}
    sensor_of: dict[str, str] = {}
    sweeps = []
    for r in rows:
        where = f"{LIDAR_CHANNEL} sample_data {r['token']!r} of scene {name}"
        cs_tok = r["calibrated_sensor_token"]
        if cs_tok not in sensor_of:
            cs = t.db.get("calibrated_sensor", cs_tok, where)
            sensor_of[cs_tok] = LIDAR_CHANNEL if not lidars else f"{LIDAR_CHANNEL}#{len(lidars) + 1}"
            lidars[sensor_of[cs_tok]] = t.db.pose(cs)
        ep = t.db.get("ego_pose", r["ego_pose_token"], where)
        rel = t.db.file(r, f"the points of {where}")
        key = bool(r["is_key_frame"])
        if load_points:
            pts = read_pcd_bin(t.root / rel).numpy()
            points, intensity = pts[:, :3].copy(), pts[:, 3].copy()
            labels = _point_labels(t, r["token"], len(points)) if key else None
        else:
            points, intensity, labels = np.zeros((0, 3), np.float32), None, None
        sweeps.append(
            Sweep(
                token=r["sample_token"] if key else r["token"],
                timestamp=int(r["timestamp"]),
                sensor=sensor_of[cs_tok],
                T_global_from_ego=t.db.pose(ep),
                points=points,
                labels=labels,
                intensity=intensity,
                keyframe=key,
                # the cheap check reads the annotations at the keyframes (a sweep's are interpolated from them)
                boxes=_boxes(t, r["token"]) if key or load_points else None,
                source=f"{t.root / rel}",
                row=f"{t.db.table('sample_data')}: {where}",
            )
        )
    rec = SceneRecord(
        name=name,
        sweeps=sweeps,
        lidars=lidars,
        cameras=_cameras(t, samples[0]),
        classes=t.classes,
        ego_size=NUSCENES_EGO_SIZE,
        ego_center=NUSCENES_EGO_CENTER,
        source=f"{t.db.table('scene')}: {name}",
    )
    check_record(rec)
    return rec


@dataclass(frozen=True)
class NuScenesOptions(ReaderOptions):
    """The options of nuScenes tables."""

    version: str | None = option("the table folder under --data (default: the one v1.0-* folder there)", metavar="V")


class NuScenesReader(RecordingReader[NuScenesOptions], name="nuscenes", priority=30, extra="nuscenes"):
    """nuScenes tables read with nuscenes-devkit (docs/labels.md, "nuScenes tables")."""

    description = "nuScenes tables (a root holding v1.0-*/) through nuscenes-devkit"

    @classmethod
    def detect(cls, path: Path) -> str | None:
        found = table_folders(path)
        return f"{path / found[0] / 'sample_data.json'}" if found else None

    def __init__(self, source: Path, options: NuScenesOptions, wanted: list[str] | None = None) -> None:
        from occkit.data.nuscenes_raw import fields_named

        path = source
        version = resolve_version(path, options.version)
        super().__init__(source, dataclasses.replace(options, version=version), wanted)  # a worker opens the same
        with fields_named(path, version, "a record"):
            t = _tables(path, version)
            scenes = sorted(t.scene_by_name)
            for s in wanted or scenes:  # the image paths of the scenes asked for (an unknown one is refused by name)
                if s in t.scene_by_name:
                    self.images.update(t.images(t.db.samples(t.scene_by_name[s])))
        check_images(path, self.images, t.db.table("sample_data"))
        samples = path / "samples"
        self.version = version
        self.classes = t.classes
        self._scenes = scenes
        self.splits = official_splits(scenes, version)
        self.image_links = {"samples": samples} if samples.is_dir() else {}
        self.describe = f"nuScenes {version} at {path}, {len(scenes)} scene(s)"

    def read(self, scene: str, load_points: bool = True) -> Any:
        return read_scene(_tables(self.source, self.version), scene, load_points)


READER = NuScenesReader
