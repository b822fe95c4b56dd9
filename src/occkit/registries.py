"""What occkit's registries (the dataset formats, the methods) share: finding the entries of
occkit's own modules, each a module of the registry's package that holds the entry under a known
name (``FORMAT``, ``METHOD``)."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType
from typing import Any


def in_tree(package: ModuleType, attribute: str, skip: frozenset[str] = frozenset()) -> list[tuple[Any, str]]:
    """``(entry, module name)`` of every module of ``package`` that holds ``attribute``, by module
    name; the modules in ``skip`` and private ones (``_name``) are not imported."""
    found = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name in skip or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        entry = getattr(module, attribute, None)
        if entry is not None:
            found.append((entry, module.__name__))
    return found
