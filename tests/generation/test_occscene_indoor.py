"""OccScene indoors end to end on a tiny indoor world (issue 71): ``occkit synth --world indoor``, the
``occscene-nyu`` preset through its three stages, ``predict`` + ``eval --format nyu``, ``occkit generate``
writing the generated frames in the NYUv2 layout (read back by the NYUv2 reader, the conditioning layout
inside the generated camera's view, unknown outside), a judge, ``occkit eval-gen`` with NYUv2's metric,
a perception run on real + generated frames; and an indoor run pointed at outdoor data, and the
reverse, refused in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from occkit.cli import main
from occkit.data.nyu import NYUDataset
from occkit.labels import NYU_IGNORE

#: occscene-nyu as shipped (96x128 images, 12x16 latents), batch 1, a step of each stage (1 + 1 + 1)
SMALL = [
    "data.batch_size=1",
    "data.cache_mb=0",
    "optim.amp=none",
    "optim.warmup_steps=0",
    "occscene.vae_steps=1",
    "occscene.diffusion_steps=1",
    "occscene.occ_warmup_steps=0",
    "occscene.occ_max_timestep=1000",  # every joint step reads its estimate
    "occscene.schedule.sample_steps=2",
    "train.threads=1",
    "train.log_every=1",
    "train.val_every=0",
    "train.ckpt_every=0",
]


@pytest.fixture(scope="module")
def indoor(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("occscene_indoor")
    world = tmp / "world"
    # a room to train on, one to test (two views each: generate --n 2 takes two layouts)
    assert main(["synth", "--world", "indoor", "--out", str(world), "--scenes", "2", "--frames", "2"]) == 0
    run = tmp / "run"
    args = ["train", "occscene-nyu", "--data", str(world), "--out", str(run), "--no-val", "--no-progress"]
    assert main([*args, "--max-steps", "3", "--set", *SMALL]) == 0
    return world, run, tmp


def test_occscene_nyu_trains_predicts_generates_and_is_scored_indoors(indoor, capsys):
    world, run, tmp = indoor
    rows = [json.loads(line) for line in (run / "train.jsonl").read_text().splitlines()]
    assert [sorted(k for k in r if k.startswith("loss_")) for r in rows] == [
        ["loss_occ_real", "loss_vae_kl", "loss_vae_rec"],
        ["loss_diff"],
        ["loss_diff", "loss_occ_gen", "loss_occ_real"],
    ]
    assert all(np.isfinite(r["loss"]) for r in rows)
    assert any(r.get("loss_occ_gen", 0) > 0 for r in rows)  # the perception model read the generated estimates
    # predict + eval --format nyu
    pred = tmp / "pred"
    assert main(["predict", "--ckpt", str(run), "--data", str(world), "--out", str(pred), "--no-progress"]) == 0
    test_frames = NYUDataset(world, "test", load_images=False).tokens
    assert sorted(p.stem for p in pred.glob("*.npz")) == sorted(test_frames)
    capsys.readouterr()
    assert (
        main(["eval", "--gt", str(world), "--pred", str(pred), "--format", "nyu", "--json", str(tmp / "e.json")]) == 0
    )
    scores = json.loads((tmp / "e.json").read_text())
    assert scores["frames"] == len(test_frames) and 0 <= scores["ssc_miou"] <= 100

    # generate on the test layouts: a NYUv2-layout dataset
    gen = tmp / "gen"
    args = ["generate", "--ckpt", str(run), "--data", str(world), "--out", str(gen), "--occupancy", "val"]
    assert main([*args, "--n", "2", "--seed", "3", "--no-progress"]) == 0
    assert (gen / "preview.png").is_file() and (gen / "files.json").is_file()
    ds = NYUDataset(gen, "all", load_extras=True)
    real = NYUDataset(world, "all")
    index = json.loads((gen / "indoor.json").read_text())["frames"]
    assert len(ds) == 2
    for i in range(len(ds)):
        s = ds[i]
        src = real[real.index_of(index[s.token]["source"])]
        assert s.images.shape == (1, 3, 480, 640)  # the layout's size, the intrinsics the kinect's
        assert s.description == src.description  # the indoor world's text of the conditioning frame
        assert torch.allclose(s.T_ego_from_cam, src.T_ego_from_cam, atol=1e-5)
        assert torch.equal(s.extra["voxel_origin"], src.extra["voxel_origin"])
        known = s.occupancy != NYU_IGNORE
        assert 0 < int(known.sum()) < int((src.occupancy != NYU_IGNORE).sum())  # the camera's view of the room
        assert torch.equal(s.occupancy[known], src.occupancy[known])  # the conditioning layout, exactly
    # the judge (perception alone on real frames) and eval-gen with NYUv2's metric
    judge = tmp / "judge"
    args = ["train", "occscene-nyu", "--data", str(world), "--out", str(judge), "--no-val", "--no-progress"]
    assert main([*args, "--max-steps", "1", "--set", *SMALL, "occscene.train_generator=false"]) == 0
    out = tmp / "eval_gen.json"
    args = ["eval-gen", "--gen", str(gen), "--real", str(world), "--judge", str(judge), "--split", "val"]
    assert main([*args, "--out", str(out)]) == 0
    sc = json.loads(out.read_text())
    assert sc["n_gen"] == 2 and sc["n_real"] == len(test_frames)
    assert np.isfinite(sc["fid"]) and 0 <= sc["layout_miou"] <= 100 and 0 <= sc["judge_real_miou"] <= 100
    # perception on real + generated frames (the ablation's perc_realgen arm) reads the generated folder
    args = ["train", "occscene-nyu", "--data", str(world), "--out", str(tmp / "realgen"), "--no-val", "--no-progress"]
    sets = [*SMALL, "occscene.train_generator=false", f"data.extra_train=[{gen}]"]
    assert main([*args, "--max-steps", "1", "--set", *sets]) == 0


def _occkit_lines(err: str) -> list[str]:
    """occkit's own lines of stderr (not the text encoder's loading bars)."""
    return [line for line in err.splitlines() if line.startswith("occkit ")]


def test_indoor_and_outdoor_runs_refuse_the_other_kind_of_data(indoor, synth_root, tmp_path, capsys):
    world, run, _ = indoor
    capsys.readouterr()
    args = ["train", "occscene-nyu", "--data", str(synth_root), "--out", str(tmp_path / "a"), "--no-progress"]
    assert main(args) != 0
    err = _occkit_lines(capsys.readouterr().err)
    assert len(err) == 1 and "(driving) dataset, but the run is of a NYUv2 (indoor) dataset" in err[0]
    args = ["generate", "--ckpt", str(run), "--data", str(synth_root), "--out", str(tmp_path / "g"), "--n", "1"]
    assert main(args) != 0
    err = _occkit_lines(capsys.readouterr().err)
    assert len(err) == 1 and "but the run is of a NYUv2 (indoor) dataset" in err[0]
    assert not (tmp_path / "g").exists()
    # the reverse: the outdoor preset (data.format auto) on the indoor world
    args = ["train", "occscene-cpu", "--data", str(world), "--out", str(tmp_path / "b"), "--no-progress"]
    assert main([*args, "--set", "data.image_aug.out_hw=[32,96]"]) != 0
    err = _occkit_lines(capsys.readouterr().err)
    assert len(err) == 1 and "is a NYUv2 (indoor) dataset, but the run's grid is of driving datasets" in err[0]
