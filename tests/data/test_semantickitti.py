"""SemanticKITTI I/O: bit packing (MSB first), label maps, calib, predictions, the dataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from occkit.data.semantickitti import (
    SSC_SHAPE,
    SemanticKITTIDataset,
    camera_from_calib,
    learning_to_raw,
    pack_bits,
    raw_to_learning,
    read_bitpacked,
    read_calib,
    read_label,
    read_ssc_prediction,
    unpack_bits,
    write_bitpacked,
    write_calib,
    write_label,
    write_ssc_prediction,
)


def test_bits_msb_first_and_round_trip(tmp_path):
    b = unpack_bits(np.array([0b10000001, 0b01000000], dtype=np.uint8), (1, 2, 8))
    assert b.reshape(-1).tolist() == [True] + [False] * 6 + [True] + [False, True] + [False] * 6
    assert pack_bits(b).tolist() == [0b10000001, 0b01000000]
    rng = np.random.default_rng(0)
    v = rng.random(SSC_SHAPE) < 0.3
    write_bitpacked(tmp_path / "a.invalid", v)
    assert (tmp_path / "a.invalid").stat().st_size == 256 * 256 * 32 // 8
    assert np.array_equal(read_bitpacked(tmp_path / "a.invalid"), v)
    (tmp_path / "short.bin").write_bytes(b"\x00" * 10)
    with pytest.raises(ValueError, match="short.bin"):
        read_bitpacked(tmp_path / "short.bin")
    with pytest.raises(FileNotFoundError, match="nope.bin"):
        read_bitpacked(tmp_path / "nope.bin")


def test_label_maps():
    raw = np.array([0, 1, 10, 52, 99, 252, 81, 44])
    # completion lut: raw 0 -> 0; ids mapping to 0 other than 0 (1 outlier, 52 other-structure,
    # 99 other-object) -> 255; an id outside the map is refused (test_unknown_raw_id_is_refused)
    assert raw_to_learning(raw).tolist() == [0, 255, 1, 255, 255, 1, 19, 10]
    assert learning_to_raw(np.arange(20)).tolist() == [
        0,
        10,
        11,
        15,
        18,
        20,
        30,
        31,
        32,
        40,
        44,
        48,
        49,
        50,
        51,
        70,
        71,
        72,
        80,
        81,
    ]
    assert learning_to_raw(np.arange(20)).dtype == np.uint16
    assert np.array_equal(raw_to_learning(learning_to_raw(np.arange(20))), np.arange(20))
    with pytest.raises(ValueError):
        learning_to_raw(np.array([20]))


def test_prediction_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    pred = rng.integers(0, 20, SSC_SHAPE).astype(np.uint8)
    p = write_ssc_prediction(tmp_path / "sequences/08/predictions/000000.label", torch.from_numpy(pred))
    assert p.stat().st_size == 256 * 256 * 32 * 2
    raw = read_label(p)
    assert raw.dtype == np.uint16 and raw[0, 0, 0] == learning_to_raw(pred[0, 0, 0])
    assert np.array_equal(read_ssc_prediction(p), pred)
    with pytest.raises(ValueError, match="shape"):
        write_ssc_prediction(tmp_path / "x.label", pred[:10])
    with pytest.raises(TypeError):
        write_label(tmp_path / "y.label", pred)


def test_calib_round_trip_and_camera():
    import tempfile
    from pathlib import Path

    K = np.array([[700.0, 0, 600], [0, 700, 180], [0, 0, 1]])
    P2 = K @ np.hstack([np.eye(3), np.array([[0.06], [0.0], [0.0]])])
    Tr = np.array([[0.0, -1, 0, 0], [0, 0, -1, -0.08], [1, 0, 0, -0.27], [0, 0, 0, 1]])
    with tempfile.TemporaryDirectory() as d:
        path = write_calib(Path(d) / "calib.txt", P2, Tr)
        c = read_calib(path)
        assert np.allclose(c["P2"], P2) and np.allclose(c["Tr"], Tr)
        Kc, T = camera_from_calib(c["P2"], c["Tr"])
        assert np.allclose(Kc, K)
        pts = np.array([[10.0, 2.0, -1.0, 1.0], [5.0, -3.0, 0.5, 1.0]])
        assert np.allclose((P2 @ Tr @ pts.T).T, (K @ (T @ pts.T)[:3]).T)
        (Path(d) / "bad.txt").write_text("P2: 1 2 3\n")
        with pytest.raises(ValueError, match="bad.txt"):
            read_calib(Path(d) / "bad.txt")


def test_dataset(tmp_path):
    seq = tmp_path / "sequences" / "08"
    K = np.array([[50.0, 0, 32], [0, 50, 16], [0, 0, 1]])
    Tr = np.array([[0.0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]])
    write_calib(seq / "calib.txt", K @ np.hstack([np.eye(3), np.zeros((3, 1))]), Tr)
    rng = np.random.default_rng(2)
    raw = np.zeros(SSC_SHAPE, np.uint16)
    raw[:10, :, :3] = 40  # road
    raw[0, 0, 0] = 52  # ignored
    inv = np.zeros(SSC_SHAPE, bool)
    inv[200:] = True
    for f in ("000000", "000005"):
        write_label(seq / "voxels" / f"{f}.label", raw)
        write_bitpacked(seq / "voxels" / f"{f}.invalid", inv)
        write_bitpacked(seq / "voxels" / f"{f}.bin", rng.random(SSC_SHAPE) < 0.01)
        (seq / "image_2").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((32, 64, 3), np.uint8)).save(seq / "image_2" / f"{f}.png")
    ds = SemanticKITTIDataset(tmp_path, "val")
    assert len(ds) == 2 and ds.token(1) == "08/000005"
    s = ds[0]
    assert s.images.shape == (1, 3, 32, 64)
    assert s.occupancy.shape == SSC_SHAPE and int(s.occupancy[5, 5, 1]) == 9 and int(s.occupancy[0, 0, 0]) == 255
    assert not bool(s.mask_camera[210, 0, 0]) and bool(s.mask_camera[0, 0, 0])
    assert s.extra["input_occupancy"].dtype == torch.bool
    # camera at the LiDAR origin looking along +x: T_ego_from_cam maps cam z to lidar x
    assert torch.allclose(s.T_ego_from_cam[0, :3, 2], torch.tensor([1.0, 0, 0]))
    assert torch.allclose(s.intrinsics[0], torch.from_numpy(K).float())
    with pytest.raises(FileNotFoundError, match="sequences"):
        SemanticKITTIDataset(tmp_path / "nothing")


def _tiny_layout(root, frames=("000000",), hw=(32, 64)):
    seq = root / "sequences" / "08"
    K = np.array([[50.0, 0, 32], [0, 50, 16], [0, 0, 1]])
    write_calib(seq / "calib.txt", K @ np.hstack([np.eye(3), np.zeros((3, 1))]), np.eye(4))
    for f in frames:
        write_label(seq / "voxels" / f"{f}.label", np.zeros(SSC_SHAPE, np.uint16))
        write_bitpacked(seq / "voxels" / f"{f}.invalid", np.zeros(SSC_SHAPE, bool))
        (seq / "image_2").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((*hw, 3), np.uint8)).save(seq / "image_2" / f"{f}.png")
    return seq


def test_dataset_synthetic_extras(tmp_path):
    """extras/<NNNNNN>.npz fills depth / semantics_2d / instance_2d when asked; instances.npz and
    objects.json read through read_instances / objects / instance_names; bad files name themselves."""
    from occkit.fileio import save_npz_atomic, write_json_atomic

    seq = _tiny_layout(tmp_path, ("000000", "000001"))
    H, W = 32, 64
    depth = np.linspace(1, 30, H * W, dtype=np.float32).reshape(H, W)
    sem = np.full((H, W), 17, np.uint8)
    sem[20:] = 11
    inst = np.zeros((H, W), np.int32)
    inst[5:9, 10:14] = 3
    sem[5:9, 10:14] = 4
    save_npz_atomic(seq / "extras" / "000000.npz", depth=depth, semantics=sem, instance=inst)
    vox = np.zeros(SSC_SHAPE, np.int32)
    vox[10, 128, 10] = 3
    save_npz_atomic(seq / "extras" / "000000.instances.npz", instance=vox)
    write_json_atomic(
        seq / "extras" / "000000.objects.json",
        {"token": "08/000000", "objects": [{"instance": 3, "name": "sedan", "class_id": 4}]},
    )

    plain = SemanticKITTIDataset(tmp_path, "val")
    assert plain[0].depth is None and plain[0].semantics_2d is None  # not asked
    ds = SemanticKITTIDataset(tmp_path, "val", load_extras=True)
    s = ds[0]
    assert (
        s.depth.shape == (1, H, W)
        and s.depth.dtype == torch.float32
        and torch.equal(s.depth[0], torch.from_numpy(depth))
    )
    assert (
        s.semantics_2d.dtype == torch.long and int(s.semantics_2d[0, 6, 11]) == 4 and int(s.semantics_2d[0, 0, 0]) == 17
    )
    assert s.instance_2d.dtype == torch.long and int(s.instance_2d[0, 6, 11]) == 3
    assert ds[1].depth is None  # a frame without extras
    assert np.array_equal(ds.read_instances("08/000000"), vox) and ds.read_instances("08/000001") is None
    assert (
        ds.instance_names("08/000000") == {3: "sedan"}
        and ds.objects("08/000001") == []
        and ds.instance_names("08/000001") == {}
    )
    assert ds.extras_path("08/000001", ".objects.json") == seq / "extras" / "000001.objects.json"
    with pytest.raises(KeyError, match="09/000000"):
        ds.objects("09/000000")

    save_npz_atomic(seq / "extras" / "000001.instances.npz", instance=vox.astype(np.int16))
    with pytest.raises(ValueError, match="000001.instances.npz"):
        ds.read_instances("08/000001")
    save_npz_atomic(seq / "extras" / "000001.npz", depth=depth, semantics=sem.astype(np.int64), instance=inst)
    with pytest.raises(ValueError, match="000001.npz"):
        ds[1]
    save_npz_atomic(seq / "extras" / "000001.npz", depth=depth[:16], semantics=sem[:16], instance=inst[:16])
    with pytest.raises(ValueError, match="000001.npz"):
        ds[1]  # maps that do not fit image_2
    write_json_atomic(seq / "extras" / "000001.objects.json", {"objects": [{"name": "sedan"}]})
    with pytest.raises(ValueError, match="000001.objects.json"):
        ds.instance_names("08/000001")


def test_label_without_its_invalid_is_refused_everywhere(tmp_path, capsys):
    """A .label without its .invalid would be scored as all valid (the official evaluation reads
    both): eval's ground truth, training samples and convert's reader refuse it in one line naming
    the missing file."""
    from occkit.cli import main
    from occkit.formats import get_format

    seq = _tiny_layout(tmp_path / "gt")
    (seq / "voxels" / "000000.invalid").unlink()
    missing = seq / "voxels" / "000000.invalid"
    ds = SemanticKITTIDataset(tmp_path / "gt", "val")
    for read in (
        lambda: ds.load_gt_arrays(0),
        lambda: ds[0],
        lambda: get_format("semantickitti").writers.label_writer.read(ds, 0, {}),
    ):
        with pytest.raises(FileNotFoundError, match="the .invalid of 000000.label") as e:
            read()
        assert str(missing) in str(e.value) and "\n" not in str(e.value)
    write_ssc_prediction(
        tmp_path / "pred" / "sequences" / "08" / "predictions" / "000000.label", np.zeros(SSC_SHAPE, np.uint8)
    )
    assert main(["eval", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred"), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("occkit eval: error: ") and f"{missing}: no such file" in err[-1]


def test_unknown_raw_id_is_refused(tmp_path):
    """A raw id outside SemanticKITTI's learning map (9999) was read as ignored: now refused in one
    line naming the file and the id, in ground truth (eval, training, convert) and predictions."""
    from occkit.formats import get_format

    seq = _tiny_layout(tmp_path)
    raw = np.zeros(SSC_SHAPE, np.uint16)
    raw[3, 4, 5] = 9999
    label = seq / "voxels" / "000000.label"
    write_label(label, raw)
    ds = SemanticKITTIDataset(tmp_path, "val")
    for read in (
        lambda: ds.load_gt_arrays(0),
        lambda: ds[0],
        lambda: get_format("semantickitti").writers.label_writer.read(ds, 0, {}),
    ):
        with pytest.raises(ValueError, match=r"raw label ids \[9999\] are not in SemanticKITTI's learning map") as e:
            read()
        assert str(e.value).startswith(f"{label}: ") and "\n" not in str(e.value)
    with pytest.raises(ValueError, match=r"raw label ids \[9999\]") as e:
        read_ssc_prediction(label)
    assert str(label) in str(e.value)
    with pytest.raises(ValueError, match=r"\[300\]"):
        raw_to_learning(np.array([0, 300]))  # inside the released table's padding: refused all the same


def test_a_prediction_holding_a_raw_id_the_learning_map_ignores_is_refused_naming_file_and_id(tmp_path):
    from occkit.formats import get_format

    raw = np.zeros(SSC_SHAPE, dtype=np.uint16)
    raw[1, 2, 3] = 52  # "other-structure": a raw id SemanticKITTI's completion map ignores (255)
    path = write_label(tmp_path / "sequences/08/predictions/000000.label", raw)
    with pytest.raises(ValueError, match=r"raw ids \[52\] that are no learning class") as e:
        get_format("semantickitti").predictions.read(path)
    assert str(e.value).startswith(f"{path}: ") and "\n" not in str(e.value)
    assert list(get_format("semantickitti").predictions.index(tmp_path)) == ["08/000000"]
