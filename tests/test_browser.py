"""The built site in a real browser: Debian's chromium, driven by Playwright.

In: the built ``site/`` folder (the ``built_site`` fixture from ``tests/conftest.py``).
Out: nothing; it checks that every page loads without console errors or failed requests,
that mermaid diagrams and KaTeX math render, that search finds words, and that no request
ever leaves 127.0.0.1 (the site must work offline: no CDN, no web fonts).

Run only these tests with::

    .venv/bin/pytest -m browser tests/test_browser.py

They are skipped with a reason when Playwright or /usr/bin/chromium is missing, unless the
environment variable CI is set, in which case they fail instead.
"""

from __future__ import annotations

import functools
import os
import re
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOCAL_HOST = "127.0.0.1"
# URL schemes that never touch the network (inline data, in-page objects).
NON_NETWORK_SCHEMES = {"data", "blob", "about"}
RENDER_TIMEOUT_MS = 20_000

# mkdocs-material puts each rendered mermaid SVG in a *closed* shadow root, which no test can
# look into. Opening it (only inside this test browser) lets the test see the SVG itself.
OPEN_SHADOW_ROOTS = """
(() => {
  const attach = Element.prototype.attachShadow;
  Element.prototype.attachShadow = function (init) {
    return attach.call(this, Object.assign({}, init, { mode: "open" }));
  };
})();
"""


def _unavailable(reason: str):
    """Skip with ``reason``; fail instead when running under CI (``CI`` set)."""
    if os.environ.get("CI"):
        pytest.fail(f"browser test cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def _is_local(url: str) -> bool:
    """True when loading ``url`` cannot leave this machine's 127.0.0.1.

    >>> _is_local("http://127.0.0.1:8123/x.js"), _is_local("https://unpkg.com/mermaid@11")
    (True, False)
    """
    parts = urlsplit(url)
    return parts.scheme in NON_NETWORK_SCHEMES or parts.hostname == LOCAL_HOST


def site_pages(site: Path) -> list[str]:
    """Every page listed in ``site/sitemap.xml``, as a path relative to the site root ("" = home)."""
    sitemap = site / "sitemap.xml"
    if not sitemap.is_file():
        raise AssertionError(f"{sitemap} is missing: was the site built with mkdocs?")
    ns = {"sm": "http://www.sitemaps.org/schemas/sitemap/0.9"}
    locs = [el.text.strip() for el in ET.parse(sitemap).getroot().findall("sm:url/sm:loc", ns) if el.text]
    if not locs:
        raise AssertionError(f"{sitemap} lists no pages")
    paths = [urlsplit(loc).path for loc in locs]
    root = min(paths, key=len)  # the home page's path is the site root (site_url's path)
    if not all(p.startswith(root) for p in paths):
        raise AssertionError(f"{sitemap}: pages outside the site root {root!r}: {paths}")
    return sorted({p[len(root) :] for p in paths})


def page_file(site: Path, rel: str) -> Path:
    """The HTML file that serves page ``rel`` (directory URLs serve their index.html)."""
    path = site / rel
    return path / "index.html" if rel == "" or rel.endswith("/") else path


@dataclass
class Recorder:
    """Everything the browser reported, tagged with the page being visited at the time."""

    current: str = ""
    requests: list[tuple[str, str]] = field(default_factory=list)  # (page, url)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (page, what went wrong)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def problem(self, what: str) -> None:
        with self.lock:
            self.problems.append((self.current, what))

    def on_request(self, request) -> None:
        with self.lock:
            self.requests.append((self.current, request.url))

    def on_request_failed(self, request) -> None:
        # The favicon is fetched lazily and the browser cancels it (net::ERR_ABORTED) when the test
        # moves on to the next page: cancelled, not missing (a missing file is an HTTP 404 above).
        if request.url.endswith("/favicon.png") and "ERR_ABORTED" in (request.failure or ""):
            return
        self.problem(f"request failed: {request.url} ({request.failure})")

    def on_response(self, response) -> None:
        if response.status >= 400:
            self.problem(f"HTTP {response.status}: {response.url}")

    def on_console(self, message) -> None:
        if message.type == "error":
            self.problem(f"console error: {message.text} @ {message.location.get('url', '?')}")

    def on_page_error(self, error) -> None:
        self.problem(f"uncaught exception: {error}")

    def problems_at(self, where: str) -> list[str]:
        with self.lock:
            return [what for page, what in self.problems if page == where]

    def off_host(self) -> list[tuple[str, str]]:
        with self.lock:
            return [(page, url) for page, url in self.requests if not _is_local(url)]


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


@dataclass
class Site:
    """The built site, served on 127.0.0.1, and one browser context looking at it."""

    root: Path
    url: str  # ends with "/"
    context: object
    recorder: Recorder

    def new_page(self):
        page = self.context.new_page()
        page.on("console", self.recorder.on_console)
        page.on("pageerror", self.recorder.on_page_error)
        return page


@pytest.fixture(scope="module")
def site(request):
    """Serve ``built_site`` on a free port of 127.0.0.1 and open one chromium context on it.

    Playwright and chromium are checked first, so a machine without them skips at once
    instead of building the site for nothing.
    """
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _unavailable(f"the playwright package is not installed ({exc}); pip install playwright")
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing; apt-get install -y chromium")
    built_site: Path = request.getfixturevalue("built_site")

    handler = functools.partial(_QuietHandler, directory=str(built_site))
    server = ThreadingHTTPServer((LOCAL_HOST, 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="site-server", daemon=True)
    thread.start()
    url = f"http://{LOCAL_HOST}:{server.server_address[1]}/"
    try:
        with sync_playwright() as p:
            try:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            except PlaywrightError as exc:
                _unavailable(f"chromium at {CHROMIUM} did not start: {exc}")
            context = browser.new_context(
                viewport={"width": 1280, "height": 900},
                color_scheme="light",
                service_workers="block",
            )
            context.set_default_timeout(RENDER_TIMEOUT_MS)
            context.add_init_script(OPEN_SHADOW_ROOTS)
            recorder = Recorder()
            context.on("request", recorder.on_request)
            context.on("requestfailed", recorder.on_request_failed)
            context.on("response", recorder.on_response)
            # Whatever tries to leave 127.0.0.1 is recorded above, then stopped here, so an
            # offline machine fails fast instead of waiting on a connection that never comes.
            context.route(lambda u: not _is_local(u), lambda route: route.abort())
            yield Site(built_site, url, context, recorder)
            context.close()
            browser.close()
    finally:
        server.shutdown()
        server.server_close()


def _wait_rendered(page, site: Site, rel: str) -> None:
    """Wait for this page's mermaid diagrams and check its math; report what did not render."""
    html = page_file(site.root, rel).read_text(encoding="utf-8", errors="replace")
    diagrams = len(re.findall(r'<pre class="mermaid"', html))
    if diagrams:
        try:
            # material swaps each <pre class="mermaid"> for a <div class="mermaid"> holding the SVG
            page.wait_for_function(
                "n => [...document.querySelectorAll('div.mermaid')]"
                ".filter(d => d.shadowRoot && d.shadowRoot.querySelector('svg')).length >= n",
                arg=diagrams,
                timeout=RENDER_TIMEOUT_MS,
            )
        except Exception as exc:  # playwright's TimeoutError
            site.recorder.problem(f"{diagrams} mermaid diagram(s) did not render: {exc}")
    unrendered = page.locator(".arithmatex:not([data-katex='done'])").count()
    if unrendered:
        site.recorder.problem(f"{unrendered} math formula(s) not rendered by KaTeX")


@pytest.fixture(scope="module")
def walk(site: Site) -> dict[str, list[str]]:
    """Visit every page of the sitemap once, in one tab; return each page's problems."""
    pages = site_pages(site.root)
    page = site.new_page()
    for rel in pages:
        site.recorder.current = rel or "(home)"
        if not page_file(site.root, rel).is_file():
            site.recorder.problem(f"sitemap lists {rel!r} but {page_file(site.root, rel)} does not exist")
            continue
        # networkidle: late requests (the favicon) finish before the next page aborts them
        response = page.goto(site.url + rel, wait_until="networkidle")
        if response is None or not response.ok:
            site.recorder.problem(f"page answered {response and response.status}")
            continue
        _wait_rendered(page, site, rel)
    page.close()
    site.recorder.current = ""
    report: dict[str, list[str]] = {rel or "(home)": [] for rel in pages}
    for where, what in site.recorder.problems:
        report.setdefault(where, []).append(what)
    return report


@pytest.mark.browser
def test_every_page_loads_cleanly(walk):
    """No console error, uncaught exception, failed request, HTTP error or unrendered figure."""
    assert len(walk) >= 1
    bad = {page: problems for page, problems in walk.items() if problems}
    assert not bad, "pages with problems:\n" + "\n".join(
        f"  {page}:\n" + "\n".join(f"    - {p}" for p in problems) for page, problems in bad.items()
    )


@pytest.mark.browser
def test_home_mermaid_diagram_renders_as_svg(site: Site):
    page = site.new_page()
    where = site.recorder.current = "(home: mermaid)"
    page.goto(site.url, wait_until="load")
    svg = page.locator("div.mermaid svg").first
    svg.wait_for(state="visible")
    text = svg.text_content() or ""  # labels split over lines lose their spaces here
    for stage in ("mini-web", "MinHash", "tokenizer", "pretraining", "PPO", "DPO", "GRPO", "psychology"):
        assert stage in text, f"the home diagram's SVG does not show {stage!r}"
    assert page.locator("pre.mermaid").count() == 0, "a mermaid block is still shown as raw text"
    box = svg.bounding_box()
    assert box and box["width"] > 200 and box["height"] > 200, f"diagram drawn too small: {box}"
    page.close()
    assert not site.recorder.problems_at(where), site.recorder.problems_at(where)


@pytest.mark.browser
def test_home_math_rendered_by_katex(site: Site):
    page = site.new_page()
    where = site.recorder.current = "(home: katex)"
    page.goto(site.url, wait_until="load")
    assert page.locator(".arithmatex").count() >= 1, "the home page has no math to render"
    page.locator(".katex").first.wait_for(state="visible")
    assert page.locator(".arithmatex:not([data-katex='done'])").count() == 0
    # the rendered formula is laid out with KaTeX's own fonts, served by the site
    page.wait_for_function("() => document.fonts.check('16px KaTeX_Main')")
    page.close()
    assert not site.recorder.problems_at(where), site.recorder.problems_at(where)


@pytest.mark.browser
def test_search_finds_tokenizer(site: Site):
    page = site.new_page()
    where = site.recorder.current = "(home: search)"
    page.goto(site.url, wait_until="load")
    box = page.locator("input.md-search__input")
    box.click()
    box.press_sequentially("tokenizer", delay=30)
    results = page.locator(".md-search-result__item")
    results.first.wait_for(state="visible")
    assert results.count() >= 1
    assert "tokenizer" in (results.first.text_content() or "").lower()
    page.close()
    assert not site.recorder.problems_at(where), site.recorder.problems_at(where)


@pytest.mark.browser
def test_no_request_leaves_localhost(site: Site, walk):
    """Across every page visited (the walk runs first), all requests stayed on 127.0.0.1."""
    requested = site.recorder.requests
    assert requested, "no requests were recorded at all"
    assert any(url.endswith("mermaid.min.js") for _, url in requested), "mermaid was never loaded"
    off = site.recorder.off_host()
    assert not off, "requests that left 127.0.0.1:\n" + "\n".join(f"  {p}: {u}" for p, u in off)
