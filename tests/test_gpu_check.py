"""``benchmarks/gpu_check.py --smoke --device cpu``: the prepared GPU check's code paths (the data
stages, the presets' measured steps, occ3d-r50's inference eager / compiled / ONNX with its parity)
at a tiny size, so the script is known to run before a GPU is lent for it.

The default run times three presets that cover its kinds of rows (a camera network, a recipe
loading a teacher run made by a stage, the generator) in about two minutes; with
``OCCKIT_SLOW_TESTS=1`` every GPU preset (some take minutes a step on a CPU even shrunk, such as
``cigocc-gpu``'s 256x256x32 grid)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SLOW = os.environ.get("OCCKIT_SLOW_TESTS", "") not in ("", "0")
QUICK_ROWS = ("occ3d-r50", "radocc-occ3d", "occscene-gpu")
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gpu_check")
    out = tmp / "smoke.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src"))
    rows = [] if SLOW else ["--rows", *QUICK_ROWS]
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--smoke",
            "--device",
            "cpu",
            "--out",
            str(out),
            "--root",
            str(tmp / "root"),
            "--budget-s",
            "100000",
            *rows,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=3000,
    )
    return proc, out


def test_smoke_runs_every_part(smoke):
    proc, out = smoke
    assert out.is_file(), proc.stderr[-2000:]
    rep = json.loads(out.read_text())
    assert rep["smoke"] is True
    assert rep["failed_parts"] == [], {k: rep["parts"][k] for k in rep["failed_parts"]}
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from preset_bench import ROWS

    for row in ROWS:
        if not SLOW and row.label not in QUICK_ROWS:
            assert f"train:{row.label}" not in rep["parts"]
            continue
        part = rep["parts"][f"train:{row.label}"]
        assert part["parameters"] > 0 and part["gflop_per_step"] > 0, row.label
        assert part["steps_timed"] == 1 and part["s_per_step"] > 0, row.label
        assert part["finite"] and len(part["losses"]) == 2, row.label  # the counted step and the timed one
        assert part["batch_size"] == 1 and part["input_hw"][0] <= 64, row.label  # shrunk


def test_smoke_inference_and_export_parity(smoke):
    _, out = smoke
    inf = json.loads(out.read_text())["parts"]["inference:occ3d-r50"]
    for key in ("float32_b1", "bf16_b1", "float32_b2", "bf16_b2"):
        assert inf["eager"][key]["frames_per_s"] > 0
    assert inf["compiled"]["backend"] == "eager" and inf["compiled"]["bf16_b1"]["frames_per_s"] > 0
    cpu = inf["onnx"]["providers"]["CPUExecutionProvider"]
    assert cpu["frames_per_s"] > 0
    assert cpu["label_agreement"] > 0.999 and cpu["max_abs_logit_diff"] < 1e-2  # the graph computes what PyTorch does
    # providers this onnxruntime lacks are named, not silently dropped
    for prov in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
        assert "skipped" in inf["onnx"]["providers"][prov] or "frames_per_s" in inf["onnx"]["providers"][prov]


def test_cuda_without_a_gpu_is_one_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cuda", "--out", str(tmp_path / "j.json")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "sees no CUDA device" in proc.stderr
