"""Semantic occupancy of the posed world on any voxel grid, and Occ3D's visibility masks.

Voxelisation: every voxel is sampled at ``s^3`` points (``s`` = supersample); a sample is solid
when it lies inside a primitive (thin primitives inflated to at least half the sample spacing so
that poles and cones are never lost between samples) or inside the ground slab (``SLAB`` metres
below the surface, so the ground is a layer of occupied voxels, as in Occ3D). A voxel takes the
class with the most solid samples (objects count double against the ground, so a car's wheel
layer stays a car); no solid sample means free (17).
The same votes, kept per object, give each voxel its instance
(:func:`semantic_instance_occupancy`): the object of the winning class with the most samples.
"""

from __future__ import annotations

import math

import torch

from occkit.geometry.grid import Grid
from occkit.geometry.transforms import apply_transform, invert_transform
from occkit.geometry.visibility import (  # noqa: F401  (re-exported: the world's public names)
    auto_mask_stride,
    camera_mask_rays,
    camera_visibility,
    exposed_faces,
    lidar_visibility,
    voxel_center_rays,
)
from occkit.shapes import check_shape
from occkit.worlds.driving.layout import CURB
from occkit.worlds.driving.primitives import inflated, inside
from occkit.worlds.driving.scene import SceneState

FREE = 17
SLAB = 0.5
"""Thickness of the solid ground below its surface, metres."""
OBJECT_WEIGHT = 2
"""Weight of an object sample against a ground sample when a voxel holds both."""


def _sample_offsets(grid: Grid, s: int) -> torch.Tensor:
    """``(s^3, 3)`` offsets of the samples from a voxel centre."""
    vs = torch.tensor(grid.voxel_size, dtype=torch.float64)
    f = (torch.arange(s, dtype=torch.float64) + 0.5) / s - 0.5
    g = torch.stack(torch.meshgrid(f, f, f, indexing="ij"), -1).view(-1, 3)
    return (g * vs).float()


def semantic_occupancy(
    state: SceneState, grid: Grid, T_global_from_grid: torch.Tensor, supersample: int | None = None
) -> torch.Tensor:
    """Voxelise the posed world on ``grid``.

    Args:
        state: the scene at a frame.
        grid: any voxel grid (e.g. :func:`~occkit.geometry.grid.occ3d_grid` in the ego frame, or
            a SemanticKITTI grid in a LiDAR frame).
        T_global_from_grid: ``(4, 4)`` grid frame -> world.
        supersample: samples per voxel edge (default: the scene config's).
    Returns:
        ``(X, Y, Z)`` uint8 Occ3D classes, 17 = free.
    """
    return _voxelise(state, grid, T_global_from_grid, supersample, with_instance=False)[0]


def semantic_instance_occupancy(
    state: SceneState, grid: Grid, T_global_from_grid: torch.Tensor, supersample: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`semantic_occupancy` and, from the same samples and vote, each voxel's instance.

    A voxel whose class is an object's class takes the instance, among the objects of that class,
    with the most (weighted) solid samples in the voxel (ties: the lowest instance id); ground and
    free voxels take 0. So ``instance > 0`` exactly where the class came from an object.

    Returns:
        semantics: ``(X, Y, Z)`` uint8 Occ3D classes, 17 = free (equal to :func:`semantic_occupancy`);
        instance: ``(X, Y, Z)`` int32 instance ids, 0 = ground / free.
    """
    sem, inst = _voxelise(state, grid, T_global_from_grid, supersample, with_instance=True)
    assert inst is not None
    return sem, inst


def _voxelise(
    state: SceneState, grid: Grid, T_global_from_grid: torch.Tensor, supersample: int | None, with_instance: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    check_shape(T_global_from_grid, "4 4", name="T_global_from_grid")
    s = state.scene.config.occupancy_supersample if supersample is None else supersample
    if s < 1:
        raise ValueError(f"supersample must be >= 1, got {s}")
    X, Y, Z = grid.shape
    vs = grid.voxel_size
    T = T_global_from_grid.double()
    T_inv = invert_transform(T)
    offs = _sample_offsets(grid, s)  # (S, 3)
    S = offs.shape[0]
    counts = torch.zeros(18, X, Y, Z, dtype=torch.int16)
    votes: list[torch.Tensor] = []  # per-primitive instance votes (with_instance)

    # ---- ground: samples whose world height is within the slab under the surface
    centers = grid.centers(dtype=torch.float32)  # (X, Y, Z, 3)
    Tf = T.float()
    zw_axis = Tf[2, :3]
    # world z of every sample = zc(voxel) + dz(sample); keep only voxels that can touch the slab
    zc = (centers @ zw_axis) + Tf[2, 3]  # (X, Y, Z)
    reach = 0.5 * math.sqrt(sum(v * v for v in vs))
    cand = (zc >= -SLAB - reach) & (zc <= CURB + reach)
    ci = cand.nonzero()  # (M, 3)
    if ci.numel():
        pts = (centers[ci[:, 0], ci[:, 1], ci[:, 2]][:, None, :] + offs[None]).reshape(-1, 3)  # (M*S, 3)
        pw = apply_transform(Tf, pts)
        code = state.ground.lookup_code(pw[:, :2])
        gcls = code & 31
        top = ((code >> 5) & 1).float() * CURB
        solid = (pw[:, 2] <= top) & (pw[:, 2] > top - SLAB)
        n = solid.view(-1, S)
        flat_vox = (ci[:, 0] * Y + ci[:, 1]) * Z + ci[:, 2]
        cls_s = gcls.view(-1, S)
        cflat = counts.view(18, -1)
        for k in range(S):
            m = n[:, k]
            if bool(m.any()):
                cflat.index_put_(
                    (cls_s[m, k], flat_vox[m]), torch.ones(int(m.sum()), dtype=torch.int16), accumulate=True
                )

    # ---- primitives
    prims = state.prims
    if len(prims):
        prims = inflated(prims, 0.5 * min(vs) / s)
        corners = prims.corners().reshape(-1, 3)
        cg = apply_transform(T_inv.float(), corners).view(-1, 8, 3)
        lo_idx, _ = grid.point_to_index(cg.amin(1))
        hi_idx, _ = grid.point_to_index(cg.amax(1))
        shape_t = torch.tensor(grid.shape)
        lo_idx = lo_idx.clamp(min=0)
        hi_idx = torch.minimum(hi_idx, shape_t - 1)
        valid = (
            (lo_idx <= hi_idx).all(-1)
            & (cg.amax(1) >= torch.tensor(grid.range_min)).all(-1)
            & (cg.amin(1) < torch.tensor(grid.range_max)).all(-1)
        )
        lo_l, hi_l = lo_idx.tolist(), hi_idx.tolist()
        inst_l = prims.instance.tolist()
        for i in valid.nonzero().squeeze(1).tolist():
            (x0, y0, z0), (x1, y1, z1) = lo_l[i], hi_l[i]
            block = centers[x0 : x1 + 1, y0 : y1 + 1, z0 : z1 + 1]  # (bx, by, bz, 3)
            bshape = block.shape[:3]
            pts = (block.reshape(-1, 1, 3) + offs[None]).reshape(-1, 3)
            pw = apply_transform(Tf, pts)
            inn = inside(prims, i, pw).view(-1, S).sum(1).to(torch.int16).view(bshape)
            c = int(prims.cls[i])
            counts[c, x0 : x1 + 1, y0 : y1 + 1, z0 : z1 + 1] += inn * OBJECT_WEIGHT
            if with_instance:
                # the same votes, kept per instance: (flat voxel, instance, class, weight)
                nz = inn.nonzero()  # (k, 3) within the block
                if nz.numel():
                    flat = ((nz[:, 0] + x0) * Y + nz[:, 1] + y0) * Z + nz[:, 2] + z0
                    votes.append(
                        torch.stack(
                            [
                                flat,
                                torch.full_like(flat, inst_l[i]),
                                torch.full_like(flat, c),
                                inn[nz[:, 0], nz[:, 1], nz[:, 2]].long() * OBJECT_WEIGHT,
                            ],
                            1,
                        )
                    )

    cflat = counts.view(18, -1)
    solid = (cflat != 0).any(0).nonzero().squeeze(1)
    label = torch.full((X * Y * Z,), FREE, dtype=torch.uint8)
    label[solid] = cflat[:, solid].argmax(0).to(torch.uint8)
    if not with_instance:
        return label.view(X, Y, Z), None
    return label.view(X, Y, Z), _instance_vote(votes, label).view(X, Y, Z)


def _instance_vote(votes: list[torch.Tensor], label: torch.Tensor) -> torch.Tensor:
    """Each voxel's instance from the per-primitive votes ``(k, 4)`` long rows (flat voxel,
    instance, class, weight): the votes of a (voxel, instance) are summed; among the instances of
    the voxel's class (``label (V,)`` uint8) the one with the most weight wins, ties going to the
    lowest id. Returns ``(V,)`` int32, 0 where no instance of the voxel's class voted."""
    out = torch.zeros(label.shape[0], dtype=torch.int32)
    if not votes:
        return out
    v = torch.cat(votes)  # (K, 4)
    v = v[v[:, 2] == label[v[:, 0]].long()]  # only the instances of the class that won the voxel
    if not len(v):
        return out
    n_inst = int(v[:, 1].max()) + 1
    key, inv = torch.unique(v[:, 0] * n_inst + v[:, 1], return_inverse=True)  # sorted (voxel, instance) pairs
    weight = torch.zeros(len(key), dtype=torch.long).index_add_(0, inv, v[:, 3])
    vox, inst = key // n_inst, key % n_inst
    # order by voxel, then weight (descending), then instance: the first row of each voxel wins
    w_max = int(weight.max()) + 1
    order = torch.argsort((vox * w_max + (w_max - 1 - weight)) * n_inst + inst)
    vox, inst = vox[order], inst[order]
    first = torch.ones(len(vox), dtype=torch.bool)
    first[1:] = vox[1:] != vox[:-1]
    out[vox[first]] = inst[first].to(torch.int32)
    return out
