"""tools/checking_share.py counts what its docstring says: code lines (no blank, comment or docstring line)
and, among them, the lines that check input (docs/design.md, "Schemas of the files occkit reads")."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SOURCE = '''"""A module's docstring: not code."""

import math


def area(w, h):
    """A function's docstring."""
    # a comment: not code
    if w < 0:
        raise ValueError("w")
    return w * h


def check_size(w):
    if not math.isfinite(w):
        raise ValueError("not finite")
    assert w > 0


def number(v):
    ok = isinstance(v, (int, float))
    if not ok:
        raise TypeError(v)
    return float(v)


def read(path):
    try:
        return open(path).read()
    except OSError as e:
        raise ValueError(path) from e
    finally:
        pass


def fallback(v):
    if v is None:
        return 0
    return v
'''


def _tool():
    spec = importlib.util.spec_from_file_location("checking_share", ROOT / "tools" / "checking_share.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["checking_share"] = module
    spec.loader.exec_module(module)
    return module


def test_the_count_is_the_one_documented(tmp_path):
    f = tmp_path / "m.py"
    f.write_text(SOURCE)
    share = _tool().measure(f)
    lines = SOURCE.splitlines()
    code = [i for i, s in enumerate(lines, 1) if s.strip() and not s.strip().startswith(("#", '"""'))]
    assert share.code == len(code) == 25
    # area: the if and its raise (2; it computes what it returns); check_size: the whole function (4);
    # number: the whole function, a field's checker handing back its value (5); read: the re-raising
    # handler (2); fallback: nothing
    assert share.checking == 2 + 4 + 5 + 2
    assert f"{share.checking} of {share.code} code lines check" in str(share)


def test_a_folder_is_measured_file_by_file_and_in_total(tmp_path, capsys):
    (tmp_path / "a.py").write_text(SOURCE)
    (tmp_path / "b.py").write_text("x = 1\n")
    assert _tool().main([str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == f"{tmp_path} (total, 2 files): 13 of 26 code lines check (50.0 %)", out
    assert _tool().main([str(tmp_path / "nothing")]) == 2
