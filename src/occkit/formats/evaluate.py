"""Deprecated alias of :mod:`occkit.scoring.folder`, where occkit's folder scoring loop moved in 0.2.0
(``evaluate_predictions``, ``detect_format_name`` ...); the alias is removed in 0.3.0. Importing it warns
(:class:`occkit.deprecation.OccKitDeprecationWarning`) and gives the loop's names, looked up by name when
first used, so that the formats' layer imports nothing of the scoring above it (docs/design.md §1)."""

from __future__ import annotations

from occkit.deprecation import moved_module

#: Where the names moved.
MOVED_TO = "occkit.scoring.folder"

__getattr__, __dir__ = moved_module(__name__, MOVED_TO)
