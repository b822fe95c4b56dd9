"""`occkit eval` end to end on tiny Occ3D and SemanticKITTI folders written here."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from occkit.cli import main
from occkit.data.semantickitti import SSC_SHAPE, write_bitpacked, write_calib, write_label, write_ssc_prediction
from occkit.fileio import save_npz_atomic, write_json_atomic
from occkit.formats import get_format
from occkit.formats.occ3d import read_prediction as load_occ3d_prediction
from occkit.metrics.evaluate import PROVENANCE_FILE
from occkit.scoring.folder import detect_format_name as detect_format
from occkit.scoring.folder import evaluate_predictions


def evaluate_occ3d(gt, pred, split="val", **options):
    """An Occ3D folder scored by occkit's one scoring loop (what ``occkit eval`` runs)."""
    return evaluate_predictions(get_format("occ3d"), gt, pred, split, **options)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def write_occ3d(root, frames=3, lidar=True, seed=0):
    rng = np.random.default_rng(seed)
    infos, gts = {"scene-a": {}}, {}
    for i in range(frames):
        tok = f"tok{i:02d}"
        sem = np.full((200, 200, 16), 17, np.uint8)
        low = rng.random((200, 200, 5)) < 0.3
        sem[:, :, :5][low] = rng.integers(0, 17, low.sum())
        sem[:, :, 0] = 11
        mc = (rng.random(sem.shape) < 0.7).astype(np.uint8)
        ml = (rng.random(sem.shape) < 0.7).astype(np.uint8)
        save_npz_atomic(root / f"gts/scene-a/{tok}/labels.npz", semantics=sem, mask_lidar=ml, mask_camera=mc)
        e = {
            "timestamp": i,
            "ego_pose": {"translation": [3.0 * i, 0, 0], "rotation": [1, 0, 0, 0]},
            "camera_sensor": {},
        }
        if lidar:
            e["lidar_sensor"] = {"extrinsic": {"translation": [0.9, 0.0, 1.8], "rotation": [1, 0, 0, 0]}}
        infos["scene-a"][tok] = e
        gts[tok] = (sem, mc, ml)
    write_json_atomic(root / "annotations.json", {"train_split": [], "val_split": ["scene-a"], "scene_infos": infos})
    return gts


def test_occ3d_eval_perfect_and_noisy(tmp_path, capsys):
    gts = write_occ3d(tmp_path / "gt", frames=2)
    assert detect_format(tmp_path / "gt") == "occ3d"
    for t, (sem, _, _) in gts.items():
        save_npz_atomic(tmp_path / "pred" / f"{t}.npz", semantics=sem)
    out = tmp_path / "r.json"
    rc = main(
        [
            "eval",
            "--gt",
            str(tmp_path / "gt"),
            "--pred",
            str(tmp_path / "pred"),
            "--json",
            str(out),
            "--csv",
            str(tmp_path / "r.csv"),
            "--metrics",
            "miou,rayiou",
            "--no-progress",
        ]
    )
    assert rc == 0
    r = json.loads(out.read_text())
    assert r["miou"] == pytest.approx(100.0) and r["geometry_iou"] == pytest.approx(100.0)
    assert r["rayiou"] == pytest.approx(100.0) and r["rayiou@1"] == pytest.approx(100.0)
    assert r["frames"] == 2 and r["mask"] == "camera"
    assert "miou" in capsys.readouterr().out
    assert (tmp_path / "r.csv").read_text().startswith("class,iou,rayiou@1")

    # noisy predictions, other keys and masks: compare with the official formula computed here
    rng = np.random.default_rng(5)
    hist = np.zeros((18, 18), np.int64)
    for i, (t, (sem, mc, ml)) in enumerate(gts.items()):
        pred = np.where(rng.random(sem.shape) < 0.8, sem, rng.integers(0, 18, sem.shape)).astype(np.uint8)
        m = (mc & ml).astype(bool)
        hist += np.bincount(18 * sem[m].astype(int) + pred[m], minlength=324).reshape(18, 18)
        kw = {"pred": pred} if i == 0 else {"semantics": pred} if i == 1 else {"arr_0": pred}
        save_npz_atomic(tmp_path / "pred2" / f"{t}.npz", **kw)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.diag(hist) / (hist.sum(0) + hist.sum(1) - np.diag(hist))
    r = evaluate_occ3d(tmp_path / "gt", tmp_path / "pred2", mask="both", progress=False)
    assert r["miou"] == pytest.approx(100 * np.nanmean(iou[:17]))
    assert r["mask"] == "both"


def test_occ3d_eval_errors(tmp_path, capsys):
    gts = write_occ3d(tmp_path / "gt", lidar=False)
    toks = list(gts)
    for t in toks[:2]:
        save_npz_atomic(tmp_path / "pred" / f"{t}.npz", semantics=gts[t][0])
    save_npz_atomic(tmp_path / "pred" / "stranger.npz", semantics=gts[toks[0]][0])
    args = ["eval", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred"), "--no-progress"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "tok02" in err and "missing" in err
    assert main(args + ["--allow-missing", "--json", str(tmp_path / "r.json")]) == 0
    cap = capsys.readouterr().out
    assert "warning" in cap and "stranger" in cap
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["frames"] == 2 and r["missing"] == 1 and r["extra"] == 1
    assert r["iou"]["others"] is None or isinstance(r["iou"]["others"], float)
    # RayIoU without LiDAR poses: refused, saying what is missing
    assert main(args + ["--allow-missing", "--metrics", "rayiou"]) == 1
    assert "lidar_sensor" in capsys.readouterr().err
    # wrong shape / dtype / corrupt
    save_npz_atomic(tmp_path / "bad" / "tok00.npz", semantics=np.zeros((200, 200, 8), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        load_occ3d_prediction(tmp_path / "bad" / "tok00.npz")
    save_npz_atomic(tmp_path / "bad" / "tok01.npz", semantics=np.zeros((200, 200, 16), np.float32))
    with pytest.raises(ValueError, match="dtype"):
        load_occ3d_prediction(tmp_path / "bad" / "tok01.npz")
    (tmp_path / "bad" / "tok02.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="tok02.npz"):
        load_occ3d_prediction(tmp_path / "bad" / "tok02.npz")
    assert main(["eval", "--gt", str(tmp_path / "nope"), "--pred", str(tmp_path / "pred")]) == 1


def write_kitti(root, frames=("000000", "000005"), seed=0):
    rng = np.random.default_rng(seed)
    seq = root / "sequences" / "08"
    write_calib(seq / "calib.txt", np.hstack([np.eye(3), np.zeros((3, 1))]), np.eye(4))
    out = {}
    for f in frames:
        learn = np.zeros(SSC_SHAPE, np.uint8)
        occ = rng.random(SSC_SHAPE) < 0.05
        learn[occ] = rng.integers(1, 20, occ.sum())
        raw = np.array([0, 10, 11, 15, 18, 20, 30, 31, 32, 40, 44, 48, 49, 50, 51, 70, 71, 72, 80, 81], np.uint16)[
            learn
        ]
        raw[0, :5, 0] = 52  # ignored
        inv = rng.random(SSC_SHAPE) < 0.1
        write_label(seq / "voxels" / f"{f}.label", raw)
        write_bitpacked(seq / "voxels" / f"{f}.invalid", inv)
        out[f] = (learn, inv)
    return out


def test_semantickitti_eval(tmp_path):
    gts = write_kitti(tmp_path / "gt")
    assert detect_format(tmp_path / "gt") == "semantickitti"
    for f, (learn, _) in gts.items():
        write_ssc_prediction(tmp_path / "pred" / "sequences" / "08" / "predictions" / f"{f}.label", learn)
    out = tmp_path / "k.json"
    assert (
        main(
            [
                "eval",
                "--gt",
                str(tmp_path / "gt"),
                "--pred",
                str(tmp_path / "pred"),
                "--json",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    r = json.loads(out.read_text())
    assert r["benchmark"] == "semantickitti" and r["frames"] == 2
    for k in ("ssc_miou", "completion_iou", "precision", "recall"):
        assert r[k] == pytest.approx(100.0)
    # the flat layout <pred>/<sequence>/<frame>.label, format given explicitly
    for f, (learn, _) in gts.items():
        write_ssc_prediction(tmp_path / "flat" / "08" / f"{f}.label", np.where(learn == 1, 4, learn).astype(np.uint8))
    r2 = evaluate_predictions(get_format("semantickitti"), tmp_path / "gt", tmp_path / "flat", progress=False)
    assert r2["iou"]["car"] == 0.0 and r2["completion_iou"] == pytest.approx(100.0) and r2["ssc_miou"] < 100.0
    assert (
        main(
            [
                "eval",
                "--format",
                "semantickitti",
                "--gt",
                str(tmp_path / "gt"),
                "--pred",
                str(tmp_path / "flat"),
                "--no-progress",
            ]
        )
        == 0
    )
    # missing frame -> error naming it
    (tmp_path / "pred" / "sequences" / "08" / "predictions" / "000005.label").unlink()
    assert main(["eval", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred"), "--no-progress"]) == 1


def test_occ3d_rayiou_with_info_file(tmp_path):
    gts = write_occ3d(tmp_path / "gt", frames=2, lidar=False)
    infos = [
        {
            "token": t,
            "scene_name": "scene-a",
            "timestamp": i,
            "lidar2ego_translation": [0.9, 0.0, 1.8],
            "lidar2ego_rotation": [1, 0, 0, 0],
            "ego2global_translation": [3.0 * i, 0, 0],
            "ego2global_rotation": [1, 0, 0, 0],
        }
        for i, t in enumerate(gts)
    ]
    write_json_atomic(tmp_path / "infos.json", {"infos": infos})
    for t, (sem, _, _) in gts.items():
        shifted = np.full_like(sem, 17)
        shifted[:, :, 1:] = sem[:, :, :-1]
        save_npz_atomic(tmp_path / "pred" / f"{t}.npz", semantics=shifted)
    r = evaluate_occ3d(
        tmp_path / "gt", tmp_path / "pred", metrics=("miou", "rayiou"), infos=tmp_path / "infos.json", progress=False
    )
    assert 0 < r["rayiou@1"] < r["rayiou@4"] <= 100
    assert not math.isnan(r["rayiou"]) and r["frames"] == 2
    write_json_atomic(tmp_path / "few.json", infos[:1])
    with pytest.raises(KeyError, match="tok01"):
        evaluate_occ3d(
            tmp_path / "gt", tmp_path / "pred", metrics=("rayiou",), infos=tmp_path / "few.json", progress=False
        )


def test_occ3d_eval_in_processes_gives_the_same_scores(tmp_path, capsys):
    """`occkit eval --processes 2`: the frames counted in two spawned processes, the counts summed:
    every score equal to the one-process run's (mIoU, per-class IoU, RayIoU at each threshold)."""
    gts = write_occ3d(tmp_path / "gt", frames=5)
    rng = np.random.default_rng(9)
    for t, (sem, _, _) in gts.items():
        pred = np.where(rng.random(sem.shape) < 0.9, sem, rng.integers(0, 18, sem.shape)).astype(np.uint8)
        save_npz_atomic(tmp_path / "pred" / f"{t}.npz", semantics=pred)
    one = evaluate_occ3d(tmp_path / "gt", tmp_path / "pred", metrics=("miou", "rayiou"), batch_size=2, progress=False)
    rc = main(
        [
            "eval",
            "--gt",
            str(tmp_path / "gt"),
            "--pred",
            str(tmp_path / "pred"),
            "--metrics",
            "miou,rayiou",
            "--processes",
            "2",
            "--json",
            str(tmp_path / "two.json"),
            "--no-progress",
        ]
    )
    assert rc == 0
    two = json.loads((tmp_path / "two.json").read_text())
    assert two["frames"] == one["frames"] == 5
    for key in ("miou", "geometry_iou", "rayiou", "rayiou@1", "rayiou@2", "rayiou@4"):
        assert two[key] == pytest.approx(one[key], abs=1e-12), key
    assert two["iou"] == pytest.approx(one["iou"], nan_ok=True)
    with pytest.raises(ValueError, match="processes"):
        evaluate_occ3d(tmp_path / "gt", tmp_path / "pred", processes=0, progress=False)


def test_occ3d_eval_default_uses_the_usable_cores_with_the_scores_of_one_process(tmp_path, monkeypatch):
    """`occkit eval` without --processes counts the frames in one process per usable core (affinity
    mocked: 16 cores), capped at half the frames (5 frames: 2 processes) and at --threads; every
    class's IoU, mIoU and RayIoU equal `--processes 1`'s exactly."""
    import occkit.metrics.evaluate as ev
    import occkit.scoring.folder as loop

    gts = write_occ3d(tmp_path / "gt", frames=5)
    rng = np.random.default_rng(3)
    for t, (sem, _, _) in gts.items():
        pred = np.where(rng.random(sem.shape) < 0.85, sem, rng.integers(0, 18, sem.shape)).astype(np.uint8)
        save_npz_atomic(tmp_path / "pred" / f"{t}.npz", semantics=pred)
    monkeypatch.setattr(ev.os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    spawned = []
    real = loop._count_in_processes

    def spy(*a, **k):
        spawned.append(a[5])  # processes
        return real(*a, **k)

    monkeypatch.setattr(loop, "_count_in_processes", spy)
    base = [
        "eval",
        "--gt",
        str(tmp_path / "gt"),
        "--pred",
        str(tmp_path / "pred"),
        "--metrics",
        "miou,rayiou",
        "--no-progress",
    ]
    assert main(base + ["--processes", "1", "--json", str(tmp_path / "one.json")]) == 0
    assert spawned == []
    assert main(base + ["--threads", "1"]) == 0  # a run given one core (an ablation lane): one process
    assert spawned == []
    assert main(base + ["--json", str(tmp_path / "default.json")]) == 0
    assert spawned == [2]
    one, default = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "default"))
    assert default["frames"] == one["frames"] == 5
    for key in (
        "miou",
        "geometry_iou",
        "geometry_precision",
        "geometry_recall",
        "rayiou",
        "rayiou@1",
        "rayiou@2",
        "rayiou@4",
        "iou",
        "rayiou_iou",
    ):
        assert default[key] == one[key], key  # the same integer counts: equal, not close
    assert one["rayiou"] < 100.0 and one["miou"] < 100.0


def test_eval_default_process_count(monkeypatch):
    """The default: the process's CPU affinity (not the machine's CPU count), no more than
    --threads when given (a lane's cores); os.cpu_count() where there is no affinity."""
    import occkit.metrics.evaluate as ev

    monkeypatch.setattr(ev.os, "sched_getaffinity", lambda pid: {2, 5, 7}, raising=False)
    monkeypatch.setattr(ev.os, "cpu_count", lambda: 64)
    assert ev.usable_cores() == 3
    assert ev.default_processes() == 3 and ev.default_processes(0) == 3
    assert ev.default_processes(1) == 1 and ev.default_processes(2) == 2 and ev.default_processes(8) == 3
    monkeypatch.delattr(ev.os, "sched_getaffinity")
    assert ev.usable_cores() == 64 and ev.default_processes(4) == 4
    monkeypatch.setattr(ev.os, "cpu_count", lambda: None)
    assert ev.default_processes() == 1


def test_eval_processes_run_one_thread_each(monkeypatch):
    """The spawned processes run one torch thread and see OMP_NUM_THREADS=1 (read when torch
    loads); the parent's environment is left as it was."""
    import os

    import torch

    from occkit.metrics.evaluate import one_thread_pool

    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    with one_thread_pool(1) as pool:
        assert pool.submit(torch.get_num_threads).result() == 1
        assert pool.submit(os.getenv, "OMP_NUM_THREADS").result() == "1"
        assert pool.submit(os.getenv, "MKL_NUM_THREADS").result() == "1"
    assert os.environ["OMP_NUM_THREADS"] == "7" and "MKL_NUM_THREADS" not in os.environ


def test_occ3d_eval_inside_the_frusta_of_the_cameras_a_run_sees(tmp_path, capsys, tiny_occ3d_root):
    import pickle

    from occkit.commands.eval import FrustumRegion
    from occkit.config import to_dict
    from occkit.data.occ3d import Occ3DDataset, load_occ3d_labels
    from occkit.experiment import load_experiment

    run = tmp_path / "run"  # a run's config is all --frustum reads: a model that sees the front camera only
    write_json_atomic(run / "config.json", to_dict(load_experiment("synth-cpu", ["data.cameras=[CAM_FRONT]"])))
    (run / "model.safetensors").write_bytes(b"")
    ds = Occ3DDataset(tiny_occ3d_root, "val", load_images=False)
    tok = ds.frames[0].token
    region = FrustumRegion(run, tiny_occ3d_root, "val")
    m = region(tok)
    assert m.shape == (200, 200, 16) and m.dtype == np.bool_
    # the front camera (yaw 0, 1 m ahead of the ego origin, 1.5 m up): voxel (x, y, z) centre = index * 0.4 - 40 + 0.2
    assert m[125, 100, 6] and m[180, 100, 6]  # 10 m and 32 m straight ahead, 1.8 m up
    assert not m[75, 100, 6] and not m[100, 190, 6]  # 10 m behind; 36 m to the left
    assert 0.05 < m.mean() < 0.5
    assert np.array_equal(pickle.loads(pickle.dumps(region))(tok), m)  # the shard processes get a working copy

    # predictions right inside the frustum, wrong outside: 100 with --frustum, lower without
    pred = tmp_path / "pred"
    for f in ds.frames:
        sem = load_occ3d_labels(ds.gt_path(f.token), ds.grid.shape)["semantics"]
        inside = region(f.token)
        save_npz_atomic(pred / f"{f.token}.npz", semantics=np.where(inside, sem, (sem + 1) % 18).astype(np.uint8))
    args = ["eval", "--gt", str(tiny_occ3d_root), "--pred", str(pred), "--mask", "none", "--no-progress"]
    assert main(args + ["--frustum", str(run), "--json", str(tmp_path / "in.json")]) == 0
    r = json.loads((tmp_path / "in.json").read_text())
    assert r["miou"] == pytest.approx(100.0) and r["geometry_iou"] == pytest.approx(100.0)
    assert r["region"].startswith("frusta of the cameras CAM_FRONT")
    assert main(args + ["--json", str(tmp_path / "all.json")]) == 0
    assert json.loads((tmp_path / "all.json").read_text())["miou"] < 50
    capsys.readouterr()
    # one-line errors: RayIoU is not a region metric; a folder that is no run
    assert main(args + ["--frustum", str(run), "--metrics", "rayiou"]) == 1
    assert "RayIoU" in capsys.readouterr().err
    assert main(args + ["--frustum", str(tmp_path / "nope")]) == 1
    assert "nope" in capsys.readouterr().err


def test_eval_processes_end_with_the_command(tmp_path):
    """Killing ``occkit eval`` (SIGTERM or SIGKILL to its own process) ends the processes it counts in."""
    import os
    import subprocess
    import sys
    import time

    script = (
        "import os, sys, time\n"
        "from occkit.metrics.evaluate import one_thread_pool\n"
        "with one_thread_pool(1) as pool:\n"
        "    print(pool.submit(os.getpid).result(), flush=True)\n"
        "    pool.submit(time.sleep, 600)\n"  # busy, as while counting frames
        "    time.sleep(1)\n"
        "    os._exit(0)\n"
    )  # the parent dies without shutting the pool down
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    child = int(out.stdout.split()[0])
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    raise AssertionError(f"the pool process {child} outlived its parent")


def test_predictions_of_another_format_are_named_not_sent_to_allow_missing(tmp_path, capsys):
    write_kitti(tmp_path / "gt")
    pred = tmp_path / "pred"  # Occ3D-style predictions: TOKEN.npz
    for t in ("tok00", "tok01"):
        save_npz_atomic(pred / f"{t}.npz", semantics=np.zeros((200, 200, 16), np.uint8))
    assert main(["eval", "--gt", str(tmp_path / "gt"), "--pred", str(pred), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "none of its predictions is of a frame of this ground truth" in err
    assert "tok00.npz" in err and "another dataset format" in err and "--allow-missing" not in err


def test_eval_recognises_gt_and_pred_swapped_on_semantickitti(tmp_path, capsys):
    """SemanticKITTI's predictions (sequences/<XX>/predictions/) share the dataset's top folder, so the folder alone
    reads as a dataset; occkit predict's provenance.json says it is predictions: swapped, not a missing calib.txt."""
    gts = write_kitti(tmp_path / "gt")
    pred = tmp_path / "pred"
    for f, (learn, _) in gts.items():
        write_ssc_prediction(pred / "sequences" / "08" / "predictions" / f"{f}.label", learn)
    (pred / PROVENANCE_FILE).write_text(json.dumps({"checkpoint": "runs/k", "tokens": [f"08/{f}" for f in gts]}))
    rc = main(["eval", "--gt", str(pred), "--pred", str(tmp_path / "gt"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1, err
    assert "--gt and --pred are swapped" in err and "a semantickitti dataset" in err and "calib.txt" not in err
    # the right way round it scores, provenance.json and all
    assert main(["eval", "--gt", str(tmp_path / "gt"), "--pred", str(pred), "--no-progress"]) == 0
    # a prediction folder without provenance.json is not claimed to be swapped
    (pred / PROVENANCE_FILE).unlink()
    assert main(["eval", "--gt", str(pred), "--pred", str(tmp_path / "gt"), "--no-progress"]) == 1
    assert "swapped" not in capsys.readouterr().err
