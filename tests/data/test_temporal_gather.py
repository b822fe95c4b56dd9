"""WithTemporalPriors with ``gather="lidar_pixels"`` (langocc.temporal_gather): each neighbour's
pixel pool and the features there equal what the training step computes from the whole maps."""

from __future__ import annotations

import pytest
import torch
from conftest import write_lidar_feature_world

from occkit.data.occ3d import Occ3DDataset
from occkit.data.sample import collate
from occkit.data.temporal import WithTemporalPriors
from occkit.geometry.grid import Grid
from occkit.methods.langocc import lidar_pixels, sample_feature_map
from occkit.priors.cache import PriorCache, WithPriors
from occkit.rendering.rays import camera_rays

H, W, STRIDE = 32, 64, 4
BOX = Grid.from_range((-3.2, -3.2, -1.0, 3.2, 3.2, 1.4), 0.4)
DEPTH = (0.5, 6.0)
OFFSETS = (-2, -1, 1, 2)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return write_lidar_feature_world(tmp_path_factory.mktemp("gather"), frames=5, image_size=(H, W), stride=STRIDE)


def wrapped(world, gather: str, load_extras: bool = True, **kw) -> WithTemporalPriors:
    root, priors = world
    ds = WithPriors(Occ3DDataset(root, "train", load_gt=False, load_extras=load_extras), PriorCache(priors))
    return WithTemporalPriors(ds, PriorCache(priors), OFFSETS, gather=gather, **kw)


def test_pools_and_features_are_those_of_the_maps(world):
    maps = wrapped(world, "maps")
    gathered = wrapped(world, "lidar_pixels", box=BOX, depth_range=DEPTH)
    for i in (0, 2):  # scene start (-1, -2 clamped to the frame itself) and the middle of 5
        m, g = maps[i], gathered[i]
        assert g.temporal_features is None and g.temporal_lidar is None
        assert torch.equal(g.temporal_offsets, m.temporal_offsets)
        for name in ("temporal_intrinsics", "temporal_T_ego_from_cam", "temporal_T_ego_from_ego"):
            assert torch.equal(getattr(g, name), getattr(m, name))
        assert len(g.temporal_pixels) == len(g.temporal_pixel_features) == len(OFFSETS)
        for t in range(len(OFFSETS)):
            K, T = m.temporal_intrinsics[t], m.temporal_T_ego_from_cam[t]
            # the pool the training step computes with temporal_gather: maps (LangOccMethod.lidar_pools)
            px = lidar_pixels(
                m.temporal_lidar[t],
                K,
                T,
                H,
                W,
                box=BOX,
                depth_range=DEPTH,
                T_ego_from_points=m.temporal_T_ego_from_ego[t],
            )
            assert len(px) > 20 and torch.equal(g.temporal_pixels[t], px)
            # the features it samples there (LangOccMethod.frame_rays), stored in float16
            want = sample_feature_map(m.temporal_features[t], camera_rays(K, T, H, W, pixels=px), STRIDE)
            got = g.temporal_pixel_features[t]
            assert got.dtype == torch.float16 and got.shape == (len(px), 8)
            assert torch.equal(got, want.half())
            assert (got.float() - want).abs().max() <= 2**-11 * want.abs().max()
        # a keyframe repeated by the clamping shares its tensors
        same = [t for t in range(1, len(OFFSETS)) if g.temporal_offsets[t] == g.temporal_offsets[t - 1]]
        assert (i == 0) == bool(same)
        for t in same:
            assert g.temporal_pixels[t] is g.temporal_pixels[t - 1]
    # frame 0's offset -1 is clamped to itself: its own LiDAR (intensity 0), its own pixels
    assert gathered[0].temporal_offsets.tolist() == [0, 0, 1, 2]
    # a smaller sample: the pools and features, not the maps
    nbytes = lambda s, names: sum(x.numel() * x.element_size() for n in names for x in (getattr(s, n) or []))  # noqa: E731
    assert nbytes(gathered[2], ["temporal_pixels", "temporal_pixel_features"]) < m.temporal_features.nbytes


def test_gathered_frames_collate_and_move(world):
    g = wrapped(world, "lidar_pixels", box=BOX, depth_range=DEPTH)
    batch = collate([g[1], g[2]])
    assert batch.temporal_features is None and batch.temporal_lidar is None
    assert len(batch.temporal_pixels) == 2 and len(batch.temporal_pixels[1]) == len(OFFSETS)
    moved = batch.to("cpu")
    assert torch.equal(moved.temporal_pixel_features[1][3], batch.temporal_pixel_features[1][3])
    assert moved.temporal_pixels[0][0].dtype == torch.long


def test_gathering_needs_each_keyframes_lidar(world):
    with pytest.raises(ValueError, match="temporal_gather"):
        wrapped(world, "lidar_pixels", load_extras=False)[1]
    with pytest.raises(ValueError, match="temporal_gather"):
        wrapped(world, "all_of_it")


def test_keyframe_lidar_from_an_info_file(world, tmp_path):
    """Real Occ3D-nuScenes (data.lidar_infos): each keyframe's own points come from the info file;
    the sweeps wrapper above then adds no temporal_lidar."""
    import json

    import numpy as np

    from occkit.data.lidar_sweeps import WithLidarSweeps

    root, priors = world
    base = Occ3DDataset(root, "train", load_gt=False, load_extras=True)
    infos = []
    for token in [f.token for f in base.frames]:
        pts = np.load(base.extras_dir(token) / "lidar.npz")["points"]  # the same points, as a .pcd.bin
        rel = f"samples/LIDAR_TOP/{token}.pcd.bin"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        np.concatenate([pts, np.zeros((len(pts), 1), np.float32)], 1).tofile(root / rel)
        infos.append(
            {
                "token": token,
                "lidar_path": rel,
                "lidar2ego_translation": [0.0, 0.0, 0.0],
                "lidar2ego_rotation": [1.0, 0.0, 0.0, 0.0],
                "sweeps": [],
            }
        )
    path = tmp_path / "infos.json"
    path.write_text(json.dumps({"infos": infos}))
    ds = WithPriors(Occ3DDataset(root, "train", load_gt=False, load_extras=False), PriorCache(priors))
    reader = WithLidarSweeps(ds, 1, path)
    frames = WithTemporalPriors(
        ds,
        PriorCache(priors),
        OFFSETS,
        gather="lidar_pixels",
        box=BOX,
        depth_range=DEPTH,
        lidar_of=reader.keyframe_lidar,
    )
    s = WithLidarSweeps(frames, 1, path)[2]
    want = wrapped(world, "lidar_pixels", box=BOX, depth_range=DEPTH)[2]
    assert s.temporal_lidar is None
    for t in range(len(OFFSETS)):
        assert torch.equal(s.temporal_pixels[t], want.temporal_pixels[t])
        assert torch.equal(s.temporal_pixel_features[t], want.temporal_pixel_features[t])
