"""occkit's OpenOccupancy (nuScenes-Occupancy) format against OpenOccupancy's released code, run
unchanged on the same files.

What is compared, frame by frame on a nuScenes-Occupancy-layout folder that occkit wrote (the
synthetic world, ``occkit synth --format openoccupancy``, or ``--data`` of any such folder):

- **labels**: each label file read by the released ``LoadOccupancy``
  (``projects/occ_plugin/datasets/pipelines/loading.py``, its numba voxel vote included; the
  test-time augmentation matrix ``bda_mat`` is the identity, as in evaluation), against occkit's
  ``read_openoccupancy_label`` and the ``OpenOccupancyDataset`` Sample's occupancy: voxels equal
  or not; with ``--duplicates`` the files are first rewritten with extra rows that repeat voxels
  with other classes (noise included), so that the vote decides (occkit refuses such files unless
  asked for the released reading, :class:`occkit.data.lidar_frame.DuplicateVoxels`, which this
  check asks for);
- **metric**: predictions (the ground truth with a share of voxels set to random classes, written
  and read back through occkit's prediction files) as one-hot logits through the released
  ``OccNet.evaluation_semantic`` (``projects/occ_plugin/occupancy/detectors/occnet.py``: trilinear
  resize to the label grid, argmax, ``fast_hist`` over the voxels that are not noise) for "SC" and
  "SSC", summed, then the released ``cm_to_ious`` and ``NuscOCCDataset.evaluate``
  (``projects/occ_plugin/utils/formating.py``, ``datasets/nuscenes_occ_dataset.py``), against
  occkit's ``NuScenesOccupancyMetric``: per-class IoU, mean, geometry ("SC") IoU.

The released files import mmcv, mmdet, mmdet3d, nuscenes-devkit, prettytable and their own model
code (``.bevdepth``) at module level; none is used by the functions compared, and where the
package is not installed it is replaced by an empty stand-in (``released_import.py``). numpy >= 1.24
removed the alias ``np.int`` (the builtin ``int``) that ``evaluation_semantic`` uses; it is set back
to ``int`` before the released code runs. numba, scipy, scikit-image and trimesh are the real ones.

    python benchmarks/parity_openoccupancy.py --repo /tmp/OpenOccupancy [--data DIR] [--duplicates] [--seed 0]
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

from occkit.data.lidar_frame import NUSC_OCC_CLASSES, DuplicateVoxels
from occkit.data.openoccupancy import (
    OPENOCC_RANGE,
    OPENOCC_SHAPE,
    OpenOccupancyDataset,
    read_openoccupancy_label,
    read_prediction,
    write_prediction,
)
from occkit.fileio import save_npy_atomic
from occkit.metrics.nusc_occupancy import NuScenesOccupancyMetric
from occkit.worlds.driving.lidar_frame_export import write_lidar_frame_layout

STUBS = [
    "mmcv",
    "mmcv.runner",
    "mmdet",
    "mmdet.datasets",
    "mmdet.datasets.builder",
    "mmdet.models",
    "mmdet3d",
    "mmdet3d.models",
    "mmdet3d.datasets",
    "nuscenes",
    "nuscenes.eval",
    "nuscenes.eval.common",
    "nuscenes.eval.common.utils",
    "prettytable",
    "trimesh",
    "skimage",
    "projects.occ_plugin.occupancy.detectors.bevdepth",
]


def released(repo: Path) -> types.SimpleNamespace:
    """The released loader, per-frame histograms, IoUs and dataset evaluation, imported unchanged."""
    stubbed = stub_modules(STUBS)
    np.int = int  # type: ignore[attr-defined]  # the alias numpy 1.24 removed; evaluation_semantic uses it
    plugin = repo / "projects" / "occ_plugin"
    loading = load_file(plugin / "datasets" / "pipelines" / "loading.py", "openocc_released.loading")
    formating = load_file(plugin / "utils" / "formating.py", "projects.occ_plugin.utils.formating")
    occnet = load_file(
        plugin / "occupancy" / "detectors" / "occnet.py", "projects.occ_plugin.occupancy.detectors.occnet"
    )
    dataset = load_file(plugin / "datasets" / "nuscenes_occ_dataset.py", "openocc_released.nuscenes_occ_dataset")
    return types.SimpleNamespace(loading=loading, formating=formating, occnet=occnet, dataset=dataset, stubbed=stubbed)


def add_duplicates(path: Path, rng: np.random.Generator) -> int:
    """Rewrite a label file with extra rows that repeat some voxels with other classes (0..16);
    returns the rows added."""
    arr = np.load(path)
    k = max(1, len(arr) // 20)
    pick = rng.choice(len(arr), k, replace=False)
    extra = arr[pick].copy()
    extra[:, 3] = rng.integers(0, 17, k)
    twice = extra[: k // 2].copy()  # some voxels get two extra rows: a vote of 2 against 1
    out = np.concatenate([arr, extra, twice])
    save_npy_atomic(path, out[rng.permutation(len(out))])
    return len(extra) + len(twice)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", required=True, help="a checkout of github.com/JeffWang987/OpenOccupancy")
    ap.add_argument("--data", default=None, help="a nuScenes-Occupancy-layout folder (default: the synthetic world)")
    ap.add_argument("--scenes", type=int, default=2)
    ap.add_argument("--frames", type=int, default=2)
    ap.add_argument("--flip", type=float, default=0.05, help="share of voxels the prediction sets to a random class")
    ap.add_argument("--duplicates", action="store_true", help="add rows repeating voxels (the synthetic copy only)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    repo = Path(args.repo)
    rel = released(repo)
    tmp = tempfile.TemporaryDirectory()
    if args.data is None:
        from occkit.worlds.driving import SynthConfig

        data = Path(tmp.name) / "openocc"
        cfg = SynthConfig(
            scenes=args.scenes, frames=args.frames, seed=args.seed, image_size=(32, 88), occupancy_supersample=1
        )
        write_lidar_frame_layout("openoccupancy", data, cfg)
    else:
        data = Path(args.data)
        if args.duplicates:
            raise SystemExit("--duplicates rewrites label files: only on the synthetic copy (no --data)")
    ds = OpenOccupancyDataset(data, "all", load_images=False, load_extras=False)
    # occkit refuses a voxel listed twice with two classes unless asked for the released reading
    seen = DuplicateVoxels() if args.duplicates else None
    ds.duplicate_voxels = seen
    rng = np.random.default_rng(args.seed)
    pred_dir = Path(tmp.name) / "pred"
    metric = NuScenesOccupancyMetric("openoccupancy")
    load = rel.loading.LoadOccupancy(
        use_semantic=True,
        occ_path=str(data / "nuScenes-Occupancy"),
        grid_size=list(OPENOCC_SHAPE),
        unoccupied=0,
        pc_range=list(OPENOCC_RANGE),
        cal_visible=False,
    )
    net = types.SimpleNamespace(empty_idx=0)
    sc_hists, ssc_hists = [], []
    label_mismatch, pred_mismatch, dup_rows, ignored = 0, 0, 0, 0
    for i, f in enumerate(ds.frames):
        path = ds.gt_path(f.token)
        if args.duplicates:
            dup_rows += add_duplicates(path, rng)
        info = ds.info(f.token)
        results = load(
            {"scene_token": info["scene_token"], "lidar_token": info["lidar_sensor"]["token"], "bda_mat": torch.eye(3)}
        )
        dense_rel = results["gt_occ"]
        dense_ok = read_openoccupancy_label(path, seen)
        sample = ds[i]
        same = np.array_equal(dense_rel, dense_ok) and np.array_equal(
            sample.occupancy.numpy(), dense_ok.astype(np.int64)
        )
        label_mismatch += 0 if same else 1
        ignored += int((dense_ok == 255).sum())
        pred = np.where(dense_ok == 255, 0, dense_ok).astype(np.uint8)
        flip = rng.random(pred.shape) < args.flip
        pred[flip] = rng.integers(0, 17, int(flip.sum()))
        p_read = read_prediction(write_prediction(pred_dir, f.token, pred))
        pred_mismatch += 0 if np.array_equal(p_read, pred) else 1
        logits = (
            torch.nn.functional.one_hot(torch.from_numpy(p_read.astype(np.int64)), 17).permute(3, 0, 1, 2)[None].float()
        )
        gt_t = torch.from_numpy(dense_rel)[None]
        sc, _ = rel.occnet.OccNet.evaluation_semantic(net, logits, gt_t, eval_type="SC")
        ssc, _ = rel.occnet.OccNet.evaluation_semantic(net, logits, gt_t, eval_type="SSC")
        del logits
        sc_hists.append(sc)
        ssc_hists.append(ssc)
        metric.update(torch.from_numpy(p_read)[None], sample.occupancy[None])
    ssc_ious = rel.formating.cm_to_ious(sum(ssc_hists))
    sc_ious = rel.formating.cm_to_ious(sum(sc_hists))
    mean = sum(ssc_ious[1:]) / len(ssc_ious[1:])  # format_SSC_results' mean, before its rounding
    table = rel.dataset.NuscOCCDataset.evaluate(
        types.SimpleNamespace(), {"SC_metric": sc_hists, "SSC_metric": ssc_hists}
    )
    ours = metric.compute()
    diffs = {"geometry (SC) IoU": abs(100 * sc_ious[1] - ours["geometry_iou"])}
    rounded_equal = True
    for k, name in enumerate(NUSC_OCC_CLASSES[1:], start=1):
        a, b = 100 * ssc_ious[k], ours["iou"][name]
        diffs[name] = 0.0 if (math.isnan(a) and math.isnan(b)) else abs(a - b)
        rounded_equal &= math.isnan(b) or round(b / 100, 3) == float(table[f"SSC_{name}"])
    a, b = 100 * mean, ours["miou_all"]
    diffs["mean"] = 0.0 if (math.isnan(a) and math.isnan(b)) else abs(a - b)
    rounded_equal &= round(ours["miou_all"] / 100, 3) == float(table["SSC_mean"])
    rounded_equal &= round(ours["geometry_iou"] / 100, 3) == float(table["SC_non-empty"])
    worst = max(diffs, key=lambda k: diffs[k])
    print(f"released: {repo} at {git_commit(repo)}; stand-ins for {', '.join(rel.stubbed) or 'nothing'}")
    print(f"data: {data} ({len(ds)} frames, {ignored} voxels ignored as noise, {dup_rows} repeated rows added)")
    print(f"labels: {len(ds) - label_mismatch} of {len(ds)} frames give the same voxels and classes")
    print(f"predictions: {len(ds) - pred_mismatch} of {len(ds)} written and read back unchanged")
    print(
        f"released: SSC mean {100 * mean:.10f}, SC IoU {100 * sc_ious[1]:.10f}; occkit: miou_all "
        f"{ours['miou_all']:.10f}, miou {ours['miou']:.10f}, geometry_iou {ours['geometry_iou']:.10f}"
    )
    print(f"released evaluate() table (rounded to 3 decimals) equal to occkit's numbers rounded alike: {rounded_equal}")
    print(f"largest difference: {diffs[worst]:.3g} percentage points ({worst}), over 16 class IoUs, mean, geometry")
    if label_mismatch or pred_mismatch or diffs[worst] > 1e-9 or not rounded_equal:
        sys.exit(1)


if __name__ == "__main__":
    main()
