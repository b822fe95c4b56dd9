"""The synthetic world as SemanticKITTI: files read back by the SemanticKITTI reader, the class
table, and geometric consistency of image, calibration and voxels."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from occkit.data.semantickitti import SSC_SHAPE, SemanticKITTIDataset, camera_from_calib, read_calib, read_label
from occkit.geometry.grid import semantickitti_grid
from occkit.labels import OCC3D_CLASSES, SEMANTICKITTI_CLASSES, semantickitti_remap_lut
from occkit.worlds.driving import SynthConfig, build_scene, render_camera, scene_state_at
from occkit.worlds.driving.kitti_export import (
    OCC3D_TO_SEMANTICKITTI,
    T_ego_from_velodyne,
    export_semantickitti,
    occ3d_to_semantickitti_raw,
    sequence_names,
)
from occkit.worlds.driving.sensors import T_ego_from_camera, camera_intrinsics


def test_class_table():
    raw = occ3d_to_semantickitti_raw(np.arange(18, dtype=np.uint8))
    learn = semantickitti_remap_lut(True)[raw]
    names = {OCC3D_CLASSES[c]: (SEMANTICKITTI_CLASSES[int(l)] if l != 255 else None) for c, l in enumerate(learn)}
    assert names["car"] == "car" and names["pedestrian"] == "person" and names["free"] == "empty"
    assert names["driveable_surface"] == "road" and names["manmade"] == "building" and names["barrier"] == "fence"
    assert names["others"] is None and names["traffic_cone"] is None  # raw 99: ignored by the evaluation
    assert len(OCC3D_TO_SEMANTICKITTI) == 18
    with pytest.raises(ValueError):
        occ3d_to_semantickitti_raw(np.array([18]))


def test_sequence_names():
    assert sequence_names([0, 1], [2]) == {0: "00", 1: "01", 2: "08"}
    assert sequence_names(list(range(9)), [9])[8] == "09"


@pytest.fixture(scope="module")
def kitti_root(tmp_path_factory):
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # many small ops: threads only contend on a shared machine
    try:
        cfg = SynthConfig(
            scenes=2, frames=1, image_size=(48, 160), lidar_beams=16, lidar_azimuth_steps=360, occupancy_supersample=1
        )
        root = tmp_path_factory.mktemp("kitti")
        export_semantickitti(root, cfg)
    finally:
        torch.set_num_threads(n)
    return root, cfg


def test_export_reads_back(kitti_root):
    root, cfg = kitti_root
    ds = SemanticKITTIDataset(root, "val")
    assert ds.sequences == ("08",) and len(ds) == 1
    s = ds[0]
    assert s.images.shape == (1, 3, 48, 160)
    occ = s.occupancy
    assert occ.shape == SSC_SHAPE
    counts = torch.bincount(occ[occ != 255].flatten(), minlength=20)
    assert counts[0] > 0.5 * occ.numel()  # mostly empty
    assert counts[9] > 1000  # road under the car
    valid = s.mask_camera
    assert 0.01 < valid.float().mean() < 0.99
    assert s.extra["input_occupancy"].sum() > 100
    # LiDAR returns are observed voxels, so the input occupancy is never invalid
    assert not bool((s.extra["input_occupancy"] & ~valid).any())
    assert SemanticKITTIDataset(root, "train").sequences == ("00",)
    assert (root / "splits.json").read_text().count("08") == 1
    with pytest.raises(FileExistsError, match="sequences"):
        export_semantickitti(root, cfg)


def test_image_calib_and_voxels_agree(kitti_root):
    """Back-project the rendered front camera through calib.txt into the velodyne frame: the
    voxel there (just behind the surface) carries the rendered pixel's class."""
    root, cfg = kitti_root
    seq = root / "sequences" / "08"
    c = read_calib(seq / "calib.txt")
    K, T_cam_from_velo = camera_from_calib(c["P2"], c["Tr"])
    scene = build_scene(cfg, 1)
    state = scene_state_at(scene, 0)
    H, W = cfg.image_size
    Kc = camera_intrinsics("CAM_FRONT", (H, W))
    assert np.allclose(K, Kc.numpy())
    assert np.allclose(
        np.linalg.inv(T_cam_from_velo),
        (torch.linalg.inv(T_ego_from_velodyne()) @ T_ego_from_camera("CAM_FRONT")).numpy(),
    )
    cam = render_camera(state, Kc, state.T_global_from_ego.double() @ T_ego_from_camera("CAM_FRONT"), H, W)
    depth, sem = cam["depth"].numpy(), cam["semantics"].numpy()
    v, u = np.nonzero((depth > 0) & (depth < 40))
    rays = np.linalg.solve(K, np.stack([u + 0.5, v + 0.5, np.ones_like(u)], 0).astype(np.float64))  # z = 1
    pts_cam = rays * (depth[v, u] + 0.1)  # 10 cm behind the surface
    T_velo_from_cam = np.linalg.inv(T_cam_from_velo)
    pts = (T_velo_from_cam[:3, :3] @ pts_cam).T + T_velo_from_cam[:3, 3]
    grid = semantickitti_grid()
    idx, ok = grid.point_to_index(torch.from_numpy(pts))
    idx = idx[ok].numpy()
    labels = semantickitti_remap_lut(True)[read_label(seq / "voxels" / "000000.label")]
    got = labels[idx[:, 0], idx[:, 1], idx[:, 2]]
    want = semantickitti_remap_lut(True)[occ3d_to_semantickitti_raw(sem[v, u][ok.numpy()])]
    keep = want != 255
    assert keep.sum() > 200
    agree = (got[keep] == want[keep]).mean()
    print(f"pixel/voxel class agreement {agree:.3f} over {int(keep.sum())} pixels")
    assert agree > 0.7, agree


def test_eval_on_export(kitti_root, tmp_path):
    from occkit.data.semantickitti import write_ssc_prediction
    from occkit.formats import get_format
    from occkit.scoring.folder import evaluate_predictions

    root, _ = kitti_root
    ds = SemanticKITTIDataset(root, "val", load_images=False)
    labels, invalid = ds.load_gt_arrays(0)
    write_ssc_prediction(
        tmp_path / "sequences" / "08" / "predictions" / "000000.label",
        np.where(labels == 255, 0, labels).astype(np.uint8),
    )
    r = evaluate_predictions(get_format("semantickitti"), root, tmp_path, progress=False)
    assert r["completion_iou"] == pytest.approx(100.0) and r["precision"] == pytest.approx(100.0)
    # classes the evaluation can see: invalid voxels are excluded, so a class whose voxels are
    # all invalid is absent from the confusion matrix (IoU 0 by the SSC convention)
    present = set(np.unique(labels[(labels != 255) & ~invalid]).tolist()) - {0}
    assert all(r["iou"][SEMANTICKITTI_CLASSES[c]] == pytest.approx(100.0) for c in present)


def test_export_extras(kitti_root):
    """The front camera's exact maps, the voxel instances on the .label grid and the objects list
    (velodyne-frame boxes) sit beside the official files and read back through the reader."""
    from occkit.worlds.driving.vocabulary import FINE_NAME_CLASS

    root, cfg = kitti_root
    ds = SemanticKITTIDataset(root, "val", load_extras=True)
    token = ds.token(0)
    s = ds[0]
    H, W = cfg.image_size
    assert s.depth.shape == s.semantics_2d.shape == s.instance_2d.shape == (1, H, W)
    state = scene_state_at(build_scene(cfg, 1), 0)
    cam = render_camera(
        state,
        camera_intrinsics("CAM_FRONT", (H, W)),
        state.T_global_from_ego.double() @ T_ego_from_camera("CAM_FRONT"),
        H,
        W,
    )
    assert torch.equal(s.depth[0], cam["depth"]) and torch.equal(s.semantics_2d[0], cam["semantics"].long())
    assert torch.equal(s.instance_2d[0], cam["instance"].long())

    inst = ds.read_instances(token)
    assert inst.dtype == np.int32 and inst.shape == SSC_SHAPE
    learning = semantickitti_remap_lut(True)[read_label(root / "sequences" / "08" / "voxels" / "000000.label")]
    ground_or_empty = np.isin(learning, [0, 9, 11, 12, 17])  # empty, road, sidewalk, other-ground, terrain
    assert np.array_equal(inst > 0, ~ground_or_empty)

    objs = {o["instance"]: o for o in ds.objects(token)}
    names = ds.instance_names(token)
    meta = json.loads((root / "sequences" / "08" / "extras" / "000000.objects.json").read_text())
    assert meta["token"] == "08/000000" and meta["scene"] == "scene-0001" and meta["frame"] == 0
    sem2d, inst2d = s.semantics_2d[0].numpy(), s.instance_2d[0].numpy()
    for i in np.unique(inst2d[inst2d > 0]).tolist():
        assert set(np.unique(sem2d[inst2d == i]).tolist()) == {objs[i]["class_id"]}
    centres = semantickitti_grid().centers().numpy()
    n_checked = 0
    for i in np.unique(inst[inst > 0]).tolist():
        o = objs[i]  # every voxel instance is listed ...
        assert FINE_NAME_CLASS[names[i]] == o["class_id"]
        # ... and its voxels lie in its box, given in the velodyne frame (voxel half-diagonal slack)
        b = o["box_ego"]
        p = centres[inst == i] - np.array(b["center"])
        c, sn = np.cos(b["yaw"]), np.sin(b["yaw"])
        local = np.stack([c * p[:, 0] + sn * p[:, 1], -sn * p[:, 0] + c * p[:, 1], p[:, 2]], -1)
        assert (np.abs(local) <= np.array(b["size"]) / 2 + 0.3).all(), (i, o["name"])
        n_checked += 1
    assert n_checked >= 5


def test_a_datasets_own_splits_come_before_the_official_ones(kitti_root, tmp_path):
    """splits.json (the synthetic world's, whose validation has more scenes than 08) decides the
    named splits for every reader: training, prediction, occkit eval and the prior caches."""
    import json
    import shutil

    from occkit.data.semantickitti import SemanticKITTIDataset

    root = tmp_path / "k"
    shutil.copytree(kitti_root[0], root)
    assert SemanticKITTIDataset(root, "val").sequences == ("08",)
    (root / "splits.json").write_text(json.dumps({"train": ["08"], "val": ["00"]}))
    assert SemanticKITTIDataset(root, "val").sequences == ("00",) and SemanticKITTIDataset(root, "train").sequences == (
        "08",
    )
    assert SemanticKITTIDataset(root, "all").sequences == ("00", "08")
    (root / "splits.json").write_text("{not json")
    with pytest.raises(ValueError, match="splits.json"):
        SemanticKITTIDataset(root, "val")
