"""``occkit label``'s pipeline: one :class:`~occkit.data.scene_record.SceneRecord` in, one label per
keyframe out (docs/labels.md, "What each option does").

Per scene, in a local frame (:func:`local_record`: the world frame moved to a whole-metre point near the
first ego pose, in float64, before anything else, so that the float32 arrays below keep a millimetre at any
offset of the world frame, UTM's or ECEF's included):

1. every sweep's returns into the world (``T_global_from_ego @ T_ego_from_lidar``), the ego vehicle's
   own returns dropped (its box grown by ``ego_margin``);
2. split by the sweep's boxes grown by ``box_margin``: a point in a box joins that box's track, in
   the box's own frame (so a car that drives is accumulated where it is, never smeared along its
   path); the rest is the static scene, in the world frame;
3. a class for every unlabelled point: static points by a ``knn`` vote of the labelled static points
   within ``knn_max_dist``; a track's points by its own labelled points, else the box's class;
   with no labels at all, class ``others`` (geometry only);

then per keyframe:

4. the static points of the sweeps within ``window`` keyframes (0: the whole scene) and every
   track placed at its box at the keyframe, into the keyframe's ego frame; voxelised on the grid by
   vote (:func:`occkit.labelgen.steps.vote_voxels`'s, :func:`~occkit.labelgen.steps.vote_flat`); with
   ``object_fill`` each track's hull too (its points over the whole track, in its box frame), cut to its box,
   every voxel it reaches but those where the keyframe's own rays crossed it (``object_fill_voxels``);
5. every return of the sweeps within ``free_window`` keyframes cast from its sweep's origin
   (:mod:`occkit.labelgen.raycast`): static voxels more sweeps saw through than hit are trails and
   become free (``erase_trails``); ground columns left empty between LiDAR rings are filled from
   their neighbours (``ground_fill`` voxels);
6. ``mask_lidar``: the voxels the keyframe's own rays traverse up to their return (Occ3D;
   :func:`occkit.geometry.visibility.lidar_visibility`, the world's own masks' walk);
   ``mask_camera``: the voxels camera rays reach up to the first occupied voxel (Occ3D), none
   without cameras;
7. optionally ``flow``: each voxel placed from a track takes its box's velocity (ego frame, m/s;
   OpenOcc v2's field).
"""

from __future__ import annotations

import math
import time
import tracemalloc
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from occkit.data.scene_record import Boxes, SceneRecord, check_record
from occkit.geometry.grid import Grid
from occkit.geometry.visibility import lidar_visibility
from occkit.labelgen.densify import TSDFDensify
from occkit.labelgen.find_moving import MovingSearch
from occkit.labelgen.raycast import SweepCaster
from occkit.labelgen.refine_boxes import BoxRefinement
from occkit.labelgen.refine_poses import PoseRefinement
from occkit.labelgen.steps import (
    Hull,
    assign_to_boxes,
    clip_hull,
    ego_points,
    erase_trails,
    fill_ground,
    from_box_frame,
    grid_index,
    ground_window,
    hull_crossings,
    hull_voxels,
    in_box,
    knn_vote,
    object_hull,
    to_box_frame,
    vote_flat,
)

OBJECT_FILL_VOXELS = ("centre", "carved", "crossed", "reached")
"""``object_fill_voxels``' values (:class:`LabelOptions`)."""


@dataclass(frozen=True)
class LabelOptions:
    """The pipeline's options (``occkit label --set KEY=VALUE``); the released pipelines' values
    where they have one are said per field."""

    window: int = 0
    """Keyframes on each side whose sweeps build a keyframe's static scene; 0 = the whole scene
    (SurroundOcc and Occ3D aggregate the whole scene)."""
    free_window: int = 1
    """Keyframes on each side whose sweeps are cast for free space and trails."""
    keyframe_only: bool = False
    """Use each keyframe's own sweep alone (no aggregation): the naive labels."""
    box_margin: float = 0.2
    """Metres added to every side of a box when taking its points (SurroundOcc grows boxes by 10 %
    and lowers them 0.1 m)."""
    ego_margin: float = 0.2
    """Metres added to every side of the ego vehicle's box when dropping its own returns."""
    knn: int = 5
    """Neighbours in the vote for an unlabelled point's class (SurroundOcc: 1, its chamfer nearest
    neighbour)."""
    knn_max_dist: float = 1.0
    """Metres: labelled points farther than this do not vote."""
    relabel_k: int = 5
    """Before the vote, every labelled static point takes the majority class of its ``relabel_k``
    nearest labelled points (itself among them) within :attr:`knn_max_dist`: noisy point labels
    (segmentation errors) smoothed; 0 or 1 = off (the released pipelines keep the labels as given).
    On the synthetic world (docs/labels.md, "Quality"): with 10 % of point labels flipped, mIoU
    34.3 -> 52.3; with clean labels 57.7 -> 57.5."""
    min_points: int = 1
    """Points a voxel needs to be occupied."""
    ground_fill: int = 25
    """Voxels: an empty column within this distance of a ground column is filled (0 = off); only
    columns some ray looked into are (LiDAR rays that carry on above them, or camera rays that cross the
    height the ground is placed at: a column no sensor saw stays empty)."""
    ground_classes: tuple[str, ...] = (
        "driveable_surface",
        "other_flat",
        "sidewalk",
        "terrain",
        "road",
        "parking",
        "other-ground",
    )
    """Class names that are the ground (what :attr:`ground_fill` fills): Occ3D's and SemanticKITTI's."""
    erase_trails: bool = True
    """Static voxels hit by at most :attr:`trail_max_hits` sweeps and seen through by at least
    :attr:`trail_ratio` times as many become free."""
    trail_ratio: float = 2.0
    trail_max_hits: int = 2
    carve_rel: float = 0.15
    """The last fraction of each ray before its return is not carved (grazing rays, see
    :mod:`occkit.labelgen.raycast`)."""
    carve_abs: float = 0.2
    """And these metres more."""
    camera_mask: bool = True
    """Cast camera rays for ``mask_camera`` (needs cameras in the rig)."""
    camera_stride: int = 0
    """Pixel stride of the camera rays (0: adaptive, as the synthetic world's exact mask)."""
    flow: bool = False
    """Per-voxel flow from the box tracks (OpenOcc v2's field)."""
    object_fill: bool = True
    """Fill each boxed object's solid: the convex hull of its points of its own class (the majority of its points
    that are not the ground), gathered over its whole track in its box frame, placed at its box at the keyframe;
    the voxels ``object_fill_voxels`` names take that class, as a voxel a return falls in does. LiDAR sees an
    object's near side only; the hull closes it. On by default since 0.2.0 (``crossed``): it lifts mIoU and RayIoU
    on every world measured, on Occ3D's grid and SurroundOcc's, and puts the moving objects' IoU at or above
    SurroundOcc's generator's (docs/results/labels.md, "Moving objects"); ``--set object_fill=false`` turns it off."""
    object_fill_voxels: str = "crossed"
    """Which voxels the fill takes (:data:`OBJECT_FILL_VOXELS`): ``crossed``, every voxel the hull cut to the
    object's box reaches but those where a ray of the keyframe's own sweep crossed the cut hull itself;
    ``carved``, every voxel the cut hull reaches but those the keyframe's own sweep saw through anywhere;
    ``centre``, the voxels whose centre the cut hull holds; ``reached``, every voxel the uncut hull reaches (the
    first fill: on Occ3D's grid it spills beyond the box and costs mIoU)."""
    refine_poses: PoseRefinement = field(default_factory=PoseRefinement)
    """Refine the recorded ego poses by LiDAR registration before anything else (``occkit label
    --refine-poses``; :mod:`occkit.labelgen.refine_poses`): KISS-ICP odometry fused with the recorded poses in a
    pose graph; its settings ``--set refine_poses.KEY=VALUE``."""
    refine_boxes: BoxRefinement = field(default_factory=BoxRefinement)
    """Smooth every track's boxes along time before the points are split (``occkit label --refine-boxes``;
    :mod:`occkit.labelgen.refine_boxes`): a constant-velocity and turn-rate model, Rauch-Tung-Striebel smoother;
    its settings ``--set refine_boxes.KEY=VALUE``."""
    densify: TSDFDensify = field(default_factory=TSDFDensify)
    """Non-ground surfaces between the LiDAR's rings filled by a TSDF along the rays and marching cubes (``occkit
    label --densify tsdf``; :mod:`occkit.labelgen.densify`); its settings ``--set densify.KEY=VALUE``."""
    find_moving: MovingSearch = field(default_factory=MovingSearch)
    """Find moving returns from the sweeps themselves (``occkit label --find-moving``;
    :mod:`occkit.labelgen.find_moving`): returns other sweeps' rays pass through are kept out of the static scene,
    each sweep's clusters of them boxed as that sweep's objects; its settings ``--set find_moving.KEY=VALUE``."""

    def __post_init__(self) -> None:
        for name in (
            "window",
            "free_window",
            "knn",
            "relabel_k",
            "min_points",
            "ground_fill",
            "trail_max_hits",
            "camera_stride",
        ):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < (1 if name in ("knn", "min_points") else 0):
                raise ValueError(
                    f"label option {name} must be an integer >= {1 if name in ('knn', 'min_points') else 0}, got {v!r}"
                )
        for name in ("box_margin", "ego_margin", "knn_max_dist", "trail_ratio", "carve_abs"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0):
                raise ValueError(f"label option {name} must be a finite number >= 0, got {v!r}")
        self._nested_settings()
        v = self.carve_rel
        if not (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1):
            raise ValueError(f"label option carve_rel must be a number in [0, 1), got {v!r}")
        for name in (
            "keyframe_only",
            "erase_trails",
            "camera_mask",
            "flow",
            "object_fill",
        ):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"label option {name} must be true or false, got {getattr(self, name)!r}")
        if self.object_fill_voxels not in OBJECT_FILL_VOXELS:
            raise ValueError(
                f"label option object_fill_voxels must be one of {', '.join(OBJECT_FILL_VOXELS)}, "
                f"got {self.object_fill_voxels!r}"
            )
        g = self.ground_classes
        if not (isinstance(g, (tuple, list)) and all(isinstance(n, str) for n in g)):
            raise ValueError(f"label option ground_classes must be a list of class names, got {g!r}")
        object.__setattr__(self, "ground_classes", tuple(g))

    def _nested_settings(self) -> None:
        """The four options that mend an imperfect recording, each its settings dataclass; ``True`` / ``False``
        (``LabelOptions(find_moving=True)``) and densify's ``"tsdf"`` / ``"none"`` are taken as its switch."""
        for name, kind, switch in (
            ("refine_poses", PoseRefinement, "enabled"),
            ("refine_boxes", BoxRefinement, "enabled"),
            ("find_moving", MovingSearch, "enabled"),
            ("densify", TSDFDensify, "method"),
        ):
            v = getattr(self, name)
            if isinstance(v, bool) and switch == "enabled" or isinstance(v, str) and switch == "method":
                v = kind(**{switch: v})
            elif isinstance(v, dict):
                v = kind(**v)
            if not isinstance(v, kind):
                raise ValueError(f"label option {name} must be its settings ({kind.__name__}), got {v!r}")
            object.__setattr__(self, name, v)
        if self.densify.method not in ("none", "tsdf"):
            raise ValueError(f"label option densify.method must be 'none' or 'tsdf', got {self.densify.method!r}")
        for name in ("refine_poses", "refine_boxes", "find_moving"):
            if not isinstance(getattr(self, name).enabled, bool):
                raise ValueError(
                    f"label option {name}.enabled must be true or false, got {getattr(self, name).enabled!r}"
                )

    @staticmethod
    def keys() -> tuple[str, ...]:
        return tuple(f.name for f in fields(LabelOptions))


@dataclass
class KeyframeLabel:
    """One keyframe's label: ``semantics (X, Y, Z)`` uint8 (``free`` where empty), ``mask_lidar``
    and ``mask_camera`` uint8 0/1, optional ``flow (X, Y, Z, 2)`` float32; ``track (X, Y, Z)`` int64
    the track each voxel was placed from (-1 none)."""

    token: str
    semantics: np.ndarray
    mask_lidar: np.ndarray
    mask_camera: np.ndarray
    track: np.ndarray
    flow: np.ndarray | None = None
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Prepared:
    static_pts: np.ndarray  # (P, 3) float32, every sweep's static points in the world, in sweep order
    static_lab: np.ndarray  # (P,) int16 class ids, -1 where no class could be given
    static_start: np.ndarray  # (S + 1,) where each sweep's static points start in static_pts
    track_pts: dict[int, np.ndarray]  # box frame
    track_lab: dict[int, np.ndarray]
    origins: list[np.ndarray]  # per sweep, world
    all_pts: list[np.ndarray]  # per sweep, every return but the ego's (world), for the casting
    track_hull: dict[int, tuple[Hull, int]] = field(default_factory=dict)  # object_fill: each track's hull, class


class Timer:
    """Seconds per stage, summed."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._t
        self._t = now


@dataclass
class _Aggregated:
    """Steps 1-2 over a scene: each sweep's returns in the world, split into the static scene and the tracks."""

    static_pts: list[np.ndarray] = field(default_factory=list)  # per sweep, world
    static_lab: list[np.ndarray] = field(default_factory=list)  # per sweep, -1 unlabelled
    track_pts: dict[int, list[np.ndarray]] = field(default_factory=dict)  # per track, its box's frame
    track_lab: dict[int, list[np.ndarray]] = field(default_factory=dict)
    track_cls: dict[int, int] = field(default_factory=dict)  # per track, its box's class
    origins: list[np.ndarray] = field(default_factory=list)  # per sweep, world
    all_pts: list[np.ndarray] = field(default_factory=list)  # per sweep, every return but the ego's (world)


def prepare_scene(
    rec: SceneRecord, opt: LabelOptions, free: int, timer: Timer, ground: tuple[int, ...] = ()
) -> _Prepared:
    """Steps 1-3 over a whole scene (and with ``object_fill`` each track's hull, ``ground`` the classes left out
    of it)."""
    agg = _Aggregated()
    for s in rec.sweeps:
        _aggregate_sweep(rec, s, opt, agg)
    timer.lap("aggregate")
    start = np.concatenate([[0], np.cumsum([len(p) for p in agg.static_pts])]).astype(np.int64)
    s_pts = np.concatenate(agg.static_pts).astype(np.float32) if agg.static_pts else np.zeros((0, 3), np.float32)
    s_lab = np.concatenate(agg.static_lab).astype(np.int16) if agg.static_lab else np.zeros(0, np.int16)
    agg.static_pts.clear()
    agg.static_lab.clear()
    _static_semantics(s_pts, s_lab, opt, free)
    track_pts, track_lab = _track_semantics(agg, opt, free)
    timer.lap("semantics")
    hulls = _track_hulls(track_pts, track_lab, ground) if opt.object_fill else {}
    if opt.object_fill:
        timer.lap("object_fill")
    return _Prepared(s_pts, s_lab, start, track_pts, track_lab, agg.origins, agg.all_pts, hulls)


def _track_hulls(
    track_pts: dict[int, np.ndarray], track_lab: dict[int, np.ndarray], ground: tuple[int, ...]
) -> dict[int, tuple[Hull, int]]:
    """``object_fill``: each track's class (the majority of its points that are not the ground) and the hull
    (:func:`~occkit.labelgen.steps.object_hull`) of its points of that class; a track whose points span no volume
    has none."""
    out: dict[int, tuple[Hull, int]] = {}
    for tr, q in track_pts.items():
        lab = track_lab[tr]
        solid = ~np.isin(lab, ground)
        if solid.sum() < 4:
            continue
        cls = int(np.bincount(lab[solid].astype(np.int64)).argmax())
        hull = object_hull(q[lab == cls])  # the object's own class: stray returns in the grown box left out
        if hull is not None:
            out[tr] = (hull, cls)
    return out


def _aggregate_sweep(rec: SceneRecord, s: Any, opt: LabelOptions, agg: _Aggregated) -> None:
    """Steps 1-2 for one sweep: its returns into the world, the ego's own dropped, split by its boxes."""
    T_el = rec.lidars[s.sensor]
    p_ego = s.points.astype(np.float64) @ T_el[:3, :3].T + T_el[:3, 3]
    keep = ~ego_points(p_ego, rec.ego_size, rec.ego_center, opt.ego_margin)
    p_ego = p_ego[keep]
    T = s.T_global_from_ego
    pw = p_ego @ T[:3, :3].T + T[:3, 3]
    lab = s.labels[keep] if s.labels is not None else np.full(len(pw), -1, np.int64)
    agg.origins.append((T @ T_el)[:3, 3])
    agg.all_pts.append(pw)
    box_of = assign_to_boxes(pw, s.boxes, opt.box_margin) if s.boxes is not None else np.full(len(pw), -1)
    st = box_of < 0
    agg.static_pts.append(pw[st])
    agg.static_lab.append(lab[st])
    if s.boxes is None or st.all():
        return
    b = s.boxes
    for k in np.unique(box_of[~st]).tolist():
        m = box_of == k
        tr = int(b.track[k])
        agg.track_pts.setdefault(tr, []).append(to_box_frame(pw[m], b.center[k], float(b.yaw[k])))
        agg.track_lab.setdefault(tr, []).append(lab[m])
        agg.track_cls[tr] = int(b.cls[k])


def _static_semantics(s_pts: np.ndarray, s_lab: np.ndarray, opt: LabelOptions, free: int) -> None:
    """Step 3 for the static scene, in place: the given labels smoothed by their labelled neighbours
    (``relabel_k``), then a class for every unlabelled point by one query of the labelled ones (-1 where
    none is near: dropped from the vote, its ray still carves); no labels at all: class 0 ('others')."""
    known = s_lab >= 0
    if not known.any():
        s_lab[:] = 0
        return
    from scipy.spatial import cKDTree

    pts = s_pts[known]
    tree = cKDTree(pts)  # one tree of the labelled points for both votes
    if opt.relabel_k > 1:
        s_lab[known] = knn_vote(pts, s_lab[known], pts, opt.relabel_k, opt.knn_max_dist, free, tree=tree)
    q = ~known
    if q.any():
        s_lab[q] = knn_vote(pts, s_lab[known], s_pts[q], opt.knn, opt.knn_max_dist, free, tree=tree)


def _track_semantics(
    agg: _Aggregated, opt: LabelOptions, free: int
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Step 3 for each track: its unlabelled points voted by its own labelled points, else its box's class."""
    track_pts: dict[int, np.ndarray] = {}
    track_lab: dict[int, np.ndarray] = {}
    for tr, parts in agg.track_pts.items():
        pts = np.concatenate(parts)
        lab = np.concatenate(agg.track_lab[tr])
        known = lab >= 0
        if known.any() and (~known).any():
            v = knn_vote(pts[known], lab[known], pts[~known], opt.knn, opt.knn_max_dist, free)
            lab = lab.copy()
            lab[~known] = np.where(v >= 0, v, agg.track_cls[tr])
        elif not known.any():
            lab = np.full(len(pts), agg.track_cls[tr], np.int64)
        track_pts[tr], track_lab[tr] = pts, lab
    return track_pts, track_lab


#: Decimals (metres) the local frame's translations and box centres are taken to: a micrometre, the rig
#: folder's own precision (docs/labels.md, "The rig folder"), far below a voxel and a float32 step.
LOCAL_DECIMALS = 6


def local_record(rec: SceneRecord) -> tuple[SceneRecord, np.ndarray]:
    """``rec`` with its world frame moved to a local origin, and that origin ``(3,)`` float64 (metres, in the
    recording's world frame): the first sweep's ego position rounded to the metre. Every ego pose's
    translation and every box centre has the origin taken off in float64; rotations, yaws, points and the
    rig are unchanged.

    Why a local frame and not float64 everywhere: a georeferenced recording's world frame (UTM, some 5e6 m
    north; ECEF, 6.4e6 m from the Earth's centre) leaves float32 steps of 0.5 m, more than a voxel, and the
    aggregated points, the ray casting and the densification hold float32 for speed and memory (the static
    points are the run's largest array). Moved next to the scene, they hold 1 mm 10 km out; each stage stays
    as fast as it was and none has to be written with the offset in mind. The origin is a whole metre, so
    taking it off is exact in float64; the local values are then taken to :data:`LOCAL_DECIMALS`, which also
    takes off the float64 rounding of the offset itself (a billionth of a metre at 5e6 m): the labels are the
    same, bit for bit, whatever constant offset the world frame has."""
    origin = np.round(np.asarray(rec.sweeps[0].T_global_from_ego, np.float64)[:3, 3]) + 0.0  # no -0.0
    sweeps = []
    for s in rec.sweeps:
        T = np.array(s.T_global_from_ego, dtype=np.float64)
        T[:3, 3] = np.round(T[:3, 3] - origin, LOCAL_DECIMALS)
        boxes = s.boxes
        if boxes is not None:
            center = np.round(np.asarray(boxes.center, np.float64).reshape(-1, 3) - origin, LOCAL_DECIMALS)
            boxes = replace(boxes, center=center)
        sweeps.append(replace(s, T_global_from_ego=T, boxes=boxes))
    return replace(rec, sweeps=sweeps), origin


def _to_frame(T_frame_from_global: np.ndarray, p: np.ndarray) -> np.ndarray:
    return p @ T_frame_from_global[:3, :3].T + T_frame_from_global[:3, 3]


def _inv(T: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = T[:3, :3].T
    out[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return out


@dataclass
class _InGrid:
    """Points in a keyframe's grid: ``flat (N,)`` each one's voxel (-1: outside the grid, or no class),
    ``labels (N,)`` their classes, ``points`` how many lie in the grid's box with a class, ``track`` whose."""

    flat: np.ndarray
    labels: np.ndarray
    points: int
    track: int = -1


def _densified(
    prep: _Prepared,
    win: range,
    T_eg: np.ndarray,
    static: _InGrid,
    grid: Grid,
    ground: tuple[int, ...],
    free: int,
    settings: TSDFDensify | None = None,
) -> _InGrid:
    """``--densify tsdf``: ``static`` with the surface points between the rings that the window's static
    returns give (:func:`occkit.labelgen.densify.densify_points`, grid frame), by voxel."""
    from occkit.labelgen.densify import densify_points

    sl = slice(int(prep.static_start[win.start]), int(prep.static_start[win.stop]))
    p = _to_frame(T_eg.astype(np.float32), prep.static_pts[sl])  # as _static_in_grid placed them
    keep = static.flat >= 0  # in the grid, with a class
    counts = np.diff(prep.static_start[win.start : win.stop + 1])
    segment = np.repeat(np.arange(len(win)), counts)[keep]
    origins = _to_frame(T_eg, np.stack([prep.origins[i] for i in win]))
    labels = static.labels[keep].astype(np.int64)
    pts, labs = densify_points(origins, p[keep], segment, labels, grid, ground, free, settings)
    flat, n = grid_index(pts.astype(np.float32), grid, labs)
    labels = np.concatenate([static.labels, labs.astype(static.labels.dtype)])
    return _InGrid(np.concatenate([static.flat, flat]), labels, static.points + n)


def label_keyframe(
    rec: SceneRecord,
    prep: _Prepared,
    k: int,
    grid: Grid,
    opt: LabelOptions,
    free: int,
    ground: tuple[int, ...],
    timer: Timer,
    T_ego_from_grid: np.ndarray | None = None,
) -> KeyframeLabel:
    """Steps 4-7 for the keyframe at sweep index ``k``, on ``grid`` in the keyframe's ego frame
    (or the frame ``T_ego_from_grid (4, 4)`` places in it, e.g. the LiDAR's); one function a step."""
    s = rec.sweeps[k]
    T_eg = _grid_from_world(s.T_global_from_ego, T_ego_from_grid)
    win = _sweeps_within(rec, k, opt.window, opt.keyframe_only)
    static = plain = _static_in_grid(prep, win, T_eg, grid)
    if opt.densify.method == "tsdf":
        static = _densified(prep, win, T_eg, static, grid, ground, free, opt.densify)
        timer.lap("densify")
    # object_fill "carved" / "crossed": the keyframe's own sweep (its objects stood at their boxes then) carves
    seen_free: Any = None
    if opt.object_fill and opt.object_fill_voxels == "carved":
        seen_free = _cast(prep, range(k, k + 1), T_eg, grid, opt)[1].reshape(-1) > 0
    elif opt.object_fill and opt.object_fill_voxels == "crossed":
        seen_free = KeyframeRays.of(prep.origins[k], prep.all_pts[k], opt.carve_rel, opt.carve_abs)
    tracks = _tracks_in_grid(
        s.boxes, prep, T_eg, grid, opt.box_margin, opt.min_points, opt.object_fill_voxels, seen_free
    )

    sem, track = _voxelise(static, tracks, grid, free, opt.min_points)
    # the voxels only the densification's points occupy: the ground fill runs as if they were free
    added = (
        None if plain is static else (sem != free) & (_voxelise(plain, tracks, grid, free, opt.min_points)[0] == free)
    )
    timer.lap("voxelise")
    hits, passes = _cast(prep, _sweeps_within(rec, k, opt.free_window, opt.keyframe_only), T_eg, grid, opt)
    n_trail = _erase_trail_voxels(sem, track, hits, passes, free, opt) if opt.erase_trails else 0
    n_filled = 0
    # geometry only: the ground found by its height, not its class, within a window of 3.6 m
    by_height = 0 if rec.has_labels else ground_window(min(grid.voxel_size[:2]))
    if opt.ground_fill > 0 and (ground or by_height):
        seen = None  # the cameras' view of the unfilled labels: far ground no LiDAR ray passed over is filled too
        if opt.camera_mask and rec.cameras:
            seen = camera_mask(rec, grid, sem != free, opt.camera_stride, T_ego_from_grid) > 0
        sem, n_filled = _fill_ground_columns(sem, passes, ground, free, opt.ground_fill, by_height, added, seen)
    timer.lap("cast")
    mask_lidar = _mask_lidar(prep, k, T_eg, grid)
    timer.lap("mask_lidar")
    mask_camera = np.zeros(grid.shape, np.uint8)
    if opt.camera_mask and rec.cameras:
        mask_camera = camera_mask(rec, grid, sem != free, opt.camera_stride, T_ego_from_grid)
    timer.lap("mask_camera")
    flow = None
    if opt.flow:
        flow = track_flow(rec, k, track, T_eg)
        timer.lap("flow")
    stats = {
        "static_points": static.points,
        "points": static.points + sum(g.points for g in tracks),
        "occupied": int((sem != free).sum()),
        "trail_voxels_erased": n_trail,
        "ground_voxels_filled": n_filled,
        "window_returns": int(
            sum(len(rec.sweeps[i].points) for i in {*win, *_sweeps_within(rec, k, opt.free_window, opt.keyframe_only)})
        ),
    }
    return KeyframeLabel(s.token, sem, mask_lidar, mask_camera, track, flow, stats)


def _grid_from_world(T_global_from_ego: np.ndarray, T_ego_from_grid: np.ndarray | None) -> np.ndarray:
    """``(4, 4)``: the grid's frame from the world at a keyframe (its ego frame, or the frame
    ``T_ego_from_grid`` places in it)."""
    T_eg = _inv(T_global_from_ego)
    return T_eg if T_ego_from_grid is None else _inv(T_ego_from_grid) @ T_eg


def _sweeps_within(rec: SceneRecord, k: int, w: int, keyframe_only: bool) -> range:
    """The sweeps from ``w`` keyframes before the keyframe at sweep ``k`` to ``w`` after (0: every sweep of
    the scene; ``keyframe_only``: its own sweep alone)."""
    if keyframe_only:
        return range(k, k + 1)
    if w == 0:
        return range(len(rec.sweeps))
    keys = rec.keyframes
    pos = keys.index(k)
    return range(keys[max(0, pos - w)], keys[min(len(keys) - 1, pos + w)] + 1)


def _static_in_grid(prep: _Prepared, sweeps: range, T_eg: np.ndarray, grid: Grid) -> _InGrid:
    """Step 4, the static scene: the classed static points of ``sweeps`` in the grid's frame, by voxel."""
    sl = slice(int(prep.static_start[sweeps.start]), int(prep.static_start[sweeps.stop]))
    p = _to_frame(T_eg.astype(np.float32), prep.static_pts[sl])
    lab = prep.static_lab[sl]
    flat, n = grid_index(p, grid, lab)
    return _InGrid(flat, lab, n)


def _tracks_in_grid(
    boxes: Boxes | None,
    prep: _Prepared,
    T_eg: np.ndarray,
    grid: Grid,
    margin: float,
    min_points: int = 1,
    fill_voxels: str = "crossed",
    seen_free: Any = None,
) -> list[_InGrid]:
    """Step 4, the objects: each track with a box in the keyframe's sweep, its points (those within the box
    grown by ``margin``) placed at that box, in the grid's frame, by voxel; with ``object_fill``, the voxels its
    hull fills too (each as ``min_points`` points of the hull's class): ``fill_voxels`` as ``object_fill_voxels``,
    ``seen_free`` the voxels the keyframe's sweep saw through (``carved``: flat, bool) or its rays (``crossed``:
    :func:`_crossed_voxels`' ``rays``)."""
    out: list[_InGrid] = []
    if boxes is None:
        return out
    for j in range(len(boxes)):
        tr = int(boxes.track[j])
        if tr not in prep.track_pts:
            continue
        q = prep.track_pts[tr]
        inside = in_box(q, boxes.size[j], margin)
        p = _to_frame(T_eg, from_box_frame(q[inside], boxes.center[j], float(boxes.yaw[j])))
        lab = prep.track_lab[tr][inside]
        flat, n = grid_index(p, grid, lab)
        hull, cls = prep.track_hull.get(tr, (None, -1))
        if hull is not None and fill_voxels != "reached":
            hull = clip_hull(hull, boxes.size[j])
        if hull is not None:
            T_bw = _box_from_world(boxes.center[j], float(boxes.yaw[j]))
            filled = hull_voxels(hull, T_bw @ _inv(T_eg), grid, samples=1 if fill_voxels == "centre" else 3)
            if isinstance(seen_free, KeyframeRays):
                filled = filled[~np.isin(filled, _crossed_voxels(hull, T_bw, T_eg, grid, seen_free))]
            elif seen_free is not None:
                filled = filled[~seen_free[filled]]
            filled = np.repeat(filled, min_points)
            flat = np.concatenate([flat, filled])
            lab = np.concatenate([lab, np.full(len(filled), cls, lab.dtype)])
        out.append(_InGrid(flat, lab, n, tr))
    return out


@dataclass(frozen=True)
class KeyframeRays:
    """The keyframe's own sweep as rays, for ``object_fill_voxels="crossed"``: its ``origin (3,)`` and returns
    ``points (N, 3)`` in the world, each ray's unit direction ``u (N, 3)`` and the length it carves
    (``reach (N,)``: ``r (1 - carve_rel) - carve_abs``), computed once a keyframe rather than once a box."""

    origin: np.ndarray
    points: np.ndarray
    u: np.ndarray
    reach: np.ndarray
    carve_rel: float
    carve_abs: float

    @classmethod
    def of(cls, origin: np.ndarray, points: np.ndarray, carve_rel: float, carve_abs: float) -> KeyframeRays:
        origin, points = np.asarray(origin, np.float64), np.asarray(points, np.float64)
        d = points - origin
        r = np.linalg.norm(d, axis=1)
        return cls(
            origin, points, d / np.maximum(r, 1e-12)[:, None], r * (1 - carve_rel) - carve_abs, carve_rel, carve_abs
        )

    def near(self, centre: np.ndarray, radius: float) -> np.ndarray:
        """Indices of the rays whose carved stretch may pass within ``radius`` of ``centre`` (world): a superset
        (a small margin) of those :func:`~occkit.labelgen.steps.hull_crossings` keeps, which tests them again."""
        c = np.asarray(centre, np.float64) - self.origin
        along = self.u @ c
        rad = radius * 1.001 + 1e-6
        keep = (self.reach > 0) & (along - rad < self.reach) & (float(c @ c) - along * along <= rad * rad)
        return np.flatnonzero(keep)


def _crossed_voxels(hull: Hull, T_bw: np.ndarray, T_eg: np.ndarray, grid: Grid, rays: KeyframeRays) -> np.ndarray:
    """``object_fill_voxels="crossed"``: the flat voxels where a ray of the keyframe's own sweep (``rays``) crossed
    ``hull`` itself (box frame ``T_bw``); only the rays that pass near the hull's bounding sphere are tested."""
    centre_box = (hull.lo + hull.hi) / 2
    centre = _to_frame(_inv(T_bw), centre_box[None])[0]
    near = rays.near(centre, float(np.linalg.norm(hull.hi - hull.lo) / 2))
    if not len(near):
        return np.zeros(0, np.int64)
    o = _to_frame(T_bw, rays.origin[None])[0]
    seen = hull_crossings(hull, o, _to_frame(T_bw, rays.points[near]), rays.carve_rel, rays.carve_abs, 0.05)
    if not len(seen):
        return np.zeros(0, np.int64)
    return np.unique(grid_index(_to_frame(T_eg @ _inv(T_bw), seen), grid)[0])


def _box_from_world(center: np.ndarray, yaw: float) -> np.ndarray:
    """``(4, 4)``: the box frame of :func:`~occkit.labelgen.steps.to_box_frame` from the world."""
    c, s = math.cos(yaw), math.sin(yaw)
    T = np.eye(4)
    T[:3, :3] = [[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]]
    T[:3, 3] = -T[:3, :3] @ np.asarray(center, np.float64)
    return T


def _voxelise(
    static: _InGrid, tracks: list[_InGrid], grid: Grid, free: int, min_points: int
) -> tuple[np.ndarray, np.ndarray]:
    """Step 4, the vote: ``semantics (X, Y, Z)`` uint8 of the static and the tracks' points together, and
    ``track (X, Y, Z)`` int64, the track each voxel holds a point of (the later box where two do; -1 none)."""
    parts = [static, *tracks]
    sem = vote_flat([g.flat for g in parts], [g.labels for g in parts], grid, free, min_points)
    track = np.full(grid.shape, -1, np.int64)
    for g in tracks:
        track.reshape(-1)[g.flat[g.flat >= 0]] = g.track
    return sem, track


def _cast(
    prep: _Prepared, sweeps: range, T_eg: np.ndarray, grid: Grid, opt: LabelOptions
) -> tuple[np.ndarray, np.ndarray]:
    """Step 5: every return of ``sweeps`` cast from its sweep's origin; ``hits, passes (X, Y, Z)``, counts of
    sweeps (:mod:`occkit.labelgen.raycast`)."""
    caster = SweepCaster(grid, opt.carve_rel, opt.carve_abs)
    for i in sweeps:
        caster.add(_to_frame(T_eg, prep.origins[i][None])[0], _to_frame(T_eg, prep.all_pts[i]))
    return caster.counts.view(caster.counts.hits), caster.counts.view(caster.counts.passes)


def _erase_trail_voxels(
    sem: np.ndarray, track: np.ndarray, hits: np.ndarray, passes: np.ndarray, free: int, opt: LabelOptions
) -> int:
    """Step 5, in place: the static voxels more sweeps saw through than hit become free
    (:func:`~occkit.labelgen.steps.erase_trails`; a track's voxels are kept); returns how many."""
    trail = erase_trails(sem != free, hits, passes, opt.trail_ratio, opt.trail_max_hits, exempt=track >= 0)
    sem[trail] = free
    return int(trail.sum())


def _fill_ground_columns(
    sem: np.ndarray,
    passes: np.ndarray,
    ground: tuple[int, ...],
    free: int,
    max_gap: int,
    by_height: int = 0,
    added: np.ndarray | None = None,
    seen_through: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Step 5: empty columns some ray looked into filled from their ground neighbours
    (:func:`~occkit.labelgen.steps.fill_ground`; ``seen_through``: the camera mask of the unfilled labels, a
    column whose ground height a camera looked through is filled too; ``by_height``: a recording without point
    labels, its ground found by height within a window of that many voxels; ``added``: the densification's
    voxels, filled beside, :func:`~occkit.labelgen.densify.fill_ground_beside`); the filled labels and how many
    voxels were filled."""
    from occkit.labelgen.densify import fill_ground_beside

    before = sem != free
    observed = passes > 0

    def fill(s: np.ndarray) -> np.ndarray:
        return fill_ground(
            s, ground, free, max_gap, observed_above=observed, by_height=by_height, seen_through=seen_through
        )

    sem = fill(sem) if added is None else fill_ground_beside(sem, added, free, fill)
    return sem, int(((sem != free) & ~before).sum())


def _mask_lidar(prep: _Prepared, k: int, T_eg: np.ndarray, grid: Grid) -> np.ndarray:
    """Step 6: Occ3D's LiDAR mask, the voxels the keyframe's own rays traverse up to and including their
    return (:func:`occkit.geometry.visibility.lidar_visibility`); ``(X, Y, Z)`` uint8."""
    o = _to_frame(T_eg, prep.origins[k][None])[0]
    p = _to_frame(T_eg, prep.all_pts[k])
    return lidar_visibility(grid, torch.from_numpy(o), torch.from_numpy(p)).numpy().astype(np.uint8)


def camera_mask(
    rec: SceneRecord, grid: Grid, occupied: np.ndarray, stride: int, T_ego_from_grid: np.ndarray | None = None
) -> np.ndarray:
    """Occ3D's camera mask of ``occupied (X, Y, Z)``: camera rays (pixel rays, and rays to every
    exposed voxel face in view) up to and including the first occupied voxel."""
    from occkit.geometry.visibility import camera_mask_rays, camera_visibility, voxel_center_rays

    occ = torch.from_numpy(occupied)
    origins, dirs = [], []
    for cam in rec.cameras.values():
        K = torch.from_numpy(cam.K)
        T_gc = cam.T_ego_from_cam if T_ego_from_grid is None else _inv(T_ego_from_grid) @ cam.T_ego_from_cam
        T = torch.from_numpy(np.ascontiguousarray(T_gc))
        H, W = cam.image_size
        o, d = camera_mask_rays(K, T, torch.zeros(H, W), grid, stride)
        ov, dv = voxel_center_rays(K, T, (H, W), grid, occ)
        origins += [o, ov]
        dirs += [d, dv]
    return camera_visibility(grid, occ, torch.cat(origins), torch.cat(dirs)).numpy().astype(np.uint8)


def track_flow(rec: SceneRecord, k: int, track: np.ndarray, T_eg: np.ndarray) -> np.ndarray:
    """``(X, Y, Z, 2)`` float32 flow (m/s, the grid frame's x y) of the voxels placed from a track: its
    box's centre velocity, by central difference over the neighbouring sweeps that carry it."""
    out = np.zeros((*track.shape, 2), np.float32)
    s = rec.sweeps[k]
    if s.boxes is None:
        return out
    prev = rec.sweeps[k - 1] if k > 0 else None
    nxt = rec.sweeps[k + 1] if k + 1 < len(rec.sweeps) else None
    for j, tr in enumerate(s.boxes.track.tolist()):
        sel = track == tr
        if not sel.any():
            continue
        ends = []
        for o in (prev, s, nxt):
            if o is not None and o.boxes is not None:
                m = np.nonzero(o.boxes.track == tr)[0]
                if len(m):
                    ends.append((o.timestamp, o.boxes.center[m[0]]))
        if len(ends) < 2:
            continue
        (t0, c0), (t1, c1) = ends[0], ends[-1]
        v = (c1 - c0) / max((t1 - t0) * 1e-6, 1e-6)
        out[sel] = (T_eg[:2, :2] @ v[:2]).astype(np.float32)
    return out


def _imperfections(
    rec: SceneRecord, opt: LabelOptions, timer: Timer
) -> tuple[SceneRecord, dict[str, Any] | None, dict[str, Any] | None, dict[str, Any] | None]:
    """The options that mend an imperfect recording before anything else (docs/labels.md, "Imperfect
    recordings"): ``refine_poses``, then ``refine_boxes``, then ``find_moving``; the mended record and what each
    changed (None: not asked)."""
    refined = boxes_refined = moving = None
    if opt.refine_poses.enabled:
        from occkit.labelgen.refine_poses import refine_record_poses

        rec, refined = refine_record_poses(rec, opt.refine_poses, ego_margin=opt.ego_margin)
        timer.lap("refine_poses")
    if opt.refine_boxes.enabled:
        from occkit.labelgen.refine_boxes import refine_record_boxes

        rec, boxes_refined = refine_record_boxes(rec, opt.refine_boxes)
        timer.lap("refine_boxes")
    if opt.find_moving.enabled:
        from occkit.labelgen.find_moving import find_moving

        rec, moving = find_moving(rec, opt.find_moving, box_margin=opt.box_margin, ego_margin=opt.ego_margin)
        timer.lap("find_moving")
    return rec, refined, boxes_refined, moving


def label_scene(
    rec: SceneRecord,
    grid: Grid,
    classes: tuple[str, ...],
    free: int,
    opt: LabelOptions = LabelOptions(),
    T_ego_from_grid: np.ndarray | None = None,
) -> tuple[list[KeyframeLabel], dict[str, Any]]:
    """Every keyframe's label of a scene, and the scene's report (seconds per stage, peak
    memory, what the missing inputs cost).

    Args:
        rec: the scene (checked with :func:`~occkit.data.scene_record.check_record`).
        grid: the label grid, in each keyframe's ego frame, or in the frame ``T_ego_from_grid
            (4, 4)`` places in the ego frame (SurroundOcc's grid lies in the LiDAR frame).
        classes: the class names of ids ``0 .. free - 1`` (the record's ids must be these).
        free: the free id (``len(classes)`` for Occ3D's table).
    """
    check_record(rec)
    if rec.classes and tuple(rec.classes) != tuple(classes[: len(rec.classes)]):
        raise ValueError(
            f"{rec.source or rec.name}: classes {list(rec.classes)} are not the label format's "
            f"{list(classes)} (in that order)"
        )
    if not any(len(s.points) for s in rec.sweeps):
        raise ValueError(
            f"{rec.source or rec.name}: scene {rec.name!r}: none of its {len(rec.sweeps)} sweeps holds a return "
            "(every points array is empty): nothing to label"
        )
    rec, origin = local_record(rec)  # from here on every world coordinate is local (float32 is enough)
    ground = tuple(i for i, n in enumerate(classes) if n in opt.ground_classes)
    tracing = not tracemalloc.is_tracing()
    if tracing:
        tracemalloc.start()
    timer = Timer()
    try:
        with threadpool_limits(1, user_api="blas"):  # one core a scene (--workers for more): BLAS threads spin
            rec, refined, boxes_refined, moving = _imperfections(rec, opt, timer)
            prep = prepare_scene(rec, opt, free, timer, ground)
            labels = [
                label_keyframe(rec, prep, k, grid, opt, free, ground, timer, T_ego_from_grid) for k in rec.keyframes
            ]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        if tracing:
            tracemalloc.stop()
    n = len(labels)
    report = {
        "scene": rec.name,
        "keyframes": n,
        "sweeps": len(rec.sweeps),
        "points": int(sum(len(s.points) for s in rec.sweeps)),
        "seconds": {k: round(v, 3) for k, v in timer.seconds.items()},
        "seconds_per_keyframe": round(sum(timer.seconds.values()) / max(n, 1), 3),
        "peak_traced_mb": round(peak / 2**20, 1),
        "density": round(float(np.mean([(lab.semantics != free).mean() for lab in labels])), 5) if labels else 0.0,
        "local_origin_m": origin.tolist(),
        "missing": rec.missing(),
        "warnings": [
            f"keyframe {lab.token}: no returns in the sweeps of its window: "
            + ("labels all free" if not lab.stats["occupied"] else "occupied only by objects placed from other sweeps")
            for lab in labels
            if lab.stats["window_returns"] == 0
        ],
    }
    if refined is not None:
        report["pose_refinement"] = refined
        if refined.get("warning"):  # what the refinement could not mend, said as labelling ends, not only here
            report["warnings"].append(refined["warning"])
    if boxes_refined is not None:
        report["box_refinement"] = boxes_refined
    if moving is not None:
        report["found_moving"] = moving
    return labels, report
