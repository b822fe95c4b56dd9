"""What the commands that score a split's frames and print a summary share (``occkit geometry``,
``occkit retrieval``): the frames they score, how a figure is printed, the result JSON of ``--out``."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def frames_to_score(ds: Any, data: Any, split: str, max_frames: int) -> list[int]:
    """The indices of at most ``max_frames`` frames of ``ds`` spread evenly over it (0 = all,
    :func:`occkit.engine.data.spread_indices`); a split without frames raises naming ``data`` and ``split``."""
    from occkit.engine.data import spread_indices

    n = len(ds)
    if n == 0:
        raise ValueError(f"{data}: split '{split}' has no frames")
    return spread_indices(n, max_frames)


def figure(v: float | None) -> str:
    """A figure as a summary prints it: two decimals, ``n/a`` for None."""
    return "n/a" if v is None else f"{v:.2f}"


def write_result(out: Path | None, result: dict[str, Any], command: str) -> int:
    """The result JSON of ``occkit COMMAND`` written to ``out`` when given
    (:func:`occkit.outputs.write_json_output`); returns the command's exit status, 0."""
    from occkit.outputs import write_json_output

    if out is not None:
        write_json_output(out, result, command)
    return 0
