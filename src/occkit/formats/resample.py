"""Deprecated alias of :mod:`occkit.resampling`, where the resampler of labels between grids moved in 0.2.0
(``PredictionResampler``, ``resample_index`` ...); the alias is removed in 0.3.0. Importing it warns
(:class:`occkit.deprecation.OccKitDeprecationWarning`) and gives the resampler's names, looked up by name when
first used, so that the formats' layer imports nothing above it (docs/design.md §1)."""

from __future__ import annotations

from occkit.deprecation import moved_module

#: Where the names moved.
MOVED_TO = "occkit.resampling"

__getattr__, __dir__ = moved_module(__name__, MOVED_TO)
