"""Deprecated alias of :mod:`occkit.worlds.driving`, where the world moved in 0.2.0 (the alias is removed in
0.3.0): importing it warns and gives the world's names (``occkit.data.synth.generate_dataset``) and modules
(``occkit.data.synth.writer``), looked up when first used (:func:`occkit.deprecation.moved_module`)."""

from __future__ import annotations

from occkit.deprecation import moved_module

#: Where the names moved.
MOVED_TO = "occkit.worlds.driving"

__getattr__, __dir__ = moved_module(__name__, MOVED_TO)
