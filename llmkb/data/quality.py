"""Text -> keep or drop, by FineWeb's heuristic quality filters with their published thresholds.

In: a document's extracted text. Out: ``None`` when it passes, or a short reason naming the rule
that failed (``"gopher_rep:dup_line_frac"``); :func:`quality_reason` runs all four families in
FineWeb's order and also returns the text as C4's line rules left it.

The four families, as FineWeb ran them through datatrove (``examples/fineweb.py`` in datatrove's
repository; thresholds are datatrove's defaults, which that recipe kept):

1. **Gopher repetition** (Rae et al. 2021, table A1): too many duplicated lines or paragraphs,
   or too much of the text inside one frequent n-gram or inside repeated n-grams.
2. **Gopher quality**: 50..100,000 words, mean word length 3..10, few ``#`` and ``...``, not a
   bullet list, not ellipsis-truncated lines, words mostly alphabetic, and at least two of eight
   English stop words.
3. **C4** (Raffel et al. 2020): removes lines (too few words, "javascript", cookie/privacy
   notices, absurdly long words, ``[citation]`` marks) and drops documents with "lorem ipsum",
   a curly bracket, or fewer than 5 sentences left. FineWeb ran it with
   ``filter_no_terminal_punct=False``: C4's rule "keep only lines ending in terminal
   punctuation" removed too much (about 30% of tokens in FineWeb's ablations), so FineWeb kept
   every other C4 rule and replaced that one with the gentler document-level ratio in (4).
   :func:`c4_filter` can turn it back on.
4. **FineWeb's own** (``FineWebQualityFilter``): drop when under 12% of lines end in terminal
   punctuation, over 67% of lines are 30 characters or shorter, over 1% of characters sit in
   duplicated lines, or there are more than 0.3 newlines per word (lists).

Where we differ from datatrove, and why: datatrove splits English into words and sentences with
spaCy; we use a regular expression that splits like spaCy does in the common cases (words, and
each punctuation mark as its own token) so this module needs no extra package. The counts can
differ on contractions, URLs and abbreviations, which matters only for documents sitting right
on a threshold. ``tests/test_quality.py`` checks our decisions against datatrove's filters.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

import regex

# --- shared helpers --------------------------------------------------------------------------

# Tokens, in the order the alternatives are tried (spaCy's English rules in miniature):
# an ellipsis; the clitics "n't", "'s", "'ll", "'re", "'ve", "'d", "'m" as tokens of their own
# (spaCy: "don't" -> "do" "n't"); the letters before "n't"; a word of letters/digits with inner
# dots or underscores ("3.14", "e.g", "calculate_meta") or inner apostrophes ("o'er"); and any
# other non-space character alone (so "__init__" is "_" "_" "init" "_" "_", as in spaCy).
_L = r"[\p{L}\p{M}\p{N}]"
_CLITIC = r"(?i:['’](?:s|ll|re|ve|d|m))(?!\p{L})"
_TOKEN = regex.compile(
    rf"\.\.\.|(?i:n['’]t)(?!\p{{L}})|{_CLITIC}|{_L}+?(?=(?i:n['’]t)(?!\p{{L}}))"
    rf"|{_L}+(?:[._]{_L}+)*(?:(?!{_CLITIC})['’]{_L}+)*|\S"
)
# Unicode's Sentence_Terminal property: the same set datatrove's TERMINAL_PUNCTUATION lists
# (". ! ?" and their equivalents in other scripts, such as "。" and "؟").
_TERMINAL = regex.compile(r"\p{Sentence_Terminal}$")
_SENTENCE_END = regex.compile(r"(?<=\p{Sentence_Terminal})[\"'”’)\]]*\s+")


def words(text: str) -> list[str]:
    """Word and punctuation tokens, roughly as spaCy's English tokenizer splits them.

    >>> words("Hello, world... It's 3.5 km!")
    ['Hello', ',', 'world', '...', 'It', "'s", '3.5', 'km', '!']
    >>> words("Don't call __init__ o'er there")
    ['Do', "n't", 'call', '_', '_', 'init', '_', '_', "o'er", 'there']
    """
    return _TOKEN.findall(text)


def is_symbol(token: str) -> bool:
    """True for a token made only of punctuation and symbols.

    >>> is_symbol("..."), is_symbol("#"), is_symbol("a1"), is_symbol("€5")
    (True, True, False, False)
    """
    return all(unicodedata.category(ch)[0] in "PSC" for ch in token)


def ends_with_terminal(line: str) -> bool:
    """True when the line's last character ends a sentence (``.``, ``!``, ``?``, ``。``...).

    >>> ends_with_terminal("It rained."), ends_with_terminal("Menu"), ends_with_terminal("Why?  ")
    (True, False, False)
    """
    return bool(_TERMINAL.search(line))


def count_sentences(line: str) -> int:
    """Sentences in a line: pieces ending in terminal punctuation followed by a space, plus the rest.

    >>> count_sentences("One. Two! Three"), count_sentences("No end mark"), count_sentences("")
    (3, 1, 0)
    """
    return sum(1 for part in _SENTENCE_END.split(line.strip()) if part.strip())


def find_duplicates(items: list[str]) -> tuple[int, int]:
    """(number of repeats, characters in repeats): every occurrence after an item's first counts.

    >>> find_duplicates(["a", "bb", "a", "bb", "bb", "c"])
    (3, 5)
    """
    seen: set[str] = set()
    count = chars = 0
    for item in items:
        if item in seen:
            count += 1
            chars += len(item)
        else:
            seen.add(item)
    return count, chars


def top_ngram_chars(tokens: list[str], n: int) -> int:
    """Characters covered by the most frequent n-gram: its length (words joined by spaces) x its count.

    As in datatrove, the top n-gram counts even when it occurs only once, so a very short text
    fails this rule before any other.

    >>> top_ngram_chars("a b a b a b".split(), 2)  # "a b" three times
    9
    """
    grams = Counter(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    if not grams:
        return 0
    gram, count = grams.most_common(1)[0]
    return len(gram) * count


def duplicate_ngram_chars(tokens: list[str], n: int) -> int:
    """Characters in n-grams that already occurred earlier (repeats are skipped whole, not overlapped).

    >>> duplicate_ngram_chars("x y z x y z".split(), 3)  # the second "xyz" is a repeat
    3
    """
    seen: set[str] = set()
    chars, i = 0, 0
    while i < len(tokens) - n + 1:
        gram = "".join(tokens[i : i + n])  # datatrove joins without spaces here
        if gram in seen:
            chars += len(gram)
            i += n
        else:
            seen.add(gram)
            i += 1
    return chars


# --- 1. Gopher repetition ------------------------------------------------------------------------

GOPHER_DUP_LINE_FRAC = 0.30
GOPHER_DUP_PARA_FRAC = 0.30
GOPHER_DUP_LINE_CHAR_FRAC = 0.20
GOPHER_DUP_PARA_CHAR_FRAC = 0.20
GOPHER_TOP_NGRAMS = ((2, 0.20), (3, 0.18), (4, 0.16))
GOPHER_DUP_NGRAMS = ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))


def gopher_repetition(text: str) -> str | None:
    """Gopher's repetition rules; ``None`` or ``"gopher_rep:<rule>"``.

    >>> gopher_repetition("Buy now!\\n" * 10)
    'gopher_rep:dup_line_frac'
    """
    if not text or not text.strip():
        return "gopher_rep:empty"
    paragraphs = re.split(r"\n{2,}", text.strip())
    dup, dup_chars = find_duplicates(paragraphs)
    if dup / len(paragraphs) > GOPHER_DUP_PARA_FRAC:
        return "gopher_rep:dup_para_frac"
    if dup_chars / len(text) > GOPHER_DUP_PARA_CHAR_FRAC:
        return "gopher_rep:dup_para_char_frac"

    lines = re.split(r"\n+", text)
    dup, dup_chars = find_duplicates(lines)
    if dup / len(lines) > GOPHER_DUP_LINE_FRAC:
        return "gopher_rep:dup_line_frac"
    if dup_chars / len(text) > GOPHER_DUP_LINE_CHAR_FRAC:
        return "gopher_rep:dup_line_char_frac"

    tokens = words(text)
    for n, limit in GOPHER_TOP_NGRAMS:
        if top_ngram_chars(tokens, n) / len(text) > limit:
            return f"gopher_rep:top_{n}_gram"
    for n, limit in GOPHER_DUP_NGRAMS:
        if duplicate_ngram_chars(tokens, n) / len(text) > limit:
            return f"gopher_rep:dup_{n}_gram"
    return None


# --- 2. Gopher quality ---------------------------------------------------------------------------

GOPHER_MIN_WORDS, GOPHER_MAX_WORDS = 50, 100_000
GOPHER_MIN_MEAN_WORD_LEN, GOPHER_MAX_MEAN_WORD_LEN = 3, 10
GOPHER_MAX_SYMBOL_WORD_RATIO = 0.1  # for "#" and for ellipses, each on its own
GOPHER_MAX_BULLET_LINES = 0.9
GOPHER_MAX_ELLIPSIS_LINES = 0.3
GOPHER_MIN_ALPHA_WORDS = 0.8
GOPHER_STOP_WORDS = frozenset(["the", "be", "to", "of", "and", "that", "have", "with"])
GOPHER_MIN_STOP_WORDS = 2
BULLETS = ("•", "-")  # the two datatrove checks


def gopher_quality(text: str) -> str | None:
    """Gopher's document-quality rules; ``None`` or ``"gopher_qual:<rule>"``.

    Word counts and mean word length use words that are not pure punctuation; the ratios divide
    by all tokens, punctuation included (as datatrove does).

    >>> gopher_quality("Too short to be a web page.")
    'gopher_qual:too_few_words'
    """
    tokens = words(text)
    n_tokens = len(tokens)
    real_words = [w for w in tokens if not is_symbol(w)]
    if len(real_words) < GOPHER_MIN_WORDS:
        return "gopher_qual:too_few_words"
    if len(real_words) > GOPHER_MAX_WORDS:
        return "gopher_qual:too_many_words"

    mean_len = sum(map(len, real_words)) / len(real_words)
    if mean_len < GOPHER_MIN_MEAN_WORD_LEN:
        return "gopher_qual:mean_word_len_low"
    if mean_len > GOPHER_MAX_MEAN_WORD_LEN:
        return "gopher_qual:mean_word_len_high"

    if text.count("#") / n_tokens > GOPHER_MAX_SYMBOL_WORD_RATIO:
        return "gopher_qual:hash_ratio"
    if (text.count("...") + text.count("…")) / n_tokens > GOPHER_MAX_SYMBOL_WORD_RATIO:
        return "gopher_qual:ellipsis_ratio"

    lines = text.splitlines()
    if sum(line.lstrip().startswith(BULLETS) for line in lines) / len(lines) > GOPHER_MAX_BULLET_LINES:
        return "gopher_qual:bullet_lines"
    if sum(line.rstrip().endswith(("...", "…")) for line in lines) / len(lines) > GOPHER_MAX_ELLIPSIS_LINES:
        return "gopher_qual:ellipsis_lines"

    if sum(any(ch.isalpha() for ch in w) for w in tokens) / n_tokens < GOPHER_MIN_ALPHA_WORDS:
        return "gopher_qual:alpha_words"
    if len(GOPHER_STOP_WORDS.intersection(tokens)) < GOPHER_MIN_STOP_WORDS:  # case-sensitive, as in datatrove
        return "gopher_qual:stop_words"
    return None


# --- 3. C4 ---------------------------------------------------------------------------------------

C4_END_PUNCTUATION = (".", "?", "!", '"', "'")
C4_POLICY = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
C4_CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
C4_MIN_SENTENCES = 5
C4_MIN_WORDS_PER_LINE = 3
C4_MAX_WORD_LEN = 1000


def c4_filter(
    text: str,
    filter_no_terminal_punct: bool = False,
    min_sentences: int = C4_MIN_SENTENCES,
    min_words_per_line: int = C4_MIN_WORDS_PER_LINE,
) -> tuple[str | None, str]:
    """C4's rules as FineWeb ran them -> (reason or ``None``, text with the failing lines removed).

    Lines are stripped and removed when they hold a word over 1,000 characters, fewer than
    ``min_words_per_line`` words, "javascript", or a cookie/privacy/terms notice; ``[1]``-style
    citations are cut out. The whole document goes for "lorem ipsum" or a ``{``, or when fewer
    than ``min_sentences`` sentences remain. ``filter_no_terminal_punct=True`` restores C4's
    original rule that a kept line must end in ``. ? ! " '`` (and not in ``...``); FineWeb left
    it off. On a drop, the text comes back unchanged.

    >>> c4_filter("Accept all cookies? This site uses cookies.\\nOne. Two. Three. Four. Five sentences here.")
    (None, 'One. Two. Three. Four. Five sentences here.')
    >>> c4_filter("function f() { return 1; } is what we wrote.")[0]
    'c4:curly_bracket'
    """
    kept, sentences = [], 0
    for line in text.splitlines():
        line = line.strip()
        line_words = line.split()
        if any(len(w) > C4_MAX_WORD_LEN for w in line_words):
            continue
        line = C4_CITATION.sub("", line)
        if filter_no_terminal_punct and (not line.endswith(C4_END_PUNCTUATION) or line.endswith("...")):
            continue
        if len(line_words) < min_words_per_line:
            continue
        lower = line.lower()
        if "lorem ipsum" in lower:
            return "c4:lorem_ipsum", text
        if "javascript" in lower:
            continue
        if "{" in line:
            return "c4:curly_bracket", text
        if any(p in lower for p in C4_POLICY):
            continue
        sentences += count_sentences(line)
        kept.append(line)
    if sentences < min_sentences:
        return "c4:too_few_sentences", text
    return None, "\n".join(kept).strip()


# --- 4. FineWeb's own ----------------------------------------------------------------------------

FINEWEB_MIN_PUNCT_LINES = 0.12
FINEWEB_SHORT_LINE_CHARS = 30
FINEWEB_MAX_SHORT_LINES = 0.67
FINEWEB_MAX_DUP_LINE_CHARS = 0.01
FINEWEB_MAX_NEWLINES_PER_WORD = 0.3


def fineweb_filter(text: str) -> str | None:
    """FineWeb's three rules (plus datatrove's list rule); ``None`` or ``"fineweb:<rule>"``.

    Blank lines are ignored. A line "ends in punctuation" when its very last character is a
    sentence terminal, and "is short" at 30 characters or fewer (trailing spaces count, as in
    datatrove).

    >>> fineweb_filter("Home\\nAbout us\\nContact\\nShop")
    'fineweb:line_punct_ratio'
    """
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines:
        return "fineweb:empty"
    if sum(ends_with_terminal(line) for line in lines) / len(lines) < FINEWEB_MIN_PUNCT_LINES:
        return "fineweb:line_punct_ratio"
    if sum(len(line) <= FINEWEB_SHORT_LINE_CHARS for line in lines) / len(lines) > FINEWEB_MAX_SHORT_LINES:
        return "fineweb:short_line_ratio"
    if find_duplicates(lines)[1] / max(len(text.replace("\n", "")), 1) > FINEWEB_MAX_DUP_LINE_CHARS:
        return "fineweb:char_dup_ratio"
    if text.count("\n") / max(len(words(text)), 1) > FINEWEB_MAX_NEWLINES_PER_WORD:
        return "fineweb:list_ratio"
    return None


# --- all of them, in FineWeb's order -------------------------------------------------------------


def quality_reason(text: str) -> tuple[str | None, str]:
    """(first failing rule or ``None``, text after C4's line removal) in FineWeb's order.

    Gopher repetition, then Gopher quality, then C4 (which may remove lines), then FineWeb's
    rules on what C4 left. A dropped document comes back as it was given.
    """
    for rule in (gopher_repetition, gopher_quality):
        if reason := rule(text):
            return reason, text
    reason, cleaned = c4_filter(text)
    if reason:
        return reason, text
    if reason := fineweb_filter(cleaned):
        return reason, text
    return None, cleaned
