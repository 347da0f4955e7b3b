"""Generation: from prompts to text, one token at a time, with a KV cache, batches, beams and streaming.

In: a model (our :class:`~llmkb.model.gpt.GPT`, or any Hugging Face causal LM), its tokenizer,
prompts and a :class:`GenerationConfig`. Out: the new text of every prompt (:func:`generate`), the
text of one prompt piece by piece as it is produced (:func:`stream`), or token ids
(:func:`generate_ids`, or one step at a time :func:`token_steps`).

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
``sum(log p) / length ** length_penalty``: :func:`~llmkb.inference.beam.beam_search`, which
:func:`generate` and :func:`generate_ids` call for it.

One loop serves both model families through a small adapter, :class:`~llmkb.inference.backend.Backend`:
``start`` makes an empty cache (our static :class:`~llmkb.model.gpt.KVCache`, or transformers'
``DynamicCache``) and ``step`` runs the model on new tokens. Greedy decoding, sampling with a seed, the repetition
penalty and beam search give exactly what ``transformers``' ``generate`` gives on the same model.

Where we differ from HF on purpose: a stop string is cut from the text (HF keeps it), and a row
stops when it fills the model's context (HF warns and goes on, past what the model was trained on).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from llmkb.checks import integer, one_of, require
from llmkb.inference.backend import backend_for, check_length, prepare_inputs
from llmkb.inference.beam import beam_search
from llmkb.inference.sampling import (
    check_repetition_penalty,
    check_temperature,
    check_top_k,
    check_top_p,
    next_token,
)
from llmkb.tokenizer.ids import encode

EOS_TOKENS = ("<|endoftext|>", "<|im_end|>")  # either one ends a row: end of document, end of a chat turn


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
    early_stopping: bool | str = False  # beam search: True, False or "never", as in HF (see llmkb.inference.beam)
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
        require(
            self,
            "num_beams",
            self.num_beams == 1 or not self.sampling,
            f"1 when sampling: beams search deterministically, so set temperature=0 (or do_sample=False) "
            f"instead of temperature={self.temperature}",
        )
        one_of(self, "early_stopping", (True, False, "never"))
        ok = not isinstance(self.stop_strings, str) and all(isinstance(s, str) and s for s in self.stop_strings)
        require(self, "stop_strings", ok, "a list of non-empty strings (e.g. ['\\n\\n'])")
        require(
            self,
            "seed",
            self.seed is None or (isinstance(self.seed, int) and not isinstance(self.seed, bool)),
            "an integer or None",
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
    The generator ends when every row is finished. Beam search is :func:`~llmkb.inference.beam.beam_search`.
    """
    if config.num_beams > 1:
        raise ValueError("token_steps decodes one sequence per row; beam search is beam_search()")
    backend = backend_for(model)
    ids, mask, positions, lengths, unpadded = prepare_inputs(backend, input_ids, attention_mask)
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
        check_length(i, len(row), context)
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
    steps = token_steps(
        model, input_ids, attention_mask, config, eos_ids, pad_id, _stop_check(tokenizer, config.stop_strings)
    )
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
