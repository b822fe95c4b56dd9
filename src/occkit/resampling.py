"""Labels of one format's grid and frame read on another's: each target voxel takes the source voxel
holding its centre. ``occkit convert`` resamples ground truth so (:mod:`occkit.convert`), and
``occkit eval --class-map`` across grids resamples predictions so (:class:`PredictionResampler`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from occkit.formats.spec import ConvertError, DatasetFormat, FrameLabels
from occkit.geometry.grid import Grid


def voxel_centres(grid: Grid) -> np.ndarray:
    """``(X * Y * Z, 3)`` float64 centres of ``grid``'s voxels, C order of ``[x, y, z]``."""
    lo, vs = np.asarray(grid.range_min, np.float64), np.asarray(grid.voxel_size, np.float64)
    axes = [lo[a] + (np.arange(n) + 0.5) * vs[a] for a, n in enumerate(grid.shape)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)


def centres_of(flat: np.ndarray, grid: Grid) -> np.ndarray:
    """``(N, 3)`` centres of the voxels of ``grid`` at flat (C order) indices ``flat``."""
    ijk = np.stack(np.unravel_index(np.asarray(flat, np.int64), tuple(grid.shape)), -1)
    return np.asarray(grid.range_min, np.float64) + (ijk + 0.5) * np.asarray(grid.voxel_size, np.float64)


def voxel_of(points: np.ndarray, grid: Grid) -> np.ndarray:
    """The flat index (C order) of the voxel of ``grid`` holding each point ``(N, 3)``, -1 outside.
    A voxel ``i`` holds ``[lo + i v, lo + (i + 1) v)``."""
    lo, vs = np.asarray(grid.range_min, np.float64), np.asarray(grid.voxel_size, np.float64)
    ijk = np.floor((points - lo) / vs).astype(np.int64)
    shape = np.asarray(grid.shape)
    inside = ((ijk >= 0) & (ijk < shape)).all(1)
    flat = np.full(len(points), -1, np.int64)
    i = ijk[inside]
    flat[inside] = (i[:, 0] * shape[1] + i[:, 1]) * shape[2] + i[:, 2]
    return flat


def same_grid(a: Grid, b: Grid) -> bool:
    return (
        tuple(a.shape) == tuple(b.shape)
        and np.allclose(a.range_min, b.range_min, atol=1e-6)
        and np.allclose(a.voxel_size, b.voxel_size, atol=1e-9)
    )


def resample_index(src: Grid, dst: Grid, T_src_from_dst: np.ndarray | None) -> np.ndarray | None:
    """For each voxel of ``dst`` (flat, C order), the flat index of the ``src`` voxel holding its
    centre (carried by ``T_src_from_dst``, ``(4, 4)``; None = the identity), -1 where outside ``src``;
    None when the grids are one and the transform the identity (nothing to resample)."""
    T = np.eye(4) if T_src_from_dst is None else np.asarray(T_src_from_dst, np.float64)
    if np.allclose(T, np.eye(4), atol=1e-9) and same_grid(src, dst):
        return None
    if np.allclose(T[:3, :3], np.eye(3), atol=1e-12):  # a translation: one axis at a time
        lo_s, vs_s = np.asarray(src.range_min, np.float64), np.asarray(src.voxel_size, np.float64)
        lo_d, vs_d = np.asarray(dst.range_min, np.float64), np.asarray(dst.voxel_size, np.float64)
        per_axis = []
        for a in range(3):
            c = lo_d[a] + (np.arange(dst.shape[a]) + 0.5) * vs_d[a] + T[a, 3]
            i = np.floor((c - lo_s[a]) / vs_s[a]).astype(np.int64)
            per_axis.append(np.where((i >= 0) & (i < src.shape[a]), i, -1))
        ix, iy, iz = per_axis
        flat = (ix[:, None, None] * src.shape[1] + iy[None, :, None]) * src.shape[2] + iz[None, None, :]
        outside = (ix[:, None, None] < 0) | (iy[None, :, None] < 0) | (iz[None, None, :] < 0)
        return np.where(outside, -1, flat).reshape(-1)
    p = voxel_centres(dst)
    p = p @ T[:3, :3].T + T[:3, 3]
    return voxel_of(p, src)


def frame_transform(frame: FrameLabels, src: DatasetFormat, dst: DatasetFormat) -> np.ndarray | None:
    """``T_src_labels_from_dst_labels`` of a frame, None when both layouts label in one frame; a frame
    whose source does not give the transform is a one-line error."""
    if src.label_frame == dst.label_frame:
        return None
    missing = [f for f in (src.label_frame, dst.label_frame) if f not in frame.T_ego_from]
    if missing:
        raise ConvertError(
            f"frame {frame.token}: {src.name} labels are in the {src.label_frame} frame and {dst.name}'s in the "
            f"{dst.label_frame} frame, and the source does not give its {missing[0]} -> ego transform "
            "(nuScenes layouts: annotations.json's lidar_sensor.extrinsic, or --infos I from occkit prepare nuscenes)"
        )
    return np.linalg.inv(frame.T_ego_from[src.label_frame]) @ frame.T_ego_from[dst.label_frame]


class PredictionResampler:
    """Predictions of the format ``source`` brought onto the grid and frame of the ground truth of
    ``target`` (``occkit eval --class-map`` across grids), as :func:`occkit.convert.frame.convert_frame` brings labels:
    each ground-truth voxel takes the predicted voxel holding its centre.

    ``dataset``: the ground truth's frames (``target.open``), whose label writer's ``read`` gives a
    frame's transforms when the two label frames differ. Calling it with ``(token, pred)`` gives the
    resampled ``(X, Y, Z)`` uint8 and the voxels the predictions' grid covers (bool), or ``(pred,
    None)`` unchanged for one grid and frame.
    """

    def __init__(self, source: DatasetFormat, target: DatasetFormat, dataset: Any) -> None:
        self.source, self.target, self.dataset = source, target, dataset
        self._index: dict[bytes, np.ndarray | None] = {}
        if source.label_frame != target.label_frame and target.writers.label_writer is None:
            raise ConvertError(
                f"predictions of {source.name} ({source.label_frame} frame) on {target.name} ground truth "
                f"({target.label_frame} frame): {target.name} gives no frame transforms; convert the predictions' "
                "layout first (occkit convert)"
            )

    def __call__(self, token: str, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        T = None
        if self.source.label_frame != self.target.label_frame:
            i = self.dataset.index_of(token)
            frame = self.target.writers.label_writer.read(self.dataset, i, {})  # type: ignore[union-attr]
            T = frame_transform(frame, self.source, self.target)  # ground-truth voxel centres -> predictions' frame
        key = b"" if T is None else np.round(np.asarray(T), 9).tobytes()
        if key in self._index:
            idx = self._index[key]
        else:
            idx = resample_index(self.source.grid, self.target.grid, T)
            if len(self._index) > 8:  # real frames each have their own extrinsic: keep a few
                self._index = {}
            self._index[key] = idx
        if idx is None:
            return pred, None
        inside = idx >= 0
        out = np.zeros(idx.shape, np.uint8)
        out[inside] = np.asarray(pred).reshape(-1)[idx[inside]]
        shape = tuple(self.target.grid.shape)
        return out.reshape(shape), inside.reshape(shape)
