"""A dataset of EasyOcc pseudo-labels in the Occ3D layout (``occkit pseudolabel``).

For every frame of the source dataset ``DATA`` and its prior cache ``PRIORS``
(``occkit priors run``, with ``semantics`` and ``depth``):

1. each camera's prior semantics are lifted with the prior depth to global points
   (:func:`occkit.pseudolabel.lift.lift_pixels`);
2. the points of the ``past`` previous (and ``future`` next) frames of the same scene join them
   through the ego poses; with ``dynamic: filter`` only the current frame contributes points of
   the dynamic classes (:data:`DYNAMIC_CLASSES`), so moving objects leave no trail;
3. in the frame's ego grid, voxels are voted and free space carved along the camera rays
   (:mod:`occkit.pseudolabel.voxelise`);
4. ``OUT/gts/<scene>/<token>/labels.npz`` gets ``semantics`` (uint8, 17 = free or unobserved),
   ``mask_camera`` (the observed voxels: occupied or carved) and ``mask_lidar`` (the same: there is
   no LiDAR in this recipe).

A source in another layout of Occ3D's family (SurroundOcc, OpenOccupancy: one ``annotations.json``
schema, other class table, grid and label frame) gets its pseudo-labels in its own layout: each
frame's Occ3D-class, ego-frame labels go through ``occkit convert``'s engine
(:func:`occkit.convert.convert_frame`: the class map, the resampling into the source's grid
and label frame) and the source format's label writer, and what the conversion dropped (the convert
report, summed over the frames) is recorded in ``pseudolabel.json`` under ``"conversion"``; the
index is the writer's (the images linked). See :func:`pseudo_layout`.

For an Occ3D source, ``OUT/annotations.json`` is the source's with the same frames, image paths made absolute (so
``Occ3DDataset(OUT)`` reads the source's images) and the splits limited to the scenes labelled;
``OUT/pseudolabel.json`` records how the labels were made (config, prior spec, source, counts).
Every file is written atomically, each frame's ``labels.npz`` with its size and checksum beside it
(``files.json``); a stopped run resumes when run again with the same settings and the same prior
cache (frames whose labels are there and match their record are skipped; a missing, short or
changed file is redone); scenes are processed in parallel by ``workers`` processes.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from occkit.config import from_dict
from occkit.fileio import files_intact, read_json, record_files, save_npz_atomic, write_json_atomic
from occkit.geometry.grid import Grid
from occkit.geometry.transforms import invert_transform
from occkit.pseudolabel.lift import LiftedPoints, cat_points, lift_pixels
from occkit.pseudolabel.voxelise import carve_free, frame_consistency, vote_voxels

if TYPE_CHECKING:
    from occkit.formats.spec import ClassTable

RECORD_FILE = "pseudolabel.json"
RECORD_FORMAT = 1
#: Per frame of a converted layout: its files' sizes and checksums and its convert report.
STATE_DIR = ".occkit-pseudolabel"

#: Occ3D classes that may move (bicycle, bus, car, construction vehicle, motorcycle, pedestrian,
#: trailer, truck): with ``dynamic: filter`` they come from the current frame only. Parked cars
#: are dropped from other frames too: a 2D prior cannot tell parked from moving, and the
#: paper's class-based rule (docs/methods.md §2, list [unsure]) does the same.
DYNAMIC_CLASSES: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 9, 10)


@dataclass
class PseudoLabelConfig:
    """How ``occkit pseudolabel`` makes the labels (recorded in ``pseudolabel.json``)."""

    past: int = 13
    """Previous frames of the scene whose points densify a frame (EasyOcc: 13)."""
    future: int = 0
    """Next frames of the scene whose points densify a frame (0: causal, as the paper)."""
    dynamic: Literal["filter", "keep"] = "filter"
    """'filter': points of :attr:`dynamic_classes` from the current frame only; 'keep': from every
    frame (moving objects leave trails: the ablation)."""
    dynamic_classes: tuple[int, ...] = DYNAMIC_CLASSES
    """Classes treated as dynamic by 'filter'."""
    free: Literal["carve", "none"] = "carve"
    """'carve': voxels the camera rays cross before their points are free and observed; 'none':
    only the occupied voxels are observed (``mask_camera``)."""
    min_points: int = 1
    """Points a voxel needs to be occupied (occkit's default; EasyOcc publishes no rule)."""
    vote: Literal["confidence", "count"] = "confidence"
    """A voxel's class: the largest summed prior confidence of its points ('confidence', occkit's
    default) or the most points ('count'). EasyOcc publishes no rule."""
    consistency: Literal["none", "frames"] = "none"
    """'frames': an occupied voxel that more source frames saw through (carving) than put a point
    in becomes free (:func:`occkit.pseudolabel.voxelise.frame_consistency`; with ``dynamic:
    filter`` the dynamic classes are exempt); 'none' (default): the merged vote alone. Every
    frame's points then cast carving rays, each frame walked on its own (slower)."""
    max_depth: float = 60.0
    """Pixels whose prior depth exceeds this (metres) make no point."""
    min_confidence: float = 0.0
    """Pixels whose prior semantic confidence is below this make no point."""
    pixel_stride: int = 1
    """Every ``pixel_stride``-th pixel (each direction) makes a point."""
    carve_every: int = 8
    """One point in this many casts a carving ray (the walk is the slow part; voxels near the
    camera are crossed by many rays anyway)."""
    sky_stride: int = 4
    """Every ``sky_stride``-th pixel (each direction) that the prior calls sky casts a carving ray
    to the grid's edge; 0 = no sky rays."""
    carve_margin: float = 0.2
    """Carving rays stop this many metres before their point (half a voxel)."""
    split: Literal["train", "val", "all"] = "all"
    """Frames labelled (their scenes' frames are the densification sources)."""


def check_config(cfg: PseudoLabelConfig) -> None:
    """Value checks; errors name the key."""
    if cfg.past < 0 or cfg.future < 0:
        raise ValueError(f"past/future must be >= 0, got {cfg.past}, {cfg.future}")
    if cfg.dynamic not in ("filter", "keep"):
        raise ValueError(f"dynamic: expected 'filter' or 'keep', got {cfg.dynamic!r}")
    if cfg.free not in ("carve", "none"):
        raise ValueError(f"free: expected 'carve' or 'none', got {cfg.free!r}")
    if cfg.vote not in ("confidence", "count"):
        raise ValueError(f"vote: expected 'confidence' or 'count', got {cfg.vote!r}")
    if cfg.consistency not in ("none", "frames"):
        raise ValueError(f"consistency: expected 'none' or 'frames', got {cfg.consistency!r}")
    if cfg.consistency == "frames" and cfg.free != "carve":
        raise ValueError(
            "consistency: 'frames' needs free: 'carve' (the frames' free space comes from the carving rays)"
        )
    if cfg.min_points < 1 or cfg.pixel_stride < 1 or cfg.carve_every < 1 or cfg.sky_stride < 0:
        raise ValueError("min_points, pixel_stride and carve_every must be >= 1, sky_stride >= 0")
    if not cfg.max_depth > 0:
        raise ValueError(f"max_depth: expected > 0 metres, got {cfg.max_depth}")
    if not 0 <= cfg.min_confidence <= 1:
        raise ValueError(f"min_confidence: expected in [0, 1], got {cfg.min_confidence}")
    if not cfg.carve_margin >= 0:
        raise ValueError(f"carve_margin: expected >= 0 metres, got {cfg.carve_margin}")
    if cfg.split not in ("train", "val", "all"):
        raise ValueError(f"split: expected train, val or all, got {cfg.split!r}")


def pseudo_layout(data: str | os.PathLike) -> str | None:
    """The format whose layout ``occkit pseudolabel`` writes for the source ``data``: None for Occ3D's
    (the labels as made: Occ3D's classes on its ego-frame grid), else the source's own format, when it
    is of Occ3D's family (its ``annotations.json`` gives the cameras, poses and LiDAR extrinsics the
    lifting and the conversion need) and has a label writer. A folder of no known format: None (the
    Occ3D reader names what it lacks). Anything else is a one-line error naming the format."""
    from occkit.formats import FormatRegistryError, detect_format, get_format
    from occkit.formats.registry import AmbiguousFormatError

    try:
        fmt = detect_format(data, option=None)
    except AmbiguousFormatError:
        raise  # two layouts in one folder: never read as Occ3D's in silence
    except (FormatRegistryError, OSError):
        return None
    occ3d = get_format("occ3d")
    if fmt.name == occ3d.name:
        return None
    family = occ3d.writers.label_writer.family  # type: ignore[union-attr]
    if fmt.writers.label_writer is not None and fmt.writers.label_writer.family == family:
        return fmt.name
    raise ValueError(
        f"--data {data}: {fmt.display_name} (format {fmt.name}, {fmt.classes.num_classes} classes on a "
        f"{'x'.join(map(str, fmt.grid.shape))} grid in the {fmt.label_frame} frame); pseudolabel lifts Occ3D-class "
        f"priors with the cameras and poses of an Occ3D-schema annotations.json and writes the labels in the "
        f"source's layout through occkit convert, so it takes the {family} family only "
        "(Occ3D, SurroundOcc, OpenOccupancy); train easyocc on this format's own labels instead "
        "(occkit train easyocc --data DIR)"
    )


class _Converter:
    """One frame's Occ3D pseudo-labels into the layout of the format ``name`` (the source's)."""

    def __init__(self, data: str, name: str) -> None:
        from occkit.convert import class_conversion
        from occkit.formats import get_format

        self.src, self.dst = get_format("occ3d"), get_format(name)
        self.writer = self.dst.writers.label_writer
        self.classes = class_conversion(self.src, self.dst, None)
        self.ds = self.dst.open_split(data, "all", load_images=False, load_gt=True, load_extras=False)
        self.options = {"split": "all", "source_root": str(data), "infos": None}

    def write(self, out: Path, token: str, arrays: dict[str, np.ndarray]) -> tuple[list[str], dict[str, Any]]:
        """Write the frame's files under ``out``; returns them (relative) and the convert report."""
        from occkit.convert import convert_frame
        from occkit.formats.spec import FrameLabels

        base = self.writer.read(self.ds, self.ds.index_of(token), self.options)  # record, transforms, sensors
        sem = arrays["semantics"].copy()
        unobserved = arrays["mask_camera"] == 0
        sem[unobserved] = 255  # the mask as the layout keeps it: its ignore value (EasyOcc trains inside it)
        frame = FrameLabels(
            token=base.token,
            scene=base.scene,
            semantics=sem,
            T_ego_from=base.T_ego_from,
            sensor_files=base.sensor_files,
            record=base.record,
        )
        conv, report = convert_frame(frame, self.src, self.dst, self.classes)
        report["unobserved_written_as_ignored"] = int(unobserved.sum())
        from occkit.convert import inside_out

        for rel in self.writer.files(conv):  # a token or scene name that would lead outside --out: refused
            inside_out(out, rel, f"frame {conv.token}")
        self.writer.write(out, conv)
        return list(self.writer.files(conv)), report, conv

    def finish(self, out: Path, data: Path, frames: list[dict[str, Any]], scenes: list[str]) -> list[str]:
        """The layout's index of the labelled frames (``frames``: their side records), its notes."""
        from occkit.convert import frame_stub, scene_splits

        stubs = [frame_stub(f) for f in frames]
        splits = {k: [s for s in v if s in scenes] for k, v in scene_splits(self.dst, data).items()}
        return self.writer.finish(out, stubs, {**self.options, "scene_splits": splits})


def _state_file(out: Path, scene: str, token: str) -> Path:
    from occkit.outputs import path_under

    return path_under(
        out, STATE_DIR, "frames", scene, f"{token.replace('/', '__')}.json", what=_frame_what(scene, token)
    )


def _frame_what(scene: str, token: str, data: Any = None) -> str:
    """How a refusal of a frame's name (:func:`occkit.outputs.path_under`) names it."""
    return (f"{data}/annotations.json: " if data is not None else "") + f"scene {scene!r}, frame token {token!r}"


def _labels_file(out: Path, scene: str, token: str, data: Any = None) -> Path:
    """``out/gts/<scene>/<token>/labels.npz``, refused in one line when a name leads outside ``out``."""
    from occkit.outputs import path_under

    return path_under(out, "gts", scene, token, "labels.npz", what=_frame_what(scene, token, data))


def _kept_frame(out: Path, scene: str, token: str) -> dict[str, Any] | None:
    """A converted frame's record when its files are there with the size and checksum written, else None."""
    from occkit.convert import OutsideOutput, inside_out
    from occkit.fileio import sums_match

    side = _state_file(out, scene, token)
    try:
        rec = read_json(side)
        for rel in rec["files"]:  # a record naming a file outside --out is refused, never followed
            inside_out(out, rel, str(side))
        if not sums_match(out, rec["files"]):
            return None
    except OutsideOutput:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return rec


def frame_labels(
    frames: list[LiftedPoints],
    current: int,
    T_ego_from_global: torch.Tensor,
    cfg: PseudoLabelConfig,
    grid: Grid,
    *,
    classes: ClassTable,
) -> dict[str, np.ndarray]:
    """One frame's pseudo-labels from the global points of its scene's frames.

    Args:
        frames: per source frame, its lifted points in the global frame.
        current: which of ``frames`` is the labelled frame (its dynamic points always count).
        T_ego_from_global: ``(4, 4)`` of the labelled frame.
        classes: the class table of the points' labels and of the labels made (its ``free`` id and
            class count): the source format's, Occ3D's (:func:`label_scene`).
    Returns:
        ``semantics``, ``mask_camera``, ``mask_lidar`` uint8 ``(X, Y, Z)``.
    """
    parts, carve_parts = [], []
    dyn = torch.tensor(cfg.dynamic_classes, dtype=torch.long)
    for j, f in enumerate(frames):
        if j != current and cfg.dynamic == "filter" and f.labels.numel():
            f = f.select(~torch.isin(f.labels, dyn))
        f = f.transformed(T_ego_from_global)
        parts.append(f)
        carve_parts.append(f.select(torch.arange(f.points.shape[0]) % cfg.carve_every == 0))
    pts = cat_points(parts)
    free, num_classes = classes.free, classes.num_classes
    weights = pts.weights if cfg.vote == "confidence" else None
    sem, occupied = vote_voxels(
        pts.points,
        pts.labels,
        grid,
        num_classes=num_classes,
        weights=weights,
        min_points=cfg.min_points,
        free=free,
    )
    if cfg.free == "carve" and cfg.consistency == "frames":
        occ_frames = torch.zeros(grid.shape, dtype=torch.int32)
        free_frames = torch.zeros(grid.shape, dtype=torch.int32)
        seen = occupied.clone()
        for f, c in zip(parts, carve_parts):
            _, occ_j = vote_voxels(f.points, f.labels, grid, num_classes=num_classes, free=free)
            free_j = carve_free(c.origins, c.points, grid, cfg.carve_margin, c.sky_origins, c.sky_dirs) & ~occ_j
            occ_frames += occ_j
            free_frames += free_j
            seen |= free_j
        exempt = tuple(cfg.dynamic_classes) if cfg.dynamic == "filter" else ()
        sem, occupied = frame_consistency(sem, occupied, occ_frames, free_frames, exempt_classes=exempt, free=free)
    elif cfg.free == "carve":
        c = cat_points(carve_parts)
        seen = carve_free(c.origins, c.points, grid, cfg.carve_margin, c.sky_origins, c.sky_dirs) | occupied
    else:
        seen = occupied
    mask = seen.numpy().astype(np.uint8)
    return {"semantics": sem.numpy().astype(np.uint8), "mask_camera": mask, "mask_lidar": mask.copy()}


def _lift_frame(ds: Any, cache: Any, scene: str, token: str, cfg: PseudoLabelConfig, classes: Any) -> LiftedPoints:
    """A frame's prior points and sky rays in the global frame; ``classes``: the class table of the priors'
    ids (its free id is the sky's)."""
    cams = ds.cameras
    pr = cache.load(scene, token, cams, cache.image_size)
    if "prior_semantics" not in pr or "prior_depth" not in pr:
        raise ValueError(
            f"{cache.root}: the cache needs the kinds 'semantics' and 'depth' (it has {list(cache.kinds)})"
        )
    T_global_from_ego = ds.T_global_from_ego(token)
    K = torch.stack([ds.intrinsics(token, c) for c in cams])
    T = torch.stack([T_global_from_ego @ ds.T_ego_from_cam(token, c) for c in cams])
    sem = pr["prior_semantics"].clone()
    conf = pr.get("prior_confidence")
    if conf is not None and cfg.min_confidence > 0:
        sem[conf < cfg.min_confidence] = 255
    return lift_pixels(
        sem,
        pr["prior_depth"],
        K,
        T,
        confidence=conf,
        free=classes.free,
        num_classes=classes.num_classes,
        max_depth=cfg.max_depth,
        stride=cfg.pixel_stride,
        sky_stride=cfg.sky_stride or 10**9,
    )


def label_scene(
    data: str,
    priors: str,
    out: str,
    cfg_dict: dict[str, Any],
    scene: str,
    on_frame: Callable[[str], None] | None = None,
    layout: str | None = None,
) -> dict[str, Any]:
    """Write the pseudo-labels of one scene's frames (skipping those already written); returns
    counts: frames written and skipped, occupied and observed voxels (of the Occ3D labels made)
    summed over all the scene's frames (those a stopped run kept as well), seconds of the written;
    with ``layout`` (a format's name, :func:`pseudo_layout`) the labels are written in its layout and
    ``report`` sums the frames' convert reports."""
    from occkit.data.occ3d import Occ3DDataset
    from occkit.formats import format_of
    from occkit.priors.cache import PriorCache

    cfg = from_dict(PseudoLabelConfig, cfg_dict)
    ds = Occ3DDataset(data, "all", load_images=False, load_gt=False, load_extras=False)
    classes = format_of(ds).classes  # of the labels made (the source's, Occ3D's), whatever layout they are written in
    cache = PriorCache(priors, kinds=[k for k in ("semantics", "depth") if k in PriorCache(priors).kinds])
    grid = ds.grid
    tokens = ds.scene_tokens(scene)
    lifted: dict[int, LiftedPoints] = {}
    stats: dict[str, Any] = {"written": 0, "skipped": 0, "occupied": 0, "observed": 0, "seconds": 0.0}
    converter = None if layout is None else _Converter(data, layout)
    if converter is not None:
        from occkit.convert import add_report, frame_entry

        stats["report"] = {"lossless": True}
    for i, token in enumerate(tokens):
        path = _labels_file(Path(out), scene, token, data)
        kept_rec = None if converter is None else _kept_frame(Path(out), scene, token)
        if kept_rec is not None:
            stats["skipped"] += 1
            stats["occupied"] += kept_rec["occupied"]
            stats["observed"] += kept_rec["observed"]
            add_report(stats["report"], kept_rec["report"])
            if on_frame:
                on_frame(token)
            continue
        if converter is None and files_intact([path]):  # there with the size and checksum recorded when written
            stats["skipped"] += 1
            from occkit.fileio import load_npz

            kept = load_npz(path, keys=("semantics", "mask_camera"))  # the summary covers every frame, kept ones too
            stats["occupied"] += int((kept["semantics"] != classes.free).sum())
            stats["observed"] += int(kept["mask_camera"].sum())
            if on_frame:
                on_frame(token)
            continue
        t0 = time.perf_counter()
        lo, hi = max(0, i - cfg.past), min(len(tokens), i + cfg.future + 1)
        for j in list(lifted):
            if j < lo:
                del lifted[j]
        for j in range(lo, hi):
            if j not in lifted:
                lifted[j] = _lift_frame(ds, cache, scene, tokens[j], cfg, classes)
        T_ego_from_global = invert_transform(ds.T_global_from_ego(token))
        arrays = frame_labels([lifted[j] for j in range(lo, hi)], i - lo, T_ego_from_global, cfg, grid, classes=classes)
        occupied, observed = int((arrays["semantics"] != classes.free).sum()), int(arrays["mask_camera"].sum())
        if converter is None:
            save_npz_atomic(path, **arrays)
            record_files([path])
        else:
            from occkit.fileio import file_sums

            files, report, conv = converter.write(Path(out), token, arrays)
            sums = file_sums(Path(out), files)
            rec = {**frame_entry(conv, files, report), "files": sums, "occupied": occupied, "observed": observed}
            write_json_atomic(_state_file(Path(out), scene, token), rec)
            add_report(stats["report"], report)
        stats["written"] += 1
        stats["occupied"] += occupied
        stats["observed"] += observed
        stats["seconds"] += time.perf_counter() - t0
        if on_frame:
            on_frame(token)
    return stats


def _scene_job(args: tuple) -> tuple[str, dict[str, Any]]:
    torch.set_num_threads(1)
    data, priors, out, cfg_dict, scene, layout = args
    return scene, label_scene(data, priors, out, cfg_dict, scene, layout=layout)


def make_pseudo_labels(
    data: str | os.PathLike,
    priors: str | os.PathLike,
    out: str | os.PathLike,
    cfg: PseudoLabelConfig | None = None,
    workers: int = 1,
    progress: bool = True,
) -> Path:
    """Write the pseudo-label dataset ``out`` (see the module docstring); returns ``out``.

    Refuses an ``out`` that holds labels made with other settings (its ``pseudolabel.json``),
    an ``out`` equal to ``data``, and a cache without semantics and depth or made for other frames.
    """
    from occkit.data.occ3d import Occ3DDataset
    from occkit.priors.cache import PriorCache

    cfg = cfg or PseudoLabelConfig()
    check_config(cfg)
    data, priors, out = Path(data).resolve(), Path(priors).resolve(), Path(out).resolve()
    if out == data:
        raise ValueError(f"--out {out}: the same folder as --data (the real ground truth would be overwritten)")
    layout = pseudo_layout(data)
    cache = PriorCache(priors)
    missing = [k for k in ("semantics", "depth") if k not in cache.kinds]
    if missing:
        raise ValueError(
            f"{priors}: the prior cache lacks {missing} (make it with `occkit priors run` and a provider giving "
            "semantics and depth)"
        )
    ds = Occ3DDataset(data, cfg.split, load_images=False, load_gt=False, load_extras=False)
    cache.check_dataset(
        Occ3DDataset(data, "all", cameras=ds.cameras, load_images=False, load_gt=False, load_extras=False)
    )
    for scene in ds.scenes:
        for token in ds.scene_tokens(scene):  # a name leading outside --out: refused before anything is written
            _labels_file(out, scene, token, data)
            _state_file(out, scene, token)
    record_path = out / RECORD_FILE
    cfg_dict = asdict(cfg)
    cfg_dict["dynamic_classes"] = list(cfg.dynamic_classes)
    prior_created = cache.record.get("created")
    if record_path.is_file():
        _check_earlier_record(record_path, cfg_dict, data, priors, cache.spec, prior_created)
    record = {
        "format": RECORD_FORMAT,
        "source": str(data),
        "priors": str(priors),
        "prior_spec": cache.spec,
        "prior_created": prior_created,
        "config": cfg_dict,
        **({"layout": layout} if layout is not None else {}),
        "complete": False,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    from occkit import __version__

    record["occkit_version"] = __version__
    write_json_atomic(record_path, record)
    scenes = list(ds.scenes)
    total = len(ds.frames)
    jobs = [(str(data), str(priors), str(out), cfg_dict, s, layout) for s in scenes]
    stats = _label_scenes(jobs, workers, total if progress else None, layout)
    if layout is not None:
        record["conversion"] = _write_layout_index(data, out, layout, ds, scenes, stats, cfg.split)
    else:
        _write_occ3d_index(data, out, scenes)
    written = sum(s["written"] for s in stats.values())
    counted = written + sum(s["skipped"] for s in stats.values())  # after a resume: the kept frames too
    record.update(
        complete=True,
        frames=total,
        written_this_run=written,
        mean_occupied_voxels=sum(s["occupied"] for s in stats.values()) / max(counted, 1),
        mean_observed_voxels=sum(s["observed"] for s in stats.values()) / max(counted, 1),
        seconds_per_frame=sum(s["seconds"] for s in stats.values()) / max(written, 1),
    )
    write_json_atomic(record_path, record)
    return out


def _check_earlier_record(
    record_path: Path, cfg_dict: dict[str, Any], data: Path, priors: Path, prior_spec: str, prior_created: Any
) -> None:
    """Refuse an ``out`` whose ``pseudolabel.json`` says its labels were made with other settings, priors or
    source, or from another prior cache at the same place."""
    out = record_path.parent
    old = read_json(record_path)
    defaults = asdict(PseudoLabelConfig())
    defaults["dynamic_classes"] = list(defaults["dynamic_classes"])
    old_cfg = {**defaults, **(old.get("config") or {})}  # a record from before an option existed: its default
    if old_cfg != cfg_dict or old.get("priors") != str(priors) or old.get("source") != str(data):
        raise ValueError(
            f"{record_path}: {out} holds pseudo-labels made with other settings, priors or source; use another --out"
        )
    if old.get("prior_spec") != prior_spec or ("prior_created" in old and old["prior_created"] != prior_created):
        raise ValueError(
            f"{record_path}: {out} holds pseudo-labels of another prior cache at {priors} (made "
            f"{old.get('prior_created')}, spec {old.get('prior_spec')!r}; the cache now: {prior_created}, "
            f"{prior_spec!r}); use another --out"
        )


def _label_scenes(jobs: list[tuple], workers: int, total: int | None, layout: str | None) -> dict[str, dict[str, Any]]:
    """Label each job's scene, here or in ``workers`` spawned processes, with a progress bar over ``total``
    frames (none when None); each scene's figures."""
    bar = None
    if total is not None:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="pseudolabel", unit="frame", dynamic_ncols=True)
    stats: dict[str, dict[str, Any]] = {}
    if workers <= 1:
        for job in jobs:
            on_frame = (lambda _t: bar.update(1)) if bar else None
            stats[job[4]] = label_scene(*job[:5], on_frame=on_frame, layout=layout)
    else:
        with mp.get_context("spawn").Pool(workers) as pool:
            for scene, st in pool.imap_unordered(_scene_job, jobs):
                stats[scene] = st
                if bar:
                    bar.update(st["written"] + st["skipped"])
    if bar:
        bar.close()
    return stats


def _write_layout_index(
    data: Path,
    out: Path,
    layout: str,
    ds: Any,
    scenes: list[str],
    stats: dict[str, dict[str, Any]],
    split: str,
) -> dict[str, Any]:
    """The converted layout's ``annotations.json`` (its writer's, marked as pseudo-labels) and the
    conversion's report summed over the scenes (:func:`occkit.convert.summary_lines`' keys)."""
    from occkit.convert import add_report, describe_grid

    converter = _Converter(str(data), layout)
    sides = [read_json(_state_file(out, f.scene, f.token)) for f in ds.frames]
    notes = converter.finish(out, data, sides, scenes)
    _write_marked_index(out, read_json(out / "annotations.json"))
    total: dict[str, Any] = {"lossless": True}
    for st in stats.values():
        add_report(total, st.get("report", {}))
    src, dst, classes = converter.src, converter.dst, converter.classes
    return {
        "source_format": src.name,
        "target_format": dst.name,
        "split": split,
        "class_map": None if classes.class_map is None else str(classes.class_map),
        "frames": len(ds.frames),
        "source_grid": describe_grid(src.grid, src.label_frame),
        "target_grid": describe_grid(dst.grid, dst.label_frame),
        "classes_written_as_first": {dst.classes.names[t]: list(m) for t, m in classes.split.items()},
        **total,
        "notes": notes,
    }


def _write_occ3d_index(data: Path, out: Path, scenes: list[str]) -> None:
    """``OUT/annotations.json``: the source's, limited to the labelled scenes, image paths absolute."""
    ann = read_json(data / "annotations.json")
    for scene in list(ann["scene_infos"]):
        if scene not in scenes:
            del ann["scene_infos"][scene]
            continue
        for token, info in ann["scene_infos"][scene].items():
            info["gt_path"] = f"gts/{scene}/{token}/labels.npz"
            for cam in info.get("camera_sensor", {}).values():
                p = Path(cam["img_path"])
                if not p.is_absolute():
                    cam["img_path"] = str(data / cam["img_path"].removeprefix("./"))
    _write_marked_index(out, ann, scenes)


def _write_marked_index(out: Path, ann: dict[str, Any], scenes: list[str] | None = None) -> None:
    """Write the index ``ann`` as ``OUT/annotations.json``, its tail marking the labels as this run's
    pseudo-labels (``"pseudolabel": {"record": RECORD_FILE}``); with ``scenes``, its train and val
    splits keep only those scenes."""
    from occkit.data.occ3d import index_parts, write_occ3d_index

    head, splits, infos, tail = index_parts(ann)
    if scenes is not None:
        splits = {k: [s for s in v if s in scenes] if k in ("train", "val") else v for k, v in splits.items()}
    write_occ3d_index(
        out / "annotations.json",
        infos,
        splits,
        head=head,
        tail={**tail, "pseudolabel": {"record": RECORD_FILE}},
        always=(),
    )
