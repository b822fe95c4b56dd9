"""The LiDAR branch of the occupancy network (RadOcc's teachers, docs/methods.md §1).

A frame's LiDAR points (optionally with past sweeps brought into its ego frame,
:func:`merge_sweeps`) are voxelised into the lift grid by a pure function,
:func:`voxelize_lidar`, into four channels per cell:

- occupancy: 1 where at least one point falls, else 0;
- point count: ``log1p(count)``;
- mean height: the points' mean z inside the cell relative to the cell centre, in cell heights
  (in [-0.5, 0.5]);
- mean intensity: the points' mean 4th coordinate, divided by ``intensity_scale``.

:class:`LidarVoxelEncoder` turns that volume ``(B, 4, X', Y', Z')`` into ``lidar_channels``
features with a small 3D convolutional stem; :class:`occkit.models.occnet.OccNet` feeds them to
the same 3D U-Net and voxel head as the camera lift (``model.modality: lidar``), or concatenated
with the camera lift's volume (``model.modality: fusion``).
"""

from __future__ import annotations

import torch
from torch import nn

from occkit.geometry.grid import Grid
from occkit.shapes import check_shape

#: Channels of :func:`voxelize_lidar`'s output.
LIDAR_VOXEL_CHANNELS = 4


def merge_sweeps(
    sweeps: list[torch.Tensor],
    T_global_from_ego: torch.Tensor,
    reference: int = 0,
) -> torch.Tensor:
    """Bring several LiDAR sweeps into the ego frame of one of them and concatenate them.

    Args:
        sweeps: ``K`` tensors ``(P_k, 4+)`` (x, y, z, intensity, ...), each in its own frame's
            ego frame.
        T_global_from_ego: ``(K, 4, 4)`` the pose of each sweep's ego frame (float64 advised:
            global coordinates are large).
        reference: index of the sweep whose ego frame the result is in.
    Returns:
        ``(sum P_k, 4+)`` in the reference ego frame, float32; the columns after xyz unchanged.
    """
    if not sweeps:
        raise ValueError("merge_sweeps: sweeps is empty")
    check_shape(T_global_from_ego, "K 4 4", name="T_global_from_ego", dims={"K": len(sweeps)})
    if not -len(sweeps) <= reference < len(sweeps):
        raise ValueError(f"merge_sweeps: reference {reference} is not one of the {len(sweeps)} sweeps")
    T = T_global_from_ego.double()
    T_ref_from_global = torch.linalg.inv(T[reference])
    out = []
    for k, pts in enumerate(sweeps):
        check_shape(pts, "P C", name=f"sweeps[{k}]")
        if pts.shape[1] < 3:
            raise ValueError(f"sweeps[{k}]: expected at least 3 columns (x, y, z), got {pts.shape[1]}")
        T_ref_from_k = (T_ref_from_global @ T[k]).to(pts.device)  # (4, 4)
        xyz = pts[:, :3].double() @ T_ref_from_k[:3, :3].T + T_ref_from_k[:3, 3]
        out.append(torch.cat([xyz.float(), pts[:, 3:].float()], 1))
    return torch.cat(out, 0)


def voxelize_lidar(points: torch.Tensor, grid: Grid, intensity_scale: float = 1.0) -> torch.Tensor:
    """Per-cell LiDAR statistics on ``grid``.

    Args:
        points: ``(P, 4)`` (x, y, z, intensity) in the grid's (ego) frame; points outside the grid
            are dropped. ``(P, 3)`` is accepted (intensity 0).
        grid: the voxel grid (the lift grid of the network).
        intensity_scale: the intensity is divided by this (e.g. 255 for nuScenes' 0..255).
    Returns:
        ``(4, X, Y, Z)`` float32: occupancy (0/1), ``log1p(count)``, mean height relative to the
        cell centre in cell heights, mean intensity / ``intensity_scale``; 0 in empty cells.
    """
    check_shape(points, "P _", name="points")
    if points.shape[1] not in (3, 4):
        raise ValueError(f"points: expected (P, 3) or (P, 4) (x, y, z, intensity), got {tuple(points.shape)}")
    if not intensity_scale > 0:
        raise ValueError(f"intensity_scale: expected > 0, got {intensity_scale}")
    X, Y, Z = grid.shape
    dev = points.device
    pts = points.float()
    idx, ok = grid.point_to_index(pts[:, :3])
    idx, pts = idx[ok], pts[ok]
    flat = (idx[:, 0] * Y + idx[:, 1]) * Z + idx[:, 2]  # (P',)
    cells = X * Y * Z
    count = torch.zeros(cells, device=dev).index_add_(0, flat, torch.ones_like(flat, dtype=torch.float32))
    centre_z = grid.range_min[2] + (idx[:, 2].float() + 0.5) * grid.voxel_size[2]
    dz = (pts[:, 2] - centre_z) / grid.voxel_size[2]  # (P',) in [-0.5, 0.5)
    inten = pts[:, 3] / intensity_scale if pts.shape[1] == 4 else torch.zeros_like(dz)
    sums = torch.zeros(2, cells, device=dev)
    sums[0].index_add_(0, flat, dz)
    sums[1].index_add_(0, flat, inten)
    denom = count.clamp(min=1)
    out = torch.stack([(count > 0).float(), torch.log1p(count), sums[0] / denom, sums[1] / denom])  # (4, cells)
    return out.view(LIDAR_VOXEL_CHANNELS, X, Y, Z)


class LidarVoxelEncoder(nn.Module):
    """Voxelised LiDAR points -> features on the lift grid.

    ``points`` (one ``(P, 4)`` tensor per frame) -> :func:`voxelize_lidar` ``(B, 4, X', Y', Z')``
    -> two 3x3x3 conv + BatchNorm + ReLU -> ``(B, out_channels, X', Y', Z')``.

    Args:
        grid: the lift grid.
        out_channels: feature width.
        intensity_scale: see :func:`voxelize_lidar`.
    """

    def __init__(self, grid: Grid, out_channels: int, intensity_scale: float = 1.0) -> None:
        super().__init__()
        if out_channels < 1:
            raise ValueError(f"LidarVoxelEncoder: out_channels must be >= 1, got {out_channels}")
        self.grid = grid
        self.out_channels = out_channels
        self.intensity_scale = float(intensity_scale)
        self.stem = nn.Sequential(
            nn.Conv3d(LIDAR_VOXEL_CHANNELS, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv3d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(inplace=True),
        )

    def voxelize(self, points: list[torch.Tensor]) -> torch.Tensor:
        """``B`` point tensors -> ``(B, 4, X', Y', Z')`` (no parameters, no gradients needed)."""
        return torch.stack([voxelize_lidar(p, self.grid, self.intensity_scale) for p in points])

    def forward(self, points: list[torch.Tensor]) -> torch.Tensor:
        """``B`` tensors ``(P_b, 4)`` in the ego frame -> ``(B, out_channels, X', Y', Z')``."""
        if not isinstance(points, (list, tuple)) or not points:
            raise ValueError("LidarVoxelEncoder: expected a non-empty list of (P, 4) point tensors, one per frame")
        x = self.voxelize(list(points))
        dtype = self.stem[0].weight.dtype
        return self.stem(x.to(dtype))
