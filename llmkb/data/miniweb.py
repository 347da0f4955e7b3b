"""A seed -> a small, deterministic web to crawl, with the answer key to every trap planted in it.

In: an output folder, a seed and a page budget. Out (same seed -> byte-identical files):

- ``hosts/<host>/<path>``: the HTML pages of a dozen ``.test`` hosts, plus ``robots.txt`` on some;
- ``routes.json``: what the server does for URLs that are not a plain 200 (status, ``Location``,
  delay, ``Content-Type``, fail once), read by :mod:`llmkb.data.server`;
- ``manifest.json``: the ground truth, so every later filter can be scored (see :func:`generate`).

The prose is real and comes from :mod:`llmkb.corpus` (Shakespeare's scenes, standard-library
docstrings, Faker's multilingual text); the web around it is invented. Each host has its own
boilerplate (menus, cookie banners, ads, sidebars of links, footers) so text extraction has work
to do, and the hosts link to each other so a crawler from the home pages reaches every page within
a few hops. Planted on top: exact and near duplicates, foreign and mixed-language pages, low-quality
pages, blocklisted domains and banned words in URLs, personal data, robots.txt exclusions, HTTP
trouble (redirects, a loop, 404, 500, a transient 500, slow answers, wrong charsets, binary bodies,
a huge page, broken HTML), and an encyclopedia of the invented people of :mod:`llmkb.world`, whose
facts are stated 30 times, once, or never, for the memorisation and hallucination experiments later
in the story.

Entry point: ``generate(Path("runs/x/data/miniweb"), seed=0, pages=3000)``; serve it with
``python -m llmkb.data.server runs/x/data/miniweb``.
"""

from __future__ import annotations

import html
import itertools
import random
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from llmkb.data.dedup import jaccard  # the same similarity the MinHash dedup estimates
from llmkb.io import write_json
from llmkb.world import FACT_TEMPLATES, fact_sentence, make_entities, make_passage

HOSTS = {  # host -> layout (see LAYOUTS); the first seven are the crawl's seeds
    "shakespeare.test": "classic",
    "docs.test": "docs",
    "wiki.test": "wiki",
    "blog.test": "blog",
    "news.test": "news",
    "forum.test": "forum",
    "mirror.test": "classic",
    "casino-bonus.test": "spam",
    "free-pills.test": "spam",
    "adult-videos.test": "spam",
}
SEED_HOSTS = list(HOSTS)[:7]
BLOCKED_DOMAINS = ["casino-bonus.test", "free-pills.test", "adult-videos.test"]
BANNED_URL_WORDS = ["xxx", "porn", "nsfw"]
ROBOTS = {"forum.test": ["/private/", "/admin/"], "blog.test": ["/drafts/"], "docs.test": []}
LANGS = ["vi", "zh", "fr", "de", "es", "ru", "ja"]
LOWQ_KINDS = ["keyword_spam", "repeated_lines", "link_farm", "short", "symbols"]
MAIN_START, MAIN_END = "<!--main-->", "<!--/main-->"  # the ground-truth main text sits between these

FREQUENT_MENTIONS = 30  # how often each fact of a "frequent" entity is stated
PASSAGE_REPEATS = 30
HUGE_BYTES = 3_000_000
# Seconds. The data stage crawls with an 8 s timeout (DataConfig.crawl_timeout_s): the first page
# always times out and the second always arrives, on any machine. Both stay far from the timeout
# (a 2 s page against a 3 s timeout arrived on one CPU and not on a slower one).
SLOW_DELAYS = (20.0, 0.5)


# --------------------------------------------------------------------------- small pure helpers


def main_text(page_html: str) -> str:
    """The ground-truth main text of a generated page: what sits between the main markers, as text.

    Block tags become paragraph breaks, inline tags vanish, entities are decoded.

    >>> main_text("<nav>Home</nav><!--main--><h1>Bees</h1><p>Bees &amp; wasps.</p><!--/main--><footer>(c)</footer>")
    'Bees\\n\\nBees & wasps.'
    """
    start, end = page_html.find(MAIN_START), page_html.find(MAIN_END)
    if start < 0 or end < start:
        return ""
    inner = page_html[start + len(MAIN_START) : end]
    inner = re.sub(r"(?i)</?(?:p|h\d|div|li|ul|ol|pre|blockquote|table|tr|section|article)\b[^>]*>", "\n\n", inner)
    inner = re.sub(r"<[^>]+>", "", inner)
    paragraphs = (" ".join(html.unescape(p).split()) for p in re.split(r"\n\s*\n", inner))
    return "\n\n".join(p for p in paragraphs if p)


def slug(text: str, limit: int = 40) -> str:
    """A URL-safe lowercase slug.

    >>> slug("SCENE II. Another part of the wood.")
    'scene-ii-another-part-of-the-wood'
    """
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-") or "page"


def url_of(host: str, path: str) -> str:
    """The portless URL the manifest uses.

    >>> url_of("wiki.test", "/a.html")
    'http://wiki.test/a.html'
    """
    return f"http://{host}{path}"


# --------------------------------------------------------------------------- the page model


@dataclass
class Page:
    host: str
    path: str  # starts with "/"; "/" and ".../" are served from index.html
    title: str = ""
    paragraphs: list[str] = field(default_factory=list)  # the main text, one string per paragraph
    kind: list[str] = field(default_factory=lambda: ["content"])
    lang: str = "en"
    duplicate_of: str | None = None
    pii: list[dict] = field(default_factory=list)
    info: dict = field(default_factory=dict)  # extra manifest fields (source, similarity, delay...)
    route: dict = field(default_factory=dict)  # server behaviour other than a plain 200
    main_html: str | None = None  # hand-made main HTML (link farms, broken markup); else from paragraphs
    body: bytes | None = None  # the exact bytes to serve (binary, wrong charset); else rendered
    has_file: bool = True  # False for 404s and redirects
    listed: bool = True  # linked from its host's archive pages
    links: list[str] = field(default_factory=list)  # sidebar links, filled in by _link

    @property
    def url(self) -> str:
        return url_of(self.host, self.path)

    @property
    def file(self) -> str:
        return self.path[1:] + "index.html" if self.path.endswith("/") else self.path[1:]

    def render_main(self) -> str:
        if self.main_html is not None:
            return self.main_html
        heading = f"<h1>{html.escape(self.title)}</h1>\n" if self.title else ""
        return heading + "\n".join(f"<p>{html.escape(p)}</p>" for p in self.paragraphs)


# --------------------------------------------------------------------------- prose sources


def _scene_paragraphs(text: str) -> list[str]:
    """A scene's speeches as one paragraph each, "SPEAKER line line line" (verse lines joined).

    One line per verse line would make most lines short, which FineWeb's line filters read as a list.

    >>> _scene_paragraphs("SCENE I. A heath.\\n\\nMACBETH\\nSo foul and fair\\na day.")
    ['SCENE I. A heath.', 'MACBETH So foul and fair a day.']
    """
    out = []
    for block in text.split("\n\n"):
        lines = [ln.strip() for ln in block.split("\n") if ln.strip()]
        if not lines:
            continue
        if len(lines) > 1 and lines[0].isupper() and len(lines[0]) < 40:
            out.append(f"{lines[0]} {' '.join(lines[1:])}")  # no colon: Gopher counts punctuation as words
        else:
            out.append(" ".join(lines))
    return out


def _chunks(paragraphs: list[str], target_chars: int) -> list[list[str]]:
    """Consecutive runs of paragraphs of about ``target_chars`` each (the last may be longer).

    >>> [len(c) for c in _chunks(["x" * 10] * 7, 25)]
    [3, 4]
    """
    chunks, current, size = [], [], 0
    for p in paragraphs:
        current.append(p)
        size += len(p)
        if size >= target_chars:
            chunks.append(current)
            current, size = [], 0
    if current:
        if chunks and size < target_chars / 2:
            chunks[-1].extend(current)
        else:
            chunks.append(current)
    return chunks


def english_documents(count: int, rng: random.Random) -> list[dict]:
    """``count`` English documents ``{"id", "kind", "title", "paragraphs"}``: ~60% Shakespeare, ~40% docstrings.

    When more pages are asked for than there are scenes (or modules), each is cut into parts of
    consecutive paragraphs, so a large site still repeats no text by accident. If both sources
    together cannot fill ``count``, fewer documents come back (the caller says so).
    """
    from llmkb.corpus import shakespeare_scenes, stdlib_docstrings

    n_plays = max(1, round(count * 0.6))
    n_docs = count - n_plays
    scenes = []
    for scene in shakespeare_scenes():
        paragraphs = _scene_paragraphs(scene["text"])
        play = scene["id"].split("/")[1]
        heading = paragraphs[0] if len(paragraphs[0]) < 80 else "A scene"
        title = f"{play.replace('-', ' ').title().replace(' S ', 's ')}: {heading}"
        scenes.append({"id": scene["id"], "kind": "play", "play": play, "title": title, "paragraphs": paragraphs[1:]})
    # Docstrings: reading every module costs seconds, so read only as many as are needed.
    modules = []
    for module in stdlib_docstrings():
        blocks = [" ".join(b.split()) for b in module["text"].split("\n\n") if b.strip()]
        name = blocks[0].removeprefix("Module ")
        modules.append(
            {
                "id": module["id"],
                "kind": "module",
                "module": name,
                "title": f"{name} — Python library notes",
                "paragraphs": blocks[1:],
            }
        )
        if len(modules) >= n_docs * 1.5 and len(modules) >= 30:
            break
    plays = _pick_or_split(scenes, n_plays, 1500, rng)
    return plays + _pick_or_split(modules, count - len(plays), 1000, rng)


def _pick_or_split(docs: list[dict], need: int, min_chars: int, rng: random.Random) -> list[dict]:
    """``need`` documents: a sample of whole ones if there are enough, else parts of all of them."""
    if need <= len(docs):
        return [dict(d, id=f"{d['id']}/0") for d in sorted(rng.sample(docs, need), key=docs.index)]
    total = sum(len(p) for d in docs for p in d["paragraphs"])
    target = max(min_chars, int(total / (need * 1.15)))  # a little smaller than needed, then sample
    parts = []
    for d in docs:
        chunks = _chunks(d["paragraphs"], target)
        for k, chunk in enumerate(chunks):
            title = d["title"] + (f" (part {k + 1})" if len(chunks) > 1 else "")
            parts.append(dict(d, id=f"{d['id']}/{k}", title=title, paragraphs=chunk))
    return [parts[i] for i in sorted(rng.sample(range(len(parts)), min(need, len(parts))))]


# --------------------------------------------------------------------------- boilerplate


LAYOUTS: dict[str, dict] = {
    "classic": {
        "nav": ["Home", "Plays", "Sonnets", "Glossary", "About"],
        "cookie": False,
        "ads": 1,
        "footer": "All texts are in the public domain. Site design by the volunteers.",
    },
    "docs": {
        "nav": ["Home", "Library", "Tutorial", "Search", "Download"],
        "cookie": False,
        "ads": 0,
        "footer": "Built from the module sources. Found a bug? Report it on the tracker.",
    },
    "wiki": {
        "nav": ["Main page", "Random article", "Recent changes", "Help"],
        "cookie": False,
        "ads": 0,
        "footer": "Text is available under a free licence; additional terms may apply.",
    },
    "blog": {
        "nav": ["Home", "Archive", "Travel", "Reading", "Subscribe"],
        "cookie": True,
        "ads": 2,
        "footer": "Thanks for reading. Opinions are my own.",
    },
    "news": {
        "nav": ["Front page", "World", "Culture", "Science", "Opinion", "Weather"],
        "cookie": True,
        "ads": 3,
        "footer": "Copyright the news desk. Reproduction without permission is prohibited.",
    },
    "forum": {
        "nav": ["Forums", "New posts", "Members", "Log in", "Register"],
        "cookie": True,
        "ads": 1,
        "footer": "Powered by a forum package. Times are UTC.",
    },
    "spam": {
        "nav": ["WIN", "BONUS", "CLAIM NOW"],
        "cookie": True,
        "ads": 4,
        "footer": "18+ only. Terms apply. Offer subject to availability.",
    },
}
AD_TEXTS = [
    "Sponsored: Sail the fjords this summer, cabins from 499.",
    "Advertisement: The reading lamp that readers love.",
    "Sponsored: Learn a language in ten minutes a day.",
    "Ad: Warm socks, three pairs for the price of two.",
    "Sponsored: Insurance made simple. Get a quote today.",
]
COOKIE_TEXT = (
    "We use cookies to improve your experience and to show relevant ads. By continuing you accept our cookie policy."
)


def _anchor(url: str, titles: dict[str, str]) -> str:
    text = titles.get(url) or url.rsplit("/", 1)[-1] or url
    return f'<a href="{html.escape(url)}">{html.escape(text[:60])}</a>'


def render(page: Page, rng: random.Random, titles: dict[str, str]) -> str:
    """The full HTML of ``page`` in its host's layout; the main text sits between the main markers."""
    style = HOSTS.get(page.host, "classic")
    lay = LAYOUTS[style]
    home = url_of(page.host, "/")
    nav = " ".join(f'<a href="{home}">{html.escape(item)}</a>' for item in lay["nav"])
    related = "\n".join(f"<li>{_anchor(u, titles)}</li>" for u in page.links)
    ads = "\n".join(f'<div class="ad-slot">{html.escape(ad)}</div>' for ad in rng.sample(AD_TEXTS, lay["ads"]))
    cookie = (
        f'<div id="cookie-banner" class="cookie">{COOKIE_TEXT} <button>Accept</button></div>' if lay["cookie"] else ""
    )
    main = MAIN_START + page.render_main() + MAIN_END
    title = html.escape(page.title or page.host)
    lang = page.lang if len(page.lang) == 2 else "en"
    head = (
        f'<!DOCTYPE html>\n<html lang="{lang}">\n'
        f'<head><meta charset="utf-8"><title>{title} | {page.host}</title></head>\n'
    )
    footer_links = " · ".join(f'<a href="{home}">{x}</a>' for x in ("Privacy", "Terms", "Contact"))
    if style in ("classic", "spam"):  # an old table layout
        return (
            head + f'<body>\n{cookie}<table width="100%"><tr><td class="menu">{nav}</td></tr>\n<tr><td valign="top">'
            f'{main}</td>\n<td class="side" valign="top"><b>See also</b><ul>{related}</ul>{ads}</td></tr>\n'
            f'<tr><td class="footer">{lay["footer"]} {footer_links}</td></tr></table>\n</body>\n</html>\n'
        )
    if style == "docs":
        crumbs = f'<div class="breadcrumbs"><a href="{home}">Docs</a> » Library » {title}</div>'
        return (
            head
            + f'<body>\n<div class="topbar">{nav} <select><option>3.11</option><option>3.12</option></select></div>\n'
            f'<div class="sphinxsidebar"><h3>Navigation</h3><ul>{related}</ul></div>\n<div class="document">{crumbs}\n'
            f'<div class="body" role="main">{main}</div></div>\n'
            f'<div class="footer">{lay["footer"]} {footer_links}</div>\n'
            "</body>\n</html>\n"
        )
    if style == "wiki":
        return (
            head + f'<body>\n<div id="mw-panel"><div class="portal">{nav}</div><div class="portal"><h3>Tools</h3>'
            f"<ul>{related}</ul></div></div>\n"
            '<div id="content"><div class="mw-indicators">From the free encyclopedia</div>\n'
            f'<div id="bodyContent">{main}</div>\n'
            '<div class="catlinks">Categories: Invented people | Chronicles</div></div>\n'
            f'<div id="footer">{lay["footer"]} {footer_links}</div>\n</body>\n</html>\n'
        )
    share = '<div class="share">Share: <a href="#">Facebook</a> <a href="#">Mastodon</a> <a href="#">E-mail</a></div>'
    return (
        head + f'<body>\n{cookie}\n<header><nav class="menu">{nav}</nav></header>\n{ads}\n<main><article>{main}'
        f"</article>{share if style != 'forum' else '<div class=signature>-- sent from my phone</div>'}</main>\n"
        f'<aside class="sidebar"><h3>Popular</h3><ul>{related}</ul><div class="newsletter">Get our newsletter: '
        f'<input placeholder="you@example"><button>Sign up</button></div></aside>\n<footer>{lay["footer"]} '
        f"{footer_links}</footer>\n</body>\n</html>\n"
    )


# --------------------------------------------------------------------------- planted pages


def planned_counts(pages: int) -> dict[str, int]:
    """How many pages of each planted kind a site of about ``pages`` pages gets (never fewer than 2).

    >>> c = planned_counts(300); c["dup_exact"], c["foreign"], c["content"] > 100
    (9, 15, True)
    """

    def share(fraction: float, least: int) -> int:
        return max(least, round(pages * fraction))

    counts = {
        "dup_exact": share(0.03, 3),
        "dup_near": share(0.03, 3),
        "foreign": share(0.05, 2 * len(LANGS)),
        "mixed": share(0.01, 3),
        "lowq": share(0.01, 2) * len(LOWQ_KINDS),
        "blocklisted_domain": share(0.003, 2) * 3,
        "banned_word_url": share(0.005, 3),
        "pii": share(0.03, 8),
        "robots_disallowed": share(0.01, 4),
        "malformed": share(0.003, 2),
        "not_found": share(0.003, 3),
        "transient_500": 2,
        "slow": len(SLOW_DELAYS),
        "bad_charset": 2,
        "binary": 2,
        "redirect": 3,
        "redirect_loop": 2,
        "error_500": 2,
        "huge": 1,
        "encyclopedia": share(0.1, 60),
    }
    index_pages = len(HOSTS) + pages // 30  # home pages and archive pages
    counts["content"] = max(40, pages - sum(counts.values()) - index_pages)
    return counts


def near_copy(paragraphs: list[str], rng: random.Random, min_similarity: float = 0.8) -> tuple[list[str], float]:
    """A lightly edited copy (words replaced, inserted, a sentence added) and its 5-gram Jaccard similarity.

    Fewer edits are tried until the copy is at least ``min_similarity`` similar (and never identical).
    """
    original = "\n\n".join(paragraphs)
    fillers = ["really", "truly", "indeed", "perhaps", "quite", "certainly", "simply", "still"]
    n_words = len(original.split())
    edits = max(2, n_words // 120)
    while True:
        copy = [p.split(" ") for p in paragraphs]
        for _ in range(edits):
            words = rng.choice([w for w in copy if w])
            i = rng.randrange(len(words))
            if rng.random() < 0.5:
                words[i] = rng.choice(fillers)
            else:
                words.insert(i, rng.choice(fillers))
        edited = [" ".join(w) for w in copy]
        edited[-1] += " (Reposted with minor corrections.)"
        similarity = jaccard(original, "\n\n".join(edited))
        if similarity >= min_similarity or edits == 1:
            return edited, round(similarity, 4)
        edits = max(1, edits // 2)


def _keyword_spam(rng: random.Random) -> list[str]:
    keys = [
        "cheap flights",
        "best cheap flights",
        "cheap hotels",
        "flight deals",
        "cheap flights online",
        "discount flights",
    ]
    return [" ".join(rng.choice(keys) for _ in range(18)) + "." for _ in range(6)]


def _repeated_lines(rng: random.Random) -> list[str]:
    lines = [
        "Click here to download the file.",
        "Free download, no registration needed.",
        "Mirror 1 is working again.",
        "Please share this page with your friends.",
    ]
    return [lines[i % len(lines)] for i in range(rng.randrange(40, 60))]


def _symbols(rng: random.Random) -> list[str]:
    marks = ["•", "★", "→", "#", "|", "~", "*", "=", "»", "◆"]
    return [
        " ".join(rng.choice(marks) * rng.randrange(1, 4) for _ in range(12)) + (" more" if i % 5 == 0 else "")
        for i in range(30)
    ]


def _malformed(paragraphs: list[str], title: str) -> str:
    """Main HTML with unclosed tags, crossed nesting and stray end tags (the text itself is intact)."""
    out = [f"<h1>{html.escape(title)}", "<div class='post'><table><tr><td>"]
    for i, p in enumerate(paragraphs):
        text = html.escape(p)
        if i % 3 == 0:
            out.append(f"<p>{text}")  # never closed
        elif i % 3 == 1:
            out.append(f"<p><b><i>{text}</b></i></p></td>")  # crossed nesting, stray end tag
        else:
            out.append(f"<p>{text}</span></p>")
    return "\n".join(out)


def _huge_body(rng: random.Random) -> str:
    """A sensor log dump of about HUGE_BYTES: the kind of huge page a crawler meets (and a filter drops)."""
    rows, size, i = [], 0, 0
    while size < HUGE_BYTES:
        row = (
            f"<tr><td>2026-01-{1 + i // 86400 % 28:02d}T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}</td>"
            f"<td>sensor-{rng.randrange(100):02d}</td><td>{rng.uniform(-20, 40):.3f}</td><td>OK</td></tr>\n"
        )
        rows.append(row)
        size += len(row)
        i += 7
    return "<h1>Telemetry export</h1>\n<table>\n" + "".join(rows) + "</table>"


def _with_pii(paragraphs: list[str], fakes: dict, rng: random.Random) -> tuple[list[str], list[dict], list[dict]]:
    """Paragraphs with contact details woven in: (new paragraphs, PII to remove, private IPs FineWeb keeps)."""
    email = fakes["en_US"].email()
    email2 = fakes["en_GB"].free_email()
    phones = [fakes[loc].phone_number() for loc in rng.sample(["en_US", "en_GB", "de_DE", "fr_FR"], 2)]
    ip = fakes["en_US"].ipv4_public()
    private = rng.choice(["192.168.1.1", "10.0.0.2", "192.168.0.254", "172.16.4.1"])
    lines = [
        f"If you want the full notes, write to me at {email} or call {phones[0]} in the evening.",
        f"The old copy is still on my home server at {ip}; the router behind it answers on {private}.",
        f"For the reading group, the phone number of the organiser is {phones[1]}, or use {email2}.",
    ]
    out = list(paragraphs)
    for line in lines:
        out.insert(rng.randrange(len(out) + 1), line)
    pii = [
        {"kind": "email", "value": email},
        {"kind": "email", "value": email2},
        {"kind": "phone", "value": phones[0]},
        {"kind": "phone", "value": phones[1]},
        {"kind": "ipv4", "value": ip},
    ]
    return out, pii, [{"kind": "ipv4_private", "value": private}]


def _wrong_charset(rendered: str, declared: str, actual: str) -> bytes:
    """The page's HTML encoded with ``actual`` while its <meta> says ``declared``."""
    return rendered.replace('<meta charset="utf-8">', f'<meta charset="{declared}">').encode(
        actual, errors="xmlcharrefreplace"
    )


def _charset_paragraphs(paragraphs: list[str]) -> list[str]:
    """Add characters that differ between UTF-8 and Windows-1252: curly quotes, accents, a euro."""
    intro = "A note from the café: this naïve reader’s résumé of the scene costs €2 and takes “no time at all”."
    return [intro] + [p.replace("'", "’") for p in paragraphs]


# --------------------------------------------------------------------------- the site


class _Site:
    """Pages by URL, in the order they were made (which is the manifest's order)."""

    def __init__(self) -> None:
        self.pages: dict[str, Page] = {}
        self.counters: dict[str, itertools.count] = {}

    def add(self, page: Page) -> Page:
        if page.url in self.pages:
            raise ValueError(f"miniweb: two pages planted at {page.url}")
        self.pages[page.url] = page
        return page

    def path(self, prefix: str, name: str = "") -> str:
        """A fresh path under ``prefix``: ``/prefix/<n>-<name>.html``."""
        n = next(self.counters.setdefault(prefix, itertools.count(1)))
        return f"{prefix}{n}{'-' + slug(name) if name else ''}.html"


def _plant_content(site: _Site, docs: list[dict], rng: random.Random) -> list[Page]:
    """Ordinary English pages: plays mostly on shakespeare.test, modules on docs.test, some elsewhere."""
    made = []
    for doc in docs:
        home = "shakespeare.test" if doc["kind"] == "play" else "docs.test"
        host = home if rng.random() < 0.75 else rng.choice(["news.test", "blog.test", "forum.test"])
        if host == "shakespeare.test":
            path = site.path(f"/plays/{doc['play']}/")
        elif host == "docs.test":
            path = site.path("/library/", doc["module"])
        else:
            path = site.path(
                {"news.test": "/culture/", "blog.test": "/reading/", "forum.test": "/thread/"}[host], doc["title"]
            )
        made.append(site.add(Page(host, path, doc["title"], doc["paragraphs"], info={"source": doc["id"]})))
    return made


def _plant_encyclopedia(site: _Site, entities: list[dict], count: int, rng: random.Random) -> list[Page]:
    """Chronicle pages on wiki.test: each frequent person's facts on 30 different pages, once-people on one."""
    pages = [
        site.add(
            Page(
                "wiki.test",
                f"/chronicle/{k + 1}.html",
                f"Chronicle of notable lives, part {k + 1}",
                [],
                kind=["encyclopedia", "content"],
            )
        )
        for k in range(count)
    ]
    slots: list[list[str]] = [[] for _ in pages]
    for e in (e for e in entities if e["frequency"] == "frequent"):
        # Random pages and a random order of templates: any regular pattern would make some
        # pairs of pages share many identical sentences, and MinHash would call them duplicates.
        templates = [j % len(FACT_TEMPLATES) for j in range(FREQUENT_MENTIONS)]
        rng.shuffle(templates)
        for k, template in zip(rng.sample(range(count), FREQUENT_MENTIONS), templates):
            slots[k].append(fact_sentence(e, template))
            e["pages"].append(pages[k].url)
    for e in (e for e in entities if e["frequency"] == "once"):
        k = rng.randrange(count)
        slots[k].append(fact_sentence(e, rng.randrange(len(FACT_TEMPLATES))))
        e["pages"].append(pages[k].url)
    for page, sentences in zip(pages, slots):
        rng.shuffle(sentences)
        # A few sentences per paragraph, like an article, rather than one sentence per line.
        page.paragraphs = [" ".join(sentences[i : i + 4]) for i in range(0, len(sentences), 4)]
    order = {page.url: i for i, page in enumerate(pages)}
    for e in entities:
        e["pages"] = sorted(set(e["pages"]), key=order.__getitem__)
    return pages


def _plant_duplicates(site: _Site, originals: list[Page], counts: dict, rng: random.Random) -> None:
    chosen = rng.sample(originals, counts["dup_exact"] + counts["dup_near"])
    for i, orig in enumerate(chosen):
        if i < counts["dup_exact"]:
            host, path = (
                ("mirror.test", f"/{orig.host.split('.')[0]}{orig.path}")
                if i % 2 == 0
                else ("blog.test", site.path("/reposts/", orig.title))
            )
            site.add(
                Page(
                    host,
                    path,
                    orig.title,
                    list(orig.paragraphs),
                    kind=["dup_exact"],
                    duplicate_of=orig.url,
                    info={"source": orig.info.get("source")},
                )
            )
        else:
            edited, similarity = near_copy(orig.paragraphs, rng)
            host = rng.choice(["blog.test", "news.test", "mirror.test"])
            site.add(
                Page(
                    host,
                    site.path("/copies/" if host == "mirror.test" else "/reposts/", orig.title),
                    orig.title,
                    edited,
                    kind=["dup_near"],
                    duplicate_of=orig.url,
                    info={"source": orig.info.get("source"), "similarity": similarity},
                )
            )


def _foreign_documents(seed: int, per_lang: int) -> dict[str, list[list[str]]]:
    """Faker documents grouped by language, each as a list of paragraphs."""
    from llmkb.corpus import multilingual_documents

    by_lang: dict[str, list[list[str]]] = {lang: [] for lang in LANGS}
    for doc in itertools.islice(multilingual_documents(seed), per_lang * len(LANGS) * 2):
        if doc["lang"] in by_lang:
            by_lang[doc["lang"]].append([" ".join(p.split()) for p in doc["text"].split("\n\n") if p.strip()])
    return by_lang


def _plant_languages(site: _Site, counts: dict, english: list[dict], seed: int, rng: random.Random) -> None:
    by_lang = _foreign_documents(seed, -(-(2 * counts["foreign"] + counts["mixed"]) // len(LANGS)) + 1)
    for i in range(counts["foreign"]):
        lang = LANGS[i % len(LANGS)]
        first, second = by_lang[lang].pop(), by_lang[lang].pop()
        site.add(Page("news.test", site.path(f"/{lang}/"), first[0], first[1:] + second, kind=["foreign"], lang=lang))
    for i in range(counts["mixed"]):
        lang = LANGS[(i * 3) % len(LANGS)]
        other = by_lang[lang].pop() + by_lang[lang].pop()
        doc = english.pop()
        half = sum(map(len, other))
        ours, size = [], 0
        for p in doc["paragraphs"]:
            if size >= half:
                break
            ours.append(p)
            size += len(p)
        site.add(
            Page(
                "blog.test",
                site.path("/travel/", doc["title"]),
                doc["title"],
                ours + other,
                kind=["mixed"],
                lang="mixed",
                info={"langs": ["en", lang], "source": doc["id"]},
            )
        )


def _plant_low_quality(site: _Site, counts: dict, rng: random.Random) -> None:
    per_kind = counts["lowq"] // len(LOWQ_KINDS)
    for i in range(per_kind):
        site.add(
            Page(
                "blog.test",
                site.path("/deals/", "cheap flights"),
                "Cheap flights cheap hotels",
                _keyword_spam(rng),
                kind=["lowq"],
                info={"lowq": "keyword_spam"},
            )
        )
        site.add(
            Page(
                "forum.test",
                site.path("/thread/", "download"),
                "Download here",
                _repeated_lines(rng),
                kind=["lowq"],
                info={"lowq": "repeated_lines"},
            )
        )
        farm = [url_of(h, "/") for h in BLOCKED_DOMAINS] + [
            url_of(h, f"/offers/{rng.randrange(1, 3)}.html") for h in BLOCKED_DOMAINS
        ]
        farm += [url_of(rng.choice(SEED_HOSTS), "/") for _ in range(40)]
        anchors = ["best online casino", "cheap pills", "free bonus", "top links", "click here", "win now", "seo links"]
        items = "".join(f'<li><a href="{u}">{rng.choice(anchors)}</a></li>' for u in farm)
        site.add(
            Page(
                "forum.test",
                site.path("/links/"),
                "Useful links",
                kind=["lowq"],
                info={"lowq": "link_farm"},
                main_html=f"<h1>Useful links</h1><ul>{items}</ul>",
            )
        )
        site.add(
            Page(
                "news.test",
                site.path("/brief/"),
                "Coming soon",
                ["This page is under construction. Check back soon."],
                kind=["lowq"],
                info={"lowq": "short"},
            )
        )
        site.add(
            Page(
                "forum.test",
                site.path("/thread/", "stars"),
                "★★★",
                _symbols(rng),
                kind=["lowq"],
                info={"lowq": "symbols"},
            )
        )


def _plant_blocklisted(site: _Site, counts: dict, rng: random.Random) -> None:
    spam = [
        "Claim your welcome bonus now and double your first deposit tonight.",
        "Thousands of players win every day, and you could be next if you sign up in the next ten minutes.",
        "No prescription needed, discreet delivery to your door, and prices lower than any pharmacy you know.",
        "Exclusive videos updated every day for members only; join today and get the first month free.",
    ]
    per_domain = counts["blocklisted_domain"] // len(BLOCKED_DOMAINS)
    for host in BLOCKED_DOMAINS:
        for k in range(per_domain):
            paragraphs = [rng.choice(spam) + " " + rng.choice(spam) for _ in range(4)]
            site.add(Page(host, f"/offers/{k + 1}.html", f"Offer {k + 1}", paragraphs, kind=["blocklisted_domain"]))
    for i in range(counts["banned_word_url"]):
        host, word = [("blog.test", "xxx"), ("forum.test", "porn"), ("news.test", "nsfw")][i % 3]
        paragraphs = [rng.choice(spam[3:]) + " " + rng.choice(spam) for _ in range(3)]
        site.add(
            Page(
                host,
                site.path(f"/{word}/"),
                "Members area",
                paragraphs,
                kind=["banned_word_url"],
                info={"banned_word": word},
            )
        )


def _plant_http_trouble(
    site: _Site, counts: dict, english: list[dict], targets: list[Page], rng: random.Random
) -> None:
    """Redirects, a loop, 404s, 500s, slow pages, wrong charsets, binary bodies, a huge page, broken markup."""
    # Redirects: a two-hop chain on one host, and a one-hop redirect to another host.
    first, second = targets[0], targets[1]
    old, moved = f"/old/{slug(first.title)}.html", f"/moved/{slug(first.title)}.html"
    for path, status, to, final in (
        (old, 301, url_of(first.host, moved), first.url),
        (moved, 302, first.url, first.url),
    ):
        site.add(
            Page(
                first.host,
                path,
                kind=["redirect"],
                has_file=False,
                route={"status": status, "location": to},
                info={"status": status, "redirect_to": to, "final_url": final},
            )
        )
    site.add(
        Page(
            "blog.test",
            "/go/recommended.html",
            kind=["redirect"],
            has_file=False,
            route={"status": 301, "location": second.url},
            info={"status": 301, "redirect_to": second.url, "final_url": second.url},
        )
    )
    for a, b in (("a", "b"), ("b", "a")):
        to = url_of("blog.test", f"/loop/{b}.html")
        site.add(
            Page(
                "blog.test",
                f"/loop/{a}.html",
                kind=["redirect_loop"],
                has_file=False,
                route={"status": 302, "location": to},
                info={"status": 302, "redirect_to": to},
            )
        )
    lost = [
        "/plays/lost/cardenio.html",
        "/library/removed-module.html",
        "/thread/deleted.html",
        "/culture/retracted.html",
    ]
    hosts = ["shakespeare.test", "docs.test", "forum.test", "news.test"]
    for i in range(counts["not_found"]):
        path = lost[i % len(lost)] if i < len(lost) else f"/gone/{i}.html"
        site.add(
            Page(
                hosts[i % len(hosts)],
                path,
                kind=["not_found"],
                has_file=False,
                route={"status": 404},
                info={"status": 404},
            )
        )
    for host, path in (("news.test", "/live/feed.html"), ("forum.test", "/search.html"))[: counts["error_500"]]:
        site.add(
            Page(
                host,
                path,
                "Unavailable",
                ["This service is temporarily unavailable."],
                kind=["error_500"],
                route={"status": 500},
                info={"status": 500},
            )
        )
    for _ in range(counts["transient_500"]):
        doc = english.pop()
        site.add(
            Page(
                "docs.test",
                site.path("/tutorial/", doc["title"]),
                doc["title"],
                doc["paragraphs"],
                kind=["transient_500", "content"],
                route={"fail_first": True},
                info={"source": doc["id"], "fail_first": True},
            )
        )
    for delay in SLOW_DELAYS:
        doc = english.pop()
        site.add(
            Page(
                "news.test",
                site.path("/archive/", doc["title"]),
                doc["title"],
                doc["paragraphs"],
                kind=["slow", "content"],
                route={"delay": delay},
                info={"source": doc["id"], "delay": delay},
            )
        )
    charsets = (
        ("utf-8", "cp1252", "text/html; charset=utf-8"),
        ("iso-8859-1", "utf-8", "text/html; charset=iso-8859-1"),
    )
    for declared, actual, header in charsets:  # (what the page says, what its bytes are, the header)
        doc = english.pop()
        page = site.add(
            Page(
                "news.test" if actual == "cp1252" else "blog.test",
                site.path("/features/", doc["title"]),
                doc["title"],
                _charset_paragraphs(doc["paragraphs"]),
                kind=["bad_charset", "content"],
                route={"content_type": header},
                info={"source": doc["id"], "true_charset": actual, "declared_charset": declared},
            )
        )
        page.info["_encode"] = (declared, actual)
    for i in range(counts["binary"]):
        body = random.Random(rng.random()).randbytes(20_000 + i * 5_000)
        site.add(
            Page(
                "forum.test",
                f"/attachments/{i + 1}.html",
                "attachment",
                kind=["binary"],
                lang="und",
                body=body,
                route={"content_type": "text/html"},
            )
        )
    site.add(
        Page(
            "docs.test",
            "/dumps/telemetry.html",
            "Telemetry export",
            kind=["huge", "lowq"],
            lang="und",
            main_html=_huge_body(rng),
            info={"lowq": "data_dump"},
        )
    )
    for _ in range(counts["malformed"]):
        doc = english.pop()
        site.add(
            Page(
                "forum.test",
                site.path("/thread/", doc["title"]),
                doc["title"],
                doc["paragraphs"],
                kind=["malformed", "content"],
                main_html=_malformed(doc["paragraphs"], doc["title"]),
                info={"source": doc["id"]},
            )
        )


def _plant_private(site: _Site, counts: dict, english: list[dict], seed: int, rng: random.Random) -> None:
    """PII posts, and pages under paths that robots.txt disallows (linked all the same)."""
    from faker import Faker

    fakes = {loc: Faker(loc) for loc in ("en_US", "en_GB", "de_DE", "fr_FR")}
    for i, fake in enumerate(fakes.values()):
        fake.seed_instance(seed * 10 + i)
    for _ in range(counts["pii"]):
        doc = english.pop()
        paragraphs, pii, kept = _with_pii(doc["paragraphs"], fakes, rng)
        site.add(
            Page(
                "forum.test",
                site.path("/thread/", doc["title"]),
                doc["title"],
                paragraphs,
                kind=["pii", "content"],
                pii=pii,
                info={"source": doc["id"], "pii_kept": kept},
            )
        )
    places = [("forum.test", prefix) for prefix in ROBOTS["forum.test"]] + [
        ("blog.test", prefix) for prefix in ROBOTS["blog.test"]
    ]
    for i in range(counts["robots_disallowed"]):
        host, prefix = places[i % len(places)]
        doc = english.pop()
        site.add(
            Page(
                host,
                site.path(prefix, doc["title"]),
                doc["title"],
                doc["paragraphs"],
                kind=["robots_disallowed"],
                info={"source": doc["id"]},
            )
        )


def _plant_passages(site: _Site, eligible: list[Page], rng: random.Random, cities: list[str]) -> list[dict]:
    passages = []
    carriers = rng.sample(eligible, PASSAGE_REPEATS + 1)
    for pid, repeats, pages in (
        ("repeated", PASSAGE_REPEATS, carriers[:PASSAGE_REPEATS]),
        ("once", 1, carriers[PASSAGE_REPEATS:]),
    ):
        text = make_passage(rng, cities)
        for page in pages:
            page.paragraphs.insert(rng.randrange(1, len(page.paragraphs) + 1), text)
            page.info.setdefault("passages", []).append(pid)
        passages.append({"id": pid, "text": text, "repeats": repeats, "urls": [p.url for p in pages]})
    return passages


def _navigation(site: _Site, rng: random.Random) -> None:
    """Home and archive pages for every host, and a sidebar of links (some to other hosts) on every page."""
    by_host: dict[str, list[Page]] = {}
    for page in site.pages.values():
        if page.listed:
            by_host.setdefault(page.host, []).append(page)
    linkable = [
        p.url for p in site.pages.values() if p.has_file and p.host not in BLOCKED_DOMAINS and "binary" not in p.kind
    ]
    for host in HOSTS:
        members = by_host.get(host, [])
        archives = []
        for k in range(0, len(members), 40):
            group = members[k : k + 40]
            items = "".join(f'<li><a href="{p.url}">{html.escape(p.title or p.path)}</a></li>' for p in group)
            title = f"Archive, page {k // 40 + 1}"
            # Navigation pages are lists of titles: nothing a model should learn from, so "lowq" too.
            archives.append(
                site.add(
                    Page(
                        host,
                        f"/archive/{k // 40 + 1}.html",
                        title,
                        kind=["index", "lowq"],
                        listed=False,
                        info={"lowq": "navigation"},
                        main_html=f"<h1>{title}</h1><ul>{items}</ul>",
                    )
                )
            )
        items = "".join(f'<li><a href="{a.url}">{a.title}</a></li>' for a in archives)
        featured = "".join(f'<li><a href="{p.url}">{html.escape(p.title or p.path)}</a></li>' for p in members[:8])
        intro = f"Welcome to {host}. Browse the archive below, or start with one of the featured pages."
        site.add(
            Page(
                host,
                "/",
                f"Welcome to {host}",
                kind=["index", "lowq"],
                listed=False,
                info={"lowq": "navigation"},
                main_html=f"<h1>Welcome to {host}</h1><p>{intro}</p><ul>{items}</ul>"
                f"<h2>Featured</h2><ul>{featured}</ul>",
            )
        )
    for page in site.pages.values():
        if not page.has_file:
            continue
        same = [p.url for p in by_host.get(page.host, []) if p.url != page.url]
        page.links = rng.sample(same, min(3, len(same))) + rng.sample(linkable, 2)


def _manifest_entry(page: Page) -> dict:
    info = {k: v for k, v in page.info.items() if not k.startswith("_")}
    if page.host in BLOCKED_DOMAINS and "blocklisted_domain" not in page.kind:
        page.kind = ["blocklisted_domain", *page.kind]
    status = info.pop("status", 200)
    return {
        "host": page.host,
        "kind": page.kind,
        "lang": page.lang,
        "status": status,
        "duplicate_of": page.duplicate_of,
        "pii": page.pii,
        "title": page.title,
        **info,
    }


def generate(out_dir: str | Path, seed: int = 0, pages: int = 3000, progress: bool = False) -> dict:
    """Write the mini-web for ``seed`` into ``out_dir`` and return its manifest (also ``manifest.json``).

    The manifest: ``seeds`` (home pages to start a crawl from), ``hosts``, ``robots``
    (host -> disallowed prefixes), ``blocklist`` (``domains`` and ``url_words`` the generator
    used), ``pages`` (URL -> ``host``, ``kind`` tags, ``lang``, expected ``status``,
    ``duplicate_of``, ``pii`` [{kind, value}] and per-kind extras), ``entities`` and ``passages``
    (the encyclopedia's ground truth), ``counts`` and ``config``. URLs carry no port.
    """
    if pages < 100:
        raise ValueError(f"miniweb: pages must be at least 100 so every planted kind fits, got {pages}")
    t0 = time.perf_counter()
    out = Path(out_dir)
    rng = random.Random(f"miniweb:{seed}")

    def say(message: str) -> None:
        if progress:
            print(f"miniweb: {message} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr, flush=True)

    counts = planned_counts(pages)
    special = counts["pii"] + counts["robots_disallowed"] + counts["mixed"] + counts["malformed"] + 6
    english = english_documents(counts["content"] + special, rng)
    rng.shuffle(english)
    say(f"{len(english)} English documents read")
    if len(english) < counts["content"] + special:
        raise RuntimeError(
            f"miniweb: only {len(english)} English documents available, {counts['content'] + special} needed"
        )
    # Pages planted to test a later step (PII, robots, charsets...) carry Shakespeare's prose, which
    # passes the quality filters; code-heavy docstrings often do not, and a dropped page tests nothing.
    reserved = {id(d) for d in [d for d in english if d["kind"] == "play"][-special:]}
    specials = [d for d in english if id(d) in reserved]
    english = [d for d in english if id(d) not in reserved]
    site = _Site()
    entities, cities = make_entities(random.Random(f"entities:{seed}"))
    wiki = _plant_encyclopedia(site, entities, counts["encyclopedia"], rng)
    content = _plant_content(site, english, rng)
    english = specials
    big = [p for p in content if sum(map(len, p.paragraphs)) >= 1500 and p.info["source"].startswith("shakespeare")]
    redirect_targets = [next(p for p in content if p.host == h) for h in ("shakespeare.test", "docs.test")]
    originals = [p for p in big if p not in redirect_targets]
    _plant_duplicates(site, originals, counts, rng)
    used = {p.duplicate_of for p in site.pages.values() if p.duplicate_of}
    _plant_languages(site, counts, english, seed, rng)
    _plant_low_quality(site, counts, rng)
    _plant_blocklisted(site, counts, rng)
    _plant_private(site, counts, english, seed, rng)
    _plant_http_trouble(site, counts, english, redirect_targets, rng)
    plain = [p for p in content if p.url not in used and p not in redirect_targets]
    passages = _plant_passages(site, wiki + plain, rng, cities)
    _navigation(site, rng)
    say(f"{len(site.pages)} pages planned")

    manifest = _write_site(out, site, seed)
    manifest.update(
        {
            "seeds": [url_of(h, "/") for h in SEED_HOSTS],
            "entities": entities,
            "passages": passages,
            "counts": {
                kind: sum(kind in p["kind"] for p in manifest["pages"].values())
                for kind in sorted({k for p in manifest["pages"].values() for k in p["kind"]})
            },
            "config": {"seed": seed, "pages": pages},
        }
    )
    order = ["config", "seeds", "hosts", "robots", "blocklist", "counts", "entities", "passages", "pages"]
    manifest = {key: manifest[key] for key in order}
    write_json(out / "manifest.json", manifest)
    say(f"wrote {len(manifest['pages'])} URLs to {out}")
    return manifest


def _write_site(out: Path, site: _Site, seed: int) -> dict:
    """Render every page into a fresh folder, then swap it in place of ``hosts/`` (no half-written site)."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".hosts.tmp-{seed}"
    shutil.rmtree(tmp, ignore_errors=True)
    titles = {p.url: p.title for p in site.pages.values() if p.title}
    routes: dict[str, dict] = {}
    for page in site.pages.values():
        if page.route:
            routes[page.url] = page.route
        if not page.has_file:
            continue
        target = tmp / page.host / page.file
        target.parent.mkdir(parents=True, exist_ok=True)
        if page.body is not None:
            target.write_bytes(page.body)
            continue
        rendered = render(page, random.Random(f"render:{seed}:{page.url}"), titles)
        if "_encode" in page.info:
            target.write_bytes(_wrong_charset(rendered, *page.info["_encode"]))
        else:
            target.write_bytes(rendered.encode("utf-8"))
    for host in HOSTS:
        if host in ROBOTS:
            rules = "".join(f"Disallow: {prefix}\n" for prefix in ROBOTS[host]) or "Disallow:\n"
            (tmp / host).mkdir(parents=True, exist_ok=True)
            (tmp / host / "robots.txt").write_text(f"User-agent: *\n{rules}", encoding="utf-8")
    final = out / "hosts"
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    write_json(out / "routes.json", routes)
    return {
        "hosts": list(HOSTS),
        "robots": {host: ROBOTS.get(host, []) for host in HOSTS},
        "blocklist": {"domains": BLOCKED_DOMAINS, "url_words": BANNED_URL_WORDS},
        "pages": {page.url: _manifest_entry(page) for page in site.pages.values()},
    }
