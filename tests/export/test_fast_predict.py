"""``occkit predict``'s fast path (issue 72 item 5): bf16 autocast and a CUDA graph (or torch.compile
reduce-overhead) on CUDA, nothing changed on a CPU. On the CPU the capture is mocked: a capture that
fails, and one whose logits are not the network's, both fall back to the eager predict with one line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from occkit.export.fast_predict import COMPILE_FRAMES, FastPredict, fast_predictor, resolve_fast

ROOT = Path(__file__).resolve().parents[2]
CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture(scope="module")
def occ3d():
    """occ3d-r50 at the GPU check's smoke size (random weights) and two batches of random frames."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_check

    from occkit.engine.data import seed_everything
    from occkit.experiment import build_method, load_experiment

    cfg = load_experiment("occ3d-r50", gpu_check.inference_sets(True))
    seed_everything(0)
    method = build_method(cfg).eval()
    return method, gpu_check._frames(2, tuple(cfg.data.image_aug.out_hw), 1)


def test_the_path_each_mode_takes():
    assert resolve_fast("auto", CPU, 10**6) == "off" and resolve_fast("graph", CPU, 1) == "off"  # CPU: unchanged
    assert resolve_fast("auto", CUDA, COMPILE_FRAMES - 1) == "graph"
    assert resolve_fast("auto", CUDA, COMPILE_FRAMES) == "compile"
    assert resolve_fast("graph", CUDA, 10**6) == "graph" and resolve_fast("off", CUDA, 1) == "off"
    with pytest.raises(ValueError, match="--fast must be one of"):
        resolve_fast("fastest", CUDA, 1)


def test_on_the_cpu_the_method_is_returned_as_it_is(occ3d):
    method, _ = occ3d
    for mode in ("auto", "graph", "compile", "off"):
        m, how = fast_predictor(method, "supervised", mode, CPU, 10)
        assert m is method and how == ""


def _cpu_capture(pred, static, dtype):
    """What a graph does, on the CPU: recompute from the static inputs at each replay."""

    def replay():
        with torch.autocast("cpu", dtype=dtype):
            return pred(*static)[0]

    return replay


def _wrong_capture(pred, static, dtype):
    """A broken graph: its logits are not the network's (the classes rolled by one)."""
    replay = _cpu_capture(pred, static, dtype)
    return lambda: replay().roll(1, dims=1)


def test_a_working_capture_gives_the_eager_classes(occ3d):
    method, frames = occ3d
    fp = FastPredict(method, "supervised", "graph", torch.bfloat16, capture=_cpu_capture)
    assert fp.fast
    with torch.no_grad():
        for f in frames:
            fast = fp.predict(f)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                eager = method.predict(f)
            assert (fast.argmax(1) == eager.argmax(1)).float().mean() >= 0.999
    assert fp.fast and len(fp.graphs) == 1  # one shape, one capture, replayed


def test_a_failed_capture_falls_back_to_eager_with_one_line(occ3d, capsys):
    method, frames = occ3d

    def fails(*a):
        raise RuntimeError("operation not permitted when stream is capturing\nmore")

    fp = FastPredict(method, "supervised", "graph", torch.bfloat16, capture=fails)
    with torch.no_grad():
        out = [fp.predict(f) for f in frames]
        ref = [method.predict(f) for f in frames]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "graph path failed (RuntimeError: operation not permitted" in err[0]
    assert "eagerly" in err[0] and not fp.fast
    assert all(torch.equal(a, b) for a, b in zip(out, ref))  # the method's own predict


def test_a_graph_that_disagrees_with_eager_is_caught(occ3d, capsys):
    method, frames = occ3d
    fp = FastPredict(method, "supervised", "graph", torch.bfloat16, capture=_wrong_capture)
    with torch.no_grad():
        first = fp.predict(frames[0])  # checked against the eager network: eager from here
        second = fp.predict(frames[1])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "agree with eager ones on" in err[0] and not fp.fast
    with torch.no_grad():
        assert torch.equal(first, method.predict(frames[0])) and torch.equal(second, method.predict(frames[1]))


def test_a_recipe_that_is_not_exported_stays_eager(occ3d):
    method, _ = occ3d
    fp = FastPredict(method, "occscene", "graph")
    assert not fp.fast and fp.why_eager


def test_predict_cli_takes_the_flag(tmp_path):
    from occkit.cli import main

    with pytest.raises(SystemExit):
        main(["predict", "--ckpt", "x", "--data", "y", "--out", str(tmp_path / "o"), "--fast", "fastest"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (a captured graph)")
def test_the_cuda_graph_on_a_gpu(occ3d):
    method, frames = occ3d
    method = method.to(CUDA)
    fp = FastPredict(method, "supervised", "graph", torch.bfloat16)
    with torch.no_grad():
        for f in frames:
            f = f.to(CUDA)
            fast = fp.predict(f)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                eager = method.predict(f)
            assert (fast.argmax(1) == eager.argmax(1)).float().mean() >= 0.999
    assert fp.fast and len(fp.graphs) == 1
