"""A generated mini-web folder -> a real HTTP server on 127.0.0.1 that serves every host on one port.

In: the folder :func:`llmkb.data.miniweb.generate` wrote (``hosts/<host>/<path>`` and
``routes.json``). Out: HTTP answers, chosen by the request's ``Host`` header (any ``:port`` is
ignored), with the behaviour ``routes.json`` asks for: redirects with a ``Location``, 404, 500,
a 500 that happens only on the first request, delays, and deliberately wrong ``Content-Type``
headers. Everything else is a plain 200 of the file, ``/`` and ``.../`` meaning ``index.html``.
An unknown host or a missing file is a 404.

The crawler is told to send every ``*.test`` name to ``127.0.0.1:<port>`` (:attr:`MiniWebServer.resolve`),
so URLs stay portless (``http://wiki.test/...``) exactly as the manifest writes them.

In code::

    with MiniWebServer("runs/x/data/miniweb") as server:   # port 0: any free port
        crawl(CrawlConfig(seeds=[server.url("wiki.test")], resolve=server.resolve), out)
        server.requests   # [(host, path, status), ...] in arrival order

By hand: ``python -m llmkb.data.server runs/x/data/miniweb --port 8000``, then
``curl -H 'Host: wiki.test' http://127.0.0.1:8000/`` or
``curl --resolve wiki.test:8000:127.0.0.1 http://wiki.test:8000/``.
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self
from urllib.parse import unquote, urlsplit

CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".txt": "text/plain; charset=utf-8"}
REDIRECTS = (301, 302, 303, 307, 308)


def host_of(header: str | None) -> str:
    """The host name of a ``Host`` header, lowercased, without its port.

    >>> host_of("Wiki.TEST:8080"), host_of("wiki.test"), host_of(None), host_of("[::1]:80")
    ('wiki.test', 'wiki.test', '', '::1')
    """
    if not header:
        return ""
    header = header.strip().lower()
    if header.startswith("["):  # an IPv6 literal: [addr]:port
        return header[1 : header.find("]")]
    return header.rsplit(":", 1)[0] if ":" in header else header


def file_for(path: str) -> str:
    """The file (relative to the host's folder) that serves a URL path.

    >>> file_for("/"), file_for("/plays/"), file_for("/a%20b.html")
    ('index.html', 'plays/index.html', 'a b.html')
    """
    path = unquote(path).lstrip("/")
    return path + "index.html" if path == "" or path.endswith("/") else path


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    timeout = 10  # a client that connects and says nothing cannot hold a thread forever
    server_version = "llmkb-miniweb/0.1"

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def log_message(self, format: str, *args) -> None:
        pass  # the request log (MiniWebServer.requests) replaces per-request stderr lines

    def _answer(self, send_body: bool) -> None:
        owner = self.server.owner
        parts = urlsplit(self.path)  # a proxy-style absolute URL names its host in the request line
        host = (parts.hostname or "").lower() if parts.scheme else host_of(self.headers.get("Host"))
        path = parts.path or "/"
        url = f"http://{host}{path}"
        route = owner.routes.get(url, {})
        status, headers, body = 200, {}, b""
        if host not in owner.hosts:
            status, body = 404, b"unknown host\n"
        elif route.get("status") in REDIRECTS:
            status, headers = route["status"], {"Location": route["location"]}
        elif route.get("status", 200) >= 400:
            status, body = route["status"], b"<html><body><h1>Error</h1><p>Something went wrong.</p></body></html>\n"
        elif route.get("fail_first") and owner._first_time(url):
            status, body = 500, b"<html><body><h1>500 Internal Server Error</h1></body></html>\n"
        else:
            file = (owner.site_dir / "hosts" / host / file_for(path)).resolve()
            root = (owner.site_dir / "hosts" / host).resolve()
            if root not in file.parents or not file.is_file():
                status, body = 404, b"<html><body><h1>404 Not Found</h1></body></html>\n"
            else:
                body = file.read_bytes()
                headers["Content-Type"] = route.get("content_type") or CONTENT_TYPES.get(
                    file.suffix, "application/octet-stream"
                )
        if route.get("delay") and status == 200:
            owner._stopping.wait(route["delay"])  # returns at once when the server is stopping
        owner._log(host, path, status)
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if "Content-Type" not in headers:
                self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if send_body:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a crawler's timeout on a slow page): nothing to do


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins the handler threads: none outlives the server
    block_on_close = True
    request_queue_size = 128  # a crawler opens many connections at once
    owner: MiniWebServer

    def handle_error(self, request, client_address) -> None:
        pass  # a client hanging up mid-answer is normal for a crawler; tracebacks would be noise


class MiniWebServer:
    """Serve a generated mini-web on ``127.0.0.1:port`` (0: a free port), as a context manager.

    ``requests`` lists ``(host, path, status)`` for every request answered, in order, so tests can
    check what a crawler fetched (and what it never did).
    """

    def __init__(self, site_dir: str | Path, port: int = 0, bind: str = "127.0.0.1") -> None:
        self.site_dir = Path(site_dir)
        hosts_dir = self.site_dir / "hosts"
        if not hosts_dir.is_dir():
            raise FileNotFoundError(f"{hosts_dir}: no generated site here (run llmkb.data.miniweb.generate first)")
        routes_file = self.site_dir / "routes.json"
        try:
            self.routes: dict[str, dict] = (
                json.loads(routes_file.read_text(encoding="utf-8")) if routes_file.exists() else {}
            )
        except json.JSONDecodeError as e:
            raise ValueError(f"{routes_file}: not valid JSON ({e})") from e
        self.hosts = sorted(p.name for p in hosts_dir.iterdir() if p.is_dir())
        self.requests: list[tuple[str, str, int]] = []
        self._bind, self._port = bind, port
        self._lock = threading.Lock()
        self._failed: set[str] = set()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle
    def start(self) -> MiniWebServer:
        if self._httpd is not None:
            raise RuntimeError("MiniWebServer: already started")
        self._stopping.clear()
        self._httpd = _HTTPServer((self._bind, self._port), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="miniweb-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()  # wakes handlers sleeping on a slow route
        self._httpd.shutdown()
        self._httpd.server_close()  # joins handler threads, closes the listening socket
        assert self._thread is not None
        self._thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- what callers need
    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("MiniWebServer: not started")
        return self._httpd.server_address[1]

    def url(self, host: str, path: str = "/") -> str:
        """The portless URL of ``path`` on ``host``, as the manifest writes it."""
        return f"http://{host}{path}"

    @property
    def resolve(self) -> dict[str, tuple[str, int]]:
        """Host name -> (ip, port) for the crawler's resolver: every host of the site goes here."""
        return {host: (self._bind, self.port) for host in self.hosts}

    def fetched(self, url: str) -> int:
        """How many requests were answered for ``url`` (``http://host/path``)."""
        with self._lock:
            return sum(1 for h, p, _ in self.requests if f"http://{h}{p}" == url)

    # -- used by the handler threads
    def _log(self, host: str, path: str, status: int) -> None:
        with self._lock:
            self.requests.append((host, path, status))

    def _first_time(self, url: str) -> bool:
        """True once per URL: the first request to a "fail_first" route gets a 500."""
        with self._lock:
            if url in self._failed:
                return False
            self._failed.add(url)
            return True


def serve_forever(site_dir: str | Path, port: int = 8000) -> None:
    """Serve ``site_dir`` until Ctrl-C, after printing how to browse it."""
    with MiniWebServer(site_dir, port=port) as server:
        print(f"Serving {len(server.hosts)} hosts from {site_dir} on http://127.0.0.1:{server.port}/")
        print(f"  curl -H 'Host: wiki.test' http://127.0.0.1:{server.port}/")
        print(f"  curl --resolve wiki.test:{server.port}:127.0.0.1 http://wiki.test:{server.port}/chronicle/1.html")
        print("  hosts: " + ", ".join(server.hosts))
        print("Ctrl-C stops.", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("\nstopped")


def main(argv: list[str] | None = None) -> int:
    """``python -m llmkb.data.server SITE_DIR [--port 8000] [--generate --pages 300 --seed 0]``."""
    parser = argparse.ArgumentParser(prog="python -m llmkb.data.server", description="Serve a generated mini-web.")
    parser.add_argument("site_dir", type=Path)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--generate", action="store_true", help="generate the site first")
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.generate:
        from llmkb.data.miniweb import generate

        generate(args.site_dir, seed=args.seed, pages=args.pages, progress=True)
    serve_forever(args.site_dir, args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
