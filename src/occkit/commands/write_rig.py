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


def write_rig(out: Path, rec: Any, scenes: list[str], inputs: Mapping[str, Any]) -> int:
    """Write ``scenes`` of the opened recording ``rec`` as a rig folder at ``out``: each scene's sweeps,
    poses, point labels, boxes and (where the recording has them) the points' track ids, and
    ``rig.json`` with the LiDARs, cameras, classes and ego box of the scenes' records."""
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
        first, lidars, n = None, {}, 0
        for s in scenes:
            r = rec.read_scene(s)
            for name, T in r.lidars.items():
                if name in lidars and not np.allclose(lidars[name], T, atol=1e-6):
                    raise ValueError(f"--write-rig: LiDAR {name!r} sits elsewhere in scene {s!r} than before: one rig")
                lidars[name] = T
            write_scene(tmp, r, rec.instances(s) if rec.instances else None)
            first, n = first or r, n + len(r.sweeps)
        write_rig_meta(tmp, replace(first, lidars=lidars), scenes)
        if out.is_dir():
            out.rmdir()  # checked empty above
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(
        f"label: wrote {rec.describe or rec.source} as the rig folder {out}: {len(scenes)} scene(s), {n} sweeps "
        f"(docs/labels.md); occkit label --data {out} --out L labels it",
        flush=True,
    )
    return 0
