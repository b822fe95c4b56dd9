"""``occkit label --data D --write-rig RIG``: the recording ``D`` (any kind a reader takes) written as a
rig folder (docs/labels.md, "--write-rig"), the one documented form a user can read and edit, and no
labels made. ``RIG`` must be new (or an empty folder): it is filled beside, then renamed into place, so a
stopped run leaves no half rig."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _check_place(out: Path, inputs: Mapping[str, Any]) -> None:
    from occkit.output_folders import check_not_inside_dataset
    from occkit.outputs import check_not_inside_inputs, check_writable_place

    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise FileExistsError(f"--write-rig {out}: is a file or a link; give a new folder's path")
    if out.is_dir() and any(out.iterdir()):
        raise FileExistsError(
            f"--write-rig {out}: exists and is not empty; give a new folder (a rig is never overwritten)"
        )
    check_not_inside_inputs(out, inputs, what="--write-rig")
    check_not_inside_dataset(out, what="--write-rig")
    check_writable_place(out, what="--write-rig")


def _image_files(rec: Any, r: Any, cameras: Mapping[str, Any]) -> tuple[dict[str, dict[str, Path]], int]:
    """The camera image files of scene record ``r``'s sweeps that the recording ``rec`` names
    (:attr:`~occkit.data.recordings.spec.RecordingReader.images`), by token and camera, for the rig's
    ``cameras``; and how many images of other cameras were left out. A named file missing: a ValueError."""
    files: dict[str, dict[str, Path]] = {}
    other = 0
    for sweep in r.sweeps:
        for cam, path in (rec.images.get(sweep.token) or {}).items():
            if not path:
                continue
            if cam not in cameras:
                other += 1
                continue
            src = rec.image_file(path)
            if src is None or not src.is_file():
                raise ValueError(
                    f"--write-rig: {src or path}: the {cam} image of sweep {sweep.token} (scene {r.name}) is missing "
                    "(no such file)"
                )
            files.setdefault(sweep.token, {})[cam] = src.resolve()
    return files, other


def write_rig(out: Path, rec: Any, scenes: list[str], inputs: Mapping[str, Any]) -> int:
    """Write ``scenes`` of the opened recording ``rec`` as a rig folder at ``out``: each scene's sweeps,
    poses, point labels, boxes, camera images (hard-linked or copied into the scene's ``images/``) and
    (where the recording has them) the points' track ids, and ``rig.json`` with the LiDARs, cameras,
    classes and ego box of the scenes' records (the cameras: the first scene's)."""
    from dataclasses import replace

    import numpy as np

    from occkit.data.rig import write_rig_meta, write_scene

    out = Path(out)
    _check_place(out, inputs)
    out.absolute().parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.absolute().parent))
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o777 & ~mask)  # a folder as any other the user makes (mkdtemp's is private)
    try:
        first, lidars, n, shots, other = None, {}, 0, 0, 0
        for s in scenes:
            r = rec.read_scene(s)
            for name, T in r.lidars.items():
                if name in lidars and not np.allclose(lidars[name], T, atol=1e-6):
                    raise ValueError(f"--write-rig: LiDAR {name!r} sits elsewhere in scene {s!r} than before: one rig")
                lidars[name] = T
            files, left = _image_files(rec, r, (first or r).cameras)
            staged = tmp / ".images"  # images a reader writes itself (a bag's), linked into the scene, then removed
            for token, cams in rec.write_images(s, staged).items():
                for cam, rel in cams.items():
                    if cam in (first or r).cameras:
                        files.setdefault(token, {})[cam] = (staged / rel).resolve()
            write_scene(tmp, replace(r, cameras=(first or r).cameras), rec.instances(s), files)
            shutil.rmtree(staged, ignore_errors=True)
            first, n = first or r, n + len(r.sweeps)
            shots, other = shots + sum(map(len, files.values())), other + left
        write_rig_meta(tmp, replace(first, lidars=lidars), scenes)
        if out.is_dir():
            out.rmdir()  # checked empty above
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    said = f", {shots} camera images (hard-linked where the file system allows, else copied)" if shots else ""
    if other:
        said += f"; {other} images of cameras rig.json does not hold (the first scene's) left out"
    print(
        f"label: wrote {rec.describe or rec.source} as the rig folder {out}: {len(scenes)} scene(s), {n} sweeps"
        f"{said} (docs/labels.md); occkit label --data {out} --out L labels it",
        flush=True,
    )
    return 0
