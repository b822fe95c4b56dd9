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
