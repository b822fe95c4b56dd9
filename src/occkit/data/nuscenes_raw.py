"""Raw nuScenes (``v1.0-*`` tables, ``samples/``, ``sweeps/``) read with nuScenes-devkit into the
frame records occkit needs beyond Occ3D's files: ``occkit prepare nuscenes``.

Occ3D-nuScenes gives the occupancy labels, the camera images' paths and poses; the LiDAR that
RayIoU's ray origins, the LiDAR teachers (RadOcc), LangOcc's LiDAR rays and the ``render_sup``
LiDAR targets need lives in nuScenes itself. :func:`prepare_nuscenes` walks the tables with
nuScenes-devkit's own ``NuScenes`` class and writes one JSON file, ``infos.json`` (see
docs/formats/nuscenes.md for every field)::

    {"format": "occkit-nuscenes-infos", "format_version": 1, "nuscenes_version": "v1.0-trainval",
     "dataroot": "/abs/path/to/nuscenes", "max_sweeps": 10, "occ3d": "/abs/path" | null,
     "infos": [frame, ...]}

with one ``frame`` per keyframe (sample), scene by scene in time order: ``token`` (the sample
token = the Occ3D frame token), ``scene_name``, ``scene_token``, ``frame_index``, ``timestamp``,
``prev`` / ``next`` (sample tokens, "" at a scene's ends), ``split`` (the Occ3D split, or null),
``lidar_token``, ``lidar_path`` (relative to ``dataroot``), ``lidar2ego_translation`` /
``lidar2ego_rotation`` (w, x, y, z), ``ego2global_translation`` / ``ego2global_rotation``, ``sweeps``
(the LiDAR ``sample_data`` before the keyframe, newest first, up to ``max_sweeps``: ``data_path``,
``sample_data_token``, ``timestamp``, ``is_key_frame``, ``sensor2ego_*``, ``ego2global_*`` and
``sensor2lidar_rotation`` (3, 3) / ``sensor2lidar_translation``, which take a sweep's points into
the keyframe's LiDAR frame: ``p @ R.T + t``) and ``cams`` (per camera: ``data_path``,
``sample_data_token``, ``timestamp``, ``cam_intrinsic`` (3, 3), ``sensor2ego_*``, ``ego2global_*``,
``sensor2lidar_*``). The names are those of the mmdet3d-era info files, so occkit's readers
(:func:`occkit.metrics.rayiou.load_nuscenes_infos`, :func:`occkit.data.lidar_sweeps.load_lidar_infos`)
and other tools read it as they read those; no pickles.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from occkit.data.nuscenes_tables import LIDAR_CHANNEL, NUSCENES_TABLES, POINT_LABEL_TABLES, TABLE_FIELDS, TABLE_MARKS
from occkit.data.scene_record import BOX_LIMIT_M
from occkit.fileio import read_json, write_json_atomic

#: The bytes of one point of a nuScenes LiDAR file (``.pcd.bin``: x y z intensity ring, float32).
PCD_BIN_POINT_BYTES = 20

INFOS_FILE = "infos.json"
"""The file ``occkit prepare nuscenes`` writes in its ``--out`` folder."""
FORMAT_NAME = "occkit-nuscenes-infos"
FORMAT_VERSION = 1
DEFAULT_VERSION = "v1.0-trainval"
DEFAULT_SWEEPS = 10
"""LiDAR sweeps kept per keyframe (mmdet3d's default: 0.5 s at 20 Hz)."""

SCENE_PARTS = ".scenes"
"""Folder (inside the output being written) of one JSON file per finished scene while
``prepare`` runs: a stopped run resumes with the scenes it lacks."""


def import_devkit() -> Any:
    """nuScenes-devkit's ``NuScenes`` class, or a one-line error saying how to install it."""
    try:
        from nuscenes.nuscenes import NuScenes
    except ImportError as e:
        raise ValueError(
            f"needs nuscenes-devkit ({e}): pip install 'occkit[nuscenes]' && pip install --no-deps "
            "'nuscenes-devkit>=1.1' (without its numpy<2 pin; docs/formats/nuscenes.md)"
        ) from e
    return NuScenes


def resolve_version(
    dataroot: str | os.PathLike, version: str | None, option: str = "--dataroot", default: str | None = DEFAULT_VERSION
) -> str:
    """``--version`` checked against the ``v1.0-*`` table folders under ``dataroot`` (``option`` names it:
    prepare's ``--dataroot``, label's ``--data``): a folder's name (with a slash, as a shell completes it) or its
    path; None: ``default`` where it is there, else the one folder (several: refused, listing them). Errors name
    the folder and the versions found."""
    root = Path(dataroot)
    if not root.is_dir():
        raise FileNotFoundError(f"{option} {root}: no such folder (the nuScenes root: v1.0-*/, samples/, sweeps/)")
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith("v1.0-"))
    listed = ", ".join(found)
    if not found:
        raise FileNotFoundError(f"{option} {root}: {_not_a_root(root, option)}")
    if version is None:
        if default not in found and len(found) > 1:
            raise ValueError(f"{option} {root}: holds several nuScenes table folders ({listed}); pass --version")
        return default if default in found else found[0]
    given, version = version, version.rstrip("/\\")  # v1.0-mini/ as a shell completes it: the folder's name
    if not version:
        raise ValueError(f"--version {given!r}: empty; name a table folder under {option} {root} ({listed})")
    if len(Path(version).parts) > 1:  # a path: taken when it is one of the root's table folders
        named = Path(version) if Path(version).is_absolute() else root / version
        match = [f for f in found if named.exists() and named.resolve() == (root / f).resolve()]
        if not match:
            raise ValueError(
                f"--version {given}: a path, not one of the table folders under {option} {root} ({listed}); "
                f"--version takes the folder's name, as {option} names the root"
            )
        return match[0]
    folder = root / version
    lacks = [m for m in TABLE_MARKS if not (folder / m).is_file()]
    if version not in found and lacks:
        why = (
            f"a folder without {', '.join(lacks)}, so not a nuScenes table folder"
            if folder.is_dir()
            else "no such folder"
        )
        raise FileNotFoundError(f"--version {version}: {folder}: {why} ({option} holds {listed})")
    return version


def _not_a_root(root: Path, option: str) -> str:
    """What a folder without a ``v1.0-*`` table folder is, said as its error ends."""
    if all((root / m).is_file() for m in TABLE_MARKS):
        return (
            f"is a table folder itself (sample_data.json, ...); give the nuScenes root that holds it, {option} "
            f"{root.parent} --version {root.name}"
        )
    if (root / "annotations.json").is_file() and (root / "gts").is_dir():
        return (
            "an Occ3D-nuScenes folder (annotations.json, gts/), not the nuScenes root; give the folder that holds "
            f"v1.0-*/, samples/ and sweeps/ as {option}"
        )
    return (
        "holds no nuScenes table folder (v1.0-*/), so it is not the nuScenes root (the folder with v1.0-trainval/ "
        "or another v1.0-*, samples/, sweeps/, maps/)"
    )


def check_tables(
    dataroot: str | os.PathLike, version: str, command: str = "prepare", option: str = "--dataroot"
) -> None:
    """Every table nuScenes-devkit opens, and every map mask ``map.json`` names, is there: else a
    one-line error naming the first missing file (in the words of ``command``, whose ``option`` names the
    root: ``occkit label`` says ``label`` and ``--data``)."""
    root = Path(dataroot)
    for name in NUSCENES_TABLES:
        f = root / version / f"{name}.json"
        if not f.is_file():
            raise FileNotFoundError(
                f"{f}: missing: the nuScenes table {name!r}, which {command} needs (every one of "
                f"{', '.join(NUSCENES_TABLES)}); is {option} the folder holding {version}/?"
            )
    maps = read_json(root / version / "map.json")
    if not isinstance(maps, list) or not maps:
        raise ValueError(f"{root / version / 'map.json'}: expected a non-empty list of map records")
    for m in maps:
        f = root / str(m.get("filename", "")) if isinstance(m, dict) else None
        if f is None or not f.is_file():
            raise FileNotFoundError(
                f"{f}: missing: the map mask that {root / version / 'map.json'} names (nuscenes-devkit opens it)"
            )


def _matrix(translation: Any, rotation: Any) -> np.ndarray:
    """``(4, 4)`` float64 from a nuScenes pose (translation, quaternion w, x, y, z, normalised here; both
    checked before: :func:`check_values`, :class:`~occkit.data.info_schema.EgoFramePose`):
    :func:`occkit.geometry.transforms.transform_from_pose`'s formula in numpy (no torch: prepare makes two per
    sensor record, millions on the real trainval)."""
    q = np.asarray(rotation, np.float64)
    w, x, y, z = q / np.sqrt((q * q).sum())
    T = np.eye(4)
    T[:3, :3] = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    T[:3, 3] = np.asarray(translation, np.float64)
    return T


def _rigid_inverse(T: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = T[:3, :3].T
    out[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return out


class _Tables:
    """The devkit's tables (loaded by :func:`load_nuscenes`, their numbers checked) with the checks ``prepare``
    and the reader make on what they look up: a record that names a token its table lacks, a sample without
    its LiDAR, a file that is not on disk are each one line naming the table file, the token and the file (the
    devkit's own errors named neither)."""

    def __init__(self, nusc: Any, root: Path, version: str) -> None:
        self.nusc, self.root, self.version = nusc, root, version

    def table(self, name: str) -> Path:
        return self.root / self.version / f"{name}.json"

    def get(self, table: str, token: Any, where: str) -> dict[str, Any]:
        try:
            return self.nusc.get(table, token)
        except KeyError:
            raise ValueError(
                f"{self.table(table)}: no record {token!r}, which {where} names (the tables are incomplete, or from "
                "two versions?)"
            ) from None

    @staticmethod
    def pose(rec: dict[str, Any]) -> np.ndarray:
        """``(4, 4)`` of a ``calibrated_sensor`` or ``ego_pose`` record (finite and rigid: :func:`check_values`)."""
        return _matrix(rec["translation"], rec["rotation"])

    def lidar(self, sample: dict[str, Any], where: str) -> dict[str, Any]:
        """The ``sample_data`` of a sample's LiDAR keyframe (``where``: the sample, for the error)."""
        if LIDAR_CHANNEL not in sample["data"]:
            raise ValueError(f"{self.table('sample')}: {where} has no {LIDAR_CHANNEL} keyframe")
        return self.get("sample_data", sample["data"][LIDAR_CHANNEL], where)

    def samples(self, scene: dict[str, Any]) -> list[dict[str, Any]]:
        """The scene's samples, first to last along ``next`` (links that loop refused: the walk would not end)."""
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        token = scene["first_sample_token"]
        while token:
            if token in seen:
                raise ValueError(
                    f"{self.table('sample')}: scene {scene['name']}: sample {token!r} comes again along 'next' after "
                    f"{len(out)} samples (the samples' next links loop): an edited or damaged table"
                )
            seen.add(token)
            out.append(self.get("sample", token, f"scene {scene['name']}"))
            token = out[-1]["next"]
        return out

    def file(self, sd: dict[str, Any], what: str) -> str:
        """The ``filename`` of a ``sample_data`` record, which must be on disk under the root."""
        name = sd.get("filename")
        if isinstance(name, str) and (Path(name).is_absolute() or ".." in Path(name).parts):
            why = "an absolute path" if Path(name).is_absolute() else "it climbs out with .."
            raise ValueError(
                f"{self.table('sample_data')}: sample_data {sd.get('token')!r} names the file {name!r}, which lies "
                f"outside --dataroot {self.root} ({why}); a nuScenes file name is relative to the root"
            )
        if not isinstance(name, str) or not name or not (self.root / name).is_file():
            raise FileNotFoundError(
                f"{self.root / str(name)}: missing: the file of sample_data {sd.get('token')!r} "
                f"({self.table('sample_data')}), {what}"
            )
        if name.endswith(".pcd.bin"):
            self._check_lidar_size(self.root / name, sd, what)
        return name

    def _check_lidar_size(self, f: Path, sd: dict[str, Any], what: str) -> None:
        """A LiDAR file's size is a whole number of points (5 float32 each: x y z intensity ring): a
        truncated one is refused, an empty one (a sweep with no returns) said once."""
        size = f.stat().st_size
        whose = f"the file of sample_data {sd.get('token')!r} ({self.table('sample_data')}), {what}"
        if size % PCD_BIN_POINT_BYTES:
            raise ValueError(
                f"{f}: {size} bytes, not a whole number of points ({PCD_BIN_POINT_BYTES} bytes each: 5 float32): "
                f"truncated or not a nuScenes LiDAR file; {whose}"
            )
        warned = self.__dict__.setdefault("_empty_said", set())
        if size == 0 and f not in warned:
            warned.add(f)
            print(
                f"occkit: warning: {f}: empty (a LiDAR sweep with no returns), recorded as it is; {whose}",
                file=sys.stderr,
            )


def _pose_fields(prefix: str, rec: dict[str, Any]) -> dict[str, list[float]]:
    return {
        f"{prefix}_translation": list(map(float, rec["translation"])),
        f"{prefix}_rotation": list(map(float, rec["rotation"])),
    }


def _sensor_record(db: _Tables, sd_token: str, T_lidar_from_global: np.ndarray, what: str) -> dict[str, Any]:
    """A ``sample_data``'s path, time, poses, its frame in the keyframe's LiDAR frame and a camera's intrinsic."""
    sd = db.get("sample_data", sd_token, what)
    cs = db.get("calibrated_sensor", sd["calibrated_sensor_token"], f"sample_data {sd_token}")
    ep = db.get("ego_pose", sd["ego_pose_token"], f"sample_data {sd_token}")
    T = T_lidar_from_global @ (db.pose(ep) @ db.pose(cs))  # the sensor's frame in the keyframe's LiDAR frame
    return {
        "data_path": db.file(sd, what),
        "sample_data_token": sd["token"],
        "timestamp": int(sd["timestamp"]),
        "is_key_frame": bool(sd["is_key_frame"]),
        **_pose_fields("sensor2ego", cs),
        **_pose_fields("ego2global", ep),
        "sensor2lidar_rotation": T[:3, :3].tolist(),
        "sensor2lidar_translation": T[:3, 3].tolist(),
        **({"cam_intrinsic": cs["camera_intrinsic"]} if sd.get("sensor_modality") == "camera" else {}),
    }


def frame_record(
    db: _Tables, sample: dict[str, Any], frame_index: int, scene: dict[str, Any], max_sweeps: int
) -> dict[str, Any]:
    """The ``infos.json`` entry of one sample (see the module's docstring)."""
    where = f"sample {sample['token']} of {scene['name']}"
    sd = db.lidar(sample, where)
    cs = db.get("calibrated_sensor", sd["calibrated_sensor_token"], f"sample_data {sd['token']}")
    ep = db.get("ego_pose", sd["ego_pose_token"], f"sample_data {sd['token']}")
    T_lidar_from_global = _rigid_inverse(db.pose(ep) @ db.pose(cs))
    lidar_path = db.file(sd, f"the {LIDAR_CHANNEL} keyframe of {where}")
    sweeps = []
    prev = sd["prev"]
    while prev and len(sweeps) < max_sweeps:
        sweeps.append(_sensor_record(db, prev, T_lidar_from_global, f"a {LIDAR_CHANNEL} sweep before {where}"))
        prev = db.get("sample_data", prev, f"a {LIDAR_CHANNEL} sweep before {where}")["prev"]
    cams = {
        ch: _sensor_record(db, token, T_lidar_from_global, f"the {ch} keyframe of {where}")
        for ch, token in sample["data"].items()
        if db.get("sample_data", token, where).get("sensor_modality") == "camera"
    }
    return {
        "token": sample["token"],
        "scene_name": scene["name"],
        "scene_token": scene["token"],
        "frame_index": frame_index,
        "timestamp": int(sample["timestamp"]),
        "prev": sample["prev"],
        "next": sample["next"],
        "split": None,
        "lidar_token": sd["token"],
        "lidar_path": lidar_path,
        **_pose_fields("lidar2ego", cs),
        **_pose_fields("ego2global", ep),
        "sweeps": sweeps,
        "cams": cams,
    }


def scene_records(
    db: _Tables, scene: dict[str, Any], max_sweeps: int, samples: dict[str, list[str]]
) -> list[dict[str, Any]]:
    """Every keyframe of ``scene`` (a ``scene`` row), first to last along ``next`` (:meth:`_Tables.samples`);
    each with the cameras the scene's samples have (a sample missing one of them is one line naming it). A
    ``first_sample_token`` from which ``next`` misses samples of the scene (``samples``: scene token -> its samples)
    is refused in one line naming the table, the scene and the token: it would lose keyframes."""
    out = [frame_record(db, s, i, scene, max_sweeps) for i, s in enumerate(db.samples(scene))]
    ours, reached = samples.get(str(scene.get("token")), []), {f["token"] for f in out}
    lost = [t for t in ours if t not in reached]
    if lost:
        raise ValueError(
            f"{db.table('scene')}: scene {scene['name']}: first_sample_token {scene['first_sample_token']!r} is not "
            f"the scene's first sample: along 'next' it reaches {len(out)} of the scene's {len(ours)} samples in "
            f"{db.table('sample').name}, not {lost[0]!r}{f' and {len(lost) - 1} more' if len(lost) > 1 else ''} "
            "(their keyframes would be lost): an edited or damaged table"
        )
    cameras = sorted({ch for f in out for ch in f["cams"]})
    for f in out:
        lacking = [ch for ch in cameras if ch not in f["cams"]]
        if lacking:
            raise ValueError(
                f"{db.table('sample')}: sample {f['token']} of {scene['name']} has no {', '.join(lacking)} keyframe, "
                f"which the scene's other samples have ({len(cameras)} cameras: {', '.join(cameras)}); its "
                f"sample_data ({db.table('sample_data')}) lacks the image"
            )
    return out


def _check_occ3d(frames: list[dict[str, Any]], occ3d: Path, tol: float = 1e-3) -> None:
    """Mark each frame's Occ3D split; every Occ3D frame must be a sample of the tables, and its ego
    pose the tables' (a warning line when it differs by more than ``tol``)."""
    from occkit.data.info_schema import EgoFramePose, Occ3DIndex
    from occkit.schema import validate

    path = occ3d / "annotations.json"
    ann = validate(Occ3DIndex, read_json(path), str(path))
    split = {scene: name for name in ("train", "val", "test") for scene in getattr(ann, f"{name}_split") or []}
    occ = {t: (scene, info) for scene, infos in ann.scene_infos.items() for t, info in infos.items()}
    by_token = {f["token"]: f for f in frames}
    absent = [t for t in occ if t not in by_token]
    if absent:
        raise ValueError(
            f"{path}: {len(absent)} of {len(occ)} Occ3D frames are not samples of these nuScenes tables (e.g. "
            f"{absent[:3]}): another nuScenes version, or another dataset?"
        )
    worst, where = 0.0, ""
    for t, (scene, info) in occ.items():
        f = by_token[t]
        f["split"] = split.get(scene)
        if info.get("ego_pose") is None:
            continue
        pose = validate(EgoFramePose, info["ego_pose"], f"{path}: scene {scene}, frame {t}: ego_pose")
        ours = _matrix(f["ego2global_translation"], f["ego2global_rotation"])
        d = float(np.abs(_matrix(pose.translation, pose.rotation) - ours).max())
        if d > worst:
            worst, where = d, t
    if worst > tol:
        print(
            f"occkit prepare: warning: the ego pose of Occ3D frame {where} differs from the nuScenes tables' by "
            f"{worst:.3g} (more than {tol}); RayIoU's origins come from the tables",
            file=sys.stderr,
        )


def _table_naming(root: Path, version: str, token: Any) -> Path | None:
    """The first table file that holds ``token`` as a reference (an error's path only: it reads the tables)."""
    if not isinstance(token, str) or not token:
        return None
    needle = f'"{token}"'.encode()
    for name in NUSCENES_TABLES:
        f = root / version / f"{name}.json"
        try:
            if needle in f.read_bytes():
                return f
        except OSError:
            continue
    return None


def _json_kind(value: Any) -> str:
    """What a JSON value is, in JSON's words (an error's)."""
    kinds = ((bool, "boolean"), (dict, "object"), (list, "list"), (str, "string"), (int, "number"), (float, "number"))
    return next((word for kind, word in kinds if isinstance(value, kind)), "null" if value is None else "value")


def table_problem(root: str | os.PathLike, version: str, field: str | None = None) -> str | None:
    """The first table file under ``root/version`` (in the order nuscenes-devkit loads them, the point label
    tables where they are there) that is not a nuScenes table, as one line naming that file: not valid JSON,
    not a JSON list, a record that is not an object or has no string ``token``, or (``field``) a record that
    lacks ``field`` where its table's records have it (:data:`occkit.data.nuscenes_tables.TABLE_FIELDS`);
    None when every table reads. For errors only: it reads every table."""
    folder = Path(root) / version
    names = [*NUSCENES_TABLES, *(t for t in POINT_LABEL_TABLES if (folder / f"{t}.json").is_file())]
    for name in names:
        f = folder / f"{name}.json"
        try:
            rows = read_json(f)
        except ValueError as e:  # read_json's line names the file
            return str(e)
        except OSError as e:
            return f"{f}: cannot be read ({e.strerror or e})"
        if not isinstance(rows, list):
            return (
                f"{f}: holds a JSON {_json_kind(rows)}, not a list of {name} records (a nuScenes table is a JSON "
                "list of objects)"
            )
        wanted = field if field is not None and field in TABLE_FIELDS.get(name, ()) else None
        for i, r in enumerate(rows):
            if not isinstance(r, dict):
                return f"{f}: record [{i}] is a JSON {_json_kind(r)}, not an object (every {name} record is one)"
            token = r.get("token")
            if not isinstance(token, str) or not token:
                said = "has no 'token'" if "token" not in r else f"has the token {token!r}, not a non-empty string"
                return f"{f}: record [{i}] {said} (every {name} record has one)"
            if wanted is not None and wanted not in r:
                return f"{f}: record [{i}] (token {token!r}) lacks the field {wanted!r}, which every {name} record has"
    return None


def _table_in_message(root: Path, version: str, message: str) -> Path | None:
    """The table file a message of nuscenes-devkit speaks of (``category.json``, ``3 lidarseg records``, ``not
    in map table``), or None."""
    import re

    for name in (*NUSCENES_TABLES, *POINT_LABEL_TABLES):
        if re.search(rf"\b{name}\.json\b|\b{name} (?:records|table)\b", message):
            return Path(root) / version / f"{name}.json"
    return None


#: The numbers of the tables' records, checked as the tables load (:func:`check_values`): ``{table: {field: kind}}``
#: with kind ``"3"`` / ``"4"`` (that many finite numbers), ``"size"`` (3 positive finite numbers, none over
#: :data:`~occkit.data.scene_record.BOX_LIMIT_M`), ``"unit4"`` (a unit quaternion w, x, y, z), ``"K"`` (a finite
#: 3 x 3, or empty: not a camera), ``"int"`` (a whole number), ``"bool"`` (true or false).
TABLE_VALUES: dict[str, dict[str, str]] = {
    "sample_annotation": {"translation": "3", "size": "size", "rotation": "unit4"},
    "ego_pose": {"translation": "3", "rotation": "unit4", "timestamp": "int"},
    "calibrated_sensor": {"translation": "3", "rotation": "unit4", "camera_intrinsic": "K"},
    "sample": {"timestamp": "int"},
    "sample_data": {"timestamp": "int", "is_key_frame": "bool"},
}
#: How far a quaternion's norm may lie from 1.
UNIT_TOLERANCE = 1e-3


def _numbers(v: Any, n: int) -> bool:
    return isinstance(v, list) and len(v) == n and all(type(x) in (int, float) for x in v)


def _bad_value(vals: list[Any], kind: str) -> tuple[int, str] | None:
    """The first of ``vals`` (one field over a whole table) that is not of ``kind`` (:data:`TABLE_VALUES`), by
    its index, and why; None when every one is. The numbers are checked in numpy over the table (a million
    records on trainval), their types in Python where they do not make one array."""
    if kind in ("int", "bool"):
        words = "a whole number" if kind == "int" else "true or false"
        rules = [([type(v) is (int if kind == "int" else bool) for v in vals], f"is not {words}")]
    elif kind == "K":  # a few records a camera's; [] a sensor's that is no camera
        shaped = [v == [] or (isinstance(v, list) and len(v) == 3 and all(_numbers(r, 3) for r in v)) for v in vals]
        finite = [
            not ok or v == [] or bool(np.isfinite(np.asarray(v, np.float64)).all()) for ok, v in zip(shaped, vals)
        ]
        rules = [(shaped, "is not a 3 x 3 matrix of numbers (or [] for a sensor that is no camera)")]
        rules += [(finite, "is not finite (NaN or infinite)")]
    else:
        n = 4 if kind == "unit4" else 3
        try:
            a = np.asarray(vals)
        except (TypeError, ValueError):  # lists of several lengths
            a = np.zeros(0)
        if a.shape != (len(vals), n) or a.dtype.kind not in "iuf":
            shaped = [_numbers(v, n) for v in vals]
            if not all(shaped):
                return shaped.index(False), f"is not a list of {n} numbers"
            a = np.asarray(vals, np.float64).reshape(len(vals), n)
        a = a.astype(np.float64)
        norm = np.sqrt((a * a).sum(1))
        rules = [(np.isfinite(a).all(1), "is not finite (NaN or infinite)")]
        if kind == "size":
            rules += [((a > 0).all(1), "has a side that is not positive")]
            rules += [
                (
                    (a <= BOX_LIMIT_M).all(1),
                    f"has a side over {BOX_LIMIT_M:g} m (no object is that large; other units, or corrupt)",
                )
            ]
        if kind == "unit4":
            rules += [
                (
                    np.abs(norm - 1.0) <= UNIT_TOLERANCE,
                    "is not a unit quaternion (w, x, y, z; norm {norm:.6g}): not a rigid rotation",
                )
            ]
    ok = np.stack([np.asarray(r, bool).reshape(len(vals)) for r, _ in rules], 1)
    bad = np.flatnonzero(~ok.all(1))
    if not len(bad):
        return None
    i = int(bad[0])
    return i, rules[int(np.argmin(ok[i]))][1].format(norm=float(norm[i]) if kind == "unit4" else 0.0)


def check_values(nusc: Any, root: Path, version: str) -> None:
    """The numbers of the loaded tables (:data:`TABLE_VALUES`) and their scene names, checked once as the
    tables load: a NaN translation, a size that is not positive, a rotation that is not a unit quaternion,
    a timestamp that is no whole number, two scenes of one name are each one line naming the table file, the
    record's token and the field (nuscenes-devkit's own asserts meet them later, naming nothing)."""
    folder = Path(root) / version
    for table, fields in TABLE_VALUES.items():
        rows = getattr(nusc, table, None) or []
        for field, kind in fields.items():
            bad = _bad_value([r.get(field) for r in rows], kind)
            if bad is not None:
                r = rows[bad[0]]
                raise ValueError(
                    f"{folder / f'{table}.json'}: record {r.get('token')!r}: {field} {r.get(field)!r} {bad[1]}"
                )
    first: dict[str, Any] = {}
    for s in getattr(nusc, "scene", None) or []:
        name = s.get("name")
        if name in first:
            raise ValueError(
                f"{folder / 'scene.json'}: two scenes are named {name!r} (tokens {first[name]!r} and "
                f"{s.get('token')!r}): a scene's name names its labels and its split, so each needs its own"
            )
        first[name] = s.get("token")


def load_nuscenes(root: Path, version: str) -> Any:
    """nuScenes-devkit's ``NuScenes(version, root)`` (quiet), its errors as one line naming the table file at
    fault (:func:`table_error`); the loaded tables' numbers and scene names are checked then
    (:func:`check_values`)."""
    NuScenes = import_devkit()
    try:
        nusc = NuScenes(version=version, dataroot=str(root), verbose=False)
    except Exception as e:  # the devkit's errors name no file: find the table at fault
        raise table_error(root, version, e) from None
    check_values(nusc, root, version)
    return nusc


def table_error(root: Path, version: str, e: Exception, what: str = "") -> ValueError:
    """The one-line error of ``e``, met loading the tables with nuscenes-devkit or (``what``: a record) reading
    their records, naming the table file at fault: one that is not a nuScenes table (:func:`table_problem`: not
    JSON, not a list of records, a record without the field a ``KeyError`` names); else, reading ``what``, the
    field it lacks; else a ``KeyError`` of the devkit's index: the table that names the token no record holds;
    else the table the devkit's message speaks of, or the table folder."""
    key = e.args[0] if isinstance(e, KeyError) and e.args else None
    bad = table_problem(root, version, key if isinstance(key, str) else None)
    folder = Path(root) / version
    if bad is not None:
        return ValueError(bad)
    if isinstance(e, KeyError) and what:
        return ValueError(
            f"{folder}: {what} lacks the field {key!r} that nuScenes tables have (an edited or truncated table?)"
        )
    if isinstance(e, KeyError):
        return ValueError(
            f"{_table_naming(root, version, key) or folder}: names the token {key!r}, which no record of the table it "
            "refers to holds (nuscenes-devkit's index stopped there: the tables are incomplete, or from two versions?)"
        )
    table = _table_in_message(root, version, str(e))
    said = (
        f"{table}: nuscenes-devkit cannot load this table"
        if table
        else f"{folder}: nuscenes-devkit cannot load these tables"
    )
    return ValueError(f"{said} ({type(e).__name__}: {e})")


@contextmanager
def fields_named(root: Path, version: str, what: str) -> Iterator[None]:
    """A ``KeyError`` met reading ``what`` (a record of the tables lacks a field) as :func:`table_error`'s line."""
    try:
        yield
    except KeyError as e:
        raise table_error(root, version, e, what) from None


def tables_key(dataroot: Path, version: str) -> dict[str, Any]:
    """What identifies the input of a run: each table's size and modification time."""
    key = {}
    for name in NUSCENES_TABLES:
        st = (dataroot / version / f"{name}.json").stat()
        key[name] = [st.st_size, st.st_mtime_ns]
    return key


def prepare_nuscenes(
    dataroot: str | os.PathLike,
    out: str | os.PathLike,
    version: str | None = None,
    occ3d: str | os.PathLike | None = None,
    max_sweeps: int = DEFAULT_SWEEPS,
    progress: Callable[[str], None] | None = None,
) -> tuple[Path, int]:
    """Write ``out/infos.json`` (see the module's docstring) for the nuScenes tables at ``dataroot``.

    ``out`` is the folder being filled (the command writes into a hidden folder and renames it):
    each finished scene is kept in ``out/.scenes/`` and a run that stops is resumed by calling
    again with the same ``out``; the scene files are removed once ``infos.json`` is written.
    ``occ3d``: an Occ3D-nuScenes folder (``annotations.json``) whose frames must all be samples of
    the tables; it gives each frame its ``split``. Returns the path of ``infos.json`` and its number
    of keyframes.
    """
    if not isinstance(max_sweeps, int) or max_sweeps < 0:
        raise ValueError(f"--sweeps: expected an integer >= 0, got {max_sweeps!r}")
    root = Path(dataroot).absolute()
    version = resolve_version(root, version)
    check_tables(root, version)
    occ = Path(occ3d).absolute() if occ3d is not None else None
    if occ is not None and not (occ / "annotations.json").is_file():
        raise FileNotFoundError(f"--occ3d {occ}: no annotations.json there (the Occ3D-nuScenes folder)")
    import_devkit()
    out = Path(out)
    parts = out / SCENE_PARTS
    parts.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda msg: None)
    say(f"prepare: loading the nuScenes tables of {root / version} with nuscenes-devkit")
    nusc = load_nuscenes(root, version)
    frames: list[dict[str, Any]] = []
    scenes = sorted(nusc.scene, key=lambda s: s["name"])
    samples: dict[str, list[str]] = {}  # scene token -> the tokens of its samples (each sample's scene_token)
    for rec in nusc.sample:
        samples.setdefault(str(rec.get("scene_token")), []).append(rec["token"])
    from occkit.outputs import path_under

    for i, scene in enumerate(scenes):
        part = path_under(
            parts,
            f"{scene['token']}.json",
            what=f"{root / version / 'scene.json'}: scene {scene.get('name')!r}, token",
            shown=out,
        )
        try:
            recs = json.loads(part.read_text(encoding="utf-8")) if part.is_file() else None
        except (OSError, ValueError):  # unreadable: the scene is done again
            recs = None
        if not isinstance(recs, list):
            with fields_named(root, version, f"a record of scene {scene.get('name')!r} ({scene.get('token')})"):
                recs = scene_records(_Tables(nusc, root, version), scene, max_sweeps, samples)
            write_json_atomic(part, recs, indent=None)
        frames += recs
        if (i + 1) % 50 == 0 or i + 1 == len(scenes):
            say(f"prepare: {i + 1}/{len(scenes)} scenes, {len(frames)} keyframes")
    if occ is not None:
        _check_occ3d(frames, occ)
    doc = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "nuscenes_version": version,
        "dataroot": str(root),
        "max_sweeps": max_sweeps,
        "occ3d": None if occ is None else str(occ),
        "infos": frames,
    }
    path = write_json_atomic(out / INFOS_FILE, doc, indent=None)
    shutil.rmtree(parts, ignore_errors=True)
    return path, len(frames)
