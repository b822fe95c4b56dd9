"""The labels rendered into each camera (:mod:`occkit.labelgen.semantic_maps`): each pixel the class of the
first occupied voxel its ray meets, the free class where none; ``occkit label --to occ3d`` writes them
beside the labels and Occ3D's reader gives them as ``Sample.semantics_2d``."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from occkit.data.scene_record import Camera
from occkit.geometry.grid import Grid
from occkit.labelgen.semantic_maps import camera_rays, render_semantic_maps

GRID = Grid((-8.0, -8.0, -1.0), (8.0, 8.0, 3.0), (0.5, 0.5, 0.5))
FREE = 17
#: OpenCV camera axes (x right, y down, z forward) -> ego (x forward, y left, z up)
FORWARD = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], np.float64)


def _camera(name: str, yaw_deg: float = 0.0, size=(12, 16), at=(0.0, 0.0, 1.2)) -> Camera:
    c, s = np.cos(np.radians(yaw_deg)), np.sin(np.radians(yaw_deg))
    T = np.eye(4)
    T[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ FORWARD
    T[:3, 3] = at
    H, W = size
    K = np.array([[8.0, 0, W / 2], [0, 8.0, H / 2], [0, 0, 1]])
    return Camera(name, K, T, size)


def _scene() -> np.ndarray:
    sem = np.full(GRID.shape, FREE, np.uint8)
    sem[:, :, 0] = 11  # the ground layer, z in [-1, -0.5)
    sem[26:28, 12:20, 1:] = 4  # a wall 5 m ahead (x in [5, 6)), |y| < 2, from the ground up
    return sem


def test_a_wall_ahead_the_ground_below_nothing_above_and_unknown_voxels_are_seen_through():
    sem = _scene()
    sem[20, 14:18, 3] = 255  # unknown voxels between the camera and the wall, at the camera's height
    cams = {"CAM_FRONT": _camera("CAM_FRONT"), "CAM_LEFT": _camera("CAM_LEFT", 90.0)}
    maps = render_semantic_maps(sem, GRID, FREE, cams)
    assert list(maps) == ["CAM_FRONT", "CAM_LEFT"] and maps["CAM_FRONT"].shape == (12, 16)
    front, left = maps["CAM_FRONT"], maps["CAM_LEFT"]
    assert front.dtype == np.uint8
    assert front[6, 8] == 4  # the centre ray: level, straight ahead, through the unknown voxels into the wall
    assert (front[-1] == 11).all()  # the bottom row looks down onto the ground
    assert front[0, 0] == FREE  # up and to the left: over the wall, out of the grid
    assert not (left == 4).any() and left[6, 8] == FREE and (left[-1] == 11).all()  # the wall is not to the left


def test_the_maps_are_the_first_hits_of_an_independent_walk():
    """Every pixel against :func:`occkit.geometry.raycast.first_hit` (another walk) on random voxels, three
    cameras of two sizes, one behind the grid looking into it (it walks in through voxels seen through), the
    grid placed in the ego frame by ``T_ego_from_grid``."""
    from occkit.geometry.raycast import first_hit

    rng = np.random.default_rng(0)
    sem = np.where(rng.random(GRID.shape) < 0.03, rng.integers(0, 17, GRID.shape), FREE).astype(np.uint8)
    T_ego_from_grid = np.eye(4)
    T_ego_from_grid[:3, 3] = [0.7, -0.3, 0.2]
    cams = {"A": _camera("A", 30.0, (10, 14)), "B": _camera("B", -120.0, (6, 20), at=(1.0, 2.0, 1.0))}
    cams["BEHIND"] = _camera("BEHIND", 10.0, (10, 14), at=(-8.9, 0.4, 3.6))  # behind the grid's x and above its z
    maps = render_semantic_maps(sem, GRID, FREE, cams, T_ego_from_grid)
    for name, cam in cams.items():
        o, d = camera_rays(cam.K, np.linalg.inv(T_ego_from_grid) @ cam.T_ego_from_cam, cam.image_size)
        hit = first_hit(torch.from_numpy(sem != FREE), o.expand(len(d), 3).contiguous(), d, GRID)
        want = np.full(len(d), FREE, np.uint8)
        idx = hit.index[hit.hit].numpy()
        want[hit.hit.numpy()] = sem[idx[:, 0], idx[:, 1], idx[:, 2]]
        assert hit.hit.any() and not hit.hit.all()
        np.testing.assert_array_equal(maps[name], want.reshape(cam.image_size), err_msg=name)


def test_a_camera_far_outside_the_grid_and_labels_of_another_shape_are_refused_by_name():
    with pytest.raises(ValueError, match=r"camera FAR: its centre .* lies 12.0 m outside the label grid"):
        render_semantic_maps(_scene(), GRID, FREE, {"FAR": _camera("FAR", at=(20.0, 0.0, 1.0))})
    with pytest.raises(ValueError, match="semantics: shape"):
        render_semantic_maps(_scene()[:-1], GRID, FREE, {"A": _camera("A")})


def test_a_label_writer_whose_maps_name_a_camera_not_recorded_is_refused_naming_the_format(monkeypatch, tmp_path):
    """A package's label writer (:attr:`occkit.formats.spec.LabelWriter.camera_maps`) that names a camera the
    recording lacks, or gives fewer ids than its classes: one line naming the format, nothing written."""
    from dataclasses import replace
    from types import SimpleNamespace

    import occkit.formats as formats
    from occkit.formats.spec import CameraMaps, FormatPluginError, FrameLabels
    from occkit.labelgen.semantic_maps import write_keyframe_maps

    fmt = formats.get_format("occ3d")
    target = SimpleNamespace(format="occ3d", to_output=(*range(FREE), FREE), grid=GRID)
    frame = FrameLabels(token="t", scene="s", semantics=_scene())
    for maps, words in (
        (CameraMaps(lambda f, cams: {"NOPE": "extras/s/t/NOPE.npz"}), "name cameras the recording lacks: NOPE"),
        (CameraMaps(lambda f, cams: {c: f"extras/{c}.npz" for c in cams}, ids=(0, 1)), "give 2 ids, fewer than"),
    ):
        writer = replace(fmt.writers.label_writer, camera_maps=maps)
        monkeypatch.setattr(
            formats, "get_format", lambda name: replace(fmt, writers=replace(fmt.writers, label_writer=writer))
        )
        with pytest.raises(FormatPluginError, match=f"format occ3d .*{words}"):
            write_keyframe_maps(tmp_path, target, {"CAM_FRONT": _camera("CAM_FRONT")}, frame, None, "here")
        assert not list(tmp_path.rglob("*.npz"))


def _run(*argv: str) -> tuple[int, str]:
    from occkit.cli import main

    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, err.getvalue()


@pytest.mark.skipif(
    not os.environ.get("OCCKIT_SLOW_TESTS"), reason="a world and its labels take 1-2 minutes: set OCCKIT_SLOW_TESTS=1"
)
def test_label_writes_each_cameras_map_and_the_reader_gives_them_as_the_worlds(tmp_path: Path):
    """``occkit label`` on a tiny world: each keyframe's maps at ``extras/<scene>/<token>/<CAM>.npz``, read as
    ``semantics_2d`` (``load_extras``) at the images' size, and mostly the classes of the world's own maps
    (rendered from its scene, not from voxels). tests/labelgen/test_label_opens.py checks the files and the
    reader on its labels of a world in the default suite."""
    from occkit.data.occ3d import Occ3DDataset

    world, lab = tmp_path / "w", tmp_path / "lab"
    tiny = ("--scenes", "1", "--frames", "2", "--image-size", "48", "80", "--sweeps", "2", "--beams", "16")
    assert _run("synth", "--out", world, *tiny)[0] == 0
    rc, err = _run("label", "--data", world, "--out", lab)
    assert rc == 0, err
    ds, truth = Occ3DDataset(lab, "all", load_extras=True), Occ3DDataset(world, "all", load_extras=True)
    assert len(ds) == 2 and len(list((lab / "extras").rglob("*.npz"))) == 2 * len(ds.cameras)
    agree = []
    for i in range(len(ds)):
        s, t = ds[i], truth[truth.index_of(ds.frames[i].token)]
        assert s.semantics_2d is not None and s.depth is None and s.instance_2d is None
        assert s.semantics_2d.shape == (len(ds.cameras), 48, 80) and int(s.semantics_2d.max()) <= FREE
        assert s.lidar is not None  # the keyframe's sweep is still read beside the maps
        agree.append((s.semantics_2d == t.semantics_2d).float().mean().item())
    assert min(agree) > 0.6, agree
    assert Occ3DDataset(lab, "all", load_extras=False)[0].semantics_2d is None
