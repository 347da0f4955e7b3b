"""From next-token logits to one token: the knobs every chat app exposes, as small pure functions.

In: logits ``(B, V)`` for the next position (and, for the repetition penalty, the ids so far).
Out: modified logits ``(B, V)``, or the chosen token ids ``(B,)`` from :func:`next_token`.

The order is Hugging Face's (``transformers.generation``), and each function computes exactly what
its HF counterpart does, so that our sampling with a seed equals ``model.generate(do_sample=True)``
with the same seed (the tests check it):

1. :func:`apply_repetition_penalty` (``RepetitionPenaltyLogitsProcessor``): a token that already
   occurs in the sequence has its logit divided by the penalty if positive, multiplied if negative:
   either way it becomes less likely, once, however often it occurred.
2. :func:`apply_temperature` (``TemperatureLogitsWarper``): ``logits / T``. Below 1 the distribution
   sharpens towards the argmax, above 1 it flattens towards uniform.
3. :func:`top_k_filter` (``TopKLogitsWarper``): only the ``k`` largest logits survive (ties with
   the ``k``-th survive too); the others become ``-inf``, probability 0.
4. :func:`top_p_filter` (``TopPLogitsWarper``, "nucleus"): only the smallest set of most likely
   tokens whose probabilities add up to at least ``p`` survives; always at least one token.
5. softmax and one draw (``torch.multinomial``), or, for greedy decoding, the argmax.

Greedy decoding (``temperature == 0`` or ``do_sample=False``) applies only step 1, as HF does.
"""

from __future__ import annotations

import torch

NEG_INF = float("-inf")  # a filtered token's logit: softmax turns it into probability exactly 0


# ----------------------------------------------------------------------------------------------
# checks (one message per mistake, shared with GenerationConfig.validate)


def check_temperature(temperature: float) -> None:
    if not temperature >= 0:  # also catches NaN
        raise ValueError(f"temperature must be >= 0 (0 means greedy), got {temperature}")


def check_top_k(top_k: int) -> None:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise ValueError(f"top_k must be an integer >= 0 (0 turns it off), got {top_k!r}")


def check_top_p(top_p: float) -> None:
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] (1 turns it off; 0 would keep no token), got {top_p}")


def check_repetition_penalty(penalty: float) -> None:
    if not penalty > 0:
        raise ValueError(f"repetition_penalty must be > 0 (1 turns it off, > 1 discourages repeats), got {penalty}")


# ----------------------------------------------------------------------------------------------
# logits -> logits


def apply_repetition_penalty(logits: torch.Tensor, ids: torch.Tensor, penalty: float) -> torch.Tensor:
    """Make every token already in ``ids`` ``(B, T)`` less likely: positive logits / penalty, negative * penalty.

    An id of -1 stands for "no token" (left padding) and is ignored. Dividing a negative logit
    would *raise* it, hence the two cases; each token is penalized once, however often it occurs.

    Examples:
        >>> logits = torch.tensor([[2.0, -1.0, 0.5, 3.0]])
        >>> apply_repetition_penalty(logits, torch.tensor([[0, 1, 1, -1]]), 2.0).tolist()
        [[1.0, -2.0, 0.5, 3.0]]
    """
    check_repetition_penalty(penalty)
    if penalty == 1.0:
        return logits
    V = logits.shape[-1]
    # Padding (-1) and any id past the vocabulary point at an extra column V, dropped at the end.
    ids = torch.where(ids < 0, V, ids).clamp(max=V)
    padded = torch.nn.functional.pad(logits, (0, 1))  # (B, V + 1)
    seen = padded.gather(1, ids)  # (B, T): the logit of every token in the sequence
    seen = torch.where(seen < 0, seen * penalty, seen / penalty)
    return padded.scatter(1, ids, seen)[:, :V]


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``logits / temperature`` (temperature > 0; 0 means greedy and is handled by :func:`next_token`).

    Examples:
        >>> apply_temperature(torch.tensor([[1.0, 2.0]]), 0.5).tolist()
        [[2.0, 4.0]]
    """
    check_temperature(temperature)
    if temperature == 0:
        raise ValueError("temperature 0 means greedy decoding (argmax); there is nothing to divide by")
    return logits / temperature


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits of each row (and any tied with the ``k``-th); ``-inf`` elsewhere. ``k=0``: all.

    Examples:
        >>> top_k_filter(torch.tensor([[1.0, 3.0, 2.0, 0.0]]), 2).tolist()
        [[-inf, 3.0, 2.0, -inf]]
    """
    check_top_k(k)
    if k == 0:
        return logits
    kth = torch.topk(logits, min(k, logits.shape[-1])).values[..., -1, None]  # (B, 1): the k-th largest
    return logits.masked_fill(logits < kth, NEG_INF)


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering: keep the most likely tokens until their probabilities add up to ``p``.

    Computed from the unlikely end, as HF does: sort ascending, and drop every token whose
    cumulative probability (itself and all less likely tokens) is at most ``1 - p``. What remains
    is the smallest set of most likely tokens with total probability >= ``p``; the most likely
    token always stays, so no row is ever empty. ``p=1``: everything stays.

    Examples:
        >>> logits = torch.tensor([[0.5, 0.3, 0.2]]).log()  # probabilities 0.5, 0.3, 0.2
        >>> top_p_filter(logits, 0.5).isfinite().tolist(), top_p_filter(logits, 0.6).isfinite().tolist()
        ([[True, False, False]], [[True, True, False]])
    """
    check_top_p(p)
    if p == 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=False)  # (B, V), least likely first
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    drop_sorted = cumulative <= (1 - p)
    drop_sorted[..., -1:] = False  # the most likely token always stays
    drop = drop_sorted.scatter(1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, NEG_INF)


# ----------------------------------------------------------------------------------------------
# logits -> token


def next_token(
    logits: torch.Tensor, config, generator: torch.Generator | None = None, ids: torch.Tensor | None = None
) -> torch.Tensor:
    """The next token ``(B,)`` for next-position ``logits`` ``(B, V)`` under ``config``.

    ``config`` is a :class:`~llmkb.inference.generate.GenerationConfig` (or anything with its
    ``temperature, top_k, top_p, repetition_penalty, do_sample`` fields). ``ids`` ``(B, T)``, the
    sequence so far (-1 for padding), is needed only for a repetition penalty. Greedy (argmax)
    when ``temperature == 0`` or ``do_sample`` is False; otherwise one draw from the filtered
    softmax, from ``generator`` (or torch's global generator when None).

    Examples:
        >>> from types import SimpleNamespace
        >>> greedy = SimpleNamespace(temperature=0.0, top_k=0, top_p=1.0, repetition_penalty=1.0, do_sample=True)
        >>> next_token(torch.tensor([[0.1, 2.0, -1.0]]), greedy).tolist()
        [1]
        >>> only_one = SimpleNamespace(temperature=1.0, top_k=1, top_p=1.0, repetition_penalty=1.0, do_sample=True)
        >>> next_token(torch.tensor([[0.1, 2.0, -1.0]]), only_one, torch.Generator().manual_seed(0)).tolist()
        [1]
    """
    logits = logits.float()
    if config.repetition_penalty != 1.0:
        if ids is None:
            raise ValueError("a repetition penalty needs the ids generated so far (ids=...)")
        logits = apply_repetition_penalty(logits, ids, config.repetition_penalty)
    check_temperature(config.temperature)
    if config.temperature == 0 or not getattr(config, "do_sample", True):
        return logits.argmax(dim=-1)
    if config.temperature != 1.0:  # HF skips the division at 1.0; x / 1.0 == x anyway
        logits = apply_temperature(logits, config.temperature)
    logits = top_k_filter(logits, config.top_k)
    logits = top_p_filter(logits, config.top_p)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(1)  # (B,)
