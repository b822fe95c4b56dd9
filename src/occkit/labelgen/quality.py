"""Labels scored against the synthetic world's exact occupancy (``occkit label --quality``).

Per keyframe, with ``truth`` the exact semantics (every voxel any primitive or the ground fills,
the inside of walls included) and ``label`` the labels made from the sweeps:

- **occupied IoU, precision, recall**, overall and inside the **observable region**: the voxels a
  ray from some true sensor origin of the keyframe's sweeps reaches, up to and including the first
  truly occupied voxel (rays aimed at every exposed face of the truth, as Occ3D's camera rays are).
  No LiDAR pipeline sees inside a wall; the observable figures do not punish it for physics.
- **semantic mIoU inside the truth's camera mask**: Occ3D's official mIoU
  (:class:`occkit.metrics.occ3d.Occ3DMetric`), the labels as the prediction;
- **RayIoU**: the labels as a prediction, SparseOcc's rays from the keyframes' LiDAR origins
  (:func:`occkit.metrics.rayiou.cast_rays`);
- **false-free rate**: observable voxels truly occupied that the label leaves free, over the
  observable truly occupied voxels (the dangerous error: a planner drives into them);
- **trail voxels**: label-occupied voxels inside the boxes (grown by 0.4 m) that a moving object
  filled at the neighbouring keyframes and no longer fills, more than one voxel from any truly
  occupied voxel (a surface voxelised one voxel off is not a trail);
- **moving-object IoU**: per moving object at the keyframe that some origin saw (an observable
  voxel of it), the IoU of the voxels of a class that is not the ground, inside its box grown by
  0.4 m, averaged over the objects;
- **mask agreement**: IoU of the label's ``mask_camera`` / ``mask_lidar`` with the exact masks.

Counts are summed over keyframes before the ratios are taken (as Occ3D's confusion matrix is).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from occkit.geometry.grid import Grid
from occkit.geometry.raycast import mark_visible
from occkit.geometry.visibility import exposed_faces

#: Occ3D-nuScenes' classes of things that move (the trail and moving-object figures use boxes).
BOX_GROW = 0.4


@dataclass
class Truth:
    """One keyframe's truth: ``semantics (X, Y, Z)`` exact, ``mask_camera``/``mask_lidar``,
    ``origins (K, 3)`` true sensor origins in the keyframe's ego frame, ``moving`` boxes at the
    keyframe (ego frame: centre (3,), size (3,), yaw) and ``moving_before`` (the moving objects'
    boxes at the neighbouring keyframes, in this keyframe's ego frame)."""

    semantics: np.ndarray
    mask_camera: np.ndarray
    mask_lidar: np.ndarray
    origins: np.ndarray
    moving: list[tuple[np.ndarray, np.ndarray, float]] = field(default_factory=list)
    moving_nearby: list[tuple[np.ndarray, np.ndarray, float]] = field(default_factory=list)


def observable_region(truth_occupied: np.ndarray, origins: np.ndarray, grid: Grid) -> np.ndarray:
    """``(X, Y, Z)`` bool: voxels a ray from one of ``origins (K, 3)`` (grid frame) reaches, up to
    and including the first occupied voxel, aiming at every exposed face of ``truth_occupied``
    (just inside the face that looks most towards the origin, as
    :func:`occkit.geometry.visibility.voxel_center_rays` aims)."""
    occ = torch.from_numpy(truth_occupied)
    faces = exposed_faces(occ)
    idx = faces.any(-1).nonzero()
    centres = grid.index_to_point(idx, dtype=torch.float64)
    normals = torch.tensor(((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)), dtype=torch.float64)
    vs = torch.tensor(grid.voxel_size, dtype=torch.float64)
    out = torch.zeros(grid.shape, dtype=torch.bool)
    open_faces = faces[idx[:, 0], idx[:, 1], idx[:, 2]]
    for o in np.asarray(origins, np.float64):
        ot = torch.from_numpy(o)
        facing = (ot - centres) @ normals.T
        facing[~open_faces] = -float("inf")
        best = normals[facing.argmax(-1)]
        targets = centres + 0.45 * best * vs
        d = targets - ot
        d = d / d.norm(dim=-1, keepdim=True)
        for i in range(0, len(d), 200_000):
            dd = d[i : i + 200_000]
            mark_visible(ot.expand_as(dd).contiguous(), dd, grid, occupied=occ, out=out)
    return out.numpy()


def _box_region(
    grid: Grid, centres: np.ndarray, boxes: list[tuple[np.ndarray, np.ndarray, float]], grow: float
) -> np.ndarray:
    from occkit.labelgen.steps import in_box, to_box_frame

    out = np.zeros(len(centres), bool)
    for c, size, yaw in boxes:
        r = np.linalg.norm(size[:2]) / 2 + grow  # x and y apart: numpy's max over an axis of 2 was 10x slower
        near = (np.abs(centres[:, 0] - c[0]) <= r) & (np.abs(centres[:, 1] - c[1]) <= r)
        if near.any():
            q = to_box_frame(centres[near], c, yaw)
            out[np.nonzero(near)[0][in_box(q, size, grow)]] = True
    return out.reshape(grid.shape)


class QualityAccumulator:
    """Sums a label run's counts over keyframes; :meth:`compute` gives the figures (percent)."""

    def __init__(
        self,
        grid: Grid,
        num_classes: int,
        free: int,
        class_names: tuple[str, ...],
        ground: tuple[str, ...] = ("driveable_surface", "other_flat", "sidewalk", "terrain"),
    ) -> None:
        from occkit.metrics.occ3d import Occ3DMetric

        self.grid, self.C, self.free = grid, num_classes, free
        self.ground = np.array([i for i, n in enumerate(class_names) if n in ground], np.int64)
        # Occ3D's formula on the output's own table (its free class anywhere: SemanticKITTI's is 0), one figure
        # for every --to; the scoring core gives each format's own metric instead (SSC for SemanticKITTI), and
        # Occ3D's format scores only tables whose free class is the last
        self.miou = Occ3DMetric(mask="camera", num_classes=num_classes, class_names=class_names, free=free)
        self.c: dict[str, float] = {}
        self.obj_iou: list[float] = []
        self.ray = None
        self._ray_order = [c for c in range(num_classes) if c != free] + [free]
        self.frames = 0

    def _add(self, key: str, v: float) -> None:
        self.c[key] = self.c.get(key, 0.0) + float(v)

    def update(self, label: dict[str, np.ndarray], truth: Truth) -> np.ndarray:
        """Add a keyframe (``label``: ``semantics`` and the masks its layout keeps, ``mask_camera``,
        ``mask_lidar``); returns its observable region ``(X, Y, Z)`` bool."""
        g = truth.semantics != self.free
        p = label["semantics"] != self.free
        obs = observable_region(g, truth.origins, self.grid)
        for tag, region in (("all", None), ("obs", obs)):
            gg, pp = (g, p) if region is None else (g & region, p & region)
            self._add(f"tp_{tag}", (gg & pp).sum())
            self._add(f"fp_{tag}", (~gg & pp).sum())
            self._add(f"fn_{tag}", (gg & ~pp).sum())
        self.miou.update(
            torch.from_numpy(label["semantics"].astype(np.int64))[None],
            torch.from_numpy(truth.semantics.astype(np.int64))[None],
            mask_camera=torch.from_numpy(truth.mask_camera.astype(bool))[None],
        )
        for m in ("mask_camera", "mask_lidar"):
            if m not in label:  # a layout that keeps no such mask (OpenOccupancy, SurroundOcc): no agreement
                continue
            a, b = label[m].astype(bool), getattr(truth, m).astype(bool)
            self._add(f"{m}_and", (a & b).sum())
            self._add(f"{m}_or", (a | b).sum())
        centres = self.grid.centers(dtype=torch.float64).reshape(-1, 3).numpy()
        trail_region = _box_region(self.grid, centres, truth.moving_nearby, BOX_GROW) & ~_box_region(
            self.grid, centres, truth.moving, BOX_GROW
        )
        from scipy.ndimage import binary_dilation

        near_truth = binary_dilation(g, structure=np.ones((3, 3, 3), bool))
        self._add("trail", (p & ~near_truth & trail_region).sum())
        # the static scene: the observable region away from every moving object's box at the keyframe and its
        # neighbours (what finding moving objects must not cost)
        static = obs & ~_box_region(self.grid, centres, [*truth.moving_nearby, *truth.moving], BOX_GROW).reshape(
            obs.shape
        )
        self._add("tp_static", (g & p & static).sum())
        self._add("fp_static", (~g & p & static).sum())
        self._add("fn_static", (g & ~p & static).sum())
        g_obj = g & ~np.isin(truth.semantics, self.ground)
        p_obj = p & ~np.isin(label["semantics"], self.ground)
        for box in truth.moving:
            r = _box_region(self.grid, centres, [box], BOX_GROW)
            if not (g_obj & r & obs).any():
                continue  # no origin saw it
            inter, union = (p_obj & g_obj & r).sum(), ((p_obj | g_obj) & r).sum()
            self.obj_iou.append(float(inter) / float(union))
        self._rayiou(label["semantics"], truth)
        self.frames += 1
        return obs

    def _rayiou(self, pred: np.ndarray, truth: Truth) -> None:
        from occkit.metrics.rayiou import cast_rays, lidar_ray_directions, rayiou_counts

        o = np.asarray(truth.origins, np.float64).reshape(-1, 3)
        # rays start inside the grid (SparseOcc keeps the origins within its range): a LiDAR-frame grid may
        # have the LiDAR on its face (SemanticKITTI's starts at x = 0) and the other sweeps' origins outside
        lo, hi = np.asarray(self.grid.range_min), np.asarray(self.grid.range_max)
        o = np.where(np.abs(o - lo) < 1e-6, lo + 1e-6, o)
        o = torch.from_numpy(o[((o >= lo) & (o < hi)).all(1)])
        if not len(o):
            return
        d = lidar_ray_directions()
        origins = o[:, None].expand(-1, d.shape[0], 3).reshape(-1, 3).contiguous()
        dirs = d[None].expand(o.shape[0], -1, 3).reshape(-1, 3).contiguous()
        # RayIoU takes the free class last (Occ3D's ids): a table whose free id is another (0: the
        # nuScenes-occupancy and KITTI layouts) is renumbered, its occupied classes in order, free last
        lut = np.arange(256, dtype=np.int64)
        lut[self._ray_order] = np.arange(self.C)
        vols = torch.stack(
            [torch.from_numpy(lut[truth.semantics.astype(np.int64)]), torch.from_numpy(lut[pred.astype(np.int64)])]
        )[:, None]  # (2, 1, X, Y, Z)
        frame = torch.zeros(origins.shape[0], dtype=torch.long)
        labels, depth = cast_rays(vols, frame, origins, dirs, self.grid, free=self.C - 1)
        gt_c, pr_c, tp = rayiou_counts(labels[1], depth[1], labels[0], depth[0], num_classes=self.C)
        if self.ray is None:
            self.ray = [gt_c, pr_c, tp]
        else:
            self.ray = [a + b for a, b in zip(self.ray, (gt_c, pr_c, tp))]

    def compute(self) -> dict[str, Any]:
        c = self.c

        def ratio(a: float, b: float) -> float:
            return round(100.0 * a / b, 2) if b else float("nan")

        out: dict[str, Any] = {"keyframes": self.frames}
        for tag, name in (("all", "overall"), ("obs", "observable")):
            tp, fp, fn = c.get(f"tp_{tag}", 0), c.get(f"fp_{tag}", 0), c.get(f"fn_{tag}", 0)
            out[f"occupied_iou_{name}"] = ratio(tp, tp + fp + fn)
            out[f"precision_{name}"] = ratio(tp, tp + fp)
            out[f"recall_{name}"] = ratio(tp, tp + fn)
        tp, fp, fn = c.get("tp_static", 0), c.get("fp_static", 0), c.get("fn_static", 0)
        out["occupied_iou_static_observable"] = ratio(tp, tp + fp + fn)
        tp, fn = c.get("tp_obs", 0), c.get("fn_obs", 0)
        out["false_free_rate"] = ratio(fn, tp + fn)
        out["semantic_miou_camera_mask"] = round(float(self.miou.compute()["miou"]), 2)
        if self.ray is not None:
            from occkit.metrics.rayiou import rayiou_scores

            names = tuple(self.miou.class_names[c] for c in self._ray_order)
            out["rayiou"] = round(float(rayiou_scores(*self.ray, class_names=names)["rayiou"]), 2)
        out["trail_voxels_per_keyframe"] = round(c.get("trail", 0) / max(self.frames, 1), 1)
        out["moving_object_iou"] = round(100.0 * float(np.mean(self.obj_iou)), 2) if self.obj_iou else float("nan")
        out["moving_objects"] = len(self.obj_iou)
        for m in ("mask_camera", "mask_lidar"):
            out[f"{m}_agreement_iou"] = ratio(c.get(f"{m}_and", 0), c.get(f"{m}_or", 0))
        return out
