"""The schemas of the files occkit reads (occkit.schema; docs/design.md, "Schemas of the files occkit reads"):
a pydantic ValidationError becomes one line naming the file, the row, the field and the problem in plain
words, the field's description after it; JSON types kept strict (3.0 is the integer 3, 6.7, true and "3"
are not). The rig folder's tables (occkit.data.rig_schema) refuse what a rig folder test meets without
running a label: a misspelt pose key, a quaternion that is not a unit one, a split naming no scene."""

from __future__ import annotations

import math
from typing import Annotated

import pytest
from pydantic import Field

from occkit.schema import Finite, Int, Table, numbers, validate


class Row(Table):
    name: str = Field(description="the row's name")
    count: Int = Field(ge=1, le=10, description="how many")
    flag: bool = False
    xyz: numbers(3, Finite) = Field([0.0, 0.0, 0.0], description="a point")


class File(Table):
    rows: list[Row]
    scale: Annotated[float, Field(gt=0)] = 1.0


def _line(data, row=None) -> str:
    with pytest.raises(ValueError) as e:
        validate(File, data, "f.json", row)
    text = str(e.value)
    assert "\n" not in text and text.startswith("f.json: "), text
    return text


def _rows(**change):
    return {"rows": [{"name": "a", "count": 2}, {"name": "b", "count": 3, **change}]}


@pytest.mark.parametrize(
    "data, line",
    [
        (_rows(count=6.7), "f.json: rows[1]: count: 6.7 is not an integer (refused, not rounded) (how many)"),
        (_rows(count=True), "f.json: rows[1]: count: True is not an integer (how many)"),
        (_rows(count="3"), "f.json: rows[1]: count: '3' is not an integer (how many)"),
        (_rows(count=11), "f.json: rows[1]: count: 11 is not in [1, 10] (how many)"),
        (_rows(flag=1), "f.json: rows[1]: flag: 1 is not true or false (a JSON boolean)"),
        (_rows(xyz=[1, 2]), "f.json: rows[1]: xyz: [1, 2] is not a list of 3 (a point)"),
        (_rows(xyz=[1, math.nan, 2]), "f.json: rows[1]: xyz[1]: nan is not finite (a point)"),
        (_rows(colour="red"), "f.json: rows[1]: unknown key 'colour' (its keys: name, count, flag, xyz)"),
        ({"rows": [{"count": 2}]}, "f.json: rows[0]: name missing"),
        ({"rows": [[1]]}, "f.json: rows[0]: list [1] is not an object"),
        ({"rows": None}, "f.json: rows: null is not a list"),
        ({"rows": [], "scale": 0}, "f.json: scale: 0 is not in (0, inf)"),
        ({"rows": [], "extra": 1}, "f.json: unknown key 'extra' (its keys: rows, scale)"),
        ([], "f.json: list [] is not an object"),
    ],
    ids=[
        "fraction",
        "boolean_int",
        "text_int",
        "over_bound",
        "number_bool",
        "short_list",
        "nan",
        "unknown_key",
        "missing",
        "row_not_object",
        "null_list",
        "bound_open",
        "top_unknown_key",
        "not_object",
    ],
)
def test_a_broken_schema_is_one_line_naming_file_row_field_and_problem(data, line):
    assert _line(data) == line


def test_a_whole_number_written_as_a_fraction_is_the_integer_and_a_row_can_be_named_by_its_content():
    got = validate(File, _rows(count=3.0), "f.json")
    assert got.rows[1].count == 3 and isinstance(got.rows[1].count, int)
    data = _rows(count=0)
    line = _line(data, row=lambda i: f" (name {data['rows'][i]['name']!r})")
    assert line.startswith("f.json: rows[1] (name 'b'): count: 0 is not in [1, 10]"), line


P = {"translation": [0.0, 0.0, 0.0], "rotation": [1.0, 0.0, 0.0, 0.0]}
RIG = {"format": "occkit-rig", "version": 1, "lidars": {"LIDAR_TOP": P}, "scenes": ["s0", "s1"]}


@pytest.mark.parametrize(
    "change, line",
    [
        ({"lidars": {"LIDAR_TOP": {"translation": [0, 0, 0], "rotaton": [1, 0, 0, 0]}}}, "lidars.LIDAR_TOP: unknown"),
        ({"lidars": {"LIDAR_TOP": {**P, "rotation": [0.9, 0, 0, 0]}}}, "quaternion has norm 0.9, not 1"),
        ({"lidars": {"LIDAR_TOP": {**P, "translation": [5e3, 0, 0]}}}, "more than 1000 m from its origin"),
        ({"lidars": {}}, "rig.json: lidars: {} has 0 entries, fewer than 1"),
        ({"splits": {"val": ["s9"]}}, "rig.json: splits.val: ['s9'] are not scenes of the rig"),
        ({"splits": {"train": ["s0"], "val": ["s0"]}}, "rig.json: splits: ['s0'] are in both train and val"),
        ({"scenes": ["s0", "/s1"]}, "rig.json: scenes[1]: file name '/s1' leaves the rig folder"),
        ({"format": "other"}, "rig.json: format: 'other' is not 'occkit-rig'"),
    ],
    ids=[
        "pose_key_misspelt",
        "quaternion_not_unit",
        "lidar_far",
        "no_lidar",
        "split_unknown",
        "split_both",
        "abs",
        "format",
    ],
)
def test_the_rig_table_refuses_in_one_line(change, line):
    from occkit.data.rig_schema import RigMeta

    with pytest.raises(ValueError) as e:
        validate(RigMeta, {**RIG, **change}, "rig.json")
    assert line in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_the_rig_table_reads_a_pose_as_every_reader_does():
    import numpy as np

    from occkit.data.rig_schema import RigMeta
    from occkit.geometry.transforms import checked_pose

    pose = {"translation": [1.5, -2.0, 0.25], "rotation": [0.7071067812, 0.0, 0.0, 0.7071067812]}
    meta = validate(RigMeta, {**RIG, "lidars": {"L": pose}}, "rig.json")
    want = checked_pose(pose["translation"], pose["rotation"], "extrinsic", "x").numpy()
    assert np.array_equal(meta.lidars["L"].matrix(), want)  # the same bits


def test_every_problem_is_said_in_one_line_and_a_rule_keeps_its_braces():
    from pydantic import ValidationError, field_validator

    from occkit.schema import every_line, problem, problems

    class Braced(Row):
        @field_validator("name")
        @classmethod
        def _braced(cls, v: str) -> str:
            if v.startswith("{"):
                raise problem(f"{v} is a {{template}}")
            return v

    with pytest.raises(ValidationError) as e:
        Braced.model_validate({"name": "{x}", "count": 0, "xyz": [1, 2], "colour": "red"})
    said = problems(e.value, Braced)
    assert said == [
        "name: {x} is a {template}",
        "count: 0 is not in [1, 10] (how many)",
        "xyz: [1, 2] is not a list of 3 (a point)",
        "unknown key 'colour' (its keys: name, count, flag, xyz)",
    ]
    assert every_line(e.value, "f.json: row b", Braced) == "f.json: row b: " + "; ".join(said)
