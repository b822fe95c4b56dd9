"""occkit's two formats as a format module gives them: detection, opening a split, prediction files
written, found and read back, the metrics fed through ``Targets``, and a folder scored by the
format's own ``evaluate_folder`` equal to the generic scoring over its parts (what a format without
``evaluate_folder`` gets)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from occkit.data.semantickitti import SSC_SHAPE, write_bitpacked, write_calib, write_label
from occkit.formats import Targets, get_format
from occkit.labels import OCC3D_FREE
from occkit.scoring.folder import evaluate_predictions

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: raw SemanticKITTI ids of the learning classes 0..19 (one each)
RAW = np.array([0, 10, 11, 15, 18, 20, 30, 31, 32, 40, 44, 48, 49, 50, 51, 70, 71, 72, 80, 81], np.uint16)


def write_kitti(root, frames=("000000", "000005"), seed=0):
    rng = np.random.default_rng(seed)
    seq = root / "sequences" / "08"
    write_calib(seq / "calib.txt", np.hstack([np.eye(3), np.zeros((3, 1))]), np.eye(4))
    for f in frames:
        learn = np.zeros(SSC_SHAPE, np.uint8)
        occ = rng.random(SSC_SHAPE) < 0.05
        learn[occ] = rng.integers(1, 20, occ.sum())
        raw = RAW[learn]
        raw[0, :5, 0] = 52  # a raw id the completion map ignores (255)
        write_label(seq / "voxels" / f"{f}.label", raw)
        write_bitpacked(seq / "voxels" / f"{f}.invalid", rng.random(SSC_SHAPE) < 0.1)
    return root


def _same(a, b):
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-9)


def _noisy(labels: np.ndarray, classes: int, rng) -> np.ndarray:
    out = labels.copy()
    flip = rng.random(out.shape) < 0.3
    out[flip] = rng.integers(0, classes, flip.sum())
    return out.astype(np.uint8)


def test_occ3d_format_parts_and_scoring_equal_the_generic_scoring(tiny_occ3d_root, tmp_path):
    fmt = get_format("occ3d")
    assert fmt.detection.detect(tiny_occ3d_root) is not None and fmt.detection.detect(tmp_path) is None
    ds = fmt.open_split(tiny_occ3d_root, "all", load_images=False)
    assert ds.format_name == "occ3d" and len(ds.tokens) == len(ds) == 4
    rng = np.random.default_rng(1)
    pred_dir = tmp_path / "pred"
    preds = {}
    for t in ds.tokens:
        gt = ds.read_labels(t)["semantics"]
        preds[t] = _noisy(gt, 18, rng)
        path = fmt.predictions.write(pred_dir, t, preds[t])
        assert path == pred_dir / fmt.predictions.relpath(t)
    found = fmt.predictions.index(pred_dir)
    assert sorted(found) == sorted(ds.tokens)
    assert all(np.array_equal(fmt.predictions.read(found[t]), preds[t]) for t in ds.tokens)

    import torch

    from occkit.metrics.occ3d import Occ3DMetric

    assert fmt.scoring.evaluate_folder is None  # occkit's one scoring loop scores it
    direct = Occ3DMetric(
        mask="camera", free=OCC3D_FREE
    )  # the metric over the label files directly: the former own driver
    for t in ds.tokens:
        labels = ds.read_labels(t)
        direct.update(
            torch.from_numpy(preds[t])[None],
            torch.from_numpy(labels["semantics"])[None],
            mask_camera=torch.from_numpy(labels["mask_camera"].astype(bool))[None],
        )
    own = {"benchmark": "occ3d", **direct.compute()}
    generic = evaluate_predictions(fmt, tiny_occ3d_root, pred_dir, "all", progress=False, batch_size=3)
    samples = evaluate_predictions(  # the reader's samples instead of its scoring_labels: the same scores
        replace(fmt, open=lambda root, split, o: _NoScoringLabels(fmt.open(root, split, o))),
        tiny_occ3d_root,
        pred_dir,
        "all",
        progress=False,
    )
    assert samples["iou"] == generic["iou"] and samples["miou"] == generic["miou"]
    assert own["benchmark"] == generic["benchmark"] == "occ3d" and own["frames"] == generic["frames"] == 4
    for k in ("miou", "geometry_iou", "geometry_precision", "geometry_recall"):
        assert _same(own[k], generic[k]), k
    assert own["iou"].keys() == generic["iou"].keys() and all(
        _same(own["iou"][c], generic["iou"][c]) for c in own["iou"]
    )
    assert 0 < own["miou"] < 100
    lidar = evaluate_predictions(fmt, tiny_occ3d_root, pred_dir, "all", progress=False, mask="lidar")
    assert lidar["mask"] == "lidar" and not _same(lidar["miou"], own["miou"])


def test_semantickitti_format_parts_and_scoring_equal_the_generic_scoring(tmp_path):
    root = write_kitti(tmp_path / "gt")
    fmt = get_format("semantickitti")
    assert fmt.detection.detect(root) is not None and get_format("occ3d").detection.detect(root) is None
    ds = fmt.open_split(root, "val", load_images=False)
    assert ds.tokens == ["08/000000", "08/000005"]
    rng = np.random.default_rng(2)
    pred_dir = tmp_path / "pred"
    from occkit.metrics.ssc import SSCMetric

    own = SSCMetric()  # the SSC metric over the labels and .invalid files directly: the former own driver
    for i, t in enumerate(ds.tokens):
        labels, invalid = ds.load_gt_arrays(i)
        pred = _noisy(np.where(labels == 255, 0, labels), 20, rng)
        path = fmt.predictions.write(pred_dir, t, pred)
        assert path == pred_dir / "sequences" / "08" / "predictions" / f"{t.split('/')[1]}.label"
        assert np.array_equal(fmt.predictions.read(path), pred)
        own.update(
            *(torch.from_numpy(a[None].astype(np.int64)) for a in (pred, labels)), torch.from_numpy(invalid[None])
        )
    assert sorted(fmt.predictions.index(pred_dir)) == ds.tokens

    own = own.compute()
    assert fmt.scoring.evaluate_folder is None  # occkit's one scoring loop scores it
    generic = evaluate_predictions(fmt, root, pred_dir, "val", progress=False, batch_size=2)
    for k in ("ssc_miou", "completion_iou", "precision", "recall", "miou", "geometry_iou"):
        assert _same(own[k], generic[k]), k
    assert own["miou"] == own["ssc_miou"] and own["mask"] == generic["mask"] == "invalid"
    assert fmt.metric_choices() == ("ssc", "miou")  # eval --metrics rayiou is refused before any work


def test_the_metrics_take_targets_as_their_old_arguments():
    rng = torch.Generator().manual_seed(0)
    gt = torch.randint(0, 18, (2, 6, 5, 4), generator=rng)
    pred = torch.randint(0, 18, (2, 6, 5, 4), generator=rng)
    mc, ml = torch.rand(gt.shape, generator=rng) < 0.6, torch.rand(gt.shape, generator=rng) < 0.6
    occ, old = get_format("occ3d").new_metrics(mask="both")[0], get_format("occ3d").new_metrics(mask="both")[0]
    occ.update(pred, Targets(occupancy=gt, tokens=["a", "b"], mask_camera=mc, mask_lidar=ml))
    old.update(pred, gt, mc, ml)
    assert torch.equal(occ.counts, old.counts) and occ.counts.sum() == int((mc & ml).sum())

    ssc, ssc_old = get_format("semantickitti").new_metrics()[0], get_format("semantickitti").new_metrics()[0]
    gt20 = torch.randint(0, 20, (1, 6, 5, 4), generator=rng)
    pred20 = torch.randint(0, 20, (1, 6, 5, 4), generator=rng)
    valid = torch.rand(gt20.shape, generator=rng) < 0.7
    ssc.update(pred20, Targets(occupancy=gt20, tokens=["08/000000"], mask_camera=valid))  # not invalid
    ssc_old.update(pred20, gt20, ~valid)
    assert torch.equal(ssc.counts, ssc_old.counts) and ssc.counts.sum() == int(valid.sum())
    r = ssc.compute()
    assert r["miou"] == r["ssc_miou"] and r["geometry_iou"] == r["completion_iou"]


class _NoScoringLabels:
    """A reader without ``scoring_labels``: the loop reads its frames as samples."""

    def __init__(self, ds):
        self.ds = ds
        self.tokens = ds.tokens

    def index_of(self, token):
        return self.ds.index_of(token)

    def __getitem__(self, i):
        return self.ds[i]

    def __len__(self):
        return len(self.ds)


def test_the_scoring_loop_in_processes_gives_the_scores_of_one_process_for_every_format_it_scores(tmp_path):
    """`occkit eval --processes N` is occkit's loop's, not Occ3D's alone: SemanticKITTI's SSC metric
    counted in two spawned processes and merged gives every score of one process exactly."""
    frames = ("000000", "000005", "000010", "000015")
    root = write_kitti(tmp_path / "gt", frames=frames)
    fmt = get_format("semantickitti")
    rng = np.random.default_rng(4)
    ds = fmt.open_split(root, "val", load_images=False)
    for i, t in enumerate(ds.tokens):
        labels, _ = ds.load_gt_arrays(i)
        fmt.predictions.write(tmp_path / "pred", t, _noisy(np.where(labels == 255, 0, labels), 20, rng))
    one = evaluate_predictions(fmt, root, tmp_path / "pred", "val", progress=False)
    two = evaluate_predictions(fmt, root, tmp_path / "pred", "val", progress=False, processes=2, batch_size=1)
    assert one["frames"] == two["frames"] == 4
    assert two == one
