"""What ``occkit label`` needs of a recording: :class:`RecordingReader`, one per kind of recording
(a rig folder, nuScenes tables, KITTI sequences, ROS bags, a folder of point files), and the
:class:`Recording` it opens, whose scenes are :class:`~occkit.data.scene_record.SceneRecord` s.

A reader is one module (``occkit/data/recordings/<name>.py`` holding ``READER = RecordingReader(...)``,
or a module of another package named by an entry point of the group ``occkit.recordings``). The label
command names none: it asks the registry (:mod:`occkit.data.recordings.registry`) which reader takes
``--data``, adds every reader's options to its parser, and hands the options to the reader that opens
the recording. Worker processes and Ray tasks re-open the recording from ``(reader, source,
options)`` (:func:`~occkit.data.recordings.registry.open_recording`), so a recording need not pickle.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the parser of occkit label lists the readers without importing torch
    from occkit.data.scene_record import SceneRecord

#: The entry point group through which another package adds a reader: ``name = "pkg.module:READER"``.
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


@dataclass(frozen=True)
class ReaderOption:
    """A command-line option of a reader (``occkit label --FLAG VALUE``); its value reaches
    :attr:`RecordingReader.open` in the options under :attr:`dest`.

    Attributes:
        flag: the option, ``--lidar-topic``.
        help: one line for ``occkit label --help``.
        type: the function the value is read with (``str``, ``int``, ``float``, ``Path``).
        default: the value when not given.
        metavar: the value's name in the help.
        choices: the values allowed, or None.
    """

    flag: str
    help: str
    type: Callable[[str], Any] = str
    default: Any = None
    metavar: str | None = None
    choices: tuple[Any, ...] | None = None

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


@dataclass
class Recording:
    """An opened recording: its class table, its scenes and how to read each one.

    Attributes:
        reader: the name of the reader that opened it (what a worker re-opens it with).
        source: the path given to ``--data``.
        options: the options it was opened with (JSON values: a worker re-opens with them).
        classes: the class names of the ids its point labels and boxes carry (empty: no labels).
        scenes: the scene names, in order.
        splits: ``{"train_split": [...], "val_split": [...]}`` where the recording says them, else empty.
        images: camera image paths by keyframe token and camera, relative to the folders in
            :attr:`image_links` (what the output's index records as ``img_path``), where the
            recording has images.
        image_links: ``{name: folder}``: folders linked into the output under ``name`` so that the
            recorded image paths resolve there (nuScenes' and Occ3D's ``samples``).
        read: ``(scene, load_points) -> SceneRecord`` (checked, :func:`~occkit.data.scene_record.check_record`).
            ``load_points`` False: the tables alone (poses, timestamps, boxes), each sweep's points
            empty, a cheap check of every scene before any work.
        describe: one line for the user: what was read (``nuScenes v1.0-mini, 10 scenes``).
        instances: ``scene -> {sweep token: (N,) int32 track ids of its points, 0 none}`` where the
            recording has them (what ``occkit label --write-rig`` keeps), else None.
        fingerprint: ``scenes -> JSON value`` that changes when the recording of those scenes does
            (cheap: hashes of its tables, sizes and modification times of its data files); part of
            the key a stopped ``occkit label`` resumes by, so that labels of an edited recording are
            made anew. None: :meth:`content_fingerprint` uses the sizes and times of the files under
            :attr:`source` (the first :data:`FINGERPRINT_FILES`).
    """

    reader: str
    source: Path
    options: dict[str, Any]
    classes: tuple[str, ...]
    scenes: list[str]
    read: Callable[[str, bool], SceneRecord]
    splits: dict[str, list[str]] = field(default_factory=dict)
    images: dict[str, dict[str, str]] = field(default_factory=dict)
    image_links: dict[str, Path] = field(default_factory=dict)
    describe: str = ""
    instances: Callable[[str], dict[str, Any]] | None = None
    fingerprint: Callable[[list[str]], Any] | None = None

    def content_fingerprint(self, scenes: list[str]) -> Any:
        """What the resume key of ``occkit label`` holds of the recording's content (:attr:`fingerprint`)."""
        if self.fingerprint is not None:
            return self.fingerprint(scenes)
        return files_fingerprint(Path(self.source))

    def read_scene(self, scene: str, load_points: bool = True) -> SceneRecord:
        """Scene ``scene`` as a checked :class:`SceneRecord`."""
        if scene not in self.scenes:
            raise ValueError(f"{self.source}: {scene!r} is not a scene of this recording ({self.scenes[:5]} ...)")
        return self.read(scene, load_points)


@dataclass(frozen=True)
class RecordingReader:
    """One kind of recording ``occkit label --data`` reads.

    Attributes:
        name: what ``occkit label --reader NAME`` calls it.
        description: one line for the help (what it reads, with which library).
        detect: ``path -> reason or None``: why ``path`` holds this kind of recording (cheap: names
            of files and folders). The first reader whose ``detect`` answers wins, in increasing
            :attr:`priority`; a path no reader claims is refused listing the readers.
        open: ``(path, options) -> Recording``: the recording opened and its tables checked;
            ``options`` holds every reader's option by ``dest`` (:class:`ReaderOption`) and the
            label command's ``scenes``; a reader uses its own. Bad input: a one-line
            ``ValueError`` / ``FileNotFoundError`` naming the file (or topic) and the cause.
        options: the command-line options this reader takes.
        priority: detection order (lower first; default 50).
        extra: the pip extra that installs what the reader needs (``rosbag``), named when it is missing.
    """

    name: str
    description: str
    detect: Callable[[Path], str | None]
    open: Callable[[Path, Mapping[str, Any]], Recording]
    options: tuple[ReaderOption, ...] = ()
    priority: int = 50
    extra: str = ""
