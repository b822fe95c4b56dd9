"""benchmarks/label_classes.py: the labels against the exact labels class by class (hand cases)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
from label_classes import GROUND, class_ious, taught  # noqa: E402


def test_class_ious_on_a_hand_confusion():
    """Rows exact, columns labels, the last the free id: class a 4 right, 1 called b, 1 called free, and one free
    voxel labelled a (IoU 4 / 7); class b never in the exact labels (None)."""
    conf = np.array([[4, 1, 1], [0, 0, 0], [1, 0, 10]])
    assert class_ious(conf, ("a", "b")) == {"a": round(100 * 4 / 7, 2), "b": None}


def test_taught_shares_sum_to_one_per_ground_class():
    names = ("x", *GROUND)
    counts = {k: np.zeros(6, np.int64) for k in ("total", "same", "free", "other", "outside")}
    c = names.index("terrain")
    counts["total"][c], counts["same"][c], counts["free"][c], counts["other"][c], counts["outside"][c] = 10, 6, 2, 1, 1
    out = taught(counts, names)
    assert list(out) == ["terrain"]  # the ground classes the exact labels hold
    assert out["terrain"] == {"same": 0.6, "free": 0.2, "other": 0.1, "outside": 0.1}


def test_a_missing_folder_is_one_line():
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "label_classes.py"), "--world", "/nonexistent", "--labels", "."],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and r.stderr.strip() == "label_classes: --world /nonexistent: not a folder"
