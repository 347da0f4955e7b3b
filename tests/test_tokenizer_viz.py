"""Token view and spelling helpers: pieces rebuild the text, the HTML shows every token, letters are counted."""

from __future__ import annotations

import re

import pytest
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from llmkb.tokenizer.viz import (
    Piece,
    counting_table,
    render_html,
    spelling_table,
    to_markdown,
    token_pieces,
)

TRAIN = [
    "The strawberry field was full of ripe berries and straw.",
    "A raw strawberry tastes better than a cooked one, the farmer said.",
    "Count the letters in every word before you answer the question.",
    "Người ta trồng dâu tây ở Đà Lạt.",
    "草莓很好吃。",
] * 20

SAMPLES = {
    "english": "Hello world!\nHow many r's are in strawberry?  Tabs\there.",
    "vietnamese": "Tiếng Việt có dấu: ả, ễ, ợ, ự và đ.",
    "chinese": "我们今天学习分词器。草莓",
    "emoji": "ok 😀👍🏽 family: 👨‍👩‍👧 flag: 🇻🇳",
}


@pytest.fixture(scope="module")
def byte_bpe() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        TRAIN,
        trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False),
    )
    return tok


@pytest.fixture(scope="module")
def wordpiece() -> Tokenizer:
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(
        TRAIN, trainers.WordPieceTrainer(vocab_size=200, special_tokens=["[UNK]"], show_progress=False)
    )
    return tok


class ByteTokens:
    """One token per byte, with token_bytes: the interface our from-scratch BPE offers."""

    def encode(self, text):
        return list(text.encode("utf-8"))

    def token_bytes(self, i):
        return bytes([i])


class DecodeOnly:
    """Pairs of bytes per token, only decode(ids) to get text back: the slow, generic path."""

    def encode(self, text):
        raw = text.encode("utf-8")
        return [int.from_bytes(raw[i : i + 2], "big") * 4 + len(raw[i : i + 2]) for i in range(0, len(raw), 2)]

    def decode(self, ids):
        raw = b"".join((i // 4).to_bytes(i % 4, "big") for i in ids)
        return raw.decode("utf-8", errors="replace")


def _tokenizers(byte_bpe, wordpiece):
    from transformers import PreTrainedTokenizerFast

    return {
        "hf-byte-bpe": byte_bpe,
        "hf-wordpiece": wordpiece,
        "transformers-fast": PreTrainedTokenizerFast(tokenizer_object=byte_bpe),
        "token_bytes": ByteTokens(),
        "decode-only": DecodeOnly(),
    }


@pytest.mark.parametrize("sample", list(SAMPLES))
def test_pieces_rebuild_the_input(byte_bpe, wordpiece, sample):
    text = SAMPLES[sample]
    for name, tok in _tokenizers(byte_bpe, wordpiece).items():
        pieces = token_pieces(tok, text)
        assert "".join(p.text for p in pieces) == text, name
        assert all(isinstance(p, Piece) for p in pieces)


def test_pieces_list_every_token_once(byte_bpe):
    for text in SAMPLES.values():
        ids = byte_bpe.encode(text).ids
        assert [i for p in token_pieces(byte_bpe, text) for i in p.ids] == ids


def test_a_character_split_over_byte_tokens_is_one_piece_with_all_its_ids():
    pieces = token_pieces(ByteTokens(), "a😀")
    assert pieces == [Piece((97,), "a"), Piece((0xF0, 0x9F, 0x98, 0x80), "😀")]


def test_text_no_token_covers_is_kept_as_a_piece_without_ids(wordpiece):
    pieces = token_pieces(wordpiece, "Count  the")
    assert Piece((), "  ") in pieces


def test_html_has_one_span_per_token_piece_with_its_ids(byte_bpe):
    text = SAMPLES["emoji"] + "\n" + SAMPLES["english"]
    pieces = token_pieces(byte_bpe, text)
    out = render_html(pieces)
    spans = re.findall(r'<span class="t c\d( m)?" title="([^"]*)">(.*?)<sub>([\d ]+)</sub></span>', out)
    token_pieces_ = [p for p in pieces if p.ids]
    assert len(spans) == len(token_pieces_)
    for (_, title, _, sub), piece in zip(spans, token_pieces_):
        assert sub == " ".join(map(str, piece.ids))
        assert all(str(i) in title for i in piece.ids)
    assert any(len(p.ids) > 1 for p in pieces) and ' m"' in out  # merged pieces are marked
    assert "·" in out and "↵" in out and "\n" not in out  # whitespace visible; one line for Markdown
    assert "<script" not in out and "http" not in out  # self-contained


def test_html_is_deterministic_and_escapes_text(byte_bpe):
    pieces = token_pieces(byte_bpe, "<b>bold</b> & co")
    assert render_html(pieces) == render_html(pieces)
    assert "<b>" not in render_html(pieces).split("</style>")[1]


def test_strawberry_has_three_rs(byte_bpe):
    rows = spelling_table(byte_bpe, ["strawberry", "Raspberry", "kiwi"], "r")
    by_word = {r["word"]: r for r in rows}
    assert by_word["strawberry"]["count"] == 3
    assert by_word["Raspberry"]["count"] == 3  # case-insensitive
    assert by_word["kiwi"]["spread"] == "absent"
    for r in rows:
        assert "".join(r["pieces"]) == r["word"]
        assert sum(r["per_token"]) == r["count"]
        assert r["n_tokens"] == len(byte_bpe.encode(r["word"]).ids)
    md = to_markdown(rows)
    assert md.splitlines()[0].startswith("| word | pieces | n_tokens |") and len(md.splitlines()) == 2 + len(rows)


def test_leading_space_changes_the_tokens_seen(byte_bpe):
    plain, spaced = (
        spelling_table(byte_bpe, ["strawberry"], "r"),
        spelling_table(byte_bpe, ["strawberry"], "r", leading_space=True),
    )
    assert spaced[0]["pieces"][0].startswith(" ")
    assert plain[0]["count"] == spaced[0]["count"] == 3


def test_counting_table_shows_fewer_tokens_than_characters(byte_bpe):
    rows = counting_table(byte_bpe, ["strawberry strawberry", "................"])
    assert rows[0]["n_chars"] == 21 and rows[0]["n_tokens"] < 21
    assert "".join(rows[1]["pieces"]) == "................"


def test_bad_input_errors():
    with pytest.raises(ValueError, match="one character"):
        spelling_table(ByteTokens(), ["x"], "rr")
    with pytest.raises(TypeError, match="no encode"):
        token_pieces(object(), "x")
