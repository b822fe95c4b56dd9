"""The command-line reference of the documentation site, generated from occkit's own argument parsers.

Every verb's page section is the text its ``--help`` prints (``occkit.cli.build_parser``), so the site and
``occkit VERB --help`` cannot disagree. The site's build calls :func:`render` through ``tools/docs_hooks.py``;
run this file to print the same Markdown (or ``--out F`` to write it)::

    .venv/bin/python tools/cli_reference.py --out /tmp/cli.md
"""

from __future__ import annotations

import argparse
import html
import os
import re
import sys
from pathlib import Path

#: the width the help texts are wrapped at (argparse reads COLUMNS)
WIDTH = 100


def _subparsers(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    """``(name, parser)`` of each sub-command of ``parser``, in the order they were added."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen = set()
            for name, sub in action.choices.items():
                if id(sub) not in seen:  # aliases point at the same parser
                    seen.add(id(sub))
                    out.append((name, sub))
    return out


def summary(parser: argparse.ArgumentParser, parent: argparse.ArgumentParser | None = None) -> str:
    """A command's one line: its description, else the help its parent lists it with."""
    text = parser.description or ""
    if not text and parent is not None:
        name = parser.prog.split()[-1]
        for action in parent._actions:
            if isinstance(action, argparse._SubParsersAction):
                text = next((a.help or "" for a in action._choices_actions if a.dest == name), "")
    return " ".join(text.split())


def _walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...]
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    out = [(path, parser)]
    for name, sub in _subparsers(parser):
        out += _walk(sub, path + (name,))
    return out


def commands(parser: argparse.ArgumentParser | None = None) -> list[tuple[str, argparse.ArgumentParser]]:
    """Every command of the CLI, nested ones too, as ``("occkit priors run", parser)``, the top level first."""
    if parser is None:
        from occkit.cli import build_parser

        parser = build_parser()
    return [(" ".join(("occkit",) + path), p) for path, p in _walk(parser, ())]


def help_text(parser: argparse.ArgumentParser) -> str:
    """What ``--help`` prints for ``parser``, wrapped at :data:`WIDTH` columns."""
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(WIDTH)
    try:
        return parser.format_help()
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


def anchor(command: str) -> str:
    """The anchor of a command's section: ``occkit priors run`` -> ``occkit-priors-run``."""
    return command.replace(" ", "-")


def table_cell(text: str) -> str:
    """``text`` as it reads, in a Markdown table's cell: ``<`` and ``&`` escaped (``PRIORS/<scene>/<CAM>.npz`` is
    no HTML tag), and the characters Markdown reads as emphasis, code, links or a cell's end backslashed."""
    text = html.escape(text, quote=False)
    return re.sub(r"([\\`*_\[\]|])", r"\\\1", text)


def render(parser: argparse.ArgumentParser | None = None) -> str:
    """The reference as Markdown: an index of the verbs, then each command's ``--help`` text."""
    cmds = commands(parser)
    parents = {name: p for name, p in cmds}
    lines = ["| command | what it does |", "|---|---|"]
    for name, p in cmds[1:]:
        one = table_cell(summary(p, parents.get(name.rsplit(" ", 1)[0])))
        lines.append(f"| [`{name}`](#{anchor(name)}) | {one} |")
    lines.append("")
    for name, p in cmds:
        lines += [f"## `{name}` {{ #{anchor(name)} }}", "", "```text", help_text(p).rstrip(), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="write the Markdown here (default: print it)")
    args = ap.parse_args(argv)
    text = render()
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
