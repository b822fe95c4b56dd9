"""Which options of ``occkit eval`` each format's scoring takes, declared as data beside the scoring
core: one :class:`EvalOption` per option, and one refusal for all (:func:`check_options`).

A format occkit's scoring loop scores (no ``evaluate_folder``: every format of occkit's own) takes
``--mask``, ``--metrics``, ``--frustum`` and ``--processes`` from the loop, and whatever else its
``folder_options`` name for its metrics (Occ3D: ``--infos``) or its ``read_variants`` declare
(SurroundOcc, OpenOccupancy: ``--allow-duplicate-voxels``). A format that scores a folder its own
way (a package's ``evaluate_folder``) takes what its ``folder_options`` name. ``--class-map`` scores
the common classes with occkit's own metric: it takes none of the metrics' options.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def by_loop(fmt: Any) -> bool:
    """Whether occkit's scoring loop scores the format's folders (it declares no ``evaluate_folder``)."""
    return fmt.scoring.evaluate_folder is None


@dataclass(frozen=True)
class EvalOption:
    """An option of ``occkit eval`` that reaches a format's scoring.

    Attributes:
        key: its name among the scoring's options (what ``evaluate_predictions`` or a format's
            ``evaluate_folder`` takes).
        flag: the command's option, for messages.
        taken: ``(format, value) -> bool``: whether the format's scoring takes the value.
        given: ``value -> bool``: whether the value asks for anything (a default asks nothing).
        with_class_map: whether ``--class-map`` takes it too.
    """

    key: str
    flag: str
    taken: Callable[[Any, Any], bool]
    given: Callable[[Any], bool] = bool
    with_class_map: bool = False


def _metrics_taken(fmt: Any, asked: Any) -> bool:
    # the first metric's mIoU is every scoring's: asking for it alone asks nothing of the format
    return by_loop(fmt) or "metrics" in fmt.scoring.folder_options or not set(asked) - {"miou"}


#: Every option of ``occkit eval`` that reaches the scoring, in the order the command lists them.
EVAL_OPTIONS: tuple[EvalOption, ...] = (
    EvalOption("mask", "--mask", lambda f, v: by_loop(f) or "mask" in f.scoring.folder_options, given=lambda v: False),
    EvalOption("metrics", "--metrics", _metrics_taken),
    EvalOption("infos", "--infos", lambda f, v: "infos" in f.scoring.folder_options),
    EvalOption(
        "region",
        "--frustum",
        # a package's own folder scoring cannot be restricted by occkit: only the loop applies a region
        lambda f, v: by_loop(f) or ("region" in f.scoring.folder_options and not f.from_package),
    ),
    EvalOption(
        "processes",
        "--processes",
        lambda f, v: by_loop(f) or "processes" in f.scoring.folder_options,
        given=lambda v: v is not None and v > 1,
        with_class_map=True,
    ),
    EvalOption(
        "duplicate_voxels",
        "--allow-duplicate-voxels",
        lambda f, v: "duplicate_voxels" in f.scoring.read_variants or "duplicate_voxels" in f.scoring.folder_options,
    ),
)


#: A value standing for any the option may take, when asking whether a format takes the option at all.
_ANY = ("*",)


def taken_flags(fmt: Any) -> str:
    """The options of ``occkit eval`` a format's scoring takes, for messages."""
    return ", ".join(o.flag for o in EVAL_OPTIONS if o.taken(fmt, _ANY)) or "no options"


def check_options(fmt: Any, values: dict[str, Any], class_map: bool = False) -> None:
    """Refuse, in one line and before any work, an option given (``values``: key -> the command's value)
    that the format's scoring does not take, or that ``--class-map`` does not."""
    given = [o for o in EVAL_OPTIONS if o.key in values and o.given(values[o.key])]
    if class_map:
        refused = [o.flag for o in given if not o.with_class_map]
        if refused:
            raise ValueError(f"--class-map scores the mIoU of the common classes only; {', '.join(refused)} not taken")
        return
    for o in given:
        if not o.taken(fmt, values[o.key]):
            raise ValueError(f"{o.flag}: not taken by the {fmt.display_name} format (it takes {taken_flags(fmt)})")


def scoring_options(fmt: Any, values: dict[str, Any]) -> dict[str, Any]:
    """The options handed to the format's scoring: those of ``values`` it takes (a default the format
    has no use for is left out, not refused)."""
    keys = {o.key for o in EVAL_OPTIONS if o.taken(fmt, _ANY)}
    return {k: v for k, v in values.items() if k in keys}
