"""``occkit pseudolabel --quality`` counts its mIoU through the scoring core: the figures equal the Occ3D mIoU
computed here by hand from the files (a confusion matrix of the labels, under the ground truth's camera mask
and over every voxel)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from occkit.pseudolabel.quality import label_quality


def _miou(pairs, free=17, n=18):
    """Occ3D's mIoU in percent: IoU per class but free from the summed confusion, NaN (absent) skipped."""
    hist = np.zeros((n, n), np.int64)
    for gt, pred in pairs:
        hist += np.bincount(gt.astype(np.int64) * n + pred, minlength=n * n).reshape(n, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.diag(hist) / (hist.sum(0) + hist.sum(1) - np.diag(hist))
    return 100.0 * np.nanmean(np.delete(iou, free))


def test_the_quality_miou_is_occ3ds_from_the_files(synth_root, tmp_path):
    pseudo = shutil.copytree(synth_root, tmp_path / "pseudo")
    rng = np.random.default_rng(5)
    camera, every = [], []
    for path in sorted(pseudo.rglob("labels.npz")):
        z = dict(np.load(path))
        truth = np.load(synth_root / path.relative_to(pseudo))
        flip = rng.random(z["semantics"].shape) < 0.3
        z["semantics"][flip] = rng.integers(0, 18, int(flip.sum()))
        np.savez(path, **z)
        gt, pred, cam = truth["semantics"], z["semantics"], truth["mask_camera"].astype(bool)
        camera.append((gt[cam], pred[cam]))
        every.append((gt.ravel(), pred.ravel()))
    q = label_quality(pseudo, synth_root)
    assert q["frames"] == len(every) > 0
    assert q["miou_camera"] == pytest.approx(_miou(camera), rel=1e-9)
    assert q["miou_none"] == pytest.approx(_miou(every), rel=1e-9)
    assert 0 < q["miou_camera"] < 100
