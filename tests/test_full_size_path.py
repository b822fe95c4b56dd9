"""The GPU presets' path at a reduced but non-toy size: a world of six 450x800 cameras (half of
nuScenes' 900x1600, JPEGs decoded and resized to the preset's 256x704 input; two scenes of one frame,
one to train on and one to score), the 200x200x16 grid, ``occkit train occ3d-r50`` with its own data
pipeline and loader workers, then ``predict`` and ``eval`` of the run. Only the network is narrowed
(ResNet-18, thin 3D encoder) so a CPU step takes seconds; ``benchmarks/full_size.py`` runs the presets
whole at 900x1600."""

import json

import pytest

from occkit.cli import main


@pytest.fixture(scope="module")
def half_size_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("half") / "world"
    assert (
        main(
            [
                "synth",
                "--out",
                str(root),
                "--scenes",
                "2",
                "--frames",
                "1",
                "--image-size",
                "450",
                "800",
                "--val-fraction",
                "0.5",
                "--seed",
                "3",
            ]
        )
        == 0
    )
    return root


def test_occ3d_r50_trains_predicts_and_evaluates_at_half_nuscenes_size(half_size_world, tmp_path, capsys):
    run = tmp_path / "run"
    narrow = [
        "model.backbone=resnet18",
        "model.neck_channels=32",
        "model.context_channels=16",
        "model.encoder_widths=[8,16]",
        "model.depth_step=2.0",
        "data.batch_size=1",
        "data.workers=1",
        "train.threads=1",
        "train.ckpt_every=1",
    ]
    assert (
        main(
            [
                "train",
                "occ3d-r50",
                "--data",
                str(half_size_world),
                "--out",
                str(run),
                "--max-steps",
                "1",
                "--no-val",
                "--no-progress",
                "--set",
                *narrow,
            ]
        )
        == 0
    )
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["data"]["image_aug"]["out_hw"] == [256, 704]  # the preset's input, from 450x800 images
    assert (run / "checkpoints" / "step_000001").is_dir()
    pred = tmp_path / "pred"
    assert (
        main(["predict", "--ckpt", str(run), "--data", str(half_size_world), "--out", str(pred), "--split", "val"]) == 0
    )
    files = sorted(pred.glob("*.npz"))
    assert len(files) == 1  # the one validation scene's one frame
    import numpy as np

    with np.load(files[0]) as z:
        assert z["semantics"].shape == (200, 200, 16) and z["semantics"].dtype == np.uint8
    out = tmp_path / "eval.json"
    assert (
        main(
            ["eval", "--gt", str(half_size_world), "--pred", str(pred), "--metrics", "miou,rayiou", "--json", str(out)]
        )
        == 0
    )
    res = json.loads(out.read_text())
    assert 0.0 <= res["miou"] <= 100.0 and "rayiou" in res
    capsys.readouterr()
