"""Packages written against occkit 0.1.0 keep working on the current API, with a deprecation line a user
sees, until the version that removes what they use (docs/reference/api.md, "Deprecation policy"): the
example packages as they stood at 0.1.0 (tests/fixtures/compat_0_1, frozen copies, not installed) are
registered in place of the installed examples; the format writes the synthetic world and scores it, the
method trains and predicts."""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
FROZEN = Path(__file__).resolve().parent / "fixtures" / "compat_0_1"

#: The frozen packages' entry points, as their pyproject.toml declared them (module renamed: a plain module).
ENTRY_POINTS = (
    ("toy", "toyformat_0_1:FORMAT", "occkit.datasets"),
    ("bev_plane", "bev_0_1:METHOD", "occkit.methods"),
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


def _entry_points(real):
    """``importlib.metadata.entry_points`` with occkit's groups holding the frozen packages' only."""
    eps = [metadata.EntryPoint(name=n, value=v, group=g) for n, v, g in ENTRY_POINTS]

    def entry_points(group=None, **kw):
        if group is not None and group.startswith("occkit."):
            return [e for e in eps if e.group == group]
        return real(**kw) if group is None else real(group=group, **kw)

    return entry_points


@pytest.fixture
def packages_0_1(monkeypatch):
    """The frozen packages registered in-process, alone (the installed examples hidden): the format and
    method registries found again from these entry points, and forgotten after. Gives the warnings said
    while the registries loaded them."""
    import occkit.deprecation
    from occkit.formats import registry as formats_registry
    from occkit.methods import registry as methods_registry

    monkeypatch.setattr(occkit.deprecation, "_SAID", set())  # said as in a new process
    monkeypatch.setattr(metadata, "entry_points", _entry_points(metadata.entry_points))
    monkeypatch.syspath_prepend(str(FROZEN))
    for name in ("toyformat_0_1", "bev_0_1"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setattr(formats_registry, "_REGISTRY", None)
    monkeypatch.setattr(methods_registry, "_REGISTRY", None)
    import occkit.experiment

    # the config class each method's runs are read into is kept by method name: the installed example's
    # bev_plane (an earlier test in this process) is not the frozen one's
    monkeypatch.setattr(occkit.experiment, "_CLASSES", {})
    with pytest.warns(FutureWarning) as said:
        formats_registry.formats()
        methods_registry.registry()
    yield [str(w.message) for w in said.list]
    formats_registry._REGISTRY = None
    methods_registry._REGISTRY = None
    for name in ("toyformat_0_1", "bev_0_1"):
        sys.modules.pop(name, None)


def test_the_frozen_packages_are_the_examples_of_0_1_0():
    """The copies are 0.1.0's (their own forms, not the current examples'): the format gives its records'
    fields as flat keywords, the method names the free class free_index."""
    toy, bev = (FROZEN / "toyformat_0_1.py").read_text(), (FROZEN / "bev_0_1.py").read_text()
    assert "    detect=detect,\n    open=open_split,\n    metrics=metrics," in toy and "Detection(" not in toy
    assert "free_index: int = 17" in bev


def test_the_0_1_format_registers_with_one_deprecation_line_naming_it(packages_0_1):
    from occkit.formats import get_format

    (line,) = [m for m in packages_0_1 if m.startswith("toyformat_0_1: ")]
    assert line.startswith("toyformat_0_1: DatasetFormat(detect=, metrics=, write_synthetic=, synthetic_classes=")
    assert "removed in 0.3.0" in line and "\n" not in line
    fmt = get_format("toy")
    assert fmt.from_package and fmt.classes.free == 0 and fmt.detection.detect is sys.modules["toyformat_0_1"].detect


def test_a_0_1_format_writes_the_synthetic_world_and_scores_it(packages_0_1, tmp_path, capsys):
    """`occkit synth --format toy` then `occkit eval` of predictions equal to the labels but for one frame
    emptied: the toy metric's mIoU is computed by hand from the files."""
    from occkit.cli import main
    from occkit.formats import detect_format, get_format

    world, pred = tmp_path / "world", tmp_path / "pred"
    args = ["--out", str(world), "--scenes", "2", "--frames", "1", "--image-size", "32", "88"]
    assert main(["synth", "--format", "toy", *args]) == 0
    assert detect_format(world).name == "toy"
    fmt = get_format("toy")
    ds = fmt.open_split(world, "all", load_images=False)
    pred.mkdir()
    counts = np.zeros((5, 5), np.int64)
    for i, token in enumerate(ds.tokens):
        labels, scored, _ = ds.frame_labels(i)
        guess = np.zeros_like(labels) if i == 0 else labels  # the first frame predicted all free
        fmt.predictions.write(pred, token, guess)
        counts += np.bincount(labels[scored].astype(np.int64) * 5 + guess[scored], minlength=25).reshape(5, 5)
    iou = [counts[k, k] / (counts[k].sum() + counts[:, k].sum() - counts[k, k]) for k in range(1, 5) if counts[k].sum()]
    out = tmp_path / "scores.json"
    assert main(["eval", "--gt", str(world), "--pred", str(pred), "--split", "all", "--json", str(out)]) == 0
    scores = json.loads(out.read_text())
    assert scores["miou"] == pytest.approx(100.0 * float(np.mean(iou)))
    assert 0 < scores["miou"] < 100 and scores["frames"] == len(ds.tokens)


def test_a_0_1_method_trains_and_predicts(packages_0_1, synth_root, tmp_path):
    """bev_plane of 0.1 (its config's free_index, 17) trains two steps on Occ3D data and predicts."""
    from occkit.cli import main
    from occkit.methods.registry import get_method

    assert "bev_0_1:METHOD" in get_method("bev_plane").source
    run, pred = tmp_path / "run", tmp_path / "pred"
    steps = ["optim.max_steps=2", "train.val_every=2", "train.ckpt_every=2"]
    cmd = ["train", "bev-plane-cpu", "--data", str(synth_root), "--out", str(run), "--no-progress", "--set"]
    assert main([*cmd, *steps, *TINY]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert saved["method"] == "bev_plane" and saved["bev_plane"]["free_index"] == 17
    logs = [json.loads(line) for line in (run / "train.jsonl").read_text().splitlines()]
    assert {"loss_ce", "loss_column"} <= set(logs[0])
    assert main(["predict", "--ckpt", str(run), "--data", str(synth_root), "--out", str(pred), "--no-progress"]) == 0
    assert len(list(pred.rglob("*.npz"))) > 0


def test_the_deprecation_line_is_seen_under_the_cli_once(tmp_path):
    """In a new Python with its default warning filters (a DeprecationWarning would be hidden there): the
    0.1 format's flat keywords are one `occkit COMMAND: warning:` line on stderr, once even where the frames
    are scored in two processes, and the commands work. Every process registers the frozen format (a
    ``sitecustomize`` on their path), the scoring processes too: none needs the example installed."""
    world = tmp_path / "world"
    site = tmp_path / "site"
    site.mkdir()
    # every Python started with it on its path registers the frozen packages alone: the command and the
    # processes it spawns to score the frames, which find the format again by name (self-contained: pytest is
    # not imported at their start)
    (site / "sitecustomize.py").write_text(
        f"from importlib import metadata\nENTRY_POINTS = {ENTRY_POINTS!r}\n\n\n{inspect.getsource(_entry_points)}\n"
        "metadata.entry_points = _entry_points(metadata.entry_points)\n"
    )
    driver = "import sys\nfrom occkit.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "OCCKIT_DEBUG")},
        "PYTHONPATH": os.pathsep.join([str(site), str(FROZEN), str(ROOT / "src")]),
        "OMP_NUM_THREADS": "1",
    }

    def occkit(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", driver, *args], env=env, capture_output=True, text=True, timeout=600, check=False
        )

    for run, verb in (
        (
            occkit(
                "synth",
                "--format",
                "toy",
                "--out",
                str(world),
                "--scenes",
                "2",
                "--frames",
                "2",
                "--image-size",
                "32",
                "88",
            ),
            "synth",
        ),
        # the frames' own files hold their labels under the toy prediction's key: a perfect prediction folder
        (
            occkit("eval", "--gt", str(world), "--pred", str(world / "frames"), "--split", "all", "--processes", "2"),
            "eval",
        ),
    ):
        assert run.returncode == 0, run.stderr
        said = [line for line in run.stderr.splitlines() if "DatasetFormat(" in line]
        assert len(said) == 1, run.stderr
        assert said[0].startswith(f"occkit {verb}: warning: toyformat_0_1: DatasetFormat(detect=, metrics=")
        assert "removed in 0.3.0" in said[0] and "Traceback" not in run.stderr
    assert re.search(r"^miou\s+100\.00$", run.stdout, re.M), run.stdout
