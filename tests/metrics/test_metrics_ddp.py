"""The accumulators' all_reduce across two real torch.distributed (gloo) processes equals one
process seeing every frame."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from occkit.geometry.grid import Grid
from occkit.labels import OCC3D_FREE
from occkit.metrics.occ3d import Occ3DMetric
from occkit.metrics.rayiou import RayIoUMetric
from occkit.metrics.ssc import SSCMetric

SMALL = Grid((-4.0, -4.0, -1.0), (4.0, 4.0, 2.2), (0.4, 0.4, 0.4))  # 20 x 20 x 8


def _data():
    g = torch.Generator().manual_seed(0)
    gt = torch.randint(0, 18, (4, 20, 20, 8), generator=g)
    gt[..., 4:] = 17
    pred = torch.where(torch.rand(gt.shape, generator=g) < 0.7, gt, torch.randint(0, 18, gt.shape, generator=g))
    mask = torch.rand(gt.shape, generator=g) < 0.6
    origins = torch.tensor([[[0.1, 0.2, 0.9]]]).expand(4, 1, 3)
    ssc_gt = torch.randint(0, 20, (4, 6, 6, 4), generator=g)
    ssc_pred = torch.randint(0, 20, (4, 6, 6, 4), generator=g)
    return gt, pred, mask, origins, ssc_gt, ssc_pred


def _metrics():
    return Occ3DMetric(free=OCC3D_FREE), RayIoUMetric(grid=SMALL, free=OCC3D_FREE), SSCMetric()


def _update(ms, sl):
    gt, pred, mask, origins, ssc_gt, ssc_pred = _data()
    ms[0].update(pred[sl], gt[sl], mask_camera=mask[sl])
    ms[1].update(pred[sl], gt[sl], origins[sl])
    ms[2].update(ssc_pred[sl], ssc_gt[sl])


def _worker(rank: int, world: int, init: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        ms = _metrics()
        _update(ms, slice(2 * rank, 2 * rank + 2))
        for m in ms:
            m.all_reduce()
        if rank == 0:
            torch.save(
                {
                    "occ": ms[0].counts,
                    "occ_frames": ms[0].frames,
                    "ray": ms[1].state,
                    "ssc": ms[2].counts,
                    "ssc_frames": ms[2].frames,
                },
                out,
            )
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not available")
def test_all_reduce_two_processes(tmp_path):
    init = f"file://{tmp_path / 'rendezvous'}"
    out = str(tmp_path / "rank0.pt")
    mp.spawn(_worker, args=(2, init, out), nprocs=2, join=True)
    got = torch.load(out, weights_only=True)
    ms = _metrics()
    _update(ms, slice(0, 4))
    assert torch.equal(got["occ"], ms[0].counts) and got["occ_frames"] == 4
    assert torch.equal(got["ray"], ms[1].state)
    assert torch.equal(got["ssc"], ms[2].counts) and got["ssc_frames"] == 4
