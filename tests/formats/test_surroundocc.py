"""The SurroundOcc format: label files written and read exactly (the synthetic world's occupancy on
SurroundOcc's grid in the LiDAR frame), the frames' cameras in the LiDAR frame, the metric on
hand-counted arrays, and one-line errors naming the file for bad label files."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

from occkit.data.lidar_frame import NUSC_OCC_CLASSES, DuplicateVoxels
from occkit.data.surroundocc import (
    SURROUNDOCC_SHAPE,
    SurroundOccDataset,
    dense_to_rows,
    read_prediction,
    read_surroundocc_label,
    surroundocc_grid,
    write_prediction,
    write_surroundocc_label,
)
from occkit.formats import Targets, detect_format, get_format
from occkit.geometry.transforms import invert_transform
from occkit.metrics.nusc_occupancy import NuScenesOccupancyMetric
from occkit.worlds.driving import SynthConfig, build_scene, scene_state_at, semantic_occupancy
from occkit.worlds.driving.lidar_frame_export import label_supersample, occ3d_to_nusc_occ
from occkit.worlds.driving.sensors import T_ego_from_camera, T_ego_from_lidar

CFG = SynthConfig(
    scenes=2,
    frames=2,
    seed=3,
    image_size=(32, 88),
    lidar_beams=4,
    lidar_azimuth_steps=64,
    occupancy_supersample=1,
    val_fraction=0.5,
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("surroundocc")
    get_format("surroundocc").writers.write_synthetic(root, CFG)
    return root


def test_synthetic_world_round_trip_exact(world) -> None:
    fmt = detect_format(world)
    assert fmt.name == "surroundocc"
    ds = fmt.open_split(world, "all", load_extras=True)
    assert len(ds) == 4 and ds.scenes == ["scene-0000", "scene-0001"] and ds.grid == surroundocc_grid()
    assert len(fmt.open_split(world, "train")) == 2 and len(fmt.open_split(world, "val")) == 2
    T_el = T_ego_from_lidar()
    scenes = {n: build_scene(CFG, k) for k, n in enumerate(ds.scenes)}
    for i, f in enumerate(ds.frames):
        s = ds[i]
        state = scene_state_at(scenes[f.scene], f.index_in_scene)
        T_gl = state.T_global_from_ego.double() @ T_el
        want = occ3d_to_nusc_occ(
            semantic_occupancy(state, surroundocc_grid(), T_gl, label_supersample(CFG, surroundocc_grid())).numpy()
        )
        assert np.array_equal(s.occupancy.numpy(), want.astype(np.int64))  # every voxel, every class
        assert {0, 255} <= set(np.unique(want).tolist()) and len(np.unique(want)) > 5
        assert torch.equal(s.mask_camera, s.occupancy != 255)
        assert torch.allclose(s.T_global_from_ego, T_gl, atol=1e-5)
        assert torch.equal(s.T_ego_from_lidar, torch.eye(4))
        for c, cam in enumerate(s.cam_names):  # camera -> LiDAR, from the annotations' camera -> ego
            assert torch.allclose(
                s.T_ego_from_cam[c].double(), invert_transform(T_el) @ T_ego_from_camera(cam), atol=1e-5
            )
        assert s.images.shape == (6, 3, 32, 88) and s.lidar.shape[1] == 4
        assert s.lidar_labels.max() <= 255 and s.lidar_labels.min() >= 1  # the layout's classes (no empty)


def test_label_file_layout_and_round_trip(tmp_path) -> None:
    rng = np.random.default_rng(0)
    dense = np.zeros(SURROUNDOCC_SHAPE, dtype=np.uint8)
    pick = rng.random(SURROUNDOCC_SHAPE) < 0.05
    dense[pick] = rng.choice([*range(1, 17), 255], int(pick.sum()))
    path = write_surroundocc_label(tmp_path / "a.pcd.bin.npy", dense)
    rows = np.load(path)
    assert rows.dtype == np.uint8 and rows.shape == (int(pick.sum()), 4)  # the smallest type that holds them
    x, y, z, c = rows[0]
    assert dense[x, y, z] == (255 if c == 0 else c)  # columns x, y, z, class; noise written as 0
    assert (rows[:, 3] == 0).sum() == (dense == 255).sum()
    assert np.array_equal(read_surroundocc_label(path), dense)
    np.save(tmp_path / "f.npy", rows.astype(np.float32))  # float files of whole numbers read alike
    assert np.array_equal(read_surroundocc_label(tmp_path / "f.npy"), dense)
    # a voxel listed twice with one class is harmless; with two classes it is refused, unless asked
    # for the released reading (the last row wins, as the released loader's dense fill), recorded
    np.save(tmp_path / "s.npy", np.array([[1, 2, 3, 4], [5, 5, 5, 2], [1, 2, 3, 4]]))
    assert read_surroundocc_label(tmp_path / "s.npy")[1, 2, 3] == 4
    for name, read in (("d.npy", read_surroundocc_label), ("p.npy", read_prediction)):
        np.save(tmp_path / name, np.array([[1, 2, 3, 4], [5, 5, 5, 2], [1, 2, 3, 9]], dtype=np.uint16))
        with pytest.raises(ValueError) as e:
            read(tmp_path / name)
        assert str(e.value) == (
            f"{tmp_path / name}: voxel (x, y, z) = (1, 2, 3) is listed twice with two classes, 4 (row 0) and 9 "
            "(row 2); occkit eval --allow-duplicate-voxels reads such files as the released code does (the last "
            "row wins)"
        )
        seen = DuplicateVoxels()
        assert read(tmp_path / name, seen)[1, 2, 3] == 9 and seen.files == [str(tmp_path / name)]
    p = write_prediction(tmp_path / "pred", "tok", np.where(dense == 255, 0, dense))
    assert np.load(p).dtype == np.uint16
    assert np.array_equal(read_prediction(p), np.where(dense == 255, 0, dense))
    assert get_format("surroundocc").predictions.index(tmp_path / "pred") == {"tok": p}


@pytest.mark.parametrize(
    "array, says",
    [
        (np.array([[200, 0, 0, 1]]), "outside the grid"),  # another grid's indices
        (np.array([[0, 0, 16, 1]]), "outside the grid"),
        (np.array([[0, 0, 0, 17]]), "class id 17 (1 voxels) outside the table 0..16"),
        (np.array([[0, 0, 0, -1]]), "class id -1 (1 voxels) outside the table"),
        (np.array([[0, 0, 0]]), "expected (N, 4)"),
        (np.array([[0.5, 0, 0, 1]]), "fractional"),
        (np.array([[0, 0, 0, 1]], dtype=np.complex64), "dtype complex64"),
        (np.array([[0, 0, 0, np.nan]]), "NaN"),
    ],
)
def test_bad_label_files_one_line_naming_the_file(tmp_path, array, says) -> None:
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(ValueError) as e:
        read_surroundocc_label(path)
    msg = str(e.value)
    assert msg.startswith(str(path)) and says in msg and "\n" not in msg


def test_missing_and_pickled_files(tmp_path, world) -> None:
    with pytest.raises(FileNotFoundError, match="no such SurroundOcc label file"):
        read_surroundocc_label(tmp_path / "none.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"obj\.npy: cannot read as \.npy"):
        read_surroundocc_label(tmp_path / "obj.npy")
    ds = SurroundOccDataset(world, "all", load_images=False, load_extras=False)
    path = ds.gt_path(ds.frames[0].token)
    assert path.parent == world / "nuscenes_occ" / "samples" and path.name.endswith(".pcd.bin.npy")
    assert detect_format(world).name == "surroundocc"
    assert get_format("surroundocc").detection.detect(tmp_path) is None


def test_metric_hand_counted() -> None:
    #              0  1  2  3    4  5  6  7
    gt = torch.tensor([0, 1, 1, 2, 255, 0, 2, 1]).view(1, 2, 2, 2)
    pred = torch.tensor([0, 1, 2, 2, 3, 1, 0, 1]).view(1, 2, 2, 2)
    m = NuScenesOccupancyMetric()
    m.update(pred, gt)
    out = m.compute()
    # class 1: gt {1, 2, 7}, pred {1, 5, 7}: tp 2, union 4; class 2: gt {3, 6}, pred {2, 3}: tp 1, union 3
    assert out["iou"]["barrier"] == pytest.approx(50.0)
    assert out["iou"]["bicycle"] == pytest.approx(100 / 3)
    assert math.isnan(out["iou"]["bus"])  # predicted only where the ground truth is ignored
    assert out["miou"] == pytest.approx((50 + 100 / 3) / 2)
    assert math.isnan(out["miou_all"])  # the released plain mean over 16 classes: NaN
    # not empty: gt {1, 2, 3, 6, 7}, pred {1, 2, 3, 5, 7} (voxel 4 ignored): tp 4
    assert out["geometry_iou"] == pytest.approx(100 * 4 / 6)
    assert out["geometry_precision"] == pytest.approx(80.0) and out["geometry_recall"] == pytest.approx(80.0)
    assert out["frames"] == 1 and list(out["iou"]) == list(NUSC_OCC_CLASSES[1:])
    # logits, Targets and two shards merged give the same counts
    a, b = NuScenesOccupancyMetric(), NuScenesOccupancyMetric()
    logits = torch.nn.functional.one_hot(pred, 17).permute(0, 4, 1, 2, 3).float()
    a.update(logits[:, :, :1], Targets(occupancy=gt[:, :1], tokens=["t"]))
    b.update(pred[:, 1:], gt[:, 1:])
    assert torch.equal(a.merge(b).counts, m.counts)
    assert a.frames == 2


def test_metric_all_classes_present_equals_released_mean() -> None:
    rng = np.random.default_rng(1)
    gt = torch.from_numpy(rng.integers(0, 17, (2, 6, 6, 4)))
    gt[0, 0, 0, :2] = 255
    pred = torch.from_numpy(rng.integers(0, 17, (2, 6, 6, 4)))
    m = NuScenesOccupancyMetric()
    m.update(pred, gt)
    out = m.compute()
    ious = []
    for c in range(1, 17):  # the per-frame counts of SurroundOcc's evaluation_semantic, summed
        v = gt != 255
        tp = ((gt == c) & (pred == c) & v).sum().item()
        ious.append(tp / (((gt == c) & v).sum().item() + ((pred == c) & v).sum().item() - tp))
    assert out["miou_all"] == pytest.approx(100 * np.mean(ious), abs=1e-12)
    assert out["miou"] == pytest.approx(out["miou_all"], abs=1e-12)
    assert get_format("surroundocc").scoring.metrics({})[0].compute().keys() == out.keys()


def test_rows_refuse_a_grid_of_another_shape() -> None:
    with pytest.raises(ValueError, match="expected \\(200, 200, 16\\)"):
        dense_to_rows(np.zeros((512, 512, 40), dtype=np.uint8))


@pytest.mark.skipif(
    not os.environ.get("OCCKIT_SLOW_TESTS"),
    reason="a minute on a loaded 2-core CPU: synth + train + predict + eval through the CLI; set OCCKIT_SLOW_TESTS=1",
)
def test_end_to_end_through_the_cli(tmp_path) -> None:
    """occkit synth --format surroundocc, 2 training steps of surroundocc-cpu, predict, eval: the folder's score
    equals the validation loop's on the same weights."""
    import json

    from occkit.cli import main
    from occkit.engine.data import eval_batches
    from occkit.engine.evaluate import evaluate
    from occkit.experiment import build_dataset, load_checkpoint_method

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        root, run, pred = tmp_path / "data", tmp_path / "run", tmp_path / "pred"
        synth = ["synth", "--format", "surroundocc", "--out", str(root), "--scenes", "2", "--frames", "1"]
        assert main([*synth, "--image-size", "32", "96", "--val-fraction", "0.5"]) == 0
        sets = [
            "model.neck_channels=16",
            "model.context_channels=8",
            "model.encoder_widths=[8,16]",
            "data.image_aug.out_hw=[32,96]",
            "optim.max_steps=2",
            "optim.warmup_steps=1",
            "train.val_every=2",
            "train.ckpt_every=2",
            "train.tensorboard=false",
        ]
        assert (
            main(["train", "surroundocc-cpu", "--data", str(root), "--out", str(run), "--no-progress", "--set", *sets])
            == 0
        )
        assert main(["predict", "--ckpt", str(run), "--data", str(root), "--out", str(pred), "--no-progress"]) == 0
        assert len(list(pred.glob("*.npy"))) == 1
        res = tmp_path / "eval.json"
        assert main(["eval", "--gt", str(root), "--pred", str(pred), "--json", str(res), "--no-progress"]) == 0
        files = json.loads(res.read_text())
        assert files["benchmark"] == "surroundocc" and files["frames"] == 1
        method, cfg, _, dev = load_checkpoint_method(run, "cpu")
        loop = evaluate(
            method, eval_batches(build_dataset(cfg, root, "val"), 1), dev, dataset_format="surroundocc", num_classes=17
        )
        assert loop["geometry_iou"] == pytest.approx(files["geometry_iou"], abs=1e-6)
        assert loop["miou"] == pytest.approx(files["miou"], abs=1e-6)
    finally:
        torch.set_num_threads(n)


def test_annotations_from_the_released_info_files(world, tmp_path) -> None:
    """The info files SurroundOcc / OpenOccupancy ship (here as JSON, the fields their converters
    write) give an annotations.json whose frames equal the originals."""
    import json
    import shutil

    from occkit.data.nusc_index import main as index_main
    from occkit.fileio import read_json

    ann = read_json(world / "annotations.json")
    infos = []
    for scene in ann["train_split"]:
        for token, e in ann["scene_infos"][scene].items():
            cams = {
                cam: {
                    "data_path": f"./data/nuscenes/{c['img_path']}",
                    "cam_intrinsic": c["intrinsic"],
                    "sensor2ego_translation": c["extrinsic"]["translation"],
                    "sensor2ego_rotation": c["extrinsic"]["rotation"],
                    "ego2global_translation": c["ego_pose"]["translation"],
                    "ego2global_rotation": c["ego_pose"]["rotation"],
                }
                for cam, c in e["camera_sensor"].items()
            }
            infos.append(
                {
                    "token": token,
                    "timestamp": e["timestamp"],
                    "scene_token": e["scene_token"],
                    "lidar_path": "./data/nuscenes/" + e["lidar_sensor"]["filename"],
                    "lidar_token": e["lidar_sensor"]["token"],
                    "lidar2ego_translation": e["lidar_sensor"]["extrinsic"]["translation"],
                    "lidar2ego_rotation": e["lidar_sensor"]["extrinsic"]["rotation"],
                    "ego2global_translation": e["ego_pose"]["translation"],
                    "ego2global_rotation": e["ego_pose"]["rotation"],
                    "prev": e["prev"],
                    "next": e["next"],
                    "cams": cams,
                }
            )
    (tmp_path / "infos.json").write_text(json.dumps({"infos": infos}))
    root = tmp_path / "root"
    shutil.copytree(world, root, ignore=shutil.ignore_patterns("annotations.json"))
    assert index_main(["--train", str(tmp_path / "infos.json"), "--out", str(root / "annotations.json")]) == 0
    a = SurroundOccDataset(world, "train", load_extras=False)
    b = SurroundOccDataset(root, "train", load_extras=False)
    assert a.tokens == b.tokens and len(b) == 2 and b.scenes == [infos[0]["scene_token"]]
    for i in range(len(a)):
        sa, sb = a[i], b[i]
        assert torch.equal(sa.occupancy, sb.occupancy) and torch.equal(sa.images, sb.images)
        assert torch.equal(sa.T_ego_from_cam, sb.T_ego_from_cam) and torch.equal(sa.intrinsics, sb.intrinsics)
        assert torch.equal(sa.T_global_from_ego, sb.T_global_from_ego)
    infos[0].pop("lidar2ego_rotation")
    (tmp_path / "bad.json").write_text(json.dumps(infos))
    with pytest.raises(ValueError, match=r"bad\.json: frame 0 \(token \w+\): lidar2ego_rotation missing"):
        from occkit.data.nusc_index import annotations_from_infos

        annotations_from_infos({"train": tmp_path / "bad.json"})


def test_eval_refuses_a_voxel_listed_twice_unless_asked(world, tmp_path, capsys) -> None:
    """occkit eval refuses a label or prediction file listing a voxel twice with two classes, in one
    line naming the file, the voxel and both classes; --allow-duplicate-voxels reads them as the
    released code does (the last row), says so in a warning and records it in the result."""
    import json
    import shutil

    from occkit.cli import main

    gt, pred = tmp_path / "gt", tmp_path / "pred"
    shutil.copytree(world, gt)
    ds = SurroundOccDataset(gt, "val", load_images=False, load_extras=False)
    for i, f in enumerate(ds.frames):
        write_prediction(pred, f.token, np.where(ds[i].occupancy.numpy() == 255, 0, ds[i].occupancy.numpy()))
    args = ["eval", "--gt", str(gt), "--pred", str(pred), "--no-progress"]
    assert main([*args, "--json", str(tmp_path / "clean.json")]) == 0
    clean = json.loads((tmp_path / "clean.json").read_text())
    # a first row giving a listed voxel another class: the released reading (last row) scores as before
    label, pfile = ds.gt_path(ds.frames[0].token), pred / f"{ds.frames[0].token}.npy"
    for path in (label, pfile):
        rows = np.load(path)
        twice = rows[:1].copy()
        twice[0, 3] = 1 if rows[0, 3] != 1 else 2
        np.save(path, np.concatenate([twice, rows]))
    capsys.readouterr()
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("occkit eval: error: ") and "is listed twice with two classes" in err[0]
    assert str(label) in err[0] or str(pfile) in err[0]
    assert main([*args, "--allow-duplicate-voxels", "--json", str(tmp_path / "dup.json")]) == 0
    out = capsys.readouterr().out
    assert "occkit eval: warning: --allow-duplicate-voxels: 2 files list a voxel twice with two classes" in out
    dup = json.loads((tmp_path / "dup.json").read_text())
    assert dup.pop("duplicate_voxels") == {"policy": "last row (SurroundOcc's released reading)", "files": 2}
    assert dup == clean
    assert main([*args, "--format", "occ3d", "--allow-duplicate-voxels"]) == 1
    assert "--allow-duplicate-voxels: not taken by the" in capsys.readouterr().err
