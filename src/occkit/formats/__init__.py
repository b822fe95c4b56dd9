"""Dataset formats, found like methods: occkit's own (a module of this package holding
``FORMAT``) and those of installed packages (entry point group ``occkit.datasets``).

    from occkit.formats import get_format, detect_format
    fmt = detect_format("data/occ3d")          # the format of a folder, or an error listing those tried
    ds = fmt.open_split("data/occ3d", "val")   # its frames

:mod:`occkit.formats.spec` says what a format is.
"""

from __future__ import annotations

from occkit.formats.registry import (
    DEFAULT_FORMAT,
    FormatRegistryError,
    default_format,
    detect_claims,
    detect_format,
    format_names,
    format_of,
    formats,
    get_format,
)
from occkit.formats.spec import (
    ENTRY_POINT_GROUP,
    ClassTable,
    DatasetFormat,
    Detection,
    FormatPluginError,
    FormatScoring,
    Metric,
    OpenOptions,
    PredictionFiles,
    Targets,
    Writers,
)

__all__ = [
    "DEFAULT_FORMAT",
    "default_format",
    "ENTRY_POINT_GROUP",
    "ClassTable",
    "DatasetFormat",
    "Detection",
    "FormatRegistryError",
    "FormatPluginError",
    "FormatScoring",
    "Metric",
    "OpenOptions",
    "PredictionFiles",
    "Targets",
    "Writers",
    "detect_claims",
    "detect_format",
    "format_names",
    "format_of",
    "formats",
    "get_format",
]
