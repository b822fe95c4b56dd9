"""A method from another package: examples/occkit-bev registers ``bev_plane`` (and its preset
``bev-plane-cpu``) through the entry point group ``occkit.methods``, and occkit's commands train,
predict, evaluate, ablate and export it with no edit to occkit. ``.ci/run`` installs the package."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("occkit_bev") is None,
    reason="the example package is not installed: pip install -e examples/occkit-bev (.ci/run does)",
)

#: bev-plane-cpu made tiny: the Occ3D output grid stays, the networks shrink
TINY = [
    "model.backbone=test_efficientnet",
    "model.neck_channels=8",
    "model.context_channels=8",
    "model.encoder_widths=[8,16]",
    "model.lift_downsample=[4,4,1]",
    "model.depth_step=4.0",
    "data.image_aug.out_hw=[32,96]",
    "optim.warmup_steps=1",
    "optim.amp=none",
    "train.device=cpu",
    "train.threads=1",
    "train.tensorboard=false",
    "train.log_every=1",
]


def test_the_entry_point_registers_the_method_and_its_preset():
    from occkit.experiment import load_experiment, preset_names
    from occkit.methods.registry import get_method

    spec = get_method("bev_plane")
    assert "occkit-bev" in spec.source and "occkit_bev.method:METHOD" in spec.source
    assert "bev-plane-cpu" in preset_names()
    cfg = load_experiment("bev-plane-cpu")
    assert cfg.method == "bev_plane" and cfg.model.head == "bev" and cfg.bev_plane.column_weight == 1.0


def test_train_predict_eval_ablate_and_export_through_the_entry_point(synth_root, tmp_path, capsys):
    from occkit.cli import main

    run, pred = tmp_path / "run", tmp_path / "pred"
    assert (
        main(
            [
                "train",
                "bev-plane-cpu",
                "--data",
                str(synth_root),
                "--out",
                str(run),
                "--no-progress",
                "--set",
                "optim.max_steps=2",
                "train.val_every=2",
                "train.ckpt_every=2",
                *TINY,
            ]
        )
        == 0
    )
    saved = json.loads((run / "config.json").read_text())
    assert saved["method"] == "bev_plane" and set(saved) == {"method", "model", "bev_plane", "data", "optim", "train"}
    logs = [json.loads(line) for line in (run / "train.jsonl").read_text().splitlines()]
    assert {"loss_ce", "loss_column"} <= set(logs[0])
    assert (
        main(
            [
                "predict",
                "--ckpt",
                str(run),
                "--data",
                str(synth_root),
                "--out",
                str(pred),
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
        == 0
    )
    assert sorted(pred.rglob("*.npz"))
    capsys.readouterr()
    assert main(["eval", "--gt", str(synth_root), "--pred", str(pred)]) == 0
    assert "geometry_iou" in capsys.readouterr().out

    spec = tmp_path / "abl" / "bev.yaml"
    spec.parent.mkdir()
    arm = [s for s in TINY if not s.startswith(("train.", "optim.warmup"))]  # the runner sets the loop
    sets = json.dumps(arm)  # JSON is YAML, and quotes the values' brackets
    spec.write_text(
        "name: bev\ndescription: the column term on and off\n"
        # the world above (a stage building one is occkit's own machinery, tests/ablate): the arms' runs alone
        f"data: {json.dumps(str(synth_root))}\n"
        "budget: 2\nvalidations: 1\ntolerance: 0.5\nmetric: miou\nseeds: [0]\narms:\n"
        f"  column: {{preset: bev-plane-cpu, set: {sets}}}\n"
        f"  no_column: {{preset: bev-plane-cpu, set: {json.dumps([*arm, 'bev_plane.column_weight=0.0'])}}}\n"
    )
    out = tmp_path / "abl" / "out"
    assert main(["ablate", str(spec), "--out", str(out), "--device", "cpu"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["arms"]) == {"column", "no_column"}

    if importlib.util.find_spec("onnxruntime") is None or not os.environ.get("OCCKIT_SLOW_TESTS"):
        return  # the export below takes a minute on a loaded CPU
    onnx = tmp_path / "bev.onnx"
    assert main(["export", "--ckpt", str(run), "--out", str(onnx), "--frames", "1"]) == 0
    assert onnx.is_file()
