"""Write one scene of a rig folder as a folder of point files with a poses file (docs/labels.md, "A folder of
point files"): what a LiDAR logger and a LiDAR odometry leave, for trying ``occkit label --data FOLDER`` on
the synthetic world.

    python tools/rig_to_points.py --rig data/w/rig --scene scene-0000 --out data/scans --suffix .pcd --poses tum

Each sweep becomes ``NNNNNN<suffix>`` in the LiDAR's frame: ``.bin`` (float32 x y z intensity), ``.npy``,
``.pcd`` (pypcd4; a ``label`` field where the rig labels the sweep), ``.ply`` (binary, with ``label``) or
``.las`` (laspy, 1e-6 m steps; a ``label`` extra dimension). ``poses.txt`` holds each scan's LiDAR pose in
the world (ego pose @ extrinsic): KITTI rows (12 numbers; the times then come from ``--rate``) or TUM
rows (``t x y z qx qy qz qw``, the sweeps' times). The LiDAR's place on the vehicle is printed, for
``occkit label --lidar-pose``. ``--cameras`` adds the rig's cameras: ``cameras.yaml`` (each camera's K,
image size and ``T_ego_from_cam``) and the keyframes' images of the dataset the rig sits in
(``DATA/rig`` beside ``DATA/annotations.json``, as ``occkit synth --sweeps K`` writes it) in
``images/<camera>/``, each named as its scan.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

SUFFIXES = (".bin", ".npy", ".pcd", ".ply", ".las")


def _matrix(pose: dict) -> np.ndarray:
    w, x, y, z = (float(v) for v in pose["rotation"])
    n = np.sqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w / n, x / n, y / n, z / n
    T = np.eye(4)
    T[:3, :3] = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    T[:3, 3] = pose["translation"]
    return T


def _quat(R: np.ndarray) -> tuple[float, float, float, float]:
    """A rotation matrix as (w, x, y, z), w >= 0."""
    w = np.sqrt(max(0.0, 1 + R[0, 0] + R[1, 1] + R[2, 2])) / 2
    x = np.copysign(np.sqrt(max(0.0, 1 + R[0, 0] - R[1, 1] - R[2, 2])) / 2, R[2, 1] - R[1, 2])
    y = np.copysign(np.sqrt(max(0.0, 1 - R[0, 0] + R[1, 1] - R[2, 2])) / 2, R[0, 2] - R[2, 0])
    z = np.copysign(np.sqrt(max(0.0, 1 - R[0, 0] - R[1, 1] + R[2, 2])) / 2, R[1, 0] - R[0, 1])
    return float(w), float(x), float(y), float(z)


def _write(f: Path, pts: np.ndarray, labels: np.ndarray | None) -> None:
    pts = np.column_stack([pts[:, :3], pts[:, 3] if pts.shape[1] > 3 else np.zeros(len(pts))]).astype(np.float32)
    if f.suffix == ".bin":
        pts.astype("<f4").tofile(f)
    elif f.suffix == ".npy":
        np.save(f, pts)
    elif f.suffix == ".pcd":
        from pypcd4 import PointCloud

        pc = (
            PointCloud.from_xyzi_points(pts)
            if labels is None
            else PointCloud.from_xyzil_points(np.column_stack([pts, labels]), label_type=np.uint32)
        )
        pc.save(f)
    elif f.suffix == ".ply":
        cols = [(c, "<f4") for c in ("x", "y", "z", "intensity")] + ([("label", "<u2")] if labels is not None else [])
        arr = np.zeros(len(pts), dtype=cols)
        for k, (c, _) in enumerate(cols[:4]):
            arr[c] = pts[:, k]
        if labels is not None:
            arr["label"] = labels
        props = "".join(f"property {'float' if t == '<f4' else 'ushort'} {n}\n" for n, t in cols)
        head = f"ply\nformat binary_little_endian 1.0\nelement vertex {len(pts)}\n{props}end_header\n"
        f.write_bytes(head.encode() + arr.tobytes())
    else:
        import laspy

        las = laspy.LasData(laspy.LasHeader(point_format=3, version="1.2"))
        las.header.offsets, las.header.scales = [0.0, 0.0, 0.0], [1e-6, 1e-6, 1e-6]
        xyz = pts[:, :3].astype(np.float64)
        las.x, las.y, las.z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
        las.intensity = np.clip(np.round(pts[:, 3]), 0, 65535).astype(np.uint16)
        if labels is not None:
            las.add_extra_dim(laspy.ExtraBytesParams(name="label", type=np.uint16))
            las.label = labels
        las.write(f)


def write_cameras(rig: Path, scene: str, out: Path, stems: dict[str, str]) -> int:
    """``out/cameras.yaml`` of the rig's cameras and the images of the keyframes (sweep token -> the scan's
    stem in ``stems``) in ``out/images/<camera>/``, from the dataset beside the rig; returns how many."""
    import shutil

    import yaml

    meta = json.loads((rig / "rig.json").read_text())
    spec = {
        cam: {
            "K": c["intrinsic"],
            "image_size": c["image_size"],
            "T_ego_from_cam": {"translation": c["translation"], "rotation": c["rotation"]},
        }
        for cam, c in (meta.get("cameras") or {}).items()
    }
    ann_file = rig.parent / "annotations.json"
    if not spec or not ann_file.is_file():
        raise SystemExit(f"--cameras: {rig / 'rig.json'} has no cameras, or {ann_file} (their images) is missing")
    (out / "cameras.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    n = 0
    for token, info in json.loads(ann_file.read_text())["scene_infos"].get(scene, {}).items():
        for cam, c in info.get("camera_sensor", {}).items():
            src = rig.parent / c["img_path"]
            if cam in spec and token in stems and src.is_file():
                (out / "images" / cam).mkdir(parents=True, exist_ok=True)
                shutil.copy(src, out / "images" / cam / f"{stems[token]}{src.suffix}")
                n += 1
    return n


def write_points(
    rig: Path, scene: str, out: Path, suffix: str = ".bin", poses: str = "tum", cameras: bool = False
) -> str:
    """Write ``rig``'s scene as point files and ``poses.txt`` in ``out`` (a new folder), with ``cameras``
    its cameras (:func:`write_cameras`); returns the LiDAR's pose in the ego frame as ``occkit label
    --lidar-pose`` takes it."""
    meta = json.loads((rig / "rig.json").read_text())
    sweeps = json.loads((rig / scene / "sweeps.json").read_text())["sweeps"]
    (name, lidar), *_ = meta["lidars"].items()
    L = _matrix(lidar)
    out.mkdir(parents=True)
    rows = []
    for i, s in enumerate(sweeps):
        z = np.load(rig / scene / s["points"])
        _write(out / f"{i:06d}{suffix}", z["points"], z["labels"] if "labels" in z.files else None)
        T = _matrix(s["ego_pose"]) @ L
        if poses == "kitti":
            rows.append(" ".join(repr(float(v)) for v in T[:3].ravel()))
        else:
            w, x, y, zq = _quat(T[:3, :3])
            t = int(s["timestamp"])
            rows.append(
                f"{t // 1_000_000}.{t % 1_000_000:06d} " + " ".join(repr(float(v)) for v in [*T[:3, 3], x, y, zq, w])
            )
    (out / "poses.txt").write_text("\n".join(rows) + "\n")
    if cameras:
        write_cameras(rig, scene, out, {s["token"]: f"{i:06d}" for i, s in enumerate(sweeps)})
    return " ".join(repr(float(v)) for v in [*lidar["translation"], *lidar["rotation"]])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rig", type=Path, required=True, help="a rig folder (rig.json)")
    p.add_argument("--scene", required=True, help="the scene to write")
    p.add_argument("--out", type=Path, required=True, help="a new folder for the point files and poses.txt")
    p.add_argument("--suffix", choices=SUFFIXES, default=".bin", help="the point files' kind")
    p.add_argument("--poses", choices=("tum", "kitti"), default="tum", help="the poses file's rows")
    p.add_argument(
        "--cameras", action="store_true", help="the rig's cameras too: cameras.yaml and the keyframes' images/<camera>/"
    )
    a = p.parse_args(argv)
    lidar = write_points(a.rig, a.scene, a.out, a.suffix, a.poses, a.cameras)
    said = ", cameras.yaml and images/" if a.cameras else ""
    print(f"wrote {a.out}: the scans and poses.txt ({a.poses}){said}; the LiDAR on the vehicle: --lidar-pose '{lidar}'")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
