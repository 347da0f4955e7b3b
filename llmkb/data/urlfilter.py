"""URL -> keep or drop, before any byte of the page is read: FineWeb's blocklist step.

In: a URL string. Out: ``None`` to keep it, or the reason it is blocked:

- ``"blocked_domain:<domain>"`` the host is a listed domain or a subdomain of one;
- ``"blocked_url"`` the exact URL is listed;
- ``"banned_word:<word>"`` a hard-banned word is one of the URL's tokens;
- ``"soft_banned_words:<w1>+<w2>"`` at least two soft-banned words are tokens of the URL;
- ``"banned_subword:<sub>"`` a banned phrase occurs inside the URL once punctuation is removed.

The lists come from a text file (``blocklist.txt`` beside this module by default), one
``kind:value`` per line; see that file for the kinds.

This mirrors datatrove's ``URLFilter``, which FineWeb ran with the UT1 blocklist (about 4.5
million domains) and datatrove's banned / soft-banned / sub-word lists. Differences, and why:

* datatrove asks ``tldextract`` for the registered domain and the full host and checks those
  two; we check the host and every parent domain of it (``a.b.c.test``, ``b.c.test``,
  ``c.test``), which needs no public-suffix list and also blocks sub-subdomains of a listed
  subdomain.
* datatrove splits the URL into words without lowercasing it, so ``/PORN/`` slips through;
  we lowercase first.
* the sub-word search uses a plain loop instead of an Aho-Corasick automaton: fine for a
  list of a few entries, the automaton is what makes thousands of them fast.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

# datatrove's tokenizer for URLs: every run of non-alphanumerics is a separator.
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
KINDS = ("domain", "url", "word", "soft", "subword")
SOFT_THRESHOLD = 2  # datatrove's default soft_word_threshold


def url_words(url: str) -> set[str]:
    """The URL's tokens: lowercase runs of letters and digits.

    >>> sorted(url_words("https://Shop.example.test/Free-PORN/page_2.html?x=1"))
    ['1', '2', 'example', 'free', 'html', 'https', 'page', 'porn', 'shop', 'test', 'x']
    """
    return {w for w in _NON_ALNUM.split(url.lower()) if w}


def squash(text: str) -> str:
    """Lowercase with every non-alphanumeric removed (how sub-words are matched).

    >>> squash("https://barely-legal.example/")
    'httpsbarelylegalexample'
    """
    return _NON_ALNUM.sub("", text.lower())


def host_of(url: str) -> str:
    """The URL's host, lowercased, without port, credentials or trailing dot.

    >>> host_of("HTTP://user@Www.Casino-Bonus.test.:8080/a")
    'www.casino-bonus.test'
    >>> host_of("casino-bonus.test/page")  # no scheme: the first path segment is the host
    'casino-bonus.test'
    """
    parts = urlsplit(url if "//" in url else "//" + url)
    return (parts.hostname or "").rstrip(".")


def parent_domains(host: str) -> list[str]:
    """The host and each domain above it, longest first.

    >>> parent_domains("a.b.example.test")
    ['a.b.example.test', 'b.example.test', 'example.test', 'test']
    """
    labels = host.split(".")
    return [".".join(labels[i:]) for i in range(len(labels)) if labels[i]]


def parse_blocklist(lines, source: str = "<blocklist>") -> dict[str, set[str]]:
    """``kind:value`` lines -> ``{kind: set of values}``; ``#`` comments and blank lines skipped.

    >>> parse_blocklist(["# c", "domain:Bad.TEST", "word:porn", ""])["domain"]
    {'bad.test'}
    """
    lists: dict[str, set[str]] = {kind: set() for kind in KINDS}
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        kind, sep, value = line.partition(":")
        kind, value = kind.strip().lower(), value.strip()
        if not sep or kind not in KINDS or not value:
            raise ValueError(f"{source}:{number}: expected 'kind:value' with kind one of {KINDS}, got {line!r}")
        # Domains and words are compared lowercased; sub-words are compared squashed.
        if kind == "domain":
            value = value.lower().rstrip(".")
        elif kind in ("word", "soft"):
            value = value.lower()
        elif kind == "subword":
            value = squash(value)
        lists[kind].add(value)
    return lists


@dataclass
class URLFilter:
    domains: set[str] = field(default_factory=set)  # blocked with all their subdomains
    urls: set[str] = field(default_factory=set)  # blocked exactly
    words: set[str] = field(default_factory=set)  # one is enough
    soft_words: set[str] = field(default_factory=set)  # SOFT_THRESHOLD of them are needed
    subwords: set[str] = field(default_factory=set)  # matched inside the squashed URL
    soft_threshold: int = SOFT_THRESHOLD

    @classmethod
    def from_file(cls, path: str | Path | None = None) -> URLFilter:
        """Load a blocklist file; without a path, the one packaged with llmkb."""
        if path is None:
            text = resources.files("llmkb.data").joinpath("blocklist.txt").read_text(encoding="utf-8")
            source = "llmkb/data/blocklist.txt"
        else:
            text, source = Path(path).read_text(encoding="utf-8"), str(path)
        lists = parse_blocklist(text.splitlines(), source)
        return cls(lists["domain"], lists["url"], lists["word"], lists["soft"], lists["subword"])

    def check(self, url: str) -> str | None:
        """``None`` to keep ``url``, else why it is blocked (checked in datatrove's order).

        >>> f = URLFilter(domains={"casino-bonus.test"}, words={"porn"}, soft_words={"sex", "escort"})
        >>> f.check("https://www.casino-bonus.test/win"), f.check("https://ok.test/porn-pics")
        ('blocked_domain:casino-bonus.test', 'banned_word:porn')
        >>> f.check("https://ok.test/sex-education"), f.check("https://ok.test/sex/escort")
        (None, 'soft_banned_words:escort+sex')
        """
        for domain in parent_domains(host_of(url)):
            if domain in self.domains:
                return f"blocked_domain:{domain}"
        if url in self.urls:
            return "blocked_url"
        tokens = url_words(url)
        for word in sorted(self.words & tokens):
            return f"banned_word:{word}"
        soft = sorted(self.soft_words & tokens)
        if len(soft) >= self.soft_threshold:
            return "soft_banned_words:" + "+".join(soft)
        squashed = squash(url)
        for sub in sorted(self.subwords):
            if sub in squashed:
                return f"banned_subword:{sub}"
        return None
