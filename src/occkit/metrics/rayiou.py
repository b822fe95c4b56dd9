"""RayIoU as SparseOcc defines it (Liu et al., "Fully Sparse 3D Occupancy Prediction", 2024),
in vectorised torch (CPU or GPU, no custom kernels).

Per frame:

1. Origins: the LiDAR origins of every frame of the scene, mapped into this frame's ego frame,
   kept where ``|x| < 39`` and ``|y| < 39`` m; when more than 8 remain, 8 picked evenly
   (``round(linspace(0, K - 1, 8))``). See :func:`lidar_origins_in_ego`.
2. Rays: from each origin, 360 azimuths (1 degree) x SparseOcc's pitch angles
   (:func:`sparseocc_pitch_angles`: ``-(pi/2 - atan(k))`` for k = 1..10, then continued with the
   last spacing until the angle reaches 0.21 rad, the top of the nuScenes LiDAR's field of view;
   39 angles, 14 040 rays per origin).
3. Each ray walks the voxels from its origin's voxel (Amanatides & Woo) to the first occupied
   voxel (class < free); its label is that voxel's class and its depth the distance where the
   ray *leaves* that voxel (SparseOcc's ``dvr`` records the exit distance ``_d`` of each voxel).
   There is no distance limit other than the grid: a ray that leaves the grid without a hit
   gets the free label (and the grid-exit distance as depth, unused by the metric).
4. Rays whose ground-truth label is free are dropped. For thresholds 1, 2, 4 m and class c:
   ``TP = #(label_gt = label_pred = c and |depth_gt - depth_pred| < threshold)``,
   ``IoU_c = TP / (N_gt,c + N_pred,c - TP)`` with the counts summed over the dataset.
   RayIoU = nanmean over the 3 x 17 values; RayIoU@t the nanmean over the 17 classes at t.

Ties in the traversal (a ray crossing an edge or corner) step z before y before x, as
SparseOcc's ``dvr`` does. Distances are computed in float64 by default (as ``dvr``).

Speed: :func:`cast_rays` walks every ray a block of steps at a time in numpy on the CPU (torch
elsewhere) and equals :func:`cast_rays_reference`, the one-step-per-iteration torch walk it
replaced, bit for bit (labels and depths); ``benchmarks/bench_metrics.py`` times both. On the
CPU a ray standing in free space jumps (:func:`_jump`, and its one-ray form in the numba walk)
across the free square around its voxel, adding each axis's step distance once per crossing as
the steps would, so that most voxels of a driving scene are never looked at (about 5 in 6 of the
synthetic world's) and nothing changes in the results. :meth:`RayIoUMetric.update` on the CPU walks
each origin's directions in that numba loop with no per-ray origin or direction array, and builds the
volumes' bytes and counts the rays in numba (:func:`_ray_counts_on_cpu`): the counts of
:func:`cast_rays` then :func:`rayiou_counts`, integer for integer.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from occkit.deprecation import REMOVED_IN, warn_deprecated
from occkit.fileio import info_text, info_timestamp, info_where, read_info_list
from occkit.geometry.grid import Grid, occ3d_grid
from occkit.geometry.transforms import checked_pose, invert_transform
from occkit.jit import numba_kernels
from occkit.labels import OCC3D_CLASSES, OCC3D_FREE, OCC3D_NUM_CLASSES
from occkit.metrics.base import Targets
from occkit.metrics.confusion import all_reduce_sum
from occkit.metrics.occ3d import nanmean
from occkit.shapes import check_shape

#: Depth-error thresholds in metres.
RAYIOU_THRESHOLDS: tuple[float, ...] = (1.0, 2.0, 4.0)
#: Origins farther than this from the ego origin (in x or y) are dropped.
ORIGIN_XY_LIMIT = 39.0
#: At most this many origins per frame.
MAX_ORIGINS = 8

_OUTSIDE = 255  # label of the one-voxel border around a padded volume


def sparseocc_pitch_angles() -> torch.Tensor:
    """SparseOcc's pitch angles, ``(39,)`` float64 radians, from -pi/4 (down) up to ~0.219."""
    angles = [-(math.pi / 2 - math.atan(k + 1)) for k in range(10)]
    while angles[-1] < 0.21:  # nuScenes LiDAR vertical field of view tops out near 0.2108 rad
        angles.append(angles[-1] + (angles[-1] - angles[-2]))
    return torch.tensor(angles, dtype=torch.float64)


def lidar_ray_directions(dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> torch.Tensor:
    """Unit ray directions, ``(P * 360, 3)``: for each pitch angle (outer) the azimuths
    0, 1, ..., 359 degrees (inner); x forward, y left, z up."""
    pitch = sparseocc_pitch_angles()[:, None]  # (P, 1)
    az = torch.deg2rad(torch.arange(360, dtype=torch.float64))[None, :]  # (1, 360)
    d = torch.stack(
        [torch.cos(pitch) * torch.cos(az), torch.cos(pitch) * torch.sin(az), torch.sin(pitch).expand(-1, 360)], -1
    )  # (P, 360, 3)
    return d.reshape(-1, 3).to(dtype=dtype, device=device)


# ---------------------------------------------------------------------------------------------
# ray casting


def _check_shapes(
    volumes: torch.Tensor, frame: torch.Tensor, origins: torch.Tensor, dirs: torch.Tensor, grid: Grid
) -> tuple[int, int, int]:
    """Shape checks shared by both walks; returns the number of volumes ``V``, of frames ``F``
    and of rays ``R``."""
    X, Y, Z = grid.shape
    dims = check_shape(volumes, "V F X Y Z", name="volumes", dims={"X": X, "Y": Y, "Z": Z})
    R = check_shape(origins, "R 3", name="origins")["R"]
    check_shape(dirs, "R 3", name="dirs", dims={"R": R})
    check_shape(frame, "R", name="frame", dims={"R": R})
    return dims["V"], dims["F"], R


@torch.no_grad()
def _checked_rays(
    volumes: torch.Tensor, origins: torch.Tensor, dirs: torch.Tensor, grid: Grid, dtype: torch.dtype, dev: torch.device
) -> tuple[torch.Tensor, ...]:
    """Value checks shared by both walks (integer labels in range, every ray starting inside the
    grid); returns origins, directions, the grid's lower and upper corners and voxel size as
    ``dtype`` tensors on ``dev``."""
    if volumes.is_floating_point():
        raise TypeError(f"volumes: expected integer labels, got {volumes.dtype}")
    if volumes.numel() and (int(volumes.min()) < 0 or int(volumes.max()) >= _OUTSIDE):
        raise ValueError(f"volumes: labels must lie in [0, {_OUTSIDE - 1}]")
    o = origins.to(device=dev, dtype=dtype)
    d = dirs.to(device=dev, dtype=dtype)
    lo = torch.tensor(grid.range_min, dtype=dtype, device=dev)
    hi = torch.tensor(grid.range_max, dtype=dtype, device=dev)
    vs = torch.tensor(grid.voxel_size, dtype=dtype, device=dev)
    if origins.shape[0] and not bool(((o >= lo) & (o < hi)).all()):
        bad = int((~((o >= lo) & (o < hi)).all(-1)).nonzero()[0])
        raise ValueError(f"origins: ray {bad} starts at {o[bad].tolist()}, outside the grid {grid.point_range}")
    return o, d, lo, hi, vs


def _torch_initial_state(
    o: torch.Tensor,
    d: torch.Tensor,
    frame: torch.Tensor,
    lo: torch.Tensor,
    vs: torch.Tensor,
    shape: tuple[int, int, int],
    P: int,
    never_next: float,
    never_delta: float,
) -> tuple[torch.Tensor, ...]:
    """The torch walks' state at each ray's origin, in volumes padded by ``P`` voxels and
    flattened frame after frame: the flat index of the start voxel, and per axis (ordered z, y, x,
    so that argmin breaks ties as SparseOcc's dvr does) the distance to the next boundary, the
    distance between boundaries and the flat step. An axis the ray never crosses gets
    ``never_next`` and ``never_delta``."""
    X, Y, Z = shape
    dev = o.device
    sx, sy, sz = (Y + 2 * P) * (Z + 2 * P), Z + 2 * P, 1
    per_frame = (X + 2 * P) * sx
    idx = torch.floor((o - lo) / vs).long()
    idx = torch.minimum(idx, torch.tensor([X - 1, Y - 1, Z - 1], device=dev))  # round-off at hi
    cur = frame.to(dev).long() * per_frame + (idx[:, 0] + P) * sx + (idx[:, 1] + P) * sy + (idx[:, 2] + P) * sz
    order = [2, 1, 0]
    step = torch.where(d >= 0, 1, -1)[:, order]  # (R, 3)
    do, dd, di, dvs, dlo = o[:, order], d[:, order], idx[:, order], vs[order], lo[order]
    boundary = dlo + (di + (step > 0).long()).to(o.dtype) * dvs
    nz = dd != 0
    t_next = torch.where(nz, (boundary - do) / torch.where(nz, dd, 1), never_next)  # (R, 3)
    t_delta = torch.where(nz, dvs / dd.abs().clamp_min(1e-300), never_delta)  # (R, 3)
    flat_step = step * torch.tensor([sz, sy, sx], device=dev)  # (R, 3)
    return cur, t_next, t_delta, flat_step


def _taking_01_arguments(names: tuple[str, ...]) -> Any:
    """A ray caster (:func:`cast_rays`, :func:`cast_rays_reference`) that also takes occkit 0.1's forms of
    its call, with a warning (:func:`occkit.deprecation.warn_deprecated`) until 0.3.0: ``names`` (``free``,
    ``dtype`` ...) given by position after ``grid``, the free class as ``free_class=``, or left out (0.1's
    default: Occ3D's 17)."""

    def wrap(fn: Any) -> Any:
        @functools.wraps(fn)
        def call(volumes: Any, frame: Any, origins: Any, dirs: Any, grid: Any, *old: Any, **kw: Any) -> Any:
            said = []
            if len(old) > len(names):
                raise TypeError(f"{fn.__name__}() takes {5 + len(names)} arguments, {5 + len(old)} given")
            for name, value in zip(names, old):
                if name in kw:
                    raise TypeError(f"{fn.__name__}() got multiple values for argument {name!r}")
                kw[name] = value
            if old:
                said.append(f"{', '.join(names[: len(old)])} by position")
            if "free_class" in kw:
                if "free" in kw:
                    raise TypeError(f"{fn.__name__}() got both free= and free_class= (its old name)")
                kw["free"] = kw.pop("free_class")
                said.append("free_class=")
            if "free" not in kw:
                kw["free"] = OCC3D_FREE
                said.append(f"no free= (Occ3D's {OCC3D_FREE} taken, as occkit 0.1 did)")
            if said:
                warn_deprecated(
                    f"{fn.__name__}(...) with {' and '.join(said)}: occkit 0.1's form, removed in {REMOVED_IN}; give "
                    f"{', '.join(f'{n}=' for n in names[: max(len(old), 1)])} by keyword (free: the class "
                    f"table's free id)"
                )
            return fn(volumes, frame, origins, dirs, grid, **kw)

        return call

    return wrap


@_taking_01_arguments(("free", "dtype"))
def cast_rays_reference(
    volumes: torch.Tensor,
    frame: torch.Tensor,
    origins: torch.Tensor,
    dirs: torch.Tensor,
    grid: Grid,
    *,
    free: int,
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The straightforward walk that :func:`cast_rays` must equal bit for bit (same arguments
    and results); kept as the reference for tests and ``benchmarks/bench_metrics.py``.

    Every ray steps one voxel per iteration of one Python loop, all rays at once in torch: the rays
    of many frames walk together (``frame`` says which volume each reads), the ground truth and
    the prediction are read in the same walk (``V = 2``), voxels are addressed by one flat index
    into volumes padded with a border of 255, so leaving the grid is a lookup, and finished
    rays are parked (step 0) and dropped once they are a quarter of those carried.

    Arguments and results as :func:`cast_rays`, less ``threads`` and ``walk`` (and ``dtype`` may
    be any float type).
    """
    X, Y, Z = grid.shape
    V, F, R = _check_shapes(volumes, frame, origins, dirs, grid)
    dev = volumes.device
    o, d, lo, hi, vs = _checked_rays(volumes, origins, dirs, grid, dtype, dev)

    # Padded volumes, flattened: (V, F * (X+2) * (Y+2) * (Z+2)) uint8, border = _OUTSIDE.
    pad = torch.full((V, F, X + 2, Y + 2, Z + 2), _OUTSIDE, dtype=torch.uint8, device=dev)
    pad[:, :, 1:-1, 1:-1, 1:-1] = volumes
    flat = pad.view(V, -1)
    inf = float("inf")
    cur, t_next, t_delta, flat_step = _torch_initial_state(o, d, frame, lo, vs, (X, Y, Z), 1, inf, inf)

    labels = torch.full((V, R), free, dtype=torch.long, device=dev)
    depth = torch.zeros((V, R), dtype=dtype, device=dev)
    rid = torch.arange(R, device=dev)
    done = torch.zeros((V, R), dtype=torch.bool, device=dev)
    t_prev = torch.zeros(R, dtype=dtype, device=dev)
    while rid.numel():
        lab = flat.index_select(1, cur)  # (V, R') uint8
        t_exit, axis = t_next.min(1)  # (R',) distance where the ray leaves the current voxel
        hit = (lab < free) & ~done  # the border (255) is never < free
        if bool(hit.any()):
            vv, rr = hit.nonzero(as_tuple=True)
            labels[vv, rid[rr]] = lab[vv, rr].long()
            depth[vv, rid[rr]] = t_exit[rr]
            done |= hit
        miss = (lab[0] == _OUTSIDE)[None, :] & ~done  # left the grid without a hit
        if bool(miss.any()):
            vv, rr = miss.nonzero(as_tuple=True)
            depth[vv, rid[rr]] = t_prev[rr]
            done |= miss
        finished = done.all(0)  # (R',)
        n_finished = int(finished.sum())
        if n_finished == rid.numel():
            break
        if 4 * n_finished > rid.numel():  # compact: carry only the rays still walking
            keep = ~finished
            rid, cur, t_next, t_delta, flat_step = rid[keep], cur[keep], t_next[keep], t_delta[keep], flat_step[keep]
            done, t_exit, axis = done[:, keep], t_exit[keep], axis[keep]
        elif n_finished:  # cheaper than compacting every step: park finished rays where they are
            flat_step = flat_step.masked_fill(finished[:, None], 0)
        ax = axis[:, None]
        cur = cur + flat_step.gather(1, ax).squeeze(1)
        t_next = t_next.scatter_add(1, ax, t_delta.gather(1, ax))
        t_prev = t_exit
    return labels, depth


#: Steps every ray takes between two looks at what the rays met.
_BLOCK = 12
#: Rays walked together on the CPU (their state stays in the caches).
_CHUNK = 1 << 14


def _numpy_dtype(dtype: torch.dtype) -> type:
    return {torch.float64: np.float64, torch.float32: np.float32}[dtype]


@_taking_01_arguments(("free", "dtype", "threads", "walk"))
@torch.no_grad()
def cast_rays(
    volumes: torch.Tensor,
    frame: torch.Tensor,
    origins: torch.Tensor,
    dirs: torch.Tensor,
    grid: Grid,
    *,
    free: int,
    dtype: torch.dtype = torch.float64,
    threads: int | None = None,
    walk: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """First occupied voxel along each ray, in ``V`` label volumes that share the rays.

    A specialised fast path of :func:`occkit.geometry.raycast.first_hit` for metrics, equal bit
    for bit to :func:`cast_rays_reference` (the same Amanatides & Woo walk with the same float
    operations in the same order; ties step z before y before x). The rays of many frames walk
    together (``frame`` says which volume each reads) and all ``V`` volumes are read in one walk:
    each voxel holds one byte whose bit ``v`` says "occupied in volume ``v``" and whose top bit
    marks the border around the grid. Every ray takes :data:`_BLOCK` steps with no look at what
    it met (a few branch-free array operations per step, recording each voxel's byte and exit
    distance); then the first voxel with its volume's bit (a hit) or the border bit (a miss) is
    found per ray and volume, and finished rays are dropped. A ray that left the grid walks on
    until that look (and stops there): in numpy over a border one voxel thick, its reads clipped
    to the array (what it reads after the border is never looked at); in torch over a border
    ``_BLOCK + 1`` voxels thick.

    On the CPU the walk runs one ray at a time in a loop compiled by numba (each voxel's byte
    looked at as the ray enters it; about 4x less CPU than the numpy walk), or where numba cannot
    be imported in numpy over chunks of :data:`_CHUNK` rays, a block of steps at a time; either
    walks ``threads`` chunks at a time (both release the GIL), and both jump across the free square
    around a ray's voxel (:func:`_jump`), which changes no bit of the results. On other devices the walk runs in
    torch, all rays at once (one look, and one synchronisation, per block).

    Args:
        volumes: ``(V, F, X, Y, Z)`` integer labels in ``[0, 254]``; ``label < free`` is
            occupied.
        frame: ``(R,)`` long, the frame each ray belongs to, in ``[0, F)``.
        origins: ``(R, 3)`` metres in the grid's frame; must lie inside the grid.
        dirs: ``(R, 3)`` unit directions (depths are in units of ``|dirs|``).
        grid: the voxel grid of the volumes.
        free: the first label that is not occupied (the free class; the labels below it are occupied).
        dtype: float type of the distances (float64 or float32).
        threads: CPU threads walking chunks at once (default: ``torch.get_num_threads()``).
        walk: ``"auto"`` (numba on the CPU, numpy where numba cannot be imported, torch
            elsewhere), ``"numba"`` or ``"numpy"`` (CPU only), or ``"torch"`` (any device; on the
            CPU for tests of the GPU path).
    Returns:
        labels: ``(V, R)`` long, the class of the first occupied voxel, ``free`` if none;
        depth: ``(V, R)`` distance where the ray leaves that voxel (the grid if none).
    """
    X, Y, Z = grid.shape
    V, F, R = _check_shapes(volumes, frame, origins, dirs, grid)
    if walk not in ("auto", "numba", "numpy", "torch"):
        raise ValueError(f"walk must be 'auto', 'numba', 'numpy' or 'torch', got {walk!r}")
    dev = volumes.device
    if walk in ("numba", "numpy") and dev.type != "cpu":
        raise ValueError(f"walk={walk!r} needs CPU tensors, got volumes on {dev}")
    if walk == "numba" and _numba_walk() is None:
        raise ValueError("walk='numba': numba cannot be imported (pip install numba)")
    if V > 7 or dtype not in (torch.float64, torch.float32):  # one byte holds 7 volumes' bits
        return cast_rays_reference(volumes, frame, origins, dirs, grid, free=free, dtype=dtype)
    o, d, lo, hi, vs = _checked_rays(volumes, origins, dirs, grid, dtype, dev)

    # One byte per voxel: bit v = occupied in volume v; the border (P voxels thick) = 0x80. The
    # numpy walk clips its reads to the array, so one voxel of border is enough there (what a ray
    # reads after it met the border is never looked at) and the volume stays small in the caches.
    on_cpu = walk in ("numba", "numpy") or (walk == "auto" and dev.type == "cpu")
    if on_cpu and walk == "auto":
        walk = "numba" if _numba_walk() is not None else "numpy"
    P = 1 if on_cpu else _BLOCK + 1
    PX, PY, PZ = X + 2 * P, Y + 2 * P, Z + 2 * P
    code = torch.full((F, PX, PY, PZ), 0x80, dtype=torch.uint8, device=dev)
    inner = torch.zeros((F, X, Y, Z), dtype=torch.uint8, device=dev)
    for v in range(V):
        inner |= (volumes[v] < free).to(torch.uint8) << v
    code[:, P:-P, P:-P, P:-P] = inner
    sx, sy = PY * PZ, PZ
    per_frame = PX * sx

    labels = torch.full((V, R), free, dtype=torch.long, device=dev)
    depth = torch.zeros((V, R), dtype=dtype, device=dev)
    if not R:
        return labels, depth
    if on_cpu:
        _walk_on_cpu(code, volumes, o, d, frame, grid, P, dtype, walk, threads, labels, depth)
        return labels, depth

    # In torch (GPUs): the initial state with the reference's operations. An axis the ray never
    # crosses: a distance no other axis reaches, and a step of 0 (the reference's inf + inf); it
    # is never the nearest, so nothing else changes.
    far = torch.finfo(dtype).max
    cur, t_next, t_delta, flat_step = _torch_initial_state(o, d, frame, lo, vs, (X, Y, Z), P, far, 0.0)
    hit_at = torch.full((V, R), -1, dtype=torch.long, device=dev)  # padded flat index of the hit
    _walk_torch(code.view(-1), cur, t_next, t_delta, flat_step, V, hit_at, depth)
    vv, rr = (hit_at >= 0).nonzero(as_tuple=True)
    h = hit_at[vv, rr]
    f, rem = h // per_frame, h % per_frame
    labels[vv, rr] = volumes[vv, f, rem // sx - P, (rem // sy) % PY - P, rem % PZ - P].long()
    return labels, depth


def _walk_on_cpu(
    code: torch.Tensor,
    volumes: torch.Tensor,
    o: torch.Tensor,
    d: torch.Tensor,
    frame: torch.Tensor,
    grid: Grid,
    P: int,
    dtype: torch.dtype,
    walk: str,
    threads: int | None,
    labels: torch.Tensor,
    depth: torch.Tensor,
    per_origin: int = 1,
) -> None:
    """:func:`cast_rays`' walk on the CPU (``walk``: ``numba`` or ``numpy``), over chunks of
    :data:`_CHUNK` rays, ``threads`` at a time; writes ``labels`` and ``depth`` in place.

    ``o``, ``d``, ``frame``: one origin, direction and frame per ray; or (the numba walk, ``per_origin``
    the number of directions) per origin its frame and the rays of every direction ``d`` in turn
    (:meth:`RayIoUMetric.update`: no array of the rays' origins and directions is built)."""
    X, Y, Z = grid.shape
    V, R = volumes.shape[0], labels.shape[1]
    ftype = _numpy_dtype(dtype)
    lo_np, vs_np = np.array(grid.range_min, ftype), np.array(grid.voxel_size, ftype)
    code_np, vols_np = code.numpy(), volumes.to(torch.uint8).reshape(V, -1).numpy()
    o_np, d_np, frame_np = o.numpy(), d.numpy(), frame.to("cpu", torch.long).numpy()
    lab_np, dep_np = labels.numpy(), depth.numpy()
    if walk == "numba":
        kernel, squares = _numba_walk()
        never, tiny = np.finfo(ftype).max, np.asarray(1e-300).astype(ftype)[()]
        cap = min(_MAX_SQUARE, (1 << (7 - V)) - 1)
        min_jump = _MIN_JUMP if cap >= _MIN_JUMP else 1 << 8  # 1 << 8: above any square, no jump
        if cap >= _MIN_JUMP:
            squares(code_np, V, cap)

        def walk_chunk(sl: slice) -> None:
            kernel(
                code_np.reshape(-1), vols_np, o_np, d_np, frame_np, lo_np, vs_np, never, tiny,
                X, Y, Z, P, min_jump, sl.start, sl.stop - sl.start, per_origin, lab_np, dep_np,
            )  # fmt: skip
    else:
        if per_origin != 1:
            raise ValueError("the numpy walk takes one origin and direction per ray")
        skip = _add_free_squares(code_np, V)

        def walk_chunk(sl: slice) -> None:
            _walk_numpy(
                code_np.reshape(-1), vols_np, o_np, d_np, frame_np, lo_np, vs_np, (X, Y, Z), P, skip, sl,
                lab_np, dep_np,
            )  # fmt: skip

    chunks = [slice(s, min(R, s + _CHUNK)) for s in range(0, R, _CHUNK)]
    n_threads = max(1, min(len(chunks), threads if threads is not None else torch.get_num_threads()))
    if n_threads == 1:
        for sl in chunks:
            walk_chunk(sl)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(n_threads) as pool:
        list(pool.map(walk_chunk, chunks))


#: Largest free square (its half side, in voxels) recorded per voxel for the numpy walk's jumps.
_MAX_SQUARE = 15
#: A ray jumps where the free square around it is at least this (a shorter jump costs more than steps).
_MIN_JUMP = 3


def _add_free_squares(code: np.ndarray, V: int) -> bool:
    """Records in the bits above the ``V`` volume bits of ``code`` (``(F, PX, PY, PZ)`` padded
    bytes, changed in place) each voxel's free square: the largest ``r`` (at most
    :data:`_MAX_SQUARE`, or what the spare bits hold) such that the voxels ``x - r .. x + r``,
    ``y - r .. y + r``, ``z - 1 .. z + 1`` are free in every volume and inside the grid. Returns
    False (nothing recorded) when fewer than two spare bits are left."""
    cap = min(_MAX_SQUARE, (1 << (7 - V)) - 1)
    if cap < _MIN_JUMP:
        return False
    free = code == 0  # no volume's bit, no border (so the outermost voxels of each axis are never free)
    e = np.zeros_like(free)  # free with the voxels above and below: the square of half side 0
    np.logical_and(free[..., :-2], free[..., 1:-1], out=e[..., 1:-1])
    e[..., 1:-1] &= free[..., 2:]
    ex = np.zeros_like(free)
    square = np.zeros(code.shape, np.uint8)
    for _ in range(cap):  # one more voxel on each side in x, then in y
        np.logical_and(e[:, :-2], e[:, 1:-1], out=ex[:, 1:-1])
        ex[:, 1:-1] &= e[:, 2:]
        np.logical_and(ex[:, :, :-2], ex[:, :, 1:-1], out=e[:, :, 1:-1])
        e[:, :, 1:-1] &= ex[:, :, 2:]
        e[:, :, 0] = e[:, :, -1] = False
        if not e.any():
            break
        square += e
    square <<= np.uint8(V)
    code |= square
    return True


def _jump(
    code: np.ndarray,
    shift: int,
    want: np.ndarray,
    cur: np.ndarray,
    t: list[np.ndarray],
    dt: list[np.ndarray],
    st: list[np.ndarray],
) -> None:
    """Moves the rays that sit in a free square (:func:`_add_free_squares`) of half side
    ``r >= _MIN_JUMP`` past every crossing they make before ``tau``, changing ``cur`` and the
    per-axis crossing distances ``t = [tz, ty, tx]`` in place, with the walk's own additions (each
    axis adds its ``t_delta`` once per crossing, as a step does): the state is the one the steps
    would reach, bit for bit.

    ``tau = min(tz + dz, ty + (r - 1) dy, tx + (r - 1) dx)``: before it the ray crosses z at most
    once (``tz + dz`` is the exact distance of its second z crossing) and x and y at most ``r``
    times each (``ty + (r - 1) dy`` lies a whole ``dy`` below the exact ``r + 1``-th crossing, so
    rounding cannot matter), so every voxel it enters is in the free box around its voxel. The
    crossings before ``tau`` are a prefix of the walk's order (which sorts them by distance, ties
    z, y, x), so the state is one the walk passes through; the voxel reached is free, so the next
    step reads no border and needs no earlier exit distance."""
    r_all = np.take(code, cur, mode="clip")
    r_all &= np.uint8(0x7F)  # a ray may stand on the border (read at the next step): no square there
    r_all >>= np.uint8(shift)
    r_all[want == 0] = 0  # parked rays stay
    S = np.flatnonzero(r_all >= _MIN_JUMP)
    if S.size * 8 < cur.shape[0]:  # too few to pay for the gathers
        return
    rs = r_all[S]
    S = S[np.argsort(-rs.astype(np.int16), kind="stable")]  # largest squares first
    rs = r_all[S]
    ts = [a[S] for a in t]
    ds = [a[S] for a in dt]
    r = rs.astype(ts[0].dtype) - 1
    tau = np.fmin(ts[0] + ds[0], np.fmin(ts[1] + r * ds[1], ts[2] + r * ds[2]))
    # rays still crossing at pass j have a square larger than j: a prefix of S
    still = np.cumsum(np.bincount(rs, minlength=int(rs[0]) + 1)[::-1])[::-1]  # still[j] = #(rs >= j)
    c = cur[S]
    m = np.empty(S.size, bool)
    for axis, (ta, da, sa) in enumerate(zip(ts, ds, st)):
        t0 = ta.copy()
        for j in range(1 if axis == 0 else int(rs[0])):  # z: at most one crossing; x, y: at most r
            n = S.size if axis == 0 else int(still[j + 1])
            tj, dj, mj = ta[:n], da[:n], m[:n]
            np.less(tj, tau[:n], out=mj)
            tj += dj * mj
        with np.errstate(divide="ignore", invalid="ignore"):  # an axis never crossed: 0 / 0, no crossing
            k = np.rint((ta - t0) / da)  # whole crossings: the sums stray from k * da by far less than one
        k[da == 0] = 0
        c += sa[S] * k.astype(np.int64)
    cur[S] = c
    for a, ta in zip(t, ts):
        a[S] = ta


def _initial_state(
    o: np.ndarray, d: np.ndarray, frame: np.ndarray, lo: np.ndarray, vs: np.ndarray, shape: tuple[int, int, int], P: int
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """The CPU walks' start, with the reference's operations per axis: each ray's padded flat
    voxel index ``cur``, and per axis (z, y, x: the tie order) the distance of its next crossing
    ``t``, the distance between crossings ``dt`` and the flat step ``st``."""
    X, Y, Z = shape
    PY, PZ = Y + 2 * P, Z + 2 * P
    strides = (PY * PZ, PZ, 1)
    ftype = o.dtype
    cur = frame * ((X + 2 * P) * strides[0])
    t, dt, st = [], [], []
    for a, top in zip((2, 1, 0), (Z - 1, Y - 1, X - 1)):
        oa, da = o[:, a], d[:, a]
        ia = np.minimum(np.floor((oa - lo[a]) / vs[a]).astype(np.int64), top)  # round-off at hi
        cur = cur + (ia + P) * strides[a]
        up = da >= 0
        nz = da != 0
        boundary = lo[a] + (ia + up).astype(ftype) * vs[a]
        with np.errstate(divide="ignore", invalid="ignore"):
            # an axis the ray never crosses: a distance no other axis reaches and a step of 0
            # (the reference's inf + inf): it is never the nearest, so nothing else changes
            t.append(np.where(nz, (boundary - oa) / np.where(nz, da, 1), np.finfo(ftype).max).astype(ftype))
            dt.append(np.where(nz, vs[a] / np.maximum(np.abs(da), 1e-300), 0).astype(ftype))
        st.append(np.where(up, strides[a], -strides[a]))
    return cur, t, dt, st


def _walk_numba_rays(
    code, volumes, o, d, frame, lo, vs, never, tiny, X, Y, Z, P, min_jump, rid0, n, per_origin, labels, depth
):  # pragma: no cover - compiled by numba (its equality with the reference is tested)
    """The walk of :func:`cast_rays` one ray at a time, compiled by numba (:func:`_numba_walk`): each
    ray's start with :func:`_initial_state`'s operations (``never``: the distance of an axis the ray
    never crosses, ``tiny``: the least ``|d|`` divided by, both in the rays' float type), then the same
    steps as :func:`_walk_numpy` and the reference (``t_exit = min(tz, min(ty, tx))``; z steps when
    ``tz <= min(ty, tx)``, else y when ``ty <= tx``, else x; the chosen axis adds its ``t_delta``, the
    others ``t_delta * 0``, which changes no bit, so that a step has no branch to mispredict), looking
    at each voxel's byte as it enters it and stopping at the last volume's hit or at the border.
    A ray entering a voxel whose free square (the bits above the volumes', :func:`_numba_free_squares`)
    has a half side ``r >= min_jump`` jumps as :func:`_jump` does: past every crossing before
    ``tau = min(tz + dz, ty + (r - 1) dy, tx + (r - 1) dx)``, each axis adding its ``t_delta`` once
    per crossing, so that its state is the one the steps reach, bit for bit (``min_jump`` above 15:
    no jump). Ray ``r`` (``rid0 <= r < rid0 + n``) starts at ``o[r // per_origin]`` in the frame
    ``frame[r // per_origin]`` along ``d[r % len(d)]`` (``per_origin`` 1 and ``len(d)`` the rays: one
    origin and direction per ray; otherwise every origin's rays take the directions ``d`` in turn).
    Writes ``labels[:, rid0:rid0 + n]`` and ``depth[:, rid0:rid0 + n]``."""
    V = volumes.shape[0]
    PY = Y + 2 * P
    PZ = Z + 2 * P
    sxs = PY * PZ
    per_frame = (X + 2 * P) * sxs
    all_bits = (1 << V) - 1
    strides = np.array((sxs, PZ, 1), np.int64)
    tops = np.array((X - 1, Y - 1, Z - 1), np.int64)
    t3 = np.empty(3, o.dtype)  # per axis x, y, z: the next crossing, the distance between crossings
    dt3 = np.empty(3, o.dtype)
    st3 = np.empty(3, np.int64)  # the flat step
    cast = np.empty(1, o.dtype)  # an integer in the rays' float type, as numpy's astype gives it
    zero = tiny - tiny
    n_dirs = d.shape[0]
    for r in range(rid0, rid0 + n):
        k, j = r // per_origin, r % n_dirs
        c = frame[k] * per_frame
        for ax in (2, 1, 0):  # _initial_state's order and operations
            oa, da = o[k, ax], d[j, ax]
            ia = min(np.int64(np.floor((oa - lo[ax]) / vs[ax])), tops[ax])
            c += (ia + P) * strides[ax]
            up = da >= 0
            cast[0] = ia + up
            boundary = lo[ax] + cast[0] * vs[ax]
            if da != 0:
                t3[ax] = (boundary - oa) / da
                dt3[ax] = vs[ax] / max(abs(da), tiny)
            else:
                t3[ax] = never
                dt3[ax] = zero
            st3[ax] = strides[ax] if up else -strides[ax]
        az, ay, ax_ = t3[2], t3[1], t3[0]
        bz, by, bx = dt3[2], dt3[1], dt3[0]
        sz, sy, sx = st3[2], st3[1], st3[0]
        want = all_bits
        t_prev = zero  # the exit of the voxel before the first
        while True:
            a = ay if ay <= ax_ else ax_
            t_exit = az if az <= a else a
            byte = code[c]
            if byte & 0x80:  # the border: no hit in the volumes still looked for
                for v in range(V):
                    if want & (1 << v):
                        depth[v, r] = t_prev
                break
            met = byte & want
            square = byte >> V  # the free square's half side (0 where a volume's bit is set)
            if square >= min_jump:  # _jump's crossings, one ray: at most one in z, r in y and in x
                cast[0] = square
                r1 = cast[0] - 1
                tau = az + bz
                tau_y = ay + r1 * by
                tau_x = ax_ + r1 * bx
                tau = tau if tau <= tau_y else tau_y
                tau = tau if tau <= tau_x else tau_x
                if az < tau:
                    az += bz
                    c += sz
                while ay < tau:
                    ay += by
                    c += sy
                while ax_ < tau:
                    ax_ += bx
                    c += sx
                continue
            if met:
                fr = c // per_frame
                rem = c - fr * per_frame
                x = rem // sxs
                rem -= x * sxs
                y = rem // PZ
                z = rem - y * PZ
                flat = ((fr * X + x - P) * Y + y - P) * Z + z - P
                for v in range(V):
                    if met & (1 << v):
                        labels[v, r] = volumes[v, flat]
                        depth[v, r] = t_exit
                want &= ~met
                if want == 0:
                    break
            if az <= a:
                az += bz
                c += sz
            elif ay <= ax_:
                ay += by
                c += sy
            else:
                ax_ += bx
                c += sx
            t_prev = t_exit


def _numba_free_squares(code, V, cap):  # pragma: no cover - compiled by numba (equal to _add_free_squares, tested)
    """:func:`_add_free_squares` for the numba walk, every z layer at once: each voxel's free square
    is one less than the chessboard distance (``max(|dx|, |dy|)``) from it to the nearest voxel of
    its layer that is not free in the three layers ``z - 1 .. z + 1`` (a volume's bit or the
    border; the outermost layers ``z = 0, PZ - 1`` count as not free, as no square is recorded
    there), capped at ``cap``; that distance by the two sweeps of the chessboard chamfer transform,
    which is exact for that distance. ``dist`` ``(PX + 2, PY + 2, PZ)`` bytes holds the distance of
    every layer, z the innermost axis as in ``code``, so that each step of a sweep (a voxel's
    minimum with its four finished neighbours' ``+ 1``: ``(x - 1, y - 1 .. y + 1)`` and ``(x, y -
    1)`` forward, those after backward) runs along a row of ``PZ`` contiguous bytes (byte
    arithmetic, cast back to ``uint8`` so that LLVM keeps byte lanes). ``dist`` has a border of
    ``cap + 1``, which no neighbour's ``+ 1`` beats (a voxel's distance is at most ``cap + 1 <=
    16``). ``code``: ``(F, PX, PY, PZ)`` padded bytes, changed in place."""
    F, PX, PY, PZ = code.shape
    low = np.uint8((1 << V) - 1 | 0x80)  # the bits that make a voxel not free
    one, big, top, shift = np.uint8(1), np.uint8(cap + 1), np.uint8(cap), np.uint8(V)
    dist = np.full((PX + 2, PY + 2, PZ), big, np.uint8)
    for f in range(F):
        for x in range(PX):  # 0 where not free, else cap + 1
            for y in range(PY):
                c, d = code[f, x, y], dist[x + 1, y + 1]
                d[0] = d[PZ - 1] = 0
                for z in range(1, PZ - 1):
                    d[z] = 0 if (c[z - 1] | c[z] | c[z + 1]) & low else big
        for x in range(1, PX + 1):  # forward sweep
            for y in range(1, PY + 1):
                d, a, b, e, w = dist[x, y], dist[x - 1, y - 1], dist[x - 1, y], dist[x - 1, y + 1], dist[x, y - 1]
                for z in range(PZ):
                    d[z] = min(d[z], np.uint8(min(min(a[z], b[z]), min(e[z], w[z])) + one))
        for x in range(PX, 0, -1):  # backward sweep
            for y in range(PY, 0, -1):
                d, a, b, e, w = dist[x, y], dist[x + 1, y - 1], dist[x + 1, y], dist[x + 1, y + 1], dist[x, y + 1]
                for z in range(PZ):
                    d[z] = min(d[z], np.uint8(min(min(a[z], b[z]), min(e[z], w[z])) + one))
        for x in range(PX):  # the distance less one (0 where it is 0), capped, in the bits above V
            for y in range(PY):
                c, d = code[f, x, y], dist[x + 1, y + 1]
                for z in range(PZ):
                    c[z] |= np.uint8(min(np.uint8(max(d[z], one) - one), top) << shift)


def _numba_walk():
    """:func:`_walk_numba_rays` and :func:`_numba_free_squares` compiled by numba
    (:func:`occkit.jit.numba_kernels`), or None where numba cannot be imported (the numpy walk then)."""
    return numba_kernels(_walk_numba_rays, _numba_free_squares)


def _numba_ray_code(gt, pred, free, code):  # pragma: no cover - compiled by numba (tested through the counts)
    """:func:`cast_rays`' bytes for the two volumes ``gt`` and ``pred`` (``(F, X, Y, Z)`` uint8): bit 0
    where ``gt < free``, bit 1 where ``pred < free``, in ``code`` (``(F, X + 2, Y + 2, Z + 2)``, its
    one-voxel border already 0x80)."""
    F, X, Y, Z = gt.shape
    for f in range(F):
        for x in range(X):
            for y in range(Y):
                for z in range(Z):
                    code[f, x + 1, y + 1, z + 1] = np.uint8(gt[f, x, y, z] < free) | (
                        np.uint8(pred[f, x, y, z] < free) << np.uint8(1)
                    )


def _numba_ray_counts(labels, depth, thresholds, free, counts):  # pragma: no cover - compiled by numba
    """:func:`rayiou_counts` of the rays of ``labels``, ``depth`` (``(2, R)``: the ground truth's, then the
    prediction's), added to ``counts`` (``gt_count (C) | pred_count (C) | tp (T * C)``, C = ``free + 1``):
    the same integers (``|depth_pred - depth_gt| < t`` in the depths' float type, ``thresholds`` given in
    it)."""
    C = free + 1
    for r in range(labels.shape[1]):
        lg = labels[0, r]
        if lg == free:
            continue
        lp = labels[1, r]
        counts[lg] += 1
        counts[C + lp] += 1
        if lg == lp:
            err = abs(depth[1, r] - depth[0, r])
            for j in range(thresholds.shape[0]):
                if err < thresholds[j]:
                    counts[(2 + j) * C + lg] += 1


def _numba_count():
    """:func:`_numba_ray_code` and :func:`_numba_ray_counts` compiled by numba
    (:func:`occkit.jit.numba_kernels`), or None where numba cannot be imported (cast_rays, then
    rayiou_counts)."""
    return numba_kernels(_numba_ray_code, _numba_ray_counts)


@functools.lru_cache(maxsize=4)
def _cpu_ray_directions(dtype: torch.dtype) -> torch.Tensor:
    """:func:`lidar_ray_directions` on the CPU, made once per dtype (never written to)."""
    return lidar_ray_directions(dtype)


def _ray_counts_on_cpu(
    gt: torch.Tensor,
    pred: torch.Tensor,
    origins: list[torch.Tensor],
    grid: Grid,
    free: int,
    dtype: torch.dtype,
    threads: int | None,
    thresholds: tuple[float, ...],
) -> np.ndarray:
    """:meth:`RayIoUMetric.update`'s counts on the CPU with numba, equal to :func:`cast_rays` then
    :func:`rayiou_counts` (the same walk, ray for ray): ``gt``, ``pred`` ``(B, X, Y, Z)`` class ids in
    ``[0, free]``, ``origins`` per frame ``(K, 3)`` in ``dtype``; returns the counts, ``gt_count (C) |
    pred_count (C) | tp (T * C)`` int64. No array of the rays' origins and directions is built: each
    origin's rays take :func:`lidar_ray_directions` in turn, as ``update`` orders them."""
    ray_code, ray_counts = _numba_count()
    ftype = _numpy_dtype(dtype)
    d_t = _cpu_ray_directions(dtype)
    d = d_t.numpy()
    o = torch.cat(origins).numpy()
    frame = np.repeat(np.arange(len(origins), dtype=np.int64), [ob.shape[0] for ob in origins])
    lo, hi = np.array(grid.range_min, ftype), np.array(grid.range_max, ftype)
    outside = ~((o >= lo) & (o < hi)).all(-1)
    if outside.any():  # cast_rays' error, naming the first ray of the origin
        k = int(np.flatnonzero(outside)[0])
        raise ValueError(
            f"origins: ray {k * d.shape[0]} starts at {o[k].tolist()}, outside the grid {grid.point_range}"
        )
    X, Y, Z = grid.shape
    F, R = gt.shape[0], o.shape[0] * d.shape[0]
    volumes = torch.stack([gt.to("cpu", torch.uint8), pred.to("cpu", torch.uint8)])  # (2, F, X, Y, Z)
    code = np.full((F, X + 2, Y + 2, Z + 2), 0x80, np.uint8)
    ray_code(volumes[0].numpy(), volumes[1].numpy(), free, code)
    labels = torch.full((2, R), free, dtype=torch.uint8)  # class ids < 255: a byte each
    depth = torch.zeros((2, R), dtype=dtype)
    frame_t, o_t = torch.from_numpy(frame), torch.from_numpy(o)
    _walk_on_cpu(
        torch.from_numpy(code), volumes, o_t, d_t, frame_t, grid, 1, dtype, "numba", threads, labels, depth, d.shape[0]
    )
    C = free + 1
    counts = np.zeros((2 + len(thresholds)) * C, np.int64)
    ray_counts(labels.numpy(), depth.numpy(), np.array(thresholds, ftype), free, counts)
    return counts


def _walk_numpy(
    code: np.ndarray,
    volumes: np.ndarray,
    origins: np.ndarray,
    dirs: np.ndarray,
    frame: np.ndarray,
    lo: np.ndarray,
    vs: np.ndarray,
    shape: tuple[int, int, int],
    P: int,
    skip: bool,
    sl: slice,
    labels: np.ndarray,
    depth: np.ndarray,
) -> None:
    """The walk of :func:`cast_rays` for the rays ``sl``, in numpy; writes ``labels[:, sl]`` and
    ``depth[:, sl]``.

    ``code``: the padded bytes, flat; ``volumes``: ``(V, F * X * Y * Z)`` uint8 labels;
    ``origins, dirs (R, 3)``; ``frame (R,)``; ``lo, vs (3,)`` the grid's minimum and voxel size;
    ``P`` the border's thickness; ``skip``: the bits above the volumes' hold the free squares
    (:func:`_add_free_squares`), and before each block the rays in one jump (:func:`_jump`). Each
    axis is its own array (z, y, x: the tie order). Per step,
    branch-free: ``t_exit = min(tz, min(ty, tx))``; z steps when ``tz <= min(ty, tx)``, else y
    when ``ty <= tx``, else x (the reference's first-index argmin); the chosen axis adds its
    ``t_delta`` (the others add ``t_delta * 0 = 0``, which changes no bit).
    """
    M = _BLOCK
    X, Y, Z = shape
    V = volumes.shape[0]
    o = origins[sl]
    n = o.shape[0]
    ftype = o.dtype
    cur, t, dt, st = _initial_state(origins[sl], dirs[sl], frame[sl], lo, vs, shape, P)
    tz, ty, tx = t
    dz, dy, dx = dt
    sz, sy, sx = st
    rid = np.arange(sl.start, sl.start + n)
    # per ray, the bits still looked for: volumes without a hit yet, and the border
    volume_bits = np.uint8((1 << V) - 1)
    want = np.full(n, volume_bits | 0x80, np.uint8)
    t_prev = np.zeros(n, ftype)  # exit distance of the voxel before the block's first
    T = np.empty((M, n), ftype)  # (M, n) exit distance of the voxel at each step
    C = np.empty((M, n), np.uint8)  # (M, n) its byte
    K = np.empty((M, n), np.int64)  # (M, n) its padded flat index
    width = n  # the buffers' row length (rays carried fill the first n columns)
    t_yx, tmp = np.empty(n, ftype), np.empty(n, ftype)
    itmp = np.empty(n, np.int64)
    mz, my, mx = np.empty(n, bool), np.empty(n, bool), np.empty(n, bool)
    while n:
        if skip:
            _jump(code, V, want, cur, [tz, ty, tx], [dz, dy, dx], [sz, sy, sx])
        a, f, i = t_yx[:n], tmp[:n], itmp[:n]
        bz, by, bx = mz[:n], my[:n], mx[:n]
        for k in range(M):
            np.fmin(ty, tx, out=a)
            np.fmin(tz, a, out=T[k, :n])
            np.take(code, cur, out=C[k, :n], mode="clip")  # past the border: any byte will do
            K[k, :n] = cur
            np.less_equal(tz, a, out=bz)  # z steps
            np.less_equal(ty, tx, out=by)
            np.greater(by, bz, out=by)  # y steps: ty <= tx and not z
            np.logical_or(bz, by, out=bx)
            np.logical_not(bx, out=bx)  # x steps
            np.multiply(dz, bz, out=f)
            tz += f
            np.multiply(dy, by, out=f)
            ty += f
            np.multiply(dx, bx, out=f)
            tx += f
            np.multiply(sz, bz, out=i)
            cur += i
            np.multiply(sy, by, out=i)
            cur += i
            np.multiply(sx, bx, out=i)
            cur += i
        # What the block met: only rays with a byte they look for (a first hit or the border).
        _look_at_block(C, K, T, n, width, want, rid, t_prev, volumes, shape, P, labels, depth)
        t_prev = T[M - 1, :n].copy()
        finished = (want & volume_bits) == 0
        n_finished = int(finished.sum())
        if 32 * n_finished > n:  # carry only the rays still walking (copying is cheaper than walking)
            keep = ~finished
            rid, cur, tz, ty, tx, dz, dy, dx, sz, sy, sx, t_prev, want = (
                x[keep] for x in (rid, cur, tz, ty, tx, dz, dy, dx, sz, sy, sx, t_prev, want)
            )
            n = rid.shape[0]
        elif n_finished:  # park them: they stay where they are (reads clipped to the array), looking for nothing
            sz[finished] = 0
            sy[finished] = 0
            sx[finished] = 0
            want[finished] = 0


def _look_at_block(
    C: np.ndarray,
    K: np.ndarray,
    T: np.ndarray,
    n: int,
    width: int,
    want: np.ndarray,
    rid: np.ndarray,
    t_prev: np.ndarray,
    volumes: np.ndarray,
    shape: tuple[int, int, int],
    P: int,
    labels: np.ndarray,
    depth: np.ndarray,
) -> None:
    """What a block of :func:`_walk_numpy`'s steps met: for the rays that met a byte they look for, per
    volume the first step that met its bit (a hit: its label and exit distance) or the border (a miss:
    the exit distance of the voxel before), written to ``labels`` and ``depth`` and taken out of
    ``want``. ``C``, ``K``, ``T``: ``(M, width)`` buffers of each step's byte, padded flat index and
    exit distance, the rays carried in their first ``n`` columns."""
    X, Y, Z = shape
    V = volumes.shape[0]
    PZ = Z + 2 * P
    sxs = (Y + 2 * P) * PZ
    per_frame = (X + 2 * P) * sxs
    Cn = C[:, :n]
    Cn &= want
    S = np.flatnonzero(Cn.max(0) != 0)
    if not S.size:
        return
    Cs = np.take(Cn, S, axis=1)  # (M, |S|); faster than Cn[:, S]
    cols = np.arange(S.size)
    wanted = want[S]
    for v in range(V):
        met = (Cs & np.uint8((1 << v) | 0x80)) != 0  # (M, |S|)
        kk = met.argmax(0)  # first step that met a voxel of volume v or the border
        new = met[kk, cols] & ((wanted & np.uint8(1 << v)) != 0)
        if not new.any():
            continue
        Sv, kv = S[new], kk[new]
        at = kv * width + Sv  # flat index into the (M, width) buffers
        miss = (C.ravel().take(at) & 0x80) != 0
        r = rid[Sv]
        h = K.ravel().take(at)  # padded flat index -> the volume's flat index
        fr, rem = np.divmod(h, per_frame)
        x, rem = np.divmod(rem, sxs)
        y, z = np.divmod(rem, PZ)
        flat = ((fr * X + x - P) * Y + y - P) * Z + z - P
        hit = ~miss
        labels[v, r[hit]] = volumes[v, flat[hit]]
        Tf = T.ravel()
        before = np.where(kv > 0, Tf.take(np.maximum(at - width, Sv)), t_prev[Sv])  # the grid's exit
        depth[v, r] = np.where(miss, before, Tf.take(at))
        want[Sv] &= np.uint8(~(1 << v) & 0xFF)


def _walk_torch(
    code: torch.Tensor,
    cur: torch.Tensor,
    t_next: torch.Tensor,
    t_delta: torch.Tensor,
    flat_step: torch.Tensor,
    V: int,
    hit_at: torch.Tensor,
    depth: torch.Tensor,
) -> None:
    """:func:`_walk_numpy` in torch, for GPUs: the same steps, all rays at once, one look (and
    one synchronisation) per block."""
    M = _BLOCK
    R = cur.shape[0]
    dev = cur.device
    t = t_next.clone()  # (n, 3)
    dt, fs = t_delta, flat_step.clone()
    rid = torch.arange(R, device=dev)
    done = torch.zeros((V, R), dtype=torch.bool, device=dev)
    t_prev = torch.zeros(R, dtype=t.dtype, device=dev)
    bits = torch.tensor([(1 << v) | 0x80 for v in range(V)], dtype=torch.uint8, device=dev)[:, None, None]
    while rid.numel():
        Ts, Cs, Ks = [], [], []
        for _ in range(M):
            t_yx = torch.fmin(t[:, 1], t[:, 2])
            Ts.append(torch.fmin(t[:, 0], t_yx))
            Cs.append(code[cur])
            Ks.append(cur)
            bz = t[:, 0] <= t_yx
            by = (t[:, 1] <= t[:, 2]) > bz
            bx = ~(bz | by)
            m = torch.stack([bz, by, bx], 1)  # (n, 3)
            t = t + dt * m
            cur = cur + (fs * m).sum(1)
        T, C, K = torch.stack(Ts), torch.stack(Cs), torch.stack(Ks)  # (M, n)
        met = (C[None] & bits) != 0  # (V, M, n)
        kk = met.byte().argmax(1)  # (V, n)
        found = met.gather(1, kk[:, None]).squeeze(1) & ~done
        vv, rr = found.nonzero(as_tuple=True)
        k = kk[vv, rr]
        miss = (C[k, rr] & 0x80) != 0
        hit_at[vv, rid[rr]] = torch.where(miss, -1, K[k, rr])
        before = torch.where(k > 0, T[(k - 1).clamp_min(0), rr], t_prev[rr])
        depth[vv, rid[rr]] = torch.where(miss, before, T[k, rr])
        done |= found
        t_prev = T[-1]
        keep = ~done.all(0)
        rid, cur, t, dt, fs, done, t_prev = (
            rid[keep],
            cur[keep],
            t[keep],
            dt[keep],
            fs[keep],
            done[:, keep],
            t_prev[keep],
        )


# ---------------------------------------------------------------------------------------------
# counts and scores


def rayiou_counts(
    labels_pred: torch.Tensor,
    depth_pred: torch.Tensor,
    labels_gt: torch.Tensor,
    depth_gt: torch.Tensor,
    num_classes: int = OCC3D_NUM_CLASSES,
    thresholds: tuple[float, ...] = RAYIOU_THRESHOLDS,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-class counts of a set of rays (rays whose ground-truth label is free are dropped).

    Args:
        labels_pred, labels_gt: ``(R,)`` long; depth_pred, depth_gt: ``(R,)`` float.
    Returns:
        gt_count ``(C,)``, pred_count ``(C,)`` and tp ``(T, C)`` int64 (T thresholds).
    """
    C, T = num_classes, len(thresholds)
    free = C - 1
    gt_free = labels_gt == free
    gt_count = torch.bincount(labels_gt, minlength=C)[:C].clone()
    gt_count[free] = 0
    # the prediction's labels on the kept rays: the dropped ones counted apart, in bins C .. 2C - 1
    pred_count = torch.bincount(labels_pred + C * gt_free, minlength=2 * C)[:C]
    # per ray, how many thresholds its depth error is under (0 .. T); one count per (class, level)
    err = (depth_pred - depth_gt).abs()
    level = torch.zeros_like(labels_gt)
    for t in thresholds:
        level += err < t
    same = (labels_gt == labels_pred) & ~gt_free
    key = torch.where(same, labels_gt * (T + 1) + level, C * (T + 1))  # other rays: a last bin, dropped
    h = torch.bincount(key, minlength=C * (T + 1) + 1)[: C * (T + 1)].view(C, T + 1)
    # err < t  <=>  err is under every threshold u >= t  <=>  level >= #(thresholds u >= t)
    need = torch.tensor([sum(u >= t for u in thresholds) for t in thresholds], device=h.device)
    atleast = h.flip(1).cumsum(1).flip(1)  # atleast[:, k] = #(level >= k)
    tp = atleast[:, need].T.contiguous()
    return gt_count, pred_count, tp


def rayiou_scores(
    gt_count: torch.Tensor,
    pred_count: torch.Tensor,
    tp: torch.Tensor,
    thresholds: tuple[float, ...] = RAYIOU_THRESHOLDS,
    class_names: tuple[str, ...] = OCC3D_CLASSES,
) -> dict[str, Any]:
    """RayIoU in percent from accumulated counts (free, the last class, excluded).

    Returns:
        ``rayiou`` (nanmean over thresholds x classes), ``rayiou@<t>`` for each threshold
        (``rayiou@1``, ``rayiou@2``, ``rayiou@4``) and ``rayiou_iou`` (class name -> list of
        per-threshold values); NaN for a class with no ray in ground truth nor prediction.
    """
    C = gt_count.shape[0]
    tpd = tp.double()  # (T, C)
    iou = tpd / ((gt_count.double() + pred_count.double())[None, :] - tpd)  # (T, C)
    iou = iou[:, : C - 1]
    out: dict[str, Any] = {"rayiou": 100.0 * nanmean(iou.reshape(-1))}
    for j, t in enumerate(thresholds):
        out[f"rayiou@{t:g}"] = 100.0 * nanmean(iou[j])
    out["rayiou_iou"] = {
        class_names[c]: [100.0 * float(iou[j, c]) for j in range(len(thresholds))] for c in range(C - 1)
    }
    return out


class RayIoUMetric:
    """Streaming RayIoU: ``update`` per batch, ``compute`` at the end; mergeable like
    :class:`~occkit.metrics.occ3d.Occ3DMetric` (an :class:`occkit.formats.Metric`).

    Args:
        num_classes: ``C``.
        grid: the voxel grid of the volumes (default: Occ3D's).
        thresholds: depth-error thresholds in metres.
        class_names: for the per-class table.
        device: where the counts live (default: the device of the first update).
        dtype: float type of the ray distances.
        threads: CPU threads of the ray walk (default: ``torch.get_num_threads()`` at each update).
        infos: nuScenes-style info files (:func:`load_nuscenes_infos`) holding the frames' LiDAR and
            ego poses, for a folder scored by occkit's scoring loop; default: the dataset's own
            annotations (their ``lidar_sensor`` entries, which the synthetic world writes).
        free: the free class (the class table's free id); it must be ``C - 1``: the official
            algorithm counts the classes below it as occupied. Deprecated: left out, it is ``C - 1``
            (occkit 0.1's form), with a warning; required from 0.3.0.

    In occkit's scoring loop (:func:`occkit.scoring.folder.evaluate_predictions`) the metric gets
    its frames' LiDAR origins itself: :meth:`bind` (once, before any frame is counted: every scene's
    poses read and checked) and :meth:`frame_extra` (a frame's origins, gathered into the batch's
    ``Targets.extra["ray_origins"]``). A region of voxels (``occkit eval --frustum``) is refused
    (:attr:`region_refused`): the rays cross it.
    """

    name = "rayiou"
    #: Why a region of voxels cannot restrict this metric (the scoring loop refuses ``--frustum`` with it).
    region_refused = "RayIoU is scored along LiDAR rays, not over a region of voxels; score it without --frustum"

    def __init__(
        self,
        num_classes: int = OCC3D_NUM_CLASSES,
        grid: Grid | None = None,
        thresholds: tuple[float, ...] = RAYIOU_THRESHOLDS,
        class_names: tuple[str, ...] | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float64,
        threads: int | None = None,
        infos: str | os.PathLike | None = None,
        *,
        free: int | None = None,
    ) -> None:
        if free is None:  # occkit 0.1's form: the last class is the free one, as RayIoU needs
            free = int(num_classes) - 1
            warn_deprecated(
                f"RayIoUMetric(...) without free=: the free class is taken as the table's last ({free}, as occkit "
                f"0.1 did); give free= (the class table's free id, ClassTable.free), required from {REMOVED_IN}"
            )
        if free != num_classes - 1:
            raise ValueError(
                f"free: {free}, but RayIoU counts the classes below the free id as occupied: the free class "
                f"must be the table's last ({num_classes - 1})"
            )
        if class_names is None:
            class_names = (
                OCC3D_CLASSES if num_classes == OCC3D_NUM_CLASSES else tuple(str(c) for c in range(num_classes))
            )
        if len(class_names) != num_classes:
            raise ValueError(f"class_names has {len(class_names)} names for {num_classes} classes")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        if not 2 <= num_classes <= 254:
            raise ValueError(f"num_classes must lie in [2, 254], got {num_classes}")
        self.num_classes = int(num_classes)
        self.free = int(free)
        self.grid = grid if grid is not None else occ3d_grid()
        self.thresholds = tuple(float(t) for t in thresholds)
        self.class_names = tuple(class_names)
        self.device = torch.device(device) if device is not None else None
        self.dtype = dtype
        self.threads = threads
        self.infos = None if infos is None else Path(infos)
        self._origin: Any = None  # token -> (K, 3) origins, set by bind()
        self.reset()

    def bind(self, dataset: Any, tokens: list[str]) -> None:
        """Ready the LiDAR origins of the frames ``tokens`` of ``dataset`` (an
        :class:`~occkit.data.occ3d.Occ3DDataset`), from :attr:`infos` or the dataset's annotations,
        checking every scene's poses now, before any frame is counted: a frame without poses, or a
        non-finite or implausible pose, is refused naming the file, frame and field."""
        if self.infos is not None:
            info_table = load_nuscenes_infos(self.infos)
            scene_frames = scene_frames_from_infos(info_table)
            absent = [t for t in tokens if t not in info_table]
            if absent:
                raise KeyError(f"{self.infos}: no LiDAR/ego poses for {len(absent)} frame(s), e.g. {absent[:3]}")
            self._origin = lambda t: rayiou_origins_from_infos(info_table, t, scene_frames)
            return
        if tokens and not dataset.info(tokens[0]).get("lidar_sensor"):
            raise ValueError(
                f"{dataset.annotations_path}: RayIoU needs the LiDAR poses of every frame, and these annotations "
                "have no 'lidar_sensor' entries: pass --infos I, the folder occkit prepare nuscenes wrote (or a "
                "nuScenes-style info file with lidar2ego_translation/rotation and ego2global_translation/rotation "
                "per token)"
            )
        poses: dict[str, Any] = {}  # each scene's poses built once
        scenes = {dataset.frames[dataset.index_of(t)].scene: t for t in tokens}
        for t in scenes.values():  # every scene's poses checked now, before any frame is counted
            rayiou_origins(dataset, t, poses)
        self._origin = lambda t: rayiou_origins(dataset, t, poses)

    def frame_extra(self, token: str) -> dict[str, Any]:
        """What frame ``token`` adds to its batch's ``Targets.extra``: ``{"ray_origins": (K, 3)}``."""
        if self._origin is None:
            raise RuntimeError("RayIoU: bind(dataset, tokens) before frame_extra(token)")
        return {"ray_origins": self._origin(token)}

    def __getstate__(self) -> dict[str, Any]:
        """The counts and settings; not the bound frames (a process returns its counts, not its dataset)."""
        return {**self.__dict__, "_origin": None}

    def reset(self) -> None:
        """Zero the counts."""
        C, T = self.num_classes, len(self.thresholds)
        # one flat int64 state: gt_count (C) | pred_count (C) | tp (T * C) | frames (1)
        self.state = torch.zeros(2 * C + T * C + 1, dtype=torch.int64, device=self.device)

    @property
    def frames(self) -> int:
        return int(self.state[-1])

    def _split(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        C, T = self.num_classes, len(self.thresholds)
        s = self.state
        return s[:C], s[C : 2 * C], s[2 * C : 2 * C + T * C].view(T, C)

    @torch.no_grad()
    def update(
        self,
        pred: torch.Tensor,
        gt: torch.Tensor | Targets,
        origins: torch.Tensor | list[torch.Tensor] | None = None,
    ) -> None:
        """Add a batch.

        Args:
            pred: ``(B, X, Y, Z)`` integer class ids, or ``(B, C, X, Y, Z)`` float logits.
            gt: ``(B, X, Y, Z)`` integer class ids, or :class:`~occkit.formats.Targets` whose
                ``extra["ray_origins"]`` holds the origins.
            origins: per frame the LiDAR origins in that frame's ego frame: ``(B, K, 3)`` or a
                list of ``B`` tensors ``(K_b, 3)`` (see :func:`rayiou_origins`).
        """
        if isinstance(gt, Targets):
            if "ray_origins" not in gt.extra:
                raise ValueError("RayIoU: the targets carry no 'ray_origins' (the frames' LiDAR origins)")
            gt, origins = gt.occupancy, gt.extra["ray_origins"]
        if origins is None:
            raise ValueError("RayIoU: no origins given (the frames' LiDAR origins)")
        X, Y, Z = self.grid.shape
        B = check_shape(gt, "B X Y Z", name="gt", dims={"X": X, "Y": Y, "Z": Z})["B"]
        if pred.is_floating_point():
            check_shape(pred, "B C X Y Z", name="pred", dims={"B": B, "C": self.num_classes, "X": X, "Y": Y, "Z": Z})
            pred = pred.argmax(1)
        check_shape(pred, "B X Y Z", name="pred", dims={"B": B, "X": X, "Y": Y, "Z": Z})
        origin_list = list(origins.unbind(0)) if isinstance(origins, torch.Tensor) else list(origins)
        if len(origin_list) != B:
            raise ValueError(f"origins: {len(origin_list)} frames of origins for a batch of {B}")
        if self.state.device != gt.device and self.frames == 0 and self.device is None:
            self.state = self.state.to(gt.device)
        dev = self.state.device
        for b, ob in enumerate(origin_list):
            check_shape(ob, "K 3", name=f"origins[{b}]")
            if ob.shape[0] == 0:
                raise ValueError(f"origins[{b}]: no LiDAR origin for this frame")
            origin_list[b] = ob.to(device=dev, dtype=self.dtype)
        for name, t in (("gt", gt), ("pred", pred)):
            if t.is_floating_point() or (t.numel() and (int(t.min()) < 0 or int(t.max()) >= self.num_classes)):
                raise ValueError(f"{name}: expected integer class ids in [0, {self.num_classes})")
        if dev.type == "cpu" and self.dtype in (torch.float64, torch.float32) and _numba_count() is not None:
            counts = torch.from_numpy(
                _ray_counts_on_cpu(
                    gt, pred, origin_list, self.grid, self.free, self.dtype, self.threads, self.thresholds
                )
            )
            self.state[:-1] += counts
            self.state[-1] += B
            return
        dirs = lidar_ray_directions(self.dtype, dev)  # (D, 3)
        all_o = [ob.repeat_interleave(dirs.shape[0], 0) for ob in origin_list]  # (K*D, 3)
        all_d = [dirs.repeat(ob.shape[0], 1) for ob in origin_list]
        all_f = [
            torch.full((ob.shape[0] * dirs.shape[0],), b, dtype=torch.long, device=dev)
            for b, ob in enumerate(origin_list)
        ]
        volumes = torch.stack([gt.to(dev, torch.uint8), pred.to(dev, torch.uint8)])  # (2, B, X, Y, Z)
        labels, depth = cast_rays(
            volumes,
            torch.cat(all_f),
            torch.cat(all_o),
            torch.cat(all_d),
            self.grid,
            free=self.free,
            dtype=self.dtype,
            threads=self.threads,
        )
        g, p, tp = rayiou_counts(labels[1], depth[1], labels[0], depth[0], self.num_classes, self.thresholds)
        gc, pc, tpc = self._split()
        gc += g
        pc += p
        tpc += tp
        self.state[-1] += B

    def merge(self, other: RayIoUMetric) -> RayIoUMetric:
        """Add ``other``'s counts (same classes and thresholds); returns ``self``."""
        if (
            not isinstance(other, RayIoUMetric)
            or other.num_classes != self.num_classes
            or other.thresholds != self.thresholds
        ):
            raise ValueError("merge: the other metric must be a RayIoUMetric with the same classes and thresholds")
        self.state += other.state.to(self.state.device)
        return self

    def all_reduce(self) -> None:
        """Sum the counts across ``torch.distributed`` processes (no-op when not initialised)."""
        all_reduce_sum(self.state)

    def compute(self) -> dict[str, Any]:
        """``rayiou``, ``rayiou@1``, ``rayiou@2``, ``rayiou@4`` (percent), ``rayiou_iou`` (class
        name -> per-threshold values) and ``frames``."""
        g, p, tp = (t.cpu() for t in self._split())
        out = rayiou_scores(g, p, tp, self.thresholds, self.class_names)
        out["frames"] = self.frames
        return out


# ---------------------------------------------------------------------------------------------
# origins


def lidar_origins_in_ego(
    T_global_from_ego: torch.Tensor,
    T_ego_from_lidar: torch.Tensor,
    ref_index: int,
    xy_limit: float = ORIGIN_XY_LIMIT,
    max_origins: int = MAX_ORIGINS,
) -> torch.Tensor:
    """The LiDAR origins of a scene's frames in the ego frame of frame ``ref_index``.

    Args:
        T_global_from_ego: ``(N, 4, 4)`` ego poses of the scene's frames in temporal order.
        T_ego_from_lidar: ``(N, 4, 4)`` (or ``(4, 4)``, shared) LiDAR -> ego of each frame.
        ref_index: the frame whose ego frame the origins are expressed in.
    Returns:
        ``(K, 3)`` float64, K <= ``max_origins``: origins with ``|x|, |y| < xy_limit`` in temporal
        order, ``max_origins`` of them picked at ``round(linspace(0, K' - 1, max_origins))``
        when more.
    """
    N = check_shape(T_global_from_ego, "N 4 4", name="T_global_from_ego")["N"]
    if T_ego_from_lidar.dim() == 2:
        T_ego_from_lidar = T_ego_from_lidar.expand(N, 4, 4)
    check_shape(T_ego_from_lidar, "N 4 4", name="T_ego_from_lidar", dims={"N": N})
    if not 0 <= ref_index < N:
        raise ValueError(f"ref_index {ref_index} outside [0, {N})")
    Tg = T_global_from_ego.double()
    Tl = T_ego_from_lidar.double()
    T_ref_ego_from_global = invert_transform(Tg[ref_index])
    lidar_pos_global = (Tg @ Tl)[:, :3, 3]  # (N, 3)
    o = lidar_pos_global @ T_ref_ego_from_global[:3, :3].T + T_ref_ego_from_global[:3, 3]  # (N, 3)
    o[ref_index] = Tl[ref_index, :3, 3]  # exact for the frame itself (no round trip)
    o = o[(o[:, 0].abs() < xy_limit) & (o[:, 1].abs() < xy_limit)]
    if o.shape[0] > max_origins:
        pick = np.round(np.linspace(0, o.shape[0] - 1, max_origins)).astype(np.int64)
        o = o[torch.from_numpy(pick)]
    return o


def rayiou_origins(dataset: Any, token: str, cache: dict[str, Any] | None = None) -> torch.Tensor:
    """LiDAR origins for RayIoU of frame ``token`` of an
    :class:`~occkit.data.occ3d.Occ3DDataset`, in its ego frame: ``(K, 3)`` float64.

    Uses the frames of the token's scene (all of them, whatever the split) and their
    ``lidar_sensor`` extrinsics, which the synthetic world writes; the real Occ3D annotations
    lack them: use :func:`load_nuscenes_infos` and :func:`rayiou_origins_from_infos` then.
    ``cache`` (a dict kept across calls on one dataset): each scene's poses are built once.
    """
    scene = dataset.frames[dataset.index_of(token)].scene
    if cache is not None and scene in cache:
        tokens, T_g, T_l = cache[scene]
        return lidar_origins_in_ego(T_g, T_l, tokens.index(token))
    tokens = dataset.scene_tokens(scene)
    infos = dataset.scene_infos[scene]
    T_g, T_l = [], []
    for t in tokens:
        sensor = infos[t].get("lidar_sensor")
        if not sensor or "extrinsic" not in sensor:
            raise ValueError(
                f"{dataset.annotations_path}: frame {t} of scene {scene} has no lidar_sensor.extrinsic; RayIoU needs "
                "the LiDAR poses: pass nuScenes-style info files (lidar2ego_*, ego2global_*) instead"
            )
        ext, pose = sensor["extrinsic"], infos[t].get("ego_pose")
        where = f"{dataset.annotations_path}: frame {t} of scene {scene}"
        for what, entry in (("lidar_sensor.extrinsic", ext), ("ego_pose", pose)):
            if not isinstance(entry, dict) or "translation" not in entry or "rotation" not in entry:
                raise ValueError(f"{where}: '{what}' is not a {{translation, rotation}} mapping")
        # every frame of the scene checked: a NaN pose's origin used to fall out of the origins unseen
        T_l.append(checked_pose(ext["translation"], ext["rotation"], "extrinsic", f"{where}: lidar_sensor.extrinsic"))
        T_g.append(checked_pose(pose["translation"], pose["rotation"], "ego_pose", f"{where}: ego_pose"))
    if cache is not None:
        cache[scene] = (list(tokens), torch.stack(T_g), torch.stack(T_l))
    return lidar_origins_in_ego(torch.stack(T_g), torch.stack(T_l), tokens.index(token))


def load_nuscenes_infos(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Per-token LiDAR and ego poses from nuScenes-style info files (as mmdet3d / SparseOcc
    write them): a ``.pkl`` (read with a restricted unpickler: containers and numpy arrays only),
    a ``.json``, or the folder ``occkit prepare nuscenes`` wrote (its ``infos.json``), holding a
    list of frames or ``{"infos": [...]}`` / ``{"data_list": [...]}``; each frame has ``token``,
    ``scene_name`` (or ``scene_token``), ``timestamp``, ``lidar2ego_translation``,
    ``lidar2ego_rotation`` (w, x, y, z), ``ego2global_translation``, ``ego2global_rotation``.

    Returns:
        token -> ``{"scene", "timestamp", "T_global_from_ego" (4, 4), "T_ego_from_lidar" (4, 4)}``.
    """
    path = Path(path)
    data = read_info_list(path)
    out: dict[str, dict[str, Any]] = {}
    need = ("token", "lidar2ego_translation", "lidar2ego_rotation", "ego2global_translation", "ego2global_rotation")
    for i, info in enumerate(data):  # the tokens: text, each once (read_info_list)
        where = info_where(path, i, info)
        missing = [k for k in need if k not in info]
        if missing:
            raise KeyError(f"{where} lacks {missing}")
        if "scene_name" not in info and "scene_token" not in info:
            raise KeyError(f"{where} lacks 'scene_name' (or 'scene_token')")
        scene = info_text(info, "scene_name" if "scene_name" in info else "scene_token", where)
        token = info["token"]
        out[token] = {
            "scene": scene,
            "timestamp": info_timestamp(info, where, i),
            "order": i,
            "T_global_from_ego": checked_pose(
                info["ego2global_translation"], info["ego2global_rotation"], "ego_pose", f"{where}: ego2global"
            ),
            "T_ego_from_lidar": checked_pose(
                info["lidar2ego_translation"], info["lidar2ego_rotation"], "extrinsic", f"{where}: lidar2ego"
            ),
        }
    return out


def scene_frames_from_infos(infos: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Scene -> its tokens in temporal order, from :func:`load_nuscenes_infos`'s result."""
    scenes: dict[str, list[str]] = {}
    for t, v in infos.items():
        scenes.setdefault(v["scene"], []).append(t)
    for frames in scenes.values():
        frames.sort(key=lambda t: (infos[t]["timestamp"], infos[t]["order"]))
    return scenes


def rayiou_origins_from_infos(
    infos: dict[str, dict[str, Any]],
    token: str,
    scene_frames: dict[str, list[str]] | None = None,
) -> torch.Tensor:
    """:func:`rayiou_origins` for a token of :func:`load_nuscenes_infos`'s result: ``(K, 3)``.
    Pass ``scene_frames`` (from :func:`scene_frames_from_infos`) when calling for many tokens."""
    if token not in infos:
        raise KeyError(f"token {token!r} is not in the info files")
    scene = infos[token]["scene"]
    if scene_frames is None:
        scene_frames = scene_frames_from_infos({t: v for t, v in infos.items() if v["scene"] == scene})
    frames = scene_frames[scene]
    return lidar_origins_in_ego(
        torch.stack([infos[t]["T_global_from_ego"] for t in frames]),
        torch.stack([infos[t]["T_ego_from_lidar"] for t in frames]),
        frames.index(token),
    )
