"""``benchmarks/find_moving_worlds.py``: the search's decisions counted against a synthetic world's instances (the
ground never counts, a moving object's returns are not static ones), the objects that move read from the world's
objects.json, and each bound checked on every world, naming the worlds that miss it."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
from find_moving_worlds import moving_instances, summary, truth_counts  # noqa: E402


def test_the_counts_take_static_non_ground_returns_only():
    instance = np.array([0, 0, 4, 4, 4, 7, 7, 9])  # 0: ground; 7: moves; 4 and 9: static objects
    dyn = np.array([True, False, True, False, False, True, False, False])
    boxed = np.array([True, True, True, True, False, True, True, False])
    c = truth_counts(dyn, boxed, instance, {7})
    assert c["static_nonground"] == 4 and c["static_nonground_found"] == 1 and c["static_nonground_boxed"] == 2
    assert c["ground_found"] == 1  # counted apart, never in the static share
    assert c["moving"] == 2 and c["moving_found"] == 1 and c["moving_boxed"] == 2
    with pytest.raises(ValueError, match="not the same sweep"):
        truth_counts(dyn[:3], boxed, instance, {7})


def test_the_moving_objects_are_those_dynamic_at_some_keyframe(tmp_path):
    for token, objects in {"a": [(4, False), (7, True)], "b": [(4, False), (7, False), (9, True)]}.items():
        (tmp_path / "extras" / "sc" / token).mkdir(parents=True)
        rows = [{"instance": i, "dynamic": d} for i, d in objects]
        (tmp_path / "extras" / "sc" / token / "objects.json").write_text(json.dumps({"objects": rows}))
    assert moving_instances(tmp_path, "sc") == {7, 9}


def test_each_bound_is_checked_on_every_world():
    base = {"trail_without": 10.0, "trail_with": 1.0, "static_found": 1, "static_returns": 1000, "moving_found": 80}
    base |= {"moving_boxed": 90, "miou_without": 40.0, "miou_with": 41.0, "static_iou_without": 70.0}
    rows = [
        {**base, "seed": 3, "sweeps": 5, "trail_share": 10.0, "static_found_moving": 0.1, "static_boxed": 0.2,
         "static_iou_with": 70.0},
        {**base, "seed": 5, "sweeps": 5, "trail_share": 30.0, "static_found_moving": 0.1, "static_boxed": 0.7,
         "static_iou_with": 68.5},
    ]  # fmt: skip
    lines = "\n".join(summary(rows))
    assert "trail share <= 25 %: NOT met on s5-w5 30" in lines
    assert "inside a box found, <= 0.5 %: NOT met on s5-w5 0.7" in lines
    assert "static occupied IoU lost <= 1: NOT met on s5-w5 1.5" in lines
    assert "- trail_share: mean 20.000, spread 10..30" in lines
