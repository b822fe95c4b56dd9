"""``benchmarks/bench_breakdown.py``: occ3d-r50's forward part by part under FakeTensorMode (seconds, no data).
The counted FLOPs of the 3D encoder's parts are the hand-computed ones, and the speed options move them as
their docstrings say."""

import json
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_breakdown import breakdown  # noqa: E402
from bench_breakdown import main as bench_main  # noqa: E402

VOXELS = 200 * 200 * 16  # occ3d-r50's lift grid (0.4 m, no downsampling)


def conv_gflop(voxels: int, c_in: int, c_out: int, taps: int) -> float:
    return 2 * voxels * c_in * c_out * taps / 1e9


@pytest.fixture(scope="module")
def default():
    return breakdown("occ3d-r50", [], 1)


def test_parts_add_up_and_match_the_hand_count(default):
    rows, totals = default
    by = {r["part"]: r for r in rows}
    assert abs(sum(r["gflop"] for r in rows) - totals["gflop"]) < 0.5
    # stage 0: two 3x3x3 convs 64 -> 64 at full resolution (identity skip); the fusion: 192 -> 64
    assert by["3D encoder: stage 0"]["gflop"] == pytest.approx(2 * conv_gflop(VOXELS, 64, 64, 27), abs=0.05)
    assert by["3D encoder: fuse 0"]["gflop"] == pytest.approx(conv_gflop(VOXELS, 192, 64, 27), abs=0.05)
    # the splat sums in float32: its zeroed volume is the lift's largest tensor, (cells + trash row, C)
    assert by["lift: geometry + splat"]["largest_written"] == f"new_zeros ({VOXELS + 1}, 64) float32"
    # stage 0's residual sum is promoted to float32 by the lifted volume (what lifted_autocast removes)
    assert by["3D encoder: stage 0"]["largest_written"].endswith("float32")
    assert all(r["roofline_ms"] > 0 and r["bound"] in ("compute", "memory") for r in rows)
    assert totals["roofline_frames_per_s"] == pytest.approx(1000 / totals["roofline_ms"], rel=1e-2)


def test_options_move_the_counts_as_documented(default):
    rows0, tot0 = default
    rows, tot = breakdown("occ3d-r50", ["model.encoder_fuse=split", "model.lifted_autocast=true"], 1)
    by = {r["part"]: r for r in rows}
    # split: the coarse half of the fusion becomes a 4^3-tap transposed conv on the 100x100x8 grid
    saved = conv_gflop(VOXELS, 128, 64, 27) - conv_gflop(VOXELS // 8, 128, 64, 64)
    assert tot0["gflop"] - tot["gflop"] == pytest.approx(saved, abs=0.5)
    assert "3D encoder: fuse 0" not in by  # its module does not run
    assert by["3D encoder: stage 0"]["largest_written"].endswith("bfloat16")
    assert tot["gb_moved"] < tot0["gb_moved"]


def test_batch_scales_and_json_is_written(tmp_path, capsys, monkeypatch):
    out = tmp_path / "b.json"
    assert bench_main(["--batches", "1", "2", "--json", str(out)]) == 0  # in-process: the work, not the program
    doc = json.loads(out.read_text())
    one, two = (r["totals"] for r in doc["results"])
    assert two["gflop"] == pytest.approx(2 * one["gflop"], rel=1e-3)
    assert doc["peaks"] == {"tflops": 989.4, "tb_per_s": 3.35, "source": doc["peaks"]["source"]}
    said = capsys.readouterr().out
    assert "backbone (ResNet)" in said and "roofline" in said
    # the script as a program (run as __main__ here, not in a new interpreter: the exit code is what
    # SystemExit carries): a bad option is exit code 2 and one line on stderr
    monkeypatch.setattr(sys, "argv", ["bench_breakdown.py", "--set", "model.no_such_key=1"])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(ROOT / "benchmarks" / "bench_breakdown.py"), run_name="__main__")
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.strip().count("\n") == 0 and "bench_breakdown: error" in err
