"""The mini-web: deterministic, every planted case present and true to its manifest, and served right."""

from __future__ import annotations

import hashlib
import http.client
import re
import threading
import time
from collections import deque
from pathlib import Path

import pytest

from llmkb.data.dedup import jaccard
from llmkb.data.miniweb import FREQUENT_MENTIONS, PASSAGE_REPEATS, SLOW_DELAYS, generate, main_text
from llmkb.data.server import MiniWebServer
from llmkb.io import read_json

PLANTED = [
    "content",
    "dup_exact",
    "dup_near",
    "foreign",
    "mixed",
    "lowq",
    "blocklisted_domain",
    "banned_word_url",
    "pii",
    "robots_disallowed",
    "redirect",
    "redirect_loop",
    "not_found",
    "error_500",
    "transient_500",
    "slow",
    "bad_charset",
    "binary",
    "huge",
    "malformed",
    "encyclopedia",
]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("miniweb") / "site"
    generate(out, seed=0, pages=300)
    return out


@pytest.fixture(scope="module")
def manifest(site) -> dict:
    return read_json(site / "manifest.json")


@pytest.fixture(scope="module")
def htmls(site, manifest) -> dict[str, str]:
    """URL -> page HTML, for every page that has a file (binary bodies decoded loosely)."""
    out = {}
    for url, page in manifest["pages"].items():
        path = url.split(page["host"], 1)[1]
        file = site / "hosts" / page["host"] / (path[1:] + "index.html" if path.endswith("/") else path[1:])
        if file.exists():
            out[url] = file.read_bytes().decode(page.get("true_charset", "utf-8"), errors="replace")
    return out


def tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(folder)).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def test_same_seed_same_bytes_and_another_seed_differs(site, tmp_path):
    generate(tmp_path / "again", seed=0, pages=300)
    generate(tmp_path / "other", seed=1, pages=300)
    assert tree_digest(tmp_path / "again") == tree_digest(site)
    assert tree_digest(tmp_path / "other") != tree_digest(site)


def test_every_planted_kind_is_present(manifest):
    counts = manifest["counts"]
    for kind in PLANTED:
        assert counts.get(kind, 0) >= (1 if kind == "huge" else 2), kind
    assert set(manifest["seeds"]) <= set(manifest["pages"])
    assert all(url.startswith("http://") and ":" not in url[len("http://") :] for url in manifest["pages"])
    assert all(host.endswith(".test") for host in manifest["hosts"])
    langs = {p["lang"] for p in manifest["pages"].values() if "foreign" in p["kind"]}
    assert langs == {"vi", "zh", "fr", "de", "es", "ru", "ja"}


def test_duplicates_are_what_the_manifest_says(manifest, htmls):
    exact = [u for u, p in manifest["pages"].items() if "dup_exact" in p["kind"]]
    near = [u for u, p in manifest["pages"].items() if "dup_near" in p["kind"]]
    for url in exact:
        original = manifest["pages"][url]["duplicate_of"]
        assert main_text(htmls[url]) == main_text(htmls[original]), url
        assert htmls[url] != htmls[original]  # same text, different boilerplate
    for url in near:
        a, b = main_text(htmls[url]), main_text(htmls[manifest["pages"][url]["duplicate_of"]])
        assert a != b and jaccard(a, b) >= 0.8, url


def test_encyclopedia_facts_are_stated_as_often_as_the_manifest_says(manifest, htmls):
    wiki_text = "\n".join(main_text(h) for u, h in htmls.items() if "encyclopedia" in manifest["pages"][u]["kind"])
    sentences = re.split(r"(?<=\.)\s+", wiki_text)
    everything = "\n".join(htmls.values())
    entities = manifest["entities"]
    assert {e["frequency"] for e in entities} == {"frequent", "once", "never"} and len(entities) == 300
    for e in entities:
        name, facts = e["name"], e["facts"]
        stated = [
            s
            for s in sentences
            if name in s and str(facts["born"]) in s and facts["city"] in s and facts["occupation"] in s
        ]
        if e["frequency"] == "frequent":
            assert len(stated) == FREQUENT_MENTIONS and len(e["pages"]) == FREQUENT_MENTIONS, name
        elif e["frequency"] == "once":
            assert len(stated) == 1 and everything.count(name) == 1, name
        else:
            assert name not in everything and not e["pages"], name


def test_passages_repeat_exactly_as_planned(manifest, htmls):
    texts = {u: main_text(h) for u, h in htmls.items()}
    for passage in manifest["passages"]:
        carriers = [u for u, t in texts.items() if passage["text"] in t]
        assert sorted(carriers) == sorted(passage["urls"]) and len(carriers) == passage["repeats"]
    assert [p["repeats"] for p in manifest["passages"]] == [PASSAGE_REPEATS, 1]


def test_pii_is_on_its_page_and_blocklist_matches_the_urls(manifest, htmls):
    pii_pages = {u: p for u, p in manifest["pages"].items() if p["pii"]}
    kinds = {item["kind"] for p in pii_pages.values() for item in p["pii"]}
    assert kinds == {"email", "phone", "ipv4"}
    assert any(v["value"].startswith("+") for p in pii_pages.values() for v in p["pii"] if v["kind"] == "phone")
    for url, page in pii_pages.items():
        for item in page["pii"] + page["pii_kept"]:
            assert item["value"] in main_text(htmls[url]), (url, item)
    words, domains = manifest["blocklist"]["url_words"], manifest["blocklist"]["domains"]
    for url, page in manifest["pages"].items():
        tokens = set(re.split(r"[^a-z0-9]+", url.lower()))
        bad = page["host"] in domains or bool(tokens & set(words))
        assert bad == bool({"blocklisted_domain", "banned_word_url"} & set(page["kind"])), url


def test_a_crawler_from_the_seeds_reaches_nearly_everything(site, manifest, htmls):
    routes = read_json(site / "routes.json")
    depth = {u: 0 for u in manifest["seeds"]}
    queue = deque(manifest["seeds"])
    while queue:
        url = queue.popleft()
        if depth[url] >= 6:
            continue
        found = (
            [routes[url]["location"]]
            if "location" in routes.get(url, {})
            else re.findall(r'href="(http://[^"]+)"', htmls.get(url, ""))
        )
        for link in found:
            if link not in depth:
                depth[link] = depth[url] + 1
                queue.append(link)
    assert set(manifest["pages"]) <= set(depth)
    disallowed = [u for u, p in manifest["pages"].items() if "robots_disallowed" in p["kind"]]
    for url in disallowed:  # the page exists, is linked, and sits under a prefix robots.txt forbids
        host, path = manifest["pages"][url]["host"], url.split(".test", 1)[1]
        assert any(path.startswith(prefix) for prefix in manifest["robots"][host])
        assert any(
            f"Disallow: {prefix}" in (site / "hosts" / host / "robots.txt").read_text()
            for prefix in manifest["robots"][host]
        )


def test_bad_inputs_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="at least 100"):
        generate(tmp_path, pages=10)
    with pytest.raises(FileNotFoundError, match="no generated site"):
        MiniWebServer(tmp_path / "nothing")


# --------------------------------------------------------------------------- the server


def get(port: int, host: str, path: str, timeout: float = 5.0) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": f"{host}:{port}"})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def first(manifest: dict, kind: str, **match) -> tuple[str, str]:
    url = next(
        u for u, p in manifest["pages"].items() if kind in p["kind"] and all(p.get(k) == v for k, v in match.items())
    )
    host = manifest["pages"][url]["host"]
    return host, url.split(host, 1)[1]


def test_the_server_routes_by_host_and_plays_every_trick(site, manifest):
    threads_before = threading.active_count()
    with MiniWebServer(site, port=0) as server:
        port = server.port
        assert server.url("wiki.test", "/") == "http://wiki.test/" and server.resolve["wiki.test"] == (
            "127.0.0.1",
            port,
        )
        # Host routing: the same path, different sites; an unknown host is a 404.
        wiki, docs = get(port, "wiki.test", "/")[2], get(port, "docs.test", "/")[2]
        assert b"Welcome to wiki.test" in wiki and b"Welcome to docs.test" in docs
        assert get(port, "nowhere.test", "/")[0] == 404
        assert get(port, "wiki.test", "/no/such/page.html")[0] == 404
        assert get(port, "wiki.test", "/../../manifest.json")[0] == 404
        # robots.txt as text, and absent where the host has none.
        status, headers, body = get(port, "forum.test", "/robots.txt")
        assert status == 200 and headers["content-type"].startswith("text/plain") and b"Disallow: /private/" in body
        assert get(port, "shakespeare.test", "/robots.txt")[0] == 404
        # A redirect chain ends on a real page; the loop never ends.
        host, path = first(manifest, "redirect", status=301)
        status, headers, _ = get(port, host, path)
        assert status == 301 and headers["location"] == manifest["pages"][f"http://{host}{path}"]["redirect_to"]
        host, path = first(manifest, "redirect_loop")
        hops = [path]
        for _ in range(3):
            status, headers, _ = get(port, host, hops[-1])
            assert status == 302
            hops.append(headers["location"].split(host, 1)[1])
        assert hops[0] == hops[2]
        # 404 and 500 as planted; the transient 500 fails once, then works.
        assert get(port, *first(manifest, "not_found"))[0] == 404
        assert get(port, *first(manifest, "error_500"))[0] == 500
        transient = first(manifest, "transient_500")
        assert [get(port, *transient)[0] for _ in range(3)] == [500, 200, 200]
        # A page whose header says UTF-8 over Windows-1252 bytes (and the reverse).
        host, path = first(manifest, "bad_charset", true_charset="cp1252")
        status, headers, body = get(port, host, path)
        assert "charset=utf-8" in headers["content-type"] and "café" in body.decode("cp1252")
        try:
            body.decode("utf-8")
            raise AssertionError("cp1252 bytes should not decode as UTF-8")
        except UnicodeDecodeError:
            pass
        host, path = first(manifest, "bad_charset", true_charset="utf-8")
        assert "iso-8859-1" in get(port, host, path)[1]["content-type"]
        # Binary bytes served as HTML.
        status, headers, body = get(port, *first(manifest, "binary"))
        assert headers["content-type"].startswith("text/html") and b"\0" in body
        assert server.fetched(f"http://{transient[0]}{transient[1]}") == 3
        assert (transient[0], transient[1], 500) in server.requests
        # A slow page: the client gives up, and stopping the server does not wait out the delay.
        host, path = first(manifest, "slow", delay=SLOW_DELAYS[0])
        with pytest.raises(TimeoutError):
            get(port, host, path, timeout=0.3)
    t0 = time.perf_counter()
    server.stop()  # a second stop is harmless
    assert time.perf_counter() - t0 < 1
    deadline = time.time() + 3
    while threading.active_count() > threads_before and time.time() < deadline:
        time.sleep(0.05)
    assert threading.active_count() == threads_before
    with pytest.raises(ConnectionRefusedError):
        get(port, "wiki.test", "/")
