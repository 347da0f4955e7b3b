"""Seed URLs -> WARC files, the way Common Crawl stores the web. Writes ``out_dir/``:

- ``crawl-00000.warc.gz``, ``crawl-00001.warc.gz``, ...: one ``warcinfo`` record per file, then
  a ``request`` and a ``response`` record for every fetch (status line, headers and body, as
  Common Crawl keeps them). A file is written under ``<name>.open`` and renamed once closed,
  so a final name always holds a complete file.
- ``crawl_log.jsonl``: one line per URL and what became of it (appended to across runs).
- ``crawl_stats.json``: counts per outcome, pages, bytes, seconds; ``crawl_config.json``: the config.

The crawl is breadth-first from the seeds (depth 0), stays on the allowed hosts, asks each
host's ``robots.txt`` before any other URL there, and stops at the first bound it reaches
(depth, pages, bytes, time). Errors (5xx, timeouts, resets, redirect loops, binary bodies)
are logged and counted; they never stop the crawl.

Choices worth knowing:

- robots.txt: a 2xx file is obeyed; a 4xx means "no rules" (all allowed); a 5xx or no answer
  at all makes the whole host off limits, as Google does. robots.txt files are not stored in
  the WARC (Common Crawl keeps them in separate files), and ``Crawl-delay`` is not honoured.
- A 5xx, a timeout or a connection error is retried; only the last attempt is stored.
- A redirect is stored like any response; its target is queued at the same depth (it is the
  same page), and a target that leads back to the URL is logged as ``redirect_loop``.
- ``max_pages`` and ``max_bytes`` count the whole ``out_dir``, so a second run with a larger
  ``max_pages`` continues the first: URLs already in a WARC file are replayed from it (their
  links read back), never fetched again. Leftover ``.open`` files from a killed run are cut
  at their last complete record and kept.
- Bounds stop new requests; those already in flight finish. No per-host rate limit: this
  crawler is meant for servers we run ourselves.

Entry point: ``crawl(CrawlConfig(seeds=["http://127.0.0.1:8000/"]), Path("runs/x/crawl"))``.
Reading back: ``iter_warc_responses(path)`` yields one dict per response record.
"""

from __future__ import annotations

import asyncio
import codecs
import concurrent.futures
import dataclasses
import fnmatch
import heapq
import io
import json
import os
import re
import socket
import time
import urllib.robotparser
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit, urlunsplit

from llmkb.checks import non_negative, positive, require
from llmkb.data.extract import looks_binary
from llmkb.io import write_json

WARC_GLOB = "crawl-*.warc.gz"
OPEN_SUFFIX = ".open"  # a WARC file still being written carries this suffix
HTML_TYPES = ("text/html", "application/xhtml+xml")  # bodies whose links are followed
LOG_NAME, STATS_NAME, CONFIG_NAME = "crawl_log.jsonl", "crawl_stats.json", "crawl_config.json"


@dataclass
class CrawlConfig:
    seeds: list[str]  # start URLs, depth 0
    allowed_hosts: list[str] | None = None  # host names ("*.test" allowed); None: the seeds' hosts only
    max_depth: int = 6  # links followed from a seed at most this many times
    max_pages: int = 5000  # URLs fetched in total in this out_dir (earlier runs included)
    max_bytes: int = 200_000_000  # body bytes in total; the crawl stops once past it
    max_page_bytes: int = 5_000_000  # a longer body is cut here and marked WARC-Truncated: length
    time_limit_s: float = 600  # wall-clock bound for one run
    timeout_s: float = 3.0  # per request, headers and body together
    retries: int = 2  # extra tries after a 5xx, a timeout or a connection error
    backoff_s: float = 0.5  # wait backoff_s * 2**k before retry k+1
    concurrency: int = 16  # requests in flight at once
    max_redirects: int = 5  # hops followed from one URL
    user_agent: str = "llmkb-crawler/0.1 (+teaching)"
    resolve: dict[str, tuple[str, int]] | None = None  # host -> (ip, port), e.g. {"*.test": ("127.0.0.1", 8080)}
    warc_max_bytes: int = 100_000_000  # start a new WARC file past this size

    def __post_init__(self) -> None:
        require(self, "seeds", any(normalize_url(s) for s in self.seeds), "a list holding at least one http(s) URL")
        positive(self, "max_page_bytes", "timeout_s", "concurrency", "warc_max_bytes")
        # A bound of 0 is a crawl that stops at once: what a resumed crawl already past its bound does.
        non_negative(self, "max_pages", "max_bytes", "time_limit_s", "max_depth", "retries", "backoff_s")
        non_negative(self, "max_redirects")


# --------------------------------------------------------------------------- small pure helpers

_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_url(url: str, base: str | None = None) -> str | None:
    """Absolute, canonical form of a (possibly relative) link; ``None`` if it is not http(s).

    Drops the fragment and the default port, lowercases scheme and host, turns an empty path into ``/``.

    >>> normalize_url("../b.html#top", "http://A.test/x/y/z.html")
    'http://a.test/x/b.html'
    >>> normalize_url("HTTP://Example.TEST:80")
    'http://example.test/'
    >>> normalize_url("http://h.test:8080/p?q=1")
    'http://h.test:8080/p?q=1'
    >>> normalize_url("mailto:someone@a.test") is None
    True
    """
    url = url.strip()
    try:
        parts = urlsplit(urljoin(base, url) if base else url)
        port = parts.port  # raises ValueError on a port that is not a number
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:  # IPv6 literal: keep its brackets
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def host_allowed(host: str, patterns: list[str]) -> bool:
    """Is ``host`` one of ``patterns`` (shell-style, so ``*.test`` matches ``a.test``)?

    >>> host_allowed("a.test", ["*.test"]), host_allowed("a.example", ["a.test"])
    (True, False)
    """
    return any(fnmatch.fnmatchcase(host, p.lower()) for p in patterns)


def body_charset(content_type: str, default: str = "utf-8") -> str:
    """The charset named in a Content-Type header, if Python knows it.

    >>> body_charset("text/html; charset=ISO-8859-1"), body_charset("text/html")
    ('iso8859-1', 'utf-8')
    """
    m = re.search(r"charset=[\"']?([\w.:-]+)", content_type or "", re.IGNORECASE)
    if m:
        try:
            return codecs.lookup(m.group(1)).name
        except LookupError:
            pass
    return default


class _LinkParser(HTMLParser):
    """Collects ``<a href>`` values (and ``<base href>``); html.parser never gives up on bad markup."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.base: str | None = None

    def handle_starttag(self, tag, attrs):
        href = dict(attrs).get("href")
        if href is None:
            return
        if tag == "a":
            self.hrefs.append(href)
        elif tag == "base" and self.base is None:
            self.base = href


def extract_links(html: str, base_url: str) -> list[str]:
    """Normalized http(s) targets of the ``<a href>`` links in ``html``, in order, without repeats.

    Malformed markup yields whatever links could be read, never an exception.

    Examples:
        >>> extract_links('<a href="b.html#x">b</a><a href=/c>c</a><a href="mailto:x@y">m</a><a href="b.html">',
        ...               "http://a.test/dir/")
        ['http://a.test/dir/b.html', 'http://a.test/c']
    """
    parser = _LinkParser()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # noqa: BLE001, S110 - old html.parser versions raised on some broken markup; keep what was read
        pass
    base = urljoin(base_url, parser.base) if parser.base else base_url
    out: dict[str, None] = {}
    for href in parser.hrefs:
        url = normalize_url(href, base)
        if url:
            out[url] = None
    return list(out)


def warc_http_headers(headers: list[tuple[str, str]], stored_len: int) -> list[tuple[str, str]]:
    """HTTP headers as stored in the WARC: Common Crawl's renaming for bodies that were decoded.

    The client undoes chunking and compression, so the stored body no longer matches
    ``Transfer-Encoding``/``Content-Encoding``/``Content-Length``. Like Common Crawl we keep
    those under an ``X-Crawler-`` prefix and give the real length, so WARC readers do not try
    to de-chunk or decompress the body again.

    >>> warc_http_headers([("Content-Type", "text/html"), ("Content-Encoding", "gzip"),
    ...                    ("Content-Length", "30")], 120)  # doctest: +NORMALIZE_WHITESPACE
    [('Content-Type', 'text/html'), ('X-Crawler-Content-Encoding', 'gzip'), ('X-Crawler-Content-Length', '30'),
     ('Content-Length', '120')]
    """
    out = []
    for name, value in headers:
        if name.lower() in ("content-encoding", "transfer-encoding", "content-length"):
            out.append((f"X-Crawler-{name}", value))
        else:
            out.append((name, value))
    out.append(("Content-Length", str(stored_len)))
    return out


def outcome_for_status(status: int) -> str:
    """Log outcome for a final (non-redirect) HTTP status.

    Examples:
        >>> [outcome_for_status(s) for s in (200, 204, 404, 410, 403, 503)]
        ['fetched', 'fetched', 'not_found', 'not_found', 'error_4xx', 'error_5xx']
    """
    if status in (404, 410):
        return "not_found"
    if 400 <= status < 500:
        return "error_4xx"
    if status >= 500:
        return "error_5xx"
    return "fetched"


def robots_policy(status: int | None, text: str = "") -> urllib.robotparser.RobotFileParser:
    """A robots parser for what ``GET /robots.txt`` returned (``None``: no answer at all).

    Google's rules: 2xx -> obey the file; 4xx (missing) -> everything allowed; 5xx or no
    answer -> the whole host is off limits (a server in trouble should not be crawled, and
    a crawler must not guess that an unreadable file allows everything).

    >>> robots_policy(404).can_fetch("bot", "http://a.test/x"), robots_policy(503).can_fetch("bot", "http://a.test/x")
    (True, False)
    >>> robots_policy(200, "User-agent: *\\nDisallow: /private/").can_fetch("bot", "http://a.test/private/a")
    False
    """
    rp = urllib.robotparser.RobotFileParser()
    if status is not None and 200 <= status < 300:
        rp.parse(text.splitlines())
    elif status is not None and 300 <= status < 500:
        rp.allow_all = True  # redirects are not followed for robots.txt here; Google follows up to 5 hops
    else:
        rp.disallow_all = True
    return rp


# --------------------------------------------------------------------------- reading WARC files


def _scan_warc(path: Path) -> Iterator[tuple[object, int]]:
    """Yield ``(record, end_offset)`` for each complete record; warn and stop at damage."""
    from warcio.archiveiterator import ArchiveIterator

    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        it = ArchiveIterator(f)
        offset = 0
        try:
            for record in it:
                # reads to the record's end (a cut file reads short); the stream can be read only once,
                # so the body is kept on the record for the caller
                record.llmkb_body = record.content_stream().read()
                # only now: asking for the offset first would make warcio skip the body unread
                end = it.get_record_offset() + it.get_record_length()
                if not record.rec_type or record.length is None:  # header block cut short
                    raise EOFError("incomplete WARC header block")
                if getattr(record.raw_stream, "limit", 0) > 0 or end > size:
                    raise EOFError("record ends before its Content-Length")
                decompressor = getattr(it.reader, "decompressor", None)
                if decompressor is not None and not getattr(decompressor, "eof", True):
                    raise EOFError("gzip member cut before its end")  # the body is whole, its trailer is not
                yield record, end
                offset = end
        except Exception as e:  # noqa: BLE001 - warcio raises many kinds (ArchiveLoadFailed, zlib.error, EOFError...)
            warnings.warn(
                f"{path}: damaged WARC at byte {offset} ({type(e).__name__}: {e}); stopping there", stacklevel=2
            )
            return
        if offset < size:  # warcio may take a cut gzip member for a clean end of file
            warnings.warn(
                f"{path}: damaged WARC at byte {offset} ({size - offset} trailing bytes are "
                "not a complete record); stopping there",
                stacklevel=2,
            )


def iter_warc_responses(path: str | os.PathLike) -> Iterator[dict]:
    """Yield ``{url, status, headers, body, date}`` for every response record of a WARC file.

    A truncated or corrupt file yields the records before the damage, then a warning that
    names the file and byte offset; it never raises for damage (a missing file still does).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found")
    for record, _ in _scan_warc(path):
        yield from _response_dict(record)


def _response_dict(record) -> Iterator[dict]:
    if record.rec_type != "response" or record.http_headers is None:
        return
    h = record.http_headers
    try:
        status = int(h.get_statuscode())
    except (TypeError, ValueError):
        status = 0
    yield {
        "url": record.rec_headers.get_header("WARC-Target-URI"),
        "status": status,
        "headers": dict(h.headers),
        "body": record.llmkb_body,
        "date": record.rec_headers.get_header("WARC-Date"),
        "truncated": record.rec_headers.get_header("WARC-Truncated"),
    }


# --------------------------------------------------------------------------- writing WARC files


class WarcSink:
    """Writes request/response pairs into rotating gzip WARC files ``crawl-NNNNN.warc.gz``."""

    def __init__(self, out_dir: Path, max_bytes: int, first_index: int, info: dict):
        self.out_dir, self.max_bytes, self.index, self.info = out_dir, max_bytes, first_index, info
        self.f = self.writer = None
        self.closed_files: list[str] = []

    def _open(self) -> None:
        from warcio.warcwriter import WARCWriter

        name = f"crawl-{self.index:05d}.warc.gz"
        self.f = open(self.out_dir / (name + OPEN_SUFFIX), "wb")  # noqa: SIM115 - stays open across pages
        self.writer = WARCWriter(self.f, gzip=True)
        self.writer.write_record(self.writer.create_warcinfo_record(name, self.info))

    def write_pair(
        self,
        url: str,
        req_line: str,
        req_headers: list[tuple[str, str]],
        status_line: str,
        resp_headers: list[tuple[str, str]],
        body: bytes,
        ip: str | None,
        truncated: bool,
    ) -> None:
        from warcio.statusandheaders import StatusAndHeaders

        if self.f is None:
            self._open()
        w = self.writer
        req = w.create_warc_record(
            url,
            "request",
            payload=io.BytesIO(b""),
            http_headers=StatusAndHeaders(req_line, req_headers, is_http_request=True),
        )
        extra = {"WARC-Concurrent-To": req.rec_headers.get_header("WARC-Record-ID")}
        if ip:
            extra["WARC-IP-Address"] = ip
        if truncated:
            extra["WARC-Truncated"] = "length"
        resp = w.create_warc_record(
            url,
            "response",
            payload=io.BytesIO(body),
            warc_headers_dict=extra,
            http_headers=StatusAndHeaders(status_line, resp_headers, protocol="HTTP/1.1"),
        )
        w.write_record(req)
        w.write_record(resp)
        self.f.flush()
        if self.f.tell() >= self.max_bytes:
            self.close()

    def close(self) -> None:
        if self.f is None:
            return
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        name = f"crawl-{self.index:05d}.warc.gz"
        os.replace(self.out_dir / (name + OPEN_SUFFIX), self.out_dir / name)
        self.closed_files.append(name)
        self.f = self.writer = None
        self.index += 1


def salvage_open_warcs(out_dir: Path) -> list[str]:
    """Turn the ``.open`` WARC files an interrupted crawl left behind into final files.

    Each keeps its complete records (cut at the end of the last one); an empty leftover is removed.
    """
    saved = []
    for p in sorted(out_dir.glob(WARC_GLOB + OPEN_SUFFIX)):
        end = 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a cut last record is expected here
            for _, end in _scan_warc(p):
                pass
        final = p.with_name(p.name[: -len(OPEN_SUFFIX)])
        if end == 0:
            p.unlink()
            continue
        with open(p, "r+b") as f:
            f.truncate(end)
            os.fsync(f.fileno())
        os.replace(p, final)
        saved.append(final.name)
    return saved


def index_existing(out_dir: Path) -> dict[str, dict]:
    """What earlier runs fetched, from their closed WARC files: url -> {status, location, links, bytes}.

    The WARC files are the crawl's state: a URL in them is not fetched again, and its links
    (or redirect target) are read back so the crawl can go on past it.
    """
    done: dict[str, dict] = {}
    for p in sorted(out_dir.glob(WARC_GLOB)):
        for r in iter_warc_responses(p):
            h = {k.lower(): v for k, v in r["headers"].items()}
            done[r["url"]] = {
                "status": r["status"],
                "location": h.get("location"),
                "bytes": len(r["body"]),
                "links": _links_of(r["url"], h.get("content-type", ""), r["body"]),
            }
    return done


def _links_of(url: str, content_type: str, body: bytes) -> list[str]:
    if not content_type.lower().startswith(HTML_TYPES) or looks_binary(body):
        return []
    return extract_links(body.decode(body_charset(content_type), errors="replace"), url)


# --------------------------------------------------------------------------- networking


class MappedResolver:
    """aiohttp resolver that sends chosen host names to a fixed (ip, port).

    URLs stay clean (``http://shakespeare.test/x.html``, Host header ``shakespeare.test``)
    while the socket goes to 127.0.0.1:PORT. Other names go to the normal resolver.
    """

    def __init__(self, mapping: dict[str, tuple[str, int]]):
        from aiohttp.resolver import DefaultResolver

        self.mapping = {k.lower(): v for k, v in mapping.items()}
        self.fallback = DefaultResolver()

    def lookup(self, host: str) -> tuple[str, int] | None:
        host = host.lower()
        if host in self.mapping:
            return self.mapping[host]
        for pattern, target in self.mapping.items():
            if fnmatch.fnmatchcase(host, pattern):
                return target
        return None

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[dict]:
        target = self.lookup(host)
        if target is None:
            return await self.fallback.resolve(host, port, family)
        ip, mapped_port = target
        return [
            {
                "hostname": host,
                "host": ip,
                "port": mapped_port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        await self.fallback.close()


def _register_resolver() -> None:
    # Subclass lazily so importing this module does not import aiohttp.
    from aiohttp.abc import AbstractResolver

    if not issubclass(MappedResolver, AbstractResolver):
        AbstractResolver.register(MappedResolver)


class _Fetched:
    """One HTTP exchange as the crawler keeps it."""

    __slots__ = ("body", "headers", "ip", "reason", "req_headers", "req_line", "status", "truncated")


# --------------------------------------------------------------------------- the crawler


class _Crawler:
    def __init__(self, cfg: CrawlConfig, out_dir: Path, progress: bool):
        self.cfg, self.out_dir, self.progress = cfg, out_dir, progress
        seeds = [u for u in (normalize_url(s) for s in cfg.seeds) if u]  # at least one: CrawlConfig checks
        self.seeds = seeds
        self.allowed = (
            [h.lower() for h in cfg.allowed_hosts]
            if cfg.allowed_hosts
            else sorted({urlsplit(s).hostname for s in seeds})
        )
        self.outcomes: Counter = Counter()
        self.seen: set[str] = set()
        self.heap: list = []  # (depth, seq, url, chain): BFS order by depth, FIFO within a depth
        self.seq = 0
        self.in_flight = 0
        self.robots: dict[str, asyncio.Future] = {}
        self.redirect_to: dict[str, str] = {}  # every redirect seen: url -> target, to find loops
        self.pages = self.bytes = self.new_pages = self.new_bytes = self.requests = self.retries = 0
        self.resumed = 0
        self.stopped: str | None = None

    # ----- frontier
    def push(self, url: str, depth: int, chain: tuple[str, ...] = ()) -> None:
        if url in self.seen:
            return
        self.seen.add(url)
        host = urlsplit(url).hostname or ""
        if not host_allowed(host, self.allowed):
            self.log(url, "off_host", depth)
            return
        heapq.heappush(self.heap, (depth, self.seq, url, chain))
        self.seq += 1
        self.wake.set()

    def log(
        self, url: str, outcome: str, depth: int, status: int | None = None, nbytes: int = 0, attempts: int = 0, **extra
    ) -> None:
        self.outcomes[outcome] += 1
        rec = {
            "url": url,
            "status": status,
            "bytes": nbytes,
            "depth": depth,
            "outcome": outcome,
            "attempts": attempts,
            **extra,
        }
        self.log_f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self.log_f.flush()

    def check_bounds(self) -> None:
        if self.stopped:
            return
        if self.pages >= self.cfg.max_pages:
            self.stopped = "max_pages"
        elif self.bytes > self.cfg.max_bytes:
            self.stopped = "max_bytes"
        elif time.monotonic() > self.deadline:
            self.stopped = "time_limit"

    # ----- HTTP
    async def get(self, url: str) -> tuple[_Fetched | None, str | None, int, str]:
        """GET with retries. Returns (response or None, error outcome or None, attempts, error message)."""
        import aiohttp

        cfg, attempts, error, message = self.cfg, 0, None, ""
        for attempt in range(cfg.retries + 1):
            if attempt:
                self.retries += 1
                await asyncio.sleep(cfg.backoff_s * 2 ** (attempt - 1))
            attempts += 1
            self.requests += 1
            try:
                f = await self._get_once(url)
            except TimeoutError:  # aiohttp's timeout errors subclass it
                error, message, f = "timeout", f"no answer within {cfg.timeout_s} s", None
            except (aiohttp.ClientError, OSError) as e:
                error, message, f = "connection_error", f"{type(e).__name__}: {e}", None
            if f is not None:
                if f.status < 500 or attempt == cfg.retries:
                    return f, None, attempts, ""
                error = "error_5xx"
        return None, error, attempts, message

    async def _get_once(self, url: str) -> _Fetched:
        limit = self.cfg.max_page_bytes
        async with self.session.get(url, allow_redirects=False) as resp:
            f = _Fetched()
            f.status, f.reason = resp.status, resp.reason or ""
            transport = resp.connection.transport if resp.connection else None  # the IP for WARC-IP-Address
            peer = transport.get_extra_info("peername") if transport else None
            f.ip = peer[0] if peer else None
            buf = bytearray()
            f.truncated = False
            async for chunk in resp.content.iter_chunked(65536):
                buf += chunk
                if len(buf) > limit:
                    f.truncated = True
                    break
            f.body = bytes(buf[:limit])
            f.headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.raw_headers]
            ri = resp.request_info
            path = ri.url.raw_path_qs if hasattr(ri.url, "raw_path_qs") else ri.url.path_qs
            f.req_line = f"{ri.method} {path} HTTP/1.1"
            f.req_headers = list(ri.headers.items())
            return f

    async def allowed_by_robots(self, url: str) -> bool:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        fut = self.robots.get(origin)
        if fut is None:  # first URL of this host: fetch robots.txt once, others wait on the future
            fut = self.robots[origin] = asyncio.get_running_loop().create_future()
            f, _, _, _ = await self.get(origin + "/robots.txt")
            text = f.body.decode("utf-8", errors="replace") if f else ""
            fut.set_result(robots_policy(f.status if f else None, text))
        rp = await fut
        return rp.can_fetch(self.cfg.user_agent, url)

    # ----- one URL
    async def process(self, depth: int, url: str, chain: tuple[str, ...]) -> None:
        cached = self.done.get(url)
        if cached is not None:  # fetched by an earlier run: replay it from the WARC, no request
            self.pages += 1
            self.bytes += cached["bytes"]
            self.resumed += 1
            self.bar.update(1)
            self.follow(url, depth, chain, cached["status"], cached["location"], cached["links"])
            return
        if not await self.allowed_by_robots(url):
            self.log(url, "robots_disallowed", depth)
            return
        self.check_bounds()
        if self.stopped:  # a bound was reached while we waited for robots.txt: leave the URL queued
            heapq.heappush(self.heap, (depth, -1, url, chain))
            return
        self.pages += 1
        self.new_pages += 1
        f, error, attempts, message = await self.get(url)
        self.bar.update(1)
        if f is None:
            self.log(url, error, depth, attempts=attempts, error=message)
            return
        self.bytes += len(f.body)
        self.new_bytes += len(f.body)
        headers = warc_http_headers(f.headers, len(f.body))
        self.sink.write_pair(
            url, f.req_line, f.req_headers, f"{f.status} {f.reason}".strip(), headers, f.body, f.ip, f.truncated
        )
        hmap = {k.lower(): v for k, v in f.headers}
        ctype = hmap.get("content-type", "")
        if 300 <= f.status < 400 and hmap.get("location"):
            outcome = self.follow(url, depth, chain, f.status, hmap["location"], [])
            self.log(url, outcome, depth, f.status, len(f.body), attempts, target=normalize_url(hmap["location"], url))
            return
        outcome = outcome_for_status(f.status)
        if outcome == "fetched":
            if f.truncated:
                outcome = "too_large"
            elif ctype.lower().startswith(HTML_TYPES) and looks_binary(f.body):
                outcome = "binary"
        self.log(url, outcome, depth, f.status, len(f.body), attempts)
        if 200 <= f.status < 300:
            self.follow(url, depth, chain, f.status, None, _links_of(url, ctype, f.body))

    def follow(self, url, depth, chain, status, location, links) -> str:
        """Queue what a page leads to; for a redirect, return its log outcome."""
        if status is not None and 300 <= status < 400 and location:
            target = normalize_url(location, url)
            if target is None:
                return "redirect"
            self.redirect_to[url] = target
            hop, seen_hops = target, set()
            while hop in self.redirect_to and hop not in seen_hops:  # walk the known redirects from the target
                if hop == url:
                    break
                seen_hops.add(hop)
                hop = self.redirect_to[hop]
            if hop == url:
                return "redirect_loop"
            if len(chain) + 1 > self.cfg.max_redirects:
                return "too_many_redirects"
            self.push(target, depth, chain + (url,))  # a redirect is the same page: same depth
            return "redirect"
        if depth < self.cfg.max_depth:
            for link in links:
                self.push(link, depth + 1)
        return "fetched"

    async def worker(self) -> None:
        while True:
            if not self.heap:
                if self.in_flight == 0:  # nothing queued and nothing that could queue more: done
                    self.wake.set()  # let the other workers see the end too
                    return
                self.wake.clear()
                await self.wake.wait()
                continue
            self.check_bounds()
            if self.stopped:
                self.wake.set()
                return
            depth, _, url, chain = heapq.heappop(self.heap)
            self.in_flight += 1
            try:
                await self.process(depth, url, chain)
            except Exception as e:  # noqa: BLE001 - a bug on one page must not lose the crawl so far
                self.log(url, "crawler_error", depth, error=f"{type(e).__name__}: {e}")
            finally:
                self.in_flight -= 1
                self.wake.set()

    async def run(self) -> dict:
        import aiohttp
        from tqdm import tqdm

        cfg, out = self.cfg, self.out_dir
        out.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        self.deadline = t0 + cfg.time_limit_s
        salvaged = salvage_open_warcs(out)
        self.done = index_existing(out)
        existing = sorted(out.glob(WARC_GLOB))
        first = 1 + max((int(p.name.split("-")[1].split(".")[0]) for p in existing), default=-1)
        info = {
            "software": "llmkb.data.crawl (aiohttp + warcio)",
            "format": "WARC File Format 1.1",
            "isPartOf": "llmkb",
            "http-header-user-agent": cfg.user_agent,
            "robots": "obey",
            "operator": "llmkb teaching crawl",
        }
        self.sink = WarcSink(out, cfg.warc_max_bytes, first, info)
        self.wake = asyncio.Event()
        for s in self.seeds:
            self.push(s, 0)
        connector_kw = {"limit": cfg.concurrency}
        if cfg.resolve:
            _register_resolver()
            connector_kw["resolver"] = MappedResolver(cfg.resolve)
        timeout = aiohttp.ClientTimeout(total=cfg.timeout_s)
        headers = {"User-Agent": cfg.user_agent, "Accept-Encoding": "gzip, deflate"}
        self.bar = tqdm(total=cfg.max_pages, unit="page", disable=not self.progress, desc="crawl")
        try:
            with open(out / LOG_NAME, "a", encoding="utf-8") as self.log_f:  # noqa: ASYNC230 - opened once
                async with aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(**connector_kw), timeout=timeout, headers=headers
                ) as self.session:
                    await asyncio.gather(*(self.worker() for _ in range(cfg.concurrency)))
        finally:
            self.sink.close()
            self.bar.close()
        stats = {
            "pages": self.new_pages,
            "bytes": self.new_bytes,
            "pages_total": self.pages,
            "bytes_total": self.bytes,
            "resumed": self.resumed,
            "seconds": round(time.monotonic() - t0, 3),
            "outcomes": dict(sorted(self.outcomes.items())),
            "requests": self.requests,
            "retries": self.retries,
            "redirect_loops": self.outcomes["redirect_loop"],
            "frontier_left": len(self.heap),
            "stopped": self.stopped or "frontier_empty",
            "warc_files": self.sink.closed_files,
            "salvaged_warc_files": salvaged,
        }
        write_json(out / STATS_NAME, stats)
        return stats


def crawl(config: CrawlConfig, out_dir: str | os.PathLike, progress: bool = False) -> dict:
    """Crawl from ``config.seeds`` into ``out_dir`` (see the module docstring); return the stats.

    Re-running into the same ``out_dir`` resumes: URLs already in its WARC files are not
    fetched again, and new records go to new WARC files. Works inside a running event loop
    (a notebook) too, by crawling in a helper thread.
    """
    crawler = _Crawler(config, Path(out_dir), progress)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / CONFIG_NAME, dataclasses.asdict(config))
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(crawler.run())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, crawler.run()).result()
