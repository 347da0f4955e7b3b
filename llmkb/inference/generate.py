"""Generation: from prompts to text, one token at a time, with a KV cache, batches, beams and streaming.

In: a model (our :class:`~llmkb.model.gpt.GPT`, or any Hugging Face causal LM), its tokenizer,
prompts and a :class:`GenerationConfig`. Out: the new text of every prompt (:func:`generate`), the
text of one prompt piece by piece as it is produced (:func:`stream`), or token ids
(:func:`generate_ids`, :func:`beam_search`).

The loop, as every inference engine runs it:

1. **Tokenize and left-pad.** Prompts of different lengths share one batch; padding goes on the
   *left* so that every row's last real token sits in the last column, where the next token is
   predicted. ``attention_mask`` (1 = real, 0 = padding) hides the padding, and position ids
   ``cumsum(mask) - 1`` start each row at 0 after its padding, so a padded row computes exactly
   what it would alone.
2. **Prefill.** One forward pass over all prompt tokens fills the KV cache and gives the logits of
   the first new token.
3. **Decode.** Pick a token (:mod:`llmkb.inference.sampling`), feed *only that token* with the
   cache, repeat. A row that produced an end token (``<|endoftext|>`` or ``<|im_end|>``) or one of
   the ``stop_strings`` is finished: it is fed padding until the whole batch is done, and nothing it
   produces after that counts. ``use_cache=False`` recomputes the whole sequence at every step
   instead: the same tokens, and the cost the KV cache saves.

**Beam search** (``num_beams > 1``) keeps the ``num_beams`` best partial sequences by total
log-probability instead of one, and returns the best finished one, scored by
``sum(log p) / length ** length_penalty``. It is Hugging Face's algorithm step for step (how many
candidates are kept, when a hypothesis counts as finished, the ``early_stopping`` rule), so it
returns the same tokens as ``model.generate(num_beams=k, do_sample=False, length_penalty=...,
early_stopping=...)`` (the tests check it for ``True``, ``False`` and ``"never"``).

One loop serves both model families through a small adapter, :class:`Backend`: ``start`` makes an
empty cache (our static :class:`~llmkb.model.gpt.KVCache`, or transformers' ``DynamicCache``) and
``step`` runs the model on new tokens. Greedy decoding, sampling with a seed, the repetition
penalty and beam search give exactly what ``transformers``' ``generate`` gives on the same model.

Where we differ from HF on purpose: a stop string is cut from the text (HF keeps it), and a row
stops when it fills the model's context (HF warns and goes on, past what the model was trained on).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from llmkb.checks import integer, one_of, require
from llmkb.device import device_of
from llmkb.inference.sampling import (
    apply_repetition_penalty,
    check_repetition_penalty,
    check_temperature,
    check_top_k,
    check_top_p,
    next_token,
)
from llmkb.model.gpt import GPT, KVCache
from llmkb.pretrain.probes import encode

EOS_TOKENS = ("<|endoftext|>", "<|im_end|>")  # either one ends a row: end of document, end of a chat turn
IMPOSSIBLE = -1.0e9  # HF's "this beam is out" score; added, not assigned, exactly as HF does


# ----------------------------------------------------------------------------------------------
# the configuration


@dataclass
class GenerationConfig:
    max_new_tokens: int = 64  # at most this many new tokens per prompt (fewer if the context fills up)
    temperature: float = 0.0  # 0: greedy (argmax); > 0: sample from softmax(logits / temperature)
    top_k: int = 0  # > 0: sample among the k most likely tokens only (0: off)
    top_p: float = 1.0  # < 1: nucleus sampling, the most likely tokens up to this total probability (1: off)
    repetition_penalty: float = 1.0  # > 1 makes tokens already in the sequence less likely (1: off)
    do_sample: bool = True  # False forces greedy whatever the temperature (HF's switch)
    num_beams: int = 1  # > 1: beam search with this many beams (greedy beams; no sampling)
    length_penalty: float = 1.0  # beam search: a finished beam scores sum(log p) / length ** length_penalty
    early_stopping: bool | str = False  # beam search: True, False or "never", as in HF (see beam_search)
    stop_strings: list[str] = field(default_factory=list)  # a row ends at the first of these; cut from the text
    seed: int | None = None  # sampling: the same seed gives the same text (None: torch's global generator)
    use_cache: bool = True  # False recomputes the whole sequence at every step (slow; for comparison)

    @property
    def sampling(self) -> bool:
        """Whether tokens are drawn at random (otherwise the argmax is taken)."""
        return self.do_sample and self.temperature > 0

    def __post_init__(self) -> None:
        """Raise a ValueError naming the class, the first setting that makes no sense and its value.

        Examples:
            >>> GenerationConfig(top_p=0.0)
            Traceback (most recent call last):
            ...
            ValueError: GenerationConfig.top_p must be in (0, 1] (1 turns it off; 0 would keep no token), got 0.0
        """
        integer(self, "max_new_tokens", minimum=1)
        try:  # the sampling functions' own checks; their messages start with the field's name
            check_temperature(self.temperature)
            check_top_k(self.top_k)
            check_top_p(self.top_p)
            check_repetition_penalty(self.repetition_penalty)
        except ValueError as e:
            raise ValueError(f"GenerationConfig.{e}") from None
        integer(self, "num_beams", minimum=1)
        require(self, "num_beams", self.num_beams == 1 or not self.sampling,
                f"1 when sampling: beams search deterministically, so set temperature=0 (or do_sample=False) "
                f"instead of temperature={self.temperature}")  # fmt: skip
        one_of(self, "early_stopping", (True, False, "never"))
        ok = not isinstance(self.stop_strings, str) and all(isinstance(s, str) and s for s in self.stop_strings)
        require(self, "stop_strings", ok, "a list of non-empty strings (e.g. ['\\n\\n'])")
        require(self, "seed", self.seed is None or (isinstance(self.seed, int) and not isinstance(self.seed, bool)),
                "an integer or None")  # fmt: skip


# ----------------------------------------------------------------------------------------------
# one loop, two model families


class Backend:
    """What the decoding loop needs from a model: an empty cache, and logits for new tokens.

    ``step(ids, cache, attention_mask, position_ids)`` runs the model on ``ids`` ``(B, T)``, the
    tokens after those already in ``cache`` (or, with ``cache=None``, the whole sequence) and
    returns logits ``(B, T, V)``; ``attention_mask`` ``(B, S)`` covers cached and new positions (or
    is None: no padding). Subclass it to drive any other model with the same loop.
    """

    context: int | None = None  # the longest sequence the model handles; None: no limit

    def __init__(self, model):
        self.model = model

    @property
    def device(self) -> torch.device:
        return device_of(self.model)

    def start(self, batch_size: int, max_len: int):
        """An empty cache for ``batch_size`` rows of up to ``max_len`` positions."""
        raise NotImplementedError

    def step(
        self, ids: torch.Tensor, cache, attention_mask: torch.Tensor | None, position_ids: torch.Tensor
    ) -> torch.Tensor:
        raise NotImplementedError

    def reorder(self, cache, rows: torch.Tensor):
        """Keep the cache of rows ``rows`` (beam search copies good beams and drops bad ones)."""
        raise NotImplementedError


class GPTBackend(Backend):
    """Our GPT with its static :class:`~llmkb.model.gpt.KVCache`."""

    def __init__(self, model):
        super().__init__(model)
        self.config = getattr(model, "_orig_mod", model).config  # torch.compile wraps the module
        self.context = self.config.context

    def start(self, batch_size: int, max_len: int):
        dtype = next(self.model.parameters()).dtype
        return KVCache(self.config, batch_size, max_len, device=self.device, dtype=dtype)

    def step(self, ids, cache, attention_mask, position_ids):
        logits, _ = self.model(ids, cache=cache, attention_mask=attention_mask, position_ids=position_ids)
        return logits

    def reorder(self, cache, rows):
        cache.reorder(rows)
        return cache


class HFBackend(Backend):
    """A Hugging Face causal LM with transformers' ``DynamicCache``, the cache its ``generate`` uses."""

    def __init__(self, model):
        super().__init__(model)
        self.context = getattr(model.config, "max_position_embeddings", None)
        # transformers 5.x renamed `past_key_values` to `cache`; accept either
        params = inspect.signature(model.forward).parameters
        self.cache_arg = "cache" if "cache" in params else "past_key_values"

    def start(self, batch_size: int, max_len: int):
        from transformers import DynamicCache

        return DynamicCache(config=self.model.config)

    def step(self, ids, cache, attention_mask, position_ids):
        out = self.model(input_ids=ids, attention_mask=attention_mask, position_ids=position_ids,
                         use_cache=cache is not None, **{self.cache_arg: cache})  # fmt: skip
        return out.logits

    def reorder(self, cache, rows):
        cache.reorder_cache(rows)
        return cache


def backend_for(model) -> Backend:
    """The adapter for ``model`` (a :class:`Backend` is returned as it is); the model is put in eval mode."""
    if isinstance(model, Backend):
        return model
    model.eval()
    if isinstance(getattr(model, "_orig_mod", model), GPT):
        return GPTBackend(model)
    if hasattr(model, "config") and hasattr(model, "forward"):
        return HFBackend(model)
    raise TypeError(
        f"cannot generate with a {type(model).__name__}: expected our GPT, a Hugging Face causal LM or a Backend"
    )


# ----------------------------------------------------------------------------------------------
# tokens in, tokens out


def left_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token lists -> ``input_ids`` and ``attention_mask`` ``(B, T)``, padded on the left.

    Examples:
        >>> ids, mask = left_pad([[5, 6, 7], [8]], pad_id=0)
        >>> ids.tolist(), mask.tolist()
        ([[5, 6, 7], [0, 0, 8]], [[1, 1, 1], [0, 0, 1]])
    """
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
            mask[i, width - len(row) :] = 1
    return ids, mask


def _check_length(i: int, n: int, context: int | None) -> None:
    if context is not None and n >= context:
        raise ValueError(f"prompt {i} has {n} tokens; the model's context is {context} tokens, so a prompt "
                         f"may have at most {context - 1} (one position is left for a new token)")  # fmt: skip


def _prepare(backend: Backend, input_ids: torch.Tensor, attention_mask: torch.Tensor | None):
    """Inputs on the model's device, checked against the context; position ids from the mask."""
    device = backend.device
    ids = input_ids.to(device)
    mask = torch.ones_like(ids) if attention_mask is None else attention_mask.to(device).long()
    lengths = mask.sum(dim=1)  # (B,): real prompt tokens per row
    for i, n in enumerate(lengths.tolist()):
        if n == 0:
            raise ValueError(f"prompt {i} is empty: generation needs at least one token to continue from")
        _check_length(i, n, backend.context)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # (B, T): a row's first real token is position 0
    # Without padding no mask is needed (plain causal attention), as HF's generate drops an all-ones mask.
    return ids, mask, positions, lengths, bool(mask.all())


def _generator(config: GenerationConfig, device) -> torch.Generator | None:
    if config.seed is None:
        return None
    return torch.Generator(device=device).manual_seed(config.seed)


@torch.no_grad()
def token_steps(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    config: GenerationConfig,
    eos_ids: list[int],
    pad_id: int | None = None,
    stop: Callable[[int, list[int]], bool] | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Greedy or sampled decoding, one step per iteration: yields ``(tokens (B,), finished (B,))``.

    ``tokens`` are this step's new tokens (``pad_id`` for rows finished earlier); ``finished``
    says which rows are done *after* this step: the row produced an id in ``eos_ids``, reached
    ``max_new_tokens`` or the model's context, or ``stop(row, new_tokens_of_row)`` returned True.
    The generator ends when every row is finished. Beam search is :func:`beam_search`.
    """
    if config.num_beams > 1:
        raise ValueError("token_steps decodes one sequence per row; beam search is beam_search()")
    backend = backend_for(model)
    ids, mask, positions, lengths, unpadded = _prepare(backend, input_ids, attention_mask)
    B, width = ids.shape
    pad_id = eos_ids[0] if pad_id is None else pad_id
    # Each row may grow to the model's context; past it, RoPE positions were never trained.
    limit = torch.full_like(lengths, config.max_new_tokens)
    if backend.context is not None:
        limit = limit.clamp(max=backend.context - lengths)
    steps = int(limit.max())
    eos = torch.tensor(eos_ids, dtype=torch.long, device=ids.device)
    history = ids.masked_fill(mask == 0, -1)  # what the repetition penalty looks at: real tokens only
    generator = _generator(config, ids.device)
    finished = torch.zeros(B, dtype=torch.bool, device=ids.device)
    new: list[list[int]] = [[] for _ in range(B)]

    cache = backend.start(B, width + steps) if config.use_cache else None
    logits = backend.step(ids, cache, None if unpadded else mask, positions)[:, -1]  # prefill: (B, V)
    for t in range(steps):
        tokens = next_token(logits, config, generator, history)  # (B,)
        tokens = torch.where(finished, pad_id, tokens)  # a finished row only pads (as HF does)
        ended = (~finished & (torch.isin(tokens, eos) | (t + 1 >= limit))).tolist()
        for i, (token, active) in enumerate(zip(tokens.tolist(), (~finished).tolist())):
            if active:
                new[i].append(token)
                ended[i] = ended[i] or (stop is not None and stop(i, new[i]))
        finished = finished | torch.tensor(ended, device=finished.device)
        yield tokens, finished.clone()
        if bool(finished.all()) or t + 1 == steps:
            return
        # Feed the new token; the mask and positions grow by one column.
        ids = torch.cat([ids, tokens[:, None]], dim=1)
        history = torch.cat([history, tokens[:, None]], dim=1)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        positions = torch.cat([positions, positions[:, -1:] + 1], dim=1)
        if cache is not None:  # one position of work: the cache holds everything before it
            logits = backend.step(tokens[:, None], cache, None if unpadded else mask, positions[:, -1:])[:, -1]
        else:  # the whole sequence again
            logits = backend.step(ids, None, None if unpadded else mask, positions)[:, -1]


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
    checked during the search (:func:`generate` cuts them from the text afterwards).
    """
    backend = backend_for(model)
    ids, mask, positions, lengths, unpadded = _prepare(backend, input_ids, attention_mask)
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


def generate_ids(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    config: GenerationConfig,
    eos_ids: list[int],
    pad_id: int | None = None,
    stop: Callable[[int, list[int]], bool] | None = None,
) -> torch.Tensor:
    """The new tokens ``(B, N)`` for left-padded ``input_ids`` ``(B, T)``; a finished row ends with its
    end token (if it produced one) followed by ``pad_id`` (default ``eos_ids[0]``).

    ``N`` is the number of steps the batch ran; ``hf_model.generate(...)[:, T:]`` has the same
    shape and, for the same settings, the same tokens. With ``num_beams > 1``: the best beam.
    """
    pad_id = eos_ids[0] if pad_id is None else pad_id
    if config.num_beams > 1:
        beams = beam_search(model, input_ids, attention_mask, config, eos_ids, pad_id)
        return beams.sequences[:, 0, : int(beams.lengths[:, 0].max())]
    steps = [tokens for tokens, _ in token_steps(model, input_ids, attention_mask, config, eos_ids, pad_id, stop)]
    return torch.stack(steps, dim=1) if steps else input_ids.new_zeros((input_ids.shape[0], 0))


# ----------------------------------------------------------------------------------------------
# text in, text out


def eos_ids_of(tokenizer) -> list[int]:
    """The ids of ``<|endoftext|>`` and ``<|im_end|>`` (those the tokenizer has), then its own eos."""
    ids = []
    for token in EOS_TOKENS:
        i = tokenizer.convert_tokens_to_ids(token)
        if i is not None and i != tokenizer.unk_token_id and i not in ids:
            ids.append(i)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    if not ids:
        raise ValueError("the tokenizer has no end token (<|endoftext|>, <|im_end|> or an eos_token)")
    return ids


def decode(tokenizer, ids: list[int]) -> str:
    """Ids -> text, special tokens kept and no space clean-up, so that a longer sequence's text
    always extends a shorter one's (which streaming relies on)."""
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def cut_at_stop(text: str, stop_strings: list[str]) -> tuple[str, bool]:
    """``text`` up to the earliest stop string, and whether one was found.

    Examples:
        >>> cut_at_stop("one\\ntwo\\n\\nthree", ["\\n\\n", "three"])
        ('one\\ntwo', True)
    """
    found = [i for i in (text.find(s) for s in stop_strings) if i >= 0]
    return (text[: min(found)], True) if found else (text, False)


def _until_eos(ids: list[int], eos_ids: list[int]) -> list[int]:
    for j, token in enumerate(ids):
        if token in eos_ids:
            return ids[:j]
    return ids


def _encode_prompts(tokenizer, prompts: list[str] | str) -> list[list[int]]:
    if isinstance(prompts, str):
        prompts = [prompts]
    if not prompts:
        raise ValueError("no prompts: pass a string or a non-empty list of strings")
    rows = []
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, str):
            raise ValueError(f"prompt {i} is a {type(prompt).__name__}, not a string")
        row = encode(tokenizer, prompt)[0].tolist()
        if not row:
            raise ValueError(f"prompt {i} is empty: generation needs at least one token to continue from")
        rows.append(row)
    return rows


def _text_setup(model, tokenizer, prompts, config):
    """Checked config, left-padded ids and mask, end ids, pad id: every error raised before generating."""
    config = config or GenerationConfig()
    rows = _encode_prompts(tokenizer, prompts)
    context = backend_for(model).context
    for i, row in enumerate(rows):
        _check_length(i, len(row), context)
    eos_ids = eos_ids_of(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0]
    input_ids, attention_mask = left_pad(rows, pad_id)
    return config, input_ids, attention_mask, eos_ids, pad_id


def generate(model, tokenizer, prompts: list[str] | str, config: GenerationConfig | None = None) -> list[str]:
    """The new text for each prompt (a list, also for one prompt), the prompts run as one batch.

    Greedy decoding gives each row exactly what that prompt gives alone. The end token is not part
    of the text; a stop string ends its row and is cut off, with everything after it.
    """
    config, input_ids, attention_mask, eos_ids, pad_id = _text_setup(model, tokenizer, prompts, config)
    stop = _stop_check(tokenizer, config.stop_strings) if config.num_beams == 1 else None
    new = generate_ids(model, input_ids, attention_mask, config, eos_ids, pad_id, stop)
    return [cut_at_stop(decode(tokenizer, _until_eos(row, eos_ids)), config.stop_strings)[0] for row in new.tolist()]


def _stop_check(tokenizer, stop_strings: list[str]) -> Callable[[int, list[int]], bool] | None:
    """For :func:`token_steps`: does a row's new text contain a stop string? (None: no stop strings.)"""
    if not stop_strings:
        return None
    return lambda row, new: cut_at_stop(decode(tokenizer, new), stop_strings)[1]


def _held_back(text: str, stop_strings: list[str]) -> int:
    """How many characters at the end of ``text`` might still turn into a stop string.

    Examples:
        >>> _held_back("the end\\n", ["\\n\\n"]), _held_back("the end", ["\\n\\n"])
        (1, 0)
    """
    longest = 0
    for s in stop_strings:
        for n in range(min(len(s) - 1, len(text)), longest, -1):
            if text.endswith(s[:n]):
                longest = n
                break
    return longest


def stream(model, tokenizer, prompt: str, config: GenerationConfig | None = None) -> Iterator[str]:
    """The new text of ``prompt`` in pieces, each as soon as it is certain; ``"".join`` of them is
    ``generate(model, tokenizer, prompt, config)[0]``.

    A byte-level BPE token can end in the middle of a UTF-8 character (an emoji is 4 bytes, often
    2 or more tokens). Decoding such a prefix gives U+FFFD, the replacement character, at the end;
    those characters are held back until the next tokens complete them. Text that could still be
    the start of a stop string is held back too. Each step decodes the whole new text again (a
    prefix of it may decode differently once more bytes arrive) and emits what is new and stable.
    Beam search cannot know its best sequence before the end, so with ``num_beams > 1`` the whole
    text comes as one piece.
    """
    if not isinstance(prompt, str):
        raise ValueError("stream() takes one prompt (a string); generate() takes a batch")
    config, input_ids, attention_mask, eos_ids, pad_id = _text_setup(model, tokenizer, prompt, config)
    if config.num_beams > 1:
        return iter([text] if (text := generate(model, tokenizer, prompt, config)[0]) else [])
    steps = token_steps(model, input_ids, attention_mask, config, eos_ids, pad_id,
                        _stop_check(tokenizer, config.stop_strings))  # fmt: skip
    return _pieces(steps, tokenizer, eos_ids, config.stop_strings)


def _pieces(steps, tokenizer, eos_ids: list[int], stops: list[str]) -> Iterator[str]:
    """The text of :func:`token_steps`' only row, in stable pieces (see :func:`stream`)."""
    new: list[int] = []
    sent = 0  # characters of the text already yielded
    for tokens, _ in steps:
        token = int(tokens[0])
        if token in eos_ids:
            break
        new.append(token)
        text, stopped = cut_at_stop(decode(tokenizer, new), stops)
        if stopped:
            break
        stable = len(text.rstrip("\ufffd"))  # an unfinished character decodes to U+FFFD: wait for its bytes
        stable -= _held_back(text[:stable], stops)
        if stable > sent:
            yield text[sent:stable]
            sent = stable
    text = cut_at_stop(decode(tokenizer, new), stops)[0]  # the end: whatever is left, complete or not
    if len(text) > sent:
        yield text[sent:]
