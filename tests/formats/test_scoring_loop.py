"""occkit's one scoring loop (occkit.scoring.folder.evaluate_predictions) applies what the command
asks for itself, never leaving it to a format's metric: ``--frustum``'s region changes the scores of
a metric that knows nothing of regions, and ``--metrics`` a format does not compute is refused
before any work (it used to exit 0 with mIoU only)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from occkit.data.sample import Sample
from occkit.formats import ClassTable, DatasetFormat, Detection, FormatScoring, PredictionFiles
from occkit.geometry.grid import Grid
from occkit.scoring.folder import evaluate_predictions

GRID = Grid(range_min=(-4.0, -4.0, -1.0), range_max=(4.0, 4.0, 1.0), voxel_size=(1.0, 1.0, 1.0))
#: free first (id 0), not last; ignore 9
TABLE = ClassTable(names=("free", "car", "road"), free=0, ignore=9)


class PlainMIoU:
    """A format's own metric that knows nothing of regions or masks: the mean IoU of the occupied
    classes over every voxel whose ground truth is not the ignore id."""

    name = "plain"

    def __init__(self) -> None:
        self.counts = np.zeros((3, 3), np.int64)

    def update(self, pred: torch.Tensor, target: Any) -> None:
        g, p = target.occupancy.reshape(-1).numpy(), pred.reshape(-1).numpy().astype(np.int64)
        keep = g != TABLE.ignore
        np.add.at(self.counts, (g[keep], p[keep]), 1)

    def merge(self, other: Any) -> Any:
        self.counts += other.counts
        return self

    def all_reduce(self) -> None:
        pass

    def compute(self) -> dict[str, Any]:
        c = self.counts
        iou = [c[k, k] / max(1, c[k].sum() + c[:, k].sum() - c[k, k]) for k in (1, 2)]
        return {"miou": 100.0 * float(np.mean(iou)), "geometry_iou": 0.0}


class Frames(torch.utils.data.Dataset):
    def __init__(self, root: Path) -> None:
        self.root, self.grid = root, GRID
        self.tokens = sorted(p.stem for p in (root / "labels").glob("*.npy"))
        self.frames = [type("F", (), {"token": t, "scene": "s"})() for t in self.tokens]

    def index_of(self, token: str) -> int:
        return self.tokens.index(token)

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, i: int) -> Sample:
        t = self.tokens[i]
        s = Sample(
            token=t,
            scene="s",
            timestamp=i,
            cam_names=(),
            images=torch.zeros(0, 3, 0, 0),
            intrinsics=torch.zeros(0, 3, 3),
            T_ego_from_cam=torch.zeros(0, 4, 4),
            T_global_from_ego=torch.eye(4, dtype=torch.float64),
        )
        s.occupancy = torch.from_numpy(np.load(self.root / "labels" / f"{t}.npy").astype(np.int64))
        return s


def _format(metrics=lambda options: [PlainMIoU()]) -> DatasetFormat:
    return DatasetFormat(
        name="plainfmt",
        summary="a test format",
        modality="multi-camera",
        classes=TABLE,
        grid=GRID,
        label_frame="ego",
        splits=("val",),
        open=lambda root, split, options: Frames(root),
        predictions=PredictionFiles(
            write=lambda folder, token, labels: np.save(folder / f"{token}.npy", labels),
            index=lambda folder: {p.stem: p for p in sorted(Path(folder).glob("*.npy"))},
            read=lambda path: np.load(path),
        ),
        detection=Detection(lambda root: None),
        scoring=FormatScoring(metrics),
    )


@pytest.fixture
def world(tmp_path):
    rng = np.random.default_rng(0)
    gts, preds = {}, {}
    for t in ("a", "b"):
        gt = rng.integers(0, 3, GRID.shape).astype(np.uint8)
        pred = np.where(rng.random(GRID.shape) < 0.3, rng.integers(0, 3, GRID.shape), gt).astype(np.uint8)
        (tmp_path / "gt" / "labels").mkdir(parents=True, exist_ok=True)
        (tmp_path / "pred").mkdir(exist_ok=True)
        np.save(tmp_path / "gt" / "labels" / f"{t}.npy", gt)
        np.save(tmp_path / "pred" / f"{t}.npy", pred)
        gts[t], preds[t] = gt, pred
    return tmp_path, gts, preds


def _expected(gts, preds, region=None):
    m = PlainMIoU()
    for t in gts:
        g = gts[t].astype(np.int64)
        if region is not None:
            g = np.where(region(t), g, TABLE.ignore)
        m.update(torch.from_numpy(preds[t]), type("T", (), {"occupancy": torch.from_numpy(g)})())
    return m.compute()["miou"]


class HalfRegion:
    """The voxels with x < 0: half the grid."""

    def __call__(self, token: str) -> np.ndarray:
        r = np.zeros(GRID.shape, bool)
        r[: GRID.shape[0] // 2] = True
        return r

    def __str__(self) -> str:
        return "x < 0"


def test_the_region_is_applied_by_occkit_to_a_metric_that_knows_nothing_of_regions(world):
    root, gts, preds = world
    fmt = _format()
    whole = evaluate_predictions(fmt, root / "gt", root / "pred", "val", progress=False, workers=1)
    half = evaluate_predictions(fmt, root / "gt", root / "pred", "val", progress=False, workers=1, region=HalfRegion())
    assert whole["miou"] == pytest.approx(_expected(gts, preds))
    assert half["miou"] == pytest.approx(_expected(gts, preds, HalfRegion()))
    assert half["miou"] != pytest.approx(whole["miou"]) and half["region"] == "x < 0"


def test_a_region_needs_an_ignore_id(world):
    root, _, _ = world
    fmt = dataclasses.replace(_format(), classes=ClassTable(names=TABLE.names, free=0, ignore=None))
    with pytest.raises(ValueError, match="no ignore id"):
        evaluate_predictions(fmt, root / "gt", root / "pred", "val", progress=False, region=HalfRegion())


def test_metrics_a_format_does_not_compute_are_refused_by_name():
    fmt = _format()
    assert fmt.metric_choices(("miou", "rayiou")) == ("miou", "plain")
    named = dataclasses.replace(fmt, scoring=dataclasses.replace(fmt.scoring, metric_names=("miou", "rayiou")))
    assert named.metric_choices() == ("miou", "rayiou")


def test_eval_refuses_metrics_the_format_lacks_before_any_work(tmp_path, capsys, monkeypatch):
    from occkit.cli import main
    from occkit.formats import registry

    fmt = dataclasses.replace(_format(), source="entry point plainfmt = tests:FORMAT of a test package")
    monkeypatch.setitem(registry.formats(), "plainfmt", fmt)
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    rc = main(
        ["eval", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred"), "--format", "plainfmt"]
        + ["--metrics", "miou,rayiou", "--no-progress"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1, err
    assert "--metrics rayiou" in err[0] and "computes miou, plain" in err[0]


def test_a_split_the_format_lacks_is_refused_with_the_formats_own_names(world):
    root, _, _ = world
    with pytest.raises(ValueError, match=r"--split mini: .* whose splits are val, all"):
        _format().open_split(root / "gt", "mini")
    fmt = dataclasses.replace(_format(), splits=("val", "mini"))
    assert fmt.open_split(root / "gt", "mini").tokens == ["a", "b"]  # a package's own split name works


def test_eval_format_forced_on_another_layout_says_so(tmp_path, capsys):
    # it blamed the missing annotations.json of the forced format's reader
    from occkit.cli import main

    k360 = tmp_path / "k360"
    (k360 / "data_2d_raw" / "2013_05_28_drive_0000_sync" / "voxels").mkdir(parents=True)
    (tmp_path / "pred").mkdir()
    assert main(["eval", "--gt", str(k360), "--pred", str(tmp_path / "pred"), "--format", "occ3d"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--format occ3d:" in err[0] and "is not a folder of the Occ3D-nuScenes format" in err[0]
    assert "kitti360 (" in err[0] and "annotations.json" not in err[0]
