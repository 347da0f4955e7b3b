"""The crawler against a small in-test web: robots.txt, redirects, errors, bounds, WARC output, resume.

The server below serves ``a.test``, ``b.test``, ``c.test`` and ``outside.test`` on one
127.0.0.1 port (routed by the Host header) and records every request, so the tests can prove
what the crawler never asked for.
"""

from __future__ import annotations

import asyncio
import doctest
import gzip
import json
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from llmkb.data import crawl as crawl_mod
from llmkb.data.crawl import CrawlConfig, crawl, iter_warc_responses

SLOW_S, TIMEOUT_S = 1.5, 0.5  # a normal page answers in milliseconds, even on a busy CPU
BIG = b"<html><body>" + b"<p>big page</p>" * 20_000 + b"</body></html>"  # ~300 KB
BINARY = bytes(range(256)) * 8  # NUL bytes and control bytes: no text format looks like this


def page(*links: str, title: str = "") -> bytes:
    anchors = "".join(f'<a href="{h}">{h}</a> ' for h in links)
    return f"<html><head><title>{title}</title></head><body>{anchors}</body></html>".encode()


A_PAGES = {
    "/": page(
        "/p1.html",
        "/p2.html",
        "/private/secret.html",
        "http://outside.test/",
        "http://b.test/",
        "http://c.test/",
        "/r1",
        "/loop1",
        "/flaky",
        "/broken",
        "/slow",
        "/malformed.html",
        "/binary.html",
        "/big.html",
        "/missing.html",
        "/gzipped.html",
        "/chunked.html",
        "/reset",
        "/to-outside",
        "/to-private",
        "sub/../p3.html#section",
        "mailto:editor@a.test",
        "javascript:void(0)",
    ),
    "/p1.html": page("/deep1.html", "/", "/p1.html#again", "/private/other.html"),
    "/p2.html": page("HTTP://A.TEST:80/p2.html"),
    "/p3.html": page(),
    "/p4.html": page(title="end of the redirect chain"),
    "/deep1.html": page("/deep2.html"),
    "/deep2.html": page("/deep3.html"),
    "/deep3.html": page(),
    "/after-flaky.html": page(),
    "/m1.html": page(),
    "/m2.html": page(),
    "/private/secret.html": page(),
    "/private/other.html": page(),
    "/private/x": page(),
}
MALFORMED = (
    b"<html><body><a href='/m1.html'>one<div <<< class=\"x><b></i></p>"
    b"<a href=/m2.html>two</a><![if bad]><!-- never closed <a href=/m3.html>"
)
REDIRECTS = {
    "/r1": "/r2",
    "/r2": "http://a.test/p4.html",
    "/loop1": "/loop2",
    "/loop2": "/loop1",
    "/to-outside": "http://outside.test/landing",
    "/to-private": "/private/x",
}
B_PAGES = {"/": page("/b1.html"), "/b1.html": page("http://a.test/p1.html")}


class Web(ThreadingHTTPServer):
    daemon_threads = True  # the slow page's thread must not hold up shutdown

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.log: list[tuple[str, str]] = []  # (host, path) of every request, in order
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}

    def handle_error(self, request, client_address):
        pass  # the crawler hangs up on the slow and the big page on purpose: not worth a traceback


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output quiet
        pass

    def send(self, status: int, body: bytes = b"", ctype: str = "text/html; charset=utf-8", **headers):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        path = self.path
        srv: Web = self.server
        with srv.lock:
            srv.log.append((host, path))
            key = f"{host}{path}"
            srv.counts[key] = n = srv.counts.get(key, 0) + 1
        if host in ("a.test", "127.0.0.1"):
            self.site_a(path, n)
        elif host == "b.test":
            self.send(404, b"no robots here") if path == "/robots.txt" else self.pages(B_PAGES, path)
        elif host == "c.test":  # robots.txt fails: the whole host is off limits
            self.send(503, b"down") if path == "/robots.txt" else self.send(200, page())
        else:  # outside.test, or anything else: must never be asked
            self.send(200, page())

    def pages(self, pages: dict, path: str):
        if path in pages:
            self.send(200, pages[path])
        else:
            self.send(404, b"not found")

    def site_a(self, path: str, n: int):
        if path == "/robots.txt":
            self.send(200, b"User-agent: *\nDisallow: /private/\n", "text/plain")
        elif path in REDIRECTS:
            self.send(302 if path != "/r2" else 301, b"", Location=REDIRECTS[path])
        elif path == "/flaky":  # fails once, then works
            self.send(500, b"oops") if n == 1 else self.send(200, page("/after-flaky.html"))
        elif path == "/broken":
            self.send(500, b"always broken")
        elif path == "/slow":
            time.sleep(SLOW_S)
            self.send(200, page())
        elif path == "/malformed.html":
            self.send(200, MALFORMED)
        elif path == "/binary.html":
            self.send(200, BINARY)
        elif path == "/big.html":
            self.send(200, BIG)
        elif path == "/reset":  # hang up without an answer
            self.close_connection = True
        elif path == "/gzipped.html":
            self.send(200, gzip.compress(A_PAGES["/p3.html"]), **{"Content-Encoding": "gzip"})
        elif path == "/chunked.html":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            body = A_PAGES["/p3.html"]
            for piece in (body[:10], body[10:]):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.pages(A_PAGES, path)


@pytest.fixture(scope="module")
def web():
    srv = Web()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def config(web, **kw) -> CrawlConfig:
    base = {
        "seeds": ["http://a.test/"],
        "allowed_hosts": ["a.test", "b.test", "c.test"],
        "resolve": {"*.test": ("127.0.0.1", web.server_address[1])},
        "timeout_s": TIMEOUT_S,
        "backoff_s": 0.05,
        "retries": 2,
        "concurrency": 8,
        "max_page_bytes": 100_000,
    }
    return CrawlConfig(**{**base, **kw})


def read_log(out) -> list[dict]:
    return [json.loads(line) for line in (out / "crawl_log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def full(web, tmp_path_factory):
    """One complete crawl of the test web; returns (out_dir, stats, log, server requests)."""
    out = tmp_path_factory.mktemp("crawl")
    start = len(web.log)
    stats = crawl(config(web), out)
    with web.lock:
        requests = web.log[start:]
    return out, stats, read_log(out), requests


def by_url(log: list[dict]) -> dict[str, dict]:
    return {r["url"]: r for r in log}


def test_helpers_doctests():
    assert doctest.testmod(crawl_mod).failed == 0


def test_never_asks_for_disallowed_or_outside(full):
    _, _, log, requests = full
    assert not [r for r in requests if r[1].startswith("/private/")]
    assert not [r for r in requests if r[0] == "outside.test"]
    # a 5xx robots.txt is retried like any 5xx, then the host is skipped
    c_paths = requests_by_host(requests, "c.test")
    assert set(c_paths) == {"/robots.txt"} and 1 < len(c_paths) <= 3
    outcomes = by_url(log)
    assert outcomes["http://a.test/private/secret.html"]["outcome"] == "robots_disallowed"
    assert outcomes["http://a.test/private/x"]["outcome"] == "robots_disallowed"  # reached by redirect
    assert outcomes["http://c.test/"]["outcome"] == "robots_disallowed"
    assert outcomes["http://outside.test/"]["outcome"] == "off_host"
    assert outcomes["http://outside.test/landing"]["outcome"] == "off_host"  # redirect target


def requests_by_host(requests, host):
    return [p for h, p in requests if h == host]


def test_robots_first_and_once_per_host(full):
    _, _, _, requests = full
    for host in ("a.test", "b.test"):
        paths = requests_by_host(requests, host)
        assert paths[0] == "/robots.txt" and paths.count("/robots.txt") == 1


def test_reachable_pages_fetched_and_errors_counted(full):
    out, stats, log, requests = full
    o = by_url(log)
    assert len(o) == len(log)  # one line per URL
    fetched = {u for u, r in o.items() if r["outcome"] == "fetched"}
    expected = {
        "http://a.test/" + p
        for p in [
            "",
            "p1.html",
            "p2.html",
            "p3.html",
            "p4.html",
            "deep1.html",
            "deep2.html",
            "deep3.html",
            "flaky",
            "after-flaky.html",
            "m1.html",
            "m2.html",
            "malformed.html",
            "gzipped.html",
            "chunked.html",
        ]
    }
    expected |= {"http://b.test/", "http://b.test/b1.html"}
    assert fetched == expected
    assert o["http://a.test/flaky"]["attempts"] == 2  # the transient 500 was retried
    assert o["http://a.test/broken"] | {} and o["http://a.test/broken"]["outcome"] == "error_5xx"
    assert o["http://a.test/broken"]["attempts"] == 3
    assert o["http://a.test/slow"]["outcome"] == "timeout"
    assert o["http://a.test/reset"]["outcome"] == "connection_error" and o["http://a.test/reset"]["attempts"] == 3
    assert o["http://a.test/missing.html"]["outcome"] == "not_found"
    assert o["http://a.test/binary.html"]["outcome"] == "binary"
    assert o["http://a.test/big.html"]["outcome"] == "too_large"
    assert o["http://a.test/big.html"]["bytes"] == 100_000
    assert o["http://a.test/r1"]["outcome"] == "redirect" and o["http://a.test/r2"]["depth"] == 1
    assert {o["http://a.test/loop1"]["outcome"], o["http://a.test/loop2"]["outcome"]} == {"redirect", "redirect_loop"}
    assert stats["redirect_loops"] == 1
    assert stats["outcomes"]["fetched"] == len(expected) and stats["stopped"] == "frontier_empty"
    assert json.loads((out / "crawl_stats.json").read_text()) == stats
    # each URL was asked for once, apart from retries (on a busy machine any page may need one)
    paths = [f"http://{h}{p}" for h, p in requests]
    repeated = {p for p in paths if paths.count(p) > 1}
    assert {"http://a.test/flaky", "http://a.test/broken", "http://a.test/slow", "http://a.test/reset"} <= repeated
    assert all(o[u]["attempts"] > 1 for u in repeated if not u.endswith("/robots.txt"))


def test_warc_records(full):
    from warcio.archiveiterator import ArchiveIterator

    out, stats, log, _ = full
    files = sorted(out.glob("*.warc.gz"))
    assert [f.name for f in files] == ["crawl-00000.warc.gz"] and not list(out.glob("*.open"))
    with open(files[0], "rb") as f:
        records = [(r.rec_type, r.rec_headers, r.content_stream().read()) for r in ArchiveIterator(f)]
    assert records[0][0] == "warcinfo"
    pairs = records[1:]
    assert len(pairs) % 2 == 0 and len(pairs) // 2 == stats["pages"] - sum(
        1 for r in log if r["outcome"] in ("timeout", "connection_error")
    )
    for (t1, h1, _), (t2, h2, _) in zip(pairs[::2], pairs[1::2]):
        assert (t1, t2) == ("request", "response")
        assert h1.get_header("WARC-Target-URI") == h2.get_header("WARC-Target-URI")
        assert h2.get_header("WARC-Concurrent-To") == h1.get_header("WARC-Record-ID")
    responses = {r["url"]: r for r in iter_warc_responses(files[0])}
    assert responses["http://a.test/r1"]["status"] == 302  # each redirect hop is recorded
    assert responses["http://a.test/r1"]["headers"]["Location"] == "/r2"
    assert responses["http://a.test/big.html"]["truncated"] == "length"
    assert responses["http://a.test/binary.html"]["body"] == BINARY
    # bodies come back as the server meant them, whatever the transfer or content encoding
    for url in ("p3.html", "gzipped.html", "chunked.html"):
        assert responses["http://a.test/" + url]["body"] == A_PAGES["/p3.html"]
    assert responses["http://a.test/gzipped.html"]["headers"]["X-Crawler-Content-Encoding"] == "gzip"
    with open(files[0], "rb") as f:
        request = next(r for r in ArchiveIterator(f) if r.rec_type == "request")
    h = request.http_headers  # warcio splits the request line "GET /path HTTP/1.1" after the method
    assert h.protocol == "GET" and h.statusline.startswith("/") and h.statusline.endswith(" HTTP/1.1")
    assert h.get_header("Host") == "a.test" and h.get_header("User-Agent") == CrawlConfig.user_agent
    assert all(":" not in u.split("//")[1] for u in responses)  # URLs as crawled, no mapped port


def test_truncated_warc_yields_records_before_damage(full, tmp_path):
    out, _, _, _ = full
    src = out / "crawl-00000.warc.gz"
    whole = list(iter_warc_responses(src))
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size * 2 // 3])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        part = list(iter_warc_responses(cut))
    assert 0 < len(part) < len(whole)
    assert [r["url"] for r in part] == [r["url"] for r in whole[: len(part)]]
    assert [r["body"] for r in part] == [r["body"] for r in whole[: len(part)]]
    assert any("cut.warc.gz" in str(w.message) and "byte" in str(w.message) for w in caught)
    garbage = tmp_path / "garbage.warc.gz"
    garbage.write_bytes(b"this is not a WARC file at all")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        assert list(iter_warc_responses(garbage)) == []


def test_bounds_pages_and_depth(web, tmp_path):
    stats = crawl(config(web, max_pages=4), tmp_path / "pages")
    assert stats["pages"] == 4 and stats["stopped"] == "max_pages"
    responses = list(iter_warc_responses(tmp_path / "pages" / "crawl-00000.warc.gz"))
    assert len(responses) == 4

    stats = crawl(config(web, max_depth=1, seeds=["http://a.test/p1.html"]), tmp_path / "depth")
    log = by_url(read_log(tmp_path / "depth"))
    assert log["http://a.test/deep1.html"]["outcome"] == "fetched"  # depth 1
    assert "http://a.test/deep2.html" not in log  # depth 2: never queued
    assert max(r["depth"] for r in log.values()) == 1

    # the byte bound stops new requests; those already in flight finish (one here)
    stats = crawl(config(web, max_bytes=500, concurrency=1), tmp_path / "bytes")
    assert stats["stopped"] == "max_bytes" and stats["pages"] == 1 and stats["bytes"] > 500


def test_warc_files_rotate(web, tmp_path):
    from warcio.archiveiterator import ArchiveIterator

    stats = crawl(config(web, max_pages=8, warc_max_bytes=3_000), tmp_path)
    files = sorted(tmp_path.glob("*.warc.gz"))
    assert len(files) > 1 and [f.name for f in files] == stats["warc_files"]
    assert files[0].name == "crawl-00000.warc.gz" and not list(tmp_path.glob("*.open"))
    for f in files:
        with open(f, "rb") as fh:
            assert next(iter(ArchiveIterator(fh))).rec_type == "warcinfo"
    assert sum(len(list(iter_warc_responses(f))) for f in files) == 8 - sum(
        1 for r in read_log(tmp_path) if r["outcome"] in ("timeout", "connection_error")
    )


def test_resume_fetches_only_new_urls(web, tmp_path):
    out = tmp_path / "resume"
    cfg = config(web, concurrency=2)
    first = crawl(dataclasses_replace(cfg, max_pages=5), out)
    first_urls = {r["url"] for r in iter_warc_responses(out / "crawl-00000.warc.gz")}
    first_bytes = (out / "crawl-00000.warc.gz").read_bytes()
    start = len(web.log)
    second = crawl(dataclasses_replace(cfg, max_pages=12), out)
    with web.lock:
        asked = {f"http://{h}{p}" for h, p in web.log[start:] if not p.endswith("/robots.txt")}
    assert first["pages"] == 5 and second["resumed"] == 5 and second["pages"] == 7
    assert not asked & first_urls
    assert (out / "crawl-00000.warc.gz").read_bytes() == first_bytes  # what was written is kept
    second_urls = {r["url"] for r in iter_warc_responses(out / "crawl-00001.warc.gz")}
    assert not second_urls & first_urls and len(first_urls | second_urls) >= 10


def test_interrupted_warc_is_salvaged(web, tmp_path):
    out = tmp_path / "salvage"
    crawl(config(web, max_pages=6), out)
    src = out / "crawl-00000.warc.gz"
    urls = [r["url"] for r in iter_warc_responses(src)]
    # pretend the crawl was killed while writing: an unfinished ".open" file with a cut last record
    src.rename(out / "crawl-00000.warc.gz.open")
    data = (out / "crawl-00000.warc.gz.open").read_bytes()
    (out / "crawl-00000.warc.gz.open").write_bytes(data[:-100])
    stats = crawl(config(web, max_pages=6), out)
    assert stats["salvaged_warc_files"] == ["crawl-00000.warc.gz"]
    kept = [r["url"] for r in iter_warc_responses(src)]
    assert kept == urls[:-1] and stats["resumed"] == 5 and stats["pages"] == 1


def test_time_limit_and_running_event_loop(web, tmp_path):
    stats = crawl(config(web, time_limit_s=0), tmp_path / "t0")
    assert stats["stopped"] == "time_limit" and stats["pages"] == 0

    async def in_a_notebook():  # Jupyter runs cells inside an event loop; asyncio.run would refuse
        return crawl(config(web, max_pages=2), tmp_path / "loop")

    assert asyncio.run(in_a_notebook())["pages"] == 2


def test_default_resolution_without_mapping(web, tmp_path):
    port = web.server_address[1]
    stats = crawl(CrawlConfig(seeds=[f"http://127.0.0.1:{port}/"], max_pages=3, timeout_s=2), tmp_path / "ip")
    log = read_log(tmp_path / "ip")
    assert stats["pages"] == 3
    assert {r["outcome"] for r in log if r["url"].startswith("http://a.test/")} == {"off_host"}


def dataclasses_replace(cfg, **kw):
    import dataclasses

    return dataclasses.replace(cfg, **kw)


def test_bad_seeds_give_a_clear_error():
    with pytest.raises(ValueError, match="seeds"):
        CrawlConfig(seeds=["mailto:x@y"])
