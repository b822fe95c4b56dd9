"""A quality of labels that needs no truth: the labels rendered along each keyframe's own LiDAR
rays against the ranges the LiDAR measured (docs/labels.md, "Quality without truth").

For each return of a keyframe's own sweep whose point lies inside the label grid (and outside the
ego vehicle's box), the ray from the sensor origin through the return is walked through the
label grid (:func:`occkit.geometry.raycast.first_hit`) to its first occupied voxel. The ray then

- **agrees** when it stops in a voxel within one voxel of the return's (Chebyshev distance of the
  voxel indices at most 1): the labels hold the surface the LiDAR saw, where it saw it;
- is **false occupied** when it stops earlier, in an occupied voxel short of the return: labels
  occupy space the LiDAR saw through;
- is **false free** otherwise (it stops beyond the return, or in no voxel at all): the ray passes
  through the return's voxel, labelled free where the LiDAR saw a surface.

The three shares sum to 100 %. The **range error** of a ray that stops is the distance at which it
enters its first occupied voxel minus the measured range, in metres (negative: short); its
median and mean absolute values are reported over the rays that stop, the median to the
centimetre (the lower median of the errors rounded to centimetres, kept as a histogram, so a
run of any size is summed in constant memory).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The range-error histogram's last bin, in centimetres (errors beyond it count there).
MAX_ERROR_CM = 100_000


@dataclass
class RayCounts:
    """One keyframe's (or a run's) ray figures, summed: rays and their kinds, range errors."""

    returns: int = 0
    outside: int = 0
    agree: int = 0
    false_occupied: int = 0
    false_free: int = 0
    stopped: int = 0
    abs_error_sum: float = 0.0
    signed_error_sum: float = 0.0
    error_cm: np.ndarray = field(default_factory=lambda: np.zeros(MAX_ERROR_CM + 1, np.int64))

    def add(self, other: RayCounts) -> None:
        for k in ("returns", "outside", "agree", "false_occupied", "false_free", "stopped"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.abs_error_sum += other.abs_error_sum
        self.signed_error_sum += other.signed_error_sum
        self.error_cm += other.error_cm

    def figures(self) -> dict[str, Any]:
        """The figures (shares in percent of the rays scored, errors in metres; None without rays)."""
        n, s = self.returns, self.stopped
        pct = (lambda k: round(100.0 * k / n, 3)) if n else (lambda k: None)
        median = None
        if s:
            cum = np.cumsum(self.error_cm)
            median = int(np.searchsorted(cum, (s + 1) // 2)) / 100.0
        return {
            "rays": n,
            "returns_outside_grid": self.outside,
            "agree_percent": pct(self.agree),
            "false_free_percent": pct(self.false_free),
            "false_occupied_percent": pct(self.false_occupied),
            "stopped_percent": pct(self.stopped),
            "range_error_median_abs_m": median,
            "range_error_mean_abs_m": round(self.abs_error_sum / s, 4) if s else None,
            "range_error_mean_m": round(self.signed_error_sum / s, 4) if s else None,
        }


def ray_counts(
    occupied: np.ndarray, grid: Any, origin: np.ndarray, points: np.ndarray, ego_box: tuple[Any, Any] | None = None
) -> RayCounts:
    """The rays of one keyframe scored against its labels.

    Args:
        occupied: ``(X, Y, Z)`` bool, the labels' occupied voxels (every class but free).
        grid: the labels' :class:`~occkit.geometry.grid.Grid` (ego frame).
        origin: ``(3,)`` the LiDAR's origin in the grid's frame.
        points: ``(N, 3)`` the keyframe's own returns in the grid's frame.
        ego_box: ``(center, size)`` of the vehicle in the grid's frame: returns inside are not scored.
    """
    import torch

    from occkit.geometry.raycast import first_hit

    pts = np.asarray(points, np.float64).reshape(-1, 3)
    o = np.asarray(origin, np.float64).reshape(3)
    keep = np.isfinite(pts).all(1)
    if ego_box is not None:
        c, sz = (np.asarray(v, np.float64) for v in ego_box)
        keep &= ~(np.abs(pts - c) <= sz / 2).all(1)
    pts = pts[keep]
    vec = pts - o
    rng = np.linalg.norm(vec, axis=1)
    pts, vec, rng = pts[rng > 1e-6], vec[rng > 1e-6], rng[rng > 1e-6]
    tp = torch.from_numpy(pts)
    idx, inside = grid.point_to_index(tp)
    out = RayCounts(outside=int((~inside).sum()))
    idx, vec, rng = idx[inside], vec[inside.numpy()], rng[inside.numpy()]
    n = len(rng)
    out.returns = n
    if n == 0:
        return out
    dirs = torch.from_numpy(vec / rng[:, None])
    origins = torch.from_numpy(np.broadcast_to(o, (n, 3)).copy())
    hits = first_hit(torch.from_numpy(np.asarray(occupied, bool)), origins, dirs, grid)
    hit = hits.hit.numpy()
    near = (hits.index - idx).abs().amax(1).numpy() <= 1
    t_in = hits.t_in.numpy()
    agree = hit & near
    early = hit & ~near & (t_in < rng)
    out.agree, out.false_occupied = int(agree.sum()), int(early.sum())
    out.false_free = n - out.agree - out.false_occupied
    err = t_in[hit] - rng[hit]
    out.stopped = int(hit.sum())
    out.abs_error_sum = float(np.abs(err).sum())
    out.signed_error_sum = float(err.sum())
    cm = np.minimum(np.rint(np.abs(err) * 100.0), MAX_ERROR_CM).astype(np.int64)
    out.error_cm = np.bincount(cm, minlength=MAX_ERROR_CM + 1)
    return out


def keyframe_rays(rec: Any, token: str) -> tuple[np.ndarray, np.ndarray]:
    """The LiDAR origin ``(3,)`` and the returns ``(N, 3)`` in the ego frame of the keyframe
    ``token`` of the scene record ``rec`` (:class:`~occkit.data.scene_record.SceneRecord`)."""
    s = next(s for s in rec.sweeps if s.token == token)
    T = np.asarray(rec.lidars[s.sensor], np.float64)
    pts = np.asarray(s.points, np.float64) @ T[:3, :3].T + T[:3, 3]
    return T[:3, 3].copy(), pts


def score_rays(
    rec: Any, labels: dict[str, np.ndarray], grid: Any, free: int, T_ego_from_grid: np.ndarray | None = None
) -> list[tuple[str, RayCounts]]:
    """Each keyframe of the scene record ``rec`` scored: ``labels`` holds its ``semantics`` by token
    (keyframes without labels are skipped); the class ``free`` is empty space. ``T_ego_from_grid``: where
    the grid sits in the ego frame (a LiDAR-frame layout's: the keyframe LiDAR's extrinsic); None: the ego
    frame. The returns inside the ego box are left out in the ego frame, then the rays are walked in the
    grid's frame."""
    out = []
    box = (np.asarray(rec.ego_center, np.float64), np.asarray(rec.ego_size, np.float64))
    T_ge = None if T_ego_from_grid is None else np.linalg.inv(np.asarray(T_ego_from_grid, np.float64))
    for k in rec.keyframes:
        token = rec.sweeps[k].token
        if token not in labels:
            continue
        origin, pts = keyframe_rays(rec, token)
        if T_ge is None:
            out.append((token, ray_counts(labels[token] != free, grid, origin, pts, box)))
            continue
        c, sz = box
        pts = pts[~(np.abs(pts - c) <= sz / 2).all(1)]
        origin, pts = T_ge[:3, :3] @ origin + T_ge[:3, 3], pts @ T_ge[:3, :3].T + T_ge[:3, 3]
        out.append((token, ray_counts(labels[token] != free, grid, origin, pts)))
    return out


def score_labelled(
    rec: Any, root: Any, scene_infos: dict[str, Any], scenes: list[str], grid: Any, free: int
) -> dict[str, Any]:
    """The ray figures of labels in an Occ3D-layout folder ``root`` (``scene_infos[scene][token]``:
    each keyframe's ``gt_path``, as ``annotations.json`` holds them) against the recording ``rec``'s
    keyframe sweeps: the figures over every keyframe of ``scenes``, and each keyframe's."""
    from pathlib import Path

    import torch

    from occkit.fileio import load_npz

    total = RayCounts()
    rows = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the walk is a loop of small tensor ops: intra-op threads cost more than they give
    try:
        for s in scenes:
            infos = scene_infos.get(s) or {}
            labels = {t: load_npz(Path(root) / i["gt_path"], ("semantics",))["semantics"] for t, i in infos.items()}
            for token, c in score_rays(rec.read_scene(s), labels, grid, free):
                total.add(c)
                rows.append({"scene": s, "token": token, **c.figures()})
    finally:
        torch.set_num_threads(threads)
    return {**total.figures(), "keyframes": len(rows), "per_keyframe": rows}


def score_output(
    rec: Any, part: Any, done: dict[str, Any], scenes: list[str], target: Any, truth: Any = None
) -> dict[str, Any]:
    """The ray figures of ``occkit label``'s output in any layout (``target``, a
    :class:`~occkit.labelgen.output.LabelTarget`): each keyframe's labels read back through the output format's
    reader, as ``occkit eval`` reads them (``done[scene]["infos"]``: the run's records), on the format's grid in
    its frame (a LiDAR-frame layout's grid placed by the keyframe LiDAR's extrinsic), a voxel occupied where it
    holds a class (neither free nor the format's ignored value). ``rays``: the figures over the keyframes of
    ``scenes`` and each keyframe's; with ``truth`` (``(scene, token) -> (X, Y, Z)`` the exact semantics on the
    output's grid, in its classes), ``rays_exact``: the same rays through the exact occupancy."""
    import torch

    from occkit.formats import get_format
    from occkit.labelgen.output import T_ego_from_grid

    fmt = get_format(target.format)
    table = fmt.classes
    ds = fmt.open_split(part, "all", load_images=False)
    writer = fmt.writers.label_writer
    at = {
        ds.frames[i].token if not isinstance(ds.frames[i], tuple) else "/".join(ds.frames[i]): i for i in range(len(ds))
    }
    total, exact = RayCounts(), RayCounts()
    n_exact = 0
    rows = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the walk is a loop of small tensor ops: intra-op threads cost more than they give
    try:
        for s in scenes:
            scene = rec.read_scene(s)
            T = T_ego_from_grid(scene, target)
            labels, exact_labels = {}, {}
            for token, info in done[s]["infos"].items():
                if info["token"] not in at:
                    raise ValueError(
                        f"{part}: {fmt.name} does not list the keyframe {info['token']} occkit label wrote"
                    )
                sem = writer.read(ds, at[info["token"]], {}).semantics
                labels[token] = np.where(sem == table.ignore, table.free, sem) if table.ignore is not None else sem
                if truth is not None:
                    exact_labels[token] = truth(s, token)
            for token, c in score_rays(scene, labels, target.grid, table.free, T):
                total.add(c)
                rows.append({"scene": s, "token": token, **c.figures()})
            for _, c in score_rays(scene, exact_labels, target.grid, table.free, T):
                exact.add(c)
                n_exact += 1
    finally:
        torch.set_num_threads(threads)
    out = {"rays": {**total.figures(), "keyframes": len(rows), "per_keyframe": rows}}
    if truth is not None:
        out["rays_exact"] = {**exact.figures(), "keyframes": n_exact}
    return out
