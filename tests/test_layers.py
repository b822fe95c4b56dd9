"""Layers point down: the recipes (``occkit.methods``), the datasets (``occkit.data``) and generation never import
the composition root (``occkit.experiment``), not even inside a function (DESIGN.md §8: run loading
sits below the recipes; the root hands them what they need)."""

from __future__ import annotations

import ast
from pathlib import Path

import occkit

PACKAGE = Path(occkit.__file__).parent
LOWER = ("methods", "data", "generation")
ROOT = "occkit.experiment"


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of every import in a file, at any depth (lazy imports included)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def test_methods_and_data_never_import_the_composition_root():
    files = [p for layer in LOWER for p in sorted((PACKAGE / layer).rglob("*.py"))]
    assert len(files) > 10  # the walk found the packages
    bad = [f"{p.relative_to(PACKAGE.parent)}:{line} imports {mod}"
           for p in files for line, mod in imports_of(p) if mod == ROOT or mod.startswith(ROOT + ".")]
    assert not bad, "\n".join(bad)


def test_the_check_sees_lazy_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from occkit.experiment import base_dataset\n    from occkit import experiment\n")
    assert [m for _, m in imports_of(f)] == ["occkit.experiment", "occkit.experiment.base_dataset", "occkit", "occkit.experiment"]
