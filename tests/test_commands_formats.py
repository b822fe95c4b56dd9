"""``occkit render``, ``show``, ``pseudolabel``, ``retrieval`` and ``demo`` on a format other than
Occ3D (SurroundOcc: 17 classes, empty = 0, noise = 255, LiDAR frame): the first two draw it in its
own classes, free id and palette; the others, which cannot serve it (pseudolabel: a format outside
Occ3D's family, and ``--quality`` on SurroundOcc), refuse in one line naming it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from occkit.cli import main
from occkit.formats import get_format


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("commands_formats") / "surroundocc"
    synth = ["synth", "--format", "surroundocc", "--out", str(root), "--scenes", "2", "--frames", "1"]
    assert main([*synth, "--image-size", "32", "96", "--val-fraction", "0.5", "--seed", "0"]) == 0
    yield root
    torch.set_num_threads(n)


def _first(root, split="all"):
    ds = get_format("surroundocc").open_split(root, split, load_images=False)
    return ds, ds.frames[0].token


def _one_line_error(capsys, words) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for w in words:
        assert w in err[0], (w, err[0])


def test_render_draws_the_formats_classes_with_its_free_id(world, tmp_path) -> None:
    """Rendered semantics are SurroundOcc ids: empty (0) exactly where no ray meets a surface, a class
    1..16 wherever one does (Occ3D's assumptions drew empty 0 as a surface and free as 17)."""
    _, token = _first(world)
    out = tmp_path / "render"
    assert main(["render", "--data", str(world), "--token", token, "--out", str(out), "--stride", "2"]) == 0
    assert (out / "render.png").is_file()
    for cam in ("CAM_FRONT", "CAM_BACK"):
        sem = np.load(out / f"{cam}_semantics.npy")
        depth = np.load(out / f"{cam}_depth.npy")
        assert (depth > 0).any() and (depth == 0).any()  # the sky leaves the grid, the road does not
        assert (sem[depth == 0] == 0).all()
        assert ((sem[depth > 0] >= 1) & (sem[depth > 0] <= 16)).all()


def test_show_scores_the_formats_own_prediction_files(world, tmp_path, capsys) -> None:
    """A prediction equal to the ground truth, written as SurroundOcc prediction files: the picture is
    written and the frame scores 100 mIoU (an Occ3D reading of the files fails or scores otherwise)."""
    fmt = get_format("surroundocc")
    ds, token = _first(world, "val")
    ds = fmt.open_split(world, "val", load_images=False)
    labels = ds[ds.index_of(token)].occupancy.numpy()
    pred = tmp_path / "pred"
    fmt.predictions.write(pred, token, np.where(labels == 255, 0, labels).astype(np.uint8))
    png = tmp_path / "show.png"
    args = ["show", str(world), "--split", "val", "--token", token, "--pred", str(pred), "--out", str(png)]
    assert main([*args, "--panel-height", "64"]) == 0
    out = capsys.readouterr().out
    assert png.is_file()
    assert "mIoU 100.00, geometry IoU 100.00" in out, out


@pytest.mark.parametrize(
    ("fmt", "folder"), [("nyu", "NYUtrain"), ("semantickitti", "sequences")], ids=["no-label-writer", "kitti-family"]
)
def test_pseudolabel_refuses_a_format_of_another_family(fmt, folder, tmp_path, capsys) -> None:
    """NYUv2 (no label writer) and SemanticKITTI (the KITTI family): no Occ3D-schema cameras and poses
    to lift with, no conversion from Occ3D's layout: one line naming the format, nothing written.
    (SurroundOcc and OpenOccupancy get their own layout: tests/test_method_formats.py, easyocc.)"""
    data = tmp_path / fmt
    (data / folder).mkdir(parents=True)
    args = ["pseudolabel", "--data", str(data), "--priors", str(tmp_path / "priors"), "--out", str(tmp_path / "p")]
    assert main([*args, "--no-progress"]) != 0
    _one_line_error(capsys, (f"format {fmt}", "nuscenes family", "occkit train easyocc"))
    assert not (tmp_path / "p").exists()


def test_pseudolabel_quality_refuses_a_converted_layout(world, tmp_path, capsys) -> None:
    args = ["pseudolabel", "--data", str(world), "--out", str(tmp_path / "p"), "--quality"]
    assert main(args) != 0
    _one_line_error(capsys, ("--quality", "surroundocc", "occkit eval --gt"))
    assert not (tmp_path / "p").exists()


def test_retrieval_refuses_a_format_without_occ3d_classes(world, tmp_path, capsys) -> None:
    args = ["retrieval", "--data", str(world), "--lifted", "--priors", str(tmp_path / "priors")]
    assert main(args) != 0
    _one_line_error(capsys, ("surroundocc", "class ids of Occ3D-nuScenes"))


def test_demo_refuses_a_preset_of_another_format_before_writing(tmp_path, capsys) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--from-scratch", "--config", "surroundocc-cpu", "--out", str(out)]) != 0
    _one_line_error(capsys, ("surroundocc-cpu", "surroundocc", "occ3d"))
    assert not out.exists()
