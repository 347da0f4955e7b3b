"""Beam search: the ``num_beams`` most likely continuations instead of one, Hugging Face's algorithm step for step.

In: a model (anything :func:`~llmkb.inference.backend.backend_for` adapts), left-padded ``input_ids``
``(B, T)`` and ``attention_mask``, a :class:`~llmkb.inference.generate.GenerationConfig` with
``num_beams > 1`` and the end-token ids. Out: :class:`Beams`, the finished hypotheses of every row,
best first, scored by ``sum(log p) / length ** length_penalty``.

It keeps as many candidates as HF, decides as HF when a hypothesis counts as finished, and applies the
same ``early_stopping`` rule, so it returns the same tokens as ``model.generate(num_beams=k,
do_sample=False, length_penalty=..., early_stopping=...)`` (the tests check it for ``True``, ``False``
and ``"never"``). :func:`~llmkb.inference.generate.generate` and
:func:`~llmkb.inference.generate.generate_ids` call it when ``num_beams > 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from llmkb.inference.backend import backend_for, prepare_inputs
from llmkb.inference.sampling import apply_repetition_penalty

if TYPE_CHECKING:  # for the annotation only: llmkb.inference.generate imports this module
    from llmkb.inference.generate import GenerationConfig

IMPOSSIBLE = -1.0e9  # HF's "this beam is out" score; added, not assigned, exactly as HF does


@dataclass
class Beams:
    sequences: torch.Tensor  # (B, num_beams, N): new tokens of each finished hypothesis, best first, padded
    scores: torch.Tensor  # (B, num_beams): sum of log-probabilities / length ** length_penalty
    lengths: torch.Tensor  # (B, num_beams): new tokens in each hypothesis (its end token included)


@torch.no_grad()
def beam_search(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    config: GenerationConfig,
    eos_ids: list[int],
    pad_id: int | None = None,
) -> Beams:
    """Keep the ``num_beams`` most likely partial sequences at every step; return the finished ones.

    Hugging Face's beam search (``transformers`` 5, ``_beam_search``) step by step:

    - every running beam proposes every token; the ``K = max(2, 1 + len(eos_ids)) * num_beams``
      candidates with the highest total log-probability are kept (enough that ``num_beams`` of
      them still run even if many end here);
    - a candidate that ends (an end token, or the length limit) becomes a finished hypothesis
      with score ``total_log_prob / new_length ** length_penalty``, if it is among the first
      ``num_beams`` candidates and beats the worst of the ``num_beams`` best hypotheses so far;
    - the best ``num_beams`` candidates that did not end run on; the cache is reordered to theirs;
    - ``early_stopping=True`` stops a row as soon as it has ``num_beams`` hypotheses; ``False``
      stops when the best running beam, scored at its current length, cannot beat the worst
      hypothesis; ``"never"`` assumes (for ``length_penalty > 0``) it could still grow to the
      longest length allowed, so it searches longest: the canonical beam search.

    The first step starts from one beam (the others score -1e9), or all beams would pick the same
    tokens. A repetition penalty applies to the log-probabilities, as in HF. Stop strings are not
    checked during the search (:func:`~llmkb.inference.generate.generate` cuts them from the text afterwards).
    """
    backend = backend_for(model)
    ids, mask, positions, lengths, unpadded = prepare_inputs(backend, input_ids, attention_mask)
    B, width = ids.shape
    k = config.num_beams
    pad_id = eos_ids[0] if pad_id is None else pad_id
    steps = config.max_new_tokens  # one limit for all rows, as HF's max_length (prompt width + new tokens)
    if backend.context is not None:
        steps = min(steps, backend.context - width)
    if steps < 1:
        raise ValueError(
            f"the padded prompts have {width} tokens: no room left in the model's context of {backend.context}"
        )
    device = ids.device
    eos = torch.tensor(eos_ids, dtype=torch.long, device=device)
    keep = max(2, 1 + len(eos_ids)) * k
    top_k_mask = torch.arange(keep, device=device) < k  # only the best k candidates may finish
    L = width + steps

    # Every row becomes k beams: (B * k, ...) for the model, (B, k, ...) for the bookkeeping.
    mask, positions = mask.repeat_interleave(k, 0), positions.repeat_interleave(k, 0)
    prompt_pad = mask == 0  # (B * k, width)
    running = torch.full((B, k, L), pad_id, dtype=torch.long, device=device)
    running[:, :, :width] = ids.repeat_interleave(k, 0).view(B, k, width)
    running_scores = torch.zeros(B, k, device=device)
    running_scores[:, 1:] = IMPOSSIBLE  # start from one beam
    done_seqs = running.clone()  # the finished hypotheses
    done_scores = torch.full((B, k), IMPOSSIBLE, device=device)
    done_lengths = torch.zeros(B, k, dtype=torch.long, device=device)
    is_done = torch.zeros(B, k, dtype=torch.bool, device=device)
    improvable = torch.ones(B, 1, dtype=torch.bool, device=device)  # can a running beam still beat the hypotheses?
    batch_offset = torch.arange(B, device=device)[:, None] * k

    flat = running[:, :, :width].reshape(B * k, width)
    cache = backend.start(B * k, L) if config.use_cache else None
    logits = backend.step(flat, cache, None if unpadded else mask, positions)[:, -1]  # (B * k, V)
    cur = width
    while True:
        log_probs = logits.float().log_softmax(dim=-1)  # (B * k, V)
        if config.repetition_penalty != 1.0:
            seen = running[:, :, :cur].reshape(B * k, cur).clone()
            seen[:, :width][prompt_pad] = -1
            log_probs = apply_repetition_penalty(log_probs, seen, config.repetition_penalty)
        V = log_probs.shape[-1]
        totals = (log_probs.view(B, k, V) + running_scores[:, :, None]).view(B, k * V)

        # The K best continuations over all beams of a row: which beam, which token.
        top_scores, top_index = torch.topk(totals, keep)  # (B, K)
        from_beam = top_index // V
        candidates = running.gather(1, from_beam[:, :, None].expand(B, keep, L))  # (B, K, L)
        candidates[:, :, cur] = top_index % V
        ends = torch.isin(top_index % V, eos) | (cur + 1 >= L)  # (B, K)

        # The best k that did not end run on.
        live_scores = top_scores + ends.float() * IMPOSSIBLE
        best = torch.topk(live_scores, k).indices  # (B, k)
        running = candidates.gather(1, best[:, :, None].expand(B, k, L))
        running_scores = live_scores.gather(1, best)
        parents = from_beam.gather(1, best)  # (B, k): the beam each survivor extends

        # Hypotheses that ended here join the finished ones if they are among the best k so far.
        new_length = cur + 1 - width
        scores = top_scores / (new_length**config.length_penalty)
        full = is_done.all(dim=-1, keepdim=True) & (config.early_stopping is True)
        scores = scores + full.float() * IMPOSSIBLE
        scores = scores + (~improvable).float() * IMPOSSIBLE
        just_ended = ends & top_k_mask[None, :]
        scores = scores + (~just_ended) * IMPOSSIBLE
        merged_scores = torch.cat([done_scores, scores], dim=1)  # (B, k + K)
        chosen = torch.topk(merged_scores, k).indices  # (B, k)
        done_seqs = torch.cat([done_seqs, candidates], dim=1).gather(1, chosen[:, :, None].expand(B, k, L))
        done_scores = merged_scores.gather(1, chosen)
        lengths_now = torch.full_like(top_scores, new_length, dtype=torch.long)
        done_lengths = torch.cat([done_lengths, lengths_now], dim=1).gather(1, chosen)
        is_done = torch.cat([is_done, just_ended], dim=1).gather(1, chosen)

        cur += 1
        # Could the best running beam still beat the worst hypothesis? (HF's early-stop heuristic)
        if config.early_stopping == "never" and config.length_penalty > 0:
            best_length = L - width
        else:
            best_length = cur - width
        best_possible = running_scores[:, :1] / (best_length**config.length_penalty)
        worst_done = torch.where(is_done, done_scores.min(dim=1, keepdim=True).values, IMPOSSIBLE)
        improvable = improvable & (best_possible > worst_done).any(dim=-1, keepdim=True)
        all_full = bool(is_done.all()) and config.early_stopping is True
        if not bool(improvable.any()) or all_full or bool(ends.all()):
            break

        # Next step: each surviving beam's cache is its parent's; feed its new token.
        rows = (parents + batch_offset).flatten()
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        positions = torch.cat([positions, positions[:, -1:] + 1], dim=1)
        flat = running[:, :, :cur].reshape(B * k, cur)
        if cache is not None:
            cache = backend.reorder(cache, rows)
            logits = backend.step(flat[:, -1:], cache, None if unpadded else mask, positions[:, -1:])[:, -1]
        else:
            logits = backend.step(flat, None, None if unpadded else mask, positions)[:, -1]

    n = int(done_lengths.max())
    return Beams(done_seqs[:, :, width : width + n], done_scores, done_lengths)
