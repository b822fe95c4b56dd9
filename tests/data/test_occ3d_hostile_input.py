"""Hostile input to the Occ3D reader: each is refused with an error naming where it is."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import write_tiny_occ3d
from PIL import Image

from occkit.data.occ3d import Occ3DDataset, load_occ3d_labels
from occkit.fileio import load_npz, save_npz_atomic


@pytest.fixture
def root(tmp_path):
    return write_tiny_occ3d(tmp_path / "d", scenes=1, frames=1)


def _edit_annotations(root, edit):
    path = root / "annotations.json"
    ann = json.loads(path.read_text())
    scene = next(iter(ann["scene_infos"]))
    token = next(iter(ann["scene_infos"][scene]))
    edit(ann["scene_infos"][scene][token])
    path.write_text(json.dumps(ann))
    return scene, token


@pytest.mark.parametrize("key", ["mask_camera", "mask_lidar"])
def test_mask_with_values_other_than_0_1_is_refused_naming_file_and_values(root, key):
    ds = Occ3DDataset(root, "all")
    path = ds.gt_path(ds.frames[0].token)
    z = load_npz(path)
    z[key][0, 0, :3] = (2, 7, 2)
    save_npz_atomic(path, **z)
    with pytest.raises(ValueError, match=rf"labels.npz: '{key}': class ids 2, 7 \(3 voxels\) outside a mask's values"):
        load_occ3d_labels(path)
    with pytest.raises(ValueError, match=key):
        ds[0]


def test_resized_image_with_original_intrinsics_is_refused_without_extras(root):
    ds = Occ3DDataset(root, "all")
    token = ds.frames[0].token
    for cam in ds.cameras:  # half size, as a user shrinking the dataset's images would
        img = ds.image_path(token, cam)
        with Image.open(img) as im:
            im.resize((im.width // 2, im.height // 2)).save(img)
    with pytest.raises(
        ValueError, match=r"CAM_FRONT.*image is 32x12 but the intrinsics put the principal point at \(32.0"
    ):
        ds[0]


def test_image_size_is_checked_against_the_recorded_size(root):
    scene, token = _edit_annotations(root, lambda info: info["camera_sensor"]["CAM_FRONT"].update(height=48, width=128))
    with pytest.raises(ValueError, match=r"CAM_FRONT.*image is 64x24 but the annotations record 128x48"):
        Occ3DDataset(root, "all")[0]


def test_a_consistent_recorded_size_is_accepted(root):
    _edit_annotations(root, lambda info: info["camera_sensor"]["CAM_FRONT"].update(height=24, width=64))
    assert Occ3DDataset(root, "all")[0].images.shape[-2:] == (24, 64)


def test_missing_intrinsic_names_file_scene_token_camera(root):
    scene, token = _edit_annotations(root, lambda info: info["camera_sensor"]["CAM_BACK_LEFT"].pop("intrinsic"))
    with pytest.raises(
        ValueError,
        match=rf"annotations.json: scene {scene}, frame {token}: camera_sensor.CAM_BACK_LEFT.intrinsic missing",
    ):
        Occ3DDataset(root, "all")[0]


def test_zero_quaternion_names_file_scene_token_camera(root):
    def zero(info):
        info["camera_sensor"]["CAM_FRONT_RIGHT"]["extrinsic"]["rotation"] = [0, 0, 0, 0]

    scene, token = _edit_annotations(root, zero)
    with pytest.raises(
        ValueError,
        match=rf"scene {scene}, frame {token}: camera_sensor.CAM_FRONT_RIGHT.extrinsic.rotation: .* zero quaternion",
    ):
        Occ3DDataset(root, "all")[0]


def test_missing_ego_pose_and_degenerate_focal_are_named(root, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(root, other)
    scene, token = _edit_annotations(root, lambda info: info.pop("ego_pose"))
    with pytest.raises(ValueError, match=rf"scene {scene}, frame {token}: ego_pose missing"):
        Occ3DDataset(root, "all")[0]
    _edit_annotations(
        other, lambda info: info["camera_sensor"]["CAM_FRONT"].update(intrinsic=[[0, 0, 32], [0, 0, 12], [0, 0, 1]])
    )
    with pytest.raises(ValueError, match=r"camera_sensor.CAM_FRONT.intrinsic: .* is not a camera matrix"):
        Occ3DDataset(other, "all")[0]


def test_the_synthetic_world_passes_the_checks(synth_root):
    ds = Occ3DDataset(synth_root, "all")
    for i in range(len(ds)):
        ds[i]


def test_token_listed_in_two_scenes_is_refused_naming_file_token_scenes(tmp_path):
    """annotations.json listing one token in two scenes counted its frame twice: refused in one line
    naming the file, the token and both scenes (the LiDAR-frame layouts read the same index)."""
    root = write_tiny_occ3d(tmp_path / "d", scenes=2, frames=1)
    path = root / "annotations.json"
    ann = json.loads(path.read_text())
    a, b = list(ann["scene_infos"])
    token = next(iter(ann["scene_infos"][a]))
    ann["scene_infos"][b][token] = ann["scene_infos"][a][token]
    path.write_text(json.dumps(ann))
    for split in ("all", "train", "val"):
        with pytest.raises(ValueError) as e:
            Occ3DDataset(root, split, load_images=False)
        msg = str(e.value)
        assert msg == f"{path}: token {token} is listed in two scenes, {a} and {b} (its frame would be counted twice)"
