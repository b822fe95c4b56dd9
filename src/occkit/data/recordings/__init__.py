"""Recordings ``occkit label`` reads (docs/labels.md, "Recordings"): a reader a kind of recording,
each opening a :class:`~occkit.data.recordings.spec.Recording` whose scenes are
:class:`~occkit.data.scene_record.SceneRecord` s. The registry is :mod:`occkit.data.recordings.registry`."""

from occkit.data.recordings.spec import ReaderOption, Recording, RecordingReader

__all__ = ["ReaderOption", "Recording", "RecordingReader"]
