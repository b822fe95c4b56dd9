"""Options that several commands declare, each declared here once: the same option has the same
name, type and behaviour in every command, and a help text that states a default is written from
the default the option really has (``(default: X)``), so the two cannot drift apart.

Use as ``add_split(p, "frames evaluated")`` inside a command's
``add_arguments``; the help text passed in says what the option means for that command.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

Options = argparse._ActionsContainer
"""What options are added to: a parser, an argument group or a mutually exclusive group."""

SPLITS = ("train", "val", "all")
"""The splits of an Occ3D-layout dataset (``occkit.data.occ3d.SPLITS``, not imported from there:
that would bring torch into every parser, and ``occkit eval --help`` from 0.04 to 2.1 s)."""

MASKS = ("none", "camera", "lidar")
"""The visibility masks a picture or a viewer applies."""

DEVICE_HELP = "auto, cpu, cuda, cuda:N"
"""What ``--device`` takes where ``auto`` picks the GPU when there is one."""


def with_default(text: str, default: Any) -> str:
    """``text`` followed by ``(default: DEFAULT)``."""
    return f"{text} (default: {default})"


def add_choice(
    p: Options,
    flag: str,
    choices: tuple[str, ...],
    default: str | None,
    help: str,
) -> argparse.Action:
    """``flag``: one of ``choices``. The help ends with the default, unless that is None (then
    ``help`` says what the command does without the option)."""
    text = help if default is None else with_default(help, default)
    return p.add_argument(flag, default=default, choices=choices, help=text)


def add_split(
    p: Options,
    help: str,
    default: str | None = "val",
    choices: tuple[str, ...] | None = None,
) -> argparse.Action:
    """``--split``: which frames of the dataset the command reads. Without ``choices`` any name is
    taken here and checked against the data's format when it is opened
    (:meth:`occkit.formats.DatasetFormat.open_split`: a package's format may name its own splits)."""
    if choices is not None:
        return add_choice(p, "--split", choices, default, help)
    return p.add_argument(
        "--split",
        default=default,
        metavar="SPLIT",
        help=with_default(
            f"{help}; a split of the data's format: train, val, all, test where it has one, or "
            "the names a package's format gives",
            default,
        ),
    )


def add_shown_split(p: Options, help: str) -> argparse.Action:
    """``--split`` of a command that shows frames, none by default: then
    :func:`occkit.commands.checks.default_split` picks the split of the ``--pred`` folder."""
    return p.add_argument(
        "--split",
        default=None,
        choices=SPLITS,
        help=f"{help} (default: the split a --pred folder was predicted on, as its provenance.json says; else all)",
    )


def add_mask(
    p: Options,
    help: str,
    default: str = "none",
    choices: tuple[str, ...] = MASKS,
) -> argparse.Action:
    """``--mask``: the visibility mask whose voxels count or are shown."""
    return add_choice(p, "--mask", choices, default, help)


MASK_MODES = ("show", "hide", "dim")
"""What a picture or a viewer does with the voxels outside the visibility mask: draws them as they
are, leaves them out, or dims them (``occkit show`` and ``occkit view`` alike)."""

MASK_MODE_ALIASES = {"grey": "dim", "gray": "dim"}
"""Older names of :data:`MASK_MODES` (``occkit show --mask-mode grey``), still accepted."""


def mask_mode(text: str) -> str:
    """``--mask-mode`` as given, an older name (:data:`MASK_MODE_ALIASES`) read as its new one."""
    return MASK_MODE_ALIASES.get(text, text)


def add_mask_mode(p: Options, default: str = "dim") -> argparse.Action:
    """``--mask-mode show|hide|dim`` (``grey`` the old name of ``dim``): voxels outside ``--mask``."""
    return p.add_argument(
        "--mask-mode",
        type=mask_mode,
        default=default,
        choices=MASK_MODES,
        help=with_default(
            "voxels outside --mask: drawn as they are, hidden, or dimmed (grey: the old name of dim)", default
        ),
    )


def add_device(p: Options, help: str = DEVICE_HELP, default: str = "auto") -> argparse.Action:
    """``--device``: the torch device the command computes on."""
    return p.add_argument("--device", default=default, help=with_default(help, default))


def add_ckpt(
    p: Options, help: str = "checkpoint folder (checkpoints/step_N) or run folder (its newest)", required: bool = True
) -> argparse.Action:
    """``--ckpt``: the trained run (or one of its checkpoints) the command loads."""
    return p.add_argument("--ckpt", required=required, help=help)


def add_data(
    p: Options,
    help: str,
    type: Callable[[str], Any] = Path,
    flag: str = "--data",
) -> argparse.Action:
    """``--data`` (required): the dataset the command reads."""
    return p.add_argument(flag, type=type, required=True, help=help)


def add_out(
    p: Options,
    help: str,
    type: Callable[[str], Any] = Path,
    required: bool = True,
) -> argparse.Action:
    """``--out``: what the command writes."""
    return p.add_argument("--out", type=type, required=required, default=None, help=help)


def add_pred(p: Options, help: str) -> argparse.Action:
    """``--pred`` (optional): predictions to show beside the ground truth."""
    return p.add_argument("--pred", type=Path, default=None, help=help)


def add_cameras(p: Options, what: str) -> argparse.Action:
    """``--cameras A,B``: some of the dataset's cameras, by name; ``what`` says what they are for."""
    return p.add_argument(
        "--cameras", default=None, help=f"comma-separated camera names {what} (default: all of the dataset)"
    )


def add_overrides(p: Options, help: str, action: str = "extend", **kwargs: Any) -> argparse.Action:
    """``--set KEY=VALUE ...``: config overrides; every ``--set`` counts (``action="append"`` with
    ``dest``: one KEY=VALUE each)."""
    if action == "extend":
        kwargs.setdefault("nargs", "+")
    return p.add_argument("--set", action=action, default=[], metavar="KEY=VALUE", help=help, **kwargs)


def keywords_of(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The parsed options ``names`` as keyword arguments, each under its own name: for a call whose
    parameters are named as the command's options are (``f(**keywords_of(args, "split", "seed"))``)."""
    return {name: getattr(args, name) for name in names}
