"""What a folder's format detection says when something other than one layout settles it
(docs/data.md, "Dataset formats"): occkit synth's record settling a folder that also holds another layout's
label folder (a warning naming both and the format option), nothing settling it (a refusal naming both),
and another package's format taking a folder from the format it refines with no record of occkit's (a
warning naming the package and its reason)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import types
from importlib import metadata

import pytest

from occkit.cli import main
from occkit.formats import ENTRY_POINT_GROUP, registry
from occkit.formats.registry import AmbiguousFormatError, detect_format
from occkit.outputs import OUTPUT_RECORD

TINY = ["--scenes", "2", "--frames", "2", "--image-size", "48", "80"]


@pytest.fixture(autouse=True)
def _said_afresh(monkeypatch):
    """Each test a fresh process's lines: none said yet."""
    monkeypatch.setattr(registry, "_WARNED", set())
    monkeypatch.setattr(registry, "_QUIET", False)


@pytest.fixture(scope="module")
def surroundocc(tmp_path_factory):
    """A tiny SurroundOcc dataset occkit synth wrote (its record names the format)."""
    out = tmp_path_factory.mktemp("layouts") / "surroundocc"
    assert main(["synth", "--out", str(out), "--format", "surroundocc", *TINY]) == 0
    assert json.loads((out / OUTPUT_RECORD).read_text())["format"] == "surroundocc"
    return out


@pytest.fixture
def both(surroundocc, tmp_path):
    """The SurroundOcc dataset with OpenOccupancy's label folder copied in beside its own."""
    folder = tmp_path / "both"
    shutil.copytree(surroundocc, folder)
    (folder / "nuScenes-Occupancy" / "scene_0" / "occupancy").mkdir(parents=True)
    return folder


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("occkit: warning:")]


def test_a_folder_with_two_label_folders_read_as_the_recorded_format_names_both_and_the_option(both, capsys):
    capsys.readouterr()
    assert main(["stats", str(both), "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "format surroundocc" in out
    (line,) = _warnings(err)
    assert f"{both}: read as surroundocc (annotations.json and nuscenes_occ/samples/)" in line
    assert f"the format occkit synth wrote it as ({OUTPUT_RECORD})" in line
    assert "openoccupancy (annotations.json and nuScenes-Occupancy/)" in line and "is not read" in line
    assert "pass --format openoccupancy to read that one" in line
    # occkit eval says it with its own option; occkit convert with --from
    empty = both.parent / "pred"
    empty.mkdir()
    registry._WARNED.clear()  # a new process
    assert main(["eval", "--gt", str(both), "--pred", str(empty)]) != 0  # no predictions: refused after the line
    (line,) = _warnings(capsys.readouterr().err)
    assert "pass --format openoccupancy" in line
    registry._WARNED.clear()
    assert detect_format(both, option="--from {}").name == "surroundocc"
    (line,) = _warnings(capsys.readouterr().err)
    assert "pass --from openoccupancy to read that one" in line
    # said once a process, however often the folder is detected
    assert detect_format(both, option="--from {}").name == "surroundocc"
    assert _warnings(capsys.readouterr().err) == []


def test_a_folder_with_two_label_folders_and_no_record_is_refused_naming_both(both, capsys):
    (both / OUTPUT_RECORD).unlink()
    capsys.readouterr()
    assert main(["stats", str(both), "--no-progress"]) != 0
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "openoccupancy (annotations.json and nuScenes-Occupancy/)" in err
    assert "surroundocc (annotations.json and nuscenes_occ/samples/)" in err
    assert "pass --format openoccupancy (or another of them)" in err
    # a record edited into a list settles nothing either: refused the same way, not a traceback
    (both / OUTPUT_RECORD).write_text("[1, 2]")
    with pytest.raises(AmbiguousFormatError, match="holds the layouts of 2 formats"):
        detect_format(both)


def test_a_folder_of_one_layout_reads_as_its_format_saying_nothing(surroundocc, tmp_path, capsys):
    capsys.readouterr()
    assert detect_format(surroundocc).name == "surroundocc"
    plain = tmp_path / "plain"
    shutil.copytree(surroundocc, plain)
    (plain / OUTPUT_RECORD).unlink()
    assert detect_format(plain).name == "surroundocc"  # the variant of occ3d's layout, as before
    assert _warnings(capsys.readouterr().err) == []


# ------------------------------------------------------------ another package's format that refines occkit's
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


def _register_variant(fresh_registry, monkeypatch, name: str, refines: tuple[str, ...]) -> None:
    """A package's format in Occ3D's layout whose folders also hold ``gts/``: it claims them for another reason
    than occ3d's."""
    from occkit.formats.occ3d import FORMAT

    def detect(root):
        return (
            "annotations.json and gts/" if (root / "annotations.json").is_file() and (root / "gts").is_dir() else None
        )

    detection = dataclasses.replace(FORMAT.detection, detect=detect, refines=refines, priority=5)
    fmt = dataclasses.replace(FORMAT, name=name, title="", source="", detection=detection)
    mod = types.ModuleType(f"{name}_pkg")
    mod.FORMAT = fmt
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    fresh_registry.append(metadata.EntryPoint(name=name, value=f"{mod.__name__}:FORMAT", group=ENTRY_POINT_GROUP))


def _occ3d_folder(tmp_path):
    folder = tmp_path / "occ"
    (folder / "gts").mkdir(parents=True)
    (folder / "annotations.json").write_text("{}")
    return folder


def test_a_package_taking_a_folder_from_the_format_it_refines_says_which_package_and_why(
    fresh_registry, monkeypatch, tmp_path, capsys
):
    """Before: a package refining occ3d read every Occ3D folder without occkit's record as its own format, in
    silence."""
    _register_variant(fresh_registry, monkeypatch, "waymo", ("occ3d",))
    folder = _occ3d_folder(tmp_path)
    capsys.readouterr()
    assert detect_format(folder).name == "waymo"  # the variant still wins on a folder it claims for its own reason
    (line,) = _warnings(capsys.readouterr().err)
    assert f"{folder}: read as waymo, the format of entry point waymo = waymo_pkg:FORMAT" in line
    assert "refines occ3d and claims the folder (annotations.json and gts/)" in line
    assert "no format recorded by occkit synth settles it" in line and "pass --format occ3d" in line
    assert "occkit synth wrote it as" not in line  # no record said so


def test_a_folder_occkit_synth_recorded_names_the_package_that_also_claims_it(
    fresh_registry, monkeypatch, tmp_path, capsys
):
    _register_variant(fresh_registry, monkeypatch, "waymo", ("occ3d",))
    folder = _occ3d_folder(tmp_path)
    (folder / OUTPUT_RECORD).write_text(json.dumps({"command": "synth", "format": "occ3d"}))
    capsys.readouterr()
    assert detect_format(folder).name == "occ3d"  # the record settles it
    (line,) = _warnings(capsys.readouterr().err)
    assert "read as occ3d (it holds annotations.json), the format occkit synth wrote it as" in line
    assert "waymo (annotations.json and gts/; entry point waymo = waymo_pkg:FORMAT)" in line
    assert "pass --format waymo" in line


def test_a_folder_synth_wrote_as_a_package_format_reads_as_it_saying_nothing(
    fresh_registry, monkeypatch, tmp_path, capsys
):
    _register_variant(fresh_registry, monkeypatch, "waymo", ("occ3d",))
    folder = tmp_path / "gts_only"
    (folder / "gts").mkdir(parents=True)
    capsys.readouterr()
    with pytest.raises(registry.FormatRegistryError, match="not a dataset of any known format"):
        detect_format(folder)  # neither claims it: no word of the package
    (folder / "annotations.json").write_text("{}")
    (folder / OUTPUT_RECORD).write_text(json.dumps({"command": "synth", "format": "waymo"}))
    assert detect_format(folder).name == "waymo"  # written as the package's format: its own folder
    assert _warnings(capsys.readouterr().err) == []
