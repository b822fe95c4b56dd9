"""Options that several commands share, declared once.

The same option reads the same in every command (name, type, choices, wording), and a help text
that states a default takes it from the value itself, so the two cannot drift apart.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from occkit.commands.checks import nonneg_int

CKPT_HELP = "checkpoint folder (checkpoints/step_N) or run folder (its newest)"
DEVICE_HELP = "torch device: auto (CUDA when there is one, else the CPU), cpu, cuda or cuda:N"


def with_default(help: str, default: Any) -> str:
    """``help`` ending with ``(default: DEFAULT)``."""
    return f"{help} (default: {default})"


def add_choice(
    p: argparse.ArgumentParser | argparse._ActionsContainer,
    flag: str,
    choices: tuple[str, ...],
    default: str | None,
    help: str,
    default_text: str | None = None,
) -> None:
    """An option of fixed ``choices``; its help ends with the default (``default_text`` where the
    default is worked out at run time, e.g. from a prediction's provenance)."""
    text = default_text if default_text is not None else default
    p.add_argument(flag, default=default, choices=choices, help=with_default(help, text))


def add_split(
    p: argparse.ArgumentParser | argparse._ActionsContainer,
    help: str,
    default: str | None = "val",
    choices: tuple[str, ...] = ("train", "val", "all"),
    default_text: str | None = None,
) -> None:
    """``--split``: which frames of the dataset a command reads."""
    add_choice(p, "--split", choices, default, help, default_text)


def add_device(p: argparse.ArgumentParser | argparse._ActionsContainer, default: str = "auto", help: str = "") -> None:
    """``--device``: where the command's tensors live (``help`` says what runs there, if anything)."""
    p.add_argument("--device", default=default, help=with_default(help or DEVICE_HELP, default))


def add_ckpt(
    p: argparse.ArgumentParser | argparse._ActionsContainer, help: str = CKPT_HELP, required: bool = True
) -> None:
    """``--ckpt``: a checkpoint folder or a run folder (its newest checkpoint)."""
    p.add_argument("--ckpt", required=required, default=None, help=help)


def add_json(p: argparse.ArgumentParser | argparse._ActionsContainer, help: str) -> None:
    """``--json FILE``: also write the command's result as JSON."""
    p.add_argument("--json", type=Path, default=None, help=help)


def add_max_frames(p: argparse.ArgumentParser | argparse._ActionsContainer) -> None:
    """``--max-frames N``: an evenly spaced subset of the frames."""
    p.add_argument(
        "--max-frames", type=nonneg_int, default=0, help="only this many frames, evenly spaced (default 0 = all)"
    )


def add_no_progress(p: argparse.ArgumentParser | argparse._ActionsContainer, help: str = "no progress bar") -> None:
    p.add_argument("--no-progress", action="store_true", help=help)


def add_no_ema(p: argparse.ArgumentParser | argparse._ActionsContainer) -> None:
    p.add_argument("--no-ema", action="store_true", help="use the raw weights even when the checkpoint has EMA weights")


def add_set(p: argparse.ArgumentParser | argparse._ActionsContainer, help: str) -> None:
    """``--set KEY=VALUE ...``: overrides; every ``--set`` counts (they add up, not replace)."""
    p.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE", help=help)
