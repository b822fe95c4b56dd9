"""Generated scenes written as a dataset in the layout of the data they were conditioned on, which
every occkit reader, trainer and ``occkit stats`` read (docs/design.md §7: methods compose through files).

The format writes the frames (:attr:`occkit.formats.Writers.write_generated`): the images,
the labels (``semantics`` = the occupancy that conditioned the images, or the one the perception
model predicted; counted only inside the voxels the generated cameras see, within the conditioning
frame's own mask) and the texts; Occ3D-nuScenes writes ``samples/<CAM>/<token>.png``,
``gts/<scene>/<token>/labels.npz`` and ``annotations.json``, NYUv2 ``NYUtrain/<token>.bin`` and
``_color.jpg`` and ``indoor.json``. Beside them ``generation.json`` (what made it);
:func:`record_dataset_files` then adds ``files.json``: the size and SHA-256 of every file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from occkit.fileio import FILE_SUMS, sha256_file, write_json_atomic
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
    fmt: Any = None,
) -> Path:
    """Write ``frames`` under ``out`` (new, or an empty folder) as a dataset of ``fmt`` (a
    :class:`occkit.formats.DatasetFormat`, that of the data they were conditioned on; default
    Occ3D-nuScenes) through its ``write_generated``, then ``generation.json`` (``record``); returns
    ``out``. The images are written as uint8, rounded as :func:`occkit.viz.cameras.images_uint8` rounds."""
    from dataclasses import replace

    from occkit.formats import default_format

    fmt = default_format() if fmt is None else fmt
    if fmt.writers.write_generated is None:
        raise ValueError(f"occkit generate: the {fmt.display_name} format cannot hold generated frames")
    root = Path(out)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root}: not empty (it holds a dataset?); write the generated scenes elsewhere")
    if not frames:
        raise ValueError("write_generated_dataset: no frames")
    from occkit.outputs import path_under

    for cam in cam_names:  # a name of the data that leads outside --out (absolute, ..): refused before any write
        path_under(root, cam, what=f"camera {cam!r} (data.cameras)")
    written = []
    for f in frames:
        path_under(
            root,
            f.scene,
            f.token,
            what=f"generated frame: scene {f.scene!r} (from the conditioning data), token {f.token!r}",
        )
        check_shape(f.images, "N 3 H W", name=f"frame {f.token} images", dims={"N": len(cam_names)})
        check_shape(f.semantics, "X Y Z", name=f"frame {f.token} semantics")
        written.append(replace(f, images=torch.from_numpy(images_uint8(f.images, channels_last=False))))
    root.mkdir(parents=True, exist_ok=True)
    fmt.writers.write_generated(root, written, tuple(cam_names))
    if record is not None:
        write_json_atomic(root / "generation.json", record)
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
