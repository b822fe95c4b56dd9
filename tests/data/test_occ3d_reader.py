import json
import shutil

import numpy as np
import pytest
import torch

from occkit.data.occ3d import NUSCENES_CAMERAS, Occ3DDataset
from occkit.data.sample import collate
from occkit.fileio import load_npz
from occkit.geometry.camera import project
from occkit.geometry.transforms import apply_transform, invert_transform


def test_reads_every_sample_with_shapes_and_dtypes(tiny_occ3d_root):
    train = Occ3DDataset(tiny_occ3d_root, "train")
    val = Occ3DDataset(tiny_occ3d_root, "val")
    everything = Occ3DDataset(tiny_occ3d_root, "all")
    assert len(train) == 2 and len(val) == 2 and len(everything) == 4
    for s in everything:
        assert s.cam_names == NUSCENES_CAMERAS
        assert s.images.shape == (6, 3, 24, 64) and s.images.dtype == torch.float32
        assert 0.0 <= float(s.images.min()) and float(s.images.max()) <= 1.0
        assert s.intrinsics.shape == (6, 3, 3) and s.T_ego_from_cam.shape == (6, 4, 4)
        assert s.T_global_from_ego.dtype == torch.float64
        assert s.occupancy.shape == (200, 200, 16) and s.occupancy.dtype == torch.int64
        assert s.mask_camera.dtype == torch.bool and s.mask_lidar.dtype == torch.bool
        assert s.lidar is None and s.depth is None  # the real layout has no extras


def test_write_read_round_trip(tiny_occ3d_root):
    ds = Occ3DDataset(tiny_occ3d_root, "all")
    s = ds[1]
    raw = load_npz(ds.gt_path(s.token))
    assert np.array_equal(s.occupancy.numpy(), raw["semantics"])
    assert np.array_equal(s.mask_camera.numpy(), raw["mask_camera"].astype(bool))
    info = ds.info(s.token)
    assert torch.allclose(
        s.T_global_from_ego[:3, 3], torch.tensor(info["ego_pose"]["translation"], dtype=torch.float64)
    )
    assert torch.allclose(s.intrinsics[0], torch.tensor(info["camera_sensor"]["CAM_FRONT"]["intrinsic"]))


def test_camera_geometry_is_camera_to_ego(tiny_occ3d_root):
    s = Occ3DDataset(tiny_occ3d_root, "all")[0]
    # a point 10 m ahead of the ego at camera height projects to the front camera's centre column
    p_ego = torch.tensor([[11.0, 0.0, 1.5]])
    p_cam = apply_transform(invert_transform(s.T_ego_from_cam[0]), p_ego)
    uv, z = project(p_cam, s.intrinsics[0])
    assert torch.allclose(z, torch.tensor([10.0]), atol=1e-4)
    assert torch.allclose(uv, torch.tensor([[32.0, 12.0]]), atol=1e-3)
    # the back camera sees it behind
    p_back = apply_transform(invert_transform(s.T_ego_from_cam[3]), p_ego)
    assert p_back[0, 2] < 0


def test_collate_batches(tiny_occ3d_root):
    ds = Occ3DDataset(tiny_occ3d_root, "all")
    b = collate([ds[0], ds[1]])
    assert b.size == 2 and b.images.shape == (2, 6, 3, 24, 64) and b.occupancy.shape == (2, 200, 200, 16)
    assert b.lidar is None and b.tokens == [ds.frames[0].token, ds.frames[1].token]
    with pytest.raises(ValueError, match="empty"):
        collate([])


def test_temporal_order_and_lookup(tiny_occ3d_root):
    ds = Occ3DDataset(tiny_occ3d_root, "all")
    scene = ds.scenes[0]
    tokens = ds.scene_tokens(scene)
    infos = ds.scene_infos[scene]
    assert [infos[t]["timestamp"] for t in tokens] == sorted(infos[t]["timestamp"] for t in tokens)
    with pytest.raises(KeyError, match="nope"):
        ds.info("nope")


def test_missing_and_corrupt_files_are_named(tiny_occ3d_root, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(tiny_occ3d_root, root)
    ds = Occ3DDataset(root, "all")
    tok = ds.frames[0].token
    img = ds.image_path(tok, "CAM_BACK")
    img.write_bytes(b"\x89PNG garbage")
    with pytest.raises(ValueError, match="CAM_BACK"):
        ds[0]
    img.unlink()
    with pytest.raises(FileNotFoundError, match="CAM_BACK"):
        ds[0]
    gt = ds.gt_path(ds.frames[1].token)
    np.savez(
        gt,
        semantics=np.zeros((200, 200, 8), np.uint8),
        mask_lidar=np.zeros((200, 200, 16), np.uint8),
        mask_camera=np.zeros((200, 200, 16), np.uint8),
    )
    with pytest.raises(ValueError, match=r"labels\.npz.*semantics.*shape"):
        ds[1]
    gt.unlink()
    with pytest.raises(FileNotFoundError, match="labels.npz"):
        ds[1]
    with pytest.raises(FileNotFoundError, match="annotations.json"):
        Occ3DDataset(tmp_path / "nowhere")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "annotations.json").write_text(json.dumps({"train_split": []}))
    with pytest.raises(ValueError, match="annotations.json: scene_infos missing"):
        Occ3DDataset(tmp_path / "broken")
    with pytest.raises(ValueError, match="split"):
        Occ3DDataset(root, "test")


def test_memory_cache_gives_the_same_frames_and_keeps_its_limit(synth_root, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(synth_root, root)
    plain = Occ3DDataset(root, "all")
    cached = Occ3DDataset(root, "all", cache_mb=1024)
    fields = (
        "images",
        "occupancy",
        "mask_camera",
        "mask_lidar",
        "lidar",
        "lidar_labels",
        "depth",
        "semantics_2d",
        "instance_2d",
    )
    first = [cached[i] for i in range(len(cached))]
    assert cached.cache_bytes > 0 and len(cached._cache) == len(cached)
    for s in first:  # a consumer writing into its sample must not reach the cache
        for k in fields:
            getattr(s, k).zero_()
    for d in (tmp_path / "copy" / "gts").iterdir():  # served from memory now
        shutil.rmtree(d)
    for i in range(len(cached)):
        a, b = cached[i], Occ3DDataset(synth_root, "all")[i]
        for k in fields:
            x, y = getattr(a, k), getattr(b, k)
            assert x is not None and x.dtype == y.dtype and torch.equal(x, y), k
    with pytest.raises(FileNotFoundError, match="labels.npz"):
        plain[0]
    per_frame = cached.cache_bytes / len(cached)
    small = Occ3DDataset(synth_root, "all", cache_mb=1.5 * per_frame / 2**20)  # room for one frame
    for i in range(len(small)):
        small[i]
    assert len(small._cache) == 1 and small.cache_bytes <= small.cache_limit
    with pytest.raises(ValueError, match="cache_mb"):
        Occ3DDataset(synth_root, "all", cache_mb=-1)
