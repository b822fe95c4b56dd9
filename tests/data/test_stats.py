import json
import shutil

import numpy as np
import pytest

from occkit.cli import main
from occkit.data.occ3d import Occ3DDataset
from occkit.data.stats import DatasetStats, LabelCounts, dataset_stats
from occkit.formats.registry import get_format
from occkit.labels import OCC3D_NUM_CLASSES


def test_label_counts_hand_computed():
    sem = np.full((2, 2, 2), 17, np.uint8)
    sem[0, 0, 0] = 4
    sem[0, 0, 1] = 4
    sem[1, 1, 1] = 11
    cam = np.zeros((2, 2, 2), np.uint8)
    cam[0, 0, 0] = 1
    cam[1, 0, 0] = 1
    lid = np.zeros((2, 2, 2), bool)
    lid[1, 1, 1] = True
    c = LabelCounts(num_classes=OCC3D_NUM_CLASSES)
    c.add(sem, {"camera": cam, "lidar": lid})
    c.add(np.full((2, 2, 2), 17, np.uint8), {"camera": cam, "lidar": lid})
    assert c.frames == 2 and c.voxels == 16 and c.ignored == 0
    assert c.counts[4] == 2 and c.counts[11] == 1 and c.counts[17] == 13 and sum(c.counts) == 16
    assert c.counts_in["camera"][4] == 1 and c.counts_in["camera"][17] == 3
    assert c.counts_in["lidar"][11] == 1 and c.counts_in["lidar"][17] == 1
    assert c.frames_with_class[4] == 1 and c.frames_with_class[17] == 2
    assert c.mask_voxels == {"camera": 4, "lidar": 2} and c.all_masks_voxels == 0
    with pytest.raises(ValueError, match="mask camera"):
        c.add(sem, {"camera": np.zeros((2, 2, 3), np.uint8), "lidar": lid})
    with pytest.raises(ValueError, match="label 18 is not a class id of 0..17"):
        c.add(np.full((2, 2, 2), 18, np.uint8), {"camera": cam, "lidar": lid})


def test_label_counts_with_an_ignore_value_and_no_masks_of_its_own():
    """A NYUv2-like table: free 0, 255 unknown, counted apart; the scored mask counts only known voxels."""
    sem = np.array([0, 0, 3, 255, 255, 2, 3, 0], np.uint8).reshape(2, 2, 2)
    scored = sem != 255
    c = LabelCounts(num_classes=4, masks=("scored",), ignore=255)
    c.add(sem, {"scored": scored}, where="f.bin")
    assert c.voxels == 8 and c.ignored == 2
    assert c.counts == [3, 0, 1, 2] and c.counts_in["scored"] == [3, 0, 1, 2]
    assert c.mask_voxels == {"scored": 6} and c.frames_with_class == [1, 0, 1, 1]
    with pytest.raises(ValueError, match=r"f\.bin: label 7 is not a class id of 0..3 nor the ignore value 255"):
        c.add(np.full((2, 2, 2), 7, np.uint8), {"scored": scored}, where="f.bin")
    st = DatasetStats(
        root="r", split="all", format="nyu", class_names=("empty", "a", "b", "c"), free=0, num_scenes=1,
        num_frames=1, frames_per_scene={"s": 1}, image_size=None, cameras=(), labels=c,
    )  # fmt: skip
    d = st.to_dict()
    assert d["free_fraction"] == pytest.approx(3 / 6) and d["occupied_fraction"] == pytest.approx(3 / 6)
    assert d["ignored_fraction"] == pytest.approx(2 / 8) and d["scored_mask_fraction"] == pytest.approx(6 / 8)
    assert [r.get("fraction_of_occupied") for r in d["classes"]] == [
        None,
        0.0,
        pytest.approx(1 / 3),
        pytest.approx(2 / 3),
    ]
    assert d["classes_present"] == [2, 3] and d["free_class"] == "empty" and "both_masks_fraction" not in d
    assert "ignored (unknown) 25.00% of voxels" in st.format_table()


def test_dataset_stats_match_direct_counts(tiny_occ3d_root):
    ds = Occ3DDataset(tiny_occ3d_root, split="all", load_images=False)
    classes = get_format("occ3d").classes
    st = dataset_stats(
        ds, classes, format_name="occ3d", root=tiny_occ3d_root, split="all", image_size=(24, 64), progress=False
    )
    counts = np.zeros(18, np.int64)
    cam_counts = np.zeros(18, np.int64)
    cam_vox = 0
    for f in ds.frames:
        z = np.load(ds.gt_path(f.token))
        sem, mc = z["semantics"], z["mask_camera"].astype(bool)
        for c in range(18):
            counts[c] += int((sem == c).sum())
            cam_counts[c] += int(((sem == c) & mc).sum())
        cam_vox += int(mc.sum())
    assert st.labels.counts == counts.tolist()
    assert st.labels.counts_in["camera"] == cam_counts.tolist()
    d = st.to_dict()
    assert d["num_frames"] == 4 and d["num_scenes"] == 2
    assert d["frames_per_scene"] == {"scene-0000": 2, "scene-0001": 2}
    assert d["image_size"] == {"height": 24, "width": 64}
    assert d["free_fraction"] == pytest.approx(counts[17] / counts.sum())
    assert d["camera_mask_fraction"] == pytest.approx(cam_vox / counts.sum())
    occ = counts[:17].sum()
    for c in range(17):
        assert d["classes"][c]["fraction_of_occupied"] == pytest.approx(counts[c] / occ)
    assert sum(r["fraction_of_occupied"] for r in d["classes"][:17]) == pytest.approx(1.0)
    assert d["num_classes_present"] == int((counts[:17] > 0).sum())
    table = st.format_table()
    assert "driveable_surface" in table and "frames 4" in table


def test_stats_cli_json_and_split(tiny_occ3d_root, tmp_path, capsys):
    out = tmp_path / "s.json"
    assert main(["stats", str(tiny_occ3d_root), "--json", str(out), "--split", "train", "--no-progress"]) == 0
    d = json.loads(out.read_text())
    assert d["split"] == "train" and d["num_scenes"] == 1 and d["num_frames"] == 2
    assert "vegetation" in capsys.readouterr().out


def test_stats_errors(tiny_occ3d_root, tmp_path, capsys):
    assert main(["stats", str(tmp_path / "nowhere")]) == 1
    assert "nowhere" in capsys.readouterr().err
    root = tmp_path / "copy"
    shutil.copytree(tiny_occ3d_root, root)
    ds = Occ3DDataset(root, split="all", load_images=False)
    bad = ds.gt_path(ds.frames[-1].token)
    bad.write_bytes(b"garbage")
    assert main(["stats", str(root), "--no-progress"]) == 1
    assert "labels.npz" in capsys.readouterr().err


def test_stats_of_a_surroundocc_world_against_its_label_files(tmp_path, capsys):
    """``occkit stats`` on a format with no masks of its own, detected from the folder: the class counts
    are those of the sparse ``(N, 4)`` label files read with numpy (every voxel not listed is empty; a
    listed class 0 is LiDAR noise, ignored)."""
    from occkit.formats import get_format
    from occkit.worlds.driving import SynthConfig

    cfg = SynthConfig(scenes=1, frames=2, seed=3, image_size=(32, 88), lidar_beams=4, lidar_azimuth_steps=64)
    get_format("surroundocc").writers.write_synthetic(tmp_path / "so", cfg)
    out = tmp_path / "so.json"
    assert main(["stats", str(tmp_path / "so"), "--json", str(out), "--no-progress"]) == 0
    d = json.loads(out.read_text())
    files = sorted((tmp_path / "so").rglob("*.npy"))
    assert len(files) == 2
    counts = np.zeros(17, np.int64)
    for f in files:
        rows = np.load(f)
        counts += np.bincount(rows[:, 3].astype(np.int64), minlength=17)[:17]
    total = 2 * 200 * 200 * 16
    assert d["format"] == "surroundocc" and d["num_frames"] == 2 and d["cameras"] and d["image_size"]["width"] == 88
    assert [r["voxels"] for r in d["classes"]][1:] == counts[1:].tolist()
    assert d["classes"][0]["name"] == d["free_class"] and d["scored_mask"] == "scored"
    assert d["raw"]["ignored"] == counts[0] and d["classes"][0]["voxels"] == total - counts.sum()
    assert "format surroundocc" in capsys.readouterr().out
    assert main(["stats", str(tmp_path / "so"), "--format", "nyu", "--no-progress"]) == 1
    assert "not a dataset of the format nyu" in capsys.readouterr().err


def test_stats_of_labels_without_their_scans_is_one_line(tmp_path, capsys):
    # SemanticKITTI lists a frame without labels by its scan: labels with no velodyne/*.bin used to end
    # in an IndexError (the first frame of an empty list) rather than a line
    from test_semantickitti import _tiny_layout

    from occkit.cli import main

    _tiny_layout(tmp_path / "kitti", frames=("000000", "000001"))
    assert main(["stats", str(tmp_path / "kitti"), "--format", "semantickitti"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no frame with its sensor files" in err[0] and "Traceback" not in err[0]
