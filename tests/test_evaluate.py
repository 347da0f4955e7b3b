"""Perplexity agrees with a token-by-token reference; tasks have the right answers and score fairly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from llmkb.evaluate.perplexity import (
    encode_documents,
    loglik_reference,
    perplexity,
    perplexity_of_texts,
    windows,
)
from llmkb.evaluate.tasks import (
    arithmetic_problems,
    exact_match,
    extract_answer,
    normalize,
    task_accuracy,
)
from llmkb.model.gpt import GPT, ModelConfig

SMALL = ModelConfig(vocab_size=64, context=32, d_model=32, n_layer=2, n_head=4, n_kv_head=2, d_ff=48)
EOT_ID = 63


def make(seed: int = 0) -> GPT:
    """A random GPT with large weights: unlike a fresh one (nearly uniform whatever it sees), its
    predictions depend strongly on the history, so a wrong window scheme changes the perplexity."""
    torch.manual_seed(seed)
    model = GPT(SMALL).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.3)
    return model


def stream(n: int = 200, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, SMALL.vocab_size, (n,), generator=torch.Generator().manual_seed(seed))


class CharTokenizer:
    """Just enough of a Hugging Face tokenizer: one id per character, ``<|endoftext|>`` = 63."""

    unk_token_id = 0

    def convert_tokens_to_ids(self, token: str) -> int:
        return EOT_ID if token == "<|endoftext|>" else self.unk_token_id

    def __call__(self, texts, add_special_tokens=False, verbose=False):
        return {"input_ids": [[1 + ord(c) % 60 for c in text] for text in texts]}


class Uniform(nn.Module):
    """A "model" with the same logit for every token: it knows nothing."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, idx):
        return torch.zeros(*idx.shape, self.vocab), None


@pytest.mark.parametrize("context,batch_size", [(16, 8), (16, 1), (32, 3), (7, 8)])
def test_perplexity_equals_token_by_token_reference(context, batch_size):
    model, ids = make(), stream(200)
    result = perplexity(model, ids, context, batch_size=batch_size)
    reference = loglik_reference(model, ids, context)
    assert result["tokens"] == len(ids) - 1
    expected = math.exp(-reference / (len(ids) - 1))
    assert result["perplexity"] == pytest.approx(expected, rel=1e-4)
    assert result["bits_per_token"] == pytest.approx(result["nll"] / math.log(2))
    # the check has teeth: the same tokens scored with longer histories give another number
    longer = math.exp(-loglik_reference(model, ids, context, stride=1) / (len(ids) - 1))
    assert abs(longer / expected - 1) > 0.01


@pytest.mark.parametrize("stride", [1, 5, 8])
def test_overlapping_windows_equal_the_reference(stride):
    model, ids = make(), stream(120)
    result = perplexity(model, ids, 16, stride=stride)
    assert result["tokens"] == len(ids) - 1 and result["stride"] == stride
    expected = math.exp(-loglik_reference(model, ids, 16, stride=stride) / (len(ids) - 1))
    assert result["perplexity"] == pytest.approx(expected, rel=1e-4)


def test_a_uniform_model_has_perplexity_equal_to_the_vocabulary():
    result = perplexity(Uniform(50), stream(100) % 50, context=16)
    assert result["perplexity"] == pytest.approx(50, rel=1e-6)
    assert result["bits_per_token"] == pytest.approx(math.log2(50), rel=1e-6)


@pytest.mark.parametrize(
    "n,context,stride",
    [(200, 16, None), (200, 16, 1), (200, 16, 5), (17, 16, 16), (18, 16, 4), (2, 16, 3), (101, 10, 10)],
)
def test_every_token_but_the_first_is_scored_exactly_once(n, context, stride):
    plan = windows(n, context, stride)
    scored = [t for _, end, first in plan for t in range(first, end + 1)]
    assert scored == list(range(1, n))  # once each, in order
    for begin, end, first in plan:
        assert 0 < end - begin <= context  # never more than the model's window
        assert begin < first  # a scored token always has at least one token of history
        if begin > 0:  # after the first window, at least context - stride tokens of history
            assert first - begin >= context - (stride or context)
    assert perplexity(Uniform(64), torch.arange(n) % 64, context, stride)["tokens"] == n - 1


def test_overlap_gives_each_scored_token_more_history_than_restarting():
    """A model that predicts the repeating pattern once it has seen it: restarting windows pay for
    re-learning it each time, a stride of 1 almost never does."""
    ids = torch.arange(120) % 6

    class Copier(nn.Module):  # predicts "the token 6 back", uniform until it has that much history
        def __init__(self):
            super().__init__()
            self.dummy = nn.Parameter(torch.zeros(1))

        def forward(self, idx):
            logits = torch.zeros(*idx.shape, 6)
            logits[:, 5:] = 20 * nn.functional.one_hot(idx[:, :-5], 6)
            return logits, None

    restart, slide = perplexity(Copier(), ids, 12)["nll"], perplexity(Copier(), ids, 12, stride=1)["nll"]
    assert slide < restart / 5


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="1-D"):
        perplexity(make(), stream(20).view(4, 5), 8)
    with pytest.raises(ValueError, match="stride"):
        windows(20, 8, stride=9)
    with pytest.raises(ValueError, match="at least 2 tokens"):
        windows(1, 8)


def test_model_mode_is_restored_and_numpy_ids_work():
    model = make().train()
    ids = stream(50)
    a = perplexity(model, ids.numpy().astype(np.uint16), 16)
    assert model.training
    assert a["perplexity"] == pytest.approx(perplexity(model, ids, 16)["perplexity"], rel=1e-6)


def test_documents_are_joined_like_the_shards_and_scored():
    tokenizer = CharTokenizer()
    ids = encode_documents(tokenizer, ["ab", "c"])
    assert ids.tolist() == [EOT_ID, 1 + ord("a") % 60, 1 + ord("b") % 60, EOT_ID, 1 + ord("c") % 60, EOT_ID]
    model = make()
    result = perplexity_of_texts(model, tokenizer, ["hello there", "general kenobi"], context=8)
    assert result["documents"] == 2 and result["tokens"] == len("hello there") + len("general kenobi") + 2
    assert result["perplexity"] == pytest.approx(
        perplexity(model, encode_documents(tokenizer, ["hello there", "general kenobi"]), 8)["perplexity"]
    )

    class NoEot(CharTokenizer):
        def convert_tokens_to_ids(self, token):
            return self.unk_token_id

    with pytest.raises(ValueError, match="endoftext"):
        encode_documents(NoEot(), ["x"])


# ----------------------------------------------------------------------------------------------
# tasks


def test_arithmetic_problems_are_deterministic_and_right():
    problems = arithmetic_problems(200, digits=2, seed=7, ops="+-*")
    assert problems == arithmetic_problems(200, digits=2, seed=7, ops="+-*")
    assert problems != arithmetic_problems(200, digits=2, seed=8, ops="+-*")
    seen_ops = set()
    for prompt, answer in problems:
        assert prompt.startswith("What is ") and prompt.endswith("?")
        a, op, b = prompt[len("What is ") : -1].split()
        assert len(a) == len(b) == 2  # two-digit operands
        seen_ops.add(op)
        expected = {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op]
        assert answer == str(expected) and expected >= 0
    assert seen_ops == {"+", "-", "*"}
    assert arithmetic_problems(3, digits=3, seed=0)[0][0].count(" ") == 4  # "What is abc + def?"
    with pytest.raises(ValueError, match="ops"):
        arithmetic_problems(3, ops="/")


@pytest.mark.parametrize(
    "text,answer",
    [
        ("82", "82"),
        ("The answer is 82.", "82"),
        ("37 + 45 = 82", "37"),  # the first number, even when it is not the answer: no guessing
        ("Answer: 82", "82"),
        ("Let me think. 30 + 40 = 70, 7 + 5 = 12. Answer: 82.\nNext question", "82."),
        ("Answer: x\nanswer:  Paris ", "Paris"),  # the last Answer: wins
        ("about -3 degrees", "-3"),
        ("1,234,567 people", "1234567"),
        ("pi is 3.14", "3.14"),
        ("no digits here", ""),
    ],
)
def test_extract_answer(text, answer):
    assert extract_answer(text) == answer


def test_exact_match_normalizes_only_what_does_not_change_the_answer():
    assert exact_match(["82.", " 82 ", "Paris", "The  Cat"], ["82", "82", "paris", "the cat"]) == 1.0
    assert exact_match(["8.2", "820", "82a", "-82"], ["82", "82", "82", "82"]) == 0.0
    assert normalize("2.50") == "2.50"  # a decimal point inside a number is kept
    with pytest.raises(ValueError, match="2 predictions for 1"):
        exact_match(["1", "2"], ["1"])
    with pytest.raises(ValueError, match="no answers"):
        exact_match([], [])


def test_task_accuracy_with_any_generation_function():
    problems = arithmetic_problems(10, seed=1)

    def half_right(prompts):
        outputs = []
        for i, prompt in enumerate(prompts):
            a, _, b = prompt[len("What is ") : -1].split()
            outputs.append(f"Answer: {int(a) + int(b) + (i % 2)}.")  # odd positions are off by one
        return outputs

    result = task_accuracy(half_right, problems, show=2)
    assert result["accuracy"] == 0.5 and result["correct"] == 5 and result["total"] == 10
    assert len(result["examples"]) == 2 and result["examples"][0]["extracted"] == problems[0][1] + "."
    with pytest.raises(ValueError, match="1 outputs for 10 prompts"):
        task_accuracy(lambda prompts: ["1"], problems)
