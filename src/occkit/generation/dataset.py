"""Generated scenes written as a dataset in the Occ3D-nuScenes layout, which every occkit reader,
trainer and ``occkit stats`` read (docs/design.md §7: methods compose through files).

Layout under ``out``: ``samples/<CAM>/<token>.png``, ``gts/<scene>/<token>/labels.npz``
(``semantics`` = the occupancy that conditioned the images, or the one the perception model
predicted; ``mask_camera`` = ``mask_lidar`` = the voxels the generated cameras see, within the
conditioning frame's camera mask), ``annotations.json`` (every scene in ``train_split``, an empty
``val_split``, the texts in ``scene_descriptions``) and ``generation.json`` (what made it);
:func:`record_dataset_files` then adds ``files.json``: the size and SHA-256 of every file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from occkit.fileio import FILE_SUMS, save_npz_atomic, sha256_file, write_json_atomic
from occkit.geometry.transforms import pose_from_transform
from occkit.shapes import check_shape
from occkit.viz.cameras import images_uint8


@dataclass
class GeneratedFrame:
    """One generated frame.

    Attributes:
        token, scene: names in the written dataset; text: its description.
        images: ``(N, 3, H, W)`` float in [0, 1], or uint8 (written as they are);
            intrinsics ``(N, 3, 3)``; T_ego_from_cam ``(N, 4, 4)``.
        semantics: ``(X, Y, Z)`` class ids; mask: ``(X, Y, Z)`` bool, the voxels counted.
        T_global_from_ego: ``(4, 4)``; source: the conditioning frame's token (or None).
    """

    token: str
    scene: str
    text: str
    images: torch.Tensor
    intrinsics: torch.Tensor
    T_ego_from_cam: torch.Tensor
    semantics: torch.Tensor
    mask: torch.Tensor
    T_global_from_ego: torch.Tensor
    source: str | None = None


def write_generated_dataset(
    out: str | os.PathLike,
    frames: list[GeneratedFrame],
    cam_names: tuple[str, ...],
    record: dict[str, Any] | None = None,
) -> Path:
    """Write ``frames`` under ``out`` (which must not hold an ``annotations.json``); returns ``out``."""
    from PIL import Image

    from occkit.fileio import atomic_write

    root = Path(out)
    if (root / "annotations.json").exists():
        raise FileExistsError(
            f"{root}: already holds a dataset (annotations.json); write the generated scenes elsewhere"
        )
    if not frames:
        raise ValueError("write_generated_dataset: no frames")
    scene_infos: dict[str, dict[str, Any]] = {}
    descriptions: dict[str, str] = {}
    order: dict[str, list[str]] = {}
    for f in frames:
        N = len(cam_names)
        check_shape(f.images, "N 3 H W", name=f"frame {f.token} images", dims={"N": N})
        check_shape(f.semantics, "X Y Z", name=f"frame {f.token} semantics")
        order.setdefault(f.scene, []).append(f.token)
        descriptions[f.scene] = f.text
        ego = pose_from_transform(f.T_global_from_ego.double())
        cams = {}
        for i, cam in enumerate(cam_names):
            rel = f"samples/{cam}/{f.token}.png"
            pil = Image.fromarray(images_uint8(f.images[i]))
            atomic_write(root / rel, lambda fh, pil=pil: pil.save(fh, format="PNG"))
            cams[cam] = {
                "img_path": rel,
                "intrinsic": f.intrinsics[i].double().tolist(),
                "extrinsic": pose_from_transform(f.T_ego_from_cam[i].double()),
                "ego_pose": ego,
            }
        gt = f"gts/{f.scene}/{f.token}/labels.npz"
        mask = f.mask.bool().cpu().numpy().astype(np.uint8)
        save_npz_atomic(
            root / gt, semantics=f.semantics.cpu().numpy().astype(np.uint8), mask_camera=mask, mask_lidar=mask
        )
        scene_infos.setdefault(f.scene, {})[f.token] = {
            "camera_sensor": cams,
            "ego_pose": ego,
            "gt_path": gt,
            "source_token": f.source,
        }
    for scene, tokens in order.items():
        for i, tok in enumerate(tokens):
            info = scene_infos[scene][tok]
            info["timestamp"] = 1_000_000 + 500_000 * i
            info["prev"] = tokens[i - 1] if i > 0 else ""
            info["next"] = tokens[i + 1] if i + 1 < len(tokens) else ""
    if record is not None:
        write_json_atomic(root / "generation.json", record)
    write_json_atomic(
        root / "annotations.json",
        {"train_split": list(order), "val_split": [], "scene_infos": scene_infos, "scene_descriptions": descriptions},
    )
    return root


def record_dataset_files(root: str | os.PathLike) -> Path:
    """Write ``root/files.json`` (:data:`occkit.fileio.FILE_SUMS`): ``{relative path: {"size":
    bytes, "sha256": hex}}`` of every file under ``root`` but itself, sorted by path; returns it."""
    root = Path(root)
    record = root / FILE_SUMS
    sums = {
        p.relative_to(root).as_posix(): {"size": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(root.rglob("*"))
        if p.is_file() and p != record
    }
    return write_json_atomic(record, sums)
