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
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from occkit.data.nuscenes_tables import LIDAR_CHANNEL, NUSCENES_TABLES, POINT_LABEL_TABLES, TABLE_FIELDS
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


def resolve_version(dataroot: str | os.PathLike, version: str | None) -> str:
    """``version`` checked against ``dataroot``; None: ``v1.0-trainval`` when present, else the one
    ``v1.0-*`` folder there. Errors name the folder and the versions found."""
    root = Path(dataroot)
    if not root.is_dir():
        raise FileNotFoundError(f"--dataroot {root}: no such folder (the nuScenes root: v1.0-*/, samples/, sweeps/)")
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith("v1.0-"))
    if version is not None:
        given, version = version, version.rstrip("/\\")  # v1.0-mini/ as a shell completes it: the folder's name
        if not version:
            raise ValueError(f"--version {given!r}: empty; name a table folder under --dataroot {root} ({found})")
    if version is None:
        if DEFAULT_VERSION in found or len(found) != 1:
            version = DEFAULT_VERSION
        else:
            version = found[0]
    if not (root / version).is_dir():
        if not found and (root / "sample_data.json").is_file():
            raise FileNotFoundError(
                f"--dataroot {root}: is a table folder itself (sample_data.json, ...); give the nuScenes root that "
                f"holds it, --dataroot {root.parent} (with --version {root.name} if it holds several)"
            )
        if not found and (root / "annotations.json").is_file() and (root / "gts").is_dir():
            raise FileNotFoundError(
                f"--dataroot {root}: an Occ3D-nuScenes folder (annotations.json, gts/), not the nuScenes root; give "
                "the folder that holds v1.0-*/, samples/ and sweeps/ as --dataroot (and this one as --occ3d)"
            )
        if not found:
            raise FileNotFoundError(
                f"--dataroot {root}: holds no v1.0-* table folder, so it is not the nuScenes root (the folder with "
                "v1.0-trainval/ or another v1.0-*, samples/, sweeps/, maps/)"
            )
        raise FileNotFoundError(
            f"{root / version}: no such nuScenes table folder (it holds {', '.join(found)}); pass --version"
        )
    return version


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
    """``(4, 4)`` float64 from a nuScenes pose (translation, quaternion w, x, y, z, normalised here):
    :func:`occkit.geometry.transforms.transform_from_pose`'s formula in numpy (no torch: prepare
    makes two per sensor record, millions on the real trainval)."""
    q = np.asarray(rotation, np.float64)
    t = np.asarray(translation, np.float64)
    if q.shape != (4,) or t.shape != (3,):
        raise ValueError(f"pose: expected translation (3,) and rotation (4,), got {t.shape} and {q.shape}")
    norm = float(np.sqrt((q * q).sum()))
    if norm == 0:
        raise ValueError("pose: zero quaternion has no rotation")
    w, x, y, z = q / norm
    T = np.eye(4)
    T[:3, :3] = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    T[:3, 3] = t
    return T


def _rigid_inverse(T: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = T[:3, :3].T
    out[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return out


class _Tables:
    """The devkit's tables with the checks ``prepare`` makes on what it reads: a record that names a
    token its table lacks, a pose that is not finite and rigid, a file that is not on disk are each
    one line naming the table file, the token and the file (the devkit's own errors named neither)."""

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

    def pose(self, table: str, rec: dict[str, Any]) -> np.ndarray:
        """``(4, 4)`` of a ``calibrated_sensor`` or ``ego_pose`` record, checked finite and rigid."""
        t, q = rec.get("translation"), rec.get("rotation")
        try:
            t, q = np.asarray(t, np.float64), np.asarray(q, np.float64)
        except (TypeError, ValueError):
            t = q = np.zeros(0)
        if t.shape != (3,) or q.shape != (4,):
            why = f"translation {rec.get('translation')!r}, rotation {rec.get('rotation')!r}: expected 3 and 4 numbers"
        elif not (np.isfinite(t).all() and np.isfinite(q).all()):
            why = f"the pose is not finite (translation {t.tolist()}, rotation {q.tolist()})"
        elif abs(float(np.sqrt((q * q).sum())) - 1.0) > 1e-3:
            why = (
                f"rotation {q.tolist()} is not a unit quaternion (norm {float(np.sqrt((q * q).sum())):.6g}): not a "
                "rigid pose"
            )
        else:
            return _matrix(t, q)
        raise ValueError(f"{self.table(table)}: record {rec.get('token')!r}: {why}")

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
    """A ``sample_data``'s path, time, poses and its frame in the keyframe's LiDAR frame."""
    sd = db.get("sample_data", sd_token, what)
    cs = db.get("calibrated_sensor", sd["calibrated_sensor_token"], f"sample_data {sd_token}")
    ep = db.get("ego_pose", sd["ego_pose_token"], f"sample_data {sd_token}")
    T_global_from_sensor = db.pose("ego_pose", ep) @ db.pose("calibrated_sensor", cs)
    T = T_lidar_from_global @ T_global_from_sensor
    return {
        "data_path": db.file(sd, what),
        "sample_data_token": sd["token"],
        "timestamp": int(sd["timestamp"]),
        "is_key_frame": bool(sd["is_key_frame"]),
        **_pose_fields("sensor2ego", cs),
        **_pose_fields("ego2global", ep),
        "sensor2lidar_rotation": T[:3, :3].tolist(),
        "sensor2lidar_translation": T[:3, 3].tolist(),
    }


def frame_record(
    nusc: Any, sample: dict[str, Any], frame_index: int, scene: dict[str, Any], max_sweeps: int
) -> dict[str, Any]:
    """The ``infos.json`` entry of one sample (see the module's docstring); ``nusc`` the devkit's
    tables, or :class:`_Tables` around them (the checks)."""
    db = nusc if isinstance(nusc, _Tables) else _Tables(nusc, Path(nusc.dataroot), nusc.version)
    where = f"sample {sample['token']} of {scene['name']}"
    if LIDAR_CHANNEL not in sample["data"]:
        raise ValueError(f"{db.table('sample')}: {where} has no {LIDAR_CHANNEL} keyframe")
    sd = db.get("sample_data", sample["data"][LIDAR_CHANNEL], where)
    cs = db.get("calibrated_sensor", sd["calibrated_sensor_token"], f"sample_data {sd['token']}")
    ep = db.get("ego_pose", sd["ego_pose_token"], f"sample_data {sd['token']}")
    T_global_from_lidar = db.pose("ego_pose", ep) @ db.pose("calibrated_sensor", cs)
    T_lidar_from_global = _rigid_inverse(T_global_from_lidar)
    lidar_path = db.file(sd, f"the {LIDAR_CHANNEL} keyframe of {where}")
    sweeps = []
    prev = sd["prev"]
    while prev and len(sweeps) < max_sweeps:
        sweeps.append(_sensor_record(db, prev, T_lidar_from_global, f"a {LIDAR_CHANNEL} sweep before {where}"))
        prev = db.get("sample_data", prev, f"a {LIDAR_CHANNEL} sweep before {where}")["prev"]
    cams = {}
    for ch, token in sample["data"].items():
        rec = db.get("sample_data", token, where)
        if rec.get("sensor_modality") != "camera":
            continue
        cam = _sensor_record(db, token, T_lidar_from_global, f"the {ch} keyframe of {where}")
        cam["cam_intrinsic"] = db.get("calibrated_sensor", rec["calibrated_sensor_token"], f"sample_data {token}")[
            "camera_intrinsic"
        ]
        cams[ch] = cam
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


def scene_samples(nusc: Any) -> dict[str, list[str]]:
    """``{scene token: [sample token, ...]}`` of the ``sample`` table (each sample's ``scene_token``)."""
    samples = nusc.nusc.sample if isinstance(nusc, _Tables) else nusc.sample
    out: dict[str, list[str]] = {}
    for rec in samples:
        out.setdefault(str(rec.get("scene_token")), []).append(rec["token"])
    return out


def scene_records(
    nusc: Any, scene: dict[str, Any], max_sweeps: int, samples: dict[str, list[str]] | None = None
) -> list[dict[str, Any]]:
    """Every keyframe of ``scene`` (a ``scene`` row), first to last along ``next``; each with the
    cameras the scene's samples have (a sample missing one of them is one line naming it). Samples
    whose ``next`` links loop, and a ``first_sample_token`` from which ``next`` misses samples of
    the scene (``samples``: :func:`scene_samples`, computed when not given), are refused in one line
    naming the table, the scene and the token: a loop would never end, a wrong first sample would
    lose keyframes."""
    db = nusc if isinstance(nusc, _Tables) else _Tables(nusc, Path(nusc.dataroot), nusc.version)
    out = []
    seen: set[str] = set()
    first = token = scene["first_sample_token"]
    while token:
        if token in seen:
            raise ValueError(
                f"{db.table('sample')}: scene {scene['name']}: sample {token!r} comes again along 'next' after "
                f"{len(out)} samples (the samples' next links loop): an edited or damaged table"
            )
        seen.add(token)
        sample = db.get("sample", token, f"scene {scene['name']}")
        out.append(frame_record(db, sample, len(out), scene, max_sweeps))
        token = sample["next"]
    ours = (scene_samples(db) if samples is None else samples).get(str(scene.get("token")), [])
    lost = [t for t in ours if t not in seen]
    if lost:
        raise ValueError(
            f"{db.table('scene')}: scene {scene['name']}: first_sample_token {first!r} is not the scene's first "
            f"sample: along 'next' it reaches {len(out)} of the scene's {len(ours)} samples in "
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


def _occ3d_frames(occ3d: Path) -> tuple[dict[str, tuple[str, dict[str, Any]]], dict[str, str]]:
    """token -> (scene, annotation entry) and scene -> split of an Occ3D folder's annotations.json."""
    from occkit.data.info_schema import Occ3DIndex
    from occkit.schema import validate

    path = occ3d / "annotations.json"
    ann = validate(Occ3DIndex, read_json(path), str(path))
    frames = {t: (scene, info) for scene, infos in ann.scene_infos.items() for t, info in infos.items()}
    split = {scene: name for name in ("train", "val", "test") for scene in getattr(ann, f"{name}_split") or []}
    return frames, split


def _check_occ3d(frames: list[dict[str, Any]], occ3d: Path, tol: float = 1e-3) -> None:
    """Mark each frame's Occ3D split; every Occ3D frame must be a sample of the tables, and its ego
    pose the tables' (a warning line when it differs by more than ``tol``)."""
    occ, split = _occ3d_frames(occ3d)
    by_token = {f["token"]: f for f in frames}
    absent = [t for t in occ if t not in by_token]
    if absent:
        raise ValueError(
            f"{occ3d / 'annotations.json'}: {len(absent)} of {len(occ)} Occ3D frames are not samples of these nuScenes "
            f"tables (e.g. {absent[:3]}): another nuScenes version, or another dataset?"
        )
    worst, where = 0.0, ""
    for t, (scene, info) in occ.items():
        f = by_token[t]
        f["split"] = split.get(scene)
        pose = info.get("ego_pose") if isinstance(info, dict) else None
        if isinstance(pose, dict) and "translation" in pose and "rotation" in pose:
            d = float(
                np.abs(
                    _matrix(pose["translation"], pose["rotation"])
                    - _matrix(f["ego2global_translation"], f["ego2global_rotation"])
                ).max()
            )
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


#: The numbers of the tables' records, checked as the tables load (:func:`check_values`): ``(table, field, kind)``
#: with kind ``"3"`` / ``"4"`` (that many finite numbers), ``"size"`` (3 positive finite numbers), ``"unit4"`` (a
#: unit quaternion w, x, y, z), ``"K"`` (a finite 3 x 3, or empty: not a camera), ``"int"`` (a whole number),
#: ``"bool"`` (true or false).
TABLE_VALUES: tuple[tuple[str, str, str], ...] = (
    ("sample_annotation", "translation", "3"),
    ("sample_annotation", "size", "size"),
    ("sample_annotation", "rotation", "unit4"),
    ("ego_pose", "translation", "3"),
    ("ego_pose", "rotation", "unit4"),
    ("ego_pose", "timestamp", "int"),
    ("calibrated_sensor", "translation", "3"),
    ("calibrated_sensor", "rotation", "unit4"),
    ("calibrated_sensor", "camera_intrinsic", "K"),
    ("sample", "timestamp", "int"),
    ("sample_data", "timestamp", "int"),
    ("sample_data", "is_key_frame", "bool"),
)
#: How far a quaternion's norm may lie from 1 (as :meth:`_Tables.pose` allows).
UNIT_TOLERANCE = 1e-3


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _value_problem(v: Any, kind: str) -> str | None:
    """What is wrong with one value of kind ``kind`` (:data:`TABLE_VALUES`), or None."""
    if kind == "bool":
        return None if isinstance(v, bool) else "is not true or false"
    if kind == "int":
        return None if isinstance(v, int) and not isinstance(v, bool) else "is not a whole number"
    if kind == "K":
        return _intrinsic_problem(v)
    n = 4 if kind == "unit4" else 3
    if not (isinstance(v, list) and len(v) == n and all(map(_is_number, v))):
        return f"is not a list of {n} numbers"
    a = np.asarray(v, np.float64)
    if not np.isfinite(a).all():
        return "is not finite (NaN or infinite)"
    if kind == "size" and (a <= 0).any():
        return "has a side that is not positive"
    if kind == "size" and (a > BOX_LIMIT_M).any():
        return f"has a side over {BOX_LIMIT_M:g} m (no object is that large; other units, or corrupt)"
    norm = float(np.sqrt((a * a).sum()))
    if kind == "unit4" and abs(norm - 1.0) > UNIT_TOLERANCE:
        return f"is not a unit quaternion (w, x, y, z; norm {norm:.6g}): not a rigid rotation"
    return None


def _intrinsic_problem(v: Any) -> str | None:
    """What is wrong with a ``camera_intrinsic`` (a 3 x 3 matrix of finite numbers, or ``[]``), or None."""
    if v == []:
        return None
    rows = v if isinstance(v, list) and len(v) == 3 else None
    if rows is None or not all(isinstance(r, list) and len(r) == 3 and all(map(_is_number, r)) for r in rows):
        return "is not a 3 x 3 matrix of numbers (or [] for a sensor that is no camera)"
    return None if np.isfinite(np.asarray(v, np.float64)).all() else "is not finite (NaN or infinite)"


def _field_ok(rows: list[Any], field: str, kind: str) -> bool:
    """Whether every record's ``field`` passes (numpy over the whole table; :func:`_value_problem` finds the
    record when one does not)."""
    vals = [r.get(field) for r in rows]
    if not vals:
        return True
    if kind == "bool":
        return all(v is True or v is False for v in vals)
    if kind == "int":
        return all(type(v) is int for v in vals)
    if kind == "K":  # a few records a camera: checked one by one
        return all(_value_problem(v, kind) is None for v in vals)
    n = 4 if kind == "unit4" else 3
    try:
        a = np.asarray(vals)
    except (TypeError, ValueError):  # lists of several lengths
        return False
    if a.shape != (len(rows), n) or a.dtype.kind not in "iuf" or not np.isfinite(a).all():
        return False
    if kind == "size":
        return bool(((a > 0) & (a <= BOX_LIMIT_M)).all())
    if kind == "unit4":
        return bool((np.abs(np.sqrt((a.astype(np.float64) ** 2).sum(1)) - 1.0) <= UNIT_TOLERANCE).all())
    return True


def check_values(nusc: Any, root: Path, version: str) -> None:
    """The numbers of the loaded tables (:data:`TABLE_VALUES`) and their scene names, checked once as the
    tables load: a NaN translation, a size that is not positive, a rotation that is not a unit quaternion,
    a timestamp that is no whole number, two scenes of one name are each one line naming the table file, the
    record's token and the field (nuscenes-devkit's own asserts meet them later, naming nothing)."""
    folder = Path(root) / version
    for table, field, kind in TABLE_VALUES:
        rows = getattr(nusc, table, None) or []
        if _field_ok(rows, field, kind):
            continue
        for r in rows:
            why = _value_problem(r.get(field), kind)
            if why is not None:
                raise ValueError(
                    f"{folder / f'{table}.json'}: record {r.get('token')!r}: {field} {r.get(field)!r} {why}"
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
    """nuScenes-devkit's ``NuScenes(version, root)`` (quiet), its errors as one line naming the table
    file at fault: one that is not a nuScenes table (:func:`table_problem`: not JSON, not a list of
    records, a record without a field the devkit reads), one that names a missing token, one the
    devkit's message speaks of; else the table folder. The loaded tables' numbers and scene names are
    checked then (:func:`check_values`)."""
    NuScenes = import_devkit()
    try:
        nusc = NuScenes(version=version, dataroot=str(root), verbose=False)
    except Exception as e:  # the devkit's errors name no file: find the table at fault
        key = e.args[0] if isinstance(e, KeyError) and e.args and isinstance(e.args[0], str) else None
        bad = table_problem(root, version, key)
        if bad is not None:
            raise ValueError(bad) from None
        if not isinstance(e, KeyError):
            table = _table_in_message(root, version, str(e))
            said = f"{table}: nuscenes-devkit cannot load this table" if table else None
            said = said or f"{root / version}: nuscenes-devkit cannot load these tables"
            raise ValueError(f"{said} ({type(e).__name__}: {e})") from e
        # a record names a token that its table lacks: say which table names it
        token = e.args[0] if e.args else ""
        raise ValueError(
            f"{_table_naming(root, version, token) or root / version}: names the token {token!r}, which no record of "
            "the table it refers to holds (nuscenes-devkit's index stopped there: the tables are incomplete, or from "
            "two versions?)"
        ) from None
    check_values(nusc, root, version)
    return nusc


def missing_field(root: Path, version: str, e: KeyError, what: str) -> ValueError:
    """The error of a ``KeyError`` met reading the records of the tables (a field a record lacks): the table
    file and the record that lack it (:func:`table_problem`), else the table folder and ``what`` lacks it."""
    key = e.args[0] if e.args else e
    bad = table_problem(root, version, key if isinstance(key, str) else None)
    if bad is not None:
        return ValueError(bad)
    return ValueError(
        f"{root / version}: {what} lacks the field {key!r} that nuScenes tables have (an edited or truncated table?)"
    )


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
    samples = scene_samples(nusc)
    from occkit.outputs import path_under

    for i, scene in enumerate(scenes):
        part = path_under(
            parts,
            f"{scene['token']}.json",
            what=f"{root / version / 'scene.json'}: scene {scene.get('name')!r}, token",
            shown=out,
        )
        recs = None
        if part.is_file():
            try:
                recs = json.loads(part.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                recs = None  # unreadable: the scene is done again
        if not isinstance(recs, list):
            try:
                recs = scene_records(_Tables(nusc, root, version), scene, max_sweeps, samples)
            except KeyError as e:  # a record without a field the devkit's tables have (its own lookups say more)
                raise missing_field(root, version, e, f"a record of scene {scene.get('name')!r} ({scene.get('token')})")
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
    import shutil

    shutil.rmtree(parts, ignore_errors=True)
    return path, len(frames)
