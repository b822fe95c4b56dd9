"""``occkit label --refine-poses``'s poses against a synthetic world's true ones (docs/results/labels.md, "What the
options recover").

One scene of the world (``occkit synth``'s, seed and sweeps between keyframes as given) is swept with zero-mean
pose noise (and a drift, if asked) and refined; printed, in metres and degrees:

- the recorded poses' mean error (the offset no trajectory fitted to them can tell from the truth) and its rms;
- the registration alone (its steps chained from the first true pose): the end's error, and its pitch summed
  over the steps;
- the refined poses: their mean error (the offset) and how far each is from the truth once that is taken out
  (rms and max an axis), the keyframes' heights among them.

    python benchmarks/pose_errors.py [--seed 7 --sweeps 5 --noise 0.2 --drift 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--sweeps", type=int, default=5)
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--noise", type=float, default=0.2, help="each sweep's pose error, metres (std)")
    p.add_argument("--drift", type=float, default=0.0, help="pose drift, metres per second")
    args = p.parse_args()
    from scipy.spatial.transform import Rotation

    from occkit.labelgen.refine_poses import PoseRefinement, lidar_odometry, refine_record_poses
    from occkit.worlds.driving.config import SynthConfig
    from occkit.worlds.driving.sweeps import SweepNoise, scene_record

    cfg = SynthConfig(scenes=1, frames=args.frames, seed=args.seed, image_size=(96, 160))
    noise = SweepNoise(pose_sigma=args.noise, drift=args.drift, seed=args.seed)  # as occkit synth seeds it
    rec, truth, _ = scene_record(cfg, 0, args.sweeps, noise)
    T = np.array([truth[s.token] for s in rec.sweeps])
    R = np.array([s.T_global_from_ego for s in rec.sweeps])
    t0 = time.process_time()
    refined, report = refine_record_poses(rec)
    cpu = time.process_time() - t0
    F = np.array([s.T_global_from_ego for s in refined.sweeps])
    edges, _ = lidar_odometry(rec, PoseRefinement())
    X, pitch = [T[0]], 0.0
    for i, j, z in edges:
        X.append(X[-1] @ z)
        err = np.linalg.inv(np.linalg.inv(T[i]) @ T[j]) @ z
        pitch += float(np.degrees(Rotation.from_matrix(err[:3, :3]).as_rotvec()[1]))
    np.set_printoptions(precision=4, suppress=True)
    print(f"world seed {args.seed}, {args.sweeps} sweeps, noise {args.noise} m, drift {args.drift} m/s: {len(T)}")
    rec_err = R[:, :3, 3] - T[:, :3, 3]
    print(f"recorded: mean error {rec_err.mean(0)} m, rms {np.sqrt((rec_err**2).mean(0))} m")
    if len(X) == len(T):
        print(f"registration alone: end error {X[-1][:3, 3] - T[-1][:3, 3]} m, pitch summed {pitch:.4f} deg")
    e = F[:, :3, 3] - T[:, :3, 3]
    off = e - e.mean(0)
    print(f"refined: mean error (offset) {e.mean(0)} m ({np.linalg.norm(e.mean(0)):.3f} m)")
    print(f"refined about the offset: rms {np.sqrt((off**2).mean(0))} m, max {np.abs(off).max(0)} m")
    keys = [k for k, s in enumerate(rec.sweeps) if s.keyframe]
    print(f"keyframes' height about the offset: {off[keys, 2]} m")
    print(f"refinement: {cpu:.2f} CPU s ({cpu / len(keys):.2f} a keyframe); problems: {report['problems']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
