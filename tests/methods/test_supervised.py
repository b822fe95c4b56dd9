"""The supervised method: named losses, depth sources, a tiny overfit, errors."""

import math

import pytest
import torch

from occkit.data.sample import Batch
from occkit.geometry.transforms import make_transform, rotation_z
from occkit.losses.occupancy import class_weights_from_counts
from occkit.methods.base import Method
from occkit.methods.supervised import SupervisedConfig, SupervisedMethod
from occkit.models.occnet import OccNetConfig


def tiny_model_cfg(**kw) -> OccNetConfig:
    base = dict(
        backbone="test_resnet",
        neck_channels=16,
        context_channels=8,
        depth_min=1.0,
        depth_max=9.0,
        depth_step=1.0,
        point_range=(-4.0, -4.0, -1.0, 4.0, 4.0, 1.4),
        voxel_size=0.4,
        lift_downsample=(2, 2, 2),
        encoder_widths=(16,),
        head="voxel",
    )
    base.update(kw)
    return OccNetConfig(**base)


def tiny_batch(
    seed: int = 0, B: int = 1, N: int = 2, H: int = 32, W: int = 64, lidar: bool = True, depth: bool = True
) -> Batch:
    g = torch.Generator().manual_seed(seed)
    R0 = torch.tensor([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]])
    R = rotation_z(torch.arange(N) * (2 * math.pi / N)).float() @ R0
    T = make_transform(R, torch.tensor([0.0, 0.0, 1.0]).expand(N, 3)).expand(B, N, 4, 4).clone()
    K = torch.tensor([[20.0, 0, W / 2], [0, 20.0, H / 2], [0, 0, 1]]).expand(B, N, 3, 3).clone()
    occ = torch.full((B, 20, 20, 6), 17)
    occ[:, :, :, 0] = 11  # ground
    occ[:, 14:17, 8:12, 1:4] = 4  # a car in front
    occ[:, 2:5, 9:12, 1:3] = 7  # a pedestrian behind
    return Batch(
        tokens=[f"t{i}" for i in range(B)],
        scenes=["s"] * B,
        timestamps=list(range(B)),
        cam_names=("F", "B")[:N],
        images=torch.rand(B, N, 3, H, W, generator=g),
        intrinsics=K,
        T_ego_from_cam=T,
        T_global_from_ego=torch.eye(4, dtype=torch.float64).expand(B, 4, 4),
        occupancy=occ,
        mask_camera=torch.rand(B, 20, 20, 6, generator=g) > 0.2,
        mask_lidar=None,
        lidar=[
            torch.rand(200, 4, generator=g) * torch.tensor([8.0, 8.0, 2.0, 1.0]) - torch.tensor([4.0, 4.0, 0.0, 0.0])
            for _ in range(B)
        ]
        if lidar
        else None,
        depth=torch.rand(B, N, H, W, generator=g) * 6 + 1.5 if depth else None,
    )


def test_training_step_and_predict():
    torch.manual_seed(0)
    m = SupervisedMethod(tiny_model_cfg(), SupervisedConfig(free=17, depth_weight=2.0))
    assert isinstance(m, Method)
    batch = tiny_batch(B=2)
    losses = m.training_step(batch)
    assert set(losses) == {"loss_ce", "loss_lovasz", "loss_depth"}
    for k, v in losses.items():
        assert v.dim() == 0 and torch.isfinite(v), k
    sum(losses.values()).backward()
    assert m.model.view_transform.depth_net.body[3].weight.grad.abs().sum() > 0
    m.eval()
    logits = m.predict(batch)
    assert logits.shape == (2, 18, 20, 20, 6) and not logits.requires_grad
    out = m(batch)
    assert out.depth_prob.shape == (2, 2, 8, 2, 4)


def test_depth_sources_and_weights():
    torch.manual_seed(0)
    batch = tiny_batch(lidar=True, depth=True)
    m = SupervisedMethod(tiny_model_cfg(), SupervisedConfig(free=17, depth_source="lidar"))
    t_lidar = m.depth_targets(batch)
    m.cfg.depth_source = "depth_map"
    t_map = m.depth_targets(batch)
    m.cfg.depth_source = "auto"
    assert torch.equal(m.depth_targets(batch), t_lidar)  # auto prefers LiDAR
    m.cfg.depth_source = "depth_map_or_lidar"
    assert torch.equal(m.depth_targets(batch), t_map)
    m.cfg.depth_pool = "median"
    assert m.depth_targets(batch).shape == t_map.shape
    m.cfg.depth_pool = "nearest"
    maps, batch.depth = batch.depth, None  # keep the maps aside: without them it falls back to LiDAR
    assert torch.equal(m.depth_targets(batch), t_lidar)
    batch.depth = maps
    m.cfg.depth_source = "auto"
    batch.lidar = None
    assert torch.equal(m.depth_targets(batch), t_map)
    assert t_map.shape == (1, 2, 2, 4) and (t_map >= 0).any()
    batch.depth = None
    assert m.depth_targets(batch) is None
    assert m.training_step(batch)["loss_depth"].item() == 0.0
    m.cfg.depth_source = "lidar"
    with pytest.raises(ValueError, match="batch.lidar"):
        m.training_step(batch)
    # weights are applied; switched-off terms are absent
    m2 = SupervisedMethod(tiny_model_cfg(), SupervisedConfig(free=17, lovasz=False, depth_source="none", ce_weight=0.0))
    losses = m2.training_step(tiny_batch())
    assert set(losses) == {"loss_ce"} and losses["loss_ce"].item() == 0.0


def test_sensor_lift_places_features_at_the_sensor_depth():
    """lift_depth='sensor': where a feature pixel has a depth target the lift uses that bin alone
    (the volume equals a lift with a one-hot distribution), the depth loss still trains the
    predicted distribution, and the option is checked."""
    torch.manual_seed(0)
    m = SupervisedMethod(tiny_model_cfg(), SupervisedConfig(free=17, depth_source="depth_map", lift_depth="sensor"))
    batch = tiny_batch(lidar=False)
    bins = m.depth_targets(batch)
    bins[0, 0, 0, 0] = -1  # one pixel without a sensor depth keeps the prediction
    out = m.model(batch.images, batch.intrinsics, batch.T_ego_from_cam, bins)
    predicted = m.model(batch.images, batch.intrinsics, batch.T_ego_from_cam)
    assert torch.equal(out.depth_prob, predicted.depth_prob)  # the prediction is still returned
    assert not torch.allclose(out.lifted, predicted.lifted)
    vt = m.model.view_transform
    D = out.depth_prob.shape[2]
    expect = torch.nn.functional.one_hot(bins.clamp(min=0), D).permute(0, 1, 4, 2, 3).float()
    expect[0, 0, :, 0, 0] = out.depth_prob[0, 0, :, 0, 0]
    from occkit.models.lift import frustum_to_ego, make_frustum, splat

    pts = frustum_to_ego(make_frustum((32, 64), vt.stride, vt.depth_bins), batch.intrinsics, batch.T_ego_from_cam)
    assert torch.allclose(out.lifted, splat(expect, out.context, pts, vt.grid), atol=1e-6)
    losses = m.training_step(batch)
    sum(losses.values()).backward()
    assert m.model.view_transform.depth_net.body[3].weight.grad.abs().sum() > 0
    from occkit.config import ConfigError, from_dict

    with pytest.raises(ConfigError, match="lift_depth: 'lidar' is not one of"):  # checked once, when the config loads
        from_dict(SupervisedConfig, {"lift_depth": "lidar"})
    with pytest.raises(ValueError, match="depth_source"):
        SupervisedMethod(tiny_model_cfg(), SupervisedConfig(free=17, lift_depth="sensor", depth_source="none"))
    batch.depth = None
    with pytest.raises(ValueError, match="neither LiDAR nor depth maps"):
        SupervisedMethod(tiny_model_cfg(), SupervisedConfig(free=17, lift_depth="sensor")).training_step(batch)


def test_factored_cross_entropy_mode():
    counts = tuple([10.0] * 4 + [1000.0] * 13 + [10**6])
    m = SupervisedMethod(
        tiny_model_cfg(), SupervisedConfig(free=17, ce_mode="factored", class_counts=counts, depth_source="none")
    )
    # weights among the occupied classes only: free gets none, rare occupied classes more than frequent ones
    assert m.class_weight[17] == 0 and m.class_weight[0] > m.class_weight[10] > 0
    assert torch.allclose(m.class_weight[:17], class_weights_from_counts(torch.tensor(counts[:17])))
    losses = m.training_step(tiny_batch())
    assert set(losses) == {"loss_geo", "loss_sem", "loss_lovasz"}
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    from occkit.config import ConfigError, from_dict

    with pytest.raises(ConfigError, match="ce_mode: 'split' is not one of"):  # checked once, when the config loads
        from_dict(SupervisedConfig, {"ce_mode": "split"})
    with pytest.raises(ValueError, match="free"):
        SupervisedMethod(tiny_model_cfg(), SupervisedConfig(free=18))
    with pytest.raises(ValueError, match=r"supervised.free: not set; the free class is the data format's"):
        SupervisedMethod(tiny_model_cfg(), SupervisedConfig())  # no Occ3D default: the format decides


def test_class_weights_and_config_errors():
    w = tuple(float(i + 1) for i in range(18))
    m = SupervisedMethod(tiny_model_cfg(), SupervisedConfig(free=17, class_weights=w))
    assert torch.equal(m.class_weight, torch.tensor(w))
    m = SupervisedMethod(tiny_model_cfg(), SupervisedConfig(free=17, class_counts=tuple([10.0] * 17 + [1000.0])))
    assert m.class_weight[17] < m.class_weight[0]
    # A larger ENet offset c flattens the weights: the rare/frequent ratio shrinks.
    soft = SupervisedMethod(
        tiny_model_cfg(), SupervisedConfig(free=17, class_counts=tuple([10.0] * 17 + [1000.0]), class_weight_offset=1.5)
    )
    assert 1.0 < float(soft.class_weight[0] / soft.class_weight[17]) < float(m.class_weight[0] / m.class_weight[17])
    with pytest.raises(ValueError, match="class_weights"):
        SupervisedMethod(tiny_model_cfg(), SupervisedConfig(free=17, class_weights=(1.0, 2.0)))
    with pytest.raises(ValueError, match="not both"):
        SupervisedMethod(tiny_model_cfg(), SupervisedConfig(free=17, class_weights=w, class_counts=w))
    m = SupervisedMethod(tiny_model_cfg(), SupervisedConfig(free=17))
    batch = tiny_batch()
    batch.mask_camera = None
    with pytest.raises(ValueError, match="mask_camera"):
        m.training_step(batch)
    batch = tiny_batch()
    batch.occupancy = None
    with pytest.raises(ValueError, match="occupancy"):
        m.training_step(batch)
    batch = tiny_batch()
    batch.occupancy = batch.occupancy[:, :10]
    with pytest.raises(ValueError, match="occupancy"):
        m.training_step(batch)


def test_auxiliary_2d_semantic_loss():
    torch.manual_seed(0)
    m = SupervisedMethod(tiny_model_cfg(), SupervisedConfig(free=17, semantic_2d_weight=0.5))
    batch = tiny_batch()  # 32 x 64 images, feature stride 16 -> 2 x 4 feature pixels per camera
    sem = torch.full((1, 2, 32, 64), 17)
    sem[:, :, :, :16] = 11  # first feature column: road
    sem[:, :, :7, 16:32] = 4  # second column: car on 7 of 16 rows of each block -> free wins
    sem[:, :, :9, 32:48] = 4  # third: car on 9 of 16 rows of the top block -> car wins there
    batch.semantics_2d = sem
    losses = m.training_step(batch)
    assert "loss_sem2d" in losses
    out = m(batch)
    logits = m.semantic_2d_head(out.image_features.flatten(0, 1))
    target = torch.full((2, 2, 4), 17)
    target[:, :, 0] = 11
    target[:, 0, 2] = 4
    expect = 0.5 * torch.nn.functional.cross_entropy(logits, target)
    assert torch.allclose(losses["loss_sem2d"], expect, atol=1e-5)
    losses["loss_sem2d"].backward()
    assert m.model.backbone.parameters().__next__().grad is not None
    batch.semantics_2d = None  # no maps (e.g. real data without 2D labels): a zero term
    assert float(m.training_step(batch)["loss_sem2d"].detach()) == 0.0
    assert SupervisedMethod(tiny_model_cfg(), SupervisedConfig(free=17)).semantic_2d_head is None
    with pytest.raises(ValueError, match="semantic_2d_weight"):
        SupervisedMethod(tiny_model_cfg(), SupervisedConfig(free=17, semantic_2d_weight=-1.0))
    # maps in another table than the model's (a format whose reader gives Occ3D ids): named, with the fix
    batch.semantics_2d = torch.full((1, 2, 32, 64), 18)
    with pytest.raises(ValueError) as e:
        m.training_step(batch)
    msg = str(e.value)
    assert "batch.semantics_2d" in msg and batch.tokens[0] in msg and "[18, 18]" in msg and "18 classes" in msg
    assert "semantic_2d_weight=0" in msg and "\n" not in msg


def test_auto_class_counts_count_the_training_labels(tiny_occ3d_root):
    from occkit.data.occ3d import Occ3DDataset
    from occkit.experiment import build_dataset, fit_to_format, load_experiment, resolve_auto_class_counts

    cfg = load_experiment("synth-cpu", ["supervised.class_counts=auto", "data.load_extras=false"])
    cfg = fit_to_format(cfg, tiny_occ3d_root)  # the free class from the data's format, as occkit train does
    unresolved = SupervisedMethod(tiny_model_cfg(), cfg.supervised)  # builds (inference needs no weights) ...
    assert unresolved.class_weight is None
    with pytest.raises(ValueError, match="unresolved"):  # ... but does not train
        unresolved.training_step(tiny_batch())
    train_set = build_dataset(cfg, tiny_occ3d_root, "train", train=True)
    resolved = resolve_auto_class_counts(cfg, train_set)
    assert cfg.supervised.class_counts == "auto"  # the input config is left alone
    ds = Occ3DDataset(tiny_occ3d_root, "train", load_images=False)
    expect = torch.zeros(18, dtype=torch.float64)
    for f in ds.frames:
        gt = ds.read_labels(f.token)
        sem = torch.from_numpy(gt["semantics"].astype("int64"))[torch.from_numpy(gt["mask_camera"].astype(bool))]
        expect += torch.bincount(sem, minlength=18).double()
    assert torch.equal(torch.tensor(resolved.supervised.class_counts, dtype=torch.float64), expect)
    m = SupervisedMethod(resolved.model, resolved.supervised)
    assert torch.allclose(m.class_weight, class_weights_from_counts(expect, resolved.supervised.class_weight_offset))
    # without the camera mask every voxel counts
    cfg.supervised.use_camera_mask = False
    all_voxels = resolve_auto_class_counts(cfg, train_set).supervised.class_counts
    assert sum(all_voxels) == len(ds.frames) * 200 * 200 * 16
    # an explicit list is kept as given
    cfg.supervised.class_counts = tuple([1.0] * 18)
    assert resolve_auto_class_counts(cfg, train_set) is cfg


@pytest.fixture
def one_thread():
    """Tiny models run many small ops: one intra-op thread avoids thread-sync overhead (several
    times faster on a busy 2-core machine); the previous setting is restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("head", ["voxel", "bev"])
def test_tiny_overfit_lowers_the_loss(head, one_thread):
    torch.manual_seed(0)
    m = SupervisedMethod(tiny_model_cfg(head=head), SupervisedConfig(free=17, depth_source="depth_map"))
    batch = tiny_batch(lidar=False)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    history = []
    for _ in range(20):
        losses = m.training_step(batch)
        total = sum(losses.values())
        opt.zero_grad()
        total.backward()
        opt.step()
        history.append({k: v.item() for k, v in losses.items()})
    first, last = history[0], history[-1]
    assert last["loss_ce"] < 0.8 * first["loss_ce"]
    assert last["loss_lovasz"] < first["loss_lovasz"]
    assert last["loss_depth"] < first["loss_depth"]


def test_training_step_under_bf16_autocast_keeps_sensitive_parts_in_float32():
    torch.manual_seed(0)
    m = SupervisedMethod(tiny_model_cfg(), SupervisedConfig(free=17, depth_source="lidar"))
    batch = tiny_batch()
    ref_targets = m.depth_targets(batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = m.training_step(batch)
        out = m(batch)
        targets = m.depth_targets(batch)
    assert torch.equal(targets, ref_targets)
    assert out.lifted.dtype == torch.float32
    for k, v in losses.items():
        assert v.dtype == torch.float32 and torch.isfinite(v), k
    sum(losses.values()).backward()
