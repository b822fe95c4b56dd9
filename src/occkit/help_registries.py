"""``--help`` texts that list what the registries hold, read when the help is printed.

A help string names a list by a field in braces, e.g. ``"dataset format ({formats})"``; a parser given
:func:`use` fills it from the registry (formats, class maps) when ``--help`` is printed, so the text lists
the formats of installed packages too and cannot go stale. The registries are not read when the parser is
built, and occkit's own formats are read from their source, as ``occkit train --help`` reads the methods:
the formats import torch, which ``occkit VERB`` and ``--help`` must not pay for.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

#: the entry point group of dataset formats (occkit.formats.spec.ENTRY_POINT_GROUP, not imported: torch)
GROUP = "occkit.datasets"


def _in_tree_formats() -> list[dict] | None:
    """occkit's own formats read from their source (each module's ``FORMAT = ...(name=..., title=...)``)
    without importing them (``occkit.formats`` imports torch), as ``occkit train --help`` reads the methods;
    None when one is not written so (then the registry is asked). tests/test_cli_help_registries.py holds it
    to the registry."""
    import ast
    from importlib.util import find_spec
    from pathlib import Path

    spec = find_spec("occkit.formats")
    if spec is None or not spec.submodule_search_locations:
        return None
    out = []
    for path in sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.py")):
        if path.name.startswith("_"):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError):
            return None
        defined = _module_names(tree)
        for node in tree.body:
            if not (
                isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "FORMAT" for t in node.targets)
                and isinstance(node.value, ast.Call)
            ):
                continue
            kw = {k.arg: k.value for k in node.value.keywords}
            kw.update(_record_keywords(kw.get("writers")))  # the writers' fields (occkit.formats.spec.Writers)
            given = lambda key: key in kw and not (isinstance(kw[key], ast.Constant) and kw[key].value is None)
            builder = node.value.func.id if isinstance(node.value.func, ast.Name) else ""
            lidar = builder == "lidar_frame_format"
            # format_of_module takes a role from the module's name for it (occkit.formats.spec.MODULE_ROLES)
            role = lambda key, module_name: given(key) or (builder == "format_of_module" and module_name in defined)
            try:
                name = ast.literal_eval(kw["name"])
                title = ast.literal_eval(kw["title"]) if "title" in kw else name
                world = ast.literal_eval(kw["world"]) if "world" in kw else "driving"
                prepare = ast.literal_eval(kw["preparation"]) if given("preparation") else None
            except (KeyError, ValueError):
                return None
            out.append(
                {
                    "name": name,
                    "title": title,
                    "world": world,
                    "synth": role("write_synthetic", "write_synthetic") or lidar,  # lidar_frame_format writes it
                    "writer": role("label_writer", "LABEL_WRITER"),
                    "prepare": prepare,  # "module:attribute" of its Preparation (occkit prepare), or None
                }
            )
    return out


def _record_keywords(node: object) -> dict:
    """The fields a record's expression gives, by name: ``Writers(write_synthetic=...)``,
    ``replace(OTHER.writers, preparation=...)`` or ``{"preparation": ...}``; none for another expression."""
    import ast

    if isinstance(node, ast.Call):
        return {k.arg: k.value for k in node.keywords if k.arg}
    if isinstance(node, ast.Dict):
        return {k.value: v for k, v in zip(node.keys, node.values) if isinstance(k, ast.Constant)}
    return {}


def _module_names(tree: object) -> set[str]:
    """The names a module's top level defines (functions, classes, assignments, imports)."""
    import ast

    names: set[str] = set()
    for node in tree.body:  # type: ignore[attr-defined]
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def _entry_points() -> list:
    from importlib import metadata

    return sorted(metadata.entry_points(group=GROUP), key=lambda e: e.name)


def _loaded_registry() -> dict | None:
    """The format registry when this process has loaded it already, else None (loading it imports torch)."""
    import sys

    registry = sys.modules.get("occkit.formats.registry")
    if registry is None or registry._REGISTRY is None:
        return None
    return registry.formats()


def catalogue() -> tuple[list[dict], list[str]]:
    """Every dataset format as ``{name, title, world, synth, writer, prepare}`` with occkit's own read from their source
    (no torch), and the installed packages' formats named by their entry points without loading them
    (``"toy (occkit-toyformat)"``): what a package's format writes is known once it is loaded. Where the
    registry is loaded already, every format comes from it, and the second list is empty."""
    loaded = _loaded_registry()
    own = None if loaded is not None else _in_tree_formats()
    if own is None:
        from occkit.formats import formats

        every = [
            {
                "name": n,
                "title": f.title or n,
                "world": f.world,
                "synth": f.writers.write_synthetic is not None,
                "writer": f.writers.label_writer is not None,
                "prepare": f.writers.preparation,
            }
            for n, f in (loaded if loaded is not None else formats()).items()
        ]
        return sorted(every, key=lambda d: d["name"]), []
    names = {d["name"] for d in own}
    packages = [
        f"{ep.name} ({ep.dist.name})" if getattr(ep, "dist", None) is not None else ep.name
        for ep in _entry_points()
        if ep.name not in names
    ]
    return sorted(own, key=lambda d: d["name"]), packages


def preparations() -> dict[str, object]:
    """``{format name: its Preparation}`` of the formats ``occkit prepare`` can run (those naming one,
    :attr:`occkit.formats.Writers.preparation`), each imported from its torch-free module: occkit's
    own formats, and installed packages' where the registry is loaded already (loading it imports torch)."""
    from importlib import import_module

    out: dict[str, object] = {}
    for f in catalogue()[0]:
        if f.get("prepare"):
            module, _, attribute = str(f["prepare"]).partition(":")
            out[f["name"]] = getattr(import_module(module), attribute)
    return out


def _listing(text: list[str], packages: list[str]) -> str:
    out = "; ".join(text) or "none"
    return out + (f"; installed packages' formats: {', '.join(packages)}" if packages else "")


def _formats(keep: Callable[[dict], bool] = lambda f: True) -> str:
    own, packages = catalogue()
    return _listing([f"{f['name']}: {f['title']}" for f in own if keep(f)], packages)


def _synth_formats() -> str:
    own, packages = catalogue()
    return _listing([f"{f['name']}: {f['title']}, {f['world']}" for f in own if f["synth"]], packages)


def _class_maps() -> str:
    """The class maps shipped in ``configs/classmaps/`` (occkit.formats.classmap.class_map_names, read
    here without importing occkit.formats)."""
    from importlib import metadata, resources

    folder = resources.files("occkit") / "configs" / "classmaps"
    own = sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))
    # installed packages' maps (entry point group occkit.classmaps), named without importing them
    packaged = sorted({ep.name for ep in metadata.entry_points(group="occkit.classmaps")} - set(own))
    return ", ".join(own) + (f"; installed packages' maps: {', '.join(packaged)}" if packaged else "")


#: the fields a help string may name, and what fills them
FIELDS: dict[str, Callable[[], str]] = {
    "formats": _formats,
    "synth_formats": _synth_formats,
    "writable_formats": lambda: _formats(lambda f: f["writer"]),
    "class_maps": _class_maps,
}


class _RegistryHelp:
    """A help formatter mixin: fills ``{field}`` of :data:`FIELDS` in each argument's help text."""

    def _expand_help(self, action: argparse.Action) -> str:
        text = super()._expand_help(action)  # type: ignore[misc]
        for field, fill in FIELDS.items():
            if "{" + field + "}" in text:
                text = text.replace("{" + field + "}", fill())
        return text


def use(parser: argparse.ArgumentParser) -> None:
    """Have ``parser``'s ``--help`` fill the registry fields, keeping its own formatter's layout."""
    base = parser.formatter_class
    if not issubclass(base, _RegistryHelp):
        parser.formatter_class = type(f"Registry{base.__name__}", (_RegistryHelp, base), {})
