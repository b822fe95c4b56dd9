"""The dataset-format registry: occkit's own formats, detection in registry order, a folder of no
known format, and formats of other packages through the entry point group ``occkit.datasets`` (a
broken one named in one warning line and left out, a clashing name refused)."""

from __future__ import annotations

import dataclasses
import sys
import types
from importlib import metadata

import pytest

from occkit.formats import (
    ENTRY_POINT_GROUP,
    FormatRegistryError,
    detect_format,
    format_names,
    format_of,
    formats,
    get_format,
    registry,
)


@pytest.fixture
def fresh_registry(monkeypatch):
    """The registry found again (and forgotten after the test), with entry points of the test's own."""
    monkeypatch.setattr(registry, "_REGISTRY", None)
    eps: list[metadata.EntryPoint] = []

    def entry_points(group=None, **kw):
        return [e for e in eps if e.group == group] if group is not None else eps

    monkeypatch.setattr(registry.metadata, "entry_points", entry_points)
    yield eps
    registry._REGISTRY = None


def _module(monkeypatch, name: str, **attrs) -> str:
    mod = types.ModuleType(name)
    for k, v in attrs.items():
        setattr(mod, k, v)
    monkeypatch.setitem(sys.modules, name, mod)
    return name


def test_occkits_own_formats_come_first_occ3d_before_semantickitti():
    names = format_names()
    assert names.index("occ3d") < names.index("semantickitti")  # more formats may sit before or between
    occ, kitti = get_format("occ3d"), get_format("semantickitti")
    assert occ.source == "occkit.formats.occ3d" and kitti.source == "occkit.formats.semantickitti"
    assert occ.classes.free == 17 and occ.classes.num_classes == 18 and occ.grid.shape == (200, 200, 16)
    assert kitti.classes.free == 0 and kitti.classes.num_classes == 20 and kitti.grid.shape == (256, 256, 32)
    assert occ.modality == "multi-camera" and kitti.modality == "monocular" and kitti.cameras == ("image_2",)


def test_detection_keeps_todays_rule(tmp_path):
    occ = tmp_path / "occ"
    (occ / "sequences").mkdir(parents=True)
    (occ / "annotations.json").write_text("{}")
    kitti = tmp_path / "kitti"
    (kitti / "sequences").mkdir(parents=True)
    assert detect_format(occ).name == "occ3d"  # annotations.json wins over sequences/
    assert detect_format(kitti).name == "semantickitti"


def test_a_folder_of_no_known_format_is_one_line_listing_the_formats_tried(tmp_path):
    with pytest.raises(FormatRegistryError) as e:
        detect_format(tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path) in msg
    assert all(name in msg for name in format_names()) and "annotations.json" in msg
    with pytest.raises(FileNotFoundError, match="dataset folder not found"):
        detect_format(tmp_path / "nope")
    with pytest.raises(FormatRegistryError, match=f"'nope' is not one of {', '.join(format_names())}"):
        get_format("nope")


def test_a_dataset_is_marked_with_its_format_under_any_wrapper(tiny_occ3d_root):
    from torch.utils.data import Subset

    from occkit.data.wrappers import base_dataset

    ds = get_format("occ3d").open_split(tiny_occ3d_root, "all", load_images=False)
    assert ds.format_name == "occ3d"
    assert format_of(Subset(Subset(ds, [0]), [0])).name == "occ3d"
    assert base_dataset(Subset(ds, [0])) is ds
    with pytest.raises(TypeError, match="list does not wrap the frames of a dataset format"):
        format_of([1, 2])


def _toy_format(name: str = "toy"):
    from occkit.formats.occ3d import FORMAT  # the module, not the registry (found again in the test)

    detection = dataclasses.replace(FORMAT.detection, priority=5)
    return dataclasses.replace(FORMAT, name=name, title="", summary="a toy", detection=detection, source="")


def test_a_package_adds_a_format_through_an_entry_point(fresh_registry, monkeypatch, tmp_path):
    toy = _toy_format()
    toy = dataclasses.replace(
        toy,
        detection=dataclasses.replace(
            toy.detection, detect=lambda root: "toy.txt" if (root / "toy.txt").is_file() else None, refines=("occ3d",)
        ),
    )
    mod = _module(monkeypatch, "toy_pkg_format", FORMAT=toy)
    fresh_registry.append(metadata.EntryPoint(name="toy", value=f"{mod}:FORMAT", group=ENTRY_POINT_GROUP))
    assert "toy" in formats() and format_names()[0] == "toy"  # priority 5: tried before occ3d's 10
    assert "entry point toy = toy_pkg_format:FORMAT" in get_format("toy").source
    (tmp_path / "toy.txt").write_text("")
    (tmp_path / "annotations.json").write_text("{}")
    assert detect_format(tmp_path).name == "toy"  # a variant of occ3d's layout (refines): the variant


def test_a_folder_two_unrelated_formats_claim_is_refused_naming_both(fresh_registry, monkeypatch, tmp_path):
    # Before: the first format in registry order won in silence. A format that does not say it refines
    # occ3d's layout, on a folder occ3d also claims, is ambiguous whatever its priority.
    toy = _toy_format()
    toy = dataclasses.replace(
        toy,
        detection=dataclasses.replace(
            toy.detection, detect=lambda root: "toy.txt" if (root / "toy.txt").is_file() else None
        ),
    )
    mod = _module(monkeypatch, "toy_pkg_format2", FORMAT=toy)
    fresh_registry.append(metadata.EntryPoint(name="toy", value=f"{mod}:FORMAT", group=ENTRY_POINT_GROUP))
    (tmp_path / "toy.txt").write_text("")
    (tmp_path / "annotations.json").write_text("{}")
    with pytest.raises(FormatRegistryError) as e:
        detect_format(tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and "toy (toy.txt)" in msg and "occ3d (it holds annotations.json)" in msg
    assert "--format" in msg
    # occkit's own two layouts in one folder: KITTI-360's data_2d_raw/ beside Occ3D's annotations.json
    both = tmp_path / "both"
    (both / "data_2d_raw" / "2013_05_28_drive_0000_sync" / "voxels").mkdir(parents=True)
    (both / "annotations.json").write_text("{}")
    with pytest.raises(FormatRegistryError, match="kitti360 .*occ3d|occ3d .*kitti360"):
        detect_format(both)


def test_a_package_whose_detect_raises_is_named_once_and_the_others_keep_working(
    fresh_registry, monkeypatch, tmp_path, capsys
):
    def detect(root):
        raise AttributeError("'NoneType' object has no attribute 'glob'")

    bad = _toy_format("badfmt")
    bad = dataclasses.replace(bad, detection=dataclasses.replace(bad.detection, detect=detect))
    mod = _module(monkeypatch, "bad_detect_pkg", FORMAT=bad)
    fresh_registry.append(metadata.EntryPoint(name="badfmt", value=f"{mod}:FORMAT", group=ENTRY_POINT_GROUP))
    (tmp_path / "annotations.json").write_text("{}")
    assert detect_format(tmp_path).name == "occ3d"
    assert detect_format(tmp_path).name == "occ3d"
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err  # once, not per call
    assert "badfmt" in err[0] and "entry point badfmt = bad_detect_pkg:FORMAT" in err[0]
    assert "AttributeError" in err[0] and "left out of the detection" in err[0]


def test_a_broken_package_is_named_in_one_warning_line_and_left_out(fresh_registry, monkeypatch, capsys):
    fresh_registry.append(
        metadata.EntryPoint(name="broken", value="no_such_module_for_occkit:FORMAT", group=ENTRY_POINT_GROUP)
    )
    mod = _module(monkeypatch, "not_a_format_pkg", FORMAT=object())
    fresh_registry.append(metadata.EntryPoint(name="notfmt", value=f"{mod}:FORMAT", group=ENTRY_POINT_GROUP))
    names = format_names()
    from occkit.formats.registry import _in_tree

    assert "occ3d" in names and "semantickitti" in names and "broken" not in names and "notfmt" not in names
    assert len(names) == len(_in_tree())  # occkit's own only
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(warnings) == 2
    broken = next(w for w in warnings if "broken" in w)
    assert "no_such_module_for_occkit" in broken and "ModuleNotFoundError" in broken and "left out" in broken
    notfmt = next(w for w in warnings if "notfmt" in w)
    assert "not an occkit.formats.DatasetFormat" in notfmt


def test_a_package_format_of_a_name_taken_is_refused(fresh_registry, monkeypatch, capsys):
    mod = _module(monkeypatch, "clash_pkg_format", FORMAT=_toy_format("occ3d"))
    fresh_registry.append(metadata.EntryPoint(name="clash", value=f"{mod}:FORMAT", group=ENTRY_POINT_GROUP))
    assert get_format("occ3d").source == "occkit.formats.occ3d"
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'occ3d' is already registered by occkit.formats.occ3d" in err


def test_a_package_format_of_an_unknown_world_is_refused(fresh_registry, monkeypatch, capsys):
    mod = _module(monkeypatch, "moon_pkg_format", FORMAT=dataclasses.replace(_toy_format("moon"), world="lunar"))
    fresh_registry.append(metadata.EntryPoint(name="moon", value=f"{mod}:FORMAT", group=ENTRY_POINT_GROUP))
    assert "moon" not in format_names()
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "world 'lunar' is not one of driving, indoor" in err


def test_the_spec_refuses_a_class_table_that_does_not_fit():
    from occkit.formats import ClassTable

    with pytest.raises(ValueError, match="free id 3 outside 0..2"):
        ClassTable(names=("a", "b", "c"), free=3)
    with pytest.raises(ValueError, match="ignore id 1 is a class id"):
        ClassTable(names=("a", "b", "c"), free=0, ignore=1)
    assert ClassTable(names=("a", "b", "c"), free=0).occupied == (1, 2)


def test_a_synthetic_class_map_is_checked_against_the_table(fresh_registry, monkeypatch, capsys):
    from occkit.formats import ClassTable
    from occkit.labels import OCC3D_CLASSES

    names = ("free", "thing")
    good = {c: ("free" if c == "free" else "thing") for c in OCC3D_CLASSES}
    toy = _toy_format("twoclass")
    toy = dataclasses.replace(
        toy,
        classes=ClassTable(names=names, free=0, ignore=255),
        writers=dataclasses.replace(toy.writers, synthetic_classes=good),
    )
    assert toy.synthetic_lut() == tuple(0 if c == "free" else 1 for c in OCC3D_CLASSES)
    bad_map = dataclasses.replace(toy.writers, synthetic_classes={**good, "car": "vehicle"})
    bad = dataclasses.replace(toy, name="badmap", writers=bad_map)
    mod = _module(monkeypatch, "badmap_pkg", FORMAT=bad)
    fresh_registry.append(metadata.EntryPoint(name="badmap", value=f"{mod}:FORMAT", group=ENTRY_POINT_GROUP))
    assert "badmap" not in format_names()
    err = capsys.readouterr().err
    assert "badmap" in err and "vehicle not in the class table" in err and "left out" in err


def test_the_world_writes_its_labels_in_the_ids_it_is_given():
    import numpy as np
    import torch

    from occkit.worlds.driving import SynthConfig
    from occkit.worlds.driving.writer import config_record, relabel_frame

    lut = tuple(range(17, -1, -1))  # reversed: world id k -> 17 - k
    fd = {
        "semantics": torch.tensor([[[0, 17]]], dtype=torch.uint8),
        "cameras": {"CAM": {"semantics": torch.tensor([[4, 11]], dtype=torch.uint8), "rgb": torch.zeros(1)}},
        "lidar": {"labels": torch.tensor([16], dtype=torch.uint8), "points": torch.zeros(1, 4)},
        "objects": [{"class_id": 4, "class_name": "car"}],
    }
    out = relabel_frame(fd, lut)
    assert out["semantics"].tolist() == [[[17, 0]]] and out["cameras"]["CAM"]["semantics"].tolist() == [[13, 6]]
    assert out["lidar"]["labels"].tolist() == [1] and out["objects"][0] == {"class_id": 13, "class_name": "car"}
    assert np.array_equal(fd["semantics"].numpy(), [[[0, 17]]])  # the input is left as it was
    assert "classes" not in config_record(SynthConfig())  # worlds of the world's own ids record what they did
    assert config_record(SynthConfig(classes=lut))["classes"] == list(lut)
    with pytest.raises(ValueError, match="classes must be 18 class ids"):
        SynthConfig(classes=(0, 1))


def test_show_and_pseudolabel_never_read_an_ambiguous_folder_as_occ3d(tmp_path, capsys):
    # they fall back to Occ3D's reader for a folder no format claims (it names what the folder lacks);
    # a folder two formats claim is refused instead, never drawn or labelled as one of them in silence
    from occkit.cli import main
    from occkit.formats.registry import AmbiguousFormatError
    from occkit.pseudolabel.dataset import pseudo_layout

    both = tmp_path / "both"
    (both / "data_2d_raw" / "2013_05_28_drive_0000_sync" / "voxels").mkdir(parents=True)
    (both / "annotations.json").write_text("{}")
    assert main(["show", str(both), "--out", str(tmp_path / "f.png")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds the layouts of 2 formats" in err[0]
    with pytest.raises(AmbiguousFormatError):
        pseudo_layout(both)


@pytest.mark.parametrize(
    "table,says",
    [
        # the Occ3D metric (18 classes, free last) under a table of 17 classes
        (("a",) * 16 + ("free",), "its metric occ3d counts 18 classes, its class table 17"),
        # the Occ3D metric's free class is its last id; a table whose free class is the first
        (dict(free=0), "its metric occ3d takes class 17 as free, its class table's free id is 0"),
        (dict(ignore=254), "its metric occ3d leaves out id 255, its class table's ignore id is 254"),
        (dict(rename=True), "its metric occ3d names the classes"),
    ],
)
def test_a_package_format_whose_metrics_disagree_with_its_table_is_refused_in_one_line(
    fresh_registry, monkeypatch, capsys, table, says
):
    from occkit.formats import ClassTable
    from occkit.formats.occ3d import FORMAT  # the module's (the registry is found again below)

    occ = FORMAT.classes
    if isinstance(table, tuple):
        classes = ClassTable(names=table, free=len(table) - 1, ignore=255)
    elif table.get("rename"):
        classes = ClassTable(names=("other",) + occ.names[1:], free=occ.free, ignore=occ.ignore)
    else:
        classes = ClassTable(names=occ.names, free=table.get("free", occ.free), ignore=table.get("ignore", 255))
    bad = _toy_format("disagrees")
    bad = dataclasses.replace(bad, classes=classes, writers=dataclasses.replace(bad.writers, synthetic_classes=None))
    mod = _module(monkeypatch, "disagreeing_pkg_format", FORMAT=bad)
    fresh_registry.append(metadata.EntryPoint(name="disagrees", value=f"{mod}:FORMAT", group=ENTRY_POINT_GROUP))
    assert "disagrees" not in format_names() and "occ3d" in format_names()
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "entry point disagrees = disagreeing_pkg_format:FORMAT" in err[0], err
    assert says in err[0] and "left out" in err[0]
