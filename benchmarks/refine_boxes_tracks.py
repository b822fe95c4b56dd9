"""Which objects keep trails under ``occkit label --refine-boxes``, and what the smoother costs (docs/results/labels.md,
"What the options recover").

One scene of the synthetic world, swept as ``occkit synth --sweeps N`` sweeps it (the same boxes and the same box
noise as ``benchmarks/label_factors.py``'s cells), its boxes smoothed by ``refine_record_boxes``. For each moving
object: its returns (the world's own point instances, every sweep) outside its box grown by ``box_margin`` (0.2 m)
as recorded and as smoothed (what stays in the static scene as a trail), with its speed, how far it turns and how
far it is. Then the smoother's seconds a keyframe, with Python's allocation tracing off and on (``occkit label``
traces it for ``report.json``'s peak memory).

    python benchmarks/refine_boxes_tracks.py --seed 5 --sweeps 5 --box-center-noise 0.2
    python benchmarks/refine_boxes_tracks.py ... --module old.py  # another smoother, e.g.
        # git show 802977d:src/occkit/labelgen/refine_boxes.py > old.py
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import sys
import time
import tracemalloc

import numpy as np


def _smoother(path: str | None):
    if path is None:
        from occkit.labelgen import refine_boxes

        return refine_boxes
    spec = importlib.util.spec_from_file_location("smoother", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["smoother"] = mod  # a dataclass looks its module up
    spec.loader.exec_module(mod)
    return mod


def _outside(rec, world_points, margin: float, moving: set[int]) -> dict[int, int]:
    """Per moving track: its returns outside its box (grown by ``margin``) over every sweep."""
    from occkit.labelgen.steps import in_box, to_box_frame

    out = {t: 0 for t in moving}
    for s, (p, inst) in zip(rec.sweeps, world_points):
        for k, t in enumerate(s.boxes.track.tolist()):
            sel = inst == t
            if t in moving and sel.any():
                q = to_box_frame(p[sel], s.boxes.center[k], float(s.boxes.yaw[k]))
                out[t] += int((~in_box(q, s.boxes.size[k], margin)).sum())
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--sweeps", type=int, default=10)
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--box-center-noise", type=float, default=0.0)
    p.add_argument("--box-yaw-noise", type=float, default=0.0)
    p.add_argument("--margin", type=float, default=0.2, help="box_margin, metres (occkit label's default)")
    p.add_argument("--module", default=None, help="a refine_boxes.py to load instead of occkit's")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    if args.module is not None and not os.path.isfile(args.module):
        p.error(f"--module {args.module}: no such file")
    from occkit.worlds.driving.config import SynthConfig
    from occkit.worlds.driving.scene import build_scene
    from occkit.worlds.driving.sweeps import SweepNoise, scene_record

    cfg = SynthConfig(scenes=1, frames=args.frames, seed=args.seed, image_size=(96, 160))
    noise = SweepNoise(box_center=args.box_center_noise, box_yaw=args.box_yaw_noise, seed=args.seed)
    rec, truth, inst = scene_record(cfg, 0, args.sweeps, noise)
    scene = build_scene(cfg, 0)
    T_el = rec.lidars[rec.sweeps[0].sensor]
    pts = []
    for s in rec.sweeps:
        T = truth[s.token] @ T_el
        pts.append((s.points.astype(np.float64) @ T[:3, :3].T + T[:3, 3], inst[s.token]))
    moving = {o.instance: o for o in scene.objects if o.dynamic}
    mod = _smoother(args.module)
    refined, report = mod.refine_record_boxes(rec, mod.BoxRefinement(enabled=True))
    before = _outside(rec, pts, args.margin, set(moving))
    after = _outside(refined, pts, args.margin, set(moving))
    total = sum(int((i_ > 0).sum()) for _, i_ in pts)
    print(f"seed {args.seed}, {args.sweeps} sweeps, box noise {args.box_center_noise} m, {args.box_yaw_noise} deg")
    print(f"returns of moving objects outside their boxes: {sum(before.values())} -> {sum(after.values())}")
    for t in sorted(moving, key=lambda t: -after[t]):
        o = moving[t]
        ys = [s.boxes.yaw[s.boxes.track == t] for s in rec.sweeps]
        ys = np.unwrap([float(y[0]) for y in ys if len(y)]) if any(len(y) for y in ys) else np.zeros(1)
        far = [
            np.linalg.norm(s.boxes.center[s.boxes.track == t][0, :2] - truth[s.token][:2, 3])
            for s in rec.sweeps
            if (s.boxes.track == t).any()
        ]
        print(
            f"  track {t} {o.spec.name}: {o.speed:.1f} m/s, turns {math.degrees(ys[-1] - ys[0]):.0f} deg, "
            f"{np.mean(far) if far else float('nan'):.0f} m away: {before[t]} -> {after[t]} returns outside"
        )
    print(f"(returns of boxed instances in all: {total}); smoother's report: {report}")
    keyframes = max(len(rec.keyframes), 1)
    for trace in (False, True):
        if trace:
            tracemalloc.start()
        secs = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            mod.refine_record_boxes(rec, mod.BoxRefinement(enabled=True))
            secs.append((time.perf_counter() - t0) / keyframes)
        if trace:
            tracemalloc.stop()
        print(
            f"smoother: {np.mean(secs):.3f} s a keyframe (min {min(secs):.3f}), "
            f"allocation tracing {'on' if trace else 'off'}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
