"""``occkit convert``: the resampling on tiny grids by hand, the class tables through the class maps
in both directions, round trips (identical where lossless; what is dropped counted where not),
resuming a stopped conversion, and one-line errors for bad input."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from occkit.cli import main
from occkit.convert import STATE_DIR, ConvertError, class_conversion, convert_dataset
from occkit.formats import detect_format, get_format
from occkit.geometry.grid import Grid
from occkit.labels import KITTI360_CLASSES, SEMANTICKITTI_CLASSES
from occkit.resampling import resample_index
from occkit.worlds.driving import SynthConfig

CFG = SynthConfig(
    scenes=2,
    frames=1,
    seed=3,
    image_size=(32, 88),
    lidar_beams=4,
    lidar_azimuth_steps=64,
    occupancy_supersample=1,
    val_fraction=0.5,
)


def frames_of(root: Path, fmt_name: str | None = None) -> dict[str, object]:
    """``{token: FrameLabels}`` of a dataset as its own label writer reads it."""
    fmt = get_format(fmt_name) if fmt_name else detect_format(root)
    ds = fmt.open_split(root, "all", load_images=False)
    return {ds.frames[i].token: fmt.writers.label_writer.read(ds, i, {}) for i in range(len(ds))}


# ------------------------------------------------------------------------------------------ by hand


def test_resampling_by_hand_on_tiny_grids() -> None:
    # source: 4 voxels of 0.5 m along x from 0 (1 m in y, z); target: 2 voxels of 1 m -> centres 0.5, 1.5
    src = Grid((0.0, 0.0, 0.0), (2.0, 1.0, 1.0), (0.5, 1.0, 1.0))
    coarse = Grid((0.0, 0.0, 0.0), (2.0, 1.0, 1.0), (1.0, 1.0, 1.0))
    # centre 0.5 lies in source voxel 1 ([0.5, 1.0)), centre 1.5 in voxel 3
    assert resample_index(src, coarse, None).tolist() == [1, 3]
    # a target shifted by -0.75 m: centres -0.25 (outside), 0.75 (voxel 1); a 1 m translation T_src_from_dst
    shifted = Grid((-0.75, 0.0, 0.0), (1.25, 1.0, 1.0), (1.0, 1.0, 1.0))
    assert resample_index(src, shifted, None).tolist() == [-1, 1]
    T = np.eye(4)
    T[0, 3] = 1.0  # target centres -0.25, 0.75 -> 0.75 (voxel 1), 1.75 (voxel 3)
    assert resample_index(src, shifted, T).tolist() == [1, 3]
    # one grid, no transform: nothing to resample
    assert resample_index(src, src, None) is None
    # a rotation by 180 degrees about z (the general path): target centres (0.25, 0.25, 0.25) and
    # (0.75, ...) of a 2 x 1 x 1 grid of 0.5 m from 0 go to (-0.25, -0.25) and (-0.75, -0.25) in the
    # source frame, which a source grid over [-1, 0) x [-0.5, 0) x [0, 0.5) holds in voxels 1 and 0
    R = np.diag([-1.0, -1.0, 1.0, 1.0])
    dst = Grid((0.0, 0.0, 0.0), (1.0, 0.5, 0.5), (0.5, 0.5, 0.5))
    rot_src = Grid((-1.0, -0.5, 0.0), (0.0, 0.0, 0.5), (0.5, 0.5, 0.5))
    assert resample_index(rot_src, dst, R).tolist() == [1, 0]


def test_class_tables_through_the_maps_both_ways() -> None:
    o, s = get_format("occ3d"), get_format("surroundocc")
    fwd = class_conversion(o, s, None)  # the one shipped map joining the tables is found
    assert fwd.class_map.name == "occ3d-surroundocc.yaml"
    assert fwd.lut[0] == 255 and fwd.dropped == (0,)  # Occ3D's others: no class of SurroundOcc's
    assert fwd.lut[17] == 0  # free -> empty
    assert all(fwd.lut[i] == i for i in range(1, 17))  # the 16 lidarseg classes keep their ids
    back = class_conversion(s, o, None)  # the same map read the other way
    assert back.lut[0] == 17 and all(back.lut[i] == i for i in range(1, 17)) and back.dropped == ()
    sk, k360 = get_format("semantickitti"), get_format("kitti360")
    a = class_conversion(sk, k360, "semantickitti-kitti360")
    veg = KITTI360_CLASSES.index("vegetation")
    trunk, sk_veg = SEMANTICKITTI_CLASSES.index("trunk"), SEMANTICKITTI_CLASSES.index("vegetation")
    assert a.lut[trunk] == veg and a.merged[veg] == (sk_veg, trunk)
    assert {SEMANTICKITTI_CLASSES[i] for i in a.dropped} == {"bicyclist", "motorcyclist"}
    b = class_conversion(k360, sk, "semantickitti-kitti360")
    assert b.lut[veg] == sk_veg and b.split[sk_veg] == ("vegetation", "trunk")  # written as the first
    assert {KITTI360_CLASSES[i] for i in b.dropped} == {"other-structure", "other-object"}
    # one class table: the identity, no map
    same = class_conversion(s, get_format("openoccupancy"), None)
    assert same.class_map is None and same.lut[:17].tolist() == list(range(17)) and same.lut[255] == 255


# ------------------------------------------------------------------------------------------ the nuScenes family


@pytest.fixture(scope="module")
def surroundocc_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("surroundocc")
    get_format("surroundocc").writers.write_synthetic(root, CFG)
    return root


def test_surroundocc_to_openoccupancy_and_back_is_identical(surroundocc_world, tmp_path) -> None:
    """0.5 m -> 0.2 m over a wider range keeps every voxel; back, each 0.5 m centre finds a 0.2 m
    voxel of its own 0.5 m voxel: the labels come back the same."""
    mid, back = tmp_path / "openocc", tmp_path / "back"
    r = convert_dataset(surroundocc_world, mid, "openoccupancy", split="val", progress=False)
    assert r["lossless"] and r["frames"] == 1 and r["class_map"] is None
    # the 0.2 m grid reaches 1.2 m beyond the 0.5 m one on each side in x and y: 6 voxels each side
    assert r["target_voxels_outside_source"] == (512 * 512 - 500 * 500) * 40
    assert detect_format(mid).name == "openoccupancy"
    r2 = convert_dataset(mid, back, "surroundocc", progress=False)
    assert not r2["lossless"] and r2["source_voxels_between_centres"] > 0  # 0.2 m -> 0.5 m loses resolution
    a, b = frames_of(surroundocc_world), frames_of(back)
    assert len(b) == 1 and set(b) < set(a)
    for t in b:
        assert np.array_equal(a[t].semantics, b[t].semantics), t
    # the index keeps the source's cameras and splits; the images are linked
    ann = json.loads((back / "annotations.json").read_text())
    src_ann = json.loads((surroundocc_world / "annotations.json").read_text())
    assert ann["train_split"] == [] and ann["val_split"] == src_ann["val_split"]
    ds = get_format("surroundocc").open_split(back, "val")
    assert len(ds) == 1 and ds[0].images.shape[-2:] == (32, 88)
    # occkit eval --class-map across the two grids: OpenOccupancy predictions (the 0.2 m labels) on the
    # SurroundOcc ground truth are brought back onto its grid exactly: every present class scores 100
    from occkit.data.lidar_frame import NUSC_OCC_CLASSES

    cmap = tmp_path / "same.yaml"
    common = "".join(f"  {n}: {{from: [{n}], to: [{n}]}}\n" for n in (*NUSC_OCC_CLASSES[1:], "empty"))
    cmap.write_text(f"from: openoccupancy\nto: surroundocc\ncommon:\n{common}")
    o = get_format("openoccupancy")
    for t, f in frames_of(mid).items():
        o.predictions.write(tmp_path / "pred", t, np.where(f.semantics == 255, 0, f.semantics))
    res = tmp_path / "res.json"
    argv = ["eval", "--gt", str(surroundocc_world), "--pred", str(tmp_path / "pred"), "--split", "val"]
    assert main([*argv, "--class-map", str(cmap), "--json", str(res), "--no-progress"]) == 0
    scores = json.loads(res.read_text())
    present = [v for v in scores["iou"].values() if v is not None and v == v]
    assert len(present) >= 3 and all(v == pytest.approx(100.0) for v in present)
    assert scores["geometry_iou"] == pytest.approx(100.0)


def test_occ3d_identity_and_to_the_lidar_frame_counted_by_hand(tiny_occ3d_root, tmp_path) -> None:
    src = frames_of(tiny_occ3d_root)
    same = tmp_path / "same"
    r = convert_dataset(tiny_occ3d_root, same, "occ3d", progress=False)
    assert r["lossless"] and r["frames"] == 4
    for t, f in frames_of(same).items():
        assert np.array_equal(f.semantics, src[t].semantics)
        for k in ("mask_camera", "mask_lidar"):
            assert np.array_equal(f.masks[k], src[t].masks[k])
    # to SurroundOcc: these annotations have no LiDAR: one line asking for --infos
    with pytest.raises(ConvertError, match=r"lidar -> ego transform.*--infos"):
        convert_dataset(tiny_occ3d_root, tmp_path / "x", "surroundocc", progress=False)
    ann = json.loads((tiny_occ3d_root / "annotations.json").read_text())
    infos = []
    for scene, frames in ann["scene_infos"].items():
        for token in frames:
            infos.append(
                {
                    "token": token,
                    "scene_name": scene,
                    "scene_token": f"st-{scene}",
                    "lidar_token": f"lidar-{token}",
                    "lidar_path": f"samples/LIDAR_TOP/{token}.pcd.bin",
                    "lidar2ego_translation": [0.0, 0.0, 1.0],
                    "lidar2ego_rotation": [1.0, 0.0, 0.0, 0.0],
                    "ego2global_translation": [0.0, 0.0, 0.0],
                    "ego2global_rotation": [1.0, 0.0, 0.0, 0.0],
                }
            )
    (tmp_path / "prep").mkdir()
    (tmp_path / "prep" / "infos.json").write_text(json.dumps({"infos": infos}))
    out = tmp_path / "surroundocc"
    r = convert_dataset(tiny_occ3d_root, out, "surroundocc", infos=tmp_path / "prep", progress=False)
    # by hand: SurroundOcc centres -49.75 + 0.5 k (x, y) fall in Occ3D's [-40, 40) for k = 20..179
    # (160), and -4.75 + 0.5 k + 1 m (z, the LiDAR 1 m above the ego origin) in [-1, 5.4) for
    # k = 6..15 (10): 160 * 160 * 10 of the 200 * 200 * 16 target voxels are covered
    assert r["target_voxels_outside_source"] == 4 * (200 * 200 * 16 - 160 * 160 * 10)
    others = sum(int((f.semantics == 0).sum()) for f in src.values())
    assert r["dropped_classes"] == {"others": others}  # Occ3D's others: dropped, every voxel counted
    unseen = {k: sum(int((~f.masks[k]).sum()) for f in src.values()) for k in ("mask_camera", "mask_lidar")}
    assert r["masks_dropped"] == unseen and not r["lossless"]
    assert detect_format(out).name == "surroundocc"
    got = frames_of(out)
    t = next(iter(src))
    # target voxel (100, 100, 8): centre (0.25, 0.25, -0.75) in the LiDAR frame, (0.25, 0.25, 0.25)
    # in the ego frame: Occ3D voxel (100, 100, 3) ([0, 0.4) x [0, 0.4) x [-0.2, 0.2) + ...)
    s = int(src[t].semantics[100, 100, 3])
    want = {0: 255, 17: 0}.get(s, s)
    assert int(got[t].semantics[100, 100, 8]) == want
    assert int(got[t].semantics[0, 0, 0]) == 255  # outside Occ3D's grid: ignored
    rep = json.loads((out / "convert_report.json").read_text())
    assert rep["dropped_classes"] == r["dropped_classes"]
    # occkit eval --class-map resamples predictions as occkit convert resamples labels
    from occkit.resampling import PredictionResampler

    s_fmt = get_format("surroundocc")
    gt = s_fmt.open_split(out, "all", load_images=False)
    lut = class_conversion(get_format("occ3d"), s_fmt, None).lut
    for t, f in src.items():
        pred, covered = PredictionResampler(get_format("occ3d"), s_fmt, gt)(t, f.semantics)
        assert covered.sum() == 160 * 160 * 10
        assert np.array_equal(np.where(covered, lut[pred], 255), got[t].semantics)


def test_a_stopped_conversion_resumes_and_other_settings_are_refused(tiny_occ3d_root, tmp_path) -> None:
    out = tmp_path / "out"
    convert_dataset(tiny_occ3d_root, out, "occ3d", progress=False)
    want = {p.relative_to(out): p.read_bytes() for p in sorted((out / "gts").rglob("*.npz"))}
    # stopped after two frames: their records kept, the rest and the index not written
    sides = sorted((out / STATE_DIR / "frames").iterdir())
    for p in sides[2:]:
        p.unlink()
    first_left = json.loads((out / STATE_DIR / "frames" / sides[0].name).read_text())["files"][0]
    (out / "annotations.json").unlink()
    (out / "convert_report.json").unlink()
    (out / first_left).unlink()  # a label file lost: its frame is written again
    r = convert_dataset(tiny_occ3d_root, out, "occ3d", progress=False)
    assert r["frames_resumed"] == 1 and r["frames"] == 4
    got = {p.relative_to(out): p.read_bytes() for p in sorted((out / "gts").rglob("*.npz"))}
    assert got.keys() == want.keys()
    for k in want:
        a = np.load(out / k)
        assert all(np.array_equal(a[n], np.load(tiny_occ3d_root / k)[n]) for n in a.files)
    assert not list(out.rglob(".*.tmp*"))
    with pytest.raises(ConvertError, match=r"other settings \(split differ"):
        convert_dataset(tiny_occ3d_root, out, "occ3d", split="val", progress=False)
    # --overwrite redoes it: the earlier conversion's files of the frames now left out are gone
    r = convert_dataset(tiny_occ3d_root, out, "occ3d", split="val", overwrite=True, progress=False)
    assert r["frames"] == 2 and len(list((out / "gts").rglob("*.npz"))) == 2


# ------------------------------------------------------------------------------------------ the KITTI family


@pytest.fixture(scope="module")
def kitti_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A hand-made SemanticKITTI folder: sequences 00 (train) and 08 (val), one frame each, every
    learning class and ignored voxels (raw 1), a tenth of the voxels invalid, a small image."""
    from PIL import Image

    from occkit.data.semantickitti import write_bitpacked, write_calib, write_label
    from occkit.labels import semantickitti_inverse_lut

    root = tmp_path_factory.mktemp("semantickitti")
    rng = np.random.default_rng(0)
    inverse = semantickitti_inverse_lut()
    for seq in ("00", "08"):
        d = root / "sequences" / seq
        learning = rng.integers(0, 20, size=(256, 256, 32))
        raw = inverse[learning]
        raw[rng.random(raw.shape) < 0.05] = 1  # outlier: ignored (255)
        write_label(d / "voxels" / "000000.label", raw.astype(np.uint16))
        write_bitpacked(d / "voxels" / "000000.invalid", rng.random(raw.shape) < 0.1)
        P2 = np.array([[50.0, 0, 16, 0], [0, 50.0, 8, 0], [0, 0, 1, 0]])
        Tr = np.array([[0.0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, -0.3]])
        write_calib(d / "calib.txt", P2, Tr)
        (d / "image_2").mkdir(parents=True)
        Image.fromarray(rng.integers(0, 255, size=(16, 32, 3), dtype=np.uint8)).save(d / "image_2" / "000000.png")
    (root / "splits.json").write_text(json.dumps({"train": ["00"], "val": ["08"]}))
    return root


def test_semantickitti_kitti360_round_trips(kitti_world, tmp_path) -> None:
    k360, back = tmp_path / "k360", tmp_path / "back"
    r = convert_dataset(kitti_world, k360, "kitti360", progress=False)
    src = frames_of(kitti_world)
    veg, trunk = SEMANTICKITTI_CLASSES.index("vegetation"), SEMANTICKITTI_CLASSES.index("trunk")
    count = {
        n: sum(int((f.semantics == SEMANTICKITTI_CLASSES.index(n)).sum()) for f in src.values())
        for n in SEMANTICKITTI_CLASSES
    }
    assert r["merged_classes"] == {"vegetation": {"vegetation": count["vegetation"], "trunk": count["trunk"]}}
    assert r["dropped_classes"] == {"bicyclist": count["bicyclist"], "motorcyclist": count["motorcyclist"]}
    assert count["trunk"] > 0 and count["bicyclist"] > 0 and not r["lossless"]
    assert detect_format(k360).name == "kitti360"
    ds = get_format("kitti360").open_split(k360, "val", load_images=True)
    assert len(ds) == 1 and ds[0].images.shape[-2:] == (16, 32)  # the split kept, the images linked
    K, T = ds._calib["08"]
    K0, T0 = get_format("semantickitti").open_split(kitti_world, "val", load_images=False)._calib["08"]
    assert np.allclose(K, K0) and np.allclose(T, T0)  # the calibration carried
    r = convert_dataset(k360, back, "semantickitti", progress=False)
    assert r["lossless"]  # nothing of KITTI-360's frames without other-structure / other-object is lost
    got = frames_of(back)
    for t, f in src.items():
        want = f.semantics.copy()
        want[want == trunk] = veg  # KITTI-360 has no trunk: written back as vegetation
        for name in ("bicyclist", "motorcyclist"):  # nor riders: ignored
            want[f.semantics == SEMANTICKITTI_CLASSES.index(name)] = 255
        assert np.array_equal(got[t].semantics, want), t
        assert np.array_equal(got[t].masks["invalid"], f.masks["invalid"]), t
    # KITTI-360's other-object has no SemanticKITTI class: put some in a frame, count them dropped
    k = get_format("kitti360")
    dsk = k.open_split(k360, "all", load_images=False)
    f0 = k.writers.label_writer.read(dsk, 0, {})
    f0.semantics[:3, :5, :2] = KITTI360_CLASSES.index("other-object")
    k.writers.label_writer.write(k360, f0)
    shutil.rmtree(back)
    r = convert_dataset(k360, back, "semantickitti", progress=False)
    assert r["dropped_classes"] == {"other-object": 30} and not r["lossless"]
    assert np.all(frames_of(back)[f0.token].semantics[:3, :5, :2] == 255)


# ------------------------------------------------------------------------------------------ bad input


def _one_line_error(capsys, argv: list[str]) -> str:
    assert main(argv) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_bad_input_one_line_errors(tiny_occ3d_root, tmp_path, capsys) -> None:
    base = ["convert", "--data", str(tiny_occ3d_root), "--out", str(tmp_path / "o")]
    msg = _one_line_error(capsys, [*base, "--to", "no-such"])
    assert "no-such" in msg and "occ3d" in msg and "semantickitti" in msg  # the formats listed
    msg = _one_line_error(capsys, [*base, "--to", "nyu"])
    assert "cannot write" in msg and "surroundocc" in msg
    msg = _one_line_error(capsys, [*base, "--to", "semantickitti"])
    assert "sensor rigs" in msg
    # a class map that leaves a class unmapped: named, with the map's file
    text = (Path(__file__).parents[2] / "configs" / "classmaps" / "occ3d-surroundocc.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("  vegetation: {from: [vegetation], to: [vegetation]}\n", ""))
    msg = _one_line_error(capsys, [*base, "--to", "surroundocc", "--class-map", str(bad)])
    assert str(bad) in msg and "'vegetation' is unmapped" in msg
    # a source folder of no known format
    (tmp_path / "empty").mkdir()
    empty = ["convert", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "o2"), "--to", "occ3d"]
    msg = _one_line_error(capsys, empty)
    assert "not a dataset of any known format" in msg and "--from" in msg
    # a target folder that holds another dataset
    other = tmp_path / "other"
    shutil.copytree(tiny_occ3d_root, other, ignore=shutil.ignore_patterns("gts", "imgs"))
    msg = _one_line_error(capsys, [*base[:3], "--out", str(other), "--to", "occ3d"])
    assert str(other) in msg and "occ3d" in msg
    assert not (tmp_path / "o").exists() and not (tmp_path / "o2").exists()


@pytest.mark.skipif(
    not os.environ.get("OCCKIT_SLOW_TESTS"),
    reason="writes the synthetic world twice (about half a minute): set OCCKIT_SLOW_TESTS=1",
)
def test_occ3d_to_surroundocc_agrees_with_the_world_written_in_surroundocc(tmp_path) -> None:
    """The frame transform checked against the scene: the synthetic world converted from Occ3D's
    ego-frame grid to SurroundOcc's LiDAR-frame grid agrees with the same world labelled in
    SurroundOcc's layout from the scene (a transform the wrong way round agrees on few voxels)."""
    occ3d, direct, out = tmp_path / "occ3d", tmp_path / "surroundocc", tmp_path / "converted"
    get_format("occ3d").writers.write_synthetic(occ3d, CFG)
    get_format("surroundocc").writers.write_synthetic(direct, CFG)
    ann = json.loads((occ3d / "annotations.json").read_text())
    infos = [  # the LiDAR file and token SurroundOcc names its files by (the extrinsic is in the annotations)
        {"token": t, "scene_name": s, "scene_token": s, "lidar_token": f"l{t}", "lidar_path": f"samples/L/{t}.bin"}
        | {"lidar2ego_translation": e["lidar_sensor"]["extrinsic"]["translation"]}
        | {"lidar2ego_rotation": e["lidar_sensor"]["extrinsic"]["rotation"]}
        | {"ego2global_translation": e["ego_pose"]["translation"], "ego2global_rotation": e["ego_pose"]["rotation"]}
        for s, frames in ann["scene_infos"].items()
        for t, e in frames.items()
    ]
    (tmp_path / "infos.json").write_text(json.dumps({"infos": infos}))
    convert_dataset(occ3d, out, "surroundocc", infos=tmp_path / "infos.json", progress=False)
    a, b = frames_of(out), frames_of(direct)
    assert a.keys() == b.keys()
    for t in a:
        x, y = a[t].semantics, b[t].semantics
        occupied = (y != 0) & (y != 255) & (x != 255)
        assert occupied.sum() > 1000 and (x[occupied] == y[occupied]).mean() > 0.9, t
