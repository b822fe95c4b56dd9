"""occkit label on one recording whose world frame is moved by constant offsets: seconds a keyframe and the
labels against the unshifted ones (issue 105).

A rig folder (``occkit synth --sweeps K`` writes one at ``W/rig``) is copied with its tables rewritten: every
ego pose's translation and every box centre plus the offset (the points are in the sensor frame and are
linked, not copied). Each copy's first scene is labelled in this process by
:func:`occkit.labelgen.pipeline.label_scene` with the default options (``--options`` switches boolean ones on:
``refine_boxes,find_moving``), through the rig reader as ``occkit label`` reads it. Printed per offset: seconds
a keyframe, wall and CPU (the fastest of ``--repeats``, after one untimed run that compiles the numba kernels),
the occupied IoU of the labels against the unshifted ones (percent, over the keyframes' voxels together) and
how many voxels of the semantics and the two masks differ.

    python benchmarks/label_georeferenced.py --data W [--repeats 3] [--options find_moving] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

OFFSETS = {
    "0": (0.0, 0.0, 0.0),
    "1e4": (1e4, 1e4, 1e4),
    "1e6": (1e6, 1e6, 1e6),
    "utm (5e5, 5e6, 0)": (5e5, 5e6, 0.0),
    "ecef-like (4e6, 1e6, 4.8e6)": (4e6, 1e6, 4.8e6),
}


def shifted_rig(rig: Path, out: Path, offset: tuple[float, float, float], scene: str) -> Path:
    """``rig`` with its world frame moved by ``offset``, its scene ``scene`` alone: ``rig.json``, the tables
    rewritten, the points linked."""
    out.mkdir(parents=True)
    meta = json.loads((rig / "rig.json").read_text())
    meta["scenes"] = [scene]
    meta.pop("splits", None)
    (out / "rig.json").write_text(json.dumps(meta))
    (out / scene).mkdir()
    (out / scene / "lidar").symlink_to((rig / scene / "lidar").resolve())
    table = json.loads((rig / scene / "sweeps.json").read_text())
    for s in table["sweeps"]:
        s["ego_pose"]["translation"] = [v + o for v, o in zip(s["ego_pose"]["translation"], offset)]
    (out / scene / "sweeps.json").write_text(json.dumps(table))
    if (rig / scene / "boxes.json").is_file():
        table = json.loads((rig / scene / "boxes.json").read_text())
        for b in table["boxes"]:
            b["center"] = [v + o for v, o in zip(b["center"], offset)]
        (out / scene / "boxes.json").write_text(json.dumps(table))
    return out


def label(rig: Path, options: dict) -> tuple[list, float, float]:
    """The labels of the rig's first scene, and the seconds ``label_scene`` took: wall and CPU (this process's
    threads together: on a loaded machine the CPU seconds move less than the wall's)."""
    from occkit.data.recordings.registry import open_recording
    from occkit.formats import default_format
    from occkit.labelgen.pipeline import LabelOptions, label_scene

    fmt = default_format()
    free = fmt.classes.free
    recording = open_recording(rig, None, {"scenes": None})
    rec = recording.read_scene(recording.scenes[0])
    t, c = time.perf_counter(), time.process_time()
    labels, _ = label_scene(rec, fmt.grid, fmt.classes.names[:free], free, LabelOptions(**options))
    return labels, time.perf_counter() - t, time.process_time() - c


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="a world written by occkit synth --sweeps K, or a rig")
    p.add_argument("--scene", default=None, help="the scene (default: the rig's first)")
    p.add_argument("--repeats", type=int, default=1, help="timed runs an offset (the fastest is printed)")
    p.add_argument("--options", default="", help="boolean label options switched on, comma-separated")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    import torch

    from occkit.formats import default_format

    torch.set_num_threads(1)
    rig = args.data / "rig" if (args.data / "rig" / "rig.json").is_file() else args.data
    if not (rig / "rig.json").is_file():
        p.error(f"--data {args.data}: no rig.json there or in its rig/ folder (occkit synth --sweeps K writes one)")
    scene = args.scene or json.loads((rig / "rig.json").read_text())["scenes"][0]
    options = {k: True for k in args.options.split(",") if k}
    free = default_format().classes.free
    rows = []
    ref = None
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, offset) in enumerate(OFFSETS.items()):
            r = shifted_rig(rig, Path(tmp) / f"r{i}", offset, scene)
            if ref is None:
                label(r, options)  # untimed: the numba kernels compile on the first call
            times, cpu = [], []
            for _ in range(max(args.repeats, 1)):
                labels, seconds, cpu_seconds = label(r, options)
                times.append(seconds / len(labels))
                cpu.append(cpu_seconds / len(labels))
            ref = ref if ref is not None else labels
            inter = union = 0
            differ = {"semantics": 0, "mask_lidar": 0, "mask_camera": 0}
            for a, b in zip(ref, labels, strict=True):
                oa, ob = a.semantics != free, b.semantics != free
                inter += int((oa & ob).sum())
                union += int((oa | ob).sum())
                for k in differ:
                    differ[k] += int((getattr(a, k) != getattr(b, k)).sum())
            row = {
                "offset": name,
                "seconds_per_keyframe": round(min(times), 3),
                "cpu_seconds_per_keyframe": round(min(cpu), 3),
                "occupied_iou": round(100.0 * inter / max(union, 1), 2),
                "voxels_differing": differ,
                "keyframes": len(labels),
            }
            rows.append(row)
            print(
                f"{name:>28}: {row['seconds_per_keyframe']:.3f} s a keyframe"
                f" ({row['cpu_seconds_per_keyframe']:.3f} s CPU),"
                f" occupied IoU {row['occupied_iou']:.2f} %"
                f" against offset 0, voxels differing {differ}",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps({"scene": scene, "options": options, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
