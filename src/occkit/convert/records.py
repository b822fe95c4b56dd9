"""The output folder's records (``.occkit-convert/``), written and checked: the settings of the
conversion (``state.json``) and a side record per converted frame (its files with their sizes and
SHA-256), so that a rerun resumes the frames done and ``--overwrite`` deletes only the files the
conversion wrote. A record naming a path outside ``--out`` is refused, never followed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from occkit.fileio import read_json, sums_match
from occkit.formats.registry import detect_format
from occkit.formats.spec import ConvertError, FrameLabels, OutsideOutput, inside_out

STATE_DIR = ".occkit-convert"


def state_key(token: str) -> str:
    return token.replace("/", "__") + ".json"


def jsonable_record(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` as plain JSON values (arrays as lists, anything else as its string)."""
    return json.loads(json.dumps(record, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def frame_entry(conv: FrameLabels, files: Sequence[str], report: dict[str, Any]) -> dict[str, Any]:
    """The side record of a converted frame (JSON): its token and scene, the files written (relative),
    its sensor files and index record (what the writer's ``finish`` reads back through
    :func:`frame_stub`) and its convert report. ``occkit convert`` and ``occkit pseudolabel`` keep one
    per frame, so a stopped run resumes without reading the labels again."""
    return {
        "token": conv.token,
        "scene": conv.scene,
        "files": list(files),
        "sensor_files": {k: str(v) for k, v in conv.sensor_files.items()},
        "record": jsonable_record(conv.record),
        "report": report,
    }


def frame_stub(d: dict[str, Any]) -> FrameLabels:
    """A frame of a side record (:func:`frame_entry`) as the label writer's ``finish`` takes it: no labels."""
    return FrameLabels(
        token=d["token"],
        scene=d["scene"],
        semantics=np.zeros((0, 0, 0), np.uint8),
        sensor_files={k: Path(v) for k, v in d.get("sensor_files", {}).items()},
        record=d["record"],
    )


def read_frame_record(out: Path, side: Path) -> dict[str, Any]:
    """A converted frame's side record (:func:`frame_entry` with its ``sums``), checked: a JSON object
    whose ``files`` are paths inside ``out``, each with its size and SHA-256; else a one-line
    :class:`ConvertError` naming the record (``OSError`` when it cannot be read)."""
    try:
        rec = read_json(side)
    except ValueError as e:
        raise ConvertError(f"{side}: not a frame record occkit convert writes ({e})") from e
    if not isinstance(rec, dict):
        what = f"JSON {type(rec).__name__}, not an object"
        raise ConvertError(f"{side}: not a frame record occkit convert writes ({what})")
    files, sums = rec.get("files"), rec.get("sums")
    if not isinstance(files, list) or not isinstance(sums, dict):
        raise ConvertError(f"{side}: not a frame record occkit convert writes (no list of 'files' with their 'sums')")
    for rel in files:
        inside_out(out, rel, str(side))
        want = sums.get(rel)
        if not (isinstance(want, dict) and isinstance(want.get("size"), int) and isinstance(want.get("sha256"), str)):
            raise ConvertError(f"{side}: {rel} has no size and SHA-256 recorded; not a record occkit convert writes")
    for key in ("token", "scene", "record", "report"):
        if key not in rec:
            raise ConvertError(f"{side}: not a frame record occkit convert writes (no {key!r})")
    return rec


def kept_frame(out: Path, side: Path) -> dict[str, Any] | None:
    """A converted frame's side record when its files are there with the size and checksum recorded
    when written; else None and the frame is converted again (a record that cannot be read, a
    missing, truncated or changed file: a stop between the files and the record, a damaged copy).
    A record naming a file outside ``out`` is refused (:func:`read_frame_record`), never followed."""
    if not side.is_file():
        return None
    try:
        rec = read_frame_record(out, side)
    except OutsideOutput:
        raise
    except (OSError, ConvertError):
        return None  # damaged: the frame is converted again from the source (its files by their own paths)
    if not sums_match(out, {rel: rec["sums"][rel] for rel in rec["files"]}):
        return None
    return rec


def read_state(state: Path) -> dict[str, Any]:
    """The settings a conversion in ``--out`` recorded (``.occkit-convert/state.json``); a file that is
    not a JSON object of them is refused in one line naming it."""
    try:
        old = read_json(state)
    except ValueError as e:
        raise ConvertError(f"{state}: not a state file occkit convert writes ({e}); nothing was touched") from e
    if not isinstance(old, dict) or not {"source", "to"} <= set(old):
        what = f"JSON {type(old).__name__}" if not isinstance(old, dict) else "no 'source' and 'to'"
        raise ConvertError(
            f"{state}: not a state file occkit convert writes ({what}); nothing was touched: choose a new folder"
        )
    return old


def own_earlier_files(out: Path, state: Path) -> list[Path]:
    """What ``--overwrite`` may delete: the files the earlier conversion's frame records name, each
    inside ``out`` (resolved) and still as written (its size and SHA-256). Every record is checked
    before anything is deleted; a record that fails, a path outside ``out``, or a file changed since
    is refused in one line naming it, and nothing is deleted."""
    if state.is_symlink():
        raise ConvertError(f"{state}: a link, not the folder occkit convert keeps its records in; nothing was touched")
    delete = []
    frames = state / "frames"
    for side in sorted(frames.glob("*.json")) if frames.is_dir() else []:
        rec = read_frame_record(out, side)
        for rel in rec["files"]:
            p = inside_out(out, rel, str(side))
            if not (p.exists() or p.is_symlink()):
                continue
            if p.is_symlink() or not p.is_file() or not sums_match(out, {rel: rec["sums"][rel]}):
                raise ConvertError(
                    f"--out {out}: {rel} is not the file occkit convert wrote there (changed since, or not a file); "
                    "--overwrite deletes only the conversion's own files, and nothing was touched: move it away, or "
                    "choose a new folder"
                )
            delete.append(p)
    return delete


def check_out(out: Path, src_root: Path, settings: dict[str, Any], overwrite: bool) -> None:
    """``out`` new, empty, or a stopped conversion with the same settings; else a one-line error."""
    from occkit.fileio import check_not_dangling

    check_not_dangling(out)
    if out.resolve() == src_root.resolve() or src_root.resolve() in out.resolve().parents:
        raise ConvertError(f"--out {out}: inside the source {src_root}; choose a folder outside it")
    if not out.exists():
        return
    if not out.is_dir():
        raise ConvertError(f"--out {out}: is a file, not a folder")
    state = out / STATE_DIR / "state.json"
    if state.is_file():
        old = read_state(state)
        if old != settings and not overwrite:
            diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
            raise ConvertError(
                f"--out {out}: holds a conversion with other settings ({', '.join(diff)} differ); choose another "
                "folder, or pass --overwrite to redo it"
            )
        return
    if not any(out.iterdir()):
        return
    try:
        held = detect_format(out)
    except (ValueError, OSError):
        held = None
    what = f"a dataset of format {held.name}" if held is not None else "files that are no occkit convert's"
    raise ConvertError(f"--out {out}: holds {what}; choose a new or empty folder")
