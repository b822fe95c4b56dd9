"""Print the option table of a method's config section (Markdown), for docs/methods.md.

    python tools/method_options.py radocc      # the fields of RadOccConfig with their defaults

Reads the dataclass in ``src/occkit/methods/<name>.py`` (a section's class, by its registered
name) with ``ast``: each field, its default and the first sentence of the docstring under it.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "occkit" / "methods"
#: a Sphinx role in a docstring (``:func:`~a.b.c```): the table shows the code alone (``~``: its last name)
ROLE = re.compile(r":(?:py:)?(?:mod|class|func|meth|attr|data|obj|exc|const|type):`(~?)([^`]*)`")


def option_table(module: Path, cls: str) -> str:
    """The Markdown table of dataclass ``cls`` in ``module``."""
    tree = ast.parse(module.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if not (isinstance(node, ast.ClassDef) and node.name == cls):
            continue
        rows = []
        for i, st in enumerate(node.body):
            if not (isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name)):
                continue
            default = ast.unparse(st.value) if st.value is not None else ""
            if default.startswith("field(default_factory="):
                default = default[len("field(default_factory=") :].rstrip(")") + "()"
            nxt = node.body[i + 1] if i + 1 < len(node.body) else None
            doc = ""
            if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
                doc = " ".join(nxt.value.value.split())
            doc = ROLE.sub(lambda m: f"`{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}`", doc)
            first = doc.split(". ")[0].rstrip(".")
            if len(first) > 160:
                first = first[:157] + "..."
            rows.append(f"| `{st.target.id}` | `{default}` | {first.replace('|', '/')} |")
        return "| option | default | what it is |\n|---|---|---|\n" + "\n".join(rows)
    raise SystemExit(f"{module}: no class {cls}")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    name = argv[0]
    module = SRC / f"{name}.py"
    if not module.is_file():
        print(f"{module}: no such method module", file=sys.stderr)
        return 2
    tree = ast.parse(module.read_text(encoding="utf-8"))
    configs = [n.name for n in tree.body if isinstance(n, ast.ClassDef) and n.name.endswith("Config")]
    print("\n\n".join(option_table(module, c) for c in configs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
