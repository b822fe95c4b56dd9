"""Shared fixtures.

`tiny_occ3d_root`: a small hand-made Occ3D-nuScenes-layout folder (random labels, small random
images) that exercises the reader and anything that reads the format, written without the
synthetic world.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image

from occkit.data.occ3d import NUSCENES_CAMERAS
from occkit.fileio import save_npz_atomic, write_json_atomic
from occkit.geometry.transforms import matrix_to_quat


def write_tiny_occ3d(
    root: Path,
    scenes: int = 2,
    frames: int = 2,
    image_size: tuple[int, int] = (24, 64),
    seed: int = 0,
) -> Path:
    """Write a tiny Occ3D-layout dataset with random content; returns ``root``."""
    rng = np.random.default_rng(seed)
    H, W = image_size
    K = [[W * 0.8, 0.0, W / 2], [0.0, W * 0.8, H / 2], [0.0, 0.0, 1.0]]
    yaws = [0, -55, 55, 180, 110, -110]
    scene_infos: dict = {}
    names = [f"scene-{i:04d}" for i in range(scenes)]
    for si, scene in enumerate(names):
        tokens = [f"{si:02d}{fi:02d}" + "ab" * 14 for fi in range(frames)]
        scene_infos[scene] = {}
        for fi, token in enumerate(tokens):
            ego = {"translation": [10.0 * fi, 2.0 * si, 0.0], "rotation": [1.0, 0.0, 0.0, 0.0]}
            cams = {}
            for cam, yaw in zip(NUSCENES_CAMERAS, yaws):
                # camera looks along ego yaw; OpenCV camera axes: x right, y down, z forward
                a = np.deg2rad(yaw)
                # rotation camera->ego: columns are camera axes in ego coords
                z_axis = [np.cos(a), np.sin(a), 0.0]
                x_axis = [np.sin(a), -np.cos(a), 0.0]
                y_axis = [0.0, 0.0, -1.0]
                R = np.array([x_axis, y_axis, z_axis]).T
                q = matrix_to_quat(torch.from_numpy(R)).tolist()
                rel = f"imgs/{cam}/{token}.png"
                img = rng.integers(0, 255, size=(H, W, 3), dtype=np.uint8)
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(img).save(root / rel)
                cams[cam] = {
                    "img_path": rel,
                    "intrinsic": K,
                    "extrinsic": {"translation": [1.0, 0.0, 1.5], "rotation": q},
                    "ego_pose": ego,
                }
            sem = rng.integers(0, 18, size=(200, 200, 16), dtype=np.uint8)
            sem[rng.random((200, 200, 16)) < 0.8] = 17
            gt = f"gts/{scene}/{token}/labels.npz"
            save_npz_atomic(
                root / gt,
                semantics=sem,
                mask_lidar=(rng.random((200, 200, 16)) < 0.5).astype(np.uint8),
                mask_camera=(rng.random((200, 200, 16)) < 0.5).astype(np.uint8),
            )
            scene_infos[scene][token] = {
                "timestamp": 1_000_000 + 500_000 * fi,
                "camera_sensor": cams,
                "ego_pose": ego,
                "gt_path": gt,
                "prev": tokens[fi - 1] if fi > 0 else "",
                "next": tokens[fi + 1] if fi + 1 < frames else "",
            }
    n_val = 1 if scenes > 1 else 0
    write_json_atomic(
        root / "annotations.json",
        {"train_split": names[: scenes - n_val], "val_split": names[scenes - n_val :], "scene_infos": scene_infos},
    )
    return root


def write_sweep_world(out: Path) -> Path:
    """The synthetic world the readers' tests label (``occkit synth``): one scene of two frames, images of 48 x 80
    pixels, two LiDAR sweeps of eight beams a frame; returns ``out``."""
    from occkit.cli import main

    argv = ["synth", "--out", str(out), "--scenes", "1", "--frames", "2", "--image-size", "48", "80"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([*argv, "--sweeps", "2", "--beams", "8"]) == 0
    return out


def load_tool(name: str) -> ModuleType:
    """``tools/NAME.py`` loaded as a module (the tools are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "tools" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (pyproject's addopts): one worker per usable core, at most 4. The suite's
    slowest files each take about a minute, so more workers would mostly wait; each worker can
    hold a GiB or two."""
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def pytest_configure(config):
    """Under pytest-xdist (``-n 2``) each worker is one of two jobs on the machine: one torch
    thread each, for the worker and the commands it starts, so that the two do not contend."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        torch.set_num_threads(1)
    # The ablation package checks a verb's options with the verb's own parser, which its caller gives
    # (the occkit ablate command): tests that call the package directly give it the same one.
    from occkit.ablate.cliargs import use_verb_parser
    from occkit.commands.ablate import verb_parser

    use_verb_parser(verb_parser)


@pytest.fixture
def one_torch_thread():
    """Run a test with one torch thread: the voxel walks are loops of small tensor ops, and on a
    busy 2-core machine a second intra-op thread stalls them more than it helps."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def tiny_occ3d_root(tmp_path_factory) -> Path:
    return write_tiny_occ3d(tmp_path_factory.mktemp("tiny_occ3d"))


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """A tiny dataset of the procedural world (2 scenes x 2 frames, 64 x 176 images, seed 0),
    generated once per session in the Occ3D-nuScenes layout with the synthetic extras."""
    from occkit.worlds.driving import SynthConfig, generate_dataset

    cfg = SynthConfig(scenes=2, frames=2, seed=0, image_size=(64, 176))
    return generate_dataset(tmp_path_factory.mktemp("synth"), cfg)


def write_lidar_feature_world(
    tmp: Path,
    frames: int = 4,
    image_size: tuple[int, int] = (32, 64),
    stride: int = 4,
    dim: int = 8,
    points: int = 3000,
    spacing: float = 1.0,
) -> tuple[Path, Path]:
    """One scene of ``frames`` keyframes (:func:`write_tiny_occ3d`, scene 0's tokens) moved to
    ``spacing`` m apart along x, with a LiDAR file per keyframe (``points`` random points within
    5 m of its ego, some outside a 6.4 m box, intensity = the frame index) and a prior cache of
    random ``dim``-d float16 ``features`` at ``stride``. Returns ``(root, priors)``: ``tmp/data``,
    ``tmp/priors``."""
    import json

    H, W = image_size
    root = write_tiny_occ3d(tmp / "data", scenes=1, frames=frames, image_size=image_size)
    ann = json.loads((root / "annotations.json").read_text())
    infos = ann["scene_infos"]["scene-0000"]
    rng = np.random.default_rng(7)
    tokens = list(infos)
    for fi, token in enumerate(tokens):
        infos[token]["ego_pose"]["translation"] = [spacing * fi, 0.0, 0.0]
        for cam in infos[token]["camera_sensor"].values():
            cam["ego_pose"]["translation"] = [spacing * fi, 0.0, 0.0]
        xyz = rng.uniform([-5.0, -5.0, -1.5], [5.0, 5.0, 2.0], size=(points, 3))
        pts = np.concatenate([xyz, np.full((points, 1), float(fi))], 1).astype(np.float32)
        save_npz_atomic(root / "extras" / "scene-0000" / token / "lidar.npz", points=pts, labels=np.zeros(points))
        for cam in NUSCENES_CAMERAS:
            f = rng.standard_normal((dim, -(-H // stride), -(-W // stride))).astype(np.float16)
            save_npz_atomic(tmp / "priors" / "scene-0000" / token / f"{cam}.npz", features=f)
    (root / "annotations.json").write_text(json.dumps(ann))
    write_json_atomic(
        tmp / "priors" / "prior.json",
        {
            "format": 1,
            "spec": "test",
            "kinds": ["features"],
            "cameras": list(NUSCENES_CAMERAS),
            "image_size": [H, W],
            "frames": {"scene-0000": tokens},
            "complete": True,
            "feature_stride": stride,
            "feature_dim": dim,
            "text_encoder": None,
            "layout": "occ3d",
        },
    )
    return root, tmp / "priors"
