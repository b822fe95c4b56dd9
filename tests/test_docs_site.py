"""The documentation site (mkdocs.yml, docs/): it builds with no warning, every link, image and anchor of the
built pages resolves, nothing is fetched from another host when a page is viewed, the command-line reference
holds every option of every command, and the API reference every public name of occkit.formats, occkit.metrics
and occkit.methods with its docstring.

The site is built once per run (about 20 s; ``mkdocs build --strict``), or read from ``OCCKIT_DOCS_SITE`` where
CI built it already. Skipped where the docs extra is not installed (``pip install -e '.[docs]'``); the browser
check also where Chromium is absent (Debian: ``apt-get install chromium``)."""

from __future__ import annotations

import html
import importlib
import inspect
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")
pytest.importorskip("material", reason="the docs extra is not installed: pip install -e '.[docs]'")
pytest.importorskip("mkdocstrings", reason="the docs extra is not installed: pip install -e '.[docs]'")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    given = os.environ.get("OCCKIT_DOCS_SITE")
    if given:
        out = Path(given)
        assert (out / "index.html").is_file(), f"OCCKIT_DOCS_SITE={given}: no built site there"
        return out
    out = tmp_path_factory.mktemp("docs") / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0, f"mkdocs build --strict failed:\n{r.stdout}\n{r.stderr}"
    return out


class _Page(HTMLParser):
    """The ids, links (a href) and resources (img src, script src, link href) of one HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.resources: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("name"):
            self.ids.add(a["name"])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag in ("img", "script", "source", "iframe") and a.get("src"):
            self.resources.append(a["src"])
        if tag == "link" and a.get("href"):
            self.resources.append(a["href"])

    def handle_data(self, data):
        self.text.append(data)


def _parse(path: Path) -> _Page:
    p = _Page()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def _html(site: Path) -> list[Path]:
    """The site's pages, but 404.html: a web server's error page, its links absolute from the server's root."""
    return [p for p in sorted(site.rglob("*.html")) if p.relative_to(site) != Path("404.html")]


def _pages(site: Path) -> dict[Path, _Page]:
    return {p: _parse(p) for p in _html(site)}


def _external(url: str) -> bool:
    return bool(re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:", url)) or url.startswith("//")


def test_every_link_image_and_anchor_of_the_built_site_resolves(site):
    pages = _pages(site)
    bad = []
    for path, page in pages.items():
        where = path.relative_to(site)
        for url in page.links + page.resources:
            if _external(url):
                continue
            target, _, anchor = urllib.parse.unquote(url).partition("#")
            dest = (path.parent / target).resolve() if target else path
            if target.endswith("/"):
                dest = dest / "index.html"
            if not dest.exists():
                bad.append(f"{where}: {url}: no such file")
            elif anchor and dest.suffix == ".html":
                ids = pages[dest].ids if dest in pages else _parse(dest).ids
                if anchor not in ids:
                    bad.append(f"{where}: {url}: no anchor #{anchor}")
    assert not bad, "\n".join(bad[:50])


def test_nothing_is_fetched_from_another_host(site):
    """Offline: no script, style sheet, font or image from another host (links to other sites may stay)."""
    bad = []
    for path, page in _pages(site).items():
        bad += [f"{path.relative_to(site)}: {u}" for u in page.resources if _external(u) and not u.startswith("data:")]
        text = path.read_text(encoding="utf-8")
        bad += [f"{path.relative_to(site)}: {m}" for m in re.findall(r"@import\s+url\([\"']?https?://[^)]+", text)]
    for css in site.rglob("*.css"):
        bad += [f"{css.relative_to(site)}: {m}" for m in re.findall(r"url\([\"']?https?://[^)]+\)", css.read_text())]
    assert not bad, "\n".join(bad[:50])


def _cli_reference_module():
    spec = importlib.util.spec_from_file_location("occkit_cli_reference", ROOT / "tools" / "cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cli_reference_holds_every_option_of_every_command(site):
    ref = _cli_reference_module()
    text = html.unescape(" ".join(_parse(site / "reference" / "cli.html").text))
    missing = []
    for name, parser in ref.commands():
        if f"usage: {name}" not in text:
            missing.append(f"{name}: no section")
        for action in parser._actions:
            for flag in action.option_strings:
                if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text):
                    missing.append(f"{name} {flag}")
            for choice in action.choices or () if action.option_strings else ():
                if str(choice) not in text:
                    missing.append(f"{name} {action.option_strings[0]} {choice}")
    assert not missing, "not in the site's command-line reference:\n" + "\n".join(missing)


class _InTables(HTMLParser):
    """The text of a page's tables (the reference's index of the verbs, not the --help blocks below it)."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.depth += tag == "table"

    def handle_endtag(self, tag):
        self.depth -= tag == "table"

    def handle_data(self, data):
        if self.depth:
            self.text.append(data)


def test_the_cli_reference_table_shows_each_command_line_as_its_help_says(site):
    """The index of the verbs shows each one's line whole: ``PRIORS/<scene>/<frame>/<CAM>.npz`` is no HTML tag."""
    ref = _cli_reference_module()
    table = _InTables()
    table.feed((site / "reference" / "cli.html").read_text(encoding="utf-8"))
    text = " ".join("".join(table.text).split())
    cmds = ref.commands()
    parents = dict(cmds)
    missing = []
    for name, p in cmds[1:]:
        one = " ".join(ref.summary(p, parents.get(name.rsplit(" ", 1)[0])).split())
        if one not in text:
            missing.append(f"{name}: {one}")
    assert any("<scene>" in ref.summary(p) for _, p in cmds), "no command line with a <placeholder> left to check"
    assert not missing, "not shown whole in the reference's table:\n" + "\n".join(missing)


@pytest.mark.parametrize("text", ["write PRIORS/<scene>/<frame>/<CAM>.npz", "a *b* _c_ `d` [e](f) g|h \\ i & j<1.25"])
def test_a_table_cell_of_the_cli_reference_reads_as_its_text(text):
    import markdown

    ref = _cli_reference_module()
    page = _Page()
    page.feed(markdown.markdown(f"| a |\n|---|\n| {ref.table_cell(text)} |", extensions=["tables"]))
    assert "".join(page.text).strip().endswith(text)


class _Prose(HTMLParser):
    """A page's text outside code blocks, scripts and styles (where a role would be part of the code)."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.depth += tag in ("pre", "script", "style")

    def handle_endtag(self, tag):
        self.depth -= tag in ("pre", "script", "style")

    def handle_data(self, data):
        if not self.depth:
            self.text.append(data)


SPHINX_ROLE = re.compile(r"(?<![\w:]):(?:py:)?(?:mod|class|func|meth|attr|data|obj|exc|const|type):(?=[`\w.~])")


def test_no_page_shows_a_raw_sphinx_role(site):
    """``:class:`X``` in a docstring or a table reads as the code ``X`` on the site (tools/docs_hooks.py), never as
    a raw role."""
    bad = []
    for path in _html(site):
        p = _Prose()
        p.feed(path.read_text(encoding="utf-8"))
        text = "".join(p.text)
        bad += [
            f"{path.relative_to(site)}: ...{text[max(m.start() - 40, 0) : m.end() + 40]}..."
            for m in SPHINX_ROLE.finditer(text)
        ]
    assert not bad, f"{len(bad)} raw role(s):\n" + "\n".join(bad[:30])


def test_a_role_becomes_its_code():
    spec = importlib.util.spec_from_file_location("occkit_docs_hooks", ROOT / "tools" / "docs_hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    src = "see :class:<code>~occkit.a.B</code>, :mod:<code>occkit.c</code> and <pre><code>:func:`f`</code></pre>"
    assert hooks.drop_roles(src) == "see <code>B</code>, <code>occkit.c</code> and <pre><code>:func:`f`</code></pre>"


def _words(s: str) -> str:
    """``s`` as plain words: Sphinx roles (``:class:``) and punctuation dropped, as the page and the docstring
    show them alike."""
    return " ".join(re.sub(r"[^0-9A-Za-z]+", " ", re.sub(r":\w+:", " ", s)).split())


def _public_names() -> list[tuple[str, object]]:
    """``(qualified name as the API page shows it, object)`` of every public name of occkit.formats and
    occkit.metrics (their ``__all__``) and of each module of occkit.methods (its classes and functions)."""
    import pkgutil

    out = []
    for pkg in ("occkit.formats", "occkit.metrics"):
        mod = importlib.import_module(pkg)
        out += [(f"{pkg}.{n}", getattr(mod, n)) for n in mod.__all__]
    methods = importlib.import_module("occkit.methods")
    for info in pkgutil.iter_modules(methods.__path__):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"occkit.methods.{info.name}")
        for n, obj in vars(mod).items():
            if n.startswith("_") or not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            if getattr(obj, "__module__", None) == mod.__name__:
                out.append((f"{mod.__name__}.{n}", obj))
    return out


def test_the_api_reference_holds_every_public_name_with_its_docstring(site):
    page = _parse(site / "reference" / "api.html")
    text = _words(html.unescape(" ".join(page.text)))
    missing = []
    for qualname, obj in _public_names():
        if qualname not in page.ids:
            missing.append(f"{qualname}: not in the API reference")
            continue
        doc = inspect.getdoc(obj) if (inspect.isclass(obj) or inspect.isfunction(obj)) else None
        own = doc and (obj.__doc__ is not None) and not (inspect.isclass(obj) and obj.__doc__ == type.__doc__)
        if own:
            first = _words(doc.split("\n\n")[0])
            head = " ".join(first.split()[:6])
            if head and head not in text:
                missing.append(f"{qualname}: its docstring ({head!r}...) is not shown")
    assert len(_public_names()) > 50
    assert not missing, "\n".join(missing)


# ---------------------------------------------------------------------------------------------------------------
# The same site in a browser: headless Chromium opens every page from disk, and the page's own DOM says which
# images did not load, which links point at a missing page or anchor, and which resources came from another host.

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")

_PAGE_REPORT = """
(() => {
  const imgs = [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src);
  const links = [...document.querySelectorAll('a[href]')].map(a => a.href).filter(h => h.startsWith('file:'));
  const ids = [...document.querySelectorAll('[id]')].map(e => e.id)
    .concat([...document.querySelectorAll('a[name]')].map(a => a.name));
  const remote = performance.getEntriesByType('resource').map(e => e.name).filter(u => /^https?:/.test(u));
  return JSON.stringify({imgs, links, ids, remote, ready: document.readyState});
})()
"""


class _Browser:
    """Headless Chromium driven over its DevTools protocol (as tests/viz/test_viewer_browser.py does)."""

    def __init__(self) -> None:
        from websockets.sync.client import connect

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.profile = tempfile.mkdtemp(prefix="occkit-docs-chromium-")
        self.proc = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--no-first-run",
                "--disable-gpu",
                f"--remote-debugging-port={port}",
                f"--user-data-dir={self.profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=2) as r:
                    tabs = json.load(r)
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.close()
                    pytest.fail("Chromium did not start its DevTools endpoint within 60 s")
                time.sleep(0.3)
        page = next(t for t in tabs if t["type"] == "page")
        self.ws = connect(page["webSocketDebuggerUrl"], max_size=2**28, open_timeout=30)
        self.n = 0

    def call(self, method: str, timeout: float = 60.0, **params):
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            m = json.loads(self.ws.recv(timeout=max(deadline - time.monotonic(), 0.01)))
            if m.get("id") == self.n:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m["result"]

    def report(self, url: str, timeout: float = 60.0) -> dict:
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while True:
            r = self.call("Runtime.evaluate", expression=_PAGE_REPORT, returnByValue=True)
            rep = json.loads(r["result"]["value"])
            if rep["ready"] == "complete" or time.monotonic() > deadline:
                return rep
            time.sleep(0.2)

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:
            pass
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium)")
def test_the_site_in_a_browser_has_no_broken_link_image_or_anchor(site):
    pytest.importorskip("websockets", reason="the browser check drives Chromium through websockets")
    browser = _Browser()
    try:
        reports = {p.resolve().as_uri(): browser.report(p.resolve().as_uri()) for p in _html(site)}
    finally:
        browser.close()
    bad = []
    for url, rep in reports.items():
        where = url.rsplit("/site/", 1)[-1]
        bad += [f"{where}: image not loaded: {src}" for src in rep["imgs"]]
        bad += [f"{where}: fetched from another host: {u}" for u in rep["remote"]]
        for link in rep["links"]:
            target, _, anchor = link.partition("#")
            path = Path(urllib.parse.unquote(urllib.parse.urlparse(target).path))
            if target.endswith("/"):
                target, path = target + "index.html", path / "index.html"
            if not path.exists():
                bad.append(f"{where}: link to a missing page: {link}")
            elif anchor and target in reports and urllib.parse.unquote(anchor) not in reports[target]["ids"]:
                bad.append(f"{where}: link to a missing anchor: {link}")
    assert len(reports) > 20
    assert not bad, "\n".join(bad[:50])


def test_every_page_links_the_search_index_shim_and_the_wide_content_styles(site):
    """Search from disk needs the inlined index (plugin offline: search/search_index.js) and the Web Worker shim
    kept in docs/javascripts (browsers refuse workers on file://); wide tables and code scroll inside the page by
    docs/stylesheets/occkit.css."""
    assert (site / "search" / "search_index.js").read_text(encoding="utf-8").startswith("var __index = ")
    bad = []
    for path, page in _pages(site).items():
        names = {urllib.parse.urlparse(u).path.rsplit("/", 1)[-1] for u in page.resources}
        bad += [f"{path.relative_to(site)}: no {n}" for n in ("iframe-worker-shim.js", "occkit.css") if n not in names]
    assert not bad, "\n".join(bad[:20])


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium)")
def test_search_works_on_the_site_opened_from_disk(site):
    pytest.importorskip("websockets", reason="the browser check drives Chromium through websockets")
    browser = _Browser()
    try:
        browser.report((site / "index.html").resolve().as_uri())
        ask = """(() => { document.querySelector('label[for=__search]').click();
          const i = document.querySelector('input.md-search__input'); i.focus(); i.value = 'RayIoU';
          i.dispatchEvent(new Event('input', {bubbles: true}));
          i.dispatchEvent(new KeyboardEvent('keyup', {key: 'U', bubbles: true})); })()"""
        browser.call("Runtime.evaluate", expression=ask)
        found = {"links": [], "meta": ""}
        deadline = time.monotonic() + 90  # the index of every page is built in the worker first
        while time.monotonic() < deadline and not found["links"]:
            time.sleep(0.5)
            r = browser.call(
                "Runtime.evaluate",
                expression="JSON.stringify({links: [...document.querySelectorAll('.md-search-result__item a')]"
                ".map(a => a.href), meta: (document.querySelector('.md-search-result__meta') || {}).textContent})",
                returnByValue=True,
            )
            found = json.loads(r["result"]["value"])
    finally:
        browser.close()
    assert found["links"], f"no search result from disk: {' '.join(found['meta'].split())!r}"
    for link in found["links"]:
        assert link.startswith("file:") and Path(urllib.parse.urlparse(link).path).is_file(), link


_CUT = """
(() => {
  const cut = [];
  for (const el of document.querySelectorAll('.md-content table, .md-content pre > code')) {
    let box = el.parentElement, scrolls = ['auto', 'scroll'].includes(getComputedStyle(el).overflowX);
    while (!scrolls && box && box !== document.body) {  // the nearest box that clips it sideways
      const ox = getComputedStyle(box).overflowX;
      if (ox !== 'visible') { scrolls = ['auto', 'scroll'].includes(ox); break; }
      box = box.parentElement;
    }
    const right = el.getBoundingClientRect().right, edge = document.documentElement.clientWidth;
    if ((el.scrollWidth > el.clientWidth + 1 || right > edge + 1) && !scrolls) cut.push(el.tagName + ' ' + right);
  }
  return JSON.stringify({cut, page: document.documentElement.scrollWidth - document.documentElement.clientWidth});
})()
"""


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium)")
def test_wide_tables_and_code_scroll_inside_a_narrow_page(site):
    """At 800 px, the widest pages' tables and code lines are inside a box that scrolls sideways: none runs past
    the page's edge or is cut off, and the page itself does not scroll sideways."""
    pytest.importorskip("websockets", reason="the browser check drives Chromium through websockets")
    browser = _Browser()
    bad = []
    try:
        browser.call("Emulation.setDeviceMetricsOverride", width=800, height=900, deviceScaleFactor=1, mobile=False)
        for name in ("index.html", "commands.html", "methods.html", "reference/cli.html", "data.html"):
            browser.report((site / name).resolve().as_uri())
            r = json.loads(browser.call("Runtime.evaluate", expression=_CUT, returnByValue=True)["result"]["value"])
            bad += [f"{name}: cut: {c}" for c in r["cut"]] + ([f"{name}: scrolls sideways"] if r["page"] > 0 else [])
    finally:
        browser.close()
    assert not bad, "\n".join(bad[:30])
