"""CIGOcc indoors (preset ``cigocc-nyu``): the indoor world's 2D priors in NYUv2's classes, the
end-to-end run (synth, priors, train, predict, eval --format nyu), and caches of one world's
class table refused by the other's data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from occkit.cli import main


@pytest.fixture(scope="module")
def indoor(tmp_path_factory) -> dict[str, Path]:
    """A 2-room x 1-view indoor world (one training and one test frame) and its oracle:typical
    priors of the kinds cigocc reads (semantics, segments, depth)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("indoor")
    data, priors = root / "w", root / "priors"
    assert main(["synth", "--world", "indoor", "--out", str(data), "--scenes", "2", "--frames", "1"]) == 0
    args = ["priors", "run", "--data", str(data), "--prior", "oracle:typical", "--out", str(priors)]
    assert main([*args, "--kinds", "semantics,segments,depth", "--no-progress"]) == 0
    return {"data": data, "priors": priors}


def test_indoor_priors_are_in_nyu_classes(indoor):
    from occkit.formats import get_format
    from occkit.priors import build_prior
    from occkit.priors.cache import PriorCache, run_priors
    from occkit.priors.classes import prior_classes_of

    table = prior_classes_of(get_format("nyu"))
    assert table.names == get_format("nyu").classes.names and table.nothing == 0  # the format's own table
    assert prior_classes_of(get_format("semantickitti")).name == "occ3d"  # the driving world's, any layout
    rec = json.loads((indoor["priors"] / "prior.json").read_text())
    assert rec["class_table"] == "nyu" and rec["class_names"] == list(table.names) and rec["layout"] == "nyu"
    cache = PriorCache(indoor["priors"])
    assert cache.class_table == "nyu"
    exact = np.load(indoor["data"] / "extras" / "NYU0000_0000.npz")
    typical = cache.load("NYU0000", "NYU0000_0000", ["kinect"], (480, 640))
    sem = typical["prior_semantics"][0].numpy()
    assert sem.max() < 12 and 0.5 < (sem == exact["semantics"]).mean() < 1.0  # degraded, in NYUv2's classes
    clean = run_priors(
        indoor["data"], indoor["priors"].parent / "clean", build_prior("oracle:clean"), kinds=["semantics"],
        max_frames=1, progress=False,
    )  # fmt: skip
    z = np.load(clean / "NYU0000" / "NYU0000_0000" / "kinect.npz")
    assert np.array_equal(z["semantics"], exact["semantics"])  # the clean level is the exact map
    from occkit.priors.quality import evaluate_priors

    report = evaluate_priors(indoor["data"], clean)  # occkit priors eval, in NYUv2's classes
    assert report["semantic_miou"] == 100.0 and set(report["semantic_iou"]) <= set(table.names)
    noisy = run_priors(
        indoor["data"], indoor["priors"].parent / "noisy", build_prior("oracle:noisy"), kinds=["semantics"],
        max_frames=1, progress=False,
    )  # fmt: skip
    zn = np.load(noisy / "NYU0000" / "NYU0000_0000" / "kinect.npz")
    assert zn["semantics"].max() < 12 and (zn["semantics"] == exact["semantics"]).mean() < 1.0


def test_end_to_end_cigocc_nyu(indoor, tmp_path):
    """synth --world indoor + priors run (oracle) + train cigocc-nyu (2 steps) + predict + eval --format nyu."""
    from occkit.engine.logging import read_jsonl

    run, pred = tmp_path / "run", tmp_path / "pred"
    sets = [
        f"data.priors={indoor['priors']}",
        "optim.max_steps=2",
        "optim.amp=none",
        "train.val_every=0",
        "train.ckpt_every=2",
        "train.log_every=1",
        "train.threads=1",
        "data.image_aug.out_hw=[96,128]",
    ]
    assert (
        main(
            ["train", "cigocc-nyu", "--data", str(indoor["data"]), "--out", str(run), "--no-progress"]
            + ["--set", *sets]
        )
        == 0
    )
    first = read_jsonl(run / "train.jsonl")[0]
    for k in ("loss_ce", "loss_scal_geo", "loss_scal_sem", "loss_depth", "loss_seg", "loss_distill"):
        assert np.isfinite(first[k]) and first[k] > 0, k  # every level and the distillation trained
    assert first["loss_seg"] == pytest.approx(np.log(12), rel=0.3)  # a fresh 12-way head: about ln 12
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["cigocc"]["seg_classes"] == 12 and len(cfg["cigocc"]["class_counts"]) == 12
    assert (
        main(["predict", "--ckpt", str(run), "--data", str(indoor["data"]), "--out", str(pred), "--no-progress"]) == 0
    )
    assert (pred / "NYU0001_0000.npz").is_file()  # the test split: prediction needs no prior
    out = tmp_path / "eval.json"
    assert main(["eval", "--gt", str(indoor["data"]), "--pred", str(pred), "--format", "nyu", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["benchmark"] == "nyu" and result["frames"] == 1 and 0 <= result["ssc_miou"] <= 100


def test_seg_classes_must_be_the_priors_table(indoor, tmp_path, capsys):
    args = ["train", "cigocc-nyu", "--data", str(indoor["data"]), "--out", str(tmp_path / "r"), "--no-progress"]
    sets = [f"data.priors={indoor['priors']}", "optim.max_steps=1", "cigocc.seg_classes=18"]
    assert main([*args, "--set", *sets]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "set cigocc.seg_classes=12" in err[0] and "nyu classes" in err[0]


def test_a_cache_of_the_other_world_is_refused_naming_it(indoor, synth_root, tmp_path, capsys):
    from occkit.data.occ3d import Occ3DDataset
    from occkit.priors import build_prior
    from occkit.priors.cache import PriorCache, WithPriors, run_priors

    outdoor = run_priors(
        synth_root, tmp_path / "outdoor", build_prior("oracle:clean"), kinds=["semantics"], max_frames=1,
        progress=False,
    )  # fmt: skip
    assert json.loads((outdoor / "prior.json").read_text())["class_table"] == "occ3d"
    # an outdoor cache on indoor data: the run stops in one line naming the cache
    args = ["train", "cigocc-nyu", "--data", str(indoor["data"]), "--out", str(tmp_path / "r"), "--no-progress"]
    assert main([*args, "--set", f"data.priors={outdoor}", "optim.max_steps=1"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(outdoor / "prior.json") in err[0] and "occ3d classes" in err[0]
    assert "nyu classes" in err[0]
    # an indoor cache on outdoor data
    with pytest.raises(ValueError, match="prior.json: priors in the nyu classes") as e:
        WithPriors(Occ3DDataset(synth_root, "all", load_gt=False), PriorCache(indoor["priors"]))
    assert str(indoor["priors"] / "prior.json") in str(e.value) and "\n" not in str(e.value)
    # a cache written before class tables holds Occ3D's classes, and indoor data refuses it too
    rec = json.loads((outdoor / "prior.json").read_text())
    del rec["class_table"], rec["class_names"]
    (outdoor / "prior.json").write_text(json.dumps(rec))
    from occkit.data.nyu import NYUDataset

    with pytest.raises(ValueError, match="priors in the occ3d classes"):
        WithPriors(NYUDataset(indoor["data"], "all", load_gt=False), PriorCache(outdoor))
    # and priors run refuses to continue a cache of the other table
    with pytest.raises(FileExistsError, match="class_table"):
        run_priors(indoor["data"], outdoor, build_prior("oracle:clean"), kinds=["semantics"], progress=False)
