"""LiDAR sweeps for the LiDAR teachers: the synthetic extras' previous frames and nuScenes info files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from occkit.data.lidar_sweeps import WithLidarSweeps, load_lidar_infos, read_pcd_bin, resolve_lidar_path
from occkit.data.occ3d import Occ3DDataset
from occkit.fileio import save_npz_atomic


def test_synthetic_sweeps_land_where_the_key_frame_sees_them(tiny_occ3d_root):
    ds = Occ3DDataset(tiny_occ3d_root, "train", load_extras=True)
    t0, t1 = ds.frames[0].token, ds.frames[1].token  # scene 0: ego at x = 0 then x = 10, no rotation
    assert ds.info(t1)["prev"] == t0
    for tok, pts in ((t0, [[15.0, 0.0, 1.0, 100.0]]), (t1, [[5.0, 0.0, 1.0, 50.0], [1.0, 2.0, 0.5, 7.0]])):
        save_npz_atomic(
            ds.extras_dir(tok) / "lidar.npz", points=np.array(pts, np.float32), labels=np.zeros(len(pts), np.uint8)
        )
    try:
        one = WithLidarSweeps(ds, sweeps=1)[1]
        assert one.lidar.shape == (2, 4) and one.lidar_labels is not None  # unchanged
        s = WithLidarSweeps(ds, sweeps=3)[1]  # only one earlier frame exists
        assert s.lidar.shape == (3, 4) and s.lidar_labels is None
        assert torch.allclose(
            s.lidar[2], torch.tensor([5.0, 0.0, 1.0, 100.0])
        )  # frame 0's point, in frame 1's ego frame
        assert WithLidarSweeps(ds, sweeps=3)[0].lidar.shape == (1, 4)  # the scene's first frame
    finally:
        for tok in (t0, t1):
            (ds.extras_dir(tok) / "lidar.npz").unlink()
    with pytest.raises(ValueError, match="lidar_sweeps"):
        WithLidarSweeps(ds, sweeps=0)


def test_info_file_sweeps_into_the_ego_frame(tiny_occ3d_root, tmp_path):
    ds = Occ3DDataset(tiny_occ3d_root, "train")
    token = ds.frames[0].token
    lidar_dir = tiny_occ3d_root / "samples" / "LIDAR_TOP"
    sweep_dir = tiny_occ3d_root / "sweeps" / "LIDAR_TOP"
    lidar_dir.mkdir(parents=True, exist_ok=True)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    np.array([[1.0, 0.0, 0.0, 10.0, 0.0]], np.float32).tofile(lidar_dir / f"{token}.pcd.bin")
    np.array([[0.0, 1.0, 0.0, 20.0, 1.0], [0.0, 0.0, 0.0, 30.0, 2.0]], np.float32).tofile(
        sweep_dir / f"{token}.pcd.bin"
    )
    c, s = math.cos(math.pi / 4), math.sin(math.pi / 4)  # LiDAR yawed -90 degrees in the ego frame, 1.8 m up
    info = {
        "infos": [
            {
                "token": token,
                "lidar_path": f"./data/nuscenes/samples/LIDAR_TOP/{token}.pcd.bin",
                "lidar2ego_translation": [0.9, 0.0, 1.8],
                "lidar2ego_rotation": [c, 0.0, 0.0, -s],
                "sweeps": [
                    {
                        "data_path": f"./data/nuscenes/sweeps/LIDAR_TOP/{token}.pcd.bin",
                        "sensor2lidar_rotation": np.eye(3).tolist(),
                        "sensor2lidar_translation": [0.0, -2.0, 0.0],
                    }
                ],
            }
        ]
    }
    path = tmp_path / "infos.json"
    path.write_text(json.dumps(info))
    assert resolve_lidar_path(tiny_occ3d_root, info["infos"][0]["lidar_path"]) == lidar_dir / f"{token}.pcd.bin"
    assert read_pcd_bin(lidar_dir / f"{token}.pcd.bin").shape == (1, 4)
    assert set(load_lidar_infos(path)) == {token}
    key_only = WithLidarSweeps(ds, sweeps=1, infos=path)[0].lidar
    assert torch.allclose(key_only, torch.tensor([[0.9, -1.0, 1.8, 10.0]]), atol=1e-5)  # lidar x -> ego -y
    both = WithLidarSweeps(ds, sweeps=2, infos=path)[0].lidar
    assert both.shape == (3, 4)
    # sweep point (0, 1, 0) -> lidar (0, -1, 0) -> ego (0.9 - 1, 0, 1.8)
    assert torch.allclose(both[1], torch.tensor([-0.1, 0.0, 1.8, 20.0]), atol=1e-5)
    with pytest.raises(KeyError, match="no frame"):
        WithLidarSweeps(ds, sweeps=1, infos=path)[1]
