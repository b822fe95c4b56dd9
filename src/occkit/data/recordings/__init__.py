"""Recordings ``occkit label`` reads (docs/labels.md, "Recordings"): a reader a kind of recording, each a
:class:`~occkit.data.recordings.spec.RecordingReader` subclass with its own options dataclass, whose
scenes are :class:`~occkit.data.scene_record.SceneRecord` s. The registry is
:mod:`occkit.data.recordings.registry`; adding a reader: docs/design.md, "Adding a reader"."""

from occkit.data.recordings.spec import (
    EgoBoxOptions,
    KeyframeOptions,
    PointLabelOptions,
    ReaderOptions,
    Recording,
    RecordingReader,
    option,
)

__all__ = [
    "EgoBoxOptions",
    "KeyframeOptions",
    "PointLabelOptions",
    "ReaderOptions",
    "Recording",
    "RecordingReader",
    "option",
]
