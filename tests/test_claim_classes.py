"""``benchmarks/claim_classes.py``: two arms of an ablation compared class by class. A seed's shares sum to the
difference of the two runs' mIoU over the classes both define, a class undefined in one run is named, and a run not
scored yet is left out."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from claim_classes import compare, render  # noqa: E402


def _run(out: Path, name: str, iou: dict | None) -> None:
    run = out / "runs" / name
    run.mkdir(parents=True)
    if iou is not None:
        vals = [v for v in iou.values() if v is not None]
        (run / "score_occ3d_camera.json").write_text(json.dumps({"miou": sum(vals) / len(vals), "iou": iou}))


@pytest.fixture
def ablation(tmp_path):
    # seed 0: `b` predicts a bus the ground truth lacks (IoU 0), `a` predicts none (undefined)
    _run(tmp_path, "a_s0", {"car": 10.0, "road": 90.0, "bus": None})
    _run(tmp_path, "b_s0", {"car": 7.0, "road": 89.0, "bus": 0.0})
    _run(tmp_path, "a_s1", {"car": 12.0, "road": 80.0, "bus": None})
    _run(tmp_path, "b_s1", {"car": 12.0, "road": 84.0, "bus": None})
    _run(tmp_path, "a_s2", None)  # still training: no scored file
    _run(tmp_path, "b_s2", {"car": 1.0, "road": 1.0, "bus": None})
    return tmp_path


def test_shares_sum_to_the_common_class_difference(ablation):
    paired = compare(ablation, "a", "b")
    assert sorted(paired) == [0, 1]  # seed 2 is not scored for `a`
    s0 = paired[0]["rows"]
    assert set(s0) == {"car", "road"} and paired[0]["undefined"] == ["bus"]
    assert s0["car"] == (10.0, 7.0, 3.0, 1.5) and s0["road"] == (90.0, 89.0, 1.0, 0.5)
    # over car and road: (10 + 90) / 2 - (7 + 89) / 2 = 2.0, where the official means differ by 50 - 32 = 18
    assert sum(r[3] for r in s0.values()) == pytest.approx(2.0)
    assert sum(r[3] for r in paired[1]["rows"].values()) == pytest.approx((12 + 80) / 2 - (12 + 84) / 2)


def test_render_names_the_left_out_class(ablation):
    text = render(compare(ablation, "a", "b"), "a", "b")
    assert "| car | 10.00 / 7.00 (+3.00) | 12.00 / 12.00 (+0.00) | +1.500, +0.000 |" in text
    assert "s0 +2.000, s1 -2.000" in text
    assert "s0: undefined in either run, left out: bus" in text


def test_command_line_refuses_a_folder_without_runs(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "claim_classes.py"),
            "--out",
            str(tmp_path),
            "--arm",
            "a",
            "--against",
            "b",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        f"claim_classes: {tmp_path}: no runs/ folder (not an `occkit ablate` output)"
    ]
