"""The production path: our merges in HF tokenizers / transformers / tiktoken give identical ids."""

from __future__ import annotations

import pytest
import regex
from tokenizers import Tokenizer
from transformers import AutoTokenizer

from llmkb.tokenizer.bench import run_benchmark, to_markdown
from llmkb.tokenizer.bpe import SPECIAL_TOKENS, SPLIT_PATTERN, BPETokenizer
from llmkb.tokenizer.hf import (
    CHATML_TEMPLATE,
    load_pretrained,
    to_hf_tokenizer,
    to_pretrained,
    to_tiktoken,
    train_hf_bpe,
)

from tokenizer_samples import MULTILINGUAL, PROBES  # tests/ is on sys.path under pytest

CODE = "class A(B):\n\tdef __init__(self, n=10):\n\t\tself.n = n  # комментарий\n\n\n\nprint(A(3).n)\r\n"
STRINGS = (
    PROBES + MULTILINGUAL + [CODE, "x" * 300 + "!!!   \n\n", "ＡＢＣ１２３ ½ ² ٣", "\u200b\u00a0 nbsp", "a\U0001f600b"]
)

MESSAGES = [
    {"role": "system", "content": "You are brief."},
    {"role": "user", "content": "Xin chào! 2+2?"},
    {"role": "assistant", "content": "4. Chào bạn 👋"},
    {"role": "user", "content": "你好"},
    {"role": "assistant", "content": "你好！"},
]


def small_corpus() -> list[str]:
    """About 60 KB: standard-library docstrings (English prose and code) plus multilingual lines."""
    import argparse
    import json
    import pathlib
    import re
    import textwrap

    docs = [m.__doc__ or "" for m in (argparse, json, pathlib, re, textwrap, regex)]
    docs += [fn.__doc__ or "" for fn in (re.sub, re.split, json.dumps, json.loads, textwrap.wrap, sorted, print)]
    return docs + MULTILINGUAL * 20 + [CODE] * 5


def random_strings(n: int, seed: int = 0) -> list[str]:
    """Random mixtures of the characters a tokenizer finds hard, specials included."""
    import random

    rng = random.Random(seed)
    pieces = list("aeiouxyzAEZ0123456789 \t\n\r.,;:!?'\"()[]{}-_=+*/#@") + [
        "ệ",
        "ở",
        "đ",
        "我",
        "们",
        "的",
        "🤖",
        "👍🏽",
        "🎉",
        "  ",
        "\n\n",
        "'s",
        "'LL",
        "<|endoftext|>",
        "<|im_end|>",
        "\u00a0",
        "\u200b",
        "½",
        "٣",
        "ﬁ",
    ]
    return ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 40))) for _ in range(n)]


@pytest.fixture(scope="module")
def bpe() -> BPETokenizer:
    return BPETokenizer.train(small_corpus(), vocab_size=600)


@pytest.fixture(scope="module")
def hf(bpe):
    return to_hf_tokenizer(bpe)


@pytest.fixture(scope="module")
def saved(bpe, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tok")
    to_pretrained(to_hf_tokenizer(bpe)).save_pretrained(folder)
    return folder


def test_same_pre_split_in_all_three_regex_engines(hf):
    """Python's `regex`, HF's Oniguruma and tiktoken's fancy-regex must cut text identically."""
    from tokenizers import Regex, pre_tokenizers

    split = pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated")
    for text in STRINGS + random_strings(300):
        ours = regex.findall(SPLIT_PATTERN, text)
        theirs = [piece for piece, _ in split.pre_tokenize_str(text)]
        assert theirs == ours, text


def test_hf_ids_identical(bpe, hf):
    for text in STRINGS:
        ids = bpe.encode(text)
        assert hf.encode(text, add_special_tokens=False).ids == ids, text
        assert hf.decode(ids, skip_special_tokens=False) == text
    batch = hf.encode_batch(STRINGS, add_special_tokens=False)
    assert [e.ids for e in batch] == [bpe.encode(t) for t in STRINGS]
    assert hf.get_vocab_size() == bpe.vocab_size
    assert {s: hf.token_to_id(s) for s in SPECIAL_TOKENS} == bpe.special_tokens


def test_tiktoken_ids_identical(bpe):
    enc = to_tiktoken(bpe)
    for text in STRINGS:
        assert enc.encode(text, allowed_special="all") == bpe.encode(text), text
        assert enc.encode_ordinary(text) == bpe.encode(text, allowed_special="none"), text
        assert enc.decode(bpe.encode(text)) == text
    assert enc.n_vocab == bpe.vocab_size


def test_identical_on_corpus_and_random_strings(bpe, hf):
    enc = to_tiktoken(bpe)
    for text in small_corpus() + random_strings(500, seed=1):
        ids = bpe.encode(text)
        assert hf.encode(text, add_special_tokens=False).ids == ids
        assert enc.encode(text, allowed_special="all") == ids


def test_identical_on_the_embedded_corpus():
    """The real thing, smaller: train on the embedded default corpus, compare every document."""
    from llmkb.corpus import build_corpus

    texts = [doc["text"] for doc in build_corpus(600_000, seed=0)]
    bpe = BPETokenizer.train(texts, vocab_size=2048)
    hf, enc = to_hf_tokenizer(bpe), to_tiktoken(bpe)
    ours = [bpe.encode(t) for t in texts]
    assert [e.ids for e in hf.encode_batch(texts, add_special_tokens=False)] == ours
    assert [enc.encode(t, allowed_special="all") for t in texts] == ours
    assert all(bpe.decode(ids) == t for ids, t in zip(ours, texts))


def test_saved_folder_loads_offline(bpe, saved):
    assert (saved / "tokenizer.json").is_file()
    raw = Tokenizer.from_file(str(saved / "tokenizer.json"))
    auto = AutoTokenizer.from_pretrained(str(saved))
    ours = load_pretrained(saved)
    for text in STRINGS:
        ids = bpe.encode(text)
        assert raw.encode(text, add_special_tokens=False).ids == ids
        assert auto(text, add_special_tokens=False)["input_ids"] == ids
        assert ours(text)["input_ids"] == ids  # no BOS is added behind our back
    assert auto.eos_token == auto.bos_token == auto.pad_token == "<|endoftext|>"
    assert auto.eos_token_id == bpe.special_tokens["<|endoftext|>"]
    assert auto.model_max_length == 2048
    assert auto.decode(bpe.encode("Tiếng Việt 🤖")) == "Tiếng Việt 🤖"


def test_chat_template_renders_chatml(saved):
    tok = load_pretrained(saved)
    assert tok.chat_template == CHATML_TEMPLATE
    text = tok.apply_chat_template(MESSAGES, tokenize=False)
    assert text == (
        "<|im_start|>system\nYou are brief.<|im_end|>\n"
        "<|im_start|>user\nXin chào! 2+2?<|im_end|>\n"
        "<|im_start|>assistant\n4. Chào bạn 👋<|im_end|>\n"
        "<|im_start|>user\n你好<|im_end|>\n"
        "<|im_start|>assistant\n你好！<|im_end|>\n"
    )
    prompt = tok.apply_chat_template(MESSAGES[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>user\nXin chào! 2+2?<|im_end|>\n<|im_start|>assistant\n")
    ids = tok.apply_chat_template(MESSAGES, tokenize=True, return_dict=True)["input_ids"]
    assert ids.count(tok.convert_tokens_to_ids("<|im_start|>")) == 5  # control tokens stay single ids


def test_assistant_mask_marks_exactly_the_assistant_replies(bpe, saved):
    tok = load_pretrained(saved)
    out = tok.apply_chat_template(MESSAGES, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    assert len(mask) == len(ids)
    marked = [i for i, m in zip(ids, mask) if m]
    # each reply and the <|im_end|> that ends it (the model must learn to stop); nothing else
    expected = bpe.encode("4. Chào bạn 👋<|im_end|>") + bpe.encode("你好！<|im_end|>")
    assert marked == expected
    # the marked tokens form two contiguous runs, one per assistant turn
    runs = sum(1 for k in range(len(mask)) if mask[k] and (k == 0 or not mask[k - 1]))
    assert runs == 2


def test_load_pretrained_errors(tmp_path, saved):
    with pytest.raises(FileNotFoundError, match=regex.escape(str(tmp_path / "none"))):
        load_pretrained(tmp_path / "none")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=regex.escape(str(empty / "tokenizer.json"))):
        load_pretrained(empty)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "tokenizer.json").write_text('{"model": ')
    with pytest.raises(ValueError, match=regex.escape(str(broken / "tokenizer.json")) + ".*not a valid"):
        load_pretrained(broken)


def test_to_pretrained_needs_the_special_tokens():
    plain = train_hf_bpe(["some words here"], vocab_size=270, special_tokens=[])
    with pytest.raises(ValueError, match="lacks the special tokens"):
        to_pretrained(plain)


def test_hf_trainer_with_our_pre_split():
    tok = train_hf_bpe(small_corpus(), vocab_size=600)
    assert tok.get_vocab_size() == 600
    ids = tok.encode("12345<|im_end|>").ids
    assert len(ids) == 6 and ids[-1] == tok.token_to_id("<|im_end|>")  # digits apart, special whole
    for text in STRINGS:
        assert tok.decode(tok.encode(text).ids, skip_special_tokens=False) == text
    with pytest.raises(ValueError, match="vocab_size=100"):
        train_hf_bpe(["x"], vocab_size=100)


def test_benchmark_reports_every_number():
    result = run_benchmark(small_corpus()[:4], vocab_size=300)
    assert set(result) == {
        "corpus_mb",
        "vocab_size",
        "cpu_count",
        "train_s",
        "train_ratio",
        "train_ratio_vs_hf_default",
        "encode_mb_s",
    }
    assert set(result["train_s"]) == {"llmkb", "hf_1_thread", "hf_default"}
    assert set(result["encode_mb_s"]) == {"llmkb", "llmkb_cold", "hf_1_thread", "hf_default", "tiktoken"}
    numbers = [v for v in result.values() if not isinstance(v, dict)]
    numbers += [*result["train_s"].values(), *result["encode_mb_s"].values()]
    assert all(n > 0 for n in numbers), result
    assert result["vocab_size"] == 300
    table = to_markdown(result)
    assert table.count("\n|") == 5 and "tiktoken" in table and f"{result['train_ratio']:.2f}x" in table
