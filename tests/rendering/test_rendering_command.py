"""``occkit render``: files, shapes, dtypes, prediction input, errors."""

from __future__ import annotations

import numpy as np

from occkit.cli import main
from occkit.data.occ3d import NUSCENES_CAMERAS, Occ3DDataset
from occkit.fileio import save_npz_atomic


def test_render_gt_and_pred(tiny_occ3d_root, tmp_path, capsys):
    ds = Occ3DDataset(tiny_occ3d_root, split="all", load_images=False)
    token = ds.frames[0].token
    out = tmp_path / "gt"
    assert main(["render", "--data", str(tiny_occ3d_root), "--token", token, "--out", str(out), "--device", "cpu"]) == 0
    assert "ground truth" in capsys.readouterr().out
    assert (out / "render.png").is_file()
    for cam in NUSCENES_CAMERAS:
        d = np.load(out / f"{cam}_depth.npy")
        s = np.load(out / f"{cam}_semantics.npy")
        assert d.shape == (24, 64) and d.dtype == np.float32 and s.shape == (24, 64) and s.dtype == np.uint8
        assert (d >= 0).all() and s.max() <= 17
        assert ((d > 0) == (s != 17)).all()
    # the ground truth given back as a prediction renders the same maps
    pred = tmp_path / f"{token}.npz"
    save_npz_atomic(pred, semantics=ds.read_labels(token)["semantics"])
    out2 = tmp_path / "pred"
    assert (
        main(
            [
                "render",
                "--data",
                str(tiny_occ3d_root),
                "--token",
                token,
                "--pred",
                str(pred),
                "--out",
                str(out2),
                "--stride",
                "2",
                "--no-picture",
            ]
        )
        == 0
    )
    assert not (out2 / "render.png").exists()
    s2 = np.load(out2 / "CAM_FRONT_semantics.npy")
    assert s2.shape == (12, 32)
    np.testing.assert_array_equal(s2, np.load(out / "CAM_FRONT_semantics.npy")[1::2, 1::2])


def test_render_errors(tiny_occ3d_root, tmp_path, capsys):
    ds = Occ3DDataset(tiny_occ3d_root, split="all", load_images=False)
    token = ds.frames[0].token
    bad = tmp_path / "bad.npz"
    save_npz_atomic(bad, semantics=np.zeros((10, 10, 10), np.uint8))
    assert (
        main(
            [
                "render",
                "--data",
                str(tiny_occ3d_root),
                "--token",
                token,
                "--pred",
                str(bad),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 1
    )
    assert "bad.npz" in capsys.readouterr().err
    assert main(["render", "--data", str(tiny_occ3d_root), "--token", "nope", "--out", str(tmp_path / "o")]) == 1
    assert "nope" in capsys.readouterr().err
    assert (
        main(
            [
                "render",
                "--data",
                str(tiny_occ3d_root),
                "--token",
                token,
                "--pred",
                str(tmp_path / "missing.npz"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 1
    )
    assert "missing.npz" in capsys.readouterr().err


def test_render_checkpoint_logits(tiny_occ3d_root, tmp_path, capsys):
    from occkit.config import to_dict
    from occkit.engine.checkpoint import save_checkpoint
    from occkit.experiment import build_method, load_experiment

    cfg = load_experiment(
        "render-sup-cpu", ["data.image_aug.out_hw=[32, 64]", "data.load_extras=false", "data.workers=0"]
    )
    run = tmp_path / "run"
    save_checkpoint(run, 1, build_method(cfg), to_dict(cfg), {"step": 1})
    token = Occ3DDataset(tiny_occ3d_root, split="all", load_images=False).frames[0].token
    out = tmp_path / "ckpt"
    args = [
        "render",
        "--data",
        str(tiny_occ3d_root),
        "--token",
        token,
        "--ckpt",
        str(run),
        "--out",
        str(out),
        "--stride",
        "4",
        "--device",
        "cpu",
    ]
    assert main(args) == 0
    assert "checkpoint" in capsys.readouterr().out
    d = np.load(out / "CAM_BACK_depth.npy")
    assert d.shape == (6, 16) and d.dtype == np.float32 and np.isfinite(d).all()
    assert (out / "render.png").is_file()
