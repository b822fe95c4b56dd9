"""What occkit needs to know of a dataset layout: :class:`DatasetFormat`, one per format.

A format is one module (``occkit/formats/<name>.py`` holding ``FORMAT = DatasetFormat(...)``, or a
module of another package named by an entry point of the group ``occkit.datasets``). Everything
that differs between layouts is a field here or of one of the format's records (:class:`PredictionFiles`,
:class:`Detection`, :class:`FormatScoring`, :class:`Writers`), so the engine, the composition root,
``occkit eval``, ``occkit predict``, the prior cache, the ablation runner and the viewer ask the format and name
none: how a folder is recognised, how a split is opened, the class table with its free and ignore
ids, the grid and the frame the labels are in, the metrics (accumulators, :class:`Metric`), and how
predictions are written and read.

See docs/design.md, "Adding a dataset format", for a complete example.
"""

from __future__ import annotations

import functools
import numbers
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

from occkit.deprecation import another_version
from occkit.geometry.grid import Grid
from occkit.metrics.base import TABLE_KEYS, Metric, MetricHooks, Targets, metric_name

__all__ = [
    "TABLE_KEYS",
    "Metric",
    "Targets",
]  # defined in occkit.metrics.base (metrics sit below formats); named here too

#: The entry point group through which another package adds a format: ``name = "pkg.module:FORMAT"``.
ENTRY_POINT_GROUP = "occkit.datasets"

#: How many cameras a format's frames carry: the multi-camera methods (supervised, render_sup,
#: easyocc, radocc, langocc, occscene, the teachers) train on ``multi-camera`` formats, the
#: monocular ones (kitti-mono, cigocc) on ``monocular`` ones.
Modality = Literal["multi-camera", "monocular"]

#: What a format's scenes are, and so which procedural world ``occkit synth`` writes in it:
#: ``driving`` (streets outdoors, :mod:`occkit.worlds.driving`, a :class:`~occkit.worlds.driving.SynthConfig`)
#: or ``indoor`` (rooms, :mod:`occkit.worlds.indoor`, an
#: :class:`~occkit.worlds.indoor.IndoorConfig`).
World = Literal["driving", "indoor"]

#: The worlds, in the order ``occkit synth --world`` lists them.
WORLDS: tuple[str, ...] = ("driving", "indoor")

#: The format whose class table names the 2D priors' classes of every format of a world, where the world
#: draws its 2D maps in one table whatever the layout: the driving world's in Occ3D's classes (its free
#: class the sky). A world not named here: each format's own table (:meth:`DatasetFormat.prior_table`).
WORLD_PRIOR_TABLES: Mapping[str, str] = MappingProxyType({"driving": "occ3d"})


@dataclass(frozen=True)
class ClassTable:
    """The classes of a format's labels.

    Attributes:
        names: one name per class id ``0 .. C-1`` (the learning ids the network predicts).
        free: the id of empty space (Occ3D: 17; SemanticKITTI, SurroundOcc, NYUv2: 0), or None.
        ignore: a label value that is never scored nor trained on (255 in most formats), or None.
        palette: an RGB colour per class (same length as ``names``), or empty for a default.
    """

    names: tuple[str, ...]
    free: int | None
    ignore: int | None = 255
    palette: tuple[tuple[int, int, int], ...] = ()

    def __post_init__(self) -> None:
        n = len(self.names)
        if n < 2:
            raise ValueError(f"ClassTable: at least two classes, got {n}")
        if self.free is not None and not 0 <= self.free < n:
            raise ValueError(f"ClassTable: free id {self.free} outside 0..{n - 1}")
        if self.ignore is not None and 0 <= self.ignore < n:
            raise ValueError(f"ClassTable: ignore id {self.ignore} is a class id (0..{n - 1})")
        if self.palette and len(self.palette) != n:
            raise ValueError(f"ClassTable: {len(self.palette)} palette colours for {n} classes")

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def occupied(self) -> tuple[int, ...]:
        """Every class id but free: the classes a semantic mIoU averages."""
        return tuple(i for i in range(self.num_classes) if i != self.free)


@dataclass(frozen=True)
class OpenOptions:
    """How :attr:`DatasetFormat.open` reads a split.

    Attributes:
        cameras: the camera names, in order (None: the format's own default).
        load_images: decode the camera images (False: scoring, statistics).
        load_gt: read the labels.
        load_extras: read the synthetic world's extras (LiDAR points, per-camera maps) when present.
        cache_mb: keep decoded files in memory up to this many MiB.
    """

    cameras: tuple[str, ...] | None = None
    load_images: bool = True
    load_gt: bool = True
    load_extras: bool = False
    cache_mb: float = 0.0


def open_one_camera(dataset: Callable[..., Any], layout: str, root: Path, split: str, options: OpenOptions) -> Any:
    """The split of a layout of one camera (``dataset.CAMERA``, the class reading it): ``options.cameras``,
    when given, must name that camera (the error names ``layout``); the cache option does not apply."""
    camera = dataset.CAMERA
    if options.cameras and tuple(options.cameras) != (camera,):
        raise ValueError(f"{root}: {layout} has one camera, {camera} (got {list(options.cameras)})")
    return dataset(
        root, split, load_images=options.load_images, load_gt=options.load_gt, load_extras=options.load_extras
    )


@dataclass(frozen=True)
class PredictionFiles:
    """How a format's predictions are written and read (its submission layout).

    Attributes:
        write: ``(folder, token, labels) -> path``: one frame's ``(X, Y, Z)`` uint8 class ids
            written atomically under ``folder``.
        index: ``folder -> {token: path}``: the prediction files of a folder.
        read: ``path -> (X, Y, Z) uint8``; a file of the wrong size, shape or dtype raises a
            one-line ``ValueError`` naming it.
        relpath: ``token -> str``: where ``write`` puts a frame's file, relative to the folder
            (``occkit predict --overwrite`` tells its own files of an old folder by it), or None.
    """

    write: Callable[[Path, str, np.ndarray], Path]
    index: Callable[[Path], dict[str, Path]]
    read: Callable[[Path], np.ndarray]
    relpath: Callable[[str], str] | None = None


def pcd_rows(scan: np.ndarray, token: str) -> np.ndarray:
    """A frame's scan (:attr:`FrameLabels.scan`: ``(N, 4)`` x y z intensity in the LiDAR's frame) as the rows
    of a nuScenes ``.pcd.bin``: ``(N, 5)`` float32 x, y, z, intensity, ring (0: a recording does not say the
    beam; occkit's readers take the first four columns)."""
    points = np.asarray(scan, np.float32)
    if points.ndim != 2 or points.shape[1] != 4:
        raise ValueError(f"frame {token}: a LiDAR scan of shape {points.shape}, expected (N, 4) x y z intensity")
    rows = np.zeros((len(points), 5), np.float32)
    rows[:, :4] = points
    return rows


def _warn_sensor_data(used: str) -> None:
    from occkit.deprecation import REMOVED_IN, warn_deprecated

    warn_deprecated(
        f"{used}: FrameLabels.sensor_data of occkit 0.2.0's first form, removed in {REMOVED_IN}; give and read "
        "FrameLabels.scan, (N, 4) float32 x y z intensity in the LiDAR's frame (each layout writes its own rows)",
        stacklevel=3,
    )


def _scan_of_sensor_data(readings: Any, token: Any) -> np.ndarray | None:
    """:attr:`FrameLabels.scan` of the deprecated ``sensor_data`` (``{"lidar": (N, 5+) rows}``): their first
    four columns as float32; None where it has no ``lidar``. Anything else is refused in one line."""
    if not isinstance(readings, Mapping) or set(readings) - {"lidar"}:
        raise ValueError(
            f"frame {token}: FrameLabels(sensor_data=...) takes {{'lidar': (N, 5) rows}} only, got "
            f"{sorted(readings) if isinstance(readings, Mapping) else type(readings).__name__}; give scan= instead"
        )
    if "lidar" not in readings:
        return None
    rows = np.asarray(readings["lidar"], np.float32)
    if rows.ndim != 2 or rows.shape[1] < 4:
        raise ValueError(f"frame {token}: sensor_data['lidar'] of shape {rows.shape}, expected (N, 5) .pcd.bin rows")
    return np.ascontiguousarray(rows[:, :4])


def _taking_sensor_data(cls: type) -> type:
    """``cls`` (:class:`FrameLabels`) whose constructor also takes the deprecated ``sensor_data`` (by keyword,
    or by position where 0.2.0's first form had it, before ``scan``), as its :attr:`~FrameLabels.scan`."""
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **fields: Any) -> None:
        readings = fields.pop("sensor_data", None)
        if len(args) > 8 and isinstance(args[8], Mapping):  # sensor_data by position, before scan
            readings, args = args[8], args[:8] + args[9:]
        if readings is not None:
            _warn_sensor_data("FrameLabels(sensor_data=...)")
            scan = _scan_of_sensor_data(readings, fields.get("token", args[0] if args else "?"))
            if scan is not None and (fields.get("scan") is not None or len(args) > 8):
                raise ValueError("FrameLabels: give scan= alone; sensor_data (deprecated) is read into it")
            if scan is not None:
                fields["scan"] = scan
        init(self, *args, **fields)

    cls.__init__ = __init__  # type: ignore[misc]
    return cls


@_taking_sensor_data
@dataclass
class FrameLabels:
    """One frame's ground truth as ``occkit convert`` carries it from one layout to another
    (:class:`LabelWriter`).

    Attributes:
        token: the frame's id in its dataset (SemanticKITTI's: ``"<sequence>/<frame>"``).
        scene: its scene (SemanticKITTI's: the sequence).
        semantics: ``(X, Y, Z)`` uint8 class ids of the format it is in, the format's ``ignore``
            value where unknown.
        masks: ``(X, Y, Z)`` bool per-voxel masks the layout keeps, by name: ``mask_camera`` /
            ``mask_lidar`` (the voxels seen, Occ3D), ``invalid`` (voxels left out, the KITTI
            layouts). A writer derives those it needs and is not given.
        T_ego_from: ``{frame: (4, 4) float64}``, the transforms from the sensor frames the source
            knows (a :attr:`DatasetFormat.label_frame`: ``ego``, ``lidar``) to the vehicle's ego
            frame: ``ego`` (the identity) always, ``lidar`` where the source gives the LiDAR's
            extrinsic. A conversion between label frames needs both.
        sensor_files: the frame's sensor files in the source (``{camera: image}``, ``lidar``: the
            LiDAR sweep), linked where the target layout keeps them.
        record: what the target's index needs of the frame, by the family's own keys (the
            nuScenes family: the frame's ``annotations.json`` entry, from which Occ3D's index is
            finished whether or not the source keeps one; the KITTI family: ``K``,
            ``T_cam_from_lidar``, ``pose``): a JSON object.
        fields: the frame's other per-voxel arrays the layout holds, by name (``flow``: ``(X, Y, Z,
            2)`` float, the voxels' motion), each ``(X, Y, Z, ...)`` on the format's grid. A target
            keeps those its :attr:`LabelWriter.fields` names (on one grid; never resampled); ``occkit
            convert`` reports the others as dropped, and the conversion is then not lossless.
        scan: ``(N, 4)`` float32 x y z intensity, the frame's own LiDAR sweep in its LiDAR's frame (the label
            frame's LiDAR), intensity 0 where the recording has none, where the frame has one and no file of it
            (``occkit label``'s keyframes; ``occkit convert`` links the source's file instead:
            :attr:`sensor_files`); None: none. Each layout that keeps the sweep (:attr:`LabelWriter.sensor_data`
            ``lidar``) writes it its own way: the KITTI layouts as their ``velodyne`` scans (and the input
            occupancy voxelised from it), Occ3D as a nuScenes ``.pcd.bin`` (``(N, 5)`` rows, ring 0).
        sensor_data: deprecated (removed in 0.3.0): ``{"lidar": (N, 5) rows}`` of a nuScenes ``.pcd.bin``, read
            from and written to :attr:`scan` (its first four columns; the ring is not kept) with a warning.
    """

    token: str
    scene: str
    semantics: np.ndarray
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    T_ego_from: dict[str, np.ndarray] = field(default_factory=dict)
    sensor_files: dict[str, Path] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, np.ndarray] = field(default_factory=dict)
    scan: np.ndarray | None = None

    @property
    def sensor_data(self) -> dict[str, np.ndarray]:
        """Deprecated: :attr:`scan` as ``{"lidar": (N, 5) rows}`` of a nuScenes ``.pcd.bin`` (removed in 0.3.0)."""
        _warn_sensor_data("FrameLabels.sensor_data")
        return {} if self.scan is None else {"lidar": pcd_rows(self.scan, self.token)}

    @sensor_data.setter
    def sensor_data(self, readings: Mapping[str, np.ndarray]) -> None:
        _warn_sensor_data("FrameLabels.sensor_data = ...")
        self.scan = _scan_of_sensor_data(readings, self.token)


@dataclass(frozen=True)
class CameraMaps:
    """Where a layout's reader reads each camera's 2D semantic map of a frame (``Sample.semantics_2d``, with
    ``load_extras``), and in which ids: what ``occkit label`` writes of its labels rendered into the cameras
    (:mod:`occkit.labelgen.semantic_maps`), so that training on the labels gets the maps as on the synthetic
    world (:attr:`LabelWriter.camera_maps`). Each file is an ``.npz`` of one array ``semantics``, ``(H, W)``
    uint8 at the camera's image size.

    Attributes:
        files: ``(frame, cameras) -> {camera: relpath}``: the frame's map files, relative to the output, one a
            camera of ``cameras`` (the recording's camera names, in order) that the layout's reader reads
            (Occ3D's: every camera; the KITTI layouts': their one camera, ``frame.record["camera"]``).
        ids: the id a file holds for each of the layout's class ids (indexed by id), where the reader maps the
            file's ids into the layout's (SurroundOcc's and OpenOccupancy's readers read Occ3D's ids); None:
            the layout's own ids.
    """

    files: Callable[[FrameLabels, tuple[str, ...]], dict[str, str]]
    ids: tuple[int, ...] | None = None


@dataclass(frozen=True)
class LabelWriter:
    """How ``occkit convert`` writes a dataset's ground truth in a format's layout, one frame at a
    time (:mod:`occkit.convert` does the class table, the grid and the frame between; the
    writer only lays out files). ``occkit convert`` goes between the formats of one ``family``:
    layouts that share their frame index and sensors, so that what is not labels can be carried.

    Attributes:
        family: ``nuscenes`` (an ``annotations.json`` in Occ3D's schema: Occ3D, SurroundOcc,
            OpenOccupancy) or ``kitti`` (sequences of one camera and a velodyne: SemanticKITTI,
            SSCBench-KITTI-360), or another package's name for its own.
        read: ``(dataset, i, options) -> FrameLabels``: frame ``i`` of a dataset
            :attr:`DatasetFormat.open` gave, as this format holds it (every mask it keeps);
            ``options`` as :attr:`finish`'s.
        files: ``FrameLabels -> (relpath, ...)``: the files :attr:`write` makes for the frame,
            relative to the output folder (a rerun of a stopped convert skips the frames it finished).
        write: ``(out, frame) -> None``: the frame's files under ``out``, each written atomically
            (``frame.semantics`` and ``frame.masks`` already in this format's classes and grid), its
            images linked where the layout keeps them.
        finish: ``(out, frames, options) -> [note, ...]``: after every frame, the index and what is
            not per frame (``annotations.json``, ``splits.json``, calibration), atomically, from the
            frames' ``record`` (``frames`` without their arrays); returns a line per thing the user
            must supply. ``options``: ``split`` (the split converted), ``source_root``, ``infos``.
        masks: the masks the layout keeps (what the convert report says is dropped for others).
        fields: the other per-voxel arrays (:attr:`FrameLabels.fields`, e.g. ``flow``) the layout
            keeps; the convert report says the others a source gives are dropped.
        sensor_data: the sensor readings the layout writes beside the labels: ``lidar``, the frame's own
            LiDAR sweep (:attr:`FrameLabels.scan`), which ``occkit label`` gives the frames of a layout that
            names it (Occ3D: a ``.pcd.bin`` at the index's ``lidar_sensor.filename``; the KITTI layouts: their
            ``velodyne`` scans); :attr:`files` then lists their files too.
        camera_maps: where the layout's reader reads each camera's 2D semantic map (:class:`CameraMaps`), which
            ``occkit label`` renders from its labels for a recording with cameras (:attr:`files` does not list
            them); None: the layout reads none.
    """

    family: str
    read: Callable[[Any, int, dict[str, Any]], FrameLabels]
    files: Callable[[FrameLabels], tuple[str, ...]]
    write: Callable[[Path, FrameLabels], None]
    finish: Callable[[Path, list[FrameLabels], dict[str, Any]], list[str]]
    masks: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    sensor_data: tuple[str, ...] = ()
    camera_maps: CameraMaps | None = None


class ConvertError(ValueError):
    """A conversion that cannot be made; the message is one line naming what and why."""


class OutsideOutput(ConvertError):
    """A path that a record or a writer gives and that leads outside ``--out``: refused, never followed."""


def inside_out(out: Path, rel: Any, where: str) -> Path:
    """``out / rel`` for a path ``rel`` that a record (``where``) or a writer gives, refused in one
    line unless it is a relative path that stays inside ``out`` (:func:`occkit.outputs.path_under`:
    no ``..``, no absolute path, no link to a folder elsewhere). The last component is not followed,
    so a link occkit made (an image linked into the layout) is the link itself, never its target."""
    if not isinstance(rel, str) or not rel or "\0" in rel:
        raise ConvertError(f"{where}: {rel!r} is not a file path of the output; not a record occkit convert writes")
    from occkit.fileio import OutsideOutput as Outside
    from occkit.fileio import path_under

    try:
        return path_under(
            out,
            rel,
            what=where,
            tail="occkit convert writes and deletes only inside its output folder: nothing was touched",
        )
    except Outside as e:
        raise OutsideOutput(str(e)) from None


@dataclass(frozen=True)
class PriorVocabulary:
    """How the 2D priors (:mod:`occkit.priors`) name a format's classes, when its class table is the
    table of priors (:meth:`DatasetFormat.prior_table`): the words and prompts are keyed by class name.

    Attributes:
        nothing: the name the free class takes in 2D, where it stands for the pixels that show no
            surface of the scene (Occ3D's ``sky``); empty: the class's own name (NYUv2's ``empty``).
        words: the text naming a class in vision-language features, by class name (``nothing`` for
            the free class); a class without one is named by its name, ``_`` read as a space.
        prompts: ``(prompt, class name)`` pairs: what an open-vocabulary detector is asked for and
            the class each answer gives.
        groups: the prompts asked together, one detector pass per group.
        confusable: ``{class id: (class id, ...)}``: the classes an object of a class can be mistaken
            for (the oracle prior's error model, :mod:`occkit.priors.oracle`).
        stuff_confusable: the same for patches of the ground (indoors: of the room's structure).
    """

    nothing: str = ""
    words: Mapping[str, str] = field(default_factory=dict)
    prompts: tuple[tuple[str, str], ...] = ()
    groups: tuple[tuple[str, ...], ...] = ()
    confusable: Mapping[int, tuple[int, ...]] = field(default_factory=dict)
    stuff_confusable: Mapping[int, tuple[int, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Detection:
    """How the registry tells a folder of a format (:attr:`DatasetFormat.detection`).

    Attributes:
        detect: ``root -> reason or None``: why ``root`` holds this format (cheap: names of files
            and folders, no decoding), or None. The first format whose ``detect`` answers wins,
            in registry order.
        priority: the registry tries ``detect`` in increasing ``priority`` (then occkit's own
            before installed packages', then by name): a format whose folders a more general
            format's ``detect`` would also claim (a variant of a layout, e.g. another class table in
            the SemanticKITTI file layout) takes a lower number than the general one (Occ3D: 10,
            SemanticKITTI: 90, default 50).
        refines: the formats whose ``detect`` also claims this format's folders because this one is
            a variant of their layout (SurroundOcc and OpenOccupancy: ``("occ3d",)``, whose detect
            claims any folder holding ``annotations.json``): when both answer, this one is the
            folder's format. Two formats that answer for one folder and neither refines the other
            are refused as ambiguous (:func:`occkit.formats.detect_format`), never settled by order.
    """

    detect: Callable[[Path], str | None]
    priority: int = 50
    refines: tuple[str, ...] = ()


@dataclass(frozen=True)
class FormatScoring:
    """How a format's predictions are scored (:attr:`DatasetFormat.scoring`; the scoring core that counts
    with it is :class:`occkit.scoring.core.Scoring`).

    Attributes:
        metrics: ``options -> [Metric, ...]``: fresh accumulators for a validation or an
            evaluation. ``options`` may hold ``mask`` (which voxels count, e.g. ``camera``),
            ``num_classes`` (the model's), ``device``, ``metrics`` (names asked for beyond the
            first, e.g. ``("miou", "rayiou")``) and what the format documents; a format ignores
            the keys it does not use. The first metric gives ``miou`` and ``geometry_iou``.
        evaluate_folder: ``(gt_root, pred_dir, split, **options) -> result`` for ``occkit eval``,
            when the format scores a folder its own way (Occ3D's RayIoU needs the LiDAR poses);
            None: the metrics over :attr:`DatasetFormat.predictions` and :attr:`DatasetFormat.open`.
        folder_options: the keyword options :attr:`evaluate_folder` takes beyond ``split``,
            ``allow_missing``, ``device``, ``workers`` and ``progress`` (``mask``, ``metrics``,
            ``infos``, ``region``, ``processes``, ``batch_size``); ``occkit eval`` refuses an option
            given that the format does not take, naming the format. For a format occkit's scoring
            loop scores (no ``evaluate_folder``), ``mask`` and ``metrics`` reach :attr:`metrics`
            whatever it lists.
        read_variants: the options of ``occkit eval`` that read the format's files another way, each
            ``fmt -> (the format reading so, finish(result))``, where ``finish`` adds the variant's part to
            the result (SurroundOcc and OpenOccupancy: ``duplicate_voxels``, ``--allow-duplicate-voxels``:
            a file listing a voxel twice read as the released code reads it). occkit's scoring loop applies
            a variant whose option is true; ``occkit eval`` refuses the option for a format without it.
        metric_names: the names ``occkit eval --metrics`` takes for this format (Occ3D: ``miou``,
            ``rayiou``; the SSC formats: ``ssc``, ``miou``). Empty (the default): ``miou`` (the
            first metric's, always computed) and the ``name`` of every metric :attr:`metrics` gives
            for the names asked. A name outside them is refused before any work, never dropped.
        table_keys: the summary lines ``occkit eval`` prints under the per-class table (those
            present in the result, in order).
    """

    metrics: Callable[[dict[str, Any]], Sequence[Metric]]
    evaluate_folder: Callable[..., dict[str, Any]] | None = None
    folder_options: frozenset[str] = frozenset({"mask", "metrics"})
    read_variants: Mapping[str, Callable[[DatasetFormat], tuple[DatasetFormat, Callable[[dict[str, Any]], None]]]] = (
        field(default_factory=dict)
    )
    metric_names: tuple[str, ...] = ()
    table_keys: tuple[str, ...] = TABLE_KEYS


@dataclass(frozen=True)
class Writers:
    """How occkit's commands write datasets in a format's layout (:attr:`DatasetFormat.writers`): the
    synthetic world (``occkit synth``), generated frames (``occkit generate``), converted ground truth
    (``occkit convert``) and what ``occkit prepare`` makes from a raw dataset. Each is optional: a command
    refuses a format that lacks its writer. Not the writer of predictions (:attr:`DatasetFormat.predictions`).

    Attributes:
        write_synthetic: ``(out, config) -> None``: the synthetic world of :attr:`DatasetFormat.world`
            (``config`` a :class:`occkit.worlds.driving.SynthConfig` for ``driving``, an
            :class:`occkit.worlds.indoor.IndoorConfig` for ``indoor``) written in this layout
            into the folder ``out`` (``occkit synth --format NAME``; resumable: scenes already
            written there are kept), or None.
        synthetic_classes: how the driving world's classes map onto this format's table, by name:
            ``{world class: class of this table}`` for each of the world's 18 (Occ3D-nuScenes'
            names, :data:`occkit.labels.OCC3D_CLASSES`; ``free`` among them). ``occkit synth
            --format NAME`` then writes every label of the world (3D labels, the cameras' 2D
            semantics, LiDAR point labels, objects' class ids) in this table's ids
            (:attr:`occkit.worlds.driving.SynthConfig.classes`), so :attr:`write_synthetic` remaps
            nothing and training's 2D and LiDAR targets agree with the table. None: the world's own
            ids (occkit's formats convert in their writers). The registry refuses a map that misses
            a class of the world or names one this table lacks.
        write_generated: ``(out, frames, cameras) -> None``: frames made by ``occkit generate``
            written as a dataset of this layout into the new, empty folder ``out``, which
            :attr:`DatasetFormat.open` then reads back with split ``all`` (every frame a training frame:
            what ``data.extra_train`` and ``occkit eval-gen`` read). ``frames``: objects with ``token``,
            ``scene``, ``text`` (the frame's description), ``source`` (the conditioning real
            frame's token, or None), ``images`` ``(N, 3, H, W)`` uint8 (``cameras``, in order, at
            the size they were generated), ``intrinsics`` ``(N, 3, 3)`` (at that size),
            ``T_ego_from_cam`` ``(N, 4, 4)``, ``T_global_from_ego`` ``(4, 4)``, ``semantics``
            ``(X, Y, Z)`` class ids on :attr:`DatasetFormat.grid` and ``mask`` ``(X, Y, Z)`` bool, the
            voxels that count (the generated cameras' view, within the conditioning frame's own mask),
            all CPU tensors (:class:`occkit.generation.dataset.GeneratedFrame`). The format keeps
            the mask as its layout can (Occ3D: ``mask_camera`` = ``mask_lidar``; NYUv2: the ignore
            label outside it). A bad frame (a camera or size the layout cannot hold) raises a
            one-line ``ValueError``. None: ``occkit generate`` refuses data of this format.
        label_writer: how ``occkit convert`` writes a dataset's ground truth in this layout
            (:class:`LabelWriter`), or None for a format that cannot be written (``occkit convert
            --to NAME`` then says so); not the writer of predictions (:attr:`DatasetFormat.predictions`)
            nor of the synthetic world (:attr:`write_synthetic`).
        preparation: where ``occkit prepare NAME`` finds what it makes from a raw dataset for this
            format, ``"module:attribute"`` naming a :class:`occkit.data.prepare.Preparation` (``nuscenes``:
            the infos of raw nuScenes), or None. The module must import no torch (the command's parser
            is built from it, as every parser is), and the string is read from the format's source for
            occkit's own formats, as ``--help`` reads them (:mod:`occkit.help_registries`).
    """

    write_synthetic: Callable[[Path, Any], None] | None = None
    synthetic_classes: Mapping[str, str] | None = None
    write_generated: Callable[[Path, Sequence[Any], tuple[str, ...]], None] | None = None
    label_writer: LabelWriter | None = None
    preparation: str | None = None


#: The records of a :class:`DatasetFormat`, by the field that holds each.
RECORDS: Mapping[str, type] = MappingProxyType(
    {"predictions": PredictionFiles, "detection": Detection, "scoring": FormatScoring, "writers": Writers}
)

#: The fields :class:`DatasetFormat` held flat in occkit 0.1, each beside the record that holds it now. The
#: constructor still takes them (as keywords, mapped into their records) and a format still answers them
#: (read-only), each with a warning (:func:`occkit.deprecation.warn_deprecated`) naming the record's field; both go
#: in 0.3.0.
FLAT_FIELDS: Mapping[str, str] = MappingProxyType(
    {
        **{name: "detection" for name in ("detect", "priority", "refines")},
        **{
            name: "scoring"
            for name in ("metrics", "evaluate_folder", "folder_options", "read_variants", "metric_names", "table_keys")
        },
        **{
            name: "writers"
            for name in ("write_synthetic", "synthetic_classes", "write_generated", "label_writer", "preparation")
        },
    }
)


def _records_from_flat(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` (a :class:`DatasetFormat`'s keywords) with the flat keywords of occkit 0.1
    (:data:`FLAT_FIELDS`) moved into their records, each given record's other fields kept; one
    warning line (:func:`occkit.deprecation.warn_deprecated`) names the records' fields to give instead."""
    flat = [name for name in fields if name in FLAT_FIELDS]
    if not flat:
        return fields
    from occkit.deprecation import REMOVED_IN, warn_deprecated

    warn_deprecated(
        f"DatasetFormat({', '.join(f'{n}=' for n in flat)}...): flat keywords of occkit 0.1, removed in "
        f"{REMOVED_IN}; give {', '.join(f'{FLAT_FIELDS[n]}.{n}' for n in flat)} (the records "
        f"{', '.join(dict.fromkeys(RECORDS[FLAT_FIELDS[n]].__name__ for n in flat))} of occkit.formats)",
        stacklevel=3,
    )
    out = {name: value for name, value in fields.items() if name not in FLAT_FIELDS}
    for record in dict.fromkeys(FLAT_FIELDS[n] for n in flat):
        given = {n: fields[n] for n in flat if FLAT_FIELDS[n] == record}
        out[record] = replace(out[record], **given) if out.get(record) is not None else RECORDS[record](**given)
    return out


def _flat_alias(name: str, record: str) -> property:
    """The read-only field ``name`` of occkit 0.1, read from its record with a deprecation warning."""

    def read(self: DatasetFormat) -> Any:
        from occkit.deprecation import REMOVED_IN, warn_deprecated

        warn_deprecated(
            f"DatasetFormat.{name} moved to DatasetFormat.{record}.{name}; the old name is removed in {REMOVED_IN}",
            stacklevel=2,
        )
        return getattr(getattr(self, record), name)

    read.__name__ = name
    return property(read, doc=f"Deprecated: :attr:`{record}.{name}` (removed in 0.3.0).")


def _taking_flat_keywords(cls: type) -> type:
    """``cls`` (:class:`DatasetFormat`) whose constructor also takes the flat keywords of occkit 0.1
    (:func:`_records_from_flat`), and which answers their names read-only (:func:`_flat_alias`)."""
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **fields: Any) -> None:
        init(self, *args, **_records_from_flat(fields))

    cls.__init__ = __init__  # type: ignore[misc]
    for name, record in FLAT_FIELDS.items():
        setattr(cls, name, _flat_alias(name, record))
    return cls


@_taking_flat_keywords
@dataclass
class DatasetFormat:
    """A dataset layout: its identity, how it is read (:attr:`open`, :attr:`predictions`), and three
    records: how its folders are told (:attr:`detection`), how it is scored (:attr:`scoring`) and how
    occkit's commands write it (:attr:`writers`).

    Attributes:
        name: what ``--format`` and ``data.format`` take (``occ3d``, ``semantickitti``, ...).
        summary: one line for ``--help`` and error messages.
        modality: ``multi-camera`` or ``monocular`` (which methods can train on it).
        classes: the class table of its labels.
        grid: the voxel grid of its labels.
        label_frame: the frame the grid is in: ``ego`` (Occ3D), ``lidar`` (SemanticKITTI,
            SurroundOcc, OpenOccupancy), ``world`` (NYUv2's gravity-aligned room frame), ...
        splits: the split names ``open`` takes (``all`` is always accepted).
        open: ``(root, split, options) -> dataset``: a torch dataset of
            :class:`occkit.data.sample.Sample` with ``frames`` (each with ``.token`` and ``.scene``;
            SemanticKITTI's are ``(sequence, frame)`` pairs), ``tokens``, ``index_of(token)``,
            ``grid`` and ``frame_labels(i) -> (labels, scored voxels, file)`` (the class counts of
            ``supervised.class_counts: auto``), like :class:`occkit.data.occ3d.Occ3DDataset`. A
            missing or malformed file raises a one-line error naming it.
        predictions: how predictions are written and read (:class:`PredictionFiles`).
        detection: how the registry tells its folders (:class:`Detection`: ``detect``, ``priority``,
            ``refines``).
        scoring: how its predictions are scored (:class:`FormatScoring`: ``metrics``, ``evaluate_folder``,
            ``folder_options``, ``read_variants``, ``metric_names``, ``table_keys``).
        writers: how occkit's commands write datasets in its layout (:class:`Writers`: ``write_synthetic``,
            ``synthetic_classes``, ``write_generated``, ``label_writer``, ``preparation``); none by default.
        title: the format's name as sentences use it, a bare name (``"Occ3D-nuScenes"``: occkit writes
            "the Occ3D-nuScenes format", "is Occ3D-nuScenes data"); default ``name``. A leading article
            or a trailing "dataset" is left out when it is shown (:attr:`display_name`).
        world: the kind of scenes the format's datasets hold, ``driving`` (outdoors; the default)
            or ``indoor`` (NYUv2's rooms): the procedural world :attr:`Writers.write_synthetic` writes
            (``occkit synth --world``), and what a run trained on one kind says when it is pointed
            at data of the other.
        cameras: the cameras every frame has when the format fixes them (SemanticKITTI:
            ``("image_2",)``; a run's ``data.cameras`` is then not passed to :attr:`open`), or None
            when the user chooses them (:attr:`OpenOptions.cameras`).
        ground_z: the height of the road in the label frame, in metres, where the format fixes it
            (Occ3D's ego frame sits on the road: 0; SurroundOcc's and OpenOccupancy's LiDAR frame
            1.84 m above it: -1.84), or None; a method's ``model.ground_z`` takes it when the
            preset leaves it unset (:meth:`config_values`).
        prior_vocabulary: ``() -> PriorVocabulary``: the words, detector prompts and confusions of the
            2D priors of this format's classes, when its table is a table of priors (Occ3D's for the
            driving world, NYUv2's indoors), or None: every class named by its name, no prompts.
        source: where it was found; set by the registry.

    The flat keywords of occkit 0.1 (``detect=``, ``metrics=``, ``write_synthetic=``, ...:
    :data:`FLAT_FIELDS`) are still taken, each moved into its record with a deprecation warning.
    """

    name: str
    summary: str
    modality: Modality
    classes: ClassTable
    grid: Grid
    label_frame: str
    splits: tuple[str, ...]
    open: Callable[[Path, str, OpenOptions], Any]
    predictions: PredictionFiles
    detection: Detection
    scoring: FormatScoring
    writers: Writers = Writers()
    title: str = ""
    world: World = "driving"
    cameras: tuple[str, ...] | None = None
    ground_z: float | None = None
    prior_vocabulary: Callable[[], PriorVocabulary] | None = None
    source: str = field(default="", compare=False)

    @property
    def display_name(self) -> str:
        """:attr:`title` as a bare name (a leading "a", "an" or "the" and a trailing "dataset" left out,
        which occkit's sentences give themselves), or :attr:`name` when it has none."""
        import re

        bare = re.sub(r"^(?:an?|the)\s+", "", self.title.strip(), flags=re.I)
        bare = re.sub(r"\s+(?:dataset|data set|format)s?$", "", bare, flags=re.I)
        return bare or self.name

    def prior_table(self) -> str:
        """The format whose class table names the classes of the 2D priors of this format's datasets:
        its world's (:data:`WORLD_PRIOR_TABLES`: the driving world draws its 2D maps in Occ3D's
        classes, whatever the layout), else this format's own."""
        return WORLD_PRIOR_TABLES.get(self.world, self.name)

    def config_values(self) -> dict[str, Any]:
        """What a method's config may take from this format when its preset leaves a key unset
        (:attr:`occkit.methods.registry.MethodSpec.from_format` names, per key, one of these):
        ``num_classes``, ``free``, ``ignore`` and ``names`` (the class table), ``point_range`` and
        ``voxel_size`` (the grid; ``voxel_size`` None when the voxels are not cubes), ``ground_z``.
        None where the format has no value (e.g. a table with no free class)."""
        grid = self.grid
        cube = len(set(grid.voxel_size)) == 1
        return {
            "num_classes": self.classes.num_classes,
            "free": self.classes.free,
            "ignore": self.classes.ignore,
            "names": tuple(self.classes.names),
            "point_range": tuple(float(v) for v in grid.point_range) if cube else None,
            "voxel_size": float(grid.voxel_size[0]) if cube else None,
            "ground_z": self.ground_z,
        }

    def open_split(self, root: str | os.PathLike, split: str, **options: Any) -> Any:
        """:attr:`open` with keyword options (those of :class:`OpenOptions`); the dataset is marked
        with this format's name (``format_name``), which :func:`occkit.formats.format_of` reads
        back under any wrappers."""
        if split not in (*self.splits, "all"):  # the format's own split names, checked on every path
            raise ValueError(
                f"--split {split}: {root} is {self.display_name} data, whose splits are "
                f"{', '.join((*self.splits, 'all'))}"
            )
        ds = plugin_call(self, "open", self.open, Path(root), split, OpenOptions(**options))
        if self.from_package:
            _check_dataset(self, ds)
        try:
            ds.format_name = self.name
        except AttributeError:  # a dataset that takes no attributes (slots): its class must say
            pass
        return ds

    def new_metrics(self, **options: Any) -> list[Metric]:
        """:attr:`FormatScoring.metrics` with keyword options; an empty list or one that is not a
        :class:`Metric` raises naming the format."""
        given = plugin_call(self, "metrics", self.scoring.metrics, options)
        bug = "; a bug of that package" if self.from_package else ""
        if given is None or isinstance(given, str | bytes | Mapping) or not isinstance(given, Iterable):
            raise FormatPluginError(
                f"format {self.name} ({self.source}): its metrics() returned a {type(given).__name__}, not a list "
                f"of metrics{bug}"
            )
        found = list(given)
        if not found:
            raise FormatPluginError(f"format {self.name} ({self.source}): its metrics() gave no metric{bug}")
        for m in found:
            if not isinstance(m, Metric):
                raise FormatPluginError(
                    f"format {self.name} ({self.source}): its metrics() gave a {type(m).__name__}, which lacks "
                    f"name/update/merge/all_reduce/compute (occkit.formats.Metric){bug}"
                )
        return [_GuardedMetric(self, m) for m in found] if self.from_package else found

    def synthetic_lut(self) -> tuple[int, ...] | None:
        """:attr:`Writers.synthetic_classes` as the id table :attr:`occkit.worlds.driving.SynthConfig.classes`
        takes (world id -> this table's id), or None; a ``ValueError`` names a world class it misses
        or a class this table lacks."""
        synthetic_classes = self.writers.synthetic_classes
        if synthetic_classes is None:
            return None
        from occkit.labels import OCC3D_CLASSES

        names = list(self.classes.names)
        missing = [c for c in OCC3D_CLASSES if c not in synthetic_classes]
        if missing:
            raise ValueError(f"synthetic_classes: no class of this table for the world's {', '.join(missing)}")
        extra = sorted(set(synthetic_classes) - set(OCC3D_CLASSES))
        if extra:
            raise ValueError(f"synthetic_classes: {', '.join(extra)} are not classes of the world ({OCC3D_CLASSES})")
        wrong = sorted({v for v in synthetic_classes.values() if v not in names})
        if wrong:
            raise ValueError(f"synthetic_classes: {', '.join(map(str, wrong))} not in the class table ({names})")
        return tuple(names.index(synthetic_classes[c]) for c in OCC3D_CLASSES)

    def metric_choices(self, asked: Sequence[str] = ()) -> tuple[str, ...]:
        """The names ``--metrics`` takes for this format (:attr:`FormatScoring.metric_names`; when it
        declares none, ``miou`` and the names of the metrics it gives for ``asked``)."""
        if self.scoring.metric_names:
            return tuple(self.scoring.metric_names)
        built = self.new_metrics(metrics=tuple(asked), num_classes=self.classes.num_classes)
        return tuple(dict.fromkeys(["miou", *(str(getattr(m, "name", "")) for m in built)]))

    @property
    def from_package(self) -> bool:
        """Whether another package registered it (an entry point of :data:`ENTRY_POINT_GROUP`)."""
        return self.source.startswith("entry point")


#: The names a format module gives its roles, each beside the :class:`DatasetFormat` field it fills, or
#: the field of the record that holds it (``record.field``; docs/design.md, "A format module"):
#: :func:`format_of_module` reads each one the module defines.
MODULE_ROLES: Mapping[str, str] = MappingProxyType(
    {
        "TABLE": "classes",
        "GRID": "grid",
        "CAMERAS": "cameras",
        "LABEL_WRITER": "writers.label_writer",
        "detect": "detection.detect",
        "open_split": "open",
        "metrics": "scoring.metrics",
        "write_synthetic": "writers.write_synthetic",
        "write_generated": "writers.write_generated",
        "prior_vocabulary": "prior_vocabulary",
    }
)
#: The module's four prediction-file functions, each beside the :class:`PredictionFiles` field it fills.
PREDICTION_ROLES: Mapping[str, str] = MappingProxyType(
    {
        "write_prediction": "write",
        "prediction_files": "index",
        "read_prediction": "read",
        "prediction_relpath": "relpath",
    }
)
#: The roles every format module defines.
REQUIRED_ROLES: tuple[str, ...] = ("TABLE", "GRID", "detect", "open_split", "metrics", *PREDICTION_ROLES)

#: What the monocular semantic-scene-completion formats (SemanticKITTI, SSCBench-KITTI-360, NYUv2)
#: declare alike: one camera's images, scored by the SSC metrics (``--metrics ssc,miou``, no ``--mask``),
#: the SSC summary lines under the per-class table (``scoring``: fields of :class:`FormatScoring`, as
#: :func:`format_of_module` takes a record's fields).
MONOCULAR_SSC: Mapping[str, Any] = MappingProxyType(
    {
        "modality": "monocular",
        "scoring": MappingProxyType(
            {
                "folder_options": frozenset({"metrics"}),
                "metric_names": ("ssc", "miou"),
                "table_keys": ("ssc_miou", "completion_iou", "precision", "recall"),
            }
        ),
    }
)


def world_writer(target: str, **options: Any) -> Callable[[Path, Any], None]:
    """A format's ``write_synthetic`` (:attr:`Writers.write_synthetic`): the procedural world's
    writer ``target`` (``"module:function"``, imported when it is called: a format module imports no
    world) run into ``out`` with its config, resumably (``resume=True``: the scenes a stopped run
    finished are kept) and with a line per scene (``progress=True``), plus ``options`` (``overwrite=True``
    for the writers that take it)."""
    module_name, _, attribute = target.partition(":")

    def write_synthetic(out: Path, config: Any) -> None:
        import importlib

        writer = getattr(importlib.import_module(module_name), attribute)
        writer(out, config, progress=True, resume=True, **options)

    write_synthetic.__qualname__ = f"world_writer({target!r})"
    return write_synthetic


def refuse_another_class_count(options: Mapping[str, Any], table: ClassTable, title: str, preset: str) -> None:
    """For a format whose metric fixes its class table: a ``ValueError`` naming the preset to use when
    the metric options' ``num_classes`` (the model's) is given and is not the table's."""
    n, want = options.get("num_classes"), table.num_classes
    if n is not None and int(n) != want:
        raise ValueError(
            f"{title} has {want} classes but the model predicts {n}: use the {preset} preset or "
            f"--set model.num_classes={want}"
        )


def format_of_module(module_name: str, **fields: Any) -> DatasetFormat:
    """The :class:`DatasetFormat` of the format module ``module_name`` (its ``__name__``, called at the
    module's end as ``FORMAT = format_of_module(__name__, name=..., ...)``): every role the module
    defines under its name in :data:`MODULE_ROLES` and :data:`PREDICTION_ROLES`, each in its field or
    its record's, then ``fields``: the format's identity (``name``, ``summary``, ``splits`` ...) and, by
    a record's name, a mapping of that record's fields that are no role of a module's
    (``detection={"priority": 10}``, ``scoring={"metric_names": ("miou", "rayiou")}``).

    Raises:
        TypeError: the module lacks a role of :data:`REQUIRED_ROLES`, or ``fields`` gives a role the
            module already defines (one home for each role).
    """
    import sys

    module = sys.modules[module_name]
    missing = [name for name in REQUIRED_ROLES if not hasattr(module, name)]
    if missing:
        raise TypeError(
            f"{module_name}: a format module defines {', '.join(missing)} (docs/design.md, 'A format module')"
        )
    roles: dict[str, dict[str, Any]] = {}  # by record ("" for a field of the format's own), its fields
    every = {**MODULE_ROLES, **{name: f"predictions.{key}" for name, key in PREDICTION_ROLES.items()}}
    for name, path in every.items():
        if hasattr(module, name):
            record, _, key = path.rpartition(".")
            roles.setdefault(record, {})[key] = getattr(module, name)
    own = roles.pop("", {})
    twice = set(own) & set(fields)
    for record, held in roles.items():
        part = fields.get(record)
        if isinstance(part, Mapping):
            twice |= {f"{record}.{key}" for key in set(held) & set(part)}
        elif part is not None:  # a whole record: every role of it given twice
            twice.add(record)
    if twice:
        raise TypeError(
            f"{module_name}: {', '.join(sorted(twice))} given as an argument and by the module's own name: "
            "one home each"
        )
    for record, kind in RECORDS.items():
        part = fields.get(record)
        if record in roles or isinstance(part, Mapping):
            fields[record] = kind(**roles.get(record, {}), **(part or {}))
    return DatasetFormat(**own, **fields)


class FormatPluginError(ValueError):
    """A format of another package failed in one of its parts (``detect``, ``open``, ``metrics`` or a
    metric's ``update`` / ``compute``): the one line names the format, its entry point and the error,
    and the command's other formats keep working."""


#: Errors a format's part raises on purpose for bad input (a missing file, a bad value): passed on as
#: they are, since their message already names the file.
INPUT_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, KeyError, MemoryError, FloatingPointError)


def plugin_call(fmt: DatasetFormat, part: str, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, a part of ``fmt``. For a format of another package, any failure that is not an
    input error (:data:`INPUT_ERRORS`) becomes a one-line :class:`FormatPluginError` naming the
    format, its entry point and the error (a bug of that package, not of occkit); occkit's own
    formats' failures pass through as they are."""
    try:
        return fn(*args)
    except INPUT_ERRORS:
        raise
    except BaseException as e:  # a package's part calling sys.exit is named too, not the silent end of a command
        if not fmt.from_package or isinstance(e, KeyboardInterrupt | GeneratorExit):
            raise
        raise FormatPluginError(plugin_failure(fmt, part, e)) from e


def plugin_failure(fmt: DatasetFormat, part: str, e: BaseException) -> str:
    """The line that names a failed part of another package's format: a bug of that package, or, for a
    ``TypeError`` (a call whose arguments occkit's API no longer takes, or the other way round), a package
    that may be written for another occkit version (:func:`another_version`)."""
    return f"format {fmt.name} ({fmt.source}): its {part} failed ({type(e).__name__}: {e}); " + (
        another_version() if isinstance(e, TypeError) else "a bug of that package"
    )


def _metric_call(fmt: DatasetFormat, part: str, fn: Callable[..., Any], *args: Any) -> Any:
    """:func:`plugin_call` for a part of a package's metric: its input errors (a ``ValueError``, a
    ``KeyError``) are named with the format and the part too, since the metric, not a file, raised them."""
    try:
        return plugin_call(fmt, part, fn, *args)
    except (ValueError, KeyError) as e:
        if isinstance(e, FormatPluginError):
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        raise FormatPluginError(f"format {fmt.name} ({fmt.source}): its {part}: {msg}") from e


class _GuardedMetric:
    """A metric of another package's format whose failures (other than input errors) are named in
    one line (:func:`plugin_call`), as its ``detect`` and ``open``'s are."""

    def __init__(self, fmt: DatasetFormat, metric: Any) -> None:
        self._fmt, self._metric = fmt, metric
        self.name = metric_name(metric)
        try:
            hooks = MetricHooks.of(metric)
        except ValueError as e:
            raise FormatPluginError(f"format {fmt.name} ({fmt.source}): {e}") from e
        # the optional part of the protocol, named as the rest is where it fails; absent where the metric has none
        self.region_refused = hooks.region_refused
        self.bind = (
            None
            if hooks.bind is None
            else functools.partial(_metric_call, fmt, f"metric {self.name}'s bind", hooks.bind)
        )
        self.frame_extra = (
            None
            if hooks.frame_extra is None
            else functools.partial(_metric_call, fmt, f"metric {self.name}'s frame_extra", hooks.frame_extra)
        )

    def __getattr__(self, key: str) -> Any:  # anything else the metric has (counts, options)
        if key.startswith("_"):  # not set yet (unpickling): no recursion through self._metric
            raise AttributeError(key)
        return getattr(self._metric, key)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as the format's registry name and the metric (a package's format is the registry's,
        so the registry is loaded): a process of the scoring loop sends its counts back without the
        format, whose roles (lambdas, closures) need not pickle."""
        import sys

        return (sys.modules["occkit.formats.registry"].guarded_by_name, (self._fmt.name, self._metric))

    def update(self, pred: Any, target: Any) -> None:
        _metric_call(self._fmt, f"metric {self.name}'s update", self._metric.update, pred, target)

    def merge(self, other: Any) -> Any:
        other = other._metric if isinstance(other, _GuardedMetric) else other
        _metric_call(self._fmt, f"metric {self.name}'s merge", self._metric.merge, other)
        return self

    def all_reduce(self) -> None:
        _metric_call(self._fmt, f"metric {self.name}'s all_reduce", self._metric.all_reduce)

    def compute(self) -> dict[str, Any]:
        out = _metric_call(self._fmt, f"metric {self.name}'s compute", self._metric.compute)
        if not isinstance(out, Mapping):
            raise FormatPluginError(
                f"format {self._fmt.name} ({self._fmt.source}): its metric {self.name}'s compute returned a "
                f"{type(out).__name__}, not a dict of scores; a bug of that package"
            )
        wrong = _not_scores(out)
        if wrong is not None:
            raise FormatPluginError(
                f"format {self._fmt.name} ({self._fmt.source}): its metric {self.name}'s compute returned {wrong} "
                "(scores are numbers, or dicts of numbers or rows of numbers, by name); a bug of that package"
            )
        return dict(out)


#: What a score may be, beside a dict of them: a number (numpy's too), a word (Occ3D's ``mask``), a list of
#: words or numbers (Occ3D's ``only_predicted``), or nothing.
_SCORE = (numbers.Number, str, type(None))


def _not_scores(out: Mapping[Any, Any]) -> str | None:
    """What in a metric's ``compute`` result is not a score (:class:`Metric`: numbers, or dicts of numbers or
    rows of numbers, by name), said as where it stands (``a nested dict at 'iou' -> 'car'``), or None."""
    for key, value in out.items():
        if not isinstance(key, str):
            return f"the key {key!r}, not a name"
        if isinstance(value, _SCORE) or (isinstance(value, list | tuple) and all(isinstance(v, _SCORE) for v in value)):
            continue
        if not isinstance(value, Mapping):
            return f"{key!r}, a {type(value).__name__}"
        for inner, v in value.items():  # a number, or a row of them (RayIoU's per class: one per threshold)
            row = isinstance(v, list | tuple) and all(isinstance(x, numbers.Number | None) for x in v)
            if not (row or isinstance(v, numbers.Number | None)):
                return f"a nested {type(v).__name__} at {key!r} -> {inner!r}"
    return None


def _check_dataset(fmt: DatasetFormat, ds: Any) -> None:
    """A package format's ``open`` that returned no dataset (None, a list, an object without the parts occkit
    reads: ``__len__``, ``__getitem__``, ``tokens``) named in one line as that package's error."""
    if ds is None or isinstance(ds, list | tuple | dict | str | bytes):
        lacks = None
    else:
        lacks = [part for part in ("__len__", "__getitem__", "tokens") if not hasattr(ds, part)] or None
        if lacks is None:
            return
    what = f"a {type(ds).__name__}" if lacks is None else f"a {type(ds).__name__} without {', '.join(lacks)}"
    raise FormatPluginError(
        f"format {fmt.name} ({fmt.source}): its open returned {what}, not a dataset of frames (a torch Dataset of "
        "Sample with tokens, frames, index_of, grid: docs/design.md §9); a bug of that package"
    )


def link_inside(src: Path, dst: Path, root: Path | None = None) -> None:
    """``dst`` a symbolic link to ``src`` (made beside it, then renamed: never half there); with
    ``root`` (the output folder), a ``dst`` outside it is refused in one line."""
    if root is not None:
        inside_out(root, os.path.relpath(dst, root), f"the link to {src}")
    if dst.is_symlink() or dst.exists():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.link")
    if tmp.is_symlink():
        tmp.unlink()
    os.symlink(os.path.abspath(src), tmp)
    os.replace(tmp, dst)
