"""Semantic occupancy of a room on NYUv2's full grid (240 x 240 x 144 voxels of 0.02 m, occkit's
(x, y, z) order), the way the NYU files hold it.

A voxel takes the class of the last primitive (in the room's order: structure, openings,
furniture, objects) whose solid holds its centre; primitives thinner than a voxel are thickened to
one voxel so that none is lost. Voxels inside the room with no primitive are empty (0); voxels
beyond the outer faces of walls, floor and ceiling (outside the room) are unknown (255), as the
parts of NYUv2's volumes outside the room are.
"""

from __future__ import annotations

import numpy as np
import torch

from occkit.geometry.grid import Grid, nyu_full_grid
from occkit.worlds.driving.primitives import inflated, inside
from occkit.worlds.indoor.room import WALL, Room


def _axis_map(T_room_from_world: np.ndarray) -> list[tuple[int, float, float]]:
    """For each room axis: (world axis, sign, offset) of a transform whose rotation permutes axes."""
    R, t = T_room_from_world[:3, :3], T_room_from_world[:3, 3]
    out = []
    for r in range(3):
        a = int(np.argmax(np.abs(R[r])))
        s = float(np.sign(R[r, a]))
        if abs(abs(R[r, a]) - 1) > 1e-6 or np.abs(np.delete(R[r], a)).max() > 1e-6:
            raise ValueError("T_room_from_world: the rotation must permute axes (multiples of 90 degrees about z)")
        out.append((a, s, float(t[r])))
    return out


def room_occupancy(
    room: Room, T_room_from_world: np.ndarray, origin: np.ndarray, grid: Grid | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Voxelise ``room`` on ``grid`` (default :func:`~occkit.geometry.grid.nyu_full_grid`) placed
    with its corner at world ``origin``.

    Args:
        T_room_from_world: ``(4, 4)``; its rotation permutes axes (a turn by a multiple of 90
            degrees about z), as the indoor world's frames are.
        origin: ``(3,)`` world position of the grid's corner.
    Returns:
        ``(X, Y, Z)`` uint8 NYU classes (0 empty, 255 outside the room) and ``(X, Y, Z)`` int32
        instance ids (0 = structure / none).
    """
    grid = grid or nyu_full_grid()
    shape = grid.shape
    vs = np.asarray(grid.voxel_size, dtype=np.float64)
    origin = np.asarray(origin, dtype=np.float64)
    T = np.asarray(T_room_from_world, dtype=np.float64)
    amap = _axis_map(T)
    axes_w = [origin[a] + (np.arange(n) + 0.5) * vs[a] for a, n in enumerate(shape)]  # world centres per axis
    label = np.zeros(shape, dtype=np.uint8)
    inst = np.zeros(shape, dtype=np.int32)
    prims = inflated(room.prims, 0.0101)
    T_world_from_room = np.linalg.inv(T)
    corners = prims.corners().double().numpy()  # (P, 8, 3) room
    cw = corners @ T_world_from_room[:3, :3].T + T_world_from_room[:3, 3]
    lo = np.floor((cw.min(1) - origin) / vs).astype(np.int64)
    hi = np.floor((cw.max(1) - origin) / vs).astype(np.int64)
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, np.asarray(shape) - 1)
    cls_l, inst_l = prims.cls.tolist(), prims.instance.tolist()
    for i in range(len(prims)):
        if (lo[i] > hi[i]).any():
            continue
        sl = tuple(slice(int(lo[i, a]), int(hi[i, a]) + 1) for a in range(3))
        # room coordinates of the block's centres, axis by axis
        bw = [axes_w[a][sl[a]] for a in range(3)]
        mesh = np.meshgrid(*bw, indexing="ij")
        pr = np.stack([s * mesh[a] + off for a, s, off in amap], -1).reshape(-1, 3)
        m = inside(prims, i, torch.from_numpy(pr).float()).numpy().reshape(mesh[0].shape)
        label[sl][m] = cls_l[i]
        inst[sl][m] = inst_l[i]
    # outside the room's shell: unknown
    Lx, Ly, H = room.size
    rc = []
    for a, s, off in amap:
        v = s * axes_w[a] + off
        shp = [1, 1, 1]
        shp[a] = -1
        rc.append(v.reshape(shp))
    rx, ry, rz = rc
    eps = 1e-6
    out = (
        (rx < -WALL - eps)
        | (rx > Lx + WALL + eps)
        | (ry < -WALL - eps)
        | (ry > Ly + WALL + eps)
        | (rz < -WALL - eps)
        | (rz > H + WALL + eps)
    )
    if room.block is not None:
        a, b = room.block
        out = out | ((rx > Lx - a + WALL + eps) & (ry > Ly - b + WALL + eps))
    out = np.broadcast_to(out, shape)
    label[out] = 255
    inst[out] = 0
    return label, inst
