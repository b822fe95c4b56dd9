"""Class maps between formats (configs/classmaps/*.yaml) and ``occkit eval --class-map``: a model's
predictions scored on another table's common classes, equal to remapping both sides by hand and
scoring them; a class left unmapped is one line naming it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from occkit.cli import main
from occkit.formats import get_format
from occkit.formats.classmap import DROPPED, class_map_names, load_class_map
from occkit.metrics.occ3d import Occ3DMetric

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_shipped_class_maps_map_every_class():
    assert {"occ3d-coarse", "occ3d-semantickitti"} <= set(class_map_names())
    m = load_class_map("occ3d-semantickitti")
    occ, kitti = get_format("occ3d").classes, get_format("semantickitti").classes
    car = m.names.index("car")
    assert m.source_lut[occ.names.index("car")] == car and m.target_lut[kitti.names.index("car")] == car
    assert m.source_lut[occ.free] == m.target_lut[kitti.free] == m.free == len(m.names) - 1
    assert m.source_lut[occ.names.index("others")] == DROPPED and m.target_lut[255] == DROPPED  # ignored stays out
    assert m.target_lut[kitti.names.index("parking")] == m.names.index("road")


def test_a_class_left_unmapped_is_one_line_naming_it(tmp_path):
    bad = tmp_path / "bad.yaml"
    text = (load_class_map("occ3d-coarse").path).read_text().replace("drop:\n  from: [others]", "drop:\n  from: []")
    bad.write_text(text)
    with pytest.raises(ValueError) as e:
        load_class_map(bad)
    assert "\n" not in str(e.value) and "occ3d class 'others' is unmapped" in str(e.value) and str(bad) in str(e.value)
    bad.write_text(text.replace("from: [manmade]", "from: [manmade, car]"))
    with pytest.raises(ValueError, match="occ3d class 'car' is mapped twice"):
        load_class_map(bad)
    bad.write_text(text.replace("from: [manmade]", "from: [skyscraper]"))
    with pytest.raises(ValueError, match="'skyscraper' is not a class of occ3d"):
        load_class_map(bad)
    with pytest.raises(FileNotFoundError, match="occ3d-coarse"):
        load_class_map("no-such-map")


def test_eval_with_a_class_map_equals_remapping_both_sides_by_hand(tiny_occ3d_root, tmp_path, capsys):
    fmt = get_format("occ3d")
    ds = fmt.open_split(tiny_occ3d_root, "all", load_images=False)
    rng = np.random.default_rng(3)
    cmap = load_class_map("occ3d-coarse")
    hand = Occ3DMetric(mask="camera", num_classes=len(cmap.names), class_names=cmap.names, free=cmap.free)
    for i, t in enumerate(ds.tokens):
        gt = ds.read_labels(t)
        pred = gt["semantics"].copy()
        flip = rng.random(pred.shape) < 0.3
        pred[flip] = rng.integers(0, 18, flip.sum())
        fmt.predictions.write(tmp_path / "pred", t, pred)
        p, g = cmap.source_lut[pred], cmap.target_lut[gt["semantics"]]
        keep = (p != DROPPED) & (g != DROPPED)
        hand.update(
            torch.from_numpy(np.where(keep, p, cmap.free)[None]),
            torch.from_numpy(np.where(keep, g, cmap.free)[None]),
            mask_camera=torch.from_numpy(gt["mask_camera"].astype(bool)[None]),
            region=torch.from_numpy(keep[None]),
        )
    out = tmp_path / "coarse.json"
    argv = ["eval", "--gt", str(tiny_occ3d_root), "--pred", str(tmp_path / "pred"), "--split", "all"]
    assert main([*argv, "--class-map", "occ3d-coarse", "--json", str(out), "--no-progress"]) == 0
    r, expect = json.loads(out.read_text()), hand.compute()
    assert r["miou"] == pytest.approx(expect["miou"]) and r["geometry_iou"] == pytest.approx(expect["geometry_iou"])
    assert list(r["iou"]) == list(cmap.names[:-1]) and r["class_map"].endswith("occ3d-coarse.yaml")
    capsys.readouterr()
    # a class map onto another format's classes, or of another grid: one line each
    assert main([*argv, "--class-map", "occ3d-semantickitti"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "maps onto semantickitti, but --gt" in err
    assert main([*argv, "--class-map", "occ3d-coarse", "--metrics", "rayiou"]) == 1
    assert "--metrics not taken" in capsys.readouterr().err


def test_a_class_map_between_grids_that_differ_is_one_line(tmp_path, capsys):
    from test_builtin_formats import write_kitti

    root = write_kitti(tmp_path / "kitti")
    (tmp_path / "pred").mkdir()
    assert (
        main(["eval", "--gt", str(root), "--pred", str(tmp_path / "pred"), "--class-map", "occ3d-semantickitti"]) == 1
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "occ3d's grid (200, 200, 16)" in err and "(256, 256, 32)" in err
