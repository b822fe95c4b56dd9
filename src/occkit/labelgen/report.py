"""What ``occkit label --quality`` reports (docs/labels.md, "Quality"): whether the recording holds a synthetic
world's exact occupancy to score against, and the figures (:func:`occkit.labelgen.run.quality_figures`: against
the truth, and along each keyframe's LiDAR rays in any layout) as ``quality.md`` and the lines said."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def truth_lacks(data: Path, scenes: list[str]) -> str | None:
    """None when ``data`` holds the exact occupancy of every scene (a world ``occkit synth --sweeps``
    wrote); else the line that says what scoring against truth needs and what is scored instead."""
    from occkit.labelgen.truth import WorldTruth

    instead = "the labels are scored against the LiDAR's own ranges instead (ray consistency; docs/labels.md)"
    from occkit.labelgen.truth import TRUTH

    if not (Path(data) / "annotations.json").is_file() and not (Path(data) / TRUTH / "annotations.json").is_file():
        return (
            f"{data} holds no truth to score against (a world occkit synth --sweeps K writes: annotations.json "
            f"with gts/ and extras/<scene>/sweeps.json): {instead}"
        )
    try:
        truth = WorldTruth(data)
    except ValueError as e:
        return f"{e}: {instead}"
    lacking = [s for s in scenes if not truth.has(s)]
    if lacking:
        return f"{data} holds no truth for scenes {lacking[:3]} (extras/<scene>/sweeps.json): {instead}"
    return None


def rays_line(q: dict[str, Any], r: dict[str, Any]) -> str:
    """The line of ``--quality``'s figures along the LiDAR rays."""
    return (
        f"label: quality along the LiDAR rays: {r['agree_percent']:.1f} % of {r['rays']} returns agree, "
        f"{r['false_free_percent']:.1f} % false free, {r['false_occupied_percent']:.1f} % false occupied; "
        f"range error median {r['range_error_median_abs_m']:.2f} m, mean {r['range_error_mean_abs_m']:.2f} m "
        "(absolute; quality.md)"
        + (f"; the exact occupancy: {q['rays_exact']['agree_percent']:.1f} % agree" if "rays_exact" in q else "")
    )


def quality_markdown(q: dict[str, Any], cmd: str) -> str:
    """``quality.md``: the figures of :func:`quality_figures` as tables, under the command ``cmd`` that made them."""
    text = ""
    truth = {k: v for k, v in q.items() if k not in ("rays", "rays_exact", "scored_against")}
    if truth:
        rows = "\n".join(f"| {k} | {v} |" for k, v in truth.items())
        text += (
            f"# Label quality against the exact occupancy\n\n{cmd} ({q['keyframes']} keyframes; percent; definitions "
            f"in docs/labels.md)\n\n| figure | value |\n|---|---|\n{rows}\n\n"
        )
    if "rays" not in q:  # an output not in Occ3D's layout: the truth alone
        return text
    r = q["rays"]
    rows = "\n".join(f"| {k} | {v} |" for k, v in r.items() if k != "per_keyframe")
    if "rays_exact" in q:
        rows += "".join(f"\n| exact occupancy: {k} | {v} |" for k, v in q["rays_exact"].items())
    per = "\n".join(
        f"| {k['scene']} | {k['token']} | {k['rays']} | {k['agree_percent']} | {k['false_free_percent']} | "
        f"{k['false_occupied_percent']} | {k['range_error_median_abs_m']} | {k['range_error_mean_abs_m']} |"
        for k in r["per_keyframe"]
    )
    return text + (
        f"# Label quality along the LiDAR rays (no truth needed)\n\n{cmd} ({r['keyframes']} keyframes: each return "
        "of a keyframe's own sweep against the labels' first occupied voxel on its ray; percent of the returns, "
        'metres; definitions in docs/labels.md, "Quality without truth")\n\n| figure | value |\n|---|---|\n'
        f"{rows}\n\n| scene | token | returns | agree % | false free % | false occupied % | median abs error m | "
        f"mean abs error m |\n|---|---|---|---|---|---|---|---|\n{per}\n"
    )
