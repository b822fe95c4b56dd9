"""MkDocs hooks of the documentation site (mkdocs.yml ``hooks:``).

- ``<!-- occkit:cli-reference -->`` in a page becomes the command-line reference generated from occkit's
  argument parsers (tools/cli_reference.py), so the site and ``occkit VERB --help`` cannot disagree.
- ``<!-- occkit:include FILE -->`` becomes a repository file outside docs/ (README.md, BENCHMARKS.md), its links
  rewritten for the site: ``docs/X`` becomes ``X``; a link to another repository file becomes its path in code
  (the site holds docs/ only and is read offline). ``<!-- occkit:include FILE demote -->`` also moves its
  headings one level down (a file shown inside a page); ``<!-- occkit:include FILE code=LANG -->`` shows the
  file whole as a code block (the examples under examples/, as the tests run them).
- A page's link to the repository's README.md (``../README.md#anchor``, as it reads on GitHub) goes to the home
  page, which is that README.
- Sphinx roles in the docstrings the API reference renders (``:class:`~occkit.x.Y```, which Markdown shows as
  ``:class:`` before the code) become the code alone, ``~`` keeping the last name as Sphinx does: every page's
  HTML, code blocks untouched (a role there is part of the code).
"""

from __future__ import annotations

import importlib.util
import posixpath
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INCLUDE = re.compile(r"<!-- occkit:include (\S+)( demote| code=\w+)? -->")
LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")
#: a Sphinx role before an inline code span in rendered HTML: ``:func:<code>~a.b.c</code>``
ROLE_NAMES = "mod|class|func|meth|attr|data|obj|exc|const|type"
ROLE = re.compile(rf"(?<![\w:]):(?:py:)?(?:{ROLE_NAMES}):\s*<code>(~?)([^<]*)</code>")


def _cli_reference() -> str:
    spec = importlib.util.spec_from_file_location("occkit_cli_reference", ROOT / "tools" / "cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.render()


def site_links(text: str, page_dir: str = "") -> str:
    """``text``'s links, written for the repository root, rewritten for a page in ``docs/page_dir``."""

    def one(m: re.Match) -> str:
        bang, label, target = m.groups()
        if re.match(r"[a-z]+:|#", target):
            return m.group(0)
        path, _, anchor = target.partition("#")
        if path.startswith("docs/"):
            rel = Path(path[5:])
            up = "../" * len(Path(page_dir).parts) if page_dir else ""
            return f"{bang}[{label}]({up}{rel.as_posix()}{'#' + anchor if anchor else ''})"
        if path == "BENCHMARKS.md":
            return f"[{label}]({'../' * len(Path(page_dir).parts)}benchmarks.md{'#' + anchor if anchor else ''})"
        if path == "README.md":
            return f"[{label}]({'../' * len(Path(page_dir).parts)}index.md)"
        return label if label.strip("`") == path else f"{label} (`{path}`)"

    return LINK.sub(one, text)


def readme_links(text: str, page_dir: str = "") -> str:
    """``text``'s links to the repository's README.md from a page in ``docs/page_dir`` (``../README.md#x`` from
    docs/), rewritten to the site's home page, which shows that README (``index.md#x``)."""

    def one(m: re.Match) -> str:
        bang, label, target = m.groups()
        path, _, anchor = target.partition("#")
        if re.match(r"[a-z]+:", target) or not path.endswith("README.md"):
            return m.group(0)
        if posixpath.normpath(posixpath.join("docs", page_dir, path)) != "README.md":
            return m.group(0)
        up = "../" * len(Path(page_dir).parts) if page_dir else ""
        return f"{bang}[{label}]({up}index.md{'#' + anchor if anchor else ''})"

    return LINK.sub(one, text)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 - MkDocs' signature
    if "<!-- occkit:cli-reference -->" in markdown:
        markdown = markdown.replace("<!-- occkit:cli-reference -->", _cli_reference())
    parent = Path(page.file.src_path).parent
    page_dir = "" if str(parent) == "." else parent.as_posix()
    markdown = readme_links(markdown, page_dir)

    def include(m: re.Match) -> str:
        text = (ROOT / m.group(1)).read_text(encoding="utf-8")
        mode = (m.group(2) or "").strip()
        if mode.startswith("code="):
            return f'```{mode[5:]} title="{m.group(1)}"\n{text.rstrip()}\n```'
        if mode == "demote":
            text = re.sub(r"^(#+) ", r"#\1 ", text, flags=re.M)
        return site_links(text, page_dir)

    return INCLUDE.sub(include, markdown)


def drop_roles(html: str) -> str:
    """``html`` with each Sphinx role before a code span dropped (``:mod:<code>occkit.x</code>`` -> the code;
    ``~occkit.x.Y`` -> ``Y``)."""

    def one(m: re.Match) -> str:
        tilde, target = m.groups()
        return f"<code>{target.rsplit('.', 1)[-1] if tilde else target}</code>"

    return ROLE.sub(one, html)


def on_page_content(html: str, page, config, files) -> str:  # noqa: ARG001 - MkDocs' signature
    return drop_roles(html)
