"""occkit label against the anchors on the same sweeps, scored against the exact occupancy.

On a synthetic world written with sweeps as nuScenes tables (``occkit synth --format nuscenes
--sweeps 10``), every method's labels are scored on SurroundOcc's grid (the keyframe's LiDAR frame,
[-50, -50, -5, 50, 50, 3] m at 0.5 m, 200 x 200 x 16), where the released generator writes them:

- ``surroundocc``: SurroundOcc's released generator, run unchanged outside occkit
  (benchmarks/anchors/surroundocc/run_generator.sh DATA OUT; its output folder is ``--surroundocc``);
- ``occkit``, ``occ3d-published``, ``naive``: ``occkit label``'s presets, on that grid
  (:func:`occkit.labelgen.pipeline.label_scene` with ``T_ego_from_grid`` = the LiDAR's pose).

The truth on that grid is the world voxelised there (:func:`occkit.worlds.driving.semantic_occupancy`),
its camera mask Occ3D's (camera rays up to the first occupied voxel: pixel rays to the grid's edge and
rays to every exposed face in view) and its LiDAR mask the keyframe sweep's rays. The figures are
:class:`occkit.labelgen.quality.QualityAccumulator`'s (docs/labels.md, "Quality").

    python benchmarks/label_anchors.py --data D --surroundocc S --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
SURROUNDOCC_RANGE = (-50.0, -50.0, -5.0, 50.0, 50.0, 3.0)


def surroundocc_labels(npy: Path, free: int) -> np.ndarray:
    """The released generator's voxel rows as Occ3D-class semantics: its classes 1..16 are Occ3D's
    1..16 (the same nuScenes-lidarseg learning map); its class 0 (noise) holds what the world labels
    'others' (Occ3D's 0); empty voxels are free."""
    sys.path.insert(0, str(HERE / "anchors" / "surroundocc"))
    from read_output import surroundocc_grid

    g = surroundocc_grid(npy, noise=255)
    out = np.where(g == 0, free, g).astype(np.uint8)
    out[g == 255] = 0
    return out


def preset_options(spec: str, presets: dict[str, dict]) -> dict:
    """``occkit label``'s options for a method of ``--presets``: a preset's name, then ``+KEY`` for each boolean
    option switched on, ``+KEY=false`` / ``+KEY=true`` set, or ``+KEY=WORD`` for a word-valued option
    (``occkit+refine_boxes``, ``occkit+object_fill=false``, ``occkit+object_fill+object_fill_voxels=reached``)."""
    base, *switched = spec.split("+")
    if base not in presets:
        raise SystemExit(f"label_anchors.py: --presets: {base!r} is not a preset (one of {', '.join(presets)})")
    opts = dict(presets[base])
    for item in switched:
        key, eq, value = item.partition("=")
        if not key or (eq and not value):
            raise SystemExit(
                f"label_anchors.py: --presets: {item!r}: an option is KEY, KEY=true, KEY=false or KEY=WORD"
            )
        opts[key] = value.lower() != "false" if value.lower() in ("", "true", "false") else value
    return opts


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--surroundocc", type=Path, default=None, help="the released generator's output folder")
    p.add_argument(
        "--presets",
        default="occkit,occ3d-published,naive",
        help="occkit label's presets, each optionally with options set: occkit+refine_boxes, "
        "occkit+object_fill=false, occkit+object_fill+object_fill_voxels=reached",
    )
    p.add_argument("--scenes", type=int, default=0, help="first N scenes (0: all)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    torch.set_num_threads(1)

    from occkit.commands.label import PRESETS
    from occkit.data.rig import read_rig_meta, read_scene
    from occkit.fileio import read_json
    from occkit.formats import default_format
    from occkit.geometry.grid import Grid
    from occkit.geometry.visibility import camera_mask_rays, camera_visibility, lidar_visibility, voxel_center_rays
    from occkit.labelgen.pipeline import LabelOptions, label_scene
    from occkit.labelgen.quality import QualityAccumulator
    from occkit.labelgen.truth import WorldTruth
    from occkit.worlds.driving import SynthConfig, build_scene, scene_state_at, semantic_occupancy

    fmt = default_format()
    free, names = fmt.classes.free, fmt.classes.names
    grid = Grid.from_range(SURROUNDOCC_RANGE, 0.5)
    ann = read_json(args.data / "annotations.json")
    cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in ann["synth_config"].items()}
    config = SynthConfig(**cfg)
    meta = read_rig_meta(args.data / "rig")
    truth_reader = WorldTruth(args.data)
    scenes = meta["scenes"][: args.scenes or None]
    presets = [s for s in args.presets.split(",") if s]
    options = {}
    for m in presets:
        try:
            options[m] = LabelOptions(**preset_options(m, PRESETS))
        except (TypeError, ValueError) as e:  # an unknown option or a bad value: one line, before any work
            raise SystemExit(f"label_anchors.py: --presets: {m}: {e}") from None
    methods = presets + (["surroundocc"] if args.surroundocc else [])
    acc = {m: QualityAccumulator(grid, fmt.classes.num_classes, free, names) for m in methods}
    seconds = {m: 0.0 for m in presets}
    frames = 0
    for si, scene_name in enumerate(scenes):
        rec = read_scene(meta, scene_name)
        T_el = rec.lidars["LIDAR_TOP"]
        labels = {}
        for m in presets:
            t0 = time.perf_counter()
            labs, _ = label_scene(rec, grid, names[:free], free, options[m], T_ego_from_grid=T_el)
            seconds[m] += time.perf_counter() - t0
            labels[m] = {lab.token: lab for lab in labs}
        scene = build_scene(config, int(scene_name.split("-")[-1]))
        for fi, k in enumerate(rec.keyframes):
            s = rec.sweeps[k]
            state = scene_state_at(scene, fi)
            T_gl = state.T_global_from_ego.double() @ torch.from_numpy(T_el)
            sem = semantic_occupancy(state, grid, T_gl).numpy()
            occ = torch.from_numpy(sem != free)
            o_all, d_all = [], []
            for cam in rec.cameras.values():
                K = torch.from_numpy(cam.K)
                T_lc = torch.from_numpy(np.linalg.inv(T_el) @ cam.T_ego_from_cam)
                H, W = cam.image_size
                o, d = camera_mask_rays(K, T_lc, torch.zeros(H, W), grid, 0)
                ov, dv = voxel_center_rays(K, T_lc, (H, W), grid, occ)
                o_all += [o, ov]
                d_all += [d, dv]
            mask_camera = camera_visibility(grid, occ, torch.cat(o_all), torch.cat(d_all)).numpy().astype(np.uint8)
            mask_lidar = (
                lidar_visibility(grid, torch.zeros(3), torch.from_numpy(s.points.astype(np.float64)))
                .numpy()
                .astype(np.uint8)
            )
            tr = truth_reader.keyframe(scene_name, s.token, 1, T_ego_from_grid=T_el)
            tr.semantics, tr.mask_camera, tr.mask_lidar = sem, mask_camera, mask_lidar
            for m in presets:
                lab = labels[m][s.token]
                acc[m].update(
                    {"semantics": lab.semantics, "mask_camera": lab.mask_camera, "mask_lidar": lab.mask_lidar}, tr
                )
            if args.surroundocc:
                npy = (
                    args.surroundocc / "dense_voxels_with_semantic" / f"{scene_name}__{s.token}__LIDAR_TOP.pcd.bin.npy"
                )
                zeros = np.zeros(grid.shape, np.uint8)
                acc["surroundocc"].update(
                    {"semantics": surroundocc_labels(npy, free), "mask_camera": zeros, "mask_lidar": zeros}, tr
                )
            frames += 1
        print(f"{scene_name}: {len(rec.keyframes)} keyframes scored", flush=True)
    out = {
        "data": str(args.data),
        "grid": "SurroundOcc's: LiDAR frame, [-50, -50, -5, 50, 50, 3] m, 0.5 m",
        "keyframes": frames,
        "methods": {m: a.compute() for m, a in acc.items()},
        "seconds_per_keyframe": {m: round(v / max(frames, 1), 2) for m, v in seconds.items()},
    }
    keys = ["occupied_iou_observable", "precision_observable", "recall_observable", "occupied_iou_overall",
            "false_free_rate", "semantic_miou_camera_mask", "rayiou", "trail_voxels_per_keyframe",
            "moving_object_iou"]  # fmt: skip
    print("| method | " + " | ".join(keys) + " |")
    for m, q in out["methods"].items():
        print(f"| {m} | " + " | ".join(str(q.get(k)) for k in keys) + " |")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
