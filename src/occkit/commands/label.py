"""``occkit label --data D --out L``: occupancy labels from LiDAR sweeps, poses and boxes
(:mod:`occkit.labelgen`; docs/labels.md).

``D`` is a rig folder (``rig.json``) or a dataset that holds one at ``D/rig`` (``occkit synth
--sweeps K`` writes it). ``L`` is written in Occ3D's layout (``gts/<scene>/<token>/labels.npz``
with ``semantics``, ``mask_lidar``, ``mask_camera``, and ``annotations.json``), so it reads as an
``occ3d`` dataset. Scenes are finished one at a time and kept: a stopped run resumes with the
scenes it lacks. ``--quality`` scores the labels against a synthetic world's exact occupancy.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from occkit.commands.checks import nonneg_int, positive_int

#: ``--preset``: the option sets of the anchors (docs/labels.md, "The anchors").
PRESETS: dict[str, dict[str, Any]] = {
    "occkit": {},
    # Occ3D as published: aggregate the scene (static in the world, objects in their boxes), kNN
    # labels, ray-cast masks; no mesh, no ground fill, no trail erasing
    "occ3d": {"ground_fill": 0, "erase_trails": False, "knn": 1},
    # one keyframe's own sweep, voxelised: no aggregation at all
    "naive": {"keyframe_only": True, "ground_fill": 0, "erase_trails": False, "knn": 1},
}
STATE = ".label"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        type=Path,
        required=True,
        help="a rig folder (rig.json: sweeps, poses, boxes, sensors; docs/labels.md) or a dataset holding one at "
        "DATA/rig (occkit synth --sweeps K writes it)",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder: labels in Occ3D's layout, report.json")
    p.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        default="occkit",
        help="occkit (default); occ3d (Occ3D as published: aggregation, kNN labels, ray-cast masks, no fill, no "
        "trail erasing); naive (each keyframe's own sweep voxelised)",
    )
    p.add_argument(
        "--window",
        type=nonneg_int,
        default=None,
        help="keyframes on each side whose sweeps build a keyframe's static scene (default 0: the whole scene)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a pipeline option (occkit.labelgen.pipeline.LabelOptions: box_margin, knn, ground_fill, flow, ...)",
    )
    p.add_argument("--scenes", default=None, help="comma-separated scene names (default: every scene of the rig)")
    p.add_argument(
        "--quality",
        action="store_true",
        help="score the labels against the synthetic world's exact occupancy (DATA must be a world written by "
        "occkit synth --sweeps): quality.json and quality.md in --out",
    )
    p.add_argument("--workers", type=positive_int, default=1, help="scenes labelled in parallel processes")
    p.add_argument(
        "--launcher",
        choices=("local", "ray"),
        default="local",
        help="local processes, or Ray tasks over scenes (a cluster's RAY_ADDRESS; --out on a shared file system)",
    )


def _options(args: argparse.Namespace):
    from occkit.labelgen.pipeline import LabelOptions

    values: dict[str, Any] = dict(PRESETS[args.preset])
    keys = LabelOptions.keys()
    for item in args.set:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        if k not in keys:
            raise ValueError(f"--set {k}: not a label option (one of {', '.join(keys)})")
        try:
            values[k] = json.loads(v)
        except json.JSONDecodeError:
            values[k] = v
        if isinstance(values[k], list):
            values[k] = tuple(values[k])
    if args.window is not None:
        values["window"] = args.window
    return LabelOptions(**values)


def _rig_folder(data: Path) -> Path:
    from occkit.labelgen.rig import is_rig

    if is_rig(data):
        return data
    if is_rig(data / "rig"):
        return data / "rig"
    if not data.exists():
        raise FileNotFoundError(f"--data {data}: no such folder")
    raise ValueError(
        f"--data {data}: holds no rig.json (nor rig/rig.json): occkit label reads a rig folder (docs/labels.md); "
        "occkit synth --sweeps K writes one for the synthetic world"
    )


def _safe(name: str, what: str) -> str:
    p = Path(name)
    if not name or p.is_absolute() or len(p.parts) != 1 or name in (".", ".."):
        raise ValueError(f"{what} {name!r} cannot name a folder under --out (absolute, empty or with a path in it)")
    return name


def label_one_scene(job: dict[str, Any]) -> dict[str, Any]:
    """Label one scene and write its files under ``job["part"]``; return its record (report,
    annotation entries). A worker's entry point (local processes and Ray tasks)."""
    import numpy as np
    import torch

    from occkit.fileio import save_npz_atomic, write_json_atomic
    from occkit.geometry.grid import occ3d_grid
    from occkit.labelgen.pipeline import label_scene
    from occkit.labelgen.rig import read_rig_meta, read_scene
    from occkit.labels import OCC3D_CLASSES, OCC3D_FREE

    torch.set_num_threads(1)
    part = Path(job["part"])
    meta = read_rig_meta(job["rig"])
    rec = read_scene(meta, job["scene"])
    opt = job["options"]
    t0 = time.perf_counter()
    labels, report = label_scene(rec, occ3d_grid(), OCC3D_CLASSES[:OCC3D_FREE], OCC3D_FREE, opt)
    scene = _safe(rec.name, "scene")
    infos: dict[str, Any] = {}
    keys = [rec.sweeps[k] for k in rec.keyframes]
    for i, (s, lab) in enumerate(zip(keys, labels)):
        token = _safe(s.token, f"scene {scene}: sweep token")
        rel = f"gts/{scene}/{token}/labels.npz"
        arrays = {"semantics": lab.semantics, "mask_lidar": lab.mask_lidar, "mask_camera": lab.mask_camera}
        if lab.flow is not None:
            arrays["flow"] = lab.flow
        save_npz_atomic(part / rel, **arrays)
        ego = _pose(s.T_global_from_ego)
        infos[token] = {
            "timestamp": int(s.timestamp),
            "camera_sensor": {
                n: {
                    "img_path": job.get("images", {}).get(token, {}).get(n, ""),
                    "intrinsic": np.round(c.K, 6).tolist(),
                    "extrinsic": _pose(c.T_ego_from_cam),
                    "ego_pose": ego,
                }
                for n, c in rec.cameras.items()
            },
            "ego_pose": ego,
            "lidar_sensor": {"extrinsic": _pose(rec.lidars[s.sensor])},
            "gt_path": rel,
            "prev": keys[i - 1].token if i > 0 else "",
            "next": keys[i + 1].token if i + 1 < len(keys) else "",
        }
    report["seconds_total"] = round(time.perf_counter() - t0, 2)
    out = {"scene": scene, "infos": infos, "report": report}
    write_json_atomic(part / STATE / "scenes" / f"{scene}.json", out)
    return out


def _pose(T) -> dict[str, list[float]]:
    import numpy as np
    import torch

    from occkit.geometry.transforms import pose_from_transform

    p = pose_from_transform(torch.as_tensor(np.asarray(T, dtype=np.float64)))
    return {"translation": [round(v, 6) for v in p["translation"]], "rotation": [round(v, 9) for v in p["rotation"]]}


def _images(data: Path) -> tuple[dict[str, dict[str, str]], dict[str, list[str]]]:
    """The dataset's camera image paths by token (when ``data`` is an Occ3D-schema dataset beside
    its rig) and its splits."""
    from occkit.fileio import read_json

    f = data / "annotations.json"
    if not f.is_file():
        return {}, {}
    ann = read_json(f)
    imgs = {
        tok: {cam: c.get("img_path", "") for cam, c in info.get("camera_sensor", {}).items()}
        for scene in ann.get("scene_infos", {}).values()
        for tok, info in scene.items()
    }
    return imgs, {k: ann.get(k, []) for k in ("train_split", "val_split")}


def run(args: argparse.Namespace) -> int:
    from contextlib import ExitStack

    with ExitStack() as held:
        return _run(args, held)


def _run(args: argparse.Namespace, held: Any) -> int:
    from occkit.fileio import read_json, write_json_atomic, write_text_atomic
    from occkit.labelgen.rig import read_rig_meta
    from occkit.locks import locked_output
    from occkit.outputs import check_output_folder, check_writable_place, resumable_folder

    opt = _options(args)
    rig = _rig_folder(args.data)
    meta = read_rig_meta(rig)  # rig.json checked before any folder is made
    scenes = meta["scenes"]
    if args.scenes:
        wanted = [s.strip() for s in args.scenes.split(",") if s.strip()]
        unknown = [s for s in wanted if s not in scenes]
        if unknown:
            raise ValueError(f"--scenes: {unknown} are not scenes of {rig / 'rig.json'} ({scenes[:5]} ...)")
        scenes = wanted
    for s in scenes:
        _safe(s, "scene")
    if args.quality:
        from occkit.labelgen.truth import WorldTruth

        truth = WorldTruth(args.data)
        lacking = [s for s in scenes if not truth.has(s)]
        if lacking:
            raise ValueError(
                f"--quality: {args.data} holds no truth for scenes {lacking[:3]} (extras/<scene>/sweeps.json): "
                "only a synthetic world written by occkit synth --sweeps K can be scored"
            )
    inputs = {"--data": args.data}
    check_output_folder(args.out, "label", inputs=inputs)
    check_writable_place(args.out)
    held.enter_context(locked_output(args.out, "label"))
    check_output_folder(args.out, "label", inputs=inputs)
    images, splits = _images(args.data)
    key = {"rig": str(rig.resolve()), "options": {k: getattr(opt, k) for k in opt.keys()}, "scenes": scenes}
    key = json.loads(json.dumps(key))
    t0 = time.perf_counter()
    with resumable_folder(args.out, "label", key, source=str(args.data)) as (part, resumed):
        done: dict[str, dict[str, Any]] = {}
        for s in scenes:
            f = part / STATE / "scenes" / f"{s}.json"
            if f.is_file():
                rec = read_json(f)
                if all((part / info["gt_path"]).is_file() for info in rec["infos"].values()):
                    done[s] = rec
        if done:
            print(f"label: resuming: {len(done)} of {len(scenes)} scenes already labelled", flush=True)
        todo = [
            {"part": str(part), "rig": str(rig), "scene": s, "options": opt, "images": images}
            for s in scenes
            if s not in done
        ]
        print(
            f"label: {len(todo)} scene(s) from {rig} with {args.workers} worker(s) ({args.launcher}), preset "
            f"{args.preset}",
            flush=True,
        )
        for r in _launch(todo, args.workers, args.launcher):
            done[r["scene"]] = r
            rep = r["report"]
            print(
                f"label: {r['scene']}: {rep['keyframes']} keyframes from {rep['sweeps']} sweeps, "
                f"{rep['seconds_per_keyframe']:.1f} s a keyframe, peak {rep['peak_traced_mb']:.0f} MB traced"
                + "".join(f"; {m}" for m in rep["missing"]),
                flush=True,
            )
        train = [s for s in splits.get("train_split", scenes) if s in done] or [s for s in scenes if s in done]
        val = [s for s in splits.get("val_split", []) if s in done]
        ann = {
            "train_split": train,
            "val_split": val,
            "scene_infos": {s: done[s]["infos"] for s in scenes},
            "label_config": {"preset": args.preset, **key["options"], "rig": str(rig)},
        }
        write_json_atomic(part / "annotations.json", ann)
        samples = args.data / "samples"
        if images and samples.is_dir() and not (part / "samples").exists():
            os.symlink(samples.resolve(), part / "samples")
        reports = [done[s]["report"] for s in scenes]
        summary = _summary(reports)
        if args.quality:
            quality = _score(args.data, part, scenes, done, opt)
            write_json_atomic(part / "quality.json", quality)
            write_text_atomic(part / "quality.md", _quality_md(quality, args))
            summary["quality"] = quality
        write_json_atomic(part / "report.json", {"summary": summary, "scenes": reports})
    dt = time.perf_counter() - t0
    print(
        f"label: {summary['keyframes']} keyframes of {len(scenes)} scenes written to {args.out} in {dt:.1f} s "
        f"({summary['seconds_per_keyframe']:.2f} s a keyframe of work; report.json)",
        flush=True,
    )
    if args.quality:
        q = summary["quality"]
        print(
            f"label: quality: occupied IoU {q['occupied_iou_observable']:.2f} inside the observable region "
            f"({q['occupied_iou_overall']:.2f} overall), semantic mIoU {q['semantic_miou_camera_mask']:.2f}, "
            f"RayIoU {q.get('rayiou', float('nan')):.2f}, false-free {q['false_free_rate']:.2f} %, "
            f"{q['trail_voxels_per_keyframe']:.1f} trail voxels a keyframe (quality.md)",
            flush=True,
        )
    return 0


def _launch(todo: list[dict[str, Any]], workers: int, launcher: str):
    if launcher == "ray":
        try:
            import ray
        except ImportError:
            raise ValueError("--launcher ray: ray is not installed (pip install 'ray>=2.9')") from None
        if not ray.is_initialized():
            addr = os.environ.get("RAY_ADDRESS")
            ray.init(address=addr or None, num_cpus=None if addr else workers, include_dashboard=False)
        task = ray.remote(label_one_scene).options(num_cpus=1, max_retries=0)
        refs = [task.remote(j) for j in todo]
        while refs:
            ready, refs = ray.wait(refs, num_returns=1)
            yield ray.get(ready[0])
        return
    if workers > 1 and len(todo) > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(min(workers, len(todo))) as pool:
            yield from pool.imap_unordered(label_one_scene, todo)
        return
    for j in todo:
        yield label_one_scene(j)


def _summary(reports: list[dict[str, Any]]) -> dict[str, Any]:
    n = sum(r["keyframes"] for r in reports)
    stages: dict[str, float] = {}
    for r in reports:
        for k, v in r["seconds"].items():
            stages[k] = stages.get(k, 0.0) + v
    return {
        "keyframes": n,
        "seconds_per_keyframe": round(sum(stages.values()) / max(n, 1), 3),
        "seconds_per_keyframe_by_stage": {k: round(v / max(n, 1), 3) for k, v in stages.items()},
        "peak_traced_mb": max((r["peak_traced_mb"] for r in reports), default=0.0),
        "density": round(sum(r["density"] * r["keyframes"] for r in reports) / max(n, 1), 5),
        "missing": sorted({m for r in reports for m in r["missing"]}),
    }


def _score(data: Path, part: Path, scenes: list[str], done: dict[str, Any], opt: Any) -> dict[str, Any]:
    from occkit.fileio import load_npz
    from occkit.geometry.grid import occ3d_grid
    from occkit.labelgen.quality import QualityAccumulator
    from occkit.labelgen.truth import WorldTruth
    from occkit.labels import OCC3D_CLASSES, OCC3D_FREE, OCC3D_NUM_CLASSES

    truth = WorldTruth(data)
    acc = QualityAccumulator(occ3d_grid(), OCC3D_NUM_CLASSES, OCC3D_FREE, OCC3D_CLASSES)
    for s in scenes:
        for token, info in done[s]["infos"].items():
            lab = load_npz(part / info["gt_path"], ("semantics", "mask_lidar", "mask_camera"))
            acc.update(lab, truth.keyframe(s, token, opt.free_window))
    return acc.compute()


def _quality_md(q: dict[str, Any], args: argparse.Namespace) -> str:
    rows = "\n".join(f"| {k} | {v} |" for k, v in q.items())
    return (
        f"# Label quality against the exact occupancy\n\n`occkit label --data {args.data} --preset {args.preset}"
        f"{''.join(' --set ' + s for s in args.set)} --quality` ({q['keyframes']} keyframes; percent; definitions in "
        f"docs/labels.md)\n\n| figure | value |\n|---|---|\n{rows}\n"
    )
