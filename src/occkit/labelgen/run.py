"""Running the label pipeline over a rig's scenes: one scene's labels written in the label
format's layout (:func:`label_one_scene`, what a worker process or a Ray task runs), scenes
launched locally or on Ray (:func:`launch`), the run's summary and its quality against the
synthetic world's truth (:func:`score_run`). ``occkit label`` wires these."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

#: Where a run keeps each finished scene's record (inside the output being written).
STATE = ".label"


def _safe(name: str, what: str) -> str:
    """``name`` when it can be one folder name under the output; else a one-line ValueError."""
    p = Path(name)
    if not name or p.is_absolute() or len(p.parts) != 1 or name in (".", ".."):
        raise ValueError(f"{what} {name!r} cannot name a folder under --out (absolute, empty or with a path in it)")
    return name


def label_one_scene(job: dict[str, Any]) -> dict[str, Any]:
    """Label one scene and write its files under ``job["part"]`` through the output format's label
    writer (``job["target"]``, a :class:`~occkit.labelgen.output.LabelTarget`: its classes, grid and
    frame); return its record (report, each keyframe's files and index entry). A worker's entry point
    (local processes and Ray tasks)."""
    import torch

    from occkit.data.recordings.registry import open_recording
    from occkit.fileio import write_json_atomic
    from occkit.formats import get_format
    from occkit.formats.spec import inside_out
    from occkit.labelgen.output import T_ego_from_grid, frame_labels, ground_warning, remap_record
    from occkit.labelgen.pipeline import label_scene

    torch.set_num_threads(1)
    part = Path(job["part"])
    src = job["recording"]
    target = job["target"]
    opt = job["options"]
    opened = open_recording(src["source"], src["reader"], src["options"], src.get("scenes"), keep=True)  # once a worker
    rec = opened.read_scene(job["scene"])
    rec = remap_record(rec, target)
    warning = ground_warning(rec, target, tuple(opt.ground_classes))
    t0 = time.perf_counter()
    writer = get_format(target.format).writers.label_writer
    T_grid = T_ego_from_grid(rec, target)
    labels, report = label_scene(rec, target.grid, target.classes, target.free, opt, T_grid)
    scene = _safe(rec.name, "scene")
    infos: dict[str, Any] = {}
    keys = [rec.sweeps[k] for k in rec.keyframes]
    written = _write_images(opened, job["scene"], part, keys, rec, writer.family)
    warnings = [warning] if warning else []
    if written is not None:
        job = {**job, "images": written}
        warnings += [w for w in (_missing_images(rec, keys, written),) if w]
    for i, (s, lab) in enumerate(zip(keys, labels)):
        token = _safe(s.token, f"scene {scene}: sweep token")
        record = _index_record(rec, job, keys, i, writer.family, own_images=written is not None)
        frame = frame_labels(target, writer, lab, scene, token, i, record)
        files = writer.files(frame)
        for rel in files:
            inside_out(part, rel, f"{rec.source}: scene {scene!r}, token {token!r}")
        writer.write(part, frame)
        infos[token] = {"gt_path": files[0], "files": list(files), "token": frame.token, "record": frame.record}
    report["seconds_total"] = round(time.perf_counter() - t0, 2)
    if warnings:
        report["warnings"] = warnings
    out = {"scene": scene, "infos": infos, "report": report}
    write_json_atomic(part / STATE / "scenes" / f"{scene}.json", out)
    return out


def _write_images(opened: Any, scene: str, part: Path, keys: list[Any], rec: Any, family: str) -> Any:
    """The camera images a reader writes into the output itself (a ROS bag's:
    :meth:`~occkit.data.recordings.spec.RecordingReader.write_images`), each path checked to stay inside it:
    ``{token: {camera: path}}``; None where the reader writes none (or the layout records no ``img_path``)."""
    from occkit.formats.spec import inside_out

    if family != "nuscenes" or not rec.cameras:
        return None
    written = opened.write_images(scene, part)
    if not written:
        return None
    for token, cams in written.items():
        for rel in cams.values():
            inside_out(part, rel, f"{rec.source}: scene {scene!r}, token {token!r}, camera image")
    return written


def _missing_images(rec: Any, keys: list[Any], written: dict[str, dict[str, str]]) -> str:
    """One line counting the keyframes each camera has no image at (empty: none missing)."""
    lacking = {c: sum(c not in written.get(s.token, {}) for s in keys) for c in rec.cameras}
    said = [f"{c} at {n} of {len(keys)}" for c, n in lacking.items() if n]
    if not said:
        return ""
    return (
        f"camera images missing at some keyframes ({', '.join(said)}): none near the LiDAR's stamp there; "
        "those cameras are left out of those keyframes' index entries"
    )


def _index_record(
    rec: Any, job: dict[str, Any], keys: list[Any], i: int, family: str, own_images: bool = False
) -> dict[str, Any]:
    """What the output's index holds of keyframe ``i``: the nuScenes family's ``annotations.json`` entry
    (cameras, poses, the LiDAR's extrinsic, token and file name, the scene as ``scene_token``; with
    ``own_images``, images the reader wrote, a camera without one at the keyframe left out); the KITTI
    family's camera (``K``, ``T_cam_from_lidar``, image size: the first camera's; none: the identity)."""
    import numpy as np

    s = keys[i]
    token = s.token
    if family == "kitti":
        cam = next(iter(rec.cameras.values()), None)
        T_el = np.asarray(rec.lidars[s.sensor], np.float64)
        if cam is None:
            return {"K": np.eye(3).tolist(), "T_cam_from_lidar": np.eye(4).tolist(), "image_size": None}
        T = np.linalg.inv(np.asarray(cam.T_ego_from_cam, np.float64)) @ T_el
        return {
            "K": np.round(cam.K, 6).tolist(),
            "T_cam_from_lidar": np.round(T, 9).tolist(),
            "image_size": list(cam.image_size),
        }
    ego = _pose(s.T_global_from_ego)
    return {
        "timestamp": int(s.timestamp),
        "camera_sensor": {
            n: {
                "img_path": job.get("images", {}).get(token, {}).get(n, ""),
                "intrinsic": np.round(c.K, 6).tolist(),
                "extrinsic": _pose(c.T_ego_from_cam),
                "ego_pose": ego,
            }
            for n, c in rec.cameras.items()
            if not own_images or n in job["images"].get(token, {})
        },
        "ego_pose": ego,
        "lidar_sensor": {
            "extrinsic": _pose(rec.lidars[s.sensor]),
            "token": token,
            "filename": f"samples/{s.sensor}/{token}.pcd.bin",
        },
        "scene_token": rec.name,
        "prev": keys[i - 1].token if i > 0 else "",
        "next": keys[i + 1].token if i + 1 < len(keys) else "",
    }


def finish_output(
    part: Path, target: Any, done: dict[str, Any], scenes: list[str], splits: dict[str, Any], index_keys: dict[str, Any]
) -> list[str]:
    """The output's index and what is not per frame, through the format's writer (``finish``): every
    labelled keyframe, the splits, and ``index_keys`` (the run's config; the grid ``--grid`` gave) at the
    end of Occ3D's ``annotations.json``. Returns the writer's notes."""
    import numpy as np

    from occkit.data.occ3d import grid_record
    from occkit.formats import get_format
    from occkit.formats.spec import FrameLabels

    writer = get_format(target.format).writers.label_writer
    frames = [
        FrameLabels(token=info["token"], scene=s, semantics=np.zeros((0, 0, 0), np.uint8), record=info["record"])
        for s in scenes
        for info in done[s]["infos"].values()
    ]
    keys = dict(index_keys)
    if target.grid_given:
        keys = {"grid": grid_record(target.grid), **keys}
    options = {"split": "all", "source_root": None, "infos": None, "scene_splits": splits, "index_keys": keys}
    return list(writer.finish(part, frames, options))


def _pose(T) -> dict[str, list[float]]:
    import numpy as np
    import torch

    from occkit.geometry.transforms import pose_from_transform

    p = pose_from_transform(torch.as_tensor(np.asarray(T, dtype=np.float64)))
    return {"translation": [round(v, 6) for v in p["translation"]], "rotation": [round(v, 9) for v in p["rotation"]]}


def launch(todo: list[dict[str, Any]], workers: int, launcher: str):
    """Each job's :func:`label_one_scene` result as it finishes: in this process, in ``workers``
    spawned processes, or as Ray tasks (the cluster at ``RAY_ADDRESS``, else a local Ray)."""
    if launcher == "ray":
        try:
            import ray
        except ImportError:
            raise ValueError("--launcher ray: ray is not installed (pip install 'ray>=2.9')") from None
        started = not ray.is_initialized()  # a Ray this call started is shut down when it ends (a caller's is kept)
        if started:
            addr = os.environ.get("RAY_ADDRESS")
            ray.init(address=addr or None, num_cpus=None if addr else workers, include_dashboard=False)
        try:
            task = ray.remote(label_one_scene).options(num_cpus=1, max_retries=0)
            refs = [task.remote(j) for j in todo]
            while refs:
                ready, refs = ray.wait(refs, num_returns=1)
                yield ray.get(ready[0])
        finally:
            if started:
                ray.shutdown()
        return
    if workers > 1 and len(todo) > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(min(workers, len(todo))) as pool:
            yield from pool.imap_unordered(label_one_scene, todo)
        return
    for j in todo:
        yield label_one_scene(j)


def summarise(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's figures over its scenes' reports: keyframes, seconds a keyframe (per stage),
    peak traced memory, density, what the inputs lacked."""
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
        "warnings": [f"{r['scene']}: {w}" for r in reports for w in r.get("warnings", [])],
    }


def score_run(data: Path, part: Path, scenes: list[str], done: dict[str, Any], opt: Any, target: Any) -> dict[str, Any]:
    """The labels of a finished run, read back through the output format (as ``occkit eval`` reads
    them), scored on its grid and classes against the synthetic world ``data``'s truth
    (:func:`truth_on_target`)."""
    from occkit.formats import get_format
    from occkit.labelgen.quality import QualityAccumulator
    from occkit.labelgen.truth import WorldTruth

    fmt = get_format(target.format)
    ds = fmt.open_split(part, "all", load_images=False)
    writer = fmt.writers.label_writer
    at = {
        ds.frames[i].token if not isinstance(ds.frames[i], tuple) else "/".join(ds.frames[i]): i for i in range(len(ds))
    }
    truth = WorldTruth(data)
    conv = truth_classes(fmt)
    table = fmt.classes
    acc = QualityAccumulator(target.grid, table.num_classes, table.free, table.names, tuple(opt.ground_classes))
    picture = None
    for s in scenes:
        for token, info in done[s]["infos"].items():
            if info["token"] not in at:
                raise ValueError(f"{part}: {fmt.name} does not list the keyframe {info['token']} occkit label wrote")
            frame = writer.read(ds, at[info["token"]], {})
            T = _grid_in_ego(truth, s, token, target)
            tr = truth.keyframe(s, token, opt.free_window, T)
            tr, scored = truth_on_target(tr, target, conv, T, table)
            lab = {"semantics": np.where(scored, frame.semantics, table.free).astype(np.uint8)}
            for m in ("mask_camera", "mask_lidar"):
                if m in frame.masks:
                    lab[m] = frame.masks[m] & scored
            obs = acc.update(lab, tr)
            if picture is None:  # the first keyframe's picture: labels beside the truth, errors coloured
                picture = (tr.semantics, lab["semantics"], obs, f"{s} {token}")
    if picture is not None:
        _write_picture(part / "quality.png", *picture, fmt)
    return acc.compute()


def truth_classes(fmt: Any) -> Any:
    """The world's classes (Occ3D's) -> ``fmt``'s, as ``occkit convert`` maps them (by name, or the
    shipped class map joining the tables); none: a one-line error."""
    from occkit.convert.plan import class_conversion
    from occkit.formats import get_format
    from occkit.formats.spec import ConvertError

    try:
        return class_conversion(get_format("occ3d"), fmt, None)
    except (ConvertError, FileNotFoundError, ValueError) as e:
        raise ValueError(
            f"--quality: the world's truth (Occ3D's classes) cannot be put in {fmt.name}'s classes ({e})"
        ) from None


def _grid_in_ego(truth: Any, scene: str, token: str, target: Any) -> Any:
    """``T_ego_from_grid`` of the output's grid at a keyframe of the world: the world's LiDAR extrinsic
    for a LiDAR-frame output, None for the ego frame."""
    if target.frame == "ego":
        return None
    from occkit.geometry.transforms import checked_pose

    ext = truth.infos[scene][token].get("lidar_sensor", {}).get("extrinsic")
    if not ext:
        raise ValueError(
            f"--quality: {truth.root}: keyframe {token} has no lidar_sensor.extrinsic (the LiDAR frame's place)"
        )
    return checked_pose(ext["translation"], ext["rotation"], "extrinsic", f"{scene}/{token} lidar_sensor").numpy()


def truth_on_target(tr: Any, target: Any, conv: Any, T_ego_from_grid: Any, table: Any) -> tuple[Any, Any]:
    """The world's exact truth (Occ3D's grid and classes, the ego frame) on the output's grid and classes:
    each output voxel takes the exact Occ3D voxel holding its centre (as ``occkit convert`` resamples), or on
    a grid coarser than Occ3D's the truth voxels it holds pooled (:func:`_pool_truth`), its class mapped as
    ``conv`` maps; and ``(X, Y, Z)`` bool, the voxels scored: those the truth's grid covers
    in a class the output holds (the others are left out of every figure)."""
    from dataclasses import replace

    from occkit.geometry.grid import occ3d_grid
    from occkit.resampling import resample_index

    sem = conv.lut[tr.semantics.astype(np.int64)]
    ignore = 255 if table.ignore is None else table.ignore
    if min(target.grid.voxel_size) > max(occ3d_grid().voxel_size) + 1e-9:  # coarser: pooled, not sampled
        out, inside = _pool_truth(sem, tr, target.grid, T_ego_from_grid, table.free)
        scored = inside & (out["semantics"] != ignore)
        out["semantics"] = np.where(scored, out["semantics"], table.free).astype(np.uint8)
        return replace(tr, **out), scored
    idx = resample_index(occ3d_grid(), target.grid, T_ego_from_grid)
    if idx is None:
        out = {"semantics": sem, "mask_camera": tr.mask_camera.astype(bool), "mask_lidar": tr.mask_lidar.astype(bool)}
        inside = np.ones(target.grid.shape, bool)
    else:
        inside = (idx >= 0).reshape(target.grid.shape)
        safe = np.where(idx >= 0, idx, 0)
        out = {}
        for k, v in (("semantics", sem), ("mask_camera", tr.mask_camera), ("mask_lidar", tr.mask_lidar)):
            out[k] = np.asarray(v).reshape(-1)[safe].reshape(target.grid.shape)
        out["mask_camera"] = out["mask_camera"].astype(bool) & inside
        out["mask_lidar"] = out["mask_lidar"].astype(bool) & inside
    scored = inside & (out["semantics"] != ignore)
    out["semantics"] = np.where(scored, out["semantics"], table.free).astype(np.uint8)
    return replace(tr, **out), scored


def _pool_truth(sem: Any, tr: Any, grid: Any, T_ego_from_grid: Any, free: int) -> tuple[dict[str, Any], Any]:
    """The truth ``sem`` (Occ3D's grid, the output's classes) pooled onto a coarser ``grid``: each output
    voxel gathers the truth voxels whose centres it holds, occupied where one of them is, in the class most of
    its occupied ones have (the lowest id of a tie), a mask set where one of them is set; and ``inside`` ``(X,
    Y, Z)`` bool, the voxels that gathered any (sampling one voxel under each centre misses thin surfaces: at
    0.8 m the centres lie on the 0.4 m voxels' faces)."""
    from occkit.geometry.grid import occ3d_grid
    from occkit.resampling import voxel_centres, voxel_of

    p = voxel_centres(occ3d_grid())
    if T_ego_from_grid is not None:  # the truth's centres into the output's frame: R^T (p - t)
        T = np.asarray(T_ego_from_grid, np.float64)
        p = (p - T[:3, 3]) @ T[:3, :3]
    j = voxel_of(p, grid)
    n = int(np.prod(grid.shape))
    at = j >= 0
    inside = np.bincount(j[at], minlength=n) > 0
    flat = np.asarray(sem).reshape(-1).astype(np.int64)
    occ = at & (flat != free)
    key = np.unique(j[occ] * 256 + flat[occ], return_counts=True)
    vox, cls, count = key[0] // 256, key[0] % 256, key[1]
    order = np.lexsort((cls, -count, vox))  # each voxel's most frequent class first, the lowest id of a tie
    vox, cls = vox[order], cls[order]
    first = np.ones(len(vox), bool)
    first[1:] = vox[1:] != vox[:-1]
    semantics = np.full(n, free, np.int64)
    semantics[vox[first]] = cls[first]
    out = {"semantics": semantics.reshape(grid.shape)}
    for m in ("mask_camera", "mask_lidar"):
        v = np.asarray(getattr(tr, m)).reshape(-1).astype(bool)
        out[m] = (np.bincount(j[at & v], minlength=n) > 0).reshape(grid.shape)
    return out, inside.reshape(grid.shape)


def _write_picture(path: Path, truth: Any, label: Any, obs: Any, title: str, fmt: Any) -> None:
    import io

    from PIL import Image

    from occkit.fileio import write_bytes_atomic
    from occkit.labelgen.figure import label_figure

    palette = fmt.classes.palette or [
        [int(c * 37 % 256), int(c * 91 % 256), int(c * 53 % 256)] for c in range(fmt.classes.num_classes)
    ]
    buf = io.BytesIO()
    Image.fromarray(label_figure(truth, label, obs, fmt.classes.free, palette)).save(buf, format="PNG")
    write_bytes_atomic(path, buf.getvalue())
