"""Resuming a stopped ``occkit label`` (docs/labels.md, "Scale"): the records of the scenes it finished, each
checked as the label run writes it (:func:`occkit.labelgen.run.label_one_scene`) and its files all there; a record
that is not one is said and its scene labelled again."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Any

#: Where a run keeps each finished scene's record (inside the output being written).
STATE = ".label"


def finished_scenes(part: Path, scenes: list[str]) -> dict[str, dict[str, Any]]:
    """The records of the scenes a stopped run finished: those whose label files are all there. A
    record that is not one this command writes (edited, torn, a label path other than
    ``gts/<scene>/<token>/labels.npz`` under the folder) is said and its scene labelled again."""
    from occkit.fileio import read_json
    from occkit.outputs import path_under
    from occkit.schema import validate

    done: dict[str, dict[str, Any]] = {}
    for s in scenes:
        f = part / STATE / "scenes" / f"{s}.json"
        if f.is_file():
            where = str(f.relative_to(part))
            try:
                rec = read_json(f)
                validate(_record_schema(), rec, where)  # its layout (SceneDone); one line naming the field
                if rec["scene"] != s:
                    raise ValueError(f"{where}: scene: {rec['scene']!r} is not {s!r}, the scene of its name")
                for token, info in rec["infos"].items():  # no label path leads outside the folder (a link)
                    for p in info["files"]:
                        path_under(part, *Path(p).parts, what=f"{where}: infos.{token}.files")
            except (OSError, ValueError) as e:
                print(f"label: {e if str(e).startswith(where) else f'{where}: {e}'}; scene {s} is labelled again")
                continue
            if all((part / f).is_file() for info in rec["infos"].values() for f in info["files"]):
                done[s] = rec
    return done


@functools.cache
def _record_schema() -> Any:
    """The schema of a finished scene's record as :func:`occkit.labelgen.run.label_one_scene` writes it
    (``{"scene", "infos": {token: {"gt_path", "files", "token", "record"}}, "report", "read"}``), declared
    where it is read (pydantic imported then, never at ``occkit --help``)."""
    from pydantic import AfterValidator, ConfigDict, Field, model_validator

    from occkit.schema import Int, Number, Table, Text, problem

    def inside(f: str) -> str:
        if Path(f).is_absolute() or ".." in Path(f).parts:
            raise problem(f"{f!r} is not a path inside the output")
        return f

    class LabelFiles(Table):
        """A keyframe's label files, as its format's writer made them."""

        gt_path: Text = Field(description="the label file the index names, one of files")
        files: list[Annotated[Text, AfterValidator(inside)]] = Field(description="paths inside the output")
        token: Text
        record: dict[str, Any]

        @model_validator(mode="after")
        def _one_of_its_files(self) -> LabelFiles:
            if self.gt_path not in self.files:
                raise problem(f"gt_path {self.gt_path!r} is not one of the files its writer made")
            return self

    class SceneReport(Table):
        """The figures of a scene's labelling the run's report sums (its other figures kept as they are)."""

        model_config = ConfigDict(extra="allow")
        keyframes: Int = Field(ge=0)
        seconds: dict[str, Any]
        peak_traced_mb: Number
        density: Number
        missing: list[Any]

    class SceneDone(Table):
        """A finished scene's record (``.label/scenes/<scene>.json``)."""

        scene: Text
        infos: dict[str, LabelFiles] = Field(min_length=1, description="each keyframe's label files by token")
        report: SceneReport
        read: str | None = Field(None, description="a hash of what the scene was labelled from")

    return SceneDone


def scene_digest(rec: Any) -> str:
    """A SHA-256 of what a scene's labels were made from (a :class:`~occkit.data.scene_record.SceneRecord`): every
    sweep's token, time, sensor, pose, points, labels, intensities and boxes, the sensors and the classes. A
    finished scene keeps it, and a resumed run labels the scene anew when what it reads now differs (an edit that
    keeps a file's size and time included)."""
    import hashlib

    import numpy as np

    h = hashlib.sha256(f"{rec.name}\0{rec.classes}\0{rec.ego_size}\0{rec.ego_center}\0".encode())

    def arr(a: Any) -> None:
        if a is None:
            h.update(b"none")
        else:
            a = np.ascontiguousarray(a)
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(a.tobytes())

    for name in sorted(rec.lidars):
        h.update(name.encode())
        arr(rec.lidars[name])
    for name in sorted(rec.cameras):
        c = rec.cameras[name]
        h.update(f"{name}{tuple(c.image_size)}".encode())
        arr(c.K)
        arr(c.T_ego_from_cam)
    for s in rec.sweeps:
        h.update(f"\0{s.token}\0{s.timestamp}\0{s.sensor}\0{s.keyframe}\0".encode())
        for a in (s.T_global_from_ego, s.points, s.labels, s.intensity):
            arr(a)
        if s.boxes is not None:
            for a in (s.boxes.track, s.boxes.cls, s.boxes.center, s.boxes.size, s.boxes.yaw):
                arr(a)
    return h.hexdigest()


def changed_since(recording: Any, done: dict[str, dict[str, Any]]) -> list[str]:
    """The finished scenes of ``done`` whose recording reads otherwise now than when they were labelled (their
    :func:`scene_digest` differs, or their record has none): to be labelled again. Each is read once."""
    return [s for s, r in done.items() if r.get("read") != scene_digest(recording.read_scene(s))]
