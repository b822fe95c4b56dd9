"""Layers point down: the recipes (``occkit.methods``), the datasets (``occkit.data``), the procedural worlds
(``occkit.worlds``) and generation never import the composition root (``occkit.experiment``), not even inside a
function (docs/design.md §8: run loading sits below the recipes; the root hands them what they need)."""

from __future__ import annotations

import ast
from pathlib import Path

import occkit

PACKAGE = Path(occkit.__file__).parent
LOWER = ("methods", "data", "worlds", "generation")
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
    bad = [
        f"{p.relative_to(PACKAGE.parent)}:{line} imports {mod}"
        for p in files
        for line, mod in imports_of(p)
        if mod == ROOT or mod.startswith(ROOT + ".")
    ]
    assert not bad, "\n".join(bad)


def test_the_check_sees_lazy_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from occkit.experiment import base_dataset\n    from occkit import experiment\n")
    assert [m for _, m in imports_of(f)] == [
        "occkit.experiment",
        "occkit.experiment.base_dataset",
        "occkit",
        "occkit.experiment",
    ]


def _string_constants(path: Path) -> set[str]:
    """The string constants of a file's code (docstrings and comments left out)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    docstrings = {
        id(n.body[0].value)
        for n in ast.walk(tree)
        if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and n.body
        and isinstance(n.body[0], ast.Expr)
        and isinstance(n.body[0].value, ast.Constant)
    }
    return {
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
    }


def test_the_composition_root_the_engine_and_export_name_no_method():
    """They ask the registry: adding a method touches none of them (methods/registry.py)."""
    from occkit.methods.registry import registry

    names = set(registry())
    files = [
        PACKAGE / "experiment.py",
        *sorted((PACKAGE / "engine").rglob("*.py")),
        *sorted((PACKAGE / "export").rglob("*.py")),
    ]
    bad = [f"{p.relative_to(PACKAGE.parent)} names {s!r}" for p in files for s in sorted(_string_constants(p) & names)]
    bad += [
        f"{p.relative_to(PACKAGE.parent)}:{line} imports {mod}"
        for p in files
        for line, mod in imports_of(p)
        if mod.startswith("occkit.methods.") and not mod.startswith("occkit.methods.registry")
    ]
    assert not bad, "\n".join(bad)


def test_the_engine_never_imports_the_composition_root():
    """It takes a built method and a resolved config (occkit.experiment.prepare_run makes both)."""
    files = sorted((PACKAGE / "engine").rglob("*.py"))
    bad = [
        f"{p.relative_to(PACKAGE.parent)}:{line} imports {mod}"
        for p in files
        for line, mod in imports_of(p)
        if mod == ROOT or mod.startswith(ROOT + ".")
    ]
    assert not bad, "\n".join(bad)


#: (package, what it never imports): the readers of datasets sit below the worlds that write them, and the
#: format declarations, the registry and scoring below ``occkit convert``, which takes them.
BELOW = (("data", "occkit.worlds"), ("formats", "occkit.convert"))


def test_the_readers_never_import_a_world_and_the_formats_never_import_convert():
    bad = [
        f"{p.relative_to(PACKAGE.parent)}:{line} imports {mod}"
        for package, above in BELOW
        for p in sorted((PACKAGE / package).rglob("*.py"))
        for line, mod in imports_of(p)
        if mod == above or mod.startswith(above + ".")
    ]
    assert not bad, "\n".join(bad)


def _import_graph() -> dict[str, set[str]]:
    """occkit module -> the occkit modules it imports (lazy imports included)."""
    mods = {
        ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): p
        for p in PACKAGE.rglob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        deps = set()
        for _, name in imports_of(path):
            while name and name not in mods:
                name = name.rpartition(".")[0]
            if name and not mod.startswith(name):  # itself, or its own package (whose __init__ runs first)
                deps.add(name)
        graph[mod] = deps
    return graph


def test_no_import_circle_between_two_modules():
    graph = _import_graph()
    pairs = sorted({tuple(sorted((a, b))) for a, deps in graph.items() for b in deps if a in graph.get(b, ())})
    assert not pairs, pairs


#: Where a dataset format may be named: its own module, the readers, the metrics, and the scorers' public names;
#: never in these, which ask the data's format (occkit.formats) for its classes, free id, dataset and files.
FORMAT_FREE = ("engine", "experiment.py", "commands", "priors", "convert", "ablate")
#: ablate/scorers.py: ``occ3d`` and ``ssc`` are scorer names of ablation specs and of their score files
#: (``score_occ3d_camera.json``, claims on ``occ3d_camera.miou``): names of a user's files, not a dispatch on
#: formats (the scorers run ``occkit eval``, which asks the data's format).
SCORER_NAMES = {"ablate/scorers.py": {"occ3d", "ssc", "pred_occ3d", "pred_ssc"}}
DATASET_WORDS = ("occ3d", "semantickitti", "kitti")


def _names_in_code(path: Path) -> set[str]:
    """Identifiers of a file's code: names, attributes, function and class names, imported modules."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: set[str] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Name):
            out.add(n.id)
        elif isinstance(n, ast.Attribute):
            out.add(n.attr)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(n.name)
        elif isinstance(n, ast.alias):
            out.update(n.name.split("."))
            if n.asname:
                out.add(n.asname)
        elif isinstance(n, ast.ImportFrom) and n.module:
            out.update(n.module.split("."))
    return out


def test_the_engine_the_root_the_commands_the_priors_convert_and_the_ablation_runner_name_no_dataset_format():
    """They ask the format registry (occkit.formats): adding a dataset format touches none of them."""
    from occkit.formats import format_names

    formats = set(format_names())
    assert {"occ3d", "semantickitti"} <= formats
    files = [
        p
        for part in FORMAT_FREE
        for p in ([PACKAGE / part] if part.endswith(".py") else sorted((PACKAGE / part).rglob("*.py")))
    ]
    assert len(files) > 10
    bad = []
    for p in files:
        rel = p.relative_to(PACKAGE).as_posix()
        allowed = SCORER_NAMES.get(rel, set())
        strings = {s for s in _string_constants(p) if s not in allowed}
        bad += [f"{rel} names the format {s!r}" for s in sorted(strings & formats)]
        bad += [
            f"{rel} names {n!r}"
            for n in sorted(_names_in_code(p))
            if n not in allowed and any(w in n.lower() for w in DATASET_WORDS)
        ]
    assert not bad, "\n".join(bad)


def test_the_dataset_format_check_sees_names_imports_and_strings(tmp_path):
    f = tmp_path / "m.py"
    f.write_text(
        '"""Occ3D in a docstring is fine."""\n'
        "from occkit.data.occ3d import Occ3DDataset\n"
        "def f(ds):\n    return ds.format == 'semantickitti' or isinstance(ds, SemanticKITTIDataset)\n"
    )
    names = _names_in_code(f)
    assert {"occ3d", "Occ3DDataset", "SemanticKITTIDataset"} <= names
    assert "semantickitti" in _string_constants(f) and not any("Occ3D in" in s for s in _string_constants(f))


def test_the_design_docs_layer_table_is_the_measured_one():
    """docs/design.md §1's table is what the imports are (tools/layer_table.py measures them)."""
    import importlib.util

    root = PACKAGE.parent.parent
    spec = importlib.util.spec_from_file_location("layer_table", root / "tools" / "layer_table.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    measured = tool.table()
    written = tool.document_table((root / "docs" / "design.md").read_text(encoding="utf-8"))
    assert written == measured, "docs/design.md's layer table is stale: run python tools/layer_table.py --write"
    rows = tool.layers(tool.unit_graph())
    below: set[str] = set()
    graph = tool.unit_graph()
    for units in rows:  # every row imports only the rows above it and itself
        assert all(graph[u] <= below | set(units) for u in units), units
        below |= set(units)
    assert below == set(graph) and {"formats", "metrics", "engine", "experiment"} <= below


def _package_of(module: str) -> str:
    """The package of occkit a dotted module belongs to: ``occkit.labelgen.run`` -> ``labelgen``; a module of
    occkit's top level (``occkit.fileio``) -> ``occkit``."""
    parts = module.split(".")
    if len(parts) > 1 and (PACKAGE / parts[1]).is_dir():
        return parts[1]
    return "occkit"


def private_imports_across_packages(root: Path) -> list[str]:
    """``file:line imports module.name`` for every import of a private name (``_name``) or from a private module
    (``_module``) of another package of occkit than the importing file's, at any depth."""
    bad = []
    for p in sorted(root.rglob("*.py")):
        mine = _package_of(".".join(("occkit", *p.relative_to(root).with_suffix("").parts)))
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"), filename=str(p))):
            if not (isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("occkit")):
                continue
            if _package_of(node.module) == mine:
                continue
            private_module = any(s.startswith("_") and not s.startswith("__") for s in node.module.split("."))
            for a in node.names:
                if private_module or (a.name.startswith("_") and not a.name.startswith("__")):
                    bad.append(f"{p.relative_to(root.parent)}:{node.lineno} imports {node.module}.{a.name}")
    return bad


def test_no_module_imports_another_packages_private_names():
    bad = private_imports_across_packages(PACKAGE)
    assert not bad, "\n".join(bad)


def test_the_private_import_check_sees_names_and_modules(tmp_path):
    root = tmp_path / "occkit"
    (root / "labelgen").mkdir(parents=True)
    (root / "commands").mkdir()
    (root / "labelgen" / "run.py").write_text("def _safe(): pass\n")
    (root / "commands" / "label.py").write_text(
        "def f():\n    from occkit.labelgen.run import _safe\n    from occkit.labelgen._steps import x\n"
        "    from occkit.commands.label import _own\n"
    )
    global PACKAGE
    saved, PACKAGE = PACKAGE, root  # _package_of looks for the packages under PACKAGE
    try:
        bad = private_imports_across_packages(root)
    finally:
        PACKAGE = saved
    assert [b.split(" imports ")[1] for b in bad] == ["occkit.labelgen.run._safe", "occkit.labelgen._steps.x"]
