"""The tokenizer playground: the ids the browser computes must be the Python tokenizer's ids.

In: the built quick site (``built_site``, served by ``site`` from ``tests/test_browser.py``) and the
run folder it was built from; for the plain tests, a tokenizer trained here. Out: nothing; it
checks that

- the JSON export holds everything an encoder needs (encoding from it equals ``encode``), and that
  the JavaScript regex, read by Python's ``regex``, splits text like the Python pattern
  (these run without a browser);
- typed into the tokenization page's playground, English, Vietnamese, Chinese, emoji, digits,
  whitespace runs and ChatML tokens show exactly the ids the run's Python tokenizer gives, and
  the playground stays readable in the light and the dark theme (marker ``browser``; skipped, or
  failed under CI, like ``tests/test_browser.py`` when Playwright or chromium is missing).

Run them with::

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q tests/test_browser_playground.py -p no:cacheprovider
"""

from __future__ import annotations

import json
import random
import re

import pytest
import regex

from llmkb.stages import RunDir
from llmkb.tokenizer.bpe import SPLIT_PATTERN, BPETokenizer
from llmkb.tokenizer.viz import token_pieces
from llmkb.tokenizer.web import from_web_json, js_pattern, to_web_json

from test_browser import Site, site  # noqa: F401 (the served site fixture; tests/ is on sys.path)
from test_tokenizer_bpe import small_corpus
from tokenizer_samples import MULTILINGUAL, PROBES

PAGE = "pretraining/tokenization/"
SERVED_JSON = "generated/tokenization/tokenizer.json"

# The strings the playground must encode exactly like Python; each one names what it exercises.
FIXED = [
    "The quick brown fox jumps over 13 lazy dogs.",  # English
    "Tiếng Việt có dấu",  # Vietnamese with diacritics
    "Đà Nẵng, Hà Nội: người được những điều ấy.",  # more diacritics, stacked ones
    "我们的语言模型只看到数字。",  # Chinese, 3 bytes a character
    "👨‍👩‍👧‍👦 and 🇻🇳 and 👍🏽",  # multi-codepoint emoji: ZWJ family, flag, skin tone
    "3.14159 + 2026 = 12345, call 0912-345-678",  # digits, one token each
    "a  b   c\t\td\n\n\n  e    ",  # runs of whitespace, tabs, newlines, trailing spaces
    "\u3000\u3000wide\u00a0space\u2028line\u0085next\ufeff",  # whitespace where JS and Python's \s differ
    "<|im_start|>user\nXin chào 你好 🤖<|im_end|>\n<|im_start|>assistant\n",  # ChatML special tokens
    "<|im_start|>",  # a special token alone
    "<|im_start<|endoftext|>|>",  # a broken special around a real one
    "don't WE'LL they've I'D ſtop",  # contractions in both cases, and the long s
]
STRINGS = list(dict.fromkeys(FIXED + PROBES + MULTILINGUAL))


# ---------------------------------------------------------------------------------------------
# without a browser
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained() -> BPETokenizer:
    return BPETokenizer.train(small_corpus() + FIXED * 5, vocab_size=600)


def test_exported_json_round_trips(trained):
    exported = to_web_json(trained)
    data = json.loads(exported)
    assert len(data["merges"]) == 2 * len(trained.merges)
    assert [bytes.fromhex(h) for h in data["vocab"]] == [trained.token_bytes(i) for i in range(len(trained.vocab))]
    rebuilt = from_web_json(exported)
    for text in STRINGS:
        assert rebuilt.encode(text) == trained.encode(text), text


def split_texts(n: int = 20_000) -> list[str]:
    """STRINGS and ``n`` random strings of the characters where the two regex dialects could differ."""
    rng = random.Random(0)
    tricky = list(" \t\n\r\x0b\x0c\x85\xa0\u2028\u3000\ufeff'sSſdDmMtTlLvVeErR") + [
        "a",
        "é",
        "中",
        "1",
        "٣",
        "!",
        "🤖",
        "\u200d",
    ]
    return STRINGS + ["".join(rng.choice(tricky) for _ in range(rng.randint(1, 12))) for _ in range(n)]


def test_js_pattern_splits_like_the_python_pattern():
    """The JavaScript translation keeps the meaning: same chunks under one engine (Python's regex)."""
    python, javascript = regex.compile(SPLIT_PATTERN), regex.compile(js_pattern(SPLIT_PATTERN))
    differ = [t for t in split_texts() if python.findall(t) != javascript.findall(t)]
    assert not differ, f"{len(differ)} strings split differently, e.g. {differ[:3]}"


def test_damaged_exports_are_refused(trained):
    data = json.loads(to_web_json(trained))
    data["vocab"][300] = "00"
    with pytest.raises(ValueError, match="vocab disagrees with merges at token 300"):
        from_web_json(json.dumps(data))
    with pytest.raises(ValueError, match="format"):
        from_web_json(json.dumps({"format": "llmkb-bpe/1"}))
    with pytest.raises(ValueError, match="no JavaScript translation"):
        to_web_json(BPETokenizer(pattern=r"\w+|\s+"))


# ---------------------------------------------------------------------------------------------
# in the browser
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_tokenizer(site: Site, request) -> BPETokenizer:  # noqa: F811 (site is the imported fixture)
    """The Python tokenizer of the run the site was built from, checked to be the one it serves.

    ``site`` comes first so that a machine without chromium skips before the site is built.
    """
    project = request.getfixturevalue("site_project")
    tok = BPETokenizer.load(RunDir.named("quick", project / "runs").require("tokenizer") / "bpe.json")
    served = from_web_json((site.root / SERVED_JSON).read_text(encoding="utf-8"))
    assert served.merges == tok.merges and served.special_tokens == tok.special_tokens
    return tok


@pytest.fixture(scope="module")
def playground(site: Site):  # noqa: F811
    """The tokenization page, open, with its playground loaded."""
    page = site.new_page()
    site.recorder.current = "(tokenization: playground)"
    page.goto(site.url + PAGE, wait_until="load")
    page.locator(".llmkb-playground[data-state=ready]").wait_for()
    yield page
    page.close()


def shown_ids(page) -> list[int]:
    """The ids the playground shows under the text box, as the reader reads them."""
    return [int(n) for n in re.findall(r"\d+", page.locator(".llmkb-playground-ids").inner_text())]


def piece_ids(page) -> list[int]:
    """The ids written under the colored pieces, in order."""
    subs = page.locator(".llmkb-playground-tokens .t sub").all_inner_texts()
    return [int(n) for sub in subs for n in sub.split()]


def piece_texts(page) -> list[str]:
    """The text of each colored piece, with the marks drawn for whitespace turned back into it."""
    return page.locator(".llmkb-playground-tokens .t").evaluate_all(
        r"""spans => spans.map(span => {
             const copy = span.cloneNode(true);
             copy.querySelector("sub").remove();
             const drawn = {"\u00b7": " ", "\u2192": "\t", "\u21b5": "\n", "\u240d": "\r"};
             copy.querySelectorAll(".ws").forEach(mark => { mark.textContent = drawn[mark.textContent]; });
             return copy.textContent;
           })"""
    )


@pytest.mark.browser
def test_playground_ids_equal_the_python_tokenizer(playground, run_tokenizer, site: Site):  # noqa: F811
    box = playground.locator(".llmkb-playground textarea")
    assert shown_ids(playground), "the playground showed no tokens for its starting text"
    wrong = []
    for text in STRINGS:
        box.fill(text)
        assert box.input_value() == text  # a text box turns "\r" into "\n": such strings cannot be tested here
        expected = run_tokenizer.encode(text)
        if shown_ids(playground) != expected or piece_ids(playground) != expected:
            wrong.append(f"{text!r}: page {shown_ids(playground)} / pieces {piece_ids(playground)}, python {expected}")
    assert not wrong, "the playground's ids differ from Python's:\n" + "\n".join(wrong)
    problems = site.recorder.problems_at("(tokenization: playground)")
    assert not problems, problems


@pytest.mark.browser
def test_browser_regex_splits_like_python(playground, run_tokenizer, site: Site):  # noqa: F811
    """Chromium's RegExp engine, given the served js_pattern, cuts the same chunks as Python.

    Where a chunk boundary moves but no merge spans it, the ids stay the same, so the id test
    alone could miss a dialect difference (JavaScript's ``\\s`` is not Python's, for one).
    """
    served = json.loads((site.root / SERVED_JSON).read_text(encoding="utf-8"))["js_pattern"]
    texts = split_texts()
    in_browser = playground.evaluate(
        "([source, texts]) => { const re = new RegExp(source, 'gu'); return texts.map(t => t.match(re) || []); }",
        [served, texts],
    )
    python = regex.compile(run_tokenizer.pattern)
    differ = [(t, got) for t, got in zip(texts, in_browser) if got != python.findall(t)]
    assert not differ, f"{len(differ)} strings split differently in chromium, e.g. {differ[:3]}"


@pytest.mark.browser
def test_playground_follows_typing(playground, run_tokenizer):
    """Typed key by key (not pasted), the view follows every keystroke."""
    box = playground.locator(".llmkb-playground textarea")
    box.fill("")
    assert shown_ids(playground) == []
    text = "Tiếng Việt có dấu 🇻🇳"
    box.press_sequentially(text)
    assert box.input_value() == text
    assert shown_ids(playground) == run_tokenizer.encode(text)
    assert piece_texts(playground) == [piece.text for piece in token_pieces(run_tokenizer, text)]


# The contrast ratio of WCAG 2 between an element's text and what is really behind it: its own
# background composited over its ancestors' (the token fills are translucent).
CONTRAST = """
el => {
  const parse = c => { const v = c.match(/[\\d.]+/g).map(Number); return [v[0], v[1], v[2], v.length > 3 ? v[3] : 1]; };
  const over = (top, under) => top.slice(0, 3).map((c, i) => c * top[3] + under[i] * (1 - top[3])).concat(1);
  const layers = [];
  for (let node = el; node; node = node.parentElement) layers.push(parse(getComputedStyle(node).backgroundColor));
  let bg = [255, 255, 255, 1];
  for (const layer of layers.reverse()) bg = over(layer, bg);
  const fg = over(parse(getComputedStyle(el).color), bg);
  const lum = c => {
    const [r, g, b] = c.slice(0, 3).map(v => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
  return (hi + 0.05) / (lo + 0.05);
}
"""


@pytest.mark.browser
@pytest.mark.parametrize("scheme, material_scheme", [("light", "default"), ("dark", "slate")])
def test_playground_is_readable_in_both_themes(site: Site, run_tokenizer, scheme, material_scheme):  # noqa: F811
    page = site.new_page()
    where = site.recorder.current = f"(tokenization: playground, {scheme})"
    page.emulate_media(color_scheme=scheme)
    page.goto(site.url + PAGE, wait_until="load")
    # material remembers the scheme it chose on an earlier visit; forget it, so the system's wins
    page.evaluate("localStorage.clear()")
    page.reload(wait_until="load")
    assert page.locator("body").get_attribute("data-md-color-scheme") == material_scheme
    page.locator(".llmkb-playground[data-state=ready]").wait_for()
    page.locator(".llmkb-playground textarea").fill("Tiếng Việt, 你好 🤖 12345")
    checked = {
        "text box": page.locator(".llmkb-playground textarea"),
        "ids": page.locator(".llmkb-playground-ids"),
        **{f"token {k}": page.locator(".llmkb-playground-tokens .t").nth(k) for k in range(6)},
    }
    ratios = {name: element.evaluate(CONTRAST) for name, element in checked.items()}
    low = {name: round(r, 2) for name, r in ratios.items() if r < 4.5}
    assert not low, f"text below WCAG AA contrast (4.5) in the {scheme} theme: {low}"
    page.close()
    assert not site.recorder.problems_at(where), site.recorder.problems_at(where)
