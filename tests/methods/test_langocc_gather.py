"""langocc.temporal_gather: ``lidar_pixels`` (the neighbours' features gathered at their own
LiDAR pixels by the data pipeline) draws the same rays as ``maps`` and trains to the same loss
within the float16 rounding of the gathered features; the combinations it cannot serve are
refused."""

from __future__ import annotations

import pytest
import torch
from conftest import write_lidar_feature_world
from two_cameras import tiny_model_cfg

from occkit.data.occ3d import Occ3DDataset
from occkit.data.sample import collate
from occkit.data.temporal import WithTemporalPriors
from occkit.methods.langocc import LangOccConfig, LangOccMethod
from occkit.priors.cache import PriorCache, WithPriors

H, W, STRIDE, D = 32, 64, 4, 8
OFFSETS = (-2, -1, 1, 2)
RELEASED = dict(ray_pixels="lidar", ray_lidar="own", ray_box=True, ray_depth=(0.5, 6.0), temporal_offsets=OFFSETS)


@pytest.fixture(scope="module")
def batches(tmp_path_factory):
    """The same two frames (1 and 2 of a 5-keyframe scene, 1 m apart) with ``maps`` and ``lidar_pixels``."""
    root, priors = write_lidar_feature_world(tmp_path_factory.mktemp("gather"), frames=5, image_size=(H, W))
    ds = WithPriors(Occ3DDataset(root, "train", load_gt=False, load_extras=True), PriorCache(priors))
    method = tiny_method(**RELEASED)
    out = {}
    for gather in ("maps", "lidar_pixels"):
        kw = dict(gather=gather, box=method.grid, depth_range=(0.5, 6.0)) if gather != "maps" else {}
        frames = WithTemporalPriors(ds, PriorCache(priors), OFFSETS, **kw)
        out[gather] = collate([frames[1], frames[2]])
    return out


def tiny_method(**kw) -> LangOccMethod:
    torch.manual_seed(0)
    opts = dict(feature_dim=D, mlp_width=32, num_rays=256, num_proposal=16, num_importance=16)
    m = LangOccMethod(tiny_model_cfg(), LangOccConfig(free=17, **{**opts, **kw}))
    m.class_text.copy_(
        torch.nn.functional.normalize(torch.randn(17, D, generator=torch.Generator().manual_seed(1)), dim=-1)
    )
    m.class_text_ready.fill_(True)  # no text encoder in tests
    return m


@pytest.mark.parametrize("fraction", ["pooled", 0.75])
def test_same_rays_and_targets_as_the_maps(batches, fraction):
    kw = {**RELEASED, "temporal_rays_fraction": fraction}
    maps, gathered = tiny_method(**kw), tiny_method(**kw, temporal_gather="lidar_pixels")
    for b in range(2):
        pools = maps.lidar_pools(batches["maps"], b), gathered.lidar_pools(batches["lidar_pixels"], b)
        assert torch.equal(pools[0][0], pools[1][0]) and torch.equal(pools[0][1], pools[1][1])
        torch.manual_seed(3)
        want = maps.frame_rays(batches["maps"], b)
        torch.manual_seed(3)
        got = gathered.frame_rays(batches["lidar_pixels"], b)
        assert set(got) == set(want) == {"current", "temporal"}
        for part in want:
            for k in ("origins", "dirs", "cam", "row", "col", "z_per_t"):
                assert torch.equal(getattr(got[part][0], k), getattr(want[part][0], k))
        assert torch.equal(got["current"][1], want["current"][1])
        # the neighbours' targets: the maps' samples rounded to float16, read back in float32
        assert got["temporal"][1].dtype == torch.float32
        assert torch.equal(got["temporal"][1], want["temporal"][1].half().float())


def test_a_training_step_gives_the_same_loss(batches):
    losses = {}
    for gather in ("maps", "lidar_pixels"):
        m = tiny_method(**RELEASED, temporal_rays_fraction="pooled", temporal_gather=gather)
        torch.manual_seed(5)
        loss = m.training_step(batches[gather])["loss_feat"]
        loss.backward()
        losses[gather] = float(loss.detach())
    # the targets differ by float16 rounding only (relative 2^-11 per feature)
    assert losses["lidar_pixels"] == pytest.approx(losses["maps"], rel=1e-4)  # measured: 4.7e-6


def test_combinations_that_cannot_gather_are_refused(batches):
    with pytest.raises(ValueError, match="temporal_gather.*ray_pixels: lidar and ray_lidar: own"):
        tiny_method(temporal_offsets=(1,), temporal_gather="lidar_pixels")  # rays from every pixel
    with pytest.raises(ValueError, match="temporal_gather"):
        tiny_method(**{**RELEASED, "ray_lidar": "current"}, temporal_gather="lidar_pixels")
    with pytest.raises(ValueError, match="temporal_pixels"):  # a batch of whole maps
        tiny_method(**RELEASED, temporal_gather="lidar_pixels").training_step(batches["maps"])
    with pytest.raises(ValueError, match="temporal_features"):  # a gathered batch, the maps reading
        tiny_method(**RELEASED).training_step(batches["lidar_pixels"])


def test_presets_and_the_data_pipeline(tmp_path):
    from occkit.config import ConfigError
    from occkit.experiment import build_dataset, load_experiment

    assert load_experiment("langocc-gpu").langocc.temporal_gather == "lidar_pixels"
    assert load_experiment("langocc").langocc.temporal_gather == "maps"  # the CPU preset trains as before
    root, priors = write_lidar_feature_world(tmp_path, frames=3, image_size=(H, W))
    sets = [
        f"data.priors={priors}",
        "data.load_extras=true",
        f"langocc.feature_dim={D}",
        "langocc.temporal_offsets=[-1, 1]",
    ]
    with pytest.raises(ConfigError, match="temporal_gather"):
        build_dataset(load_experiment("langocc", [*sets, "langocc.temporal_gather=lidar_pixels"]), root, "train", True)
    released = [
        "langocc.ray_pixels=lidar",
        "langocc.ray_lidar=own",
        "langocc.ray_box=true",
        "langocc.temporal_gather=lidar_pixels",
    ]
    cfg = load_experiment("langocc", [*sets, *released])
    s = build_dataset(cfg, root, "train", train=True)[1]
    assert s.temporal_features is None and len(s.temporal_pixels) == 2
    assert s.temporal_pixel_features[0].shape == (len(s.temporal_pixels[0]), D)
