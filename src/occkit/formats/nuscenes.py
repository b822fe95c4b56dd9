"""``nuscenes``: Occ3D-nuScenes inside a raw nuScenes root, the folder ``occkit synth --format
nuscenes`` writes (docs/formats/nuscenes.md).

A raw nuScenes root (``v1.0-*`` tables, ``samples/``, ``sweeps/``, ``maps/``) has no occupancy
labels of its own: it is the input of ``occkit prepare nuscenes``, beside the Occ3D folder, not a
dataset occkit trains on or scores. The usual arrangement puts Occ3D's ``gts/`` and
``annotations.json`` into that root, and that is what this format's synthetic writer makes: the
synthetic world in the Occ3D-nuScenes layout plus its nuScenes table set ``v1.0-synth/`` and LiDAR
files (:mod:`occkit.worlds.driving.nuscenes_export`). Its labels are Occ3D's, so it reads, trains,
predicts and scores exactly as ``occ3d`` (every field but the name, the writer and the detection is
``occ3d``'s); it is never detected (a folder with ``annotations.json`` is ``occ3d``, which reads it
the same), so it changes nothing for a folder occkit already reads.

``occkit prepare nuscenes --dataroot D [--version v1.0-trainval] [--occ3d G] [--sweeps 10] --out I``
(:data:`occkit.data.nuscenes_prepare.PREPARATION`, this format's ``writers.preparation``) reads such a raw root
with nuscenes-devkit and writes ``I/infos.json``: per keyframe (sample token = Occ3D frame token), its
LiDAR file and sweeps with their poses, the ego pose, the cameras' calibration and the neighbouring
keyframes (:mod:`occkit.data.nuscenes_raw`), what ``occkit eval --infos`` and ``data.lidar_infos`` take.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from occkit.formats.occ3d import FORMAT as OCC3D
from occkit.formats.spec import Detection, world_writer


def detect(root: Path) -> str | None:
    """Never: such a folder holds ``annotations.json`` and is read as ``occ3d``, the same way."""
    return None


#: The synthetic world as Occ3D-nuScenes plus its nuScenes tables (``occkit synth --format nuscenes``).
write_synthetic = world_writer("occkit.worlds.driving.nuscenes_export:export_nuscenes", overwrite=True)


FORMAT = replace(
    OCC3D,
    name="nuscenes",
    title="Occ3D-nuScenes in a raw nuScenes root",
    summary="Occ3D-nuScenes plus the raw nuScenes tables (v1.0-*/, samples/LIDAR_TOP/*.pcd.bin) that occkit prepare "
    "nuscenes reads; read and scored as occ3d",
    detection=Detection(detect, priority=OCC3D.detection.priority + 80),
    writers=replace(
        OCC3D.writers,
        write_synthetic=write_synthetic,
        label_writer=None,  # its labels are occ3d's: occkit convert --to occ3d writes them
        preparation="occkit.data.nuscenes_prepare:PREPARATION",
    ),
    source="",
)
