"""Occ3D mIoU: hand-computed matrices, the official per-frame formula (numpy, written here),
NaN for absent classes, empty masks, merging and the streaming accumulator."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from occkit.labels import OCC3D_CLASSES, OCC3D_FREE
from occkit.metrics.confusion import confusion_matrix
from occkit.metrics.occ3d import Occ3DMetric, iou_from_confusion, occ3d_scores, select_mask


def reference_occ3d(preds, gts, masks, n=18):
    """The official Occ3D per-frame code, straightforwardly (numpy)."""
    hist = np.zeros((n, n), dtype=np.int64)
    for p, g, m in zip(preds, gts, masks):
        mg = g[m] if m is not None else g.reshape(-1)
        mp = p[m] if m is not None else p.reshape(-1)
        k = (mg >= 0) & (mg < n)
        hist += np.bincount(n * mg[k].astype(int) + mp[k].astype(int), minlength=n * n).reshape(n, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.diag(hist) / (hist.sum(1) + hist.sum(0) - np.diag(hist))
    return hist, iou, np.nanmean(iou[:17]) * 100


def test_hand_computed_small():
    # 3 classes (2 = free). gt / pred over 6 voxels.
    gt = torch.tensor([[0, 0, 1, 2, 2, 1]])
    pred = torch.tensor([[0, 1, 1, 2, 0, 2]])
    h = confusion_matrix(gt, pred, 3)
    expected = torch.tensor([[1, 1, 0], [0, 1, 1], [1, 0, 1]])
    assert torch.equal(h, expected)
    iou = iou_from_confusion(h)
    # class 0: tp 1, row 2, col 2 -> 1/3 ; class 1: 1/(2+2-1) = 1/3 ; class 2: 1/(2+2-1)
    assert torch.allclose(iou, torch.tensor([1 / 3, 1 / 3, 1 / 3], dtype=torch.float64))
    s = occ3d_scores(h, ("a", "b", "free"), free=2)
    assert s["miou"] == pytest.approx(100 / 3)
    # geometry: occupied = {0,1}. gt occupied voxels 0..3 and 5; pred occupied 0,1,2,4.
    # tp = voxels 0,1,2 -> 3 ; fp = gt free & pred occ = voxel 4 -> 1 ; fn = gt occ & pred free = 5 -> 1
    assert s["geometry_iou"] == pytest.approx(100 * 3 / 5)
    # precision 3 / (3 + 1), recall 3 / (3 + 1)
    assert s["geometry_precision"] == pytest.approx(75.0)
    assert s["geometry_recall"] == pytest.approx(75.0)


def test_geometry_precision_recall_tell_over_from_under_prediction():
    # 2 classes (1 = free); gt: 2 occupied of 8; pred: 6 occupied, covering both -> P 2/6, R 1
    gt = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1]])
    pred = torch.tensor([[0, 0, 0, 0, 0, 0, 1, 1]])
    s = occ3d_scores(confusion_matrix(gt, pred, 2), ("a", "free"), free=1)
    assert s["geometry_precision"] == pytest.approx(100 * 2 / 6)
    assert s["geometry_recall"] == pytest.approx(100.0)
    assert s["geometry_iou"] == pytest.approx(100 * 2 / 6)
    # nothing predicted occupied: precision undefined (NaN), recall 0
    s = occ3d_scores(confusion_matrix(gt, torch.ones_like(gt), 2), ("a", "free"), free=1)
    assert math.isnan(s["geometry_precision"]) and s["geometry_recall"] == 0.0


def test_mask_and_absent_class_nan():
    gt = torch.full((1, 4, 4, 2), 17)
    gt[0, 0, 0, 0] = 4  # car
    pred = gt.clone()
    mask = torch.zeros_like(gt, dtype=torch.bool)
    mask[0, :2] = True
    m = Occ3DMetric(mask="camera", free=OCC3D_FREE)
    m.update(pred, gt, mask_camera=mask)
    r = m.compute()
    assert r["iou"]["car"] == pytest.approx(100.0)
    assert math.isnan(r["iou"]["bus"])
    assert r["miou"] == pytest.approx(100.0)  # NaN classes skipped
    assert r["geometry_iou"] == pytest.approx(100.0)
    assert r["frames"] == 1 and r["mask"] == "camera"
    assert set(r["iou"]) == set(OCC3D_CLASSES[:17])


def test_region_counts_only_its_voxels_on_top_of_the_mask():
    # 1 x 4 x 1 x 1: car, car, free, free; the prediction is wrong at voxels 1 (car -> free) and 2 (free -> car)
    gt = torch.tensor([4, 4, 17, 17]).view(1, 4, 1, 1)
    pred = torch.tensor([4, 17, 4, 17]).view(1, 4, 1, 1)
    camera = torch.tensor([True, True, True, False]).view(1, 4, 1, 1)
    region = torch.tensor([True, False, True, True]).view(1, 4, 1, 1)
    # camera & region = voxels 0 and 2: car tp 1, fp 1 (voxel 2) -> 1/2; free: tp 0 -> 0
    m = Occ3DMetric(mask="camera", free=OCC3D_FREE)
    m.update(pred, gt, mask_camera=camera, region=region)
    r = m.compute()
    assert r["iou"]["car"] == pytest.approx(50.0)
    assert r["geometry_iou"] == pytest.approx(50.0)  # occupied: tp voxel 0, fp voxel 2
    assert r["geometry_precision"] == pytest.approx(50.0) and r["geometry_recall"] == pytest.approx(100.0)
    # mask none: the region alone, here voxels 1, 2, 3: car in gt at 1, predicted at 2 -> IoU 0, recall 0
    m = Occ3DMetric(mask="none", free=OCC3D_FREE)
    m.update(pred, gt, region=torch.tensor([False, True, True, True]).view(1, 4, 1, 1))
    r = m.compute()
    assert r["iou"]["car"] == pytest.approx(0.0) and r["geometry_recall"] == pytest.approx(0.0)
    # without a region: camera = voxels 0, 1, 2: car tp 1 of gt 2 + pred 2 - 1 = 3 -> 1/3
    m = Occ3DMetric(mask="camera", free=OCC3D_FREE)
    m.update(pred, gt, mask_camera=camera)
    assert m.compute()["iou"]["car"] == pytest.approx(100 / 3)
    with pytest.raises(ValueError, match="region: expected shape"):
        Occ3DMetric(mask="none", free=OCC3D_FREE).update(pred, gt, region=region[:, :2])


def test_empty_mask_gives_nan_everywhere():
    gt = torch.randint(0, 18, (2, 5, 5, 3))
    m = Occ3DMetric(mask="camera", free=OCC3D_FREE)
    m.update(gt, gt, mask_camera=torch.zeros_like(gt, dtype=torch.bool))
    r = m.compute()
    assert int(m.counts.sum()) == 0
    assert math.isnan(r["miou"]) and math.isnan(r["geometry_iou"])
    assert all(math.isnan(v) for v in r["iou"].values())


def test_perfect_prediction_is_100():
    g = torch.Generator().manual_seed(0)
    gt = torch.randint(0, 18, (3, 10, 10, 4), generator=g)
    mc = torch.rand(gt.shape, generator=g) > 0.3
    m = Occ3DMetric(free=OCC3D_FREE)
    m.update(gt, gt, mask_camera=mc)
    r = m.compute()
    assert r["miou"] == pytest.approx(100.0)
    assert r["geometry_iou"] == pytest.approx(100.0)


@pytest.mark.parametrize("mode", ["camera", "lidar", "both", "none"])
def test_against_official_reference_random(mode):
    rng = np.random.default_rng(1)
    F, shape = 4, (12, 10, 6)
    gts = [rng.integers(0, 18, shape).astype(np.uint8) for _ in range(F)]
    preds = [np.where(rng.random(shape) < 0.5, g, rng.integers(0, 18, shape)).astype(np.uint8) for g in gts]
    mcs = [rng.random(shape) < 0.6 for _ in range(F)]
    mls = [rng.random(shape) < 0.6 for _ in range(F)]
    masks = {"camera": mcs, "lidar": mls, "both": [a & b for a, b in zip(mcs, mls)], "none": [None] * F}[mode]
    hist_ref, iou_ref, miou_ref = reference_occ3d(preds, gts, masks)

    m = Occ3DMetric(mask=mode, free=OCC3D_FREE)
    for i in range(0, F, 2):  # batches of 2
        sl = slice(i, i + 2)
        m.update(
            torch.from_numpy(np.stack(preds[sl])),
            torch.from_numpy(np.stack(gts[sl])),
            mask_camera=torch.from_numpy(np.stack(mcs[sl])),
            mask_lidar=torch.from_numpy(np.stack(mls[sl]).astype(np.uint8)),
        )
    assert np.array_equal(m.counts.numpy(), hist_ref)
    r = m.compute()
    assert r["miou"] == pytest.approx(miou_ref, abs=1e-9)
    for c, name in enumerate(OCC3D_CLASSES[:17]):
        assert r["iou"][name] == pytest.approx(100 * iou_ref[c], abs=1e-9)
    assert r["frames"] == F and r["mask"] == mode


def test_merge_equals_single_and_logits_input():
    g = torch.Generator().manual_seed(2)
    gt = torch.randint(0, 18, (4, 6, 6, 3), generator=g)
    logits = torch.randn(4, 18, 6, 6, 3, generator=g)
    mc = torch.rand(gt.shape, generator=g) > 0.5
    whole = Occ3DMetric(free=OCC3D_FREE)
    whole.update(logits, gt, mask_camera=mc)
    a, b = Occ3DMetric(free=OCC3D_FREE), Occ3DMetric(free=OCC3D_FREE)
    a.update(logits[:2].argmax(1), gt[:2], mask_camera=mc[:2])
    b.update(logits[2:].argmax(1), gt[2:], mask_camera=mc[2:])
    a.merge(b)
    assert torch.equal(a.counts, whole.counts) and a.frames == 4
    a.all_reduce()  # no process group: no-op
    assert torch.equal(a.counts, whole.counts) and a.frames == 4
    a.reset()
    assert int(a.counts.sum()) == 0 and a.frames == 0


def test_invalid_inputs():
    gt = torch.zeros(1, 2, 2, 2, dtype=torch.long)
    m = Occ3DMetric(mask="camera", free=OCC3D_FREE)
    with pytest.raises(ValueError, match="mask_camera"):
        m.update(gt, gt)
    with pytest.raises(ValueError, match="shape"):
        m.update(gt[:, :1], gt, mask_camera=torch.ones_like(gt, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\[0, 18\)"):
        m.update(gt + 18, gt, mask_camera=torch.ones_like(gt, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask must be one of"):
        Occ3DMetric(mask="radar", free=OCC3D_FREE)
    with pytest.raises(ValueError, match="mask_lidar"):
        select_mask("both", torch.ones(2, dtype=torch.bool), None)
    with pytest.raises(ValueError, match="merge"):
        Occ3DMetric(mask="camera", free=OCC3D_FREE).merge(Occ3DMetric(mask="lidar", free=OCC3D_FREE))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    g = torch.Generator().manual_seed(3)
    gt = torch.randint(0, 18, (2, 8, 8, 4), generator=g)
    pred = torch.randint(0, 18, (2, 8, 8, 4), generator=g)
    mc = torch.rand(gt.shape, generator=g) > 0.5
    a, b = Occ3DMetric(free=OCC3D_FREE), Occ3DMetric(free=OCC3D_FREE)
    a.update(pred, gt, mask_camera=mc)
    b.update(pred.cuda(), gt.cuda(), mask_camera=mc.cuda())
    assert b.counts.is_cuda and torch.equal(a.counts, b.counts.cpu())


def test_uint8_fast_path_matches_general_path():
    g = torch.Generator().manual_seed(4)
    gt = torch.randint(0, 18, (2, 7, 5, 3), generator=g)
    pred = torch.randint(0, 18, (2, 7, 5, 3), generator=g)
    mask = torch.rand(gt.shape, generator=g) > 0.4
    for m in (mask, None):
        fast = confusion_matrix(gt.to(torch.uint8), pred.to(torch.uint8), 18, m)
        slow = confusion_matrix(gt, pred, 18, m)
        assert torch.equal(fast, slow) and fast.dtype == torch.int64
    with pytest.raises(ValueError, match="up to 200"):
        confusion_matrix(gt.to(torch.uint8), torch.full_like(pred, 200).to(torch.uint8), 18, mask)


@pytest.mark.parametrize("threads", [1, 2])
def test_uint8_fast_path_in_pieces_and_threads(threads):
    g = torch.Generator().manual_seed(5)
    shape = (3, 200, 200, 16)  # 1.92 M voxels: several pieces, the last one short
    gt = torch.randint(0, 18, shape, generator=g, dtype=torch.uint8)
    pred = torch.where(
        torch.rand(shape, generator=g) < 0.7, gt, torch.randint(0, 18, shape, generator=g, dtype=torch.uint8)
    )
    mask = torch.rand(shape, generator=g) > 0.4
    for m in (mask, None):
        fast = confusion_matrix(gt, pred, 18, m, threads=threads)
        slow = confusion_matrix(gt.long(), pred.long(), 18, m)
        assert torch.equal(fast, slow)


def _driving_like(g: torch.Generator, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mostly free volumes (ground, a few boxes, scattered voxels) with a coherent camera-like
    mask and a prediction that differs in places: long runs of one class pair."""
    gt = torch.full(shape, 17, dtype=torch.uint8)
    gt[..., :2] = 11
    for _ in range(6):
        x, y = (int(v) for v in torch.randint(0, shape[1] - 4, (2,), generator=g))
        gt[:, x : x + 4, y : y + 3, 2:5] = 4
    scatter = torch.rand(shape, generator=g) < 0.01
    gt[scatter] = torch.randint(0, 17, (int(scatter.sum()),), generator=g, dtype=torch.uint8)
    pred = torch.where(
        torch.rand(shape, generator=g) < 0.05, torch.randint(0, 18, shape, generator=g, dtype=torch.uint8), gt
    )
    mask = torch.zeros(shape, dtype=torch.bool)
    mask[:, : shape[1] // 2, :, : shape[3] - 3] = True
    mask[:, shape[1] // 2 :, 1::4] = True  # a striped region: words partly masked
    return gt, pred, mask


@pytest.mark.parametrize("shape", [(2, 40, 30, 16), (1, 13, 11, 7), (3, 200, 200, 16)])
@pytest.mark.parametrize("threads", [1, 2])
def test_uint8_fast_path_on_driving_like_volumes(shape, threads, monkeypatch):
    """The interleaved histogram copies give the plain count on volumes of long runs of one class
    pair (free air, masked-out stretches), several pieces with short tails included."""
    import occkit.metrics.confusion as confusion

    if shape[1] < 100:
        monkeypatch.setattr(confusion, "_PIECE", 1 << 12)
    gt, pred, mask = _driving_like(torch.Generator().manual_seed(6), shape)
    for m in (mask, None):
        fast = confusion_matrix(gt, pred, 18, m, threads=threads)
        slow = confusion_matrix(gt.long(), pred.long(), 18, m)
        assert torch.equal(fast, slow) and int(fast.sum()) == int(gt.numel() if m is None else m.sum())


def test_uint8_counts_of_many_classes_do_not_overflow():
    """100 classes without a mask: the interleaved int16 keys would pass 2**15, so the general path
    counts them; the matrix is the plain one."""
    g = torch.Generator().manual_seed(7)
    gt = torch.randint(0, 100, (3, 50, 40), generator=g, dtype=torch.uint8)
    pred = torch.randint(0, 100, (3, 50, 40), generator=g, dtype=torch.uint8)
    assert torch.equal(confusion_matrix(gt, pred, 100), confusion_matrix(gt.long(), pred.long(), 100))


def test_a_class_predicted_without_ground_truth_is_named_and_counted_as_zero():
    """The nanmean's two roads for a class the frames lack: predicted -> IoU 0, in the mean and named in
    ``only_predicted``; not predicted -> NaN, out of the mean. The same frames, two predictions."""
    from occkit.metrics.evaluate import format_table

    names = ("car", "bus", "truck", "free")  # no bus and no truck in the ground truth
    gt = torch.tensor([[0, 0, 3, 3, 3, 3]])
    with_bus = torch.tensor([[0, 0, 1, 3, 3, 3]])  # car 2/2 right; one free voxel called bus
    without = torch.tensor([[0, 0, 3, 3, 3, 3]])
    a = occ3d_scores(confusion_matrix(gt, with_bus, 4), names, free=3)
    b = occ3d_scores(confusion_matrix(gt, without, 4), names, free=3)
    assert a["iou"]["bus"] == 0.0 and math.isnan(a["iou"]["truck"]) and a["only_predicted"] == ["bus"]
    assert a["miou"] == pytest.approx(100 / 2)  # car 100 and bus 0
    assert math.isnan(b["iou"]["bus"]) and b["only_predicted"] == [] and b["miou"] == pytest.approx(100.0)
    table = format_table({**a, "frames": 1})
    assert table.splitlines()[-1].startswith("predicted, with no ground-truth voxel in these frames: bus (IoU 0,")
    assert "predicted, with no ground-truth" not in format_table({**b, "frames": 1})


def test_the_metric_takes_the_free_class_from_its_caller_first_or_last():
    """``free`` is the table's free id, any class: free first (SurroundOcc's 0) scores as the same
    table with free moved last; one outside the classes is refused."""
    gen = torch.Generator().manual_seed(0)
    gt = torch.randint(0, 4, (2, 5, 5, 3), generator=gen)
    pred = torch.randint(0, 4, (2, 5, 5, 3), generator=gen)
    first = Occ3DMetric(mask="none", num_classes=4, class_names=("empty", "a", "b", "c"), free=0)
    first.update(pred, gt)
    last = Occ3DMetric(mask="none", num_classes=4, class_names=("a", "b", "c", "empty"), free=3)
    last.update((pred + 3) % 4, (gt + 3) % 4)  # the same labels with free moved last
    a, b = first.compute(), last.compute()
    assert a["miou"] == pytest.approx(b["miou"]) and a["geometry_iou"] == pytest.approx(b["geometry_iou"])
    assert a["iou"] == pytest.approx(b["iou"])
    with pytest.raises(ValueError, match="free 4 is not a class id"):
        Occ3DMetric(num_classes=4, class_names=("a", "b", "c", "d"), free=4)
