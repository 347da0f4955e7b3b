"""HTML bytes -> main text. In: a response body and its Content-Type header. Out: plain text.

Three things stand between a crawled page and text a model can learn from:

1. **Is it text at all?** :func:`looks_binary` rejects images, archives and PDFs served with the
   wrong type by looking at the first kilobyte.
2. **Which encoding?** :func:`decode_html` trusts, in order, the HTTP header, the page's own
   ``<meta charset>``, then the bytes themselves; a declaration that the bytes contradict (a
   header that says UTF-8 in front of Windows-1252 bytes, a common mistake) is skipped.
3. **Which part is the article?** :func:`extract_text` keeps the main content and drops menus,
   footers, cookie banners, ads and link lists, with one of two extractors:

   * ``"resiliparse"`` (the default): ``extract_plain_text(main_content=True)``, a C++ DOM walk
     with class/id heuristics; fast.
   * ``"trafilatura"``: the extractor FineWeb used, called as FineWeb's datatrove recipe calls it
     (``favor_precision=True``, no comments); slower, more careful about what counts as content.
     We turn its cross-page deduplication off so one page's result never depends on the pages
     seen before it. It never touches the network when given a string.

Failures raise :class:`ExtractionError` whose message is a short reason (``binary``,
``undecodable``, ``unparseable``, ``empty``); the data stage records it as the drop reason.
"""

from __future__ import annotations

import codecs
import encodings
import re
import time

#: Bytes that begin common non-text formats (PDF, PNG, JPEG, GIF, ZIP, gzip, WebP/RIFF).
BINARY_MAGIC = (b"%PDF-", b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"PK\x03\x04", b"\x1f\x8b", b"RIFF")

#: Labels browsers read as Windows-1252 (WHATWG encoding standard): pages declaring latin-1 or
#: ASCII are nearly always cp1252 in practice ("smart quotes" at 0x91-0x94).
_CP1252_ALIASES = {"latin-1", "latin1", "iso-8859-1", "iso8859-1", "l1", "ascii", "us-ascii", "iso-ir-100", "cp819"}

#: Non-ASCII bytes needed before an encoding detector's guess is trusted over cp1252.
MIN_BYTES_TO_DETECT = 32

_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)
# <meta charset="x"> and <meta http-equiv="Content-Type" content="text/html; charset=x">
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([\w.:-]+)", re.IGNORECASE)


class ExtractionError(ValueError):
    """A page that yields no usable text; ``str(error)`` is the short reason recorded on drop."""


def charset_from_header(content_type: str | None) -> str | None:
    """The charset named in a Content-Type header, or ``None``.

    >>> charset_from_header('text/html; charset="ISO-8859-1"')
    'ISO-8859-1'
    >>> charset_from_header("text/html") is None
    True
    """
    match = _HEADER_CHARSET.search(content_type or "")
    return match.group(1) if match else None


def charset_from_meta(body: bytes) -> str | None:
    """The charset a page declares in a ``<meta>`` tag within its first 2 KB, or ``None``.

    >>> charset_from_meta(b'<html><head><meta charset="windows-1252"><title>x</title>')
    'windows-1252'
    >>> charset_from_meta(b'<meta http-equiv="Content-Type" content="text/html; charset=utf-8">')
    'utf-8'
    """
    match = _META_CHARSET.search(body[:2048])  # the HTML spec puts the declaration in the first 1024 bytes
    return match.group(1).decode("ascii", "replace") if match else None


def normalize_encoding(label: str | None) -> str | None:
    """A Python codec name for an encoding label, or ``None`` if Python knows no such codec.

    >>> normalize_encoding("UTF8"), normalize_encoding("ISO-8859-1"), normalize_encoding("no-such")
    ('utf-8', 'cp1252', None)
    """
    if not label:
        return None
    label = label.strip().lower()
    if label in _CP1252_ALIASES:
        return "cp1252"
    # The standard library's own search only: other packages may register catch-all codec
    # search functions that would accept any label.
    info = encodings.search_function(label)
    return info.name if info is not None else None


def looks_binary(body: bytes) -> bool:
    """True when the first KB looks like a binary file rather than text.

    A NUL byte, a known file signature, or more than 10% control characters (other than tab,
    newline, carriage return and form feed) give it away. Text in UTF-16 (which is full of NULs)
    is recognised by its byte-order mark.

    >>> (looks_binary(b"<html><p>Hello</p></html>"), looks_binary(b"\\x89PNG\\r\\n\\x1a\\n..."),
    ...  looks_binary(b"ab\\x00cd"))
    (False, True, True)
    """
    head = body[:1024]
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return False
    if head.startswith(BINARY_MAGIC) or b"\x00" in head:
        return True
    if not head:
        return False
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13) or b == 127)
    return controls / len(head) > 0.10


def _try_decode(body: bytes, encoding: str) -> str | None:
    try:
        return body.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return None


def _has_multibyte_utf8(body: bytes) -> bool:
    """Valid UTF-8 with at least one multi-byte character: almost never true of real cp1252 text."""
    if body.isascii():
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def decode_html(body: bytes, content_type: str | None = None) -> tuple[str, str]:
    """Bytes -> (text, encoding used).

    Order of trust: a byte-order mark; the HTTP header's charset; the ``<meta charset>``; then the
    bytes (strict UTF-8, then resiliparse's detector, then cp1252, then latin-1, which cannot fail).
    A declared charset is used only if the bytes decode under it without error, so a header that
    lies is skipped. One more guard: a declared single-byte charset loses to UTF-8 when the bytes
    are valid multi-byte UTF-8, which real cp1252 text almost never is (this turns would-be
    mojibake like ``cafÃ©`` back into ``café``).

    >>> decode_html("café".encode("utf-8"), "text/html; charset=utf-8")
    ('café', 'utf-8')
    >>> decode_html("café".encode("cp1252"), "text/html; charset=utf-8")  # the header lies
    ('café', 'cp1252')
    >>> decode_html("café".encode("utf-8"), "text/html; charset=iso-8859-1")  # so does this one
    ('café', 'utf-8')
    """
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if body.startswith(bom) and (text := _try_decode(body, encoding)) is not None:
            return text, encoding

    declared = [normalize_encoding(charset_from_header(content_type)), normalize_encoding(charset_from_meta(body))]
    for encoding in declared:
        if encoding is None:
            continue
        if encoding != "utf-8" and _is_single_byte(encoding) and _has_multibyte_utf8(body):
            return body.decode("utf-8"), "utf-8"
        if (text := _try_decode(body, encoding)) is not None:
            return text, encoding

    if (text := _try_decode(body, "utf-8")) is not None:
        return text, "utf-8"
    # A detector needs material: on a handful of accented bytes its guess is noise (a French
    # word can come back as Central European), and cp1252 is by far the web's most common
    # legacy encoding. So its guess is used only with enough non-ASCII bytes to go on.
    if sum(b >= 128 for b in body[:65536]) >= MIN_BYTES_TO_DETECT:
        detected = normalize_encoding(_detect(body))
        if detected and detected != "utf-8" and (text := _try_decode(body, detected)) is not None:
            return text, detected
    if (text := _try_decode(body, "cp1252")) is not None:
        return text, "cp1252"
    return body.decode("latin-1"), "latin-1"


def _is_single_byte(encoding: str) -> bool:
    """True for codecs like cp1252 or iso-8859-x, where every byte is one character."""
    try:
        return len(bytes(range(128, 256)).decode(encoding, errors="replace")) == 128
    except LookupError:
        return False


def _detect(body: bytes) -> str | None:
    """resiliparse's uchardet wrapper; ``None`` if resiliparse is missing."""
    try:
        from resiliparse.parse.encoding import detect_encoding
    except ImportError:
        return None
    return detect_encoding(body, html5_compatible=False)


def _garbage_share(text: str) -> float:
    """Share of replacement characters and non-whitespace control characters.

    >>> _garbage_share("ok"), _garbage_share("o\\ufffd")
    (0.0, 0.5)
    """
    if not text:
        return 0.0
    bad = sum(1 for ch in text if ch == "\ufffd" or (ord(ch) < 32 and ch not in "\t\n\r\f") or 127 <= ord(ch) < 160)
    return bad / len(text)


def clean_whitespace(text: str) -> str:
    """Strip every line, drop runs of blank lines to a single one, strip the ends.

    >>> clean_whitespace("  a  \\n\\n\\n\\n b\\t\\n")
    'a\\n\\nb'
    """
    lines = [line.strip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _resiliparse(html: str) -> str:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    tree = HTMLTree.parse(html)
    return extract_plain_text(
        tree,
        preserve_formatting=True,  # paragraphs stay on their own lines: the line-based quality filters need them
        main_content=True,  # drop nav, header/footer, sidebars, cookie banners by tag and class/id heuristics
        list_bullets=False,  # "•" prefixes would count as Gopher's bullet lines
        alt_texts=False,  # "logo", "icon" alt texts are not prose
        links=False,
        form_fields=False,
        noscript=False,  # usually "please enable JavaScript"
        comments=False,  # reader comments are not the article
    )


def _trafilatura(html: str) -> str:
    import trafilatura

    # The FineWeb recipe (datatrove's Trafilatura step): favor_precision=True, include_comments=False.
    # deduplicate=False: trafilatura's dedup is an LRU cache shared across calls, which would make
    # a page's text depend on which pages came before it.
    result = trafilatura.extract(
        html, favor_precision=True, include_comments=False, include_tables=True, deduplicate=False, with_metadata=False
    )
    return result or ""


EXTRACTORS = {"resiliparse": _resiliparse, "trafilatura": _trafilatura}


def extract_text(body: bytes, content_type: str | None = None, method: str = "resiliparse") -> str:
    """The main text of an HTML page: paragraphs one per line, blank lines between blocks.

    Raises :class:`ExtractionError` (``binary``, ``undecodable``, ``unparseable``, ``empty``) for a
    page with no usable text, and :class:`ValueError` for an unknown ``method``.

    >>> page = b"<html><body><nav><a href='/'>Home</a></nav><article><h1>Bees</h1>" \\
    ...        b"<p>Bees dance to tell each other where the flowers are.</p></article></body></html>"
    >>> print(extract_text(page, "text/html; charset=utf-8"))
    Bees
    <BLANKLINE>
    Bees dance to tell each other where the flowers are.
    """
    if method not in EXTRACTORS:
        raise ValueError(f"unknown extraction method {method!r}; choose one of {sorted(EXTRACTORS)}")
    if looks_binary(body):
        raise ExtractionError("binary")
    html, _ = decode_html(body, content_type)
    if _garbage_share(html) > 0.05:
        raise ExtractionError("undecodable")
    html = html.replace("\x00", "")
    try:
        text = EXTRACTORS[method](html)
    except (ValueError, TypeError, RecursionError) as e:  # parser errors from either library
        raise ExtractionError("unparseable") from e
    text = clean_whitespace(text)
    if not text:
        raise ExtractionError("empty")
    return text


def benchmark_extraction(pages: list[bytes], methods: tuple[str, ...] = ("resiliparse", "trafilatura")) -> dict:
    """Pages per second of each extractor on one core, with the mean characters it kept.

    Both libraries run single-threaded, so the figure is per core. Failures (binary, empty...)
    count as pages processed; ``failed`` says how many there were.

    >>> result = benchmark_extraction([b"<html><body><p>One short page of text.</p></body></html>"])
    >>> sorted(result["resiliparse"])
    ['avg_chars', 'failed', 'pages', 'pages_per_s', 'seconds']
    """
    if not pages:
        raise ValueError("benchmark_extraction needs at least one page")
    results = {}
    for method in methods:
        chars, failed = 0, 0
        start = time.perf_counter()
        for body in pages:
            try:
                chars += len(extract_text(body, None, method=method))
            except ExtractionError:
                failed += 1
        seconds = time.perf_counter() - start
        kept = len(pages) - failed
        results[method] = {
            "pages": len(pages),
            "seconds": round(seconds, 4),
            "pages_per_s": round(len(pages) / seconds, 1) if seconds > 0 else float("inf"),
            "avg_chars": round(chars / kept, 1) if kept else 0.0,
            "failed": failed,
        }
    return results
