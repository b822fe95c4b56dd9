"""Generate a synthetic dataset on disk in the Occ3D-nuScenes layout (see docs/DATASET.md)."""

from __future__ import annotations

import io
import math
import multiprocessing as mp
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from occkit.data.occ3d import NUSCENES_CAMERAS
from occkit.fileio import save_npz_atomic, write_bytes_atomic, write_json_atomic
from occkit.geometry.grid import occ3d_grid
from occkit.geometry.transforms import apply_transform, invert_transform, pose_from_transform
from occkit.shapes import check_shape
from occkit.worlds.driving.config import SynthConfig, frame_token, scene_name
from occkit.worlds.driving.lidar import simulate_lidar
from occkit.worlds.driving.occupancy import (
    FREE,
    camera_mask_rays,
    camera_visibility,
    lidar_visibility,
    semantic_instance_occupancy,
    voxel_center_rays,
)
from occkit.worlds.driving.render import render_camera
from occkit.worlds.driving.scene import Scene, SceneState, build_scene, scene_state_at
from occkit.worlds.driving.sensors import T_ego_from_camera, T_ego_from_lidar, camera_intrinsics

TIMESTAMP_BASE_US = 1_600_000_000_000_000
"""Timestamp (microseconds) of frame 0 of scene 0; scenes are 10 minutes apart."""
OBJECT_RADIUS = 60.0
"""objects.json lists the objects within this many metres of the ego (and any farther one that a
pixel, LiDAR point or voxel of the frame shows)."""


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch threads, then restore (results do not depend on thread counts)."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def split_scenes(n: int, val_fraction: float) -> tuple[list[int], list[int]]:
    """Scene indices of (train, val): the last ``round(n * val_fraction)`` scenes are validation,
    clamped so that there is at least one validation scene whenever ``n >= 2`` (even with
    ``val_fraction = 0``) and at least one training scene."""
    n_val = int(round(n * val_fraction))
    if n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    else:
        n_val = 0
    return list(range(n - n_val)), list(range(n - n_val, n))


def frame_data(scene: Scene, frame_index: int, state: SceneState | None = None) -> dict[str, Any]:
    """All ground truth of one frame, in memory (``state`` overrides the posed scene, e.g. a
    hand-built world in tests).

    Returns a dict with ``state`` (:class:`SceneState`), ``T_global_from_ego`` (4, 4) float64,
    ``cameras`` {cam: {K (3,3) float64, T_ego_from_cam (4,4) float64, rgb (H,W,3) uint8,
    depth (H,W) float32, semantics (H,W) uint8, instance (H,W) int32}}, ``lidar`` {points (N,4)
    float32 ego frame, labels (N,) uint8, instance (N,) int32, T_ego_from_lidar}, ``semantics``,
    ``mask_lidar``, ``mask_camera`` (200, 200, 16) uint8, ``instance`` (200, 200, 16) int32 (the
    instance that gives each voxel its class, 0 = ground / free; see
    :func:`~occkit.worlds.driving.occupancy.semantic_instance_occupancy`), and ``objects`` (list of
    dicts, ego frame boxes and velocities added: :func:`object_records`, every instance any map
    shows included).
    """
    cfg = scene.config
    H, W = cfg.image_size
    state = scene_state_at(scene, frame_index) if state is None else state
    T_ge = state.T_global_from_ego
    grid = occ3d_grid()
    cams: dict[str, dict[str, Any]] = {}
    for ci, cam in enumerate(NUSCENES_CAMERAS):
        K = camera_intrinsics(cam, (H, W))
        T_ec = T_ego_from_camera(cam)
        out = render_camera(
            state, K, T_ge @ T_ec, H, W, noise_seed=(cfg.seed * 1_000_003 + scene.index * 7919 + frame_index * 31 + ci)
        )
        cams[cam] = {"K": K, "T_ego_from_cam": T_ec, **out}
    T_el = T_ego_from_lidar()
    pts_l, labels, inst = simulate_lidar(state, T_ge @ T_el)
    pts_e = torch.cat([apply_transform(T_el.float(), pts_l[:, :3]), pts_l[:, 3:]], -1)
    sem, inst_vox = semantic_instance_occupancy(state, grid, T_ge)
    mask_l = lidar_visibility(grid, T_el[:3, 3].float(), pts_e[:, :3])
    occupied = sem != FREE
    origins, dirs = [], []
    for cam in NUSCENES_CAMERAS:
        c = cams[cam]
        o, d = camera_mask_rays(c["K"], c["T_ego_from_cam"], c["depth"], grid, cfg.mask_ray_stride)
        ov, dv = voxel_center_rays(c["K"], c["T_ego_from_cam"], (H, W), grid, occupied)
        origins += [o, ov]
        dirs += [d, dv]
    mask_c = camera_visibility(grid, occupied, torch.cat(origins), torch.cat(dirs))
    objects = object_records(state, shown_instances(inst_vox, inst, *(c["instance"] for c in cams.values())))
    return {
        "state": state,
        "T_global_from_ego": T_ge,
        "cameras": cams,
        "lidar": {"points": pts_e.float(), "labels": labels, "instance": inst, "T_ego_from_lidar": T_el},
        "semantics": sem,
        "instance": inst_vox,
        "mask_lidar": mask_l.to(torch.uint8),
        "mask_camera": mask_c.to(torch.uint8),
        "objects": objects,
    }


def shown_instances(*ids: torch.Tensor) -> list[int]:
    """The distinct instance ids > 0 in any of the integer tensors ``ids`` (any shapes), ascending."""
    flat = [a.reshape(-1).long() for a in ids if a.numel()]
    if not flat:
        return []
    n = max(int(a.max()) for a in flat) + 1
    present = torch.zeros(n, dtype=torch.bool)
    for a in flat:
        if int(a.min()) < 0:
            raise ValueError(f"instance ids must be >= 0, got {int(a.min())}")
        present |= torch.bincount(a, minlength=n) > 0
    present[0] = False
    return present.nonzero().squeeze(1).tolist()


def object_records(
    state: SceneState,
    seen: list[int] | tuple[int, ...] = (),
    T_global_from_frame: torch.Tensor | None = None,
    radius: float = OBJECT_RADIUS,
) -> list[dict[str, Any]]:
    """``objects.json`` entries of a frame: every object within ``radius`` metres (horizontally)
    of the ego, and every object whose instance id is in ``seen`` (ids shown by a pixel, a LiDAR
    point or a voxel; 0 = none is skipped), in instance order.

    Args:
        state: the posed scene; its ``objects`` must hold a record of every id in ``seen``.
        seen: instance ids the frame's maps show.
        T_global_from_frame: ``(4, 4)`` frame of ``box_ego`` / ``velocity_ego`` -> world (default:
            the ego frame; the SemanticKITTI export passes its velodyne frame).
        radius: metres.
    Returns:
        dicts with instance, class_id, class_name, name, attributes, dynamic, box_ego {center,
        size, yaw}, velocity_ego [vx, vy], box_global, velocity_global.
    """
    T_ge = state.T_global_from_ego.double()
    T_gf = T_ge if T_global_from_frame is None else T_global_from_frame.double()
    check_shape(T_gf, "4 4", name="T_global_from_frame")
    wanted = {int(i) for i in seen} - {0}
    missing = wanted - {int(o["instance"]) for o in state.objects}
    if missing:
        raise ValueError(
            f"{state.scene.name} frame {state.frame_index}: instances {sorted(missing)[:10]} are shown but have no "
            f"record in state.objects ({len(missing)} missing)"
        )
    T_fg = invert_transform(T_gf)
    yaw_f = math.atan2(float(T_gf[1, 0]), float(T_gf[0, 0]))
    recs = state.objects
    if not recs:
        return []
    centres = torch.tensor([o["center"] for o in recs], dtype=torch.float64)  # (M, 3) world
    near = ((centres[:, :2] - T_ge[:2, 3]).norm(dim=-1) <= radius).tolist()
    keep = [k for k, o in enumerate(recs) if near[k] or int(o["instance"]) in wanted]
    ce = apply_transform(T_fg, centres[keep]).tolist()  # (K, 3) frame
    vel = torch.tensor([[*recs[k]["velocity"], 0.0] for k in keep], dtype=torch.float64).view(-1, 3)
    ve = (vel @ T_fg[:3, :3].T).tolist()
    objects = []
    for k, c, v in zip(keep, ce, ve):
        o = recs[k]
        yaw = (o["yaw"] - yaw_f + math.pi) % (2 * math.pi) - math.pi
        objects.append(
            {
                "instance": o["instance"],
                "class_id": o["class_id"],
                "class_name": o["class_name"],
                "name": o["name"],
                "attributes": o["attributes"],
                "dynamic": o["dynamic"],
                "box_ego": {
                    "center": [round(x, 4) for x in c],
                    "size": [round(x, 4) for x in o["size"]],
                    "yaw": round(yaw, 5),
                },
                "velocity_ego": [round(v[0], 4), round(v[1], 4)],
                "box_global": {
                    "center": [round(x, 4) for x in o["center"]],
                    "size": [round(x, 4) for x in o["size"]],
                    "yaw": round(o["yaw"], 5),
                },
                "velocity_global": [round(x, 4) for x in o["velocity"]],
            }
        )
    return objects


def _encode_image(rgb: np.ndarray, fmt: str, quality: int) -> bytes:
    buf = io.BytesIO()
    im = Image.fromarray(rgb, "RGB")
    if fmt == "jpg":
        im.save(buf, format="JPEG", quality=quality)
    else:
        im.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def _pose(T: torch.Tensor) -> dict[str, list[float]]:
    p = pose_from_transform(T)
    return {"translation": [round(x, 6) for x in p["translation"]], "rotation": [round(x, 8) for x in p["rotation"]]}


#: Seconds between two frame lines of one scene (``generate_scene(progress=True)``).
FRAME_LINE_EVERY_S = 10.0


def generate_scene(
    out_dir: str | os.PathLike, config: SynthConfig, scene_index: int, progress: bool = False
) -> dict[str, Any]:
    """Build and write every frame of one scene; return its ``scene_infos`` entry and description.

    ``progress``: a line after the scene's first frame (with the pace it gives the whole world) and
    then at most one every :data:`FRAME_LINE_EVERY_S` seconds, so that a scene of minutes is not
    minutes of silence."""
    out = Path(out_dir)
    t0 = last = time.perf_counter()
    with torch_threads(1), torch.no_grad():
        scene = build_scene(config, scene_index)
        name = scene_name(scene_index)
        tokens = [frame_token(config.seed, scene_index, i) for i in range(config.frames)]
        infos: dict[str, Any] = {}
        for i, token in enumerate(tokens):
            fd = frame_data(scene, i)
            if config.classes is not None:  # every label in the ids the format asked for (SynthConfig.classes)
                fd = relabel_frame(fd, config.classes)
            ts = TIMESTAMP_BASE_US + scene_index * 600_000_000 + int(round(float(scene.times[i]) * 1e6))
            ego_pose = _pose(fd["T_global_from_ego"])
            cam_infos = {}
            for cam, c in fd["cameras"].items():
                rel = f"samples/{cam}/{name}__{token}__{cam}.{config.image_format}"
                write_bytes_atomic(out / rel, _encode_image(c["rgb"].numpy(), config.image_format, config.jpeg_quality))
                cam_infos[cam] = {
                    "img_path": rel,
                    "intrinsic": [[round(float(v), 6) for v in row] for row in c["K"]],
                    "extrinsic": _pose(c["T_ego_from_cam"]),
                    "ego_pose": ego_pose,
                }
                save_npz_atomic(
                    out / "extras" / name / token / f"{cam}.npz",
                    depth=c["depth"].numpy(),
                    semantics=c["semantics"].numpy(),
                    instance=c["instance"].numpy(),
                )
            lid = fd["lidar"]
            save_npz_atomic(
                out / "extras" / name / token / "lidar.npz",
                points=lid["points"].numpy(),
                labels=lid["labels"].numpy(),
                instance=lid["instance"].numpy(),
            )
            write_json_atomic(
                out / "extras" / name / token / "objects.json",
                {"token": token, "scene": name, "objects": fd["objects"]},
            )
            gt_rel = f"gts/{name}/{token}/labels.npz"
            save_npz_atomic(
                out / gt_rel,
                semantics=fd["semantics"].numpy(),
                mask_lidar=fd["mask_lidar"].numpy(),
                mask_camera=fd["mask_camera"].numpy(),
            )
            save_npz_atomic(out / "extras" / name / token / "instances.npz", instance=fd["instance"].numpy())
            infos[token] = {
                "timestamp": ts,
                "camera_sensor": cam_infos,
                "ego_pose": ego_pose,
                "lidar_sensor": {"extrinsic": _pose(lid["T_ego_from_lidar"])},
                "gt_path": gt_rel,
                "prev": tokens[i - 1] if i > 0 else "",
                "next": tokens[i + 1] if i + 1 < len(tokens) else "",
            }
            now = time.perf_counter()
            if progress and i + 1 < len(tokens) and (i == 0 or now - last >= FRAME_LINE_EVERY_S):
                last = now
                pace = (now - t0) / (i + 1)
                world = pace * config.frames * config.scenes / max(1, min(config.workers, config.scenes))
                first = i == 0 and scene_index == 0
                whole = f" (at this pace the world takes about {_duration(world)})" if first else ""
                print(f"synth: {name}: frame {i + 1}/{len(tokens)}, {pace:.1f} s a frame{whole}", flush=True)
    return {"scene": name, "infos": infos, "description": scene.description}


def _worker(args: tuple[str, SynthConfig, int] | tuple[str, SynthConfig, int, bool]) -> dict[str, Any]:
    torch.set_num_threads(1)
    return generate_scene(*args)


SCENE_RECORDS = ".scenes"
"""Folder (inside the dataset being written) of one JSON record per finished scene, kept while a
resumable generation runs: a stopped one resumes with the scenes it lacks."""


def relabel_frame(fd: dict[str, Any], classes: tuple[int, ...]) -> dict[str, Any]:
    """:func:`frame_data`'s result with every class id through the table ``classes`` (world id ->
    id): the 3D ``semantics``, each camera's ``semantics``, the LiDAR ``labels``, each object's
    ``class_id``. The masks, instances and pictures are unchanged."""
    lut = torch.tensor(classes, dtype=torch.uint8)

    def ids(t: torch.Tensor) -> torch.Tensor:
        return lut[t.long()]

    out = dict(fd)
    out["semantics"] = ids(fd["semantics"])
    out["cameras"] = {cam: {**c, "semantics": ids(c["semantics"])} for cam, c in fd["cameras"].items()}
    out["lidar"] = {**fd["lidar"], "labels": ids(fd["lidar"]["labels"])}
    out["objects"] = [{**o, "class_id": int(classes[int(o["class_id"])])} for o in fd["objects"]]
    return out


def config_record(config: SynthConfig) -> dict[str, Any]:
    """The config as ``annotations.json`` records it: without ``workers`` (which does not change the
    output), lists rather than tuples (as read back from JSON)."""
    import json

    cfg = asdict(config)
    cfg.pop("workers")
    if cfg.get("classes") is None:  # the world's own ids: recorded as before the option existed
        cfg.pop("classes", None)
    return json.loads(json.dumps(cfg))


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _ignore_sigint() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_scenes(
    out: Path,
    config: SynthConfig,
    worker: Any,
    progress: bool = False,
    resume: bool = False,
    jobs: list[tuple[Any, ...]] | None = None,
) -> dict[int, dict[str, Any]]:
    """``worker((str(out), config, i, ...))`` for every scene ``i``; returns each scene's result by
    index. With ``workers > 1`` in "spawn" processes that ignore Ctrl-C (this process stops them).

    ``resume``: each finished scene's result is kept in ``out/.scenes/NNNN.json`` with the config,
    and scenes already recorded there under the same config are not generated again (their files
    are on disk: a scene's record is written after its last file). ``progress``: one line per
    scene with the time left, from this run's own pace.
    """
    import json

    from occkit.fileio import write_json_atomic

    cfg = config_record(config)
    jobs = jobs if jobs is not None else [(str(out), config, i) for i in range(config.scenes)]
    records: dict[int, dict[str, Any]] = {}
    if resume:
        for i in range(config.scenes):
            f = out / SCENE_RECORDS / f"{i:04d}.json"
            try:
                rec = json.loads(f.read_text(encoding="utf-8")) if f.is_file() else None
            except (OSError, ValueError):
                rec = None  # unreadable: the scene is generated again
            if isinstance(rec, dict) and rec.pop("synth_config", None) == cfg:
                records[i] = rec
    todo = [j for j in jobs if j[2] not in records]
    if progress and todo:
        h, w = config.image_size
        print(
            f"synth: {len(todo)} scene(s) x {config.frames} frames at {h}x{w} to generate with {config.workers} "
            "worker(s): a line as frames are written, one per scene with the time left",
            flush=True,
        )
    if records and progress:
        print(f"synth: resuming: {len(records)} of {config.scenes} scenes already written", flush=True)
    t0 = time.perf_counter()

    def finished(i: int, r: dict[str, Any]) -> None:
        if resume:
            write_json_atomic(out / SCENE_RECORDS / f"{i:04d}.json", {**r, "synth_config": cfg})
        records[i] = r
        if progress:
            done = len(records) - (config.scenes - len(todo))
            left = (time.perf_counter() - t0) / done * (len(todo) - done)
            eta = f", about {_duration(left)} left" if len(todo) > done else ""
            print(f"synth: {r['scene']} done, {len(records)}/{config.scenes} scenes{eta}", flush=True)

    if config.workers > 1 and len(todo) > 1:
        with mp.get_context("spawn").Pool(min(config.workers, len(todo)), initializer=_ignore_sigint) as pool:
            for job, r in zip(todo, pool.imap(worker, todo)):
                finished(job[2], r)
    else:
        for job in todo:
            finished(job[2], worker(job))
    return records


def drop_scene_records(out: Path) -> None:
    """Remove ``out/.scenes/`` once the dataset's index is written."""
    import shutil

    shutil.rmtree(out / SCENE_RECORDS, ignore_errors=True)


class DatasetExistsError(FileExistsError, ValueError):
    """A synthetic export refused: its folder already holds a dataset and ``overwrite`` was not given
    (every writer of the world: :func:`export_occ3d_schema`, the KITTI layouts'). A
    ``FileExistsError`` (what it is, and what the LiDAR-frame and KITTI writers raised) and a
    ``ValueError`` (what :func:`generate_dataset` raised), so callers catching either still do."""


def export_occ3d_schema(
    out_dir: str | os.PathLike,
    config: SynthConfig,
    worker: Any,
    overwrite: bool,
    progress: bool,
    resume: bool,
    job_args: tuple[Any, ...] = (),
    header: dict[str, Any] | None = None,
) -> Path:
    """Write the synthetic world under ``out_dir`` scene by scene (``worker((str(out), config, i,
    *job_args))`` per scene ``i``, through :func:`run_scenes`; each returns ``{"scene", "infos",
    "description"}``), then its ``annotations.json`` in Occ3D's schema: ``header``'s keys first (a
    layout's name), the train / validation scenes of :func:`split_scenes`, each scene's frame infos
    and description, the config. What the Occ3D-nuScenes writer (:func:`generate_dataset`) and the
    LiDAR-frame layouts' (:func:`occkit.worlds.driving.lidar_frame_export.export_lidar_frame_layout`)
    share; returns ``out_dir`` as a Path.

    A ``config`` that is not a :class:`SynthConfig` raises ``TypeError``; an ``out_dir`` that is a
    file, ``ValueError``; one that already holds an ``annotations.json``, :class:`DatasetExistsError`
    unless ``overwrite``. ``progress`` and ``resume`` as :func:`run_scenes`."""
    if not isinstance(config, SynthConfig):
        raise TypeError(f"config must be a SynthConfig, got {type(config).__name__}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a directory")
    if (out / "annotations.json").exists() and not overwrite:
        raise DatasetExistsError(
            f"{out}: already holds a dataset (annotations.json); pass overwrite=True (--overwrite) to write over it"
        )
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(str(out), config, i, *job_args) for i in range(config.scenes)]
    records = run_scenes(out, config, worker, progress=progress, resume=resume, jobs=jobs)
    results = [records[i] for i in range(config.scenes)]
    train, val = split_scenes(config.scenes, config.val_fraction)
    from occkit.data.occ3d import write_occ3d_index

    write_occ3d_index(
        out / "annotations.json",
        {r["scene"]: r["infos"] for r in results},
        {"train": [scene_name(i) for i in train], "val": [scene_name(i) for i in val]},
        head=header,
        tail={
            "scene_descriptions": {r["scene"]: r["description"] for r in results},
            "synth_config": config_record(config),
        },
    )
    drop_scene_records(out)
    return out


def generate_dataset(
    out_dir: str | os.PathLike,
    config: SynthConfig,
    overwrite: bool = False,
    progress: bool = False,
    resume: bool = False,
) -> Path:
    """Generate ``config.scenes`` scenes under ``out_dir`` in the Occ3D-nuScenes layout.

    Args:
        out_dir: output folder (created).
        config: the options; the same config gives byte-identical files.
        overwrite: allow writing into a folder that already holds an ``annotations.json``.
        progress: print one line per finished scene, with the time left.
        resume: keep a record per finished scene (``out_dir/.scenes/``) and skip the scenes a
            stopped run of the same config already wrote; the records are removed at the end.

    With ``config.workers > 1`` the scenes are generated in "spawn" processes, which import the
    calling script again: call this from a script guarded by ``if __name__ == "__main__":``.
    Returns:
        ``out_dir`` as a Path (holding ``annotations.json``).
    """
    # the frame lines in the workers too (generate_scene's progress)
    return export_occ3d_schema(out_dir, config, _worker, overwrite, progress, resume, job_args=(progress,))
