"""The layer table of docs/design.md §1, measured from occkit's imports (lazy ones included).

Each unit (a package or a top-level module of ``occkit``) imports the units listed beside it; the
units are grouped into layers by the longest chain of imports below them (units that import each
other share a layer), lowest first. ``python tools/layer_table.py`` prints the table,
``--write`` replaces it in docs/design.md; tests/test_layers.py checks that the document holds the
measured one.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "occkit"
DOC = ROOT / "docs" / "design.md"
BEGIN = "<!-- layer table: measured by tools/layer_table.py; tests/test_layers.py checks it -->"
END = "<!-- end of the layer table -->"

#: What each unit holds (the one column written by hand; a unit missing here is an error).
HOLDS = {
    "shapes": "shape checks, the records of per-row arrays (`Rows`)",
    "jit": "numba kernels compiled once per process",
    "deprecation": "the warning an old form of the public API gives, the aliases of moved modules",
    "labels": "class tables",
    "fileio": "atomic writes, checked reads",
    "schema": "the schemas of the files occkit reads: pydantic models' base and their one-line errors",
    "config": "dataclass configs from YAML",
    "processes": "child processes that end with their parent",
    "registries": "what the registries share: finding the entries of occkit's own modules",
    "locks": "folder locks: a second run into the same folder is refused, naming the holder",
    "cli": "the `occkit` entry point (it imports each verb's module by its name)",
    "help_registries": "the registries' names that `--help` texts list, read without importing torch",
    "torch_pair": "the torch / torchvision pair checked at start-up, read without importing either",
    "geometry": "transforms, pinhole cameras, grids, ray casting",
    "rendering": "volume rendering per ray",
    "losses": "loss terms",
    "models": "backbone, neck, the lifts, 3D encoders, heads, `OccNet`",
    "data": "`Sample` and `Batch`, the readers, augmentation",
    "worlds": "the procedural worlds (driving, indoor) that `occkit synth` writes",
    "formats": "dataset formats (`DatasetFormat`, the registry, Occ3D, SemanticKITTI)",
    "convert": "`occkit convert`: labels from one format's layout to another's (plan, frame, records, report)",
    "metrics": "the official metrics as accumulators; what folder scoring shares (matching, provenance, tables)",
    "scoring": "the one scoring core (`Scoring`), the folder loop, `--class-map`, `occkit eval`'s option rules",
    "resampling": "labels of one grid and frame read on another's (convert, `--class-map`)",
    "outputs": "output folders: records, refusals",
    "output_folders": "a command's `--out` checked before any work (not an input, not inside a dataset)",
    "viz": "figures, BEV and perspective drawings, the 3D viewer",
    "priors": "2D priors and their cache",
    "engine": "the loop: data order, optimiser, checkpoints, logging, DDP, evaluation",
    "generation": "the diffusion parts (OccScene)",
    "pseudolabel": "EasyOcc's pseudo-labels",
    "labelgen": "`occkit label`: occupancy labels from LiDAR sweeps, poses and boxes; the rig folder",
    "methods": "one file per recipe, and `registry.py`",
    "experiment": "the composition root: presets, `ExperimentConfig`, building a method and its datasets",
    "export": "ONNX export",
    "ablate": "ablations",
    "commands": "the `occkit` verbs",
}


def imports_of(path: Path) -> list[str]:
    """Every module a file imports, at any depth (lazy imports included)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
            found += [f"{node.module}.{a.name}" for a in node.names]
    return found


def unit_graph() -> dict[str, set[str]]:
    """unit -> the other units it imports."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).parts
        if rel == ("__init__.py",):
            continue
        unit = "cli" if rel == ("__main__.py",) else rel[0].removesuffix(".py")  # python -m occkit: the entry point
        deps = graph.setdefault(unit, set())
        for mod in imports_of(path):
            parts = mod.split(".")
            if parts[0] == "occkit" and len(parts) > 1:
                dep = parts[1]
                if dep != unit and ((PACKAGE / dep).is_dir() or (PACKAGE / f"{dep}.py").is_file()):
                    deps.add(dep)
    return graph


def layers(graph: dict[str, set[str]]) -> list[list[str]]:
    """The units in layers: each unit's layer is the longest chain of imports below it, units that
    import each other (one strongly connected component) in one layer."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    comp: dict[str, int] = {}
    comps: list[list[str]] = []

    def visit(u: str) -> None:  # Tarjan's strongly connected components
        index[u] = low[u] = len(index)
        stack.append(u)
        for v in sorted(graph[u]):
            if v not in index:
                visit(v)
                low[u] = min(low[u], low[v])
            elif v in stack:
                low[u] = min(low[u], index[v])
        if low[u] == index[u]:
            members = []
            while True:
                w = stack.pop()
                comp[w] = len(comps)
                members.append(w)
                if w == u:
                    break
            comps.append(sorted(members))

    sys.setrecursionlimit(10_000)
    for u in sorted(graph):
        if u not in index:
            visit(u)
    level: dict[int, int] = {}
    for c, members in enumerate(comps):  # Tarjan emits components in reverse topological order
        below = {comp[v] for u in members for v in graph[u]} - {c}
        level[c] = 1 + max((level[b] for b in below), default=-1)
    out: dict[int, list[str]] = {}
    for c, members in enumerate(comps):
        out.setdefault(level[c], []).extend(members)
    return [sorted(out[k]) for k in sorted(out)]


def table() -> str:
    graph = unit_graph()
    missing = sorted(set(graph) - set(HOLDS))
    if missing:
        raise SystemExit(f"tools/layer_table.py: say what {', '.join(missing)} hold(s) in HOLDS")
    rows = ["| layer | units: what they hold | import (measured) |", "|---|---|---|"]
    for n, units in enumerate(layers(graph)):
        holds = "; ".join(f"`{u}`: {HOLDS[u]}" for u in units)
        deps = sorted(set().union(*(graph[u] for u in units)) - set(units))
        rows.append(f"| {n} | {holds} | {', '.join(deps) or 'no other unit'} |")
    return "\n".join(rows)


def document_table(text: str) -> str:
    """The table between the markers of docs/design.md."""
    a, b = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[a:b].strip()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--write", action="store_true", help="replace the table in docs/design.md")
    args = p.parse_args()
    t = table()
    if not args.write:
        print(t)
        return 0
    text = DOC.read_text(encoding="utf-8")
    a, b = text.index(BEGIN) + len(BEGIN), text.index(END)
    DOC.write_text(text[:a] + "\n" + t + "\n" + text[b:], encoding="utf-8")
    print(f"wrote the layer table into {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
