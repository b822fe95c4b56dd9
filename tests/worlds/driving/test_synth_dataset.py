"""The generated dataset: loads through the Occ3D reader with the right shapes and dtypes,
matches what the generator computed in memory, is deterministic, and its ground truth is
geometrically consistent (LiDAR on the depth maps, voxels behind a wall unobserved)."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from occkit.data.occ3d import NUSCENES_CAMERAS, Occ3DDataset
from occkit.fileio import load_npz, read_json
from occkit.geometry.camera import project
from occkit.geometry.grid import occ3d_grid
from occkit.geometry.transforms import apply_transform, invert_transform
from occkit.worlds.driving import SynthConfig, build_scene, frame_data, frame_token, generate_dataset, scene_state_at
from occkit.worlds.driving.primitives import BOX, Primitives
from occkit.worlds.driving.writer import split_scenes

TINY = dict(scenes=2, frames=2, seed=0, image_size=(64, 176))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_every_sample_loads_with_shapes_and_dtypes(synth_root: Path):
    ann = read_json(synth_root / "annotations.json")
    assert ann["train_split"] == ["scene-0000"] and ann["val_split"] == ["scene-0001"]
    assert set(ann["scene_descriptions"]) == {"scene-0000", "scene-0001"}
    assert all(d.split()[0] in ("a", "an") and "street" in d for d in ann["scene_descriptions"].values())
    n = 0
    for split in ("train", "val"):
        ds = Occ3DDataset(synth_root, split=split)
        assert len(ds) == 2
        for i in range(len(ds)):
            s = ds[i]
            n += 1
            assert s.images.shape == (6, 3, 64, 176) and s.images.dtype == torch.float32
            assert s.occupancy.shape == (200, 200, 16) and int(s.occupancy.max()) <= 17
            assert s.mask_camera.dtype == torch.bool and s.mask_lidar.dtype == torch.bool
            assert s.depth.shape == (6, 64, 176) and s.semantics_2d.shape == (6, 64, 176)
            assert s.lidar.shape[1] == 4 and s.lidar.shape[0] > 10_000 and len(s.lidar_labels) == len(s.lidar)
            assert s.T_ego_from_lidar is not None and s.description
            info = ds.info(s.token)
            assert set(info["camera_sensor"]) == set(NUSCENES_CAMERAS)
            tok = ds.frames[i]
            gt = load_npz(ds.gt_path(s.token))
            for k in ("semantics", "mask_lidar", "mask_camera"):
                assert gt[k].dtype == np.uint8 and gt[k].shape == (200, 200, 16)
            ex = ds.extras_dir(s.token)
            for cam in NUSCENES_CAMERAS:
                z = load_npz(ex / f"{cam}.npz")
                assert (
                    z["depth"].dtype == np.float32
                    and z["semantics"].dtype == np.uint8
                    and z["instance"].dtype == np.int32
                )
            lz = load_npz(ex / "lidar.npz")
            assert (
                lz["points"].dtype == np.float32 and lz["labels"].dtype == np.uint8 and lz["instance"].dtype == np.int32
            )
            objs = read_json(ex / "objects.json")["objects"]
            assert objs and {"instance", "class_id", "name", "attributes", "box_ego", "velocity_ego"} <= set(objs[0])
            assert tok.index_in_scene == (0 if info["prev"] == "" else 1)
    assert n == 4
    # the ego moves at 2 Hz: timestamps 0.5 s apart
    ds = Occ3DDataset(synth_root, split="all")
    t = [ds.info(tk)["timestamp"] for tk in ds.scene_tokens("scene-0000")]
    assert t[1] - t[0] == 500_000


def test_files_match_the_generator_in_memory(synth_root: Path):
    cfg = SynthConfig(**TINY)
    scene = build_scene(cfg, 1)
    fd = frame_data(scene, 1)
    ds = Occ3DDataset(synth_root, split="val")
    token = frame_token(0, 1, 1)
    s = ds[ds.index_of(token)]
    assert torch.equal(s.occupancy, fd["semantics"].long())
    assert torch.equal(s.mask_camera, fd["mask_camera"].bool())
    assert torch.equal(s.mask_lidar, fd["mask_lidar"].bool())
    assert torch.equal(s.depth[0], fd["cameras"]["CAM_FRONT"]["depth"])
    assert torch.allclose(s.lidar, fd["lidar"]["points"])
    assert torch.allclose(s.T_global_from_ego, fd["T_global_from_ego"], atol=1e-5)
    assert torch.allclose(s.T_ego_from_cam[2].double(), fd["cameras"]["CAM_FRONT_LEFT"]["T_ego_from_cam"], atol=1e-5)
    # CAM_FRONT_LEFT looks to +y (left), CAM_BACK to -x
    assert s.T_ego_from_cam[2, 1, 2] > 0.8 and s.T_ego_from_cam[3, 0, 2] < -0.99
    assert s.description == scene.description


def test_dataset_content_and_classes(synth_root: Path):
    ds = Occ3DDataset(synth_root, split="all")
    counts = torch.zeros(18, dtype=torch.long)
    for i in range(len(ds)):
        counts += torch.bincount(ds[i].occupancy.flatten(), minlength=18)
    occupied = counts[:17]
    assert counts[17] > occupied.sum()  # mostly free space
    assert occupied[11] > 0 and occupied[15] > 0 and occupied[16] > 0
    assert (occupied > 0).sum() >= 8


def test_lidar_points_land_on_the_camera_depth_maps():
    cfg = SynthConfig(scenes=1, frames=1, seed=3, image_size=(128, 352))
    fd = frame_data(build_scene(cfg, 0), 0)
    pts = fd["lidar"]["points"][:, :3]
    checked = 0
    good = 0
    for cam, c in fd["cameras"].items():
        T_ce = invert_transform(c["T_ego_from_cam"]).float()
        pc = apply_transform(T_ce, pts)
        uv, z = project(pc, c["K"].float())
        H, W = c["depth"].shape
        ok = (z > 1.0) & (uv[:, 0] >= 1) & (uv[:, 0] < W - 1) & (uv[:, 1] >= 1) & (uv[:, 1] < H - 1)
        uv, z = uv[ok], z[ok]
        u, v = uv[:, 0].long(), uv[:, 1].long()
        # nearest depth in the 3x3 neighbourhood ("within a pixel or so")
        nb = torch.stack([c["depth"][v + dv, u + du] for dv in (-1, 0, 1) for du in (-1, 0, 1)], -1)
        err = ((nb - z[:, None]).abs() / z[:, None]).amin(-1)
        # points the camera sees too (not hidden from it by something nearer): depth map <= point
        visible = nb.amin(-1) >= z * 0.97
        checked += int(visible.sum())
        good += int((err[visible] < 0.02).sum())
    assert checked > 5000
    assert good / checked > 0.97


def test_voxels_behind_a_wall_are_unobserved():
    cfg = SynthConfig(scenes=1, frames=1, seed=0, image_size=(64, 176))
    scene = build_scene(cfg, 0)
    state = scene_state_at(scene, 0)
    T = state.T_global_from_ego
    yaw = math.atan2(float(T[1, 0]), float(T[0, 0]))
    c_ego = torch.tensor([[12.0, 0.0, 4.0]], dtype=torch.float64)  # wall x 11..13, |y| < 30, z 0..8
    c_w = apply_transform(T, c_ego)[0].float()
    wall = Primitives(
        kind=torch.tensor([BOX]),
        center=c_w[None],
        half=torch.tensor([[1.0, 30.0, 4.0]]),
        yaw=torch.tensor([yaw]),
        cls=torch.tensor([15]),
        instance=torch.tensor([1]),
        color=torch.full((1, 3), 0.5),
        texture=torch.tensor([0]),
        reflect=torch.tensor([0.5]),
    )
    state.prims = wall
    state.objects = [
        {  # every instance a frame shows must have a record (objects.json)
            "instance": 1,
            "class_id": 15,
            "class_name": "manmade",
            "name": "concrete wall",
            "attributes": {},
            "dynamic": False,
            "center": c_w.tolist(),
            "size": [2.0, 60.0, 8.0],
            "yaw": yaw,
            "velocity": [0.0, 0.0],
        }
    ]
    fd = frame_data(scene, 0, state=state)
    g = occ3d_grid()
    centres = g.centers()
    behind = (centres[..., 0] > 13.5) & (centres[..., 1].abs() < 10.0)
    wall_vox = (
        (centres[..., 0] > 10.8) & (centres[..., 0] < 13.2) & (centres[..., 1].abs() < 5) & (centres[..., 2] > 0.5)
    )
    front = (
        (centres[..., 0] > 3.0)
        & (centres[..., 0] < 10.0)
        & (centres[..., 1].abs() < 2.0)
        & (centres[..., 2] > -0.3)
        & (centres[..., 2] < 2.5)
    )
    mc, ml, sem = fd["mask_camera"].bool(), fd["mask_lidar"].bool(), fd["semantics"]
    assert (sem[wall_vox] == 15).all()
    assert not mc[behind].any(), "a voxel hidden behind the wall from every camera is in mask_camera"
    assert not ml[behind].any()
    assert mc[front].float().mean() > 0.5 and ml[front].any()
    assert mc[wall_vox].any()  # the wall's own front voxels are seen


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes_with_and_without_workers(tmp_path: Path, synth_root: Path):
    cfg = SynthConfig(scenes=2, frames=1, seed=5, image_size=(32, 88), workers=2)
    a = generate_dataset(tmp_path / "a", cfg)
    b = generate_dataset(tmp_path / "b", SynthConfig(scenes=2, frames=1, seed=5, image_size=(32, 88), workers=1))
    da, db = _digest(a), _digest(b)
    assert da == db and len(da) > 20
    s5, s6 = build_scene(cfg, 0), build_scene(SynthConfig(seed=6), 0)
    assert [o.pose(0.0) for o in s5.objects[:20]] != [o.pose(0.0) for o in s6.objects[:20]]


def test_splits():
    assert split_scenes(1, 0.2) == ([0], [])
    assert split_scenes(2, 0.2) == ([0], [1])
    assert split_scenes(2, 0.0) == ([0], [1])
    assert split_scenes(10, 0.2) == (list(range(8)), [8, 9])
    assert split_scenes(10, 0.5)[1] == [5, 6, 7, 8, 9]
