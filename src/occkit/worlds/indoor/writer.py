"""Write the indoor world in the layout of MonoScene's NYUv2 release (see :mod:`occkit.data.nyu`).

Per frame: ``NYU<split>/NYU<room>_<view>_color.jpg`` (640 x 480), ``.png`` (depth), ``.bin``
(voxel origin, camera pose, run-length labels of the 240 x 144 x 240 grid), and the exact maps in
``extras/NYU<room>_<view>.npz``; ``indoor.json`` holds the config, the rooms (kind, size, objects,
description) and each frame's room, view, split and description.

**The frame's world**: NYU's world frames are gravity-aligned (z up). Each view's world frame is
the room's frame turned about z by the multiple of 90 degrees that brings the camera's heading
nearest +y (so the room's walls stay on voxel faces). The 4.8 x 4.8 x 2.88 m volume stands in
front of the camera: x centred on it, y from the camera onwards, z from 6 cm under the floor's
top (which is at z = 0).
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from occkit.data.nyu import INDEX_FILE, NYU_IMAGE_HW, NYU_K, encode_bin, encode_depth_png, xyz_to_file
from occkit.fileio import save_npz_atomic, write_bytes_atomic, write_json_atomic
from occkit.labels import NYU_CLASSES
from occkit.worlds.driving.writer import drop_scene_records, run_scenes, split_scenes, torch_threads
from occkit.worlds.indoor.config import IndoorConfig, frame_name
from occkit.worlds.indoor.occupancy import room_occupancy
from occkit.worlds.indoor.render import render_view
from occkit.worlds.indoor.room import Room, build_room

FLOOR_MARGIN = 0.06
"""The volume starts this far under the floor's top (metres)."""


def frame_world(T_room_from_cam: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A view's NYU frame: ``(T_world_from_room (4, 4), T_world_from_cam (4, 4), origin (3,))``,
    the pose and origin float32-exact (as the ``.bin`` stores them)."""
    T = T_room_from_cam.double().numpy()
    f = T[:3, 2]
    phi = math.atan2(f[1], f[0])
    k = int(round((math.pi / 2 - phi) / (math.pi / 2))) % 4
    c, s = [(1, 0), (0, 1), (-1, 0), (0, -1)][k]  # cos, sin of k * 90 degrees
    T_wr = np.eye(4)
    T_wr[:2, :2] = [[c, -s], [s, c]]
    T_wc = (T_wr @ T).astype(np.float32).astype(np.float64)
    cam = T_wc[:3, 3]
    origin = np.array([cam[0] - 2.4, cam[1], -FLOOR_MARGIN], dtype=np.float32).astype(np.float64)
    return T_wr, T_wc, origin


def _names_in_view(room: Room, instance: np.ndarray, min_share: float = 0.004) -> str:
    ids, n = np.unique(instance[instance > 0], return_counts=True)
    names: dict[str, int] = {}
    by_id = {o["instance"]: o["name"] for o in room.objects}
    for i, c in zip(ids.tolist(), n.tolist()):
        if c >= min_share * instance.size and i in by_id:
            names[by_id[i]] = names.get(by_id[i], 0) + 1
    if not names:
        return "bare walls"
    return ", ".join(f"{k}" if v == 1 else f"{v} {k}s" for k, v in sorted(names.items(), key=lambda kv: -kv[1]))


def frame_data(room: Room, view: int, render_scale: int = 1, noise_seed: int | None = None) -> dict[str, Any]:
    """Every ground truth of one view, in memory: ``rgb``, ``depth``, ``semantics``, ``instance``
    (480 x 640), ``pose`` (camera -> world), ``origin``, ``labels`` (240, 240, 144) uint8 in
    occkit's (x, y, z) order, ``voxel_instance``, ``description``."""
    H, W = NYU_IMAGE_HW
    K = torch.tensor(NYU_K, dtype=torch.float64)
    T_rc = room.views[view]
    T_wr, T_wc, origin = frame_world(T_rc)
    T_rc_exact = torch.from_numpy(np.linalg.inv(T_wr) @ T_wc)
    maps = render_view(room, K, T_rc_exact, H, W, noise_seed=noise_seed, render_scale=render_scale)
    labels, vinst = room_occupancy(room, np.linalg.inv(T_wr), origin)
    desc = f"{room.description} View {view + 1}: in view, {_names_in_view(room, maps['instance'].numpy())}."
    return {
        **{k: v.numpy() for k, v in maps.items()},
        "pose": T_wc,
        "origin": origin,
        "labels": labels,
        "voxel_instance": vinst,
        "description": desc,
    }


def _jpeg(rgb: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def generate_room(out_dir: str | os.PathLike, config: IndoorConfig, room_index: int) -> dict[str, Any]:
    """Build and write every view of one room; return its record for ``indoor.json``."""
    out = Path(out_dir)
    _, test = split_scenes(config.scenes, config.val_fraction)
    folder = "NYUtest" if room_index in test else "NYUtrain"
    with torch_threads(1), torch.no_grad():
        room = build_room(config, room_index)
        frames = {}
        for v in range(config.frames):
            name = frame_name(room_index, v)
            fd = frame_data(room, v, config.render_scale, noise_seed=config.seed * 1_000_003 + room_index * 7919 + v)
            write_bytes_atomic(out / folder / f"{name}_color.jpg", _jpeg(fd["rgb"], config.jpeg_quality))
            write_bytes_atomic(out / folder / f"{name}.png", encode_depth_png(fd["depth"]))
            save_npz_atomic(
                out / "extras" / f"{name}.npz", depth=fd["depth"], semantics=fd["semantics"], instance=fd["instance"]
            )
            write_bytes_atomic(
                out / folder / f"{name}.bin",
                encode_bin(fd["origin"], fd["pose"], np.ascontiguousarray(xyz_to_file(fd["labels"]))),
            )
            frames[name] = {"room": room_index, "view": v, "split": folder, "description": fd["description"]}
    return {
        "scene": f"room-{room_index:04d}",
        "frames": frames,
        "room": {
            "kind": room.kind,
            "size": list(room.size),
            "block": list(room.block) if room.block else None,
            "description": room.description,
            "objects": [{**o, "class_name": NYU_CLASSES[o["class_id"]]} for o in room.objects],
        },
    }


def _worker(args: tuple[str, IndoorConfig, int]) -> dict[str, Any]:
    torch.set_num_threads(1)
    return generate_room(*args)


def generate_indoor(
    out_dir: str | os.PathLike, config: IndoorConfig, progress: bool = False, resume: bool = False
) -> Path:
    """Write ``config.scenes`` rooms x ``config.frames`` views under ``out_dir`` (see the module docstring).

    ``resume``: finished rooms are recorded in ``out_dir/.scenes/`` and not generated again by
    the same config. With ``workers > 1`` rooms are generated in "spawn" processes.
    """
    if not isinstance(config, IndoorConfig):
        raise TypeError(f"config must be an IndoorConfig, got {type(config).__name__}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    records = run_scenes(out, config, _worker, progress=progress, resume=resume)  # type: ignore[arg-type]
    train, test = split_scenes(config.scenes, config.val_fraction)
    from occkit.worlds.driving.writer import config_record

    index = {
        "world": "indoor",
        "synth_config": config_record(config),  # type: ignore[arg-type]
        "train_rooms": train,
        "test_rooms": test,
        "rooms": {records[i]["scene"]: records[i]["room"] for i in range(config.scenes)},
        "frames": {k: v for i in range(config.scenes) for k, v in records[i]["frames"].items()},
    }
    write_json_atomic(out / INDEX_FILE, index)
    drop_scene_records(out)
    return out
