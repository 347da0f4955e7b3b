"""The from-scratch byte-level BPE: training, encoding, decoding, saving, and its error messages."""

from __future__ import annotations

import json
import random

import pytest
import regex

from llmkb.tokenizer.bpe import SPECIAL_TOKENS, SPLIT_PATTERN, BPETokenizer, train_textbook

from tokenizer_samples import MULTILINGUAL, PROBES  # tests/ is on sys.path under pytest


def small_corpus() -> list[str]:
    """About 60 KB of English prose (standard-library docstrings) and a little multilingual text."""
    import argparse
    import collections as c
    import json as j
    import pathlib
    import re
    import textwrap

    docs = [m.__doc__ or "" for m in (argparse, c, j, pathlib, re, textwrap)]
    docs += [fn.__doc__ or "" for fn in (re.sub, re.split, j.dumps, j.loads, textwrap.wrap, sorted, print)]
    return docs + MULTILINGUAL * 20 + ["Numbers: 1 22 333 4444 55555 2026 3.14159"] * 5


@pytest.fixture(scope="module")
def tok() -> BPETokenizer:
    return BPETokenizer.train(small_corpus(), vocab_size=600)


# ----------------------------------------------------------------------------------------------
# training


def test_vocab_layout(tok):
    n_merges = 600 - 256 - len(SPECIAL_TOKENS)
    assert tok.vocab_size == 600
    assert len(tok.merges) == n_merges
    assert list(tok.merges.values()) == list(range(256, 256 + n_merges))  # id = 256 + merge rank
    assert tok.special_tokens == {s: 256 + n_merges + k for k, s in enumerate(SPECIAL_TOKENS)}
    assert all(tok.vocab[i] == bytes([i]) for i in range(256))
    for (left, right), new_id in tok.merges.items():
        assert tok.vocab[new_id] == tok.vocab[left] + tok.vocab[right]
    # each token has its own bytes, so the HF (string -> id) and tiktoken (bytes -> rank) exports are exact
    assert len(set(tok.vocab.values())) == len(tok.vocab)


def test_planted_pair_is_first_merge():
    # minbpe's example: "aa" occurs 4 times, more than any other pair
    tok = BPETokenizer.train(["aaabdaaabac"], vocab_size=256 + 3, special_tokens=[])
    merges = list(tok.merges.items())
    assert merges[0] == ((97, 97), 256)
    # then (256, 97) "aa"+"a" and (97, 98) "a"+"b" both occur twice: the tie goes to the smaller pair
    assert merges[1] == ((97, 98), 257)
    assert tok.decode(tok.encode("aaabdaaabac")) == "aaabdaaabac"


def test_incremental_trainer_matches_textbook_trainer():
    texts = small_corpus()[:6]  # keep the textbook O(merges x corpus) loop quick
    ours = BPETokenizer.train(texts, vocab_size=256 + 150, special_tokens=[])
    assert len(ours.merges) == 150
    textbook = train_textbook(texts, 150, special_tokens=[])
    assert list(ours.merges.items()) == list(textbook.items())  # same merges, same order
    for text in texts[:2]:  # and so the same ids
        assert ours.encode(text) == BPETokenizer(textbook, ours.special_tokens).encode(text)


def test_textbook_trainer_skips_special_tokens_like_the_fast_one():
    texts = ["<|endoftext|>".join(small_corpus()[6:9]) + "<|im_start|>user hi<|im_end|>"]
    fast = BPETokenizer.train(texts, vocab_size=256 + 60 + len(SPECIAL_TOKENS))
    textbook = train_textbook(texts, 60)
    assert list(fast.merges.items()) == list(textbook.items())
    assert not any(b"endoftext" in fast.vocab[i] for i in textbook.values())


def test_training_is_deterministic_and_order_free():
    texts = small_corpus()
    shuffled = texts[:]
    random.Random(1).shuffle(shuffled)
    a = BPETokenizer.train(texts, 400)
    b = BPETokenizer.train(shuffled, 400)
    assert list(a.merges.items()) == list(b.merges.items())


def test_specials_are_not_trained_on():
    text = "<|endoftext|>" * 50 + "plain words"
    tok = BPETokenizer.train([text], vocab_size=300)
    assert not any(b"endoftext" in tok.vocab[i] for i in tok.merges.values())


def test_runs_out_of_pairs_gracefully():
    tok = BPETokenizer.train(["ab ab ab"], vocab_size=1000)
    assert len(tok.merges) < 1000 - 256 - 3  # stopped early: only a few pairs exist
    assert tok.encode("<|im_end|>") == [tok.special_tokens["<|im_end|>"]]
    assert tok.vocab_size == 256 + len(tok.merges) + 3


def test_progress_bar(capsys):
    tok = BPETokenizer.train(["hello hello world"], vocab_size=262, progress=True)
    assert "BPE merges" in capsys.readouterr().err
    assert tok.decode(tok.encode("hello world")) == "hello world"


# ----------------------------------------------------------------------------------------------
# encoding and decoding


@pytest.mark.parametrize("text", PROBES + MULTILINGUAL)
def test_roundtrip(tok, text):
    assert tok.decode(tok.encode(text)) == text
    assert tok.decode(tok.encode(text, allowed_special="none")) == text


def test_merges_compress_training_text(tok):
    text = " ".join(small_corpus()[:3])
    assert len(tok.encode(text)) < 0.6 * len(text.encode("utf-8"))


def test_every_digit_is_its_own_token(tok):
    ids = tok.encode("12345")
    assert len(ids) == 5
    assert [tok.decode([i]) for i in ids] == list("12345")
    assert len(tok.encode(" 2026")) == 5  # the space stays apart from the first digit


def test_pre_split_pattern():
    assert regex.findall(SPLIT_PATTERN, "I'm 42 today!!  ok") == ["I", "'m", " ", "4", "2", " today", "!!", " ", " ok"]


def test_specials_never_split_when_allowed(tok):
    text = "hi<|im_start|>user\nyo<|im_end|><|endoftext|>"
    ids = tok.encode(text)
    for special, i in tok.special_tokens.items():
        assert ids.count(i) == 1, special
    assert tok.decode(ids) == text
    # a subset can be allowed; the others are plain text
    ids = tok.encode(text, allowed_special={"<|endoftext|>"})
    assert tok.special_tokens["<|endoftext|>"] in ids and tok.special_tokens["<|im_start|>"] not in ids


def test_specials_are_plain_text_when_not_allowed(tok):
    text = "hi<|im_start|>user<|endoftext|>"
    ids = tok.encode(text, allowed_special="none")
    assert not set(ids) & set(tok.special_tokens.values())
    assert ids == tok.encode_ordinary(text)
    assert len(ids) > 4 and tok.decode(ids) == text


def test_bad_allowed_special(tok):
    with pytest.raises(ValueError, match="unknown special tokens"):
        tok.encode("x", allowed_special={"<|nope|>"})
    with pytest.raises(ValueError, match="allowed_special"):
        tok.encode("x", allowed_special="some")


def test_decode_partial_utf8_and_unknown_ids(tok):
    ids = tok.encode("ệ")
    first_byte = list("ệ".encode("utf-8"))[:1]
    assert tok.decode(first_byte) == "\ufffd"  # half a character decodes to the replacement mark
    assert tok.decode(ids) == "ệ"
    assert tok.token_bytes(tok.special_tokens["<|im_end|>"]) == b"<|im_end|>"
    with pytest.raises(ValueError, match="token id 99999"):
        tok.decode([99999])


def test_cache_does_not_change_results(tok):
    text = " ".join(PROBES)
    tok._cache.clear()
    cold = tok.encode(text)
    assert tok._cache  # chunks were cached
    assert tok.encode(text) == cold


# ----------------------------------------------------------------------------------------------
# saving, loading and errors


def test_save_load_roundtrip(tok, tmp_path):
    path = tok.save(tmp_path / "tok.json")
    again = BPETokenizer.load(path)
    assert again.merges == tok.merges and again.special_tokens == tok.special_tokens
    assert again.pattern == tok.pattern and again.vocab == tok.vocab
    for text in PROBES + MULTILINGUAL:
        assert again.encode(text) == tok.encode(text)
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temp file


def test_empty_corpus():
    with pytest.raises(ValueError, match="corpus is empty"):
        BPETokenizer.train([], vocab_size=300)
    with pytest.raises(ValueError, match="corpus is empty"):
        BPETokenizer.train(["", ""], vocab_size=300)


def test_vocab_too_small():
    with pytest.raises(ValueError, match=r"vocab_size=200 .* 256 \(bytes\) \+ 3 \(special tokens\) = 259"):
        BPETokenizer.train(["some text"], vocab_size=200)


def test_non_string_text():
    with pytest.raises(TypeError, match="must be str"):
        BPETokenizer.train([b"bytes"], vocab_size=300)


def test_load_missing_file(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(FileNotFoundError, match=regex.escape(str(missing))):
        BPETokenizer.load(missing)


def test_load_corrupt_file(tok, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=regex.escape(str(bad)) + ".*not valid JSON"):
        BPETokenizer.load(bad)

    saved = json.loads(tok.save(tmp_path / "ok.json").read_text())
    broken = [
        ([1, 2], "expected a JSON object"),
        ({**saved, "format": "other"}, "format is 'other'"),
        ({**saved, "merges": "x"}, "'merges' is missing"),
        ({**saved, "merges": [[97, 98]]}, r"merge 0 is \[97, 98\]"),
        ({**saved, "merges": [[97, 999, 256]]}, "do not exist before it"),
        ({**saved, "special_tokens": {"<|x|>": 3}}, "special token '<|x|>' has id 3"),
        ({**saved, "pattern": "(unclosed"}, "pattern does not compile"),
    ]
    for data, message in broken:
        bad.write_text(json.dumps(data))
        with pytest.raises(ValueError, match=regex.escape(str(bad)) + ".*" + message):
            BPETokenizer.load(bad)


def test_vocab_too_large():
    with pytest.raises(ValueError, match="vocab_size=2000000 is too large"):
        BPETokenizer.train(["some text"], vocab_size=2_000_000)


def test_training_restores_the_garbage_collector():
    import gc

    assert gc.isenabled()
    with pytest.raises(ValueError):
        BPETokenizer.train([""], vocab_size=300)  # fails inside the paused section
    assert gc.isenabled()
    BPETokenizer.train(["a b"], vocab_size=300)
    assert gc.isenabled()
