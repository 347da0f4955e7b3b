"""Our byte-level BPE tokenizer for the browser: one compact JSON file the site's playground reads.

In: a :class:`~llmkb.tokenizer.bpe.BPETokenizer`. Out: :func:`to_web_json`, a JSON string with
everything a JavaScript encoder needs to produce the same ids as :meth:`BPETokenizer.encode`
(the merges in rank order, each token's bytes, the pre-split regex in Python and in JavaScript
syntax, the special tokens) plus the colors of :mod:`llmkb.tokenizer.viz`, so the playground
colors tokens like the static views. :func:`from_web_json` reads such a file back into a
tokenizer, which is how the tests check that nothing the encoder needs is missing.

The site's ``docs/assets/javascripts/tokenizer-playground.js`` is the JavaScript side.
"""

from __future__ import annotations

import json

from llmkb.tokenizer.bpe import SPLIT_PATTERN, BPETokenizer
from llmkb.tokenizer.viz import PALETTE

FORMAT = "llmkb-bpe-web/1"

# JavaScript RegExps (with the "u" flag) that split text exactly like a Python pattern does
# (tests/test_browser_playground.py compares the chunks in Python's regex and in chromium).
# Each rewrite keeps the meaning:
# - `(?i:...)` needs a 2025 JavaScript engine, so the case variants are spelled out; Python's
#   simple case folding also lets `s` match U+017F (long s), hence `\u017F` in the class;
# - Python's `\s` is exactly Unicode's White_Space property, while JavaScript's `\s` adds U+FEFF
#   and lacks U+0085, so `\s` becomes `\p{White_Space}` and `\S` becomes `\P{White_Space}`;
# - possessive quantifiers (`?+`, `++`) become greedy ones: here what follows them can never
#   match what they gave up, so backtracking into them never finds another match.
JS_PATTERNS = {
    SPLIT_PATTERN: (
        r"'(?:[sdmtSDMT\u017F]|[lL][lL]|[vV][eE]|[rR][eE])"
        r"|[^\r\n\p{L}\p{N}]?\p{L}+"
        r"|\p{N}"
        r"| ?[^\p{White_Space}\p{L}\p{N}]+[\r\n]*"
        r"|\p{White_Space}*[\r\n]"
        r"|\p{White_Space}+(?!\P{White_Space})"
        r"|\p{White_Space}+"
    ),
}


def js_pattern(pattern: str) -> str:
    """The JavaScript RegExp source (use it with the ``u`` flag) that splits like ``pattern``.

    Only patterns whose translation was checked are known; any other raises, rather than let the
    browser split text differently from Python without anyone noticing.

    Examples:
        >>> js_pattern(SPLIT_PATTERN)[:30]
        "'(?:[sdmtSDMT\\\\u017F]|[lL][lL]|"
        >>> js_pattern(r"\\w+")  # doctest: +NORMALIZE_WHITESPACE
        Traceback (most recent call last):
        ...
        ValueError: no JavaScript translation of the pre-split pattern '\\\\w+';
        add one to llmkb.tokenizer.web.JS_PATTERNS
    """
    if pattern not in JS_PATTERNS:
        raise ValueError(
            f"no JavaScript translation of the pre-split pattern {pattern!r}; "
            "add one to llmkb.tokenizer.web.JS_PATTERNS"
        )
    return JS_PATTERNS[pattern]


def to_web_json(tokenizer: BPETokenizer) -> str:
    """The tokenizer as compact JSON for the browser.

    ``merges`` is flat: ``[left, right, left, right, ...]`` in rank order, the pair of rank k
    making token ``256 + k``; ``vocab[id]`` is token ``id``'s bytes in hex.

    Examples:
        >>> tok = BPETokenizer({(104, 105): 256}, {"<|endoftext|>": 257})   # one merge: "h" + "i"
        >>> data = json.loads(to_web_json(tok))
        >>> data["merges"], data["vocab"][256], data["special_tokens"]
        ([104, 105], '6869', {'<|endoftext|>': 257})
    """
    merges = []
    for rank, ((left, right), new_id) in enumerate(tokenizer.merges.items()):
        if new_id != 256 + rank:  # the flat layout stores ids by position
            raise ValueError(f"merge {rank} ({left}, {right}) makes id {new_id}, expected {256 + rank}")
        merges += [left, right]
    data = {
        "format": FORMAT,
        "pattern": tokenizer.pattern,  # Python syntax: the reference the JavaScript one mirrors
        "js_pattern": js_pattern(tokenizer.pattern),
        "special_tokens": tokenizer.special_tokens,
        "merges": merges,
        "vocab": [tokenizer.vocab[i].hex() for i in range(len(tokenizer.vocab))],
        "palette": list(PALETTE),
    }
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def from_web_json(text: str) -> BPETokenizer:
    """Read :func:`to_web_json`'s output back; an inconsistent file raises saying what is wrong.

    Examples:
        >>> tok = BPETokenizer({(104, 105): 256}, {"<|endoftext|>": 257})
        >>> from_web_json(to_web_json(tok)).encode("hi hi<|endoftext|>")
        [256, 32, 256, 257]
    """
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"not a web tokenizer file: format {found!r}, expected {FORMAT!r}")
    flat = data["merges"]
    if len(flat) % 2:
        raise ValueError(f"merges holds {len(flat)} numbers; expected (left, right) pairs")
    merges = {(flat[k], flat[k + 1]): 256 + k // 2 for k in range(0, len(flat), 2)}
    tokenizer = BPETokenizer(merges, data["special_tokens"], data["pattern"])
    if data["js_pattern"] != js_pattern(data["pattern"]):
        raise ValueError("js_pattern is not the checked translation of pattern")
    vocab = [bytes.fromhex(h) for h in data["vocab"]]
    expected = [tokenizer.vocab[i] for i in range(len(tokenizer.vocab))]
    if vocab != expected:
        bad = next((i for i, (a, b) in enumerate(zip(vocab, expected)) if a != b), min(len(vocab), len(expected)))
        raise ValueError(
            f"vocab disagrees with merges at token {bad} ({len(vocab)} tokens listed, {len(expected)} made)"
        )
    return tokenizer
