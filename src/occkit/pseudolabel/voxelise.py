"""Labelled points -> a pseudo-label grid: a per-voxel vote, then free space carved along rays.

The vote (EasyOcc publishes none; docs/methods.md §2 marks it [unsure]; this is occkit's rule):

- a voxel is **occupied** when at least ``min_points`` points fall in it;
- its class is the one with the largest summed weight among the points in it (``vote:
  confidence``, the default: each point weighs its prior confidence; ``vote: count``: each point
  weighs 1, the majority); ties go to the smaller class id;
- a voxel is **free** when a ray from a camera centre to one of its points (stopped ``margin``
  metres before the point), or a sky pixel's ray (to the grid's edge), crosses it and it is not
  occupied: what a camera saw through is empty;
- every other voxel is **unobserved**: class free (17) as Occ3D writes it, outside the mask;
- optionally (``consistency: frames``) a voxel the rays of more source frames saw through than
  put a point in it is **free** (observed), whatever the merged vote said
  (:func:`frame_consistency`): a past frame's stray points do not outvote the frames that saw
  empty space there.

``mask_camera`` of the written labels = occupied or free, the voxels the points or the carving
observed.
"""

from __future__ import annotations

import torch

from occkit.geometry.grid import Grid
from occkit.geometry.raycast import mark_visible
from occkit.shapes import check_shape


def vote_voxels(
    points: torch.Tensor,
    labels: torch.Tensor,
    grid: Grid,
    num_classes: int,
    weights: torch.Tensor | None = None,
    min_points: int = 1,
    *,
    free: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Voxelise labelled points by the vote above.

    Args:
        points: ``(P, 3)`` in the grid's frame; points outside the grid are dropped.
        labels: ``(P,)`` integer classes in ``[0, num_classes)``.
        num_classes: the class count of the labels' table (a format's ``classes.num_classes``).
        weights: ``(P,)`` vote weights (default 1).
        min_points: points a voxel needs to be occupied.
        free: the free class.
    Returns:
        semantics ``(X, Y, Z)`` long (``free`` where not occupied), occupied ``(X, Y, Z)`` bool.
    """
    check_shape(points, "P 3", name="points")
    check_shape(labels, "P", name="labels", dims={"P": points.shape[0]})
    if weights is not None:
        check_shape(weights, "P", name="weights", dims={"P": points.shape[0]})
    if min_points < 1:
        raise ValueError(f"vote_voxels: min_points must be >= 1, got {min_points}")
    lab = labels.long()
    if lab.numel() and (int(lab.min()) < 0 or int(lab.max()) >= num_classes):
        raise ValueError(
            f"vote_voxels: labels must lie in [0, {num_classes}), got [{int(lab.min())}, {int(lab.max())}]"
        )
    X, Y, Z = grid.shape
    idx, valid = grid.point_to_index(points)
    idx, lab = idx[valid], lab[valid]
    w = (weights[valid] if weights is not None else torch.ones(lab.shape[0])).double()
    flat = (idx[:, 0] * Y + idx[:, 1]) * Z + idx[:, 2]
    votes = torch.zeros(X * Y * Z * num_classes, dtype=torch.float64)
    votes.index_add_(0, flat * num_classes + lab, w)
    counts = torch.bincount(flat, minlength=X * Y * Z)
    votes = votes.view(X * Y * Z, num_classes)
    occupied = counts >= min_points
    sem = torch.where(occupied, votes.argmax(-1), torch.full_like(counts, free))  # argmax: first max = smaller id
    return sem.view(X, Y, Z), occupied.view(X, Y, Z)


def carve_free(
    origins: torch.Tensor,
    points: torch.Tensor,
    grid: Grid,
    margin: float = 0.2,
    sky_origins: torch.Tensor | None = None,
    sky_dirs: torch.Tensor | None = None,
    chunk: int = 262144,
) -> torch.Tensor:
    """The voxels the rays from ``origins`` to ``points`` (stopped ``margin`` metres short of the
    point) and the sky rays (to the grid's edge) cross.

    Args:
        origins, points: ``(R, 3)`` ray starts (camera centres) and ends, grid frame.
        margin: metres before each point where its ray stops (half a voxel keeps the point's own
            voxel out of the free space).
        sky_origins, sky_dirs: optional ``(S, 3)`` rays that see nothing (sky).
        chunk: rays walked at a time (memory).
    Returns:
        ``(X, Y, Z)`` bool.
    """
    check_shape(origins, "R 3", name="origins")
    check_shape(points, "R 3", name="points", dims={"R": origins.shape[0]})
    out = torch.zeros(grid.shape, dtype=torch.bool)
    vec = (points - origins).double()
    dist = vec.norm(dim=-1)
    ok = dist > margin
    o, d, t = origins.double()[ok], vec[ok] / dist[ok, None], dist[ok] - margin
    for i in range(0, o.shape[0], chunk):
        mark_visible(o[i : i + chunk], d[i : i + chunk], grid, t_max=t[i : i + chunk], out=out)
    if sky_origins is not None and sky_dirs is not None and sky_origins.shape[0]:
        check_shape(sky_dirs, "S 3", name="sky_dirs", dims={"S": sky_origins.shape[0]})
        for i in range(0, sky_origins.shape[0], chunk):
            mark_visible(sky_origins[i : i + chunk].double(), sky_dirs[i : i + chunk].double(), grid, out=out)
    return out


def frame_consistency(
    semantics: torch.Tensor,
    occupied: torch.Tensor,
    occupied_frames: torch.Tensor,
    free_frames: torch.Tensor,
    exempt_classes: tuple[int, ...] = (),
    *,
    free: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-voxel consistency check across frames: an occupied voxel that more source frames
    saw as free (a ray crossed it) than saw as occupied (a point fell in it) becomes free.

    Args:
        semantics, occupied: ``(X, Y, Z)`` the merged vote (:func:`vote_voxels`).
        occupied_frames: ``(X, Y, Z)`` integer, per voxel the number of source frames with a
            point in it.
        free_frames: ``(X, Y, Z)`` integer, per voxel the number of source frames whose carving
            rays crossed it without putting a point in it.
        exempt_classes: voxels voted to these classes keep their vote (the dynamic classes when
            they come from the current frame alone: a moving car is where the other frames saw
            through).
        free: the free class.
    Returns:
        semantics, occupied, with the outvoted voxels set to ``free`` / False.
    """
    for name, t in (("occupied", occupied), ("occupied_frames", occupied_frames), ("free_frames", free_frames)):
        check_shape(t, "X Y Z", name=name, dims=dict(zip("XYZ", semantics.shape)))
    outvoted = occupied & (free_frames > occupied_frames)
    if exempt_classes:
        outvoted &= ~torch.isin(semantics, torch.tensor(exempt_classes, dtype=semantics.dtype))
    return torch.where(outvoted, torch.full_like(semantics, free), semantics), occupied & ~outvoted
