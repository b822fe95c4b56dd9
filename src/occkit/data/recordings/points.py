"""A folder of point files with a poses file as a recording (docs/labels.md, "A folder of point files").

``--data FOLDER`` holds one scan a file, taken in the natural order of their names (numbers by value:
``scan_2`` before ``scan_10``): ``.bin`` (float32 x y z intensity, KITTI's), ``.npy`` (``(N, 3+)``: x y z
[intensity]), ``.pcd`` (through pypcd4), ``.ply`` (a vertex element, ascii or binary, read by :func:`read_ply`
here: no dependency) and ``.las`` / ``.laz`` (through laspy). Points that are no return (NaN, infinite, or
0 0 0) are dropped and counted in the scene's warnings. Point labels come from the field ``--label-field``
(default ``label``) of a ``.pcd``, ``.ply`` or ``.las`` that has it. The poses file (``--poses``, default
``FOLDER/poses.txt``) gives each scan's pose in the world, one row a scan in the same order: KITTI's 12
numbers (a 3 x 4 matrix, row-major) or TUM's ``t x y z qx qy qz qw`` (seconds, metres, quaternion), told
apart by the number of columns; a KITTI file's scans are ``1 / --rate`` seconds apart. The poses are the
scans' (the LiDAR's) as a LiDAR odometry (KISS-ICP) writes them; ``--lidar-pose`` places the LiDAR on the
vehicle (``T_ego_from_lidar``; default: the ego frame is the LiDAR's). ``--points-frame world`` takes
georeferenced points (in the poses' world frame) into each scan's sensor frame in float64. Cameras:
``cameras.yaml`` and ``images/<camera>/`` (:mod:`occkit.data.recordings.point_cameras`). One scene, named
after the folder (or ``--scene-name``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from occkit.data.recordings._shared import (
    _first_line,
    check_label_field,
    matrix,
    read_classes,
    read_lines,
)
from occkit.data.recordings.spec import KeyframeOptions, RecordingReader, SweepOptions, option, seconds
from occkit.data.recordings.text_rows import number_rows, numbers

SUFFIXES = (".bin", ".npy", ".pcd", ".ply", ".las", ".laz")


def natural_key(name: str) -> tuple[Any, ...]:
    """The order of names with numbers in them: by their text, their numbers by value (``scan_2`` before
    ``scan_10``; ``000002`` before ``000010`` as in plain order), the name itself last (``02`` and ``2``)."""
    import re

    parts = re.split(r"(\d+)", name)
    return (tuple((0, int(p), "") if k % 2 else (1, 0, p.lower()) for k, p in enumerate(parts)), name)


def point_files(folder: Path) -> list[Path]:
    """The point files directly in ``folder``, in the natural order of their names (:func:`natural_key`)."""
    if not folder.is_dir():
        return []
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES), key=lambda p: natural_key(p.name)
    )


# ---- the files -------------------------------------------------------------------------------------

_PLY_TYPES = {
    "char": "i1",
    "uchar": "u1",
    "short": "i2",
    "ushort": "u2",
    "int": "i4",
    "uint": "u4",
    "float": "f4",
    "double": "f8",
    "int8": "i1",
    "uint8": "u1",
    "int16": "i2",
    "uint16": "u2",
    "int32": "i4",
    "uint32": "u4",
    "float32": "f4",
    "float64": "f8",
}


def _ply_header(path: Path, data: bytes) -> tuple[str, int, list[tuple[str, str]], bytes]:
    """A PLY file's format, vertex count, vertex properties ``(name, numpy type)`` and the bytes after the header."""
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise ValueError(f"{path}: not a PLY file (no 'ply' ... 'end_header' header)")
    body = data[data.index(b"\n", end) + 1 :]
    fmt, count, props, element = "", 0, [], None
    for ln in (ln.split() for ln in data[:end].decode("ascii", "replace").splitlines()[1:]):
        if not ln or ln[0] in ("comment", "obj_info"):
            continue
        if ln[0] == "format":
            fmt = ln[1]
        elif ln[0] == "element":
            if element is None and ln[1] != "vertex":
                raise ValueError(f"{path}: the element {ln[1]!r} comes before 'vertex' (not read)")
            element = ln[1] if element is None else "after"
            count = int(ln[2]) if ln[1] == "vertex" else count
        elif ln[0] == "property" and element == "vertex":
            if ln[1] == "list" or ln[1] not in _PLY_TYPES:
                raise ValueError(f"{path}: vertex property {' '.join(ln[1:])!r} is not a scalar PLY type")
            props.append((ln[2], _PLY_TYPES[ln[1]]))
    if element is None or not props:
        raise ValueError(f"{path}: no vertex element with properties")
    return fmt, count, props, body


def read_ply(path: Path) -> Any:
    """The vertex element of a PLY file (ascii, binary little or big endian) as a numpy structured
    array, one field a scalar property. The vertex element must come first (as every point cloud
    writer puts it); list properties in it are refused."""
    import numpy as np

    fmt, count, props, body = _ply_header(path, path.read_bytes())
    if fmt == "ascii":
        rows = body.decode("ascii", "replace").split("\n")[:count]
        vals = np.array([r.split()[: len(props)] for r in rows], dtype=np.float64).reshape(count, len(props))
        return np.rec.fromarrays([vals[:, k].astype(t) for k, (_, t) in enumerate(props)], names=[n for n, _ in props])
    order = {"binary_little_endian": "<", "binary_big_endian": ">"}.get(fmt)
    if order is None:
        raise ValueError(f"{path}: PLY format {fmt!r} (want ascii, binary_little_endian or binary_big_endian)")
    dt = np.dtype([(n, order + t) for n, t in props])
    if len(body) < dt.itemsize * count:
        raise ValueError(f"{path}: {len(body)} bytes of data for {count} vertices of {dt.itemsize} bytes: truncated")
    return np.frombuffer(body, dtype=dt, count=count)


def _fields_arrays(fields: Any, names: list[str], f: Path, label_field: str | None) -> tuple[Any, Any, Any]:
    """x y z, intensity and labels of a table with named fields (``fields(name)`` gives a column)."""
    import numpy as np

    lacking = [c for c in "xyz" if c not in names]
    if lacking:
        raise ValueError(f"{f}: no {'/'.join(lacking)} field (its fields: {', '.join(names)})")
    xyz = np.stack([np.asarray(fields(c), np.float64) for c in "xyz"], 1)
    inten = np.asarray(fields("intensity"), np.float32) if "intensity" in names else None
    labels = None
    if label_field and label_field in names:
        lab = np.asarray(fields(label_field))
        if lab.dtype.kind == "f":  # a gap of an organised cloud is NaN in every field: only returns' labels count
            lab = np.where(no_return(xyz), 0.0, lab)
            if not np.isfinite(lab).all() or (lab != np.round(lab)).any():
                raise ValueError(f"{f}: field {label_field}: labels must be whole class ids")
        labels = lab.astype(np.int64)
    return xyz, inten, labels


def _library(f: Path, module: str, extra: str) -> Any:
    """The library that reads ``f``, or an ``ImportError`` line saying how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"{f}: reading {f.suffix} needs {module} ({e}): pip install 'occkit[{extra}]'") from None


def _read_as(f: Path, kind: str, read: Any) -> Any:
    """``read()``: a table of ``f`` by its library; any error of a bad file is one line naming ``f``."""
    try:
        return read()
    except Exception as e:  # noqa: BLE001 - the libraries' errors of a bad file are many
        hint = "; .laz needs a backend: pip install 'occkit[las]'" if "LazBackend" in str(e) else ""
        said = _first_line(e).removeprefix(f"{f}: ")
        raise ValueError(f"{f}: cannot be read as a {kind} ({type(e).__name__}: {said}){hint}") from None


def _pcd(f: Path, label_field: str | None) -> tuple[Any, Any, Any]:
    PointCloud = _library(f, "pypcd4", "pcd").PointCloud
    pc = _read_as(f, ".pcd", lambda: PointCloud.from_path(f))
    names = list(pc.fields)
    table = _read_as(f, ".pcd", lambda: pc.numpy(names))
    return _fields_arrays(lambda n: table[:, names.index(n)], names, f, label_field)


def _las(f: Path, label_field: str | None) -> tuple[Any, Any, Any]:
    laspy = _library(f, "laspy", "las")
    las = _read_as(f, ".las / .laz", lambda: laspy.read(f))
    names = ["x", "y", "z"] + [n for n in las.point_format.dimension_names if n not in ("X", "Y", "Z")]
    cols = {"x": las.x, "y": las.y, "z": las.z}
    return _fields_arrays(lambda n: cols[n] if n in cols else las[n], names, f, label_field)


def _ply(f: Path, label_field: str | None) -> tuple[Any, Any, Any]:
    table = _read_as(f, ".ply", lambda: read_ply(f))
    return _fields_arrays(lambda n: table[n], list(table.dtype.names), f, label_field)


def _array(f: Path, raw: Any) -> tuple[Any, Any, Any]:
    import numpy as np

    if raw.ndim != 2 or raw.shape[1] < 3 or raw.dtype.kind not in "fiu":
        raise ValueError(f"{f}: points must be (N, 3+) numbers, x y z [intensity], got {raw.dtype} {tuple(raw.shape)}")
    return raw[:, :3].astype(np.float64), (raw[:, 3].astype(np.float32) if raw.shape[1] > 3 else None), None


def read_point_file(f: Path, label_field: str | None = "label") -> tuple[Any, Any, Any]:
    """One scan: points ``(N, 3)`` float32, intensities ``(N,)`` float32 or None, labels ``(N,)`` int64 or
    None, as the file holds them but for the points that are no return (:func:`drop_no_returns`); a file
    that cannot be read is one line naming it."""
    import numpy as np

    xyz, inten, labels = read_point_arrays(f, label_field)
    keep = ~no_return(xyz)
    xyz, inten, labels = (None if a is None else a[keep] for a in (xyz, inten, labels))
    return np.ascontiguousarray(xyz, dtype=np.float32), inten, labels


def no_return(xyz: Any) -> Any:
    """``(N,)`` bool: the points that are no return: a NaN or infinite coordinate (an organised cloud's gaps,
    PCL's and open3d's), or all three 0 (Ouster's and others' "no return" written as a point at the sensor)."""
    import numpy as np

    return ~np.isfinite(xyz).all(1) | (xyz == 0).all(1)


def read_point_arrays(f: Path, label_field: str | None = "label") -> tuple[Any, Any, Any]:
    """One scan as the file holds it: points ``(N, 3)`` float64 (NaN and zero rows kept), intensities
    ``(N,)`` float32 or None, labels ``(N,)`` int64 or None; a file that cannot be read is one line naming it."""
    import numpy as np

    suffix = f.suffix.lower()
    if suffix == ".bin":
        raw = np.fromfile(f, dtype="<f4")
        if raw.size % 4:
            raise ValueError(f"{f}: {raw.size * 4} bytes are not whole points of 4 float32 (x y z intensity)")
        xyz, inten, labels = _array(f, raw.reshape(-1, 4))
    elif suffix == ".npy":
        from occkit.fileio import load_npy

        xyz, inten, labels = _array(f, load_npy(f, "point file"))
    elif suffix == ".pcd":
        xyz, inten, labels = _pcd(f, label_field)
    elif suffix == ".ply":
        xyz, inten, labels = _ply(f, label_field)
    else:
        xyz, inten, labels = _las(f, label_field)
    return np.asarray(xyz, np.float64), inten, labels


# ---- the poses -------------------------------------------------------------------------------------


def read_poses(path: Path, rate: float) -> tuple[str, list[tuple[int, Any, str]]]:
    """``(format, [(timestamp in microseconds, T_world_from_scan (4, 4), row), ...])`` of a poses file:
    KITTI's 12 numbers a row (timestamps ``i / rate`` s) or TUM's ``t x y z qx qy qz qw``; ``row`` names the
    line, for :func:`~occkit.data.scene_record.check_record` to name it (a pose not rigid, times not in order)."""
    import numpy as np

    want = "12 a row (KITTI: a 3 x 4 matrix) or 8 (TUM: t x y z qx qy qz qw)"
    rows = number_rows(path, "--poses", (12, 8), want)  # a missing file, or one of no pose, said there
    kind = "kitti" if len(rows[0][1]) == 12 else "tum"
    out = []
    for i, v in rows:
        where = f"--poses {path}: line {i}"
        if len(v) != len(rows[0][1]):
            other = "TUM" if kind == "kitti" else "KITTI"
            raise ValueError(f"{where} is a {other} row after {kind.upper()} rows (one format a file)")
        if kind == "kitti":
            T = np.eye(4)
            T[:3] = v.reshape(3, 4)
            out.append((round(len(out) * 1e6 / rate), T, where))
        else:
            out.append((round(v[0] * 1e6), matrix(v[1:4], [v[7], v[4], v[5], v[6]], "ego_pose", where), where))
    return kind, out


def _lidar_pose(s: str | None) -> Any:
    """``--lidar-pose 'X Y Z [QW QX QY QZ]'``: ``T_ego_from_lidar`` (identity when not given)."""
    import numpy as np

    if not s:
        return np.eye(4)
    where = f"--lidar-pose {s!r}"
    v = numbers(str(s), where, (3, 7), "'X Y Z' or 'X Y Z QW QX QY QZ' (the LiDAR in the ego frame)")
    return matrix(v[:3], v[3:] if len(v) == 7 else [1.0, 0.0, 0.0, 0.0], "extrinsic", where)


# ---- the recording ---------------------------------------------------------------------------------


def _keyframes(files: list[Path], options: KeyframeOptions) -> list[bool]:
    """``--keyframes FILE`` (a scan's file name or stem a line), else every ``--keyframe-every`` N-th scan."""
    f = options.keyframes
    if not f:
        n = options.every(10)
        return [i % n == 0 for i in range(len(files))]
    names = {p.name: i for i, p in enumerate(files)} | {p.stem: i for i, p in enumerate(files)}
    chosen = set()
    for line, s in read_lines(f, "--keyframes"):
        if Path(s).name not in names:
            raise ValueError(f"--keyframes {f}: line {line}: {s!r} is not a point file of the folder")
        chosen.add(names[Path(s).name])
    return [i in chosen for i in range(len(files))]


@dataclass(frozen=True)
class PointsOptions(SweepOptions):
    """The options of a folder of point files."""

    poses: str | None = option(
        "each scan's pose in the world, one row a scan: KITTI's 12 numbers or TUM's t x y z qx qy qz qw "
        "(default FOLDER/poses.txt)",
        metavar="FILE",
    )
    rate: float | None = option(
        "scans a second of a KITTI poses file (default 10)",
        type=float,
        metavar="HZ",
        within=(0, math.inf, "must be a positive number of scans a second"),
        open=True,
    )
    lidar_pose: str | None = option(
        "the LiDAR in the ego frame, 'X Y Z [QW QX QY QZ]' (T_ego_from_lidar; default: the ego frame is the LiDAR's)",
        metavar="'X Y Z ...'",
    )
    scene_name: str | None = option("the scene's name (default: the folder's name)", metavar="NAME")
    points_frame: str | None = option(
        "the frame of the files' points: sensor (each scan in its LiDAR's frame, as a LiDAR writes it; the default) "
        "or world (in the poses' world frame, as georeferenced mobile-mapping .las files are)",
        choices=("sensor", "world"),
    )
    image_tolerance: float | None = seconds(
        "seconds an image's stamp may lie from its scan's, where images are matched by time (default: half the "
        "scans' median interval)",
        metavar="SECONDS",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.scene_name is not None and (not self.scene_name.strip() or "/" in self.scene_name):
            raise ValueError(f"--scene-name {self.scene_name!r}: a scene's name is one folder name")


#: A scan's points lying a median this far from its sensor (metres) look georeferenced.
FAR = 1000.0


class PointsReader(RecordingReader[PointsOptions], name="points", priority=60, extra="pcd,las"):
    """A folder of point files with a poses file (docs/labels.md, "A folder of point files")."""

    description = "a folder of point files (.bin, .npy, .pcd, .ply, .las/.laz) with a poses file (KITTI or TUM rows)"

    @classmethod
    def detect(cls, path: Path) -> str | None:
        files = point_files(path)
        if not files:
            return None
        kinds = sorted({p.suffix.lower() for p in files})
        return f"{len(files)} point files ({', '.join(kinds)})"

    def __init__(self, source: Path, options: PointsOptions, wanted: list[str] | None = None) -> None:
        super().__init__(source, options, wanted)
        path = source
        files = point_files(path)
        if not files:
            raise ValueError(f"--data {path}: holds no point file ({', '.join(SUFFIXES)})")
        stems: dict[str, Path] = {}
        for p in files:
            if p.stem in stems:
                raise ValueError(f"--data {path}: {stems[p.stem].name} and {p.name} are one scan's name twice")
            stems[p.stem] = p
        poses_file = Path(options.poses or path / "poses.txt")
        rate = options.rate
        kind, poses = read_poses(poses_file, 10.0 if rate is None else float(rate))
        if len(poses) < len(files):
            raise ValueError(f"--poses {poses_file}: {len(poses)} pose rows for {len(files)} point files in {path}")
        self.files, self.poses = files, poses
        self.keyframes = _keyframes(files, options)
        self.T_el = _lidar_pose(options.lidar_pose)
        self.classes = read_classes(options.classes)
        self._scenes = [options.scene_name or path.resolve().name]
        self.cameras, said = self._cameras()
        used = f"the first {len(files)} of {len(poses)}" if len(poses) > len(files) else f"{len(poses)}"
        order = f"{files[0].name} .. {files[-1].name}" if len(files) > 1 else files[0].name
        self.describe = (
            f"point files {path}: {len(files)} scans in the order of their names, numbers by value ({order}), {used} "
            f"{kind.upper()} poses of {poses_file.name}"
            + (" (--rate not used: TUM rows carry their own times)" if kind == "tum" and rate is not None else "")
            + (", points in the world frame (--points-frame world)" if options.points_frame == "world" else "")
            + said
        )

    def _cameras(self) -> tuple[dict[str, Any], str]:
        """The cameras of ``cameras.yaml`` with their images in ``images/<camera>/`` (sets :attr:`images`
        and :attr:`image_links`), and what the describe line says of them."""
        import numpy as np

        from occkit.data.recordings.point_cameras import image_files, match_images, read_cameras

        folder, yaml_file = self.source / "images", self.source / "cameras.yaml"
        subs = _camera_folders(folder, yaml_file)
        if subs is None:
            return {}, ""
        specs = read_cameras(yaml_file, self.T_el)
        lacking = [c for c in specs if c not in subs]
        if lacking:
            raise ValueError(f"{yaml_file}: camera {', '.join(lacking)}: no folder {folder}/{lacking[0]} of its images")
        strays = [s for s in subs if s not in specs]
        if strays:
            raise ValueError(f"{folder}/{strays[0]}: a folder of images of no camera of {yaml_file}")
        times = np.array([t for t, _, _ in self.poses[: len(self.files)]], np.float64)
        tol = self.options.image_tolerance
        tol_us = tol * 1e6 if tol is not None else (float(np.median(np.diff(times))) / 2 if len(times) > 1 else 5e4)
        scans = [(f.stem, int(t)) for f, t in zip(self.files, times)]
        keys = [i for i, k in enumerate(self.keyframes) if k]
        images, how, missing = match_images(scans, keys, {c: image_files(folder / c) for c in specs}, tol_us)
        cameras = {}
        for c, spec in specs.items():
            first = next((images[s][c] for s, _ in (scans[k] for k in keys) if c in images[s]), None)
            cameras[c] = _camera(c, spec, first, yaml_file)
        self.images = {s: {c: f"images/{c}/{p.name}" for c, p in cams.items()} for s, cams in images.items()}
        self.image_links = {"images": folder}
        lack = "".join(f"; {c}: no image for {n} of {len(keys)} keyframes" for c, n in missing.items())
        return cameras, f"; cameras {', '.join(cameras)} of {yaml_file.name}, images matched {how}{lack}"

    def read(self, scene: str, load_points: bool = True) -> Any:
        o = self.options
        return o.lowered(self._scene(scene, load_points), box_given=o.ego_box is not None)

    def _scene(self, name: str, load_points: bool) -> Any:
        """The scene as a checked record: each scan's points (``load_points``), pose, time and keyframe."""
        import numpy as np

        from occkit.data.scene_record import SceneRecord, Sweep, check_record

        files, world = self.files, self.options.points_frame == "world"
        label_field, ego = self.options.field(), self.options.ego()
        T_le = np.linalg.inv(self.T_el)
        sweeps = []
        dropped, total, far = 0, 0, []
        for f, (ts, T_ws, row), kf in zip(files, self.poses, self.keyframes):
            if load_points:
                xyz, inten, labels = read_point_arrays(f, label_field)
                keep = ~no_return(xyz)
                total, dropped = total + len(xyz), dropped + int((~keep).sum())
                xyz, inten, labels = (None if a is None else a[keep] for a in (xyz, inten, labels))
                if world:  # into the scan's sensor frame by its pose's inverse, in float64
                    T_sw = np.linalg.inv(T_ws)
                    xyz = xyz @ T_sw[:3, :3].T + T_sw[:3, 3]
                if len(xyz) and (d := float(np.median(np.linalg.norm(xyz, axis=1)))) > FAR:
                    far.append(d)
                xyz = np.ascontiguousarray(xyz, dtype=np.float32)
            else:
                xyz, inten, labels = np.zeros((0, 3), np.float32), None, None
            sweeps.append(
                Sweep(
                    token=f.stem,
                    timestamp=ts,
                    sensor="LIDAR",
                    T_global_from_ego=T_ws @ T_le,
                    points=xyz,
                    labels=labels,
                    intensity=inten,
                    keyframe=kf,
                    source=str(f),
                    row=row,
                )
            )
        warns = []
        if dropped:
            warns.append(f"{dropped} of {total} points dropped: no return (NaN, infinite, or 0 0 0)")
        if far:
            warns.append(
                f"{len(far)} of {len(files)} scans' points lie a median {max(far) / 1000:.1f} km (the most) from their "
                + (
                    "poses (--points-frame world): are the poses in the points' frame?"
                    if world
                    else "sensor: the points look georeferenced: --points-frame world"
                )
            )
        rec = SceneRecord(
            name=name,
            sweeps=sweeps,
            lidars={"LIDAR": self.T_el},
            cameras=self.cameras,
            classes=self.classes,
            ego_size=ego[0],
            ego_center=ego[1],
            source=str(self.source),
            warnings=warns,
        )
        check_label_field(label_field, sweeps, str(self.source))
        check_record(rec)
        return rec


def _camera_folders(folder: Path, yaml_file: Path) -> list[str] | None:
    """The camera folders of ``images/`` (hidden ones aside), or None where there are no cameras: no
    ``cameras.yaml`` and no images (images without it are refused in one line)."""
    from occkit.data.recordings.point_cameras import image_files

    subs = (
        sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")) if folder.is_dir() else []
    )
    if yaml_file.is_file():
        return subs
    loose = image_files(folder) if folder.is_dir() else []
    if subs or loose:
        held = f"camera folders ({', '.join(subs[:6])})" if subs else f"images ({loose[0].name}, ...)"
        raise ValueError(
            f"{yaml_file}: no such file, and {folder} holds {held}: each camera's images go in images/<camera>/, "
            "and cameras.yaml gives its K and pose (docs/labels.md, 'A folder of point files')"
        )
    return None


def _camera(name: str, spec: dict[str, Any], first: Path | None, yaml_file: Path) -> Any:
    """A camera of ``cameras.yaml`` with its image size: the one given, checked against its first keyframe
    image ``first``, or that image's."""
    from occkit.data.recordings.point_cameras import image_size
    from occkit.data.scene_record import Camera

    size = image_size(first) if first is not None else None
    given = spec["image_size"]
    if given is not None and size is not None and tuple(given) != size:
        raise ValueError(f"{yaml_file}: camera {name}: image_size {list(given)}, but {first} is {list(size)} (H, W)")
    size = given or size
    if size is None:
        raise ValueError(f"{yaml_file}: camera {name}: image_size not given, and no keyframe has its image")
    return Camera(name=name, K=spec["K"], T_ego_from_cam=spec["T_ego_from_cam"], image_size=tuple(size))


READER = PointsReader
