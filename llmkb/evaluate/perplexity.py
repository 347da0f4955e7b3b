"""Perplexity: how surprised a language model is by text it did not train on.

In: a model (``model(ids) -> (logits, ...)``, such as :class:`~llmkb.model.gpt.GPT`) and a token
stream (1-D ids) or a list of documents plus their tokenizer. Out: a dict with the number of
scored tokens, the mean negative log-likelihood in nats per token (``nll``, the same number as the
training loss), ``perplexity = exp(nll)`` and ``bits_per_token = nll / ln 2``.

Perplexity reads as "the model is as unsure as if it picked uniformly among this many tokens":
a model that spreads its probability evenly over a vocabulary of ``V`` tokens has perplexity
exactly ``V``, a perfect model has 1.

A model sees at most ``context`` tokens, so a long stream is cut into windows. Every token except
the first (it has nothing before it to be predicted from) is scored exactly once:

- ``stride == context`` (the default): windows do not overlap. Each window restarts from an empty
  history, so the first tokens of every window are predicted from little context and score worse
  than they would in a longer document. Fast: one forward pass per ``context`` tokens.
- ``stride < context``: each window starts ``stride`` tokens after the previous one and scores only
  the tokens the previous windows have not scored (the last ``stride`` of them), so every scored
  token has at least ``context - stride`` tokens of history. Lower (more realistic) perplexity,
  ``context / stride`` times the work. This is the scheme of Hugging Face's perplexity guide.

:func:`loglik_reference` computes the same sum the slow, obvious way, one forward pass per token;
the tests check that :func:`perplexity` agrees with it.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from llmkb.device import device_of
from llmkb.pretrain.shards import EOT


def as_ids(token_ids) -> torch.Tensor:
    """A 1-D int64 tensor of ``token_ids`` (a tensor, a numpy array or memmap, or a list).

    >>> as_ids(np.array([3, 1, 2], dtype=np.uint16)).dtype
    torch.int64
    """
    if isinstance(token_ids, torch.Tensor):
        ids = token_ids.detach().to(torch.long).cpu()
    else:  # uint16 memmaps from the shards convert through numpy; torch has no uint16 arithmetic
        ids = torch.from_numpy(np.asarray(token_ids, dtype=np.int64))
    if ids.dim() != 1:
        raise ValueError(f"token_ids must be 1-D (one stream of ids), got shape {tuple(ids.shape)}")
    return ids


def windows(n_tokens: int, context: int, stride: int | None = None) -> list[tuple[int, int, int]]:
    """The windows that score tokens ``1 .. n_tokens - 1`` of a stream, each exactly once.

    A window ``(begin, end, first)`` feeds ids ``[begin, end)`` to the model (at most ``context`` of
    them); position ``p`` predicts token ``begin + p + 1``, so the window predicts tokens
    ``begin + 1 .. end``, and it scores those from ``first`` on (the earlier ones were scored by a
    previous window, with more history).

    Examples:
        >>> windows(10, 4)  # non-overlapping: tokens 1-4, 5-8, 9
        [(0, 4, 1), (4, 8, 5), (8, 9, 9)]
        >>> windows(10, 4, stride=2)  # every window after the first scores its last 2 tokens
        [(0, 4, 1), (2, 6, 5), (4, 8, 7), (6, 9, 9)]
    """
    stride = stride or context
    if context < 1 or not 1 <= stride <= context:
        raise ValueError(f"need context >= 1 and 1 <= stride <= context (got context {context}, stride {stride})")
    if n_tokens < 2:
        raise ValueError(f"need at least 2 tokens to predict one (got {n_tokens})")
    last = n_tokens - 1  # index of the last token; tokens 1..last get predicted
    out, scored, begin = [], 0, 0
    while scored < last:
        end = min(begin + context, last)
        out.append((begin, end, scored + 1))
        scored, begin = end, begin + stride
    return out


def summarize(nll_sum: float, tokens: int) -> dict:
    """The summed negative log-likelihood (nats) of ``tokens`` tokens as the usual numbers.

    >>> r = summarize(10 * math.log(4), 10)  # as unsure as a fair pick among 4
    >>> round(r["perplexity"], 6), round(r["bits_per_token"], 6)
    (4.0, 2.0)
    """
    nll = nll_sum / tokens
    return {"tokens": tokens, "nll": nll, "perplexity": math.exp(nll), "bits_per_token": nll / math.log(2)}


@torch.no_grad()
def perplexity(model: nn.Module, token_ids, context: int, stride: int | None = None, batch_size: int = 8) -> dict:
    """Perplexity of ``model`` on one stream of ``token_ids``, scored in :func:`windows` of ``context``.

    Returns :func:`summarize`'s dict (``tokens``, ``nll``, ``perplexity``, ``bits_per_token``) plus
    ``context``, ``stride`` and ``windows``. Windows run ``batch_size`` at a time on the model's
    device; a shorter last window is padded on the right, which a causal model cannot see (no
    position attends to a later one) and whose targets are ignored.
    """
    ids = as_ids(token_ids)
    plan = windows(len(ids), context, stride)
    device = device_of(model)
    was_training = model.training
    model.eval()
    nll_sum, scored = 0.0, 0
    try:
        for start in range(0, len(plan), batch_size):
            chunk = plan[start : start + batch_size]
            width = max(end - begin for begin, end, _ in chunk)
            inputs = torch.zeros(len(chunk), width, dtype=torch.long)  # (B, T); 0 pads, never scored
            targets = torch.full((len(chunk), width), -100, dtype=torch.long)  # (B, T); -100 = not scored
            for row, (begin, end, first) in enumerate(chunk):
                inputs[row, : end - begin] = ids[begin:end]
                targets[row, : end - begin] = ids[begin + 1 : end + 1]
                targets[row, : first - begin - 1] = -100  # tokens an earlier window already scored
            logits = model(inputs.to(device))[0]  # (B, T, vocab)
            targets = targets.to(device)
            nll_sum += float(
                F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=-100, reduction="sum")
            )
            scored += int((targets != -100).sum())
    finally:
        model.train(was_training)
    assert scored == len(ids) - 1, (scored, len(ids))  # every token but the first, once
    return {**summarize(nll_sum, scored), "context": context, "stride": stride or context, "windows": len(plan)}


def encode_documents(tokenizer, texts: list[str]) -> np.ndarray:
    """``<|endoftext|> doc1 <|endoftext|> doc2 ... <|endoftext|>`` as int64 ids.

    Documents end with ``<|endoftext|>`` as in the training shards; one more at the very start means
    the first token of *every* document is predicted, as in training, from "a new document begins".
    """
    eot = tokenizer.convert_tokens_to_ids(EOT)
    if eot is None or eot == tokenizer.unk_token_id:
        raise ValueError(f"the tokenizer has no {EOT} token to separate documents with")
    if not texts:
        raise ValueError("no documents to score")
    stream = [eot]
    for ids in tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]:
        stream += [*ids, eot]
    return np.asarray(stream, dtype=np.int64)


def perplexity_of_texts(
    model: nn.Module, tokenizer, texts: list[str], context: int, stride: int | None = None, batch_size: int = 8
) -> dict:
    """:func:`perplexity` of the documents ``texts``, joined by :func:`encode_documents`; adds ``documents``."""
    stream = encode_documents(tokenizer, texts)
    return {**perplexity(model, stream, context, stride, batch_size), "documents": len(texts)}


@torch.no_grad()
def loglik_reference(model: nn.Module, token_ids, context: int, stride: int | None = None) -> float:
    """The summed log-likelihood (nats, <= 0) of tokens ``1 ..`` of ``token_ids``, one forward pass per token.

    Deliberately slow and simple, and independent of :func:`windows`: for each token ``j``, run the
    model on the tokens before it that are in the same window, take the log-softmax of the last
    position and read off token ``j``'s entry. ``exp(-result / (len - 1))`` is the perplexity that
    :func:`perplexity` must report for the same ``context`` and ``stride``.
    """
    ids = as_ids(token_ids)
    stride = stride or context
    device = device_of(model)
    was_training = model.training
    model.eval()
    total = 0.0
    try:
        for j in range(1, len(ids)):
            # Which history does token j get? The window that scores it, worked out directly:
            # window 0 scores tokens 1..context and window k >= 1 (beginning at k * stride) scores
            # tokens ((k-1) * stride + context, k * stride + context], so j belongs to
            # k = ceil((j - context) / stride), or to window 0 when j <= context. With
            # stride == context this is begin = ((j - 1) // context) * context: non-overlapping
            # windows restart, and a token only sees its own window's earlier tokens. A reference
            # with a longer history would compute a different (lower) number, not check ours.
            k = max(0, -(-(j - context) // stride))
            history = ids[k * stride : j]  # (at most context,)
            logits = model(history[None].to(device))[0][0, -1]  # (vocab,): the prediction for token j
            total += float(logits.float().log_softmax(-1)[ids[j]])
    finally:
        model.train(was_training)
    return total
