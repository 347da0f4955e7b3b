"""URL filter: planted domains (and their subdomains), banned words as URL tokens, soft words in
pairs, banned sub-words; innocent URLs that merely contain those letters pass."""

from __future__ import annotations

import pytest

from llmkb.data.urlfilter import URLFilter, host_of, parse_blocklist

PLANTED_DOMAINS = ["casino-bonus.test", "free-pills.test", "adult-videos.test"]


@pytest.fixture(scope="module")
def url_filter() -> URLFilter:
    return URLFilter.from_file()


def test_packaged_blocklist_has_the_planted_domains(url_filter):
    assert set(PLANTED_DOMAINS) <= url_filter.domains
    assert {"porn", "xxx"} <= url_filter.words


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://casino-bonus.test/", "blocked_domain:casino-bonus.test"),
        ("https://www.casino-bonus.test/jackpot?id=3", "blocked_domain:casino-bonus.test"),
        ("http://shop.eu.free-pills.test:8080/buy", "blocked_domain:free-pills.test"),
        ("HTTP://ADULT-VIDEOS.TEST./index.html", "blocked_domain:adult-videos.test"),
        ("http://127.0.0.1:8000/porn/page1.html", "banned_word:porn"),
        ("http://blog.example.test/best-XXX-clips", "banned_word:xxx"),
        ("http://news.example.test/sex/escort-ads", "soft_banned_words:escort+sex"),
        ("http://example.test/barely-legal-teens", "banned_subword:barelylegal"),
        ("http://127.0.0.1:8000/online-casino-bonus.html", "soft_banned_words:bonus+casino"),
    ],
)
def test_planted_urls_are_blocked(url_filter, url, reason):
    assert url_filter.check(url) == reason


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/wiki/Hamlet.html",
        "http://notcasino-bonus.test/",  # another domain that ends with the same letters
        "http://free-pills.test.example.org/",  # the blocked name as a subdomain elsewhere
        "https://en.example.test/wiki/Casino_Royale",  # "casino" alone is a soft word
        "https://en.example.test/wiki/Sussex",  # "sex" inside a word is not the token "sex"
        "https://example.test/sex-education",  # one soft word alone is allowed
        "https://example.test/pornography-laws-history",  # the token is "pornography", not "porn"
        "https://example.test/middlesex/essex",
    ],
)
def test_innocent_urls_pass(url_filter, url):
    assert url_filter.check(url) is None


def test_custom_file_and_bad_lines(tmp_path):
    path = tmp_path / "list.txt"
    path.write_text("# mine\ndomain:Spam.Example\nurl:http://ok.test/one-page\n", encoding="utf-8")
    f = URLFilter.from_file(path)
    assert f.check("http://a.spam.example/x") == "blocked_domain:spam.example"
    assert f.check("http://ok.test/one-page") == "blocked_url"
    assert f.check("http://ok.test/other-page") is None
    path.write_text("domain:ok.test\nbanana\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"list.txt:2: expected 'kind:value'.*'banana'"):
        URLFilter.from_file(path)


def test_parse_blocklist_normalises_values():
    lists = parse_blocklist(["subword:Barely Legal", "word:PORN", "domain:Example.TEST."])
    assert lists["subword"] == {"barelylegal"} and lists["word"] == {"porn"} and lists["domain"] == {"example.test"}


def test_host_of_handles_odd_urls():
    assert host_of("https://[::1]:8080/") == "::1"
    assert host_of("") == ""
