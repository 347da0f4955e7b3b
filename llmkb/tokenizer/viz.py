"""See text the way a model sees it: as tokens. And why that makes spelling and counting hard.

In: a tokenizer and some text. Out: :func:`token_pieces` (which ids cover which characters),
:func:`render_html` (a tiktokenizer-style colored view for the site), :func:`spelling_table` and
:func:`counting_table` (rows for the "why models spell and count badly" section) and
:func:`to_markdown` for those rows.

Any of these tokenizers work:

* anything with ``encode(text) -> list[int]`` and ``token_bytes(id) -> bytes`` (our byte-level
  BPE) or ``decode_single_token_bytes(id)`` (tiktoken): exact bytes per token;
* a Hugging Face ``tokenizers.Tokenizer`` or a ``transformers`` fast tokenizer: character
  offsets of each token;
* anything with ``encode`` and ``decode(ids)``: decoded prefix by prefix (slower, best effort).

Byte-level tokens can end in the middle of a character (a Chinese character is 3 UTF-8 bytes, an
emoji 4, and a token may hold only some of them). A piece of text is only honest when it is made
of whole characters, so such tokens are merged with the ones that complete the character: the
:class:`Piece` then lists every id it took (``ids=(162, 244, 229)`` for one character spread
over three tokens), and the HTML draws it as one span with a dashed outline and all the ids.
Text that no token covers (spaces a pre-tokenizer dropped, as in WordPiece) becomes a piece with
no ids, drawn uncolored. So joining the pieces' texts always gives back the input.
"""

from __future__ import annotations

import codecs
import html
from collections.abc import Callable, Sequence
from typing import NamedTuple


class Piece(NamedTuple):
    ids: tuple[int, ...]  # usually one id; several when a character is split across tokens; () for uncovered text
    text: str  # the input characters these tokens stand for


# ---------------------------------------------------------------------------------------------
# Token -> text, for each kind of tokenizer
# ---------------------------------------------------------------------------------------------


def group_utf8(pairs: Sequence[tuple[int, bytes]]) -> list[Piece]:
    """Turn (id, bytes) per token into pieces of whole characters, merging tokens that split one.

    >>> group_utf8([(1, b"a"), (2, b"\\xe4\\xb8"), (3, b"\\xad"), (4, b"!")])
    [Piece(ids=(1,), text='a'), Piece(ids=(2, 3), text='中'), Piece(ids=(4,), text='!')]
    """
    pieces: list[Piece] = []
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    ids: list[int] = []
    text = ""
    for i, (tid, raw) in enumerate(pairs):
        ids.append(tid)
        text += decoder.decode(raw, final=i == len(pairs) - 1)
        if not decoder.getstate()[0]:  # no bytes left waiting for the rest of a character
            pieces.append(Piece(tuple(ids), text))
            ids, text = [], ""
    if ids:
        pieces.append(Piece(tuple(ids), text + decoder.decode(b"", final=True)))
    return pieces


def group_offsets(text: str, ids: Sequence[int], offsets: Sequence[tuple[int, int]]) -> list[Piece]:
    """Pieces from character offsets (Hugging Face style). Overlapping tokens share a character
    and are merged; text between tokens becomes a piece with no ids.

    >>> group_offsets("a 中!", [5, 7, 8, 9], [(0, 1), (2, 3), (2, 3), (3, 4)])
    [Piece(ids=(5,), text='a'), Piece(ids=(), text=' '), Piece(ids=(7, 8), text='中'), Piece(ids=(9,), text='!')]
    """
    groups: list[list] = []  # [ids, start, end]
    for tid, (start, end) in zip(ids, offsets):
        if groups and start < groups[-1][2]:  # starts inside the previous token: same character(s)
            groups[-1][0].append(tid)
            groups[-1][2] = max(groups[-1][2], end)
        else:
            groups.append([[tid], start, end])
    pieces: list[Piece] = []
    pos = 0
    for gids, start, end in groups:
        if start > pos:
            pieces.append(Piece((), text[pos:start]))
        pieces.append(Piece(tuple(gids), text[max(start, pos) : end]))
        pos = max(pos, end)
    if pos < len(text):
        pieces.append(Piece((), text[pos:]))
    return pieces


def _hf_backend(tokenizer):
    """The ``tokenizers.Tokenizer`` behind ``tokenizer``, or None if it is not a Hugging Face one."""
    backend = getattr(tokenizer, "backend_tokenizer", None)  # transformers' fast tokenizers
    if backend is not None:
        return backend
    try:
        from tokenizers import Tokenizer
    except ImportError:  # pragma: no cover - tokenizers is a dependency
        return None
    return tokenizer if isinstance(tokenizer, Tokenizer) else None


def _pieces_by_decoding(encode: Callable, decode: Callable, text: str) -> list[Piece]:
    """Decode growing prefixes; a prefix ending in U+FFFD is waiting for the rest of a character."""
    ids = list(encode(text))
    pieces: list[Piece] = []
    done, group = "", []
    for k, tid in enumerate(ids):
        group.append(tid)
        decoded = decode(ids[: k + 1])
        if decoded.endswith("\ufffd") and k < len(ids) - 1:
            continue
        new = decoded[len(done) :] if decoded.startswith(done) else decoded
        pieces.append(Piece(tuple(group), new))
        done, group = decoded, []
    return pieces


def token_pieces(tokenizer, text: str) -> list[Piece]:
    """Split ``text`` into the pieces ``tokenizer`` makes of it; see the module docstring.

    >>> class Bytes:  # a toy byte-level tokenizer: one token per byte
    ...     def encode(self, s): return list(s.encode())
    ...     def token_bytes(self, i): return bytes([i])
    >>> token_pieces(Bytes(), "hé")
    [Piece(ids=(104,), text='h'), Piece(ids=(195, 169), text='é')]
    """
    backend = _hf_backend(tokenizer)
    if backend is not None:
        enc = backend.encode(text, add_special_tokens=False)
        return group_offsets(text, enc.ids, enc.offsets)
    if not hasattr(tokenizer, "encode"):
        raise TypeError(f"{type(tokenizer).__name__} has no encode(text); cannot show its tokens")
    for name in ("token_bytes", "decode_single_token_bytes"):
        token_bytes = getattr(tokenizer, name, None)
        if callable(token_bytes):
            return group_utf8([(i, token_bytes(i)) for i in tokenizer.encode(text)])
    if callable(getattr(tokenizer, "decode", None)):
        return _pieces_by_decoding(tokenizer.encode, tokenizer.decode, text)
    raise TypeError(f"{type(tokenizer).__name__} has encode() but neither token_bytes(id) nor decode(ids)")


# ---------------------------------------------------------------------------------------------
# HTML view
# ---------------------------------------------------------------------------------------------

# Translucent fills tint the page's own background, so the text color the theme chose (dark on
# light, light on dark) stays readable under every one of them.
PALETTE = (
    "rgba(99, 155, 255, .32)",
    "rgba(255, 179, 71, .36)",
    "rgba(80, 200, 120, .32)",
    "rgba(255, 105, 140, .30)",
    "rgba(180, 130, 255, .32)",
    "rgba(64, 200, 200, .32)",
)

_CSS = (
    ".tkv{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;line-height:2.1;"
    "overflow-wrap:anywhere;padding:.5em 0}"
    ".tkv .t{display:inline-block;border-radius:3px;padding:0 1px;margin:1px 1px 1px 0;color:inherit;"
    "line-height:1.5}"
    ".tkv .t sub{font-size:.62em;opacity:.7;margin-left:1px}"
    ".tkv .m{outline:1px dashed currentColor;outline-offset:-1px}"
    ".tkv .g{opacity:.55}"
    ".tkv .ws{opacity:.55}"
    ".tkv .e{opacity:.55;font-style:italic}"
    ".tkv .sum{display:block;font-size:.8em;opacity:.75;line-height:1.4}"
    + "".join(f".tkv .c{i}{{background:{c}}}" for i, c in enumerate(PALETTE))
)


def visible_whitespace(text: str) -> str:
    """HTML for ``text`` with spaces as ·, tabs as →, newlines as ↵ (the line break itself is
    added after the token's span by :func:`render_html`, so a span never covers two lines).

    >>> visible_whitespace("a b\\n<c>")
    'a<span class="ws">·</span>b<span class="ws">↵</span>&lt;c&gt;'
    """
    out = []
    for ch in text:
        if ch == " ":
            out.append('<span class="ws">·</span>')
        elif ch == "\t":
            out.append('<span class="ws">→</span>')
        elif ch == "\n":
            out.append('<span class="ws">↵</span>')
        elif ch == "\r":
            out.append('<span class="ws">␍</span>')
        else:
            out.append(html.escape(ch))
    return "".join(out)


def render_html(pieces: Sequence[Piece], show_ids: bool = True, summary: bool = True) -> str:
    """A self-contained HTML snippet (one line, no JS, no external files) showing each token.

    Each token piece is a ``<span>`` colored by its position (so neighbours always differ), with
    its id(s) in the tooltip and, when ``show_ids``, as a small subscript. Merged pieces (one
    character over several tokens) get a dashed outline and list every id. ``summary`` adds a
    line with the token, character and byte counts.

    >>> out = render_html([Piece((7,), "Hi"), Piece((), " "), Piece((8, 9), "中")])
    >>> out.count('class="t '), 'title="id 7' in out, "<sub>8 9</sub>" in out, "\\n" in out
    (2, True, True, False)
    """
    parts = [f'<div class="tkv"><style>{_CSS}</style>']
    n = 0
    for piece in pieces:
        body = visible_whitespace(piece.text) if piece.text else '<span class="e">∅</span>'
        breaks = "<br>" * piece.text.count("\n")  # after the span, so breaks fall between tokens
        if not piece.ids:
            parts.append(f'<span class="g" title="not in any token">{body}</span>{breaks}')
            continue
        ids = " ".join(map(str, piece.ids))
        if len(piece.ids) == 1:
            tip = f"id {ids}: {piece.text!r}"
        else:
            raw = " ".join(f"{b:02x}" for b in piece.text.encode("utf-8"))
            tip = f"ids {ids}: {piece.text!r} (bytes {raw}) covered together by {len(piece.ids)} tokens"
        classes = f"t c{n % len(PALETTE)}" + (" m" if len(piece.ids) > 1 else "")
        sub = f"<sub>{ids}</sub>" if show_ids else ""
        parts.append(f'<span class="{classes}" title="{html.escape(tip, quote=True)}">{body}{sub}</span>{breaks}')
        n += 1
    if summary:
        n_tokens = sum(len(p.ids) for p in pieces)
        text = "".join(p.text for p in pieces)
        parts.append(
            f'<span class="sum">{n_tokens} tokens · {len(text)} characters · {len(text.encode("utf-8"))} bytes</span>'
        )
    parts.append("</div>")
    return "".join(parts)


# ---------------------------------------------------------------------------------------------
# Why models spell and count badly
# ---------------------------------------------------------------------------------------------


def letters_per_piece(pieces: Sequence[str], letter: str) -> list[int]:
    """How many times ``letter`` (case-insensitive) occurs in each piece.

    >>> letters_per_piece(["st", "raw", "berry"], "r")
    [0, 1, 2]
    """
    needle = letter.casefold()
    return [p.casefold().count(needle) for p in pieces]


def spelling_table(tokenizer, words: Sequence[str], letter: str, leading_space: bool = False) -> list[dict]:
    """One row per word: its pieces, how many tokens, the true count of ``letter``, and where it is.

    ``leading_space`` tokenizes " word" instead of "word", which is how a word usually appears
    mid-sentence to a GPT-style tokenizer (and often gets different tokens). ``spread`` says
    whether the letter's occurrences sit in one token or are spread across several: either way
    the model sees only token ids and has to have learned each token's spelling by heart.
    """
    if len(letter) != 1:
        raise ValueError(f"spelling_table: letter must be one character, got {letter!r}")
    rows = []
    for word in words:
        pieces = [p for p in token_pieces(tokenizer, (" " if leading_space else "") + word) if p.ids]
        texts = [p.text for p in pieces]
        per_piece = letters_per_piece(texts, letter)
        holding = sum(1 for c in per_piece if c)
        rows.append(
            {
                "word": word,
                "pieces": texts,
                "ids": [i for p in pieces for i in p.ids],
                "n_tokens": sum(len(p.ids) for p in pieces),
                "letter": letter,
                "count": word.casefold().count(letter.casefold()),
                "per_token": per_piece,
                "spread": "absent" if holding == 0 else "one token" if holding == 1 else f"across {holding} tokens",
            }
        )
    return rows


def counting_table(tokenizer, texts: Sequence[str]) -> list[dict]:
    """For strings whose length is the question ("how many dots?"): characters vs tokens seen."""
    rows = []
    for text in texts:
        pieces = [p for p in token_pieces(tokenizer, text) if p.ids]
        rows.append(
            {
                "text": text,
                "n_chars": len(text),
                "n_tokens": sum(len(p.ids) for p in pieces),
                "pieces": [p.text for p in pieces],
            }
        )
    return rows


def _cell(value) -> str:
    """A Markdown table cell; lists of pieces become code spans with visible spaces.

    >>> _cell(["st", " raw|"]), _cell(3), _cell([0, 1])
    ('`st` `·raw\\\\|`', '3', '0 1')
    """
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, str) for v in value) and value:
            return " ".join("`" + v.replace(" ", "·").replace("\n", "↵").replace("|", "\\|") + "`" for v in value)
        return " ".join(map(str, value))
    return str(value).replace("|", "\\|").replace("\n", "↵")


def to_markdown(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """Rows from :func:`spelling_table` or :func:`counting_table` as a Markdown table.

    >>> print(to_markdown([{"word": "hi", "pieces": ["h", "i"], "n_tokens": 2}]))
    | word | pieces | n_tokens |
    |---|---|---|
    | hi | `h` `i` | 2 |
    """
    if not rows:
        raise ValueError("to_markdown: no rows to show")
    columns = list(columns or [c for c in rows[0] if c not in ("ids", "letter")])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)
