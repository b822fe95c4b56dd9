"""The share of code that checks input, measured from the source: per file and in total for a folder,
the code lines and the checking lines among them (docs/design.md, "Schemas of the files occkit reads").

    python tools/checking_share.py src/occkit/data            # every file, then the folder's total
    python tools/checking_share.py src/occkit/data --top 10   # the 10 files with the largest share
    python tools/checking_share.py src/occkit/data/rig.py     # one file

Code lines: lines holding a token of code; blank lines, comment lines and docstrings (a module's, a
class's, a function's) are not code. Checking lines, counted once each and only where they are code:

- an ``if`` (or ``elif``) whose body ends in ``raise``: its condition's lines and its body, not its ``else``;
- an ``except`` handler whose body ends in ``raise`` (a re-raise or a translation to another error);
- a function that only checks: past its docstring, it raises or asserts and holds nothing but checks
  (``assert``, ``raise``, ``if`` / ``for`` / ``while`` / ``with`` / ``try`` over checks, local names
  assigned for them, calls of functions whose name says ``check`` / ``validate`` / ``refuse`` /
  ``require`` / ``ensure``), returns nothing, or at its end the value it checked (a name, or a name
  converted: ``return float(v)``); the whole function, its ``def`` line and decorators included.
"""

from __future__ import annotations

import argparse
import ast
import io
import sys
import tokenize
from dataclasses import dataclass
from pathlib import Path

_NOT_CODE = {
    tokenize.COMMENT,
    tokenize.NL,
    tokenize.NEWLINE,
    tokenize.INDENT,
    tokenize.DEDENT,
    tokenize.ENCODING,
    tokenize.ENDMARKER,
}


@dataclass(frozen=True)
class Share:
    path: str
    code: int
    checking: int

    @property
    def percent(self) -> float:
        return 100.0 * self.checking / self.code if self.code else 0.0

    def __str__(self) -> str:
        return f"{self.path}: {self.checking} of {self.code} code lines check ({self.percent:.1f} %)"


def _span(node: ast.AST) -> set[int]:
    return set(range(node.lineno, node.end_lineno + 1))  # type: ignore[attr-defined]


def _docstring_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                lines |= _span(first)
    return lines


def code_lines(source: str, tree: ast.Module) -> set[int]:
    """The numbers of the lines of ``source`` that hold code (not blank, a comment or a docstring)."""
    lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in _NOT_CODE:
            lines |= set(range(tok.start[0], tok.end[0] + 1))
    return lines - _docstring_lines(tree)


def _raises(body: list[ast.stmt]) -> bool:
    return bool(body) and isinstance(body[-1], ast.Raise)


def _if_check(node: ast.If) -> set[int]:
    """An ``if`` whose body ends in ``raise``: its lines up to the end of its body."""
    return set(range(node.lineno, node.body[-1].end_lineno + 1))  # type: ignore[operator]


#: A call whose callee's name holds one of these words is a check (a function that only checks may call it).
_CHECK_WORDS = ("check", "validate", "refuse", "require", "ensure")


def _is_check_call(node: ast.expr) -> bool:
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
    return any(w in name.lower() for w in _CHECK_WORDS)


def _local(target: ast.expr) -> bool:
    if isinstance(target, (ast.Tuple, ast.List)):
        return all(_local(t) for t in target.elts)
    return isinstance(target, ast.Name)


def _only_checks(body: list[ast.stmt]) -> bool:
    """Statements that only check: ``assert``, ``raise``, local names assigned (what the checks test),
    ``if`` / ``for`` / ``while`` / ``with`` / ``try`` over such statements, calls of other checks, a bare
    ``return``; no value returned or yielded."""
    for stmt in body:
        if isinstance(stmt, (ast.Assert, ast.Raise, ast.Pass, ast.Continue, ast.Break)):
            continue
        if isinstance(stmt, ast.Return) and stmt.value is None:
            continue
        if isinstance(stmt, ast.Assign) and all(_local(t) for t in stmt.targets) and not _yields(stmt):
            continue
        if isinstance(stmt, (ast.AnnAssign, ast.AugAssign)) and _local(stmt.target) and not _yields(stmt):
            continue
        if isinstance(stmt, ast.Expr) and _is_check_call(stmt.value):
            continue
        if isinstance(stmt, (ast.If, ast.For, ast.While)) and _only_checks(stmt.body) and _only_checks(stmt.orelse):
            continue
        if isinstance(stmt, ast.With) and _only_checks(stmt.body):
            continue
        if isinstance(stmt, ast.Try) and all(
            _only_checks(b) for b in (stmt.body, stmt.orelse, stmt.finalbody, *[h.body for h in stmt.handlers])
        ):
            continue
        return False
    return True


def _yields(node: ast.AST) -> bool:
    return any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in ast.walk(node))


def _handed_back(value: ast.expr | None) -> bool:
    """A field's checker hands back the value it checked: a name, or a name converted (``float(v)``)."""
    if isinstance(value, ast.Name):
        return True
    return isinstance(value, ast.Call) and bool(value.args) and all(isinstance(a, ast.Name) for a in value.args)


def _checking_function(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    body = node.body[1:] if node.body and _is_docstring(node.body[0]) else node.body
    checks = any(
        isinstance(n, (ast.Raise, ast.Assert)) or (isinstance(n, ast.Expr) and _is_check_call(n.value))
        for stmt in body
        for n in ast.walk(stmt)
    )
    if body and isinstance(body[-1], ast.Return) and _handed_back(body[-1].value):
        body = body[:-1]
    return bool(body) and checks and _only_checks(body)


def checking_lines(tree: ast.Module) -> set[int]:
    """The numbers of the lines of the module that check (see the module's docstring), code or not."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _raises(node.body):
            lines |= _if_check(node)
        elif isinstance(node, ast.ExceptHandler) and _raises(node.body):
            lines |= _span(node)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if _checking_function(node):
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                lines |= set(range(start, node.end_lineno + 1))  # type: ignore[operator]
    return lines


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def measure(path: Path, name: str | None = None) -> Share:
    """The code lines and checking lines of one Python file."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    code = code_lines(source, tree)
    return Share(name or str(path), len(code), len(code & checking_lines(tree)))


def measure_all(root: Path) -> list[Share]:
    """Every ``.py`` file under ``root`` (or ``root`` itself, a file), by path."""
    paths = [root] if root.is_file() else sorted(root.rglob("*.py"))
    return [measure(p) for p in paths]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("paths", nargs="+", type=Path, help="folders or files to measure")
    ap.add_argument("--top", type=int, default=0, help="list only the N files with the largest share")
    args = ap.parse_args(argv)
    for root in args.paths:
        if not root.exists():
            print(f"checking_share: {root}: no such file or folder", file=sys.stderr)
            return 2
        shares = measure_all(root)
        listed = sorted(shares, key=lambda s: -s.percent)[: args.top] if args.top else shares
        for s in listed:
            print(s)
        total = Share(
            f"{root} (total, {len(shares)} files)", sum(s.code for s in shares), sum(s.checking for s in shares)
        )
        print(total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
