"""A dataset's class table has one home: no literal free id or class count in occkit's code outside
the formats' own modules and ``labels.py`` (issue 78). A default that is Occ3D-nuScenes' names it
(``occkit.labels.OCC3D_FREE``, ``OCC3D_NUM_CLASSES``), so that a reader can follow it to its table;
comments and docstrings may say the numbers."""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "occkit"
#: where a table's numbers live
HOMES = ("formats/", "labels.py")
#: a free id or a class count given as a number: a default, a keyword, a comparison with the free id
PATTERNS = [
    re.compile(r"\b(num_classes|free_index|free_class|free_id|free)\w*\s*(:\s*int\s*)?=\s*1[78]\b"),
    re.compile(r"[!=]=\s*17\b"),
    re.compile(r"OCC3D_CLASSES\[:\s*17\s*\]"),
]


def code_lines(path: Path) -> dict[int, str]:
    """Line number -> the line's code, comments and strings (docstrings included) blanked."""
    text = path.read_text(encoding="utf-8")
    out: dict[int, list[str]] = {}
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type in (tokenize.COMMENT, tokenize.STRING, tokenize.NL, tokenize.NEWLINE):
            continue
        if tok.type == getattr(tokenize, "FSTRING_START", None):
            continue
        out.setdefault(tok.start[0], []).append(tok.string)
    return {n: " ".join(parts).replace(" . ", ".").replace(" : ", ": ") for n, parts in out.items()}


def offending(path: Path) -> list[str]:
    where = path.relative_to(SRC.parent) if SRC.parent in path.parents else path
    found = []
    for n, code in code_lines(path).items():
        squeezed = re.sub(r"\s*([=!:,()\[\]])\s*", r"\1", code).replace("=", " = ").replace("! = ", "!= ")
        squeezed = squeezed.replace(" =  = ", " == ")
        for rx in PATTERNS:
            if rx.search(code) or rx.search(squeezed):
                found.append(f"{where}:{n}: {code.strip()}")
                break
    return found


def test_the_scan_finds_what_it_looks_for(tmp_path):
    sample = tmp_path / "m.py"
    sample.write_text(
        '"""free_index: int = 17 in a docstring is fine"""\n'
        "# num_classes=18 in a comment is fine\n"
        "def f(x, free_index: int = 17, num_classes=18):\n"
        "    return x != 17\n"
    )
    assert [line.split(":")[1] for line in offending(sample)] == ["3", "4"]


def test_no_literal_free_id_or_class_count_outside_the_formats():
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if any(rel == h or rel.startswith(h) for h in HOMES):
            continue
        bad += offending(path)
    assert not bad, "literal free ids or class counts (name the table's: occkit.labels):\n" + "\n".join(bad)
