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

Every bad field is named in one line (the file, the camera, the field).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

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


def _numbers(v: Any, n: int | tuple[int, ...], errs: list[str], at: str) -> list[float] | None:
    """``v`` as a list of ``n`` finite numbers, else an error said in ``errs``."""
    import math

    counts = (n,) if isinstance(n, int) else n
    if isinstance(v, list):  # YAML 1.1 reads 1e3 and 1.5e-3 (no dot, or no exponent sign) as text
        v = [_float_text(x) if isinstance(x, str) else x for x in v]
    ok = isinstance(v, list) and len(v) in counts
    ok = ok and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v)
    if not ok:
        want = " or ".join(map(str, counts))
        errs.append(f"{at}: want {want} finite numbers, got {str(v)[:60]}")
        return None
    return [float(x) for x in v]


def _float_text(x: str) -> float | str:
    """A number written as text (``1e3``, which YAML 1.1 leaves a string) as a float; other text as it is."""
    try:
        return float(x)
    except ValueError:
        return x


def _matrix_rows(v: Any, rows: int, cols: int, errs: list[str], at: str) -> Any:
    """``v`` as a ``(rows, cols)`` float64 array of finite numbers (a list of rows), else None with an error."""
    import numpy as np

    if not isinstance(v, list) or len(v) != rows:
        errs.append(f"{at}: want {rows} rows of {cols} numbers, got {str(v)[:60]}")
        return None
    out = [_numbers(r, cols, errs, at) for r in v]
    return None if any(r is None for r in out) else np.asarray(out, np.float64)


def intrinsic_matrix(v: Any, errs: list[str], at: str) -> Any:
    """``K``: ``[fx, fy, cx, cy]`` or a 3x3 list of rows, as a ``(3, 3)`` float64 camera matrix (else None, an
    error in ``errs``)."""
    import numpy as np

    from occkit.geometry.transforms import singular_intrinsic

    if isinstance(v, list) and len(v) == 4 and not any(isinstance(x, list) for x in v):
        f = _numbers(v, 4, errs, at)
        K = None if f is None else np.array([[f[0], 0, f[2]], [0, f[1], f[3]], [0, 0, 1]], np.float64)
    elif isinstance(v, list) and v and isinstance(v[0], list):
        K = _matrix_rows(v, 3, 3, errs, at)
    else:
        errs.append(f"{at}: want [fx, fy, cx, cy] or a 3x3 list of rows, got {str(v)[:60]}")
        return None
    if K is not None and (singular_intrinsic(K) or not np.allclose(K[2], [0, 0, 1]) or K[1, 0] != 0):
        errs.append(f"{at}: {K.tolist()} is not a camera matrix (fx s cx / 0 fy cy / 0 0 1, fx and fy not 0)")
        return None
    return K


def _transform(v: Any, errs: list[str], at: str) -> Any:
    """``{translation, rotation [w x y z]}`` or a 4x4 (or 3x4) matrix of rows, checked rigid."""
    import numpy as np

    from occkit.data.recordings._shared import matrix
    from occkit.geometry.transforms import rigid_problem

    if isinstance(v, dict):
        bad = sorted(set(map(str, v)) - {"translation", "rotation"})
        if bad or "translation" not in v or "rotation" not in v:
            errs.append(f"{at}: want translation [x, y, z] and rotation [qw, qx, qy, qz], got keys {sorted(v)}")
            return None
        t = _numbers(v["translation"], 3, errs, f"{at}.translation")
        q = _numbers(v["rotation"], 4, errs, f"{at}.rotation")
        if t is None or q is None:
            return None
        try:
            return matrix(t, q, "extrinsic", at)
        except ValueError as e:
            errs.append(str(e))
            return None
    if isinstance(v, list) and len(v) in (3, 4):
        M = _matrix_rows(v, len(v), 4, errs, at)
        if M is None:
            return None
        T = np.eye(4)
        T[: len(v)] = M
        why = rigid_problem(T)
        if why:
            errs.append(f"{at}: the transform is {why}")
            return None
        return T
    errs.append(f"{at}: want {{translation, rotation}} or a 4x4 matrix of rows, got {str(v)[:60]}")
    return None


def _image_size(v: Any, errs: list[str], at: str) -> tuple[int, int] | None:
    from occkit.data.rig import IMAGE_SIDE_LIMIT

    ok = isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in v)
    if not ok or not all(1 <= x <= IMAGE_SIDE_LIMIT for x in v):
        errs.append(f"{at}: want [H, W], whole numbers of 1 to {IMAGE_SIDE_LIMIT} pixels, got {str(v)[:60]}")
        return None
    return int(v[0]), int(v[1])


def read_distortion(v: Any, errs: list[str], at: str) -> tuple[str, list[float]] | None:
    """A camera's ``distortion`` field as ``(model, coefficients)``, checked (else an error in ``errs``)."""
    if not isinstance(v, dict) or set(map(str, v)) - {"model", "coefficients"} or "coefficients" not in v:
        errs.append(f"{at}: want {{model: NAME, coefficients: [...]}}, got {str(v)[:60]}")
        return None
    model = str(v.get("model", "plumb_bob")).lower()
    if model not in DISTORTION_MODELS:
        errs.append(f"{at}.model: {model!r} is not one of {', '.join(DISTORTION_MODELS)}")
        return None
    c = _numbers(v["coefficients"], DISTORTION_MODELS[model], errs, f"{at}.coefficients")
    return None if c is None else (model, c)


def _distortion(v: Any, errs: list[str], at: str) -> None:
    """A distortion that is none (coefficients all 0) is taken; any other is refused (say how to undistort)."""
    d = read_distortion(v, errs, at)
    if d is not None and any(d[1]):
        errs.append(
            f"{at}: the images are distorted ({d[0]} {d[1]}); occkit takes pinhole images: undistort them first "
            "(tools/undistort_point_images.py writes them with their new K) and give that K with no distortion"
        )


def read_cameras(path: Path, T_ego_from_lidar: Any) -> dict[str, dict[str, Any]]:
    """The cameras of ``cameras.yaml``: ``{name: {"K", "T_ego_from_cam", "image_size" (None: not given)}}``;
    a camera placed on the LiDAR (``T_lidar_from_cam``) is placed on the vehicle by ``T_ego_from_lidar``.
    Every bad field is said, all in one ``ValueError`` line."""
    import yaml

    from occkit.fileio import read_utf8_text

    try:
        data = yaml.safe_load(read_utf8_text(path, "cameras.yaml", ValueError))
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path}: want a mapping of camera name to its fields ({', '.join(FIELDS)}), got {data!r:.60}")
    errs: list[str] = []
    names = [str(n) if isinstance(n, int) and not isinstance(n, bool) else n for n in data]  # a camera "0:"
    out = {n: cam for n, c in zip(names, data.values()) if (cam := _camera(n, c, T_ego_from_lidar, errs))}
    if errs:
        raise ValueError(f"{path}: " + "; ".join(errs))
    return out


def _camera(name: Any, c: Any, T_ego_from_lidar: Any, errs: list[str]) -> dict[str, Any] | None:
    """One camera of ``cameras.yaml``, its bad fields said in ``errs`` (then None)."""
    at = f"camera {name}"
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        errs.append(f"{at}: a camera's name is one folder name (of images/)")
        return None
    if not isinstance(c, dict):
        errs.append(f"{at}: want a mapping of its fields ({', '.join(FIELDS)}), got {str(c)[:60]}")
        return None
    unknown = [str(k) for k in c if k not in FIELDS]
    if unknown:
        errs.append(f"{at}: unknown field {', '.join(unknown)} (the fields: {', '.join(FIELDS)})")
    K = intrinsic_matrix(c["K"], errs, f"{at}: K") if "K" in c else None
    if "K" not in c:
        errs.append(f"{at}: K: missing ([fx, fy, cx, cy] or a 3x3 list of rows)")
    size = _image_size(c["image_size"], errs, f"{at}: image_size") if "image_size" in c else None
    if "distortion" in c and c["distortion"] is not None:
        _distortion(c["distortion"], errs, f"{at}: distortion")
    placed = [k for k in ("T_ego_from_cam", "T_lidar_from_cam") if k in c]
    if len(placed) != 1:
        errs.append(
            f"{at}: T_ego_from_cam / T_lidar_from_cam: "
            + ("give one, not both" if placed else "missing (the camera on the vehicle, or on the LiDAR)")
        )
        return None
    T = _transform(c[placed[0]], errs, f"{at}: {placed[0]}")
    if T is not None and placed[0] == "T_lidar_from_cam":
        T = T_ego_from_lidar @ T
    return {"K": K, "T_ego_from_cam": T, "image_size": size} if K is not None and T is not None else None


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
