"""Every document the code cites is in the repository: ``docs/<name>.md`` exists, and each
``docs/<name>.md §N`` it cites has a section ``## N.``."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_docs_the_code_cites_exist_with_their_sections():
    cited = re.compile(r"docs/([\w-]+\.md)(?: §(\d+))?")
    bad = []
    for path in (
        sorted((ROOT / "src").rglob("*.py"))
        + sorted((ROOT / "src").rglob("*.yaml"))
        + sorted((ROOT / "tests").rglob("*.py"))
    ):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for name, section in cited.findall(line):
                doc = ROOT / "docs" / name
                if not doc.is_file():
                    bad.append(f"{path.relative_to(ROOT)}:{n}: docs/{name} does not exist")
                elif section and not re.search(rf"^## {section}\. ", doc.read_text(encoding="utf-8"), re.M):
                    bad.append(f"{path.relative_to(ROOT)}:{n}: docs/{name} has no section {section}")
    assert not bad, "\n".join(bad)
