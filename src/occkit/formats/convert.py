"""``occkit convert``: a dataset's ground truth from one layout to another (docs/DATASET.md,
"Converting between layouts").

Each frame goes through three steps, each the identity where the two layouts agree:

1. **Classes**: through a class map (``configs/classmaps``, :mod:`occkit.formats.classmap`) joining
   the two class tables, read in either direction: a source class goes to its common class, written
   as the first target class that common class lists; a dropped source class becomes the target's
   ignore value. Layouts of one class table need no map.
2. **Frame and grid**: each target voxel takes the label of the source voxel holding its centre
   (nearest voxel centre), the centre carried from the target's label frame into the source's
   through the frames' transforms the source gives (``lidar_sensor.extrinsic`` for LiDAR <-> ego);
   target voxels whose centre lies outside the source grid are the target's ignore value (unseen in
   its masks).
3. **Files**: the target's :class:`~occkit.formats.spec.LabelWriter` lays the frame out (its masks,
   its index, its images linked).

What the conversion loses is counted per frame and in total: classes dropped and merged (voxels per
class), labelled source voxels outside the target grid or between its voxel centres (resolution),
target voxels the source does not cover, and masks the target layout has no place for. The totals
are printed and written to ``convert_report.json`` in the output; ``lossless`` is true when nothing
of the source is lost (a conversion back then gives the source's labels again).

Resumable and atomic: every file is written beside its place and renamed; a frame is recorded as
done (``.occkit-convert/frames/``) after its files, and a rerun of the same command skips the frames
done; the index (``annotations.json``, ``splits.json``) and the report are written last.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from occkit.fileio import file_sums, read_json, sums_match, write_json_atomic
from occkit.formats.classmap import DROPPED, ClassMap, class_map_names, load_class_map
from occkit.formats.registry import FormatRegistryError, detect_format, format_names, formats, get_format
from occkit.formats.spec import DatasetFormat, FrameLabels
from occkit.geometry.grid import Grid

STATE_DIR = ".occkit-convert"
REPORT_FILE = "convert_report.json"


class ConvertError(ValueError):
    """A conversion that cannot be made; the message is one line naming what and why."""


class OutsideOutput(ConvertError):
    """A path that a record or a writer gives and that leads outside ``--out``: refused, never followed."""


# ---------------------------------------------------------------------------------------------- formats


def writable_formats() -> tuple[str, ...]:
    """The formats ``occkit convert`` writes (those with a label writer)."""
    return tuple(n for n, f in formats().items() if f.label_writer is not None)


def target_format(name: str) -> DatasetFormat:
    """The format ``--to`` names; an unknown one lists the formats, one that cannot be written says so."""
    if name not in formats():
        raise ConvertError(f"--to {name}: not a format (the formats: {', '.join(format_names())})")
    fmt = get_format(name)
    if fmt.label_writer is None:
        raise ConvertError(
            f"--to {name}: occkit convert cannot write {fmt.display_name} (the format has no label writer); "
            f"it writes {', '.join(writable_formats())}"
        )
    return fmt


# ---------------------------------------------------------------------------------------------- classes


@dataclass
class ClassConversion:
    """Source class id -> target class id (``lut``, 255 = the target's ignore value), and what it loses.

    Attributes:
        lut: ``(256,)`` uint8.
        dropped: source class ids whose voxels become ignored.
        merged: target id -> the source ids written as it, where more than one.
        split: target id -> the target classes its common class gathers, where more than one (the
            conversion writes the first).
        class_map: the map's file, or None (one class table).
    """

    lut: np.ndarray
    dropped: tuple[int, ...] = ()
    merged: dict[int, tuple[int, ...]] = field(default_factory=dict)
    split: dict[int, tuple[str, ...]] = field(default_factory=dict)
    class_map: Path | None = None


def _same_table(a: DatasetFormat, b: DatasetFormat) -> bool:
    return a.classes.names == b.classes.names and a.classes.free == b.classes.free


def _map_joins(cm: ClassMap, src: DatasetFormat, dst: DatasetFormat) -> bool | None:
    """True: ``cm`` maps ``src`` -> ``dst`` as written; False: reversed; None: it joins other tables."""
    a, b = get_format(cm.source), get_format(cm.target)
    if _same_table(a, src) and _same_table(b, dst):
        return True
    if _same_table(a, dst) and _same_table(b, src):
        return False
    return None


def find_class_map(src: DatasetFormat, dst: DatasetFormat) -> str:
    """The one shipped class map joining the two class tables; none or several is a one-line error."""
    found = []
    for name in class_map_names():
        try:
            if _map_joins(load_class_map(name), src, dst) is not None:
                found.append(name)
        except (ValueError, KeyError, FileNotFoundError):
            continue
    if len(found) == 1:
        return found[0]
    if not found:
        raise ConvertError(
            f"no class map joins {src.name}'s classes and {dst.name}'s (occkit's: {', '.join(class_map_names())}): "
            "write one (docs/DATASET.md, 'Converting between layouts') and pass --class-map FILE"
        )
    raise ConvertError(f"several class maps join {src.name} and {dst.name} ({', '.join(found)}): pass --class-map NAME")


def class_conversion(src: DatasetFormat, dst: DatasetFormat, class_map: str | os.PathLike | None) -> ClassConversion:
    """How ``src``'s class ids become ``dst``'s: the identity for one class table (unless a map is
    given), else through ``class_map`` (or the one shipped map joining the tables)."""
    ignore = 255 if dst.classes.ignore is None else dst.classes.ignore
    if class_map is None and _same_table(src, dst):
        lut = np.full(256, ignore, np.uint8)
        lut[: src.classes.num_classes] = np.arange(src.classes.num_classes)
        return ClassConversion(lut)
    cm = load_class_map(class_map if class_map is not None else find_class_map(src, dst))
    forward = _map_joins(cm, src, dst)
    if forward is None:
        raise ConvertError(
            f"{cm.path}: joins {cm.source} and {cm.target}, not {src.name}'s classes and {dst.name}'s "
            f"(--class-map for this conversion maps {src.name} to {dst.name} or back)"
        )
    s_lut = cm.source_lut if forward else cm.target_lut
    t_members = cm.target_members if forward else cm.source_members
    dst_ids = {n: i for i, n in enumerate(dst.classes.names)}
    lut = np.full(256, ignore, np.uint8)
    dropped, into, split = [], {}, {}
    for i in range(src.classes.num_classes):
        k = int(s_lut[i])
        if k == DROPPED:
            dropped.append(i)
            continue
        members = t_members[k]
        lut[i] = dst_ids[members[0]]
        into.setdefault(int(lut[i]), []).append(i)
        if len(members) > 1:
            split[int(lut[i])] = members
    merged = {t: tuple(s) for t, s in into.items() if len(s) > 1}
    return ClassConversion(lut, tuple(dropped), merged, split, cm.path)


# ---------------------------------------------------------------------------------------------- grids


def voxel_centres(grid: Grid) -> np.ndarray:
    """``(X * Y * Z, 3)`` float64 centres of ``grid``'s voxels, C order of ``[x, y, z]``."""
    lo, vs = np.asarray(grid.range_min, np.float64), np.asarray(grid.voxel_size, np.float64)
    axes = [lo[a] + (np.arange(n) + 0.5) * vs[a] for a, n in enumerate(grid.shape)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)


def centres_of(flat: np.ndarray, grid: Grid) -> np.ndarray:
    """``(N, 3)`` centres of the voxels of ``grid`` at flat (C order) indices ``flat``."""
    ijk = np.stack(np.unravel_index(np.asarray(flat, np.int64), tuple(grid.shape)), -1)
    return np.asarray(grid.range_min, np.float64) + (ijk + 0.5) * np.asarray(grid.voxel_size, np.float64)


def voxel_of(points: np.ndarray, grid: Grid) -> np.ndarray:
    """The flat index (C order) of the voxel of ``grid`` holding each point ``(N, 3)``, -1 outside.
    A voxel ``i`` holds ``[lo + i v, lo + (i + 1) v)``."""
    lo, vs = np.asarray(grid.range_min, np.float64), np.asarray(grid.voxel_size, np.float64)
    ijk = np.floor((points - lo) / vs).astype(np.int64)
    shape = np.asarray(grid.shape)
    inside = ((ijk >= 0) & (ijk < shape)).all(1)
    flat = np.full(len(points), -1, np.int64)
    i = ijk[inside]
    flat[inside] = (i[:, 0] * shape[1] + i[:, 1]) * shape[2] + i[:, 2]
    return flat


def same_grid(a: Grid, b: Grid) -> bool:
    return (
        tuple(a.shape) == tuple(b.shape)
        and np.allclose(a.range_min, b.range_min, atol=1e-6)
        and np.allclose(a.voxel_size, b.voxel_size, atol=1e-9)
    )


def resample_index(src: Grid, dst: Grid, T_src_from_dst: np.ndarray | None) -> np.ndarray | None:
    """For each voxel of ``dst`` (flat, C order), the flat index of the ``src`` voxel holding its
    centre (carried by ``T_src_from_dst``, ``(4, 4)``; None = the identity), -1 where outside ``src``;
    None when the grids are one and the transform the identity (nothing to resample)."""
    T = np.eye(4) if T_src_from_dst is None else np.asarray(T_src_from_dst, np.float64)
    if np.allclose(T, np.eye(4), atol=1e-9) and same_grid(src, dst):
        return None
    if np.allclose(T[:3, :3], np.eye(3), atol=1e-12):  # a translation: one axis at a time
        lo_s, vs_s = np.asarray(src.range_min, np.float64), np.asarray(src.voxel_size, np.float64)
        lo_d, vs_d = np.asarray(dst.range_min, np.float64), np.asarray(dst.voxel_size, np.float64)
        per_axis = []
        for a in range(3):
            c = lo_d[a] + (np.arange(dst.shape[a]) + 0.5) * vs_d[a] + T[a, 3]
            i = np.floor((c - lo_s[a]) / vs_s[a]).astype(np.int64)
            per_axis.append(np.where((i >= 0) & (i < src.shape[a]), i, -1))
        ix, iy, iz = per_axis
        flat = (ix[:, None, None] * src.shape[1] + iy[None, :, None]) * src.shape[2] + iz[None, None, :]
        outside = (ix[:, None, None] < 0) | (iy[None, :, None] < 0) | (iz[None, None, :] < 0)
        return np.where(outside, -1, flat).reshape(-1)
    p = voxel_centres(dst)
    p = p @ T[:3, :3].T + T[:3, 3]
    return voxel_of(p, src)


def frame_transform(frame: FrameLabels, src: DatasetFormat, dst: DatasetFormat) -> np.ndarray | None:
    """``T_src_labels_from_dst_labels`` of a frame, None when both layouts label in one frame; a frame
    whose source does not give the transform is a one-line error."""
    if src.label_frame == dst.label_frame:
        return None
    missing = [f for f in (src.label_frame, dst.label_frame) if f not in frame.T_ego_from]
    if missing:
        raise ConvertError(
            f"frame {frame.token}: {src.name} labels are in the {src.label_frame} frame and {dst.name}'s in the "
            f"{dst.label_frame} frame, and the source does not give its {missing[0]} -> ego transform "
            "(nuScenes layouts: annotations.json's lidar_sensor.extrinsic, or --infos I from occkit prepare nuscenes)"
        )
    return np.linalg.inv(frame.T_ego_from[src.label_frame]) @ frame.T_ego_from[dst.label_frame]


#: What a mask's informative value is: the voxels it marks as not seen / left out.
_MASK_LOSS = {"invalid": True}


def convert_frame(
    frame: FrameLabels, src: DatasetFormat, dst: DatasetFormat, classes: ClassConversion
) -> tuple[FrameLabels, dict[str, Any]]:
    """The frame in ``dst``'s classes and grid (its masks those ``dst``'s writer keeps), and what the
    conversion lost (see the module docstring)."""
    names = src.classes.names
    sem = np.asarray(frame.semantics)
    if sem.shape != tuple(src.grid.shape):
        raise ConvertError(f"frame {frame.token}: labels of shape {sem.shape}, expected {tuple(src.grid.shape)}")
    s_ignore = src.classes.ignore
    d_ignore = 255 if dst.classes.ignore is None else dst.classes.ignore
    bad = (sem >= src.classes.num_classes) & (sem != (255 if s_ignore is None else s_ignore))
    if bad.any():
        ids = np.unique(sem[bad])[:8].tolist()
        raise ConvertError(f"frame {frame.token}: class ids {ids} outside {src.name}'s table")
    counts = np.bincount(sem.reshape(-1), minlength=256)
    report: dict[str, Any] = {
        "dropped_classes": {names[i]: int(counts[i]) for i in classes.dropped if counts[i]},
        "merged_classes": {},
    }
    for t, srcs in classes.merged.items():
        present = {names[i]: int(counts[i]) for i in srcs if counts[i]}
        if len(present) > 1:
            report["merged_classes"][dst.classes.names[t]] = present
    mapped = classes.lut[sem]
    mapped[sem == (255 if s_ignore is None else s_ignore)] = d_ignore
    T = frame_transform(frame, src, dst)
    idx = resample_index(src.grid, dst.grid, T)
    labelled = (sem != src.classes.free) & (sem != (255 if s_ignore is None else s_ignore))
    keep = dst.label_writer.masks if dst.label_writer is not None else ()
    if idx is None:
        out_sem = mapped
        out_masks = {k: v for k, v in frame.masks.items() if k in keep}
        geo = {"target_voxels_outside_source": 0, "source_voxels_outside_target": 0, "source_voxels_between_centres": 0}
    else:
        inside = idx >= 0
        flat = mapped.reshape(-1)
        out_flat = np.full(idx.shape, d_ignore, np.uint8)
        out_flat[inside] = flat[idx[inside]]
        out_sem = out_flat.reshape(dst.grid.shape)
        out_masks = {}
        for k, m in frame.masks.items():
            if k in keep:
                mf = np.full(idx.shape, _MASK_LOSS.get(k, False), bool)
                mf[inside] = m.reshape(-1)[idx[inside]]
                out_masks[k] = mf.reshape(dst.grid.shape)
        sampled = np.zeros(sem.size, bool)
        sampled[idx[inside]] = True
        lost = np.flatnonzero(labelled.reshape(-1) & ~sampled)
        outside = 0
        if len(lost):  # where the lost voxels' centres fall: outside the target grid, or between its centres
            c = centres_of(lost, src.grid)
            if T is not None:
                Ti = np.linalg.inv(T)
                c = c @ Ti[:3, :3].T + Ti[:3, 3]
            outside = int((voxel_of(c, dst.grid) < 0).sum())
        geo = {
            "target_voxels_outside_source": int((~inside).sum()),
            "source_voxels_outside_target": outside,
            "source_voxels_between_centres": int(len(lost) - outside),
        }
    report.update(geo)
    report["masks_dropped"] = {
        k: int((m == _MASK_LOSS.get(k, False)).sum())
        for k, m in frame.masks.items()
        if k not in keep and (m == _MASK_LOSS.get(k, False)).any()
    }
    report["lossless"] = not (
        report["dropped_classes"]
        or report["merged_classes"]
        or geo["source_voxels_outside_target"]
        or geo["source_voxels_between_centres"]
        or report["masks_dropped"]
    )
    out = FrameLabels(
        token=frame.token,
        scene=frame.scene,
        semantics=np.ascontiguousarray(out_sem, dtype=np.uint8),
        masks=out_masks,
        T_ego_from=frame.T_ego_from,
        sensor_files=frame.sensor_files,
        record=frame.record,
    )
    return out, report


class PredictionResampler:
    """Predictions of the format ``source`` brought onto the grid and frame of the ground truth of
    ``target`` (``occkit eval --class-map`` across grids), as :func:`convert_frame` brings labels:
    each ground-truth voxel takes the predicted voxel holding its centre.

    ``dataset``: the ground truth's frames (``target.open``), whose label writer's ``read`` gives a
    frame's transforms when the two label frames differ. Calling it with ``(token, pred)`` gives the
    resampled ``(X, Y, Z)`` uint8 and the voxels the predictions' grid covers (bool), or ``(pred,
    None)`` unchanged for one grid and frame.
    """

    def __init__(self, source: DatasetFormat, target: DatasetFormat, dataset: Any) -> None:
        self.source, self.target, self.dataset = source, target, dataset
        self._index: dict[bytes, np.ndarray | None] = {}
        if source.label_frame != target.label_frame and target.label_writer is None:
            raise ConvertError(
                f"predictions of {source.name} ({source.label_frame} frame) on {target.name} ground truth "
                f"({target.label_frame} frame): {target.name} gives no frame transforms; convert the predictions' "
                "layout first (occkit convert)"
            )

    def __call__(self, token: str, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        T = None
        if self.source.label_frame != self.target.label_frame:
            i = self.dataset.index_of(token)
            frame = self.target.label_writer.read(self.dataset, i, {})  # type: ignore[union-attr]
            T = frame_transform(frame, self.source, self.target)  # ground-truth voxel centres -> predictions' frame
        key = b"" if T is None else np.round(np.asarray(T), 9).tobytes()
        if key in self._index:
            idx = self._index[key]
        else:
            idx = resample_index(self.source.grid, self.target.grid, T)
            if len(self._index) > 8:  # real frames each have their own extrinsic: keep a few
                self._index = {}
            self._index[key] = idx
        if idx is None:
            return pred, None
        inside = idx >= 0
        out = np.zeros(idx.shape, np.uint8)
        out[inside] = np.asarray(pred).reshape(-1)[idx[inside]]
        shape = tuple(self.target.grid.shape)
        return out.reshape(shape), inside.reshape(shape)


# ---------------------------------------------------------------------------------------------- folders


def _named(e: OSError, path: Path) -> OSError:
    """``e`` with ``path`` as its file when it names none (a write through a file object: a full
    disk, a quota, a file too large for the file system said no file)."""
    if e.filename is not None:
        return e
    import errno

    return OSError(e.errno, e.strerror or os.strerror(e.errno or errno.EIO), str(path))


def _state_key(token: str) -> str:
    return token.replace("/", "__") + ".json"


def inside_out(out: Path, rel: Any, where: str) -> Path:
    """``out / rel`` for a path ``rel`` that a record (``where``) or a writer gives, refused in one
    line unless it is a relative path that stays inside ``out`` (its folders resolved: no ``..``,
    no absolute path, no link to a folder elsewhere). The last component is not followed, so a
    link occkit made (an image linked into the layout) is the link itself, never its target."""
    if not isinstance(rel, str) or not rel or "\0" in rel:
        raise ConvertError(f"{where}: {rel!r} is not a file path of the output; not a record occkit convert writes")
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts:
        raise OutsideOutput(
            f"{where}: names {rel}, which lies outside --out {out} (an edited or damaged record?); occkit convert "
            "writes and deletes only inside its output folder: nothing was touched"
        )
    base = out.resolve()
    full = (out / p).parent.resolve() / p.name
    if base != full and base not in full.parents:
        raise OutsideOutput(
            f"{where}: {rel} resolves to {full}, outside --out {out} (a folder there links elsewhere); occkit convert "
            "writes and deletes only inside its output folder: nothing was touched"
        )
    return out / p


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


def _kept_frame(out: Path, side: Path) -> dict[str, Any] | None:
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


def _check_out(out: Path, src_root: Path, settings: dict[str, Any], overwrite: bool) -> None:
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


def add_report(total: dict[str, Any], rep: dict[str, Any]) -> None:
    """Add a frame's report ``rep`` into the running ``total``: flags and-ed, counts summed, per-class
    counts summed by name (the conversion's summary, also pseudolabel's)."""
    for k, v in rep.items():
        if isinstance(v, bool):
            total[k] = total.get(k, True) and v
        elif isinstance(v, int):
            total[k] = total.get(k, 0) + v
        elif isinstance(v, dict):
            sub = total.setdefault(k, {})
            for name, n in v.items():
                if isinstance(n, dict):
                    inner = sub.setdefault(name, {})
                    for a, b in n.items():
                        inner[a] = inner.get(a, 0) + b
                else:
                    sub[name] = sub.get(name, 0) + n


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
    ``to``'s layout under ``out``; returns the report (also ``out/convert_report.json``). See the
    module docstring."""
    src_root, out = Path(data), Path(out)
    if source_format is not None:
        if source_format not in formats():
            raise ConvertError(f"--from {source_format}: not a format (the formats: {', '.join(format_names())})")
        src = get_format(source_format)
        if Path(data).is_dir() and src.detect(Path(data)) is None:  # said now, not as a file of that layout missing
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
            src = detect_format(src_root)
        except FormatRegistryError as e:
            raise ConvertError(str(e).replace("; pass --format", "; pass --from FORMAT")) from e
    dst = target_format(to)
    if src.label_writer is None:
        raise ConvertError(f"{src_root}: occkit convert cannot read {src.display_name} labels (no label writer)")
    family, target_family = src.label_writer.family, dst.label_writer.family  # type: ignore[union-attr]
    if family != target_family:
        same = [n for n in writable_formats() if get_format(n).label_writer.family == family]  # type: ignore[union-attr]
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
    _check_out(out, src_root, settings, overwrite)
    from occkit.locks import locked_output

    with locked_output(out, "convert"):  # a second writer of --out now is refused, naming this one
        _check_out(out, src_root, settings, overwrite)  # again under the lock: one that finished meanwhile counts
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
    reader, writer = src.label_writer, dst.label_writer
    assert writer is not None
    # the first frame through every step before anything is written: what the source lacks is said now
    first = convert_frame(reader.read(ds, 0, options), src, dst, classes)
    writer.files(first[0])
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
        side = state / "frames" / _state_key(token)
        rec = _kept_frame(out, side)
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


def describe_grid(g: Grid, frame: str) -> str:
    """``200x200x16 at 0.5 m from (-50.0, -50.0, -5.0), lidar frame``: a grid in a summary line."""
    shape = "x".join(str(int(s)) for s in g.shape)
    return f"{shape} at {g.voxel_size[0]:g} m from {tuple(round(float(v), 3) for v in g.range_min)}, {frame} frame"


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The report as the lines ``occkit convert`` prints."""
    r = report
    lines = [
        f"{r['source_format']} -> {r['target_format']}: {r['frames']} frames of split {r['split']}"
        + (f" ({r['frames_resumed']} done before)" if r.get("frames_resumed") else ""),
        f"  grid: {r['source_grid']} -> {r['target_grid']}",
        f"  classes: {'through ' + r['class_map'] if r.get('class_map') else 'one class table (identity)'}",
    ]
    for name, n in sorted(r.get("dropped_classes", {}).items()):
        lines.append(f"  dropped class {name}: {n} voxels (written as ignored)")
    for name, srcs in sorted(r.get("merged_classes", {}).items()):
        lines.append(f"  merged into {name}: " + ", ".join(f"{k} {v} voxels" for k, v in srcs.items()))
    for name, members in sorted(r.get("classes_written_as_first", {}).items()):
        lines.append(f"  written as {name}, the first of {', '.join(members)}")
    for key, what in (
        ("source_voxels_outside_target", "labelled source voxels outside the target grid"),
        ("source_voxels_between_centres", "labelled source voxels between the target's voxel centres (resolution)"),
        ("target_voxels_outside_source", "target voxels outside the source grid (written as ignored, unseen)"),
    ):
        if r.get(key):
            lines.append(f"  {what}: {r[key]}")
    for name, n in sorted(r.get("masks_dropped", {}).items()):
        lines.append(f"  {name}: not kept by {r['target_format']} ({n} voxels it marked)")
    lines += [f"  note: {n}" for n in r.get("notes", [])]
    lines.append("  lossless" if r.get("lossless") else "  not lossless (see above)")
    return lines
