"""The deprecated aliases that the procedural worlds left in :mod:`occkit.data` when they moved to
:mod:`occkit.worlds` in 0.2.0 (:mod:`occkit.data.synth`, :mod:`occkit.data.synth_indoor`).

An alias gives the names of its world's ``__all__`` and the world's modules as attributes, looked
up in the world when first used, by name, so that the readers' layer (``occkit.data``) imports no
world, which sits above it (docs/design.md §1)."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any


def moved_module(name: str, moved_to: str) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Warn (``DeprecationWarning``, at the import of module ``name``) that it moved to ``moved_to``,
    and give the alias's module ``__getattr__`` and ``__dir__``: the world's names (``__all__`` and
    ``MOVED_NAMES`` among them), or a module of the world (``writer``)."""
    warnings.warn(
        f"{name} moved to {moved_to} in occkit 0.2.0; the alias is removed in 0.3.0: import from {moved_to}",
        DeprecationWarning,
        stacklevel=3,
    )

    def moved_names() -> tuple[str, ...]:
        return tuple(importlib.import_module(moved_to).__all__)

    def __getattr__(attr: str) -> Any:
        """A moved name (``generate_dataset``), or a module of the world (``writer``)."""
        if attr == "MOVED_NAMES":
            return moved_names()
        if attr == "__all__":
            return list(moved_names())
        if attr in moved_names():
            return getattr(importlib.import_module(moved_to), attr)
        try:
            return importlib.import_module(f"{moved_to}.{attr}")
        except ModuleNotFoundError:
            raise AttributeError(f"module {name!r} has no attribute {attr!r}") from None

    def __dir__() -> list[str]:
        return sorted(moved_names())

    return __getattr__, __dir__
