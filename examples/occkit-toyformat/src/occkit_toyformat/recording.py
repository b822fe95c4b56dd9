"""A recording reader from another package: ``occkit label --data FILE.toyrec`` reads a recording
written as one JSON file, through the entry point group ``occkit.recordings`` (pyproject.toml).

The file: ``{"scenes": {name: [sweep, ...]}}``, a sweep ``{"token", "timestamp" (µs), "position"
[x, y, z] (the ego origin in the world; no rotation), "points" [[x, y, z], ...] (the LiDAR's, which
is the ego frame here), "keyframe" (optional: else every ``--toy-every`` N-th sweep)}``. Everything
occkit needs of a reader is here: ``detect``, ``open`` (``__init__``), ``scenes`` and ``read``, and
its options dataclass, whose one option ``occkit label --help`` lists under "reader toyrec".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from occkit.data.recordings import ReaderOptions, RecordingReader, option


@dataclass(frozen=True)
class ToyOptions(ReaderOptions):
    toy_every: int | None = option(
        "a keyframe every N sweeps of a .toyrec without keyframe marks (default 2)", type=int, metavar="N"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.toy_every is not None and self.toy_every < 1:
            raise ValueError(f"--toy-every {self.toy_every}: must be a positive integer")


class ToyRecording(RecordingReader):
    name = "toyrec"
    description = "a .toyrec file (one JSON file of sweeps; the occkit-toyformat example)"
    Options = ToyOptions
    priority = 70

    @classmethod
    def detect(cls, path: Path) -> str | None:
        return f"{path.name}: a .toyrec file" if path.is_file() and path.suffix == ".toyrec" else None

    def __init__(self, source: Path, options: ToyOptions, wanted: list[str] | None = None) -> None:
        super().__init__(source, options, wanted)
        try:
            self.table = json.loads(source.read_text())
            self._scenes = list(self.table["scenes"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{source}: not a .toyrec file ({type(e).__name__}: {e})") from None
        self.classes = ()  # no point labels: geometry alone
        self.describe = f"toy recording {source}, {len(self._scenes)} scene(s)"

    def read(self, scene: str, load_points: bool = True) -> Any:
        import numpy as np

        from occkit.data.scene_record import SceneRecord, Sweep, check_record

        every = self.options.toy_every or 2
        sweeps = []
        for i, s in enumerate(self.table["scenes"][scene]):
            T = np.eye(4)
            T[:3, 3] = s["position"]
            pts = np.asarray(s["points"], np.float32).reshape(-1, 3) if load_points else np.zeros((0, 3), np.float32)
            kf = s.get("keyframe", i % every == 0)
            sweeps.append(Sweep(str(s["token"]), int(s["timestamp"]), "LIDAR", T, pts, keyframe=bool(kf)))
        rec = SceneRecord(
            name=scene, sweeps=sweeps, lidars={"LIDAR": np.eye(4)}, classes=self.classes, source=str(self.source)
        )
        check_record(rec)
        return rec
