"""Parity of occkit's NYUv2 reader and metric with MonoScene's released code, run unchanged.

    python benchmarks/parity_nyu.py --monoscene /tmp/monoscene --monoscene-python /tmp/msenv/bin/python \
        [--data DIR] [--rooms 4 --views 3 --seed 0] [--work /tmp/parity_nyu] [--out result.json]

``--monoscene`` is a copy of github.com/astra-vision/MonoScene (the folder holding ``monoscene/``);
``--monoscene-python`` an interpreter that can import it (MonoScene's loader calls
``np.array(img, copy=False)`` on a PIL image, which NumPy 2 refuses: it needs NumPy < 2, plus
hydra-core and omegaconf for its preprocessing script). Nothing of MonoScene is stubbed or edited.

Steps:

1. An indoor world (``--data``, or one of ``--rooms`` x ``--views`` written here with occkit's
   writer) in MonoScene's NYUv2 layout.
2. MonoScene's ``monoscene/data/NYU/preprocess.py``, run as a script (hydra overrides
   ``+NYU_root=... +NYU_preprocess_root=...``; hydra >= 1.1 does not read the ``config_name`` it
   gives, so the two keys are added), writes its ``base/NYU<split>/*.pkl`` targets.
3. MonoScene's ``NYUDataset`` (``frustum_size=8``, ``n_relations=4`` as its config) yields every
   frame; its target, 1:16 target, projected pixels, field-of-view mask, local frustum masks, their
   class counts and the normalised image are compared with occkit's ``NYUDataset`` sample,
   ``voxel_projection``, ``frustum_ids`` and image (normalised the same way).
4. MonoScene's ``SSCMetrics`` (12 classes, ``add_batch(y_pred, y_true)`` per batch of 2, as its NYU
   test step) and occkit's ``nyu_ssc_metric`` score the same predictions (the targets themselves,
   the targets with 10 % / 40 % of voxels set to random classes, shifted by one voxel, all empty).

Prints one JSON object: counts of differing voxels / pixels and the largest metric difference.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

VARIANTS = ("target", "noise10", "noise40", "shift", "empty")

_MONOSCENE_SIDE = r"""
import json, os, sys
import numpy as np
sys.path.insert(0, os.environ["MONOSCENE_PATH"])
from monoscene.data.NYU.nyu_dataset import NYUDataset
from monoscene.loss.sscMetrics import SSCMetrics

data, pre, work = sys.argv[1], sys.argv[2], sys.argv[3]
preds = np.load(os.path.join(work, "preds.npz"))
variants = json.loads(sys.argv[4])
metrics = {v: SSCMetrics(12) for v in variants}
names = []
for split in ("train", "test"):
    ds = NYUDataset(split, data, pre, n_relations=4, frustum_size=8)
    order = sorted(range(len(ds)), key=lambda i: os.path.basename(ds.scan_names[i]))
    for k in range(0, len(order), 2):
        batch = [ds[i] for i in order[k : k + 2]]
        for d in batch:
            names.append(d["name"])
            np.savez_compressed(
                os.path.join(work, "ms_" + d["name"] + ".npz"),
                target=d["target"], target_1_16=d["target_1_16"], pix=d["projected_pix_1"], fov=d["fov_mask_1"],
                frustums=np.packbits(d["frustums_masks"].reshape(-1)), dists=d["frustums_class_dists"],
                img=d["img"].numpy(), cam_pose=d["cam_pose"], origin=d["voxel_origin"],
            )
        y_true = np.stack([d["target"] for d in batch])
        for v in variants:
            y_pred = np.stack([preds[v + "/" + d["name"]] for d in batch])
            metrics[v].add_batch(y_pred, y_true)
out = {}
for v, m in metrics.items():
    s = m.get_stats()
    out[v] = {k: (np.asarray(x).tolist()) for k, x in s.items()}
json.dump({"names": names, "stats": out}, open(os.path.join(work, "ms_stats.json"), "w"))
"""


def _predictions(targets: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Deterministic predictions ``(60, 36, 60)`` uint8 per frame and variant (MonoScene's axes)."""
    out = {}
    for n, (name, t) in enumerate(sorted(targets.items())):
        rng = np.random.default_rng([7, n])
        base = np.where(t == 255, rng.integers(0, 12, t.shape), t).astype(np.uint8)
        for v in VARIANTS:
            if v == "target":
                p = base
            elif v.startswith("noise"):
                frac = int(v[5:]) / 100
                p = np.where(rng.random(t.shape) < frac, rng.integers(0, 12, t.shape), base).astype(np.uint8)
            elif v == "shift":
                p = np.roll(base, 1, axis=2)
            else:
                p = np.zeros_like(base)
            out[f"{v}/{name}"] = p
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--monoscene", required=True, help="copy of astra-vision/MonoScene (holding monoscene/)")
    ap.add_argument("--monoscene-python", default=sys.executable, help="interpreter for MonoScene (NumPy < 2)")
    ap.add_argument("--data", help="an indoor world / NYUv2 layout (default: one written here)")
    ap.add_argument("--rooms", type=int, default=4)
    ap.add_argument("--views", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", help="scratch folder (default: a temporary one)")
    ap.add_argument("--out", help="also write the result JSON here")
    args = ap.parse_args()

    import torch

    from occkit.data.nyu import NYUDataset, downsample_target, file_to_xyz, read_bin, voxel_projection, xyz_to_file
    from occkit.geometry.camera import project_ego
    from occkit.geometry.frustum import voxel_centers
    from occkit.geometry.grid import nyu_grid
    from occkit.losses.monoscene import frustum_ids
    from occkit.metrics.ssc import nyu_ssc_metric

    work = Path(args.work or tempfile.mkdtemp(prefix="parity_nyu_"))
    work.mkdir(parents=True, exist_ok=True)
    data = Path(args.data) if args.data else work / "world"
    if not data.is_dir():
        from occkit.worlds.indoor import IndoorConfig, generate_indoor

        generate_indoor(data, IndoorConfig(scenes=args.rooms, frames=args.views, seed=args.seed, val_fraction=0.25))
    pre = work / "preprocess"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MONOSCENE_PATH": str(Path(args.monoscene).resolve())}
    env.pop("PYTHONPATH", None)
    script = Path(args.monoscene) / "monoscene" / "data" / "NYU" / "preprocess.py"
    subprocess.run(
        [
            args.monoscene_python,
            str(script),
            f"+NYU_root={data.resolve()}",
            f"+NYU_preprocess_root={pre.resolve()}",
            f"hydra.run.dir={(work / 'hydra').resolve()}",
        ],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # occkit's side: samples (targets in occkit's (x, y, z) order)
    samples = {}
    for split in ("train", "test"):
        ds = NYUDataset(data, split)
        for i in range(len(ds)):
            samples[ds.token(i)] = ds[i]
    targets = {n: np.ascontiguousarray(xyz_to_file(s.occupancy.numpy())).astype(np.uint8) for n, s in samples.items()}
    preds = _predictions(targets)
    np.savez(work / "preds.npz", **preds)
    code = work / "monoscene_side.py"
    code.write_text(_MONOSCENE_SIDE)
    subprocess.run(
        [args.monoscene_python, str(code), str(data.resolve()), str(pre.resolve()), str(work), json.dumps(VARIANTS)],
        check=True,
        env=env,
    )
    ms = json.loads((work / "ms_stats.json").read_text())
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    diff = {
        "frames": len(ms["names"]),
        "target_voxels": 0,
        "target_1_16_voxels": 0,
        "pose_max": 0.0,
        "origin_max": 0.0,
        "pixels": 0,
        "fov_voxels": 0,
        "frustum_mask_voxels": 0,
        "frustum_class_counts": 0.0,
        "image_max": 0.0,
        "continuous_uv_minus_pixel_max": 0.0,
    }
    for name in ms["names"]:
        m = np.load(work / f"ms_{name}.npz")
        s = samples[name]
        diff["target_voxels"] += int((m["target"] != targets[name]).sum())
        vox = read_bin(
            data / ("NYUtest" if (data / "NYUtest" / f"{name}.bin").is_file() else "NYUtrain") / f"{name}.bin"
        )
        diff["target_1_16_voxels"] += int((m["target_1_16"] != downsample_target(vox.labels, 16).numpy()).sum())
        diff["pose_max"] = max(diff["pose_max"], float(np.abs(m["cam_pose"] - s.extra["cam_pose"].numpy()).max()))
        diff["origin_max"] = max(diff["origin_max"], float(np.abs(m["origin"] - s.extra["voxel_origin"].numpy()).max()))
        pix, fov, z = voxel_projection(s.extra["voxel_origin"].numpy(), s.extra["cam_pose"].numpy())
        diff["pixels"] += int((pix != m["pix"]).any(1).sum())
        diff["fov_voxels"] += int((fov != m["fov"]).sum())
        # occkit's local frusta on its own grid order, then to MonoScene's axes
        ids = frustum_ids(torch.from_numpy(pix).double(), torch.from_numpy(z > 0), (480, 640), 8).view(60, 60, 36)
        occ = s.occupancy
        ours = torch.stack([(ids == k) & (occ != 255) for k in range(64)]).numpy()  # (64, 60, 60, 36)
        ours = np.ascontiguousarray(file_to_xyz(ours))  # (64, 60, 36, 60)
        theirs = np.unpackbits(m["frustums"])[: ours.size].reshape(ours.shape).astype(bool)
        diff["frustum_mask_voxels"] += int((ours != theirs).sum())
        counts = np.stack([np.bincount(targets[name][ours[k]], minlength=12)[:12] for k in range(64)])
        diff["frustum_class_counts"] = max(diff["frustum_class_counts"], float(np.abs(counts - m["dists"]).max()))
        img = ((s.images[0] - mean) / std).numpy()
        diff["image_max"] = max(diff["image_max"], float(np.abs(img - m["img"]).max()))
        # occkit's generic projection (continuous pixel coordinates) against MonoScene's rounded pixels
        uv, zz = project_ego(voxel_centers(nyu_grid()).reshape(-1, 3), s.intrinsics[None], s.T_ego_from_cam[None])
        uv = uv[0, 0].double().numpy()
        front = (zz[0, 0] > 0.1).numpy() & fov
        diff["continuous_uv_minus_pixel_max"] = max(
            diff["continuous_uv_minus_pixel_max"], float(np.abs(uv[front] - m["pix"][front]).max(initial=0.0))
        )
    metric_diff = {}
    for v in VARIANTS:
        met = nyu_ssc_metric()
        for name in ms["names"]:
            p = torch.from_numpy(file_to_xyz(preds[f"{v}/{name}"]).astype(np.int64))[None]
            met.update(p, samples[name].occupancy[None])
        o = met.compute()
        t = ms["stats"][v]
        ours = {
            "precision": o["precision"] / 100,
            "recall": o["recall"] / 100,
            "iou": o["completion_iou"] / 100,
            "iou_ssc_mean": o["ssc_miou"] / 100,
        }
        d = {k: abs(ours[k] - float(t[k])) for k in ours}
        per_class = [o["iou"][c] / 100 for c in o["iou"]]
        d["iou_ssc_per_class"] = float(np.abs(np.asarray(per_class) - np.asarray(t["iou_ssc"][1:])).max())
        metric_diff[v] = {"monoscene": {k: float(t[k]) for k in ours}, "largest_difference": max(d.values())}
    result = {
        "monoscene_commit": (Path(args.monoscene) / "COMMIT").read_text().strip()
        if (Path(args.monoscene) / "COMMIT").is_file()
        else None,
        "data": str(data),
        "differences": diff,
        "metric": metric_diff,
        "largest_metric_difference": max(v["largest_difference"] for v in metric_diff.values()),
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
