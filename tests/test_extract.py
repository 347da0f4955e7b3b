"""HTML extraction: the article survives, the boilerplate around it does not; encodings, binary
bodies and broken markup are handled."""

from __future__ import annotations

import pytest

from llmkb.data.extract import (
    ExtractionError,
    benchmark_extraction,
    decode_html,
    extract_text,
    looks_binary,
)

METHODS = ["resiliparse", "trafilatura"]

ARTICLE = [
    (
        "The printing press changed how ideas travelled across Europe. Before it, every copy of a book had "
        "to be written out by hand, which made books rare and expensive. Within fifty years of its invention, "
        "presses in more than two hundred cities had produced millions of volumes."
    ),
    (
        "Historians still argue about how quickly literacy rose as a result. Some point to the surge of "
        "pamphlets during religious disputes, others to the slow spread of schools in the countryside."
    ),
    (
        "Printers also standardised spelling, because a single edition could reach thousands of readers who "
        "had learned to expect the same word to look the same way from one book to the next."
    ),
]

# Boilerplate, each with a phrase that must not survive extraction.
COOKIE = "We use cookies to improve your experience"
NAV = "Shop our store"
AD = "Buy cheap watches online today"
RELATED = "Ten facts about paper mills"
FOOTER = "All rights reserved"


def semantic_page(paragraphs=ARTICLE, title="The printing press", charset="utf-8") -> str:
    """A typical modern page: HTML5 landmarks (header/nav/main/aside/footer) around one article."""
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    return f"""<!DOCTYPE html><html><head><meta charset="{charset}"><title>{title}</title>
<style>.banner {{ position: fixed }}</style><script>window.track = "page view";</script></head><body>
<div id="cookie-banner" class="cookie-consent">{COOKIE}. Accept all or manage preferences.</div>
<header><nav class="navbar"><ul><li><a href="/">Home</a></li><li><a href="/news">News and updates</a></li>
<li><a href="/shop">{NAV}</a></li><li><a href="/about">About our company</a></li></ul></nav></header>
<aside class="sidebar ad-banner"><a href="/ads">{AD} at the best prices</a></aside>
<main><article><h1>{title}</h1>
{body}
</article></main>
<div class="related-links"><h3>Related</h3><ul><li><a href="/a">{RELATED}</a></li>
<li><a href="/b">Gutenberg's workshop revisited</a></li><li><a href="/c">Why ink recipes were secret</a></li></ul></div>
<footer class="site-footer"><p>Copyright 2026 Example Media Group. {FOOTER}.</p>
<a href="/privacy">Privacy policy</a> | <a href="/terms">Terms of use</a></footer>
</body></html>"""


def div_soup_page() -> str:
    """An older style of page: only <div>s, whose class names are the only hint of what they hold."""
    body = "".join(f"<p>{p}</p>" for p in ARTICLE)
    return f"""<html><head><title>Printing</title></head><body>
<div class="cookie-notice" id="gdpr">{COOKIE}. By continuing you agree to our cookie policy. \
<button>Accept</button></div>
<div class="top-menu"><a href="/">Home</a> <a href="/world">World</a> <a href="/sport">Sport</a></div>
<div class="ad advertisement sponsored">Sponsored: {AD} with this one weird trick</div>
<div class="content"><div class="post-body">{body}</div></div>
<div class="share-buttons"><a href="#">Share on Facebook</a> <a href="#">Tweet this</a></div>
<div class="footer">Contact us | Careers | Advertise with us | Sitemap | {FOOTER}</div>
</body></html>"""


@pytest.mark.parametrize("method", METHODS)
def test_article_kept_boilerplate_dropped_on_a_semantic_page(method):
    text = extract_text(semantic_page().encode(), "text/html; charset=utf-8", method=method)
    for paragraph in ARTICLE:
        assert paragraph in text  # each paragraph intact, on its own line
    for boilerplate in (COOKIE, NAV, AD, RELATED, FOOTER, "window.track", "position: fixed"):
        assert boilerplate not in text, f"{method} kept {boilerplate!r}"


@pytest.mark.parametrize("method", METHODS)
def test_div_soup_page(method):
    text = extract_text(div_soup_page().encode(), None, method=method)
    assert all(p in text for p in ARTICLE)
    for boilerplate in (COOKIE, AD, FOOTER):  # both drop the cookie notice, the ad and the footer
        assert boilerplate not in text, f"{method} kept {boilerplate!r}"
    if method == "trafilatura":  # trafilatura drops the menu and share links too
        assert "Sport" not in text and "Tweet this" not in text
    else:  # resiliparse keeps a menu and share links whose class names it does not know;
        # they are short lines without a full stop, which the quality filters remove later
        assert "Home World Sport" in text


def test_paragraphs_are_separate_lines():
    text = extract_text(semantic_page().encode(), method="resiliparse")
    lines = [line for line in text.splitlines() if line]
    assert lines == ["The printing press", *ARTICLE]


@pytest.mark.parametrize("method", METHODS)
def test_lying_header_still_decodes(method):
    paragraphs = [p.replace("Europe", "Europe’s café owners") for p in ARTICLE]  # ’ and é in cp1252
    body = semantic_page(paragraphs, charset="windows-1252").encode("cp1252")
    text = extract_text(body, "text/html; charset=utf-8", method=method)  # the header says utf-8: wrong
    assert "Europe’s café owners" in text and "\ufffd" not in text


def test_decode_order_header_meta_detection():
    html = "<html><head><meta charset='windows-1252'></head><body><p>naïve “quotes”</p></body></html>"
    assert decode_html(html.encode("cp1252"), None) == (html, "cp1252")  # from <meta>
    assert decode_html(html.encode("utf-8"), None) == (html, "utf-8")  # meta says cp1252, bytes are UTF-8
    assert decode_html(html.encode("utf-8"), "text/html; charset=UTF-8")[1] == "utf-8"
    assert decode_html(b"<p>plain</p>", "text/html; charset=no-such-codec") == ("<p>plain</p>", "utf-8")
    assert decode_html("\ufeff<p>bom</p>".encode("utf-8"), "text/html; charset=latin-1") == ("<p>bom</p>", "utf-8-sig")
    cyrillic = "<p>" + "Съешь же ещё этих мягких французских булок, да выпей чаю. " * 3 + "</p>"
    assert decode_html(cyrillic.encode("cp1251"), None) == (cyrillic, "cp1251")  # enough bytes to detect


def test_binary_bodies_are_refused():
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    assert looks_binary(png) and looks_binary(b"%PDF-1.7\n...") and looks_binary(bytes(range(32)) * 10)
    assert not looks_binary(semantic_page().encode()) and not looks_binary("<p>hi</p>".encode("utf-16"))
    for method in METHODS:
        with pytest.raises(ExtractionError, match="binary"):
            extract_text(png, "text/html", method=method)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<",
        b"<html><body><p>unclosed <b>bold <i>italic</p></div></div></table>",
        b"<<<>>>&&&;;</p></p><!-- never closed",
        b"<html>" + b"<div>" * 3000 + b"deep" + b"</div>" * 3000,
        b"<html><head><script>var a = '<p>not content</p>';</script></head><body></body></html>",
        b"\xff\xfe\xfd" * 100,
    ],
    ids=["empty", "lone-bracket", "unclosed-tags", "garbage", "deep-nesting", "script-only", "high-bytes"],
)
def test_malformed_html_never_crashes(method, body):
    try:
        text = extract_text(body, "text/html", method=method)
    except ExtractionError as e:
        assert str(e) in {"empty", "binary", "undecodable", "unparseable"}
    else:
        assert text.strip() and "not content" not in text


def test_empty_page_reason_and_unknown_method():
    with pytest.raises(ExtractionError, match="empty"):
        extract_text(b"<html><body><nav><a href='/'>Home</a></nav></body></html>")
    with pytest.raises(ValueError, match="unknown extraction method"):
        extract_text(b"<p>x</p>", method="regex")


def test_benchmark_reports_both_methods():
    result = benchmark_extraction([semantic_page().encode(), div_soup_page().encode(), b"\x89PNG\r\n\x1a\n"])
    assert set(result) == set(METHODS)
    for row in result.values():
        assert row["pages"] == 3 and row["failed"] == 1 and row["pages_per_s"] > 0
        assert row["avg_chars"] >= sum(map(len, ARTICLE))
