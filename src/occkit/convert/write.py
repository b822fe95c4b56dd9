"""``occkit convert``'s run (:func:`convert_dataset`): the source detected, the target and the class
conversion planned, ``--out`` checked and locked, then each frame converted and written with its
record, the target's index and the report last (:mod:`occkit.convert`)."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from typing import Any

from occkit.convert.frame import convert_frame
from occkit.convert.plan import ClassConversion, class_conversion, target_format, writable_formats
from occkit.convert.records import (
    STATE_DIR,
    check_out,
    frame_entry,
    frame_stub,
    kept_frame,
    own_earlier_files,
    state_key,
)
from occkit.convert.report import add_report, describe_grid
from occkit.fileio import file_sums, write_json_atomic
from occkit.formats.registry import FormatRegistryError, detect_format, format_names, formats, get_format
from occkit.formats.spec import ConvertError, DatasetFormat, FrameLabels, inside_out

REPORT_FILE = "convert_report.json"


def _named(e: OSError, path: Path) -> OSError:
    """``e`` with ``path`` as its file when it names none (a write through a file object: a full
    disk, a quota, a file too large for the file system said no file)."""
    if e.filename is not None:
        return e
    import errno

    return OSError(e.errno, e.strerror or os.strerror(e.errno or errno.EIO), str(path))


def scene_splits(fmt: DatasetFormat, root: Path) -> dict[str, list[str]]:
    """Each named split of the source (those it opens) -> its scenes, for the target's index."""
    out = {}
    for split in fmt.splits:
        try:
            ds = fmt.open_split(root, split, load_images=False)
        except (KeyError, ValueError, FileNotFoundError):
            continue
        scenes = list(dict.fromkeys(f.scene for f in ds.frames))
        if scenes:
            out[split] = scenes
    return out


#: OSErrors that are the place's (the disk, the quota, the file size limit), not a writer's
_PLACE_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EIO})


def _rehearse(
    writer: Any, first: tuple[FrameLabels, dict[str, Any]], options: dict[str, Any], src: Any, dst: Any, root: Path
) -> None:
    """The first frame written, and the index finished with it, into a scratch folder (removed after)
    before anything is written under ``--out``: a target whose writer cannot take the source's frames
    (an index the source lacks, a record without the keys the target's index needs) is said in one
    line now, not after every frame is written."""
    import tempfile

    conv, rep = first
    with tempfile.TemporaryDirectory(prefix="occkit-convert-check-") as tmp:
        scratch = Path(tmp)
        step = "listing its files"
        try:
            files = writer.files(conv)
            step = "writing the first frame"
            writer.write(scratch, conv)
            step = "writing the index of the first frame"
            writer.finish(scratch, [frame_stub(frame_entry(conv, files, rep))], dict(options))
        except ConvertError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure of the writer on the source's frame, said in one line
            if isinstance(e, OSError) and e.errno in _PLACE_ERRNOS:
                # the scratch folder's place failing (a full disk, a file too large, a quota) is not the writer's:
                # the real write under --out then names its own file and what failed (a file the writer looks
                # for and lacks, FileNotFoundError, is the writer's and said here)
                return
            raise ConvertError(
                f"{root}: {dst.name} cannot take {src.name}'s frames: {step} failed on frame {conv.token} "
                f"({type(e).__name__}: {e}); nothing was written"
            ) from e


def convert_dataset(
    data: str | os.PathLike,
    out: str | os.PathLike,
    to: str,
    class_map: str | os.PathLike | None = None,
    split: str = "all",
    infos: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = True,
    source_format: str | None = None,
) -> dict[str, Any]:
    """Convert the dataset at ``data`` (of the format ``source_format``, or the one detected) into
    ``to``'s layout under ``out``; returns the report (also ``out/convert_report.json``). See
    :mod:`occkit.convert`."""
    src_root, out = Path(data), Path(out)
    if source_format is not None:
        if source_format not in formats():
            raise ConvertError(f"--from {source_format}: not a format (the formats: {', '.join(format_names())})")
        src = get_format(source_format)
        if (
            Path(data).is_dir() and src.detection.detect(Path(data)) is None
        ):  # said now, not as a file of that layout missing
            try:
                other = f"it looks like {detect_format(Path(data)).name}"
            except (FormatRegistryError, ValueError, OSError):
                other = "no format recognises it"
            raise ConvertError(
                f"--from {source_format}: {data} is not a {src.display_name} dataset (it lacks that layout's files; "
                f"{other}); give the folder of a {source_format} dataset, or leave --from out to detect the format"
            )
    else:
        try:
            src = detect_format(src_root, option="--from {}")
        except FormatRegistryError as e:
            raise ConvertError(str(e)) from e
    dst = target_format(to)
    if src.writers.label_writer is None:
        raise ConvertError(f"{src_root}: occkit convert cannot read {src.display_name} labels (no label writer)")
    family, target_family = src.writers.label_writer.family, dst.writers.label_writer.family  # type: ignore[union-attr]
    if family != target_family:
        same = [n for n in writable_formats() if get_format(n).writers.label_writer.family == family]  # type: ignore[union-attr]
        raise ConvertError(
            f"{src.name} -> {dst.name}: the layouts hold different sensor rigs (the {family} family and the "
            f"{target_family} family); occkit convert writes {src.name} as {', '.join(same)}"
        )
    if split != "all" and split not in src.splits:
        raise ConvertError(f"--split {split}: not a split of {src.name} ({', '.join(('all', *src.splits))})")
    classes = class_conversion(src, dst, class_map)
    settings = {
        "source": str(src_root.resolve()),
        "source_format": src.name,
        "to": dst.name,
        "class_map": None if classes.class_map is None else str(classes.class_map),
        "split": split,
        "infos": None if infos is None else str(Path(infos).resolve()),
    }
    if not src_root.is_dir():
        raise ConvertError(f"--data {src_root}: not a folder")
    check_out(out, src_root, settings, overwrite)
    from occkit.locks import locked_output

    with locked_output(out, "convert"):  # a second writer of --out now is refused, naming this one
        check_out(out, src_root, settings, overwrite)  # again under the lock: one that finished meanwhile counts
        return _convert(src_root, out, src, dst, classes, settings, split, infos, overwrite, progress)


def _convert(
    src_root: Path,
    out: Path,
    src: DatasetFormat,
    dst: DatasetFormat,
    classes: ClassConversion,
    settings: dict[str, Any],
    split: str,
    infos: str | os.PathLike | None,
    overwrite: bool,
    progress: bool,
) -> dict[str, Any]:
    """:func:`convert_dataset` once ``--out`` is checked and locked."""
    ds = src.open_split(src_root, split, load_images=False, load_gt=True)
    if len(ds) == 0:
        raise ConvertError(f"{src_root}: no labelled frames in split {split!r}")
    options = {
        "split": split,
        "source_root": str(src_root),
        "infos": infos,
        "scene_splits": scene_splits(src, src_root),
    }
    reader, writer = src.writers.label_writer, dst.writers.label_writer
    assert writer is not None
    # the first frame through every step before anything is written: what the source lacks is said now
    first = convert_frame(reader.read(ds, 0, options), src, dst, classes)
    _rehearse(writer, first, options, src, dst, src_root)  # and what the target's writer cannot take of it
    state = out / STATE_DIR
    if overwrite and (state.is_dir() or state.is_symlink()):  # the earlier conversion's own files go with its records
        import shutil

        for p in own_earlier_files(out, state):  # every record checked before anything is deleted
            p.unlink()
        shutil.rmtree(state)
    write_json_atomic(state / "state.json", settings)
    n = len(ds)
    done = skipped = 0
    total: dict[str, Any] = {"lossless": True}
    stubs: list[FrameLabels] = []
    for i in range(n):
        token = ds.frames[i].token
        side = state / "frames" / state_key(token)
        rec = kept_frame(out, side)
        if rec is not None:
            stubs.append(frame_stub(rec))
            add_report(total, rec["report"])
            skipped += 1
            continue
        conv, rep = first if i == 0 else convert_frame(reader.read(ds, i, options), src, dst, classes)
        files = writer.files(conv)
        for rel in files:  # a token or scene name of the source that would lead outside --out: refused
            inside_out(out, rel, f"frame {conv.token} of {src_root}")
        try:
            writer.write(out, conv)
        except OSError as e:  # a full disk or a file too large, said with the file being written
            raise _named(e, out / files[0]) from e
        entry = frame_entry(conv, files, rep)
        entry["sums"] = file_sums(out, files)
        write_json_atomic(side, entry)
        stubs.append(frame_stub(entry))
        add_report(total, rep)
        first = None  # type: ignore[assignment]
        done += 1
        if progress and (done % 50 == 0 or i == n - 1):
            print(f"convert: {i + 1}/{n} frames", file=sys.stderr, flush=True)
    notes = writer.finish(out, stubs, options)
    report = {
        "source": str(src_root),
        "source_format": src.name,
        "target_format": dst.name,
        "split": split,
        "class_map": settings["class_map"],
        "frames": n,
        "frames_resumed": skipped,
        "source_grid": describe_grid(src.grid, src.label_frame),
        "target_grid": describe_grid(dst.grid, dst.label_frame),
        "classes_written_as_first": {dst.classes.names[t]: list(m) for t, m in classes.split.items()},
        **total,
        "notes": notes,
    }
    write_json_atomic(out / REPORT_FILE, report)
    return report
