"""LangOcc temporal rays: neighbouring keyframes' 2D features and cameras (in the current ego
frame) attached by WithTemporalPriors, clamped at scene ends, and rendered in the current grid."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_tiny_occ3d
from two_cameras import cameras, scene, tiny_model_cfg

from occkit.data.augment import apply_bev_transform, bev_matrix, resize_crop_flip
from occkit.data.occ3d import NUSCENES_CAMERAS, Occ3DDataset
from occkit.data.sample import Sample, collate
from occkit.data.temporal import WithTemporalPriors, scene_neighbours
from occkit.fileio import save_npz_atomic, write_json_atomic
from occkit.geometry.transforms import make_transform
from occkit.labels import OCC3D_FREE
from occkit.methods.langocc import LangOccConfig, LangOccMethod, sample_feature_map
from occkit.priors.cache import PriorCache
from occkit.rendering.views import render_occupancy_views

H, W, STRIDE, DF = 16, 32, 8, 4  # tiny dataset's images, the fake cache's feature stride and width


def tokens(fi: int) -> str:
    return f"00{fi:02d}" + "ab" * 14  # write_tiny_occ3d's tokens of scene 0


def write_feature_cache(out, frames: list[int]):
    """A prior cache of ``features`` only: channel 0 = frame index + 1, channel 1 = camera index + 1."""
    for fi in frames:
        for ci, cam in enumerate(NUSCENES_CAMERAS):
            f = np.zeros((DF, -(-H // STRIDE), -(-W // STRIDE)), np.float16)
            f[0], f[1] = fi + 1, ci + 1
            save_npz_atomic(out / "scene-0000" / tokens(fi) / f"{cam}.npz", features=f)
    write_json_atomic(
        out / "prior.json",
        {
            "format": 1,
            "spec": "test",
            "kinds": ["features"],
            "cameras": list(NUSCENES_CAMERAS),
            "image_size": [H, W],
            "frames": {"scene-0000": [tokens(fi) for fi in frames]},
            "complete": True,
            "feature_stride": STRIDE,
            "feature_dim": DF,
            "text_encoder": None,
            "layout": "occ3d",
        },
    )
    return out


def turned_scene(tmp: Path) -> Path:
    """One scene of 4 keyframes at ``tmp/data``, ego at x = 10 * i, frame 2 turned 90 degrees left."""
    root = write_tiny_occ3d(tmp / "data", scenes=1, frames=4, image_size=(H, W))
    ann = json.loads((root / "annotations.json").read_text())
    info = ann["scene_infos"]["scene-0000"][tokens(2)]
    c = math.cos(math.pi / 4)
    info["ego_pose"]["rotation"] = [c, 0.0, 0.0, c]
    for cam in info["camera_sensor"].values():
        cam["ego_pose"]["rotation"] = [c, 0.0, 0.0, c]
    (root / "annotations.json").write_text(json.dumps(ann))
    return root


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One scene of 4 keyframes, ego at x = 10 * i; frame 2 turned 90 degrees left; a feature cache."""
    tmp = tmp_path_factory.mktemp("temporal")
    return turned_scene(tmp), write_feature_cache(tmp / "priors", [0, 1, 2, 3])


def test_neighbour_cameras_land_in_the_current_ego_frame(world):
    root, priors = world
    ds = Occ3DDataset(root, "train", load_gt=False, load_extras=False)
    assert scene_neighbours(ds, tokens(1), 1, 5) == [tokens(2), tokens(3)]
    assert scene_neighbours(ds, tokens(1), -1, 5) == [tokens(0)]
    s = WithTemporalPriors(ds, PriorCache(priors), [-1, 1])[1]  # current frame 1: ego at (10, 0, 0)
    assert s.temporal_features.shape == (2, 6, DF, 2, 4) and s.temporal_features.dtype == torch.float16
    assert s.temporal_offsets.tolist() == [-1, 1] and s.temporal_image_hw == (H, W)
    assert s.temporal_features[:, 0, 0, 0, 0].tolist() == [1.0, 3.0]  # frames 0 and 2
    assert torch.equal(
        s.temporal_intrinsics[1, 0], torch.tensor([[W * 0.8, 0, W / 2], [0, W * 0.8, H / 2], [0, 0, 1.0]])
    )
    # CAM_FRONT looks along the ego x axis from (1, 0, 1.5): the camera point (0, 0, 5) is the ego point (6, 0, 1.5).
    # Frame 0 (ego at the origin): global (6, 0, 1.5), i.e. (-4, 0, 1.5) from frame 1.
    # Frame 2 (ego at (20, 0, 0), turned 90 degrees): global (20, 6, 1.5), i.e. (10, 6, 1.5) from frame 1.
    pts = torch.tensor([[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 5.0, 1.0]])
    got = pts @ s.temporal_T_ego_from_cam[:, 0].transpose(1, 2)  # (T, 2, 4)
    want = torch.tensor(
        [[[-9.0, 0.0, 1.5, 1.0], [-4.0, 0.0, 1.5, 1.0]], [[10.0, 1.0, 1.5, 1.0], [10.0, 6.0, 1.5, 1.0]]]
    )
    assert torch.allclose(got, want, atol=1e-5)


def test_offsets_past_the_scene_ends_are_clamped(world):
    root, priors = world
    ds = WithTemporalPriors(
        Occ3DDataset(root, "train", load_gt=False, load_extras=False), PriorCache(priors), [-2, -1, 1, 3]
    )
    want = {0: ([0, 0, 1, 3], [1, 1, 2, 4]), 1: ([-1, -1, 1, 2], [1, 1, 3, 4]), 3: ([-2, -1, 0, 0], [2, 3, 4, 4])}
    samples = {}
    for i, (offsets, frames) in want.items():
        s = samples[i] = ds[i]
        assert s.temporal_offsets.tolist() == offsets
        assert s.temporal_features[:, 0, 0, 0, 0].tolist() == frames
        assert s.temporal_features.shape == (4, 6, DF, 2, 4)
    first = samples[0]
    assert torch.allclose(
        first.temporal_T_ego_from_cam[0], first.T_ego_from_cam, atol=1e-6
    )  # offset 0: the frame itself
    assert torch.equal(
        first.temporal_features[:, :, 1, 0, 0][0], torch.arange(1.0, 7.0, dtype=torch.float16)
    )  # camera order
    batch = collate([samples[0], samples[3]])
    assert batch.temporal_features.shape == (2, 4, 6, DF, 2, 4) and batch.temporal_offsets.shape == (2, 4)
    assert batch.temporal_image_hw == (H, W)


def test_wrapper_refuses_bad_setups(world, tmp_path):
    root, priors = world
    ds = Occ3DDataset(root, "train", load_gt=False, load_extras=False)
    with pytest.raises(ValueError, match="current frame"):
        WithTemporalPriors(ds, PriorCache(priors), [0, 1])
    with pytest.raises(ValueError, match="repeated"):
        WithTemporalPriors(ds, PriorCache(priors), [1, 1])
    partial = write_feature_cache(tmp_path / "partial", [0, 1, 3])  # frame 2 missing
    with pytest.raises(ValueError, match="no features of frame"):
        WithTemporalPriors(ds, PriorCache(partial), [1])[1]


def test_build_dataset_wraps_langocc_training_frames(world):
    from occkit.config import ConfigError
    from occkit.experiment import build_dataset, load_experiment

    root, priors = world
    cfg = load_experiment(
        "langocc", [f"data.priors={priors}", "langocc.temporal_offsets=[-1, 1]", "langocc.feature_dim=4"]
    )
    s = build_dataset(cfg, root, "train", train=True)[0]
    assert s.images.shape[-2:] == (96, 256)  # the current frame is augmented (resized) ...
    assert s.temporal_image_hw == (H, W) and s.temporal_offsets.tolist() == [0, 1]  # ... its neighbours are not
    assert build_dataset(cfg, root, "train")[0].temporal_features is None  # evaluation frames: no neighbours
    with pytest.raises(ConfigError, match="data.priors"):
        build_dataset(load_experiment("langocc", ["langocc.temporal_offsets=[1]"]), root, "train", train=True)


def test_augmentation_moves_neighbour_cameras_with_the_ego_frame_only():
    g = torch.Generator().manual_seed(0)
    T_nbr = make_transform(torch.eye(3), torch.tensor([1.0, 2.0, 0.5])).expand(2, 3, 4, 4).clone()
    s = Sample(
        token="t",
        scene="s",
        timestamp=0,
        cam_names=("A", "B", "C"),
        images=torch.rand(3, 3, 8, 8, generator=g),
        intrinsics=torch.eye(3).expand(3, 3, 3).clone(),
        T_ego_from_cam=torch.eye(4).expand(3, 4, 4).clone(),
        T_global_from_ego=torch.eye(4, dtype=torch.float64),
        temporal_T_ego_from_cam=T_nbr,
        temporal_intrinsics=torch.eye(3).expand(2, 3, 3, 3).clone(),
    )
    A = bev_matrix(flip_y=True, yaw=math.pi / 2)
    out = apply_bev_transform(s, A, free=OCC3D_FREE)
    assert torch.allclose(out.temporal_T_ego_from_cam, (A.float() @ T_nbr))
    assert torch.allclose(
        out.temporal_T_ego_from_cam[0, 0, :3, 3], torch.tensor([2.0, 1.0, 0.5])
    )  # (1, 2) -> flip y -> rot 90
    img = resize_crop_flip(s, (4, 4), [(4, 4)] * 3, [(0, 0)] * 3, [True] * 3)
    assert img.temporal_intrinsics is s.temporal_intrinsics and img.temporal_T_ego_from_cam is s.temporal_T_ego_from_cam


# ----------------------------------------------------------------------------------- training
D = 16


def tiny_method(**kw) -> LangOccMethod:
    m = LangOccMethod(
        tiny_model_cfg(),
        LangOccConfig(
            free=17, **{**dict(feature_dim=D, mlp_width=32, num_rays=256, num_proposal=16, num_importance=16), **kw}
        ),
    )
    m.class_text.copy_(
        torch.nn.functional.normalize(torch.randn(17, D, generator=torch.Generator().manual_seed(1)), dim=-1)
    )
    m.class_text_ready.fill_(True)  # no text encoder in tests
    return m


def temporal_batch(stride: int = 4, with_neighbour: bool = True):
    """One frame with two cameras over a ground plane and a box; its neighbour: the same cameras
    0.8 m further along x; 2D features = a unit vector per class of the rendered semantics."""
    occ, grid = scene(wall=False)
    Hc, Wc = 32, 64
    K, T = cameras(Hc, Wc)
    T_nbr = make_transform(torch.eye(3), torch.tensor([0.8, 0.0, 0.0])) @ T
    vocab = torch.nn.functional.normalize(torch.randn(18, D, generator=torch.Generator().manual_seed(0)), dim=-1)

    def features(Tc):
        sem = render_occupancy_views(occ, grid, K, Tc, Hc, Wc, free=OCC3D_FREE).semantics[
            :, stride // 2 :: stride, stride // 2 :: stride
        ]
        return vocab[sem].permute(0, 3, 1, 2).contiguous()  # (N, D, h, w)

    sample = Sample(
        token="t0",
        scene="s0",
        timestamp=0,
        cam_names=("CAM_FRONT", "CAM_BACK"),
        images=torch.rand(2, 3, Hc, Wc, generator=torch.Generator().manual_seed(2)),
        intrinsics=K,
        T_ego_from_cam=T,
        T_global_from_ego=torch.eye(4, dtype=torch.float64),
        prior_features=features(T),
        prior_feature_stride=stride,
    )
    if with_neighbour:
        sample.temporal_features = features(T_nbr)[None].half()
        sample.temporal_intrinsics, sample.temporal_T_ego_from_cam = K[None], T_nbr[None]
        sample.temporal_offsets, sample.temporal_image_hw = torch.tensor([1]), (Hc, Wc)
    return collate([sample]), T_nbr


def test_ray_split():
    assert tiny_method().ray_split() == (256, 0)
    assert tiny_method(num_rays=1024, temporal_offsets=(-1, 1)).ray_split() == (341, 683)  # even: 2/3 of the rays
    assert tiny_method(num_rays=1000, temporal_offsets=(2,), temporal_rays_fraction=0.25).ray_split() == (750, 250)


def test_temporal_rays_come_from_the_neighbour_and_train_the_density():
    torch.manual_seed(0)
    batch, T_nbr = temporal_batch()
    m = tiny_method(temporal_offsets=(1,), temporal_rays_fraction=1.0)  # neighbour rays only
    parts = m.frame_rays(batch, 0)
    assert set(parts) == {"temporal"}
    rays, target = parts["temporal"]
    assert len(rays) == 256 and target.dtype == torch.float32
    assert torch.allclose(rays.origins, T_nbr[rays.cam, :3, 3])  # from the neighbour cameras' centres
    assert torch.allclose(
        target, sample_feature_map(batch.temporal_features[0, 0].float(), rays, 4)
    )  # the neighbour's features
    assert not torch.allclose(
        target, sample_feature_map(batch.prior_features[0], rays, 4), atol=0.1
    )  # not the frame's own
    loss = m.training_step(batch)["loss_feat"]
    assert torch.isfinite(loss) and float(loss.detach()) > 0
    loss.backward()
    g_bias = m.density_bias.grad
    assert g_bias is not None and torch.isfinite(g_bias) and float(g_bias.abs()) > 0
    head = [p.grad for n, p in m.model.named_parameters() if "head" in n and p.grad is not None]
    assert head and any(float(g.abs().sum()) > 0 for g in head)
    # both parts together (even split)
    m2 = tiny_method(temporal_offsets=(1,))
    assert set(m2.frame_rays(batch, 0)) == {"current", "temporal"}
    assert torch.isfinite(m2.training_step(batch)["loss_feat"])


def test_temporal_checks():
    batch, _ = temporal_batch(with_neighbour=False)
    with pytest.raises(ValueError, match="WithTemporalPriors"):
        tiny_method(temporal_offsets=(-1, 1)).training_step(batch)
    batch, _ = temporal_batch()
    with pytest.raises(ValueError, match="neighbour frames"):
        tiny_method(temporal_offsets=(-1, 1)).training_step(batch)  # the batch has one neighbour, not two
    with pytest.raises(ValueError, match="current frame"):
        tiny_method(temporal_offsets=(0, 1))
    with pytest.raises(ValueError, match="temporal_rays_fraction"):
        tiny_method(temporal_offsets=(1,), temporal_rays_fraction=1.5)


# ----------------------------------------------------------------------------------- neighbours' own LiDAR
def lidar_world(tmp_path):
    """The module's 4-keyframe scene (frame 2 turned 90 degrees) with a LiDAR file per frame:
    frame i's one point at (i + 1, 0, 0) of its own ego frame, intensity i."""
    root = turned_scene(tmp_path)
    ds = Occ3DDataset(root, "train", load_gt=False, load_extras=True)
    for fi in range(4):
        save_npz_atomic(
            ds.extras_dir(tokens(fi)) / "lidar.npz",
            points=np.array([[fi + 1.0, 0, 0, fi]], np.float32),
            labels=np.zeros(1, np.int64),
        )
    return root, ds, write_feature_cache(tmp_path / "priors", [0, 1, 2, 3])


def test_neighbours_own_lidar_in_their_own_frames(tmp_path):
    root, ds, priors = lidar_world(tmp_path)
    s = WithTemporalPriors(ds, PriorCache(priors), [-2, -1, 1])[1]  # frame 1 (ego at x = 10); -2 clamps to -1
    assert s.temporal_offsets.tolist() == [-1, -1, 1]
    assert [p[:, 3].tolist() for p in s.temporal_lidar] == [[0.0], [0.0], [2.0]]  # frames 0, 0, 2: their own points ...
    assert torch.equal(s.temporal_lidar[2], torch.tensor([[3.0, 0.0, 0.0, 2.0]]))  # ... in their own ego frames
    # frame 0 (ego at x = 0) from frame 1: its point (1, 0, 0) is at (-9, 0, 0); frame 2 (at x = 20, turned 90
    # degrees): its point (3, 0, 0) is global (20, 3, 0), i.e. (10, 3, 0) from frame 1
    E = s.temporal_T_ego_from_ego
    assert E.shape == (3, 4, 4)
    assert torch.allclose(E[0] @ torch.tensor([1.0, 0, 0, 1]), torch.tensor([-9.0, 0, 0, 1]), atol=1e-5)
    assert torch.allclose(E[2] @ torch.tensor([3.0, 0, 0, 1]), torch.tensor([10.0, 3.0, 0, 1]), atol=1e-5)
    # the cameras and the ego frames agree: a neighbour camera is its ego frame's camera
    assert torch.allclose(
        s.temporal_T_ego_from_cam[2, 0], E[2] @ ds.T_ego_from_cam(tokens(2), s.cam_names[0]).float(), atol=1e-5
    )
    first = WithTemporalPriors(ds, PriorCache(priors), [-1])[0]  # clamped to the frame itself: its own LiDAR
    assert torch.equal(first.temporal_lidar[0], first.lidar) and torch.allclose(
        first.temporal_T_ego_from_ego[0], torch.eye(4)
    )
    batch = collate([s, s])
    assert (
        len(batch.temporal_lidar) == 2
        and len(batch.temporal_lidar[0]) == 3
        and batch.temporal_T_ego_from_ego.shape == (2, 3, 4, 4)
    )
    assert batch.to("cpu").temporal_lidar[1][2].shape == (1, 4)
    # a BEV transform moves the neighbour ego frames with this one; their points stay in their own frames
    A = bev_matrix(flip_y=True, yaw=math.pi / 2)
    out = apply_bev_transform(s, A, free=OCC3D_FREE)  # no occupancy loaded
    assert torch.allclose(out.temporal_T_ego_from_ego, A.float() @ E)
    assert out.temporal_lidar is s.temporal_lidar
    # without extras: no neighbour LiDAR (as before)
    plain = WithTemporalPriors(Occ3DDataset(root, "train", load_gt=False, load_extras=False), PriorCache(priors), [1])[
        1
    ]
    assert plain.temporal_lidar is None and plain.temporal_T_ego_from_ego.shape == (1, 4, 4)


def test_neighbours_own_lidar_from_an_info_file(tmp_path):
    from occkit.data.lidar_sweeps import WithLidarSweeps

    root, _, priors = lidar_world(tmp_path)
    ds = Occ3DDataset(root, "train", load_gt=False, load_extras=False)
    lidar_dir = root / "samples" / "LIDAR_TOP"
    lidar_dir.mkdir(parents=True)
    infos = []
    for fi in range(4):
        np.array([[fi + 1.0, 0.0, 0.0, 10.0 * fi, 0.0]], np.float32).tofile(lidar_dir / f"{tokens(fi)}.pcd.bin")
        infos.append(
            {
                "token": tokens(fi),
                "lidar_path": f"samples/LIDAR_TOP/{tokens(fi)}.pcd.bin",
                "lidar2ego_translation": [0.0, 0.0, 1.8],
                "lidar2ego_rotation": [1.0, 0.0, 0.0, 0.0],
                "sweeps": [
                    {
                        "data_path": f"samples/LIDAR_TOP/{tokens(0)}.pcd.bin",
                        "sensor2lidar_rotation": np.eye(3).tolist(),
                        "sensor2lidar_translation": [0.0, 0.0, 0.0],
                    }
                ],
            }
        )
    path = tmp_path / "infos.json"
    path.write_text(json.dumps({"infos": infos}))
    s = WithLidarSweeps(WithTemporalPriors(ds, PriorCache(priors), [-1, 2]), sweeps=2, infos=path)[1]
    assert s.lidar.shape == (2, 4)  # the frame itself: key frame + one sweep
    # neighbours: key frames only (frames 0 and 3), each in its own ego frame (LiDAR 1.8 m up)
    assert len(s.temporal_lidar) == 2
    assert torch.allclose(s.temporal_lidar[0], torch.tensor([[1.0, 0.0, 1.8, 0.0]]))
    assert torch.allclose(s.temporal_lidar[1], torch.tensor([[4.0, 0.0, 1.8, 30.0]]))
