"""benchmarks/label_anchors.py's ``--presets``: a preset, then options switched on or off or set to a word."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parents[2] / "benchmarks" / "label_anchors.py"
_spec = importlib.util.spec_from_file_location("label_anchors", HERE)
la = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(la)

PRESETS = {"occkit": {}, "occ3d-published": {"knn": 1, "object_fill": False}}


def test_a_preset_with_options_switched_on_and_off():
    assert la.preset_options("occkit", PRESETS) == {}
    assert la.preset_options("occkit+refine_boxes", PRESETS) == {"refine_boxes": True}
    assert la.preset_options("occkit+object_fill=false", PRESETS) == {"object_fill": False}
    got = la.preset_options("occ3d-published+object_fill=True+flow", PRESETS)
    assert got == {"knn": 1, "object_fill": True, "flow": True}
    assert PRESETS["occ3d-published"]["object_fill"] is False  # the table itself is left as it was
    got = la.preset_options("occkit+object_fill+object_fill_voxels=reached", PRESETS)
    assert got == {"object_fill": True, "object_fill_voxels": "reached"}  # a word-valued option keeps its word


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ("occ3d+flow", "'occ3d' is not a preset"),
        ("occkit+flow=", "KEY=true, KEY=false or KEY=WORD"),
        ("occkit+=1", "KEY=true"),
    ],
)
def test_a_bad_preset_spec_is_refused_in_one_line(spec, said):
    with pytest.raises(SystemExit, match=said):
        la.preset_options(spec, PRESETS)
