"""What a conversion lost, summed over its frames (:func:`add_report`) and said in the lines
``occkit convert`` prints (:func:`summary_lines`)."""

from __future__ import annotations

from typing import Any

from occkit.geometry.grid import Grid


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
    for name, n in sorted(r.get("fields_dropped", {}).items()):
        lines.append(f"  {name}: not kept by {r['target_format']} (per-voxel, {n} voxels)")
    lines += [f"  note: {n}" for n in r.get("notes", [])]
    lines.append("  lossless" if r.get("lossless") else "  not lossless (see above)")
    return lines
