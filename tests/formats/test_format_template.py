"""The format module's template (docs/design.md, "A format module"): each in-tree format module
names its roles by the template's names and its ``FORMAT`` holds exactly those, or it is one of the
formats built by a family's builder; ``format_of_module`` refuses a module that lacks a role, and a
role given twice."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import types

import pytest

import occkit.formats
from occkit.formats import get_format
from occkit.formats.spec import (
    MODULE_ROLES,
    PREDICTION_ROLES,
    RECORDS,
    REQUIRED_ROLES,
    ClassTable,
    DatasetFormat,
    format_of_module,
    refuse_another_class_count,
)
from occkit.geometry.grid import Grid

#: The in-tree formats built by a family's builder rather than from their own module's names:
#: SurroundOcc and OpenOccupancy (formats/_lidar_layout.py, from their layout modules), nuScenes
#: (Occ3D's format with the raw nuScenes tables beside it).
FAMILY_BUILT = {"surroundocc", "openoccupancy", "nuscenes"}


def _format_modules() -> dict[str, types.ModuleType]:
    found = {}
    for info in pkgutil.iter_modules(occkit.formats.__path__):
        module = importlib.import_module(f"occkit.formats.{info.name}")
        fmt = getattr(module, "FORMAT", None)
        if isinstance(fmt, DatasetFormat):
            found[fmt.name] = module
    return found


def test_every_in_tree_format_module_follows_the_template():
    modules = _format_modules()
    assert {"occ3d", "semantickitti", "kitti360", "nyu"} <= set(modules)
    for name, module in modules.items():
        fmt = module.FORMAT
        assert get_format(name) == fmt, name
        if name in FAMILY_BUILT:
            continue
        for role in REQUIRED_ROLES:
            assert hasattr(module, role), f"{module.__name__} lacks {role}"
        for role, path in MODULE_ROLES.items():
            record, _, field = path.rpartition(".")  # a field of the format's own, or of its record
            held = getattr(getattr(fmt, record) if record else fmt, field)
            if hasattr(module, role):
                assert held is getattr(module, role), f"{name}.{path} is not the module's {role}"
            else:  # a role the module does not define: the field's default, never another home
                kind = RECORDS[record] if record else DatasetFormat
                assert held == kind.__dataclass_fields__[field].default, f"{name}.{path}"
        for role, field in PREDICTION_ROLES.items():
            assert getattr(fmt.predictions, field) is getattr(module, role), f"{name}.predictions.{field}"
    assert FAMILY_BUILT <= set(modules)


def _module(name: str, **attrs) -> str:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module
    return name


@pytest.fixture
def roles():
    def one(*_a, **_k):
        return None

    table = ClassTable(("free", "car"), free=0)
    names = dict(TABLE=table, GRID=Grid((0, 0, 0), (1, 1, 1), (0.5, 0.5, 0.5)), detect=one, open_split=one)
    names.update(metrics=one, write_prediction=one, prediction_files=one, read_prediction=one, prediction_relpath=one)
    return names


def _declared():
    return dict(name="tiny", summary="a tiny format", modality="monocular", label_frame="ego", splits=("train",))


def test_a_module_with_every_role_gives_its_format(roles):
    name = _module("occkit_test_tiny_format", **roles)
    try:
        fmt = format_of_module(name, **_declared(), detection={"priority": 7}, scoring={"metric_names": ("miou",)})
    finally:
        del sys.modules[name]
    assert fmt.classes is roles["TABLE"] and fmt.grid is roles["GRID"] and fmt.open is roles["open_split"]
    assert fmt.predictions.relpath is roles["prediction_relpath"]
    # a record's fields that are no role of the module's, given by the record's name, beside its roles
    assert fmt.detection.detect is roles["detect"] and fmt.detection.priority == 7
    assert fmt.scoring.metrics is roles["metrics"] and fmt.scoring.metric_names == ("miou",)
    assert fmt.writers.write_synthetic is None and fmt.cameras is None  # roles it does not define: the defaults


def test_a_missing_role_is_named(roles):
    del roles["read_prediction"], roles["GRID"]
    name = _module("occkit_test_tiny_format", **roles)
    try:
        with pytest.raises(TypeError, match=r"occkit_test_tiny_format: a format module defines GRID, read_prediction"):
            format_of_module(name, **_declared())
    finally:
        del sys.modules[name]


def test_a_role_given_twice_is_refused(roles):
    name = _module("occkit_test_tiny_format", **roles)
    try:
        with pytest.raises(TypeError, match=r"occkit_test_tiny_format: classes, grid given as an argument and by"):
            format_of_module(name, **_declared(), classes=roles["TABLE"], grid=roles["GRID"])
        with pytest.raises(TypeError, match=r"occkit_test_tiny_format: scoring.metrics given as an argument and by"):
            format_of_module(name, **_declared(), scoring={"metrics": roles["metrics"]})
    finally:
        del sys.modules[name]


def test_a_model_of_another_class_count_is_refused_naming_the_preset():
    table = ClassTable(("empty", "car", "road"), free=0)
    refuse_another_class_count({}, table, "Tiny", "tiny-mono")  # not given: nothing to check
    refuse_another_class_count({"num_classes": 3}, table, "Tiny", "tiny-mono")
    with pytest.raises(ValueError) as e:
        refuse_another_class_count({"num_classes": 18}, table, "Tiny", "tiny-mono")
    assert str(e.value) == (
        "Tiny has 3 classes but the model predicts 18: use the tiny-mono preset or --set model.num_classes=3"
    )
