"""The six-method tokenizer table, re-measured: every row present and the numbers behave as the notes say."""

from __future__ import annotations

import math
import random

import pytest

from llmkb.tokenizer.compare import (
    BUILTIN_METHODS,
    MethodSpec,
    Trained,
    as_trained,
    compare_methods,
    to_markdown,
)

SUBJECTS = [
    "The miller",
    "A tired sailor",
    "Our neighbour",
    "The old king",
    "Every student",
    "My sister",
    "The baker",
    "A quiet fox",
    "The river pilot",
    "Some travellers",
]
VERBS = ["carried", "painted", "counted", "forgot", "borrowed", "repaired", "described", "followed", "sold", "found"]
OBJECTS = [
    "a basket of apples",
    "the broken lantern",
    "seven silver coins",
    "the map of the valley",
    "an unfinished letter",
    "the wooden bridge",
    "a pair of boots",
    "the morning bread",
    "the garden gate",
    "twelve candles",
]
TAILS = [
    "before sunrise.",
    "near the harbour.",
    "without a word.",
    "in the rain.",
    "after dinner, slowly.",
    "because nobody else would.",
    "while the bells rang.",
    "for the third time this week!",
    "and then went home.",
    "at the edge of town?",
]

OTHER = [
    "Hôm nay trời mưa rất to, chúng tôi ở nhà đọc sách và uống trà nóng.",
    "Người bán hàng đếm từng đồng xu trước khi đóng cửa tiệm.",
    "Thư viện thành phố mở cửa từ tám giờ sáng đến năm giờ chiều.",
    "今天早上我们去河边散步，看见很多小船。",
    "老师把地图挂在墙上，学生们认真地听讲。",
    "这座桥已经有三百年的历史了。",
    "Le boulanger prépare le pain très tôt, avant que le soleil ne se lève.",
    "Nous avons traversé la forêt à pied pendant deux heures.",
    "Ça coûte trop cher ; je préfère attendre les soldes d'été.",
]


def english(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(TAILS)}" for _ in range(n)]


@pytest.fixture(scope="module")
def results():
    train = english(400, seed=1)
    # A held-out sentence with words the word-level vocabulary has never seen.
    heldout_en = english(60, seed=2) + ["Zebras juggled marmalade beneath quixotic chandeliers."]
    rows = compare_methods(train, heldout_en, OTHER, vocab_size=600)
    return {r.method: r for r in rows}


def test_all_seven_rows_present_in_the_notes_order(results):
    assert list(results) == list(BUILTIN_METHODS)
    assert len(results) == 7


def test_byte_level_bpe_never_emits_unknown(results):
    bpe = results["BPE (byte-level)"]
    assert bpe.unk_rate_english == 0.0
    assert bpe.unk_rate_other == 0.0


def test_word_level_is_close_to_one_token_per_word_but_fails_on_other_languages(results):
    word, bpe = results["Word-level"], results["BPE (byte-level)"]
    assert word.unk_rate_other > 0.3
    assert word.unk_rate_english > 0.0  # the unseen words of the held-out sentence
    assert abs(word.tokens_per_word - 1) < abs(bpe.tokens_per_word - 1)


def test_character_level_has_a_tiny_vocabulary_and_one_byte_tokens(results):
    char, bpe = results["Character-level"], results["BPE (byte-level)"]
    assert char.vocab_size < 80 < bpe.vocab_size
    assert bpe.bytes_per_token > char.bytes_per_token
    assert char.bytes_per_token == pytest.approx(1.0)  # English text: one byte per character
    assert char.unk_rate_other > 0.0  # Chinese characters were never seen


def test_sentencepiece_without_byte_fallback_shows_unknowns_on_unseen_scripts(results):
    for name in ("SentencePiece (BPE)", "SentencePiece (Unigram)", "Unigram", "WordPiece"):
        assert results[name].unk_rate_other > 0.0, name
        assert results[name].unk_rate_english < results[name].unk_rate_other, name


def test_every_number_is_filled_in(results):
    for r in results.values():
        assert r.vocab_size and r.vocab_size > 0
        assert r.train_s >= 0
        assert not math.isnan(r.bytes_per_token) and not math.isnan(r.tokens_per_word)


def test_markdown_has_a_header_and_one_row_per_method(results):
    md = to_markdown(list(results.values()))
    lines = md.splitlines()
    assert lines[0].startswith("| Method |") and set(lines[1]) <= set("|-:")
    assert len(lines) == 2 + len(results)
    for name, line in zip(results, lines[2:]):
        assert line.startswith(f"| {name} |")


class ByteTokenizer:
    """Stand-in for our from-scratch BPE: one token per byte."""

    vocab_size = 256

    def encode(self, text):
        return list(text.encode("utf-8"))


def test_extra_rows_accept_the_small_protocol():
    train = english(50, seed=3)

    def bare(texts, vocab_size):  # a bare tokenizer object
        return ByteTokenizer()

    def as_tuple(texts, vocab_size):  # (encode, unk_id): vocabulary size unknown
        return (lambda s: [0 if c == "é" else 1 for c in s], 0)

    rows = compare_methods(
        train,
        english(5, seed=4),
        ["café"],
        vocab_size=400,
        methods=["Character-level"],
        extra={"bytes": MethodSpec(bare, library="ours", granularity="byte"), "toy": as_tuple},
    )
    assert [r.method for r in rows] == ["Character-level", "bytes", "toy"]
    assert rows[1].vocab_size == 256 and rows[1].bytes_per_token == 1.0 and rows[1].library == "ours"
    assert rows[2].vocab_size is None and rows[2].unk_rate_other == pytest.approx(0.25)
    assert "| toy | - | - | – |" in to_markdown(rows)


def test_bad_inputs_get_clear_errors():
    with pytest.raises(ValueError, match="train_texts is empty"):
        compare_methods([], ["a"], [])
    with pytest.raises(ValueError, match="unknown method"):
        compare_methods(["a b"], ["a"], [], methods=["Morse"])
    with pytest.raises(TypeError, match="expected Trained"):
        as_trained(42)
    assert isinstance(as_trained(ByteTokenizer()), Trained)
