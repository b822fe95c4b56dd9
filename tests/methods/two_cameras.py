"""The small scene the method tests share: a 6.4 x 6.4 x 2.4 m grid of 0.4 m voxels (16 x 16 x 6)
with a ground plane (class 11), a car (4) and a wall (15), seen by two 32 x 64 cameras (front and
back, pitched 0.2 rad down), the tiny camera network that fits it, and a batch of the scene with
its rendered depth and semantic maps. A helper module, not a test
file: pytest puts this folder on the path of the tests beside it."""

from __future__ import annotations

import math

import torch

from occkit.data.sample import Batch, Sample, collate
from occkit.geometry.grid import Grid
from occkit.geometry.transforms import make_transform
from occkit.labels import OCC3D_FREE
from occkit.models.occnet import OccNetConfig
from occkit.rendering.views import render_occupancy_views

RANGE = (-3.2, -3.2, -1.0, 3.2, 3.2, 1.4)


def tiny_model_cfg(**kw) -> OccNetConfig:
    """The tiny camera network over ``RANGE`` (lift grid 8 x 8 x 3); ``kw`` replaces any field."""
    opts = dict(
        backbone="resnet18",
        neck_channels=16,
        feature_stride=16,
        depth_min=0.5,
        depth_max=8.5,
        depth_step=0.5,
        context_channels=8,
        point_range=RANGE,
        voxel_size=0.4,
        lift_downsample=(2, 2, 2),
        encoder_widths=(8, 16),
        encoder_blocks=1,
    )
    return OccNetConfig(**{**opts, **kw})


def scene(wall: bool = True) -> tuple[torch.Tensor, Grid]:
    """(occupancy (16, 16, 6) long, its grid): free is 17, the ground plane 11, a car 4, a wall 15."""
    grid = Grid.from_range(RANGE, 0.4)
    occ = torch.full(grid.shape, 17, dtype=torch.long)
    occ[:, :, 0] = 11
    occ[11:14, 6:10, 1:4] = 4
    if wall:
        occ[2:4, 9:12, 1:3] = 15
    return occ, grid


def cameras(H: int = 32, W: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """(intrinsics (2, 3, 3), T_ego_from_cam (2, 4, 4)): a front camera 0.5 m ahead and a back camera
    0.5 m behind the origin, both 0.4 m up and pitched 0.2 rad down."""
    K = torch.tensor([[24.0, 0, W / 2], [0, 24.0, H / 2], [0, 0, 1]]).expand(2, 3, 3).clone()
    c, s = math.cos(0.2), math.sin(0.2)
    R_front = torch.tensor([[0.0, -s, c], [-1, 0, 0], [0, -c, -s]])
    R_back = torch.diag(torch.tensor([-1.0, -1.0, 1.0])) @ R_front
    T = torch.stack(
        [make_transform(R_front, torch.tensor([0.5, 0.0, 0.4])), make_transform(R_back, torch.tensor([-0.5, 0.0, 0.4]))]
    )
    return K, T


def rendered_batch() -> Batch:
    """A batch of one frame: the two cameras of :func:`scene` (with its wall), random images, and the
    depth and semantic maps rendered from the occupancy (the targets of the 2D-supervised methods)."""
    occ, grid = scene()
    H, W = 32, 64
    K, T = cameras(H, W)
    maps = render_occupancy_views(occ, grid, K, T, H, W, free=OCC3D_FREE)
    g = torch.Generator().manual_seed(0)
    sample = Sample(
        token="t0",
        scene="s0",
        timestamp=0,
        cam_names=("CAM_FRONT", "CAM_BACK"),
        images=torch.rand(2, 3, H, W, generator=g),
        intrinsics=K,
        T_ego_from_cam=T,
        T_global_from_ego=torch.eye(4, dtype=torch.float64),
        depth=maps.depth,
        semantics_2d=maps.semantics,
    )
    return collate([sample])
