"""The public API a package may import (docs/reference/api.md, "What a package may import"): every name
listed there imports, and the deprecated homes of moved names still give them, with a warning."""

from __future__ import annotations

import dataclasses
import importlib
import re
import warnings
from pathlib import Path

import pytest

API = Path(__file__).resolve().parent.parent / "docs" / "reference" / "api.md"


def listed() -> list[tuple[str, list[str]]]:
    """``(module, names)`` of each line ``- `module`: `name`, ...`` of the page's public-API list."""
    text = API.read_text(encoding="utf-8")
    start = text.index("## What a package may import")
    body = text[start : text.index("\n## ", start + 1)]
    out = []
    for line in body.splitlines():
        m = re.fullmatch(r"- `([\w.]+)`: (.*)", line)
        if m:
            out.append((m.group(1), re.findall(r"`(\w+)`", m.group(2))))
    return out


def test_the_page_lists_the_names_a_format_package_imports():
    names = dict(listed())
    assert len(names) >= 10 and all(names.values())
    for name in ("ClassTable", "DatasetFormat", "Metric", "OpenOptions", "PredictionFiles", "Targets", "get_format"):
        assert name in names["occkit.formats"]  # what docs/design.md §9's complete format imports


@pytest.mark.parametrize("module, names", listed(), ids=[m for m, _ in listed()])
def test_every_listed_name_imports(module, names):
    mod = importlib.import_module(module)
    missing = [n for n in names if not hasattr(mod, n)]
    assert not missing, f"{module} lacks {missing}, which docs/reference/api.md lists"


@pytest.mark.parametrize(
    "old, new, name",
    [
        ("occkit.data.synth", "occkit.worlds.driving", "generate_dataset"),
        ("occkit.data.synth_indoor", "occkit.worlds.indoor", "generate_indoor"),
    ],
)
def test_a_moved_world_is_still_found_at_its_old_home_with_a_deprecation_warning(old, new, name, monkeypatch):
    import sys

    monkeypatch.delitem(sys.modules, old, raising=False)  # imported afresh: the warning is said on import
    with pytest.warns(FutureWarning, match=rf"{re.escape(old)} moved to {re.escape(new)} .* removed in 0\.3\.0"):
        alias = importlib.import_module(old)
    moved = importlib.import_module(new)
    assert getattr(alias, name) is getattr(moved, name)
    assert set(alias.__all__) <= set(moved.__all__) and name in alias.__all__
    assert alias.writer is importlib.import_module(f"{new}.writer")  # a module of the world, as before
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        namespace: dict = {}
        exec(f"from {old} import *", namespace)  # noqa: S102 - the star import of old code
    assert namespace[name] is getattr(moved, name)
    with pytest.raises(AttributeError, match="has no attribute 'nothing_here'"):
        alias.nothing_here  # noqa: B018


def test_the_version_is_pyprojects_and_has_a_changelog_entry():
    import occkit

    pyproject = (API.parents[2] / "pyproject.toml").read_text(encoding="utf-8")
    project = re.search(r'^version = "([^"]+)"$', pyproject, re.M).group(1)
    assert occkit.__version__ == project
    changelog = (API.parents[2] / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## [{project}]" in changelog  # the version users see has its entry


# ------------------------------------------------------------ occkit 0.1's forms: still taken, with a warning
@pytest.fixture
def said_afresh(monkeypatch):
    """The deprecation warnings said as in a new process (each is said once a process)."""
    import occkit.deprecation

    monkeypatch.setattr(occkit.deprecation, "_SAID", set())


def _one_warning(record) -> str:
    from occkit.deprecation import OccKitDeprecationWarning

    (w,) = [w for w in record.list if issubclass(w.category, OccKitDeprecationWarning)]
    assert issubclass(w.category, FutureWarning)  # shown by default, unlike a DeprecationWarning
    return str(w.message)


def test_occ3d_metric_without_free_takes_the_tables_last_class_with_a_warning_naming_the_caller(said_afresh):
    """0.1's Occ3DMetric() took the last class as free; 0.2.0 required free= (packages written for 0.1 broke)."""
    import torch

    from occkit.metrics.occ3d import Occ3DMetric

    gen = torch.Generator().manual_seed(0)
    gt = torch.randint(0, 18, (2, 6, 5, 4), generator=gen)
    pred = torch.randint(0, 18, (2, 6, 5, 4), generator=gen)
    with pytest.warns(FutureWarning) as record:
        old = Occ3DMetric(mask="none")
    msg = _one_warning(record)
    assert msg.startswith(f"{__name__}: Occ3DMetric(...) without free=") and "(17, as occkit 0.1 did)" in msg
    assert "required from 0.3.0" in msg and "\n" not in msg
    new = Occ3DMetric(mask="none", free=17)
    old.update(pred, gt)
    new.update(pred, gt)
    assert old.free == 17 and old.compute() == new.compute()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once a process: the same caller is not told again
        assert Occ3DMetric(mask="none").free == 17
    with pytest.warns(FutureWarning, match=r"\(4, as occkit 0\.1 did\)"):
        assert Occ3DMetric(mask="none", num_classes=5, class_names=tuple("abcde")).free == 4  # another table's last


def test_rayiou_metric_without_free_takes_the_tables_last_class_with_a_warning(said_afresh):
    from occkit.metrics.rayiou import RayIoUMetric

    with pytest.warns(FutureWarning) as record:
        assert RayIoUMetric().free == 17
    assert "RayIoUMetric(...) without free=" in _one_warning(record)


@pytest.mark.parametrize("caster", ["cast_rays", "cast_rays_reference"])
def test_cast_rays_takes_free_by_position_and_as_free_class_with_a_warning(said_afresh, caster):
    """0.1's cast_rays(volumes, frame, origins, dirs, grid, free_class=17, dtype, ...): free by position,
    or named free_class=, or left out (17); 0.2.0 took it only as the keyword free=."""
    import torch

    from occkit.geometry.grid import Grid
    from occkit.metrics import rayiou

    cast = getattr(rayiou, caster)
    grid = Grid((0.0, 0.0, 0.0), (4.0, 4.0, 2.0), (0.5, 0.5, 0.5))
    volumes = torch.full((1, 1, *grid.shape), 5, dtype=torch.uint8)
    volumes[0, 0, 6, 2, 1] = 2  # one occupied voxel (class 2 < free 5) on the first ray
    origins = torch.tensor([[0.25, 1.25, 0.75], [0.25, 3.25, 0.75]], dtype=torch.float64)
    dirs = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    frame = torch.zeros(2, dtype=torch.long)
    want_labels, want_depth = cast(volumes, frame, origins, dirs, grid, free=5)
    assert want_labels.tolist() == [[2, 5]]  # the hit, and the free class where the ray leaves the grid
    assert want_depth[0, 0].item() == pytest.approx(3.25)  # leaves voxel x=6 (3.0..3.5) 3.25 m from x=0.25
    for args, kwargs, said in (
        ((5,), {}, "free by position"),
        ((5, torch.float64), {}, "free, dtype by position"),
        ((), {"free_class": 5}, "free_class="),
    ):
        with pytest.warns(FutureWarning) as record:
            labels, depth = cast(volumes, frame, origins, dirs, grid, *args, **kwargs)
        msg = _one_warning(record)
        assert msg.startswith(f"{__name__}: {caster}(...) with {said}") and "removed in 0.3.0" in msg
        assert torch.equal(labels, want_labels) and torch.equal(depth, want_depth)
    with pytest.warns(FutureWarning, match=r"no free= \(Occ3D's 17 taken"):
        labels, _ = cast(volumes, frame, origins, dirs, grid)  # 0.1's default free class, 17
    assert labels.tolist() == [[5, 5]]  # every voxel (5 or 2) is below 17, occupied: each ray hits where it starts
    with pytest.raises(TypeError, match="both free= and free_class="):
        cast(volumes, frame, origins, dirs, grid, free=5, free_class=5)


@pytest.mark.parametrize(
    "old, new, name",
    [
        ("occkit.formats.evaluate", "occkit.scoring.folder", "evaluate_predictions"),
        ("occkit.formats.resample", "occkit.resampling", "PredictionResampler"),
    ],
)
def test_a_moved_scoring_module_is_still_found_at_its_old_home_with_a_warning(said_afresh, monkeypatch, old, new, name):
    """0.2.0 moved the scoring loop out of occkit.formats with no alias: `from occkit.formats.evaluate import
    evaluate_predictions` of a 0.1 package was an ImportError."""
    import sys

    monkeypatch.delitem(sys.modules, old, raising=False)
    with pytest.warns(FutureWarning) as record:
        alias = importlib.import_module(old)
    msg = _one_warning(record)
    assert f"{old} moved to {new} in occkit 0.2.0; the alias is removed in 0.3.0" in msg
    moved = importlib.import_module(new)
    assert getattr(alias, name) is getattr(moved, name) and name in dir(alias)
    with pytest.raises(AttributeError, match="has no attribute 'nothing_here'"):
        alias.nothing_here  # noqa: B018


def test_a_packages_type_error_says_it_may_be_written_for_another_occkit_version():
    """A TypeError in a package's part (a call that 0.2.0's API no longer takes) was called "a bug of that
    package"; any other failure still is."""
    from occkit.formats import get_format
    from occkit.formats.spec import plugin_failure

    fmt = dataclasses.replace(get_format("occ3d"), source="entry point old = old_pkg:FORMAT of old-pkg")
    msg = plugin_failure(fmt, "metrics", TypeError("__init__() missing 1 required keyword-only argument: 'free'"))
    assert msg.startswith("format occ3d (entry point old = old_pkg:FORMAT of old-pkg): its metrics failed (TypeError:")
    assert "the package may be written for another occkit version than 0.2.0" in msg
    assert "CHANGELOG.md, [0.2.0]: Changed and Deprecated" in msg and "a bug" not in msg
    assert plugin_failure(fmt, "open", ZeroDivisionError("x")).endswith("; a bug of that package")


@pytest.mark.parametrize(
    "error, hint",
    [
        (TypeError("DatasetFormat.__init__() got an unexpected keyword argument 'class_maps'"), True),
        (ImportError("cannot import name 'CLASS_MAP_SOURCE' from 'occkit.formats.evaluate'"), True),
        (ModuleNotFoundError("No module named 'my_pkg_helpers'"), False),
        (ZeroDivisionError("division by zero"), False),
    ],
    ids=["type-error", "import-of-occkit", "own-module-missing", "other"],
)
def test_a_package_that_cannot_be_loaded_for_occkits_api_says_it_may_be_for_another_version(error, hint):
    from occkit.deprecation import load_failure

    msg = load_failure(error)
    assert msg.startswith(f"cannot be loaded ({type(error).__name__}: {error})")
    assert ("may be written for another occkit version than 0.2.0" in msg) is hint


def test_a_package_methods_build_failing_with_a_type_error_says_it_may_be_for_another_version(monkeypatch):
    from occkit import experiment
    from occkit.methods.registry import RegistryError

    spec = dataclasses.replace(
        experiment.get_method("supervised"),
        build=lambda cfg, load_run: _old_call(cfg),
        source="package old-method, entry point old = old_method:METHOD",
    )
    monkeypatch.setattr(experiment, "method_spec", lambda cfg: spec)
    with pytest.raises(RegistryError) as e:
        experiment.build_method(experiment.load_experiment("synth-cpu"))
    msg = str(e.value)
    assert msg.startswith("method supervised (package old-method, entry point old = old_method:METHOD): its build()")
    assert "TypeError" in msg and "may be written for another occkit version than 0.2.0" in msg


def _old_call(cfg):
    """A 0.1 package's build calling an occkit function with an argument it no longer takes."""
    from occkit.metrics.occ3d import Occ3DMetric

    return Occ3DMetric(free_class=17)
