"""Deprecations of the public API (docs/reference/api.md, "Deprecation policy"): an old form keeps working
for one minor version with a warning a user sees, in a script and under the ``occkit`` commands alike.

The warning is an :class:`OccKitDeprecationWarning`, a ``FutureWarning``, which Python shows by default
(a ``DeprecationWarning`` is hidden unless raised by ``__main__``, so the author of a package that calls
an old form would never see it under the CLI). Its message names the module that called the old form
(a package's), what to write instead and the version that removes the old form, and it is said once a
process for each caller and old form. This module imports nothing of occkit, so that every layer may
use it.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable
from typing import Any

#: The version that removes what 0.2.0 deprecated (one minor version after it).
REMOVED_IN = "0.3.0"

#: The CHANGELOG entry that lists the deprecations and the changes of 0.2.0.
CHANGELOG_ENTRY = "CHANGELOG.md, [0.2.0]: Changed and Deprecated"

#: ``(caller, message)`` pairs said already in this process.
_SAID: set[tuple[str, str]] = set()


class OccKitDeprecationWarning(FutureWarning):
    """An old form of occkit's public API, still taken until the version its message names. A
    ``FutureWarning``, shown by default (``python -W error::FutureWarning`` makes it an error)."""


def _caller(depth: int) -> tuple[str, int]:
    """The module name of the frame ``depth`` frames above the caller of :func:`warn_deprecated`, the
    machinery of imports skipped, and how many frames up that is."""
    frame = sys._getframe(depth + 1)
    up = depth
    while frame is not None:
        if "importlib" in frame.f_code.co_filename and "_bootstrap" in frame.f_code.co_filename:
            frame = frame.f_back  # a frame :func:`warnings.warn` does not count either
            continue
        if str(frame.f_globals.get("__name__")).partition(".")[0] not in ("importlib", "dataclasses", __name__):
            break
        frame, up = frame.f_back, up + 1
    return (str(frame.f_globals.get("__name__", "?")) if frame is not None else "?"), up


def warn_deprecated(message: str, *, stacklevel: int = 2) -> None:
    """Warn that an old form was used: ``message`` (what was used, what to write instead, when it goes)
    after the name of the module that used it (``stacklevel``: as :func:`warnings.warn`'s, counted from
    the caller of this function), as an :class:`OccKitDeprecationWarning`; once a process for each
    caller and message."""
    caller, up = _caller(stacklevel)
    if (caller, message) in _SAID:
        return
    _SAID.add((caller, message))
    warnings.warn(f"{caller}: {message}", OccKitDeprecationWarning, stacklevel=up + 1)


def load_failure(e: BaseException) -> str:
    """Why a package's entry point cannot be loaded: ``(TypeError: ...)``, and for a call or an import of
    occkit's that does not fit (a ``TypeError``; an ``ImportError`` or ``AttributeError`` naming occkit) that
    the package may be written for another occkit version (:func:`another_version`)."""
    why = f"cannot be loaded ({type(e).__name__}: {e})"
    fits = isinstance(e, TypeError) or (isinstance(e, ImportError | AttributeError) and "occkit" in str(e))
    return f"{why}; {another_version()}" if fits else why


def another_version() -> str:
    """What a package's failure says when its call into occkit (or occkit's into it) does not fit: the
    package may be written for another occkit version, and the CHANGELOG entry that lists what changed."""
    from occkit import __version__

    return (
        f"the package may be written for another occkit version than {__version__}: see what changed in "
        f"{CHANGELOG_ENTRY}"
    )


def moved_module(
    name: str, moved_to: str, version: str = "0.2.0"
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Warn (at the import of module ``name``) that it moved to ``moved_to`` in ``version``, and give
    the alias's module ``__getattr__`` and ``__dir__``: every name of ``moved_to`` (``__all__``, else its
    public names), or a module under it (``writer``), looked up by name when first used, so that the
    alias's layer imports nothing above it."""
    warn_deprecated(
        f"{name} moved to {moved_to} in occkit {version}; the alias is removed in {REMOVED_IN}: import from {moved_to}",
        stacklevel=3,
    )

    def target() -> Any:
        return importlib.import_module(moved_to)

    def moved_names() -> tuple[str, ...]:
        mod = target()
        names = getattr(mod, "__all__", None)
        return tuple(names if names is not None else (n for n in vars(mod) if not n.startswith("_")))

    def __getattr__(attr: str) -> Any:
        """A moved name (``generate_dataset``), or a module under the new home (``writer``)."""
        if attr == "MOVED_NAMES":
            return moved_names()
        if attr == "__all__":
            return list(moved_names())
        if attr in moved_names() or (not attr.startswith("__") and hasattr(target(), attr)):
            return getattr(target(), attr)
        try:
            return importlib.import_module(f"{moved_to}.{attr}")
        except ModuleNotFoundError:
            raise AttributeError(f"module {name!r} has no attribute {attr!r}") from None

    def __dir__() -> list[str]:
        return sorted(moved_names())

    return __getattr__, __dir__
