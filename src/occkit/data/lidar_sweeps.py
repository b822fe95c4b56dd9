"""LiDAR for the LiDAR teachers (RadOcc): several sweeps in the frame's ego frame.

Two sources, one wrapper (:class:`WithLidarSweeps`, set up by ``data.lidar_sweeps`` /
``data.lidar_infos``):

- **the synthetic world** (no info file): the frame's own ``extras/.../lidar.npz`` and those of
  its ``lidar_sweeps - 1`` previous frames (``prev`` links of annotations.json), brought into the
  frame's ego frame through the frames' ``T_global_from_ego``
  (:func:`occkit.models.lidar.merge_sweeps`);
- **Occ3D-nuScenes** (``data.lidar_infos``: the folder ``occkit prepare nuscenes`` wrote, or a
  nuScenes-style info file as mmdet3d / BEVDet write it, read like RayIoU's,
  :func:`occkit.metrics.rayiou.load_nuscenes_infos`): per frame
  ``lidar_path`` (a ``.pcd.bin``, float32 rows of x, y, z, intensity, ring), ``lidar2ego_*`` and
  ``sweeps`` (each with ``data_path``, ``sensor2lidar_rotation`` (3, 3), ``sensor2lidar_translation``);
  the key frame's points and the first ``lidar_sweeps - 1`` sweeps go into the LiDAR frame, then
  the ego frame. Paths are read from their ``samples/`` or ``sweeps/`` folder on, under the
  ``dataroot`` that prepare's file records (when that folder exists), else under the dataset root
  (where Occ3D-nuScenes keeps nuScenes' ``samples`` and ``sweeps``), or as given when absolute.

The points replace ``Sample.lidar`` ((P, 4): x, y, z, intensity; ``lidar_labels`` dropped when
sweeps are added, since only the key frame has labels). From an info file, a frame with LangOcc's
neighbouring keyframes (``temporal_offsets``) also gets ``temporal_lidar``: each neighbour's own
key-frame points (no sweeps) in its own ego frame.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from occkit.data.pcd_bin import read_pcd_bin
from occkit.data.sample import Sample
from occkit.data.temporal import scene_neighbours
from occkit.data.wrappers import FrameWrapper
from occkit.models.lidar import merge_sweeps


def load_lidar_infos(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """token -> ``{"lidar_path", "T_ego_from_lidar" (4, 4) float64, "sweeps": [(data_path,
    T_lidar_from_sweep (4, 4) float64), ...], "root": Path or None}`` from a nuScenes-style info
    file, or the folder ``occkit prepare nuscenes`` wrote (whose ``dataroot``, when it exists, is
    the ``root`` its relative paths are read from; otherwise they are read under the dataset's).
    Every field read is checked as the file is loaded (:class:`occkit.data.info_schema.LidarFrame`): one
    line naming the file, the frame and the field."""
    from occkit.data.info_schema import LidarFrame
    from occkit.fileio import info_where, read_info_file
    from occkit.geometry.transforms import transform_from_pose
    from occkit.schema import validate

    path = Path(path)
    frames, meta = read_info_file(path, what="data.lidar_infos")  # tokens: text, each once
    dataroot = meta.get("dataroot")
    root = Path(dataroot) if isinstance(dataroot, str) and dataroot and Path(dataroot).is_dir() else None
    out: dict[str, dict[str, Any]] = {}
    for i, info in enumerate(frames):
        f = validate(LidarFrame, info, info_where(path, i, info))
        T_ego = transform_from_pose(f.lidar2ego_translation, f.lidar2ego_rotation).double()
        out[info["token"]] = {"lidar_path": f.lidar_path, "T_ego_from_lidar": T_ego, "sweeps": _sweeps(f), "root": root}
    return out


def _sweeps(frame: Any) -> list[tuple[str, torch.Tensor]]:
    """``[(data_path, T_lidar_from_sweep (4, 4) float64), ...]`` of a frame's checked ``sweeps``, made at once
    (a trainval file holds some 340,000)."""
    if not frame.sweeps:
        return []
    T = np.zeros((len(frame.sweeps), 4, 4))
    T[:, :3, :3] = [s.sensor2lidar_rotation for s in frame.sweeps]
    T[:, :3, 3] = [s.sensor2lidar_translation for s in frame.sweeps]
    T[:, 3, 3] = 1.0
    return list(zip([s.data_path for s in frame.sweeps], torch.from_numpy(T).unbind(0)))


def resolve_lidar_path(root: Path, data_path: str) -> Path:
    """An info file's LiDAR path under the dataset root: absolute paths as given, others from
    their ``samples/`` or ``sweeps/`` component on (``./data/nuscenes/samples/LIDAR_TOP/x.bin``
    -> ``ROOT/samples/LIDAR_TOP/x.bin``), else relative to the root."""
    p = Path(data_path)
    if p.is_absolute():
        return p
    parts = p.parts
    for k, part in enumerate(parts):
        if part in ("samples", "sweeps"):
            return root.joinpath(*parts[k:])
    return root / p


class WithLidarSweeps(FrameWrapper):
    """Frames of ``dataset`` (an :class:`~occkit.data.occ3d.Occ3DDataset`) with ``Sample.lidar``
    = the frame's LiDAR and up to ``sweeps - 1`` earlier sweeps, in its ego frame.

    Args:
        dataset: the frames.
        sweeps: how many sweeps (>= 1; 1 = the key frame only).
        infos: a nuScenes-style info file (real Occ3D-nuScenes); None = the synthetic extras.
    """

    def __init__(self, dataset: Dataset, sweeps: int = 1, infos: str | os.PathLike | None = None) -> None:
        if sweeps < 1:
            raise ValueError(f"data.lidar_sweeps: expected >= 1, got {sweeps}")
        self.dataset, self.sweeps = dataset, int(sweeps)
        self.infos_path = Path(infos) if infos is not None else None
        self.infos = load_lidar_infos(self.infos_path) if self.infos_path is not None else None
        if self.infos is not None:
            self._check_files()

    def _check_files(self) -> None:
        """Every LiDAR file the info file names for this dataset's frames (the keyframe and the sweeps
        read) is there: else one line naming the info file, the frame and the file (a file missing
        was found by a DataLoader worker, whose traceback the user saw). A frame the info file does not
        list is said when it is read (data.lidar_infos must list every frame)."""
        assert self.infos is not None
        tokens = [str(t) for t in getattr(self._base(), "tokens", [])]
        infos = [(t, self.infos[t]) for t in tokens if t in self.infos]
        missing = [(t, f) for t, info in infos for f, _ in self._files(info) if not f.is_file()]
        if missing:
            raise FileNotFoundError(
                f"{self.infos_path}: frame {missing[0][0]}'s LiDAR file {missing[0][1]} is missing ({len(missing)} "
                f"LiDAR file(s) of {len(tokens)} frames named there are not on disk: data.lidar_infos of another copy "
                "of nuScenes, or its samples/ and sweeps/ not all there?)"
            )

    def _files(self, info: dict[str, Any], sweeps: int | None = None) -> list[tuple[Path, torch.Tensor]]:
        """The LiDAR files a frame reads (its keyframe's, then its first ``sweeps - 1`` sweeps'; ``sweeps``
        None: :attr:`sweeps`), each with its ``T_lidar_from_sweep``, under the info's ``root`` or the dataset's."""
        root = info.get("root") or Path(self._base().root)
        n = (self.sweeps if sweeps is None else sweeps) - 1
        own = (info["lidar_path"], torch.eye(4, dtype=torch.float64))
        return [(resolve_lidar_path(root, rel), T) for rel, T in [own, *info["sweeps"][:n]]]

    def __getitem__(self, i: int) -> Sample:
        s: Sample = self.dataset[i]
        if self.infos is not None:
            s.lidar, s.lidar_labels = self._from_infos(s.token), None
            if s.temporal_offsets is not None and s.temporal_pixels is None:
                # LangOcc's temporal rays: each neighbour's own key-frame LiDAR, its own ego frame (unless already
                # gathered at its pixels: langocc.temporal_gather)
                from occkit.data.temporal import neighbour_tokens

                toks = neighbour_tokens(self._base(), s.token, s.temporal_offsets.tolist())
                s.temporal_lidar = [self._from_infos(t, sweeps=1) for t in toks]
        elif self.sweeps > 1:
            s.lidar, s.lidar_labels = self._from_extras(s), None
        return s

    def keyframe_lidar(self, token: str) -> torch.Tensor:
        """Keyframe ``token``'s own points ``(P, 4)`` in its ego frame (no sweeps), from the info file."""
        return self._from_infos(token, sweeps=1)

    def _from_infos(self, token: str, sweeps: int | None = None) -> torch.Tensor:
        assert self.infos is not None and self.infos_path is not None
        info = self.infos.get(token)
        if info is None:
            raise KeyError(
                f"{self.infos_path}: no frame {token} (data.lidar_infos must list every frame of the dataset)"
            )
        files = self._files(info, sweeps)
        try:  # a damaged file named with the frame and the info file that lists it
            pts = [read_pcd_bin(f) for f, _ in files]
        except ValueError as e:
            raise ValueError(f"{e} (frame {token} of data.lidar_infos {self.infos_path})") from None
        T_ego = info["T_ego_from_lidar"]
        out = []
        for p, (_, T) in zip(pts, files):
            T_ego_from_sweep = T_ego @ T  # (4, 4) float64
            xyz = p[:, :3].double() @ T_ego_from_sweep[:3, :3].T + T_ego_from_sweep[:3, 3]
            out.append(torch.cat([xyz.float(), p[:, 3:4]], 1))
        return torch.cat(out)

    def _from_extras(self, s: Sample) -> torch.Tensor:
        ds = self._base()
        if s.lidar is None:
            raise ValueError(
                f"data.lidar_sweeps > 1: frame {s.token} has no LiDAR (data.load_extras: true on the synthetic world, "
                "or data.lidar_infos on real Occ3D-nuScenes)"
            )
        pts, poses = [s.lidar], [ds.T_global_from_ego(s.token)]
        for token in scene_neighbours(ds, s.token, -1, self.sweeps - 1):  # fewer at the scene's first frames
            points = ds.frame_lidar(token)  # the extras' lidar.npz, or the file the index names (occkit label)
            if points is None:
                raise ValueError(
                    f"data.lidar_sweeps > 1: frame {token} (before {s.token}) has no LiDAR: neither "
                    f"{ds.extras_dir(token) / 'lidar.npz'} nor a file its lidar_sensor.filename names"
                )
            pts.append(torch.from_numpy(points.astype(np.float32)))
            poses.append(ds.T_global_from_ego(token))
        return merge_sweeps(pts, torch.stack(poses), reference=0)
