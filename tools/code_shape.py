"""The size of occkit's functions, measured from the source: every function over a length or with
more decision points than the limits of docs/design.md ("Conventions"), which
tests/test_code_shape.py holds the code to.

    python tools/code_shape.py            # the functions over the limits (none: exit 0)
    python tools/code_shape.py --top 20   # the 20 largest by decision points, whatever the limits

Decision points are counted as a reader meets them: each ``if`` / ``elif``, ``for``, ``while``,
conditional expression, ``except``, ``assert`` and ``case``; each operand of ``and`` / ``or`` beyond
the first; each ``for`` and ``if`` of a comprehension. A nested function counts in its own right and
in the function around it.
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "occkit"
#: The longest function (lines, its decorators and docstring included) and the most decision points.
MAX_LINES = 120
MAX_DECISIONS = 25

_BRANCHES = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.IfExp, ast.ExceptHandler, ast.Assert, ast.match_case)


@dataclass(frozen=True)
class Function:
    path: Path
    line: int
    name: str
    lines: int
    decisions: int

    def __str__(self) -> str:
        rel = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{rel}:{self.line} {self.name}: {self.lines} lines, {self.decisions} decision points"


def decision_points(node: ast.AST) -> int:
    """The decision points of a function's body (see the module's docstring)."""
    n = 0
    for sub in ast.walk(node):
        if isinstance(sub, _BRANCHES):
            n += 1
        elif isinstance(sub, ast.BoolOp):
            n += len(sub.values) - 1
        elif isinstance(sub, ast.comprehension):
            n += 1 + len(sub.ifs)
    return n


def functions(root: Path = PACKAGE) -> list[Function]:
    """Every function and method under ``root``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                found.append(Function(path, node.lineno, node.name, node.end_lineno - first + 1, decision_points(node)))
    return found


def over_limits(root: Path = PACKAGE) -> list[Function]:
    """The functions longer than :data:`MAX_LINES` or with more than :data:`MAX_DECISIONS` decision points."""
    return [f for f in functions(root) if f.lines > MAX_LINES or f.decisions > MAX_DECISIONS]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--top", type=int, default=0, help="list the N functions with the most decision points instead")
    args = ap.parse_args()
    if args.top:
        for f in sorted(functions(), key=lambda f: (-f.decisions, -f.lines))[: args.top]:
            print(f)
        return 0
    bad = over_limits()
    for f in bad:
        print(f)
    print(f"{len(bad)} function(s) over {MAX_LINES} lines or {MAX_DECISIONS} decision points")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
