"""The training set of ``occkit train``: a fraction of the real scenes, extra datasets appended
(``data.extra_train``), their images flattened to their mean colour as the control."""

from __future__ import annotations

import pytest
import torch
from conftest import write_tiny_occ3d

from occkit.config import ConfigError
from occkit.data.wrappers import MeanColourImages
from occkit.experiment import base_dataset, build_dataset, build_train_set, load_experiment


def _cfg(*sets: str):
    return load_experiment(None, ["data.image_aug.out_hw=[24,64]", "data.cameras=[CAM_FRONT]", *sets])


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    real = write_tiny_occ3d(tmp_path_factory.mktemp("real"), scenes=5, frames=2, seed=0)  # 4 train scenes, 1 val
    extra = write_tiny_occ3d(tmp_path_factory.mktemp("extra"), scenes=2, frames=3, seed=1)  # 6 frames in all
    return real, extra


def test_the_first_fraction_of_the_scenes(roots):
    real, _ = roots
    assert len(build_train_set(_cfg(), real)) == 8
    half = build_train_set(_cfg("data.train_scene_fraction=0.5"), real)
    scenes = base_dataset(half).scenes
    assert len(half) == 4 and [half[i].scene for i in range(4)] == [scenes[0]] * 2 + [scenes[1]] * 2
    tiny = build_train_set(_cfg("data.train_scene_fraction=0.01"), real)  # at least one scene
    assert len(tiny) == 2 and {tiny[i].scene for i in range(2)} == {scenes[0]}


def test_extra_datasets_follow_the_real_frames_and_base_dataset_stays_the_real_one(roots):
    real, extra = roots
    ds = build_train_set(_cfg("data.train_scene_fraction=0.25", f"data.extra_train=[{extra}]"), real)
    assert len(ds) == 2 + 6
    assert base_dataset(ds).root == base_dataset(build_train_set(_cfg(), real)).root
    tokens = [ds[i].token for i in range(len(ds))]
    extra_frames = base_dataset(build_dataset(_cfg(), extra, "all")).frames
    assert tokens[:2] == [f.token for f in base_dataset(ds).frames[:2]] and tokens[2:] == [
        f.token for f in extra_frames
    ]
    assert "0002" + "ab" * 14 in tokens[2:]  # a third frame: only the extra dataset has one
    assert ds[-1].token == tokens[-1] and ds[7].occupancy is not None
    with pytest.raises(IndexError):
        ds[8]


def test_mean_colour_keeps_the_labels_and_flattens_each_image(roots):
    real, extra = roots
    as_is = build_train_set(_cfg(f"data.extra_train=[{extra}]"), real)
    flat = build_train_set(_cfg(f"data.extra_train=[{extra}]", "data.extra_images=mean_colour"), real)
    for i in (0, 8, 13):  # a real frame, the first and the last extra frame
        a, b = as_is[i], flat[i]
        assert torch.equal(a.occupancy, b.occupancy) and torch.equal(a.mask_camera, b.mask_camera)
        if i < 8:
            assert torch.equal(a.images, b.images)  # the real frames keep their images
        else:
            img = b.images[0]
            assert torch.allclose(img, img[:, :1, :1].expand_as(img))  # one colour per channel
            assert not torch.equal(a.images, b.images)
    # the colour is each image's own mean, per channel, before the training transforms
    raw = MeanColourImages(flat.more[0].dataset.dataset)[0]
    inner = flat.more[0].dataset.dataset[0]
    assert torch.allclose(raw.images[0, :, 0, 0], inner.images[0].mean(dim=(1, 2)), atol=1e-6)


def test_bad_settings_are_one_line_errors(roots, tmp_path):
    real, _ = roots
    with pytest.raises(ConfigError, match="train_scene_fraction must be in"):
        _cfg("data.train_scene_fraction=0")
    with pytest.raises(ConfigError, match="applies to data.extra_train, which is empty"):
        _cfg("data.extra_images=mean_colour")
    with pytest.raises(ConfigError, match=f"data.extra_train: {tmp_path / 'nope'} is not a folder"):
        build_train_set(_cfg(f"data.extra_train=[{tmp_path / 'nope'}]"), real)
