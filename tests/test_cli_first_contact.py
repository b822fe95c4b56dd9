"""What a first-time user meets: help texts, config errors, progress bars, the demo's fixed steps."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from occkit.cli import main
from occkit.experiment import preset_names


def test_train_help_lists_every_shipped_preset(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = "".join(capsys.readouterr().out.split())  # argparse may wrap a line inside a hyphenated name
    for name in preset_names():
        assert name in out, name
    assert "render-sup-cpu" in out


def test_show_help_gives_the_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["show", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for default in ("(default: dim)", "(default: depth)", "(default: 400)", "(default: cpu)"):
        assert default in out, default


def test_a_yaml_error_names_the_file_once(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [1,\n")
    assert main(["train", str(bad), "--data", str(tmp_path), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert err.count(str(bad)) == 1 and "invalid YAML" in err


def test_no_progress_hides_the_validation_bar(tmp_path, capsys):
    sys.path.insert(0, str(Path(__file__).parent / "engine"))
    from engine_toy import ToyFrames, ToyMethod
    from test_engine_train import toy_config

    from occkit.engine.train import train

    cfg = toy_config(4)
    cfg.train.val_every = 2
    train(cfg, tmp_path, ToyFrames(4), ToyFrames(3), method=ToyMethod(), progress=False)
    captured = capsys.readouterr()
    assert "validate" not in captured.err and "train" not in captured.err


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("OCCKIT_SLOW_TESTS"), reason="the demo end to end takes 1-3 minutes: set OCCKIT_SLOW_TESTS=1"
)
def test_demo_trains_a_fixed_number_of_steps(tmp_path, capsys, one_torch_thread):
    out = tmp_path / "demo"
    rc = main(
        [
            "demo",
            "--out",
            str(out),
            "--scenes",
            "5",
            "--frames",
            "1",
            "--image-size",
            "64",
            "176",
            "--workers",
            "1",
            "--steps",
            "3",
            "--pictures",
            "1",
            "--start",
            "shipped",
        ]
    )
    assert rc == 0
    said = capsys.readouterr()
    text = said.out
    assert "train.init_from: loaded 182 of this method's 182 tensors" in said.err and "not checked" not in said.err
    assert (
        "fine-tuning the synth-cpu weights occkit ships" in text
        and "for 3 steps" in text
        and "on an idle 2-core CPU" in text
    )
    report = json.loads((out / "report.json").read_text())
    assert report["steps"] == 3
    assert (
        "before training: mIoU" in text
        and "(the shipped weights)" in text
        and report["start_scores"]["frames"] == report["scores"]["frames"]
    )
    loaded = json.loads((out / "run" / "init_from.json").read_text())
    assert loaded["init_from"].endswith("synth-cpu-demo.safetensors") and not loaded.get("skipped")
    prov = json.loads((out / "predictions" / "provenance.json").read_text())
    assert prov["made_by"] == "occkit demo" and prov["frames"] == len(list((out / "predictions").glob("*.npz")))


def test_demo_shipped_weights_are_synth_cpus(tmp_path, capsys):
    """Another preset needs --from-scratch: the shipped weights are synth-cpu's (one line, before any work)."""
    rc = main(["demo", "--out", str(tmp_path / "demo"), "--config", "synth-abl"])
    err = capsys.readouterr().err
    assert rc != 0 and "the shipped weights are synth-cpu's" in err and "--from-scratch" in err
    assert "Traceback" not in err and not (tmp_path / "demo" / "data").exists()


def test_shipped_demo_weights_fit_synth_cpu():
    """The packaged weights load into the synth-cpu network whole: every tensor by name and shape,
    finite, with the record of how they were made."""
    from occkit.commands.demo import shipped_record, shipped_weights
    from occkit.engine.init_from import load_matching
    from occkit.experiment import build_method, load_experiment

    method = build_method(load_experiment("synth-cpu", ["supervised.class_counts=null"]))
    report = load_matching(method, shipped_weights())
    assert not report.new and not report.skipped and not report.unused
    assert report.loaded_values == report.total_values
    made = shipped_record()
    assert made["preset"] == "synth-cpu" and made["world_seed"] != 0 and made["steps"] > 0


def test_train_help_says_data_is_any_format_not_occ3d_s_layout(capsys):
    """``--data`` of ``occkit train`` takes a dataset of any format: its help names them, not Occ3D's file alone."""
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    data = " ".join(out.split("\n  --data DATA", 1)[1].split("\n  -", 1)[0].split())
    assert "any format" in data and "semantickitti" in data and "occ3d" in data and "nyu" in data, data
    assert "holding annotations.json" not in data


def test_a_method_that_needs_a_prior_cache_is_refused_at_the_start_without_torch(tmp_path):
    """``occkit train langocc`` without ``data.priors`` is refused before torch is imported and before any data
    or network is built (it came after 22 s of imports and data before), and --out is left as it was."""
    import subprocess

    code = (
        "import sys; from occkit.cli import main; "
        f"rc = main(['train', 'langocc', '--data', {str(tmp_path / 'data')!r}, '--out', {str(tmp_path / 'run')!r}]); "
        "print(rc, 'torch' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.stdout.split() == ["1", "False"], (r.stdout, r.stderr)
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("occkit train: error: ")
    assert "method langocc cannot train without a prior cache" in r.stderr and "--set data.priors=PRIORS" in r.stderr
    assert not (tmp_path / "run").exists()


def test_the_early_priors_check_reads_the_preset_and_set():
    from occkit.commands.train import missing_priors

    assert "langocc" in missing_priors("langocc", [], "D")
    assert "langocc" in missing_priors("langocc", ["data.priors=null"], "D")
    assert missing_priors("langocc", ["data.priors=PRIORS"], "D") is None
    assert missing_priors("synth-cpu", [], "D") is None
    assert "langocc" in missing_priors("synth-cpu", ["method=langocc"], "D")
    assert missing_priors("no-such-preset", [], "D") is None  # the config's load names that error


def test_needs_priors_read_from_the_source_is_the_registry_s():
    """What ``occkit train`` reads without torch (each method's source) is what the registered spec says."""
    from occkit.methods import registry

    specs = registry.registry()
    saved = registry._REGISTRY
    registry._REGISTRY = None  # read from the source, as a fresh ``occkit train`` does
    try:
        own = [name for name, spec in specs.items() if not registry.is_from_package(spec)]
        from_source = {name: registry.needs_priors_of(name) for name in own}
    finally:
        registry._REGISTRY = saved
    assert from_source == {name: specs[name].needs_priors for name in own}
    assert from_source["langocc"] and from_source["supervised"] is None
