"""SSCBench-KITTI-360 as a format: the class map (hand-checked against SSCBench's kitti360.yaml),
the label and invalid conventions of its preprocessing, the metric on small arrays, write -> read on a
tiny synthetic world, and bad input."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from occkit.data import kitti360 as k
from occkit.data.semantickitti import SSC_SHAPE, camera_from_calib, read_label, write_label
from occkit.formats import get_format
from occkit.formats.kitti360 import SSCBenchMetric
from occkit.labels import (
    KITTI360_CLASSES,
    KITTI360_PALETTE,
    OCC3D_CLASSES,
    kitti360_inverse_lut,
    kitti360_remap_lut,
)
from occkit.metrics.ssc import SSCMetric
from occkit.scoring.folder import evaluate_predictions
from occkit.worlds.driving import SynthConfig
from occkit.worlds.driving.kitti_export import OCC3D_TO_KITTI360, occ3d_to_kitti360_raw

FMT = get_format("kitti360")


def test_registered():
    assert FMT.name == "kitti360" and FMT.modality == "monocular" and FMT.label_frame == "lidar"
    assert FMT.classes.names == KITTI360_CLASSES and FMT.classes.free == 0 and FMT.classes.ignore == 255
    assert FMT.grid.shape == (256, 256, 32) and FMT.splits == ("train", "val", "test")


def test_class_map_hand_checked():
    lut = kitti360_remap_lut(True)
    name = {raw: (KITTI360_CLASSES[lut[raw]] if lut[raw] != 255 else None) for raw in (0, 1, 10, 13, 16, 31, 32)}
    assert name == {0: "empty", 1: None, 10: "car", 13: "other-vehicle", 16: "other-vehicle", 31: None, 32: None}
    more = {raw: (KITTI360_CLASSES[lut[raw]] if lut[raw] != 255 else None) for raw in (40, 52, 60, 71, 99, 252, 253)}
    assert more == {40: "road", 52: "other-structure", 60: "road", 71: None, 99: "other-object", 252: "car", 253: None}
    assert len(KITTI360_CLASSES) == 19 and len(KITTI360_PALETTE) == 19
    assert KITTI360_PALETTE[1] == (100, 150, 245)  # car: the yaml's BGR [245, 150, 100]
    inv = kitti360_inverse_lut()
    assert inv[17] == 52 and inv[18] == 99 and inv[7] == 40 and inv[0] == 0
    assert (lut[inv] == np.arange(19)).all()  # every class survives the round trip through raw ids


def test_occ3d_to_kitti360():
    learn = kitti360_remap_lut(True)[occ3d_to_kitti360_raw(np.arange(18, dtype=np.uint8))]
    names = {OCC3D_CLASSES[c]: KITTI360_CLASSES[int(v)] for c, v in enumerate(learn)}
    assert names["car"] == "car" and names["free"] == "empty" and names["manmade"] == "building"
    assert names["traffic_cone"] == "other-object" and names["others"] == "other-object"
    assert names["driveable_surface"] == "road" and names["barrier"] == "fence" and len(OCC3D_TO_KITTI360) == 18


def test_labelled_voxels_are_never_invalid():
    raw = np.array([0, 0, 10, 71], dtype=np.uint16)
    invalid = np.array([1, 0, 1, 0], dtype=bool)
    assert k.labels_from_voxels(raw, invalid).tolist() == [255, 0, 1, 255]  # 71 (trunk) is ignored


def test_downsample_rule():
    lab = np.zeros((16, 16, 8), dtype=np.uint8)  # 2 x 2 x 1 blocks of 8^3 = 512
    lab[8:16, 0:8].reshape(-1)[:12] = 255  # block (1, 0): 500 empty + 12 ignored -> empty
    blk = lab[0:8, 8:16].reshape(-1).copy()
    blk[:262] = 255  # block (0, 1): 250 empty + 262 ignored -> ignored
    lab[0:8, 8:16] = blk.reshape(8, 8, 8)
    blk = np.zeros(512, dtype=np.uint8)
    blk[:100], blk[100:200] = 7, 1  # block (1, 1): 312 empty, a tie of car and road -> car (smallest id)
    lab[8:16, 8:16] = blk.reshape(8, 8, 8)
    out = k.downsample_labels(lab, 8)
    assert out.dtype == np.uint8 and out.shape == (2, 2, 1)
    assert out[:, :, 0].tolist() == [[0, 255], [0, 1]]


def _ssc_case():
    gt = torch.tensor([0, 1, 1, 2, 255, 0, 7, 7]).view(1, 2, 2, 2)
    pred = torch.tensor([0, 1, 2, 2, 5, 1, 7, 0]).view(1, 2, 2, 2)
    return pred, gt


def test_metric_small_arrays():
    pred, gt = _ssc_case()
    m = SSCBenchMetric()
    m.update(pred, gt)
    r = m.compute()
    e = 1e-5  # SSCBench's denominator term
    ious = {1: 1 / (3 + e), 2: 1 / (2 + e), 7: 1 / (2 + e)}  # tp / (tp + fp + fn + 1e-5), by hand
    assert r["iou"]["car"] == pytest.approx(100 * ious[1], abs=1e-12)
    assert r["iou"]["bicycle"] == pytest.approx(100 * ious[2], abs=1e-12)
    assert r["iou"]["other-vehicle"] == 0.0  # its one prediction falls on an ignored voxel
    assert r["ssc_miou"] == pytest.approx(100 * sum(ious.values()) / 18, abs=1e-12)  # classes 1..18, absent = 0
    assert r["completion_iou"] == pytest.approx(100 * 4 / 6) and r["geometry_iou"] == r["completion_iou"]
    assert r["precision"] == pytest.approx(80.0) and r["recall"] == pytest.approx(80.0) and r["miou"] == r["ssc_miou"]


def test_metric_empty_scene_scores_zero_not_nan():
    z = torch.zeros(1, 2, 2, 2, dtype=torch.long)
    sscbench, api = SSCBenchMetric(), SSCMetric(19, 255, KITTI360_CLASSES)
    sscbench.update(z, z)
    api.update(z, z)
    assert sscbench.compute()["completion_iou"] == 0.0 and np.isnan(api.compute()["completion_iou"])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = SynthConfig(
            scenes=2, frames=1, image_size=(48, 160), lidar_beams=16, lidar_azimuth_steps=360, occupancy_supersample=1
        )
        root = tmp_path_factory.mktemp("kitti360")
        FMT.writers.write_synthetic(root, cfg)
    finally:
        torch.set_num_threads(n)
    return root, cfg


def test_write_read_exact(world):
    root, cfg = world
    assert FMT.detection.detect(root) is not None
    val = FMT.open_split(root, "val")
    assert [val.token(i) for i in range(len(val))] == ["2013_05_28_drive_0006_sync/000000"]
    from_voxels = k.Kitti360Dataset(root, "all", load_images=False, labels="voxels")
    from_npy = k.Kitti360Dataset(root, "all", load_images=False, labels="preprocess")
    assert len(from_voxels) == len(from_npy) == 2
    for i in range(2):
        a, inv = from_voxels.load_gt_arrays(i)
        b, _ = from_npy.load_gt_arrays(i)
        assert np.array_equal(a, b) and a.dtype == np.uint8 and (a[inv] == 255).all()
        raw = read_label(from_voxels.voxel_path(i, "label"))
        assert (a[raw != 0] != 255).sum() == (kitti360_remap_lut(True)[raw] != 255)[raw != 0].sum()
        s, f = from_npy.frames[i]
        assert np.array_equal(np.load(k.preprocessed_paths(root, s, f)[1]), k.downsample_labels(b, 8))
    sample = val[0]
    assert sample.cam_names == ("image_00",) and tuple(sample.images.shape) == (1, 3, *cfg.image_size)
    assert sample.occupancy.shape == SSC_SHAPE and sample.extra["input_occupancy"].any()
    # the calibration written is the synthetic camera: P_rect_00 = K [I | 0], Tr = velodyne -> camera
    from occkit.geometry.transforms import invert_transform
    from occkit.worlds.driving.kitti_export import T_ego_from_velodyne
    from occkit.worlds.driving.sensors import T_ego_from_camera, camera_intrinsics

    K, T = camera_from_calib(*k.read_calibration(root))
    T_cv = (invert_transform(T_ego_from_camera("CAM_FRONT")) @ T_ego_from_velodyne()).numpy()
    assert np.allclose(K, camera_intrinsics("CAM_FRONT", cfg.image_size).numpy(), atol=1e-9)
    assert np.allclose(T, T_cv, atol=1e-9)
    assert np.allclose(sample.T_ego_from_cam[0].double().numpy(), np.linalg.inv(T_cv), atol=1e-6)


def test_file_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    inv = rng.random(SSC_SHAPE) < 0.3
    k.write_invalid(tmp_path / "a.invalid", inv)
    assert (tmp_path / "a.invalid").stat().st_size == inv.size  # one byte per voxel, as SSCBench ships them
    assert np.array_equal(k.read_invalid(tmp_path / "a.invalid"), inv)
    cls = rng.integers(0, 19, SSC_SHAPE).astype(np.uint8)
    p = FMT.predictions.write(tmp_path / "pred", "2013_05_28_drive_0006_sync/000005", cls)
    assert p == tmp_path / "pred" / "2013_05_28_drive_0006_sync" / "000005.label"
    assert FMT.predictions.index(tmp_path / "pred") == {"2013_05_28_drive_0006_sync/000005": p}
    assert np.array_equal(FMT.predictions.read(p), cls)


def test_evaluate_folder(world, tmp_path):
    root, _ = world
    ds = k.Kitti360Dataset(root, "val", load_images=False)
    lab, _ = ds.load_gt_arrays(0)
    FMT.predictions.write(tmp_path, ds.token(0), np.where(lab == 255, 0, lab))
    r = evaluate_predictions(FMT, root, tmp_path, "val")
    assert r["completion_iou"] == pytest.approx(100.0) and r["frames"] == 1
    present = [KITTI360_CLASSES[c] for c in np.unique(lab) if 0 < c < 255]
    assert present and all(r["iou"][n] == pytest.approx(100.0, abs=1e-2) for n in present)  # tp / (tp + 1e-5)
    (tmp_path / "none").mkdir()  # no frame matched: refused, never a table of zeros (--allow-missing or not)
    for allow in (False, True):
        with pytest.raises(ValueError, match="none of its predictions is of a frame of this ground truth"):
            evaluate_predictions(FMT, root, tmp_path / "none", "val", allow_missing=allow)


def test_semantickitti_predictions_on_kitti360_ground_truth(world, tmp_path):
    """configs/classmaps/semantickitti-kitti360.yaml, hand-checked, and occkit eval --class-map with it: a
    SemanticKITTI model's files scored on KITTI-360's labels (same grid, same raw ids)."""
    from occkit.cli import main
    from occkit.formats.classmap import DROPPED, load_class_map
    from occkit.labels import SEMANTICKITTI_CLASSES

    m = load_class_map("semantickitti-kitti360")
    assert (m.source, m.target) == ("semantickitti", "kitti360") and m.names[-1] == "empty" and len(m.names) == 17
    veg = m.names.index("vegetation")
    assert (
        m.source_lut[SEMANTICKITTI_CLASSES.index("trunk")] == veg == m.target_lut[KITTI360_CLASSES.index("vegetation")]
    )
    assert m.source_lut[SEMANTICKITTI_CLASSES.index("bicyclist")] == DROPPED
    assert m.target_lut[KITTI360_CLASSES.index("other-object")] == DROPPED
    assert m.source_lut[SEMANTICKITTI_CLASSES.index("road")] == m.target_lut[KITTI360_CLASSES.index("road")]

    root, _ = world
    ds = k.Kitti360Dataset(root, "val", load_images=False)
    lab, _ = ds.load_gt_arrays(0)
    to_sk = np.array(
        [SEMANTICKITTI_CLASSES.index(n) if n in SEMANTICKITTI_CLASSES else 0 for n in KITTI360_CLASSES] + [0] * 237,
        dtype=np.uint8,
    )
    pred, out = tmp_path / "pred", tmp_path / "scores.json"
    get_format("semantickitti").predictions.write(pred, ds.token(0), to_sk[lab])  # the same labels, as SemanticKITTI's
    args = ["eval", "--gt", str(root), "--pred", str(pred), "--class-map", "semantickitti-kitti360", "--json", str(out)]
    assert main(args) == 0
    import json

    r = json.loads(out.read_text())
    assert r["miou"] == pytest.approx(100.0) and r["geometry_iou"] == pytest.approx(100.0)


def _one_line(excinfo, path):
    msg = str(excinfo.value)
    assert str(path) in msg and "\n" not in msg, msg


def test_bad_input(tmp_path):
    wrong_grid = tmp_path / "000000_1_1.npy"
    np.save(wrong_grid, np.zeros((128, 128, 16), dtype=np.float32))
    with pytest.raises(ValueError) as e:
        k.read_preprocessed(wrong_grid)
    _one_line(e, wrong_grid)
    bad_class = tmp_path / "000001_1_1.npy"
    arr = np.zeros(SSC_SHAPE, dtype=np.float32)
    arr[0, 0, 0] = 19
    np.save(bad_class, arr)
    with pytest.raises(ValueError, match="class id 19 .* outside SSCBench-KITTI-360's classes") as e:
        k.read_preprocessed(bad_class)
    _one_line(e, bad_class)
    short = tmp_path / "short.label"
    short.write_bytes(np.zeros(1000, dtype="<u2").tobytes())
    with pytest.raises(ValueError) as e:
        k.read_prediction(short)
    _one_line(e, short)
    unknown = tmp_path / "unknown.label"
    raw = np.zeros(SSC_SHAPE, dtype=np.uint16)
    raw[1, 2, 3] = 7  # raw id 7 is no SemanticKITTI / KITTI-360 label
    unknown.write_bytes(raw.tobytes())
    with pytest.raises(ValueError, match=r"raw label ids \[7\]") as e:
        k.read_prediction(unknown)
    _one_line(e, unknown)
    ignored = tmp_path / "ignored.label"
    raw[1, 2, 3] = 71  # trunk: a raw id, but not a learning class of KITTI-360
    ignored.write_bytes(raw.tobytes())
    with pytest.raises(ValueError, match="no learning class") as e:
        k.read_prediction(ignored)
    _one_line(e, ignored)
    bad_inv = tmp_path / "x.invalid"
    bad_inv.write_bytes(b"\x00" * 1000)
    with pytest.raises(ValueError) as e:
        k.read_invalid(bad_inv)
    _one_line(e, bad_inv)
    with pytest.raises(FileNotFoundError) as e:
        k.Kitti360Dataset(tmp_path)
    _one_line(e, tmp_path / "data_2d_raw")
    with pytest.raises(ValueError, match="one camera"):
        FMT.open_split(tmp_path, "val", cameras=("image_2",))


@pytest.mark.skipif(
    not os.environ.get("OCCKIT_SLOW_TESTS"),
    reason="a minute on a loaded 2-core CPU (synth + train + predict + eval); set OCCKIT_SLOW_TESTS=1",
)
def test_end_to_end_through_the_cli(tmp_path):
    """occkit synth --format kitti360, kitti360-mono (tiny) 2 steps, predict, eval: the folder's
    scores are the validation loop's."""
    from occkit.cli import main
    from occkit.engine.data import eval_batches
    from occkit.engine.evaluate import evaluate, resolve_amp
    from occkit.experiment import build_dataset, load_checkpoint_method

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        root, run, pred = tmp_path / "world", tmp_path / "run", tmp_path / "pred"
        synth = ["synth", "--format", "kitti360", "--out", str(root), "--scenes", "2", "--frames", "1"]
        assert main([*synth, "--image-size", "32", "96", "--image-format", "png"]) == 0
        sets = [
            "model.neck_channels=16",
            "model.context_channels=8",
            "model.encoder_widths=[8,16]",
            "model.lift_downsample=[8,8,4]",
            "data.image_aug.out_hw=[32,96]",
            "optim.max_steps=2",
            "optim.warmup_steps=1",
            "train.val_every=2",
            "train.ckpt_every=2",
            "train.tensorboard=false",
        ]
        assert (
            main(["train", "kitti360-mono", "--data", str(root), "--out", str(run), "--no-progress", "--set", *sets])
            == 0
        )
        assert main(["predict", "--ckpt", str(run), "--data", str(root), "--out", str(pred), "--no-progress"]) == 0
        labels = sorted(p.relative_to(pred).as_posix() for p in pred.rglob("*.label"))
        assert labels == ["2013_05_28_drive_0006_sync/000000.label"]
        assert main(["eval", "--gt", str(root), "--pred", str(pred)]) == 0  # the format found from the folder
        method, cfg, _, dev = load_checkpoint_method(run, "cpu")
        ds = build_dataset(cfg, root, "val")
        amp = resolve_amp(dev, cfg.optim.amp, cfg.optim.cpu_bf16)  # as occkit predict runs it (bf16 on CPUs with it)
        loop = evaluate(method, eval_batches(ds, 1), dev, amp, dataset_format="kitti360", num_classes=19)
        files = evaluate_predictions(FMT, root, pred, "val")
        assert loop["ssc_miou"] == pytest.approx(files["ssc_miou"], abs=1e-6)
        assert loop["completion_iou"] == pytest.approx(files["completion_iou"], abs=1e-6)
    finally:
        torch.set_num_threads(n)


def test_label_without_its_invalid_is_refused(tmp_path):
    """A .label without its .invalid was scored as all valid (SSCBench's released code raises): eval,
    the dataset and convert's reader refuse it in one line naming the missing file."""
    seq = "2013_05_28_drive_0006_sync"
    vox = tmp_path / "data_2d_raw" / seq / "voxels"
    raw = np.zeros(SSC_SHAPE, np.uint16)
    raw[:4] = 40  # road
    write_label(vox / "000000.label", raw)
    missing = vox / "000000.invalid"
    ds = k.Kitti360Dataset(tmp_path, "val", load_images=False)
    for read in (lambda: ds.load_gt_arrays(0), lambda: ds[0], lambda: FMT.writers.label_writer.read(ds, 0, {})):
        with pytest.raises(FileNotFoundError, match="the .invalid of 000000.label") as e:
            read()
        _one_line(e, missing)
    FMT.predictions.write(tmp_path / "pred", f"{seq}/000000", np.zeros(SSC_SHAPE, np.uint8))
    with pytest.raises(FileNotFoundError) as e:
        evaluate_predictions(FMT, tmp_path, tmp_path / "pred", "val")
    _one_line(e, missing)
    k.write_invalid(missing, np.zeros(SSC_SHAPE, bool))  # with it, read as before
    assert evaluate_predictions(FMT, tmp_path, tmp_path / "pred", "val")["frames"] == 1
