"""Speculative decoding: a small draft model guesses, the big target model checks several guesses at once.

In: a *target* model (the one whose text we want), a *draft* model (much smaller, same tokenizer),
one prompt as token ids ``(1, T)``. Out: the new token ids, **identical** to greedy decoding with
the target alone (:func:`~llmkb.inference.generate.generate_ids`), and counts of how the guessing
went. Both models run through the :class:`~llmkb.inference.backend.Backend` adapter, so each may
be our :class:`~llmkb.model.gpt.GPT` or a Hugging Face causal LM.

The algorithm (Leviathan et al. 2023; Chen et al. 2023), greedy version:

1. The draft proposes ``k`` tokens, one by one, as cheap greedy steps with its own KV cache.
2. The target scores the last accepted token and all ``k`` proposals in ONE forward pass: its
   logits at position ``i`` are what it would have chosen after proposal ``i - 1``.
3. Keep the longest prefix of proposals on which the target's greedy choice agrees, then add the
   target's own token at the first disagreement (or after the last proposal if all agreed): every
   round yields between 1 and ``k + 1`` tokens for one target pass.
4. Roll both KV caches back to the accepted length (:meth:`~llmkb.model.gpt.KVCache.crop`, or
   transformers' ``DynamicCache.crop``), so the rejected proposals leave no trace; repeat.

Why the output cannot change: every token that is kept is the target's own argmax given the
tokens before it, which is exactly what greedy decoding would have picked. The draft only decides
how many of them one target pass confirms. (One caveat of floating point: the target scores
``k + 1`` positions in one matrix product instead of one at a time, which sums in another order;
on an exact near-tie, two logits within ~1e-6, the argmax could flip. The tests compare token for
token and never see it happen.)

When it pays: a target pass over ``k + 1`` tokens costs about as much as over one when the target
is *memory-bound* (reading billions of weights from memory dominates, the arithmetic is nearly
free), which is the case for large models on GPUs. Then ``n`` accepted tokens per pass is nearly an
``n``-fold speedup, minus the draft's cost. A tiny target on a CPU is not memory-bound (every step
costs mostly Python and kernel-launch overhead, the same for draft and target), so there the draft's
passes cost nearly as much as the target's and speculative decoding can be slower;
:mod:`llmkb.inference.bench` measures it.

Where the stopping rules come from: a row stops at an end token (which is kept, as in
:func:`~llmkb.inference.generate.generate_ids`), after ``max_new_tokens``, or when the sequence
fills the target's context; a round never proposes past those limits. :func:`train_draft` trains a
small draft on the target's own token shards (a draft must share the tokenizer).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

import torch

from llmkb.inference.backend import Backend, backend_for, check_length
from llmkb.model.gpt import GPT, KVCache

# The draft's shape: an eighth of the base model's transformer weights (86k vs 688k); with its
# 4096 x 64 embedding table, 348k parameters in all against the base model's 1.2M.
DRAFT_MODEL = dict(d_model=64, n_layer=2, n_head=2, n_kv_head=1, d_ff=160)
# The draft only has to guess the target's next tokens on ordinary text, in a few hundred steps: text
# windows alone (no repeat windows for induction heads, a quarter of the cost) at the higher rate.
DRAFT_TRAINING = dict(repeat_windows=0, lr=3e-3)


# ----------------------------------------------------------------------------------------------
# two small helpers: run a model on new tokens, roll a cache back


def _forward(backend: Backend, tokens: list[int], cache, start: int) -> torch.Tensor:
    """Logits ``(len(tokens), V)`` for ``tokens`` at positions ``start, start + 1, ...`` after ``cache``.

    Batch 1 and no padding: no attention mask is needed (plain causal attention over the cache).
    """
    device = backend.device
    ids = torch.tensor([tokens], dtype=torch.long, device=device)
    positions = torch.arange(start, start + len(tokens), device=device)[None]
    return backend.step(ids, cache, None, positions)[0]


def crop_cache(cache, length: int) -> None:
    """Forget every cached position from ``length`` on: our :class:`KVCache`, or transformers' cache.

    transformers' ``DynamicCache.crop(n)`` takes a *negative* ``n`` as "remove the last ``-n``
    positions" (in 4.x and 5.x alike; 5.x refuses a positive absolute length), so we pass that.
    """
    if isinstance(cache, KVCache):
        cache.crop(length)
        return
    extra = cache.get_seq_length() - length
    if extra > 0:
        cache.crop(-extra)


def _greedy(logits: torch.Tensor) -> list[int]:
    """The argmax of each row of ``logits`` ``(n, V)``, as :func:`~llmkb.inference.sampling.next_token` takes it."""
    return logits.float().argmax(dim=-1).tolist()


def _prompt_of(input_ids) -> list[int]:
    ids = torch.as_tensor(input_ids)
    if ids.dim() == 2:
        if ids.shape[0] != 1:
            raise ValueError(
                f"speculative_generate decodes one sequence: input_ids must be (1, T), got {tuple(ids.shape)}"
            )
        ids = ids[0]
    if ids.dim() != 1:
        raise ValueError(f"input_ids must be (1, T) or (T,), got shape {tuple(ids.shape)}")
    if ids.numel() == 0:
        raise ValueError("prompt 0 is empty: generation needs at least one token to continue from")
    return ids.tolist()


# ----------------------------------------------------------------------------------------------
# the algorithm


@torch.no_grad()
def speculative_generate(
    target, draft, input_ids: torch.Tensor, max_new_tokens: int, k: int = 4, eos_ids: Iterable[int] = ()
) -> tuple[torch.Tensor, dict]:
    """Greedy decoding of ``target`` sped up by ``draft``'s guesses: ``(new_ids (N,), stats)``.

    ``new_ids`` equals ``generate_ids(target, input_ids, None, GenerationConfig(max_new_tokens=...),
    eos_ids)[0]``: up to and including the first end token in ``eos_ids``, at most
    ``max_new_tokens`` tokens, and never past the target's context. ``k`` is how many tokens the
    draft proposes per round (fewer near the limits).

    ``stats``: ``proposed`` (draft tokens offered), ``accepted`` (those the target agreed with),
    ``acceptance_rate`` (accepted / proposed; 0.0 if nothing was proposed), ``new_tokens``,
    ``target_forward_passes`` (the prefill included) and ``draft_forward_passes``.
    """
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k (tokens the draft proposes per round) must be an integer >= 1, got {k!r}")
    tb, db = backend_for(target), backend_for(draft)
    seq = _prompt_of(input_ids)  # the prompt, then every accepted token: plain Python ints
    T = len(seq)
    check_length(0, T, tb.context)
    limit = max_new_tokens if tb.context is None else min(max_new_tokens, tb.context - T)
    eos = set(int(i) for i in eos_ids)
    stats = dict(proposed=0, accepted=0, target_forward_passes=0, draft_forward_passes=0)

    # Both caches can hold the longest sequence we may reach; the target never stores more.
    t_cache, d_cache = tb.start(1, T + limit), db.start(1, T + limit)
    d_len = 0  # positions in the draft's cache (it starts empty and catches up lazily)

    # The target's prefill gives the first new token, exactly as plain greedy decoding does.
    logits = _forward(tb, seq, t_cache, 0)
    stats["target_forward_passes"] += 1
    vocab = logits.shape[-1]
    t_len = T  # positions in the target's cache: every token of seq except the last one
    seq.append(_greedy(logits[-1:])[0])
    done = seq[-1] in eos or limit == 1

    while not done:
        # Invariant: t_len == len(seq) - 1; seq[-1] was chosen by the target but not yet fed to it.
        produced = len(seq) - T
        n = min(k, limit - produced - 1)  # a round adds up to n + 1 tokens: stay within the limit
        if db.context is not None:  # and the draft can only propose inside its own context
            n = min(n, max(0, db.context + 1 - len(seq)))

        # 1. The draft proposes n tokens. Its first pass feeds whatever of seq it has not seen
        #    (the whole prompt the first time, later the one or two tokens of the last round).
        proposals: list[int] = []
        if n > 0:
            logits = _forward(db, seq[d_len:], d_cache, d_len)
            d_len = len(seq)
            if logits.shape[-1] != vocab:
                raise ValueError(
                    f"the draft has {logits.shape[-1]} tokens in its vocabulary, the target {vocab}: "
                    "a draft must share the target's tokenizer"
                )
            proposals.append(_greedy(logits[-1:])[0])
            for _ in range(n - 1):
                logits = _forward(db, proposals[-1:], d_cache, d_len)
                d_len += 1
                proposals.append(_greedy(logits)[0])
            stats["draft_forward_passes"] += n

        # 2. The target scores the last accepted token and every proposal in one pass.
        logits = _forward(tb, seq[-1:] + proposals, t_cache, t_len)  # (n + 1, V)
        stats["target_forward_passes"] += 1
        choices = _greedy(logits)  # choices[i]: the target's token after seq + proposals[:i]

        # 3. Keep the proposals the target agrees with, then the target's own next token.
        agreed = 0
        while agreed < n and proposals[agreed] == choices[agreed]:
            agreed += 1
        stats["proposed"] += n
        stats["accepted"] += agreed
        new = proposals[:agreed] + [choices[agreed]]

        # 4. Roll both caches back to what is still valid: seq and the accepted proposals.
        t_len = len(seq) + agreed
        crop_cache(t_cache, t_len)
        d_len = min(d_len, t_len)
        crop_cache(d_cache, d_len)

        for token in new:  # an end token ends the text right there, as in plain decoding
            seq.append(token)
            if token in eos:
                done = True
                break
        done = done or len(seq) - T >= limit

    stats["new_tokens"] = len(seq) - T
    stats["acceptance_rate"] = round(stats["accepted"] / stats["proposed"], 4) if stats["proposed"] else 0.0
    return torch.tensor(seq[T:], dtype=torch.long, device=tb.device), stats


# ----------------------------------------------------------------------------------------------
# a draft model for our base model


def train_draft(shards_dir: str | Path, out_dir: str | Path, steps: int = 300, **config_overrides) -> GPT:
    """Train a small draft model on ``shards_dir`` (``train`` and ``val`` splits) into ``out_dir``; return it.

    A draft must share the target's tokenizer, so it trains on the target's own token shards with
    the ordinary pretraining loop (:func:`~llmkb.pretrain.train.train`), only smaller:
    :data:`DRAFT_MODEL` (d_model 64, 2 layers, 2 query heads sharing 1 key/value head, d_ff 160) and
    ``steps`` optimizer steps on the CPU, fp32, no compile, on text windows only (:data:`DRAFT_TRAINING`).
    ``config_overrides`` are :class:`~llmkb.pretrain.config.PretrainConfig` fields; pass ``context=``
    the target's context if it is not the default 128, and ``progress=False`` to hide the progress bar.
    ``out_dir`` gets the usual ``checkpoint/`` and ``log.jsonl`` (the last record holds the validation
    loss); a folder that already holds a checkpoint is resumed, as ``train`` always does.
    """
    from llmkb.pretrain.checkpoint import load_checkpoint
    from llmkb.pretrain.shards import TokenShards
    from llmkb.pretrain.config import PretrainConfig
    from llmkb.pretrain.train import train

    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    settings = dict(
        DRAFT_MODEL,
        **DRAFT_TRAINING,
        max_steps=steps,
        warmup_steps=max(1, min(100, steps // 10)),
        device="cpu",
        compile="no",
        eval_every=steps,
        checkpoint_every=steps,
    )
    unknown = set(config_overrides) - {f.name for f in dataclasses.fields(PretrainConfig)}
    if unknown:
        raise ValueError(f"not PretrainConfig fields: {', '.join(sorted(unknown))}")
    config = PretrainConfig(**{**settings, **config_overrides})
    shards_dir, out_dir = Path(shards_dir), Path(out_dir)
    train_data, val_data = TokenShards.open(shards_dir, "train"), TokenShards.open(shards_dir, "val")
    train(config, train_data, val_data, out_dir)
    model = GPT(config.model_config(train_data.vocab_size))
    load_checkpoint(out_dir / "checkpoint", model)
    return model.eval()
