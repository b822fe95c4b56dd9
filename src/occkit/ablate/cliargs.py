"""Occkit verbs' options written from YAML mappings, checked with the verbs' own parsers.

A stage's ``args`` (and a scorer's pass-through options) are a mapping of option names to values:
``{scenes: 10, image-size: [96, 256], set: [train.threads=1], overwrite: true}``. Each key names
an option of the verb (``--scenes``; underscores may stand for dashes) or a positional argument
by its name (``config`` of ``train``). A value is written as:

- ``true`` -> the bare flag (``--overwrite``); ``false`` or ``null`` -> nothing;
- a list -> several values after one flag (``--image-size 96 256``), or the flag repeated for an
  option that is given once per value (``--prior a --prior b``, argparse's ``append``);
- anything else -> one value (``--scenes 10``).

The result is parsed by the verb's own parser, so a value the command would refuse is refused before
anything runs. The verbs' parsers come from above: the ``occkit ablate`` command hands this package
the function that builds them (:func:`use_verb_parser`), as the verbs sit above the ablation runner.
"""

from __future__ import annotations

import argparse
import contextlib
import io
from collections.abc import Callable
from typing import Any

#: The occkit verbs the ablation runner calls: name in a spec -> words after ``occkit``.
VERBS: dict[str, tuple[str, ...]] = {
    "synth": ("synth",),
    "priors run": ("priors", "run"),
    "priors train": ("priors", "train"),
    "pseudolabel": ("pseudolabel",),
    "train": ("train",),
    "predict": ("predict",),
    "eval": ("eval",),
    "retrieval": ("retrieval",),
    "generate": ("generate",),
    "eval-gen": ("eval-gen",),
}


#: Builds the ``occkit`` parser that holds one verb (``"priors"`` -> a parser of ``occkit priors ...``);
#: set by :func:`use_verb_parser`.
_verb_parser: Callable[[str], argparse.ArgumentParser] | None = None


def use_verb_parser(build: Callable[[str], argparse.ArgumentParser]) -> None:
    """Give the function that builds the ``occkit`` parser of one verb (its first word: ``"priors"``),
    which :func:`verb_parsers` asks; the ``occkit ablate`` command gives the command line's own."""
    global _verb_parser
    _verb_parser = build


def verb_parsers(verb: str) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """``(top-level parser, the verb's own parser)`` of a verb of :data:`VERBS`."""
    if _verb_parser is None:
        raise RuntimeError(
            "the ablation runner checks a verb's options with the verb's own parser: give the function that "
            "builds it first (occkit.ablate.cliargs.use_verb_parser; the occkit ablate command does)"
        )
    words = VERBS[verb]
    top = _verb_parser(words[0])
    p = top
    for w in words:
        sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
        p = sub.choices[w]
    return top, p


def find_action(parser: argparse.ArgumentParser, key: str) -> argparse.Action | None:
    """The action of option ``--key`` (or ``--key`` with ``_`` as ``-``) or of positional ``key``."""
    key = str(key)
    for name in (f"--{key}", f"--{key.replace('_', '-')}"):
        for a in parser._actions:
            if name in a.option_strings:
                return a
    for a in parser._actions:
        if not a.option_strings and a.dest == key.replace("-", "_") and not isinstance(a, argparse._SubParsersAction):
            return a
    return None


def option_names(parser: argparse.ArgumentParser) -> list[str]:
    """The verb's option and positional names, as a spec writes them (``image-size``, ``config``)."""
    out = []
    for a in parser._actions:
        if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        out.append(a.option_strings[-1][2:] if a.option_strings else a.dest)
    return out


def mapping_argv(parser: argparse.ArgumentParser, args: dict[str, Any]) -> list[str]:
    """The command-line words of ``args`` for ``parser``'s verb (see the module docstring).

    Raises ``ValueError`` (message without location: the caller adds it) for an unknown option or
    a value of the wrong kind (a mapping; a list for a flag).
    """
    positional: list[str] = []
    words: list[str] = []
    for key, value in args.items():
        action = find_action(parser, key)
        if action is None:
            raise ValueError(f"{key}: not an option of this command (its options: {', '.join(option_names(parser))})")
        if isinstance(value, dict):
            raise ValueError(f"{key}: expected a value or a list, got a mapping")
        if value is None:
            continue
        if not action.option_strings:
            positional.extend(str(v) for v in (value if isinstance(value, list) else [value]))
            continue
        flag = action.option_strings[-1]
        if action.nargs == 0:  # store_true / store_false / store_const / count
            if not isinstance(value, bool):
                raise ValueError(f"{key}: a flag takes true or false, got {value!r}")
            if value != (isinstance(action, argparse._StoreFalseAction)):
                words.append(flag)
            continue
        if action.nargs == "?" and isinstance(
            value, bool
        ):  # an optional value (--quality [JSON]): true = the bare flag
            if value:
                words.append(flag)
            continue
        values = value if isinstance(value, list) else [value]
        text = [_word(v) for v in values]
        if isinstance(action, argparse._AppendAction) and action.nargs is None:
            for t in text:
                words += [flag, t]
        else:
            words += [flag, *text]
    return positional + words


def _word(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, dict)):
        raise ValueError(f"{v!r}: a nested list or mapping cannot be one command-line value")
    return str(v)


def parse_check(verb: str, words: list[str]) -> None:
    """Parse ``occkit <verb> <words>`` with occkit's own parser; raise ``ValueError`` with
    argparse's one-line complaint when it refuses them (nothing is printed)."""
    top, _ = verb_parsers(verb)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            top.parse_args([*VERBS[verb], *words])
    except SystemExit as e:
        lines = [x for x in err.getvalue().splitlines() if x.strip()]
        msg = lines[-1] if lines else f"refused (exit {e.code})"
        raise ValueError(msg.split("error: ", 1)[-1] if "error: " in msg else msg) from None
