"""Run logs: TensorBoard scalars under ``RUN/tb`` and one JSON line per event in ``RUN/*.jsonl``.

Only rank 0 creates a :class:`RunLogger`; other ranks get ``None`` and log nothing.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any


class RunLogger:
    """Scalars to TensorBoard and JSON lines (``train.jsonl`` for losses, ``metrics.jsonl`` for
    validation). JSON lines are appended and flushed at once, so a crash loses at most one line.

    Args:
        run_dir: the run folder.
        tensorboard: also write TensorBoard event files under ``run_dir/tb``.
        start_step: the step the run starts (or resumes) from: the JSON-lines records of later
            steps, left by the run before a crash, are dropped (their steps are about to be
            redone), and TensorBoard is told to purge its events from ``start_step + 1`` on
            (``SummaryWriter(purge_step=...)``). None keeps every record.
    """

    #: The JSON-lines files :class:`RunLogger` writes and ``start_step`` truncates.
    JSONL_FILES = ("train.jsonl", "metrics.jsonl")

    def __init__(self, run_dir: str | os.PathLike, tensorboard: bool = True, start_step: int | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if start_step is not None:
            for name in self.JSONL_FILES:
                truncate_jsonl(self.run_dir / name, start_step)
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # imported here: slow import

            purge = None if start_step is None else start_step + 1
            self._tb = SummaryWriter(log_dir=str(self.run_dir / "tb"), purge_step=purge)

    def scalars(self, step: int, values: dict[str, float], prefix: str = "") -> None:
        """TensorBoard scalars named ``prefix + key``."""
        if self._tb is None:
            return
        for k, v in values.items():
            if isinstance(v, (int, float)) and math.isfinite(float(v)):
                self._tb.add_scalar(prefix + k, float(v), step)

    def jsonl(self, name: str, record: dict[str, Any]) -> None:
        """Append ``record`` as one line to ``run_dir/name``."""
        with open(self.run_dir / name, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, default=_plain) + "\n")
            f.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()
            self._tb = None


def _plain(v: Any) -> Any:
    try:
        import numpy as np

        if isinstance(v, np.ndarray):
            return v.tolist()
        if isinstance(v, np.generic):
            return v.item()
    except ImportError:  # pragma: no cover
        pass
    if hasattr(v, "tolist"):
        return v.tolist()
    return str(v)


def truncate_jsonl(path: str | os.PathLike, last_step: int) -> int:
    """Drop the records of a JSON-lines log whose ``step`` is past ``last_step`` (atomically; a
    torn last line goes too). Returns how many were dropped; a missing file drops none."""
    from occkit.fileio import write_text_atomic

    path = Path(path)
    if not path.is_file():
        return 0
    records = read_jsonl(path)
    keep = [r for r in records if not (isinstance(r.get("step"), (int, float)) and r["step"] > last_step)]
    lines = path.read_text(encoding="utf-8").splitlines()
    if len(keep) == len(records) and len([x for x in lines if x.strip()]) == len(records):
        return 0
    write_text_atomic(path, "".join(json.dumps(r, default=_plain) + "\n" for r in keep))
    return len(records) - len(keep)


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All records of a JSON-lines file (a torn last line is skipped); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    out = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as e:
            if i == len(lines) - 1:
                break
            raise ValueError(f"{path}:{i + 1}: not valid JSON ({e})") from e
    return out


def validation_summary(record: dict[str, Any]) -> str:
    """A validation record's headline figures in words: ``val mIoU 41.20, RayIoU 35.10`` (RayIoU when
    measured), or for a run that learns no classes (its record holds ``depth_abs_rel``) its geometry
    and depth: ``val geometry IoU 30.12, depth abs-rel 0.210 (2.31 m)``. A validation on a subset of the
    frames (``train.val_max_frames``) says so: ``val mIoU 0.85 (on 16 of the 80 val frames: ...)``, the reason
    ``occkit eval`` of the same run prints another figure. Training's progress lines and ``occkit train``'s
    last line say it."""
    if "depth_abs_rel" in record:
        return (
            f"val geometry IoU {record['geometry_iou']:.2f}, depth abs-rel {record['depth_abs_rel']:.3f} "
            f"({record['depth_abs_m']:.2f} m)"
        )
    words = f"val mIoU {record['miou']:.2f}" + (f", RayIoU {record['rayiou']:.2f}" if "rayiou" in record else "")
    if "val_frames_total" in record:  # train.val_max_frames: a subset, so occkit eval of the run prints another figure
        words += f" (on {record['val_frames']} of the {record['val_frames_total']} val frames: train.val_max_frames)"
    return words
