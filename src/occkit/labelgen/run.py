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

from occkit.labelgen.resume import STATE, scene_digest


def safe_name(name: str, what: str) -> str:
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
    from occkit.labelgen.output import T_ego_from_grid, frame_labels, ground_warning, kitti_keyframe_image, remap_record
    from occkit.labelgen.pipeline import label_scene
    from occkit.labelgen.semantic_maps import write_keyframe_maps

    torch.set_num_threads(1)
    part = Path(job["part"])
    src = job["recording"]
    target = job["target"]
    opt = job["options"]
    recording = open_recording(src["source"], src["reader"], src["options"], src.get("scenes"), keep=True)  # once
    recorded = recording.read_scene(job["scene"])  # its sweeps as recorded: the LiDAR files written
    rec = remap_record(recorded, target)
    warning = ground_warning(rec, target, tuple(opt.ground_classes))
    t0 = time.perf_counter()
    writer = get_format(target.format).writers.label_writer
    T_grid = T_ego_from_grid(rec, target)
    labels, report = label_scene(rec, target.grid, target.classes, target.free, opt, T_grid)
    scene = safe_name(rec.name, "scene")
    infos: dict[str, Any] = {}
    keys = [rec.sweeps[k] for k in rec.keyframes]
    written = _write_images(recording, job["scene"], part, rec, writer.family)
    if written is not None:
        job = {**job, "images": written}
    no_image: list[str] = []  # the keyframes without an image of the KITTI layouts' camera
    for i, (s, lab) in enumerate(zip(keys, labels)):
        token = safe_name(s.token, f"scene {scene}: sweep token")
        record = _index_record(rec, job, keys, i, writer.family, own_images=written is not None)
        frame = frame_labels(target, writer, lab, scene, token, i, record, recorded.sweeps[rec.keyframes[i]])
        if writer.family == "kitti" and record.get("camera"):  # the layout's camera image, linked or converted
            image = kitti_keyframe_image(recording, job.get("images", {}), s.token, record)
            frame.sensor_files.update({record["camera"]: image} if image is not None else {})
            no_image += [] if image is not None else [f"{frame.record['frame']} ({token})"]
        files = writer.files(frame)
        for rel in files:
            inside_out(part, rel, f"{rec.source}: scene {scene!r}, token {token!r}")
        writer.write(part, frame)
        files = (
            *files,
            *write_keyframe_maps(
                part, target, rec.cameras, frame, T_grid, f"{rec.source}: scene {scene!r}, token {token!r}"
            ),
        )
        infos[token] = {"gt_path": files[0], "files": list(files), "token": frame.token, "record": frame.record}
    if writer.family != "kitti":  # the KITTI layouts link each keyframe's image themselves (no index img_path)
        _link_image_folders(part, recording.image_links, [f for info in infos.values() for f in info["files"]])
    report["seconds_total"] = round(time.perf_counter() - t0, 2)
    if rec.notes:  # how the reader read the scene (its keyframes, what it left out)
        report["recording"] = rec.notes
    report["warnings"] = [*report.get("warnings", []), *rec.warnings, *([warning] if warning else [])]
    if no_image:
        from occkit.labelgen.output import kitti_image_warning

        report["warnings"].append(kitti_image_warning(target, next(iter(rec.cameras)), no_image, len(keys)))
    out = {"scene": scene, "infos": infos, "report": report, "read": scene_digest(recorded)}
    write_json_atomic(part / STATE / "scenes" / f"{scene}.json", out)
    return out


def _link_image_folders(part: Path, links: dict[str, Any], written: list[str]) -> None:
    """Where a writer wrote into a folder the output links whole to the recording's images (``samples``:
    the keyframes' LiDAR files at ``samples/LIDAR_TOP/``), that folder is the output's own and each of the
    recording's entries it lacks (``samples/CAM_FRONT``, ...) is linked into it instead, so that the index's
    image paths still resolve and nothing is written into the recording."""
    from occkit.formats.spec import link_inside

    tops = {Path(f).parts[0] for f in written if len(Path(f).parts) > 1}
    for name, folder in links.items():
        src = Path(folder)
        if name not in tops or not src.is_dir() or (part / name).is_symlink():
            continue
        for entry in sorted(src.iterdir()):
            if not (part / name / entry.name).exists():
                link_inside(entry, part / name / entry.name, part)


def _write_images(recording: Any, scene: str, part: Path, rec: Any, family: str) -> Any:
    """The camera images a reader writes into the output itself (a ROS bag's:
    :meth:`~occkit.data.recordings.spec.RecordingReader.write_images`), each path checked to stay inside it:
    ``{token: {camera: path}}``; None where the reader writes none (or the layout records no ``img_path``)."""
    from occkit.formats.spec import inside_out

    if family != "nuscenes" or not rec.cameras:
        return None
    written = recording.write_images(scene, part)
    if not written:
        return None
    for token, cams in written.items():
        for rel in cams.values():
            inside_out(part, rel, f"{rec.source}: scene {scene!r}, token {token!r}, camera image")
    return written


def _index_record(
    rec: Any, job: dict[str, Any], keys: list[Any], i: int, family: str, own_images: bool = False
) -> dict[str, Any]:
    """What the output's index holds of keyframe ``i``: the nuScenes family's ``annotations.json`` entry
    (cameras, poses, the LiDAR's extrinsic, token and file name, the scene as ``scene_token``; with
    ``own_images``, images the reader wrote, a camera without one at the keyframe left out); the KITTI
    family's (:func:`occkit.labelgen.output.kitti_index_record`)."""
    import numpy as np

    s = keys[i]
    token = s.token
    if family == "kitti":
        from occkit.labelgen.output import kitti_index_record

        return kitti_index_record(rec, s)
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
    spawned processes, or as Ray tasks (the cluster at ``RAY_ADDRESS``, else a local Ray; :func:`_launch_ray`)."""
    if launcher == "ray":
        yield from _launch_ray(todo, workers)
        return
    if workers > 1 and len(todo) > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(min(workers, len(todo))) as pool:
            yield from pool.imap_unordered(label_one_scene, todo)
        return
    for j in todo:
        yield label_one_scene(j)


class ScenesLost(ValueError):
    """Scenes whose Ray worker process or node died while it labelled them (the others finished and are
    kept): one line under the command, which says that a rerun labels them."""


#: Where a Ray task notes the node and the process that label its scene (inside the output being written).
RUNNING = "running"


def _launch_ray(todo: list[dict[str, Any]], workers: int):
    """:func:`launch` on Ray: each scene one task of one CPU, no retry. A task whose worker process or node
    dies (killed for memory, a node lost) loses only its scene: a warning line names the node and the
    scenes it took, the other tasks go on and their results come as they finish, and at the end
    :class:`ScenesLost` names the scenes lost. A scene's own error (in the pipeline or its data) stops the
    run as under the other launchers, with its own message."""
    try:
        import ray
        from ray import exceptions as rx
    except ImportError:
        raise ValueError("--launcher ray: ray is not installed (pip install 'ray>=2.9')") from None
    lost_kinds = (rx.WorkerCrashedError, rx.NodeDiedError, rx.LocalRayletDiedError, rx.OutOfMemoryError)
    lost_kinds += (rx.ObjectLostError,)  # a finished scene's result held on a node lost since: labelled again
    started = not ray.is_initialized()  # a Ray this call started is shut down when it ends (a caller's is kept)
    if started:
        addr = os.environ.get("RAY_ADDRESS")
        ray.init(address=addr or None, num_cpus=None if addr else workers, include_dashboard=False)
    import warnings

    lost: list[str] = []
    try:
        task = ray.remote(_ray_scene).options(num_cpus=1, max_retries=0)
        # the scene's function as it is in this process (as the spawned processes take it): a test's stand-in too
        refs = {task.remote(j, label_one_scene): j for j in todo}
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0)  # with all others done by now
            dead: dict[str, list[str]] = {}
            for ref in ready:
                job = refs.pop(ref)
                try:
                    result = ray.get(ref)
                except lost_kinds as e:
                    dead.setdefault(_where_it_ran(job, e, ray), []).append(job["scene"])
                    continue
                except rx.RayTaskError as e:  # the scene's own error, raised as it was (not Ray's wrapping of it)
                    raise e.cause if isinstance(e.cause, Exception) else e from None
                finally:
                    _running(job).unlink(missing_ok=True)
                yield result
            for where, scenes in dead.items():
                lost += scenes
                warnings.warn(
                    f"--launcher ray: {where} died labelling scene{'s' if len(scenes) > 1 else ''} "
                    f"{', '.join(scenes)}: not labelled in this run; the other scenes go on",
                    stacklevel=2,
                )
    finally:
        if started:
            ray.shutdown()
        if todo:  # the notes of the tasks that did not finish (a scene's error, a stop): none is kept
            import shutil

            shutil.rmtree(_running(todo[0]).parent, ignore_errors=True)
    if lost:
        raise ScenesLost(
            f"--launcher ray: {len(lost)} of {len(todo)} scene(s) not labelled, their Ray worker or node lost "
            f"({', '.join(sorted(lost))}); the {len(todo) - len(lost)} other(s) finished"
        )


def _running(job: dict[str, Any]) -> Path:
    return Path(job["part"]) / STATE / RUNNING / f"{job['scene']}.json"


def _ray_scene(job: dict[str, Any], label: Any) -> dict[str, Any]:
    """A Ray task: notes the node and the process it runs in under the output (``--out`` is on a file system
    every node mounts), so that a worker that dies is said with its place, then labels the scene (``label``:
    :func:`label_one_scene`)."""
    import socket

    import ray

    from occkit.fileio import write_json_atomic

    node = ray.get_runtime_context().get_node_id()
    write_json_atomic(_running(job), {"node": node, "host": socket.gethostname(), "pid": os.getpid()})
    return label(job)


def _where_it_ran(job: dict[str, Any], e: BaseException, ray: Any) -> str:
    """The node (and process) a lost task ran in, in words: as the task noted it (its host, its node's
    address and ID), else as Ray's error says (a node lost: its message names it)."""
    from occkit.fileio import read_json

    try:
        noted = read_json(_running(job))
    except (OSError, ValueError):
        noted = None
    if isinstance(noted, dict) and noted.get("node"):
        node = str(noted["node"])
        entry = next((n for n in _nodes(ray) if n.get("NodeID") == node), {})
        address, alive = entry.get("NodeManagerAddress"), entry.get("Alive")
        place = f"node {noted.get('host', '?')}" + (f" ({address}, {node[:12]})" if address else f" ({node[:12]})")
        if alive is False or isinstance(e, ray.exceptions.NodeDiedError):
            return place
        return f"the worker process {noted.get('pid', '?')} on {place}"
    said = " ".join(str(e).split())
    return f"a Ray worker or node ({type(e).__name__}: {said[:200]})"


def _nodes(ray: Any) -> list[dict[str, Any]]:
    try:
        return list(ray.nodes())
    except Exception:  # noqa: BLE001 - the place is said without the address where Ray cannot list its nodes
        return []


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
    shipped class map joining the tables), or through a format that shipped maps join to both (Occ3D ->
    SemanticKITTI -> SSCBench-KITTI-360: the same raw ids); none: a one-line error."""
    from dataclasses import replace

    from occkit.convert.plan import class_conversion
    from occkit.formats import get_format
    from occkit.formats.registry import format_names
    from occkit.formats.spec import ConvertError

    world = get_format("occ3d")
    try:
        return class_conversion(world, fmt, None)
    except (ConvertError, FileNotFoundError, ValueError) as e:
        why = e
    for name in format_names():
        if name in (world.name, fmt.name):
            continue
        try:
            mid = get_format(name)
            first, then = class_conversion(world, mid, None), class_conversion(mid, fmt, None)
        except (ConvertError, FileNotFoundError, ValueError):
            continue
        # the middle table's ignored value goes to the target's (each lut maps its source's 256 ids)
        dropped = tuple(
            i
            for i in range(world.classes.num_classes)
            if then.lut[first.lut[i]] == (fmt.classes.ignore if fmt.classes.ignore is not None else 255)
        )
        return replace(then, lut=then.lut[first.lut], dropped=dropped, merged={}, split={})
    raise ValueError(
        f"--quality: the world's truth (Occ3D's classes) cannot be put in {fmt.name}'s classes ({why})"
    ) from None


def quality_figures(
    data: Path, rec: Any, part: Path, scenes: list[str], done: dict[str, Any], opt: Any, target: Any, truth: bool
) -> dict[str, Any]:
    """``occkit label --quality``'s figures in any layout: against the synthetic world ``data``'s truth where
    ``truth`` (:func:`score_run`), and the labels along each keyframe's LiDAR rays
    (:func:`occkit.labelgen.consistency.score_output`: ``rays``; with the truth, ``rays_exact``: the exact
    occupancy on the output's grid along the same rays); ``scored_against`` says which."""
    from occkit.formats import get_format
    from occkit.labelgen.consistency import score_output
    from occkit.labelgen.truth import WorldTruth

    out: dict[str, Any] = score_run(data, part, scenes, done, opt, target) if truth else {}
    out["scored_against"] = "truth and lidar rays" if truth else "lidar rays"
    exact = None
    if truth:
        world, fmt = WorldTruth(data), get_format(target.format)
        conv = truth_classes(fmt)

        def exact(scene: str, token: str) -> np.ndarray:
            T = _grid_in_ego(world, scene, token, target)
            tr, scored = truth_on_target(world.keyframe(scene, token, opt.free_window, T), target, conv, T, fmt.classes)
            return np.where(scored, tr.semantics, fmt.classes.free)

    out.update(score_output(rec, part, done, scenes, target, exact))
    return out


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
