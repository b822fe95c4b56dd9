"""One frame through the classes and the grid and frame of the target (:func:`convert_frame`), with
what it loses (:mod:`occkit.convert`, steps 1 and 2)."""

from __future__ import annotations

from typing import Any

import numpy as np

from occkit.convert.plan import ClassConversion
from occkit.formats.spec import ConvertError, DatasetFormat, FrameLabels
from occkit.resampling import centres_of, frame_transform, resample_index, voxel_of

#: What a mask's informative value is: the voxels it marks as not seen / left out.
_MASK_LOSS = {"invalid": True}


def convert_frame(
    frame: FrameLabels, src: DatasetFormat, dst: DatasetFormat, classes: ClassConversion
) -> tuple[FrameLabels, dict[str, Any]]:
    """The frame in ``dst``'s classes and grid (its masks those ``dst``'s writer keeps), and what the
    conversion lost (see :mod:`occkit.convert`)."""
    if not isinstance(frame, FrameLabels) or not isinstance(frame.record, dict):
        got = (
            f"a FrameLabels whose record is a {type(frame.record).__name__}"
            if isinstance(frame, FrameLabels)
            else f"a {type(frame).__name__}"
        )
        raise ConvertError(
            f"{src.name}'s label reader (writers.label_writer.read) gave {got} for frame "
            f"{getattr(frame, 'token', '?')}, not a FrameLabels whose record is an object (docs/design.md, "
            "writers.label_writer)"
        )
    sem = np.asarray(frame.semantics)
    if sem.shape != tuple(src.grid.shape):
        raise ConvertError(f"frame {frame.token}: labels of shape {sem.shape}, expected {tuple(src.grid.shape)}")
    s_ignore = 255 if src.classes.ignore is None else src.classes.ignore
    d_ignore = 255 if dst.classes.ignore is None else dst.classes.ignore
    bad = (sem >= src.classes.num_classes) & (sem != s_ignore)
    if bad.any():
        ids = np.unique(sem[bad])[:8].tolist()
        raise ConvertError(f"frame {frame.token}: class ids {ids} outside {src.name}'s table")
    report = _class_losses(np.bincount(sem.reshape(-1), minlength=256), src, dst, classes)
    mapped = classes.lut[sem]
    mapped[sem == s_ignore] = d_ignore
    T = frame_transform(frame, src, dst)
    idx = resample_index(src.grid, dst.grid, T)
    labelled = (sem != src.classes.free) & (sem != s_ignore)
    keep = dst.writers.label_writer.masks if dst.writers.label_writer is not None else ()
    if idx is None:
        out_sem = mapped
        out_masks = {k: v for k, v in frame.masks.items() if k in keep}
        geo = {"target_voxels_outside_source": 0, "source_voxels_outside_target": 0, "source_voxels_between_centres": 0}
    else:
        inside = idx >= 0
        out_sem, out_masks = _resampled(mapped, frame.masks, keep, idx, inside, dst, d_ignore)
        geo = _geometry_losses(labelled, idx, inside, src, dst, T)
    report.update(geo)
    report["masks_dropped"] = _masks_dropped(frame.masks, keep)
    carried = dst.writers.label_writer.fields if dst.writers.label_writer is not None else ()
    out_fields = {k: v for k, v in frame.fields.items() if k in carried and idx is None}
    report["fields_dropped"] = {  # per-voxel arrays the target does not keep (or on another grid): the voxels
        k: int(np.prod(np.shape(v)[:3])) for k, v in frame.fields.items() if k not in out_fields
    }
    report["lossless"] = not (
        report["dropped_classes"]
        or report["merged_classes"]
        or geo["source_voxels_outside_target"]
        or geo["source_voxels_between_centres"]
        or report["masks_dropped"]
        or report["fields_dropped"]
    )
    out = FrameLabels(
        token=frame.token,
        scene=frame.scene,
        semantics=np.ascontiguousarray(out_sem, dtype=np.uint8),
        masks=out_masks,
        T_ego_from=frame.T_ego_from,
        sensor_files=frame.sensor_files,
        record=frame.record,
        fields=out_fields,
    )
    return out, report


def _class_losses(
    counts: np.ndarray, src: DatasetFormat, dst: DatasetFormat, classes: ClassConversion
) -> dict[str, Any]:
    """The voxels of the source classes the target drops, and of those it merges into one (by target class)."""
    names = src.classes.names
    report: dict[str, Any] = {
        "dropped_classes": {names[i]: int(counts[i]) for i in classes.dropped if counts[i]},
        "merged_classes": {},
    }
    for t, srcs in classes.merged.items():
        present = {names[i]: int(counts[i]) for i in srcs if counts[i]}
        if len(present) > 1:
            report["merged_classes"][dst.classes.names[t]] = present
    return report


def _resampled(
    mapped: np.ndarray,
    masks: dict[str, np.ndarray],
    keep: Any,
    idx: np.ndarray,
    inside: np.ndarray,
    dst: DatasetFormat,
    d_ignore: int,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The mapped labels and the kept masks on ``dst``'s grid: each target voxel takes its source voxel
    ``idx`` (ignore, or the mask's informative value, where it has none)."""
    flat = mapped.reshape(-1)
    out_flat = np.full(idx.shape, d_ignore, np.uint8)
    out_flat[inside] = flat[idx[inside]]
    out_masks = {}
    for k, m in masks.items():
        if k in keep:
            mf = np.full(idx.shape, _MASK_LOSS.get(k, False), bool)
            mf[inside] = m.reshape(-1)[idx[inside]]
            out_masks[k] = mf.reshape(dst.grid.shape)
    return out_flat.reshape(dst.grid.shape), out_masks


def _geometry_losses(
    labelled: np.ndarray,
    idx: np.ndarray,
    inside: np.ndarray,
    src: DatasetFormat,
    dst: DatasetFormat,
    T: np.ndarray | None,
) -> dict[str, int]:
    """What the resampling lost: target voxels with no source, and labelled source voxels no target
    voxel samples, split by where their centres fall (outside the target grid, or between its centres)."""
    sampled = np.zeros(labelled.size, bool)
    sampled[idx[inside]] = True
    lost = np.flatnonzero(labelled.reshape(-1) & ~sampled)
    outside = 0
    if len(lost):  # where the lost voxels' centres fall: outside the target grid, or between its centres
        c = centres_of(lost, src.grid)
        if T is not None:
            Ti = np.linalg.inv(T)
            c = c @ Ti[:3, :3].T + Ti[:3, 3]
        outside = int((voxel_of(c, dst.grid) < 0).sum())
    return {
        "target_voxels_outside_source": int((~inside).sum()),
        "source_voxels_outside_target": outside,
        "source_voxels_between_centres": int(len(lost) - outside),
    }


def _masks_dropped(masks: dict[str, np.ndarray], keep: Any) -> dict[str, int]:
    """The masks the target does not keep, each with its count of informative voxels (those it has any)."""
    return {
        k: int((m == _MASK_LOSS.get(k, False)).sum())
        for k, m in masks.items()
        if k not in keep and (m == _MASK_LOSS.get(k, False)).any()
    }
