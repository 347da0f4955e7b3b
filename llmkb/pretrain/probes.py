"""Experiments on a base model: what pretraining alone produces.

In: a trained :class:`~llmkb.model.gpt.GPT`, its tokenizer and (for the planted cases) the
mini-web's manifest. Out: plain numbers and strings for the base-model page:

- :func:`next_token_table`: the distribution over the next token, its top entries;
- :func:`sample`: continuations, different every time unless the seed is fixed;
- :func:`regurgitation`: how many tokens of a passage the model recites exactly from its start, and
  :func:`recital_rate`: how often that happens for random windows of some texts;
- :func:`few_shot_accuracy`: zero-shot vs few-shot prompting, scored by whether the generated
  answer starts with the fact (and how often it copies an example's answer instead), or
  (:func:`few_shot_choice`) by which of a list of candidate answers the model finds most likely,
  as benchmarks score base models;
- :func:`induction_score`: the standard test for "induction heads", the copying circuit behind
  in-context learning: can the model predict a random token sequence the second time it sees it?
  :func:`head_scores`: which heads look like its two halves (previous-token and induction heads).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from llmkb.device import device_of
from llmkb.model.gpt import GPT
from llmkb.tokenizer.bpe import SPECIAL_TOKENS
from llmkb.tokenizer.ids import encode


@torch.no_grad()
def next_token_table(model: GPT, tokenizer, prompt: str, k: int = 8) -> list[tuple[str, float]]:
    """The ``k`` most likely next tokens after ``prompt`` with their probabilities."""
    model.eval()
    logits, _ = model(encode(tokenizer, prompt).to(device_of(model))[:, -model.config.context :])
    probs = logits[0, -1].float().softmax(-1)
    top = torch.topk(probs, k)
    return [(tokenizer.decode([int(i)]), float(p)) for p, i in zip(top.values, top.indices)]


@torch.no_grad()
def sample(
    model: GPT,
    tokenizer,
    prompt: str,
    max_new_tokens: int = 40,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int | None = None,
    stop_at_eot: bool = True,
) -> str:
    """One continuation of ``prompt`` (the new text only). ``temperature=0`` is greedy."""
    model.eval()
    generator = torch.Generator(device=device_of(model)).manual_seed(seed) if seed is not None else None
    ids = encode(tokenizer, prompt).to(device_of(model))
    stop = tokenizer.convert_tokens_to_ids("<|endoftext|>") if stop_at_eot else None
    out = model.generate(ids, max_new_tokens, temperature, top_k, generator, stop_id=stop)[0, ids.shape[1] :].tolist()
    if stop is not None and stop in out:
        out = out[: out.index(stop)]
    return tokenizer.decode(out)


@dataclass
class Recital:
    prefix: str  # what the model was given
    expected: str  # how the passage really goes on
    produced: str  # what the model said (greedy)
    matched_tokens: int  # tokens equal to the passage's, counted from the start, up to the first mistake
    total_tokens: int


@torch.no_grad()
def regurgitation(model: GPT, tokenizer, passage: str, prefix_tokens: int = 12, continue_tokens: int = 40) -> Recital:
    """Give the model the first ``prefix_tokens`` tokens of ``passage``; count how many of the next
    ``continue_tokens`` it reproduces exactly with greedy decoding before its first mistake."""
    model.eval()
    ids = encode(tokenizer, passage)[0]
    if len(ids) < prefix_tokens + continue_tokens:
        raise ValueError(f"the passage has {len(ids)} tokens; need at least {prefix_tokens + continue_tokens}")
    prefix, target = ids[:prefix_tokens], ids[prefix_tokens : prefix_tokens + continue_tokens]
    out = model.generate(prefix[None].to(device_of(model)), continue_tokens, temperature=0)[0, prefix_tokens:].cpu()
    wrong = (out != target).nonzero()
    matched = int(wrong[0]) if len(wrong) else continue_tokens
    return Recital(
        tokenizer.decode(prefix.tolist()),
        tokenizer.decode(target.tolist()),
        tokenizer.decode(out.tolist()),
        matched,
        continue_tokens,
    )


def recital_rate(
    model: GPT,
    tokenizer,
    texts: list[str],
    windows: int = 30,
    prefix_tokens: int = 12,
    continue_tokens: int = 40,
    seed: int = 0,
    threshold: float = 0.9,
) -> float:
    """Share of random windows of ``texts`` whose next ``continue_tokens`` tokens the model recites
    (at least ``threshold`` of them matched before the first mistake) from a ``prefix_tokens`` start."""
    import random

    rng = random.Random(seed)
    long_enough = [
        ids
        for ids in (tokenizer(t, add_special_tokens=False, verbose=False)["input_ids"] for t in texts)
        if len(ids) >= prefix_tokens + continue_tokens
    ]
    if not long_enough:
        raise ValueError(f"no text has the {prefix_tokens + continue_tokens} tokens one window needs")
    recited = 0
    for _ in range(windows):
        ids = rng.choice(long_enough)
        start = rng.randrange(len(ids) - prefix_tokens - continue_tokens + 1)
        window = tokenizer.decode(ids[start : start + prefix_tokens + continue_tokens])
        result = regurgitation(model, tokenizer, window, prefix_tokens, continue_tokens)
        recited += result.matched_tokens >= threshold * continue_tokens
    return recited / windows


@dataclass
class FewShotResult:
    shots: int
    accuracy: float  # share of answers that start with the expected fact
    copied: float  # share of answers that are wrong and start with one of the prompt's own example answers
    examples: list[tuple[str, str, str]]  # (prompt, expected, answer) for the first few queries


@torch.no_grad()
def few_shot_accuracy(
    model: GPT,
    tokenizer,
    demonstrations: list[tuple[str, str]],
    queries: list[tuple[str, str]],
    shots: int,
    sep: str = " ",
    max_new_tokens: int = 8,
    show: int = 3,
) -> FewShotResult:
    """How often the greedy answer starts with the expected fact when ``shots`` solved examples precede each query.

    A prompt is ``"{q1}{sep}{a1}\\n...{query}"`` (:func:`few_shot_prompt`, examples drawn per query
    by :func:`examples_for`). The answer is the generated text up to the first newline, stripped,
    and it is right when it *starts* with the fact (:func:`starts_with`): a base model rarely stops
    where the examples stop, it goes on with the sentence it learned. ``copied`` counts the wrong
    answers that begin with one of the prompt's example answers instead: copying from the context,
    the other side of in-context learning.
    """
    hits = copied = 0
    examples = []
    for n, (query, expected) in enumerate(queries):
        shown = examples_for(demonstrations, query, shots)
        prompt = few_shot_prompt(shown, query, sep)
        answer = sample(model, tokenizer, prompt, max_new_tokens, temperature=0).split("\n")[0].strip()
        right = starts_with(answer, expected)
        hits += right
        copied += not right and any(starts_with(answer, a) for _, a in shown)
        if n < show:
            examples.append((prompt, expected, answer))
    return FewShotResult(shots, hits / max(1, len(queries)), copied / max(1, len(queries)), examples)


def examples_for(demonstrations: list[tuple[str, str]], query: str, shots: int) -> list[tuple[str, str]]:
    """``shots`` solved examples for ``query``, never the query itself, drawn at random but seeded by the query.

    Drawing them per query keeps one odd example from deciding a whole score; seeding by the
    query makes every prompt the same on every run.

    Examples:
        >>> demos = [(f"{n}+{n}=", str(2 * n)) for n in range(1, 6)]
        >>> shown = examples_for(demos, "2+2=", 3)
        >>> len(shown), ("2+2=", "4") in shown, shown == examples_for(demos, "2+2=", 3)
        (3, False, True)
    """
    pool = [d for d in demonstrations if d[0] != query]
    return random.Random(query).sample(pool, min(shots, len(pool)))


def few_shot_prompt(shown: list[tuple[str, str]], query: str, sep: str = " ") -> str:
    """The solved examples ``shown``, one per line (question, ``sep``, answer), then the query.

    Examples:
        >>> few_shot_prompt([("2+2=", "4"), ("3+3=", "6")], "1+1=")
        '2+2= 4\\n3+3= 6\\n1+1='
        >>> few_shot_prompt([("Ka Lo (", "1801")], "Zu Ba (", sep="")
        'Ka Lo (1801\\nZu Ba ('
    """
    return "".join(f"{q}{sep}{a}\n" for q, a in shown) + query


def starts_with(answer: str, expected: str) -> bool:
    """Whether ``answer`` begins with ``expected`` as whole words (``"1801, in Vemora"`` starts with ``"1801"``).

    >>> starts_with("1801, in Vemora", "1801"), starts_with("18012", "1801"), starts_with("weaver", "weaver")
    (True, False, True)
    """
    return answer.startswith(expected) and not answer[len(expected) : len(expected) + 1].isalnum()


@torch.no_grad()
def answer_logprob(model: GPT, tokenizer, prompt: str, answer: str) -> float:
    """Mean log-probability per token of ``answer`` (with its leading separator) right after ``prompt``."""
    model.eval()
    prompt_ids = tokenizer(prompt, add_special_tokens=False, verbose=False)["input_ids"]
    answer_ids = tokenizer(answer, add_special_tokens=False, verbose=False)["input_ids"]
    ids = torch.tensor([prompt_ids + answer_ids])[:, -model.config.context :].to(device_of(model))
    logits, _ = model(ids)
    logp = logits[0, :-1].float().log_softmax(-1)  # position t predicts token t + 1
    n = len(answer_ids)
    return float(logp[-n:].gather(1, ids[0, -n:, None]).mean())


@torch.no_grad()
def few_shot_choice(
    model: GPT,
    tokenizer,
    demonstrations: list[tuple[str, str]],
    queries: list[tuple[str, str]],
    options: list[str],
    shots: int,
    sep: str = " ",
) -> float:
    """Accuracy when the model's answer is the option it finds most likely after the prompt."""
    hits = 0
    for query, expected in queries:
        prompt = few_shot_prompt(examples_for(demonstrations, query, shots), query, sep)
        scores = {option: answer_logprob(model, tokenizer, prompt, sep + option) for option in options}
        hits += max(scores, key=scores.get) == expected
    return hits / max(1, len(queries))


@dataclass
class Induction:
    """How well a model predicts random token sequences shown twice in a row (per-token means)."""

    first_accuracy: float  # next-token accuracy on the first copy: chance, by construction
    second_accuracy: float  # on the second copy: high once induction heads copy from the first
    first_loss: float
    second_loss: float


def merged_tokens(vocab_size: int) -> tuple[int, int]:
    """The ids of the learned merges, ``[low, high)``: llmkb's BPE puts the 256 byte tokens first and
    its special tokens last, and neither belongs in a sequence of "ordinary" random tokens.

    >>> merged_tokens(4096)
    (256, 4093)
    """
    return 256, vocab_size - len(SPECIAL_TOKENS)


@torch.no_grad()
def induction_score(
    model: GPT,
    vocab_low: int | None = None,
    vocab_high: int | None = None,
    length: int = 30,
    trials: int = 50,
    seed: int = 0,
) -> Induction:
    """``trials`` random sequences of ``length`` tokens from ``[vocab_low, vocab_high)``, each shown twice.

    The range defaults to the model's learned merges (:func:`merged_tokens`); the pretraining loop
    runs this default at every evaluation, so the same call on the saved model gives its last row.

    The first copy is unpredictable by construction. A model with induction heads ("the last time
    this token appeared, that token followed it") predicts most of the second copy; a model
    without them does no better than the first time. The first token of each copy is not scored
    (nothing before it says what it will be). Same ``seed``, same sequences.
    """
    low, high = merged_tokens(model.config.vocab_size)
    vocab_low, vocab_high = low if vocab_low is None else vocab_low, high if vocab_high is None else vocab_high
    length = min(length, model.config.context // 2)
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    sequences = torch.randint(vocab_low, vocab_high, (trials, length), generator=generator)
    ids = torch.cat([sequences, sequences], dim=1).to(device_of(model))  # (trials, 2 * length)
    logits = model(ids)[0][:, :-1].float()  # position t predicts token t + 1
    target = ids[:, 1:]
    losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, reduction="none")
    right = (logits.argmax(-1) == target).float()
    first, second = slice(0, length - 1), slice(length, 2 * length - 1)  # targets 1..L-1 and L+1..2L-1
    model.train(was_training)
    return Induction(
        first_accuracy=right[:, first].mean().item(),
        second_accuracy=right[:, second].mean().item(),
        first_loss=losses[:, first].mean().item(),
        second_loss=losses[:, second].mean().item(),
    )


@torch.no_grad()
def head_scores(model: GPT, sequence: torch.Tensor) -> dict[str, torch.Tensor]:
    """How much each head behaves like the two halves of an induction circuit, on ``sequence`` shown twice.

    ``sequence``: ``(L,)`` token ids. Returns ``(n_layer, n_head)`` tensors, each a mean attention weight:

    - ``previous_token``: how much a position attends to the one right before it (a previous-token
      head writes "the token before me was A" into each position);
    - ``induction``: how much a position in the second copy attends to the position *after* its own
      token's occurrence in the first copy, the token to copy (an induction head reads there);

    and ``maps``, the weights themselves, ``(n_layer, n_head, 2L, 2L)``, for plots.
    """
    length = sequence.shape[0]
    ids = torch.cat([sequence, sequence])[None].to(device_of(model))
    maps = torch.stack([layer[0] for layer in model.attention_maps(ids)])  # (n_layer, n_head, 2L, 2L)
    rows = torch.arange(1, 2 * length)
    previous = maps[:, :, rows, rows - 1].mean(-1)
    second = torch.arange(length, 2 * length)  # position t of the second copy holds the token of t - L
    induction = maps[:, :, second, second - length + 1].mean(-1)
    return {"previous_token": previous, "induction": induction, "maps": maps}
