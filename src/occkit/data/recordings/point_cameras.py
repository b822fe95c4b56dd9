"""The cameras of a folder of point files (docs/labels.md, "A folder of point files", "Cameras"):
``FOLDER/cameras.yaml`` describes each camera, ``FOLDER/images/<camera>/`` holds its images, matched
to the scans by name (an image with a scan's stem) or by time (image names that are stamps).

``cameras.yaml`` is a mapping of camera name to its fields::

    CAM_FRONT:
      K: [fx, fy, cx, cy]            # or a 3x3 list of rows
      image_size: [H, W]             # optional: the first image's
      distortion: {model: plumb_bob, coefficients: [0, 0, 0, 0, 0]}   # optional; only zeros are taken
      T_lidar_from_cam:              # or T_ego_from_cam; a {translation, rotation [w x y z]} or a 4x4 matrix
        translation: [x, y, z]
        rotation: [qw, qx, qy, qz]

A camera is declared once as a schema (:class:`Camera`; :class:`PinholeCamera`, what ``occkit label`` takes,
refuses a distortion; :mod:`occkit.schema`), and every bad field of the file is named in one line (the file,
the camera, the field: :func:`occkit.schema.problems`).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from occkit.data import rig_schema
from occkit.data.rig_schema import IMAGE_SIDE_LIMIT, ON_VEHICLE, Pose
from occkit.schema import Finite, Int, Table, numbers, problem

#: The image files a camera folder may hold.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

#: The fields of a camera in ``cameras.yaml``.
FIELDS = ("K", "image_size", "distortion", "T_ego_from_cam", "T_lidar_from_cam")

#: Distortion models by their names (OpenCV's, ROS camera_info's, Kalibr's) and their coefficient counts.
DISTORTION_MODELS = {
    "plumb_bob": (4, 5, 8, 12, 14),
    "radtan": (4, 5, 8, 12, 14),
    "rational_polynomial": (8,),
    "opencv": (4, 5, 8, 12, 14),
    "equidistant": (4,),
    "fisheye": (4,),
    "kannala_brandt": (4,),
}

_NUMBER = re.compile(r"^[+]?(\d+)(\.\d+)?$")


def _float_text(x: Any) -> Any:
    """Numbers written as text (``1e3``, which YAML 1.1 leaves a string) as floats, in lists of lists too;
    other values as they are."""
    if isinstance(x, list):
        return [_float_text(v) for v in x]
    if isinstance(x, str):
        try:
            return float(x)
        except ValueError:
            return x
    return x


def _intrinsic_shape(v: Any) -> Any:
    """``K`` as ``[fx, fy, cx, cy]`` made the 3x3 matrix; a list of rows as it is."""
    v = _float_text(v)
    if not isinstance(v, list) or not any(isinstance(x, list) for x in v):
        f = v if isinstance(v, list) and len(v) == 4 else None
        ok = f is not None and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in f)
        if not ok or not all(math.isfinite(x) for x in f):
            raise problem(f"want [fx, fy, cx, cy] (4 finite numbers) or a 3x3 list of rows, got {_text(v)}")
        return [[f[0], 0.0, f[2]], [0.0, f[1], f[3]], [0.0, 0.0, 1.0]]
    return v


def _text(v: Any) -> str:
    return " ".join(str(v).split())[:60]


#: A camera matrix (:data:`occkit.data.rig_schema.Intrinsic`'s rule): ``[fx, fy, cx, cy]`` or 3 rows of 3
#: finite numbers (numbers YAML leaves as text read).
Intrinsic = Annotated[
    rig_schema.Intrinsic,
    BeforeValidator(_intrinsic_shape),
    Field(description="[fx, fy, cx, cy] or a 3x3 list of rows"),
]
#: Finite numbers, those YAML leaves as text read.
FiniteList = Annotated[list[Finite], BeforeValidator(_float_text)]


class Distortion(Table):
    """A camera's ``distortion``: a model of :data:`DISTORTION_MODELS` and its coefficients."""

    model: Annotated[
        Literal[tuple(DISTORTION_MODELS)], BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v)
    ] = "plumb_bob"
    coefficients: FiniteList

    @model_validator(mode="after")
    def _count(self) -> Distortion:
        counts = DISTORTION_MODELS[self.model]
        if len(self.coefficients) not in counts:
            want = " or ".join(map(str, counts))
            raise problem(f"coefficients: {self.model} takes {want} numbers, got {len(self.coefficients)}")
        return self


class _Unplaced:
    """A camera given neither or both of its placements (:meth:`Camera._placed_once`)."""

    def __init__(self, both: bool):
        self.both = both


def _matrix_or_pose(v: Any) -> Any:
    """A transform as a list of rows made ``{"rows": rows}``; a ``{translation, rotation}`` as it is."""
    if isinstance(v, _Unplaced):
        raise problem(
            "give one of T_ego_from_cam and T_lidar_from_cam, not both"
            if v.both
            else "missing, and T_lidar_from_cam too (the camera on the vehicle, or on the LiDAR)"
        )
    v = _float_text(v) if isinstance(v, list) else v
    if isinstance(v, list):
        return {"rows": v}
    if not isinstance(v, dict) or "rows" in v:
        raise problem(f"want {{translation, rotation}} or a 4x4 matrix of rows, got {_text(v)}")
    return {k: _float_text(x) for k, x in v.items()}


class Placement(Pose):
    """A camera's pose: a rig pose ``{translation [x, y, z], rotation [qw, qx, qy, qz]}`` (checked as
    :class:`~occkit.data.rig_schema.Pose`), or a 4x4 (or 3x4) matrix of rows (held as ``rows``), rigid."""

    # not given: None (a default is not validated); ``null`` given is refused as not a list
    translation: Annotated[numbers(3, Finite), ON_VEHICLE] = Field(None, description="x, y, z in metres")
    rotation: numbers(4, Finite) = Field(None, description="a unit quaternion w, x, y, z")
    rows: Annotated[list[numbers(4, Finite)], Field(min_length=3, max_length=4)] = Field(
        None, description="a 4x4 or 3x4 matrix of rows"
    )

    @model_validator(mode="after")
    def _whole(self) -> Placement:
        from occkit.geometry.transforms import rigid_problem

        if self.rows is None and (self.translation is None or self.rotation is None):
            raise problem("want translation [x, y, z] and rotation [qw, qx, qy, qz], or a 4x4 matrix of rows")
        why = rigid_problem(self.T()) if self.rows is not None else None
        if why:
            raise problem(f"the transform is {why}")
        return self

    def T(self) -> Any:
        """The ``(4, 4)`` float64 numpy transform (a pose's as the rig's poses are made: the same bits)."""
        import numpy as np

        if self.rows is None:
            return self.matrix()
        T = np.eye(4)
        T[: len(self.rows)] = np.asarray(self.rows, np.float64)
        return T


class Camera(Table):
    """A camera of ``cameras.yaml`` (the module's docstring): ``K``, where it is (on the vehicle or on the
    LiDAR: one of the two), and optionally its image size and distortion."""

    K: Intrinsic
    image_size: numbers(2, Annotated[Int, Field(ge=1, le=IMAGE_SIDE_LIMIT)]) | None = Field(
        None, description="[H, W], whole numbers of pixels"
    )
    distortion: Distortion | None = None
    T_ego_from_cam: Annotated[Placement, BeforeValidator(_matrix_or_pose)] | None = None
    T_lidar_from_cam: Annotated[Placement, BeforeValidator(_matrix_or_pose)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _placed_once(cls, data: Any) -> Any:
        """Neither or both of ``T_ego_from_cam`` and ``T_lidar_from_cam``: said as ``T_ego_from_cam``'s problem,
        beside every other field's."""
        placed = [
            k for k in ("T_ego_from_cam", "T_lidar_from_cam") if isinstance(data, dict) and data.get(k) is not None
        ]
        if isinstance(data, dict) and len(placed) != 1:
            data = {**data, "T_ego_from_cam": _Unplaced(both=bool(placed))}
        return data


class PinholeCamera(Camera):
    """A camera ``occkit label`` takes: a :class:`Camera` whose distortion, if given, is none (all zeros)."""

    @field_validator("distortion")
    @classmethod
    def _pinhole(cls, d: Distortion | None) -> Distortion | None:
        if d is not None and any(d.coefficients):
            raise problem(
                f"the images are distorted ({d.model} {d.coefficients}): occkit takes pinhole images, undistort "
                "them first (tools/undistort_point_images.py writes them with their new K) and give that K with "
                "no distortion"
            )
        return d


def read_cameras(path: Path, T_ego_from_lidar: Any) -> dict[str, dict[str, Any]]:
    """The cameras of ``cameras.yaml`` (each a :class:`Camera`): ``{name: {"K", "T_ego_from_cam",
    "image_size" (None: not given)}}``; a camera placed on the LiDAR (``T_lidar_from_cam``) is placed on the
    vehicle by ``T_ego_from_lidar``. Every bad field is said, all in one ``ValueError`` line."""
    import numpy as np

    from occkit.data.recordings._shared import read_yaml
    from occkit.schema import problems

    data = read_yaml(path, str(path), "cameras.yaml")
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path}: want a mapping of camera name to its fields ({', '.join(FIELDS)}), got {data!r:.60}")
    errs, out = [], {}
    for n, c in data.items():
        name = str(n) if isinstance(n, int) and not isinstance(n, bool) else n  # a camera "0:"
        if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
            errs.append(f"camera {name}: a camera's name is one folder name (of images/)")
            continue
        try:
            cam = PinholeCamera.model_validate(c)
        except ValidationError as e:
            errs.extend(f"camera {name}: {p}" for p in problems(e, PinholeCamera))
            continue
        placed = cam.T_ego_from_cam or cam.T_lidar_from_cam
        T = placed.T() if cam.T_ego_from_cam is not None else T_ego_from_lidar @ placed.T()
        size = None if cam.image_size is None else (int(cam.image_size[0]), int(cam.image_size[1]))
        out[name] = {"K": np.asarray(cam.K, np.float64), "T_ego_from_cam": T, "image_size": size}
    if errs:
        raise ValueError(f"{path}: " + "; ".join(errs))
    return out


def image_files(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def image_size(f: Path) -> tuple[int, int]:
    """An image's ``(H, W)`` from its header (PIL reads no pixel for it)."""
    from PIL import Image

    try:
        with Image.open(f) as im:
            w, h = im.size
    except Exception as e:  # noqa: BLE001 - PIL's errors of a bad file are many
        raise ValueError(
            f"{f}: cannot be read as an image ({type(e).__name__}: {str(e).splitlines()[0][:80]})"
        ) from None
    return int(h), int(w)


def _stamp(stem: str) -> tuple[int, bool] | None:
    """An image name as a stamp: ``(value, whole)``: seconds with a fraction (``1600000000.123456``,
    ``value`` in microseconds), or a whole number of some unit (``value`` as written), else None."""
    m = _NUMBER.match(stem)
    if m is None:
        return None
    if m.group(2):
        frac = (m.group(2)[1:] + "000000")[:6]
        return int(m.group(1)) * 1_000_000 + int(frac), False
    return int(m.group(1)), True


#: Units a whole-number image stamp may be in, as microseconds a unit.
UNITS = {"seconds": 1_000_000, "milliseconds": 1_000, "microseconds": 1, "nanoseconds": 1e-3}


def match_images(
    scans: list[tuple[str, int]], keyframes: list[int], files: dict[str, list[Path]], tolerance_us: float
) -> tuple[dict[str, dict[str, Path]], str, dict[str, int]]:
    """The images of each keyframe: ``({scan stem: {camera: file}}, how they were matched, {camera: keyframes
    without an image})``. ``scans`` are ``(stem, time in microseconds)``; ``files`` each camera's images. By
    name when an image has a scan's stem, else by time: the image nearest a keyframe's time, within
    ``tolerance_us``, when every image name is a stamp; else a ``ValueError`` naming the folder."""
    stems = {s for s, _ in scans}
    for fs in files.values():
        seen: dict[str, Path] = {}
        for p in fs:
            if p.stem in seen:
                raise ValueError(f"{p.parent}: {seen[p.stem].name} and {p.name} are one image's name twice")
            seen[p.stem] = p
    out: dict[str, dict[str, Path]] = {scans[k][0]: {} for k in keyframes}
    if any(p.stem in stems for fs in files.values() for p in fs):
        for cam, fs in files.items():
            named = {p.stem: p for p in fs}
            for k in keyframes:
                if scans[k][0] in named:
                    out[scans[k][0]][cam] = named[scans[k][0]]
        how = "by name (an image has its scan's name)"
    else:
        units: set[str] = set()
        for cam, fs in files.items():
            for k, f in _by_time(scans, keyframes, cam, fs, tolerance_us, units).items():
                out[scans[k][0]][cam] = f
        how = "by time (image names are stamps" + (f", whole ones in {', '.join(sorted(units))}" if units else "")
        how += f"; within {tolerance_us / 1e6:g} s of the scan)"
    missing = {cam: sum(cam not in out[scans[k][0]] for k in keyframes) for cam in files}
    return out, how, {c: n for c, n in missing.items() if n}


def _by_time(
    scans: list[tuple[str, int]], keyframes: list[int], cam: str, fs: list[Path], tolerance_us: float, units: set[str]
) -> dict[int, Path]:
    """The image of camera ``cam`` (its files ``fs``, named by stamps) nearest each keyframe's time, within
    ``tolerance_us``: ``{keyframe index: file}``; the unit of whole-number stamps found is added to ``units``."""
    import numpy as np

    if not fs:
        return {}
    stamps = [_stamp(p.stem) for p in fs]
    if any(s is None for s in stamps):
        bad = next(p for p, s in zip(fs, stamps) if s is None)
        raise ValueError(
            f"{bad}: names neither a scan (no image in images/ has a scan's name) nor a stamp "
            "(seconds 1600000000.123456, or whole nano-, micro-, milliseconds or seconds)"
        )
    times = np.array([t for _, t in scans], np.float64)
    whole = [s[0] for s in stamps if s[1]]
    unit = "seconds"
    if whole:  # the unit that puts the stamps nearest the scans' times
        mid = float(np.median(whole))
        unit = min(UNITS, key=lambda u: abs(mid * UNITS[u] - float(np.median(times))))
        units.add(unit)
    t = np.array([s[0] * UNITS[unit] if s[1] else s[0] for s in stamps], np.float64)
    out = {}
    for k in keyframes:
        j = int(np.argmin(np.abs(t - times[k])))
        if abs(t[j] - times[k]) <= tolerance_us:
            out[k] = fs[j]
    return out
