"""No function of occkit a reader cannot hold: none over 120 lines, none with more than 25 decision
points (tools/code_shape.py counts them; docs/design.md, "Conventions")."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _tool():
    spec = importlib.util.spec_from_file_location("code_shape", ROOT / "tools" / "code_shape.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["code_shape"] = module
    spec.loader.exec_module(module)
    return module


def test_no_function_over_the_limits():
    tool = _tool()
    bad = tool.over_limits()
    assert not bad, "\n".join(map(str, bad))


def test_the_count_is_the_one_documented(tmp_path):
    """The counter counts what its docstring says, on a function written here (so the limit test can fail)."""
    tool = _tool()
    src = """
def f(a, b):
    if a and b or a:          # if: 1, and/or: 2
        pass
    elif b:                   # 1
        pass
    for x in [y for y in a if y]:   # for: 1, comprehension for + if: 2
        while x:              # 1
            x = 1 if b else 2 # 1
    try:
        pass
    except ValueError:        # 1
        assert a              # 1
"""
    fn = ast.parse(src).body[0]
    assert tool.decision_points(fn) == 11
    long = "def g():\n" + "    x = 1\n" * 130
    (tmp_path / "m.py").write_text(long)
    assert [(f.name, f.lines) for f in tool.over_limits(tmp_path)] == [("g", 131)]
