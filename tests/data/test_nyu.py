"""NYUv2 SSC layout (MonoScene's depthbin): .bin run lengths, depth PNGs, the dataset, the metric."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from occkit.data.nyu import (
    NYU_FILE_SHAPE,
    NYUDataset,
    downsample_target,
    encode_bin,
    file_to_xyz,
    read_bin,
    read_depth_png,
    rle_decode,
    rle_encode,
    voxel_projection,
    write_bin,
    write_depth_png,
)
from occkit.labels import NYU_CLASS_TO_RAW, NYU_RAW_TO_CLASS
from occkit.losses.monoscene import downsample_labels
from occkit.metrics.ssc import nyu_ssc_metric

N = int(np.prod(NYU_FILE_SHAPE))


def _pose(t=(0.5, -0.2, 1.4)) -> np.ndarray:
    """Camera looking along world +y, image down = world -z."""
    T = np.eye(4)
    T[:3, :3] = [[1, 0, 0], [0, 0, 1], [0, -1, 0]]
    T[:3, 3] = t
    return T


def test_rle_hand_checked():
    assert rle_encode(np.array([3, 3, 3, 0, 0, 255], np.uint8)).tolist() == [3, 3, 0, 2, 255, 1]
    assert rle_decode(np.array([3, 3, 0, 2, 255, 1]), 6).tolist() == [3, 3, 3, 0, 0, 255]
    with pytest.raises(ValueError, match="cover 5 voxels, expected 6"):
        rle_decode(np.array([3, 3, 0, 2]), 6, "x.bin")


def test_class_tables_round_trip():
    # every class has a raw id that maps back to it (MonoScene's 37 -> 12 map)
    assert len(NYU_RAW_TO_CLASS) == 37
    assert [NYU_RAW_TO_CLASS[r] for r in NYU_CLASS_TO_RAW] == list(range(12))
    assert NYU_CLASS_TO_RAW[5] == 6 and NYU_CLASS_TO_RAW[11] == 5 and NYU_CLASS_TO_RAW[9] == 16


def test_bin_bytes_hand_checked(tmp_path):
    labels = np.zeros(NYU_FILE_SHAPE, np.uint8)
    labels[0, 0, 1] = 5  # chair: raw id 6, at flat index 1
    labels[-1, -1, -1] = 255
    data = encode_bin([1.0, 2.0, -0.5], _pose(), labels)
    assert np.frombuffer(data[:12], "<f4").tolist() == [1.0, 2.0, -0.5]
    assert np.allclose(np.frombuffer(data[12:76], "<f4").reshape(4, 4), _pose())
    assert np.frombuffer(data[76:], "<u4").tolist() == [0, 1, 6, 1, 0, N - 3, 255, 1]
    p = tmp_path / "NYU0001_0000.bin"
    p.write_bytes(data)
    v = read_bin(p)
    assert np.array_equal(v.labels, labels) and v.origin.tolist() == [1.0, 2.0, -0.5]


def test_bin_round_trip_exact(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.choice(np.array([0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 255], np.uint8), NYU_FILE_SHAPE)
    pose = _pose((0.123456, 7.5, -1.25))
    write_bin(tmp_path / "a.bin", [0.1, 0.2, 0.3], pose, labels)
    v = read_bin(tmp_path / "a.bin")
    assert np.array_equal(v.labels, labels)
    assert np.array_equal(v.pose, pose.astype(np.float32))
    assert v.origin.dtype == np.float32 and np.allclose(v.origin, [0.1, 0.2, 0.3])


def _valid_bytes():
    return encode_bin([0, 0, 0], _pose(), np.zeros(NYU_FILE_SHAPE, np.uint8))


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda b: b[:-4], "bytes is not a NYU .bin"),
        (lambda b: b[:50], "bytes is not a NYU .bin"),
        (lambda b: b[:-8] + np.array([0, 5], "<u4").tobytes(), "the runs cover"),
        (lambda b: b[:76] + np.array([40, N], "<u4").tobytes(), "are not NYU ids"),
        (lambda b: b[:12] + (2 * _pose()).astype("<f4").tobytes() + b[76:], "not rigid"),
        (lambda b: b[:12] + np.full(16, np.nan, "<f4").tobytes() + b[76:], "not a finite"),
    ],
)
def test_bin_bad_input_names_the_file(tmp_path, mutate, message):
    p = tmp_path / "NYU0002_0000.bin"
    p.write_bytes(mutate(_valid_bytes()))
    with pytest.raises(ValueError, match=message) as e:
        read_bin(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_depth_png_round_trip_and_bit_order(tmp_path):
    d = np.zeros((480, 640), np.float32)
    d[0, 0], d[1, 1], d[2, 2] = 1.234, 8.0, 9.5  # 9.5 m is past the 13-bit range: the rotation keeps it
    write_depth_png(tmp_path / "d.png", d)
    raw = np.asarray(Image.open(tmp_path / "d.png"))
    assert raw.dtype == np.uint16 and raw[0, 0] == 1234 * 8 and raw[1, 1] / 8000 == 8.0
    back = read_depth_png(tmp_path / "d.png")
    assert np.allclose(back, d, atol=5e-4)
    write_depth_png(tmp_path / "small.png", np.zeros((48, 64), np.float32))
    with pytest.raises(ValueError, match="small.png: depth image is 64x48, expected 640x480"):
        read_depth_png(tmp_path / "small.png")


def test_downsample_matches_sscnet_rule():
    rng = np.random.default_rng(1)
    a = rng.choice(np.array([0, 0, 0, 0, 2, 5, 11, 255], np.uint8), (48, 24, 16))
    ref = downsample_labels(torch.from_numpy(a)[None].long(), (4, 4, 4), 0, 255, 12)[0]
    assert torch.equal(downsample_target(a), ref)
    # hand-checked blocks (factor 2, 8 voxels, threshold 0.95 * 8 = 7.6)
    b = np.zeros((4, 2, 2), np.uint8)
    b[0:2] = [[[0, 0], [0, 255]], [[255, 255], [255, 0]]]  # 8 empty-or-unknown, 3 empty < 5 unknown: 255
    b[2:4] = [[[5, 5], [7, 7]], [[0, 0], [0, 0]]]  # 4 unknown-free of 8: tie 5 vs 7 -> the smaller, 5
    assert downsample_target(b, 2).view(-1).tolist() == [255, 5]


def _write_frame(root, folder, name, labels, origin, pose, size=(480, 640)):
    (root / folder).mkdir(parents=True, exist_ok=True)
    write_bin(root / folder / f"{name}.bin", origin, pose, labels)
    Image.fromarray(np.full((*size, 3), 128, np.uint8)).save(root / folder / f"{name}_color.jpg")
    write_depth_png(root / folder / f"{name}.png", np.full(size, 2.0, np.float32))


def test_dataset_sample_axes_and_frames(tmp_path):
    labels = np.zeros(NYU_FILE_SHAPE, np.uint8)
    labels[8:12, 20:24, 4:8] = 6  # a bed block: file (x, z, y) coarse index (2, 5, 1)
    labels[:, :, 236:] = 255
    origin, pose = np.array([-2.0, 0.5, -0.06]), _pose()
    _write_frame(tmp_path, "NYUtrain", "NYU0003_0002", labels, origin, pose)
    ds = NYUDataset(tmp_path, "train", load_depth=True)
    assert len(ds) == 1 and ds.token(0) == "NYU0003_0002"
    s = ds[0]
    assert s.occupancy.shape == (60, 60, 36) and s.scene == "NYU0003" and s.timestamp == 2
    assert int(s.occupancy[2, 1, 5]) == 6 and int((s.occupancy == 6).sum()) == 1
    # the frames as every format's: token and scene; frame_labels the scored target and its known voxels
    assert ds.frames[0].token == "NYU0003_0002" and ds.frames[0].scene == "NYU0003" and ds.scenes == ["NYU0003"]
    assert ds.tokens == ["NYU0003_0002"] and ds.cameras == ("kinect",) and ds.format_name == "nyu"
    labels_xyz, scored, where = ds.frame_labels(0)
    assert labels_xyz.dtype == np.uint8 and np.array_equal(labels_xyz, s.occupancy.numpy())
    assert np.array_equal(scored, labels_xyz != 255) and where.name == "NYU0003_0002.bin"
    assert bool((s.occupancy[:, 59, :] == 255).all()) and int((s.occupancy == 255).sum()) == 60 * 36
    expected = np.eye(4)
    expected[:3, :3] = pose[:3, :3]
    expected[:3, 3] = pose[:3, 3] - origin
    assert np.allclose(s.T_ego_from_cam[0].numpy(), expected, atol=1e-6)
    assert np.allclose(s.T_global_from_ego[:3, 3].numpy(), origin, atol=1e-6)
    assert s.images.shape == (1, 3, 480, 640) and s.depth.shape == (1, 480, 640)
    K = torch.tensor([[518.8579, 0, 320], [0, 518.8579, 240], [0, 0, 1]], dtype=torch.float32)
    assert torch.equal(s.intrinsics[0], K)
    assert torch.equal(file_to_xyz(file_to_xyz(s.occupancy)), s.occupancy)


def test_dataset_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a NYUv2 SSC layout"):
        NYUDataset(tmp_path)
    labels = np.zeros(NYU_FILE_SHAPE, np.uint8)
    _write_frame(tmp_path, "NYUtest", "NYU0000_0000", labels, [0, 0, 0], _pose(), size=(240, 320))
    ds = NYUDataset(tmp_path, "test", load_depth=True)
    with pytest.raises(ValueError, match="NYU0000_0000_color.jpg: image is 320x240, expected 640x480"):
        ds[0]
    with pytest.raises(ValueError, match="split must be one of"):
        NYUDataset(tmp_path, "nope")


def test_voxel_projection_hand_checked():
    # camera at the world origin looking along +y; voxel (0, 0, 0)'s centre 1 m ahead on the axis
    pix, fov, z = voxel_projection(np.array([-0.04, 0.96, -0.04]), _pose((0, 0, 0)))
    assert pix[0].tolist() == [320, 240] and bool(fov[0]) and abs(float(z[0]) - 1.0) < 1e-6
    i = (1 * 60 + 0) * 36 + 0  # voxel (1, 0, 0): 8 cm to the right, u = 320 + 518.8579 * 0.08 = 361.5
    assert pix[i].tolist() == [362, 240]
    j = (0 * 60 + 0) * 36 + 1  # voxel (0, 0, 1): 8 cm up, v = 240 - 41.5 -> 198 (rounded half to even)
    assert pix[j].tolist() == [320, 198]


def test_nyu_metric_hand_checked():
    gt = torch.tensor([0, 0, 1, 1, 2, 255]).view(1, 6, 1, 1)
    pred = torch.tensor([0, 1, 1, 2, 2, 2]).view(1, 6, 1, 1)
    m = nyu_ssc_metric()
    m.update(pred, gt)
    out = m.compute()
    # completion over the 5 known voxels: occupied gt {2, 3, 4}, occupied pred {1, 2, 3, 4}: tp 3, fp 1, fn 0
    assert out["completion_iou"] == pytest.approx(75.0)
    assert out["precision"] == pytest.approx(75.0) and out["recall"] == pytest.approx(100.0)
    # class 1: tp 1, fp 1, fn 1; class 2: tp 1, fp 1, fn 0; classes 3..11: 0
    iou1, iou2 = 1 / (3 + 1e-5), 1 / (2 + 1e-5)
    assert out["iou"]["ceiling"] == pytest.approx(100 * iou1, rel=1e-12)
    assert out["ssc_miou"] == pytest.approx(100 * (iou1 + iou2) / 11, rel=1e-12)
    assert out["miou"] == out["ssc_miou"] and out["geometry_iou"] == out["completion_iou"] and out["mask"] == "none"
    # as the format's metric: fed Targets, every known voxel counts whatever masks they carry
    from occkit.formats import Targets, get_format

    (m2,) = get_format("nyu").new_metrics(num_classes=12)
    hidden = torch.zeros(1, 6, 1, 1, dtype=torch.bool)
    m2.update(pred, Targets(occupancy=gt, tokens=["a"], mask_camera=hidden, mask_lidar=hidden))
    assert m2.compute()["iou"] == out["iou"] and m2.compute()["completion_iou"] == out["completion_iou"]
    with pytest.raises(ValueError, match="NYUv2 has 12 classes but the model predicts 18"):
        get_format("nyu").new_metrics(num_classes=18)


def test_nyu_format_registered_and_predictions_round_trip(tmp_path):
    from occkit.formats import detect_format, get_format

    fmt = get_format("nyu")
    assert fmt.modality == "monocular" and fmt.classes.free == 0 and fmt.classes.ignore == 255
    assert fmt.classes.names[9] == "tvs" and fmt.grid.shape == (60, 60, 36)
    assert fmt.world == "indoor" and fmt.cameras == ("kinect",) and get_format("occ3d").world == "driving"
    _write_frame(tmp_path, "NYUtest", "NYU0005_0001", np.zeros(NYU_FILE_SHAPE, np.uint8), [0, 0, 0], _pose())
    assert detect_format(tmp_path) is fmt
    ds = fmt.open_split(tmp_path, "val", load_images=False)
    assert len(ds) == 1 and ds.token(0) == "NYU0005_0001"
    labels = np.random.default_rng(0).integers(0, 12, (60, 60, 36)).astype(np.uint8)
    p = fmt.predictions.write(tmp_path / "pred", "NYU0005_0001", labels)
    assert fmt.predictions.index(tmp_path / "pred") == {"NYU0005_0001": p}
    assert np.array_equal(fmt.predictions.read(p), labels)
    np.savez(tmp_path / "bad.npz", semantics=np.full((60, 36, 60), 1, np.uint8))
    with pytest.raises(ValueError, match="bad.npz: 'semantics' has shape \\(60, 36, 60\\), expected \\(60, 60, 36\\)"):
        fmt.predictions.read(tmp_path / "bad.npz")
    np.savez(tmp_path / "bad2.npz", semantics=np.full((60, 60, 36), 12, np.uint8))
    with pytest.raises(ValueError, match="bad2.npz: 'semantics' has classes outside 0..11"):
        fmt.predictions.read(tmp_path / "bad2.npz")
    # the (all-empty) target scored against itself: no occupied voxel anywhere
    target = ds[0].occupancy.numpy().astype(np.uint8)
    fmt.predictions.write(tmp_path / "pred", "NYU0005_0001", target)
    from occkit.scoring.folder import evaluate_predictions

    assert fmt.scoring.evaluate_folder is None  # occkit's one scoring loop scores it
    r = evaluate_predictions(fmt, tmp_path, tmp_path / "pred", split="test")
    assert r["frames"] == 1 and r["completion_iou"] == 0.0 and r["precision"] == 0.0  # MonoScene's 0, not NaN
    assert r["benchmark"] == "nyu" and r["missing"] == 0
    assert fmt.metric_choices() == ("ssc", "miou")  # eval --metrics rayiou is refused before any work
    with pytest.raises(ValueError, match="the NYUv2 layout has one camera, kinect"):
        fmt.open_split(tmp_path, "test", cameras=("CAM_FRONT",))
