"""SSCBench-KITTI-360 parity: occkit's files, reader and metric against SSCBench's released code,
run unchanged from the path the user gives (a checkout of github.com/ai4ce/SSCBench).

    python benchmarks/parity_kitti360.py --sscbench /tmp/sscbench [--data DIR] [--scenes 4 --frames 3]

What runs, from the released repository (``method/MonoScene``, imported as the ``monoscene`` package):

- ``monoscene/data/kitti_360/io_data.py``: ``_read_label_KITTI360``, ``_read_invalid_KITTI360`` (the
  voxel files occkit writes) and ``get_remap_lut`` of ``kitti_360.yaml`` (the class map);
- ``monoscene/data/kitti_360/preprocess.py``: ``main`` (the labels the benchmark trains and scores on,
  from ``.label`` + ``.invalid``), its final ``LABEL`` of each frame observed with ``sys.settrace``,
  since the released script no longer saves it; ``monoscene/data/NYU/preprocess.py``: ``_downsample_label``
  (the ``_1_8`` labels);
- ``monoscene/data/kitti_360/kitti_360_dataset.py``: ``Kitti360Dataset`` (the frames, targets and images
  of a split, read from occkit's folder) and its ``read_calib`` (KITTI-360's calibration), with
  ``monoscene/data/utils/helpers.py``: ``vox2pix`` (the voxel centres' projection);
- ``monoscene/loss/sscMetrics.py``: ``SSCMetrics`` (the scores).

Stubbed, because the path above does not use them and they are not occkit's dependencies: ``hydra``
(``hydra.main`` returns the function, ``hydra.utils.get_original_cwd`` the MonoScene folder) and
``omegaconf`` (``DictConfig``), only where they are not installed. Under NumPy 2, ``np.array(...,
copy=False)`` (the loader's image conversion) is given NumPy 1's meaning (``copy=None``: copy when
needed) while the released loader runs; nothing else is changed.

Predictions: the ground truth of each frame with its 255 set to 0, shifted one voxel along x and a
seeded 5 % of voxels set to a random class, written by occkit's prediction writer; occkit scores the
folder (occkit's one scoring loop, ``occkit.scoring.folder.evaluate_predictions``), ``SSCMetrics``
the same arrays against the released loader's targets.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch


def _stub_missing(monoscene_dir: Path) -> list[str]:
    stubbed = []
    try:
        import hydra  # noqa: F401
    except ImportError:
        hydra = types.ModuleType("hydra")
        hydra.main = lambda *a, **k: lambda f: f
        utils = types.ModuleType("hydra.utils")
        utils.get_original_cwd = lambda: str(monoscene_dir)
        hydra.utils = utils
        sys.modules["hydra"], sys.modules["hydra.utils"] = hydra, utils
        stubbed.append("hydra")
    try:
        import omegaconf  # noqa: F401
    except ImportError:
        om = types.ModuleType("omegaconf")
        om.DictConfig = dict
        sys.modules["omegaconf"] = om
        stubbed.append("omegaconf")
    return stubbed


@contextlib.contextmanager
def _numpy1_copy_false():
    """``np.array(x, copy=False)`` as NumPy 1 meant it (copy when needed), for released code written
    before NumPy 2."""
    if int(np.__version__.split(".")[0]) < 2:
        yield
        return
    original = np.array

    def array(*a, **k):
        if k.get("copy") is False:
            k["copy"] = None
        return original(*a, **k)

    np.array = array
    try:
        yield
    finally:
        np.array = original


def _run_preprocess(pre_mod, root: Path, scratch: Path) -> dict[tuple[str, str], np.ndarray]:
    """``preprocess.main`` unchanged; the last ``LABEL`` of each ``(sequence, frame_id)``."""
    code = pre_mod.main.__code__
    seen: dict[tuple[str, str], np.ndarray] = {}

    def local(frame, event, arg):
        if event in ("line", "return"):
            f = frame.f_locals
            lab = f.get("LABEL")
            if isinstance(lab, np.ndarray) and lab.ndim == 3 and "frame_id" in f:
                seen[(Path(f["sequence_path"]).name, f["frame_id"])] = lab.copy()
        return local

    def tracer(frame, event, arg):
        return local if frame.f_code is code else None

    cfg = types.SimpleNamespace(kitti_360_root=str(root), kitti_360_preprocess_root=str(scratch))
    sys.settrace(tracer)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            pre_mod.main(cfg)
    finally:
        sys.settrace(None)
    return seen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sscbench", required=True, type=Path, help="a checkout of github.com/ai4ce/SSCBench")
    ap.add_argument("--data", type=Path, help="an occkit-written SSCBench-KITTI-360 folder (default: a new one)")
    ap.add_argument("--scenes", type=int, default=4)
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder (world, predictions) at the end")
    args = ap.parse_args()
    torch.set_num_threads(1)

    repo = args.sscbench.resolve()
    mono = repo / "method" / "MonoScene"
    if not (mono / "monoscene" / "data" / "kitti_360" / "kitti_360_dataset.py").is_file():
        sys.exit(f"{repo}: not a checkout of SSCBench (no method/MonoScene/monoscene/data/kitti_360)")
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown (not a git checkout)"
    stubbed = _stub_missing(mono)
    sys.path.insert(0, str(mono))
    import yaml
    from monoscene.data.kitti_360 import io_data, params
    from monoscene.data.kitti_360 import preprocess as k360_pre
    from monoscene.data.kitti_360.kitti_360_dataset import Kitti360Dataset as Released
    from monoscene.data.NYU.preprocess import _downsample_label
    from monoscene.data.utils.helpers import vox2pix
    from monoscene.loss.sscMetrics import SSCMetrics

    from occkit.data import kitti360 as ok
    from occkit.data.semantickitti import camera_from_calib, read_label
    from occkit.formats import get_format
    from occkit.geometry.grid import semantickitti_grid
    from occkit.labels import (
        KITTI360_CLASSES,
        KITTI360_LEARNING_MAP,
        KITTI360_LEARNING_MAP_INV,
        KITTI360_PALETTE,
        kitti360_remap_lut,
    )
    from occkit.worlds.driving import SynthConfig

    fmt = get_format("kitti360")
    worst: dict[str, float] = {}

    def record(key: str, value: float) -> None:
        worst[key] = max(worst.get(key, 0.0), float(value))

    print(f"SSCBench {repo} commit {commit}; stubbed: {', '.join(stubbed) or 'nothing'}")

    # ---- class tables
    for yml in (repo / "dataset" / "configs" / "kitti360.yaml", mono / "monoscene/data/kitti_360/kitti_360.yaml"):
        y = yaml.safe_load(yml.read_text())
        same_map = dict(y["learning_map"]) == dict(KITTI360_LEARNING_MAP)
        same_inv = dict(y["learning_map_inv"]) == dict(KITTI360_LEARNING_MAP_INV)
        rgb = tuple(tuple(int(c) for c in y["color_map"][y["learning_map_inv"][k]][::-1]) for k in range(19))
        print(
            f"{yml.relative_to(repo)}: learning_map {'=' if same_map else '!='}, learning_map_inv "
            f"{'=' if same_inv else '!='}, nbr_classes {y['nbr_classes']}, "
            f"palette {'=' if rgb == KITTI360_PALETTE else '!='}"
        )
        record("class table mismatches", (not same_map) + (not same_inv) + (rgb != KITTI360_PALETTE))
    names_ok = tuple(params.kitti_360_class_names) == KITTI360_CLASSES
    record("class table mismatches", not names_ok)
    released_lut = io_data.get_remap_lut(str(mono / "monoscene/data/kitti_360/kitti_360.yaml"))
    ours = kitti360_remap_lut(True)
    keys = np.array(sorted(KITTI360_LEARNING_MAP))
    lut_diff = int((released_lut[keys] != ours[keys]).sum())
    record("class table mismatches", lut_diff)
    print(f"class names {'=' if names_ok else '!='}; completion remap of the {keys.size} raw ids: {lut_diff} differ")

    # ---- calibration and the voxel centres' projection
    P_rel, Tr_rel = Released.read_calib()["P2"], Released.read_calib()["Tr"]
    with tempfile.TemporaryDirectory() as d:
        P0, Tr0 = ok.read_calibration(d)  # no calibration/: KITTI-360's published values
        ok.write_calibration(d, P0, np.linalg.inv(Tr0), ok.KITTI360_IMAGE_SIZE)
        P1, Tr1 = ok.read_calibration(d)
    for tag, P, Tr in (("defaults", P0, Tr0), ("written + read", P1, Tr1)):
        dP, dT = float(np.abs(P - P_rel).max()), float(np.abs(Tr - Tr_rel).max())
        record("calibration |P|, |Tr|", max(dP, dT))
        print(f"calibration ({tag}) vs read_calib: max |P diff| {dP:.3g}, max |Tr diff| {dT:.3g}")
    K, T = camera_from_calib(P0, Tr0)
    pix, fov, z = vox2pix(Tr_rel, P_rel[:3, :3], np.array([0, -25.6, -2]), 0.2, 1408, 376, (51.2, 51.2, 6.4))
    centres = semantickitti_grid().centers(torch.float64).reshape(-1, 3).numpy()
    cam = centres @ T[:3, :3].T + T[:3, 3]
    uv = cam @ K.T
    uv = uv[:, :2] / uv[:, 2:3]
    our_pix = np.round(uv).astype(np.int64)  # vox2pix rounds to the nearest pixel
    W, H = 1408, 376
    inside = (our_pix[:, 0] >= 0) & (our_pix[:, 0] < W) & (our_pix[:, 1] >= 0) & (our_pix[:, 1] < H)
    our_fov = inside & (cam[:, 2] > 0)
    dz = float(np.abs(cam[:, 2] - z).max())
    dpix = int(np.abs(our_pix - pix)[fov].max())  # in the image: outside it vox2pix casts far-off floats
    nfov = int((our_fov != fov).sum())
    npx = int((our_pix != pix)[fov].any(1).sum())
    record("voxel depth (m)", dz)
    record("voxel pixel (px)", dpix)
    record("fov mask voxels", nfov)
    print(
        f"vox2pix vs occkit voxel centres: depth {dz:.3g} m, pixel {dpix} (on {npx} of {int(fov.sum())} voxels in "
        f"view: a centre on a pixel's .5 edge, rounded from float32 there), fov mask differs on {nfov} of {fov.size}"
    )

    # ---- the files occkit writes
    tmp = Path(tempfile.mkdtemp(prefix="parity_kitti360_"))
    root = args.data
    if root is None:
        root = tmp / "world"
        cfg = SynthConfig(
            scenes=args.scenes, frames=args.frames, image_size=(96, 320), lidar_beams=16, lidar_azimuth_steps=360
        )
        fmt.writers.write_synthetic(root, cfg)
        print(f"wrote {args.scenes} x {args.frames} frames to {root}")
    labels_rel = _run_preprocess(k360_pre, root, tmp / "released_preprocess")
    everything = ok.Kitti360Dataset(root, "all", load_images=False, labels="voxels")
    found = sum(k in labels_rel for k in everything.frames)
    print(f"released preprocess.main: the labels of {found} of occkit's {len(everything)} frames")
    from_npy = ok.Kitti360Dataset(root, "all", load_images=False, labels="preprocess")
    n_voxels = 0
    for i in range(len(everything)):
        s, f = everything.frames[i]
        lab_path, inv_path = everything.voxel_path(i, "label"), everything.voxel_path(i, "invalid")
        record("label ids", np.abs(io_data._read_label_KITTI360(lab_path) - read_label(lab_path).reshape(-1)).max())
        inv_rel = io_data._read_invalid_KITTI360(inv_path)
        record("invalid voxels", (inv_rel != ok.read_invalid(inv_path).reshape(-1)).sum())
        lab_rel = labels_rel[(s, f)]
        mine_vox, _ = everything.load_gt_arrays(i)
        mine_npy = np.load(ok.preprocessed_paths(root, s, f)[0])
        record("labels from .label/.invalid", (lab_rel != mine_vox).sum())
        record("labels of _1_1.npy", (lab_rel != mine_npy).sum())
        record(
            "labels read from _1_1.npy", (lab_rel != from_npy.load_gt_arrays(from_npy.index_of(f"{s}/{f}"))[0]).sum()
        )
        ds8 = _downsample_label(lab_rel, (256, 256, 32), 8)
        record("labels of _1_8.npy", (ds8 != np.load(ok.preprocessed_paths(root, s, f)[1])).sum())
        api_labels = ok.raw_to_learning(read_label(lab_path))
        api_labels[ok.read_invalid(inv_path)] = 255  # semantic-kitti-api: every invalid voxel left out
        record("voxels semantic-kitti-api's invalid rule would leave out besides", (api_labels != lab_rel).sum())
        n_voxels += lab_rel.size
    print(f"{len(everything)} frames, {n_voxels} voxels compared")

    # ---- the released loader on occkit's folder, and the metric
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    pred_dir = tmp / "pred"
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        rel = Released(split, str(root), str(root / "preprocess"), frustum_size=8)
        mine = fmt.open_split(root, split)
        rel_tokens = sorted(f"{x['sequence']}/{Path(x['voxel_path']).stem}" for x in rel.scans)
        mine_tokens = sorted(mine.token(i) for i in range(len(mine)))
        record("frame lists differ", rel_tokens != mine_tokens)
        m_rel = SSCMetrics(19)
        preds = {}
        for k in range(len(rel)):
            with _numpy1_copy_false():
                data = rel[k]
            token = f"{data['sequence']}/{data['frame_id']}"
            sample = mine[mine.index_of(token)]
            target = data["target"]
            record("targets", (target != sample.occupancy.numpy()).sum())
            img = sample.images[0].permute(1, 2, 0).double().numpy()[:376, :1408]
            norm = torch.from_numpy(((img - mean) / std).transpose(2, 0, 1))
            record("image (normalised)", (data["img"].double() - norm).abs().max())
            gt = sample.occupancy.numpy().astype(np.int64)
            pred = np.where(gt == 255, 0, gt)
            pred = np.roll(pred, 1, axis=0)
            flip = rng.random(pred.shape) < 0.05
            pred[flip] = rng.integers(0, 19, int(flip.sum()))
            preds[token] = pred.astype(np.uint8)
            fmt.predictions.write(pred_dir / split, token, preds[token])
            m_rel.add_batch(preds[token][None].astype(np.int64), target[None].astype(np.int64))
        st = m_rel.get_stats()
        from occkit.scoring.folder import evaluate_predictions

        ours = evaluate_predictions(fmt, root, pred_dir / split, split)
        from occkit.metrics.ssc import SSCMetric

        kitti_api = SSCMetric(19, 255, KITTI360_CLASSES)  # semantic-kitti-api's eps, SSCBench's labels
        api_rule = SSCMetric(19, 255, KITTI360_CLASSES)  # and semantic-kitti-api's invalid rule
        for token, pred in preds.items():
            i = mine.index_of(token)
            lab, _ = mine.load_gt_arrays(i)
            kitti_api.update(torch.from_numpy(pred[None]), torch.from_numpy(lab[None]))
            raw = read_label(mine.voxel_path(i, "label"))
            every_invalid = torch.from_numpy(ok.read_invalid(mine.voxel_path(i, "invalid"))[None])
            api_rule.update(
                torch.from_numpy(pred[None]), torch.from_numpy(ok.raw_to_learning(raw)[None]), every_invalid
            )
        api = kitti_api.compute()
        rule = api_rule.compute()
        record(
            "SSC mIoU, semantic-kitti-api's invalid rule (percent points)",
            abs(100 * st["iou_ssc_mean"] - rule["ssc_miou"]),
        )
        record(
            "completion IoU, semantic-kitti-api's invalid rule (percent points)",
            abs(100 * st["iou"] - rule["completion_iou"]),
        )
        pairs = [
            ("SSC mIoU", 100 * st["iou_ssc_mean"], ours["ssc_miou"], api["ssc_miou"]),
            ("completion IoU", 100 * st["iou"], ours["completion_iou"], api["completion_iou"]),
            ("precision", 100 * st["precision"], ours["precision"], api["precision"]),
            ("recall", 100 * st["recall"], ours["recall"], api["recall"]),
        ] + [
            (
                f"IoU {KITTI360_CLASSES[c]}",
                100 * st["iou_ssc"][c],
                ours["iou"][KITTI360_CLASSES[c]],
                api["iou"][KITTI360_CLASSES[c]],
            )
            for c in range(1, 19)
        ]
        print(f"split {split}: {len(rel)} frames (released loader) / {len(mine)} (occkit)")
        print(
            f"  semantic-kitti-api's invalid rule instead: SSC mIoU {rule['ssc_miou']:.4f}, completion IoU "
            f"{rule['completion_iou']:.4f} (SSCBench: {100 * st['iou_ssc_mean']:.4f}, {100 * st['iou']:.4f})"
        )
        for name, a, b, c in pairs[:4]:
            print(
                f"  {name:15s} SSCBench {a:.10f}  occkit {b:.10f}  |diff| {abs(a - b):.3g}  "
                f"(with semantic-kitti-api's eps: {abs(a - c):.3g})"
            )
        record("scores (percent points)", max(abs(a - b) for _, a, b, _ in pairs))
        record("scores, semantic-kitti-api's 1e-15 (percent points)", max(abs(a - c) for _, a, _, c in pairs))
    print("\nlargest differences:")
    for k, v in worst.items():
        print(f"  {k}: {v:.3g}")
    if args.keep:
        print(f"kept {tmp}")
    else:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
