import json
import shutil

import numpy as np
import pytest

from occkit.cli import main
from occkit.data.occ3d import Occ3DDataset
from occkit.data.stats import LabelCounts, dataset_stats


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
    c = LabelCounts()
    c.add(sem, cam, lid)
    c.add(np.full((2, 2, 2), 17, np.uint8), cam, lid)
    assert c.frames == 2 and c.voxels == 16
    assert c.counts[4] == 2 and c.counts[11] == 1 and c.counts[17] == 13 and sum(c.counts) == 16
    assert c.counts_camera[4] == 1 and c.counts_camera[17] == 3
    assert c.counts_lidar[11] == 1 and c.counts_lidar[17] == 1
    assert c.frames_with_class[4] == 1 and c.frames_with_class[17] == 2
    assert c.camera_voxels == 4 and c.lidar_voxels == 2 and c.both_voxels == 0
    with pytest.raises(ValueError, match="mask_camera"):
        c.add(sem, np.zeros((2, 2, 3), np.uint8), lid)
    with pytest.raises(ValueError, match="semantics"):
        c.add(np.full((2, 2, 2), 18, np.uint8), cam, lid)


def test_dataset_stats_match_direct_counts(tiny_occ3d_root):
    st = dataset_stats(tiny_occ3d_root, split="all", progress=False)
    ds = Occ3DDataset(tiny_occ3d_root, split="all", load_images=False)
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
    assert st.labels.counts_camera == cam_counts.tolist()
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
    with pytest.raises(ValueError, match="labels.npz"):
        dataset_stats(root, progress=False)
