"""Undistort the camera images of a folder of point files (docs/labels.md, "A folder of point files",
"Cameras"): ``occkit label`` takes pinhole images only, so a camera whose ``cameras.yaml`` gives a
distortion is undistorted here first, with OpenCV, into a new point folder.

    python tools/undistort_point_images.py --data data/scans --out data/scans-pinhole
    occkit label --data data/scans-pinhole --lidar-pose ... --out data/scan-labels

``--out`` (a new folder) gets links to the scans and every other file of ``--data``, ``images/<camera>/``
of each camera (a distorted camera's images undistorted with ``cv2.initUndistortRectifyMap`` and
``cv2.remap``, or OpenCV's fisheye functions for ``equidistant`` / ``fisheye`` / ``kannala_brandt``; a
pinhole camera's images linked), and ``cameras.yaml`` with each undistorted camera's new K (OpenCV's
optimal new camera matrix with every pixel valid: ``alpha`` / ``balance`` 0, the same image size) and no
distortion.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import numpy as np

FISHEYE = ("equidistant", "fisheye", "kannala_brandt")


def undistort_maps(K: np.ndarray, model: str, coeffs: list[float], size: tuple[int, int]) -> tuple[Any, Any, Any]:
    """``(new K (3, 3), map x, map y)`` that ``cv2.remap`` takes a distorted image of ``size`` (H, W) to the
    pinhole image of the new K with."""
    import cv2

    h, w = size
    D = np.asarray(coeffs, np.float64)
    if model in FISHEYE:
        newK = cv2.fisheye.estimateNewCameraMatrixForUndistortRectify(K, D, (w, h), np.eye(3), balance=0.0)
        mx, my = cv2.fisheye.initUndistortRectifyMap(K, D, np.eye(3), newK, (w, h), cv2.CV_32FC1)
    else:
        newK, _ = cv2.getOptimalNewCameraMatrix(K, D, (w, h), 0.0, (w, h))
        mx, my = cv2.initUndistortRectifyMap(K, D, None, newK, (w, h), cv2.CV_32FC1)
    return np.asarray(newK, np.float64), mx, my


def _camera(name: str, c: dict, src: Path, dst: Path) -> dict:
    """Camera ``name``'s images from ``src`` into ``dst``, undistorted where it is distorted; its new fields."""
    import cv2
    from pydantic import ValidationError

    from occkit.data.recordings.point_cameras import Camera, image_files
    from occkit.schema import every_line

    try:
        cam = Camera.model_validate(c)
    except ValidationError as e:
        raise SystemExit(every_line(e, f"{src.parent.parent / 'cameras.yaml'}: camera {name}", Camera)) from None
    K, d = np.asarray(cam.K, np.float64), cam.distortion and (cam.distortion.model, cam.distortion.coefficients)
    dst.mkdir(parents=True)
    files = image_files(src)
    if d is None or not any(d[1]):
        for f in files:
            os.symlink(f.resolve(), dst / f.name)
        return c
    maps: dict[tuple[int, int], Any] = {}
    for f in files:
        img = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise SystemExit(f"{f}: cannot be read as an image")
        size = img.shape[:2]
        if size not in maps:
            maps[size] = undistort_maps(K, d[0], d[1], size)
        newK, mx, my = maps[size]
        if not cv2.imwrite(str(dst / f.name), cv2.remap(img, mx, my, cv2.INTER_LINEAR)):
            raise SystemExit(f"{dst / f.name}: could not be written")
    if len(maps) > 1:
        raise SystemExit(f"{src}: images of {len(maps)} sizes ({sorted(maps)}): one camera, one size")
    out = {k: v for k, v in c.items() if k != "distortion"}
    if maps:
        (size, (newK, _, _)), *_ = maps.items()
        out["K"], out["image_size"] = np.round(newK, 9).tolist(), list(size)
    return out


def undistort_folder(data: Path, out: Path) -> dict[str, str]:
    """``out``: the point folder ``data`` with its cameras' images undistorted (module docstring); returns
    what was done to each camera (``undistorted`` or ``linked``)."""
    import yaml

    spec = yaml.safe_load((data / "cameras.yaml").read_text(encoding="utf-8"))
    if not isinstance(spec, dict):
        raise SystemExit(f"{data / 'cameras.yaml'}: want a mapping of camera name to its fields")
    out.mkdir(parents=True)
    for p in data.iterdir():
        if p.name not in ("images", "cameras.yaml"):
            os.symlink(p.resolve(), out / p.name)
    new, done = {}, {}
    for name, c in spec.items():
        new[name] = _camera(str(name), c, data / "images" / str(name), out / "images" / str(name))
        done[str(name)] = "undistorted" if new[name] is not c else "linked"
    (out / "cameras.yaml").write_text(yaml.safe_dump(new, sort_keys=False), encoding="utf-8")
    return done


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="a folder of point files with cameras.yaml and images/")
    p.add_argument("--out", type=Path, required=True, help="a new folder: the same scans, pinhole images")
    a = p.parse_args(argv)
    if a.out.exists():
        raise SystemExit(f"--out {a.out}: exists (a new folder is written)")
    done = undistort_folder(a.data, a.out)
    print(f"wrote {a.out}: " + ", ".join(f"{c} {how}" for c, how in done.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
