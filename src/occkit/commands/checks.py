"""Checks of command-line values shared by the commands: argparse types that refuse a number
outside its range (argparse then prints one line naming the option), and texts.

Use as ``p.add_argument("--steps", type=positive_int, ...)``.
"""

from __future__ import annotations

import argparse
import functools
import math
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any, TypeVar

_N = TypeVar("_N", int, float)

MAX_TEXT = 500
"""Longest free text (``--text`` of query and generate) in characters: a query or a scene
description is a phrase or two; the text encoders read a few dozen words."""


def holding_outputs(body: Callable[[argparse.Namespace, ExitStack], int]) -> Callable[[argparse.Namespace], int]:
    """A verb's ``run(args)`` made of ``body(args, held)``: ``held`` is an :class:`~contextlib.ExitStack`
    the body enters its outputs' locks into once it has checked ``--out``
    (``held.enter_context(locked_output(...))``); they are released when the body returns or raises."""

    @functools.wraps(body)
    def run(args: argparse.Namespace) -> int:
        with ExitStack() as held:
            return body(args, held)

    return run


def check_text(text: str, what: str = "--text") -> str:
    """Refuse an empty text (or only spaces) and one longer than :data:`MAX_TEXT` characters
    (``ValueError`` naming ``what``)."""
    if not text.strip():
        raise ValueError(f'{what}: empty; give a phrase, e.g. "fire hydrant"')
    if len(text) > MAX_TEXT:
        raise ValueError(f"{what}: {len(text)} characters; at most {MAX_TEXT}")
    return text


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None  # argparse's own words


def _float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value: {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return v


def _checked(v: _N, ok: bool, expected: str, shown: str) -> _N:
    """``v`` when ``ok``; else argparse's one-line refusal ``expected <expected>, got <shown>``."""
    if not ok:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {shown}")
    return v


def positive_int(text: str) -> int:
    """An integer >= 1."""
    v = _int(text)
    return _checked(v, v >= 1, "an integer >= 1", f"{v}")


def nonneg_int(text: str) -> int:
    """An integer >= 0."""
    v = _int(text)
    return _checked(v, v >= 0, "an integer >= 0", f"{v}")


def positive_float(text: str) -> float:
    """A finite number > 0."""
    v = _float(text)
    return _checked(v, v > 0, "a number > 0", f"{v:g}")


def nonneg_float(text: str) -> float:
    """A finite number >= 0."""
    v = _float(text)
    return _checked(v, v >= 0, "a number >= 0", f"{v:g}")


def unit_float(text: str) -> float:
    """A finite number in [0, 1] (a probability, a confidence, a fraction)."""
    v = _float(text)
    return _checked(v, 0.0 <= v <= 1.0, "a number in [0, 1]", f"{v:g}")


def bounded_float(hi: float, unit: str) -> Callable[[str], float]:
    """The type of an option taking a finite number in [0, ``hi``] (``unit`` shown in the refusal):
    a noise or an error size beyond any recording's, refused before work rather than written."""

    def bounded(text: str) -> float:
        v = _float(text)
        return _checked(v, 0.0 <= v <= hi, f"a number in [0, {hi:g}] ({unit})", f"{v:g}")

    bounded.__name__ = "bounded_float"
    return bounded


def finite_float(text: str) -> float:
    """Any finite number."""
    return _float(text)


def percent_float(text: str) -> float:
    """A finite percentage in (0, 100]."""
    v = _float(text)
    return _checked(v, 0.0 < v <= 100.0, "a percentage in (0, 100]", f"{v:g}")


def typed_command() -> str:
    """The command line as it was typed (``.venv/bin/occkit demo --out demo``), for a message that
    tells how to run it again: ``sys.argv[0]`` as given, not a bare ``occkit`` that may not be on
    PATH; ``python -m occkit`` when it ran as a module."""
    import os
    import shlex
    import sys

    argv = list(sys.argv)
    if not argv:
        return "occkit"
    first = argv[0]
    if os.path.basename(first) in ("__main__.py", "-m") or first.endswith(os.path.join("occkit", "__main__.py")):
        first = f"{os.path.basename(sys.executable) or 'python'} -m occkit"
        return first + (" " + shlex.join(argv[1:]) if argv[1:] else "")
    return shlex.join(argv)


def default_split(split: str | None, pred: Any = None) -> str:
    """``--split`` of a command that shows frames: as given; else the split a prediction folder
    ``pred`` holds (its ``provenance.json`` names it), so that ``--pred`` alone shows the frames it
    has predictions for; else ``all``."""
    from pathlib import Path

    if split is not None:
        return split
    if pred is not None and Path(pred).is_dir() and (Path(pred) / "provenance.json").is_file():
        from occkit.metrics.evaluate import read_provenance

        try:
            named = read_provenance(pred).get("split")
        except (OSError, ValueError):
            named = None
        if named in ("train", "val", "all"):
            return named
    return "all"


def images_where_recorded(ds: Any) -> Any:
    """``ds`` read without camera images when its index records none (labels of a recording
    without cameras or images, as ``occkit label`` writes them: docs/labels.md): the commands that
    show frames (``show``, ``view``) then draw the occupancy alone. A dataset that records images
    still reads them, and a missing image is still refused naming it."""
    if getattr(ds, "load_images", False) and getattr(ds, "images_recorded", True) is False:
        ds.load_images = False
    return ds


def nonempty_path(text: str) -> Any:
    """A path option's value (``pathlib.Path``): an empty one (``--out ''``) is refused, not read as ``.``
    (the current folder, which ``Path('')`` is)."""
    from pathlib import Path

    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; give a file's or a folder's path (. for this folder)")
    return Path(text)


#: Options that name a file or a folder wherever they appear (some commands take them as text).
PATH_OPTIONS = ("--out", "--json", "--csv", "--data", "--gt", "--pred", "--ckpt", "--priors", "--infos", "--quality")


def nonempty_text_path(text: str) -> str:
    """As :func:`nonempty_path`, for an option a command takes as text."""
    nonempty_path(text)
    return text


def refuse_empty_paths(parser: argparse.ArgumentParser) -> None:
    """Every option of ``parser`` (and of its sub-commands) that takes a ``pathlib.Path``, or is one of
    :data:`PATH_OPTIONS` taken as text, refuses an empty value in one line (:func:`nonempty_path`)."""
    from pathlib import Path

    for action in parser._actions:
        if action.type is Path:
            action.type = nonempty_path
        elif (
            action.type is None
            and isinstance(action, argparse._StoreAction)
            and any(o in PATH_OPTIONS for o in action.option_strings)
        ):
            action.type = nonempty_text_path
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                refuse_empty_paths(sub)


#: The largest seed: numpy's legacy generators and torch take seeds below 2^32 and 2^63; one above
#: them failed deep inside (``Overflow when unpacking long long``) after the output folder was made.
MAX_SEED = 2**32 - 1


def seed_int(text: str) -> int:
    """A seed: an integer in [0, :data:`MAX_SEED`]."""
    v = _int(text)
    return _checked(v, 0 <= v <= MAX_SEED, f"an integer in [0, {MAX_SEED}] (a seed)", f"{v}")
