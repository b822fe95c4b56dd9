"""``occkit label --set KEY=VALUE``: values typed through the config system as ``occkit train --set`` reads
them (YAML values, each checked against its ``LabelOptions`` field), a wrong type or an unknown key refused in
one line naming the key, the value and what was wanted (docs/labels.md, "What each option does")."""

from __future__ import annotations

import pytest

from occkit.cli import COMMANDS, build_parser, main
from occkit.commands.label import _options
from occkit.config import parse_overrides
from occkit.formats import default_format
from occkit.labelgen.pipeline import LabelOptions

TABLE = default_format().classes
CLASSES = tuple(TABLE.names[: TABLE.free])


def _opts(*sets: str, preset: str = "occkit", window: int | None = None) -> LabelOptions:
    p = build_parser(tuple(c for c in COMMANDS if c[0] == "label"))
    argv = ["label", "--data", "d", "--out", "o", "--preset", preset]
    for s in sets:
        argv += ["--set", s]
    if window is not None:
        argv += ["--window", str(window)]
    return _options(p.parse_args(argv), CLASSES)


def test_a_false_boolean_is_false_not_a_true_string():
    assert _opts("erase_trails=False").erase_trails is False
    assert _opts("erase_trails=false").erase_trails is False
    assert _opts().erase_trails is True


def test_yes_and_off_are_booleans_as_train_set_reads_them():
    # YAML 1.1 (what occkit train --set parses with): yes / no / on / off are booleans
    assert parse_overrides(["flow=yes", "camera_mask=off"]) == {"flow": True, "camera_mask": False}
    opt = _opts("flow=yes", "camera_mask=off")
    assert opt.flow is True and opt.camera_mask is False


@pytest.mark.parametrize(
    "item, words",
    [
        ("carve_rel=abc", ["carve_rel", "'abc'", "a number"]),
        ("carve_rel=null", ["carve_rel", "None", "a number"]),
        ("flow=maybe", ["flow", "'maybe'", "true or false"]),
        ("knn=2.5", ["knn", "2.5", "an integer"]),
        ("ground_classes=terrain", ["ground_classes", "'terrain'", "a list"]),
        ("ground_classes=[terrain, 3]", ["ground_classes[1]", "3", "a string"]),
    ],
)
def test_a_wrong_type_is_refused_naming_the_key_the_value_and_the_type(item, words):
    with pytest.raises(ValueError) as e:
        _opts(item)
    msg = str(e.value)
    assert msg.startswith("--set ") and "\n" not in msg
    for w in words:
        assert w in msg, msg


def test_a_list_is_a_tuple_of_the_names_given():
    assert _opts("ground_classes=[terrain]").ground_classes == ("terrain",)
    assert _opts('ground_classes=["sidewalk", "terrain"]').ground_classes == ("sidewalk", "terrain")
    assert _opts("ground_classes=[]").ground_classes == ()


def test_a_ground_class_not_in_the_output_table_is_refused_by_name():
    with pytest.raises(ValueError, match=r"ground_classes: 'road' not in the output's classes \(others, ") as e:
        _opts('ground_classes=["road", "terrain"]')
    assert "'terrain'" not in str(e.value).split("(")[0]  # only the missing name is named


def test_numbers_are_typed_and_ranges_still_checked():
    opt = _opts("box_margin=1", "knn=3", "carve_rel=0.3")
    assert opt.box_margin == 1.0 and isinstance(opt.box_margin, float) and opt.knn == 3 and opt.carve_rel == 0.3
    with pytest.raises(ValueError, match=r"carve_rel must be a number in \[0, 1\), got 1.5"):
        _opts("carve_rel=1.5")
    with pytest.raises(ValueError, match="knn must be an integer >= 1, got 0"):
        _opts("knn=0")


def test_an_unknown_key_is_refused_listing_the_keys():
    with pytest.raises(ValueError, match="--set carve: not a label option") as e:
        _opts("carve=0.1")
    for k in LabelOptions.keys():
        assert k in str(e.value)
    with pytest.raises(ValueError, match="expected key=value"):
        _opts("erase_trails")


def test_the_preset_then_set_then_window():
    published = _opts(preset="occ3d-published")
    assert published.erase_trails is False and published.knn == 1 and published.ground_fill == 0
    assert _opts("erase_trails=true", preset="occ3d-published").erase_trails is True
    assert _opts(window=4).window == 4


def test_options_built_in_python_are_checked_for_type_too():
    with pytest.raises(ValueError, match="erase_trails must be true or false, got 'False'"):
        LabelOptions(erase_trails="False")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ground_classes must be a list of class names, got 'terrain'"):
        LabelOptions(ground_classes="terrain")  # type: ignore[arg-type]
    assert LabelOptions(ground_classes=["terrain"]).ground_classes == ("terrain",)  # type: ignore[arg-type]


def test_the_cli_refuses_in_one_line_before_anything_is_read_or_written(tmp_path, capsys):
    out = tmp_path / "lab"
    assert main(["label", "--data", str(tmp_path / "none"), "--out", str(out), "--set", "carve_rel=abc"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "carve_rel" in err and "'abc'" in err and "Traceback" not in err, err
    assert not out.exists() and not list(tmp_path.glob(".lab*"))


def test_every_imperfect_recording_setting_is_reachable_and_typed():
    opt = _opts("refine_poses.max_disagreement=2", "find_moving.checks=6", "refine_boxes.yaw_sigma=5",
                "densify.truncation=0.3")  # fmt: skip
    assert opt.refine_poses.max_disagreement == 2.0 and isinstance(opt.refine_poses.max_disagreement, float)
    assert opt.find_moving.checks == 6 and opt.refine_boxes.yaw_sigma == 5.0 and opt.densify.truncation == 0.3
    assert not (opt.refine_poses.enabled or opt.find_moving.enabled or opt.refine_boxes.enabled)  # set, not on
    assert opt.densify.method == "none"
    with pytest.raises(ValueError, match=r"--set refine_poses.max_disagreement: expected a number, got 'far'"):
        _opts("refine_poses.max_disagreement=far")
    with pytest.raises(ValueError, match=r"find_moving.nope"):
        _opts("find_moving.nope=1")


@pytest.mark.parametrize(
    "item, flag",
    [
        ("window=2", "--window"),
        ("refine_poses.enabled=true", "--refine-poses"),
        ("find_moving.enabled=true", "--find-moving"),
        ("refine_boxes.enabled=true", "--refine-boxes"),
        ("densify.method=tsdf", "--densify"),
        ("refine_poses=true", "--refine-poses"),
        ("densify=tsdf", "--densify"),
    ],
)
def test_a_setting_a_flag_gives_has_one_spelling(item, flag):
    with pytest.raises(ValueError, match=flag) as e:
        _opts(item)
    assert str(e.value).startswith(f"--set {item.split('=')[0]}") and "\n" not in str(e.value)


def test_the_flags_switch_the_nested_settings_on():
    p = build_parser(tuple(c for c in COMMANDS if c[0] == "label"))
    argv = ["label", "--data", "d", "--out", "o", "--refine-poses", "--find-moving", "--densify", "tsdf"]
    opt = _options(p.parse_args(argv + ["--set", "refine_poses.voxel_size=1"]), CLASSES)
    assert opt.refine_poses.enabled and opt.refine_poses.voxel_size == 1.0 and opt.find_moving.enabled
    assert opt.densify.method == "tsdf" and not opt.refine_boxes.enabled
    assert LabelOptions(find_moving=True).find_moving.enabled  # a switch given in Python as before
    assert LabelOptions(densify="tsdf").densify.method == "tsdf"
