"""compose_frame_figure and the `occkit show` command on tiny datasets."""

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from occkit.cli import main
from occkit.data.sample import Sample
from occkit.fileio import save_npz_atomic
from occkit.labels import OCC3D_FREE
from occkit.viz.cameras import overlay_lidar
from occkit.viz.figure import compose_frame_figure


def tiny_sample(with_lidar: bool = True) -> Sample:
    occ = torch.full((10, 10, 5), 17, dtype=torch.long)
    occ[:, :, 0] = 11
    occ[7:9, 2:4, 1:3] = 4
    T = torch.eye(4)
    T[:3, :3] = torch.tensor([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]])  # looks along +x
    s = Sample(
        token="tok",
        scene="scene-x",
        timestamp=0,
        cam_names=("CAM_FRONT", "CAM_BACK"),
        images=torch.rand(2, 3, 12, 16),
        intrinsics=torch.tensor([[10.0, 0, 8], [0, 10, 6], [0, 0, 1]]).expand(2, 3, 3),
        T_ego_from_cam=T.expand(2, 4, 4),
        T_global_from_ego=torch.eye(4, dtype=torch.float64),
        occupancy=occ,
        mask_camera=torch.ones(10, 10, 5, dtype=torch.bool),
        mask_lidar=torch.zeros(10, 10, 5, dtype=torch.bool),
    )
    if with_lidar:
        s.lidar = torch.tensor([[5.0, 0, 0, 1], [3.0, 1, 0, 1]])
        s.lidar_labels = torch.tensor([4, 11])
    return s


def test_compose_frame_figure_with_and_without_prediction():
    s = tiny_sample()
    a = compose_frame_figure(s, panel_height=40)
    assert a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3
    pred = s.occupancy.clone()
    pred[0:2, 0:2, 1] = 7
    b = compose_frame_figure(s, pred=pred, panel_height=40, mask="lidar", mask_mode="grey", lidar_color="class")
    assert b.shape[1] == a.shape[1] and b.shape[0] > a.shape[0] + 40  # one more row of panels
    with pytest.raises(ValueError, match="pred"):
        compose_frame_figure(s, pred=torch.zeros(3, 3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="mask"):
        compose_frame_figure(s, mask="radar")
    s.mask_camera = None
    with pytest.raises(ValueError, match="mask_camera"):
        compose_frame_figure(s, mask="camera")


def test_show_writes_a_png_of_the_expected_size(tiny_occ3d_root, tmp_path, capsys):
    out = tmp_path / "pics" / "f.png"
    assert main(["show", str(tiny_occ3d_root), "--out", str(out), "--panel-height", "60", "--mask", "camera"]) == 0
    im = Image.open(out)
    assert im.mode == "RGB"
    # panel row: BEV 60 px + gap 8 + 3D view 1.5 * 60 = 90 px
    assert im.width == 60 + 8 + 90
    assert im.height > 60 + 60  # title, mosaic, panels, legend
    assert "wrote" in capsys.readouterr().out
    assert not list(out.parent.glob(".*tmp"))  # atomic write left nothing behind


def test_show_prediction_beside_ground_truth(tiny_occ3d_root, tmp_path):
    from occkit.data.occ3d import Occ3DDataset

    token = Occ3DDataset(tiny_occ3d_root, split="all", load_images=False).frames[1].token
    pred_dir = tmp_path / "pred"
    save_npz_atomic(pred_dir / f"{token}.npz", semantics=np.full((200, 200, 16), 17, np.uint8))
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    assert main(["show", str(tiny_occ3d_root), "--token", token, "--out", str(a), "--panel-height", "40"]) == 0
    assert (
        main(
            [
                "show",
                str(tiny_occ3d_root),
                "--token",
                token,
                "--out",
                str(b),
                "--panel-height",
                "40",
                "--pred",
                str(pred_dir),
            ]
        )
        == 0
    )
    assert Image.open(b).height > Image.open(a).height + 40  # one more row of 40 px panels
    # a single file works too
    assert (
        main(
            [
                "show",
                str(tiny_occ3d_root),
                "--token",
                token,
                "--out",
                str(b),
                "--panel-height",
                "40",
                "--pred",
                str(pred_dir / f"{token}.npz"),
            ]
        )
        == 0
    )


def test_show_errors(tiny_occ3d_root, tmp_path, capsys):
    out = tmp_path / "x.png"
    assert main(["show", str(tiny_occ3d_root), "--token", "nope", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "nope" in err and str(tiny_occ3d_root) in err
    assert main(["show", str(tmp_path / "missing"), "--out", str(out)]) == 1
    assert "missing" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    assert main(["show", str(tiny_occ3d_root), "--pred", str(bad), "--out", str(out)]) == 1
    assert "bad.npz" in capsys.readouterr().err
    empty_dir = tmp_path / "preds"
    empty_dir.mkdir()
    assert main(["show", str(tiny_occ3d_root), "--pred", str(empty_dir), "--out", str(out)]) == 1
    assert "prediction not found" in capsys.readouterr().err
    wrong = tmp_path / "wrong.npz"
    save_npz_atomic(wrong, semantics=np.zeros((10, 10, 10), np.uint8))
    assert main(["show", str(tiny_occ3d_root), "--pred", str(wrong), "--out", str(out)]) == 1
    assert "shape" in capsys.readouterr().err
    assert not out.exists()


def test_show_list(tiny_occ3d_root, capsys):
    assert main(["show", str(tiny_occ3d_root), "--list", "--split", "val"]) == 0
    out = capsys.readouterr().out
    assert "scene-0001: 2 frames" in out and "scene-0000" not in out


def test_show_prediction_without_ground_truth(tiny_occ3d_root, tmp_path, capsys):
    from occkit.data.occ3d import Occ3DDataset

    root = tmp_path / "nolabels"
    shutil.copytree(tiny_occ3d_root, root)
    ds = Occ3DDataset(root, split="all", load_images=False)
    token = ds.frames[0].token
    ds.gt_path(token).unlink()
    out = tmp_path / "p.png"
    assert main(["show", str(root), "--token", token, "--out", str(out), "--panel-height", "40"]) == 1
    assert "labels.npz" in capsys.readouterr().err
    pred = tmp_path / f"{token}.npz"
    save_npz_atomic(pred, semantics=np.full((200, 200, 16), 11, np.uint8))
    assert (
        main(["show", str(root), "--token", token, "--out", str(out), "--panel-height", "40", "--pred", str(pred)]) == 0
    )
    assert out.is_file()


def test_lidar_overlay_agrees_with_the_synthetic_depth_maps(synth_root):
    """Each LiDAR point drawn (one pixel, a colour encoding its index) lands on a pixel whose
    rendered z-depth matches the point's depth: the overlay's geometry agrees with the renderer."""
    from occkit.data.occ3d import Occ3DDataset
    from occkit.geometry.transforms import apply_transform, invert_transform

    s = Occ3DDataset(synth_root, split="all")[0]
    assert s.lidar is not None and s.depth is not None
    pts = s.lidar[:, :3]
    P = pts.shape[0]
    codes = np.arange(1, P + 1)
    colors = np.stack([codes >> 16, (codes >> 8) & 255, codes & 255], -1).astype(np.uint8)
    errors = []
    for cam in range(len(s.cam_names)):
        H, W = s.depth.shape[1:]
        img = np.zeros((H, W, 3), np.uint8)
        out = overlay_lidar(img, pts, s.intrinsics[cam], s.T_ego_from_cam[cam], colors=colors, radius=0, min_depth=1.0)
        rows, cols = np.nonzero(out.any(-1))
        idx = (out[rows, cols].astype(np.int64) * [65536, 256, 1]).sum(-1) - 1
        z = apply_transform(invert_transform(s.T_ego_from_cam[cam].double()), pts[idx].double())[:, 2].numpy()
        d = s.depth[cam].numpy()[rows, cols]
        ok = d > 0
        errors.append(np.abs(z[ok] - d[ok]) / d[ok])
    err = np.concatenate(errors)
    assert err.size > 100
    assert np.median(err) < 0.02  # points sit on the surfaces the cameras see
    assert np.mean(err < 0.1) > 0.8  # (a few land on an edge in front of or behind them)


def test_show_on_the_synthetic_world(synth_root, tmp_path):
    out = tmp_path / "s.png"
    assert (
        main(
            [
                "show",
                str(synth_root),
                "--out",
                str(out),
                "--panel-height",
                "48",
                "--mask",
                "camera",
                "--lidar-color",
                "class",
            ]
        )
        == 0
    )
    im = np.asarray(Image.open(out))
    assert im.shape[1] == 48 + 8 + 72


def test_frame_scores_hand_computed():
    from occkit.viz.figure import frame_scores

    gt = np.full((2, 2, 1), 17, np.uint8)
    gt[0, 0, 0] = 4
    gt[1, 0, 0] = 4
    pred = gt.copy()
    assert frame_scores(gt, pred, free=OCC3D_FREE)["miou"] == pytest.approx(100.0)
    pred[1, 0, 0] = 17  # car: TP 1, FN 1 -> IoU 1/2; free: TP 2, FP 1 (not in the mean)
    sc = frame_scores(gt, pred, free=OCC3D_FREE)
    assert sc["miou"] == pytest.approx(50.0) and sc["geometry_iou"] == pytest.approx(50.0)
    mask = np.ones((2, 2, 1), bool)
    mask[1, 0, 0] = False  # the miss is outside the mask
    assert frame_scores(gt, pred, mask, free=OCC3D_FREE)["miou"] == pytest.approx(100.0)
