"""Occ3D's LiDAR mask (``mask_lidar``, docs/labels.md "What each option does", step 5): the label pipeline's
walk and :func:`occkit.geometry.visibility.lidar_visibility` (the walk the synthetic world's own masks use) mark
the same voxels for every keyframe of a tiny world."""

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


def test_the_label_walk_and_the_geometry_walk_mark_the_same_voxels(world):
    from occkit.data.recordings.registry import open_recording
    from occkit.formats import default_format
    from occkit.geometry.visibility import lidar_visibility
    from occkit.labelgen import pipeline as P
    from occkit.labelgen.raycast import visible_from

    grid = default_format().grid
    rig = open_recording(world, None, {"scenes": None})
    walked = 0
    for scene in rig.scenes:
        rec = rig.read_scene(scene)
        prep = P.prepare_scene(rec, P.LabelOptions(), default_format().classes.free, P.Timer())
        for k in rec.keyframes:
            T_eg = P._inv(rec.sweeps[k].T_global_from_ego)
            o = P._to_frame(T_eg, prep.origins[k][None])[0]
            p = P._to_frame(T_eg, prep.all_pts[k])
            label = visible_from(grid, o, p).astype(bool)
            geometry = lidar_visibility(grid, torch.from_numpy(o), torch.from_numpy(p)).numpy()
            assert label.any() and np.array_equal(label, geometry), (scene, k, int((label != geometry).sum()))
            walked += 1
    assert walked == 2  # 1 scene x 2 keyframes
