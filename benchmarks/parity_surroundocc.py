"""occkit's SurroundOcc format against SurroundOcc's released code, run unchanged on the same files.

What is compared, frame by frame on a SurroundOcc-layout folder that occkit wrote (the synthetic
world, ``occkit synth --format surroundocc``, or ``--data`` of any such folder):

- **labels**: each label file read by the released ``LoadOccupancy`` (``projects/mmdet3d_plugin/
  datasets/pipelines/loading.py``) then made dense by the released ``gt_to_voxel``
  (``projects/mmdet3d_plugin/datasets/evaluation_metrics.py``), against occkit's
  ``read_surroundocc_label`` and the ``SurroundOccDataset`` Sample's occupancy: voxels equal or not;
- **metric**: predictions (the ground truth with a share of voxels set to random classes, written
  and read back through occkit's prediction files) scored by the released ``evaluation_semantic``
  per frame, then the released ``CustomNuScenesOccDataset.evaluate``
  (``projects/mmdet3d_plugin/datasets/nuscenes_occupancy_dataset.py``), against occkit's
  ``NuScenesOccupancyMetric``: per-class IoU, mIoU, geometry IoU, largest difference.

The released files import mmcv, mmdet, mmdet3d, nuscenes-devkit, a compiled ``chamfer`` extension
and plotting helpers at module level; none is used by the functions compared, and where the
package is not installed it is replaced by an empty stand-in (``released_import.py``). numpy >= 1.24
removed the alias ``np.int`` (the builtin ``int``) that ``gt_to_voxel`` uses; it is set back to
``int`` before the released code runs.

    python benchmarks/parity_surroundocc.py --repo /tmp/SurroundOcc [--data DIR] [--flip 0.2] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from released_import import git_commit, load_file, stub_modules

from occkit.data.lidar_frame import NUSC_OCC_CLASSES
from occkit.data.surroundocc import (
    SurroundOccDataset,
    read_prediction,
    read_surroundocc_label,
    write_prediction,
)
from occkit.metrics.nusc_occupancy import NuScenesOccupancyMetric
from occkit.worlds.driving.lidar_frame_export import write_lidar_frame_layout

STUBS = [
    "mmcv",
    "mmcv.parallel",
    "mmdet",
    "mmdet.datasets",
    "mmdet.datasets.builder",
    "mmdet.datasets.pipelines",
    "mmdet3d",
    "mmdet3d.core",
    "mmdet3d.core.points",
    "mmdet3d.datasets",
    "nuscenes",
    "nuscenes.eval",
    "nuscenes.eval.common",
    "nuscenes.eval.common.utils",
    "chamfer",
    "projects.mmdet3d_plugin.models.utils.visual",
]


def released(repo: Path) -> types.SimpleNamespace:
    """The released loader, per-frame metric and dataset evaluation, imported unchanged."""
    stubbed = stub_modules(STUBS)
    np.int = int  # type: ignore[attr-defined]  # the alias numpy 1.24 removed; gt_to_voxel uses it
    plugin = repo / "projects" / "mmdet3d_plugin" / "datasets"
    loading = load_file(plugin / "pipelines" / "loading.py", "surroundocc_released.loading")
    metrics = load_file(plugin / "evaluation_metrics.py", "surroundocc_released.evaluation_metrics")
    dataset = load_file(plugin / "nuscenes_occupancy_dataset.py", "surroundocc_released.nuscenes_occupancy_dataset")
    return types.SimpleNamespace(loading=loading, metrics=metrics, dataset=dataset, stubbed=stubbed)


def released_evaluate(rel: types.SimpleNamespace, per_frame: list[np.ndarray], class_names: list[str]) -> dict:
    """``CustomNuScenesOccDataset.evaluate`` on the per-frame results, on an instance made without
    its (mmdet3d) constructor: the method reads ``use_semantic``, ``class_names`` and ``len(self)``."""
    cls = rel.dataset.CustomNuScenesOccDataset
    inst = cls.__new__(cls)
    inst.use_semantic = True
    inst.class_names = class_names
    cls.__len__ = lambda self: len(per_frame)  # the stand-in base class has no length of its own
    return inst.evaluate(list(per_frame), jsonfile_prefix="unused")  # None would reach a name the file never imports


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", required=True, help="a checkout of github.com/weiyithu/SurroundOcc")
    ap.add_argument("--data", default=None, help="a SurroundOcc-layout folder (default: write the synthetic world)")
    ap.add_argument("--scenes", type=int, default=2)
    ap.add_argument("--frames", type=int, default=2)
    ap.add_argument("--flip", type=float, default=0.2, help="share of voxels the prediction sets to a random class")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    repo = Path(args.repo)
    rel = released(repo)
    tmp = tempfile.TemporaryDirectory()
    if args.data is None:
        from occkit.worlds.driving import SynthConfig

        data = Path(tmp.name) / "surroundocc"
        cfg = SynthConfig(scenes=args.scenes, frames=args.frames, seed=args.seed, image_size=(32, 88))
        write_lidar_frame_layout("surroundocc", data, cfg)
    else:
        data = Path(args.data)
    ds = SurroundOccDataset(data, "all", load_images=False, load_extras=False)
    rng = np.random.default_rng(args.seed)
    pred_dir = Path(tmp.name) / "pred"
    metric = NuScenesOccupancyMetric("surroundocc")
    per_frame, label_mismatch, pred_mismatch, voxels, ignored = [], 0, 0, 0, 0
    img_metas = {"occ_size": [200, 200, 16], "pc_range": [-50, -50, -5, 50, 50, 3]}
    for i, f in enumerate(ds.frames):
        path = ds.gt_path(f.token)
        # the released loader, then the released dense grid
        results = rel.loading.LoadOccupancy(use_semantic=True)({"occ_path": str(path)})
        gt_occ = results["gt_occ"]
        dense_rel = rel.metrics.gt_to_voxel(gt_occ.copy(), img_metas)
        dense_ok = read_surroundocc_label(path)
        sample = ds[i]
        same = np.array_equal(dense_rel, dense_ok.astype(np.float64)) and np.array_equal(
            sample.occupancy.numpy(), dense_ok.astype(np.int64)
        )
        label_mismatch += 0 if same else 1
        voxels += len(gt_occ)
        ignored += int((dense_ok == 255).sum())
        # a prediction: the ground truth with a share of voxels set to random classes
        pred = np.where(dense_ok == 255, 0, dense_ok).astype(np.uint8)
        flip = rng.random(pred.shape) < args.flip
        pred[flip] = rng.integers(0, 17, int(flip.sum()))
        p_read = read_prediction(write_prediction(pred_dir, f.token, pred))
        pred_mismatch += 0 if np.array_equal(p_read, pred) else 1
        # released per-frame counts, on the loader's (N, 4) rows as its test loop passes them
        score = rel.metrics.evaluation_semantic(
            torch.from_numpy(p_read.astype(np.int64))[None], torch.from_numpy(gt_occ)[None], img_metas, 17
        )
        per_frame.extend(list(score))
        metric.update(torch.from_numpy(p_read)[None], sample.occupancy[None])
    rel_out = released_evaluate(rel, per_frame, list(NUSC_OCC_CLASSES[1:]))
    ours = metric.compute()
    diffs = {"geometry IoU": abs(100 * rel_out["IoU"] - ours["geometry_iou"])}
    for name in NUSC_OCC_CLASSES[1:]:
        a, b = 100 * rel_out[name], ours["iou"][name]
        diffs[name] = 0.0 if (math.isnan(a) and math.isnan(b)) else abs(a - b)
    a, b = 100 * rel_out["mIoU"], ours["miou_all"]
    diffs["mIoU"] = 0.0 if (math.isnan(a) and math.isnan(b)) else abs(a - b)
    worst = max(diffs, key=lambda k: diffs[k])
    print(f"released: {repo} at {git_commit(repo)}; stand-ins for {', '.join(rel.stubbed) or 'nothing'}")
    print(f"data: {data} ({len(ds)} frames, {voxels} label rows, {ignored} voxels ignored as noise)")
    print(f"labels: {len(ds) - label_mismatch} of {len(ds)} frames give the same voxels and classes")
    print(f"predictions: {len(ds) - pred_mismatch} of {len(ds)} written and read back unchanged")
    print(
        f"released: mIoU {100 * rel_out['mIoU']:.10f}, geometry IoU {100 * rel_out['IoU']:.10f}; "
        f"occkit: miou_all {ours['miou_all']:.10f}, miou {ours['miou']:.10f}, geometry_iou {ours['geometry_iou']:.10f}"
    )
    print(f"largest difference: {diffs[worst]:.3g} percentage points ({worst}), over 16 class IoUs, mIoU, geometry")
    if label_mismatch or pred_mismatch or diffs[worst] > 1e-9:
        sys.exit(1)


if __name__ == "__main__":
    main()
