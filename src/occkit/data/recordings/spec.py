"""What ``occkit label`` needs of a recording: a :class:`RecordingReader`, one small class per kind of
recording (a rig folder, nuScenes tables, KITTI sequences, ROS bags, a folder of point files), with a
typed options dataclass of its own (:class:`ReaderOptions`).

A reader class has four parts (docs/design.md, "Adding a reader"):

- :meth:`RecordingReader.detect` (a class method): why a path holds this kind of recording, cheaply;
- :meth:`RecordingReader.open` (a class method): the recording opened, its tables checked, as an
  instance of the reader: its :attr:`~RecordingReader.classes`, :attr:`~RecordingReader.scenes`, splits
  and camera images;
- :attr:`RecordingReader.scenes`: the scene names, in order;
- :meth:`RecordingReader.read`: one scene as a checked :class:`~occkit.data.scene_record.SceneRecord`.

Its options are the fields of :attr:`RecordingReader.Options`, a frozen dataclass deriving from
:class:`ReaderOptions` (and from the shared :class:`KeyframeOptions`, :class:`PointLabelOptions`,
:class:`EgoBoxOptions` for what several readers take): each field is one command-line option
(``--lidar-topic`` for ``lidar_topic``) declared once with :func:`option`, checked in the dataclass's
``__post_init__``. ``occkit label`` builds each reader's option group from it, so the help lists every
option of a reader under it, and an option given to a reader that does not take it is refused naming
the reader.

A reader is one module (``occkit/data/recordings/<name>.py`` holding ``READER = TheReaderClass``), or a
class of another package named by an entry point of the group ``occkit.recordings``. The label
command names none: it asks the registry (:mod:`occkit.data.recordings.registry`) which reader takes
``--data``. Worker processes and Ray tasks re-open the recording from ``(reader, source, options)``
(:func:`~occkit.data.recordings.registry.open_recording`, once per process), so a reader need not pickle.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, get_args

if TYPE_CHECKING:  # the parser of occkit label lists the readers without importing torch
    from occkit.data.scene_record import SceneRecord

#: The entry point group through which another package adds a reader: ``name = "pkg.module:ReaderClass"``.
ENTRY_POINT_GROUP = "occkit.recordings"

#: How many files :func:`files_fingerprint` looks at, at most (a recording's tables come first in a walk).
FINGERPRINT_FILES = 20000


def files_fingerprint(path: Path, limit: int = FINGERPRINT_FILES) -> str:
    """A SHA-256 of the names, sizes and modification times of ``path`` (a file) or of the files under
    it (the first ``limit`` in sorted walking order): what changes when a recording is rewritten."""
    import hashlib
    import os

    h = hashlib.sha256()
    n = 0
    for top, dirs, files in os.walk(path) if path.is_dir() else [(str(path.parent), [], [path.name])]:
        dirs.sort()
        for name in sorted(files):
            f = Path(top) / name
            try:
                st = f.stat()
            except OSError:
                continue
            h.update(f"{f.relative_to(path) if path.is_dir() else name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            n += 1
            if n >= limit:
                return h.hexdigest()
    return h.hexdigest()


# ---- options -----------------------------------------------------------------------------------------


def option(
    help: str,
    *,
    type: Callable[[str], Any] = str,
    metavar: str | None = None,
    choices: Any = None,
    within: tuple[float, float, str] | None = None,
    open: bool = False,
) -> Any:
    """A field of a reader's options dataclass: one command-line option, ``--name-with-dashes``, whose
    value (``type`` applied, None when not given) reaches the reader as the field. ``choices``: the values
    it takes; ``within``: ``(low, high, words)``, the range a number must be finite in (closed; ``open``:
    the ends themselves refused) and the refusal's words. Both are checked in one place,
    :meth:`ReaderOptions.__post_init__`."""
    meta = {"help": help, "type": type, "metavar": metavar, "choices": choices, "within": within, "open": open}
    return field(default=None, metadata=meta)


def seconds(help: str, at_most: float = math.inf, metavar: str = "S") -> Any:
    """An option of a number of seconds, 0 or more (``at_most``: the most it may be, a finite bound said in
    the refusal): a tolerance in time."""
    words = "must be a number of seconds, 0 or more" + (f" (at most {at_most:g})" if math.isfinite(at_most) else "")
    return option(help, type=float, metavar=metavar, within=(0, at_most, words))


def flag_of(name: str) -> str:
    """The command-line flag of an options field: ``lidar_topic`` -> ``--lidar-topic``."""
    return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class ReaderOptions:
    """A reader's options (the base: none). A subclass declares each of its options once as a field
    (:func:`option`, with its choices or range) and checks what one field cannot say in ``__post_init__`` (a
    one-line ``ValueError`` naming the flag), calling ``super().__post_init__()`` so that these checks run too."""

    def __post_init__(self) -> None:
        """Each option given within its declared range and among its choices (:func:`option`)."""
        for f in self.fields():
            v, m = getattr(self, f.name), f.metadata
            if v is not None and m.get("within"):
                low, high, words = m["within"]
                if not (math.isfinite(v) and (low < v < high if m.get("open") else low <= v <= high)):
                    raise ValueError(f"{flag_of(f.name)} {v!r}: {words}")
            if v is not None and m.get("choices") and v not in m["choices"]:
                raise ValueError(f"{flag_of(f.name)} {v!r}: one of {', '.join(map(str, m['choices']))}")

    @classmethod
    def fields(cls) -> tuple[dataclasses.Field, ...]:
        return dataclasses.fields(cls)

    @classmethod
    def flags(cls) -> list[str]:
        return [flag_of(f.name) for f in cls.fields()]

    @classmethod
    def from_values(cls, values: Mapping[str, Any] | None, reader: str) -> ReaderOptions:
        """The options of ``values`` (by field name; JSON values, as a worker re-opens with them), each read
        with its field's type; a key of no field is refused naming the reader and the options it takes."""
        values = dict(values or {})
        names = {f.name: f for f in cls.fields()}
        unknown = [k for k, v in values.items() if k not in names]
        if unknown:
            takes = ", ".join(cls.flags()) or "no option"
            given = ", ".join(flag_of(k) for k in unknown)
            raise ValueError(f"{given}: not an option of the reader {reader} (it takes {takes})")
        typed = {}
        for k, v in values.items():
            if v is None:
                continue
            kind = names[k].metadata.get("type", str)
            try:
                if isinstance(v, bool):  # JSON's true/false is no option's value (int(True) would be 1)
                    raise TypeError
                typed[k] = kind(v)
            except (TypeError, ValueError):
                what = {int: "a whole number", float: "a number", str: "text"}.get(kind, "a value of its kind")
                raise ValueError(f"{flag_of(k)} {v!r}: not {what}") from None
        return cls(**typed)

    def given(self) -> dict[str, Any]:
        """The options given (not None) as JSON values, by field name: what a worker re-opens with."""
        return {
            f.name: (str(v) if isinstance(v, Path) else v)
            for f in self.fields()
            if (v := getattr(self, f.name)) is not None
        }


@dataclass(frozen=True)
class KeyframeEveryOptions(ReaderOptions):
    """Every how many sweeps a keyframe, for a recording without keyframe marks."""

    keyframe_every: int | None = option(
        "a keyframe every N sweeps, the first one included (default: the reader's; 10 for ROS bags and point "
        "files; KITTI sequences: the scans with SSC labels, else every 5th; KITTI raw drives: every 5th)",
        type=int,
        metavar="N",
        within=(1, math.inf, "must be a positive integer"),
    )

    def every(self, default: int = 10) -> int:
        """``--keyframe-every``, ``default`` when not given."""
        return default if self.keyframe_every is None else self.keyframe_every


@dataclass(frozen=True)
class KeyframeOptions(KeyframeEveryOptions):
    """How a recording without keyframe marks takes its keyframes: listed, or every N-th sweep."""

    keyframes: str | None = option(
        "the keyframes, one a line: a ROS bag's cloud stamps in nanoseconds; point files' names (instead of "
        "--keyframe-every)",
        metavar="FILE",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.keyframe_every is not None and self.keyframes:
            raise ValueError("--keyframes and --keyframe-every: give one (the keyframes listed, or every N-th sweep)")


@dataclass(frozen=True)
class PointLabelOptions(ReaderOptions):
    """Where point labels are and what their ids name."""

    label_field: str | None = option(
        "the point field holding class ids (a PointCloud2's, a .pcd's, .ply's or .las's; default: 'label' where a "
        "cloud has one, else no point labels); a field named here that a cloud lacks is refused",
        metavar="NAME",
    )
    classes: str | None = option(
        "the names of the point labels' and boxes' class ids, a YAML or JSON list (id 0 first); default: "
        "Occ3D's 17 classes, as a rig's",
        metavar="FILE",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.label_field in ("x", "y", "z"):
            raise ValueError(f"--label-field {self.label_field}: a coordinate of the points, not a field of labels")

    def field(self) -> str | None:
        """The label field to read: ``label`` (where a cloud has it) when not given, None for ``''``."""
        from occkit.data.recordings._shared import label_field_option

        return label_field_option(self.label_field)


@dataclass(frozen=True)
class EgoBoxOptions(ReaderOptions):
    """The vehicle's own box (its returns are dropped)."""

    ego_box: str | None = option(
        "the vehicle's box in the ego frame, 'L W H X Y Z' (size, then centre; metres): returns inside are the "
        "vehicle's own (default nuScenes' car, '4.1 1.9 1.8 0.9 0 0.9')",
        metavar="'L W H X Y Z'",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self.ego()

    def ego(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """The vehicle's size and centre (nuScenes' car when not given)."""
        from occkit.data.recordings._shared import read_ego_box

        return read_ego_box(self.ego_box)


@dataclass(frozen=True)
class EgoHeightOptions(ReaderOptions):
    """Where the recording's ego frame sits: its origin ``--ego-height`` metres above the ground."""

    ego_height: float | None = option(
        "the ego frame's origin is H metres above the ground (KITTI's base_link at its IMU: 0.93): the ego frame "
        "is moved down by H so that z = 0 is the ground; a given --ego-box is in the recording's ego frame and moves "
        "with it",
        type=float,
        metavar="H",
        within=(-10, 10, "metres from the ground to the ego origin (within 10)"),
    )

    def lowered(self, rec: SceneRecord, box_given: bool) -> SceneRecord:
        """``rec`` with its ego frame moved down by ``--ego-height`` (:func:`~occkit.data.scene_record.lower_ego`);
        the ego box moves with it where the user gave it in the recording's frame (``box_given``)."""
        if not self.ego_height:
            return rec
        from occkit.data.scene_record import lower_ego

        return lower_ego(rec, self.ego_height, move_box=box_given)


@dataclass(frozen=True)
class SweepOptions(KeyframeOptions, PointLabelOptions, EgoBoxOptions, EgoHeightOptions):
    """What a recording of bare LiDAR sweeps takes (ROS bags, point files): its keyframes, point labels,
    the vehicle's box and the ego frame's height."""


# ---- the reader ----------------------------------------------------------------------------------------


OptionsT = TypeVar("OptionsT", bound=ReaderOptions)


class RecordingReader(ABC, Generic[OptionsT]):
    """One kind of recording ``occkit label --data`` reads; an instance is that recording, opened.

    Class attributes (a subclass sets them, as attributes or as keywords of its class statement,
    ``class BagReader(RecordingReader[BagOptions], name="rosbag", priority=30, extra="rosbag")``):
        name: what ``occkit label --reader NAME`` calls it.
        description: one line for the help (what it reads, with which library).
        Options: its options dataclass (a :class:`ReaderOptions`); ``RecordingReader[TheOptions]`` sets it.
        priority: detection order (lower first; default 50).
        extra: the pip extra that installs what the reader needs (``rosbag``), named when it is missing.

    What an opened reader holds (set by the subclass's ``__init__``, which reads and checks the tables):
        source: the path given to ``--data``.
        options: its :attr:`Options`.
        wanted: the scenes ``--scenes`` asks for (None: every one), for a reader that reads less then.
        classes: the class names of the ids its point labels and boxes carry (empty: no labels).
        splits: ``{"train_split": [...], "val_split": [...]}`` where the recording says them, else empty.
        images: camera image paths by keyframe token and camera, relative to the folders in
            :attr:`image_links` (what the output's index records as ``img_path``), where the
            recording has images.
        image_links: ``{name: folder}``: folders linked into the output under ``name`` so that the
            recorded image paths resolve there (nuScenes' and Occ3D's ``samples``).
        describe: one line for the user: what was read (``nuScenes v1.0-mini, 10 scenes``).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Options: ClassVar[type[ReaderOptions]] = ReaderOptions
    priority: ClassVar[int] = 50
    extra: ClassVar[str] = ""
    options: OptionsT

    def __init_subclass__(
        cls, name: str | None = None, priority: int | None = None, extra: str | None = None, **kw: Any
    ) -> None:
        super().__init_subclass__(**kw)
        for attr, v in {"name": name, "priority": priority, "extra": extra}.items():
            if v is not None:
                setattr(cls, attr, v)
        for base in cls.__dict__.get("__orig_bases__", ()):  # RecordingReader[TheOptions]: its Options
            kind = next(iter(get_args(base)), None)
            if "Options" not in cls.__dict__ and isinstance(kind, type) and issubclass(kind, ReaderOptions):
                cls.Options = kind

    def __init__(self, source: Path, options: OptionsT, wanted: list[str] | None = None) -> None:
        self.source = Path(source)
        self.options = options
        self.wanted = wanted
        self.classes: tuple[str, ...] = ()
        self._scenes: list[str] = []
        self.splits: dict[str, list[str]] = {}
        self.images: dict[str, dict[str, str]] = {}
        self.image_links: dict[str, Path] = {}
        self.describe = ""

    # -- the four parts -----------------------------------------------------------------------------

    @classmethod
    @abstractmethod
    def detect(cls, path: Path) -> str | None:
        """Why ``path`` holds this kind of recording (cheap: names of files and folders), or None. The
        first reader whose ``detect`` answers wins, in increasing :attr:`priority`."""

    @classmethod
    def open(
        cls, path: str | Path, options: ReaderOptions | Mapping[str, Any] | None = None, scenes: list[str] | None = None
    ) -> RecordingReader:
        """The recording at ``path`` opened with ``options`` (this reader's :attr:`Options`, or their values
        by field name), its tables checked. Bad input: a one-line ``ValueError`` / ``FileNotFoundError``
        naming the file (or topic) and the cause."""
        if not isinstance(options, cls.Options):
            options = cls.Options.from_values(options, cls.name)
        return cls(Path(path), options, scenes)

    @property
    def scenes(self) -> list[str]:
        """The scene names, in order."""
        return self._scenes

    @abstractmethod
    def read(self, scene: str, load_points: bool = True) -> SceneRecord:
        """Scene ``scene`` as a :class:`SceneRecord` checked by
        :func:`~occkit.data.scene_record.check_record`. ``load_points`` False: the tables alone (poses,
        timestamps, boxes), each sweep's points empty, a cheap check of every scene before any work."""

    # -- what some readers add ------------------------------------------------------------------------

    def instances(self, scene: str) -> dict[str, Any] | None:
        """``{sweep token: (N,) int32 track ids of its points, 0 none}`` where the recording has them
        (what ``occkit label --write-rig`` keeps), else None."""
        return None

    def write_images(self, scene: str, out: Path) -> dict[str, dict[str, str]]:
        """Write the camera images of ``scene``'s keyframes under ``out`` (the output being written, as
        ``samples/<camera>/<file>``), streamed as they are read, after :meth:`read` of the scene; return
        ``{keyframe token: {camera: path relative to out}}``, what the index records as ``img_path``
        (a camera missing at a keyframe is left out of its entry). For a recording whose images are
        not files to link (:attr:`images`): a ROS bag's messages. The default: none."""
        return {}

    def fingerprint(self, scenes: list[str]) -> Any:
        """A JSON value that changes when the recording of ``scenes`` does (cheap: hashes of its tables,
        sizes and modification times of its data files): part of the key a stopped ``occkit label``
        resumes by. The default: the sizes and times of the files under :attr:`source`."""
        return files_fingerprint(self.source)

    def image_file(self, path: str) -> Path | None:
        """The file an :attr:`images` path names (``samples/CAM_FRONT/x.jpg``: its first part a name of
        :attr:`image_links`, the rest under that folder), or None when it names no linked folder."""
        parts = Path(path).parts if path else ()
        if len(parts) < 2 or parts[0] not in self.image_links or ".." in parts:
            return None
        return Path(self.image_links[parts[0]]).joinpath(*parts[1:])

    # -- for the label command ------------------------------------------------------------------------

    @property
    def reader(self) -> str:
        """The reader's name (what a worker re-opens the recording with)."""
        return self.name

    def option_values(self) -> dict[str, Any]:
        """The options given, as JSON values (what a worker re-opens with, and the resume key holds)."""
        return self.options.given()

    def content_fingerprint(self, scenes: list[str]) -> Any:
        return self.fingerprint(scenes)

    def read_scene(self, scene: str, load_points: bool = True) -> SceneRecord:
        """Scene ``scene`` (one of :attr:`scenes`) as a checked :class:`SceneRecord`."""
        if scene not in self.scenes:
            raise ValueError(f"{self.source}: {scene!r} is not a scene of this recording ({self.scenes[:5]} ...)")
        return self.read(scene, load_points)


#: What an opened reader is called where it is used as a recording.
Recording = RecordingReader
