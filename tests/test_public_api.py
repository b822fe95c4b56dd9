"""The public API a package may import (docs/reference/api.md, "What a package may import"): every name
listed there imports, and the deprecated homes of moved names still give them, with a warning."""

from __future__ import annotations

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
