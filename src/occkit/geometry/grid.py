"""Axis-aligned voxel grids indexed ``[x, y, z]``.

The centre of voxel ``i`` along an axis is ``range_min + i * voxel_size + voxel_size / 2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from occkit.shapes import check_shape


@dataclass(frozen=True)
class Grid:
    """A voxel grid: ``range_min``/``range_max`` in metres (x, y, z) and a voxel size per axis."""

    range_min: tuple[float, float, float]
    range_max: tuple[float, float, float]
    voxel_size: tuple[float, float, float]

    def __post_init__(self) -> None:
        for name in ("range_min", "range_max", "voxel_size"):
            v = getattr(self, name)
            if len(v) != 3:
                raise ValueError(f"Grid.{name}: expected 3 values, got {v}")
            object.__setattr__(self, name, tuple(float(a) for a in v))
        if any(s <= 0 for s in self.voxel_size):
            raise ValueError(f"Grid.voxel_size must be positive, got {self.voxel_size}")
        for lo, hi, s in zip(self.range_min, self.range_max, self.voxel_size):
            n = (hi - lo) / s
            if hi <= lo or abs(n - round(n)) > 1e-6:
                raise ValueError(f"Grid: range [{lo}, {hi}] is not a positive whole number of voxels of {s} m")

    @classmethod
    def from_range(cls, point_range: tuple[float, ...], voxel_size: float | tuple[float, float, float]) -> Grid:
        """From ``[xmin, ymin, zmin, xmax, ymax, zmax]`` and a voxel size (scalar or per axis)."""
        if len(point_range) != 6:
            raise ValueError(f"point_range: expected 6 values, got {point_range}")
        vs = (voxel_size,) * 3 if isinstance(voxel_size, (int, float)) else tuple(voxel_size)
        return cls(tuple(point_range[:3]), tuple(point_range[3:]), vs)  # type: ignore[arg-type]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(round((hi - lo) / s)) for lo, hi, s in zip(self.range_min, self.range_max, self.voxel_size))  # type: ignore[return-value]

    @property
    def point_range(self) -> tuple[float, ...]:
        return self.range_min + self.range_max

    def _vecs(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lo = torch.tensor(self.range_min, dtype=like.dtype, device=like.device)
        vs = torch.tensor(self.voxel_size, dtype=like.dtype, device=like.device)
        return lo, vs

    def constants(self) -> dict[str, torch.Tensor]:
        """``range_min`` and ``voxel_size`` (float32) and ``shape`` (long) as CPU tensors, for a
        module to hold as buffers and pass to :meth:`point_to_index` as ``consts``: a forward then
        builds no tensor from Python values (none is copied from the host per call, which CUDA
        graph capture refuses)."""
        return {
            "range_min": torch.tensor(self.range_min, dtype=torch.float32),
            "voxel_size": torch.tensor(self.voxel_size, dtype=torch.float32),
            "shape": torch.tensor(self.shape, dtype=torch.long),
        }

    def point_to_index(
        self, points: torch.Tensor, consts: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Voxel index of each point.

        Args:
            points: ``(..., 3)`` metres in the grid's frame.
            consts: ``(range_min, voxel_size, shape)`` of :meth:`constants` on ``points``' device
                (a module's buffers); built here when omitted.
        Returns:
            index: ``(..., 3)`` long (meaningful only where valid); valid: ``(...)`` bool, the
            point lies inside ``[range_min, range_max)``.
        """
        check_shape(points, "... 3", name="points")
        if consts is None:
            lo, vs = self._vecs(points)
            shape = torch.tensor(self.shape, device=points.device)
        else:
            lo, vs, shape = consts[0].to(points.dtype), consts[1].to(points.dtype), consts[2]
        idx = torch.floor((points - lo) / vs).long()
        valid = ((idx >= 0) & (idx < shape)).all(-1)
        return idx, valid

    def index_to_point(self, index: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
        """Centres of voxels ``index (..., 3)``: ``(..., 3)`` metres."""
        check_shape(index, "... 3", name="index")
        f = index.to(dtype)
        lo, vs = self._vecs(f)
        return lo + (f + 0.5) * vs

    def centers(self, dtype=torch.float32, device=None) -> torch.Tensor:
        """Every voxel centre: ``(X, Y, Z, 3)``."""
        axes = [
            lo + (torch.arange(n, dtype=dtype, device=device) + 0.5) * s
            for lo, n, s in zip(self.range_min, self.shape, self.voxel_size)
        ]
        return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1)

    def voxelize(
        self,
        points: torch.Tensor,
        labels: torch.Tensor | None = None,
        num_classes: int | None = None,
        fill: int = 0,
    ) -> torch.Tensor:
        """Voxelise points.

        Without labels: ``(X, Y, Z) bool`` occupancy. With ``labels (N,)`` integer and
        ``num_classes``: ``(X, Y, Z) long`` holding the majority label of the points in each
        voxel (ties to the smaller label) and ``fill`` where no point falls.
        """
        check_shape(points, "N 3", name="points")
        idx, valid = self.point_to_index(points)
        idx = idx[valid]
        X, Y, Z = self.shape
        flat = (idx[:, 0] * Y + idx[:, 1]) * Z + idx[:, 2]
        if labels is None:
            occ = torch.zeros(X * Y * Z, dtype=torch.bool, device=points.device)
            occ[flat] = True
            return occ.view(X, Y, Z)
        if num_classes is None:
            raise ValueError("voxelize: num_classes is required with labels")
        check_shape(labels, "N", name="labels", dims={"N": points.shape[0]})
        lab = labels[valid].long()
        if lab.numel() and (lab.min() < 0 or lab.max() >= num_classes):
            raise ValueError(
                f"voxelize: labels must lie in [0, {num_classes}), got [{int(lab.min())}, {int(lab.max())}]"
            )
        counts = torch.zeros(X * Y * Z * num_classes, dtype=torch.int32, device=points.device)
        counts.index_add_(0, flat * num_classes + lab, torch.ones_like(lab, dtype=torch.int32))
        counts = counts.view(X * Y * Z, num_classes)
        out = counts.argmax(-1)
        out[counts.sum(-1) == 0] = fill
        return out.view(X, Y, Z)


def occ3d_grid() -> Grid:
    """Occ3D-nuScenes: [-40, -40, -1, 40, 40, 5.4] m at 0.4 m, shape (200, 200, 16), ego frame."""
    return Grid((-40.0, -40.0, -1.0), (40.0, 40.0, 5.4), (0.4, 0.4, 0.4))


def semantickitti_grid() -> Grid:
    """SemanticKITTI SSC: 256 x 256 x 32 at 0.2 m from [0, -25.6, -2] m, LiDAR frame."""
    return Grid((0.0, -25.6, -2.0), (51.2, 25.6, 4.4), (0.2, 0.2, 0.2))


def nyu_grid() -> Grid:
    """NYUv2 SSC as scored: 60 x 60 x 36 at 0.08 m (4.8 x 4.8 x 2.88 m), axes x, y, z (z up) of
    the gravity-aligned NYU world frame shifted to the voxel origin (see :mod:`occkit.data.nyu`)."""
    return Grid((0.0, 0.0, 0.0), (4.8, 4.8, 2.88), (0.08, 0.08, 0.08))


def nyu_full_grid() -> Grid:
    """NYUv2 SSC at full resolution: 240 x 240 x 144 at 0.02 m, the same volume as :func:`nyu_grid`."""
    return Grid((0.0, 0.0, 0.0), (4.8, 4.8, 2.88), (0.02, 0.02, 0.02))
