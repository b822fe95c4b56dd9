"""Resuming a stopped ``occkit label`` (docs/labels.md, "Scale"): the records of the scenes it finished, each
checked as the label run writes it (:func:`occkit.labelgen.run.label_one_scene`) and its files all there; a record
that is not one is said and its scene labelled again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Where a run keeps each finished scene's record (inside the output being written).
STATE = ".label"


def finished_scenes(part: Path, scenes: list[str]) -> dict[str, dict[str, Any]]:
    """The records of the scenes a stopped run finished: those whose label files are all there. A
    record that is not one this command writes (edited, torn, a label path other than
    ``gts/<scene>/<token>/labels.npz`` under the folder) is said and its scene labelled again."""
    from occkit.fileio import read_json

    done: dict[str, dict[str, Any]] = {}
    for s in scenes:
        f = part / STATE / "scenes" / f"{s}.json"
        if f.is_file():
            try:
                rec = read_json(f)
                why = _record_problem(part, s, rec)
            except (OSError, ValueError) as e:
                why = str(e)
            if why:
                print(f"label: {f.relative_to(part)}: {why}; scene {s} is labelled again", flush=True)
            elif all((part / f).is_file() for info in rec["infos"].values() for f in info["files"]):
                done[s] = rec
    return done


def _record_problem(part: Path, scene: str, rec: Any) -> str | None:
    """Why ``rec`` is not a finished scene's record as :func:`occkit.labelgen.run.label_one_scene`
    writes it, or None: every label path is checked as the writer makes it (under the folder)."""
    from occkit.outputs import path_under

    if not isinstance(rec, dict) or rec.get("scene") != scene:
        return f"not the record of scene {scene!r} (a {type(rec).__name__})"
    infos, report = rec.get("infos"), rec.get("report")
    if not isinstance(infos, dict) or not infos or not isinstance(report, dict):
        return "its infos or report is not an object"
    kinds = {"keyframes": int, "seconds": dict, "peak_traced_mb": (int, float), "density": (int, float)}
    bad = [k for k, t in kinds.items() if not isinstance(report.get(k), t) or isinstance(report.get(k), bool)]
    if bad or not isinstance(report.get("missing"), list):
        return f"its report lacks {', '.join(bad) or 'missing'} (or holds another type)"
    for token, info in infos.items():
        got = info.get("gt_path") if isinstance(info, dict) else info
        files = info.get("files") if isinstance(info, dict) else None
        if not isinstance(got, str) or not got or not isinstance(files, list) or got not in files:
            return f"keyframe {token!r}: gt_path {got!r} is not one of the files its writer made"
        for f in files:
            if not isinstance(f, str) or not f or Path(f).is_absolute() or ".." in Path(f).parts:
                return f"keyframe {token!r}: file {f!r} is not a path inside the output"
            path_under(part, *Path(f).parts, what=f"scene {scene!r}, keyframe {token!r}")
    return None


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
