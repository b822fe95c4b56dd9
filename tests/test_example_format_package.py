"""A dataset format from another package: examples/occkit-toyformat registers ``toy`` (one .npz per
frame, five classes on the Occ3D grid, free first, its own metric) through the entry point group
``occkit.datasets``, and occkit's commands write the synthetic world in it, train on it, predict and
score it with no edit to occkit. ``.ci/run`` installs the package."""

from __future__ import annotations

import importlib.util
import json
import shutil

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("occkit_toyformat") is None,
    reason="the example package is not installed: pip install -e examples/occkit-toyformat (.ci/run does)",
)

#: synth-cpu made tiny, with no depth or 2D semantic targets (the toy frames carry none); the class
#: count and the free id are not set: they come from the format's class table (five classes, free 0)
TINY = [
    "model.backbone=test_efficientnet",
    "model.neck_channels=8",
    "model.context_channels=8",
    "model.encoder_widths=[8,16]",
    "model.lift_downsample=[4,4,1]",
    "model.depth_step=4.0",
    "supervised.depth_source=none",
    "supervised.semantic_2d_weight=0",
    "data.image_aug.out_hw=[32,96]",
    "data.load_extras=false",
    "optim.warmup_steps=1",
    "optim.amp=none",
    "train.device=cpu",
    "train.threads=1",
    "train.tensorboard=false",
    "train.log_every=1",
]


def test_the_entry_point_registers_the_format():
    from occkit.formats import get_format

    fmt = get_format("toy")
    assert "occkit-toyformat" in fmt.source and "occkit_toyformat.format:FORMAT" in fmt.source
    assert (
        fmt.classes.free == 0 and fmt.classes.names[2] == "object" and fmt.scoring.evaluate_folder is None
    )  # free first
    # the package ships a named class map, taken by name as occkit's own are
    from occkit.formats.classmap import class_map_names, load_class_map

    assert "toy-occ3d" in class_map_names()
    m = load_class_map("toy-occ3d")
    assert (m.source, m.target) == ("toy", "occ3d") and m.names[-1] == "free"
    assert m.source_lut[fmt.classes.free] == len(m.names) - 1  # the toy's free id 0 -> the common free


def test_synth_train_predict_eval_through_the_entry_point(tmp_path, capsys):
    from occkit.cli import main
    from occkit.formats import detect_format

    world, run, pred = tmp_path / "world", tmp_path / "run", tmp_path / "pred"
    assert (
        main(
            ["synth", "--format", "toy", "--out", str(world), "--scenes", "2", "--frames", "1"]
            + ["--image-size", "32", "88"]
        )
        == 0
    )
    assert detect_format(world).name == "toy" and not (world / ".occ3d-source").exists()
    frame = np.load(sorted((world / "frames").glob("*.npz"))[0])
    assert frame["labels"].max() <= 4 and frame["images"].shape[1:] == (32, 88, 3)
    # occkit wrote the world in the toy table's ids (its synthetic_classes): free is 0 here, and most voxels
    assert np.bincount(frame["labels"].ravel(), minlength=5).argmax() == 0
    args = ["--set", "optim.max_steps=2", "train.val_every=2", "train.ckpt_every=2", "supervised.class_counts=auto"]
    assert main(["train", "synth-cpu", "--data", str(world), "--out", str(run), "--no-progress", *args, *TINY]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert len(saved["supervised"]["class_counts"]) == 5  # counted from the toy labels, inside 'scored'
    assert saved["model"]["num_classes"] == 5 and saved["supervised"]["free"] == 0  # the format's table
    val = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"miou", "geometry_iou"} <= set(val[-1]) and set(val[-1]["iou"]) == {
        "ground",
        "object",
        "structure",
        "vegetation",
    }
    assert main(["predict", "--ckpt", str(run), "--data", str(world), "--out", str(pred), "--no-progress"]) == 0
    files = sorted(pred.glob("*.npz"))
    assert files and set(np.load(files[0])) == {"labels"}
    prov = json.loads((pred / "provenance.json").read_text())  # a package's reader fingerprints its labels too
    assert prov["gt_fingerprint"]["format"] == "toy" and set(prov["gt_fingerprint"]["labels"]) <= set(prov["tokens"])
    capsys.readouterr()
    out = tmp_path / "score.json"
    assert main(["eval", "--gt", str(world), "--pred", str(pred), "--json", str(out), "--no-progress"]) == 0
    assert "other data" not in capsys.readouterr().out  # its own data, by its labels' fingerprint
    r = json.loads(out.read_text())
    assert r["benchmark"] == "toy" and r["frames"] == len(files) and set(r["iou"]) == set(val[-1]["iou"])
    # --frustum: occkit's scoring loop applies the region to the toy metric, which knows nothing of
    # regions. A run that sees the front camera only (its config is all --frustum reads); predictions
    # right inside its frustum and wrong outside: 100 with --frustum, lower without.
    from occkit.commands.eval import FrustumRegion

    front, right = tmp_path / "front_run", tmp_path / "right"
    shutil.copytree(run, front)
    cfg = json.loads((front / "config.json").read_text())
    cfg["data"]["cameras"] = ["CAM_FRONT"]
    (front / "config.json").write_text(json.dumps(cfg))
    region = FrustumRegion(front, world, "val")
    right.mkdir()
    for f in files:
        gt = np.load(world / "frames" / f.name)["labels"]
        wrong = np.where(gt == 0, 1, 0).astype(np.uint8)
        np.savez(right / f.name, labels=np.where(region(f.stem), gt, wrong).astype(np.uint8))
    capsys.readouterr()
    whole, inside = tmp_path / "whole.json", tmp_path / "inside.json"
    assert main(["eval", "--gt", str(world), "--pred", str(right), "--json", str(whole), "--no-progress"]) == 0
    rc = main(["eval", "--gt", str(world), "--pred", str(right), "--frustum", str(front), "--json", str(inside)])
    assert rc == 0
    r_all, r_in = json.loads(whole.read_text()), json.loads(inside.read_text())
    assert r_in["region"] and r_in["frames"] == r_all["frames"] == len(files)
    assert r_in["miou"] == pytest.approx(100.0) and r_in["geometry_iou"] == pytest.approx(100.0)
    assert r_all["geometry_iou"] < 90.0
    capsys.readouterr()
    assert main(["eval", "--gt", str(world), "--pred", str(pred), "--metrics", "miou,rayiou"]) == 1
    assert "--metrics rayiou: the toy-format format computes miou, toy" in capsys.readouterr().err
