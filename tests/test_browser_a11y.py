"""Accessibility and weight of the built site, in a real browser (Debian's chromium, Playwright).

In: the built quick site (``built_site``), served on 127.0.0.1 by ``test_browser.site``.
Out: nothing; it checks that

- every page passes axe-core's rules (the accessibility engine, from npm) with no violation of
  impact "serious" or "critical", in the light colour scheme that the site opens in;
- the home page's total transfer (every request it makes: HTML, CSS, JS, fonts, images, the
  search index) stays within ``HOME_PAGE_BUDGET_BYTES``.

axe-core is installed by ``bash scripts/setup.sh --browser`` into the gitignored ``.browser-tools/``.
Like tests/test_browser.py, these tests are skipped with a reason when Playwright, chromium or
axe-core is missing, unless the environment variable CI is set, in which case they fail instead.

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q -m browser tests/test_browser_a11y.py -s
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
from test_browser import _is_local, _unavailable, _wait_rendered, site, site_pages  # noqa: F401 (site: fixture)

ROOT = Path(__file__).resolve().parents[1]
AXE_JS = ROOT / ".browser-tools" / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING_IMPACTS = ("serious", "critical")
# Measured on the quick site on 2026-12-02: 5,350,250 bytes (scripts 3.99 MB, of which mermaid.min.js
# is 3.57 MB; the search index 0.86 MB; images 0.20 MB; CSS 0.19 MB; HTML 57 KB; KaTeX fonts 56 KB).
# Budget: that x 1.25, rounded up to a tenth of a megabyte, so that a page grown by a quarter, or one
# more heavy library, fails here and gets looked at.
HOME_PAGE_BUDGET_BYTES = 6_700_000
SETTLE_TIMEOUT_S = 15
QUIET_S = 1.0
UNTYPESET_MATH = ".arithmatex:not([data-katex='done'])"  # as docs/assets/javascripts/katex-init.js marks it


@pytest.fixture(scope="module")
def axe_source() -> str:
    """axe-core's browser build; checked before ``site`` so a machine without it skips at once."""
    if not AXE_JS.is_file():
        _unavailable(f"{AXE_JS} is missing; bash scripts/setup.sh --browser installs axe-core from npm")
    return AXE_JS.read_text(encoding="utf-8")


def _describe(violation: dict) -> str:
    """One axe-core violation in a line: its rule, impact and help, and the first elements it names."""
    nodes = violation["nodes"]
    shown = "; ".join(f"{node['target']} {node['html'][:120]!r}" for node in nodes[:3])
    more = f" (+{len(nodes) - 3} more)" if len(nodes) > 3 else ""
    return f"{violation['id']} [{violation['impact']}] {violation['help']}: {shown}{more}"


@pytest.mark.browser
def test_no_serious_accessibility_violations(axe_source, site):
    page = site.new_page()
    found: dict[str, list[str]] = {}
    pages = site_pages(site.root)
    for rel in pages:
        page.goto(site.url + rel, wait_until="networkidle")
        _wait_rendered(page, site, rel)  # so that axe reads the diagrams' SVGs (test_browser.py checks they render)
        page.add_script_tag(content=axe_source)
        result = page.evaluate("() => axe.run(document, { resultTypes: ['violations'] })")
        blocking = [v for v in result["violations"] if v["impact"] in BLOCKING_IMPACTS]
        if blocking:
            found[rel or "(home)"] = [_describe(v) for v in blocking]
    page.close()
    assert len(pages) >= 20, f"only {len(pages)} pages in the sitemap"
    assert not found, "serious or critical accessibility violations (axe-core):\n" + "\n".join(
        f"  {where}:\n" + "\n".join(f"    - {what}" for what in problems) for where, problems in found.items()
    )


def home_page_transfer(site) -> tuple[int, Counter]:
    """Bytes the home page transfers in a fresh browser context (empty cache), in total and by resource type.

    Each request counts its response headers plus its body as sent (what crossed the wire).
    """
    context = site.context.browser.new_context(
        viewport={"width": 1280, "height": 900}, color_scheme="light", service_workers="block"
    )
    context.route(lambda url: not _is_local(url), lambda route: route.abort())
    started, finished, failed = [], [], []  # the search worker's requests included
    context.on("request", lambda request: started.append(request))
    context.on("requestfinished", lambda request: finished.append(request))
    context.on("requestfailed", lambda request: failed.append(request))
    page = context.new_page()
    page.goto(site.url, wait_until="networkidle")
    # Some requests start after the network went idle: KaTeX's fonts once the math is typeset,
    # then the favicon. Wait for the math and its fonts, then until no request has started for
    # QUIET_S and every started one has ended, so that every run counts the same requests.
    page.wait_for_function("selector => !document.querySelector(selector)", arg=UNTYPESET_MATH)
    page.evaluate("() => document.fonts.ready.then(() => true)")
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    seen, quiet_since = len(started), time.monotonic()
    while time.monotonic() < deadline:
        if len(started) != seen:
            seen, quiet_since = len(started), time.monotonic()
        elif len(finished) + len(failed) == seen and time.monotonic() - quiet_since >= QUIET_S:
            break
        page.wait_for_timeout(100)
    by_type: Counter = Counter()
    for request in finished:
        sizes = request.sizes()
        by_type[request.resource_type] += sizes["responseHeadersSize"] + sizes["responseBodySize"]
    context.close()
    return sum(by_type.values()), by_type


@pytest.mark.browser
def test_home_page_weight_within_budget(site):
    total, by_type = home_page_transfer(site)
    breakdown = ", ".join(f"{kind} {size:,}" for kind, size in by_type.most_common())
    print(f"\nhome page: {total:,} bytes transferred ({breakdown})")
    html_size = (site.root / "index.html").stat().st_size
    assert by_type["document"] >= html_size, f"the home page's own HTML was not counted: {breakdown}"
    assert by_type["script"] and by_type["stylesheet"], f"no scripts or stylesheets counted: {breakdown}"
    assert total <= HOME_PAGE_BUDGET_BYTES, (
        f"home page transfers {total:,} bytes, over its budget of {HOME_PAGE_BUDGET_BYTES:,}: {breakdown}"
    )
