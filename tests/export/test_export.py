"""``occkit export``: ONNX files of tiny untrained runs against eager PyTorch under onnxruntime
(logits, the recipe's labels, a free batch), the metadata, and the one-line refusals."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))
from test_engine_cli import TINY  # noqa: E402
from test_engine_init_from import tiny_net  # noqa: E402

from occkit.cli import main  # noqa: E402
from occkit.config import to_dict  # noqa: E402
from occkit.engine.checkpoint import CHECKSUM_FILE, save_checkpoint  # noqa: E402
from occkit.experiment import ExperimentConfig, build_method, load_experiment  # noqa: E402
from occkit.export.onnx import (  # noqa: E402
    OccPredictor,
    check_parity,
    dataset_frames,
    export_onnx,
    load_source,
    ort_session,
    random_frames,
    read_metadata,
)

# synth-cpu's network (camera-aware LSS, frame BatchNorm, channels-last 3D path) made tiny
SMALL = [*TINY, "model.backbone=test_resnet"]


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def _save(run: Path, cfg: ExperimentConfig, seed: int = 0, ema: bool = False) -> Path:
    torch.manual_seed(seed)
    method = build_method(cfg)
    other = None
    if ema:  # an EMA copy that differs from the raw weights
        other = copy.deepcopy(method)
        with torch.no_grad():
            for p in other.parameters():
                p.add_(0.01 * torch.randn_like(p))
    return save_checkpoint(run, 1, method, to_dict(cfg), {}, ema=other)


@pytest.fixture(scope="module")
def sup_run(tmp_path_factory) -> Path:
    """A supervised run of the synth-cpu network (tiny), on the Occ3D grid, with EMA weights."""
    run = tmp_path_factory.mktemp("export") / "sup"
    _save(run, load_experiment("synth-cpu", SMALL), ema=True)
    return run


def _tiny_cfg(method: str, **model) -> ExperimentConfig:
    cfg = ExperimentConfig(method=method, model=tiny_net(**model))
    cfg.data.image_aug.out_hw = (32, 64)
    cfg.data.cameras = ("CAM_FRONT", "CAM_BACK")
    return cfg


def _err_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    return err


def test_supervised_frame_norm_on_data_and_metadata(sup_run, synth_root, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    argv = [
        "export",
        "--ckpt",
        str(sup_run),
        "--out",
        str(out),
        "--check-data",
        str(synth_root),
        "--frames",
        "2",
        "--runs",
        "1",
    ]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "dynamo exporter" in text and "labels agree" in text and "PyTorch ms/frame" in text
    rep = json.loads((tmp_path / "m.onnx.json").read_text())
    cpu = rep["parity"]["providers"]["CPUExecutionProvider"]
    assert cpu["max_abs_logit_diff"] < 1e-4 and cpu["label_agreement"] >= 0.999
    assert (
        rep["parity"]["voxels"] == 2 * 200 * 200 * 16
        and cpu["ms_per_frame_torch"] > 0
        and cpu["ms_per_frame_onnxruntime"] > 0
    )

    meta = read_metadata(out)
    ckpt = sup_run / "checkpoints" / "step_000001"
    assert (
        meta["exporter"] == "dynamo" and meta["recipe"] == "supervised" and meta["weights"] == "ema.safetensors"
    )  # EMA by default
    assert meta["weights_sha256"] == json.loads((ckpt / CHECKSUM_FILE).read_text())["ema.safetensors"]
    assert meta["checkpoint"] == str(ckpt.resolve()) and meta["occkit_version"] and int(meta["opset"]) >= 16
    assert json.loads(meta["image_size"]) == [32, 64] and json.loads(meta["grid_shape"]) == [200, 200, 16]
    assert json.loads(meta["classes"])[17] == "free" and json.loads(meta["num_classes"]) == 18
    assert meta["image_norm_eval"] == "frame" and rep["metadata"]["recipe"] == "supervised"

    # independently of check_parity: onnxruntime on a validation frame against the recipe's predict
    src = load_source(sup_run)
    b = dataset_frames(src.cfg, synth_root, 1, (32, 64))[0][0]
    sess = ort_session(out)
    assert [i.name for i in sess.get_inputs()] == ["images", "intrinsics", "T_ego_from_cam"]
    assert sess.get_inputs()[0].shape == [1, 6, 3, 32, 64]  # batch 1 without --dynamic-batch
    logits, labels = sess.run(
        None,
        {
            "images": b.images.numpy(),
            "intrinsics": b.intrinsics.float().numpy(),
            "T_ego_from_cam": b.T_ego_from_cam.float().numpy(),
        },
    )
    assert logits.shape == (1, 18, 200, 200, 16) and labels.dtype.name == "uint8" and labels.shape == (1, 200, 200, 16)
    with torch.no_grad():
        ref = src.method.predict(b)
    assert (torch.from_numpy(logits) - ref).abs().max() < 1e-4
    assert (torch.from_numpy(labels).long() == ref.argmax(1)).float().mean() >= 0.999


def test_supervised_running_norm_other_size_dynamic_batch_random_frames(tmp_path, capsys):
    run = _save(tmp_path / "run", _tiny_cfg("supervised", image_norm_eval="running"), ema=True)
    out = tmp_path / "r.onnx"
    assert (
        main(
            [
                "export",
                "--ckpt",
                str(run),
                "--out",
                str(out),
                "--image-size",
                "64",
                "96",
                "--frames",
                "2",
                "--runs",
                "1",
                "--no-ema",
                "--dynamic-batch",
            ]
        )
        == 0
    )
    cap = capsys.readouterr()
    assert "warning: no --check-data" in cap.err
    rep = json.loads((tmp_path / "r.onnx.json").read_text())
    cpu = rep["parity"]["providers"]["CPUExecutionProvider"]
    assert cpu["max_abs_logit_diff"] < 1e-4 and cpu["label_agreement"] >= 0.999
    assert (
        cpu["batch"]["size"] == 2
        and cpu["batch"]["label_agreement"] >= 0.999
        and cpu["batch"]["max_abs_logit_diff"] < 1e-4
    )
    meta = read_metadata(out)
    assert (
        meta["image_norm_eval"] == "running"
        and json.loads(meta["image_size"]) == [64, 96]
        and meta["weights"] == "model.safetensors"
    )
    sess = ort_session(out)
    assert sess.get_inputs()[0].shape[1:] == [2, 3, 64, 96] and not isinstance(sess.get_inputs()[0].shape[0], int)
    b = random_frames(3, ("F", "B"), (64, 96))
    images = torch.cat([f.images for f in b]).numpy()
    K, T = torch.cat([f.intrinsics for f in b]).numpy(), torch.cat([f.T_ego_from_cam for f in b]).numpy()
    assert sess.run(None, {"images": images, "intrinsics": K, "T_ego_from_cam": T})[1].shape == (3, 20, 20, 6)


def test_torchscript_exporter_sums_the_splat_and_the_agreement_gate(sup_run, synth_root, tmp_path, capsys, monkeypatch):
    import occkit.export.onnx as onnx_mod

    out = tmp_path / "t.onnx"
    base = [
        "export",
        "--ckpt",
        str(sup_run),
        "--out",
        str(out),
        "--check-data",
        str(synth_root),
        "--frames",
        "1",
        "--runs",
        "1",
        "--exporter",
        "torchscript",
    ]
    with pytest.raises(SystemExit) as e:  # a gate no export can pass is refused before any work
        main([*base, "--min-agreement", "100.1"])
    assert e.value.code == 2 and "--min-agreement: expected a percentage in (0, 100]" in capsys.readouterr().err
    real = onnx_mod.check_parity

    def worse(*a, **k):  # the graph's labels agreeing on half the voxels
        rep = real(*a, **k)
        for row in rep["providers"].values():
            row["label_agreement"] = 0.5
        return rep

    monkeypatch.setattr(onnx_mod, "check_parity", worse)
    assert main(base) == 1  # below the gate: nothing written
    monkeypatch.setattr(onnx_mod, "check_parity", real)
    err = _err_line(capsys)
    assert "parity check failed" in err and not out.exists() and not (tmp_path / "t.onnx.json").exists()
    assert not list(tmp_path.iterdir())  # no temporary file left either
    assert main(base) == 0
    assert read_metadata(out)["exporter"] == "torchscript"
    cpu = json.loads((tmp_path / "t.onnx.json").read_text())["parity"]["providers"]["CPUExecutionProvider"]
    assert cpu["max_abs_logit_diff"] < 1e-4 and cpu["label_agreement"] >= 0.999
    assert main(base) == 1 and "--overwrite" in _err_line(capsys)  # its own earlier export: only with --overwrite
    assert main([*base, "--overwrite"]) == 0


def test_render_sup_thresholded_labels(tmp_path):
    cfg = _tiny_cfg("render_sup")
    torch.manual_seed(0)
    method = build_method(cfg).eval()
    frames = random_frames(2, cfg.data.cameras, (32, 64), seed=3)
    with torch.no_grad():  # a threshold inside the range of p(occupied), so that it decides voxels
        logits = torch.cat([method.forward(b).logits for b in frames])
        p_occ = 1 - logits.softmax(1)[:, method.cfg.free]
    # in the widest gap between the values of the middle half (rounding must not decide a voxel)
    u = p_occ.unique().sort().values
    u = u[len(u) // 4 : 3 * len(u) // 4 + 1]
    i = int((u[1:] - u[:-1]).argmax())
    tau = float(u[i] + u[i + 1]) / 2
    method.cfg.occupied_threshold = tau
    cfg.render_sup = method.cfg  # saved as built: its free class filled in from the default format
    ckpt = save_checkpoint(tmp_path / "run", 1, method, to_dict(cfg), {})
    src = load_source(ckpt)
    pred = OccPredictor(src.method, "render_sup")
    assert pred.threshold == pytest.approx(tau)
    res = export_onnx(
        pred,
        (frames[0].images, frames[0].intrinsics, frames[0].T_ego_from_cam),
        tmp_path / "rs.onnx",
        metadata={"recipe": "render_sup"},
    )
    assert res.exporter == "dynamo" and read_metadata(tmp_path / "rs.onnx")["recipe"] == "render_sup"
    rep = check_parity(tmp_path / "rs.onnx", pred, src.method, frames, runs=1)
    assert rep["providers"]["CPUExecutionProvider"]["label_agreement"] >= 0.999
    sess = ort_session(tmp_path / "rs.onnx")
    for b in frames:
        o_logits, o_labels = sess.run(
            None,
            {
                "images": b.images.numpy(),
                "intrinsics": b.intrinsics.numpy(),
                "T_ego_from_cam": b.T_ego_from_cam.numpy(),
            },
        )
        with torch.no_grad():
            ref = src.method.predict(b).argmax(1)
        o_labels = torch.from_numpy(o_labels).long()
        assert (o_labels == ref).float().mean() >= 0.999
        assert (o_labels != torch.from_numpy(o_logits).argmax(1)).any()  # the threshold, not the plain argmax
        free = o_labels == method.cfg.free
        assert free.any() and (~free).any()


def test_cigocc_and_radocc_student(tmp_path):
    from occkit.methods.cigocc import CIGOccConfig
    from occkit.methods.radocc import RadOccMethod
    from occkit.methods.supervised import SupervisedConfig, SupervisedMethod

    # cigocc: deformable fusion, depth queries, sampling lift (the pose inverse's export path)
    mc = tiny_net(
        lift="sample",
        sample_coords=True,
        point_range=(0.0, -3.2, -1.0, 6.4, 3.2, 0.6),
        voxel_size=0.2,
        lift_downsample=(4, 4, 2),
        voxel_upsample="subvoxel",
        encoder_widths=(8, 16),
        num_classes=20,
    )
    cfg = ExperimentConfig(
        method="cigocc",
        model=mc,
        cigocc=CIGOccConfig(features=("appearance", "depth"), fusion="deformable", depth_queries=True),
    )
    cfg.data.cameras, cfg.data.format, cfg.data.image_aug.out_hw = ("image_2",), "semantickitti", (32, 64)
    src = load_source(_save(tmp_path / "cig", cfg))
    pred = OccPredictor(src.method, "cigocc")
    frames = random_frames(1, cfg.data.cameras, (32, 64))
    res = export_onnx(pred, (frames[0].images, frames[0].intrinsics, frames[0].T_ego_from_cam), tmp_path / "cig.onnx")
    cpu = check_parity(tmp_path / "cig.onnx", pred, src.method, frames, runs=1)["providers"]["CPUExecutionProvider"]
    assert res.exporter == "dynamo" and cpu["max_abs_logit_diff"] < 1e-4 and cpu["label_agreement"] >= 0.999

    # radocc: the student loads without the teacher run its config names; the adapter is left out
    cfg = _tiny_cfg("radocc")
    cfg.radocc.teacher, cfg.radocc.feature_weight = str(tmp_path / "no_such_teacher"), 1.0
    cfg.supervised.free = cfg.radocc.free = 17  # built by hand below: the free class named (Occ3D's)
    torch.manual_seed(0)
    m = RadOccMethod(
        cfg.model,
        cfg.supervised,
        cfg.radocc,
        teacher=SupervisedMethod(tiny_net(encoder_widths=(8,)), SupervisedConfig(free=17)),
    )
    assert any(k.startswith("adapter.") for k in m.state_dict())
    src = load_source(save_checkpoint(tmp_path / "rad", 1, m, to_dict(cfg), {}))
    assert type(src.method) is SupervisedMethod
    student = src.method.state_dict()
    assert all(torch.equal(student[k], v) for k, v in m.state_dict().items() if not k.startswith("adapter."))


def test_refusals_one_line(sup_run, tmp_path, capsys):
    def refused(argv: list[str], *words: str) -> None:
        assert main(["export", *argv]) == 1
        err = _err_line(capsys)
        assert err.startswith("occkit export: error:") and all(w in err for w in words), err

    out = str(tmp_path / "x.onnx")
    cfg = _tiny_cfg("supervised", modality="lidar")
    cfg.supervised.depth_weight = 0.0
    lidar = _save(tmp_path / "lidar", cfg)
    refused(["--ckpt", str(lidar), "--out", out], "model.modality is 'lidar'", "LiDAR points")
    # a langocc / occscene run is refused from its config, before its network is built (the weights are a stand-in)
    for name, word in (("langocc", "text embeddings"), ("occscene", "generator")):
        cfg = _tiny_cfg(name)
        ckpt = save_checkpoint(tmp_path / name, 1, build_method(_tiny_cfg("supervised")), to_dict(cfg), {})
        refused(["--ckpt", str(ckpt), "--out", out], f"a {name} run is not exported", word)
    refused(
        ["--ckpt", str(sup_run), "--out", out, "--image-size", "30", "64"],
        "--image-size 30 64",
        "multiples of 32",
        "nearest: 32 64",
    )
    refused(["--ckpt", str(sup_run), "--out", str(sup_run / "checkpoints" / "m.onnx")], "inside the checkpoint folder")
    refused(["--ckpt", str(tmp_path / "nope"), "--out", out], "no such checkpoint")
    Path(out).write_bytes(b"")  # a file of the user's: never replaced, --overwrite or not
    refused(["--ckpt", str(sup_run), "--out", out], "exists", "occkit did not write it")
    refused(["--ckpt", str(sup_run), "--out", out, "--overwrite"], "exists", "occkit did not write it")
    assert Path(out).read_bytes() == b""
    bad = _save(tmp_path / "bad", _tiny_cfg("supervised"))
    data = bytearray((bad / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (bad / "model.safetensors").write_bytes(bytes(data))
    refused(["--ckpt", str(bad), "--out", str(tmp_path / "y.onnx")], "corrupted")
    assert not (tmp_path / "y.onnx").exists()
