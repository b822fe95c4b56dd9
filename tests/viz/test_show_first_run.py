"""What a first run of ``occkit show`` / ``occkit view`` met (issue 73, item 8): no picture and
record written into the current folder without --out; the prediction scored with the camera mask
by default, as the official metric and the demo's pictures are (one frame, one number); one
``--mask-mode`` vocabulary in show and view, the old words still accepted."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from occkit.cli import build_parser, main
from occkit.fileio import save_npz_atomic
from occkit.labels import OCC3D_FREE


def test_show_without_out_refuses_and_writes_nothing_here(tiny_occ3d_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["show", str(tiny_occ3d_root)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("occkit show: error: --out F.png is needed")
    assert list(tmp_path.iterdir()) == []  # neither a PNG nor a hidden .occkit-files.json
    assert main(["show", str(tiny_occ3d_root), "--list"]) == 0  # --list writes nothing and needs none
    assert list(tmp_path.iterdir()) == []


def test_show_scores_with_the_camera_mask_by_default(tiny_occ3d_root, tmp_path, capsys):
    from occkit.data.occ3d import Occ3DDataset
    from occkit.viz.figure import frame_scores

    ds = Occ3DDataset(tiny_occ3d_root, split="all", load_images=False)
    sample = ds[1]
    assert sample.mask_camera is not None and not bool(sample.mask_camera.all())  # the mask changes the score
    gt = sample.occupancy.numpy()
    pred = gt.copy()
    pred[:100] = 17  # half the grid called free
    save_npz_atomic(tmp_path / "pred" / f"{sample.token}.npz", semantics=pred.astype(np.uint8))
    base = ["show", str(tiny_occ3d_root), "--token", sample.token, "--panel-height", "40", "--pred"]

    def printed(*extra: str) -> str:
        assert main([*base, str(tmp_path / "pred"), "--out", str(tmp_path / "f.png"), *extra]) == 0
        return capsys.readouterr().out.strip().splitlines()[-1]

    cam = frame_scores(gt, pred, sample.mask_camera.numpy(), free=OCC3D_FREE)
    every = frame_scores(gt, pred, None, free=OCC3D_FREE)
    assert cam["miou"] != pytest.approx(every["miou"], abs=0.01)
    assert printed() == (
        f"frame {sample.token}: mIoU {cam['miou']:.2f}, geometry IoU {cam['geometry_iou']:.2f} (camera mask)"
    )
    assert printed("--mask", "none").endswith(
        f"mIoU {every['miou']:.2f}, geometry IoU {every['geometry_iou']:.2f} (all voxels)"
    )


def test_one_mask_mode_vocabulary_in_show_and_view(tiny_occ3d_root, tmp_path):
    parser = build_parser()
    for verb, extra in (("show", ["root"]), ("view", ["data"])):
        for given, read in (("show", "show"), ("hide", "hide"), ("dim", "dim"), ("grey", "dim")):
            args = parser.parse_args([verb, *extra, "--mask-mode", given])
            assert args.mask_mode == read, (verb, given)
        with pytest.raises(SystemExit):
            parser.parse_args([verb, *extra, "--mask-mode", "bogus"])
    # show draws each: "show" draws what "--mask none" draws (the mask restricts the score only)
    token = "--token"
    from occkit.data.occ3d import Occ3DDataset

    tok = Occ3DDataset(tiny_occ3d_root, split="all", load_images=False).frames[0].token
    pics = {}
    for mode, mask in (("show", "camera"), ("hide", "camera"), ("dim", "camera"), ("grey", "camera"), ("hide", "none")):
        out = tmp_path / f"{mode}-{mask}.png"
        cmd = ["show", str(tiny_occ3d_root), token, tok, "--out", str(out), "--panel-height", "40"]
        assert main([*cmd, "--mask", mask, "--mask-mode", mode]) == 0
        pics[mode, mask] = np.asarray(Image.open(out))
    assert np.array_equal(pics["grey", "camera"], pics["dim", "camera"])
    assert not np.array_equal(pics["hide", "camera"], pics["dim", "camera"])
    show, plain = pics["show", "camera"], pics["hide", "none"]
    assert show.shape == plain.shape and np.array_equal(show[40:], plain[40:])  # the same but for its title
