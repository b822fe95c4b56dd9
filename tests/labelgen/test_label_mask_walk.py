"""Occ3D's LiDAR mask (``mask_lidar``, docs/labels.md "What each option does", step 5) is one walk:
:func:`occkit.geometry.visibility.lidar_visibility`, the walk the synthetic world's own masks use. The label
pipeline had a second walk of its own; a test held the two equal on this tiny world's keyframes before it went
(in the history beside this file). What is held now: each keyframe's ``mask_lidar`` is that walk of the
keyframe's own returns (the ego's dropped) from its LiDAR's origin, in the keyframe's ego frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from occkit.cli import main


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mw") / "w"
    argv = ["synth", "--out", str(out), "--scenes", "1", "--frames", "2", "--image-size", "48", "80"]
    assert main([*argv, "--sweeps", "2", "--beams", "8"]) == 0
    return out


def test_mask_lidar_is_the_geometry_walk_of_the_keyframes_own_returns(world):
    from occkit.data.recordings.registry import open_recording
    from occkit.formats import default_format
    from occkit.geometry.visibility import lidar_visibility
    from occkit.labelgen.pipeline import LabelOptions, label_scene
    from occkit.labelgen.steps import ego_points

    fmt = default_format()
    free = fmt.classes.free
    rig = open_recording(world, None, {})
    rec = rig.read_scene(rig.scenes[0])
    opt = LabelOptions(camera_mask=False)
    labels, _ = label_scene(rec, fmt.grid, fmt.classes.names[:free], free, opt)
    assert len(labels) == len(rec.keyframes) == 2
    for k, lab in zip(rec.keyframes, labels):
        s = rec.sweeps[k]
        T_el = rec.lidars[s.sensor]
        p = s.points.astype(np.float64) @ T_el[:3, :3].T + T_el[:3, 3]  # the ego frame: Occ3D's grid frame
        p = p[~ego_points(p, rec.ego_size, rec.ego_center, opt.ego_margin)]
        mask = lidar_visibility(fmt.grid, torch.from_numpy(T_el[:3, 3].copy()), torch.from_numpy(p)).numpy()
        # the pipeline goes through the world frame and back: its rays differ from these in the last bits,
        # which may move a ray's path across a voxel corner; on this world not one voxel differs
        assert mask.any() and np.array_equal(lab.mask_lidar.astype(bool), mask), int((lab.mask_lidar != mask).sum())
