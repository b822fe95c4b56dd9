"""occkit.worlds: the procedural worlds that ``occkit synth`` writes as datasets.

- :mod:`occkit.worlds.driving`: streets outdoors (a :class:`~occkit.worlds.driving.SynthConfig`),
  written in the Occ3D-nuScenes layout and, through the formats, in the others of the driving family.
- :mod:`occkit.worlds.indoor`: rooms (an :class:`~occkit.worlds.indoor.IndoorConfig`), written in
  MonoScene's NYUv2 layout.

The subpackages are named by the world, not by the old ``synth`` / ``synth_indoor``: ``driving`` and
``indoor`` are the words a user already types (``occkit synth --world driving|indoor``) and the values
of a format's ``world`` (:class:`occkit.formats.DatasetFormat`), so the code, the option and the
registry say one name for each world. A world makes data; reading a dataset is :mod:`occkit.data`'s
job and declaring a layout is :mod:`occkit.formats`'; a world imports the readers' layout functions
(file names, label encodings) to write them, never the other way round.

Nothing persisted names these modules (a world's folder records its config as plain JSON, a stage
hash covers the command and its arguments, not module paths), so the move from ``occkit.data``
left no alias behind.
"""
